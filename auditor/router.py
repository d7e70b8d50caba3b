"""Routes each record of a stream to the feeds whose time window holds it, in about one comparison.

A unit's feeds (rules, periodic steps, correlation sides) each read a window [since, until). Their bounds
cut the time line into segments in which the same feeds are open; records arrive mostly in time order, so
the segment of the previous record usually holds the next one too, and finding the open feeds costs two
comparisons instead of two per feed. Feeds are called in the order given, as a loop testing each window
would call them.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

Feed = Callable[[dict[str, Any], int], None]
_BEFORE = float("-inf")
_AFTER = float("inf")


class Router:
    """`segment(t)` -> (lo, hi, feeds): the feeds open at t, and the span [lo, hi) where that stays so."""

    def __init__(self, feeds: Sequence[tuple[int, int, Feed]]) -> None:
        self._bounds = sorted({b for since, until, _ in feeds if since < until for b in (since, until)})
        self._open = [
            tuple(feed for since, until, feed in feeds if since <= lo and hi <= until)
            for lo, hi in itertools.pairwise(self._bounds)
        ]

    def segment(self, t_us: int) -> tuple[float, float, tuple[Feed, ...]]:
        """The feeds whose window holds t_us, with the widest span around t_us in which they are the same."""
        bounds = self._bounds
        i = bisect_right(bounds, t_us) - 1
        if i < 0:
            return _BEFORE, bounds[0] if bounds else _AFTER, ()
        if i >= len(self._open):
            return bounds[-1], _AFTER, ()
        return bounds[i], bounds[i + 1], self._open[i]
