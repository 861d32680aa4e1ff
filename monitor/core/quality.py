"""Internal quality indices of a clustering: silhouette, Davies-Bouldin, Calinski-Harabasz,
inertia and cluster-size balance.

Every public function validates its input once and returns a record from
:mod:`monitor.records`. Indices that are undefined for the input (a single populated
cluster) warn with :class:`~monitor.errors.DegenerateDataWarning` and return
``defined=False`` with the value 0.0, never NaN.

Memory: no function holds an ``(n, k)`` or ``(n, n)`` matrix of the window. Pairwise
distances of the silhouette sample and point-to-centre distances are computed in row
chunks sized by the working-memory budget.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy.spatial.distance import cdist

from monitor.checks import (
    RandomStateLike,
    check_array,
    check_float,
    check_int,
    check_random_state,
    check_sample_weight,
)
from monitor.core import _kmeans_numba
from monitor.core._checks import check_centers, check_labels, check_sq_distances
from monitor.core._chunking import (
    CACHE_BLOCK_BYTES,
    DEFAULT_WORKING_MEMORY_MIB,
    cache_rows,
    chunk_rows,
    iter_slices,
)
from monitor.core._distances import (
    distances_to_own_center,
    nearest_other,
    own_and_nearest_other,
    silhouette_from_ab,
)
from monitor.core._kmeans_fit import around_centres
from monitor.errors import DegenerateDataWarning, InvalidInputError
from monitor.records import ClusterSizes, ScalarIndex, Silhouette

__all__ = [
    "calinski_harabasz",
    "calinski_harabasz_from_sums",
    "cluster_sizes",
    "davies_bouldin",
    "davies_bouldin_from_sums",
    "inertia",
    "silhouette_sampled",
    "silhouette_simplified",
    "simplified_from_sums",
    "sizes_from_counts",
]

F64 = NDArray[np.float64]
Intp = NDArray[np.intp]

# Accumulators of the exact silhouette's upper-triangle pass, one per thread at most. A
# fixed number, not the thread count, so that the sums (and so the scores) do not depend
# on how many threads ran them.
SILHOUETTE_LANES = 2


# --------------------------------------------------------------------------- helpers


def _cluster_sums(
    X: NDArray[Any],
    labels: Intp,
    n_clusters: int,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    n_threads: int = 1,
) -> F64:
    """Per-cluster column sums of ``X``, shape (k, d), in float64.

    With numba (extra ``fast``): one compiled pass on ``n_threads`` threads
    (``_kmeans_numba.fast_cluster_sums``). Without: a sparse (k, m) indicator times each
    float64 row chunk of X: one pass over X and O(chunk) extra memory, where a dense
    one-hot would be (n, k) and a float64 copy of a float32 window twice the window. The
    indicator is built as CSC, one entry per column (row of X) in place: no coordinate
    sort, which made the CSR form of it 1.7x slower at 1M x 32. Each cluster's rows are
    added in row order within a chunk either way, so the two paths agree to float64
    rounding (tested against ``np.add.at``).
    """
    if _kmeans_numba.AVAILABLE:
        return _kmeans_numba.fast_cluster_sums(X, labels, n_clusters, n_threads)
    n, d = X.shape
    out = np.zeros((n_clusters, d), dtype=np.float64)
    step = cache_rows(n, d * 8 + 24, working_memory_mib)
    for sl in iter_slices(n, step):
        m = sl.stop - sl.start
        indicator = sparse.csc_matrix(
            (np.ones(m, dtype=np.float64), labels[sl], np.arange(m + 1)), shape=(n_clusters, m)
        )
        out += indicator @ X[sl].astype(np.float64, copy=False)
    return out


def _own_center_sums(
    X: NDArray[Any], labels: Intp, centers: F64, working_memory_mib: float, *, root: bool
) -> F64:
    """Per-cluster sums of the distances (``root``) or squared distances to the own
    centre, shape (k,), accumulated chunk by chunk without a length-n vector."""
    n, d = X.shape
    k = centers.shape[0]
    out = np.zeros(k, dtype=np.float64)
    step = cache_rows(n, 3 * d * 8, working_memory_mib)
    for sl in iter_slices(n, step):
        diff = X[sl].astype(np.float64, copy=False) - centers[labels[sl]]
        sq = np.einsum("ij,ij->i", diff, diff)
        out += np.bincount(labels[sl], weights=np.sqrt(sq) if root else sq, minlength=k)
    return out


def _per_cluster_mean(values: F64, labels: Intp, n_clusters: int) -> F64:
    """Mean of ``values`` within each cluster, shape (k,); 0.0 for clusters with no point."""
    counts = np.bincount(labels, minlength=n_clusters)
    sums = np.bincount(labels, weights=values, minlength=n_clusters)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


def _silhouette_exact_values(
    Xs: F64, code: Intp, counts: Intp, working_memory_mib: float, n_threads: int = 1
) -> F64:
    """Exact silhouette value of each point of a label-sorted sample, shape (m,).

    Parameters
    ----------
    Xs : ndarray of shape (m, d), float64
        Sample points sorted by cluster, so that each cluster is a contiguous run.
    code : ndarray of shape (m,)
        Cluster of each point as an index into ``counts`` (0 .. kp-1, non-decreasing).
    counts : ndarray of shape (kp,)
        Size of each populated cluster (all > 0, at least two clusters).
    working_memory_mib : float
        Budget for the distance chunks and the accumulators.
    n_threads : int
        Threads over the row chunks (numpy's GEMM, root and reductions release the GIL);
        the values are the same for any count.

    Notes
    -----
    The squared distances come from one GEMM per chunk on augmented rows,
    ``[x, |x|^2, 1] . [-2y, 1, |y|^2]`` of the rows centred on their mean, then a square
    root (negative squares from rounding count as 0, and self-distances are exactly 0);
    the distances to each cluster are summed with ``np.add.reduceat`` over the
    label-sorted columns. When the ``SILHOUETTE_LANES`` (m, kp) accumulators fit in half
    the budget, only the upper
    triangle of the distance matrix is computed and each block is reduced both along its
    rows and its columns, which halves the GEMM and square-root work. Otherwise rows are
    processed in independent chunks.
    """
    m, d = Xs.shape
    kp = counts.shape[0]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.intp)
    # Around the sample's mean: distances do not move, and the expansion keeps the
    # spread's digits of rows far from the origin (epoch seconds under scaling: none).
    Xs = Xs - Xs.mean(axis=0)
    sq = np.einsum("ij,ij->i", Xs, Xs)
    A = np.empty((m, d + 2), dtype=np.float64)
    A[:, :d] = Xs
    A[:, d] = sq
    A[:, d + 1] = 1.0
    Bt = np.empty((d + 2, m), dtype=np.float64)
    Bt[:d] = -2.0 * Xs.T
    Bt[d] = 1.0
    Bt[d + 1] = sq

    budget = working_memory_mib * 2**20
    acc_bytes = SILHOUETTE_LANES * m * kp * 8
    # Up to SILHOUETTE_LANES threads each hold a distance block: they share the budget.
    # The share depends on the lanes, not on n_threads, because the blocks' shape sets
    # BLAS's summation order and so the last bits of the distances.
    threads = min(n_threads, SILHOUETTE_LANES)
    if acc_bytes <= budget / 2:
        lane_mib = (working_memory_mib - acc_bytes / 2**20) / SILHOUETTE_LANES
        sums = _cluster_distance_sums_symmetric(A, Bt, starts, code, kp, lane_mib, threads)
        return _silhouette_from_sums(sums, code, counts)
    s = np.empty(m, dtype=np.float64)
    # Per chunk: the (c, m) distances, the (c, kp) sums and small temporaries.
    step = chunk_rows(m, (m + 2 * kp + 8) * 8, working_memory_mib / SILHOUETTE_LANES)

    def rows(sl: slice) -> None:
        D = A[sl] @ Bt
        _clip_sqrt_zero_diagonal(D, sl.start)
        sums = np.add.reduceat(D, starts, axis=1)
        s[sl] = _silhouette_from_sums(sums, code[sl], counts)

    slices = list(iter_slices(m, step))
    if threads > 1 and len(slices) > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(rows, slices))
    else:
        for sl in slices:
            rows(sl)
    return s


def _clip_sqrt_zero_diagonal(D: F64, diagonal_offset: int) -> None:
    """In place: clip squared distances at 0, take the root, zero the self-distances.

    ``D[i, i + diagonal_offset]`` is the distance of a point to itself; the expansion
    leaves rounding noise there, and scikit-learn sets it to exactly 0 too.
    """
    np.maximum(D, 0.0, out=D)
    np.sqrt(D, out=D)
    rows = np.arange(D.shape[0])
    cols = rows + diagonal_offset
    keep = cols < D.shape[1]
    D[rows[keep], cols[keep]] = 0.0


def _cluster_distance_sums_symmetric(
    A: F64, Bt: F64, starts: Intp, code: Intp, kp: int, working_memory_mib: float, n_threads: int
) -> F64:
    """Sum of distances from each point to each cluster, shape (m, kp), upper triangle only.

    The row blocks are dealt round-robin to ``SILHOUETTE_LANES`` accumulators, each
    filled in block order by one thread and added in lane order at the end: the same
    sums for any ``n_threads``.
    """
    m = A.shape[0]
    # A chunk of c rows holds a (c, <= m) block and small reductions of it.
    step = chunk_rows(m, m * 8 + 64 * 8, working_memory_mib)
    # Capped so that a (rows, m) float64 block is still in cache when the square root and
    # the two reductions read it after the GEMM wrote it (~25 % faster at m = 10k). The
    # floor is 8 rows, not cache_rows' 256: a row here is the whole sample wide.
    step = max(1, min(step, max(8, CACHE_BLOCK_BYTES // (8 * m))))
    slices = list(iter_slices(m, step))

    def lane(first: int) -> F64:
        acc = np.zeros((m, kp), dtype=np.float64)
        for sl in slices[first::SILHOUETTE_LANES]:
            _add_block(A, Bt, starts, code, sl, acc)
        return acc

    lanes = range(SILHOUETTE_LANES)
    if n_threads > 1:
        with ThreadPoolExecutor(n_threads) as pool:
            accs = list(pool.map(lane, lanes))
    else:
        accs = [lane(i) for i in lanes]
    total = accs[0]
    for acc in accs[1:]:
        total += acc
    return total


def _add_block(A: F64, Bt: F64, starts: Intp, code: Intp, sl: slice, acc: F64) -> None:
    """Add the distances of rows ``sl`` to the columns from ``sl.start`` on to ``acc``."""
    m = A.shape[0]
    i0, i1 = sl.start, sl.stop
    # Rows i0:i1 against columns i0:m. The square (i0:i1, i0:i1) part completes
    # those rows; the rest is mirrored onto rows i1:m.
    D = A[sl] @ Bt[:, i0:]
    diagonal = np.arange(i1 - i0)
    D[diagonal, diagonal] = 0.0  # a point's distance to itself, as scikit-learn sets it
    # No clip at zero before the root: that would be a full extra pass over every
    # block for the rare negative square (rounding on near-duplicate points). Its
    # NaN reaches the block's sums instead, and only such a block is repaired.
    with np.errstate(invalid="ignore"):
        np.sqrt(D, out=D)
    first, last = int(code[i0]), int(code[i1 - 1])
    own, mirrored = _reduce_block(D, i0, i1, starts, code, first, last, m)
    if np.isnan(own).any() or np.isnan(mirrored).any():
        D[np.isnan(D)] = 0.0
        own, mirrored = _reduce_block(D, i0, i1, starts, code, first, last, m)
    acc[sl, first:] += own
    acc[i1:, first : last + 1] += mirrored.T


def _reduce_block(
    D: F64, i0: int, i1: int, starts: Intp, code: Intp, first: int, last: int, m: int
) -> tuple[F64, F64]:
    """Per-cluster sums of a block: along its rows (c, kp - first), and along its columns
    beyond the square part (last - first + 1, m - i1)."""
    col_starts = np.concatenate(([0], starts[first + 1 :] - i0)).astype(np.intp)
    own = np.add.reduceat(D, col_starts, axis=1)
    # The rows of a block span few clusters (they are sorted by cluster): a small
    # indicator GEMM sums them, three times faster here than reduceat along axis 0.
    segments = np.arange(first, last + 1)
    indicator = (code[i0:i1][None, :] == segments[:, None]).astype(np.float64)
    mirrored = indicator @ D[:, i1 - i0 :]
    return own, mirrored


def _silhouette_from_sums(sums: F64, code: Intp, counts: Intp) -> F64:
    """Silhouette of each row from its per-cluster distance sums (rows, kp)."""
    rows = np.arange(sums.shape[0])
    n_own = counts[code]
    a = sums[rows, code] / np.maximum(n_own - 1, 1)
    means = sums / counts
    means[rows, code] = np.inf
    b = means.min(axis=1)
    s = silhouette_from_ab(a, b)
    # Convention of Rousseeuw (1987) and scikit-learn: a point alone in its cluster has s = 0.
    s[n_own == 1] = 0.0
    return s


# --------------------------------------------------------------------------- public


def silhouette_sampled(
    X: ArrayLike,
    labels: ArrayLike,
    *,
    sample_size: int = 10000,
    random_state: RandomStateLike = None,
    n_clusters: int | None = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    n_threads: int = 1,
) -> Silhouette:
    """Exact silhouette score on a seeded sample of the window.

    Parameters
    ----------
    X : array-like of shape (n, d)
        The window. Only the sampled rows are read, so only they must be finite (a
        NaN or infinity there is an error naming its row in X).
    labels : array-like of shape (n,)
        Cluster index of each point, in ``[0, k)``.
    sample_size : int, default 10000
        Points drawn without replacement, as ``rng.choice(n, sample_size, replace=False)``
        with ``rng = check_random_state(random_state)``; the whole window when
        ``n <= sample_size`` (no random number is drawn then).
    random_state : int, Generator, RandomState or None
        Seed of the sample.
    n_clusters : int or None
        Length of ``per_cluster``; ``labels.max() + 1`` when None.
    working_memory_mib : float
        Budget for the pairwise-distance chunks; the (m, m) matrix is never formed.
        Shared by the threads.
    n_threads : int
        Threads over the pairwise-distance chunks; the score is the same for any count.

    Returns
    -------
    Silhouette
        ``method="exact"``; ``score`` is the mean of ``s_i = (b_i - a_i) / max(a_i, b_i)``
        over the sample, ``sklearn.metrics.silhouette_score`` of the sample centred (its
        uncentred rows lose the spread far from 0); singletons get 0. ``per_cluster``: (k,).
        Fewer than two populated clusters in the sample: a warning, ``defined=False``, 0.0.
    """
    owner = "silhouette_sampled"
    Xa = check_array(X, name="X", allow_nan=True)  # values: on the sample (_draw)
    n = Xa.shape[0]
    if n_clusters is not None:
        n_clusters = check_int(n_clusters, "n_clusters", low=1, owner=owner)
    lab = check_labels(labels, n, n_clusters, owner=owner)
    sample_size = check_int(sample_size, "sample_size", low=2, owner=owner)
    working_memory_mib = check_float(
        working_memory_mib, "working_memory_mib", low=0.0, low_inclusive=False, owner=owner
    )
    threads = check_int(n_threads, "n_threads", low=1, owner=owner)
    k = int(lab.max()) + 1 if n_clusters is None else n_clusters
    rng = check_random_state(random_state)

    Xs, ls = _draw(Xa, lab, sample_size, rng)
    m = ls.shape[0]
    order = np.argsort(ls, kind="stable")
    ls_sorted = ls[order]
    populated, counts = np.unique(ls_sorted, return_counts=True)
    if populated.shape[0] < 2:
        warnings.warn(
            f"The silhouette needs at least two populated clusters; the sample of {m} "
            f"point(s) has {populated.shape[0]}. Reporting 0.0 (undefined).",
            DegenerateDataWarning,
            stacklevel=2,
        )
        return Silhouette(
            score=0.0, per_cluster=np.zeros(k), n_points=m, method="exact", defined=False
        )
    code = np.repeat(np.arange(populated.shape[0], dtype=np.intp), counts)
    Xsorted = np.ascontiguousarray(Xs[order], dtype=np.float64)
    s_sorted = _silhouette_exact_values(
        Xsorted, code, counts.astype(np.intp), working_memory_mib, threads
    )
    return Silhouette(
        score=float(s_sorted.mean()),
        per_cluster=_per_cluster_mean(s_sorted, ls_sorted, k),
        n_points=m,
        method="exact",
    )


def _draw(
    X: NDArray[Any], labels: Intp, sample_size: int, rng: np.random.Generator
) -> tuple[NDArray[Any], Intp]:
    """The documented sample, ``rng.choice(n, sample_size, replace=False)`` or every row,
    checked finite (the error names the row of X). Only the rows read are checked: a
    NaN scan of a whole 1M-row window took longer than drawing and checking the sample."""
    n = X.shape[0]
    idx = None if n <= sample_size else rng.choice(n, size=sample_size, replace=False)
    Xs = X if idx is None else X[idx]
    finite = np.isfinite(Xs)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        where = int(row) if idx is None else int(idx[row])
        raise InvalidInputError(
            f"X contains NaN or infinity: the first read at row {where}, column {col} "
            f"({float(Xs[row, col])})."
        )
    return (X, labels) if idx is None else (Xs, labels[idx])


def _check_sq_second(sq_second: ArrayLike, n: int, owner: str) -> F64:
    """Second-nearest squared distances: like ``sq_distances``, but inf is allowed (k = 1)."""
    arr = np.asarray(sq_second, dtype=np.float64)
    if arr.shape != (n,) or np.isnan(arr).any() or (arr < 0).any():
        raise InvalidInputError(
            f"The 'sq_second' parameter of {owner} must be {n} non-negative squared "
            f"distances, one per row of X. Got an array of shape {arr.shape} instead."
        )
    return arr


def silhouette_simplified(
    X: ArrayLike,
    labels: ArrayLike,
    centers: ArrayLike,
    *,
    sq_distances: ArrayLike | None = None,
    sq_second: ArrayLike | None = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
) -> Silhouette:
    """Simplified (centroid) silhouette over the whole window in O(n k).

    Parameters
    ----------
    X : array-like of shape (n, d)
    labels : array-like of shape (n,)
        Cluster index of each point, in ``[0, k)``.
    centers : array-like of shape (k, d)
    sq_distances : array-like of shape (n,), optional
        Squared distance of each point to its own centre when already known (for
        example from ``assign_labels``); saves a pass over ``X``. Computed exactly from
        differences when None.
    sq_second : array-like of shape (n,), optional
        With ``sq_distances``: the squared distance of each point to the nearest centre
        other than its own, as ``assign_two_nearest`` returns it with the labels; the
        silhouette then needs no pass over ``X`` at all. Only valid when ``labels`` are
        the nearest centres (so that the second nearest is the nearest other).
    working_memory_mib : float
        Budget for the (chunk, k) distance blocks.

    Returns
    -------
    Silhouette
        ``method="simplified"``: ``a_i`` is the distance to the point's own centre and
        ``b_i`` the distance to the nearest other centre, ``s_i = (b_i - a_i) / max(a_i, b_i)``
        (0 when both are 0). It needs two centres, not two populated clusters: with
        ``k = 1`` it warns and returns ``defined=False`` and 0.0.
    """
    owner = "silhouette_simplified"
    # Given both distances, X is not read: its shape is checked, not its values.
    Xa = check_array(X, name="X", allow_nan=sq_distances is not None and sq_second is not None)
    C = check_centers(centers, Xa.shape[1], owner=owner)
    k = C.shape[0]
    lab = check_labels(labels, Xa.shape[0], k, owner=owner)
    working_memory_mib = check_float(
        working_memory_mib, "working_memory_mib", low=0.0, low_inclusive=False, owner=owner
    )
    n = Xa.shape[0]
    if k < 2:
        warnings.warn(
            "The simplified silhouette needs at least two centres; got 1. "
            "Reporting 0.0 (undefined).",
            DegenerateDataWarning,
            stacklevel=2,
        )
        return Silhouette(
            score=0.0, per_cluster=np.zeros(k), n_points=n, method="simplified", defined=False
        )
    if sq_distances is None and sq_second is not None:
        raise InvalidInputError(
            "The 'sq_second' parameter of silhouette_simplified needs 'sq_distances': "
            "both must come from one assignment."
        )
    if sq_second is None:  # read from X: far from the origin, around the centres
        Xa, C = around_centres(Xa, C, working_memory_mib)
    if sq_distances is None:
        a, b = own_and_nearest_other(Xa, lab, C, working_memory_mib)
    else:
        a = np.sqrt(check_sq_distances(sq_distances, n, owner=owner))
        if sq_second is None:
            b = nearest_other(Xa, lab, C, working_memory_mib)
        else:
            b = np.sqrt(_check_sq_second(sq_second, n, owner))
    s = silhouette_from_ab(a, b)
    return Silhouette(
        score=float(s.mean()),
        per_cluster=_per_cluster_mean(s, lab, k),
        n_points=n,
        method="simplified",
    )


def _undefined(name: str, n_populated: int) -> ScalarIndex:
    warnings.warn(
        f"The {name} index needs at least two populated clusters; got {n_populated}. "
        f"Reporting 0.0 (undefined).",
        DegenerateDataWarning,
        stacklevel=3,
    )
    return ScalarIndex(name=name, value=0.0, defined=False)


def davies_bouldin(
    X: ArrayLike,
    labels: ArrayLike,
    centers: ArrayLike | None = None,
    *,
    sq_distances: ArrayLike | None = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
) -> ScalarIndex:
    """Davies-Bouldin index over the populated clusters (lower is better).

    Parameters
    ----------
    X : array-like of shape (n, d)
    labels : array-like of shape (n,)
        Cluster index of each point, ``>= 0`` (in ``[0, k)`` when ``centers`` is given).
    centers : array-like of shape (k, d) or None
        Centres to measure against; the cluster means when None (then the value equals
        ``sklearn.metrics.davies_bouldin_score``). Empty clusters are left out either way.
    sq_distances : array-like of shape (n,), optional
        Squared distance of each point to its centre in ``centers`` when already known
        (for example from ``assign_labels``); saves a pass over ``X``. Needs ``centers``.
    working_memory_mib : float
        Budget for the row chunks (no length-n temporaries are kept).

    Returns
    -------
    ScalarIndex
        ``name="davies_bouldin"``. With ``S_i`` the mean distance of cluster ``i``'s points
        to its centre and ``M_ij`` the distance between centres,
        ``DB = mean_i max_{j != i} (S_i + S_j) / M_ij`` (pairs with ``M_ij = 0`` are skipped).
        0.0 when all ``S_i`` or all ``M_ij`` are (close to) 0, as scikit-learn does.
        Fewer than two populated clusters: a warning and ``defined=False``.
    """
    owner = "davies_bouldin"
    # Given centres and distances, X is not read: its shape is checked, not its values.
    Xa = check_array(X, name="X", allow_nan=centers is not None and sq_distances is not None)
    C = None if centers is None else check_centers(centers, Xa.shape[1], owner=owner)
    lab = check_labels(labels, Xa.shape[0], None if C is None else C.shape[0], owner=owner)
    k = int(lab.max()) + 1 if C is None else C.shape[0]
    counts = np.bincount(lab, minlength=k)
    populated = np.flatnonzero(counts)
    if populated.shape[0] < 2:
        return _undefined("davies_bouldin", int(populated.shape[0]))
    if C is None:
        C = _cluster_sums(Xa, lab, k, working_memory_mib) / np.maximum(counts, 1)[:, None]
    if sq_distances is None:
        sums = _own_center_sums(Xa, lab, C, working_memory_mib, root=True)
    elif centers is None:
        raise InvalidInputError(
            "The 'sq_distances' parameter of davies_bouldin needs 'centers': the distances "
            "must be to those centres."
        )
    else:
        sq = check_sq_distances(sq_distances, Xa.shape[0], owner=owner)
        sums = np.asarray(
            np.bincount(lab, weights=np.sqrt(np.maximum(sq, 0.0)), minlength=k), dtype=np.float64
        )
    return _davies_bouldin(counts, sums, C)


def davies_bouldin_from_sums(
    counts: ArrayLike, dist_sums: ArrayLike, centers: ArrayLike
) -> ScalarIndex:
    """Davies-Bouldin index from per-cluster sums, as a distributed pass gathers them.

    Parameters
    ----------
    counts : array-like of shape (k,)
        Points per cluster.
    dist_sums : array-like of shape (k,)
        Per cluster, the sum of its points' distances to its centre in ``centers``.
    centers : array-like of shape (k, d)

    Returns
    -------
    ScalarIndex
        The value ``davies_bouldin(X, labels, centers)`` gives on the points these sums
        were taken over (same formula, same edge cases).
    """
    owner = "davies_bouldin_from_sums"
    c = _check_counts(counts, None, owner)
    C = _centers_for(centers, c.shape[0], owner)
    sums = _check_sums(dist_sums, c.shape[0], "dist_sums", owner)
    populated = np.flatnonzero(c)
    if populated.shape[0] < 2:
        return _undefined("davies_bouldin", int(populated.shape[0]))
    return _davies_bouldin(c, sums, C)


def _davies_bouldin(counts: NDArray[Any], sums: F64, C: F64) -> ScalarIndex:
    populated = np.flatnonzero(counts)
    scatter = (sums / np.maximum(counts, 1))[populated]
    separation = cdist(C[populated], C[populated])
    if np.allclose(scatter, 0.0) or np.allclose(separation, 0.0):
        return ScalarIndex(name="davies_bouldin", value=0.0)
    with np.errstate(divide="ignore"):
        ratio = (scatter[:, None] + scatter[None, :]) / np.where(separation > 0, separation, np.inf)
    np.fill_diagonal(ratio, -np.inf)
    return ScalarIndex(name="davies_bouldin", value=float(ratio.max(axis=1).mean()))


def calinski_harabasz(
    X: ArrayLike,
    labels: ArrayLike,
    *,
    centers: ArrayLike | None = None,
    sq_distances: ArrayLike | None = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    n_threads: int = 1,
) -> ScalarIndex:
    """Calinski-Harabasz index (variance ratio; higher is better).

    Parameters
    ----------
    X : array-like of shape (n, d)
    labels : array-like of shape (n,)
        Cluster index of each point, ``>= 0``.
    centers, sq_distances : array-like of shapes (k, d) and (n,), optional
        Given together (for example the live model's centres and what
        ``assign_labels`` returned): the within-cluster sum comes from them as
        ``W = sum_i sq_i - sum_j n_j |mu_j - c_j|^2`` (exact algebra; only the
        distances' rounding differs), which saves the second pass over ``X``.
    working_memory_mib : float
        Budget for the row chunks (no length-n temporaries are kept).
    n_threads : int
        Threads for the cluster sums (with numba; the result does not depend on it).

    Returns
    -------
    ScalarIndex
        ``name="calinski_harabasz"``,
        ``CH = [B / (k_p - 1)] / [W / (n - k_p)]`` with ``B = sum_i n_i |mu_i - mu|^2``,
        ``W = sum_x |x - mu_label(x)|^2`` and ``k_p`` the populated clusters; equal to
        ``sklearn.metrics.calinski_harabasz_score``, including its value 1.0 when ``W = 0``.
        Fewer than two populated clusters: a warning and ``defined=False``.
    """
    owner = "calinski_harabasz"
    threads = check_int(n_threads, "n_threads", low=1, owner=owner)
    Xa = check_array(X, name="X")
    if (centers is None) != (sq_distances is None):
        raise InvalidInputError(
            "The 'centers' and 'sq_distances' parameters of calinski_harabasz go together: "
            "the distances must be to those centres."
        )
    C = None if centers is None else check_centers(centers, Xa.shape[1], owner=owner)
    lab = check_labels(labels, Xa.shape[0], None if C is None else C.shape[0], owner=owner)
    n = Xa.shape[0]
    k = int(lab.max()) + 1 if C is None else C.shape[0]
    counts = np.bincount(lab, minlength=k)
    kp = int(np.count_nonzero(counts))
    if kp < 2:
        return _undefined("calinski_harabasz", kp)
    sums = _cluster_sums(Xa, lab, k, working_memory_mib, threads)
    if C is None:
        means = sums / np.maximum(counts, 1)[:, None]
        within = float(_own_center_sums(Xa, lab, means, working_memory_mib, root=False).sum())
        return _calinski_harabasz(counts, sums, within)
    sq = check_sq_distances(sq_distances, n, owner=owner)  # type: ignore[arg-type]
    return _calinski_harabasz(counts, sums, _within(counts, sums, float(sq.sum()), C))


def calinski_harabasz_from_sums(
    counts: ArrayLike, sums: ArrayLike, sq_total: float, centers: ArrayLike
) -> ScalarIndex:
    """Calinski-Harabasz index from per-cluster sums, as a distributed pass gathers them.

    Parameters
    ----------
    counts : array-like of shape (k,)
        Points per cluster.
    sums : array-like of shape (k, d)
        Per cluster, the sum of its points.
    sq_total : float
        The sum over all points of the squared distance to their centre in ``centers``.
    centers : array-like of shape (k, d)

    Returns
    -------
    ScalarIndex
        The value ``calinski_harabasz(X, labels, centers=centers, sq_distances=...)``
        gives on the points these sums were taken over.
    """
    owner = "calinski_harabasz_from_sums"
    c = _check_counts(counts, None, owner)
    C = _centers_for(centers, c.shape[0], owner)
    S = np.asarray(sums, dtype=np.float64)
    if S.shape != C.shape:
        raise InvalidInputError(
            f"The 'sums' parameter of {owner} must have the shape of centers {C.shape}; "
            f"got {S.shape}."
        )
    kp = int(np.count_nonzero(c))
    if kp < 2:
        return _undefined("calinski_harabasz", kp)
    total = check_float(sq_total, "sq_total", low=0.0, owner=owner)
    return _calinski_harabasz(c, S, _within(c, S, total, C))


def _within(counts: NDArray[Any], sums: F64, total: float, C: F64) -> float:
    """W from the squared distances to other centres: ``sum sq - sum_j n_j |mu_j - c_j|^2``."""
    means = sums / np.maximum(counts, 1)[:, None]
    within = total - float(counts @ np.sum((means - C) ** 2, axis=1))
    # What is left of W after the subtraction is rounding when all points sit on their
    # means: then W is 0, as the two-pass sum finds it.
    return 0.0 if within <= 1e-12 * total else within


def _calinski_harabasz(counts: NDArray[Any], sums: F64, within: float) -> ScalarIndex:
    n = int(counts.sum())
    kp = int(np.count_nonzero(counts))
    means = sums / np.maximum(counts, 1)[:, None]
    # The grand mean from the cluster sums: no float64 copy of a float32 window.
    overall = sums.sum(axis=0) / n
    between = float(np.sum(counts * np.sum((means - overall) ** 2, axis=1)))
    if within == 0.0:
        return ScalarIndex(name="calinski_harabasz", value=1.0)
    return ScalarIndex(name="calinski_harabasz", value=between * (n - kp) / (within * (kp - 1)))


def inertia(
    X: ArrayLike,
    labels: ArrayLike,
    centers: ArrayLike,
    sample_weight: ArrayLike | None = None,
) -> ScalarIndex:
    """Weighted sum of squared distances of the points to their centres.

    Parameters
    ----------
    X : array-like of shape (n, d)
    labels : array-like of shape (n,)
        Cluster index of each point, in ``[0, k)``.
    centers : array-like of shape (k, d)
    sample_weight : array-like of shape (n,) or None
        Non-negative weights; 1 for every point when None.

    Returns
    -------
    ScalarIndex
        ``name="inertia"``, ``value = sum_i w_i |x_i - c_{label_i}|^2``, in squared units of X.
    """
    owner = "inertia"
    Xa = check_array(X, name="X")
    C = check_centers(centers, Xa.shape[1], owner=owner)
    lab = check_labels(labels, Xa.shape[0], C.shape[0], owner=owner)
    w = check_sample_weight(sample_weight, Xa.shape[0], np.float64)
    sq = distances_to_own_center(Xa, lab, C, DEFAULT_WORKING_MEMORY_MIB)
    return ScalarIndex(name="inertia", value=float(np.dot(w, sq)))


def cluster_sizes(
    labels: ArrayLike, n_clusters: int, sample_weight: ArrayLike | None = None
) -> ClusterSizes:
    """How the points spread over the ``n_clusters`` clusters.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Cluster index of each point, in ``[0, n_clusters)``; at least one point.
    n_clusters : int
    sample_weight : array-like of shape (n,) or None
        When given, ``shares`` and ``cv`` use the weighted sizes; ``counts`` stay counts.

    Returns
    -------
    ClusterSizes
        ``counts`` (k,), ``shares`` (k,) summing to 1, ``cv`` = population standard
        deviation / mean of the (weighted) sizes, including empty clusters (0 means
        perfectly balanced), and ``n_empty`` the clusters with no point.
    """
    owner = "cluster_sizes"
    k = check_int(n_clusters, "n_clusters", low=1, owner=owner)
    lab = check_labels(labels, None, k, owner=owner)
    if lab.shape[0] == 0:
        raise InvalidInputError(
            "The 'labels' parameter of cluster_sizes must hold at least one label; got none."
        )
    w = check_sample_weight(sample_weight, lab.shape[0], np.float64)
    counts = np.bincount(lab, minlength=k)
    sizes = (
        None
        if sample_weight is None
        else np.bincount(lab, weights=w, minlength=k).astype(np.float64)
    )
    return _sizes(counts, sizes)


def sizes_from_counts(counts: ArrayLike) -> ClusterSizes:
    """``cluster_sizes`` from the points per cluster, as a distributed pass counts them.

    Parameters
    ----------
    counts : array-like of shape (k,)
        Non-negative points per cluster; at least one point in all.

    Returns
    -------
    ClusterSizes
        What ``cluster_sizes(labels, k)`` returns for labels with these counts.
    """
    c = _check_counts(counts, None, "sizes_from_counts")
    if c.sum() == 0:
        raise InvalidInputError(
            "The 'counts' parameter of sizes_from_counts must count at least one point; got none."
        )
    return _sizes(c, None)


def _sizes(counts: NDArray[Any], weighted: F64 | None) -> ClusterSizes:
    sizes = counts.astype(np.float64) if weighted is None else weighted
    k = counts.shape[0]
    total = float(sizes.sum())
    shares = sizes / total
    mean = total / k
    cv = float(np.sqrt(np.mean((sizes - mean) ** 2)) / mean)
    return ClusterSizes(
        counts=counts.astype(np.int64),
        shares=shares,
        cv=cv,
        n_empty=int(np.count_nonzero(counts == 0)),
    )


def simplified_from_sums(counts: ArrayLike, silhouette_sums: ArrayLike) -> Silhouette:
    """The simplified silhouette from per-cluster sums of the points' values ``s_i``.

    Parameters
    ----------
    counts : array-like of shape (k,)
        Points per cluster; at least one point in all.
    silhouette_sums : array-like of shape (k,)
        Per cluster, the sum of ``s_i = (b_i - a_i) / max(a_i, b_i)`` over its points.

    Returns
    -------
    Silhouette
        ``method="simplified"``, the mean over all points and per cluster; with one
        centre, a warning and ``defined=False`` as ``silhouette_simplified``.
    """
    owner = "simplified_from_sums"
    c = _check_counts(counts, None, owner)
    k = c.shape[0]
    sums = _check_sums(silhouette_sums, k, "silhouette_sums", owner)
    n = int(c.sum())
    if k < 2 or n == 0:
        warnings.warn(
            f"The simplified silhouette needs at least two centres and one point; got {k} "
            f"centre(s) and {n} point(s). Reporting 0.0 (undefined).",
            DegenerateDataWarning,
            stacklevel=2,
        )
        return Silhouette(
            score=0.0, per_cluster=np.zeros(k), n_points=n, method="simplified", defined=False
        )
    per_cluster = np.where(c > 0, sums / np.maximum(c, 1), 0.0)
    return Silhouette(
        score=float(sums.sum() / n), per_cluster=per_cluster, n_points=n, method="simplified"
    )


def _check_counts(counts: ArrayLike, k: int | None, owner: str) -> NDArray[np.int64]:
    arr = np.asarray(counts)
    if arr.ndim != 1 or (k is not None and arr.shape[0] != k) or arr.shape[0] == 0:
        raise InvalidInputError(
            f"The 'counts' parameter of {owner} must be a non-empty 1-D array"
            f"{'' if k is None else f' of length {k}'}; got an array of shape {arr.shape}."
        )
    if arr.dtype.kind not in "iu" or (arr < 0).any():
        raise InvalidInputError(
            f"The 'counts' parameter of {owner} must hold non-negative integers; got {arr!r}."
        )
    return arr.astype(np.int64)


def _centers_for(centers: ArrayLike, k: int, owner: str) -> F64:
    C = check_array(centers, name="centers", dtype=np.float64, rows="n_clusters")
    return check_centers(C, C.shape[1], n_clusters=k, owner=owner)


def _check_sums(sums: ArrayLike, k: int, name: str, owner: str) -> F64:
    arr = np.asarray(sums, dtype=np.float64)
    if arr.shape != (k,) or not np.isfinite(arr).all():
        raise InvalidInputError(
            f"The {name!r} parameter of {owner} must be {k} finite sums, one per cluster; "
            f"got an array of shape {arr.shape}."
        )
    return arr
