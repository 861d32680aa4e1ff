"""DirectorySnapshotStore: round trips, integrity checks, crashes and concurrent writers."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import multiprocessing
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _store_factories import make_snapshot, same_bits

from monitor.errors import InvalidInputError, SnapshotNotFoundError, StoreError
from monitor.ports import SnapshotStore
from monitor.records import ReferenceBins, Scaler
from monitor.store import DirectorySnapshotStore, _manifest, snapshot_summary, snapshots
from monitor.store.snapshots import ARRAYS, LIVE, MANIFEST, TMP_PREFIX


def _vdir(root: Path, model: str, version: int) -> Path:
    return root / model / f"v{version:06d}"


def _temp_entries(root: Path) -> list[Path]:
    return [p for p in root.glob(f"*/{TMP_PREFIX}*")]


# --------------------------------------------------------------------------- round trip


def _edge_values(s: Any) -> Any:
    """Put values that lossy serialisation would change into the snapshot."""
    sample = np.array(s.sample, copy=True)
    sample.flat[:5] = [-0.0, 5e-324, np.inf, np.nan, 0.1 + 0.2]
    return dataclasses.replace(
        s,
        sample=sample,
        slis={"silhouette": 0.1 + 0.2, "inertia": 1e-300, "neg_zero": -0.0, "huge": 1.7e308},
        thresholds={"centroid_drift": float("inf"), "feature_psi_warning": 0.1},
        parent_version=7,
    )


VARIANTS = {
    "float64": lambda: make_snapshot(),
    "split_baseline": lambda: make_snapshot(split_baseline=np.array([0.25, 0.0, 1e-9])),
    "float32": lambda: make_snapshot(dtype=np.float32, k=4, d=3),
    "big_endian": lambda: make_snapshot(dtype=np.dtype(">f8"), k=1, d=1),
    "edge_values": lambda: _edge_values(make_snapshot(d=4)),
    "mixed_dtypes": lambda: dataclasses.replace(
        make_snapshot(),
        reference_shares=np.array([0.5, 0.25, 0.25], dtype=np.float16),
        sample=np.arange(6, dtype=np.float16).reshape(3, 2),
        scaler=Scaler("none", np.zeros(2, dtype=np.float32), np.ones(2, dtype=np.float64)),
    ),
    "fortran_order_empty_sample": lambda: dataclasses.replace(
        make_snapshot(),
        centers=np.asfortranarray(np.arange(6.0).reshape(3, 2)),
        sample=np.empty((0, 2)),
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_round_trip_keeps_every_field_bit_exact(tmp_path: Path, variant: str) -> None:
    store = DirectorySnapshotStore(tmp_path)
    original = VARIANTS[variant]()
    saved = store.save(original)

    assert saved.version == 1
    assert saved.checksum.startswith("sha256:") and len(saved.checksum) == 7 + 64
    # Everything but the fields the store sets is the caller's, unchanged.
    same_bits(dataclasses.replace(saved, version=0, checksum=""), original)

    loaded = store.load("m1", 1)
    same_bits(loaded, saved)
    assert loaded.k == original.k


def test_loaded_arrays_are_read_only(tmp_path: Path) -> None:
    store = DirectorySnapshotStore(tmp_path)
    store.save(make_snapshot())
    loaded = store.load("m1", 1)
    with pytest.raises(ValueError, match="read-only"):
        loaded.centers[0, 0] = 1.0


def test_store_meets_the_port(tmp_path: Path) -> None:
    assert isinstance(DirectorySnapshotStore(tmp_path), SnapshotStore)


def test_same_snapshot_same_checksum_and_any_change_alters_it(tmp_path: Path) -> None:
    a = DirectorySnapshotStore(tmp_path / "a").save(make_snapshot(seed=3))
    b = DirectorySnapshotStore(tmp_path / "b").save(make_snapshot(seed=3))
    assert a.checksum == b.checksum

    centers = np.array(make_snapshot(seed=3).centers, copy=True)
    centers[2, 1] = np.nextafter(centers[2, 1], np.inf)  # one ulp
    c = DirectorySnapshotStore(tmp_path / "c").save(make_snapshot(seed=3, centers=centers))
    d = DirectorySnapshotStore(tmp_path / "d").save(make_snapshot(seed=3, reason="manual"))
    assert len({a.checksum, c.checksum, d.checksum}) == 3


# --------------------------------------------------------------------------- versions and live


def test_versions_are_assigned_by_the_store(tmp_path: Path) -> None:
    store = DirectorySnapshotStore(tmp_path)
    first = store.save(make_snapshot(version=42))
    second = store.save(make_snapshot(version=1, seed=1))
    other = store.save(make_snapshot("m2", version=9))
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert store.versions("m1") == [1, 2]
    assert store.models() == ["m1", "m2"]
    assert store.versions("never-saved") == []
    assert store.live_version("never-saved") is None


def test_save_never_touches_stored_versions_or_the_live_pointer(tmp_path: Path) -> None:
    store = DirectorySnapshotStore(tmp_path)
    store.save(make_snapshot(seed=0), state="live")
    before = {p.name: p.read_bytes() for p in _vdir(tmp_path, "m1", 1).iterdir()}

    store.save(make_snapshot(seed=1))

    after = {p.name: p.read_bytes() for p in _vdir(tmp_path, "m1", 1).iterdir()}
    assert after == before
    assert store.live_version("m1") == 1
    assert store.load("m1").version == 1


def test_set_live_switches_and_rolls_back(tmp_path: Path) -> None:
    store = DirectorySnapshotStore(tmp_path)
    for seed in range(3):
        store.save(make_snapshot(seed=seed))
    store.set_live("m1", 3)
    assert store.load("m1").seed == 2
    store.set_live("m1", 1)  # a rollback
    assert store.live_version("m1") == 1
    assert store.load("m1").seed == 0
    assert (tmp_path / "m1" / LIVE).read_text() == "1\n"
    # A second store on the same root sees the same pointer.
    assert DirectorySnapshotStore(tmp_path).live_version("m1") == 1


@pytest.mark.parametrize("bad_version", [4, 0, -1, True, 1.0])
def test_set_live_on_unknown_version_fails_and_keeps_the_pointer(
    tmp_path: Path, bad_version: Any
) -> None:
    store = DirectorySnapshotStore(tmp_path)
    for seed in range(3):
        store.save(make_snapshot(seed=seed))
    store.set_live("m1", 2)
    expected = SnapshotNotFoundError if bad_version == 4 else InvalidInputError
    with pytest.raises(expected) as info:
        store.set_live("m1", bad_version)
    if expected is SnapshotNotFoundError:
        assert isinstance(info.value, KeyError)
        assert "stored versions: [1-3]" in str(info.value)
    else:
        assert "The 'version' parameter of DirectorySnapshotStore.set_live" in str(info.value)
    assert store.live_version("m1") == 2
    assert _temp_entries(tmp_path) == []


def test_set_live_refuses_a_corrupt_version(tmp_path: Path) -> None:
    store = DirectorySnapshotStore(tmp_path)
    store.save(make_snapshot(seed=0))
    store.save(make_snapshot(seed=1))
    store.set_live("m1", 1)
    npz = _vdir(tmp_path, "m1", 2) / ARRAYS
    npz.write_bytes(npz.read_bytes()[:-1])
    with pytest.raises(StoreError, match="truncated"):
        store.set_live("m1", 2)
    assert store.live_version("m1") == 1


@pytest.mark.parametrize(
    ("model", "version", "message"),
    [
        ("nobody", 1, "no snapshot of model 'nobody'.*models with snapshots: \\['m1'\\]"),
        ("m1", 9, "model 'm1' has no version 9; stored versions: \\[1-3, 5\\]"),
    ],
)
def test_unknown_snapshot_lists_what_exists(
    tmp_path: Path, model: str, version: int | None, message: str
) -> None:
    store = DirectorySnapshotStore(tmp_path)
    for seed in range(4):
        store.save(make_snapshot(seed=seed))
    # A gap in the versions (as left by an operator's manual clean-up) is listed as such.
    os.rename(_vdir(tmp_path, "m1", 4), _vdir(tmp_path, "m1", 5))
    (tmp_path / "m1" / "v000005" / MANIFEST).unlink()  # content is irrelevant here
    with pytest.raises(SnapshotNotFoundError, match=message) as info:
        store.load(model, version)
    assert isinstance(info.value, KeyError)


# --------------------------------------------------------------------------- integrity


def _saved(tmp_path: Path) -> tuple[DirectorySnapshotStore, Path]:
    store = DirectorySnapshotStore(tmp_path)
    store.save(make_snapshot())
    return store, _vdir(tmp_path, "m1", 1)


def test_every_flipped_byte_of_the_arrays_is_detected(tmp_path: Path) -> None:
    store, vdir = _saved(tmp_path)
    npz = vdir / ARRAYS
    good = npz.read_bytes()
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x01
        npz.write_bytes(bytes(bad))
        with pytest.raises(StoreError, match=f"{ARRAYS} is corrupt"):
            store.load("m1", 1)
    npz.write_bytes(good)
    store.load("m1", 1)  # the loop's failures came from the flips, not from the store


def test_every_flipped_byte_of_the_manifest_is_detected(tmp_path: Path) -> None:
    store, vdir = _saved(tmp_path)
    manifest = vdir / MANIFEST
    good = manifest.read_bytes()
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x01
        manifest.write_bytes(bytes(bad))
        with pytest.raises(StoreError, match=MANIFEST):
            store.load("m1", 1)
    manifest.write_bytes(good)
    store.load("m1", 1)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.update(n_rows=m["n_rows"] + 1),
        lambda m: m.update(features=["f0", "g1"]),
        lambda m: m["slis"].update(silhouette=0.75),
        lambda m: m.update(parent_version=1),
        lambda m: m["arrays"]["centers"].update(dtype="<f4"),
    ],
    ids=["n_rows", "feature_name", "sli", "parent", "dtype"],
)
def test_a_well_formed_but_edited_manifest_is_detected(tmp_path: Path, edit: Any) -> None:
    store, vdir = _saved(tmp_path)
    manifest = json.loads((vdir / MANIFEST).read_text())
    edit(manifest)
    (vdir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    with pytest.raises(StoreError, match=f"{MANIFEST} is corrupt"):
        store.load("m1", 1)


def test_rewritten_arrays_with_a_matching_file_hash_still_fail_the_checksum(
    tmp_path: Path,
) -> None:
    # Someone rewrote arrays.npz and fixed up the file's size and hash in the manifest:
    # only the checksum over the array bytes can notice.
    store, vdir = _saved(tmp_path)
    with np.load(vdir / ARRAYS) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["centers"] = arrays["centers"] + 1.0
    np.savez(vdir / ARRAYS, **arrays)
    data = (vdir / ARRAYS).read_bytes()
    manifest = json.loads((vdir / MANIFEST).read_text())
    manifest["arrays_file"].update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (vdir / MANIFEST).write_text(json.dumps(manifest) + "\n")
    with pytest.raises(StoreError, match=f"{MANIFEST} is corrupt: the checksum"):
        store.load("m1", 1)


@pytest.mark.parametrize("name", [ARRAYS, MANIFEST])
@pytest.mark.parametrize("keep", [0.0, 0.5, -1])
def test_truncated_files_are_detected(tmp_path: Path, name: str, keep: float) -> None:
    store, vdir = _saved(tmp_path)
    path = vdir / name
    data = path.read_bytes()
    cut = len(data) - 1 if keep == -1 else int(len(data) * keep)
    path.write_bytes(data[:cut])
    with pytest.raises(StoreError, match=name):
        store.load("m1", 1)


def test_a_missing_file_is_a_store_error(tmp_path: Path) -> None:
    store, vdir = _saved(tmp_path)
    (vdir / ARRAYS).unlink()
    with pytest.raises(StoreError, match=ARRAYS):
        store.load("m1", 1)


def test_a_version_directory_moved_by_hand_is_refused(tmp_path: Path) -> None:
    store, vdir = _saved(tmp_path)
    os.rename(vdir, _vdir(tmp_path, "m1", 5))
    with pytest.raises(StoreError, match="version 1, but lies in the directory of 'm1' version 5"):
        store.load("m1", 5)


def test_no_pickle_in_the_array_file(tmp_path: Path) -> None:
    _, vdir = _saved(tmp_path)
    # allow_pickle=False would raise on any object array.
    with np.load(vdir / ARRAYS, allow_pickle=False) as npz:
        assert all(npz[name].dtype.kind == "f" for name in npz.files)


# --------------------------------------------------------------------------- crashes


def test_a_failed_rename_leaves_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectorySnapshotStore(tmp_path)
    store.save(make_snapshot(seed=0))
    store.set_live("m1", 1)

    def broken_rename(src: Any, dst: Any) -> None:
        raise OSError(errno.EIO, "simulated I/O error", str(src))

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(StoreError, match="simulated I/O error"):
        store.save(make_snapshot(seed=1))
    monkeypatch.undo()

    assert store.versions("m1") == [1]
    assert _temp_entries(tmp_path) == []
    assert store.load("m1").seed == 0
    assert store.save(make_snapshot(seed=2)).version == 2


def test_a_failed_pointer_switch_keeps_the_old_live_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectorySnapshotStore(tmp_path)
    store.save(make_snapshot(seed=0))
    store.save(make_snapshot(seed=1))
    store.set_live("m1", 1)

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(errno.ENOSPC, "simulated full disk", str(src))

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StoreError, match="simulated full disk"):
        store.set_live("m1", 2)
    monkeypatch.undo()

    assert store.live_version("m1") == 1
    assert _temp_entries(tmp_path) == []


def _save_then_die_before_rename(root: Path) -> None:
    store = DirectorySnapshotStore(root)

    def die(src: Any, dst: Any) -> None:
        os._exit(3)  # a crash: no cleanup, no finally blocks

    os.rename = die  # type: ignore[assignment]  # only in this doomed child process
    store.save(make_snapshot(seed=9))


def test_a_writer_killed_mid_save_leaves_a_temp_dir_that_the_next_open_removes(
    tmp_path: Path,
) -> None:
    store = DirectorySnapshotStore(tmp_path)
    store.save(make_snapshot(seed=0))
    store.set_live("m1", 1)

    child = multiprocessing.get_context("fork").Process(
        target=_save_then_die_before_rename, args=(tmp_path,)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 3

    leftovers = _temp_entries(tmp_path)
    assert len(leftovers) == 1 and (leftovers[0] / MANIFEST).exists()  # died fully written
    assert store.versions("m1") == [1]
    assert store.models() == ["m1"]
    assert store.load("m1").seed == 0

    reopened = DirectorySnapshotStore(tmp_path)
    assert _temp_entries(tmp_path) == []
    assert reopened.save(make_snapshot(seed=1)).version == 2


def test_open_removes_abandoned_temp_entries_but_not_those_in_use(tmp_path: Path) -> None:
    DirectorySnapshotStore(tmp_path).save(make_snapshot())
    model_dir = tmp_path / "m1"
    (model_dir / f"{TMP_PREFIX}dead-dir").mkdir()
    (model_dir / f"{TMP_PREFIX}dead-dir" / ARRAYS).write_bytes(b"PK\x03\x04half")
    (model_dir / f"{TMP_PREFIX}dead-file").write_text("2")
    busy = model_dir / f"{TMP_PREFIX}busy"
    busy.mkdir()
    fd = os.open(busy, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a writer in another process would
        store = DirectorySnapshotStore(tmp_path)
        assert sorted(p.name for p in _temp_entries(tmp_path)) == [f"{TMP_PREFIX}busy"]
    finally:
        os.close(fd)
    assert store.versions("m1") == [1]
    DirectorySnapshotStore(tmp_path)
    assert _temp_entries(tmp_path) == []


# --------------------------------------------------------------------------- concurrency


def test_concurrent_saves_from_threads_get_distinct_versions(tmp_path: Path) -> None:
    shared = DirectorySnapshotStore(tmp_path)
    n_threads, per_thread = 6, 5
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        # Half the threads share one store object, half open their own.
        store = shared if t % 2 else DirectorySnapshotStore(tmp_path)
        barrier.wait()
        try:
            for i in range(per_thread):
                store.save(make_snapshot(seed=100 * t + i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    n = n_threads * per_thread
    assert shared.versions("m1") == list(range(1, n + 1))
    seeds = sorted(shared.load("m1", v).seed for v in range(1, n + 1))
    assert seeds == sorted(100 * t + i for t in range(n_threads) for i in range(per_thread))


def test_a_version_taken_between_listing_and_rename_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministic version of the race: the first listing is stale, as if another
    # writer renamed version 1 into place just after this writer listed the directory.
    store = DirectorySnapshotStore(tmp_path)
    store.save(make_snapshot(seed=0))
    real_list = snapshots._list_versions
    listings: list[list[int]] = []

    def stale_then_real(model_dir: Path) -> list[int]:
        listings.append([] if not listings else real_list(model_dir))
        return listings[-1]

    monkeypatch.setattr(snapshots, "_list_versions", stale_then_real)
    saved = store.save(make_snapshot(seed=1))
    monkeypatch.undo()

    assert listings == [[], [1]]
    assert saved.version == 2
    assert store.load("m1", 1).seed == 0  # the taken version was not overwritten
    assert store.load("m1", 2).seed == 1  # and the retry rewrote its manifest for 2


def _save_many(root: Path, proc: int, count: int, barrier: Any) -> None:
    barrier.wait()
    for i in range(count):
        # Reopening each time runs the temp-entry clean-up against the other writer.
        DirectorySnapshotStore(root).save(make_snapshot(seed=1000 * proc + i))


def test_concurrent_saves_from_processes_get_distinct_versions(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    n_procs, per_proc = 3, 8
    barrier = ctx.Barrier(n_procs)
    procs = [
        ctx.Process(target=_save_many, args=(tmp_path, p, per_proc, barrier))
        for p in range(n_procs)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * n_procs

    store = DirectorySnapshotStore(tmp_path)
    n = n_procs * per_proc
    assert store.versions("m1") == list(range(1, n + 1))
    seeds = sorted(store.load("m1", v).seed for v in range(1, n + 1))
    assert seeds == sorted(1000 * p + i for p in range(n_procs) for i in range(per_proc))
    assert _temp_entries(tmp_path) == []


# --------------------------------------------------------------------------- bad input

BAD_NAMES = [
    "",
    ".",
    "..",
    "../m1",
    "a/b",
    "a\\b",
    "/abs",
    ".hidden",
    "-x",
    "a b",
    "x" * 129,
    "é",
    3,
    None,
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
@pytest.mark.parametrize("method", ["save", "load", "versions", "live_version", "set_live"])
def test_bad_model_names_are_rejected_before_touching_the_disk(
    tmp_path: Path, name: Any, method: str
) -> None:
    root = tmp_path / "store"
    store = DirectorySnapshotStore(root)
    calls = {
        "save": lambda: store.save(make_snapshot(model=name)),
        "load": lambda: store.load(name),
        "versions": lambda: store.versions(name),
        "live_version": lambda: store.live_version(name),
        "set_live": lambda: store.set_live(name, 1),
    }
    with pytest.raises(
        InvalidInputError, match=f"The 'model' parameter of DirectorySnapshotStore.{method} must be"
    ):
        calls[method]()
    assert list(tmp_path.iterdir()) == [root]
    assert list(root.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"centers": np.zeros((3, 5))},
            "'snapshot.centers' .* must have shape \\(3, 2\\).*Got shape \\(3, 5\\)",
        ),
        ({"centers": np.zeros(3)}, "'snapshot.centers' .* must be a 2-D array"),
        ({"centers": [[0.0, 1.0]]}, "'snapshot.centers' .* numpy array .*Got list"),
        ({"sample": np.array([["a", "b"]], dtype=object)}, "'snapshot.sample' .*Got dtype object"),
        ({"reference_shares": np.ones(4)}, "'snapshot.reference_shares' .* shape \\(3,\\)"),
        (
            {"bins": ReferenceBins((np.zeros(2),), (np.ones(3),), 1e-4, "quantile")},
            "'snapshot.bins.edges' .* one array per feature \\(2\\). Got 1",
        ),
        ({"features": ()}, "'snapshot.features' .* non-empty"),
        ({"created_at": float("nan")}, "'snapshot.created_at' .* other than NaN"),
        ({"seed": True}, "'snapshot.seed' .* must be an int"),
        ({"n_rows": -1}, "'snapshot.n_rows' .* int in \\[0, inf\\)"),
        ({"parent_version": 0}, "'snapshot.parent_version' .* int in \\[1, inf\\)"),
        ({"slis": {"silhouette": "high"}}, "snapshot.slis\\[.silhouette.\\]. .* real number"),
        ({"slis": [0.5]}, "'snapshot.slis' .* mapping"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_inconsistent_snapshots_are_refused_and_nothing_is_stored(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    store = DirectorySnapshotStore(tmp_path)
    with pytest.raises(InvalidInputError, match=message):
        store.save(make_snapshot(**change))
    assert store.versions("m1") == []
    assert _temp_entries(tmp_path) == []


def test_save_refuses_what_is_not_a_snapshot(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"must be a Snapshot\. Got dict instead"):
        DirectorySnapshotStore(tmp_path).save({"model": "m1"})  # type: ignore[arg-type]


def test_a_root_that_is_a_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot open the snapshot store"):
        DirectorySnapshotStore(tmp_path / "file")


# --------------------------------------------------------------------------- summary


def test_summary_is_json_friendly_and_worked_by_hand(tmp_path: Path) -> None:
    store = DirectorySnapshotStore(tmp_path)
    saved = store.save(
        make_snapshot(created_at=1_700_000_000.0, window_start=1_699_996_400.0, parent_version=None)
    )
    summary = snapshot_summary(saved, live=True)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["model"] == "m1"
    assert summary["version"] == 1
    assert summary["live"] is True
    assert summary["k"] == 3
    assert summary["features"] == ["f0", "f1"]
    assert summary["n_rows"] == 1234
    assert summary["reason"] == "initial"
    assert summary["parent_version"] is None
    # 1_700_000_000 s = 19675 days + 80000 s after the epoch: 2023-11-14 22:13:20 UTC.
    assert summary["created_at_utc"] == "2023-11-14T22:13:20Z"
    assert summary["window"] == {
        "start": 1_699_996_400.0,
        "end": 1_700_000_000.0,
        "start_utc": "2023-11-14T21:13:20Z",
        "end_utc": "2023-11-14T22:13:20Z",
    }
    assert summary["slis"] == {"inertia": 12.75, "silhouette": 0.5}
    assert summary["checksum"] == saved.checksum
    assert snapshot_summary(saved)["live"] is False


def _unusable(s: Any) -> dict[str, Any]:
    """Each way a snapshot's arrays can disagree with its features and k (make_snapshot:
    k = 3, two features)."""
    bins = s.bins
    return {
        "nan_centers": {"centers": np.full_like(s.centers, np.nan)},
        "thresholds_of_another_k": {
            "outliers": dataclasses.replace(s.outliers, thresholds=np.ones(7))
        },
        "infinite_scale": {"scaler": dataclasses.replace(s.scaler, scale=np.array([1.0, np.inf]))},
        "edges_decreasing": {
            "bins": dataclasses.replace(bins, edges=(bins.edges[0][::-1], *bins.edges[1:]))
        },
        "nan_split_baseline": {"split_baseline": np.array([0.1, np.nan, 0.2])},
        "negative_split_baseline": {"split_baseline": np.array([0.1, -0.5, 0.2])},
    }


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("nan_centers", "centers holds NaN or infinity"),
        ("thresholds_of_another_k", "must have shape (3,) (k=3, d=2). Got shape (7,)"),
        ("infinite_scale", "scaler_scale holds NaN or infinity"),
        ("edges_decreasing", "feature 0's bin edges are not finite and increasing"),
        ("nan_split_baseline", "split_baseline holds NaN or infinity"),
        ("negative_split_baseline", "split_baseline holds a negative value"),
    ],
)
def test_a_snapshot_whose_arrays_disagree_is_not_saved(tmp_path: Path, case: str, why: str) -> None:
    s = make_snapshot()
    store = DirectorySnapshotStore(tmp_path / "snapshots")
    with pytest.raises(InvalidInputError, match=re.escape(why)):
        store.save(dataclasses.replace(s, **_unusable(s)[case]))
    assert store.models() == []


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("nan_centers", "centers holds NaN or infinity"),
        ("infinite_scale", "scaler_scale holds NaN or infinity"),
        ("edges_decreasing", "feature 0's bin edges are not finite and increasing"),
        ("negative_split_baseline", "split_baseline holds a negative value"),
    ],
)
def test_a_snapshot_whose_arrays_disagree_is_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, why: str
) -> None:
    # Written anyway, as one rewritten together with its checksum would be: loaded, it
    # failed runs as "internal" or gave wrong SLIs without a word.
    s = make_snapshot()
    store = DirectorySnapshotStore(tmp_path / "snapshots")
    monkeypatch.setattr(_manifest, "_inconsistent", lambda snapshot: None)
    version = store.save(dataclasses.replace(s, **_unusable(s)[case])).version
    monkeypatch.undo()
    with pytest.raises(StoreError, match="no model can use: " + re.escape(why)):
        DirectorySnapshotStore(tmp_path / "snapshots").load(s.model, version)


def test_bins_whose_fractions_do_not_fit_their_edges_are_inconsistent() -> None:
    # Refused at the save by its shape check first; what a rewritten file reaches the
    # load with (the tester's case: the first feature's edges emptied) is caught here.
    s = make_snapshot()
    emptied = dataclasses.replace(s.bins, edges=(np.empty(0), *s.bins.edges[1:]))
    why = _manifest._inconsistent(dataclasses.replace(s, bins=emptied))
    assert why == "feature 0 has 0 inner bin edge(s), 3 fraction(s)"
    assert _manifest._inconsistent(s) is None
