"""The centroid drift in standard errors through the pipeline: a tight cluster's small move
is seen where the largest drift, set by a wide cluster, is not; quiet windows stay under
its threshold; without a calibration's drift spread it is not measured, and says so."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from monitor import slis as S
from monitor.alerting import held_conditions
from monitor.config import ModelSettings
from monitor.pipeline import evaluate, train
from tests.fakes import (
    FakeSource,
    MemoryHistory,
    MemoryStore,
    long_and_tight,
    long_and_tight_model,
)

FEATURES = ("a", "b")
NOW = 1_800_000_000.0


def model(mode: str = "calibrated") -> ModelSettings:
    return long_and_tight_model(thresholds={"mode": mode})


def run(m: ModelSettings, store: MemoryStore, now: float, move: float = 0.0) -> Any:
    """A window of the long cluster around (0, 0) and the tight one around (0, 8), the
    tight one moved by ``move`` along b. Its centre's standard error is about 0.04: 0.019
    from the window's 500 rows, the rest from the reference at the window's phase of the
    day (a few hours' windows), which the drift spread's ``tau^2`` holds."""

    def rows(start: float, end: float) -> np.ndarray:
        X = long_and_tight(1000, seed=int(start) % 100_000)
        X[500:, 1] += move
        return X

    ev, _ = evaluate(m, FakeSource(FEATURES, rows), store, MemoryHistory(), now)
    return ev


def test_a_tight_cluster_s_small_move_is_seen_in_standard_errors_only() -> None:
    m, store = model(), MemoryStore()
    run(m, store, NOW)
    live = store.load("m")
    assert live.null is not None and live.null.drift_spread is not None
    quiet = [run(m, store, NOW + h * 3600) for h in (1, 2, 3)]
    moved = run(m, store, NOW + 4 * 3600, move=0.3)
    se = moved.thresholds[S.THRESHOLD_CENTROID_DRIFT_SE]
    assert all(0.0 < ev.slis[S.CENTROID_DRIFT_SE] < se for ev in quiet)
    assert moved.slis[S.CENTROID_DRIFT_SE] > 1.5 * se
    assert moved.slis[S.CENTROID_DRIFT_MAX] < moved.thresholds[S.THRESHOLD_CENTROID_DRIFT]
    held = {c.alert for c in held_conditions(moved)}
    assert "KMeansClusterMoved" in held and "KMeansCentroidDrift" not in held
    assert "centroid drift in standard errors" in moved.decision


def test_the_fixed_mode_does_not_measure_it() -> None:
    m, store = model("fixed"), MemoryStore()
    first = run(m, store, NOW)
    ev = run(m, store, NOW + 3600, move=0.3)
    assert S.THRESHOLD_CENTROID_DRIFT_SE not in ev.thresholds
    # Undefined, not 0 (f19: 0 standard errors read as no drift, and /metrics said so).
    assert S.CENTROID_DRIFT_SE not in ev.slis and S.CENTROID_DRIFT_SE not in first.slis
    assert ev.slis[S.CENTROID_DRIFT_MAX] > 0.0
    assert "centroid_drift_se" not in ev.decision
    # Nor on a model trained calibrated and then run in mode fixed (helper-77: it was
    # measured, with the fixed 4.0 as its threshold).
    store = MemoryStore()
    run(model(), store, NOW)
    ev = run(m, store, NOW + 3600, move=0.3)
    assert S.THRESHOLD_CENTROID_DRIFT_SE not in ev.thresholds
    assert S.CENTROID_DRIFT_SE not in ev.slis
    assert "centroid_drift_se" not in ev.decision


def test_a_calibration_stored_before_the_drift_spread_leaves_it_undefined() -> None:
    m, store = model(), MemoryStore()
    run(m, store, NOW)
    live = store.load("m")
    assert live.null is not None
    null = dataclasses.replace(live.null, drift_spread=None)
    store.save(dataclasses.replace(live, null=null, version=0, checksum=""), state="live")
    ev = run(m, store, NOW + 3600, move=0.3)
    assert S.THRESHOLD_CENTROID_DRIFT_SE not in ev.thresholds
    # Undefined, not 0 (helper-161: /metrics read 0 standard errors with a drift of 3,000).
    assert S.CENTROID_DRIFT_SE not in ev.slis
    assert ev.slis[S.CENTROID_DRIFT_MAX] > 0.0
    assert "rows: centroid_drift_se" not in ev.decision  # its age, not the row count
    assert "stored before kmeans-monitor measured centroid_drift_se: a new version" in (ev.decision)


def test_a_restart_that_settles_elsewhere_moves_the_drift_not_the_standard_errors(
    monkeypatch: Any,
) -> None:
    """Where a k-means++ restart beats the warm start by landing on another local optimum
    (overlapping clusters, a small window), the candidate's centres sit far from the live
    ones although no cluster moved. The centroid drift measures the candidate (what a
    retrain would promote); the drift in standard errors measures the warm start, which
    follows each live cluster, so such a window does not read as a cluster that moved."""
    m, store = model(), MemoryStore()
    run(m, store, NOW)
    honest = run(m, store, NOW + 3600)
    real = train.train_candidate

    def settles_elsewhere(*args: Any, **kwargs: Any) -> train.Candidate:
        fit = real(*args, **kwargs)
        centers = fit.centers.copy()
        centers[0] += 3.0  # one centre of the candidate moved far; the warm start as found
        return fit._replace(centers=centers)

    monkeypatch.setattr(train, "train_candidate", settles_elsewhere)
    flipped = run(m, store, NOW + 3600)
    assert flipped.slis[S.CENTROID_DRIFT_MAX] > 2.5
    assert flipped.slis[S.CENTROID_DRIFT_SE] == honest.slis[S.CENTROID_DRIFT_SE]
    assert flipped.slis[S.CENTROID_DRIFT_SE] < flipped.thresholds[S.THRESHOLD_CENTROID_DRIFT_SE]
