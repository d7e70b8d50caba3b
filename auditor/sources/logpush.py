"""Logpush destinations: `{DATE}/{START}_{END}_{HASH}.log.gz` batch objects, found, pruned and read by name.

Logpush writes each batch of Access records as one object whose name carries the batch's time range, e.g.
`20261120/20261120T110000Z_20261120T110500Z_0a1b2c3d.log.gz`. The names alone tell which objects can hold
records of a window (so a quarterly audit opens only the quarter's objects) and which times the
destination covers: an hour without any object is a gap, never an hour without sign-ins.

Name times are whole seconds: a batch named START_END holds records in [START, END + 1 s) (the end second
is truncated), and covers [START, END) of the log. A record outside its batch's range is counted and
reported (`Batches.outside`), never dropped: the name is only the producer's claim.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from auditor.core.timeutil import US, format_time
from auditor.sources.base import Timed

# The one dataset Logpush can export; SCIM logs have none.
LOGPUSH_SOURCE = "access_requests"

_STAMP = r"\d{8}T\d{6}Z"
_OBJECT = re.compile(rf"^(?P<start>{_STAMP})_(?P<end>{_STAMP})_(?P<hash>[0-9A-Za-z-]+)\.log(?:\.gz)?$")
_DATE = re.compile(r"^\d{8}$")
_EXPECTED = ("expected {DATE}/{START}_{END}_{HASH}.log.gz, "
             "e.g. 20261120/20261120T110000Z_20261120T110500Z_0a1b2c3d.log.gz")


class LogpushError(ValueError):
    """A Logpush folder that cannot be read as one; str() names the path and what to do."""


@dataclass(frozen=True, order=True)
class Batch:
    """One Logpush object: its time range (epoch microseconds, `until_us` exclusive) and where it is."""

    start_us: int
    end_us: int  # END of the name: the batch covers [start_us, end_us)
    location: str  # a path or an object URL
    date: str = field(default="", compare=False)  # the `{DATE}` folder it was found in ("" when none)

    @property
    def holds_until_us(self) -> int:
        """Exclusive end of the times its records may have: END's whole second included."""
        return self.end_us + US

    def meets(self, since_us: int, until_us: int) -> bool:
        """True when a record of this batch can lie in [since_us, until_us)."""
        return self.start_us < until_us and since_us < self.holds_until_us

    def holds(self, t_us: int) -> bool:
        """True when a record time lies inside the batch's named range."""
        return self.start_us <= t_us < self.holds_until_us


def parse_stamp(text: str) -> int:
    """`20261120T110000Z` -> epoch microseconds (ValueError when not such a stamp)."""
    return int(datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()) * US


def parse_object_name(name: str) -> tuple[int, int] | None:
    """(start_us, end_us) of a batch object's base name, or None when the name is not a batch object's."""
    m = _OBJECT.match(name)
    if m is None:
        return None
    try:
        start, end = parse_stamp(m.group("start")), parse_stamp(m.group("end"))
    except ValueError:
        return None  # 20261340T..., well-shaped digits but no such date
    return (start, end) if start <= end else None


def is_logpush_folder(folder: Path) -> bool:
    """True when a directory looks like a Logpush destination: a `{DATE}` folder or a batch object in it."""
    try:
        for entry in folder.iterdir():
            if entry.is_dir() and _DATE.match(entry.name):
                return True
            if entry.is_file() and parse_object_name(entry.name) is not None:
                return True
    except OSError:
        return False
    return False


def find_batches(folder: Path) -> list[Batch]:
    """Every batch object under a local Logpush folder (its `{DATE}` folders, or objects at its top), in time
    order. LogpushError on a file in a `{DATE}` folder whose name is not a batch object's."""
    batches: list[Batch] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and _DATE.match(entry.name):
            batches.extend(_date_folder(entry))
        elif entry.is_file():
            span = parse_object_name(entry.name)
            if span is not None:
                batches.append(Batch(span[0], span[1], str(entry)))
            # other top-level files (Logpush's ownership-challenge-*.txt, a README) are not logs
    if not batches:
        raise LogpushError(f"{folder}: error: no Logpush batch objects found; {_EXPECTED}")
    batches.sort()
    return batches


def _date_folder(folder: Path) -> Iterator[Batch]:
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        span = parse_object_name(entry.name)
        if span is None:
            raise LogpushError(f"{entry}: error: not a Logpush batch object name; {_EXPECTED} "
                               "(move other files out of the {DATE} folders)")
        yield Batch(span[0], span[1], str(entry), folder.name)


def batches_from_keys(keys: Iterable[str], prefix: str = "") -> list[Batch]:
    """Batches from object keys of a bucket listing (`prefix` + `DATE/NAME`), in time order; keys that are not
    batch objects are ignored only outside `{DATE}` folders, as for a local folder."""
    out: list[Batch] = []
    for key in keys:
        rest = key[len(prefix):].lstrip("/") if key.startswith(prefix) else key
        parts = rest.split("/")
        span = parse_object_name(parts[-1])
        in_date = len(parts) == 2 and _DATE.match(parts[0]) is not None
        if span is None:
            if in_date and parts[-1] and not parts[-1].startswith("."):
                raise LogpushError(f"{key}: error: not a Logpush batch object name; {_EXPECTED}")
            continue
        if len(parts) == 1 or in_date:
            out.append(Batch(span[0], span[1], key, parts[0] if in_date else ""))
    out.sort()
    return out


def prune(batches: Sequence[Batch], windows: Iterable[tuple[int, int]]) -> list[Batch]:
    """The batches that may hold a record of some window [since, until): the only objects worth opening."""
    spans = sorted(windows)
    return [b for b in batches if any(b.meets(since, until) for since, until in spans)]


def covered(batches: Iterable[Batch]) -> tuple[tuple[int, int], ...]:
    """The times the batches cover, as sorted disjoint [start, end) intervals (touching ones merged)."""
    merged: list[list[int]] = []
    for b in sorted(batches):
        if merged and b.start_us <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b.end_us)
        else:
            merged.append([b.start_us, b.end_us])
    return tuple((lo, hi) for lo, hi in merged)


def gaps(intervals: Sequence[tuple[int, int]], since_us: int, until_us: int) -> tuple[tuple[int, int], ...]:
    """The parts of [since_us, until_us) that sorted disjoint `intervals` leave uncovered."""
    out = []
    at = since_us
    for lo, hi in intervals:
        if hi <= at:
            continue
        if lo >= until_us:
            break
        if lo > at:
            out.append((at, lo))
        at = max(at, hi)
    if at < until_us:
        out.append((at, until_us))
    return tuple(out)


@dataclass
class OutsideCounter:
    """Records found outside their batch's named range, per object: counted and reported, not dropped."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, location: str, n: int = 1) -> None:
        """Count `n` records outside the range of the batch at `location`."""
        if n:
            self.counts[location] = self.counts.get(location, 0) + n

    def warnings(self) -> list[str]:
        """One line per object with records outside its range (kept and evaluated all the same)."""
        return [f"{location}: {n} record{'s' if n != 1 else ''} outside the batch's time range in its name "
                "(kept and evaluated; the name's coverage may be wrong)" for location, n in sorted(self.counts.items())]


def describe_gap(source: str, gap: tuple[int, int]) -> str:
    """`no access_requests Logpush object covers A..B` for messages."""
    return f"no {source} Logpush object covers {format_time(gap[0])}..{format_time(gap[1])}"


def within_batch(batch: Batch, shown: str, records: Iterable[Timed], outside: OutsideCounter) -> Iterator[Timed]:
    """The batch's records, each outside the time range its object name gives counted (not dropped)."""
    lo, hi = batch.start_us, batch.holds_until_us
    for t_us, record in records:
        if not lo <= t_us < hi:
            outside.add(shown)
        yield t_us, record
