"""Values of the wrong type in log records: counted per source and field, with the first file and line.

A record whose `allowed` is the string "false", the number 0, or missing compares unequal to every operand,
so a rule reading it quietly answers as if the sign-in were something else. Such values are not errors (one
odd record should not stop an audit) but never silent: the run warns with a count, the first place and the
rules whose filters read the field. (A rule's own result stays the same over files and the API, which see
different records and places, so the warning, not the result, says it.) `null` is a value, not a wrong type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.core.fields import LOGPUSH_NAME_OF, FieldType, Source
from auditor.sources.base import Part
from auditor.sources.records import LOGPUSH_MARK

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
    at: tuple[int, int] = (0, 0)  # the first one's (part order, line): which came first when passes merge

    def describe(self, source: str, rules: list[str]) -> str:
        """One line for the run's warnings, naming the rules whose filters read the field."""
        what = "missing" if self.missing else f"{_kind(self.example)} ({_shown(self.example)})"
        return (f"{source}: {self.count} record{'s' if self.count != 1 else ''} with {self.field} not {self.expected}, "
                f"first at {self.first}: {what}; rules filtering on {self.field} ({', '.join(rules)}) never match "
                "such a value")


class TypeTally:
    """Counts, for the fields a pass reads, the records whose value has the wrong type."""

    def __init__(self, source: Source, fields: Iterable[str]) -> None:
        self.source = source
        self.found: dict[str, Mistyped] = {}
        wanted = sorted(set(fields) & set(source.fields) - {source.time_field})
        self._checks = [(name, bool if source.fields[name].type == FieldType.BOOL else str,
                         source.fields[name].optional) for name in wanted]
        self._fast = _fast_path(self._checks)
        self._fast_logpush = _fast_path(self._checks, marked=True)

    @property
    def wanted(self) -> list[str]:
        """The fields checked, in order (the counting query's columns)."""
        return [name for name, _, _ in self._checks]

    def for_part(self, part: Part) -> Check | None:
        """A check(record) for one part's records (None when no field is read); it names the part's origin, and
        the line of the first mistyped record when the part has lines. A record kept in Logpush's names
        (Part.logpush_names) is checked by them: free of API names, it holds each field under its Logpush name."""
        if not self._checks:
            return None
        found, origin, line, order = self.found, part.origin, part.line, part.order

        def slow(keyed: list[tuple[str, str, type, bool]]) -> Check:
            def check(record: dict[str, Any]) -> None:
                for name, key, kind, optional in keyed:
                    v = record.get(key)
                    if v.__class__ is not kind and not (v is None and (optional or key in record)):
                        entry = found.get(name)
                        if entry is None:
                            expected = "a boolean" if kind is bool else "a string"
                            at = line() if line is not None else None
                            where = f"{origin}:{at}" if at is not None else origin
                            found[name] = Mistyped(name, expected, 1, where, v, v is None, (order, at or 0))
                        else:
                            entry.count += 1
            return check

        api = slow([(name, name, kind, optional) for name, kind, optional in self._checks])
        if not part.logpush_names:
            return self._fast(api)
        logpush = slow([(name, LOGPUSH_NAME_OF.get(name, name), kind, optional)
                        for name, kind, optional in self._checks])
        return self._fast_logpush(api, logpush)

    def counting_sql(self, table: str) -> str | None:
        """For an engine holding the records in a relation (auditor.sources.relation's columns): one query
        counting, per checked field, the records a pass would count here (None when no field is checked)."""
        if not self._checks:
            return None
        counts = []
        for name, _, optional in self._checks:
            wrong = f"(_wrong IS NOT NULL AND strpos(_wrong, ',{name},') > 0)"
            null = f"(_odd IS NOT NULL AND json_exists(_odd, '$.{name}'))"  # present as null: not counted
            missing = "" if optional else f' OR ("{name}" IS NULL AND NOT {null})'
            counts.append(f"count(*) FILTER (WHERE {wrong}{missing})")
        # Identifiers from the fields table only.
        return f"SELECT {', '.join(counts)} FROM {table}"  # noqa: S608

    def surely_clean(self, nulls: Mapping[str, tuple[int | None, int]]) -> bool:
        """True when column statistics (column -> (nulls or None when unknown, values), e.g. a Parquet file's)
        prove that counting_sql would count nothing: `_wrong` absent or all null, and no null in a checked field
        whose missing value counts."""
        wrong = nulls.get("_wrong")
        if wrong is not None and wrong[0] != wrong[1]:
            return False
        return all(nulls.get(name, (None, 0))[0] == 0 for name, _, optional in self._checks if not optional)

    def settle(self, counts: Mapping[str, int], parts: Iterable[Part]) -> None:
        """Take the counts an engine made (`counts`, per field) and find, in the records in reading order, the
        first of each counted field (its place and value): a pass that stops there."""
        wanted = {name for name, n in counts.items() if n}
        if wanted:
            for part in parts:
                check = self.for_part(part)
                assert check is not None
                for _, record in part.records:
                    check(record)
                    if wanted <= self.found.keys():
                        break
                else:
                    continue
                break
        self.found = {name: m for name, m in self.found.items() if name in wanted}
        for name, m in self.found.items():
            m.count = counts[name]

    def merge(self, other: dict[str, Mistyped]) -> None:
        """Add what another pass over other records of the same parts found (its `found`): counts add, the
        earliest first value is kept."""
        for name, theirs in other.items():
            mine = self.found.get(name)
            if mine is None:
                self.found[name] = theirs
                continue
            count = mine.count + theirs.count
            if theirs.at < mine.at:
                self.found[name] = mine = theirs
            mine.count = count

    def warnings(self, readers: dict[str, list[str]]) -> list[str]:
        """One warning per mistyped field, in field order; `readers`: field -> the rules whose filters read it."""
        return [m.describe(self.source.name, readers.get(name, [])) for name, m in sorted(self.found.items())]


def _fast_path(checks: Sequence[tuple[str, type, bool]], marked: bool = False) -> Callable[..., Check]:
    """check -> a check that first tests every value's type in one generated expression (the usual answer: all
    fine) and calls `check` only for a record where some value is not what its field expects. `marked`:
    (check, logpush_check) -> one check testing a record holding LOGPUSH_MARK by the fields' Logpush names."""
    renamed = {name: LOGPUSH_NAME_OF.get(name, name) for name, _, _ in checks}

    def test(names: Mapping[str, str]) -> str:
        terms = []
        for i, (name, kind, optional) in enumerate(checks):
            if optional:  # null or missing is fine in an optional field
                terms.append(f"((v{i} := get({names[name]!r})) is None or v{i}.__class__ is {kind.__name__})")
            else:
                terms.append(f"get({names[name]!r}).__class__ is {kind.__name__}")
        return " and ".join(terms)

    api = test({name: name for name in renamed})
    if marked:
        source = (f"def fast(slow, logpush):\n    def check(record):\n        get = record.get\n"
                  f"        if {LOGPUSH_MARK!r} in record:\n"
                  f"            if not ({test(renamed)}):\n                logpush(record)\n"
                  f"        elif not ({api}):\n            slow(record)\n    return check\n")
    else:
        source = (f"def fast(slow):\n    def check(record):\n        get = record.get\n"
                  f"        if not ({api}):\n            slow(record)\n    return check\n")
    namespace: dict[str, Any] = {"str": str, "bool": bool}
    exec(compile(source, "<auditor typecheck>", "exec"), namespace)  # noqa: S102 - field names from our schema
    return namespace["fast"]


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
