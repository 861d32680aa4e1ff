"""Calibrated thresholds hold their false-alarm rate on fresh quiet windows (issue 9).

A reference period of ``--blocks`` windows of ``--rows`` rows is drawn from a known
mixture: ``--k`` Gaussian clusters of unit variance in ``--d`` features, their centres
drawn from N(0, 4²) per coordinate, their shares proportional to k, k - 1, ..., 1. The
pipeline trains the model on it (``monitor.pipeline.train.train_reference``: scaler,
centres, reference bins, outlier distances), and ``monitor.core.calibration.calibrate``
sets the thresholds of every calibrated SLI (``monitor.slis.CALIBRATED``) at
``--false-alarm-rate``, on the pipeline's kind of size grid: doubling from the smallest
of ``--sizes`` up to the largest, the sizes in between interpolated by ``threshold_at``
as in a run. The model has the default ``seasonality: daily`` (the reference is one
day), so a window is compared with the reference at its phase of the day, and the
calibration compares each reference window the same way
(``monitor.pipeline.train.calibration_phases``), as the pipeline's does.

Fresh quiet windows, drawn from the same mixture (not from the reference), of each of
``--sizes`` rows then go through the pipeline's measure step
(``monitor.pipeline.measure.measure``: the live model scored, a candidate trained and
compared, as in a run), and their SLIs are compared with the thresholds at their size
(``monitor.alerting.past``). A window is *flagged* when any calibrated SLI is past its
threshold; the family-wise rate is the flagged share, given with its exact
(Clopper-Pearson) 95 % interval, and each SLI's flags are counted too. Issue 9's target:
the rate within 2x of the false-alarm rate (at most 0.02 at 0.01). A rate far below the
false-alarm rate is no better: the thresholds are looser than they need be, and real
changes go unseen.

Each seed draws its own mixture, reference, model, calibration and windows; the table
gives every seed and the median over seeds.

``--pipeline`` calibrates as a first run does instead (``train.train_reference`` in
``calibrated`` mode: null windows drawn from its sample of ``train.calibration_rows``
rows, at the sizes of ``train.size_grid``), which is what large windows (periods of more
than ``train.CALIBRATION_ROWS`` rows) need to be measured on, e.g.
``--pipeline --blocks 24 --rows 200000 --sizes 20000,100000,200000 --windows 60``.

    python -m bench calibration [--k 4] [--d 5] [--rows 2000] [--blocks 288]
                                [--false-alarm-rate 0.01] [--sizes 50,500,5000]
                                [--windows 1000] [--seeds 0] [--pipeline] [--json PATH]

Exit status 1 when the median rate at some size is above twice the false-alarm rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench import SEED_MAX, Parser, clusters, integer, integers, number, output_file

STEP = 300.0  # seconds per window: five minutes (times only label the windows)
SPREAD = 4.0  # standard deviation of the mixture's centres; the clusters' is 1
# Null windows refitted per size for the centroid drift (the split gain draws half to
# twice as many at every size): what the pipeline uses, max(30, 12 * calibration_refits),
# at the default calibration_refits=5.
FITS = 60


@dataclass(frozen=True)
class Tally:
    """Flags of one set of windows: any SLI past its threshold, and each SLI's own."""

    windows: int
    flags: int
    by_sli: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """The family-wise flag rate (NaN without windows)."""
        return self.flags / self.windows if self.windows else float("nan")


def tally(values: Sequence[Mapping[str, float]], thresholds: Mapping[str, float | None]) -> Tally:
    """Count the windows whose SLIs ``values`` are past ``thresholds`` (None: not a signal)."""
    from monitor.alerting import past

    signals = {key: t for key, t in thresholds.items() if t is not None}
    by_sli = dict.fromkeys(thresholds, 0)
    flags = 0
    for window in values:
        crossed = [key for key, t in signals.items() if past(window[key], t, key)]
        for key in crossed:
            by_sli[key] += 1
        flags += bool(crossed)
    return Tally(len(values), flags, by_sli)


def binomial_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial proportion at ``level``."""
    from scipy.stats import beta

    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1; got {successes}/{trials}")
    tail = (1.0 - level) / 2
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes, trials - successes + 1))
    high = (
        1.0
        if successes == trials
        else float(beta.ppf(1.0 - tail, successes + 1, trials - successes))
    )
    return low, high


def size_grid(sizes: Sequence[int]) -> list[int]:
    """Sizes to calibrate at: doubling from the smallest of ``sizes`` to the largest."""
    low, high = min(sizes), max(sizes)
    grid = [low]
    while grid[-1] < high:
        grid.append(min(high, grid[-1] * 2))
    return grid


def draw(centres: np.ndarray, shares: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows of the mixture: a cluster by its share, then unit noise around its centre."""
    labels = rng.choice(centres.shape[0], size=n, p=shares)
    return centres[labels] + rng.normal(size=(n, centres.shape[1]))


def model_settings(k: int, d: int, min_rows: int, seed: int, mode: str = "fixed") -> Any:
    """The benchmark's one model: ``k`` clusters of ``d`` features, otherwise the defaults.

    ``fixed`` thresholds: training then leaves the calibration out (this benchmark runs
    it), and the measure step's own thresholds are not what it counts; ``calibrated``:
    training calibrates as a first run does (``--pipeline``).
    """
    from monitor.bootstrap import load_settings

    model = {
        "name": "bench",
        "features": [f"x{j}" for j in range(d)],
        "k": k,
        "window": f"{STEP:.0f}s",
        "schedule": {"interval": f"{STEP:.0f}s"},
        "thresholds": {"mode": mode},
        "validation": {"min_rows": min_rows},
        "training": {"seed": seed},
        "source": {"kind": "synthetic"},
    }
    settings = load_settings(None, raw={"daemon": {"state_dir": "/nonexistent"}, "models": [model]})
    return settings.models[0]


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Train, calibrate and count the flags of fresh quiet windows for one seed."""
    from monitor import slis as S
    from monitor.core import calibration
    from monitor.pipeline import train
    from monitor.records import ReferencePeriod

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=SPREAD, size=(args.k, args.d))
    weights = np.arange(args.k, 0, -1, dtype=np.float64)
    shares = weights / weights.sum()
    mode = "calibrated" if args.pipeline else "fixed"
    model = model_settings(args.k, args.d, min(args.sizes), seed, mode)
    ref = ReferencePeriod(
        X=draw(centres, shares, args.blocks * args.rows, rng),
        block=np.repeat(np.arange(args.blocks), args.rows),
        starts=np.arange(args.blocks) * STEP,
        ends=np.arange(1, args.blocks + 1) * STEP,
    )
    end = float(ref.ends[-1])
    snap = train.train_reference(
        ref, model, now=end, reason="initial", package_version="", working_memory_mib=64.0
    )
    keys = [key for key in S.CALIBRATED if key in calibration.CALIBRATABLE]
    null = snap.null if args.pipeline else _calibrate(args, ref, snap, model, keys, seed)
    assert null is not None
    live = replace(snap, null=null)
    out: dict[str, Any] = {
        "seed": seed,
        "train_and_calibrate_seconds": round(time.perf_counter() - t0, 1),
        "calibrated_at": [int(n) for n in null.sizes],
        "sizes": [],
    }
    for size in zip(args.sizes, args.windows, strict=True):
        out["sizes"].append(_count_flags(args, seed, size, live, model, (centres, shares), end))
    return out


def _calibrate(
    args: argparse.Namespace, ref: Any, snap: Any, model: Any, keys: list[str], seed: int
) -> Any:
    """The null table on every row of ``ref``, at the benchmark's own size grid."""
    from monitor.core import calibration
    from monitor.pipeline import train
    from monitor.pipeline.scoring import prepare

    Xs = prepare(ref.X, snap.scaler, snap.metric)
    phases = train.calibration_phases(ref, model)
    if phases is not None:  # the runs' comparison: shifted where a warm start settles
        _, phases = train.center_shifts(Xs, ref.block, phases, snap, model, 64.0)
    null, _ = calibration.calibrate(
        Xs, ref.block, snap.centers, snap.bins, snap.outliers, starts=ref.starts,
        ends=ref.ends, sizes=size_grid(args.sizes), keys=keys,
        false_alarm_rate=args.false_alarm_rate, n_fits=FITS, phases=phases,
        random_state=seed, refit=train.candidate_refit(model, 64.0),
        split_baseline=snap.split_baseline,
    )  # fmt: skip
    return null


def _count_flags(
    args: argparse.Namespace,
    seed: int,
    size: tuple[int, int],
    live: Any,
    model: Any,
    mixture: tuple[np.ndarray, np.ndarray],
    end: float,
) -> dict[str, Any]:
    """Fresh quiet windows of ``size`` = (rows, count) drawn from ``mixture`` = (centres,
    shares), measured as a run measures them and counted against ``live``'s null."""
    from monitor import slis as S
    from monitor.core import calibration
    from monitor.pipeline.measure import RunContext, measure
    from monitor.pipeline.phases import Phases
    from monitor.records import Window

    keys = [key for key in S.CALIBRATED if key in calibration.CALIBRATABLE]
    n, count = size
    t1 = time.perf_counter()
    window_rng = np.random.default_rng([seed, n])
    thresholds = calibration.threshold_at(live.null, n)
    values = []
    for i in range(count):
        start = end + i * STEP
        rows = draw(*mixture, n, window_rng)
        window = Window("bench", start, start + STEP, model.features, rows)
        m = measure(window, live, model, Phases(), RunContext(now=start + STEP))
        values.append({key: m.slis[key] for key in keys})
    t = tally(values, thresholds)
    low, high = binomial_interval(t.flags, t.windows)
    print(f"seed {seed}, {n} rows: {t.flags}/{t.windows} flagged", file=sys.stderr)
    return {
        "rows": n,
        "windows": t.windows,
        "flags": t.flags,
        "rate": t.rate,
        "interval": [low, high],
        "flags_by_sli": t.by_sli,
        "thresholds": thresholds,
        "seconds": round(time.perf_counter() - t1, 1),
    }


def summary(results: list[dict[str, Any]], alpha: float) -> list[dict[str, Any]]:
    """Per size: the median rate over the seeds, and the seeds' windows pooled."""
    rows = []
    for g, first in enumerate(results[0]["sizes"]):
        per_seed = [r["sizes"][g] for r in results]
        flags = sum(s["flags"] for s in per_seed)
        windows = sum(s["windows"] for s in per_seed)
        median = statistics.median(s["rate"] for s in per_seed)
        rows.append(
            {
                "rows": first["rows"],
                "median_rate": median,
                "pooled_flags": flags,
                "pooled_windows": windows,
                "pooled_interval": list(binomial_interval(flags, windows)),
                "within_2x": median <= 2 * alpha,
            }
        )
    return rows


def _table(result: dict[str, Any]) -> str:
    alpha = result["false_alarm_rate"]
    lines = [
        f"# Calibration: k={result['k']}, d={result['d']}, reference {result['blocks']} x "
        f"{result['rows']} rows, false_alarm_rate={alpha}, target rate <= {2 * alpha:g}",
        "",
        "| seed | rows | windows | flagged | rate | 95 % interval | flags by SLI |",
        "|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in result["seeds"]:
        for s in r["sizes"]:
            by = ", ".join(f"{k} {v}" for k, v in s["flags_by_sli"].items() if v) or "-"
            low, high = s["interval"]
            lines.append(
                f"| {r['seed']} | {s['rows']} | {s['windows']} | {s['flags']} | "
                f"{s['rate']:.4f} | {low:.4f} to {high:.4f} | {by} |"
            )
    lines += [
        "",
        "| rows | median rate | pooled rate | pooled 95 % interval | within 2x |",
        "|---:|---:|---:|---|---|",
    ]
    for s in result["summary"]:
        low, high = s["pooled_interval"]
        pooled = s["pooled_flags"] / s["pooled_windows"]
        lines.append(
            f"| {s['rows']} | {s['median_rate']:.4f} | {pooled:.4f} "
            f"({s['pooled_flags']}/{s['pooled_windows']}) | {low:.4f} to {high:.4f} | "
            f"{'yes' if s['within_2x'] else 'no'} |"
        )
    return "\n".join(lines)


def _options(argv: list[str]) -> argparse.Namespace:
    """The options, every bad value refused (one line, exit 2) before any work."""
    parser = Parser(prog="python -m bench calibration", description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=clusters, default=4, help="clusters of the mixture and model")
    parser.add_argument("--d", type=integer(1), default=5, help="features")
    parser.add_argument("--rows", type=integer(1), default=2000, help="rows per reference window")
    parser.add_argument("--blocks", type=integer(1), default=288, help="reference windows")
    parser.add_argument(
        "--false-alarm-rate",
        type=number(above=0, below=0.5),
        default=0.01,
        help="family-wise, per window",
    )
    parser.add_argument("--sizes", type=integers(2), default=[50, 500, 5000], help="window rows")
    parser.add_argument(
        "--windows",
        type=integers(1),
        default=[1000],
        help="fresh windows: one count for every size, or one per size",
    )
    parser.add_argument(
        "--seeds", type=integers(0, SEED_MAX), default=[0], help="comma-separated seeds"
    )
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="calibrate as a first run does (its sample and size grid), not on every row",
    )
    parser.add_argument("--json", type=output_file, default=None, help="where the JSON goes")
    args = parser.parse_args(argv)
    if min(args.sizes) < args.k:
        parser.error(f"--sizes must be at least --k ({args.k}) rows; got {min(args.sizes)}")
    if args.rows * args.blocks < args.k:
        parser.error(f"--rows x --blocks is the reference: it needs at least --k ({args.k}) rows")
    if len(args.windows) == 1:
        args.windows = args.windows * len(args.sizes)
    if len(args.windows) != len(args.sizes):
        parser.error("--windows takes one positive count, or one per size")
    parser.check_model(lambda: model_settings(args.k, args.d, min(args.sizes), args.seeds[0]))
    return args


def main(argv: list[str]) -> int:
    """Run the benchmark, print the tables, write the JSON; 1 if a size misses the target."""
    import warnings

    from monitor.errors import ConvergenceWarning, DegenerateDataWarning

    args = _options(argv)
    # Small windows leave clusters empty and candidates unconverged: the SLIs say so.
    warnings.simplefilter("ignore", DegenerateDataWarning)
    warnings.simplefilter("ignore", ConvergenceWarning)
    result: dict[str, Any] = {
        "k": args.k,
        "d": args.d,
        "rows": args.rows,
        "blocks": args.blocks,
        "false_alarm_rate": args.false_alarm_rate,
        "calibrated_at": size_grid(args.sizes),
        "seeds": [run_seed(args, seed) for seed in args.seeds],
    }
    result["summary"] = summary(result["seeds"], args.false_alarm_rate)
    print(_table(result))
    seeds = "-".join(str(s) for s in args.seeds)
    path = args.json or Path(__file__).parent / "results" / (
        f"calibration-{args.false_alarm_rate:g}-{seeds}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return 0 if all(s["within_2x"] for s in result["summary"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
