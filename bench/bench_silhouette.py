"""Exact silhouette on a 10k sample: ours against sklearn.metrics.silhouette_score.

Run (the OpenBLAS variables are unset for this command only, so that both libraries'
BLAS pick their best kernels for this CPU)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench silhouette

Ours draws its seeded sample from the window; scikit-learn gets exactly that sample
(``silhouette_score(X[idx], labels[idx])``), so the two values must agree. Both run
in one process, interleaved, under the same ``threadpoolctl`` limit, after one untimed
warm-up each; the table gives the medians over ``--reps`` runs, the median of the
per-run ratios, the largest value difference, and the tracemalloc peak of one call.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable

import numpy as np

from bench import Parser, integer, number, seed
from monitor.core.quality import silhouette_sampled


def _data(n: int, d: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian blobs, labelled by the blob each point came from."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(k, d))
    labels = rng.integers(0, k, n)
    return centres[labels] + rng.normal(size=(n, d)), labels


def _peak_mib(call: Callable[[], float]) -> float:
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2**20


def _parser() -> Parser:
    p = Parser(prog="python -m bench silhouette", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=integer(3), default=50_000, help="window rows (the sample is drawn)")
    p.add_argument("--sample", type=integer(3), default=10_000)
    p.add_argument("--d", type=integer(1), default=32)
    p.add_argument("--k", type=integer(2), default=64)
    p.add_argument("--threads", type=integer(1), nargs="+", default=[1, 2])
    p.add_argument("--reps", type=integer(1), default=7)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--target", type=number(above=0), default=5.0, help="minimum median speed-up")
    return p


def main(argv: list[str]) -> int:
    """Run the benchmark and print a Markdown table; 1 if the speed-up misses --target."""
    p = _parser()
    args = p.parse_args(argv)
    if args.k >= min(args.n, args.sample):
        # scikit-learn scores 2 to (rows - 1) clusters.
        p.error(
            f"--k must be below the rows scored (--n {args.n}, --sample {args.sample}); "
            f"got {args.k}"
        )
    X, labels = _data(args.n, args.d, args.k, args.seed)
    # The draw silhouette_sampled documents for random_state=seed.
    idx = (
        np.random.default_rng(args.seed).choice(args.n, size=args.sample, replace=False)
        if args.n > args.sample
        else np.arange(args.n)
    )
    Xs, ls = X[idx], labels[idx]
    if np.unique(ls).size < 2:
        p.error(f"the {ls.size} rows scored all fell in one cluster: raise --sample or --n")

    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_info, threadpool_limits

    warnings.simplefilter("ignore")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(
                f"note: {var}={os.environ[var]} is set; see the module docstring", file=sys.stderr
            )
    libs = sorted(
        {f"{i['internal_api']} {i.get('architecture') or ''}".strip() for i in threadpool_info()}
    )
    print(
        f"# Silhouette: n={args.n:,}, sample={args.sample:,}, d={args.d}, k={args.k}, "
        f"reps={args.reps}, python {platform.python_version()}, numpy {np.__version__}, "
        f"cpu count {os.cpu_count()}, libraries: {', '.join(libs)}\n"
    )

    def ours() -> float:
        res = silhouette_sampled(X, labels, sample_size=args.sample, random_state=args.seed)
        return res.score

    def sklearn() -> float:
        return float(silhouette_score(Xs, ls))

    print("| threads | ours s | sklearn s | speed-up (sklearn/ours) | max abs diff |")
    print("|---:|---:|---:|---:|---:|")
    worst = float("inf")
    for t in args.threads:
        with threadpool_limits(limits=t):
            ours(), sklearn()  # warm up (BLAS threads, page faults)
            to, ts, ratios, diffs = [], [], [], []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                a = ours()
                t1 = time.perf_counter()
                b = sklearn()
                t2 = time.perf_counter()
                to.append(t1 - t0)
                ts.append(t2 - t1)
                ratios.append((t2 - t1) / (t1 - t0))
                diffs.append(abs(a - b))
        mo, ms, mr = (statistics.median(v) for v in (to, ts, ratios))
        worst = min(worst, mr)
        print(f"| {t} | {mo:.3f} | {ms:.3f} | {mr:.1f}x | {max(diffs):.1e} |", flush=True)
    with threadpool_limits(limits=1):
        po, ps = _peak_mib(ours), _peak_mib(sklearn)
    print(
        f"\nPeak traced memory of one call beyond the window: ours {po:.0f} MiB "
        f"(working_memory_mib=64), sklearn {ps:.0f} MiB."
    )
    return 0 if worst >= args.target else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
