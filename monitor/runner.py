"""The run policy: one run of one model, and what a failure of it means.

A run either returns an Evaluation or becomes a RunFailure with a bounded reason: it is
counted, logged with the model and the window, recorded in the history, and the last
good snapshot stays live. Nothing a run raises reaches the scheduler.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from monitor import slis as S
from monitor.config import Settings
from monitor.errors import (
    InvalidValuesError,
    RunCancelledError,
    SchemaError,
    SourceError,
    SourceTimeoutError,
    StoreError,
    TooFewRowsError,
    TrainingError,
)
from monitor.exporter import MonitorState
from monitor.pipeline import evaluate
from monitor.ports import Clock, Engine, History, SnapshotStore, TelemetrySource
from monitor.records import Evaluation, RunFailure

__all__ = ["Runner", "approve_command", "awaiting_approval", "classify_failure", "summary"]

log = logging.getLogger("monitor")

Result = Evaluation | RunFailure

# Most specific first: SourceTimeoutError is a SourceError, SchemaError an InvalidInputError.
_FAILURE_TYPES: tuple[tuple[type[BaseException], str], ...] = (
    (SourceTimeoutError, "source_timeout"),
    (SourceError, "source_unavailable"),
    (SchemaError, "schema"),
    (InvalidValuesError, "invalid_values"),
    (TooFewRowsError, "too_few_rows"),
    (TrainingError, "training"),
    (StoreError, "store"),
)


def classify_failure(exc: BaseException) -> str:
    """The bounded ``reason`` (one of ``FAILURE_REASONS``) for an exception of a run."""
    for kind, reason in _FAILURE_TYPES:
        if isinstance(exc, kind):
            return reason
    return "internal"


class Runner:
    """Runs models through the pipeline and applies the failure policy."""

    def __init__(
        self,
        settings: Settings,
        *,
        sources: Mapping[str, TelemetrySource],
        store: SnapshotStore,
        history: History,
        state: MonitorState,
        clock: Clock,
        package_version: str,
        should_stop: Callable[[], bool] = lambda: False,
        on_result: Sequence[Callable[[Result], None]] = (),
        engines: Mapping[str, Engine] | None = None,
    ) -> None:
        self._settings = settings
        self._engines = dict(engines or {})  # models without one compute in this process
        self._sources = sources
        self._store = store
        self._history = history
        self._state = state
        self._clock = clock
        self._package_version = package_version
        self._should_stop = should_stop
        self._on_result = tuple(on_result)

    def run_model(self, name: str) -> Result:
        """One run of one model; a failure is recorded and returned, never raised."""
        m = self._settings.model(name)
        t0 = time.perf_counter()
        now = self._clock.now()
        try:
            evaluation, live = evaluate(
                m,
                self._sources[name],
                self._store,
                self._history,
                now,
                package_version=self._package_version,
                working_memory_mib=self._settings.daemon.working_memory_mib,
                should_stop=self._should_stop,
                engine=self._engines.get(name),
            )
        except RunCancelledError as exc:
            log.info("model=%s %s", name, exc)
            return RunFailure(name, "internal", str(exc), now)
        except Exception as exc:
            result: Result = self._failed(name, exc, now, time.perf_counter() - t0)
        else:
            duration = time.perf_counter() - t0
            self._state.record_success(evaluation, live, duration=duration, at=self._clock.now())
            log.info("model=%s %s (%.2fs)", name, summary(evaluation), duration)
            if awaiting_approval(evaluation):
                log.info(
                    "model=%s approve with: %s",
                    name,
                    approve_command(
                        name, evaluation.candidate_version, self._settings.daemon.state_dir
                    ),
                )
            result = evaluation
        for callback in self._on_result:
            callback(result)
        return result

    def _failed(self, name: str, exc: Exception, now: float, duration: float) -> RunFailure:
        reason = classify_failure(exc)
        self._state.record_failure(name, reason, duration=duration, at=self._clock.now())
        if reason == "internal":
            log.exception("model=%s run failed (internal): %s", name, exc)
        else:
            log.error("model=%s run failed (%s): %s", name, reason, exc)
        failure = RunFailure(name, reason, str(exc), now)
        try:
            self._history.append_failure(failure)
        except Exception as hexc:
            log.error("model=%s cannot record the failure in history: %s", name, hexc)
        return failure

    def refresh_live(self) -> None:
        """Follow live pointers changed outside the daemon (a rollback from the CLI)."""
        for m in self._settings.models:
            try:
                version = self._store.live_version(m.name)
                if version is not None and version != self._state.live_version(m.name):
                    self._state.set_live(self._store.load(m.name, version), promoted=True)
                    log.info("model=%s live snapshot is now v%d", m.name, version)
            except Exception as exc:  # the next refresh tries again
                log.warning("model=%s cannot read the live snapshot: %s", m.name, exc)


def awaiting_approval(evaluation: Evaluation) -> bool:
    """Whether the run left a candidate pending (stored, not promoted)."""
    return evaluation.candidate_version is not None and not evaluation.promoted


def approve_command(model: str, version: int | None, state_dir: Path) -> str:
    """The command that approves a pending candidate, runnable as printed."""
    return f"kmeans-monitor snapshots approve {model} {version} --state-dir {state_dir}"


def summary(evaluation: Evaluation) -> str:
    """The run in one line: window, rows, version, the catalogue's progress SLIs, decision."""
    fields = " ".join(f"{p.name}={evaluation.slis[p.sli]:{p.fmt}}" for p in S.PROGRESS if p.name)
    return (
        f"window=[{_clock(evaluation.window_start)}, {_clock(evaluation.window_end)}) "
        f"rows={evaluation.n_rows} v{evaluation.live_version} {fields} -> {evaluation.decision}"
    )


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")
