"""The store's record of who approved, rejected, rolled back or promoted a version."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import StoreError
from monitor.records import Actor, StoreEvent
from monitor.store.memory import MemorySnapshotStore
from monitor.store.overlay import OverlaySnapshotStore
from monitor.store.snapshots import DirectorySnapshotStore
from tests.store._store_factories import make_snapshot

T0 = 1_700_000_000.0


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 60.0
        return self.now


def _directory(tmp_path: Path, clock: _Clock) -> Any:
    return DirectorySnapshotStore(tmp_path / "snapshots", clock=clock)


def _memory(tmp_path: Path, clock: _Clock) -> Any:
    return MemorySnapshotStore(clock=clock)


STORES = [_directory, _memory]


def _moves(store: Any) -> None:
    """v1 live; v2 approved; v3 rejected; back to v1; v4 promoted."""
    alice, bob = Actor("alice", "reviewed the diff"), Actor("bob")
    store.save(make_snapshot("m", k=3, d=2), state="live")  # nobody named: no event
    store.save(make_snapshot("m", k=3, d=2, seed=2, parent_version=1), state="pending")
    store.approve("m", 2, by=alice)
    store.save(make_snapshot("m", k=3, d=2, seed=3, parent_version=2), state="pending")
    store.set_pending("m", None, by=bob)
    store.set_live("m", 1, by=Actor("carol", "incident 42"))
    store.save(
        make_snapshot("m", k=3, d=2, seed=4, parent_version=1),
        state="live",
        by=Actor("kmeans-monitor (retrain policy)", "scheduled retrain"),
    )


@pytest.mark.parametrize("make", STORES)
def test_every_move_is_recorded_with_who_when_and_the_live_versions(
    tmp_path: Path, make: Callable[[Path, _Clock], Any]
) -> None:
    store = make(tmp_path, _Clock())
    assert store.events("m") == []
    _moves(store)
    assert [
        (e.action, e.actor, e.version, e.from_version, e.to_version, e.reason)
        for e in store.events("m")
    ] == [
        ("approve", "alice", 2, 1, 2, "reviewed the diff"),
        ("reject", "bob", 3, 2, 2, None),
        ("rollback", "carol", 1, 2, 1, "incident 42"),
        ("promote", "kmeans-monitor (retrain policy)", 4, 1, 4, "scheduled retrain"),
    ]
    times = [e.at for e in store.events("m")]
    assert times == sorted(times) and times[0] > T0
    assert all(isinstance(e, StoreEvent) and e.model == "m" for e in store.events("m"))


def _overlay(tmp_path: Path, clock: _Clock) -> Any:
    return OverlaySnapshotStore(_directory(tmp_path, clock))


@pytest.mark.parametrize("make", [*STORES, _overlay])
def test_the_pending_pointer_s_moves_are_recorded(
    tmp_path: Path, make: Callable[[Path, _Clock], Any]
) -> None:
    # f19: a candidate made pending, or superseded, left no event (`snapshots log`).
    store, daemon, eve = make(tmp_path, _Clock()), Actor("daemon", "drift"), Actor("eve")
    store.save(make_snapshot("m", k=3, d=2), state="live")
    for seed in (2, 3):
        snap = make_snapshot("m", k=3, d=2, seed=seed, parent_version=1)
        store.save(snap, state="pending", by=daemon)
    store.set_pending("m", 2, by=eve)
    store.set_pending("m", 2, by=eve)  # pending already: no move
    store.save(make_snapshot("m", k=3, d=2, seed=4, parent_version=1), state="live", by=eve)
    store.save(make_snapshot("m", k=3, d=2, seed=5, parent_version=4), by=eve)  # retired
    events = store.events("m")
    assert [(e.action, e.actor, e.version, e.from_version, e.to_version) for e in events] == [
        ("pending", "daemon", 2, 1, 1),
        ("supersede", "daemon", 2, 1, 1),
        ("pending", "daemon", 3, 1, 1),
        ("supersede", "eve", 3, 1, 1),
        ("pending", "eve", 2, 1, 1),
        ("supersede", "eve", 2, 1, 4),
        ("promote", "eve", 4, 1, 4),
    ]  # fmt: skip


def test_the_events_outlive_the_store_object_and_an_overlay_adds_its_own(tmp_path: Path) -> None:
    clock = _Clock()
    _moves(_directory(tmp_path, clock))
    store = _directory(tmp_path, clock)  # opened again, as the next command does
    assert [e.action for e in store.events("m")] == ["approve", "reject", "rollback", "promote"]
    overlay = OverlaySnapshotStore(store)
    overlay.set_live("m", 2, by=Actor("dave"))
    assert [e.actor for e in overlay.events("m")][-2:] == [
        "kmeans-monitor (retrain policy)",
        "dave",
    ]
    assert overlay.events("m")[-1].from_version == 4
    assert len(store.events("m")) == 4  # the dry run wrote nothing


def test_a_store_written_before_events_were_recorded_reads_as_none(tmp_path: Path) -> None:
    store = _directory(tmp_path, _Clock())
    store.save(make_snapshot("m", k=3, d=2), state="live")
    store.save(make_snapshot("m", k=3, d=2, seed=2, parent_version=1), state="pending")
    store.approve("m", 2)  # as an older kmeans-monitor did: no file
    assert not (tmp_path / "snapshots" / "m" / "EVENTS").exists()
    assert store.events("m") == [] and store.events("other") == []


def test_a_line_torn_by_a_crash_is_skipped_and_cut_by_the_next_append(tmp_path: Path) -> None:
    clock = _Clock()
    store = _directory(tmp_path, clock)
    _moves(store)
    path = tmp_path / "snapshots" / "m" / "EVENTS"
    with open(path, "ab") as f:
        f.write(b'{"at":1,"action":"appr')  # the process died in the middle of a write
    assert len(store.events("m")) == 4
    store.rollback("m", 2, by=Actor("erin"))
    events = store.events("m")
    assert [e.actor for e in events][-2:] == ["kmeans-monitor (retrain policy)", "erin"]
    assert path.read_bytes().count(b"\n") == 5 and path.read_bytes().endswith(b"\n")
    assert os.stat(path).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("move", ["approve", "reject", "rollback", "promote"])
def test_a_linked_events_file_stops_the_move_before_the_pointer_moves(
    tmp_path: Path, move: str
) -> None:
    # `snapshots reject` cleared PENDING, then failed on the link with "cannot clear
    # PENDING": the reject had happened, unrecorded, and the error said it had not (h146).
    store = _directory(tmp_path, _Clock())
    store.save(make_snapshot("m", k=3, d=2), state="live")
    store.save(make_snapshot("m", k=3, d=2, seed=2, parent_version=1), state="pending")
    model_dir = tmp_path / "snapshots" / "m"
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (model_dir / "EVENTS").symlink_to(victim)
    said = f"{model_dir / 'EVENTS'} is a symbolic link, which kmeans-monitor never makes: remove it"
    who = Actor("alice")
    moves: dict[str, Callable[[], object]] = {
        "approve": lambda: store.approve("m", 2, by=who),
        "reject": lambda: store.set_pending("m", None, by=who),
        "rollback": lambda: store.set_live("m", 2, by=who),
        "promote": lambda: store.save(
            make_snapshot("m", k=3, d=2, seed=3, parent_version=1), state="live", by=who
        ),
    }
    with pytest.raises(StoreError) as refused:
        moves[move]()
    assert str(refused.value).startswith(said), refused.value
    assert (store.live_version("m"), store.pending_version("m")) == (1, 2)
    assert [i.version for i in store.list_versions("m")] == [1, 2]
    assert victim.read_text() == "precious\n"
    with pytest.raises(StoreError) as unread:
        store.events("m")
    assert str(unread.value).startswith(said), unread.value
