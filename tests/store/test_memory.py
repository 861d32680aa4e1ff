"""The in-memory store and history against the ports: the same answers as the real ones.

Every scenario runs on the directory store (or SQLite history) and on the in-memory one;
where both must agree, the test compares them rather than restating the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _store_factories import make_evaluation, make_failure, make_snapshot

from monitor.errors import (
    InvalidInputError,
    LiveMovedError,
    LivePointerError,
    SnapshotNotFoundError,
)
from monitor.ports import History, SnapshotStore
from monitor.records import RunTotals
from monitor.store import DirectorySnapshotStore, RetentionPolicy, SQLiteHistory
from monitor.store.memory import MemoryHistory, MemorySnapshotStore
from monitor.store.overlay import OverlayHistory, OverlaySnapshotStore

Store = Any  # either store: both meet SnapshotStore


@pytest.fixture(params=["directory", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Store]:
    def make(**kw: Any) -> Store:
        if request.param == "directory":
            return DirectorySnapshotStore(tmp_path / "state" / "snapshots", **kw)
        return MemorySnapshotStore(**kw)

    return make


@pytest.fixture(params=["sqlite", "memory"])
def history(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    h: Any = SQLiteHistory(tmp_path / "h.sqlite") if request.param == "sqlite" else MemoryHistory()
    yield h
    h.close()


def test_both_meet_the_ports() -> None:
    assert isinstance(MemorySnapshotStore(), SnapshotStore)
    assert isinstance(MemoryHistory(), History)


def test_no_model_yet(make_store: Callable[..., Store]) -> None:
    store = make_store()
    assert store.live_version("m1") is None and store.pending_version("m1") is None
    assert store.versions("m1") == [] and store.list_versions("m1") == [] and store.models() == []
    with pytest.raises(SnapshotNotFoundError, match="no snapshot of model 'm1'"):
        store.load("m1")


@pytest.mark.parametrize("state", ["live", "pending", None])
@pytest.mark.parametrize("overlay", [False, True])
def test_a_save_expecting_a_live_version_stores_nothing_when_another_is_live(
    make_store: Callable[..., Store], state: str | None, overlay: bool
) -> None:
    store = make_store()
    assert store.save(make_snapshot(seed=1), state="live", expect_live=1).version == 1  # no live
    store.save(make_snapshot(seed=2), state="live")
    store = OverlaySnapshotStore(store) if overlay else store
    with pytest.raises(LiveMovedError, match="'m1': v2 was made live while v1 was measured") as e:
        store.save(make_snapshot(seed=3), state=state, expect_live=1)
    assert e.value.live == 2
    assert store.versions("m1") == [1, 2] and store.live_version("m1") == 2
    assert store.pending_version("m1") is None
    assert store.save(make_snapshot(seed=3), state=state, expect_live=2).version == 3


def test_versions_states_and_listing(make_store: Callable[..., Store]) -> None:
    store = make_store()
    first = store.save(make_snapshot(seed=1), state="live")
    second = store.save(make_snapshot(seed=2, parent_version=1, reason="drift"), state="pending")
    third = store.save(make_snapshot(seed=3))
    assert (first.version, second.version, third.version) == (1, 2, 3)
    assert first.checksum and len({first.checksum, second.checksum, third.checksum}) == 3
    assert store.live_version("m1") == 1 and store.pending_version("m1") == 2
    assert store.versions("m1") == [1, 2, 3] and store.models() == ["m1"]
    assert store.load("m1").seed == 1 and store.load("m1", 3).seed == 3
    listed = store.list_versions("m1")
    assert [(i.version, i.state) for i in listed] == [(1, "live"), (2, "pending"), (3, "retired")]
    assert listed[1].parent_version == 1 and listed[1].reason == "drift" and listed[1].k == 3
    assert listed[1].n_rows == 1234 and listed[1].checksum == second.checksum
    assert listed[0].created_at == 1_700_000_000.25


def test_approve_and_its_guard(make_store: Callable[..., Store]) -> None:
    store = make_store()
    store.save(make_snapshot(seed=1), state="live")
    with pytest.raises(SnapshotNotFoundError, match="no pending version"):
        store.approve("m1")
    store.save(make_snapshot(seed=2), state="pending")
    store.save(make_snapshot(seed=3), state="pending")  # a later run replaces the candidate
    with pytest.raises(InvalidInputError, match="v2 is not the pending version"):
        store.approve("m1", 2)
    # Not a replaced candidate: the message says what the version is instead.
    with pytest.raises(InvalidInputError, match="v1 is live already; the pending version is v3"):
        store.approve("m1", 1)
    with pytest.raises(InvalidInputError, match="has no version 9; the pending version is v3"):
        store.approve("m1", 9)
    assert store.approve("m1", 3) == 3
    assert store.live_version("m1") == 3 and store.pending_version("m1") is None
    # A second operator approving the same version was told "no pending version".
    with pytest.raises(SnapshotNotFoundError, match=r"'m1': v3 is live already; none is pending$"):
        store.approve("m1", 3)


def test_a_new_live_version_clears_the_candidate_and_set_live_follows_it(
    make_store: Callable[..., Store],
) -> None:
    store = make_store()
    store.save(make_snapshot(seed=1), state="live")
    store.save(make_snapshot(seed=2), state="pending")
    store.save(make_snapshot(seed=3), state="live")
    assert store.pending_version("m1") is None and store.live_version("m1") == 3
    store.set_pending("m1", 2)
    store.set_live("m1", 2)  # rolling forward onto the candidate clears it
    assert store.live_version("m1") == 2 and store.pending_version("m1") is None
    with pytest.raises(InvalidInputError, match="live version"):
        store.set_pending("m1", 2)
    store.set_pending("m1", 1)
    store.set_pending("m1", None)
    assert store.pending_version("m1") is None


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.load("m1", 9),
        lambda s: s.set_live("m1", 9),
        lambda s: s.set_pending("m1", 9),
    ],
)
def test_an_unknown_version_is_not_found(make_store: Callable[..., Store], call: Any) -> None:
    store = make_store()
    store.save(make_snapshot(seed=1), state="live")
    with pytest.raises(SnapshotNotFoundError, match="no version 9"):
        call(store)
    assert store.live_version("m1") == 1


def test_versions_without_a_live_one_are_a_live_pointer_error(
    make_store: Callable[..., Store],
) -> None:
    store = make_store()
    store.save(make_snapshot(seed=1))
    with pytest.raises(LivePointerError):
        store.live_version("m1")
    assert store.load("m1", 1).seed == 1  # an explicit version still loads


@pytest.mark.parametrize("bad", ["", "../x", 3])
def test_bad_model_names_and_states_are_refused(make_store: Callable[..., Store], bad: Any) -> None:
    store = make_store()
    with pytest.raises(InvalidInputError):
        store.versions(bad)
    with pytest.raises(InvalidInputError):
        store.save(make_snapshot(), state="retired")
    with pytest.raises(InvalidInputError):
        store.save("not a snapshot")


def test_retention_keeps_live_pending_and_the_newest(make_store: Callable[..., Store]) -> None:
    store = make_store(retention=RetentionPolicy(versions=2))
    store.save(make_snapshot(seed=1), state="live")
    store.save(make_snapshot(seed=2), state="pending")
    for seed in range(3, 8):
        store.save(make_snapshot(seed=seed))
    assert store.versions("m1") == [1, 2, 6, 7]
    assert store.save(make_snapshot(seed=8)).version == 8  # numbers are never reused


def test_retention_keeps_the_live_versions_parent(make_store: Callable[..., Store]) -> None:
    # Under `manual`, superseded candidates filled `keep.versions` and pruned v1, the
    # approved version's parent: `rollback` then went to a candidate never live (helper-103).
    store = make_store(retention=RetentionPolicy(versions=2))
    store.save(make_snapshot(seed=1), state="live")
    for seed in range(2, 5):
        store.save(make_snapshot(seed=seed, parent_version=1), state="pending")
    store.approve("m1", 4)
    for seed in range(5, 9):
        store.save(make_snapshot(seed=seed, parent_version=4), state="pending")
    assert store.versions("m1") == [1, 4, 7, 8]  # v1 is the parent of the live v4
    store.approve("m1", 8)
    store.save(make_snapshot(seed=9, parent_version=8), state="pending")
    assert store.versions("m1") == [4, 8, 9]  # v4 is the parent of the live v8


# ------------------------------------------------------------------------- history


def test_history_recent_failures_and_since_agree_with_the_port(history: Any) -> None:
    for t in (300.0, 100.0, 200.0):
        history.append(make_evaluation(evaluated_at=t))
    history.append(make_evaluation("m2", evaluated_at=150.0))
    history.append_failure(make_failure(at=250.0))
    history.append_failure(make_failure(at=50.0))
    # The last written first, whatever the stamps (the wall clock may step back).
    assert [e.evaluated_at for e in history.recent("m1")] == [200.0, 100.0, 300.0]
    assert [e.evaluated_at for e in history.recent("m1", limit=1)] == [200.0]
    assert [f.at for f in history.failures("m1")] == [50.0, 250.0]
    got = history.since("m1", 100.0, 300.0)
    assert [e.evaluated_at for e in got.evaluations] == [100.0, 200.0]
    assert [f.at for f in got.failures] == [250.0]
    assert got.until == 300.0 and history.since("m1", 0.0).until is None
    assert [e.evaluated_at for e in history.since("m1", 0.0, limit=2).evaluations] == [200.0, 300.0]
    oldest = history.since("m1", 0.0, limit=2, oldest=True).evaluations
    assert [e.evaluated_at for e in oldest] == [100.0, 200.0]


def test_history_totals_count_every_run_as_the_exporter_does(history: Any) -> None:
    assert history.totals("m1") == RunTotals()
    # A first run whose reference training (2 s of its 3) is not the scheduled work.
    first = {"phase_seconds": {"reference": 2.0, "train": 0.5}, "promoted": True}
    history.append(make_evaluation(evaluated_at=100.0, duration_seconds=3.0, **first))
    history.append_failure(make_failure(at=200.0, reason="schema", duration_seconds=0.25))
    history.append(make_evaluation(evaluated_at=300.0, duration_seconds=1.5))
    history.append(make_evaluation("m2", evaluated_at=150.0))
    # Recorded before durations were kept: counted, not timed, ending when it started.
    history.append_failure(make_failure(at=400.0))
    got = history.totals("m1")
    assert (got.runs, dict(got.failures), got.promotions) == (
        4,
        {"schema": 1, "source_timeout": 1},
        1,
    )
    assert sorted(got.durations) == [0.25, 1.0, 1.5]
    assert (got.first, got.last_end) == (100.0, 400.0)
    assert history.totals("m2").runs == 1


def test_history_versions_and_reconcile(history: Any, tmp_path: Path) -> None:
    store = MemorySnapshotStore()
    one = store.save(make_snapshot(seed=1), state="live")
    store.save(make_snapshot(seed=2))
    history.record_version(one)
    history.record_version(one)
    assert history.recorded_versions("m1") == [1]
    assert history.reconcile(store) == [("m1", 2)]
    assert history.reconcile(store) == []
    assert history.recorded_versions("m1") == [1, 2]


def test_history_highest_version_counts_rows_and_the_versions_runs_name(history: Any) -> None:
    assert history.highest_version("m1") == 0
    history.record_version(MemorySnapshotStore().save(make_snapshot(seed=1), state="live"))
    assert history.highest_version("m1") == 1
    # A run names versions too (one stored before history had rows for them).
    history.append(make_evaluation(live_version=6, candidate_version=None))
    history.append(make_evaluation(live_version=3, candidate_version=7))
    history.append(make_evaluation("m2", live_version=9, candidate_version=None))
    assert history.highest_version("m1") == 7
    assert OverlayHistory(history).highest_version("m1") == 7


@pytest.mark.parametrize("overlay", [False, True])
def test_a_save_numbers_after_the_floor_and_says_once_what_it_skipped(
    make_store: Callable[..., Store], overlay: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Helper-110: a model directory moved aside while history kept v1-v3 made the next
    # version v1 again; the floor (History.highest_version) numbers it v4.
    store = make_store()
    store = OverlaySnapshotStore(store) if overlay else store
    with caplog.at_level(logging.WARNING, logger="monitor"):
        assert store.save(make_snapshot(seed=1), state="live", floor=3).version == 4
        assert store.save(make_snapshot(seed=2), state="pending", floor=3).version == 5
        assert store.save(make_snapshot(seed=3), floor=0).version == 6  # a floor below: none
    assert [r.getMessage() for r in caplog.records] == [
        "model=m1: stored v4, not v1: the history records versions up to v3, which the "
        "snapshot store no longer holds (a model directory moved aside, or an older backup "
        "restored); v1-v3 are skipped so that no version number names two models"
    ]
    assert store.versions("m1") == [4, 5, 6]
    assert (store.live_version("m1"), store.pending_version("m1")) == (4, 5)
    with pytest.raises(InvalidInputError, match=r"The 'floor' parameter of .*save must be"):
        store.save(make_snapshot(seed=4), floor=-1)


@pytest.mark.parametrize("call", ["append", "append_failure", "record_version"])
def test_history_refuses_what_is_not_its_record(history: Any, call: str) -> None:
    with pytest.raises(InvalidInputError):
        getattr(history, call)(object())
