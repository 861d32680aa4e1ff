"""The files source with time from file names: a window reads the files named in it."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.errors import SourceError
from monitor.sources.files import NameTime, build, parse_options
from monitor.timestamps import parse_time

FEATURES = ("latency_ms", "cpu_ratio", "rps")
T0 = parse_time("2024-01-01T00:00:00Z", "T0")


def _source(tmp_path: Path, **options: Any) -> Any:
    parsed, problems = parse_options({"path": str(tmp_path), "time_from": "name", **options})
    assert problems == [] and parsed is not None
    return build("checkout", FEATURES, parsed)


def _npy(path: Path, value: float, rows: int = 4) -> None:
    np.save(path, np.full((rows, len(FEATURES)), value))
    # Every file has the same, recent modification time: only the names tell them apart.
    os.utime(path, (T0 + 10 * 86400, T0 + 10 * 86400))


@pytest.mark.parametrize(
    ("spec", "name", "expected"),
    [
        ("%Y%m%dT%H%M%S", "tel-20240101T001500.npy", "2024-01-01T00:15:00Z"),
        ("%Y-%m-%d_%H%M", "2024-01-01_2330-part.csv", "2024-01-01T23:30:00Z"),
        ("%Y%j%H", "x2024032-07", None),  # the hour has no place: the format needs it adjacent
        ("%Y%j%H", "x202403207", "2024-02-01T07:00:00Z"),
        ("%s", "window-1704067200.npy", "2024-01-01T00:00:00Z"),
        (r"w(?P<time>\d+)\.", "w1704067200.npy", "2024-01-01T00:00:00Z"),
        (r"_(?P<time>[0-9T:-]+Z)\.", "m_2024-01-01T00:15:00Z.csv", "2024-01-01T00:15:00Z"),
        # Eight digits in a regex's group are ISO-8601's basic date, not unix seconds of 1970.
        (r"-(?P<time>\d+)\.", "metrics-20240501.csv", "2024-05-01T00:00:00Z"),
        (r"-(?P<time>\d+)\.", "metrics-20241399.csv", None),  # month 13: no date
        ("%Y%m%dT%H%M%S", "tel-20241399T001500.npy", None),  # month 13: no date
        ("%Y%m%dT%H%M%S", "latest.npy", None),
        # Every match is tried: a first one that is no time does not hide the real one.
        ("%s", "metrics-v2-1717200000.npy", "2024-06-01T00:00:00Z"),
        ("%s", "shard3-1717200000.csv", "2024-06-01T00:00:00Z"),
        ("%Y%m%d", "host-12345678-20240601.csv", "2024-06-01T00:00:00Z"),
        ("%Y%m%d", "120240601.csv", "2024-06-01T00:00:00Z"),
        ("%s", "w-1704067200000.npy", None),  # milliseconds: 13 digits, no %s
    ],
)
def test_name_times(spec: str, name: str, expected: str | None) -> None:
    got = NameTime(spec).parse(name)
    assert got == (None if expected is None else parse_time(expected, "expected"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"time_from": "name"}, "source.name_time: must be a format such as '%Y%m%dT%H%M%S'"),
        ({"time_from": "ctime"}, "source.time_from: must be one of {'modified', 'name'}"),
        ({"name_time": "%Y"}, "source.name_time: must be omitted unless time_from is 'name'"),
        (
            {"time_from": "name", "name_time": "%Y%b"},
            "source.name_time: must be a format of the directives %Y %m %d %H %M %S %j %s",
        ),
        # strptime cannot read a directive twice: every matching name failed its run
        # as an internal error (re.error) instead.
        (
            {"time_from": "name", "name_time": "%Y%m%d-%Y"},
            "source.name_time: must be a format that has each directive once; %Y is repeated",
        ),
        # No directive and no time group: no name could ever give a time.
        (
            {"time_from": "name", "name_time": "(?P<tim>x)"},
            "source.name_time: must be a format with at least one directive such as %Y",
        ),
        (
            {"time_from": "name", "name_time": "(?P<time>[0-9"},
            "source.name_time: must be a valid regex",
        ),
        (
            {"time_from": "name", "name_time": "%s", "window": "time_range"},
            "source.time_from: must be 'modified' unless window is 'file'",
        ),
        (
            {"time_from": "name", "name_time": "%s", "max_age": "1h"},
            "source.max_age: must be omitted with time_from: name",
        ),
    ],
)
def test_option_problems(raw: dict[str, Any], expected: str) -> None:
    options, problems = parse_options({"path": "/data", **raw}, FEATURES)
    assert options is None
    assert any(p.config("source").startswith(expected) for p in problems), problems


def test_a_window_reads_the_files_named_in_it_whatever_their_modification_time(
    tmp_path: Path,
) -> None:
    for i in range(6):
        _npy(tmp_path / f"tel-{_stamp(T0 + 900 * i)}.npy", float(i))
    _npy(tmp_path / "notes.npy", 99.0)  # no time in the name: never read
    src = _source(tmp_path, pattern="*.npy", name_time="%Y%m%dT%H%M%S")
    w = src.read_window(T0 + 900, T0 + 1800)
    np.testing.assert_array_equal(w.X, np.full((4, 3), 1.0))
    assert "tel-20240101T001500.npy" in w.label
    # A longer window reads several files, oldest name first.
    w = src.read_window(T0 + 1800, T0 + 4500)
    np.testing.assert_array_equal(w.X[:, 0], np.repeat([2.0, 3.0, 4.0], 4))


def test_a_window_without_a_named_file_is_a_source_error(tmp_path: Path) -> None:
    _npy(tmp_path / f"tel-{_stamp(T0)}.npy", 1.0)
    src = _source(tmp_path, name_time="%Y%m%dT%H%M%S")
    with pytest.raises(SourceError, match=r"no file matching '\*' .* has a name time"):
        src.read_window(T0 + 900, T0 + 1800)


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%M%S")


def test_a_named_csv_beside_its_gzip_copy_fails_the_run(tmp_path: Path) -> None:
    # Both are named in the window, and both were read: every row counted twice.
    plain = tmp_path / "tel-20240101T001500.csv"
    plain.write_text("latency_ms,cpu_ratio,rps\n1,2,3\n")
    with gzip.open(f"{plain}.gz", "wb") as fh:
        fh.write(plain.read_bytes())
    src = _source(tmp_path, name_time="%Y%m%dT%H%M%S")
    with pytest.raises(SourceError, match=r": /.*\.csv and /.*\.csv\.gz are both read"):
        src.read_window(T0, T0 + 3600)


@pytest.mark.parametrize(
    ("spec", "name", "naive"),
    [
        ("%Y%m%dT%H%M%S", "tel-20240101T001500.npy", True),  # a format holds no offset
        ("%s", "window-1704067200.npy", False),
        (r"w(?P<time>\d+)\.", "w1704067200.npy", False),  # unix seconds
        (r"_(?P<time>[0-9T:-]+Z)\.", "m_2024-01-01T00:15:00Z.npy", False),
        (r"_(?P<time>[0-9T:+-]+)\.", "m_2024-01-01T01:15:00+01:00.npy", False),
        (r"_(?P<time>[0-9T:-]+)\.", "m_2024-01-01T00:15:00.npy", True),
        (r"-(?P<time>\d+)\.", "metrics-20240101.npy", True),  # a date
    ],
)
def test_a_window_says_whether_its_name_times_had_no_offset(
    tmp_path: Path, spec: str, name: str, naive: bool
) -> None:
    # Name times without an offset are read as UTC, as row times are: a model whose
    # phases follow another clock is warned of row times (helper-112), not of these.
    _npy(tmp_path / name, 1.0)
    window = _source(tmp_path, name_time=spec).read_window(T0, T0 + 86400)
    assert window.X.shape[0] == 4
    assert window.naive_times is naive
    assert NameTime(spec).naive("no-time-here.npy") is False


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("%Y-%m-%d", ["telemetry-2024-01-01.npy", "telemetry-2024-01-02.npy"]),
        (r"-(?P<time>[0-9-]+)\.", ["t-2024-01-01.npy", "t-2024-01-02.npy"]),
        (r"-(?P<time>\d+)\.", ["t-20240101.npy", "t-20240102.npy"]),
    ],
)
def test_names_of_dates_alone_under_a_window_shorter_than_a_day_fail_every_run(
    tmp_path: Path, spec: str, names: list[str]
) -> None:
    # Every file of a day got its midnight: an hourly window read a whole day's files or
    # none ("no file has a name time in ..."), so the runs failed or skewed without a word.
    for i, name in enumerate(names):
        _npy(tmp_path / name, float(i))
    src = _source(tmp_path, name_time=spec)
    for start in (T0, T0 + 3600):  # the window holding a midnight, and one without
        with pytest.raises(SourceError) as info:
            src.read_window(start, start + 3600)
        assert str(info.value) == (
            f"files source of model 'checkout': {names[0]}: the file name's time (name_time "
            f"{spec!r}) is a date alone (2024-01-01, no time of day), read as its midnight "
            "UTC: a window of 1h would get all of a day's files at midnight and no other "
            "window any; name the files with their time of day, or use a window of 1d or longer"
        )
    day = src.read_window(T0, T0 + 86400)  # a day's window reads that day's file
    assert day.X.shape == (4, 3) and (day.X == 0.0).all()
