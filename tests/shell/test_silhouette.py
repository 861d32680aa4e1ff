"""The silhouette through the pipeline. A window whose rows all fall in one cluster has
no silhouette (0.0 by convention, below any threshold): the silhouette is no drift signal
in that window, its threshold is left out of the run (so KMeansSilhouetteDrop cannot
fire, here or in Prometheus) and the decision says why; a window of two clusters whose
silhouette drops still alerts. And the threshold is calibrated for the points a run's
silhouette is computed on (``training.silhouette_sample``)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from monitor import slis as S
from monitor.alerting import held_conditions
from monitor.errors import DegenerateDataWarning
from monitor.pipeline import evaluate
from tests.fakes import FakeSource, MemoryHistory, MemoryStore, long_and_tight, long_and_tight_model

NOW = 1_800_000_000.0


def run(store: MemoryStore, now: float, shape: str, mode: str) -> Any:
    """A window of ``long_and_tight``'s rows: both regimes ("both"), the long one alone
    ("one"), or both with the tight one spread over the gap between them ("blurred")."""

    def rows(start: float, end: float) -> np.ndarray:
        X = long_and_tight(1000, seed=int(start) % 100_000)
        if shape == "one":
            return X[:500]
        if shape == "blurred":
            X[500:, 1] = np.linspace(0.5, 8.0, 500)
        return X

    m = long_and_tight_model(thresholds={"mode": mode})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        ev, _ = evaluate(m, FakeSource(("a", "b"), rows), store, MemoryHistory(), now)
    return ev


@pytest.mark.parametrize("mode", ["fixed", "calibrated"])
def test_a_window_in_one_cluster_is_no_silhouette_drop(mode: str) -> None:
    store = MemoryStore()
    run(store, NOW, "both", mode)
    one = run(store, NOW + 3600, "one", mode)
    assert sorted(one.cluster_sizes) == [0, 500] and one.slis[S.SILHOUETTE] == 0.0
    assert S.THRESHOLD_SILHOUETTE_MIN not in one.thresholds
    assert "KMeansSilhouetteDrop" not in {c.alert for c in held_conditions(one)}
    assert "no drift signal in this window, whose rows fall in one cluster: silhouette" in (
        one.decision
    )
    blurred = run(store, NOW + 7200, "blurred", mode)
    threshold = blurred.thresholds[S.THRESHOLD_SILHOUETTE_MIN]
    assert 0.0 < blurred.slis[S.SILHOUETTE] < threshold
    assert "KMeansSilhouetteDrop" in {c.alert for c in held_conditions(blurred)}
    assert "one cluster" not in blurred.decision


def test_the_silhouette_threshold_is_calibrated_for_the_points_a_run_samples() -> None:
    """``training.silhouette_sample`` reaches the calibration: a run that computes its
    silhouette on 100 of a window's 1,000 rows gets a lower threshold than one on 1,000."""

    def rows(start: float, end: float) -> np.ndarray:
        return long_and_tight(1000, seed=int(start) % 100_000)

    thresholds = []
    for sample in (100, 1000):
        training = {"n_init": 2, "seed": 3, "silhouette_sample": sample}
        m = long_and_tight_model(training=training)
        ev, _ = evaluate(m, FakeSource(("a", "b"), rows), MemoryStore(), MemoryHistory(), NOW)
        thresholds.append(ev.thresholds[S.THRESHOLD_SILHOUETTE_MIN])
    assert thresholds[0] < thresholds[1] - 0.01
