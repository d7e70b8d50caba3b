"""Frozen dataclasses for validated input: rules, their conditions and expectations, the config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditor.diagnostics import SourceLocation

SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class Condition:
    """`field op operand`, e.g. user_email not_contains "@svc.example.com"."""

    field: str
    op: str
    operand: Any

    def describe(self) -> str:
        """Readable form used by `plan`."""
        return f"{self.field} {self.op} {_show(self.operand)}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class Expectation:
    """A threshold on a measure: count, distinct values of a field, or the ratio satisfying `where`."""

    kind: str  # count | distinct | ratio
    min: float | None = None
    max: float | None = None
    field: str | None = None  # distinct
    where: tuple[Condition, ...] = ()  # ratio

    def bounds(self) -> str:
        """`min 1, max 5` style text."""
        parts = []
        if self.min is not None:
            parts.append(f"min {_num(self.min)}")
        if self.max is not None:
            parts.append(f"max {_num(self.max)}")
        return ", ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class TimeBound:
    """A window edge: an absolute instant, or an offset before the reference time (microseconds)."""

    absolute_us: int | None = None
    before_us: int | None = None

    def resolve(self, reference_us: int) -> int:
        """The instant in epoch microseconds for reference time `reference_us`."""
        if self.absolute_us is not None:
            return self.absolute_us
        return reference_us - (self.before_us or 0)


@dataclass(frozen=True)
class Rule:
    """One validated rule, ready to compile."""

    id: str
    title: str
    source: str
    since: TimeBound
    until: TimeBound
    conditions: tuple[Condition, ...]
    expectations: tuple[Expectation, ...]
    location: SourceLocation
    severity: str = "medium"
    description: str | None = None
    remediation: str | None = None
    tags: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    evidence: int = 5

    def needed_fields(self) -> frozenset[str]:
        """Every field the rule reads: filter, grouping, expectations."""
        names = {c.field for c in self.conditions} | set(self.group_by)
        for e in self.expectations:
            if e.field:
                names.add(e.field)
            names.update(c.field for c in e.where)
        return frozenset(names)


@dataclass(frozen=True)
class Config:
    """`auditor.yaml`, validated; every key optional."""

    path: str | None = None
    account_id: str | None = None
    api_base: str | None = None
    rules: tuple[str, ...] = ()
    waivers: str | None = None
    scim_idp_ids: tuple[str, ...] = ()
    per_page: int | None = None
    concurrency: int | None = None
    pushdown: str = "all"
    max_waiver_days: int = 365
    variables: dict[str, Any] = field(default_factory=dict)
