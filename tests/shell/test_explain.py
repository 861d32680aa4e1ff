"""Explanations: bin shares and cluster shifts worked out by hand, the window sampler, and
the top-feature series the exporter makes of them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from monitor.explain import SAMPLE_ROWS, WindowSampler, explain, rescaled
from monitor.exporter import TOP_FEATURE_METRIC, ModelSpec, MonitorState
from monitor.records import OutlierThresholds, ReferenceBins, Scaler, Window
from monitor.simulator import Event, Simulator, SimulatorOptions
from tests.fakes import FakeSource
from tests.shell.test_exporter import samples
from tests.store._store_factories import make_evaluation, make_snapshot


def _snapshot(version: int = 3) -> object:
    """Two features scaled by (x - 10) / 2 and (y - 0) / 100; centres at the origin and (2, 0)."""
    return make_snapshot(
        "m1",
        k=2,
        d=2,
        version=version,
        centers=np.array([[0.0, 0.0], [2.0, 0.0]]),
        scaler=Scaler("standard", np.array([10.0, 0.0]), np.array([2.0, 100.0])),
        bins=ReferenceBins(
            edges=(np.array([0.0]), np.array([-1.0, 1.0])),
            reference_fractions=(np.array([0.5, 0.5]), np.array([0.25, 0.5, 0.25])),
            epsilon=1e-4,
            strategy="quantile",
        ),
        reference_shares=np.array([0.5, 0.5]),
        outliers=OutlierThresholds(np.array([1.0, 1.0]), 0.99),
    )


def test_bin_shares_and_cluster_shifts_worked_out_by_hand() -> None:
    live = _snapshot()
    # Raw rows; scaled: (0, 0), (0, 2), (2.5, 0.5), (1.5, 0.5).
    rows = np.array([[10.0, 0.0], [10.0, 200.0], [15.0, 50.0], [13.0, 50.0]])
    e = explain(live, rows, 100.0, 200.0)
    assert (e.model, e.version, e.n_sample, e.units) == ("m1", 3, 4, "raw")
    f0, f1 = e.features
    # Edges come back in the features' own units: 0 scaled is 10 raw; -1, 1 is -100, 100.
    assert f0.edges == (10.0,) and f1.edges == (-100.0, 100.0)
    # Right-closed bins: 0 falls in (-inf, 0], 2.5 and 1.5 above it.
    assert f0.current == (0.5, 0.5) and f0.reference == (0.5, 0.5)
    assert f1.current == (0.0, 0.75, 0.25)
    # Rows 0 and 1 are nearest centre 0, rows 2 and 3 centre 1.
    c0, c1 = e.clusters
    assert (c0.n_sample, c1.n_sample) == (2, 2)
    assert c0.shift_scaled == (0.0, 1.0) and c1.shift_scaled == (0.0, 0.5)
    assert c0.centre == (10.0, 0.0) and c0.mean == (10.0, 100.0)  # raw units
    assert c1.centre == (14.0, 0.0) and c1.mean == (14.0, 50.0)
    assert e.top_feature(0) == "f1" and e.top_feature(1) == "f1"


def test_a_cluster_without_points_has_no_top_feature() -> None:
    e = explain(_snapshot(), np.array([[10.0, 0.0]]), 0.0, 1.0)
    assert e.clusters[1].n_sample == 0 and e.clusters[1].mean == e.clusters[1].centre
    assert e.top_feature(1) is None
    assert e.top_feature(0) is None  # a point on its centre moved nothing


def test_the_sampler_keeps_a_bounded_seeded_sample_of_finite_rows() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(SAMPLE_ROWS * 2, 2))
    X[0, 1] = np.nan
    source = FakeSource(("a", "b"), lambda start, end: X)
    sampler = WindowSampler({"m1": source})
    window = sampler.sources["m1"].read_window(10.0, 20.0)
    assert window.X is X  # the pipeline gets the window untouched
    kept = sampler.sample("m1", 10.0, 20.0)
    # Rows are drawn, then those with a NaN left out: at most one here.
    assert kept is not None and np.isfinite(kept).all()
    assert kept.shape[1] == 2 and SAMPLE_ROWS - 1 <= kept.shape[0] <= SAMPLE_ROWS
    assert {tuple(row) for row in kept} <= {tuple(row) for row in X[1:]}
    small = WindowSampler({"m1": source})
    small.keep("m1", Window("m1", 0.0, 1.0, ("a", "b"), X[:10]))
    assert small.sample("m1", 0.0, 1.0).shape == (9, 2)  # all rows, the NaN one left out
    again = WindowSampler({"m1": source})
    again.sources["m1"].read_window(10.0, 20.0)
    np.testing.assert_array_equal(again.sample("m1", 10.0, 20.0), kept)  # same window, same rows
    assert sampler.sample("m1", 20.0, 30.0) is None
    for i in range(5):  # only the latest few windows are kept
        sampler.keep("m1", Window("m1", float(i), i + 1.0, ("a", "b"), X[:3]))
    assert sampler.sample("m1", 10.0, 20.0) is None
    assert sampler.sample("m1", 4.0, 5.0) is not None


def test_the_top_feature_of_each_drifted_cluster_is_exported() -> None:
    spec = ModelSpec("m1", ("f0", "f1"), 60.0, 30.0, 86400.0, 0.99)
    state = MonitorState([spec], started_at=0.0, version="x")
    live = _snapshot()
    ev = make_evaluation(
        "m1", centroid_drift=(0.4, 0.0), cluster_sizes=(2, 2), cluster_shares=(0.5, 0.5)
    )
    state.record_success(ev, live, duration=1.0, at=1.0)
    metric = lambda got: {k: v for k, v in got.items() if k[0] == TOP_FEATURE_METRIC}  # noqa: E731
    assert metric(samples(state)) == {}  # not explained yet
    rows = np.array([[10.0, 0.0], [10.0, 200.0], [15.0, 50.0], [13.0, 50.0]])
    state.set_explanation(explain(live, rows, ev.window_start, ev.window_end))
    # Cluster 1 has no drift: no series for it.
    assert metric(samples(state)) == {
        (TOP_FEATURE_METRIC, (("cluster", "0"), ("feature", "f1"), ("model", "m1"))): 1.0
    }
    # Another window, or another live snapshot, and the explanation no longer applies.
    state.set_explanation(explain(live, rows, 0.0, 1.0))
    assert metric(samples(state)) == {}
    state.set_explanation(explain(live, rows, ev.window_start, ev.window_end))
    state.set_live(_snapshot(version=4))
    assert metric(samples(state)) == {}
    assert state.status("m1").explanation is None


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_explanations_of_a_real_model(metric: str) -> None:
    live = dataclasses.replace(_snapshot(), metric=metric)
    rows = np.random.default_rng(1).normal(loc=[12.0, 30.0], scale=[1.0, 50.0], size=(400, 2))
    e = explain(live, rows, 0.0, 1.0)
    for f in e.features:
        assert sum(f.current) == pytest.approx(1.0) and len(f.current) == len(f.edges) + 1
    assert sum(c.n_sample for c in e.clusters) == 400
    assert e.units == ("scaled" if metric == "cosine" else "raw")


SIMULATED = ("latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps", "error_ratio")
T0 = 1_700_000_000.0
DAY = 86400.0


def _simulated(seasonality: float | None, *events: Event) -> Simulator:
    options = SimulatorOptions(seed=3, origin=T0, rows_per_window=1000, events=events)
    if seasonality is not None:
        options = dataclasses.replace(options, seasonality=seasonality)
    return Simulator(SIMULATED, options)


def _reference(sim: Simulator) -> np.ndarray:
    """A day of 30 s windows every half hour: the reference sample a snapshot keeps."""
    return np.concatenate([sim.sample(T0 + i * 1800, T0 + i * 1800 + 30).X for i in range(48)])


@pytest.mark.parametrize("seasonality", [0.0, None])  # None: the simulator's daily cycle
def test_a_unit_change_is_named_with_its_factor_and_a_quiet_day_names_nothing(
    seasonality: float | None,
) -> None:
    reference = _reference(_simulated(seasonality))
    quiet = _simulated(seasonality)
    for i in range(48):  # every half hour of the next day, each phase of the cycle
        start = T0 + DAY + i * 1800 + 600
        assert rescaled(SIMULATED, reference, quiet.sample(start, start + 30).X) == ()
    for feature, factor in (("latency_p50_ms", 1000.0), ("rps", 0.001), ("cpu_ratio", 10.0)):
        event = Event("unit_change", after=DAY + 600, feature=feature, factor=factor)
        start = T0 + DAY + 900
        window = _simulated(seasonality, event).sample(start, start + 30).X
        (found,) = rescaled(SIMULATED, reference, window)
        assert (found.feature, found.factor) == (feature, factor)
        assert 0.5 < found.median_ratio / factor < 2 and 0.5 < found.spread_ratio / factor < 2


def test_a_level_shift_wider_noise_or_too_few_rows_name_no_unit_change() -> None:
    rng = np.random.default_rng(1)
    reference = rng.lognormal(3.0, 0.5, size=(2000, 2))
    assert rescaled(("a", "b"), reference, reference * [1.0, 1000.0])[0].feature == "b"
    shifted = reference + np.array([200.0, 0.0])  # the median 10x, the spreads unchanged
    assert rescaled(("a", "b"), reference, shifted) == ()
    wider = np.exp(3.0 + 2.5 * (np.log(reference) - 3.0))  # spreads 10x and more, not the median
    assert rescaled(("a", "b"), reference, wider) == ()
    assert rescaled(("a", "b"), reference[:99], reference[:99] * 1000) == ()


def test_the_explanation_names_a_rescaled_feature_against_the_live_sample() -> None:
    rng = np.random.default_rng(2)
    sample = rng.lognormal(3.0, 0.5, size=(500, 2))
    live = dataclasses.replace(_snapshot(), sample=sample)
    assert explain(live, sample[::-1], 0.0, 1.0).rescaled == ()
    (found,) = explain(live, sample * [1.0, 1000.0], 0.0, 1.0).rescaled
    assert (found.feature, found.factor) == ("f1", 1000.0)
