"""The measure step: validate a window, score the live model, train a candidate, compare.

Pure: no clock, no store, no source. Everything it finds is a ``Measurement``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor import slis as S
from monitor.config import KRange, ModelSettings, ThresholdSettings
from monitor.core import calibration, drift, outliers, quality, scaling, selection
from monitor.core.kmeans import assign_labels, fit_kmeans
from monitor.errors import InvalidValuesError, SchemaError, TooFewRowsError, TrainingError
from monitor.pipeline.phases import Phases
from monitor.records import Decision, Measurement, Scaler, Snapshot, Window, WindowView

__all__ = [
    "RESTART_ROWS",
    "SAMPLE_ROWS",
    "RunContext",
    "measure",
    "prepare",
    "retrain",
    "schema_hash",
    "score",
    "seed_for",
    "train_reference",
    "validate_window",
]

log = logging.getLogger(__name__)

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.integer[Any]]

SAMPLE_ROWS = 5000  # rows of the training window kept in a snapshot (diffs, calibration)
RESTART_ROWS = 50_000  # k-means++ restarts of a candidate run on a sample this large
K_SELECTION_ROWS = 20_000  # choosing k is quadratic in places: it runs on a sample
_TRAINING_ERRORS = (ValueError, FloatingPointError, np.linalg.LinAlgError)


@dataclass(frozen=True)
class RunContext:
    """What every step of one run shares: the run's time and the process's settings."""

    now: float  # unix seconds: the end of the window and the new snapshots' creation time
    package_version: str = ""
    working_memory_mib: float = 64.0


def schema_hash(features: tuple[str, ...]) -> str:
    """A short stable hash of the ordered feature names."""
    return hashlib.sha256("\x1f".join(features).encode()).hexdigest()[:16]


def seed_for(base: int, window_start: float) -> int:
    """Same model, same window: same seed, whatever the wall clock says."""
    return (base * 1_000_003 + int(window_start)) % (2**32)


# ---------------------------------------------------------------------------- validate


def validate_window(window: Window, model: ModelSettings) -> FloatArray:
    """Check schema and values of a window; return its rows (NaN rows dropped by policy)."""
    where = f"model {model.name!r}, window {window.label or _span(window)}"
    if tuple(window.features) != model.features:
        raise SchemaError(f"{where}: {_schema_problem(model.features, tuple(window.features))}")
    X = np.asarray(window.X)
    if X.ndim != 2 or X.shape[1] != len(model.features):
        raise SchemaError(
            f"{where}: expected {len(model.features)} columns ({', '.join(model.features)}); "
            f"got an array of shape {X.shape}"
        )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    X = _drop_invalid_rows(X, model, where)
    need = max(model.validation.min_rows, _k_max(model))
    if X.shape[0] < need:
        raise TooFewRowsError(
            f"{where}: {X.shape[0]} valid rows; at least {need} required "
            f"(validation.min_rows={model.validation.min_rows}, k up to {_k_max(model)})"
        )
    return X


def _drop_invalid_rows(X: FloatArray, model: ModelSettings, where: str) -> FloatArray:
    # NaN and infinity survive a sum, so a finite sum proves a clean window in one pass
    # without a (n, d) mask. A sum that overflows only sends a clean window down the
    # slow path, which then finds nothing.
    with np.errstate(over="ignore"):
        if np.isfinite(X.sum()):
            return X
    bad_rows = ~np.isfinite(X).all(axis=1)
    n_bad = int(bad_rows.sum())
    if not n_bad:
        return X
    per_feature = (~np.isfinite(X)).sum(axis=0)
    worst = ", ".join(
        f"{model.features[j]}: {int(per_feature[j])}" for j in np.flatnonzero(per_feature)[:5]
    )
    ratio = n_bad / max(1, X.shape[0])
    v = model.validation
    if v.nan_policy == "fail" or ratio > v.max_invalid_ratio:
        raise InvalidValuesError(
            f"{where}: {n_bad} of {X.shape[0]} rows ({ratio:.1%}) hold NaN or infinity "
            f"({worst}); nan_policy={v.nan_policy}, max_invalid_ratio={v.max_invalid_ratio}"
        )
    log.warning("%s: dropped %d rows with NaN or infinity (%s)", where, n_bad, worst)
    return X[~bad_rows]


def _span(window: Window) -> str:
    return f"[{window.start:.0f}, {window.end:.0f})"


def _k_max(model: ModelSettings) -> int:
    return model.k.max if isinstance(model.k, KRange) else model.k


def _schema_problem(expected: tuple[str, ...], got: tuple[str, ...]) -> str:
    missing = [f for f in expected if f not in got]
    extra = [f for f in got if f not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        return "; ".join(parts) + f" (expected {list(expected)})"
    return f"columns are out of order: expected {list(expected)}, got {list(got)}"


# ---------------------------------------------------------------------------- score


def prepare(X: FloatArray, scaler: Scaler, metric: str) -> FloatArray:
    """Scale with a frozen scaler; for cosine models, normalise the rows too."""
    Xs = scaling.transform(scaler, X)
    if metric == "cosine":
        norms = np.linalg.norm(Xs, axis=1, keepdims=True)
        Xs = Xs / np.where(norms > 0, norms, 1.0)
    return Xs


def score(
    Xs: FloatArray,
    snapshot: Snapshot,
    *,
    seed: int,
    silhouette_sample: int,
    working_memory_mib: float,
) -> WindowView:
    """Every SLI of the core for ``snapshot`` on the scaled window ``Xs``."""
    k = snapshot.k
    labels, sq = assign_labels(Xs, snapshot.centers, working_memory_mib=working_memory_mib)
    # The labels and distances stay alive through every pass below: the passes' chunks
    # get what remains of the budget.
    wm = max(1.0, working_memory_mib - (labels.nbytes + sq.nbytes) / 2**20)
    sizes = quality.cluster_sizes(labels, k)
    sil = quality.silhouette_sampled(
        Xs, labels, sample_size=silhouette_sample, random_state=seed, working_memory_mib=wm
    )
    # assign_labels already measured every point's distance to its own centre.
    simp = quality.silhouette_simplified(
        Xs, labels, snapshot.centers, sq_distances=sq, working_memory_mib=wm
    )
    psi = drift.psi(snapshot.bins, Xs, working_memory_mib=wm)
    label = drift.label_drift(snapshot.reference_shares, labels, k)
    out = outliers.outlier_rate(snapshot.outliers, sq, labels)
    warn = snapshot.thresholds.get(S.THRESHOLD_FEATURE_PSI_WARNING, np.inf)
    db = quality.davies_bouldin(
        Xs, labels, snapshot.centers, sq_distances=sq, working_memory_mib=wm
    )
    ch = quality.calinski_harabasz(Xs, labels, working_memory_mib=wm)
    values = {
        S.SILHOUETTE: sil.score,
        S.SIMPLIFIED_SILHOUETTE: simp.score,
        S.INERTIA: float(sq.sum(dtype=np.float64)),
        S.DAVIES_BOULDIN: db.value,
        S.CALINSKI_HARABASZ: ch.value,
        S.CLUSTER_SIZE_CV: sizes.cv,
        S.EMPTY_CLUSTERS: float(sizes.n_empty),
        S.OUTLIER_RATIO: out.ratio,
        S.FEATURE_PSI_MAX: psi.max,
        S.FEATURES_DRIFTING: float((psi.per_feature > warn).sum()),
        S.LABEL_PSI: label.psi,
    }
    return WindowView(
        labels=labels,
        sq_distances=sq,
        slis={key: float(v) for key, v in values.items()},
        feature_psi={f: float(v) for f, v in zip(snapshot.features, psi.per_feature, strict=True)},
        cluster_sizes=tuple(int(c) for c in sizes.counts),
        cluster_shares=tuple(float(s) for s in sizes.shares),
    )


# ---------------------------------------------------------------------------- train


def _choose_k(Xs: FloatArray, model: ModelSettings, seed: int, wm: float) -> int:
    if not isinstance(model.k, KRange):
        return model.k
    rng = np.random.default_rng(seed)
    n = Xs.shape[0]
    sample = Xs if n <= K_SELECTION_ROWS else Xs[rng.choice(n, K_SELECTION_ROWS, replace=False)]
    ks = list(range(model.k.min, model.k.max + 1))
    sel = selection.choose_k(sample, ks, random_state=seed, working_memory_mib=wm)
    return int(getattr(sel, f"best_{model.k.criterion}"))


def _fit_centers(
    Xs: FloatArray,
    model: ModelSettings,
    seed: int,
    wm: float,
    init: FloatArray | None,
) -> FloatArray:
    """Centroids of a new reference: warm from ``init``, or k-means++ with restarts."""
    t = model.training
    common: dict[str, Any] = {
        "max_iter": t.max_iter,
        "tol": t.tol,
        "random_state": seed,
        "metric": model.metric,
        "working_memory_mib": wm,
    }
    try:
        if init is not None:
            return fit_kmeans(Xs, init.shape[0], init=init, n_init=1, **common).centers
        k = _choose_k(Xs, model, seed, wm)
        return fit_kmeans(Xs, k, n_init=t.n_init, **common).centers
    except _TRAINING_ERRORS as exc:
        raise TrainingError(f"model {model.name!r}: training failed: {exc}") from exc


def train_reference(
    X: FloatArray,
    model: ModelSettings,
    *,
    window: Window,
    now: float,
    reason: str,
    package_version: str,
    working_memory_mib: float,
    init_raw_centers: FloatArray | None = None,
    parent: Snapshot | None = None,
) -> tuple[Snapshot, WindowView]:
    """Fit scaler, centroids, bins, outlier thresholds and thresholds on one window.

    Returns the snapshot and its view of its own window. ``init_raw_centers`` (raw
    units) warm-starts the fit, as when a candidate that was trained in the old scaled
    units is promoted on a window whose scale moved.
    """
    seed = seed_for(model.training.seed, window.start)
    wm = working_memory_mib
    scaler = scaling.fit_scaler(X, model.scaling)
    Xs = prepare(X, scaler, model.metric)
    init = None
    if init_raw_centers is not None:
        init = prepare(np.asarray(init_raw_centers, dtype=Xs.dtype), scaler, model.metric)
    centers = _fit_centers(Xs, model, seed, wm, init)
    k = centers.shape[0]
    labels, sq = assign_labels(Xs, centers, working_memory_mib=wm)
    sizes = quality.cluster_sizes(labels, k)
    take = np.random.default_rng(seed).choice(X.shape[0], min(SAMPLE_ROWS, X.shape[0]), False)
    provisional = Snapshot(
        model=model.name,
        version=0,
        created_at=now,
        features=model.features,
        metric=model.metric,
        centers=centers,
        scaler=scaler,
        bins=drift.fit_reference_bins(Xs, n_bins=model.training.psi_bins),
        reference_shares=sizes.shares,
        outliers=outliers.fit_outlier_thresholds(
            sq, labels, k, quantile=model.thresholds.outlier_quantile
        ),
        thresholds={},
        seed=seed,
        window_start=window.start,
        window_end=window.end,
        n_rows=int(X.shape[0]),
        schema_hash=schema_hash(model.features),
        package_version=package_version,
        slis={},
        sample=np.ascontiguousarray(X[np.sort(take)]),
        reason=reason,
        parent_version=parent.version if parent is not None else None,
    )
    silhouette_sample = model.training.silhouette_sample
    own = score(
        Xs, provisional, seed=seed, silhouette_sample=silhouette_sample, working_memory_mib=wm
    )
    thresholds = fixed_thresholds(model.thresholds, own.slis)
    if model.thresholds.mode == "calibrated":
        thresholds = _calibrate(Xs, provisional, model.thresholds, thresholds, seed, wm)
    return replace(provisional, thresholds=thresholds, slis=own.slis), own


def fixed_thresholds(cfg: ThresholdSettings, own: Mapping[str, float]) -> dict[str, float]:
    """Every threshold of the catalogue from the configuration (and the model's own SLIs)."""
    out: dict[str, float] = {}
    for t in S.THRESHOLDS.values():
        value = float(getattr(cfg, t.config))
        out[t.key] = own[t.relative_to] - value if t.relative_to else value
    return out


def _calibrate(
    Xs: FloatArray,
    snap: Snapshot,
    cfg: ThresholdSettings,
    fixed: Mapping[str, float],
    seed: int,
    wm: float,
) -> dict[str, float]:
    cal = calibration.calibrate(
        Xs,
        snap.centers,
        snap.bins,
        snap.outliers,
        snap.reference_shares,
        window_size=int(Xs.shape[0]),
        false_alarm_rate=cfg.false_alarm_rate,
        n_resamples=max(200, int(10 / cfg.false_alarm_rate)),
        n_refits=cfg.calibration_refits,
        random_state=seed,
        working_memory_mib=wm,
    )
    return calibrated_thresholds(cal.thresholds, fixed)


def calibrated_thresholds(
    calibrated: Mapping[str, float], fixed: Mapping[str, float]
) -> dict[str, float]:
    """The fixed thresholds, with those of each calibrated SLI following the calibration.

    Per the catalogue a threshold is replaced by its SLI's calibrated value, or raised to
    at least that value (the critical PSI level stays above the calibrated warning).
    """
    out = dict(fixed)
    for key in S.CALIBRATED:
        if key not in calibrated:
            continue  # e.g. centroid drift without refits
        for tkey in S.SLIS[key].thresholds:
            rule = S.THRESHOLDS[tkey].calibration
            if rule == "replace":
                out[tkey] = float(calibrated[key])
            elif rule == "at_least":
                out[tkey] = max(float(fixed[tkey]), float(calibrated[key]))
    return out


def _train_candidate(
    Xs: FloatArray, live: Snapshot, model: ModelSettings, seed: int, wm: float
) -> tuple[FloatArray, IntArray]:
    """Warm start from the live centroids, plus k-means++ restarts on a sample.

    A restart replaces the warm start only when it also wins on the whole window.
    """
    t = model.training
    common: dict[str, Any] = {
        "max_iter": t.max_iter,
        "tol": t.tol,
        "metric": model.metric,
        "working_memory_mib": wm,
        "random_state": seed,
    }
    try:
        warm = fit_kmeans(Xs, live.k, init=live.centers, n_init=1, **common)
        if t.candidate_restarts == 0 or Xs.shape[0] <= live.k:
            return warm.centers, warm.labels
        n = Xs.shape[0]
        rng = np.random.default_rng(seed)
        sample = Xs if n <= RESTART_ROWS else Xs[rng.choice(n, RESTART_ROWS, replace=False)]
        restart = fit_kmeans(sample, live.k, n_init=t.candidate_restarts, **common)
        _, sq = assign_labels(Xs, restart.centers, working_memory_mib=wm)
        if float(sq.sum(dtype=np.float64)) < warm.inertia:
            polished = fit_kmeans(Xs, live.k, init=restart.centers, n_init=1, **common)
            if polished.inertia < warm.inertia:
                return polished.centers, polished.labels
        return warm.centers, warm.labels
    except _TRAINING_ERRORS as exc:
        raise TrainingError(f"model {model.name!r}: candidate training failed: {exc}") from exc


# ---------------------------------------------------------------------------- measure


def _no_comparison(view: WindowView) -> dict[str, float]:
    """A new model compared with itself: nothing moved."""
    return {
        **view.slis,
        S.CENTROID_DRIFT_MAX: 0.0,
        S.CENTROID_DRIFT_MEAN: 0.0,
        S.CLUSTERS_APPEARED: 0.0,
        S.CLUSTERS_VANISHED: 0.0,
        S.LABEL_AGREEMENT: 1.0,
    }


def measure(
    window: Window,
    live: Snapshot | None,
    model: ModelSettings,
    phases: Phases,
    ctx: RunContext,
) -> Measurement:
    """Validate, score the live model and train its candidate (or the first model)."""
    with phases.phase("validate"):
        X = validate_window(window, model)
    if live is None:
        with phases.phase("train"):
            reference, own = train_reference(
                X,
                model,
                window=window,
                now=ctx.now,
                reason="initial",
                package_version=ctx.package_version,
                working_memory_mib=ctx.working_memory_mib,
            )
        slis = _no_comparison(own)
        return Measurement(
            model.name, window, X, None, reference, own, slis, (0.0,) * reference.k, None, True
        )
    _check_features(live, model)
    return _measure_live(window, X, live, model, phases, ctx.working_memory_mib)


def _check_features(live: Snapshot, model: ModelSettings) -> None:
    if live.features != model.features:
        raise SchemaError(
            f"model {model.name!r}: live snapshot v{live.version} was trained on features "
            f"{list(live.features)} but the configuration lists {list(model.features)}; "
            f"retrain deliberately (move the model's snapshots aside) rather than mixing schemas"
        )


def _measure_live(
    window: Window,
    X: FloatArray,
    live: Snapshot,
    model: ModelSettings,
    phases: Phases,
    wm: float,
) -> Measurement:
    seed = seed_for(model.training.seed, window.start)
    with phases.phase("score"):
        Xs = prepare(X, live.scaler, model.metric)
        view = score(
            Xs,
            live,
            seed=seed,
            silhouette_sample=model.training.silhouette_sample,
            working_memory_mib=wm,
        )
    with phases.phase("train"):
        cand_centers, cand_labels = _train_candidate(Xs, live, model, seed, wm)
    with phases.phase("compare"):
        cd = drift.centroid_drift(live.centers, cand_centers)
        agreement = drift.label_agreement(view.labels, cand_labels, cd.pairs)
        per_cluster = np.zeros(live.k)
        per_cluster[cd.pairs[:, 0]] = cd.distances
        slis = {
            **view.slis,
            S.CENTROID_DRIFT_MAX: float(cd.max),
            S.CENTROID_DRIFT_MEAN: float(cd.mean),
            S.CLUSTERS_APPEARED: float(len(cd.appeared)),
            S.CLUSTERS_VANISHED: float(len(cd.vanished)),
            S.LABEL_AGREEMENT: float(agreement),
        }
        candidate_ok = bool((np.bincount(cand_labels, minlength=live.k) > 0).all())
    return Measurement(
        model=model.name,
        window=window,
        X=X,
        live=live,
        reference=None,
        view=view,
        slis=slis,
        centroid_drift=tuple(float(x) for x in per_cluster),
        candidate_centers=cand_centers,
        candidate_ok=candidate_ok,
    )


def retrain(
    m: Measurement,
    decision: Decision,
    model: ModelSettings,
    phases: Phases,
    ctx: RunContext,
) -> Snapshot | None:
    """The new snapshot a decision asks for, trained on the measured window (else None).

    Euclidean models start from the candidate's centroids, carried over in raw units
    because the new snapshot fits its own scaler.
    """
    if not decision.trains or m.live is None or m.candidate_centers is None:
        return None
    init = None
    if model.metric == "euclidean":
        init = scaling.inverse_transform(m.live.scaler, m.candidate_centers)
    with phases.phase("train"):
        snapshot, _ = train_reference(
            m.X,
            model,
            window=m.window,
            now=ctx.now,
            reason=decision.retrain_reason,
            package_version=ctx.package_version,
            working_memory_mib=ctx.working_memory_mib,
            init_raw_centers=init,
            parent=m.live,
        )
    return snapshot
