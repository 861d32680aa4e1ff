"""The daemon serves the label API on its own server: its first model, the promotions
of its own runs at once (not at the next poll), and the serving series on /metrics."""

from __future__ import annotations

import dataclasses
import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.bootstrap import build_app, load_settings
from monitor.daemon import Daemon
from monitor.records import Evaluation, RunFailure
from monitor.serving.client import LabelsClient, LabelsError
from monitor.timestamps import parse_time
from tests.fakes import FakeClock
from tests.serving._support import wait_until

FEATURES = ["latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps"]
T0 = parse_time("2024-03-04T00:00:00Z", "T0")


def settings(tmp_path: Path, *, enabled: bool = True, refresh: str = "1h") -> Any:
    shift = {"kind": "mean_shift", "after": "30m", "cluster": 1, "magnitude": 4}
    raw = {
        "daemon": {"state_dir": str(tmp_path / "state"), "listen": "127.0.0.1:0"},
        "serving": {"enabled": enabled, "refresh": refresh},
        "models": [
            {
                "name": "shop",
                "features": FEATURES,
                "k": 3,
                "window": "15m",
                "schedule": {"interval": "15m"},
                "retrain": "on-drift",
                # One window: on-drift promotes at a drift's first run (a longer period
                # waits until the drift has lasted it: docs/slis.md, "Retrained models").
                "reference": {"window": "15m"},
                "source": {
                    "kind": "synthetic",
                    "seed": 5,
                    "regimes": 3,
                    "rows_per_window": 300,
                    "origin": T0,
                    "events": [shift],
                },
                "training": {"n_init": 1, "silhouette_sample": 300},
            }
        ],
    }
    return load_settings(None, raw=raw)


def test_the_daemon_serves_labels_and_follows_its_own_promotions(tmp_path: Path) -> None:
    clock = FakeClock(T0 + 900)
    app = build_app(settings(tmp_path), clock=clock)  # refresh 1h: only runs reload here
    daemon = Daemon(app)
    daemon.http.start()  # the server alone: the test runs the model itself
    try:
        rows = np.array([[50.0, 200.0, 0.5, 100.0]])
        with LabelsClient(daemon.url) as client:
            try:
                client.labels("shop", rows)
            except LabelsError as exc:
                assert (exc.status, exc.code) == (503, "no_model")  # nothing trained yet
            versions = []
            for _ in range(6):
                result = app.runner.run_model("shop")
                assert isinstance(result, Evaluation)
                # Served at once: the run's callback reloads the model it changed.
                live = app.store.live_version("shop")
                versions.append((live, client.labels("shop", rows).version))
                clock.advance(900)
        assert all(live == served for live, served in versions), versions
        assert versions[-1][0] > 1  # the shift made a run promote a new version
        with urllib.request.urlopen(daemon.url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        served = {
            s.labels["variant"]: s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name == "kmeans_serving_model_version"
        }
        assert served == {"live": versions[-1][0], "canary": 0}
    finally:
        daemon.http.stop()
        app.close()


def test_serving_can_be_turned_off(tmp_path: Path) -> None:
    app = build_app(settings(tmp_path, enabled=False), clock=FakeClock(T0 + 900))
    daemon = Daemon(app)
    daemon.http.start()
    try:
        assert app.serving is None
        request = urllib.request.Request(daemon.url + "/v1/models/shop/labels", data=b"{}")
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404  # no API: no such path, whatever the method
        with urllib.request.urlopen(daemon.url + "/metrics", timeout=10) as r:
            assert "kmeans_serving_" not in r.read().decode()
    finally:
        daemon.http.stop()
        app.close()


def test_the_daemon_follows_a_rollback_typed_elsewhere(tmp_path: Path) -> None:
    """Between runs (here every 15 min), the pointers are read every serving.refresh."""
    app = build_app(settings(tmp_path, refresh="0.05s"), clock=FakeClock(T0 + 900))
    assert isinstance(app.runner.run_model("shop"), Evaluation)
    copy = app.store.save(dataclasses.replace(app.store.load("shop", 1), reason="manual"))
    daemon = Daemon(app)
    daemon.start()
    try:
        rows = np.array([[50.0, 200.0, 0.5, 100.0]])
        # The run the scheduler starts at once ends first: after it, no run (and so no
        # reload after a run) comes for 15 minutes.
        assert wait_until(lambda: app.state.view()[0].runs >= 2, timeout=60)
        with LabelsClient(daemon.url) as client:
            assert client.labels("shop", rows).version == 1
            app.store.set_live("shop", copy.version)  # `snapshots rollback shop --to 2`
            assert wait_until(lambda: client.labels("shop", rows).version == copy.version)
    finally:
        daemon.stop()


def test_a_live_version_that_does_not_load_makes_the_daemon_unready(tmp_path: Path) -> None:
    """As `serve` answers (docs/serving.md): the daemon's API cannot serve the model."""
    app = build_app(settings(tmp_path), clock=FakeClock(T0 + 900))
    assert isinstance(app.runner.run_model("shop"), Evaluation)
    app.close()
    manifest = tmp_path / "state" / "snapshots" / "shop" / "v000001" / "manifest.json"
    doc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**doc, "created_at": doc["created_at"] + 1}))  # corrupt
    app = build_app(settings(tmp_path), clock=FakeClock(T0 + 1800))
    daemon = Daemon(app)
    daemon.http.start()
    try:
        assert app.ready() == (False, "serving: shop: live version 1 does not load")
        with LabelsClient(daemon.url) as client, pytest.raises(LabelsError) as info:
            client.labels("shop", np.array([[50.0, 200.0, 0.5, 100.0]]))
        assert (info.value.status, info.value.code, info.value.message) == (
            503,
            "no_model",
            "model 'shop' has no version to serve: live version 1 does not load",
        )
    finally:
        daemon.http.stop()
        app.close()


def test_a_state_directory_deleted_under_the_daemon_makes_it_unready(tmp_path: Path) -> None:
    # Its models read as "no model yet": /readyz said ready while nothing was served.
    app = build_app(settings(tmp_path), clock=FakeClock(T0 + 900))
    try:
        assert isinstance(app.runner.run_model("shop"), Evaluation)
        assert app.ready()[0]
        shutil.rmtree(tmp_path / "state")
        assert app.ready() == (False, _lost(tmp_path / "state"))
    finally:
        app.close()


def _lost(state: Path) -> str:
    return (
        f"the state directory {state} was deleted or replaced under this process, which "
        "still holds the old one (its history and lock): nothing runs until the daemon is "
        "restarted"
    )


def test_a_state_directory_deleted_and_restored_under_the_daemon_runs_nothing(
    tmp_path: Path,
) -> None:
    # The daemon wrote its runs into the deleted history.sqlite, held no lock on the
    # restored directory, and trained a reference at every run while it was gone (h150).
    app = build_app(settings(tmp_path), clock=FakeClock(T0 + 900))
    try:
        assert isinstance(app.runner.run_model("shop"), Evaluation)
        shutil.rmtree(tmp_path / "state")
        failed = app.runner.run_model("shop")
        assert isinstance(failed, RunFailure)
        assert (failed.reason, failed.message) == ("store", _lost(tmp_path / "state"))
        (tmp_path / "state" / "snapshots").mkdir(parents=True)  # "restored"
        again = app.runner.run_model("shop")
        assert isinstance(again, RunFailure) and again.message == failed.message
        assert app.ready() == (False, _lost(tmp_path / "state"))
        assert not (tmp_path / "state" / "snapshots" / "shop").exists()  # nothing trained
    finally:
        app.close()


def test_a_history_database_deleted_under_the_daemon_runs_nothing(tmp_path: Path) -> None:
    app = build_app(settings(tmp_path), clock=FakeClock(T0 + 900))
    try:
        history = tmp_path / "state" / "history.sqlite"
        history.unlink()
        failed = app.runner.run_model("shop")
        assert isinstance(failed, RunFailure)
        assert failed.message.startswith(f"the history database {history} was deleted")
    finally:
        app.close()
