"""The built-in telemetry simulator: regimes as clusters, daily seasonality, drift events.

Each regime is an operating point of a service (quiet night, busy day, degraded, ...).
Features are drawn in a latent space and mapped to service-metric-like values: positive
and right-skewed (``exp`` of the latent value) for levels such as latencies or request
rates, in ``(0, 1)`` (logistic of the latent value) for ratios such as CPU or error
ratios. Which mapping and which typical level a feature gets is guessed from its name.

Pure: numpy and the standard library, no clock, no files, no network. The synthetic
source (monitor.sources.synthetic) serves its windows; the ``simulate`` command serves
its instants as gauges (monitor.exporter.simulated, wired in monitor.bootstrap).
"""

from __future__ import annotations

from monitor.simulator._options import (
    DEFAULT_ROWS_PER_WINDOW,
    EVENT_KINDS,
    MAX_REGIMES,
    MAX_SHIFT,
    Event,
    SimulatorOptions,
    options_problems,
)
from monitor.simulator._parse import parse_options
from monitor.simulator._service import (
    DEFAULT_FEATURES,
    GAUGE_PREFIX,
    ServiceOptions,
    gauge_names,
    parse_service_options,
)
from monitor.simulator._simulator import SimulatedRows, Simulator

__all__ = [
    "DEFAULT_FEATURES",
    "DEFAULT_ROWS_PER_WINDOW",
    "EVENT_KINDS",
    "GAUGE_PREFIX",
    "MAX_REGIMES",
    "MAX_SHIFT",
    "Event",
    "ServiceOptions",
    "SimulatedRows",
    "Simulator",
    "SimulatorOptions",
    "gauge_names",
    "options_problems",
    "parse_options",
    "parse_service_options",
]
