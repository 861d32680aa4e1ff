"""The pages' fixtures: a real daemon with a drifting and a quiet model, and one Chromium."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.pages._browser import browser
from tests.services import Service, Services

__all__ = ["DaemonPages", "browser", "daemon_pages", "explained"]

FEATURES = ["latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps", "error_ratio"]
DRIFTING, QUIET = "checkout", "search"
SHIFT_AFTER = 12.0  # seconds after the origin: the drifting model's regime 1 moves


def _model(name: str, seed: int, events: list[dict[str, Any]], origin: float) -> dict[str, Any]:
    return {
        "name": name,
        "features": FEATURES,
        "k": 4,
        "window": "15s",
        "reference": {"window": "15s"},
        "schedule": {"interval": "3s"},
        "retrain": "manual",
        "source": {
            "kind": "synthetic",
            "seed": seed,
            "regimes": 4,
            "rows_per_window": 2000,
            "seasonality": 0.2,
            "noise": 1.0,
            "origin": origin,
            "events": events,
        },
    }


def daemon_config(state_dir: Path, origin: float) -> dict[str, Any]:
    """Two models: one whose regime 1 moves 12 s after the start (manual policy: the
    candidate waits for approval), one that stays put."""
    shift = {"kind": "mean_shift", "cluster": 1, "magnitude": 4, "after": SHIFT_AFTER}
    return {
        "daemon": {"state_dir": str(state_dir), "max_workers": 2},
        "models": [_model(DRIFTING, 2, [shift], origin), _model(QUIET, 1, [], origin)],
    }


def explained(view: dict[str, Any]) -> bool:
    """Whether a model's page data explains its latest window (bins per feature)."""
    return bool(view["features"]) and view["features"][0]["bins"] is not None


class DaemonPages:
    """The running daemon and what its JSON said when the drift was explained."""

    def __init__(self, daemon: Service, state_dir: Path) -> None:
        self.daemon = daemon
        self.state_dir = state_dir

    def json(self, model: str) -> dict[str, Any]:
        """The model's page data now."""
        data: dict[str, Any] = self.daemon.get_json(f"/api/models/{model}")
        return data

    def url(self, path: str) -> str:
        return self.daemon.url + path


@pytest.fixture(scope="module")
def daemon_pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonPages]:
    """The daemon, once its drifting model has a pending candidate and an explanation."""
    workdir = tmp_path_factory.mktemp("pages")
    services = Services(workdir / "services")
    try:
        config = workdir / "monitor.yml"
        origin = time.time()
        config.write_text(yaml.safe_dump(daemon_config(workdir / "state", origin)))
        daemon = services.kmeans_monitor("run", "--config", str(config), ready_path="/readyz")
        pages = DaemonPages(daemon, workdir / "state")
        deadline = time.monotonic() + 90
        while True:
            view = pages.json(DRIFTING)
            # A quiet window before the shift may flag too (one window of reference), and
            # leave a candidate pending: the pages must show the shift's drift.
            shifted = view["latest"] and view["latest"]["window_start"] >= origin + SHIFT_AFTER
            if view["versions"]["pending"] is not None and explained(view) and shifted:
                break
            if time.monotonic() > deadline:
                raise daemon.fail(f"no pending, explained candidate: {json.dumps(view)[:2000]}")
            time.sleep(0.5)
        yield pages
    finally:
        services.close()
