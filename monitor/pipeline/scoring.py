"""Validating a window and scoring a model on it: every SLI of the core, in one pass.

Pure: shared by the measure step and by training (a new model's view of its period).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor import slis as S
from monitor.checks import overflow_message
from monitor.config import SEASON_PERIODS, KRange, ModelSettings
from monitor.core import drift, outliers, quality, scaling
from monitor.core.kmeans import assign_two_nearest
from monitor.errors import InvalidValuesError, SchemaError, TooFewRowsError
from monitor.records import ReferenceBins, Scaler, Snapshot, Window, WindowView

__all__ = [
    "ScaleBuffer",
    "check_enough_rows",
    "check_invalid_rows",
    "check_schema",
    "day_long_rows",
    "least_rows",
    "prepare",
    "schema_hash",
    "score",
    "seed_for",
    "validate_window",
]

log = logging.getLogger(__name__)

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.integer[Any]]


def schema_hash(features: tuple[str, ...]) -> str:
    """A short stable hash of the ordered feature names."""
    return hashlib.sha256("\x1f".join(features).encode()).hexdigest()[:16]


def seed_for(base: int, window_start: float) -> int:
    """Same model, same window: same seed, whatever the wall clock says."""
    return (base * 1_000_003 + int(window_start)) % (2**32)


# ---------------------------------------------------------------------------- validate


def check_schema(window: Window, model: ModelSettings) -> str:
    """Check a window's columns; return how messages name it ("model 'm', window ...")."""
    where = f"model {model.name!r}, window {window.label or _span(window)}"
    if tuple(window.features) != model.features:
        raise SchemaError(f"{where}: {_schema_problem(model.features, tuple(window.features))}")
    return where


def validate_window(
    window: Window,
    model: ModelSettings,
    reference_rows: IntArray | None = None,
    k: int | None = None,
) -> FloatArray:
    """Check schema and values of a window; return its rows (NaN rows dropped by policy).

    ``reference_rows``: the rows of each window of the live model's reference period,
    which ``validation.min_rows: auto`` measures a window's rows against, and ``k`` its
    clusters (``least_rows``).
    """
    where = check_schema(window, model)
    X = np.asarray(window.X)
    if X.ndim != 2 or X.shape[1] != len(model.features):
        raise SchemaError(
            f"{where}: expected {len(model.features)} columns ({', '.join(model.features)}); "
            f"got an array of shape {X.shape}"
        )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    X = _drop_invalid_rows(X, model, where)
    # Finite values whose squares overflow (1e300) would train a model that cannot be
    # scored or served; choose-k refuses them with the same check.
    if (overflow := overflow_message(X, model.features, "squared distances")) is not None:
        raise InvalidValuesError(f"{where}: {overflow}")
    check_enough_rows(int(X.shape[0]), model, where, reference_rows, k)
    return X


def day_long_rows(rows: IntArray, starts: FloatArray, ends: FloatArray) -> IntArray | None:
    """The rows of each window of a reference period that ``least_rows`` may measure
    windows against: one that spans a day or more (None otherwise).

    Rows per window follow the day in event telemetry; a shorter period, such as the one
    window a retrained model is trained on, may hold none of the night's thin windows.
    """
    if rows.shape[0] == 0 or float(ends.max() - starts.min()) < SEASON_PERIODS["daily"]:
        return None
    return rows


def least_rows(
    model: ModelSettings, reference_rows: IntArray | None = None, k: int | None = None
) -> tuple[int, str]:
    """The fewest valid rows a window of ``model`` may have, and why (the error says it).

    ``validation.min_rows`` when set (and k at least). With ``auto``, the default: as many
    rows as clusters (at least 2) and, given a reference period of a day or more
    (``reference_rows``, the rows of each of its windows), half the rows of its smallest
    window: a window far thinner than any the model was trained on is a broken feed, a
    data-quality failure, while telemetry of a dozen points a window still runs.

    ``k`` is the trained model's; without one, the most the configuration allows (a
    range's top: the k the first model may choose). Taking the top for a model that
    chose k = 2 of 2 to 6 failed quiet windows of 4 and 5 rows, and paged.
    """
    ranged = k is None and isinstance(model.k, KRange)
    k = _k_max(model) if k is None else k
    bar = f"k up to {k}" if ranged else f"k = {k}"
    fixed = model.validation.min_rows
    if fixed is not None:
        return max(fixed, k), f"validation.min_rows={fixed}, {bar}"
    if reference_rows is None or len(reference_rows) == 0:
        return max(2, k), f"validation.min_rows=auto, {bar}"
    smallest = int(np.min(reference_rows))
    why = f"half the {smallest} rows of the reference period's smallest window"
    return max(2, k, -(-smallest // 2)), f"validation.min_rows=auto: {why}, {bar}"


def check_enough_rows(
    n: int,
    model: ModelSettings,
    where: str,
    reference_rows: IntArray | None = None,
    k: int | None = None,
) -> None:
    """TooFewRowsError when ``n`` valid rows are fewer than the model accepts."""
    need, why = least_rows(model, reference_rows, k)
    if n < need:
        raise TooFewRowsError(f"{where}: {n} valid rows; at least {need} required ({why})", n)


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
    check_invalid_rows(int(X.shape[0]), n_bad, (~np.isfinite(X)).sum(axis=0), model, where)
    return X[~bad_rows]


def check_invalid_rows(
    n: int, n_bad: int, per_feature: IntArray, model: ModelSettings, where: str
) -> None:
    """The NaN policy on ``n_bad`` of ``n`` rows with a NaN or infinity (``per_feature``
    non-finite values per column): InvalidValuesError, or a warning that they are dropped."""
    worst = ", ".join(
        f"{model.features[j]}: {int(per_feature[j])}" for j in np.flatnonzero(per_feature)[:5]
    )
    ratio = n_bad / max(1, n)
    v = model.validation
    if v.nan_policy == "fail" or ratio > v.max_invalid_ratio:
        raise InvalidValuesError(
            f"{where}: {n_bad} of {n} rows ({ratio:.1%}) hold NaN or infinity "
            f"({worst}); nan_policy={v.nan_policy}, max_invalid_ratio={v.max_invalid_ratio}"
        )
    log.warning("%s: dropped %d rows with NaN or infinity (%s)", where, n_bad, worst)


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


def prepare(
    X: FloatArray, scaler: Scaler, metric: str, *, out: FloatArray | None = None
) -> FloatArray:
    """Scale with a frozen scaler; for cosine models, normalise the rows too.

    ``out``: an array of X's shape and dtype to write into (``ScaleBuffer.rows``).
    """
    Xs = scaling.transform(scaler, X, out=out)
    if metric == "cosine":
        norms = np.linalg.norm(Xs, axis=1, keepdims=True)
        # In place: Xs is this call's own array (or the caller's buffer).
        np.divide(Xs, np.where(norms > 0, norms, 1.0), out=Xs)
    return Xs


class ScaleBuffer:
    """Memory for a model's scaled window, kept from one run to the next.

    A fresh window-sized array costs its first touch on every run (page faults: at
    1M x 32 float32, 0.3-0.4 s on this project's VM against 0.04 s for the arithmetic);
    rows scaled into memory kept by the caller pay it once. One buffer per model: runs of
    one model never overlap, and a buffer already lent out (a misuse) gives ``None``, so
    the caller then scales into a fresh array. It grows to the largest window seen and
    is never shrunk; ``release`` frees it.
    """

    def __init__(self) -> None:
        self._flat: FloatArray | None = None
        self._lock = threading.Lock()

    @contextmanager
    def rows(self, shape: tuple[int, int], dtype: np.dtype[Any]) -> Iterator[FloatArray | None]:
        """A C-contiguous array of ``shape`` and ``dtype`` for the duration of the block,
        or None when the buffer is in use."""
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            size = shape[0] * shape[1]
            flat = self._flat
            if flat is None or flat.dtype != dtype or flat.shape[0] < size:
                self._flat = None  # let the old one go before the new one is touched
                flat = self._flat = np.empty(size, dtype=dtype)
            yield flat[:size].reshape(shape)
        finally:
            self._lock.release()

    def release(self) -> None:
        """Free the memory (the next run allocates it again)."""
        with self._lock:
            self._flat = None


#: The internal indices a window of one populated cluster has none of (0.0, undefined).
_INDICES = (S.SILHOUETTE, S.DAVIES_BOULDIN, S.CALINSKI_HARABASZ)


def score(
    Xs: FloatArray,
    snapshot: Snapshot,
    *,
    seed: int,
    silhouette_sample: int,
    working_memory_mib: float,
    thresholds: Mapping[str, float] | None = None,
    compare: tuple[FloatArray, ReferenceBins] | None = None,
    n_threads: int = 1,
) -> WindowView:
    """Every SLI of the core for ``snapshot`` on the scaled window ``Xs``.

    ``thresholds`` (default: the snapshot's) set the warning level that counts drifting
    features; ``compare`` replaces the reference shares and bins the drift is measured
    against (a seasonal model's reference at the window's phase). ``n_threads``: the
    threads of the assignment, the exact silhouette and the PSI count (every SLI is the
    same for any number).
    """
    shares, bins = compare if compare is not None else (snapshot.reference_shares, snapshot.bins)
    thresholds = snapshot.thresholds if thresholds is None else thresholds
    k = snapshot.k
    C = snapshot.centers
    # One pass gives every point its nearest and second-nearest centre: the assignment,
    # the simplified silhouette, Davies-Bouldin and Calinski-Harabasz all read it.
    labels, sq, sq_second = assign_two_nearest(
        Xs, C, working_memory_mib=working_memory_mib, n_threads=n_threads
    )
    # The labels and distances stay alive through every pass below: the passes' chunks
    # get what remains of the budget.
    wm = max(1.0, working_memory_mib - (labels.nbytes + 2 * sq.nbytes) / 2**20)
    sizes = quality.cluster_sizes(labels, k)
    # The simplified silhouette is defined by the centres, any row in one cluster or not.
    simp = quality.silhouette_simplified(
        Xs, labels, C, sq_distances=sq, sq_second=sq_second, working_memory_mib=wm
    )
    indices: dict[str, float] = dict.fromkeys(_INDICES, 0.0)
    defined = k - sizes.n_empty >= 2
    if defined:  # else undefined, which the run's decision says: no warning every run
        sil = quality.silhouette_sampled(
            Xs,
            labels,
            sample_size=silhouette_sample,
            random_state=seed,
            working_memory_mib=wm,
            n_threads=n_threads,
        )
        db = quality.davies_bouldin(Xs, labels, C, sq_distances=sq, working_memory_mib=wm)
        ch = quality.calinski_harabasz(
            Xs, labels, centers=C, sq_distances=sq, working_memory_mib=wm, n_threads=n_threads
        )
        defined = sil.defined
        indices = dict(zip(_INDICES, (sil.score, db.value, ch.value), strict=True))
    psi = drift.psi(bins, Xs, working_memory_mib=wm, n_threads=n_threads)
    label = drift.label_drift(shares, labels, k)
    out = outliers.outlier_rate(snapshot.outliers, sq, labels)
    warn = thresholds.get(S.THRESHOLD_FEATURE_PSI_WARNING, np.inf)
    values = {
        **indices,
        S.SIMPLIFIED_SILHOUETTE: simp.score,
        S.INERTIA: float(sq.sum(dtype=np.float64)),
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
        undefined=() if defined else (S.SILHOUETTE,),
    )
