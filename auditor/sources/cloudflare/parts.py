"""Request building: a fetch is read as parts of its time range; what one part asks the API for.

since/until inclusivity (and precision) is undocumented. Cuts are whole seconds; a part owning [X, Y)
asks since=X-1s (an exclusive or second-truncating `since` still covers X) and until=Y (any `until`
covers everything before Y), then keeps only the records it owns: a record on a cut is read exactly once
whichever way the API counts.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from auditor.compile.plan import Fetch, PushedFilter
from auditor.core.fields import SOURCES
from auditor.core.timeutil import US, format_time
from auditor.sources.cloudflare.envelope import FetchError, Page

SPLIT_PAD_US = US


class Cancelled(FetchError):
    """The fetch was abandoned (another part failed, or the run stopped)."""

    def __init__(self) -> None:
        super().__init__("stopped before the fetch was complete")


@dataclass(frozen=True)
class Part:
    """A slice of a fetch's range: it owns records in [own_lo, own_hi) (None: unbounded on that side)."""

    own_lo: int | None
    own_hi: int | None
    path: tuple[int, ...] = ()

    def owns(self, t: int) -> bool:
        """Whether a record at time `t` belongs to this part."""
        return (self.own_lo is None or t >= self.own_lo) and (self.own_hi is None or t < self.own_hi)


@dataclass(frozen=True)
class Job:
    """One fetch being streamed."""

    fetch: Fetch
    index: int
    cancel: threading.Event
    sent: Iterator[int] = field(default_factory=itertools.count)  # next() is atomic: counts requests


@dataclass(frozen=True)
class Done:
    """A verified part: its records, in the API's order, ready for the evaluator."""

    origin: str
    records: list[tuple[int, dict[str, Any]]]  # (time in epoch microseconds, record), parsed once per page
    span: tuple[int, int] | None = None  # the time range it covers completely, for the progress display


@dataclass(frozen=True)
class Split:
    """A part that is read as these parts instead, in time order (a Done is a verified prefix)."""

    parts: tuple[Part | Done, ...]


@dataclass
class PartRead:
    """One part being read: what it asks, the range it owns, and the pages that arrived so far."""

    job: Job
    part: Part
    ask: Fetch  # the fetch with this part's since/until
    lo: int  # the owned range, with the fetch's bounds filled in
    hi: int
    limit: int  # entries one query can return (the fetch's `limit`, or a cap the server showed)
    got: dict[int, Page] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """The part's records, for messages."""
        return f"{self.job.fetch.source} records {format_time(self.lo)} .. {format_time(self.hi)}"

    def held(self, pages: int) -> list[tuple[int, dict[str, Any]]]:
        """(time, record) of pages 1..pages, in the order they arrived."""
        return [item for n in range(1, pages + 1) for item in self.got[n].records]


def fallback(fetch: Fetch) -> tuple[Fetch, tuple[str, ...]] | None:
    """The fetch without what the API may refuse, and the parameter names dropped: filters through parameters
    the public schema does not declare, the `contains` e-mail operator, and the `fields` projection. None when
    the fetch sends none of them. Every condition is also checked locally, so the answer is the same."""
    fields = SOURCES[fetch.source].fields
    kept: list[PushedFilter] = []
    dropped: list[str] = []
    for pushed in fetch.filters:
        field_ = fields.get(pushed.field)
        if (field_ is not None and not field_.documented) or ("emailOp", "contains") in pushed.params:
            dropped.extend(k for k, _ in pushed.params if k not in dropped)
        else:
            kept.append(pushed)
    if fetch.fields:
        dropped.append("fields")
    if not dropped:
        return None
    return replace(fetch, filters=tuple(kept), fields=()), tuple(dropped)


def part_read(job: Job, part: Part, limit: int) -> PartRead:
    """What `part` of the job's fetch asks: the fetch's query over the part's range (one second early)."""
    fetch = job.fetch
    ask = replace(
        fetch,
        since_us=fetch.since_us if part.own_lo is None else max(fetch.since_us, part.own_lo - SPLIT_PAD_US),
        until_us=fetch.until_us if part.own_hi is None else min(fetch.until_us, part.own_hi),
    )
    lo = fetch.since_us if part.own_lo is None else part.own_lo
    hi = fetch.until_us if part.own_hi is None else part.own_hi
    return PartRead(job, part, ask, lo, hi, limit)
