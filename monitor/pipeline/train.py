"""Training a reference model on a period, and calibrating its thresholds there.

Pure: the rows come in as a ``ReferencePeriod`` (read through the source port by the
caller); out comes a ``Snapshot`` with the model, its fixed thresholds, the null table
of calibrated thresholds by window size, the seasonal profile and the SLIs of every
window of the period.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor import slis as S
from monitor.config import SEASON_PERIODS, KRange, ModelSettings, ThresholdSettings
from monitor.core import calibration, drift, outliers, quality, scaling, seasonal, selection
from monitor.core._psi import bin_index
from monitor.core.kmeans import assign_labels, fit_kmeans
from monitor.durations import format_duration
from monitor.errors import TrainingError
from monitor.pipeline.remote import Rows, sampled_period, scaled
from monitor.pipeline.scoring import (
    day_long_rows,
    least_rows,
    prepare,
    schema_hash,
    score,
    seed_for,
)
from monitor.ports import Engine
from monitor.records import (
    CountedRows,
    NullTable,
    ReferenceBins,
    ReferencePeriod,
    Scaler,
    SeasonalProfile,
    Snapshot,
    Window,
)
from monitor.timestamps import wall_seconds

__all__ = [
    "CALIBRATION_ROWS",
    "CALIBRATION_VALUES",
    "NULL_WINDOWS",
    "SAMPLE_ROWS",
    "TRAINING_ROWS",
    "Candidate",
    "calibration_phases",
    "calibration_rows",
    "candidate_refit",
    "fixed_thresholds",
    "largest_null_window",
    "one_window",
    "size_grid",
    "train_candidate",
    "train_reference",
    "trained_otherwise",
    "training_differs",
]

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.integer[Any]]

SAMPLE_ROWS = 5000  # rows of the reference kept in a snapshot (diffs, pages)
K_SELECTION_ROWS = 20_000  # choosing k is quadratic in places: it runs on a sample
TRAINING_ROWS = 250_000  # a longer reference period trains on a sample per window
CALIBRATION_ROWS = 200_000  # null windows are drawn from a sample of at least this many rows
CALIBRATION_VALUES = 20_000_000  # ... and of more, up to this many values, for large windows
SHIFT_ROWS = 50_000  # rows a phase's centre shift is refitted on, at most
SHIFT_WINDOWS = 8  # ... and at least this many reference windows' worth of them
NULL_WINDOWS = 48  # a size is calibrated only if the sample holds this many windows of it
BASELINE_WINDOWS = 96  # reference windows (evenly spaced) behind the split baseline
OWN_SILHOUETTE_SAMPLE = 3000  # points the model's own silhouette on its period is measured on
PHASES = {"daily": 24, "weekly": 168}  # hours of the cycle
_TRAINING_ERRORS = (ValueError, FloatingPointError, np.linalg.LinAlgError)
RESTART_ROWS = 50_000  # k-means++ restarts of a candidate run on a sample this large


class Candidate(NamedTuple):
    """A candidate trained on a window (``train_candidate``)."""

    centers: FloatArray  # (k, d) the candidate: the warm start, or a restart that beat it
    labels: IntArray  # (n,) each row's nearest candidate centre
    warm: FloatArray  # (k, d) the warm start's centres, which follow each live cluster


def candidate_refit(model: ModelSettings, wm: float) -> calibration.Refit:
    """How the calibration refits a null window: as a run trains its candidate (restarts
    too), so that the centroid drift's null holds what a run's candidate can do; and the
    warm start alone, which the centroid drift in standard errors measures."""

    def refit(X: FloatArray, C: FloatArray, seed: int) -> tuple[FloatArray, FloatArray]:
        fit = train_candidate(X, C, model, seed, wm)
        return fit.centers, fit.warm

    return refit


def train_candidate(
    Xs: FloatArray,
    centers: FloatArray,
    model: ModelSettings,
    seed: int,
    wm: float,
    *,
    labels: IntArray | None = None,
    n_threads: int = 1,
) -> Candidate:
    """A candidate on a window's scaled rows: warm from ``centers``, plus k-means++
    restarts on a sample; the calibration's null windows are refitted by it too.

    ``labels``, the window's assignment to ``centers`` when the caller has it, is the
    warm start's first E-step. A restart replaces the warm start only when it also wins
    on the whole window; the warm start's centres are returned either way.
    ``n_threads``: the fits' threads (the same fit for any).
    """
    t = model.training
    k = centers.shape[0]
    common: dict[str, Any] = {
        "max_iter": t.max_iter,
        "tol": t.tol,
        "metric": model.metric,
        "working_memory_mib": wm,
        "random_state": seed,
        "n_threads": n_threads,
    }
    try:
        warm = fit_kmeans(Xs, k, init=centers, init_labels=labels, n_init=1, **common)
        kept = Candidate(warm.centers, warm.labels, warm.centers)
        if t.candidate_restarts == 0 or Xs.shape[0] <= k:
            return kept
        n = Xs.shape[0]
        rng = np.random.default_rng(seed)
        sample = Xs if n <= RESTART_ROWS else Xs[rng.choice(n, RESTART_ROWS, replace=False)]
        restart = fit_kmeans(sample, k, n_init=t.candidate_restarts, **common)
        _, sq = assign_labels(Xs, restart.centers, working_memory_mib=wm, n_threads=n_threads)
        if float(sq.sum(dtype=np.float64)) < warm.inertia:
            polished = fit_kmeans(Xs, k, init=restart.centers, n_init=1, **common)
            if polished.inertia < warm.inertia:
                return Candidate(polished.centers, polished.labels, warm.centers)
        return kept
    except _TRAINING_ERRORS as exc:
        raise TrainingError(f"model {model.name!r}: candidate training failed: {exc}") from exc


def one_window(window: Window, X: Rows) -> ReferencePeriod:
    """A reference period of one window: its validated rows ``X`` (a sample of them, when
    they stay on an engine)."""
    if isinstance(X, CountedRows):
        seed = int(window.start) % 2**32
        return sampled_period([X], [window.start], [window.end], limit=TRAINING_ROWS, seed=seed)
    return ReferencePeriod(
        X=X,
        block=np.zeros(X.shape[0], dtype=np.intp),
        starts=np.asarray([window.start]),
        ends=np.asarray([window.end]),
    )


def train_reference(
    ref: ReferencePeriod,
    model: ModelSettings,
    *,
    now: float,
    reason: str,
    package_version: str,
    working_memory_mib: float,
    init_raw_centers: FloatArray | None = None,
    parent: Snapshot | None = None,
    engine: Engine | None = None,
) -> Snapshot:
    """Fit scaler, centroids, bins and outlier thresholds on a period; calibrate there.

    ``init_raw_centers`` (raw units) warm-starts the fit, as when a candidate that was
    trained in the old scaled units is promoted on a window whose scale moved. A period
    whose rows stay on ``engine`` is fitted on its sample, then its centres by Lloyd
    iterations over every row on the engine.
    """
    seed = seed_for(model.training.seed, float(ref.starts[0]))
    wm = working_memory_mib
    rng = np.random.default_rng(seed)
    rows = _sample_per_window(ref, TRAINING_ROWS, rng)
    X = ref.X[rows]
    scaler = scaling.fit_scaler(X, model.scaling, shift_far=model.metric != "cosine")
    Xs = prepare(X, scaler, model.metric)
    init = None
    if init_raw_centers is not None:
        init = prepare(np.asarray(init_raw_centers, dtype=Xs.dtype), scaler, model.metric)
    centers = _fit_centers(Xs, model, seed, wm, init)
    if ref.remote is not None and engine is not None and X.shape[0] < ref.n_rows:
        centers = _fit_everywhere(engine, ref.remote, scaler, centers, model, wm)
    k = centers.shape[0]
    labels, sq = assign_labels(Xs, centers, working_memory_mib=wm)
    _refuse_empty_clusters(labels, k, Xs, model)
    take = rng.choice(X.shape[0], min(SAMPLE_ROWS, X.shape[0]), replace=False)
    provisional = Snapshot(
        model=model.name,
        version=0,
        created_at=now,
        features=model.features,
        metric=model.metric,
        centers=centers,
        scaler=scaler,
        bins=drift.fit_reference_bins(Xs, n_bins=model.training.psi_bins),
        reference_shares=quality.cluster_sizes(labels, k).shares,
        outliers=outliers.fit_outlier_thresholds(
            sq, labels, k, quantile=model.thresholds.outlier_quantile
        ),
        thresholds={},
        seed=seed,
        window_start=float(ref.starts[0]),
        window_end=float(ref.ends[-1]),
        n_rows=ref.n_rows,
        schema_hash=schema_hash(model.features),
        package_version=package_version,
        slis={},
        sample=np.ascontiguousarray(X[np.sort(take)]),
        reason=reason,
        parent_version=parent.version if parent is not None else None,
    )
    # The model's own silhouette on its period sets the configured minimum; a few thousand
    # points measure it to a few thousandths.
    sample = min(model.training.silhouette_sample, OWN_SILHOUETTE_SAMPLE)
    own = score(Xs, provisional, seed=seed, silhouette_sample=sample, working_memory_mib=wm)
    snap = replace(
        provisional,
        thresholds=fixed_thresholds(model.thresholds, own.slis),
        slis=own.slis,
    )
    return _calibrated(snap, ref, model, rng, wm)


def _refuse_empty_clusters(labels: IntArray, k: int, Xs: FloatArray, model: ModelSettings) -> None:
    """TrainingError when the rows hold fewer than k distinct points as the model sees
    them (scaled; for cosine, directions), so that the fit left clusters empty: a constant
    or stuck source. Such a model would report empty clusters from its first window on,
    and none of its candidates could be promoted."""
    empty = k - np.unique(labels).size
    if empty and (distinct := np.unique(Xs, axis=0).shape[0]) < k:
        raise TrainingError(
            f"model {model.name!r}: cannot train {k} clusters on rows that hold "
            f"{distinct} distinct point(s): {empty} would be empty. A constant or stuck "
            "feature upstream, or k too large for this data"
        )


def _sample_per_window(ref: ReferencePeriod, limit: int, rng: np.random.Generator) -> IntArray:
    """Rows of the period, at most ``limit``, the same share from every window."""
    n = ref.X.shape[0]
    if n <= limit:
        return np.arange(n)
    keep = rng.random(n) < limit / n
    return np.flatnonzero(keep)


def _fit_everywhere(
    engine: Engine,
    rows: CountedRows,
    scaler: Scaler,
    centers: FloatArray,
    model: ModelSettings,
    wm: float,
) -> FloatArray:
    """The sample's centres refined by Lloyd iterations over every row of the period."""
    t = model.training
    Xs = scaled(rows, scaler, model.metric)
    try:
        return engine.fit(
            Xs, centers, max_iter=t.max_iter, tol=t.tol, cosine=model.metric == "cosine",
            working_memory_mib=wm,
        )  # fmt: skip
    except _TRAINING_ERRORS as exc:
        raise TrainingError(f"model {model.name!r}: training failed: {exc}") from exc


def _choose_k(Xs: FloatArray, model: ModelSettings, seed: int, wm: float) -> int:
    if not isinstance(model.k, KRange):
        return model.k
    rng = np.random.default_rng(seed)
    n = Xs.shape[0]
    sample = Xs if n <= K_SELECTION_ROWS else Xs[rng.choice(n, K_SELECTION_ROWS, replace=False)]
    ks = list(range(model.k.min, model.k.max + 1))
    t = model.training
    sel = selection.choose_k(
        sample, ks, n_init=t.n_init, max_iter=t.max_iter, random_state=seed, working_memory_mib=wm
    )
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


def fixed_thresholds(cfg: ThresholdSettings, own: Mapping[str, float]) -> dict[str, float]:
    """Every threshold of the catalogue from the configuration (and the model's own SLIs)."""
    out: dict[str, float] = {}
    for t in S.THRESHOLDS.values():
        value = float(getattr(cfg, t.config))
        out[t.key] = own[t.relative_to] - value if t.relative_to else value
    return out


def trained_otherwise(m: ModelSettings, live: Snapshot | None) -> tuple[list[str], list[str]]:
    """What else the configuration changed that only training reads: the window the
    reference was cut into (its windows' thresholds and ``min_rows: auto``), the mode and
    rate of the calibration, and the configured thresholds (stored with the model). A
    10-minute window under a model of hourly ones failed every run as too_few_rows, a
    6-hour one was three times less sensitive, and none of it was said (helper-77).
    Returns what the configuration asks and what ``live`` has instead (empty: nothing)."""
    asks: list[str] = []
    has: list[str] = []
    if live is None:
        return asks, has
    if m.metric != live.metric:
        asks.append(f"metric {m.metric}")
        has.append(f"metric {live.metric}")
    windows = live.reference_windows
    if windows is not None and windows.starts.size:
        trained = float(np.median(windows.ends - windows.starts))
        if abs(trained - m.window) > 1.0:
            asks.append(f"windows of {format_duration(m.window)}")
            has.append(f"reference windows of {format_duration(trained)}")
    cfg, null = m.thresholds, live.null
    if cfg.mode != "fixed" and null is None:
        asks.append(f"{cfg.mode} thresholds")
        has.append("fixed ones (it was trained in mode fixed)")
    elif cfg.mode != "fixed" and null is not None:
        rate = null.false_alarm_rate
        if not math.isclose(rate, cfg.false_alarm_rate):
            asks.append(f"false_alarm_rate {cfg.false_alarm_rate:g}")
            has.append(f"false_alarm_rate {rate:g}")
    stored, replaced = fixed_thresholds(cfg, live.slis), _replaced(cfg.mode, null)
    changed = [
        t.config for t in S.THRESHOLDS.values()
        if t.key in live.thresholds and t.key not in replaced
        and not math.isclose(stored[t.key], live.thresholds[t.key])
    ]  # fmt: skip
    if changed:
        asks.append(f"other thresholds ({', '.join(dict.fromkeys(changed))})")
        has.append("those it was trained with")
    more_asks, more_has = training_differs(m, live)
    return asks + more_asks, has + more_has


def training_differs(m: ModelSettings, live: Snapshot) -> tuple[list[str], list[str]]:
    """The settings only training reads that ``live`` records and the configuration has
    changed: ``scaling``, ``thresholds.outlier_quantile`` and the reference period.
    Unlike k, the phases and the metric, which a promotion keeps, the next promotion's
    training applies these: tester t12 edited the scaling, was told
    nothing, and a drift promotion stored v2 robust-scaled. Those the snapshot does not
    record (``k.criterion``, ``training.*``) cannot be compared."""
    asks: list[str] = []
    has: list[str] = []
    if m.scaling != live.scaler.kind:
        asks.append(f"scaling {m.scaling}")
        has.append(f"scaling {live.scaler.kind}")
    quantile = live.outliers.quantile
    if not math.isclose(m.thresholds.outlier_quantile, quantile):
        asks.append(f"outlier_quantile {m.thresholds.outlier_quantile:g}")
        has.append(f"outlier_quantile {quantile:g}")
    if _other_period(m, live.window_start, live.window_end):
        asks.append(f"a reference period of {format_duration(m.reference.window)}")
        has.append(f"a reference period of {format_duration(live.window_end - live.window_start)}")
    return asks, has


def _other_period(m: ModelSettings, start: float, end: float) -> bool:
    """Whether the span ``start``..``end`` a version was trained on is longer, by more
    than a window, than the configured reference period. The stored span is that of the
    windows the training read, which leaves out those that held no usable rows: a span
    shorter than configured is no sign of another period (a test's one file in a day was
    one window). Only the length is compared: a promotion trains on the period's length
    up to its run, a ``{from, to}`` range's too, so a promoted version's span lies
    outside the range it was configured with."""
    return (end - start) > m.reference.window + m.window


def _replaced(mode: str, null: NullTable | None) -> set[str]:
    """The thresholds a run takes from the calibration, whatever is configured (mode
    calibrated: helper-78 raised them in the file and saw no change, as designed)."""
    if mode != "calibrated" or null is None:
        return set()
    return {
        key
        for sli in null.keys
        for key in S.SLIS[sli].thresholds
        if S.THRESHOLDS[key].calibration == "replace"
    }


# ---------------------------------------------------------------------------- calibration


def size_grid(ref: ReferencePeriod, model: ModelSettings, k: int | None = None) -> list[int]:
    """Window sizes to calibrate at: doubling from the smallest a run accepts to twice the
    largest reference window, and that window's own size (runs outside take the nearest
    end), at most ``largest_null_window`` (below the smallest a run accepts if need be).
    ``k`` is the model's clusters (``least_rows``).

    A run usually has about a reference window's rows: calibrated at that size, its
    thresholds need no interpolation. The centroid drifts are refitted at up to four
    sizes, that window's own among them, up to the largest, twice that window, and their
    ``tau^2`` comes from there (a one-window reference stops at its rows; docs/slis.md).
    Larger runs take the largest size's thresholds, which hold more sampling noise than
    theirs: fewer flags, never more (each calibrated SLI's null only narrows as the rows
    grow).
    """
    low = least_rows(model, day_long_rows(ref.window_rows, ref.starts, ref.ends), k)[0]
    window = _usual_rows(ref)
    high = min(max(low, 2 * window), largest_null_window(ref))
    window, low = min(window, high), min(low, high)
    sizes = [low]
    while sizes[-1] < high:
        sizes.append(min(high, sizes[-1] * 2))
    return sorted(set(sizes) | ({window} if window > low else set()))


def _usual_rows(ref: ReferencePeriod) -> int:
    """The rows of the period's largest window: the size a run usually has."""
    return int(ref.window_rows.max())


def calibration_rows(ref: ReferencePeriod) -> int:
    """The rows of the period the calibration draws its null windows from: at most
    CALIBRATION_ROWS, or, drawn from the windows (not bootstrapped), enough to hold
    NULL_WINDOWS of twice the largest window, within CALIBRATION_VALUES values."""
    if _bootstrapped(ref):
        return min(ref.X.shape[0], CALIBRATION_ROWS)
    wanted = NULL_WINDOWS * 2 * _usual_rows(ref)
    values = CALIBRATION_VALUES // max(1, ref.X.shape[1])
    return min(ref.X.shape[0], max(CALIBRATION_ROWS, min(wanted, values)))


def largest_null_window(ref: ReferencePeriod) -> int:
    """The most rows a calibrated size may have: a NULL_WINDOWS-th of the calibration's
    sample when the period holds more than CALIBRATION_ROWS rows, CALIBRATION_ROWS else.

    A null window is drawn from one reference window (or a run of consecutive ones
    where they are smaller), so of n rows there are only about sample / n different
    ones, and the far tail that a threshold sits in (1/700 of the null windows at the
    default rate and SLIs) cannot be read from a few dozen: a day of 200,000-row windows
    thinned to a 200,000-row sample, whose null window of 200,000 rows was the whole
    sample every time, flagged two thirds of the quiet windows, and 8,000 rows drawn
    from 200,000 flagged 7 % (docs/benchmarks.md, "Large windows"). A period of at most
    CALIBRATION_ROWS is kept whole and calibrated up to twice its largest window, as the
    benchmarks measure it: its null windows of a window's rows are its own windows, the
    thinner the fewer they are (docs/slis.md). With fewer than calibration.MIN_BLOCKS
    windows a null window's rows are drawn with replacement, a fresh draw at any size.
    """
    if _bootstrapped(ref) or ref.n_rows <= CALIBRATION_ROWS:
        return CALIBRATION_ROWS
    return max(1, calibration_rows(ref) // NULL_WINDOWS)


def _bootstrapped(ref: ReferencePeriod) -> bool:
    """Whether the calibration bootstraps its null windows (too few reference windows)."""
    windows = np.count_nonzero(np.bincount(ref.block, minlength=ref.n_windows))
    return bool(windows < calibration.MIN_BLOCKS)


def _calibrated(
    snap: Snapshot,
    ref: ReferencePeriod,
    model: ModelSettings,
    rng: np.random.Generator,
    wm: float,
) -> Snapshot:
    """The snapshot with its split baseline, null table, seasonal profile and reference
    windows."""
    cfg = model.thresholds
    baseline = _split_baseline(ref, snap, wm)
    Xs, block, phases = _calibration_sample(ref, snap, model, rng)
    samples = [
        _calibration_sample(c, snap, model, np.random.default_rng([snap.seed, i]))
        for i, c in enumerate(ref.cuts, start=1)
    ]
    profile = None
    if phases is not None:
        period = SEASON_PERIODS[model.seasonality]
        cycle = (period, phases.n_phases, phases.width)
        profile = _profile(Xs, block, ref, snap, cycle, wm, model.timezone)
        runs, phases = center_shifts(Xs, block, phases, snap, model, wm, per_phase=True)
        profile = replace(profile, center_shifts=runs)
        samples = [
            (X, b, None if ph is None else center_shifts(X, b, ph, snap, model, wm)[1])
            for X, b, ph in samples
        ]
    cuts = [calibration.Cut(*sample) for sample in samples]
    calibrated = [key for key in S.CALIBRATED if key in calibration.CALIBRATABLE]
    null, windows = calibration.calibrate(
        Xs, block, snap.centers, snap.bins, snap.outliers,
        starts=ref.starts, ends=ref.ends, sizes=size_grid(ref, model, snap.k),
        keys=calibrated if cfg.mode != "fixed" else (), false_alarm_rate=cfg.false_alarm_rate,
        phases=phases, n_fits=max(30, 12 * cfg.calibration_refits),
        random_state=int(rng.integers(0, 2**31 - 1)), working_memory_mib=wm,
        refit=candidate_refit(model, wm), split_baseline=baseline,
        silhouette_sample=model.training.silhouette_sample,
        cuts=cuts, usual_size=_usual_rows(ref),
    )  # fmt: skip
    kept: NullTable | None = null if cfg.mode != "fixed" else None
    return replace(
        snap, null=kept, profile=profile, reference_windows=windows, split_baseline=baseline
    )


def _calibration_sample(
    ref: ReferencePeriod, snap: Snapshot, model: ModelSettings, rng: np.random.Generator
) -> tuple[FloatArray, IntArray, calibration.Phases | None]:
    """The rows the calibration draws from (a sample spread over the windows, scaled),
    each row's window and the windows' phases: of the period, and of each of its cuts
    (``ReferencePeriod.cuts``, each from a generator of its own, so that the period's
    own draws do not depend on them)."""
    rows = _sample_per_window(ref, calibration_rows(ref), rng)
    Xs = prepare(ref.X[rows], snap.scaler, snap.metric)
    return Xs, ref.block[rows], calibration_phases(ref, model)


def calibration_phases(ref: ReferencePeriod, model: ModelSettings) -> calibration.Phases | None:
    """The seasonal phase of each reference window, which the calibration compares it at
    as a run compares a window (None: the model has no seasonality)."""
    if model.seasonality not in SEASON_PERIODS:
        return None
    period = SEASON_PERIODS[model.seasonality]
    n_phases = PHASES[model.seasonality]
    width = _phase_width(model.window, period, n_phases)
    starts, ends = (wall_seconds(t, model.timezone) for t in (ref.starts, ref.ends))
    return calibration.block_phases(starts, ends, period, n_phases, width)


def _split_baseline(ref: ReferencePeriod, snap: Snapshot, wm: float) -> FloatArray:
    """``drift.split_baseline`` on whole reference windows (at most ``BASELINE_WINDOWS``,
    evenly spaced; each cut to the sample a run's split gain takes): a window's clusters,
    not a thinned one's, which cut in two differently. Seeded by the snapshot's seed, so
    that the calibration's draws do not depend on it."""
    rng = np.random.default_rng(snap.seed)
    n = ref.n_windows
    chosen = np.unique(np.linspace(0, n - 1, min(n, BASELINE_WINDOWS)).round().astype(np.intp))
    rows = np.flatnonzero(np.isin(ref.block, chosen))
    keep = []
    for b in chosen:
        mine = rows[ref.block[rows] == b]
        if mine.shape[0] > drift.SPLIT_ROWS:
            mine = np.sort(rng.choice(mine, drift.SPLIT_ROWS, replace=False))
        keep.append(mine)
    taken = np.concatenate(keep) if keep else rows
    Xs = prepare(ref.X[taken], snap.scaler, snap.metric)
    labels, _ = assign_labels(Xs, snap.centers, working_memory_mib=wm)
    return drift.split_baseline(Xs, labels, ref.block[taken], snap.k, random_state=rng)


def _phase_width(window: float, period: float, n_phases: int) -> int:
    """Phases on each side pooled into a window's reference: enough to cover the window."""
    per_phase = period / n_phases
    return int(min(n_phases // 2, max(1, math.ceil(window / per_phase / 2))))


def _profile(
    Xs: FloatArray,
    block: IntArray,
    ref: ReferencePeriod,
    snap: Snapshot,
    cycle: tuple[float, int, int],
    wm: float,
    timezone: str,
) -> SeasonalProfile:
    """The reference's counts by phase of ``cycle`` = (period, phases, width), the phases
    those of ``timezone``'s wall clock."""
    period, n_phases, width = cycle
    labels, counts, offsets, sums = _window_counts(Xs, block, ref.n_windows, snap, wm)
    mid = wall_seconds((ref.starts + ref.ends) / 2, timezone)
    fitted = seasonal.fit_profile(
        mid, labels, counts, offsets, period=period, n_phases=n_phases, width=width,
        center_sums=sums,
    )  # fmt: skip
    return replace(fitted, timezone=timezone)


def center_shifts(
    Xs: FloatArray,
    block: IntArray,
    phases: calibration.Phases,
    snap: Snapshot,
    model: ModelSettings,
    wm: float,
    *,
    per_phase: bool = False,
) -> tuple[FloatArray | None, calibration.Phases]:
    """Where the model's centres refitted warm (as a run's candidate starts) settle, less
    the same rows' cluster means under the model (``_settle_shift``), on the reference
    rows of a phase and the ``width`` phases on each side:

    - per phase, (P, k, d), what a run adds to the means (``SeasonalProfile.center_shifts``;
      None unless ``per_phase``);
    - per block, (b, k, d), what its null window adds, returned as ``phases``' ``shifts``:
      refitted on its phase's stretch without the block's own rows, as its cluster means
      leave them out; with them in, each shift would partly fit its block's own settling,
      and the null would not see the shift's error (docs/decisions.md).

    A run compares its window's warm start with the reference's cluster means at its
    phase. Where clusters touch, the later Lloyd iterations move the boundary between
    them with the hour's traffic mix, and the warm start settles away from those means
    by as much every day: on the detection benchmark's seed 2, its tightest cluster by 3
    to 5 standard errors at night, which the drift's threshold had to cover in quiet
    windows (docs/slis.md, "Seasonality"). 0 at a phase whose stretch holds fewer than
    SHIFT_WINDOWS windows' worth of rows (``_shifting``), for its blocks too."""
    labels, _ = assign_labels(Xs, snap.centers, working_memory_mib=wm)
    phase = phases.of_block[block]
    shape = snap.centers.shape
    runs: FloatArray | None = np.zeros((phases.n_phases, *shape)) if per_phase else None
    nulls: NDArray[np.float64] = np.zeros((phases.of_block.shape[0], *shape))
    for p in np.flatnonzero(_shifting(phase, block, phases)):
        near = _near(phase, int(p), phases)
        if runs is not None:
            runs[p] = _settle_shift(Xs[near], labels[near], snap, model, wm)
        for b in np.unique(block[phase == p]):
            rest = near & (block != b)
            nulls[b] = _settle_shift(Xs[rest], labels[rest], snap, model, wm)
    return runs, replace(phases, shifts=nulls)


def _shifting(phase: IntArray, block: IntArray, phases: calibration.Phases) -> NDArray[np.bool_]:
    """(P,) the phases whose stretch holds SHIFT_WINDOWS reference windows' worth of rows
    (the median window's). A shift refitted on fewer is mostly its rows' own noise, and
    every run at that phase would be compared with that same error (docs/slis.md,
    "Where a warm start settles")."""
    per_window = np.bincount(block)
    typical = float(np.median(per_window[per_window > 0]))
    rows = np.bincount(phase, minlength=phases.n_phases).astype(np.float64)
    if 2 * phases.width + 1 >= phases.n_phases:
        stretch = np.full(phases.n_phases, rows.sum())
    else:
        stretch = np.zeros(phases.n_phases)
        for step in range(-phases.width, phases.width + 1):
            stretch += np.roll(rows, step)
    out: NDArray[np.bool_] = stretch >= SHIFT_WINDOWS * typical
    return out


def _near(phase: IntArray, p: int, phases: calibration.Phases) -> NDArray[np.bool_]:
    """Rows whose phase is within ``phases.width`` of phase ``p`` (circular)."""
    gap = np.abs(phase - p)
    out: NDArray[np.bool_] = np.minimum(gap, phases.n_phases - gap) <= phases.width
    return out


def _settle_shift(
    rows: FloatArray, own: IntArray, snap: Snapshot, model: ModelSettings, wm: float
) -> FloatArray:
    """(k, d) where the model's centres refitted warm on ``rows`` (at most SHIFT_ROWS of
    them, evenly strided) settle, less the means of ``rows`` per cluster ``own``; 0 where
    a cluster has no row, and everywhere when the rows are too few to refit."""
    k, d = snap.centers.shape
    out = np.zeros((k, d))
    if rows.shape[0] > SHIFT_ROWS:
        step = -(-rows.shape[0] // SHIFT_ROWS)
        rows, own = rows[::step], own[::step]
    if rows.shape[0] <= k:
        return out
    t = model.training
    fit = fit_kmeans(
        rows, k, init=snap.centers, init_labels=own, n_init=1, max_iter=t.max_iter,
        tol=t.tol, metric=model.metric, working_memory_mib=wm, random_state=snap.seed,
    )  # fmt: skip
    counts = np.bincount(own, minlength=k)
    sums = np.zeros((k, d))
    np.add.at(sums, own, rows)
    seen = counts > 0
    out[seen] = fit.centers[seen] - sums[seen] / counts[seen, None]
    return out


def _window_counts(
    Xs: FloatArray, block: IntArray, n_windows: int, snap: Snapshot, wm: float
) -> tuple[FloatArray, FloatArray, IntArray, FloatArray]:
    """Rows of each reference window per cluster and per bin (features side by side), and
    the sums of its scaled rows per cluster."""
    k = snap.k
    labels, _ = assign_labels(Xs, snap.centers, working_memory_mib=wm)
    by_label = np.bincount(block * k + labels, minlength=n_windows * k).reshape(n_windows, k)
    offsets = np.concatenate(([0], np.cumsum([e.shape[0] + 1 for e in snap.bins.edges])))
    width = int(offsets[-1])
    cols = np.column_stack(
        [bin_index(edges, Xs[:, j]) + offsets[j] for j, edges in enumerate(snap.bins.edges)]
    )
    by_bin = np.bincount(
        (block[:, None] * width + cols).ravel(), minlength=n_windows * width
    ).reshape(n_windows, width)
    sums = np.zeros((n_windows, k, Xs.shape[1]))
    np.add.at(sums, (block, labels), Xs)
    return by_label.astype(np.float64), by_bin.astype(np.float64), offsets.astype(np.intp), sums


def comparison(snap: Snapshot, window: Window) -> tuple[FloatArray, ReferenceBins] | None:
    """What a window is compared with under a seasonal model: its phase's reference."""
    if snap.profile is None:
        return None
    return seasonal.phase_reference(snap.profile, _phase_time(snap.profile, window), snap.bins)


def reference_centers(snap: Snapshot, window: Window) -> FloatArray:
    """The centres a window's candidate is compared with: under a seasonal model the
    reference's cluster means at the window's phase (levels that follow the cycle are
    not drift), else the model's centres."""
    if snap.profile is None:
        return snap.centers
    return seasonal.phase_centers(snap.profile, _phase_time(snap.profile, window), snap.centers)


def _phase_time(profile: SeasonalProfile, window: Window) -> float:
    """A window's midpoint on the clock of the profile's phases."""
    return float(wall_seconds((window.start + window.end) / 2, profile.timezone))
