"""Incremental reader of one JSON document (a list of records or an API envelope), in bounded memory."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

from auditor.sources.records import ErrorFactory, beyond_limits

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_TRUNCATED = "(truncated file?)"


class JsonDocument:
    """Incremental reader of one JSON document: a list of records or an API envelope.

    Holds at most about one chunk plus the record being decoded, so memory does not grow with the file.
    """

    def __init__(self, stream: IO[str], chunk_size: int, error: ErrorFactory) -> None:
        self._stream = stream
        self._chunk = chunk_size
        self._error = error
        self.buf = ""
        self.pos = 0
        self.line = 1  # the line of self.pos
        self.eof = False
        self.max_buffer = 0  # for tests: the high-water mark of the buffer, in characters

    def values(self) -> Iterator[tuple[Any, int]]:
        """Yield (record, line) for each element of the list or of the envelope's `result`."""
        c = self._peek()
        if c == "":
            return  # an empty file holds no records
        if c == "[":
            self._advance(self.pos + 1)
            yield from self._array()
        elif c == "{":
            yield from self._envelope()
        else:
            raise self._error(self.line, "expected a JSON list of records or a Cloudflare API envelope")
        if self._peek() != "":
            message = "unexpected data after the JSON document (several records? use NDJSON, one per line)"
            raise self._error(self.line, message)

    def _fill(self) -> bool:
        """Read more input; False at the end. Drops consumed text first, which bounds the buffer."""
        if self.eof:
            return False
        if self.pos:
            self.buf = self.buf[self.pos :]
            self.pos = 0
        # Read at least as much as is pending, so one huge record costs O(log n) re-decodes, not O(n).
        data = self._stream.read(max(self._chunk, len(self.buf)))
        if not data:
            self.eof = True
            return False
        self.buf += data
        self.max_buffer = max(self.max_buffer, len(self.buf))
        return True

    def _advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def _peek(self) -> str:
        """Skip whitespace; the next character, or '' at the end of input."""
        while True:
            self._advance(_WS.match(self.buf, self.pos).end())  # type: ignore[union-attr]  # always matches
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def _value(self) -> tuple[Any, int]:
        """Decode the JSON value at the cursor; (value, line it starts on)."""
        self._peek()
        start = self.line
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except (ValueError, RecursionError) as e:
                if not isinstance(e, json.JSONDecodeError):  # a huge integer, too deep: not a cut input
                    raise self._error(self.line, beyond_limits(e)) from None
                # Input cut by the chunk boundary fails at (or just before) the end of the buffer, or
                # inside a string; read more and retry. Any other failure is a real error.
                incomplete = e.msg.startswith("Unterminated string") or e.pos >= len(self.buf) - 8
                if incomplete and self._fill():
                    continue
                line = self.line + self.buf.count("\n", self.pos, e.pos)
                if self.eof and e.pos >= len(self.buf):
                    raise self._error(line, f"file ends inside a JSON value {_TRUNCATED}") from None
                raise self._error(line, f"invalid JSON: {e.msg}") from None
            if end == len(self.buf) and self._fill():
                continue  # a number ending at the buffer's end may go on in the next chunk
            self._advance(end)
            return value, start

    def _expect(self, char: str, after: str) -> None:
        c = self._peek()
        if c != char:
            found = "the end of the file" if c == "" else repr(c)
            raise self._error(self.line, f"invalid JSON: expected {char!r} {after}, found {found}")
        self._advance(self.pos + 1)

    def _array(self) -> Iterator[tuple[Any, int]]:
        """Elements of a list whose '[' was consumed."""
        if self._peek() == "]":
            self._advance(self.pos + 1)
            return
        decode, skip = _DECODER.raw_decode, _WS.match
        while True:
            # Fast path: the element and the delimiter after it are both in the buffer.
            buf, pos = self.buf, self.pos
            start = skip(buf, pos).end()  # type: ignore[union-attr]  # always matches
            try:
                value, end = decode(buf, start)
                after = skip(buf, end).end()  # type: ignore[union-attr]  # always matches
                delimiter = buf[after] if after < len(buf) else ""
            except json.JSONDecodeError:
                delimiter = ""
            except (ValueError, RecursionError) as e:  # a huge integer, nesting past the stack
                raise self._error(self.line + buf.count("\n", pos, start), beyond_limits(e)) from None
            if delimiter == "," or delimiter == "]":
                line = self.line + buf.count("\n", pos, start)
                self.line = line + buf.count("\n", start, after)
                self.pos = after + 1
                yield value, line
                if delimiter == "]":
                    return
                continue
            # Slow path: refill the buffer, or report the error with its line.
            yield self._value()
            c = self._peek()
            if c == "]":
                self._advance(self.pos + 1)
                return
            if c == "":
                raise self._error(self.line, f"file ends before the JSON list is closed {_TRUNCATED}")
            self._expect(",", "between records")

    def _envelope(self) -> Iterator[tuple[Any, int]]:
        """Records of `{"success":..., "result": [...], ...}`, whatever the key order."""
        self._advance(self.pos + 1)
        meta: dict[str, Any] = {}
        success_line = self.line
        has_list = False
        c = self._peek()
        while c != "}":
            if c != '"':
                self._expect('"', "(a key) in the top-level object")
            key, _ = self._value()
            self._expect(":", "after a key")
            if key == "result" and self._peek() == "[":
                has_list = True
                self._advance(self.pos + 1)
                if meta.get("success") is False:
                    for _ in self._array():  # a failed response: its records are not trustworthy
                        pass
                else:
                    yield from self._array()
            else:
                if key == "success":
                    success_line = self.line
                meta[key], _ = self._value()
            c = self._peek()
            if c == ",":
                self._advance(self.pos + 1)
                c = self._peek()
            elif c != "}":
                self._expect("}", "at the end of the top-level object")
        self._advance(self.pos + 1)
        if meta.get("success") is False:
            errors = _errors(meta.get("errors"))
            raise self._error(success_line, f"the file holds a failed API response: {errors}")
        if not has_list:
            message = 'expected a JSON list of records or a Cloudflare API envelope with a "result" list'
            raise self._error(success_line, message)


def _errors(errors: object) -> str:
    """An envelope's `errors` as text: 'CODE MESSAGE; ...'."""
    if not isinstance(errors, list) or not errors:
        return "success is false and no errors are given"
    parts = []
    for err in errors:
        if isinstance(err, dict):
            parts.append(f"{err.get('code', '?')} {err.get('message', '')}".strip())
        else:
            parts.append(str(err))
    return "; ".join(parts)
