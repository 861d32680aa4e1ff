"""Durations: every accepted form, and errors that name the field."""

from __future__ import annotations

import pytest

from monitor.checks import Mismatch, Problem
from monitor.durations import check_duration, format_duration, parse_duration
from monitor.errors import InvalidInputError


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("250ms", 0.25),
        (" 2M ", 120.0),
        ("1.5h", 5400.0),
        ("45", 45.0),
        (42, 42.0),
        (0.5, 0.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value, "source.step", allow_zero=True) == seconds


@pytest.mark.parametrize("value", ["5 minutes", "m5", "", "1h30", "-5s", -1, True, None, "inf"])
def test_parse_duration_names_the_field(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_duration(value, "source.events[0].after", allow_zero=True)
    assert str(info.value) == (
        "source.events[0].after: must be a duration such as '90s', '5m', '2h', '1d' or a "
        f"non-negative number of seconds; got {value!r}"
    )


@pytest.mark.parametrize("value", [0, "0s", "0"])
def test_zero_is_refused_unless_allowed(value: object) -> None:
    with pytest.raises(InvalidInputError, match="a positive number of seconds"):
        parse_duration(value, "schedule.interval")
    assert parse_duration(value, "events[0].after", allow_zero=True) == 0.0


@pytest.mark.parametrize(
    ("seconds", "text"), [(5400, "90m"), (60, "1m"), (86400, "1d"), (0.5, "0.5s"), (90, "90s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("value", ["5 minutes", 0, True])
def test_check_duration_raises_the_checks_dialect(value: object) -> None:
    with pytest.raises(Mismatch) as info:
        check_duration(value, "window")
    assert info.value.problem == Problem(
        "window",
        "a duration such as '90s', '5m', '2h', '1d' or a positive number of seconds",
        value,
    )
    assert check_duration("1h30m", "window") == 5400.0
