"""The composition root: builds the application from settings, with overrides for tests."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.config import MODEL_NAME, ModelSettings, Settings
from monitor.errors import ConfigError
from monitor.exporter import ModelSpec, MonitorState, Registry, make_registry
from monitor.ports import Clock, History, SnapshotStore, TelemetrySource
from monitor.records import Evaluation, RunFailure
from monitor.runner import Runner
from monitor.scheduling import schedule_interval_seconds
from monitor.sources import SOURCES
from monitor.store.history import SQLiteHistory
from monitor.store.snapshots import DirectorySnapshotStore

__all__ = ["App", "SystemClock", "build_app", "check", "check_raw", "open_store"]

log = logging.getLogger("monitor")


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()


def _try_build_source(
    label: str, kind_name: Any, raw: Mapping[str, Any], model: str, features: tuple[str, ...]
) -> tuple[TelemetrySource | None, list[str]]:
    """Build one model's source, or say what its own module finds wrong with the options.

    Building checks the options against the features and does no I/O.
    """
    kind = SOURCES.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        valid = ", ".join(sorted(SOURCES))
        return None, [f"{label}.source.kind: must be one of {{{valid}}}; got {kind_name!r}"]
    options, found = kind.parse_options(raw)
    problems = [f"{label}.{p}" for p in found]
    if options is None or found or not features:
        return None, problems
    try:
        return kind.build(model, features, options), problems
    except ConfigError as exc:
        return None, problems + [f"{label}.{p}" for p in exc.problems]


def _source_problems(
    label: str, kind_name: Any, raw: Mapping[str, Any], model: str, features: tuple[str, ...]
) -> list[str]:
    source, problems = _try_build_source(label, kind_name, raw, model, features)
    if source is not None:
        source.close()
    return problems


def check(settings: Settings) -> list[str]:
    """Problems that only the adapters can see (source options), for every model."""
    return [
        p
        for m in settings.models
        for p in _source_problems(f"models[{m.name}]", m.source_kind, m.source, m.name, m.features)
    ]


def check_raw(raw: Any) -> list[str]:
    """The same source checks on a configuration that did not parse as a whole.

    check-config then reports the source problems next to the other ones, instead of
    only after those are fixed. Models named like config.parse names them.
    """
    models = raw.get("models") if isinstance(raw, Mapping) else None
    problems: list[str] = []
    for i, m in enumerate(models if isinstance(models, list) else []):
        if not isinstance(m, Mapping) or not isinstance(m.get("source"), Mapping):
            continue
        source = m["source"]
        if "kind" not in source:
            continue  # config.parse reports the missing kind
        name = m.get("name")
        valid_name = isinstance(name, str) and MODEL_NAME.match(name) is not None
        label = f"models[{name}]" if valid_name else f"models[{i}]"
        features = m.get("features")
        feats = (
            tuple(features)
            if isinstance(features, list) and all(isinstance(f, str) for f in features)
            else ()
        )
        options = {k: v for k, v in source.items() if k != "kind"}
        problems += _source_problems(label, source["kind"], options, str(name), feats)
    return problems


def _build_sources(settings: Settings) -> dict[str, TelemetrySource]:
    """Every model's source; ConfigError with every problem of every model otherwise."""
    built: dict[str, TelemetrySource] = {}
    problems: list[str] = []
    for m in settings.models:
        label = f"models[{m.name}]"
        source, found = _try_build_source(label, m.source_kind, m.source, m.name, m.features)
        problems += found
        if source is not None:
            built[m.name] = source
    if problems:
        for source in built.values():
            source.close()
        raise ConfigError(problems)
    return built


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
    runner: Runner
    stopping: threading.Event  # set when the process is asked to stop

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
    store = store or open_store(state_dir)
    history = history or SQLiteHistory(Path(state_dir) / "history.sqlite")
    now = datetime.fromtimestamp(clock.now(), UTC)
    state = MonitorState(
        [model_spec(m, now) for m in settings.models], started_at=clock.now(), version=__version__
    )
    stopping = threading.Event()
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
    return App(
        settings=settings,
        store=store,
        history=history,
        sources=built,
        state=state,
        registry=make_registry(state),
        runner=runner,
        stopping=stopping,
    )
