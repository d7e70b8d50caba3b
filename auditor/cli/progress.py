"""The terminal progress line for API runs: it consumes the client's progress events."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from typing import IO

from auditor.sources.cloudflare.events import FellBack, FetchDone, FetchesExpected, PageRead, ProgressEvent, RetryWait
from auditor.sources.cloudflare.ratelimit import SystemClock


class ProgressBar:
    """One redrawn stderr line: fetches done, and pages and records per fetch (no dependency)."""

    def __init__(self, stream: IO[str], fetches: int, clock: Callable[[], float] | None = None, *,
                 bar: bool = True) -> None:
        self._stream = stream
        self._bar = bar  # False: no redrawn line (no terminal, --no-progress), only rate-limit waits
        self._fetches = fetches
        self._clock = clock or SystemClock().monotonic
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}
        self._done = 0
        self._drawn = 0.0
        self._width = 0
        self._said: set[tuple[str, ...]] = set()

    def __call__(self, event: ProgressEvent) -> None:
        """Take one event from the client (any thread)."""
        if isinstance(event, PageRead):
            self.page(event.fetch, event.records)
        elif isinstance(event, FetchDone):
            self.done(event.fetch)
        elif isinstance(event, FetchesExpected):
            self.expect(event.fetches)
        elif isinstance(event, RetryWait) and event.rate_limited:
            self.waiting(event.seconds, event.retry, event.retries)
        elif isinstance(event, FellBack):
            self.fell_back(event.dropped)

    def fell_back(self, dropped: tuple[str, ...]) -> None:
        """The API refused a query (400): said once per set of parameters left out."""
        with self._lock:
            if dropped in self._said:
                return
            self._said.add(dropped)
            self._line(f"Cloudflare API refused a query (400): reading it again without {', '.join(dropped)} "
                       "and filtering locally (the answers are the same; the results' provenance lists both)")

    def _line(self, text: str) -> None:
        """A line of its own above the redrawn one (the caller holds the lock)."""
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self._stream.write(text + "\n")
        self._stream.flush()

    def waiting(self, seconds: float, retry: int, retries: int) -> None:
        """Cloudflare asked to wait (429): say so on a line of its own, as the wait may last minutes."""
        minutes, secs = divmod(round(seconds), 60)
        length = f"{minutes}m {secs}s" if minutes else f"{secs}s"
        with self._lock:
            self._line(f"Cloudflare rate limit: waiting {length} (retry {retry} of {retries})")

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
        if not self._bar:
            return
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


# --- --data runs ---------------------------------------------------------------------------------------

_ERASE = "\r\x1b[K"  # back to the line's start and erase it: a shorter line leaves nothing behind


class Line:
    """One redrawn stderr line, never wider than the terminal (so it never wraps and scrolls)."""

    def __init__(self, stream: IO[str], clock: Callable[[], float] | None = None, width: int | None = None) -> None:
        self._stream = stream
        self._clock = clock or SystemClock().monotonic
        self._width = width or shutil.get_terminal_size(fallback=(80, 24)).columns
        self._drawn = float("-inf")
        self._shown = False
        self.lock = threading.Lock()

    def draw(self, text: str, force: bool = False) -> None:
        """Show text (cut to the width), at most ten times a second unless forced."""
        now = self._clock()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        if len(text) > self._width - 1:
            text = text[: self._width - 2] + "…"
        self._stream.write(_ERASE + text)
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the line (the run's output follows on a clean line)."""
        if self._shown:
            self._stream.write(_ERASE)
            self._stream.flush()
            self._shown = False


class FilesProgress:
    """`--data` runs: the file being read, its records so far, and how many files and bytes are done."""

    def __init__(self, stream: IO[str], total_files: int, total_bytes: int,
                 clock: Callable[[], float] | None = None, width: int | None = None) -> None:
        self._line = Line(stream, clock, width)
        self._files, self._bytes = total_files, total_bytes
        self._done_files, self._done_bytes = 0, 0

    def __call__(self, path: str, size: int, records: int, finished: bool) -> None:
        """Progress of one file (called every so many records, and once when the file is read)."""
        with self._line.lock:
            if finished:
                self._done_files += 1
                self._done_bytes += size
            self._line.draw(f"reading {path}: {records:,} record{'s' if records != 1 else ''} · "
                            f"{self._done_files}/{self._files} files, "
                            f"{_mb(self._done_bytes)} of {_mb(self._bytes)}", force=finished)

    def close(self) -> None:
        """Erase the line."""
        with self._line.lock:
            self._line.clear()


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
