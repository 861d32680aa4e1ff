"""/metrics as bytes rendered once per state change, so a scrape costs a memory copy."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from monitor.checks import check_float
from monitor.exporter import Registry, encode

__all__ = ["MetricsCache", "Volatile"]


class MetricsCache:
    """The exposition of ``registry``, re-encoded only when ``version()`` changes.

    ``version`` is a counter the state bumps on every change. The process collectors
    (CPU seconds, resident memory, open fds, GC) change without a version bump, so the
    bytes are also re-encoded when they are older than ``max_age`` seconds: their
    values are at most that stale, and a scrape flood costs at most one encoding per
    ``max_age``. ``max_age=None`` re-encodes on version changes only (a registry with no
    process collectors). Concurrent scrapes that find the bytes stale wait for one
    encoding instead of each doing their own.

    ``volatile`` lists the collectors that change without a version bump, each in a
    registry of its own (``registry`` then holds only those that do not): after
    ``max_age`` a part is re-encoded alone, and only if its ``changes`` counter moved
    (no counter: it always has). The exposition is the registry's bytes, then each
    part's. For the daemon's six models a refresh with no label traffic is then the
    process families, 0.3 ms of encoding instead of 14, and every millisecond of
    encoding is one in which the event loop waits for the GIL.

    ``gzipped()`` is the same exposition gzip-compressed (what Prometheus asks for):
    about a tenth of the bytes, so a scrape's copies through the socket cost the server
    and the scraper a fraction of the plain body's. Once it has been asked for, every
    encoding compresses too, in the same step, so the two never disagree.

    ``peek`` is for the event loop, which must never wait: while another thread encodes
    newer bytes it returns the bytes they replace, so one scrape pays for an encoding
    (14 ms of CPU for six models) and the others in flight meanwhile do not queue
    behind it. Such a scrape began while the state was being read, so the older bytes
    are as true an answer as the newer ones.
    """

    def __init__(
        self,
        registry: Registry,
        version: Callable[[], int],
        *,
        volatile: Sequence[Volatile] = (),
        max_age: float | None = 1.0,
        encoder: Callable[[Registry], bytes] = encode,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age is not None:
            max_age = check_float(max_age, "max_age", low=0.0, owner="MetricsCache")
        self._registry = registry
        self._volatile = tuple(volatile)
        self._version = version
        self._max_age = max_age
        self._encode = encoder
        self._clock = clock
        self._lock = threading.Lock()
        # Swapped whole, read without the lock.
        self._current: _Encoded | None = None
        self._want_gzip = False  # set by the first gzipped(): encodings compress from then on
        self.encodings = 0

    def _fresh(self, current: _Encoded | None, version: int) -> bool:
        if current is None or current.version != version:
            return False
        if self._max_age is None or self._clock() - current.at < self._max_age:
            return True
        if not self._volatile:
            return False  # aged: the whole registry is encoded again
        now = _changes(self._volatile)
        return all(c is not None and c == n for c, n in zip(current.changes, now, strict=True))

    def peek(self, *, gzipped: bool = False) -> bytes | None:
        """The bytes (``gzipped``: compressed) if they are fresh, or if newer ones are
        being encoded meanwhile; else None. Never encodes nor waits (safe on an event loop)."""
        current = self._current
        if current is None:
            return None
        if not self._fresh(current, self._version()) and not self._lock.locked():
            return None
        return current.gzipped if gzipped else current.body

    def gzipped(self) -> bytes:
        """The current exposition, gzip-compressed."""
        self._want_gzip = True
        current = self._encoded()
        if current.gzipped is None:  # encoded before the first request for gzip
            with self._lock:
                current = self._current or current
                if current.gzipped is None:
                    self._current = current = current.compressed()
        assert current.gzipped is not None
        return current.gzipped

    def __call__(self) -> bytes:
        """The current exposition bytes."""
        return self._encoded().body

    def _encoded(self) -> _Encoded:
        version = self._version()
        current = self._current
        if current is not None and self._fresh(current, version):
            return current
        with self._lock:
            # Another scrape may have encoded while this one waited for the lock.
            version = self._version()
            current = self._current
            if current is not None and self._fresh(current, version):
                return current
            # Read the version before encoding: a change during encoding bumps it past
            # the one stored here, so the next scrape re-encodes rather than missing it.
            current = self._encode_now(current, version)
            if self._want_gzip:
                current = current.compressed()
            self._current = current
            self.encodings += 1
            return current

    def _encode_now(self, current: _Encoded | None, version: int) -> _Encoded:
        at = self._clock()
        if not self._volatile:
            body = self._encode(self._registry)
            return _Encoded(version, at, body, (), (), body)
        steady = (
            current.steady
            if current is not None and current.version == version
            else self._encode(self._registry)
        )
        # Read before encoding: a change meanwhile is seen by the next scrape.
        changes = _changes(self._volatile)
        parts = tuple(
            current.parts[i]
            if current is not None and count is not None and current.changes[i] == count
            else self._encode(part.registry)
            for i, (part, count) in enumerate(zip(self._volatile, changes, strict=True))
        )
        return _Encoded(version, at, steady, changes, parts, b"".join((steady, *parts)))


@dataclass(frozen=True)
class Volatile:
    """Families that change without the state's version bump (``MetricsCache(volatile=)``).

    ``changes`` is a counter their source bumps on every change (None: they change all
    the time, as process CPU seconds do).
    """

    registry: Registry
    changes: Callable[[], int] | None = None


def _changes(parts: tuple[Volatile, ...]) -> tuple[int | None, ...]:
    return tuple(None if p.changes is None else p.changes() for p in parts)


@dataclass(frozen=True)
class _Encoded:
    """One encoding of the registry: the state version it read, when, and its bytes."""

    version: int
    at: float  # the cache's clock
    steady: bytes  # the part that changes only with the version (all of it: no volatile)
    changes: tuple[int | None, ...]  # each volatile part's counter when it was encoded
    parts: tuple[bytes, ...]  # each volatile part's bytes
    body: bytes
    gzipped: bytes | None = None

    def compressed(self) -> _Encoded:
        # mtime 0: the same exposition always compresses to the same bytes
        return replace(self, gzipped=gzip.compress(self.body, compresslevel=6, mtime=0))
