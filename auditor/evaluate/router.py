"""Routes each record of a stream to the feeds whose time window holds it, in about one comparison.

A unit's feeds (rules, periodic steps, correlation sides) each read a window [since, until). Their bounds
cut the time line into segments in which the same feeds are open; records arrive mostly in time order, so
the segment of the previous record usually holds the next one too, and finding the open feeds costs two
comparisons instead of two per feed. Feeds are called in the order given, as a loop testing each window
would call them; the filters of rules' feeds are written into one generated function per segment, so a
record costs one call per segment rather than one per rule.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from auditor.language.codegen import Feed, Gate, Renaming, compile_fanout

_BEFORE = float("-inf")
_AFTER = float("inf")


def _nothing(record: dict[str, Any], t_us: int) -> None:
    return None


class Router:
    """`segment(t)` -> (lo, hi, feed): one feed offering a record to every feed open at t (as one generated
    function, codegen.compile_fanout), and the span [lo, hi) where the same feeds are open. With `renaming`,
    records in other names are renamed only for the feeds they are offered to (codegen.Renaming)."""

    def __init__(self, feeds: Sequence[tuple[int, int, Gate | Feed]], renaming: Renaming | None = None) -> None:
        self._renaming = renaming
        self._bounds = sorted({b for since, until, _ in feeds if since < until for b in (since, until)})
        self._open = [
            [feed for since, until, feed in feeds if since <= lo and hi <= until]
            for lo, hi in itertools.pairwise(self._bounds)
        ]
        self._fanouts: list[Feed | None] = [None] * len(self._open)  # made when a record first needs one

    def segment(self, t_us: int) -> tuple[float, float, Feed]:
        """The feeds whose window holds t_us, as one feed, with the widest span around t_us in which they are
        the same."""
        bounds = self._bounds
        i = bisect_right(bounds, t_us) - 1
        if i < 0:
            return _BEFORE, bounds[0] if bounds else _AFTER, _nothing
        if i >= len(self._open):
            return bounds[-1], _AFTER, _nothing
        fanout = self._fanouts[i]
        if fanout is None:
            fanout = self._fanouts[i] = compile_fanout(self._open[i], self._renaming) if self._open[i] else _nothing
        return bounds[i], bounds[i + 1], fanout
