"""The Source protocol: where a run's records come from (exported files, the Cloudflare API, memory).

A source reads the records of a plan's fetches and hands each on with its time already parsed (epoch
microseconds), in parts that say where they came from (a file, an API request range), so the runner never
parses a time again and every data error names its origin: a file and line, or a request. The runner knows
nothing else about sources: whether fetches are read one by one or several at a time, whether a fetch can
be read twice (by a second process), which fetches share one pass over the data, what was requested.

Adding a source: subclass `BaseSource` (defaults fit a local, sequential source), implement `read` (and
`problem` when it may lack a log source), and pass it to `auditor.run.runner.run`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from auditor.core.coverage import Coverage, Seen, files_coverage

if TYPE_CHECKING:
    from auditor.compile.plan import Fetch
    from auditor.core.provenance import FileRecord, RequestRecord

Timed = tuple[int, dict[str, Any]]  # (time in epoch microseconds, record with API field names; see Part)
Block = tuple[int, int, bytes]  # a split pass's share: (part number, line number of its first line, whole lines)


@dataclass(frozen=True, slots=True)
class Part:
    """Records read from one origin, in the order read: a file (`origin` is its path) or an API request range."""

    origin: str
    records: Iterable[Timed]
    # The line of the record last read, for sources with lines (files): messages about a record name it.
    line: Callable[[], int | None] | None = None
    order: int = 0  # the origin's place among those of its fetch (the first mistyped value is the earliest)
    # Records may keep Logpush's names (those holding records.LOGPUSH_MARK): whoever reads their fields renames
    # them first (records.LogpushNames; the runner does so only for the records a rule reads).
    logpush_names: bool = False


class SourceError(Exception):
    """A source could not deliver a fetch's records; the rules reading it are not evaluated."""

    verdict = "data error, rule not evaluated"

    def rule_message(self) -> str:
        """What the results of the rules that read the fetch say."""
        return f"{self.verdict}: {self}"


class DataError(SourceError):
    """A data problem at an origin; str() is one line: 'PATH:LINE: error: MESSAGE' (or 'PATH: error: MESSAGE')."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        # Messages quote file content (envelope errors, JSON errors): keep them on one line.
        self.message = " ".join(str(message).splitlines())
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: error: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: a helper process sends it back (auditor.evaluate.parallel)
        return DataError, (self.path, self.line, self.message)


class DataMissing(SourceError):
    """Records a source could not get (e.g. an API fetch that failed); the message is one line."""

    verdict = "rule not evaluated, data missing"


class Source(Protocol):
    """What the runner asks of a record source."""

    kind: str  # the results JSON `source`: files | api
    concurrency: int  # units read at the same time (threads); 1: one after the other, in this thread
    narrows: bool  # read correlation `first` sides before planning the `then` sides' fetches (see the runner)

    def problem(self, log_source: str) -> SourceError | None:
        """Why this source cannot read `log_source` at all (its rules error with it), or None."""

    def unit(self, fetch: Fetch) -> str:
        """Fetches with the same unit are read in one pass (files: one per log source; the API: one per fetch)."""

    def read(self, fetch: Fetch, index: int) -> Iterator[Part]:
        """The fetch's records (`index`: its position in the run, for provenance order); SourceError when some
        cannot be had. A source may return more records than the fetch asks for: every condition and window is
        checked again locally."""

    def size(self, fetch: Fetch) -> int:
        """Bytes (uncompressed) behind `read(fetch)` when it can be shared with another process, else 0: then
        `read_split` hands blocks of it to that process, which reads them with `read_block`, and `settle`
        takes the other process's `pending()` tallies (auditor.evaluate.parallel)."""

    def expect(self, fetches: int) -> None:
        """The run now plans `fetches` fetches in all (for a progress display)."""

    def cancel(self) -> None:
        """Give up: the run is ending (Ctrl-C); reads in flight may stop early."""

    def requests(self) -> tuple[RequestRecord, ...]:
        """Every request made, for provenance (none for local sources)."""

    def notes(self) -> tuple[str, ...]:
        """What the run's warnings should say about the data read (e.g. gaps in its coverage)."""

    def coverage(self, seen: Mapping[str, Seen]) -> Coverage:
        """Which time intervals of each log the source's data covers, and how that is known
        (auditor.core.coverage); `seen`: per log read, the earliest and latest record time."""

    def read_as(self, fetch: Fetch) -> str | None:
        """How `fetch` was really read when not as planned (an API refusing its query), else None."""

    def files(self) -> tuple[FileRecord, ...]:
        """Every input file read, for provenance (none for the API)."""

    def describe(self, fetch: Fetch, account_id: str | None) -> str:
        """How a fetch was read, as results and reports name it: the request, or the files."""


class BaseSource:
    """Defaults of a local source: sequential, one pass per log source, nothing requested, nothing to cancel."""

    kind = "files"
    concurrency = 1
    narrows = False

    def problem(self, log_source: str) -> SourceError | None:
        """Every log source is readable (override when some may be missing)."""
        return None

    def unit(self, fetch: Fetch) -> str:
        """One pass per log source: the local data is not filtered by fetch."""
        return fetch.source

    def read(self, fetch: Fetch, index: int) -> Iterator[Part]:  # pragma: no cover - abstract
        """See `Source.read`."""
        raise NotImplementedError

    def size(self, fetch: Fetch) -> int:
        """Not shared with another process by default."""
        return 0

    def expect(self, fetches: int) -> None:
        """Nothing to display."""

    def cancel(self) -> None:
        """Nothing in flight."""

    def requests(self) -> tuple[RequestRecord, ...]:
        """No requests."""
        return ()

    def notes(self) -> tuple[str, ...]:
        """Nothing to say."""
        return ()

    def coverage(self, seen: Mapping[str, Seen]) -> Coverage:
        """Inferred from each log's first and last record: what a source knows when nothing says more."""
        return files_coverage(seen)

    def read_as(self, fetch: Fetch) -> str | None:
        """Read as planned."""
        return None

    def files(self) -> tuple[FileRecord, ...]:
        """No files."""
        return ()

    def describe(self, fetch: Fetch, account_id: str | None) -> str:
        """What the fetch reads (a local source reads all of its log source)."""
        return fetch.describe()
