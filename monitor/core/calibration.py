"""Thresholds at each window size, calibrated on the reference period.

Under the no-change hypothesis a monitored window looks like a window of the reference
period: the same traffic mix at the same phase of the day, the same autocorrelation
within a window, the same sampling noise at its row count. The reference period is cut
into windows of the monitored duration ("blocks"). A null window of ``n`` rows is a
block drawn at random with ``n`` of its rows drawn with replacement, and it is compared
with the reference that leaves the block out (the pooled phase around it when the model
is seasonal): the SLI values of many null windows are the null distribution of each SLI
at size ``n``. Drawing whole blocks keeps what makes real telemetry hard (rolling means
and daily cycles make a window narrower than the period), and drawing rows within a
block gives the noise of the window's size.

Runs' windows need not end where the blocks do (a schedule shorter than the window, a
restart), so the pipeline passes the period cut again at another offset (``Cut``): null
windows are drawn from the blocks of every cut, each compared with the rest of its own.

The false-alarm rate is controlled for the model as a whole, per window: the SLIs that
are computed on the same null windows get thresholds from their joint null (the
max-statistic, or min-p, method: the family alarms on at most ``false_alarm_rate`` of
the null windows), and the silhouette, the centroid drift and the split gain, each
drawn on fewer null windows of its own (a refit or a cut per window), get a Bonferroni
share each. See docs/slis.md, "Calibration".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import chdtrc, ndtr, ndtri

from monitor.checks import (
    RandomStateLike,
    check_array,
    check_float,
    check_int,
    check_random_state,
)
from monitor.core import drift
from monitor.core._chunking import DEFAULT_WORKING_MEMORY_MIB, chunk_rows, iter_slices
from monitor.core._psi import bin_index, psi_rows
from monitor.core.drift import DEFAULT_EPSILON, centroid_drift, drift_standard_errors
from monitor.core.kmeans import assign_labels, fit_kmeans
from monitor.core.outliers import leave_out_thresholds
from monitor.core.seasonal import phase_index, phase_weights
from monitor.errors import InvalidInputError
from monitor.records import (
    CentroidDrift,
    NullTable,
    OutlierThresholds,
    ReferenceBins,
    ReferenceWindows,
)
from monitor.slis import (
    ABOVE,
    BELOW,
    CENTROID_DRIFT_MAX,
    CENTROID_DRIFT_SE,
    EMPTY_CLUSTERS,
    FEATURE_PSI_MAX,
    LABEL_PSI,
    NARROWING,
    OUTLIER_RATIO,
    SILHOUETTE,
    SLIS,
    SPLIT_GAIN,
    Sli,
)

__all__ = [
    "CALIBRATABLE",
    "JOINT",
    "SEPARATE",
    "Cut",
    "Phases",
    "Refit",
    "block_phases",
    "calibrate",
    "threshold_at",
]

F64 = NDArray[np.float64]
# How a null window's rows are refitted from centres C with a seed: the centres found,
# and the warm start's from C alone (the same where the refit is the warm start).
Refit = Callable[[F64, F64, int], tuple[NDArray[Any], NDArray[Any]]]
Int = NDArray[np.intp]

#: SLIs calibrated jointly on the same null windows (cheap: counts and means of rows).
JOINT = (FEATURE_PSI_MAX, LABEL_PSI, OUTLIER_RATIO, EMPTY_CLUSTERS)
#: SLIs calibrated on their own null windows, each with a Bonferroni share: the
#: silhouette (exact within small windows), the centroid drift in scaled units and in
#: standard errors (the same refits, one per window) and the split gain (every cluster
#: cut in two per window).
SEPARATE = (SILHOUETTE, CENTROID_DRIFT_MAX, CENTROID_DRIFT_SE, SPLIT_GAIN)
#: The SLIs measured on refits of null windows.
REFITTED = (CENTROID_DRIFT_MAX, CENTROID_DRIFT_SE)
CALIBRATABLE = (*JOINT, *SEPARATE)

DRAW_BUDGET = 1.5e7  # gathered values per size (draws * n * (d + 2)): bounds the work
MIN_DRAWS, MAX_DRAWS = 1000, 3000
MIN_TAIL = 10  # empirical tail quantiles need this many exceedances; beyond, a fitted tail
MIN_BLOCKS = 10  # fewer reference windows than this: null windows are bootstrapped
SILHOUETTE_REFERENCE = 1000  # reference points each point's silhouette is measured against
SILHOUETTE_ROWS = 10_000  # points whose silhouette is measured (spread over the blocks)
SILHOUETTE_WINDOW = 10_000  # a run's silhouette points: training.silhouette_sample's default
EXACT_SILHOUETTE = 250  # up to this size, null silhouettes are computed within the window
SILHOUETTE_DRAWS = 400  # null windows per size for the exact silhouette
SPREAD_DRAWS = 1000  # null windows of EXACT_SILHOUETTE rows behind the larger sizes' null
SPLIT_ROWS_PER_SIZE = 300_000  # rows cut in two per size for the split gain's null
SPLIT_DRAWS_PER_FIT = 8  # the split gain's null windows per size, at most, per refit
_SEED_HIGH = 2**31 - 1
RESIDUE = 1e-9  # weighted counts closer to 0 are rounding residue (_no_residue)


@dataclass(frozen=True)
class Phases:
    """The seasonal phase of each block, for comparing a block with its own phase."""

    of_block: Int  # (b,) phase index of each block
    n_phases: int
    width: int  # phases on each side pooled into a block's reference
    weights: F64  # (b, n_phases) each phase's part in a block's reference (phase_weights)
    # (b, k, d) where a block's warm start settles from its reference's cluster means when
    # nothing changed, from its phase's rows less its own (the pipeline's center_shifts);
    # None: nowhere
    shifts: F64 | None = None


@dataclass(frozen=True, eq=False)
class Cut:
    """The reference period cut into windows at another offset than the blocks' own: its
    rows (scaled as the blocks' are), each row's window, and their phases when seasonal.
    Its windows are null windows too, compared with the rest of their own cut."""

    X: ArrayLike  # (N', d)
    block: ArrayLike  # (N',) in [0, b')
    phases: Phases | None = None


@dataclass(frozen=True, eq=False)
class _Refits:
    """How the SLIs drawn one by one are drawn: null windows per size (the split gain's
    scale with it), how each is refitted, the split baseline the split gain is measured
    against (None: not measured), the points a run's silhouette is computed on, and a
    run's usual rows (refitted too; None: not known)."""

    count: int
    refit: Refit
    split_baseline: F64 | None
    silhouette_sample: int
    usual: int | None

    @classmethod
    def of(
        cls,
        count: int,
        refit: Refit | None,
        split_baseline: ArrayLike | None,
        silhouette_sample: int,
        usual: int | None,
        wm: float,
    ) -> _Refits:
        """``calibrate``'s parameters for them, checked (no ``refit``: Lloyd warm)."""
        owner = "calibrate"
        return cls(
            count,
            refit or _warm_refit(wm),
            None if split_baseline is None else np.asarray(split_baseline, dtype=np.float64),
            check_int(silhouette_sample, "silhouette_sample", low=1, owner=owner),
            None if usual is None else check_int(usual, "usual_size", low=1, owner=owner),
        )


@dataclass(frozen=True, eq=False)
class _Streams:
    """One generator per part of the calibration, spawned from its seed: what one part
    draws (how many refits the budget affords, whether the silhouette is calibrated at
    all) leaves every other part's draws, and so its thresholds, as they were."""

    prepare: np.random.Generator  # the silhouette's measured rows
    joint: np.random.Generator
    silhouette: np.random.Generator
    refits: np.random.Generator
    split: np.random.Generator

    @classmethod
    def spawn(cls, rng: np.random.Generator) -> _Streams:
        return cls(*rng.spawn(5))


@dataclass(frozen=True, eq=False)
class _Refitted:
    """One null window refitted, against the centres it is compared with."""

    drift: CentroidDrift  # the refit's (restarts too): the centroid drift's null
    warm: CentroidDrift  # its warm start's: the null of the drift in standard errors
    rows: Int  # (k,) the window's rows nearest each of the model's centres
    cut: int  # the cut of the period its window was drawn from (0: the period's own)


@dataclass(frozen=True, eq=False)
class _Windows:
    """Null windows: ``rows[i]`` drawn from the stretch of blocks ``first[i]``..``last[i]``."""

    first: Int  # (c,)
    last: Int  # (c,)
    rows: Int  # (c, n)


@dataclass(frozen=True, eq=False)
class _Pool:
    """Per-row facts of the reference, computed once; a null window only gathers them."""

    X: F64  # (N, d) the reference rows, ordered by block
    labels: Int  # (N,)
    flags: F64  # (N,) 1.0 for outliers
    bins: NDArray[np.int32]  # (N, d) global bin column of each value
    first: Int  # (b,) first row of each block
    length: Int  # (b,) rows of each block
    own_labels: F64  # (b, k) rows of each block per cluster
    own_bins: F64  # (b, B) rows of each block per bin, features side by side
    own_sums: F64  # (b, k, d) sums of each block's rows per cluster
    ref_labels: F64  # (b, k) rows per cluster of each block's reference (it left out)
    ref_bins: F64  # (b, B) rows per bin of each block's reference
    ref_sums: F64  # (b, k, d) sums per cluster of each block's reference
    centers: F64  # (k, d) the model's centres
    phases: Phases | None
    offsets: Int  # (d + 1,)
    sil: F64 | None  # (S,) silhouette of the measured rows, grouped by block
    sil_first: Int  # (b,)
    sil_length: Int  # (b,)
    k: int
    cut: Int  # (b,) the cut each block belongs to: 0 for the blocks, i for cuts[i - 1]

    @property
    def windows(self) -> int:
        """The reference's own windows (the first cut's populated blocks)."""
        return int(np.count_nonzero(self.length[self.cut == 0]))

    @property
    def rows(self) -> int:
        """The reference's own rows (the first cut's)."""
        return int(self.length[self.cut == 0].sum())


def calibrate(
    X_ref_scaled: ArrayLike,
    block: ArrayLike,
    centers: ArrayLike,
    bins: ReferenceBins,
    outlier_thresholds: OutlierThresholds,
    *,
    starts: ArrayLike,
    ends: ArrayLike,
    sizes: Sequence[int],
    keys: Sequence[str],
    false_alarm_rate: float = 0.01,
    phases: Phases | None = None,
    n_fits: int = 100,
    random_state: RandomStateLike = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    refit: Refit | None = None,
    split_baseline: ArrayLike | None = None,
    silhouette_sample: int = SILHOUETTE_WINDOW,
    cuts: Sequence[Cut] = (),
    usual_size: int | None = None,
) -> tuple[NullTable, ReferenceWindows]:
    """Thresholds of ``keys`` for windows of each of ``sizes`` rows, and the reference
    windows' own SLIs.

    Parameters
    ----------
    X_ref_scaled : array-like of shape (N, d)
        The reference period in the model's scaled units (a subsample of it is fine).
    block : array-like of shape (N,)
        The reference window of each row, in ``[0, b)``; ``b = 1`` when the reference
        is one window (the null then resamples that window's rows).
    centers : array-like of shape (k, d)
    bins, outlier_thresholds : the reference's bins and per-cluster distance thresholds.
    sizes, keys : window sizes (rows) to calibrate at, ascending, each >= 1; and the SLI
        keys to calibrate, any of ``CALIBRATABLE``.
    false_alarm_rate : float
        Target probability that a quiet window crosses any of the thresholds, in (0, 0.5).
    phases : Phases or None
        A seasonal model's block phases: a block is compared at its phase, as a window is.
    n_fits : int
        Null windows refitted per size (at up to four sizes), split about as many; 0: neither.
    random_state, working_memory_mib : the seed and the memory budget.
    refit : callable (X, C, seed) -> (centres, warm start's centres), optional
        How a null window is refitted (default: Lloyd warm from C; the pipeline passes its
        candidate training, k-means++ restarts too).
    split_baseline : array-like of shape (k,), optional
        ``drift.split_baseline`` of the reference (without it the split gain is NaN).
    silhouette_sample : the points a run's silhouette is computed on (its training's).
    cuts : the period cut into windows at other offsets, null windows too (``Cut``).
    usual_size : a run's usual rows, optional; the drifts' refits run there too (if in sizes).

    Returns
    -------
    NullTable
        ``values[g, j]``: the threshold of ``keys[j]`` at ``sizes[g]``; NaN where the SLI
        is undefined at that size (fewer than two populated clusters for the silhouette,
        fewer rows than clusters for a refit). Empty ``keys`` calibrate nothing.
    ReferenceWindows
        The joint SLIs of each block at its size against the reference without it.
    """
    X, blk, C, grid, keys_t, alpha, n_fits, wm = _check(
        X_ref_scaled, block, centers, bins, sizes, keys, false_alarm_rate, n_fits,
        working_memory_mib,
    )  # fmt: skip
    streams = _Streams.spawn(check_random_state(random_state))
    own = (X, blk, phases)
    pool = _pooled(own, cuts, C, bins, outlier_thresholds, keys_t, streams.prepare, wm)
    joint = [key for key in keys_t if key in JOINT]
    separate = [key for key in keys_t if key in SEPARATE]
    m = len(joint) + len(separate)
    values = np.full((grid.shape[0], len(keys_t)), np.nan)
    rate = alpha / max(1, m)  # Bonferroni across the family: each SLI's share
    joint_values, draws = _joint_thresholds(pool, grid, joint, rate * len(joint), streams.joint)
    refits = _Refits.of(n_fits, refit, split_baseline, silhouette_sample, usual_size, wm)
    columns, spread = _separate_thresholds(pool, C, grid, separate, refits, rate, streams, wm)
    for key, column in [*zip(joint, joint_values.T, strict=True), *columns]:
        values[:, keys_t.index(key)] = column
    table = NullTable(grid, keys_t, values, alpha, rate, draws, drift_spread=spread)
    return table, _reference_windows(_first_cut(pool), starts, ends)


def _joint_thresholds(
    pool: _Pool, grid: NDArray[np.int64], joint: list[str], rate: float, rng: np.random.Generator
) -> tuple[F64, int]:
    """The thresholds of the SLIs drawn together, at each size (``rate`` for them all),
    and the most null windows drawn at one size."""
    values = np.full((grid.shape[0], len(joint)), np.nan)
    draws = 0
    if not joint:
        return values, draws
    for g, n in enumerate(grid):
        samples = _null_draws(pool, int(n), joint, rng)
        draws = max(draws, samples.shape[0])
        values[g] = _family_thresholds(samples, joint, rate)
    return values, draws


def _separate_thresholds(
    pool: _Pool,
    C: F64,
    grid: NDArray[np.int64],
    separate: list[str],
    refits: _Refits,
    rate: float,
    streams: _Streams,
    wm: float,
) -> tuple[list[tuple[str, F64]], F64 | None]:
    """The thresholds of the SLIs calibrated one by one (``rate`` each), at each size:
    the silhouette from its own draws, the centroid drifts and the split gain as
    ``refits`` says (how many null windows per size, how each is refitted, the split
    baseline), each from its stream; and the clusters' drift spread (None: no window
    refitted)."""
    out = []
    spread = None
    if SILHOUETTE in separate:
        sample = refits.silhouette_sample
        out.append(
            (SILHOUETTE, _silhouette_thresholds(pool, grid, rate, streams.silhouette, sample))
        )
    refitted = [key for key in REFITTED if key in separate]
    if refits.count > 0 and refitted:
        columns, spread = _refit_thresholds(pool, C, grid, refits, rate, streams.refits, wm)
        out += [(key, columns[key]) for key in refitted]
    baseline = refits.split_baseline
    if refits.count > 0 and SPLIT_GAIN in separate and baseline is not None:
        split = _split_thresholds(pool, grid, baseline, refits.count, rate, streams.split, wm)
        out.append((SPLIT_GAIN, split))
    return out, spread


def _check(
    X_ref_scaled: ArrayLike,
    block: ArrayLike,
    centers: ArrayLike,
    bins: ReferenceBins,
    sizes: Sequence[int],
    keys: Sequence[str],
    false_alarm_rate: float,
    n_fits: int,
    working_memory_mib: float,
) -> tuple[F64, Int, F64, NDArray[np.int64], tuple[str, ...], float, int, float]:
    owner = "calibrate"
    X = np.asarray(check_array(X_ref_scaled, name="X_ref_scaled"), dtype=np.float64)
    C = np.asarray(check_array(centers, name="centers", rows="n_clusters"), dtype=np.float64)
    blk = np.asarray(block)
    if blk.shape != (X.shape[0],) or blk.dtype.kind not in "iu" or (blk.size and blk.min() < 0):
        raise InvalidInputError(
            f"The 'block' parameter of {owner} must be {X.shape[0]} non-negative integers, "
            f"one per row of X_ref_scaled. Got an array of shape {blk.shape}, dtype {blk.dtype}."
        )
    if C.shape[1] != X.shape[1] or len(bins.edges) != X.shape[1]:
        raise InvalidInputError(
            f"The 'centers' and 'bins' parameters of {owner} must have {X.shape[1]} features "
            f"to match X_ref_scaled; got {C.shape[1]} and {len(bins.edges)}."
        )
    grid = np.asarray([check_int(n, "sizes", low=1, owner=owner) for n in sizes], dtype=np.int64)
    if grid.size == 0 or np.any(np.diff(grid) <= 0):
        raise InvalidInputError(
            f"The 'sizes' parameter of {owner} must be a non-empty increasing sequence. "
            f"Got {list(sizes)!r} instead."
        )
    known = CALIBRATABLE
    for key in keys:
        if key not in known:
            raise InvalidInputError(
                f"The 'keys' parameter of {owner} must hold SLIs among {known}. "
                f"Got {key!r} instead."
            )
    alpha = check_float(
        false_alarm_rate, "false_alarm_rate", low=0.0, high=0.5, low_inclusive=False,
        high_inclusive=False, owner=owner,
    )  # fmt: skip
    n_fits = check_int(n_fits, "n_fits", low=0, owner=owner)
    wm = check_float(working_memory_mib, "working_memory_mib", low=0.0, low_inclusive=False)
    return X, blk.astype(np.intp), C, grid, tuple(dict.fromkeys(keys)), alpha, n_fits, wm


def _check_cut(cut: Cut, d: int) -> tuple[F64, Int, Phases | None]:
    X = np.asarray(check_array(cut.X, name="cuts[i].X"), dtype=np.float64)
    blk = np.asarray(cut.block)
    if X.shape[1] != d or blk.shape != (X.shape[0],) or blk.dtype.kind not in "iu":
        raise InvalidInputError(
            f"A cut of calibrate must hold rows of {d} features and one integer block per row;"
            f" got rows of shape {X.shape} and blocks of shape {blk.shape}, dtype {blk.dtype}."
        )
    if blk.size and blk.min() < 0:
        raise InvalidInputError("A cut of calibrate must have non-negative blocks.")
    return X, blk.astype(np.intp), cut.phases


# --------------------------------------------------------------------------- the pool


def _prepare(
    X: F64,
    blk: Int,
    C: F64,
    bins: ReferenceBins,
    outliers: OutlierThresholds,
    phases: Phases | None,
    keys: tuple[str, ...],
    rng: np.random.Generator,
    wm: float,
) -> _Pool:
    order = np.argsort(blk, kind="stable")
    X, blk = X[order], blk[order]
    n_blocks = int(blk.max()) + 1 if blk.size else 0
    length = np.bincount(blk, minlength=n_blocks).astype(np.intp)
    first = np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.intp)
    labels, sq = assign_labels(X, C, working_memory_mib=wm)
    labels = np.asarray(labels, dtype=np.intp)
    # Each block's outliers by thresholds fitted without it, as a fresh window's are.
    limits = leave_out_thresholds(sq, labels, blk, outliers, max(1, n_blocks))
    flags = (np.sqrt(np.asarray(sq, dtype=np.float64)) > limits[blk, labels]).astype(np.float64)
    offsets = np.concatenate(([0], np.cumsum([e.shape[0] + 1 for e in bins.edges]))).astype(np.intp)
    cols = np.empty(X.shape, dtype=np.int32)
    for j, edges in enumerate(bins.edges):
        cols[:, j] = bin_index(edges, X[:, j]) + offsets[j]
    k = C.shape[0]
    own_labels = _counts(blk * k + labels, n_blocks * k).reshape(n_blocks, k)
    own_bins = _counts(
        (blk[:, None] * offsets[-1] + cols).ravel(), n_blocks * int(offsets[-1])
    ).reshape(n_blocks, int(offsets[-1]))
    own_sums = np.zeros((n_blocks, k, X.shape[1]))
    np.add.at(own_sums, (blk, labels), X)
    ref_l, ref_b, ref_sums = _block_references([own_labels, own_bins, own_sums], phases)
    sil, sil_first, sil_length = _silhouettes(X, labels, C, first, length, keys, rng, wm)
    return _Pool(
        X=X,
        labels=labels,
        flags=flags,
        bins=cols,
        first=first,
        length=length,
        own_labels=own_labels,
        own_bins=own_bins,
        own_sums=own_sums,
        ref_labels=ref_l,
        ref_bins=ref_b,
        ref_sums=ref_sums,
        centers=C,
        phases=phases,
        offsets=offsets,
        sil=sil,
        sil_first=sil_first,
        sil_length=sil_length,
        k=k,
        cut=np.zeros(n_blocks, dtype=np.intp),
    )


#: The pool's arrays with one entry per reference row, and with one entry per block.
_ROW_FIELDS = ("X", "labels", "flags", "bins")
_BLOCK_FIELDS = (
    *("first", "length", "own_labels", "own_bins", "own_sums", "ref_labels", "ref_bins"),
    *("ref_sums", "sil_first", "sil_length", "cut"),
)


def _pooled(
    own: tuple[F64, Int, Phases | None],
    cuts: Sequence[Cut],
    C: F64,
    bins: ReferenceBins,
    outliers: OutlierThresholds,
    keys: tuple[str, ...],
    rng: np.random.Generator,
    wm: float,
) -> _Pool:
    """The pool of the reference's windows ``own`` (rows, block, phases) and of ``cuts``."""
    parts = [own, *(_check_cut(c, own[0].shape[1]) for c in cuts)]
    return _merged([_prepare(X, b, C, bins, outliers, ph, keys, rng, wm) for X, b, ph in parts])


def _merged(pools: list[_Pool]) -> _Pool:
    """One pool of the blocks of several cuts of the period, each cut's references and
    leave-out outliers its own (a block is left out of its own cut, which holds each row
    once); the first pool's blocks first."""
    if len(pools) == 1:
        return pools[0]
    first = pools[0]
    rows = np.cumsum([0] + [p.X.shape[0] for p in pools[:-1]])
    sils = np.cumsum([0] + [0 if p.sil is None else p.sil.shape[0] for p in pools[:-1]])
    fields: dict[str, Any] = {
        name: np.concatenate([getattr(p, name) for p in pools])
        for name in _ROW_FIELDS + _BLOCK_FIELDS
    }
    # Each pool's row offsets moved past the pools before it; the cut each block is of.
    fields["first"] = np.concatenate([p.first + r for p, r in zip(pools, rows, strict=True)])
    fields["sil_first"] = np.concatenate(
        [p.sil_first + r for p, r in zip(pools, sils, strict=True)]
    )
    fields["cut"] = np.concatenate([np.full(p.length.shape[0], i) for i, p in enumerate(pools)])
    sil = None if first.sil is None else np.concatenate([p.sil for p in pools if p.sil is not None])
    return replace(first, **fields, phases=_merged_phases(pools), sil=sil)


def _merged_phases(pools: list[_Pool]) -> Phases | None:
    """The phases of ``_merged``'s blocks, in its order (None: not seasonal)."""
    if pools[0].phases is None:
        return None
    parts = [p.phases for p in pools if p.phases is not None]
    shifted = [q.shifts for q in parts if q.shifts is not None]
    return replace(
        pools[0].phases,
        of_block=np.concatenate([q.of_block for q in parts]),
        weights=np.concatenate([q.weights for q in parts]),
        shifts=np.concatenate(shifted) if len(shifted) == len(parts) else None,
    )


def _counts(index: NDArray[Any], size: int) -> F64:
    return np.bincount(index, minlength=size).astype(np.float64)


def _block_references(own: list[F64], phases: Phases | None) -> list[F64]:
    """Counts each block is compared with: the reference without the block itself.

    ``own`` are per-block count arrays, (b, ...) each, the first one the cluster counts.
    Seasonal: the phases around the block's midpoint, weighted as ``phase_weights``
    says, less the block's own rows at its phase's weight. A block whose leave-out
    reference is empty (a one-window reference) is compared with the whole reference.
    """
    totals = [part.sum(axis=0) for part in own]
    if phases is None:
        refs = [total - part for total, part in zip(totals, own, strict=True)]
    else:
        p = phases.n_phases
        own_weight = phases.weights[np.arange(phases.of_block.shape[0]), phases.of_block]
        refs = []
        for part in own:
            by_phase = np.zeros((p, *part.shape[1:]))
            np.add.at(by_phase, phases.of_block, part)
            pooled = np.tensordot(phases.weights, by_phase, axes=1)
            refs.append(_no_residue(pooled - _per_window(own_weight, part) * part))
    empty = refs[0].sum(axis=1) <= 0
    for ref, total in zip(refs, totals, strict=True):
        ref[empty] = total
    return refs


def _per_feature_shares(counts: F64, offsets: Int) -> F64:
    out = np.empty_like(counts)
    for j in range(offsets.shape[0] - 1):
        part = counts[..., offsets[j] : offsets[j + 1]]
        out[..., offsets[j] : offsets[j + 1]] = part / np.maximum(
            part.sum(axis=-1, keepdims=True), 1.0
        )
    return out


def _silhouettes(
    X: F64,
    labels: Int,
    C: F64,
    first: Int,
    length: Int,
    keys: tuple[str, ...],
    rng: np.random.Generator,
    wm: float,
) -> tuple[F64 | None, Int, Int]:
    """Silhouette of up to SILHOUETTE_ROWS rows spread evenly over the blocks.

    Each row's mean distances are measured against one random set of reference rows,
    which estimates the means over any window it could be in.
    """
    n_blocks = first.shape[0]
    if SILHOUETTE not in keys or C.shape[0] < 2 or np.unique(labels).shape[0] < 2:
        return None, np.zeros(n_blocks, np.intp), np.zeros(n_blocks, np.intp)
    per_block = max(1, SILHOUETTE_ROWS // max(1, n_blocks))
    take = np.minimum(length, per_block)
    rows = np.concatenate(
        [f + rng.choice(n, t, replace=False) for f, n, t in zip(first, length, take, strict=True)]
    ).astype(np.intp)
    ref = rng.choice(X.shape[0], min(SILHOUETTE_REFERENCE, X.shape[0]), replace=False)
    onehot = np.zeros((ref.shape[0], C.shape[0]))
    onehot[np.arange(ref.shape[0]), labels[ref]] = 1.0
    size = onehot.sum(axis=0)
    sil = np.empty(rows.shape[0])
    chunk = chunk_rows(rows.shape[0], ref.shape[0] * 8 * 3, wm)  # distances, and two copies
    for s in iter_slices(rows.shape[0], chunk):
        dist = np.sqrt(np.maximum(_sq_dist(X[rows[s]], X[ref]), 0.0))
        mean = (dist @ onehot) / np.maximum(size, 1.0)
        own = labels[rows[s]]
        a = mean[np.arange(own.shape[0]), own]
        mean[np.arange(own.shape[0]), own] = np.inf
        mean[:, size == 0] = np.inf
        b = mean.min(axis=1)
        sil[s] = np.where(np.isfinite(b), (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    sil_first = np.concatenate(([0], np.cumsum(take)[:-1])).astype(np.intp)
    return sil, sil_first, take.astype(np.intp)


def _sq_dist(A: F64, B: F64) -> F64:
    out: F64 = (A * A).sum(axis=1)[:, None] - 2.0 * (A @ B.T) + (B * B).sum(axis=1)[None, :]
    return out


# --------------------------------------------------------------------------- null draws


def _draw_rows(
    pool: _Pool, n: int, count: int, rng: np.random.Generator, *, cover: bool = False
) -> _Windows:
    """``count`` null windows of ``n`` rows.

    A window is ``n`` rows drawn without replacement from one block, so that it is an
    honest sample of that stretch of time; when blocks hold fewer than ``n`` rows, from
    the run of consecutive blocks that does (a bigger window of the same time, compared
    with a reference that leaves them all out). Drawn from a random block, such a
    subsample varies as a fresh window of ``n`` rows would: around its block, and the
    block around the period. With fewer than MIN_BLOCKS blocks the second part is not
    represented (a one-window reference resampled without replacement would give the
    reference itself every time), so rows are then drawn with replacement (the
    bootstrap), as they are when the whole period is smaller than ``n``.

    ``cover``: every block starts as many windows as any other, ``count`` raised to a
    whole multiple of the blocks that can start one (``count`` distinct blocks where
    more can): drawn at random, a block of a rare kind started 6 windows of 400 on one
    seed and 12 on another, and a tail fitted to the draws moved with it.
    """
    if pool.windows < MIN_BLOCKS:
        return _bootstrap_rows(pool, n, count, rng)
    ends = np.cumsum(pool.length)
    reach = np.searchsorted(ends, pool.first + n, side="left")
    ok = (pool.length > 0) & (reach < pool.length.shape[0])
    ok[ok] &= pool.cut[reach[ok]] == pool.cut[ok]  # a stretch of one cut
    starts = np.flatnonzero(ok)
    if starts.size == 0:  # the whole reference is smaller than one window
        return _bootstrap_rows(pool, n, count, rng)
    if not cover:
        first = starts[rng.integers(0, starts.size, size=count)]
    elif starts.size > count:
        first = np.sort(rng.choice(starts, size=count, replace=False))
    else:
        first = np.repeat(starts, -(-count // starts.size))
    count = first.shape[0]
    lengths = ends[reach[first]] - pool.first[first]
    keys = rng.random((count, int(lengths.max())))
    keys[np.arange(keys.shape[1])[None, :] >= lengths[:, None]] = 2.0  # past the span
    offsets = np.argpartition(keys, n - 1, axis=1)[:, :n] if n < keys.shape[1] else None
    if offsets is None:
        offsets = np.tile(np.arange(n), (count, 1))
    rows = (pool.first[first][:, None] + offsets).astype(np.intp)
    return _Windows(first, reach[first].astype(np.intp), rows)


def _bootstrap_rows(pool: _Pool, n: int, count: int, rng: np.random.Generator) -> _Windows:
    """Null windows of ``n`` rows drawn with replacement within a random block, a block as
    often as its rows make it: a thin one (the period's first window, cut short) would
    otherwise stand for as much of the period as a full one, its few rows drawn over."""
    usable = np.flatnonzero(pool.length > 0)
    weight = pool.length[usable].astype(np.float64)
    pick = rng.choice(usable, size=count, p=weight / weight.sum())
    offsets = (rng.random((count, n)) * pool.length[pick][:, None]).astype(np.intp)
    return _Windows(pick, pick, pool.first[pick][:, None] + offsets)


def _spanned(pool: _Pool, win: _Windows) -> list[tuple[Int, F64]]:
    """The blocks after each window's first that its reference leaves out too.

    Pairs (block of each window, the weight its rows are left out with): the blocks of
    the window's stretch, at the weight its first block's reference holds them with (1;
    for a seasonal model, their phase's weight around the first block's midpoint). A
    window whose reference would be left empty keeps its first block's (a reference of a
    block or two).
    """
    out: list[tuple[Int, F64]] = []
    left = pool.ref_labels[win.first].sum(axis=1)
    top = pool.length.shape[0] - 1
    for t in range(1, int(np.max(win.last - win.first, initial=0)) + 1):
        b = np.minimum(win.first + t, top)
        weight = (win.first + t <= win.last).astype(np.float64)
        if pool.phases is not None:
            weight *= pool.phases.weights[win.first, pool.phases.of_block[b]]
        left = left - weight * pool.length[b]
        out.append((b, weight))
    kept = _no_residue(left) > 0
    return [(b, weight * kept) for b, weight in out]


def _left_out(own: F64, ref: F64, win: _Windows, spanned: list[tuple[Int, F64]]) -> F64:
    """Each window's reference counts: its first block's, less the rest of its stretch."""
    out = ref[win.first].copy()
    for b, weight in spanned:
        out -= _per_window(weight, own) * own[b]
    return _no_residue(out)


def _per_window(weight: F64, like: F64) -> F64:
    """``weight`` (one per window) shaped to multiply arrays shaped like ``like``."""
    return weight.reshape(-1, *(1,) * (like.ndim - 1))


def _no_residue(counts: F64) -> F64:
    """Weighted counts with rounding residue (a row's worth taken off at a weight and
    added at another) set to 0, so that no near-empty cluster's mean is divided out."""
    counts[np.abs(counts) < RESIDUE] = 0.0
    return counts


def _n_draws(n: int, d: int) -> int:
    return int(min(MAX_DRAWS, max(MIN_DRAWS, DRAW_BUDGET // (n * (d + 2)))))


def _null_draws(pool: _Pool, n: int, keys: list[str], rng: np.random.Generator) -> F64:
    """(D, len(keys)) SLI values of D null windows of ``n`` rows; NaN where undefined."""
    d = pool.bins.shape[1]
    total = _n_draws(n, d)
    out = np.empty((total, len(keys)))
    per_chunk = max(1, int(2e6 // (max(n, int(pool.length.max())) * (d + 2))))
    for s in iter_slices(total, per_chunk):
        out[s] = _window_slis(pool, _draw_rows(pool, n, s.stop - s.start, rng), keys, rng)
    return out


def _window_slis(pool: _Pool, win: _Windows, keys: list[str], rng: np.random.Generator) -> F64:
    """The SLIs of null windows, each against the reference that leaves its stretch out."""
    rows = win.rows
    c, n = rows.shape
    k = pool.k
    counts = np.bincount(
        (pool.labels[rows] + k * np.arange(c)[:, None]).ravel(), minlength=c * k
    ).reshape(c, k)
    spanned = _spanned(pool, win)
    ref_labels = _left_out(pool.own_labels, pool.ref_labels, win, spanned)
    ref_rows = ref_labels.sum(axis=1)
    out = np.empty((c, len(keys)))
    for j, key in enumerate(keys):
        if key == LABEL_PSI:
            shares = ref_labels / np.maximum(ref_rows[:, None], 1.0)
            ref = _perturbed(shares, ref_rows, n, rng)
            out[:, j] = psi_rows(ref, counts / n, DEFAULT_EPSILON)
        elif key == FEATURE_PSI_MAX:
            ref_bins = _left_out(pool.own_bins, pool.ref_bins, win, spanned)
            out[:, j] = _feature_psi_max(pool, rows, ref_bins, ref_rows, rng)
        elif key == OUTLIER_RATIO:
            out[:, j] = pool.flags[rows].mean(axis=1)
        elif key == EMPTY_CLUSTERS:
            out[:, j] = (counts == 0).sum(axis=1)
    return out


def _perturbed(shares: F64, ref_rows: F64, n: int, rng: np.random.Generator) -> F64:
    """Reference shares as a reference of ``ref_rows`` rows could have estimated them.

    Only where the reference is not much larger than the window: beyond 50 times the
    window the estimation noise is negligible next to the window's. A window compared
    with a reference that leaves it out already differs from it by one such error; this
    second one is a margin for the error a model lives with at every run of a phase
    (docs/slis.md, Calibration: without it, two of three seeds of the detection
    benchmark at 50 rows flagged 19 and 21 quiet windows in 1,000 instead of 7 and 1).
    """
    small = ref_rows < 50 * n
    if not small.any():
        return shares
    out = shares.copy()
    m = np.maximum(ref_rows[small], 1).astype(np.int64)
    out[small] = (
        rng.multinomial(m, shares[small] / shares[small].sum(axis=1, keepdims=True)) / m[:, None]
    )
    return out


def _feature_psi_max(
    pool: _Pool, rows: Int, ref_bins: F64, ref_rows: F64, rng: np.random.Generator
) -> F64:
    """The largest feature PSI of each window against its reference's bin counts."""
    c, n = rows.shape
    ref_shares = _per_feature_shares(ref_bins, pool.offsets)
    width = int(pool.offsets[-1])
    cols = pool.bins[rows]  # (c, n, d)
    counts = np.bincount(
        (cols + width * np.arange(c)[:, None, None]).ravel(), minlength=c * width
    ).reshape(c, width)
    best = np.zeros(c)
    for j in range(pool.offsets.shape[0] - 1):
        lo, hi = pool.offsets[j], pool.offsets[j + 1]
        ref = _perturbed(ref_shares[:, lo:hi], ref_rows, n, rng)
        best = np.maximum(best, psi_rows(ref, counts[:, lo:hi] / n, DEFAULT_EPSILON))
    return best


# --------------------------------------------------------------------------- thresholds


def _family_thresholds(samples: F64, keys: list[str], level: float) -> list[float]:
    """Thresholds that together alarm on at most ``level`` of the null windows (min-p).

    Each SLI's null p-value of a window is the share of null windows at least as bad;
    the family alarms when the smallest p-value of a window is at most ``c``, and each
    threshold is the SLI's value at p-value ``c``. ``c`` is the largest cut at which
    the thresholds themselves (strictly above alarms) alarm on at most ``level`` of the
    null windows: counting the alarms, not the p-values, spends the whole share where an
    SLI is discrete (an outlier count, ties) and its threshold sits on a tied value.
    """
    worse = np.column_stack([_oriented(samples[:, j], key) for j, key in enumerate(keys)])
    defined = np.mean(np.isfinite(worse), axis=0) >= 0.5
    pvals = np.full(worse.shape, np.inf)
    columns: dict[int, F64] = {}
    for j in map(int, np.flatnonzero(defined)):
        col = worse[:, j]
        ok = np.isfinite(col)
        srt = np.sort(col[ok])
        columns[j] = srt
        pvals[ok, j] = (srt.shape[0] - np.searchsorted(srt, col[ok], side="left")) / srt.shape[0]
    cut = _level_cut(pvals.min(axis=1), level, lambda c: _alarms(worse, columns, c))
    out = []
    for j, key in enumerate(keys):
        if not defined[j]:
            out.append(math.nan)
            continue
        t = _upper_threshold(columns[j], cut)
        out.append(-t if SLIS[key].direction == BELOW else t)
    return out


def _alarms(worse: F64, columns: dict[int, F64], cut: float) -> int:
    """Null windows on which any SLI is strictly past its threshold at p-value ``cut``."""
    hit = np.zeros(worse.shape[0], dtype=bool)
    for j, srt in columns.items():
        hit |= worse[:, j] > _upper_threshold(srt, cut)  # NaN never alarms
    return int(np.count_nonzero(hit))


def _oriented(values: F64, key: str) -> F64:
    """Values with larger meaning worse (SLIs that alarm when low are negated)."""
    return -values if SLIS[key].direction == BELOW else values


def _level_cut(min_p: F64, level: float, alarms: Callable[[float], int]) -> float:
    """Largest p-value cut whose thresholds alarm on at most ``level`` of the windows.

    ``alarms(c)`` counts the windows the thresholds at cut ``c`` alarm on; it grows with
    ``c``, so the candidates (the windows' smallest p-values) are searched by bisection.
    """
    finite = np.unique(min_p[np.isfinite(min_p)])
    if finite.size == 0:
        return level
    allowed = math.floor(level * min_p.shape[0])
    fallback = float(finite[0]) * 0.5  # below every observed p-value: the fitted tail decides
    if allowed <= 0 or alarms(float(finite[0])) > allowed:
        return fallback
    lo, hi = 0, finite.size - 1  # alarms(finite[lo]) fits; find the last candidate that does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if alarms(float(finite[mid])) <= allowed:
            lo = mid
        else:
            hi = mid - 1
    return float(finite[lo])


def _resolved(total: int, p: float) -> bool:
    """Whether ``total`` null windows hold enough beyond their ``p`` quantile (MIN_TAIL)
    for it to be read off them rather than extrapolated by a fitted tail."""
    return p * total >= MIN_TAIL


def _upper_threshold(values: F64, p: float) -> float:
    """A value that null windows exceed with probability ``p`` (strictly above alarms).

    The empirical quantile while enough windows lie beyond it; further out, a tail
    fitted to the top tenth (peaks over threshold with an exponential tail).
    """
    srt = np.sort(values)
    total = srt.shape[0]
    if _resolved(total, p):
        # The largest value that leaves at most p of the windows strictly above it.
        beyond = math.floor(p * total)
        return float(srt[total - beyond - 1])
    u = float(np.quantile(srt, 0.9))
    excess = srt[srt > u] - u
    p_u = excess.shape[0] / total
    if p_u <= p or excess.size == 0:
        return float(srt[-1])
    return u + float(excess.mean()) * math.log(p_u / p)


def _silhouette_thresholds(
    pool: _Pool, grid: NDArray[np.int64], level: float, rng: np.random.Generator, sample: int
) -> F64:
    """Lower silhouette thresholds by size, from exact silhouettes of null windows.

    A run computes the silhouette on ``sample`` of a window's rows (all of a smaller
    one), drawn from it at random: the null at ``n`` rows is the null at ``min(n,
    sample)`` rows. Up to EXACT_SILHOUETTE rows, exact silhouettes of null windows of that
    size, where the minimum over clusters of few distances biases a small window's
    silhouette low; beyond, the windows of EXACT_SILHOUETTE rows with their spread
    rescaled to it (``_rescaled``)."""
    out = np.full(grid.shape[0], np.nan)
    if pool.sil is None:
        return out
    base: tuple[F64, float, float] | None = None
    reference = (pool.rows, pool.windows)
    for g, n in enumerate(grid):
        m = min(int(n), sample)
        if m <= EXACT_SILHOUETTE:
            values = _exact_silhouettes(pool, m, rng)
        else:
            base = base or _silhouette_spread(pool, rng)
            values = _rescaled(*base, m, reference)
        defined = values[np.isfinite(values)]
        if defined.shape[0] >= 0.5 * values.shape[0]:  # else undefined at this size
            out[g] = _lower_threshold(defined, level)
    return out


def _lower_threshold(values: F64, p: float) -> float:
    """A silhouette that null windows fall below with probability ``p`` (strictly below
    alarms): the empirical quantile while enough windows lie beyond it; further out, the
    lower of an exponential tail fitted to the bottom tenth (``_upper_threshold``) and a
    normal fitted to all of them.

    At a run's size of the detection benchmark's 50 rows, a one-day reference has some
    170 different null windows, and a tail fitted to the lowest seventeen swung with
    them: on seed 9 it sat at 2.6 standard deviations of the windows' silhouettes below
    their mean, where a rate of 1/800 asks for 3, and fresh quiet windows crossed it 9
    times in 1,000, seven times the SLI's share. A normal uses every window; where the
    tail is heavier than a normal's, the fitted tail is the lower and is kept.
    """
    tail = -_upper_threshold(-values, p)
    if _resolved(values.shape[0], p) or values.shape[0] < 3:
        return tail
    normal = float(values.mean()) - float(ndtri(1.0 - p)) * float(values.std(ddof=1))
    return min(tail, normal)


def _exact_silhouettes(pool: _Pool, n: int, rng: np.random.Generator) -> F64:
    """The window silhouette of SILHOUETTE_DRAWS null windows of ``n`` rows, or more, each
    block starting as many (``_draw_rows``'s ``cover``; NaN: undefined)."""
    drawn = _draw_rows(pool, n, SILHOUETTE_DRAWS, rng, cover=True).rows
    out = np.full(drawn.shape[0], np.nan)
    for i, rows in enumerate(drawn):
        out[i] = _window_silhouette(pool.X[rows], pool.labels[rows], pool.k)
    return out


def _window_silhouette(X: F64, labels: Int, k: int) -> float:
    """The exact silhouette of one window (NaN with fewer than two populated clusters)."""
    n = X.shape[0]
    if np.unique(labels).shape[0] < 2:
        return math.nan
    dist = np.sqrt(np.maximum(_sq_dist(X, X), 0.0))
    onehot = np.zeros((n, k))
    onehot[np.arange(n), labels] = 1.0
    size = onehot.sum(axis=0)
    sums = dist @ onehot
    own = sums[np.arange(n), labels] / np.maximum(size[labels] - 1.0, 1.0)
    other = sums / np.maximum(size, 1.0)
    other[np.arange(n), labels] = np.inf
    other[:, size == 0] = np.inf
    nearest = other.min(axis=1)
    s = (nearest - own) / np.maximum(np.maximum(own, nearest), 1e-300)
    s[size[labels] <= 1] = 0.0  # a point alone in its cluster scores 0 (Rousseeuw)
    return float(s.mean())


def _silhouette_spread(pool: _Pool, rng: np.random.Generator) -> tuple[F64, float, float]:
    """Exact silhouettes of null windows of EXACT_SILHOUETTE rows; the part of their
    variance that the window's rows share with any other rows of its stretch of time;
    and how much lower a window of half as many rows scores on average.

    The two halves of a null window are disjoint samples of the same stretch, so the
    covariance of their silhouettes over the draws is the variance between stretches
    (a daily cycle, a drifting mix), which no window size averages away; the rest of the
    variance is the window's own sampling noise. The halves' mean against the windows'
    is the small-window bias (the minimum over clusters of few distances), which falls
    as 1/n.
    """
    whole = np.full(SPREAD_DRAWS, np.nan)
    parts = np.full((SPREAD_DRAWS, 2), np.nan)
    for i, rows in enumerate(_draw_rows(pool, EXACT_SILHOUETTE, SPREAD_DRAWS, rng).rows):
        whole[i] = _window_silhouette(pool.X[rows], pool.labels[rows], pool.k)
        halves = np.array_split(rng.permutation(rows), 2)
        parts[i] = [_window_silhouette(pool.X[h], pool.labels[h], pool.k) for h in halves]
    ok = np.isfinite(whole) & np.isfinite(parts).all(axis=1)
    if np.count_nonzero(ok) < 3:
        return whole, 0.0, 0.0
    shared = float(np.cov(parts[ok, 0], parts[ok, 1])[0, 1])
    return whole, max(shared, 0.0), float(whole[ok].mean() - parts[ok].mean())


def _rescaled(values: F64, shared: float, bias: float, n: int, reference: tuple[int, int]) -> F64:
    """Null silhouettes at ``n`` rows from ``values`` at EXACT_SILHOUETTE rows (E).

    The variance: the shared part kept and the window's own shrunk as 1/n (an upper
    bound: rows drawn without replacement from a stretch vary less), plus what the
    reference (``reference``: its rows N and windows B) got wrong by chance, which a
    fresh window does not share: ``shared / B + own E / N``. The centre: moved by the
    small-window bias (``bias``, between E/2 and E rows) as 1/n, by ``bias (1 - E/n)``.
    """
    ok = values[np.isfinite(values)]
    shift = bias * (1.0 - EXACT_SILHOUETTE / n)
    if ok.shape[0] < 2:
        return values + shift
    centre, total = float(ok.mean()), float(ok.var(ddof=1))
    if total <= 0.0:
        return values + shift
    shared = min(shared, total)
    rows, blocks = reference
    own = (total - shared) * EXACT_SILHOUETTE * (1.0 / n + 1.0 / max(rows, 1))
    scale = math.sqrt((shared * (1.0 + 1.0 / max(blocks, 1)) + own) / total)
    return centre + shift + (values - centre) * scale


REFIT_BUDGET = 2e9  # multiply-adds of the refits (n * k * d * iterations, summed)
REFITS_PER_FIT = 8  # refits per size, at most, per n_fits, where the budget affords them


def _refit_thresholds(
    pool: _Pool,
    C: F64,
    grid: NDArray[np.int64],
    refits: _Refits,
    level: float,
    rng: np.random.Generator,
    wm: float,
) -> tuple[dict[str, F64], F64 | None]:
    """Centroid drift thresholds, in scaled units and in standard errors, from refits
    (``refits.refit``) of null windows; and the clusters' drift spread they are measured
    with (None: no size could be refitted).

    At up to four sizes (``_refit_sizes``: the smallest, the largest, one between and a
    run's usual one, as the budget affords), ``refits.count`` refits each (up to
    REFITS_PER_FIT times as many where refits are cheap: a tail from 120 refits put one
    mixture's threshold in standard errors anywhere from 3.6 to 8.7 at 400 rows, from
    480 between 4.8 and 5.2), the centroid drift's far quantile by ``_far_quantile``.
    Between sizes log-log interpolation; beyond the largest refitted size its value (the
    drift only shrinks with n, and its standard errors level off). The spread comes from
    the largest size's refits (``_drift_spread``), where a window's sampling noise hides
    the least of the spread between windows.
    """
    k, d = C.shape
    n_fits = refits.count
    drawn: dict[int, list[_Refitted]] = {}
    spent = 0.0
    bootstrapped = pool.windows < MIN_BLOCKS
    largest = int(pool.length.max()) if bootstrapped else int(grid[-1])
    for g in _refit_sizes(grid, largest, refits.usual):
        n = int(grid[g])
        cost = float(n) * k * d * 20 * n_fits  # ~20 iterations of the refit's k centres
        if n < k * 2 or (drawn and spent + cost > REFIT_BUDGET):
            continue  # too few rows for k centres, or beyond the budget
        spent += cost
        # More refits where they are cheap; not for a one-window (bootstrapped) null, which
        # a retrained candidate recomputes on every drifting window.
        most = n_fits if bootstrapped else REFITS_PER_FIT * n_fits
        count = int(min(most, max(n_fits, (REFIT_BUDGET / 10) // (cost / n_fits))))
        drawn[g] = _refits(pool, C, n, count, rng, refits.refit)
    fitted: dict[str, dict[int, float]] = {key: {} for key in REFITTED}
    if not drawn:
        return {key: _interpolate_log(grid, fitted[key]) for key in REFITTED}, None
    res = _within_residuals(pool)
    spread = _drift_spread(pool, res, drawn[max(drawn)])
    dof = _effective_dof(pool, res)
    reach = _reach(pool.X)
    for g, fits in drawn.items():
        cuts = np.array([f.cut for f in fits])
        drift_max = _far_quantile(np.array([f.drift.max for f in fits]), level, cuts)
        if drift_max is not None:
            fitted[CENTROID_DRIFT_MAX][g] = min(drift_max, reach)
        errors = _standard_errors_threshold(fits, spread, dof, level)
        if errors is not None:
            fitted[CENTROID_DRIFT_SE][g] = errors
    return {key: _interpolate_log(grid, fitted[key]) for key in REFITTED}, spread


def _reach(X: F64) -> float:
    """The farthest a centre can move in a window of rows within the reference's span:
    the diagonal of the box its rows fill (a window's centres and the reference's are
    means of such rows). The centroid drift's far quantile is held to it: a reference
    day that held a regime gone for two hours of 24 gave its null a clump of drifts near
    3.2 over a body near 0.09, and the exponential tail fitted above the body's 90th
    percentile put the threshold at 40,226, where no window could reach it; the alert
    was dead and nothing said so. Held to the reach, a window whose rows leave the
    reference's span (a unit change, a regime far outside) still passes it."""
    finite = X[np.isfinite(X).all(axis=1)]
    if finite.shape[0] == 0:
        return math.inf
    return float(np.sqrt(np.sum((finite.max(axis=0) - finite.min(axis=0)) ** 2)))


def _standard_errors_threshold(
    fits: list[_Refitted], spread: F64, dof: F64, level: float
) -> float | None:
    """The centroid drift in standard errors that null windows exceed with probability
    ``level``, from their refits' warm starts (None: undefined at this size, no cluster
    with a row in half of them).

    The larger of two tails. A chi-square tail per cluster: its ``z^2`` taken as
    ``r chi2(nu) / nu``, ``nu`` the effective degrees of freedom of the cluster's spread
    (``_effective_dof``), ``r`` the refits' mean ``z^2``, the clusters' tails summed (a
    union bound over the largest); a mean is far steadier than a tail from a hundred
    refits, where a fitted tail on the largest value alone swung from 2.6 to 3.9 between
    seeds on the detection benchmark's stream. And the refits' largest values' own tail,
    exponential (``_upper_threshold``): in small windows a cluster of a handful of rows
    swings further than the chi-square says, and an exponential tail on ``z^2`` there
    let five times this SLI's share through at 50 rows of the calibration benchmark. A
    Pareto tail (on ``log z``, as the centroid drift's) was this floor until 2026-12-05:
    read off a few hundred refits at the SLI's share, it let through a fifth to a half of
    that share of the null's own draws (docs/decisions.md).
    """
    k = dof.shape[0]
    z = np.full((len(fits), k), np.nan)
    for i, f in enumerate(fits):
        z[i, f.warm.pairs[:, 0]] = drift_standard_errors(f.warm, f.rows, spread, f.rows)
    largest = np.nanmax(np.where(np.isfinite(z), z, -np.inf), axis=1)
    largest = largest[np.isfinite(largest)]
    if largest.shape[0] < max(2, len(fits) // 2):
        return None
    seen = np.isfinite(z).sum(axis=0)
    r = np.where(seen > 0, np.nansum(z * z, axis=0) / np.maximum(seen, 1), 0.0)
    r, nu = r[r > 0], dof[r > 0]

    def excess(t: float) -> float:
        return float(np.sum(chdtrc(nu, nu * t * t / r))) - level

    high = 1.0
    while excess(high) > 0:
        high *= 2.0
    model = float(brentq(excess, 0.0, high)) if r.size else 0.0
    return max(model, _upper_threshold(largest, level))


def _within_residuals(pool: _Pool) -> F64:
    """(N, d) each reference row less the mean of its cluster's rows in its window."""
    block = np.repeat(np.arange(pool.length.shape[0]), pool.length)
    means = pool.own_sums / np.maximum(pool.own_labels, 1.0)[:, :, None]
    out: F64 = pool.X - means[block, pool.labels]
    return out


def _effective_dof(pool: _Pool, res: F64) -> F64:
    """(k,) per cluster, the degrees of freedom of its centre's squared error as a scaled
    chi-square (Satterthwaite): ``tr(S)^2 / tr(S^2)``, ``S`` the covariance of its rows
    about their window's mean; between 1 (all of the spread along one direction) and the
    number of features (as much along each). ``d`` where a cluster has no spread.
    ``res``: ``_within_residuals(pool)``."""
    d = pool.X.shape[1]
    out = np.full(pool.k, float(d))
    for j in range(pool.k):
        mine = res[pool.labels == j]
        S = mine.T @ mine
        trace = float(np.trace(S))
        if trace > 0:
            # As shares of the trace: in tiny units S * S underflows to 0 (values near
            # 1e-100 under scaling: none failed every run with a division by zero).
            share = S / trace
            out[j] = min(float(d), max(1.0, 1.0 / max(float(np.sum(share * share)), 1.0 / d)))
    return out


def _drift_spread(pool: _Pool, res: F64, fits: list[_Refitted]) -> F64:
    """(k, 2) per cluster: ``v``, its rows' mean squared distance to their mean within a
    reference window (the spread a window's centre has over the square root of its rows),
    and ``tau^2``, what the refits' warm starts' squared drifts hold beyond ``v / n`` on
    average (the centre's movement between quiet windows: the phase references' own
    error, days that differ, a boundary between overlapping clusters that the window's
    rows move), at least 0. ``res``: ``_within_residuals(pool)``."""
    k = pool.k
    ss = np.bincount(pool.labels, weights=np.einsum("ij,ij->i", res, res), minlength=k)
    dof = np.maximum(pool.own_labels - 1.0, 0.0).sum(axis=0)
    v = np.where(dof > 0, ss / np.maximum(dof, 1.0), 0.0)
    sq = np.zeros(k)
    inv = np.zeros(k)
    seen = np.zeros(k)
    for f in fits:
        n = f.rows[f.warm.pairs[:, 1]]
        ok = (n > 0) & (f.rows[f.warm.pairs[:, 0]] > 0)
        ref = f.warm.pairs[ok, 0]
        sq[ref] += f.warm.distances[ok] ** 2
        inv[ref] += 1.0 / n[ok]
        seen[ref] += 1.0
    excess = np.where(seen > 0, (sq - v * inv) / np.maximum(seen, 1.0), 0.0)
    return np.column_stack((v, np.maximum(excess, 0.0)))


def _far_quantile(values: F64, level: float, cuts: Int) -> float | None:
    """The value null windows exceed with probability ``level``, from a few hundred of
    them (None: undefined at this size, NaN in half of them or more); ``cuts``: the cut
    of the period each was drawn from.

    Extrapolated twice, by log-normals fitted to them (one per cut, mixed: ``_lognormal``)
    and by an exponential tail of the log fitted to the top tenth (a Pareto tail, which
    small windows need: a cluster with a handful of points swings far); the larger is kept.
    """
    finite = np.isfinite(values)
    if np.count_nonzero(finite) < max(2, values.shape[0] // 2):
        return None
    # Zeros (no drift at all) floored below every other value, relative to them: an
    # absolute 1e-12 stood above every drift of data in tiny units (scaling: none).
    top = float(values[finite].max())
    logs = np.log(np.maximum(values[finite], 1e-12 * top if top > 0 else 1e-12))
    return math.exp(max(_lognormal(logs, level, cuts[finite]), _upper_threshold(logs, level)))


def _lognormal(logs: F64, level: float, cuts: Int) -> float:
    """The log that a mixture of normals, one fitted to the ``logs`` of each cut and
    weighted by its share of them, exceeds with probability ``level``. A null window is
    drawn from one cut or another, so its null is that mixture; one normal over the
    windows of two cuts that differ in kind would reach far past either (docs/decisions.md).
    """
    z = float(ndtri(1.0 - level))
    parts = [logs[cuts == c] for c in np.unique(cuts)]
    parts = [part for part in parts if part.shape[0] >= 2]
    if len(parts) <= 1:
        part = parts[0] if parts else logs
        return float(part.mean()) + z * float(part.std(ddof=1))
    weight = np.array([part.shape[0] for part in parts], dtype=np.float64)
    weight /= weight.sum()
    mu = np.array([part.mean() for part in parts])
    sd = np.maximum(np.array([part.std(ddof=1) for part in parts]), 1e-12)

    def excess(x: float) -> float:
        return float(np.sum(weight * ndtr((mu - x) / sd))) - level

    # Between the largest part's quantile at level / its weight and the largest at level.
    low = float(np.max(mu + ndtri(1.0 - np.minimum(level / weight, 0.5)) * sd))
    high = float(np.max(mu + z * sd))
    if excess(low) <= 0.0:
        return low
    return float(brentq(excess, low, high))


def _split_thresholds(
    pool: _Pool,
    grid: NDArray[np.int64],
    baseline: F64,
    n_fits: int,
    level: float,
    rng: np.random.Generator,
    wm: float,
) -> F64:
    """Split gain thresholds at every size of the grid, from null windows' split gains
    against ``baseline`` (no refit: the live model's clusters cut in two).

    Its null moves with the window's rows in no simple way (a small cluster's cut saves
    much by chance, and the baseline is a whole reference window's), so every size is
    drawn rather than interpolated: up to ``SPLIT_ROWS_PER_SIZE`` rows, between
    ``n_fits / 2`` and ``SPLIT_DRAWS_PER_FIT * n_fits`` windows (a cut costs a fraction of
    a refit, and its far quantile from 120 windows swung enough that one mixture's
    threshold at 500 rows let eight times its share through). A one-window
    (bootstrapped) null draws ``n_fits`` windows at most, and stops at the window's rows
    as the refits do; larger sizes take its value.
    """
    bootstrapped = pool.windows < MIN_BLOCKS
    largest = int(pool.length.max()) if bootstrapped else int(grid[-1])
    most = n_fits if bootstrapped else SPLIT_DRAWS_PER_FIT * n_fits
    fitted: dict[int, float] = {}
    for g, n in enumerate(map(int, grid)):
        if n > largest and fitted:
            break
        count = int(min(most, max(n_fits // 2, 1, SPLIT_ROWS_PER_SIZE // n)))
        values = np.full(count, np.nan)
        win = _draw_rows(pool, n, count, rng)
        for i, rows in enumerate(win.rows):
            split = drift.split_gain(
                pool.X[rows],
                pool.centers,
                baseline,
                random_state=int(rng.integers(0, _SEED_HIGH)),
                working_memory_mib=wm,
            )
            values[i] = split.gain if split.defined else np.nan
        quantile = _far_quantile(values, level, pool.cut[win.first])
        if quantile is not None:
            fitted[g] = quantile
    return _interpolate_log(grid, fitted)


def _refit_sizes(grid: NDArray[np.int64], largest: int, usual: int | None) -> list[int]:
    """Indices of the grid sizes refitted: the smallest, the largest up to ``largest``
    rows, the one halfway between them in log size, and ``usual`` (a run's usual rows,
    the reference windows') when the grid holds it up to ``largest``.

    A run's thresholds are read at its own size. Interpolated there, between refits at
    800 and 4,000 rows for 2,000-row windows (whose null windows span two reference
    windows, and the cycle's move between them), the detection benchmark's thresholds
    of the drift in standard errors came to 3.09 on seed 1 where refits at 2,000 rows
    give 2.57 (2.89 at 4,000), and a gradual shift paged a window later on two seeds of
    ten (docs/benchmarks.md).

    With a one-window reference (a retrained candidate's) ``largest`` is the window's
    rows: null windows beyond it are its rows drawn again with replacement, the dearest
    refits and the least telling, for sizes a run rarely has (they take its value).
    """
    top = max(0, int(np.searchsorted(grid, largest, side="right")) - 1)
    if top == 0:
        return [0]
    logs = np.log(grid[: top + 1].astype(np.float64))
    mid = int(np.argmin(np.abs(logs - (logs[0] + logs[-1]) / 2)))
    own = [] if usual is None else np.flatnonzero(grid[: top + 1] == usual).tolist()
    return sorted({0, mid, top, *own})


def _warm_refit(wm: float) -> Refit:
    """A null window refitted by Lloyd warm from the reference centres."""

    def refit(X: F64, C: F64, seed: int) -> tuple[NDArray[Any], NDArray[Any]]:
        fit = fit_kmeans(X, C.shape[0], init=C, n_init=1, random_state=seed, working_memory_mib=wm)
        return fit.centers, fit.centers

    return refit


def _refits(
    pool: _Pool, C: F64, n: int, count: int, rng: np.random.Generator, refit: Refit
) -> list[_Refitted]:
    """``count`` null windows of ``n`` rows, each refitted by ``refit``."""
    win = _draw_rows(pool, n, count, rng)
    compared = _compared_centers(pool, win)
    out = []
    for i, rows in enumerate(win.rows):
        best, warm = refit(pool.X[rows], C, int(rng.integers(0, _SEED_HIGH)))
        drift = centroid_drift(compared[i], np.asarray(best, dtype=np.float64))
        if warm is not best:  # a restart beat the warm start: it has a drift of its own
            warm_drift = centroid_drift(compared[i], np.asarray(warm, dtype=np.float64))
        else:
            warm_drift = drift
        rows_per_cluster = np.bincount(pool.labels[rows], minlength=pool.k).astype(np.intp)
        cut = int(pool.cut[win.first[i]])
        out.append(_Refitted(drift=drift, warm=warm_drift, rows=rows_per_cluster, cut=cut))
    return out


def _compared_centers(pool: _Pool, win: _Windows) -> F64:
    """(c, k, d) the centres each window's refit is compared with: without seasonality
    the model's; with it, as a run's (``seasonal.phase_centers``): the reference's cluster
    means around the window's phase with its stretch left out, plus the shift of its
    first block (``Phases.shifts``), or the model's centre where a cluster has no such
    row."""
    c = win.first.shape[0]
    if pool.phases is None:
        return np.broadcast_to(pool.centers, (c, *pool.centers.shape))
    spanned = _spanned(pool, win)
    counts = _left_out(pool.own_labels, pool.ref_labels, win, spanned)[:, :, None]
    means = _left_out(pool.own_sums, pool.ref_sums, win, spanned) / np.maximum(counts, RESIDUE)
    if pool.phases.shifts is not None:
        means += pool.phases.shifts[win.first]
    out: F64 = np.where(counts > 0, means, pool.centers[None, :, :])
    return out


def _interpolate_log(grid: NDArray[np.int64], fitted: dict[int, float]) -> F64:
    out = np.full(grid.shape[0], np.nan)
    if not fitted:
        return out
    xs = np.log(grid[sorted(fitted)].astype(np.float64))
    ys = np.log([fitted[g] for g in sorted(fitted)])
    for g, n in enumerate(grid):
        if n < int(grid[min(fitted)]):
            continue  # below the smallest refittable size the drift stays undefined
        out[g] = float(np.exp(np.interp(np.log(float(n)), xs, ys)))
    return out


# --------------------------------------------------------------------------- use


def threshold_at(table: NullTable, n: int, usual: int | None = None) -> dict[str, float | None]:
    """Each SLI's threshold for a window of ``n`` rows, between the two nearest sizes.

    Log-log where both thresholds are positive: most nulls shrink as a power of the rows
    (a PSI as 1/n, a centroid as 1/sqrt(n)), which is a straight line there, and a line
    in the threshold itself lies above such a curve between the sizes (between 400 and
    800 rows, 5 % above a PSI's at 500, which halved the flags there). Linear in log
    size otherwise (a count that reaches 0, a negative silhouette). Outside the
    calibrated sizes the nearest size is used (a window smaller than every calibrated
    size keeps the smallest size's thresholds). None: not a drift signal.

    An SLI of whole steps (``Sli.steps``) alarms on a whole count, whose null at a size
    between two calibrated ones is not the line between theirs: a count's threshold is
    the looser of theirs (a line through 1 empty cluster at 28 rows and 0 at 41 alarmed
    on one empty cluster at every size between), and a share's allows the count of the
    larger size (``_share_at``).

    ``usual``: the reference windows' usual rows. A window of more rows (more traffic in
    the same span) takes no looser threshold than that size's for an SLI whose null only
    narrows with the rows (``NARROWING``): null windows larger than a reference window
    join consecutive ones, and with a seasonality they mix phases (a feature PSI
    threshold of 1.67 at a reference window's 60 rows came out 6.51 at 120, and a shift
    of 3.87 at 119 rows went unflagged).
    """
    sizes = np.log(table.sizes.astype(np.float64))
    x = math.log(max(1, int(n)))
    g = int(np.searchsorted(sizes, x, side="right"))
    lo, hi = max(0, g - 1), min(sizes.shape[0] - 1, g)
    # How far between the two sizes, in log size; exactly 0 or 1 at a calibrated size,
    # whose thresholds are then used as they are.
    w = 0.0 if hi == lo else min(1.0, max(0.0, float((x - sizes[lo]) / (sizes[hi] - sizes[lo]))))
    out: dict[str, float | None] = {}
    for j, key in enumerate(table.keys):
        a, b = (float(v) for v in table.values[[lo, hi], j])
        sli = SLIS.get(key)
        value = _between(a, b, w, sli)
        if sli is not None and sli.steps == "share" and value is not None:
            # Between two sizes, or below the smallest: the count of the larger one.
            larger = float(table.sizes[hi])
            between = 0.0 < w < 1.0 or (n < larger and hi == lo)
            value = _share_at(value, b * larger if between else 0.0, n)
        out[key] = value
    if usual is not None and n > usual:
        _hold_to(out, threshold_at(table, usual), n)
    return out


def _between(a: float, b: float, w: float, sli: Sli | None) -> float | None:
    """The threshold ``w`` of the way (in log size) from ``a`` to ``b`` (``threshold_at``)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return None
    if w in (0.0, 1.0) or a == b:
        return b if w == 1.0 else a
    if sli is not None and sli.steps == "count":
        return max(a, b) if sli.direction == ABOVE else min(a, b)
    if a > 0 and b > 0:
        return a * (b / a) ** w
    return a + (b - a) * w


def _hold_to(out: dict[str, float | None], bound: dict[str, float | None], n: int) -> None:
    """Each narrowing SLI's threshold in ``out`` held to ``bound``, its value at fewer
    rows: no looser (``threshold_at``'s ``usual``)."""
    for key in NARROWING:
        value, most = out.get(key), bound.get(key)
        if value is None or most is None:
            continue
        value = max(value, most) if SLIS[key].direction == BELOW else min(value, most)
        out[key] = _share_at(value, 0.0, n) if SLIS[key].steps == "share" else value


def _share_at(threshold: float, least: float, n: int) -> float:
    """A share-of-rows threshold for a window of ``n`` rows as the largest whole count it
    allows, over ``n``: a share alarms on a count, and the same count over the same ``n``
    then compares equal (the interpolated 0.0666...65 at 30 rows alarmed on 2 of 30 rows,
    0.0666...67). At least ``least`` rows: below a calibrated size, the count it allows.
    Fewer rows hold no more outliers than more rows do, so that count alarms on a smaller
    window at most as often as on its own size; the share of the smaller size alarmed
    more often (1 of 14 allowed and 2 of 28: 1.57 of 22 alarmed on 2)."""
    rows = max(1, int(n))
    return math.floor(max(threshold * rows, least) + 1e-9) / rows


def _first_cut(pool: _Pool) -> _Pool:
    """The pool of the reference's own windows only (``_merged`` puts them first)."""
    b = int(np.count_nonzero(pool.cut == 0))
    if b == pool.cut.shape[0]:
        return pool
    rows, sils = pool.rows, int(pool.sil_length[:b].sum())
    phases = pool.phases
    if phases is not None:
        shifts = None if phases.shifts is None else phases.shifts[:b]
        phases = replace(
            phases, of_block=phases.of_block[:b], weights=phases.weights[:b], shifts=shifts
        )
    by_row = {name: getattr(pool, name)[:rows] for name in _ROW_FIELDS}
    by_block = {name: getattr(pool, name)[:b] for name in _BLOCK_FIELDS}
    sil = None if pool.sil is None else pool.sil[:sils]
    return replace(pool, **by_row, **by_block, phases=phases, sil=sil)


def _reference_windows(pool: _Pool, starts: ArrayLike, ends: ArrayLike) -> ReferenceWindows:
    """The joint SLIs of every block, each whole, against the reference without it."""
    length = np.maximum(pool.length, 1).astype(np.float64)
    b = length.shape[0]
    psi = np.zeros(b)
    ref_bins = _per_feature_shares(pool.ref_bins, pool.offsets)
    for j in range(pool.offsets.shape[0] - 1):
        lo, hi = pool.offsets[j], pool.offsets[j + 1]
        shares = pool.own_bins[:, lo:hi] / length[:, None]
        psi = np.maximum(psi, psi_rows(ref_bins[:, lo:hi], shares, DEFAULT_EPSILON))
    block_of_row = np.repeat(np.arange(b), pool.length)
    ref_shares = pool.ref_labels / np.maximum(pool.ref_labels.sum(axis=1, keepdims=True), 1.0)
    columns = {
        FEATURE_PSI_MAX: psi,
        LABEL_PSI: psi_rows(ref_shares, pool.own_labels / length[:, None], DEFAULT_EPSILON),
        OUTLIER_RATIO: np.bincount(block_of_row, weights=pool.flags, minlength=b) / length,
        EMPTY_CLUSTERS: (pool.own_labels == 0).sum(axis=1).astype(np.float64),
    }
    if pool.sil is not None:
        sil_block = np.repeat(np.arange(b), pool.sil_length)
        total = np.bincount(sil_block, weights=pool.sil, minlength=b)
        columns[SILHOUETTE] = np.where(
            pool.sil_length > 0, total / np.maximum(pool.sil_length, 1), np.nan
        )
    keys = tuple(columns)
    values = np.column_stack([columns[key] for key in keys])
    values[pool.length == 0] = np.nan
    return ReferenceWindows(
        starts=np.asarray(starts, dtype=np.float64),
        ends=np.asarray(ends, dtype=np.float64),
        rows=pool.length.astype(np.int64),
        keys=keys,
        values=values,
    )


def block_phases(
    starts: ArrayLike, ends: ArrayLike, period: float, n_phases: int, width: int
) -> Phases:
    """The phase of each block's midpoint."""
    mid = (np.asarray(starts, dtype=np.float64) + np.asarray(ends, dtype=np.float64)) / 2
    weights = phase_weights(mid, period, n_phases, width)
    return Phases(phase_index(mid, period, n_phases), n_phases, width, weights)
