"""The composition root: builds the application from settings, with overrides for tests."""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.checks import check_float
from monitor.config import ModelSettings, Settings, load
from monitor.errors import ConfigError, InvalidInputError, RunCancelledError
from monitor.exporter import ModelSpec, MonitorState, Registry, make_registry
from monitor.exporter.simulated import SimulatorCollector, simulated_registry
from monitor.http import HttpServer, Routes
from monitor.pipeline import classify_failure, evaluate
from monitor.ports import Clock, History, SnapshotStore, TelemetrySource
from monitor.records import Evaluation, RunFailure
from monitor.scheduling import schedule_interval_seconds
from monitor.simulator import ServiceOptions, Simulator
from monitor.sources import SOURCES
from monitor.store.history import SQLiteHistory
from monitor.store.snapshots import DirectorySnapshotStore

__all__ = [
    "App",
    "SimulatorServer",
    "SystemClock",
    "build_app",
    "load_settings",
    "open_store",
    "simulator_server",
]

log = logging.getLogger("monitor")


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()


def load_settings(
    path: Path | None,
    *,
    overrides: Mapping[str, Any] | None = None,
    raw: Any = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The settings of a configuration file (or of ``raw``), every source kind known."""
    return load(path, sources=SOURCES, env=env, overrides=overrides, raw=raw)


def _build_sources(settings: Settings) -> dict[str, TelemetrySource]:
    """Every model's source; ConfigError with every problem of every model otherwise.

    The settings were parsed with each kind's own checks, so building only fails for
    settings put together by hand.
    """
    built: dict[str, TelemetrySource] = {}
    problems: list[str] = []
    for m in settings.models:
        try:
            built[m.name] = SOURCES[m.source.kind].build(m.name, m.features, m.source.options)
        except (ConfigError, InvalidInputError) as exc:
            found = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            problems += [f"models[{m.name}].{p}" for p in found]
    if problems:
        for source in built.values():
            source.close()
        raise ConfigError(problems)
    return built


class SimulatorServer:
    """The simulated service: gauges refreshed in a background thread, served over HTTP."""

    def __init__(
        self,
        collector: SimulatorCollector,
        http: HttpServer,
        refresh: float,
        clock: Callable[[], float],
    ) -> None:
        self._collector = collector
        self._http = http
        self._refresh = refresh
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (the port the OS chose when 0 was asked for)."""
        host, port = self._http.address
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Compute the first snapshot, then serve and keep refreshing."""
        # Before serving, so that no scrape ever sees an empty exporter.
        self._collector.update(self._clock())
        self._http.start()
        self._thread = threading.Thread(
            target=self._collector.refresh_until,
            args=(self._stop, self._refresh, self._clock),
            name="simulator",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing and serving; idempotent."""
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._http.stop()
        self._thread.join(timeout=5)


def simulator_server(
    options: ServiceOptions,
    host: str,
    port: int,
    *,
    refresh: float = 1.0,
    clock: Callable[[], float] = time.time,
) -> SimulatorServer:
    """Wire a Simulator, its gauges and an HTTP server on ``host:port`` (0: any free port).

    InvalidInputError when ``refresh`` is not positive or the address cannot be listened on.
    """
    refresh = check_float(refresh, "refresh", low=0, low_inclusive=False, owner="simulator_server")
    collector = SimulatorCollector(
        Simulator(options.features, options.simulator), options.instances
    )
    routes = Routes(
        registry=simulated_registry(collector),
        ready=lambda: (True, "ready"),
        runbook_html=lambda name: None,
        models_json=lambda: [],
        index_html=lambda: _SIMULATOR_INDEX,
    )
    try:
        http = HttpServer(host, port, routes)
    except OSError as exc:
        raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return SimulatorServer(collector, http, refresh, clock)


_SIMULATOR_INDEX = (
    "<!doctype html><html><head><meta charset='utf-8'><title>simulated telemetry</title>"
    "</head><body><p>Simulated service telemetry: <a href='/metrics'>/metrics</a></p>"
    "</body></html>"
)


def open_store(state_dir: Path) -> DirectorySnapshotStore:
    """The snapshot store under a state directory."""
    return DirectorySnapshotStore(Path(state_dir) / "snapshots")


def model_spec(m: ModelSettings, now: datetime) -> ModelSpec:
    """The exporter's view of a configured model."""
    interval = schedule_interval_seconds(m.interval, m.cron, now)
    budget = m.slo.run_duration_budget or interval / 2
    return ModelSpec(
        name=m.name,
        features=m.features,
        interval_seconds=interval,
        run_duration_budget_seconds=budget,
        freshness_slo_seconds=m.slo.freshness,
        run_success_objective=m.slo.run_success,
    )


@dataclass
class App:
    """Everything a daemon or a one-off evaluation needs, wired together."""

    settings: Settings
    store: SnapshotStore
    history: History
    sources: dict[str, TelemetrySource]
    state: MonitorState
    registry: Registry  # what /metrics and the Pushgateway serve
    clock: Clock
    runbook_html: Callable[[str], str | None]
    should_stop: Callable[[], bool] = lambda: False
    on_result: list[Callable[[Evaluation | RunFailure], None]] = field(default_factory=list)

    def refresh_live(self) -> None:
        """Follow live pointers changed outside the daemon (a rollback from the CLI)."""
        for m in self.settings.models:
            try:
                version = self.store.live_version(m.name)
                if version is not None and version != self.state.live_version(m.name):
                    self.state.set_live(self.store.load(m.name, version), promoted=True)
                    log.info("model=%s live snapshot is now v%d", m.name, version)
            except Exception as exc:  # the next refresh tries again
                log.warning("model=%s cannot read the live snapshot: %s", m.name, exc)

    def run_model(self, name: str) -> Evaluation | RunFailure:
        """One run of one model; a failure is recorded and returned, never raised."""
        m = self.settings.model(name)
        t0 = time.perf_counter()
        now = self.clock.now()
        try:
            evaluation, live = evaluate(
                m,
                self.sources[name],
                self.store,
                self.history,
                now,
                package_version=__version__,
                working_memory_mib=self.settings.daemon.working_memory_mib,
                should_stop=self.should_stop,
            )
        except RunCancelledError as exc:
            log.info("model=%s %s", name, exc)
            result: Evaluation | RunFailure = RunFailure(name, "internal", str(exc), now)
            return result
        except Exception as exc:
            reason = classify_failure(exc)
            duration = time.perf_counter() - t0
            self.state.record_failure(name, reason, duration=duration, at=self.clock.now())
            if reason == "internal":
                log.exception("model=%s run failed (internal): %s", name, exc)
            else:
                log.error("model=%s run failed (%s): %s", name, reason, exc)
            failure = RunFailure(name, reason, str(exc), now)
            try:
                self.history.append_failure(failure)
            except Exception as hexc:
                log.error("model=%s cannot record the failure in history: %s", name, hexc)
            result = failure
        else:
            duration = time.perf_counter() - t0
            self.state.record_success(evaluation, live, duration=duration, at=self.clock.now())
            log.info(
                "model=%s window=[%s, %s) rows=%d v%d silhouette=%.3f psi_max=%.3f "
                "drift_max=%.3f outliers=%.3f -> %s (%.2fs)",
                name,
                _iso(evaluation.window_start),
                _iso(evaluation.window_end),
                evaluation.n_rows,
                evaluation.live_version,
                evaluation.slis["silhouette"],
                evaluation.slis["feature_psi_max"],
                evaluation.slis["centroid_drift_max"],
                evaluation.slis["outlier_ratio"],
                evaluation.decision,
                duration,
            )
            result = evaluation
        for callback in self.on_result:
            callback(result)
        return result

    def ready(self) -> tuple[bool, str]:
        """Readiness: the store answers for every model."""
        try:
            for m in self.settings.models:
                self.store.live_version(m.name)
        except Exception as exc:
            return False, f"store not readable: {exc}"
        return True, "ready"

    def models_json(self) -> list[dict[str, Any]]:
        """The latest evaluation of each model, JSON-friendly."""
        out = []
        for name in self.state.models():
            ev = self.state.latest(name)
            out.append(
                {
                    "model": name,
                    "live_version": self.state.live_version(name),
                    "latest": None
                    if ev is None
                    else {
                        "window_start": ev.window_start,
                        "window_end": ev.window_end,
                        "scored_version": ev.live_version,
                        "n_rows": ev.n_rows,
                        "decision": ev.decision,
                        "promoted": ev.promoted,
                        "slis": dict(ev.slis),
                        "feature_psi": dict(ev.feature_psi),
                        "thresholds": dict(ev.thresholds),
                    },
                }
            )
        return out

    def index_html(self) -> str:
        """A plain page that lists the models and links to everything else."""
        rows = []
        for item in self.models_json():
            latest = item["latest"]
            decision = html.escape(latest["decision"]) if latest else "no run yet"
            rows.append(
                f"<tr><td>{html.escape(item['model'])}</td><td>{item['live_version']}</td>"
                f"<td>{decision}</td></tr>"
            )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>kmeans-monitor</title>"
            "</head><body><h1>kmeans-monitor</h1><table border='1' cellpadding='4'>"
            "<tr><th>model</th><th>live version</th><th>latest decision</th></tr>"
            + "".join(rows)
            + "</table><p><a href='/metrics'>/metrics</a> · <a href='/api/models'>/api/models"
            "</a> · <a href='/healthz'>/healthz</a> · <a href='/readyz'>/readyz</a></p>"
            "</body></html>"
        )

    def close(self) -> None:
        for source in self.sources.values():
            try:
                source.close()
            except Exception as exc:
                log.warning("closing a source failed: %s", exc)
        self.history.close()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def _runbook_html(name: str) -> str | None:
    from monitor import render

    try:
        return render.runbook_html(name)
    except KeyError:
        return None


def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: SnapshotStore | None = None,
    history: History | None = None,
    sources: Mapping[str, TelemetrySource] | None = None,
) -> App:
    """Wire the application; every collaborator can be replaced (tests pass fakes)."""
    built = dict(sources) if sources is not None else _build_sources(settings)
    clock = clock or SystemClock()
    state_dir = settings.daemon.state_dir
    store = store or open_store(state_dir)
    history = history or SQLiteHistory(Path(state_dir) / "history.sqlite")
    now = datetime.fromtimestamp(clock.now(), UTC)
    state = MonitorState(
        [model_spec(m, now) for m in settings.models], started_at=clock.now(), version=__version__
    )
    app = App(
        settings=settings,
        store=store,
        history=history,
        sources=built,
        state=state,
        registry=make_registry(state),
        clock=clock,
        runbook_html=_runbook_html,
    )
    app.refresh_live()
    return app
