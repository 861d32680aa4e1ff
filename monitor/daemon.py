"""Lifecycle: start the scheduler and the HTTP server, stop cleanly on SIGTERM/SIGINT.

``run_until_signal`` is the one place that handles signals: the daemon, the demo and
the simulator all stop through it.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Protocol

from monitor import views
from monitor.bootstrap import App, bind_error, web_config
from monitor.config import Settings, parse_listen
from monitor.core.kmeans import warm_up
from monitor.errors import InvalidInputError
from monitor.http import HttpServer, MetricsCache, Routes
from monitor.scheduling import Scheduler, schedule_gaps

__all__ = ["Daemon", "Service", "first_run_offsets", "run_until_signal"]

log = logging.getLogger("monitor")
# Skipped runs on a logger of their own, which the demo quiets (its first runs overrun).
skip_log = logging.getLogger("monitor.schedule")

# How often the daemon looks for a live pointer changed by `snapshots rollback`.
LIVE_REFRESH_SECONDS = 2.0
# First runs are spread over at most this many seconds (or the interval, if shorter).
STAGGER_SECONDS = 60.0
_MODEL_JOB = "model:"


class Daemon:
    """Runs every model on its schedule and serves /metrics until told to stop."""

    def __init__(self, app: App, *, listen: str | None = None) -> None:
        self.app = app
        self._stopping = app.stopping
        self._stopped = threading.Event()
        self.scheduler = Scheduler(app.settings.daemon.max_workers, on_skipped=self._skipped)
        host, port = parse_listen(listen or app.settings.daemon.listen)
        pages = views.ModelPages(
            app.state,
            app.history,
            app.store,
            state_dir=app.settings.daemon.state_dir,
            clock=app.clock.now,
        )
        routes = Routes(
            registry=app.registry,
            ready=self.ready,
            runbook_html=pages.runbook_html,
            models_json=pages.index,
            model_html=pages.model_html,
            model_json=pages.model,
            index_html=pages.index_html,
            # /metrics is encoded once per change of the state, not once per scrape.
            metrics=MetricsCache(app.registry, lambda: app.state.generation),
        )
        try:
            self.http = HttpServer(host, port, routes, web=web_config(app.settings))
        except OSError as exc:  # lost a race with another process since check-config
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise InvalidInputError(
                f"cannot listen on {where} (daemon.listen): {bind_error(exc, host, port)}"
            ) from None

    @property
    def url(self) -> str:
        host, port = self.http.address
        host = f"[{host}]" if ":" in host else host
        return f"{self.http.scheme}://{host}:{port}"

    def ready(self) -> tuple[bool, str]:
        if not self.scheduler.running:
            return False, "scheduler not running"
        return self.app.ready()

    def start(self) -> None:
        """Start serving and scheduling; first runs are staggered (``first_run_offsets``)."""
        self.http.start()
        # Load the compiled k-means kernels (compile them on a cold cache) beside the
        # first runs, rather than inside one of them; /healthz answers meanwhile.
        threading.Thread(target=warm_up, name="kernels", daemon=True).start()
        offsets = first_run_offsets(self.app.settings)
        for m in self.app.settings.models:
            grace = m.misfire_grace
            if grace is None and m.interval is not None:
                grace = m.interval / 2
            self.scheduler.add(
                _MODEL_JOB + m.name,
                functools.partial(self.app.runner.run_model, m.name),
                interval=m.interval,
                cron=m.cron,
                misfire_grace=grace,
                start_in=offsets[m.name],
            )
        self.scheduler.add(
            "refresh-live", self.app.runner.refresh_live, interval=LIVE_REFRESH_SECONDS
        )
        self.scheduler.start()
        log.info(
            "kmeans-monitor serving %d model(s); metrics at %s/metrics",
            len(self.app.settings.models),
            self.url,
        )

    def _skipped(self, job_id: str, reason: str, count: int) -> None:
        """Count scheduled runs of a model that did not start (the scheduler's report)."""
        if not job_id.startswith(_MODEL_JOB):
            return
        model = job_id[len(_MODEL_JOB) :]
        self.app.state.record_skipped(model, reason, count)
        skip_log.warning("model=%s %d scheduled run(s) did not start (%s)", model, count, reason)

    def stop(self) -> None:
        """Stop firing, give runs in progress ``daemon.shutdown_grace`` to end, close.

        Runs abandon at their next phase (a read at once); one still busy after the grace
        is left behind on its daemon thread: it has stored nothing, and every store write
        is atomic, so leaving is as safe as a kill.
        """
        if self._stopped.is_set():
            return
        self._stopping.set()
        grace = self.app.settings.daemon.shutdown_grace
        log.info("stopping: waiting up to %gs for runs in progress to end", grace)
        self.scheduler.shutdown(wait=False)
        idle = self.scheduler.wait_idle(grace)
        self.http.stop()
        if idle:
            self.app.close()
        else:
            # Closing the history under a run could fail it; the exit releases everything.
            log.warning(
                "stopping with %d run(s) still in progress after %gs (daemon.shutdown_grace); "
                "they are abandoned and store nothing",
                self.scheduler.runs_in_progress(),
                grace,
            )
        self._stopped.set()
        log.info("stopped")

    def request_stop(self) -> None:
        """Ask ``wait`` to return (safe from a signal handler)."""
        self._stopping.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested or ``timeout`` passes; True when stopping."""
        return self._stopping.wait(timeout)

    def serve_forever(self, duration: float | None = None) -> None:
        """Start, serve until SIGTERM or SIGINT (or ``duration`` seconds), stop."""
        run_until_signal(self, duration, stop_event=self._stopping)


def first_run_offsets(settings: Settings, now: datetime | None = None) -> dict[str, float]:
    """Seconds after start-up of each model's first run, spread so that they do not all
    start at the same instant: model i of n starts at i/n of its interval (at most
    ``STAGGER_SECONDS``). Interval schedules keep the offset, so equal intervals stay apart.
    """
    models = settings.models
    when = now or datetime.now(UTC)
    return {
        m.name: i / len(models) * min(schedule_gaps(m.interval, m.cron, when)[0], STAGGER_SECONDS)
        for i, m in enumerate(models)
    }


class Service(Protocol):
    """Something that starts, runs in background threads, and stops."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def run_until_signal(
    service: Service,
    duration: float | None = None,
    *,
    stop_event: threading.Event | None = None,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Start ``service``, wait for SIGTERM/SIGINT (or ``duration``), stop it, restore handlers.

    ``stop_event`` is set on a signal (a daemon passes its own, so that runs in progress
    see it); a KeyboardInterrupt raised between handlers counts as a signal too.
    """
    stop = stop_event or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        if on_started is not None:
            on_started()
        stop.wait(duration if duration and duration > 0 else None)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
