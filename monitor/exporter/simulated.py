"""Gauges of a simulated service, for Prometheus to scrape (``kmeans-monitor simulate``).

They close the loop through Prometheus: the built-in simulator's instances become
gauges (one per feature, one series per instance), Prometheus scrapes them, and a
model with a ``prometheus`` source reads them back with ``query_range``.

``update`` computes a snapshot of every instance; ``collect`` only reads the latest one,
so a scrape never computes and never raises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.checks import check_int
from monitor.simulator import GAUGE_PREFIX, Simulator, gauge_names

__all__ = ["SimulatorCollector", "simulated_registry"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Snapshot:
    """What one update computed: the rows of every instance, or an outage."""

    at: float
    values: NDArray[np.float64] | None  # (n_instances, n_features); None during an outage


class SimulatorCollector(Collector):
    """Gauges of a simulator's instances, from the snapshot of the latest ``update``."""

    def __init__(self, simulator: Simulator, n_instances: int) -> None:
        self._n_instances = check_int(n_instances, "n_instances", low=1, owner="SimulatorCollector")
        self._simulator = simulator
        self._names = gauge_names(simulator.features)
        self._ids = [str(i) for i in range(n_instances)]
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def update(self, t: float) -> None:
        """Compute every instance's row at unix time ``t`` (or note an outage)."""
        sim = self._simulator
        values = None if sim.in_outage(t) else sim.instant(t, self._n_instances)
        with self._lock:
            self._snapshot = _Snapshot(at=float(t), values=values)

    def refresh_until(
        self, stop: threading.Event, every: float, clock: Callable[[], float]
    ) -> None:
        """Update every ``every`` seconds until ``stop`` is set; a failed update keeps the last."""
        while not stop.wait(every):
            try:
                self.update(clock())
            except Exception:  # keep serving the last snapshot rather than dying
                log.exception("simulated telemetry could not be refreshed")

    def collect(self) -> Iterator[Metric]:
        """The latest snapshot as metric families; nothing before the first update."""
        with self._lock:
            snapshot = self._snapshot
        if snapshot is None:
            return
        outage = GaugeMetricFamily(
            GAUGE_PREFIX + "outage",
            "1 while a scheduled outage of the simulated service is in force (no feature "
            "samples are served then).",
        )
        outage.add_metric([], 0.0 if snapshot.values is not None else 1.0)
        yield outage
        updated = GaugeMetricFamily(
            GAUGE_PREFIX + "update_timestamp_seconds",
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


def simulated_registry(collector: SimulatorCollector) -> CollectorRegistry:
    """A registry that serves ``collector`` alone."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    return registry
