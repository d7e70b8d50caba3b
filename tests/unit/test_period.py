"""Period parsing and step times: calendar periods, ISO weeks, time zones with DST, START/END."""

from __future__ import annotations

import pytest

from auditor.core.period import PeriodError, parse_period
from auditor.core.timeutil import format_time


def times(period) -> list[str]:
    return [format_time(t) for t in period.steps]


@pytest.mark.parametrize(("text", "start", "end", "steps"), [
    ("2026-11", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", 30),
    ("2026-02", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", 28),
    ("2028-02", "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z", 29),  # leap year
    ("2026-12", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", 31),
    ("2026-Q1", "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z", 90),
    ("2026-Q4", "2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z", 92),
    ("2026", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", 365),
    # ISO weeks start on Monday; week 1 of 2026 starts in 2025, week 53 of 2020 ends in 2021.
    ("2026-W01", "2025-12-29T00:00:00Z", "2026-01-05T00:00:00Z", 7),
    ("2020-W53", "2020-12-28T00:00:00Z", "2021-01-04T00:00:00Z", 7),
    ("2026-W47", "2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z", 7),
])
def test_calendar_periods_in_utc(text, start, end, steps):
    period = parse_period(text)
    assert (format_time(period.start_us), format_time(period.end_us), len(period.steps)) == (start, end, steps)
    # T_i = start + i*step: the first step is one day after the start, the last is the end itself.
    assert period.steps[-1] == period.end_us


def test_steps_in_a_zone_keep_local_midnight_across_dst():
    period = parse_period("2026-03", tz="Europe/Berlin")
    assert format_time(period.start_us) == "2026-02-28T23:00:00Z"  # 00:00 CET
    assert times(period)[27:30] == ["2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", "2026-03-30T22:00:00Z"]
    autumn = parse_period("2026-10", tz="America/New_York")
    assert "2026-11-01T04:00:00Z" in times(autumn)[-1:]  # EDT ends Nov 1: the period's end is 00:00 EDT
    assert len(autumn.steps) == 31


def test_hour_steps_are_exact_durations():
    period = parse_period("2026-10-24T00:00:00Z/2026-10-25T00:00:00Z", step="6h")
    assert times(period) == ["2026-10-24T06:00:00Z", "2026-10-24T12:00:00Z", "2026-10-24T18:00:00Z",
                             "2026-10-25T00:00:00Z"]


def test_a_step_that_does_not_divide_the_period_stops_before_the_end():
    period = parse_period("2026-11-01T00:00:00Z/2026-11-03T12:00:00Z", step="1d")
    assert times(period) == ["2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"]


@pytest.mark.parametrize(("text", "tz", "step", "message"), [
    ("2026-13", "UTC", "1d", "month must be 01-12"),
    ("2026-W54", "UTC", "1d", "has no week 54"),
    ("last-month", "UTC", "1d", "use 2026-11, 2026-Q4"),
    ("2026-11-02T00:00:00Z/2026-11-01T00:00:00Z", "UTC", "1d", "START must be before END"),
    ("2026-11-01/2026-11-02", "UTC", "1d", "RFC 3339 timestamps with an offset"),
    ("2026-11", "Mars/Olympus", "1d", "not an IANA time zone"),
    ("2026-11", "UTC", "daily", "not a duration"),
    ("2026-11-01T00:00:00Z/2026-11-01T12:00:00Z", "UTC", "1d", "shorter than one --step"),
])
def test_bad_input_is_one_clear_message(text, tz, step, message):
    with pytest.raises(PeriodError, match=message):
        parse_period(text, tz=tz, step=step)
