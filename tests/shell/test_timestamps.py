"""Points in time: unix seconds, numeric text, ISO-8601 (naive is UTC), datetimes."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from monitor.errors import InvalidInputError
from monitor.timestamps import finer_unit, format_time, out_of_range, parse_time, wall_seconds
from monitor.yamlfile import load_yaml

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
OUT_OF_RANGE = (
    "is out of range: times are accepted from 1970-01-01 up to, but not including, 9999-01-01 UTC"
)


@pytest.mark.parametrize(
    "value",
    [
        T0,
        int(T0),
        " 1700000000 ",
        "2023-11-14T22:13:20Z",
        "2023-11-14t22:13:20z",  # RFC 3339 allows both in lower case
        "2023-11-14T22:13:20",
        "2023-11-15T00:13:20+02:00",
        datetime(2023, 11, 14, 22, 13, 20),
        datetime(2023, 11, 14, 23, 13, 20, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_parse_time(value: object) -> None:
    assert parse_time(value, "origin") == T0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "is not a finite number"),
        ("inf", "is not a finite number"),
        ("yesterday", "is neither unix seconds nor ISO-8601"),
        # float() reads both as numbers; no file means them as times.
        ("1_700_000_000", "is neither unix seconds nor ISO-8601"),
        (
            "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",
            "is neither unix seconds nor ISO-8601",
        ),
        (True, "is neither a number nor a string"),
        (None, "is neither a number nor a string"),
        (
            -1.0,
            OUT_OF_RANGE,
        ),
        (
            "1e20",
            OUT_OF_RANGE,
        ),
        (
            "0001-01-01",
            OUT_OF_RANGE,
        ),
        (
            datetime(9999, 6, 1),
            OUT_OF_RANGE,
        ),
    ],
)
def test_parse_time_says_what_is_wrong(value: object, reason: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_time(value, "data.csv, line 3")
    assert str(info.value) == f"data.csv, line 3: timestamp {value!r} {reason}."


@pytest.mark.parametrize(
    ("value", "read"),
    [
        (T0 * 1e3, "as milliseconds it is 2023-11-14T22:13:20Z"),
        (int(T0 * 1e6), "as microseconds it is 2023-11-14T22:13:20Z"),
        (int(T0 * 1e9) + 250_000_000, "as nanoseconds it is 2023-11-14T22:13:20.250Z"),
        (1e300, ""),  # no finer unit makes it a time
        (1e20, ""),  # as nanoseconds the year 5138: no hint
        (-T0 * 1e3, ""),
        (float("nan"), ""),
        ("1700000000000", ""),  # text is not guessed at
        (True, ""),
    ],
)
def test_finer_unit_reads_a_number_too_large_for_seconds(value: object, read: str) -> None:
    assert finer_unit(value) == read


@pytest.mark.parametrize("value", ["1700000000000", 1.7e12, 1_700_000_000_000])
def test_parse_time_for_data_says_how_epoch_milliseconds_read(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_time(value, "w", hint=True)
    assert str(info.value).endswith(
        "UTC; expected unix seconds or ISO-8601 (as milliseconds it is 2023-11-14T22:13:20Z)."
    )
    with pytest.raises(InvalidInputError, match=r"UTC\.$"):  # a stored field: no reading
        parse_time(value, "w")


def test_out_of_range_says_what_was_expected_when_asked() -> None:
    assert str(out_of_range(1e300, "w")) == (f"w: timestamp 1e+300 {OUT_OF_RANGE}.")
    assert str(out_of_range(-1, "w", "unix seconds")) == (
        f"w: timestamp -1 {OUT_OF_RANGE}; expected unix seconds."
    )


def test_a_date_is_its_midnight_utc() -> None:
    # What YAML makes of an unquoted `from: 2023-11-14`: refused as "datetime.date(...)".
    assert load_yaml("t: 2023-11-14\n", "f.yml")["t"] == date(2023, 11, 14)
    assert parse_time(date(2023, 11, 14), "reference.from") == T0 - 22 * 3600 - 13 * 60 - 20


def test_format_time() -> None:
    assert format_time(T0) == "2023-11-14T22:13:20Z"
    assert format_time(T0 + 0.25) == "2023-11-14T22:13:20.250Z"
    assert parse_time(format_time(T0), "t") == T0


def test_wall_seconds_read_the_zone_s_clock_across_daylight_saving_time() -> None:
    t = [parse_time(s, "t") for s in ("2024-03-10T06:30:00Z", "2024-03-10T07:30:00Z")]
    # 01:30 EST, then 03:30 EDT an hour later: the wall clock skipped an hour.
    np.testing.assert_array_equal(
        wall_seconds(np.array(t), "America/New_York") - np.array(t), [-5 * 3600, -4 * 3600]
    )
    assert wall_seconds(t[0], "Asia/Kolkata") == t[0] + 5.5 * 3600
    np.testing.assert_array_equal(wall_seconds(np.array(t), "UTC"), t)
