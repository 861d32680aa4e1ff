"""The run policy: one run of one model, and what a failure of it means.

A run either returns an Evaluation or becomes a RunFailure with a bounded reason: it is
counted, logged with the model and the window, recorded in the history, and the last
good snapshot stays live. Nothing a run raises reaches the scheduler.

A run has a deadline (``schedule.run_timeout``). The source is read on a helper thread
that the run waits for until the deadline or a stop, so a read that hangs frees the
worker (reason ``source_timeout``); between the pipeline's phases the deadline is
checked too (reason ``run_timeout``), and an engine's jobs are stopped at it
(``Engine.deadline``); a run whose middle computes in a worker process
(``daemon.run_isolation: process``) is ended by stopping that process. Failure messages
are redacted before they are logged, stored or returned: no URL credentials, no secret
a source named.
"""

from __future__ import annotations

import functools
import logging
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import slis as S
from monitor.checks import overflow_message
from monitor.config import Settings
from monitor.core.scaling import transform
from monitor.errors import (
    AwaitingReferenceError,
    EngineError,
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
from monitor.logs import Throttle, in_the_last, log_run_failure
from monitor.pipeline import Assess, ScaleBuffer, assess, evaluate
from monitor.ports import (
    Clock,
    Engine,
    History,
    SnapshotStore,
    TelemetrySource,
    source_deadline,
)
from monitor.records import Evaluation, RunFailure, Scaler, StoreEvent, Window
from monitor.redact import redact_text
from monitor.timestamps import format_time
from monitor.workers import RunWorkers

__all__ = [
    "RunTimeoutError",
    "Runner",
    "approve_command",
    "awaiting_approval",
    "classify_failure",
    "event_summary",
    "store_options",
    "summary",
]

log = logging.getLogger("monitor")

Result = Evaluation | RunFailure

# How often a run waiting for its source looks at the clock and the stop flag.
_READ_POLL_SECONDS = 0.05

#: Runs refused because the state directory was lost (``StateDirWatch``) are logged once,
#: then in one summary line this often at most: a line per run per model was ~50 a
#: minute with 8 models at a 10 s interval, every one the same (fixer F12).
LOST_LOG_SECONDS = 600.0


class RunTimeoutError(TimeoutError):
    """A run went past its deadline between two phases and was abandoned."""


# Most specific first: SourceTimeoutError is a SourceError, SchemaError an InvalidInputError.
_FAILURE_TYPES: tuple[tuple[type[BaseException], str], ...] = (
    (RunTimeoutError, "run_timeout"),
    (SourceTimeoutError, "source_timeout"),
    (SourceError, "source_unavailable"),
    (SchemaError, "schema"),
    (InvalidValuesError, "invalid_values"),
    (AwaitingReferenceError, "awaiting_reference"),
    (TooFewRowsError, "too_few_rows"),
    (TrainingError, "training"),
    (StoreError, "store"),
    (EngineError, "engine_unavailable"),
)


def classify_failure(exc: BaseException) -> str:
    """The bounded ``reason`` (one of ``FAILURE_REASONS``) for an exception of a run."""
    for kind, reason in _FAILURE_TYPES:
        if isinstance(exc, kind):
            return reason
    return "internal"


class _GuardedSource:
    """A model's source for one run: each read on a helper thread, waited for until the
    run's deadline or a stop, so that a hung read frees the run's worker.

    A read that outlives its run keeps going in the background (a thread cannot be
    killed); the model's next run fails at once while it does, so at most one read per
    model hangs at a time.
    """

    def __init__(
        self,
        model: str,
        source: TelemetrySource,
        deadline: float,
        timeout: float | None,
        stopping: Callable[[], bool],
        reads: dict[str, tuple[threading.Event, float]],
        timer: Callable[[], float],
    ) -> None:
        self._timer = timer
        self._model = model
        self._source = source
        self._deadline = deadline
        self._timeout = timeout
        self._stopping = stopping
        self._reads = reads
        self.windows: list[Window] = []  # what this run read, for diagnosing its failure

    def read_window(self, start: float, end: float) -> Window:
        """The source's window, or SourceTimeoutError at the deadline.

        Each read may take ``timeout`` at most, and none may end past the run's deadline.
        """
        running = self._reads.get(self._model)
        # The read's own event, not its thread's life: a thread lives on for a moment
        # after its read returned, and a run reading windows back to back (a reference
        # period) would take that moment for a hung read.
        if running is not None and not running[0].is_set():
            raise SourceTimeoutError(
                f"the source of model {self._model!r} has still not returned from a read "
                f"started {self._timer() - running[1]:.0f}s ago; no new read until it does"
            )
        outcome: list[Window | BaseException] = []
        done = threading.Event()
        started = self._timer()
        deadline = self._deadline
        if self._timeout is not None:
            deadline = min(deadline, started + self._timeout)
        bound = self._bound(deadline - started)

        def read() -> None:
            try:
                with bound:  # the jobs this read starts stop at its deadline (Spark's)
                    outcome.append(self._source.read_window(start, end))
            except RunCancelledError as exc:  # what the read was doing, stopped there
                error = self._late()
                error.__cause__ = exc
                outcome.append(error)
            except BaseException as exc:  # handed to the run, which classifies it
                outcome.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=read, name=f"read:{self._model}", daemon=True)
        self._reads[self._model] = (done, started)
        thread.start()
        while not done.wait(_READ_POLL_SECONDS):
            if self._stopping():
                raise RunCancelledError("run abandoned while reading: the daemon is stopping")
            if self._timer() >= deadline:
                raise self._late()
        [result] = outcome
        if isinstance(result, BaseException):
            raise result
        self.windows.append(result)
        return result

    def _late(self) -> SourceTimeoutError:
        return SourceTimeoutError(
            f"the source of model {self._model!r} did not deliver the window within "
            f"the run's deadline of {self._timeout:g}s (schedule.run_timeout)"
        )

    def _bound(self, seconds: float) -> AbstractContextManager[None]:
        """The source's deadline for a read that may take ``seconds`` (``source_deadline``:
        a spark source's jobs are cancelled there), or nothing when it may take forever."""
        if seconds == float("inf"):
            return nullcontext()
        why = (
            f"a read of its source passed its deadline of {self._timeout:g}s (schedule.run_timeout)"
        )
        return source_deadline(self._source, max(seconds, 0.0), self._model, why)

    def close(self) -> None:
        """The source belongs to the application, which closes it."""


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
        run_timeouts: Mapping[str, float] | None = None,
        timer: Callable[[], float] = time.monotonic,
        workers: RunWorkers | None = None,
        guard: Callable[[], str | None] | None = None,
    ) -> None:
        self._settings = settings
        # Why no run may start (the state directory was replaced under the process), if so.
        self._guard = guard or (lambda: None)
        self._lost_log = Throttle(LOST_LOG_SECONDS, timer)  # its refused runs' lines
        # where the middle of a run computes (daemon.run_isolation: process); None: here
        self._workers = workers
        self._engines = dict(engines or {})  # models without one compute in this process
        # each model's scaled window, kept between its runs (runs of a model never overlap)
        self._buffers: dict[str, ScaleBuffer] = {}
        self._sources = sources
        self._store = store
        self._history = history
        self._state = state
        self._live_problems: dict[str, str] = {}  # what refresh_live last logged, per model
        self._clock = clock
        self._package_version = package_version
        self._should_stop = should_stop
        self._on_result = tuple(on_result)
        self._run_timeouts = dict(run_timeouts or {})
        self._reads: dict[str, tuple[threading.Event, float]] = {}
        self._timer = timer  # the clock of deadlines (monotonic)
        # Model -> whether its latest run started is its first in this process and trains
        # the reference (``in_first_training``).
        self._first_trains: dict[str, bool] = {}

    def run_model(self, name: str, *, whole_second: bool = False) -> Result:
        """One run of one model; a failure is recorded and returned, never raised.

        ``whole_second``: the run's time is the clock's to the nearest second, as the
        scheduler's runs fall on whole seconds: a backtest replays the same times (a
        seasonal model's phase weights follow a run's time to the microsecond).
        """
        m = self._settings.model(name)
        t0 = time.perf_counter()
        now = float(round(self._clock.now())) if whole_second else self._clock.now()
        if (lost := self._guard()) is not None:  # before training a reference for nothing
            return self._finish(self._refused(name, lost, now))
        timeout = self._run_timeouts.get(name)
        # A first run trains the reference: slower by design, and abandoning it would
        # leave the model without one for ever. Only its reads are bounded then.
        trained = self.has_live(name)
        bounded = timeout is not None and trained
        self._first_trains[name] = name not in self._first_trains and not trained
        deadline = self._timer() + timeout if bounded and timeout is not None else float("inf")
        # Always guarded: even without a deadline, a stop must not wait for a hung read.
        source = _GuardedSource(
            name,
            self._sources[name],
            deadline,
            timeout,
            self._should_stop,
            self._reads,
            self._timer,
        )
        engine = self._engines.get(name)
        # An engine's job that outlives the deadline is stopped there, not at its end.
        bound: AbstractContextManager[None] = nullcontext()
        if bounded and timeout is not None:
            if engine is not None:
                bound = engine.deadline(timeout, name)
            else:  # the source's rows are collected here: a spark source's jobs
                why = f"the run passed its deadline of {timeout:g}s (schedule.run_timeout)"
                bound = source_deadline(self._sources[name], timeout, name, why)
        try:
            with bound:
                evaluation, live = evaluate(
                    m,
                    source,
                    self._store,
                    self._history,
                    now,
                    package_version=self._package_version,
                    working_memory_mib=self._settings.daemon.working_memory_mib,
                    should_stop=lambda: self._should_stop() or self._timer() >= deadline,
                    engine=engine,
                    n_threads=self._settings.daemon.threads_per_run,
                    buffer=self._buffers.setdefault(name, ScaleBuffer()),
                    assess_with=self._assess_with(name, deadline),
                )
        except RunCancelledError as exc:
            if not self._should_stop():  # the deadline, not a stop, ended it
                late = RunTimeoutError(
                    f"run abandoned after {time.perf_counter() - t0:.1f}s, past its deadline "
                    f"of {timeout:g}s (schedule.run_timeout); nothing was stored"
                )
                return self._finish(self._failed(name, late, now, time.perf_counter() - t0))
            log.info("model=%s %s", name, exc)
            return RunFailure(name, "internal", str(exc), now)
        except Exception as exc:
            exc = self._diagnose(name, exc, source.windows)
            return self._finish(self._failed(name, exc, now, time.perf_counter() - t0))
        duration = time.perf_counter() - t0
        self._state.record_success(evaluation, live, duration=duration, at=self._clock.now())
        log.info("model=%s %s (%.2fs)", name, summary(evaluation), duration)
        self._log_approval(evaluation)
        return self._finish(evaluation)

    def _log_approval(self, evaluation: Evaluation) -> None:
        """The command that approves the candidate a run left pending, if it left one."""
        if awaiting_approval(evaluation):
            d = self._settings.daemon
            command = approve_command(
                evaluation.model, evaluation.candidate_version, d.state_dir, self._settings.path
            )
            log.info("model=%s approve with: %s", evaluation.model, command)

    def _assess_with(self, name: str, deadline: float) -> Assess:
        """In a worker process when the daemon has them, unless an engine runs the model."""
        if self._workers is None or name in self._engines:
            return assess
        return functools.partial(self._workers.assess, seconds_left=deadline - self._timer())

    def start_workers(self) -> None:
        """Start the worker processes now rather than at the first run that needs one."""
        if self._workers is not None:
            self._workers.start()

    def close(self) -> None:
        """Stop the worker processes (a run still in one is abandoned and stores nothing)."""
        if self._workers is not None:
            self._workers.close()

    def in_first_training(self, name: str) -> bool:
        """Whether the model's latest run started in this process is its first, and it
        trained the reference (no live version when it started): the runs it holds up are
        skipped by design. Still true once it has ended, until the next run starts: the
        scheduler reports a skip at the end of the run that caused it (told from whether
        a live version exists then, the report came 10 ms after the new version was
        stored and read as still_running; helper-89)."""
        return self._first_trains.get(name, False)

    def has_live(self, name: str) -> bool:
        """Whether ``name`` has a live model (a broken pointer counts: the run fails on it)."""
        try:
            return self._store.live_version(name) is not None
        except Exception:
            return True

    def _diagnose(self, name: str, exc: Exception, windows: list[Window]) -> Exception:
        """A clearer error for a failure that finite but huge values caused.

        Values near 1e308 are finite, so they pass validation, but their squared
        distances overflow; the numeric code then fails on an infinity it did not expect
        (``internal``, ``training``). Only those failures are looked at again.
        """
        if classify_failure(exc) not in ("internal", "training"):
            return exc
        scaler = self._live_scaler(name)
        units = "the model's scaled units" if scaler is not None else "a new reference's scaling"
        for window in windows:
            scale = None if scaler is None else functools.partial(transform, scaler)
            message = overflow_message(window.X, window.features, units, scale)
            if message is not None:
                where = f"model {name!r}, window {window.label or window.start}"
                return InvalidValuesError(f"{where}: {message}")
        return exc

    def _live_scaler(self, name: str) -> Scaler | None:
        try:
            version = self._store.live_version(name)
            return None if version is None else self._store.load(name, version).scaler
        except Exception:  # no live model to judge by: raw units then
            return None

    def _finish(self, result: Result) -> Result:
        for callback in self._on_result:
            callback(result)
        return result

    def _refused(self, name: str, lost: str, now: float) -> RunFailure:
        """A run that the guard refused (``lost``: why), failed as ``store``, its line
        throttled: the first says what to do, then one line a LOST_LOG_SECONDS counts the
        runs failed since, of every model; each run's own line is at DEBUG."""
        said = self._lost_log(lost)
        if said is not None:
            count, last = said
            if last is None:
                log.error(
                    "%s; every run of every model fails (store) until then: restore the state "
                    "directory if it is still wanted, then restart the daemon",
                    lost,
                )
            else:
                log.error("still: %s: %d run(s) failed %s", lost, count, in_the_last(last))
        return self._failed(name, StoreError(lost), now, 0.0, level=logging.DEBUG)

    def _failed(
        self, name: str, exc: Exception, now: float, duration: float, *, level: int = logging.ERROR
    ) -> RunFailure:
        reason = classify_failure(exc)
        ready_at = exc.ready_at if isinstance(exc, AwaitingReferenceError) else None
        self._state.record_failure(
            name, reason, duration=duration, at=self._clock.now(), ready_at=ready_at
        )
        message = log_run_failure(log, name, reason, exc, level=level)
        # The window the run read, as a backtest's failures carry it (`history` shows it).
        start = now - self._settings.model(name).window
        label = f"[{format_time(start)}, {format_time(now)})"
        failure = RunFailure(
            name,
            reason,
            message,
            now,
            window_label=label,
            duration_seconds=duration,
            ready_at=ready_at,
        )
        try:
            self._history.append_failure(failure)
        except Exception as hexc:
            log.error(
                "model=%s cannot record the failure in history: %s", name, redact_text(str(hexc))
            )
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
                # Logged when it starts or changes, not every refresh (1,800 lines an hour).
                if self._live_problems.get(m.name) != (text := str(exc)):
                    log.warning("model=%s cannot read the live snapshot: %s", m.name, text)
                self._live_problems[m.name] = text
            else:
                if self._live_problems.pop(m.name, None) is not None:
                    log.info("model=%s the live snapshot reads again", m.name)


def awaiting_approval(evaluation: Evaluation) -> bool:
    """Whether the run left a candidate pending (stored, not promoted)."""
    return evaluation.candidate_version is not None and not evaluation.promoted


def store_options(state_dir: Path, config: Path | None = None) -> str:
    """The options of a printed ``snapshots`` command that open the store as the daemon
    does: with the configuration file when there is one, for its key (an encrypted or
    signed store cannot be read from the state directory alone). Paths are quoted for
    the shell, so that a printed command runs as pasted ('sd with space')."""
    where = f"--state-dir {shlex.quote(str(state_dir))}"
    return where if config is None else f"--config {shlex.quote(str(config))} {where}"


def approve_command(
    model: str, version: int | None, state_dir: Path, config: Path | None = None
) -> str:
    """The command that approves a pending candidate, runnable as printed."""
    return f"kmeans-monitor snapshots approve {model} {version} {store_options(state_dir, config)}"


def summary(evaluation: Evaluation) -> str:
    """The run in one line: window, rows, version, the catalogue's progress SLIs, decision."""
    fields = " ".join(f"{p.name}={evaluation.slis[p.sli]:{p.fmt}}" for p in S.PROGRESS if p.name)
    return (
        f"window=[{_clock(evaluation.window_start)}, {_clock(evaluation.window_end)}) "
        f"rows={evaluation.n_rows} v{evaluation.live_version} {fields} -> {evaluation.decision}"
    )


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def log_began_late(events: Sequence[StoreEvent], has_versions: bool) -> bool:
    """Whether a model's approval log began after its first version: a store an older
    kmeans-monitor wrote, upgraded, whose earlier approvals, rejections and rollbacks are
    not in it (no event, or the first one found a version live already)."""
    return has_versions and (not events or events[0].from_version is not None)


def before_the_log(model: str) -> str:
    """What ``snapshots log`` and the model page say of a log that began late."""
    return (
        "moves before the log began (made by a kmeans-monitor that did not record them) "
        f"are not in it: the runs that made a version live are in `kmeans-monitor history "
        f"{model}`"
    )


def event_summary(event: StoreEvent) -> dict[str, Any]:
    """JSON-friendly description of a store event (``snapshots log --json``, ``snapshots
    show``, the model page and its API)."""
    at_utc = datetime.fromtimestamp(event.at, tz=UTC).isoformat().replace("+00:00", "Z")
    return {
        "at": event.at,
        "at_utc": at_utc,
        "action": event.action,
        "actor": event.actor,
        "version": event.version,
        "from_version": event.from_version,
        "to_version": event.to_version,
        "reason": event.reason,
    }
