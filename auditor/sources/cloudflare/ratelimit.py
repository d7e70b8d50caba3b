"""Client-side request limiter: sliding windows kept under Cloudflare's quotas, plus a shared pause after 429."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# Cloudflare allows 1200 requests per 5 minutes per token (shared with dashboard use) and 200 per
# second per IP; going over blocks every call for 5 minutes. Stay well under both.
DEFAULT_WINDOWS: tuple[tuple[int, float], ...] = ((1100, 300.0), (100, 1.0))


@dataclass(frozen=True)
class Clock:
    """Time sources, injectable so tests never really sleep (a test clock's `sleep` only moves its time)."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Let `seconds` pass. This clock cannot be interrupted: it sleeps (a test clock just moves on)."""
        self.sleep(seconds)


@dataclass(frozen=True)
class SystemClock(Clock):
    """The real clock: a wait ends early once `stop` is set (Ctrl-C, or the client closing)."""

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Wait up to `seconds`, less if `stop` is set meanwhile."""
        stop.wait(max(0.0, seconds))


class RateLimiter:
    """Blocks `acquire()` until a request fits every window; thread-safe, one per client (no global state)."""

    def __init__(self, windows: tuple[tuple[int, float], ...] = DEFAULT_WINDOWS, clock: Clock | None = None) -> None:
        self._windows = [(limit, span, deque[float]()) for limit, span in windows]
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def acquire(self) -> float:
        """Wait until one more request is allowed, then count it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock.monotonic()
                wait = self._paused_until - now
                for limit, span, sent in self._windows:
                    while sent and sent[0] <= now - span:
                        sent.popleft()
                    if len(sent) >= limit:
                        wait = max(wait, sent[0] + span - now)
                if wait <= 0:
                    for _, _, sent in self._windows:
                        sent.append(now)
                    return waited
            self._clock.sleep(wait)
            waited += wait

    def pause(self, seconds: float) -> None:
        """Hold every request (all threads) for `seconds`: the server asked us to back off."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock.monotonic() + seconds)
