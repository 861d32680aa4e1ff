"""k-means engine: hand-worked toys, invariants, scikit-learn as the reference, errors."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import load_digits, load_iris, make_blobs
from sklearn.metrics import adjusted_rand_score

from monitor.core.kmeans import (
    KMeans,
    MiniBatchKMeans,
    assign_labels,
    assign_two_nearest,
    fit_kmeans,
    kmeans_plusplus,
)
from monitor.errors import DegenerateDataWarning, InvalidInputError, InvalidValuesError


def _blobs(n: int = 1500, k: int = 5, d: int = 6, seed: int = 0, std: float = 1.0):
    X, y = make_blobs(n_samples=n, centers=k, n_features=d, cluster_std=std, random_state=seed)
    return X, y


# --------------------------------------------------------------------------- toys


def test_lloyd_toy_1d_hand_worked() -> None:
    # Init at 0 and 10: E-step gives {0, 1} and {10, 11}; means 0.5 and 10.5; the next
    # E-step gives the same labels (strict convergence) after 2 iterations.
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    fit = fit_kmeans(X, 2, init=np.array([[0.0], [10.0]]))
    np.testing.assert_array_equal(fit.centers, [[0.5], [10.5]])
    np.testing.assert_array_equal(fit.labels, [0, 0, 1, 1])
    assert fit.inertia == 1.0  # 4 * 0.5^2
    assert fit.n_iter == 2
    assert fit.converged
    assert fit.n_relocated == 0
    assert fit.n_distinct_points is None
    assert fit.labels.dtype == np.int64


def test_weighted_single_cluster_hand_worked() -> None:
    # Weighted mean of 0 (weight 3) and 4 (weight 1) is 1; inertia 3 * 1 + 1 * 9.
    X = np.array([[0.0], [4.0]])
    fit = fit_kmeans(X, 1, sample_weight=[3.0, 1.0], random_state=0)
    np.testing.assert_allclose(fit.centers, [[1.0]])
    assert fit.inertia == pytest.approx(12.0)


def test_assign_labels_hand_worked_and_ties_to_lowest_index() -> None:
    X = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    labels, sq = assign_labels(X, [[0.0, 0.0], [3.0, 4.0]])
    np.testing.assert_array_equal(labels, [0, 1, 0])
    np.testing.assert_allclose(sq, [0.0, 0.0, 1.0], atol=1e-12)
    # (1, 0) is at distance 1 from both centres: the lower index wins.
    labels, sq = assign_labels([[1.0, 0.0]], [[0.0, 0.0], [2.0, 0.0]])
    assert labels.tolist() == [0]
    assert sq.tolist() == [1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wm", [64.0, 0.0005])
def test_assign_labels_exact_ties_go_to_the_lowest_index(dtype: type, wm: float) -> None:
    # Small integers: every distance is exact in float32, so ties are real and many
    # (including duplicated centres); the answer is numpy's argmin of exact distances.
    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, size=(500, 2)).astype(dtype)
    C = np.vstack([rng.integers(0, 4, size=(6, 2)), [[1, 1], [1, 1]]]).astype(dtype)
    exact = ((X[:, None, :].astype(np.int64) - C[None].astype(np.int64)) ** 2).sum(axis=2)
    labels, sq = assign_labels(X, C, working_memory_mib=wm)
    np.testing.assert_array_equal(labels, exact.argmin(axis=1))
    np.testing.assert_array_equal(sq, exact.min(axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assign_labels_clips_cancellation_to_zero(dtype: type) -> None:
    # ||x||^2 - 2 x.c + ||c||^2 with x == c far from the origin cancels catastrophically;
    # the result must be clipped at 0, never negative.
    rng = np.random.default_rng(0)
    X = (1e4 + rng.random((200, 3))).astype(dtype)
    _, sq = assign_labels(X, X[:50])
    assert sq.dtype == dtype
    assert (sq >= 0).all()
    np.testing.assert_array_equal(sq[:50] < 1e-2, True)


def test_relocation_hand_worked() -> None:
    # The centre at 100 gets no row; it moves onto 10, the row farthest from its centre
    # (1, at squared distance 81). Centres 0, 1.5, 10 are then stable.
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    fit = fit_kmeans(X, 3, init=np.array([[0.0], [1.0], [100.0]]))
    np.testing.assert_allclose(fit.centers, [[0.0], [1.5], [10.0]])
    np.testing.assert_array_equal(fit.labels, [0, 1, 1, 2])
    assert fit.inertia == pytest.approx(0.5)
    assert fit.n_relocated == 1
    sk = SkKMeans(3, init=np.array([[0.0], [1.0], [100.0]]), n_init=1).fit(X)
    np.testing.assert_allclose(fit.centers, sk.cluster_centers_)


def test_relocation_on_blobs_never_nan() -> None:
    X, _ = _blobs(n=300, k=3, d=2)
    init = np.vstack([X[:3], [[1e3, 1e3], [-1e3, 1e3]]])
    fit = fit_kmeans(X, 5, init=init)
    assert fit.n_relocated >= 2
    assert np.isfinite(fit.centers).all()
    assert np.bincount(fit.labels, minlength=5).min() > 0


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_degenerate_fewer_distinct_points_than_clusters(metric: str) -> None:
    X = np.array([[1.0, 1.0]] * 3 + [[2.0, 1.0]] * 3)
    with pytest.warns(DegenerateDataWarning, match="2 distinct row"):
        fit = fit_kmeans(X, 4, random_state=0, metric=metric, n_init=3)
    assert fit.n_distinct_points == 2
    assert np.isfinite(fit.centers).all()
    assert fit.inertia == pytest.approx(0.0, abs=1e-12)
    assert len(np.unique(fit.labels)) == 2
    with pytest.warns(DegenerateDataWarning):
        centers, idx = kmeans_plusplus(X, 4, random_state=0)
    np.testing.assert_array_equal(centers, X[idx])


def test_warm_start_on_degenerate_data_still_says_so() -> None:
    # A warm start skips the value-order pass unless its fit leaves a cluster empty.
    X = np.array([[1.0, 1.0]] * 3 + [[2.0, 1.0]] * 3)
    init = np.array([[1.0, 1.0], [2.0, 1.0], [1.5, 1.0], [0.0, 0.0]])
    with pytest.warns(DegenerateDataWarning, match="2 distinct row"):
        fit = fit_kmeans(X, 4, init=init)
    assert fit.n_distinct_points == 2 and np.isfinite(fit.centers).all()
    # Zero-weight rows hold no weight: they cannot prove a third distinct row.
    X3 = np.vstack([X, [[9.0, 9.0]]])
    w = np.array([1.0] * 6 + [0.0])
    with pytest.warns(DegenerateDataWarning, match="2 distinct row"):
        fit = fit_kmeans(
            X3, 3, init=np.array([[1.0, 1.0], [2.0, 1.0], [9.0, 9.0]]), sample_weight=w
        )
    assert fit.n_distinct_points == 2
    # An ordinary warm start has every cluster populated and reports nothing.
    ok = fit_kmeans(X, 2, init=np.array([[1.0, 1.0], [2.0, 1.0]]))
    assert ok.n_distinct_points is None


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_zero_weight_rows_do_not_count_as_distinct(init: str) -> None:
    X = np.array([[0.0], [0.0], [5.0], [9.0], [7.0]])
    w = [1.0, 1.0, 1.0, 0.0, 0.0]
    with pytest.warns(DegenerateDataWarning, match="2 distinct row"):
        fit = fit_kmeans(X, 3, sample_weight=w, random_state=0, init=init)
    assert fit.n_distinct_points == 2
    # Zero-weight rows pull no centre: the centres sit on 0 and 5 only.
    assert set(fit.centers.ravel().tolist()) <= {0.0, 5.0}
    assert fit.inertia == 0.0


# --------------------------------------------------------------------------- k-means++


@pytest.mark.parametrize("seed", range(8))
def test_kmeans_plusplus_one_centre_per_far_blob(seed: int) -> None:
    # Rows of a blob that already has a centre have D(x)^2 ~ 1 against ~1e4 elsewhere,
    # so greedy k-means++ puts exactly one centre in each well-separated blob.
    X, y = _blobs(n=400, k=4, d=3, seed=3, std=0.5)
    centers, idx = kmeans_plusplus(X, 4, random_state=seed)
    np.testing.assert_array_equal(centers, X[idx])
    assert sorted(y[idx].tolist()) == [0, 1, 2, 3]


def test_kmeans_plusplus_never_picks_zero_weight_rows() -> None:
    X, _ = _blobs(n=200, k=3, d=2)
    w = np.ones(200)
    w[::2] = 0.0
    for seed in range(5):
        _, idx = kmeans_plusplus(X, 6, sample_weight=w, random_state=seed)
        assert (w[idx] > 0).all()


def test_kmeans_plusplus_invariant_to_row_order_and_repetition() -> None:
    X, _ = _blobs(n=200, k=4, d=3)
    rng = np.random.default_rng(1)
    perm = rng.permutation(200)
    c1, _ = kmeans_plusplus(X, 5, random_state=7)
    c2, _ = kmeans_plusplus(X[perm], 5, random_state=7, n_threads=2)
    np.testing.assert_array_equal(c1, c2)
    reps = rng.integers(1, 4, size=200)
    c3, _ = kmeans_plusplus(X, 5, sample_weight=reps.astype(float), random_state=7)
    c4, _ = kmeans_plusplus(np.repeat(X, reps, axis=0), 5, random_state=7)
    np.testing.assert_array_equal(c3, c4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kmeans_plusplus_same_centres_whatever_the_budget(dtype: type) -> None:
    # A large budget keeps every candidate's D^2; a tiny one recomputes the chosen
    # one chunk by chunk. Both must pick exactly the same rows.
    X = _blobs(n=400, k=6, d=4, seed=2, std=2.0)[0].astype(dtype)
    a = fit_kmeans(X, 6, random_state=3, max_iter=1, working_memory_mib=64.0)
    b = fit_kmeans(X, 6, random_state=3, max_iter=1, working_memory_mib=0.001)
    np.testing.assert_array_equal(a.labels, b.labels)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(a.centers, b.centers, rtol=rtol, atol=rtol)


# --------------------------------------------------------------------------- vs sklearn


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_same_init_matches_sklearn_lloyd(dtype: type, weighted: bool) -> None:
    X, _ = _blobs(n=2000, k=6, d=8, seed=5, std=2.0)
    X = X.astype(dtype)
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=X.shape[0]) if weighted else None
    init = X[[0, 1, 2, 3, 4, 5]].copy()
    # tol=0: both stop on strict convergence (with weights sklearn's tol ignores them).
    ours = fit_kmeans(X, 6, init=init, tol=0.0, sample_weight=w)
    sk = SkKMeans(6, init=init, n_init=1, tol=0.0, algorithm="lloyd").fit(X, sample_weight=w)
    # Same arithmetic, different summation order (BLAS blocking, chunking, sklearn
    # centring the data first): float64 agrees to ~1e-12 relative, float32 to ~1e-5.
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    assert ours.centers.dtype == dtype
    np.testing.assert_array_equal(ours.labels, sk.labels_)
    np.testing.assert_allclose(ours.centers, sk.cluster_centers_, rtol=rtol, atol=rtol)
    assert ours.inertia == pytest.approx(sk.inertia_, rel=rtol)
    assert ours.n_iter == sk.n_iter_


def test_same_init_and_tol_stops_like_sklearn() -> None:
    X, _ = _blobs(n=3000, k=8, d=4, seed=2, std=3.0)
    init = X[:8].copy()
    ours = fit_kmeans(X, 8, init=init, tol=1e-2)
    sk = SkKMeans(8, init=init, n_init=1, tol=1e-2, algorithm="lloyd").fit(X)
    assert ours.n_iter == sk.n_iter_ < 300
    np.testing.assert_allclose(ours.centers, sk.cluster_centers_, rtol=1e-10, atol=1e-10)


def _iris():
    return load_iris().data, 3


def _digits():
    return load_digits().data, 10


def _blobs_case():
    return _blobs(n=3000, k=8, d=10, seed=11, std=2.5)[0], 8


@pytest.mark.parametrize("case", [_blobs_case, _iris, _digits], ids=["blobs", "iris", "digits"])
def test_kmeanspp_n_init_no_worse_than_sklearn(case) -> None:
    X, k = case()
    # Best of n_init restarts over a few seeds; the seeds draw different restarts, so
    # allow 0.5 %: digits' local optima sit ~1-2 % apart, blobs and iris reach the same.
    ours = min(fit_kmeans(X, k, n_init=4, random_state=s).inertia for s in range(3))
    sk = min(
        SkKMeans(k, n_init=4, random_state=s, algorithm="lloyd").fit(X).inertia_ for s in range(3)
    )
    assert ours <= sk * 1.005


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunked_equals_unchunked(metric: str, dtype: type) -> None:
    X, _ = _blobs(n=600, k=4, d=5, seed=1)
    X = X.astype(dtype)
    big = fit_kmeans(X, 4, random_state=0, metric=metric, working_memory_mib=64.0)
    # ~10 rows per chunk: 60 chunks per pass.
    small = fit_kmeans(X, 4, random_state=0, metric=metric, working_memory_mib=0.0008)
    np.testing.assert_array_equal(big.labels, small.labels)
    # Only the grouping of the float64 sums differs.
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(big.centers, small.centers, rtol=rtol, atol=rtol)
    assert big.inertia == pytest.approx(small.inertia, rel=rtol)
    l1, s1 = assign_labels(X, big.centers, working_memory_mib=64.0)
    l2, s2 = assign_labels(X, big.centers, working_memory_mib=0.0008)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_allclose(s1, s2, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_threads_do_not_change_the_result(metric: str, dtype: type) -> None:
    # Chunks are computed on several threads but reduced in chunk order, and both GEMM
    # paths round alike: the fit must be bit for bit the same.
    X = _blobs(n=3000, k=6, d=5, seed=14, std=2.0)[0].astype(dtype)
    wm = 0.05  # ~100-row chunks: many chunks per thread
    one = fit_kmeans(X, 6, random_state=0, n_init=2, metric=metric, working_memory_mib=wm)
    two = fit_kmeans(
        X, 6, random_state=0, n_init=2, metric=metric, working_memory_mib=wm, n_threads=2
    )
    np.testing.assert_array_equal(one.labels, two.labels)
    np.testing.assert_array_equal(one.centers, two.centers)
    assert one.inertia == two.inertia
    l1, s1 = assign_labels(X, one.centers, working_memory_mib=wm)
    l3, s3 = assign_labels(X, one.centers, working_memory_mib=wm, n_threads=3)
    np.testing.assert_array_equal(l1, l3)
    np.testing.assert_array_equal(s1, s3)


@pytest.mark.parametrize("init", ["k-means++", "random"])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_same_seed_same_result(init: str, metric: str) -> None:
    X, _ = _blobs(n=500, k=5, d=4, seed=9)
    a = fit_kmeans(X, 5, init=init, n_init=3, random_state=42, metric=metric)
    b = fit_kmeans(X, 5, init=init, n_init=3, random_state=42, metric=metric)
    np.testing.assert_array_equal(a.centers, b.centers)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.inertia == b.inertia
    assert a.n_iter == b.n_iter


def test_permutation_invariance_of_the_fit() -> None:
    X, _ = _blobs(n=800, k=5, d=4, seed=4, std=2.0)
    perm = np.random.default_rng(3).permutation(800)
    a = fit_kmeans(X, 5, n_init=2, random_state=1)
    b = fit_kmeans(X[perm], 5, n_init=2, random_state=1)
    # Same centres in the same order; only the order of the float64 sums differs.
    np.testing.assert_allclose(a.centers, b.centers, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a.labels[perm], b.labels)


@pytest.mark.parametrize("init_sample", ["auto", 1000], ids=["whole", "sampled"])
def test_permutation_and_repetition_invariance_far_from_the_origin(init_sample: Any) -> None:
    # Around the mean, the rows' bytes follow the mean's last bits, which follow the
    # summation order: hashed after centring, the value order (and so the seeding) moved
    # with the row order (inertia 3160.9 vs 3184.6) and with repetition (4776.0 vs 4724.6).
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 3)) + 1.7e9
    perm = rng.permutation(3000)
    reps = rng.integers(1, 3, size=3000)
    a = fit_kmeans(X, 8, random_state=0, init_sample=init_sample)
    b = fit_kmeans(X[perm], 8, random_state=0, init_sample=init_sample)
    c = fit_kmeans(X, 8, sample_weight=reps.astype(float), random_state=0, init_sample=init_sample)
    d = fit_kmeans(np.repeat(X, reps, axis=0), 8, random_state=0, init_sample=init_sample)
    assert a.offset is not None
    # The same centres in the same order, up to the float sums' order: the offsets
    # differ in their last bit, and a centre at 1.7e9 is kept to ulp(1.7e9) = 2.4e-7,
    # so a few ulps (1e-6) apart; the inertia (~3000) to 1e-9 of itself.
    np.testing.assert_allclose(a.centers, b.centers, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(a.labels[perm], b.labels)
    assert a.inertia == pytest.approx(b.inertia, rel=1e-9)
    np.testing.assert_allclose(c.centers, d.centers, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.repeat(c.labels, reps), d.labels)
    assert c.inertia == pytest.approx(d.inertia, rel=1e-9)


def test_integer_weights_equal_repetition() -> None:
    X, _ = _blobs(n=300, k=4, d=3, seed=8, std=1.5)
    reps = np.random.default_rng(2).integers(0, 4, size=300)
    a = fit_kmeans(X, 4, sample_weight=reps.astype(float), random_state=5)
    b = fit_kmeans(np.repeat(X, reps, axis=0), 4, random_state=5)
    np.testing.assert_allclose(a.centers, b.centers, rtol=1e-10, atol=1e-10)
    assert a.inertia == pytest.approx(b.inertia, rel=1e-10)


def test_float32_is_kept() -> None:
    X = _blobs(n=300, k=3, d=3)[0].astype(np.float32)
    fit = fit_kmeans(X, 3, random_state=0)
    assert fit.centers.dtype == np.float32
    labels, sq = assign_labels(X, fit.centers)
    assert sq.dtype == np.float32
    np.testing.assert_array_equal(labels, fit.labels)


def test_final_labels_match_final_centres() -> None:
    X, _ = _blobs(n=1000, k=6, d=5, seed=6, std=4.0)
    fit = fit_kmeans(X, 6, random_state=0, max_iter=3)  # stopped early on purpose
    assert not fit.converged
    labels, sq = assign_labels(X, fit.centers)
    np.testing.assert_array_equal(labels, fit.labels)
    assert fit.inertia == pytest.approx(float(sq.sum()), rel=1e-12)


def test_warm_start_from_converged_centres_stops_at_once() -> None:
    X, _ = _blobs(n=500, k=4, d=3, seed=7)
    first = fit_kmeans(X, 4, random_state=0)
    with pytest.warns(UserWarning, match="one run instead of n_init=5"):
        again = fit_kmeans(X, 4, init=first.centers, n_init=5)
    assert again.n_iter == 1
    np.testing.assert_allclose(again.centers, first.centers, rtol=1e-12)


# --------------------------------------------------------------------------- cosine


def _spherical_reference(X: np.ndarray, init: np.ndarray, n_iter: int) -> np.ndarray:
    """Dense textbook spherical k-means: normalise, assign by max cosine, renormalise."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    C = init / np.linalg.norm(init, axis=1, keepdims=True)
    for _ in range(n_iter):
        labels = np.argmax(Xn @ C.T, axis=1)
        for j in range(C.shape[0]):
            s = Xn[labels == j].sum(axis=0)
            C[j] = s / np.linalg.norm(s)
    return C


def test_cosine_matches_textbook_spherical_kmeans() -> None:
    X, _ = _blobs(n=600, k=4, d=5, seed=12)
    X = X + 0.1  # keep rows away from the origin
    init = X[:4].copy()
    fit = fit_kmeans(X, 4, init=init, metric="cosine", tol=0.0)
    ref = _spherical_reference(X, init, fit.n_iter)
    np.testing.assert_allclose(fit.centers, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(fit.centers, axis=1), 1.0, rtol=1e-12)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    d2 = ((Xn - fit.centers[fit.labels]) ** 2).sum(axis=1)
    assert fit.inertia == pytest.approx(d2.sum(), rel=1e-10)


def test_cosine_ignores_row_scale() -> None:
    X, _ = _blobs(n=400, k=3, d=4, seed=13)
    scale = np.random.default_rng(0).uniform(0.1, 10.0, size=(400, 1))
    a = fit_kmeans(X, 3, metric="cosine", random_state=0)
    b = fit_kmeans(X * scale, 3, metric="cosine", random_state=0)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.centers, b.centers, rtol=1e-10, atol=1e-10)


def test_cosine_zero_row_is_an_error() -> None:
    X = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    with pytest.raises(InvalidInputError, match=r"1 row.*zero norm.*row 1.*cosine"):
        fit_kmeans(X, 2, metric="cosine")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"n_clusters": 0},
            r"The 'n_clusters' parameter of fit_kmeans must be an int in \[1, inf\)\. "
            r"Got 0 instead\.",
        ),
        ({"n_clusters": 2.5}, r"'n_clusters' parameter of fit_kmeans must be an int.*2\.5"),
        ({"n_clusters": 11}, r"X has 10 sample\(s\), fewer than n_clusters=11"),
        ({"max_iter": 0}, r"'max_iter' parameter of fit_kmeans must be an int in \[1, inf\)"),
        ({"tol": -1.0}, r"'tol' parameter of fit_kmeans must be a float in \[0\.0, inf\)"),
        ({"n_init": 0}, r"'n_init' parameter of fit_kmeans must be an int in \[1, inf\)"),
        ({"n_init": "many"}, r"'n_init' parameter of fit_kmeans must be one of \{'auto'\}"),
        ({"metric": "manhattan"}, r"'metric' parameter.*one of \{'euclidean', 'cosine'\}"),
        ({"init": "kmeans"}, r"'init' parameter.*one of \{'k-means\+\+', 'random'\}"),
        (
            {"init": np.zeros((3, 2))},
            r"'init' parameter of fit_kmeans must have 2 row\(s\), one per cluster; "
            r"got an array of shape \(3, 2\)",
        ),
        ({"init": np.zeros((2, 3))}, r"'init' parameter of fit_kmeans must have 2 feature\(s\)"),
        # Centres, not samples: the shape named is theirs, with no reshape advice for data.
        (
            {"init": np.zeros(2)},
            r"init must be a 2-D array of shape \(n_clusters, n_features\); .*\(2,\)\.$",
        ),
        ({"working_memory_mib": 0.0}, r"'working_memory_mib'.*float in \(0\.0, inf\)"),
        ({"sample_weight": np.zeros(10)}, r"sample_weight has only zero weights"),
        ({"sample_weight": -np.ones(10)}, r"sample_weight must be non-negative"),
        ({"sample_weight": np.ones(9)}, r"sample_weight must have shape \(10,\)"),
        ({"random_state": "x"}, r"'random_state' parameter must be None, an int"),
        ({"random_state": -1}, r"'random_state' parameter must be a non-negative int; got -1"),
        ({"init": lambda X, k, rs: X[:k]}, r"'init' parameter.*a callable is not taken"),
        # A scalar weight is every row's: it gets the checks an array gets.
        ({"sample_weight": -1.0}, r"sample_weight must be non-negative"),
        ({"sample_weight": np.nan}, r"sample_weight contains NaN or infinity"),
        ({"sample_weight": np.inf}, r"sample_weight contains NaN or infinity"),
        ({"sample_weight": "heavy"}, r"sample_weight must be numeric; got dtype <U5"),
        ({"sample_weight": np.full(10, 1e308)}, r"sample_weight is too large: its sum overflows"),
        ({"n_threads": 0}, r"'n_threads' parameter of fit_kmeans must be an int in \[1, inf\)"),
    ],
)
def test_fit_kmeans_parameter_errors(kwargs: dict, match: str) -> None:
    X = np.arange(20, dtype=float).reshape(10, 2)
    args = {"n_clusters": 2} | kwargs
    with pytest.raises(InvalidInputError, match=match):
        fit_kmeans(X, **args)


def test_weights_that_underflow_in_float32_are_an_error_not_a_traceback() -> None:
    # Positivity was checked before the cast to X's dtype: 1e-50 became 0 in float32, and
    # the seeding failed on an empty row set (IndexError in _sample_cdf).
    X = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    w = np.full(20, 1e-50)
    match = r"sample_weight underflows: its positive weights \(at most 1e-50\) are all 0 as float32"
    with pytest.raises(InvalidInputError, match=match):
        fit_kmeans(X, 2, sample_weight=w, random_state=0)
    with pytest.raises(InvalidInputError, match=match):
        kmeans_plusplus(X, 2, sample_weight=w, random_state=0)
    for est in (KMeans(2, random_state=0), MiniBatchKMeans(2, random_state=0)):
        with pytest.raises(InvalidInputError, match=match):
            est.fit(X, sample_weight=w)
    with pytest.raises(InvalidInputError, match=match):
        MiniBatchKMeans(2, random_state=0).partial_fit(X, sample_weight=w)
    # In float64 the same weights are fine, and so are float32 weights that survive.
    fit_kmeans(X.astype(np.float64), 2, sample_weight=w, random_state=0)
    fit_kmeans(X, 2, sample_weight=np.full(20, 1e-40), random_state=0)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, 2.0]]), r"NaN or infinity.*row 1, column 0"),
        (np.array([[0.0, 1.0], [1.0, np.inf], [2.0, 2.0]]), r"NaN or infinity.*row 1, column 1"),
        (np.arange(5.0), r"must be a 2-D array.*shape \(5,\)"),
        (np.zeros((0, 3)), r"X has 0 sample\(s\) of shape \(0, 3\); at least 1 required"),
        (np.zeros((4, 0)), r"X has 0 feature\(s\)"),
        (np.array([["a", "b"]]), r"numeric"),
    ],
    ids=["nan", "inf", "1d", "empty-window", "no-features", "strings"],
)
def test_bad_X_errors(X: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        fit_kmeans(X, 1)


def test_assign_labels_mismatched_features() -> None:
    message = r"'centers' parameter of assign_labels must have 2 feature\(s\) to match X"
    with pytest.raises(InvalidInputError, match=message):
        assign_labels(np.zeros((4, 2)), np.zeros((2, 3)))


def test_kmeans_plusplus_errors() -> None:
    X = np.zeros((5, 2))
    with pytest.raises(InvalidInputError, match=r"'n_local_trials' parameter of kmeans_plusplus"):
        kmeans_plusplus(X, 2, n_local_trials=0)
    with pytest.raises(InvalidInputError, match="fewer than n_clusters=6"):
        kmeans_plusplus(X, 6)


def test_no_warnings_on_ordinary_data() -> None:
    X, _ = _blobs(n=500, k=4, d=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_kmeans(X, 4, random_state=0, n_init=2)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_fewer_positive_weight_rows_than_clusters(init: str) -> None:
    X = np.array([[0.0], [5.0], [9.0]])
    with pytest.warns(DegenerateDataWarning, match="2 distinct row"):
        fit = fit_kmeans(X, 3, sample_weight=[1.0, 1.0, 0.0], init=init, random_state=0)
    assert fit.centers.shape == (3, 1)
    assert set(fit.centers.ravel().tolist()) == {0.0, 5.0}


@pytest.mark.parametrize(
    ("offset", "dtype"), [(1.7e9, np.float64), (1e8, np.float64), (1e4, np.float32)]
)
@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_a_far_offset_fits_as_the_data_around_the_origin(
    offset: float, dtype: type, kernel: str
) -> None:
    # Unix times in float64, values near 1e4 in float32: ||x||^2 - 2 x.c + ||c||^2 lost
    # the spread to rounding (inertia 100x scikit-learn's, most labels not the nearest).
    # Around their mean the data fits as it does at the origin; what is left is the
    # centres' own rounding in X's dtype (float32 keeps 1e4 to 1e-3).
    X0 = make_blobs(3000, 3, centers=4, cluster_std=0.3, random_state=0)[0]
    near = fit_kmeans(X0.astype(dtype), 4, random_state=0, kernel=kernel)
    far = fit_kmeans((X0 + offset).astype(dtype), 4, random_state=0, kernel=kernel)
    assert far.offset is not None and near.offset is None
    # The seeding draws rows in an order of their bytes, which the offset changes: the
    # same partition comes out under other cluster numbers.
    assert adjusted_rand_score(far.labels, near.labels) == 1.0
    assert far.inertia == pytest.approx(near.inertia, rel=1e-3 if dtype == np.float32 else 1e-6)
    atol = 2e-3 if dtype == np.float32 else 1e-6
    shifted = far.centers.astype(float) - offset
    np.testing.assert_allclose(_by_rows(shifted), _by_rows(near.centers), atol=atol)
    sk = SkKMeans(4, random_state=0, n_init=1).fit((X0 + offset).astype(dtype))
    assert far.inertia <= sk.inertia_ * 1.001


def _by_rows(C: np.ndarray) -> np.ndarray:
    return C[np.lexsort(C.T[::-1])]


def test_minus_zero_is_the_same_row_as_zero() -> None:
    # Their bytes differ: hashed as bytes, two distinct "rows" hid a degenerate window.
    X = np.array([[0.0], [-0.0], [0.0], [-0.0]])
    with pytest.warns(DegenerateDataWarning, match="1 distinct row"):
        fit = fit_kmeans(X, 2, random_state=0)
    assert fit.n_distinct_points == 1


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
def test_float32_values_whose_squares_overflow_are_fitted_as_float64_would_be(cls: Any) -> None:
    # Squared distances of float32 values near 1e20 are beyond float32 (inf): KMeans put
    # every row in one cluster with an inertia of inf, and predict and score followed.
    X, _ = make_blobs(3000, n_features=4, centers=3, cluster_std=1.0, random_state=0)
    X32 = (X * 3e19).astype(np.float32)
    ref = SkKMeans(n_clusters=3, n_init=3, random_state=0).fit(X32.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor a RuntimeWarning for the overflow redone
        km = cls(n_clusters=3, n_init=3, random_state=0).fit(X32)
        labels, distances, score = km.predict(X32), km.transform(X32), km.score(X32)
    assert km.cluster_centers_.dtype == np.float32 and distances.dtype == np.float32
    assert adjusted_rand_score(ref.labels_, km.labels_) == 1.0
    assert adjusted_rand_score(ref.labels_, labels) == 1.0
    np.testing.assert_allclose(km.inertia_, ref.inertia_, rtol=1e-5)  # float32 centres
    np.testing.assert_allclose(-score, ref.inertia_, rtol=1e-5)
    expected = ref.transform(X32.astype(np.float64))  # its centres in another order
    np.testing.assert_allclose(np.sort(distances, axis=1), np.sort(expected, axis=1), rtol=1e-5)


OVERFLOW = "X: values overflow squared distances: .* rows, e.g. column . = .*, whose square"


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
def test_float64_values_whose_squares_overflow_are_refused_as_choose_k_refuses_them(
    cls: Any,
) -> None:
    # Beyond about 1e154 the float64 squares overflow too: the fit gave an inertia of
    # inf, every row in one cluster and a NaN score, with numpy RuntimeWarnings only.
    X, _ = make_blobs(60, n_features=2, centers=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor numpy's RuntimeWarnings before the error
        with pytest.raises(InvalidValuesError, match=OVERFLOW.replace("column .", "b")):
            cls(n_clusters=2, random_state=0).fit(pd.DataFrame(X * 1e160, columns=["a", "b"]))
        km = cls(n_clusters=2, random_state=0).fit(X)
        for method in (km.predict, km.transform, km.score):
            with pytest.raises(InvalidValuesError, match=OVERFLOW):
                method(X * 1e160)
    # Far from 0 with a spread whose squares fit: fitted around the mean, as before.
    km = cls(n_clusters=2, random_state=0).fit(1e160 + X * 1e145)
    assert np.isfinite(km.inertia_) and np.isfinite(km.score(1e160 + X * 1e145))


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
@pytest.mark.parametrize(("offset", "dtype"), [(1.7e9, np.float64), (1e4, np.float32)])
def test_assignment_of_raw_rows_far_from_the_origin_keeps_their_distances(
    kernel: str, offset: float, dtype: Any
) -> None:
    # Called on raw rows (epoch seconds), the public assignments expanded |x|^2 - 2 x.c
    # + |c|^2 around 0 and lost the distances to rounding: labels and distances noise.
    # Reference: the differences x - c taken directly in float64, exact up to the
    # rounding of the rows themselves (at 1.7e9, 2.4e-7; at 1e4 in float32, 1e-3).
    if kernel == "compiled":
        pytest.importorskip("numba")
    X, _ = make_blobs(2000, n_features=3, centers=4, cluster_std=1.0, random_state=3)
    C = np.array([[-5.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, -5.0, 0.0]])
    Xf, Cf = (X + offset).astype(dtype), (C + offset).astype(dtype)
    diff = Xf.astype(np.float64)[:, None, :] - Cf.astype(np.float64)[None, :, :]
    sq = np.einsum("ijk,ijk->ij", diff, diff)
    order = np.argsort(sq, axis=1, kind="stable")
    rows = np.arange(len(X))
    labels, sq1 = assign_labels(Xf, Cf, kernel=kernel)
    labels2, sq1b, sq2 = assign_two_nearest(Xf, Cf, kernel=kernel)
    tol = 1e-9 if dtype == np.float64 else 1e-3  # the centred rows' rounding, relative
    sure = np.diff(np.sort(sq, axis=1)[:, :2], axis=1)[:, 0] > 10 * tol * sq.min(axis=1)
    assert (labels[sure] == order[sure, 0]).all() and (labels2 == labels).all()
    for got in (sq1, sq1b):
        np.testing.assert_allclose(got, sq[rows, order[:, 0]], rtol=tol, atol=tol)
    np.testing.assert_allclose(sq2, sq[rows, order[:, 1]], rtol=tol, atol=tol)


UNDERFLOW = (
    r"^X: values too close together for squared distances: column 2 spans .*, but the rows' "
    r"spread .* is below the smallest normal {} "
)


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
@pytest.mark.parametrize(
    ("scale", "dtype"), [(1e-200, np.float64), (1e-160, np.float64), (1e-25, np.float32)]
)
def test_values_whose_squares_underflow_are_refused_as_overflow_is(
    cls: Any, scale: float, dtype: Any
) -> None:
    # Below about 1e-154 (float32: 1e-19) the squared distances are below the smallest
    # normal float: every row went to one cluster with an inertia of 0, "converged", and
    # no word (at 1e-160 the inertia was subnormal, its digits lost). No rescaling gives
    # the answer back: the inertia and the score themselves are below the smallest float.
    centres = [[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 50.0]]  # column 2 the widest
    X, _ = make_blobs(600, centers=centres, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor a DegenerateDataWarning before the error
        with pytest.raises(InvalidValuesError, match=UNDERFLOW.format(np.dtype(dtype).name)):
            cls(n_clusters=3, random_state=0).fit((X * scale).astype(dtype))
    if cls is KMeans:
        with pytest.raises(InvalidValuesError, match=UNDERFLOW.format("float64")):
            fit_kmeans(X * 1e-200, 3, random_state=0)
    # Where the spread is a normal float, the fit is that of the data at unit scale
    # (a power of ten changes the last bits only): scikit-learn's labels, to the row.
    ref = SkKMeans(n_clusters=3, n_init=3, random_state=0).fit(X)
    near = 1e-150 if dtype == np.float64 else 1e-17
    km = cls(n_clusters=3, random_state=0).fit((X * near).astype(dtype))
    assert adjusted_rand_score(ref.labels_, km.labels_) == 1.0
    # Rows all equal have no distances to lose: the degenerate warning, as before.
    with pytest.warns(DegenerateDataWarning, match="1 distinct row"):
        fit_kmeans(np.full((10, 2), 1e-200), 2, random_state=0)


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
def test_an_inertia_whose_sum_overflows_is_refused_without_blaming_a_square(cls: Any) -> None:
    # Near 1e153 no square overflows, the inertia's sum does: fit blamed "column 1 =
    # -3.9e+153, whose square is beyond the largest float" (it is 1.5e307), and score
    # returned -inf with numpy's "overflow encountered in matmul".
    X = np.random.default_rng(0).normal(size=(2000, 3))
    assert np.isfinite(np.square(X * 1e153)).all()
    whole = r"^X: squared distances or their weighted sum overflow the largest float; "
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InvalidValuesError, match=whole):
            cls(n_clusters=3, random_state=0).fit(X * 1e153)
        km = cls(n_clusters=3, random_state=0).fit(X)
        with pytest.raises(InvalidValuesError, match=whole):
            km.score(X * 1e153)
        km.predict(X * 1e153), km.transform(X * 1e153)  # their values fit: no refusal
        # Where the sum fits, the score is the sum of the squared distances (to 1e-12:
        # two roundings of |x|^2 - 2 x.c + |c|^2, one of them through a square root).
        nearest = km.transform(X * 1e150).min(axis=1)
        assert km.score(X * 1e150) == pytest.approx(-(nearest**2).sum(), rel=1e-12)


def test_a_refused_minibatch_leaves_no_model_and_a_refused_chunk_the_model_before_it() -> None:
    X, _ = make_blobs(60, n_features=2, centers=2, random_state=0)
    km = MiniBatchKMeans(2, random_state=0)
    with pytest.raises(InvalidValuesError):
        km.fit(X * 1e160)
    assert not hasattr(km, "cluster_centers_") and not hasattr(km, "labels_")
    km.partial_fit(X[:30])
    state = km.cluster_centers_.copy(), km.counts_.copy(), km.n_steps_
    with pytest.raises(InvalidValuesError):
        km.partial_fit(X[30:] * 1e160)
    np.testing.assert_array_equal(km.cluster_centers_, state[0])
    np.testing.assert_array_equal(km.counts_, state[1])
    assert km.n_steps_ == state[2]


@pytest.mark.parametrize("overflowing", ["first", "later"])
def test_float32_chunks_whose_squares_overflow_are_partial_fitted_as_float64(
    overflowing: str,
) -> None:
    # A chunk is done again in float64 from the state before it; before, the float32
    # steps went on with infinite distances and ended 4x above float64's inertia.
    X, _ = make_blobs(2400, n_features=4, centers=3, cluster_std=1.0, random_state=1)
    X32 = (X * 3e19).astype(np.float32)
    if overflowing == "later":  # a first chunk in range, the others beyond it
        X32[:400] = X[:400].astype(np.float32)
    chunks = np.array_split(X32, 6)
    a = MiniBatchKMeans(3, batch_size=200, random_state=0)
    b = MiniBatchKMeans(3, batch_size=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor a RuntimeWarning for the overflow redone
        for i, chunk in enumerate(chunks):
            a.partial_fit(chunk)
            # The float32 first chunk that did not overflow stays float32 in both.
            b.partial_fit(chunk if i == 0 and overflowing == "later" else chunk.astype(np.float64))
    assert a.cluster_centers_.dtype == np.float32
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_.astype(np.float32))
    assert a.n_steps_ == b.n_steps_ and np.array_equal(a.counts_, b.counts_)
    ref = SkKMeans(n_clusters=3, n_init=3, random_state=0).fit(X32.astype(np.float64))
    if overflowing == "first":
        assert adjusted_rand_score(ref.labels_, a.predict(X32)) == 1.0
