"""Lifecycle: start the scheduler and the HTTP server, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import functools
import logging
import signal
import threading
from types import FrameType

from monitor.bootstrap import App
from monitor.config import parse_listen
from monitor.http import HttpServer, Routes
from monitor.scheduling import Scheduler

__all__ = ["Daemon"]

log = logging.getLogger("monitor")

# How often the daemon looks for a live pointer changed by `snapshots rollback`.
LIVE_REFRESH_SECONDS = 2.0


class Daemon:
    """Runs every model on its schedule and serves /metrics until told to stop."""

    def __init__(self, app: App, *, listen: str | None = None) -> None:
        self.app = app
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        app.should_stop = self._stopping.is_set
        self.scheduler = Scheduler(app.settings.daemon.max_workers)
        host, port = parse_listen(listen or app.settings.daemon.listen)
        self.http = HttpServer(
            host,
            port,
            Routes(
                registry=app.registry,
                ready=self.ready,
                runbook_html=app.runbook_html,
                models_json=app.models_json,
                index_html=app.index_html,
            ),
        )

    @property
    def url(self) -> str:
        host, port = self.http.address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def ready(self) -> tuple[bool, str]:
        if not self.scheduler.running:
            return False, "scheduler not running"
        return self.app.ready()

    def start(self) -> None:
        """Start serving and scheduling; the first run of every model starts at once."""
        self.http.start()
        for m in self.app.settings.models:
            grace = m.misfire_grace
            if grace is None and m.interval is not None:
                grace = m.interval / 2
            self.scheduler.add(
                f"model:{m.name}",
                functools.partial(self.app.run_model, m.name),
                interval=m.interval,
                cron=m.cron,
                misfire_grace=grace,
            )
        self.scheduler.add("refresh-live", self.app.refresh_live, interval=LIVE_REFRESH_SECONDS)
        self.scheduler.start()
        log.info(
            "kmeans-monitor serving %d model(s); metrics at %s/metrics",
            len(self.app.settings.models),
            self.url,
        )

    def stop(self) -> None:
        """Stop firing, let runs in progress end at their next phase, close everything."""
        if self._stopped.is_set():
            return
        self._stopping.set()
        log.info("stopping: waiting for runs in progress to finish or abandon")
        self.scheduler.shutdown(wait=True)
        self.http.stop()
        self.app.close()
        self._stopped.set()
        log.info("stopped")

    def request_stop(self) -> None:
        """Ask ``wait`` to return (safe from a signal handler)."""
        self._stopping.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested or ``timeout`` passes; True when stopping."""
        return self._stopping.wait(timeout)

    def serve_forever(self) -> None:
        """Start, wait for SIGTERM or SIGINT, stop."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            self.wait()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        self.request_stop()
