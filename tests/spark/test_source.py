"""The spark source (Parquet, CSV, a table) and a model with engine: spark from the CLI."""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.engines.spark import error_line, read_rows
from monitor.errors import SchemaError, SourceDataError, SourceError
from monitor.records import Window
from monitor.sources import SOURCES
from monitor.sources.spark import SparkSourceOptions, build
from tests.fakes import blobs
from tests.services import Services

FEATURES = ("a", "b", "c")
CENTERS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])


def write_parquet(directory: Path, name: str, times: np.ndarray, X: np.ndarray) -> None:
    """Rows with a timestamp column (microseconds, UTC) as Spark writes them."""
    directory.mkdir(parents=True, exist_ok=True)
    columns: dict[str, Any] = {
        "ts": pa.array((times * 1e6).astype(np.int64), type=pa.timestamp("us", tz="UTC"))
    }
    columns |= {f: X[:, j] for j, f in enumerate(FEATURES)}
    columns["host"] = pa.array(["h1"] * len(times))  # an extra column is not read
    pq.write_table(pa.table(columns), directory / name)


LOCAL = '{master: "local[2]", conf: {spark.ui.enabled: false, spark.driver.memory: 1g}}'


def write_config(
    tmp_path: Path,
    *,
    window: str,
    interval: str,
    thresholds: str,
    spark: str = LOCAL,
    source: str | None = None,
) -> Path:
    """One model, orders, with engine: spark (on local[2]) reading the Parquet of ``data``
    (or ``source``)."""
    source = source or f"{{kind: spark, path: {tmp_path / 'data'}, time_column: ts}}"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
daemon: {{state_dir: {tmp_path / "state"}}}
models:
  - name: orders
    features: [a, b, c]
    k: 3
    window: {window}
    reference: {{window: 10m}}
    schedule: {{interval: {interval}}}
    engine: spark
    spark: {spark}
    training: {{n_init: 2, silhouette_sample: 1000, candidate_restarts: 0}}
    thresholds: {thresholds}
    source: {source}
"""
    )
    return config


def rows(window: Window) -> np.ndarray:
    """The window's rows, collected from Spark."""
    assert window.remote is not None
    return window.remote.collect()


def test_a_window_is_the_rows_of_its_time_range_across_files(spark: Any, tmp_path: Path) -> None:
    X = blobs(400, CENTERS, seed=1)
    times = 1_000_000.0 + np.arange(400) * 3.0  # one row every 3 s
    write_parquet(tmp_path / "d", "part-0.parquet", times[:250], X[:250])
    write_parquet(tmp_path / "d", "part-1.parquet", times[250:], X[250:])
    source = build("m", FEATURES, SparkSourceOptions(path=str(tmp_path / "d"), time_column="ts"))
    window = source.read_window(1_000_300.0, 1_000_900.0)  # rows 100..299, end excluded
    # The rows stay in Spark until the pipeline reads them there (or collects them).
    assert window.X.shape == (0, 3) and window.remote is not None
    read = window.remote.collect()
    got = read[np.lexsort(read.T[::-1])]
    want = X[100:300][np.lexsort(X[100:300].T[::-1])]
    np.testing.assert_array_equal(got, want)
    assert window.features == FEATURES and (window.start, window.end) == (1_000_300.0, 1_000_900.0)


def test_a_feature_column_of_text_is_a_schema_error_as_in_the_files_source(
    spark: Any, tmp_path: Path
) -> None:
    # Cast to double, text of numbers passed unnoticed and other text failed in a job as
    # source_unavailable, its column's name cut off; the files source says `schema`.
    times = 1_000_000.0 + np.arange(3) * 10.0
    write_parquet(tmp_path / "d", "part-0.parquet", times, np.ones((3, 3)))
    table = pq.read_table(tmp_path / "d" / "part-0.parquet")
    text = pa.array(["0.301", "low", "0.2"])
    pq.write_table(table.set_column(2, "b", text), tmp_path / "d" / "part-0.parquet")
    source = build("m", FEATURES, SparkSourceOptions(path=str(tmp_path / "d"), time_column="ts"))
    with pytest.raises(SchemaError) as caught:
        source.read_window(1_000_000.0, 1_000_100.0)
    assert str(caught.value) == (
        f"model 'm', spark source {tmp_path / 'd'}: column 'b' has type string; expected numbers."
    )


def test_csv_with_unix_seconds_and_a_table(spark: Any, tmp_path: Path) -> None:
    X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    lines = ["t,a,b,c"] + [f"{10 * i},{r[0]},{r[1]},{r[2]}" for i, r in enumerate(X)]
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    csv = build("m", FEATURES, SparkSourceOptions(path=str(tmp_path / "w.csv"), format="csv"))
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['timestamp'\]"):
        csv.read_window(0.0, 100.0)
    csv = build(
        "m",
        FEATURES,
        SparkSourceOptions(path=str(tmp_path / "w.csv"), format="csv", time_column="t"),
    )
    np.testing.assert_array_equal(rows(csv.read_window(5.0, 25.0)), X[1:3])
    frame = (
        spark.read.option("header", "true")
        .option("inferSchema", "true")
        .csv(str(tmp_path / "w.csv"))
    )
    frame.createOrReplaceTempView("telemetry")
    table = build("m", FEATURES, SparkSourceOptions(table="telemetry", time_column="t"))
    np.testing.assert_array_equal(rows(table.read_window(0.0, 10.0)), X[:1])


NAIVE_TIMES = """
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.config import SparkSettings
from monitor.engines import spark
from monitor.sources.spark import SparkSourceOptions, build

d = Path(sys.argv[1])
(d / "csv").mkdir()
(d / "pq").mkdir()
times = np.datetime64("2024-01-01T00:00:00", "us") + np.arange(24) * np.timedelta64(1, "h")
lines = ["ts,f1"] + [f"{str(t)[:19]},{h}.0" for h, t in enumerate(times)]  # no offset
(d / "csv" / "w.csv").write_text("\\n".join(lines) + "\\n")
naive = pa.array(times, type=pa.timestamp("us"))  # no zone
pq.write_table(pa.table({"ts": naive, "f1": np.arange(24.0)}), d / "pq" / "w.parquet")
start = 1704067200.0 + 3 * 3600  # 2024-01-01T03:00:00Z
for fmt, sub in (("csv", "csv"), ("parquet", "pq")):
    options = SparkSourceOptions(path=str(d / sub), format=fmt, time_column="ts")
    window = build("m", ("f1",), options).read_window(start, start + 3600)
    print(fmt, window.remote.collect()[:, 0].tolist())
zone = (("spark.sql.session.timeZone", "Europe/Paris"),)
print("conf", spark.session(SparkSettings(conf=zone)).conf.get("spark.sql.session.timeZone"))
"""


def test_naive_times_are_utc_whatever_the_hosts_time_zone(tmp_path: Path) -> None:
    # Its own process, on a host in New York: Spark reads naive times in its session's
    # zone, the host's by default, and the window [03:00, 04:00) UTC read nothing (its row
    # came in [07:00, 08:00)); the files source reads them as UTC.
    env = {**os.environ, "TZ": "America/New_York"}
    argv = [sys.executable, "-c", NAIVE_TIMES, str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert printed[:2] == ["csv [3.0]", "parquet [3.0]"], done.stdout
    # A zone set in a model's spark.conf is the user's choice, and stands.
    assert printed[2] == "conf Europe/Paris", done.stdout


OUT_OF_RANGE = (
    "is out of range: times are accepted from 1970-01-01 up to, but not including, 9999-01-01 UTC"
)
MILLISECONDS = (
    f"timestamp 1700000000000 {OUT_OF_RANGE}; expected seconds "
    "since the epoch or a timestamp type (as milliseconds it is 2023-11-14T22:13:20Z)."
)


def write_epoch(path: Path, fmt: str, times: np.ndarray, X: np.ndarray) -> None:
    """Rows with a time column ``ts`` of integers (``times`` as they are), CSV or Parquet."""
    if fmt == "parquet":
        pq.write_table(
            pa.table({"ts": times, **{f: X[:, j] for j, f in enumerate(FEATURES)}}), path
        )
    else:
        lines = ["ts,a,b,c"] + [f"{t},{r[0]},{r[1]},{r[2]}" for t, r in zip(times, X, strict=True)]
        path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("fmt", "per_second", "why"),
    [
        ("parquet", 1000, MILLISECONDS),
        ("csv", 1000, MILLISECONDS),
        (
            "parquet",
            1e9,  # as pandas writes int64 nanoseconds
            f"timestamp 1700000000000000000 {OUT_OF_RANGE}; "
            "expected seconds since the epoch or a timestamp type "
            "(as nanoseconds it is 2023-11-14T22:13:20Z).",
        ),
    ],
    ids=["parquet-ms", "csv-ms", "parquet-ns"],
)
def test_epoch_times_in_a_finer_unit_fail_the_window_in_one_line_not_as_no_rows(
    spark: Any, tmp_path: Path, fmt: str, per_second: float, why: str
) -> None:
    # Read as unix seconds, epoch milliseconds are in the year 55,000: every window was
    # silently empty and runs failed as too_few_rows, where the files source says why.
    times = 1_700_000_000.0 + np.arange(300) * 1.0
    path = tmp_path / f"w.{fmt}"
    write_epoch(path, fmt, (times * per_second).astype(np.int64), blobs(300, CENTERS, seed=4))
    options = SparkSourceOptions(path=str(path), format=fmt, time_column="ts")
    source = build("m", FEATURES, options)
    # The read itself, as its time column is looked at first; and the first pass on a
    # window read without that look (the spark engine's counting pass, or the collect
    # of any other engine).
    for first_pass in ("read", "summarise", "collect"):
        with pytest.raises(SourceError) as info:
            if first_pass == "read":
                source.read_window(times[0], times[-1] + 1.0)
            else:
                remote = spark_rows(spark, options, times[0], times[-1] + 1.0)
                remote.summarise(len) if first_pass == "summarise" else remote.collect()
        assert str(info.value) == f"model 'm', spark source {path}, time column 'ts': {why}"


def spark_rows(spark: Any, options: SparkSourceOptions, start: float, end: float) -> Any:
    """A window's rows as the spark source reads them once its time column was found in
    seconds (``check_times`` off)."""
    return read_rows(
        spark,
        path=options.path,
        table=None,
        fmt=options.format,
        time_column=options.time_column,
        features=FEATURES,
        start=start,
        end=end,
        where=f"model 'm', spark source {options.path}",
    )


@pytest.mark.parametrize(
    ("times", "held"),
    [
        (pa.array((1_700_000_000 + np.arange(300)) * 1000), MILLISECONDS),
        (pa.array(np.full(300, np.nan)), "holds no time, every value is null or NaN"),
        (pa.array([None] * 300, type=pa.timestamp("us", tz="UTC")), "holds no time, every "),
    ],
    ids=["milliseconds", "nan", "null-timestamps"],
)
def test_a_time_column_that_holds_no_unix_seconds_fails_the_read_not_each_windows_pass(
    spark: Any, tmp_path: Path, times: Any, held: str
) -> None:
    # Each window read, filtered and found empty before the run said why: a day's
    # reference took 160 s to fail on milliseconds, and as long on NaN.
    X = blobs(300, CENTERS, seed=4)
    path = tmp_path / "w.parquet"
    pq.write_table(pa.table({"ts": times, **{f: X[:, j] for j, f in enumerate(FEATURES)}}), path)
    source = build("m", FEATURES, SparkSourceOptions(path=str(path), time_column="ts"))
    with pytest.raises(SourceDataError) as info:
        source.read_window(1.0, 2.0)
    assert str(info.value).startswith(f"model 'm', spark source {path}, time column 'ts': ")
    assert held in str(info.value) and "\n" not in str(info.value)


def test_a_window_without_rows_of_seconds_or_timestamps_is_empty_not_an_error(
    spark: Any, tmp_path: Path
) -> None:
    times = 1_700_000_000.0 + np.arange(300) * 1.0
    X = blobs(300, CENTERS, seed=5)
    write_epoch(tmp_path / "seconds.parquet", "parquet", times.astype(np.int64), X)
    write_parquet(tmp_path / "timestamps", "part-0.parquet", times, X)
    for where in ("seconds.parquet", "timestamps"):
        source = build(
            "m", FEATURES, SparkSourceOptions(path=str(tmp_path / where), time_column="ts")
        )
        assert rows(source.read_window(1.0, 2.0)).shape == (0, 3)
        remote = source.read_window(1.0, 2.0).remote
        assert remote is not None and remote.summarise(len) == []
        np.testing.assert_array_equal(rows(source.read_window(times[0], times[10])), X[:10])


def test_a_run_on_epoch_milliseconds_fails_as_source_unavailable_saying_why(
    spark: Any, tmp_path: Path
) -> None:
    now = time.time()
    times = now - 1200 + np.arange(1800) * 1.0
    write_epoch(
        tmp_path / "w.parquet",
        "parquet",
        (times * 1000).astype(np.int64),
        blobs(1800, CENTERS, seed=6),
    )
    config = tmp_path / "config.yaml"
    # A one-window reference: a day's would check each of its 144 empty windows (a minute).
    model = (
        "{name: m, features: [a, b, c], k: 3, window: 10m, schedule: {interval: 10m}, "
        "reference: {window: 10m}"
    )
    source_yaml = f"{{kind: spark, path: '{tmp_path / 'w.parquet'}', time_column: ts}}"
    config.write_text(
        f"daemon: {{state_dir: {tmp_path / 'state'}}}\n"
        f"models:\n  - {model}, source: {source_yaml}}}\n"
    )
    result = CliRunner().invoke(main, ["evaluate", "--config", str(config), "--dry-run"])
    assert result.exit_code == 1, result.output
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert "FAILED (source_unavailable): model 'm', spark source " in failed, result.stdout
    assert ", time column 'ts': timestamp 1" in failed and "as milliseconds it is" in failed
    assert "Traceback" not in result.output


def test_an_unreadable_path_is_a_source_error_in_one_line(spark: Any, tmp_path: Path) -> None:
    source = build("m", FEATURES, SparkSourceOptions(path=str(tmp_path / "nothing")))
    with pytest.raises(SourceError) as info:
        source.read_window(0.0, 1.0)
    assert "spark source" in str(info.value) and "\n" not in str(info.value)


def test_a_filesystem_spark_lacks_fails_the_run_in_one_line_with_its_reason(
    spark: Any, tmp_path: Path
) -> None:
    # An error pyspark does not convert (a Py4JJavaError: s3a:// without hadoop-aws) was
    # "FAILED (internal)" with 180 lines of Java stack trace as the run's message.
    source = build("m", FEATURES, SparkSourceOptions(path="nosuchfs://bucket/t/"))
    with pytest.raises(SourceError) as info:
        source.read_window(0.0, 1.0)
    assert str(info.value) == (
        "model 'm', spark source nosuchfs://bucket/t/: Spark cannot read it: "
        'org.apache.hadoop.fs.UnsupportedFileSystemException: No FileSystem for scheme "nosuchfs"'
    )
    config = tmp_path / "config.yaml"
    model = "{name: m, features: [a, b, c], k: 3, window: 10m, schedule: {interval: 10m}"
    source_yaml = "{kind: spark, path: 'nosuchfs://bucket/t/', time_column: ts}"
    config.write_text(
        f"daemon: {{state_dir: {tmp_path / 'state'}}}\n"
        f"models:\n  - {model}, source: {source_yaml}}}\n"
    )
    result = CliRunner().invoke(main, ["evaluate", "--config", str(config), "--dry-run"])
    assert result.exit_code == 1
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert failed.endswith("FAILED (source_unavailable): " + str(info.value)), result.stdout
    assert len(result.stdout.splitlines()) == 3 and "Traceback" not in result.stderr


def write_mixed_types(directory: Path) -> Path:
    """Two hours of rows, the second file's feature ``b`` text: a file whose type differs
    from the schema Spark takes from the first. The second file's path."""
    X = blobs(40, CENTERS, seed=5)
    times = 1_000_000.0 + np.arange(40) * 3.0
    write_parquet(directory / "hour=1", "part-0.parquet", times[:20], X[:20])
    odd = directory / "hour=2" / "part-0.parquet"
    write_parquet(odd.parent, odd.name, times[20:], X[20:])
    table = pq.read_table(odd)
    pq.write_table(table.set_column(2, "b", pa.array([str(v) for v in X[20:, 1]])), odd)
    return odd


def test_a_column_whose_type_differs_in_one_file_fails_in_one_line_naming_it_and_the_file(
    spark: Any, tmp_path: Path
) -> None:
    # The line cut out its middle, where Spark names the column and the types:
    # "'Encountered error while reading file file:///d/hour=17965836...arquet type
    # BINARY.' (207 characters)"; read through Arrow (engine: local) it said only
    # "org.apache.spark.SparkException: Exception thrown in awaitResult:".
    odd = write_mixed_types(tmp_path / "d")
    source = build("m", FEATURES, SparkSourceOptions(path=str(tmp_path / "d"), time_column="ts"))
    window = source.read_window(1_000_000.0, 1_000_200.0)
    assert window.remote is not None
    for read in (window.remote.collect, functools.partial(window.remote.summarise, len)):
        with pytest.raises(SourceError) as info:
            read()
        assert str(info.value) == (
            f"model 'm', spark source {tmp_path / 'd'}: Spark cannot read it: file://{odd}: "
            "Data type mismatches when reading Parquet column [b]. Expected Spark type double, "
            "actual Parquet type BINARY."
        )


def test_an_unreadable_window_fails_in_one_line_and_spark_logs_no_warning_or_stack_trace(
    tmp_path: Path,
) -> None:
    # Its own process, as a user runs it: Spark's WARN for the missing directory came with
    # a Java stack trace (about 100 lines on stderr) and shows the path as given; a file
    # of another column type failed a task, which Spark's executor logged at ERROR with
    # its stack trace (58 lines), then its scheduler ("aborting job").
    missing = tmp_path / "nothing"
    write_mixed_types(tmp_path / "mixed")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"daemon: {{state_dir: {tmp_path / 'state'}}}\nmodels:\n  - {{name: m, features: [a], "
        f"k: 2, window: 10m, schedule: {{interval: 10m}}, "
        f"source: {{kind: spark, path: '{missing}', time_column: ts}}}}\n"
        f"  - {{name: n, features: [a, b, c], k: 2, window: 1m, schedule: {{interval: 1m}}, "
        "reference: {from: 1000000, to: 1000120}, "
        f"source: {{kind: spark, path: '{tmp_path / 'mixed'}', time_column: ts}}}}\n"
    )
    argv = [sys.executable, "-m", "monitor", "evaluate", "--config", str(config), "--dry-run"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    [failed, mixed] = [line for line in done.stdout.splitlines() if "FAILED" in line]
    assert "Parquet column [b]. Expected Spark type double" in mixed, done.stdout
    # Spark's line names the path again: beyond 120 characters its error class and SQL
    # state are left out, then its middle.
    where = f"m          FAILED (source_unavailable): model 'm', spark source {missing}: "
    assert where + "Spark cannot read it: " in failed
    assert "Path does not exist: file:" in failed and "SQLSTATE" not in failed
    # Spark's start-up lines (a loopback hostname, no native Hadoop) come before its level.
    assert "FileStreamSink" not in done.stderr and "\tat " not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Exception" not in done.stderr, done.stderr


def test_a_spark_error_is_the_line_that_says_why_bounded() -> None:
    java = "An error occurred while calling o1.load.\n: java.io.IOException: " + "x" * 500
    line = error_line(RuntimeError(java + "\n\tat org.apache.hadoop.fs.FileSystem.get(F.java:1)"))
    assert line.startswith("'java.io.IOException: xxx") and line.endswith("(521 characters)")
    assert len(line) < 150 and "\n" not in line
    assert error_line(RuntimeError("[PATH_NOT_FOUND] Path does not exist.\n\nJVM stack")) == (
        "[PATH_NOT_FOUND] Path does not exist."
    )
    assert error_line(RuntimeError("")) == "RuntimeError"


def test_a_long_spark_error_of_an_error_class_keeps_the_words_that_name_what_is_wrong() -> None:
    # The middle left out was the property's name and value:
    # "'org.apache.spark.SparkIllegalArgumentException: [INVALID_CONF_VALUE.TYPE_MISMAT...
    # ue. SQLSTATE: 22022' (192 characters)".
    java = (
        "org.apache.spark.SparkIllegalArgumentException: [INVALID_CONF_VALUE.TYPE_MISMATCH] "
        "The value 'notaport' in the config \"spark.ui.port\" is invalid. It should be a/an "
        "'int' value. SQLSTATE: 22022"
    )
    assert error_line(RuntimeError(java + "\n\tat org.apache.spark.SparkConf.get(S.scala:1)")) == (
        "The value 'notaport' in the config \"spark.ui.port\" is invalid. "
        "It should be a/an 'int' value."
    )


def test_a_directory_without_files_yet_is_no_data_not_a_schema_to_specify() -> None:
    from pyspark.errors import AnalysisException

    from monitor.engines.spark import _read_errors
    from monitor.errors import NoDataError

    spark_says = (
        "[UNABLE_TO_INFER_SCHEMA] Unable to infer schema for Parquet. It must be specified "
        "manually."
    )
    with pytest.raises(NoDataError) as caught, _read_errors("spark source /data/new"):
        raise AnalysisException(message=spark_says)
    assert str(caught.value) == (
        "spark source /data/new: holds no file Spark can read yet (UNABLE_TO_INFER_SCHEMA)"
    )


def test_options_are_checked_when_the_config_is_parsed() -> None:
    kind = SOURCES["spark"]
    _, problems = kind.parse_options({"format": "orc", "time_column": "a"}, FEATURES)
    text = " / ".join(p.config() for p in problems)
    assert "path: must be set, or table, but not both" in text
    assert "format: must be one of" in text
    assert "time_column: must be a column that is not one of the features" in text
    options, problems = kind.parse_options({"path": "s3a://bucket/t/", "time_column": "ts"}, None)
    assert problems == [] and options == SparkSourceOptions(
        path="s3a://bucket/t/", time_column="ts"
    )


def test_credentials_in_a_path_are_refused_as_spark_would_log_them() -> None:
    # Spark's own WARN line showed the secret of s3a://AKIA:supersecret@b/p/ on stderr.
    kind = SOURCES["spark"]
    for path in ("s3a://AKIA:supersecret@b/p/", "s3a://supersecret@b/p/"):
        _, problems = kind.parse_options({"path": path, "time_column": "ts"}, FEATURES)
        [text] = [p.config("models[m].source") for p in problems]
        assert text.startswith("models[m].source.path: must be a path without credentials")
        assert "spark.hadoop.fs.s3a.secret.key" in text and text.endswith("got 's3a://***@b/p/'")
        assert "supersecret" not in text and "\n" not in text
    options, problems = kind.parse_options({"path": "s3a://b/p@2024/", "time_column": "ts"})
    assert problems == [] and options is not None


def test_evaluate_once_with_engine_spark_reads_parquet_and_records_the_runs(
    spark: Any, tmp_path: Path
) -> None:
    now = time.time()
    # One row a second from 20 minutes ago to 10 minutes ahead: every run's window is full.
    times = now - 1200 + np.arange(1800) * 1.0
    X = blobs(1800, CENTERS, seed=2)
    write_parquet(tmp_path / "data", "part-0.parquet", times, X)
    config = write_config(
        tmp_path, window="10m", interval="10m", thresholds="{mode: fixed, calibration_refits: 0}"
    )
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(main, ["evaluate", "--config", str(config), "--json"])
        assert result.exit_code == 0, result.output
    [run] = json.loads(result.stdout)
    assert run["model"] == "orders" and run["live_version"] == 1
    assert run["n_rows"] in (600, 601)  # the last ten minutes' rows
    assert run["slis"]["label_psi"] < 0.1  # a steady window
    listing = runner.invoke(
        main, ["snapshots", "list", "orders", "--state-dir", str(tmp_path / "state")]
    )
    assert listing.exit_code == 0 and "live" in listing.output
    history = runner.invoke(
        main, ["history", "orders", "--state-dir", str(tmp_path / "state"), "--json"]
    )
    assert history.exit_code == 0 and len(json.loads(history.stdout)["runs"]) == 2
    # A retrain by hand trains on the cluster as well, and waits for approval.
    retrained = runner.invoke(main, ["snapshots", "retrain", "orders", "--config", str(config)])
    assert retrained.exit_code == 0, retrained.output
    listing = runner.invoke(
        main, ["snapshots", "list", "orders", "--state-dir", str(tmp_path / "state")]
    )
    assert "pending" in listing.output
    assert spark.sparkContext._jsc is not None  # the CLI left the shared session running


def test_a_backtest_runs_an_engine_spark_model_on_its_spark_settings(tmp_path: Path) -> None:
    """The backtest replayed every run in this process whatever the model's engine, and a
    spark source on Spark's defaults (master local[*], no ``spark.conf``): its thresholds
    were not the daemon's. Its master here refuses connections, which fails every run as
    engine_unavailable before any JVM starts (a subprocess: no shared session)."""
    (tmp_path / "data").mkdir()
    times = 1_700_000_000 + np.arange(1800) * 2.0  # an hour, one row every 2 s
    rows = np.column_stack([times, blobs(1800, CENTERS, seed=3)])
    np.savetxt(tmp_path / "data" / "w.csv", rows, delimiter=",", header="ts,a,b,c", comments="")
    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    files = f'{{kind: files, path: {tmp_path / "data"}, pattern: "*.csv", window: time_range, '
    config = write_config(
        tmp_path,
        window="10m",
        interval="10m",
        thresholds="{mode: calibrated}",
        spark=f'{{master: "spark://127.0.0.1:{port}"}}',
        source=files + "timestamp_column: ts}",
    )
    args = ["--from", "1700000000", "--to", "1700003600", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "backtest", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr  # every run failed
    [replay] = json.loads(done.stdout)
    assert {w["reason"] for w in replay["windows"]} == {"engine_unavailable"}
    assert (
        f"the Spark master 'spark://127.0.0.1:{port}' does not answer"
        in (replay["windows"][0]["message"])
    )


def _metric(text: str, name: str, model: str) -> float | None:
    """The value of ``name{model="..."...}`` in an exposition, or None."""
    found = re.search(rf'^{name}{{[^}}]*model="{model}"[^}}]*}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def test_the_daemon_runs_a_spark_model_from_kmeans_monitor_run(
    spark: Any, services: Services, tmp_path: Path
) -> None:
    # The daemon as a user starts it: its own process and its own Spark session.
    now = time.time()
    times = now - 1200 + np.arange(2400) * 1.0  # a row a second, 20 min back to 20 min on
    write_parquet(tmp_path / "data", "part-0.parquet", times, blobs(2400, CENTERS, seed=3))
    config = write_config(tmp_path, window="5m", interval="20s", thresholds="{mode: fixed}")
    daemon = services.kmeans_monitor("run", "--config", str(config), ready_path="/metrics")
    deadline = time.monotonic() + 240  # a JVM's start and a reference under CI's load
    text = ""
    while time.monotonic() < deadline:
        text = daemon.request("/metrics")[1].decode()
        done = _metric(text, "kmeans_last_success_timestamp_seconds", "orders") or 0.0
        if done > 0 and (_metric(text, "kmeans_runs_total", "orders") or 0) >= 1:
            break
        assert daemon.alive(), daemon.log_tail()
        time.sleep(1.0)
    else:
        raise daemon.fail("ran no successful run of the spark model in 240 s")
    assert 'kmeans_model_engine_info{engine="spark",model="orders"} 1.0' in text
    assert _metric(text, "kmeans_slis_stale", "orders") == 0.0, text
    model = daemon.get_json("/api/models/orders")
    assert model["versions"]["live"] == 1, model
    daemon.stop()
    assert daemon.process.returncode == 0, daemon.log_tail()
    assert "Traceback" not in daemon.log_tail(10_000)
