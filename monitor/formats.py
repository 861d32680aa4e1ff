"""The numbers of the formats this build writes, which decide what a state directory
needs of a build: ``kmeans-monitor --version`` shows them without loading the store.

``monitor.store`` owns the formats; these are its numbers, kept here for the command line
(which reaches the store only through ``monitor.bootstrap``, seconds to import). The
tests check that they are the store's.
"""

from __future__ import annotations

__all__ = ["HISTORY_SCHEMA", "SNAPSHOT_FORMAT"]

#: The history database's schema (``monitor.store.history.SCHEMA_VERSION``, one per
#: migration): the build migrates an older one and refuses a newer one.
HISTORY_SCHEMA = 4
#: The format of the snapshot manifests this build writes (``monitor.store.FORMAT``); it
#: reads this one and the older ones.
SNAPSHOT_FORMAT = 2
