"""Issue 9 on a real metric: the half-hourly electricity demand of England and Wales in 2000
(bench/bench_realdata.py), made into the value, difference, rolling mean and rolling
standard deviation that the issue's user monitored, in windows of 12 points.

The first four weeks after the reference (19 June to 17 July, 112 windows) hold no known
incident. A user who sets a reference period, the weekly cycle and the default
(calibrated) thresholds gets no page there; the configuration the issue measured (the
first window as the reference, fixed thresholds) flags nearly every window of the same
data, which is what makes the first figure mean something. Changes put into the series
from 3 July page within a few windows. Counts of a seeded replay, not timings.
"""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bench import bench_realdata as real
from monitor.cli import main
from monitor.errors import DegenerateDataWarning

QUIET_TO = "2000-07-17T00:00:00Z"  # four weeks of runs after the reference


@pytest.fixture(scope="module")
def demand() -> Any:
    return real.demand()


@pytest.fixture(scope="module")
def data(demand: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demand")
    real.write_csv(path / "demand.csv", real.features(demand))
    return path


def test_the_series_is_the_real_one(demand: Any) -> None:
    # Taylor (2003): 12 weeks of half-hourly megawatts, the weekends lower than the weekdays.
    assert demand.shape == (4032,)
    assert demand[:3].tolist() == [22262.0, 21756.0, 22247.0]
    days = demand.reshape(12, 7, 48).mean(axis=(0, 2))
    assert days[5:].max() < 0.9 * days[:5].min()


def backtest(config: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        main,
        ["backtest", "--config", str(config), "--from", "2000-06-18T18:00:00Z", "--to", QUIET_TO,
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    replay: dict[str, Any] = json.loads(result.stdout)[0]
    return replay


@pytest.mark.parametrize(
    ("config", "model_seed", "most", "least"),
    [("weekly", 0, 3, 0), ("weekly", 3, 3, 0), ("naive", 0, 112, 100)],
)
def test_a_reference_period_and_the_weekly_cycle_keep_real_quiet_windows_quiet(
    data: Path, tmp_path: Path, config: str, model_seed: int, most: int, least: int
) -> None:
    """Through the CLI, as a user runs it: ``kmeans-monitor backtest --json``. Model seed
    3 puts every other window's 12 rows in one cluster, whose silhouette (undefined) used
    to flag each of them."""
    file = tmp_path / "monitor.yaml"
    settings = {"daemon": {"state_dir": str(tmp_path / "state")}}
    settings["models"] = [real.model("6h", config, data, model_seed)]
    file.write_text(yaml.safe_dump(settings), encoding="utf-8")
    runs = backtest(file)["windows"]
    windows = runs[1:]  # run 0 reads the reference's last window
    assert len(windows) == 112
    assert not any(w["failed"] for w in windows)
    flags = sum(w["flag"] for w in windows)
    assert least <= flags <= most
    if config == "weekly":
        assert not any(w["page"] for w in windows)
    # One run every 6 hours: a for: of 15m fired each flag's alerts at once (naive: run 0,
    # flagged against its own reference). An alert fires only at the second flagged run
    # in a row, or after it while the streak lasts.
    none = {"flag": False, "flagged_runs": 0}
    for before, w in itertools.pairwise([none, *runs]):
        assert not w["firing"] or (w["flag"] and before["flag"]), w["end_utc"]
        assert w["flagged_runs"] == (before["flagged_runs"] + 1 if w["flag"] else 0)


@pytest.mark.parametrize(
    ("kind", "most"), [("unit_change", 2), ("flatline", 4), ("step_20pct", 4), ("nan_burst", 2)]
)
def test_a_change_put_into_the_real_series_pages_within_a_few_windows(
    demand: Any, kind: str, most: int
) -> None:
    warnings.simplefilter("ignore", DegenerateDataWarning)  # a flat line: too few distinct rows
    quiet = [False] * (real.onset_index("6h") + 60)
    change = real.changes(np.random.default_rng(0))[kind]
    end = real.ONSET + 8 * real.WINDOWS["6h"]  # twice the latest page allowed (4 windows)
    found = real.event("6h", kind, demand, change, quiet, end)
    assert found["delay"] is not None and found["delay"] <= most, found
    assert found["flags_before_onset"] <= 1, found


def _fake_replays(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """``quiet`` and ``event`` replaced by recorders of their arguments."""
    calls: list[tuple[Any, ...]] = []

    def quiet(
        window: str, config: str, data: Path, model_seed: int = 0, interval: float | None = None
    ) -> Any:
        calls.append(("quiet", window, config, model_seed, interval))
        offsets = {"0h": [1, 0]} if interval is None else {"0h": [1, 0], "3h": [1, 1]}
        summary = {"window": window, "config": config, "model_seed": model_seed, "windows": 1,
                   "flags": 0, "pages": 0, "fired": 0, "failed": 0, "flags_by_alert": {},
                   "flagged": [], "by_offset": offsets, "seconds": 0.0}  # fmt: skip
        return summary, [False, False]

    def event(window: str, kind: str, *args: Any, model_seed: int = 0, **kw: Any) -> Any:
        calls.append(("event", window, kind, model_seed))
        return {"window": window, "kind": kind, "delay": 2, "control_delay": None, "alerts": []}

    monkeypatch.setattr(real, "quiet", quiet)
    monkeypatch.setattr(real, "event", event)
    return calls


def test_model_seeds_replay_each_quiet_configuration_once_per_seed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--model-seeds``: a quiet replay per configuration and seed, the seed in the model's
    ``training.seed``; the events (and their weekly control) with the first seed."""
    calls = _fake_replays(monkeypatch)
    argv = ["--windows", "6h", "--configs", "daily", "--events", "unit_change",
            "--model-seeds", "4,7", "--json", str(tmp_path / "r.json")]  # fmt: skip
    assert real.main(argv) == 0
    assert calls == [
        ("quiet", "6h", "daily", 4, None),
        ("quiet", "6h", "daily", 7, None),
        ("quiet", "6h", "weekly", 4, None),
        ("event", "6h", "unit_change", 4),
    ]
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in table[1:3]] == [["6h", "daily", "4"], ["6h", "daily", "7"]]
    assert json.loads((tmp_path / "r.json").read_text())["model_seeds"] == [4, 7]
    assert real.model("6h", "weekly", tmp_path, 7)["training"] == {"seed": 7}


def test_interval_runs_the_quiet_replays_more_often_and_counts_flags_by_offset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--interval``: the quiet replays' schedule, in seconds; the events' control stays a
    replay of one run per window; the table adds the flags by offset."""
    calls = _fake_replays(monkeypatch)
    argv = ["--windows", "6h", "--configs", "weekly", "--events", "unit_change",
            "--interval", "1h30m", "--json", str(tmp_path / "r.json")]  # fmt: skip
    assert real.main(argv) == 0
    assert calls == [
        ("quiet", "6h", "weekly", 0, 5400.0),
        ("quiet", "6h", "weekly", 0, None),
        ("event", "6h", "unit_change", 0),
    ]
    assert "by offset from the reference's windows: 0h 0/1, 3h 1/1" in capsys.readouterr().out
    assert real.model("6h", "weekly", tmp_path, 0, 5400.0)["schedule"] == {"interval": 5400.0}
    assert real.model("6h", "weekly", tmp_path)["schedule"] == {"interval": "6h"}
    for bad in ("45m", "x", "0"):
        with pytest.raises(SystemExit):
            real.main(["--interval", bad])


def test_flags_by_offset_count_each_run_at_its_end_from_the_reference_grid() -> None:
    class Run:
        def __init__(self, hours: float, flag: bool) -> None:
            self.end, self.flag = real.FIRST_RUN + hours * 3600.0, flag

    ends = [(0.5, True), (3.0, False), (6.0, True), (6.5, True), (9.0, True)]
    runs = [Run(h, f) for h, f in ends]
    assert real.by_offset(runs, 6 * 3600.0) == {"0h": [1, 1], "0.5h": [2, 2], "3h": [2, 1]}
