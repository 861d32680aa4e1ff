"""Replays through the pipeline: the synthetic and the files source, failures, and the
daemon's own exports for the same windows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor import slis as S
from monitor.bootstrap import backtest, build_app, load_settings
from monitor.config import ModelSettings, Settings
from monitor.errors import InvalidInputError
from monitor.pipeline.replay import replay
from monitor.records import Evaluation, RunFailure
from monitor.runner import classify_failure
from monitor.scheduling import run_times
from monitor.store.memory import MemoryHistory, MemorySnapshotStore
from monitor.timestamps import parse_time
from tests.fakes import FakeClock, blobs

FEATURES = ["latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps"]
T0 = parse_time("2024-03-04T00:00:00Z", "T0")


def settings(tmp_path: Path, source: dict[str, Any], **model: Any) -> Settings:
    raw = {
        "daemon": {"state_dir": str(tmp_path / "state")},
        "models": [
            {
                "name": "shop",
                "features": FEATURES,
                "k": 3,
                "window": "15m",
                "schedule": {"interval": "15m"},
                "source": source,
                "training": {"n_init": 1, "silhouette_sample": 300},
                **model,
            }
        ],
    }
    return load_settings(None, raw=raw)


def synthetic(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "synthetic",
        "seed": 5,
        "regimes": 3,
        "rows_per_window": 300,
        "origin": T0,
        "events": list(events),
    }


# A unit change x1000 puts every row of the window in one cluster: undefined indices.
@pytest.mark.filterwarnings("ignore::monitor.errors.DegenerateDataWarning")
def test_a_unit_change_flags_from_its_window_and_pages_at_the_next(tmp_path: Path) -> None:
    cfg = settings(
        tmp_path,
        synthetic({"kind": "unit_change", "after": "1h", "feature": "rps", "factor": 1000}),
    )
    r = backtest(cfg, "shop", T0, T0 + 2 * 3600)
    assert [w.end for w in r.windows] == [T0 + 900 * (i + 1) for i in range(8)]
    assert all(w.start == w.end - 900 for w in r.windows)
    assert isinstance(r.windows[0].result, Evaluation) and r.windows[0].result.promoted
    onset = 4  # the window [1h, 1h15m)
    for w in r.windows[onset:]:
        assert ("KMeansFeatureDrift", "critical", "rps") in {c.key for c in w.held}
    assert r.windows[onset].flag and r.windows[onset + 1].page
    assert not any(w.page for w in r.windows[: onset + 1])
    # The alert fires at the second flagged run in a row.
    assert not r.windows[onset].firing and r.windows[onset + 1].firing
    assert [w.flagged_runs for w in r.windows[onset - 1 : onset + 2]] == [0, 1, 2]
    assert r.alerts()["KMeansFeatureDrift"] >= 1
    assert not (tmp_path / "state").exists()  # nothing reaches the state directory
    # A model that asks for three flagged runs in a row fires a run later, on the same SLIs.
    later = backtest(
        settings(
            tmp_path,
            synthetic({"kind": "unit_change", "after": "1h", "feature": "rps", "factor": 1000}),
            thresholds={"flagged_runs_to_fire": 3},
        ),
        "shop",
        T0,
        T0 + 2 * 3600,
    )
    assert [w.result.slis for w in later.windows] == [w.result.slis for w in r.windows]
    assert [bool(w.firing) for w in later.windows[onset:]] == [False, False, True, True]
    # Its page comes with them, at the third flag (the second before 2026-12-06).
    assert [w.page for w in later.windows[onset:]] == [False, False, True, False]
    assert later.pages == 1


def test_a_failed_run_is_a_flag_of_the_data_quality_alert(tmp_path: Path) -> None:
    cfg = settings(tmp_path, synthetic({"kind": "outage", "after": "30m", "duration": "30m"}))
    r = backtest(cfg, "shop", T0, T0 + 6 * 900)
    failed = [w for w in r.windows if w.failed]
    # The reads at 30m and 45m fall in the outage [30m, 1h).
    assert [w.end - T0 for w in failed] == [1800.0, 2700.0]
    for w in failed:
        assert isinstance(w.result, RunFailure) and w.result.reason == "source_unavailable"
        assert [c.alert for c in w.held] == ["KMeansRunsFailing"] and w.flag
    assert "[2024-03-04T00:15:00Z, 2024-03-04T00:30:00Z)" in failed[0].result.window_label
    # Two failed runs in a row page at the second.
    assert [w.page for w in r.windows[:3]] == [False, False, True]
    assert r.failures == 2


def ten_minute_model() -> ModelSettings:
    """Model m: three features, k = 3, a window of ten minutes run every ten, its
    reference the window itself."""
    cfg = load_settings(
        None,
        raw={
            "models": [
                {
                    "name": "m",
                    "features": ["a", "b", "c"],
                    "k": 3,
                    "window": "10m",
                    "schedule": {"interval": "10m"},
                    "source": {"kind": "synthetic"},
                    "validation": {"min_rows": 10},
                    "reference": {"window": "10m"},
                }
            ]
        },
    )
    return cfg.models[0]


def test_replay_records_in_the_stores_it_is_given() -> None:
    model = ten_minute_model()
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])

    class Source:
        def read_window(self, start: float, end: float) -> Any:
            from monitor.records import Window

            rows = 0 if end == 1800.0 else 300  # the third window is empty: too few rows
            X = blobs(rows, centers, seed=int(start))
            return Window("m", start, end, ("a", "b", "c"), X)

        def close(self) -> None:
            pass

    store, history = MemorySnapshotStore(), MemoryHistory()
    times = [600.0, 1200.0, 1800.0, 2400.0]
    seen: list[int] = []
    r = replay(
        model,
        Source(),
        store,
        history,
        times,
        next_time=3000.0,
        durations={},
        classify=classify_failure,
        on_result=lambda i, result: seen.append(i),
    )
    assert seen == [0, 1, 2, 3]
    assert [w.failed for w in r.windows] == [False, False, True, False]
    assert r.windows[2].result.reason == "too_few_rows"  # type: ignore[union-attr]
    assert store.live_version("m") == 1
    assert [e.window_end for e in history.evaluations] == [600.0, 1200.0, 2400.0]
    assert [f.at for f in history.failures("m")] == [1800.0]
    with pytest.raises(ValueError, match="ascending"):
        replay(
            model,
            Source(),
            store,
            history,
            [600.0, 600.0],
            next_time=1.0,
            durations={},
            classify=classify_failure,
        )


def test_a_bug_in_a_replayed_run_logs_its_traceback(caplog: Any) -> None:
    """A run that fails for a reason of its own (too few rows) is in the replay's output
    alone; one that fails as ``internal`` is a bug, and its traceback goes to the log, as
    the daemon's does, for the report (before 2026-12-06 only its one-line message)."""
    model = ten_minute_model()

    class Source:
        def read_window(self, start: float, end: float) -> Any:
            from monitor.records import Window

            if end == 1800.0:
                raise ZeroDivisionError("float division by zero")
            return Window("m", start, end, ("a", "b", "c"), np.zeros((3, 3)))  # too few

        def close(self) -> None:
            pass

    caplog.set_level("INFO")
    r = replay(
        model,
        Source(),
        MemorySnapshotStore(),
        MemoryHistory(),
        [1200.0, 1800.0],
        next_time=2400.0,
        durations={},
        classify=classify_failure,
    )
    assert [w.result.reason for w in r.windows] == ["too_few_rows", "internal"]  # type: ignore[union-attr]
    errors = [rec for rec in caplog.records if rec.levelname == "ERROR"]
    assert len(errors) == 1 and "run failed (internal)" in errors[0].getMessage()
    assert "Traceback" in errors[0].getMessage() and "ZeroDivisionError" in errors[0].getMessage()


def test_replay_on_files_named_by_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    centers = np.array([[10.0, 40.0, 0.3, 100.0], [20.0, 80.0, 0.5, 300.0], [5.0, 20.0, 0.2, 50.0]])
    for i in range(6):
        t = datetime.fromtimestamp(T0 + 900 * i, UTC).strftime("%Y%m%dT%H%M%S")
        X = np.abs(blobs(200 + 10 * i, centers, seed=i, scale=1.0))
        header = ",".join(FEATURES)
        np.savetxt(data / f"tel-{t}.csv", X, delimiter=",", header=header, comments="")
    source = {
        "kind": "files",
        "path": str(data),
        "pattern": "tel-*.csv",
        "time_from": "name",
        "name_time": "%Y%m%dT%H%M%S",
    }
    # A reference of one window: the files begin at T0, and a day's period would wait for
    # a day of them (test_reference_period.py).
    cfg = settings(tmp_path, source, reference={"window": "15m"})
    r = backtest(cfg, "shop", T0, T0 + 6 * 900)
    # Each run reads the file named at its window's start: the row counts say which.
    assert [w.result.n_rows for w in r.windows] == [200 + 10 * i for i in range(6)]  # type: ignore[union-attr]


def test_backtest_refuses_what_cannot_be_replayed(tmp_path: Path) -> None:
    cfg = settings(tmp_path, synthetic())
    with pytest.raises(InvalidInputError, match="no model named 'nope'"):
        backtest(cfg, "nope", T0, T0 + 3600)
    with pytest.raises(InvalidInputError, match=r"--to .* must be after --from"):
        backtest(cfg, "shop", T0, T0)
    with pytest.raises(InvalidInputError, match="no run of model 'shop' fits"):
        backtest(cfg, "shop", T0, T0 + 600)
    yearly = settings(tmp_path, synthetic(), schedule={"cron": "0 0 1 1 *"})
    with pytest.raises(InvalidInputError, match=r"its cron '0 0 1 1 \*' does not fire between "):
        backtest(yearly, "shop", T0, T0 + 6 * 3600)


def test_backtest_refuses_files_picked_by_modification_time(tmp_path: Path) -> None:
    # Every past window would read today's newest file: six identical windows, no flag.
    (tmp_path / "data").mkdir()
    source = {"kind": "files", "path": str(tmp_path / "data"), "pattern": "*.csv"}
    with pytest.raises(InvalidInputError) as info:
        backtest(settings(tmp_path, source), "shop", T0, T0 + 6 * 900)
    assert str(info.value) == (
        "backtest: model 'shop' cannot be replayed: the files source picks each window's file "
        "by modification time (time_from: modified), so every past window would read today's "
        "newest file; set source.time_from: name with a name_time, or window: time_range"
    )


def test_run_times_interval_and_cron() -> None:
    grid = [1000.0, 1300.0, 1600.0, 1900.0]
    assert run_times(300.0, None, 1000.0, 2000.0, limit=9) == (grid, 2200.0)
    assert run_times(300.0, None, 1000.0, 900.0, limit=9) == ([], 1000.0)
    times, after = run_times(None, "0 */6 * * *", T0 + 1, T0 + 86400, limit=9)
    assert times == [T0 + h * 3600 for h in (6, 12, 18, 24)] and after == T0 + 30 * 3600


def test_run_times_stop_one_past_the_limit() -> None:
    """A range of centuries lists limit + 1 times, whatever its length."""
    assert run_times(1.0, None, 0.0, 1e11, limit=2)[0] == [0.0, 1.0, 2.0]
    times, _ = run_times(None, "* * * * *", T0 + 1, T0 + 1e11, limit=2)
    assert times == [T0 + 60, T0 + 120, T0 + 180]


def test_the_backtest_shows_what_the_daemon_exported_for_the_same_windows(tmp_path: Path) -> None:
    """The daemon (Runner, real stores, exporter) at the same window ends: equal floats.
    Its scheduled runs start a little after their whole second and take that second as
    their time (a seasonal model's phase weights differed by 1e-4 with the fraction)."""
    event = {"kind": "mean_shift", "after": "45m", "cluster": 1, "magnitude": 3}
    cfg = settings(tmp_path, synthetic(event))
    r = backtest(cfg, "shop", T0, T0 + 6 * 900)
    clock = FakeClock(T0)
    app = build_app(cfg, clock=clock)
    try:
        for w in r.windows:
            clock.t = w.end + 0.3
            result = app.runner.run_model("shop", whole_second=True)
            assert isinstance(result, Evaluation) and isinstance(w.result, Evaluation)
            exported = _samples(app.registry)
            ev = w.result
            assert exported[("kmeans_window_rows", ())] == ev.n_rows
            for key in S.SCALAR:
                assert exported[(S.SLIS[key].metric, ())] == ev.slis[key], key
            for feature, value in ev.feature_psi.items():
                assert exported[(S.SLIS[S.FEATURE_PSI].metric, (feature,))] == value
            for key, value in ev.thresholds.items():
                assert exported[(S.THRESHOLDS[key].metric, ())] == value, key
            assert exported[("kmeans_flagged_runs", ())] == w.flagged_runs
    finally:
        app.close()
    assert r.flags > 0  # the shift was seen: the comparison covered alerting values
    assert max(w.flagged_runs for w in r.windows) >= S.FLAGGED_RUNS_TO_FIRE


def _samples(registry: Any) -> dict[tuple[str, tuple[str, ...]], float]:
    """(metric, label values besides model) -> value of model 'shop', as a scrape sees it."""
    out = {}
    for family in registry.collect():
        for s in family.samples:
            if s.labels.get("model") == "shop":
                rest = tuple(v for k, v in sorted(s.labels.items()) if k != "model")
                out[(s.name, rest)] = s.value
    return out
