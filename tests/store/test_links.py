"""Links put in the state directory by one who may write it: the daemon never writes
through them (helper-88: daemon.lock linked to a file had it truncated to the daemon's
pid; a LOCK link changed its target's mode; a history.sqlite link made an empty file a
database)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from _store_factories import make_snapshot

from monitor.bootstrap import claim_state_dir
from monitor.errors import InvalidInputError, StoreError
from monitor.store import DirectorySnapshotStore, SQLiteHistory


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file the daemon's user may write, outside the state directory."""
    path = tmp_path / "victim.txt"
    path.write_text("precious\n")
    path.chmod(0o644)
    return path


def untouched(path: Path) -> bool:
    return path.read_text() == "precious\n" and stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_linked_daemon_lock_is_refused_not_truncated(tmp_path: Path, victim: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "daemon.lock").symlink_to(victim)
    with pytest.raises(InvalidInputError, match=r"daemon.lock is a symbolic link, which"):
        claim_state_dir(state)
    assert untouched(victim)


def test_a_linked_model_lock_is_refused_not_chmodded(tmp_path: Path, victim: Path) -> None:
    (tmp_path / "m1").mkdir()
    (tmp_path / "m1" / "LOCK").symlink_to(victim)
    with pytest.raises(StoreError, match=r"LOCK is a symbolic link, which kmeans-monitor"):
        DirectorySnapshotStore(tmp_path).save(make_snapshot(), state="live")
    assert untouched(victim)


@pytest.mark.parametrize("name", ["history.sqlite", "history.sqlite-wal"])
def test_a_linked_history_file_is_refused(tmp_path: Path, name: str) -> None:
    empty = tmp_path / "empty.conf"
    empty.write_bytes(b"")
    empty.chmod(0o644)
    (tmp_path / name).symlink_to(empty)
    with pytest.raises(StoreError, match=rf"{name} is a symbolic link, which kmeans-monitor"):
        SQLiteHistory(tmp_path / "history.sqlite")
    assert empty.read_bytes() == b"" and stat.S_IMODE(os.stat(empty).st_mode) == 0o644
