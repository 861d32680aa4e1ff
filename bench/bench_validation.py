"""What the input checks of issue 10 cost on large inputs, against the work they sit next to.

Run::

    python -m bench validation                  # 1M timestamps, a 1M x 32 window, 7 repeats
    python -m bench validation --rows 200000 --features 8 --repeats 5

Timestamps. ``sources._common.parse_timestamps`` on ``--rows`` unix seconds given as
floats (a numeric Parquet or NPY column) and as numeric text (a CSV column): its fast
path converts in one go and checks every time against 1970..9999 by the column's
minimum and maximum. For floats, where the conversion is free, the reference is the
check that path made before, ``np.isfinite(values).all()``; for text, the conversion
alone, ``np.asarray(values, dtype=float64)``, which no parse can avoid.

Overflow. ``checks.overflow_message`` on a window of ``--rows`` x ``--features`` normal
values, float64 and float32: what ``pipeline.scoring.validate_window`` adds to every run
to refuse values whose squares overflow. The reference is ``X.sum()``, the one pass
validation already made over the window for NaN.

Each figure is the median of ``--repeats`` timings; a ratio is against its reference
measured in the same run, so the machine's load moves both.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import Parser, integer
from monitor.checks import overflow_message
from monitor.sources._common import parse_timestamps

T0 = 1_700_000_000.0


def median_seconds(call: Callable[[], Any], repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``call``, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _row(what: str, seconds: float, reference: float) -> str:
    return f"| {what} | {seconds * 1e3:.2f} | {reference * 1e3:.2f} | {seconds / reference:.2f} |"


def main(argv: list[str]) -> int:
    """Print one table row per input: the check's time, its reference's, their ratio."""
    parser = Parser(prog="python -m bench validation", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=integer(1), default=1_000_000)
    parser.add_argument("--features", type=integer(1), default=32)
    parser.add_argument("--repeats", type=integer(1), default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    seconds = T0 + rng.uniform(0, 86400, args.rows)
    text = [repr(float(s)) for s in seconds]
    print(f"load average {os.getloadavg()[0]:.2f}; medians of {args.repeats}")
    print("| input | check (ms) | reference (ms) | ratio |")
    print("|---|---|---|---|")
    old_check = median_seconds(lambda: np.isfinite(seconds).all(), args.repeats)
    parse = median_seconds(lambda: parse_timestamps(seconds, "bench"), args.repeats)
    print(_row(f"parse_timestamps, {args.rows:,} floats (ref: isfinite)", parse, old_check))
    convert = median_seconds(lambda: np.asarray(text, np.float64), args.repeats)
    parse = median_seconds(lambda: parse_timestamps(text, "bench"), args.repeats)
    print(_row(f"parse_timestamps, {args.rows:,} as text (ref: asarray)", parse, convert))
    names = [f"f{j}" for j in range(args.features)]
    for dtype in (np.float64, np.float32):
        X = rng.normal(size=(args.rows, args.features)).astype(dtype)
        assert overflow_message(X, names, "bench") is None
        check = median_seconds(lambda X=X: overflow_message(X, names, "bench"), args.repeats)
        total = median_seconds(X.sum, args.repeats)
        shape = f"{args.rows:,} x {args.features} {np.dtype(dtype).name} (ref: X.sum)"
        print(_row(f"overflow_message, {shape}", check, total))
    return 0
