"""Progress events the client emits while it reads; the CLI decides how (and whether) to show them.

The client never writes to a terminal: it calls the `Progress` callback it was given with one of these
typed events, from any of its threads (a receiver must be thread-safe).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class FetchesExpected:
    """The run makes `fetches` fetches in all (a re-planned run learns it half-way)."""

    fetches: int


@dataclass(frozen=True)
class FetchStarted:
    """Fetch `fetch` (its key) starts reading `source` over [since_us, until_us) (epoch microseconds)."""

    fetch: str
    source: str
    since_us: int
    until_us: int


@dataclass(frozen=True)
class RangeRead:
    """The records of fetch `fetch` in [lo_us, hi_us) are read and verified (spans never overlap)."""

    fetch: str
    lo_us: int
    hi_us: int


@dataclass(frozen=True)
class PageRead:
    """One page of fetch `fetch` (its key) arrived with `records` records."""

    fetch: str
    records: int


@dataclass(frozen=True)
class FetchDone:
    """Fetch `fetch` finished (or failed)."""

    fetch: str


@dataclass(frozen=True)
class RetryWait:
    """A request failed and is retried after `seconds`: retry `retry` of `retries`.

    `rate_limited` when the server asked for the wait (429 or `Retry-After`), so the CLI can say so.
    """

    fetch: str
    seconds: float
    retry: int
    retries: int
    reason: str
    rate_limited: bool = False


@dataclass(frozen=True)
class FellBack:
    """The API refused fetch `fetch` (400); it is read again without the parameters `dropped`, which the
    public schema does not declare (or may not take), and filtered locally: answers stay the same."""

    fetch: str
    dropped: tuple[str, ...]
    instead: str = ""  # the key of the lighter fetch, whose events follow (its pages belong to `fetch`)


@dataclass(frozen=True)
class Throttled:
    """The client held a request `seconds` to stay under Cloudflare's request quotas."""

    seconds: float


ProgressEvent = FetchesExpected | FetchStarted | RangeRead | PageRead | FetchDone | RetryWait | FellBack | Throttled
Progress = Callable[[ProgressEvent], None]


def ignore(event: ProgressEvent) -> None:
    """The receiver when nobody watches."""
