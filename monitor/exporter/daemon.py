"""Prometheus export: a Collector that reads the latest state at scrape time.

Runs write into ``MonitorState`` under a lock; ``MonitorCollector.collect`` takes a
consistent copy and turns it into metric families. Nothing is computed and nothing
can raise in ``collect`` beyond building the families. Names: docs/metrics.md.
"""

from __future__ import annotations

import bisect
import math
import platform
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from monitor import alerting
from monitor import slis as S
from monitor.explain import Explanation
from monitor.exporter.serving import ServingCollector, ServingStats
from monitor.records import FAILURE_REASONS, SKIP_REASONS, Evaluation, RunTotals, Snapshot

__all__ = [
    "DURATION_BUCKETS",
    "TOP_FEATURE_METRIC",
    "ModelSpec",
    "ModelStatus",
    "MonitorCollector",
    "MonitorRegistry",
    "MonitorState",
    "make_registry",
]

# Runs last from a fraction of a second (small windows) to many minutes (1M rows, k=64).
DURATION_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
)

#: One series per drifted cluster: the feature along which its points moved most.
TOP_FEATURE_METRIC = "kmeans_centroid_drift_top_feature_info"

# The labelled SLIs: where an Evaluation keeps their values.
_PER_CLUSTER: dict[str, Callable[[Evaluation], Sequence[float]]] = {
    S.CLUSTER_SIZE: lambda ev: ev.cluster_sizes,
    S.CLUSTER_SHARE: lambda ev: ev.cluster_shares,
    S.CENTROID_DRIFT: lambda ev: ev.centroid_drift,
}


@dataclass(frozen=True)
class ModelSpec:
    """What the exporter needs to know about a configured model before any run."""

    name: str
    features: tuple[str, ...]
    interval_seconds: float
    run_duration_budget_seconds: float
    freshness_slo_seconds: float
    run_success_objective: float
    engine: str = "local"  # where its runs compute (config ``engine``)
    flagged_runs_to_fire: int = S.FLAGGED_RUNS_TO_FIRE  # ``thresholds.flagged_runs_to_fire``


@dataclass
class _ModelState:
    spec: ModelSpec
    runs: int = 0
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAILURE_REASONS, 0))
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0
    reference_seconds: float | None = None  # the latest reference period read and trained
    last_run: float = 0.0
    last_success: float = 0.0
    ready_at: float = 0.0  # while the latest run awaited its reference data: from when it trains
    promotions: int = 0
    evaluation: Evaluation | None = None
    live_version: int | None = None
    live_k: int = 0
    live_created: float = 0.0
    thresholds: dict[str, float] = field(default_factory=dict)
    stale: bool = False  # the latest run failed: the SLIs are the last good run's
    flagged_runs: int = 0  # successful runs in a row, up to the latest, flagged by an SLI
    live: Snapshot | None = None  # the live snapshot itself (pages explain against it)
    explanation: Explanation | None = None  # of the latest evaluation, against ``live``

    def copy(self) -> _ModelState:
        return _ModelState(
            spec=self.spec,
            runs=self.runs,
            failures=dict(self.failures),
            skipped=dict(self.skipped),
            bucket_counts=list(self.bucket_counts),
            duration_sum=self.duration_sum,
            reference_seconds=self.reference_seconds,
            last_run=self.last_run,
            last_success=self.last_success,
            ready_at=self.ready_at,
            promotions=self.promotions,
            evaluation=self.evaluation,
            live_version=self.live_version,
            live_k=self.live_k,
            live_created=self.live_created,
            thresholds=dict(self.thresholds),
            stale=self.stale,
            flagged_runs=self.flagged_runs,
            live=self.live,
            explanation=self.explanation,
        )

    def status(self) -> ModelStatus:
        return ModelStatus(
            spec=self.spec,
            runs=self.runs,
            failures=dict(self.failures),
            last_run=self.last_run,
            last_success=self.last_success,
            ready_at=self.ready_at,
            promotions=self.promotions,
            stale=self.stale,
            evaluation=self.evaluation,
            live=self.live,
            explanation=self.current_explanation(),
            flagged_runs=self.flagged_runs,
        )

    def current_explanation(self) -> Explanation | None:
        """The explanation, if it explains the latest evaluation under the live snapshot."""
        e, ev = self.explanation, self.evaluation
        if e is None or ev is None or e.version != self.live_version:
            return None
        if (e.window_start, e.window_end) != (ev.window_start, ev.window_end):
            return None
        return e


@dataclass(frozen=True)
class ModelStatus:
    """One model as the daemon knows it now (what its pages show)."""

    spec: ModelSpec
    runs: int
    failures: dict[str, int]  # reason -> failed runs since start-up
    last_run: float  # unix seconds; 0 before the first run
    last_success: float
    ready_at: float  # as kmeans_reference_ready_timestamp_seconds: 0 unless awaiting
    promotions: int
    stale: bool  # the latest run failed
    evaluation: Evaluation | None  # of the latest successful run
    live: Snapshot | None
    explanation: Explanation | None  # of ``evaluation`` under ``live``; None when not known
    flagged_runs: int  # as kmeans_flagged_runs: the SLI alerts fire from spec.flagged_runs_to_fire


class MonitorState:
    """The latest of everything, written by runs and read by scrapes (thread-safe)."""

    def __init__(self, specs: Sequence[ModelSpec], *, started_at: float, version: str) -> None:
        self._lock = threading.Lock()
        self._models = {s.name: _ModelState(s) for s in specs}
        self._generation = 0  # bumped by every change: /metrics re-encodes only then
        self.started_at = started_at
        self.version = version

    def models(self) -> list[str]:
        return list(self._models)

    @property
    def generation(self) -> int:
        """A counter every change of the state bumps (what the /metrics cache keys on)."""
        return self._generation

    def _observe(self, m: _ModelState, duration: float, at: float) -> None:
        m.runs += 1
        m.last_run = at
        _time_run(m, duration)

    def record_success(
        self, evaluation: Evaluation, live: Snapshot, *, duration: float, at: float
    ) -> None:
        """A run succeeded: its evaluation becomes the latest, ``live`` the live snapshot.

        The time a first run spends reading and training its reference period is its own
        gauge, not part of the run's duration: the run budget is for the scheduled work,
        which a one-off training of a day of data would otherwise put over it.
        """
        with self._lock:
            m = self._models[evaluation.model]
            reference = evaluation.phase_seconds.get("reference")
            if reference is not None:
                m.reference_seconds = reference
                duration = max(0.0, duration - reference)
            self._observe(m, duration, at)
            m.last_success = at
            m.ready_at = 0.0
            m.evaluation = evaluation
            m.stale = False
            held = alerting.held_conditions(evaluation)
            m.flagged_runs = alerting.flagged_runs([held], before=m.flagged_runs)[0]
            if evaluation.promoted:
                m.promotions += 1
            self._set_live(m, live)
            # What this run compared its SLIs with (they depend on its size).
            m.thresholds = dict(evaluation.thresholds)
            self._generation += 1

    def restore(
        self,
        model: str,
        latest: Evaluation | None,
        *,
        failed_since: bool,
        flagged_runs: int = 0,
        last_failure: float | None = None,
    ) -> None:
        """What the history knew of a model before this process: its latest successful
        run (``failed_since``: a failed run came after it, or it is None and one failed),
        when its latest failed run ended (``last_failure``), and its flagged runs
        (``alerting.flagged_runs``), so that a restart neither resolves a firing SLI alert
        nor delays one by a run. With the last run's time, KMeansRunsFailing (a run after
        the last success) still holds after a restart: it read 0 before, and every restart
        of a crash-looping daemon started the alert's ``for:`` again.

        A restart must not read as a model that never succeeded, nor export SLIs of 0
        until its first run ends (a silhouette of 0 is below any threshold). Call it after
        the live snapshot is set: the latest run's thresholds are kept when it scored
        that same version.
        """
        with self._lock:
            m = self._models[model]
            m.stale = failed_since
            m.flagged_runs = 0 if failed_since else flagged_runs
            if latest is not None:
                m.evaluation = latest
                m.last_success = max(m.last_success, latest.evaluated_at + latest.duration_seconds)
                if latest.live_version == m.live_version:
                    m.thresholds = dict(latest.thresholds)
            # The run written last: a success stamped after the failure may be older (the
            # wall clock stepped back between them).
            ended = last_failure if failed_since and last_failure is not None else None
            m.last_run = max(m.last_run, m.last_success if ended is None else ended)
            self._generation += 1

    def carry_over(self, model: str, totals: RunTotals) -> None:
        """Count the runs a history holds before this process (batch mode only).

        Each ``evaluate --push-to`` is a new process: counters that started at 0 at every
        push would never increase in Prometheus, and a start time of now at every push
        would hold KMeansEvaluationStale off for ever. The counters carry on from the
        history instead, and the start is that of the earliest run it holds.
        """
        with self._lock:
            m = self._models[model]
            m.runs += totals.runs
            for reason, n in totals.failures.items():
                m.failures[reason if reason in m.failures else "internal"] += n
            m.promotions += totals.promotions
            for duration in totals.durations:
                _time_run(m, duration)
            m.last_run = max(m.last_run, totals.last_end or 0.0)
            if totals.first is not None:
                self.started_at = min(self.started_at, totals.first)
            self._generation += 1

    def record_failure(
        self,
        model: str,
        reason: str,
        *,
        duration: float,
        at: float,
        ready_at: float | None = None,
    ) -> None:
        """A run failed with a bounded ``reason``; the latest evaluation stays.
        ``ready_at``: the run awaited its reference data, which cover the period from then."""
        with self._lock:
            m = self._models[model]
            self._observe(m, duration, at)
            m.ready_at = 0.0 if ready_at is None else ready_at
            m.failures[reason if reason in m.failures else "internal"] += 1
            m.stale = True
            m.flagged_runs = 0
            self._generation += 1

    def has_run(self, model: str) -> bool:
        """Whether a run of ``model`` (successful or not) has ended in this process."""
        with self._lock:
            return self._models[model].runs > 0

    def record_skipped(self, model: str, reason: str, count: int = 1) -> None:
        """``count`` scheduled runs of ``model`` did not start (one of ``SKIP_REASONS``)."""
        with self._lock:
            m = self._models[model]
            m.skipped[reason if reason in m.skipped else "missed"] += count
            self._generation += 1

    def set_live(self, live: Snapshot, *, promoted: bool = False) -> None:
        """The live snapshot changed outside a run (start-up, rollback)."""
        with self._lock:
            m = self._models[live.model]
            if promoted and m.live_version is not None and m.live_version != live.version:
                m.promotions += 1
            self._set_live(m, live)
            self._generation += 1

    def set_explanation(self, explanation: Explanation) -> None:
        """The explanation of a model's latest window (ignored for an unknown model)."""
        with self._lock:
            m = self._models.get(explanation.model)
            if m is None:
                return
            m.explanation = explanation
            self._generation += 1

    def status(self, model: str) -> ModelStatus:
        """What the daemon knows of one model now; KeyError for an unknown model."""
        with self._lock:
            return self._models[model].status()

    @staticmethod
    def _set_live(m: _ModelState, live: Snapshot) -> None:
        m.live = live
        m.live_version = live.version
        m.live_k = live.k
        m.live_created = live.created_at
        m.thresholds = dict(live.thresholds)

    def live_version(self, model: str) -> int | None:
        with self._lock:
            return self._models[model].live_version

    def latest(self, model: str) -> Evaluation | None:
        with self._lock:
            return self._models[model].evaluation

    def view(self) -> list[_ModelState]:
        """A consistent copy of every model's state."""
        with self._lock:
            return [m.copy() for m in self._models.values()]


def _time_run(m: _ModelState, duration: float) -> None:
    """Add one run's ``duration`` to the model's duration histogram."""
    m.duration_sum += duration
    m.bucket_counts[bisect.bisect_left(DURATION_BUCKETS, duration)] += 1


def _gauge(name: str, doc: str, labels: Iterable[str] = ("model",)) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _build_info(version: str) -> GaugeMetricFamily:
    build = _gauge(
        "kmeans_build_info", "Always 1; the package version and Python's.", ["version", "python"]
    )
    build.add_metric([version, platform.python_version()], 1)
    return build


class _BuildInfoCollector(Collector):
    """kmeans_build_info alone: what a process without runs (`serve`) says about itself,
    so that dashboards find its job."""

    def __init__(self, version: str) -> None:
        self._version = version

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        yield _build_info(self._version)


class CertificateCollector(Collector):
    """``kmeans_tls_certificate_expiry_timestamp_seconds``: ``not_after()``, the end of
    the certificate a server presents now (None: none known, no sample)."""

    def __init__(self, not_after: Callable[[], float | None]) -> None:
        self._not_after = not_after

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "kmeans_tls_certificate_expiry_timestamp_seconds",
            "When the first certificate of the served cert_file ends (its notAfter), "
            "unix seconds; read again when the files change.",
        )
        if (not_after := self._not_after()) is not None:
            family.add_metric([], not_after)
        yield family


class ConnectionsCollector(Collector):
    """``kmeans_http_dropped_connections_total``: ``dropped()``, the connections the HTTP
    server closed at its connection limit."""

    def __init__(self, dropped: Callable[[], int]) -> None:
        self._dropped = dropped

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "kmeans_http_dropped_connections",
            "Client connections the HTTP server closed at its connection limit: idle ones "
            "closed to make room, new ones refused while all were busy.",
        )
        family.add_metric([], self._dropped())
        yield family


class MonitorCollector(Collector):
    """Turns ``MonitorState`` into the metric families of docs/metrics.md at scrape time."""

    def __init__(self, state: MonitorState) -> None:
        self._state = state

    def describe(self) -> Iterator[Metric]:
        # Describing by collecting is cheap here and keeps one list of families.
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        st = self._state
        view = st.view()
        yield _build_info(st.version)
        start = GaugeMetricFamily(
            "kmeans_daemon_start_timestamp_seconds", "When the daemon started, unix seconds."
        )
        start.add_metric([], st.started_at)
        yield start
        configured = GaugeMetricFamily("kmeans_models_configured", "Models in the configuration.")
        configured.add_metric([], len(view))
        yield configured

        yield from self._job_health(view)
        yield from self._alert_state(view)
        yield from self._snapshot(view)
        yield from self._slis(view)

    def _job_health(self, view: list[_ModelState]) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "kmeans_runs", "Runs ended, successful or not.", labels=["model"]
        )
        fails = CounterMetricFamily(
            "kmeans_run_failures", "Runs that failed, by reason.", labels=["model", "reason"]
        )
        skipped = CounterMetricFamily(
            "kmeans_runs_skipped",
            "Scheduled runs that did not start, by reason.",
            labels=["model", "reason"],
        )
        promos = CounterMetricFamily(
            "kmeans_promotions", "Candidates promoted to live.", labels=["model"]
        )
        hist = HistogramMetricFamily(
            "kmeans_run_duration_seconds",
            "Wall time of a run, less the reading and training of a reference period.",
            labels=["model"],
        )
        gauges = {
            "last_run": _gauge(
                "kmeans_last_run_timestamp_seconds", "End of the latest run, unix seconds."
            ),
            "last_success": _gauge(
                "kmeans_last_success_timestamp_seconds",
                "End of the latest successful run, unix seconds.",
            ),
            "interval": _gauge(
                "kmeans_schedule_interval_seconds", "Interval between scheduled runs."
            ),
            "budget": _gauge(
                "kmeans_run_duration_budget_seconds", "Configured budget for one run."
            ),
            "reference": _gauge(
                "kmeans_reference_training_seconds",
                "Wall time of the latest reference training: reading the period, training "
                "and calibrating.",
            ),
            "ready": _gauge(
                "kmeans_reference_ready_timestamp_seconds",
                "While the latest run awaited its reference data (reason awaiting_reference): "
                "when they cover the period, unix seconds; 0 otherwise.",
            ),
            "fresh": _gauge("kmeans_freshness_slo_seconds", "Maximum age of the live snapshot."),
            "objective": _gauge(
                "kmeans_run_success_objective_ratio", "Run-success SLO (share of runs)."
            ),
        }
        for m in view:
            name = m.spec.name
            runs.add_metric([name], m.runs)
            for reason in FAILURE_REASONS:
                fails.add_metric([name, reason], m.failures.get(reason, 0))
            for reason in SKIP_REASONS:
                skipped.add_metric([name, reason], m.skipped.get(reason, 0))
            promos.add_metric([name], m.promotions)
            cumulative, buckets = 0, []
            for le, count in zip((*DURATION_BUCKETS, math.inf), m.bucket_counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if math.isinf(le) else repr(le), cumulative))
            hist.add_metric([name], buckets, m.duration_sum)
            gauges["last_run"].add_metric([name], m.last_run)
            gauges["last_success"].add_metric([name], m.last_success)
            gauges["interval"].add_metric([name], m.spec.interval_seconds)
            gauges["budget"].add_metric([name], m.spec.run_duration_budget_seconds)
            if m.reference_seconds is not None:
                gauges["reference"].add_metric([name], m.reference_seconds)
            gauges["ready"].add_metric([name], m.ready_at)
            gauges["fresh"].add_metric([name], m.spec.freshness_slo_seconds)
            gauges["objective"].add_metric([name], m.spec.run_success_objective)
        yield from (runs, fails, skipped, promos, hist)
        yield from gauges.values()

    @staticmethod
    def _alert_state(view: list[_ModelState]) -> Iterator[Metric]:
        """What the SLI alerts' rules read beside the SLIs and their thresholds."""
        stale = _gauge(
            "kmeans_slis_stale",
            "1 while the latest run failed: the SLI series hold the last good run's values.",
        )
        flagged = _gauge(
            "kmeans_flagged_runs",
            "Successful runs in a row, up to the latest, on which an SLI alert's condition held.",
        )
        to_fire = _gauge(
            "kmeans_flagged_runs_to_fire",
            "Flagged runs in a row from which the SLI alerts fire "
            "(thresholds.flagged_runs_to_fire).",
        )
        for m in view:
            stale.add_metric([m.spec.name], 1.0 if m.stale else 0.0)
            flagged.add_metric([m.spec.name], m.flagged_runs)
            to_fire.add_metric([m.spec.name], m.spec.flagged_runs_to_fire)
        yield from (stale, flagged, to_fire)

    def _snapshot(self, view: list[_ModelState]) -> Iterator[Metric]:
        info = _gauge(
            "kmeans_snapshot_info",
            "Always 1; describes the live snapshot.",
            ["model", "version", "k"],
        )
        version = _gauge("kmeans_snapshot_version", "Version number of the live snapshot.")
        created = _gauge(
            "kmeans_snapshot_created_timestamp_seconds",
            "When the live snapshot was trained, unix seconds.",
        )
        nfeat = _gauge("kmeans_model_features", "Number of features the model reads.")
        engine = _gauge(
            "kmeans_model_engine_info",
            "Always 1; the engine that runs the model's windows (local or spark).",
            ["model", "engine"],
        )
        thresholds = {t.key: _gauge(t.metric, t.help) for t in S.THRESHOLDS.values()}
        for m in view:
            name = m.spec.name
            nfeat.add_metric([name], len(m.spec.features))
            engine.add_metric([name, m.spec.engine], 1)
            if m.live_version is None:
                continue
            info.add_metric([name, str(m.live_version), str(m.live_k)], 1)
            version.add_metric([name], m.live_version)
            created.add_metric([name], m.live_created)
            for key, fam in thresholds.items():
                if key in m.thresholds:
                    fam.add_metric([name], m.thresholds[key])
        yield from (info, version, created, nfeat, engine)
        yield from thresholds.values()

    def _slis(self, view: list[_ModelState]) -> Iterator[Metric]:
        families = {s.key: _gauge(s.metric, s.help, s.labels) for s in S.SLIS.values()}
        for m in view:
            name = m.spec.name
            ev = m.evaluation
            families[S.WINDOW_ROWS].add_metric([name], ev.n_rows if ev else 0)
            for key in S.SCALAR:
                # An SLI the run did not measure (its live version was stored before
                # kmeans-monitor measured it, or the fixed mode's drift in standard
                # errors) is undefined: no sample, as no threshold.
                if ev is None or key in ev.slis:
                    families[key].add_metric([name], ev.slis[key] if ev else 0.0)
            psi = families[S.FEATURE_PSI]
            for feature in m.spec.features:
                psi.add_metric([name, feature], ev.feature_psi.get(feature, 0.0) if ev else 0.0)
            if ev is None:
                continue
            for key, values in _PER_CLUSTER.items():
                for c, value in enumerate(values(ev)):
                    families[key].add_metric([name, str(c)], value)
        yield from families.values()
        yield self._top_features(view)

    @staticmethod
    def _top_features(view: list[_ModelState]) -> Metric:
        """The feature that moved each drifted cluster most; at most one series per cluster."""
        family = _gauge(
            TOP_FEATURE_METRIC,
            "Always 1; per drifted cluster, the feature along which its points moved most.",
            ["model", "cluster", "feature"],
        )
        for m in view:
            e, ev = m.current_explanation(), m.evaluation
            if e is None or ev is None:
                continue
            for c, drift in enumerate(ev.centroid_drift):
                top = e.top_feature(c) if c < len(e.clusters) and drift > 0 else None
                if top is not None:
                    family.add_metric([m.spec.name, str(c), top], 1)
        return family


class MonitorRegistry(CollectorRegistry):
    """Every family a process exports, collected in three parts that /metrics caches apart.

    ``steady`` (the monitor's families, the build and platform info) changes only when
    the state says so (its ``generation``); ``serving`` (the label API's counters) when
    its ``ServingStats.changes`` moves; ``process`` (CPU, memory, descriptors, the
    garbage collector) at every moment. Re-encoding only the part that changed costs
    a fraction of re-encoding everything. Collected whole, as any registry, it yields
    the three parts in that order.
    """

    def __init__(self) -> None:
        super().__init__(auto_describe=True)
        self.steady = CollectorRegistry(auto_describe=True)
        self.serving = CollectorRegistry(auto_describe=True)
        self.process = CollectorRegistry(auto_describe=True)
        for part in (self.steady, self.serving, self.process):
            self.register(_Part(part))


class _Part(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


def make_registry(
    state: MonitorState | None,
    *,
    process_metrics: bool = True,
    serving: ServingStats | None = None,
    version: str | None = None,
) -> MonitorRegistry:
    """A private registry with the monitor's collector (None: a process that only serves
    labels, which then exports only ``kmeans_build_info`` of ``version``), the label
    API's when ``serving`` is given, and the process/platform ones."""
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    registry = MonitorRegistry()
    if state is not None:
        registry.steady.register(MonitorCollector(state))
    elif version is not None:
        registry.steady.register(_BuildInfoCollector(version))
    if serving is not None:
        registry.serving.register(ServingCollector(serving))
    if process_metrics:
        PlatformCollector(registry=registry.steady)
        ProcessCollector(registry=registry.process)
        GCCollector(registry=registry.process)
    return registry
