"""Outliers: per-cluster distance thresholds fitted on the reference, and the outlier ratio.

Both functions take **squared** Euclidean distances to the assigned centre, as
``assign_labels`` returns them; thresholds are stored and compared as plain (not
squared) Euclidean distances in scaled units, the unit of ``docs/metrics.md``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.checks import check_float, check_int
from monitor.core._checks import check_labels, check_sq_distances
from monitor.records import OutlierRate, OutlierThresholds

__all__ = ["fit_outlier_thresholds", "outlier_rate"]

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
    n_out = int(np.count_nonzero(is_out))
    counts = np.bincount(lab, minlength=k)
    per_cluster_out = np.bincount(lab, weights=is_out.astype(np.float64), minlength=k)
    per_cluster = np.where(counts > 0, per_cluster_out / np.maximum(counts, 1), 0.0)
    return OutlierRate(ratio=n_out / sq.shape[0], n_outliers=n_out, per_cluster=per_cluster)
