"""Durations, configuration and Prometheus forms: every accepted form, and clear errors."""

from __future__ import annotations

import pytest

from monitor.checks import Mismatch, Problem
from monitor.durations import (
    MAX_SECONDS,
    check_duration,
    format_duration,
    format_prometheus_duration,
    format_rough,
    parse_duration,
    parse_prometheus_duration,
    scale_prometheus_duration,
)
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
        (" 2m ", 120.0),
        ("1.5h", 5400.0),
        ("45", 45.0),
        (42, 42.0),
        (0.5, 0.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value, "source.step", allow_zero=True) == seconds


@pytest.mark.parametrize(
    "value", ["5 minutes", "m5", "", "1h30", "-5s", -1, True, None, "inf", "1M", "1H", "5S"]
)
def test_parse_duration_names_the_field(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_duration(value, "source.events[0].after", allow_zero=True)
    got = "it is missing or empty" if value is None else f"got {value!r}"
    assert str(info.value) == (
        "source.events[0].after: must be a duration such as '90s', '5m', '2h', '1d' or a "
        f"non-negative number of seconds; {got}"
    )


@pytest.mark.parametrize("value", ["٣m", "\uff13m", "٣", "1٣s"])
def test_digits_are_ascii(value: object) -> None:
    # "٣m" read as 3 minutes, where other fields refused such digits.
    with pytest.raises(InvalidInputError, match="must be a duration such as"):
        parse_duration(value, "window")


@pytest.mark.parametrize("value", [1e-300, "0.0005s", "0.5ms"])
def test_a_duration_under_a_millisecond_is_refused(value: object) -> None:
    # A window of 1e-300 s ended where it began (now - window == now): every run failed
    # with an internal error that check-config had passed.
    with pytest.raises(InvalidInputError) as info:
        parse_duration(value, "window")
    assert str(info.value) == f"window: must be a duration of at least 1ms; got {value!r}"
    assert parse_duration("1ms", "window") == 0.001


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


@pytest.mark.parametrize(
    ("seconds", "text"),
    # How far ahead of the clock: 30 days less 9 min 59 s read "2590001s" (t13 F1).
    [(2590001, "30d"), (2 * 86400, "2d"), (47 * 3600, "47h"), (301, "5m"), (100, "100s")],
)
def test_format_rough_rounds_in_the_largest_unit_held_twice(seconds: float, text: str) -> None:
    assert format_rough(seconds) == text


@pytest.mark.parametrize("value", ["999999999999d", "5201w", 1e308, 2**70])
def test_a_duration_past_a_century_is_refused(value: object) -> None:
    # Beyond it the timers it reaches overflow (timedelta, time_t): one line, not a crash.
    with pytest.raises(InvalidInputError) as info:
        parse_duration(value, "schedule.interval")
    assert str(info.value) == (
        f"schedule.interval: must be a duration of at most 5200w (about a century); got {value!r}"
    )
    assert parse_duration("5200w", "schedule.interval") == MAX_SECONDS


def test_a_huge_duration_is_formatted_short() -> None:
    # A configuration problem shows it: not a 300-digit count of weeks.
    assert format_duration(1e300) == "1e+300s"


# ------------------------------------------------------------------------ Prometheus form


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("3d", 259200.0),
        ("2w3d", 1468800.0),  # 2 * 604800 + 3 * 86400
        ("1y", 31536000.0),  # 365 days
        ("250ms", 0.25),
        ("1s500ms", 1.5),
        ("1m0s", 60.0),
        ("0", 0.0),
    ],
)
def test_parse_prometheus_duration(text: str, seconds: float) -> None:
    assert parse_prometheus_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["30m1h", "1m1m", "", "1.5h", "1h 30m", "5", "-1s", "1H", "ms", " 1m", None, 60]
)
def test_parse_prometheus_duration_refuses_what_prometheus_refuses(text: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_prometheus_duration(text)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"not a Prometheus duration such as '90s', '1h30m' or '250ms': {text!r}"
    )


def test_a_long_text_that_is_no_duration_is_echoed_shortened() -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_prometheus_duration("1h" * 100_000)
    assert str(info.value).endswith("1h1h' (200000 characters)") and len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (3600, "1h"), (93784, "1d2h3m4s"), (604800, "7d")],
)
def test_format_prometheus_duration(seconds: int, text: str) -> None:
    assert format_prometheus_duration(seconds) == text
    assert parse_prometheus_duration(text) == seconds


def test_format_then_parse_gives_the_seconds_back() -> None:
    for seconds in [*range(0, 4000, 7), *range(86000, 700000, 9973)]:
        assert parse_prometheus_duration(format_prometheus_duration(seconds)) == seconds


@pytest.mark.parametrize("seconds", [-1, 1.5, True, "60"])
def test_format_prometheus_duration_wants_whole_seconds(seconds: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        format_prometheus_duration(seconds)  # type: ignore[arg-type]
    assert str(info.value) == (
        "The 'seconds' parameter of format_prometheus_duration must be an int in [0, inf). "
        f"Got {seconds!r} instead."
    )


@pytest.mark.parametrize(
    ("text", "scale", "scaled"),
    [
        ("15m", 0.01, "9s"),  # 900 s * 0.01
        ("3d", 0.01, "43m12s"),  # 259200 s * 0.01 = 2592 s
        ("1h", 0.001, "4s"),  # 3.6 s rounds to 4 s
        ("5s", 0.5, "3s"),  # 2.5 s: halves round up
        ("2m", 0.001, "1s"),  # 0.12 s, but never below 1 s
        ("500ms", 3.0, "2s"),  # 1.5 s
        ("30m", 2.0, "1h"),
        ("1d", 1.0, "1d"),
    ],
)
def test_scale_prometheus_duration(text: str, scale: float, scaled: str) -> None:
    assert scale_prometheus_duration(text, scale) == scaled


def test_a_scale_beyond_what_prometheus_reads_is_refused() -> None:
    """Prometheus durations are int64 nanoseconds: 292 years is the longest one."""
    assert scale_prometheus_duration("1d", 100_000.0) == "100000d"
    with pytest.raises(InvalidInputError) as info:
        scale_prometheus_duration("1d", 1_000_000.0)
    assert str(info.value) == (
        "The 'time_scale' parameter must be at most 1.07e+05, which scales 1d to the longest "
        "duration Prometheus reads (about 292 years). Got 1000000.0 instead."
    )
    # A product past float64 is infinite: it was an OverflowError (exit 70) in render.
    with pytest.raises(InvalidInputError, match=r"must be at most 1\.07e"):
        scale_prometheus_duration("1d", 1e308)


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), float("inf"), "2"])
def test_scale_must_be_positive_and_finite(scale: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        scale_prometheus_duration("1m", scale)  # type: ignore[arg-type]
    assert str(info.value) == (
        "The 'scale' parameter of scale_prometheus_duration must be a float in (0.0, inf). "
        f"Got {scale!r} instead."
    )


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
