"""Tests of monitor.core.quality: hand-worked toys, invariants, and scikit-learn as reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics

from monitor.core.quality import (
    calinski_harabasz,
    cluster_sizes,
    davies_bouldin,
    inertia,
    silhouette_sampled,
    silhouette_simplified,
)
from monitor.errors import DegenerateDataWarning, InvalidInputError

# Two pairs on a line: {0, 1} and {5, 6}.
LINE = np.array([[0.0], [1.0], [5.0], [6.0]])
LINE_LABELS = np.array([0, 0, 1, 1])
LINE_CENTERS = np.array([[0.5], [5.5]])


def blobs(n: int, d: int, k: int, seed: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs with overlapping clusters, every cluster populated by at least 2 points."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    labels = np.concatenate([np.repeat(np.arange(k), 2), rng.integers(0, k, n - 2 * k)])
    rng.shuffle(labels)
    X = centers[labels] + rng.normal(scale=spread, size=(n, d))
    return X, labels


# --------------------------------------------------------------------------- exact silhouette


def test_silhouette_toy_by_hand() -> None:
    # Point 0: a = 1, b = (5 + 6) / 2 = 5.5, s = 4.5 / 5.5 = 9/11; point 1: a = 1,
    # b = (4 + 5) / 2 = 4.5, s = 3.5 / 4.5 = 7/9; points 5 and 6 mirror them.
    res = silhouette_sampled(LINE, LINE_LABELS)
    expected = (9 / 11 + 7 / 9) / 2
    assert res.method == "exact"
    assert res.defined
    assert res.n_points == 4
    assert res.score == pytest.approx(expected, abs=1e-15)
    np.testing.assert_allclose(res.per_cluster, [expected, expected], atol=1e-15)


def test_silhouette_singleton_is_zero_by_hand() -> None:
    # {0, 1} and the singleton {10}: s(0) = (10 - 1) / 10, s(1) = (9 - 1) / 9, s(10) = 0.
    X = np.array([[0.0], [1.0], [10.0]])
    res = silhouette_sampled(X, np.array([0, 0, 1]))
    assert res.score == pytest.approx((0.9 + 8 / 9 + 0.0) / 3, abs=1e-15)
    np.testing.assert_allclose(res.per_cluster, [(0.9 + 8 / 9) / 2, 0.0], atol=1e-15)


@pytest.mark.parametrize(
    ("n", "d", "k", "seed"), [(60, 2, 2, 0), (500, 5, 7, 1), (1500, 16, 40, 2), (300, 3, 150, 3)]
)
def test_silhouette_matches_sklearn(n: int, d: int, k: int, seed: int) -> None:
    X, labels = blobs(n, d, k, seed)
    ours = silhouette_sampled(X, labels)
    # Both compute float64 distances by the same |x|^2 + |y|^2 - 2xy expansion; only the
    # summation order differs (~1e-16 relative per distance), so 1e-12 absolute on a
    # mean of values in [-1, 1] is ample and would still catch any formula slip.
    assert ours.score == pytest.approx(metrics.silhouette_score(X, labels), abs=1e-12)
    per_point = metrics.silhouette_samples(X, labels)
    expected_per_cluster = np.array([per_point[labels == c].mean() for c in range(k)])
    np.testing.assert_allclose(ours.per_cluster, expected_per_cluster, atol=1e-12)


def test_silhouette_float32_matches_sklearn() -> None:
    X, labels = blobs(400, 6, 5, seed=4)
    X32 = X.astype(np.float32)
    ours = silhouette_sampled(X32, labels)
    # We accumulate in float64; scikit-learn rounds each distance to float32
    # (relative error ~6e-8), which moves the mean by far less than 1e-5.
    assert ours.score == pytest.approx(metrics.silhouette_score(X32, labels), abs=1e-5)


@pytest.mark.parametrize(
    ("working_memory_mib", "symmetric"), [(0.001, False), (0.02, False), (0.2, True), (1e6, True)]
)
def test_silhouette_chunked_equals_unchunked(
    working_memory_mib: float, symmetric: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 700 points in 6 clusters: the (m, k) accumulator takes 33 kB. 0.001 MiB forces
    # single-row chunks without it, 0.02 MiB a few rows per chunk; 0.2 MiB takes the
    # upper-triangle path in blocks of ~15 rows, 1e6 MiB in a single block.
    from monitor.core import quality

    X, labels = blobs(700, 4, 6, seed=5)
    reference = metrics.silhouette_samples(X, labels)
    calls: list[int] = []
    original = quality._cluster_distance_sums_symmetric

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(quality, "_cluster_distance_sums_symmetric", spy)
    res = silhouette_sampled(X, labels, working_memory_mib=working_memory_mib)
    assert bool(calls) is symmetric
    # Same float64 expansion as scikit-learn, different summation order (see above).
    assert res.score == pytest.approx(reference.mean(), abs=1e-12)
    expected = np.array([reference[labels == c].mean() for c in range(6)])
    np.testing.assert_allclose(res.per_cluster, expected, atol=1e-12)


@pytest.mark.parametrize("working_memory_mib", [0.02, 0.5, 1e6])
def test_silhouette_is_the_same_on_any_number_of_threads(working_memory_mib: float) -> None:
    # 0.02 MiB takes the independent row chunks, 0.5 MiB the upper triangle in many
    # blocks dealt to the lanes, 1e6 MiB one block. Equal, not close: the lanes are
    # fixed, each is filled in block order, and they are added in lane order.
    X, labels = blobs(900, 5, 7, seed=12)
    runs = [
        silhouette_sampled(X, labels, working_memory_mib=working_memory_mib, n_threads=t)
        for t in (1, 2, 3)
    ]
    reference = metrics.silhouette_samples(X, labels)
    for res in runs:
        assert res.score == runs[0].score
        np.testing.assert_array_equal(res.per_cluster, runs[0].per_cluster)
    # Same float64 expansion as scikit-learn, different summation order (see above).
    assert runs[0].score == pytest.approx(reference.mean(), abs=1e-12)


def test_silhouette_rejects_bad_thread_count() -> None:
    with pytest.raises(InvalidInputError, match="n_threads"):
        silhouette_sampled(LINE, LINE_LABELS, n_threads=0)
    with pytest.raises(InvalidInputError, match=r"n_threads.*calinski_harabasz"):
        calinski_harabasz(LINE, LINE_LABELS, n_threads=0)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("working_memory_mib", [0.01, 64.0])
def test_cluster_sums_add_each_clusters_rows_in_row_order(
    working_memory_mib: float, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Equal, not close, to the plainest float64 sum in row order: neither path may
    # reorder a cluster's rows (within the compiled path's one chunk here) nor round
    # through float32. 0.01 MiB cuts the numpy path's window into many chunks; an empty
    # cluster (index 5) keeps zeros.
    from monitor.core import _kmeans_numba
    from monitor.core.quality import _cluster_sums

    if compiled and not _kmeans_numba.AVAILABLE:
        pytest.fail("numba (extra 'fast') is part of the test extras")
    monkeypatch.setattr(_kmeans_numba, "AVAILABLE", compiled)
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(5000, 7)) * 10 ** rng.uniform(-3, 3, size=(5000, 1))).astype(np.float32)
    labels = rng.choice([0, 1, 2, 3, 4, 6], size=5000)
    expected = np.zeros((7, 7))
    np.add.at(expected, labels, X.astype(np.float64))
    got = _cluster_sums(X, labels, 7, working_memory_mib)
    np.testing.assert_array_equal(got, expected)
    assert not got[5].any()


def test_compiled_cluster_sums_do_not_depend_on_the_thread_count() -> None:
    # Several chunks: partial sums added in chunk order, so one and two threads give the
    # same bits, and both agree with the row-order sum to float64 rounding.
    from monitor.core import _kmeans_numba

    rng = np.random.default_rng(4)
    n = 2 * _kmeans_numba.CHUNK_ROWS + 99
    X = rng.normal(loc=100.0, size=(n, 5)).astype(np.float32)
    labels = rng.integers(0, 9, size=n)
    expected = np.zeros((9, 5))
    np.add.at(expected, labels, X.astype(np.float64))
    one = _kmeans_numba.fast_cluster_sums(X, labels, 9, 1)
    np.testing.assert_array_equal(_kmeans_numba.fast_cluster_sums(X, labels, 9, 2), one)
    np.testing.assert_allclose(one, expected, rtol=1e-13)


def test_silhouette_repairs_negative_squares_of_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    # Exact duplicates far from the origin: |x|^2 + |y|^2 - 2xy rounds to small negatives
    # for some pairs, whose root is NaN until the block is repaired (reduced twice).
    from scipy.spatial.distance import cdist

    from monitor.core import quality

    rng = np.random.default_rng(0)
    base = 1e3 + rng.normal(size=(30, 3))
    X = np.vstack([base, base])
    labels = np.concatenate([rng.integers(0, 3, 30), rng.integers(0, 3, 30)])
    starts: list[int] = []
    original = quality._reduce_block

    def spy(D, i0, *args):  # type: ignore[no-untyped-def]
        starts.append(i0)
        return original(D, i0, *args)

    monkeypatch.setattr(quality, "_reduce_block", spy)
    res = silhouette_sampled(X, labels)
    assert len(starts) > len(set(starts))  # the repair ran
    exact = metrics.silhouette_samples(cdist(X, X), labels, metric="precomputed").mean()
    # Squared norms ~3e6 carry rounding ~1e-9, a distance error below 1e-4 even for
    # the closest pairs and far smaller on typical distances (~1.7); 1e-5 on the mean.
    assert res.score == pytest.approx(exact, abs=1e-5)


def test_silhouette_invariant_to_row_order_and_label_names() -> None:
    X, labels = blobs(400, 3, 5, seed=6)
    rng = np.random.default_rng(0)
    rows = rng.permutation(400)
    names = np.array([3, 0, 4, 1, 2])  # cluster c is called names[c]
    base = silhouette_sampled(X, labels)
    moved = silhouette_sampled(X[rows], names[labels[rows]])
    assert moved.score == pytest.approx(base.score, abs=1e-13)
    np.testing.assert_allclose(moved.per_cluster[names], base.per_cluster, atol=1e-13)


def test_silhouette_sample_is_seeded_and_matches_sklearn_on_it() -> None:
    X, labels = blobs(3000, 4, 6, seed=7)
    first = silhouette_sampled(X, labels, sample_size=500, random_state=42)
    again = silhouette_sampled(X, labels, sample_size=500, random_state=42)
    other = silhouette_sampled(X, labels, sample_size=500, random_state=43)
    assert first.n_points == 500
    assert first.score == again.score
    assert first.score != other.score
    # The documented draw: rng.choice(n, sample_size, replace=False).
    idx = np.random.default_rng(42).choice(3000, size=500, replace=False)
    expected = metrics.silhouette_score(X[idx], labels[idx])
    assert first.score == pytest.approx(expected, abs=1e-12)


def test_silhouette_whole_window_when_small_draws_nothing() -> None:
    X, labels = blobs(200, 2, 3, seed=8)
    rng = np.random.default_rng(1)
    before = rng.bit_generator.state
    res = silhouette_sampled(X, labels, sample_size=200, random_state=rng)
    assert res.n_points == 200
    assert rng.bit_generator.state == before


def test_silhouette_per_cluster_length_follows_n_clusters() -> None:
    res = silhouette_sampled(LINE, LINE_LABELS, n_clusters=4)
    assert res.per_cluster.shape == (4,)
    assert res.per_cluster[2:].tolist() == [0.0, 0.0]


def test_silhouette_one_cluster_warns_and_is_undefined() -> None:
    X = np.arange(10.0).reshape(-1, 1)
    with pytest.warns(DegenerateDataWarning, match="two populated clusters"):
        res = silhouette_sampled(X, np.zeros(10, dtype=int))
    assert not res.defined
    assert res.score == 0.0
    assert res.per_cluster.tolist() == [0.0]


def test_silhouette_duplicate_points_across_clusters_are_not_nan() -> None:
    # Every point coincides with every other: a = b = 0, the convention gives s = 0.
    X = np.zeros((6, 2))
    res = silhouette_sampled(X, np.array([0, 0, 0, 1, 1, 1]))
    assert res.score == 0.0
    assert res.defined


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"sample_size": 1},
            r"The 'sample_size' parameter of silhouette_sampled must be an int "
            r"in \[2, inf\)\. Got 1 instead\.",
        ),
        ({"working_memory_mib": 0.0}, r"'working_memory_mib' parameter of silhouette_sampled"),
        (
            {"n_clusters": 1},
            r"'labels' parameter of silhouette_sampled must hold cluster indices "
            r"in \[0, 0\]\. Got 1 instead\.",
        ),
    ],
)
def test_silhouette_rejects_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        silhouette_sampled(LINE, LINE_LABELS, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 0, 1]), r"one entry per sample \(4\); got 3"),
        (np.array([0, -1, 1, 1]), r"cluster indices in \[0, inf\)\. Got -1 instead"),
        (np.array([0.0, 0.0, 1.0, 1.0]), r"integer cluster indices; got dtype float64"),
        (np.array([[0, 0, 1, 1]]), r"1-D array of cluster indices"),
    ],
)
def test_silhouette_rejects_bad_labels(labels: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        silhouette_sampled(LINE, labels)


def test_silhouette_rejects_nan() -> None:
    X = LINE.copy()
    X[2, 0] = np.nan
    with pytest.raises(InvalidInputError, match="row 2, column 0"):
        silhouette_sampled(X, LINE_LABELS)


def test_silhouette_checks_the_values_it_reads_the_sample() -> None:
    # 3000 rows, a sample of 500: a NaN on a row outside the sample cannot change the
    # score, one on a sampled row is an error that names that row of X.
    X, labels = blobs(3000, 4, 6, seed=7)
    idx = np.random.default_rng(42).choice(3000, size=500, replace=False)
    outside = np.setdiff1d(np.arange(3000), idx)[0]
    clean = silhouette_sampled(X, labels, sample_size=500, random_state=42)
    X[outside, 1] = np.nan
    assert silhouette_sampled(X, labels, sample_size=500, random_state=42).score == clean.score
    X[idx[7], 2] = np.inf
    with pytest.raises(InvalidInputError, match=rf"row {idx[7]}, column 2 \(inf\)"):
        silhouette_sampled(X, labels, sample_size=500, random_state=42)


# --------------------------------------------------------------------------- simplified


def test_simplified_silhouette_toy_by_hand() -> None:
    # Points 0 and 6: a = 0.5, b = 5.5, s = 10/11; points 1 and 5: a = 0.5, b = 4.5, s = 8/9.
    res = silhouette_simplified(LINE, LINE_LABELS, LINE_CENTERS)
    expected = (10 / 11 + 8 / 9) / 2
    assert res.method == "simplified"
    assert res.n_points == 4
    assert res.score == pytest.approx(expected, abs=1e-15)
    np.testing.assert_allclose(res.per_cluster, [expected, expected], atol=1e-15)


def test_simplified_silhouette_uses_the_given_label_not_the_nearest_centre() -> None:
    # Point 1 labelled with the far centre: a = 4.5, b = 0.5, s = (0.5 - 4.5) / 4.5 = -8/9.
    res = silhouette_simplified(LINE, np.array([0, 1, 1, 1]), LINE_CENTERS)
    assert res.per_cluster[1] == pytest.approx((-8 / 9 + 8 / 9 + 10 / 11) / 3, abs=1e-15)


@pytest.mark.parametrize(("n", "d", "k", "seed"), [(300, 2, 3, 0), (900, 8, 12, 1)])
def test_simplified_silhouette_matches_brute_force(n: int, d: int, k: int, seed: int) -> None:
    X, labels = blobs(n, d, k, seed)
    centers = np.array([X[labels == c].mean(axis=0) for c in range(k)])
    # Brute force with scipy's exact pairwise differences (fine at this size).
    from scipy.spatial.distance import cdist

    D = cdist(X, centers)
    a = D[np.arange(n), labels]
    D[np.arange(n), labels] = np.inf
    b = D.min(axis=1)
    s = (b - a) / np.maximum(a, b)
    res = silhouette_simplified(X, labels, centers)
    # Our b comes from the |x|^2 - 2xc + |c|^2 expansion; with |x| ~ 10 its rounding is
    # ~1e-14 absolute, far below 1e-10.
    assert res.score == pytest.approx(s.mean(), abs=1e-10)
    chunked = silhouette_simplified(X, labels, centers, working_memory_mib=0.001)
    assert chunked.score == pytest.approx(res.score, abs=1e-13)


@pytest.mark.parametrize("offset", [1e8, 1.7e9])
def test_silhouettes_of_data_far_from_the_origin_are_those_of_the_data_centred(
    offset: float,
) -> None:
    """Epoch seconds, or a large counter, under ``scaling: none``: the expansion
    ``|x|^2 - 2 x.y + |y|^2`` of raw rows lost every digit of the spread (the exact
    silhouette read 0.009 instead of 0.66 at 1.7e9, the simplified one -0.85)."""
    X, labels = blobs(600, 3, 4, 5)
    far = X + offset
    # The reference: the same rows shifted back by their mean. Rows within a factor 2 of
    # each other subtract exactly (Sterbenz), so the reference sees the rows ``far``
    # holds, only its rounding differs: ~1e-16 relative, 1e-9 leaves a wide margin.
    centred = far - far.mean(axis=0)
    exact = silhouette_sampled(far, labels)
    assert exact.score == pytest.approx(metrics.silhouette_score(centred, labels), abs=1e-9)
    centers = np.array([far[labels == c].mean(axis=0) for c in range(4)])
    from scipy.spatial.distance import cdist

    D = cdist(centred, centers - far.mean(axis=0))  # direct differences, no expansion
    a = D[np.arange(600), labels]
    D[np.arange(600), labels] = np.inf
    b = D.min(axis=1)
    simplified = silhouette_simplified(far, labels, centers)
    assert simplified.score == pytest.approx(np.mean((b - a) / np.maximum(a, b)), abs=1e-9)


def test_simplified_silhouette_of_a_float32_window() -> None:
    X, labels = blobs(2000, 16, 8, 3)
    centers = np.array([X[labels == c].mean(axis=0) for c in range(8)])
    exact = silhouette_simplified(X, labels, centers)
    res = silhouette_simplified(X.astype(np.float32), labels, centers)
    # The nearest-other distance comes from a float32 GEMM: the expansion's rounding is
    # ~|x|^2 * 6e-8 (|x| ~ 10 here: ~1e-5 on squared distances of order 10), so per-point
    # silhouettes move by ~1e-6 and their mean by less; 1e-5 leaves a margin.
    assert res.score == pytest.approx(exact.score, abs=1e-5)
    np.testing.assert_allclose(res.per_cluster, exact.per_cluster, atol=1e-5)


def test_simplified_silhouette_one_centre_is_undefined() -> None:
    with pytest.warns(DegenerateDataWarning, match="two centres"):
        res = silhouette_simplified(LINE, np.zeros(4, dtype=int), np.array([[3.0]]))
    assert not res.defined
    assert res.score == 0.0


def test_simplified_silhouette_rejects_mismatched_centres() -> None:
    with pytest.raises(
        InvalidInputError,
        match=r"'centers' parameter of silhouette_simplified "
        r"must have 1 feature\(s\)",
    ):
        silhouette_simplified(LINE, LINE_LABELS, np.zeros((2, 3)))


# --------------------------------------------------------------------------- DB, CH, inertia


def test_davies_bouldin_toy_by_hand() -> None:
    # S_0 = S_1 = 0.5 (mean distance to the centre), M_01 = 5: DB = (0.5 + 0.5) / 5.
    res = davies_bouldin(LINE, LINE_LABELS)
    assert res.name == "davies_bouldin"
    assert res.value == pytest.approx(0.2, abs=1e-15)
    assert davies_bouldin(LINE, LINE_LABELS, LINE_CENTERS).value == pytest.approx(0.2, abs=1e-15)


@pytest.mark.parametrize(("n", "d", "k", "seed"), [(200, 2, 2, 0), (800, 6, 9, 1), (500, 3, 30, 2)])
def test_davies_bouldin_and_calinski_harabasz_match_sklearn(
    n: int, d: int, k: int, seed: int
) -> None:
    X, labels = blobs(n, d, k, seed)
    # Same formulas; scikit-learn measures point-to-centroid distances through the norm
    # expansion (relative error up to ~1e-8 for points near their centroid) where we take
    # exact differences, so 1e-7 relative is the honest tolerance for DB. CH uses only
    # sums of squares on both sides: 1e-10.
    assert davies_bouldin(X, labels).value == pytest.approx(
        metrics.davies_bouldin_score(X, labels), rel=1e-7
    )
    assert calinski_harabasz(X, labels).value == pytest.approx(
        metrics.calinski_harabasz_score(X, labels), rel=1e-10
    )


def test_indices_ignore_empty_clusters_like_sklearn_on_present_labels() -> None:
    X, labels = blobs(300, 3, 4, seed=3)
    gappy = np.array([0, 2, 5, 6])[labels]  # labels 1, 3 and 4 empty
    assert davies_bouldin(X, gappy).value == pytest.approx(
        metrics.davies_bouldin_score(X, labels), rel=1e-7
    )
    assert calinski_harabasz(X, gappy).value == pytest.approx(
        metrics.calinski_harabasz_score(X, labels), rel=1e-10
    )


def test_calinski_harabasz_toy_by_hand() -> None:
    # Means 0.5 and 5.5, overall 3: B = 2 * 2.5^2 + 2 * 2.5^2 = 25, W = 4 * 0.25 = 1,
    # CH = (25 / (2 - 1)) / (1 / (4 - 2)) = 50.
    res = calinski_harabasz(LINE, LINE_LABELS)
    assert res.value == pytest.approx(50.0, rel=1e-15)


def test_calinski_harabasz_zero_within_is_one_like_sklearn() -> None:
    X = np.array([[0.0], [0.0], [4.0], [4.0]])
    assert calinski_harabasz(X, LINE_LABELS).value == 1.0
    assert metrics.calinski_harabasz_score(X, LINE_LABELS) == 1.0


@pytest.mark.parametrize("index", [davies_bouldin, calinski_harabasz])
def test_one_cluster_indices_warn_and_are_undefined(index) -> None:  # type: ignore[no-untyped-def]
    with pytest.warns(DegenerateDataWarning, match="at least two populated clusters; got 1"):
        res = index(LINE, np.zeros(4, dtype=int))
    assert not res.defined
    assert res.value == 0.0


def test_inertia_toy_by_hand_and_weighted() -> None:
    # Each point is 0.5 from its centre: 4 * 0.25 = 1; weights 1, 2, 3, 4 give 10 * 0.25.
    assert inertia(LINE, LINE_LABELS, LINE_CENTERS).value == pytest.approx(1.0, abs=1e-15)
    weighted = inertia(LINE, LINE_LABELS, LINE_CENTERS, sample_weight=[1, 2, 3, 4])
    assert weighted.value == pytest.approx(2.5, abs=1e-15)


def test_inertia_matches_sklearn_kmeans() -> None:
    from sklearn.cluster import KMeans

    X, _ = blobs(600, 5, 6, seed=9)
    km = KMeans(n_clusters=6, n_init=1, random_state=0).fit(X)
    # KMeans.inertia_ is computed at the final centres with the same formula; only the
    # summation order differs.
    assert inertia(X, km.labels_, km.cluster_centers_).value == pytest.approx(km.inertia_, rel=1e-9)


# --------------------------------------------------------------------------- cluster sizes


def test_cluster_sizes_by_hand() -> None:
    # counts 2, 1, 0, 1 (mean 1): population std sqrt((1 + 0 + 1 + 0) / 4) = sqrt(0.5).
    res = cluster_sizes(np.array([0, 0, 1, 3]), 4)
    assert res.counts.tolist() == [2, 1, 0, 1]
    np.testing.assert_allclose(res.shares, [0.5, 0.25, 0.0, 0.25], atol=0)
    assert res.cv == pytest.approx(math.sqrt(0.5), abs=1e-15)
    assert res.n_empty == 1


def test_cluster_sizes_weighted_by_hand() -> None:
    # Weighted sizes 3, 1: shares 0.75, 0.25; mean 2, std 1, cv 0.5; counts stay 2, 1.
    res = cluster_sizes(np.array([0, 0, 1]), 2, sample_weight=np.array([1.0, 2.0, 1.0]))
    assert res.counts.tolist() == [2, 1]
    np.testing.assert_allclose(res.shares, [0.75, 0.25], atol=1e-15)
    assert res.cv == pytest.approx(0.5, abs=1e-15)
    assert res.n_empty == 0


def test_cluster_sizes_balanced_is_zero_cv() -> None:
    res = cluster_sizes(np.tile(np.arange(5), 7), 5)
    assert res.cv == 0.0


@pytest.mark.parametrize(
    ("labels", "n_clusters", "message"),
    [
        (
            np.array([0, 1]),
            0,
            r"The 'n_clusters' parameter of cluster_sizes must be an int in "
            r"\[1, inf\)\. Got 0 instead\.",
        ),
        (np.array([0, 2]), 2, r"cluster indices in \[0, 1\]\. Got 2 instead"),
        (np.array([], dtype=int), 2, r"at least one label"),
    ],
)
def test_cluster_sizes_rejects_bad_input(labels: np.ndarray, n_clusters: int, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        cluster_sizes(labels, n_clusters)


def test_known_squared_distances_give_the_same_simplified_silhouette_and_db() -> None:
    X, labels = blobs(1500, 6, 5, 7)
    centers = np.array([X[labels == c].mean(axis=0) for c in range(5)])
    sq = ((X - centers[labels]) ** 2).sum(axis=1)
    # Same distances by another route: only summation order differs (~1e-15).
    assert silhouette_simplified(X, labels, centers, sq_distances=sq).score == pytest.approx(
        silhouette_simplified(X, labels, centers).score, abs=1e-12
    )
    assert davies_bouldin(X, labels, centers, sq_distances=sq).value == pytest.approx(
        davies_bouldin(X, labels, centers).value, rel=1e-12
    )
    with pytest.raises(InvalidInputError, match="needs 'centers'"):
        davies_bouldin(X, labels, sq_distances=sq)
    message = "'sq_distances' parameter of silhouette_simplified"
    with pytest.raises(InvalidInputError, match=message):
        silhouette_simplified(X, labels, centers, sq_distances=sq[:-1])


def test_silhouette_from_ab_by_the_formula_with_coincident_points() -> None:
    # s = (b - a) / max(a, b), 0 where a = b = 0: by hand, then bit for bit against the
    # formula written out with np.where on random distances with zeros and ties.
    from monitor.core._distances import silhouette_from_ab

    got = silhouette_from_ab(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 3.0, 1.0, 3.0]))
    np.testing.assert_array_equal(got, [0.0, 2 / 3, -0.5, 0.0])
    assert not np.signbit(got[0])
    rng = np.random.default_rng(4)
    a = np.where(rng.random(1000) < 0.2, 0.0, rng.random(1000))
    b = np.where(rng.random(1000) < 0.2, a, rng.random(1000))
    denom = np.maximum(a, b)
    want = np.where(denom > 0, (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    np.testing.assert_array_equal(silhouette_from_ab(a, b), want)


def test_indices_that_do_not_read_x_do_not_check_its_values() -> None:
    # Given the centres and both distances, neither index reads X: a NaN there changes
    # nothing. Without the distances X is read, and its NaN is an error.
    X, labels = blobs(300, 3, 4, seed=9)
    C = np.array([X[labels == c].mean(axis=0) for c in range(4)])
    sq = np.sum((X - C[labels]) ** 2, axis=1)
    others = np.sum((X[:, None, :] - C[None, :, :]) ** 2, axis=2)
    others[np.arange(300), labels] = np.inf
    sq2 = others.min(axis=1)
    simp = silhouette_simplified(X, labels, C, sq_distances=sq, sq_second=sq2)
    db = davies_bouldin(X, labels, C, sq_distances=sq)
    X[5, 1] = np.nan
    again = silhouette_simplified(X, labels, C, sq_distances=sq, sq_second=sq2)
    assert again.score == simp.score
    np.testing.assert_array_equal(again.per_cluster, simp.per_cluster)
    assert davies_bouldin(X, labels, C, sq_distances=sq) == db
    with pytest.raises(InvalidInputError, match="row 5, column 1"):
        silhouette_simplified(X, labels, C, sq_distances=sq)
    with pytest.raises(InvalidInputError, match="row 5, column 1"):
        davies_bouldin(X, labels, C)
