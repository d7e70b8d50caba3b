"""The expectations (`count`, `distinct`, `ratio`): one registry for what each measures and how a measurement
compares with its bounds.

Read by the evaluator (what a group accumulates, its measure, the check, which evidence to show), by the result
message, by the report filters (headline, labels, numbers) and by the periodic worst-step choice. "Worst" has
one meaning everywhere: `worst()` (failing before passing, then the highest `pressure()`, then the first).

A group accumulates, per record that passes the rule's filter: its record count (every kind), the set of
non-null values of the field (`distinct`), and how many records satisfy `where` (`ratio`). The evaluator keeps
these inline on its hot path; `measure()` turns them into the value compared with the bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

M = TypeVar("M")
# (ok, value, min, max) of a measurement: a Measurement object or its results-JSON dict, via a view.
Bounds = tuple[bool, float | None, float | None, float | None]


@dataclass(frozen=True)
class Kind:
    """One expectation kind: its measure over a group's accumulators and the evidence its failure shows."""

    name: str
    keeps: str  # what a group accumulates for it beyond the record count: "" | "values" | "hits"
    doc: str

    def measure(self, count: int, values: int = 0, hits: int = 0) -> float | None:
        """The measured value of a group: `count` records, `values` distinct values, `hits` satisfying `where`.
        A ratio over no records is not measured (None), and passes."""
        if self.keeps == "values":
            return values
        if self.keeps == "hits":
            return hits / count if count else None
        return count

    def label(self, field: str | None, compact: bool = False) -> str:
        """`count`, `distinct user_email` (messages) or `distinct(user_email)` (compact, report tables)."""
        if not field:
            return self.name
        return f"{self.name}({field})" if compact else f"{self.name} {field}"


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("count", "", "records in the group"),
    Kind("distinct", "values", "distinct non-null values of `field` in the group"),
    Kind("ratio", "hits", "share of the group's records that satisfy `where` (not measured without records)"),
)}


def check(value: float | None, low: float | None, high: float | None) -> bool:
    """True when the value is within its bounds (a value that was not measured passes)."""
    if value is None:
        return True
    if low is not None and value < low:
        return False
    return not (high is not None and value > high)


def pressure(value: float | None, low: float | None, high: float | None) -> float:
    """How far past its bounds a value is, relative to the bound (positive: fails; zero or negative: how close
    to failing it is); -inf when not measured or unbounded. Relative, so a ratio past 0.2 and a count past 5
    compare on one scale."""
    worst = float("-inf")
    if value is None:
        return worst
    if high is not None:
        worst = max(worst, (value - high) / (abs(high) or 1))
    if low is not None:
        worst = max(worst, (low - value) / (abs(low) or 1))
    return worst


def worst(measurements: Sequence[M], view: Callable[[M], Bounds]) -> M | None:
    """The measurement to name: a failing one before any passing one, then the highest pressure, then the
    first. `view` gives a measurement's (ok, value, min, max)."""
    best: M | None = None
    best_key: tuple[bool, float] | None = None
    for m in measurements:
        ok, value, low, high = view(m)
        key = (not ok, pressure(value, low, high))
        if best_key is None or key > best_key:
            best, best_key = m, key
    return best


def evidence_key(ratio_index: int, value: float | None, high: float | None) -> str:
    """Which evidence a failing ratio shows: the records satisfying `where` when the ratio is too high
    (`where{i}`), else the records that do not (`not{i}`)."""
    too_high = high is not None and value is not None and value > high
    return f"where{ratio_index}" if too_high else f"not{ratio_index}"


def format_number(value: Any) -> str:
    """A number as short text: integers plainly, fractions with up to 4 significant digits, None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return str(int(value))


def group_label(group: Mapping[str, Any] | None) -> str:
    """A group as `field=value, field=value` (a missing value shows as null); empty for the whole rule."""
    if not group:
        return ""
    return ", ".join(f"{key}={'null' if value is None else value}" for key, value in group.items())


def bounds_text(low: float | None, high: float | None) -> str:
    """`min 1, max 5`, `max 0`, or '' without bounds."""
    return ", ".join(f"{name} {format_number(bound)}" for name, bound in (("min", low), ("max", high))
                     if bound is not None)
