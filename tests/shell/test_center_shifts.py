"""A seasonal model compares a window's warm start with where it settles at that phase.

On the detection benchmark's stream with seed 2 (four regimes whose shares and levels
follow the time of day), the warm start of the tightest cluster settles 3 to 5 standard
errors away from the reference's cluster means at night, every night: its neighbour's
share moves the boundary Lloyd draws between them. The reference's centre shifts
(``SeasonalProfile.center_shifts``) carry where refitting moves the means at each phase,
so that a quiet window is about as far from its reference as its sampling noise makes
it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from monitor.bootstrap import SOURCES
from monitor.config import ModelSettings, parse
from monitor.core.kmeans import assign_labels
from monitor.pipeline import evaluate, train
from monitor.pipeline.scoring import prepare
from monitor.records import Snapshot
from monitor.sources import synthetic
from tests.fakes import MemoryHistory, MemoryStore

ORIGIN = 1_704_067_200.0  # 2024-01-01T00:00:00Z
DAY, STEP = 86400.0, 900.0


def model(rows: int = 2000, **over: object) -> ModelSettings:
    m = {
        "name": "seasonal",
        "features": ["latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps", "error_ratio"],
        "k": 4,
        "window": "15m",
        "schedule": {"interval": "15m"},
        "reference": {"window": "1d"},
        "seasonality": "daily",
        "thresholds": {"mode": "fixed"},
        "training": {"seed": 2},
        "source": {
            "kind": "synthetic",
            "seed": 2,
            "regimes": 4,
            "rows_per_window": rows,
            "seasonality": 0.2,
            "noise": 1.0,
            "origin": ORIGIN,
        },
        **over,
    }
    return parse({"models": [m]}, sources=SOURCES).models[0]


def mean_square_errors(
    snap: Snapshot, m: ModelSettings, src: synthetic.SyntheticSource
) -> np.ndarray:
    """Per cluster, the mean over the first 24 windows after the reference (00:00 to
    06:00) of the warm start's squared distance to its reference centre, in units of its
    centre's sampling variance there (about 1 where only sampling moves it)."""
    Xref = prepare(src.read_window(ORIGIN, ORIGIN + DAY).X, snap.scaler, snap.metric)
    labels, _ = assign_labels(Xref, snap.centers)
    spread = np.array([((Xref[labels == j] - Xref[labels == j].mean(0)) ** 2).sum(1).mean()
                       for j in range(snap.k)])  # fmt: skip
    out = []
    for i in range(1, 25):
        end = ORIGIN + DAY + i * STEP
        window = src.read_window(end - STEP, end)
        Xs = prepare(window.X, snap.scaler, snap.metric)
        warm = train.train_candidate(Xs, snap.centers, m, 0, 64).warm
        rows = np.bincount(assign_labels(Xs, snap.centers)[0], minlength=snap.k)
        moved = ((warm - train.reference_centers(snap, window)) ** 2).sum(1)
        out.append(moved / (spread / rows))
    return np.mean(out, axis=0)


def test_quiet_nights_stay_within_sampling_noise_of_the_shifted_reference() -> None:
    m = model()
    src = synthetic.build(m.name, m.features, m.source.options)
    _, snap = evaluate(m, src, MemoryStore(), MemoryHistory(), ORIGIN + DAY)
    assert snap.profile is not None and snap.profile.center_shifts is not None
    shifted = mean_square_errors(snap, m, src)
    unshifted = mean_square_errors(
        replace(snap, profile=replace(snap.profile, center_shifts=None)), m, src
    )
    assert shifted.max() < 2.5, shifted
    assert unshifted.max() > 8.0, unshifted


def test_the_calibration_compares_its_null_windows_with_the_shifted_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The null's warm starts are compared as a run's are: with the shifts, the tightest
    # cluster's variance between quiet windows beyond sampling (tau²) is a fraction of
    # what it is without them.
    m = model()
    m = replace(m, thresholds=replace(m.thresholds, mode="calibrated"))

    def tau2() -> float:
        src = synthetic.build(m.name, m.features, m.source.options)
        _, snap = evaluate(m, src, MemoryStore(), MemoryHistory(), ORIGIN + DAY)
        assert snap.null is not None and snap.null.drift_spread is not None
        v, tau = snap.null.drift_spread.T
        tight = int(np.argmin(v))
        return float(tau[tight] / (v[tight] / 500))  # in a 500-row centre's variance

    shifted = tau2()
    monkeypatch.setattr(
        train, "_settle_shift", lambda rows, own, snap, *_: np.zeros_like(snap.centers)
    )
    unshifted = tau2()
    assert shifted < 3.0, shifted
    assert unshifted > 3 * shifted, (shifted, unshifted)


def test_a_phase_whose_stretch_holds_few_windows_is_not_shifted() -> None:
    # Day windows under a weekly cycle, two weeks of reference: a phase's stretch (25
    # hours) holds about two windows, too few for the shift to be more than their noise.
    m = model(window="1d", reference={"window": "14d"}, seasonality="weekly", rows=200)
    src = synthetic.build(m.name, m.features, m.source.options)
    _, snap = evaluate(m, src, MemoryStore(), MemoryHistory(), ORIGIN + 14 * DAY)
    assert snap.profile is not None and snap.profile.center_shifts is not None
    assert not snap.profile.center_shifts.any()
