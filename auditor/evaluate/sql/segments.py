"""A rule's steps as segments of time, so an engine aggregates each record once however many steps count it.

The time of a rule's steps is split at every bound of their windows (the same split as
auditor.evaluate.periodic.StepEvaluator): between two consecutive bounds the same steps are open, so each record
falls in exactly one segment. The engine aggregates per segment and group, then sums the segments' aggregates
per step (counts and ratio hits added, distinct lists merged). Joining the records with the steps on the window
instead counts each record once per step its window covers (7 times for a 7-day window over daily steps), and
a range join is slow in itself; a record's segment is a balanced CASE on `t_us` (a binary search, ~log2 of the
segments' number of comparisons per record) that every dialect runs alike.

When every step is one segment and every segment one step (a single run; windows as long as the step), the
segments are the steps and the per-segment aggregates are already the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

from sqlglot import exp


@dataclass(frozen=True)
class Segments:
    """The segments of a rule's steps: segment k is [bounds[k], bounds[k + 1]), held by the steps `steps[k]`."""

    bounds: tuple[int, ...]  # every window bound, sorted, distinct
    steps: tuple[tuple[int, ...], ...]  # per segment, the steps whose window holds it (none: a gap between windows)

    @classmethod
    def of(cls, windows: Sequence[tuple[int, int, int]]) -> Segments:
        """The segments of (step, since_us, until_us) windows."""
        bounds = tuple(sorted({since for _, since, _ in windows} | {until for _, _, until in windows}))
        return cls(bounds, tuple(tuple(step for step, since, until in windows if since <= lo and hi <= until)
                                 for lo, hi in pairwise(bounds)))

    @cached_property
    def direct(self) -> bool:
        """True when each segment is exactly one step's window and each step's window one segment: the segment's
        label is its step, and its aggregates are the step's."""
        firsts = [held[0] for held in self.steps if len(held) == 1]
        return len(firsts) == len(self.steps) and len(set(firsts)) == len(firsts)

    def label(self, k: int) -> int | None:
        """What the engine calls segment k: its step when `direct`, else k; None for a gap (no step holds it)."""
        if not self.steps[k]:
            return None
        return self.steps[k][0] if self.direct else k

    @cached_property
    def _of_step(self) -> dict[int, tuple[int, ...]]:
        out: dict[int, list[int]] = {}
        for k, held in enumerate(self.steps):
            for step in held:
                out.setdefault(step, []).append(k)
        return {step: tuple(ks) for step, ks in out.items()}

    def labels(self, step: int) -> tuple[int, ...]:
        """The labels of the segments a step's window is made of."""
        return (step,) if self.direct else self._of_step.get(step, ())

    def held_by(self, label: int) -> tuple[int, ...]:
        """The steps a labelled segment counts for."""
        return (label,) if self.direct else self.steps[label]

    def rollup(self) -> list[tuple[int, int]]:
        """(step, segment label) of every step and its segments (what the second level joins on)."""
        return [(step, k) for k, held in enumerate(self.steps) for step in held]

    def of_time(self, t_us: Callable[[], exp.Expression]) -> exp.Expression:
        """The label of the segment holding the time `t_us()` makes (within the bounds): a balanced CASE over them."""
        def search(lo: int, hi: int) -> exp.Expression:  # over segments lo..hi-1
            if hi - lo == 1:
                label = self.label(lo)
                return exp.Null() if label is None else exp.Literal.number(label)
            mid = (lo + hi) // 2
            return exp.Case(ifs=[exp.If(this=exp.LT(this=t_us(), expression=exp.Literal.number(self.bounds[mid])),
                                        true=search(lo, mid))], default=search(mid, hi))
        return search(0, len(self.steps)) if self.steps else exp.Null()
