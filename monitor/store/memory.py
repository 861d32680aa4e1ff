"""In-memory snapshot store and history: the ports' rules without a disk, for backtests.

``MemorySnapshotStore`` follows ``DirectorySnapshotStore``'s rules: versions numbered
max + 1 (above the history's floor) and never reused, one live and at most one pending
version (a new live version clears the pending one; a pending pointer equal to the live
one is no candidate), approval guarded by the reviewed version, retention after each
save, and the same errors (``SnapshotNotFoundError``, ``LivePointerError`` when versions
exist but none is live, ``InvalidInputError`` for a refused state change).
``MemoryHistory`` follows ``SQLiteHistory``: newest first for ``recent``/``failures``,
oldest first for ``since`` (the newest ``limit`` when there are more), idempotent
``record_version`` and ``reconcile`` from the store's listing. Both are thread-safe;
nothing outlives the process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from monitor.checks import check_choice, check_float, check_int
from monitor.errors import InvalidInputError, LivePointerError, SnapshotNotFoundError
from monitor.ports import SnapshotStore
from monitor.records import (
    Actor,
    Evaluation,
    RunFailure,
    RunHistory,
    RunTotals,
    Snapshot,
    StoreEvent,
    VersionInfo,
)
from monitor.store._names import check_model_name
from monitor.store.snapshots import (
    RetentionPolicy,
    check_approvable,
    check_unmoved,
    next_version,
    pending_moves,
    say_skipped,
)

__all__ = ["AppendedRuns", "MemoryHistory", "MemorySnapshotStore"]

_STORE = "MemorySnapshotStore"
_HISTORY = "MemoryHistory"
_T = TypeVar("_T", Evaluation, RunFailure)


@dataclass
class _Model:
    """One model's versions and pointers."""

    versions: dict[int, Snapshot] = dataclasses.field(default_factory=dict)
    live: int | None = None
    pending: int | None = None
    events: list[StoreEvent] = dataclasses.field(default_factory=list)


def _checksum(s: Snapshot, version: int) -> str:
    """A sha256 over what tells versions apart (identity, scalars, the arrays' bytes)."""
    h = hashlib.sha256(f"{s.model}\x1f{version}\x1f{s.created_at!r}\x1f{s.seed}".encode())
    for array in (s.centers, s.scaler.center, s.scaler.scale, s.reference_shares, s.sample):
        h.update(array.tobytes())
    return f"sha256:{h.hexdigest()}"


class MemorySnapshotStore:
    """Snapshots in a dict; meets ``SnapshotStore`` with the directory store's rules."""

    def __init__(
        self,
        *,
        retention: RetentionPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """An empty store; ``retention`` prunes after each save, ages measured by ``clock``."""
        if retention is not None and not isinstance(retention, RetentionPolicy):
            raise InvalidInputError(
                f"The 'retention' parameter of {_STORE} must be a RetentionPolicy or None. "
                f"Got {type(retention).__name__} instead."
            )
        self._models: dict[str, _Model] = {}
        self._retention = retention
        self._clock = clock
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"{_STORE}({len(self._models)} model(s))"

    # ------------------------------------------------------------------ queries

    def models(self) -> list[str]:
        """Models that have at least one snapshot, sorted by name."""
        with self._lock:
            return sorted(name for name, m in self._models.items() if m.versions)

    def versions(self, model: str) -> list[int]:
        """All stored versions of a model, ascending (empty for an unknown model)."""
        with self._lock:
            return sorted(self._get(model, "versions").versions)

    def live_version(self, model: str) -> int | None:
        """The live version; None only when no version is stored ("no model yet")."""
        with self._lock:
            m = self._get(model, "live_version")
            if not m.versions:
                return None
            if m.live is None:
                raise LivePointerError(
                    f"model {model!r}: no version is live; stored versions: "
                    f"{sorted(m.versions)}. Make one live with set_live"
                )
            return m.live

    def pending_version(self, model: str) -> int | None:
        """The candidate awaiting approval, or None."""
        with self._lock:
            m = self._get(model, "pending_version")
            return None if m.pending == m.live else m.pending

    def load(self, model: str, version: int | None = None) -> Snapshot:
        """A stored version (the live one when ``version`` is None)."""
        with self._lock:
            m = self._get(model, "load")
            if version is not None:
                version = check_int(version, "version", low=1, owner=f"{_STORE}.load")
            if not m.versions:
                raise SnapshotNotFoundError(
                    f"no snapshot of model {model!r} in memory; models with snapshots: "
                    f"{self.models()}"
                )
            if version is None:
                live = self.live_version(model)
                assert live is not None  # versions exist: a live one, or LivePointerError
                version = live
            return self._version(model, m, version)

    def list_versions(self, model: str) -> list[VersionInfo]:
        """Every stored version with its state, ascending."""
        with self._lock:
            m = self._get(model, "list_versions")
            return [VersionInfo.of(s, self._state(m, v)) for v, s in sorted(m.versions.items())]

    def events(self, model: str) -> list[StoreEvent]:
        """Who moved a pointer of ``model``, and when; oldest first."""
        with self._lock:
            return list(self._get(model, "events").events)

    # ------------------------------------------------------------------ writes

    def save(
        self,
        snapshot: Snapshot,
        *,
        state: str | None = None,
        expect_live: int | None = None,
        floor: int = 0,
        by: Actor | None = None,
    ) -> Snapshot:
        """Store ``snapshot`` as a new version (``next_version``), live or pending if
        asked; return it. ``expect_live``, ``floor`` and ``by``: see the port."""
        owner = f"{_STORE}.save"
        if not isinstance(snapshot, Snapshot):
            raise InvalidInputError(
                f"The 'snapshot' parameter of {owner} must be a Snapshot. "
                f"Got {type(snapshot).__name__} instead."
            )
        if state is not None:
            check_choice(state, "state", ("live", "pending"), owner=owner)
        check_float(snapshot.created_at, "snapshot.created_at", owner=owner)
        floor = check_int(floor, "floor", low=0, owner=owner)
        with self._lock:
            m = self._models.setdefault(check_model_name(snapshot.model, owner), _Model())
            if expect_live is not None:
                check_unmoved(snapshot.model, expect_live, m.live)
            version = next_version(list(m.versions), floor)
            say_skipped(snapshot.model, version, list(m.versions))
            stored = dataclasses.replace(
                snapshot, version=version, checksum=_checksum(snapshot, version)
            )
            m.versions[version] = stored
            self._record_pending(m, snapshot.model, state, by, version)
            if state == "live":
                self._record(m, snapshot.model, "promote", by, version, m.live, version)
                m.live, m.pending = version, None
            elif state == "pending":
                m.pending = version
            self._prune(m)
            return stored

    def set_live(self, model: str, version: int, *, by: Actor | None = None) -> None:
        """Make an existing version live (a pending one stops being pending): a rollback."""
        with self._lock:
            m, version = self._target(model, version, "set_live")
            self._record(m, model, "rollback", by, version, m.live, version)
            m.live = version
            if m.pending == version:
                m.pending = None

    def set_pending(self, model: str, version: int | None, *, by: Actor | None = None) -> None:
        """Mark an existing version as the candidate awaiting approval (None: none, a
        rejection of the pending one)."""
        with self._lock:
            if version is None:
                m = self._get(model, "set_pending")
                if (pending := self.pending_version(model)) is not None:
                    self._record(m, model, "reject", by, pending, m.live, m.live)
                m.pending = None
                return
            m, version = self._target(model, version, "set_pending")
            if m.live == version:
                raise InvalidInputError(
                    f"model {model!r}: v{version} is the live version; it cannot be pending"
                )
            self._record_pending(m, model, "pending", by, version)
            m.pending = version

    def approve(self, model: str, version: int | None = None, *, by: Actor | None = None) -> int:
        """Make the pending version (which ``version``, if given, must name) live; return it."""
        owner = f"{_STORE}.approve"
        with self._lock:
            m = self._get(model, "approve")
            if version is not None:
                version = check_int(version, "version", low=1, owner=owner)
            pending = None if m.pending == m.live else m.pending
            pending = check_approvable(
                model, pending, version, live=m.live, versions=sorted(m.versions)
            )
            self._record(m, model, "approve", by, pending, m.live, pending)
            m.live, m.pending = pending, None
            return pending

    # ------------------------------------------------------------------ internals

    def _record(
        self,
        m: _Model,
        model: str,
        action: str,
        by: Actor | None,
        version: int,
        before: int | None,
        after: int | None,
    ) -> None:
        """Keep the event of a pointer about to move (nothing without ``by``)."""
        if by is not None:
            m.events.append(by.event(model, self._clock(), action, version, before, after))

    def _record_pending(
        self, m: _Model, model: str, state: str | None, by: Actor | None, version: int
    ) -> None:
        """Keep the events of the pending pointer about to move (``pending_moves``)."""
        pending = None if m.pending == m.live else m.pending
        for action, v, before, after in pending_moves(state, version, m.live, pending):
            self._record(m, model, action, by, v, before, after)

    def _get(self, model: str, method: str) -> _Model:
        name = check_model_name(model, f"{_STORE}.{method}")
        return self._models.get(name) or _Model()

    def _target(self, model: str, version: int, method: str) -> tuple[_Model, int]:
        owner = f"{_STORE}.{method}"
        name = check_model_name(model, owner)
        version = check_int(version, "version", low=1, owner=owner)
        m = self._models.get(name) or _Model()
        self._version(name, m, version)
        return m, version

    @staticmethod
    def _version(model: str, m: _Model, version: int) -> Snapshot:
        try:
            return m.versions[version]
        except KeyError:
            raise SnapshotNotFoundError(
                f"model {model!r} has no version {version}; stored versions: {sorted(m.versions)}"
            ) from None

    @staticmethod
    def _state(m: _Model, version: int) -> str:
        if version == m.live:
            return "live"
        return "pending" if version == m.pending else "retired"

    def _prune(self, m: _Model) -> None:
        """Retention, as the directory store applies it after each save."""
        policy = self._retention
        if policy is None or (policy.versions is None and policy.age is None):
            return
        ordered = sorted(m.versions)
        live = m.versions.get(m.live) if m.live is not None else None
        parent = None if live is None else live.parent_version
        keep = {m.live, parent, m.pending, *ordered[-(policy.versions or 1) :]}
        now = self._clock()
        for v in ordered:
            young = policy.age is not None and now - m.versions[v].created_at < policy.age
            if v not in keep and not young:
                del m.versions[v]


class AppendedRuns:
    """Evaluations and failed runs appended in memory, checked as the ``History`` port asks."""

    def __init__(self, name: str) -> None:
        """Empty lists; ``name`` is the class that errors name."""
        self._name = name
        self._evaluations: list[Evaluation] = []
        self._failures: list[RunFailure] = []
        self._lock = threading.Lock()

    @property
    def evaluations(self) -> list[Evaluation]:
        """The evaluations appended here, oldest first (a copy)."""
        with self._lock:
            return list(self._evaluations)

    def append(self, evaluation: Evaluation) -> None:
        """Record one evaluation."""
        if not isinstance(evaluation, Evaluation):
            raise InvalidInputError(
                f"The 'evaluation' parameter of {self._name}.append must be an Evaluation. "
                f"Got {type(evaluation).__name__} instead."
            )
        check_model_name(evaluation.model, f"{self._name}.append")
        with self._lock:
            self._evaluations.append(evaluation)

    def totals(self, model: str) -> RunTotals:
        """Every run of a model appended here, counted."""
        check_model_name(model, f"{self._name}.totals")
        with self._lock:
            evaluations = [e for e in self._evaluations if e.model == model]
            failures = [f for f in self._failures if f.model == model]
        return RunTotals.of(evaluations, failures)

    def live_versions(self, model: str) -> set[int]:
        """The versions of a model the runs appended here scored or promoted."""
        check_model_name(model, f"{self._name}.live_versions")
        with self._lock:
            runs = [e for e in self._evaluations if e.model == model]
        promoted = {e.candidate_version for e in runs if e.promoted}
        return {e.live_version for e in runs} | {v for v in promoted if v is not None}

    def append_failure(self, failure: RunFailure) -> None:
        """Record one failed run."""
        if not isinstance(failure, RunFailure):
            raise InvalidInputError(
                f"The 'failure' parameter of {self._name}.append_failure must be a RunFailure. "
                f"Got {type(failure).__name__} instead."
            )
        check_model_name(failure.model, f"{self._name}.append_failure")
        with self._lock:
            self._failures.append(failure)


class MemoryHistory(AppendedRuns):
    """Evaluations, failed runs and version rows in lists; meets ``History``."""

    def __init__(self) -> None:
        super().__init__(_HISTORY)
        self._versions: dict[tuple[str, int], str | None] = {}  # -> checksum

    def __repr__(self) -> str:
        return f"{_HISTORY}({len(self._evaluations)} evaluation(s))"

    def record_version(self, snapshot: Snapshot) -> None:
        """Record a stored version; recording it again is harmless."""
        owner = f"{_HISTORY}.record_version"
        if not isinstance(snapshot, Snapshot) or not snapshot.checksum:
            raise InvalidInputError(
                f"The 'snapshot' parameter of {owner} must be a Snapshot as the store "
                f"returned it (version and checksum set). Got {snapshot!r:.60} instead."
            )
        check_int(snapshot.version, "snapshot.version", low=1, owner=owner)
        with self._lock:
            self._versions[(snapshot.model, snapshot.version)] = snapshot.checksum

    def reconcile(self, store: SnapshotStore) -> list[tuple[str, int]]:
        """Add the rows missing (or whose checksum differs) for versions in ``store``."""
        found = [info for model in store.models() for info in store.list_versions(model)]
        added = []
        with self._lock:
            for i in found:
                key = (i.model, i.version)
                known = key in self._versions
                if not known or (i.checksum is not None and self._versions[key] != i.checksum):
                    self._versions[key] = i.checksum
                    added.append(key)
        return added

    def recorded_versions(self, model: str) -> list[int]:
        """The versions of a model that have a row, ascending."""
        check_model_name(model, f"{_HISTORY}.recorded_versions")
        with self._lock:
            return sorted(v for m, v in self._versions if m == model)

    def highest_version(self, model: str) -> int:
        """The newest version of a model with a row, or named by a run (0: none)."""
        check_model_name(model, f"{_HISTORY}.highest_version")
        with self._lock:
            named = [v for m, v in self._versions if m == model]
            for e in self._evaluations:
                if e.model == model:
                    named += [v for v in (e.live_version, e.candidate_version) if v is not None]
        return max(named, default=0)

    def recent(self, model: str, limit: int = 20) -> list[Evaluation]:
        """The latest evaluations of a model, the last written first (SQLiteHistory.recent)."""
        limit = check_int(limit, "limit", low=1, owner=f"{_HISTORY}.recent")
        with self._lock:
            mine = [e for e in self._evaluations if e.model == model]
        return mine[::-1][:limit]

    def failures(self, model: str, limit: int = 20) -> list[RunFailure]:
        """The latest failed runs of a model, the last written first."""
        limit = check_int(limit, "limit", low=1, owner=f"{_HISTORY}.failures")
        with self._lock:
            mine = [f for f in self._failures if f.model == model]
        return mine[::-1][:limit]

    def since(
        self,
        model: str,
        since: float,
        until: float | None = None,
        *,
        limit: int = 10_000,
        oldest: bool = False,
    ) -> RunHistory:
        """Evaluations and failures in ``[since, until)``, oldest first (the newest ``limit``;
        ``oldest``: the oldest ``limit``)."""
        owner = f"{_HISTORY}.since"
        check_model_name(model, owner)
        since = check_float(since, "since", owner=owner)
        end = float("inf") if until is None else check_float(until, "until", owner=owner)
        limit = check_int(limit, "limit", low=1, owner=owner)
        with self._lock:
            evs = [(e.evaluated_at, i, e) for i, e in enumerate(self._evaluations)]
            fails = [(f.at, i, f) for i, f in enumerate(self._failures)]

        def pick(rows: list[tuple[float, int, _T]]) -> tuple[_T, ...]:
            inside = sorted(r for r in _of(rows, model) if since <= r[0] < end)
            return tuple(r[2] for r in (inside[:limit] if oldest else inside[-limit:]))

        return RunHistory(model, since, None if until is None else end, pick(evs), pick(fails))

    def close(self) -> None:
        """Nothing to release."""


def _of(rows: list[tuple[float, int, _T]], model: str) -> list[tuple[float, int, _T]]:
    """The rows of one model; sorting them never compares the records (index breaks ties)."""
    return [r for r in rows if r[2].model == model]
