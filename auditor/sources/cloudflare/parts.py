"""Request building: what a plan's fetch asks of the Cloudflare API (`Ask`: path, query parameters, page size,
`limit`, order); a fetch is read as parts of its time range, and what one part asks.

The plan is source-neutral (auditor.compile.plan): the request shape lives here, set by the client's settings
(`per_page`, `limit`).

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
from urllib.parse import urlencode

from auditor.compile.plan import Fetch, PushedFilter
from auditor.core.fields import SOURCES
from auditor.core.model import Config
from auditor.core.timeutil import US, format_time
from auditor.sources.cloudflare.envelope import FetchError, Page
from auditor.sources.cloudflare.settings import LIMIT

SPLIT_PAD_US = US
API_PREFIX = "/client/v4"


@dataclass(frozen=True)
class Ask:
    """One query of the Cloudflare API: a fetch's filters and projection over a time range, with the request
    shape (records per page, `limit`, order)."""

    source: str
    since_us: int
    until_us: int
    filters: tuple[PushedFilter, ...]
    fields: tuple[str, ...] = ()
    per_page: int = Config.per_page
    limit: int = LIMIT
    direction: str = "asc"  # the completeness check also reads a range newest first

    @classmethod
    def of(cls, fetch: Fetch, per_page: int = Config.per_page, limit: int = LIMIT) -> Ask:
        """What the API is asked for a plan's fetch."""
        return cls(fetch.source, fetch.since_us, fetch.until_us, fetch.filters, fetch.fields, per_page, limit)

    def query(self, *, page: int | None = None) -> list[tuple[str, str]]:
        """Every query parameter, in a stable order (repeated keys for SCIM arrays)."""
        params = [
            ("since", format_time(self.since_us)),
            ("until", format_time(self.until_us)),
            ("direction", self.direction),
            ("limit", str(self.limit)),
            ("per_page", str(self.per_page)),
        ]
        if page is not None:
            params.append(("page", str(page)))
        params.extend(pair for p in self.filters for pair in p.params)
        if self.fields:
            params.append(("fields", ",".join(self.fields)))
        return params

    def path(self, account_id: str | None) -> str:
        """The API path below the base URL."""
        return f"/accounts/{account_id or '{account_id}'}{SOURCES[self.source].path}"

    def describe(self, account_id: str | None) -> str:
        """`GET /client/v4/accounts/.../access_requests?since=...` for results and messages."""
        return f"GET {API_PREFIX}{self.path(account_id)}?{urlencode(self.query())}"

    def to_json(self, account_id: str | None) -> dict[str, str]:
        """The request as `plan --json` shows it: path and query."""
        return {"path": API_PREFIX + self.path(account_id), "query": urlencode(self.query())}


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

    fetch: Fetch  # as planned (its key names the fetch in progress events)
    ask: Ask  # what is asked for it (without the suspect parameters after a refusal: `fallback`)
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
    ask: Ask  # the job's query with this part's since/until
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


def fallback(fetch: Ask) -> tuple[Ask, tuple[str, ...]] | None:
    """The query without what the API may refuse, and the parameter names dropped: filters through parameters
    the public schema does not declare, the `contains` e-mail operator, and the `fields` projection. None when
    the query sends none of them. Every condition is also checked locally, so the answer is the same."""
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
    """What `part` of the job's fetch asks: the job's query over the part's range (one second early)."""
    fetch = job.ask
    ask = replace(
        fetch,
        since_us=fetch.since_us if part.own_lo is None else max(fetch.since_us, part.own_lo - SPLIT_PAD_US),
        until_us=fetch.until_us if part.own_hi is None else min(fetch.until_us, part.own_hi),
    )
    lo = fetch.since_us if part.own_lo is None else part.own_lo
    hi = fetch.until_us if part.own_hi is None else part.own_hi
    return PartRead(job, part, ask, lo, hi, limit)
