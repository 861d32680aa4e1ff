"""The command line: ``kmeans-monitor run|demo|evaluate|check-config|snapshots|choose-k|...``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import pwd
import re
import select
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from monitor import __version__
from monitor.checks import (
    MODEL_NAME,
    Mismatch,
    brief,
    brief_text,
    bytes_text,
    check_base_url,
    check_name,
    shown_path,
    some_names,
)
from monitor.config import PUSHGATEWAY_EXAMPLE, Settings
from monitor.errors import (
    ConfigError,
    InvalidInputError,
    OutputError,
    SnapshotNotFoundError,
    SourceError,
    StoreError,
    TimeRangeError,
    TrainingError,
)
from monitor.formats import HISTORY_SCHEMA, SNAPSHOT_FORMAT
from monitor.interrupts import by_signal, exit_interrupted
from monitor.logs import set_log_level, setup_logging
from monitor.records import REASON_CHARS, Actor, Evaluation, RunFailure, RunHistory, StoreEvent
from monitor.redact import redact_text, redact_url
from monitor.slis import FEATURE_PSI, PROGRESS, SCALAR
from monitor.timestamps import format_time

log = logging.getLogger("monitor")


class NonEmptyPath(click.Path):
    """``click.Path`` refusing an empty value, which ``Path("")`` would read as ".", and a
    file's path ending in "/"."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "":
            self.fail("the path is empty", param, ctx)
        # pathlib drops a trailing "/": 'x.png/' would have written the file x.png.
        if not self.dir_okay and isinstance(value, str) and value.endswith("/"):
            self.fail(
                f"{brief(value)} ends in '/', which names a directory, not a file", param, ctx
            )
        return super().convert(value, param, ctx)


class DecimalNumber(click.ParamType):
    """A number option written in ASCII: digits, a point, an exponent (``1.5``, ``2e3``).

    click's FLOAT takes what float() takes: "\u0663" (Arabic-Indic 3) and "1_0" were read as
    3 and 10, where durations and versions refuse such text; a value is echoed shortened.
    """

    name = "number"
    # inf and nan pass to the option's own range check, which names its range.
    _FORM = re.compile(r"[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|inf(inity)?|nan)", re.IGNORECASE)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return float(value)
        if not (value.isascii() and self._FORM.fullmatch(value.strip())):
            self.fail(f"{brief(value)} is not a number in ASCII digits (such as 1.5)", param, ctx)
        return float(value)


class BriefChoice(click.Choice):
    """click's Choice, its error showing a long value shortened (it echoed 500 characters)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            if not isinstance(value, str) or len(value) <= 80:
                raise
            names = ", ".join(map(repr, self.choices))
            self.fail(f"{brief(value)} is not one of {names}", param, ctx)


CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    help="The YAML configuration file.",
)
STATE_DIR_OPTION = click.option(
    "--state-dir",
    type=NonEmptyPath(file_okay=False, path_type=Path),
    help="Directory of snapshots and history (overrides daemon.state_dir).",
)
# The commands that use an existing state directory (history and snapshots but retrain)
# find it without a file too.
READ_STATE_DIR_OPTION = click.option(
    "--state-dir",
    type=NonEmptyPath(file_okay=False, path_type=Path),
    help=(
        "Directory of snapshots and history (overrides daemon.state_dir; with neither "
        "this nor --config, KMEANS_MONITOR_STATE_DIR names it)."
    ),
)


def _model_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A MODEL argument is held to the configuration's rule, so both name the same rule."""
    return value if value is None else check_name(value, "model", MODEL_NAME)


MODEL_ARGUMENT = click.argument("model", callback=_model_name)


def _flag_log_level() -> str | None:
    """--log-level when given: it wins over the variable and the file, a bad one included."""
    root = click.get_current_context().find_root()
    if root.get_parameter_source("log_level") is click.core.ParameterSource.DEFAULT:
        return None
    level = root.params.get("log_level")
    return None if level is None else str(level)


def _configured_log_level(settings: Settings) -> None:
    """daemon.log_level (or KMEANS_MONITOR_LOG_LEVEL) applies unless --log-level was given."""
    if _flag_log_level() is None:
        set_log_level(settings.daemon.log_level)


# Exit codes (docs/configuration.md#exit-codes).
EXIT_FAILED = 1  # evaluate: a run failed or the push failed; render --check: stale files
EXIT_USER = 2  # the input, the configuration, an option, a file, the store: fix and retry
EXIT_INTERNAL = 70  # a bug in kmeans-monitor (EX_SOFTWARE of sysexits.h)
# 130: interrupted, SIGINT or SIGTERM (monitor.interrupts.EXIT_INTERRUPTED)
EXIT_PIPE = 141  # stdout's reader went away (`| head`): 128 + SIGPIPE, as shells report it

# What a user can fix: the configuration, the data, a file, an option, the store.
_USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    InvalidInputError,
    SnapshotNotFoundError,
    StoreError,
    SourceError,
    TrainingError,
    OSError,
)


_ERRNO = re.compile(r"\[Errno -?\d+\] ")


def _error_line(exc: BaseException) -> str:
    """A user error as people read it: no errno, no API phrasing of a value check."""
    if isinstance(exc, Mismatch):  # "model: must be ...; got 'x'", not "The 'model' parameter"
        return exc.problem.config()
    if isinstance(exc, OSError) and not isinstance(exc, StoreError) and exc.strerror:
        name = exc.filename
        return f"{exc.strerror}: {shown_path(name)}" if name is not None else exc.strerror
    # An OSError quoted inside another error's text ("cannot open the store at S: ...").
    return _ERRNO.sub("", str(exc))


class _UsageLine(click.UsageError):
    """A bad option or argument as one line, as every other error is: click's own form
    is four (usage, hint, blank, error)."""

    def __init__(self, message: str, command_path: str) -> None:
        super().__init__(message)
        self.command_path = command_path

    def show(self, file: Any = None) -> None:
        message = " ".join(self.format_message().split()).removesuffix(".")
        hint = f"see '{self.command_path} --help'"
        click.echo(f"error: {message} ({hint})", file=file, err=file is None)


def _usage_line(exc: click.UsageError, command_path: str) -> click.UsageError:
    """``exc`` as one line.

    ``command_path`` names the command when click does not say (a missing option value
    is raised by its parser, before the command's context exists)."""
    if isinstance(exc, _UsageLine):
        return exc
    path = exc.ctx.command_path if exc.ctx is not None else command_path
    return _UsageLine(exc.format_message(), path)


class _Commands(click.Group):
    """The command group: every error leaves as a line on stderr and an exit code."""

    group_class = type  # `snapshots` is a group of the same kind

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            # A group alone (`kmeans-monitor`, `kmeans-monitor snapshots`) asks what it
            # can do: it is --help, on stdout with 0, not a usage error (docs/decisions.md).
            return self.make_context(info_name, ["--help"], parent, **extra)
        except click.UsageError as exc:  # an option of this group itself (--log-level)
            path = " ".join(filter(None, [parent.command_path if parent else None, info_name]))
            raise _usage_line(exc, path) from None
        except KeyboardInterrupt:  # not click's "Aborted!" and exit 1
            exit_interrupted()
        except OutputError as exc:  # --help, --version
            _exit_unwritable(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # here a failure is one line, at Python's exit it is not
            return result
        except click.UsageError as exc:  # a command's option, argument or name
            raise _usage_line(
                exc, f"{ctx.command_path} {ctx.invoked_subcommand or ''}".strip()
            ) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            # SIGINT or SIGTERM (monitor.interrupts): run, serve, demo and simulate stop on
            # them with 0 once they serve (run_until_signal); before, and any other
            # command, are cut short.
            exit_interrupted()
        except BrokenPipeError as exc:
            if not _stdout_closed():  # another pipe or socket: an error like any other
                click.echo(f"error: {redact_text(_error_line(exc))}", err=True)
                sys.exit(EXIT_USER)
            # The reader of stdout has gone (`| head`): nothing is wrong, nothing to say.
            _exit_past_stdout(EXIT_PIPE)
        except OutputError as exc:
            _exit_unwritable(exc)
        except Exception as exc:
            if by_signal(exc):  # a C extension's import cut short: an ImportError from it
                exit_interrupted()
            if isinstance(exc, _USER_ERRORS):
                click.echo(f"error: {redact_text(_error_line(exc))}", err=True)
                sys.exit(EXIT_USER)
            trace = "".join(traceback.format_exception(exc)).rstrip()
            click.echo(redact_text(trace), err=True)
            click.echo(
                f"internal error: {redact_text(str(exc)) or type(exc).__name__} (a bug in "
                f"kmeans-monitor {__version__}: please report it with the traceback above)",
                err=True,
            )
            sys.exit(EXIT_INTERNAL)


def _exit_unwritable(exc: OutputError) -> NoReturn:
    """Stdout cannot take the output (a full disk, ``>&-``): one line and exit 2."""
    click.echo(f"error: {exc.strerror}", err=True)
    _exit_past_stdout(EXIT_USER)


def _exit_past_stdout(code: int) -> NoReturn:
    """Exit ``code`` from a stdout that cannot be written: Python's own flush of it at exit
    would fail again ("Exception ignored ... OSError" and exit 120), so it goes to
    /dev/null first."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # no file descriptor (a test's capture): not a pipe
        return False


@contextlib.contextmanager
def _options_named(**options: str) -> Iterator[None]:
    """A value check's problem names the command-line option that gave the value
    (``--refresh: must be ...``), not the parameter it reached (``refresh``)."""
    try:
        yield
    except Mismatch as exc:
        option = options.get(exc.problem.field)
        if option is None:
            raise
        raise Mismatch(replace(exc.problem, field=option)) from None


def _limit_blas(settings: Settings) -> None:
    """Apply daemon.blas_threads to this process's BLAS and OpenMP pools."""
    if settings.daemon.blas_threads > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=settings.daemon.blas_threads)


def _settings(
    config_path: Path | None,
    *,
    listen: str | None = None,
    state_dir: Path | None = None,
    serve: bool = False,
) -> Settings:
    """The checked settings; ``serve`` also checks that the listen address is free."""
    from monitor.bootstrap import load_settings

    # A relative --state-dir is relative to the working directory, as every path on the
    # command line is (and as it is without --config); only the file's own paths are
    # relative to the file.
    settings = load_settings(
        config_path,
        overrides={
            "listen": listen,
            "state_dir": str(state_dir.absolute()) if state_dir else None,
            "log_level": _flag_log_level(),
        },
        serve=serve,
    )
    _configured_log_level(settings)
    return settings


def version_line() -> str:
    """``--version``'s line: the package version, which every build so far reports as
    0.1.0, and the formats that decide what a state directory needs of a build."""
    return (
        f"kmeans-monitor {__version__} "
        f"(history schema {HISTORY_SCHEMA}, snapshot format {SNAPSHOT_FORMAT})"
    )


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_line())
        ctx.exit()


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version, the history schema and the snapshot format, and exit.",
)
@click.option(
    "--log-level",
    type=BriefChoice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="info",  # shown as the choices are, lower case
    show_default=True,
    help="Log verbosity (logs go to stderr).",
)
def main(log_level: str) -> None:
    """Keep k-means models honest in production: drift, quality and job-health SLIs
    exported to Prometheus."""
    setup_logging(log_level)


# ------------------------------------------------------------------------ daemon


@main.command()
@CONFIG_OPTION
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Address of /metrics, the pages, the API and /v1 (default: daemon.listen of the "
    "configuration file).",
)
@STATE_DIR_OPTION
def run(config_path: Path | None, listen: str | None, state_dir: Path | None) -> None:
    """Run the daemon: every model on its schedule, metrics on /metrics.

    SIGTERM or Ctrl-C stops it, once the runs in progress have ended or daemon.shutdown_grace
    has passed; a second one stops it at once (a run left so stores nothing).
    """
    from monitor.bootstrap import build_app, claim_state_dir
    from monitor.daemon import Daemon

    settings = _settings(config_path, listen=listen, state_dir=state_dir, serve=True)
    # Held until the process ends.
    claim_state_dir(settings.daemon.state_dir, option=settings.origin("state_dir"))
    _limit_blas(settings)
    daemon = Daemon(build_app(settings, config_path=config_path))
    daemon.serve_forever()


@main.command()
@CONFIG_OPTION
@click.option(
    "--listen", metavar="HOST:PORT", help="Address of the label API (default serving.listen)."
)
@STATE_DIR_OPTION
def serve(config_path: Path | None, listen: str | None, state_dir: Path | None) -> None:
    """Serve cluster labels from the live models (and their canaries) on /v1/models.

    Follows promotions, rollbacks and pending candidates without a restart (docs/serving.md).
    """
    from monitor.bootstrap import build_serving_app, check_state_dir
    from monitor.config import parse_listen
    from monitor.daemon import LabelServer, run_until_signal

    settings = _settings(config_path, state_dir=state_dir)
    if listen is not None:
        with _options_named(listen="--listen"):
            parse_listen(listen)
    # Made when missing, as `run` makes it: serve may start before the first run.
    snapshots = Path(settings.daemon.state_dir, "snapshots").absolute()
    made = not snapshots.is_dir()
    check_state_dir(settings.daemon.state_dir, settings.named, uses=["snapshots"], make=True)
    _limit_blas(settings)
    app = build_serving_app(settings)
    server = LabelServer(app, listen=listen)
    if not app.serving.catalog.serves_any():  # a mistyped state_dir reads as this too
        click.echo(
            f"warning: no model has a live version in {snapshots}"
            f"{' (made now: it did not exist)' if made else ''}; /readyz answers 503 and "
            "every label request no_model until a daemon with this state_dir trains one",
            err=True,
        )
    run_until_signal(
        server,
        on_started=lambda: click.echo(
            f"serving labels of {len(settings.models)} model(s) at {server.url}/v1/models "
            "(Ctrl-C to stop)"
        ),
    )


def _progress_line(
    result: Evaluation | RunFailure,
    t0: float,
    state_dir: Path,
    *,
    approve: bool = True,
    config: Path | None = None,
    width: int = 10,
) -> str:
    """One run in one line (two when a candidate awaits approval: the command to approve);
    the model's name padded to ``width``, the longest of the names shown together, so
    that their columns line up."""
    from monitor.runner import approve_command, awaiting_approval

    elapsed = f"[{time.monotonic() - t0:5.0f}s]"
    if isinstance(result, RunFailure):
        return f"{elapsed} {result.model:<{width}} FAILED ({result.reason}): {result.message}"
    from monitor.alerting import held_conditions

    s = result.slis
    fields = " ".join(f"{p.name}={s[p.sli]:{p.fmt}}" for p in PROGRESS)
    # Every alert whose condition holds on this run, as a backtest flags them: three SLIs'
    # warning levels were tagged, and a cluster moved or emptied went unsaid.
    held = dict.fromkeys(c.alert for c in held_conditions(result))
    flag = f"[flag: {' '.join(held)}] " if held else ""
    line = (
        f"{elapsed} {result.model:<{width}} v{result.live_version:<3} rows={result.n_rows:<6} "
        f"{fields}  {flag}{result.decision}"
    )
    if approve and awaiting_approval(result):
        command = approve_command(result.model, result.candidate_version, state_dir, config)
        line += f"\n{'':>8} approve with: {command}"
    return line


@main.command()
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Address of /metrics, the pages, the API and /v1 (default 127.0.0.1:9310).",
)
@click.option(
    "--state-dir",
    type=NonEmptyPath(file_okay=False, path_type=Path),
    help=(
        "Directory of snapshots and history (default: a new temporary directory, named and "
        "kept when the demo stops)."
    ),
)
@click.option(
    "--duration",
    type=DecimalNumber(),
    default=0.0,
    help="Stop after this many seconds (default 0: run until Ctrl-C).",
)
def demo(listen: str | None, state_dir: Path | None, duration: float) -> None:
    """Watch two simulated services; one drifts about a minute after its first scored run."""
    from monitor.checks import check_float

    check_float(duration, "--duration", low=0)  # NaN and inf too: 0 runs until Ctrl-C
    with _demo_state_dir(state_dir) as (directory, keep):
        _demo(listen, directory, duration, on_started=keep)


@contextlib.contextmanager
def _demo_state_dir(given: Path | None) -> Iterator[tuple[Path, Callable[[], None]]]:
    """The demo's state directory and the call that keeps it: ``given``, or a new
    temporary one, removed when the demo ends before ``keep`` (before it printed the
    directory's name: a bad --listen, a port in use, a signal)."""
    if given is not None:
        yield given, lambda: None
        return
    made = Path(tempfile.mkdtemp(prefix="kmeans-monitor-demo-"))
    kept: list[bool] = []
    try:
        yield made, lambda: kept.append(True)
    finally:
        if not kept:
            shutil.rmtree(made, ignore_errors=True)


def _demo(
    listen: str | None, state_dir: Path, duration: float, on_started: Callable[[], None]
) -> None:
    """Run the demo on ``state_dir``, held as `run` holds its own (``claim_state_dir``)."""
    from monitor.bootstrap import (
        build_app,
        claim_state_dir,
        events_from_first_score,
        load_settings,
    )
    from monitor.daemon import Daemon
    from monitor.runner import store_options
    from monitor.yamlfile import load_yaml

    t0 = time.monotonic()
    text = resources.files("monitor").joinpath("demo.yaml").read_text("utf-8")
    overrides = {"listen": listen, "state_dir": str(state_dir)}
    settings = load_settings(
        None, raw=load_yaml(text, "demo.yaml"), overrides=overrides, serve=True
    )
    _configured_log_level(settings)
    state = settings.daemon.state_dir
    # Held until the process ends; named as `run` names it: --state-dir (daemon.state_dir).
    claim_state_dir(state, option=settings.origin("state_dir"))
    _limit_blas(settings)
    # The events count from each model's first scored run, whenever its training ends.
    sources: dict[str, object] = {}
    live = events_from_first_score(sources, time.time)
    width = max([10, *(len(m.name) for m in settings.models)])

    wait = _FirstRunWait([m.name for m in settings.models], t0)

    def say(r: Evaluation | RunFailure) -> None:
        wait.ended(r.model)
        click.echo(_progress_line(r, t0, state, width=width))

    app = build_app(settings, on_result=[live, say])
    sources.update(app.sources)
    daemon = Daemon(app)

    def started() -> None:
        click.echo(
            f"kmeans-monitor demo: models {', '.join(m.name for m in settings.models)} on the "
            f"built-in simulator, a run every 5 s.\n"
            f"  metrics:   {daemon.url}/metrics\n"
            f"  models:    {daemon.url}/api/models\n"
            f"  snapshots: kmeans-monitor snapshots list {store_options(state_dir)}\n"
            f"  history:   kmeans-monitor history checkout {store_options(state_dir)}\n"
            "The first run of each model trains it on a simulated day of telemetry and takes "
            "a few seconds on an idle machine; 'checkout' drifts about a minute after its "
            "first line. "
            + ("Ctrl-C to stop." if duration <= 0 else f"Stopping after {duration:g} s.")
        )
        on_started()
        wait.start()

    # One line per run: the demo's own; the daemon's log of the same run stays out.
    with _quiet_run_log(scheduler=True), wait:
        daemon.serve_forever(duration, on_started=started)
    click.echo(f"demo stopped; snapshots and history kept in {state_dir}")


DEMO_WAIT_SECONDS = 15.0  # the demo's first silence while its first runs train (then 30, 60)


class _FirstRunWait:
    """The demo's line while a first run trains, after ``every`` seconds, then twice and
    four times that apart, until each model's first run has ended: on a loaded machine
    the training of "a few seconds" took minutes, and the demo said nothing after its
    banner (150 s at load 10)."""

    def __init__(
        self,
        models: list[str],
        t0: float,
        every: float = DEMO_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._waiting = dict.fromkeys(models)  # in the configuration's order
        self._t0, self._every, self._clock = t0, every, clock
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def ended(self, model: str) -> None:
        """``model``'s run ended (its first, or a later one: then nothing changes)."""
        with self._lock:
            self._waiting.pop(model, None)

    def tick(self) -> bool:
        """Say which first runs still train; False once none does."""
        with self._lock:
            names = list(self._waiting)
        if names:
            load = os.getloadavg()[0]
            click.echo(
                f"[{self._clock() - self._t0:5.0f}s] {', '.join(names)}: the first run is "
                f"still training (load average {load:.1f} on {os.cpu_count() or 1} CPUs)"
            )
        return bool(names)

    def start(self) -> None:
        def beat() -> None:
            wait = self._every
            while not self._stop.wait(wait) and self.tick():
                wait = min(2 * wait, 4 * self._every)  # minutes of lines 15 s apart are noise

        threading.Thread(target=beat, name="demo-first-runs", daemon=True).start()

    def __enter__(self) -> _FirstRunWait:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


@main.command()
@CONFIG_OPTION
@STATE_DIR_OPTION
@click.option("--once", is_flag=True, hidden=True, help="Accepted for old crontabs; the default.")
@click.option("--model", "models", multiple=True, help="Only these models (repeatable).")
@click.option("--push-to", metavar="URL", help="Pushgateway to push the metrics to.")
@click.option("--json", "as_json", is_flag=True, help="Print the evaluations as JSON.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Run for real but write nothing: no snapshot, pointer or history row changes, "
    "under any retrain policy; safe for diagnosis. Prints what each run would have decided.",
)
def evaluate(
    config_path: Path | None,
    state_dir: Path | None,
    once: bool,
    models: tuple[str, ...],
    push_to: str | None,
    as_json: bool,
    dry_run: bool,
) -> None:
    """Batch mode for cron and CronJobs: run models once, optionally push to a Pushgateway.

    Exits 1 when any run failed or the push failed. With --dry-run each run reads its
    window, scores the live model and trains a candidate as usual, but what it would
    store stays in memory.
    """
    from monitor.bootstrap import (
        build_app,
        carry_over_runs,
        claim_state_dir,
        open_dry_run,
        refuse_state_dir,
    )

    if once:
        click.echo("note: --once is the only mode of evaluate; the flag can go", err=True)
    with _quiet_run_log() if dry_run else contextlib.nullcontext():
        settings = _settings(config_path, state_dir=state_dir)
        names = list(dict.fromkeys(models)) or [m.name for m in settings.models]
        for name in names:
            _model(settings, name)
        if dry_run and push_to:
            raise InvalidInputError("--dry-run pushes nothing: drop --push-to")
        if push_to is not None:  # before the runs, like daemon.pushgateway at load
            check_base_url(push_to, "--push-to", example=PUSHGATEWAY_EXAMPLE)
        # A dry run creates nothing there, but a path no run can use fails it too.
        refuse_state_dir(settings.daemon.state_dir, settings.named)
        _limit_blas(settings)
        # One run per model and no server to keep responsive: worker processes would only
        # add their start-up, about 3 s (daemon.run_isolation is the daemon's).
        settings = replace(settings, daemon=replace(settings.daemon, run_isolation="thread"))
        store, history = open_dry_run(settings) if dry_run else (None, None)
        # A dry run stores nothing: it may run beside a daemon, a real one may not.
        claim = None
        if not dry_run:
            option = settings.origin("state_dir")
            claim = claim_state_dir(settings.daemon.state_dir, option=option, advice=_BESIDE)
        app = build_app(settings, store=store, history=history, config_path=config_path)
        try:
            carry_over_runs(app)
            results = _run_each(app, names, settings.daemon.state_dir, as_json, dry=store)
            gateway = push_to or settings.daemon.pushgateway
            push_error = _push(app, gateway, as_json=as_json, dry_run=dry_run)
        finally:
            app.close()
            if claim is not None:
                claim.close()
    if as_json:
        out = [
            _result_json(r) | _read_when(r) | _dry(dry_run) | _k_note(app, r.model) for r in results
        ]
        click.echo(_json_text(out))
    if push_error is not None:
        click.echo(f"error: {push_error}", err=True)
    if push_error is not None or any(isinstance(r, RunFailure) for r in results):
        sys.exit(EXIT_FAILED)


def _model(settings: Settings, name: str) -> None:
    """InvalidInputError naming the configured models when ``name`` is not one of them."""
    try:
        settings.model(name)
    except KeyError as exc:
        raise InvalidInputError(str(exc.args[0])) from None


def _run_each(
    app: Any, names: list[str], state_dir: Path, as_json: bool, *, dry: Any = None
) -> list[Evaluation | RunFailure]:
    """Run each model once, printing a line per run unless the output is JSON.

    ``dry`` is the dry run's overlay store (None for a real run): it says what was saved.
    """
    if dry is not None and not as_json:
        click.echo(
            "dry run: real runs whose snapshots, pointers and history rows stay in memory; "
            f"nothing is written to {state_dir}"
        )
    results = []
    t0 = time.monotonic()
    width = max([10, *map(len, names)])
    for name in names:
        result = app.runner.run_model(name)
        results.append(result)
        if as_json:
            continue
        line = _progress_line(
            result, t0, state_dir, approve=dry is None, config=app.settings.path, width=width
        )
        click.echo(line)
        if dry is not None:
            saved = {s.version for s in dry.saved(name)}
            click.echo(f"{'':>8} dry run: {_would_write(result, saved)}; nothing written")
        if name in app.k_warnings:
            click.echo(f"{'':>8} warning: {app.k_warnings[name]}")
    return results


def _would_write(result: Evaluation | RunFailure, saved: set[int]) -> str:
    """What a dry run's result would have written; ``saved``: the versions it stored."""
    if isinstance(result, RunFailure):
        return "would have recorded the failure"
    v = result.candidate_version
    if v is None or v not in saved:
        return "would have stored no version"
    if result.promoted and result.live_version == v:
        return f"would have stored v{v} as the model's first live version"
    if result.promoted:
        return f"would have stored v{v} and made it live"
    return f"would have stored v{v} as a candidate awaiting approval"


def _push(app: Any, gateway: str | None, *, as_json: bool, dry_run: bool) -> str | None:
    """Push the runs' metrics to a Pushgateway if one is set (never in a dry run); why not."""
    if not gateway:
        return None
    if dry_run:
        click.echo(f"dry run: metrics not pushed to {redact_url(gateway)}", err=True)
        return None
    from monitor.errors import PushError
    from monitor.exporter import push

    try:
        push(gateway, app.registry)
    except PushError as exc:
        return redact_text(f"cannot push the metrics to {redact_url(gateway)}: {exc}")
    if not as_json:
        click.echo(f"pushed metrics to {redact_url(gateway)}")
    return None


def _dry(dry_run: bool) -> dict[str, bool]:
    return {"dry_run": True} if dry_run else {}


def _k_note(app: Any, model: str) -> dict[str, str]:
    """The warning that the configured k is not the live model's, when it is not."""
    return {"k_warning": app.k_warnings[model]} if model in app.k_warnings else {}


@contextlib.contextmanager
def _quiet_run_log(*, scheduler: bool = False) -> Iterator[None]:
    """Leave the terminal to the command's own line per run, unless --log-level was given.

    The runner logs each run at INFO (with an approve command for a candidate that a
    dry run never stored); warnings and errors still show. With ``scheduler``, so do
    only the scheduler's errors: its warnings are about ticks skipped while a run
    overran its interval, which the demo's first runs do by design.
    """
    ctx = click.get_current_context().find_root()
    if ctx.get_parameter_source("log_level") is not click.core.ParameterSource.DEFAULT:
        yield
        return
    quieter = {"monitor": logging.WARNING}
    if scheduler:
        quieter |= {"apscheduler": logging.ERROR, "monitor.schedule": logging.ERROR}
    loggers = {logging.getLogger(name): level for name, level in quieter.items()}
    before = {logger: logger.level for logger in loggers}
    for logger, level in loggers.items():
        logger.setLevel(max(logger.getEffectiveLevel(), level))
    try:
        yield
    finally:
        for logger, level in before.items():
            logger.setLevel(level)


_BESIDE = (
    "evaluate would run its models a second time beside it, and both could promote; "
    "--dry-run runs them without storing anything"
)


def _read_when(result: Evaluation | RunFailure) -> dict[str, Any]:
    """When a run was and, if it got that far, the window it read (backtest --json names
    each of its windows the same way; a failed run has the window's label)."""
    if isinstance(result, RunFailure):
        return {"at": result.at, "window_label": result.window_label}
    return {"at": result.evaluated_at, **_span_json(result.window_start, result.window_end)}


def _span_json(start: float, end: float) -> dict[str, Any]:
    """A window or a range in the JSON outputs: unix seconds, and UTC text."""
    utc = {"start_utc": format_time(start), "end_utc": format_time(end)}
    return {"start": start, "end": end, **utc}


def _result_json(result: Evaluation | RunFailure) -> dict[str, Any]:
    if isinstance(result, RunFailure):
        return {
            "model": result.model,
            "failed": True,
            "reason": result.reason,
            "message": result.message,
        }
    return {
        "model": result.model,
        "failed": False,
        "live_version": result.live_version,
        "candidate_version": result.candidate_version,
        "promoted": result.promoted,
        "decision": result.decision,
        "n_rows": result.n_rows,
        # Every scalar SLI, null where the run left it undefined: stable keys.
        "slis": {key: result.slis.get(key) for key in SCALAR} | dict(result.slis),
        FEATURE_PSI: dict(result.feature_psi),
        "thresholds": dict(result.thresholds),
        "phase_seconds": dict(result.phase_seconds),
    }


@main.command("check-config")
@click.argument("config_file", type=NonEmptyPath(dir_okay=False, path_type=Path))
def check_config(config_file: Path) -> None:
    """Validate a configuration file; list every problem with its model and field.

    Everything `run` would refuse is checked: the schedules by the scheduler's parser,
    the sources' credential and certificate files, the web configuration file, that
    the listen address resolves, is on this host and is free, and that the state
    directory's snapshots are a directory and its history a file, and that it can be
    made or written in. A state directory this user may not write in is a warning: the
    daemon may run as another user.
    """
    from monitor.bootstrap import (
        descriptor_warnings,
        file_mode_warnings,
        load_settings,
        web_config_warnings,
    )

    try:
        settings = load_settings(
            config_file, overrides={"log_level": _flag_log_level()}, serve=True, probe=True
        )
    except ConfigError as exc:
        click.echo(f"{shown_path(config_file)}: {len(exc.problems)} problem(s)", err=True)
        for p in exc.problems:
            click.echo(f"  - {redact_text(p)}", err=True)
        sys.exit(EXIT_USER)
    _configured_log_level(settings)
    click.echo(
        f"{config_file}: OK, {len(settings.models)} model(s): "
        + ", ".join(m.name for m in settings.models)
    )
    warnings = [
        *_source_warnings(settings),
        *_reference_warnings(settings),
        *_state_warnings(settings, config_file),
        *web_config_warnings(settings, time.time()),
        *file_mode_warnings(settings),
        *descriptor_warnings(settings),
    ]
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def _source_warnings(settings: Settings) -> list[str]:
    """A files source's directory that is not there (from here), or that cannot be
    listed: every run would fail (helper-77: check-config said OK, then each run failed
    as source_unavailable; fuzz91: one of mode 000 said OK too)."""
    found = []
    for m in settings.models:
        path = getattr(m.source.options, "path", None) if m.source.kind == "files" else None
        if not isinstance(path, str):
            continue
        if not Path(path).is_dir():
            found.append(
                f"model {m.name!r}: source.path {shown_path(path)} is not a directory (read from "
                f"{Path.cwd()}): every run fails as source_unavailable until it is"
            )
            continue
        try:
            with os.scandir(path):
                pass
        except OSError as exc:
            found.append(
                f"model {m.name!r}: source.path {shown_path(path)} cannot be listed "
                f"({exc.strerror}): every run fails as source_unavailable until it can"
            )
    return found


def _reference_warnings(settings: Settings) -> list[str]:
    """A calibrated model whose reference period holds fewer windows than the calibration
    measures the spread between (its thresholds then come from rows resampled within
    them): helper-86's one-window reference flagged the very file it was trained on."""
    from monitor.core.calibration import MIN_BLOCKS
    from monitor.durations import format_duration
    from monitor.pipeline.reference import period_windows

    found = []
    for m in settings.models:
        count = period_windows(m, time.time())[1]
        if m.thresholds.mode != "fixed" and count < MIN_BLOCKS:
            found.append(
                f"model {m.name!r}: its reference period holds {count} window(s) of "
                f"{format_duration(m.window)}; with fewer than {MIN_BLOCKS} the thresholds "
                "come from rows resampled within them, blind to how windows differ, and "
                "an unchanged stream can flag: give it at least "
                f"{format_duration(MIN_BLOCKS * m.window)} (reference: {{window: ...}})"
            )
    return found


def _state_warnings(settings: Settings, config_file: Path) -> list[str]:
    """What the state directory, when there is one, says against the configuration."""
    from monitor.bootstrap import (
        k_mismatches,
        live_key_problems,
        open_store,
        state_dir_unwritable,
        unconfigured_state,
        unencrypted_versions,
    )

    found = []
    unwritable = state_dir_unwritable(Path(settings.daemon.state_dir))
    if unwritable is not None:  # a problem for run as this user; not, perhaps, as the daemon's
        found.append(settings.named(f"daemon.state_dir: {unwritable}: run as this user would stop"))
    root = Path(settings.daemon.state_dir) / "snapshots"
    if not root.is_dir():
        return found
    try:
        store = open_store(settings.daemon.state_dir, settings.store, config=settings.path)
    except (ConfigError, InvalidInputError, StoreError) as exc:
        return [*found, f"cannot read the snapshots in {root}: {exc}"]
    mismatches = k_mismatches(settings, store, config_file).values()
    keys = [*live_key_problems(settings, store), *unencrypted_versions(settings, store)]
    return [*found, *keys, *mismatches, *unconfigured_state(settings, store)]


# ------------------------------------------------------------------------ backtest


@main.command()
@CONFIG_OPTION
@click.option(
    "--from", "start", required=True, metavar="TIME", help="Start: ISO-8601 or unix seconds."
)
@click.option("--to", "end", required=True, metavar="TIME", help="End (exclusive), same forms.")
@click.option("--model", "models", multiple=True, help="Only these models (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print every window as JSON.")
@click.option(
    "--plot",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    help="Also draw each SLI against its threshold over time (FILE.png or FILE.svg).",
)
def backtest(
    config_path: Path | None,
    start: str,
    end: str,
    models: tuple[str, ...],
    as_json: bool,
    plot: Path | None,
) -> None:
    """Replay history through the pipeline: per window the SLIs, thresholds and alerts.

    Time comes from the data (each run reads the window before its scheduled time);
    the replay starts from no model and writes nothing to the state directory.
    """
    from monitor import plots
    from monitor.bootstrap import backtest_runs, replay_runs
    from monitor.pipeline.replay import ReplayInterrupted

    settings = _settings(config_path)
    t1, t2 = _option_time(start, "--from"), _option_time(end, "--to")
    names = list(dict.fromkeys(models)) or [m.name for m in settings.models]
    if plot is not None:
        _check_plot(plot)
        if len(names) > 1:
            raise InvalidInputError(
                f"--plot draws one model: add --model (configured: {', '.join(names)})"
            )
    planned, refused = [], []
    for n in names:  # each refused before any replay: none finished is lost to another
        try:
            planned.append(backtest_runs(settings, n, t1, t2))
        except InvalidInputError as exc:
            refused.append(str(exc).removeprefix("backtest: "))
    if refused:  # once each: a range refused for every model is refused once (helper-76)
        raise InvalidInputError("backtest: " + "; ".join(dict.fromkeys(refused)))
    now = time.time()
    if t2 > now:  # a mistyped year replays windows no source holds yet, each failing
        click.echo(
            f"warning: --to ({format_time(t2)}) is after now ({format_time(now)}): the "
            "windows after now hold only rows timed in the future",
            err=True,
        )
    _limit_blas(settings)
    replays = []
    try:
        for runs in planned:
            with _backtest_progress(runs[0].name) as progress:
                replays.append(
                    replay_runs(settings, runs, on_result=progress, on_step=progress.step)
                )
    except ReplayInterrupted as exc:
        # What had finished is printed before the command ends as interrupted: a replay
        # stopped an hour in must not lose the hour.
        # Even with no window done: the cut model is in the output, marked interrupted.
        replays.append(exc.partial)
        click.echo(
            f"backtest {exc.partial.model}: interrupted after {len(exc.partial.windows)} of "
            f"{exc.total} windows; the windows replayed so far follow",
            err=True,
        )
        _show_replays(replays, as_json, partial=exc.partial)
        exit_interrupted()
    _show_replays(replays, as_json)
    if plot is not None:
        _write_plot(plot, lambda: plots.plot_replay(replays[0], plot))
    if any(r.failures for r in replays):  # as evaluate: CI tells it from a clean replay
        sys.exit(1)


def _show_replays(replays: list[Any], as_json: bool, *, partial: Any = None) -> None:
    """The replays as text or JSON; ``partial``, the last of them, was cut short."""
    if as_json:
        click.echo(
            _json_text(
                [_replay_json(r) | ({"interrupted": True} if r is partial else {}) for r in replays]
            )
        )
        return
    for r in replays:
        _print_replay(r)


def _check_plot(plot: Path) -> None:
    """Refuse a --plot file that could not be written before any work is done: its
    format, matplotlib, a directory to write it in, and the file opened for writing
    there (a read-only or pseudo file system, a name too long: found after a whole
    replay before). A file the probe made is removed; an existing one is not changed."""
    from monitor import plots

    plots.plot_format(plot)
    plots.require_matplotlib()
    if not plot.parent.is_dir():
        raise InvalidInputError(
            f"--plot {shown_path(plot)}: there is no directory {shown_path(plot.parent)}"
        )
    existed = os.path.lexists(plot)
    try:
        with open(plot, "ab"):
            pass
    except OSError as exc:
        raise InvalidInputError(
            f"--plot {shown_path(plot)}: cannot write it: {exc.strerror or exc}"
        ) from None
    if not existed:
        plot.unlink(missing_ok=True)


def _write_plot(plot: Path, draw: Callable[[], None]) -> None:
    """Draw the plot after the results are printed: a file that cannot be written (a full
    disk, an immutable directory) is one line naming --plot, and loses no result."""
    try:
        draw()
    except OSError as exc:
        raise InvalidInputError(
            f"--plot {shown_path(plot)}: cannot write it: {exc.strerror or exc}"
        ) from None
    click.echo(f"plot written to {plot}", err=True)


PROGRESS_SECONDS = 30.0  # the longest a long replay goes without a progress line


class _BacktestProgress:
    """Progress on stderr: a line at every tenth of a replay of 50 runs or more, and at
    least every ``PROGRESS_SECONDS`` (a tenth of 100,000 runs takes minutes), during a
    run too: a first run reads the reference period and trains, minutes with no run
    finished (h140: 46 s of a 24-window reference read said nothing). A step that goes
    on (the first model's training, one slow reference window) is said again with its
    seconds so far, by a thread of its own while ``with`` this; the training said nothing
    from its start to its end, up to minutes."""

    def __init__(self, model: str, clock: Callable[[], float]) -> None:
        self._model, self._clock = model, clock
        self._last = clock()
        self._step: tuple[str, float] | None = None  # what a first run does, since when
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def __call__(self, i: int, n: int, result: Evaluation | RunFailure) -> None:
        """Run ``i`` of ``n`` finished."""
        tenth = n >= 50 and (i + 1) * 10 // n != i * 10 // n
        with self._lock:
            self._step = None
            self._say(f"{i + 1}/{n} windows", force=tenth)

    def step(self, i: int, n: int, text: str) -> None:
        """Run ``i`` of ``n``, a first run, is doing ``text``."""
        with self._lock:
            text = f"run {i + 1}/{n}: {text}"
            self._step = (text, self._clock())
            self._say(text)

    def tick(self) -> None:
        """Say the step going on again when nothing was said for ``PROGRESS_SECONDS``."""
        with self._lock:
            if self._step is not None:
                text, since = self._step
                self._say(f"{text} (still at it, {self._clock() - since:.0f} s)")

    def __enter__(self) -> _BacktestProgress:
        def beat() -> None:
            while not self._stop.wait(min(1.0, max(0.05, PROGRESS_SECONDS / 4))):
                self.tick()

        threading.Thread(target=beat, name="backtest-progress", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _say(self, text: str, *, force: bool = False) -> None:
        now = self._clock()
        if force or now - self._last >= PROGRESS_SECONDS:
            click.echo(f"backtest {self._model}: {text}", err=True)
            self._last = now


def _backtest_progress(
    model: str, clock: Callable[[], float] = time.monotonic
) -> _BacktestProgress:
    return _BacktestProgress(model, clock)


def _cell(value: float | None, threshold: float | None) -> str:
    """``value/threshold``, starred when past it; ``-`` for what the run did not have."""
    shown = "-" if value is None else _number(value)
    return f"{shown}/{'-' if threshold is None else _number(threshold)}"


def _number(value: float) -> str:
    """Three decimals, as a table cell holds them; beyond a million (a threshold no run
    reaches, values of an unscaled feature near 1e150) in three significant digits."""
    return f"{value:.3f}" if abs(value) < 1e6 else f"{value:.3g}"


def _replay_line(w: Any, ms: bool = False) -> str:
    """One window of a backtest in one line (``ms``: its time to the millisecond)."""
    from monitor.alerting import COMPARED, past

    when = _replay_ts(w.end, ms)
    if w.failed:
        r = w.result
        return f"{when}  {'-':>6}  FAILED ({r.reason}): {r.message}  " + _alert_text(w)
    ev = w.result
    cells = []
    for sli, key in COMPARED:
        value, threshold = ev.slis.get(sli), ev.thresholds.get(key)
        cell = _cell(value, threshold)
        if value is not None and threshold is not None and past(value, threshold, sli):
            cell += "*"
        cells.append(f"{cell:<{_width(sli)}}")
    return f"{when}  {ev.n_rows:>6}  {'  '.join(cells)}  {_alert_text(w)}".rstrip()


def _width(sli: str) -> int:
    return max(len(sli), 13)


def _alert_text(w: Any) -> str:
    """The alerts of a window: those that held (the flag), those firing, the page."""

    def names(conditions: Any) -> str:
        # The critical level implies the warning one: show each alert instance once.
        worst: dict[tuple[str, str | None], bool] = {}
        for c in conditions:
            key = (c.alert, c.feature)
            worst[key] = worst.get(key, False) or c.severity == "critical"
        return " ".join(
            a + (f"({f})" if f else "") + ("!" if crit else "") for (a, f), crit in worst.items()
        )

    parts = []
    if w.held:
        parts.append("flag: " + names(w.held))
    if w.firing:
        parts.append("firing: " + names(w.firing))
    if w.page:
        parts.append("PAGE")
    return " | ".join(parts)


def _print_replay(r: Any) -> None:
    from monitor.alerting import COMPARED

    # Milliseconds only when a time has a fraction (a --from of 00:00:00.5): cut to the
    # second, the text disagreed with the JSON. Other commands' times keep ``_ts``.
    ms = any(t % 1 for t in (r.start, r.end, *(w.end for w in r.windows)))
    start, end = _replay_ts(r.start, ms), _replay_ts(r.end, ms)
    click.echo(
        f"model {r.model}: {len(r.windows)} window(s) from {start} to {end} UTC; "
        "each SLI as value/threshold, * where an alert condition held, ! critical"
    )
    header = "  ".join(f"{sli:<{_width(sli)}}" for sli, _ in COMPARED)
    click.echo(f"{'time (UTC)':<{23 if ms else 19}}  {'rows':>6}  {header}  alerts")
    for w in r.windows:
        click.echo(_replay_line(w, ms))
    click.echo(_replay_summary(r))


def _replay_ts(value: float, ms: bool) -> str:
    """A backtest's time as ``_ts`` writes it, with ``ms`` its milliseconds too."""
    if not ms:
        return _ts(value)
    at = datetime.fromtimestamp(value, UTC)
    return f"{_ts(value)}.{at.microsecond // 1000:03d}"


def _replay_summary(r: Any) -> str:
    alerts = ", ".join(f"{name}={n}" for name, n in r.alerts().items()) or "none"
    return (
        f"summary {r.model}: {len(r.windows)} windows, {r.flags} flags, {r.pages} pages, "
        f"{r.failures} failed runs; alerts that would have fired: {alerts}"
    )


def _replay_json(r: Any) -> dict[str, Any]:
    return {
        "model": r.model,
        **_span_json(r.start, r.end),
        "windows": [_window_json(w) for w in r.windows],
        "summary": {
            "windows": len(r.windows),
            "flags": r.flags,
            "pages": r.pages,
            "failed": r.failures,
            "alerts": r.alerts(),
        },
    }


def _window_json(w: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": w.index,
        **_span_json(w.start, w.end),
        "at": w.end,  # the run's time, as evaluate --json names it
        **_result_json(w.result),
        "conditions": [_condition_json(c) for c in w.held],
        "firing": [_condition_json(c) for c in w.firing],
        "flag": w.flag,
        "page": w.page,
        "flagged_runs": w.flagged_runs,
    }
    for key in ("slis", FEATURE_PSI, "thresholds"):
        if key in out:
            out[key] = {name: _finite(v) for name, v in out[key].items()}
    return out


def _condition_json(c: Any) -> dict[str, Any]:
    return {
        "alert": c.alert,
        "severity": c.severity,
        "sli": c.sli or None,
        "feature": c.feature,
        "value": _finite(c.value),
        "threshold": _finite(c.threshold),
        "reason": c.reason or None,
    }


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: they become null (as an undefined value is)."""
    return float(value) if value is not None and math.isfinite(value) else None


def _json_text(data: Any) -> str:
    """``data`` as indented JSON, every NaN or infinity in it null (json.dumps would
    write ``Infinity``, which no JSON parser is bound to read)."""

    def plain(value: Any) -> Any:
        if isinstance(value, float):
            return _finite(value)
        if isinstance(value, dict):
            return {key: plain(v) for key, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return json.dumps(plain(data), indent=2, allow_nan=False)


# ------------------------------------------------------------------------ snapshots


@main.group()
def snapshots() -> None:
    """List, show, diff, approve, reject, roll back and retrain model versions."""


def _open_store(config_path: Path | None, state_dir: Path | None) -> Any:
    """The store of --config (with its key and retention) or of --state-dir."""
    from monitor.bootstrap import check_state_dir, open_store

    settings, directory, named = _state_dir(config_path, state_dir, "the snapshots")
    check_state_dir(directory, named, uses=["snapshots"])
    if settings is None:
        return open_store(directory)
    return open_store(directory, settings.store, config=settings.path)


def _state_dir(
    config_path: Path | None, state_dir: Path | None, what: str
) -> tuple[Settings | None, Path, Callable[[str], str]]:
    """The settings of --config (None without it), the state directory they name (or
    --state-dir, or else KMEANS_MONITOR_STATE_DIR, as they override the file's), and
    what names a problem of it by where it came from (``Settings.named``:
    ``--state-dir (daemon.state_dir): ...``). A usage error, about finding ``what``,
    when none of them gives one."""
    from monitor.config import daemon_given, given_log_level, named_by_origin

    if config_path is not None:
        settings = _settings(config_path, state_dir=state_dir)
        return settings, Path(settings.daemon.state_dir), settings.named
    # Without a file, KMEANS_MONITOR_LOG_LEVEL applies as it does over a file's log_level
    # (it was read only by `load`, which these commands skip without --config).
    if _flag_log_level() is None and (level := given_log_level(None, None)) is not None:
        set_log_level(level)
    # Without a file, a relative directory (option or variable) is relative to the
    # working directory.
    overrides = {"state_dir": None if state_dir is None else str(state_dir)}
    given = daemon_given(None, overrides).get("state_dir")
    if given is None:
        raise click.UsageError(
            f"give --config FILE or --state-dir DIR (or set KMEANS_MONITOR_STATE_DIR) "
            f"to find {what}"
        )
    return None, Path(given), lambda p: named_by_origin(p, env=None, overrides=overrides)


def _refuse_other_features(
    config_path: Path | None, state_dir: Path | None, store: Any, model: str, version: int | None
) -> None:
    """InvalidInputError when ``version`` reads other features than the configured model:
    made live, every run would fail on the schema (and the label API would expect the
    old features). Checked only with --config, against a configured model; ``version``
    None is a rollback's default, the live version's parent (t12: refused with --to, the
    same move without it made a model of the old features live, exit 0)."""
    if config_path is None:
        return
    from monitor.bootstrap import retrain_command

    settings = _settings(config_path, state_dir=state_dir)
    configured = next((m for m in settings.models if m.name == model), None)
    if configured is None:
        return
    # From the manifest (no arrays read: approving races the daemon's next candidate).
    try:
        infos = store.list_versions(model)
        if version is None:
            live = store.live_version(model)
            version = next((i.parent_version for i in infos if i.version == live), None)
        info = next((i for i in infos if i.version == version), None)
    except Exception:  # a store that cannot be listed: the store's own call says why
        return
    features = None if info is None else info.features
    if features is not None and features != tuple(configured.features):
        command = retrain_command(model, settings.path, settings.daemon.state_dir)
        raise InvalidInputError(
            f"v{version} of model {model!r} reads the features {list(features)}, the "
            f"configuration {list(configured.features)}: its runs would all fail. Change "
            f"the configuration back first, or train a version on the configured features: "
            f"{command}"
        )


def _ts(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


class VersionType(click.ParamType):
    """A snapshot version as people write it: 3, v3 or the directory name v000003."""

    name = "VERSION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        digits = text[1:] if text[:1] in ("v", "V") else text
        # ASCII digits only: str.isdigit takes "²" (which int() refuses) and "٣" (which
        # it reads as 3); and few enough of them for int() to read (versions count runs).
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 18) or int(digits) < 1:
            self.fail(f"{brief(value)} is not a version such as 3, v3 or v000003", param, ctx)
        return int(digits)


VERSION = VersionType()


class ReasonType(click.ParamType):
    """A --reason: one line of the model's record, so its whitespace runs (a newline from
    `$(cat note)`, a tab) become one space; a control character (a terminal escape that
    would rewrite what `snapshots log` shows) and a text longer than the record keeps are
    refused rather than kept in part."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = " ".join(str(value).split())
        if not text.isprintable():
            self.fail(f"{brief(value)} holds a control character", param, ctx)
        if len(text) > REASON_CHARS:
            self.fail(f"is {len(text):,} characters; the record keeps {REASON_CHARS:,}", param, ctx)
        return text


REASON_OPTION = click.option(
    "--reason",
    type=ReasonType(),
    metavar="TEXT",
    help=f"Why (one line, at most {REASON_CHARS:,} characters), kept with who and when in "
    "the model's record (`snapshots log`).",
)


def _actor(reason: str | None) -> Actor:
    """Who runs this command, as the store's events record it: the account of the
    process's real uid. Not LOGNAME or USER (``getpass.getuser``): anyone sets those to
    any name, a newline in it included; a name that is not one line is the uid too."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:  # no account for the uid (a container's bare uid)
        name = ""
    if not name or not name.isprintable():
        name = f"uid {uid}"
    return Actor(name, reason or None)


class WholeNumber(click.IntRange):
    """An integer option in ASCII digits (a sign allowed), then checked against its range.

    click's own INT takes what int() takes: "٣" (Arabic-Indic) or "３" (full-width) ran
    choose-k as 3, where durations and versions refuse such digits. A value of thousands
    of digits was echoed whole, in click's error or in a later one (``--sample ... cannot
    hold --k-max ...``): it is shown shortened, and at most 18 digits are read.
    """

    most_digits = 18

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            digits = value.strip().removeprefix("-").removeprefix("+")
            if not (digits.isascii() and digits.isdigit()):
                self.fail(f"{brief(value)} is not a whole number in ASCII digits", param, ctx)
            if len(digits) > self.most_digits:
                self.fail(
                    f"{brief(value)} is too large (more than {self.most_digits} digits)",
                    param,
                    ctx,
                )
        return super().convert(value, param, ctx)


@snapshots.command("list")
@CONFIG_OPTION
@READ_STATE_DIR_OPTION
@click.argument("model", required=False, callback=_model_name)
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
@click.option(
    "--verify",
    is_flag=True,
    help=(
        "Also read every version's arrays and check them as loading does (sha256, "
        "decryption, checksum); exit 1 when any version is CORRUPT (not NEWER: "
        "written by a newer kmeans-monitor)."
    ),
)
def snapshots_list(
    config_path: Path | None,
    state_dir: Path | None,
    model: str | None,
    as_json: bool,
    verify: bool,
) -> None:
    """List the versions of every model (or of MODEL) with their state: live, pending, retired.

    Corrupt versions (and those this store cannot use: encrypted, without its key) are
    listed and marked; a broken live or pending pointer is a warning line. The listing reads the
    manifests only, so damage of the arrays that keeps their size passes it; --verify
    reads the arrays too, marks a version that fails CORRUPT with why, and exits 1 when
    any version is marked. A version written by a newer kmeans-monitor is marked NEWER:
    upgrade to use it.
    """
    from monitor.bootstrap import version_summary

    store = _open_store(config_path, state_dir)
    models = [model] if model else store.models()
    listed = {name: store.list_versions(name) for name in models}
    warnings = [w for name in models for w in _pointer_warnings(store, name)]
    if model and not listed[model]:
        raise SnapshotNotFoundError(f"model {model!r} has no snapshots in {store.root}")
    if verify:
        listed = {name: [_verified(store, i) for i in infos] for name, infos in listed.items()}
    if as_json:
        out = {name: [version_summary(i) for i in infos] for name, infos in listed.items()}
        click.echo(_json_text(out))
    else:
        click.echo(
            f"{'model':<16} {'version':>7}  {'state':<8} {'created (UTC)':<19}  {'k':>3} "
            f"{'rows':>8}  {'parent':>6}  reason"
        )
        for infos in listed.values():
            for i in infos:
                click.echo(_version_line(i, store.signs, store.encrypts))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if verify and _any_damaged(listed):
        sys.exit(1)


def _any_damaged(listed: dict[str, list[Any]]) -> bool:
    """Whether a listed version is corrupt: one written by a newer kmeans-monitor is not."""
    return any(i.corrupt and not i.newer_format for infos in listed.values() for i in infos)


def _verified(store: Any, info: Any) -> Any:
    """``info``, marked corrupt with why when loading its version (every check ``show``
    makes) fails."""
    if info.corrupt:
        return info
    try:
        store.load(info.model, info.version)
    except SnapshotNotFoundError:
        return info  # pruned since it was listed
    except StoreError as exc:
        return replace(info, corrupt=str(exc))
    return info


def _pointer_warnings(store: Any, model: str) -> list[str]:
    """Why the model's live or pending pointer cannot be read, each with its fix. A
    corrupt PENDING failed every run while the listing showed nothing wrong (helper-93)."""
    found = []
    for read in (store.live_version, store.pending_version):
        try:
            read(model)
        except StoreError as exc:
            found.append(str(exc))
    return found


def _version_line(i: Any, signs: bool, encrypts: bool) -> str:
    """One version; under a store key, an unsigned one says so (only --json did, while
    security.md sends the user here to find them before require_signature; helper-83),
    and under ``encrypt`` one stored in clear (written before it was on; h146)."""
    if i.corrupt:
        label = "NEWER" if i.newer_format else "CORRUPT"
        return f"{i.model:<16} {i.version:>7}  {label:<8} {i.corrupt}"
    created = _ts(i.created_at) if i.created_at is not None else "?"
    parent = "-" if i.parent_version is None else str(i.parent_version)
    marks = "[unsigned] " if signs and not i.signed else ""
    marks += "[unencrypted] " if encrypts and not i.encrypted else ""
    return (
        f"{i.model:<16} {i.version:>7}  {i.state:<8} {created:<19}  {i.k:>3} "
        f"{i.n_rows:>8}  {parent:>6}  {marks}{i.reason}"
    )


@snapshots.command("show")
@CONFIG_OPTION
@READ_STATE_DIR_OPTION
@MODEL_ARGUMENT
@click.argument("version", type=VERSION, required=False)
def snapshots_show(
    config_path: Path | None, state_dir: Path | None, model: str, version: int | None
) -> None:
    """Show one version (the live one by default) as JSON, with its state and the events
    that acted on it (who approved, rejected, rolled back to or promoted it, and when)."""
    from monitor.bootstrap import snapshot_summary
    from monitor.runner import event_summary

    store = _open_store(config_path, state_dir)
    snap = store.load(model, version)
    state = next(i.state for i in store.list_versions(model) if i.version == snap.version)
    summary = snapshot_summary(snap, state=state)
    events = store.events(model)
    summary["events"] = [event_summary(e) for e in events if e.version == snap.version]
    click.echo(_json_text(summary))


@snapshots.command("log")
@CONFIG_OPTION
@READ_STATE_DIR_OPTION
@MODEL_ARGUMENT
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON.")
def snapshots_log(
    config_path: Path | None, state_dir: Path | None, model: str, as_json: bool
) -> None:
    """Who approved, rejected, rolled back, promoted or made pending each version of MODEL.

    One line per event, oldest first: the time (UTC), the action, the version it acted
    on, the live version before and after, who (the account of the command's uid, or the
    daemon's retrain policy) and the --reason given. A store written before events were
    recorded has none before that.
    """
    from monitor.runner import before_the_log, event_summary, log_began_late

    store = _open_store(config_path, state_dir)
    events = store.events(model)
    if as_json:
        click.echo(_json_text({"model": model, "events": [event_summary(e) for e in events]}))
        return
    # The log began after the model's first version (a store from before it, upgraded):
    # its earlier moves are not in it (helper-161: "no approvals ... recorded" where an
    # older build had approved, rejected and rolled back).
    late = log_began_late(events, bool(store.versions(model)))
    before = f"; {before_the_log(model)}"
    if not events:
        click.echo(
            f"model {model}: no approvals, rejections, rollbacks or promotions recorded"
            + (before if late else "")
        )
        return
    if late:
        click.echo(f"model {model}: the log begins at {_ts(events[0].at)} UTC{before}")
    for e in events:
        click.echo(_event_line(e))


def _event_line(e: StoreEvent) -> str:
    """One event as `snapshots log` prints it."""
    before = "none" if e.from_version is None else f"v{e.from_version}"
    after = "none" if e.to_version is None else f"v{e.to_version}"
    # A reason or actor the CLI did not write (a hand-edited record) prints as one line.
    reason = (
        "" if e.reason is None else f": {e.reason if e.reason.isprintable() else brief(e.reason)}"
    )
    return (
        f"{_ts(e.at)} UTC  {e.action:<9}  v{e.version:<5}  live {before} -> {after}  "
        f"by {e.actor if e.actor.isprintable() else brief(e.actor)}{reason}"
    )


@snapshots.command("diff")
@CONFIG_OPTION
@READ_STATE_DIR_OPTION
@MODEL_ARGUMENT
@click.argument("a", type=VERSION)
@click.argument("b", type=VERSION)
def snapshots_diff(
    config_path: Path | None, state_dir: Path | None, model: str, a: int, b: int
) -> None:
    """Matched centroid drift and feature PSI from version A to version B."""
    from monitor.bootstrap import diff_snapshots

    store = _open_store(config_path, state_dir)
    sa, sb = store.load(model, a), store.load(model, b)
    d = diff_snapshots(sa, sb)
    cd = d.centroid_drift
    click.echo(
        f"model {model}: v{a} (k={sa.k}) -> v{b} (k={sb.k}), distances in v{a}'s scaled units"
    )
    click.echo(f"centroid drift: mean {cd.mean:.4f}, max {cd.max:.4f}")
    for (r, c), dist in zip(cd.pairs, cd.distances, strict=True):
        click.echo(f"  v{a} cluster {r:>3} -> v{b} cluster {c:>3}: {dist:.4f}")
    for r in cd.vanished:
        click.echo(f"  v{a} cluster {r:>3} vanished (no match in v{b})")
    for c in cd.appeared:
        click.echo(f"  v{b} cluster {c:>3} appeared (no match in v{a})")
    click.echo(f"label-share PSI: {d.label_psi:.4f}")
    click.echo(f"feature PSI of v{b}'s training sample on v{a}'s bins:")
    for feature, value in sorted(d.feature_psi.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {feature:<32} {value:.4f}")


@snapshots.command("rollback")
@CONFIG_OPTION
@READ_STATE_DIR_OPTION
@MODEL_ARGUMENT
@click.option(
    "--to", "to", type=VERSION, help="Version to make live (default: the live one's parent)."
)
@REASON_OPTION
def snapshots_rollback(
    config_path: Path | None,
    state_dir: Path | None,
    model: str,
    to: int | None,
    reason: str | None,
) -> None:
    """Make an older (or a pending) version live at once; a running daemon follows.

    Without --to, the live version's parent; when it is no longer stored, nothing
    changes and the error names the versions --to can choose. With --to it also
    repairs a missing or broken live pointer, and warns on stderr when the version was
    never live as the store records it (a rejected candidate, for one).
    """
    store = _open_store(config_path, state_dir)
    _refuse_other_features(config_path, state_dir, store, model, to)
    never_live = None
    if to is not None:
        never_live = _never_live(store, model, to, _scored(config_path, state_dir, model))
    before, after = store.rollback(model, to, by=_actor(reason))
    if before == after:
        click.echo(f"model {model}: v{after} is already live; nothing changed.")
        return
    was = "none" if before is None else f"v{before}"
    click.echo(f"model {model}: live {was} -> v{after}. A running daemon follows within seconds.")
    if never_live is not None:
        click.echo(f"warning: model {model}: {never_live}; it is live now", err=True)


_T = TypeVar("_T")


def _from_history(directory: Path, read: Callable[[Any], _T]) -> _T | None:
    """What ``read`` takes from the state directory's run history, opened read-only;
    None when there is no history it can read (the command goes on without it)."""
    from monitor.bootstrap import HISTORY_FILE, open_history

    if not (directory / HISTORY_FILE).is_file():
        return None
    try:
        with open_history(directory) as history:
            return read(history)
    except StoreError:
        return None


def _scored(config_path: Path | None, state_dir: Path | None, model: str) -> set[int] | None:
    """The versions of ``model`` the runs of the state directory's history scored or
    promoted (``History.live_versions``); None when there is no history it can read."""
    directory = _state_dir(config_path, state_dir, "the history")[1]
    return _from_history(directory, lambda h: h.live_versions(model))


def _never_live(store: Any, model: str, version: int, scored: set[int] | None) -> str | None:
    """What ``version`` was when it is a retired version with no sign of having been live
    (``ports.was_live``: none in the store or its events, none in the runs ``scored``,
    None when the history cannot be read): a candidate rejected or replaced while
    pending, or one made live and moved off before a run scored it or a version was
    trained from it in a store that recorded no events then. None otherwise."""
    from monitor.ports import made_live, was_live

    try:
        infos = store.list_versions(model)
    except StoreError:
        return None  # the rollback itself says what is wrong with the store
    info = next((i for i in infos if i.version == version), None)
    live_once = was_live(infos, {*(scored or ()), *made_live(store, model)})
    if info is None or info.state != "retired" or version in live_once:
        return None
    trained = "" if info.created_at is None else f", trained {_ts(info.created_at)} UTC"
    runs = (
        " (no run history could be read to say whether a run scored it)"
        if scored is None
        else ", nor scored by a run the history holds"
    )
    return (
        f"v{version} ({info.reason or 'a'} candidate{trained}) was never live as the store "
        f"records it{runs}: rejected or replaced while pending, or made live and rolled "
        "back before a run scored it or a version was trained from it"
    )


@snapshots.command("approve")
@CONFIG_OPTION
@READ_STATE_DIR_OPTION
@MODEL_ARGUMENT
@click.argument("version", type=VERSION, required=False)
@REASON_OPTION
def snapshots_approve(
    config_path: Path | None,
    state_dir: Path | None,
    model: str,
    version: int | None,
    reason: str | None,
) -> None:
    """Make the pending candidate of MODEL live (VERSION, if given, must be that candidate)."""
    store = _open_store(config_path, state_dir)
    before = _live_or_none(store, model)
    pending = store.pending_version(model) if version is None else version
    if pending is not None:  # none: the store's approve says so
        _refuse_other_features(config_path, state_dir, store, model, pending)
    approved = store.approve(model, version, by=_actor(reason))
    was = "none" if before is None else f"v{before}"
    click.echo(
        f"model {model}: approved v{approved}; live {was} -> v{approved}. "
        "A running daemon follows within seconds."
    )
    if (ended := _drift_ended(config_path, state_dir, store, model, approved, before)) is not None:
        click.echo(f"warning: model {model}: {ended}", err=True)
    if (unlike := _unlike_config(config_path, state_dir, store, model)) is not None:
        click.echo(f"warning: {unlike}", err=True)


def _unlike_config(
    config_path: Path | None, state_dir: Path | None, store: Any, model: str
) -> str | None:
    """The start-up/check-config warning of ``model``'s live version against the
    configuration (another k, phases, ...: ``k_mismatches``), None without --config or a
    configured model. An approved version of another k warned of nothing until the
    daemon's next start (f19)."""
    if config_path is None:
        return None
    from monitor.bootstrap import k_mismatches

    settings = _settings(config_path, state_dir=state_dir)
    models = tuple(m for m in settings.models if m.name == model)
    one = dataclasses.replace(settings, models=models)
    return k_mismatches(one, store, config_path).get(model)


def _drift_ended(
    config_path: Path | None,
    state_dir: Path | None,
    store: Any,
    model: str,
    approved: int,
    before: int | None,
) -> str | None:
    """That the drift a run stored ``approved`` in has ended, with the quiet runs since
    (``period.drift_ended``, from the run that stored it on: ``_runs_from``), and the
    rollback that undoes the approval; None when it goes on or the history cannot say."""
    from monitor.pipeline.period import drift_ended
    from monitor.runner import store_options

    try:
        info = next((i for i in store.list_versions(model) if i.version == approved), None)
    except StoreError:
        return None  # approved all the same: the note is what is lost
    if info is None or info.created_at is None:
        return None
    settings, directory, _ = _state_dir(config_path, state_dir, "the history")
    runs = _from_history(directory, lambda h: _runs_from(h, model, info.created_at))
    ended = None if runs is None else drift_ended(runs, approved)
    if ended is None:
        return None
    at, quiet = ended
    text = (
        f"the drift v{approved} was trained on ended at {_ts(at)} UTC: {quiet} quiet "
        f"run{'' if quiet == 1 else 's'} since, so the model now takes that drift for the normal"
    )
    if before is None:
        return text
    where = store_options(directory.resolve(), None if settings is None else settings.path)
    return (
        f"{text}; if it was an incident that passed, `kmeans-monitor snapshots rollback "
        f"{model} --to {before} {where}` undoes the approval"
    )


def _runs_from(history: Any, model: str, start: float) -> tuple[Evaluation, ...]:
    """The runs of ``model`` from ``start`` on, oldest first, for ``drift_ended``.

    The run that stored a version is evaluated at the version's ``created_at`` (both are
    the run's one clock reading), so that is where they start: whatever the model's
    window or the drift's length, nothing before it is needed. When more than
    HISTORY_LIMIT runs follow, the history gives the newest; the storing run is read on
    its own and put first (a day of runs read before it, then the newest of the rest,
    left it out, and the warning with it)."""
    newest = history.since(model, start, limit=HISTORY_LIMIT).evaluations
    if len(newest) < HISTORY_LIMIT:
        return tuple(newest)
    at_start = history.since(model, start, math.nextafter(start, math.inf), limit=1)
    return (*at_start.evaluations, *newest)


@snapshots.command("retrain")
@CONFIG_OPTION
@STATE_DIR_OPTION
@MODEL_ARGUMENT
@click.option(
    "--live", is_flag=True, help="Make the new version live at once (default: it awaits approval)."
)
@REASON_OPTION
def snapshots_retrain(
    config_path: Path | None, state_dir: Path | None, model: str, live: bool, reason: str | None
) -> None:
    """Train a new version of MODEL on its reference period ending now, with the configured k.

    The way to apply a changed k (or any training setting) deliberately: the new version
    is pending until `snapshots approve`, or live at once with --live; a running daemon
    follows. Reads the model's source, so it needs --config, and takes as long as the
    model's first run. Exits 1 when the source cannot be read, its rows do not make a
    model (too few, invalid values, other columns), training fails, or the trained
    version cannot be stored (a full disk): a run that failed, as in `evaluate`. A state
    directory it cannot write is refused before training (exit 2).
    """
    from monitor.bootstrap import check_state_dir, retrain
    from monitor.errors import (
        EngineError,
        InvalidValuesError,
        SchemaError,
        SourceError,
        StoreWriteError,
        TooFewRowsError,
        TrainingError,
    )
    from monitor.runner import approve_command, classify_failure

    if config_path is None:
        raise click.UsageError("snapshots retrain needs --config FILE: it reads the model's source")
    settings = _settings(config_path, state_dir=state_dir)
    # Before the (slow) training: it stores the version, then records it in the history.
    check_state_dir(settings.daemon.state_dir, settings.named, make=True, write=True)
    _limit_blas(settings)
    try:
        done = retrain(
            settings, model, live=live, on_start=_retrain_started(model), by=_actor(reason)
        )
    except (
        SourceError,
        SchemaError,
        InvalidValuesError,
        TooFewRowsError,
        TrainingError,
        EngineError,
        StoreWriteError,
    ) as exc:  # what fails a run reading the same period: exit 1, not a usage error
        click.echo(f"error: retrain failed ({classify_failure(exc)}): {exc}", err=True)
        sys.exit(1)
    snap = done.snapshot
    if done.flagged:  # helper-80: a retrain right after an incident learned its windows
        click.echo(f"warning: {_flagged_warning(done, model, settings)}", err=True)
    period = f"{_ts(done.start)} to {_ts(done.end)} UTC ({done.windows} window(s))"
    # Windows of the period left out are logged as a warning by the reading itself.
    head = f"model {model}: trained v{snap.version} (k={snap.k}) on {period}"
    was = "none" if done.live_before is None else f"v{done.live_before}"
    if done.state == "live":
        click.echo(
            f"{head}; live {was} -> v{snap.version}. A running daemon follows within seconds."
        )
        return
    state = Path(settings.daemon.state_dir).resolve()
    replaces = "" if done.replaced is None else f"; it retires the pending v{done.replaced}"
    click.echo(f"{head}; it awaits approval (live stays {was}{replaces}).")
    click.echo(f"approve with: {approve_command(model, snap.version, state, settings.path)}")


def _flagged_warning(done: Any, model: str, settings: Settings) -> str:
    """What a retrain over flagged runs says: the new version learned their windows, and
    the diff against the version live before it, runnable as printed."""
    from monitor.runner import store_options

    new, was = done.snapshot.version, done.live_before
    head = (
        f"{len(done.flagged)} run(s) of this period were flagged (the latest ending "
        f"{_ts(done.flagged[-1])} UTC): v{new} learned their windows; "
    )
    if was is None:
        return head + "retrain once they have left the period"
    where = store_options(Path(settings.daemon.state_dir).resolve(), settings.path)
    diff = f"kmeans-monitor snapshots diff {model} {was} {new} {where}"
    if done.state == "live":
        return (
            head
            + f"it is live: compare it with v{was} ({diff}) and roll back if it learned a fault"
        )
    return head + f"compare it before approving ({diff}), or retrain once they have left the period"


def _retrain_started(model: str) -> Any:
    """A callback that says on stderr what is being trained, before the slow part."""

    def started(start: float, end: float) -> None:
        click.echo(
            f"training {model} on its reference period, {_ts(start)} to {_ts(end)} UTC; "
            "this takes as long as the model's first run",
            err=True,
        )

    return started


@snapshots.command("reject")
@CONFIG_OPTION
@READ_STATE_DIR_OPTION
@MODEL_ARGUMENT
@click.argument("version", type=VERSION, required=False)
@REASON_OPTION
def snapshots_reject(
    config_path: Path | None,
    state_dir: Path | None,
    model: str,
    version: int | None,
    reason: str | None,
) -> None:
    """Withdraw the pending candidate of MODEL: no approval awaits it and its canary stops.

    The version stays stored (retired); VERSION, if given, must be the pending one.
    """
    store = _open_store(config_path, state_dir)
    pending = store.pending_version(model)
    if pending is None:
        raise SnapshotNotFoundError(f"model {model!r} has no pending candidate")
    if version is not None and version != pending:
        raise InvalidInputError(
            f"model {model!r}: v{version} is not the pending candidate (v{pending} is)"
        )
    store.set_pending(model, None, by=_actor(reason))
    click.echo(
        f"model {model}: rejected v{pending}; it stays stored, retired. "
        "A running server stops its canary within seconds."
    )


def _live_or_none(store: Any, model: str) -> int | None:
    try:
        live: int | None = store.live_version(model)
    except StoreError:
        return None
    return live


# ------------------------------------------------------------------------ history

#: Runs and failures shown at most (each): the newest ones of the range.
HISTORY_LIMIT = 10_000


def _state_dir_of(
    config_path: Path | None, state_dir: Path | None, model: str
) -> tuple[Path, Callable[[str], str]]:
    """The state directory that --state-dir names, or else that of --config, where
    ``model`` must be configured (a model no longer configured: --state-dir reads it),
    or else KMEANS_MONITOR_STATE_DIR (which overrides the file's too), and what names a
    problem of it by where it came from."""
    settings, directory, named = _state_dir(config_path, state_dir, "the history")
    if settings is None:
        return directory, named
    try:
        settings.model(model)
    except KeyError as exc:
        raise InvalidInputError(
            f"{exc.args[0]} (--state-dir instead of --config reads a model no longer configured)"
        ) from None
    return directory, named


class _AmbiguousTime(InvalidInputError):
    """Eight digits that read as unix seconds and as an ISO-8601 date alike."""


def _option_time(text: str, option: str) -> float:
    """Unix seconds of an option's time (ISO-8601, unix seconds). Eight digits that make a
    date are refused: ``--from 20240501`` read as unix seconds was 1970-08-23 and
    replayed nothing the user meant, while ISO-8601 reads it as the day."""
    from monitor.timestamps import eight_digit_date, format_time, parse_time

    seconds = parse_time(text, option, hint=True)  # milliseconds: says so
    day = eight_digit_date(text)
    if day is not None:
        digits = text.strip()
        raise _AmbiguousTime(
            f"{option}: {digits} reads as unix seconds ({format_time(seconds)}) and as the "
            f"ISO-8601 date {day}: write {day} for the day, or {digits}.0 for unix seconds"
        )
    return seconds


def _when(text: str, option: str, now: float) -> float:
    """Unix seconds of a time (``_option_time``) or of a duration back from ``now``."""
    from monitor.durations import parse_duration
    from monitor.timestamps import EARLIEST

    try:
        return _option_time(text, option)
    except (TimeRangeError, _AmbiguousTime):
        raise  # a time, out of range; or one that reads as two
    except InvalidInputError:
        pass
    try:
        # A bare number was taken as a time above: a duration here always has a unit. One
        # too long for a timer is still a duration: the range check below names it.
        back = parse_duration(text, option, allow_zero=True, most=math.inf)
    except InvalidInputError:
        raise InvalidInputError(
            f"{option}: {brief(text)} is neither a duration back from now (6h, 2d, 90m) nor a "
            "time (ISO-8601 such as 2026-05-01T12:00Z, or unix seconds)"
        ) from None
    if now - back < EARLIEST:
        raise InvalidInputError(
            f"{option}: {brief(text)} back from now is before {format_time(EARLIEST)}"
        )
    return now - back


@main.command()
@CONFIG_OPTION
@READ_STATE_DIR_OPTION
@MODEL_ARGUMENT
@click.option(
    "--since",
    default="6h",
    show_default=True,
    metavar="WHEN",
    help="Start: a duration back from now (6h, 2d) or a time (ISO-8601 or unix seconds).",
)
@click.option("--until", metavar="WHEN", help="End (exclusive), same forms; default: now.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def history(
    config_path: Path | None,
    state_dir: Path | None,
    model: str,
    since: str,
    until: str | None,
    as_json: bool,
) -> None:
    """The runs of MODEL from its history: SLIs against thresholds, decisions, failures.

    Times are UTC. The history database is opened read-only, so this is safe while the
    daemon runs.
    """
    from monitor.bootstrap import check_state_dir, open_history

    directory, named = _state_dir_of(config_path, state_dir, model)
    now = time.time()
    start = _when(since, "--since", now)
    end = now if until is None else _when(until, "--until", now)
    if end <= start:
        upto = "now" if until is None else "--until"
        raise InvalidInputError(
            f"{upto} ({format_time(end)}) must be after --since ({format_time(start)})"
        )
    check_state_dir(directory, named, uses=["history"])
    with open_history(directory) as h:
        found = _whole(h.since(model, start, end, limit=HISTORY_LIMIT))
        later = _runs(h.since(model, end, limit=HISTORY_LIMIT)) if until is None else []
        latest = _latest_run(h, model) if not _runs(found) else None
        pruned = h.pruned_before(model)
        if latest is None and pruned is None and config_path is None:
            _known_to_history(h, model)
    if later:  # stamped ahead of the clock (it stepped back since): not left out unsaid
        click.echo(
            f"{len(later)} run(s) of {model} are stamped after now ({format_time(end)}), "
            f"up to {format_time(_run_time(later[-1]))}: the wall clock stepped back since "
            "they ran; --until after that time shows them",
            err=True,
        )
    # Runs of the range that the retention removed: said, not left for an empty range to tell.
    pruned = pruned if pruned is not None and start < pruned else None
    if as_json:
        whole = {"requested_since": start, "truncated": found.since > start}
        click.echo(_json_text({**_history_json(found, end), **whole, "pruned_before": pruned}))
        return
    _print_history(found, start, end, latest)
    if pruned is not None:
        click.echo(
            f"runs before {_ts(pruned)} UTC were removed from the history "
            "(store.keep.history); their counts are kept for the metrics"
        )


def _whole(found: RunHistory) -> RunHistory:
    """``found`` from where both its lists are whole: where the newest HISTORY_LIMIT of one
    kind were read, the other kind's older runs are left out too, and ``since`` moves to
    there. Merged whole, 3,571 failures over 9 days hid the successes between them, and
    a share of failures counted in the JSON was 26 % for 14 % (helper-102)."""
    cut = max(
        (
            _run_time(runs[0])
            for runs in (found.evaluations, found.failures)
            if len(runs) >= HISTORY_LIMIT
        ),
        default=None,
    )
    if cut is None:
        return found
    return dataclasses.replace(
        found,
        since=cut,
        evaluations=tuple(e for e in found.evaluations if e.evaluated_at >= cut),
        failures=tuple(f for f in found.failures if f.at >= cut),
    )


def _runs(found: Any) -> list[Evaluation | RunFailure]:
    """Evaluations and failures of a RunHistory merged in time order."""
    runs: list[Evaluation | RunFailure] = [*found.evaluations, *found.failures]
    return sorted(runs, key=_run_time)


def _run_time(run: Evaluation | RunFailure) -> float:
    return run.at if isinstance(run, RunFailure) else run.evaluated_at


def _known_to_history(h: Any, model: str) -> None:
    """InvalidInputError when the history holds nothing of ``model``: with --state-dir
    alone nothing else says a misspelled name from a model that has not run yet."""
    known = h.models()
    if model not in known:
        held = f"it holds: {', '.join(known)}" if known else "it holds no model yet"
        raise InvalidInputError(f"no model named {model!r} in the history of {h.path}; {held}")


def _latest_run(h: Any, model: str) -> float | None:
    """When the newest run of ``model`` (success or failure) happened, if any."""
    times = [e.evaluated_at for e in h.recent(model, 1)] + [f.at for f in h.failures(model, 1)]
    return max(times, default=None)


def _history_line(run: Evaluation | RunFailure) -> str:
    """One run of the history in one line: SLIs as value/threshold, then the decision."""
    from monitor.alerting import COMPARED, past

    when = _ts(_run_time(run))
    if isinstance(run, RunFailure):
        label = run.window_label
        # Not twice: many messages name the window themselves. A run's own "[start, end)"
        # reads as a window already; a source's label does not.
        if not label or label in run.message:
            where = ""
        else:
            where = f" {label}" if label.startswith("[") else f" [{label}]"
        return f"{when}  {'-':>4}  {'-':>6}  FAILED ({run.reason}): {run.message}{where}"
    cells = []
    for sli, key in COMPARED:
        value, threshold = run.slis.get(sli), run.thresholds.get(key)
        if value is not None and math.isnan(value):
            value = None  # not measured on this window (too few rows for it): shown as -
        cell = _cell(value, threshold)
        if value is not None and threshold is not None and past(value, threshold, sli):
            cell += "*"
        cells.append(f"{cell:<{_width(sli)}}")
    version = f"v{run.live_version}"
    return f"{when}  {version:>4}  {run.n_rows:>6}  {'  '.join(cells)}  {run.decision}"


def _print_history(found: Any, requested: float, end: float, latest: float | None) -> None:
    from monitor.alerting import COMPARED

    span = f"from {_ts(found.since)} to {_ts(end)} UTC"
    runs = _runs(found)
    if not runs:
        if latest is None:
            hint = "history holds no run of it"
        else:
            widen = "--until" if latest >= end else "--since"
            hint = f"its latest run was at {_ts(latest)} UTC: widen {widen}"
        click.echo(f"model {found.model}: no run {span}; {hint}")
        return
    click.echo(
        f"model {found.model}: {len(runs)} run(s) {span}; "
        "each SLI as value/threshold, * past its threshold"
    )
    header = "  ".join(f"{sli:<{_width(sli)}}" for sli, _ in COMPARED)
    click.echo(f"{'time (UTC)':<19}  {'live':>4}  {'rows':>6}  {header}  decision")
    for run in runs:
        click.echo(_history_line(run))
    click.echo(_history_summary(found, requested))


def _history_summary(found: Any, requested: float) -> str:
    """Counts over the range: runs, retrains, candidates stored, failures by reason."""
    evs = found.evaluations
    promoted = sum(1 for e in evs if e.promoted)
    pending = sum(1 for e in evs if e.candidate_version is not None and not e.promoted)
    reasons: dict[str, int] = {}
    for f in found.failures:
        reasons[f.reason] = reasons.get(f.reason, 0) + 1
    failed = ", ".join(f"{r}={n}" for r, n in sorted(reasons.items())) or "none"
    truncated = found.since > requested
    more = (
        f"; the runs before {_ts(found.since)} were not read (at most the newest "
        f"{HISTORY_LIMIT:,} evaluations and {HISTORY_LIMIT:,} failures are): narrow the range"
        if truncated
        else ""
    )
    return (
        f"summary {found.model}: {len(evs)} evaluation(s), {promoted} made a version live, "
        f"{pending} left a candidate awaiting approval; failures: {failed}{more}"
    )


def _history_json(found: Any, end: float) -> dict[str, Any]:
    return {
        "model": found.model,
        "since": found.since,
        "until": end,
        "since_utc": format_time(found.since),
        "until_utc": format_time(end),
        "runs": [_run_json(r) for r in _runs(found)],
    }


def _run_json(run: Evaluation | RunFailure) -> dict[str, Any]:
    """A run as JSON: the evaluation's fields (or the failure's), with times in both forms."""
    at = _run_time(run)
    out: dict[str, Any] = {"at": at, "at_utc": format_time(at), **_result_json(run)}
    if isinstance(run, RunFailure):
        out["window_label"] = run.window_label
        return out
    out.update(
        window_start=run.window_start,
        window_end=run.window_end,
        window_start_utc=format_time(run.window_start),
        window_end_utc=format_time(run.window_end),
        cluster_sizes=list(run.cluster_sizes),
        centroid_drift=[_finite(v) for v in run.centroid_drift],
        duration_seconds=run.duration_seconds,
    )
    for key in ("slis", FEATURE_PSI, "thresholds"):
        out[key] = {name: _finite(v) for name, v in out[key].items()}
    return out


# ------------------------------------------------------------------------ choose-k


class _ProgressBar:
    """A bar redrawn in place on a terminal's stderr; silent when the stream is no terminal.

    The time left is estimated from the pace of the steps after the first ``eta_from``
    (steps that cost alike), and not shown before.
    """

    def __init__(
        self,
        label: str,
        stream: Any,
        *,
        clock: Callable[[], float] = time.monotonic,
        width: int = 30,
        every: float = 0.1,
        eta_from: int = 0,
    ) -> None:
        self._label, self._stream, self._clock = label, stream, clock
        self._width, self._every = width, every
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty()) if callable(isatty) else False
        self._t0 = clock()
        self._last = -math.inf
        self._drawn = ""
        self._eta_from = eta_from
        self._mark: tuple[int, float] | None = (0, self._t0) if eta_from <= 0 else None

    def __call__(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` steps, the time spent and an estimate of what is left."""
        if not self.enabled:
            return
        now = self._clock()
        if self._mark is None and done >= self._eta_from:
            self._mark = (done, now)
        if done < total and now - self._last < self._every:
            return  # a redraw at most every ``every`` seconds, and always the last one
        self._last = now
        elapsed = now - self._t0
        filled = round(self._width * done / total) if total else self._width
        text = (
            f"{self._label} [{'#' * filled}{'.' * (self._width - filled)}] "
            f"{done}/{total} fits, {elapsed:.0f} s"
        )
        if self._mark is not None and self._mark[0] < done < total:
            pace = (now - self._mark[1]) / (done - self._mark[0])
            text += f", about {pace * (total - done):.0f} s left"
        # Spaces over the end of a longer previous line; \r goes back to the line's start.
        self._stream.write("\r" + text + " " * max(0, len(self._drawn) - len(text)))
        self._stream.flush()
        self._drawn = text

    def close(self) -> None:
        """End the bar's line, so that what follows starts on a line of its own."""
        if self.enabled and self._drawn:
            self._stream.write("\n")
            self._stream.flush()


class _ReadProgress:
    """How much of a file has been read, on stderr: redrawn in place on a terminal, a line
    every ``quiet`` seconds (none before) elsewhere, so that a log shows a long read going
    on and a short one adds nothing."""

    def __init__(
        self,
        label: str,
        stream: Any,
        *,
        clock: Callable[[], float] = time.monotonic,
        every: float = 0.1,
        quiet: float = 5.0,
    ) -> None:
        self._label, self._stream, self._clock = label, stream, clock
        isatty = getattr(stream, "isatty", None)
        self._tty = bool(isatty()) if callable(isatty) else False
        self._every = every if self._tty else quiet
        self._t0 = clock()
        self._last = -math.inf if self._tty else self._t0
        self._drawn = ""

    def __call__(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` bytes read and the time spent."""
        now = self._clock()
        if now - self._last < self._every:
            return
        self._last = now
        share = f" ({100 * done / total:.0f}%)" if total else ""
        text = (
            f"{self._label}: {bytes_text(done)} of {bytes_text(total)} read{share}, "
            f"{now - self._t0:.0f} s"
        )
        if self._tty:
            self._stream.write("\r" + text + " " * max(0, len(self._drawn) - len(text)))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
        self._drawn = text

    def close(self) -> None:
        """End a line drawn in place, so that what follows starts on a line of its own."""
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()


@dataclass(frozen=True)
class _KData:
    """The rows choose-k works on, and how they were taken from the file."""

    names: list[str]
    X: Any  # (n_used, d) scaled rows
    n_file: int  # rows in the file
    sampled: bool
    dropped: int  # rows of the file left out for NaN or infinity (before sampling)
    left_out: dict[str, str]  # columns not of numbers, and why (read_table's)

    @property
    def n_used(self) -> int:
        return int(self.X.shape[0])


def _k_data(
    path: Path, features: str | None, scaling: str, sample: int, seed: int, k_max: int
) -> _KData:
    """The file's finite rows sampled down to ``sample``, scaled; user errors else."""
    import numpy as np

    from monitor.bootstrap import read_table
    from monitor.checks import overflow_message, underflow_message
    from monitor.core import scaling as scaling_mod

    wanted = None if features is None else [f.strip() for f in features.split(",")]
    if wanted is not None and "" in wanted:
        raise InvalidInputError(f"--features {brief(features)} has an empty column name")
    if wanted is not None and (repeated := sorted(n for n, c in Counter(wanted).items() if c > 1)):
        raise InvalidInputError(f"--features names [{some_names(repeated, repr)}] more than once")
    reading = _ReadProgress(f"choose-k reading {_text_of(path.name)}", sys.stderr)
    try:
        table = read_table(path, wanted, reading)
    finally:
        reading.close()
    names, X = table.names, table.X
    where = shown_path(path)  # on one line, whatever the name holds
    if not names:
        raise InvalidInputError(f"{where}: no numeric column to choose k on")
    n_file = X.shape[0]
    # Rows with NaN or infinity are left out first, so that a sample is all finite rows.
    ok = np.isfinite(X).all(axis=1)
    dropped = int((~ok).sum())
    if dropped:
        X = X[ok]
    n_finite = X.shape[0]
    if n_finite > sample:
        rng = np.random.default_rng(seed)
        X = X[np.sort(rng.choice(n_finite, sample, replace=False))]
    if X.shape[0] < k_max:
        raise InvalidInputError(
            f"{where}: {X.shape[0]} row(s) with finite values; --k-max {k_max} needs at "
            f"least {k_max}{_no_finite_columns(table.X, names)}"
        )
    if (distinct := np.unique(X, axis=0).shape[0]) < k_max:
        # Constant data got k=2 from every rule, after a warning per k (helper-90).
        raise InvalidInputError(
            f"{where}: {distinct} distinct row(s) among the {X.shape[0]} with finite values; "
            f"--k-max {k_max} needs at least {k_max}: no structure to choose k on"
        )
    overflow = overflow_message(X, names, "squared distances")
    if overflow is not None:
        raise InvalidInputError(f"{where}: {overflow}")
    Xs = scaling_mod.transform(scaling_mod.fit_scaler(X, scaling), X)
    if (underflow := underflow_message(Xs, names)) is not None:  # --scaling none
        raise InvalidInputError(f"{where}: {underflow}")
    return _KData(list(names), Xs, n_file, n_finite > sample, dropped, table.left_out)


def _no_finite_columns(X: Any, names: list[str]) -> str:
    """The columns that are NaN or infinite in every row, which leave no row finite: one
    such column made a whole file "0 row(s) with finite values" without being named."""
    import numpy as np

    empty = [name for name, ok in zip(names, np.isfinite(X).any(axis=0), strict=True) if not ok]
    if not empty or len(empty) == len(names):
        return ""
    kept = ",".join(n for n in names if n not in empty)
    return (
        f"; column(s) [{some_names(empty, repr)}] hold no finite value: leave them out with "
        f"--features {brief_text(kept)}"
    )


# The exact silhouette is quadratic in its rows: a second sample, drawn with --seed.
_SILHOUETTE_ROWS = 10_000


def _k_rows_text(data: _KData) -> str:
    """How many rows the curves were computed on, and whether they were sampled."""
    text = f"{data.n_file:,} rows"
    if data.sampled:
        text = f"sampled {data.n_used:,} of {data.n_file:,} rows (--sample)"
    if data.dropped:
        text += f", {data.dropped:,} with NaN or infinity left out"
        text += " first" if data.sampled else ""
    if data.n_used > _SILHOUETTE_ROWS:
        text += f", the silhouette on {_SILHOUETTE_ROWS:,} of them"
    return text


@main.command("choose-k")
@click.argument("path", type=NonEmptyPath(exists=True, dir_okay=False, path_type=Path))
@click.option("--k-min", type=WholeNumber(min=1), default=2, show_default=True)
@click.option("--k-max", type=WholeNumber(min=2), default=10, show_default=True)
@click.option("--features", help="Comma-separated columns to use (default: every numeric one).")
@click.option(
    "--scaling",
    type=BriefChoice(["standard", "robust", "none"]),
    default="standard",
    show_default=True,
)
@click.option(
    "--sample",
    type=WholeNumber(min=2),
    default=20000,
    show_default=True,
    help="Rows sampled from a larger file (k selection is quadratic in places).",
)
@click.option(
    "--refs",
    type=WholeNumber(min=1, max=1000),
    default=10,
    show_default=True,
    help="Uniform reference sets for the gap statistic (B).",
)
@click.option(
    "--n-init",
    type=WholeNumber(min=1, max=100),
    default=3,
    show_default=True,
    help="k-means++ restarts of each k's fit, the best kept (one each for the gap's references).",
)
@click.option("--seed", type=WholeNumber(min=0, max=2**32 - 1), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the curves and choices as JSON.")
@click.option(
    "--plot",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    help="Also draw the elbow, silhouette and gap curves, each choice marked "
    "(FILE.png or FILE.svg; needs the plot extra).",
)
def choose_k(
    path: Path,
    k_min: int,
    k_max: int,
    features: str | None,
    scaling: str,
    sample: int,
    refs: int,
    n_init: int,
    seed: int,
    as_json: bool,
    plot: Path | None,
) -> None:
    """Choose k on a data file (CSV, Parquet, NPY): elbow, silhouette and gap statistic.

    A file of more than --sample finite rows is sampled, and the output says so. On a terminal,
    a progress bar on stderr follows the fits.
    """
    from monitor import plots
    from monitor.core import selection

    if k_max <= k_min:
        raise InvalidInputError(f"need --k-min < --k-max; got {k_min} and {k_max}")
    if sample < k_max:
        raise InvalidInputError(f"--sample {sample} rows cannot hold --k-max {k_max} clusters")
    if plot is not None:
        _check_plot(plot)
    data = _k_data(path, features, scaling, sample, seed, k_max)
    ks = list(range(k_min, k_max + 1))
    # Each k's own fit and silhouette come first and cost more than a reference fit.
    bar = _ProgressBar("choose-k", sys.stderr, eta_from=len(ks))
    try:
        sel = selection.choose_k(
            data.X,
            ks,
            n_refs=refs,
            n_init=n_init,
            silhouette_sample_size=_SILHOUETTE_ROWS,
            random_state=seed,
            progress=bar,
        )
    finally:
        bar.close()
    rows = _k_rows_text(data)
    if as_json:
        click.echo(_json_text(_k_json(path, data, sel)))
    else:
        _print_k_table(path, data, sel, rows)
    if plot is not None:
        title = f"choose-k on {_text_of(path.name)}: {rows}, {len(data.names)} features"
        _write_plot(plot, lambda: plots.plot_k_selection(sel, plot, title=title))


def _text_of(name: Path | str) -> str:
    """A file name as text any reader takes: a byte that is not UTF-8, which Python holds
    as a lone surrogate (FreeType refuses it in a plot's title, a strict JSON decoder in
    ``--json``), is written ``\\xe9``."""
    return str(name).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _print_k_table(path: Path, data: _KData, sel: Any, rows: str) -> None:
    names = some_names(data.names)
    click.echo(f"{path}: {rows} x {len(data.names):,} features ({names})")
    best_silhouette = max((float(v) for v in sel.silhouette), default=0.0)
    top = best_silhouette if best_silhouette > 0 else 1.0
    click.echo(f"{'k':>3}  {'inertia':>12}  {'silhouette':>10}  {'gap':>8}  {'s_k':>7}  silhouette")
    for i, k in enumerate(sel.ks):
        bar = "#" * max(0, round(30 * float(sel.silhouette[i]) / top))
        marks = [rule for rule, best in _k_choices(sel).items() if best == k]
        click.echo(
            f"{k:>3}  {sel.inertia[i]:>12.4g}  {sel.silhouette[i]:>10.4f}  {sel.gap[i]:>8.4f}  "
            f"{sel.gap_sk[i]:>7.4f}  {bar:<30} {' '.join('<- ' + m for m in marks)}"
        )
    click.echo("  ".join(f"{rule}: k={best}" for rule, best in _k_choices(sel).items()))


def _k_choices(sel: Any) -> dict[str, int]:
    return {
        "elbow": int(sel.best_elbow),
        "silhouette": int(sel.best_silhouette),
        "gap": int(sel.best_gap),
    }


def _k_json(path: Path, data: _KData, sel: Any) -> dict[str, Any]:
    return {
        "path": _text_of(path),
        "features": data.names,
        "columns_left_out": data.left_out,
        "rows_in_file": data.n_file,
        "rows_used": data.n_used,
        "sampled": data.sampled,
        "rows_dropped": data.dropped,
        "silhouette_rows": min(data.n_used, _SILHOUETTE_ROWS),
        "ks": [int(k) for k in sel.ks],
        "inertia": [_finite(v) for v in sel.inertia],
        "silhouette": [_finite(v) for v in sel.silhouette],
        "gap": [_finite(v) for v in sel.gap],
        "gap_sk": [_finite(v) for v in sel.gap_sk],
        "best": _k_choices(sel),
    }


# ------------------------------------------------------------------------ as code


@main.command()
@click.option(
    "--root",
    type=NonEmptyPath(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where alerts/, dashboards/, runbooks/ and site/ are written; the generated docs "
    "too when it is a checkout of kmeans-monitor.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Only report files that differ from what these options render; exit 1 if any.",
)
@click.option(
    "--runbook-url-pattern",
    help="runbook_url of the alerts, an http(s) URL: where site/ is served, with {alertname} "
    "and labels such as {model} (default "
    "http://127.0.0.1:9312/runbooks/{alertname}.html?model={model}).",
)
@click.option(
    "--dashboard-url-pattern",
    help="dashboard_url of the alerts, an http(s) URL: the Grafana on-call dashboard, with "
    "labels such as {job} and {model} (default "
    "http://127.0.0.1:3000/d/kmeans-monitor-oncall/?var-job={job}&var-model={model}).",
)
@click.option(
    "--daemon-url",
    help="The daemon's address, linked from site/ for the live values "
    "(default http://127.0.0.1:9310).",
)
@click.option(
    "--time-scale",
    type=DecimalNumber(),
    default=1.0,
    show_default=True,
    help="Multiply every for: and range window of the rules (tests use small values).",
)
def render(
    root: Path,
    check: bool,
    runbook_url_pattern: str | None,
    dashboard_url_pattern: str | None,
    daemon_url: str | None,
    time_scale: float,
) -> None:
    """Regenerate dashboards, alert rules, runbooks and the runbook site from their one source."""
    from monitor import render as render_mod

    given: dict[str, Any] = {
        "runbook_url_pattern": runbook_url_pattern,
        "dashboard_url_pattern": dashboard_url_pattern,
        "daemon_url": daemon_url,
    }
    flags = {name: "--" + name.replace("_", "-") for name in [*given, "time_scale"]}
    # The options are checked as they are given, and as they scale the rules' durations.
    with _options_named(**flags):
        options = render_mod.RenderOptions(
            time_scale=time_scale, **{k: v for k, v in given.items() if v is not None}
        )
        if check:
            _check_root(root)
            stale = render_mod.stale_files(root, options)
        else:
            written = render_mod.render_all(root, options)
    if check:
        for name in stale:
            click.echo(f"stale: {name}", err=True)
        if stale:
            click.echo("run the same command without --check to rewrite them", err=True)
            sys.exit(1)
        click.echo("generated files are up to date")
        return
    for path in written:
        click.echo(f"wrote {path}")


def _check_root(root: Path) -> None:
    """Refuse a --root that --check cannot compare: one that is not there (a typo) listed
    every generated file as stale. Without --check, render makes it (a new deploy)."""
    if root.is_dir():
        return
    why = "no such directory to check"
    if root.is_symlink():
        why = f"a symbolic link to {shown_path(os.readlink(root))}, which does not exist"
    raise InvalidInputError(f"--root {shown_path(root)}: {why}")


@main.command()
@click.argument("alertname")
def runbook(alertname: str) -> None:
    """Print the runbook of an alert."""
    from monitor import render as render_mod

    try:
        page = render_mod.runbook_markdown(alertname)
    except render_mod.UnknownAlertError as exc:  # a KeyError whose text lists the names
        raise InvalidInputError(str(exc)) from None
    click.echo(page)


# ------------------------------------------------------------------------ simulate


@main.command()
@click.option(
    "--config",
    "config_path",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    help="YAML with features, instances and simulator options (docs/e2e.md).",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    default="127.0.0.1:9311",
    show_default=True,
    help="Address of the simulated service's /metrics.",
)
@click.option(
    "--refresh",
    type=DecimalNumber(),
    default=1.0,
    show_default=True,
    help="Seconds between two computations of the gauges.",
)
def simulate(config_path: Path | None, listen: str, refresh: float) -> None:
    """Serve simulated service telemetry on /metrics for Prometheus (one series per instance)."""
    from monitor.bootstrap import simulator_options, simulator_server
    from monitor.config import parse_listen
    from monitor.daemon import run_until_signal
    from monitor.yamlfile import read_yaml

    options = simulator_options(None if config_path is None else read_yaml(config_path))
    with _options_named(listen="--listen", refresh="--refresh"):
        host, port = parse_listen(listen)
        server = simulator_server(options, host, port, refresh=refresh)
    run_until_signal(
        server,
        on_started=lambda: click.echo(
            f"simulated telemetry of {options.instances} instance(s), features "
            f"{', '.join(options.features)}: {server.url}/metrics (Ctrl-C to stop)"
        ),
    )
