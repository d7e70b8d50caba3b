"""Offline records from exported files: JSON (list or API envelope), NDJSON/JSONL, gzip, Logpush names.

`FileSource` is the run's Source over them (auditor.sources.base); `iter_timed` reads one file.

Everything streams: NDJSON line by line, JSON documents through a small incremental reader, so a
multi-gigabyte export is read in constant memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from auditor.core.coverage import Coverage, Interval, Seen, files_coverage
from auditor.core.diagnostics import display_path
from auditor.core.fields import SOURCES
from auditor.core.provenance import FileRecord
from auditor.core.timeutil import format_time
from auditor.sources.base import BaseSource, Block, DataError, Part, SourceError, Timed
from auditor.sources.reader import CHUNK, Reader, plain_size

if TYPE_CHECKING:
    from auditor.compile.plan import Fetch

_SUFFIXES = (".json", ".ndjson", ".jsonl")
_SOURCE_HINT = "pass --source access_requests|scim_updates"
_ENDINGS = "ending .json, .ndjson or .jsonl (optionally + .gz)"
_FAR = 1 << 62  # beyond any timestamp in microseconds


def find_source_files(data: Path, source: str | None = None) -> dict[str, list[Path]]:
    """Map source name -> files for `run --data` (directory or single file)."""
    data = Path(data)
    if source is not None and source not in SOURCES:
        raise DataError(data, None, f"unknown source {source!r}; {_SOURCE_HINT}")
    try:
        if data.is_dir():
            return _discover(data, source)
        if data.is_file():
            name = source or _source_of(data.name)
            if name is None:
                raise DataError(data, None, f"cannot tell the log source from the file name; {_SOURCE_HINT}")
            return {name: [data]}
    except OSError as e:
        raise DataError(data, None, f"cannot read: {e.strerror or e}") from None
    if data.exists():
        raise DataError(data, None, "not a regular file or directory")
    raise DataError(data, None, "no such file or directory")


def _discover(directory: Path, source: str | None) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        name = entry.name
        base = name[:-3] if name.endswith(".gz") else name
        if not base.endswith(_SUFFIXES) or not entry.is_file():
            continue
        kind = _source_of(name)
        if kind is not None and (source is None or kind == source):
            found.setdefault(kind, []).append(entry)
    if not found:
        wanted = source or "access_requests*/scim_updates*"
        raise DataError(directory, None, f"no data files here: expected {wanted} files {_ENDINGS}")
    return found


def _source_of(name: str) -> str | None:
    for source in SOURCES:
        if name.startswith(source):
            return source
    return None


def iter_timed(path: Path, source: str, *, chunk_size: int = CHUNK) -> Iterator[Timed]:
    """Stream one file's records with their times (epoch microseconds), normalised to API field names;
    DataError naming the file and line of the first bad one."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    return Reader(Path(path), SOURCES[source], chunk_size).records()


def file_part(path: Path, source: str, keep_logpush: bool = False) -> Part:
    """One file's records as a Part that knows the line of the record last read (for messages about it); with
    `keep_logpush`, NDJSON records in Logpush's names stay in them (Part.logpush_names)."""
    reader = Reader(Path(path), SOURCES[source], CHUNK, keep_logpush)
    return Part(display_path(path), reader.records(), reader.last_line, logpush_names=reader.keep_logpush)


def iter_records(path: Path, source: str, *, chunk_size: int = CHUNK) -> Iterator[dict]:
    """Stream one file's records, normalised to API field names (each checked, its time included)."""
    return (record for _, record in iter_timed(path, source, chunk_size=chunk_size))


class FileSource(BaseSource):
    """Exported log files (`run --data`, a directory or one file): one pass per log source over its files."""

    kind = "files"

    def __init__(self, data: Path, source: str | None = None,
                 covers: Mapping[str, tuple[Interval, ...]] | None = None) -> None:
        self.data = Path(data)
        self._covers = covers  # --data-covers: what the user states the files hold completely, per log
        self._tally: dict[Path, tuple[int, int | None, int | None]] = {}  # records, first, last of files read
        self._pending: dict[Path, tuple[int, int | None, int | None]] = {}  # the same, in a split pass (settle)
        try:
            self._files: dict[str, list[Path]] = find_source_files(self.data, source)
            self._problem: DataError | None = None
        except DataError as exc:
            self._files, self._problem = {}, exc

    def problem(self, log_source: str) -> SourceError | None:
        """The data's own problem (no such directory...), or no file of this log source."""
        if self._files.get(log_source):
            return None
        return self._problem or SourceError(f"no {log_source} file in {display_path(self.data)} "
                                            f"(expected {log_source}.ndjson, .jsonl or .json)")

    def read(self, fetch: Fetch, index: int) -> Iterator[Part]:
        """Every record of the fetch's log source, file by file (Logpush-named records kept so: Part.logpush_names)."""
        for path in self._files.get(fetch.source, ()):
            yield self._counted(path, file_part(path, fetch.source, keep_logpush=True))

    def _counted(self, path: Path, part: Part) -> Part:
        """The part, its records tallied for provenance."""
        return dataclasses.replace(part, records=self._tallied(path, iter(part.records)))

    # Told (path shown, bytes, records so far, finished) every 65,536 records and at each file's end: the
    # CLI's progress line for --data runs (None: nobody watches).
    watch: Callable[[str, int, int, bool], None] | None = None

    def inventory(self) -> tuple[int, int]:
        """How many files the run may read, and their bytes."""
        paths = [p for ps in self._files.values() for p in ps]
        return len(paths), sum(p.stat().st_size for p in paths if p.is_file())

    def _tallied(self, path: Path, records: Iterator[Timed]) -> Iterator[Timed]:
        """The records, counted with their earliest and latest time once the file is read to its end."""
        count, first, last = 0, None, None
        watch, shown = self.watch, display_path(path)
        for timed in records:
            t = timed[0]
            count += 1
            if first is None or t < first:
                first = t
            if last is None or t > last:
                last = t
            if watch is not None and not count & 0xFFFF:
                watch(shown, 0, count, False)
            yield timed
        if watch is not None and path not in self._tally:
            watch(shown, path.stat().st_size, count, True)
        self._tally.setdefault(path, (count, first, last))

    def tallied(self, path: Path, count: int, first: int | None, last: int | None) -> None:
        """A file another engine read to its end: its records and their time span, for its provenance."""
        self._tally.setdefault(path, (count, first, last))

    def files(self, unread: bool = False) -> tuple[FileRecord, ...]:
        """Every file read to its end: path, size, SHA-256 of its bytes, records and their time span. With
        `unread`, files not streamed here (another engine read them) are counted by a pass of their own."""
        out = []
        for source, paths in self._files.items():
            for path in paths:
                if unread and path not in self._tally:
                    try:
                        for _ in self._tallied(path, iter_timed(path, source)):
                            pass
                    except SourceError:
                        continue  # the run reported it; a file that cannot be read has no provenance
                if path in self._tally:
                    count, first, last = self._tally[path]
                    size, digest = _digest(path)
                    out.append(FileRecord(display_path(path), source, size, digest, count,
                                          None if first is None else format_time(first),
                                          None if last is None else format_time(last)))
        return tuple(out)

    def describe(self, fetch: Fetch, account_id: str | None) -> str:
        """The files the fetch's log source was read from."""
        return "files " + ", ".join(display_path(p) for p in self._files.get(fetch.source, ()))

    def coverage(self, seen: Mapping[str, Seen]) -> Coverage:
        """As stated with --data-covers, else inferred from each log's first and last record."""
        return files_coverage(seen, self._covers)

    def size(self, fetch: Fetch) -> int:
        """The files' bytes once decompressed (0 when they cannot be measured): what a split pass shares."""
        try:
            return sum(plain_size(p) for p in self._files.get(fetch.source, ()))
        except OSError:
            return 0

    def read_split(self, fetch: Fetch, index: int, offer: Callable[[Block], bool], block_bytes: int) -> Iterator[Part]:
        """`read`, shared with another process (auditor.evaluate.parallel): NDJSON files cut into blocks of
        lines, each offered to it (`offer` True: it took the block and reads it with `read_block`), the rest
        read here; files of one JSON document are read here whole. Provenance is tallied by `settle`, once the
        other process's counts are in."""
        self._pending = {}
        for n, path in enumerate(self._files.get(fetch.source, ())):
            reader = Reader(path, SOURCES[fetch.source], CHUNK, keep_logpush=True)
            if reader.by_lines():
                kept = (reader.decode(first, data) for first, data in self._watched(path, reader.blocks(block_bytes))
                        if not offer((n, first, data)))
                records: Iterator[Timed] = itertools.chain.from_iterable(kept)
            else:
                records = reader.records()
            yield Part(self._origin(path), self._pend(path, self._checking(path, records)), reader.last_line, n,
                       reader.keep_logpush)

    def read_block(self, fetch: Fetch, block: Block) -> Part:
        """The records of a block `read_split` handed to this process."""
        n, first, data = block
        path = self._files[fetch.source][n]
        reader = Reader(path, SOURCES[fetch.source], CHUNK, keep_logpush=True)
        records = self._checking(path, reader.decode(first, data))
        return Part(self._origin(path), self._pend(path, records), reader.last_line, n, reader.keep_logpush)

    def _origin(self, path: Path) -> str:
        """How messages name a file read in a split pass."""
        return display_path(path)

    def _checking(self, path: Path, records: Iterator[Timed]) -> Iterator[Timed]:
        """A file's records as the source checks them (a subclass may count what it finds odd)."""
        return records

    def pending(self) -> dict[Path, tuple[int, int | None, int | None]]:
        """Per file, the records this process read in a split pass and their earliest and latest time."""
        return dict(self._pending)

    def settle(self, other: Mapping[Path, tuple[int, int | None, int | None]]) -> None:
        """A split pass is over: each file's records, read here and by the other process (its `pending()`),
        are tallied for provenance."""
        for path, (count, first, last) in other.items():
            self._add(path, count, first, last)
        for path, tally in self._pending.items():
            self._tally.setdefault(path, tally)
            if self.watch is not None:
                self.watch(display_path(path), path.stat().st_size, tally[0], True)
        self._pending = {}

    def _watched(self, path: Path, blocks: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
        """The blocks, told to `watch` (lines read so far) every 65,536 lines or so."""
        shown, told = display_path(path), 0
        for first, block in blocks:
            if self.watch is not None and first - told > 0xFFFF:
                self.watch(shown, 0, first - 1, False)
                told = first
            yield first, block

    def _pend(self, path: Path, records: Iterator[Timed]) -> Iterator[Timed]:
        """The records, counted with their earliest and latest time in `_pending` (see `settle`)."""
        count, first, last = 0, _FAR, -_FAR
        try:
            for timed in records:
                t = timed[0]
                count += 1
                if t < first:
                    first = t
                if t > last:
                    last = t
                yield timed
        finally:
            if count:
                self._add(path, count, first, last)

    def _add(self, path: Path, count: int, first: int | None, last: int | None) -> None:
        mine = self._pending.get(path)
        if mine is not None and mine[0]:
            count += mine[0]
            first = min(first, mine[1]) if first is not None and mine[1] is not None else first or mine[1]
            last = max(last, mine[2]) if last is not None and mine[2] is not None else last or mine[2]
        self._pending[path] = (count, first, last)


def _digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file's bytes as stored."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
