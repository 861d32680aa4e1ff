"""The files source: options, both window modes, the three formats, schema and read errors."""

from __future__ import annotations

import csv
import gzip
import logging
import os
import sys
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.errors import ConfigError, SchemaError, SourceDataError, SourceError
from monitor.ports import TelemetrySource
from monitor.sources import files
from monitor.sources.files import (
    FilesOptions,
    FilesSource,
    _shared_rows,
    build,
    parse_options,
    read_table,
)

FEATURES = ("latency_ms", "cpu_ratio", "rps")
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
VALUES = np.array([[10.0, 0.25, 100.0], [20.0, 0.5, 200.0], [30.0, 0.75, 300.0]])


def write(path: Path, columns: dict[str, list[Any]], mtime: float | None = None) -> Path:
    """Write ``columns`` in the format of ``path``'s extension (NPY: positionally)."""
    suffix = path.suffix
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            w.writerows(zip(*columns.values(), strict=True))
    elif suffix == ".parquet":
        pq.write_table(pa.table(columns), path)
    else:
        np.save(path, np.column_stack([np.asarray(v, dtype=float) for v in columns.values()]))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def named(values: np.ndarray = VALUES, **extra: list[Any]) -> dict[str, list[Any]]:
    return {**extra, **{f: values[:, j].tolist() for j, f in enumerate(FEATURES)}}


def source(tmp_path: Path, **options: Any) -> FilesSource:
    parsed, problems = parse_options({"path": str(tmp_path), **options})
    assert problems == [] and parsed is not None
    return build("checkout", FEATURES, parsed)


# --------------------------------------------------------------------------- options


def test_defaults() -> None:
    options, problems = parse_options({"path": "/data"})
    assert problems == []
    assert options == FilesOptions(path="/data")
    assert (options.pattern, options.window, options.ignore_extra) == ("*", "file", False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, "source.path: must be a directory; it is missing or empty"),
        ({"path": ""}, "source.path: must be a directory; got ''"),
        # No path holds a NUL: check-config passed them, and every run then failed.
        ({"path": "d\0x"}, "source.path: must be a directory; got 'd\\x00x'"),
        ({"path": "d", "pattern": "a\0*"}, "source.pattern: must be a glob relative to path"),
        ({"path": "d", "window": "day"}, "source.window: must be one of {'file', 'time_range'}"),
        (
            {"path": "d", "format": "xlsx"},
            "source.format: must be one of {'parquet', 'csv', 'npy'}",
        ),
        ({"path": "d", "pattern": "/etc/*"}, "source.pattern: must be a glob relative to path"),
        # A pattern that climbs out of path read files beside it.
        ({"path": "d", "pattern": "../*.csv"}, "source.pattern: must be a glob relative to path"),
        ({"path": "d", "pattern": "a/../../*/w.csv"}, "source.pattern: must be a glob relative"),
        # Patterns whose every file is ignored: the run said only that no file matched.
        (
            {"path": "d", "pattern": "*.parquet.gz"},
            "source.pattern: must be a glob of files with an extension that is read (.parquet, "
            ".pq, .csv, .csv.gz, .npy; no other compressed files), or format set",
        ),
        (
            {"path": "d", "pattern": "*.csv.tmp", "format": "csv"},
            "source.pattern: must be a glob of finished files",
        ),
        (
            {"path": "d", "pattern": "out/_temporary/*.csv"},
            "source.pattern: must be a glob without a part starting with '.' or '_'",
        ),
        # Patterns that can match no file: "." crashed every run with an IndexError from
        # Path.glob, and "**" and "logs/" match directories only.
        *[
            (
                {"path": "d", "pattern": pattern},
                "source.pattern: must be a glob that can match a file, not only directories",
            )
            for pattern in (".", "./", "**", "a/**", "*/", "logs/", "*/.", "*.csv/.")
        ],
        ({"path": "d", "ignore_extra": "yes"}, "source.ignore_extra: must be true or false"),
        ({"path": "d", "max_age": "soon"}, "source.max_age: must be a duration such as"),
        (
            {"path": "d", "window": "time_range", "max_age": "1h"},
            "source.max_age: must be omitted unless window is 'file'; got '1h'",
        ),
        (
            {"path": "d", "glob": "*.csv"},
            "source.glob: must be omitted (unknown field; valid: format, ignore_extra, max_age, "
            "name_time, path, pattern, time_from, timestamp_column, window); got '*.csv'",
        ),
    ],
)
def test_parse_options_names_the_field_of_each_problem(raw: dict, expected: str) -> None:
    options, problems = parse_options(raw)
    assert options is None
    rendered = [p.config("source") for p in problems]
    assert len(rendered) == 1 and rendered[0].startswith(expected), rendered


def test_a_timestamp_column_that_is_a_feature_is_refused() -> None:
    expected = (
        "source.timestamp_column: must be a column that is not one of the features; got 'rps'"
    )
    raw = {"path": "d", "window": "time_range", "timestamp_column": "rps"}
    assert parse_options(raw)[1] == []  # without the features there is nothing to compare
    options, problems = parse_options(raw, FEATURES)
    assert options is None and [p.config("source") for p in problems] == [expected]
    with pytest.raises(ConfigError) as info:
        build("checkout", FEATURES, FilesOptions(**raw))
    assert info.value.problems == [expected]


# --------------------------------------------------------------------------- window: file


def test_file_mode_reads_the_newest_file_modified_before_the_end(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", named(VALUES * 1), mtime=T0 - 30)
    write(tmp_path / "b.csv", named(VALUES * 2), mtime=T0 - 10)
    write(tmp_path / "c.csv", named(VALUES * 3), mtime=T0)  # not before the end: later
    src = source(tmp_path)
    assert isinstance(src, TelemetrySource)
    window = src.read_window(T0 - 60, T0)
    np.testing.assert_array_equal(window.X, VALUES * 2)
    assert window.label == "b.csv (modified 2023-11-14T22:13:10Z)"
    assert (window.model, window.start, window.end, window.features) == (
        "checkout",
        T0 - 60,
        T0,
        FEATURES,
    )
    np.testing.assert_array_equal(src.read_window(T0, T0 + 1).X, VALUES * 3)


def test_file_mode_breaks_mtime_ties_by_the_last_name(tmp_path: Path) -> None:
    write(tmp_path / "part-0002.csv", named(VALUES * 2), mtime=T0 - 10)
    write(tmp_path / "part-0001.csv", named(VALUES * 1), mtime=T0 - 10)
    np.testing.assert_array_equal(source(tmp_path).read_window(T0 - 60, T0).X, VALUES * 2)


def test_file_mode_without_a_file_before_the_end_fails(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", named(), mtime=T0 + 5)
    with pytest.raises(SourceError, match=r"files source of model 'checkout': no file matching"):
        source(tmp_path).read_window(T0 - 60, T0)


def test_file_mode_max_age_refuses_a_stale_file(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", named(), mtime=T0 - 600)
    assert source(tmp_path, max_age="15m").read_window(T0 - 60, T0).X.shape == (3, 3)
    with pytest.raises(
        SourceError, match=r"newest file a.csv was modified at .* more than max_age=300s"
    ):
        source(tmp_path, max_age="5m").read_window(T0 - 60, T0)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("caf\u00e9 data", "'{root}/caf\u00e9 data/a.csv'"),  # quoted for the space, not escaped
        ("plain", "{root}/plain/a.csv"),
        ("new\nline", "$'{root}/new\\nline/a.csv'"),  # one line, as bash would take it
    ],
    ids=["space", "plain", "newline"],
)
def test_a_file_s_path_is_shown_as_a_shell_takes_it(tmp_path: Path, name: str, shown: str) -> None:
    # Paths were shown as Python's repr: '/data/x.csv' quoted always, and escaped.
    (tmp_path / name).mkdir()
    write(tmp_path / name / "a.csv", {"x": [1.0], "y": [2.0]}, mtime=T0 - 60)
    with pytest.raises(SchemaError) as info:
        source(tmp_path / name).read_window(T0 - 60, T0)
    assert str(info.value).startswith(
        f"files source of model 'checkout': {shown.format(root=tmp_path)}: "
    ), str(info.value)


def test_pattern_format_and_hidden_files(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", named(VALUES * 1), mtime=T0 - 30)
    write(tmp_path / ".b.csv", named(VALUES * 2), mtime=T0 - 20)  # hidden: ignored
    (tmp_path / "notes.txt").write_text("not data")  # unknown extension: ignored
    os.utime(tmp_path / "notes.txt", (T0 - 10, T0 - 10))
    np.testing.assert_array_equal(source(tmp_path).read_window(T0 - 60, T0).X, VALUES)
    os.rename(write(tmp_path / "c.csv", named(VALUES * 3)), tmp_path / "c.dat")
    os.utime(tmp_path / "c.dat", (T0 - 5, T0 - 5))  # a CSV under another extension
    forced = source(tmp_path, pattern="*.dat", format="csv")
    np.testing.assert_array_equal(forced.read_window(T0 - 60, T0).X, VALUES * 3)


def test_recursive_patterns_skip_hidden_and_in_progress_directories(tmp_path: Path) -> None:
    # Spark writes a job's files under _temporary/ and moves them out when done, and
    # staging tools write under dot directories: "**/*.parquet" read each row three times.
    rows = named(ts=[T0 - 30, T0 - 20, T0 - 10])
    for where in ("out", "out/_temporary/0", "out/.staging", "_logs"):
        (tmp_path / where).mkdir(parents=True)
        write(tmp_path / where / "part-0.parquet", rows)
    tree = source(tmp_path, pattern="**/*.parquet", window="time_range", timestamp_column="ts")
    window = tree.read_window(T0 - 60, T0)
    np.testing.assert_array_equal(window.X, VALUES)
    assert window.label.endswith("from 1 of 1 file(s) matching '**/*.parquet'"), window.label
    # Only the parts below `path` count: the directory itself may be named _anything.
    inside = source(
        tmp_path / "_logs", pattern="*.parquet", window="time_range", timestamp_column="ts"
    )
    np.testing.assert_array_equal(inside.read_window(T0 - 60, T0).X, VALUES)


@pytest.mark.parametrize(
    "name", ["b.csv.tmp", "b.csv.part", "b.csv.partial", "b.INPROGRESS", "b.csv~", "b.crdownload"]
)
def test_a_file_being_written_is_not_read_even_with_a_format(tmp_path: Path, name: str) -> None:
    write(tmp_path / "a.csv", named(VALUES * 1), mtime=T0 - 30)
    os.rename(write(tmp_path / "b.csv", named(VALUES * 2)), tmp_path / name)
    os.utime(tmp_path / name, (T0 - 10, T0 - 10))  # the newest file, but half written
    for options in ({}, {"format": "csv"}):
        np.testing.assert_array_equal(
            source(tmp_path, **options).read_window(T0 - 60, T0).X, VALUES
        )


def _dangling(path: Path) -> str:
    path.symlink_to(path.parent / "gone" / path.name)  # a mount that is not there, say
    return r"a symbolic link to /.*gone.* that leads to no file \(No such file or directory\)"


def _loop(path: Path) -> str:
    path.symlink_to(path.name)
    return r"a symbolic link to b.csv that leads to no file \(Too many levels of symbolic"


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return r"a named pipe \(FIFO\)"


@pytest.mark.parametrize("make", [_dangling, _loop, _fifo])
@pytest.mark.parametrize("window", ["file", "time_range"])
def test_a_matching_name_that_is_no_file_to_read_fails_the_run(
    tmp_path: Path, make: Any, window: str
) -> None:
    # It was left out without a word: in file mode the run read an older file as if it
    # were the newest, in time_range mode its rows were missing from every window.
    write(tmp_path / "a.csv", named(ts=[T0 - 30, T0 - 20, T0 - 10]), mtime=T0 - 30)
    (tmp_path / "sub.csv").mkdir()  # a directory the pattern matches holds no rows: skipped
    src = source(tmp_path, window=window, timestamp_column="ts", ignore_extra=True)
    np.testing.assert_array_equal(src.read_window(T0 - 60, T0).X, VALUES)
    why = make(tmp_path / "b.csv")
    with pytest.raises(SourceError, match=rf": /.*b.csv matches '\*' but is {why}.*; no window"):
        src.read_window(T0 - 60, T0)


def test_a_pattern_that_cannot_be_listed_is_a_source_error(tmp_path: Path) -> None:
    # check-config refuses it; a source built around that check must not crash with a
    # traceback (Path.glob(".") raised IndexError, reported as an internal error).
    write(tmp_path / "a.csv", named(), mtime=T0 - 30)
    src = FilesSource("checkout", FEATURES, FilesOptions(path=str(tmp_path), pattern="."))
    with pytest.raises(SourceError, match=r"cannot list .* with the pattern '\.'"):
        src.read_window(T0 - 60, T0)


def _unreadable(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """Make ``directory`` one that cannot be listed, as mode 000 makes it for any user
    but root (the tests may run as root, which reads it all the same)."""
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == directory:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.mark.parametrize("window", ["file", "time_range"])
@pytest.mark.parametrize(("pattern", "unlisted"), [("*.csv", "."), ("**/*.csv", "day2")])
def test_a_directory_that_cannot_be_listed_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: str, pattern: str, unlisted: str
) -> None:
    # Path.glob passed it over as empty: its rows were left out of every window, or in
    # window: file an older file was read as the newest, and a first run failed as
    # too_few_rows ("its data begin later") instead of naming the directory.
    (tmp_path / "day2").mkdir()
    write(tmp_path / "old.csv", named(ts=[T0 - 3600] * 3), mtime=T0 - 3600)
    write(tmp_path / "day2" / "new.csv", named(ts=[T0 - 30] * 3), mtime=T0 - 30)
    src = source(tmp_path, pattern=pattern, window=window, timestamp_column="ts")
    src.read_window(T0 - 7200, T0)
    _unreadable(monkeypatch, (tmp_path / unlisted).resolve())
    directory = str((tmp_path / unlisted).resolve()).removesuffix("/.")
    expected = rf"cannot list or enter the directory {directory} \(Permission denied\)"
    with pytest.raises(SourceError, match=expected):
        src.read_window(T0 - 7200, T0)


def test_a_directory_listed_but_not_entered_fails_the_run_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chmod -R 644: the walker lists it, the stat of each file inside is refused; the
    # error escaped as a traceback on every run, "internal" (helper-99).
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "t.csv", named(ts=[T0 - 30] * 3), mtime=T0 - 30)
    src = source(tmp_path, pattern="**/*.csv", window="time_range", timestamp_column="ts")
    real = Path.stat

    def stat(path: Path, **kwargs: Any) -> Any:
        if path.parent.name == "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    expected = rf"cannot list or enter the directory {tmp_path / 'sub'} \(Permission denied\)"
    with pytest.raises(SourceError, match=expected):
        src.read_window(T0 - 7200, T0)


def test_a_tree_too_deep_to_walk_is_a_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some 1,000 levels under **: a RecursionError, reported as internal (helper-99).
    def deep(directory: Path, parts: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")
        yield directory

    monkeypatch.setattr(files, "_glob", deep)
    with pytest.raises(SourceError, match=r"nested too deep to walk with the pattern"):
        source(tmp_path, pattern="**/*.csv").read_window(T0 - 60, T0)


def test_a_hidden_directory_that_cannot_be_listed_fails_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never read, so never entered: a Spark job's _temporary/ of another user is no error.
    (tmp_path / "_temporary").mkdir()
    write(tmp_path / "a.csv", named(), mtime=T0 - 30)
    _unreadable(monkeypatch, tmp_path / "_temporary")
    window = source(tmp_path, pattern="**/*.csv").read_window(T0 - 60, T0)
    np.testing.assert_array_equal(window.X, VALUES)


@pytest.mark.parametrize("link", [os.symlink, os.link])
@pytest.mark.parametrize("window", ["file", "time_range"])
def test_a_file_under_two_names_is_read_once(tmp_path: Path, link: Any, window: str) -> None:
    # A latest.csv -> tel-<this hour>.csv link counted every row of the hour twice.
    write(tmp_path / "tel-1.csv", named(ts=[T0 - 30, T0 - 20, T0 - 10]), mtime=T0 - 30)
    link(tmp_path / "tel-1.csv", tmp_path / "latest.csv")
    src = source(tmp_path, window=window, timestamp_column="ts", ignore_extra=True)
    window_read = src.read_window(T0 - 60, T0)
    np.testing.assert_array_equal(window_read.X, VALUES)
    if window == "file":  # by the file's own name, not the link's
        assert window_read.label.startswith("tel-1.csv "), window_read.label
    else:
        assert "from 1 of 1 file(s)" in window_read.label, window_read.label


@pytest.mark.parametrize(
    ("plain", "options"), [("x.csv", {}), ("x", {"format": "csv", "pattern": "x*"})]
)
def test_a_csv_beside_its_gzip_copy_fails_the_runs_that_read_both(
    tmp_path: Path, plain: str, options: dict
) -> None:
    # gzip -k leaves x.csv beside x.csv.gz: both were read, each row counted twice.
    data = named(ts=[T0 - 30, T0 - 20, T0 - 10])
    write(tmp_path / "x.csv", data, mtime=T0 - 30)
    os.rename(tmp_path / "x.csv", tmp_path / plain)
    _gzip(tmp_path / f"{plain}.gz", (tmp_path / plain).read_bytes())
    os.utime(tmp_path / f"{plain}.gz", (T0 - 20, T0 - 20))
    both = rf": /.*/{plain} and /.*/{plain}.gz are both read and may hold the same rows"
    with pytest.raises(SourceError, match=both):
        source(tmp_path, window="time_range", timestamp_column="ts", **options).read_window(
            T0 - 60, T0
        )
    # One file is one window: the newest of the two is read, nothing counted twice.
    newest = source(tmp_path, timestamp_column="ts", ignore_extra=True, **options)
    assert newest.read_window(T0 - 60, T0).label.startswith(f"{plain}.gz ")


def test_missing_directory_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a readable directory"):
        source(tmp_path / "nowhere").read_window(T0 - 60, T0)


# --------------------------------------------------------------------------- formats and schema


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy"])
def test_every_format_yields_the_same_window(tmp_path: Path, suffix: str) -> None:
    write(tmp_path / f"w{suffix}", named(), mtime=T0 - 1)
    window = source(tmp_path).read_window(T0 - 60, T0)
    assert window.X.dtype == np.float64 and window.X.flags.c_contiguous
    np.testing.assert_array_equal(window.X, VALUES)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_named_columns_are_put_in_feature_order(tmp_path: Path, suffix: str) -> None:
    shuffled = {f: VALUES[:, j].tolist() for j, f in reversed(list(enumerate(FEATURES)))}
    write(tmp_path / f"w{suffix}", {"timestamp": [1, 2, 3], **shuffled}, mtime=T0 - 1)
    np.testing.assert_array_equal(source(tmp_path).read_window(T0 - 60, T0).X, VALUES)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["latency_ms", "cpu_ratio"], r"missing \['rps'\]\."),
        (
            ["latency_ms", "cpu_ratio", "rps", "host"],
            r"extra \['host'\] \(set ignore_extra: true to allow extra columns\)\.",
        ),
        (["latency_ms", "CPU-Ratio", "rps"], r"renamed 'cpu_ratio' -> 'CPU-Ratio'\."),
        (["latency_ms", "cpu_ratio", "requests"], r"renamed 'rps' -> 'requests'\?; extra"),
        # Ten names and a count: 10,000 extra columns made a failure line of 89 kB.
        (
            ["latency_ms", "cpu_ratio", "rps", *(f"c{i}" for i in range(10_000))],
            r"extra \['c0', 'c1', .*, 'c9', \.\.\. and 9,990 more\] \(set ignore_extra",
        ),
    ],
)
def test_schema_errors_name_the_columns(
    tmp_path: Path, suffix: str, columns: list[str], message: str
) -> None:
    data = {c: [1.0, 2.0] for c in columns}
    path = write(tmp_path / f"w{suffix}", data, mtime=T0 - 1)
    with pytest.raises(SchemaError, match=message) as info:
        source(tmp_path).read_window(T0 - 60, T0)
    assert str(path) in str(info.value) and len(str(info.value)) < 600


def test_ignore_extra_allows_extra_columns(tmp_path: Path) -> None:
    write(tmp_path / "w.csv", named(host=["a", "b", "c"]), mtime=T0 - 1)
    np.testing.assert_array_equal(
        source(tmp_path, ignore_extra=True).read_window(T0 - 60, T0).X, VALUES
    )


def test_npy_columns_are_positional_and_must_count_right(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.ones((4, 2)))
    os.utime(tmp_path / "w.npy", (T0 - 1, T0 - 1))
    with pytest.raises(SchemaError, match=r"2 column\(s\) where 3 are expected .* by position"):
        source(tmp_path).read_window(T0 - 60, T0)


def test_missing_values_become_nan(tmp_path: Path) -> None:
    # A blank line is no row; an empty cell is a missing value.
    (tmp_path / "w.csv").write_text("latency_ms,cpu_ratio,rps\n1,,3\n\nnan,0.5, 7 \n")
    os.utime(tmp_path / "w.csv", (T0 - 2, T0 - 2))
    X = source(tmp_path).read_window(T0 - 60, T0).X
    np.testing.assert_array_equal(X, [[1.0, np.nan, 3.0], [np.nan, 0.5, 7.0]])
    table = pa.table({"latency_ms": [1.0, None], "cpu_ratio": [0.5, 0.25], "rps": [3, None]})
    pq.write_table(table, tmp_path / "w.parquet")
    os.utime(tmp_path / "w.parquet", (T0 - 1, T0 - 1))
    X = source(tmp_path).read_window(T0 - 60, T0).X
    np.testing.assert_array_equal(X, [[1.0, 0.5, 3.0], [np.nan, 0.25, np.nan]])


def test_parquet_integers_beyond_2_to_the_53_are_rounded_as_a_csv_cell_is(tmp_path: Path) -> None:
    # Arrow's safe cast refuses them; the file is not unreadable for that.
    big = [2**63 - 1, 2**53 + 1]
    table = pa.table(
        {
            "latency_ms": pa.array(big, pa.int64()),
            "cpu_ratio": pa.array([2**64 - 1, 1], pa.uint64()),
            "rps": [3.0, 4.0],
        }
    )
    pq.write_table(table, tmp_path / "w.parquet")
    os.utime(tmp_path / "w.parquet", (T0 - 1, T0 - 1))
    X = source(tmp_path).read_window(T0 - 60, T0).X
    np.testing.assert_array_equal(X, [[float(2**63 - 1), float(2**64 - 1), 3.0], [2.0**53, 1, 4]])


# --------------------------------------------------------------------------- unreadable files


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
def test_truncated_files_are_source_errors_naming_the_file(tmp_path: Path, suffix: str) -> None:
    values = np.arange(300.0).reshape(100, 3)
    path = write(tmp_path / f"w{suffix}", named(values))
    _truncate(path)
    os.utime(path, (T0 - 1, T0 - 1))
    with pytest.raises(SourceError, match="unreadable") as info:
        source(tmp_path).read_window(T0 - 60, T0)
    assert str(path) in str(info.value)


def test_an_npy_file_a_few_bytes_short_says_by_how_many(tmp_path: Path) -> None:
    # 1,000 x 3 doubles (24,000 B) with its last 8 bytes cut off: rounded, both sizes
    # read "23.4 KiB", which says nothing of what is missing.
    path = tmp_path / "w.npy"
    np.save(path, np.zeros((1000, 3)))
    path.write_bytes(path.read_bytes()[:-8])
    os.utime(path, (T0 - 1, T0 - 1))
    with pytest.raises(SourceError) as info:
        source(tmp_path).read_window(T0 - 60, T0)
    assert "values of float64 (24,000 B) but the file holds 23,992 B of data" in str(info.value)


def _forged_npy(path: Path, shape: tuple[int, ...], descr: str = "<f8") -> Path:
    """An NPY file whose header announces ``shape`` over 64 bytes of data."""
    import io

    head = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(head, header)
    path.write_bytes(head.getvalue() + b"\0" * 64)
    return path


def test_an_npy_header_announcing_terabytes_is_refused_before_allocating(tmp_path: Path) -> None:
    # 2**38 x 1 doubles: 2 TiB that numpy would try to allocate before reading a byte.
    path = _forged_npy(tmp_path / "w.npy", (2**38, 1))
    os.utime(path, (T0 - 1, T0 - 1))
    expected = (
        f"files source of model 'checkout': {path}: unreadable NPY file: its header "
        "announces 274877906944 x 1 values of float64 (2.0 TiB) but the file holds 64 B of "
        "data (truncated, or not what it claims to be)"
    )
    with pytest.raises(SourceError) as info:
        source(tmp_path).read_window(T0 - 60, T0)
    assert str(info.value) == expected
    with pytest.raises(SourceError, match=r"announces 274877906944 x 1 values .* \(2.0 TiB\)"):
        read_table(path)


@pytest.mark.parametrize(
    ("shape", "descr", "error", "message"),
    [
        ((4,), "<f8", SchemaError, r"expected a 2-D numeric array; got shape \(4,\)"),
        ((2, 2), "|O", SchemaError, "expected a 2-D numeric array; got shape .* of dtype object"),
        ((2, 2), "<U3", SchemaError, "of dtype <U3"),
    ],
)
def test_npy_headers_of_no_table_of_numbers_are_schema_errors(
    tmp_path: Path, shape: tuple[int, ...], descr: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        read_table(_forged_npy(tmp_path / "w.npy", shape, descr))


def test_a_file_that_is_not_npy_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    path.write_bytes(b"latency,cpu\n1,2\n")
    with pytest.raises(SourceError, match="unreadable NPY file: the magic string is not correct"):
        read_table(path)


# Records that do not parse: the file cannot be read (reason `source_unavailable`).
_MALFORMED_CSV = [
    ("latency_ms,cpu_ratio,rps\n1,2,3\n4,5", r"line 3: 2 field\(s\) where the header has 3"),
    # A quote left open takes the lines after it into one field: the error is where
    # the record starts, not at the end of the file where the parser stopped.
    (
        'latency_ms,cpu_ratio,rps\n1,2,3\n"4,5,6\n7,8,9\n10,11,12\n',
        r"line 3 \(a quoted field runs to line 5\): 1 field\(s\) where the header has 3",
    ),
    ("", r"empty CSV file"),
    # Python's csv reads at most 131,072 characters in a field (docs/sources.md).
    (
        f"latency_ms,cpu_ratio,rps\n1,2,3\n4,{'5' * (2**17 + 1)},6\n7,8,9\n",
        r"/w\.csv, line 3: a field longer than 131,072 characters, the most one CSV field "
        r"may hold$",
    ),
    (
        f"latency_ms,cpu_ratio,{'r' * (2**17 + 1)}\n1,2,3\n",
        r"/w\.csv, line 1: a field longer than 131,072 characters",
    ),
    # A quote left open makes one field of the lines after it, until the limit.
    (
        'latency_ms,cpu_ratio,rps\n1,2,3\n"4,5,6\n' + "7,8,9\n" * 2**15,
        r"/w\.csv, line 3 \(a quoted field runs to line 2\d{4} at least\): a field longer "
        r"than 131,072 characters",
    ),
]
# A cell that is no number: the column is not one of numbers, as a Parquet column of
# strings is not (reason `schema`).
_NOT_NUMBERS_CSV = [
    ("latency_ms,cpu_ratio,rps\n1,2,3\n4,x5,6\n", r"line 3: column 'cpu_ratio' holds 'x5'"),
    ('latency_ms,cpu_ratio,rps\n1,2,3\n4,"x\n",6\n', r"line 3: column 'cpu_ratio' holds 'x"),
    # A cell of 100 kB is shown by its ends, not echoed into every log line.
    (
        f"latency_ms,cpu_ratio,rps\n1,2,3\n4,{'x' * 10**5},6\n",
        r"holds 'x+\.\.\.x+' \(100000 char",
    ),
]


@pytest.mark.parametrize(
    ("text", "message", "error"),
    [(t, m, SourceError) for t, m in _MALFORMED_CSV]
    + [(t, m, SchemaError) for t, m in _NOT_NUMBERS_CSV],
)
def test_malformed_csv_is_an_error_naming_the_line(
    tmp_path: Path, text: str, message: str, error: type[Exception]
) -> None:
    path = tmp_path / "w.csv"
    path.write_text(text)
    os.utime(path, (T0 - 1, T0 - 1))
    with pytest.raises(error, match=message) as info:
        source(tmp_path).read_window(T0 - 60, T0)
    assert str(path) in str(info.value)


def test_csv_that_is_not_utf8_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "w.csv").write_bytes(b"latency_ms,cpu_ratio,rps\n\xff\xfe,1,2\n")
    os.utime(tmp_path / "w.csv", (T0 - 1, T0 - 1))
    with pytest.raises(SourceError, match="unreadable CSV file"):
        source(tmp_path).read_window(T0 - 60, T0)


def test_missing_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "w.parquet", named(), mtime=T0 - 1)
    # None in sys.modules makes the import statement raise ImportError.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(SourceError, match=r"pip install 'kmeans-monitor\[parquet\]'"):
        source(tmp_path).read_window(T0 - 60, T0)


# --------------------------------------------------------------------------- window: time_range

STAMPS = [T0 - 120, T0 - 60, T0 - 1, T0, T0 + 60]
ROWS = np.arange(15.0).reshape(5, 3)


def _range_source(tmp_path: Path) -> FilesSource:
    return source(tmp_path, window="time_range", timestamp_column="ts")


@pytest.mark.parametrize(
    "stamps",
    [
        STAMPS,
        [repr(t) for t in STAMPS],  # numbers written as text
        [
            "2023-11-14T22:11:20Z",
            "2023-11-14T23:12:20+01:00",
            "2023-11-14T22:13:19",  # naive: UTC
            "2023-11-14T22:13:20.000Z",
            "2023-11-14 22:14:20+00:00",
        ],
    ],
    ids=["unix", "unix-text", "iso"],
)
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_time_range_keeps_rows_in_start_inclusive_end_exclusive(
    tmp_path: Path, stamps: list[Any], suffix: str
) -> None:
    write(tmp_path / f"w{suffix}", named(ROWS, ts=stamps))
    X = _range_source(tmp_path).read_window(T0 - 60, T0).X
    np.testing.assert_array_equal(X, ROWS[[1, 2]])


ISO = [datetime.fromtimestamp(t, UTC).isoformat() for t in STAMPS]


@pytest.mark.parametrize(
    ("stamps", "naive"),
    [
        ([t.removesuffix("+00:00") for t in ISO], True),  # local times, as loggers write them
        ([t.removesuffix("+00:00") + "Z" for t in ISO], False),
        (ISO, False),
        (STAMPS, False),
        ([repr(t) for t in STAMPS], False),
    ],
    ids=["naive", "z", "offset", "unix", "unix-text"],
)
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_window_says_whether_its_row_times_had_no_offset(
    tmp_path: Path, stamps: list[Any], naive: bool, suffix: str
) -> None:
    """Times without an offset are read as UTC; the window says it held some, so that a
    model whose phases follow another clock can be warned: naive local times under
    timezone: Europe/Berlin brought back the DST false alarms unsaid (helper-111)."""
    write(tmp_path / f"w{suffix}", named(ROWS, ts=stamps))
    src = _range_source(tmp_path)
    assert src.read_window(T0 - 60, T0).naive_times is naive
    assert src.read_window(T0 - 60, T0).naive_times is naive  # the file parsed once


@pytest.mark.parametrize(("tz", "naive"), [(None, True), ("UTC", False), ("+02:00", False)])
def test_a_parquet_timestamp_column_without_a_zone_is_naive(
    tmp_path: Path, tz: str | None, naive: bool
) -> None:
    table = pa.table({"ts": pa.array(np.array(STAMPS, dtype="int64"), pa.timestamp("s", tz=tz))})
    pq.write_table(table.append_column("x", pa.array([0.0] * 5)), tmp_path / "w.parquet")
    options, _ = parse_options(
        {"path": str(tmp_path), "window": "time_range", "timestamp_column": "ts"}
    )
    assert options is not None
    src = build("m", ("x",), options)
    assert src.read_window(T0 - 60, T0).naive_times is naive


def test_time_range_reads_arrow_timestamp_columns(tmp_path: Path) -> None:
    ms = (np.array(STAMPS) * 1000).astype("int64")
    table = pa.table(
        {"ts": pa.array(ms, pa.timestamp("ms", tz="UTC")), **named(ROWS)},
    )
    pq.write_table(table, tmp_path / "w.parquet")
    X = _range_source(tmp_path).read_window(T0 - 60, T0).X
    np.testing.assert_array_equal(X, ROWS[[1, 2]])


def test_time_range_reads_a_categorical_timestamp_column(tmp_path: Path) -> None:
    # pandas writes a Categorical column as a dictionary-encoded one
    text = pa.array([f"{t!r}" for t in STAMPS]).dictionary_encode()
    pq.write_table(pa.table({"ts": text, **named(ROWS)}), tmp_path / "w.parquet")
    X = _range_source(tmp_path).read_window(T0 - 60, T0).X
    np.testing.assert_array_equal(X, ROWS[[1, 2]])


def test_time_range_npy_has_the_timestamp_first(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.column_stack([STAMPS, ROWS]))
    X = _range_source(tmp_path).read_window(T0 - 60, T0 + 60).X
    np.testing.assert_array_equal(X, ROWS[[1, 2, 3]])


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_time_range_refuses_times_stored_as_float32(tmp_path: Path, suffix: str) -> None:
    # A float32 holds a time of 2023 to the nearest 128 s: rows were silently read into
    # the wrong windows (118 of a window's 120 rows, the others in its neighbours).
    stamps = np.asarray(STAMPS, dtype=np.float32)
    if suffix == ".npy":
        np.save(tmp_path / "w.npy", np.column_stack([stamps, ROWS]).astype(np.float32))
    else:
        pq.write_table(pa.table({"ts": stamps, **named(ROWS)}), tmp_path / "w.parquet")
    with pytest.raises(SchemaError, match=r"timestamps stored as float32 are rounded to 128 s"):
        _range_source(tmp_path).read_window(T0 - 60, T0 + 60)
    # Features may be float32; times that fit one to the second (small ones) too.
    small = np.column_stack([np.arange(5.0), ROWS[:5]]).astype(np.float32)
    np.save(tmp_path / "w.npy", small)
    (tmp_path / "w.parquet").unlink(missing_ok=True)
    assert _range_source(tmp_path).read_window(0, 3).X.shape == (3, 3)


def _write_shards(tmp_path: Path, rng: np.random.Generator, n: int = 600) -> np.ndarray:
    """Rows with timestamps spread over T0 .. T0 + 600 in three shards of each format."""
    stamps = T0 + rng.uniform(0, 600, n).round(3)
    rows = rng.normal(size=(n, 3))
    for i, part in enumerate(np.array_split(np.arange(n), 3)):
        suffix = [".csv", ".parquet", ".npy"][i]
        if suffix == ".npy":
            np.save(tmp_path / f"s{i}.npy", np.column_stack([stamps[part], rows[part]]))
        else:
            write(tmp_path / f"s{i}{suffix}", named(rows[part], ts=stamps[part].tolist()))
    return np.column_stack([stamps, rows])


def _sorted_rows(X: np.ndarray) -> np.ndarray:
    return X[np.lexsort(X.T[::-1])]


def test_time_range_split_windows_add_up_to_the_whole(tmp_path: Path) -> None:
    truth = _write_shards(tmp_path, np.random.default_rng(0))
    src = _range_source(tmp_path)
    whole = src.read_window(T0 + 100, T0 + 500).X
    parts = np.concatenate([src.read_window(a, a + 100).X for a in T0 + np.arange(100, 500, 100)])
    np.testing.assert_array_equal(_sorted_rows(whole), _sorted_rows(parts))
    # CSV prints floats with repr, which round-trips exactly: every row comes back as written.
    expected = truth[(truth[:, 0] >= T0 + 100) & (truth[:, 0] < T0 + 500), 1:]
    np.testing.assert_array_equal(_sorted_rows(whole), _sorted_rows(expected))


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parsed: list[str] = []
    read = FilesSource._read

    def counted(self: FilesSource, f: Any, *, with_timestamps: bool) -> Any:
        parsed.append(f.path.name)
        return read(self, f, with_timestamps=with_timestamps)

    monkeypatch.setattr(FilesSource, "_read", counted)
    return parsed


def test_time_range_parses_a_file_once_for_many_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference period (or a backtest) reads hundreds of windows from the same files."""
    _write_shards(tmp_path, np.random.default_rng(3))
    parsed = _count_parses(monkeypatch)
    src = _range_source(tmp_path)
    for a in T0 + np.arange(0, 600, 10):
        src.read_window(a, a + 10)
    assert sorted(parsed) == ["s0.csv", "s1.parquet", "s2.npy"]
    src.close()  # lets the parsed files go
    src.read_window(T0, T0 + 10)
    assert len(parsed) == 6


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy"])
def test_time_range_counts_repeated_rows_and_says_so_once_per_window(
    tmp_path: Path, suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A file holding its 5 rows twice was counted twice without a word. Unsorted rows
    # are read as they come; rows of equal time and other values are no repeats.
    twice = np.concatenate([ROWS, ROWS[::-1]])
    write(tmp_path / f"twice{suffix}", named(twice, ts=STAMPS + STAMPS[::-1]))
    other = ROWS + 100.0
    write(tmp_path / f"other{suffix}", named(other, ts=STAMPS))
    src = _range_source(tmp_path)
    with caplog.at_level(logging.WARNING, logger="monitor.sources.files"):
        window = src.read_window(T0 - 120, T0 + 120)
        assert len(window.X) == 15  # counted as read: the warning says so
        src.read_window(T0 - 60, T0 + 60)
    [whole, part] = [r.getMessage() for r in caplog.records]
    assert whole == (
        "files source of model 'checkout': 5 of the 15 rows timed "
        f"[{files.format_time(T0 - 120)}, {files.format_time(T0 + 120)}) repeat an earlier "
        f"row of their file exactly (time and values): twice{suffix} 5; they are counted "
        "as read"
    )
    assert ": 3 of the 9 rows timed [" in part and f"twice{suffix} 3;" in part


def test_time_range_reads_a_file_again_once_it_changed(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", named(ROWS, ts=STAMPS))
    src = _range_source(tmp_path)
    np.testing.assert_array_equal(src.read_window(T0 - 60, T0).X, ROWS[[1, 2]])
    before = path.stat()
    # Rewritten in place with the same size and its modification time put back: the
    # change time still moves, so the rows are read again.
    write(path, named(ROWS[:, ::-1], ts=STAMPS))  # the same characters in another order
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    np.testing.assert_array_equal(src.read_window(T0 - 60, T0).X, ROWS[[1, 2], ::-1])
    # Replaced by another file under the same name.
    write(tmp_path / "new.csv", named(ROWS + 2.0, ts=STAMPS)).replace(path)
    np.testing.assert_array_equal(src.read_window(T0 - 60, T0).X, ROWS[[1, 2]] + 2.0)


def test_time_range_lets_go_of_files_no_longer_listed(tmp_path: Path) -> None:
    _write_shards(tmp_path, np.random.default_rng(5))
    src = _range_source(tmp_path)
    src.read_window(T0, T0 + 600)
    held = src._parsed._bytes
    (tmp_path / "s1.parquet").unlink()  # rotated out
    src.read_window(T0, T0 + 600)
    assert src._parsed._bytes < held
    assert sorted(p.name for p in src._parsed._entries) == ["s0.csv", "s2.npy"]


def test_time_range_keeps_parsed_files_within_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_shards(tmp_path, np.random.default_rng(4))  # 200 rows a shard: 6.4 kB parsed each
    monkeypatch.setattr("monitor.sources.files.PARSED_BYTES", 14_000)
    parsed = _count_parses(monkeypatch)
    src = _range_source(tmp_path)
    whole = src.read_window(T0, T0 + 600).X
    assert len(parsed) == 3
    # Two shards fit: the least recently read one went and is parsed again.
    np.testing.assert_array_equal(src.read_window(T0, T0 + 600).X, whole)
    assert len(parsed) > 3
    assert src._parsed._bytes <= 14_000


def _write_hours(tmp_path: Path, rng: np.random.Generator, hours: int = 6) -> np.ndarray:
    """One CSV file per hour from T0, 50 rows each at increasing times."""
    parts = []
    for h in range(hours):
        stamps = T0 + 3600 * h + np.sort(rng.uniform(0, 3600, 50)).round(3)
        rows = rng.normal(size=(50, 3))
        write(tmp_path / f"h{h}.csv", named(rows, ts=stamps.tolist()))
        parts.append(np.column_stack([stamps, rows]))
    return np.concatenate(parts)


def test_time_range_past_its_budget_parses_only_the_files_a_window_reaches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files too many for the budget: a backtest's windows in order parse each file once
    for the window it starts in, not every file for every window (the spans are kept)."""
    truth = _write_hours(tmp_path, np.random.default_rng(6))
    monkeypatch.setattr("monitor.sources.files.PARSED_BYTES", 4_000)  # 1.6 kB a file
    parsed = _count_parses(monkeypatch)
    src = _range_source(tmp_path)
    src.read_window(T0, T0 + 6 * 3600)  # the first run: every file, once
    assert sorted(parsed) == [f"h{h}.csv" for h in range(6)]
    parsed.clear()
    got = [src.read_window(a, a + 900).X for a in T0 + np.arange(0, 6 * 3600, 900)]
    assert sorted(parsed) == [f"h{h}.csv" for h in range(6)]  # once each, in its hour
    np.testing.assert_array_equal(np.concatenate(got), truth[:, 1:])
    assert src._parsed._bytes <= 4_000


def test_time_range_keeps_a_span_of_a_file_too_large_for_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One file larger than the budget: a first run (its window, then the reference
    before it) and the runs after it parse it a few times, not once per window (h140: a
    570 MB file took 82 s a window), and say once that it is too large."""
    truth = _write_hours(tmp_path, np.random.default_rng(8), hours=8)
    for h in range(8):
        (tmp_path / f"h{h}.csv").unlink()
    write(tmp_path / "all.csv", named(truth[:, 1:], ts=truth[:, 0].tolist()))  # 12.9 KiB parsed
    monkeypatch.setattr("monitor.sources.files.PARSED_BYTES", 4_000)  # 121 rows: 2.4 hours
    parsed = _count_parses(monkeypatch)
    src = _range_source(tmp_path)
    hours = [T0 + 3600 * h for h in range(9)]
    with caplog.at_level(logging.WARNING, logger="monitor.sources.files"):
        first = src.read_window(hours[3], hours[4])  # a first run's window, then its reference
        before = [src.read_window(a, a + 900).X for a in np.arange(hours[0], hours[3], 900)]
        after = [src.read_window(a, a + 900).X for a in np.arange(hours[4], hours[8], 900)]
    np.testing.assert_array_equal(first.X, truth[150:200, 1:])
    np.testing.assert_array_equal(np.concatenate(before), truth[:150, 1:])
    np.testing.assert_array_equal(np.concatenate(after), truth[200:, 1:])
    assert len(parsed) == 6  # of 29 windows; a slice of 121 rows holds 2.4 hours
    assert src._parsed._bytes <= 4_000
    [warning] = [r.getMessage() for r in caplog.records]
    assert "/all.csv holds 12.9 KiB of parsed rows, more than the 3.9 KiB kept" in warning
    assert "split it into smaller files" in warning


def test_time_range_reads_a_changed_file_whatever_its_old_span(tmp_path: Path) -> None:
    _write_hours(tmp_path, np.random.default_rng(7), hours=2)
    src = _range_source(tmp_path)
    assert src.read_window(T0 + 7200, T0 + 9000).X.shape == (0, 3)
    later = T0 + 7200 + np.arange(5.0)  # h0.csv rewritten with rows of the third hour
    write(tmp_path / "h0.csv", named(ROWS, ts=later.tolist()))
    np.testing.assert_array_equal(src.read_window(T0 + 7200, T0 + 9000).X, ROWS)
    (tmp_path / "h0.csv").unlink()
    assert src.read_window(T0 + 7200, T0 + 9000).X.shape == (0, 3)
    assert sorted(p.name for p in src._parsed._spans) == ["h1.csv"]


def test_time_range_does_not_depend_on_the_row_order_in_files(tmp_path: Path) -> None:
    truth = _write_shards(tmp_path, np.random.default_rng(1))
    before = _range_source(tmp_path).read_window(T0 + 50, T0 + 450).X
    for f in tmp_path.iterdir():
        f.unlink()
    shuffled = truth[np.random.default_rng(2).permutation(truth.shape[0])]
    np.save(tmp_path / "all.npy", shuffled)
    after = _range_source(tmp_path).read_window(T0 + 50, T0 + 450).X
    np.testing.assert_array_equal(_sorted_rows(before), _sorted_rows(after))


def test_time_range_without_rows_gives_an_empty_window(tmp_path: Path) -> None:
    write(tmp_path / "w.csv", named(ROWS, ts=STAMPS))
    write(tmp_path / "empty.csv", named(ROWS[:0], ts=[]))
    src = _range_source(tmp_path)
    for _ in range(2):  # the second read skips the parsed files
        window = src.read_window(T0 + 3600, T0 + 7200)
        assert window.X.shape == (0, 3)
        assert window.label.startswith("rows timed [")
        # Files that stopped weeks ago said only "0 valid rows" (helper-111).
        assert window.label.endswith(
            "from 0 of 2 file(s) matching '*', whose newest row is at 2023-11-14T22:14:20Z"
        ), window.label


@pytest.mark.parametrize(
    ("stamps", "error", "message"),
    [
        (None, SchemaError, r"no timestamp column 'ts'"),
        (["2023-11-14", "yesterday", "x", "y", "z"], SourceError, r"line 3: timestamp 'yesterday'"),
        ([1.0, "", 3.0, 4.0, 5.0], SourceError, r"line 3: timestamp '' is neither"),
        ([1.0, "t" * 400, 3, 4, 5], SourceError, r"line 3: timestamp 't+\.\.\.t+' \(400 char"),
    ],
)
def test_time_range_timestamp_problems(
    tmp_path: Path, stamps: list[Any] | None, error: type[Exception], message: str
) -> None:
    columns = named(ROWS) if stamps is None else named(ROWS, ts=stamps)
    write(tmp_path / "w.csv", columns)
    with pytest.raises(error, match=message):
        _range_source(tmp_path).read_window(T0 - 60, T0)


# A file that does not read, whose times do: it fails the windows that hold its rows only.
BAD_AT = T0 + 3600  # its rows' times, an hour after the good file's
BAD = {
    ".csv": ("column 'rps' holds 'oops', not a number", SchemaError),
    ".parquet": ("column 'rps' has type string; expected numbers", SchemaError),
}


def _bad_file(tmp_path: Path, suffix: str) -> Path:
    stamps = [BAD_AT + i for i in range(5)]
    rps = [1.0, 2.0, "oops", 4.0, 5.0] if suffix == ".csv" else [str(i) for i in range(5)]
    columns = named(ROWS, ts=stamps) | {"rps": rps}
    return write(tmp_path / f"old{suffix}", columns)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_time_range_a_bad_file_fails_only_the_windows_its_rows_are_in(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "w.csv", named(ROWS, ts=STAMPS))
    bad = _bad_file(tmp_path, suffix)
    message, error = BAD[suffix]
    parsed = _count_parses(monkeypatch)
    src = _range_source(tmp_path)
    with caplog.at_level(logging.WARNING, logger="monitor.sources.files"):
        for _ in range(3):  # the windows of a reference period: one parse, one warning
            window = src.read_window(T0 - 60, T0)
            np.testing.assert_array_equal(window.X, ROWS[[1, 2]])
            assert "from 1 of 2 file(s)" in window.label
            assert src.read_window(BAD_AT + 5, BAD_AT + 60).X.shape == (0, 3)  # just after
    assert sorted(parsed) == sorted(["w.csv", bad.name])
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning == (
        f"files source of model 'checkout': {bad}{', line 4' if suffix == '.csv' else ''}: "
        f"{message}; its 5 row(s) are timed 2023-11-14T23:13:20Z to 2023-11-14T23:13:24Z: "
        "the windows that hold them fail, no other; it is read again once it changes"
    )
    # A window that holds any of its rows fails, as before: none is left out silently.
    for start, end in [(BAD_AT, BAD_AT + 1), (BAD_AT + 4, BAD_AT + 5), (T0 - 60, T0 + 7200)]:
        with pytest.raises(error) as info:
            src.read_window(start, end)
        assert str(info.value).startswith(f"files source of model 'checkout': {bad}")
        assert message in str(info.value)


def test_time_range_a_bad_file_without_rows_fails_no_window(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "w.csv", named(ROWS, ts=STAMPS))
    (tmp_path / "x.csv").write_text("ts,latency_ms,cpu_ratio,rps,host\n")  # a column too many
    with caplog.at_level(logging.WARNING, logger="monitor.sources.files"):
        X = _range_source(tmp_path).read_window(T0 - 86400, T0 + 86400).X
    np.testing.assert_array_equal(X, ROWS)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "/x.csv: columns do not match the model's features" in warning
    assert warning.endswith(
        "; it holds no row, so no window fails for it; it is read again once it changes"
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.csv", b"\x00\x01 not, a, csv\n\xff\xfe"),  # no header, not UTF-8
        ("no-ts.csv", b"latency_ms,cpu_ratio,rps\n1,2,3\n"),  # no timestamp column
        ("bad-ts.csv", b"ts,latency_ms,cpu_ratio,rps\nyesterday,1,2,oops\n"),
        ("cut.parquet", b"PAR1 truncated"),
        ("wide.npy", None),  # NPY columns go by position: none is known to be the time
    ],
)
def test_time_range_a_file_whose_times_do_not_read_fails_every_window(
    tmp_path: Path, name: str, content: bytes | None
) -> None:
    write(tmp_path / "w.csv", named(ROWS, ts=STAMPS))
    if content is None:
        np.save(tmp_path / name, np.column_stack([STAMPS, ROWS, ROWS]))
    else:
        (tmp_path / name).write_bytes(content)
    src = _range_source(tmp_path)
    for start in (T0 - 60, T0 + 86400 * 365):  # its rows could be in any window
        with pytest.raises((SourceError, SchemaError), match=name):
            src.read_window(start, start + 60)


# Times outside 1970..9999 (docs/sources.md): refused with parse_time's one message,
# whichever way the column was parsed: numbers in one go (CSV of numbers, a numeric or
# timestamp Parquet column, NPY), or value by value (a column that mixes in ISO text).
OUT_OF_RANGE = (
    "is out of range: times are accepted from 1970-01-01 up to, but not including, 9999-01-01 UTC"
)


@pytest.mark.parametrize(
    ("suffix", "stamps", "where"),
    [
        (".csv", [T0, 1e20, T0, T0, T0], "line 3: timestamp '1e+20' "),
        (".csv", [T0, T0, T0, -1.5, T0], "line 5: timestamp '-1.5' "),
        (".csv", ["2023-11-14", "1e20", "x", "y", "z"], "line 3: timestamp '1e20' "),
        (".parquet", [T0, T0, 1e20, T0, T0], "row 3: timestamp 1e+20 "),
        (".parquet", [T0, T0, T0, T0, -1.0], "row 5: timestamp -1.0 "),
        (".npy", [T0, 1e20, T0, T0, T0], "row 2: timestamp 1e+20 "),
        (".npy", [-86400.0, T0, T0, T0, T0], "row 1: timestamp -86400.0 "),
    ],
    ids=[
        "csv-numbers",
        "csv-before-1970",
        "csv-mixed",
        "parquet",
        "parquet-negative",
        "npy",
        "npy-before-1970",
    ],
)
def test_time_range_refuses_times_outside_1970_to_9999_in_every_format(
    tmp_path: Path, suffix: str, stamps: list[Any], where: str
) -> None:
    file = tmp_path / f"w{suffix}"
    expected = f"files source of model 'checkout': {file}, {where}{OUT_OF_RANGE}."
    assert _refused_times(tmp_path, suffix, stamps) == expected


def _refused_times(tmp_path: Path, suffix: str, stamps: list[Any]) -> str:
    """The error of reading a window of file ``w<suffix>`` timed ``stamps``."""
    if suffix == ".npy":
        np.save(tmp_path / "w.npy", np.column_stack([stamps, ROWS]))
    else:
        write(tmp_path / f"w{suffix}", named(ROWS, ts=stamps))
    with pytest.raises(SourceError) as info:
        _range_source(tmp_path).read_window(T0 - 60, T0)
    return str(info.value)


@pytest.mark.parametrize(
    ("suffix", "stamps", "where"),
    [
        (".csv", [T0 * 1e3] * 5, "line 2: timestamp '1700000000000.0' "),
        (".csv", [str(int(T0 * 1e3))] * 5, "line 2: timestamp '1700000000000' "),
        (".parquet", [int(T0 * 1e3)] * 5, "row 1: timestamp 1700000000000 "),
        (".npy", [T0 * 1e3] * 5, "row 1: timestamp 1700000000000.0 "),
    ],
    ids=["csv-numbers", "csv-text", "parquet-int", "npy"],
)
def test_time_range_says_how_epoch_milliseconds_read(
    tmp_path: Path, suffix: str, stamps: list[Any], where: str
) -> None:
    """JavaScript and Java write epoch milliseconds: the one line says what they read as."""
    assert _refused_times(tmp_path, suffix, stamps).endswith(
        f"{where}{OUT_OF_RANGE}; expected unix seconds or ISO-8601 "
        "(as milliseconds it is 2023-11-14T22:13:20Z)."
    )


DAYS = [20261206, 20261206, 20261207, 20261207, 20261208]


@pytest.mark.parametrize(
    ("suffix", "stamps", "where"),
    [
        (".csv", DAYS, "line 2"),
        (".csv", [f" {d}" for d in DAYS], "line 2"),  # as text, spaces around
        (".parquet", DAYS, "row 1"),
        (".parquet", [str(d) for d in DAYS], "row 1"),
    ],
    ids=["csv", "csv-spaced", "parquet-int", "parquet-text"],
)
def test_time_range_refuses_a_column_of_eight_digit_dates(
    tmp_path: Path, suffix: str, stamps: list[Any], where: str
) -> None:
    # 20261206 read as unix seconds is 1970-08-23: the rows fell in no window, and the
    # first run failed as too_few_rows ("its data begin later"), as the config refuses.
    assert _refused_times(tmp_path, suffix, stamps) == (
        f"files source of model 'checkout': {tmp_path / f'w{suffix}'}, {where}: the "
        "timestamp column 'ts' holds 20261206, which reads as unix seconds "
        "(1970-08-23T12:06:46Z) and as the ISO-8601 date 2026-12-06: write the times as "
        "ISO-8601 (2026-12-06), or unix seconds as 20261206.0"
    )


MAY_2 = datetime(2024, 5, 2, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_time_range_refuses_dates_alone_in_a_window_shorter_than_a_day(
    tmp_path: Path, suffix: str
) -> None:
    # h140 #5: a column of dates alone put each day's rows in the hour holding its
    # midnight, and every other hour failed as too_few_rows with nothing saying why.
    write(tmp_path / f"w{suffix}", named(ROWS, ts=["2024-05-01"] * 2 + [" 2024-05-02"] * 3))
    src = _range_source(tmp_path)
    with pytest.raises(SourceDataError) as info:  # stops a reference period at once
        src.read_window(MAY_2 - 1800, MAY_2 + 1800)
    assert str(info.value) == (
        f"files source of model 'checkout': {tmp_path / f'w{suffix}'}: the timestamp "
        "column 'ts' holds dates alone (2024-05-02, no time of day), each read as its "
        "midnight UTC: a window of 1h would get all of a day's rows at midnight and no "
        "other window any; write each row's time of day, or use a window of 1d or longer"
    )
    assert src.read_window(MAY_2 + 1800, MAY_2 + 5400).X.shape == (0, 3)  # holds none
    assert src.read_window(MAY_2, MAY_2 + 86400).X.shape == (3, 3)  # a day's window: read


def test_time_range_reads_midnights_written_with_their_time(tmp_path: Path) -> None:
    # Only dates alone: midnights written as times (a file of one minute's rows) are read.
    stamps = ["2024-05-02T00:00:00Z"] * 5
    for suffix in (".csv", ".parquet"):
        write(tmp_path / f"w{suffix}", named(ROWS, ts=stamps))
    window = _range_source(tmp_path).read_window(MAY_2, MAY_2 + 60)
    assert window.X.shape == (10, 3)


def test_time_range_reads_eight_digits_that_are_no_dates_as_seconds(tmp_path: Path) -> None:
    # 20241399 makes no date (month 13), and 20261206.0 is written as seconds: both are.
    for stamps in ([20261206, 20241399, 20241399, 20241399, 20241399], ["20261206.0"] * 5):
        write(tmp_path / "w.csv", named(ROWS, ts=stamps))
        window = _range_source(tmp_path).read_window(20_000_000, 30_000_000)
        assert window.X.shape == (5, 3)


def test_time_range_refuses_a_huge_integer_timestamp_in_one_line(tmp_path: Path) -> None:
    stamps = pa.array([T0, T0, 2**63 - 1, T0, T0], pa.int64())
    pq.write_table(pa.table({"ts": stamps, **named(ROWS)}), tmp_path / "w.parquet")
    with pytest.raises(SourceError) as info:
        _range_source(tmp_path).read_window(T0 - 60, T0)
    assert str(info.value).endswith(
        f"/w.parquet, row 3: timestamp 9223372036854775807 {OUT_OF_RANGE}."
    )


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-86400, "1969-12-31T00:00:00Z"),
        # The "no end date" of many warehouses: a date, not 253402214400.0 seconds.
        (253402214400, "9999-12-31T00:00:00Z"),
        (-62135596800, "0001-01-01T00:00:00Z"),
        # Past the calendar: no date to show, the seconds then (and no "expected unix
        # seconds" hint: the column is typed).
        (10**12, "1000000000000.0"),
    ],
    ids=["before-1970", "9999-12-31", "year-1", "past-year-9999"],
)
def test_time_range_shows_an_arrow_timestamp_out_of_range_as_a_date(
    tmp_path: Path, seconds: int, shown: str
) -> None:
    """A timestamp column holds dates: its line shows the date, not unix seconds."""
    stamps = np.array([T0, T0, T0, seconds, T0], dtype=np.int64)
    table = pa.table({"ts": pa.array(stamps, pa.timestamp("s")), **named(ROWS)})
    pq.write_table(table, tmp_path / "w.parquet")
    with pytest.raises(SourceError) as info:
        _range_source(tmp_path).read_window(T0 - 60, T0)
    assert str(info.value).endswith(f"/w.parquet, row 4: timestamp {shown} {OUT_OF_RANGE}.")


# --------------------------------------------------------------------------- read_table


def test_read_table_picks_numeric_columns_or_the_ones_asked(tmp_path: Path) -> None:
    columns = named(host=["a", "b", "c"])
    for suffix in (".csv", ".parquet"):
        path = write(tmp_path / f"t{suffix}", columns)
        table = read_table(path)
        names, X = table.names, table.X
        assert names == list(FEATURES)
        np.testing.assert_array_equal(X, VALUES)
        table = read_table(path, ["rps", "latency_ms"])
        names, X = table.names, table.X
        assert names == ["rps", "latency_ms"]
        np.testing.assert_array_equal(X, VALUES[:, [2, 0]])
    table = read_table(write(tmp_path / "t.npy", named()))
    names, X = table.names, table.X
    assert names == ["x0", "x1", "x2"]
    np.testing.assert_array_equal(X, VALUES)
    with pytest.raises(SchemaError, match=r"missing \['error_ratio'\]"):
        read_table(tmp_path / "t.csv", ["error_ratio"])


def test_a_csv_whose_first_line_is_all_numbers_is_refused_as_having_no_header(
    tmp_path: Path,
) -> None:
    # np.savetxt writes no header: the first row became the names ("-3.368e+00") and
    # was lost from the data, silently, in choose-k and in a run's windows alike.
    (tmp_path / "w.csv").write_text("-3.368e+00,6.247e+00,nan\n1,2,3\n4,5,6\n")
    os.utime(tmp_path / "w.csv", (T0 - 1, T0 - 1))
    message = (
        f"{tmp_path / 'w.csv'}, line 1: every field is a number "
        "('-3.368e+00,6.247e+00,nan'): the file seems to have no header row; a CSV needs "
        "a first line naming its columns"
    )
    with pytest.raises(SourceError) as info:
        read_table(tmp_path / "w.csv")
    assert str(info.value) == message
    with pytest.raises(SourceError) as info:
        source(tmp_path).read_window(T0 - 60, T0)
    assert str(info.value).endswith(f": {message}")
    # pandas names unnamed columns 0, 1, ...: names, not data; one name of text is enough.
    for header in ("0,1,2", "2023,x,2024"):
        (tmp_path / "w.csv").write_text(f"{header}\n1,2,3\n")
        table = read_table(tmp_path / "w.csv")
        names, X = table.names, table.X
        assert names == header.split(",") and X.shape == (1, 3)


def test_read_table_says_what_a_path_is_when_it_is_no_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.csv")  # it said "no such file" of a pipe that was there
    (tmp_path / "dir.csv").mkdir()
    for name, why in [
        ("pipe.csv", "a named pipe (FIFO), not a regular file: save the data to a file first"),
        ("dir.csv", "a directory, not a file"),
        ("gone.csv", "no such file"),
    ]:
        with pytest.raises(SourceError) as info:
            read_table(tmp_path / name)
        assert str(info.value) == f"{tmp_path / name}: {why}"


@pytest.mark.parametrize("cell", ["1_000", "\u0661\u0662"])
def test_a_csv_cell_is_a_number_only_as_files_write_one(tmp_path: Path, cell: str) -> None:
    # Python's float() read "1_000" as 1000 and Arabic-Indic "12" as 12: silently.
    (tmp_path / "t.csv").write_text(f"a,b\n1,2\n{cell},3\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=f"line 3: column 'a' holds '{cell}', not a number"):
        read_table(tmp_path / "t.csv", ["a", "b"])
    (tmp_path / "t.csv").write_text(
        f"timestamp,{','.join(FEATURES)}\n1700000000,1,2,3\n{cell}{cell},1,2,3\n",
        encoding="utf-8",
    )
    with pytest.raises(SourceError, match=r"line 3: timestamp .* is neither unix seconds"):
        source(tmp_path, window="time_range").read_window(0, 2e9)


def test_a_csv_written_with_a_byte_order_mark_reads_its_first_column(tmp_path: Path) -> None:
    # Spreadsheet exports start UTF-8 CSV with a BOM; it is not part of the first name.
    (tmp_path / "w.csv").write_bytes(b"\xef\xbb\xbflatency_ms,cpu_ratio,rps\n1,0.5,3\n")
    os.utime(tmp_path / "w.csv", (T0 - 1, T0 - 1))
    np.testing.assert_array_equal(source(tmp_path).read_window(T0 - 60, T0).X, [[1.0, 0.5, 3.0]])


def test_read_table_says_which_columns_it_leaves_out_and_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A column of numbers with one bad cell is no feature; it must not vanish unseen.
    (tmp_path / "t.csv").write_text("a,b\n1,2\nx,3\n4,5\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="monitor.sources.files"):
        table = read_table(tmp_path / "t.csv")
    assert table.names == ["b"]
    assert table.left_out == {"a": "line 3: column 'a' holds 'x', not a number"}
    assert caplog.messages == [
        f"{tmp_path / 't.csv'}: column 'a' left out, not numbers (line 3: column 'a' holds "
        "'x', not a number); --features names the columns"
    ]
    caplog.clear()
    write(tmp_path / "t.parquet", named(host=["a", "b", "c"]))
    with caplog.at_level(logging.WARNING, logger="monitor.sources.files"):
        table = read_table(tmp_path / "t.parquet")
    assert [m for m in caplog.messages if "'host' left out" in m and "(type string)" in m]
    assert list(table.left_out) == ["host"]


def test_a_csv_is_read_in_chunks_with_the_same_rows_and_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file was held whole as Python strings, 16 times its size (a 1 GB CSV, 16 GB):
    # it is read CSV_CHUNK_ROWS rows at a time now, and nothing else may change.
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(23, 3))
    stamps = (T0 - 600 + np.arange(23)).tolist()
    write(tmp_path / "w.csv", named(rows, ts=stamps))
    whole = _range_source(tmp_path).read_window(T0 - 600, T0).X
    monkeypatch.setattr(files, "CSV_CHUNK_ROWS", 5)
    np.testing.assert_array_equal(_range_source(tmp_path).read_window(T0 - 600, T0).X, whole)
    np.testing.assert_array_equal(whole, rows)
    table = read_table(tmp_path / "w.csv")
    names, X = table.names, table.X
    assert names == ["ts", *FEATURES] and X.shape == (23, 4)
    # A bad cell in a later chunk: named by its line, and choose-k leaves its column out.
    cells = rows.tolist()
    cells[17][1] = "n-a"
    write(tmp_path / "w.csv", named(np.array(cells, dtype=object), ts=stamps))
    with pytest.raises(SchemaError, match="line 19: column 'cpu_ratio' holds 'n-a'"):
        _range_source(tmp_path).read_window(T0 - 600, T0)
    table = read_table(tmp_path / "w.csv")
    names, X = table.names, table.X
    assert names == ["ts", "latency_ms", "rps"] and X.shape == (23, 3)


@pytest.mark.parametrize("cell", ["", "nan", "NA", "N/A", "n/a", "null", "NULL", "None", " NA "])
def test_the_common_spellings_of_a_missing_csv_cell_are_nan(tmp_path: Path, cell: str) -> None:
    """NA (R's write.csv) or null left a whole column out of choose-k, and failed the files
    source's window, where an empty cell or nan is one NaN (helper-145)."""
    rows = np.random.default_rng(7).normal(size=(6, 3)).astype(object)
    rows[2, 1] = cell
    write(tmp_path / "w.csv", named(rows))
    table = read_table(tmp_path / "w.csv")
    assert table.names == list(FEATURES) and table.left_out == {}
    assert np.isnan(table.X).sum() == 1 and np.isnan(table.X[2, 1])
    assert np.isnan(source(tmp_path).read_window(0.0, 4e9).X[2, 1])


@pytest.mark.parametrize("zipped", [False, True])
def test_reading_a_csv_tells_how_many_of_its_bytes_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zipped: bool
) -> None:
    """A 2 GB CSV was minutes of silence in choose-k: nothing told how far its read was."""
    rows = np.random.default_rng(6).normal(size=(5000, 3))
    path = tmp_path / "w.csv"
    np.savetxt(path, rows, delimiter=",", header=",".join(FEATURES), comments="")
    if zipped:
        path.write_bytes(gzip.compress(path.read_bytes()))
    monkeypatch.setattr(files, "CSV_CHUNK_ROWS", 1000)
    heard: list[tuple[int, int]] = []
    X = read_table(path, progress=lambda done, total: heard.append((done, total))).X
    np.testing.assert_allclose(X, rows, rtol=1e-15)
    size = path.stat().st_size
    assert len(heard) == 5 and {total for _, total in heard} == {size}
    done = [d for d, _ in heard]
    assert done == sorted(done) and 0 < done[0] < size and done[-1] == size


def test_a_large_csv_takes_about_the_memory_of_its_arrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = np.random.default_rng(5).normal(size=(100_000, 3))
    np.savetxt(tmp_path / "w.csv", rows, delimiter=",", header=",".join(FEATURES), comments="")
    monkeypatch.setattr(files, "CSV_CHUNK_ROWS", 2000)
    tracemalloc.start()
    try:
        X = source(tmp_path).read_window(0.0, 4e9).X
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(X, rows, rtol=1e-15)
    # Held whole as text the rows took about 12 times their array's bytes; in chunks,
    # the chunks' arrays, their concatenation and one chunk of text.
    assert peak < 4 * X.nbytes, peak / X.nbytes


def test_a_byte_that_is_not_utf8_is_named_by_its_line(tmp_path: Path) -> None:
    # The decoder's position within its read-ahead buffer was given ("position 867").
    lines = ["latency_ms,cpu_ratio,rps"] + [f"{i},0.5,{i}" for i in range(5000)]
    data = "\n".join(lines).encode()
    at = data.index(b"\n3999,") + 1  # the start of line 4001
    (tmp_path / "w.csv").write_bytes(data[:at] + b"\xff" + data[at:])
    with pytest.raises(SourceError) as info:
        source(tmp_path).read_window(0.0, 4e9)
    assert str(info.value).endswith(
        f"unreadable CSV file: line 4001 (byte {at}) is not UTF-8 text: invalid start byte"
    )


def _gzip(path: Path, data: bytes) -> Path:
    with gzip.open(path, "wb") as fh:
        fh.write(data)
    return path


@pytest.mark.parametrize(
    ("name", "options"),
    [("w.csv.gz", {}), ("w.csv.gz", {"pattern": "*.csv.gz"}), ("w.gz", {"format": "csv"})],
)
def test_a_gzip_compressed_csv_is_read(tmp_path: Path, name: str, options: dict) -> None:
    # It was left out as of unknown extension ("no file matching '*.csv.gz' ... was
    # modified before"), and with format: csv read as text ("line 1 is not UTF-8 text").
    lines = ["latency_ms,cpu_ratio,rps"] + [",".join(map(repr, r)) for r in VALUES.tolist()]
    _gzip(tmp_path / name, ("\n".join(lines) + "\n").encode())
    os.utime(tmp_path / name, (T0 - 1, T0 - 1))
    np.testing.assert_array_equal(source(tmp_path, **options).read_window(T0 - 60, T0).X, VALUES)
    if name.endswith(".csv.gz"):
        table = read_table(tmp_path / name)
        names, X = table.names, table.X
        assert names == list(FEATURES)
        np.testing.assert_array_equal(X, VALUES)


def test_a_gzip_compressed_csv_that_is_truncated_or_not_utf8_says_so(tmp_path: Path) -> None:
    data = b"latency_ms,cpu_ratio,rps\n" + b"1,0.5,2\n" * 5000
    whole = _gzip(tmp_path / "w.csv.gz", data).read_bytes()
    (tmp_path / "w.csv.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceError, match="unreadable gzip-compressed CSV file: Compressed file"):
        source(tmp_path).read_window(0.0, 4e9)
    at = data.index(b"\n", 100) + 1  # the start of a line of the unzipped text
    _gzip(tmp_path / "w.csv.gz", data[:at] + b"\xff" + data[at:])
    line = data[:at].count(b"\n") + 1
    with pytest.raises(SourceError, match=rf"line {line} \(byte {at}\) is not UTF-8 text"):
        source(tmp_path).read_window(0.0, 4e9)


@pytest.mark.parametrize("window", ["file", "time_range"])
def test_a_csv_separated_by_semicolons_says_so(tmp_path: Path, window: str) -> None:
    # In time_range mode the missing timestamp column was said first, without the hint.
    (tmp_path / "w.csv").write_text("ts;latency_ms;cpu_ratio;rps\n1;1;0.5;3\n")
    src = source(tmp_path, window=window, timestamp_column="ts", ignore_extra=True)
    with pytest.raises(SchemaError, match="looks separated by semicolons: a CSV file here is"):
        src.read_window(0.0, 4e9)
    # Decimal commas, as Excel writes them beside semicolons: not "truncated" (h140).
    (tmp_path / "w.csv").write_text("ts;latency_ms;cpu_ratio;rps\n1;1,5;0,5;3\n")
    src = source(tmp_path, window=window, timestamp_column="ts", ignore_extra=True)
    with pytest.raises(SchemaError, match="looks separated by semicolons: a CSV file here is"):
        src.read_window(0.0, 4e9)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_table_separated_by_another_character_with_dot_decimals_says_so(
    tmp_path: Path, sep: str
) -> None:
    """With '.' decimals every row is one field, as the header: choose-k left the one
    column out and said 'no numeric column', without the decimal-comma case's hint."""
    path = tmp_path / "w.csv"
    path.write_text(f"a{sep}b{sep}c\n1.5{sep}2.5{sep}3\n4.5{sep}5.5{sep}6\n")
    name = "separated by semicolons" if sep == ";" else "separated by tabs"
    with pytest.raises(SchemaError, match=f"which holds no numbers. The header looks {name}"):
        read_table(path)


def test_time_range_warns_of_rows_two_files_hold_both(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A file copied under a second name doubled its rows in every window, unsaid. Rows of
    # the same time with other values (one file per host) are no copy: not reported.
    write(tmp_path / "a.csv", named(VALUES, ts=[T0 - 30, T0 - 20, T0 - 10]), mtime=T0 - 5)
    write(tmp_path / "b.csv", named(VALUES, ts=[T0 - 50, T0 - 20, T0 - 10]), mtime=T0 - 5)
    write(tmp_path / "c.csv", named(VALUES + 1, ts=[T0 - 30, T0 - 20, T0 - 10]), mtime=T0 - 5)
    with caplog.at_level(logging.WARNING, logger="monitor.sources.files"):
        window = _range_source(tmp_path).read_window(T0 - 60, T0)
    assert window.X.shape == (9, 3)  # every row kept
    assert caplog.messages == [
        "files source of model 'checkout': 2 row(s) timed [2023-11-14T22:12:20Z, "
        "2023-11-14T22:13:20Z) repeat a row of another file exactly (time and values), "
        "first a.csv and b.csv; every row is kept (a file copied under a second name "
        "counts twice)"
    ]


def test_rows_shared_across_files_are_counted_once_per_repeat() -> None:
    row, other = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    files = [
        ("a.csv", np.array([row, other])),
        ("b.csv", np.array([other])),
        ("c.csv", np.array([row, row])),  # its own repeat counts too: a row of a.csv
    ]
    assert _shared_rows(files) == (3, ("a.csv", "b.csv"))
    assert _shared_rows([("a.csv", np.array([row])), ("b.csv", np.array([other]))])[0] == 0
    # Files that hold no row of the window: nothing to count, no error.
    assert _shared_rows([("a.csv", np.empty((0, 3))), ("b.csv", np.empty((0, 3)))])[0] == 0


def test_local_times_without_offset_have_no_rows_in_the_spring_changes_skipped_hour(
    tmp_path: Path,
) -> None:
    # docs/sources.md, on keeping timezone: UTC for local times written without an
    # offset: New York's clocks skip 02:00-03:00 on 2026-03-08, so read as UTC that hour
    # holds no row and its run fails too_few_rows (t13 F3); the hours around it hold theirs.
    local = [f"2026-03-08T{h:02d}:{m:02d}:00" for h in (1, 3) for m in (0, 20, 40)]
    write(tmp_path / "ny.csv", named(np.arange(18.0).reshape(6, 3), ts=local[:6]))
    src = _range_source(tmp_path)
    hour = datetime(2026, 3, 8, 2, tzinfo=UTC).timestamp()
    assert src.read_window(hour - 3600, hour).X.shape == (3, 3)
    window = src.read_window(hour, hour + 3600)
    assert window.X.shape == (0, 3)
    assert window.label.startswith("rows timed [2026-03-08T02:00:00Z, 2026-03-08T03:00:00Z)")
    assert "from 0 of 1 file(s)" in window.label, window.label
    assert src.read_window(hour + 3600, hour + 7200).X.shape == (3, 3)
