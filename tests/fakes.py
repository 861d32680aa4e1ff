"""Fakes that meet the ports, for pipeline and bootstrap tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from monitor.checks import Problem
from monitor.ports import SourceKind
from monitor.records import Window
from monitor.store.memory import MemoryHistory, MemorySnapshotStore


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeSource:
    """Serves windows produced by ``make(start, end)``; raises whatever ``make`` raises."""

    def __init__(
        self, features: tuple[str, ...], make: Callable[[float, float], np.ndarray]
    ) -> None:
        self.features = features
        self.make = make
        self.calls: list[tuple[float, float]] = []
        self.closed = False

    def read_window(self, start: float, end: float) -> Window:
        self.calls.append((start, end))
        X = self.make(start, end)
        return Window("m", start, end, self.features, X, label=f"fake[{start:.0f},{end:.0f})")

    def close(self) -> None:
        self.closed = True


class FakeKind:
    """A source kind for settings whose source the test passes itself; any options go."""

    name = "fake"

    def parse_options(
        self, raw: Mapping[str, Any], features: Sequence[str] | None
    ) -> tuple[Any, list[Problem]]:
        return MappingProxyType(dict(raw)), []

    def build(self, model: str, features: tuple[str, ...], options: Any) -> FakeSource:
        return FakeSource(features, lambda start, end: np.empty((0, len(features))))


# The registry to parse settings with when a test hands the pipeline its own source.
FAKE_SOURCES: Mapping[str, SourceKind] = MappingProxyType({"fake": FakeKind()})


# The package's in-memory adapters, under the names the tests import (MemoryHistory
# keeps its own name).
MemoryStore = MemorySnapshotStore
__all__ = [
    "FAKE_SOURCES",
    "FakeClock",
    "FakeKind",
    "FakeSource",
    "MemoryHistory",
    "MemoryStore",
    "blobs",
]


def blobs(n: int, centers: np.ndarray, *, seed: int, scale: float = 0.3) -> np.ndarray:
    """``n`` points spread evenly over Gaussian blobs around ``centers`` (k, d)."""
    rng = np.random.default_rng(seed)
    k, d = centers.shape
    labels = np.arange(n) % k
    return centers[labels] + rng.normal(scale=scale, size=(n, d))
