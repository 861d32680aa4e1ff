"""The dry run's overlay: it answers as the real store and history would after the same
writes, and the real ones underneath are never written.

Each scenario is played twice from the same start: through an overlay on a store (or
history), and for real on a copy of it; every answer is compared after every step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _store_factories import make_evaluation, make_failure, make_snapshot

from monitor.errors import InvalidInputError, SnapshotNotFoundError
from monitor.ports import History, SnapshotStore
from monitor.store import DirectorySnapshotStore, SQLiteHistory
from monitor.store.overlay import OverlayHistory, OverlaySnapshotStore


def tree_digest(root: Path) -> str:
    """A digest of every file's path and bytes under ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def stores(tmp_path: Path) -> tuple[DirectorySnapshotStore, DirectorySnapshotStore]:
    """Two identical stores: v1 live, v2 pending, v3 retired (one to overlay, one to write)."""
    base = DirectorySnapshotStore(tmp_path / "base" / "snapshots")
    base.save(make_snapshot(seed=1), state="live")
    base.save(make_snapshot(seed=2, parent_version=1, reason="drift"), state="pending")
    base.save(make_snapshot(seed=3))
    shutil.copytree(tmp_path / "base", tmp_path / "twin")
    return base, DirectorySnapshotStore(tmp_path / "twin" / "snapshots")


def answers(store: Any, model: str = "m1") -> tuple[Any, ...]:
    """Everything a reader can ask about a model's versions."""
    return (
        store.models(),
        store.versions(model),
        store.live_version(model),
        store.pending_version(model),
        [(i.version, i.state, i.reason, i.k) for i in store.list_versions(model)],
        store.load(model).slis,
    )


def outcome(op: Callable[[Any], Any], store: Any) -> Any:
    """What an operation returned (versions only), or the type of error it raised."""
    try:
        result = op(store)
    except (InvalidInputError, SnapshotNotFoundError) as exc:
        return type(exc)
    return getattr(result, "version", result)


STEPS: list[tuple[str, Callable[[Any], Any]]] = [
    ("approve a stale version", lambda s: s.approve("m1", 3)),
    ("save a newer candidate", lambda s: s.save(make_snapshot(seed=4), state="pending")),
    ("approve it", lambda s: s.approve("m1", 4)),
    ("approve with none pending", lambda s: s.approve("m1")),
    ("roll back to v1", lambda s: s.set_live("m1", 1)),
    ("mark v3 pending", lambda s: s.set_pending("m1", 3)),
    ("pending cannot be live", lambda s: s.set_pending("m1", 1)),
    ("a rollback keeps the candidate", lambda s: s.set_live("m1", 4)),
    ("a version that is not stored", lambda s: s.set_live("m1", 99)),
    ("roll forward onto the candidate", lambda s: s.set_live("m1", 3)),
    ("mark v2 pending again", lambda s: s.set_pending("m1", 2)),
    ("a new live version clears it", lambda s: s.save(make_snapshot(seed=5), state="live")),
    ("a retired save", lambda s: s.save(make_snapshot(seed=6))),
    ("clear pending", lambda s: s.set_pending("m1", None)),
    ("a first version of another model", lambda s: s.save(make_snapshot("m2"), state="live")),
]


def test_the_overlay_answers_as_the_store_would_and_writes_nothing(
    tmp_path: Path, stores: tuple[DirectorySnapshotStore, DirectorySnapshotStore]
) -> None:
    base, twin = stores
    before = tree_digest(tmp_path / "base")
    overlay = OverlaySnapshotStore(base)
    assert isinstance(overlay, SnapshotStore)
    assert answers(overlay) == answers(twin)
    for name, op in STEPS:
        assert outcome(op, overlay) == outcome(op, twin), name
        assert answers(overlay) == answers(twin), name
    assert answers(overlay, "m2") == answers(twin, "m2")
    assert [s.version for s in overlay.saved("m1")] == [4, 5, 6]
    assert tree_digest(tmp_path / "base") == before
    # The store underneath still says what it said before the dry run.
    assert (base.live_version("m1"), base.pending_version("m1"), base.versions("m1")) == (
        1,
        2,
        [1, 2, 3],
    )


def test_saved_versions_load_from_memory_and_real_ones_from_the_store(
    stores: tuple[DirectorySnapshotStore, DirectorySnapshotStore],
) -> None:
    base, _ = stores
    overlay = OverlaySnapshotStore(base)
    new = overlay.save(make_snapshot(seed=7, reason="drift"), state="live")
    assert new.version == 4 and new.checksum.startswith("sha256:")
    assert overlay.load("m1") is new and overlay.load("m1", 4) is new
    assert overlay.load("m1", 2).checksum == base.load("m1", 2).checksum
    with pytest.raises(SnapshotNotFoundError, match="no version 9"):
        overlay.load("m1", 9)


def test_an_overlay_on_an_empty_store_trains_a_first_model(tmp_path: Path) -> None:
    empty = DirectorySnapshotStore(tmp_path / "snapshots")
    overlay = OverlaySnapshotStore(empty)
    assert overlay.live_version("m1") is None and overlay.models() == []
    first = overlay.save(make_snapshot(), state="live")
    assert first.version == 1 and overlay.live_version("m1") == 1 and overlay.models() == ["m1"]
    assert empty.models() == [] and empty.live_version("m1") is None


def history_answers(h: Any) -> tuple[Any, ...]:
    return (
        h.recent("m1"),
        h.recent("m1", 2),
        h.failures("m1"),
        h.failures("m1", 1),
        h.since("m1", 1_700_000_050.0),
        h.since("m1", 0.0, 1_700_000_300.0, limit=2),
        h.since("m1", 0.0, limit=2, oldest=True),
        h.since("m1", 1_700_000_050.0, limit=1, oldest=True),
        h.recent("m2"),
        *(
            dataclasses.replace(t, durations=sorted(t.durations))
            for t in map(h.totals, ("m1", "m2"))
        ),
    )


def test_the_history_overlay_merges_its_runs_as_the_history_would(tmp_path: Path) -> None:
    base_path, twin_path = tmp_path / "base.sqlite", tmp_path / "twin.sqlite"
    for path in (base_path, twin_path):
        with SQLiteHistory(path) as h:
            h.append(make_evaluation(evaluated_at=1_700_000_000.0))
            h.append(make_evaluation(evaluated_at=1_700_000_200.0))
            h.append_failure(make_failure(at=1_700_000_100.0))
    before = base_path.read_bytes()
    overlay = OverlayHistory(SQLiteHistory(base_path, read_only=True))
    twin = SQLiteHistory(twin_path)
    assert isinstance(overlay, History)
    writes: list[Callable[[Any], None]] = [
        lambda h: h.append(make_evaluation(evaluated_at=1_700_000_100.0)),
        # The same time as a stored run: the later append is the newer one.
        lambda h: h.append(make_evaluation(evaluated_at=1_700_000_200.0, decision="again")),
        lambda h: h.append_failure(make_failure(at=1_700_000_400.0, duration_seconds=2.0)),
        lambda h: h.append(make_evaluation("m2", evaluated_at=1_700_000_500.0)),
    ]
    for write in writes:
        write(overlay)
        write(twin)
        assert history_answers(overlay) == history_answers(twin)
    assert overlay.reconcile(OverlaySnapshotStore(DirectorySnapshotStore(tmp_path / "s"))) == []
    overlay.record_version(make_snapshot(version=1, checksum="sha256:x"))
    assert len(overlay.evaluations) == 3 and len(overlay.appended_failures) == 1
    overlay.close()
    twin.close()
    assert base_path.read_bytes() == before
