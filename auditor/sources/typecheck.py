"""Values of the wrong type in log records: counted per source and field, with the first file and line.

A record whose `allowed` is the string "false", the number 0, or missing compares unequal to every operand,
so a rule reading it quietly answers as if the sign-in were something else. Such values are not errors (one
odd record should not stop an audit) but never silent: the run warns with a count and the first place, and
each rule whose filter reads the field says so in its message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from auditor.core.fields import FieldType, Source
from auditor.sources.base import Part

Check = Callable[[dict[str, Any]], None]


@dataclass
class Mistyped:
    """One field's values of the wrong type in one source: how many, the first one and where it was."""

    field: str
    expected: str
    count: int
    first: str  # FILE:LINE (or the origin, for a source without lines)
    example: Any
    missing: bool  # the first one was a missing or null value

    def describe(self, source: str) -> str:
        """One line for the run's warnings."""
        what = "missing or null" if self.missing else f"{_kind(self.example)} ({_shown(self.example)})"
        return (f"{source}: {self.count} record{'s' if self.count != 1 else ''} with {self.field} not {self.expected}, "
                f"first at {self.first}: {what}; a condition on {self.field} never equals such a value")


class TypeTally:
    """Counts, for the fields a pass reads, the records whose value has the wrong type."""

    def __init__(self, source: Source, fields: Iterable[str]) -> None:
        self.source = source
        self.found: dict[str, Mistyped] = {}
        wanted = sorted(set(fields) & set(source.fields) - {source.time_field})
        self._checks = [(name, bool if source.fields[name].type == FieldType.BOOL else str,
                         source.fields[name].optional) for name in wanted]

    def for_part(self, part: Part) -> Check | None:
        """A check(record) for one part's records (None when no field is read); it names the part's origin, and
        the line of the first mistyped record when the part has lines."""
        if not self._checks:
            return None
        checks, found, origin, line = self._checks, self.found, part.origin, part.line

        def check(record: dict[str, Any]) -> None:
            for name, kind, optional in checks:
                v = record.get(name)
                if v.__class__ is not kind and not (v is None and optional):
                    entry = found.get(name)
                    if entry is None:
                        expected = "a boolean" if kind is bool else "a string"
                        where = f"{origin}:{line()}" if line is not None else origin
                        found[name] = Mistyped(name, expected, 1, where, v, v is None)
                    else:
                        entry.count += 1

        return check

    def warnings(self) -> list[str]:
        """One warning per mistyped field, in field order."""
        return [m.describe(self.source.name) for m in self.found.values()]

    def note(self, fields: Iterable[str]) -> str | None:
        """For a rule reading these fields: a sentence naming the mistyped ones, or None."""
        hit = [self.found[name] for name in dict.fromkeys(fields) if name in self.found]
        if not hit:
            return None
        parts = [f"{m.field} not {m.expected} in {m.count} record{'s' if m.count != 1 else ''} (first at {m.first})"
                 for m in hit]
        return f"note: its filter reads {'; '.join(parts)}"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return "a list" if isinstance(value, list) else "an object"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
