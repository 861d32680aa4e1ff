"""Points in time as operators and files write them: unix seconds or ISO-8601, in UTC."""

from __future__ import annotations

import math
import numbers
import re
import zoneinfo
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.checks import Mismatch, Problem, brief, plain_float
from monitor.errors import InvalidInputError, TimeRangeError

__all__ = [
    "ACCEPTED",
    "EARLIEST",
    "FUTURE_SKEW",
    "LATEST",
    "ahead",
    "date_alone",
    "eight_digit_date",
    "finer_unit",
    "format_time",
    "naive_time",
    "out_of_range",
    "parse_time",
    "seconds_expected",
    "time_field",
    "wall_seconds",
    "written_after",
]

#: The times accepted, in unix seconds: from the epoch to the start of year 9999 (UTC).
#: Every one of them, and the windows and reference periods around it, has a calendar
#: date to show; telemetry has no time outside them.
EARLIEST = 0.0
LATEST = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
#: How far after the clock a recorded time may lie before it reads as written before the
#: wall clock stepped back: NTP slews and hosts a little apart stay well below 5 minutes.
FUTURE_SKEW = 300.0
#: How every message says which times are accepted: LATEST itself is not (an exclusive
#: end such as --to 9999-01-01 is refused too), which "between ... and" hid.
ACCEPTED = "from 1970-01-01 up to, but not including, 9999-01-01 UTC"
#: The finer units epoch times are often written in, per second (Java and JavaScript
#: write milliseconds, pandas nanoseconds).
_FINER = (("milliseconds", 1e3), ("microseconds", 1e6), ("nanoseconds", 1e9))
_HINTED = (  # the times finer_unit offers as a reading: 1980-01-01 to 2100-01-01 UTC
    datetime(1980, 1, 1, tzinfo=UTC).timestamp(),
    datetime(2100, 1, 1, tzinfo=UTC).timestamp(),
)


def parse_time(value: Any, where: str, *, hint: bool = False) -> float:
    """Unix seconds of a number, a numeric string, a datetime or date, or an ISO-8601 string.

    Naive times are taken as UTC. Raises InvalidInputError naming ``where`` and saying
    what was wrong with the value (TimeRangeError for a time outside EARLIEST..LATEST;
    with ``hint``, for times read from data, it says what a number reads as in a finer
    unit: ``seconds_expected``).
    """
    seconds = _seconds(value, where)
    if EARLIEST <= seconds < LATEST:
        return seconds
    raise out_of_range(value, where, seconds_expected(seconds) if hint else "")


def seconds_expected(seconds: float) -> str:
    """``out_of_range``'s "expected" part for a number read as ``seconds`` that a finer
    unit reads as a time (``finer_unit``), else ""."""
    hint = finer_unit(seconds)
    return f"unix seconds or ISO-8601 ({hint})" if hint else ""


def out_of_range(value: Any, where: str, expected: str = "") -> TimeRangeError:
    """The error of a time outside EARLIEST..LATEST, as written (``value``) at ``where``;
    for checks of many times at once that must say what ``parse_time`` says.
    ``expected``, if given, says what was expected instead, after a semicolon."""
    instead = f"; expected {expected}" if expected else ""
    accepted = f"times are accepted {ACCEPTED}"
    return TimeRangeError(
        f"{where}: timestamp {brief(value)} is out of range: {accepted}{instead}."
    )


def finer_unit(value: Any) -> str:
    """What a number too large for unix seconds reads as in the first finer unit that
    makes it a time from 1980 to 2100: "as milliseconds it is 2023-11-14T22:13:20Z";
    else "" (a hint where telemetry's times would be, not a reading of every number:
    1e20 as nanoseconds is the year 5138)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return ""
    for unit, per_second in _FINER:
        seconds = float(value) / per_second
        if _HINTED[0] <= seconds < _HINTED[1]:  # false for NaN
            return f"as {unit} it is {format_time(seconds)}"
    return ""


def time_field(value: Any, name: str) -> float:
    """``parse_time`` for a configuration field: a bad value is its Problem (a Mismatch),
    and so are eight digits that make a date (``eight_digit_date``)."""
    day = eight_digit_date(value)
    if day is not None:
        expected = (
            f"{day} for the day, or {str(value).strip()}.0 for unix seconds (eight digits "
            "read as both)"
        )
        raise Mismatch(Problem(name, expected, value))
    try:
        return parse_time(value, name)
    except InvalidInputError:
        expected = f"unix seconds or an ISO-8601 time {ACCEPTED}"
        raise Mismatch(Problem(name, expected, value)) from None


def eight_digit_date(value: Any) -> str | None:
    """The ISO-8601 day of ``value`` when it is eight digits that make a date, which also
    read as unix seconds of 1970 (``20240501``: 2024-05-01, or 1970-08-23); else None.
    Those who write them mean the day; where a time is asked for, both readings are
    refused, with how to write each."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]{8}", text):
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date().isoformat()
    except ValueError:
        return None  # no date (month 13): unix seconds it is


def _seconds(value: Any, where: str) -> float:
    """Unix seconds of ``value``, finite but not yet checked against the range."""
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, date):  # YAML's unquoted 2024-01-01: its midnight, UTC
        return _timestamp(datetime(value.year, value.month, value.day))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isfinite(float(value)):
            return float(value)
        raise InvalidInputError(f"{where}: timestamp {brief(value)} is not a finite number.")
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{where}: timestamp {brief(value)} is neither a number nor a string."
        )
    stripped = value.strip()
    try:
        seconds = plain_float(stripped)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
        raise InvalidInputError(f"{where}: timestamp {brief(value)} is not a finite number.")
    if stripped.endswith("z"):  # RFC 3339 allows a lower-case z; fromisoformat does not
        stripped = stripped[:-1] + "Z"
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise InvalidInputError(
            f"{where}: timestamp {brief(value)} is neither unix seconds nor ISO-8601."
        ) from None
    return _timestamp(moment)


def naive_time(value: Any) -> bool:
    """Whether ``value`` is ISO-8601 text without a UTC offset, which ``parse_time`` reads
    as UTC (``2026-10-25T02:00:00``, a date alone); False for any other value."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    try:
        plain_float(text)
    except ValueError:
        pass
    else:
        return False
    try:
        return datetime.fromisoformat(text).tzinfo is None
    except ValueError:  # a lower-case z, or no time at all: not one read as UTC unsaid
        return False


def date_alone(value: Any) -> bool:
    """Whether ``value`` is ISO-8601 text of a date with no time of day (``2026-10-25``),
    which ``parse_time`` reads as that day's midnight UTC."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if not text or text.isdigit():  # eight digits: refused as unix seconds or a date
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _timestamp(moment: datetime) -> float:
    """Unix seconds of a datetime; naive ones are UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def format_time(seconds: float) -> str:
    """ISO-8601 UTC form of unix seconds, for messages and window labels."""
    spec = "seconds" if float(seconds).is_integer() else "milliseconds"
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def wall_seconds(t: Any, timezone: str) -> NDArray[np.float64]:
    """Unix seconds ``t`` as the wall clock of ``timezone`` reads them, counted from the
    epoch as if that clock were UTC (``t`` plus the zone's offset then): a day of them is
    that clock's day, so that a phase of a seasonal cycle is a time of day of the place
    the telemetry follows, also across a change to or from daylight saving time."""
    times = np.asarray(t, dtype=np.float64)
    if timezone == "UTC":
        return times
    zone = zoneinfo.ZoneInfo(timezone)
    offsets = {x: _offset(datetime.fromtimestamp(x, zone)) for x in np.unique(times).tolist()}
    return times + np.vectorize(offsets.__getitem__, otypes=[np.float64])(times)


def same_clock(a: str, b: str) -> bool:
    """Whether zones ``a`` and ``b`` read the same wall clock (``US/Eastern`` and
    ``America/New_York``, one zone under two names; ``Etc/UTC``, ``GMT`` or ``Zulu`` and
    ``UTC``): the same offset from UTC on the 1st
    and the 15th of every month from 2000 to 2040. A zone this machine does not know is
    the same only as itself."""
    if a == b:
        return True
    try:
        za, zb = zoneinfo.ZoneInfo(a), zoneinfo.ZoneInfo(b)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    days = (datetime(y, m, d, tzinfo=UTC) for y in range(2000, 2041) for m in range(1, 13)
            for d in (1, 15))  # fmt: skip
    return all(_offset(t.astimezone(za)) == _offset(t.astimezone(zb)) for t in days)


def _offset(moment: datetime) -> float:
    offset = moment.utcoffset()
    return 0.0 if offset is None else offset.total_seconds()


def ahead(t: float, now: float) -> float:
    """How far ``t`` lies after ``now`` when that is more than FUTURE_SKEW (else 0): a
    time written before the wall clock stepped back."""
    return t - now if t - now > FUTURE_SKEW else 0.0


def written_after(a: float, b: float, now: float) -> bool:
    """Whether a record stamped ``a`` was written after one stamped ``b`` of another
    table (no insertion order to compare): a stamp ahead of ``now`` was written before
    the wall clock stepped back, so before any stamp that is not; else the later stamp."""
    if bool(ahead(a, now)) != bool(ahead(b, now)):
        return bool(ahead(b, now))
    return a > b
