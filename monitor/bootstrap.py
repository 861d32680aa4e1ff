"""The composition root: builds the application from settings, with overrides for tests."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import __version__, alerting
from monitor.checks import check_float
from monitor.config import ModelSettings, Settings, StoreSettings, load
from monitor.errors import ConfigError, InvalidInputError
from monitor.exporter import (
    ModelSpec,
    MonitorState,
    Registry,
    ServingSpec,
    ServingStats,
    make_registry,
)
from monitor.exporter.simulated import SimulatorCollector, simulated_registry
from monitor.http import HttpServer, Routes, WebConfig, load_web_config
from monitor.pipeline import diff_snapshots
from monitor.pipeline.replay import Replay, replay
from monitor.ports import Clock, History, SnapshotStore, TelemetrySource
from monitor.records import Evaluation, RunFailure
from monitor.render import RenderOptions
from monitor.render.rules import rules_by_alert
from monitor.runner import Runner, classify_failure
from monitor.scheduling import run_times, schedule_interval_seconds
from monitor.serving import Assigner, Catalog, ServingApi, Variants, core_assigner
from monitor.simulator import ServiceOptions, Simulator
from monitor.sources import SOURCES
from monitor.store import (
    DirectorySnapshotStore,
    RetentionPolicy,
    load_key,
    snapshot_summary,
    version_summary,
)
from monitor.store.history import SQLiteHistory
from monitor.store.memory import MemoryHistory, MemorySnapshotStore
from monitor.timestamps import format_time

__all__ = [
    "App",
    "Replay",
    "Serving",
    "ServingApp",
    "SimulatorServer",
    "SystemClock",
    "backtest",
    "build_app",
    "build_serving",
    "build_serving_app",
    "diff_snapshots",
    "load_settings",
    "open_store",
    "simulator_server",
    "snapshot_summary",
    "version_summary",
    "web_config",
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
    """The settings of a configuration file (or of ``raw``), every source kind known.

    What only the adapters can check is checked too: the web configuration file.
    """
    settings = load(path, sources=SOURCES, env=env, overrides=overrides, raw=raw)
    web_config(settings)
    return settings


def web_config(settings: Settings) -> WebConfig | None:
    """The HTTP endpoint's TLS and basic-auth configuration (ConfigError when invalid)."""
    path = settings.daemon.web_config_file
    return None if path is None else load_web_config(path)


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


def open_store(
    state_dir: Path,
    settings: StoreSettings | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> DirectorySnapshotStore:
    """The snapshot store under a state directory, with the configured key and retention."""
    s = settings or StoreSettings()
    key = load_key(
        key_file=s.key_file, key_env=s.key_env, environ=os.environ if environ is None else environ
    )
    retention = None
    if s.keep_versions is not None or s.keep_age is not None:
        retention = RetentionPolicy(versions=s.keep_versions, age=s.keep_age)
    return DirectorySnapshotStore(
        Path(state_dir) / "snapshots",
        key=key,
        encrypt=s.encrypt,
        require_signature=s.require_signature,
        retention=retention,
    )


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
class Serving:
    """The label API and what it reads: the served models and the API's metrics."""

    catalog: Catalog
    api: ServingApi
    stats: ServingStats


def build_serving(
    settings: Settings, store: SnapshotStore, *, assigner: Assigner | None = None
) -> Serving:
    """The label API over ``store`` for every configured model (nothing loaded yet:
    ``catalog.refresh()`` reads the store); ``assigner`` replaces the monitor's own."""
    stats = ServingStats(
        [
            ServingSpec(
                m.name,
                latency_seconds=m.serving.latency,
                latency_objective=m.serving.latency_objective,
                success_objective=m.serving.availability,
            )
            for m in settings.models
        ]
    )

    def loaded(name: str, variants: Variants) -> None:
        live, canary = variants.live, variants.canary
        stats.loaded(
            name,
            live=None if live is None else (live.version, live.k),
            canary=None if canary is None else (canary.version, canary.k),
            share=variants.share,
        )

    catalog = Catalog(
        {m.name: m.serving for m in settings.models},
        store,
        assigner or core_assigner(settings.daemon.working_memory_mib),
        on_change=loaded,
    )
    api = ServingApi(catalog, stats, expose_parameters=settings.serving.expose_parameters)
    return Serving(catalog, api, stats)


@dataclass
class ServingApp:
    """What `kmeans-monitor serve` runs: the label API over the store, and its metrics."""

    settings: Settings
    store: SnapshotStore
    serving: Serving
    registry: Registry

    def ready(self) -> tuple[bool, str]:
        """Ready once every model with a live version serves it."""
        return self.serving.catalog.ready()


def build_serving_app(settings: Settings, *, store: SnapshotStore | None = None) -> ServingApp:
    """The label API of ``settings`` with its models loaded from the store."""
    store = store or open_store(settings.daemon.state_dir, settings.store)
    serving = build_serving(settings, store)
    serving.catalog.refresh()
    registry = make_registry(None, serving=serving.stats, version=__version__)
    return ServingApp(settings=settings, store=store, serving=serving, registry=registry)


@dataclass
class App:
    """Everything a daemon or a one-off evaluation needs, wired together."""

    settings: Settings
    store: SnapshotStore
    history: History
    sources: dict[str, TelemetrySource]
    state: MonitorState
    registry: Registry  # what /metrics and the Pushgateway serve
    runner: Runner
    stopping: threading.Event  # set when the process is asked to stop
    serving: Serving | None = None  # the label API, when serving.enabled

    def ready(self) -> tuple[bool, str]:
        """Readiness: the store answers for every model."""
        try:
            for m in self.settings.models:
                self.store.live_version(m.name)
        except Exception as exc:
            return False, f"store not readable: {exc}"
        return True, "ready"

    def close(self) -> None:
        """Close the sources and the history."""
        for source in self.sources.values():
            try:
                source.close()
            except Exception as exc:
                log.warning("closing a source failed: %s", exc)
        self.history.close()


def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: SnapshotStore | None = None,
    history: History | None = None,
    sources: Mapping[str, TelemetrySource] | None = None,
    on_result: Sequence[Callable[[Evaluation | RunFailure], None]] = (),
) -> App:
    """Wire the application; every collaborator can be replaced (tests pass fakes)."""
    built = dict(sources) if sources is not None else _build_sources(settings)
    clock = clock or SystemClock()
    state_dir = settings.daemon.state_dir
    store = store or open_store(state_dir, settings.store)
    history = history or SQLiteHistory(Path(state_dir) / "history.sqlite")
    reconciled = history.reconcile(store)
    if reconciled:
        log.info("history: recorded %d stored version(s) a stop had left out", len(reconciled))
    now = datetime.fromtimestamp(clock.now(), UTC)
    state = MonitorState(
        [model_spec(m, now) for m in settings.models], started_at=clock.now(), version=__version__
    )
    stopping = threading.Event()
    serving = build_serving(settings, store) if settings.serving.enabled else None
    if serving is not None:
        # A run that promoted is served at once, not at the next poll of the pointers.
        on_result = (*on_result, lambda result: serving.catalog.refresh([result.model]))
    runner = Runner(
        settings,
        sources=built,
        store=store,
        history=history,
        state=state,
        clock=clock,
        package_version=__version__,
        should_stop=stopping.is_set,
        on_result=on_result,
    )
    runner.refresh_live()
    if serving is not None:
        serving.catalog.refresh()
    return App(
        settings=settings,
        store=store,
        history=history,
        sources=built,
        state=state,
        registry=make_registry(state, serving=None if serving is None else serving.stats),
        runner=runner,
        stopping=stopping,
        serving=serving,
    )


def backtest(
    settings: Settings,
    name: str,
    start: float,
    end: float,
    *,
    on_result: Callable[[int, int, Evaluation | RunFailure], None] | None = None,
) -> Replay:
    """Replay model ``name`` over ``[start, end)`` on in-memory stores.

    One run per scheduled time whose window fits in the range, starting from no model
    (the first run trains the reference as a new model's would); nothing is written to
    the state directory. ``on_result(i, n, result)`` follows progress. InvalidInputError
    for an unknown model or a range that holds no run.
    """
    try:
        m = settings.model(name)
    except KeyError as exc:
        raise InvalidInputError(str(exc.args[0])) from None
    if end <= start:
        raise InvalidInputError(
            f"backtest: --to ({format_time(end)}) must be after --from ({format_time(start)})"
        )
    times, after = run_times(m.interval, m.cron, start + m.window, end)
    if not times:
        raise InvalidInputError(
            f"backtest: no run of model {name!r} fits in [{format_time(start)}, "
            f"{format_time(end)}): each run reads a window of {m.window:g}s before it"
        )
    source = SOURCES[m.source.kind].build(m.name, m.features, m.source.options)
    # Retention by count only: snapshot ages are data times, not the wall clock's.
    keep = settings.store.keep_versions
    store = MemorySnapshotStore(retention=RetentionPolicy(versions=keep) if keep else None)
    durations = alerting.rule_durations(rules_by_alert(RenderOptions()))
    try:
        return replay(
            m,
            source,
            store,
            MemoryHistory(),
            times,
            next_time=after,
            durations=durations,
            classify=classify_failure,
            package_version=__version__,
            working_memory_mib=settings.daemon.working_memory_mib,
            on_result=None if on_result is None else lambda i, r: on_result(i, len(times), r),
        )
    finally:
        source.close()
