"""Live Cloudflare API source: auth, pagination, limit continuation, retries and rate limit -> record streams.

Completeness (SPEC section 6): a time range's records are trusted only when its pagination ended on an
empty page or on `result_info.total_pages` (cross-checked with `total_count`) and fewer than `limit`
records came back; pages past the one where `limit` is reached are never asked for. An answer that reaches
`limit` (or a cap the server applies silently), asked in ascending time order, holds the earliest records
of the range: every record before the second of its last one. Those are kept and the rest of the range is
read as a new part from that second on, so nothing received is asked for again but the records of that
second (and of the one before: a part asks one second early). An answer in no visible ascending order
is split into parts by estimate instead, its records dropped, each part fetched and verified the same
way, down to 1 s; what still cannot be completed is a FetchError for the rules reading that fetch.

Memory: a part (at most `limit` records) is buffered until it is verified, then handed to the
evaluator; each fetch holds at most `concurrency` parts and at most `concurrency` fetches run at once,
so memory is bounded by concurrency^2 x limit records, never by the number of records fetched.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

import httpx

from auditor import __version__
from auditor.compile.plan import Fetch
from auditor.core.fields import SOURCES
from auditor.core.provenance import RequestRecord
from auditor.core.timeutil import US, format_time, parse_epoch, parse_time
from auditor.sources.cloudflare.ratelimit import DEFAULT_WINDOWS, Clock, RateLimiter

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
PERMISSIONS = {"access_requests": "Access: Audit Logs Read", "scim_updates": "Access: SCIM Logs Read"}

# since/until inclusivity (and precision) is undocumented. Cuts are whole seconds; a part owning
# [X, Y) asks since=X-1s (an exclusive or second-truncating `since` still covers X) and until=Y (any
# `until` covers everything before Y), then keeps only the records it owns: a record on a cut is read
# exactly once whichever way the API counts.
SPLIT_PAD_US = US
FILL = 0.7  # parts are sized for about this share of `limit`, leaving room for uneven traffic
MAX_PARTS = 16
# A server returns at least this many entries per query: the API's documented default `limit`. Answers
# smaller than this (or than what any query returned) cannot be a silent cap (docs/guarantees.md).
MIN_CAP = 25
MAX_REQUESTS = 2000  # per fetch: about 2 million records; beyond that exported logs are the better tool
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RATELIMIT_RESET = re.compile(r"\bt=(\d+)")


class SetupError(Exception):
    """Missing or unsafe API settings, found before any request; one line for the user."""


class FetchError(Exception):
    """A fetch could not be completed: says which records are missing and why (never a secret)."""


class _Cancelled(FetchError):
    """The fetch was abandoned (another part failed, or the run stopped)."""

    def __init__(self) -> None:
        super().__init__("stopped before the fetch was complete")


# --- settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """How requests authenticate; the secret values never appear in repr or messages."""

    scheme: str  # token | key
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    both_set: bool = False  # a token and an email/key pair were both in the environment

    def describe(self) -> str:
        """Which scheme is used, for stderr (names of variables only)."""
        if self.scheme == "key":
            return "authenticating with CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY (X-Auth-Email/X-Auth-Key)"
        text = "authenticating with CLOUDFLARE_API_TOKEN (Authorization: Bearer)"
        if self.both_set:
            text += "; CLOUDFLARE_EMAIL/CLOUDFLARE_API_KEY are also set and not used"
        return text

    def hint(self, source: str) -> str:
        """What to check after a 401/403 on this source."""
        permission = PERMISSIONS[source]
        if self.scheme == "key":
            return f"check CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY, and that the user has {permission}"
        return f"check CLOUDFLARE_API_TOKEN has {permission}"


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


def credentials_from_env(env: Mapping[str, str]) -> Credentials:
    """CLOUDFLARE_API_TOKEN (preferred), else CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY; SetupError if neither."""
    token = env.get("CLOUDFLARE_API_TOKEN", "").strip()
    email = env.get("CLOUDFLARE_EMAIL", "").strip()
    key = env.get("CLOUDFLARE_API_KEY", "").strip()
    if token:
        if not _header_safe(token):
            raise SetupError("CLOUDFLARE_API_TOKEN holds characters that cannot be sent in an HTTP header")
        return Credentials("token", (("Authorization", f"Bearer {token}"),), (token,), both_set=bool(email or key))
    if email and key:
        if not (_header_safe(email) and _header_safe(key)):
            raise SetupError("CLOUDFLARE_EMAIL or CLOUDFLARE_API_KEY holds characters that cannot be sent in an "
                             "HTTP header")
        return Credentials("key", (("X-Auth-Email", email), ("X-Auth-Key", key)), (key,))
    if email or key:
        missing = "CLOUDFLARE_API_KEY" if email else "CLOUDFLARE_EMAIL"
        raise SetupError(f"{missing} is not set: the global API key needs both CLOUDFLARE_EMAIL and "
                         "CLOUDFLARE_API_KEY (or set CLOUDFLARE_API_TOKEN instead)")
    raise SetupError("no Cloudflare credentials: set CLOUDFLARE_API_TOKEN (a token with Access: Audit Logs Read "
                     "and Access: SCIM Logs Read), or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """The API base URL without a trailing slash; SetupError for anything that could leak credentials."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        raise SetupError("the API base URL cannot be parsed; expected https://HOST/client/v4") from None
    shown = f"{parts.scheme}://{host}" if host else "(unparsable URL)"
    if parts.scheme not in ("http", "https") or not host:
        raise SetupError(f"API base URL {shown!r} must look like https://HOST/client/v4")
    if "@" in parts.netloc:
        raise SetupError("the API base URL must not hold credentials (user:password@); use CLOUDFLARE_API_TOKEN")
    if parts.query or parts.fragment:
        raise SetupError(f"API base URL {shown!r} must not have a query or fragment")
    if parts.scheme == "http" and not _is_loopback(host):
        raise SetupError(f"refusing plain http:// to {host}: credentials would travel unencrypted; use https:// "
                         "(http is only allowed for a loopback host such as 127.0.0.1)")
    return url.strip().rstrip("/")


def check_account_id(account_id: str | None) -> str:
    """The account id, checked before it goes into a URL path."""
    if not account_id:
        raise SetupError("no Cloudflare account id: pass --account-id, set CLOUDFLARE_ACCOUNT_ID, or set "
                         "account_id in auditor.yaml")
    if not _ACCOUNT_ID.match(account_id):
        raise SetupError(f"account id {account_id!r} is not a Cloudflare account id (32 hexadecimal characters)")
    return account_id


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts and retries: exponential backoff with jitter; Retry-After honoured up to a bound."""

    attempts: int = 5  # in all, so 4 retries: waits of about 0.5, 1, 2, 4 s
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0

    def backoff(self, attempt: int, rand: float) -> float:
        """Wait after failed attempt `attempt` (1-based): half to all of base * 2^(attempt-1), capped."""
        return min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * (0.5 + rand / 2)


@dataclass(frozen=True)
class Timing:
    """Clock and randomness, injectable so tests run without real waits."""

    clock: Clock = field(default_factory=Clock)
    random: Callable[[], float] = random.random


DEFAULT_TIMING = Timing()  # read when a client is made, so tests can swap it for a fast clock


@dataclass(frozen=True)
class ApiSettings:
    """Everything the client needs; built and checked before the first request."""

    base_url: str
    account_id: str
    credentials: Credentials
    concurrency: int = 4
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    windows: tuple[tuple[int, float], ...] = DEFAULT_WINDOWS


def settings_from(base_url: str | None, account_id: str | None, env: Mapping[str, str],
                  concurrency: int | None = None) -> ApiSettings:
    """Settings from CLI/config values and the environment; SetupError names what is missing."""
    credentials = credentials_from_env(env)
    return ApiSettings(
        base_url=check_base_url(base_url or DEFAULT_BASE_URL),
        account_id=check_account_id(account_id),
        credentials=credentials,
        concurrency=max(1, concurrency or 4),
    )


# --- progress ----------------------------------------------------------------------------------------


class ProgressBar:
    """One redrawn stderr line: fetches done, and pages and records per fetch (no dependency)."""

    def __init__(self, stream: IO[str], fetches: int, clock: Callable[[], float] | None = None) -> None:
        self._stream = stream
        self._fetches = fetches
        self._clock = clock or Clock().monotonic
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}
        self._done = 0
        self._drawn = 0.0
        self._width = 0

    def expect(self, fetches: int) -> None:
        """The run will make `fetches` fetches in all (a re-planned run learns it half-way)."""
        with self._lock:
            self._fetches = fetches

    def page(self, key: str, records: int) -> None:
        """One page of fetch `key` arrived with `records` records."""
        with self._lock:
            counts = self._counts.setdefault(key, [0, 0])
            counts[0] += 1
            counts[1] += records
            self._draw(key)

    def done(self, key: str) -> None:
        """Fetch `key` finished (or failed)."""
        with self._lock:
            self._done += 1
            self._draw(key, force=True)

    def close(self) -> None:
        """Erase the line."""
        with self._lock:
            if self._width:
                self._stream.write("\r" + " " * self._width + "\r")
                self._stream.flush()

    def _draw(self, key: str, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._drawn < 0.1:
            return  # at most ten redraws a second
        self._drawn = now
        pages, records = self._counts.get(key, [0, 0])
        text = (f"fetching: {self._done}/{self._fetches} fetches done | {key}: {pages} pages, "
                f"{records} records")
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = max(self._width, len(text))


# --- the client --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """A slice of a fetch's range: it owns records in [own_lo, own_hi) (None: unbounded on that side)."""

    own_lo: int | None
    own_hi: int | None
    path: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Job:
    """One fetch being streamed."""

    fetch: Fetch
    index: int
    cancel: threading.Event
    sent: Iterator[int] = field(default_factory=itertools.count)  # next() is atomic: counts requests


@dataclass(frozen=True)
class _Page:
    """One parsed answer: records with their times, and result_info totals when the server sent them."""

    number: int
    records: list[tuple[int, dict[str, Any]]]
    total_pages: int | None
    total_count: int | None

    def signature(self) -> str | None:
        """Identifies the page's content: a server that ignores `page` repeats it. None for a page whose first
        and last records are alike (one record, or a run of identical ones, which projected fields make
        likelier): such pages can legitimately repeat, so they prove nothing."""
        records = self.records
        first, last = (json.dumps(records[i][1], sort_keys=True, default=str) for i in (0, -1))
        return None if first == last else f"{len(records)}|{first}|{last}"


@dataclass(frozen=True)
class _Done:
    origin: str
    records: list[tuple[int, dict[str, Any]]]  # (time in epoch microseconds, record), parsed once in _page


@dataclass(frozen=True)
class _Split:
    parts: tuple[_Part | _Done, ...]  # in time order: a _Done is a verified prefix, handed over as it is


class _Malformed(Exception):
    """A 2xx body that is not the envelope: retried (usually a cut transfer), then an error."""


class ApiClient:
    """Fetches plan fetches from the API: `stream(fetch, index)` yields verified parts; thread-safe."""

    def __init__(self, settings: ApiSettings, *, progress: ProgressBar | None = None, timing: Timing | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.concurrency = settings.concurrency
        self._timing = timing or DEFAULT_TIMING
        self._progress = progress
        self._closing = threading.Event()
        self._clock = Clock(self._timing.clock.monotonic, self._sleep)
        self._limiter = RateLimiter(settings.windows, self._clock)
        retry = settings.retry
        self._http = httpx.Client(
            base_url=settings.base_url,
            headers={"User-Agent": f"auditor/{__version__}", "Accept": "application/json",
                     **dict(settings.credentials.headers)},
            timeout=httpx.Timeout(retry.read_timeout_s, connect=retry.connect_timeout_s),
            limits=httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency),
            follow_redirects=False,  # a redirect could carry the credentials elsewhere
            transport=transport,
        )
        self._path_prefix = urlsplit(settings.base_url).path.rstrip("/")
        # Requests run only on `_http_pool` (so at most `concurrency` are in flight); part workers wait on
        # them and fetch streams wait on parts, so no pool ever waits on itself.
        self._http_pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="auditor-http")
        self._part_pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="auditor-part")
        self._lock = threading.Lock()
        self._log: list[tuple[tuple[Any, ...], RequestRecord]] = []
        self._most: dict[str, int] = {}  # per source: the most entries one query returned
        self._caps: dict[str, int] = {}  # per source: a cap below `limit` the server showed
        self._desc_ok: dict[str, bool] = {}  # per source: a check's answer came newest first, as asked

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop: abandon queued work and release connections."""
        self._closing.set()
        self._part_pool.shutdown(wait=True, cancel_futures=True)
        self._http_pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()
        if self._progress is not None:
            self._progress.close()

    def expect_fetches(self, fetches: int) -> None:
        """Tell the progress bar how many fetches the run makes in all."""
        if self._progress is not None:
            self._progress.expect(fetches)

    def cancel(self) -> None:
        """Make every pending request and wait give up (Ctrl-C)."""
        self._closing.set()

    def _sleep(self, seconds: float) -> None:
        """Wait (backoff, Retry-After, rate limit), giving up at once when the client is closing."""
        if self._timing.clock.sleep is time.sleep:
            self._closing.wait(seconds)  # the real clock: an Event wait ends early on cancel()
        else:
            self._timing.clock.sleep(seconds)
        if self._closing.is_set():
            raise _Cancelled

    def requests(self) -> tuple[RequestRecord, ...]:
        """Every request made so far, in plan order (fetch, part, page, attempt), for provenance."""
        with self._lock:
            return tuple(record for _, record in sorted(self._log, key=lambda item: item[0]))

    # -- streaming a fetch --

    def stream(self, fetch: Fetch, index: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """The fetch's records, one verified part at a time in time order (see `timed_stream`)."""
        for origin, records in self.timed_stream(fetch, index):
            yield origin, [record for _, record in records]

    def timed_stream(self, fetch: Fetch, index: int) -> Iterator[tuple[str, list[tuple[int, dict[str, Any]]]]]:
        """The fetch's records with their times (epoch microseconds, parsed once here), one verified part at a
        time in time order; FetchError when some cannot be had.

        Up to `concurrency` parts are in flight; a part that finishes early waits (in its future) for
        the ones before it, so at most that many parts are held and records arrive in a fixed order
        whatever the network does.
        """
        job = _Job(fetch, index, threading.Event())
        queue: list[_Part | _Done | Future[_Done | _Split]] = [_Part(None, None)]
        try:
            while queue:
                for i, item in enumerate(queue[: self.concurrency]):
                    if isinstance(item, _Part):
                        queue[i] = self._part_pool.submit(self._fetch_part, job, item)
                running = [f for f in queue if isinstance(f, Future)]
                head = queue[0]
                if isinstance(head, Future) and not head.done():
                    wait([f for f in running if not f.done()], return_when=FIRST_COMPLETED)
                for future in running:
                    if future.done() and future.exception() is not None:
                        future.result()  # fail fast: the rules of this fetch cannot be decided
                while queue and not isinstance(head := queue[0], _Part) and (isinstance(head, _Done) or head.done()):
                    queue.pop(0)
                    outcome = head if isinstance(head, _Done) else head.result()
                    if isinstance(outcome, _Split):
                        queue[:0] = outcome.parts
                        break
                    yield outcome.origin, outcome.records
        finally:
            job.cancel.set()
            for item in queue:
                if isinstance(item, Future):
                    item.cancel()
            if self._progress is not None:
                self._progress.done(fetch.key)

    def _fetch_part(self, job: _Job, part: _Part) -> _Done | _Split:
        """Fetch the pages of one part, never past the page where `limit` is reached.

        A part whose answer reaches `limit`, or that the completeness check finds cut at a silent cap, comes
        back as a _Split: its verified prefix and one part for the rest of its range (`_continue`), or, when
        the answer shows no ascending order to take a prefix from, parts cut by estimate (`_split`).
        """
        fetch = job.fetch
        lo = fetch.since_us if part.own_lo is None else part.own_lo
        hi = fetch.until_us if part.own_hi is None else part.own_hi
        ask = replace(
            fetch,
            since_us=fetch.since_us if part.own_lo is None else max(fetch.since_us, part.own_lo - SPLIT_PAD_US),
            until_us=fetch.until_us if part.own_hi is None else min(fetch.until_us, part.own_hi),
        )
        limit = self._limit(fetch)
        where = f"{fetch.source} records {format_time(lo)} .. {format_time(hi)}"
        got: dict[int, _Page] = {}

        seen: dict[str, int] = {}

        def get(numbers: Iterable[int]) -> None:
            futures = [self._http_pool.submit(self._get, job, part, ask, n, where) for n in numbers]
            try:
                for f in futures:
                    page = f.result()
                    got[page.number] = page
                    signature = page.signature() if page.records else None
                    if signature is not None:
                        other = seen.setdefault(signature, page.number)
                        if other != page.number:
                            raise FetchError(f"{where}: pages {other} and {page.number} hold the same records; "
                                             "the API seems to ignore `page`, so the data cannot be completed")
            finally:
                for f in futures:
                    f.cancel()

        get([1])
        total_pages, total_count = got[1].total_pages, got[1].total_count
        if (total_count is not None and total_count >= limit
                and any(a[0] > b[0] for a, b in itertools.pairwise(got[1].records))):
            # Too big, and not ascending, so no prefix of it could be kept: split before paging on.
            return self._split(job, part, lo, hi, total_count, got, ask)
        while True:
            state = _Progress.of(got)
            # A page past the one where `limit` is reached is necessarily empty, so it is not asked for in advance;
            # where that page lies is known only while the pages are one size.
            uniform = all(len(got[n].records) == state.page_size for n in range(1, state.complete))
            last_page = math.ceil(limit / state.page_size) if uniform else math.inf
            if state.lower_bound >= limit:  # the answer reaches `limit`
                if state.received < limit or state.ended:
                    # A short page, or records after an empty one: the pages are not slices of one answer.
                    return self._split(job, part, lo, hi, state.lower_bound, got, ask)
                self._answered(fetch.source, state.received)
                total = max(state.received, total_count or 0, _estimate(got, ask, state) or 0)
                return self._continue(job, part, lo, hi, got, state) or self._split(job, part, lo, hi, total, got, ask)
            if state.ended:
                break  # pagination ends on an empty page...
            if total_pages is not None and state.complete >= total_pages and (
                    total_count is None or state.received >= total_count):
                break  # ...or on result_info.total_pages, when total_count agrees
            # Not past the limit page; but a short limit page still needs the (empty) next one to end on.
            stop = last_page + 1 if state.complete < last_page else state.complete + 2
            if total_pages is not None and state.complete < total_pages:
                numbers = list(range(state.complete + 1, int(min(total_pages + 1, stop))))
            else:
                estimate = _estimate(got, ask, state)
                window = self._window(got, state, estimate, fetch)
                end = int(min(state.first_empty, state.complete + 1 + window, stop))
                numbers = list(range(state.complete + 1, end))
            get(numbers)
        if state.beyond:
            raise FetchError(f"{where}: page {state.beyond} has records after the empty page "
                             f"{state.complete + 1}; the pagination is inconsistent")
        if total_count is not None and state.received < total_count:
            raise FetchError(f"{where}: the API reported {total_count} records but pagination ended after "
                             f"{state.received}; the data is incomplete")
        received = state.received
        if received and not self._served(fetch.source, received):
            # Nothing yet proves the server returns more than `received` entries for a query: check that it
            # did not silently cap `limit` (docs/guarantees.md, "limit caps").
            verdict = self._capped(job, part, ask, got, state, where)
            if verdict is not False:
                if verdict:
                    self._learn_cap(fetch.source, received)
                    # Cut at the cap, the ascending answer is a prefix of the range like one reaching `limit`.
                    rest = self._continue(job, part, lo, hi, got, state)
                    if rest is not None:
                        return rest
                elif hi - lo <= US:
                    raise FetchError(f"{where}: the API returned {received} records and may hold more that it did "
                                     f"not return (a silent cap below limit={fetch.limit}?); cannot verify that "
                                     "the data is complete")
                total = max(received + 1, (_estimate(got, ask, state) or 0) if verdict else 0)
                return self._split(job, part, lo, hi, total, got, ask)
        records = [(t, r) for n in range(1, state.complete + 1) for t, r in got[n].records
                   if (part.own_lo is None or t >= part.own_lo) and (part.own_hi is None or t < part.own_hi)]
        return _Done(where, records)

    # -- a server capping `limit` below what was asked --

    def _limit(self, fetch: Fetch) -> int:
        """The entries one query can return: the fetch's `limit`, or less once the server showed a lower cap."""
        with self._lock:
            return min(fetch.limit, self._caps.get(fetch.source, fetch.limit))

    def _served(self, source: str, received: int) -> bool:
        """Note that one query of `source` returned `received` entries; True when that many are provably not
        the server's cap (a query returned more, the cap is known and larger, or it is below MIN_CAP)."""
        with self._lock:
            most = self._most.get(source, 0)
            self._most[source] = max(most, received)
            cap = self._caps.get(source)
            return received < max(most, MIN_CAP) or (cap is not None and received < cap)

    def _answered(self, source: str, entries: int) -> None:
        """Note that one query of `source` returned `entries` entries (the server's cap is at least that), so
        later answers with fewer need no completeness check."""
        with self._lock:
            self._most[source] = max(self._most.get(source, 0), entries)

    def _learn_cap(self, source: str, cap: int) -> None:
        with self._lock:
            self._caps[source] = min(cap, self._caps.get(source, cap))

    def _capped(self, job: _Job, part: _Part, ask: Fetch, got: dict[int, _Page], state: _Progress,
                where: str) -> bool | None:
        """Whether the server cut the part's answer short at a silent cap (True), provably did not (False),
        or one more query cannot tell (None: the answer was not in ascending order, or the check's was not
        newest first).

        If an ascending answer was cut, every record it lacks is at or after its last time `last`. The same
        range read newest first (`direction=desc`, the API's default) lists the records at or after `last`
        before any older one: reaching an older record after exactly the held records at `last` proves none
        is missing; a record at or after `last` that was not held proves the cut. One request in the usual
        case. Records that all share one instant prove nothing about the check's order, so they are
        trusted only once a check of this source came back newest first (docs/guarantees.md).
        """
        held = [(t, r) for n in range(1, state.complete + 1) for t, r in got[n].records]
        if any(a[0] > b[0] for a, b in itertools.pairwise(held)):
            return None
        last = held[-1][0]
        with self._lock:
            newest_first_honoured = self._desc_ok.get(ask.source, False)
        if held[0][0] == last and not newest_first_honoured:
            return None  # one instant: nothing here shows that the check's order is really newest first
        known: dict[str, int] = {}
        remaining = 0
        for t, r in held:
            if t == last:
                k = _identity(r)
                known[k] = known.get(k, 0) + 1
                remaining += 1
        check = _Part(part.own_lo, part.own_hi, (*part.path, _CHECK))
        newest_first = replace(ask, direction="desc")
        previous = math.inf
        for number in range(1, math.ceil(len(held) / state.page_size) + 3):
            page = self._get(job, check, newest_first, number, f"{where} (completeness check)")
            for t, r in page.records:
                if t > previous:
                    return None  # not newest first: the server ignored direction
                if t < previous != math.inf:
                    with self._lock:
                        self._desc_ok[ask.source] = True
                previous = t
                if t < last:
                    return False if remaining == 0 else None
                k = _identity(r)
                if not known.get(k):
                    return True  # at or after `last` and not held: the ascending answer was cut short
                known[k] -= 1
                remaining -= 1
            if len(page.records) < state.page_size:
                return False if remaining == 0 else None  # the answer ended: every record held
        return None

    def _window(self, got: dict[int, _Page], state: _Progress, estimate: float | None, fetch: Fetch) -> int:
        """How many pages to ask for next when the total is unknown: more only when more are surely coming (the
        caller never goes past the page where `limit` is reached)."""
        last = len(got[state.complete].records)
        if estimate is None or last < state.page_size or (state.complete == 1 and last < fetch.per_page):
            return 1  # a short page is probably the last: ask only for the (likely empty) next one
        # Half the pages the estimate expects: traffic varies by hour, and a page past the end is wasted.
        expected = (estimate - state.received) / state.page_size
        return max(1, min(self.concurrency, int(expected / 2) + 1))

    def _continue(self, job: _Job, part: _Part, lo: int, hi: int, got: dict[int, _Page],
                  state: _Progress) -> _Done | _Split | None:
        """A part whose answer was cut (at `limit` or a silent cap) as the records it holds up to the second of
        its last one, then one part for the rest of its range; None when the answer proves no such prefix.

        Asked with `direction=asc`, the server answered the earliest records of the range: every record
        before the last one's time is among them, and at that time more may have been left out. So records
        before that second are kept and nothing else is asked for again; the new part owns the range from
        that second (asking one second early, it drops the records it does not own, so a record of that
        second is counted once). An answer that is not ascending (a server ignoring `direction`), or shows
        no order at all (one instant), proves nothing, nor does one whose last second is the part's first
        (no progress): those are split by estimate instead (`_split`).
        """
        if any(len(got[n].records) != state.page_size for n in range(1, state.complete)):
            return None  # a short page before the last: the pages are not slices of one answer
        held = [(t, r) for n in range(1, state.complete + 1) for t, r in got[n].records]
        if not held or held[0][0] == held[-1][0] or any(a[0] > b[0] for a, b in itertools.pairwise(held)):
            return None
        cut = held[-1][0] // US * US
        if cut <= lo:
            return None
        end = cut if part.own_hi is None else min(cut, part.own_hi)
        records = [(t, r) for t, r in held if (part.own_lo is None or t >= part.own_lo) and t < end]
        done = _Done(f"{job.fetch.source} records {format_time(lo)} .. {format_time(min(cut, hi))}", records)
        if cut >= hi:  # the last record is at the part's end (`until` inclusive): nothing of it is left
            return done
        return _Split((done, _Part(cut, part.own_hi, (*part.path, 1))))

    def _split(self, job: _Job, part: _Part, lo: int, hi: int, total: float, got: dict[int, _Page],
               ask: Fetch) -> _Split:
        """Cut [lo, hi) at whole seconds into parts expected to hold FILL x limit records each, dropping the
        records received: for an answer that reached `limit` (or a cap) but offers no prefix to keep
        (`_continue`), or that the completeness check could not decide.

        With asc-ordered pages the cuts follow the records seen; otherwise they are even in time.
        Either way every part is verified on its own, so a poor guess costs requests, never records.
        FetchError when a part of 1 s still reaches `limit`.
        """
        limit = self._limit(job.fetch)
        span = hi - lo
        if span <= US:
            raise FetchError(f"{job.fetch.source} records {format_time(lo)} .. {format_time(hi)}: more than "
                             f"{limit} records within 1 s (the API's limit per query); cannot split further")
        k = max(2, min(math.ceil(total / (FILL * limit)), MAX_PARTS, span // US))
        curve = _curve(got, ask, total)
        even = [lo + span * i / k for i in range(1, k)]
        cuts: list[int] = []
        for times in ([_time_at(curve, total * i / k) for i in range(1, k)] if curve else [], even):
            cuts = [c for c in sorted({int(t) // US * US for t in times}) if lo < c < hi]
            if cuts:
                break
        # A second holding a large share of `limit` (a burst) gets a part of its own, so it fails (or
        # completes) at once instead of being halved down to level by level.
        per_second: dict[int, int] = {}
        for page in got.values():
            for t, _ in page.records:
                if lo <= t < hi:
                    per_second[t // US * US] = per_second.get(t // US * US, 0) + 1
        bursts = [x for x, n in per_second.items() if n * MAX_PARTS >= limit]
        cuts = [c for c in sorted({*cuts, *bursts, *(x + US for x in bursts)}) if lo < c < hi]
        if not cuts:  # every guess fell outside: halve at a whole second (one lies inside, span > 1 s)
            middle = (lo + span // 2) // US * US
            cuts = [c for c in (middle, middle + US) if lo < c < hi][:1] or [lo + span // 2]
        bounds = [part.own_lo, *cuts, part.own_hi]
        return _Split(tuple(_Part(bounds[i], bounds[i + 1], (*part.path, i)) for i in range(len(bounds) - 1)))

    # -- one request, with retries --

    def _get(self, job: _Job, part: _Part, ask: Fetch, number: int, where: str) -> _Page:
        """GET one page: retried on connection errors, timeouts, 429, 5xx and cut bodies; FetchError otherwise."""
        fetch, retry, timing = job.fetch, self.settings.retry, self._timing
        path = ask.path(self.settings.account_id)
        query = urlencode(ask.query(page=number))
        problem = ""
        for attempt in range(1, retry.attempts + 1):
            if job.cancel.is_set() or self._closing.is_set():
                raise _Cancelled
            if next(job.sent) >= MAX_REQUESTS:
                raise FetchError(f"{where}: this fetch needs more than {MAX_REQUESTS} requests (the API allows "
                                 "1200 per 5 minutes); narrow the rules' windows or audit exported logs with --data")
            self._limiter.acquire()
            key = (job.index, part.path, number, attempt)
            wait_s = retry.backoff(attempt, timing.random())
            try:
                response = self._http.get(f"{path}?{query}")
            except httpx.TimeoutException as exc:
                self._record(key, path, query, None, 0, None)
                problem = f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                self._record(key, path, query, None, 0, None)
                problem = f"connection failed ({type(exc).__name__}: {self._scrub(str(exc)) or 'no detail'})"
            except httpx.HTTPError as exc:  # not retryable (e.g. an invalid URL): say what, never the headers
                self._record(key, path, query, None, 0, None)
                raise FetchError(f"{where} (page {number}): request failed ({type(exc).__name__}: "
                                 f"{self._scrub(str(exc))})") from None
            else:
                body, status = response.content, response.status_code
                doc = _json(body)
                if 200 <= status < 300:
                    try:
                        page = self._page(doc, number, fetch.source, where)
                    except _Malformed as exc:
                        self._record(key, path, query, status, 0, body)
                        problem = f"{status} response {exc}"
                    except FetchError:
                        self._record(key, path, query, status, 0, body)
                        raise
                    else:
                        self._record(key, path, query, status, len(page.records), body)
                        if self._progress is not None:
                            self._progress.page(fetch.key, len(page.records))
                        return page
                else:
                    self._record(key, path, query, status, 0, body)
                    text = f"{status} {self._errors(doc, response.reason_phrase)}"
                    if status != 429 and status < 500:
                        raise FetchError(f"{where} (page {number}): {text}: {self._hint(status, fetch.source)}")
                    after = _retry_after(response.headers)
                    if after is not None and after > retry.max_retry_after_s:
                        raise FetchError(f"{where} (page {number}): {text}: the API asks to wait {after:.0f} s, "
                                         f"more than the {retry.max_retry_after_s:.0f} s bound; try again later")
                    if after is not None:
                        wait_s = max(wait_s, after)
                        self._limiter.pause(after)  # every thread backs off, not just this one
                    problem = f"{text} (rate limited)" if status == 429 else text
            if attempt < retry.attempts:
                self._clock.sleep(wait_s)
        raise FetchError(f"{where} (page {number}): {problem}; gave up after {retry.attempts} attempts")

    def _page(self, doc: Any, number: int, source: str, where: str) -> _Page:
        """Check the envelope and every record; _Malformed for a body that is not the envelope."""
        if doc is _NOT_JSON:
            raise _Malformed("body is not valid JSON")
        if not isinstance(doc, dict) or "success" not in doc:
            raise _Malformed("body is not a Cloudflare API envelope")
        if doc["success"] is not True:
            raise FetchError(f"{where} (page {number}): the API answered success={json.dumps(doc['success'])}: "
                             f"{self._errors(doc, 'no error given')}")
        result = doc.get("result")
        if not isinstance(result, list):
            raise _Malformed(f"envelope's result is {_kind(result)}, not a list of records")
        time_field = SOURCES[source].time_field
        records = []
        for i, record in enumerate(result, 1):
            if not isinstance(record, dict):
                raise FetchError(f"{where} (page {number}): record {i} is {_kind(record)}, not an object")
            raw = record.get(time_field)
            try:
                t = parse_time(raw) if isinstance(raw, str) else parse_epoch(raw)
            except (ValueError, TypeError, OverflowError):
                raise FetchError(f"{where} (page {number}): record {i} has an invalid {time_field} "
                                 f"{self._scrub(json.dumps(raw))[:60]} (expected an RFC 3339 timestamp)") from None
            records.append((t, record))
        info = doc.get("result_info")
        info = info if isinstance(info, dict) else {}
        return _Page(number, records, _count(info.get("total_pages")), _count(info.get("total_count")))

    def _record(self, key: tuple[Any, ...], path: str, query: str, status: int | None, records: int,
                body: bytes | None) -> None:
        digest = hashlib.sha256(body).hexdigest() if body is not None else None
        entry = RequestRecord(self._path_prefix + path, query, status, records, digest)  # type: ignore[arg-type]
        with self._lock:
            self._log.append((key, entry))

    def _errors(self, doc: Any, fallback: str) -> str:
        """Cloudflare's `errors` as `message (code); ...`, one line, scrubbed."""
        parts = []
        if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
            for err in doc["errors"]:
                if isinstance(err, dict):
                    code = err.get("code")
                    message = str(err.get("message") or "").strip() or "error"
                    parts.append(f"{message} ({code})" if code not in (None, "") else message)
        text = "; ".join(parts) or fallback or "no error message"
        return self._scrub(" ".join(text.split()))[:300]

    def _hint(self, status: int, source: str) -> str:
        if status in (401, 403):
            return self.settings.credentials.hint(source)
        if status == 404:
            return (f"check the account id {self.settings.account_id!r} (--account-id, CLOUDFLARE_ACCOUNT_ID or "
                    "account_id in auditor.yaml) and the API base URL")
        if status == 400:
            return ("the API rejected a query parameter; if it is one the public schema does not declare, "
                    "`pushdown: documented` in auditor.yaml stops sending it")
        if status < 400:
            return "unexpected redirect (not followed); check the API base URL"
        return "not retried (a client error)"

    def _scrub(self, text: str) -> str:
        """Text with every secret value masked: server messages and transport errors may echo them."""
        for secret in self.settings.credentials.secrets:
            if secret:
                text = text.replace(secret, "[redacted]")
        return text


@dataclass(frozen=True)
class _Progress:
    """What the pages fetched so far of one part prove."""

    complete: int  # pages 1..complete all arrived with records
    ended: bool  # page complete+1 arrived empty
    received: int  # records on all pages that arrived
    page_size: int  # the server's page size (largest page seen): it may cap per_page silently
    lower_bound: int  # records the part surely holds, from the furthest page with records
    first_empty: float  # the first page known to be empty (inf if none)
    beyond: int | None  # a page with records after the empty page that ended pagination

    @staticmethod
    def of(got: dict[int, _Page]) -> _Progress:
        """Summarise the pages fetched so far."""
        complete = 0
        while complete + 1 in got and got[complete + 1].records:
            complete += 1
        ended = complete + 1 in got
        size = max(len(p.records) for p in got.values()) or 1
        filled = sorted(n for n, p in got.items() if p.records and n > complete)
        empty = [n for n, p in got.items() if not p.records]
        lower = max(((n - 1) * size + len(p.records) for n, p in got.items() if p.records), default=0)
        return _Progress(
            complete=complete, ended=ended, received=sum(len(p.records) for p in got.values()), page_size=size,
            lower_bound=lower, first_empty=min(empty, default=math.inf),
            beyond=filled[0] if filled and ended else None,
        )


def _estimate(got: dict[int, _Page], ask: Fetch, state: _Progress) -> float | None:
    """Records expected in the whole range, from how far the asc-ordered pages got; None if unordered."""
    last_time = None
    for n in sorted(got):
        for t, _ in got[n].records:
            if last_time is not None and t < last_time:
                return None  # not in ascending order: the server ignores `direction`, no estimate
            last_time = t
    furthest = max((n for n, p in got.items() if p.records), default=None)
    if furthest is None or last_time is None or last_time <= ask.since_us:
        return None
    position = (furthest - 1) * state.page_size + len(got[furthest].records)
    return position * (ask.until_us - ask.since_us) / (last_time - ask.since_us)


def _curve(got: dict[int, _Page], ask: Fetch, total: float) -> list[tuple[int, float]] | None:
    """(time, records before it) points from asc-ordered pages, ending at (until, total); None if unordered."""
    points: list[tuple[int, float]] = [(ask.since_us, 0.0)]
    size = max(len(p.records) for p in got.values()) or 1
    for n in sorted(got):
        records = got[n].records
        if not records:
            continue
        first, last = records[0][0], records[-1][0]
        if first < points[-1][0] or any(a[0] > b[0] for a, b in itertools.pairwise(records)):
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


_CHECK = 1 << 30  # the completeness check's place in the request log: after the part's own pages


def _identity(record: dict[str, Any]) -> str:
    """A record's content as canonical text, to tell the same record in two answers."""
    return json.dumps(record, sort_keys=True, default=str)


# --- small parsers -----------------------------------------------------------------------------------

_NOT_JSON = object()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _count(value: Any) -> int | None:
    """A non-negative integer from result_info, else None (an unusable total is ignored, not trusted)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date), else from `Ratelimit: ...;t=N`."""
    value = headers.get("Retry-After")
    if value is not None:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    reset = _RATELIMIT_RESET.search(headers.get("Ratelimit", ""))
    return float(reset.group(1)) if reset else None
