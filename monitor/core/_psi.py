"""The pieces of PSI that the drift SLIs and their calibration share.

``bin_index`` puts values in right-closed bins; ``psi_from_fractions`` applies the
empty-bin rule (floor both share vectors at ``epsilon``, renormalise) and the formula;
``bin_counts_compiled`` counts every feature's values per bin in one threaded pass over
the rows (numba, the optional extra ``fast``; ``COMPILED`` says whether it is there).
See :mod:`monitor.core.drift` and ``docs/slis.md``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.core._chunking import iter_slices
from monitor.core._numba import AVAILABLE
from monitor.core._numba import jit as _jit

__all__ = [
    "COMPILED",
    "bin_counts_compiled",
    "bin_index",
    "psi_ceiling",
    "psi_from_fractions",
    "psi_rows",
    "warm_up",
]

Floats = NDArray[np.floating[Any]]

COMPILED = AVAILABLE  # without numba, drift's numpy counting runs

# Rows per task of the threaded count. Large enough that a task's fixed cost (a kernel
# call, its (d, bins) counts) is small next to its work; the counts are integers, so
# their sum does not depend on how the rows were split or on the thread count.
CHUNK_ROWS = 65536
# Up to this many inner edges a value's bin is a branch-free count of the edges below
# it (a few vector compares per row of features); beyond, a binary search per value.
_LINEAR_EDGES = 32


def psi_from_fractions(p: Floats, q: Floats, epsilon: float) -> float:
    """PSI of two share vectors of one variable after the floor-and-renormalise rule."""
    return float(psi_rows(np.asarray(p)[None, :], np.asarray(q)[None, :], epsilon)[0])


def psi_ceiling(p: Floats, epsilon: float) -> float:
    """The largest PSI any window reaches against shares ``p``: every row in one bin.
    PSI is convex in the window's shares, so over them its largest value is at a corner
    of the simplex, and a window of one row or more reaches every corner."""
    p = np.asarray(p, dtype=np.float64)
    return float(psi_rows(p, np.eye(p.shape[0]), epsilon).max())


def psi_rows(p: Floats, q: Floats, epsilon: float) -> NDArray[np.float64]:
    """PSI of each row of ``q`` (c, B) against the same row of ``p`` (c, B) or against ``p`` (B,).

    Both sides are floored at ``epsilon`` and renormalised per row first.
    """
    pf = np.maximum(np.asarray(p, dtype=np.float64), epsilon)
    qf = np.maximum(np.asarray(q, dtype=np.float64), epsilon)
    pf = pf / pf.sum(axis=-1, keepdims=True)
    qf = qf / qf.sum(axis=-1, keepdims=True)
    # Each term (q - p) ln(q / p) is >= 0; the sum is clipped at 0 against rounding.
    out: NDArray[np.float64] = np.maximum(0.0, np.sum((qf - pf) * np.log(qf / pf), axis=-1))
    return out


def bin_index(edges: Floats, x: NDArray[np.floating]) -> NDArray[np.intp]:
    """Bin of each value: ``b`` such that ``edges[b-1] < x <= edges[b]`` (open ends)."""
    return np.searchsorted(edges, x, side="left")


# ------------------------------------------------------------------ compiled count


@_jit
def _count_linear(X, start, stop, E, n_edges, counts):  # type: ignore[no-untyped-def]
    """Add rows ``start:stop`` of ``X`` (n, d) to ``counts`` (d, bins), few edges.

    ``E`` (e_max, d) holds feature ``j``'s inner edges in column ``j``, padded with +inf
    (never below a finite value). A value's bin is the number of edges strictly below
    it, compared in float64 as ``searchsorted(edges, x, side="left")`` compares. What
    is counted is, per edge, the values above it: the loop over features runs along a
    row of X and of E and adds to a row of ``above``, so it vectorises with no scattered
    increment; the bins are differences of those counts at the end.
    """
    d = X.shape[1]
    e_max = E.shape[0]
    above = np.zeros((e_max, d), dtype=np.int64)
    x = np.empty(d, dtype=np.float64)
    for i in range(start, stop):
        for j in range(d):
            x[j] = np.float64(X[i, j])
        for e in range(e_max):
            for j in range(d):
                above[e, j] += E[e, j] < x[j]
    m = stop - start
    for j in range(d):
        if n_edges[j] == 0:  # one bin holds every value
            counts[j, 0] += m
            continue
        # bin 0 holds what is above no edge; bin b what is above edge b-1 but not b.
        counts[j, 0] += m - above[0, j]
        for e in range(1, n_edges[j]):
            counts[j, e] += above[e - 1, j] - above[e, j]
        counts[j, n_edges[j]] += above[n_edges[j] - 1, j]
    return counts


@_jit
def _count_search(X, start, stop, E, n_edges, counts):  # type: ignore[no-untyped-def]
    """``_count_linear`` for many edges: a binary search per value (same bins)."""
    d = X.shape[1]
    for i in range(start, stop):
        for j in range(d):
            x = np.float64(X[i, j])
            lo = 0
            hi = n_edges[j]
            # The first edge that is not below x: the count of edges below it.
            while lo < hi:
                mid = (lo + hi) >> 1
                if E[mid, j] < x:
                    lo = mid + 1
                else:
                    hi = mid
            counts[j, lo] += 1
    return counts


def bin_counts_compiled(
    edges: tuple[Floats, ...], X: NDArray[Any], n_threads: int = 1
) -> list[NDArray[np.int64]]:
    """Rows of ``X`` per bin of every feature, shapes (len(edges[j]) + 1,), one pass.

    Parameters
    ----------
    edges : tuple of d float64 arrays
        Each feature's strictly increasing inner edges (``ReferenceBins.edges``).
    X : ndarray of shape (n, d), float32 or float64, C-contiguous, finite
        Validated by the caller.
    n_threads : int
        Threads over fixed row chunks; the counts are the same for any value.

    Returns
    -------
    list of d int64 arrays
        What ``np.bincount(bin_index(edges[j], X[:, j]), minlength=len(edges[j]) + 1)``
        gives for every ``j``, with no (n,) index array and no transposed copy of X.
    """
    n, d = X.shape
    n_edges = np.array([e.shape[0] for e in edges], dtype=np.int64)
    e_max = int(n_edges.max()) if d else 0
    E = np.full((max(e_max, 1), d), np.inf, dtype=np.float64)
    for j, e in enumerate(edges):
        E[: e.shape[0], j] = e
    kernel = _count_linear if e_max <= _LINEAR_EDGES else _count_search

    def chunk(sl: slice) -> NDArray[np.int64]:
        counts = np.zeros((d, e_max + 1), dtype=np.int64)
        return kernel(X, sl.start, sl.stop, E, n_edges, counts)

    slices = list(iter_slices(n, CHUNK_ROWS))
    if n_threads > 1 and len(slices) > 1:
        with ThreadPoolExecutor(min(n_threads, len(slices))) as pool:
            parts = list(pool.map(chunk, slices))
    else:
        parts = [chunk(sl) for sl in slices]
    total = np.sum(parts, axis=0) if parts else np.zeros((d, e_max + 1), dtype=np.int64)
    return [total[j, : n_edges[j] + 1].astype(np.int64) for j in range(d)]


def warm_up() -> bool:
    """Compile (or load from numba's cache) the counting kernels for float32 and float64.

    Returns False (and does nothing) without numba.
    """
    if not COMPILED:
        return False
    few = (np.array([0.0]),)
    many = (np.linspace(-1.0, 1.0, _LINEAR_EDGES + 1),)
    for dtype in (np.float32, np.float64):
        X = np.zeros((2, 1), dtype=dtype)
        bin_counts_compiled(few, X)
        bin_counts_compiled(many, X)
    return True
