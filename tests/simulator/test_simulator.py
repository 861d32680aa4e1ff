"""The simulator: reproducibility, the shape of the data, each drift event, instants."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from monitor.errors import InvalidInputError, SourceError
from monitor.simulator import DEFAULT_ROWS_PER_WINDOW, Event, Simulator, SimulatorOptions
from monitor.timestamps import format_time

FEATURES = ("latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps", "error_ratio")
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
BASE = SimulatorOptions(seed=3, regimes=4, rows_per_window=3000, seasonality=0.0)


def _latent(X: np.ndarray) -> np.ndarray:
    """Back to the simulator's latent space: log of levels, logit of ratios."""
    Z = np.log(X)
    for j, name in enumerate(FEATURES):
        if name.endswith("ratio"):
            Z[:, j] = np.log(X[:, j] / (1 - X[:, j]))
    return Z


def _pair(event: Event, options: SimulatorOptions = BASE, start: float = T0, span: float = 600):
    """The same window with and without ``event``; origin pinned at ``start``."""
    plain = Simulator(FEATURES, replace(options, origin=start)).sample(start, start + span)
    with_event = replace(options, origin=start, events=(event,))
    return plain, Simulator(FEATURES, with_event).sample(start, start + span)


# --------------------------------------------------------------------------- reproducibility


def test_same_window_same_rows_across_instances() -> None:
    a = Simulator(FEATURES, BASE).sample(T0, T0 + 300)
    b = Simulator(FEATURES, BASE).sample(T0, T0 + 300)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.regimes, b.regimes)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)


def test_reading_other_windows_in_between_changes_nothing() -> None:
    sim = Simulator(FEATURES, replace(BASE, origin=T0))
    first = sim.rows(T0 + 600, T0 + 900)
    sim.rows(T0, T0 + 300)
    np.testing.assert_array_equal(first, sim.rows(T0 + 600, T0 + 900))


@pytest.mark.parametrize(
    ("other_start", "other_seed"),
    [(T0 + 300, 3), (T0, 4)],
    ids=["other window", "other seed"],
)
def test_other_window_or_seed_other_rows(other_start: float, other_seed: int) -> None:
    a = Simulator(FEATURES, BASE).rows(T0, T0 + 300)
    b = Simulator(FEATURES, replace(BASE, seed=other_seed)).rows(other_start, other_start + 300)
    assert a.shape == b.shape
    assert not np.any(a == b)


@pytest.mark.parametrize("chunk", [1000, 4096, 7])
def test_chunked_generation_equals_unchunked(chunk: int) -> None:
    options = replace(
        BASE,
        seasonality=0.5,
        origin=T0,
        events=(
            Event("new_cluster", after=100),
            Event("variance", after=200, factor=2.0, cluster=1),
            Event("nan_burst", after=50, duration=100, ratio=0.2),
        ),
    )
    sim = Simulator(FEATURES, options)
    whole = sim._sample(T0, T0 + 900, 9000, chunk=10**6)
    parts = sim._sample(T0, T0 + 900, 9000, chunk=chunk)
    np.testing.assert_array_equal(whole.X, parts.X)
    np.testing.assert_array_equal(whole.regimes, parts.regimes)


# --------------------------------------------------------------------------- shape of the data


@pytest.mark.parametrize(
    ("options", "span", "n"),
    [
        (SimulatorOptions(rows_per_window=123), 60.0, 123),
        (SimulatorOptions(), 60.0, DEFAULT_ROWS_PER_WINDOW),
        (SimulatorOptions(rate=5), 60.0, 300),
        (SimulatorOptions(rate=0.29), 100.0, 29),  # 28.999999999999996 before rounding
        (SimulatorOptions(rate=0.5), 1.0, 0),
    ],
)
def test_volume(options: SimulatorOptions, span: float, n: int) -> None:
    rows = Simulator(FEATURES, options).sample(T0, T0 + span)
    assert rows.X.shape == (n, len(FEATURES))
    assert rows.timestamps.shape == rows.regimes.shape == (n,)


def test_a_rate_that_would_fill_memory_is_a_source_error_before_any_row() -> None:
    sim = Simulator(FEATURES, SimulatorOptions(rate=1e300))
    with pytest.raises(SourceError) as info:
        sim.sample(T0, T0 + 300)
    assert str(info.value) == (
        "a window of 300 s at rate 1e+300 rows/s holds 3e+302 rows; at most 10000000 a "
        "window: lower source.rate"
    )


def test_rows_are_ordered_in_the_window_and_service_like() -> None:
    rows = Simulator(FEATURES, replace(BASE, seasonality=0.3)).sample(T0, T0 + 300)
    t = rows.timestamps
    assert t[0] >= T0 and t[-1] < T0 + 300 and np.all(np.diff(t) >= 0)
    ratios = rows.X[:, [2, 4]]
    assert np.all((ratios > 0) & (ratios < 1))
    assert np.all(rows.X > 0)
    # Service metrics are right-skewed: within one regime, log-normal levels have positive
    # skewness (scipy's estimator; the population value for sigma ~0.15 is ~0.45).
    one = rows.X[rows.regimes == 0]
    assert stats.skew(one[:, 3]) > 0.1
    # Tail latency above the median in every row: the percentiles share their regime level.
    assert np.all(rows.X[:, 1] > rows.X[:, 0])


def test_regimes_are_clusters_that_kmeans_recovers() -> None:
    rows = Simulator(FEATURES, BASE).sample(T0, T0 + 300)
    Z = _latent(rows.X)
    Z = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    labels = KMeans(n_clusters=4, n_init=4, random_state=0).fit_predict(Z)
    # Regime levels are dealt >= 0.75 latent units apart per feature against a spread of
    # at most 0.2, so clusters barely overlap: scikit-learn should find them almost exactly.
    assert adjusted_rand_score(rows.regimes, labels) > 0.98


def test_seasonality_moves_shares_and_levels_with_the_time_of_day() -> None:
    midnight = 1_700_006_400.0  # 2023-11-15T00:00:00Z
    noon = midnight + 43_200

    def shares_and_level(seasonality: float, t: float) -> tuple[np.ndarray, float]:
        options = replace(BASE, seasonality=seasonality, rows_per_window=20_000)
        rows = Simulator(FEATURES, options).sample(t, t + 600)
        in_zero = rows.regimes == 0
        return np.bincount(rows.regimes, minlength=4) / rows.X.shape[0], float(
            np.median(np.log(rows.X[in_zero, 3]))
        )

    flat_a, level_a = shares_and_level(0.0, midnight)
    flat_b, level_b = shares_and_level(0.0, noon)
    # Without seasonality two times of day differ only by sampling: a share's standard
    # error is below 0.004 at n=20000, so 0.02 is five of them.
    assert np.max(np.abs(flat_a - flat_b)) < 0.02
    assert abs(level_a - level_b) < 0.02
    wavy_a, wlevel_a = shares_and_level(1.0, midnight)
    wavy_b, wlevel_b = shares_and_level(1.0, noon)
    assert np.max(np.abs(wavy_a - wavy_b)) > 0.1
    assert abs(wlevel_a - wlevel_b) > 0.2


# --------------------------------------------------------------------------- events


@pytest.mark.parametrize("cluster", [1, None])
def test_mean_shift_moves_one_regime_by_its_own_spread(cluster: int | None) -> None:
    plain, shifted = _pair(
        Event("mean_shift", after=300, cluster=cluster, feature="rps", magnitude=4)
    )
    np.testing.assert_array_equal(plain.regimes, shifted.regimes)
    after = plain.timestamps >= T0 + 300
    hit = after & ((plain.regimes == cluster) if cluster is not None else True)
    untouched = np.ones_like(plain.X, dtype=bool)
    untouched[hit, 3] = False
    np.testing.assert_array_equal(plain.X[untouched], shifted.X[untouched])
    log_ratio = np.log(shifted.X[hit, 3] / plain.X[hit, 3])
    for r in np.unique(plain.regimes[hit]):
        in_r = plain.regimes[hit] == r
        # Every row of a regime moves by the same factor: magnitude x the regime's spread.
        assert np.ptp(log_ratio[in_r]) < 1e-9
        spread = np.std(np.log(plain.X[plain.regimes == r, 3]))
        # The spread estimated from ~750 rows has a relative standard error near 2.6%;
        # 12% is more than four of them.
        assert log_ratio[in_r][0] / 4 == pytest.approx(spread, rel=0.12)


def test_variance_scales_the_noise_around_the_regime_level() -> None:
    plain, wide = _pair(Event("variance", after=300, factor=3.0, cluster=2))
    rows = (plain.timestamps >= T0 + 300) & (plain.regimes == 2)
    zp, zw = _latent(plain.X[rows]), _latent(wide.X[rows])
    # (zw - c) = 3 (zp - c) for the regime's latent level c: solving for c gives one value.
    level = (3 * zp - zw) / 2
    assert np.all(np.ptp(level, axis=0) < 1e-6)
    others = ~rows
    np.testing.assert_allclose(plain.X[others], wide.X[others], rtol=0, atol=0)


@pytest.mark.parametrize("duration", [None, 120.0])
def test_unit_change_multiplies_one_feature_while_in_force(duration: float | None) -> None:
    plain, scaled = _pair(
        Event("unit_change", after=300, duration=duration, feature="rps", factor=1000)
    )
    t = plain.timestamps
    during = (t >= T0 + 300) & (t < T0 + 300 + (duration or math.inf))
    np.testing.assert_allclose(scaled.X[during, 3], 1000 * plain.X[during, 3], rtol=1e-15)
    np.testing.assert_array_equal(scaled.X[~during], plain.X[~during])
    np.testing.assert_array_equal(np.delete(scaled.X, 3, axis=1), np.delete(plain.X, 3, axis=1))
    assert during.any() and (~during).any()


@pytest.mark.parametrize("feature", [None, "cpu_ratio"])
def test_nan_burst_blanks_one_cell_in_a_share_of_rows(feature: str | None) -> None:
    plain, holed = _pair(Event("nan_burst", after=100, duration=300, ratio=0.3, feature=feature))
    t = plain.timestamps
    during = (t >= T0 + 100) & (t < T0 + 400)
    nan = np.isnan(holed.X)
    assert not nan[~during].any()
    per_row = nan.sum(axis=1)
    assert set(per_row.tolist()) == {0, 1}
    if feature is not None:
        assert nan[:, 2].sum() == per_row.sum()
    else:
        assert np.count_nonzero(nan.any(axis=0)) == len(FEATURES)
    share = per_row[during].mean()
    # 1500 rows in the burst: the standard error of the share is 0.012; 0.05 is four of them.
    assert share == pytest.approx(0.3, abs=0.05)
    np.testing.assert_array_equal(holed.X[~nan], plain.X[~nan])


def test_vanish_removes_a_regime_while_in_force() -> None:
    plain, gone = _pair(Event("vanish", after=200, duration=200, cluster=1))
    t = plain.timestamps
    during = (t >= T0 + 200) & (t < T0 + 400)
    assert not np.any(gone.regimes[during] == 1)
    assert np.any(gone.regimes[~during] == 1)
    np.testing.assert_array_equal(gone.X[t < T0 + 200], plain.X[t < T0 + 200])


def test_new_cluster_appears_with_its_share_far_from_the_others() -> None:
    options = replace(BASE, rows_per_window=10_000)
    plain, grown = _pair(Event("new_cluster", after=300, share=0.25), options=options)
    t = plain.timestamps
    assert not np.any(grown.regimes[t < T0 + 300] == 4)
    share = np.mean(grown.regimes[t >= T0 + 300] == 4)
    # 5000 rows after the onset: standard error 0.006; 0.03 is five of them.
    assert share == pytest.approx(0.25, abs=0.03)
    Z = _latent(grown.X)
    new_center = np.median(Z[grown.regimes == 4], axis=0)
    for r in range(4):
        old_center = np.median(Z[grown.regimes == r], axis=0)
        assert np.max(np.abs(new_center - old_center)) > 0.25


def test_origin_defaults_to_the_start_of_the_first_window() -> None:
    event = Event("unit_change", after=60, feature="rps", factor=10.0)
    lazy = Simulator(FEATURES, replace(BASE, events=(event,)))
    assert lazy.origin is None
    first = lazy.sample(T0 + 1000, T0 + 1300)
    assert lazy.origin == T0 + 1000
    pinned = Simulator(FEATURES, replace(BASE, events=(event,), origin=T0 + 1000))
    np.testing.assert_array_equal(first.X, pinned.rows(T0 + 1000, T0 + 1300))
    early = Simulator(FEATURES, replace(BASE, events=(event,), origin=T0))
    assert not np.array_equal(first.X, early.rows(T0 + 1000, T0 + 1300))


@pytest.mark.parametrize(
    ("end", "fails"),
    [(T0 + 599, False), (T0 + 600, True), (T0 + 899, True), (T0 + 900, False)],
)
def test_outage_fails_reads_during_it(end: float, fails: bool) -> None:
    options = replace(BASE, origin=T0, events=(Event("outage", after=600, duration=300),))
    sim = Simulator(FEATURES, options)
    if fails:
        with pytest.raises(SourceError) as info:
            sim.rows(end - 300, end)
        assert str(info.value) == (
            "simulated outage (source.events[0]) from 2023-11-14T22:23:20Z until "
            f"2023-11-14T22:28:20Z; the read at {format_time(end)} fails"
        )
    else:
        assert sim.rows(end - 300, end).shape == (3000, 5)
    assert sim.in_outage(end) is fails


# --------------------------------------------------------------------------- instants


def test_instant_is_reproducible_and_stable_per_instance() -> None:
    sim = Simulator(FEATURES, BASE)
    a = sim.instant(T0, 40)
    assert a.shape == (40, 5)
    np.testing.assert_array_equal(a, Simulator(FEATURES, BASE).instant(T0, 40))
    # Adding instances leaves the existing ones as they were.
    np.testing.assert_array_equal(a[:10], sim.instant(T0, 10))
    assert not np.array_equal(a, sim.instant(T0 + 15, 40))


def test_an_instance_keeps_part_of_its_noise() -> None:
    # One regime: only the persistent part of the noise can make an instance resemble itself.
    sim = Simulator(FEATURES, replace(BASE, regimes=1))
    za, zb = _latent(sim.instant(T0, 400)), _latent(sim.instant(T0 + 15, 400))
    za, zb = za - za.mean(axis=0), zb - zb.mean(axis=0)
    corr = np.sum(za * zb) / np.sqrt(np.sum(za**2) * np.sum(zb**2))
    # 36% of the feature-specific noise is the instance's own (the load part is drawn
    # afresh), so the correlation is 0.36 x (1 - rho²), 0.18 to 0.33; 2000 cells put the
    # estimate's standard error near 0.02.
    assert 0.15 < corr < 0.45


def test_instant_fails_during_an_outage() -> None:
    sim = Simulator(FEATURES, replace(BASE, origin=T0, events=(Event("outage", after=10),)))
    assert sim.instant(T0 + 9, 3).shape == (3, 5)
    with pytest.raises(SourceError, match="until further notice"):
        sim.instant(T0 + 10, 3)


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (T0, T0, "The 'end' parameter of Simulator.sample must be a float in (1700000000.0, inf)"),
        (T0, float("nan"), "The 'end' parameter of Simulator.sample must be a float in"),
        ("now", T0, "The 'start' parameter of Simulator.sample must be a float in (-inf, inf)"),
    ],
)
def test_sample_rejects_bad_bounds(start: object, end: object, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Simulator(FEATURES, BASE).sample(start, end)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("n_rows", [-1, 2.5, True])
def test_sample_rejects_a_bad_row_count(n_rows: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        Simulator(FEATURES, BASE).sample(T0, T0 + 60, n_rows)  # type: ignore[arg-type]
    assert str(info.value) == (
        "The 'n_rows' parameter of Simulator.sample must be an int in [0, inf). "
        f"Got {n_rows!r} instead."
    )


@pytest.mark.parametrize(("t", "n"), [(float("inf"), 3), (T0, -1), (T0, 1.5)])
def test_instant_rejects_bad_parameters(t: float, n: object) -> None:
    with pytest.raises(InvalidInputError, match=r"parameter of Simulator\.instant must be"):
        Simulator(FEATURES, BASE).instant(t, n)  # type: ignore[arg-type]


def test_sample_row_count_override() -> None:
    assert Simulator(FEATURES, BASE).sample(T0, T0 + 60, 7).X.shape == (7, 5)
