"""The counts/partial-sums forms of the SLIs equal their row forms on the same rows.

A distributed pass (the Spark engine) sums per-partition aggregates on the driver; each
``*_from_counts`` / ``*_from_sums`` function must give what the row form gives on the
whole window, whatever the split of the rows into pieces.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from monitor.core import drift, outliers, quality
from monitor.core._distances import silhouette_from_ab
from monitor.core.kmeans import assign_two_nearest
from monitor.errors import DegenerateDataWarning, InvalidInputError


def _window(seed: int, n: int = 600, d: int = 3, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(k, d))
    X = centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))
    return X, centers


def _pieces(n: int, n_pieces: int, seed: int) -> list[np.ndarray]:
    """Row indices split into uneven pieces, as partitions of a frame would be."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, n), n_pieces - 1, replace=False))
    return np.split(rng.permutation(n), cuts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psi_from_summed_bin_counts_equals_psi_on_the_rows(seed: int) -> None:
    X, _ = _window(seed)
    ref, cur = X[:300], X[300:] + np.array([0.5, 0.0, -1.0])
    bins = drift.fit_reference_bins(ref, n_bins=8)
    pieces = _pieces(cur.shape[0], 5, seed)
    per_piece = [drift.bin_counts(bins.edges, cur[p]) for p in pieces]
    summed = [sum(c[j] for c in per_piece) for j in range(cur.shape[1])]
    limits = {"warning": 0.1, "critical": 0.25}
    got = drift.psi_from_counts(bins, summed, thresholds=limits)
    want = drift.psi(bins, cur, thresholds=limits)
    np.testing.assert_array_equal(got.per_feature, want.per_feature)
    assert got.max == want.max
    assert got.n_features_above == want.n_features_above


def test_bin_counts_count_every_row_once_per_feature() -> None:
    X, _ = _window(3)
    bins = drift.fit_reference_bins(X, n_bins=6)
    counts = drift.bin_counts(bins.edges, X[:123])
    assert [int(c.sum()) for c in counts] == [123, 123, 123]
    assert [c.shape[0] for c in counts] == [e.shape[0] + 1 for e in bins.edges]


def test_psi_from_counts_rejects_counts_of_different_rows() -> None:
    X, _ = _window(4)
    bins = drift.fit_reference_bins(X, n_bins=4)
    counts = drift.bin_counts(bins.edges, X)
    counts[1] = counts[1].copy()
    counts[1][0] += 1
    with pytest.raises(InvalidInputError, match="same rows"):
        drift.psi_from_counts(bins, counts)
    with pytest.raises(InvalidInputError, match="one per feature"):
        drift.psi_from_counts(bins, counts[:2])
    with pytest.raises(InvalidInputError, match="one per feature"):
        drift.psi_from_counts(bins, [c.astype(np.float64) for c in counts])
    # Negative counts with the same totals gave a PSI (6.9 for the tester's), no error.
    moved = [c.copy() for c in drift.bin_counts(bins.edges, X)]
    for c in moved:
        c[0], c[1] = c[0] + c[1] + 5, -5
    with pytest.raises(InvalidInputError, match="none negative"):
        drift.psi_from_counts(bins, moved)


def test_label_drift_from_counts_equals_label_drift() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 5, 400)
    labels[labels == 3] = 2  # an empty cluster floors at epsilon in both forms
    shares = np.array([0.1, 0.2, 0.3, 0.2, 0.2])
    got = drift.label_drift_from_counts(shares, np.bincount(labels, minlength=5))
    want = drift.label_drift(shares, labels, 5)
    assert got.psi == want.psi
    np.testing.assert_array_equal(got.current_shares, want.current_shares)
    with pytest.raises(InvalidInputError, match="at least one point"):
        drift.label_drift_from_counts(shares, np.zeros(5, dtype=np.int64))


@pytest.mark.parametrize("seed", [0, 1])
def test_label_agreement_from_table_equals_label_agreement(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 4, 500)
    cur = np.where(rng.random(500) < 0.8, (ref + 1) % 4, rng.integers(0, 4, 500))
    pairs = np.array([[0, 1], [1, 2], [2, 3], [3, 0]])
    table = np.zeros((4, 4), dtype=np.int64)
    np.add.at(table, (ref, cur), 1)
    assert drift.label_agreement_from_table(table, pairs) == drift.label_agreement(ref, cur, pairs)
    # Fewer pairs than clusters: the unmatched clusters' points count as disagreeing.
    assert drift.label_agreement_from_table(table, pairs[:2]) == drift.label_agreement(
        ref, cur, pairs[:2]
    )


def test_label_agreement_from_table_rejects_pairs_outside_the_table() -> None:
    table = np.ones((2, 3), dtype=np.int64)
    with pytest.raises(InvalidInputError, match="must index"):
        drift.label_agreement_from_table(table, np.array([[2, 0]]))
    with pytest.raises(InvalidInputError, match="2-D table"):
        drift.label_agreement_from_table(np.zeros((2, 2), dtype=np.int64), np.array([[0, 0]]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_outlier_rate_from_summed_counts_equals_outlier_rate(seed: int) -> None:
    X, C = _window(seed)
    labels, sq, _ = assign_two_nearest(X, C)
    fitted = outliers.fit_outlier_thresholds(sq[:300], labels[:300], C.shape[0], quantile=0.9)
    pieces = _pieces(X.shape[0], 4, seed)
    out = sum(outliers.outlier_counts(fitted, sq[p], labels[p]) for p in pieces)
    counts = np.bincount(labels, minlength=C.shape[0])
    got = outliers.outlier_rate_from_counts(out, counts)
    want = outliers.outlier_rate(fitted, sq, labels)
    assert got.ratio == want.ratio and got.n_outliers == want.n_outliers
    np.testing.assert_array_equal(got.per_cluster, want.per_cluster)
    assert want.n_outliers > 0  # the comparison is not between two zeros


def test_outlier_rate_from_counts_rejects_more_outliers_than_points() -> None:
    with pytest.raises(InvalidInputError, match="at most as many"):
        outliers.outlier_rate_from_counts(np.array([3, 0]), np.array([2, 5]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quality_indices_from_sums_equal_the_row_forms(seed: int) -> None:
    X, C = _window(seed)
    k = C.shape[0]
    labels, sq, sq2 = assign_two_nearest(X, C)
    counts = np.bincount(labels, minlength=k)
    sums = np.zeros_like(C)
    np.add.at(sums, labels, X)
    dist = np.bincount(labels, weights=np.sqrt(sq), minlength=k)
    s = silhouette_from_ab(np.sqrt(sq), np.sqrt(sq2))
    sil = np.bincount(labels, weights=s, minlength=k)

    db = quality.davies_bouldin_from_sums(counts, dist, C)
    assert db.value == pytest.approx(
        quality.davies_bouldin(X, labels, C, sq_distances=sq).value, rel=1e-12
    )
    ch = quality.calinski_harabasz_from_sums(counts, sums, float(sq.sum()), C)
    assert ch.value == pytest.approx(
        quality.calinski_harabasz(X, labels, centers=C, sq_distances=sq).value, rel=1e-12
    )
    simp = quality.simplified_from_sums(counts, sil)
    want = quality.silhouette_simplified(X, labels, C, sq_distances=sq, sq_second=sq2)
    # Summation order differs (per cluster, then clusters): equal to rounding.
    assert simp.score == pytest.approx(want.score, rel=1e-12)
    np.testing.assert_allclose(simp.per_cluster, want.per_cluster, rtol=1e-12)
    assert simp.n_points == want.n_points
    sizes = quality.sizes_from_counts(counts)
    row = quality.cluster_sizes(labels, k)
    np.testing.assert_array_equal(sizes.shares, row.shares)
    assert (sizes.cv, sizes.n_empty) == (row.cv, row.n_empty)


def test_indices_from_sums_are_undefined_with_one_populated_cluster() -> None:
    C = np.array([[0.0, 0.0], [5.0, 5.0]])
    counts = np.array([7, 0])
    with pytest.warns(DegenerateDataWarning, match="two populated clusters"):
        db = quality.davies_bouldin_from_sums(counts, np.array([3.0, 0.0]), C)
    with pytest.warns(DegenerateDataWarning, match="two populated clusters"):
        ch = quality.calinski_harabasz_from_sums(counts, np.array([[1.0, 1.0], [0.0, 0.0]]), 2.0, C)
    assert (db.defined, ch.defined) == (False, False)


def test_simplified_from_sums_with_one_centre_warns_and_is_undefined() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sil = quality.simplified_from_sums(np.array([4]), np.array([0.0]))
    assert not sil.defined and sil.score == 0.0
    assert any(issubclass(w.category, DegenerateDataWarning) for w in caught)


@pytest.mark.parametrize(
    ("fn", "args", "match"),
    [
        (quality.sizes_from_counts, (np.array([0, 0]),), "at least one point"),
        (quality.sizes_from_counts, (np.array([1.5, 2.0]),), "non-negative integers"),
        (quality.simplified_from_sums, (np.array([1, 2]), np.array([0.1])), "finite sums"),
    ],
)
def test_from_sums_reject_bad_counts(fn: object, args: tuple[object, ...], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        fn(*args)  # type: ignore[operator]
