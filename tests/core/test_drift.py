"""Tests of monitor.core.drift: PSI bins and the empty-bin rule by hand; label, centroid drift."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.cluster import KMeans

from monitor.core._psi import psi_ceiling, psi_from_fractions
from monitor.core.drift import (
    SPLIT_MIN_ROWS,
    centroid_drift,
    cluster_split_savings,
    fit_reference_bins,
    label_agreement,
    label_drift,
    psi,
    split_baseline,
    split_gain,
    standardised_drift,
)
from monitor.errors import InvalidInputError
from tests.fakes import long_and_tight

ONE_TO_HUNDRED = np.arange(1.0, 101.0).reshape(-1, 1)


def reference_psi(edges: np.ndarray, ref: np.ndarray, cur: np.ndarray, eps: float) -> float:
    """Straightforward PSI of one feature with np.digitize (right-closed bins) and bincount."""
    nb = edges.shape[0] + 1
    p = np.bincount(np.digitize(ref, edges, right=True), minlength=nb) / ref.shape[0]
    q = np.bincount(np.digitize(cur, edges, right=True), minlength=nb) / cur.shape[0]
    p = np.maximum(p, eps) / np.maximum(p, eps).sum()
    q = np.maximum(q, eps) / np.maximum(q, eps).sum()
    return float(np.sum((p - q) * np.log(p / q)))


# --------------------------------------------------------------------------- reference bins


def test_quantile_bins_of_one_to_hundred_by_hand() -> None:
    # The b/10 quantiles (inverted CDF) of 1..100 are 10, 20, ..., 90; bins are
    # right-closed, so (-inf, 10] holds 1..10, ..., (90, inf) holds 91..100.
    bins = fit_reference_bins(ONE_TO_HUNDRED)
    np.testing.assert_array_equal(bins.edges[0], np.arange(10.0, 100.0, 10.0))
    np.testing.assert_array_equal(bins.reference_fractions[0], np.full(10, 0.1))
    assert bins.strategy == "quantile"
    assert bins.epsilon == 1e-4


def test_uniform_bins_by_hand() -> None:
    X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [8.0]])
    bins = fit_reference_bins(X, n_bins=4, strategy="uniform")
    # Equal widths over [0, 8]: inner edges 2, 4, 6; right-closed: {0,1,2}, {3,4}, {}, {8}.
    np.testing.assert_array_equal(bins.edges[0], [2.0, 4.0, 6.0])
    np.testing.assert_allclose(bins.reference_fractions[0], [3 / 6, 2 / 6, 0.0, 1 / 6])


def test_binary_feature_bins_collapse_and_isolate_both_sides() -> None:
    # 70 % zeros: the quantiles are 0 (x7) and 1 (x2) -> edges {0, 1}; 0 is the minimum,
    # so an edge just below it is added: bins (-inf, 0), {0}, (0, 1], (1, inf).
    X = np.r_[np.zeros(70), np.ones(30)].reshape(-1, 1)
    bins = fit_reference_bins(X)
    np.testing.assert_array_equal(bins.edges[0], [np.nextafter(0.0, -1.0), 0.0, 1.0])
    np.testing.assert_allclose(bins.reference_fractions[0], [0.0, 0.7, 0.3, 0.0])
    # New values on either side of the reference range land in reference-empty bins.
    below = psi(bins, np.full((10, 1), -1.0)).per_feature[0]
    above = psi(bins, np.full((10, 1), 2.0)).per_feature[0]
    assert below > 5.0
    assert above > 5.0
    assert psi(bins, X).max == 0.0


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_constant_feature_gets_three_bins(strategy: str) -> None:
    X = np.full((50, 1), 3.0)
    bins = fit_reference_bins(X, strategy=strategy)
    np.testing.assert_array_equal(bins.edges[0], [np.nextafter(3.0, -np.inf), 3.0])
    np.testing.assert_array_equal(bins.reference_fractions[0], [0.0, 1.0, 0.0])
    assert psi(bins, X).max == 0.0
    # Half the window moves up: q = (0, .5, .5) against p = (0, 1, 0), each floored at
    # 1e-4 and renormalised (sums 1.0001 and 1.0002). Down is the mirror image.
    p = np.array([1e-4, 1.0, 1e-4]) / 1.0002
    q_up = np.array([1e-4, 0.5, 0.5]) / 1.0001
    expected = float(np.sum((q_up - p) * np.log(q_up / p)))
    for shifted in (3.5, 2.5):
        window = np.r_[np.full(25, 3.0), np.full(25, shifted)].reshape(-1, 1)
        assert psi(bins, window).max == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- psi


def test_psi_empty_bin_rule_by_hand() -> None:
    # Reference 1..100 (p = 0.1 in each of 10 bins). The window puts half its points in
    # the first bin and half in the last, none in the 8 bins between: q = (.5, 0 x8, .5).
    # Rule: floor at 1e-4 -> (.5, 1e-4 x8, .5), sum 1.0008, renormalise; p is unchanged.
    bins = fit_reference_bins(ONE_TO_HUNDRED)
    window = np.r_[np.full(50, 5.0), np.full(50, 95.0)].reshape(-1, 1)
    qe, qm = 0.5 / 1.0008, 1e-4 / 1.0008
    expected = 2 * (qe - 0.1) * math.log(qe / 0.1) + 8 * (qm - 0.1) * math.log(qm / 0.1)
    res = psi(bins, window)
    assert res.per_feature[0] == pytest.approx(expected, rel=1e-12)
    # By hand: 2 * 0.3996 * ln 4.996 + 8 * (-0.0999) * ln 0.000999 = 1.2856 + 5.5214.
    assert expected == pytest.approx(6.807, abs=1e-3)


def test_psi_identical_window_is_zero_and_floor_is_symmetric() -> None:
    bins = fit_reference_bins(ONE_TO_HUNDRED)
    assert psi(bins, ONE_TO_HUNDRED).max == 0.0
    # A bin empty on both sides contributes nothing.
    X = np.r_[np.zeros(70), np.ones(30)].reshape(-1, 1)
    assert psi(fit_reference_bins(X), X[::-1]).max == 0.0


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psi_matches_digitize_bincount_reference(strategy: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = np.column_stack(
        [
            rng.normal(size=2000),
            rng.exponential(size=2000),
            rng.integers(0, 4, 2000).astype(float),  # discrete: collapsed edges
            np.full(2000, -1.5),  # constant
        ]
    )
    cur = ref[rng.integers(0, 2000, 700)] + rng.normal(scale=0.3, size=(700, 4))
    bins = fit_reference_bins(ref, n_bins=8, strategy=strategy, epsilon=1e-3)
    res = psi(bins, cur)
    expected = [
        reference_psi(bins.edges[j], ref[:, j], cur[:, j], 1e-3) for j in range(ref.shape[1])
    ]
    # Same arithmetic in a different order: 1e-12 relative.
    np.testing.assert_allclose(res.per_feature, expected, rtol=1e-12)
    assert res.max == max(expected)
    for e in bins.edges:
        assert np.all(np.diff(e) > 0)


def test_psi_counts_features_above_named_thresholds() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(5000, 3))
    cur = ref.copy()
    cur[:, 1] += 0.4  # PSI of a normal shifted by delta sd is about delta^2 = 0.16
    cur[:, 2] += 3.0  # far away
    res = psi(fit_reference_bins(ref), cur, thresholds={"warning": 0.1, "critical": 0.25})
    assert res.per_feature[0] == 0.0
    assert 0.1 < res.per_feature[1] < 0.25 < res.per_feature[2]
    assert res.n_features_above == {"warning": 2, "critical": 1}
    assert psi(fit_reference_bins(ref), cur).n_features_above == {}


def test_psi_is_invariant_to_row_order() -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(size=(1000, 2)), rng.normal(0.2, size=(500, 2))
    bins = fit_reference_bins(ref)
    np.testing.assert_array_equal(psi(bins, cur).per_feature, psi(bins, cur[::-1]).per_feature)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"n_bins": 1},
            r"The 'n_bins' parameter of fit_reference_bins must be an int in \[2, inf\)",
        ),
        (
            {"strategy": "kmeans"},
            r"'strategy' parameter of fit_reference_bins must be one of "
            r"\{'quantile', 'uniform'\}\. Got 'kmeans' instead\.",
        ),
        (
            {"epsilon": 0.0},
            r"'epsilon' parameter of fit_reference_bins must be a float in "
            r"\(0\.0, 0\.5\)\. Got 0\.0 instead\.",
        ),
    ],
)
def test_fit_reference_bins_rejects_bad_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        fit_reference_bins(ONE_TO_HUNDRED, **kwargs)  # type: ignore[arg-type]


def test_psi_rejects_wrong_width_and_bad_thresholds() -> None:
    bins = fit_reference_bins(ONE_TO_HUNDRED)
    with pytest.raises(
        InvalidInputError, match=r"X has 2 feature\(s\) but the reference bins have 1"
    ):
        psi(bins, np.zeros((3, 2)))
    with pytest.raises(InvalidInputError, match=r"thresholds\['warning'\]"):
        psi(bins, ONE_TO_HUNDRED, thresholds={"warning": -0.1})


# --------------------------------------------------------------------------- label drift


def test_label_drift_by_hand() -> None:
    # p = (.5, .5), q = (.75, .25): .25 ln 1.5 + (-.25) ln .5 = .25 ln 3.
    res = label_drift([0.5, 0.5], np.array([0, 0, 0, 1]), 2)
    assert res.psi == pytest.approx(0.25 * math.log(3.0), rel=1e-14)
    np.testing.assert_array_equal(res.current_shares, [0.75, 0.25])
    np.testing.assert_array_equal(res.reference_shares, [0.5, 0.5])


def test_label_drift_empty_cluster_uses_the_floor() -> None:
    # q = (1, 0) against p = (.5, .5): floor q at 1e-4 -> (1, 1e-4) / 1.0001.
    res = label_drift([1.0, 1.0], np.zeros(8, dtype=int), 2)
    q = np.array([1.0, 1e-4]) / 1.0001
    expected = float(np.sum((q - 0.5) * np.log(q / 0.5)))
    assert res.psi == pytest.approx(expected, rel=1e-14)
    np.testing.assert_array_equal(res.reference_shares, [0.5, 0.5])  # renormalised


@pytest.mark.parametrize(
    ("shares", "labels", "message"),
    [
        ([0.5, 0.5, 0.0], [0, 1], r"'reference_shares' parameter of label_drift must have shape"),
        ([0.5, -0.5], [0, 1], r"finite non-negative shares"),
        ([0.5, 0.5], [0, 2], r"cluster indices in \[0, 1\]\. Got 2 instead"),
        ([0.5, 0.5], [], r"at least one label"),
    ],
)
def test_label_drift_rejects_bad_input(
    shares: list[float], labels: list[int], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        label_drift(shares, np.array(labels, dtype=int), 2)


# --------------------------------------------------------------------------- centroid drift


def test_centroid_drift_by_hand() -> None:
    ref = np.array([[0.0, 0.0], [10.0, 0.0]])
    cur = np.array([[10.0, 1.0], [0.0, 2.0]])
    res = centroid_drift(ref, cur)
    assert res.pairs.tolist() == [[0, 1], [1, 0]]
    np.testing.assert_array_equal(res.distances, [2.0, 1.0])
    assert (res.mean, res.max) == (1.5, 2.0)
    assert res.vanished == ()
    assert res.appeared == ()


def test_centroid_drift_vanished_and_appeared_by_hand() -> None:
    ref = np.array([[0.0], [5.0], [10.0]])
    cur = np.array([[10.5], [0.5]])
    res = centroid_drift(ref, cur)
    assert res.pairs.tolist() == [[0, 1], [2, 0]]
    assert res.vanished == (1,)
    assert res.appeared == ()
    flipped = centroid_drift(cur, ref)
    assert flipped.pairs.tolist() == [[0, 2], [1, 0]]
    assert flipped.appeared == (1,)
    assert flipped.vanished == ()


def test_standardised_drift_by_hand() -> None:
    """Each matched distance over sqrt(v / n + tau^2) of its reference cluster, with the
    rows of its current centre; the largest wins, and a tight cluster's small move can
    outweigh a wide one's large move."""
    ref = np.array([[0.0, 0.0], [10.0, 0.0]])
    cur = np.array([[10.0, 1.0], [0.0, 2.0]])  # cluster 0 moved 2.0, cluster 1 moved 1.0
    cd = centroid_drift(ref, cur)
    spread = np.array([[400.0, 0.0], [0.09, 0.0016]])
    counts = np.array([100, 25])  # current centre 0 (reference 1) has 100 rows
    # cluster 0: 2 / sqrt(400 / 25) = 0.5; cluster 1: 1 / sqrt(0.09 / 100 + 0.0016) = 20
    assert standardised_drift(cd, counts, spread) == pytest.approx(20.0)
    wide_only = np.array([[400.0, 0.0], [400.0, 0.0]])
    assert standardised_drift(cd, counts, wide_only) == pytest.approx(1.0 / math.sqrt(4.0))


def test_standardised_drift_leaves_out_a_centre_with_no_row() -> None:
    cd = centroid_drift(np.array([[0.0], [5.0]]), np.array([[0.1], [9.0]]))
    spread = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert standardised_drift(cd, np.array([100, 0]), spread) == pytest.approx(1.0)
    assert standardised_drift(cd, np.array([0, 0]), spread) == 0.0
    # A cluster of one repeated point: finite however far it moves.
    point = standardised_drift(cd, np.array([1, 1]), np.zeros((2, 2)))
    assert math.isfinite(point) and point > 1e9


def test_standardised_drift_leaves_out_a_reference_cluster_absent_from_the_window() -> None:
    """Cluster 1 has no row of the window: the current centre matched to it (9.0) is one
    the refit put among cluster 0's rows, not cluster 1's centre moved by 4."""
    cd = centroid_drift(np.array([[0.0], [5.0]]), np.array([[0.1], [9.0]]))
    spread = np.array([[1.0, 0.0], [1.0, 0.0]])
    se = math.sqrt(1 / 50)
    assert standardised_drift(cd, [50, 50], spread) == pytest.approx(4.0 / se)
    assert standardised_drift(cd, [50, 50], spread, [100, 0]) == pytest.approx(0.1 / se)
    for bad in ([100], [100, -1]):
        with pytest.raises(InvalidInputError, match="count per reference cluster"):
            standardised_drift(cd, [50, 50], spread, bad)


@pytest.mark.parametrize(
    ("counts", "spread", "message"),
    [
        (np.array([1]), np.ones((2, 2)), "count per current centre"),
        (np.array([1, -1]), np.ones((2, 2)), "count per current centre"),
        (np.array([1, 1]), np.ones((2, 3)), "two non-negative values"),
        (np.array([1, 1]), -np.ones((2, 2)), "two non-negative values"),
    ],
)
def test_standardised_drift_rejects_bad_counts_and_spreads(
    counts: np.ndarray, spread: np.ndarray, message: str
) -> None:
    cd = centroid_drift(np.array([[0.0], [5.0]]), np.array([[0.1], [9.0]]))
    with pytest.raises(InvalidInputError, match=message):
        standardised_drift(cd, counts, spread)


@pytest.mark.parametrize(("k_ref", "k_cur", "seed"), [(5, 5, 0), (6, 4, 1), (3, 6, 2)])
def test_centroid_drift_is_the_minimum_cost_matching(k_ref: int, k_cur: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref, cur = rng.normal(size=(k_ref, 3)), rng.normal(size=(k_cur, 3))
    res = centroid_drift(ref, cur)
    m = min(k_ref, k_cur)
    assert res.pairs.shape == (m, 2)
    # Brute force over every injective matching of the smaller side.
    best = math.inf
    small, large = (ref, cur) if k_ref <= k_cur else (cur, ref)
    for perm in itertools.permutations(range(large.shape[0]), small.shape[0]):
        best = min(
            best, sum(float(np.linalg.norm(small[i] - large[j])) for i, j in enumerate(perm))
        )
    # Sums of the same m distances in another order.
    assert res.distances.sum() == pytest.approx(best, rel=1e-12)
    assert len(res.vanished) == k_ref - m
    assert len(res.appeared) == k_cur - m


def test_centroid_drift_invariant_to_permuting_current_centroids() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(8, 4))
    cur = ref + rng.normal(scale=0.1, size=(8, 4))
    perm = rng.permutation(8)
    base = centroid_drift(ref, cur)
    moved = centroid_drift(ref, cur[perm])
    # Current index j moved to position inv[j]; distances per reference index are unchanged.
    inv = np.argsort(perm)
    np.testing.assert_array_equal(moved.pairs[:, 1], inv[base.pairs[:, 1]])
    np.testing.assert_array_equal(moved.distances, base.distances)
    assert (moved.mean, moved.max) == (base.mean, base.max)


def test_centroid_drift_rejects_mismatched_dimensions() -> None:
    with pytest.raises(InvalidInputError, match=r"'current_centers' parameter of centroid_drift"):
        centroid_drift(np.zeros((2, 3)), np.zeros((2, 2)))


# --------------------------------------------------------------------------- label agreement


def test_label_agreement_by_hand() -> None:
    # Pairing 0->1, 2->0; reference cluster 1 vanished.
    pairs = np.array([[0, 1], [2, 0]])
    ref = np.array([0, 0, 1, 2, 2, 2])
    cur = np.array([1, 0, 1, 0, 0, 1])
    # Agree: point 0 (0->1), points 3 and 4 (2->0). Point 2 is in a vanished cluster.
    assert label_agreement(ref, cur, pairs) == pytest.approx(3 / 6, abs=0)


def test_label_agreement_with_centroid_drift_pairs_is_one_for_renamed_clusters() -> None:
    rng = np.random.default_rng(6)
    centers = rng.normal(scale=10, size=(4, 2))
    names = np.array([2, 3, 1, 0])
    res = centroid_drift(centers, centers[np.argsort(names)])
    labels = rng.integers(0, 4, 100)
    assert label_agreement(labels, names[labels], res.pairs) == 1.0


def test_label_agreement_rejects_bad_pairs() -> None:
    with pytest.raises(InvalidInputError, match=r"shape \(m, 2\)"):
        label_agreement([0, 1], [0, 1], np.array([0, 1]))
    with pytest.raises(InvalidInputError, match="one entry per sample"):
        label_agreement([0, 1], [0], np.array([[0, 0]]))


def test_psi_in_chunks_and_in_float32_equals_the_whole_window_in_float64() -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(3000, 4))
    bins = fit_reference_bins(ref, n_bins=10)
    window = (rng.normal(size=(5000, 4)) * [1.0, 1.2, 0.9, 1.0] + [0.0, 0.3, 0.0, 0.0]).astype(
        np.float32
    )
    whole = psi(bins, window.astype(np.float64), working_memory_mib=1024.0)
    # A tiny budget forces chunks of a few rows; float32 values convert exactly to float64,
    # so every count and every PSI must be identical, not merely close.
    chunked = psi(bins, window, working_memory_mib=0.001)
    np.testing.assert_array_equal(chunked.per_feature, whole.per_feature)
    assert whole.per_feature[1] > whole.per_feature[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_counting_edges_bins_like_searchsorted_including_values_on_edges(dtype: type) -> None:
    from monitor.core.drift import _bin_counts_few

    rng = np.random.default_rng(3)
    edges = np.sort(rng.normal(size=9)).astype(dtype).astype(np.float64)
    # Values on the edges themselves (right-closed bins put them below), just around
    # them, and far outside the reference's range.
    x = np.concatenate(
        [edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf), rng.normal(size=500) * 3]
    ).astype(dtype)
    expected = np.bincount(np.searchsorted(edges, x.astype(np.float64), side="left"), minlength=10)
    np.testing.assert_array_equal(_bin_counts_few(edges, x), expected)


def test_many_bins_take_the_binary_search_and_agree_with_a_direct_count() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=(4000, 2)), rng.normal(0.2, 1.0, size=(3000, 2))
    bins = fit_reference_bins(ref, n_bins=50)
    assert all(e.shape[0] > 32 for e in bins.edges)
    got = psi(bins, cur).per_feature
    for j, e in enumerate(bins.edges):
        q = np.bincount(np.searchsorted(e, cur[:, j], side="left"), minlength=e.size + 1)
        q = np.maximum(q / cur.shape[0], bins.epsilon)
        q /= q.sum()
        p = np.maximum(bins.reference_fractions[j], bins.epsilon)
        p /= p.sum()
        assert got[j] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)


# --------------------------------------------------------------------------- split gain


def test_a_cut_in_two_saves_what_scikit_learn_s_2_means_saves() -> None:
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(300, 4)), rng.normal(3.0, 1.0, size=(40, 4))])
    labels = np.zeros(X.shape[0], dtype=np.intp)
    labels[::7] = 1  # a second cluster of spread-out rows
    got = cluster_split_savings(X, labels, 2, random_state=0)
    for c in (0, 1):
        P = X[labels == c]
        far = np.argmax(((P - P.mean(axis=0)) ** 2).sum(axis=1))
        P = np.delete(P, far, axis=0)  # a cluster is cut without its farthest row
        whole = float(((P - P.mean(axis=0)) ** 2).sum())
        km = KMeans(2, n_init=10, random_state=0).fit(P)
        # Both are local optima of the same objective from several k-means++ starts; on
        # a two-lump cluster they find the same cut (to the last Lloyd step's tolerance).
        assert got[c] == pytest.approx((whole - km.inertia_) / P.shape[0], rel=1e-6)


def test_a_cluster_too_small_to_cut_is_nan_and_identical_rows_save_nothing() -> None:
    X = np.vstack([np.ones((SPLIT_MIN_ROWS, 2)), np.zeros((SPLIT_MIN_ROWS - 1, 2))])
    labels = np.repeat([0, 1], [SPLIT_MIN_ROWS, SPLIT_MIN_ROWS - 1])
    got = cluster_split_savings(X, labels, 3, random_state=0)
    assert got[0] == 0.0 and np.isnan(got[1]) and np.isnan(got[2])


def test_one_far_row_is_not_a_regime_but_two_are() -> None:
    """A tight cluster with one row far off: cutting that row away would save more per row
    than any cut of the cluster (1,000 times its usual saving in a live reference of 10,000
    rows, whose null windows then drew the row often enough to set the split gain's
    threshold at 60). A lone row is an outlier, the outlier ratio's; two rows together
    are the smallest regime, and still stand out."""
    rng = np.random.default_rng(4)
    tight = rng.normal(scale=0.05, size=(175, 4))
    far = np.full((2, 4), 1.5)
    labels = np.zeros(177, dtype=np.intp)
    plain = cluster_split_savings(tight, labels[:175], 1, random_state=0)[0]
    one = cluster_split_savings(np.vstack([tight, far[:1]]), labels[:176], 1, random_state=0)[0]
    two = cluster_split_savings(np.vstack([tight, far]), labels, 1, random_state=0)[0]
    assert one == pytest.approx(plain, rel=0.1)
    assert two > 10 * plain


def test_a_small_regime_next_to_a_tight_cluster_raises_the_split_gain() -> None:
    centers = np.array([[0.0, 0.0], [0.0, 8.0]])
    ref = [long_and_tight(1000, seed=s) for s in range(20)]
    X = np.vstack(ref)
    labels = np.argmin(((X[:, None, :] - centers) ** 2).sum(-1), axis=1)
    block = np.repeat(np.arange(20), 1000)
    baseline = split_baseline(X, labels, block, 2, random_state=0)
    quiet = [
        split_gain(long_and_tight(1000, seed=20 + s), centers, baseline, random_state=s)
        for s in range(5)
    ]
    event = split_gain(long_and_tight(1000, seed=30, new=0.05), centers, baseline, random_state=0)
    # The elongated cluster cuts well in every window, the tight one does not: a global
    # (k+1)-th centre saved 0.5 of the inertia either way. Against each cluster's own
    # reference the quiet windows stay near 1 and the regime beside the tight one stands out.
    assert max(q.gain for q in quiet) < 1.5
    assert event.gain > 5 and event.cluster == 1


def test_split_gain_is_undefined_without_a_baseline_and_refuses_a_wrong_one() -> None:
    X = long_and_tight(200, seed=0)
    centers = np.array([[0.0, 0.0], [0.0, 8.0]])
    undefined = split_gain(X, centers, np.zeros(2), random_state=0)
    assert (undefined.defined, undefined.gain, undefined.cluster) == (False, 0.0, -1)
    for bad in (np.ones(3), np.array([1.0, np.nan]), np.array([1.0, -1.0])):
        with pytest.raises(InvalidInputError, match="'baseline' parameter of split_gain"):
            split_gain(X, centers, bad)


@pytest.mark.parametrize("seed", range(5))
def test_the_psi_ceiling_is_the_largest_psi_any_window_reaches(seed: int) -> None:
    """Every row in one bin, the bin the reference holds least of: no mix of bins, nor a
    window of any size, reads more (PSI is convex in the window's shares)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(8, 0.5))
    p[rng.integers(0, 8)] = 0.0  # an empty reference bin, floored as psi floors it
    p /= p.sum()
    top = psi_ceiling(p, 1e-4)
    corner = max(psi_from_fractions(p, np.eye(8)[j], 1e-4) for j in range(8))
    assert top == pytest.approx(corner, rel=1e-12)
    for n in (1, 2, 5, 20, 200):
        for _ in range(200):
            q = rng.multinomial(n, rng.dirichlet(np.full(8, 0.3))) / n
            assert psi_from_fractions(p, q, 1e-4) <= top + 1e-12
    # Ten even bins: all rows in one reads 8.28 at the default floor.
    assert psi_ceiling(np.full(10, 0.1), 1e-4) == pytest.approx(8.28, abs=0.01)
