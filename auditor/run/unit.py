"""One unit of a run: one pass over the records a source delivers for some fetches, feeding every rule (and
correlation side) that reads them; a second core takes part of the records when they are many."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
from auditor.sources.records import LogpushNames
from auditor.sources.typecheck import TypeTally

if TYPE_CHECKING:
    from multiprocessing.context import ForkContext

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
    size = unit.source.size(unit.fetch)
    ctx = parallel.context(size) if size else None
    notes: tuple[str, ...] = ()
    if ctx is not None:  # large exported logs: a forked helper reads part of the records (auditor.evaluate.parallel)
        try:
            return _split(ctx, unit)
        except parallel.HelperFailed as failed:
            notes = (f"a second process reading {unit.fetch.source} failed ({failed}); this process read its "
                     "records instead",)
        except (SourceError, MatchTimeout):
            pass  # the single pass below finds the first error in the records' order, and says it
        for correlation, side in map(_side, unit.extra):  # what the split pass fed them is read again
            correlation.clear_side(side)
    return _single(unit, notes)


def _single(unit: Unit, notes: tuple[str, ...] = ()) -> UnitOutcome:
    """One pass over a unit's records in this process."""
    evaluators, types = _evaluators(unit)
    tally: list[int] = []
    times = [_FAR, -_FAR]
    try:
        feed(unit.source.read(unit.fetch, unit.index), _windows(unit, evaluators), tally, types, times)
    except (SourceError, MatchTimeout) as exc:
        return _failed(unit, exc, sum(tally[:1]))
    return _finish(unit, evaluators, types, tally[0], times, notes)


def _split(ctx: ForkContext, unit: Unit) -> UnitOutcome:
    """One pass over a unit's records shared with a forked helper: each evaluates every rule over its blocks of
    the input, the helper's accumulators merge into ours; HelperFailed, SourceError or MatchTimeout when it
    cannot give the single-pass answer (the caller then reads alone)."""
    evaluators, types = _evaluators(unit)
    windows = _windows(unit, evaluators)
    helper = parallel.Helper(ctx, lambda blocks: _helper_pass(unit, evaluators, windows, blocks))
    try:
        tally: list[int] = []
        times = [_FAR, -_FAR]
        started = time.monotonic()
        feed(unit.source.read_split(unit.fetch, unit.index, helper.offer, helper.block_bytes),  # type: ignore[attr-defined]
             windows, tally, types, times)
        # The helper's share is at most a few blocks behind ours: one taking far longer is stuck.
        kind, value = helper.result(max(60.0, 3 * (time.monotonic() - started)))
    finally:
        helper.close()  # also on Ctrl-C: the helper ends with the run
    if kind == "error":  # a data error in its blocks
        raise SourceError(value)
    snapshots, sides, records, (first, last), found, files = value
    for e, snapshot in zip(evaluators, snapshots, strict=True):
        e.merge(snapshot)
    for window, (side, snapshot) in zip(unit.extra, sides, strict=True):
        _side(window)[0].merge_side(side, snapshot)
    types.merge(found)
    unit.source.settle(files)  # type: ignore[attr-defined]
    return _finish(unit, evaluators, types, tally[0] + records, [min(times[0], first), max(times[1], last)])


def _helper_pass(unit: Unit, evaluators: list[Any], windows: list[Window], blocks: Iterator[parallel.Block]) -> Any:
    """In the helper process: feed every evaluator the records of the blocks handed over; return what they were
    fed as plain data (or that the source failed)."""
    _, types = _evaluators(unit)  # forked before the parent fed anything: every accumulator is still empty
    tally: list[int] = []
    times = [_FAR, -_FAR]
    try:
        feed((unit.source.read_block(unit.fetch, block) for block in blocks), windows, tally, types, times)  # type: ignore[attr-defined]
    except (SourceError, MatchTimeout) as exc:
        return "error", str(exc)
    sides = [(side, correlation.snapshot_side(side)) for correlation, side in map(_side, unit.extra)]
    return "ok", ([e.snapshot() for e in evaluators], sides, tally[0], times, types.found,
                  unit.source.pending())  # type: ignore[attr-defined]


def _side(window: Window) -> tuple[Any, str]:
    """The correlation evaluator a unit's extra feed belongs to, and its side: "first" or "then"."""
    f = window[2]
    return f.__self__, "first" if f.__name__ == "feed_first" else "then"  # type: ignore[union-attr]


def _evaluators(unit: Unit) -> tuple[list[Any], TypeTally]:
    """Fresh accumulators for the unit's rules, and a tally of mistyped values of the fields they read."""
    # Per step for a periodic plan; a rule matching regexes is guarded: a match out of time errors it alone.
    evaluators = [guard(evaluator(r)) for r in unit.rules]
    return evaluators, TypeTally(SOURCES[unit.fetch.source], (f for r in unit.rules for f in filter_fields(r.rule)))


def _windows(unit: Unit, evaluators: list[Any]) -> list[Window]:
    """What the router offers records to: the rules' gates and the correlation sides, a `then` side only over
    the times a match is possible when its `first` side is already complete."""
    extra = []
    for window in unit.extra:
        correlation, side = _side(window)
        extra.append((*correlation.then_window, window[2]) if side == "then" else window)
    return [(e.since_us, e.until_us, e.gate) for e in evaluators] + extra


def _failed(unit: Unit, exc: SourceError | MatchTimeout, records: int) -> UnitOutcome:
    """Every rule of the unit errors with the source's (or a correlation side's regex) problem."""
    # A regex out of time outside a guarded rule (a correlation side) stops the pass, as bad data does.
    message = exc.rule_message() if isinstance(exc, SourceError) else f"regex error, rule not evaluated: {exc}"
    unit.done(message)
    return UnitOutcome([RuleResult(r, Status.ERROR, message, unit.describe(r)) for r in unit.rules], records)


def _finish(unit: Unit, evaluators: list[Any], types: TypeTally, records: int, times: list[int],
            notes: tuple[str, ...] = ()) -> UnitOutcome:
    """The unit's results once every record was fed (its correlation sides are told it ended)."""
    unit.done(None)
    results = []
    for e in evaluators:
        o = e.outcome()
        results.append(RuleResult(e.compiled, o.status, o.message, unit.describe(e.compiled), o.measurements,
                                  o.violations, o.evidence, groups=o.groups, steps=o.steps))
    readers: dict[str, list[str]] = {}
    for r in unit.rules:  # the warnings about values of the wrong type name the rules they concern
        for name in dict.fromkeys(filter_fields(r.rule)):
            readers.setdefault(name, []).append(r.rule.id)
    seen = (unit.fetch.source, times[0], times[1]) if records else None
    return UnitOutcome(results, records, (*types.warnings(readers), *notes), seen)


def feed(parts: Iterable[Part], feeds: Sequence[Window], tally: list[int] | None = None,
         types: TypeTally | None = None, times: list[int] | None = None) -> None:
    """One pass over the parts' records, each offered to the feeds whose window holds its time; the number of
    records read is appended to `tally`, also when the source fails half-way (SourceError); values of the wrong
    type counted in `types`; `times` set to the earliest and latest record time (for coverage inferred from the
    data, auditor.core.coverage)."""
    # Records outside a rule's window cost no call at all: the router knows which windows are open. Records kept in
    # Logpush's names (Part.logpush_names) are renamed only for the rules that take them (`renaming`).
    plain = route = Router(feeds)
    renaming: Router | None = None
    lo, hi, fanout = route.segment(0)
    records = 0
    first, last = _FAR, -_FAR
    try:
        for part in parts:
            check = types.for_part(part) if types is not None else None
            wanted = plain
            if part.logpush_names:
                if renaming is None:
                    renaming = Router(feeds, LogpushNames().renaming())
                wanted = renaming
            if wanted is not route:
                route, lo, hi = wanted, 0, 0  # an empty span: the next record finds its segment in this router
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
