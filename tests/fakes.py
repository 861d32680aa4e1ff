"""Fakes that meet the ports, for pipeline and bootstrap tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from monitor.checks import Problem
from monitor.errors import SnapshotNotFoundError
from monitor.ports import SnapshotStore, SourceKind
from monitor.records import Evaluation, RunFailure, RunHistory, Snapshot, VersionInfo, Window


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
    """An in-memory SnapshotStore with the same versioning and state rules as the real one."""

    def __init__(self) -> None:
        self.snapshots: dict[str, dict[int, Snapshot]] = {}
        self.live: dict[str, int] = {}
        self.pending: dict[str, int] = {}

    def save(self, snapshot: Snapshot, *, state: str | None = None) -> Snapshot:
        versions = self.snapshots.setdefault(snapshot.model, {})
        version = max(versions, default=0) + 1
        stored = dataclasses.replace(snapshot, version=version, checksum=f"fake{version}")
        versions[version] = stored
        if state == "live":
            self.live[snapshot.model] = version
            self.pending.pop(snapshot.model, None)
        elif state == "pending":
            self.pending[snapshot.model] = version
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

    def list_versions(self, model: str) -> list[VersionInfo]:
        return [
            VersionInfo(model, v, self._state(model, v), created_at=s.created_at, k=s.k)
            for v, s in sorted(self.snapshots.get(model, {}).items())
        ]

    def _state(self, model: str, version: int) -> str:
        if self.live.get(model) == version:
            return "live"
        return "pending" if self.pending.get(model) == version else "retired"

    def live_version(self, model: str) -> int | None:
        return self.live.get(model)

    def pending_version(self, model: str) -> int | None:
        return self.pending.get(model)

    def set_live(self, model: str, version: int) -> None:
        self.load(model, version)
        self.live[model] = version

    def set_pending(self, model: str, version: int | None) -> None:
        if version is None:
            self.pending.pop(model, None)
        else:
            self.load(model, version)
            self.pending[model] = version

    def approve(self, model: str, version: int | None = None) -> int:
        pending = self.pending.pop(model)
        assert version in (None, pending)
        self.live[model] = pending
        return pending

    def models(self) -> list[str]:
        return sorted(self.snapshots)


class MemoryHistory:
    """An in-memory History."""

    def __init__(self) -> None:
        self.evaluations: list[Evaluation] = []
        self.failures_: list[RunFailure] = []
        self.versions: list[tuple[str, int]] = []

    def append(self, evaluation: Evaluation) -> None:
        self.evaluations.append(evaluation)

    def append_failure(self, failure: RunFailure) -> None:
        self.failures_.append(failure)

    def record_version(self, snapshot: Snapshot) -> None:
        if (snapshot.model, snapshot.version) not in self.versions:
            self.versions.append((snapshot.model, snapshot.version))

    def reconcile(self, store: SnapshotStore) -> list[tuple[str, int]]:
        missing = [
            (m, v) for m in store.models() for v in store.versions(m) if (m, v) not in self.versions
        ]
        self.versions.extend(missing)
        return missing

    def recent(self, model: str, limit: int = 20) -> list[Evaluation]:
        return [e for e in reversed(self.evaluations) if e.model == model][:limit]

    def failures(self, model: str, limit: int = 20) -> list[RunFailure]:
        return [f for f in reversed(self.failures_) if f.model == model][:limit]

    def since(
        self, model: str, since: float, until: float | None = None, *, limit: int = 10_000
    ) -> RunHistory:
        def inside(t: float) -> bool:
            return t >= since and (until is None or t < until)

        evaluations = tuple(
            e for e in self.evaluations if e.model == model and inside(e.evaluated_at)
        )
        failures = tuple(f for f in self.failures_ if f.model == model and inside(f.at))
        return RunHistory(model, since, until, evaluations[:limit], failures[:limit])

    def close(self) -> None:
        pass


def blobs(n: int, centers: np.ndarray, *, seed: int, scale: float = 0.3) -> np.ndarray:
    """``n`` points spread evenly over Gaussian blobs around ``centers`` (k, d)."""
    rng = np.random.default_rng(seed)
    k, d = centers.shape
    labels = np.arange(n) % k
    return centers[labels] + rng.normal(scale=scale, size=(n, d))
