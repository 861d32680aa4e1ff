"""Wall time of each phase of a run, and the cancellation check between phases."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from monitor.errors import RunCancelledError

__all__ = ["Phases"]


class Phases:
    """Times the phases of one run; between phases, abandons the run if asked to stop."""

    def __init__(self, should_stop: Callable[[], bool] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self._should_stop = should_stop
        self._started = time.perf_counter()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block under ``name`` (phases met twice add up)."""
        if self.stopping():
            raise RunCancelledError(f"run abandoned before phase {name!r}: the daemon is stopping")
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def stopping(self) -> bool:
        """Whether the run has been asked to stop (its deadline, the daemon's stop)."""
        return self._should_stop is not None and self._should_stop()

    def finish(self) -> None:
        """No phase from now on abandons the run: what is left of it is short, and
        abandoning it would throw away work that took far longer (a first model)."""
        self._should_stop = None

    def add(self, seconds: Mapping[str, float]) -> None:
        """Phases timed elsewhere (a worker process), added to this run's."""
        for name, value in seconds.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + value

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self._started
