"""Lifecycle: start the scheduler and the HTTP server, stop cleanly on SIGTERM/SIGINT.

``run_until_signal`` is the one place that handles signals: the daemon, the demo, the
label server and the simulator all stop through it.
"""

from __future__ import annotations

import functools
import gc
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Protocol

from monitor import interrupts, views
from monitor.bootstrap import (
    App,
    Serving,
    ServingApp,
    bind_error,
    descriptor_warnings,
    misfire_grace,
    web_config,
    web_config_name,
)
from monitor.config import Settings, parse_listen
from monitor.errors import InvalidInputError
from monitor.exporter import CertificateCollector, ConnectionsCollector, MonitorRegistry
from monitor.http import (
    HttpServer,
    Limits,
    MetricsCache,
    Routes,
    Volatile,
    certificate_warnings,
)
from monitor.logs import Throttle, in_the_last
from monitor.pipeline import warm_kernels
from monitor.scheduling import Scheduler, schedule_gaps

__all__ = [
    "Daemon",
    "LabelServer",
    "Service",
    "daemon_routes",
    "first_run_offsets",
    "freeze_heap",
    "run_until_signal",
    "settle",
]

log = logging.getLogger("monitor")
# Skipped runs on a logger of their own, which the demo quiets (its first runs overrun).
skip_log = logging.getLogger("monitor.schedule")

# At most this long between a SIGTERM or SIGINT that another thread received and the stop.
SIGNAL_LATENCY_SECONDS = 0.5
# How often the daemon looks for a live pointer changed by `snapshots rollback`.
LIVE_REFRESH_SECONDS = 2.0
# The start-up heap is frozen once every model has run, or after this many seconds.
SETTLE_PATIENCE_SECONDS = 600.0
# First runs are spread over at most this many seconds (or the interval, if shorter).
STAGGER_SECONDS = 60.0
_MODEL_JOB = "model:"


def daemon_limits(settings: Settings, **overrides: int) -> Limits:
    """The server's limits with the label API's body size (and room for four such bodies)
    and its connection cap.

    With the runs in worker processes at a lower priority (``daemon.run_isolation:
    process``), the server's threads need no handicap of their own: nice 0.
    """
    size = settings.serving.max_body_bytes
    if settings.daemon.run_isolation == "process":
        overrides = {"nice": 0, **overrides}
    return Limits(
        max_body_bytes=size,
        body_budget_bytes=max(4 * size, 64 * 2**20),
        max_connections=settings.serving.max_connections,
        **overrides,
    )


class _Follower:
    """A thread that makes the served models follow the store's pointers.

    Its own thread rather than a scheduler job: jobs wait for a free worker behind the
    model runs, which can take minutes, and a rollback must reach the API in seconds.
    """

    def __init__(self, serving: Serving, interval: float) -> None:
        self._serving = serving
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="serving-refresh", daemon=True)

    def _follow(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._serving.catalog.refresh()  # logs the problems of the store itself
            except Exception:  # a bug: the next refresh tries again
                log.exception("serving: refresh failed")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def _listening(
    host: str,
    port: int,
    routes: Routes,
    settings: Settings,
    limits: Limits,
    option: str,
    now: float,
    registry: MonitorRegistry,
) -> HttpServer:
    """The HTTP server; a port in use (or a bad host) is an InvalidInputError. A TLS
    certificate out of its dates at ``now`` (or near their end) is logged as a warning;
    its end is exported in ``registry`` (read at every scrape: a reload changes it).

    check-config probes the address first; this is the race lost to another process since.
    """
    web = web_config(settings)
    name = web_config_name(settings)
    try:
        server = HttpServer(host, port, routes, web=web, limits=limits, web_config_name=name)
    except OSError as exc:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise InvalidInputError(
            f"cannot listen on {where} ({option}): {bind_error(exc, host, port)}"
        ) from None
    if web is not None and web.tls is not None:
        for warning in certificate_warnings(web.tls, now, name):
            log.warning("%s", warning)
    if (certificate := server.certificate) is not None:
        registry.process.register(CertificateCollector(lambda: certificate.not_after))
    registry.process.register(ConnectionsCollector(lambda: server.dropped_connections))
    return server


def daemon_routes(
    app: App,
    ready: Callable[[], tuple[bool, str]],
    *,
    cache: bool = True,
    url: Callable[[], str] | None = None,
) -> Routes:
    """What the daemon's HTTP server answers: metrics, probes, pages and the label API.

    With ``cache``, /metrics is encoded once per change of the state, not once per scrape;
    ``url``: the daemon's own address, which the runbook pages' commands name.
    """
    pages = views.ModelPages(
        app.state,
        app.history,
        app.store,
        state_dir=app.settings.daemon.state_dir,
        clock=app.clock.now,
        config=app.settings.path,
        options=views.page_options(app.settings.daemon.dashboard_url_pattern),
        url=url,
    )
    return Routes(
        registry=app.registry,
        ready=ready,
        runbook_html=pages.runbook_html,
        models_json=pages.index,
        model_html=pages.model_html,
        model_json=pages.model,
        index_html=pages.index_html,
        metrics=_metrics_cache(app) if cache else None,
        api=None if app.serving is None else app.serving.api,
    )


def _metrics_cache(app: App) -> MetricsCache:
    """The daemon's /metrics bytes: each part of its registry encoded again only when it
    changes (the process part: at most once a second)."""
    stats = None if app.serving is None else app.serving.stats
    serving = Volatile(
        app.registry.serving, (lambda: 0) if stats is None else (lambda: stats.changes)
    )
    return MetricsCache(
        app.registry.steady,
        lambda: app.state.generation,
        volatile=(serving, Volatile(app.registry.process)),
    )


#: A model's skipped runs are logged once in this many seconds at most (each reason),
#: the others counted into its next line: at a 1 s interval those lines outnumbered the
#: run lines (helper-93). kmeans_runs_skipped_total counts every one at once.
SKIP_LOG_SECONDS = 60.0


class SkipLog:
    """The log lines of skipped runs, one per model and reason a SKIP_LOG_SECONDS."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._throttle = Throttle(SKIP_LOG_SECONDS, clock)

    def __call__(self, model: str, reason: str, count: int) -> None:
        said = self._throttle((model, reason), count)
        if said is None:
            return
        count, last = said
        since = "" if last is None else f" {in_the_last(last)}"
        skip_log.warning(
            "model=%s %d scheduled run(s) did not start (%s)%s", model, count, reason, since
        )


class Daemon:
    """Runs every model on its schedule and serves /metrics until told to stop."""

    def __init__(self, app: App, *, listen: str | None = None) -> None:
        self.app = app
        self._stopping = app.stopping
        self._hurry = threading.Event()  # a second signal: stop without waiting for runs
        self._stopped = threading.Event()
        self.scheduler = Scheduler(
            app.settings.daemon.max_workers, on_skipped=self._skipped, first_run=self._first_run
        )
        self._skip_log = SkipLog()
        host, port = parse_listen(listen or app.settings.daemon.listen)
        routes = daemon_routes(app, self.ready, url=lambda: self.http.url)
        settings = app.settings
        limits = daemon_limits(settings)
        for warning in descriptor_warnings(settings):
            log.warning("%s", warning)
        now = app.clock.now()
        self.http = _listening(
            host, port, routes, settings, limits, "daemon.listen", now, app.registry
        )
        serving = app.serving
        self._follower = None if serving is None else _Follower(serving, settings.serving.refresh)

    @property
    def url(self) -> str:
        return self.http.url

    def ready(self) -> tuple[bool, str]:
        if not self.scheduler.running:
            return False, "scheduler not running"
        return self.app.ready()

    def start(self) -> None:
        """Start serving and scheduling; first runs are staggered (``first_run_offsets``)."""
        self.http.start()
        self.app.runner.start_workers()
        # Load the compiled k-means kernels (compile them on a cold cache) beside the
        # first runs, rather than inside one of them; /healthz answers meanwhile.
        models = [m.name for m in self.app.settings.models]
        threading.Thread(
            target=settle,
            args=(lambda: all(map(self.app.state.has_run, models)), self._stopping),
            name="kernels",
            daemon=True,
        ).start()
        offsets = first_run_offsets(self.app.settings)
        now = datetime.fromtimestamp(self.app.clock.now(), UTC)
        for m in self.app.settings.models:
            self.scheduler.add(
                _MODEL_JOB + m.name,
                functools.partial(self.app.runner.run_model, m.name, whole_second=True),
                interval=m.interval,
                cron=m.cron,
                misfire_grace=misfire_grace(m, now),
                start_in=offsets[m.name],
            )
        self.scheduler.add(
            "refresh-live", self.app.runner.refresh_live, interval=LIVE_REFRESH_SECONDS
        )
        self.scheduler.start()
        if self._follower is not None:
            self._follower.start()
        log.info(
            "kmeans-monitor serving %d model(s); metrics at %s/metrics",
            len(self.app.settings.models),
            self.url,
        )

    def _first_run(self, job_id: str) -> bool | None:
        """Whether a submitted run trains its model's reference (no live version yet), or
        None for a job that is no model's (the scheduler's ``first_run``)."""
        if not job_id.startswith(_MODEL_JOB):
            return None
        return not self.app.runner.has_live(job_id[len(_MODEL_JOB) :])

    def _skipped(self, job_id: str, reason: str, count: int) -> None:
        """Count scheduled runs of a model that did not start (the scheduler's report)."""
        if not job_id.startswith(_MODEL_JOB):
            return
        model = job_id[len(_MODEL_JOB) :]
        # A first run in this process that trains the reference; a restart's first run of
        # a model with a live version has a deadline like any other, and its skips alert
        # (eight minutes of them went unalerted behind such a run; helper-86).
        if reason == "still_running" and self.app.runner.in_first_training(model):
            reason = "first_run"
        self.app.state.record_skipped(model, reason, count)
        self._skip_log(model, reason, count)

    def stop(self) -> None:
        """Stop firing, give runs in progress ``daemon.shutdown_grace`` to end, close.

        Runs abandon at their next phase (a read at once); one still busy after the grace,
        or when ``hurry`` cuts the grace short, is left behind on its daemon thread: it
        has stored nothing, and every store write is atomic, so leaving is as safe as a
        kill (the command line then leaves without Python's finalization:
        ``interrupts.leave_if_abandoned``). The worker processes are stopped either way:
        they ignore SIGTERM, so the interpreter's exit, which joins them, would wait for
        ever for a worker whose pipe is still open.
        """
        if self._stopped.is_set():
            return
        self._stopping.set()
        grace = self.app.settings.daemon.shutdown_grace
        log.info(
            "stopping: waiting up to %gs for runs in progress to end (SIGTERM or SIGINT "
            "again: at once)",
            grace,
        )
        self.scheduler.shutdown(wait=False)
        idle = self._wait_for_runs(grace)
        if self._follower is not None:
            self._follower.stop()
        self.http.stop()
        if idle:
            self.app.close()
        else:
            # Closing the history under a run could fail it; the exit releases the rest.
            self.app.runner.close()
            why = (
                "on a second SIGTERM or SIGINT"
                if self._hurry.is_set()
                else f"after {grace:g}s (daemon.shutdown_grace)"
            )
            log.warning(
                "stopping with %d run(s) still in progress %s; they are abandoned and "
                "store nothing",
                self.scheduler.runs_in_progress(),
                why,
            )
            interrupts.abandon_threads()
        # The heap frozen at start-up goes back to the collector: whatever outlives the
        # daemon in this process (a test, an embedding program) is collected as usual.
        gc.unfreeze()
        self._stopped.set()
        log.info("stopped")

    def _wait_for_runs(self, grace: float) -> bool:
        """Wait until no run is in progress (True), ``grace`` seconds pass or ``hurry`` is
        called (False). In slices: a signal's handler, which calls ``hurry``, runs in this
        thread and cannot wake the wait itself."""
        end = time.monotonic() + grace
        while True:
            left = end - time.monotonic()
            if self.scheduler.wait_idle(max(0.0, min(left, SIGNAL_LATENCY_SECONDS))):
                return True
            if left <= 0 or self._hurry.is_set():
                return False

    def hurry(self) -> None:
        """Stop without waiting for the runs in progress (a second SIGTERM or SIGINT): a
        stop waiting out its grace leaves them at once, as at the grace's end."""
        self._hurry.set()

    def request_stop(self) -> None:
        """Ask ``wait`` to return (safe from a signal handler)."""
        self._stopping.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested or ``timeout`` passes; True when stopping."""
        return self._stopping.wait(timeout)

    def serve_forever(
        self, duration: float | None = None, on_started: Callable[[], None] | None = None
    ) -> None:
        """Start, serve until SIGTERM or SIGINT (or ``duration`` seconds), stop; a second
        signal stops without waiting for the runs in progress (``hurry``)."""
        run_until_signal(
            self, duration, stop_event=self._stopping, on_started=on_started, hurry=self.hurry
        )


def freeze_heap() -> int:
    """Move the objects alive now out of the garbage collector's reach; their number.

    What start-up and the first runs made (modules, the application, the compiled
    kernels, the reference models) lives as long as the process, yet every full
    collection walked it all: about 145,000 objects and 60 to 85 ms of CPU holding the
    GIL, in front of every scrape and run (docs/benchmarks.md, "Scrape load"). Frozen,
    they are still freed when no longer referenced; only reference cycles among them
    would stay, so the cycles start-up left are collected first.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def settle(
    first_runs_done: Callable[[], bool],
    stopping: threading.Event,
    patience: float = SETTLE_PATIENCE_SECONDS,
    warm: Callable[[], object] = warm_kernels,
) -> None:
    """Load the compiled kernels (``warm``), wait for every model's first run (the
    imports, reference models and caches they bring stay too), then freeze the heap."""
    warm()
    deadline = time.monotonic() + patience
    while not first_runs_done() and time.monotonic() < deadline:
        if stopping.wait(1.0):
            return
    if stopping.is_set():
        return  # a stop gives the heap back (Daemon.stop): do not take it again
    frozen = freeze_heap()
    log.debug("start-up heap frozen: %d objects out of the collector's reach", frozen)


def first_run_offsets(settings: Settings, now: datetime | None = None) -> dict[str, float]:
    """Seconds after start-up of each model's first run, spread so that they do not all
    start at the same instant: model i of n starts at i/n of its interval (at most
    ``STAGGER_SECONDS``), in whole seconds (runs fall on whole seconds, as a backtest's
    do). Interval schedules keep the offset, so equal intervals stay apart.
    """
    models = settings.models
    when = now or datetime.now(UTC)
    return {
        m.name: float(
            math.floor(
                i / len(models) * min(schedule_gaps(m.interval, m.cron, when)[0], STAGGER_SECONDS)
            )
        )
        for i, m in enumerate(models)
    }


class LabelServer:
    """`kmeans-monitor serve`: the label API and its /metrics, following the store's
    live and pending pointers, with no runs of its own. Made, it holds its address and
    has loaded every live and pending model; ``start`` serves them."""

    def __init__(self, app: ServingApp, *, listen: str | None = None) -> None:
        self.app = app
        settings = app.settings
        host, port = parse_listen(listen or settings.serving.listen)
        routes = Routes(
            registry=app.registry,
            ready=app.ready,
            # The serving series change with every answer: at most one encoding a second.
            metrics=MetricsCache(app.registry, lambda: 0),
            api=app.serving.api,
        )
        # nice 0: answering is this process's job, there are no runs to yield to.
        limits = daemon_limits(settings, nice=0)
        origin = "serving.listen" if listen is None else "--listen"
        self.http = _listening(
            host, port, routes, settings, limits, origin, time.time(), app.registry
        )
        # Loaded once the address is held: a port in use was said only after every
        # model had loaded (minutes for many large ones).
        app.serving.catalog.refresh()
        self._follower = _Follower(app.serving, settings.serving.refresh)
        self._stopped = False

    @property
    def url(self) -> str:
        return self.http.url

    def start(self) -> None:
        """Serve, and follow promotions, rollbacks and candidates."""
        self.http.start()
        self._follower.start()
        log.info("kmeans-monitor serving labels at %s/v1/models", self.url)

    def stop(self) -> None:
        """Stop following the store and serving, and say so as the daemon does; idempotent."""
        if self._stopped:
            return
        self._follower.stop()
        self.http.stop()
        self._stopped = True
        log.info("stopped")


class Service(Protocol):
    """Something that starts, runs in background threads, and stops."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _wait(stop: threading.Event, duration: float) -> None:
    """Wait until ``stop`` is set or ``duration`` seconds (inf: no end) have passed.

    The wait wakes every ``SIGNAL_LATENCY_SECONDS``: the kernel hands a signal to any
    thread of the process, and Python runs its handler in the main thread only when
    that thread runs; one left blocked in a wait that does not end sees it never (a
    SIGTERM early in `run` was lost so, and the daemon served on).
    """
    end = time.monotonic() + duration
    while not stop.is_set() and (left := end - time.monotonic()) > 0:
        stop.wait(min(left, SIGNAL_LATENCY_SECONDS))


def run_until_signal(
    service: Service,
    duration: float | None = None,
    *,
    stop_event: threading.Event | None = None,
    on_started: Callable[[], None] | None = None,
    hurry: Callable[[], None] | None = None,
) -> None:
    """Start ``service``, wait for SIGTERM/SIGINT (or ``duration``), stop it, restore handlers.

    SIGHUP is logged and ignored: there is no reload.

    ``stop_event`` is set on a signal (a daemon passes its own, so that runs in progress
    see it); a KeyboardInterrupt raised between handlers counts as a signal too. A
    signal once stopping (its stop is under way, or the duration ended) calls ``hurry``:
    a second Ctrl-C that waited out the daemon's grace all the same was no stop at all.
    """
    interrupts.raise_lost()  # a signal during the start-up that some code took
    stop = stop_event or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        if stop.is_set() and hurry is not None:
            hurry()
        stop.set()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        log.warning(
            "received SIGHUP: ignored (no reload: restart the daemon to read a changed "
            "configuration; SIGTERM or SIGINT stop it)"
        )

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    # SIGHUP's default ended the daemon at once, with no log line and no clean stop: sent
    # to reload out of habit, or by a terminal that closed.
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
    try:
        service.start()
        if on_started is not None:
            on_started()
        _wait(stop, duration if duration and duration > 0 else math.inf)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
