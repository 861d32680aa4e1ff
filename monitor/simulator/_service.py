"""A simulated service as the ``simulate`` command serves it: features, instances, options.

Each feature becomes a gauge named ``simulated_<feature>`` with one series per instance.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.checks import FEATURE_NAME, Mismatch, Problem, check_int, check_name, read_fields
from monitor.errors import ConfigError
from monitor.simulator._options import SimulatorOptions
from monitor.simulator._parse import parse_options

__all__ = [
    "DEFAULT_FEATURES",
    "GAUGE_PREFIX",
    "ServiceOptions",
    "gauge_names",
    "parse_service_options",
]

# The demo's checkout service: what someone trying the stack expects to see.
DEFAULT_FEATURES = ("latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps", "error_ratio")
DEFAULT_INSTANCES = 20
MAX_INSTANCES = 10_000  # bounds the instance_id label
# Not `kmeans_`: that prefix is the daemon's metrics contract (docs/metrics.md).
GAUGE_PREFIX = "simulated_"
_NOT_IN_METRIC_NAME = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class ServiceOptions:
    """What is simulated: the features, how many instances, the simulator's options."""

    features: tuple[str, ...] = DEFAULT_FEATURES
    instances: int = DEFAULT_INSTANCES
    simulator: SimulatorOptions = field(default_factory=SimulatorOptions)


def gauge_names(features: tuple[str, ...]) -> dict[str, str]:
    """Feature -> gauge name: the prefix plus the feature with ``.:-`` turned into ``_``."""
    # ':' is legal in a metric name but reserved for recording rules, so it goes too.
    return {f: GAUGE_PREFIX + _NOT_IN_METRIC_NAME.sub("_", f) for f in features}


def parse_service_options(raw: Any) -> ServiceOptions:
    """Typed options from ``{features, instances, simulator}`` (None: the defaults).

    Raises ConfigError listing every problem, each with its field.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            [
                "top level: must be a mapping of features, instances and simulator; "
                f"got a {type(raw).__name__}"
            ]
        )
    convert = {"features": _features, "instances": _instances}
    values, problems = read_fields(raw, ("features", "instances", "simulator"), convert)
    # Events are checked against the features only when those are valid.
    features = values.get("features") if raw.get("features") is not None else DEFAULT_FEATURES
    simulator = values.pop("simulator", {})
    options: SimulatorOptions | None = None
    if isinstance(simulator, Mapping):
        options, found = parse_options(simulator, features)
        problems += [Problem(f"simulator.{p.field}", p.expected, p.got) for p in found]
    else:
        problems.append(
            Problem("simulator", "a mapping of the synthetic source's options", simulator)
        )
    if problems or options is None:
        raise ConfigError([p.config() for p in problems])
    return ServiceOptions(**values, simulator=options)


def _instances(value: Any, name: str) -> int:
    return check_int(value, name, low=1, high=MAX_INSTANCES)


def _features(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise Mismatch(Problem(name, "a non-empty list of feature names", value))
    for i, feature in enumerate(value):
        check_name(feature, f"{name}[{i}]", FEATURE_NAME)
    if len(set(gauge_names(tuple(value)).values())) != len(value):
        # 'a.b' and 'a_b' would share a gauge; the features must stay apart.
        raise Mismatch(Problem(name, "names that stay distinct as gauges (.:- become _)", value))
    return tuple(value)
