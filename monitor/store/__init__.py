"""Persistence adapters: versioned model snapshots (a directory) and run history (SQLite)."""

from __future__ import annotations

from monitor.store._crypto import StoreKey, load_key
from monitor.store.history import SQLiteHistory
from monitor.store.snapshots import (
    DirectorySnapshotStore,
    RetentionPolicy,
    snapshot_summary,
    version_summary,
)

__all__ = [
    "DirectorySnapshotStore",
    "RetentionPolicy",
    "SQLiteHistory",
    "StoreKey",
    "load_key",
    "snapshot_summary",
    "version_summary",
]
