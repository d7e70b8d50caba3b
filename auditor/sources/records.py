"""One decoded record -> (time, record with API field names): the check every local source applies once.

Country codes come out upper case (`upper_country`): Logpush exports write them lower case.

Files and in-memory records go through `Normalizer`; the file reader inlines its common case (an
API-named record with an RFC 3339 time) in its hot loop and calls it for everything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from auditor.core.fields import LOGPUSH_NAMES, Source
from auditor.core.timeutil import END_US, EPOCH, FIRST_US, MICROSECOND, US, TimeRangeError, parse_epoch, parse_time
from auditor.language.codegen import Adjust, Renaming
from auditor.sources.base import DataError, Timed

ErrorFactory = Callable[[int | None, str], DataError]
_NANOS = 10**14  # an epoch number at least this large is in nanoseconds (core.timeutil.parse_epoch)
# Epoch nanoseconds from _NANOS to the end of year 9999: a CreatedAt taken as it is (// 1000) in the reader's hot loop.
NANOS = range(_NANOS, END_US * 1000)
_KEY_SETS = 256  # Logpush key sets remembered per reader (an export has a handful)


# Records nested deeper than this are refused: reports, grouping and templates walk values recursively.
MAX_NESTING = 64


def too_deep(record: Any) -> bool:
    """True when a value in the record is nested more than MAX_NESTING levels (found without recursion)."""
    if type(record) is not dict:
        return False
    stack = [(v, 1) for v in record.values() if v.__class__ is dict or v.__class__ is list]
    while stack:
        value, depth = stack.pop()
        if depth >= MAX_NESTING:
            return True
        items = value.values() if value.__class__ is dict else value
        stack.extend((v, depth + 1) for v in items if v.__class__ is dict or v.__class__ is list)
    return False


def beyond_limits(exc: BaseException) -> str:
    """What a JSON decoder's ValueError or RecursionError that is not a syntax error means, for the user."""
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    reason = " ".join(str(exc).split())
    if "integer string conversion" in reason:
        return "invalid JSON: an integer of more than 4300 digits"
    return f"invalid JSON: {reason}"


def json_type(value: object) -> str:
    """How a JSON value is named in messages: a list, a string, null, true, a number."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def upper_country(rec: dict[str, Any]) -> dict[str, Any]:
    """The record with its `country` (an ISO 3166 alpha-2 code) in upper case, whatever case the input used
    (Logpush exports write `us`): rules, evidence and reports see one spelling. A copy only when it changes."""
    code = rec.get("country")
    if code.__class__ is str and not code.isupper() and code:
        return {**rec, "country": code.upper()}
    return rec


# A record still in Logpush's names holds this key: `Normalizer.logpush_time` lets only such records through
# unrenamed (the file reader's `keep_logpush`), and `LogpushNames` renames them when a rule reads them.
LOGPUSH_MARK = "CreatedAt"
# Keys that make a Logpush record ambiguous: an API name another key of it is renamed to. Such records are renamed
# as they are read (where the two keys meet, the later wins), never kept in Logpush's names.
_API_NAMES = frozenset(LOGPUSH_NAMES.values())
# The text of each minute of a day and of each second of a minute (formatting is on the hot path).
_HOUR_MINUTE = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECOND = tuple(f"{s:02d}" for s in range(60))


def _upper(code: Any, t_us: int) -> Any:
    """A country code as renaming leaves it: text in upper case."""
    return code.upper() if code.__class__ is str else code


class LogpushNames:
    """Logpush PascalCase -> API names, renamed once per key set; an epoch CreatedAt written as RFC 3339 text."""

    def __init__(self) -> None:
        self._renamed: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._day: int | None = None  # the last formatted day and its text
        self._text = ""

    def __call__(self, rec: dict[str, Any], t_us: int) -> dict[str, Any]:
        """A record kept in Logpush's names (its time `t_us`, already checked by `Normalizer.logpush_time`) as the
        API names it: what `Normalizer.from_logpush` returns for it."""
        out = self.rename(rec)
        stamp = out.get("created_at")
        if type(stamp) is int or type(stamp) is float:
            out["created_at"] = self.format(t_us)
        return out

    def renaming(self) -> Renaming:
        """How the runner's generated feeds read records kept in Logpush's names (codegen.Renaming): filters read
        their Logpush keys, a country in upper case and an epoch time as its text, as renaming makes them."""
        reads: dict[str, tuple[str, Adjust | None]] = {api: (logpush, None) for logpush, api in LOGPUSH_NAMES.items()}
        reads["country"] = (reads["country"][0], _upper)
        reads["created_at"] = (reads["created_at"][0], self._time_text)
        return Renaming(LOGPUSH_MARK, self, reads)

    def _time_text(self, stamp: Any, t_us: int) -> Any:
        """The created_at a renamed record holds: an epoch CreatedAt as text, any other as it is."""
        return self.format(t_us) if type(stamp) is int or type(stamp) is float else stamp

    def rename(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The record with API names (unknown fields keep theirs) and its country code in upper case."""
        keys = tuple(rec)
        names = self._renamed.get(keys)
        if names is None:
            if len(self._renamed) >= _KEY_SETS:
                self._renamed.clear()
            names = self._renamed[keys] = tuple(LOGPUSH_NAMES.get(k, k) for k in keys)
        out = dict(zip(names, rec.values()))  # noqa: B905 - the names are those of the record's keys
        code = out.get("country")
        if code.__class__ is str:  # Logpush writes `us`: the one spelling is upper case
            out["country"] = code.upper()
        return out

    def format(self, t_us: int) -> str:
        """core.timeutil.format_time, remembering the last day's text (records arrive in time order)."""
        seconds, micros = divmod(t_us, US)
        day, second = divmod(seconds, 86400)
        if day != self._day:
            self._text = datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%dT")
            self._day = day
        minute, second = divmod(second, 60)
        if micros:
            return f"{self._text}{_HOUR_MINUTE[minute]}{_SECOND[second]}.{micros:06d}Z"
        return f"{self._text}{_HOUR_MINUTE[minute]}{_SECOND[second]}Z"


class Normalizer:
    """Checks one record of a log source and returns it with its time; DataError (with its line) otherwise."""

    def __init__(self, source: Source, error: ErrorFactory) -> None:
        self.source = source
        self.error = error
        self._time_field = source.time_field
        self._logpush = source.name == "access_requests"
        self._names = LogpushNames()
        # Per Logpush key set seen: True when free of API names (see _API_NAMES); the file reader's hot loop reads it.
        self.plain: dict[tuple[str, ...], bool] = {}

    def __call__(self, rec: Any, line: int) -> Timed:
        """(time in epoch microseconds, record with API names) for one decoded value."""
        if type(rec) is not dict:
            raise self.error(line, f"record is not a JSON object (got {json_type(rec)})")
        if self._logpush:
            if "CreatedAt" in rec or "Email" in rec:
                return self.from_logpush(rec, line)
            rec = upper_country(rec)
        stamp = rec.get(self._time_field)
        try:
            return (datetime.fromisoformat(stamp) - EPOCH) // MICROSECOND, rec
        except (TypeError, ValueError, OverflowError):
            return self.time(stamp, line), rec

    def from_logpush(self, rec: dict[str, Any], line: int) -> Timed:
        """Logpush PascalCase -> API names (renamed once per key set); an epoch CreatedAt is taken as the time
        directly and kept as RFC 3339 text in the record (filters and evidence read it as text). Unknown fields
        keep their names."""
        out = self._names.rename(rec)
        stamp = out.get("created_at")
        if type(stamp) is int or type(stamp) is float:
            t_us = self._epoch(stamp, line)
            out["created_at"] = self._names.format(t_us)
            return t_us, out
        return self.time(out.get(self._time_field), line), out

    def logpush_time(self, rec: dict[str, Any], line: int) -> int | None:
        """The time of a record in Logpush's names, checked as `from_logpush` checks it, for a reader that keeps
        the record as it is (renamed only when a rule reads it: `LogpushNames`); None when the record also holds
        an API name, so only renaming it says which of the two values counts."""
        keys = tuple(rec)
        plain = self.plain.get(keys)
        if plain is None:
            if len(self.plain) >= _KEY_SETS:
                self.plain.clear()
            plain = self.plain[keys] = _API_NAMES.isdisjoint(keys)
        if not plain:
            return None
        stamp = rec.get("CreatedAt")
        if type(stamp) is int or type(stamp) is float:
            return self._epoch(stamp, line)
        return self.time(stamp, line)  # text (rfc3339*), or the error a missing or odd CreatedAt gets

    def _epoch(self, stamp: float, line: int) -> int:
        """An epoch CreatedAt (seconds or nanoseconds) -> epoch microseconds of a time RFC 3339 can write."""
        try:
            # Epoch nanoseconds (Logpush's usual form) inline: parse_epoch's answer without its checks.
            t_us = stamp // 1000 if type(stamp) is int and stamp >= _NANOS else parse_epoch(stamp)
        except (ValueError, OverflowError):
            t_us = END_US
        if not FIRST_US <= t_us < END_US:
            raise self.error(line, f"CreatedAt {stamp!r} is not a unix timestamp")
        return t_us

    def time(self, stamp: object, line: int) -> int:
        """The time of a record, or DataError saying what is wrong with it."""
        name = self._time_field
        if stamp is None:
            raise self.error(line, f"record has no {name} (every {self.source.name} record needs its time)")
        if not isinstance(stamp, str):
            raise self.error(line, f"{name} is {json.dumps(stamp)}, expected an RFC 3339 timestamp")
        try:
            return parse_time(stamp)
        except TimeRangeError as exc:
            raise self.error(line, f"{name}: {exc}") from None
        except (ValueError, OverflowError):
            raise self.error(line, f"{name} {stamp!r} is not an RFC 3339 timestamp") from None
