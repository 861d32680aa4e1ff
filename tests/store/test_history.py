"""SQLiteHistory: exact round trips, ordering, migrations and concurrent writers."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from _store_factories import make_evaluation, make_failure, make_snapshot, same_bits

from monitor.errors import InvalidInputError, StoreError
from monitor.ports import History
from monitor.store import DirectorySnapshotStore, SQLiteHistory
from monitor.store.history import (
    PRUNE_EVERY,
    SCHEMA_SINCE,
    SCHEMA_VERSION,
    cannot_open,
    history_problem,
)
from monitor.store.memory import MemoryHistory
from monitor.store.overlay import OverlayHistory

if TYPE_CHECKING:
    from tests.conftest import Mount


@pytest.fixture
def history(tmp_path: Path) -> Any:
    h = SQLiteHistory(tmp_path / "state" / "history.sqlite")
    yield h
    h.close()


def test_history_meets_the_port(history: SQLiteHistory) -> None:
    assert isinstance(history, History)


EVALUATIONS = {
    "plain": lambda: make_evaluation(),
    "no_candidate_promoted": lambda: make_evaluation(candidate_version=None, promoted=True),
    "edge_floats": lambda: make_evaluation(
        window_start=-0.0,
        evaluated_at=1_700_000_000.123456789,
        duration_seconds=5e-324,
        slis={"silhouette": 0.1 + 0.2, "nan_allowed_in_json": float("nan"), "neg": -0.0},
        feature_psi={"f0": float("inf"), "f1": 1e-300},
        cluster_shares=(1 / 3, 1 / 3, 1 / 3),
        centroid_drift=(float("inf"), -0.0, 1.7976931348623157e308),
        thresholds={},
        phase_seconds={"z_last": 1.0, "a_first": 2.0},  # insertion order, not sorted
    ),
    "empty_model_state": lambda: make_evaluation(
        n_rows=0, cluster_sizes=(), cluster_shares=(), centroid_drift=(), feature_psi={}
    ),
}


@pytest.mark.parametrize("name", sorted(EVALUATIONS))
def test_evaluation_round_trips_exactly(history: SQLiteHistory, name: str) -> None:
    original = EVALUATIONS[name]()
    history.append(original)
    (loaded,) = history.recent("m1")
    same_bits(loaded, original)


def test_numpy_scalars_come_back_as_python_values(history: SQLiteHistory) -> None:
    original = make_evaluation(
        n_rows=np.int64(7),
        cluster_sizes=tuple(np.array([4, 3], dtype=np.int32)),
        cluster_shares=tuple(np.array([0.5, 0.25])),
        promoted=np.bool_(True),
        slis={"silhouette": np.float32(0.5)},
    )
    history.append(original)
    (loaded,) = history.recent("m1")
    assert loaded.n_rows == 7 and type(loaded.n_rows) is int
    assert loaded.cluster_sizes == (4, 3) and all(type(x) is int for x in loaded.cluster_sizes)
    assert loaded.cluster_shares == (0.5, 0.25)
    assert loaded.promoted is True
    assert loaded.slis == {"silhouette": 0.5}  # 0.5 is exact in float32


def test_recent_is_the_last_written_first_per_model_with_a_limit(
    history: SQLiteHistory,
) -> None:
    # Stamped out of time order (the wall clock stepped back after the run at 30): the
    # latest is the run written last, not the one stamped latest (t13 F2).
    for t in [30.0, 10.0, 20.0]:
        history.append(make_evaluation(evaluated_at=t, decision=f"t={t}"))
    history.append(make_evaluation(evaluated_at=20.0, decision="t=20 again"))
    history.append(make_evaluation("m2", evaluated_at=99.0))
    for t in [30.0, 10.0]:
        history.append_failure(make_failure(at=t))

    assert [e.decision for e in history.recent("m1")] == [
        "t=20 again",
        "t=20.0",
        "t=10.0",
        "t=30.0",
    ]
    assert [e.evaluated_at for e in history.recent("m1", limit=2)] == [20.0, 20.0]
    assert [f.at for f in history.failures("m1")] == [10.0, 30.0]
    assert [e.model for e in history.recent("m2")] == ["m2"]
    assert history.recent("nobody") == []


def test_failures_round_trip_newest_first(history: SQLiteHistory) -> None:
    first = make_failure(at=100.0, reason="schema", message="column 'f1' missing", window_label="")
    second = make_failure(at=200.0, message="ünïcode and 'quotes'; DROP TABLE failures;")
    history.append_failure(first)
    history.append_failure(second)
    history.append_failure(make_failure("m2", at=300.0))
    assert history.failures("m1") == [second, first]
    assert history.failures("m1", limit=1) == [second]
    assert history.recent("m1") == []  # failures are not evaluations


def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with SQLiteHistory(path) as h:
        h.append(make_evaluation())
        h.append_failure(make_failure())
    with SQLiteHistory(path) as h:
        assert h.recent("m1") == [make_evaluation()]
        assert h.failures("m1") == [make_failure()]


def test_the_file_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    SQLiteHistory(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [
            (v,) for v in range(1, SCHEMA_VERSION + 1)
        ]
    finally:
        conn.close()
    # Reopening does not apply the migrations twice.
    SQLiteHistory(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    SQLiteHistory(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade"):
        SQLiteHistory(path)


def test_the_refusal_of_a_newer_schema_says_what_to_do(tmp_path: Path) -> None:
    # helper-161: "upgrade kmeans-monitor", where every build reports version 0.1.0 and
    # the user wanted to go back.
    assert sorted(SCHEMA_SINCE) == list(range(1, SCHEMA_VERSION + 1))  # one per migration
    path = tmp_path / "h.sqlite"
    SQLiteHistory(path).close()
    shutil.copy(path, tmp_path / f"h.sqlite.schema-{SCHEMA_VERSION}.bak")  # as a migration
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
        conn.commit()
    said = (
        f"history database {path} has schema version {SCHEMA_VERSION + 1}; this "
        f"kmeans-monitor reads up to {SCHEMA_VERSION} (builds from "
        f"{SCHEMA_SINCE[SCHEMA_VERSION]} on): run the newer kmeans-monitor that migrated it, "
        f"or, to go back, put the copy the upgrade kept, {path}.schema-{SCHEMA_VERSION}.bak, "
        "in its place (docs/upgrading.md)"
    )
    for read_only in (False, True):
        with pytest.raises(StoreError) as refused:
            SQLiteHistory(path, read_only=read_only)
        assert str(refused.value) == said
    assert history_problem(path) == said


def test_another_programs_database_is_not_written_into(tmp_path: Path) -> None:
    # Its tables were kept and ours added beside them, as if it were an empty file.
    path = tmp_path / "h.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE accounts (id)")
        conn.commit()
    with pytest.raises(StoreError, match=r"database of something else \(tables accounts\)"):
        SQLiteHistory(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("accounts",)]
    SQLiteHistory(tmp_path / "empty.sqlite").close()  # an empty file is a new history


def test_a_file_that_is_not_a_database_is_a_store_error_that_says_to_move_it_aside(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.sqlite"
    path.write_bytes(b"this is not SQLite" * 100)
    said = (
        f"cannot open the history database {path}: file is not a database: move it aside, "
        "and the next run starts a new one (no snapshot is in it)"
    )
    with pytest.raises(StoreError) as caught:
        SQLiteHistory(path)
    assert str(caught.value) == said
    with pytest.raises(StoreError) as caught:
        SQLiteHistory(path, read_only=True)
    assert str(caught.value) == said  # its first page is read as it is opened
    assert history_problem(path) == said


def disk_error(*args: Any, **kwargs: Any) -> Any:
    """What SQLite says on a full tmpfs: SQLITE_IOERR_WRITE, not SQLITE_FULL."""
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorcode = sqlite3.SQLITE_IOERR | (3 << 8)  # type: ignore[attr-defined]
    raise error


def test_a_disk_error_says_to_free_space_or_check_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "h.sqlite"
    SQLiteHistory(path).close()
    monkeypatch.setattr(sqlite3, "connect", disk_error)
    said = (
        f"cannot open the history database {path}: disk I/O error: is its file system "
        "full? free space there (or check the disk)"
    )
    with pytest.raises(StoreError) as caught:
        SQLiteHistory(path)
    assert str(caught.value) == said
    assert history_problem(path) == said


def test_closed_history_raises_and_closing_twice_is_harmless(tmp_path: Path) -> None:
    h = SQLiteHistory(tmp_path / "h.sqlite")
    h.close()
    h.close()
    with pytest.raises(StoreError, match="is closed"):
        h.append(make_evaluation())
    with pytest.raises(StoreError, match="is closed"):
        h.recent("m1")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda h: h.append(
                make_evaluation(window_start=0.0, window_end=1.0, evaluated_at=float("nan"))
            ),
            re.escape(
                "The 'evaluation.evaluated_at' parameter of SQLiteHistory.append must be a real "
                "number other than NaN. Got nan instead."
            ),
        ),
        (
            lambda h: h.append(make_evaluation(n_rows=2.5)),
            re.escape(
                "The 'evaluation.n_rows' parameter of SQLiteHistory.append must be an int in "
                "[0, inf). Got 2.5 instead."
            ),
        ),
        (lambda h: h.append(make_evaluation(promoted=2)), "'evaluation.promoted' .* a bool"),
        (lambda h: h.append(make_evaluation(slis={"s": "x"})), "real number. Got 'x' instead"),
        (lambda h: h.append(make_evaluation("../m")), "The 'model' parameter of SQLiteHistory"),
        (lambda h: h.append(make_failure()), "must be an Evaluation. Got RunFailure instead"),
        (lambda h: h.append_failure(make_failure(at=float("nan"))), "'failure.at'"),
        # What the reader would refuse as a corrupt row is refused at the write.
        (
            lambda h: h.append(make_evaluation(window_start=-1.0)),
            re.escape(
                "The 'evaluation.window_start' parameter of SQLiteHistory.append must be unix "
                "seconds from 1970-01-01 up to, but not including, 9999-01-01 UTC. "
                "Got -1.0 instead."
            ),
        ),
        (lambda h: h.append_failure(make_failure(at=1e300)), "'failure.at' .* Got 1e\\+300"),
        (lambda h: h.append(make_evaluation(evaluated_at=math.inf)), "Got inf instead"),
        (lambda h: h.append_failure(make_failure(reason=None)), "'failure.reason' .* a str"),
        (
            lambda h: h.recent("m1", limit=0),
            re.escape(
                "The 'limit' parameter of SQLiteHistory.recent must be an int in [1, inf). "
                "Got 0 instead."
            ),
        ),
        (lambda h: h.failures("", 5), "The 'model' parameter of SQLiteHistory.failures"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    history: SQLiteHistory, call: Any, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call(history)
    assert history.recent("m1") == [] and history.failures("m1") == []


def test_concurrent_appends_from_threads_lose_nothing(history: SQLiteHistory) -> None:
    n_threads, per_thread = 8, 25
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        barrier.wait()
        try:
            for i in range(per_thread):
                history.append(make_evaluation(evaluated_at=float(t * 1000 + i)))
                history.append_failure(make_failure(at=float(t * 1000 + i)))
                history.recent("m1", limit=3)  # readers interleave with the writers
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    expected = sorted(
        (float(t * 1000 + i) for t in range(n_threads) for i in range(per_thread)), reverse=True
    )
    got = [e.evaluated_at for e in history.recent("m1", limit=10_000)]
    assert sorted(got, reverse=True) == expected
    assert sorted((f.at for f in history.failures("m1", limit=10_000)), reverse=True) == expected


def _append_many(path: Path, proc: int, count: int, barrier: Any) -> None:
    barrier.wait()
    with SQLiteHistory(path) as h:
        for i in range(count):
            h.append(dataclasses.replace(make_evaluation(), evaluated_at=float(proc * 1000 + i)))


def test_concurrent_appends_from_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    ctx = multiprocessing.get_context("fork")
    n_procs, per_proc = 3, 20
    barrier = ctx.Barrier(n_procs)
    # A fresh file: the processes also race to create the schema.
    procs = [
        ctx.Process(target=_append_many, args=(path, p, per_proc, barrier)) for p in range(n_procs)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * n_procs
    with SQLiteHistory(path) as h:
        got = sorted(e.evaluated_at for e in h.recent("m1", limit=10_000))
    assert got == sorted(float(p * 1000 + i) for p in range(n_procs) for i in range(per_proc))


def _open_at_once(path: str, barrier: Any) -> None:
    barrier.wait()
    with SQLiteHistory(Path(path)):
        pass


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    # Switching a new database to WAL can fail at once with "database is locked" while
    # another process switches it (SQLite calls no busy handler there); without the retry
    # this failed 4 opens in 240 on the development machine.
    ctx = multiprocessing.get_context("fork")
    for trial in range(10):
        path = str(tmp_path / f"h{trial}.sqlite")
        barrier = ctx.Barrier(6)
        procs = [ctx.Process(target=_open_at_once, args=(path, barrier)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0] * 6, f"trial {trial}"


# --------------------------------------------------------------------------- time ranges


def test_since_returns_evaluations_and_failures_in_the_range_oldest_first(
    history: SQLiteHistory,
) -> None:
    for t in [100.0, 200.0, 300.0, 400.0]:
        history.append(make_evaluation(evaluated_at=t, decision=f"t={t:.0f}"))
        history.append_failure(make_failure(at=t + 50.0, message=f"t={t + 50.0:.0f}"))
    history.append(make_evaluation("m2", evaluated_at=250.0))

    got = history.since("m1", 200.0, 400.0)
    assert (got.model, got.since, got.until) == ("m1", 200.0, 400.0)
    # [since, until): 200 and 300 for evaluations; 250 and 350 for failures.
    assert [e.decision for e in got.evaluations] == ["t=200", "t=300"]
    assert [f.message for f in got.failures] == ["t=250", "t=350"]

    open_ended = history.since("m1", 350.0)
    assert open_ended.until is None
    assert [e.evaluated_at for e in open_ended.evaluations] == [400.0]
    assert [f.at for f in open_ended.failures] == [350.0, 450.0]

    newest_two = history.since("m1", 0.0, limit=2)
    assert [e.evaluated_at for e in newest_two.evaluations] == [300.0, 400.0]
    # When a run of failures began: the oldest ones, still oldest first.
    oldest_two = history.since("m1", 200.0, limit=2, oldest=True)
    assert [e.evaluated_at for e in oldest_two.evaluations] == [200.0, 300.0]
    assert [f.at for f in oldest_two.failures] == [250.0, 350.0]
    assert history.since("nobody", 0.0).evaluations == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": float("nan")}, "The 'since' parameter of SQLiteHistory.since must be a float"),
        ({"since": 0.0, "until": "now"}, "The 'until' parameter of SQLiteHistory.since"),
        ({"since": 0.0, "limit": 0}, "The 'limit' parameter of SQLiteHistory.since"),
    ],
)
def test_since_refuses_bad_ranges(
    history: SQLiteHistory, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        history.since("m1", **kwargs)


# --------------------------------------------------------------------------- versions


def _store(tmp_path: Path) -> DirectorySnapshotStore:
    return DirectorySnapshotStore(tmp_path / "snapshots")


def test_recording_a_version_is_idempotent(tmp_path: Path, history: SQLiteHistory) -> None:
    saved = _store(tmp_path).save(make_snapshot(), state="live")
    history.record_version(saved)
    history.record_version(saved)
    assert history.recorded_versions("m1") == [1]
    assert history.recorded_versions("m2") == []


def test_record_version_refuses_what_the_store_did_not_return(history: SQLiteHistory) -> None:
    with pytest.raises(InvalidInputError, match=r"'snapshot.checksum' .* a non-empty str"):
        history.record_version(make_snapshot(version=1))  # no checksum: never stored
    with pytest.raises(InvalidInputError, match=r"'snapshot.version' .* int in \[1, inf\)"):
        history.record_version(make_snapshot(version=0, checksum="sha256:x"))
    with pytest.raises(InvalidInputError, match=r"must be a Snapshot\. Got Evaluation"):
        history.record_version(make_evaluation())  # type: ignore[arg-type]
    assert history.recorded_versions("m1") == []


def test_reconcile_adds_the_rows_missing_for_stored_versions(
    tmp_path: Path, history: SQLiteHistory
) -> None:
    store = _store(tmp_path)
    first = store.save(make_snapshot(seed=0), state="live")
    history.record_version(first)
    store.save(make_snapshot(seed=1), state="pending")  # killed before its row
    store.save(make_snapshot("m2", seed=2), state="live")
    bad = store.save(make_snapshot(seed=3))
    manifest = store.root / "m1" / f"v{bad.version:06d}" / "manifest.json"
    manifest.write_text("{}\n")  # a corrupt version still gets a row

    assert history.reconcile(store) == [("m1", 2), ("m1", 3), ("m2", 1)]
    assert history.recorded_versions("m1") == [1, 2, 3]
    assert history.recorded_versions("m2") == [1]
    assert history.reconcile(store) == []  # nothing left to add

    conn = sqlite3.connect(history.path)
    try:
        rows = conn.execute(
            "SELECT version, origin, corrupt IS NOT NULL FROM versions WHERE model = 'm1' "
            "ORDER BY version"
        ).fetchall()
    finally:
        conn.close()
    assert rows == [(1, "commit", 0), (2, "reconcile", 0), (3, "reconcile", 1)]


def test_reconcile_replaces_a_row_whose_version_number_was_reused(
    tmp_path: Path, history: SQLiteHistory
) -> None:
    store = _store(tmp_path)
    store.save(make_snapshot(seed=0), state="live")
    old = store.save(make_snapshot(seed=1))
    history.record_version(old)
    shutil.rmtree(store.root / "m1" / "v000002")  # removed by hand, the number is free again
    new = store.save(make_snapshot(seed=2))
    assert new.version == 2 and new.checksum != old.checksum
    assert history.reconcile(store) == [("m1", 1), ("m1", 2)]
    conn = sqlite3.connect(history.path)
    try:
        (checksum,) = conn.execute("SELECT checksum FROM versions WHERE version = 2").fetchone()
    finally:
        conn.close()
    assert checksum == new.checksum


def _schema_1_file(path: Path) -> None:
    """A history file as the first kmeans-monitor left it: one evaluation, one failure."""
    with SQLiteHistory(path) as h:
        h.append(make_evaluation())
        h.append_failure(make_failure())
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE versions; ALTER TABLE failures DROP COLUMN duration_seconds; "
        "DROP TABLE pruned; DROP INDEX evaluations_by_time; DROP INDEX failures_by_time; "
        "DELETE FROM schema_version WHERE version > 1;"
    )
    conn.close()


def test_a_schema_1_file_gains_the_versions_table_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    _schema_1_file(path)
    with SQLiteHistory(path) as h:
        assert h.recent("m1") == [make_evaluation()]
        assert h.recorded_versions("m1") == []
        # The failure recorded before durations were kept has none; a new one has it.
        h.append_failure(make_failure(at=2e9, duration_seconds=2.5))
        assert h.failures("m1") == [make_failure(at=2e9, duration_seconds=2.5), make_failure()]
        totals = h.totals("m1")
        assert (totals.runs, dict(totals.failures)) == (3, {"source_timeout": 2})
        assert totals.durations == (make_evaluation().duration_seconds, 2.5)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (
            SCHEMA_VERSION,
        )
    finally:
        conn.close()


def test_start_up_says_the_migration_recorded_the_versions_not_a_stop(
    tmp_path: Path, history: SQLiteHistory
) -> None:
    # helper-161: the first start after an upgrade from schema 1 said "recorded 4 stored
    # version(s) a stop had left out", which reads as an unclean stop or lost data.
    from monitor.bootstrap import _reconciled

    store = _store(tmp_path)
    store.save(make_snapshot(seed=0), state="live")
    store.save(make_snapshot(seed=1))
    path = tmp_path / "old.sqlite"
    _schema_1_file(path)
    with SQLiteHistory(path) as migrated:
        assert _reconciled(migrated, len(migrated.reconcile(store))) == (
            "recorded 2 stored version(s) in the versions table that the migration from "
            "schema 1 added"
        )
    # A history that had the table and missed a version: a stop left it out.
    assert _reconciled(history, len(history.reconcile(store))) == (
        "recorded 2 stored version(s) a stop had left out"
    )


def test_a_migration_keeps_a_copy_of_the_older_file_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # helper-161: the first start of a newer daemon migrated the file one way, and the
    # older one then refused it; nothing had said to take a backup.
    path = tmp_path / "h.sqlite"
    _schema_1_file(path)
    with caplog.at_level("INFO", logger="monitor.store.history"), SQLiteHistory(path) as h:
        assert h.migrated_from == 1
        h.append(make_evaluation(evaluated_at=2e9))
    copy = tmp_path / "h.sqlite.schema-1.bak"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if "bak" in p.name) == [copy.name]
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (1,)
        assert conn.execute("SELECT COUNT(*) FROM evaluations").fetchone() == (1,)
    said = [r.getMessage() for r in caplog.records if "copy" in r.getMessage()]
    assert len(said) == 1 and str(copy) in said[0] and "older kmeans-monitor" in said[0]
    # The migrated file is not copied again, nor is a new one.
    with SQLiteHistory(path) as h:
        assert h.migrated_from is None
    SQLiteHistory(tmp_path / "new.sqlite").close()
    assert sorted(p.name for p in tmp_path.iterdir() if "bak" in p.name) == [copy.name]


def test_a_copy_that_cannot_be_made_stops_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    _schema_1_file(path)
    (tmp_path / "h.sqlite.schema-1.bak").mkdir()  # os.replace cannot put a file there
    with pytest.raises(StoreError, match=r"cannot keep a copy at .*schema-1\.bak before"):
        SQLiteHistory(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (1,)
    assert not (tmp_path / "h.sqlite.schema-1.bak.partial").exists()


# ---------------------------------------------------------------------- read-only


def test_read_only_reads_what_a_writer_wrote_while_it_is_open(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with SQLiteHistory(path) as writer:
        writer.append(make_evaluation())
        with SQLiteHistory(path, read_only=True) as reader:
            assert reader.recent("m1") == [make_evaluation()]
            # A row written after the reader opened is seen by its next query.
            writer.append_failure(make_failure())
            assert reader.since("m1", 0.0).failures == (make_failure(),)


def test_read_only_creates_migrates_and_writes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "h.sqlite"
    with pytest.raises(StoreError, match=r"no history database at .*nowhere"):
        SQLiteHistory(missing, read_only=True)
    assert not missing.parent.exists()

    path = tmp_path / "h.sqlite"
    _schema_1_file(path)
    before = path.read_bytes()
    with SQLiteHistory(path, read_only=True) as reader:
        assert reader.recent("m1") == [make_evaluation()]  # schema 1 holds the runs
        assert reader.failures("m1") == [make_failure()]
        assert reader.totals("m1").runs == 2
        with pytest.raises(StoreError, match="readonly"):
            reader.append(make_evaluation(evaluated_at=1.0))
        with pytest.raises(StoreError, match="readonly"):
            reader.append_failure(make_failure())
    assert path.read_bytes() == before  # not migrated, nothing appended


def test_read_only_reads_a_file_on_a_read_only_file_system(read_only_mount: Mount) -> None:
    # After a clean stop a WAL database has no -shm, which mode=ro must create: it
    # failed with "unable to open database file" (helper-103).
    path = read_only_mount.path / "h.sqlite"
    with SQLiteHistory(path) as writer:
        writer.append(make_evaluation())
    read_only_mount.freeze()
    assert history_problem(path) is None
    with SQLiteHistory(path, read_only=True) as reader:
        assert reader.recent("m1") == [make_evaluation()]


def test_read_only_refuses_a_read_only_file_system_whose_wal_holds_runs(
    read_only_mount: Mount,
) -> None:
    # immutable=1 would not read the runs in the -wal a crash left: not silently lost.
    path = read_only_mount.path / "h.sqlite"
    with SQLiteHistory(path) as writer:
        writer.append(make_evaluation())
        writer.append(make_evaluation(evaluated_at=2.0))
        for name in ("h.sqlite", "h.sqlite-wal"):  # as a crash leaves them, -shm lost
            shutil.copyfile(read_only_mount.path / name, read_only_mount.path / f"c{name}")
    read_only_mount.freeze()
    copy = read_only_mount.path / "ch.sqlite"
    with pytest.raises(StoreError, match=r"ch\.sqlite-wal holds runs not in it yet"):
        SQLiteHistory(copy, read_only=True)


def test_read_only_refuses_a_newer_schema_and_a_file_that_is_not_a_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.sqlite"
    SQLiteHistory(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade"):
        SQLiteHistory(path, read_only=True)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match=r"junk\.sqlite"):
        SQLiteHistory(junk, read_only=True)


# ---------------------------------------------------------------------- retention

DAY = 86400.0


def _runs_of_a_week(h: SQLiteHistory, start: float = 1_700_000_000.0) -> None:
    """Two models, a run every 6 hours for a week: promotions, a reference training,
    failures with and without a recorded duration."""
    for i in range(28):
        at = start + i * DAY / 4
        phases = {"read": 0.5, "reference": 40.0} if i == 0 else {"read": 0.5}
        for model in ("m1", "m2"):
            h.append(
                make_evaluation(
                    model,
                    evaluated_at=at,
                    promoted=i % 5 == 0,
                    phase_seconds=phases,
                    duration_seconds=1.0 + i / 7 + (40.0 if i == 0 else 0.0),
                )
            )
        if i % 3 == 0:
            took = None if i % 2 else 2.5 + i / 1000
            h.append_failure(make_failure(at=at + 60, reason=f"r{i % 2}", duration_seconds=took))


def _same_totals(before: Any, after: Any) -> None:
    assert (after.runs, dict(after.failures), after.promotions) == (
        before.runs,
        dict(before.failures),
        before.promotions,
    )
    assert (after.first, after.last_end) == (before.first, before.last_end)
    # Durations are kept to the millisecond once pruned.
    assert sorted(after.durations) == pytest.approx(sorted(before.durations), abs=5e-4)


def test_pruning_removes_the_old_runs_and_keeps_their_counts(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with SQLiteHistory(path) as h:
        _runs_of_a_week(h)
        before = {m: h.totals(m) for m in ("m1", "m2")}
        cut = 1_700_000_000.0 + 3 * DAY
        removed = h.prune(cut)
        # 12 evaluations of each model and the failures at runs 0, 3, 6, 9 before the cut.
        assert removed == 2 * 12 + 4
        assert min(e.evaluated_at for e in h.since("m1", 0.0).evaluations) >= cut
        assert min(f.at for f in h.since("m1", 0.0).failures) >= cut
        for model in ("m1", "m2"):
            _same_totals(before[model], h.totals(model))
        assert h.pruned_before("m1") == cut
        # A second pruning adds to what the first kept.
        assert h.prune(cut + DAY) == 2 * 4 + 2
        for model in ("m1", "m2"):
            _same_totals(before[model], h.totals(model))
        assert h.pruned_before("m2") == cut + DAY
        assert h.prune(cut) == 0  # nothing older is left
        assert h.pruned_before("m2") == cut + DAY
    with SQLiteHistory(path, read_only=True) as reader:
        _same_totals(before["m1"], reader.totals("m1"))
        assert reader.pruned_before("m1") == cut + DAY
        assert reader.pruned_before("m3") is None


def test_appending_prunes_past_keep_about_once_an_hour(tmp_path: Path) -> None:
    start = 1_700_000_000.0
    with SQLiteHistory(tmp_path / "h.sqlite", keep=2 * DAY) as h:
        for i in range(5 * 24 * 6):  # five days of a run every ten minutes
            h.append(make_evaluation(evaluated_at=start + i * 600.0))
        last = start + (5 * 24 * 6 - 1) * 600.0
        oldest = min(e.evaluated_at for e in h.since("m1", 0.0).evaluations)
        # The runs older than two days went at the latest pruning, at most an hour ago.
        assert oldest >= last - 2 * DAY - PRUNE_EVERY
        assert oldest < last - 2 * DAY + 600.0
        assert h.totals("m1").runs == 5 * 24 * 6
        assert h.totals("m1").first == start


def test_no_keep_keeps_every_run(tmp_path: Path) -> None:
    with SQLiteHistory(tmp_path / "h.sqlite") as h:
        for i in range(10):
            h.append(make_evaluation(evaluated_at=1_700_000_000.0 + i * 100 * DAY))
        assert len(h.since("m1", 0.0).evaluations) == 10
        assert h.pruned_before("m1") is None


def test_keep_must_be_a_positive_duration(tmp_path: Path) -> None:
    for bad in (0, -1.0, float("nan"), "1d"):
        with pytest.raises(InvalidInputError, match="keep"):
            SQLiteHistory(tmp_path / "h.sqlite", keep=bad)  # type: ignore[arg-type]


def test_a_corrupt_row_of_counts_kept_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with SQLiteHistory(path) as h:
        _runs_of_a_week(h)
        h.prune(1_700_000_000.0 + DAY)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE pruned SET durations = '[1, 2]' WHERE model = 'm1'")
    conn.commit()
    conn.close()
    with SQLiteHistory(path) as h, pytest.raises(StoreError, match="corrupt row"):
        h.totals("m1")


@pytest.mark.parametrize("kind", ["sqlite", "memory", "overlay"])
def test_the_live_versions_are_those_the_runs_scored_or_promoted(history: Any, kind: str) -> None:
    # What `snapshots rollback --to` and the page count as once live beside the store's
    # parent links: an approved version no version was trained from was "never live".
    h = {"sqlite": history, "memory": MemoryHistory(), "overlay": OverlayHistory(history)}[kind]
    h.append(make_evaluation("m1", live_version=2, candidate_version=3, promoted=False))
    h.append(make_evaluation("m1", live_version=2, candidate_version=4, promoted=True))
    h.append(make_evaluation("m2", live_version=7, candidate_version=None))
    assert h.live_versions("m1") == {2, 4}  # 3 was left pending
    assert h.live_versions("m3") == set()


def _where_this_user_may_not_write(directory: Path, action: Callable[[], str]) -> str:
    """What ``action`` returns with ``directory`` not writable by its user: root writes
    anywhere, so as root it runs in a forked child turned into nobody."""
    directory.chmod(0o555)
    try:
        if os.geteuid() != 0:
            return action()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: no pytest past this point, only os._exit
            os.close(read)
            try:
                os.setgid(65534)
                os.setuid(65534)
                said = action()
            except BaseException as exc:  # handed to the parent, which fails on it
                said = f"raised {exc!r}"
            os.write(write, said.encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as out:
            said = out.read().decode()
        os.waitpid(pid, 0)
        return said
    finally:
        directory.chmod(0o755)


def test_read_only_in_a_directory_this_user_may_not_write_says_so() -> None:
    # SQLite 3.40 says SQLITE_READONLY_DIRECTORY, not CANTOPEN, when a reader cannot make
    # the -shm: history gave its "attempt to write a readonly database" and no advice,
    # and check-config (history_problem) made a problem of it, not the documented warning.
    root = Path(tempfile.mkdtemp())  # not under tmp_path: nobody must reach it
    try:
        root.chmod(0o755)
        path = root / "h.sqlite"
        with SQLiteHistory(path) as writer:
            writer.append(make_evaluation())
        path.chmod(0o644)

        def read() -> str:
            problem = history_problem(path)
            try:
                SQLiteHistory(path, read_only=True).close()
            except StoreError as exc:
                return f"{problem} | {exc}"
            return f"{problem} | read"

        assert _where_this_user_may_not_write(root, read) == (
            f"None | cannot open the history database {path}: this user cannot write in "
            f"{root} (SQLite makes h.sqlite-shm there even to read): use the user who runs "
            "the daemon, or a copy"
        )
    finally:
        shutil.rmtree(root)


def test_sqlite_saying_readonly_is_told_as_a_permission() -> None:
    exc = sqlite3.OperationalError("attempt to write a readonly database")
    exc.sqlite_errorcode = 1544  # type: ignore[attr-defined]  # SQLITE_READONLY_DIRECTORY
    assert cannot_open(Path("/s/h.sqlite"), exc) == (
        "cannot open the history database /s/h.sqlite: attempt to write a readonly database: "
        "this user may not write it or its directory (permission denied)"
    )
