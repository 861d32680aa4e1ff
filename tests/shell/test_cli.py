"""The command line, as a user types it: check-config, evaluate, snapshots, choose-k."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from monitor import __version__
from monitor.cli import _cell, _json_text, main
from monitor.store import SQLiteHistory
from monitor.store.history import SCHEMA_VERSION
from monitor.store.snapshots import FORMAT
from monitor.workers import RunWorkers
from tests.fakes import blobs
from tests.store._store_factories import make_evaluation

CENTERS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_csv(path: Path, X: np.ndarray, mtime: float) -> None:
    header = "a,b,c"
    np.savetxt(path, X, delimiter=",", header=header, comments="")
    os.utime(path, (mtime, mtime))


def test_version_names_the_formats_that_decide_what_a_state_directory_needs() -> None:
    # Every build reports 0.1.0: after an upgrade, the history's schema and the snapshot
    # format this build writes are what tell builds apart (docs/upgrading.md). The numbers
    # are the store's own, which the command line shows without loading the store.
    result = invoke("--version")
    assert (result.exit_code, result.output) == (
        0,
        f"kmeans-monitor {__version__} (history schema {SCHEMA_VERSION}, "
        f"snapshot format {FORMAT})\n",
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                # Port 0: check-config probes the address, and 9310 may be taken here.
                "daemon": {"state_dir": "state", "listen": "127.0.0.1:0"},
                "models": [
                    {
                        "name": "shop",
                        "features": ["a", "b", "c"],
                        "k": 3,
                        "window": "1h",
                        "schedule": {"interval": "5m"},
                        "source": {"kind": "files", "path": str(data), "pattern": "*.csv"},
                        "training": {"n_init": 2, "silhouette_sample": 500},
                        "retrain": "on-drift",
                    }
                ],
            }
        )
    )
    return cfg, data


def test_check_config_ok_and_every_problem(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    cfg, data = setup
    ok = invoke("check-config", str(cfg))
    assert ok.exit_code == 0 and "OK, 1 model(s): shop" in ok.output
    assert ok.stderr == ""
    # A files source's directory that is not there: OK (it may come), with a warning.
    missing = yaml.safe_load(cfg.read_text())
    missing["models"][0]["source"]["path"] = str(tmp_path / "nope")
    (tmp_path / "missing.yaml").write_text(yaml.safe_dump(missing))
    warned = invoke("check-config", str(tmp_path / "missing.yaml"))
    assert warned.exit_code == 0
    assert warned.stderr == (
        f"warning: model 'shop': source.path {tmp_path / 'nope'} is not a directory (read "
        f"from {Path.cwd()}): every run fails as source_unavailable until it is\n"
    )
    # One that cannot be listed was read as empty, and check-config said OK (fuzz91).
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == data:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "scandir", scandir)
        warned = invoke("check-config", str(cfg))
    assert warned.exit_code == 0
    assert warned.stderr == (
        f"warning: model 'shop': source.path {data} cannot be listed (Permission denied): "
        "every run fails as source_unavailable until it can\n"
    )
    # A reference of fewer than 10 windows: thresholds from resampled rows alone; a
    # one-window reference flagged the very file it was trained on (helper-86).
    short = yaml.safe_load(cfg.read_text())
    short["models"][0]["reference"] = {"window": "4h"}
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(short))
    warned = invoke("check-config", str(tmp_path / "short.yaml"))
    assert warned.exit_code == 0
    assert warned.stderr == (
        "warning: model 'shop': its reference period holds 4 window(s) of 1h; with fewer "
        "than 10 the thresholds come from rows resampled within them, blind to how windows "
        "differ, and an unchanged stream can flag: give it at least 10h (reference: "
        "{window: ...})\n"
    )
    fixed = yaml.safe_load((tmp_path / "short.yaml").read_text())
    fixed["models"][0]["thresholds"] = {"mode": "fixed"}  # calibrates nothing: no word
    (tmp_path / "fixed.yaml").write_text(yaml.safe_dump(fixed))
    assert invoke("check-config", str(tmp_path / "fixed.yaml")).stderr == ""
    bad = tmp_path / "bad.yaml"
    raw = yaml.safe_load(cfg.read_text())
    raw["models"][0]["k"] = 0
    raw["models"][0]["source"] = {"kind": "synthetic", "regimes": 0}
    raw["models"].append(
        {
            "name": "x",
            "features": ["a"],
            "k": 2,
            "window": "1m",
            "schedule": {"interval": "1m"},
            "source": {"kind": "kafka"},
        }
    )
    bad.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, ["check-config", str(bad)])
    assert result.exit_code == 2
    # Model-level and source-level problems are reported together.
    assert "models[shop].k: must be an int in [2, 128]; got 0" in result.output
    assert "models[shop].source.regimes" in result.output
    assert "models[x].source.kind: must be one of" in result.output
    raw["models"][0]["k"] = 3
    bad.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, ["check-config", str(bad)])
    assert result.exit_code == 2
    assert "models[shop].source.regimes" in result.output
    assert (
        "models[x].source.kind: must be one of {'files', 'prometheus', 'spark', 'synthetic'}; "
        "got 'kafka'" in result.output
    )
    # A problem only the features reveal (an event on a feature the model does not read).
    raw["models"][0]["source"] = {
        "kind": "synthetic",
        "events": [{"kind": "unit_change", "after": "1m", "feature": "nope", "factor": 1000}],
    }
    bad.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, ["check-config", str(bad)])
    assert result.exit_code == 2 and "models[shop].source.events[0].feature" in result.output


def test_evaluate_then_snapshots_list_show_diff_rollback(setup: tuple[Path, Path]) -> None:
    cfg, data = setup
    # One window: on-drift promotes at a drift's first run (a longer period waits until
    # the drift has lasted it: docs/slis.md, "Retrained models").
    raw = yaml.safe_load(cfg.read_text())
    raw["models"][0]["reference"] = {"window": "1h"}
    cfg.write_text(yaml.safe_dump(raw))
    now = time.time()
    write_csv(data / "w1.csv", blobs(900, CENTERS, seed=1), now - 100)
    first = invoke("evaluate", "--config", str(cfg), "--once", "--json")
    assert first.exit_code == 0, first.output
    # --once is accepted for old crontabs, with a note on stderr that it can go.
    assert "--once is the only mode" in first.stderr
    [ev] = json.loads(first.stdout)
    assert ev["promoted"] and ev["live_version"] == 1
    # Which window it read, as backtest --json says each of its own (it did not say).
    assert ev["end"] - ev["start"] == 3600 and ev["start"] < now <= ev["end"] <= ev["at"]
    assert ev["end_utc"].endswith("Z")

    moved = CENTERS.copy()
    moved[1, 1] += 3.0
    write_csv(data / "w2.csv", blobs(900, moved, seed=2), now - 10)
    second = invoke("evaluate", "--config", str(cfg))
    assert second.exit_code == 0, second.output
    assert "retrained on drift" in second.output

    listing = invoke("snapshots", "list", "--config", str(cfg))
    lines = [ln for ln in listing.output.splitlines() if ln.startswith("shop")]
    assert len(lines) == 2
    assert lines[0].split()[1:3] == ["1", "retired"] and lines[0].endswith("initial")
    assert lines[1].split()[1:3] == ["2", "live"] and lines[1].endswith("drift")

    shown = json.loads(invoke("snapshots", "show", "--config", str(cfg), "shop").output)
    assert shown["version"] == 2 and shown["live"] is True and shown["parent_version"] == 1
    assert shown["state"] == "live"

    # Versions as the README writes them, as people write them, and as directories are named.
    for a, b in (("1", "2"), ("v1", "v2"), ("v000001", "2")):
        diff = invoke("snapshots", "diff", "--config", str(cfg), "shop", a, b)
        assert diff.exit_code == 0, diff.output
        assert "centroid drift: mean" in diff.output and "feature PSI" in diff.output
    # Not ASCII digits, or too many for int(): these were tracebacks, or read "٣" as 3.
    for word in ("one", "²", "٣", "9" * 5000):
        bad = CliRunner().invoke(
            main, ["snapshots", "diff", "--config", str(cfg), "shop", word, "2"]
        )
        assert bad.exit_code == 2, (word, bad.output)
        assert "is not a version such as 3, v3 or v000003" in bad.output, bad.output

    back = invoke("snapshots", "rollback", "--config", str(cfg), "shop")
    assert "live v2 -> v1" in back.output
    shown = json.loads(invoke("snapshots", "show", "--config", str(cfg), "shop").output)
    assert shown["version"] == 1


def test_evaluate_computes_in_its_own_process_whatever_the_isolation(
    setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A one-shot run has no server to keep fast: a worker would only add its start-up.
    cfg, data = setup
    raw = yaml.safe_load(cfg.read_text())
    raw["daemon"]["run_isolation"] = "process"
    cfg.write_text(yaml.safe_dump(raw))

    def no_worker(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluate handed a run to a worker process")

    monkeypatch.setattr(RunWorkers, "assess", no_worker)
    now = time.time()
    write_csv(data / "w1.csv", blobs(900, CENTERS, seed=1), now - 100)
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0  # the reference
    write_csv(data / "w2.csv", blobs(900, CENTERS, seed=2), now - 10)
    second = invoke("evaluate", "--config", str(cfg), "--json")
    assert second.exit_code == 0, second.output
    [ev] = json.loads(second.stdout)
    assert ev["live_version"] == 1 and "score" in ev["phase_seconds"]


def test_a_run_removes_the_runs_past_store_keep_history(setup: tuple[Path, Path]) -> None:
    cfg, data = setup
    raw = yaml.safe_load(cfg.read_text())
    raw["store"] = {"keep": {"history": "30d"}}
    cfg.write_text(yaml.safe_dump(raw))
    now = time.time()
    old, recent = now - 40 * 86400.0, now - 20 * 86400.0
    with SQLiteHistory(cfg.parent / "state" / "history.sqlite") as h:
        h.append(make_evaluation("shop", evaluated_at=old, promoted=True))
        h.append(make_evaluation("shop", evaluated_at=recent))
    write_csv(data / "w1.csv", blobs(900, CENTERS, seed=1), now - 100)
    ran = invoke("evaluate", "--config", str(cfg), "--json")
    assert ran.exit_code == 0, ran.output
    with SQLiteHistory(cfg.parent / "state" / "history.sqlite", read_only=True) as h:
        kept = [e.evaluated_at for e in h.since("shop", 0.0).evaluations]
        assert kept[0] == recent and len(kept) == 2
        assert now - 30 * 86400.0 <= h.pruned_before("shop") <= time.time() - 30 * 86400.0
        assert (h.totals("shop").runs, h.totals("shop").first) == (3, old)


def test_evaluate_fails_with_exit_1_and_the_reason(setup: tuple[Path, Path]) -> None:
    cfg, data = setup
    X = blobs(900, CENTERS, seed=1)
    X[::3, 0] = np.nan
    write_csv(data / "w1.csv", X, time.time() - 5)
    result = CliRunner().invoke(main, ["evaluate", "--config", str(cfg)])
    assert result.exit_code == 1
    assert "FAILED (invalid_values)" in result.output and "300 of 900 rows" in result.output


def test_evaluate_lines_up_its_columns_past_ten_characters_of_name(
    setup: tuple[Path, Path],
) -> None:
    # A model named `manysamples` pushed its own line's columns one place right (h144 #5).
    cfg, data = setup
    raw = yaml.safe_load(cfg.read_text())
    raw["models"].append({**raw["models"][0], "name": "shop_checkout_eu"})
    cfg.write_text(yaml.safe_dump(raw))
    write_csv(data / "w1.csv", blobs(900, CENTERS, seed=1), time.time() - 5)
    result = invoke("evaluate", "--config", str(cfg))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if " rows=" in line]
    assert len(lines) == 2 and len({line.index(" rows=") for line in lines}) == 1, lines


def test_user_errors_are_messages_not_tracebacks(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    cfg, _ = setup
    missing = CliRunner().invoke(main, ["snapshots", "list", "--state-dir", str(tmp_path)])
    assert missing.exit_code == 2 and "no snapshot store at" in missing.output
    nomodel = CliRunner().invoke(main, ["evaluate", "--config", str(cfg), "--model", "nope"])
    assert nomodel.exit_code == 2 and "no model named 'nope'; configured: shop" in nomodel.output


def test_choose_k_on_a_file(tmp_path: Path) -> None:
    path = tmp_path / "blobs.csv"
    write_csv(path, blobs(600, CENTERS * 3, seed=4), time.time())
    result = invoke("choose-k", str(path), "--k-min", "1", "--k-max", "6", "--refs", "5")
    assert result.exit_code == 0, result.output
    assert "silhouette: k=3" in result.output and "gap: k=3" in result.output


def test_runbook_prints_the_page_and_lists_names_when_unknown() -> None:
    page = invoke("runbook", "KMeansFeatureDrift")
    assert page.exit_code == 0 and page.output.startswith("# KMeansFeatureDrift\n")
    assert "## Mitigation" in page.output
    unknown = CliRunner().invoke(main, ["runbook", "KMeansNope"])
    assert unknown.exit_code == 2 and "KMeansFeatureDrift" in unknown.output


def test_render_writes_then_check_finds_nothing_stale(tmp_path: Path) -> None:
    empty = CliRunner().invoke(main, ["render", "--check", "--root", str(tmp_path)])
    assert empty.exit_code == 1 and "stale:" in empty.output
    written = invoke("render", "--root", str(tmp_path))
    assert written.exit_code == 0 and "alerts/kmeans-monitor.yml" in written.output
    assert (tmp_path / "runbooks" / "KMeansFeatureDrift.md").is_file()
    assert invoke("render", "--check", "--root", str(tmp_path)).exit_code == 0
    # A scaled render (as the end-to-end tests use) differs from the committed defaults.
    invoke("render", "--root", str(tmp_path), "--time-scale", "0.1")
    assert CliRunner().invoke(main, ["render", "--check", "--root", str(tmp_path)]).exit_code == 1


def test_runbook_of_a_long_unknown_name_echoes_it_shortened() -> None:
    """A name of 131,000 characters came back whole: an error line of 131 kB."""
    unknown = CliRunner().invoke(main, ["runbook", "A" * 131_000])
    assert unknown.exit_code == 2 and len(unknown.stderr) < 2_000
    assert unknown.stderr.startswith("error: no alert named 'AAAA")
    assert "AAA' (131000 characters); valid names: KMeans" in unknown.stderr


def test_render_check_compares_with_what_the_same_options_render(tmp_path: Path) -> None:
    """--check ignored the options: it called the files of a render with a pattern stale,
    and those of a default render up to date for any pattern."""
    custom = [
        "--runbook-url-pattern",
        "https://x/{alertname}.html",
        "--dashboard-url-pattern",
        "https://g/d/x/?var-model={model}",
        "--daemon-url",
        "https://d.example.com",
        "--time-scale",
        "0.5",
    ]
    root = ["render", "--root", str(tmp_path)]
    assert invoke(*root, *custom).exit_code == 0
    assert invoke(*root, *custom, "--check").output == "generated files are up to date\n"
    for i in range(0, len(custom), 2):  # each option changes some file
        other = CliRunner().invoke(main, [*root, *custom[:i], *custom[i + 2 :], "--check"])
        assert other.exit_code == 1 and "stale: " in other.output, custom[i]


def test_render_says_what_stands_where_a_directory_goes(tmp_path: Path) -> None:
    """Both said only "File exists"."""
    (tmp_path / "alerts").write_text("not a directory\n")
    (tmp_path / "site").symlink_to(tmp_path / "gone")
    result = CliRunner().invoke(main, ["render", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path}/alerts is a file, not a directory\n"
    (tmp_path / "alerts").unlink()
    result = CliRunner().invoke(main, ["render", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {tmp_path}/site is a broken symbolic link (to {tmp_path}/gone), not a directory\n"
    )


def test_blas_threads_limits_the_process() -> None:
    import subprocess
    import sys

    code = (
        "from threadpoolctl import threadpool_info\n"
        "from monitor.cli import _limit_blas\n"
        "from tests.shell.test_config import minimal\n"
        "from monitor.config import parse\n"
        "from monitor.sources import SOURCES\n"
        "raw = minimal(); raw['daemon'] = {'blas_threads': 1}\n"
        "_limit_blas(parse(raw, sources=SOURCES))\n"
        "print(sorted({p['num_threads'] for p in threadpool_info()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "2"},
    )
    assert out.stdout.strip() == "[1]", out.stdout + out.stderr


@pytest.mark.parametrize(
    ("env", "args", "level"),
    [
        ({}, [], logging.ERROR),  # the file's daemon.log_level
        ({"KMEANS_MONITOR_LOG_LEVEL": "debug"}, [], logging.DEBUG),  # the environment's
        ({"KMEANS_MONITOR_LOG_LEVEL": "debug"}, ["--log-level", "info"], logging.INFO),  # the flag
    ],
)
def test_the_configured_log_level_applies_unless_the_flag_is_given(
    setup: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    args: list[str],
    level: int,
) -> None:
    """daemon.log_level and KMEANS_MONITOR_LOG_LEVEL were checked, then ignored."""
    cfg, _ = setup
    raw = yaml.safe_load(cfg.read_text())
    raw["daemon"]["log_level"] = "ERROR"
    cfg.write_text(yaml.safe_dump(raw))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)  # restored after the test
    result = CliRunner().invoke(main, [*args, "history", "shop", "--config", str(cfg)])
    assert result.exit_code == 2 and "no history database" in result.stderr
    assert root.level == level


def test_json_output_holds_no_nan_or_infinity() -> None:
    # evaluate --json printed "calinski_harabasz": Infinity (a window of values near 1e152
    # under scaling: none), which strict JSON parsers refuse; every --json goes through it.
    data = {"a": float("inf"), "b": [float("nan"), 1.5, np.float64(-np.inf)], "c": ({"d": 2},)}
    text = _json_text(data)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "a": None,
        "b": [None, 1.5, None],
        "c": [{"d": 2}],
    }


def test_table_cells_keep_their_width_for_huge_values() -> None:
    # A threshold of 1.7e155 was printed with its 156 digits, which broke the columns.
    assert _cell(0.0, 1.7e155) == "0.000/1.7e+155"
    assert _cell(0.1234, 0.5) == "0.123/0.500" and _cell(None, None) == "-/-"
    assert _cell(-2.5e7, None) == "-2.5e+07/-"


def test_the_help_of_listen_names_its_real_default_and_what_it_serves() -> None:
    # exB: `run --help` said "Address of /metrics (default 127.0.0.1:9310)"; the default
    # is the file's daemon.listen, and the address serves the pages, the API and /v1 too.
    run = " ".join(invoke("run", "--help").output.split())
    assert (
        "--listen HOST:PORT Address of /metrics, the pages, the API and /v1 (default: "
        "daemon.listen of the configuration file)."
    ) in run
    demo = " ".join(invoke("demo", "--help").output.split())
    assert (
        "--listen HOST:PORT Address of /metrics, the pages, the API and /v1 (default "
        "127.0.0.1:9310)."
    ) in demo


def test_the_demo_help_says_where_its_state_goes_without_state_dir() -> None:
    # exC: `demo --help` said --state-dir "overrides daemon.state_dir"; the demo takes no
    # configuration file, and without the option it uses a new temporary directory.
    demo = " ".join(invoke("demo", "--help").output.split())
    assert "daemon.state_dir" not in demo
    assert (
        "--state-dir DIRECTORY Directory of snapshots and history (default: a new temporary "
        "directory, named and kept when the demo stops)."
    ) in demo


def test_the_render_help_gives_the_default_of_every_url_option() -> None:
    # exC: the help gave the runbook pattern's default, not the dashboard's or the daemon's.
    from monitor.render import RenderOptions

    text = "".join(invoke("render", "--help").output.split())  # click breaks long URLs
    defaults = RenderOptions()
    for default in (
        defaults.runbook_url_pattern,
        defaults.dashboard_url_pattern,
        defaults.daemon_url,
    ):
        assert f"(default{default})." in text


@pytest.mark.parametrize(
    ("env", "args", "level"),
    [
        ({"KMEANS_MONITOR_LOG_LEVEL": "debug"}, [], logging.DEBUG),
        ({"KMEANS_MONITOR_LOG_LEVEL": "error"}, [], logging.ERROR),
        ({"KMEANS_MONITOR_LOG_LEVEL": "debug"}, ["--log-level", "warning"], logging.WARNING),
        ({"KMEANS_MONITOR_LOG_LEVEL": "trace"}, ["--log-level", "warning"], logging.WARNING),
    ],
)
@pytest.mark.parametrize("command", [["snapshots", "list"], ["history", "shop"]])
def test_the_log_level_variable_applies_without_a_configuration_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    args: list[str],
    level: int,
    command: list[str],
) -> None:
    """Only `load` read KMEANS_MONITOR_LOG_LEVEL: with --state-dir alone it was ignored."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)  # restored after the test
    state = tmp_path / "state"
    CliRunner().invoke(main, [*args, *command, "--state-dir", str(state)])
    assert root.level == level


def test_a_bad_log_level_variable_without_a_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KMEANS_MONITOR_LOG_LEVEL", "TRACE")
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)
    result = CliRunner().invoke(main, ["snapshots", "list", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "KMEANS_MONITOR_LOG_LEVEL (daemon.log_level): must be one of {'DEBUG', 'INFO', "
            "'WARNING', 'ERROR'}; got 'TRACE'"
        )
    ), result.stderr
