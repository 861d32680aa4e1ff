"""Fakes that meet the ports, for pipeline and bootstrap tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from monitor.checks import Problem
from monitor.errors import SnapshotNotFoundError
from monitor.ports import SourceKind
from monitor.records import Evaluation, RunFailure, Snapshot, Window


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


class MemoryStore:
    """An in-memory SnapshotStore with the same versioning rules as the real one."""

    def __init__(self) -> None:
        self.snapshots: dict[str, dict[int, Snapshot]] = {}
        self.live: dict[str, int] = {}

    def save(self, snapshot: Snapshot) -> Snapshot:
        versions = self.snapshots.setdefault(snapshot.model, {})
        version = max(versions, default=0) + 1
        stored = dataclasses.replace(snapshot, version=version, checksum=f"fake{version}")
        versions[version] = stored
        return stored

    def load(self, model: str, version: int | None = None) -> Snapshot:
        if version is None:
            version = self.live_version(model)
        try:
            return self.snapshots[model][version]  # type: ignore[index]
        except KeyError:
            raise SnapshotNotFoundError(f"no snapshot {model} v{version}") from None

    def versions(self, model: str) -> list[int]:
        return sorted(self.snapshots.get(model, {}))

    def live_version(self, model: str) -> int | None:
        return self.live.get(model)

    def set_live(self, model: str, version: int) -> None:
        self.load(model, version)
        self.live[model] = version

    def models(self) -> list[str]:
        return sorted(self.snapshots)


class MemoryHistory:
    """An in-memory History."""

    def __init__(self) -> None:
        self.evaluations: list[Evaluation] = []
        self.failures: list[RunFailure] = []

    def append(self, evaluation: Evaluation) -> None:
        self.evaluations.append(evaluation)

    def append_failure(self, failure: RunFailure) -> None:
        self.failures.append(failure)

    def recent(self, model: str, limit: int = 20) -> list[Evaluation]:
        return [e for e in reversed(self.evaluations) if e.model == model][:limit]

    def close(self) -> None:
        pass


def blobs(n: int, centers: np.ndarray, *, seed: int, scale: float = 0.3) -> np.ndarray:
    """``n`` points spread evenly over Gaussian blobs around ``centers`` (k, d)."""
    rng = np.random.default_rng(seed)
    k, d = centers.shape
    labels = np.arange(n) % k
    return centers[labels] + rng.normal(scale=scale, size=(n, d))
