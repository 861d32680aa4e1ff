"""The command line: ``kmeans-monitor run|demo|evaluate|check-config|snapshots|choose-k|...``."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import click

from monitor import __version__
from monitor.config import Settings
from monitor.errors import ConfigError, InvalidInputError, SnapshotNotFoundError, StoreError
from monitor.records import Evaluation, RunFailure
from monitor.slis import FEATURE_PSI, PROGRESS
from monitor.timestamps import format_time

log = logging.getLogger("monitor")

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The YAML configuration file.",
)
STATE_DIR_OPTION = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of snapshots and history (overrides daemon.state_dir).",
)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # APScheduler logs every job execution at INFO; the daemon logs each run itself.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.root.level))


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into a message and exit code 2, not a traceback."""
    try:
        yield
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (InvalidInputError, SnapshotNotFoundError, StoreError, KeyError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _limit_blas(settings: Settings) -> None:
    """Apply daemon.blas_threads to this process's BLAS and OpenMP pools."""
    if settings.daemon.blas_threads > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=settings.daemon.blas_threads)


def _settings(
    config_path: Path | None, *, listen: str | None = None, state_dir: Path | None = None
) -> Settings:
    from monitor.bootstrap import load_settings

    return load_settings(
        config_path,
        overrides={"listen": listen, "state_dir": str(state_dir) if state_dir else None},
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kmeans-monitor")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Log verbosity (logs go to stderr).",
)
def main(log_level: str) -> None:
    """Keep k-means models honest in production: drift, quality and job-health SLIs
    exported to Prometheus."""
    _setup_logging(log_level)


# ------------------------------------------------------------------------ daemon


@main.command()
@CONFIG_OPTION
@click.option("--listen", metavar="HOST:PORT", help="Address of /metrics (default 127.0.0.1:9310).")
@STATE_DIR_OPTION
def run(config_path: Path | None, listen: str | None, state_dir: Path | None) -> None:
    """Run the daemon: every model on its schedule, metrics on /metrics."""
    from monitor.bootstrap import build_app
    from monitor.daemon import Daemon

    with _user_errors():
        settings = _settings(config_path, listen=listen, state_dir=state_dir)
        _limit_blas(settings)
        daemon = Daemon(build_app(settings))
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
    from monitor.bootstrap import build_serving_app
    from monitor.config import parse_listen
    from monitor.daemon import LabelServer, run_until_signal

    with _user_errors():
        settings = _settings(config_path, state_dir=state_dir)
        if listen is not None:
            parse_listen(listen)
        _limit_blas(settings)
        server = LabelServer(build_serving_app(settings), listen=listen)
    run_until_signal(
        server,
        on_started=lambda: click.echo(
            f"serving labels of {len(settings.models)} model(s) at {server.url}/v1/models "
            "(Ctrl-C to stop)"
        ),
    )


def _progress_line(result: Evaluation | RunFailure, t0: float, state_dir: Path) -> str:
    """One run in one line (two when a candidate awaits approval: the command to approve)."""
    from monitor.runner import approve_command, awaiting_approval

    elapsed = f"[{time.monotonic() - t0:5.0f}s]"
    if isinstance(result, RunFailure):
        return f"{elapsed} {result.model:<10} FAILED ({result.reason}): {result.message}"
    s, t = result.slis, result.thresholds
    fields = " ".join(f"{p.name}={s[p.sli]:{p.fmt}}" for p in PROGRESS if p.name)
    # The decision already says when drift is past the critical level; flag the warnings.
    warnings = [
        p.warning_name for p in PROGRESS if p.warning and s[p.sli] > t.get(p.warning, math.inf)
    ]
    flag = f"[warning: {', '.join(warnings)}] " if warnings and not result.promoted else ""
    line = (
        f"{elapsed} {result.model:<10} v{result.live_version:<3} rows={result.n_rows:<6} "
        f"{fields}  {flag}{result.decision}"
    )
    if awaiting_approval(result):
        command = approve_command(result.model, result.candidate_version, state_dir)
        line += f"\n{'':>8} approve with: {command}"
    return line


@main.command()
@click.option("--listen", metavar="HOST:PORT", help="Address of /metrics (default 127.0.0.1:9310).")
@STATE_DIR_OPTION
@click.option(
    "--duration",
    type=float,
    default=0.0,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
def demo(listen: str | None, state_dir: Path | None, duration: float) -> None:
    """Watch two simulated services; one of them drifts after about a minute."""
    from monitor.bootstrap import build_app, load_settings
    from monitor.daemon import Daemon, run_until_signal
    from monitor.yamlfile import load_yaml

    if state_dir is None:
        state_dir = Path(tempfile.mkdtemp(prefix="kmeans-monitor-demo-"))
    t0 = time.monotonic()
    with _user_errors():
        text = resources.files("monitor").joinpath("demo.yaml").read_text("utf-8")
        overrides = {"listen": listen, "state_dir": str(state_dir)}
        settings = load_settings(None, raw=load_yaml(text, "demo.yaml"), overrides=overrides)
        _limit_blas(settings)
        state = settings.daemon.state_dir
        app = build_app(settings, on_result=[lambda r: click.echo(_progress_line(r, t0, state))])
        daemon = Daemon(app)

    def started() -> None:
        click.echo(
            f"kmeans-monitor demo: models {', '.join(m.name for m in settings.models)} on the "
            f"built-in simulator, a run every 5 s.\n"
            f"  metrics:   {daemon.url}/metrics\n"
            f"  models:    {daemon.url}/api/models\n"
            f"  snapshots: kmeans-monitor snapshots list --state-dir {state_dir}\n"
            f"'checkout' drifts about a minute in. "
            + ("Ctrl-C to stop." if duration <= 0 else f"Stopping after {duration:g} s.")
        )

    run_until_signal(daemon, duration, stop_event=app.stopping, on_started=started)
    click.echo(f"demo stopped; snapshots and history kept in {state_dir}")


@main.command()
@CONFIG_OPTION
@STATE_DIR_OPTION
@click.option("--once", is_flag=True, hidden=True, help="Accepted for old crontabs; the default.")
@click.option("--model", "models", multiple=True, help="Only these models (repeatable).")
@click.option("--push-to", metavar="URL", help="Pushgateway to push the metrics to.")
@click.option("--json", "as_json", is_flag=True, help="Print the evaluations as JSON.")
def evaluate(
    config_path: Path | None,
    state_dir: Path | None,
    once: bool,
    models: tuple[str, ...],
    push_to: str | None,
    as_json: bool,
) -> None:
    """Batch mode for cron and CronJobs: run models once, optionally push to a Pushgateway.

    Exits 1 when any run failed.
    """
    from monitor.bootstrap import build_app

    if once:
        click.echo("note: --once is the only mode of evaluate; the flag can go", err=True)
    with _user_errors():
        settings = _settings(config_path, state_dir=state_dir)
        names = list(models) or [m.name for m in settings.models]
        for name in names:
            settings.model(name)
        _limit_blas(settings)
        app = build_app(settings)
    results = []
    try:
        t0 = time.monotonic()
        for name in names:
            result = app.runner.run_model(name)
            results.append(result)
            if not as_json:
                click.echo(_progress_line(result, t0, settings.daemon.state_dir))
        gateway = push_to or settings.daemon.pushgateway
        if gateway:
            from monitor.exporter import push

            push(gateway, app.registry)
            if not as_json:
                click.echo(f"pushed metrics to {gateway}")
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps([_result_json(r) for r in results], indent=2))
    if any(isinstance(r, RunFailure) for r in results):
        sys.exit(1)


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
        "slis": dict(result.slis),
        FEATURE_PSI: dict(result.feature_psi),
        "thresholds": dict(result.thresholds),
        "phase_seconds": dict(result.phase_seconds),
    }


@main.command("check-config")
@click.argument("config_file", type=click.Path(dir_okay=False, path_type=Path))
def check_config(config_file: Path) -> None:
    """Validate a configuration file; list every problem with its model and field."""
    from monitor.bootstrap import load_settings

    try:
        settings = load_settings(config_file)
    except ConfigError as exc:
        click.echo(f"{config_file}: {len(exc.problems)} problem(s)", err=True)
        for p in exc.problems:
            click.echo(f"  - {p}", err=True)
        sys.exit(2)
    click.echo(
        f"{config_file}: OK, {len(settings.models)} model(s): "
        + ", ".join(m.name for m in settings.models)
    )


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
    type=click.Path(dir_okay=False, path_type=Path),
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
    from monitor.bootstrap import backtest as run_backtest
    from monitor.timestamps import parse_time

    with _user_errors():
        settings = _settings(config_path)
        t1, t2 = parse_time(start, "--from"), parse_time(end, "--to")
        names = list(models) or [m.name for m in settings.models]
        if plot is not None:
            plots.plot_format(plot)
            plots.require_matplotlib()
            if len(names) > 1:
                raise InvalidInputError(
                    f"--plot draws one model: add --model (configured: {', '.join(names)})"
                )
        _limit_blas(settings)
        replays = [
            run_backtest(settings, n, t1, t2, on_result=_backtest_progress(n)) for n in names
        ]
        if plot is not None:
            plots.plot_replay(replays[0], plot)
    if as_json:
        click.echo(json.dumps([_replay_json(r) for r in replays], indent=2))
    else:
        for r in replays:
            _print_replay(r)
    if plot is not None:
        click.echo(f"plot written to {plot}", err=True)


def _backtest_progress(model: str) -> Any:
    """A progress callback: a line on stderr at every tenth of a long replay."""

    def report(i: int, n: int, result: Evaluation | RunFailure) -> None:
        if n >= 50 and (i + 1) * 10 // n != i * 10 // n:
            click.echo(f"backtest {model}: {i + 1}/{n} windows", err=True)

    return report


def _cell(value: float | None, threshold: float | None, fmt: str) -> str:
    """``value/threshold``, starred when past it; ``-`` for what the run did not have."""
    shown = "-" if value is None else f"{value:{fmt}}"
    if threshold is None:
        return f"{shown}/-"
    return f"{shown}/{threshold:{fmt}}"


def _replay_line(w: Any) -> str:
    """One window of a backtest in one line."""
    from monitor.alerting import COMPARED, past

    when = _ts(w.end)[:16]
    if w.failed:
        r = w.result
        return f"{when}  {'-':>6}  FAILED ({r.reason}): {r.message}  " + _alert_text(w)
    ev = w.result
    cells = []
    for sli, key in COMPARED:
        value, threshold = ev.slis.get(sli), ev.thresholds.get(key)
        cell = _cell(value, threshold, ".3f")
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

    click.echo(
        f"model {r.model}: {len(r.windows)} window(s) from {_ts(r.start)} to {_ts(r.end)} UTC; "
        "each SLI as value/threshold, * where an alert condition held, ! critical"
    )
    header = "  ".join(f"{sli:<{_width(sli)}}" for sli, _ in COMPARED)
    click.echo(f"{'time (UTC)':<16}  {'rows':>6}  {header}  alerts")
    for w in r.windows:
        click.echo(_replay_line(w))
    click.echo(_replay_summary(r))


def _replay_summary(r: Any) -> str:
    alerts = ", ".join(f"{name}={n}" for name, n in r.alerts().items()) or "none"
    return (
        f"summary {r.model}: {len(r.windows)} windows, {r.flags} flags, {r.pages} pages, "
        f"{r.failures} failed runs; alerts that would have fired: {alerts}"
    )


def _replay_json(r: Any) -> dict[str, Any]:
    return {
        "model": r.model,
        "start": r.start,
        "end": r.end,
        "start_utc": format_time(r.start),
        "end_utc": format_time(r.end),
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
        "start": w.start,
        "end": w.end,
        "start_utc": format_time(w.start),
        "end_utc": format_time(w.end),
        **_result_json(w.result),
        "conditions": [_condition_json(c) for c in w.held],
        "firing": [_condition_json(c) for c in w.firing],
        "flag": w.flag,
        "page": w.page,
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


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: they become null."""
    return float(value) if math.isfinite(value) else None


# ------------------------------------------------------------------------ snapshots


@main.group()
def snapshots() -> None:
    """List, show, diff and roll back model versions; approve or reject a candidate."""


def _open_store(config_path: Path | None, state_dir: Path | None) -> Any:
    """The store of --config (with its key and retention) or of --state-dir."""
    from monitor.bootstrap import open_store

    if state_dir is None and config_path is None:
        raise click.UsageError("give --config FILE or --state-dir DIR to find the snapshots")
    settings = _settings(config_path, state_dir=state_dir) if config_path is not None else None
    if settings is not None:
        state_dir = settings.daemon.state_dir
    assert state_dir is not None
    root = Path(state_dir) / "snapshots"
    if not root.is_dir():
        raise StoreError(f"no snapshot store at {root}")
    return open_store(Path(state_dir), settings.store if settings is not None else None)


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
        if not digits.isdigit() or int(digits) < 1:
            self.fail(f"{value!r} is not a version such as 3, v3 or v000003", param, ctx)
        return int(digits)


VERSION = VersionType()


def _approve_command(model: str, version: int, state_dir: Path) -> str:
    return f"kmeans-monitor snapshots approve {model} {version} --state-dir {state_dir}"


@snapshots.command("list")
@CONFIG_OPTION
@STATE_DIR_OPTION
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
def snapshots_list(
    config_path: Path | None, state_dir: Path | None, model: str | None, as_json: bool
) -> None:
    """List the versions of every model (or of MODEL) with their state: live, pending, retired.

    Corrupt versions are listed and marked; a broken live pointer is a warning line.
    """
    from monitor.bootstrap import version_summary

    with _user_errors():
        store = _open_store(config_path, state_dir)
        models = [model] if model else store.models()
        listed = {name: store.list_versions(name) for name in models}
        warnings = [w for name in models if (w := _live_warning(store, name))]
        if model and not listed[model]:
            raise SnapshotNotFoundError(f"model {model!r} has no snapshots in {store.root}")
    if as_json:
        out = {name: [version_summary(i) for i in infos] for name, infos in listed.items()}
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(
            f"{'model':<16} {'version':>7}  {'state':<8} {'created (UTC)':<19}  {'k':>3} "
            f"{'rows':>8}  {'parent':>6}  reason"
        )
        for infos in listed.values():
            for i in infos:
                click.echo(_version_line(i))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def _live_warning(store: Any, model: str) -> str | None:
    try:
        store.live_version(model)
    except StoreError as exc:
        return str(exc)
    return None


def _version_line(i: Any) -> str:
    if i.corrupt:
        return f"{i.model:<16} {i.version:>7}  {'CORRUPT':<8} {i.corrupt}"
    created = _ts(i.created_at) if i.created_at is not None else "?"
    parent = "-" if i.parent_version is None else str(i.parent_version)
    return (
        f"{i.model:<16} {i.version:>7}  {i.state:<8} {created:<19}  {i.k:>3} "
        f"{i.n_rows:>8}  {parent:>6}  {i.reason}"
    )


@snapshots.command("show")
@CONFIG_OPTION
@STATE_DIR_OPTION
@click.argument("model")
@click.argument("version", type=VERSION, required=False)
def snapshots_show(
    config_path: Path | None, state_dir: Path | None, model: str, version: int | None
) -> None:
    """Show one version (the live one by default) as JSON, with its state."""
    from monitor.bootstrap import snapshot_summary

    with _user_errors():
        store = _open_store(config_path, state_dir)
        snap = store.load(model, version)
        state = next(i.state for i in store.list_versions(model) if i.version == snap.version)
        click.echo(json.dumps(snapshot_summary(snap, state=state), indent=2))


@snapshots.command("diff")
@CONFIG_OPTION
@STATE_DIR_OPTION
@click.argument("model")
@click.argument("a", type=VERSION)
@click.argument("b", type=VERSION)
def snapshots_diff(
    config_path: Path | None, state_dir: Path | None, model: str, a: int, b: int
) -> None:
    """Matched centroid drift and feature PSI from version A to version B."""
    from monitor.bootstrap import diff_snapshots

    with _user_errors():
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
@STATE_DIR_OPTION
@click.argument("model")
@click.option(
    "--to", "to", type=VERSION, help="Version to make live (default: the live one's parent)."
)
def snapshots_rollback(
    config_path: Path | None, state_dir: Path | None, model: str, to: int | None
) -> None:
    """Make an older (or a pending) version live at once; a running daemon follows.

    With --to it also repairs a missing or broken live pointer.
    """
    with _user_errors():
        store = _open_store(config_path, state_dir)
        before, after = store.rollback(model, to)
    was = "none" if before is None else f"v{before}"
    click.echo(f"model {model}: live {was} -> v{after}. A running daemon follows within seconds.")


@snapshots.command("approve")
@CONFIG_OPTION
@STATE_DIR_OPTION
@click.argument("model")
@click.argument("version", type=VERSION, required=False)
def snapshots_approve(
    config_path: Path | None, state_dir: Path | None, model: str, version: int | None
) -> None:
    """Make the pending candidate of MODEL live (VERSION, if given, must be that candidate)."""
    with _user_errors():
        store = _open_store(config_path, state_dir)
        before = _live_or_none(store, model)
        approved = store.approve(model, version)
    was = "none" if before is None else f"v{before}"
    click.echo(
        f"model {model}: approved v{approved}; live {was} -> v{approved}. "
        "A running daemon follows within seconds."
    )


@snapshots.command("reject")
@CONFIG_OPTION
@STATE_DIR_OPTION
@click.argument("model")
@click.argument("version", type=VERSION, required=False)
def snapshots_reject(
    config_path: Path | None, state_dir: Path | None, model: str, version: int | None
) -> None:
    """Withdraw the pending candidate of MODEL: no approval awaits it and its canary stops.

    The version stays stored (retired); VERSION, if given, must be the pending one.
    """
    with _user_errors():
        store = _open_store(config_path, state_dir)
        pending = store.pending_version(model)
        if pending is None:
            raise SnapshotNotFoundError(f"model {model!r} has no pending candidate")
        if version is not None and version != pending:
            raise InvalidInputError(
                f"model {model!r}: v{version} is not the pending candidate (v{pending} is)"
            )
        store.set_pending(model, None)
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


# ------------------------------------------------------------------------ choose-k


@main.command("choose-k")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--k-min", type=int, default=2, show_default=True)
@click.option("--k-max", type=int, default=10, show_default=True)
@click.option("--features", help="Comma-separated columns to use (default: every numeric one).")
@click.option(
    "--scaling",
    type=click.Choice(["standard", "robust", "none"]),
    default="standard",
    show_default=True,
)
@click.option(
    "--sample",
    type=int,
    default=20000,
    show_default=True,
    help="Rows sampled from the file (k selection is quadratic in places).",
)
@click.option(
    "--refs",
    type=int,
    default=10,
    show_default=True,
    help="Uniform reference sets for the gap statistic (B).",
)
@click.option("--seed", type=int, default=0, show_default=True)
def choose_k(
    path: Path,
    k_min: int,
    k_max: int,
    features: str | None,
    scaling: str,
    sample: int,
    refs: int,
    seed: int,
) -> None:
    """Choose k on a data file (CSV, Parquet, NPY): elbow, silhouette and gap statistic."""
    import numpy as np

    from monitor.core import scaling as scaling_mod
    from monitor.core import selection
    from monitor.sources.files import read_table

    with _user_errors():
        if k_min < 1 or k_max <= k_min:
            raise InvalidInputError(f"need 1 <= --k-min < --k-max; got {k_min} and {k_max}")
        names, X = read_table(path, [f.strip() for f in features.split(",")] if features else None)
        rng = np.random.default_rng(seed)
        if X.shape[0] > sample:
            X = X[np.sort(rng.choice(X.shape[0], sample, replace=False))]
        ok = np.isfinite(X).all(axis=1)
        if not ok.all():
            click.echo(f"dropping {int((~ok).sum())} rows with NaN or infinity", err=True)
            X = X[ok]
        Xs = scaling_mod.transform(scaling_mod.fit_scaler(X, scaling), X)
        ks = list(range(k_min, k_max + 1))
        sel = selection.choose_k(Xs, ks, n_refs=refs, random_state=seed)
    click.echo(f"{path}: {X.shape[0]} rows x {X.shape[1]} features ({', '.join(names)})")
    top = float(np.max(sel.silhouette)) if np.max(sel.silhouette) > 0 else 1.0
    click.echo(f"{'k':>3}  {'inertia':>12}  {'silhouette':>10}  {'gap':>8}  {'s_k':>7}  silhouette")
    for i, k in enumerate(sel.ks):
        bar = "#" * max(0, round(30 * float(sel.silhouette[i]) / top))
        marks = [
            name
            for name, best in (
                ("elbow", sel.best_elbow),
                ("silhouette", sel.best_silhouette),
                ("gap", sel.best_gap),
            )
            if best == k
        ]
        click.echo(
            f"{k:>3}  {sel.inertia[i]:>12.4g}  {sel.silhouette[i]:>10.4f}  {sel.gap[i]:>8.4f}  "
            f"{sel.gap_sk[i]:>7.4f}  {bar:<30} {' '.join('<- ' + m for m in marks)}"
        )
    click.echo(
        f"elbow: k={sel.best_elbow}  silhouette: k={sel.best_silhouette}  gap: k={sel.best_gap}"
    )


# ------------------------------------------------------------------------ as code


@main.command()
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where alerts/, dashboards/ and runbooks/ are written.",
)
@click.option("--check", is_flag=True, help="Only report files that are stale; exit 1 if any.")
@click.option("--runbook-url-pattern", help="Pattern for runbook_url, with {alertname}.")
@click.option(
    "--time-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Multiply every for: and range window of the rules (tests use small values).",
)
def render(root: Path, check: bool, runbook_url_pattern: str | None, time_scale: float) -> None:
    """Regenerate dashboards, alert rules and runbooks from their one source."""
    from monitor import render as render_mod

    if check:
        stale = render_mod.stale_files(root)
        for name in stale:
            click.echo(f"stale: {name}", err=True)
        if stale:
            click.echo("run `kmeans-monitor render` and commit the result", err=True)
            sys.exit(1)
        click.echo("generated files are up to date")
        return
    options = render_mod.RenderOptions(time_scale=time_scale)
    if runbook_url_pattern:
        options = render_mod.RenderOptions(
            runbook_url_pattern=runbook_url_pattern, time_scale=time_scale
        )
    for written in render_mod.render_all(root, options):
        click.echo(f"wrote {written}")


@main.command()
@click.argument("alertname")
def runbook(alertname: str) -> None:
    """Print the runbook of an alert."""
    from monitor import render as render_mod

    with _user_errors():
        click.echo(render_mod.runbook_markdown(alertname))


# ------------------------------------------------------------------------ simulate


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
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
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between two computations of the gauges.",
)
def simulate(config_path: Path | None, listen: str, refresh: float) -> None:
    """Serve simulated service telemetry on /metrics for Prometheus (one series per instance)."""
    from monitor.bootstrap import simulator_server
    from monitor.config import parse_listen
    from monitor.daemon import run_until_signal
    from monitor.simulator import parse_service_options
    from monitor.yamlfile import read_yaml

    with _user_errors():
        options = parse_service_options(None if config_path is None else read_yaml(config_path))
        host, port = parse_listen(listen)
        server = simulator_server(options, host, port, refresh=refresh)
    run_until_signal(
        server,
        on_started=lambda: click.echo(
            f"simulated telemetry of {options.instances} instance(s), features "
            f"{', '.join(options.features)}: {server.url}/metrics (Ctrl-C to stop)"
        ),
    )
