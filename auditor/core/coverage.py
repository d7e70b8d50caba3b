"""Coverage: which time intervals of each log the data covers, and how that is known.

A rule's window is decided only where data covers it (auditor.decide.coverage). Each source states its
coverage per log:
- `retention`: the live API, from `now - retention_days` to `now` (`auditor.yaml`, default 30);
- `profile`: the live API, as far back as the account was measured to serve (`auditor doctor`);
- `stated`: files, as the user said with `--data-covers START/END` or `SOURCE=START/END`;
- `logpush`: files whose Logpush object names carry each batch's start and end;
- `inferred`: files, from the first to the last record of each log (the edges of an export are a guess);
- `lake`: a Parquet log lake, as its manifest lists the intervals each sync read completely.

Intervals are half-open [since, until) in epoch microseconds, like rule windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from auditor.core.timeutil import EARLIEST_US, LATEST_US, US, TimeRangeError, format_time, parse_time

DAY_US = 86400 * US
DEFAULT_RETENTION_DAYS = 30
Seen = tuple[int | None, int | None]  # the earliest and latest record time read of a log (None: no record)


class Basis(StrEnum):
    """How a log's coverage was known."""

    RETENTION = "retention"
    PROFILE = "profile"
    STATED = "stated"
    INFERRED = "inferred"
    LOGPUSH = "logpush"
    LAKE = "lake"


@dataclass(frozen=True, order=True)
class Interval:
    """[since, until) in epoch microseconds."""

    since_us: int
    until_us: int

    def text(self) -> str:
        """`2026-11-15T00:00:00Z..2026-11-20T00:00:00Z`."""
        return f"{format_time(self.since_us)}..{format_time(self.until_us)}"

    def to_json(self) -> dict[str, str]:
        """`{"since", "until"}` as in results."""
        return {"since": format_time(self.since_us), "until": format_time(self.until_us)}


def union(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sorted, non-empty, non-overlapping intervals covering the same instants (touching ones merged)."""
    out: list[Interval] = []
    for i in sorted(i for i in intervals if i.since_us < i.until_us):
        if out and i.since_us <= out[-1].until_us:
            if i.until_us > out[-1].until_us:
                out[-1] = Interval(out[-1].since_us, i.until_us)
        else:
            out.append(i)
    return tuple(out)


def clip(intervals: Iterable[Interval], since_us: int, until_us: int) -> tuple[Interval, ...]:
    """The parts of (unioned) intervals inside [since, until)."""
    out = []
    for i in union(intervals):
        lo, hi = max(i.since_us, since_us), min(i.until_us, until_us)
        if lo < hi:
            out.append(Interval(lo, hi))
    return tuple(out)


def gaps(covered: Iterable[Interval], since_us: int, until_us: int) -> tuple[Interval, ...]:
    """The parts of [since, until) that no covered interval holds."""
    out, at = [], since_us
    for i in clip(covered, since_us, until_us):
        if i.since_us > at:
            out.append(Interval(at, i.since_us))
        at = i.until_us
    if at < until_us:
        out.append(Interval(at, until_us))
    return tuple(out)


@dataclass(frozen=True)
class LogCoverage:
    """What one log's data covers, how that is known, and why it stops where it does (for messages)."""

    log: str
    basis: Basis
    covered: tuple[Interval, ...]
    note: str = ""  # e.g. "the API keeps 30 days", "inferred from the first and last record"

    def missing(self, since_us: int, until_us: int) -> tuple[Interval, ...]:
        """The parts of [since, until) this log's data does not cover (no record can have a time outside the
        supported years, so none is missing there)."""
        return gaps(self.covered, max(since_us, EARLIEST_US), min(until_us, LATEST_US))

    def why(self, missing: tuple[Interval, ...]) -> str:
        """Why data is missing, for the message: `data ends ...`, `data starts ...`, the note."""
        if not self.covered:
            return self.note or "no records"
        parts = []
        first, last = self.covered[0], self.covered[-1]
        if missing and missing[0].until_us <= first.since_us:
            parts.append(f"data starts {format_time(first.since_us)}")
        if missing and missing[-1].since_us >= last.until_us:
            parts.append(f"data ends {format_time(last.until_us)}")
        if any(first.until_us <= m.since_us and m.until_us <= last.since_us for m in missing):
            parts.append("a gap in the data")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)


@dataclass(frozen=True)
class Coverage:
    """Coverage per log of one run. A log with no entry is covered entirely (e.g. `auditor test` fixtures)."""

    logs: Mapping[str, LogCoverage] = field(default_factory=dict)

    def of(self, log: str) -> LogCoverage | None:
        """The log's coverage, or None when the whole timeline counts as covered."""
        return self.logs.get(log)

    def to_json(self) -> list[dict[str, object]]:
        """Every log's coverage, for the results' top-level `coverage`."""
        return [{"log": c.log, "basis": str(c.basis), "covered": [i.to_json() for i in c.covered],
                 **({"note": c.note} if c.note else {})} for c in sorted(self.logs.values(), key=lambda c: c.log)]


COMPLETE = Coverage()


def api_coverage(logs: Iterable[str], now_us: int, retention_days: int = DEFAULT_RETENTION_DAYS,
                 measured_from: Mapping[str, int] | None = None) -> Coverage:
    """The live API: each log from `now - retention` to `now`.

    `measured_from` (log -> the earliest instant the account was measured to serve, from an `auditor doctor`
    profile) wins over `retention_days` for the logs it names (basis `profile`).
    """
    out = {}
    for log in logs:
        if measured_from is not None and log in measured_from:
            since = measured_from[log]
            out[log] = LogCoverage(log, Basis.PROFILE, union([Interval(since, now_us)]),
                                   f"the API was measured to serve {log} from {format_time(since)}")
        else:
            since = now_us - retention_days * DAY_US
            out[log] = LogCoverage(log, Basis.RETENTION, union([Interval(since, now_us)]),
                                   f"the API keeps {retention_days} days of logs (retention_days), "
                                   f"until now ({format_time(now_us)})")
    return Coverage(out)


def inferred(log: str, first_us: int | None, last_us: int | None) -> LogCoverage:
    """A log's coverage inferred from the times of its first and last record (both included)."""
    if first_us is None or last_us is None:
        return LogCoverage(log, Basis.INFERRED, (), f"no {log} records in the data")
    return LogCoverage(log, Basis.INFERRED, (Interval(first_us, last_us + 1),),
                       "inferred from the first and last record; state it with --data-covers")


class CoverageError(ValueError):
    """A --data-covers value the user must correct; the message says how."""


def parse_data_covers(values: Iterable[str], logs: Iterable[str]) -> dict[str, tuple[Interval, ...]]:
    """`--data-covers START/END` (every log) or `SOURCE=START/END` (one log), repeatable -> intervals per log."""
    known = tuple(logs)
    stated: dict[str, list[Interval]] = {}
    for text in values:
        log, sep, span = text.partition("=")
        targets = (log,) if sep else known
        if sep and log not in known:
            raise CoverageError(f"--data-covers {text!r}: unknown log {log!r} (logs: {', '.join(known)})")
        start, slash, end = (span if sep else text).partition("/")
        try:
            interval = Interval(parse_time(start), parse_time(end))
        except TimeRangeError as exc:
            raise CoverageError(f"--data-covers {text!r}: {exc}") from None
        except ValueError:
            slash = ""
        if not slash:
            raise CoverageError(f"--data-covers {text!r}: expected START/END or SOURCE=START/END with RFC 3339 "
                                "times, e.g. 2026-11-01T00:00:00Z/2026-11-15T00:00:00Z")
        if interval.since_us >= interval.until_us:
            raise CoverageError(f"--data-covers {text!r}: START must be before END")
        for target in targets:
            stated.setdefault(target, []).append(interval)
    return {log: union(intervals) for log, intervals in stated.items()}


def logpush(log: str, intervals: tuple[Interval, ...]) -> LogCoverage:
    """A log's coverage as its Logpush object names give it (each batch's start and end)."""
    return LogCoverage(log, Basis.LOGPUSH, union(intervals), "as the Logpush object names give it")


def lake(log: str, intervals: tuple[Interval, ...]) -> LogCoverage:
    """A log's coverage as a log lake's manifest gives it (what each sync or copy read completely)."""
    return LogCoverage(log, Basis.LAKE, union(intervals), "as the lake's manifest gives it")


def stated(log: str, intervals: tuple[Interval, ...]) -> LogCoverage:
    """A log's coverage as stated with --data-covers."""
    return LogCoverage(log, Basis.STATED, union(intervals), "as stated with --data-covers")


@dataclass(frozen=True)
class RuleCoverage:
    """Coverage of one rule's window (periodic rules: the span of all steps' windows), per log it reads.

    `missing` holds, per log, the uncovered parts of the window; `no_data_steps` the periodic steps left
    undecided (`error`) because data did not cover their window.
    """

    since_us: int
    until_us: int
    logs: tuple[LogCoverage, ...]
    missing: tuple[tuple[Interval, ...], ...]
    no_data_steps: frozenset[int] = frozenset()

    @property
    def complete(self) -> bool:
        """True when data covers the whole window of every log the rule reads."""
        return not any(self.missing)

    def to_json(self) -> dict[str, object]:
        """The result's `coverage` object (schemas/results.schema.json#/$defs/coverage)."""
        return {"complete": self.complete, "logs": [
            {"log": c.log, "basis": str(c.basis),
             "covered": [i.to_json() for i in clip(c.covered, self.since_us, self.until_us)],
             "missing": [i.to_json() for i in missing]}
            for c, missing in zip(self.logs, self.missing, strict=True)]}


def files_coverage(seen: Mapping[str, Seen],
                   stated_intervals: Mapping[str, tuple[Interval, ...]] | None = None) -> Coverage:
    """Exported files: per log read, as stated (--data-covers), else inferred from its first and last record.
    `seen`: log -> (earliest, latest) record time, None when it held no record."""
    stated_intervals = stated_intervals or {}
    out = {log: stated(log, intervals) for log, intervals in stated_intervals.items()}
    for log, (first_us, last_us) in seen.items():
        if log not in out:
            out[log] = inferred(log, first_us, last_us)
    return Coverage(out)
