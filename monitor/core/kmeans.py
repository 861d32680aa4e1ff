"""k-means: k-means++ seeding, chunked Lloyd, mini-batch, and scikit-learn-style estimators.

The functions validate their arguments once and hand over to private helpers. Memory
is bounded by ``working_memory_mib``: the window is walked in chunks and no n x k
matrix of the whole window is built.

Decisions worth knowing:

* Labels are ``int64`` (numpy's index type, what ``argmin`` returns).
* float32 and float64 data keep their dtype (centres, distances); sums, potentials and
  inertia accumulate in float64.
* Sampling (k-means++, random init) walks the positive-weight rows in an order that
  depends only on their values, so for a given seed the fit does not depend on the row
  order of the window, and a row of integer weight w acts like w copies of it.
* ``tol`` is relative to the mean per-feature variance of X, weighted by
  ``sample_weight`` (scikit-learn ignores the weights there; with unit weights the two
  agree), so that a zero-weight row changes nothing.
* An empty cluster is moved onto the row farthest from its centre and counted in
  ``KMeansFit.n_relocated``; this is ordinary k-means housekeeping, so it does not warn.
* Fewer distinct rows than clusters warns ``DegenerateDataWarning`` and sets
  ``KMeansFit.n_distinct_points``; the extra centres repeat rows, never NaN.
* Reaching ``max_iter`` does not warn: ``KMeansFit.converged`` says so.
* With numba installed (extra ``fast``) the Euclidean metric runs on a compiled kernel
  (``kernel="auto"``); ``warm_up()`` compiles it ahead of the first fit.
"""

from __future__ import annotations

from monitor.core._kmeans_estimator import KMeans, MiniBatchKMeans, NotFittedError
from monitor.core._kmeans_fit import (
    METRICS,
    assign_labels,
    assign_two_nearest,
    fit_kmeans,
    kmeans_plusplus,
)
from monitor.core._kmeans_numba import warm_up

__all__ = [
    "METRICS",
    "KMeans",
    "MiniBatchKMeans",
    "NotFittedError",
    "assign_labels",
    "assign_two_nearest",
    "fit_kmeans",
    "kmeans_plusplus",
    "warm_up",
]
