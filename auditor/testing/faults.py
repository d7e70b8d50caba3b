"""Deterministic misbehaviour for tests: what can go wrong (`Faults`) and how much of it is left."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from auditor.testing.errors import CODE_AUTH, CODE_INTERNAL, CODE_RATE_LIMIT, ApiError

_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class Faults:
    """Deterministic misbehaviour for tests, counted per server."""

    latency: float = 0.0  # seconds added to every request
    rate_limit_first: int = 0  # the first N API requests answer 429
    retry_after: int = 1  # the Retry-After of those 429s, in seconds
    fail_pages: Mapping[int, int] = field(default_factory=dict)  # page -> how many times it answers 5xx
    fail_status: int = 503
    malformed_first: int = 0  # the first N successful bodies are cut in half (status 200)
    cap_per_page: int | None = None  # serve at most N records per page, silently
    cap_limit: int | None = None  # return at most N entries per query whatever `limit` asks, silently (any N >= 1)
    lie_total_pages: int | None = None  # result_info.total_pages always says N, however many pages there are
    result_info_access: bool = False  # access_requests answers carry result_info too
    forbidden: frozenset[str] = frozenset()  # these logs answer 403, as to a token without their permission


def parse_fail_pages(specs: Iterable[str]) -> dict[int, int]:
    """`PAGE[:TIMES]` strings (CLI --fail-page) -> {page: times}; ValueError on bad input."""
    out: dict[int, int] = {}
    for spec in specs:
        page, _, times = spec.partition(":")
        try:
            p, n = int(page), int(times or "1")
        except ValueError:
            raise ValueError(f"--fail-page {spec!r}: expected PAGE:TIMES, e.g. 2:3") from None
        if p < 1 or n < 0:
            raise ValueError(f"--fail-page {spec!r}: PAGE must be >= 1 and TIMES >= 0")
        out[p] = out.get(p, 0) + n
    return out


class FaultState:
    """The faults of one server with their counters: each method raises the fault's answer, or passes."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self._calls = 0
        self._fail_left = dict(faults.fail_pages)
        self._malformed_left = faults.malformed_first

    def delay(self) -> None:
        """Wait the configured latency."""
        if self.faults.latency:
            time.sleep(self.faults.latency)

    def throttle(self) -> None:
        """429 for the first `rate_limit_first` API requests."""
        with self._lock:
            self._calls += 1
            call = self._calls
        if call <= self.faults.rate_limit_first:
            raise ApiError(429, CODE_RATE_LIMIT, "Please wait and consider throttling your request speed",
                           {"Retry-After": str(self.faults.retry_after)})

    def forbid(self, source: str) -> None:
        """403 for a log the credential has no permission for."""
        if source in self.faults.forbidden:
            raise ApiError(403, CODE_AUTH, "Authentication error")

    def fail(self, page: int) -> None:
        """5xx while `page` has failures left: the JSON envelope for 500, the edge's HTML page otherwise."""
        with self._lock:
            left = self._fail_left.get(page, 0)
            if left <= 0:
                return
            self._fail_left[page] = left - 1
        status = self.faults.fail_status
        if status == 500:
            raise ApiError(500, CODE_INTERNAL, "Internal server error")
        reason = f"{status} {_REASONS.get(status, 'Server Error')}"
        raise ApiError(status, 0, reason, {"Content-Type": "text/html"}, edge_page=True)

    def malform(self, body: bytes) -> bytes:
        """The body, cut in half while malformed answers are left."""
        with self._lock:
            if self._malformed_left <= 0:
                return body
            self._malformed_left -= 1
        return body[: max(1, len(body) // 2)]
