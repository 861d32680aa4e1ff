"""Outliers: per-cluster distance thresholds fitted on the reference, and the outlier ratio.

Both functions take **squared** Euclidean distances to the assigned centre, as
``assign_labels`` returns them; thresholds are stored and compared as plain (not
squared) Euclidean distances in scaled units, the unit of ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.checks import check_float, check_int
from monitor.core._checks import check_labels, check_sq_distances
from monitor.errors import InvalidInputError
from monitor.records import OutlierRate, OutlierThresholds

__all__ = [
    "fit_outlier_thresholds",
    "leave_out_thresholds",
    "outlier_counts",
    "outlier_rate",
    "outlier_rate_from_counts",
]

F64 = NDArray[np.float64]


def _distances(sq_distances: F64) -> F64:
    return np.sqrt(sq_distances)


def _thresholds(dist: F64, labels: NDArray[np.intp], k: int, q: float) -> F64:
    """Per-cluster ``q``-quantile of ``dist``, shape (k,); the overall one for empty clusters."""
    thresholds = np.full(k, float(np.quantile(dist, q)), dtype=np.float64)
    order = np.argsort(labels, kind="stable")
    populated, starts = np.unique(labels[order], return_index=True)
    for cluster, group in zip(populated, np.split(dist[order], starts[1:]), strict=True):
        thresholds[cluster] = np.quantile(group, q)
    return thresholds


def fit_outlier_thresholds(
    sq_distances: ArrayLike,
    labels: ArrayLike,
    n_clusters: int,
    *,
    quantile: float = 0.99,
) -> OutlierThresholds:
    """Per-cluster quantile of the distance to the centre, on the reference.

    Parameters
    ----------
    sq_distances : array-like of shape (n,)
        Squared Euclidean distance of each reference point to its assigned centre.
    labels : array-like of shape (n,)
        Assigned cluster of each point, in ``[0, n_clusters)``.
    n_clusters : int
    quantile : float, default 0.99
        In (0, 1]; the share of each cluster's reference points kept inside its threshold.

    Returns
    -------
    OutlierThresholds
        ``thresholds`` of shape (k,): the ``quantile`` (numpy's default linear method) of
        the Euclidean distances of each cluster's points; a cluster with no reference
        point gets the same quantile over all points.
    """
    owner = "fit_outlier_thresholds"
    sq = check_sq_distances(sq_distances, owner=owner)
    k = check_int(n_clusters, "n_clusters", low=1, owner=owner)
    lab = check_labels(labels, sq.shape[0], k, owner=owner)
    q = check_float(quantile, "quantile", low=0.0, high=1.0, low_inclusive=False, owner=owner)
    return OutlierThresholds(thresholds=_thresholds(_distances(sq), lab, k, q), quantile=q)


def leave_out_thresholds(
    sq_distances: ArrayLike,
    labels: ArrayLike,
    groups: ArrayLike,
    thresholds: OutlierThresholds,
    n_groups: int,
) -> F64:
    """Each group's per-cluster thresholds fitted without the group's own points.

    A window of the reference judged by thresholds fitted on it too sees fewer outliers
    than a fresh window does (the quantile was placed among its own points); with a small
    reference the difference is large. Fitted without it, the thresholds treat it as the
    fresh window it stands for in a null distribution.

    Parameters
    ----------
    sq_distances, labels : as for :func:`fit_outlier_thresholds`.
    groups : array-like of shape (n,)
        Group of each point (a reference window), in ``[0, n_groups)``.
    thresholds : OutlierThresholds
        Their ``quantile`` is used; their ``thresholds`` stand in where a cluster has no
        point outside a group.
    n_groups : int

    Returns
    -------
    ndarray of shape (n_groups, k)
        What :func:`fit_outlier_thresholds` fits on the points outside each group (numpy's
        linear quantile, so a group with no point changes nothing).
    """
    owner = "leave_out_thresholds"
    sq = check_sq_distances(sq_distances, owner=owner)
    t = np.asarray(thresholds.thresholds, dtype=np.float64)
    k = t.shape[0]
    lab = check_labels(labels, sq.shape[0], k, owner=owner)
    g = check_labels(groups, sq.shape[0], check_int(n_groups, "n_groups", low=1), owner=owner)
    out = np.broadcast_to(t, (n_groups, k)).copy()
    dist = _distances(sq)
    for cluster in range(k):
        mine = lab == cluster
        values = dist[mine]
        order = np.argsort(values, kind="stable")
        values, owners = values[order], g[mine][order]
        _leave_each_out(values, owners, thresholds.quantile, out[:, cluster])
    return out


def _leave_each_out(values: F64, owners: NDArray[np.intp], q: float, out: F64) -> None:
    """``out[g]``: the ``q``-quantile of sorted ``values`` without those owned by group g.

    Leaving out the points at sorted positions ``p`` (ascending), rank ``j`` of the rest
    is position ``j + s``, with ``s`` the number of ``p[i] - i <= j``.
    """
    by_owner = np.argsort(owners, kind="stable")  # positions, grouped, ascending in a group
    counts = np.bincount(owners, minlength=out.shape[0])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    for group in np.flatnonzero(counts):
        p = by_owner[starts[group] : starts[group] + counts[group]]
        rest = values.shape[0] - p.shape[0]
        if rest == 0:
            continue  # every point of the cluster is the group's: keep the fitted one
        shift = p - np.arange(p.shape[0])
        h = q * (rest - 1)
        lo = math.floor(h)
        hi = min(lo + 1, rest - 1)
        at_lo = values[lo + np.searchsorted(shift, lo, side="right")]
        at_hi = values[hi + np.searchsorted(shift, hi, side="right")]
        out[group] = at_lo + (h - lo) * (at_hi - at_lo)


def outlier_rate(
    thresholds: OutlierThresholds, sq_distances: ArrayLike, labels: ArrayLike
) -> OutlierRate:
    """Share of a window's points farther from their centre than their cluster's threshold.

    Parameters
    ----------
    thresholds : OutlierThresholds
        From :func:`fit_outlier_thresholds`.
    sq_distances : array-like of shape (n,)
        Squared Euclidean distance of each window point to its assigned centre.
    labels : array-like of shape (n,)
        Assigned cluster of each point, in ``[0, k)``.

    Returns
    -------
    OutlierRate
        ``ratio`` in [0, 1] (a point is an outlier when its distance is strictly above
        the threshold), ``n_outliers``, and ``per_cluster`` (k,) ratios, 0.0 for clusters
        with no point in the window.
    """
    owner = "outlier_rate"
    sq = check_sq_distances(sq_distances, owner=owner)
    t = np.asarray(thresholds.thresholds, dtype=np.float64)
    k = t.shape[0]
    lab = check_labels(labels, sq.shape[0], k, owner=owner)
    is_out = _distances(sq) > t[lab]
    counts = np.bincount(lab, minlength=k)
    return _rate(np.bincount(lab[is_out], minlength=k), counts)


def outlier_counts(
    thresholds: OutlierThresholds, sq_distances: ArrayLike, labels: ArrayLike
) -> NDArray[np.int64]:
    """Outliers per cluster (the counts of ``outlier_rate``), shape (k,).

    They add up over any split of the rows, so a distributed pass sums its pieces'.
    """
    owner = "outlier_counts"
    sq = check_sq_distances(sq_distances, owner=owner)
    t = np.asarray(thresholds.thresholds, dtype=np.float64)
    lab = check_labels(labels, sq.shape[0], t.shape[0], owner=owner)
    return np.bincount(lab[_distances(sq) > t[lab]], minlength=t.shape[0]).astype(np.int64)


def outlier_rate_from_counts(outliers: ArrayLike, counts: ArrayLike) -> OutlierRate:
    """``outlier_rate`` from the outliers and the points of each cluster.

    Parameters
    ----------
    outliers : array-like of shape (k,)
        Outliers per cluster (``outlier_counts``, summed over a window's pieces).
    counts : array-like of shape (k,)
        Points per cluster; at least one point, and at least the outliers of each.

    Returns
    -------
    OutlierRate
        What ``outlier_rate`` returns on the points these counts were taken over.
    """
    o, c = np.asarray(outliers), np.asarray(counts)
    valid = (
        o.ndim == 1
        and o.shape == c.shape
        and o.dtype.kind in "iu"
        and c.dtype.kind in "iu"
        and bool(((o >= 0) & (o <= c)).all())
        and c.sum() > 0
    )
    if not valid:
        raise InvalidInputError(
            "The 'outliers' and 'counts' parameters of outlier_rate_from_counts must be "
            "non-negative integer counts per cluster of one shape, with at most as many "
            "outliers as points in each cluster and at least one point in all."
        )
    return _rate(o, c)


def _rate(outliers: NDArray[Any], counts: NDArray[Any]) -> OutlierRate:
    n_out = int(outliers.sum())
    per_cluster = np.where(counts > 0, outliers / np.maximum(counts, 1), 0.0)
    return OutlierRate(ratio=n_out / int(counts.sum()), n_outliers=n_out, per_cluster=per_cluster)
