"""Versioned, immutable model snapshots kept in a directory tree.

Layout under the store's root (directories 0700, files 0600, whatever the umask)::

    <root>/
      <model>/                  one directory per model (name checked, never trusted)
        v000001/                one directory per version; never changed once renamed in
          manifest.json         scalars, array specs, checksum, signature (see _manifest)
          arrays.npz            every array (arrays.npz.enc when encrypted at rest)
        v000002/
        LIVE                    the live version number on one line, e.g. "2\\n"
        PENDING                 the candidate awaiting approval, same form (absent: none)
        LOCK                    flock'ed by whoever moves a pointer, saves or prunes
        EVENTS                  who approved, rejected, rolled back or promoted, and when
                                (one JSON object a line, appended: see _events; absent: none)
        .tmp-<random>           work in progress (a directory or a file), invisible to readers

States. A version is ``live`` when LIVE names it, ``pending`` when PENDING names it
(and LIVE does not), ``retired`` otherwise. Approving writes LIVE, then removes
PENDING; LIVE is the commit point, so a PENDING equal to LIVE (a crash in between)
reads as no pending version.

Atomicity. A snapshot is written into a ``.tmp-`` directory next to the version
directories, fsynced, and renamed to ``v<N>``; pointers are written to a ``.tmp-``
file, fsynced and ``os.replace``-d. A model's first live version writes LIVE *before*
renaming the version in: a crash in between leaves a pointer to nothing, which reads
as "no model yet" (no version is stored), never as versions without a live one. A
later version is renamed in first and made live after, so a crash leaves the old live
version and an extra retired one.

Live pointer. With no version stored, ``live_version`` is None ("no model yet").
With versions stored, a missing LIVE, one that names a version that is not stored, or
a live version that fails verification raises ``LivePointerError``, whose message
names the rollback command to the newest version that loads of those it records as
once live (``ports.rollback_target``: never a candidate that was not live); the store
never picks one.

Concurrency. Writers hold the model's LOCK while they claim a version, move a
pointer or prune; versions are still claimed by the rename itself (a rename onto an
existing directory fails), so no two writers can take the same number. Readers take
no lock. Every ``.tmp-`` entry is flock'ed by its writer, so the clean-up at open
removes only entries whose writer has died.

Numbering. A new version is numbered above every stored one and above the ``floor``
its save is given, the newest version the history has recorded (``next_version``):
versions moved out of the store by hand keep their numbers, which history, diffs and
approvals still use, and a warning line says which numbers were skipped.

Retention (``RetentionPolicy``) runs after each save: it removes versions that are
neither live, the live one's parent (the target of a rollback), pending, among the
newest ``versions`` (never fewer than the newest one, so version numbers are never
reused) nor younger than ``age``, and keeps corrupt versions as evidence. A version
is removed by renaming it to a ``.tmp-`` entry first, so a crash cannot leave half a
version.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import math
import os
import re
import secrets
import shlex
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.checks import Mismatch, Problem, check_choice, check_float, check_int
from monitor.errors import (
    InvalidInputError,
    KeyMismatchError,
    LiveMovedError,
    LivePointerError,
    NewerFormatError,
    SnapshotNotFoundError,
    StoreError,
    UnsignedError,
)
from monitor.ports import rollback_target
from monitor.records import Actor, Snapshot, StoreEvent, VersionInfo, season_name
from monitor.store._crypto import StoreKey, require_cipher
from monitor.store._events import append_event, check_events, read_events
from monitor.store._fs import (
    DIR_MODE,
    TMP_PREFIX,
    clean_temp_entries,
    ensure_dir,
    fsync_dir,
    locked,
    make_dirs,
    pointer_removal,
    read_pointer,
    remove_pointer,
    temp_entry,
    write_file,
    write_pointer,
)
from monitor.store._manifest import (
    ARRAYS,
    ARRAYS_ENCRYPTED,
    FORMAT,
    MANIFEST,
    Encoded,
    Manifest,
    encode,
    inspect,
    read_snapshot,
)
from monitor.store._names import check_model_name, is_model_name

__all__ = [
    "ARRAYS",
    "ARRAYS_ENCRYPTED",
    "FORMAT",
    "LIVE",
    "LOCK",
    "MANIFEST",
    "PENDING",
    "TMP_PREFIX",
    "DirectorySnapshotStore",
    "RetentionPolicy",
    "next_version",
    "pending_moves",
    "say_skipped",
    "snapshot_summary",
    "version_summary",
]

_log = logging.getLogger(__name__)

LIVE = "LIVE"
PENDING = "PENDING"
LOCK = "LOCK"
_VERSION_DIR = re.compile(r"v([0-9]{6,})")
# Each lost race costs one manifest rewrite; this many in a row means something is wrong.
_MAX_CLAIMS = 1000
_SAVE = "DirectorySnapshotStore.save"
_STORE = "DirectorySnapshotStore"


@dataclass(frozen=True)
class RetentionPolicy:
    """Which old versions a store removes after each save (None: that rule keeps all)."""

    versions: int | None = None  # always keep the newest this many
    age: float | None = None  # seconds: always keep versions younger than this

    def __post_init__(self) -> None:
        if self.versions is not None:
            check_int(self.versions, "versions", low=1, owner="RetentionPolicy")
        if self.age is not None:
            check_float(self.age, "age", low=0.0, low_inclusive=False, owner="RetentionPolicy")


# Versions whose verified snapshots are kept for reloading: a few per model is plenty
# (the live one, a pending one, a rollback's target).
_VERIFIED_KEPT = 64
_Fingerprint = tuple[tuple[str, int, int, int], ...]


def _fingerprint(vdir: Path) -> _Fingerprint | None:
    """Name, size, inode and modification time of each file of a version directory;
    None when it cannot be listed (the read that follows says why)."""
    try:
        with os.scandir(vdir) as entries:
            found = []
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                found.append((entry.name, st.st_size, st.st_ino, st.st_mtime_ns))
    except OSError:
        return None
    return tuple(sorted(found))


class DirectorySnapshotStore:
    """Snapshots as immutable version directories under ``root``; meets ``SnapshotStore``."""

    def __init__(
        self,
        root: Path,
        *,
        key: StoreKey | None = None,
        encrypt: bool = False,
        require_signature: bool = False,
        retention: RetentionPolicy | None = None,
        clock: Callable[[], float] = time.time,
        state_dir: Path | None = None,
        command_options: str | None = None,
    ) -> None:
        """Open (creating if needed) the store at ``root``; remove dead writers' temp entries.

        ``key`` signs every snapshot saved and verifies every signed one loaded;
        ``encrypt`` also encrypts the arrays (needs ``key`` and ``cryptography``);
        ``require_signature`` refuses unsigned snapshots (by default they load with a
        warning); ``retention`` prunes after each save, with ages measured by ``clock``;
        ``state_dir`` is what the CLI's ``--state-dir`` names in the commands that
        errors print (default: the root's parent, as bootstrap lays it out), or
        ``command_options`` all the options they carry (``runner.store_options``: with
        the configuration file, for a store with a key).
        """
        _check_options(key, encrypt, require_signature, retention)
        self.root = Path(root)
        self.state_dir = Path(state_dir) if state_dir is not None else self.root.parent
        self._command_options = command_options
        self._key = key
        self._encrypt = bool(encrypt)
        self._require_signature = bool(require_signature)
        self._retention = retention
        self._clock = clock
        self._warned: set[tuple[str, int]] = set()
        # Versions read and verified, by the files they were read from (_fingerprint).
        self._verified: OrderedDict[tuple[str, int], tuple[_Fingerprint, Snapshot]] = OrderedDict()
        self._verified_lock = threading.Lock()
        try:
            make_dirs(self.root)
            _tighten(self.root)
            for entry in os.scandir(self.root):
                if entry.is_dir(follow_symlinks=False) and is_model_name(entry.name):
                    _tighten(Path(entry.path))
                    clean_temp_entries(Path(entry.path))
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot open the snapshot store at {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"DirectorySnapshotStore({str(self.root)!r})"

    # ------------------------------------------------------------------ queries

    def models(self) -> list[str]:
        """Models that have at least one snapshot, sorted by name."""
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            raise StoreError(f"cannot list the snapshot store at {self.root}: {exc}") from exc
        names = [
            e.name
            for e in entries
            if e.is_dir(follow_symlinks=False)
            and is_model_name(e.name)
            and _list_versions(Path(e.path))
        ]
        return sorted(names)

    def versions(self, model: str) -> list[int]:
        """All stored versions of a model, ascending (empty for an unknown model)."""
        return _list_versions(self._model_dir(model, "versions"))

    def live_version(self, model: str) -> int | None:
        """The live version; None only when no version is stored ("no model yet").

        Raises ``LivePointerError`` (naming the fix) when versions are stored but the
        live pointer is missing, unreadable or names a version that is not stored.
        """
        model_dir = self._model_dir(model, "live_version")
        versions = _list_versions(model_dir)
        if not versions:
            return None
        return self._resolve_live(model, model_dir, versions)

    def pending_version(self, model: str) -> int | None:
        """The candidate awaiting approval, or None."""
        model_dir = self._model_dir(model, "pending_version")
        return self._pending(model_dir, _list_versions(model_dir))

    def load(self, model: str, version: int | None = None) -> Snapshot:
        """Load a version (the live one when ``version`` is None) and verify it."""
        model_dir = self._model_dir(model, "load")
        if version is not None:
            version = check_int(version, "version", low=1, owner=f"{_STORE}.load")
        versions = _list_versions(model_dir)
        if not versions:
            raise SnapshotNotFoundError(
                f"no snapshot of model {model!r} in {self.root}; "
                f"models with snapshots: {self.models()}"
            )
        if version is None:
            live = self._resolve_live(model, model_dir, versions)
            try:
                return self._read(model_dir, model, live)
            except NewerFormatError as exc:
                # No rollback: the live model is sound, this code is too old to read it.
                raise LivePointerError(
                    f"model {model!r}: its live version {live} cannot be loaded: {exc}"
                ) from exc
            except StoreError as exc:
                raise self._broken_live(
                    model,
                    model_dir,
                    versions,
                    f"its live version {live} cannot be loaded: {exc}",
                    other_key=isinstance(exc, KeyMismatchError),
                    unsigned=isinstance(exc, UnsignedError),
                ) from exc
        if version not in versions:
            raise SnapshotNotFoundError(
                f"model {model!r} has no version {version}; "
                f"stored versions: {_format_versions(versions)}"
            )
        return self._read(model_dir, model, version)

    def list_versions(self, model: str) -> list[VersionInfo]:
        """Every stored version with its state, from the manifests only; never raises on one.

        A version that cannot be used is listed with ``corrupt`` saying why; arrays are
        not read (``load`` verifies them), so listing thousands of versions is quick.
        """
        model_dir = self._model_dir(model, "list_versions")
        versions = _list_versions(model_dir)
        live, pending = _pointers_or_none(model_dir)
        out = []
        for v in versions:
            state = "live" if v == live else "pending" if v == pending else "retired"
            m, why = inspect(
                model_dir / _version_dirname(v),
                model,
                v,
                key=self._key,
                require_signature=self._require_signature,
            )
            out.append(_version_info(model, v, state, m, why))
        return out

    def events(self, model: str) -> list[StoreEvent]:
        """Who approved, rejected, rolled back or promoted a version, and when; oldest first."""
        model_dir = self._model_dir(model, "events")
        return read_events(model_dir, model)

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
        """Store ``snapshot`` as a new version (``next_version``); return it as stored.

        ``state`` "live" or "pending" also moves that pointer to the new version, under
        the model's lock (a new live version clears the pending one, made obsolete);
        None stores it retired. Retention runs afterwards. ``expect_live``, ``floor``
        and ``by`` (who promotes it, recorded when it goes live): see the port.
        """
        if not isinstance(snapshot, Snapshot):
            raise InvalidInputError(
                f"The 'snapshot' parameter of {_SAVE} must be a Snapshot. "
                f"Got {type(snapshot).__name__} instead."
            )
        if state is not None:
            check_choice(state, "state", ("live", "pending"), owner=_SAVE)
        floor = check_int(floor, "floor", low=0, owner=_SAVE)
        enc = encode(snapshot, key=self._key, encrypt=self._encrypt)
        model = str(enc.body["model"])
        model_dir = self.root / model
        try:
            ensure_dir(model_dir)
            with temp_entry(model_dir, directory=True) as (tmp, _):
                write_file(tmp / enc.payload_name, enc.payload)
                with locked(model_dir / LOCK):
                    if expect_live is not None:
                        self._check_live(model, model_dir, expect_live)
                    before, pending = _pointers_or_none(model_dir)
                    if state is not None:
                        self._recordable(model_dir, by)
                    version, checksum = _claim(model_dir, tmp, enc, state, floor)
                    for move in pending_moves(state, version, before, pending):
                        self._record(model_dir, model, move[0], by, *move[1:])
                    if state == "live":
                        self._record(model_dir, model, "promote", by, version, before, version)
                    self._prune_after_save(model, model_dir)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(
                f"cannot write a snapshot of model {model!r} under {model_dir}: {exc}"
            ) from exc
        return dataclasses.replace(
            snapshot, version=version, checksum=checksum, created_at=enc.body["created_at"]
        )

    def set_live(self, model: str, version: int, *, by: Actor | None = None) -> None:
        """Make an existing, intact version live atomically (a rollback, recorded as one)."""
        model_dir, version = self._target(model, version, "set_live")
        try:
            with self._locked(model, model_dir):
                # Loading verifies that the version exists and is intact before it goes live.
                self._read_listed(model_dir, model, version)
                live, pending = _pointers_or_none(model_dir)
                self._recordable(model_dir, by)
                write_pointer(model_dir / LIVE, version)
                if pending == version:
                    remove_pointer(model_dir / PENDING)
                self._record(model_dir, model, "rollback", by, version, live, version)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(
                f"cannot make version {version} of model {model!r} live in {model_dir}: {exc}"
            ) from exc

    def rollback(
        self, model: str, to: int | None = None, *, by: Actor | None = None
    ) -> tuple[int | None, int]:
        """Make ``to`` live (default: the live version's parent); return (before, after).

        With ``to`` given this works whatever state the live pointer is in, since it
        is the fix that ``LivePointerError`` prints; ``before`` is then None when the
        pointer was unusable. Without ``to`` the live version must be sound.
        """
        model_dir = self._model_dir(model, "rollback")
        if to is not None:
            to = check_int(to, "to", low=1, owner=f"{_STORE}.rollback")
            live, _ = _pointers_or_none(model_dir)
            self.set_live(model, to, by=by)
            return (live if live in _list_versions(model_dir) else None), to
        live = self.live_version(model)
        if live is None:
            raise SnapshotNotFoundError(f"model {model!r} has no snapshots to roll back")
        parent = self.load(model).parent_version
        versions = _list_versions(model_dir)
        if parent is None or parent not in versions:
            # Never another version in its place: the newest older one may be a candidate
            # that was never live (helper-103), so the operator chooses.
            raise SnapshotNotFoundError(self._no_parent(model, live, parent, versions))
        self.set_live(model, parent, by=by)
        return live, parent

    def _no_parent(self, model: str, live: int, parent: int | None, versions: list[int]) -> str:
        """Why a rollback without ``--to`` has no target, and the versions ``--to`` may name."""
        others = [v for v in versions if v != live]
        if not others:
            return f"model {model!r}: v{live} is the only version; nothing to roll back to"
        if parent is None:
            why = f"v{live} has no parent (it was not trained from a stored version)"
        else:
            why = f"v{live}'s parent v{parent} is no longer stored"
        return (
            f"model {model!r}: {why}; choose the version to make live from "
            f"{_format_versions(others)} with `kmeans-monitor snapshots rollback {model} "
            f"--to VERSION {self._state_dir_option()}`"
        )

    def set_pending(self, model: str, version: int | None, *, by: Actor | None = None) -> None:
        """Mark an existing, intact version as the candidate awaiting approval (None: none,
        a rejection of the pending one, recorded as one)."""
        owner = "set_pending"
        if version is None:
            model_dir = self._model_dir(model, owner)
            if not model_dir.is_dir():
                return  # no such model: nothing is pending
            try:
                with locked(model_dir / LOCK):
                    live, pending = _pointers_or_none(model_dir)
                    if pending is not None:
                        self._recordable(model_dir, by)
                    remove_pointer(model_dir / PENDING)
                    if pending is not None:
                        self._record(model_dir, model, "reject", by, pending, live, live)
            except StoreError:
                raise
            except OSError as exc:
                raise StoreError(f"cannot clear {model_dir / PENDING}: {exc}") from exc
            return
        model_dir, version = self._target(model, version, owner)
        try:
            with self._locked(model, model_dir):
                self._read_listed(model_dir, model, version)
                live, pending = _pointers_or_none(model_dir)
                if live == version:
                    raise InvalidInputError(
                        f"model {model!r}: v{version} is the live version; it cannot be pending"
                    )
                self._recordable(model_dir, by)
                write_pointer(model_dir / PENDING, version)
                for move in pending_moves("pending", version, live, pending):
                    self._record(model_dir, model, move[0], by, *move[1:])
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot mark v{version} of {model!r} pending: {exc}") from exc

    def approve(self, model: str, version: int | None = None, *, by: Actor | None = None) -> int:
        """Make the pending version live atomically (the old live one retires); return it.

        ``version``, when given, must be the pending one: a guard against approving a
        candidate that a later run has replaced since it was reviewed.
        """
        owner = f"{_STORE}.approve"
        model_dir = self._model_dir(model, "approve")
        if version is not None:
            version = check_int(version, "version", low=1, owner=owner)
        try:
            with self._locked(model, model_dir):
                versions = _list_versions(model_dir)
                live, _ = _pointers_or_none(model_dir)
                pending = self._pending(model_dir, versions)
                pending = check_approvable(
                    model,
                    pending,
                    version,
                    live=live,
                    versions=versions,
                    where=f" {self._state_dir_option()}",
                )
                self._read_listed(model_dir, model, pending)
                self._recordable(model_dir, by)
                write_pointer(model_dir / LIVE, pending)  # the commit point
                remove_pointer(model_dir / PENDING)
                self._record(model_dir, model, "approve", by, pending, live, pending)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot approve the pending version of {model!r}: {exc}") from exc
        return pending

    def prune(self, model: str) -> list[int]:
        """Apply the retention policy to a model now; return the versions removed."""
        model_dir = self._model_dir(model, "prune")
        if self._retention is None or not model_dir.is_dir():
            return []
        try:
            with locked(model_dir / LOCK):
                return self._prune_locked(model, model_dir)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot prune the versions of {model!r}: {exc}") from exc

    # ------------------------------------------------------------------ internals

    def _record(
        self,
        model_dir: Path,
        model: str,
        action: str,
        by: Actor | None,
        version: int,
        before: int | None,
        after: int | None,
    ) -> None:
        """Append the event of a pointer just moved (under the model's lock); nothing
        without ``by`` (a caller that says nobody: a test's fixture)."""
        if by is None:
            return
        append_event(model_dir, by.event(model, self._clock(), action, version, before, after))

    @staticmethod
    def _recordable(model_dir: Path, by: Actor | None) -> None:
        """Refuse a move whose event could not be recorded, before the pointer moves."""
        if by is not None:
            check_events(model_dir)

    def _model_dir(self, model: Any, method: str) -> Path:
        return self.root / check_model_name(model, f"{_STORE}.{method}")

    def _target(self, model: Any, version: Any, method: str) -> tuple[Path, int]:
        model_dir = self._model_dir(model, method)
        return model_dir, check_int(version, "version", low=1, owner=f"{_STORE}.{method}")

    def _locked(self, model: str, model_dir: Path) -> AbstractContextManager[None]:
        """The model's lock; SnapshotNotFoundError when the model has no directory."""
        if not model_dir.is_dir():
            raise SnapshotNotFoundError(
                f"no snapshot of model {model!r} in {self.root}; "
                f"models with snapshots: {self.models()}"
            )
        return locked(model_dir / LOCK)

    def _read(self, model_dir: Path, model: str, version: int) -> Snapshot:
        """Read and verify a version, or return the snapshot verified from the very same
        files (same names, sizes, inodes and modification times): a daemon loads its live
        version on every run, and the arrays are read-only, so the copy is shared.

        A file changed since is read and verified again, so what comes back was always
        verified from what its files held then, never from unverified bytes.
        """
        vdir = model_dir / _version_dirname(version)
        seen = _fingerprint(vdir)
        with self._verified_lock:
            hit = self._verified.get((model, version))
            if hit is not None and seen is not None and hit[0] == seen:
                self._verified.move_to_end((model, version))
                return hit[1]
        snapshot = self._read_files(vdir, model, version)
        if seen is not None:
            with self._verified_lock:
                self._verified[(model, version)] = (seen, snapshot)
                while len(self._verified) > _VERIFIED_KEPT:
                    self._verified.popitem(last=False)
        return snapshot

    def _read_files(self, vdir: Path, model: str, version: int) -> Snapshot:
        snapshot, signed, encrypted = read_snapshot(
            vdir,
            model,
            version,
            key=self._key,
            require_signature=self._require_signature,
        )
        if not signed and self._key is not None and (model, version) not in self._warned:
            self._warned.add((model, version))  # once per version, not once per run
            _log.warning("%s", _unsigned_warning(model, version, self._encrypt and not encrypted))
        return snapshot

    def _read_listed(self, model_dir: Path, model: str, version: int) -> Snapshot:
        """Read a version that must exist; SnapshotNotFoundError lists those that do."""
        versions = _list_versions(model_dir)
        if version not in versions:
            if not versions:
                raise SnapshotNotFoundError(f"no snapshot of model {model!r} in {self.root}")
            raise SnapshotNotFoundError(
                f"model {model!r} has no version {version}; "
                f"stored versions: {_format_versions(versions)}"
            )
        return self._read(model_dir, model, version)

    def _check_live(self, model: str, model_dir: Path, expected: int) -> None:
        """``check_unmoved`` on the live pointer (the caller holds the model's lock)."""
        versions = _list_versions(model_dir)
        check_unmoved(
            model, expected, self._resolve_live(model, model_dir, versions) if versions else None
        )

    def _resolve_live(self, model: str, model_dir: Path, versions: list[int]) -> int:
        path = model_dir / LIVE
        try:
            live = read_pointer(path)
        except StoreError as exc:
            raise self._broken_live(model, model_dir, versions, str(exc)) from exc
        if live is None:
            raise self._broken_live(
                model, model_dir, versions, f"the live pointer {path} is missing"
            )
        if live not in versions:
            raise self._broken_live(
                model,
                model_dir,
                versions,
                f"the live pointer {path} names version {live}, which is not stored",
            )
        return live

    def _pending(self, model_dir: Path, versions: list[int]) -> int | None:
        path = model_dir / PENDING
        try:
            pending = read_pointer(path)
        except StoreError as exc:
            raise StoreError(
                f"{exc}; remove it (`{pointer_removal(path)}`): the next drifting run "
                "stores a new candidate"
            ) from exc
        if pending is None or pending not in versions:
            return None  # a candidate removed by hand is simply no candidate
        try:
            live = read_pointer(model_dir / LIVE)
        except StoreError:
            live = None  # reported by live_version; the pending pointer is still readable
        return None if pending == live else pending

    def _broken_live(
        self,
        model: str,
        model_dir: Path,
        versions: list[int],
        what: str,
        *,
        other_key: bool = False,
        unsigned: bool = False,
    ) -> LivePointerError:
        """The error for an unusable live pointer, naming the version to roll back to
        (``rollback_target``); ``other_key``: the live version was written under another
        key (KeyMismatchError); ``unsigned``: it has no signature and the store requires
        one (UnsignedError)."""
        head = f"model {model!r}: {what}; stored versions: {_format_versions(versions)}"
        live, _ = _pointers_or_none(model_dir)
        target = rollback_target(self, model, broken=live)
        if target is not None:
            return LivePointerError(
                f"{head}. Roll back to v{target}, the newest version that loads of those the "
                "store records as once live: "
                f"`kmeans-monitor snapshots rollback {model} --to {target} "
                f"{self._state_dir_option()}`"
            )
        others = [v for v in versions if v != live]
        if self._any_loads(model, model_dir, others):
            # Only candidates that were never live load: a person chooses (helper-103).
            return LivePointerError(
                f"{head}; no version that was live loads: choose the version to make live "
                f"from {_format_versions(others)} with `kmeans-monitor snapshots rollback "
                f"{model} --to VERSION {self._state_dir_option()}`"
            )
        if unsigned:
            # Genuine versions, most likely: moving them aside threw the model away where
            # the option was the fix (h146).
            return LivePointerError(
                f"{head}; none of them loads while store.require_signature is on, unsigned "
                "(written before the store key, or their signatures removed): if they are "
                "this installation's, set require_signature to false (they then load with "
                "a warning each) and turn it on again once a signed version is live "
                f"(`kmeans-monitor snapshots retrain {model} {self._state_dir_option()} "
                "--live` writes one)"
            )
        if other_key:
            # A changed key, not a damaged store: moving it aside threw a good model
            # away, where the key that wrote it would have served (helper-83).
            return LivePointerError(
                f"{head}; none of them loads with this store's key: run with the key "
                "that wrote them (store.key_file or store.key_env), or move "
                f"{model_dir} out of {self.root} to start the model again from a new "
                "initial version under this key"
            )
        return LivePointerError(
            f"{head}; none of them loads: move {model_dir} out of {self.root} to start "
            "the model again from a new initial version"
        )

    @property
    def signs(self) -> bool:
        """Whether versions are signed (a key): `snapshots list` marks those that are not."""
        return self._key is not None

    @property
    def encrypts(self) -> bool:
        """Whether new versions are encrypted: `snapshots list` marks those that are not."""
        return self._encrypt

    def _state_dir_option(self) -> str:
        """The options that open this store in the commands its errors print."""
        return self._command_options or f"--state-dir {shlex.quote(str(self.state_dir))}"

    def _any_loads(self, model: str, model_dir: Path, versions: list[int]) -> bool:
        for v in versions:
            try:
                self._read(model_dir, model, v)
            except StoreError:
                continue
            return True
        return False

    def _prune_after_save(self, model: str, model_dir: Path) -> None:
        """Retention after a save: a failure to prune is logged, never the save's failure."""
        if self._retention is None:
            return
        try:
            removed = self._prune_locked(model, model_dir)
        except OSError as exc:
            _log.warning("model=%s retention skipped: %s", model, exc)
            return
        if removed:
            _log.info("model=%s retention removed versions %s", model, _format_versions(removed))

    def _prune_locked(self, model: str, model_dir: Path) -> list[int]:
        policy = self._retention
        if policy is None or (policy.versions is None and policy.age is None):
            return []
        versions = _list_versions(model_dir)
        # Strict reads: with an unreadable pointer nobody knows what must be kept.
        live = read_pointer(model_dir / LIVE)
        # The live version's parent too: it is what `snapshots rollback` goes back to.
        parent = None if live is None else _parent_of(model_dir, model, live, self._key)
        protected = {live, parent, read_pointer(model_dir / PENDING)}
        protected.update(versions[-(policy.versions or 1) :])
        now = self._clock()
        removed = []
        for v in versions:
            if v in protected:
                continue
            vdir = model_dir / _version_dirname(v)
            created_at = _created_at(vdir, model, v, self._key)
            # A corrupt version is kept as evidence (listing shows it) and so is a young one.
            if created_at is None or (policy.age is not None and now - created_at < policy.age):
                continue
            _remove_version(model_dir, vdir)
            removed.append(v)
        return removed


def _created_at(vdir: Path, model: str, version: int, key: StoreKey | None) -> float | None:
    """When a version was created, from its manifest; None when the version looks corrupt."""
    m, _ = inspect(vdir, model, version, key=key, require_signature=False)
    try:
        return None if m is None else float(m.body["created_at"])
    except (KeyError, TypeError, ValueError):
        return None


def _parent_of(model_dir: Path, model: str, version: int, key: StoreKey | None) -> int | None:
    """A version's parent, from its manifest; None when it has none or looks corrupt."""
    vdir = model_dir / _version_dirname(version)
    m, _ = inspect(vdir, model, version, key=key, require_signature=False)
    try:
        parent = None if m is None else m.body.get("parent_version")
        return None if parent is None else int(parent)
    except (TypeError, ValueError):
        return None


def _unsigned_warning(model: str, version: int, clear: bool) -> str:
    """The line a version that loads unsigned logs; ``clear``: in clear text although
    the store encrypts, which no version written with its key is (fixer F12)."""
    if not clear:
        return (
            f"snapshot v{version} of model {model!r} is not signed (written before the store "
            "key was set); it loads because store.require_signature is off"
        )
    return (
        f"snapshot v{version} of model {model!r} is neither signed nor encrypted although "
        "store.encrypt is on: its arrays are clear text, written before the store key was set "
        "or by someone who can write the state directory; it loads because "
        "store.require_signature is off (turn it on once every version in use is signed, "
        "docs/security.md)"
    )


def _check_options(key: Any, encrypt: Any, require_signature: Any, retention: Any) -> None:
    """Validate the store's security and retention options at its edge."""
    if key is not None and not isinstance(key, StoreKey):
        raise Mismatch(Problem("key", "a StoreKey or None", type(key).__name__), _STORE)
    for name, value in (("encrypt", encrypt), ("require_signature", require_signature)):
        if not isinstance(value, bool):
            raise Mismatch(Problem(name, "a bool", value), _STORE)
        if value and key is None:
            raise Mismatch(Problem(name, "False when the store has no key", value), _STORE)
    if retention is not None and not isinstance(retention, RetentionPolicy):
        raise Mismatch(
            Problem("retention", "a RetentionPolicy or None", type(retention).__name__), _STORE
        )
    if encrypt:
        require_cipher()


def check_unmoved(model: str, expected: int, live: int | None) -> None:
    """LiveMovedError when a save that expected ``expected`` live finds another version
    live; a store without a live version is the save's to fill. Every store's save
    (directory, memory, overlay) says the same."""
    if live is not None and live != expected:
        raise LiveMovedError(model, expected, live)


def check_approvable(
    model: str,
    pending: int | None,
    version: int | None,
    *,
    live: int | None,
    versions: list[int],
    where: str = "",
) -> int:
    """The version to approve: the pending one, which ``version`` (if given) must name.

    Every store's approval (directory, memory, overlay) says the same: what ``version``
    is instead (live, not stored, another version) and what to do; ``where`` is the
    option the printed command finds the store with (`` --state-dir DIR``).
    """
    if pending is None and version is not None and version == live:
        # Approved already, by another operator a moment ago, say: not "nothing pending".
        raise SnapshotNotFoundError(f"model {model!r}: v{version} is live already; none is pending")
    if pending is None:
        missing = "" if version is None or version in versions else f" (nor a v{version})"
        raise SnapshotNotFoundError(f"model {model!r} has no pending version to approve{missing}")
    if version is None or version == pending:
        return pending
    if version == live:
        why = f"v{version} is live already; the pending version is v{pending}"
    elif version not in versions:
        why = f"it has no version {version}; the pending version is v{pending}"
    else:
        why = (
            f"v{version} is not the pending version (v{pending} is); review "
            f"v{pending} and approve it, or make v{version} live with "
            f"`kmeans-monitor snapshots rollback {model} --to {version}{where}`"
        )
    raise InvalidInputError(f"model {model!r}: {why}")


def pending_moves(
    state: str | None, version: int, live: int | None, pending: int | None
) -> list[tuple[str, int, int | None, int | None]]:
    """The pending pointer's moves when ``version`` is saved (or set) in ``state``, as
    events (action, version, live before, live after): the candidate ``pending`` it
    replaces, superseded, and ``version`` made pending. ``live`` and ``pending``: the
    pointers before. Every store's save and set_pending record these: `snapshots log`
    showed no trace of a candidate awaiting approval nor of one replaced (f19)."""
    if state is None or pending == version:
        return []
    after = version if state == "live" else live
    moves: list[tuple[str, int, int | None, int | None]] = []
    if pending is not None:
        moves.append(("supersede", pending, live, after))
    if state == "pending":
        moves.append(("pending", version, live, live))
    return moves


def next_version(stored: list[int], floor: int) -> int:
    """The number of a new version: above every ``stored`` one and above ``floor``, the
    newest version the history has recorded (every store's save).

    Versions can leave the store while history keeps their runs (a model directory
    moved aside, an older backup restored); numbered from the store alone, a new version
    took a number that history, diffs and approvals already used for another model.
    """
    return max(max(stored, default=0), floor) + 1


def say_skipped(model: str, version: int, stored: list[int]) -> None:
    """One warning line when ``version`` (``next_version``'s) skipped numbers after
    ``stored``: the history knew them; nothing when it did not skip."""
    first = max(stored, default=0) + 1
    if version == first:
        return
    last = version - 1
    _log.warning(
        "model=%s: stored v%d, not v%d: the history records versions up to v%d, which the "
        "snapshot store no longer holds (a model directory moved aside, or an older backup "
        "restored); %s skipped so that no version number names two models",
        model,
        version,
        first,
        last,
        f"v{first} is" if first == last else f"v{first}-v{last} are",
    )


def _claim(
    model_dir: Path, tmp: Path, enc: Encoded, state: str | None, floor: int
) -> tuple[int, str]:
    """Rename ``tmp`` to the next free version (``next_version``) and move the pointer
    ``state`` names to it."""
    model = str(enc.body["model"])
    for _ in range(_MAX_CLAIMS):
        versions = _list_versions(model_dir)
        version = next_version(versions, floor)
        manifest, checksum = enc.manifest_for(version)
        write_file(tmp / MANIFEST, manifest)
        fsync_dir(tmp)
        first_live = state == "live" and not versions
        if first_live:
            write_pointer(model_dir / LIVE, version)
        try:
            os.rename(tmp, model_dir / _version_dirname(version))
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                continue  # another writer took this number: claim the next
            raise
        break
    else:
        raise StoreError(
            f"could not claim a version of model {model!r} in {model_dir} "
            f"after {_MAX_CLAIMS} attempts"
        )
    say_skipped(model, version, versions)
    # The version must be durable before a pointer that names it is.
    fsync_dir(model_dir)
    if state == "live":
        remove_pointer(model_dir / PENDING)
        if not first_live:
            write_pointer(model_dir / LIVE, version)
    elif state == "pending":
        write_pointer(model_dir / PENDING, version)
    return version, checksum


def _remove_version(model_dir: Path, vdir: Path) -> None:
    """Remove a version: one rename makes it vanish, then its files go.

    The renamed entry holds no lock, so if this process dies before ``rmtree`` ends,
    the next open of the store removes what is left, like any dead writer's entry.
    """
    doomed = model_dir / f"{TMP_PREFIX}removed-{secrets.token_hex(8)}"
    os.rename(vdir, doomed)
    fsync_dir(model_dir)
    shutil.rmtree(doomed, ignore_errors=True)


def _version_info(
    model: str, version: int, state: str, m: Manifest | None, why: StoreError | None
) -> VersionInfo:
    if m is None:
        return VersionInfo(
            model=model,
            version=version,
            state=state,
            corrupt=str(why),
            newer_format=isinstance(why, NewerFormatError),
        )
    b = m.body
    try:
        parent = b.get("parent_version")
        profile = b.get("profile")
        return VersionInfo(
            model=model,
            version=version,
            state=state,
            created_at=float(b["created_at"]),
            reason=str(b["reason"]),
            parent_version=None if parent is None else int(parent),
            k=int(m.specs["centers"][1][0]),
            n_rows=int(b["n_rows"]),
            checksum=m.checksum,
            signed=m.signed,
            encrypted=m.encrypted,
            features=tuple(str(f) for f in b["features"]),
            cycle=None if profile is None else float(profile["period"]),
            timezone=None if profile is None else str(profile.get("timezone", "UTC")),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return VersionInfo(
            model=model, version=version, state=state, corrupt=f"{m.path} is corrupt: {exc!r}"
        )


def snapshot_summary(
    snapshot: Snapshot, *, live: bool = False, state: str | None = None
) -> dict[str, Any]:
    """JSON-friendly description of a snapshot for ``snapshots list`` and ``snapshots show``."""
    if state is None:
        state = "live" if live else "retired"
    return {
        "model": snapshot.model,
        "version": snapshot.version,
        "state": state,
        "live": state == "live",
        "created_at": snapshot.created_at,
        "created_at_utc": _utc(snapshot.created_at),
        "reason": snapshot.reason,
        "parent_version": snapshot.parent_version,
        "k": snapshot.k,
        "features": list(snapshot.features),
        "metric": snapshot.metric,
        "n_rows": snapshot.n_rows,
        "window": {
            "start": snapshot.window_start,
            "end": snapshot.window_end,
            "start_utc": _utc(snapshot.window_start),
            "end_utc": _utc(snapshot.window_end),
        },
        "seed": snapshot.seed,
        "scaler": snapshot.scaler.kind,
        # The cycle its windows are compared by, and on which clock (null: none).
        "seasonality": _seasonality(snapshot),
        "slis": {name: float(value) for name, value in sorted(snapshot.slis.items())},
        # The configured values (mode fixed; the floors of mode auto); calibrated runs
        # compare with the null's at their own row count, below.
        "thresholds": {name: float(value) for name, value in sorted(snapshot.thresholds.items())},
        "calibrated": _calibrated(snapshot),
        "schema_hash": snapshot.schema_hash,
        "package_version": snapshot.package_version,
        "checksum": snapshot.checksum,
    }


def _calibrated(snapshot: Snapshot) -> dict[str, Any] | None:
    """Each calibrated SLI's null threshold at each window size the calibration refitted
    (null: not a drift signal at that size); a run between two sizes interpolates."""
    null = snapshot.null
    if null is None:
        return None
    by_rows = {
        str(int(n)): {
            key: (float(v) if math.isfinite(v) else None)
            for key, v in zip(null.keys, row.tolist(), strict=True)
        }
        for n, row in zip(null.sizes.tolist(), null.values, strict=True)
    }
    return {"false_alarm_rate": null.false_alarm_rate, "by_rows": by_rows}


def _seasonality(snapshot: Snapshot) -> dict[str, Any] | None:
    """The profile's cycle (``daily``, ``weekly`` or its seconds) and time zone."""
    profile = snapshot.profile
    return None if profile is None else _cycle_json(profile.period, profile.timezone)


def _cycle_json(period: float | None, timezone: str | None) -> dict[str, Any] | None:
    if period is None:
        return None
    return {"cycle": season_name(period) or period, "timezone": timezone}


def version_summary(info: VersionInfo) -> dict[str, Any]:
    """JSON-friendly description of a listed version for ``snapshots list --json``."""
    out = dataclasses.asdict(info)
    out["features"] = None if info.features is None else list(info.features)
    del out["cycle"], out["timezone"]  # shown as `snapshots show` shows them
    out["seasonality"] = _cycle_json(info.cycle, info.timezone)
    out["created_at_utc"] = None if info.created_at is None else _utc(info.created_at)
    return out


# ---------------------------------------------------------------------- filesystem


def _tighten(path: Path) -> None:
    # Directories the store owns are private even when created by an older version
    # or under a loose umask; someone else's directory is left as it is.
    try:
        if os.stat(path).st_mode & 0o777 != DIR_MODE:
            os.chmod(path, DIR_MODE)
    except PermissionError:
        pass


def _version_dirname(version: int) -> str:
    return f"v{version:06d}"


def _list_versions(model_dir: Path) -> list[int]:
    """Versions present in ``model_dir`` (complete by construction), ascending."""
    try:
        entries = list(os.scandir(model_dir))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"cannot list {model_dir}: {exc}") from exc
    found = []
    for e in entries:
        match = _VERSION_DIR.fullmatch(e.name)
        if match and e.is_dir(follow_symlinks=False):
            found.append(int(match.group(1)))
    return sorted(found)


def _pointers_or_none(model_dir: Path) -> tuple[int | None, int | None]:
    """(live, pending) as the pointers say, unreadable ones as None; pending == live is none.

    PENDING is read before LIVE: an approval writes LIVE then removes PENDING, so this
    order never sees the candidate as pending after it went live.
    """
    values = []
    for name in (PENDING, LIVE):
        try:
            values.append(read_pointer(model_dir / name))
        except StoreError:
            values.append(None)
    pending, live = values
    return live, (None if pending == live else pending)


def _format_versions(versions: list[int]) -> str:
    """Compact ascending list with runs collapsed: ``[1-3, 7]``."""
    runs: list[str] = []
    start = prev = None
    for v in [*versions, None]:
        if v is not None and prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            runs.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = v
    return "[" + ", ".join(runs) + "]"


def _utc(ts: float) -> str | None:
    if not math.isfinite(ts):
        return None
    try:
        return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None
