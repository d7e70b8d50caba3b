"""One GET of one page over HTTP: rate limiting, retries with backoff and jitter, Retry-After, provenance.

Retried: connection failures, timeouts, 429, 5xx and 2xx bodies that are not the envelope (usually a
cut transfer). Anything else is a FetchError naming the page and the reason, never a secret.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from auditor import __version__
from auditor.core.provenance import RequestRecord
from auditor.sources.cloudflare.envelope import (
    CredentialsRejected,
    FetchError,
    Malformed,
    Page,
    Rejected,
    error_text,
    masked,
    parse_json,
    parse_page,
)
from auditor.sources.cloudflare.events import PageRead, Progress, RetryWait
from auditor.sources.cloudflare.parts import Ask, Cancelled, Job
from auditor.sources.cloudflare.ratelimit import Clock, RateLimiter
from auditor.sources.cloudflare.settings import ApiSettings, Timing

MAX_REQUESTS = 2000  # per fetch: about 2 million records; beyond that exported logs are the better tool
# One answer's body, decompressed: a page of 1000 records is well under 1 MiB, so this leaves room while
# a compressed bomb (1 MB of gzip inflating to 1 GiB) is cut off long before memory runs out.
MAX_BODY_BYTES = 32 * 1024 * 1024
_RATELIMIT_RESET = re.compile(r"\bt=([0-9]+)")
_SECONDS = re.compile(r"[0-9]{1,12}")


class _TooLarge(Exception):
    """The body grew past MAX_BODY_BYTES."""


class _Late(Exception):
    """The request went past its total deadline."""


@dataclass(frozen=True)
class _Retry:
    """An attempt that may succeed when repeated: why it failed, and the wait the server asked for."""

    problem: str
    after: float | None = None
    rate_limited: bool = False


class Transport:
    """GETs pages for the client; thread-safe. Keeps the log of every request made, for provenance."""

    def __init__(self, settings: ApiSettings, timing: Timing, progress: Progress, closing: threading.Event,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._timing = timing
        self._progress = progress
        self._closing = closing
        self._limiter = RateLimiter(settings.windows, Clock(timing.clock.monotonic, self.sleep))
        retry = settings.retry
        self._http = httpx.Client(
            base_url=settings.base_url,
            headers={"User-Agent": f"auditor/{__version__}", "Accept": "application/json",
                     **dict(settings.credentials.headers)},
            timeout=httpx.Timeout(min(retry.read_timeout_s, retry.deadline_s), connect=retry.connect_timeout_s),
            limits=httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency),
            follow_redirects=False,  # a redirect could carry the credentials elsewhere
            transport=transport,
        )
        self._path_prefix = urlsplit(settings.base_url).path.rstrip("/")
        self._forms = settings.credentials.forms()
        self._form_bytes = tuple(f.encode() for f in self._forms)
        self._lock = threading.Lock()
        self._log: list[tuple[tuple[Any, ...], RequestRecord]] = []

    def close(self) -> None:
        """Release connections."""
        self._http.close()

    def sleep(self, seconds: float) -> None:
        """Wait (backoff, Retry-After, rate limit); Cancelled when the client closes meanwhile."""
        self._timing.clock.wait(seconds, self._closing)
        if self._closing.is_set():
            raise Cancelled

    def requests(self) -> tuple[RequestRecord, ...]:
        """Every request made so far, in plan order (fetch, part, page, attempt), for provenance."""
        with self._lock:
            return tuple(record for _, record in sorted(self._log, key=lambda item: item[0]))

    def scrub(self, text: str) -> str:
        """Text with every secret masked, as it is or URL-encoded: server messages, transport errors and
        records may echo them."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, "[redacted]")
        return text

    def get(self, job: Job, part_path: tuple[int, ...], ask: Ask, number: int, where: str) -> Page:
        """GET page `number` of `ask`, retrying what may pass on a later attempt; FetchError otherwise."""
        retry = self.settings.retry
        path = ask.path(self.settings.account_id)
        query = urlencode(ask.query(page=number))
        outcome = _Retry("")
        for attempt in range(1, retry.attempts + 1):
            self._admit(job, where)
            result = self._attempt(job, (job.index, part_path, number, attempt), path, query, number, where)
            if isinstance(result, Page):
                self._progress(PageRead(job.fetch.key, len(result.records)))
                return result
            outcome = result
            if attempt < retry.attempts:
                wait_s = retry.backoff(attempt, self._timing.random())
                if outcome.after is not None:
                    wait_s = max(wait_s, outcome.after)
                self._progress(RetryWait(job.fetch.key, wait_s, attempt, retry.attempts - 1, outcome.problem,
                                         outcome.rate_limited))
                self.sleep(wait_s)
        raise FetchError(f"{where} (page {number}): {outcome.problem}; gave up after {retry.attempts} attempts")

    def _admit(self, job: Job, where: str) -> None:
        """Let one more request of the job go: not cancelled, under the per-fetch bound and the quotas."""
        if job.cancel.is_set() or self._closing.is_set():
            raise Cancelled
        if next(job.sent) >= MAX_REQUESTS:
            raise FetchError(f"{where}: this fetch needs more than {MAX_REQUESTS} requests (the API allows "
                             "1200 per 5 minutes); narrow the rules' windows or audit exported logs with --data")
        self._limiter.acquire()

    def _attempt(self, job: Job, key: tuple[Any, ...], path: str, query: str, number: int,
                 where: str) -> Page | _Retry:
        """One request: the page, a reason to retry, or FetchError."""
        deadline = self.settings.retry.deadline_s
        try:
            response, body = self._fetch(f"{path}?{query}", deadline)
        except _TooLarge:
            self._record(key, path, query, None, 0, None)
            raise FetchError(f"{where} (page {number}): the answer is larger than {MAX_BODY_BYTES // 2 ** 20} MiB "
                             "(the cap on one page's body, decompressed)") from None
        except _Late:
            self._record(key, path, query, None, 0, None)
            return _Retry(f"the answer took longer than the {deadline:.0f} s deadline of one request")
        except httpx.TimeoutException as exc:
            self._record(key, path, query, None, 0, None)
            return _Retry(f"timed out ({type(exc).__name__})")
        except httpx.TransportError as exc:
            self._record(key, path, query, None, 0, None)
            return _Retry(f"connection failed ({type(exc).__name__}: {self.scrub(str(exc)) or 'no detail'})")
        except httpx.HTTPError as exc:  # not retryable (e.g. an invalid URL): say what, never the headers
            self._record(key, path, query, None, 0, None)
            raise FetchError(f"{where} (page {number}): request failed ({type(exc).__name__}: "
                             f"{self.scrub(str(exc))})") from None
        status = response.status_code
        doc = parse_json(body)
        if any(form in body for form in self._form_bytes):
            doc = masked(doc, self.scrub)  # a server echoing the credential: never let it reach a report
        if 200 <= status < 300:
            try:
                page = parse_page(doc, number, job.fetch.source, where, self.scrub)
            except Malformed as exc:
                self._record(key, path, query, status, 0, body)
                return _Retry(f"{status} response {exc}")
            except FetchError:
                self._record(key, path, query, status, 0, body)
                raise
            self._record(key, path, query, status, len(page.records), body)
            return page
        self._record(key, path, query, status, 0, body)
        return self._refused(job, response, doc, number, where)

    def _fetch(self, url: str, deadline: float) -> tuple[httpx.Response, bytes]:
        """GET `url` and read its body (decompressed) within `deadline` seconds and MAX_BODY_BYTES."""
        clock = self._timing.clock.monotonic
        started = clock()
        chunks: list[bytes] = []
        size = 0
        with self._http.stream("GET", url) as response:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _TooLarge
                if clock() - started > deadline:
                    raise _Late
                chunks.append(chunk)
        return response, b"".join(chunks)

    def _refused(self, job: Job, response: httpx.Response, doc: Any, number: int, where: str) -> _Retry:
        """A non-2xx answer: a reason to retry (429, 5xx), or FetchError with a hint."""
        status, retry = response.status_code, self.settings.retry
        text = f"{status} {error_text(doc, response.reason_phrase, self.scrub)}"
        if status == 401:
            which = ("CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY" if self.settings.credentials.scheme == "key"
                     else "CLOUDFLARE_API_TOKEN")
            raise CredentialsRejected(f"the API refused the credentials: {text}; check {which} "
                                      "(current, complete, not revoked)")
        if status != 429 and status < 500:
            error = Rejected if status == 400 else FetchError
            raise error(f"{where} (page {number}): {text}: {self._hint(status, job.fetch.source)}")
        after = retry_after(response.headers)
        if after is not None and after > retry.max_retry_after_s:
            raise FetchError(f"{where} (page {number}): {text}: the API asks to wait {after:.0f} s, "
                             f"more than the {retry.max_retry_after_s:.0f} s bound (run --max-wait, max_retry_wait in "
                             "auditor.yaml); try again later")
        if after is not None:
            self._limiter.pause(after)  # every thread backs off, not just this one
        if status == 429:
            return _Retry(f"{text} (rate limited)", after, rate_limited=True)
        return _Retry(text, after)

    def _record(self, key: tuple[Any, ...], path: str, query: str, status: int | None, records: int,
                body: bytes | None) -> None:
        digest = hashlib.sha256(body).hexdigest() if body is not None else None
        entry = RequestRecord(self._path_prefix + path, query, status, records, digest)  # type: ignore[arg-type]
        with self._lock:
            self._log.append((key, entry))

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


def retry_after(headers: httpx.Headers, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date), else from `Ratelimit: ...;t=N`."""
    value = headers.get("Retry-After")
    if value is not None:
        value = value.strip()
        if _SECONDS.fullmatch(value):  # ASCII digits only: `²` and other Unicode digits are not seconds
            return float(value)
        try:
            when = parsedate_to_datetime(value)
            return max(0.0, (when - now()).total_seconds())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None  # unreadable: the usual backoff applies
    reset = _RATELIMIT_RESET.search(headers.get("Ratelimit", ""))
    return float(reset.group(1)) if reset else None
