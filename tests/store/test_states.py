"""Version states in DirectorySnapshotStore: the live pointer, pending, approve, listing."""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import threading
from pathlib import Path
from typing import Any

import pytest
from _store_factories import make_snapshot, stored_files

from monitor.errors import InvalidInputError, LivePointerError, SnapshotNotFoundError, StoreError
from monitor.records import Actor, VersionInfo
from monitor.store import DirectorySnapshotStore, StoreKey, _manifest, version_summary
from monitor.store.snapshots import ARRAYS, LIVE, MANIFEST, PENDING


def _vdir(root: Path, model: str, version: int) -> Path:
    return root / model / f"v{version:06d}"


def _store_with(tmp_path: Path, n: int, live: int | None = None) -> DirectorySnapshotStore:
    """A store under tmp_path/state/snapshots with versions 1..n of m1, ``live`` live."""
    store = DirectorySnapshotStore(tmp_path / "state" / "snapshots")
    for seed in range(n):
        store.save(make_snapshot(seed=seed))
    if live is not None:
        store.set_live("m1", live)
    return store


def _rollback(version: int, tmp_path: Path) -> str:
    state_dir = shlex.quote(str(tmp_path / "state"))
    return f"`kmeans-monitor snapshots rollback m1 --to {version} --state-dir {state_dir}`"


# --------------------------------------------------------------------------- no model yet


def test_no_version_at_all_is_no_model_yet(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 0)
    assert store.live_version("m1") is None
    assert store.pending_version("m1") is None
    assert store.list_versions("m1") == []
    with pytest.raises(SnapshotNotFoundError, match="no snapshot of model 'm1'"):
        store.load("m1")


def test_a_first_live_save_is_live_at_once(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 0)
    saved = store.save(make_snapshot(seed=4), state="live")
    assert saved.version == 1
    assert store.live_version("m1") == 1
    assert store.load("m1").seed == 4


def test_a_live_pointer_left_without_versions_reads_as_no_model_yet(tmp_path: Path) -> None:
    # What a kill between a first version's pointer and its rename leaves behind.
    store = _store_with(tmp_path, 0)
    model_dir = store.root / "m1"
    model_dir.mkdir()
    (model_dir / LIVE).write_text("1\n")
    assert store.live_version("m1") is None
    assert store.save(make_snapshot(seed=2), state="live").version == 1
    assert store.load("m1").seed == 2


def test_a_failed_first_live_save_still_reads_as_no_model_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store_with(tmp_path, 0)

    def broken_rename(src: Any, dst: Any) -> None:
        raise OSError(errno.EIO, "simulated I/O error", str(src))

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(StoreError, match="simulated I/O error"):
        store.save(make_snapshot(seed=1), state="live")
    monkeypatch.undo()
    # The pointer went first and names nothing: no model yet, not a broken pointer.
    assert store.versions("m1") == []
    assert store.live_version("m1") is None
    assert store.save(make_snapshot(seed=2), state="live").version == 1
    assert store.load("m1").seed == 2


# --------------------------------------------------------------------------- broken live pointer


def _delete_live(store: DirectorySnapshotStore) -> None:
    (store.root / "m1" / LIVE).unlink()


def _dangling_live(store: DirectorySnapshotStore) -> None:
    (store.root / "m1" / LIVE).write_text("7\n")


def _garbage_live(store: DirectorySnapshotStore) -> None:
    (store.root / "m1" / LIVE).write_bytes(b"two\n")


def _linked_live(store: DirectorySnapshotStore) -> None:
    # A link to a secret, by one who may write the state directory: its text was quoted,
    # 40 bytes of the store's key in the log and on the model page (helper-83).
    secret = store.root.parent / "store.key"
    secret.write_text("7c3348a057cd303a5e3ee411a954192ff9a99d39" * 2)
    live = store.root / "m1" / LIVE
    live.unlink()
    live.symlink_to(secret)


BROKEN_POINTERS = {
    "missing": (_delete_live, "the live pointer {live} is missing"),
    "linked": (
        _linked_live,
        "the pointer {live} is corrupt: a symbolic link, which the store never writes",
    ),
    "dangling": (_dangling_live, "the live pointer {live} names version 7, which is not stored"),
    "garbage": (_garbage_live, "the pointer {live} is corrupt: 4 byte(s), not a version number"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_POINTERS))
@pytest.mark.parametrize("call", ["live_version", "load"])
def test_a_broken_live_pointer_names_the_rollback_and_changes_nothing(
    tmp_path: Path, case: str, call: str
) -> None:
    store = _store_with(tmp_path, 3, live=2)
    breaker, what = BROKEN_POINTERS[case]
    breaker(store)
    before = stored_files(store.root)
    with pytest.raises(LivePointerError) as info:
        getattr(store, call)("m1")
    live = store.root / "m1" / LIVE
    expected = (
        f"model 'm1': {what.format(live=live)}; stored versions: [1-3]. "
        "Roll back to v3, the newest version that loads of those the store records as once "
        f"live: {_rollback(3, tmp_path)}"
    )
    assert str(info.value) == expected
    assert isinstance(info.value, StoreError)
    assert "\n" not in str(info.value)
    assert stored_files(store.root) == before


def test_the_fix_skips_corrupt_versions_and_the_pending_candidate(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 5, live=2)
    store.set_pending("m1", 5)
    npz = _vdir(store.root, "m1", 4) / ARRAYS
    npz.write_bytes(npz.read_bytes()[:-3])  # v4 corrupt
    _delete_live(store)
    with pytest.raises(LivePointerError, match=re.escape(_rollback(3, tmp_path))):
        store.live_version("m1")


def test_the_pending_candidate_is_never_the_fix_the_operator_chooses(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 2, live=1)
    store.set_pending("m1", 2)
    (_vdir(store.root, "m1", 1) / MANIFEST).write_text("{}\n")
    _delete_live(store)
    state_dir = shlex.quote(str(tmp_path / "state"))
    with pytest.raises(LivePointerError) as info:
        store.live_version("m1")
    assert str(info.value).endswith(
        "; no version that was live loads: choose the version to make live from [1-2] with "
        f"`kmeans-monitor snapshots rollback m1 --to VERSION --state-dir {state_dir}`"
    )


def _approved_then_rejected(tmp_path: Path) -> DirectorySnapshotStore:
    """v1 initial; v2 trained from it and approved; v3 trained from v2 and rejected."""
    store = DirectorySnapshotStore(tmp_path / "state" / "snapshots")
    store.save(make_snapshot(seed=0), state="live")
    for v in (2, 3):
        drift = make_snapshot(seed=v, reason="drift", parent_version=v - 1)
        store.save(drift, state="pending")
        if v == 2:
            store.approve("m1", 2)
    store.set_pending("m1", None)  # v3 rejected: retired, never live
    return store


def test_the_fix_is_the_newest_version_that_was_live_never_a_rejected_candidate(
    tmp_path: Path,
) -> None:
    # exB: a bad restore pointed LIVE at an old, corrupt version; the advice named the
    # newest version that loads, a rejected candidate, where the page named the last live.
    store = _approved_then_rejected(tmp_path)
    npz = _vdir(store.root, "m1", 1) / ARRAYS
    npz.write_bytes(npz.read_bytes()[:-1])
    store.set_live("m1", 2)
    (store.root / "m1" / LIVE).write_text("1\n")
    with pytest.raises(LivePointerError) as info:
        store.load("m1")
    assert str(info.value).endswith(
        "Roll back to v2, the newest version that loads of those the store records as once "
        f"live: {_rollback(2, tmp_path)}"
    )


def test_a_version_approved_then_rolled_back_off_is_a_fix_by_the_store_s_events(
    tmp_path: Path,
) -> None:
    # v2 approved, then rolled back before a run scored it or a version was trained from
    # it: the store's pointers and parent links alone cannot say it was live, its events
    # can. With v1 corrupt the operator was left to choose among "versions never live".
    store = DirectorySnapshotStore(tmp_path / "state" / "snapshots")
    store.save(make_snapshot(seed=0), state="live")
    store.save(make_snapshot(seed=2, reason="drift", parent_version=1), state="pending")
    store.approve("m1", 2, by=Actor("alice", None))
    store.rollback("m1", 1, by=Actor("bob", "v2 pages"))
    npz = _vdir(store.root, "m1", 1) / ARRAYS
    npz.write_bytes(npz.read_bytes()[:-1])
    with pytest.raises(LivePointerError) as info:
        store.load("m1")
    assert str(info.value).endswith(
        "Roll back to v2, the newest version that loads of those the store records as once "
        f"live: {_rollback(2, tmp_path)}"
    )


def test_when_no_version_that_was_live_loads_the_operator_chooses(tmp_path: Path) -> None:
    store = _approved_then_rejected(tmp_path)
    for v in (1, 2):
        npz = _vdir(store.root, "m1", v) / ARRAYS
        npz.write_bytes(npz.read_bytes()[:-1])
    with pytest.raises(LivePointerError) as info:
        store.load("m1")
    state_dir = shlex.quote(str(tmp_path / "state"))
    assert str(info.value).endswith(
        "; no version that was live loads: choose the version to make live from [1, 3] "
        f"with `kmeans-monitor snapshots rollback m1 --to VERSION --state-dir {state_dir}`"
    )


def test_a_corrupt_live_version_names_the_newest_other_that_was_live(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 3, live=3)
    npz = _vdir(store.root, "m1", 3) / ARRAYS
    npz.write_bytes(npz.read_bytes()[:-1])
    before = stored_files(store.root)
    assert store.live_version("m1") == 3  # the pointer itself is sound
    with pytest.raises(LivePointerError) as info:
        store.load("m1")
    message = str(info.value)
    assert message.startswith("model 'm1': its live version 3 cannot be loaded: ")
    assert f"{ARRAYS} is truncated" in message
    assert message.endswith(
        "Roll back to v2, the newest version that loads of those the store records as once "
        f"live: {_rollback(2, tmp_path)}"
    )
    assert stored_files(store.root) == before


def test_when_no_version_loads_the_message_says_to_start_again(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 2, live=2)
    for v in (1, 2):
        (_vdir(store.root, "m1", v) / MANIFEST).write_text("{}\n")
    with pytest.raises(LivePointerError) as info:
        store.load("m1")
    assert str(info.value).endswith(
        f"none of them loads: move {store.root / 'm1'} out of {store.root} to start the "
        "model again from a new initial version"
    )


@pytest.mark.parametrize(
    ("encrypt", "new_key"),
    [(False, bytes(range(1, 33))), (True, bytes(range(1, 33))), (True, None)],
    ids=["signed-with-another-key", "encrypted-with-another-key", "encrypted-with-no-key"],
)
def test_when_no_version_loads_with_a_changed_key_the_message_says_so(
    tmp_path: Path, encrypt: bool, new_key: bytes | None
) -> None:
    # A rotated key, not a damaged store: "move it aside" threw a good model away, where
    # the key that wrote it would have served (helper-83).
    old = DirectorySnapshotStore(tmp_path, key=StoreKey(bytes(range(32))), encrypt=encrypt)
    for _ in range(2):
        old.save(make_snapshot(), state="live")
    store = DirectorySnapshotStore(tmp_path, key=None if new_key is None else StoreKey(new_key))
    with pytest.raises(LivePointerError) as info:
        store.load("m1")
    assert str(info.value).endswith(
        "none of them loads with this store's key: run with the key that wrote them "
        f"(store.key_file or store.key_env), or move {store.root / 'm1'} out of {store.root} "
        "to start the model again from a new initial version under this key"
    )


def test_the_printed_rollback_repairs_the_pointer(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 3, live=2)
    _delete_live(store)
    with pytest.raises(LivePointerError) as info:
        store.live_version("m1")
    to = int(re.search(r"--to (\d+)", str(info.value)).group(1))  # type: ignore[union-attr]
    store.set_live("m1", to)  # what `snapshots rollback --to N` does
    assert store.live_version("m1") == 3
    assert store.load("m1").seed == 2


def test_a_plain_save_on_a_model_without_live_leaves_the_pointer_broken(tmp_path: Path) -> None:
    # Storing versions is not promoting them: the store never picks a live version itself.
    store = _store_with(tmp_path, 1)
    with pytest.raises(LivePointerError, match="is missing"):
        store.live_version("m1")


# --------------------------------------------------------------------------- pending and approve


def test_save_as_pending_then_approve(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 0)
    store.save(make_snapshot(seed=0), state="live")
    cand = store.save(make_snapshot(seed=1, parent_version=1), state="pending")
    assert (store.live_version("m1"), store.pending_version("m1")) == (1, cand.version)
    assert [(i.version, i.state) for i in store.list_versions("m1")] == [
        (1, "live"),
        (2, "pending"),
    ]
    assert store.approve("m1") == 2
    assert (store.live_version("m1"), store.pending_version("m1")) == (2, None)
    assert not (store.root / "m1" / PENDING).exists()
    assert [(i.version, i.state) for i in store.list_versions("m1")] == [
        (1, "retired"),
        (2, "live"),
    ]


def test_a_refreshed_candidate_replaces_the_pending_one(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 0)
    store.save(make_snapshot(seed=0), state="live")
    store.save(make_snapshot(seed=1), state="pending")
    store.save(make_snapshot(seed=2), state="pending")
    assert store.pending_version("m1") == 3
    states = [i.state for i in store.list_versions("m1")]
    assert states == ["live", "retired", "pending"]


def test_approve_with_a_stale_version_refuses_and_changes_nothing(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 0)
    store.save(make_snapshot(seed=0), state="live")
    store.save(make_snapshot(seed=1), state="pending")
    store.save(make_snapshot(seed=2), state="pending")
    before = stored_files(store.root)
    with pytest.raises(InvalidInputError) as info:
        store.approve("m1", 2)
    assert str(info.value) == (
        "model 'm1': v2 is not the pending version (v3 is); review v3 and approve it, or "
        "make v2 live with "
        f"`kmeans-monitor snapshots rollback m1 --to 2 --state-dir {store.state_dir}`"
    )
    assert stored_files(store.root) == before
    assert store.approve("m1", 3) == 3


def test_approve_without_a_pending_version_refuses_and_changes_nothing(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 2, live=1)
    before = stored_files(store.root)
    with pytest.raises(SnapshotNotFoundError, match="model 'm1' has no pending version to approve"):
        store.approve("m1")
    # A version that does not exist is said to be missing too (helper-77).
    with pytest.raises(SnapshotNotFoundError, match=r"no pending version to approve \(nor a v99\)"):
        store.approve("m1", 99)
    with pytest.raises(SnapshotNotFoundError, match=r"to approve'?$"):
        store.approve("m1", 2)  # it exists: only the pending one is missing
    with pytest.raises(SnapshotNotFoundError, match="no snapshot of model 'other'"):
        store.approve("other")
    assert stored_files(store.root) == before


def test_approve_refuses_a_corrupt_candidate_and_changes_nothing(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 2, live=1)
    store.set_pending("m1", 2)
    npz = _vdir(store.root, "m1", 2) / ARRAYS
    npz.write_bytes(npz.read_bytes()[:-1])
    before = stored_files(store.root)
    with pytest.raises(StoreError, match=f"{ARRAYS} is truncated"):
        store.approve("m1")
    assert stored_files(store.root) == before
    assert (store.live_version("m1"), store.pending_version("m1")) == (1, 2)


def test_a_crash_between_approval_and_clearing_pending_reads_as_approved(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 2, live=1)
    store.set_pending("m1", 2)
    (store.root / "m1" / LIVE).write_text("2\n")  # the commit point passed, PENDING not removed
    assert (store.live_version("m1"), store.pending_version("m1")) == (2, None)
    assert [i.state for i in store.list_versions("m1")] == ["retired", "live"]


def test_rolling_back_to_the_pending_version_clears_pending(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 3, live=1)
    store.set_pending("m1", 3)
    store.set_live("m1", 2)  # a rollback elsewhere keeps the candidate waiting
    assert store.pending_version("m1") == 3
    store.set_live("m1", 3)
    assert store.pending_version("m1") is None


def test_a_new_live_version_clears_an_obsolete_candidate(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 2, live=1)
    store.set_pending("m1", 2)
    store.save(make_snapshot(seed=9), state="live")
    assert (store.live_version("m1"), store.pending_version("m1")) == (3, None)


@pytest.mark.parametrize(
    ("version", "error", "message"),
    [
        (1, InvalidInputError, "model 'm1': v1 is the live version; it cannot be pending"),
        (9, SnapshotNotFoundError, "model 'm1' has no version 9; stored versions: \\[1-2\\]"),
        (0, InvalidInputError, "The 'version' parameter of DirectorySnapshotStore.set_pending"),
    ],
)
def test_set_pending_refuses_and_changes_nothing(
    tmp_path: Path, version: int, error: type[Exception], message: str
) -> None:
    store = _store_with(tmp_path, 2, live=1)
    before = stored_files(store.root)
    with pytest.raises(error, match=message):
        store.set_pending("m1", version)
    assert stored_files(store.root) == before


def test_clearing_pending(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 2, live=1)
    store.set_pending("m1", 2)
    store.set_pending("m1", None)
    assert store.pending_version("m1") is None
    store.set_pending("m1", None)  # clearing twice is harmless
    store.set_pending("never-saved", None)
    assert not (store.root / "never-saved").exists()


def test_a_pending_pointer_to_a_removed_version_is_no_candidate(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 2, live=1)
    (store.root / "m1" / PENDING).write_text("5\n")
    assert store.pending_version("m1") is None


def test_a_garbage_pending_pointer_names_the_fix(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 2, live=1)
    path = store.root / "m1" / PENDING
    path.write_text("x\n")
    with pytest.raises(StoreError) as info:
        store.pending_version("m1")
    assert str(info.value) == (
        f"the pointer {path} is corrupt: 2 byte(s), not a version number; remove it "
        f"(`rm {path}`): the next drifting run stores a new candidate"
    )


def _follow(advice: str) -> None:
    """Run the `rm ...` command an error printed, as the user would type it."""
    command = re.search(r"\(`(rm [^`]+)`\)", advice)
    assert command is not None, advice
    assert os.system(command.group(1)) == 0  # the printed command, run as printed


def test_a_pending_directory_names_a_removal_that_works(tmp_path: Path) -> None:
    # The advice said `rm PENDING`, which a directory refuses (left from a former stop).
    store = _store_with(tmp_path, 2, live=1)
    (store.root / "m1" / PENDING / "x").mkdir(parents=True)
    with pytest.raises(StoreError) as info:
        store.pending_version("m1")
    _follow(str(info.value))
    assert store.pending_version("m1") is None


def test_a_live_directory_names_a_removal_the_rollback_then_passes(tmp_path: Path) -> None:
    # The printed rollback failed with "Is a directory" and said nothing more.
    store = _store_with(tmp_path, 3, live=3)
    (store.root / "m1" / LIVE).unlink()
    (store.root / "m1" / LIVE).mkdir()
    with pytest.raises(LivePointerError):
        store.live_version("m1")
    with pytest.raises(StoreError) as info:
        store.set_live("m1", 2)
    assert "a directory stands there, which the store never writes" in str(info.value)
    _follow(str(info.value))
    store.set_live("m1", 2)
    assert store.live_version("m1") == 2


# --------------------------------------------------------------------------- listing


def test_listing_reports_each_version_from_its_manifest(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 0)
    a = store.save(make_snapshot(seed=0, k=4, n_rows=10), state="live")
    b = store.save(make_snapshot(seed=1, created_at=5.0, reason="drift", parent_version=1))
    store.set_pending("m1", 2)
    assert store.list_versions("m1") == [
        VersionInfo(
            model="m1",
            version=1,
            state="live",
            created_at=1_700_000_000.25,
            reason="initial",
            parent_version=None,
            k=4,
            n_rows=10,
            checksum=a.checksum,
            features=a.features,
        ),
        VersionInfo(
            model="m1",
            version=2,
            state="pending",
            created_at=5.0,
            reason="drift",
            parent_version=1,
            k=3,
            n_rows=1234,
            checksum=b.checksum,
            features=b.features,
        ),
    ]
    summary = version_summary(store.list_versions("m1")[1])
    assert json.loads(json.dumps(summary)) == summary
    assert summary["created_at_utc"] == "1970-01-01T00:00:05Z"
    assert summary["state"] == "pending" and summary["corrupt"] is None
    assert summary["features"] == list(b.features)


def _cut_manifest(vdir: Path) -> str:
    path = vdir / MANIFEST
    path.write_bytes(path.read_bytes()[:-1])
    return f"{path} is truncated: it does not end with a newline"


def _no_arrays(vdir: Path) -> str:
    (vdir / ARRAYS).unlink()
    return f"cannot read {vdir / ARRAYS}: No such file or directory"


def _short_arrays(vdir: Path) -> str:
    path = vdir / ARRAYS
    data = path.read_bytes()
    path.write_bytes(data[:100])
    return f"{path} is truncated: 100 bytes where {MANIFEST} says {len(data)} bytes"


def _moved(vdir: Path) -> str:
    manifest = json.loads((vdir / MANIFEST).read_text())
    (vdir / MANIFEST).write_text(json.dumps({**manifest, "version": 1}) + "\n")
    return "it describes 'm1' version 1, but lies in the directory of 'm1' version 2"


@pytest.mark.parametrize("damage", [_cut_manifest, _no_arrays, _short_arrays, _moved])
def test_listing_marks_a_corrupt_version_and_lists_the_others(tmp_path: Path, damage: Any) -> None:
    store = _store_with(tmp_path, 3, live=3)
    why = damage(_vdir(store.root, "m1", 2))
    before = stored_files(store.root)
    infos = store.list_versions("m1")
    assert [(i.version, i.state) for i in infos] == [(1, "retired"), (2, "retired"), (3, "live")]
    assert infos[0].corrupt is None and infos[2].corrupt is None
    assert infos[1].corrupt is not None and why in infos[1].corrupt
    assert infos[1].created_at is None and infos[1].k is None
    assert stored_files(store.root) == before


def test_a_version_of_a_newer_format_is_no_corrupt_one_and_advises_no_rollback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A newer kmeans-monitor's sound version was listed CORRUPT, and runs on it advised
    # rolling the production model back, not upgrading (helper-103).
    store = _store_with(tmp_path, 2, live=2)
    monkeypatch.setattr(_manifest, "FORMAT", 3)  # what a newer release writes
    store.save(make_snapshot(seed=5), state="live")
    monkeypatch.undo()
    newer = (
        "snapshot v3 of model 'm1' was written by a newer kmeans-monitor (snapshot format 3; "
        "this one reads [1, 2]): upgrade kmeans-monitor"
    )
    info = store.list_versions("m1")[2]
    assert (info.state, info.newer_format, info.corrupt) == ("live", True, newer)
    assert not store.list_versions("m1")[1].newer_format
    with pytest.raises(LivePointerError) as caught:
        store.load("m1")
    assert str(caught.value) == f"model 'm1': its live version 3 cannot be loaded: {newer}"


def test_listing_survives_broken_pointers(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 2, live=1)
    (store.root / "m1" / LIVE).write_text("garbage")
    (store.root / "m1" / PENDING).write_text("garbage")
    assert [i.state for i in store.list_versions("m1")] == ["retired", "retired"]


def _record_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the manifest and array files read from now on, in order."""
    read: list[str] = []
    real_read_file = _manifest.read_file

    def recording_read_file(path: Path, *, most: int) -> bytes:
        read.append(path.name)
        return real_read_file(path, most=most)

    monkeypatch.setattr(_manifest, "read_file", recording_read_file)
    return read


def test_listing_reads_no_array_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store_with(tmp_path, 2, live=1)
    read = _record_reads(monkeypatch)
    assert all(i.corrupt is None for i in store.list_versions("m1"))
    assert read == [MANIFEST, MANIFEST]
    # The recording does see array files when they are read (by a store that has not
    # verified this version yet: set_live did, and kept it).
    DirectorySnapshotStore(store.root).load("m1", 1)
    assert read[-1] == ARRAYS


def test_a_version_verified_once_is_reloaded_only_when_its_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store_with(tmp_path, 1, live=1)
    first = store.load("m1", 1)
    read = _record_reads(monkeypatch)
    assert store.load("m1") is first and read == []
    # A file rewritten in place (same size, a byte changed) is read and verified again.
    vdir = next(p for p in (store.root / "m1").iterdir() if p.is_dir())
    arrays = vdir / ARRAYS
    data = bytearray(arrays.read_bytes())
    data[-30] ^= 0xFF
    arrays.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"corrupt|hash|checksum"):
        store.load("m1", 1)
    assert ARRAYS in read


# --------------------------------------------------------------------------- rollback


def test_rollback_to_a_version_repairs_any_live_pointer(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 3, live=2)
    for breaker, _ in BROKEN_POINTERS.values():
        breaker(store)
        assert store.rollback("m1", to=3) == (None, 3)
        assert store.load("m1").seed == 2
    assert store.rollback("m1", to=1) == (3, 1)


def test_rollback_defaults_to_the_parent(tmp_path: Path) -> None:
    store = _store_with(tmp_path, 0)
    store.save(make_snapshot(seed=0), state="live")
    store.save(make_snapshot(seed=1, parent_version=1))
    store.save(make_snapshot(seed=2, parent_version=1), state="live")
    assert store.rollback("m1") == (3, 1)  # the parent, not v2


def test_rollback_without_the_parent_names_the_choices_and_picks_none(tmp_path: Path) -> None:
    # It made the newest older version live, silently: under `manual` a superseded
    # candidate that was never live (helper-103).
    store = _store_with(tmp_path, 0)
    store.save(make_snapshot(seed=0), state="live")
    store.save(make_snapshot(seed=1))
    store.save(make_snapshot(seed=2, parent_version=1), state="live")
    _remove_by_hand(store, 1)
    before = stored_files(store.root)
    choose = re.escape(
        "choose the version to make live from [2] with `kmeans-monitor snapshots rollback m1 "
        f"--to VERSION --state-dir {shlex.quote(str(tmp_path / 'state'))}`"
    )
    gone = "v3's parent v1 is no longer stored"
    with pytest.raises(SnapshotNotFoundError, match=f"{gone}; {choose}"):
        store.rollback("m1")
    store.set_live("m1", 2)  # v2 has no parent
    with pytest.raises(SnapshotNotFoundError, match=r"v2 has no parent .*from \[3\] with"):
        store.rollback("m1")
    store.set_live("m1", 3)
    assert stored_files(store.root) == before


def _remove_by_hand(store: DirectorySnapshotStore, version: int) -> None:
    for path in sorted(_vdir(store.root, "m1", version).iterdir()):
        path.unlink()
    _vdir(store.root, "m1", version).rmdir()


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        (lambda s: None, SnapshotNotFoundError, "model 'm1' has no snapshots to roll back"),
        (
            lambda s: s.save(make_snapshot(), state="live"),
            SnapshotNotFoundError,
            "model 'm1': v1 is the only version; nothing to roll back to",
        ),
        (
            lambda s: (s.save(make_snapshot()), s.save(make_snapshot(seed=1))),
            LivePointerError,
            "the live pointer .* is missing",
        ),
    ],
    ids=["empty", "oldest", "broken_pointer"],
)
def test_rollback_without_a_target_refuses_and_changes_nothing(
    tmp_path: Path, setup: Any, error: type[Exception], message: str
) -> None:
    store = _store_with(tmp_path, 0)
    setup(store)
    before = stored_files(store.root)
    with pytest.raises(error, match=message):
        store.rollback("m1")
    with pytest.raises(SnapshotNotFoundError, match=r"no snapshot of model 'm1'|has no version 9"):
        store.rollback("m1", to=9)
    assert stored_files(store.root) == before


def _within(seconds: float, call: Any) -> Any:
    """``call()``'s result or exception; the test fails instead of hanging past ``seconds``."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as exc:
            out.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"still reading after {seconds} s")
    return out[0]


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("name", [LIVE, MANIFEST, ARRAYS])
def test_a_fifo_or_device_in_a_store_files_place_is_refused_not_read(
    tmp_path: Path, kind: str, name: str
) -> None:
    # Put there by hand: a FIFO made the reader wait forever, /dev/zero fill its memory.
    store = _store_with(tmp_path, 1, live=1)
    model_dir = store.root / "m1"
    path = model_dir / name if name == LIVE else next(model_dir.glob("v*")) / name
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    fresh = DirectorySnapshotStore(store.root)  # nothing verified and kept in memory
    error = _within(20, lambda: fresh.load("m1", None if name == LIVE else 1))
    assert isinstance(error, StoreError)
    # A pointer is never read through a link, so /dev/zero is not even looked at there.
    linked = name == LIVE and kind == "device"
    said = f"{path} is corrupt: a symbolic link" if linked else f"{path}: not a regular file"
    assert said in str(error), error
    listed = _within(20, lambda: fresh.list_versions("m1"))
    assert isinstance(listed, list) and len(listed) == 1
