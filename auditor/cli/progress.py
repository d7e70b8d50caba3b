"""Progress on the terminal: one line, redrawn in place, fitted to the width and erased when the command ends.

`Display` owns the line (drawn with rich, which fits it to the terminal's width, redraws it live and erases it
cleanly); what the line says comes from a receiver: `ApiProgress` for the Cloudflare client's progress events
(auditor.sources.cloudflare.events), `FilesProgress` for `--data` runs. Any command can use them:

    with Display(sys.stderr, wanted(sys.stderr, no_progress=..., quiet=...)) as display:
        with ApiClient(settings, progress=ApiProgress(display, len(plan.fetches))) as client: ...

Without a terminal (a pipe, CI, `--no-progress`, `--quiet`) nothing is redrawn; notes the user must read
(a rate-limit wait, a refused query read again) are still written, one line each.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from auditor.sources.cloudflare.events import (
    FellBack,
    FetchDone,
    FetchesExpected,
    FetchStarted,
    PageRead,
    ProgressEvent,
    RangeRead,
    RetryWait,
)

LONG_WAIT_S = 60  # a wait this long is Cloudflare's quota block: said in full, with minutes


def wanted(stream: IO[str], *, no_progress: bool = False, quiet: bool = False) -> bool:
    """Whether to draw a progress line: on a terminal, unless asked not to, in CI, or on a dumb terminal."""
    if no_progress or quiet:
        return False
    if os.environ.get("CI", "").lower() not in ("", "0", "false") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


class Display:
    """The redrawn line on `stream` when `live`, notes above it; a context manager that erases it at the end."""

    def __init__(self, stream: IO[str], live: bool, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self.live = live
        self.clock = clock
        self._text: Callable[[], str] = str
        self._lock = threading.Lock()
        self._drawn = float("-inf")
        self._live: Live | None = None
        self._closed = False  # a late event after the end must not put the line up again
        encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "")
        self.unicode = encoding.startswith("utf")  # else `->` and a plain cut instead of `→` and `…`

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def show(self, text: Callable[[], str]) -> None:
        """What the line says: asked at every redraw (four times a second), so countdowns tick."""
        self._text = text

    def refresh(self, force: bool = False) -> None:
        """Redraw now (at most ten times a second unless forced); the first call puts the line up."""
        if not self.live:
            return
        with self._lock:
            now = self.clock()
            if self._closed or (not force and now - self._drawn < 0.1):
                return
            self._drawn = now
            if self._live is None:
                console = Console(file=self._stream, force_terminal=True, highlight=False, emoji=False,
                                  markup=False, soft_wrap=False)
                self._live = Live(get_renderable=self._render, console=console, transient=True,
                                  refresh_per_second=4, redirect_stdout=False, redirect_stderr=False)
                self._live.start()
            live = self._live
        live.refresh()

    def note(self, text: str) -> None:
        """A line of its own: printed above the progress line (or alone without one)."""
        with self._lock:
            if self._live is not None:
                self._live.console.print(Text(text), soft_wrap=True)
                return
        self._stream.write(text + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Erase the line: what the command prints next starts on a clean line."""
        with self._lock:
            live, self._live, self._closed = self._live, None, True
        if live is not None:
            live.stop()

    def _render(self) -> Text:
        """The line, cut to the terminal's width (rich measures it; an ellipsis marks a cut)."""
        live = self._live
        if live is not None:  # follow a resized terminal: the width of the stream's own terminal
            try:
                columns = os.get_terminal_size(self._stream.fileno()).columns
            except (AttributeError, ValueError, OSError):
                columns = 0
            if columns:  # a pseudo-terminal nobody sized says 0: rich's own guess then stands
                live.console.width = columns
        return Text(self._text(), no_wrap=True, overflow="ellipsis" if self.unicode else "crop", end="")


@dataclass
class _Fetch:
    """What the display knows of one fetch: its name, its time range and how much of it is read."""

    name: str
    span_us: int
    read_us: int = 0
    done: bool = False

    def fraction(self) -> float:
        return 1.0 if self.done else min(1.0, self.read_us / max(1, self.span_us))


@dataclass(frozen=True)
class _Wait:
    """A retry wait under way: until when (display clock), and what to say."""

    until: float
    event: RetryWait


class ApiProgress:
    """Receives the API client's progress events (from any thread) and says on the display: the share of the
    planned time ranges read (each fetch weighs the same), the fetch being read by source and range, fetches
    done, records, an ETA, and any retry wait as a ticking countdown."""

    def __init__(self, display: Display, fetches: int) -> None:
        self._display = display
        self._clock = display.clock
        self._expected = fetches
        self._lock = threading.Lock()
        self._fetches: dict[str, _Fetch] = {}
        self._alias: dict[str, str] = {}  # a fallback fetch's key -> the planned fetch it reads for
        self._current = ""
        self._records = 0
        self._waits: dict[str, _Wait] = {}
        self._said: set[tuple[str, ...]] = set()
        self._started: float | None = None
        display.show(self.line)

    def __call__(self, event: ProgressEvent) -> None:
        """Take one event from the client."""
        with self._lock:
            if self._started is None:
                self._started = self._clock()
            key = self._alias.get(getattr(event, "fetch", ""), getattr(event, "fetch", ""))
            if not isinstance(event, RetryWait):
                self._waits.pop(key, None)  # anything else from that fetch: its wait is over
            force = self._take(event, key)
        if isinstance(event, RetryWait) and event.rate_limited and not self._display.live:
            # Without a live line a rate-limit wait gets a line of its own: the run seems to hang otherwise.
            self._display.note(wait_text(event.seconds, event.retry, event.retries))
        if isinstance(event, FellBack):
            self._fell_back(event.dropped)
        self._display.refresh(force)

    def _take(self, event: ProgressEvent, key: str) -> bool:
        """Update the state (the caller holds the lock); True when the line must be redrawn at once."""
        if isinstance(event, FetchStarted):
            self._fetches[key] = _Fetch(fetch_name(event.source, event.since_us, event.until_us,
                                                   self._display.unicode), event.until_us - event.since_us)
            self._current = key
        elif isinstance(event, RangeRead) and key in self._fetches:
            self._fetches[key].read_us += event.hi_us - event.lo_us
            self._current = key
        elif isinstance(event, PageRead):
            self._records += event.records
            self._current = key
        elif isinstance(event, FetchDone) and key in self._fetches:
            self._fetches[key].done = True
        elif isinstance(event, FetchesExpected):
            self._expected = event.fetches
        elif isinstance(event, FellBack):
            self._alias[event.instead] = key
            if key in self._fetches:
                self._fetches[key].read_us = 0  # read again from its start
        elif isinstance(event, RetryWait):
            self._waits[key] = _Wait(self._clock() + event.seconds, event)
            return True
        return isinstance(event, FetchStarted | FetchDone)

    def _fell_back(self, dropped: tuple[str, ...]) -> None:
        """The API refused a query (400): said once per set of parameters left out."""
        with self._lock:
            if dropped in self._said:
                return
            self._said.add(dropped)
        self._display.note(f"Cloudflare API refused a query (400): reading it again without {', '.join(dropped)} "
                           "and filtering locally (the answers are the same; the results' provenance lists both)")

    def fraction(self) -> float:
        """The share of the run's fetches' time ranges read so far (0..1)."""
        with self._lock:
            return self._fraction()

    def _fraction(self) -> float:
        total = max(self._expected, len(self._fetches), 1)
        return sum(f.fraction() for f in self._fetches.values()) / total

    def line(self) -> str:
        """The progress line as it reads now."""
        with self._lock:
            now = self._clock()
            share = self._fraction()
            done = sum(f.done for f in self._fetches.values())
            eta = ""
            if self._started is not None and 0 < share < 1:
                eta = f" (ETA {_duration((now - self._started) * (1 - share) / share)})"
            parts = [f"{int(share * 100)}%{eta}"]
            wait = max((w for w in self._waits.values() if w.until > now), key=lambda w: w.until, default=None)
            current = self._fetches.get(self._current)
            if wait is not None:  # first: the wait is what the user must see
                e = wait.event
                left = wait.until - now
                parts.insert(0, wait_text(left, e.retry, e.retries) if e.rate_limited
                             else f"retrying in {_seconds(math.ceil(left))} ({e.retry}/{e.retries}) after {e.reason}")
            elif current is not None:
                parts.append(current.name)
            parts.append(f"{done}/{max(self._expected, len(self._fetches))} fetches")
            parts.append(f"{self._records:,} records")
            return " · ".join(parts)


def wait_text(seconds: float, retry: int, retries: int) -> str:
    """What a rate-limit wait says: in full with minutes for Cloudflare's quota block, briefly otherwise.
    A countdown rounds up: it says `1 s` until the wait is over, never `0 s` before."""
    seconds = math.ceil(seconds)
    if seconds >= LONG_WAIT_S:
        return f"Cloudflare rate limit: waiting {_duration(seconds)} (retry {retry} of {retries})"
    return f"rate limited, retrying in {_seconds(seconds)} ({retry}/{retries})"


def fetch_name(source: str, since_us: int, until_us: int, unicode: bool = True) -> str:
    """`access_requests 2026-11-01 → 11-15`: the log and its time range (UTC, to the nearest minute: fetches
    reach a second past their rules' windows), each end as short as it can be said: no time at midnight, no
    repeated year or day."""
    lo, hi = (datetime.fromtimestamp(round(t / 60e6) * 60, UTC) for t in (since_us, until_us))
    midnight = all(t.hour == t.minute == t.second == 0 for t in (lo, hi))
    start = lo.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M")
    if midnight:
        end = hi.strftime("%m-%d" if hi.year == lo.year else "%Y-%m-%d")
    elif hi.date() == lo.date():
        end = hi.strftime("%H:%M")
    else:
        end = hi.strftime("%m-%d %H:%M" if hi.year == lo.year else "%Y-%m-%d %H:%M")
    return f"{source} {start} {'→' if unicode else '->'} {end}"


def _seconds(seconds: float) -> str:
    return f"{max(0, round(seconds))} s"


def _duration(seconds: float) -> str:
    """`4m 12s`, `1h 05m`, `12s`."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


# --- --data runs ---------------------------------------------------------------------------------------


class FilesProgress:
    """`--data` runs: the file being read, files and bytes done, and records read in all."""

    def __init__(self, display: Display, total_files: int, total_bytes: int) -> None:
        self._display = display
        self._files, self._bytes = total_files, total_bytes
        self._done_files, self._done_bytes = 0, 0
        self._records: dict[str, int] = {}
        self._current = ""
        self._engine = ""
        self._lock = threading.Lock()
        display.show(self.line)

    def engine(self, name: str) -> None:
        """An engine that reads the files itself (DuckDB) is at work: said until a file is read here."""
        with self._lock:
            self._engine = name
        self._display.refresh(force=True)

    def __call__(self, path: str, size: int, records: int, finished: bool) -> None:
        """Progress of one file (told every so many records, and once when the file is read; any thread)."""
        with self._lock:
            first = path not in self._records
            if finished:
                self._done_files += 1
                self._done_bytes += size
            self._records[path] = records
            self._current = path
        self._display.refresh(force=first or finished)

    def line(self) -> str:
        """The progress line as it reads now."""
        with self._lock:
            if self._engine and not self._current:
                return f"{self._engine}: evaluating the rules over {self._files} files ({_size(self._bytes)})"
            records = sum(self._records.values())
            return (f"reading {self._current} · {self._done_files}/{self._files} files "
                    f"({_size(self._done_bytes)} of {_size(self._bytes)}) · "
                    f"{records:,} record{'s' if records != 1 else ''}")


def _size(size: int) -> str:
    """`512 B`, `1.5 kB`, `3.0 MB`, `1.2 GB`."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
