"""Distances of points to their own centre and to the nearest other one.

Shared by the quality indices (simplified silhouette, Davies-Bouldin, inertia) and the
calibration's per-point values. Inputs are validated by the public functions that call
these; every pass is chunked by the working-memory budget, so no (n, k) matrix exists.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.core._chunking import cache_rows, chunk_rows, iter_slices

__all__ = [
    "METRICS",
    "distances_to_own_center",
    "nearest_other",
    "own_and_nearest_other",
    "silhouette_from_ab",
]

F64 = NDArray[np.float64]
Intp = NDArray[np.intp]

#: What a model measures rows by: Euclidean distance on the scaled rows, or cosine (the
#: Euclidean distance of rows normalised to unit length). Here, light to import, so that
#: the configuration checks a model's ``metric`` without loading the compiled kernels.
METRICS = ("euclidean", "cosine")


def distances_to_own_center(
    X: NDArray[Any], labels: Intp, centers: F64, working_memory_mib: float
) -> F64:
    """Squared Euclidean distance of each point to the centre of its label, shape (n,)."""
    n, d = X.shape
    out = np.empty(n, dtype=np.float64)
    # Direct differences, not the norm expansion: exact for points on their centre,
    # and the (chunk, d) temporary is as small as the chunk of X itself.
    step = chunk_rows(n, 3 * d * 8, working_memory_mib)
    for sl in iter_slices(n, step):
        diff = X[sl].astype(np.float64, copy=False) - centers[labels[sl]]
        out[sl] = np.einsum("ij,ij->i", diff, diff)
    return out


def own_and_nearest_other(
    X: NDArray[Any], labels: Intp, centers: F64, working_memory_mib: float
) -> tuple[F64, F64]:
    """Distance to the own centre and to the nearest other centre, each of shape (n,).

    Requires at least two centres. Distances are Euclidean (not squared).
    """
    a = np.sqrt(distances_to_own_center(X, labels, centers, working_memory_mib))
    return a, nearest_other(X, labels, centers, working_memory_mib)


def nearest_other(X: NDArray[Any], labels: Intp, centers: F64, working_memory_mib: float) -> F64:
    """Distance to the nearest centre other than the own one, shape (n,)."""
    n, d = X.shape
    k = centers.shape[0]
    b = np.empty(n, dtype=np.float64)
    # ||x - c||^2 = ||x||^2 + (||c||^2 - 2 x.c): the bracket alone decides which other
    # centre is nearest, so ||x||^2 is added to the (chunk,) minimum only. The block is in
    # X's dtype: a float32 window gets a float32 GEMM and half the memory traffic.
    # The block is centre-major, (k, chunk): its minimum over the centres is then a
    # vertical (SIMD) reduction instead of one short reduction per row. Rows far from
    # the origin lose their spread to this expansion: callers take them around the
    # centres first (``_kmeans_fit.around_centres``).
    C = centers.astype(X.dtype, copy=False)
    minus_2c = -2.0 * C
    c_sq = np.einsum("ij,ij->i", C, C)[:, None]
    step = cache_rows(n, (2 * k + d) * X.itemsize + 16, working_memory_mib)
    for sl in iter_slices(n, step):
        Xc = X[sl]
        block = minus_2c @ Xc.T
        block += c_sq
        block[labels[sl], np.arange(block.shape[1])] = np.inf
        nearest = block.min(axis=0).astype(np.float64)
        nearest += np.einsum("ij,ij->i", Xc, Xc, dtype=np.float64)
        # Cancellation can leave tiny negatives for points on a centre.
        b[sl] = np.sqrt(np.maximum(nearest, 0.0))
    return b


def silhouette_from_ab(a: F64, b: F64) -> F64:
    """s = (b - a) / max(a, b), and 0 where both are 0 (coincident points)."""
    denom = np.maximum(a, b)
    # One temporary instead of five (at 1M rows each is 8 MB of fresh pages): where the
    # denominator is 0, a = b = 0 and b - a is already the +0.0 to report.
    s = np.subtract(b, a)
    np.divide(s, denom, out=s, where=denom > 0)
    return s
