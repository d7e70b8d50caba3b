"""One unit of a run: one pass over the records a source delivers for some fetches, feeding every rule (and
correlation side) that reads them; a second core takes part of the rules when the data can be read twice."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.compile.plan import CompiledRule, Fetch
from auditor.core.fields import SOURCES
from auditor.core.status import Status
from auditor.evaluate import parallel
from auditor.evaluate.guard import filter_fields, guard
from auditor.evaluate.periodic import evaluator
from auditor.evaluate.results import RuleResult
from auditor.evaluate.router import Router
from auditor.language.codegen import Feed, Gate
from auditor.language.conditions import MatchTimeout
from auditor.sources.base import Part, Source, SourceError
from auditor.sources.typecheck import TypeTally

_FAR = 1 << 62  # beyond any timestamp in microseconds
Window = tuple[int, int, Gate | Feed]  # (since, until, feed): a feed reads the records in [since, until)


@dataclass
class Unit:
    """Fetches a source reads in one pass (all of a log source's over files, one fetch over the API), the rules
    that read them, and the correlation sides reading them, told when the unit ends (`done(error)`)."""

    key: str
    source: Source
    fetch: Fetch  # the fetch asked of the source (over files: any of the log source's, all return the same)
    index: int  # the fetch's position in the run (provenance order)
    rules: list[CompiledRule]
    describe: Callable[[CompiledRule], str]  # the query a rule's result names
    extra: Sequence[Window] = ()
    done: Callable[[str | None], None] = lambda error: None


@dataclass(frozen=True)
class UnitOutcome:
    """A unit's rule results, the records it read and what it has to say (a helper process that failed)."""

    results: list[RuleResult]
    records: int
    notes: tuple[str, ...] = ()
    seen: tuple[str, int, int] | None = None  # (log source, earliest, latest record time) when any was read


def evaluate(unit: Unit) -> UnitOutcome:
    """One pass over a unit's records feeding every rule; a source error makes all its rules `error`."""
    # Per step for a periodic plan; a rule matching regexes is guarded: a match out of time errors it alone.
    evaluators = [guard(evaluator(r)) for r in unit.rules]
    types = TypeTally(SOURCES[unit.fetch.source], (f for r in unit.rules for f in filter_fields(r.rule)))
    # Large exported logs: a forked helper evaluates some of the rules in its own pass (auditor.evaluate.parallel).
    ctx = parallel.context(unit.source.size(unit.fetch))
    handed = [evaluators[i] for i in parallel.share([_span(e.since_us, e.until_us) for e in evaluators],
                                                   sum(_span(s, u) for s, u, _ in unit.extra))] if ctx else []
    helper = parallel.Helper(ctx, lambda: _helper_pass(unit, handed)) if handed and ctx else None
    kept = [e for e in evaluators if all(e is not h for h in handed)]
    tally: list[int] = []
    times = [_FAR, -_FAR]
    notes: tuple[str, ...] = ()
    started = time.monotonic()
    try:
        windows: list[Window] = [(e.since_us, e.until_us, e.gate) for e in kept]
        feed(unit.source.read(unit.fetch, unit.index), windows + list(unit.extra), tally, types, times)
        outcomes = {id(e): e.outcome() for e in kept}
        if helper is not None:
            # The helper's pass is about as long as ours: one far longer is stuck, and we do its work.
            wait_s = max(60.0, 3 * (time.monotonic() - started))
            helped, notes = _helped(unit, handed, helper, wait_s)
            outcomes.update(zip(map(id, handed), helped, strict=True))
    except BaseException as exc:
        if helper is not None:
            helper.close()  # also on Ctrl-C: the helper ends with the run
        if not isinstance(exc, SourceError | MatchTimeout):
            raise
        # A regex out of time outside a guarded rule (a correlation side) stops the pass, as bad data does.
        message = exc.rule_message() if isinstance(exc, SourceError) else f"regex error, rule not evaluated: {exc}"
        unit.done(message)
        return UnitOutcome([RuleResult(r, Status.ERROR, message, unit.describe(r)) for r in unit.rules], sum(tally[:1]))
    unit.done(None)
    results = []
    for e in evaluators:
        o = outcomes[id(e)]
        results.append(RuleResult(e.compiled, o.status, o.message, unit.describe(e.compiled), o.measurements,
                                  o.violations, o.evidence, groups=o.groups, steps=o.steps))
    readers: dict[str, list[str]] = {}
    for r in unit.rules:  # the warnings about values of the wrong type name the rules they concern
        for name in dict.fromkeys(filter_fields(r.rule)):
            readers.setdefault(name, []).append(r.rule.id)
    seen = (unit.fetch.source, times[0], times[1]) if tally[0] else None
    return UnitOutcome(results, tally[0], (*types.warnings(readers), *notes), seen)


def feed(parts: Iterable[Part], feeds: Sequence[Window], tally: list[int] | None = None,
         types: TypeTally | None = None, times: list[int] | None = None) -> None:
    """One pass over the parts' records, each offered to the feeds whose window holds its time; the number of
    records read is appended to `tally`, also when the source fails half-way (SourceError); values of the wrong
    type counted in `types`; `times` set to the earliest and latest record time (for coverage inferred from the
    data, auditor.core.coverage)."""
    # Records outside a rule's window cost no call at all: the router knows which windows are open.
    route = Router(feeds)
    lo, hi, fanout = route.segment(0)
    records = 0
    first, last = _FAR, -_FAR
    try:
        for part in parts:
            check = types.for_part(part) if types is not None else None
            for t_us, record in part.records:
                records += 1
                if t_us > last:
                    last = t_us
                if t_us < first:
                    first = t_us
                if check is not None:
                    check(record)
                if not lo <= t_us < hi:  # left the span where the same feeds are open (auditor.evaluate.router)
                    lo, hi, fanout = route.segment(t_us)
                fanout(record, t_us)
    finally:
        if tally is not None:
            tally.append(records)
        if times is not None:
            times[:] = [first, last]


def _span(since_us: int, until_us: int) -> float:
    """How much of a pass a feed is expected to cost: the span of its window, up to 31 days."""
    return float(min(until_us - since_us, 31 * 86400 * 1_000_000))


def _helper_pass(unit: Unit, handed: list[Any]) -> tuple[str, Any]:
    """In the helper process: feed the handed evaluators, return their outcomes (or the source's error)."""
    try:
        feed(unit.source.read(unit.fetch, unit.index), [(e.since_us, e.until_us, e.gate) for e in handed])
    except SourceError as exc:
        return "error", exc
    return "ok", [e.outcome() for e in handed]


def _helped(unit: Unit, handed: list[Any], helper: parallel.Helper, wait_s: float) -> tuple[list[Any], tuple[str, ...]]:
    """The handed evaluators' outcomes from the helper; if it failed, from a pass of our own (and why)."""
    try:
        kind, value = helper.result(wait_s)
    except parallel.HelperFailed as failed:
        feed(unit.source.read(unit.fetch, unit.index), [(e.since_us, e.until_us, e.gate) for e in handed])
        note = (f"a second process reading {unit.fetch.source} failed ({failed}); this process evaluated its "
                "rules instead")
        return [e.outcome() for e in handed], (note,)
    if kind == "error":  # the files changed between the two passes, or the helper read them differently
        raise value
    return value, ()
