"""Periodic audits: a calendar period or START/END in a time zone, and the reference times of its steps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from auditor.core.timeutil import EARLIEST_US, LATEST_US, US, TimeRangeError, format_time, parse_duration, parse_time

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")
_DAY_US = 86400 * US
MAX_STEPS = 10_000


class PeriodError(ValueError):
    """A --period, --tz or --step the user must correct; the message says how."""


@dataclass(frozen=True)
class Period:
    """A span [start, end] and the reference times T_i = start + i*step (i >= 1, T_i <= end)."""

    label: str
    tz: str
    start_us: int
    end_us: int
    step: str
    steps: tuple[int, ...]

    def to_json(self) -> dict[str, object]:
        """The `period` block of results and plans."""
        return {"label": self.label, "tz": self.tz, "start": format_time(self.start_us),
                "end": format_time(self.end_us), "step": self.step, "steps": len(self.steps)}


def zone(tz: str) -> tzinfo:
    """The IANA zone named `tz`; UTC needs no time zone database (the `tzdata` package supplies one where
    the system has none, e.g. Windows and slim containers)."""
    if tz == "UTC":
        return UTC
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"--tz {tz!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)") from None


def _local_us(day: date, zone: tzinfo) -> int:
    """Midnight starting `day` in `zone`, as epoch microseconds."""
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()) * US


def _calendar(text: str) -> tuple[date, date] | None:
    """A calendar period as [first day, day after the last day), or None when the text is not one."""
    if m := _MONTH.match(text):
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            raise PeriodError(f"--period {text!r}: month must be 01-12")
        after = date(year + (month == 12), month % 12 + 1, 1)
        return date(year, month, 1), after
    if m := _QUARTER.match(text):
        year, q = int(m.group(1)), int(m.group(2))
        first = date(year, 3 * q - 2, 1)
        after = date(year + (q == 4), (3 * q) % 12 + 1, 1)
        return first, after
    if m := _WEEK.match(text):
        year, week = int(m.group(1)), int(m.group(2))
        try:
            first = date.fromisocalendar(year, week, 1)
        except ValueError:
            raise PeriodError(f"--period {text!r}: ISO year {year} has no week {week}") from None
        return first, first + timedelta(days=7)
    if m := _YEAR.match(text):
        year = int(m.group(1))
        return date(year, 1, 1), date(year + 1, 1, 1)
    return None


def _bounds(text: str, zone: tzinfo) -> tuple[int, int]:
    calendar = _calendar(text)
    if calendar is not None:
        first, after = calendar
        return _local_us(first, zone), _local_us(after, zone)
    start, sep, end = text.partition("/")
    if not sep:
        raise PeriodError(f"--period {text!r}: use 2026-11, 2026-Q4, 2026-W47, 2026 or START/END (RFC 3339)")
    try:
        return parse_time(start), parse_time(end)
    except ValueError:
        raise PeriodError(f"--period {text!r}: START and END must be RFC 3339 timestamps with an offset, "
                          "e.g. 2026-11-01T00:00:00Z/2026-12-01T00:00:00Z") from None


def step_times(start_us: int, end_us: int, step: str, zone: tzinfo) -> list[int]:
    """T_i = start + i*step for i >= 1 while T_i <= end.

    Steps in days or weeks advance the local calendar (a day across a DST change is 23 or 25 hours,
    so each T_i stays at the same wall-clock time); steps in seconds, minutes or hours are exact.
    """
    try:
        duration = parse_duration(step)
    except TimeRangeError as exc:
        raise PeriodError(f"--step: {exc}") from None
    if duration is None or duration <= 0:
        raise PeriodError(f"--step {step!r} is not a duration such as 1d, 6h, 1w")
    calendar = step[-1] in "dw"
    start_local = datetime.fromtimestamp(start_us / US, zone)
    times: list[int] = []
    i = 1
    while True:
        if calendar:
            days = duration // _DAY_US * i
            wall = start_local.replace(tzinfo=None) + timedelta(days=days)
            t = int(wall.replace(tzinfo=zone).timestamp()) * US + start_us % US
        else:
            t = start_us + i * duration
        if t > end_us:
            return times
        times.append(t)
        i += 1
        if len(times) > MAX_STEPS:
            raise PeriodError(f"--step {step!r} makes more than {MAX_STEPS} steps; use a longer step")


def parse_period(text: str, tz: str = "UTC", step: str = "1d") -> Period:
    """Parse `--period`, `--tz` and `--step` into the steps' reference times."""
    tz_info = zone(tz)
    try:
        start_us, end_us = _bounds(text.strip(), tz_info)
    except PeriodError:
        raise
    except (ValueError, OverflowError):  # year 9999's end is in year 10000
        start_us, end_us = LATEST_US, LATEST_US + 1
    if not (EARLIEST_US <= start_us and end_us <= LATEST_US):
        raise PeriodError(f"--period {text!r} is outside the supported times (years 1970 to 8999)")
    if start_us >= end_us:
        raise PeriodError(f"--period {text!r}: START must be before END")
    steps = step_times(start_us, end_us, step, tz_info)
    if not steps:
        raise PeriodError(f"--period {text!r} is shorter than one --step {step}: no reference time inside it")
    return Period(text.strip(), tz, start_us, end_us, step, tuple(steps))



def from_json(block: dict[str, object]) -> Period:
    """The period of a `period` block (Period.to_json()) in a saved plan or results, parsed again."""
    return parse_period(str(block["label"]), tz=str(block["tz"]), step=str(block["step"]))
