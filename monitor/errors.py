"""Exceptions and warnings of kmeans-monitor.

Each exception subclasses the builtin it refines, so callers that only know the
builtin (``except ValueError``) still catch it. Non-fatal numeric trouble is a
warning, never an exception and never a NaN in a result.
"""

from __future__ import annotations

__all__ = [
    "AwaitingReferenceError",
    "ConfigError",
    "ConvergenceWarning",
    "DegenerateDataWarning",
    "EngineError",
    "InvalidInputError",
    "InvalidValuesError",
    "LivePointerError",
    "NoDataError",
    "PushError",
    "QueryError",
    "RunCancelledError",
    "SchemaError",
    "SnapshotNotFoundError",
    "SourceDataError",
    "SourceError",
    "SourceTimeoutError",
    "StoreError",
    "StoreWriteError",
    "TimeRangeError",
    "TooFewRowsError",
    "TrainingError",
    "TransientSourceError",
]


class InvalidInputError(ValueError):
    """Input data or a parameter is not acceptable (shape, NaN/inf, range)."""


class SchemaError(InvalidInputError):
    """A window's columns do not match the model's features (names, order, count)."""


class QueryError(SchemaError):
    """The source refuses the query the configuration gives it (a PromQL expression that
    Prometheus does not parse: HTTP 400 ``bad_data``): the configuration's fault, not an
    outage, so a run fails as ``schema``, not ``source_unavailable``; every window would
    fail the same way, so a reference period stops at the first
    (``monitor.pipeline.reference``)."""


class InvalidValuesError(InvalidInputError):
    """A window holds NaN or infinite values beyond what the NaN policy allows."""


class TooFewRowsError(InvalidInputError):
    """A window has fewer rows than the model needs; ``rows``: how many valid ones it
    has, where the check counted them (None: not counted)."""

    def __init__(self, message: str, rows: int | None = None) -> None:
        super().__init__(message)
        self.rows = rows


class AwaitingReferenceError(TooFewRowsError):
    """The rows do not yet cover the model's reference period, as waiting will make them:
    a fixed period that has not run long enough, or data that began inside the period.
    ``ready_at``: unix seconds from which a run trains the model."""

    def __init__(self, message: str, ready_at: float) -> None:
        super().__init__(message)
        self.ready_at = ready_at

    def __reduce__(self) -> tuple[type[AwaitingReferenceError], tuple[str, float]]:
        return type(self), (str(self), self.ready_at)


class TimeRangeError(InvalidInputError):
    """A point in time that parses but lies outside 1970-01-01 to 9999-01-01 UTC."""


class TrainingError(RuntimeError):
    """A model could not be trained on a window."""


class RunCancelledError(RuntimeError):
    """A run was abandoned because the daemon is stopping; nothing was stored but, in a
    first run, the model it had trained (``monitor.pipeline``)."""


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:  # one problem, one line
            super().__init__(f"invalid configuration: {self.problems[0]}")
        else:
            listed = "\n".join(f"  - {p}" for p in self.problems)
            super().__init__(f"invalid configuration:\n{listed}")


class SourceError(RuntimeError):
    """A telemetry source could not deliver a window (unreachable, unreadable, HTTP error)."""


class TransientSourceError(SourceError):
    """The source itself failed to answer (unreachable, overloaded: HTTP 5xx or 429 after
    its retries) or did not answer in time: a later read of the same window may succeed,
    as one of a window that holds no rows, or that a source answers with an error about
    (a bad query, a malformed answer), would not. A reference period is not read in part
    past one (``monitor.pipeline.reference``)."""


class SourceTimeoutError(TransientSourceError, TimeoutError):
    """A telemetry source did not answer in time."""


class SourceDataError(SourceError):
    """A source's data as a whole cannot be the model's rows (a time column of epoch
    milliseconds, or holding no time at all): every window would fail the same way, so
    a reference period stops at the first (``monitor.pipeline.reference``). A run fails
    as ``source_unavailable``."""


class NoDataError(SourceError):
    """A telemetry source answered that it holds nothing for the window's time (no file
    named in it): as a window of no rows is, for a reference period whose data began
    inside it (``monitor.pipeline.reference``). A run fails as ``source_unavailable``."""


class EngineError(RuntimeError):
    """A model's engine could not start (a Spark session on an unreachable or refused
    master, a JVM that exits) or lost a run's job (a master or executors gone): not the
    data, not a bug; the message says why."""


class PushError(RuntimeError):
    """The Pushgateway could not be reached or refused the metrics (the text says why)."""


class StoreError(OSError):
    """The snapshot store or history could not be read or written."""


class StoreWriteError(StoreError):
    """What was trained could not be stored (a retrain's version, or its record in the
    history): the command failed as a run that fails at ``store`` does (exit 1), unlike
    a store that cannot be opened before any work (exit 2)."""


class KeyMismatchError(StoreError):
    """A version written under another store key, or encrypted while no key is configured:
    a key to give, not damage to repair."""


class UnsignedError(StoreError):
    """A version without a signature in a store that requires them: written before the
    key, perhaps, so a setting to change or a version to sign, not damage to repair."""


class NewerFormatError(StoreError):
    """A version of a snapshot format this kmeans-monitor does not read, written by a
    newer one: an upgrade to make, not damage to repair."""


class LivePointerError(StoreError):
    """A model has stored versions but no usable live one; the message names the fix."""


class LiveMovedError(StoreError):
    """A save made on condition that a version is live found another one live: an
    approval or a rollback landed first. Nothing was stored; ``live`` is the live one."""

    def __init__(self, model: str, expected: int, live: int) -> None:
        self.live = live
        super().__init__(
            f"model {model!r}: v{live} was made live while v{expected} was measured; nothing stored"
        )


class OutputError(OSError):
    """Standard output cannot take what a command writes: a full disk, a closed
    descriptor (a reader that went away, ``| head``, stays a ``BrokenPipeError``)."""


class SnapshotNotFoundError(KeyError):
    """No snapshot with that model and version exists."""

    def __str__(self) -> str:  # KeyError quotes its argument; a message reads better
        return str(self.args[0]) if self.args else "snapshot not found"


class ConvergenceWarning(UserWarning):
    """An iterative algorithm stopped before converging, or had to repair its state."""


class DegenerateDataWarning(UserWarning):
    """The data cannot support the request fully (fewer distinct points than clusters,
    constant features, a single cluster for a metric that needs two); the result says so."""
