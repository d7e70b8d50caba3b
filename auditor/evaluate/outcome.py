"""What evaluating a rule decides: its measurements (one expectation on one group) and its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auditor.core.status import Status
from auditor.language.expectations import KINDS, Bounds, bounds_text, format_number, group_label


@dataclass(frozen=True)
class Measurement:
    """One expectation measured on one group (group None: the whole rule)."""

    expectation: str
    group: dict[str, Any] | None
    value: float | None
    ok: bool
    field: str | None = None
    min: float | None = None
    max: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The results JSON form (SPEC section 4)."""
        out: dict[str, Any] = {"expectation": self.expectation}
        if self.field is not None:
            out["field"] = self.field
        out["group"] = self.group
        out["value"] = self.value
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        out["ok"] = self.ok
        return out

    def bounds(self) -> Bounds:
        """(ok, value, min, max): what auditor.language.expectations compares."""
        return self.ok, self.value, self.min, self.max

    def text(self) -> str:
        """'count 3 (max 2) for user_email=eve@x.com': the measurement as result messages name it."""
        name = KINDS[self.expectation].label(self.field)
        where = f" for {group_label(self.group)}" if self.group else ""
        return f"{name} {format_number(self.value)} ({bounds_text(self.min, self.max)}){where}"


def failure_message(worst: Measurement, violations: int, grouped: bool) -> str:
    """A failing rule's message: how many groups violate and the worst measurement."""
    if grouped:
        noun = "group violates" if violations == 1 else "groups violate"
        return f"{violations} {noun}; worst: {worst.text()}"
    return f"failed: {worst.text()}"


@dataclass(frozen=True)
class Outcome:
    """What evaluation decided for one rule (pass/fail), before the runner adds errors and metadata."""

    status: Status
    message: str
    measurements: tuple[Measurement, ...]
    violations: int
    evidence: tuple[dict[str, Any], ...]
    matched: int
    # Violating groups (None: the whole ungrouped rule) with their record counts, for waivers.
    groups: tuple[tuple[dict[str, Any] | None, int], ...] = ()
    # Periodic rules: every step's outcome, in step order (auditor.evaluate.periodic); empty for a single run.
    steps: tuple[Outcome, ...] = ()
