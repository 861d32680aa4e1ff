"""Why a model drifted, in numbers a person can read: the daemon's explanations.

A run's Evaluation says how far things moved (PSI per feature, drift per cluster), not
along what. The model pages and the exporter want more: each feature's bin shares on
the window next to the reference's, and for each cluster the features along which its
points moved, in the units the features are measured in. Both come from the live
snapshot (bins, scaler, centres) and a bounded sample of the window just scored:

- ``WindowSampler`` wraps the sources and keeps, per model, a seeded sample of at most
  ``SAMPLE_ROWS`` finite rows of the latest windows read (never the window itself);
- ``explain`` turns the live snapshot and that sample into an ``Explanation`` of
  ``d`` bin-share vectors and ``k`` per-feature shifts: bounded by the configuration.

The per-cluster shift is the mean of the sample's points that the live model puts in the
cluster minus the live centre: the direction a candidate trained warm from the live
centres moves it, to first order (docs/decisions.md, "Explanations").

A feature whose window looks like the reference multiplied by a power of ten (a unit
change: milliseconds sent as microseconds) is named in ``Explanation.rescaled``: its
median absolute value and two of its spreads all moved by the same power of ten, at
least 10x either way (``rescaled``; docs/decisions.md, "A unit change named on the page").
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np

from monitor.core import scaling
from monitor.core.kmeans import assign_labels
from monitor.pipeline.scoring import prepare
from monitor.ports import TelemetrySource, source_deadline
from monitor.records import FloatArray, Snapshot, Window

__all__ = [
    "SAMPLE_ROWS",
    "ClusterShift",
    "Explanation",
    "FeatureBins",
    "Rescaled",
    "WindowSampler",
    "explain",
    "rescaled",
]

#: Rows of a window kept for its explanation: bin shares within about 1.4 points of a
#: share (two standard errors at a share of 0.5), whatever the window's size.
SAMPLE_ROWS = 5000
_KEPT_WINDOWS = 4  # the window of a run and the reference windows its first run reads
#: Rows the reference's and the window's samples need before a rescale is named: the
#: median and the quantile spreads of 100 rows are within about 15% (log10 0.06).
RESCALE_MIN_ROWS = 100
#: How close to a power of ten (in log10) each ratio must be: within a factor of 2.2. A
#: window is one phase of the reference's day: the simulator's quiet windows of a
#: seasonal service moved these ratios by up to 0.31 (a factor of 2) against the day's.
_RESCALE_TOLERANCE = 0.35


@dataclass(frozen=True)
class FeatureBins:
    """One feature's reference bins, with the reference's and the window's shares."""

    feature: str
    edges: tuple[float, ...]  # inner edges (units: Explanation.units); bins are right-closed
    reference: tuple[float, ...]  # len(edges) + 1 shares
    current: tuple[float, ...]  # len(edges) + 1 shares of the window's sample


@dataclass(frozen=True)
class ClusterShift:
    """How the window's points of one live cluster sit against its centre."""

    cluster: int
    n_sample: int  # sample rows the live model puts in the cluster
    centre: tuple[float, ...]  # the live centre (units: Explanation.units)
    mean: tuple[float, ...]  # mean of those rows, same units; the centre when none
    shift_scaled: tuple[float, ...]  # mean - centre in scaled units (comparable across features)

    def ranked(self) -> list[int]:
        """Feature indices by how far the cluster moved along them, most first."""
        return sorted(range(len(self.shift_scaled)), key=lambda j: -abs(self.shift_scaled[j]))


@dataclass(frozen=True)
class Rescaled:
    """A feature whose window looks like the reference's values times ``factor``."""

    feature: str
    factor: float  # a power of ten: 1000.0, or 0.001 for values a thousand times smaller
    median_ratio: float  # the window's median absolute value over the reference's
    spread_ratio: float  # the window's inter-quartile range over the reference's


@dataclass(frozen=True)
class Explanation:
    """The live model's view of one window, per feature and per cluster."""

    model: str
    version: int  # the live snapshot it was computed against
    window_start: float
    window_end: float
    n_sample: int
    units: str  # "raw": the features' own units; "scaled": the scaler's (cosine models)
    features: tuple[FeatureBins, ...]
    clusters: tuple[ClusterShift, ...]
    feature_names: tuple[str, ...]
    rescaled: tuple[Rescaled, ...] = ()  # features that look multiplied by a power of ten

    def top_feature(self, cluster: int) -> str | None:
        """The feature along which a cluster's points moved most; None without points."""
        shift = self.clusters[cluster]
        if shift.n_sample == 0 or not any(shift.shift_scaled):
            return None
        return self.feature_names[shift.ranked()[0]]


class WindowSampler:
    """Sources that keep a seeded sample of the windows they return (thread-safe)."""

    def __init__(self, sources: Mapping[str, TelemetrySource], rows: int = SAMPLE_ROWS) -> None:
        self._rows = rows
        self._lock = threading.Lock()
        self._kept: dict[str, OrderedDict[tuple[float, float], FloatArray]] = {
            name: OrderedDict() for name in sources
        }
        self.sources: dict[str, TelemetrySource] = {
            name: _Sampled(name, source, self) for name, source in sources.items()
        }

    def keep(self, model: str, window: Window) -> None:
        """Keep a sample of ``window`` (rows with a NaN or infinity left out)."""
        X = np.asarray(window.X)
        if window.remote is not None:  # rows kept in Spark: only the sample comes here
            X = window.remote.sample(self._rows, int(window.start * 1000) % 2**32)
        if X.ndim != 2:
            X = X.reshape(0, len(window.features))
        if X.shape[0] > self._rows:
            # Seeded by the window, so the same window gives the same explanation. Rows
            # are drawn first and checked after: a whole-window pass would cost more.
            rng = np.random.default_rng(int(window.start * 1000) % 2**32)
            X = X[np.sort(rng.choice(X.shape[0], self._rows, replace=False))]
        finite = np.array(X[np.isfinite(X).all(axis=1)], dtype=np.float64)
        with self._lock:
            kept = self._kept[model]
            kept[(window.start, window.end)] = finite
            while len(kept) > _KEPT_WINDOWS:
                kept.popitem(last=False)

    def sample(self, model: str, start: float, end: float) -> FloatArray | None:
        """The sample kept for the window ``[start, end)`` of ``model``; None if not kept."""
        with self._lock:
            kept = self._kept.get(model)
            return None if kept is None else kept.get((start, end))


class _Sampled:
    """A source that hands each window it reads to a WindowSampler."""

    def __init__(self, model: str, source: TelemetrySource, sampler: WindowSampler) -> None:
        self._model = model
        self._source = source
        self._sampler = sampler

    def read_window(self, start: float, end: float) -> Window:
        window = self._source.read_window(start, end)
        self._sampler.keep(self._model, window)
        return window

    def deadline(self, seconds: float, model: str, why: str) -> AbstractContextManager[None]:
        """The source's own (a read of the spark source samples its rows in Spark)."""
        return source_deadline(self._source, seconds, model, why)

    def close(self) -> None:
        self._source.close()


def explain(live: Snapshot, sample: FloatArray, start: float, end: float) -> Explanation:
    """The bin shares and cluster shifts of ``sample`` (raw rows) under ``live``."""
    X = np.asarray(sample, dtype=np.float64).reshape(-1, len(live.features))
    Xs = prepare(X, live.scaler, live.metric)
    n = Xs.shape[0]
    features = []
    for j, name in enumerate(live.features):
        edges = np.asarray(live.bins.edges[j], dtype=np.float64)
        # Right-closed bins, the rule of monitor.core.drift.psi.
        index = np.searchsorted(edges, Xs[:, j], side="left")
        counts = np.bincount(index, minlength=edges.shape[0] + 1)
        features.append(
            FeatureBins(
                feature=name,
                edges=_floats(_to_units(live, edges, j)),
                reference=_floats(live.bins.reference_fractions[j]),
                current=_floats(counts / n if n else counts.astype(np.float64)),
            )
        )
    return Explanation(
        model=live.model,
        version=live.version,
        window_start=start,
        window_end=end,
        n_sample=n,
        units="scaled" if live.metric == "cosine" else "raw",
        features=tuple(features),
        clusters=_shifts(live, Xs),
        feature_names=tuple(live.features),
        rescaled=rescaled(live.features, np.asarray(live.sample, dtype=np.float64), X),
    )


def rescaled(
    features: tuple[str, ...], reference: FloatArray, window: FloatArray
) -> tuple[Rescaled, ...]:
    """The features whose ``window`` rows look like ``reference`` rows (both raw) times a
    power of ten of at least 10 either way.

    The evidence asked of a feature: its median absolute value, its inter-quartile range
    and its 10-90% range each moved by a ratio near the same power of ten (within a
    factor of 2.2: a window is one phase of a seasonal reference, whose quiet windows
    move them by up to a factor of 2). A unit change moves all three by its factor; a
    shift of the level moves the median and leaves the spreads, a wider noise moves the
    spreads and leaves the median. Samples of fewer than ``RESCALE_MIN_ROWS`` finite
    rows name nothing.
    """
    ref = reference[np.isfinite(reference).all(axis=1)] if reference.ndim == 2 else reference
    cur = window[np.isfinite(window).all(axis=1)] if window.ndim == 2 else window
    if ref.ndim != 2 or cur.ndim != 2 or min(ref.shape[0], cur.shape[0]) < RESCALE_MIN_ROWS:
        return ()
    if ref.shape[1] != len(features) or cur.shape[1] != len(features):
        return ()
    r, c = _location_and_spreads(ref), _location_and_spreads(cur)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratios = np.log10(c / r)  # (3, d): median |x|, IQR, 10-90% range
    power = np.round(log_ratios[0])
    near = np.abs(log_ratios - power) <= _RESCALE_TOLERANCE  # False where NaN or inf
    named = near.all(axis=0) & (np.abs(power) >= 1) & (r > 0).all(axis=0)
    return tuple(
        Rescaled(
            feature=features[j],
            factor=float(10.0 ** power[j]),
            median_ratio=float(c[0, j] / r[0, j]),
            spread_ratio=float(c[1, j] / r[1, j]),
        )
        for j in np.flatnonzero(named)
    )


def _location_and_spreads(X: FloatArray) -> FloatArray:
    """Per column: the median absolute value, the IQR and the 10-90% range, (3, d)."""
    q10, q25, q75, q90 = np.quantile(X, [0.1, 0.25, 0.75, 0.9], axis=0)
    return np.stack([np.median(np.abs(X), axis=0), q75 - q25, q90 - q10])


def _shifts(live: Snapshot, Xs: FloatArray) -> tuple[ClusterShift, ...]:
    centres = np.asarray(live.centers, dtype=np.float64)
    k = centres.shape[0]
    if Xs.shape[0]:
        labels, _ = assign_labels(Xs, centres)
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, Xs)
    else:
        counts, sums = np.zeros(k, dtype=np.int64), np.zeros_like(centres)
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres)
    out = []
    for c in range(k):
        out.append(
            ClusterShift(
                cluster=c,
                n_sample=int(counts[c]),
                centre=_floats(_row_units(live, centres[c])),
                mean=_floats(_row_units(live, means[c])),
                shift_scaled=_floats(means[c] - centres[c]),
            )
        )
    return tuple(out)


def _row_units(live: Snapshot, row: FloatArray) -> FloatArray:
    """A point from scaled units to the features' own (cosine rows cannot go back)."""
    if live.metric == "cosine":
        return row
    return scaling.inverse_transform(live.scaler, row[None, :])[0]


def _to_units(live: Snapshot, values: FloatArray, j: int) -> FloatArray:
    """Values of feature ``j`` from scaled units to the feature's own."""
    if live.metric == "cosine":
        return values
    return values * float(live.scaler.scale[j]) + float(live.scaler.center[j])


def _floats(values: object) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())
