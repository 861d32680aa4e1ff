"""The ports the pipeline talks through. Adapters (sources, stores) meet these."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from monitor.checks import Problem
from monitor.errors import StoreError
from monitor.records import (
    Actor,
    CandidateFit,
    CountedRows,
    Evaluation,
    ReferenceBins,
    RunFailure,
    RunHistory,
    RunTotals,
    Snapshot,
    StoreEvent,
    VersionInfo,
    Window,
    WindowView,
)


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
class BoundedSource(TelemetrySource, Protocol):
    """A source whose reads start jobs elsewhere that can be stopped at a deadline (the
    spark source's Spark jobs): an optional port, which ``source_deadline`` looks for."""

    def deadline(self, seconds: float, model: str, why: str) -> AbstractContextManager[None]:
        """The source's work this thread starts inside, stopped once ``seconds`` have
        passed, which one log line says (``why``: what passed which deadline); what it
        was doing then raises RunCancelledError."""
        ...


def source_deadline(
    source: TelemetrySource, seconds: float, model: str, why: str
) -> AbstractContextManager[None]:
    """``source``'s deadline (``BoundedSource``) when it has one, else nothing to enter."""
    if isinstance(source, BoundedSource):
        return source.deadline(seconds, model, why)
    return nullcontext()


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

    def replay_problem(self, options: Any) -> str | None:
        """Why a source with these options cannot read past windows as they were (a
        backtest would replay something else), or None when it can."""
        ...

    def window_problems(self, options: Any, window: float) -> list[Problem]:
        """Problems of these options under the model's window of ``window`` seconds (a
        file's name time of a date alone under a window shorter than a day), named as
        ``parse_options`` names them; no I/O."""
        ...

    def warnings(self, model: str, options: Any) -> list[str]:
        """What to warn of in these options (a server's certificate not checked), once
        per command: ``build`` runs twice in one (the configuration's check, the run)."""
        ...


@runtime_checkable
class SnapshotStore(Protocol):
    """Versioned, immutable snapshots; per model one live and at most one pending version.

    Every other stored version is retired. ``LivePointerError`` (a ``StoreError``)
    means versions exist but none is usably live; its message names the fix.
    """

    def save(
        self,
        snapshot: Snapshot,
        *,
        state: str | None = None,
        expect_live: int | None = None,
        floor: int = 0,
        by: Actor | None = None,
    ) -> Snapshot:
        """Persist atomically as the version after the newest stored one and after
        ``floor`` (``History.highest_version``: numbers of versions moved out of the
        store are never given again, and a warning says which were skipped); return it
        with version and checksum set.

        ``state`` "live" or "pending" also points that pointer at it (a new live
        version clears the pending one); None stores it retired. Retention may then
        remove old retired versions. With ``expect_live``, the save happens only while
        that version (or none) is live, checked under the lock the pointers move under:
        ``LiveMovedError`` (nothing stored) when an approval or a rollback came first.
        Saved live with ``by``, the save is recorded as a ``promote`` event (``events``).
        """
        ...

    def load(self, model: str, version: int | None = None) -> Snapshot:
        """Load and verify a version (the live one when ``version`` is None)."""
        ...

    def versions(self, model: str) -> list[int]:
        """All stored versions of a model, ascending."""
        ...

    def list_versions(self, model: str) -> list[VersionInfo]:
        """Every stored version with its state; a corrupt one is marked, never raised."""
        ...

    def live_version(self, model: str) -> int | None:
        """The live version; None only when no version is stored ("no model yet")."""
        ...

    def pending_version(self, model: str) -> int | None:
        """The candidate awaiting approval, or None."""
        ...

    def set_live(self, model: str, version: int, *, by: Actor | None = None) -> None:
        """Make an existing, intact version live, atomically (rollback; recorded as a
        ``rollback`` event with ``by``)."""
        ...

    def set_pending(self, model: str, version: int | None, *, by: Actor | None = None) -> None:
        """Mark an existing version as awaiting approval (None: no candidate; a pending
        one withdrawn so is recorded as a ``reject`` event with ``by``)."""
        ...

    def approve(self, model: str, version: int | None = None, *, by: Actor | None = None) -> int:
        """Make the pending version (which ``version`` must name, if given) live; return it.
        Recorded as an ``approve`` event with ``by``."""
        ...

    def events(self, model: str) -> list[StoreEvent]:
        """Who approved, rejected, rolled back, promoted, made pending or superseded which
        version, and when: oldest first, each recorded under the lock the pointer moved
        under (none: no record)."""
        ...

    def models(self) -> list[str]:
        """Models that have at least one snapshot."""
        ...


def rollback_target(
    store: SnapshotStore,
    model: str,
    *,
    broken: int | None,
    loaded: int | None = None,
    scored: Collection[int] = (),
) -> int | None:
    """The version to roll back to while the live one (``broken``; None: unreadable)
    cannot be used: the store's error and the model page both advise it. ``loaded`` (what
    a daemon still scores) when it loads, else the newest version that was live and loads
    (``was_live``; ``scored``: the versions the run history saw live, which the store's
    pointers cannot give; and ``made_live``, those its events show). Never a candidate
    that was not live: under manual retraining the newest versions are often rejected
    ones (exB). None when none loads."""
    try:
        infos = store.list_versions(model)
    except (StoreError, OSError):
        infos = []
    live_once = was_live(infos, {*scored, *made_live(store, model)})
    sound = [i.version for i in reversed(infos) if i.corrupt is None and i.version in live_once]
    for version in [loaded, *sound]:
        if version is None or version == broken:
            continue
        try:
            store.load(model, version)  # a store keeps what it verified
        except StoreError:
            continue
        return version
    return None


def made_live(store: SnapshotStore, model: str) -> set[int]:
    """The versions the store's events show made live (approved, rolled back to,
    promoted); none when it has no record or cannot read it (the callers' other
    evidence, ``was_live``, still holds)."""
    try:
        return {e.to_version for e in store.events(model) if e.to_version is not None}
    except (StoreError, OSError):
        return set()


def was_live(infos: list[VersionInfo], scored: Collection[int] = ()) -> set[int]:
    """The versions of a listing known to have been live: the live one, a first model,
    one a stored version was trained from (what the store keeps says no more), or one in
    ``scored``, the versions the run history saw live (``History.live_versions``). A
    retired version outside it was a candidate withdrawn while pending (rejected, or
    replaced by a newer one), or one made live and moved off before a run scored it or a
    version was trained from it."""
    parents = {i.parent_version for i in infos}
    return {
        i.version
        for i in infos
        if i.state == "live"
        or i.version in scored
        or (i.state != "pending" and (i.version in parents or i.reason in ("initial", "rollback")))
    }


@runtime_checkable
class History(Protocol):
    """Append-only record of evaluations, failed runs and stored versions."""

    def append(self, evaluation: Evaluation) -> None: ...

    def append_failure(self, failure: RunFailure) -> None: ...

    def record_version(self, snapshot: Snapshot) -> None:
        """Record a version the store just saved (idempotent)."""
        ...

    def reconcile(self, store: SnapshotStore) -> list[tuple[str, int]]:
        """Record the versions found in ``store`` that have no row; return them."""
        ...

    def highest_version(self, model: str) -> int:
        """The newest version of a model it has recorded, as a version or named by a
        run (0: none): the floor of the next version's number (``SnapshotStore.save``)."""
        ...

    def live_versions(self, model: str) -> set[int]:
        """The versions of a model its runs found live (scored) or made live (promoted):
        what was live, as far as the runs it holds saw (``was_live``)."""
        ...

    def recent(self, model: str, limit: int = 20) -> list[Evaluation]:
        """The latest evaluations of a model, newest first."""
        ...

    def failures(self, model: str, limit: int = 20) -> list[RunFailure]:
        """The latest failed runs of a model, newest first."""
        ...

    def totals(self, model: str) -> RunTotals:
        """Every run of a model it holds, counted as the exporter counts runs."""
        ...

    def since(
        self,
        model: str,
        since: float,
        until: float | None = None,
        *,
        limit: int = 10_000,
        oldest: bool = False,
    ) -> RunHistory:
        """Evaluations and failures in ``[since, until)``, oldest first: at most ``limit``
        of each, the newest ones, or with ``oldest`` the oldest ones (an indexed query:
        when a run of failures began)."""
        ...

    def close(self) -> None: ...


class Clock(Protocol):
    """Wall-clock time in unix seconds; injected so that tests control it."""

    def now(self) -> float: ...


@runtime_checkable
class Engine(Protocol):
    """Where the measure step's numeric work runs (``engine:`` of a model).

    Without one the pipeline computes in this process (``engine: local``). An engine
    gives the same records from the same scaled rows, whatever it spreads them over.
    Rows come as an array held here, or as ``CountedRows`` that stay on the engine
    (a window whose ``remote`` rows the engine reads where they are).
    """

    @property
    def name(self) -> str:
        """The ``engine`` value that selects it (the ``engine`` label of the job metrics)."""
        ...

    def score(
        self,
        Xs: NDArray[np.floating[Any]] | CountedRows,
        snapshot: Snapshot,
        *,
        seed: int,
        silhouette_sample: int,
        working_memory_mib: float,
        thresholds: Mapping[str, float] | None = None,
        compare: tuple[NDArray[np.floating[Any]], ReferenceBins] | None = None,
    ) -> WindowView:
        """Every SLI of ``snapshot`` on the scaled rows, as ``pipeline.score`` computes them."""
        ...

    def candidate(
        self,
        Xs: NDArray[np.floating[Any]] | CountedRows,
        live: Snapshot,
        *,
        max_iter: int,
        tol: float,
        working_memory_mib: float,
        restarts: int = 0,
        seed: int = 0,
    ) -> CandidateFit:
        """Lloyd iterations on the scaled rows warm-started from the live centres; with
        ``restarts``, k-means++ restarts on a sample that replace it when they do better
        on every row (``pipeline.train.train_candidate``'s rule). The warm start's
        centres come back too (``CandidateFit.warm``), whichever won."""
        ...

    def fit(
        self,
        Xs: NDArray[np.floating[Any]] | CountedRows,
        init: NDArray[np.floating[Any]],
        *,
        max_iter: int,
        tol: float,
        cosine: bool,
        working_memory_mib: float,
    ) -> NDArray[np.floating[Any]]:
        """Lloyd iterations over every scaled row from ``init`` (a fit on a sample)."""
        ...

    def deadline(self, seconds: float, model: str) -> AbstractContextManager[None]:
        """A run of ``model`` inside, its jobs stopped once ``seconds`` have passed: the
        run then fails as RunCancelledError (``schedule.run_timeout``)."""
        ...

    def close(self) -> None:
        """Release the engine's sessions."""
        ...
