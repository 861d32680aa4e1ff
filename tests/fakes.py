"""Fakes that meet the ports, for pipeline and bootstrap tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from monitor.checks import Problem
from monitor.config import ModelSettings, parse
from monitor.ports import SourceKind
from monitor.records import Window
from monitor.store.memory import MemoryHistory, MemorySnapshotStore


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeSource:
    """Serves windows produced by ``make(start, end)``; raises whatever ``make`` raises.
    ``make`` returns the rows, or the rows and the window's label (by default, its time
    range: a source that reads by time)."""

    def __init__(
        self,
        features: tuple[str, ...],
        make: Callable[[float, float], np.ndarray | tuple[np.ndarray, str]],
    ) -> None:
        self.features = features
        self.make = make
        self.calls: list[tuple[float, float]] = []
        self.closed = False

    def read_window(self, start: float, end: float) -> Window:
        self.calls.append((start, end))
        made = self.make(start, end)
        X, label = made if isinstance(made, tuple) else (made, f"fake[{start:.0f},{end:.0f})")
        return Window("m", start, end, self.features, X, label=label)

    def close(self) -> None:
        self.closed = True


class FakeKind:
    """A source kind for settings whose source the test passes itself; any options go."""

    name = "fake"

    def parse_options(
        self, raw: Mapping[str, Any], features: Sequence[str] | None
    ) -> tuple[Any, list[Problem]]:
        return MappingProxyType(dict(raw)), []

    def build(self, model: str, features: tuple[str, ...], options: Any) -> FakeSource:
        return FakeSource(features, lambda start, end: np.empty((0, len(features))))

    def replay_problem(self, options: Any) -> str | None:
        return None

    def window_problems(self, options: Any, window: float) -> list[Problem]:
        return []

    def warnings(self, model: str, options: Any) -> list[str]:
        return []


# The registry to parse settings with when a test hands the pipeline its own source.
FAKE_SOURCES: Mapping[str, SourceKind] = MappingProxyType({"fake": FakeKind()})


# The package's in-memory adapters, under the names the tests import (MemoryHistory
# keeps its own name).
MemoryStore = MemorySnapshotStore
__all__ = [
    "FAKE_SOURCES",
    "DripServer",
    "FakeClock",
    "FakeKind",
    "FakeSource",
    "MemoryHistory",
    "MemoryStore",
    "blobs",
    "long_and_tight",
]


def blobs(n: int, centers: np.ndarray, *, seed: int, scale: float = 0.3) -> np.ndarray:
    """``n`` points spread evenly over Gaussian blobs around ``centers`` (k, d)."""
    rng = np.random.default_rng(seed)
    k, d = centers.shape
    labels = np.arange(n) % k
    return centers[labels] + rng.normal(scale=scale, size=(n, d))


def long_and_tight_model(**over: Any) -> ModelSettings:
    """An hourly model ``m`` of ``long_and_tight``'s two features (``a``, ``b``) on the
    fake source, a day's reference, calibrated thresholds; ``over`` replaces fields."""
    m: dict[str, Any] = {
        "name": "m",
        "features": ["a", "b"],
        "k": 2,
        "window": "1h",
        "schedule": {"interval": "1h"},
        "source": {"kind": "fake"},
        "training": {"n_init": 2, "seed": 3, "silhouette_sample": 400},
        "reference": {"window": "1d"},
        "thresholds": {"mode": "calibrated"},
        **over,
    }
    return parse({"models": [m]}, sources=FAKE_SOURCES).models[0]


def long_and_tight(n: int, *, seed: int, new: float = 0.0) -> np.ndarray:
    """Two regimes in two features, one long (cutting it in two saves much in every
    window) around (0, 0), one tight around (0, 8); ``new`` of the rows in a third,
    tight regime between them at (0, 5)."""
    rng = np.random.default_rng(seed)
    fresh = round(new * n)
    long = rng.normal(size=(n // 2, 2)) * [3.0, 0.3]
    tight = rng.normal(size=(n - n // 2 - fresh, 2)) * 0.3 + [0.0, 8.0]
    between = rng.normal(size=(fresh, 2)) * 0.3 + [0.0, 5.0]
    return np.vstack([long, tight, between])


class DripServer:
    """An HTTP server on 127.0.0.1 that answers every request one byte at a time, forever.

    ``head=True`` drips the status line itself; otherwise the head arrives whole with a
    large Content-Length and the body drips. Each connection is served by its own thread
    until ``close`` (or the client leaving).
    """

    def __init__(self, pace: float = 0.5, *, head: bool = True) -> None:
        self.pace = pace
        self.head = head
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, name="drip", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(1.0)
            try:
                conn.recv(65536)  # the request; its content does not matter
                # A head line that never ends, or a body that never does.
                start = b"HTTP/1.1 200 OK\r\nX-Drip: " if self.head else b'{"status": "success'
                if not self.head:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
                for byte in start:
                    if self._stop.wait(self.pace):
                        return
                    conn.sendall(bytes([byte]))
                while not self._stop.wait(self.pace):
                    conn.sendall(b"a")
            except OSError:  # the client gave up
                return

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)
