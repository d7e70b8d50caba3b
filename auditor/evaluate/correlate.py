"""Correlation rules: the `then` records that follow a matching `first` record with equal join values.

Semantics (SPEC section 1; README "Correlation rules"):
- both sides are read over the rule's window [since, until);
- a `then` record matches when a `first` record with equal join values happened strictly before it (equal
  timestamps do not match: the two logs are written by different systems, so "at the same instant" says
  nothing about order) and, with `within`, at most `within` before it (inclusive: a delay of exactly
  `within` matches);
- join values that are missing, null or "" never match; a pair of e-mail fields (`fields.Field.email` on
  both sides, e.g. resource_user_email -> user_email) compares after `casefold()`, because IdPs and Access
  spell the same address in different cases; every other pair compares exactly, as filters do;
- group_by, expectations and evidence apply to the matched `then` records, through the ordinary
  RuleEvaluator; each evidence item shows both sides: the `then` record, its partner (the latest matching
  `first` record before it), the join value and the delay between them.

Memory: the `first` side (normally the small SCIM log) is held only as a join index, join value -> the
times (and evidence projections) of its matching records, sorted once when that side is complete. The
`then` side streams through: per record one predicate, one dict lookup and one bisect. A `then` record that
arrives before its `first` side is complete (both sides served by one fetch, or fetches that depend on each
other) is buffered, after filtering, and matched when the side completes; the runner orders units (and, on
the API, schedules fetches) so that `first` sides are read before the `then` sides that need them, which
keeps the buffer empty in the usual case.
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, TypeVar

from auditor.compile.compiler import evidence_fields
from auditor.compile.plan import CompiledRule, CompiledSide
from auditor.core.fields import SOURCES
from auditor.core.timeutil import US
from auditor.evaluate.engine import Projection, RuleEvaluator
from auditor.evaluate.outcome import Outcome
from auditor.language.codegen import compile_all

Feed = Callable[[dict[str, Any], int], None]
Key = tuple[Any, ...]
Item = TypeVar("Item")
_FOLDED = 1 << 16  # folded join values remembered per side


def _key_function(fields: tuple[str, ...], fold: tuple[bool, ...]) -> Callable[[dict[str, Any]], Key | None]:
    """record -> its join key, or None when a join value is missing, null or empty."""
    pairs = tuple(zip(fields, fold, strict=True))
    folded: dict[str, str] = {}  # raw value -> its casefold(): the same few addresses recur in every record

    def key(record: dict[str, Any]) -> Key | None:
        out = []
        for name, casefold in pairs:
            value = record.get(name)
            if value is None or value == "":
                return None
            if value.__class__ is str:
                if casefold:
                    known = folded.get(value)
                    if known is None:
                        if len(folded) >= _FOLDED:
                            folded.clear()
                        known = folded[value] = value.casefold()
                    value = known
            elif isinstance(value, list | dict):
                value = json.dumps(value, sort_keys=True)
            out.append(value)
        return tuple(out)

    return key


def seconds(delay_us: int) -> int | float:
    """A delay in seconds: an integer when whole."""
    value = delay_us / US
    return int(value) if value.is_integer() else round(value, 6)


class CorrelationEvaluator:
    """One correlation rule: index its `first` side, stream its `then` side, decide like any rule."""

    def __init__(self, compiled: CompiledRule):
        rule = compiled.rule
        correlation = rule.correlation
        if correlation is None or not compiled.sides:
            raise ValueError(f"rule '{rule.id}' is not a compiled correlation rule")
        first_rule, then_rule = rule.sides()
        self.compiled = compiled
        self.rule = rule
        self.since_us = compiled.since_us
        self.until_us = compiled.until_us
        self.first_source = correlation.first.source
        self.then_source = correlation.then.source
        first_fields = SOURCES[self.first_source].fields
        then_fields = SOURCES[self.then_source].fields
        fold = tuple(first_fields[a].email and then_fields[b].email for a, b in correlation.join)
        self.then_join = correlation.join_fields("then")
        self._first_key = _key_function(correlation.join_fields("first"), fold)
        self._then_key = _key_function(self.then_join, fold)
        self._first_match = compile_all([(c.field, c.op, c.operand) for c in correlation.first.conditions])
        self._then_match = compile_all([(c.field, c.op, c.operand) for c in correlation.then.conditions])
        self._within = correlation.within_us
        shown = evidence_fields(first_rule) | set(correlation.join_fields("first")) if rule.evidence else set()
        self._first_shown = [name for name in first_fields if name in shown]
        then_side = next(s for s in compiled.sides if s.name == "then")
        self._then = RuleEvaluator(replace(compiled, rule=then_rule, fetch_key=then_side.fetch_key,
                                           pushed=then_side.pushed, local=then_side.local, sides=()))
        self._collecting: dict[Key, list[tuple[int, str, dict[str, Any]]]] = {}
        self._index: dict[Key, tuple[list[int], list[dict[str, Any]]]] = {}
        self._buffer: list[tuple[dict[str, Any], int, Key]] = []
        self._closed = False
        self._then_lo, self._then_hi = self.since_us, self.until_us  # narrowed to then_span once first is complete
        self._lock = threading.Lock()  # first side completing vs then records arriving (other threads)
        self._feeding = threading.Lock()  # the matched-record aggregation (rare: only matches take it)
        self.first_matched = 0
        self.error: str | None = None

    # -- first side: build the index ---------------------------------------------------------------------

    def feed_first(self, record: dict[str, Any], t_us: int) -> None:
        """Offer one record of the `first` side's fetch."""
        if not (self.since_us <= t_us < self.until_us) or not self._first_match(record):
            return
        key = self._first_key(record)
        if key is None:
            return
        self.first_matched += 1
        shown = {f: record.get(f) for f in self._first_shown}  # a missing field shows as null (RuleEvaluator.project)
        tie = json.dumps(shown, sort_keys=True, default=str)
        self._collecting.setdefault(key, []).append((t_us, tie, shown))

    def close_first(self) -> None:
        """The `first` side is complete: sort the index, then match the `then` records that waited for it."""
        with self._lock:
            if self._closed:
                return
            for key, items in self._collecting.items():
                items.sort(key=lambda item: (item[0], item[1]))
                self._index[key] = ([t for t, _, _ in items], [shown for _, _, shown in items])
            self._collecting = {}
            waiting, self._buffer = self._buffer, []
            span = self._span()
            # From now on a `then` record outside the span cannot match: it costs one comparison.
            self._then_lo, self._then_hi = span if span is not None else (self.until_us, self.until_us)
            self._closed = True
        for record, t_us, key in waiting:
            self._match(record, t_us, key)

    @property
    def then_window(self) -> tuple[int, int]:
        """[lo, hi) of the `then` records worth offering: the window, narrowed to `then_span` once the `first`
        side is complete (a router then skips the others without a call)."""
        return self._then_lo, self._then_hi

    def then_span(self) -> tuple[int, int] | None:
        """Once the `first` side is complete: [lo, hi), the times at which a `then` record can match (after the
        earliest matching `first` record and, with `within`, at most that long after the latest), within the
        window; None when no `first` record matched, so no `then` record can."""
        self.close_first()
        return self._span()

    def _span(self) -> tuple[int, int] | None:
        """then_span, from the complete index."""
        if not self._index:
            return None
        lo = max(self.since_us, min(times[0] for times, _ in self._index.values()) + 1)  # strictly after
        hi = self.until_us
        if self._within is not None:
            hi = min(hi, max(times[-1] for times, _ in self._index.values()) + self._within + 1)  # inclusive
        return (lo, hi) if lo < hi else None

    # -- then side: stream ---------------------------------------------------------------------------------

    def feed_then(self, record: dict[str, Any], t_us: int) -> None:
        """Offer one record of the `then` side's fetch."""
        if not (self._then_lo <= t_us < self._then_hi) or not self._then_match(record):
            return
        key = self._then_key(record)
        if key is None:
            return
        if not self._closed:
            with self._lock:
                if not self._closed:
                    self._buffer.append((record, t_us, key))
                    return
        self._match(record, t_us, key)

    def _partner(self, t_us: int, key: Key) -> tuple[dict[str, Any], int] | None:
        """The `first` record a `then` record at t_us pairs with (shown fields, time), or None."""
        entry = self._index.get(key)
        if entry is None:
            return None
        times, shown = entry
        i = bisect_left(times, t_us)  # times[:i] are strictly earlier
        if i == 0:
            return None
        first_us = times[i - 1]  # the latest earlier first record: the closest, so within holds for it if any
        if self._within is not None and t_us - first_us > self._within:
            return None
        return shown[i - 1], first_us

    def _match(self, record: dict[str, Any], t_us: int, key: Key) -> None:
        partner = self._partner(t_us, key)
        if partner is not None:
            project = self.pair(partner[0], partner[1], t_us)
            with self._feeding:
                self._then.take(record, t_us, project)  # feed_then checked its window and filter

    def pair(self, first: dict[str, Any], first_us: int, then_us: int) -> Projection:
        """How evidence shows a matched `then` record: both sides, the join value and the delay between them."""
        then_join = self.then_join
        project = self._then.project

        def shown(record: dict[str, Any]) -> dict[str, Any]:
            join = {name: record.get(name) for name in then_join}
            return {"first": first, "then": project(record), "join": join, "delay_s": seconds(then_us - first_us)}

        return shown

    # -- split passes (auditor.evaluate.parallel): what each side was fed, as plain data, and its merge -------

    def snapshot_side(self, side: str) -> Any:
        """What one side ("first" or "then") was fed in this process."""
        if side == "first":
            return self.first_matched, self._collecting
        return self._buffer, self._then.snapshot()

    def merge_side(self, side: str, snapshot: Any) -> None:
        """Add what one side was fed by another pass over other records (its `snapshot_side`): the index and
        the matched records are those of one pass over both (the index is sorted when the side completes)."""
        if side == "first":
            matched, collecting = snapshot
            self.first_matched += matched
            for key, items in collecting.items():
                self._collecting.setdefault(key, []).extend(items)
            return
        buffered, then = snapshot
        self._buffer.extend(buffered)
        self._then.merge(then)

    def clear_side(self, side: str) -> None:
        """Forget what one side was fed (a split pass that failed is read again by one process): a side is fed by
        one unit only, so before that unit it held nothing."""
        if side == "first":
            self.first_matched, self._collecting = 0, {}
        else:
            self._buffer, self._then = [], RuleEvaluator(self._then.compiled)

    # -- outcome ---------------------------------------------------------------------------------------------

    def fail(self, message: str) -> None:
        """A fetch of either side failed: the rule is not evaluated (the first error is kept)."""
        if self.error is None:
            self.error = message

    def outcome(self) -> Outcome:
        """Decide pass/fail over the matched `then` records."""
        self.close_first()
        o = self._then.outcome()
        n, m = self.first_matched, o.matched
        note = (f" (first: {n} {self.first_source} record{'s' if n != 1 else ''}; then: {m} "
                f"{self.then_source} record{'s' if m != 1 else ''} after them)")
        return replace(o, message=o.message + note)


class Correlations:
    """The correlation rules of a run and the units (a fetch key, or a source for files) that feed them."""

    def __init__(self, rules: Iterable[CompiledRule], unit_of: Callable[[CompiledSide], str],
                 make: Callable[[CompiledRule], CorrelationEvaluator] = CorrelationEvaluator):
        # make: the evaluator per rule (auditor.evaluate.periodic passes one evaluating every step of a period)
        self.evaluators = [make(r) for r in rules if r.sides]
        self._feeds: dict[str, list[tuple[int, int, Feed]]] = {}
        self._firsts: dict[str, list[CorrelationEvaluator]] = {}
        self._readers: dict[str, list[CorrelationEvaluator]] = {}
        self._depends: dict[str, set[str]] = {}
        for e in self.evaluators:
            units = {s.name: unit_of(s) for s in e.compiled.sides}
            for name, unit in units.items():
                feed = e.feed_first if name == "first" else e.feed_then
                self._feeds.setdefault(unit, []).append((e.since_us, e.until_us, feed))
                if e not in self._readers.setdefault(unit, []):
                    self._readers[unit].append(e)
            self._firsts.setdefault(units["first"], []).append(e)
            if units["first"] != units["then"]:
                self._depends.setdefault(units["then"], set()).add(units["first"])

    def rebind_then(self, rule_id: str, unit: str) -> None:
        """Read a rule's `then` side from another unit (its fetch, re-planned once the `first` sides were read)."""
        e = next(e for e in self.evaluators if e.rule.id == rule_id)
        for old, feeds in self._feeds.items():
            feeds[:] = [f for f in feeds if f[2] != e.feed_then]
            readers = self._readers.get(old, [])
            if e in readers and all(f[2] != e.feed_first for f in feeds):
                readers.remove(e)
        self._feeds.setdefault(unit, []).append((e.since_us, e.until_us, e.feed_then))
        if e not in self._readers.setdefault(unit, []):
            self._readers[unit].append(e)

    def units(self) -> set[str]:
        """Every unit some correlation side reads."""
        return set(self._feeds)

    def feeds(self, unit: str) -> list[tuple[int, int, Feed]]:
        """(since, until, feed) for every correlation side that reads this unit."""
        return list(self._feeds.get(unit, ()))

    def depends(self, unit: str) -> set[str]:
        """The units whose `first` sides must be complete before this unit's `then` records stream."""
        return set(self._depends.get(unit, ()))

    def finished(self, unit: str, error: str | None = None) -> None:
        """A unit was read to its end (closes the `first` sides it feeds), or failed (errors its rules)."""
        if error is not None:
            for e in self._readers.get(unit, ()):
                e.fail(error)
            return
        for e in self._firsts.get(unit, ()):
            e.close_first()

    def ordered(self, items: Iterable[Item], key: Callable[[Item], str]) -> list[Item]:
        """Items (units) in layers: each after the units its `then` sides depend on, else in the given order.

        Dependencies on units that are not among the items are ignored; in a cycle the first waiting item goes
        next (its `then` records are then buffered until the `first` side completes).
        """
        pending = list(items)
        present = {key(item) for item in pending}
        placed: set[str] = set()
        out: list[Item] = []
        while pending:
            ready = [item for item in pending if self.depends(key(item)) & present <= placed] or pending[:1]
            out.extend(ready)
            placed.update(key(item) for item in ready)
            chosen = {id(item) for item in ready}
            pending = [item for item in pending if id(item) not in chosen]
        return out

    def outcomes(self) -> list[tuple[CompiledRule, Outcome | None, str | None]]:
        """(compiled rule, outcome, None) per correlation rule, or (compiled rule, None, error message)."""
        return [(e.compiled, None, e.error) if e.error is not None else (e.compiled, e.outcome(), None)
                for e in self.evaluators]
