"""Correlation rules' records read from a SQL engine's tables (`run --engine duckdb|spark`), for the Python
correlation evaluator: the `first` side (SCIM, small) whole, the `then` side only where its join values can match
(a semi-join). One source for every engine: it asks the engine only to run a query (`Tables`), rendered in the
engine's dialect, and to hand its rows over in batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import duckdb
from sqlglot import exp

from auditor.compile.compiler import evidence_fields
from auditor.compile.plan import CompiledRule, Fetch
from auditor.core.fields import SOURCES
from auditor.core.model import Condition
from auditor.evaluate.sql.conditions import column, compile_condition, literal, wrong_type
from auditor.evaluate.sql.dialects import DIALECTS, Dialect
from auditor.evaluate.sql.engine import records_of
from auditor.evaluate.sql.query import table_name
from auditor.sources.base import BaseSource, Part, SourceError, Timed
from auditor.sources.datasource import DataSource
from auditor.sources.relation import EXTRAS, ODD

BATCH = 10000  # rows per batch handed from the engine to Python: memory stays bounded on a large `then` side


class Tables(Protocol):
    """A SQL engine holding each log as a table named `table_name(log)`."""

    dialect: Dialect

    def execute(self, sql: str) -> tuple[list[str], Sequence[Sequence[Any]]]:
        """Run a query: its column names and rows (all of them)."""
        ...

    def batches(self, sql: str) -> tuple[list[str], Iterator[Sequence[Sequence[Any]]]]:
        """Run a query: its column names and its rows in batches of at most BATCH."""
        ...


class DuckTables:
    """A DuckDB connection's tables."""

    dialect = DIALECTS["duckdb"]

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def execute(self, sql: str) -> tuple[list[str], Sequence[Sequence[Any]]]:
        """Run a query: its column names and rows."""
        cursor = self._con.execute(sql)
        return [d[0] for d in cursor.description or ()], cursor.fetchall()

    def batches(self, sql: str) -> tuple[list[str], Iterator[Sequence[Sequence[Any]]]]:
        """Run a query: its column names and rows in batches."""
        cursor = self._con.execute(sql)
        return [d[0] for d in cursor.description or ()], iter(lambda: cursor.fetchmany(BATCH), [])


def _exact(conditions: Iterable[Condition], source: str, dialect: Dialect) -> list[exp.Expression]:
    """The SQL tests of the conditions the engine decides for every row (the others are left to Python)."""
    compiled = (compile_condition(x, source, dialect) for x in conditions)
    return [s.test for s in compiled if s.exact and s.test is not None]


class TableSource(BaseSource):
    """Correlation rules' records from the engine's tables: a log read by some `first` side whole, a log read only
    by `then` sides restricted to the rows whose join values can match a `first` record (a semi-join; the
    Python evaluator then matches exactly). An e-mail join compares case-folded: an ASCII address is kept
    when its lower case is a folded `first` value, a non-ASCII one always (Python folds it)."""

    def __init__(self, tables: Tables, rules: Sequence[CompiledRule], problems: dict[str, str],
                 files: DataSource | None = None):
        self._tables = tables
        self._problems = problems
        self._files = files  # the data behind the tables: results name it
        firsts = {r.rule.correlation.first.source for r in rules if r.rule.correlation is not None}
        self._where: dict[str, Any] = {}
        # Per `then`-only log, the columns its rules read or show (every column of a log some `first` side reads).
        self._columns: dict[str, set[str]] = {}
        self._joins: dict[str, list[tuple[exp.Expression, exp.Expression]]] = {}  # per log: (keys table, ON)
        for r in rules:
            c = r.rule.correlation
            if c is None or c.then.source in firsts or c.then.source in problems or c.first.source in problems:
                continue
            test = self._semijoin(r, self._joins.setdefault(c.then.source, []))
            then = r.rule.sides()[1]
            self._columns.setdefault(c.then.source, set()).update(evidence_fields(then), (b for _, b in c.join))
            previous = self._where.get(c.then.source)
            self._where[c.then.source] = test if previous is None else exp.or_(previous, test)

    def describe(self, fetch: Fetch, account_id: str | None) -> str:
        """The files behind the engine's tables, as the Python engine names them."""
        if self._files is None:
            return super().describe(fetch, account_id)
        return self._files.describe(fetch, account_id)

    def _semijoin(self, r: CompiledRule, joins: list[tuple[exp.Expression, exp.Expression]]) -> Any:
        """The test of the `then` rows of a rule that can match (LEFT JOINs it needs appended to `joins`)."""
        c = r.rule.correlation
        assert c is not None
        dialect = self._tables.dialect
        first, then = SOURCES[c.first.source].fields, SOURCES[c.then.source].fields
        window: list[exp.Expression] = [exp.GTE(this=column("t_us"), expression=exp.Literal.number(r.since_us)),
                                          exp.LT(this=column("t_us"), expression=exp.Literal.number(r.until_us))]
        # The `then` side's own exact conditions (Python applies them again, with the rest).
        tests: list[exp.Expression] = [*window, *_exact(c.then.conditions, c.then.source, dialect)]
        # The `first` records that can match: in the window, passing the first side's exact conditions.
        exact = _exact(c.first.conditions, c.first.source, dialect)
        for a, b in c.join:
            # Per join value, its first and last `first` record: a `then` record matches only after the first
            # (strictly) and, with `within`, at most `within` after the last; with one join field, rows outside
            # those times are not read.
            query = exp.select(column(a), exp.Min(this=column("t_us")), exp.Max(this=column("t_us"))).from_(
                exp.to_table(table_name(c.first.source))).where(
                exp.and_(exp.Not(this=exp.Is(this=column(a), expression=exp.Null())), *window, *exact)
            ).group_by(column(a))
            _, found = self._tables.execute(query.sql(dialect.sqlglot))
            if any(not isinstance(v, str) for v, _, _ in found):
                return exp.true()  # a value only Python compares: no narrowing for this rule
            fold = first[a].email and then[b].email
            spans: dict[str, tuple[int, int]] = {}
            for v, lo, hi in found:
                key = v.casefold() if fold else v
                if key:
                    old = spans.get(key, (lo, hi))
                    spans[key] = (min(lo, old[0]), max(hi, old[1]))
            value = exp.Lower(this=column(b)) if fold else column(b)
            if not spans:
                test: exp.Condition = exp.false()
            elif len(c.join) == 1:
                until = [(k, lo, hi + c.within_us if c.within_us is not None else r.until_us)
                         for k, (lo, hi) in sorted(spans.items())]
                rows = [exp.tuple_(literal(k), exp.Literal.number(lo), exp.Literal.number(hi)) for k, lo, hi in until]
                name = f"k{len(joins)}"  # keys are distinct: a LEFT JOIN on them adds no row
                keys = exp.Values(expressions=rows, alias=exp.TableAlias(
                    this=exp.to_identifier(name), columns=[exp.to_identifier(n) for n in ("v", "lo", "hi")]))
                joins.append((keys, exp.EQ(this=exp.column("v", name), expression=value)))
                test = exp.and_(exp.GT(this=column("t_us"), expression=exp.column("lo", name)),
                                exp.LTE(this=column("t_us"), expression=exp.column("hi", name)))
            else:
                test = exp.In(this=value, expressions=[literal(k) for k in sorted(spans)])
            if fold:  # Python folds a non-ASCII address (casefold, not SQL's lower): such rows are kept
                test = exp.or_(exp.NEQ(this=dialect.byte_length(column(b)),
                                       expression=exp.Length(this=column(b))), test)
            # A value of the wrong type (its column null) is compared by Python as it is: kept.
            tests.append(exp.paren(exp.or_(test, wrong_type(b, dialect))))
        return exp.and_(*tests)

    def problem(self, log_source: str) -> SourceError | None:
        """The data problem of a log the engine could not load."""
        return SourceError(self._problems[log_source]) if log_source in self._problems else None

    def read(self, fetch: Fetch, index: int) -> Iterator[Part]:
        """The log's rows (narrowed for `then`-only logs), as records."""
        wanted = self._columns.get(fetch.source)
        if wanted is None:
            query = exp.select("r.*")
        else:  # t_us, the columns read or shown, and _odd (the values of the wrong type among them)
            query = exp.select(exp.column("t_us", "r"), *(exp.column(f, "r", quoted=True) for f in
                                                          SOURCES[fetch.source].fields if f in wanted),
                               exp.column(ODD, "r"))
        query = query.from_(exp.to_table(table_name(fetch.source), alias="r"))
        for keys, on in self._joins.get(fetch.source, ()):
            query = query.join(keys, on=on, join_type="left")
        where = self._where.get(fetch.source)
        if where is not None:
            query = query.where(where)
        dialect = self._tables.dialect
        yield Part(f"{fetch.source} ({dialect.title})", self._rows(query.sql(dialect.sqlglot), fetch.source))

    def _rows(self, sql: str, source: str) -> Iterator[Timed]:
        names, batches = self._tables.batches(sql)  # run when the records are first asked for
        fields = [n for n in names[1:] if n not in EXTRAS]
        yield from records_of(names, batches, fields, SOURCES[source].time_field)
