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
- **Finish** (`finish`): waivers are applied per step (expiry compared with each T_i, as a single run at
  T_i would); a rule's status is its worst step (error > fail > waived > pass); `timeline` lists every step;
  measurements, evidence and waiver come from the worst step, and the message names it.

Ties between equally bad steps go to the one with the most violating groups, then to the one furthest
past (or, for passing rules, nearest to) its bound, then to the earliest.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from auditor.conditions import compile_all
from auditor.correlate import CorrelationEvaluator
from auditor.evaluate import Measurement, Outcome, RuleEvaluator
from auditor.model import Waiver
from auditor.period import Period, zone
from auditor.plan import CompiledRule, Plan
from auditor.results import RuleResult, RunResult
from auditor.timeutil import US, format_time
from auditor.waivers import apply_waivers

DAY_US = 86400 * US
DEFAULT_RETENTION_DAYS = 30
_RANK = {"pass": 0, "waived": 1, "fail": 2, "error": 3}
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
        self._match = compile_all([(c.field, c.op, c.operand) for c in self.rule.conditions])
        self._steps = [
            RuleEvaluator(dataclasses.replace(compiled, since_us=since, until_us=until, windows=()), prefiltered=True)
            for _, since, until in windows
        ]
        self._feeds = [e.feed for e in self._steps]
        # Between two consecutive window bounds the same steps are open: records (mostly in time order)
        # look the steps up only when they leave the current segment [_lo, _hi).
        self._points = sorted(set(self._sinces) | set(self._untils))
        self._lo, self._hi, self._open = 1, 0, ()
        self.matched = 0  # records matching the filter inside any step's window

    def _segment(self, t_us: int) -> None:
        first = bisect_right(self._untils, t_us)  # steps before it ended at or before t
        after = bisect_right(self._sinces, t_us)  # steps from here on start after t
        k = bisect_right(self._points, t_us)
        self._lo = self._points[k - 1] if k else -_FAR
        self._hi = self._points[k] if k < len(self._points) else _FAR
        self._open = tuple(self._feeds[first:after])

    def feed(self, record: dict[str, Any], t_us: int) -> None:
        """Offer one record to the steps whose window holds its time."""
        if not self._lo <= t_us < self._hi:
            self._segment(t_us)
        if not self._open or not self._match(record):
            return
        self.matched += 1
        for feed in self._open:
            feed(record, t_us)

    def outcome(self) -> Outcome:
        """The worst step's outcome (before waivers), with every step's outcome in `steps`."""
        steps = tuple(e.outcome() for e in self._steps)
        worst = max(range(len(steps)), key=lambda i: _badness(steps[i].status, steps[i].violations,
                                                              steps[i].measurements, i))
        return dataclasses.replace(steps[worst], matched=self.matched, steps=steps)


def evaluator(compiled: CompiledRule) -> RuleEvaluator | StepEvaluator:
    """The evaluator for a compiled rule: per step when it was compiled for a period."""
    return StepEvaluator(compiled) if compiled.windows else RuleEvaluator(compiled)


def finish(run: RunResult, plan: Plan, waivers: Sequence[Waiver] | None, *,
           retention_days: int = DEFAULT_RETENTION_DAYS, now_us: int | None = None) -> RunResult:
    """Turn per-step outcomes into results: waivers per step, worst step, timeline, period, warnings.

    `waivers` is None when no waivers file is in effect (then no waiver states are reported).
    """
    period = plan.period
    if period is None:
        raise ValueError("finish() is for periodic plans")
    n = len(period.steps)
    per_step = [[_step_result(r, i) for r in run.results] for i in range(n)]
    uses: list[tuple[dict[str, Any], ...]] = []
    if waivers is not None:
        for i, t_us in enumerate(period.steps):
            step_run = dataclasses.replace(run, reference_us=t_us, results=tuple(per_step[i]), warnings=(),
                                           waivers=None)
            waived = apply_waivers(step_run, waivers)
            per_step[i] = list(waived.results)
            uses.append(waived.waivers or ())
    results = tuple(_combine(r, [per_step[i][j] for i in range(n)], period) for j, r in enumerate(run.results))
    warnings = list(run.warnings)
    entries = None
    if waivers is not None:
        entries, waiver_warnings = _combine_waivers(waivers, uses, period)
        warnings.extend(waiver_warnings)
    if run.source == "api":
        warning = retention_warning(plan, retention_days, now_us)
        if warning:
            warnings.insert(0, warning)
    return dataclasses.replace(run, results=results, warnings=tuple(warnings), waivers=entries,
                               period=period.to_json())


def retention_warning(plan: Plan, retention_days: int = DEFAULT_RETENTION_DAYS,
                      now_us: int | None = None) -> str | None:
    """A warning when a periodic plan reads further back than the API keeps logs, else None."""
    if plan.period is None or not plan.rules:
        return None
    if now_us is None:
        now_us = int(datetime.now(UTC).timestamp()) * US
    earliest = min(r.since_us for r in plan.rules)
    kept_from = now_us - retention_days * DAY_US
    if earliest >= kept_from:
        return None
    return (f"period {plan.period.label} reads logs back to {format_time(earliest)}, but the API keeps only "
            f"{retention_days} days (from about {format_time(kept_from)}): earlier steps would see missing "
            "records and may pass wrongly; export the logs (e.g. Logpush) and run with --data instead")


def period_mismatch(document: dict[str, Any], period: Period) -> str | None:
    """For `report --period`: why a saved results document is not of this period, or None when it is."""
    saved = document.get("period")
    if not saved:
        return (f"the results are of a single run at {document.get('reference_time')}, not of a period; "
                "leave out --period, or run with --period to get a timeline")
    wanted = period.to_json()
    keys = ("start", "end", "step", "steps")
    if any(saved.get(k) != wanted[k] for k in keys):
        return (f"the results cover period {saved.get('label')} ({saved.get('tz')}, {saved.get('steps')} steps of "
                f"{saved.get('step')}: {saved.get('start')} .. {saved.get('end')}), not {period.label} "
                f"({period.tz}, {wanted['steps']} steps of {period.step}: {wanted['start']} .. {wanted['end']})")
    return None


# ---- per step ------------------------------------------------------------------------------------------


def _step_result(result: RuleResult, i: int) -> RuleResult:
    """Rule result at step i, before waivers (a whole-rule error is an error at every step)."""
    _, since, until = result.compiled.windows[i]
    compiled = dataclasses.replace(result.compiled, since_us=since, until_us=until, windows=())
    if not result.steps:
        return dataclasses.replace(result, compiled=compiled, timeline=None)
    o = result.steps[i]
    return dataclasses.replace(result, compiled=compiled, status=o.status, message=o.message,
                               measurements=o.measurements, violations=o.violations, evidence=o.evidence,
                               groups=o.groups, waiver=None, steps=(), timeline=None)


def _combine(result: RuleResult, steps: list[RuleResult], period: Period) -> RuleResult:
    """The rule's result over the period: its worst step, with the timeline of all steps."""
    timeline = tuple({"at": format_time(t), "status": s.status, "violations": s.violations}
                     for t, s in zip(period.steps, steps, strict=True))
    if not result.steps:  # the rule could not be evaluated at all (fetch or data error)
        return dataclasses.replace(result, timeline=timeline)
    worst = max(range(len(steps)), key=lambda i: _badness(steps[i].status, steps[i].violations,
                                                          steps[i].measurements, i))
    chosen = steps[worst]
    which = "closest" if chosen.status == "pass" else "worst"
    message = f"{_tally([s.status for s in steps])}; {which} at {_local(period, period.steps[worst])}: " \
              f"{chosen.message.removeprefix('passed: ')}"
    return dataclasses.replace(chosen, compiled=result.compiled, message=message, timeline=timeline, steps=())


def _badness(status: str, violations: int, measurements: Sequence[Measurement], i: int) -> tuple[int, int, float, int]:
    return _RANK[status], violations, _pressure(measurements), -i


def _pressure(measurements: Sequence[Measurement]) -> float:
    """How far the measurements are past their bounds (negative: how close to them) relative to the bound."""
    worst = float("-inf")
    for m in measurements:
        if m.value is None:
            continue
        if m.max is not None:
            worst = max(worst, (m.value - m.max) / (abs(m.max) or 1))
        if m.min is not None:
            worst = max(worst, (m.min - m.value) / (abs(m.min) or 1))
    return worst


def _tally(statuses: list[str]) -> str:
    n = len(statuses)
    fail, waived = statuses.count("fail"), statuses.count("waived")
    if fail:
        return f"failed at {fail} of {n} steps" + (f" ({waived} more waived)" if waived else "")
    if waived:
        return f"waived at {waived} of {n} steps, passed at the rest"
    return f"passed at all {n} steps"


def _local(period: Period, t_us: int) -> str:
    """A step's time for messages: RFC 3339 in UTC, or with the local offset of the period's zone."""
    if period.tz == "UTC":
        return format_time(t_us)
    return datetime.fromtimestamp(t_us // US, zone(period.tz)).isoformat()


# ---- waivers over the period -----------------------------------------------------------------------------


def _label(waiver: Waiver) -> str:
    parts = [str(v) for _, v in waiver.match]
    if waiver.ticket:
        parts.append(waiver.ticket)
    return f"waiver for {waiver.rule}" + (f" ({', '.join(parts)})" if parts else "")


def _combine_waivers(waivers: Sequence[Waiver], uses: list[tuple[dict[str, Any], ...]],
                     period: Period) -> tuple[tuple[dict[str, Any], ...], list[str]]:
    """One entry per waiver over all steps, and the warnings (expired, expiring inside the period, stale).

    State: expired when expired at every step; else the best state among the steps it was valid at
    (applied > partial > unused > not_run). Records and groups: the most it covered at any one step
    (steps' windows overlap, so a sum would count records twice).
    """
    entries: list[dict[str, Any]] = []
    warnings: list[str] = []
    order = ("applied", "partial", "unused", "not_run")
    for j, waiver in enumerate(waivers):
        per_step = [use[j] for use in uses]
        live = [e for e in per_step if e["state"] != "expired"]
        entry = dict(per_step[-1])
        if not live:
            entry["state"] = "expired"
            warnings.append(f"{_label(waiver)} expired {waiver.expires} and no longer applies")
        else:
            entry["state"] = next(s for s in order if any(e["state"] == s for e in live))
            if len(live) < len(per_step):
                first = next(t for t, e in zip(period.steps, per_step, strict=True) if e["state"] == "expired")
                warnings.append(f"{_label(waiver)} expired {waiver.expires}, within the period: it does not "
                                f"apply from the step at {_local(period, first)} on")
            if entry["state"] == "unused":
                warnings.append(f"{_label(waiver)} matched nothing in this period: stale exception?")
        entry["records"] = max(e["records"] for e in per_step)
        entry["groups"] = max(e["groups"] for e in per_step)
        entries.append(entry)
    return tuple(entries), warnings


# ---- correlation rules over a period -----------------------------------------------------------------------


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
        self._step_thens = [type(self._then)(dataclasses.replace(then, since_us=since, until_us=until, windows=()),
                                             self) for _, since, until in windows]
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
        with self._feeding:
            self.partner = (shown, first_us, t_us)
            for step in self._step_thens[lo:hi]:
                step.feed(record, t_us)

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
        worst = max(range(len(steps)), key=lambda i: _badness(steps[i].status, steps[i].violations,
                                                              steps[i].measurements, i))
        return dataclasses.replace(steps[worst], steps=tuple(steps))


def correlation_evaluator(compiled: CompiledRule) -> CorrelationEvaluator:
    """The evaluator for a compiled correlation rule: per step when it was compiled for a period."""
    return StepCorrelationEvaluator(compiled) if compiled.windows else CorrelationEvaluator(compiled)
