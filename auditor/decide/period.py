"""Periodic audits, decided: waivers per step, a rule's worst step, its timeline (see auditor.evaluate.periodic)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from auditor.compile.plan import Plan
from auditor.core.decisions import TimelineStep, WaiverState, WaiverUse
from auditor.core.model import Config, Waiver
from auditor.core.period import Period, zone
from auditor.core.status import Status
from auditor.core.timeutil import US, format_time
from auditor.decide.waivers import apply_waivers, label
from auditor.evaluate.periodic import worst_step
from auditor.evaluate.results import RuleResult, RunResult

DAY_US = 86400 * US


def finish(run: RunResult, plan: Plan, waivers: Sequence[Waiver] | None) -> RunResult:
    """Turn per-step outcomes into results: waivers per step, worst step, timeline, period, warnings.
    (Over the API, steps before its retention are said once per rule before the run: decide.coverage.)

    `waivers` is None when no waivers file is in effect (then no waiver states are reported).
    """
    period = plan.period
    if period is None:
        raise ValueError("finish() is for periodic plans")
    n = len(period.steps)
    per_step = [[_step_result(r, i) for r in run.results] for i in range(n)]
    uses: list[tuple[WaiverUse, ...]] = []
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
    return dataclasses.replace(run, results=results, warnings=tuple(warnings), waivers=entries, period=period)


def retention_warning(plan: Plan, retention_days: int = Config.retention_days,
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
    no_data = result.coverage.no_data_steps if result.coverage is not None else frozenset()
    timeline = tuple(TimelineStep(t, s.status, s.violations, i in no_data)
                     for i, (t, s) in enumerate(zip(period.steps, steps, strict=True)))
    if not result.steps:  # the rule could not be evaluated at all (fetch or data error)
        return dataclasses.replace(result, timeline=timeline)
    worst = worst_step(steps)
    chosen = steps[worst]
    which = "closest" if chosen.status is Status.PASS else "worst"
    message = f"{_tally([s.status for s in steps])}; {which} at {_local(period, period.steps[worst])}: " \
              f"{chosen.message.removeprefix('passed: ')}"
    return dataclasses.replace(chosen, compiled=result.compiled, message=message, timeline=timeline, steps=())


def _tally(statuses: list[Status]) -> str:
    n = len(statuses)
    fail, waived, error = statuses.count(Status.FAIL), statuses.count(Status.WAIVED), statuses.count(Status.ERROR)
    steps = f"{n} step{'s' if n != 1 else ''}"
    # A step is `error` only when data does not cover its window (auditor.decide.coverage).
    undecided = f"no data at {error} of {steps}" if error else ""
    if fail:
        decided = f"failed at {fail} of {steps}" + (f" ({waived} more waived)" if waived else "")
    elif waived:
        decided = f"waived at {waived} of {steps}, passed at the rest"
    else:
        everywhere = f"passed at all {n} steps" if n != 1 else "passed at its only step"
        decided = "" if error == n else ("passed at the rest" if error else everywhere)
    return "; ".join(part for part in (undecided, decided) if part)


def _local(period: Period, t_us: int) -> str:
    """A step's time for messages: RFC 3339 in UTC, or with the local offset of the period's zone."""
    if period.tz == "UTC":
        return format_time(t_us)
    return datetime.fromtimestamp(t_us // US, zone(period.tz)).isoformat()


# ---- waivers over the period -----------------------------------------------------------------------------


def _combine_waivers(waivers: Sequence[Waiver], uses: list[tuple[WaiverUse, ...]],
                     period: Period) -> tuple[tuple[WaiverUse, ...], list[str]]:
    """One entry per waiver over all steps, and the warnings (expired, expiring inside the period, stale).

    State: expired when expired at every step; else the best state among the steps it was valid at
    (applied > partial > unused > not_run). Records and groups: the most it covered at any one step
    (steps' windows overlap, so a sum would count records twice).
    """
    entries: list[WaiverUse] = []
    warnings: list[str] = []
    order = list(WaiverState)  # applied, partial, unused, not_run: the best state first
    for j, waiver in enumerate(waivers):
        per_step = [use[j] for use in uses]
        live = [e for e in per_step if e.state is not WaiverState.EXPIRED]
        if not live:
            state = WaiverState.EXPIRED
            warnings.append(f"{label(waiver)} expired {waiver.expires} and no longer applies")
        else:
            state = next(s for s in order if any(e.state is s for e in live))
            if len(live) < len(per_step):
                first = next(t for t, e in zip(period.steps, per_step, strict=True)
                             if e.state is WaiverState.EXPIRED)
                warnings.append(f"{label(waiver)} expired {waiver.expires}, within the period: it does not "
                                f"apply from the step at {_local(period, first)} on")
            if state is WaiverState.UNUSED:
                warnings.append(f"{label(waiver)} matched nothing in this period: stale exception?")
        entries.append(WaiverUse(waiver, state, max(e.records for e in per_step), max(e.groups for e in per_step)))
    return tuple(entries), warnings


# ---- correlation rules over a period -----------------------------------------------------------------------


