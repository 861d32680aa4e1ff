"""The measure step: validate a window, score the live model, train a candidate, compare.

Pure: no clock, no store, no source. Everything it finds is a ``Measurement``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor import slis as S
from monitor.checks import check_array, proven_finite
from monitor.config import ModelSettings
from monitor.core import drift, scaling
from monitor.errors import SchemaError, TrainingError
from monitor.pipeline import remote, train
from monitor.pipeline.phases import Phases
from monitor.pipeline.scoring import ScaleBuffer, day_long_rows, prepare, score, seed_for
from monitor.pipeline.thresholds import run_thresholds
from monitor.ports import Engine
from monitor.records import (
    CandidateFit,
    CentroidDrift,
    CountedRows,
    Decision,
    Measurement,
    ReferenceBins,
    ReferencePeriod,
    Snapshot,
    SplitGain,
    Window,
    WindowView,
)

__all__ = ["RunContext", "measure", "measure_first", "retrain", "train_first"]

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.integer[Any]]
_TRAINING_ERRORS = (ValueError, FloatingPointError, np.linalg.LinAlgError)


@dataclass(frozen=True)
class RunContext:
    """What every step of one run shares: the run's time and the process's settings."""

    now: float  # unix seconds: the end of the window and the new snapshots' creation time
    package_version: str = ""
    working_memory_mib: float = 64.0
    engine: Engine | None = None  # where scoring and the candidate run; None: this process
    # Threads of this process's scoring and candidate; every result is the same for any.
    n_threads: int = 1
    # Where this process scales the model's window, kept across its runs (None: a fresh
    # array per run). One per model: see ScaleBuffer.
    buffer: ScaleBuffer | None = None


# ---------------------------------------------------------------------------- candidate


def _candidate(
    Xs: remote.Rows,
    live: Snapshot,
    view: WindowView,
    model: ModelSettings,
    seed: int,
    ctx: RunContext,
) -> CandidateFit:
    """The candidate's centres and its relabelling of the window, from the run's engine."""
    wm = ctx.working_memory_mib
    if ctx.engine is not None:
        t = model.training
        try:
            return ctx.engine.candidate(
                Xs, live, max_iter=t.max_iter, tol=t.tol, working_memory_mib=wm,
                restarts=t.candidate_restarts, seed=seed,
            )  # fmt: skip
        except _TRAINING_ERRORS as exc:
            raise TrainingError(f"model {model.name!r}: candidate training failed: {exc}") from exc
    assert view.labels is not None  # the local scoring keeps every row's label
    assert not isinstance(Xs, CountedRows)  # rows stay on an engine only with one
    fit = train.train_candidate(
        Xs, live.centers, model, seed, wm, labels=view.labels, n_threads=ctx.n_threads
    )
    k = live.k
    table = np.bincount(view.labels * k + fit.labels, minlength=k * k).reshape(k, k)
    return CandidateFit(centers=fit.centers, table=table.astype(np.int64), warm=fit.warm)


# ---------------------------------------------------------------------------- measure


def _no_comparison(view: WindowView) -> dict[str, float]:
    """A new model compared with itself: nothing moved."""
    return {
        **view.slis,
        S.CENTROID_DRIFT_MAX: 0.0,
        S.CENTROID_DRIFT_MEAN: 0.0,
        S.CENTROID_DRIFT_SE: 0.0,
        S.SPLIT_GAIN: 0.0,
        S.CLUSTERS_APPEARED: 0.0,
        S.CLUSTERS_VANISHED: 0.0,
        S.LABEL_AGREEMENT: 1.0,
    }


def measure(
    window: Window, live: Snapshot, model: ModelSettings, phases: Phases, ctx: RunContext
) -> Measurement:
    """Validate, score the live model and train its candidate."""
    X = _validated(window, live, model, phases, ctx)
    _check_features(live, model)
    with _scaled_rows(X, live, model, phases, ctx) as Xs:
        return _measure_with(window, X, Xs, live, model, phases, ctx, candidate=True)


def train_first(
    window: Window,
    model: ModelSettings,
    phases: Phases,
    ctx: RunContext,
    reference: ReferencePeriod | None = None,
) -> tuple[remote.Rows, Snapshot]:
    """Validate the window and train the first model on ``reference`` (the reference
    period; default: this window alone): the window's rows, for ``measure_first``, and
    that model."""
    X = _validated(window, None, model, phases, ctx)
    with phases.phase("reference"):
        first = train.train_reference(
            reference if reference is not None else train.one_window(window, X),
            model,
            now=ctx.now,
            reason="initial",
            package_version=ctx.package_version,
            working_memory_mib=ctx.working_memory_mib,
            engine=ctx.engine,
        )
    return X, first


def measure_first(
    window: Window,
    X: remote.Rows,
    first: Snapshot,
    model: ModelSettings,
    phases: Phases,
    ctx: RunContext,
    left_out: int = 0,
) -> Measurement:
    """Score the window (``X`` from ``train_first``) with the first model, which is
    compared with itself; ``left_out``: the reference period's windows it skipped."""
    with _scaled_rows(X, first, model, phases, ctx) as Xs:
        m = _measure_with(window, X, Xs, first, model, phases, ctx, candidate=False)
    return replace(m, live=None, reference=first, reference_left_out=left_out)


def _validated(
    window: Window, live: Snapshot | None, model: ModelSettings, phases: Phases, ctx: RunContext
) -> remote.Rows:
    """The window's rows, validated against the model (and ``live``'s, when there is one)."""
    with phases.phase("validate"):
        windows = live.reference_windows if live is not None else None
        rows = (
            None if windows is None else day_long_rows(windows.rows, windows.starts, windows.ends)
        )
        return remote.validate(window, model, ctx.engine, rows, None if live is None else live.k)


@contextmanager
def _scaled_rows(
    X: remote.Rows, live: Snapshot, model: ModelSettings, phases: Phases, ctx: RunContext
) -> Iterator[remote.Rows]:
    """The window in ``live``'s units, for the whole measure step (timed as scoring).

    Written to the run's buffer when it lends one (the scaled rows are read until the
    comparison ends and kept by nothing after it). Rows here are checked once for
    values that scaling overflowed, and that scan stands for the one each public
    function they go to would make (``checks.proven_finite``). Rows kept on an engine
    stay there.
    """
    with ExitStack() as stack:
        out = None
        if ctx.buffer is not None and not isinstance(X, CountedRows) and ctx.engine is None:
            out = stack.enter_context(ctx.buffer.rows(X.shape, X.dtype))
        with phases.phase("score"):
            Xs = _scaled(X, live, model, out)
            if isinstance(Xs, np.ndarray):
                Xs = check_array(Xs, name="X")
                stack.enter_context(proven_finite(Xs))
        yield Xs


def _check_features(live: Snapshot, model: ModelSettings) -> None:
    if live.features != model.features:
        raise SchemaError(
            f"model {model.name!r}: live snapshot v{live.version} was trained on features "
            f"{list(live.features)} but the configuration lists {list(model.features)}; "
            f"train a model of the configured features with `kmeans-monitor snapshots retrain "
            f"{model.name} --config FILE --live` (the old versions stay for rollback), or "
            "restore the configured features"
        )


def _scorer(ctx: RunContext) -> Callable[..., WindowView]:
    """The run's engine's scoring, or this process's on the run's threads (rows kept on
    an engine, CountedRows, come only with that engine)."""
    if ctx.engine is not None:
        return ctx.engine.score
    return functools.partial(score, n_threads=ctx.n_threads)


def _scaled(
    X: remote.Rows, live: Snapshot, model: ModelSettings, out: FloatArray | None
) -> remote.Rows:
    """The window in the live model's units, written to ``out`` when the run lends one."""
    if out is None:
        return remote.scaled(X, live.scaler, model.metric)
    assert not isinstance(X, CountedRows)  # _scaled_rows lends no buffer for those
    return prepare(X, live.scaler, model.metric, out=out)


def _measure_with(
    window: Window,
    X: remote.Rows,
    Xs: remote.Rows,
    live: Snapshot,
    model: ModelSettings,
    phases: Phases,
    ctx: RunContext,
    *,
    candidate: bool,
) -> Measurement:
    """Score ``live`` on the window (``X``, and ``Xs`` in ``live``'s units); with
    ``candidate``, train one and compare."""
    wm = ctx.working_memory_mib
    seed = seed_for(model.training.seed, window.start)
    compare = train.comparison(live, window)
    ceilings = _ceilings(live, compare)
    thresholds, undefined, spread = _thresholds(live, model, int(X.shape[0]), ceilings)
    with phases.phase("score"):
        view = _scorer(ctx)(
            Xs,
            live,
            seed=seed,
            silhouette_sample=model.training.silhouette_sample,
            working_memory_mib=wm,
            thresholds=thresholds,
            compare=compare,
        )
    thresholds = _defined_in(view, thresholds)
    base = Measurement(
        model=model.name,
        window=window,
        X=X,
        live=live,
        reference=None,
        view=view,
        slis=_no_comparison(view),
        thresholds=thresholds,
        undefined=undefined,
        stored_before=stored_before(live, model.thresholds.mode),
        centroid_drift=(0.0,) * live.k,
        candidate_centers=None,
        candidate_ok=True,
        n_rows=int(X.shape[0]),
        whole_period=compare is None and live.profile is not None,
    )
    if not candidate:
        return replace(base, slis=_measurable(base.slis, base.stored_before, spread))
    with phases.phase("train"):
        fit = _candidate(Xs, live, view, model, seed, ctx)
    cand_centers = fit.centers
    with phases.phase("compare"):
        compared = train.reference_centers(live, window)
        cd = drift.centroid_drift(compared, cand_centers)
        warm = cd if fit.warm is cand_centers else drift.centroid_drift(compared, fit.warm)
        agreement = drift.label_agreement_from_table(fit.table, cd.pairs)
        per_cluster = np.zeros(live.k)
        per_cluster[cd.pairs[:, 0]] = cd.distances
        se = 0.0 if spread is None else _drift_se(fit, spread, warm)
        split = _split_gain(Xs, live, seed, wm)
        forming = thresholds.get(S.THRESHOLD_SPLIT_GAIN, np.inf)
        shares = live.reference_shares if compare is None else compare[0]
        slis = {
            **view.slis,
            S.CENTROID_DRIFT_MAX: float(cd.max),
            S.CENTROID_DRIFT_MEAN: float(cd.mean),
            S.CENTROID_DRIFT_SE: se,
            S.SPLIT_GAIN: split.gain,
            S.CLUSTERS_APPEARED: float(split.defined and split.gain > forming),
            S.CLUSTERS_VANISHED: float(_vanished(view, shares, thresholds)),
            S.LABEL_AGREEMENT: float(agreement),
        }
        candidate_ok = bool((fit.table.sum(axis=0) > 0).all())
    return replace(
        base,
        slis=_measurable(slis, base.stored_before, spread),
        centroid_drift=tuple(float(x) for x in per_cluster),
        candidate_centers=cand_centers,
        candidate_ok=candidate_ok,
        warm_drift_max=None if warm is cd else float(warm.max),
    )


def _ceilings(live: Snapshot, compare: tuple[FloatArray, ReferenceBins] | None) -> dict[str, float]:
    """The largest value each bounded SLI can take in a window compared with ``compare``
    (``train.comparison``; None: the model's own reference): a PSI of every row in one
    bin, and k - 1 empty clusters. A calibrated threshold at or above it cannot be passed:
    at 20 rows a window under a seasonal model, the feature PSI's stood at 9.5 to 13 while
    a feature all in one bin reads 8.3."""
    shares, bins = (live.reference_shares, live.bins) if compare is None else compare
    features = [drift.psi_ceiling(f, bins.epsilon) for f in bins.reference_fractions]
    return {
        S.LABEL_PSI: drift.psi_ceiling(shares, drift.DEFAULT_EPSILON),
        S.FEATURE_PSI_MAX: max(features, default=0.0),
        S.EMPTY_CLUSTERS: float(live.k - 1),
    }


def _thresholds(
    live: Snapshot, model: ModelSettings, n: int, ceilings: dict[str, float]
) -> tuple[dict[str, float], tuple[str, ...], FloatArray | None]:
    """The run's thresholds, the SLIs that are not drift signals in it (``ceilings``: the
    largest values some can take in it), and the drift spread that the centroid drift in
    standard errors is measured with (None: it is not, and has no threshold)."""
    mode = model.thresholds.mode
    windows = live.reference_windows
    usual = None if windows is None or not windows.rows.size else int(np.median(windows.rows))
    thresholds, undefined = run_thresholds(live.thresholds, live.null, mode, n, ceilings, usual)
    if S.SPLIT_GAIN in stored_before(live, mode):
        thresholds.pop(S.THRESHOLD_SPLIT_GAIN, None)
    # The fixed mode never measures it, a model calibrated before included (helper-77:
    # a model trained calibrated and then run in mode fixed exported it with 4.0).
    spread = None if live.null is None or mode == "fixed" else live.null.drift_spread
    if spread is None:
        # No calibration (the fixed mode), or one stored before the spread: nothing to
        # standardise by; only the latter is said.
        thresholds.pop(S.THRESHOLD_CENTROID_DRIFT_SE, None)
    old = [sli for sli in stored_before(live, mode) if sli not in undefined]
    return thresholds, (*undefined, *old), spread


def stored_before(live: Snapshot, mode: str) -> tuple[str, ...]:
    """The SLIs ``live`` cannot measure at any window size, stored before kmeans-monitor
    measured them: the split gain without its baseline (nothing to measure the split
    against) and, calibrated, the centroid drift in standard errors without the null's
    spread (nothing to standardise by)."""
    old = []
    if live.split_baseline is None:
        old.append(S.SPLIT_GAIN)
    if mode != "fixed" and live.null is not None and live.null.drift_spread is None:
        old.append(S.CENTROID_DRIFT_SE)
    return tuple(old)


def _measurable(
    slis: Mapping[str, float], old: tuple[str, ...], spread: FloatArray | None
) -> dict[str, float]:
    """``slis`` less those the live version cannot measure (``stored_before``, and the
    centroid drift in standard errors without a drift ``spread``, the fixed mode's too:
    f19 saw it export 0 standard errors, which reads as no drift), and the clusters
    appeared with the split gain it is read from: undefined, so absent from the history,
    /metrics and the pages (helper-161: stored as 0.0, they exported a drift in standard
    errors of 0 where the centroid drift read 3,000)."""
    gone = set(old) | ({S.CLUSTERS_APPEARED} if S.SPLIT_GAIN in old else set())
    gone |= {S.CENTROID_DRIFT_SE} if spread is None else set()
    return {key: value for key, value in slis.items() if key not in gone}


def _defined_in(view: WindowView, thresholds: dict[str, float]) -> dict[str, float]:
    """The run's thresholds less those of the SLIs undefined on this window, so that
    their alerts cannot fire: a silhouette of rows that fall in one cluster is 0.0 by
    convention, below any threshold, and the calibration's null leaves such windows out
    (on a real metric in 12-point windows, every other window of one model fell in one
    cluster, and each of them flagged)."""
    gone = {key for sli in view.undefined for key in S.SLIS[sli].thresholds}
    return {key: value for key, value in thresholds.items() if key not in gone}


def _drift_se(fit: CandidateFit, spread: FloatArray, warm: CentroidDrift) -> float:
    """The centroid drift in standard errors: the warm start's centres (each follows its
    live cluster; a restart that won may sit on another local optimum, which in quiet
    windows of overlapping clusters would read as a large move) against the reference's,
    ``warm`` their drift, each over the standard error of a centre of its live cluster's
    rows in the window."""
    live_rows = fit.table.sum(axis=1)
    return drift.standardised_drift(warm, live_rows, spread, live_rows)


def _split_gain(Xs: remote.Rows, live: Snapshot, seed: int, wm: float) -> SplitGain:
    """The live clusters cut in two against the reference's cuts (undefined without a
    split baseline: a model stored before it)."""
    if live.split_baseline is None:
        return SplitGain(0.0, -1, defined=False)
    return drift.split_gain(
        remote.split_rows(Xs, seed),
        live.centers,
        live.split_baseline,
        random_state=seed,
        working_memory_mib=wm,
    )


#: Rows the reference expects in a cluster for its emptiness to mean it vanished: a
#: Poisson count of this mean is 0 with probability 4.5e-5.
VANISHED_EXPECTED = 10.0


def _vanished(view: WindowView, shares: FloatArray, thresholds: Mapping[str, float]) -> int:
    """Clusters with no row although the reference expects at least VANISHED_EXPECTED,
    counted only past the empty clusters' own threshold, as a split counts as a cluster
    forming only past the split gain's: where the run leaves that SLI out, or the
    reference shows as many empty clusters at this size, none is gone (quiet night
    windows of 36 rows whose rows fell in one cluster retrained an on-drift model every
    hour)."""
    if view.slis[S.EMPTY_CLUSTERS] <= thresholds.get(S.THRESHOLD_EMPTY_CLUSTERS, np.inf):
        return 0
    sizes = view.cluster_sizes
    n = sum(sizes)
    expected = np.asarray(shares, dtype=np.float64) * n
    return int(np.sum((np.asarray(sizes) == 0) & (expected >= VANISHED_EXPECTED)))


def retrain(
    m: Measurement,
    decision: Decision,
    model: ModelSettings,
    phases: Phases,
    ctx: RunContext,
    period: ReferencePeriod | None = None,
) -> Snapshot | None:
    """The new snapshot a decision asks for (else None), trained on ``period`` or, without
    one, on the measured window.

    Euclidean models start from the candidate's centroids, carried over in raw units
    because the new snapshot fits its own scaler; other metrics keep the live model's k.
    """
    if not decision.trains or m.live is None or m.candidate_centers is None:
        return None
    init = None
    if model.metric == "euclidean":
        init = scaling.inverse_transform(m.live.scaler, m.candidate_centers)
    else:
        model = replace(model, k=m.live.k)
    with phases.phase("train"):
        return train.train_reference(
            period if period is not None else train.one_window(m.window, m.X),
            model,
            now=ctx.now,
            reason=decision.retrain_reason,
            package_version=ctx.package_version,
            working_memory_mib=ctx.working_memory_mib,
            init_raw_centers=init,
            parent=m.live,
            engine=ctx.engine,
        )
