"""kill -9 at random moments of save + history runs: the store stays consistent.

A child process runs what the pipeline's commit step does, over and over (save a
snapshot as live or pending, approve, record its history row, append an evaluation)
with signing and retention on, and is killed with SIGKILL after a random delay. After
each kill the store is reopened and history reconciled, as the daemon does at
start-up, and checked: every version loads, the live and pending pointers are usable,
no temp entry is left, and every version has a history row.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
from pathlib import Path
from typing import Any

from _store_factories import make_evaluation, make_snapshot

from monitor.errors import StoreError
from monitor.store import DirectorySnapshotStore, RetentionPolicy, SQLiteHistory, StoreKey
from monitor.store.snapshots import TMP_PREFIX

KEY = StoreKey(bytes(range(32)))
TRIALS = 100


def _open(state: Path) -> tuple[DirectorySnapshotStore, SQLiteHistory]:
    store = DirectorySnapshotStore(
        state / "snapshots", key=KEY, retention=RetentionPolicy(versions=3)
    )
    return store, SQLiteHistory(state / "history.sqlite")


def _commit_forever(state: Path, seed: int, ready: Any) -> None:
    store, history = _open(state)
    ready.set()
    rng = random.Random(seed)
    i = 0
    while True:
        i += 1
        live = store.live_version("m1")
        choice = rng.random()
        if live is not None and choice < 0.2 and store.pending_version("m1") is not None:
            store.approve("m1")
            continue
        state_ = "live" if live is None or choice < 0.5 else "pending"
        snap = store.save(make_snapshot(seed=seed * 10_000 + i, parent_version=live), state=state_)
        history.record_version(snap)
        history.append(make_evaluation(evaluated_at=float(seed * 10_000 + i), live_version=1))


def _problems(state: Path, store: DirectorySnapshotStore, history: SQLiteHistory) -> list[str]:
    """What is inconsistent in a reopened, reconciled state directory (empty: nothing)."""
    out: list[str] = []
    versions = store.versions("m1")
    if not versions:
        return out
    try:
        store.load("m1")
        pending = store.pending_version("m1")
        if pending is not None:
            store.load("m1", pending)
    except (StoreError, KeyError) as exc:
        out.append(f"pointers: {exc}")
    for info in store.list_versions("m1"):
        if info.corrupt is not None:
            out.append(f"v{info.version}: {info.corrupt}")
    for v in versions:
        try:
            store.load("m1", v)
        except StoreError as exc:
            out.append(f"v{v}: {exc}")
    leftovers = list((state / "snapshots" / "m1").glob(f"{TMP_PREFIX}*"))
    if leftovers:
        out.append(f"temp entries left: {leftovers}")
    return out


def test_kill_9_at_random_moments_leaves_consistent_stores_and_complete_history(
    tmp_path: Path,
) -> None:
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(20240610)
    state = tmp_path / "state"
    inconsistent: list[str] = []
    without_row: list[str] = []
    reconciled = 0
    for trial in range(TRIALS):
        ready = ctx.Event()
        child = ctx.Process(target=_commit_forever, args=(state, trial, ready))
        child.start()
        assert ready.wait(60), f"trial {trial}: the child did not start"
        # Up to a few runs' worth of time, so that kills land anywhere in a run.
        child.join(rng.uniform(0.0, 0.15))
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(60)
        assert child.exitcode == -signal.SIGKILL, f"trial {trial}: {child.exitcode}"

        store, history = _open(state)  # reopening removes dead writers' temp entries
        try:
            reconciled += len(history.reconcile(store))
            inconsistent += [f"trial {trial}: {p}" for p in _problems(state, store, history)]
            missing = set(store.versions("m1")) - set(history.recorded_versions("m1"))
            without_row += [f"trial {trial}: v{v}" for v in sorted(missing)]
        finally:
            history.close()

    assert inconsistent == []
    assert without_row == []
    conn = sqlite3.connect(state / "history.sqlite")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (saved,) = conn.execute("SELECT COUNT(*) FROM versions").fetchone()
    finally:
        conn.close()
    assert saved > 0  # the children got work done between kills
    print(f"\n{TRIALS} kills: {saved} versions recorded, {reconciled} rows added by reconcile")
