"""Runs measured in worker processes (``daemon.run_isolation: process``).

A run's numeric middle (score the live model, train the candidate, compare, decide,
retrain: ``pipeline.assess``) is pure, so it can run in another process: the daemon
reads the window and commits the result, a worker computes in between. Two things
follow that threads cannot give (docs/decisions.md): the runs' Python no longer holds
the daemon's GIL while /metrics and the label API answer, and the workers run at a
lower CPU priority (nice +``RUN_NICE``) than the process that serves, so on a busy
machine a scrape waits for neither. A run past its deadline, or in progress at a stop,
is ended by killing its worker (SIGKILL: it holds nothing to save, and it ignores the
SIGTERM and SIGINT a process or control group receives, which are the daemon's to
handle); a new one starts for the next run.

The workers start with forkserver (a fork of a clean process, not of the threaded
daemon), compile or load the kernels and then say they are ready, and exit when the
daemon's end of their pipe closes, so a daemon killed with -9 leaves none behind. A run
that finds its worker still starting (the daemon's start, a replacement for a worker
that was killed) is computed in the daemon's thread instead: at nice +10 on a busy
machine a worker's start-up takes seconds, and no run should wait for it.

A window of SHARED_MIN_BYTES or more reaches its worker as a file in shared memory
(/dev/shm), which the worker maps, instead of through the pipe: pickled, a 1M x 32
float32 window is copied four times and took a quarter of a second more per run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from types import MappingProxyType
from typing import Any

import numpy as np

from monitor.config import ModelSettings
from monitor.errors import RunCancelledError
from monitor.logs import setup_logging
from monitor.pipeline import Assessment, RunContext, ScaleBuffer, assess
from monitor.pipeline.phases import Phases
from monitor.records import Pending, Snapshot, Window

__all__ = ["RUN_NICE", "RunWorkers"]

log = logging.getLogger(__name__)

RUN_NICE = 10  # added to a worker's nice value: serving comes first on a busy machine
_POLL_SECONDS = 0.05  # how often a waiting run looks at its deadline and the stop flag
_EXIT_PATIENCE = 2.0  # seconds a worker whose pipe broke gets to report its exit code
_READY = "ready"  # what a worker sends once its kernels are loaded, before any task
SHARED_MIN_BYTES = 1 << 20  # windows from this size go to a worker through SHARED_DIR
SHARED_DIR = "/dev/shm"  # memory, not disk: a tmpfs on Linux
_SHARED_PREFIX = "kmeans-monitor-rows-"


def _mapping_proxy(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


def _reduce_mapping_proxy(proxy: MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return _mapping_proxy, (dict(proxy),)


# Settings and records keep read-only mappings; the pipe to a worker carries them as such.
ForkingPickler.register(MappingProxyType, _reduce_mapping_proxy)


# What a measurement sent back carries in place of the window the daemon already holds.
_NO_WINDOW = Window("", 0.0, 0.0, (), np.empty((0, 0)))


@dataclass(frozen=True)
class _Rows:
    """A window's rows in a file in shared memory, for the worker to map."""

    path: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class _Task:
    model: ModelSettings
    window: Window  # its rows empty when they are in ``rows``
    live: Snapshot
    pending: Pending | None
    ctx: RunContext  # without a buffer: each worker keeps its own per model
    seconds_left: float  # until the run's deadline; inf: none
    rows: _Rows | None = None


def _share(X: np.ndarray) -> _Rows | None:
    """``X`` written to a file in SHARED_DIR; None for a small window, or where the file
    cannot be written (no such directory, or full): the pipe carries the rows then."""
    if X.nbytes < SHARED_MIN_BYTES or not os.path.isdir(SHARED_DIR):
        return None
    rows = np.ascontiguousarray(X)
    path = ""
    try:  # mode 0600: the rows are the daemon's user's alone, as in its memory
        fd, path = tempfile.mkstemp(prefix=f"{_SHARED_PREFIX}{os.getpid()}-", dir=SHARED_DIR)
        with os.fdopen(fd, "wb") as f:
            rows.tofile(f)
    except OSError as exc:
        if path:
            _unlink(path)
        log.warning("cannot write a window to %s (%s): it goes through the pipe", SHARED_DIR, exc)
        return None
    return _Rows(path, rows.dtype.str, rows.shape)


def _mapped(rows: _Rows) -> np.ndarray:
    """The rows of ``rows``, mapped copy-on-write (a run that writes to its window writes
    to its own pages); the file is removed at once, the mapping keeps the memory."""
    X = np.asarray(np.memmap(rows.path, dtype=np.dtype(rows.dtype), mode="c", shape=rows.shape))
    _unlink(rows.path)
    return X


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _sweep_shared() -> None:
    """Remove the shared windows of daemons that are gone (killed mid-run)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(SHARED_DIR):
            pid = name[len(_SHARED_PREFIX) :].split("-", 1)[0]
            if name.startswith(_SHARED_PREFIX) and pid.isdigit() and not _alive(int(pid)):
                _unlink(os.path.join(SHARED_DIR, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@dataclass(frozen=True)
class _Done:
    assessment: Assessment
    seconds: dict[str, float]  # the worker's phases


@dataclass(frozen=True)
class _Failed:
    error: BaseException
    trace: str  # the worker's traceback, for a failure classed internal


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives a pickle round trip, else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _without_rows(found: Assessment) -> Assessment:
    """The assessment to send back: the rows stay here (the daemon has the window, and
    the commit only counts them), so a large window crosses the pipe once."""
    m = found.measurement
    assert isinstance(m.X, np.ndarray)  # rows stay on an engine only with one, never here
    return found._replace(measurement=replace(m, window=_NO_WINDOW, X=m.X[:0], live=None))


def _past(deadline: float) -> bool:
    return time.monotonic() >= deadline


def _serve(conn: Connection, nice: int, blas_threads: int, log_level: str) -> None:
    """A worker's life: lower its priority, compile the kernels, then assess each task."""
    # A stop is the daemon's to handle, even when the signal reaches the whole process
    # group (Ctrl-C) or control group (systemd): it ends the run and then its worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    setup_logging(log_level)
    with contextlib.suppress(OSError):  # not allowed: the worker runs at the daemon's priority
        os.nice(nice)
    if blas_threads > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=blas_threads)
    from monitor.pipeline import warm_kernels

    warm_kernels()
    try:
        conn.send(_READY)
    except (BrokenPipeError, OSError):
        return
    buffers: dict[str, ScaleBuffer] = {}
    while True:
        try:
            task: _Task = conn.recv()
        except (EOFError, OSError):  # the daemon has gone
            return
        try:  # the reply is dropped once sent, and with it a mapped window
            conn.send(_answer(task, buffers.setdefault(task.model.name, ScaleBuffer())))
        except (BrokenPipeError, OSError):
            return


def _answer(task: _Task, buffer: ScaleBuffer) -> _Done | _Failed:
    """One task assessed: what goes back to the daemon."""
    phases = Phases(functools.partial(_past, time.monotonic() + task.seconds_left))
    try:
        window = task.window
        if task.rows is not None:
            window = replace(window, X=_mapped(task.rows))
        found = assess(
            window, task.live, task.model, task.pending, phases, replace(task.ctx, buffer=buffer)
        )
        return _Done(_without_rows(found), phases.seconds)
    except Exception as exc:
        return _Failed(_portable(exc), "".join(traceback.format_exception(exc)))


class _Worker:
    """One worker process and the daemon's end of its pipe."""

    def __init__(self, nice: int, blas_threads: int) -> None:
        context = multiprocessing.get_context("forkserver")
        self.conn, child = context.Pipe()
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        self.process = context.Process(
            target=_serve,
            args=(child, nice, blas_threads, level),
            name="kmeans-monitor-run",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.ready = False

    def poll_ready(self, timeout: float = 0.0) -> bool:
        """Whether the worker has loaded its kernels (waiting at most ``timeout`` s)."""
        try:
            if not self.ready and self.conn.poll(max(0.0, timeout)):
                self.ready = self.conn.recv() == _READY
        except (EOFError, OSError):  # it died starting: the next run replaces it
            return False
        return self.ready

    def kill(self) -> None:
        """SIGKILL: a worker holds nothing that a stop must save (it ignores SIGTERM)."""
        self.conn.close()
        self.process.kill()
        self.process.join()


def _abandoned() -> RunCancelledError:
    """The error of a run given up in its worker, which is then stopped."""
    return RunCancelledError(
        "run abandoned in its worker process, which was stopped: "
        "the daemon is stopping or the run is past its deadline"
    )


def _ended(worker: _Worker) -> RuntimeError:
    """The error of a run whose worker process ended under it (killed, out of memory)."""
    worker.process.join(_EXIT_PATIENCE)
    return RuntimeError(
        f"the run's worker process ended (exit code {worker.process.exitcode}) before "
        f"answering; nothing was stored, and the next run starts a new one"
    )


class RunWorkers:
    """``size`` worker processes, one per run that may go side by side.

    ``assess`` has ``pipeline.assess``'s signature, so the pipeline calls it where it
    would call its own; the phases' stop check (the run's deadline, the daemon's stop)
    is watched while the worker computes. A worker that has not yet said it is ready
    leaves the run to the calling thread.
    """

    def __init__(self, size: int, *, nice: int = RUN_NICE, blas_threads: int = 1) -> None:
        self._nice = nice
        self._blas_threads = blas_threads
        self._lock = threading.Lock()
        self._idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        self._all: set[_Worker] = set()
        self._size = size
        for _ in range(size):
            self._idle.put(None)  # a slot whose worker starts when first needed
        _sweep_shared()

    def start(self) -> None:
        """Start every worker now (they compile while the daemon's first runs go)."""
        slots = [self._idle.get() for _ in range(self._size)]
        for slot in slots:
            self._idle.put(slot if slot is not None else self._spawn())

    def wait_ready(self, timeout: float) -> bool:
        """Start every worker and wait up to ``timeout`` s until each is ready."""
        self.start()
        deadline = time.monotonic() + timeout
        slots = [self._idle.get() for _ in range(self._size)]
        try:
            return all(w is not None and w.poll_ready(deadline - time.monotonic()) for w in slots)
        finally:
            for slot in slots:
                self._idle.put(slot)

    def _spawn(self) -> _Worker:
        worker = _Worker(self._nice, self._blas_threads)
        with self._lock:
            self._all.add(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def _checkout(self, wait: float = 0.0) -> _Worker | None:
        """An idle worker that is ready (waiting ``wait`` s at most for it), or None when
        the free slot's is still starting (a slot without one, or whose worker died,
        starts a new one)."""
        worker = self._idle.get()
        try:
            if worker is not None and not worker.process.is_alive():
                self._retire(worker)
                worker = None
            if worker is None:
                worker = self._spawn()
        except BaseException:
            self._idle.put(None)
            raise
        if worker.poll_ready(wait):
            return worker
        self._idle.put(worker)
        return None

    def _await(self, phases: Phases) -> _Worker:
        """A ready worker, waited for until the run's deadline or a stop."""
        while True:
            worker = self._checkout(wait=_POLL_SECONDS)
            if worker is not None:
                return worker
            if phases.stopping():
                raise _abandoned()

    def assess(
        self,
        window: Window,
        live: Snapshot,
        model: ModelSettings,
        pending: Pending | None,
        phases: Phases,
        ctx: RunContext,
        *,
        seconds_left: float = float("inf"),
    ) -> Assessment:
        """``pipeline.assess`` in a worker, which gives up ``seconds_left`` from now.

        A run without a deadline (a first run, which trains the reference) goes on here
        while its worker is still starting; one with a deadline waits for the worker: here,
        its computation could not be cut short (a restart's first run of a 1M-row model
        went 477 s past its 60 s deadline, its skipped runs unalerted; helper-86)."""
        worker = self._checkout()
        if worker is None and seconds_left != float("inf"):
            log.debug("model=%s waits for its worker process, still starting", model.name)
            worker = self._await(phases)
        if worker is None:
            log.debug("model=%s its worker process is still starting: run here", model.name)
            return assess(window, live, model, pending, phases, ctx)
        rows = _share(window.X) if isinstance(window.X, np.ndarray) else None
        sent = replace(window, X=window.X[:0]) if rows is not None else window
        try:
            task = _Task(model, sent, live, pending, replace(ctx, buffer=None), seconds_left, rows)
            try:
                worker.conn.send(task)
            except OSError:  # the worker ended before it had read the task
                raise _ended(worker) from None
            reply = self._wait(worker, phases)
        except BaseException:
            self._retire(worker)
            self._idle.put(None)
            raise
        finally:
            if rows is not None:  # the worker removes it once mapped, unless it died first
                _unlink(rows.path)
        self._idle.put(worker)
        if isinstance(reply, _Failed):
            if not isinstance(reply.error, RunCancelledError):
                reply.error.add_note(f"in the run's worker process:\n{reply.trace.rstrip()}")
            raise reply.error
        phases.add(reply.seconds)
        m = reply.assessment.measurement
        return reply.assessment._replace(measurement=replace(m, window=window, live=live))

    @staticmethod
    def _wait(worker: _Worker, phases: Phases) -> _Done | _Failed:
        """The worker's reply; a stop or a deadline abandons the run (also when the stop
        closed the worker's pipe under it), a worker that died fails it."""
        try:
            while not worker.conn.poll(_POLL_SECONDS):
                if phases.stopping():
                    raise _abandoned()
                if not worker.process.is_alive():
                    raise _ended(worker)
            reply: _Done | _Failed = worker.conn.recv()
        except (EOFError, OSError):
            raise (_abandoned() if phases.stopping() else _ended(worker)) from None
        return reply

    def pids(self) -> list[int]:
        """The process ids of the workers started and not yet stopped."""
        with self._lock:
            return sorted(w.process.pid for w in self._all if w.process.pid is not None)

    def close(self) -> None:
        """Stop every worker (a run still in one is abandoned; it stores nothing)."""
        with self._lock:
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.kill()
