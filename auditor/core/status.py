"""A rule's status and severity, and their ranks: the one place that orders them.

Both are StrEnums, so results JSON, templates and comparisons with plain strings see the same text.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """What happened to a rule. Declaration order is the order of the results summary's counters."""

    PASS = "pass"  # noqa: S105 (a status, not a password)
    FAIL = "fail"
    WAIVED = "waived"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """How bad the status is: pass 0 < waived 1 < fail 2 < error 3 (a period's rule takes its worst step;
        reports list the worst first)."""
        return _STATUS_RANK[self]


_STATUS_RANK = {Status.PASS: 0, Status.WAIVED: 1, Status.FAIL: 2, Status.ERROR: 3}


class Severity(StrEnum):
    """How much a rule's failure matters; `--fail-on` gates at one of these. Declared least severe first."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """info 0 < low 1 < medium 2 < high 3 < critical 4."""
        return _SEVERITY_RANK[self]

    @classmethod
    def most_severe_first(cls) -> tuple[Severity, ...]:
        """Every severity, critical first (the order reports group by)."""
        return tuple(sorted(cls, key=lambda s: s.rank, reverse=True))


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}
