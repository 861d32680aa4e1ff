"""Append-only history of evaluations and failed runs in one SQLite file.

The database runs in WAL mode so that readers (the CLI, the HTTP pages) never block
the daemon's writes. One connection is shared by all threads of the process behind a
lock: SQLite serialises writers anyway, and a single connection can be closed from
any thread. Other processes wait up to ``timeout`` seconds for a write lock.

Schema changes are numbered migrations recorded in ``schema_version``; opening a file
applies the missing ones in a transaction and refuses a file written by a newer
schema.

Versions. The snapshot store is the truth about which versions exist; the
``versions`` table is history's record of them, and ``highest_version`` the floor of
the next version's number, so that a version moved out of the store by hand never has
its number given to another model. The commit step writes a snapshot
first and its row after (``record_version``); a kill in between leaves a version
without a row, which ``reconcile(store)`` adds at start-up (origin ``reconcile``).
Committing both at once would need a two-phase commit across a directory and SQLite;
reconciling from the one source of truth gets the same end state with less machinery.

The database file and its WAL files are 0600 and a new parent directory 0700,
whatever the umask (SQLite gives the WAL files the database file's mode).

Evaluation mappings and tuples are JSON columns; floats are written with Python's
shortest round-trip repr, so every value comes back bit for bit.

Retention. With ``keep`` (``store.keep.history``), runs older than that before the
newest appended run are removed, at most once per ``PRUNE_EVERY`` of run time. What the
exporter counts of them is kept in the ``pruned`` table, one row per model (runs,
failures by reason, promotions, durations to the millisecond with their counts, the
first start and the last end), so that ``totals`` and the counters a batch job pushes
carry on as if nothing were removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import stat
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.checks import (
    Problem,
    check_float,
    check_float_mapping,
    check_int,
    check_real,
    check_str,
)
from monitor.durations import format_duration
from monitor.errors import InvalidInputError, StoreError
from monitor.ports import SnapshotStore
from monitor.records import (
    Evaluation,
    RunFailure,
    RunHistory,
    RunTotals,
    Snapshot,
    VersionInfo,
    scheduled_seconds,
)
from monitor.store._fs import FILE_MODE, linked, make_dirs, open_private
from monitor.store._names import check_model_name
from monitor.timestamps import ACCEPTED, format_time, parse_time

__all__ = [
    "PRUNE_EVERY",
    "SCHEMA_VERSION",
    "VERSIONS_SCHEMA",
    "SQLiteHistory",
    "cannot_open",
    "history_problem",
]

_log = logging.getLogger(__name__)

#: Run time between two prunings of the runs past ``keep`` (or a tenth of ``keep``).
PRUNE_EVERY = 3600.0

# Migration i (0-based) takes the schema from version i to version i + 1. Append only.
# Float columns have no declared type on purpose: with REAL affinity SQLite stores
# integral values as integers and -0.0 comes back as 0.0. Without it, a Python float
# is kept as its 8-byte IEEE double; the CHECK keeps other types out.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE evaluations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            model TEXT NOT NULL,
            window_start NOT NULL CHECK (typeof(window_start) = 'real'),
            window_end NOT NULL CHECK (typeof(window_end) = 'real'),
            evaluated_at NOT NULL CHECK (typeof(evaluated_at) = 'real'),
            n_rows INTEGER NOT NULL,
            live_version INTEGER NOT NULL,
            candidate_version INTEGER,
            promoted INTEGER NOT NULL CHECK (promoted IN (0, 1)),
            decision TEXT NOT NULL,
            slis TEXT NOT NULL,
            feature_psi TEXT NOT NULL,
            cluster_sizes TEXT NOT NULL,
            cluster_shares TEXT NOT NULL,
            centroid_drift TEXT NOT NULL,
            thresholds TEXT NOT NULL,
            phase_seconds TEXT NOT NULL,
            duration_seconds NOT NULL CHECK (typeof(duration_seconds) = 'real')
        )
        """,
        "CREATE INDEX evaluations_by_model ON evaluations (model, evaluated_at, id)",
        """
        CREATE TABLE failures (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            model TEXT NOT NULL,
            reason TEXT NOT NULL,
            message TEXT NOT NULL,
            at NOT NULL CHECK (typeof(at) = 'real'),
            window_label TEXT NOT NULL
        )
        """,
        "CREATE INDEX failures_by_model ON failures (model, at, id)",
    ),
    (
        """
        CREATE TABLE versions (
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            checksum TEXT,
            created_at CHECK (created_at IS NULL OR typeof(created_at) = 'real'),
            reason TEXT,
            parent_version INTEGER,
            k INTEGER,
            n_rows INTEGER,
            corrupt TEXT,
            origin TEXT NOT NULL CHECK (origin IN ('commit', 'reconcile')),
            PRIMARY KEY (model, version)
        )
        """,
    ),
    (
        # NULL in the rows recorded before: their durations are not known.
        "ALTER TABLE failures ADD COLUMN duration_seconds "
        "CHECK (duration_seconds IS NULL OR typeof(duration_seconds) = 'real')",
    ),
    (
        # What the exporter counts of the runs removed past the retention, per model.
        """
        CREATE TABLE pruned (
            model TEXT PRIMARY KEY,
            before NOT NULL CHECK (typeof(before) = 'real'),
            runs INTEGER NOT NULL,
            promotions INTEGER NOT NULL,
            failures TEXT NOT NULL,
            durations TEXT NOT NULL,
            first CHECK (first IS NULL OR typeof(first) = 'real'),
            last_end CHECK (last_end IS NULL OR typeof(last_end) = 'real')
        )
        """,
        # Pruning selects by time across models.
        "CREATE INDEX evaluations_by_time ON evaluations (evaluated_at)",
        "CREATE INDEX failures_by_time ON failures (at)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
#: When each schema came (the date of the commit that added its migration): every build
#: reports version 0.1.0, so a refusal names a build by date. Add one per migration.
SCHEMA_SINCE = {1: "2026-11-27", 2: "2026-12-01", 3: "2026-12-04", 4: "2026-12-06"}
#: The schema that added the ``versions`` table: a file migrated from an older one has its
#: stored versions recorded at the next start (``reconcile``).
VERSIONS_SCHEMA = 2

_EVALUATION_COLUMNS = (
    "model, window_start, window_end, evaluated_at, n_rows, live_version, candidate_version, "
    "promoted, decision, slis, feature_psi, cluster_sizes, cluster_shares, centroid_drift, "
    "thresholds, phase_seconds, duration_seconds"
)
_FAILURE_COLUMNS = "model, reason, message, at, window_label, duration_seconds"


def _private_file(path: Path) -> None:
    """Create ``path`` 0600 if missing; make it and its WAL files 0600 if they exist."""
    os.close(open_private(path))
    for p in _parts(path):
        try:
            if p.is_symlink():  # SQLite would write where it points
                os.close(open_private(p))  # the error that says so
            if stat.S_IMODE(os.stat(p).st_mode) != FILE_MODE:
                os.chmod(p, FILE_MODE)
        except FileNotFoundError:
            continue
        except PermissionError:
            continue  # someone else's file: opening it will say what is wrong, if anything


def _parts(path: Path) -> tuple[Path, Path, Path]:
    """The database at ``path`` and its WAL files."""
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _switch_to_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the lock.

    While processes open a new database at the same moment, the switch can fail with
    "database is locked" at once: SQLite does not call the busy handler for it, so the
    connection's own timeout does not help (seen with three processes in the tests).
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(0.2, delay * 2)


class SQLiteHistory:
    """Evaluations and failed runs in an SQLite file; meets ``History``; thread-safe."""

    def __init__(
        self,
        path: Path,
        *,
        timeout: float = 30.0,
        read_only: bool = False,
        keep: float | None = None,
    ) -> None:
        """Open (creating and migrating if needed) the history database at ``path``.

        ``read_only`` opens an existing file for queries only: nothing is created,
        migrated or chmod-ed, and every write raises StoreError (what commands that
        only read use, so that a newer CLI never migrates an older daemon's file).
        ``keep`` is the retention in seconds (None: every run is kept); appending
        prunes what is older (module docstring).
        """
        self.path = Path(path)
        self._lock = threading.Lock()
        self.read_only = bool(read_only)
        if keep is not None:
            keep = check_float(keep, "keep", low=0.0, low_inclusive=False, owner="SQLiteHistory")
        self.keep = keep
        self._pruned_at = -math.inf  # the run time of the latest pruning
        self._timeout = timeout
        # The schema the file had when this opening migrated it (None: it did not).
        self.migrated_from: int | None = None
        self._conn: sqlite3.Connection | None = None
        if self.read_only:
            self._conn = _open_read_only(self.path, timeout)
            self._failure_columns = _failure_columns(self._conn, self.path)
            self._carries = "pruned" in _tables(self._conn)  # schema 4 or newer
            return
        try:
            make_dirs(self.path.parent)
            _private_file(self.path)
            # Autocommit mode: each INSERT is its own transaction; migrations BEGIN explicitly.
            conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(cannot_open(self.path, exc)) from exc
        self._conn = conn
        try:
            try:
                _switch_to_wal(conn, timeout)
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise StoreError(cannot_open(self.path, exc)) from exc
            self._migrate(conn)
            self._failure_columns = _failure_columns(conn, self.path)
            self._carries = True
        except BaseException:
            conn.close()
            self._conn = None
            raise

    def __repr__(self) -> str:
        return f"SQLiteHistory({str(self.path)!r})"

    def __enter__(self) -> SQLiteHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def append(self, evaluation: Evaluation) -> None:
        """Record one evaluation."""
        row = _evaluation_row(evaluation)
        with self._connection() as conn:
            conn.execute(
                f"INSERT INTO evaluations ({_EVALUATION_COLUMNS}) "
                f"VALUES ({', '.join('?' * len(row))})",
                row,
            )
        self._prune_due(row[3])

    def append_failure(self, failure: RunFailure) -> None:
        """Record one failed run."""
        columns = self._failure_columns  # fewer in an old file opened read-only: it fails
        row = _failure_row(failure)[: columns.count(",") + 1]
        with self._connection() as conn:
            conn.execute(
                f"INSERT INTO failures ({columns}) VALUES ({', '.join('?' * len(row))})", row
            )
        self._prune_due(row[3])

    def prune(self, before: float) -> int:
        """Remove the runs (evaluations and failures) of every model from before
        ``before``, keeping their counts in ``pruned``; return how many were removed."""
        before = check_float(before, "before", owner="SQLiteHistory.prune")
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                removed = _fold(conn, before, self.path)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return removed

    def _prune_due(self, now: float) -> None:
        """Prune past ``keep`` before the run time ``now``, when a pruning is due."""
        if self.keep is None or now - self._pruned_at < min(PRUNE_EVERY, self.keep / 10):
            return
        self._pruned_at = now
        removed = self.prune(now - self.keep)
        if removed:
            _log.info(
                "history: removed %d run(s) from before %s, past store.keep.history (%s); "
                "their counts are kept",
                removed,
                format_time(round(now - self.keep)),
                format_duration(self.keep),
            )

    def record_version(self, snapshot: Snapshot) -> None:
        """Record a stored version (after the store wrote it); recording again is harmless."""
        if not isinstance(snapshot, Snapshot):
            raise InvalidInputError(
                "The 'snapshot' parameter of SQLiteHistory.record_version must be a Snapshot. "
                f"Got {type(snapshot).__name__} instead."
            )
        row = _version_row(snapshot)
        with self._connection() as conn:
            conn.execute(_UPSERT_VERSION, (*row, "commit"))

    def reconcile(self, store: SnapshotStore) -> list[tuple[str, int]]:
        """Add the rows missing for versions found in ``store``; return (model, version) added.

        A row whose checksum differs from the stored version's (a version number
        reused after versions were deleted by hand) is replaced: the store is the truth.
        """
        found = [info for model in store.models() for info in store.list_versions(model)]
        with self._connection() as conn:
            known = dict(
                ((m, v), c)
                for m, v, c in conn.execute("SELECT model, version, checksum FROM versions")
            )
            rows = [
                (*_info_row(i), "reconcile")
                for i in found
                if (i.model, i.version) not in known
                or (i.checksum is not None and known[(i.model, i.version)] != i.checksum)
            ]
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_UPSERT_VERSION, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return [(row[0], row[1]) for row in rows]

    # ------------------------------------------------------------------ queries

    def models(self) -> list[str]:
        """Every model the file holds a run or a version of, sorted."""
        with self._connection() as conn:
            # A file of an older schema, read-only, lacks the newer tables.
            held = _tables(conn)
            tables = [t for t in ("evaluations", "failures", "versions", "pruned") if t in held]
            union = " UNION ".join(f"SELECT model FROM {t}" for t in tables)
            rows = conn.execute(f"SELECT DISTINCT model FROM ({union}) ORDER BY model").fetchall()
        return [str(m) for (m,) in rows]

    def recorded_versions(self, model: str) -> list[int]:
        """The versions of a model that history has a row for, ascending."""
        model = check_model_name(model, "SQLiteHistory.recorded_versions")
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT version FROM versions WHERE model = ? ORDER BY version", (model,)
            ).fetchall()
        return [int(v) for (v,) in rows]

    def highest_version(self, model: str) -> int:
        """The newest version of a model with a row, or named by a run (0: none): what
        the next version is numbered after, whatever the store still holds."""
        model = check_model_name(model, "SQLiteHistory.highest_version")
        with self._connection() as conn:
            (highest,) = conn.execute(_HIGHEST_VERSION, (model,) * 3).fetchone()
        return 0 if highest is None else int(highest)

    def live_versions(self, model: str) -> set[int]:
        """The versions of a model its runs scored or promoted (runs past ``keep`` gone)."""
        model = check_model_name(model, "SQLiteHistory.live_versions")
        with self._connection() as conn:
            rows = conn.execute(_LIVE_VERSIONS, (model, model)).fetchall()
        return {int(v) for (v,) in rows}

    def totals(self, model: str) -> RunTotals:
        """Every run of a model the file holds, counted (what a batch job exports)."""
        model = check_model_name(model, "SQLiteHistory.totals")
        with self._connection() as conn:
            evaluations = conn.execute(
                "SELECT evaluated_at, duration_seconds, promoted, phase_seconds "
                "FROM evaluations WHERE model = ?",
                (model,),
            ).fetchall()
            failures = conn.execute(
                f"SELECT {self._failure_columns} FROM failures WHERE model = ?", (model,)
            ).fetchall()
        try:
            failed = RunTotals.of([], [self._failure(row) for row in failures])
            durations = [_scheduled(s, p) for _, s, _, p in evaluations]
            succeeded = RunTotals(
                runs=len(evaluations),
                promotions=sum(int(promoted) for _, _, promoted, _ in evaluations),
                durations=tuple(durations),
                first=min((float(at) for at, *_ in evaluations), default=None),
                last_end=max((float(at) + float(s) for at, s, *_ in evaluations), default=None),
            )
            carried = self._carried(model)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"history database {self.path} holds a corrupt row: {exc}") from exc
        return succeeded + failed + (RunTotals() if carried is None else carried.totals())

    def pruned_before(self, model: str) -> float | None:
        """The time before which runs of ``model`` were removed (None: none were)."""
        model = check_model_name(model, "SQLiteHistory.pruned_before")
        carried = self._carried(model)
        return None if carried is None else carried.before

    def _carried(self, model: str) -> _Carried | None:
        if not self._carries:
            return None
        try:
            with self._connection() as conn:
                return _carried_of(conn, model)
        except (TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"history database {self.path} holds a corrupt row: {exc}") from exc

    def since(
        self,
        model: str,
        since: float,
        until: float | None = None,
        *,
        limit: int = 10_000,
        oldest: bool = False,
    ) -> RunHistory:
        """Evaluations and failures of a model in ``[since, until)``, oldest first.

        At most ``limit`` of each, the newest ones when there are more (``oldest``: the
        oldest ones).
        """
        owner = "SQLiteHistory.since"
        model = check_model_name(model, owner)
        since = check_float(since, "since", owner=owner)
        end = float("inf") if until is None else check_float(until, "until", owner=owner)
        limit = check_int(limit, "limit", low=1, owner=owner)
        order = "ASC" if oldest else "DESC"  # both walk the (model, time, id) indexes
        with self._connection() as conn:
            evaluations = conn.execute(
                f"SELECT {_EVALUATION_COLUMNS} FROM evaluations WHERE model = ? "
                "AND evaluated_at >= ? AND evaluated_at < ? "
                f"ORDER BY evaluated_at {order}, id {order} LIMIT ?",
                (model, since, end, limit),
            ).fetchall()
            failures = conn.execute(
                f"SELECT {self._failure_columns} FROM failures WHERE model = ? "
                f"AND at >= ? AND at < ? ORDER BY at {order}, id {order} LIMIT ?",
                (model, since, end, limit),
            ).fetchall()
        if not oldest:
            evaluations, failures = evaluations[::-1], failures[::-1]
        return RunHistory(
            model=model,
            since=since,
            until=until if until is None else end,
            evaluations=tuple(self._evaluation(row) for row in evaluations),
            failures=tuple(self._failure(row) for row in failures),
        )

    def recent(self, model: str, limit: int = 20) -> list[Evaluation]:
        """The latest evaluations of a model, newest first: the last written, not the
        latest stamped (a run stamped before the wall clock stepped back is not the latest)."""
        model = check_model_name(model, "SQLiteHistory.recent")
        limit = check_int(limit, "limit", low=1, owner="SQLiteHistory.recent")
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {_EVALUATION_COLUMNS} FROM evaluations WHERE model = ? "
                "ORDER BY id DESC LIMIT ?",
                (model, limit),
            ).fetchall()
        return [self._evaluation(row) for row in rows]

    def failures(self, model: str, limit: int = 20) -> list[RunFailure]:
        """The latest failed runs of a model, the last written first."""
        model = check_model_name(model, "SQLiteHistory.failures")
        limit = check_int(limit, "limit", low=1, owner="SQLiteHistory.failures")
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {self._failure_columns} FROM failures WHERE model = ? "
                "ORDER BY id DESC LIMIT ?",
                (model, limit),
            ).fetchall()
        return [self._failure(row) for row in rows]

    def close(self) -> None:
        """Close the database; later calls raise StoreError. Closing twice is harmless."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ internals

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"the history database {self.path} is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(f"history database {self.path}: {exc}") from exc

    def _evaluation(self, row: tuple[Any, ...]) -> Evaluation:
        try:
            return Evaluation(
                model=row[0],
                window_start=_time(row[1], "window_start"),
                window_end=_time(row[2], "window_end"),
                evaluated_at=_time(row[3], "evaluated_at"),
                n_rows=int(row[4]),
                live_version=int(row[5]),
                candidate_version=None if row[6] is None else int(row[6]),
                promoted=bool(row[7]),
                decision=row[8],
                slis=_loads_mapping(row[9]),
                feature_psi=_loads_mapping(row[10]),
                cluster_sizes=tuple(int(x) for x in json.loads(row[11])),
                cluster_shares=tuple(float(x) for x in json.loads(row[12])),
                centroid_drift=tuple(float(x) for x in json.loads(row[13])),
                thresholds=_loads_mapping(row[14]),
                phase_seconds=_loads_mapping(row[15]),
                duration_seconds=float(row[16]),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"history database {self.path} holds a corrupt row: {exc}") from exc

    def _failure(self, row: tuple[Any, ...]) -> RunFailure:
        m, reason, message, at, label, seconds = row if len(row) == 6 else (*row, None)
        try:
            when = _time(at, "at")
            seconds = None if seconds is None else float(seconds)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"history database {self.path} holds a corrupt row: {exc}") from exc
        return RunFailure(m, reason, message, when, window_label=label, duration_seconds=seconds)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        try:
            if foreign := _foreign_tables(_tables(conn)):
                raise StoreError(f"{self.path} {foreign}")
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            # IMMEDIATE takes the write lock first, so two processes opening a new file
            # do not both apply the same migration.
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
                current = 0 if current is None else int(current)
                if current > SCHEMA_VERSION:
                    raise StoreError(_newer_schema(self.path, current))
                if 0 < current < SCHEMA_VERSION:
                    # Under the write lock: no run lands in the file after the copy.
                    _keep_copy(self.path, current, self._timeout)
                    self.migrated_from = current
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[version - 1]:
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(cannot_open(self.path, exc, "prepare")) from exc


def backup_path(path: Path, schema: int) -> Path:
    """Where the migration keeps the history at ``path`` as it was at ``schema``."""
    return path.with_name(f"{path.name}.schema-{schema}.bak")


def _keep_copy(path: Path, schema: int, timeout: float) -> None:
    """Copy the history at ``path`` (of ``schema``, older than this code's) to
    ``backup_path`` before the migration, 0600 as the file: the migration is one way, and
    an older kmeans-monitor reads the copy, where it refuses the migrated file
    (helper-161: a downgrade needed a backup nobody had said to take). A full copy: as
    long and as large as the file. One that cannot be made stops the migration."""
    copy = backup_path(path, schema)
    partial = copy.with_name(copy.name + ".partial")
    try:
        for part in _parts(partial):
            part.unlink(missing_ok=True)
        os.close(open_private(partial))
        # Another connection: a backup from the one in the migration's write
        # transaction waits on itself. A reader in WAL mode sees the file as committed.
        with (
            contextlib.closing(sqlite3.connect(path, timeout=timeout)) as source,
            contextlib.closing(sqlite3.connect(partial)) as target,
        ):
            source.backup(target)
        os.replace(partial, copy)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise StoreError(
            f"history database {path} (schema {schema}): cannot keep a copy at {copy} "
            f"before migrating it to schema {SCHEMA_VERSION}: {exc}; free space beside it "
            "(the copy is as large as the file) and start again"
        ) from exc
    _log.info(
        "history: kept a copy of %s (schema %d) at %s before migrating it to schema %d; "
        "an older kmeans-monitor reads the copy, not the migrated file (docs/upgrading.md)",
        path,
        schema,
        copy,
        SCHEMA_VERSION,
    )


def _failure_columns(conn: sqlite3.Connection, path: Path) -> str:
    """The failure columns this file holds: a file of schema 2 or older opened read-only
    has no ``duration_seconds`` (its failed runs' durations were not kept)."""
    try:
        names = {row[1] for row in conn.execute("PRAGMA table_info(failures)")}
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(cannot_open(path, exc, "read")) from exc
    if "duration_seconds" in names:
        return _FAILURE_COLUMNS
    return _FAILURE_COLUMNS.removesuffix(", duration_seconds")


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def _newer_schema(path: Path, current: int) -> str:
    """The refusal of a history a newer kmeans-monitor migrated, with what to do: every
    build reports version 0.1.0, so it names the date of this build's schema and the
    copy the migration kept, where there is one (helper-161: "upgrade kmeans-monitor"
    could not be acted on)."""
    copies = [backup_path(path, v) for v in range(SCHEMA_VERSION, 0, -1)]
    copy = next((c for c in copies if c.is_file()), None)
    back = (
        f"to go back, put the copy the upgrade kept, {copy}, in its place"
        if copy is not None
        else "to go back, restore the state directory's backup from before the upgrade"
    )
    return (
        f"history database {path} has schema version {current}; this kmeans-monitor reads "
        f"up to {SCHEMA_VERSION} (builds from {SCHEMA_SINCE[SCHEMA_VERSION]} on): run the "
        f"newer kmeans-monitor that migrated it, or, {back} (docs/upgrading.md)"
    )


def _foreign_tables(names: list[str]) -> str | None:
    """What is wrong with a database whose tables (``names``) are not ours (another
    program's file, named as the history): it must not be written into."""
    if not names or "schema_version" in names:
        return None
    shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
    return f"is a database of something else (tables {shown}), not a kmeans-monitor history"


def cannot_open(path: Path, exc: BaseException, verb: str = "open") -> str:
    """Why the history database at ``path`` cannot be opened (or read), with what to do
    when SQLite's reason says: a damaged file is moved aside, a full disk freed."""
    said = f"cannot {verb} the history database {path}: {exc}"
    primary = _code(exc)
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        # The history is a record: runs, the store and its versions go on without it.
        return f"{said}: move it aside, and the next run starts a new one (no snapshot is in it)"
    if primary in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
        return f"{said}: is its file system full? free space there (or check the disk)"
    if primary == sqlite3.SQLITE_READONLY:
        # SQLite's "attempt to write a readonly database" names no cause: permissions.
        return f"{said}: this user may not write it or its directory (permission denied)"
    return said


def history_problem(path: Path) -> str | None:
    """Why a run could not open the history database at ``path`` (which it creates when
    missing): a symbolic link (which the run refuses), not a database, another
    program's, or of a newer schema. None if it can."""
    for part in _parts(path):
        if part.is_symlink():  # SQLite would read and write where it points
            return f"cannot open the history database {path}: {linked(part)}"
    if not path.exists():
        return None
    try:
        with contextlib.closing(_connect_read_only(path, timeout=1.0)) as conn:
            names = _tables(conn)
            if foreign := _foreign_tables(names):
                return f"{path} {foreign}"
            if "schema_version" not in names:
                return None  # an empty database: the run makes its tables
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    except NotWritableError:
        return None  # the state directory's own check says this user may not write it
    except sqlite3.Error as exc:
        return cannot_open(path, exc)
    current = 0 if row[0] is None else int(row[0])
    return _newer_schema(path, current) if current > SCHEMA_VERSION else None


def _connect_read_only(path: Path, **options: Any) -> sqlite3.Connection:
    """A read-only connection to the database at ``path``, its first page read.

    In WAL mode even a reader needs the ``-shm`` file: after a clean stop there is
    none, and a reader that cannot create it (a read-only file system, a directory this
    user may not write) failed with "unable to open database file" (helper-103).
    """
    # as_uri() percent-encodes the path, so no character of it reads as a URI option.
    uri = path.resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, **options)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        # SQLite 3.40 says SQLITE_READONLY_DIRECTORY (1544) where older ones said CANTOPEN.
        if _code(exc) not in _NO_SHM or os.access(path.parent, os.W_OK):
            raise
        if (why := _not_frozen(path)) is not None:
            raise NotWritableError(why) from exc
    # immutable=1: SQLite reads the main file without locks or -shm, trusting that
    # nothing changes it. True here: no one writes on a read-only file system, and with
    # no -wal file every committed run is in the main file.
    return sqlite3.connect(uri + "&immutable=1", uri=True, **options)


# What SQLite says when a reader cannot make the -shm file.
_NO_SHM = (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY)


class NotWritableError(sqlite3.OperationalError):
    """A database this user may read but not open: SQLite must make its -shm file in a
    directory this user may not write (the daemon may run as another)."""


def _not_frozen(path: Path) -> str | None:
    """Why the database at ``path``, whose -shm this user cannot make, cannot be read
    as an immutable file; None when it can: a read-only file system and no -wal."""
    try:
        read_only = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if not read_only:
        # Not immutable: the daemon, as its own user, may start and checkpoint its
        # -wal into the main file under the reader, which would read torn pages.
        return (
            f"this user cannot write in {path.parent} (SQLite makes {path.name}-shm "
            "there even to read): use the user who runs the daemon, or a copy"
        )
    if path.with_name(path.name + "-wal").exists():
        # Runs committed to a -wal that a crash left are not in the main file.
        return (
            f"{path.name}-wal holds runs not in it yet, and SQLite cannot make "
            f"{path.name}-shm on this read-only file system: read a writable copy of both"
        )
    return None


def _code(exc: BaseException) -> int | None:
    """SQLite's primary result code of ``exc`` (extended codes keep it in the low byte)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _open_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """A query-only connection to an existing history file whose schema this code reads."""
    if not path.is_file():
        there = ": it is a directory" if path.is_dir() else ""
        raise StoreError(f"no history database at {path}{there}")
    try:
        conn = _connect_read_only(
            path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise StoreError(cannot_open(path, exc)) from exc
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(cannot_open(path, exc, "read")) from exc
    current = 0 if row[0] is None else int(row[0])
    if not 1 <= current <= SCHEMA_VERSION:
        conn.close()
        raise StoreError(
            _newer_schema(path, current)
            if current > SCHEMA_VERSION
            else f"history database {path} has schema version {current}; this "
            f"kmeans-monitor reads 1 to {SCHEMA_VERSION}"
        )
    return conn


# ---------------------------------------------------------------------- retention

_PRUNED_COLUMNS = "model, before, runs, promotions, failures, durations, first, last_end"


@dataclass
class _Carried:
    """What the exporter counts of one model's removed runs (a row of ``pruned``)."""

    model: str
    before: float = -math.inf
    runs: int = 0
    promotions: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    durations: Counter[int] = field(default_factory=Counter)  # milliseconds -> runs
    first: float | None = None
    last_end: float | None = None

    @classmethod
    def of_row(cls, row: tuple[Any, ...]) -> _Carried:
        failures, durations = json.loads(row[4]), json.loads(row[5])
        return cls(
            model=row[0],
            before=float(row[1]),
            runs=int(row[2]),
            promotions=int(row[3]),
            failures=Counter({str(k): int(n) for k, n in failures.items()}),
            durations=Counter({int(ms): int(n) for ms, n in durations.items()}),
            first=None if row[6] is None else float(row[6]),
            last_end=None if row[7] is None else float(row[7]),
        )

    def row(self) -> tuple[Any, ...]:
        return (
            self.model,
            self.before,
            self.runs,
            self.promotions,
            _dumps(dict(sorted(self.failures.items()))),
            _dumps({str(ms): n for ms, n in sorted(self.durations.items())}),
            self.first,
            self.last_end,
        )

    def add(self, start: float, seconds: float | None, scheduled: float | None) -> None:
        """Count one run that started at ``start`` and took ``seconds`` (None: not
        recorded), ``scheduled`` of them for the duration histogram."""
        self.runs += 1
        end = start + (seconds or 0.0)
        self.first = start if self.first is None else min(self.first, start)
        self.last_end = end if self.last_end is None else max(self.last_end, end)
        if scheduled is not None:
            self.durations[round(scheduled * 1000)] += 1

    def totals(self) -> RunTotals:
        return RunTotals(
            runs=self.runs,
            failures=dict(self.failures),
            promotions=self.promotions,
            durations=tuple(ms / 1000 for ms in sorted(self.durations.elements())),
            first=self.first,
            last_end=self.last_end,
        )


def _carried_of(conn: sqlite3.Connection, model: str) -> _Carried | None:
    """The ``pruned`` row of ``model``, if any (a corrupt one: TypeError or ValueError)."""
    row = conn.execute(f"SELECT {_PRUNED_COLUMNS} FROM pruned WHERE model = ?", (model,))
    found = row.fetchone()
    return None if found is None else _Carried.of_row(found)


def _scheduled(seconds: Any, phases: str) -> float:
    """``scheduled_seconds`` of a stored evaluation: its duration and phases columns.
    Only a first run's phases name a reference: only those are parsed."""
    return scheduled_seconds(
        float(seconds), _loads_mapping(phases) if "reference" in phases else {}
    )


def _fold(conn: sqlite3.Connection, before: float, path: Path) -> int:
    """Count the runs from before ``before`` into ``pruned`` and delete them (inside the
    caller's transaction); return how many."""
    carried: dict[str, _Carried] = {}

    def of(model: str) -> _Carried:
        if model not in carried:
            carried[model] = _carried_of(conn, model) or _Carried(model)
        return carried[model]

    try:
        for model, at, seconds, promoted, phases in conn.execute(
            "SELECT model, evaluated_at, duration_seconds, promoted, phase_seconds "
            "FROM evaluations WHERE evaluated_at < ?",
            (before,),
        ).fetchall():
            c = of(model)
            c.add(float(at), float(seconds), _scheduled(seconds, phases))
            c.promotions += int(promoted)
        for model, reason, at, seconds in conn.execute(
            "SELECT model, reason, at, duration_seconds FROM failures WHERE at < ?", (before,)
        ).fetchall():
            c = of(model)
            took = None if seconds is None else float(seconds)
            c.add(float(at), took, took)
            c.failures[reason] += 1
    except (TypeError, ValueError, AttributeError) as exc:
        raise StoreError(f"history database {path} holds a corrupt row: {exc}") from exc
    for c in carried.values():
        c.before = max(c.before, before)
        conn.execute(
            f"INSERT OR REPLACE INTO pruned ({_PRUNED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            c.row(),
        )
    removed = conn.execute("DELETE FROM evaluations WHERE evaluated_at < ?", (before,)).rowcount
    return removed + conn.execute("DELETE FROM failures WHERE at < ?", (before,)).rowcount


# ---------------------------------------------------------------------- rows


def _evaluation_row(e: Evaluation) -> tuple[Any, ...]:
    owner = "SQLiteHistory.append"
    if not isinstance(e, Evaluation):
        raise InvalidInputError(
            f"The 'evaluation' parameter of {owner} must be an Evaluation. "
            f"Got {type(e).__name__} instead."
        )
    candidate = e.candidate_version
    if candidate is not None:
        candidate = check_int(candidate, "evaluation.candidate_version", owner=owner)
    if not isinstance(e.promoted, bool | np.bool_):
        raise InvalidInputError(
            f"The 'evaluation.promoted' parameter of {owner} must be a bool. "
            f"Got {e.promoted!r} instead."
        )
    return (
        check_model_name(e.model, owner),
        _run_time(e.window_start, "evaluation.window_start", owner),
        _run_time(e.window_end, "evaluation.window_end", owner),
        _run_time(e.evaluated_at, "evaluation.evaluated_at", owner),
        check_int(e.n_rows, "evaluation.n_rows", low=0, owner=owner),
        check_int(e.live_version, "evaluation.live_version", owner=owner),
        candidate,
        int(bool(e.promoted)),
        check_str(e.decision, "evaluation.decision", owner=owner),
        _dumps(check_float_mapping(e.slis, "evaluation.slis", owner=owner)),
        _dumps(check_float_mapping(e.feature_psi, "evaluation.feature_psi", owner=owner)),
        _dumps([check_int(x, "evaluation.cluster_sizes", owner=owner) for x in e.cluster_sizes]),
        _dumps([check_real(x, "evaluation.cluster_shares", owner=owner) for x in e.cluster_shares]),
        _dumps([check_real(x, "evaluation.centroid_drift", owner=owner) for x in e.centroid_drift]),
        _dumps(check_float_mapping(e.thresholds, "evaluation.thresholds", owner=owner)),
        _dumps(check_float_mapping(e.phase_seconds, "evaluation.phase_seconds", owner=owner)),
        _not_nan(e.duration_seconds, "evaluation.duration_seconds", owner),
    )


def _failure_row(f: RunFailure) -> tuple[Any, ...]:
    owner = "SQLiteHistory.append_failure"
    if not isinstance(f, RunFailure):
        raise InvalidInputError(
            f"The 'failure' parameter of {owner} must be a RunFailure. "
            f"Got {type(f).__name__} instead."
        )
    return (
        check_model_name(f.model, owner),
        check_str(f.reason, "failure.reason", owner=owner),
        check_str(f.message, "failure.message", owner=owner),
        _run_time(f.at, "failure.at", owner),
        check_str(f.window_label, "failure.window_label", owner=owner),
        None
        if f.duration_seconds is None
        else _not_nan(f.duration_seconds, "failure.duration_seconds", owner),
    )


def _time(value: Any, name: str) -> float:
    """A stored time: finite unix seconds from 1970 to 9999, as every run's time is (a row
    edited by hand may hold any real: ValueError then, which names ``name``)."""
    return parse_time(float(value), name)


_UPSERT_VERSION = """
    INSERT INTO versions (model, version, checksum, created_at, reason, parent_version, k,
                          n_rows, corrupt, origin)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (model, version) DO UPDATE SET
        checksum = excluded.checksum, created_at = excluded.created_at,
        reason = excluded.reason, parent_version = excluded.parent_version, k = excluded.k,
        n_rows = excluded.n_rows, corrupt = excluded.corrupt, origin = excluded.origin
    WHERE versions.checksum IS NOT excluded.checksum
"""


# Runs name versions too: a version recorded before the versions table existed (schema 1)
# and removed from the store since has no row, but its runs still say "v3".
_HIGHEST_VERSION = """
    SELECT MAX(v) FROM (
        SELECT MAX(version) AS v FROM versions WHERE model = ?
        UNION ALL SELECT MAX(live_version) FROM evaluations WHERE model = ?
        UNION ALL SELECT MAX(candidate_version) FROM evaluations WHERE model = ?
    )
"""


_LIVE_VERSIONS = """
    SELECT live_version FROM evaluations WHERE model = ?
    UNION SELECT candidate_version FROM evaluations
        WHERE model = ? AND promoted = 1 AND candidate_version IS NOT NULL
"""


def _version_row(s: Snapshot) -> tuple[Any, ...]:
    owner = "SQLiteHistory.record_version"
    parent = s.parent_version
    return (
        check_model_name(s.model, owner),
        check_int(s.version, "snapshot.version", low=1, owner=owner),
        check_str(s.checksum, "snapshot.checksum", owner=owner, non_empty=True),
        _not_nan(s.created_at, "snapshot.created_at", owner),
        check_str(s.reason, "snapshot.reason", owner=owner),
        None if parent is None else check_int(parent, "snapshot.parent_version", owner=owner),
        int(s.k),
        check_int(s.n_rows, "snapshot.n_rows", low=0, owner=owner),
        None,
    )


def _info_row(i: VersionInfo) -> tuple[Any, ...]:
    return (
        i.model,
        i.version,
        i.checksum,
        i.created_at,
        i.reason,
        i.parent_version,
        i.k,
        i.n_rows,
        i.corrupt,
    )


def _run_time(value: Any, name: str, owner: str) -> float:
    """A run's time or its window's bound: unix seconds from 1970 to 9999, as ``_time``
    reads them back (a row that fails there is corrupt)."""
    seconds = check_real(value, name, owner=owner, allow_nan=False)
    try:
        return _time(seconds, name)
    except InvalidInputError:
        expected = f"unix seconds {ACCEPTED}"
        raise InvalidInputError(Problem(name, expected, value).param(owner)) from None


def _not_nan(value: Any, name: str, owner: str) -> float:
    # SQLite stores a NaN REAL as NULL, which would not come back; JSON columns keep NaN.
    return check_real(value, name, owner=owner, allow_nan=False)


def _dumps(value: Any) -> str:
    # NaN and infinity use Python's JSON extension so that they round-trip exactly.
    return json.dumps(value, separators=(",", ":"))


def _loads_mapping(text: str) -> dict[str, float]:
    loaded = json.loads(text)
    if not isinstance(loaded, Mapping):
        raise ValueError(f"expected a JSON object, got {text[:40]!r}")
    return {str(k): float(v) for k, v in loaded.items()}
