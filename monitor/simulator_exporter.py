"""An exporter of simulated service telemetry, for Prometheus to scrape.

It closes the loop through Prometheus: the built-in simulator's instances become gauges
(one per feature, one series per instance), Prometheus scrapes them, and a model with a
``prometheus`` source reads them back with ``query_range``. The end-to-end tests use it,
and so can anyone trying the stack by hand (``kmeans-monitor simulate``, docs/e2e.md).

The gauges are computed by a background thread every ``refresh`` seconds; a scrape only
reads the latest snapshot, so ``collect`` never computes and never raises.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.config import FEATURE_NAME
from monitor.errors import ConfigError, InvalidInputError
from monitor.sources.synthetic import Simulator, SyntheticOptions
from monitor.sources.synthetic import parse_options as parse_synthetic_options

__all__ = [
    "DEFAULT_FEATURES",
    "METRIC_PREFIX",
    "ExporterOptions",
    "SimulatorCollector",
    "SimulatorServer",
    "metric_names",
    "parse_exporter_options",
]

log = logging.getLogger(__name__)

# The demo's checkout service: what someone trying the stack expects to see.
DEFAULT_FEATURES = ("latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps", "error_ratio")
DEFAULT_INSTANCES = 20
MAX_INSTANCES = 10_000  # bounds the instance_id label
# Not `kmeans_`: that prefix is the daemon's metrics contract (docs/metrics.md).
METRIC_PREFIX = "simulated_"
_NOT_IN_METRIC_NAME = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class ExporterOptions:
    """What the exporter simulates: the features, how many instances, the simulator."""

    features: tuple[str, ...] = DEFAULT_FEATURES
    instances: int = DEFAULT_INSTANCES
    simulator: SyntheticOptions = field(default_factory=SyntheticOptions)


def metric_names(features: tuple[str, ...]) -> dict[str, str]:
    """Feature -> gauge name: the prefix plus the feature with ``.:-`` turned into ``_``."""
    # ':' is legal in a metric name but reserved for recording rules, so it goes too.
    return {f: METRIC_PREFIX + _NOT_IN_METRIC_NAME.sub("_", f) for f in features}


def parse_exporter_options(raw: Mapping[str, Any] | None) -> ExporterOptions:
    """Typed options from ``{features, instances, simulator}``; ConfigError lists every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError([f"must be a mapping of features, instances, simulator; got {raw!r}"])
    problems = [
        f"{key}: unknown field (valid: features, instances, simulator)"
        for key in raw
        if key not in ("features", "instances", "simulator")
    ]
    features = _features(raw.get("features", list(DEFAULT_FEATURES)), problems)
    instances = raw.get("instances", DEFAULT_INSTANCES)
    if isinstance(instances, bool) or not isinstance(instances, int):
        problems.append(f"instances: must be an integer; got {instances!r}")
        instances = DEFAULT_INSTANCES
    elif not 1 <= instances <= MAX_INSTANCES:
        problems.append(f"instances: must be in [1, {MAX_INSTANCES}]; got {instances!r}")
    sim_raw = raw.get("simulator", {})
    simulator, sim_problems = parse_synthetic_options({} if sim_raw is None else sim_raw)
    problems += [p.replace("source", "simulator", 1) for p in sim_problems]
    if simulator is not None and features:
        try:
            Simulator(features, simulator)  # events that name an unknown feature
        except InvalidInputError as exc:
            problems.append(f"simulator: {exc}")
    if problems or simulator is None:
        raise ConfigError(problems)
    return ExporterOptions(features=features, instances=instances, simulator=simulator)


def _features(value: Any, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        problems.append(f"features: must be a non-empty list of feature names; got {value!r}")
        return ()
    bad = [f for f in value if not isinstance(f, str) or not FEATURE_NAME.match(f)]
    if bad:
        problems.append(f"features: names must match {FEATURE_NAME.pattern}; got {bad!r}")
        return ()
    features = tuple(value)
    names = metric_names(features)
    if len(set(names.values())) != len(features):
        # 'a.b' and 'a_b' would share a gauge; the features must stay apart.
        problems.append(f"features: two features map to the same gauge name: {names}")
    return features


@dataclass(frozen=True)
class _Snapshot:
    """What one refresh computed: the rows of every instance, or an outage."""

    at: float
    values: NDArray[np.float64] | None  # (n_instances, n_features); None during an outage


class SimulatorCollector(Collector):
    """Gauges of a simulator's instances, from the snapshot of the latest ``update``."""

    def __init__(self, simulator: Simulator, n_instances: int) -> None:
        if isinstance(n_instances, bool) or not isinstance(n_instances, int) or n_instances < 1:
            raise InvalidInputError(
                "The 'n_instances' parameter of SimulatorCollector must be an int in [1, inf). "
                f"Got {n_instances!r} instead."
            )
        self._simulator = simulator
        self._n_instances = n_instances
        self._names = metric_names(simulator.features)
        self._ids = [str(i) for i in range(n_instances)]
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def update(self, t: float) -> None:
        """Compute every instance's row at unix time ``t`` (or note an outage)."""
        values = (
            None if self._simulator.in_outage(t) else self._simulator.instant(t, self._n_instances)
        )
        with self._lock:
            self._snapshot = _Snapshot(at=float(t), values=values)

    def collect(self) -> Iterator[Metric]:
        """The latest snapshot as metric families; nothing before the first update."""
        with self._lock:
            snapshot = self._snapshot
        if snapshot is None:
            return
        outage = GaugeMetricFamily(
            METRIC_PREFIX + "outage",
            "1 while a scheduled outage of the simulated service is in force (no feature "
            "samples are served then).",
        )
        outage.add_metric([], 0.0 if snapshot.values is not None else 1.0)
        yield outage
        updated = GaugeMetricFamily(
            METRIC_PREFIX + "update_timestamp_seconds",
            "Unix time the served values were simulated for.",
        )
        updated.add_metric([], snapshot.at)
        yield updated
        if snapshot.values is None:
            return
        for j, feature in enumerate(self._simulator.features):
            gauge = GaugeMetricFamily(
                self._names[feature],
                f"Simulated {feature} of one instance of the simulated service.",
                labels=["instance_id"],
            )
            for i, instance in enumerate(self._ids):
                gauge.add_metric([instance], float(snapshot.values[i, j]))
            yield gauge


class SimulatorServer:
    """Serves a SimulatorCollector on ``/metrics`` and refreshes it in a background thread."""

    def __init__(
        self,
        options: ExporterOptions,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        refresh: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(refresh, bool) or not isinstance(refresh, int | float) or not refresh > 0:
            raise InvalidInputError(
                "The 'refresh' parameter of SimulatorServer must be a float in (0, inf). "
                f"Got {refresh!r} instead."
            )
        self.options = options
        self.simulator = Simulator(options.features, options.simulator)
        self.collector = SimulatorCollector(self.simulator, options.instances)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self.collector)
        self._host, self._port = host, port
        self._refresh = float(refresh)
        self._clock = clock
        self._stop = threading.Event()
        self._server: Any = None
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        """The port listened on (the one the OS chose when 0 was asked for)."""
        return int(self._server.server_address[1]) if self._server else self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        """Compute the first snapshot, then serve and keep refreshing."""
        # Before listening, so that no scrape ever sees an empty exporter.
        self.collector.update(self._clock())
        self._server, server_thread = start_http_server(
            self._port, addr=self._host, registry=self.registry
        )
        refresher = threading.Thread(target=self._refresh_loop, name="simulator", daemon=True)
        refresher.start()
        self._threads = [server_thread, refresher]

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._refresh):
            try:
                self.collector.update(self._clock())
            except Exception:  # keep serving the last snapshot rather than dying
                log.exception("simulated telemetry could not be refreshed")

    def stop(self) -> None:
        """Stop refreshing and serving; idempotent."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
