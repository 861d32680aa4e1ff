"""Thresholds for each SLI at a target false-alarm rate, from the reference window.

Under the no-change hypothesis a production window is a fresh draw from the
reference's distribution. The reference is the best picture of that distribution we
have, so windows of the production size are bootstrapped from it (drawn with
replacement), each SLI is computed on every resample, and its threshold is the
``1 - false_alarm_rate`` quantile (``false_alarm_rate`` for SLIs that alarm when low).

Every per-point quantity (assigned cluster, squared distance, outlier flag, simplified
silhouette, bin of each feature) is computed once on the reference; a resample then
only gathers and counts, so thresholds for hundreds of resamples cost little more than
one pass over the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.core._chunking import DEFAULT_WORKING_MEMORY_MIB
from monitor.core._validation import (
    RandomStateLike,
    check_array,
    check_float,
    check_int,
    check_random_state,
)
from monitor.core.drift import (
    DEFAULT_EPSILON,
    _bin_index,
    _check_shares,
    _psi_from_fractions,
    centroid_drift,
)
from monitor.core.kmeans import assign_labels, fit_kmeans
from monitor.core.quality import _own_and_nearest_other, _silhouette_from_ab
from monitor.errors import InvalidInputError
from monitor.records import Calibration, OutlierThresholds, ReferenceBins

__all__ = ["DIRECTIONS", "calibrate"]

F64 = NDArray[np.float64]

#: Which side of its threshold each calibrated SLI alarms on.
DIRECTIONS: Mapping[str, str] = MappingProxyType(
    {
        "feature_psi": "above",  # the largest PSI over the features
        "label_psi": "above",
        "outlier_ratio": "above",
        "simplified_silhouette": "below",
        "inertia": "above",  # over a window of window_size points
        "cluster_size_cv": "above",
        "centroid_drift_max": "above",  # only with n_refits > 0
    }
)

_SEED_HIGH = 2**31 - 1


class _FeaturePsi:
    """Max-over-features PSI of resampled windows from precomputed bin indices."""

    def __init__(self, X: F64, bins: ReferenceBins) -> None:
        sizes = np.array([e.shape[0] + 1 for e in bins.edges], dtype=np.intp)
        self.offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.intp)
        self.total = int(sizes.sum())
        dtype = np.min_scalar_type(self.total)
        # Bin of every reference value, shifted so that all features share one bincount.
        self.index = np.empty(X.shape, dtype=dtype)
        for j, edges in enumerate(bins.edges):
            self.index[:, j] = _bin_index(edges, X[:, j]) + self.offsets[j]
        self.reference = [np.asarray(f, dtype=np.float64) for f in bins.reference_fractions]
        self.epsilon = bins.epsilon

    def max_psi(self, rows: NDArray[np.intp]) -> float:
        counts = np.bincount(self.index[rows].ravel(), minlength=self.total)
        q = counts.astype(np.float64) / rows.shape[0]
        parts = np.split(q, self.offsets[1:])
        return max(
            _psi_from_fractions(p, qj, self.epsilon)
            for p, qj in zip(self.reference, parts, strict=True)
        )


def _check_inputs(
    X: F64,
    centers: F64,
    bins: ReferenceBins,
    thresholds: OutlierThresholds,
    reference_shares: ArrayLike,
) -> F64:
    owner = "calibrate"
    d = X.shape[1]
    if centers.shape[1] != d:
        raise InvalidInputError(
            f"The 'centers' parameter of {owner} must have {d} feature(s) to match "
            f"X_ref_scaled; got an array of shape {centers.shape}."
        )
    if len(bins.edges) != d:
        raise InvalidInputError(
            f"The 'bins' parameter of {owner} has {len(bins.edges)} feature(s); "
            f"X_ref_scaled has {d}."
        )
    k = centers.shape[0]
    if np.asarray(thresholds.thresholds).shape != (k,):
        raise InvalidInputError(
            f"The 'outlier_thresholds' parameter of {owner} must hold {k} thresholds, one per "
            f"centre; got shape {np.asarray(thresholds.thresholds).shape}."
        )
    shares = _check_shares(reference_shares, k, name="reference_shares", owner=owner)
    return np.asarray(shares, dtype=np.float64)


def calibrate(
    X_ref_scaled: ArrayLike,
    centers: ArrayLike,
    bins: ReferenceBins,
    outlier_thresholds: OutlierThresholds,
    reference_shares: ArrayLike,
    *,
    window_size: int,
    false_alarm_rate: float = 0.01,
    n_resamples: int = 200,
    n_refits: int = 0,
    random_state: RandomStateLike = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
) -> Calibration:
    """Thresholds at a target false-alarm rate for windows of ``window_size`` points.

    Parameters
    ----------
    X_ref_scaled : array-like of shape (n, d)
        The reference window in scaled units (the one the model, bins and outlier
        thresholds were fitted on).
    centers : array-like of shape (k, d)
        The model's centres.
    bins : ReferenceBins
        The reference's PSI bins.
    outlier_thresholds : OutlierThresholds
        The reference's per-cluster distance thresholds, shape (k,).
    reference_shares : array-like of shape (k,)
        The reference's cluster shares (what ``label_drift`` compares against).
    window_size : int
        Points in a production window; the thresholds depend on it (PSI and label PSI
        shrink roughly as 1 / window_size under no change).
    false_alarm_rate : float, default 0.01
        Target probability, per SLI and per window, of crossing the threshold when
        nothing changed; in (0, 0.5).
    n_resamples : int, default 200
        Bootstrap windows. The quantile is estimated from about
        ``n_resamples * false_alarm_rate`` exceedances; use ``>= 10 / false_alarm_rate``
        for a stable threshold.
    n_refits : int, default 0
        When positive, that many extra bootstrap windows are refitted by k-means warm
        started from ``centers`` (one run each), and ``centroid_drift_max`` is calibrated
        from their Hungarian drift. Cost: ``n_refits`` Lloyd runs on ``window_size``
        points. With fewer than ``1 / false_alarm_rate`` refits the quantile is an
        interpolation between the largest drifts seen, an optimistic (low) threshold.
    random_state : int, Generator, RandomState or None
        Seeds the resampling and the refits.
    working_memory_mib : float
        Budget for the one pass over the reference (assignment and silhouette).

    Returns
    -------
    Calibration
        ``thresholds`` and ``directions`` for ``feature_psi`` (the largest PSI over the
        features: alarming when any feature's PSI is above it keeps the whole family at
        the target rate), ``label_psi``, ``outlier_ratio``, ``simplified_silhouette``
        (``"below"``; left out when k = 1), ``inertia`` (sum over a window of
        ``window_size`` points), ``cluster_size_cv`` and, with refits,
        ``centroid_drift_max``. See :data:`DIRECTIONS`.

    Notes
    -----
    Resampling the reference ignores the reference's own sampling error (the bins and
    shares were estimated on it), so fresh windows cross these thresholds slightly more
    often than ``false_alarm_rate`` when ``window_size`` is not small next to ``n``.
    """
    owner = "calibrate"
    X = np.asarray(check_array(X_ref_scaled, name="X_ref_scaled"), dtype=np.float64)
    C = np.asarray(check_array(centers, name="centers"), dtype=np.float64)
    shares = _check_inputs(X, C, bins, outlier_thresholds, reference_shares)
    window_size = check_int(window_size, "window_size", low=1, owner=owner)
    alpha = check_float(
        false_alarm_rate,
        "false_alarm_rate",
        low=0.0,
        high=0.5,
        low_inclusive=False,
        high_inclusive=False,
        owner=owner,
    )
    n_resamples = check_int(n_resamples, "n_resamples", low=1, owner=owner)
    n_refits = check_int(n_refits, "n_refits", low=0, owner=owner)
    working_memory_mib = check_float(
        working_memory_mib, "working_memory_mib", low=0.0, low_inclusive=False, owner=owner
    )
    rng = check_random_state(random_state)
    n = X.shape[0]
    k = C.shape[0]

    labels, sq = assign_labels(X, C, working_memory_mib=working_memory_mib)
    labels = np.asarray(labels, dtype=np.intp)
    sq = np.asarray(sq, dtype=np.float64)
    limits = np.asarray(outlier_thresholds.thresholds, dtype=np.float64)
    is_outlier = (np.sqrt(sq) > limits[labels]).astype(np.float64)
    silhouette: F64 | None = None
    if k >= 2:
        a, b = _own_and_nearest_other(X, labels, C, working_memory_mib)
        silhouette = _silhouette_from_ab(a, b)
    features = _FeaturePsi(X, bins)

    values: dict[str, list[float]] = {name: [] for name in DIRECTIONS}
    for _ in range(n_resamples):
        rows = rng.integers(0, n, size=window_size)
        lab = labels[rows]
        counts = np.bincount(lab, minlength=k).astype(np.float64)
        values["feature_psi"].append(features.max_psi(rows))
        values["label_psi"].append(
            _psi_from_fractions(shares, counts / window_size, DEFAULT_EPSILON)
        )
        values["outlier_ratio"].append(float(is_outlier[rows].mean()))
        if silhouette is not None:
            values["simplified_silhouette"].append(float(silhouette[rows].mean()))
        values["inertia"].append(float(sq[rows].sum()))
        mean = window_size / k
        values["cluster_size_cv"].append(float(np.sqrt(np.mean((counts - mean) ** 2)) / mean))

    for _ in range(n_refits):
        rows = rng.integers(0, n, size=window_size)
        seed = int(rng.integers(0, _SEED_HIGH))
        refit: Any = fit_kmeans(
            X[rows],
            k,
            init=C,
            n_init=1,
            random_state=seed,
            working_memory_mib=working_memory_mib,
        )
        values["centroid_drift_max"].append(centroid_drift(C, refit.centers).max)

    thresholds: dict[str, float] = {}
    directions: dict[str, str] = {}
    for name, samples in values.items():
        if not samples:
            continue
        q = alpha if DIRECTIONS[name] == "below" else 1.0 - alpha
        thresholds[name] = float(np.quantile(np.asarray(samples), q))
        directions[name] = DIRECTIONS[name]
    return Calibration(
        thresholds=thresholds,
        directions=directions,
        false_alarm_rate=alpha,
        window_size=window_size,
        n_resamples=n_resamples,
    )
