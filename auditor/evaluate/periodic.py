"""Periodic audits: every rule evaluated at each step of a period, in one pass over its records.

- **Compile** (`compile_plan(..., period=)`): each rule's window is resolved at every step's reference time
  T_i; its fetch covers [since_1, until_n] (the period plus the longest window before it), so each fetch is
  made once for the whole period and the usual sharing, serving and splitting apply unchanged.
- **Evaluate** (`StepEvaluator`): one accumulator per step (a `RuleEvaluator` bound to that step's window).
  A record is matched against the rule's filter once, then fed only to the steps whose window
  [since_i, until_i) holds its time: since_i and until_i never decrease with i, so those steps are a range
  found with two bisects, looked up again only when a record leaves the stretch of time between two window
  bounds where the same steps are open. A record exactly at T_i is outside step i's window [T_i - D, T_i)
  and inside step i+1's. Cost: records x the steps each falls in (about window / step); memory: the groups
  and evidence of every step.
- **Finish** (`auditor.decide.period.finish`): waivers are applied per step (expiry compared with each T_i,
  as a single run at T_i would); a rule's status is its worst step (error > fail > waived > pass);
  `timeline` lists every step; measurements, evidence and waiver come from the worst step, and the message names it.

Ties between equally bad steps go to the one with the most violating groups, then to the one furthest
past (or, for passing rules, nearest to) its bound, then to the earliest.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any, Protocol

from auditor.compile.plan import CompiledRule
from auditor.core.status import Status
from auditor.core.timeutil import US
from auditor.evaluate.correlate import CorrelationEvaluator
from auditor.evaluate.engine import Decision, RuleEvaluator
from auditor.evaluate.outcome import Measurement, Outcome
from auditor.language.codegen import Feed, Gate, compile_feed
from auditor.language.expectations import pressure, worst

DAY_US = 86400 * US
_FAR = 1 << 62  # beyond any timestamp in microseconds


class StepEvaluator:
    """One rule over every step of a period: a RuleEvaluator per step, fed in the same single pass.

    Offers the RuleEvaluator interface the runner uses (`compiled`, `rule`, `since_us`/`until_us` = the
    span of all steps' windows, `feed`, `outcome`); the outcome carries the per-step outcomes in `steps`.
    """

    def __init__(self, compiled: CompiledRule):
        self.compiled = compiled
        self.rule = compiled.rule
        self.since_us = compiled.since_us
        self.until_us = compiled.until_us
        windows = compiled.windows
        self._sinces = [since for _, since, _ in windows]
        self._untils = [until for _, _, until in windows]
        self._steps = [RuleEvaluator(dataclasses.replace(compiled, since_us=since, until_us=until, windows=()))
                       for _, since, until in windows]
        self._takes = [e.take for e in self._steps]  # the filter is tested once, by the gate, for all steps
        # Between two consecutive window bounds the same steps are open: records (mostly in time order)
        # look the steps up only when they leave the current segment [_lo, _hi).
        self._points = sorted(set(self._sinces) | set(self._untils))
        self._lo, self._hi = 1, 0
        self._open: tuple[Feed, ...] = ()
        self.matched = 0  # records matching the filter inside any step's window
        # The rule's filter in front of the steps (written inline by the runner's router, like a rule's).
        self.gate = Gate(tuple((c.field, c.op, c.operand) for c in self.rule.conditions), self._take)
        self._feed: Feed | None = None

    @property
    def step_evaluators(self) -> list[RuleEvaluator]:
        """Each step's accumulator, in step order (a SQL engine fills them directly: auditor.evaluate.sql)."""
        return self._steps

    def _segment(self, t_us: int) -> None:
        first = bisect_right(self._untils, t_us)  # steps before it ended at or before t
        after = bisect_right(self._sinces, t_us)  # steps from here on start after t
        k = bisect_right(self._points, t_us)
        self._lo = self._points[k - 1] if k else -_FAR
        self._hi = self._points[k] if k < len(self._points) else _FAR
        self._open = tuple(self._takes[first:after])

    def feed(self, record: dict[str, Any], t_us: int) -> None:
        """Offer one record to the steps whose window holds its time."""
        if self._feed is None:
            self._feed = compile_feed(self.gate, self.since_us, self.until_us)
        self._feed(record, t_us)

    def _take(self, record: dict[str, Any], t_us: int) -> None:
        """A record inside the span that passes the filter: counted by the steps whose window holds its time."""
        if not self._lo <= t_us < self._hi:
            self._segment(t_us)
        if not self._open:
            return
        self.matched += 1
        for take in self._open:
            take(record, t_us)

    def snapshot(self) -> tuple[int, list[Any]]:
        """What was fed, as plain data (RuleEvaluator.snapshot per step)."""
        return self.matched, [e.snapshot() for e in self._steps]

    def merge(self, snapshot: tuple[int, list[Any]]) -> None:
        """Add what another pass over other records was fed (its `snapshot()`)."""
        matched, steps = snapshot
        self.matched += matched
        for e, step in zip(self._steps, steps, strict=True):
            e.merge(step)

    def outcome(self, decisions: Sequence[Decision] | None = None) -> Outcome:
        """The worst step's outcome (before waivers), with every step's outcome in `steps` (`decisions`: each step's
        RuleEvaluator.decide() since the last record)."""
        decided: Sequence[Decision | None] = decisions if decisions is not None else [None] * len(self._steps)
        steps = tuple(e.outcome(d) for e, d in zip(self._steps, decided, strict=True))
        return dataclasses.replace(steps[worst_step(steps)], matched=self.matched, steps=steps)


def evaluator(compiled: CompiledRule) -> RuleEvaluator | StepEvaluator:
    """The evaluator for a compiled rule: per step when it was compiled for a period."""
    return StepEvaluator(compiled) if compiled.windows else RuleEvaluator(compiled)


class Step(Protocol):
    """What the worst-step choice reads of a step's outcome or result."""

    @property
    def status(self) -> Status: ...
    @property
    def violations(self) -> int: ...
    @property
    def measurements(self) -> tuple[Measurement, ...]: ...


def worst_step(steps: Sequence[Step]) -> int:
    """The index of the worst step: the worst status, then the most violating groups, then the highest pressure
    of its worst measurement (auditor.language.expectations), then the earliest."""
    return max(range(len(steps)), key=lambda i: _badness(steps[i], i))


def _badness(step: Step, i: int) -> tuple[int, int, float, int]:
    top = worst(step.measurements, Measurement.bounds)
    return step.status.rank, step.violations, pressure(top.value, top.min, top.max) if top else float("-inf"), -i


class StepCorrelationEvaluator(CorrelationEvaluator):
    """A correlation rule at every step: one `first` index over the span, one `then` accumulator per step.

    At step i a `then` record at t matches when a `first` record with equal join values lies in
    [since_i, t) (and within `within` of t). The latest such record before t over the whole span is the one
    a single run at T_i would pair it with, whenever it is inside step i's window; so each `then` record is
    looked up once and fed to the steps whose window holds both it and its partner.
    """

    def __init__(self, compiled: CompiledRule):
        super().__init__(compiled)
        windows = compiled.windows
        self._sinces = [since for _, since, _ in windows]
        self._untils = [until for _, _, until in windows]
        then = self._then.compiled
        self._step_thens = [RuleEvaluator(dataclasses.replace(then, since_us=since, until_us=until, windows=()))
                            for _, since, until in windows]
        self._first_times: list[int] = []

    def feed_first(self, record: dict[str, Any], t_us: int) -> None:
        """Offer one record of the `first` side's fetch (indexed once for all steps)."""
        before = self.first_matched
        super().feed_first(record, t_us)
        if self.first_matched != before:
            self._first_times.append(t_us)

    def _match(self, record: dict[str, Any], t_us: int, key: tuple[Any, ...]) -> None:
        partner = self._partner(t_us, key)
        if partner is None:
            return
        shown, first_us = partner
        lo = bisect_right(self._untils, t_us)
        hi = min(bisect_right(self._sinces, t_us), bisect_right(self._sinces, first_us))
        if lo >= hi:
            return
        project = self.pair(shown, first_us, t_us)
        with self._feeding:
            for step in self._step_thens[lo:hi]:  # each step's window holds both t_us and first_us
                step.take(record, t_us, project)

    def snapshot_side(self, side: str) -> Any:
        """What one side was fed, as plain data (CorrelationEvaluator.snapshot_side, per step)."""
        if side == "first":
            return super().snapshot_side(side), self._first_times
        return self._buffer, [then.snapshot() for then in self._step_thens]

    def merge_side(self, side: str, snapshot: Any) -> None:
        """Add what one side was fed by another pass over other records."""
        if side == "first":
            mine, times = snapshot
            super().merge_side(side, mine)
            self._first_times.extend(times)
            return
        buffered, steps = snapshot
        self._buffer.extend(buffered)
        for then, step in zip(self._step_thens, steps, strict=True):
            then.merge(step)

    def clear_side(self, side: str) -> None:
        """Forget what one side was fed (CorrelationEvaluator.clear_side), per step."""
        super().clear_side(side)
        if side == "first":
            self._first_times = []
        else:
            self._step_thens = [RuleEvaluator(e.compiled) for e in self._step_thens]

    def outcome(self) -> Outcome:
        """Every step's outcome (each as a single run at T_i words it); the worst one on top."""
        self.close_first()
        self._first_times.sort()
        steps = []
        for (_, since, until), then in zip(self.compiled.windows, self._step_thens, strict=True):
            # The single-run outcome, pointed at this step's accumulator and `first` count.
            self._then = then
            self.first_matched = bisect_left(self._first_times, until) - bisect_left(self._first_times, since)
            steps.append(super().outcome())
        return dataclasses.replace(steps[worst_step(steps)], steps=tuple(steps))


def correlation_evaluator(compiled: CompiledRule) -> CorrelationEvaluator:
    """The evaluator for a compiled correlation rule: per step when it was compiled for a period."""
    return StepCorrelationEvaluator(compiled) if compiled.windows else CorrelationEvaluator(compiled)
