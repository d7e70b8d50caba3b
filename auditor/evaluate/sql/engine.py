"""Evaluate compiled rules on a SQL engine; auditor's own decision code makes every outcome.

The engine computes what is expensive (filtering and aggregating millions of rows); the Python
accumulators (auditor.evaluate.engine.RuleEvaluator, one per step) receive its group aggregates, the rows it
left undecided and the evidence candidates of the violating groups, and decide statuses, messages,
measurements and evidence order exactly as a Python pass over the same records would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from auditor.compile.plan import CompiledRule
from auditor.core.fields import SOURCES, FieldType
from auditor.core.timeutil import format_time
from auditor.evaluate.engine import Decision, RuleEvaluator
from auditor.evaluate.guard import TimeoutGuard, guard
from auditor.evaluate.outcome import Outcome
from auditor.evaluate.periodic import StepEvaluator, evaluator
from auditor.evaluate.sql.dialects import Dialect
from auditor.evaluate.sql.query import RuleSql, compile_rule
from auditor.sources.relation import EXTRAS, ODD

# execute(sql) -> (column names, rows): the one thing asked of an engine's connection.
# Rows come as a list: evidence reads them twice (each row beside the record made of it).
Execute = Callable[[str], tuple[list[str], Sequence[Sequence[Any]]]]


def records_of(names: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]], fields: Iterable[str],
               time_field: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows (in batches) as (t_us, the record Python reads): its non-null `fields`, with the values of the wrong
    type and the nulls the relation keeps in `_odd` put back (auditor.sources.relation); a time given as an epoch
    number (null in the relation) written from `t_us` as the Python reader does."""
    wanted = set(fields)
    at = [(i, n) for i, n in enumerate(names) if n in wanted]
    t_at, odd_at = names.index("t_us"), names.index(ODD) if ODD in names else None
    time_at = names.index(time_field) if time_field in wanted else None
    for rows in batches:
        for row in rows:
            record = {n: row[i] for i, n in at if row[i] is not None}
            if odd_at is not None and row[odd_at] is not None:
                record.update((f, v) for f, v in json.loads(row[odd_at]).items() if f in wanted)
            if time_at is not None and row[time_at] is None:
                record[time_field] = format_time(row[t_at])
            yield row[t_at], record


def evaluate_rule(compiled: CompiledRule, dialect: Dialect, execute: Execute) -> tuple[Outcome, int]:
    """One non-correlation rule's outcome (per step for a periodic rule), and the rows read into Python."""
    rs = compile_rule(compiled, dialect)
    ev = evaluator(compiled)
    steps: list[RuleEvaluator] = ev.step_evaluators if isinstance(ev, StepEvaluator) else [ev]
    returned = 0
    residual = rs.residual()
    if residual is not None:
        names, rows = execute(residual.sql(dialect.sqlglot, copy=False))
        fields = [n for n in names if n != "t_us" and n not in EXTRAS]
        guarded = guard(ev)  # a Python regex on these rows runs under the time bound of a Python pass
        for t_us, record in records_of(names, [rows], fields, SOURCES[compiled.rule.source].time_field):
            guarded.feed(record, t_us)
            returned += 1
        if isinstance(guarded, TimeoutGuard) and guarded.stopped is not None:
            return guarded.outcome(), returned
    _absorb(rs, steps, execute)
    decisions = [step.decide() for step in steps]  # once: the evidence is read for them, then they are worded
    returned += _evidence(rs, steps, decisions, execute)
    outcome = ev.outcome(decisions) if isinstance(ev, StepEvaluator) else ev.outcome(decisions[0])
    return outcome, returned


def _absorb(rs: RuleSql, steps: list[RuleEvaluator], execute: Execute) -> None:
    _, rows = execute(rs.aggregate().sql(rs.dialect.sqlglot, copy=False))
    width = len(rs.compiled.rule.group_by)
    nd, nh = len(rs.distinct), len(rs.wheres)
    for row in rows:
        key = tuple(row[1:1 + width])
        at = 1 + width
        count = int(row[at])
        distinct = [set(row[at + 1 + i] or ()) for i in range(nd)]
        hits = [int(row[at + 1 + nd + i] or 0) for i in range(nh)]
        steps[int(row[0])].absorb(key, count, distinct, hits)


def _evidence(rs: RuleSql, steps: list[RuleEvaluator], decisions: list[Decision], execute: Execute) -> int:
    """Evidence candidates of the violating groups, offered to their accumulators; how many rows were read."""
    group_by = rs.compiled.rule.group_by
    fields = SOURCES[rs.compiled.rule.source].fields
    kinds = [bool if fields[g].type is FieldType.BOOL else str for g in group_by]
    wanted: list[tuple[int, tuple[Any, ...]]] = []
    for i, decision in enumerate(decisions):
        for key, count in decision.counts():
            # A declared (for_each) group without records has no evidence; a group of a value of the wrong type
            # only has rows Python decided (and offered as evidence itself).
            if count and all(v is None or v.__class__ is k for v, k in zip(key, kinds, strict=True)):
                wanted.append((i, key))
    query = rs.evidence(wanted)
    if query is None:
        return 0
    names, rows = execute(query.sql(rs.dialect.sqlglot, copy=False))
    width = len(group_by)
    # A row of a segment is offered to each step made of that segment that wants its group.
    wanting: dict[tuple[int, tuple[Any, ...]], list[int]] = {}
    for i, key in wanted:
        for label in rs.segments.labels(i):
            wanting.setdefault((label, key), []).append(i)
    read = 0
    records = records_of(names, [rows], rs.shown, SOURCES[rs.compiled.rule.source].time_field)
    for row, (_, record) in zip(rows, records, strict=True):
        key = tuple(row[1:1 + width])
        for i in wanting[(int(row[0]), key)]:
            steps[i].offer_evidence(key, row[1 + width], record, row[2 + width])
        read += 1
    return read
