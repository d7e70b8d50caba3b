"""Completeness of a part's answer: continuing past `limit`, splitting by estimate, silent cap checks.

An answer that reaches `limit` (or a cap the server applies silently), asked in ascending time order,
holds the earliest records of the range: every record before the second of its last one. Those are kept
and the rest of the range is read as a new part from that second on (`continue_cut`), so nothing
received is asked for again but the records of that second. An answer in no visible ascending order is
split into parts by estimate instead (`split`), its records dropped, each part fetched and verified the
same way, down to 1 s. docs/guarantees.md ("Limit caps") states the argument.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from auditor.core.timeutil import US, format_time
from auditor.sources.cloudflare.envelope import FetchError, Page
from auditor.sources.cloudflare.pagination import PagesState, ascending
from auditor.sources.cloudflare.parts import Ask, Done, Part, PartRead, Split

FILL = 0.7  # parts are sized for about this share of `limit`, leaving room for uneven traffic
MAX_PARTS = 16
CHECK = 1 << 30  # the completeness check's place in the request log: after the part's own pages

# GET one page of a query for a part: (part path, query, page number, where) -> the page.
GetPage = Callable[[tuple[int, ...], Ask, int, str], Page]


class CapMemory:
    """What the answers of each source showed about a cap on entries per query; thread-safe, one per client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._most: dict[str, int] = {}  # per source: the most entries one query returned
        self._caps: dict[str, int] = {}  # per source: a cap below `limit` the server showed

    def limit(self, fetch: Ask) -> int:
        """The entries one query can return: the query's `limit`, or less once the server showed a lower cap."""
        with self._lock:
            return min(fetch.limit, self._caps.get(fetch.source, fetch.limit))

    def served(self, source: str, received: int) -> bool:
        """Note that one query of `source` returned `received` entries; True when that many are provably not
        the server's cap: another query of the endpoint returned more, or the cap is known and larger. No
        size is assumed safe: a cap of 1 or 20 is checked like any other."""
        with self._lock:
            most = self._most.get(source, 0)
            self._most[source] = max(most, received)
            cap = self._caps.get(source)
            return received < most or (cap is not None and received < cap)

    def answered(self, source: str, entries: int) -> None:
        """Note that one query of `source` returned `entries` entries (the server's cap is at least that), so
        later answers with fewer need no completeness check."""
        with self._lock:
            self._most[source] = max(self._most.get(source, 0), entries)

    def learn(self, source: str, cap: int) -> None:
        """The server cut an answer at `cap` entries."""
        with self._lock:
            self._caps[source] = min(cap, self._caps.get(source, cap))


def identity(record: dict[str, Any]) -> str:
    """A record's content as canonical text, to tell the same record in two answers."""
    return json.dumps(record, sort_keys=True, default=str)


def capped(read: PartRead, state: PagesState, get: GetPage) -> bool | None:
    """Whether the server cut the part's answer short at a silent cap (True), provably did not (False),
    or one more query cannot tell (None: the answer was not in ascending order, or the check's was not
    newest first).

    If an ascending answer of N records was cut, every record it lacks is at or after its last time `last`,
    where it held k records. The same range read newest first (`direction=desc`), asking for k + 1
    entries, lists the records at or after `last` before any older one: a record at or after `last` that
    was not held proves the cut; reaching an older record after exactly the k held ones proves none is
    missing. One small request, whatever the cap's size (docs/guarantees.md, "Limit caps").
    """
    held = read.held(state.complete)
    if not ascending(held):
        return None
    last = held[-1][0]
    at_last = Counter(identity(r) for t, r in held if t == last)
    k = sum(at_last.values())
    size = min(read.ask.per_page, k + 1)
    newest_first = replace(read.ask, direction="desc", per_page=size, limit=k + 1)
    # A page of the check is full at the size the server really serves: known when a second page had records.
    full = min(size, state.page_size if state.complete > 1 else read.ask.per_page)
    seen: list[str] = []
    previous = math.inf
    for number in range(1, math.ceil((k + 1) / full) + 1):
        page = get((*read.part.path, CHECK), newest_first, number, f"{read.where} (completeness check)")
        for t, r in page.records:
            if t > previous:
                return None  # not newest first: the server ignored direction
            previous = t
            if t < last:
                return False if len(seen) == k else None
            key = identity(r)
            if not at_last[key]:
                return True  # at or after `last` and not held: the ascending answer was cut short
            at_last[key] -= 1
            seen.append(key)
        if len(page.records) < full:
            break
    if len(seen) != k or k != len(held):
        return None  # the answer ended early although older held records should have followed
    # One instant, and the newest-first answer is exactly the held records. A cap of k would hide the
    # others of that instant only if the server listed them in the same order both ways; a reversed list
    # shows it does not, and a single record has no order (docs/guarantees.md, "Limit caps").
    return False if k == 1 or seen == [identity(r) for _, r in reversed(held)] else None


def continue_cut(read: PartRead, state: PagesState) -> Done | Split | None:
    """A part whose answer was cut (at `limit` or a silent cap) as the records it holds up to the second of
    its last one, then one part for the rest of its range; None when the answer proves no such prefix.

    Asked with `direction=asc`, the server answered the earliest records of the range: every record
    before the last one's time is among them, and at that time more may have been left out. So records
    before that second are kept and nothing else is asked for again; the new part owns the range from
    that second (asking one second early, it drops the records it does not own, so a record of that
    second is counted once). An answer that is not ascending (a server ignoring `direction`), or shows
    no order at all (one instant), proves nothing, nor does one whose last second is the part's first
    (no progress): those are split by estimate instead (`split`).
    """
    got, part = read.got, read.part
    if any(len(got[n].records) != state.page_size for n in range(1, state.complete)):
        return None  # a short page before the last: the pages are not slices of one answer
    held = read.held(state.complete)
    if not held or held[0][0] == held[-1][0] or not ascending(held):
        return None
    cut = held[-1][0] // US * US
    if cut <= read.lo:
        return None
    end = cut if part.own_hi is None else min(cut, part.own_hi)
    records = [(t, r) for t, r in held if (part.own_lo is None or t >= part.own_lo) and t < end]
    done = Done(f"{read.job.fetch.source} records {format_time(read.lo)} .. {format_time(min(cut, read.hi))}",
                records, (read.lo, min(cut, read.hi)))
    if cut >= read.hi:  # the last record is at the part's end (`until` inclusive): nothing of it is left
        return done
    return Split((done, Part(cut, part.own_hi, (*part.path, 1))))


def split(read: PartRead, total: float) -> Split:
    """Cut [lo, hi) at whole seconds into parts expected to hold FILL x limit records each, dropping the
    records received: for an answer that reached `limit` (or a cap) but offers no prefix to keep
    (`continue_cut`), or that the completeness check could not decide.

    With asc-ordered pages the cuts follow the records seen; otherwise they are even in time.
    Either way every part is verified on its own, so a poor guess costs requests, never records.
    FetchError when a part of 1 s still reaches `limit`.
    """
    lo, hi, limit, part = read.lo, read.hi, read.limit, read.part
    span = hi - lo
    if span <= US:
        raise FetchError(f"{read.job.fetch.source} records {format_time(lo)} .. {format_time(hi)}: more than "
                         f"{limit} records within 1 s (the API's limit per query); cannot split further")
    k = max(2, min(math.ceil(total / (FILL * limit)), MAX_PARTS, span // US))
    cuts = _cuts(read, total, k)
    # A second holding a large share of `limit` (a burst) gets a part of its own, so it fails (or
    # completes) at once instead of being halved down to level by level.
    per_second: dict[int, int] = {}
    for page in read.got.values():
        for t, _ in page.records:
            if lo <= t < hi:
                per_second[t // US * US] = per_second.get(t // US * US, 0) + 1
    bursts = [x for x, n in per_second.items() if n * MAX_PARTS >= limit]
    cuts = [c for c in sorted({*cuts, *bursts, *(x + US for x in bursts)}) if lo < c < hi]
    if not cuts:  # every guess fell outside: halve at a whole second (one lies inside, span > 1 s)
        middle = (lo + span // 2) // US * US
        cuts = [c for c in (middle, middle + US) if lo < c < hi][:1] or [lo + span // 2]
    bounds = [part.own_lo, *cuts, part.own_hi]
    return Split(tuple(Part(bounds[i], bounds[i + 1], (*part.path, i)) for i in range(len(bounds) - 1)))


def _cuts(read: PartRead, total: float, k: int) -> list[int]:
    """k-1 whole-second cuts inside (lo, hi): by the records' curve when pages were ascending, else even."""
    lo, hi = read.lo, read.hi
    curve = _curve(read.got, read.ask, total)
    even = [lo + (hi - lo) * i / k for i in range(1, k)]
    cuts: list[int] = []
    for times in ([_time_at(curve, total * i / k) for i in range(1, k)] if curve else [], even):
        cuts = [c for c in sorted({int(t) // US * US for t in times}) if lo < c < hi]
        if cuts:
            break
    return cuts


def _curve(got: dict[int, Page], ask: Ask, total: float) -> list[tuple[int, float]] | None:
    """(time, records before it) points from asc-ordered pages, ending at (until, total); None if unordered."""
    points: list[tuple[int, float]] = [(ask.since_us, 0.0)]
    size = max(len(p.records) for p in got.values()) or 1
    for n in sorted(got):
        records = got[n].records
        if not records:
            continue
        first, last = records[0][0], records[-1][0]
        if first < points[-1][0] or not ascending(records):
            return None
        points += [(first, float((n - 1) * size)), (last, float((n - 1) * size + len(records)))]
    points.append((max(ask.until_us, points[-1][0]), max(total, points[-1][1])))
    return points


def _time_at(curve: list[tuple[int, float]], count: float) -> float:
    """The time by which `count` records are expected, interpolating the curve linearly."""
    for (t0, c0), (t1, c1) in itertools.pairwise(curve):
        if c0 <= count <= c1 and c1 > c0:
            return t0 + (count - c0) / (c1 - c0) * (t1 - t0)
    return float(curve[-1][0])
