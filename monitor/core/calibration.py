"""Thresholds for each SLI at a target false-alarm rate, from the reference window.

Under the no-change hypothesis a production window is a fresh draw from the
distribution the reference came from, and the live model, its bins, shares and
outlier thresholds were all estimated on that reference. A fresh window's SLI
therefore varies for two reasons: the window's own sampling, and the reference's
(what was estimated on it). Each resample draws both from the reference, with
replacement: a pseudo-reference ``R*`` of ``n`` rows and a window ``W*`` of
``window_size`` rows, and computes the SLI of ``W*`` against what ``R*`` would have
estimated. The threshold is the ``1 - false_alarm_rate`` quantile of the resampled
values (``false_alarm_rate`` for SLIs that alarm when low).

A third effect needs refits: the centres were fitted on the reference, so distances,
silhouettes and outlier flags look better there than on fresh data. With ``n_refits``
k-means refits this optimism is estimated by the bootstrap (Efron 1983) and added.

Per-point quantities (cluster, squared distance, outlier flag, simplified silhouette,
the bin of each feature) are computed once; a resample only gathers and counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.checks import (
    RandomStateLike,
    check_array,
    check_float,
    check_int,
    check_random_state,
)
from monitor.core._checks import check_shares
from monitor.core._chunking import DEFAULT_WORKING_MEMORY_MIB
from monitor.core._distances import own_and_nearest_other, silhouette_from_ab
from monitor.core._psi import bin_index, psi_from_fractions
from monitor.core.drift import DEFAULT_EPSILON, centroid_drift
from monitor.core.kmeans import assign_labels, fit_kmeans
from monitor.core.outliers import fit_outlier_thresholds
from monitor.errors import InvalidInputError
from monitor.records import Calibration, OutlierThresholds, ReferenceBins
from monitor.slis import (
    CENTROID_DRIFT_MAX,
    CLUSTER_SIZE_CV,
    FEATURE_PSI_MAX,
    INERTIA,
    LABEL_PSI,
    OUTLIER_RATIO,
    SIMPLIFIED_SILHOUETTE,
    SLIS,
)

__all__ = ["DIRECTIONS", "calibrate"]

F64 = NDArray[np.float64]

#: Which side of its threshold each calibrated SLI alarms on (from the SLI catalogue).
DIRECTIONS: Mapping[str, str] = MappingProxyType(
    {
        key: SLIS[key].direction
        for key in (
            FEATURE_PSI_MAX,  # the largest PSI over the features
            LABEL_PSI,
            OUTLIER_RATIO,
            SIMPLIFIED_SILHOUETTE,
            INERTIA,  # over a window of window_size points
            CLUSTER_SIZE_CV,
            CENTROID_DRIFT_MAX,  # only with n_refits > 0
        )
    }
)

_SEED_HIGH = 2**31 - 1


class _FeaturePsi:
    """Per-feature bin shares and max-over-features PSI of resampled rows."""

    def __init__(self, X: F64, bins: ReferenceBins) -> None:
        sizes = np.array([e.shape[0] + 1 for e in bins.edges], dtype=np.intp)
        self.offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.intp)
        self.total = int(sizes.sum())
        # Bin of every reference value, shifted so that all features share one bincount.
        self.index = np.empty(X.shape, dtype=np.min_scalar_type(self.total))
        for j, edges in enumerate(bins.edges):
            self.index[:, j] = bin_index(edges, X[:, j]) + self.offsets[j]
        self.reference = [np.asarray(f, dtype=np.float64) for f in bins.reference_fractions]
        self.epsilon = bins.epsilon

    def fractions(self, rows: NDArray[np.intp]) -> list[F64]:
        """Shares of ``rows`` in each feature's bins."""
        counts = np.bincount(self.index[rows].ravel(), minlength=self.total)
        return np.split(counts.astype(np.float64) / rows.shape[0], self.offsets[1:])

    def max_psi(self, rows: NDArray[np.intp], reference: list[F64] | None = None) -> float:
        """Largest PSI over the features of ``rows`` against ``reference`` (default: the bins')."""
        p_all = self.reference if reference is None else reference
        return max(
            psi_from_fractions(p, q, self.epsilon)
            for p, q in zip(p_all, self.fractions(rows), strict=True)
        )


def _assign(X: F64, C: F64, working_memory_mib: float) -> tuple[NDArray[np.intp], F64]:
    labels, sq = assign_labels(X, C, working_memory_mib=working_memory_mib)
    return np.asarray(labels, dtype=np.intp), np.asarray(sq, dtype=np.float64)


def _per_point(
    X: F64, C: F64, labels: NDArray[np.intp], sq: F64, limits: F64, working_memory_mib: float
) -> dict[str, F64]:
    """Per-point values whose window mean is an SLI: outlier flag, squared distance, silhouette."""
    values = {
        OUTLIER_RATIO: (np.sqrt(sq) > limits[labels]).astype(np.float64),
        INERTIA: sq,
    }
    if C.shape[0] >= 2:
        a, b = own_and_nearest_other(X, labels, C, working_memory_mib)
        values[SIMPLIFIED_SILHOUETTE] = silhouette_from_ab(a, b)
    return values


def _cv(shares: F64) -> float:
    """Coefficient of variation of cluster sizes from their shares (population std / mean)."""
    mean = 1.0 / shares.shape[0]
    return float(np.sqrt(np.mean((shares - mean) ** 2)) / mean)


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
    shares = check_shares(reference_shares, k, name="reference_shares", owner=owner)
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
        The reference window in scaled units: the one the centres, bins, outlier
        thresholds and shares were estimated on.
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
        Resampled (reference, window) pairs. The quantile rests on about
        ``n_resamples * false_alarm_rate`` exceedances; use ``>= 10 / false_alarm_rate``
        for a stable threshold.
    n_refits : int, default 0
        k-means refits, each on a resampled reference and on a resampled window, warm
        started from ``centers`` (one Lloyd run each). They estimate the optimism of the
        centre-dependent SLIs on the reference (added to their thresholds) and calibrate
        ``centroid_drift_max``. Cost: ``n_refits`` runs on n rows and ``n_refits`` on
        ``window_size`` rows, plus one assignment of the reference per refit. Without
        refits, outlier ratio, inertia and simplified silhouette thresholds are too
        tight when ``k * d`` is not small next to ``n`` (see ``docs/slis.md``).
    random_state : int, Generator, RandomState or None
        Seeds the resampling and the refits.
    working_memory_mib : float
        Budget for the passes over the reference (assignment and silhouette).

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
    Resampling schemes per SLI. Feature PSI: bin shares of ``W*`` against those of ``R*``
    (edges fixed). Label PSI: window shares of ``W*`` against a multinomial draw of ``n``
    labels from ``reference_shares``. Window means (outlier ratio, inertia / window_size,
    simplified silhouette): the reference's value plus ``mean(W*) - mean(R*)``, so that
    the spread is that of a window minus a reference. Cluster-size CV: likewise, from the
    shares. The bins' edges are not re-estimated per resample.
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

    labels, sq = _assign(X, C, working_memory_mib)
    limits = np.asarray(outlier_thresholds.thresholds, dtype=np.float64)
    means = _per_point(X, C, labels, sq, limits, working_memory_mib)
    centre = {name: float(v.mean()) for name, v in means.items()}
    scale = {INERTIA: float(window_size)}  # inertia is a sum over the window
    cv_reference = _cv(shares)
    features = _FeaturePsi(X, bins)

    values: dict[str, list[float]] = {name: [] for name in DIRECTIONS}
    for _ in range(n_resamples):
        ref_rows = np.asarray(rng.integers(0, n, size=n), dtype=np.intp)
        win_rows = np.asarray(rng.integers(0, n, size=window_size), dtype=np.intp)
        ref_shares = rng.multinomial(n, shares).astype(np.float64) / n
        win_shares = np.bincount(labels[win_rows], minlength=k).astype(np.float64) / window_size
        values[FEATURE_PSI_MAX].append(features.max_psi(win_rows, features.fractions(ref_rows)))
        values[LABEL_PSI].append(psi_from_fractions(ref_shares, win_shares, DEFAULT_EPSILON))
        for name, v in means.items():
            shift = float(v[win_rows].mean()) - float(v[ref_rows].mean())
            values[name].append(scale.get(name, 1.0) * (centre[name] + shift))
        values[CLUSTER_SIZE_CV].append(cv_reference + _cv(win_shares) - _cv(ref_shares))

    # Optimism (Efron's bootstrap): a model fitted on R* measured on the reference, minus
    # the same model measured on R*. The same fits give the no-change centroid drift
    # between a model of a reference and a model of a window.
    optimism = dict.fromkeys(means, 0.0)
    for _ in range(n_refits):
        ref_rows = np.asarray(rng.integers(0, n, size=n), dtype=np.intp)
        win_rows = np.asarray(rng.integers(0, n, size=window_size), dtype=np.intp)
        seeds = rng.integers(0, _SEED_HIGH, size=2)
        fits: list[Any] = [
            fit_kmeans(
                X[rows],
                k,
                init=C,
                n_init=1,
                random_state=int(seed),
                working_memory_mib=working_memory_mib,
            )
            for rows, seed in ((ref_rows, seeds[0]), (win_rows, seeds[1]))
        ]
        C_ref = np.asarray(fits[0].centers, dtype=np.float64)
        values[CENTROID_DRIFT_MAX].append(centroid_drift(C_ref, fits[1].centers).max)
        lab_b, sq_b = _assign(X, C_ref, working_memory_mib)
        refit = fit_outlier_thresholds(
            sq_b[ref_rows], lab_b[ref_rows], k, quantile=float(outlier_thresholds.quantile)
        )
        limits_b = np.asarray(refit.thresholds, dtype=np.float64)
        out_of_bag = np.ones(n, dtype=bool)
        out_of_bag[ref_rows] = False
        for name, v in _per_point(X, C_ref, lab_b, sq_b, limits_b, working_memory_mib).items():
            o = float(v[out_of_bag].mean()) - float(v[ref_rows].mean())
            optimism[name] += o / n_refits
    for name, opt in optimism.items():
        values[name] = [x + scale.get(name, 1.0) * opt for x in values[name]]

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
