"""``kmeans-monitor history``: the runs, SLIs, thresholds, decisions and failures of a model."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from click.testing import CliRunner

from monitor.checks import shown_path
from monitor.cli import main
from monitor.records import Evaluation, RunFailure
from monitor.slis import SCALAR
from monitor.store import SQLiteHistory

if TYPE_CHECKING:
    from tests.conftest import Mount

HOUR = 3600.0
# What an out-of-range time's line says is accepted (the end of the range left out).
ACCEPTED = "times are accepted from 1970-01-01 up to, but not including, 9999-01-01 UTC"
# Every SLI and threshold the table shows (alerting.COMPARED), quiet values.
SLIS = {
    "centroid_drift_max": 0.1,
    "feature_psi_max": 0.02,
    "label_psi": 0.01,
    "silhouette": 0.8,
    "outlier_ratio": 0.01,
    "empty_clusters": 0.0,
}
THRESHOLDS = {
    "centroid_drift": 1.0,
    "feature_psi_warning": 0.1,
    "feature_psi_critical": 0.25,
    "label_psi": 0.1,
    "silhouette_min": 0.6,
    "outlier_ratio": 0.05,
    "empty_clusters": 0.0,
}


def evaluation(at: float, decision: str, **slis: float) -> Evaluation:
    return Evaluation(
        model="shop",
        window_start=at - HOUR,
        window_end=at,
        evaluated_at=at,
        n_rows=900,
        live_version=1,
        candidate_version=None,
        promoted=False,
        decision=decision,
        slis={**SLIS, **slis},
        feature_psi={"a": slis.get("feature_psi_max", 0.02), "b": 0.01},
        cluster_sizes=(300, 300, 300),
        cluster_shares=(1 / 3, 1 / 3, 1 / 3),
        centroid_drift=(0.1, 0.05, 0.0),
        thresholds=THRESHOLDS,
        phase_seconds={"read": 0.1},
        duration_seconds=0.5,
    )


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@pytest.fixture
def state(tmp_path: Path) -> tuple[Path, float]:
    """A state dir whose history holds runs 8 h, 3 h, 2 h and 1 h ago and a failure 90 min ago."""
    now = time.time()
    directory = tmp_path / "state"
    with SQLiteHistory(directory / "history.sqlite") as h:
        h.append(evaluation(now - 8 * HOUR, "initial reference model trained"))
        h.append(evaluation(now - 3 * HOUR, "kept: no drift"))
        h.append(
            evaluation(
                now - 2 * HOUR,
                "drift awaits manual approval: feature PSI 0.404",
                feature_psi_max=0.404,
                silhouette=0.55,
            )
        )
        h.append_failure(
            RunFailure("shop", "source_unavailable", "connection refused", now - 1.5 * HOUR, "w7")
        )
        h.append(evaluation(now - HOUR, "kept: no drift", outlier_ratio=math.nan))
        h.append(dataclasses.replace(evaluation(now - HOUR, "another model's run"), model="other"))
    return directory, now


# A configured model "shop", for the commands given --config.
SHOP = {
    "name": "shop",
    "features": ["a", "b"],
    "k": 3,
    "window": "1h",
    "schedule": {"interval": "5m"},
    "source": {"kind": "synthetic"},
}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_the_table_lists_runs_and_failures_in_time_order_with_thresholds(
    state: tuple[Path, float],
) -> None:
    directory, now = state
    result = invoke("history", "shop", "--state-dir", str(directory))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # The default range is the last 6 hours: the run 8 h ago is left out.
    assert lines[0].startswith("model shop: 4 run(s) from ")
    assert lines[0].endswith("UTC; each SLI as value/threshold, * past its threshold")
    assert lines[1].split()[:4] == ["time", "(UTC)", "live", "rows"]
    body = lines[2:-1]
    assert [ln[:19] for ln in body] == [
        utc(now - 3 * HOUR),
        utc(now - 2 * HOUR),
        utc(now - 1.5 * HOUR),
        utc(now - HOUR),
    ]
    assert body[0].endswith("kept: no drift") and "*" not in body[0]
    drifting = body[1]
    assert "0.404/0.100*" in drifting and "0.550/0.600*" in drifting
    assert "0.800/0.600" not in drifting and drifting.endswith("feature PSI 0.404")
    assert body[2].endswith("FAILED (source_unavailable): connection refused [w7]")
    assert "-/0.050" in body[3]  # an SLI the run could not measure (NaN) is shown as -
    assert lines[-1] == (
        "summary shop: 3 evaluation(s), 0 made a version live, 0 left a candidate awaiting "
        "approval; failures: source_unavailable=1"
    )
    assert "another model" not in result.output


def test_since_and_until_take_durations_and_times(state: tuple[Path, float]) -> None:
    directory, now = state
    wide = invoke("history", "shop", "--state-dir", str(directory), "--since", "1d")
    assert wide.exit_code == 0 and "model shop: 5 run(s)" in wide.output
    assert "initial reference model trained" in wide.output
    iso = datetime.fromtimestamp(now - 2.5 * HOUR, UTC).isoformat()
    window = invoke(
        "history", "shop", "--state-dir", str(directory), "--since", iso, "--until", "80m"
    )
    assert window.exit_code == 0, window.output
    # From 2.5 h ago to 80 minutes ago: the drifting run and the failure.
    assert "model shop: 2 run(s)" in window.output
    assert "feature PSI 0.404" in window.output and "FAILED" in window.output
    # "0s" back is now: a duration like any other, not "neither a duration nor a time".
    until_now = invoke(
        "history", "shop", "--state-dir", str(directory), "--since", "1d", "--until", "0s"
    )
    assert until_now.exit_code == 0 and "model shop: 5 run(s)" in until_now.output
    # Eight digits that make a date: refused, not a duration of 234 days back (nor 1970).
    day = invoke("history", "shop", "--state-dir", str(directory), "--since", "20240501")
    assert day.exit_code == 2
    assert day.stderr == (
        "error: --since: 20240501 reads as unix seconds (1970-08-23T06:21:41Z) and as the "
        "ISO-8601 date 2024-05-01: write 2024-05-01 for the day, or 20240501.0 for unix "
        "seconds\n"
    )


def test_json_has_every_run_with_utc_times_and_no_nan(state: tuple[Path, float]) -> None:
    directory, now = state
    result = invoke("history", "shop", "--state-dir", str(directory), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["model"] == "shop" and out["until"] == pytest.approx(now, abs=60)
    runs = out["runs"]
    assert [r["failed"] for r in runs] == [False, False, True, False]
    assert runs[2] == {
        "at": pytest.approx(now - 1.5 * HOUR),
        "at_utc": runs[2]["at_utc"],
        "model": "shop",
        "failed": True,
        "reason": "source_unavailable",
        "message": "connection refused",
        "window_label": "w7",
    }
    assert runs[2]["at_utc"].startswith(utc(now - 1.5 * HOUR).replace(" ", "T"))
    assert runs[1]["slis"]["feature_psi_max"] == 0.404
    assert runs[1]["thresholds"]["feature_psi_warning"] == 0.1
    assert runs[1]["decision"] == "drift awaits manual approval: feature PSI 0.404"
    assert runs[3]["slis"]["outlier_ratio"] is None  # NaN is not JSON
    # An SLI the run left undefined is null, not left out: a consumer reads stable keys,
    # as backtest --json and evaluate --json print them.
    assert [list(r["slis"]) for r in runs if not r["failed"]] == [list(SCALAR)] * 3
    assert runs[0]["slis"]["split_gain"] is None and runs[0]["slis"]["silhouette"] == 0.8


def test_an_empty_range_says_when_the_latest_run_was(state: tuple[Path, float]) -> None:
    directory, now = state
    result = invoke("history", "shop", "--state-dir", str(directory), "--since", "10m")
    assert result.exit_code == 0
    assert f"its latest run was at {utc(now - HOUR)} UTC: widen --since" in result.output
    before = invoke(
        "history", "shop", "--state-dir", str(directory), "--since", "0", "--until", "1"
    )
    assert f"its latest run was at {utc(now - HOUR)} UTC: widen --until" in before.output


def test_a_model_the_history_does_not_know_is_an_error_naming_those_it_does(
    state: tuple[Path, float], tmp_path: Path
) -> None:
    """h141: `history nosuch --state-dir D` printed "no run" and exited 0, so a script
    could not tell a typo from a quiet model; `snapshots list nosuch` exits 2."""
    directory, _ = state
    typo = invoke("history", "nope", "--state-dir", str(directory))
    assert typo.exit_code == 2
    assert typo.output == (
        f"error: no model named 'nope' in the history of {directory / 'history.sqlite'}; "
        "it holds: other, shop\n"
    )
    # A configured model that has not run yet is no error: its history is just empty.
    fresh = {**SHOP, "name": "fresh"}
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(yaml.safe_dump({"daemon": {"state_dir": str(directory)}, "models": [fresh]}))
    never = invoke("history", "fresh", "--config", str(cfg))
    assert never.exit_code == 0, never.output
    assert "history holds no run of it" in never.output


@pytest.mark.usefixtures("state")
def test_config_names_the_state_dir(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(yaml.safe_dump({"daemon": {"state_dir": "state"}, "models": [SHOP]}))
    result = invoke("history", "shop", "--config", str(cfg))
    assert result.exit_code == 0 and "model shop: 4 run(s)" in result.output
    # "other" has runs in the history but is not configured: --config refuses it, as
    # evaluate and backtest do; --state-dir reads it.
    other = invoke("history", "other", "--config", str(cfg))
    assert other.exit_code == 2
    assert other.output == (
        "error: no model named 'other'; configured: shop (--state-dir instead of --config "
        "reads a model no longer configured)\n"
    )
    assert invoke("history", "other", "--state-dir", str(tmp_path / "state")).exit_code == 0


def test_the_variable_names_the_state_dir_without_options(
    state: tuple[Path, float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KMEANS_MONITOR_STATE_DIR overrides daemon.state_dir for run and the file; without
    --config and --state-dir, history asked for one of them instead of reading it."""
    monkeypatch.setenv("KMEANS_MONITOR_STATE_DIR", "state")  # relative: to the cwd
    monkeypatch.chdir(tmp_path)
    result = invoke("history", "shop")
    assert result.exit_code == 0, result.output
    assert "model shop: 4 run(s)" in result.output
    # --state-dir wins over it, as it does for run.
    other = invoke("history", "shop", "--state-dir", str(tmp_path / "nowhere"))
    assert other.exit_code == 2
    assert other.stderr.startswith("error: --state-dir (daemon.state_dir): no history database")
    # Set to nothing it is unset, as everywhere.
    monkeypatch.setenv("KMEANS_MONITOR_STATE_DIR", " ")
    unset = invoke("history", "shop")
    assert unset.exit_code == 2
    assert unset.stderr.startswith(
        "error: give --config FILE or --state-dir DIR (or set KMEANS_MONITOR_STATE_DIR) to "
        "find the history"
    )


def test_history_reads_only(state: tuple[Path, float]) -> None:
    """An older daemon's file (schema 1) is read as it is, never migrated under it."""
    directory, _ = state
    db = directory / "history.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript("DROP TABLE versions; DELETE FROM schema_version WHERE version > 1;")
    conn.close()
    before = db.read_bytes()
    assert invoke("history", "shop", "--state-dir", str(directory)).exit_code == 0
    assert db.read_bytes() == before


def test_history_and_run_on_a_read_only_file_system(read_only_mount: Mount) -> None:
    # history failed with SQLite's "unable to open database file" (it could not make
    # the -shm file a WAL reader needs), and so did run, without a word of read-only.
    directory = read_only_mount.path / "state"
    with SQLiteHistory(directory / "history.sqlite") as h:
        h.append(evaluation(time.time() - HOUR, "kept: no drift"))
    cfg = read_only_mount.path.parent / "monitor.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "daemon": {"state_dir": str(directory), "listen": "127.0.0.1:19352"},
                "serving": {"listen": "127.0.0.1:19353"},
                "models": [SHOP],
            }
        )
    )
    read_only_mount.freeze()
    shown = invoke("history", "shop", "--state-dir", str(directory))
    assert shown.exit_code == 0, shown.output
    assert "kept: no drift" in shown.stdout
    started = invoke("run", "--config", str(cfg))
    assert started.exit_code == 2, started.output
    assert started.stderr == (
        f"error: daemon.state_dir: cannot use the state directory {directory}: "
        f"Read-only file system: {shown_path(directory / 'daemon.lock')}\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--state-dir", "{tmp}/nowhere"],
            "error: --state-dir (daemon.state_dir): no history database at ",
        ),
        (
            ["--state-dir", "{state}", "--since", "yesterday"],
            "error: --since: 'yesterday' is neither",
        ),
        (["--state-dir", "{state}", "--since", "1h", "--until", "2h"], "must be after --since"),
        ([], "give --config FILE or --state-dir DIR"),
        (
            ["--state-dir", "{state}", "--since", "1e20"],
            f"error: --since: timestamp '1e20' is out of range: {ACCEPTED}.\n",
        ),
        (
            ["--state-dir", "{state}", "--since", "1", "--until", "0001-01-01T00:00Z"],
            f"error: --until: timestamp '0001-01-01T00:00Z' is out of range: {ACCEPTED}.\n",
        ),
        (
            ["--state-dir", "{state}", "--since", "1", "--until", "9999-01-01"],
            f"error: --until: timestamp '9999-01-01' is out of range: {ACCEPTED}.\n",
        ),
        (["--state-dir", "{state}", "--since", "2030-01-01"], "must be after --since (2030-01-01"),
        (
            ["--state-dir", "{state}", "--since", "999999999999d"],
            "error: --since: '999999999999d' back from now is before 1970-01-01T00:00:00Z\n",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    tmp_path: Path, state: tuple[Path, float], args: list[str], message: str
) -> None:
    directory, _ = state
    db = directory / "history.sqlite"
    before = db.read_bytes()
    filled = [a.format(tmp=tmp_path, state=directory) for a in args]
    result = invoke("history", "shop", *filled)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "nowhere").exists()
    assert db.read_bytes() == before


@pytest.mark.parametrize(
    ("edit", "field", "shown"),
    [
        # After now, out of the range: read as the latest run when nothing else is left.
        (
            "UPDATE evaluations SET evaluated_at = 999999999999.0; DELETE FROM failures",
            "evaluated_at",
            "999999999999.0",
        ),
        # No run left in the range: the corrupt one is read as the latest run.
        (
            "UPDATE evaluations SET evaluated_at = -1e12; DELETE FROM failures",
            "evaluated_at",
            "-1000000000000.0",
        ),
        ("UPDATE evaluations SET window_end = 1e300", "window_end", "1e+300"),
        ("UPDATE failures SET at = 1e300; DELETE FROM evaluations", "at", "1e+300"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_a_time_edited_out_of_range_is_a_corrupt_row_not_a_crash(
    state: tuple[Path, float], edit: str, field: str, shown: str, as_json: bool
) -> None:
    directory, _ = state
    with contextlib.closing(sqlite3.connect(directory / "history.sqlite")) as conn:
        conn.executescript(edit)
    args = ["--state-dir", str(directory), *(["--json"] if as_json else [])]
    result = invoke("history", "shop", *args)
    assert result.exit_code == 2, result.output
    assert result.output == (
        f"error: history database {directory / 'history.sqlite'} holds a corrupt row: "
        f"{field}: timestamp {shown} is out of range: {ACCEPTED}.\n"
    )


def test_a_failure_whose_window_is_an_interval_shows_it_once_bracketed(tmp_path: Path) -> None:
    # The daemon records a failed run's window as "[start, end)", as a backtest does.
    now = time.time()
    window = "[2026-12-04T16:02:49.216Z, 2026-12-04T17:02:49.216Z)"
    named = f"model 'shop', window rows timed {window}: 3 NaN"  # names its window itself
    with SQLiteHistory(tmp_path / "history.sqlite") as h:
        h.append_failure(RunFailure("shop", "source_unavailable", "gone", now - 60, window))
        h.append_failure(RunFailure("shop", "invalid_values", named, now - 30, window))
    result = invoke("history", "shop", "--state-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"FAILED (source_unavailable): gone {window}\n" in result.output
    assert f"FAILED (invalid_values): {named}\n" in result.output  # not the window twice


def test_without_until_the_range_ends_now(state: tuple[Path, float]) -> None:
    directory, now = state
    with SQLiteHistory(directory / "history.sqlite") as h:
        h.append(evaluation(now + 86400, "a run dated tomorrow (a clock set wrong)"))
    result = invoke("history", "shop", "--state-dir", str(directory), "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert runs and all(r["at"] < now + 60 for r in runs)


@pytest.mark.parametrize("unbuffered", ["", "1"])
@pytest.mark.parametrize("as_json", [False, True])
def test_a_reader_that_leaves_early_ends_it_quietly_with_141(
    tmp_path: Path, as_json: bool, unbuffered: str
) -> None:
    # `kmeans-monitor history shop | head -1`: the table's next line met a closed pipe,
    # which read as "error: Broken pipe" and exit 2. With PYTHONUNBUFFERED=1 (as many
    # container images set it), the JSON, one write larger than the pipe, was cut where
    # the reader left and the command exited 0: stdout took a partial write as whole.
    now = time.time()
    with SQLiteHistory(tmp_path / "history.sqlite") as h:
        for i in range(600):  # about 100 kB of table, more than a pipe holds
            h.append(evaluation(now - 3000 + i, "kept: no drift"))
    argv = [sys.executable, "-m", "monitor", "history", "shop", "--state-dir", str(tmp_path)]
    argv += ["--json"] if as_json else []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env |= {"PYTHONUNBUFFERED": unbuffered} if unbuffered else {}
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    first = b"{" if as_json else b"model shop: 600 run(s)"
    assert process.stdout.readline().startswith(first)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141 and stderr == b""


def test_a_directory_where_the_history_goes_is_named_so(tmp_path: Path) -> None:
    (tmp_path / "history.sqlite").mkdir()
    result = invoke("history", "shop", "--state-dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.output == (  # as run and evaluate say it, naming the option
        f"error: invalid configuration: --state-dir (daemon.state_dir): "
        f"{shown_path(tmp_path / 'history.sqlite')} is not a file\n"
    )


def test_a_relative_state_dir_flag_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With --config it was taken relative to the file's directory, without it to the cwd.
    (tmp_path / "etc").mkdir()
    cfg = tmp_path / "etc" / "monitor.yaml"
    cfg.write_text(yaml.safe_dump({"models": [SHOP]}))
    work = tmp_path / "work"
    with SQLiteHistory(work / "rel" / "history.sqlite") as h:
        h.append(evaluation(time.time() - 60, "kept: no drift"))
    monkeypatch.chdir(work)
    result = invoke("history", "shop", "--config", str(cfg), "--state-dir", "rel")
    assert result.exit_code == 0, result.output
    assert "model shop: 1 run(s)" in result.output


def test_a_run_s_line_flags_every_alert_whose_condition_holds(tmp_path: Path) -> None:
    # It tagged three SLIs' warning levels ([warning: psi, outliers, label-psi]); empty
    # clusters, a silhouette drop and a cluster moved went unsaid.
    from monitor.cli import _progress_line

    quiet = evaluation(1e9, "kept: no drift")
    assert "[flag:" not in _progress_line(quiet, 0.0, tmp_path)
    emptied = evaluation(1e9, "kept: no drift", empty_clusters=1.0, silhouette=0.5)
    line = _progress_line(emptied, 0.0, tmp_path)
    assert "  [flag: KMeansSilhouetteDrop KMeansEmptyClusters] kept: no drift" in line


def test_a_range_reaching_before_the_retention_says_its_runs_were_removed(
    state: tuple[Path, float],
) -> None:
    directory, now = state
    with SQLiteHistory(directory / "history.sqlite") as h:
        h.prune(now - 2.5 * HOUR)  # what store.keep.history removes
    result = invoke("history", "shop", "--state-dir", str(directory))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("model shop: 3 run(s) from ")
    assert lines[-1] == (
        f"runs before {utc(now - 2.5 * HOUR)} UTC were removed from the history "
        "(store.keep.history); their counts are kept for the metrics"
    )
    answer = json.loads(invoke("history", "shop", "--state-dir", str(directory), "--json").output)
    assert answer["pruned_before"] == now - 2.5 * HOUR
    # A range after the removed runs has nothing to say of them.
    later = invoke("history", "shop", "--state-dir", str(directory), "--since", "2h")
    assert "removed" not in later.output
    answer = json.loads(
        invoke("history", "shop", "--state-dir", str(directory), "--since", "2h", "--json").output
    )
    assert answer["pruned_before"] is None


def test_past_the_limit_the_runs_are_whole_from_where_both_kinds_were_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # helper-102: the newest 10,000 evaluations and every failure of 9 days before them
    # were merged, so the table began with days of failures alone and a failure share
    # counted in the JSON was 26 % for 14 %.
    monkeypatch.setattr("monitor.cli.HISTORY_LIMIT", 6)
    now = time.time()
    directory = tmp_path / "state"
    with SQLiteHistory(directory / "history.sqlite") as h:
        for i in range(30):  # a run a minute, every seventh failed
            at = now - (30 - i) * 60.0
            if i % 7 == 3:
                h.append_failure(RunFailure("shop", "source_unavailable", "down", at, "w"))
            else:
                h.append(evaluation(at, "kept: no drift"))
    # The newest 6 evaluations start 7 minutes ago; the failures read go back 27 minutes.
    cut = now - 7 * 60.0
    result = invoke("history", "shop", "--state-dir", str(directory), "--since", "1h")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"model shop: 7 run(s) from {utc(cut)} to ")
    assert [ln[:19] for ln in lines[2:-1]] == [utc(now - m * 60.0) for m in range(7, 0, -1)]
    assert lines[-1].endswith(
        f"failures: source_unavailable=1; the runs before {utc(cut)} were not read (at most "
        "the newest 6 evaluations and 6 failures are): narrow the range"
    )
    answer = json.loads(
        invoke("history", "shop", "--state-dir", str(directory), "--since", "1h", "--json").output
    )
    assert (answer["since"], answer["truncated"]) == (cut, True)
    assert answer["requested_since"] < cut and len(answer["runs"]) == 7
    assert sum(1 for r in answer["runs"] if r.get("failed")) == 1
    whole = invoke("history", "shop", "--state-dir", str(directory), "--since", "5m", "--json")
    assert json.loads(whole.output)["truncated"] is False


def test_runs_stamped_after_now_are_counted_on_stderr_not_left_out_unsaid(
    state: tuple[Path, float],
) -> None:
    # t13 F2: after the wall clock stepped back 30 days, the runs stamped before the step
    # lie after the default --until (now): the table left them out without a word.
    directory, now = state
    with SQLiteHistory(directory / "history.sqlite") as h:
        for days in (30, 31):
            h.append(evaluation(now + days * 86400, "kept: no drift"))
    result = CliRunner().invoke(main, ["history", "shop", "--state-dir", str(directory)])
    assert result.exit_code == 0, result.output
    assert "model shop: 4 run(s) from " in result.stdout
    [line] = result.stderr.splitlines()
    assert line.startswith("2 run(s) of shop are stamped after now (")
    assert f"up to {utc(now + 31 * 86400)}" in line.replace("T", " ").replace("Z", "")
    assert line.endswith("--until after that time shows them")
    # Named with --until, the runs after it are what was asked: nothing said.
    until = utc(now + 60).replace(" ", "T") + "Z"
    result = CliRunner().invoke(
        main, ["history", "shop", "--state-dir", str(directory), "--until", until]
    )
    assert result.exit_code == 0 and result.stderr == ""
    # None after now: nothing said.
    result = invoke("history", "other", "--state-dir", str(directory))
    assert result.exit_code == 0 and result.stderr == ""
