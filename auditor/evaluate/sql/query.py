"""One compiled rule -> its SQL queries: per-step group aggregates, evidence candidates, rows for Python.

A rule is one query tree whatever the engine (sqlglot renders it per dialect). Its steps are a VALUES table
(`step`, `since_us`, `until_us`) joined on the record time, so a periodic audit is one query per rule and a
single run is the one-step case. Rows are split by the rule's conditions (auditor.evaluate.sql.conditions):
- decided rows (no condition undecided) are aggregated by the engine: per step and group the record count,
  each `distinct` field's distinct values, each ratio's `where` hits;
- undecided rows (a regex only Python can run, an IPv6 address under `cidr`) are returned, after the exact
  conditions, for the Python evaluator to filter and count with the rest;
- evidence: for the groups auditor's decision code found violating, the rows ranked within the evidence
  count by time (ties included) per step, group and evidence key, from which the same bounded heaps as in a
  Python pass choose.
The record relation has `t_us` (epoch microseconds), one column per field, named as in the API, and `_wrong`,
`_odd` for values of the wrong type (auditor.sources.relation), which records_of puts back for Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlglot import exp

from auditor.compile.compiler import evidence_fields
from auditor.compile.plan import CompiledRule
from auditor.core.fields import SOURCES, FieldType
from auditor.evaluate.sql.conditions import FALSE, TRUE, SqlCondition, column, compile_condition, literal, wrong_type
from auditor.evaluate.sql.dialects import Dialect
from auditor.sources.relation import ODD

STEPS = "steps"


def table_name(source: str) -> str:
    """The relation holding one log's records."""
    return f"records_{source}"


@dataclass(frozen=True)
class RuleSql:
    """A rule's SQL: what the engine decides and what it leaves to Python."""

    compiled: CompiledRule
    dialect: Dialect
    filter: tuple[SqlCondition, ...]
    wheres: tuple[tuple[SqlCondition, ...], ...]  # per ratio expectation
    distinct: tuple[str, ...]  # per distinct expectation, its field
    shown: tuple[str, ...]  # evidence fields, in the source's order

    @property
    def windows(self) -> tuple[tuple[int, int, int], ...]:
        """(step, since_us, until_us) of every step (one for a single run)."""
        c = self.compiled
        if c.windows:
            return tuple((i, since, until) for i, (_, since, until) in enumerate(c.windows))
        return ((0, c.since_us, c.until_us),)

    @property
    def undecided(self) -> exp.Expression:
        """True for rows some condition (filter or ratio `where`) leaves to Python, and rows whose group or
        distinct field holds a value of the wrong type (Python groups and counts it as it is; its column is null)."""
        parts = [s.undecided for s in (*self.filter, *(w for ws in self.wheres for w in ws)) if s.undecided]
        parts += [wrong_type(f, self.dialect) for f in dict.fromkeys((*self.compiled.rule.group_by, *self.distinct))]
        return cast(exp.Expression, exp.or_(*parts)) if parts else FALSE

    @property
    def needs_python(self) -> bool:
        """True when some rows may go to Python."""
        undecided = self.undecided
        return not (isinstance(undecided, exp.Boolean) and not undecided.this)  # anything but a literal FALSE

    def _steps(self) -> exp.Expression:
        rows = [exp.tuple_(*(exp.Literal.number(v) for v in w)) for w in self.windows]
        return exp.Values(expressions=rows, alias=exp.TableAlias(
            this=exp.to_identifier(STEPS), columns=[exp.to_identifier(c) for c in ("step", "since_us", "until_us")]))

    def _span(self) -> list[exp.Expression]:
        """t_us within the steps' overall span: constants an engine can prune files, row groups and partitions by
        (a join condition alone is not pushed into the scan)."""
        lo = min(since for _, since, _ in self.windows)
        hi = max(until for _, _, until in self.windows)
        return [exp.GTE(this=column("t_us"), expression=exp.Literal.number(lo)),
                exp.LT(this=column("t_us"), expression=exp.Literal.number(hi))]

    def _matched(self, extra: Any = None) -> exp.Select:
        """FROM records JOIN steps ON the window, WHERE the decided filter (and `extra`)."""
        on = exp.and_(exp.GTE(this=column("t_us"), expression=exp.column("since_us", STEPS)),
                      exp.LT(this=column("t_us"), expression=exp.column("until_us", STEPS)))
        where: list[Any] = [*self._span(), *(s.test for s in self.filter if s.test is not None and s.undecided is None)]
        where += [exp.paren(s.test) for s in self.filter if s.test is not None and s.undecided is not None]
        where.append(exp.Not(this=exp.paren(self.undecided)))
        if extra is not None:
            where.append(extra)
        return (exp.select().from_(exp.to_table(table_name(self.compiled.rule.source)))
                .join(self._steps(), on=on).where(exp.and_(*where)))

    def _ratio_where(self, i: int) -> exp.Expression:
        tests = [s.test for s in self.wheres[i] if s.test is not None]
        return cast(exp.Expression, exp.and_(*tests)) if tests else TRUE

    def aggregate(self) -> exp.Select:
        """Per step and group: n, each distinct field's values (d0, ...), each ratio's hits (h0, ...)."""
        group = self.compiled.rule.group_by
        cols: list[Any] = [exp.column("step", STEPS)]
        cols += [exp.alias_(column(g), f"g{i}") for i, g in enumerate(group)]
        cols.append(exp.alias_(exp.Count(this=exp.Star()), "n"))
        cols += [exp.alias_(self.dialect.distinct_list(column(f)), f"d{i}") for i, f in enumerate(self.distinct)]
        cols += [exp.alias_(exp.Sum(this=exp.Case(ifs=[exp.If(this=self._ratio_where(i), true=exp.Literal.number(1))],
                                                  default=exp.Literal.number(0))), f"h{i}")
                 for i in range(len(self.wheres))]
        keys = [exp.column("step", STEPS), *(column(g) for g in group)]
        return self._matched().select(*cols).group_by(*keys)

    def evidence(self, groups: Sequence[tuple[int, tuple[Any, ...]]]) -> exp.Select | None:
        """Evidence candidates of the given (step, group key) pairs: step, g0.., key, t_us, shown fields."""
        n = self.compiled.rule.evidence
        if n <= 0 or not groups:
            return None
        group = self.compiled.rule.group_by
        keys: list[tuple[str, Any]] = [("all", TRUE)]
        for i in range(len(self.wheres)):
            keys += [(f"where{i}", self._ratio_where(i)), (f"not{i}", exp.Not(this=exp.paren(self._ratio_where(i))))]
        # The wanted (step, group) pairs as a table joined on (an OR of them per row costs rows x pairs); a null
        # group value typed as its column, so the join compares like with like.
        types = ["BOOLEAN" if SOURCES[self.compiled.rule.source].fields[g].type is FieldType.BOOL else "VARCHAR"
                 for g in group]
        rows = [exp.tuple_(exp.Literal.number(step), *(
            exp.Cast(this=exp.Null(), to=exp.DataType.build(t)) if v is None else literal(v)
            for v, t in zip(key, types, strict=True))) for step, key in groups]
        names = ["w_step", *(f"w{i}" for i in range(len(group)))]
        wanted = exp.Values(expressions=rows, alias=exp.TableAlias(
            this=exp.to_identifier("wanted"), columns=[exp.to_identifier(c) for c in names]))
        on = exp.and_(exp.EQ(this=exp.column("step", STEPS), expression=exp.column("w_step", "wanted")),
                      *(exp.NullSafeEQ(this=column(g), expression=exp.column(f"w{i}", "wanted"))
                        for i, g in enumerate(group)))
        parts = []
        for name, test in keys:
            part = [exp.alias_(exp.column("step", STEPS), "step"), *(exp.alias_(column(g), f"g{i}")
                                                                      for i, g in enumerate(group)),
                    exp.alias_(literal(name), "ev"), column("t_us"), *(column(f) for f in self.shown), column(ODD),
                    exp.alias_(exp.Window(this=exp.Anonymous(this="rank"), partition_by=[
                        exp.column("step", STEPS), *(column(g) for g in group)],
                        order=exp.Order(expressions=[exp.Ordered(this=column("t_us"))])), "r")]
            parts.append(self._matched(test).join(wanted, on=on).select(*part))
        union: exp.Expression = parts[0]
        for p in parts[1:]:
            union = exp.union(union, p, distinct=False)
        return exp.select("*").from_(exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("c")))) \
            .where(exp.LTE(this=exp.column("r"), expression=exp.Literal.number(n)))

    def residual(self) -> exp.Select | None:
        """Rows some condition leaves to Python, after the exact ones; None when there are none."""
        if not self.needs_python:
            return None
        c = self.compiled
        fields = sorted(set(self.shown) | c.rule.needed_fields())
        where = [*self._span(), *(s.test for s in self.filter if s.exact), exp.paren(self.undecided)]
        return (exp.select(column("t_us"), *(column(f) for f in fields), column(ODD))
                .from_(exp.to_table(table_name(c.rule.source))).where(exp.and_(*where)))

    def sql(self) -> str:
        """The aggregate query as this dialect's text (for `plan`)."""
        return self.aggregate().sql(self.dialect.sqlglot, pretty=True)


def compile_rule(compiled: CompiledRule, dialect: Dialect) -> RuleSql:
    """A compiled (non-correlation) rule -> its SQL."""
    rule = compiled.rule
    source = rule.source
    filt = tuple(compile_condition(c, source, dialect) for c in rule.conditions)
    wheres = tuple(tuple(compile_condition(c, source, dialect) for c in e.where)
                   for e in rule.expectations if e.kind == "ratio")
    distinct = tuple(e.field for e in rule.expectations if e.kind == "distinct" and e.field)
    shown_set = evidence_fields(rule)
    shown = tuple(f for f in SOURCES[source].fields if f in shown_set)
    return RuleSql(compiled, dialect, filt, wheres, distinct, shown)
