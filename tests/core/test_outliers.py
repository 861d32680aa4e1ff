"""Tests of monitor.core.outliers: thresholds and ratios by hand, and against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.outliers import fit_outlier_thresholds, leave_out_thresholds, outlier_rate
from monitor.errors import InvalidInputError


def test_thresholds_by_hand_in_euclidean_units() -> None:
    # Squared distances 1, 4, 9, 16 are distances 1, 2, 3, 4 (cluster 0) and 25, 100
    # are 5, 10 (cluster 1). Median (linear) of 1..4 is 2.5; of 5, 10 is 7.5.
    # Cluster 2 is empty: the median of all six distances, (3 + 4) / 2 = 3.5.
    sq = np.array([1.0, 4.0, 9.0, 16.0, 25.0, 100.0])
    labels = np.array([0, 0, 0, 0, 1, 1])
    res = fit_outlier_thresholds(sq, labels, 3, quantile=0.5)
    np.testing.assert_allclose(res.thresholds, [2.5, 7.5, 3.5], rtol=1e-15)
    assert res.quantile == 0.5


def test_outlier_rate_by_hand() -> None:
    thresholds = fit_outlier_thresholds(
        np.array([1.0, 4.0, 9.0, 16.0, 25.0, 100.0]), np.array([0, 0, 0, 0, 1, 1]), 3, quantile=0.5
    )  # 2.5, 7.5, 3.5
    # Window: distances 2, 3 in cluster 0 (3 > 2.5 is out), 7.5 in cluster 1 (equal is in),
    # 4 in cluster 2 (4 > 3.5 is out).
    res = outlier_rate(thresholds, np.array([4.0, 9.0, 56.25, 16.0]), np.array([0, 0, 1, 2]))
    assert res.n_outliers == 2
    assert res.ratio == 0.5
    np.testing.assert_array_equal(res.per_cluster, [0.5, 0.0, 1.0])


def test_outlier_rate_empty_cluster_is_zero() -> None:
    thresholds = fit_outlier_thresholds(np.array([1.0, 4.0]), np.array([0, 1]), 3)
    res = outlier_rate(thresholds, np.array([100.0]), np.array([0]))
    np.testing.assert_array_equal(res.per_cluster, [1.0, 0.0, 0.0])


@pytest.mark.parametrize(("k", "q", "seed"), [(1, 0.99, 0), (5, 0.9, 1), (12, 0.95, 2)])
def test_thresholds_match_a_plain_loop_and_rate_on_reference(k: int, q: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 4000
    labels = rng.integers(0, k, n)
    sq = rng.chisquare(df=3, size=n) * (1 + labels)  # clusters of different spread
    res = fit_outlier_thresholds(sq, labels, k, quantile=q)
    expected = [np.quantile(np.sqrt(sq[labels == c]), q) for c in range(k)]
    np.testing.assert_array_equal(res.thresholds, expected)
    # On its own reference, without ties: the linear quantile lies in
    # [x_(h), x_(h+1)) with h = floor((n_c - 1) q) (0-based order statistics), so exactly
    # n_c - 1 - h points of each cluster are strictly beyond it.
    rate = outlier_rate(res, sq, labels)
    counts = np.bincount(labels, minlength=k)
    expected_out = counts - 1 - np.floor((counts - 1) * q)
    np.testing.assert_allclose(rate.per_cluster, expected_out / counts, rtol=1e-15)
    assert rate.n_outliers == int(expected_out.sum())


def test_invariant_to_permuting_points() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 500)
    sq = rng.exponential(size=500)
    perm = rng.permutation(500)
    base = fit_outlier_thresholds(sq, labels, 4, quantile=0.9)
    moved = fit_outlier_thresholds(sq[perm], labels[perm], 4, quantile=0.9)
    np.testing.assert_array_equal(base.thresholds, moved.thresholds)
    assert outlier_rate(base, sq, labels).ratio == outlier_rate(base, sq[perm], labels[perm]).ratio


@pytest.mark.parametrize(
    ("sq", "labels", "kwargs", "message"),
    [
        ([1.0, -1.0], [0, 0], {}, r"finite non-negative squared distances\. Got -1\.0 instead"),
        ([1.0, np.nan], [0, 0], {}, r"finite non-negative squared distances\. Got nan instead"),
        ([], [], {}, r"at least one distance"),
        ([1.0, 2.0], [0, 3], {}, r"cluster indices in \[0, 1\]\. Got 3 instead"),
        (
            [1.0, 2.0],
            [0, 1],
            {"quantile": 0.0},
            r"The 'quantile' parameter of fit_outlier_thresholds must be a float "
            r"in \(0\.0, 1\.0\]\. Got 0\.0 instead\.",
        ),
    ],
)
def test_fit_rejects_bad_input(
    sq: list[float], labels: list[int], kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        fit_outlier_thresholds(np.array(sq), np.array(labels, dtype=int), 2, **kwargs)


def test_rate_rejects_labels_beyond_thresholds() -> None:
    thresholds = fit_outlier_thresholds(np.array([1.0]), np.array([0]), 2)
    with pytest.raises(InvalidInputError, match=r"'labels' parameter of outlier_rate"):
        outlier_rate(thresholds, np.array([1.0]), np.array([2]))


@pytest.mark.parametrize("q", [0.5, 0.73, 0.99, 1.0])
@pytest.mark.parametrize("seed", range(6))
def test_leave_out_thresholds_are_the_fit_without_each_group(q: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k, groups = int(rng.integers(1, 300)), int(rng.integers(1, 5)), int(rng.integers(1, 9))
    sq = rng.exponential(size=n)
    if seed % 2:
        sq = np.round(sq, 1)  # ties
    labels, owner = rng.integers(0, k, n), rng.integers(0, groups, n)
    fitted = fit_outlier_thresholds(sq, labels, k, quantile=q)
    got = leave_out_thresholds(sq, labels, owner, fitted, groups)
    assert got.shape == (groups, k)
    for g in range(groups):
        for c in range(k):
            rest = (owner != g) & (labels == c)
            # No point of the cluster outside the group: the fitted threshold stands.
            want = np.quantile(np.sqrt(sq[rest]), q) if rest.any() else fitted.thresholds[c]
            assert got[g, c] == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_leave_out_thresholds_by_hand() -> None:
    # Group 0: distances 1..18; group 1: 100 and 200. Fitted on all 20 at q = 0.9:
    # 18 + 0.1 * (100 - 18) = 26.2. Without group 1: 16 + 0.3 * 1 = 16.3 (rank 15.3 of 18);
    # without group 0: 100 + 0.9 * 100 = 190.
    dist = np.concatenate((np.arange(1.0, 19.0), [100.0, 200.0]))
    owner = np.array([0] * 18 + [1, 1])
    fitted = fit_outlier_thresholds(dist**2, np.zeros(20, dtype=np.intp), 1, quantile=0.9)
    assert fitted.thresholds[0] == pytest.approx(26.2)
    limits = leave_out_thresholds(dist**2, np.zeros(20, dtype=np.intp), owner, fitted, 2)
    assert limits[:, 0] == pytest.approx([190.0, 16.3])


def test_leave_out_thresholds_reject_groups_out_of_range() -> None:
    fitted = fit_outlier_thresholds([1.0, 4.0], [0, 0], 1)
    with pytest.raises(InvalidInputError, match="leave_out_thresholds"):
        leave_out_thresholds([1.0, 4.0], [0, 0], [0, 2], fitted, 2)
