"""Retention: which versions a store removes after each save, and which it never does."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

import pytest
from _store_factories import make_snapshot, stored_files

from monitor.errors import InvalidInputError
from monitor.store import DirectorySnapshotStore, RetentionPolicy, snapshots
from monitor.store.snapshots import LIVE, MANIFEST, TMP_PREFIX

DAY = 86_400.0
NOW = 1_800_000_000.0


def _store(tmp_path: Path, **policy: Any) -> DirectorySnapshotStore:
    return DirectorySnapshotStore(tmp_path, retention=RetentionPolicy(**policy), clock=lambda: NOW)


def _save_aged(store: DirectorySnapshotStore, days_old: list[float], **kw: Any) -> None:
    for i, age in enumerate(days_old):
        store.save(make_snapshot(seed=i, created_at=NOW - age * DAY), **kw)


def test_count_keeps_the_newest_n_and_the_live_one(tmp_path: Path) -> None:
    store = _store(tmp_path, versions=3)
    store.save(make_snapshot(seed=0), state="live")
    _save_aged(store, [0, 0, 0, 0, 0])
    assert store.versions("m1") == [1, 4, 5, 6]
    assert store.load("m1").version == 1
    assert list((tmp_path / "m1").glob(f"{TMP_PREFIX}*")) == []


def test_the_live_versions_parent_is_never_removed(tmp_path: Path) -> None:
    # It was, within `keep.versions` drifting runs under `manual`; a rollback then made
    # live a candidate that never had been (helper-103).
    store = _store(tmp_path, versions=2)
    store.save(make_snapshot(seed=0), state="live")
    store.save(make_snapshot(seed=1, parent_version=1), state="live")
    _save_aged(store, [0, 0, 0], state="pending")
    assert store.versions("m1") == [1, 2, 4, 5]
    assert store.rollback("m1") == (2, 1)


def test_the_pending_version_is_never_removed(tmp_path: Path) -> None:
    store = _store(tmp_path, versions=1)
    store.save(make_snapshot(seed=0), state="live")
    store.save(make_snapshot(seed=1), state="pending")
    _save_aged(store, [0, 0])
    assert store.versions("m1") == [1, 2, 4]
    assert (store.live_version("m1"), store.pending_version("m1")) == (1, 2)


def test_age_removes_old_versions_but_never_the_newest(tmp_path: Path) -> None:
    store = _store(tmp_path, age=30 * DAY)
    store.save(make_snapshot(seed=9, created_at=NOW - 90 * DAY), state="live")
    _save_aged(store, [60, 31, 29, 45])
    # v2 (60 d) and v3 (31 d) go; v4 (29 d) is young; v5 (45 d) is the newest; v1 is live.
    assert store.versions("m1") == [1, 4, 5]


def test_count_and_age_together_keep_whatever_either_keeps(tmp_path: Path) -> None:
    store = _store(tmp_path, versions=2, age=30 * DAY)
    store.save(make_snapshot(seed=9, created_at=NOW - 90 * DAY), state="live")
    _save_aged(store, [80, 10, 70, 60, 50])
    # Newest two: v5, v6. Younger than 30 d: v3. Live: v1.
    assert store.versions("m1") == [1, 3, 5, 6]


def test_a_corrupt_version_is_kept_as_evidence(tmp_path: Path) -> None:
    store = DirectorySnapshotStore(tmp_path)
    store.save(make_snapshot(seed=0), state="live")
    store.save(make_snapshot(seed=1))
    (tmp_path / "m1" / "v000002" / MANIFEST).write_text("{}\n")
    pruning = _store(tmp_path, versions=1)
    _save_aged(pruning, [0, 0])
    assert pruning.versions("m1") == [1, 2, 4]


def test_no_policy_rule_means_nothing_is_removed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save(make_snapshot(seed=0), state="live")
    _save_aged(store, [400, 300])
    assert store.versions("m1") == [1, 2, 3]
    assert DirectorySnapshotStore(tmp_path).prune("m1") == []  # no policy at all


def test_an_unreadable_live_pointer_stops_pruning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path, versions=1)
    store.save(make_snapshot(seed=0), state="live")
    (tmp_path / "m1" / LIVE).write_text("garbage")
    with caplog.at_level(logging.WARNING, logger="monitor.store"):
        _save_aged(store, [0, 0])
    assert store.versions("m1") == [1, 2, 3]
    assert any("retention skipped" in r.getMessage() for r in caplog.records)


def test_a_failed_removal_does_not_fail_the_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path, versions=1)
    store.save(make_snapshot(seed=0), state="live")
    store.save(make_snapshot(seed=1))

    def broken(model_dir: Path, vdir: Path) -> None:
        raise OSError(errno.EIO, "simulated I/O error")

    monkeypatch.setattr(snapshots, "_remove_version", broken)
    with caplog.at_level(logging.WARNING, logger="monitor.store"):
        saved = store.save(make_snapshot(seed=2))
    assert saved.version == 3
    assert store.versions("m1") == [1, 2, 3]
    assert [r.getMessage() for r in caplog.records] == [
        "model=m1 retention skipped: [Errno 5] simulated I/O error"
    ]


def test_prune_applies_a_new_policy_at_once(tmp_path: Path) -> None:
    plain = DirectorySnapshotStore(tmp_path)
    plain.save(make_snapshot(seed=0), state="live")
    for seed in range(1, 5):
        plain.save(make_snapshot(seed=seed))
    assert _store(tmp_path, versions=2).prune("m1") == [2, 3]
    assert plain.versions("m1") == [1, 4, 5]
    assert _store(tmp_path, versions=2).prune("never-saved") == []


def test_retention_spares_other_models(tmp_path: Path) -> None:
    store = _store(tmp_path, versions=1)
    store.save(make_snapshot("a", seed=0), state="live")
    store.save(make_snapshot("b", seed=0), state="live")
    before = stored_files(tmp_path / "a")
    store.save(make_snapshot("b", seed=1))
    store.save(make_snapshot("b", seed=2))
    assert stored_files(tmp_path / "a") == before
    assert store.versions("b") == [1, 3]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"versions": 0}, "The 'versions' parameter of RetentionPolicy must be an int in [1, inf)"),
        ({"versions": 2.0}, "The 'versions' parameter of RetentionPolicy must be an int"),
        ({"age": 0.0}, "The 'age' parameter of RetentionPolicy must be a float in (0.0, inf)"),
        ({"age": float("inf")}, "The 'age' parameter of RetentionPolicy must be a float"),
    ],
)
def test_bad_policies_are_refused(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        RetentionPolicy(**policy)
    assert str(info.value).startswith(message)
