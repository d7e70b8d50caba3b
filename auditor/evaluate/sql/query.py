"""One compiled rule -> its SQL queries: per-step group aggregates, evidence candidates, rows for Python.

A rule is one query tree whatever the engine (sqlglot renders it per dialect). Its steps' time is split into
segments (auditor.evaluate.sql.segments), so a periodic audit is one query per rule that reads and aggregates
each record once, and a single run is the one-segment case. Rows are split by the rule's conditions
(auditor.evaluate.sql.conditions):
- decided rows (no condition undecided) are aggregated by the engine: per step and group the record count,
  each `distinct` field's distinct values, each ratio's `where` hits;
- undecided rows (a regex only Python can run, an IPv6 address under `cidr`) are returned, after the exact
  conditions, for the Python evaluator to filter and count with the rest;
- evidence: for the groups auditor's decision code found violating, the rows ranked within the evidence
  count by time (ties included) per segment, group and evidence key, from which the same bounded heaps as in a
  Python pass choose.
The record relation has `t_us` (epoch microseconds), one column per field, named as in the API, and `_wrong`,
`_odd` for values of the wrong type (auditor.sources.relation), which records_of puts back for Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

from sqlglot import exp

from auditor.compile.compiler import evidence_fields
from auditor.compile.plan import CompiledRule
from auditor.core.fields import SOURCES, FieldType
from auditor.evaluate.sql.conditions import FALSE, TRUE, SqlCondition, column, compile_condition, literal, wrong_type
from auditor.evaluate.sql.dialects import Dialect
from auditor.evaluate.sql.segments import Segments
from auditor.sources.relation import ODD

STEPS, SEG, MATCHED, WANTED = "steps", "seg", "m", "wanted"


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

    @cached_property
    def segments(self) -> Segments:
        """The steps' time as segments (auditor.evaluate.sql.segments): each record is aggregated in one."""
        return Segments.of(self.windows)

    def _span(self) -> list[exp.Expression]:
        """t_us within the steps' overall span: constants an engine can prune files, row groups and partitions by."""
        lo = min(since for _, since, _ in self.windows)
        hi = max(until for _, _, until in self.windows)
        return [exp.GTE(this=column("t_us"), expression=exp.Literal.number(lo)),
                exp.LT(this=column("t_us"), expression=exp.Literal.number(hi))]

    def _matched(self, extra: Any = None) -> exp.Subquery:
        """(SELECT *, the record's segment AS seg FROM records WHERE the decided filter (and `extra`)) AS m."""
        where: list[Any] = [*self._span(), *(s.test for s in self.filter if s.test is not None and s.undecided is None)]
        where += [exp.paren(s.test) for s in self.filter if s.test is not None and s.undecided is not None]
        where.append(exp.Not(this=exp.paren(self.undecided)))
        if extra is not None:
            where.append(extra)
        inner = exp.Select(expressions=[exp.Star(), exp.alias_(self.segments.of_time(lambda: column("t_us")), SEG)])
        inner = inner.from_(exp.to_table(table_name(self.compiled.rule.source)), copy=False)
        return inner.where(exp.and_(*where), copy=False).subquery(MATCHED, copy=False)

    def _ratio_where(self, i: int) -> exp.Expression:
        tests = [s.test for s in self.wheres[i] if s.test is not None]
        return cast(exp.Expression, exp.and_(*tests)) if tests else TRUE

    def aggregate(self) -> exp.Select:
        """Per step and group: n, each distinct field's values (d0, ...), each ratio's hits (h0, ...). Aggregated per
        segment, then (when a step is made of several) summed per step."""
        group = self.compiled.rule.group_by
        seg = exp.column(SEG, MATCHED)
        direct = self.segments.direct
        cols: list[Any] = [exp.alias_(seg, "step" if direct else SEG)]
        cols += [exp.alias_(column(g), f"g{i}") for i, g in enumerate(group)]
        cols.append(exp.alias_(exp.Count(this=exp.Star()), "n"))
        cols += [exp.alias_(self.dialect.distinct_list(column(f)), f"d{i}") for i, f in enumerate(self.distinct)]
        cols += [exp.alias_(exp.Sum(this=exp.Case(ifs=[exp.If(this=self._ratio_where(i), true=exp.Literal.number(1))],
                                                  default=exp.Literal.number(0))), f"h{i}")
                 for i in range(len(self.wheres))]
        per_segment = exp.Select(expressions=cols).from_(self._matched(), copy=False).group_by(
            seg, *(column(g) for g in group), copy=False)
        if direct:
            return per_segment
        # A second level: the segments' aggregates summed per step.
        s = "s"
        rollup = exp.Values(expressions=[exp.Tuple(expressions=[exp.Literal.number(step), exp.Literal.number(k)])
                                         for step, k in self.segments.rollup()],
                            alias=exp.TableAlias(this=exp.to_identifier(STEPS),
                                                 columns=[exp.to_identifier("step"), exp.to_identifier(SEG)]))
        cols = [exp.column("step", STEPS), *(exp.column(f"g{i}", s) for i in range(len(group))),
                exp.alias_(exp.Sum(this=exp.column("n", s)), "n")]
        cols += [exp.alias_(self.dialect.merge_distinct(exp.column(f"d{i}", s)), f"d{i}")
                 for i in range(len(self.distinct))]
        cols += [exp.alias_(exp.Sum(this=exp.column(f"h{i}", s)), f"h{i}") for i in range(len(self.wheres))]
        on = exp.EQ(this=exp.column(SEG, s), expression=exp.column(SEG, STEPS))
        return (exp.Select(expressions=cols).from_(per_segment.subquery(s, copy=False), copy=False)
                .join(rollup, on=on, copy=False)
                .group_by(exp.column("step", STEPS), *(exp.column(f"g{i}", s) for i in range(len(group))), copy=False))

    def evidence(self, groups: Sequence[tuple[int, tuple[Any, ...]]]) -> exp.Select | None:
        """Evidence candidates of the given (step, group key) pairs: seg (a segment label, Segments.held_by), g0..,
        key, t_us, shown fields. Ranked per segment: a step's earliest records (ties included) are among the
        earliest of its segments."""
        n = self.compiled.rule.evidence
        if n <= 0 or not groups:
            return None
        group = self.compiled.rule.group_by
        keys: list[tuple[str, Any]] = [("all", TRUE)]
        for i in range(len(self.wheres)):
            keys += [(f"where{i}", self._ratio_where(i)), (f"not{i}", exp.Not(this=exp.paren(self._ratio_where(i))))]
        # The wanted (segment, group) pairs as a table (a CTE each evidence key's part joins; an OR of them per row
        # would cost rows x pairs); a null group value typed as its column, so the join compares like with like.
        types = ["BOOLEAN" if SOURCES[self.compiled.rule.source].fields[g].type is FieldType.BOOL else "VARCHAR"
                 for g in group]
        pairs = dict.fromkeys((label, key) for step, key in groups for label in self.segments.labels(step))
        rows = [exp.Tuple(expressions=[exp.Literal.number(label), *(
            exp.Cast(this=exp.Null(), to=exp.DataType.build(t)) if v is None else literal(v)
            for v, t in zip(key, types, strict=True))]) for label, key in pairs]
        names = ["w_seg", *(f"w{i}" for i in range(len(group)))]
        wanted = exp.select("*").from_(exp.Values(expressions=rows, alias=exp.TableAlias(
            this=exp.to_identifier(WANTED), columns=[exp.to_identifier(c) for c in names])), copy=False)
        seg = exp.column(SEG, MATCHED)
        parts = []
        for name, test in keys:
            on = exp.and_(exp.EQ(this=seg.copy(), expression=exp.column("w_seg", WANTED)),
                          *(exp.NullSafeEQ(this=column(g), expression=exp.column(f"w{i}", WANTED))
                            for i, g in enumerate(group)))
            part = [exp.alias_(seg.copy(), SEG), *(exp.alias_(column(g), f"g{i}") for i, g in enumerate(group)),
                    exp.alias_(literal(name), "ev"), column("t_us"), *(column(f) for f in self.shown), column(ODD),
                    exp.alias_(exp.Window(this=exp.Anonymous(this="rank"), partition_by=[
                        seg.copy(), *(column(g) for g in group)],
                        order=exp.Order(expressions=[exp.Ordered(this=column("t_us"))])), "r")]
            parts.append(exp.Select(expressions=part).from_(self._matched(test), copy=False)
                         .join(exp.to_table(WANTED), on=on, copy=False))
        union: exp.Expression = parts[0]
        for p in parts[1:]:
            union = exp.union(union, p, distinct=False, copy=False)
        return (exp.select("*").with_(WANTED, as_=wanted, copy=False)
                .from_(exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("c"))), copy=False)
                .where(exp.LTE(this=exp.column("r"), expression=exp.Literal.number(n)), copy=False))

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
