"""Offline records from exported files: JSON (list or API envelope), NDJSON/JSONL, gzip, Logpush names.

`FileSource` is the run's Source over them (auditor.sources.base); `iter_timed` reads one file.

Everything streams: NDJSON line by line, JSON documents through a small incremental reader, so a
multi-gigabyte export is read in constant memory.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import itertools
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from auditor.core.coverage import Coverage, Interval, Seen, files_coverage
from auditor.core.diagnostics import display_path
from auditor.core.fields import SOURCES, Source
from auditor.core.provenance import FileRecord
from auditor.core.timeutil import EPOCH, MICROSECOND, format_time
from auditor.sources.base import BaseSource, DataError, Part, SourceError, Timed
from auditor.sources.jsondoc import JsonDocument
from auditor.sources.records import MAX_NESTING, Normalizer, beyond_limits, too_deep

if TYPE_CHECKING:
    from auditor.compile.plan import Fetch

try:  # optional: about 3x faster than the stdlib decoder, which matters at millions of lines
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

_SUFFIXES = (".json", ".ndjson", ".jsonl")
_LINE_SUFFIXES = (".ndjson", ".jsonl")
_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_BYTES = 1 << 16
_CHUNK = 1 << 20
_SOURCE_HINT = "pass --source access_requests|scim_updates"
_ENDINGS = "ending .json, .ndjson or .jsonl (optionally + .gz)"
_SHALLOW_LINE = 2 * MAX_NESTING  # bytes: a line this short cannot hold a value nested MAX_NESTING deep
_TOO_DEEP = f"record nested more than {MAX_NESTING} levels deep; fix or remove the line"


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


def iter_timed(path: Path, source: str, *, chunk_size: int = _CHUNK) -> Iterator[Timed]:
    """Stream one file's records with their times (epoch microseconds), normalised to API field names;
    DataError naming the file and line of the first bad one."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    return _Reader(Path(path), SOURCES[source], chunk_size).records()


def file_part(path: Path, source: str) -> Part:
    """One file's records as a Part that knows the line of the record last read (for messages about it)."""
    reader = _Reader(Path(path), SOURCES[source], _CHUNK)
    return Part(display_path(path), reader.records(), reader.last_line)


def iter_records(path: Path, source: str, *, chunk_size: int = _CHUNK) -> Iterator[dict]:
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
        """Every record of the fetch's log source, file by file."""
        for path in self._files.get(fetch.source, ()):
            yield self._counted(path, file_part(path, fetch.source))

    def _counted(self, path: Path, part: Part) -> Part:
        """The part, its records tallied for provenance."""
        return Part(part.origin, self._tallied(path, iter(part.records)), part.line)

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
        """The files' bytes (0 when they cannot be measured)."""
        try:
            return sum(p.stat().st_size for p in self._files.get(fetch.source, ()))
        except OSError:
            return 0


def _digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file's bytes as stored."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


@contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed when it is gzip (by magic bytes: names lie)."""
    with path.open("rb") as raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic != _GZIP_MAGIC:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            yield unzipped  # type: ignore[misc]  # GzipFile is a binary IO


class _Reader:
    """Reads one file of one source; knows its path so every error names file and line."""

    def __init__(self, path: Path, source: Source, chunk_size: int) -> None:
        self.path = path
        self.source = source
        self.chunk_size = chunk_size
        self.normalize = Normalizer(source, self.error)
        self.line = 0  # of the record last read

    def last_line(self) -> int | None:
        """The line of the record last read (None before the first)."""
        return self.line or None

    def error(self, line: int | None, message: str) -> DataError:
        return DataError(self.path, line, message)

    def records(self) -> Iterator[Timed]:
        doc: JsonDocument | None = None
        try:
            as_lines = self._sniff_lines()
            with _open(self.path) as stream:
                if as_lines:
                    yield from self._lines(stream)
                    return
                with io.TextIOWrapper(stream, encoding="utf-8-sig") as text:
                    doc = JsonDocument(text, self.chunk_size, self.error)
                    normalize = self.normalize
                    for value, line in doc.values():
                        self.line = line
                        if too_deep(value):
                            raise self.error(line, _TOO_DEEP)
                        yield normalize(value, line)
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            where = doc.line if doc is not None else None
            raise self.error(where, f"corrupt or truncated gzip data ({e}); re-export the file") from None
        except UnicodeDecodeError:
            raise self.error(doc.line if doc is not None else None, "the file is not UTF-8 text") from None
        except OSError as e:
            raise self.error(None, f"cannot read: {e.strerror or e}") from None

    def _sniff_lines(self) -> bool:
        """True when the file holds one JSON object per line rather than one JSON document."""
        if self.path.name.removesuffix(".gz").endswith(_LINE_SUFFIXES):
            return True
        with _open(self.path) as stream:
            head = stream.read(_SNIFF_BYTES)
        text = head.removeprefix(codecs.BOM_UTF8).lstrip()
        if not text.startswith(b"{"):
            return False
        first, newline, _ = text.partition(b"\n")
        if not newline:
            # A whole file on one line: one record (NDJSON) or a compact envelope; a longer line is
            # not a record, so it is a document.
            if len(head) >= _SNIFF_BYTES:
                return False
            first = text
        try:
            value = json.loads(first)
        except (ValueError, RecursionError):
            return False  # a pretty-printed document's first line is not complete JSON (or too deep to tell)
        return isinstance(value, dict) and "result" not in value

    def _lines(self, stream: IO[bytes]) -> Iterator[Timed]:
        if orjson is None:
            return self._text_lines(stream)
        # The decoding generator itself, not one wrapping it: one generator less to resume per record.
        first = stream.readline().removeprefix(codecs.BOM_UTF8)
        return self._decode_lines(itertools.chain((first,), stream), orjson.loads)

    def _text_lines(self, stream: IO[bytes]) -> Iterator[Timed]:
        # The stdlib decodes str about 30% faster than bytes.
        with io.TextIOWrapper(stream, encoding="utf-8-sig") as text:
            yield from self._decode_lines(text, json.loads)

    def _decode_lines(self, lines: Iterable[Any], loads: Callable[[Any], Any]) -> Iterator[Timed]:
        time_field = self.source.time_field
        logpush = self.source.name == "access_requests"
        normalize = self.normalize
        fromisoformat = datetime.fromisoformat
        line = 0
        # The hot loop: one decode, one type check, a few dict lookups and the time's parse per line; no
        # regexes. Anything unusual (Logpush names, a bad time, not an object) goes through `normalize`.
        try:
            for line, raw in enumerate(lines, 1):
                try:
                    rec = loads(raw)
                except ValueError:
                    if raw.isspace() or not raw:
                        continue
                    rec = self._stdlib_line(line, raw)
                self.line = line
                if len(raw) > _SHALLOW_LINE and too_deep(rec):  # a shorter line cannot nest that deep
                    raise self.error(line, _TOO_DEEP)
                if type(rec) is not dict or (logpush and ("CreatedAt" in rec or "Email" in rec)):
                    yield normalize(rec, line)
                    continue
                try:
                    # Not text (missing, a number): TypeError, reported by `normalize.time` with the rest.
                    t_us = (fromisoformat(rec.get(time_field)) - EPOCH) // MICROSECOND  # type: ignore[arg-type]
                except (TypeError, ValueError, OverflowError):
                    t_us = normalize.time(rec.get(time_field), line)
                if logpush and (code := rec.get("country")).__class__ is str and not code.isupper():
                    rec["country"] = code.upper()  # one spelling (records.upper_country), in place: a fresh dict
                yield t_us, rec
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise self.error(line + 1, f"corrupt or truncated gzip data ({e}); re-export the file") from None

    def _stdlib_line(self, line: int, raw: bytes | str) -> Any:
        """Decode a line the fast decoder refused: the stdlib accepts a little more (NaN, huge ints),
        so results do not depend on whether orjson is installed; its message is the one reported."""
        try:
            return json.loads(raw)
        except UnicodeDecodeError:
            raise self.error(line, "invalid JSON: not UTF-8 text; fix or remove the line") from None
        except json.JSONDecodeError as e:
            message = f"invalid JSON: {e.msg} at column {e.colno}; fix or remove the line"
            raise self.error(line, message) from None
        except (ValueError, RecursionError) as e:  # an integer of over 4300 digits, or nesting past the stack
            raise self.error(line, f"{beyond_limits(e)}; fix or remove the line") from None
