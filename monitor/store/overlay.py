"""A store and a history that read through to real ones and keep every write in memory.

What ``kmeans-monitor evaluate --dry-run`` runs the pipeline on: reads see the real
versions, pointers and runs, plus whatever the run itself wrote; writes (a new version,
a moved pointer, an evaluation, a failure) stay in this object and are gone with it.
Nothing is ever written to the store or history underneath, whatever the pipeline
asks for, so a dry run can diagnose a model under any retrain policy.

``OverlaySnapshotStore`` numbers new versions after the highest one the real store holds
(and the history's floor), so a dry run's decision reads like the real one would
("candidate v7 stored"), and follows the stores' rules for pointers: a new live version
clears the pending one, a pending pointer equal to the live one is no candidate,
approval is guarded by the reviewed version. ``OverlayHistory`` merges its own records
into every query with the real ones, in the order the port promises, and repairs nothing
(``reconcile`` records no row: that is the daemon's job at start-up).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from monitor.checks import check_choice, check_float, check_int
from monitor.errors import InvalidInputError, SnapshotNotFoundError, StoreError
from monitor.ports import History, SnapshotStore
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
from monitor.store.memory import AppendedRuns
from monitor.store.snapshots import (
    check_approvable,
    check_unmoved,
    next_version,
    pending_moves,
    say_skipped,
)

__all__ = ["OverlayHistory", "OverlaySnapshotStore"]

_STORE = "OverlaySnapshotStore"
_HISTORY = "OverlayHistory"
_T = TypeVar("_T", Evaluation, RunFailure)


@dataclass
class _Changes:
    """What a dry run changed for one model: versions saved, pointers moved."""

    saved: dict[int, Snapshot] = field(default_factory=dict)
    live: int | None = None
    live_moved: bool = False
    pending: int | None = None
    pending_moved: bool = False
    events: list[StoreEvent] = field(default_factory=list)

    def make_live(self, version: int) -> None:
        self.live, self.live_moved = version, True

    def make_pending(self, version: int | None) -> None:
        self.pending, self.pending_moved = version, True


def _checksum(s: Snapshot, version: int) -> str:
    """A sha256 over what tells versions apart (identity and the arrays' bytes)."""
    h = hashlib.sha256(f"dry-run\x1f{s.model}\x1f{version}\x1f{s.created_at!r}".encode())
    for array in (s.centers, s.scaler.center, s.scaler.scale, s.sample):
        h.update(array.tobytes())
    return f"sha256:{h.hexdigest()}"


class OverlaySnapshotStore:
    """Reads ``inner``; saves and pointer moves stay in memory. Meets ``SnapshotStore``."""

    def __init__(self, inner: SnapshotStore) -> None:
        """An overlay on ``inner``, which is only ever read."""
        self._inner = inner
        self._changes: dict[str, _Changes] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"{_STORE}({self._inner!r})"

    def saved(self, model: str) -> list[Snapshot]:
        """The versions saved here for ``model`` (none of them is on disk), oldest first."""
        with self._lock:
            return [s for _, s in sorted(self._of(model, "saved").saved.items())]

    # ------------------------------------------------------------------ queries

    def models(self) -> list[str]:
        """Models with at least one version, real or saved here, sorted by name."""
        with self._lock:
            mine = {name for name, c in self._changes.items() if c.saved}
            return sorted(set(self._inner.models()) | mine)

    def versions(self, model: str) -> list[int]:
        """Real versions and those saved here, ascending."""
        with self._lock:
            c = self._of(model, "versions")
            return sorted(set(self._inner.versions(model)) | set(c.saved))

    def live_version(self, model: str) -> int | None:
        """The live version, as moved here or else as the real store says."""
        with self._lock:
            c = self._of(model, "live_version")
            return c.live if c.live_moved else self._inner.live_version(model)

    def pending_version(self, model: str) -> int | None:
        """The candidate awaiting approval, as moved here or else as the real store says."""
        with self._lock:
            c = self._of(model, "pending_version")
            if not c.pending_moved:
                return self._inner.pending_version(model)
            return None if c.pending == self.live_version(model) else c.pending

    def load(self, model: str, version: int | None = None) -> Snapshot:
        """A version saved here, or a real one (the live one when ``version`` is None)."""
        with self._lock:
            c = self._of(model, "load")
            if version is None and not c.live_moved:
                return self._inner.load(model)  # the real store's checks and messages
            if version is None:
                version = c.live
                if version is None:
                    raise SnapshotNotFoundError(f"model {model!r} has no live version")
            version = check_int(version, "version", low=1, owner=f"{_STORE}.load")
            if version in c.saved:
                return c.saved[version]
            return self._inner.load(model, version)

    def list_versions(self, model: str) -> list[VersionInfo]:
        """Real versions and those saved here, with their states as the overlay sees them."""
        with self._lock:
            c = self._of(model, "list_versions")
            real = self._inner.list_versions(model)
            infos = real + [VersionInfo.of(s, "retired") for _, s in sorted(c.saved.items())]
            if not (c.live_moved or c.pending_moved or c.saved):
                return real
            live, pending = self.live_version(model), self.pending_version(model)
            return [
                i if i.corrupt else dataclasses.replace(i, state=_state(i.version, live, pending))
                for i in infos
            ]

    def events(self, model: str) -> list[StoreEvent]:
        """The real store's events, then those of the moves made here."""
        with self._lock:
            return [*self._inner.events(model), *self._of(model, "events").events]

    # ------------------------------------------------------------------ writes (in memory)

    def save(
        self,
        snapshot: Snapshot,
        *,
        state: str | None = None,
        expect_live: int | None = None,
        floor: int = 0,
        by: Actor | None = None,
    ) -> Snapshot:
        """Keep ``snapshot`` as the version after the highest real or saved one (and
        ``floor``); return it. ``expect_live``, ``floor`` and ``by``: see the port."""
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
            c = self._changes.setdefault(check_model_name(snapshot.model, owner), _Changes())
            if expect_live is not None:
                check_unmoved(snapshot.model, expect_live, self.live_version(snapshot.model))
            existing = self.versions(snapshot.model)
            version = next_version(existing, floor)
            say_skipped(snapshot.model, version, existing)
            stored = dataclasses.replace(
                snapshot, version=version, checksum=_checksum(snapshot, version)
            )
            c.saved[version] = stored
            self._record_pending(c, snapshot.model, state, by, version)
            if state == "live":
                self._record(c, snapshot.model, "promote", by, version, version)
                # A new live version leaves no candidate (the stores' rule).
                c.make_live(version)
                c.make_pending(None)
            elif state == "pending":
                c.make_pending(version)
            return stored

    def set_live(self, model: str, version: int, *, by: Actor | None = None) -> None:
        """Make an existing version live, here only."""
        with self._lock:
            c, version = self._target(model, version, "set_live")
            self._record(c, model, "rollback", by, version, version)
            # A rollback keeps the candidate, unless it rolls forward onto it.
            if self.pending_version(model) == version:
                c.make_pending(None)
            c.make_live(version)

    def set_pending(self, model: str, version: int | None, *, by: Actor | None = None) -> None:
        """Mark an existing version (None: none) as the candidate, here only."""
        with self._lock:
            if version is None:
                c = self._changed(model, "set_pending")
                if (pending := self.pending_version(model)) is not None:
                    self._record(c, model, "reject", by, pending, None)
                c.make_pending(None)
                return
            c, version = self._target(model, version, "set_pending")
            if version == self.live_version(model):
                raise InvalidInputError(
                    f"model {model!r}: v{version} is the live version; it cannot be pending"
                )
            self._record_pending(c, model, "pending", by, version)
            c.make_pending(version)

    def approve(self, model: str, version: int | None = None, *, by: Actor | None = None) -> int:
        """Make the pending version (which ``version`` must name, if given) live, here only."""
        with self._lock:
            c = self._changed(model, "approve")
            if version is not None:
                version = check_int(version, "version", low=1, owner=f"{_STORE}.approve")
            pending = check_approvable(
                model,
                self.pending_version(model),
                version,
                live=self.live_version(model),
                versions=self.versions(model),
            )
            self._record(c, model, "approve", by, pending, pending)
            c.make_live(pending)
            c.make_pending(None)
            return pending

    # ------------------------------------------------------------------ internals

    def _record(
        self,
        c: _Changes,
        model: str,
        action: str,
        by: Actor | None,
        version: int,
        after: int | None,
    ) -> None:
        """Keep the event of a pointer about to move here (nothing without ``by``);
        ``after`` None: the live version stays."""
        if by is None:
            return
        try:
            before = self.live_version(model)
        except StoreError:
            before = None
        after = before if after is None else after
        at = time.time()  # a dry run's moves are told, not kept: the wall clock will do
        c.events.append(by.event(model, at, action, version, before, after))

    def _record_pending(
        self, c: _Changes, model: str, state: str | None, by: Actor | None, version: int
    ) -> None:
        """Keep the events of the pending pointer about to move (``pending_moves``)."""
        if by is None or state is None:
            return
        try:
            live, pending = self.live_version(model), self.pending_version(model)
        except StoreError:
            live = pending = None
        for action, v, _, after in pending_moves(state, version, live, pending):
            self._record(c, model, action, by, v, after)

    def _of(self, model: str, method: str) -> _Changes:
        """The changes of ``model`` (empty ones, not kept, when there are none)."""
        return self._changes.get(check_model_name(model, f"{_STORE}.{method}")) or _Changes()

    def _changed(self, model: str, method: str) -> _Changes:
        return self._changes.setdefault(check_model_name(model, f"{_STORE}.{method}"), _Changes())

    def _target(self, model: str, version: int, method: str) -> tuple[_Changes, int]:
        version = check_int(version, "version", low=1, owner=f"{_STORE}.{method}")
        stored = self.versions(model)
        if version not in stored:
            raise SnapshotNotFoundError(
                f"model {model!r} has no version {version}; stored versions: {stored}"
            )
        return self._changed(model, method), version


def _state(version: int, live: int | None, pending: int | None) -> str:
    if version == live:
        return "live"
    return "pending" if version == pending else "retired"


class OverlayHistory(AppendedRuns):
    """Reads ``inner`` and adds what was appended here; writes stay here. Meets ``History``."""

    def __init__(self, inner: History) -> None:
        """An overlay on ``inner``, which is only ever read (and closed with this one)."""
        super().__init__(_HISTORY)
        self._inner = inner

    def __repr__(self) -> str:
        return f"{_HISTORY}({self._inner!r})"

    @property
    def appended_failures(self) -> list[RunFailure]:
        """The failed runs appended here, oldest first."""
        with self._lock:
            return list(self._failures)

    def record_version(self, snapshot: Snapshot) -> None:
        """Nothing to keep: the version exists only in the overlay store, gone with it."""
        if not isinstance(snapshot, Snapshot):
            raise InvalidInputError(
                f"The 'snapshot' parameter of {_HISTORY}.record_version must be a Snapshot. "
                f"Got {type(snapshot).__name__} instead."
            )

    def reconcile(self, store: SnapshotStore) -> list[tuple[str, int]]:
        """Repair nothing (the daemon reconciles at its start); no row is added."""
        return []

    def highest_version(self, model: str) -> int:
        """The real history's (versions saved here are in the overlay store, above it)."""
        return self._inner.highest_version(model)

    def live_versions(self, model: str) -> set[int]:
        """The versions of a model the real runs and those appended here scored or promoted."""
        return self._inner.live_versions(model) | super().live_versions(model)

    def totals(self, model: str) -> RunTotals:
        """Every run of a model, real and appended here, counted."""
        return self._inner.totals(model) + super().totals(model)

    def recent(self, model: str, limit: int = 20) -> list[Evaluation]:
        """The latest evaluations, real and appended here, newest first."""
        limit = check_int(limit, "limit", low=1, owner=f"{_HISTORY}.recent")
        with self._lock:
            mine = [e for e in self._evaluations if e.model == model]
        return (mine[::-1] + self._inner.recent(model, limit))[:limit]  # written here: newer

    def failures(self, model: str, limit: int = 20) -> list[RunFailure]:
        """The latest failed runs, real and appended here, newest first."""
        limit = check_int(limit, "limit", low=1, owner=f"{_HISTORY}.failures")
        with self._lock:
            mine = [f for f in self._failures if f.model == model]
        return (mine[::-1] + self._inner.failures(model, limit))[:limit]

    def since(
        self,
        model: str,
        since: float,
        until: float | None = None,
        *,
        limit: int = 10_000,
        oldest: bool = False,
    ) -> RunHistory:
        """Runs in ``[since, until)``, real and appended here, oldest first (newest ``limit``;
        ``oldest``: the oldest ``limit``)."""
        real = self._inner.since(model, since, until, limit=limit, oldest=oldest)
        end = float("inf") if until is None else until
        with self._lock:
            evs = [e for e in self._evaluations if e.model == model]
            fails = [f for f in self._failures if f.model == model]
        evs = [e for e in evs if real.since <= e.evaluated_at < end]
        fails = [f for f in fails if real.since <= f.at < end]
        evaluations = _newest_first(real.evaluations, evs, lambda e: e.evaluated_at)[::-1]
        failures = _newest_first(real.failures, fails, lambda f: f.at)[::-1]
        pick = slice(None, limit) if oldest else slice(-limit, None)
        return dataclasses.replace(
            real, evaluations=tuple(evaluations[pick]), failures=tuple(failures[pick])
        )

    def close(self) -> None:
        """Close the history underneath; what was appended here is dropped."""
        self._inner.close()


def _newest_first(real: Sequence[_T], mine: list[_T], at: Callable[[_T], float]) -> list[_T]:
    """Real records (oldest first) and those appended here, merged newest first.

    On equal times what was appended here is the newer, and real records keep their order.
    """
    ranked = [(at(r), 0, i, r) for i, r in enumerate(real)]
    ranked += [(at(m), 1, j, m) for j, m in enumerate(mine)]
    ranked.sort(key=lambda t: t[:3], reverse=True)
    return [t[3] for t in ranked]
