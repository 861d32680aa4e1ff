"""/metrics as bytes rendered once per state change, so a scrape costs a memory copy."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable

from monitor.checks import check_float
from monitor.exporter import Registry, encode

__all__ = ["MetricsCache"]


class MetricsCache:
    """The exposition of ``registry``, re-encoded only when ``version()`` changes.

    ``version`` is a counter the state bumps on every change. The process collectors
    (CPU seconds, resident memory, open fds, GC) change without a version bump, so the
    bytes are also re-encoded when they are older than ``max_age`` seconds: their
    values are at most that stale, and a scrape flood costs at most one encoding per
    ``max_age``. ``max_age=None`` re-encodes on version changes only (a registry with no
    process collectors). Concurrent scrapes that find the bytes stale wait for one
    encoding instead of each doing their own.

    ``gzipped()`` is the same exposition gzip-compressed (what Prometheus asks for),
    compressed once per encoding on the first request for it: about a tenth of the
    bytes, so a scrape's copies through the socket cost the server and the scraper a
    fraction of the plain body's.
    """

    def __init__(
        self,
        registry: Registry,
        version: Callable[[], int],
        *,
        max_age: float | None = 1.0,
        encoder: Callable[[Registry], bytes] = encode,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age is not None:
            max_age = check_float(max_age, "max_age", low=0.0, owner="MetricsCache")
        self._registry = registry
        self._version = version
        self._max_age = max_age
        self._encode = encoder
        self._clock = clock
        self._lock = threading.Lock()
        # (version, monotonic time of encoding, bytes); swapped whole, read without the lock
        self._current: tuple[int, float, bytes] | None = None
        # (the plain bytes it was compressed from, the gzip bytes)
        self._gzipped: tuple[bytes, bytes] | None = None
        self.encodings = 0

    def _fresh(self, current: tuple[int, float, bytes] | None, version: int) -> bool:
        if current is None or current[0] != version:
            return False
        return self._max_age is None or self._clock() - current[1] < self._max_age

    def peek(self, *, gzipped: bool = False) -> bytes | None:
        """The bytes (``gzipped``: compressed) if they are fresh and ready, else None;
        never encodes or compresses (safe on an event loop)."""
        current = self._current
        if current is None or not self._fresh(current, self._version()):
            return None
        if not gzipped:
            return current[2]
        packed = self._gzipped
        return packed[1] if packed is not None and packed[0] is current[2] else None

    def gzipped(self) -> bytes:
        """The current exposition, gzip-compressed."""
        body = self()
        packed = self._gzipped
        if packed is not None and packed[0] is body:
            return packed[1]
        with self._lock:
            packed = self._gzipped
            if packed is None or packed[0] is not body:
                # mtime 0: the same exposition always compresses to the same bytes
                packed = (body, gzip.compress(body, compresslevel=6, mtime=0))
                self._gzipped = packed
            return packed[1]

    def __call__(self) -> bytes:
        """The current exposition bytes."""
        version = self._version()
        current = self._current
        if current is not None and self._fresh(current, version):
            return current[2]
        with self._lock:
            # Another scrape may have encoded while this one waited for the lock.
            version = self._version()
            current = self._current
            if current is not None and self._fresh(current, version):
                return current[2]
            # Read the version before encoding: a change during encoding bumps it past
            # the one stored here, so the next scrape re-encodes rather than missing it.
            at = self._clock()
            body = self._encode(self._registry)
            self._current = (version, at, body)
            self.encodings += 1
            return body
