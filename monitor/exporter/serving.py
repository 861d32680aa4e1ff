"""The label API's metrics: per model and variant (live, canary), read at scrape time.

``ServingStats`` is written by every answer (a few additions under a lock) and meets
``monitor.serving.Recorder``; ``ServingCollector`` turns a copy of it into metric
families. Every series of a configured model exists from start-up (0 until used), the
``cluster`` series from the first time a variant with that many clusters is served.
Scrapes do not re-encode /metrics for each answer: ``MetricsCache`` re-reads at most
once per its ``max_age`` (1 s), so these series are at most that stale. Names:
docs/metrics.md.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = [
    "BATCH_BUCKETS",
    "LATENCY_BUCKETS",
    "SERVING_VARIANTS",
    "STATUS_CODES",
    "ServingCollector",
    "ServingSpec",
    "ServingStats",
    "status_code",
]

# A single row takes well under a millisecond; a 10,000-row batch some milliseconds;
# the default latency SLO is 100 ms. Seconds, as every duration.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0)
#: The ``code`` label: every status the API and the server answer a labels request with.
STATUS_CODES = ("200", "400", "401", "405", "406", "408", "411", "413", "415", "500", "503")
SERVING_VARIANTS = ("live", "canary")


def status_code(status: int) -> str:
    """The ``code`` label of ``status``: itself when listed, else 400 or 500 by class."""
    code = str(status)
    if code in STATUS_CODES:
        return code
    return "500" if status >= 500 or status < 400 else "400"


@dataclass(frozen=True)
class ServingSpec:
    """A served model's objectives, exported next to its series for the alert rules."""

    name: str
    latency_seconds: float  # a request answered later than this is slow
    latency_objective: float  # share of answered requests that must not be slow
    success_objective: float  # share of requests that must not get a server error


def _observe(buckets: list[int], bounds: Sequence[float], value: float) -> None:
    buckets[bisect.bisect_left(bounds, value)] += 1  # le: a value on a bound is in it


@dataclass
class _Variant:
    codes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUS_CODES, 0))
    durations: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    duration_sum: float = 0.0
    slow: int = 0
    batches: list[int] = field(default_factory=lambda: [0] * (len(BATCH_BUCKETS) + 1))
    rows: int = 0
    outliers: int = 0
    invalid: int = 0
    clusters: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    version: int = 0  # 0: nothing served under this variant now

    def copy(self) -> _Variant:
        return _Variant(
            dict(self.codes),
            list(self.durations),
            self.duration_sum,
            self.slow,
            list(self.batches),
            self.rows,
            self.outliers,
            self.invalid,
            self.clusters.copy(),
            self.version,
        )

    def touch_clusters(self, k: int) -> None:
        if k > self.clusters.shape[0]:
            self.clusters = np.concatenate(
                [self.clusters, np.zeros(k - self.clusters.shape[0], np.int64)]
            )


@dataclass
class _Model:
    spec: ServingSpec
    variants: dict[str, _Variant] = field(
        default_factory=lambda: {v: _Variant() for v in SERVING_VARIANTS}
    )
    canary_share: float = 0.0

    def copy(self) -> _Model:
        return _Model(self.spec, {v: s.copy() for v, s in self.variants.items()}, self.canary_share)


class ServingStats:
    """Counters of the label API, per model and variant (thread-safe, never raises)."""

    def __init__(self, specs: Sequence[ServingSpec]) -> None:
        self._lock = threading.Lock()
        self._models = {s.name: _Model(s) for s in specs}
        self._changes = 0  # bumped by every change: /metrics re-encodes these only then

    @property
    def changes(self) -> int:
        """A counter every change bumps (what the /metrics cache keys this part on)."""
        return self._changes

    def answered(self, model: str, variant: str, status: int) -> None:
        """A request answered with an error ``status``."""
        with self._lock:
            m = self._models.get(model)
            if m is not None and variant in m.variants:
                m.variants[variant].codes[status_code(status)] += 1
                self._changes += 1

    def served(
        self,
        model: str,
        variant: str,
        *,
        seconds: float,
        rows: int,
        labels: NDArray[np.integer[Any]],
        outliers: int,
    ) -> None:
        """A request answered with labels (``labels`` of its valid rows only)."""
        counts = np.bincount(labels) if labels.size else np.zeros(0, dtype=np.int64)
        with self._lock:
            m = self._models.get(model)
            if m is None or variant not in m.variants:
                return
            v = m.variants[variant]
            v.codes["200"] += 1
            _observe(v.durations, LATENCY_BUCKETS, seconds)
            v.duration_sum += seconds
            v.slow += seconds > m.spec.latency_seconds
            _observe(v.batches, BATCH_BUCKETS, float(rows))
            v.rows += rows
            v.outliers += outliers
            v.invalid += rows - int(labels.size)
            v.touch_clusters(counts.shape[0])
            v.clusters[: counts.shape[0]] += counts
            self._changes += 1

    def loaded(
        self,
        model: str,
        *,
        live: tuple[int, int] | None,
        canary: tuple[int, int] | None,
        share: float,
    ) -> None:
        """What is served now: (version, k) of each variant, and the canary's share."""
        with self._lock:
            m = self._models.get(model)
            if m is None:
                return
            m.canary_share = share
            for variant, served in (("live", live), ("canary", canary)):
                v = m.variants[variant]
                v.version = 0 if served is None else served[0]
                if served is not None:
                    v.touch_clusters(served[1])
            self._changes += 1

    def view(self) -> list[_Model]:
        """A consistent copy of every model's counters."""
        with self._lock:
            return [m.copy() for m in self._models.values()]


def _histogram(
    bounds: Sequence[float], counts: Sequence[int], total: float
) -> tuple[list[tuple[str, float]], float]:
    cumulative = 0.0
    buckets: list[tuple[str, float]] = []
    for le, count in zip((*bounds, math.inf), counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if math.isinf(le) else repr(le), cumulative))
    return buckets, total


_MV = ["model", "variant"]
# The counters of each variant: (metric name without _total, help, the _Variant field).
_VARIANT_COUNTERS = (
    (
        "kmeans_serving_slow_requests",
        "Requests answered with labels later than the latency objective's threshold.",
        "slow",
    ),
    ("kmeans_serving_outlier_rows", "Rows labelled as outliers.", "outliers"),
    (
        "kmeans_serving_invalid_rows",
        "Rows answered without a label (NaN or infinity, nan_policy null).",
        "invalid",
    ),
)
# The per-model gauges: (metric name, help, how to read it from a _Model).
_MODEL_GAUGES: tuple[tuple[str, str, Callable[[_Model], float]], ...] = (
    (
        "kmeans_serving_canary_share_ratio",
        "Share of requests the canary answers now (0 without a pending candidate).",
        lambda m: m.canary_share,
    ),
    (
        "kmeans_serving_latency_threshold_seconds",
        "Latency above which an answered request is slow.",
        lambda m: m.spec.latency_seconds,
    ),
    (
        "kmeans_serving_latency_objective_ratio",
        "Share of answered requests that must not be slow.",
        lambda m: m.spec.latency_objective,
    ),
    (
        "kmeans_serving_success_objective_ratio",
        "Share of requests that must not get a server error (5xx).",
        lambda m: m.spec.success_objective,
    ),
)


class ServingCollector(Collector):
    """Turns ``ServingStats`` into the serving families of docs/metrics.md at scrape time."""

    def __init__(self, stats: ServingStats) -> None:
        self._stats = stats

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "kmeans_serving_requests",
            "Label requests answered, by status code.",
            labels=[*_MV, "code"],
        )
        duration = HistogramMetricFamily(
            "kmeans_serving_request_duration_seconds",
            "Time from a whole request to its answer, for requests answered with labels.",
            labels=_MV,
        )
        batch = HistogramMetricFamily(
            "kmeans_serving_batch_rows", "Rows in a request answered with labels.", labels=_MV
        )
        counters = [
            (CounterMetricFamily(name, doc, labels=_MV), attr)
            for name, doc, attr in _VARIANT_COUNTERS
        ]
        clusters = CounterMetricFamily(
            "kmeans_serving_cluster_rows", "Rows labelled, by cluster.", labels=[*_MV, "cluster"]
        )
        version = GaugeMetricFamily(
            "kmeans_serving_model_version",
            "Snapshot version a variant serves (0: none).",
            labels=_MV,
        )
        gauges = [
            (GaugeMetricFamily(n, doc, labels=["model"]), read) for n, doc, read in _MODEL_GAUGES
        ]
        for m in self._stats.view():
            for gauge, read in gauges:
                gauge.add_metric([m.spec.name], read(m))
            for variant, v in m.variants.items():
                labels = [m.spec.name, variant]
                for code, count in v.codes.items():
                    requests.add_metric([*labels, code], count)
                duration.add_metric(
                    labels, *_histogram(LATENCY_BUCKETS, v.durations, v.duration_sum)
                )
                batch.add_metric(labels, *_histogram(BATCH_BUCKETS, v.batches, float(v.rows)))
                for family, attr in counters:
                    family.add_metric(labels, getattr(v, attr))
                for cluster, count in enumerate(v.clusters.tolist()):
                    clusters.add_metric([*labels, str(cluster)], count)
                version.add_metric(labels, v.version)
        yield from (requests, duration, batch, *(f for f, _ in counters), clusters, version)
        yield from (g for g, _ in gauges)
