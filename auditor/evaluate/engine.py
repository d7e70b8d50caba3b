"""Streaming evaluation of one compiled rule: counts, distinct values and ratios per group, evidence."""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from auditor.compile.compiler import evidence_fields
from auditor.compile.plan import CompiledRule
from auditor.core.fields import SOURCES
from auditor.core.status import Status
from auditor.evaluate.outcome import Measurement, Outcome, failure_message
from auditor.language.codegen import Gate, compile_all, compile_feed
from auditor.language.expectations import (
    KINDS,
    check,
    evidence_key,
    pressure,
    worst,
)

Projection = Callable[[dict[str, Any]], dict[str, Any]]  # a record -> what evidence shows of it
# One group's aggregates as plain data: count, distinct sets, ratio hits, evidence heaps as (time, shown) lists.
Snapshot = tuple[int, list[set[Any]], list[int], dict[str, list[tuple[int, dict[str, Any]]]]]


@dataclass(slots=True)
class _Group:
    count: int = 0
    distinct: list[set[Any]] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)  # per ratio: matching records that satisfy `where`
    # Evidence: the earliest records, kept as a bounded max-heap of (-time, -seq) so the choice does not
    # depend on the order records arrive in.
    samples: dict[str, list[tuple[int, _Neg, int, dict[str, Any]]]] = field(default_factory=dict)


class Decision(NamedTuple):
    """A rule's groups, each with its measurements, and the violating ones, worst first (RuleEvaluator.decide)."""

    groups: list[tuple[tuple[Any, ...], _Group, list[Measurement]]]
    violating: list[tuple[tuple[Any, ...], _Group, list[Measurement]]]

    def counts(self) -> list[tuple[tuple[Any, ...], int]]:
        """Each violating group's key and record count."""
        return [(key, g.count) for key, g, _ in self.violating]


class RuleEvaluator:
    """Accumulates one rule's measures over a record stream in one pass, in bounded memory per group."""

    def __init__(self, compiled: CompiledRule):
        rule = compiled.rule
        self.compiled = compiled
        self.rule = rule
        self.since_us = compiled.since_us
        self.until_us = compiled.until_us
        self._distinct = [e for e in rule.expectations if e.kind == "distinct"]
        self._ratios = [e for e in rule.expectations if e.kind == "ratio"]
        self._where = [compile_all([(c.field, c.op, c.operand) for c in e.where]) for e in self._ratios]
        # Per ratio: (index, `where` predicate, evidence keys of the records satisfying it and of the others).
        self._checks = [(i, where, f"where{i}", f"not{i}") for i, where in enumerate(self._where)]
        self._distinct_fields = [(i, e.field or "") for i, e in enumerate(self._distinct)]
        self._keep_n = rule.evidence
        order = list(SOURCES[rule.source].fields)
        shown = evidence_fields(rule)
        self._shown = [n for n in order if n in shown]
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self.matched = 0
        self._seq = 0
        self._group_by = rule.group_by
        self._keep = rule.evidence > 0
        # The rule's filter in front of `take`: the runner's router writes it inline with the other rules'
        # (codegen.compile_fanout); `feed` compiles it with the window test when first called.
        self.gate = Gate(tuple((c.field, c.op, c.operand) for c in rule.conditions), self.take)
        self._feed: Callable[[dict[str, Any], int], None] | None = None

    def feed(self, record: dict[str, Any], t_us: int) -> None:
        """Offer one record (with its parsed time) to the rule: counted when inside the window and the filter."""
        if self._feed is None:
            self._feed = compile_feed(self.gate, self.since_us, self.until_us)
        self._feed(record, t_us)

    def take(self, record: dict[str, Any], t_us: int, project: Projection | None = None) -> None:
        """Count one record that is inside the window and passes the filter; `project` shows it as evidence
        (default: `project`; a correlation rule passes one showing both sides of the match)."""
        self.matched += 1
        # The hot path (every matching record): no per-record allocations beyond the group key, and the
        # evidence heaps' cheap exit tested here rather than in a call.
        group_by = self._group_by
        if not group_by:
            key: tuple[Any, ...] = ()
        elif len(group_by) == 1:
            v = record.get(group_by[0])
            key = (v,) if v.__class__ is not list and v.__class__ is not dict else (_hashable(v),)
        else:
            key = tuple(_hashable(record.get(f)) for f in group_by)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(
                distinct=[set() for _ in self._distinct], hits=[0] * len(self._ratios)
            )
        group.count += 1
        if self._distinct:
            for i, name in self._distinct_fields:
                v = record.get(name)
                if v is not None:
                    group.distinct[i].add(v if v.__class__ is not list and v.__class__ is not dict else _hashable(v))
        if self._keep:
            samples, n = group.samples, self._keep_n
            heap = samples.get("all")
            if heap is None or len(heap) < n or t_us <= -heap[0][0]:
                self._sample(group, "all", record, t_us, project)
            for i, where, yes, no in self._checks:
                if where(record):
                    group.hits[i] += 1
                    heap = samples.get(yes)
                    if heap is None or len(heap) < n or t_us <= -heap[0][0]:
                        self._sample(group, yes, record, t_us, project)
                else:
                    heap = samples.get(no)
                    if heap is None or len(heap) < n or t_us <= -heap[0][0]:
                        self._sample(group, no, record, t_us, project)
        else:
            for i, where, _, _ in self._checks:
                if where(record):
                    group.hits[i] += 1

    def absorb(self, key: tuple[Any, ...], count: int, distinct: list[set[Any]], hits: list[int]) -> None:
        """Add one group's aggregates computed elsewhere (a SQL engine, auditor.evaluate.sql) to what was fed; the
        `distinct` sets are the caller's to give (kept as they are for a new group)."""
        self.matched += count
        group = self._groups.get(key)
        if group is None:  # the usual case: an engine returns each group once
            self._groups[key] = _Group(count, distinct, list(hits))
            return
        group.count += count
        for mine, theirs in zip(group.distinct, distinct, strict=True):
            mine.update(theirs)
        group.hits = [a + b for a, b in zip(group.hits, hits, strict=True)]

    def offer_evidence(self, key: tuple[Any, ...], kind: str, record: dict[str, Any], t_us: int) -> None:
        """Offer an evidence candidate of a group already absorbed (`kind`: all, where<i> or not<i>)."""
        self._sample(self._groups[key], kind, record, t_us)

    def project(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record as evidence shows it: every shown field, in the source's order; a field the record lacks is
        null, as a null one is (filters treat the two alike too)."""
        return {f: record.get(f) for f in self._shown}

    def snapshot(self) -> tuple[int, dict[tuple[Any, ...], Snapshot]]:
        """What was fed, as plain data another process can send (auditor.evaluate.parallel): records matched
        and per group its count, distinct sets, ratio hits and evidence (time, shown record) per heap."""
        return self.matched, {key: (g.count, g.distinct, g.hits,
                                    {k: [(-item[0], item[3]) for item in heap] for k, heap in g.samples.items()})
                              for key, g in self._groups.items()}

    def merge(self, snapshot: tuple[int, dict[tuple[Any, ...], Snapshot]]) -> None:
        """Add what another pass over other records was fed (its `snapshot()`): the same aggregates and evidence
        as one pass over both (evidence keeps the earliest records, whatever order they came in)."""
        matched, groups = snapshot
        for key, (count, distinct, hits, samples) in groups.items():
            self.absorb(key, count, distinct, hits)
            group = self._groups[key]
            for k, items in samples.items():
                for t_us, shown in items:
                    self._retain(group, k, t_us, shown)
        self.matched += matched - sum(g[0] for g in groups.values())  # absorb counted the groups' records

    def _sample(self, group: _Group, k: str, record: dict[str, Any], t_us: int,
                project: Projection | None = None) -> None:
        heap = group.samples.get(k)
        if heap is not None and len(heap) >= self.rule.evidence and t_us > -heap[0][0]:
            return  # later than every kept sample: cheap exit for time-ordered streams
        self._retain(group, k, t_us, (project or self.project)(record))

    def _retain(self, group: _Group, k: str, t_us: int, shown: dict[str, Any]) -> None:
        """Keep a record's evidence in the group's heap `k` when it is among the earliest `evidence` of it."""
        heap = group.samples.setdefault(k, [])
        n = self.rule.evidence
        if len(heap) >= n and t_us > -heap[0][0]:
            return
        self._seq += 1
        item = (-t_us, _Neg(shown), -self._seq, shown)
        if len(heap) < n:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)

    def decide(self) -> Decision:
        """Every group measured and the violating ones ordered: what `outcome` words, apart from the evidence (a SQL
        engine reads the evidence of the violating groups after this, auditor.evaluate.sql)."""
        rule = self.rule
        groups = self._groups
        if not rule.group_by and () not in groups:
            groups = {(): _Group(distinct=[set() for _ in self._distinct], hits=[0] * len(self._ratios))}
        if rule.for_each:
            groups = self._declared(groups)
        per_group: list[tuple[tuple[Any, ...], _Group, list[Measurement]]] = []
        for key, group in groups.items():
            per_group.append((key, group, self._measure(key, group)))
        violating = [(k, g, ms) for k, g, ms in per_group if not all(m.ok for m in ms)]
        # The worst group first (its worst measurement's pressure), ties in sorted order, not arrival order.
        violating.sort(key=lambda item: (-_pressure(item[2]), _sort_key(item[0])))
        return Decision(per_group, violating)

    def outcome(self, decision: Decision | None = None) -> Outcome:
        """Decide pass/fail from what was fed (`decision`: this evaluator's `decide()` since the last record)."""
        per_group, violating = decision or self.decide()
        if violating:
            passing = sorted((x for x in per_group if all(m.ok for m in x[2])), key=lambda x: _sort_key(x[0]))
            measurements = [m for _, _, ms in violating + passing for m in ms]
            evidence = [rec for _, g, ms in violating for rec in self._evidence(g, ms)]
            top = worst(violating[0][2], Measurement.bounds) or violating[0][2][0]
            message = self._describe(top, len(violating))
            counts = tuple((ms[0].group if ms else None, g.count) for _, g, ms in violating)
            return Outcome(Status.FAIL, message, tuple(measurements), len(violating), tuple(evidence), self.matched,
                           counts)
        # Ties between groups go to the first in sorted order, not arrival order: same data, same answer.
        measurements = self._closest(sorted(per_group, key=lambda x: _sort_key(x[0])))
        summary = "; ".join(self._text(m) for m in measurements)
        return Outcome(Status.PASS, f"passed: {summary}", tuple(measurements), 0, (), self.matched)

    def _declared(self, groups: dict[tuple[Any, ...], _Group]) -> dict[tuple[Any, ...], _Group]:
        """`for_each`: every listed value (combination) is a group; one without records has count 0."""
        rule = self.rule
        positions = [rule.group_by.index(name) for name, _ in rule.for_each]
        present = {tuple(key[i] for i in positions) for key in groups}
        out = dict(groups)
        for combo in itertools.product(*(values for _, values in rule.for_each)):
            wanted = tuple(_hashable(v) for v in combo)
            if wanted in present:
                continue
            key: list[Any] = [None] * len(rule.group_by)
            for i, value in zip(positions, wanted, strict=True):
                key[i] = value
            out[tuple(key)] = _Group(distinct=[set() for _ in self._distinct], hits=[0] * len(self._ratios))
        return out

    def _measure(self, key: tuple[Any, ...], group: _Group) -> list[Measurement]:
        rule = self.rule
        shown_group = dict(zip(rule.group_by, key, strict=True)) if rule.group_by else None
        out = []
        d = r = 0
        for e in rule.expectations:
            kind = KINDS[e.kind]
            if kind.keeps == "values":
                value = kind.measure(group.count, values=len(group.distinct[d]))
                d += 1
            elif kind.keeps == "hits":
                value = kind.measure(group.count, hits=group.hits[r])
                r += 1
            else:
                value = kind.measure(group.count)
            out.append(Measurement(e.kind, shown_group, value, check(value, e.min, e.max), e.field, e.min, e.max))
        return out

    def _closest(self, per_group: list[tuple[tuple[Any, ...], _Group, list[Measurement]]]) -> list[Measurement]:
        """For a passing rule: per expectation, the group nearest its bound (the whole rule if ungrouped)."""
        out = []
        for i, e in enumerate(self.rule.expectations):
            candidates = [ms[i] for _, _, ms in per_group if ms[i].value is not None] or [
                ms[i] for _, _, ms in per_group
            ]
            if not candidates:
                value = None if e.kind == "ratio" else 0
                out.append(Measurement(e.kind, None, value, True, e.field, e.min, e.max))
                continue
            # The group nearest its bound (the first of equals, in sorted order).
            out.append(max(candidates, key=lambda m: pressure(m.value, m.min, m.max)))
        return out

    def _evidence(self, group: _Group, ms: list[Measurement]) -> list[dict[str, Any]]:
        key = "all"
        r = 0
        for m in ms:
            if KINDS[m.expectation].keeps == "hits":
                if not m.ok:
                    key = evidence_key(r, m.value, m.max)
                    break
                r += 1
        heap = group.samples.get(key, [])
        return [shown for *_, shown in sorted(heap, reverse=True)]

    def _text(self, m: Measurement) -> str:
        return m.text()

    def _describe(self, worst: Measurement, violations: int) -> str:
        return failure_message(worst, violations, bool(self.rule.group_by))


class _Neg:
    """Inverts string order so the max-heap keeps the lexicographically smallest record on ties.

    The record's text (canonical JSON) is made only when a tie with an equal time needs it: rarely.
    """

    __slots__ = ("_s", "shown")

    def __init__(self, shown: dict[str, Any]):
        self.shown = shown
        self._s: str | None = None

    @property
    def s(self) -> str:
        """The record as canonical JSON text."""
        if self._s is None:
            self._s = json.dumps(self.shown, sort_keys=True, default=str)
        return self._s

    def __lt__(self, other: _Neg) -> bool:
        return self.s > other.s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Neg) and self.s == other.s

    def __hash__(self) -> int:
        return hash(self.s)


def _hashable(value: Any) -> Any:
    if value.__class__ is list or value.__class__ is dict:
        return json.dumps(value, sort_keys=True)
    return value


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[int, str, str], ...]:
    """Groups in a total order, whatever order their records came in: by text, a null value first, values
    with equal text (1 and "1", true and "True") by type."""
    return tuple((0, "", "") if v is None else (1, str(v), type(v).__name__) for v in key)


def _pressure(ms: list[Measurement]) -> float:
    """How far past its bound a group's worst measurement is (for ordering violating groups)."""
    top = worst(ms, Measurement.bounds)
    return pressure(top.value, top.min, top.max) if top is not None else float("-inf")
