"""Reading one exported file: its records decoded line by line (NDJSON) or through a streaming JSON reader
(one document), gzip or not, each checked and timed once (auditor.sources.records); and, for a pass shared
between two processes (auditor.evaluate.parallel), its lines in blocks.
"""

from __future__ import annotations

import codecs
import gzip
import io
import itertools
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from auditor.core.fields import Source
from auditor.core.timeutil import EARLIEST_US, EPOCH, LATEST_US, MICROSECOND
from auditor.sources.base import DataError, Timed
from auditor.sources.jsondoc import JsonDocument
from auditor.sources.records import MAX_NESTING, NANOS, Normalizer, beyond_limits, too_deep

try:  # optional: about 3x faster than the stdlib decoder, which matters at millions of lines
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

LINE_SUFFIXES = (".ndjson", ".jsonl")
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
_SNIFF_BYTES = 1 << 16
_SHALLOW_LINE = 2 * MAX_NESTING  # bytes: a line this short cannot hold a value nested MAX_NESTING deep
_TOO_DEEP = f"record nested more than {MAX_NESTING} levels deep; fix or remove the line"


def plain_size(path: Path) -> int:
    """A file's size once decompressed: for gzip, what its trailer records (modulo 4 GiB, so at least the
    stored size is taken)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if fh.read(2) != GZIP_MAGIC or size < 20:
            return size
        fh.seek(-4, io.SEEK_END)
        return max(size, int.from_bytes(fh.read(4), "little"))


def _blocks(stream: IO[bytes], size: int) -> Iterator[tuple[int, bytes]]:
    """A stream's lines in blocks of about `size` bytes, each (line number of its first line, whole lines; the
    last may lack its newline), the file's byte order mark removed. Read with `read1`: bytes decompressed
    before a gzip error are handed on, so the error names the line it reached."""
    read = getattr(stream, "read1", stream.read)
    line, rest, start = 1, b"", True
    while chunk := read(size):
        if start:
            chunk, start = chunk.removeprefix(codecs.BOM_UTF8), False
        data = rest + chunk if rest else chunk
        cut = data.rfind(b"\n") + 1
        if not cut:  # a line longer than a block: read on
            rest = data
            continue
        block, rest = data[:cut], data[cut:]
        yield line, block
        line += block.count(b"\n")
    if rest:
        yield line, rest


def _brackets(raw: bytes | str) -> int:
    """How many `{` and `[` a line holds (in strings too: an upper bound of its nesting)."""
    if raw.__class__ is bytes:
        return raw.count(b"{") + raw.count(b"[")
    return raw.count("{") + raw.count("[")  # type: ignore[arg-type]


def _split(block: bytes) -> list[bytes]:
    """A block's lines, without their newlines."""
    lines = block.split(b"\n")
    if not lines[-1]:
        lines.pop()
    return lines


@contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed when it is gzip (by magic bytes: names lie)."""
    with path.open("rb") as raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic != GZIP_MAGIC:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            yield unzipped  # type: ignore[misc]  # GzipFile is a binary IO


class Reader:
    """Reads one file of one source; knows its path so every error names file and line."""

    def __init__(self, path: Path, source: Source, chunk_size: int, keep_logpush: bool = False) -> None:
        self.path = path
        self.source = source
        self.chunk_size = chunk_size
        # NDJSON lines in Logpush's names (the access log's) are handed on in them, time checked
        # (Normalizer.logpush_time): the runner renames only the records a rule reads (records.LogpushNames).
        self.keep_logpush = keep_logpush and source.name == "access_requests"
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
        if self.path.name.removesuffix(".gz").endswith(LINE_SUFFIXES):
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
        lines = itertools.chain.from_iterable(_split(block) for _, block in _blocks(stream, CHUNK))
        return self._decode_lines(lines, orjson.loads)

    def _text_lines(self, stream: IO[bytes]) -> Iterator[Timed]:
        # The stdlib decodes str about 30% faster than bytes.
        with io.TextIOWrapper(stream, encoding="utf-8-sig") as text:
            yield from self._decode_lines(text, json.loads)

    def by_lines(self) -> bool:
        """True when the file holds one JSON object per line (so it can be cut into blocks of lines)."""
        try:
            return self._sniff_lines()
        except OSError as e:
            raise self.error(None, f"cannot read: {e.strerror or e}") from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise self.error(None, f"corrupt or truncated gzip data ({e}); re-export the file") from None

    def blocks(self, size: int) -> Iterator[tuple[int, bytes]]:
        """The file's lines in blocks of about `size` bytes: (line number of the first, whole lines)."""
        line = 1
        try:
            with _open(self.path) as stream:
                for line, block in _blocks(stream, size):
                    yield line, block
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise self.error(line, f"corrupt or truncated gzip data ({e}); re-export the file") from None
        except OSError as e:
            raise self.error(None, f"cannot read: {e.strerror or e}") from None

    def decode(self, first_line: int, block: bytes) -> Iterator[Timed]:
        """The records of one block of lines (from `blocks`), numbered from `first_line`."""
        return self._decode_lines(_split(block), orjson.loads if orjson is not None else json.loads, first_line)

    def _decode_lines(self, lines: Iterable[Any], loads: Callable[[Any], Any], start: int = 1) -> Iterator[Timed]:
        time_field = self.source.time_field
        access = self.source.name == "access_requests"  # the log that has a Logpush dataset and a country
        normalize = self.normalize
        from_logpush = normalize.from_logpush
        logpush_time = normalize.logpush_time if self.keep_logpush else None
        plain = normalize.plain  # Logpush key sets free of API names (Normalizer.logpush_time)
        fromisoformat = datetime.fromisoformat
        line = start - 1
        # The hot loop: one decode, one type check, a few dict lookups and the time's parse per line; no
        # regexes. Anything unusual (Logpush names, a bad time, not an object) goes through `normalize`.
        try:
            for line, raw in enumerate(lines, start):
                try:
                    rec = loads(raw)
                except ValueError:
                    if raw.isspace() or not raw:
                        continue
                    rec = self._stdlib_line(line, raw)
                self.line = line
                # A line with fewer brackets than MAX_NESTING cannot nest that deep (counting bytes is ~50x cheaper
                # than walking the record).
                if len(raw) > _SHALLOW_LINE and _brackets(raw) >= MAX_NESTING and too_deep(rec):
                    raise self.error(line, _TOO_DEEP)
                if type(rec) is not dict:
                    yield normalize(rec, line)
                    continue
                if access and ("CreatedAt" in rec or "Email" in rec):
                    if logpush_time is not None:
                        # Logpush's usual record inline: epoch nanoseconds, a key set known to be free of API names.
                        stamp = rec.get("CreatedAt")
                        if stamp.__class__ is int and stamp in NANOS and plain.get(tuple(rec)):
                            yield stamp // 1000, rec
                            continue
                        if (t_us := logpush_time(rec, line)) is not None:
                            yield t_us, rec
                            continue
                    yield from_logpush(rec, line)
                    continue
                try:
                    # Not text (missing, a number): TypeError, reported by `normalize.time` with the rest.
                    t_us = (fromisoformat(rec.get(time_field)) - EPOCH) // MICROSECOND  # type: ignore[arg-type]
                    if not EARLIEST_US <= t_us < LATEST_US:
                        raise ValueError  # outside the supported times: `normalize.time` says so, at its line
                except (TypeError, ValueError, OverflowError):
                    t_us = normalize.time(rec.get(time_field), line)
                if access and (code := rec.get("country")).__class__ is str and not code.isupper():
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
