"""The compiled k-means engine: numba kernels, fused per chunk, run on the engine's threads.

Inputs are validated already (see ``_kmeans_fit``); only the Euclidean metric runs here
(cosine stays on the numpy engine). numba is optional (extra ``fast``): without it
``AVAILABLE`` is False and the numpy engine of ``_kmeans_lloyd`` does everything.

One kernel call handles one chunk of rows and does everything a chunk needs in one
visit: the distance block (one GEMM per sub-block through BLAS), the nearest and second
nearest centre as a running minimum over centre-major rows, the Hamerly bounds, and the
chunk's own partial cluster sums. Kernels release the GIL (``nogil``), so the engine's
thread pool runs chunks side by side; partial sums come back per chunk and are added in
chunk order, and the chunk size does not depend on the thread count, so the result is
the same for any ``n_threads``.

Hamerly (2010), "Making k-means even faster": each row keeps an upper bound ``u`` on the
distance to its own centre and a lower bound ``l`` on the distance to any other. After
the centres move by ``delta``, ``u += delta[own]`` and ``l -= max(delta[other])``; a row
whose ``u`` is at most ``max(l, s[own])`` (``s`` half the distance from its centre to the
nearest other centre) cannot change cluster and is skipped. Otherwise ``u`` is tightened
to the exact distance and, if that does not settle it, the row is scanned against all
centres. The labels are those of plain Lloyd: only work that cannot change an
assignment is skipped. Bounds are kept in float64 and widened by the rounding of the
distance expansion, so that rounding can only cause an extra scan, never a skip. When
the bounds leave most rows to scan (overlapping clusters), a few E-steps scan every row
without them (``_next_bounded``, waiting longer after each failure in a row); those scans
skip the second-nearest pass and the bounds, except the last before bounds are tried.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.core._chunking import iter_slices
from monitor.core._numba import AVAILABLE
from monitor.core._numba import jit as _jit

__all__ = [
    "AVAILABLE",
    "CHUNK_ROWS",
    "Engine",
    "FastResult",
    "fast_assign",
    "fast_cluster_sums",
    "fast_lloyd",
    "fast_mean_var",
    "warm_up",
]

Float = NDArray[np.floating[Any]]
F64 = NDArray[np.float64]
Int64 = NDArray[np.int64]

# Rows per task. Large enough that a task's fixed cost (a kernel call, its (k, d)
# partial sums) is small next to its work, small enough that two threads get many
# tasks each and a late one does not hold the other up; it must not depend on the
# thread count (it sets the order of the float sums).
CHUNK_ROWS = 16384
# Rows per GEMM inside a chunk: as many as keep the (k, rows) distance block within
# BLOCK_BYTES (well inside any current x86 core's L2), between 256 and 1024. Longer
# blocks amortise BLAS's per-call packing: at k = 64, float32, one scan of 200 000 x 32
# took 12.8-15.3 ms in 1024-row blocks against 17.1-22.4 ms in 256-row ones (medians of
# 15, docs/benchmarks.md).
BLOCK_BYTES = 1 << 18
MIN_BLOCK_ROWS, MAX_BLOCK_ROWS = 256, 1024
# Above this share of rows scanned, the bounds cost more than they save: that many
# E-steps scan every row before the bounds are tried again.
FULL_SCAN_SHARE = 0.5
FULL_SCAN_RUN = 4
MAX_BACKOFF = 2


# ------------------------------------------------------------------ kernels


@_jit
def _scan_block(XB, C2, csq, G, lab, best, nxt, m, second):  # type: ignore[no-untyped-def]
    """Nearest (and, if ``second``, second nearest) centre of the ``m`` rows of ``XB``.

    ``G[c, i] = -2 x_i.c`` is one BLAS product, centre-major so that every loop below
    runs along rows and vectorises; ``||c||^2`` is added in X's dtype as each value is
    read, and the running minimum is kept with selects, not branches (LLVM vectorises
    selects; a branch that stores an index compiled to masked stores, about 10x slower
    per element). Only a strictly smaller value replaces the running one, so ``lab``
    gets the lowest index holding the minimum (numpy's argmin on ties). ``best``/``nxt``
    get ``||c||^2 - 2 x.c`` of the nearest centre and of the nearest other centre (the
    same value as ``best`` when two centres tie).
    """
    k = C2.shape[0]
    np.dot(C2, XB.T, G)
    cc = csq[0]
    for i in range(m):
        best[i] = G[0, i] + cc
        lab[i] = 0
        nxt[i] = np.inf
    for c in range(1, k):
        cc = csq[c]
        ci = np.int32(c)
        if second:
            for i in range(m):
                g = G[c, i] + cc
                b = best[i]
                n = nxt[i]
                nxt[i] = b if g < b else (g if g < n else n)
                lab[i] = ci if g < b else lab[i]
                best[i] = g if g < b else b
        else:
            for i in range(m):
                g = G[c, i] + cc
                b = best[i]
                lab[i] = ci if g < b else lab[i]
                best[i] = g if g < b else b


@_jit
def _block_rows(k, itemsize):  # type: ignore[no-untyped-def]
    """Rows per GEMM for ``k`` centres of ``itemsize``-byte floats (see BLOCK_BYTES)."""
    return min(max(BLOCK_BYTES // (k * itemsize), MIN_BLOCK_ROWS), MAX_BLOCK_ROWS)


@_jit
def _sq_to(X, i, C, a):  # type: ignore[no-untyped-def]
    """Exact squared distance of row ``i`` to centre ``a``, by differences, in float64."""
    acc = 0.0
    for j in range(X.shape[1]):
        t = np.float64(X[i, j]) - np.float64(C[a, j])
        acc += t * t
    return acc


@_jit
def _scan_rows(  # type: ignore[no-untyped-def]
    X, rows, nrows, start, gather, C2, csq, xn, slack, labels, upper, lower, bounds
):
    """Full scan of ``rows[:nrows]`` (or, without ``gather``, of ``start:start + nrows``):
    labels and, if ``bounds``, the bounds widened by ``slack``. Without ``bounds`` the
    second nearest centre is not tracked and the bounds go stale: for E-steps whose
    successor scans every row anyway. Returns how many labels changed."""
    changed = 0
    if nrows == 0:
        return changed
    k, d = C2.shape
    m_blk = min(_block_rows(k, X.itemsize), nrows)
    XB = np.empty((m_blk, d), dtype=X.dtype)
    G = np.empty((k, m_blk), dtype=X.dtype)
    lab = np.empty(m_blk, dtype=np.int32)
    best = np.empty(m_blk, dtype=X.dtype)
    second = np.empty(m_blk, dtype=X.dtype)
    for s in range(0, nrows, m_blk):
        m = min(m_blk, nrows - s)
        if m < m_blk:  # the last, short block: exact shapes for BLAS
            XB = np.empty((m, d), dtype=X.dtype)
            G = np.empty((k, m), dtype=X.dtype)
        if gather:
            for r in range(m):
                src = rows[s + r]
                for j in range(d):
                    XB[r, j] = X[src, j]
            _scan_block(XB, C2, csq, G, lab, best, second, m, bounds)
        else:
            _scan_block(X[start + s : start + s + m], C2, csq, G, lab, best, second, m, bounds)
        for r in range(m):
            i = rows[s + r] if gather else start + s + r
            changed += labels[i] != lab[r]
            labels[i] = lab[r]
        if not bounds:
            continue
        for r in range(m):
            i = rows[s + r] if gather else start + s + r
            xi = np.float64(xn[i])
            upper[i] = np.sqrt(max(xi + np.float64(best[r]), 0.0) + slack[i])
            lower[i] = np.sqrt(max(xi + np.float64(second[r]) - slack[i], 0.0)) if k > 1 else np.inf
    return changed


@_jit
def _adopt_chunk(  # type: ignore[no-untyped-def]
    X, w, start, stop, C, half, slack, labels, upper, lower, sums, wsums, counts
):
    """Take ``labels`` as the first E-step's: bounds and totals of rows ``start:stop``.

    The upper bound is the exact distance to the own centre. Any other centre is at
    least ``2 s - u`` away (triangle inequality, ``s`` half the distance from the own
    centre to its nearest other centre), which is the lower bound.
    """
    for i in range(start, stop):
        a = labels[i]
        u = np.sqrt(_sq_to(X, i, C, a) + slack[i])
        upper[i] = u
        lower[i] = max(2.0 * half[a] - u, 0.0)
    _add_rows(X, w, start, stop, labels, sums, wsums, counts)


@_jit
def _assign_chunk(X, start, stop, C2, csq, xn, labels, sq, second):  # type: ignore[no-untyped-def]
    """Nearest centre and squared distance (clipped at 0) of rows ``start:stop``, and,
    when ``second`` is not empty, the squared distance to the second-nearest centre."""
    k = C2.shape[0]
    m_blk = min(_block_rows(k, X.itemsize), stop - start)
    G = np.empty((k, m_blk), dtype=X.dtype)
    lab = np.empty(m_blk, dtype=np.int32)
    best = np.empty(m_blk, dtype=X.dtype)
    nxt = np.empty(m_blk, dtype=X.dtype)
    for s in range(start, stop, m_blk):
        m = min(m_blk, stop - s)
        if m < m_blk:
            G = np.empty((k, m), dtype=X.dtype)
        _scan_block(X[s : s + m], C2, csq, G, lab, best, nxt, m, second.shape[0] > 0)
        for r in range(m):
            labels[s + r] = lab[r]
            sq[s + r] = max(np.float64(xn[s + r]) + np.float64(best[r]), 0.0)
        if second.shape[0] and k > 1:
            for r in range(m):
                second[s + r] = max(np.float64(xn[s + r]) + np.float64(nxt[r]), 0.0)


@_jit
def _estep_chunk(  # type: ignore[no-untyped-def]
    X,
    w,
    start,
    stop,
    C,
    C2,
    csq,
    xn,
    slack,
    shift,
    other,
    half,
    first,
    bounds,
    labels,
    upper,
    lower,
    sums,
    wsums,
    counts,
):
    """One E-step of Lloyd on rows ``start:stop`` with Hamerly's bounds.

    ``first``: scan every row and add it to ``sums``/``wsums``/``counts`` (weighted rows,
    weights, rows of positive weight), leaving the bounds stale unless ``bounds``;
    otherwise move only the rows whose cluster changes (they leave one cluster's totals
    and join another's).
    Returns the number of rows that changed cluster and the number scanned.
    """
    if first:
        no_rows = np.empty(0, dtype=np.int64)  # rows start:stop, in place
        moved = _scan_rows(
            X, no_rows, stop - start, start, False, C2, csq, xn, slack, labels, upper, lower,
            bounds,
        )  # fmt: skip
        _add_rows(X, w, start, stop, labels, sums, wsums, counts)
        return moved, stop - start
    rows = np.empty(stop - start, dtype=np.int64)
    old = np.empty(stop - start, dtype=np.int64)
    n_scan = 0
    for i in range(start, stop):
        a = labels[i]
        u = upper[i] + shift[a]
        lo = lower[i] - other[a]
        lower[i] = lo
        z = max(lo, half[a])
        if u > z:
            u = np.sqrt(_sq_to(X, i, C, a) + slack[i])
            if u > z:
                rows[n_scan] = i
                old[n_scan] = a
                n_scan += 1
        upper[i] = u
    _scan_rows(X, rows, n_scan, start, True, C2, csq, xn, slack, labels, upper, lower, True)
    return _move_rows(X, w, rows, old, n_scan, labels, sums, wsums, counts), n_scan


@_jit
def _add_rows(X, w, start, stop, labels, sums, wsums, counts):  # type: ignore[no-untyped-def]
    """Add rows ``start:stop`` to their clusters' totals (weighted sums, weights, rows of
    positive weight)."""
    d = X.shape[1]
    for i in range(start, stop):
        a = labels[i]
        wi = np.float64(w[i])
        if wi <= 0.0:
            continue
        counts[a] += 1
        wsums[a] += wi
        for j in range(d):
            sums[a, j] += wi * X[i, j]


@_jit
def _move_rows(X, w, rows, old, n_scan, labels, sums, wsums, counts):  # type: ignore[no-untyped-def]
    """Bring the cluster totals up to date with the scanned rows; return how many moved.

    A row that changed cluster leaves its old cluster's totals and joins the new one's.
    """
    moved = 0
    d = X.shape[1]
    for r in range(n_scan):
        i = rows[r]
        new = labels[i]
        a = old[r]
        if new == a:
            continue
        moved += 1
        wi = np.float64(w[i])
        if wi <= 0.0:
            continue
        counts[new] += 1
        wsums[new] += wi
        counts[a] -= 1
        wsums[a] -= wi
        for j in range(d):
            sums[new, j] += wi * X[i, j]
            sums[a, j] -= wi * X[i, j]
    return moved


# ------------------------------------------------------------------ drivers


class Engine:
    """The threads of one fit or assignment, sized by ``n_threads`` and closed with it.

    Owned by the call that makes it (``with Engine(n) as eng``): no pool outlives a
    fit, and nothing is shared between concurrent fits, so the daemon's models can run
    side by side.
    """

    def __init__(self, n_threads: int) -> None:
        self.n_threads = n_threads
        self._pool = ThreadPoolExecutor(n_threads) if n_threads > 1 else None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def map(self, fn: Callable[[slice], Any], n: int) -> list[Any]:
        """``fn`` over the chunks of ``range(n)``, results in chunk order."""
        slices = list(iter_slices(n, CHUNK_ROWS))
        if self._pool is None or len(slices) == 1:
            return [fn(s) for s in slices]
        return list(self._pool.map(fn, slices))


def half_separation(C: F64) -> F64:
    """Half the distance from each centre to its nearest other centre, shape (k,).

    Rounded down: the expansion's rounding (a few eps of ``||c||^2 + ||c'||^2``) is
    taken off, since an overestimate could skip a row that must move.
    """
    sq = np.einsum("ij,ij->i", C, C)
    total = sq[:, None] + sq[None, :]
    D2 = total - 2.0 * (C @ C.T) - 8.0 * np.finfo(np.float64).eps * total
    np.fill_diagonal(D2, np.inf)
    return 0.5 * np.sqrt(np.maximum(D2.min(axis=1), 0.0))


def _slack(X: Float, xn: Float, C: Float) -> F64:
    """Per-row widening of the bounds (squared units) for the expansion's rounding.

    ``||x||^2 - 2 x.c + ||c||^2`` loses up to a few units of ``eps`` of the larger of
    ``||x||^2`` and ``||c||^2`` to cancellation (the GEMM sums d products); a margin of
    ``4 (d + 2) eps`` of their sum covers it with room to spare.
    """
    eps = float(np.finfo(X.dtype).eps)
    c_max = float(np.max(np.einsum("ij,ij->i", C, C))) if C.size else 0.0
    return (4.0 * (X.shape[1] + 2) * eps) * (xn.astype(np.float64) + c_max)


@dataclass(eq=False)
class _State:
    """What the E-steps of one fit carry from one iteration to the next."""

    labels: Int64
    upper: F64
    lower: F64
    slack: F64


def fast_assign(
    X: Float, xn: Float, centers: Float, n_threads: int, *, with_second: bool = False
) -> tuple[Int64, Float, Float]:
    """Labels and squared distances (clipped at 0), as ``_kmeans_lloyd.assign``.

    Parameters
    ----------
    X : ndarray of shape (n, d), float32 or float64, C-contiguous
    xn : ndarray of shape (n,)
        ``||x||^2`` of each row, in X's dtype.
    centers : ndarray of shape (k, d), in X's dtype
    n_threads : int
    with_second : bool
        Also return the squared distance to the second-nearest centre, shape (n,) (inf
        when k = 1); otherwise that array is empty.
    """
    n = X.shape[0]
    C = np.ascontiguousarray(centers, dtype=X.dtype)
    C2 = np.ascontiguousarray(-2.0 * C)  # exact: a power of two
    csq = np.einsum("ij,ij->i", C, C).astype(X.dtype)
    labels = np.empty(n, dtype=np.int64)
    sq = np.empty(n, dtype=X.dtype)
    second = np.full(n if with_second else 0, np.inf, dtype=X.dtype)
    with Engine(n_threads) as eng:
        eng.map(lambda s: _assign_chunk(X, s.start, s.stop, C2, csq, xn, labels, sq, second), n)
    return labels, sq, second


@dataclass(eq=False)
class Totals:
    """Per-cluster totals of the current labels: weighted sums, weights, positive rows."""

    sums: F64  # (k, d)
    wsum: F64  # (k,)
    counts: Int64  # (k,) rows of positive weight; 0 means empty, exactly

    def add(self, other: Totals) -> None:
        self.sums += other.sums
        self.wsum += other.wsum
        self.counts += other.counts

    def clear_empty(self) -> None:
        """Clusters without a row of positive weight hold exactly nothing."""
        empty = self.counts == 0
        self.sums[empty] = 0.0
        self.wsum[empty] = 0.0


@_jit
def _moment_chunk(X, w, start, stop, centre, power, out):  # type: ignore[no-untyped-def]
    """Add ``sum_i w_i (x_ij - centre_j)^power`` over rows ``start:stop`` to ``out[j]``
    (``power`` 1 or 2), in float64."""
    d = X.shape[1]
    if power == 1:  # two loops, not a test per element
        for i in range(start, stop):
            wi = np.float64(w[i])
            for j in range(d):
                out[j] += wi * (np.float64(X[i, j]) - centre[j])
        return
    for i in range(start, stop):
        wi = np.float64(w[i])
        for j in range(d):
            t = np.float64(X[i, j]) - centre[j]
            out[j] += wi * (t * t)


def fast_mean_var(X: Float, w: Float, n_threads: int) -> tuple[F64, F64]:
    """Weighted per-feature mean and variance of the rows, float64, as
    ``_kmeans_lloyd.weighted_mean_var`` (the mean first, then the centred squares; the
    same up to the order of the float sums), on the engine's threads. Partial sums are
    added in chunk order, so the result does not depend on ``n_threads``."""
    d = X.shape[1]
    wsum = float(w.sum(dtype=np.float64))

    def moment(centre: F64, power: int, eng: Engine) -> F64:
        def chunk(s: slice) -> F64:
            out = np.zeros(d)
            _moment_chunk(X, w, s.start, s.stop, centre, power, out)
            return out

        total = np.zeros(d)
        for part in eng.map(chunk, X.shape[0]):
            total += part
        return total

    with Engine(n_threads) as eng:
        mean = moment(np.zeros(d), 1, eng) / wsum
        return mean, moment(mean, 2, eng) / wsum


def fast_cluster_sums(X: Float, labels: Int64, k: int, n_threads: int) -> F64:
    """Per-cluster column sums of ``X``, shape (k, d), float64, on the engine's threads.

    Each chunk's rows are added in row order and the chunks' sums in chunk order, so the
    result does not depend on ``n_threads``; on one chunk it is the row-order sum.
    """
    d = X.shape[1]
    ones = np.ones(X.shape[0], dtype=X.dtype)  # unit weights: the sums of the fit's E-step

    def chunk(s: slice) -> F64:
        part = np.zeros((k, d))
        _add_rows(X, ones, s.start, s.stop, labels, part, np.zeros(k), np.zeros(k, np.int64))
        return part

    total = np.zeros((k, d))
    with Engine(n_threads) as eng:
        for part in eng.map(chunk, X.shape[0]):
            total += part
    return total


@dataclass(frozen=True, eq=False)
class FastResult:
    """What ``fast_lloyd`` hands back: the fitted centres and the last E-step's labels."""

    centers: Float
    labels: Int64
    sq_distances: Float
    n_iter: int
    converged: bool
    n_relocated: int


def _shifts(C: Float, prev_C: Float) -> tuple[F64, F64]:
    """How far each centre moved, and the largest move among the *other* centres."""
    shift = np.sqrt(((C.astype(np.float64) - prev_C.astype(np.float64)) ** 2).sum(axis=1))
    top = int(np.argmax(shift))
    other = np.full(shift.shape[0], shift[top])
    rest = np.delete(shift, top)
    other[top] = rest.max() if rest.size else 0.0
    return shift, other


def _estep(
    eng: Engine,
    X: Float,
    w: Float,
    xn: Float,
    C: Float,
    prev_C: Float | None,
    st: _State,
    bounds: bool = True,
) -> tuple[Totals, int, int]:
    """One E-step over every chunk: the totals (or their changes), rows moved and scanned.

    ``prev_C`` None is a first E-step: every row is scanned and the totals are built
    from nothing, with the bounds only if ``bounds`` (the next E-step uses them).
    Otherwise the totals returned are the changes to add to the old ones.
    """
    k, d = C.shape
    first = prev_C is None
    shift, other = (np.zeros(k), np.zeros(k)) if prev_C is None else _shifts(C, prev_C)
    half = half_separation(C.astype(np.float64))
    C2 = np.ascontiguousarray(-2.0 * C)
    csq = np.einsum("ij,ij->i", C, C).astype(X.dtype)

    def chunk(s: slice) -> tuple[Totals, int, int]:
        part = Totals(np.zeros((k, d)), np.zeros(k), np.zeros(k, dtype=np.int64))
        moved, scanned = _estep_chunk(
            X, w, s.start, s.stop, C, C2, csq, xn, st.slack, shift, other,
            half, first, bounds, st.labels, st.upper, st.lower, part.sums, part.wsum,
            part.counts,
        )  # fmt: skip
        return part, int(moved), int(scanned)

    total = Totals(np.zeros((k, d)), np.zeros(k), np.zeros(k, dtype=np.int64))
    moved = scanned = 0
    for part, part_moved, part_scanned in eng.map(chunk, X.shape[0]):
        total.add(part)  # in chunk order: the same sums for any thread count
        moved += part_moved
        scanned += part_scanned
    return total, moved, scanned


def _adopt(eng: Engine, X: Float, w: Float, C: Float, st: _State) -> Totals:
    """Bounds and totals for labels that an earlier assignment against ``C`` found."""
    k, d = C.shape
    half = half_separation(C.astype(np.float64))

    def chunk(s: slice) -> Totals:
        part = Totals(np.zeros((k, d)), np.zeros(k), np.zeros(k, dtype=np.int64))
        _adopt_chunk(
            X, w, s.start, s.stop, C, half, st.slack, st.labels, st.upper, st.lower,
            part.sums, part.wsum, part.counts,
        )  # fmt: skip
        return part

    total = Totals(np.zeros((k, d)), np.zeros(k), np.zeros(k, dtype=np.int64))
    for part in eng.map(chunk, X.shape[0]):
        total.add(part)
    return total


def fast_lloyd(
    X: Float,
    w: Float,
    xn: Float,
    centers_init: Float,
    *,
    max_iter: int,
    tol: float,
    n_threads: int,
    relocate: Callable[[Float, Int64, F64, F64], int],
    init_labels: Int64 | None = None,
) -> FastResult:
    """Lloyd iterations with Hamerly's bounds, stopping as ``_kmeans_lloyd.lloyd`` does.

    Parameters
    ----------
    X : ndarray of shape (n, d), float32 or float64, C-contiguous
    w : ndarray of shape (n,)
        Non-negative weights, in X's dtype.
    xn : ndarray of shape (n,)
        ``||x||^2`` of each row, in X's dtype.
    centers_init : ndarray of shape (k, d)
    max_iter : int
    tol : float
        Absolute: stop when the total squared centre shift is at most this.
    n_threads : int
        Threads of the fit's own pool (see ``Engine``); the result does not depend on it.
    relocate : callable
        ``relocate(centers, labels, sums, wsum)``, the numpy engine's empty-cluster
        relocation: it edits the (k, d) sums and (k,) weights in place and returns how
        many clusters moved; the next E-step then rebuilds totals and bounds.
    init_labels : ndarray of shape (n,), optional
        The nearest centres under ``centers_init``; they replace the first E-step.

    Returns
    -------
    FastResult
        Centres (k, d) in X's dtype, labels (n,) consistent with them, squared
        distances (n,) to the own centre by exact differences, iterations, whether it
        converged, and the relocations made.
    """
    n = X.shape[0]
    C = np.array(centers_init, dtype=X.dtype, order="C", copy=True)
    st = _State(np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n), _slack(X, xn, C))
    totals: Totals | None = None
    prev: Float | None = None
    n_relocated = n_iter = 0
    converged = False
    bounded = misses = 0  # full E-steps before bounds are tried again (_next_bounded)
    with Engine(n_threads) as eng:
        for i in range(max_iter):
            n_iter = i + 1
            full = prev is None or bounded > 0
            if i == 0 and init_labels is not None:
                st.labels[...] = init_labels
                change, moved, scanned = _adopt(eng, X, w, C, st), 0, 0
            else:  # a full E-step followed by another full one needs no bounds
                prev_C = None if full else prev
                change, moved, scanned = _estep(eng, X, w, xn, C, prev_C, st, bounded <= 1)
            step = (max(bounded - 1, 0), misses) if full else _next_bounded(scanned, n, misses)
            bounded, misses = step
            if totals is None or full:
                totals = change
            else:
                totals.add(change)
            totals.clear_empty()
            relocated = relocate(C, st.labels, totals.sums, totals.wsum)
            n_relocated += relocated
            new = _centres_from(totals, C)
            shift = float(((new.astype(np.float64) - C) ** 2).sum())
            prev, C = C, new
            if (moved == 0 and i > 0) or shift <= tol:
                converged = True
                break
            if relocated:
                prev = None  # the next E-step rebuilds totals and bounds from scratch
        # labels consistent with the final centres
        _estep(eng, X, w, xn, C, None if bounded > 0 else prev, st, bounds=False)
        sq = _own_sq(eng, X, C, st.labels)
    return FastResult(C, st.labels, sq, n_iter, converged, n_relocated)


def _next_bounded(scanned: int, n: int, misses: int) -> tuple[int, int]:
    """Full E-steps to run before the next one with bounds, after one that scanned
    ``scanned`` of ``n`` rows and ``misses`` such failures in a row before it; and the
    new count of failures in a row.

    When the bounds leave most rows to scan (heavily overlapping clusters), their
    bookkeeping (an exact distance for every row whose bound failed, a gather of the
    rest) costs more than it saves: a plain scan of every row is cheaper. The bounds
    are tried again after a few E-steps, since they prune more as the centres settle;
    each failure in a row doubles the wait, up to ``FULL_SCAN_RUN << MAX_BACKOFF``.
    """
    if scanned <= FULL_SCAN_SHARE * n:
        return 0, 0
    return FULL_SCAN_RUN << min(misses, MAX_BACKOFF), misses + 1


@_jit
def _own_sq_chunk(X, start, stop, C, labels, out):  # type: ignore[no-untyped-def]
    for i in range(start, stop):
        out[i] = _sq_to(X, i, C, labels[i])


def _own_sq(eng: Engine, X: Float, C: Float, labels: Int64) -> Float:
    """Squared distance of every row to its own centre, by differences (in X's dtype)."""
    out = np.empty(X.shape[0], dtype=X.dtype)
    eng.map(lambda s: _own_sq_chunk(X, s.start, s.stop, C, labels, out), X.shape[0])
    return out


def _centres_from(totals: Totals, old: Float) -> Float:
    """Weighted means of the clusters that hold weight; the others keep their centre."""
    new = old.astype(np.float64, copy=True)
    full = totals.wsum > 0
    new[full] = totals.sums[full] / totals.wsum[full, None]
    return new.astype(old.dtype)


def warm_up() -> bool:
    """Compile (or load from numba's on-disk cache) every kernel for float32 and float64.

    The first call of a kernel in a process costs its compilation, about 10 s per
    dtype on a cold cache and well under a second from the cache; a daemon calls this
    once at start-up so that no model's first run pays it. Returns False (and does
    nothing) without numba.
    """
    if not AVAILABLE:
        return False
    rng = np.random.default_rng(0)

    def no_relocation(*args: object) -> int:
        return 0

    for dtype in (np.float32, np.float64):
        X: Float = rng.normal(size=(64, 2)).astype(dtype)
        xn: Float = np.einsum("ij,ij->i", X, X)
        C: Float = X[:3].copy()
        labels = fast_assign(X, xn, C, 1, with_second=True)[0]
        fast_mean_var(X, np.ones(64, dtype=dtype), 1)
        fast_cluster_sums(X, labels, 3, 1)
        for init_labels in (None, labels):
            fast_lloyd(
                X, np.ones(64, dtype=dtype), xn, C, max_iter=2, tol=0.0, n_threads=1,
                relocate=no_relocation, init_labels=init_labels,
            )  # fmt: skip
    return True
