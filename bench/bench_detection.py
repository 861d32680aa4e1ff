"""Detection: false flags on quiet windows, and how fast each kind of change pages (issue 9).

The synthetic source with a daily cycle in its regimes' shares and levels (simulator
``seasonality`` 0.2, ``noise`` 1.0), five service features, four regimes, windows of 15
minutes run every 15 minutes, a one-day reference (``reference: {window: 1d}``;
``--reference`` sets another), ``seasonality: daily``. Every replay goes through
``monitor.bootstrap.backtest``, the code behind ``kmeans-monitor backtest``: the same
pipeline as the daemon, on in-memory stores, with each run's alert conditions judged by
``monitor.alerting``.

The first run (index 0) ends one day after the simulator's origin, so the reference
period is that first day (a longer one reaches back before the origin, where the
simulator's rows follow the same cycle); the windows after it are numbered from 1.

(a) Quiet: ``--windows`` windows after the reference, no event: flags (runs on which
    any alert condition held) per 1,000 windows, pages (streaks of two flags or more,
    each one page) and the windows flagged right after a flag.
(b) Events: one replay per kind, its onset at the start of window ``ONSET``: the delay
    in windows of the first page after the onset, i.e. the first window ``p`` flagged
    right after a flagged window with both at or after the onset, as ``p - ONSET + 1``
    (2 means "the onset window and the next both flagged"),
    the alerts whose conditions held from the onset to that page, and any page before
    the onset. Not detected within ``HORIZON`` windows: "-". "no event" is the delay the
    same rule finds in the quiet replay over the same windows: when it is as short, the
    flags were there without the change and the detection proves nothing, so "met" needs
    the delay within the target and shorter than that.

``--retrain`` sets the model's retrain policy (default ``manual``, the daemon's);
``scheduled`` promotes every ``SCHEDULED_EVERY`` (6 hours). Each replay counts its
promotions: a promoted version must stay as quiet as the first.

    python -m bench detection [--rows 2000|50] [--mode auto|fixed|calibrated]
                              [--windows 1000] [--seed 0] [--kinds K,...]
                              [--reference 1d] [--retrain POLICY] [--json PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import Parser, integer, names, output_file, seed

DAY = 86400.0
STEP = 900.0  # window and interval: 15 minutes
ORIGIN = 1_704_067_200.0  # 2024-01-01T00:00:00Z: the simulator's origin
ONSET = 4  # events start with window 4 (three quiet windows before them)
HORIZON = 30  # windows after the onset in which a page counts as a detection
K = 4  # the model's clusters, and the simulator's regimes
FEATURES = ["latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps", "error_ratio"]

# The kinds of change of issue 9; "after" is added from ONSET.
EVENTS: dict[str, dict[str, Any]] = {
    "mean_shift": {"kind": "mean_shift", "cluster": 1, "magnitude": 0.75},
    "new_cluster_outside": {"kind": "new_cluster", "share": 0.05, "placement": "outside"},
    "new_cluster_between": {"kind": "new_cluster", "share": 0.05, "placement": "between"},
    "vanish": {"kind": "vanish", "cluster": 2},
    "variance": {"kind": "variance", "factor": 2.0},
    "unit_change": {"kind": "unit_change", "feature": "rps", "factor": 1000.0},
    "nan_burst": {"kind": "nan_burst", "feature": "cpu_ratio", "ratio": 0.3},
    "gradual": {"kind": "mean_shift", "cluster": 1, "magnitude": 2.0, "ramp": 24 * STEP},
}
TARGET = {"gradual": 4}  # detection target in windows; 2 for every other kind
SCHEDULED_EVERY = "6h"  # training.retrain_every under --retrain scheduled


def configuration(
    rows: int,
    mode: str,
    seed: int,
    events: list[dict[str, Any]],
    reference: str = "1d",
    retrain: str = "manual",
) -> Any:
    """The settings of the benchmark's one model; ``reference``: its period's duration;
    ``retrain``: its policy."""
    from monitor.bootstrap import load_settings

    model = {
        "name": "bench",
        "features": FEATURES,
        "k": K,
        "window": "15m",
        "schedule": {"interval": "15m"},
        "reference": {"window": reference},
        "seasonality": "daily",
        "thresholds": {"mode": mode},
        "validation": {"min_rows": min(100, rows)},
        "training": {"seed": seed}
        | ({"retrain_every": SCHEDULED_EVERY} if retrain == "scheduled" else {}),
        "retrain": retrain,
        "source": {
            "kind": "synthetic",
            "seed": seed,
            "regimes": K,
            "rows_per_window": rows,
            "seasonality": 0.2,
            "noise": 1.0,
            "origin": ORIGIN,
            "events": events,
        },
    }
    return load_settings(None, raw={"daemon": {"state_dir": "/nonexistent"}, "models": [model]})


def _replay(
    rows: int,
    mode: str,
    seed: int,
    windows: int,
    events: list[dict[str, Any]],
    reference: str,
    retrain: str,
) -> Any:
    """Runs 0 (the reference, ending one day after the origin) to ``windows``."""
    from monitor.bootstrap import backtest

    settings = configuration(rows, mode, seed, events, reference, retrain)
    first_end = ORIGIN + DAY
    return backtest(settings, "bench", first_end - STEP, first_end + windows * STEP)


def quiet(
    rows: int, mode: str, seed: int, windows: int, reference: str = "1d", retrain: str = "manual"
) -> tuple[dict[str, Any], list[bool]]:
    """Flags and pages over ``windows`` quiet windows after the reference; every run's flag."""
    t0 = time.perf_counter()
    r = _replay(rows, mode, seed, windows, [], reference, retrain)
    after = r.windows[1:]
    flagged = [w for w in after if w.flag]
    by_alert: dict[str, int] = {}
    for w in flagged:
        for name in sorted({c.alert for c in w.held}):
            by_alert[name] = by_alert.get(name, 0) + 1
    return {
        "windows": len(after),
        "flags": len(flagged),
        "flags_per_1000": 1000 * len(flagged) / max(1, len(after)),
        "pages": sum(w.page for w in after),
        "paging_windows": sum(a.flag and b.flag for a, b in itertools.pairwise(after)),
        "failed": sum(w.failed for w in after),
        "promotions": _promotions(after),
        "flags_by_alert": dict(sorted(by_alert.items())),
        "seconds": round(time.perf_counter() - t0, 1),
    }, [w.flag for w in r.windows]


def _promotions(windows: list[Any]) -> int:
    """How many of ``windows``' runs promoted a new version."""
    return sum(bool(getattr(w.result, "promoted", False)) for w in windows)


def _detection(flag: list[bool]) -> int | None:
    """The first window flagged right after a flag, both at or after the onset.

    A flag left over from before the change must not count as having seen it.
    """
    end = min(len(flag), ONSET + HORIZON + 1)
    return next((p for p in range(ONSET + 1, end) if flag[p] and flag[p - 1]), None)


def event(
    rows: int,
    mode: str,
    seed: int,
    kind: str,
    control: list[bool],
    reference: str = "1d",
    retrain: str = "manual",
) -> dict[str, Any]:
    """The detection delay of one kind of change, and the alerts that saw it.

    ``control`` are the flags of the quiet replay (same seed, no event): the delay the
    same rule finds there says how much of the detection the change can claim.
    """
    spec = {**EVENTS[kind], "after": DAY + (ONSET - 1) * STEP}
    r = _replay(rows, mode, seed, ONSET + HORIZON, [spec], reference, retrain)
    pages = [w.index for w in r.windows[1:] if w.page]
    detected = _detection([w.flag for w in r.windows])
    last = detected if detected is not None else len(r.windows) - 1
    alerts = sorted({c.alert for w in r.windows[ONSET : last + 1] for c in w.held})
    delay = _delay(detected)
    control_delay = _delay(_detection(control)) if len(control) > ONSET + 1 else None
    # A detection counts only when it comes before the quiet replay's own first page.
    attributable = delay is not None and (control_delay is None or delay < control_delay)
    return {
        "kind": kind,
        "delay": delay,
        "target": TARGET.get(kind, 2),
        "met": attributable and delay is not None and delay <= TARGET.get(kind, 2),
        "alerts": alerts,
        "pages_before_onset": sum(1 for p in pages if p < ONSET),
        "control_delay": control_delay,
        "flags_before_onset": sum(w.flag for w in r.windows[1:ONSET]),
        "promotions": _promotions(r.windows[1:]),
    }


def _delay(detected: int | None) -> int | None:
    return None if detected is None else detected - ONSET + 1


def _table(result: dict[str, Any]) -> str:
    q = result["quiet"]
    lines = [
        f"rows={result['rows']} mode={result['mode']} seed={result['seed']} "
        f"reference={result['reference']} retrain={result['retrain']}",
        f"quiet: {q['windows']} windows, {q['flags']} flags ({q['flags_per_1000']:.0f} per "
        f"1,000), {q['pages']} pages ({q['paging_windows']} windows flagged after a flag), "
        f"{q['failed']} failed, {q['promotions']} promotions; flags by alert: "
        + (", ".join(f"{k}={v}" for k, v in q["flags_by_alert"].items()) or "none"),
        f"{'kind':<22} {'delay':>5} {'target':>6}  {'met':<3}  {'no event':>8}  "
        "early pages  promotions  alerts",
    ]
    for e in result["events"]:
        delay = "-" if e["delay"] is None else str(e["delay"])
        control = "-" if e["control_delay"] is None else str(e["control_delay"])
        lines.append(
            f"{e['kind']:<22} {delay:>5} {e['target']:>6}  {'yes' if e['met'] else 'no':<3}  "
            f"{control:>8}  {e['pages_before_onset']:>11}  {e['promotions']:>10}  "
            f"{', '.join(e['alerts']) or '-'}"
        )
    return "\n".join(lines)


def _reference(text: str) -> str:
    """``--reference``: a duration of at least a day (the model's seasonality is daily)."""
    from monitor.checks import Mismatch
    from monitor.durations import check_duration

    try:
        seconds = check_duration(text, "--reference")
    except Mismatch as exc:
        raise argparse.ArgumentTypeError(f"must be {exc.problem.expected}; got {text!r}") from None
    if seconds < DAY:
        raise argparse.ArgumentTypeError(f"must be at least 1d (a daily cycle); got {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    """The options; ``--mode`` defaults to the daemon's ``thresholds.mode``."""
    from monitor.config import RETRAIN_POLICIES, THRESHOLD_MODES, ThresholdSettings

    parser = Parser(prog="python -m bench detection", description=__doc__)
    parser.add_argument(
        "--rows", type=integer(K), default=2000, help=f"rows per window (2000 or 50; at least {K})"
    )
    parser.add_argument(
        "--mode",
        choices=THRESHOLD_MODES,
        default=ThresholdSettings().mode,
        help="thresholds.mode (default: the daemon's, %(default)s)",
    )
    parser.add_argument("--windows", type=integer(1), default=1000, help="quiet windows")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument(
        "--kinds",
        type=names(EVENTS, none=True),
        default=list(EVENTS),
        help='comma-separated kinds; "" for the quiet replay alone',
    )
    parser.add_argument(
        "--reference", type=_reference, default="1d", help="the reference period (1d or more)"
    )
    parser.add_argument(
        "--retrain",
        choices=RETRAIN_POLICIES,
        default="manual",
        help=f"the retrain policy (default %(default)s; scheduled: every {SCHEDULED_EVERY})",
    )
    parser.add_argument("--json", type=output_file, default=None, help="where the JSON goes")
    return parser


def main(argv: list[str]) -> int:
    """Run the benchmark, print the table, write the JSON."""
    import warnings

    from monitor.errors import DegenerateDataWarning

    parser = _parser()
    args = parser.parse_args(argv)
    kinds = args.kinds
    parser.check_model(
        lambda: configuration(args.rows, args.mode, args.seed, [], args.reference, args.retrain)
    )
    # A unit change puts a whole window in one cluster: the warnings say so at every run.
    warnings.simplefilter("ignore", DegenerateDataWarning)
    result: dict[str, Any] = {
        "rows": args.rows, "mode": args.mode, "seed": args.seed, "reference": args.reference,
        "retrain": args.retrain,
    }  # fmt: skip
    result["quiet"], control = quiet(
        args.rows, args.mode, args.seed, args.windows, args.reference, args.retrain
    )
    print(f"quiet windows done in {result['quiet']['seconds']} s", file=sys.stderr)
    result["events"] = [
        event(args.rows, args.mode, args.seed, k, control, args.reference, args.retrain)
        for k in kinds
    ]
    print(_table(result))
    path = args.json or Path(__file__).parent / "results" / (
        f"detection-{args.rows}-{args.mode}-{args.seed}-{args.reference}"
        + ("" if args.retrain == "manual" else f"-{args.retrain}")
        + ".json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return 0
