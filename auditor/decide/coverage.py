"""Decide only what more data could not change: a rule whose window the data does not fully cover.

Counts and distinct counts only grow as records are added, per group, and more records can only add
groups. So on a window the data covers only in part (auditor.core.coverage), a rule is
- `fail` when a `max` of `count` or `distinct` is already exceeded in the covered part;
- `pass` when every `min` of `count`/`distinct` is already met, it has no `max` and no `ratio` (which more
  data could still break), and no group more data could add would fail (no `group_by`; or the groups are
  the `for_each` values, the filter admitting no others; or every `min` holds for any group that exists);
- otherwise `error`, naming the uncovered part. Ratios are never decided on partial coverage.

Correlation rules read both logs: a part either log does not cover is missing. Periodic rules are decided
the same way at every step, over that step's window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from auditor.compile.plan import Plan
from auditor.core.coverage import Basis, Coverage, Interval, LogCoverage, RuleCoverage, api_coverage
from auditor.core.fields import SOURCES
from auditor.core.model import Rule
from auditor.core.status import Status
from auditor.core.timeutil import format_time
from auditor.evaluate.outcome import Measurement, Outcome
from auditor.evaluate.results import RuleResult

Gap = tuple[LogCoverage, tuple[Interval, ...]]  # a log and the parts of a window it does not cover


def logs_read(rule: Rule) -> tuple[str, ...]:
    """The logs a rule reads: its source, or both sides' of a correlation rule."""
    c = rule.correlation
    if c is None:
        return (rule.source,)
    return tuple(dict.fromkeys((c.first.source, c.then.source)))


def find_gaps(rule: Rule, since_us: int, until_us: int, coverage: Coverage) -> list[Gap]:
    """Per log the rule reads (and whose coverage is known), the parts of [since, until) it lacks."""
    out = []
    for log in logs_read(rule):
        known = coverage.of(log)
        if known is not None:
            out.append((known, known.missing(since_us, until_us)))
    return out


def no_data_message(gaps: list[Gap], *, why: bool = True) -> str:
    """`no access_requests data covers A..B of this rule's window (data ends B)`, per log lacking some."""
    return "; ".join(f"no {log.log} data covers {', '.join(m.text() for m in missing)} of this rule's window"
                     + (f" ({log.why(missing)})" if why else "") for log, missing in gaps if missing)


def exceeded(measurements: tuple[Measurement, ...]) -> bool:
    """True when a `max` of `count` or `distinct` is exceeded: more records could not undo it."""
    return any(m.expectation in ("count", "distinct") and m.max is not None and m.value is not None
               and m.value > m.max for m in measurements)


def pass_is_final(rule: Rule) -> bool:
    """True when, once every existing group meets the rule's bounds, no further record could break them."""
    if any(e.kind == "ratio" or e.max is not None for e in rule.expectations):
        return False
    if not rule.group_by:
        return True
    # A new group has at least one record and possibly no value of a `distinct` field.
    if all((e.min or 0) <= (1 if e.kind == "count" else 0) for e in rule.expectations):
        return True
    return _groups_closed(rule)


def _groups_closed(rule: Rule) -> bool:
    """True when the filter admits only the `for_each` values in every group_by field: no new group."""
    declared = dict(rule.for_each)
    conditions = rule.conditions if rule.correlation is None else rule.correlation.then.conditions
    for name in rule.group_by:
        if name not in declared:
            return False
        allowed = set(map(str, declared[name]))
        if not any(c.field == name and ((c.op == "eq" and str(c.operand) in allowed)
                                        or (c.op == "in" and set(map(str, c.operand)) <= allowed))
                   for c in conditions):
            return False
    return True


def decide(rule: Rule, outcome: Outcome, gaps: list[Gap]) -> Outcome:
    """The outcome on partly covered data: kept when more data could not change it, else `error`."""
    if not any(missing for _, missing in gaps) or outcome.status not in (Status.PASS, Status.FAIL):
        return outcome
    lacking = no_data_message(gaps, why=False)
    if exceeded(outcome.measurements):
        return dataclasses.replace(outcome, status=Status.FAIL,
                                   message=f"{outcome.message} (already over a max where data covers it; {lacking})")
    if outcome.status is Status.PASS and pass_is_final(rule):
        return dataclasses.replace(outcome, message=f"{outcome.message} (every min already met where data covers "
                                                    f"it; {lacking})")
    return Outcome(Status.ERROR, no_data_message(gaps), outcome.measurements, 0, (), outcome.matched)


def apply(result: RuleResult, coverage: Coverage) -> RuleResult:
    """A result decided against the coverage of its window (every step's, for a periodic rule)."""
    compiled, rule = result.compiled, result.compiled.rule
    logs = [known for log in logs_read(rule) if (known := coverage.of(log)) is not None]
    span = [(known, known.missing(compiled.since_us, compiled.until_us)) for known in logs]
    if not logs:
        return result
    no_data: set[int] = set()
    changes: dict[str, object] = {}
    if compiled.windows and result.steps:
        steps = []
        for i, ((_, since, until), o) in enumerate(zip(compiled.windows, result.steps, strict=True)):
            decided = decide(rule, o, find_gaps(rule, since, until, coverage))
            if decided.status is Status.ERROR and o.status is not Status.ERROR:
                no_data.add(i)
            steps.append(decided)
        changes["steps"] = tuple(steps)
    elif not compiled.windows and result.status in (Status.PASS, Status.FAIL):
        o = Outcome(result.status, result.message, result.measurements, result.violations, result.evidence, 0,
                    result.groups)
        decided = decide(rule, o, span)
        if decided is not o:
            changes.update(status=decided.status, message=decided.message, violations=decided.violations,
                           evidence=decided.evidence, groups=decided.groups)
    covered = RuleCoverage(compiled.since_us, compiled.until_us, tuple(logs), tuple(m for _, m in span),
                           frozenset(no_data))
    return dataclasses.replace(result, coverage=covered, **changes)  # type: ignore[arg-type]


def beyond_the_api(plan: Plan, now_us: int, retention_days: int,
                   measured_from: Mapping[str, int] | None = None) -> list[tuple[str, str]]:
    """(rule id, why) per rule whose window (any step's, for a period) reaches before what the API serves or
    past now, known before any request (`plan` marks them, `run` over the API warns). What the API serves:
    `measured_from` (log -> the earliest instant an `auditor doctor` profile measured), else retention_days."""
    coverage = api_coverage(SOURCES, now_us, retention_days, measured_from)
    out = []
    for r in plan.rules:
        gaps = find_gaps(r.rule, r.since_us, r.until_us, coverage)
        if not any(missing for _, missing in gaps):
            continue
        where = []
        for log, _ in gaps:
            kept_from = log.covered[0].since_us if log.covered else now_us
            if r.since_us >= kept_from:
                continue
            if log.basis is Basis.PROFILE:
                where.append(f"starts {format_time(r.since_us)}, before the earliest {log.log} record the API was "
                             f"measured to serve ({format_time(kept_from)}; auditor doctor)")
            else:
                where.append(f"starts {format_time(r.since_us)}, before the {retention_days} days the API keeps "
                             f"(from {format_time(kept_from)}; retention_days)")
        advice = "; exported logs (e.g. Logpush) read with --data reach further back" if where else ""
        if r.until_us > now_us:
            where.append(f"ends {format_time(r.until_us)}, after now ({format_time(now_us)})")
        out.append((r.rule.id, f"its window {' and '.join(dict.fromkeys(where))}{advice}"))
    return out


def inferred_warnings(coverage: Coverage) -> list[str]:
    """One warning per log whose coverage was inferred from its records: the results' basis says `inferred`,
    and the run says so too (a gap inside the data, or data missing at its edges, is not seen)."""
    out = []
    for log in sorted(coverage.logs.values(), key=lambda c: c.log):
        if log.basis is not Basis.INFERRED:
            continue
        held = (f"from its first record ({format_time(log.covered[0].since_us)}) to its last "
                f"({format_time(log.covered[-1].until_us - 1)})" if log.covered else "as nothing (it has no records)")
        out.append(f"{log.log}: coverage inferred {held}; a gap inside it is not seen: state what the files "
                   "hold with --data-covers")
    return out
