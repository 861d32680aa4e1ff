"""Persistence adapters: versioned model snapshots (a directory) and run history (SQLite)."""

from __future__ import annotations

from monitor.store.history import SQLiteHistory
from monitor.store.snapshots import DirectorySnapshotStore, snapshot_summary

__all__ = ["DirectorySnapshotStore", "SQLiteHistory", "snapshot_summary"]
