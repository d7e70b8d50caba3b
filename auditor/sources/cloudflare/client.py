"""Live Cloudflare API source: streams each plan fetch's records, one verified part at a time.

The jobs are split over modules: `settings` (credentials, URL, retry policy), `http` (one GET with
retries, backoff and Retry-After), `parts` (what a part of a fetch asks), `pagination` (which pages,
when an answer has ended), `completeness` (continuing past `limit`, splitting, silent cap checks) and
`events` (progress reported to the CLI through a callback).

Completeness (docs/guarantees.md, section 1): a time range's records are trusted only when its pagination
ended on an empty page (`result_info` is a cross-check: any difference is an error), fewer than `limit`
records came back, and no silent cap can have cut them (one small newest-first check per fetch); what
still cannot be completed is a FetchError for the rules reading that fetch.

Memory: a part (at most `limit` records) is buffered until it is verified, then handed to the
evaluator; each fetch holds at most `concurrency` parts and at most `concurrency` fetches run at once,
so memory is bounded by concurrency^2 x limit records, never by the number of records fetched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from auditor.compile.plan import Fetch
from auditor.core.provenance import RequestRecord
from auditor.core.timeutil import US
from auditor.sources.cloudflare.completeness import CapMemory, GetPage, capped, continue_cut, split
from auditor.sources.cloudflare.envelope import FetchError, Page, Rejected
from auditor.sources.cloudflare.events import (
    FellBack,
    FetchDone,
    FetchesExpected,
    FetchStarted,
    Progress,
    RangeRead,
    ignore,
)
from auditor.sources.cloudflare.http import MAX_REQUESTS, Transport, retry_after
from auditor.sources.cloudflare.pagination import PageReader, PagesState, ascending, check_ended, estimate, paginate
from auditor.sources.cloudflare.parts import Ask, Done, Job, Part, PartRead, Split, fallback, part_read
from auditor.sources.cloudflare.ratelimit import DEFAULT_WINDOWS
from auditor.sources.cloudflare.settings import (
    DEFAULT_BASE_URL,
    ApiSettings,
    Credentials,
    RetryPolicy,
    SetupError,
    Timing,
    check_account_id,
    check_base_url,
    credentials_from_env,
    settings_from,
)

__all__ = [
    "DEFAULT_BASE_URL", "DEFAULT_WINDOWS", "MAX_REQUESTS", "ApiClient", "ApiSettings", "Credentials", "FetchError",
    "RetryPolicy", "SetupError", "Timing", "check_account_id", "check_base_url", "credentials_from_env", "retry_after",
    "settings_from",
]

DEFAULT_TIMING = Timing()  # read when a client is made, so tests can swap it for a fast clock


class ApiClient:
    """Fetches plan fetches from the API: `stream(fetch, index)` yields verified parts; thread-safe."""

    def __init__(self, settings: ApiSettings, *, progress: Progress | None = None, timing: Timing | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.concurrency = settings.concurrency
        self._progress = progress or ignore
        self._closing = threading.Event()
        self._transport = Transport(settings, timing or DEFAULT_TIMING, self._progress, self._closing, transport)
        # Requests run only on `_http_pool` (so at most `concurrency` are in flight); part workers wait on
        # them and fetch streams wait on parts, so no pool ever waits on itself.
        self._http_pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="auditor-http")
        self._part_pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="auditor-part")
        self._caps = CapMemory()
        self._lock = threading.Lock()
        self._fallbacks: dict[str, str] = {}

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop: abandon queued work and release connections."""
        self._closing.set()
        self._part_pool.shutdown(wait=True, cancel_futures=True)
        self._http_pool.shutdown(wait=True, cancel_futures=True)
        self._transport.close()

    def expect_fetches(self, fetches: int) -> None:
        """Tell the progress display how many fetches the run makes in all."""
        self._progress(FetchesExpected(fetches))

    def cancel(self) -> None:
        """Make every pending request and wait give up (Ctrl-C)."""
        self._closing.set()

    def requests(self) -> tuple[RequestRecord, ...]:
        """Every request made so far, in plan order (fetch, part, page, attempt), for provenance."""
        return self._transport.requests()

    # -- streaming a fetch --

    def stream(self, fetch: Fetch, index: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """The fetch's records, one verified part at a time in time order (see `timed_stream`)."""
        for origin, records in self.timed_stream(fetch, index):
            yield origin, [record for _, record in records]

    def timed_stream(self, fetch: Fetch, index: int) -> Iterator[tuple[str, list[tuple[int, dict[str, Any]]]]]:
        """The fetch's records with their times (epoch microseconds, parsed once per page), one verified part at
        a time in time order; FetchError when some cannot be had.

        A 400 before any record was handed over makes the fetch read again without the parameters the API
        may refuse (`parts.fallback`): every condition is checked locally anyway, so only the number of
        requests changes. A 400 that persists is the error, naming what was left out.
        """
        started = False
        self._progress(FetchStarted(fetch.key, fetch.source, fetch.since_us, fetch.until_us))
        ask = Ask.of(fetch, self.settings.per_page, self.settings.limit)
        try:
            try:
                for part in self._stream(fetch, ask, index):
                    started = True
                    yield part
            except Rejected:
                lighter = None if started else fallback(ask)
                if lighter is None:
                    raise
                self._fell_back(fetch, *lighter)
                try:
                    yield from self._stream(fetch, lighter[0], index)
                except Rejected as again:
                    raise FetchError(f"{again} (also without {', '.join(lighter[1])}, which the public schema "
                                     "does not declare)") from None
        finally:
            self._progress(FetchDone(fetch.key))

    def fallbacks(self) -> dict[str, str]:
        """Fetch key -> the query it was read with instead, for fetches the API refused as planned (400)."""
        with self._lock:
            return dict(self._fallbacks)

    def describe(self, fetch: Fetch) -> str:
        """The request a fetch is read with: `GET /client/v4/accounts/.../access_requests?since=...`."""
        return Ask.of(fetch, self.settings.per_page, self.settings.limit).describe(self.settings.account_id)

    def _fell_back(self, fetch: Fetch, lighter: Ask, dropped: tuple[str, ...]) -> None:
        with self._lock:
            self._fallbacks[fetch.key] = lighter.describe(self.settings.account_id)
        self._progress(FellBack(fetch.key, dropped, fetch.key))  # the lighter query's events name the fetch too

    def _stream(self, fetch: Fetch, ask: Ask, index: int) -> Iterator[tuple[str, list[tuple[int, dict[str, Any]]]]]:
        """The verified parts of one fetch as asked (see `timed_stream`).

        Up to `concurrency` parts are in flight; a part that finishes early waits (in its future) for
        the ones before it, so at most that many parts are held and records arrive in a fixed order
        whatever the network does.
        """
        job = Job(fetch, ask, index, threading.Event())
        queue: list[Part | Done | Future[Done | Split]] = [Part(None, None)]
        try:
            while queue:
                self._start(job, queue)
                outcome = self._next_done(queue)
                while outcome is not None:
                    yield outcome.origin, outcome.records
                    outcome = self._next_done(queue)
        finally:
            job.cancel.set()
            for item in queue:
                if isinstance(item, Future):
                    item.cancel()

    def _start(self, job: Job, queue: list[Part | Done | Future[Done | Split]]) -> None:
        """Submit the first `concurrency` queued parts, and wait until the head (or any part) is done."""
        for i, item in enumerate(queue[: self.concurrency]):
            if isinstance(item, Part):
                queue[i] = self._part_pool.submit(self._read_part, job, item)
        running = [f for f in queue if isinstance(f, Future)]
        head = queue[0]
        if isinstance(head, Future) and not head.done():
            wait([f for f in running if not f.done()], return_when=FIRST_COMPLETED)
        for future in running:
            if future.done() and future.exception() is not None:
                future.result()  # fail fast: the rules of this fetch cannot be decided

    @staticmethod
    def _next_done(queue: list[Part | Done | Future[Done | Split]]) -> Done | None:
        """Pop the head if it is verified (a split head is replaced by its parts); None if it is not ready."""
        while queue:
            item = queue[0]
            if isinstance(item, Done):
                outcome: Done | Split = item
            elif isinstance(item, Future) and item.done():
                outcome = item.result()
            else:
                return None
            queue.pop(0)
            if isinstance(outcome, Split):
                queue[:0] = outcome.parts
                return None
            return outcome
        return None

    # -- one part --

    def _read_part(self, job: Job, part: Part) -> Done | Split:
        """`_fetch_part`, telling the progress display which time ranges it verified."""
        outcome = self._fetch_part(job, part)
        for done in outcome.parts if isinstance(outcome, Split) else (outcome,):
            if isinstance(done, Done) and done.span is not None:
                self._progress(RangeRead(job.fetch.key, *done.span))
        return outcome

    def _fetch_part(self, job: Job, part: Part) -> Done | Split:
        """Fetch the pages of one part, never past the page where `limit` is reached.

        A part whose answer reaches `limit`, or that the completeness check finds cut at a silent cap, comes
        back as a Split: its verified prefix and one part for the rest of its range (`continue_cut`), or,
        when the answer shows no ascending order to take a prefix from, parts cut by estimate (`split`).
        """
        read = part_read(job, part, self._caps.limit(job.ask))
        pages = PageReader(read, lambda n: self._http_pool.submit(
            self._transport.get, job, part.path, read.ask, n, read.where))
        pages([1])
        first = read.got[1]
        if first.total_count is not None and first.total_count >= read.limit and not ascending(first.records):
            # Too big, and not ascending, so no prefix of it could be kept: split before paging on.
            return split(read, first.total_count)
        state = paginate(read, pages, self.concurrency)
        if state.lower_bound >= read.limit:
            return self._reached_limit(read, state)
        check_ended(read, state)
        return self._verified(read, state)

    def _reached_limit(self, read: PartRead, state: PagesState) -> Done | Split:
        """An answer that reaches `limit`: continued from its last second, or split."""
        if state.received < read.limit or state.ended:
            # A short page, or records after an empty one: the pages are not slices of one answer.
            return split(read, state.lower_bound)
        self._caps.answered(read.ask.source, state.received)
        total = max(state.received, read.got[1].total_count or 0, estimate(read.got, read.ask, state) or 0)
        return continue_cut(read, state) or split(read, total)

    def _verified(self, read: PartRead, state: PagesState) -> Done | Split:
        """An answer that ended below `limit`: Done once no silent cap can have cut it (docs/guarantees.md)."""
        received = state.received
        if received and not self._caps.served(read.ask.source, received):
            # Nothing yet proves the server returns more than `received` entries for a query: check that it
            # did not silently cap `limit` (docs/guarantees.md, "limit caps").
            verdict = capped(read, state, self._check_page(read.job))
            if verdict is not False:
                return self._cut(read, state, verdict)
        return Done(read.where, [(t, r) for t, r in read.held(state.complete) if read.part.owns(t)],
                    (read.lo, read.hi))

    def _cut(self, read: PartRead, state: PagesState, verdict: bool | None) -> Done | Split:
        """An answer cut at a silent cap (verdict True) or not provably whole (None): continued or split."""
        received = state.received
        if verdict:
            self._caps.learn(read.ask.source, received)
            # Cut at the cap, the ascending answer is a prefix of the range like one reaching `limit`.
            rest = continue_cut(read, state)
            if rest is not None:
                return rest
        elif read.hi - read.lo <= US:
            raise FetchError(f"{read.where}: the API returned {received} records and may hold more that it did "
                             f"not return (a silent cap below limit={read.job.ask.limit}?); cannot verify that "
                             "the data is complete")
        total = max(received + 1, (estimate(read.got, read.ask, state) or 0) if verdict else 0)
        return split(read, total)

    def _check_page(self, job: Job) -> GetPage:
        """GET one page of a completeness check, on the calling (part) thread."""
        def get(path: tuple[int, ...], ask: Ask, number: int, where: str) -> Page:
            return self._transport.get(job, path, ask, number, where)
        return get
