"""The ports the pipeline talks through. Adapters (sources, stores) meet these."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from monitor.records import Evaluation, RunFailure, Snapshot, Window


@runtime_checkable
class TelemetrySource(Protocol):
    """Delivers windows of telemetry for one model."""

    def read_window(self, start: float, end: float) -> Window:
        """Return the rows observed in ``[start, end)`` (unix seconds).

        Raises ``SourceError`` (or ``SourceTimeoutError``) when the source cannot answer,
        and ``SchemaError`` when it answers with columns that do not match its features.
        """
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class SnapshotStore(Protocol):
    """Versioned, immutable snapshots with one live version per model."""

    def save(self, snapshot: Snapshot) -> Snapshot:
        """Persist atomically; return the snapshot with its version and checksum set.

        The version is one more than the highest existing version of the model,
        whatever ``snapshot.version`` says.
        """
        ...

    def load(self, model: str, version: int | None = None) -> Snapshot:
        """Load a version (the live one when ``version`` is None); verify its checksum."""
        ...

    def versions(self, model: str) -> list[int]:
        """All stored versions of a model, ascending."""
        ...

    def live_version(self, model: str) -> int | None:
        """The live version, or None when the model has no snapshot yet."""
        ...

    def set_live(self, model: str, version: int) -> None:
        """Make an existing version live, atomically."""
        ...

    def models(self) -> list[str]:
        """Models that have at least one snapshot."""
        ...


@runtime_checkable
class History(Protocol):
    """Append-only record of evaluations and failed runs."""

    def append(self, evaluation: Evaluation) -> None: ...

    def append_failure(self, failure: RunFailure) -> None: ...

    def recent(self, model: str, limit: int = 20) -> list[Evaluation]:
        """The latest evaluations of a model, newest first."""
        ...

    def close(self) -> None: ...


class Clock(Protocol):
    """Wall-clock time in unix seconds; injected so that tests control it."""

    def now(self) -> float: ...
