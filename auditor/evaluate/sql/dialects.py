"""What differs between SQL engines, one row per engine: dialect, regex function, substring test, time.

Everything else a rule needs (comparisons, CASE, AND/OR, GROUP BY, window ranks) means the same in every
dialect here, so the query tree is built once (auditor.evaluate.sql.query) and only these entries vary. A
translation whose meaning differs between engines is never left to sqlglot: engine-specific functions are
written as explicit calls from this table. `regex` None means the engine's regex flavour is not known to
agree with Python's on the translated subset (Java's `$` and `\\s` differ again), so its regex conditions run
in Python after the engine applied the exact ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp


def _call(name: str) -> Callable[..., exp.Expression]:
    return lambda *args: exp.Anonymous(this=name, expressions=list(args))


def _non_null(aggregate: exp.Expression, v: exp.Expression) -> exp.Expression:
    """An aggregate over the rows where `v` is not null (FILTER (WHERE ...))."""
    return exp.Filter(this=aggregate, expression=exp.Where(this=exp.Not(this=exp.Is(this=v, expression=exp.Null()))))


@dataclass(frozen=True)
class Dialect:
    """One SQL engine's way of saying what differs."""

    name: str  # duckdb | spark | trino
    sqlglot: str  # sqlglot's dialect name, for rendering and re-parsing
    # regex(value, re2_pattern) -> boolean: a partial (search) match with RE2 semantics, or None (see above).
    regex: Callable[[exp.Expression, exp.Expression], exp.Expression] | None
    # strpos(haystack, needle) -> 1-based position of the first occurrence, 0 when absent (1 for "").
    strpos: Callable[[exp.Expression, exp.Expression], exp.Expression]
    # ascii_match(value, pattern) -> boolean partial match of a pattern made of ASCII digits, dots, ^ and \z only
    # (used to recognise dotted-quad IPv4 addresses, where every engine's regex agrees).
    ascii_match: Callable[[exp.Expression, exp.Expression], exp.Expression]
    # split_part(text, delimiter, index) -> the index-th (1-based) piece.
    split_part: Callable[[exp.Expression, exp.Expression, exp.Expression], exp.Expression]
    # distinct_list(value) -> the group's distinct non-null values as an array (or null when there are none; DuckDB:
    # a DISTINCT aggregate, a hash set per group, rather than every value listed and then made distinct).
    distinct_list: Callable[[exp.Expression], exp.Expression]
    # merge_distinct(lists) -> the distinct values of a group's distinct_list arrays, as an array (an aggregate).
    merge_distinct: Callable[[exp.Expression], exp.Expression]
    # byte_length(text) -> its length in UTF-8 bytes (it differs from its length in characters when not ASCII).
    byte_length: Callable[[exp.Expression], exp.Expression]
    title: str  # the engine as messages name it


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect("duckdb", "duckdb", regex=_call("regexp_matches"), strpos=_call("strpos"),
                ascii_match=_call("regexp_matches"), split_part=_call("split_part"),
                distinct_list=lambda v: _non_null(_call("list")(exp.Distinct(expressions=[v])), v),
                merge_distinct=lambda v: _call("list_distinct")(_call("flatten")(_call("list")(v))),
                byte_length=_call("strlen"), title="DuckDB"),
        Dialect("spark", "spark", regex=None, strpos=_call("instr"), ascii_match=_call("regexp_like"),
                split_part=_call("split_part"), distinct_list=_call("collect_set"),
                merge_distinct=lambda v: _call("array_distinct")(_call("flatten")(_call("collect_list")(v))),
                byte_length=_call("octet_length"), title="Spark"),
        Dialect("trino", "trino", regex=None, strpos=_call("strpos"), ascii_match=_call("regexp_like"),
                split_part=_call("split_part"),
                distinct_list=lambda v: _call("array_distinct")(_non_null(_call("array_agg")(v), v)),
                merge_distinct=lambda v: _call("array_distinct")(_call("flatten")(_call("array_agg")(v))),
                byte_length=lambda v: exp.Length(this=_call("to_utf8")(v)), title="Trino"),
    )
}
