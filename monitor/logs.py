"""The logging of every process: the CLI's and each run worker's.

One format, URL credentials masked in every line whoever writes it, and a Python
warning as one line (a worker used to print its warnings in Python's own two-line form,
with the source file and the code line).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Hashable
from typing import Any

from monitor.durations import format_duration
from monitor.redact import RedactingFilter, redact_text

__all__ = [
    "FORMAT",
    "QUIET_LIBRARIES",
    "Throttle",
    "UTCFormatter",
    "in_the_last",
    "log_run_failure",
    "set_log_level",
    "setup_logging",
]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class UTCFormatter(logging.Formatter):
    """FORMAT with each line's time in UTC, ISO-8601 to the millisecond with a ``Z``
    (``2026-03-09T13:00:11.017Z``): in the host's zone, with no mark, it read an hour or
    five apart from the UTC window bounds of the same line (t13 F4)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def setup_logging(level: str) -> None:
    """Log to stderr at ``level`` (a name such as ``"INFO"``), redacted, warnings included;
    times in UTC (UTCFormatter). As ``logging.basicConfig``: nothing is added when the
    root logger has a handler already."""
    if not logging.root.handlers:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(UTCFormatter(FORMAT))
        logging.root.addHandler(stderr)
    # The last line of defence: no URL credentials in any log line, whoever writes it.
    for handler in logging.root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    set_log_level(level)
    warnings.showwarning = _log_warning


#: Libraries whose debug (and info) lines are their own internals, not the daemon's:
#: numba's compiler logs each pass over the kernels' IR (`log_level: debug` wrote 95,000
#: lines of ``numba.core.ssa`` in 45 s, 13 MB); matplotlib and PIL each font and image
#: chunk of a plot; py4j each message to Spark's JVM. They stay at WARNING at any level.
QUIET_LIBRARIES = ("numba", "matplotlib", "PIL", "py4j")


def set_log_level(level: str) -> None:
    """The root logger's level; APScheduler's stays at ERROR or above, and the libraries
    of QUIET_LIBRARIES at WARNING or above."""
    logging.root.setLevel(getattr(logging, level.upper()))
    # APScheduler logs every job execution at INFO, and each missed run at WARNING; the
    # daemon logs each run and each skipped run itself.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, logging.root.level))
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.root.level))


def log_run_failure(
    logger: logging.Logger,
    name: str,
    reason: str,
    exc: BaseException,
    *,
    level: int = logging.ERROR,
) -> str:
    """Log a failed run of model ``name`` (its bounded ``reason``) at ``level``, and return
    its message, redacted and never empty (MemoryError and a few others carry no text).
    An ``internal`` failure is a bug: it is logged at ERROR whatever ``level``, with its
    traceback, for the report."""
    message = redact_text(str(exc) or type(exc).__name__)
    if reason == "internal":
        trace = redact_text("".join(traceback.format_exception(exc)).rstrip())
        logger.error("model=%s run failed (internal): %s\n%s", name, message, trace)
    else:
        logger.log(level, "model=%s run failed (%s): %s", name, reason, message)
    return message


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A warning as one log line: what it says, not the source file and line that raised
    it (Python's default shows both, on two lines)."""
    logging.getLogger("monitor").warning("%s: %s", category.__name__, message)


#: Keys a ``Throttle`` keeps before it lets go of those whose lines are past.
_THROTTLE_KEYS = 1024


class Throttle:
    """At most one log line per key every ``seconds``: what comes in between is held,
    counted, and told by the key's next line (a line per skipped run, or per window of a
    reference scan, flooded the log). Thread-safe.

    Keys can name what comes and goes (a restarted pod's series), so a key whose line is
    older than ``seconds`` and holds nothing is let go once the keys double: its next
    line reads the same as if it had been kept (no count to tell)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}
        self._prune_at = _THROTTLE_KEYS

    def __call__(self, key: Hashable, count: int = 1) -> tuple[int, float | None] | None:
        """``count`` more of ``key``: None while its line is held, else how many to tell
        (those held and these) and the seconds since its last line (None: its first)."""
        now = self._clock()
        with self._lock:
            count += self._held.pop(key, 0)
            last = self._last.get(key)
            if last is not None and now - last < self._seconds:
                self._held[key] = count
                return None
            self._last[key] = now
            if len(self._last) > self._prune_at:
                self._prune(now)
        return count, None if last is None else now - last

    def _prune(self, now: float) -> None:
        """Let go of the keys past their ``seconds`` that hold nothing (under the lock)."""
        for key in [k for k, t in self._last.items() if now - t >= self._seconds]:
            if key not in self._held:
                del self._last[key]
        self._prune_at = max(_THROTTLE_KEYS, 2 * len(self._last))


def in_the_last(seconds: float) -> str:
    """How a throttled line says since when it counts: "in the last 10m"."""
    return f"in the last {format_duration(max(1, round(seconds)))}"
