"""What the decide stage adds to results: waivers applied, baseline marks, a periodic rule's timeline.

Typed here, serialised by their `to_json()` in the results JSON form (schemas/results.schema.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from auditor.core.model import Waiver
from auditor.core.status import Status
from auditor.core.timeutil import format_time


class WaiverState(StrEnum):
    """What a waiver did in a run. Over a period, a waiver takes the first of these it had at any step where
    it was valid (expired only when expired at every step)."""

    APPLIED = "applied"  # it waived at least one rule
    PARTIAL = "partial"  # it covered violating groups, but others of the rule stayed uncovered
    UNUSED = "unused"  # its rule ran and nothing matched it: a stale exception?
    NOT_RUN = "not_run"  # its rule was not run (not selected) or errored
    EXPIRED = "expired"


@dataclass(frozen=True)
class AppliedWaiver:
    """The waiver shown on a waived result: of those covering its groups, the one covering most records."""

    waiver: Waiver
    records: int

    def to_json(self) -> dict[str, Any]:
        """schemas/results.schema.json#/$defs/waiver, with the records it covered."""
        return {**self.waiver.to_json(), "records": self.records}


@dataclass(frozen=True)
class WaiverUse:
    """One waiver of the waivers file in a run: its state, and the records and groups it covered."""

    waiver: Waiver
    state: WaiverState
    records: int
    groups: int

    def to_json(self) -> dict[str, Any]:
        """One entry of the results' `waivers` list."""
        return {**self.waiver.to_json(), "state": self.state.value, "records": self.records, "groups": self.groups,
                "file": self.waiver.location.path, "line": self.waiver.location.line}


class Mark(StrEnum):
    """A failing or fixed result against a baseline run (auditor.decide.baseline)."""

    NEW = "new"
    STILL = "still"
    FIXED = "fixed"


@dataclass(frozen=True)
class BaselineMarks:
    """The baseline a run was compared with, and the rule ids per mark."""

    reference_time: str
    rules_sha256: str | None
    new: tuple[str, ...] = ()
    still: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The results' `baseline` block."""
        return {"reference_time": self.reference_time, "rules_sha256": self.rules_sha256, "new": list(self.new),
                "still": list(self.still), "fixed": list(self.fixed)}


@dataclass(frozen=True)
class TimelineStep:
    """A periodic rule at one step: its status there (after waivers) and its violating groups."""

    at_us: int
    status: Status
    violations: int
    no_data: bool = False  # `error` because data does not cover the step's window (auditor.decide.coverage)

    def to_json(self) -> dict[str, Any]:
        """One entry of a result's `timeline`."""
        return {"at": format_time(self.at_us), "status": self.status.value, "violations": self.violations,
                **({"reason": "no_data"} if self.no_data else {})}
