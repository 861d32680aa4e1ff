"""Real telemetry: false flags on a real metric, and how fast changes put into it page (issue 9).

The data is real: the half-hourly electricity demand of England and Wales from Monday
5 June to Sunday 27 August 2000, in megawatts (4,032 points; Taylor 2003, "Short-term
electricity demand forecasting using double seasonal exponential smoothing"), as the
pmdarima package ships it (``pmdarima.datasets.load_taylor``, in the extras ``bench``
and ``test``). It has a daily cycle, a weekly one (weekends about 18 % lower) and a
summer dip in early August; no incident is known in it.

It is turned into the features the issue's user had: the value, its difference, and its
rolling mean and standard deviation over 3 hours (6 points; the first five points, whose
rolling window is not full, are left out), written to one CSV file with a timestamp
column and read by the files source (``window: time_range``), as a user would set it up.
Each configuration is replayed by ``monitor.bootstrap.backtest``, the code behind
``kmeans-monitor backtest``, from 19 June (after two weeks that a reference period can
take) to the end: 280 windows of 6 hours (12 points) or 70 of a day (48 points) after
run 0, whose window is the reference period's last; each run right after its window.

Configurations (``CONFIGS``), all with k = 4 and the defaults otherwise:

- ``naive``: no reference period (the first window is the reference), fixed thresholds,
  no seasonality: what the issue measured.
- ``weekly``: ``reference: {window: 14d}``, ``seasonality: weekly``, calibrated
  thresholds (the default mode).
- ``daily``: the same with ``seasonality: daily`` (Saturdays share their phase with
  Mondays).

(a) Quiet: flags (runs on which any alert condition held), pages (streaks of two flags
    or more, each one page), fired (alert instances that started firing under the
    shipped rules, as ``kmeans-monitor backtest`` counts them) and the flags per alert,
    per configuration and window.
(b) Events, with ``weekly``: each changes the series from Monday 3 July 00:00 UTC on
    (before the features are derived) and is replayed from 19 June to 17 July; its delay
    is counted as in ``bench_detection``: the first window flagged right after a flagged
    window, both at or after the onset, as windows from the onset's window (2: that one
    and the next); "no event" is the same rule on the quiet replay.

(c) ``--model-seeds``: the quiet replays once per model seed (``training.seed``, which
    seeds the reference's fit and its calibration's draws), as many users' models of
    the same metric would differ; the events use the first.
(d) ``--interval``: the quiet replays run every ``INTERVAL`` instead of once per window
    (the windows overlap when it is shorter, as with ``window: 6h`` and ``schedule:
    {interval: 15m}``), and their flags are also counted by the run's offset from the
    reference period's windows, ``(end - FIRST_RUN) mod window``: the runs at one offset
    are those of a schedule of one window that starts there (a daemon restarted then).
    The events keep one run per window.

    python -m bench realdata [--windows 6h,1d] [--configs naive,weekly,daily]
                             [--events K,...] [--seed 0] [--model-seeds 0,...]
                             [--interval 30m] [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import SEED_MAX, Parser, integers, names, output_file, seed

START = 960_163_200.0  # 2000-06-05T00:00:00Z, a Monday: the first point
STEP = 1800.0  # a point every half hour
DAY = 86400.0
ROLLING = 6  # points of the rolling mean and standard deviation (3 hours)
FEATURES = ["demand", "demand_diff", "demand_mean_3h", "demand_std_3h"]
FIRST_RUN = START + 14 * DAY  # 2000-06-19: two weeks of reference before it
QUIET_END = START + 84 * DAY  # 2000-08-28: the end of the data
ONSET = START + 28 * DAY  # 2000-07-03, a Monday: events start here
EVENT_END = START + 42 * DAY  # 2000-07-17: events are replayed two weeks past the onset
WINDOWS = {"6h": 6 * 3600.0, "1d": DAY}
CONFIGS = ("naive", "weekly", "daily")


def changes(rng: np.random.Generator) -> dict[str, Callable[[Any, Any], Any]]:
    """Each kind of change: (values, after) -> the changed values, ``after`` the points
    from the onset on."""
    return {
        "unit_change": lambda y, on: np.where(on, y * 1000.0, y),  # megawatts to kilowatts
        "step_10pct": lambda y, on: np.where(on, y * 1.10, y),
        "step_20pct": lambda y, on: np.where(on, y * 1.20, y),
        "flatline": lambda y, on: np.where(on, y[np.argmax(on) - 1], y),  # a stuck sensor
        "nan_burst": lambda y, on: np.where(on & (rng.random(y.shape[0]) < 0.3), np.nan, y),
        "noise": lambda y, on: np.where(on, y + rng.normal(0.0, 1000.0, y.shape[0]), y),
    }


EVENTS = tuple(changes(np.random.default_rng(0)))


def demand() -> Any:
    """The half-hourly demand in megawatts (4,032 points from ``START``)."""
    from pmdarima.datasets import load_taylor

    return np.asarray(load_taylor(), dtype=np.float64)


def features(values: Any) -> Any:
    """(n - 5, 1 + 4): the time, then the value, its difference and its rolling mean and
    standard deviation over ``ROLLING`` points (missing points left out of them)."""
    y = np.asarray(values, dtype=np.float64)
    ts = START + STEP * np.arange(y.shape[0])
    diff = np.concatenate([[np.nan], np.diff(y)])
    rolling = np.lib.stride_tricks.sliding_window_view(y, ROLLING)
    with warnings.catch_warnings():  # a window of missing points has no mean: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(rolling, axis=1)
        std = np.nanstd(rolling, axis=1, ddof=1)
    full = slice(ROLLING - 1, None)
    return np.column_stack([ts[full], y[full], diff[full], mean, std])


def write_csv(path: Path, table: Any) -> None:
    """``features``' table as a CSV file with a header (empty cells for NaN)."""
    lines = ["timestamp," + ",".join(FEATURES)]
    for row in table:
        cells = ["" if not np.isfinite(v) else f"{v:.3f}" for v in row[1:]]
        lines.append(f"{int(row[0])}," + ",".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def model(
    window: str, config: str, data: Path, model_seed: int = 0, interval: float | None = None
) -> dict[str, Any]:
    """The model's configuration, as a user would write it under ``models:``; its runs
    every ``interval`` seconds (None: once per window)."""
    out: dict[str, Any] = {
        "name": "demand",
        "features": FEATURES,
        "k": 4,
        "window": window,
        "schedule": {"interval": window if interval is None else interval},
        "training": {"seed": model_seed},
        "source": {"kind": "files", "path": str(data), "pattern": "*.csv", "window": "time_range"},
    }
    if config == "naive":
        out.update(seasonality="none", thresholds={"mode": "fixed"})
    else:
        out.update(reference={"window": "14d"}, seasonality=config)
    return out


def replay(
    window: str,
    config: str,
    data: Path,
    end: float,
    model_seed: int = 0,
    interval: float | None = None,
) -> Any:
    """The backtest of one configuration from ``FIRST_RUN`` - window to ``end``."""
    from monitor.bootstrap import backtest, load_settings

    models = [model(window, config, data, model_seed, interval)]
    raw = {"daemon": {"state_dir": "/nonexistent"}, "models": models}
    settings = load_settings(None, raw=raw)
    return backtest(settings, "demand", FIRST_RUN - WINDOWS[window], end)


def quiet(
    window: str, config: str, data: Path, model_seed: int = 0, interval: float | None = None
) -> tuple[dict[str, Any], list[bool]]:
    """Flags and pages of one configuration on the real series; every run's flag."""
    t0 = time.perf_counter()
    r = replay(window, config, data, QUIET_END, model_seed, interval)
    after = r.windows[1:]  # run 0 reads the reference's last window
    by_alert: dict[str, int] = {}
    for w in after:
        for name in sorted({c.alert for c in w.held}):
            by_alert[name] = by_alert.get(name, 0) + 1
    return {
        "window": window,
        "config": config,
        "model_seed": model_seed,
        "interval": WINDOWS[window] if interval is None else interval,
        "windows": len(after),
        "flags": sum(w.flag for w in after),
        "pages": sum(w.page for w in after),
        # Alert instances that started firing under the shipped rules (backtest's count).
        "fired": sum(r.alerts().values()),
        "failed": sum(w.failed for w in after),
        "flags_by_alert": dict(sorted(by_alert.items())),
        "flagged": [i for i, w in enumerate(after, start=1) if w.flag],
        "by_offset": by_offset(after, WINDOWS[window]),
        "seconds": round(time.perf_counter() - t0, 1),
    }, [w.flag for w in r.windows]


def by_offset(runs: Any, window: float) -> dict[str, list[int]]:
    """Runs and flags per offset of the run's end from the reference period's windows,
    ``(end - FIRST_RUN) mod window``, in hours: {offset: [runs, flags]}."""
    out: dict[float, list[int]] = {}
    for w in runs:
        counts = out.setdefault((w.end - FIRST_RUN) % window / 3600.0, [0, 0])
        counts[0] += 1
        counts[1] += int(w.flag)
    return {f"{hours:g}h": counts for hours, counts in sorted(out.items())}


def onset_index(window: str) -> int:
    """The index of the first run whose window starts at the onset (run 0 ends at
    ``FIRST_RUN``, run i at ``FIRST_RUN + i * window``)."""
    return int((ONSET - FIRST_RUN) // WINDOWS[window]) + 1


def delay(flags: list[bool], onset: int) -> int | None:
    """Windows from the onset's window to the first flag right after a flag, both at or
    after it (``bench_detection``'s rule); None: no such pair."""
    page = next((p for p in range(onset + 1, len(flags)) if flags[p] and flags[p - 1]), None)
    return None if page is None else page - onset + 1


def event(
    window: str,
    kind: str,
    values: Any,
    change: Callable[[Any, Any], Any],
    control: list[bool],
    end: float = EVENT_END,
    model_seed: int = 0,
) -> dict[str, Any]:
    """The delay of one change (configuration ``weekly``), against the quiet replay's,
    in windows up to ``end``."""
    after = START + STEP * np.arange(values.shape[0]) >= ONSET
    with tempfile.TemporaryDirectory(prefix="bench-realdata-") as tmp:
        write_csv(Path(tmp) / "demand.csv", features(change(values.copy(), after)))
        r = replay(window, "weekly", Path(tmp), end, model_seed)
    flags = [w.flag for w in r.windows]
    onset = onset_index(window)
    found = delay(flags, onset)
    control_delay = delay(control[: len(flags)], onset)
    held = {c.alert for w in r.windows[onset : onset + (found or len(flags))] for c in w.held}
    return {
        "window": window,
        "kind": kind,
        "delay": found,
        "control_delay": control_delay,
        "attributable": found is not None and (control_delay is None or found < control_delay),
        "alerts": sorted(held),
        "flags_before_onset": sum(flags[1:onset]),
    }


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"{'window':<6} {'config':<7} {'seed':>4} {'runs':>7} {'flags':>5} {'pages':>5} "
        f"{'fired':>5}  flags by alert"
    ]
    for q in result["quiet"]:
        alerts = ", ".join(f"{k}={v}" for k, v in q["flags_by_alert"].items()) or "-"
        lines.append(
            f"{q['window']:<6} {q['config']:<7} {q['model_seed']:>4} {q['windows']:>7} "
            f"{q['flags']:>5} {q['pages']:>5} {q['fired']:>5}  {alerts}"
        )
        if len(q["by_offset"]) > 1:
            offsets = ", ".join(f"{k} {f}/{n}" for k, (n, f) in q["by_offset"].items())
            lines.append(f"{'':<6} flags/runs by offset from the reference's windows: {offsets}")
    if result["events"]:
        lines.append(f"{'window':<6} {'kind':<12} {'delay':>5} {'no event':>8}  alerts")
    for e in result["events"]:
        found = "-" if e["delay"] is None else str(e["delay"])
        control = "-" if e["control_delay"] is None else str(e["control_delay"])
        lines.append(
            f"{e['window']:<6} {e['kind']:<12} {found:>5} {control:>8}  "
            + (", ".join(e["alerts"]) or "-")
        )
    return "\n".join(lines)


def _parser() -> Parser:
    parser = Parser(prog="python -m bench realdata", description=__doc__)
    parser.add_argument(
        "--windows", type=names(WINDOWS), default=list(WINDOWS), help="window durations"
    )
    parser.add_argument("--configs", type=names(CONFIGS), default=list(CONFIGS))
    parser.add_argument(
        "--events", type=names(EVENTS), default=list(EVENTS), help="kinds of change (weekly)"
    )
    parser.add_argument("--seed", type=seed, default=0, help="the random changes' seed")
    parser.add_argument(
        "--model-seeds",
        type=integers(0, SEED_MAX),
        default=[0],
        help="the model's training.seed, one quiet replay each (the events: the first)",
    )
    parser.add_argument(
        "--interval",
        type=interval,
        default=None,
        help="the quiet replays' schedule interval, e.g. 30m (default: one run per window)",
    )
    parser.add_argument("--json", type=output_file, default=None, help="where the JSON goes")
    return parser


def interval(text: str) -> float:
    """A schedule interval of whole half hours, the series' step (argparse type)."""
    from monitor.checks import Mismatch
    from monitor.durations import check_duration

    try:
        seconds = check_duration(text, "--interval")
    except Mismatch:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m or 1h") from None
    if seconds % STEP:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of half hours")
    return seconds


def main(argv: list[str]) -> int:
    """Run the replays, print the tables, write the JSON."""
    from monitor.errors import DegenerateDataWarning

    parser = _parser()
    args = parser.parse_args(argv)
    if importlib.util.find_spec("pmdarima") is None:
        parser.error(
            "pmdarima is not installed (the extra 'bench': pip install 'kmeans-monitor[bench]')"
        )
    # A flat line leaves fewer distinct rows than clusters: the warnings say so every run.
    warnings.simplefilter("ignore", DegenerateDataWarning)
    values = demand()
    changed = changes(np.random.default_rng(args.seed))
    seeds = args.model_seeds
    result: dict[str, Any] = {"seed": args.seed, "model_seeds": seeds, "quiet": [], "events": []}
    with tempfile.TemporaryDirectory(prefix="bench-realdata-") as tmp:
        write_csv(Path(tmp) / "demand.csv", features(values))
        controls: dict[str, list[bool]] = {}
        for window, config, s in itertools.product(args.windows, args.configs, seeds):
            summary, flags = quiet(window, config, Path(tmp), s, args.interval)
            result["quiet"].append(summary)
            print(f"{window} {config} seed {s}: {summary['seconds']} s", file=sys.stderr)
            if config == "weekly" and s == seeds[0] and args.interval is None:
                controls[window] = flags
        # The events' control is the weekly replay, run here when --configs left it out.
        for window in args.windows if args.events else []:
            if window not in controls:
                controls[window] = quiet(window, "weekly", Path(tmp), seeds[0])[1]
    for window, kind in itertools.product(args.windows, args.events):
        change = changed[kind]
        result["events"].append(
            event(window, kind, values, change, controls[window], model_seed=seeds[0])
        )
    print(_table(result))
    path = args.json or Path(__file__).parent / "results" / f"realdata-{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return 0
