"""One window, start to end.

validate -> scale -> score the live model -> train a candidate -> compare -> promote or
not -> record. The pipeline orchestrates the numeric core over the ports; it never
imports a source, a store, the scheduler, the exporter or an HTTP client.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.config import KRange, ModelSettings
from monitor.core import calibration, drift, outliers, quality, scaling, selection
from monitor.core.kmeans import assign_labels, fit_kmeans
from monitor.errors import (
    InvalidValuesError,
    RunCancelledError,
    SchemaError,
    SourceError,
    SourceTimeoutError,
    StoreError,
    TooFewRowsError,
    TrainingError,
)
from monitor.ports import History, SnapshotStore, TelemetrySource
from monitor.records import CentroidDrift, Evaluation, Scaler, Snapshot, Window

__all__ = [
    "THRESHOLD_NAMES",
    "ScoredWindow",
    "SnapshotDiff",
    "classify_failure",
    "diff_snapshots",
    "evaluate",
    "schema_hash",
    "train_reference",
]

log = logging.getLogger(__name__)

FloatArray = NDArray[np.floating[Any]]

THRESHOLD_NAMES = (
    "feature_psi_warning",
    "feature_psi_critical",
    "label_psi",
    "centroid_drift",
    "silhouette_min",
    "outlier_ratio",
)
SAMPLE_ROWS = 5000  # rows of the training window kept in a snapshot (diffs, calibration)
RESTART_ROWS = 50_000  # k-means++ restarts of a candidate run on a sample this large


def schema_hash(features: tuple[str, ...]) -> str:
    """A short stable hash of the ordered feature names."""
    return hashlib.sha256("\x1f".join(features).encode()).hexdigest()[:16]


def _seed(base: int, window_start: float) -> int:
    # Same model, same window: same seed, whatever the wall clock says.
    return (base * 1_000_003 + int(window_start)) % (2**32)


class _Phases:
    """Wall time of each phase of a run, and the cancellation check between phases."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self.seconds: dict[str, float] = {}
        self._should_stop = should_stop

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self._should_stop is not None and self._should_stop():
            raise RunCancelledError(f"run abandoned before phase {name!r}: the daemon is stopping")
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


# Most specific first: SourceTimeoutError is a SourceError, SchemaError an InvalidInputError.
_FAILURE_TYPES: tuple[tuple[type[BaseException], str], ...] = (
    (SourceTimeoutError, "source_timeout"),
    (SourceError, "source_unavailable"),
    (SchemaError, "schema"),
    (InvalidValuesError, "invalid_values"),
    (TooFewRowsError, "too_few_rows"),
    (TrainingError, "training"),
    (StoreError, "store"),
)


def classify_failure(exc: BaseException) -> str:
    """The bounded ``reason`` (one of ``FAILURE_REASONS``) for an exception of a run."""
    for kind, reason in _FAILURE_TYPES:
        if isinstance(exc, kind):
            return reason
    return "internal"


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
    # NaN and infinity survive a sum, so a finite sum proves a clean window in one pass
    # without a (n, d) mask. A sum that overflows only sends a clean window down the
    # slow path, which then finds nothing.
    with np.errstate(over="ignore"):
        clean = bool(np.isfinite(X.sum()))
    bad_rows = np.zeros(X.shape[0], dtype=bool) if clean else ~np.isfinite(X).all(axis=1)
    n_bad = int(bad_rows.sum())
    if n_bad:
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
        X = X[~bad_rows]
    need = max(model.validation.min_rows, _k_max(model))
    if X.shape[0] < need:
        raise TooFewRowsError(
            f"{where}: {X.shape[0]} valid rows; at least {need} required "
            f"(validation.min_rows={model.validation.min_rows}, k up to {_k_max(model)})"
        )
    return X


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


def _prepare(X: FloatArray, scaler: Scaler, metric: str) -> FloatArray:
    """Scale with a frozen scaler; for cosine models, normalise the rows too."""
    Xs = scaling.transform(scaler, X)
    if metric == "cosine":
        norms = np.linalg.norm(Xs, axis=1, keepdims=True)
        Xs = Xs / np.where(norms > 0, norms, 1.0)
    return Xs


@dataclass(frozen=True, eq=False)
class ScoredWindow:
    """A model's view of one window: labels, distances and SLIs."""

    labels: NDArray[np.integer[Any]]
    slis: dict[str, float]
    feature_psi: dict[str, float]
    sizes: tuple[int, ...]
    shares: tuple[float, ...]


def score(
    Xs: FloatArray,
    snapshot: Snapshot,
    *,
    seed: int,
    silhouette_sample: int,
    working_memory_mib: float,
) -> ScoredWindow:
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
    warn = snapshot.thresholds.get("feature_psi_warning", np.inf)
    db = quality.davies_bouldin(
        Xs, labels, snapshot.centers, sq_distances=sq, working_memory_mib=wm
    )
    slis = {
        "silhouette": sil.score,
        "simplified_silhouette": simp.score,
        "inertia": float(sq.sum(dtype=np.float64)),
        "davies_bouldin": db.value,
        "calinski_harabasz": quality.calinski_harabasz(Xs, labels, working_memory_mib=wm).value,
        "cluster_size_cv": sizes.cv,
        "empty_clusters": float(sizes.n_empty),
        "outlier_ratio": out.ratio,
        "label_psi": label.psi,
        "feature_psi_max": psi.max,
        "features_drifting": float((psi.per_feature > warn).sum()),
    }
    return ScoredWindow(
        labels=labels,
        slis=slis,
        feature_psi={f: float(v) for f, v in zip(snapshot.features, psi.per_feature, strict=True)},
        sizes=tuple(int(c) for c in sizes.counts),
        shares=tuple(float(s) for s in sizes.shares),
    )


# ---------------------------------------------------------------------------- train


def _choose_k(Xs: FloatArray, model: ModelSettings, seed: int, wm: float) -> int:
    if not isinstance(model.k, KRange):
        return model.k
    rng = np.random.default_rng(seed)
    sample = Xs if Xs.shape[0] <= 20_000 else Xs[rng.choice(Xs.shape[0], 20_000, replace=False)]
    ks = list(range(model.k.min, model.k.max + 1))
    sel = selection.choose_k(sample, ks, random_state=seed, working_memory_mib=wm)
    return int(getattr(sel, f"best_{model.k.criterion}"))


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
) -> Snapshot:
    """Fit scaler, centroids, bins, outlier thresholds and thresholds on one window.

    ``init_raw_centers`` (raw units) warm-starts the fit, as when a candidate that was
    trained in the old scaled units is promoted on a window whose scale moved.
    """
    snapshot, _ = _fit_reference(
        X,
        model,
        window=window,
        now=now,
        reason=reason,
        package_version=package_version,
        working_memory_mib=working_memory_mib,
        init_raw_centers=init_raw_centers,
        parent=parent,
    )
    return snapshot


def _fit_reference(
    X: FloatArray,
    model: ModelSettings,
    *,
    window: Window,
    now: float,
    reason: str,
    package_version: str,
    working_memory_mib: float,
    init_raw_centers: FloatArray | None,
    parent: Snapshot | None,
) -> tuple[Snapshot, ScoredWindow]:
    """``train_reference``, plus the new model's view of its own window."""
    seed = _seed(model.training.seed, window.start)
    scaler = scaling.fit_scaler(X, model.scaling)
    Xs = _prepare(X, scaler, model.metric)
    t = model.training
    try:
        if init_raw_centers is not None:
            init = _prepare(np.asarray(init_raw_centers, dtype=Xs.dtype), scaler, model.metric)
            fit = fit_kmeans(
                Xs,
                init.shape[0],
                init=init,
                n_init=1,
                max_iter=t.max_iter,
                tol=t.tol,
                random_state=seed,
                metric=model.metric,
                working_memory_mib=working_memory_mib,
            )
        else:
            k = _choose_k(Xs, model, seed, working_memory_mib)
            fit = fit_kmeans(
                Xs,
                k,
                n_init=t.n_init,
                max_iter=t.max_iter,
                tol=t.tol,
                random_state=seed,
                metric=model.metric,
                working_memory_mib=working_memory_mib,
            )
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        raise TrainingError(f"model {model.name!r}: training failed: {exc}") from exc
    k = fit.centers.shape[0]
    labels, sq = assign_labels(Xs, fit.centers, working_memory_mib=working_memory_mib)
    sizes = quality.cluster_sizes(labels, k)
    bins = drift.fit_reference_bins(Xs, n_bins=t.psi_bins)
    thr_cfg = model.thresholds
    outl = outliers.fit_outlier_thresholds(sq, labels, k, quantile=thr_cfg.outlier_quantile)
    rng = np.random.default_rng(seed)
    take = rng.choice(X.shape[0], min(SAMPLE_ROWS, X.shape[0]), replace=False)
    provisional = Snapshot(
        model=model.name,
        version=0,
        created_at=now,
        features=model.features,
        metric=model.metric,
        centers=fit.centers,
        scaler=scaler,
        bins=bins,
        reference_shares=sizes.shares,
        outliers=outl,
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
    own = score(
        Xs,
        provisional,
        seed=seed,
        silhouette_sample=t.silhouette_sample,
        working_memory_mib=working_memory_mib,
    )
    thresholds = {
        "feature_psi_warning": thr_cfg.feature_psi_warning,
        "feature_psi_critical": thr_cfg.feature_psi_critical,
        "label_psi": thr_cfg.label_psi,
        "centroid_drift": thr_cfg.centroid_drift,
        "silhouette_min": own.slis["silhouette"] - thr_cfg.silhouette_drop,
        "outlier_ratio": thr_cfg.outlier_ratio,
    }
    if thr_cfg.mode == "calibrated":
        cal = calibration.calibrate(
            Xs,
            fit.centers,
            bins,
            outl,
            sizes.shares,
            window_size=int(X.shape[0]),
            false_alarm_rate=thr_cfg.false_alarm_rate,
            n_resamples=max(200, int(10 / thr_cfg.false_alarm_rate)),
            n_refits=thr_cfg.calibration_refits,
            random_state=seed,
            working_memory_mib=working_memory_mib,
        )
        thresholds.update(calibration.as_thresholds(cal, thresholds))
    return replace(provisional, thresholds=thresholds, slis=own.slis), own


def _train_candidate(
    Xs: FloatArray, live: Snapshot, model: ModelSettings, seed: int, wm: float
) -> tuple[FloatArray, NDArray[np.integer[Any]]]:
    """Warm start from the live centroids, plus k-means++ restarts on a sample.

    A restart replaces the warm start only when it also wins on the whole window.
    """
    t = model.training
    common: dict[str, Any] = {
        "max_iter": t.max_iter,
        "tol": t.tol,
        "metric": model.metric,
        "working_memory_mib": wm,
    }
    try:
        warm = fit_kmeans(Xs, live.k, init=live.centers, n_init=1, random_state=seed, **common)
        best_centers, best_labels, best_inertia = warm.centers, warm.labels, warm.inertia
        if t.candidate_restarts > 0 and Xs.shape[0] > live.k:
            rng = np.random.default_rng(seed)
            n = Xs.shape[0]
            sample = Xs if n <= RESTART_ROWS else Xs[rng.choice(n, RESTART_ROWS, replace=False)]
            restart = fit_kmeans(
                sample, live.k, n_init=t.candidate_restarts, random_state=seed, **common
            )
            _, sq = assign_labels(Xs, restart.centers, working_memory_mib=wm)
            if float(sq.sum(dtype=np.float64)) < best_inertia:
                polished = fit_kmeans(
                    Xs, live.k, init=restart.centers, n_init=1, random_state=seed, **common
                )
                if polished.inertia < best_inertia:
                    best_centers, best_labels = polished.centers, polished.labels
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        raise TrainingError(f"model {model.name!r}: candidate training failed: {exc}") from exc
    return best_centers, best_labels


# ---------------------------------------------------------------------------- evaluate


def _drift_detected(slis: Mapping[str, float], thresholds: Mapping[str, float]) -> list[str]:
    why = []
    if slis["feature_psi_max"] > thresholds["feature_psi_critical"]:
        why.append(f"feature PSI {slis['feature_psi_max']:.3f}")
    if slis["label_psi"] > thresholds["label_psi"]:
        why.append(f"label PSI {slis['label_psi']:.3f}")
    if slis["centroid_drift_max"] > thresholds["centroid_drift"]:
        why.append(f"centroid drift {slis['centroid_drift_max']:.3f}")
    if slis["clusters_appeared"] or slis["clusters_vanished"]:
        why.append("clusters appeared or vanished")
    return why


def evaluate(
    model: ModelSettings,
    source: TelemetrySource,
    store: SnapshotStore,
    history: History,
    now: float,
    *,
    package_version: str = "",
    working_memory_mib: float = 64.0,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[Evaluation, Snapshot]:
    """Run one window for one model; return the evaluation and the snapshot live after it."""
    phases = _Phases(should_stop)
    t_start = time.perf_counter()
    with phases.phase("read"):
        window = source.read_window(now - model.window, now)
    with phases.phase("validate"):
        X = validate_window(window, model)
    wm = working_memory_mib
    live_version = store.live_version(model.name)
    if live_version is None:
        with phases.phase("train"):
            snap, own = _fit_reference(
                X,
                model,
                window=window,
                now=now,
                reason="initial",
                package_version=package_version,
                working_memory_mib=wm,
                init_raw_centers=None,
                parent=None,
            )
        with phases.phase("store"):
            snap = store.save(snap)
            store.set_live(model.name, snap.version)
        slis = dict(snap.slis)
        slis.update(
            centroid_drift_max=0.0,
            centroid_drift_mean=0.0,
            clusters_appeared=0.0,
            clusters_vanished=0.0,
            label_agreement=1.0,
        )
        evaluation = _evaluation(
            model,
            window,
            now,
            X,
            snap.version,
            snap.version,
            True,
            "initial reference model trained",
            slis,
            own,
            (0.0,) * snap.k,
            snap.thresholds,
            phases,
            t_start,
        )
        history.append(evaluation)
        return evaluation, snap

    with phases.phase("load"):
        live = store.load(model.name, live_version)
    if live.features != model.features:
        raise SchemaError(
            f"model {model.name!r}: live snapshot v{live.version} was trained on features "
            f"{list(live.features)} but the configuration lists {list(model.features)}; "
            f"retrain deliberately (move the model's snapshots aside) rather than mixing schemas"
        )
    seed = _seed(model.training.seed, window.start)
    with phases.phase("score"):
        Xs = _prepare(X, live.scaler, model.metric)
        scored = score(
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
        agreement = drift.label_agreement(scored.labels, cand_labels, cd.pairs)
        per_cluster = np.zeros(live.k)
        per_cluster[cd.pairs[:, 0]] = cd.distances
        cand_sizes = np.bincount(cand_labels, minlength=live.k)
        slis = dict(scored.slis)
        slis.update(
            centroid_drift_max=cd.max,
            centroid_drift_mean=cd.mean,
            clusters_appeared=float(len(cd.appeared)),
            clusters_vanished=float(len(cd.vanished)),
            label_agreement=agreement,
        )
        why = _drift_detected(slis, live.thresholds)
        candidate_ok = bool((cand_sizes > 0).all())
        age = now - live.created_at
        policy = model.retrain
        promote = False
        if not candidate_ok:
            decision = "candidate rejected: it has empty clusters"
        elif policy == "scheduled":
            promote = age >= model.training.retrain_every
            decision = (
                f"scheduled retrain: live model is {age:.0f}s old"
                if promote
                else "kept: scheduled retrain not due"
            )
        elif not why:
            decision = "kept: no drift"
        elif policy == "on-drift":
            promote = True
            decision = "retrained on drift: " + ", ".join(why)
        else:
            decision = "drift awaits manual approval: " + ", ".join(why)
    candidate_version: int | None = None
    result_snapshot = live
    pending: list[int] = []
    if policy == "manual" and candidate_ok and why:
        with phases.phase("load"):
            pending = [v for v in store.versions(model.name) if v > live.version]
        if pending:
            # One pending version at a time: do not train a reference only to drop it.
            candidate_version = pending[-1]
            decision += f"; candidate v{pending[-1]} already awaits approval"
    if promote or (policy == "manual" and candidate_ok and why and not pending):
        with phases.phase("train"):
            raw_centers = scaling.inverse_transform(live.scaler, cand_centers)
            new = train_reference(
                X,
                model,
                window=window,
                now=now,
                reason="drift" if policy != "scheduled" else "scheduled",
                package_version=package_version,
                working_memory_mib=wm,
                init_raw_centers=raw_centers if model.metric == "euclidean" else None,
                parent=live,
            )
        with phases.phase("store"):
            new = store.save(new)
            candidate_version = new.version
            if promote:
                store.set_live(model.name, new.version)
                result_snapshot = new
            else:
                decision += (
                    f"; candidate v{new.version} stored: approve with "
                    f"`kmeans-monitor snapshots rollback {model.name} --to {new.version}`"
                )
    evaluation = _evaluation(
        model,
        window,
        now,
        X,
        live.version,
        candidate_version,
        promote,
        decision,
        slis,
        scored,
        tuple(float(x) for x in per_cluster),
        live.thresholds,
        phases,
        t_start,
    )
    with phases.phase("store"):
        history.append(evaluation)
    return evaluation, result_snapshot


def _evaluation(
    model: ModelSettings,
    window: Window,
    now: float,
    X: FloatArray,
    scored_version: int,
    candidate_version: int | None,
    promoted: bool,
    decision: str,
    slis: Mapping[str, float],
    scored: ScoredWindow,
    centroid_drift: tuple[float, ...],
    thresholds: Mapping[str, float],
    phases: _Phases,
    t_start: float,
) -> Evaluation:
    return Evaluation(
        model=model.name,
        window_start=window.start,
        window_end=window.end,
        evaluated_at=now,
        n_rows=int(X.shape[0]),
        live_version=scored_version,
        candidate_version=candidate_version,
        promoted=promoted,
        decision=decision,
        slis={k: float(v) for k, v in slis.items()},
        feature_psi=scored.feature_psi,
        cluster_sizes=scored.sizes,
        cluster_shares=scored.shares,
        centroid_drift=centroid_drift,
        thresholds=dict(thresholds),
        phase_seconds=dict(phases.seconds),
        duration_seconds=time.perf_counter() - t_start,
    )


# ---------------------------------------------------------------------------- diff


@dataclass(frozen=True, eq=False)
class SnapshotDiff:
    """How far version ``b`` moved from version ``a``, in ``a``'s scaled units."""

    model: str
    a: int
    b: int
    centroid_drift: CentroidDrift
    feature_psi: dict[str, float]
    label_psi: float


def diff_snapshots(a: Snapshot, b: Snapshot, *, working_memory_mib: float = 64.0) -> SnapshotDiff:
    """Matched centroid drift and PSI of ``b``'s training sample against ``a``'s bins."""
    if a.features != b.features:
        raise SchemaError(
            f"snapshots v{a.version} and v{b.version} of {a.model!r} have different features: "
            f"{list(a.features)} vs {list(b.features)}"
        )
    b_centers_in_a = _prepare(scaling.inverse_transform(b.scaler, b.centers), a.scaler, a.metric)
    cd = drift.centroid_drift(a.centers, b_centers_in_a)
    sample_in_a = _prepare(b.sample, a.scaler, a.metric)
    psi = drift.psi(a.bins, sample_in_a)
    labels, _ = assign_labels(sample_in_a, a.centers, working_memory_mib=working_memory_mib)
    label = drift.label_drift(a.reference_shares, labels, a.k)
    return SnapshotDiff(
        model=a.model,
        a=a.version,
        b=b.version,
        centroid_drift=cd,
        feature_psi={f: float(v) for f, v in zip(a.features, psi.per_feature, strict=True)},
        label_psi=label.psi,
    )
