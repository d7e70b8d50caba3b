"""Timestamps and durations: parsing, formatting and arithmetic in integer microseconds since the epoch."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

US = 1_000_000
_DURATION = re.compile(r"^([0-9]+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# For loops that inline parse_time (one call less per record): for an RFC 3339 string `text`,
# `(datetime.fromisoformat(text) - EPOCH) // MICROSECOND` is parse_time(text), and a timestamp without
# an offset raises TypeError instead of ValueError.
EPOCH = _EPOCH
MICROSECOND = timedelta(microseconds=1)


# The supported span of times and the longest duration: every time a rule, a period or --at can name, moved by
# any duration, still fits a datetime (years 1..9999), so no window arithmetic can overflow.
EARLIEST_US = 0  # 1970-01-01T00:00:00Z: no log is older
LATEST_US = 221845392000 * US  # 9000-01-01T00:00:00Z (exclusive)
MAX_DURATION_US = 36500 * 86400 * US  # 36500d, about 100 years
_RANGE = "1970-01-01T00:00:00Z to 8999-12-31T23:59:59Z"
# Epoch microseconds format_time can write (years 1 to 9999): the range of an epoch-number record time.
FIRST_US, END_US = -62135596800 * US, 253402300800 * US


class TimeRangeError(ValueError):
    """A well-formed time or duration outside what auditor supports; the message says the limits."""


def parse_duration(text: str) -> int | None:
    """`90m` -> microseconds, or None when the text is not a duration; TimeRangeError beyond MAX_DURATION_US."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    if m is None:
        return None
    us = int(m.group(1)) * _UNIT_SECONDS[m.group(2)] * US
    if us > MAX_DURATION_US:
        raise TimeRangeError(f"duration {text} is too long (at most 36500d, about 100 years)")
    return us


def parse_time(text: str) -> int:
    """RFC 3339 text (fractional seconds of any length, `Z` or offset) -> epoch microseconds.

    Raises ValueError on anything else, including a timestamp without a UTC offset, and TimeRangeError (a
    ValueError) outside years 1970 to 8999.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected an RFC 3339 timestamp, got {text!r}")
    # fromisoformat (C, ~1 us) accepts any fraction length and `Z` since Python 3.11; this runs per record.
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset (add Z)")
    try:
        delta = dt - _EPOCH
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        delta = timedelta.min
    us = (delta.days * 86400 + delta.seconds) * US + delta.microseconds
    if not EARLIEST_US <= us < LATEST_US:
        raise TimeRangeError(f"{text!r} is outside the supported times ({_RANGE})")
    return us


def parse_epoch(value: object) -> int:
    """Unix seconds or unix nanoseconds (Logpush `timestamp_format`) -> epoch microseconds.

    Raises ValueError for a boolean and TypeError for anything else that is not a number (e.g. None).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a timestamp, got {value!r}")
    if not isinstance(value, int | float):
        raise TypeError(f"expected a timestamp, got {value!r}")
    # Seconds until the year 5138 stay below 1e11; nanoseconds since 1973 are above 1e17.
    if abs(value) >= 1e14:
        return int(value) // 1000
    return round(value * US)


def format_time(us: int) -> str:
    """Epoch microseconds -> RFC 3339 in UTC (`Z`), fractional seconds only when present."""
    seconds, micros = divmod(us, US)
    dt = datetime.fromtimestamp(seconds, UTC)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{micros:06d}Z" if micros else f"{base}Z"


def now_us() -> int:
    """The current time in whole seconds, as epoch microseconds."""
    return int(datetime.now(UTC).timestamp()) * US
