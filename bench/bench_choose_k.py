"""``kmeans-monitor choose-k`` on a large file: the whole command, and where its time goes.

Run::

    python -m bench choose_k                # 200,000 rows x 5 features, the defaults
    python -m bench choose_k --rows 50000 --reps 3

Writes a CSV of ``--rows`` rows around ``--clusters`` Gaussian blobs into a temporary
directory, then times the command as a user runs it (a subprocess: import, read,
sample, scale, fit, print) ``--reps`` times, and once in this process by phase: reading
the file, each candidate k's own fit and silhouette, and the gap statistic's reference
fits (from the progress callback that drives the command's progress bar).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import Parser, integer, run_child, seed


def _write_csv(path: Path, rows: int, d: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(k, d))
    X = centres[rng.integers(0, k, rows)] + rng.normal(size=(rows, d))
    header = ",".join(f"f{j}" for j in range(d))
    np.savetxt(path, X, delimiter=",", header=header, comments="", fmt="%.6f")


def _phases(path: Path, args: argparse.Namespace) -> dict[str, float]:
    """Seconds of each phase of the command's work, in this process."""
    from monitor.core import scaling, selection
    from monitor.sources.files import read_table

    t0 = time.perf_counter()
    X = read_table(path, None).X
    read = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    if X.shape[0] > args.sample:
        X = X[np.sort(rng.choice(X.shape[0], args.sample, replace=False))]
    Xs = scaling.transform(scaling.fit_scaler(X, "standard"), X)
    ks = list(range(args.k_min, args.k_max + 1))
    marks: list[float] = []
    t1 = time.perf_counter()
    selection.choose_k(
        Xs, ks, n_refs=args.refs, random_state=args.seed,
        progress=lambda done, total: marks.append(time.perf_counter()),
    )  # fmt: skip
    own = marks[len(ks) - 1] - t1
    return {
        "read": read,
        "each k: fit + silhouette": own,
        "gap: reference fits": marks[-1] - t1 - own,
    }


def _options(argv: list[str]) -> argparse.Namespace:
    """The options, refused (one line, exit 2) where the command would refuse them."""
    p = Parser(prog="python -m bench choose_k", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=integer(1), default=200_000)
    p.add_argument("--d", type=integer(1), default=5)
    p.add_argument("--clusters", type=integer(1), default=5)
    p.add_argument("--k-min", type=integer(1), default=2)
    p.add_argument("--k-max", type=integer(2), default=10)
    p.add_argument("--sample", type=integer(2), default=20_000, help="the command's --sample")
    p.add_argument("--refs", type=integer(1, 1000), default=10, help="the command's --refs")
    p.add_argument("--reps", type=integer(1), default=1)
    p.add_argument("--seed", type=seed, default=0)
    args = p.parse_args(argv)
    if args.k_max <= args.k_min:
        p.error(f"need --k-min < --k-max; got {args.k_min} and {args.k_max}")
    if min(args.rows, args.sample) < args.k_max:
        p.error(
            f"--rows {args.rows} and --sample {args.sample} must both hold --k-max "
            f"{args.k_max} clusters"
        )
    return args


def _time_command(command: list[str], reps: int) -> list[float]:
    """Wall seconds of ``reps`` runs of the command; its error as one line if it fails."""
    walls = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run_child(command, "the choose-k command")
        walls.append(time.perf_counter() - t0)
    return walls


def main(argv: list[str]) -> int:
    """Run the benchmark and print a Markdown table."""
    args = _options(argv)
    with tempfile.TemporaryDirectory(prefix="bench-choose-k-") as tmp:
        path = Path(tmp) / "data.csv"
        _write_csv(path, args.rows, args.d, args.clusters, args.seed)
        command = [
            sys.executable, "-m", "monitor", "choose-k", str(path),
            "--k-min", str(args.k_min), "--k-max", str(args.k_max),
            "--sample", str(args.sample), "--refs", str(args.refs), "--seed", str(args.seed),
        ]  # fmt: skip
        walls = _time_command(command, args.reps)
        phases = _phases(path, args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# choose-k: {args.rows:,} rows x {args.d} features, k {args.k_min}..{args.k_max}, "
        f"--sample {args.sample:,}, --refs {args.refs}; python {platform.python_version()}, "
        f"numpy {np.__version__}, cpu count {os.cpu_count()}, load average {load:.1f}\n"
    )
    print("| what | seconds |")
    print("|---|---:|")
    print(f"| the command, wall (median of {args.reps}) | {statistics.median(walls):.1f} |")
    for name, seconds in phases.items():
        print(f"| {name} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
