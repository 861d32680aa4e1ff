"""The ports the pipeline talks through. Adapters (sources, stores) meet these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from monitor.checks import Problem
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
class SourceKind(Protocol):
    """One kind of telemetry source, as the configuration names it (``source.kind``).

    The configuration hands each model's source options to its kind once, when it is
    parsed, so that every problem of a file is reported in one pass; the composition
    root then builds the source from the typed options.
    """

    @property
    def name(self) -> str:
        """The ``kind`` that selects it."""
        ...

    def parse_options(
        self, raw: Mapping[str, Any], features: Sequence[str] | None
    ) -> tuple[Any, list[Problem]]:
        """The kind's typed options from a mapping of options, and every problem found.

        No I/O. Problems name their field relative to the mapping ("events[2].kind").
        ``features`` are the model's, or None when they are invalid themselves (checks
        that need them are skipped). The options are None exactly when there are problems.
        """
        ...

    def build(self, model: str, features: tuple[str, ...], options: Any) -> TelemetrySource:
        """A source for ``model`` from options that ``parse_options`` returned."""
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
