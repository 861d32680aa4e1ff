"""Drift between a reference and a window: feature PSI, label-share PSI, centroid drift.

PSI compares the shares of a window in bins fixed on the reference,
``PSI = sum_b (q_b - p_b) ln(q_b / p_b)`` with ``p`` the reference's shares and ``q`` the
window's. Empty-bin rule: both ``p`` and ``q`` are floored at ``epsilon`` and then
renormalised to sum to 1 before the formula is applied, so that a bin empty on one side
contributes a large but finite term, and a bin empty on both sides contributes 0.
See ``docs/slis.md`` for the bin edges of discrete and constant features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from monitor.checks import (
    RandomStateLike,
    check_array,
    check_choice,
    check_float,
    check_int,
    check_random_state,
)
from monitor.core._checks import check_labels, check_shares
from monitor.core._chunking import DEFAULT_WORKING_MEMORY_MIB, chunk_rows, iter_slices
from monitor.core._psi import (
    COMPILED,
    bin_counts_compiled,
    bin_index,
    psi_ceiling,
    psi_from_fractions,
    warm_up,
)
from monitor.core.kmeans import assign_labels
from monitor.errors import InvalidInputError
from monitor.records import PSI, CentroidDrift, LabelDrift, ReferenceBins, SplitGain

__all__ = [
    "DEFAULT_EPSILON",
    "bin_counts",
    "centroid_drift",
    "cluster_split_savings",
    "drift_standard_errors",
    "fit_reference_bins",
    "label_agreement",
    "label_agreement_from_table",
    "label_drift",
    "label_drift_from_counts",
    "psi",
    "psi_ceiling",
    "psi_from_counts",
    "split_baseline",
    "split_gain",
    "standardised_drift",
    "warm_up",
]

Floats = NDArray[np.floating[Any]]

DEFAULT_EPSILON = 1e-4
_STRATEGIES = ("quantile", "uniform")


# --------------------------------------------------------------------------- helpers


def _feature_edges(column: Floats, n_bins: int, strategy: str) -> Floats:
    """Strictly increasing inner edges of one feature (see ``fit_reference_bins``)."""
    lo, hi = float(column.min()), float(column.max())
    if strategy == "quantile":
        probs = np.arange(1, n_bins) / n_bins
        # inverted_cdf returns observed values: with right-closed bins a reference without
        # ties then splits as evenly as n allows, and a discrete feature gets edges
        # at its own values rather than at interpolated points between them.
        raw = np.quantile(column, probs, method="inverted_cdf")
    else:
        raw = np.linspace(lo, hi, n_bins + 1)[1:-1]
    edges = np.unique(raw)
    if edges[0] <= lo:
        # A point mass at the reference's minimum (binary or constant feature): give
        # values below the reference's range a bin of their own, as values above it get
        # one whenever the maximum is an edge.
        edges = np.concatenate(([np.nextafter(lo, -np.inf)], edges))
    return edges.astype(np.float64)


def _bin_counts(
    edges: tuple[Floats, ...], X: NDArray[Any], working_memory_mib: float, n_threads: int = 1
) -> list[NDArray[np.int64]]:
    """Counts per bin of every feature, one row chunk at a time; shapes (len(edges[j]) + 1,).

    With numba, one compiled pass on ``n_threads`` threads counts every feature (the
    same counts, ``tests/core/test_psi_compiled.py``). Without it, each chunk is
    transposed once so that every feature's values are contiguous for ``searchsorted``;
    a strided column search is several times slower.
    """
    if COMPILED and X.flags.c_contiguous:
        return bin_counts_compiled(edges, X, n_threads)
    n, d = X.shape
    counts = [np.zeros(e.shape[0] + 1, dtype=np.int64) for e in edges]
    # Per row: the transposed chunk, plus one feature's float64 needle and bin index.
    step = chunk_rows(n, d * X.itemsize + 16 * d, working_memory_mib)
    for sl in iter_slices(n, step):
        block = np.ascontiguousarray(X[sl].T)
        for j, e in enumerate(edges):
            if e.shape[0] <= _FEW_EDGES:
                counts[j] += _bin_counts_few(e, block[j])
            else:
                counts[j] += np.bincount(bin_index(e, block[j]), minlength=counts[j].shape[0])
    return counts


# Up to this many edges, counting the values above each edge (one vectorised comparison
# per edge, no index array) beats a binary search per value by far.
_FEW_EDGES = 32


def _bin_counts_few(edges: Floats, x: NDArray[np.floating]) -> NDArray[np.int64]:
    """The counts of ``bincount(bin_index(edges, x))``, shape (len(edges) + 1,).

    With right-closed bins, bin ``b`` holds the values above edge ``b - 1`` but not
    above edge ``b``, so the counts are differences of the counts above each edge. Each
    edge is a float64 numpy scalar: float32 values are compared in float64, exactly as
    ``searchsorted`` compares them.
    """
    above = np.array([np.count_nonzero(x > edge) for edge in edges], dtype=np.int64)
    return -np.diff(above, prepend=x.shape[0], append=0)


def _fractions(index: NDArray[np.intp], n_bins: int) -> Floats:
    return np.bincount(index, minlength=n_bins).astype(np.float64) / index.shape[0]


def _check_epsilon(epsilon: float, owner: str) -> float:
    """The empty-bin floor: a share in (0, 0.5)."""
    return check_float(
        epsilon,
        "epsilon",
        low=0.0,
        high=0.5,
        low_inclusive=False,
        high_inclusive=False,
        owner=owner,
    )


def _check_thresholds(thresholds: Mapping[str, float] | None) -> dict[str, float]:
    if thresholds is None:
        return {}
    if not isinstance(thresholds, Mapping):
        raise InvalidInputError(
            "The 'thresholds' parameter of psi must be a mapping of name to PSI value. "
            f"Got {thresholds!r} instead."
        )
    out: dict[str, float] = {}
    for name, value in thresholds.items():
        out[str(name)] = check_float(value, f"thresholds[{name!r}]", low=0.0, owner="psi")
    return out


# --------------------------------------------------------------------------- public


def fit_reference_bins(
    X_ref: ArrayLike,
    *,
    n_bins: int = 10,
    strategy: str = "quantile",
    epsilon: float = DEFAULT_EPSILON,
) -> ReferenceBins:
    """Fix per-feature bins on the reference window and record its shares.

    Parameters
    ----------
    X_ref : array-like of shape (n, d)
        The reference window (scaled units).
    n_bins : int, default 10
        Target number of bins per feature (at least 2).
    strategy : {"quantile", "uniform"}
        ``"quantile"``: inner edges at the ``b / n_bins`` quantiles (``inverted_cdf``,
        so edges are observed values and a reference without ties splits into bins
        as even as ``n`` allows); ``"uniform"``: equal-width inner edges between
        the reference's minimum and maximum.
    epsilon : float, default 1e-4
        Floor for empty-bin shares in :func:`psi` (in ``(0, 0.5)``).

    Returns
    -------
    ReferenceBins
        ``edges[j]`` holds the strictly increasing inner edges of feature ``j``; bin
        ``b`` is ``(edges[b-1], edges[b]]`` with the first and last bins open-ended.
        Duplicate edges (discrete or constant features) are collapsed, so a feature may
        get fewer than ``n_bins`` bins. When the lowest edge is the reference's minimum
        (a point mass there), ``nextafter(min, -inf)`` is added below it, so that values
        below the reference's range fall in a bin the reference left empty, as values
        above it do whenever the maximum is an edge (a constant feature ``c`` gets the
        bins ``(-inf, c)``, ``{c}``, ``(c, inf)``). ``reference_fractions[j]`` are the
        raw shares (not floored).
    """
    owner = "fit_reference_bins"
    Xr = check_array(X_ref, name="X_ref", dtype=np.float64)
    n_bins = check_int(n_bins, "n_bins", low=2, owner=owner)
    strategy = check_choice(strategy, "strategy", _STRATEGIES, owner=owner)
    epsilon = _check_epsilon(epsilon, owner)
    edges: list[Floats] = []
    fractions: list[Floats] = []
    for j in range(Xr.shape[1]):
        column = Xr[:, j]
        e = _feature_edges(column, n_bins, strategy)
        edges.append(e)
        fractions.append(_fractions(bin_index(e, column), e.shape[0] + 1))
    return ReferenceBins(
        edges=tuple(edges),
        reference_fractions=tuple(fractions),
        epsilon=epsilon,
        strategy=strategy,
    )


def psi(
    bins: ReferenceBins,
    X: ArrayLike,
    *,
    thresholds: Mapping[str, float] | None = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    n_threads: int = 1,
) -> PSI:
    """Population stability index of each feature of ``X`` against the reference bins.

    Parameters
    ----------
    bins : ReferenceBins
        From :func:`fit_reference_bins`.
    X : array-like of shape (n, d)
        The window, same features and units as the reference.
    thresholds : mapping of str to float, optional
        Named PSI thresholds (for example ``{"warning": 0.1, "critical": 0.25}``);
        ``n_features_above[name]`` counts the features with PSI strictly above each.
    working_memory_mib : float
        Budget for the row chunks that are binned at a time (float32 windows are binned
        without a float64 copy of the window).
    n_threads : int
        Threads of the compiled count (with numba); the result is the same for any.

    Returns
    -------
    PSI
        ``per_feature`` of shape (d,), ``PSI_j = sum_b (q_b - p_b) ln(q_b / p_b)`` after
        flooring both share vectors at ``bins.epsilon`` and renormalising them; ``max``
        over features.
    """
    Xa = check_array(X, name="X")
    d = len(bins.edges)
    if Xa.shape[1] != d:
        raise InvalidInputError(f"X has {Xa.shape[1]} feature(s) but the reference bins have {d}.")
    limits = _check_thresholds(thresholds)
    threads = check_int(n_threads, "n_threads", low=1, owner="psi")
    return _psi(bins, _bin_counts(bins.edges, Xa, working_memory_mib, threads), limits)


def bin_counts(
    edges: tuple[Floats, ...],
    X: ArrayLike,
    *,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
) -> list[NDArray[np.int64]]:
    """Rows of ``X`` in each reference bin, per feature: what ``psi`` counts.

    Parameters
    ----------
    edges : tuple of d arrays
        Inner edges of each feature (``ReferenceBins.edges``); bins are right-closed.
    X : array-like of shape (n, d)
    working_memory_mib : float
        Budget for the row chunks binned at a time.

    Returns
    -------
    list of d int64 arrays
        Feature ``j``'s counts, shape ``(len(edges[j]) + 1,)``; they add up over any
        split of the rows, so the counts of a window's pieces sum to the window's.
    """
    Xa = check_array(X, name="X", min_samples=0)
    if Xa.shape[1] != len(edges):
        raise InvalidInputError(
            f"X has {Xa.shape[1]} feature(s) but the reference bins have {len(edges)}."
        )
    return _bin_counts(edges, Xa, working_memory_mib)


def psi_from_counts(
    bins: ReferenceBins,
    counts: Sequence[ArrayLike],
    *,
    thresholds: Mapping[str, float] | None = None,
) -> PSI:
    """``psi`` from the window's rows per reference bin (``bin_counts``, summed over pieces).

    Parameters
    ----------
    bins : ReferenceBins
    counts : sequence of d arrays
        Feature ``j``'s rows per bin, shape ``(len(bins.edges[j]) + 1,)``; every feature
        counts the same rows (at least one).
    thresholds : mapping of str to float, optional
        As in ``psi``.

    Returns
    -------
    PSI
        What ``psi(bins, X)`` returns on the rows these counts were taken over.
    """
    d = len(bins.edges)
    arrays = [np.asarray(c) for c in counts]
    shapes_ok = len(arrays) == d and all(
        a.shape == (e.shape[0] + 1,) and a.dtype.kind in "iu" and not (a < 0).any()
        for a, e in zip(arrays, bins.edges, strict=False)
    )
    if not shapes_ok:
        raise InvalidInputError(
            f"The 'counts' parameter of psi_from_counts must hold {d} arrays of counts "
            f"(integers, none negative), one per feature, with one count per reference bin."
        )
    totals = {int(a.sum()) for a in arrays}
    if len(totals) != 1 or 0 in totals:
        raise InvalidInputError(
            "The 'counts' parameter of psi_from_counts must count the same rows (at least "
            f"one) for every feature; got totals {sorted(totals)}."
        )
    return _psi(bins, [a.astype(np.int64) for a in arrays], _check_thresholds(thresholds))


def _psi(
    bins: ReferenceBins, counts: Sequence[NDArray[np.int64]], limits: Mapping[str, float]
) -> PSI:
    d = len(bins.edges)
    values = np.empty(d, dtype=np.float64)
    for j in range(d):
        q = counts[j] / counts[j].sum()
        values[j] = psi_from_fractions(bins.reference_fractions[j], q, bins.epsilon)
    above = {name: int(np.count_nonzero(values > lim)) for name, lim in limits.items()}
    return PSI(per_feature=values, max=float(values.max()), n_features_above=above)


def label_drift(
    reference_shares: ArrayLike,
    labels: ArrayLike,
    n_clusters: int,
    *,
    epsilon: float = DEFAULT_EPSILON,
) -> LabelDrift:
    """PSI between the reference's cluster shares and the window's.

    Parameters
    ----------
    reference_shares : array-like of shape (k,)
        Non-negative shares of the reference (renormalised to sum to 1).
    labels : array-like of shape (n,)
        Cluster of each window point, in ``[0, k)``; at least one point.
    n_clusters : int
    epsilon : float, default 1e-4
        Floor of the empty-cluster rule (the same as the feature PSI's).

    Returns
    -------
    LabelDrift
        ``psi`` with the floor-and-renormalise rule; the raw shares of both sides.
    """
    owner = "label_drift"
    k = check_int(n_clusters, "n_clusters", low=1, owner=owner)
    p = check_shares(reference_shares, k, name="reference_shares", owner=owner)
    lab = check_labels(labels, None, k, owner=owner)
    if lab.shape[0] == 0:
        raise InvalidInputError(
            "The 'labels' parameter of label_drift must hold at least one label; got none."
        )
    epsilon = _check_epsilon(epsilon, owner)
    q = _fractions(lab, k)
    return LabelDrift(psi=psi_from_fractions(p, q, epsilon), reference_shares=p, current_shares=q)


def label_drift_from_counts(
    reference_shares: ArrayLike, counts: ArrayLike, *, epsilon: float = DEFAULT_EPSILON
) -> LabelDrift:
    """``label_drift`` from the window's points per cluster.

    Parameters
    ----------
    reference_shares : array-like of shape (k,)
    counts : array-like of shape (k,)
        Non-negative integer points per cluster; at least one point.
    epsilon : float, default 1e-4

    Returns
    -------
    LabelDrift
        What ``label_drift(reference_shares, labels, k)`` returns for labels with these counts.
    """
    owner = "label_drift_from_counts"
    c = np.asarray(counts)
    if c.ndim != 1 or c.dtype.kind not in "iu" or (c < 0).any() or c.sum() == 0:
        raise InvalidInputError(
            f"The 'counts' parameter of {owner} must be non-negative integer counts per "
            f"cluster, at least one point in all; got {c!r}."
        )
    p = check_shares(reference_shares, c.shape[0], name="reference_shares", owner=owner)
    epsilon = _check_epsilon(epsilon, owner)
    q = c.astype(np.float64) / c.sum()
    return LabelDrift(psi=psi_from_fractions(p, q, epsilon), reference_shares=p, current_shares=q)


def centroid_drift(reference_centers: ArrayLike, current_centers: ArrayLike) -> CentroidDrift:
    """Match current centroids to reference centroids and measure how far they moved.

    Parameters
    ----------
    reference_centers : array-like of shape (k_ref, d)
    current_centers : array-like of shape (k_cur, d)
        Both in the reference's scaled units; ``k_ref`` and ``k_cur`` may differ.

    Returns
    -------
    CentroidDrift
        The matching of ``scipy.optimize.linear_sum_assignment`` on the Euclidean
        distances (minimum total distance), ``pairs`` (m, 2) sorted by reference index,
        ``m = min(k_ref, k_cur)``, their ``distances`` (m,), ``mean`` and ``max``, and the
        unmatched indices on either side (``vanished`` reference, ``appeared`` current).
    """
    owner = "centroid_drift"
    R = check_array(
        reference_centers, name="reference_centers", dtype=np.float64, rows="n_clusters"
    )
    C = check_array(current_centers, name="current_centers", dtype=np.float64, rows="n_clusters")
    if R.shape[1] != C.shape[1]:
        raise InvalidInputError(
            f"The 'current_centers' parameter of {owner} must have {R.shape[1]} feature(s) "
            f"to match reference_centers; got an array of shape {C.shape}."
        )
    cost = cdist(R, C)
    rows, cols = linear_sum_assignment(cost)
    distances = cost[rows, cols]
    pairs = np.column_stack((rows, cols)).astype(np.intp)
    return CentroidDrift(
        pairs=pairs,
        distances=distances,
        mean=float(distances.mean()),
        max=float(distances.max()),
        vanished=tuple(int(i) for i in np.setdiff1d(np.arange(R.shape[0]), rows)),
        appeared=tuple(int(i) for i in np.setdiff1d(np.arange(C.shape[0]), cols)),
    )


#: The smallest variance a centre's standard error is taken from, as a share of the
#: widest cluster's ``v``: a cluster of one repeated point that moves by rounding stays
#: near 0, not infinite. Relative, so that data in tiny units (``scaling: none`` on
#: values near 1e-12) keep their standard errors: an absolute 1e-20 was above their
#: every variance, and the drift in standard errors read 0 on every window.
SPREAD_FLOOR = 1e-20


def standardised_drift(
    cd: CentroidDrift,
    current_counts: ArrayLike,
    spread: ArrayLike,
    reference_counts: ArrayLike | None = None,
) -> float:
    """The largest matched centroid distance in standard errors of its centre: the
    largest of ``drift_standard_errors``, 0.0 when no pair has rows on both sides (an
    empty centre is where the refit left it, not where rows are)."""
    z = drift_standard_errors(cd, current_counts, spread, reference_counts)
    finite = z[np.isfinite(z)]
    return float(finite.max()) if finite.size else 0.0


def drift_standard_errors(
    cd: CentroidDrift,
    current_counts: ArrayLike,
    spread: ArrayLike,
    reference_counts: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Each matched centroid distance in standard errors of its centre.

    For reference cluster ``r`` matched with current centre ``c``, its distance over
    ``sqrt(v_r / n_c + tau_r^2)``: ``n_c`` rows of the window are nearest ``c``, ``v_r`` is
    the mean squared distance of the cluster's rows to their mean within a window, and
    ``tau_r^2`` the centre's variance between quiet windows beyond that sampling noise.

    Parameters
    ----------
    cd : CentroidDrift
        ``centroid_drift(reference_centers, current_centers)``.
    current_counts : array-like of shape (k_cur,)
        Rows of the window nearest each current centre.
    spread : array-like of shape (k_ref, 2)
        ``v`` and ``tau^2`` per reference cluster (``NullTable.drift_spread``).
    reference_counts : array-like of shape (k_ref,), optional
        Rows of the window nearest each reference centre. A reference cluster with none
        is left out: the current centre matched to it is one the refit put among other
        clusters' rows (a regime absent at this hour), not that cluster's centre moved;
        empty and vanished clusters are other SLIs'.

    Returns
    -------
    ndarray of shape (m,)
        One value per pair of ``cd.pairs``, in its order; NaN where the current centre,
        or the reference cluster when ``reference_counts`` is given, has no row.
    """
    owner = "drift_standard_errors"
    k_cur = int(cd.pairs[:, 1].max()) + 1 if cd.pairs.size else 0
    k_ref = int(cd.pairs[:, 0].max()) + 1 if cd.pairs.size else 0
    counts = _window_counts(current_counts, "current_counts", "current centre", k_cur, owner)
    s = check_array(spread, name="spread", dtype=np.float64)
    if s.shape[1] != 2 or s.shape[0] < k_ref or (s < 0).any():
        raise InvalidInputError(
            f"The 'spread' parameter of {owner} must hold two non-negative values per "
            f"reference cluster (at least {k_ref}); got an array of shape {s.shape}."
        )
    ref, cur = cd.pairs[:, 0], cd.pairs[:, 1]
    n = counts[cur].astype(np.float64)
    out = np.full(n.shape[0], np.nan)
    has = n > 0
    if reference_counts is not None:
        present = _window_counts(
            reference_counts, "reference_counts", "reference cluster", k_ref, owner
        )
        has &= present[ref] > 0
    var = s[ref[has], 0] / n[has] + s[ref[has], 1]
    floor = max(SPREAD_FLOOR * float(s[:, 0].max(initial=0.0)), np.finfo(np.float64).tiny)
    out[has] = cd.distances[has] / np.sqrt(np.maximum(var, floor))
    return out


def _window_counts(
    values: ArrayLike, name: str, per: str, at_least: int, owner: str
) -> NDArray[Any]:
    """``values`` as a 1-D array of at least ``at_least`` non-negative counts, one per
    ``per``; InvalidInputError otherwise."""
    counts = np.asarray(values)
    if counts.ndim != 1 or counts.shape[0] < at_least or (counts.size and counts.min() < 0):
        raise InvalidInputError(
            f"The '{name}' parameter of {owner} must hold a non-negative count per {per} "
            f"(at least {at_least}); got an array of shape {counts.shape}."
        )
    return counts


def label_agreement(ref_labels: ArrayLike, cur_labels: ArrayLike, pairs: ArrayLike) -> float:
    """Share of points whose reference and current labels are matched by ``pairs``.

    Parameters
    ----------
    ref_labels : array-like of shape (n,)
        Labels of the points under the reference model.
    cur_labels : array-like of shape (n,)
        Labels of the same points under the current model.
    pairs : array-like of shape (m, 2)
        ``(reference, current)`` index pairs, as in :attr:`CentroidDrift.pairs`.

    Returns
    -------
    float
        In [0, 1]. A point whose reference cluster is unmatched (vanished) disagrees.
    """
    owner = "label_agreement"
    P = np.asarray(pairs)
    if P.ndim != 2 or P.shape[1] != 2 or (P.size and P.dtype.kind not in "iu"):
        raise InvalidInputError(
            f"The 'pairs' parameter of {owner} must be an integer array of shape (m, 2); "
            f"got an array of shape {P.shape} and dtype {P.dtype}."
        )
    r = check_labels(ref_labels, None, owner=owner, name="ref_labels")
    c = check_labels(cur_labels, r.shape[0], owner=owner, name="cur_labels")
    if r.shape[0] == 0:
        raise InvalidInputError(
            f"The 'ref_labels' parameter of {owner} must hold at least one label; got none."
        )
    if P.size and (P.min() < 0):
        raise InvalidInputError(
            f"The 'pairs' parameter of {owner} must hold non-negative indices. "
            f"Got {int(P.min())} instead."
        )
    size = max(int(r.max()), int(P[:, 0].max()) if P.size else 0) + 1
    # -1 never equals a label, so unmatched reference clusters count as disagreement.
    mapping = np.full(size, -1, dtype=np.intp)
    mapping[P[:, 0]] = P[:, 1]
    return float(np.mean(mapping[r] == c))


def label_agreement_from_table(table: ArrayLike, pairs: ArrayLike) -> float:
    """``label_agreement`` from the contingency table of the two labellings.

    Parameters
    ----------
    table : array-like of shape (k_ref, k_cur)
        ``table[r, c]``: points with reference label ``r`` and current label ``c`` (the
        tables of a window's pieces add up to the window's).
    pairs : array-like of shape (m, 2)
        ``(reference, current)`` index pairs, as in :attr:`CentroidDrift.pairs`.

    Returns
    -------
    float
        The share of points on a matched pair, in [0, 1].
    """
    owner = "label_agreement_from_table"
    T = np.asarray(table)
    if T.ndim != 2 or T.dtype.kind not in "iu" or (T < 0).any() or T.sum() == 0:
        raise InvalidInputError(
            f"The 'table' parameter of {owner} must be a 2-D table of non-negative integer "
            f"counts holding at least one point; got an array of shape {T.shape}."
        )
    P = np.asarray(pairs)
    if P.ndim != 2 or P.shape[1] != 2 or (P.size and P.dtype.kind not in "iu"):
        raise InvalidInputError(
            f"The 'pairs' parameter of {owner} must be an integer array of shape (m, 2); "
            f"got an array of shape {P.shape}."
        )
    if P.size and ((P < 0).any() or (P[:, 0] >= T.shape[0]).any() or (P[:, 1] >= T.shape[1]).any()):
        raise InvalidInputError(
            f"The 'pairs' parameter of {owner} must index the table's {T.shape[0]} rows and "
            f"{T.shape[1]} columns."
        )
    matched = int(T[P[:, 0], P[:, 1]].sum()) if P.size else 0
    return matched / int(T.sum())


SPLIT_SEEDS = 3  # k-means++ restarts of each cluster's cut in two
SPLIT_ROWS = 20_000  # a window's split is measured on a sample of at most this many rows
SPLIT_ITER = 30
SPLIT_MIN_ROWS = 10  # a cluster with fewer rows in a window is not cut


def cluster_split_savings(
    X: ArrayLike,
    labels: ArrayLike,
    k: int,
    *,
    random_state: RandomStateLike = None,
) -> NDArray[np.float64]:
    """Per cluster, the inertia per row that cutting it in two saves.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Rows in the model's scaled units.
    labels : array-like of shape (n,)
        The cluster of each row, in ``[0, k)``.
    k : int
    random_state : int, Generator, RandomState or None
        Seeds the cuts (``SPLIT_SEEDS`` k-means++ starts of 2-means each).

    Returns
    -------
    ndarray of shape (k,)
        ``(I_1 - I_2) / (n_c - 1)`` per cluster of ``n_c`` rows, with ``I_1`` the
        inertia about their mean of all but the row farthest from it (a lone far row is
        an outlier, not a regime, and cutting it away would outweigh any cut of a tight
        cluster) and ``I_2`` the best inertia of two centres on them (Lloyd from each
        start, every cluster's cut at once: ``_best_cuts``); NaN for a cluster of
        fewer than ``SPLIT_MIN_ROWS`` rows. Memory: one copy of ``X``.
    """
    owner = "cluster_split_savings"
    Xa = np.asarray(check_array(X, name="X"), dtype=np.float64)
    k = check_int(k, "k", low=1, owner=owner)
    y = check_labels(labels, Xa.shape[0], k, owner=owner)
    rng = check_random_state(random_state)
    order = np.argsort(y, kind="stable")
    P = Xa[order]  # a copy: each cluster's rows together, centred on their mean below
    bounds = np.searchsorted(y[order], np.arange(k + 1))
    size = np.diff(bounds)
    big = size >= SPLIT_MIN_ROWS
    kept = size - big  # a cluster that is cut leaves its farthest row out
    whole = np.zeros(k)
    for c in map(int, np.flatnonzero(size)):
        rows = P[bounds[c] : bounds[c + 1]]
        rows -= rows.mean(axis=0)
        if big[c]:
            _last_farthest(rows)
            rows = rows[:-1]
            rows -= rows.mean(axis=0)
        whole[c] = float(np.einsum("ij,ij->", rows, rows))
    savings = np.full(k, np.nan)
    savings[big] = 0.0
    cut = np.flatnonzero(big & (whole > 0.0))
    if cut.size:
        spans = [slice(int(bounds[c]), int(bounds[c]) + int(kept[c])) for c in cut]
        # fit_kmeans's stopping rule: a shift of 1e-4 of the cluster's mean variance
        tol = 1e-4 * whole[cut] / (kept[cut] * Xa.shape[1])
        savings[cut] = _best_cuts(P, spans, tol, rng) / kept[cut]
    return savings


def _last_farthest(rows: NDArray[np.float64]) -> None:
    """Swap the row farthest from the origin (``rows`` centred on their mean) into the
    last place, in place."""
    far = int(np.argmax(np.einsum("ij,ij->i", rows, rows)))
    rows[[far, -1]] = rows[[-1, far]]


def _best_cuts(
    P: NDArray[np.float64], spans: list[slice], tol: NDArray[np.float64], rng: np.random.Generator
) -> NDArray[np.float64]:
    """Per group of rows (``P[span]``, centred on its mean, two distinct rows at least)
    the most that two centres save over one: the best over ``SPLIT_SEEDS`` starts.

    Each start picks the two centres by k-means++ (a random row, then one drawn in
    proportion to the squared distance from it) and runs Lloyd on every group at once:
    a row goes to the second centre when it lies past the perpendicular bisector,
    ``x . (b - a) > (b - a) . (a + b) / 2``, until no row moves, every group's centres
    move by at most ``tol`` (squared, summed over both), or after ``SPLIT_ITER`` steps.
    Each step is two matrix-vector products per group (no copy of the rows), and the
    saving of a cut is its between-groups sum of squares, ``|s|^2 n / (n_a n_b)`` with
    ``s`` the sum of the second part's rows (the first's is ``-s``): no difference of
    large inertias.
    """
    m, d = len(spans), P.shape[1]
    n = np.array([s.stop - s.start for s in spans], dtype=np.float64)
    norms = np.einsum("ij,ij->i", P, P)
    best = np.zeros(m)
    for _ in range(SPLIT_SEEDS):
        a, b = _plus_plus(P, norms, spans, rng)
        side = np.zeros(P.shape[0], dtype=bool)
        sums = np.zeros((m, d))
        count = np.zeros(m)
        for step in range(SPLIT_ITER):
            normal = b - a
            level = 0.5 * np.einsum("ij,ij->i", normal, a + b)
            moved = np.zeros(P.shape[0], dtype=bool)
            for g, s in enumerate(spans):
                moved[s] = P[s] @ normal[g] > level[g]
            if step and np.array_equal(moved, side):
                break
            side = moved
            weight = side.astype(np.float64)
            for g, s in enumerate(spans):
                sums[g] = weight[s] @ P[s]
                count[g] = weight[s].sum()
            new_a = np.where((count < n)[:, None], -sums / np.maximum(n - count, 1.0)[:, None], a)
            new_b = np.where((count > 0)[:, None], sums / np.maximum(count, 1.0)[:, None], b)
            shift = ((new_a - a) ** 2).sum(axis=1) + ((new_b - b) ** 2).sum(axis=1)
            a, b = new_a, new_b
            if np.all(shift <= tol):
                break
        parted = (count > 0) & (count < n)
        saving = np.where(
            parted, (sums**2).sum(axis=1) * n / np.maximum(count * (n - count), 1.0), 0.0
        )
        best = np.maximum(best, saving)
    return best


def _plus_plus(
    P: NDArray[np.float64], norms: NDArray[np.float64], spans: list[slice], rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """k-means++ starts of two centres per group: a random row, then a row drawn in
    proportion to its squared distance from the first (``norms``: the rows' squared norms)."""
    a = np.empty((len(spans), P.shape[1]))
    b = np.empty_like(a)
    for g, s in enumerate(spans):
        rows = P[s]
        a[g] = rows[rng.integers(rows.shape[0])]
        sq = np.maximum(norms[s] - 2.0 * (rows @ a[g]) + a[g] @ a[g], 0.0)
        mass = np.cumsum(sq)
        pick = int(np.searchsorted(mass, rng.random() * mass[-1], side="right"))
        b[g] = rows[min(pick, rows.shape[0] - 1)]
    return a, b


def split_baseline(
    X: ArrayLike,
    labels: ArrayLike,
    block: ArrayLike,
    k: int,
    *,
    random_state: RandomStateLike = None,
) -> NDArray[np.float64]:
    """What cutting each cluster in two saves per row in a reference window: the median
    over the windows (``block``, one id per window) of :func:`cluster_split_savings`.
    0.0 for a cluster that no window holds ``SPLIT_MIN_ROWS`` rows of, or whose rows
    never differ: :func:`split_gain` leaves it out."""
    Xa = check_array(X, name="X")
    blk = np.asarray(block, dtype=np.intp)
    y = check_labels(labels, Xa.shape[0], k, owner="split_baseline")
    rng = check_random_state(random_state)
    ids = np.unique(blk)
    per_block = np.full((max(1, ids.shape[0]), k), np.nan)
    for i, b in enumerate(ids):
        rows = blk == b
        per_block[i] = cluster_split_savings(Xa[rows], y[rows], k, random_state=rng)
    seen = np.isfinite(per_block).any(axis=0)
    out = np.zeros(k)
    out[seen] = np.nanmedian(per_block[:, seen], axis=0)
    return out


def split_gain(
    X: ArrayLike,
    centers: ArrayLike,
    baseline: ArrayLike,
    *,
    random_state: RandomStateLike = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
) -> SplitGain:
    """How many times as much a cluster saves per row, cut in two, as in the reference.

    Parameters
    ----------
    X : array-like of shape (n, d)
        The window, in the model's scaled units (a sample of ``SPLIT_ROWS`` rows is used).
    centers : array-like of shape (k, d)
        The live model's centres: each row goes to the nearest.
    baseline : array-like of shape (k,)
        :func:`split_baseline` of the reference; a cluster whose baseline is 0 is left out.
    random_state : int, Generator, RandomState or None
        Seeds the sample and the cuts.

    Returns
    -------
    SplitGain
        ``gain``: the largest ratio over clusters of :func:`cluster_split_savings` on the
        window to the baseline, and ``cluster`` the cluster that has it. A regime that
        appears beside or between the clusters joins the nearest one, whose cut in two
        then separates it and saves far more per row than a cut of that cluster did in
        the reference. A (k+1)-th centre over the whole window measures the same thing,
        but there the clusters whose shape already cuts well drown it.

    Notes
    -----
    Undefined (``defined=False``, gain 0) when no cluster with a baseline holds
    ``SPLIT_MIN_ROWS`` rows of the window.
    """
    owner = "split_gain"
    Xa = check_array(X, name="X")
    C = check_array(centers, name="centers", dtype=Xa.dtype, rows="n_clusters")
    if C.shape[1] != Xa.shape[1]:
        raise InvalidInputError(
            f"The 'centers' parameter of {owner} must have {Xa.shape[1]} feature(s); "
            f"got an array of shape {C.shape}."
        )
    base = np.asarray(baseline, dtype=np.float64)
    if base.shape != (C.shape[0],) or not np.isfinite(base).all() or (base < 0).any():
        raise InvalidInputError(
            f"The 'baseline' parameter of {owner} must hold one non-negative number per "
            f"cluster ({C.shape[0]}); got an array of shape {base.shape}."
        )
    rng = check_random_state(random_state)
    if Xa.shape[0] > SPLIT_ROWS:
        Xa = Xa[np.sort(rng.choice(Xa.shape[0], SPLIT_ROWS, replace=False))]
    labels, _ = assign_labels(Xa, C, working_memory_mib=working_memory_mib)
    savings = cluster_split_savings(Xa, labels, C.shape[0], random_state=rng)
    usable = (base > 0) & np.isfinite(savings)
    if not usable.any():
        return SplitGain(0.0, -1, defined=False)
    ratios = np.where(usable, savings / np.where(usable, base, 1.0), -np.inf)
    best = int(np.argmax(ratios))
    return SplitGain(gain=float(ratios[best]), cluster=best)
