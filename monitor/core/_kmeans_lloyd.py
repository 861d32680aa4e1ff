"""Private numerics of k-means: inputs are already validated.

Everything here works on a ``Data`` bundle (the window, its weights and per-row
constants computed once) and walks the window in chunks whose size comes from the
working-memory budget, so no n x k matrix of the whole window ever exists.

Squared distances use ||x||^2 - 2 x.c + ||c||^2. The cross term is one GEMM per chunk
(``?gemm`` from scipy's BLAS with ``beta=1`` into a buffer pre-filled with ||c||^2, so
that adding the centre norms costs no extra pass); ||x||^2 is only added where a
distance, not just an argmin, is needed.

The cosine metric is spherical k-means on the L2-normalised rows, done without a
normalised copy of the window: with unit-norm centres, argmin_j ||x/|x| - c_j||^2 is
argmin_j (-2 x.c_j), and the spherical centre update sum_i w_i x_i/|x_i| is an ordinary
weighted sum with weights w_i/|x_i|.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.linalg import blas

from monitor.core._chunking import cache_rows, iter_slices

Float = NDArray[np.floating[Any]]
F64 = NDArray[np.float64]
Int64 = NDArray[np.int64]
_T = TypeVar("_T")

# Fixed odd multipliers of the row hash (the canonical order); a constant, not a global RNG.
_HASH_SEED = 0x6B6D65616E73


@dataclass(frozen=True, eq=False)
class Data:
    """A validated window with the per-row constants every pass needs."""

    X: Float  # (n, d) float32 or float64, C-contiguous, never written to
    w: Float  # (n,) non-negative weights, same dtype as X
    cosine: bool
    xn: Float  # (n,) ||x||^2 (euclidean) or 1/||x|| (cosine)
    chunk: int  # rows per chunk for blocks of k columns
    working_memory_mib: float
    n_threads: int = 1  # threads over chunks (see Blocks.map)

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    def w_eff(self, s: slice) -> Float:
        """Weights of the centre update: w (euclidean) or w/|x| (cosine)."""
        return self.w[s] * self.xn[s] if self.cosine else self.w[s]


def _row_sq_norms(X: Float, working_memory_mib: float) -> Float:
    out = np.empty(X.shape[0], dtype=X.dtype)
    step = cache_rows(X.shape[0], X.shape[1] * X.itemsize, working_memory_mib)
    for s in iter_slices(X.shape[0], step):
        out[s] = np.einsum("ij,ij->i", X[s], X[s])
    return out


def _chunk_for(n: int, k: int, d: int, itemsize: int, working_memory_mib: float) -> int:
    # The (chunk, k) block (twice in float32: the block and its equality mask), the
    # labels and the chunk's share of the one-hot matrix.
    k_blocks = 2 * k if itemsize == 4 else k
    return cache_rows(n, (k_blocks + d) * itemsize + 32, working_memory_mib)


def prepare(
    X: Float,
    w: Float,
    *,
    cosine: bool,
    k: int,
    working_memory_mib: float,
    n_threads: int = 1,
) -> Data:
    sq = _row_sq_norms(X, working_memory_mib)
    xn: Float = (1.0 / np.sqrt(sq)).astype(X.dtype, copy=False) if cosine else sq
    # The chunk size must not depend on the thread count (it sets the order of the float
    # sums): each thread holds one chunk's blocks, so the budget is per thread.
    chunk = _chunk_for(X.shape[0], k, X.shape[1], X.itemsize, working_memory_mib)
    return Data(X, w, cosine, xn, chunk, working_memory_mib, n_threads)


# ------------------------------------------------------------------ distance blocks


def _gemm_for(dtype: np.dtype[Any]) -> Callable[..., Float]:
    return blas.dgemm if dtype == np.float64 else blas.sgemm


class Blocks:
    """Computes G = -2 X[s] C^T + fill, chunk by chunk, into reused buffers.

    ``fill`` is ||c||^2 (euclidean) or 0 (cosine). ``block`` returns the (m, k) view.
    float64 keeps it row-major and takes ``argmin`` along rows. float32 stores it
    centre-major, (k, m), where numpy's vertical reductions are several times faster
    than its per-row argmin: the minimum of each column, then its index as
    ``[0..k-1] . (G == min)`` with one small GEMM that also counts the ties, and a real
    argmin only for the columns with a tie (so ties still go to the lowest index).
    Measured: ~20 % less time per Lloyd iteration in float32, none in float64.

    One thread: scipy's ``?gemm`` with ``beta=1`` into a buffer pre-filled with ``fill``
    (no separate pass to add it). Several threads (``map``): numpy's matmul then ``+=``,
    because scipy's BLAS wrappers hold the GIL and numpy's release it. Both round the
    same way (-2 x.c is exact scaling, then one addition): identical results.
    """

    def __init__(self, data: Data, centers: Float, chunk: int | None = None) -> None:
        self.data = data
        self.chunk = data.chunk if chunk is None else chunk
        dtype = data.X.dtype
        self.C = np.asfortranarray(centers, dtype=dtype)
        self.k = k = centers.shape[0]
        if data.cosine:
            self.fill = np.zeros(k, dtype=dtype)
        else:
            self.fill = np.einsum("ij,ij->i", self.C, self.C).astype(dtype, copy=False)
        self.rows = min(self.chunk, max(1, data.n))
        self.vertical = dtype == np.float32
        self.threaded = data.n_threads > 1
        if self.threaded:
            self.C2 = np.ascontiguousarray(-2.0 * self.C)  # exact: a power of two
        if self.vertical:
            self.index_and_count = np.vstack([np.arange(k), np.ones(k)]).astype(np.float32)
        self.gemm = _gemm_for(dtype)
        self._local = threading.local()

    def _buffers(self) -> tuple[Float, Float | None]:
        """This thread's block buffer (and float32 equality mask), made on first use."""
        loc = self._local
        if not hasattr(loc, "buf"):
            dtype = self.data.X.dtype
            if self.threaded:
                loc.buf = np.empty(self.rows * self.k, dtype=dtype)
            else:
                # Fortran (rows, k) is C (k, rows); Fortran (k, rows) is C (rows, k).
                shape = (self.rows, self.k) if self.vertical else (self.k, self.rows)
                loc.buf = np.empty(shape, dtype=dtype, order="F")
            loc.eq = np.empty(self.rows * self.k, dtype=np.float32) if self.vertical else None
        return loc.buf, loc.eq

    def slices(self) -> list[slice]:
        return list(iter_slices(self.data.n, self.chunk))

    def map(self, fn: Callable[[slice], _T]) -> list[_T]:
        """``fn`` over every chunk, on ``n_threads`` threads; results in chunk order.

        ``fn`` writes only its own rows and returns what must be summed, so that the
        caller reduces in chunk order: the result does not depend on the thread count.
        """
        slices = self.slices()
        if not self.threaded or len(slices) == 1:
            return [fn(s) for s in slices]
        with ThreadPoolExecutor(min(self.data.n_threads, len(slices))) as pool:
            return list(pool.map(fn, slices))

    def block(self, s: slice) -> Float:
        """The (m, k) block G for the rows ``s`` (a view of this thread's buffer)."""
        m = s.stop - s.start
        buf, _ = self._buffers()
        if self.threaded:
            if self.vertical:
                GT = buf[: self.k * m].reshape(self.k, m)
                np.matmul(self.C2, self.data.X[s].T, out=GT)
                GT += self.fill[:, None]
                return GT.T
            G = buf[: m * self.k].reshape(m, self.k)
            np.matmul(self.data.X[s], self.C2.T, out=G)
            G += self.fill
            return G
        Xs = self.data.X[s].T  # (d, m), Fortran-contiguous: no copy for BLAS
        if self.vertical:
            G = buf[:m]
            G[...] = self.fill[None, :]
            return self.gemm(-2.0, Xs, self.C, beta=1.0, c=G, overwrite_c=1, trans_a=1, trans_b=1)
        Gt = buf[:, :m]
        Gt[...] = self.fill[:, None]
        return self.gemm(-2.0, self.C, Xs, beta=1.0, c=Gt, overwrite_c=1).T

    def nearest(self, s: slice, *, with_min: bool = True) -> tuple[Int64, Float | None]:
        """Index of the smallest G of each row of ``s`` (lowest on ties) and that G."""
        return self._nearest_in(self.block(s), with_min=with_min)

    def nearest_two(self, s: slice) -> tuple[Int64, Float, Float]:
        """``nearest`` and the second-smallest G of each row (inf when k = 1)."""
        G = self.block(s)
        lab, low = self._nearest_in(G, with_min=True)
        assert low is not None
        G[np.arange(G.shape[0]), lab] = np.inf  # the block is this thread's scratch
        return lab, low, G.min(axis=1)

    def _nearest_in(self, G: Float, *, with_min: bool) -> tuple[Int64, Float | None]:
        if not self.vertical:
            lab = G.argmin(axis=1)
            if not with_min:
                return lab, None
            return lab, np.take_along_axis(G, lab[:, None], axis=1)[:, 0]
        GT = G.T  # (k, m), C-contiguous
        low = np.minimum.reduce(GT, axis=0)
        eq_buf = self._buffers()[1]
        assert eq_buf is not None
        eq = eq_buf[: GT.size].reshape(GT.shape)
        np.equal(GT, low, out=eq, casting="unsafe")
        index, count = self.index_and_count @ eq
        lab = index.astype(np.int64)
        ties = np.flatnonzero(count != 1.0)
        if ties.size:
            lab[ties] = GT[:, ties].argmin(axis=0)
        return lab, low

    def to_sq_dist(self, s: slice, g: Float, *, clip: bool = True) -> Float:
        """Squared distances from G values of the rows ``s`` (``g`` is (m,) or (m, j)).

        ``clip=False`` leaves the tiny negatives of cancellation, for callers that only
        compare or sum the values against non-negative ones.
        """
        xn = self.data.xn[s]
        if g.ndim == 2:
            xn = xn[:, None]
        d2 = 2.0 + xn * g if self.data.cosine else xn + g
        return np.maximum(d2, 0.0, out=d2) if clip else d2


def assign(data: Data, centers: Float, *, chunk: int | None = None) -> tuple[Int64, Float]:
    """Labels and squared distances to the nearest centre for every row."""
    blocks = Blocks(data, centers, chunk)
    labels = np.empty(data.n, dtype=np.int64)
    sq = np.empty(data.n, dtype=data.X.dtype)

    def chunk_labels(s: slice) -> None:
        lab, g = blocks.nearest(s)
        assert g is not None
        labels[s] = lab
        sq[s] = blocks.to_sq_dist(s, g)

    blocks.map(chunk_labels)
    return labels, sq


def assign_second(data: Data, centers: Float) -> tuple[Int64, Float, Float]:
    """``assign``, plus the squared distance to the second-nearest centre (inf if k = 1)."""
    blocks = Blocks(data, centers)
    labels = np.empty(data.n, dtype=np.int64)
    sq = np.empty(data.n, dtype=data.X.dtype)
    second = np.full(data.n, np.inf, dtype=data.X.dtype)

    def chunk_labels(s: slice) -> None:
        lab, g, g2 = blocks.nearest_two(s)
        labels[s] = lab
        sq[s] = blocks.to_sq_dist(s, g)
        second[s] = blocks.to_sq_dist(s, g2)

    blocks.map(chunk_labels)
    return labels, sq, second


def _sq_dist_to(data: Data, centers: Float, labels: Int64) -> F64:
    """Squared distance of every row to the centre of its label, chunked (no GEMM)."""
    out = np.empty(data.n, dtype=np.float64)
    step = cache_rows(data.n, 2 * data.X.shape[1] * 8, data.working_memory_mib)
    for s in iter_slices(data.n, step):
        Xs = data.X[s].astype(np.float64)
        if data.cosine:
            Xs *= data.xn[s, None]
        diff = Xs - centers[labels[s]]
        out[s] = np.einsum("ij,ij->i", diff, diff)
    return out


def weighted_mean_var(data: Data) -> tuple[F64, F64]:
    """Weighted per-feature mean and variance of the rows (normalised rows for cosine),
    float64."""
    d = data.X.shape[1]
    step = cache_rows(data.n, 3 * d * 8, data.working_memory_mib)
    wsum = float(data.w.sum(dtype=np.float64))
    total = np.zeros(d)
    for s in iter_slices(data.n, step):
        Xs = data.X[s].astype(np.float64)
        if data.cosine:
            Xs *= data.xn[s, None]
        total += data.w[s].astype(np.float64) @ Xs
    mean = total / wsum
    acc = np.zeros(d)
    for s in iter_slices(data.n, step):
        Xs = data.X[s].astype(np.float64)
        if data.cosine:
            Xs *= data.xn[s, None]
        Xs -= mean
        acc += data.w[s].astype(np.float64) @ (Xs * Xs)
    return mean, acc / wsum


# ------------------------------------------------------------------ canonical order


def _row_keys(X: Float, working_memory_mib: float) -> NDArray[np.uint64]:
    """A 64-bit hash of each row's bytes: equal rows get equal keys, wherever they are.

    -0.0 is hashed as 0.0 (adding +0.0 turns one into the other): they are equal rows.
    """
    d = X.shape[1]
    word = np.uint64 if X.itemsize == 8 else np.uint32
    zero = X.dtype.type(0)
    mult = np.random.default_rng(_HASH_SEED).integers(
        1, 2**63, size=d, dtype=np.uint64, endpoint=False
    ) * np.uint64(2) + np.uint64(1)
    keys = np.empty(X.shape[0], dtype=np.uint64)
    step = cache_rows(X.shape[0], 2 * d * 8, working_memory_mib)
    for s in iter_slices(X.shape[0], step):
        # The addition makes the copy that the widening would make anyway (float64).
        words = (X[s] + zero).view(word).astype(np.uint64, copy=False)
        h = (words * mult).sum(axis=1, dtype=np.uint64)
        # splitmix64 finaliser: spreads the linear combination over all 64 bits.
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
        keys[s] = h
    return keys


@dataclass(frozen=True, eq=False)
class Canonical:
    """Positive-weight rows in an order that depends only on their values.

    Sampling by inverse CDF along this order picks the same *values* whatever the row
    order of the window, and a row of weight w the same as w copies of it: the fit is
    then invariant to row permutations and weights equal repetitions, for a given seed.
    """

    order: NDArray[np.intp]  # (n_pos,) row indices
    keys: NDArray[np.uint64]  # (n_pos,) sorted keys
    w: F64  # (n_pos,) weights in that order


def canonical(data: Data) -> Canonical:
    pos = np.flatnonzero(data.w > 0)
    keys = _row_keys(data.X, data.working_memory_mib)[pos]
    idx = np.argsort(keys, kind="stable")
    return Canonical(pos[idx], keys[idx], data.w[pos[idx]].astype(np.float64))


def count_distinct_keys(data: Data, canon: Canonical) -> int:
    """Distinct positive-weight rows (by hash; exact ``np.unique`` only when it matters)."""
    if canon.keys.size == 0:
        return 0
    return int(1 + np.count_nonzero(canon.keys[1:] != canon.keys[:-1]))


def count_distinct_rows(data: Data, canon: Canonical) -> int:
    return int(np.unique(data.X[canon.order], axis=0).shape[0])


def _sample_cdf(cum: F64, u: F64, order: NDArray[np.intp]) -> NDArray[np.intp]:
    pos = np.searchsorted(cum, u * cum[-1], side="right")
    return order[np.minimum(pos, order.size - 1)]


# ------------------------------------------------------------------ seeding


def _centre_rows(data: Data, idx: NDArray[np.intp]) -> Float:
    C = data.X[idx].astype(data.X.dtype, copy=True)
    if data.cosine:
        C *= data.xn[idx, None]
    return C


def greedy_kmeans_plusplus(
    data: Data,
    canon: Canonical,
    n_clusters: int,
    rng: np.random.Generator,
    n_local_trials: int,
) -> tuple[Float, NDArray[np.intp]]:
    """Greedy k-means++ (Arthur & Vassilvitskii 2007) with ``n_local_trials`` per centre."""
    d = data.X.shape[1]
    centers = np.empty((n_clusters, d), dtype=data.X.dtype)
    indices = np.empty(n_clusters, dtype=np.intp)
    cum_w = np.cumsum(canon.w)

    first = int(_sample_cdf(cum_w, rng.random(1), canon.order)[0])
    indices[0] = first
    centers[0] = _centre_rows(data, indices[:1])[0]
    # In X's dtype: only sampled from (cumsum in float64) and compared with.
    closest = np.empty(data.n, dtype=data.X.dtype)

    def first_d2(b: Blocks, s: slice) -> None:
        closest[s] = b.to_sq_dist(s, b.block(s)[:, 0])

    blocks = Blocks(data, centers[:1])
    blocks.map(partial(first_d2, blocks))

    # Keep every candidate's new D^2 when the (n, trials) array fits the budget, which
    # saves a second pass over the window for the chosen one.
    kept: Float | None = None
    if data.n * n_local_trials * data.X.itemsize <= data.working_memory_mib * 2**20:
        kept = np.empty((data.n, n_local_trials), dtype=data.X.dtype)

    def potentials(b: Blocks, s: slice) -> F64:
        d2 = b.to_sq_dist(s, b.block(s), clip=False)
        np.minimum(d2, closest[s, None], out=d2)
        if kept is not None:
            kept[s, : d2.shape[1]] = d2
        # Per chunk in X's dtype; the caller sums the chunks in float64.
        return (data.w[s] @ d2).astype(np.float64)

    def update_closest(b: Blocks, j: int, s: slice) -> None:
        d2 = b.to_sq_dist(s, b.block(s)[:, j])
        np.minimum(closest[s], d2, out=closest[s])

    for c in range(1, n_clusters):
        cum = np.cumsum(canon.w * closest.take(canon.order), dtype=np.float64)
        if not cum[-1] > 0.0:
            # Every positive-weight row sits on a centre: fewer distinct rows than
            # clusters. The remaining centres repeat rows drawn by weight (D^2 stays 0).
            best = int(_sample_cdf(cum_w, rng.random(1), canon.order)[0])
        else:
            cand = _sample_cdf(cum, rng.random(n_local_trials), canon.order)
            blocks = Blocks(data, _centre_rows(data, cand))
            pots = np.zeros(cand.size)
            for part in blocks.map(partial(potentials, blocks)):
                pots += part
            j = int(np.argmin(pots))
            best = int(cand[j])
            if kept is not None:
                np.maximum(kept[:, j], 0.0, out=closest)
            else:
                # Same candidate block as above, so the same rounding as ``kept``.
                blocks.map(partial(update_closest, blocks, j))
        indices[c] = best
        centers[c] = _centre_rows(data, np.array([best]))[0]
    return centers, indices


def draw_sample(
    data: Data, canon: Canonical, rng: np.random.Generator, rows: int, k: int
) -> tuple[Data, Canonical] | None:
    """``rows`` rows drawn with replacement by weight, as a Data in value order.

    A row drawn ``c`` times carries weight ``c``, so the sample's weighted distribution
    is an unbiased estimate of the window's. The draw walks the value order and the
    sample keeps it, so neither depends on the row order of the window; the sample's
    own Canonical is that order (``canon``'s keys, not a hash of the sample's rows,
    which ``canon`` may not have been computed on: the fit hashes rows before centring
    them). None when the window has no more positive-weight rows than ``rows`` (seed
    on all of it).
    """
    if data.n <= rows or canon.order.size <= rows:
        return None
    cum = np.cumsum(canon.w)
    at = np.minimum(np.searchsorted(cum, rng.random(rows) * cum[-1], side="right"), cum.size - 1)
    positions, counts = np.unique(at, return_counts=True)
    sub = prepare(
        np.ascontiguousarray(data.X[canon.order[positions]]),
        counts.astype(data.X.dtype),
        cosine=data.cosine,
        k=k,
        working_memory_mib=data.working_memory_mib,
        n_threads=data.n_threads,
    )
    order = np.arange(positions.size, dtype=np.intp)
    return sub, Canonical(order, canon.keys[positions], counts.astype(np.float64))


def sampled_seeding(
    data: Data,
    canon: Canonical,
    n_clusters: int,
    rng: np.random.Generator,
    *,
    n_local_trials: int,
    sample_rows: int,
    polish: Callable[[Data, Float], LloydResult],
    n_seedings: int,
) -> Float | None:
    """Starting centres from greedy k-means++ on a sample, polished by Lloyd on it.

    ``n_seedings`` greedy seedings (``n_local_trials`` candidates per centre) each run
    to convergence on the sample with ``polish``; the one of lowest sample inertia wins.
    A single seeding misses a well-separated cluster often enough to cost ~10 % of
    inertia after Lloyd (docs/benchmarks.md, issue 12), and on a sample both the extra
    trials and the extra seeding are cheap next to one pass over the window. None when
    the window is to be seeded whole: no larger than the sample, or too few distinct
    rows drawn.
    """
    drawn = draw_sample(data, canon, rng, sample_rows, n_clusters)
    if drawn is None:
        return None
    sub, sub_canon = drawn
    if sub_canon.order.size < n_clusters:
        return None
    best: LloydResult | None = None
    for _ in range(n_seedings):
        centers, _ = greedy_kmeans_plusplus(sub, sub_canon, n_clusters, rng, n_local_trials)
        res = polish(sub, centers)
        if best is None or res.inertia < best.inertia:
            best = res
    assert best is not None
    return best.centers


def random_init(
    data: Data, canon: Canonical, n_clusters: int, rng: np.random.Generator
) -> tuple[Float, NDArray[np.intp]]:
    """k distinct rows drawn without replacement, with probability proportional to weight."""
    # Efraimidis-Spirakis keys u^(1/w), drawn along the canonical order.
    u = rng.random(canon.order.size)
    keys = np.log(np.maximum(u, np.finfo(np.float64).tiny)) / canon.w
    take = np.argsort(-keys, kind="stable")[:n_clusters]
    idx = canon.order[take]
    if idx.size < n_clusters:
        # Fewer positive-weight rows than clusters: repeat rows, drawn by weight.
        extra = _sample_cdf(np.cumsum(canon.w), rng.random(n_clusters - idx.size), canon.order)
        idx = np.concatenate([idx, extra])
    return _centre_rows(data, idx), idx


# ------------------------------------------------------------------ Lloyd


@dataclass(frozen=True, eq=False)
class LloydResult:
    centers: Float
    labels: Int64
    sq_distances: Float
    inertia: float
    n_iter: int
    converged: bool
    n_relocated: int


def _accumulate(
    data: Data,
    blocks: Blocks,
    labels: Int64,
    prev: Int64,
    sums: F64,
    wsum: F64,
    *,
    full: bool,
) -> None:
    """One E-step into ``labels``; brings the per-cluster sums and weights up to date.

    ``sums`` (k, d) holds the weighted sums of the clusters of ``prev``. With ``full``
    they are recomputed chunk by chunk during the E-step; otherwise, after it, only the
    rows whose label changed move their weight from the old cluster to the new one,
    which after the first iterations is a small fraction of the window (one sparse
    product instead of one per chunk). ``wsum`` is always recomputed (one bincount), so
    that an empty cluster has exactly zero weight. Sums are float64 across chunks.
    """
    k = blocks.k

    def chunk_step(s: slice) -> Float | None:
        lab = blocks.nearest(s, with_min=False)[0]
        labels[s] = lab
        if not full:
            return None
        # (k, m) one-hot matrix in CSC form: one product sums each cluster's rows.
        m = lab.shape[0]
        onehot = sparse.csc_array((data.w_eff(s), lab, np.arange(m + 1)), shape=(k, m))
        return onehot @ data.X[s]

    parts = blocks.map(chunk_step)
    we = data.w_eff(slice(None))
    wsum[...] = np.bincount(labels, weights=we, minlength=k)
    if full:
        sums[...] = 0.0
        for part in parts:  # in chunk order: the same sums for any thread count
            assert part is not None
            sums += part
        return
    moved = np.flatnonzero(labels != prev)
    for piece in iter_slices(moved.size, data.chunk):  # bounded gathers of moved rows
        rows = moved[piece]
        nm = rows.size
        wm = we[rows]
        clusters = np.empty(2 * nm, dtype=np.int64)
        clusters[0::2] = labels[rows]
        clusters[1::2] = prev[rows]
        vals = np.empty(2 * nm, dtype=we.dtype)
        vals[0::2] = wm
        vals[1::2] = -wm
        delta = sparse.csc_array((vals, clusters, np.arange(0, 2 * nm + 1, 2)), shape=(k, nm))
        sums += delta @ data.X[rows]


def relocate_empty(
    data: Data,
    centers: Float,
    labels: Int64,
    sums: F64,
    wsum: F64,
) -> int:
    """Move empty clusters onto the rows farthest from their centres; return how many moved.

    Rows at distance 0 are never used: a centre put there would duplicate another, and
    the cluster would be empty again (this is the case of too few distinct rows).
    """
    empty = np.flatnonzero(wsum <= 0)
    if empty.size == 0:
        return 0
    d2 = _sq_dist_to(data, centers.astype(np.float64), labels)
    d2[data.w <= 0] = -1.0
    n_take = min(empty.size, data.n)
    cand = np.argpartition(d2, data.n - n_take)[data.n - n_take :]
    # Farthest first, ties by row index, so the choice does not depend on argpartition.
    cand = cand[np.lexsort((cand, -d2[cand]))]
    moved = 0
    for cluster, row in zip(empty, cand, strict=False):
        if d2[row] <= 0.0:
            break
        we = float(data.w_eff(slice(row, row + 1))[0])
        x = data.X[row].astype(np.float64)
        old = labels[row]
        sums[old] -= we * x
        wsum[old] -= we
        sums[cluster] = we * x
        wsum[cluster] = we
        moved += 1
    return moved


def _update_centers(data: Data, sums: F64, wsum: F64, old: Float) -> Float:
    new = old.astype(np.float64, copy=True)
    full = wsum > 0
    if data.cosine:
        norms = np.sqrt(np.einsum("ij,ij->i", sums, sums))
        ok = full & (norms > 0)
        new[ok] = sums[ok] / norms[ok, None]
    else:
        new[full] = sums[full] / wsum[full, None]
    return new.astype(data.X.dtype, copy=False)


def _totals_of(data: Data, labels: Int64, sums: F64, wsum: F64) -> None:
    """Per-cluster weighted sums and weights of given labels, chunk by chunk, in place."""
    k = sums.shape[0]
    sums[...] = 0.0
    for s in iter_slices(data.n, data.chunk):
        m = s.stop - s.start
        onehot = sparse.csc_array((data.w_eff(s), labels[s], np.arange(m + 1)), shape=(k, m))
        sums += onehot @ data.X[s]
    wsum[...] = np.bincount(labels, weights=data.w_eff(slice(None)), minlength=k)


def lloyd(
    data: Data,
    centers_init: Float,
    *,
    max_iter: int,
    tol: float,
    init_labels: Int64 | None = None,
) -> LloydResult:
    """Lloyd iterations as scikit-learn's ``algorithm="lloyd"`` defines them.

    Stops when the labels of two consecutive E-steps are equal (strict convergence) or
    when the total squared centre shift is at most ``tol`` (already absolute). Ends with
    an E-step against the final centres, so labels and centres are always consistent.
    ``init_labels``, the nearest centre of every row under ``centers_init`` (as an
    earlier assignment found it), stands in for the first E-step.
    """
    centers = np.array(centers_init, dtype=data.X.dtype, order="C", copy=True)
    labels = np.full(data.n, -1, dtype=np.int64)
    labels_old = labels.copy()
    converged = False
    n_relocated = 0
    n_iter = 0
    sums = np.zeros((centers.shape[0], data.X.shape[1]))
    wsum = np.zeros(centers.shape[0])
    full = True
    for i in range(max_iter):
        n_iter = i + 1
        if i == 0 and init_labels is not None:
            labels[...] = init_labels
            _totals_of(data, labels, sums, wsum)
        else:
            _accumulate(data, Blocks(data, centers), labels, labels_old, sums, wsum, full=full)
        moved = relocate_empty(data, centers, labels, sums, wsum)
        n_relocated += moved
        # Relocation edits the sums without relabelling: start afresh next time.
        full = moved > 0
        new = _update_centers(data, sums, wsum, centers)
        diff = new.astype(np.float64) - centers
        shift = float(np.einsum("ij,ij->", diff, diff))
        centers = new
        if np.array_equal(labels, labels_old):
            converged = True
            break
        if shift <= tol:
            converged = True
            break
        labels, labels_old = labels_old, labels
    labels, sq = assign(data, centers)
    inertia = float(data.w.astype(np.float64) @ sq.astype(np.float64))
    return LloydResult(centers, labels, sq, inertia, n_iter, converged, n_relocated)


# ------------------------------------------------------------------ mini-batch


def minibatch_step(
    X: Float,
    w: Float,
    centers: F64,
    counts: F64,
    *,
    cosine: bool,
    working_memory_mib: float,
) -> float:
    """One Sculley (2010) step on a batch, in place; returns the batch's weighted inertia.

    Each centre moves to the running weighted mean of every row it was ever given: with
    per-centre counts v_j, eta = 1/v_j per row, which for a whole batch is
    c_j <- (v_j c_j + sum_i w_i x_i) / (v_j + sum_i w_i).
    """
    k = centers.shape[0]
    data = prepare(X, w, cosine=cosine, k=k, working_memory_mib=working_memory_mib)
    labels, sq = assign(data, centers.astype(X.dtype))
    we = (w * data.xn) if cosine else w
    onehot = sparse.csc_array(
        (we.astype(np.float64), labels, np.arange(X.shape[0] + 1)), shape=(k, X.shape[0])
    )
    sums = onehot @ X.astype(np.float64, copy=False)
    bw = np.bincount(labels, weights=we.astype(np.float64), minlength=k)
    hit = bw > 0
    new_counts = counts + bw
    centers[hit] = (centers[hit] * counts[hit, None] + sums[hit]) / new_counts[hit, None]
    counts[:] = new_counts
    if cosine:
        norms = np.sqrt(np.einsum("ij,ij->i", centers[hit], centers[hit]))
        ok = norms > 0
        rows = np.flatnonzero(hit)[ok]
        centers[rows] /= norms[ok, None]
    return float(w.astype(np.float64) @ sq.astype(np.float64))
