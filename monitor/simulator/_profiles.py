"""What a feature's name says about its values: a ratio or a level, and how large."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Profile", "feature_profile"]


@dataclass(frozen=True)
class Profile:
    """How one feature is simulated."""

    bounded: bool  # a ratio in (0, 1) (logistic of the latent value), else a level (exp)
    level: float  # typical latent value: the logit of the ratio, or the log of the level
    group: str  # features of one group share their regime levels (latency percentiles)


def feature_profile(name: str) -> Profile:
    """The profile guessed from a feature's name (docs/sources.md lists the rules)."""
    n = name.lower()
    group = "latency" if _is_latency(n) else name
    if n.endswith(("ratio", "fraction", "share")) or _has(n, "cpu", "utili"):
        p = _typical_ratio(n)
        return Profile(True, math.log(p / (1 - p)), group)
    return Profile(False, math.log(_typical_level(n)), group)


def _has(name: str, *parts: str) -> bool:
    return any(part in name for part in parts)


def _is_latency(n: str) -> bool:
    return n.endswith("_ms") or _has(n, "latency", "duration")


def _typical_ratio(n: str) -> float:
    if _has(n, "error", "fail", "drop"):
        return 0.01
    if _has(n, "cpu", "utili", "mem"):
        return 0.4
    return 0.2


def _typical_level(n: str) -> float:
    if "byte" in n:
        return 5e5
    if _is_latency(n):
        seconds = n.endswith("_seconds") or not (n.endswith("_ms") or "latency" in n)
        level = 0.04 if seconds else 40.0
        return 4 * level if _has(n, "p99", "p95", "max") else level
    if _has(n, "rps", "qps", "request", "throughput") or n.endswith("_rate"):
        return 300.0
    if _has(n, "conn", "thread", "queue", "inflight"):
        return 20.0
    return 10.0
