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
    windows = backtest(file)["windows"][1:]  # run 0 reads the reference's last window
    assert len(windows) == 112
    assert not any(w["failed"] for w in windows)
    flags = sum(w["flag"] for w in windows)
    assert least <= flags <= most
    if config == "weekly":
        assert not any(w["page"] for w in windows)


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


def test_model_seeds_replay_each_quiet_configuration_once_per_seed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--model-seeds``: a quiet replay per configuration and seed, the seed in the model's
    ``training.seed``; the events (and their weekly control) with the first seed."""
    calls: list[tuple[str, str, str, int]] = []

    def quiet(window: str, config: str, data: Path, model_seed: int = 0) -> Any:
        calls.append(("quiet", window, config, model_seed))
        summary = {"window": window, "config": config, "model_seed": model_seed, "windows": 1,
                   "flags": 0, "pages": 0, "failed": 0, "flags_by_alert": {}, "flagged": [],
                   "seconds": 0.0}  # fmt: skip
        return summary, [False, False]

    def event(window: str, kind: str, *args: Any, model_seed: int = 0, **kw: Any) -> Any:
        calls.append(("event", window, kind, model_seed))
        return {"window": window, "kind": kind, "delay": 2, "control_delay": None, "alerts": []}

    monkeypatch.setattr(real, "quiet", quiet)
    monkeypatch.setattr(real, "event", event)
    argv = ["--windows", "6h", "--configs", "daily", "--events", "unit_change",
            "--model-seeds", "4,7", "--json", str(tmp_path / "r.json")]  # fmt: skip
    assert real.main(argv) == 0
    assert calls == [
        ("quiet", "6h", "daily", 4),
        ("quiet", "6h", "daily", 7),
        ("quiet", "6h", "weekly", 4),
        ("event", "6h", "unit_change", 4),
    ]
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in table[1:3]] == [["6h", "daily", "4"], ["6h", "daily", "7"]]
    assert json.loads((tmp_path / "r.json").read_text())["model_seeds"] == [4, 7]
    assert real.model("6h", "weekly", tmp_path, 7)["training"] == {"seed": 7}
