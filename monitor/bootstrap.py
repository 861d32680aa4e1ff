"""The composition root: builds the application from settings, with overrides for tests."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import math
import os
import resource
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor import __version__, alerting
from monitor.checks import Mismatch, Problem, brief_text, check_float, shown_path, some_names
from monitor.config import (
    KRange,
    ModelSettings,
    Settings,
    StoreSettings,
    load,
    named_by_origin,
    parse_listen,
)
from monitor.durations import MAX_SECONDS, format_duration, format_rough
from monitor.engines import spark_engine
from monitor.errors import (
    ConfigError,
    InvalidInputError,
    KeyMismatchError,
    SnapshotNotFoundError,
    StoreError,
    StoreWriteError,
    UnsignedError,
)
from monitor.explain import WindowSampler, explain
from monitor.exporter import (
    ModelSpec,
    MonitorRegistry,
    MonitorState,
    ServingSpec,
    ServingStats,
    make_registry,
)
from monitor.exporter.simulated import SimulatorCollector, simulated_registry
from monitor.filemodes import exposed_files
from monitor.http import HttpServer, Routes, WebConfig, certificate_warnings, load_web_config
from monitor.pipeline import diff_snapshots, train_reference
from monitor.pipeline.commit import version_floor
from monitor.pipeline.reference import check_ready, read_reference
from monitor.pipeline.replay import Replay, replay
from monitor.pipeline.train import trained_otherwise, training_differs
from monitor.ports import Clock, Engine, History, SnapshotStore, TelemetrySource
from monitor.records import (
    SEASON_PERIODS,
    Actor,
    Evaluation,
    RunFailure,
    Snapshot,
    VersionInfo,
    season_name,
)
from monitor.render import RenderOptions
from monitor.render.rules import rules_by_alert
from monitor.runner import Runner, approve_command, classify_failure, store_options
from monitor.scheduling import cron_problem, run_times, schedule_gaps, schedule_interval_seconds
from monitor.serving import Assigner, Catalog, ServingApi, Variants, core_assigner
from monitor.simulator import ServiceOptions, Simulator, parse_service_options
from monitor.sources import SOURCES
from monitor.sources.synthetic import events_from_first_score
from monitor.store import (
    DirectorySnapshotStore,
    RetentionPolicy,
    load_key,
    snapshot_summary,
    version_summary,
)
from monitor.store._fs import make_dirs, open_private
from monitor.store.history import VERSIONS_SCHEMA, SQLiteHistory, history_problem
from monitor.store.memory import MemoryHistory, MemorySnapshotStore
from monitor.store.overlay import OverlayHistory, OverlaySnapshotStore
from monitor.timestamps import ahead, format_time, same_clock, written_after
from monitor.workers import RunWorkers

if TYPE_CHECKING:  # the files module is imported when a table is read
    from monitor.sources.files import Table

__all__ = [
    "App",
    "Replay",
    "Retrained",
    "Serving",
    "ServingApp",
    "SimulatorServer",
    "SystemClock",
    "backtest",
    "build_app",
    "build_serving",
    "build_serving_app",
    "cannot_use_state_dir",
    "check_state_dir",
    "descriptor_warnings",
    "diff_snapshots",
    "events_from_first_score",
    "file_mode_warnings",
    "history_file_problem",
    "k_mismatches",
    "listen_problem",
    "load_settings",
    "misfire_grace",
    "open_dry_run",
    "open_history",
    "open_store",
    "read_table",
    "refuse_state_dir",
    "retrain",
    "retrain_command",
    "run_timeout",
    "simulator_options",
    "simulator_server",
    "snapshot_summary",
    "state_dir_problems",
    "unconfigured_state",
    "unencrypted_versions",
    "version_summary",
    "web_config",
    "web_config_name",
    "web_config_warnings",
]

log = logging.getLogger("monitor")

#: The run history's file under a state directory.
HISTORY_FILE = "history.sqlite"


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
    serve: bool = False,
    probe: bool = False,
) -> Settings:
    """The settings of a configuration file (or of ``raw``), every source kind known.

    What only the adapters can check is checked too, every problem in one ConfigError:
    crontab expressions (by the scheduler's own parser), each source's credential and
    certificate files, the web configuration file and, with ``serve`` (``run``,
    ``demo``, ``check-config``), that the listen address can be listened on, that no
    file stands where the state directory is to be, and that the store's key loads
    (from ``env``, the process's environment by default); with ``probe`` too
    (``check-config``), that the state directory can be made or written in by some
    user (``state_dir_problems``) and that pyspark imports for ``engine: spark``. What a
    source's options call for a warning of (``SourceKind.warnings``) is logged here, once
    per command.
    """
    settings = load(
        path, sources=SOURCES, env=env, overrides=overrides, raw=raw, check_cron=cron_problem
    )
    problems = _source_problems(settings)
    for m in settings.models:
        for warning in SOURCES[m.source.kind].warnings(m.name, m.source.options):
            log.warning("%s", warning)
    try:
        web_config(settings)
    except ConfigError as exc:
        problems += exc.problems
    if serve:
        # The daemon of this state directory listens on its address: checking the file
        # before restarting it (the runbooks' advice) must not fail for that.
        running = daemon_holding(Path(settings.daemon.state_dir))
        listen = listen_problem(settings.daemon.listen, in_use_by=running)
        if listen is not None:
            problems.append(named_by_origin(listen.config("daemon"), env, overrides))
        problems += state_dir_problems(settings.daemon.state_dir, settings.named, probe=probe)
    if serve and (key := _store_key_problem(settings, env)) is not None:
        problems.append(key.config("store"))
    stored = history_file_problem(settings.daemon.state_dir, settings.named) if serve else None
    if probe and stored is not None:  # check-config: every problem run would refuse
        problems.append(stored)
    if probe:
        problems += _engine_problems(settings)
    if problems:
        raise ConfigError(problems)
    if stored is not None:  # a damaged history or a full disk is no configuration error
        raise StoreError(stored)
    return settings


def _nearest_existing(directory: Path) -> Path:
    """The state directory, or the directory above it that exists (where it would be made).

    Symbolic links are followed first: a link to a directory not made yet (a dangling
    link) is made where it points, as ``make_dirs`` makes it.
    """
    directory = Path(os.path.realpath(directory))
    return next(p for p in (directory, *directory.parents) if p.exists())


#: The parts of a state directory a command may use: its snapshot store and its history.
STATE_PARTS = ("snapshots", "history")


def state_dir_problems(
    directory: Path | str,
    named: Callable[[str], str] = str,
    *,
    uses: Collection[str] = STATE_PARTS,
    probe: bool = False,
) -> list[str]:
    """Why no command could use the state directory ``directory``, as configuration
    problems: a file where it (or a directory above it) should be, a symbolic link loop,
    a ``snapshots`` that is not a directory, a history that is not a file (only the
    parts in ``uses`` are looked at), a directory this user may not look into.

    With ``probe`` (check-config), also a directory that no user could make or write in
    (under /proc, on a read-only file system), in the words `run` refuses it with
    (``claim_state_dir``); one that only this user may not write in is not a problem
    (``state_dir_unwritable``: the daemon may run as another user).

    ``named`` names each problem ("daemon.state_dir: ...") by the variable or option that
    gave the directory, when one did (``Settings.named``: KMEANS_MONITOR_STATE_DIR,
    --state-dir).
    """
    directory = Path(directory)
    try:
        problems = _state_dir_contents(directory, uses)
        if (state := _state_dir_problem(directory)) is not None:
            problems.insert(0, state.config("daemon"))
        elif (
            probe
            and (refused := _write_probe(directory)) is not None
            and refused.errno not in USER_ERRNOS  # those are state_dir_unwritable's
        ):
            why = cannot_use_state_dir(directory, refused)
            problems.insert(0, f"daemon.state_dir: {why}")
    except OSError as exc:  # a directory on the way this user may not search (EACCES)
        problems = [f"daemon.state_dir: {cannot_use_state_dir(directory, exc)}"]
    return [named(p) for p in problems]


#: Why a file cannot be made that depends on who makes it (permissions, a quota):
#: another user, the daemon's, may, so check-config warns of these rather than calling
#: the directory invalid (docs/decisions.md).
USER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EDQUOT})


def _write_probe(directory: Path) -> OSError | None:
    """Why `run` could not make its first file or directory for the state directory
    ``directory``, found by making a probe file (removed at once) in it, or in the
    directory above it that exists when it does not: the error, naming what `run`
    would have failed on (its lock file, or the first directory it would make). None
    when the probe was made, or when no directory stands there (``_state_dir_problem``)."""
    existing = _nearest_existing(directory)
    if not existing.is_dir():
        return None
    real = Path(os.path.realpath(directory))
    # make_dirs makes the missing directories from the top, at the link's target.
    first = next((p for p in (real, *real.parents) if p != existing and p.parent == existing), None)
    target = first or directory / DAEMON_LOCK
    try:
        with tempfile.TemporaryFile(dir=existing) as probe:
            # What run writes in its lock: an empty file is still made on a full disk.
            os.write(probe.fileno(), f"{os.getpid()}\n".encode())
            return None
    except OSError as exc:
        return OSError(exc.errno, exc.strerror or str(exc), str(target))


def check_state_dir(
    directory: Path | str,
    named: Callable[[str], str] = str,
    *,
    uses: Collection[str] = STATE_PARTS,
    make: bool = False,
    write: bool = False,
) -> None:
    """Refuse, as one line naming where the path came from (``named``, as
    ``state_dir_problems``), a state directory whose parts in ``uses`` a command cannot
    use: the problems of ``state_dir_problems`` (ConfigError, as `run` and `evaluate`
    say them), a history file that cannot be opened (StoreError); with ``make`` (a
    command that writes, as `run`), a directory that cannot be made; without it, one
    that does not hold them (StoreError: nothing is made); with ``write`` (a command that
    writes after slow work, as `snapshots retrain`), a part this user cannot write in
    now (read-only, permission, a full disk), found by a probe file removed at once.
    InvalidInputError for a directory this user may not use.
    """
    directory = Path(directory)
    refuse_state_dir(directory, named, uses=uses)
    origin = named("daemon.state_dir:").removesuffix(":")
    store, history = directory / "snapshots", directory / HISTORY_FILE
    try:
        if make:
            make_dirs(store if "snapshots" in uses else directory)
        elif "snapshots" in uses and not store.is_dir():
            raise StoreError(
                f"{origin}: no snapshot store at {brief_text(str(store))}{_absent(directory)}"
            )
        elif "history" in uses and not history.is_file():
            raise StoreError(
                f"{origin}: no history database at {brief_text(str(history))}{_absent(directory)}"
            )
        if write:
            _probe_writes(directory, uses)
    except StoreError:
        raise
    except OSError as exc:  # EACCES, EPERM, ENOENT (/proc/1/nope), EROFS...
        raise InvalidInputError(f"{origin}: {cannot_use_state_dir(directory, exc)}") from None


def _probe_writes(directory: Path, uses: Collection[str]) -> None:
    """Make (and remove) a probe file, a line written in it, where a command writes: the
    snapshot store, then the state directory (the history). OSError naming the place."""
    places = [directory / "snapshots"] if "snapshots" in uses else []
    for place in [*places, directory] if "history" in uses else places:
        try:
            with tempfile.TemporaryFile(dir=place) as probe:
                os.write(probe.fileno(), f"{os.getpid()}\n".encode())
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(place)) from None


def _absent(directory: Path) -> str:
    """Why a state directory is not there, when it is not: a dangling link says where
    it points (its target was deleted, or is on a volume not mounted)."""
    if os.path.exists(directory):
        return ""
    shown = brief_text(str(directory))
    if os.path.islink(directory):
        target = brief_text(os.readlink(directory))
        return f" ({shown} is a symbolic link to {target}, which does not exist)"
    return f" (there is no directory {shown})"


def cannot_use_state_dir(state_dir: Path | str, exc: OSError, path: Path | None = None) -> str:
    """Why the state directory cannot be used, from the error of the system call that
    failed on it or on ``path`` in it: ``cannot use the state directory D: WHY: 'PATH'``."""
    name = exc.filename if exc.filename is not None else path or state_dir
    shown = brief_text(str(state_dir))
    full = ": is its file system full? free space there" if exc.errno == errno.ENOSPC else ""
    why = exc.strerror or exc
    return f"cannot use the state directory {shown}: {why}: {shown_path(name)}{full}"


def _state_dir_problem(directory: Path) -> Problem | None:
    """A file where the state directory (or a directory above it) should be, or a
    symbolic link loop on the way to it, if there is one."""
    # exists() is False on a loop: it passed, and run stopped on "Too many levels of
    # symbolic links" when it made its lock file.
    looped = [p for p in (directory, *directory.parents) if _loops(p)]
    if looped:
        why = f"{looped[-1]} is a symbolic link loop"
    else:
        path = _nearest_existing(directory)
        if path.is_dir():
            return None
        why = f"{path} is a file"
    expected = f"a directory, or a path where one can be made ({why})"
    return Problem("state_dir", expected, str(directory))


def _loops(path: Path) -> bool:
    """Whether following ``path`` runs into a symbolic link loop."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _state_dir_contents(directory: Path, uses: Collection[str] = STATE_PARTS) -> list[str]:
    """What in the state directory would stop opening its store and history (those of
    them in ``uses``): its ``snapshots`` that is not a directory, its history that is
    not a file."""
    found = []
    store = directory / "snapshots"
    if "snapshots" in uses and store.exists() and not store.is_dir():
        found.append(f"daemon.state_dir: {shown_path(store)} is not a directory")
    if "history" not in uses:
        return found
    if (directory / HISTORY_FILE).exists() and not (directory / HISTORY_FILE).is_file():
        found.append(f"daemon.state_dir: {shown_path(directory / HISTORY_FILE)} is not a file")
    return found


def history_file_problem(
    directory: Path | str,
    named: Callable[[str], str] = str,
    *,
    uses: Collection[str] = STATE_PARTS,
) -> str | None:
    """Why the history file of the state directory ``directory`` cannot be opened (not a
    database, damaged, on a full or failing disk, another program's, of a newer schema),
    named as ``state_dir_problems`` names its problems; None when it can, is not there,
    or is not in ``uses``. A problem of what is stored, not of the configuration: the
    commands raise it as a StoreError, and check-config lists it with the others."""
    history = Path(directory) / HISTORY_FILE
    try:
        if "history" not in uses or not (history.is_file() or history.is_symlink()):
            return None
        problem = history_problem(history)
    except OSError:  # a directory this user may not search: state_dir_problems says so
        return None
    return None if problem is None else named(f"daemon.state_dir: {problem}")


def refuse_state_dir(
    directory: Path | str,
    named: Callable[[str], str] = str,
    *,
    uses: Collection[str] = STATE_PARTS,
) -> None:
    """The problems of ``state_dir_problems`` as a ConfigError, then the history file's
    (``history_file_problem``) as a StoreError; nothing is made, nothing is required."""
    if problems := state_dir_problems(directory, named, uses=uses):
        raise ConfigError(problems)
    if (stored := history_file_problem(directory, named, uses=uses)) is not None:
        raise StoreError(stored)


def _store_key_problem(settings: Settings, env: Mapping[str, str] | None) -> Problem | None:
    """Why the store's key does not load, as opening the store would find, if it does not."""
    s = settings.store
    field, value = ("key_file", str(s.key_file)) if s.key_file else ("key_env", s.key_env)
    try:
        load_key(key_file=s.key_file, key_env=s.key_env, environ=os.environ if env is None else env)
    except Mismatch as exc:  # the key itself, too short: what it must be, about the key
        return Problem(field, exc.problem.expected, exc.problem.got)
    except (StoreError, InvalidInputError) as exc:
        return Problem(field, f"a key the store can load ({exc})", value)
    return None


def read_table(
    path: Path,
    features: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Table:
    """The columns and rows of a data file (CSV, Parquet, NPY), as the files source reads;
    ``progress`` hears the bytes of a CSV file read so far and its size."""
    from monitor.sources.files import read_table as read

    return read(path, features, progress)


def web_config(settings: Settings) -> WebConfig | None:
    """The HTTP endpoint's TLS and basic-auth configuration (ConfigError when invalid)."""
    path = settings.daemon.web_config_file
    return None if path is None else load_web_config(path, web_config_name(settings))


def web_config_name(settings: Settings) -> str:
    """How the web configuration's problems and warnings start, naming the field like
    every other problem and the file it gave: ``daemon.web_config_file (PATH)``."""
    return f"daemon.web_config_file ({brief_text(str(settings.daemon.web_config_file))})"


def file_mode_warnings(settings: Settings) -> list[str]:
    """The configuration file when others may write it, and each secret file it names
    when group or others may read it (``exposed_files``)."""
    try:
        web = web_config(settings)
    except (ConfigError, OSError):
        web = None  # the checks of the web configuration say why
    return exposed_files(settings, None if web is None or web.tls is None else web.tls.key_file)


# Descriptors the daemon holds of its own: the store, the history, the listener, the
# event loop, the run workers' pipes: 22 at rest with one model, a few more in a run.
DAEMON_DESCRIPTORS = 32


def descriptor_warnings(settings: Settings) -> list[str]:
    """``serving.max_connections`` and the daemon's own descriptors over this process's
    open-file limit (``ulimit -n``): connections up to the cap would take the descriptors
    its runs need (they fail at ``store``), and accepting would pause a second at a time."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = settings.serving.max_connections + DAEMON_DESCRIPTORS
    if soft == resource.RLIM_INFINITY or need <= soft:
        return []
    return [
        f"serving.max_connections ({settings.serving.max_connections}) plus the daemon's "
        f"own descriptors (about {DAEMON_DESCRIPTORS}) exceed the open-file limit "
        f"(ulimit -n {soft}): a burst of connections would leave none for the runs; "
        f"raise ulimit -n to at least {need} or lower serving.max_connections"
    ]


def web_config_warnings(settings: Settings, now: float) -> list[str]:
    """The web configuration's certificate out of its dates at ``now`` (or near their
    end), as check-config warns of it (``certificate_warnings``)."""
    web = web_config(settings)
    if web is None or web.tls is None:
        return []
    return certificate_warnings(web.tls, now, web_config_name(settings))


def _source_problems(settings: Settings) -> list[str]:
    """What building each source finds (files it reads, certificates it loads)."""
    try:
        sources = _build_sources(settings)
    except ConfigError as exc:
        return exc.problems
    for source in sources.values():
        source.close()
    return []


def _engine_problems(settings: Settings) -> list[str]:
    """What building the models' engines finds (pyspark missing, or not importing); no
    Spark session starts."""
    try:
        build_engines(settings)
    except ConfigError as exc:
        return exc.problems
    return []


def listen_problem(listen: str, *, in_use_by: str | None = None) -> Problem | None:
    """Why ``listen`` cannot be listened on (a name that does not resolve, an address
    not on this host, a port in use); None when a socket binds there now, or when the
    port is in use and ``in_use_by`` names the daemon (its pid) taken to hold it."""
    host, port = parse_listen(listen)
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        why = f"the host {host!r} does not resolve: {getattr(exc, 'strerror', None) or exc}"
        return Problem("listen", f"an address this host can listen on ({why})", listen)
    # Bound as the server binds (SO_REUSEADDR), then closed at once.
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and in_use_by is not None:
                # Said by nothing: `run` is refused by the daemon's claim in one line of
                # its own, and check-config's output is its OK (exB).
                return None
            why = bind_error(exc, host, port)
            return Problem("listen", f"an address this host can listen on ({why})", listen)
    return None


def bind_error(exc: OSError, host: str, port: int) -> str:
    """Why binding ``host:port`` failed, in words that say what to change."""
    where = host or "every interface"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} of {where} is in use: another process listens there, perhaps a "
            "kmeans-monitor already running"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this host"
    if exc.errno == errno.EACCES:
        return f"port {port} needs privileges this process lacks (ports below 1024)"
    return f"{where}:{port}: {exc.strerror or exc}"


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
        return self._http.url

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


def simulator_options(raw: Any) -> ServiceOptions:
    """The options of ``kmeans-monitor simulate`` from its YAML (None: the defaults)."""
    return parse_service_options(raw)


def simulator_server(
    options: ServiceOptions,
    host: str,
    port: int,
    *,
    refresh: float = 1.0,
    clock: Callable[[], float] = time.time,
) -> SimulatorServer:
    """Wire a Simulator, its gauges and an HTTP server on ``host:port`` (0: any free port).

    InvalidInputError when ``refresh`` is not positive, is longer than
    ``durations.MAX_SECONDS`` or the address cannot be listened on.
    """
    refresh = check_float(
        refresh, "refresh", low=0, low_inclusive=False, high=MAX_SECONDS, owner="simulator_server"
    )
    collector = SimulatorCollector(
        Simulator(options.features, options.simulator), options.instances
    )
    routes = Routes(
        registry=simulated_registry(collector),
        ready=lambda: (True, "ready"),
        runbook_html=lambda name, model: None,
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
    config: Path | None = None,
) -> DirectorySnapshotStore:
    """The snapshot store under a state directory, with the configured key and retention;
    ``config``, the file they come from, is named in the commands its errors print."""
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
        # With the configuration file when the store has a key: the rollback printed
        # without it failed on an encrypted store, "configure the store key" (helper-88).
        command_options=(
            None
            if key is None or config is None
            else store_options(Path(state_dir), Path(config).resolve())
        ),
    )


def state_dir_unwritable(state_dir: Path) -> str | None:
    """Why this user may not write in the state directory (or the directory it would be
    made in), or None. A probe file is made there and removed at once. A directory no
    user could write in is ``state_dir_problems(probe=True)``'s."""
    exc = _write_probe(Path(state_dir))
    if exc is None or exc.errno not in USER_ERRNOS:
        return None
    existing = _nearest_existing(Path(state_dir))
    return f"cannot write in {str(existing)!r} as this user: {exc.strerror}"


def open_history(state_dir: Path) -> SQLiteHistory:
    """The run history under a state directory, read-only (StoreError when there is none)."""
    return SQLiteHistory(Path(state_dir) / HISTORY_FILE, read_only=True)


def open_dry_run(settings: Settings) -> tuple[OverlaySnapshotStore, OverlayHistory]:
    """A store and a history that read the state directory's and keep every write in memory.

    Nothing is created in the state directory: without a store or a history there, the
    dry run reads them as empty (a first run). The history is opened read-only.
    """
    state_dir = Path(settings.daemon.state_dir)
    inner_store: SnapshotStore = MemorySnapshotStore()
    if (state_dir / "snapshots").is_dir():
        inner_store = open_store(state_dir, settings.store, config=settings.path)
    inner_history: History = MemoryHistory()
    if (state_dir / HISTORY_FILE).is_file():
        inner_history = open_history(state_dir)
    return OverlaySnapshotStore(inner_store), OverlayHistory(inner_history)


# A run's default deadline: this share of the shortest gap between two of its runs...
RUN_TIMEOUT_SHARE = 0.8
# ...but never less: a short interval must not abandon a first run training its reference.
MIN_RUN_TIMEOUT = 60.0


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
        engine=m.engine,
        flagged_runs_to_fire=m.thresholds.flagged_runs_to_fire,
    )


def build_engines(settings: Settings) -> dict[str, Engine]:
    """The engine of every model that does not compute in this process (``engine: spark``).

    Spark is imported only here and only for such models; its session starts on the
    first run, not now. ConfigError when pyspark is missing.
    """
    return {m.name: engine for m in settings.models if (engine := model_engine(m)) is not None}


def model_engine(m: ModelSettings) -> Engine | None:
    """The engine of ``m`` when it does not compute in this process (``engine: spark``)."""
    return spark_engine(m.spark, model=m.name) if m.engine == "spark" else None


def misfire_grace(m: ModelSettings, now: datetime) -> float:
    """How late a run of ``m`` may start: ``schedule.misfire_grace``, or by default half
    the shortest gap between two runs. A cron model had none (APScheduler's "however
    late"): under load its runs started up to 55 s late, never counted missed, ahead of
    the interval models' (helper-107)."""
    if m.misfire_grace is not None:
        return m.misfire_grace
    return schedule_gaps(m.interval, m.cron, now)[0] / 2


def run_timeout(m: ModelSettings, now: datetime) -> float:
    """The deadline of a run of ``m``: ``schedule.run_timeout``, or by default 80% of
    the shortest gap between two runs (so it ends before the next), at least a minute."""
    if m.run_timeout is not None:
        return m.run_timeout
    shortest = schedule_gaps(m.interval, m.cron, now)[0]
    return max(RUN_TIMEOUT_SHARE * shortest, MIN_RUN_TIMEOUT)


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
    registry: MonitorRegistry

    def ready(self) -> tuple[bool, str]:
        """Ready once every model with a live version serves it, in a store still there,
        and some model has one: a process that can answer nothing (a store no daemon has
        written yet, a mistyped state_dir) takes no traffic from a load balancer."""
        if gone := _store_gone(self.store, _RESTORE):
            return False, gone
        ok, why = self.serving.catalog.ready()
        if ok and not self.serving.catalog.serves_any():
            where = (
                f" in {self.store.root}" if isinstance(self.store, DirectorySnapshotStore) else ""
            )
            return False, f"serving: no model has a live version{where} yet"
        return ok, why


# What to do about a store gone: the daemon, restarted, starts afresh; `serve`,
# restarted, recreates an empty store and drops the versions it still serves (helper-143).
_RESTORE_OR_RESTART = "restore it, or restart the daemon"
_RESTORE = (
    "restore it (the versions loaded are served meanwhile; a restarted serve would have none)"
)


def _store_gone(store: SnapshotStore, advice: str = _RESTORE_OR_RESTART) -> str | None:
    """Why a directory store's directory is no longer there (deleted under the process),
    with ``advice``, or None. Its models read as "no model yet" then: not ready, rather
    than serving none."""
    if isinstance(store, DirectorySnapshotStore) and not store.root.is_dir():
        return f"the snapshot store {store.root} is gone: {advice}"
    return None


def build_serving_app(settings: Settings, *, store: SnapshotStore | None = None) -> ServingApp:
    """The label API of ``settings`` over the store, no model loaded yet: the label
    server loads them once it holds its address (``daemon.LabelServer``)."""
    store = store or open_store(settings.daemon.state_dir, settings.store, config=settings.path)
    serving = build_serving(settings, store)
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
    registry: MonitorRegistry  # what /metrics and the Pushgateway serve
    runner: Runner
    stopping: threading.Event  # set when the process is asked to stop
    clock: Clock = field(default_factory=SystemClock)  # what the pages call "now"
    # Model -> why its configured k is not the live model's (logged at start-up).
    k_warnings: Mapping[str, str] = field(default_factory=dict)
    engines: Mapping[str, Engine] = field(default_factory=dict)  # models not run locally
    serving: Serving | None = None  # the label API, when serving.enabled
    watch: StateDirWatch | None = None  # whether the state directory is still the one opened

    def ready(self) -> tuple[bool, str]:
        """Readiness: the store answers for every model, and the label API (when on)
        serves every live version, as ``ServingApp.ready`` requires of `serve`."""
        try:
            for m in self.settings.models:
                self.store.live_version(m.name)
        except Exception as exc:
            return False, f"store not readable: {exc}"
        if self.watch is not None and (lost := self.watch.lost()) is not None:
            return False, lost
        if gone := _store_gone(self.store):
            return False, gone
        return (True, "ready") if self.serving is None else self.serving.catalog.ready()

    def close(self) -> None:
        """Close the sources, the engines and the history."""
        for source in self.sources.values():
            try:
                source.close()
            except Exception as exc:
                log.warning("closing a source failed: %s", exc)
        for engine in self.engines.values():
            try:
                engine.close()
            except Exception as exc:
                log.warning("closing the %s engine failed: %s", engine.name, exc)
        self.runner.close()
        self.history.close()


def run_workers(settings: Settings) -> RunWorkers | None:
    """The worker processes of ``daemon.run_isolation: process`` (none start until used)."""
    d = settings.daemon
    if d.run_isolation != "process":
        return None
    return RunWorkers(d.max_workers, blas_threads=d.blas_threads)


DAEMON_LOCK = "daemon.lock"  # in the state directory: held by the daemon that runs on it


class StateDirWatch:
    """The state directory and history file a process opened, to notice that they were
    deleted or replaced under it (``lost``): the process's history (and the daemon's
    lock) stay on the files it opened, so runs recorded there would be lost, and a
    directory made or restored there is not held (helper-150). Only a restart recovers."""

    def __init__(self, state_dir: Path, history: Path) -> None:
        self.state_dir = Path(state_dir)
        self.history = Path(history)
        self._opened = {p: _identity(p) for p in (self.state_dir, self.history)}

    def lost(self) -> str | None:
        """Why the state directory (or its history file) is no longer the one opened, or
        None while it is (or when it was not there to begin with)."""
        for path, opened in self._opened.items():
            if opened is not None and _identity(path) != opened:
                what = "state directory" if path == self.state_dir else "history database"
                return (
                    f"the {what} {path} was deleted or replaced under this process, which "
                    "still holds the old one (its history and lock): nothing runs until "
                    "the daemon is restarted"
                )
        return None


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``, or None when it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


@dataclass
class StateDirClaim:
    """The open files that hold a state directory for this process (``claim_state_dir``)."""

    fds: tuple[int, ...]

    def close(self) -> None:
        """Give the state directory up (the process's end does the same)."""
        for fd in self.fds:
            os.close(fd)


def claim_state_dir(
    state_dir: Path, *, option: str = "daemon.state_dir", advice: str | None = None
) -> StateDirClaim:
    """Hold ``state_dir`` for this daemon until the process ends, or the claim is closed
    (the kernel drops the locks with the process, a kill -9 included).

    Two daemons on one state directory ran every model twice, and both could promote.
    InvalidInputError naming the other daemon's pid when one holds it, and ``option``,
    where this one's state directory came from (or ``advice``, what to do instead).

    The directory itself is locked as well as its ``daemon.lock``: that file holds a pid
    and reads as a stale pid file, and once an operator removed it a second daemon took
    a lock on a new one and ran beside the first (helper-93). A file system whose
    directories take no lock (some network ones) keeps the file's lock alone.
    """
    path = Path(state_dir) / DAEMON_LOCK
    try:
        make_dirs(Path(state_dir))
        fd = open_private(path)
    except StoreError as exc:  # a link there: never written through
        raise InvalidInputError(f"{option}: {exc}") from None
    except OSError as exc:  # a parent that cannot be made, a directory not writable
        why = cannot_use_state_dir(state_dir, exc, path)
        raise InvalidInputError(f"{option}: {why}") from None
    advice = advice or (
        f"it would run every model a second time; stop it, or give this one its own {option}"
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise InvalidInputError(
            f"another kmeans-monitor daemon (pid {other}) runs on the state directory "
            f"{state_dir}: {advice}"
        ) from None
    try:
        held = _lock_directory(Path(state_dir))
    except BlockingIOError:  # the lock file is this process's own, made anew: removed
        _give_up(StateDirClaim((fd,)), path)
        other = _directory_locker(Path(state_dir)) or "unknown"  # as check-config finds it
        raise InvalidInputError(
            f"another kmeans-monitor daemon runs on the state directory {state_dir} (pid "
            f"{other}: its {DAEMON_LOCK} was removed, which frees nothing): {advice}"
        ) from None
    claim = StateDirClaim((fd,) if held is None else (fd, held))
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as exc:  # a full disk: the error names no file
        _give_up(claim, path)
        raise InvalidInputError(f"{option}: {cannot_use_state_dir(state_dir, exc, path)}") from None
    return claim


def _give_up(claim: StateDirClaim, lock: Path) -> None:
    """Let the state directory go, removing the ``lock`` file this claim made or emptied:
    a refused daemon leaves no empty pid file (helper-150). Its lock is held (by this
    claim, or by the running daemon on the directory), so no daemon uses that file."""
    with contextlib.suppress(OSError):
        os.unlink(lock)
    claim.close()


def _lock_directory(state_dir: Path) -> int | None:
    """A descriptor of ``state_dir`` holding its lock, or None when the file system takes
    no lock on a directory; BlockingIOError when another process holds it."""
    try:
        dfd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(dfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(dfd)
        raise
    except OSError:  # EBADF, ENOLCK, EOPNOTSUPP: locks need a file opened to write there
        os.close(dfd)
        return None
    return dfd


def _directory_locker(state_dir: Path) -> str | None:
    """The pid of the process holding the lock of ``state_dir`` itself, as the kernel
    lists it in /proc/locks (Linux; None elsewhere, or when no process holds it)."""
    try:
        st = os.stat(state_dir)
        lines = Path("/proc/locks").read_text("ascii", "replace").splitlines()
    except OSError:
        return None
    held = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:  # "1: FLOCK  ADVISORY  WRITE <pid> <maj:min:inode> 0 EOF"
        fields = line.split()  # a process waiting for it: "1: -> FLOCK ..."
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == held:
            return fields[4]
    return None


def daemon_holding(state_dir: Path) -> str | None:
    """The pid of the daemon that last claimed ``state_dir`` while that process lives,
    else None. Only looks: takes no lock (a daemon starting at that moment must not find
    its state directory held), so a pid reused by another process reads as a daemon.
    With its ``daemon.lock`` removed, the process that holds the directory's lock."""
    try:
        text = (Path(state_dir) / DAEMON_LOCK).read_text("ascii", "replace").strip()
        pid = int(text)
    except FileNotFoundError:  # removed: the directory's lock still says who holds it
        return _directory_locker(Path(state_dir))
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:
        return text  # alive, another user's
    except (OSError, OverflowError):  # no such process, or a number no pid can be
        return None
    return text


def _reconciled(history: History, n: int) -> str:
    """What start-up says of the ``n`` stored versions ``reconcile`` recorded: the
    migration's filling of the versions table it added (helper-161: "a stop had left
    out" read as an unclean stop after an upgrade), or a stop's gap."""
    migrated = history.migrated_from if isinstance(history, SQLiteHistory) else None
    if migrated is not None and migrated < VERSIONS_SCHEMA:
        return (
            f"recorded {n} stored version(s) in the versions table that the migration from "
            f"schema {migrated} added"
        )
    return f"recorded {n} stored version(s) a stop had left out"


def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: SnapshotStore | None = None,
    history: History | None = None,
    sources: Mapping[str, TelemetrySource] | None = None,
    on_result: Sequence[Callable[[Evaluation | RunFailure], None]] = (),
    config_path: Path | None = None,
) -> App:
    """Wire the application; every collaborator can be replaced (tests pass fakes).

    ``config_path`` is the file the settings came from, for the commands that warnings
    print.
    """
    engines = build_engines(settings)
    built = dict(sources) if sources is not None else _build_sources(settings)
    clock = clock or SystemClock()
    state_dir = settings.daemon.state_dir
    store = store or open_store(state_dir, settings.store, config=settings.path)
    history = history or SQLiteHistory(
        Path(state_dir) / HISTORY_FILE, keep=settings.store.keep_history
    )
    # A history it writes (run, evaluate): not a dry run's, nor a test's in memory.
    watch = None
    if isinstance(history, SQLiteHistory) and not history.read_only:
        watch = StateDirWatch(Path(state_dir), history.path)
    reconciled = history.reconcile(store)
    if reconciled:
        log.info("history: %s", _reconciled(history, len(reconciled)))
    k_warnings = k_mismatches(settings, store, config_path)
    startup = [*file_mode_warnings(settings), *unencrypted_versions(settings, store)]
    for warning in [*k_warnings.values(), *startup, *unconfigured_state(settings, store)]:
        log.warning("%s", warning)
    now = datetime.fromtimestamp(clock.now(), UTC)
    state = MonitorState(
        [model_spec(m, now) for m in settings.models], started_at=clock.now(), version=__version__
    )
    stopping = threading.Event()
    # The pages and the exporter explain each window against the live snapshot.
    sampler = WindowSampler(built)
    serving = build_serving(settings, store) if settings.serving.enabled else None
    if serving is not None:
        # A run that promoted is served at once, not at the next poll of the pointers.
        on_result = (*on_result, lambda result: serving.catalog.refresh([result.model]))
    runner = Runner(
        settings,
        sources=sampler.sources,
        store=store,
        history=history,
        state=state,
        clock=clock,
        package_version=__version__,
        should_stop=stopping.is_set,
        on_result=(_explainer(state, sampler), *on_result),
        engines=engines,
        run_timeouts={m.name: run_timeout(m, now) for m in settings.models},
        workers=run_workers(settings),
        guard=None if watch is None else watch.lost,
    )
    runner.refresh_live()
    for m in settings.models:
        _restore(state, history, m.name, clock.now())
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
        clock=clock,
        k_warnings=k_warnings,
        engines=engines,
        serving=serving,
        watch=watch,
    )


#: A restart counts a model's flagged runs back over this many of its latest runs at most.
RESTORED_RUNS = 100


def _restore(state: MonitorState, history: History, model: str, now: float) -> None:
    """Give ``state`` what ``history`` knew of ``model``: its latest success, whether a
    failure came after it and when that one ended, and the flagged runs up to it (after
    the latest failure). The latest is the last written: one stamped ahead of ``now``
    was written before the wall clock stepped back (``written_after``)."""
    recent = history.recent(model, limit=RESTORED_RUNS)
    latest = next(iter(recent), None)
    failed = next(iter(history.failures(model, limit=1)), None)
    after = failed is not None and (
        latest is None or written_after(failed.at, latest.evaluated_at, now)
    )
    since = [
        e
        for e in reversed(recent)
        if failed is None or not written_after(failed.at, e.evaluated_at, now)
    ]
    held = [alerting.held_conditions(e) for e in since]
    flagged = alerting.flagged_runs(held)[-1] if held else 0
    ended = None if failed is None else failed.at + (failed.duration_seconds or 0.0)
    if latest is not None and ahead(latest.evaluated_at, now):
        log.warning(
            "model=%s its latest run is stamped %s UTC, %s ahead of the clock: the wall "
            "clock stepped back since; its times read as the latest until a run ends",
            model,
            format_time(latest.evaluated_at),
            format_rough(ahead(latest.evaluated_at, now)),
        )
    state.restore(model, latest, failed_since=after, flagged_runs=flagged, last_failure=ended)


def carry_over_runs(app: App) -> None:
    """Batch mode: each model's counters and the start time carry on from the history
    (``MonitorState.carry_over``), so that what ``evaluate`` pushes moves as a daemon's
    counters do."""
    for m in app.settings.models:
        app.state.carry_over(m.name, app.history.totals(m.name))


def _explainer(
    state: MonitorState, sampler: WindowSampler
) -> Callable[[Evaluation | RunFailure], None]:
    """After each successful run: explain its window against the live snapshot."""

    def on_result(result: Evaluation | RunFailure) -> None:
        if not isinstance(result, Evaluation):
            return
        try:
            live = state.status(result.model).live
            sample = sampler.sample(result.model, result.window_start, result.window_end)
            if live is not None and sample is not None:
                state.set_explanation(explain(live, sample, result.window_start, result.window_end))
        except Exception as exc:  # an explanation is a nicety; the run stands
            log.warning("model=%s cannot explain the window: %s", result.model, exc)

    return on_result


#: Runs of one model in one backtest at most: a month of runs a minute apart is 44,640.
MAX_REPLAY_RUNS = 100_000

#: A model, the times of its runs in a replayed range, and the time of the run after them.
BacktestRuns = tuple[ModelSettings, list[float], float]


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
    as ``backtest_runs`` says.
    """
    return replay_runs(settings, backtest_runs(settings, name, start, end), on_result=on_result)


def replay_runs(
    settings: Settings,
    runs: BacktestRuns,
    *,
    on_result: Callable[[int, int, Evaluation | RunFailure], None] | None = None,
    on_step: Callable[[int, int, str], None] | None = None,
) -> Replay:
    """``backtest``'s replay of ``runs``, as ``backtest_runs`` found them, on the model's
    engine as the daemon runs it (``engine: spark``: its master and ``spark.conf``).
    ``on_step(i, n, text)``: what run ``i`` of ``n`` does while it is a first run."""
    m, times, after = runs
    engine = model_engine(m)
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
            engine=engine,
            on_result=None if on_result is None else lambda i, r: on_result(i, len(times), r),
            on_step=None if on_step is None else lambda i, text: on_step(i, len(times), text),
        )
    finally:
        source.close()
        if engine is not None:
            engine.close()


def backtest_runs(settings: Settings, name: str, start: float, end: float) -> BacktestRuns:
    """Model ``name``, the times of its runs in ``[start, end)`` and the run after them,
    before any replay: a command that replays several models checks them all first, so
    that one refused does not discard the others' finished replays. InvalidInputError
    for an unknown model, a range that holds no run or more than MAX_REPLAY_RUNS, or a
    source that cannot replay the past."""
    try:
        m = settings.model(name)
    except KeyError as exc:
        raise InvalidInputError(str(exc.args[0])) from None
    if end <= start:
        raise InvalidInputError(
            f"backtest: --to ({format_time(end)}) must be after --from ({format_time(start)})"
        )
    times, after = run_times(m.interval, m.cron, start + m.window, end, limit=MAX_REPLAY_RUNS)
    if len(times) > MAX_REPLAY_RUNS:
        raise InvalidInputError(
            f"backtest: [{format_time(start)}, {format_time(end)}) holds more than "
            f"{MAX_REPLAY_RUNS:,} runs of model {name!r}; replay a shorter range"
        )
    if not times:
        span = f"[{format_time(start)}, {format_time(end)})"
        if end - start < m.window:
            why = f"each run reads a window of {format_duration(m.window)} before it"
        else:  # a cron that does not fire between the first window's end and --to
            nxt = f"; it fires next at {format_time(after)}" if math.isfinite(after) else ""
            first = format_time(start + m.window)
            why = f"its cron {m.cron!r} does not fire between {first} and --to{nxt}"
        raise InvalidInputError(f"backtest: no run of model {name!r} fits in {span}: {why}")
    cannot = SOURCES[m.source.kind].replay_problem(m.source.options)
    if cannot is not None:
        raise InvalidInputError(f"backtest: model {name!r} cannot be replayed: {cannot}")
    return m, times, after


# ---------------------------------------------------------------------- k and retraining


def retrain_command(model: str, config_path: Path | None, state_dir: Path) -> str:
    """The command that retrains ``model`` on its reference period, runnable as printed."""
    config = Path("FILE") if config_path is None else Path(config_path).resolve()
    where = store_options(Path(state_dir).resolve(), config)
    return f"kmeans-monitor snapshots retrain {model} {where}"


def _k_text(k: int | KRange) -> str:
    return f"k={k}" if isinstance(k, int) else f"k in [{k.min}, {k.max}]"


def _versions(store: SnapshotStore, model: str) -> tuple[VersionInfo | None, list[VersionInfo]]:
    """The live version's listing from the manifests, None when unknown (no model, a
    broken pointer, a corrupt manifest), and the sound pending ones."""
    try:
        live = store.live_version(model)
        infos = store.list_versions(model) if live is not None else []
    except (OSError, ValueError, KeyError):  # StoreError, a bad name: other checks report it
        return None, []
    sound = [i for i in infos if not i.corrupt]
    return (
        next((i for i in sound if i.version == live), None),
        [i for i in sound if i.state == "pending"],
    )


def _problems(m: ModelSettings, info: VersionInfo, store: SnapshotStore) -> str | None:
    """What version ``info`` lacks of what the configuration asks, every part named
    (helper-78: with k and the window changed, only k was); None: nothing. Other features
    are said alone: every run fails on them whatever else."""
    if info.k is None or info.features is None:
        return "its manifest does not say its k and features"
    if info.features != tuple(m.features):
        return (
            f"the configuration reads the features {list(m.features)} but the live model "
            f"v{info.version} reads {list(info.features)}: every run fails (schema) until a "
            "version on the configured features is trained"
        )
    asks, has = _k_and_phases(m, info)
    live = _loaded(store, info)
    more_asks, more_has = trained_otherwise(m, live)
    if not asks + more_asks:
        return None
    # A promotion keeps k, the phases and the metric, but trains with these (t12).
    applied = [] if live is None else training_differs(m, live)[0]
    then = f" (the next promotion or retrain applies {' and '.join(applied)})" if applied else ""
    return (
        f"the configuration asks for {' and '.join(asks + more_asks)} but the live model "
        f"v{info.version} has {' and '.join(has + more_has)}, which runs keep until a new "
        f"reference is trained{then}"
    )


def k_mismatches(
    settings: Settings, store: SnapshotStore, config_path: Path | None = None
) -> dict[str, str]:
    """Model -> a warning, for each model whose live version the configuration has changed
    under it: other features (every run fails until a retrain), a k it does not allow, or
    another seasonality or time zone of the phases.

    k and the phases are set only when a reference model is trained, so a change to them is
    otherwise ignored until a retrain; the warning names the command that retrains
    deliberately, or, when a pending version is what the configuration asks (``snapshots
    retrain`` stored it), the command that approves that version.
    """
    out: dict[str, str] = {}
    for m in settings.models:
        info, pending = _versions(store, m.name)
        if info is None or info.k is None:
            continue
        problem = _problems(m, info, store)
        if problem is None:
            continue
        state_dir = settings.daemon.state_dir
        ready = next((p for p in pending if _problems(m, p, store) is None), None)
        if ready is not None:
            config = None if config_path is None else Path(config_path).resolve()
            command = approve_command(m.name, ready.version, Path(state_dir).resolve(), config)
            advice = f"the pending v{ready.version} does; approve it with: {command}"
        elif info.features != tuple(m.features) or m.retrain != "manual":
            # Under on-drift or scheduled the next promotion retires a pending version.
            advice = f"retrain with: {retrain_command(m.name, config_path, state_dir)} --live"
        else:
            command = retrain_command(m.name, config_path, state_dir)
            advice = f"retrain with: {command} (pending; --live makes it live at once)"
        out[m.name] = f"model {m.name!r}: {problem}; {advice}"
    return out


def live_key_problems(settings: Settings, store: SnapshotStore) -> list[str]:
    """A warning for each model whose live version does not load with the configured key
    (signed with another, encrypted while none is configured, or unsigned under
    ``require_signature``): every run fails on it,
    and the warning is the run's failure, naming the way out. check-config said OK after
    a key change (helper-103)."""
    found = []
    for m in settings.models:
        try:
            store.load(m.name)
        except StoreError as exc:
            if isinstance(exc.__cause__, (KeyMismatchError, UnsignedError)):
                found.append(str(exc))
        except (OSError, ValueError, KeyError):
            continue  # no model yet, a bad name: other checks report it
    return found


def unencrypted_versions(settings: Settings, store: SnapshotStore) -> list[str]:
    """A warning for each model with versions stored in clear under ``store.encrypt``:
    written before it was turned on, they are not re-encrypted, so their raw rows stay
    readable on disk, the live one for as long as it is live (h146)."""
    if not settings.store.encrypt:
        return []
    found = []
    for m in settings.models:
        try:
            infos = store.list_versions(m.name)
        except (OSError, ValueError, KeyError):
            continue  # no model yet, a bad name: other checks report it
        clear = [i for i in infos if not i.corrupt and not i.encrypted]
        if clear:
            shown = some_names(clear, lambda i: f"v{i.version} ({i.state})")
            found.append(
                f"model {m.name!r}: {shown} stored unencrypted although store.encrypt is "
                "on (written before it was): their raw rows stay readable on disk; "
                "re-encrypt or retire them as docs/security.md says"
            )
    return found


def unconfigured_state(settings: Settings, store: SnapshotStore) -> list[str]:
    """A warning for each model the store holds versions of that the configuration does
    not name (removed, or renamed: a new name starts from a new reference): its state is
    kept, unused, and no command removes it, so the line says where it is (f19: nothing
    said so, and the directory stayed for good)."""
    try:
        stored = store.models()
    except (OSError, ValueError, KeyError):  # StoreError: other checks report it
        return []
    configured = {m.name for m in settings.models}
    state_dir = Path(settings.daemon.state_dir).resolve()
    keep = settings.store.keep_history
    until = (
        "" if keep is None else f" until store.keep.history ({format_duration(keep)}) ages them out"
    )
    found = []
    for name in (n for n in stored if n not in configured):
        try:
            count = f"{len(store.versions(name))} version(s)"
        except (OSError, ValueError, KeyError):
            count = "its versions"
        found.append(
            f"model {name!r} is not in the configuration, but its state is kept: {count} "
            f"in {shown_path(state_dir / 'snapshots' / name)} (its runs in "
            f"{shown_path(state_dir / HISTORY_FILE)} stay{until}); no command "
            "removes it: delete that directory to drop its versions, or configure the "
            "model again under that name to resume from its live version"
        )
    return found


def _k_and_phases(m: ModelSettings, info: VersionInfo) -> tuple[list[str], list[str]]:
    """What the configuration asks of k and the phases that version ``info`` lacks, and
    what it has instead (empty: nothing)."""
    fits = info.k == m.k if isinstance(m.k, int) else m.k.min <= (info.k or 0) <= m.k.max
    asks, has = ([], []) if fits else ([_k_text(m.k)], [f"k={info.k}"])
    cycle = SEASON_PERIODS.get(m.seasonality)
    if not _same_phases((cycle, m.timezone), (info.cycle, info.timezone)):
        asks.append(_phases_text(cycle, m.timezone))
        has.append(_phases_text(info.cycle, info.timezone))
    return asks, has


def _loaded(store: SnapshotStore, info: VersionInfo) -> Snapshot | None:
    """The version ``info`` lists; None when it does not load (other checks say why)."""
    try:
        return store.load(info.model, info.version)
    except (OSError, ValueError, KeyError):
        return None


def _same_phases(a: tuple[float | None, str | None], b: tuple[float | None, str | None]) -> bool:
    """Whether two seasonalities (cycle, time zone) compare windows alike: the same cycle,
    on the same wall clock (a zone's other names, ``Etc/UTC`` for UTC, read as it)."""
    (cycle_a, zone_a), (cycle_b, zone_b) = a, b
    if cycle_a != cycle_b:
        return False
    return cycle_a is None or same_clock(zone_a or "UTC", zone_b or "UTC")


def _phases_text(cycle: float | None, timezone: str | None) -> str:
    if cycle is None:
        return "no seasonality"
    return f"{season_name(cycle) or f'a {cycle:g} s cycle'} phases in {timezone or 'UTC'}"


@dataclass(frozen=True)
class Retrained:
    """A version trained by hand on the model's reference period, and what was live before."""

    snapshot: Snapshot
    state: str  # "live" or "pending"
    live_before: int | None
    start: float  # the reference period trained on
    end: float
    windows: int  # windows of the period that were read and used
    skipped: tuple[str, ...]  # windows left out, with why
    replaced: int | None = None  # the pending version this one retired (stored pending)
    flagged: tuple[float, ...] = ()  # ends of the period's windows whose runs were flagged


def _flagged(history: History, model: str, start: float, end: float) -> tuple[float, ...]:
    """The ends of the windows in ``[start, end)`` whose runs were flagged; none when the
    history cannot say (the version is stored by then: a warning is not worth failing)."""
    try:
        runs = history.since(model, start, end).evaluations
    except (OSError, ValueError):  # StoreError
        return ()
    return tuple(e.window_end for e in runs if alerting.held_conditions(e))


def retrain(
    settings: Settings,
    name: str,
    *,
    live: bool,
    clock: Clock | None = None,
    store: SnapshotStore | None = None,
    history: History | None = None,
    source: TelemetrySource | None = None,
    on_start: Callable[[float, float], None] | None = None,
    by: Actor | None = None,
) -> Retrained:
    """Train a new version of ``name`` on its reference period ending now; store it.

    It is pending (awaiting ``snapshots approve``), or live with ``live`` or when the
    model has no live version yet (a promotion ``by`` that actor, in the store's events).
    ``on_start(start, end)`` is told the period before the (slow) reading and training
    start. The source's and training's errors propagate.
    """
    try:
        m = settings.model(name)
    except KeyError as exc:
        raise InvalidInputError(str(exc.args[0])) from None
    clock = clock or SystemClock()
    state_dir = Path(settings.daemon.state_dir)
    store = store or open_store(state_dir, settings.store, config=settings.path)
    src = source or SOURCES[m.source.kind].build(m.name, m.features, m.source.options)
    # A Spark model trains on the cluster here too (rows of a spark source stay there).
    engine = model_engine(m)
    try:
        try:
            parent: Snapshot | None = store.load(name)
        except SnapshotNotFoundError:
            parent = None
        now = clock.now()
        check_ready(src, m, now, engine)
        start, end = m.reference.span(now)
        if on_start is not None:
            on_start(start, end)
        ref = read_reference(src, m, now, src.read_window(end - m.window, end), engine)
        snap = train_reference(
            ref,
            m,
            now=now,
            reason="manual",
            package_version=__version__,
            working_memory_mib=settings.daemon.working_memory_mib,
            parent=parent,
            engine=engine,
        )
    finally:
        if engine is not None:
            engine.close()
        if source is None:
            src.close()
    state = "live" if live or parent is None else "pending"
    try:
        replaced = store.pending_version(name) if state == "pending" else None
        hist = history or SQLiteHistory(state_dir / HISTORY_FILE)
    except StoreError as exc:
        raise StoreWriteError(str(exc)) from exc
    try:
        # Numbered as a run numbers it: after every version the history knows too.
        saved = store.save(snap, state=state, floor=version_floor(hist, name), by=by)
        hist.record_version(saved)
        flagged = _flagged(hist, name, start, end)
    except StoreError as exc:  # trained, not stored: failed as a run at store (exit 1)
        raise StoreWriteError(str(exc)) from exc
    finally:
        if history is None:
            hist.close()
    live_before = None if parent is None else parent.version
    return Retrained(
        saved, state, live_before, start, end, ref.n_windows, ref.skipped, replaced, flagged
    )
