"""Thresholds at each window size from the reference period: the rate they hold, and power.

The false-alarm test measures the family-wise rate on fresh quiet windows drawn from the
same process as the reference (not from the reference itself) at alpha = 0.05, where a
few hundred windows measure the rate to about +-0.012; the issue's alpha = 0.01 at 50,
500 and 5,000 rows is measured by `python -m bench calibration` (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy.special import ndtri
from scipy.stats import chi2, norm

from monitor import slis as S
from monitor.core import calibration
from monitor.core.calibration import (
    CALIBRATABLE,
    Cut,
    _family_thresholds,
    _far_quantile,
    _refit_sizes,
    block_phases,
    calibrate,
    threshold_at,
)
from monitor.core.drift import (
    centroid_drift,
    fit_reference_bins,
    label_drift,
    psi,
    split_baseline,
    split_gain,
    standardised_drift,
)
from monitor.core.kmeans import assign_labels, fit_kmeans
from monitor.core.outliers import fit_outlier_thresholds, outlier_rate
from monitor.core.quality import silhouette_sampled
from monitor.errors import DegenerateDataWarning, InvalidInputError
from monitor.records import (
    CentroidDrift,
    NullTable,
    OutlierThresholds,
    ReferenceBins,
    ReferenceWindows,
)

CENTERS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 4.0, 1.0]])
SHARES = np.array([0.5, 0.3, 0.2])
BLOCKS, ROWS = 60, 600
ALPHA = 0.05
KEYS = list(CALIBRATABLE)


def draw(rng: np.random.Generator, n: int, shares: np.ndarray = SHARES, shift: float = 0.0):
    labels = rng.choice(3, size=n, p=shares)
    X = CENTERS[labels] + rng.normal(size=(n, 3))
    X[:, 0] += shift
    return X


@dataclass(frozen=True)
class Reference:
    X: np.ndarray
    block: np.ndarray
    centers: np.ndarray
    bins: ReferenceBins
    outliers: OutlierThresholds
    shares: np.ndarray
    baseline: np.ndarray  # what a cut in two saves per row, per cluster


def fit_reference(X: np.ndarray, block: np.ndarray) -> Reference:
    centers = fit_kmeans(X, 3, random_state=0).centers
    labels, sq = assign_labels(X, centers)
    return Reference(
        X=X,
        block=block,
        centers=centers,
        bins=fit_reference_bins(X),
        outliers=fit_outlier_thresholds(sq, labels, 3, quantile=0.99),
        shares=np.bincount(labels, minlength=3) / labels.shape[0],
        baseline=split_baseline(X, labels, block, 3, random_state=0),
    )


@pytest.fixture(scope="module")
def reference() -> Reference:
    rng = np.random.default_rng(0)
    X = draw(rng, BLOCKS * ROWS)
    return fit_reference(X, np.repeat(np.arange(BLOCKS), ROWS))


def table_of(ref: Reference, sizes: list[int], **kw: object) -> NullTable:
    blocks = int(ref.block.max()) + 1
    table, _ = calibrate(
        ref.X,
        ref.block,
        ref.centers,
        ref.bins,
        ref.outliers,
        starts=np.arange(blocks) * 300.0,
        ends=np.arange(1, blocks + 1) * 300.0,
        sizes=sizes,
        split_baseline=ref.baseline,
        keys=kw.pop("keys", KEYS),  # type: ignore[arg-type]
        false_alarm_rate=kw.pop("false_alarm_rate", ALPHA),  # type: ignore[arg-type]
        random_state=kw.pop("random_state", 1),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return table


def window_slis(ref: Reference, W: np.ndarray, table: NullTable) -> dict[str, float]:
    """The calibrated SLIs of a window, as the pipeline computes them."""
    labels, sq = assign_labels(W, ref.centers)
    fit = fit_kmeans(W, 3, init=ref.centers, n_init=1, random_state=0)
    cd = centroid_drift(ref.centers, fit.centers)
    assert table.drift_spread is not None
    counts = np.bincount(labels, minlength=3)  # the live clusters' rows, as a run counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        sil = silhouette_sampled(W, labels, sample_size=600, random_state=0).score
    return {
        S.FEATURE_PSI_MAX: psi(ref.bins, W).max,
        S.LABEL_PSI: label_drift(ref.shares, labels, 3).psi,
        S.OUTLIER_RATIO: outlier_rate(ref.outliers, sq, labels).ratio,
        S.EMPTY_CLUSTERS: float((np.bincount(labels, minlength=3) == 0).sum()),
        S.SILHOUETTE: sil,
        S.CENTROID_DRIFT_MAX: cd.max,
        S.CENTROID_DRIFT_SE: standardised_drift(cd, counts, table.drift_spread, counts),
        S.SPLIT_GAIN: split_gain(W, ref.centers, ref.baseline, random_state=0).gain,
    }


def alarms(thresholds: dict[str, float | None], values: dict[str, float]) -> list[str]:
    out = []
    for key, t in thresholds.items():
        if t is None:
            continue
        low = S.SLIS[key].direction == S.BELOW
        if (values[key] < t) if low else (values[key] > t):
            out.append(key)
    return out


@pytest.mark.parametrize("n", [50, 500])
def test_the_family_holds_its_false_alarm_rate_on_fresh_quiet_windows(
    reference: Reference, n: int
) -> None:
    table = table_of(reference, [n])
    thresholds = threshold_at(table, n)
    assert all(thresholds[key] is not None for key in KEYS)
    rng = np.random.default_rng(42)
    trials = 400
    flagged = sum(
        bool(alarms(thresholds, window_slis(reference, draw(rng, n), table))) for _ in range(trials)
    )
    rate = flagged / trials
    # Within 2x of the target: about 2.2 standard errors below it, 4.6 above.
    assert ALPHA / 2 <= rate <= 2 * ALPHA, rate


def test_a_real_change_crosses_the_thresholds(reference: Reference) -> None:
    table = table_of(reference, [500])
    thresholds = threshold_at(table, 500)
    rng = np.random.default_rng(7)
    shifted = alarms(thresholds, window_slis(reference, draw(rng, 500, shift=1.5), table))
    assert {S.FEATURE_PSI_MAX, S.CENTROID_DRIFT_MAX, S.CENTROID_DRIFT_SE} <= set(shifted)
    # A tight regime of 10 % of the rows between the clusters: no centre covers it.
    forming = np.array([2.0, 2.0, 0.5]) + 0.3 * rng.normal(size=(50, 3))
    between = np.vstack([draw(rng, 450), forming])
    assert S.SPLIT_GAIN in alarms(thresholds, window_slis(reference, between, table))
    mixed = draw(rng, 500, np.array([0.2, 0.3, 0.5]))
    mix = alarms(thresholds, window_slis(reference, mixed, table))
    assert S.LABEL_PSI in mix


def test_thresholds_shrink_with_the_window_size(reference: Reference) -> None:
    table = table_of(reference, [50, 200, 800, 1200])
    for key in (S.FEATURE_PSI_MAX, S.LABEL_PSI, S.CENTROID_DRIFT_MAX):
        column = table.values[:, table.keys.index(key)]
        assert np.all(np.diff(column) < 0), (key, column)
    silhouette = table.values[:, table.keys.index(S.SILHOUETTE)]
    assert silhouette[0] < silhouette[-1]  # small windows: a lower minimum


def test_the_drift_spread_separates_a_window_s_noise_from_what_moves_between_windows() -> None:
    """``v``: each cluster's spread within a window (its rows' mean squared distance to
    its centre, when the windows are alike); ``tau^2``: what the centre moves between
    quiet windows beyond it, about 0 when the windows are alike and the wander's variance
    (3 * 0.3^2) when the centres wander."""
    rng = np.random.default_rng(5)
    keys = [S.CENTROID_DRIFT_MAX, S.CENTROID_DRIFT_SE]
    alike = fit_reference(draw(rng, BLOCKS * ROWS), np.repeat(np.arange(BLOCKS), ROWS))
    spread = table_of(alike, [300], keys=keys).drift_spread
    assert spread is not None and spread.shape == (3, 2)
    labels, sq = assign_labels(alike.X, alike.centers)
    within = np.bincount(labels, weights=sq) / np.bincount(labels)  # about 3, cut by the cells
    np.testing.assert_allclose(spread[:, 0], within, rtol=0.02)
    assert np.all(spread[:, 1] < 0.02), spread
    parts = []
    for _ in range(BLOCKS):
        labels = rng.choice(3, size=ROWS, p=SHARES)
        wander = 0.3 * rng.normal(size=(3, 3))
        parts.append(CENTERS[labels] + wander[labels] + rng.normal(size=(ROWS, 3)))
    wandering = fit_reference(np.concatenate(parts), np.repeat(np.arange(BLOCKS), ROWS))
    spread = table_of(wandering, [300], keys=keys).drift_spread
    assert spread is not None
    # Within a window the wander is gone: 3 per row, less what the cells cut off (as above).
    np.testing.assert_allclose(spread[:, 0], 3.0, rtol=0.1)
    np.testing.assert_allclose(spread[:, 1], 0.27, rtol=0.5)


def test_a_tight_cluster_s_move_crosses_the_standard_errors_before_the_largest_drift() -> None:
    """A wide cluster sets the largest drift's threshold; a tight one that moves by a few
    of its own standard errors stays under it, but not under its threshold in standard
    errors."""
    rng = np.random.default_rng(6)
    sd = np.array([3.0, 0.2, 1.0])  # per cluster

    def mixed(n: int, move: float = 0.0) -> np.ndarray:
        labels = rng.choice(3, size=n, p=SHARES)
        X = 6 * CENTERS[labels] + sd[labels, None] * rng.normal(size=(n, 3))  # apart
        X[labels == 1, 0] += move
        return X

    ref = fit_reference(mixed(BLOCKS * ROWS), np.repeat(np.arange(BLOCKS), ROWS))
    table = table_of(ref, [1000], keys=[S.CENTROID_DRIFT_MAX, S.CENTROID_DRIFT_SE])
    thresholds = threshold_at(table, 1000)
    moved = window_slis(ref, mixed(1000, move=0.15), table)
    assert alarms(thresholds, moved) == [S.CENTROID_DRIFT_SE], (moved, thresholds)


def test_a_refit_that_settles_elsewhere_widens_the_drift_s_null_not_the_standard_errors(
    reference: Reference,
) -> None:
    """The centroid drift's null holds the candidate a run would promote, restarts that
    land on another local optimum included; the drift in standard errors measures the
    warm start, which follows each live cluster, so its null is the same without them."""
    keys = [S.CENTROID_DRIFT_MAX, S.CENTROID_DRIFT_SE]
    calls = []

    def warm(X: np.ndarray, C: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        fit = fit_kmeans(X, C.shape[0], init=C, n_init=1, random_state=seed)
        return fit.centers, fit.centers

    def sometimes_elsewhere(
        X: np.ndarray, C: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        best, start = warm(X, C, seed)
        calls.append(seed)
        if len(calls) % 10 == 0:  # a tenth of the refits: a centre far from its cluster
            best = best.copy()
            best[0] += 5.0
        return best, start

    plain = table_of(reference, [100, 400], keys=keys, refit=warm)
    flips = table_of(reference, [100, 400], keys=keys, refit=sometimes_elsewhere)
    se = keys.index(S.CENTROID_DRIFT_SE)
    np.testing.assert_array_equal(flips.values[:, se], plain.values[:, se])
    assert flips.drift_spread is not None and plain.drift_spread is not None
    np.testing.assert_array_equal(flips.drift_spread, plain.drift_spread)
    drift = keys.index(S.CENTROID_DRIFT_MAX)
    assert np.all(flips.values[:, drift] > 2 * plain.values[:, drift])


@pytest.mark.parametrize(
    ("constant", "counts", "drawn_by"),
    [
        ("MAX_DRAWS", (1000, 3000), S.LABEL_PSI),
        ("SILHOUETTE_DRAWS", (200, 400), S.SILHOUETTE),
        ("REFITS_PER_FIT", (2, 8), S.CENTROID_DRIFT_SE),
        ("SPLIT_DRAWS_PER_FIT", (4, 8), S.SPLIT_GAIN),
    ],
)
def test_each_part_draws_from_a_stream_of_its_own(
    reference: Reference,
    monkeypatch: pytest.MonkeyPatch,
    constant: str,
    counts: tuple[int, int],
    drawn_by: str,
) -> None:
    """How many null windows one part of the calibration draws changes its own
    thresholds only: every other SLI's, and the drift spread unless the refits drew more,
    stay bit for bit what they were."""
    keys = [S.LABEL_PSI, S.SILHOUETTE, S.CENTROID_DRIFT_SE, S.SPLIT_GAIN]
    tables = []
    for count in counts:
        monkeypatch.setattr(calibration, constant, count)
        tables.append(table_of(reference, [100, 400], keys=keys, n_fits=20))
    few, many = tables
    for j, key in enumerate(keys):
        if key == drawn_by:
            assert not np.array_equal(few.values[:, j], many.values[:, j], equal_nan=True)
        else:
            np.testing.assert_array_equal(few.values[:, j], many.values[:, j], err_msg=key)
    assert few.drift_spread is not None and many.drift_spread is not None
    same_spread = np.array_equal(few.drift_spread, many.drift_spread)
    assert same_spread == (drawn_by != S.CENTROID_DRIFT_SE)


@pytest.mark.parametrize(("widths", "dof"), [((1.0, 1.0, 1.0), 3), ((1.0, 0.05, 0.05), 1)])
def test_the_standard_errors_threshold_follows_the_chi_square_of_the_clusters_shape(
    widths: tuple[float, float, float], dof: int
) -> None:
    """Alike windows, so each ``z^2`` is a chi-square of the cluster's degrees of freedom
    over them: about 3 for a round cluster in 3 features, 1 for one spread along a line.
    The threshold is where the three clusters' tails sum to the level, within 10 %."""
    rng = np.random.default_rng(8)
    labels = rng.choice(3, size=BLOCKS * ROWS, p=SHARES)
    X = 6 * CENTERS[labels] + rng.normal(size=(labels.shape[0], 3)) * np.asarray(widths)
    ref = fit_reference(X, np.repeat(np.arange(BLOCKS), ROWS))
    level = 0.01
    table = table_of(ref, [500], keys=[S.CENTROID_DRIFT_SE], false_alarm_rate=level)
    expected = math.sqrt(chi2.isf(level / 3, dof) / dof)
    assert table.values[0, 0] == pytest.approx(expected, rel=0.1)


def test_the_standard_errors_threshold_lets_through_near_its_share_of_chi_square_draws() -> None:
    """Refits whose clusters' ``z^2`` are chi-square over their degrees of freedom, as in
    large windows: the threshold from 480 of them lets fresh draws through at close to
    the level on average, not at a fraction of it. The floor from the largest values'
    own tail was a Pareto tail on ``log z`` until 2026-12-05, which sat so far out on
    such draws that it let through under a third of the level (0.30 here, 0.62 now)."""
    rng = np.random.default_rng(5)
    k, nu, level, n_fits = 4, 2.0, 1 / 800, 480
    pairs = np.column_stack((np.arange(k), np.arange(k)))
    spread = np.column_stack((np.ones(k), np.zeros(k)))  # v = 1, tau^2 = 0: z = distance
    rates = []
    for _ in range(60):
        z = np.sqrt(rng.chisquare(nu, size=(n_fits, k)) / nu)
        fits = []
        for row in z:
            cd = CentroidDrift(pairs, row, float(row.mean()), float(row.max()), (), ())
            fits.append(calibration._Refitted(cd, cd, np.ones(k, dtype=np.intp), 0))
        t = calibration._standard_errors_threshold(fits, spread, np.full(k, nu), level)
        assert t is not None
        rates.append(1.0 - (1.0 - chi2.sf(nu * t * t, nu)) ** k)
    assert 0.45 <= np.mean(rates) / level <= 1.25, np.mean(rates) / level


def test_what_varies_between_windows_of_the_reference_widens_the_null() -> None:
    """Cluster shares that swing from window to window (a daily traffic mix) are normal:
    the label PSI threshold covers the swing, where resampling rows alone would not."""
    rng = np.random.default_rng(3)
    swings = [np.roll(SHARES, b % 3) for b in range(BLOCKS)]
    X = np.concatenate([draw(rng, ROWS, s) for s in swings])
    block = np.repeat(np.arange(BLOCKS), ROWS)
    swinging = fit_reference(X, block)
    one_window = fit_reference(X, np.zeros(X.shape[0], dtype=np.intp))
    keys = [S.LABEL_PSI]
    wide = threshold_at(table_of(swinging, [500], keys=keys), 500)[S.LABEL_PSI]
    narrow = threshold_at(table_of(one_window, [500], keys=keys), 500)[S.LABEL_PSI]
    assert wide is not None and narrow is not None and wide > 3 * narrow
    # Each swing of the mix stays under the wide threshold.
    for s in swings[:3]:
        labels, _ = assign_labels(draw(rng, 500, s), swinging.centers)
        assert label_drift(swinging.shares, labels, 3).psi < wide


def test_a_short_reference_draws_a_thin_window_as_often_as_its_rows() -> None:
    """Under 10 windows the null resamples rows within a block: a block of a few rows (the
    period's first window, cut short) stands for no more of the period than its rows."""
    rng = np.random.default_rng(4)
    full = draw(rng, 4 * ROWS)
    thin = draw(rng, 5, shift=6.0)  # few rows, far off: its own windows alarm
    X = np.concatenate([full, thin])
    block = np.repeat(np.arange(5), [ROWS, ROWS, ROWS, ROWS, 5])
    keys = [S.FEATURE_PSI_MAX]
    with_thin = threshold_at(table_of(fit_reference(X, block), [50], keys=keys), 50)
    without = threshold_at(table_of(fit_reference(full, block[:-5]), [50], keys=keys), 50)
    t, u = with_thin[S.FEATURE_PSI_MAX], without[S.FEATURE_PSI_MAX]
    assert t is not None and u is not None and t < 1.5 * u


def test_a_rare_kind_of_window_sets_the_silhouette_threshold_whatever_the_seed() -> None:
    """Helper-76: windows of 45 rows, their blocks as large, a few percent of them of
    low silhouette (the same hours every day). 400 null windows drawn from random blocks
    held 6 of that kind on one seed and 12 on another, and the tail fitted to them put
    the threshold at 0.457 (5 pages a week of quiet data) or at -0.349. Each block now
    starts as many null windows as any other."""
    rng = np.random.default_rng(6)
    blocks = [draw(rng, 40) for _ in range(116)]
    blocks += [0.25 * CENTERS[rng.integers(0, 3, size=40)] + rng.normal(size=(40, 3))
               for _ in range(4)]  # fmt: skip
    order = rng.permutation(len(blocks))
    X = np.concatenate([blocks[i] for i in order])
    ref = fit_reference(X, np.repeat(np.arange(len(blocks)), 40))
    keys = [S.SILHOUETTE]
    found = [
        threshold_at(
            table_of(ref, [40], keys=keys, random_state=seed, false_alarm_rate=0.00125), 40
        )[S.SILHOUETTE]
        for seed in range(4)
    ]
    assert all(t is not None for t in found)
    assert max(found) - min(found) < 0.02, found  # type: ignore[operator]  # was 0.07


def test_a_null_window_over_several_blocks_is_compared_without_any_of_them() -> None:
    """A null window larger than a block spans several; the reference it is compared with
    leaves them all out, as a fresh window's reference does not hold the window."""
    rng = np.random.default_rng(5)
    order = [0, 0, 1, 1, 2, 2] * 4  # blocks of 100 rows, in pairs of one cluster each
    X = np.concatenate([10 * CENTERS[c] + rng.normal(size=(100, 3)) for c in order])
    ref = fit_reference(X, np.repeat(np.arange(len(order)), 100))
    t = threshold_at(table_of(ref, [200], keys=[S.LABEL_PSI]), 200)[S.LABEL_PSI]
    # Half the null windows are one pair, a single cluster: against the other 22 blocks
    # its share is 6 of 22 (7 of 23 with only the first block left out, a narrower null).
    labels, _ = assign_labels(10 * CENTERS[0] + rng.normal(size=(200, 3)), ref.centers)
    counts = np.full(3, 8.0)
    counts[labels[0]] -= 2
    assert t is not None and t >= label_drift(counts / counts.sum(), labels, 3).psi


def test_comparing_at_the_same_phase_narrows_a_seasonal_null() -> None:
    rng = np.random.default_rng(4)
    day = 86400.0
    starts = np.arange(96) * 900.0  # a day of 15-minute windows
    swings = [np.roll(SHARES, int(4 * t // day) % 3) for t in starts]  # the mix turns 4 times
    X = np.concatenate([draw(rng, 300, s) for s in swings])
    block = np.repeat(np.arange(96), 300)
    ref = fit_reference(X, block)
    phases = block_phases(starts, starts + 900.0, day, 24, 1)
    kw = {"keys": [S.LABEL_PSI], "starts": starts, "ends": starts + 900.0}
    common = (ref.X, ref.block, ref.centers, ref.bins, ref.outliers)
    plain, _ = calibrate(*common, sizes=[300], random_state=0, **kw)  # type: ignore[arg-type]
    seasonal, _ = calibrate(*common, sizes=[300], phases=phases, random_state=0, **kw)  # type: ignore[arg-type]
    # A third narrower at least. (A mix that steps at 06:00 is where a reference centred
    # on each window's own time gains nothing over its whole hour: the windows just
    # before a step are compared with more of the next mix, those after it with less.)
    assert seasonal.values[0, 0] < plain.values[0, 0] * 0.75


def test_a_seasonal_null_follows_levels_that_move_within_the_hour() -> None:
    """A level that follows the day moves within each hour too: compared with the hours
    centred on each window, the centroid drift's null stays near the null without the
    cycle (0.257 against 0.256); compared with the window's whole hour, as before, it
    widened by 29 % (0.341 against 0.264)."""
    day = 86400.0
    starts = np.arange(96) * 900.0  # a day of 15-minute windows
    level = 1.5 * np.sin(2 * np.pi * (starts + 450.0) / day)
    phases = block_phases(starts, starts + 900.0, day, 24, 1)
    block = np.repeat(np.arange(96), 1000)
    found = []
    for amplitude in (0.0, 1.0):
        rng = np.random.default_rng(6)
        X = 10 * CENTERS[rng.choice(3, size=block.shape[0], p=SHARES)]  # far apart
        X += rng.normal(size=X.shape)
        X[:, 0] += amplitude * level[block]
        ref = fit_reference(X, block)
        table, _ = calibrate(
            ref.X, ref.block, ref.centers, ref.bins, ref.outliers, sizes=[1000],
            keys=[S.CENTROID_DRIFT_MAX], starts=starts, ends=starts + 900.0, phases=phases,
            random_state=0,
        )  # fmt: skip
        found.append(float(table.values[0, 0]))
    still, moving = found
    assert moving < 1.2 * still


def test_undefined_where_the_null_cannot_be_drawn() -> None:
    rng = np.random.default_rng(5)
    X = draw(rng, 2000)
    one = fit_kmeans(X, 1, random_state=0).centers  # one cluster: no silhouette
    labels, sq = assign_labels(X, one)
    table, _ = calibrate(
        X, np.zeros(2000, dtype=np.intp), one, fit_reference_bins(X),
        fit_outlier_thresholds(sq, labels, 1, quantile=0.99),
        starts=[0.0], ends=[1.0], sizes=[1, 50], keys=KEYS, random_state=0,
    )  # fmt: skip
    column = dict(zip(table.keys, table.values.T, strict=True))
    assert np.isnan(column[S.SILHOUETTE]).all()
    assert np.isnan(column[S.CENTROID_DRIFT_MAX][0])  # one row cannot refit a centre
    assert np.isfinite(column[S.FEATURE_PSI_MAX]).all()
    assert threshold_at(table, 1)[S.SILHOUETTE] is None


def test_same_seed_same_table(reference: Reference) -> None:
    a, b = table_of(reference, [100, 400]), table_of(reference, [100, 400])
    np.testing.assert_array_equal(a.values, b.values)


def test_reference_windows_are_each_block_against_the_rest(reference: Reference) -> None:
    _, windows = calibrate(
        reference.X, reference.block, reference.centers, reference.bins, reference.outliers,
        starts=np.arange(BLOCKS) * 300.0, ends=np.arange(1, BLOCKS + 1) * 300.0,
        sizes=[100], keys=[], random_state=0,
    )  # fmt: skip
    assert windows.values.shape == (BLOCKS, len(windows.keys)) and (windows.rows == ROWS).all()
    b = 7
    rows = reference.block == b
    labels, _ = assign_labels(reference.X, reference.centers)
    rest = np.bincount(labels[~rows], minlength=3) / (~rows).sum()
    expected = label_drift(rest, labels[rows], 3).psi
    assert windows.values[b, windows.keys.index(S.LABEL_PSI)] == pytest.approx(expected)


def test_threshold_at_interpolates_in_log_size() -> None:
    table = NullTable(
        np.array([100, 10000]), (S.LABEL_PSI,), np.array([[1.0], [0.0]]), 0.01, 0.01, 1
    )
    assert threshold_at(table, 100)[S.LABEL_PSI] == pytest.approx(1.0)
    assert threshold_at(table, 1000)[S.LABEL_PSI] == pytest.approx(0.5)
    assert threshold_at(table, 10)[S.LABEL_PSI] == pytest.approx(1.0)  # clamped
    assert threshold_at(table, 10**6)[S.LABEL_PSI] == pytest.approx(0.0)


def test_threshold_at_follows_a_power_of_the_rows() -> None:
    # A PSI's null shrinks as 1/n and a centroid's as 1/sqrt(n): between two calibrated
    # sizes the threshold follows that curve. A line in the threshold itself gives 5 %
    # more at 500 rows between 400 and 800, enough to halve a steep tail's flags.
    sizes = np.array([400, 800])
    values = np.column_stack((30.0 / sizes, 3.0 / np.sqrt(sizes), [0.45, 0.47]))
    keys = (S.FEATURE_PSI_MAX, S.CENTROID_DRIFT_MAX, S.SILHOUETTE)
    t = threshold_at(NullTable(sizes, keys, values, 0.01, 0.01, 1), 500)
    assert t[S.FEATURE_PSI_MAX] == pytest.approx(30.0 / 500, rel=1e-9)
    assert t[S.CENTROID_DRIFT_MAX] == pytest.approx(3.0 / math.sqrt(500), rel=1e-9)
    assert 0.45 < t[S.SILHOUETTE] < 0.47  # type: ignore[operator]


def test_a_count_or_a_share_of_rows_alarms_between_sizes_no_more_than_at_either() -> None:
    # Helper-74's 30-row windows at a 0.05 rate: 16 of 50 outlier flags came from a
    # threshold one float step below 2 of 30 rows, and the empty clusters' line through
    # 1 at 28 rows and 0 at 41 alarmed on one empty cluster at every size between.
    sizes = np.array([14, 28, 41, 56])
    values = np.column_stack(([1 / 14, 2 / 28, 2 / 41, 3 / 56], [2.0, 1.0, 0.0, 0.0]))
    table = NullTable(sizes, (S.OUTLIER_RATIO, S.EMPTY_CLUSTERS), values, 0.05, 0.01, 1)

    def allowed(n: int) -> tuple[int, float]:
        """The most outliers of n rows that do not alarm, and the empty clusters' threshold."""
        t = threshold_at(table, n)
        ratio = t[S.OUTLIER_RATIO]
        assert ratio is not None
        return max(c for c in range(n + 1) if not c / n > ratio), t[S.EMPTY_CLUSTERS]  # type: ignore[return-value]

    # At a calibrated size, its own count, compared exactly (no float step below it).
    assert allowed(28) == (2, 1.0) and allowed(41) == (2, 0.0) and allowed(56) == (3, 0.0)
    # Between two sizes, the larger size's count; the looser of the two counts.
    assert [allowed(n)[0] for n in (15, 22, 27, 29, 30, 34, 40, 45)] == [2, 2, 2, 2, 2, 2, 2, 3]
    assert [allowed(n)[1] for n in (15, 22, 29, 30, 34, 40, 45)] == [
        2.0,
        2.0,
        1.0,
        1.0,
        1.0,
        1.0,
        0.0,
    ]
    # Below the smallest size, that size's count; beyond the largest, its share.
    assert allowed(10)[0] == 1 and allowed(112)[0] == 6


def test_a_window_of_more_rows_than_the_usual_takes_no_looser_threshold() -> None:
    # Helper-75's daily model: null windows of twice a reference window's 60 rows join two
    # windows of different phases, and the feature PSI's threshold rose from 1.67 to
    # 6.51; a shift of 3.87 in a window of 119 rows (traffic doubled) went unflagged.
    keys = (S.FEATURE_PSI_MAX, S.CENTROID_DRIFT_SE, S.SILHOUETTE, S.OUTLIER_RATIO)
    values = np.array(
        [[3.19, 3.0, 0.5, 4 / 30], [1.67, 3.1, 0.6, 6 / 60], [6.51, 3.5, 0.4, 20 / 120]]
    )
    table = NullTable(np.array([30, 60, 120]), keys, values, 0.01, 0.01, 1)
    t = threshold_at(table, 120, usual=60)
    assert t[S.FEATURE_PSI_MAX] == 1.67 and t[S.SILHOUETTE] == 0.6  # as at 60 rows
    assert t[S.OUTLIER_RATIO] == 12 / 120  # the share of 60 rows, as a whole count
    assert t[S.CENTROID_DRIFT_SE] == 3.5  # standardised by the rows: its own
    # At or below the usual rows, and without them, the table's own values.
    assert threshold_at(table, 120)[S.FEATURE_PSI_MAX] == 6.51
    assert threshold_at(table, 60, usual=60)[S.FEATURE_PSI_MAX] == 1.67
    assert threshold_at(table, 30, usual=60)[S.FEATURE_PSI_MAX] == 3.19


def test_the_far_quantile_of_null_windows_from_two_cuts_is_that_of_their_mixture() -> None:
    """Refits of windows of two cuts that differ in kind: a log-normal over all of them
    reaches twelve times past the values, one per cut mixed lands where the upper cut's
    log-normal leaves half the rate (its windows are half the draws), ``0.6 exp(0.05
    z(1 - 2 level))``, up to the fit's noise and the Pareto tail's floor."""
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [rng.lognormal(np.log(0.05), 0.2, 200), rng.lognormal(np.log(0.6), 0.05, 200)]
    )
    level = 0.001
    mixed = _far_quantile(values, level, np.repeat([0, 1], 200))
    pooled = _far_quantile(values, level, np.zeros(400, dtype=np.intp))
    assert mixed is not None and pooled is not None
    assert mixed == pytest.approx(0.6 * np.exp(0.05 * ndtri(1 - 2 * level)), rel=0.06)
    assert pooled > 10 * mixed


def _silhouette_rates(
    draw: Callable[[np.random.Generator], np.ndarray], cdf: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The rate at which windows from ``cdf`` fall below the lower threshold at 1/800, per
    reference of 170 different null windows (drawn 400 times, as at 50 rows a window of
    the detection benchmark), over 400 references: the shipped threshold's and a fitted
    tail's alone, in units of the level."""
    level, rng = 1 / 800, np.random.default_rng(0)
    ours, tail = [], []
    for _ in range(400):
        values = np.repeat(draw(rng), 3)[:400]
        ours.append(cdf(calibration._lower_threshold(values, level)) / level)
        tail.append(cdf(-calibration._upper_threshold(-values, level)) / level)
    return np.array(ours), np.array(tail)


def test_a_far_lower_quantile_from_a_few_hundred_windows_is_held_by_a_normal() -> None:
    """Normal silhouettes: a tail fitted to the lowest seventeen of 170 windows let
    through more than 2.5 times the level on a tenth of the references; the lower of it
    and a normal fitted to all of them, under 2 times, and less on average."""
    ours, tail = _silhouette_rates(lambda rng: rng.standard_normal(170), norm.cdf)
    assert np.quantile(tail, 0.9) > 2.5
    assert np.quantile(ours, 0.9) < 2.0
    assert ours.mean() < 0.75 < tail.mean()


def test_a_lower_tail_heavier_than_a_normal_keeps_its_fitted_tail() -> None:
    """Student's t with 3 degrees of freedom: the fitted tail lies below the normal's
    quantile on most references and stands there; the normal never raises it."""
    level, rng = 1 / 800, np.random.default_rng(1)
    kept = 0
    for _ in range(100):
        values = np.repeat(rng.standard_t(3, 170), 3)[:400]
        tail = -calibration._upper_threshold(-values, level)
        ours = calibration._lower_threshold(values, level)
        assert ours <= tail
        kept += ours == tail
    assert kept > 80


def test_within_the_draws_resolution_the_lower_quantile_is_the_empirical_one() -> None:
    values = np.random.default_rng(2).standard_normal(4000)
    level = 0.01  # 40 windows below: the empirical quantile, no fitted tail
    assert calibration._lower_threshold(values, level) == -calibration._upper_threshold(
        -values, level
    )
    assert np.count_nonzero(values < calibration._lower_threshold(values, level)) <= 40


def test_a_cut_of_the_period_adds_null_windows_and_no_reference_window(
    reference: Reference,
) -> None:
    """The same rows cut half a window later: the null draws from its windows too, so
    the thresholds change, and the reference windows stay the period's own."""
    half = ROWS // 2
    X, block = reference.X[half:-half], (np.arange(reference.X.shape[0] - ROWS)) // ROWS

    def calibrated(cuts: list[Cut]) -> tuple[NullTable, ReferenceWindows]:
        return calibrate(
            reference.X, reference.block, reference.centers, reference.bins, reference.outliers,
            starts=np.arange(BLOCKS) * 300.0, ends=np.arange(1, BLOCKS + 1) * 300.0,
            sizes=[100], keys=[S.LABEL_PSI, S.FEATURE_PSI_MAX], random_state=1, cuts=cuts,
        )  # fmt: skip

    own, own_windows = calibrated([])
    cut, cut_windows = calibrated([Cut(X, block)])
    assert not np.array_equal(own.values, cut.values)
    for name in ("starts", "ends", "rows", "values"):
        assert np.array_equal(getattr(own_windows, name), getattr(cut_windows, name)), name
    assert cut_windows.values.shape[0] == BLOCKS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sizes": [100, 50]}, "The 'sizes' parameter of calibrate must be a non-empty increasing"),
        ({"keys": ["inertia"]}, "The 'keys' parameter of calibrate must hold SLIs among"),
        ({"false_alarm_rate": 0.7}, "The 'false_alarm_rate' parameter of calibrate must be"),
        ({"block": np.zeros(3, dtype=int)}, "The 'block' parameter of calibrate must be"),
        ({"cuts": [Cut(np.zeros((4, 2)), np.zeros(4, dtype=int))]}, "A cut of calibrate must"),
        ({"cuts": [Cut(np.zeros((4, 3)), -np.ones(4, dtype=int))]}, "A cut of calibrate must"),
        ({"usual_size": 0}, "The 'usual_size' parameter of calibrate must be an int"),
    ],
)
def test_bad_parameters_are_named(reference: Reference, change: dict, message: str) -> None:
    kw = {
        "sizes": [100],
        "keys": KEYS,
        "false_alarm_rate": 0.01,
        "block": reference.block,
        **change,
    }
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")):
        calibrate(
            reference.X, kw.pop("block"), reference.centers, reference.bins, reference.outliers,
            starts=[0.0], ends=[1.0], **kw,  # type: ignore[arg-type]
        )  # fmt: skip


def test_the_family_spends_its_share_where_an_sli_is_discrete() -> None:
    """Beyond the resolution of the draws each threshold comes from a fitted tail, and a
    count of outliers ties: thresholds then alarm on fewer null windows than their
    p-values say. The cut is chosen by the alarms themselves, so the family spends its
    share (counting p-values instead, these five draws alarmed on 15, 10, 19, 11 and 7
    windows of the 18 allowed)."""
    draws, level = 3000, 0.006
    keys = [S.FEATURE_PSI_MAX, S.LABEL_PSI, S.OUTLIER_RATIO]
    allowed = int(level * draws)
    counts = []
    for seed in range(11, 16):
        rng = np.random.default_rng(seed)
        samples = np.column_stack(
            [
                rng.gamma(2.0, size=draws),
                rng.gamma(3.0, size=draws),
                rng.poisson(5.0, size=draws) / 500.0,  # outliers among 500 rows
            ]
        )
        thresholds = np.asarray(_family_thresholds(samples, keys, level))
        counts.append(int((samples > thresholds[None, :]).any(axis=1).sum()))
    assert max(counts) <= allowed, counts
    assert np.mean(counts) >= 0.85 * allowed, counts


GRID = [100, 200, 400, 800, 1600, 2000, 3200, 4000]


@pytest.mark.parametrize(
    ("grid", "largest", "usual", "refitted"),
    [
        # The reference windows' own size too, where a run's thresholds are read.
        (GRID, 4000, 2000, [100, 800, 2000, 4000]),
        (GRID, 2000, 2000, [100, 400, 2000]),  # a one-window reference: up to its rows
        ([50, 100, 200, 400, 800, 1600, 3200, 5000], 5000, 2000, [50, 400, 5000]),  # not held
        ([100, 200, 400], 50, 50, [100]),  # a window smaller than every size: the smallest
        (GRID, 4000, None, [100, 800, 4000]),  # not known
    ],
)
def test_refits_stop_at_the_largest_size_asked_and_include_a_runs_own(
    grid: list[int], largest: int, usual: int | None, refitted: list[int]
) -> None:
    sizes = np.asarray(grid)
    assert [int(sizes[g]) for g in _refit_sizes(sizes, largest, usual)] == refitted


def test_a_runs_usual_size_gets_thresholds_refitted_there_not_interpolated(
    reference: Reference,
) -> None:
    # 200 rows lie halfway between the refitted 100 and 400 in log size: interpolated,
    # the threshold there is their geometric mean.
    keys = [S.CENTROID_DRIFT_MAX, S.CENTROID_DRIFT_SE]
    sizes = [50, 100, 200, 400]
    for usual, measured in [(None, False), (300, False), (200, True)]:
        table = table_of(reference, sizes, keys=keys, n_fits=30, usual_size=usual)
        close = np.isclose(table.values[2], np.sqrt(table.values[1] * table.values[3]))
        assert (not close.any()) if measured else close.all(), (usual, close)


def test_the_silhouette_holds_its_rate_beyond_the_exact_sizes() -> None:
    """Above 250 rows the silhouette's null is rescaled from exact 250-row windows; a
    reference of many short windows (100 rows, 34 of them measured per window by the
    per-point silhouettes) made it as wide as a 34-row window's, so that it never alarmed."""
    rng = np.random.default_rng(11)
    blocks, rows, n = 288, 100, 1000
    ref = fit_reference(draw(rng, blocks * rows), np.repeat(np.arange(blocks), rows))
    threshold = threshold_at(table_of(ref, [n], keys=[S.SILHOUETTE]), n)[S.SILHOUETTE]
    assert threshold is not None
    trials = 200
    below = 0
    for _ in range(trials):
        W = draw(rng, n)
        labels, _ = assign_labels(W, ref.centers)
        below += silhouette_sampled(W, labels, sample_size=n, random_state=0).score < threshold
    assert ALPHA / 2 <= below / trials <= 2 * ALPHA, below


@pytest.mark.parametrize("sample", [120, 300])
def test_the_silhouette_s_null_is_that_of_the_points_a_run_samples(sample: int) -> None:
    """A run computes the silhouette on ``silhouette_sample`` points of a larger window,
    whose noise is that of a window of so many rows (exact below 250, rescaled above):
    thresholds calibrated for that sample hold the rate on such runs, where the ones
    calibrated for whole windows of 1,000 rows let through 3.5 to 6.5 times the rate."""
    rng = np.random.default_rng(11)
    blocks, rows, n = 288, 100, 1000
    ref = fit_reference(draw(rng, blocks * rows), np.repeat(np.arange(blocks), rows))
    keys = [S.SILHOUETTE]
    sampled = threshold_at(table_of(ref, [n], keys=keys, silhouette_sample=sample), n)
    whole = threshold_at(table_of(ref, [n], keys=keys), n)
    trials = 400
    values = []
    for i in range(trials):
        W = draw(rng, n)
        labels, _ = assign_labels(W, ref.centers)
        values.append(silhouette_sampled(W, labels, sample_size=sample, random_state=i).score)
    below = np.asarray(values) < sampled[S.SILHOUETTE]
    assert ALPHA / 2 <= below.mean() <= 2 * ALPHA, below.sum()
    assert np.mean(np.asarray(values) < whole[S.SILHOUETTE]) > 3 * ALPHA


def test_a_silhouette_undefined_in_most_null_windows_gets_no_threshold_above_250_rows() -> None:
    """One row in 1,000 in the second cluster: most 250-row null windows hold one
    cluster only, so the silhouette is no drift signal at 500 rows either."""
    rng = np.random.default_rng(2)
    n_rows = 20_000
    labels = np.zeros(n_rows, dtype=np.intp)
    labels[rng.choice(n_rows, 20, replace=False)] = 1
    centers = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])
    X = centers[labels] + rng.normal(size=(n_rows, 3))
    _, sq = assign_labels(X, centers)
    table, _ = calibrate(
        X, np.repeat(np.arange(20), 1000), centers, fit_reference_bins(X),
        fit_outlier_thresholds(sq, labels, 2, quantile=0.99),
        starts=np.arange(20.0), ends=np.arange(1.0, 21.0), sizes=[500], keys=[S.SILHOUETTE],
        random_state=0,
    )  # fmt: skip
    assert threshold_at(table, 500)[S.SILHOUETTE] is None


SPLIT_GRID = [25, 50, 100, 200, 400, 800, 1600]
SPLIT_ALPHA = 0.01


@pytest.fixture(scope="module")
def split_gain_table(reference: Reference) -> NullTable:
    """The split gain's table over SPLIT_GRID, calibrated once for both sizes tested
    (about 7 s a calibration)."""
    return table_of(reference, SPLIT_GRID, keys=[S.SPLIT_GAIN], false_alarm_rate=SPLIT_ALPHA)


@pytest.mark.parametrize("n", [100, 400])
def test_the_split_gain_holds_its_rate_between_the_refitted_sizes(
    reference: Reference, split_gain_table: NullTable, n: int
) -> None:
    """The split gain is drawn at every size of the grid: interpolated in log-log from the
    three sizes the centroid drift is refitted at (25, 200, 1,600 here), its threshold
    let 2.3 times its rate through at 100 rows, and a tenth of it at 400. Sizes within
    one reference window (600 rows), where a run's usually are: a null window spanning
    two of the 60 blocks draws from 59 stretches only, whose tail the 1,000 fresh windows
    here find too thin."""
    alpha = SPLIT_ALPHA
    threshold = threshold_at(split_gain_table, n)[S.SPLIT_GAIN]
    assert threshold is not None
    rng = np.random.default_rng(5)
    trials = 1000
    gains = [
        split_gain(draw(rng, n), reference.centers, reference.baseline, random_state=i).gain
        for i in range(trials)
    ]
    rate = float(np.mean(np.asarray(gains) > threshold))
    assert alpha / 2 <= rate <= 2 * alpha, rate


@pytest.mark.parametrize("unit", [1e-12, 1e-100])
def test_the_drift_thresholds_follow_the_data_s_unit(unit: float) -> None:
    """Unscaled data in tiny units (``scaling: none``): the drift's threshold scales with
    them and the one in standard errors does not move. Near 1e-100 the squared spread
    underflowed and every calibration failed with a division by zero; near 1e-12 an
    absolute variance floor stood above every variance and the standard errors read 0."""
    rng = np.random.default_rng(8)
    X = draw(rng, BLOCKS * ROWS)
    block = np.repeat(np.arange(BLOCKS), ROWS)
    keys = [S.CENTROID_DRIFT_MAX, S.CENTROID_DRIFT_SE]
    plain = threshold_at(table_of(fit_reference(X, block), [300], keys=keys), 300)
    tiny = threshold_at(table_of(fit_reference(X * unit, block), [300], keys=keys), 300)
    assert plain[S.CENTROID_DRIFT_SE] is not None and tiny[S.CENTROID_DRIFT_SE] is not None
    assert plain[S.CENTROID_DRIFT_MAX] is not None and tiny[S.CENTROID_DRIFT_MAX] is not None
    # Not exact: the refits converge to a tolerance, and brentq solves to one.
    np.testing.assert_allclose(tiny[S.CENTROID_DRIFT_SE], plain[S.CENTROID_DRIFT_SE], rtol=1e-4)
    np.testing.assert_allclose(
        tiny[S.CENTROID_DRIFT_MAX], plain[S.CENTROID_DRIFT_MAX] * unit, rtol=1e-4
    )


def test_the_centroid_drift_threshold_stays_within_the_reference_s_reach() -> None:
    # A reference day whose regime 1 was gone for two hours of 24: its null held a clump
    # of drifts near the regimes' distance over a body of sampling noise, and the tail
    # fitted above the body put the threshold in the thousands, past any window's reach.
    rng = np.random.default_rng(0)
    parts = []
    for b in range(24):
        shares = SHARES if b not in (4, 5) else np.array([SHARES[0] + SHARES[1], 0.0, SHARES[2]])
        parts.append(CENTERS[rng.choice(3, size=500, p=shares)] + 0.3 * rng.normal(size=(500, 3)))
    X = np.concatenate(parts)
    ref = fit_reference(X, np.repeat(np.arange(24), 500))
    table = table_of(ref, [100, 500], false_alarm_rate=0.01)
    drift = table.values[:, table.keys.index(S.CENTROID_DRIFT_MAX)]
    reach = float(np.sqrt(np.sum((X.max(axis=0) - X.min(axis=0)) ** 2)))
    assert drift == pytest.approx([reach, reach])  # the far tail reached 3,489 and 283,772
    # A unit change moves a centre past it, as it moves rows out of the reference's span.
    W = CENTERS[rng.choice(3, size=500, p=SHARES)] + 0.3 * rng.normal(size=(500, 3))
    W[:, 0] *= 1000
    moved = fit_kmeans(W, 3, init=ref.centers, n_init=1, random_state=0).centers
    assert centroid_drift(ref.centers, moved).max > drift[1]
