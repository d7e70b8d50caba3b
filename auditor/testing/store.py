"""The records the emulator serves: each log sorted by time, and the selection of one query (cached)."""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from auditor.core.timeutil import parse_time
from auditor.sources.files import find_source_files, iter_timed
from auditor.testing.query import Query

# Route name -> (source log, time field).
ENDPOINTS = {"access_requests": ("access_requests", "created_at"), "scim/updates": ("scim_updates", "logged_at")}
_CACHED_SELECTIONS = 16  # pages of one query are answered from one scan; a few queries run at once


@dataclass(frozen=True)
class Log:
    """One source's records in time order, with their times in epoch microseconds."""

    times: list[int]
    records: list[dict]


def load_logs(data: Path | Mapping[str, Iterable[dict]], source: str | None = None) -> dict[str, Log]:
    """Records per source, sorted by time, from a --data path (`source` for a single unnamed file; a bad
    record is a DataError naming file and line) or from in-memory records (ValueError naming the record's
    number, never its content: records hold personal data)."""
    keyed: dict[str, list[tuple[int, int, dict]]] = {name: [] for name, _ in ENDPOINTS.values()}
    if isinstance(data, Mapping):
        for name, time_field in ENDPOINTS.values():
            for number, record in enumerate(data.get(name, ()), 1):
                try:
                    time_us = parse_time(record[time_field])
                except (KeyError, TypeError, ValueError):
                    raise ValueError(f"{name} record {number} has no valid {time_field}") from None
                keyed[name].append((time_us, number, record))
    else:
        for name, paths in find_source_files(Path(data), source).items():
            entries = keyed[name]
            for path in paths:
                for time_us, record in iter_timed(path, name):
                    entries.append((time_us, len(entries), record))
    logs = {}
    for name, entries in keyed.items():
        entries.sort()  # equal times keep their order: the second key is the position read
        logs[name] = Log([t for t, _, _ in entries], [r for _, _, r in entries])
    return logs


class Store:
    """The logs, and which records a query selects: in the asked order, cut at its limit."""

    def __init__(self, logs: dict[str, Log]) -> None:
        self.logs = logs
        self._lock = threading.Lock()
        self._selections: OrderedDict[Hashable, list[int]] = OrderedDict()  # LRU

    def select(self, key: Hashable, source: str, query: Query, limit: int | None) -> list[int]:
        """Indices of the records `query` matches, in its direction, at most `limit`; `key` names the
        selection (equal keys, equal selections) so that the pages of one query scan the log once."""
        with self._lock:
            hit = self._selections.get(key)
            if hit is not None:
                self._selections.move_to_end(key)
                return hit
        log = self.logs[source]
        lo = 0 if query.since is None else bisect_left(log.times, query.since)
        hi = len(log.times) if query.until is None else bisect_right(log.times, query.until)
        records, tests = log.records, query.tests
        if not tests:
            chosen = list(range(lo, hi))
        elif len(tests) == 1:
            (test,) = tests
            chosen = [i for i in range(lo, hi) if test(records[i])]
        else:
            chosen = [i for i in range(lo, hi) if all(test(records[i]) for test in tests)]
        if query.direction == "desc":
            chosen.reverse()
        if limit is not None:
            del chosen[limit:]
        with self._lock:
            self._selections[key] = chosen
            if len(self._selections) > _CACHED_SELECTIONS:
                self._selections.popitem(last=False)
        return chosen
