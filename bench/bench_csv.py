"""The CSV reader of choose-k and the files source against ``pandas.read_csv``.

Run::

    python -m bench csv                    # ~100 MB: 100,000 rows x 50 columns
    python -m bench csv --rows 20000 --reps 3

A file of ``--rows`` rows of ``--columns`` normal numbers (written as ``repr`` writes
them, 17 significant digits, about 20 bytes a cell) is generated in a temporary
directory; ``read_table`` and ``pandas.read_csv`` read it, warm page cache, median of
``--reps`` each, and the table gives both and their ratio. The values of both are
checked to be the same bits.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench import Parser, integer
from monitor.sources.files import read_table


def write(path: Path, rows: int, columns: int) -> None:
    rng = np.random.default_rng(0)
    with path.open("w") as fh:
        fh.write(",".join(f"f{j}" for j in range(columns)) + "\n")
        for start in range(0, rows, 10_000):
            block = rng.normal(size=(min(10_000, rows - start), columns)) * 100
            fh.writelines(",".join(map(repr, row)) + "\n" for row in block.tolist())


def median_seconds(read: Callable[[], np.ndarray], reps: int) -> tuple[float, np.ndarray]:
    times, X = [], np.empty(0)
    for _ in range(reps):
        t = time.perf_counter()
        X = read()
        times.append(time.perf_counter() - t)
    return statistics.median(times), X


def main(argv: list[str]) -> int:
    """Time the reader and pandas on one generated file; print a Markdown table."""
    parser = Parser(prog="python -m bench csv", description=__doc__)
    parser.add_argument("--rows", type=integer(1), default=100_000)
    parser.add_argument("--columns", type=integer(1), default=50)
    parser.add_argument("--reps", type=integer(1), default=3)
    args = parser.parse_args(argv)
    try:
        import pandas as pd
    except ImportError:
        print("bench csv needs pandas: pip install pandas", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        write(path, args.rows, args.columns)
        size = path.stat().st_size
        ours, X = median_seconds(lambda: read_table(path).X, args.reps)
        theirs, Y = median_seconds(lambda: pd.read_csv(path).to_numpy(np.float64), args.reps)
    same = X.shape == Y.shape and bool((X.view(np.int64) == Y.view(np.int64)).all())
    print(
        f"{args.rows:,} rows x {args.columns} columns, {size / 2**20:.0f} MiB, "
        f"median of {args.reps}; same values: {'yes' if same else 'NO'}\n"
    )
    print("| reader | seconds | ratio to pandas |\n|---|---:|---:|")
    print(f"| read_table | {ours:.2f} | {ours / theirs:.1f}x |")
    print(f"| pandas.read_csv | {theirs:.2f} | 1.0x |")
    return 0 if same else 1
