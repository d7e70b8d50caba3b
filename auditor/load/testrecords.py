"""Checks of a rule test's inline records: each has a readable time, and only its source's fields with
values of their types, so a misspelt field (`alowed`) is an error rather than a silently different test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from auditor.core.diagnostics import Code
from auditor.core.fields import SOURCES, FieldType
from auditor.core.timeutil import parse_epoch, parse_time
from auditor.load.loader import pointer_join
from auditor.load.schema import did_you_mean

# What a record's value may be for each field type (null is a value everywhere: the field is then missing).
_TYPES: dict[FieldType, tuple[type, ...]] = {
    FieldType.STRING: (str,),
    FieldType.BOOL: (bool,),
    FieldType.IP: (str,),
    FieldType.TIME: (str, int, float),
}
_TYPE_NAMES = {FieldType.STRING: "a string", FieldType.BOOL: "true or false", FieldType.IP: "an IP address string",
               FieldType.TIME: "an RFC 3339 time or epoch number"}

Problem = tuple[Code, str, str, str | None, bool]  # code, message, JSON pointer, hint, at the key


def record_problems(by_source: dict[str, tuple[dict[str, Any], ...]], per_source: bool,
                    pointer: str) -> Iterator[Problem]:
    """Every problem of every inline record (per_source: records were given as {source: [...]})."""
    for name, records in by_source.items():
        source = SOURCES[name]
        names = {f.logpush: f for f in source.fields.values() if f.logpush} | dict(source.fields)
        for j, record in enumerate(records):
            at = pointer_join(pointer_join(pointer, name), j) if per_source else pointer_join(pointer, j)
            stamp = record.get(source.time_field, record.get(source.fields[source.time_field].logpush or ""))
            try:
                parse_time(stamp) if isinstance(stamp, str) else parse_epoch(stamp)
            except (ValueError, TypeError, OverflowError):
                what = "has no" if stamp is None else f"has an invalid ({stamp!r})"
                yield (Code.TEST_RECORDS, f"test record {what} {source.time_field}", at, "e.g. 2026-11-15T09:00:00Z",
                       False)
            for key, value in record.items():
                field = names.get(key)
                if field is None:
                    hint = did_you_mean(key, source.fields) or f"{name} fields: {', '.join(source.fields)}"
                    yield Code.TEST_RECORD_FIELD, f"test record field '{key}' is not a field of {name}", \
                        pointer_join(at, key), hint, True
                elif value is not None and (not isinstance(value, _TYPES[field.type]) or
                                            (field.type is not FieldType.BOOL and isinstance(value, bool))):
                    yield Code.TEST_RECORD_FIELD, f"test record field '{key}' must be {_TYPE_NAMES[field.type]}, " \
                        f"not {type(value).__name__} {value!r}", pointer_join(at, key), None, False
