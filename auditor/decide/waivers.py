"""Waivers applied to a run: a failing rule becomes `waived` when unexpired waivers cover every violating group.

A waiver applies while T < expires (T the run's reference time; a date means 00:00 UTC that day, so a waiver
expiring at exactly T no longer applies). Each violating group is credited to the first matching waiver in
file order. Expired waivers and waivers that matched nothing are warnings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from auditor.core.decisions import AppliedWaiver, WaiverState, WaiverUse
from auditor.core.model import Waiver
from auditor.core.status import Status
from auditor.evaluate.outcome import Measurement, failure_message
from auditor.evaluate.results import RuleResult, RunResult, group_key
from auditor.language.expectations import worst


def violating_groups(result: RuleResult) -> list[tuple[dict[str, Any] | None, int]]:
    """A failing result's violating groups and their record counts.

    From the evaluator's group counts when present; otherwise from the failing measurements (a count
    measurement gives the records, other expectations none).
    """
    if result.groups:
        return list(result.groups)
    seen: dict[str, tuple[dict[str, Any] | None, int]] = {}
    for m in result.measurements:
        if m.ok:
            continue
        key = group_key(m.group)
        records = int(m.value) if m.expectation == "count" and m.value is not None else 0
        group, before = seen.get(key, (m.group, 0))
        seen[key] = (group, max(before, records))
    return list(seen.values())


def _partly_waived(result: RuleResult, uncovered: int,
                   waived: list[tuple[dict[str, Any] | None, Waiver]]) -> RuleResult:
    """A rule still failing with some groups waived: its message leads with the worst unwaived group and says
    how many groups were waived, under which tickets; the waived groups' measurements are marked."""
    marks = tuple((group, w.ticket or w.owner) for group, w in waived)
    keys = {group_key(g) for g, _ in marks}
    unwaived = [m for m in result.measurements if not m.ok and group_key(m.group) not in keys]
    top = worst(unwaived, Measurement.bounds)
    message = result.message
    if top is not None:
        message = failure_message(top, uncovered, bool(result.compiled.rule.group_by))
    tickets = ", ".join(dict.fromkeys(t for _, t in marks))
    message += f"; {len(marks)} group{'s' if len(marks) != 1 else ''} waived ({tickets})"
    return dataclasses.replace(result, message=message, waived_groups=marks)


def label(waiver: Waiver) -> str:
    """How warnings name a waiver: 'waiver for RULE (match values, ticket)'."""
    parts = [str(v) for _, v in waiver.match]
    if waiver.ticket:
        parts.append(waiver.ticket)
    return f"waiver for {waiver.rule}" + (f" ({', '.join(parts)})" if parts else "")


def apply_waivers(run: RunResult, waivers: Sequence[Waiver]) -> RunResult:
    """Waive the failing rules fully covered by unexpired waivers; warn of expired and stale waivers."""
    reference = run.reference_us
    records = [0] * len(waivers)
    groups = [0] * len(waivers)
    applied = [False] * len(waivers)
    results: list[RuleResult] = []
    for result in run.results:
        rule_id = result.compiled.rule.id
        active = [i for i, w in enumerate(waivers) if w.rule == rule_id and reference < w.expires_us]
        if result.status is not Status.FAIL or not active:
            results.append(result)
            continue
        violating = violating_groups(result)
        covered: dict[int, int] = {}
        uncovered = 0
        waived_groups: list[tuple[dict[str, Any] | None, int]] = []
        for group, count in violating:
            hit = next((i for i in active if waivers[i].matches(group)), None)
            if hit is None:
                uncovered += 1
                continue
            covered[hit] = covered.get(hit, 0) + count
            groups[hit] += 1
            waived_groups.append((group, hit))
        for i, count in covered.items():
            records[i] += count
        if violating and not uncovered:
            for i in covered:
                applied[i] = True
            primary = max(covered, key=lambda i: (covered[i], -i))
            waiver = AppliedWaiver(waivers[primary], covered[primary])
            results.append(dataclasses.replace(result, status=Status.WAIVED, waiver=waiver))
        elif waived_groups:
            results.append(_partly_waived(result, uncovered, [(g, waivers[i]) for g, i in waived_groups]))
        else:
            results.append(result)
    statuses = {r.compiled.rule.id: r.status for r in results}
    entries: list[WaiverUse] = []
    warnings = list(run.warnings)
    for i, w in enumerate(waivers):
        status = statuses.get(w.rule)
        if reference >= w.expires_us:
            state = WaiverState.EXPIRED
            warnings.append(f"{label(w)} expired {w.expires} and no longer applies")
        elif status is None or status is Status.ERROR:
            state = WaiverState.NOT_RUN
        elif applied[i]:
            state = WaiverState.APPLIED
        elif groups[i]:
            state = WaiverState.PARTIAL
        else:
            state = WaiverState.UNUSED
            warnings.append(f"{label(w)} matched nothing in this run: stale exception?")
        entries.append(WaiverUse(w, state, records[i], groups[i]))
    return dataclasses.replace(run, results=tuple(results), warnings=tuple(warnings), waivers=tuple(entries))
