"""The values of common Spark properties, checked as Spark reads them, without Spark.

A value Spark refuses (``spark.executor.memory: lots``) failed every run as its session
started, after a JVM's launch, where ``check-config`` had passed the file. The forms are
those of Spark's ``JavaUtils.byteStringAs`` / ``timeStringAs`` and Scala's ``toInt`` /
``toBoolean`` (all after ``trim``, case-insensitive). A property not listed here is
passed to Spark as written: Spark ignores the ones it does not know, and the
``spark.hadoop.*``, ``spark.sql.*`` and plugins' keys cannot all be listed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["PROPERTY_KINDS", "refused"]

_BYTES = re.compile(r"[0-9]+(?:b|k|kb|m|mb|g|gb|t|tb|p|pb)?")
_DURATION = re.compile(r"-?[0-9]+(?:us|ms|s|m|min|h|d)?")
_INT = re.compile(r"[+-]?[0-9]+")
_LOG_LEVELS = ("ALL", "DEBUG", "ERROR", "FATAL", "INFO", "OFF", "TRACE", "WARN")
_INT_MAX = 2**31 - 1


def _is_int(text: str, low: int = 1, high: int = _INT_MAX) -> bool:
    return _INT.fullmatch(text) is not None and low <= int(text) <= high


def _is_fraction(text: str) -> bool:
    try:
        return 0.0 <= float(text) <= 1.0
    except ValueError:
        return False


#: Kind -> (what a problem says is expected, whether a value's text is of that kind).
_KINDS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "bytes": (
        "a size as Spark reads it: an integer with an optional unit b, k, m, g, t or p "
        "(kb, mb, ...), such as 4g or 512m",
        lambda t: _BYTES.fullmatch(t.lower()) is not None,
    ),
    "duration": (
        "a duration as Spark reads it: an integer with an optional unit us, ms, s, m, "
        "min, h or d, such as 120s",
        lambda t: _DURATION.fullmatch(t.lower()) is not None,
    ),
    "count": ("a whole number, at least 1", _is_int),
    "count0": ("a whole number, at least 0", lambda t: _is_int(t, 0)),
    "port": ("a port number in [0, 65535]", lambda t: _is_int(t, 0, 65535)),
    "boolean": ("true or false", lambda t: t.lower() in ("true", "false")),
    "fraction": ("a number in [0, 1]", _is_fraction),
    "log level": (
        "one of Spark's log levels: " + ", ".join(_LOG_LEVELS),
        lambda t: t.upper() in _LOG_LEVELS,
    ),
}

#: The kind of value of the common properties (Spark's "Configuration" page).
PROPERTY_KINDS: dict[str, str] = {
    **dict.fromkeys(
        (
            "spark.driver.memory",
            "spark.driver.memoryOverhead",
            "spark.driver.maxResultSize",
            "spark.executor.memory",
            "spark.executor.memoryOverhead",
            "spark.executor.pyspark.memory",
            "spark.memory.offHeap.size",
            "spark.python.worker.memory",
            "spark.reducer.maxSizeInFlight",
            "spark.kryoserializer.buffer",
            "spark.kryoserializer.buffer.max",
            "spark.sql.files.maxPartitionBytes",
        ),
        "bytes",
    ),
    **dict.fromkeys(
        (
            "spark.network.timeout",
            "spark.executor.heartbeatInterval",
            "spark.locality.wait",
            "spark.dynamicAllocation.executorIdleTimeout",
            "spark.dynamicAllocation.schedulerBacklogTimeout",
        ),
        "duration",
    ),
    **dict.fromkeys(
        (
            "spark.driver.cores",
            "spark.executor.cores",
            "spark.executor.instances",
            "spark.cores.max",
            "spark.default.parallelism",
            "spark.sql.shuffle.partitions",
            "spark.task.cpus",
            "spark.task.maxFailures",
        ),
        "count",
    ),
    **dict.fromkeys(
        (
            "spark.dynamicAllocation.minExecutors",
            "spark.dynamicAllocation.maxExecutors",
            "spark.dynamicAllocation.initialExecutors",
            "spark.port.maxRetries",
        ),
        "count0",
    ),
    **dict.fromkeys(
        (
            "spark.ui.port",
            "spark.driver.port",
            "spark.blockManager.port",
            "spark.driver.blockManager.port",
        ),
        "port",
    ),
    **dict.fromkeys(
        (
            "spark.ui.enabled",
            "spark.ui.showConsoleProgress",
            "spark.dynamicAllocation.enabled",
            "spark.shuffle.service.enabled",
            "spark.eventLog.enabled",
            "spark.speculation",
            "spark.memory.offHeap.enabled",
            "spark.python.worker.reuse",
            "spark.sql.adaptive.enabled",
            "spark.sql.execution.arrow.pyspark.enabled",
        ),
        "boolean",
    ),
    "spark.memory.fraction": "fraction",
    "spark.memory.storageFraction": "fraction",
    "spark.log.level": "log level",
}


def refused(key: str, text: str) -> str | None:
    """What Spark expects of ``key``'s value when it would refuse ``text``, else None
    (a property not in ``PROPERTY_KINDS`` is not judged)."""
    kind = PROPERTY_KINDS.get(key)
    if kind is None:
        return None
    expected, ok = _KINDS[kind]
    return None if ok(text.strip()) else expected
