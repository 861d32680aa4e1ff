"""Seconds per Lloyd iteration, ours vs scikit-learn, and peak memory of a fit.

Run (the OpenBLAS variables are unset for this command only, so that both libraries'
BLAS pick their best kernels for this CPU)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench lloyd

Per-iteration time is the slope between a fit of ``--short`` and one of ``--long``
iterations (tol=0, same fixed init, n_init=1), so set-up and the final E-step cancel;
each repetition gives one slope and the median is reported. Both libraries run under
the same ``threadpoolctl`` limit (BLAS and OpenMP), interleaved, in one process.
Peak memory is the tracemalloc peak (numpy allocations) of one whole fit.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from monitor.core.kmeans import fit_kmeans


def _data(n: int, d: int, k: int, dtype: str, seed: int = 0) -> np.ndarray:
    """Overlapping Gaussian blobs around k centres, written chunk by chunk.

    The blobs overlap (centre spread ~ noise), so Lloyd keeps moving for many more
    iterations than the benchmark runs and neither library stops early.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.5, size=(k, d))
    X = np.empty((n, d), dtype=dtype)
    step = 65536
    for s in range(0, n, step):
        m = min(step, n - s)
        X[s : s + m] = centres[rng.integers(0, k, size=m)] + rng.normal(size=(m, d))
    return X


def _slope(run: Callable[[int], Any], short: int, long: int) -> tuple[float, float]:
    """Wall and process-CPU seconds per iteration between ``short`` and ``long`` iterations.

    CPU time is the cross-check on a shared machine: other processes stretch wall time
    but not this process's CPU time (with one thread the two agree when it is quiet).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    run(short)
    t1, c1 = time.perf_counter(), time.process_time()
    run(long)
    t2, c2 = time.perf_counter(), time.process_time()
    span = long - short
    return ((t2 - t1) - (t1 - t0)) / span, ((c2 - c1) - (c1 - c0)) / span


def _ours(X: np.ndarray, init: np.ndarray, wm: float) -> Callable[[int], Any]:
    def run(max_iter: int) -> Any:
        fit = fit_kmeans(
            X, init.shape[0], init=init, max_iter=max_iter, tol=0.0, working_memory_mib=wm
        )
        if fit.n_iter != max_iter:
            raise RuntimeError(f"ours stopped after {fit.n_iter} < {max_iter} iterations")
        return fit

    return run


def _sklearn(X: np.ndarray, init: np.ndarray) -> Callable[[int], Any]:
    from sklearn.cluster import KMeans

    def run(max_iter: int) -> Any:
        km = KMeans(
            init.shape[0], init=init, n_init=1, max_iter=max_iter, tol=0.0, algorithm="lloyd"
        )
        km.fit(X)
        if km.n_iter_ != max_iter:
            raise RuntimeError(f"sklearn stopped after {km.n_iter_} < {max_iter} iterations")
        return km

    return run


def _peak_mib(run: Callable[[int], Any], max_iter: int) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    run(max_iter)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2**20


def main(argv: list[str]) -> int:
    """Run the benchmark and print a Markdown table."""
    p = argparse.ArgumentParser(prog="python -m bench lloyd", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[200_000, 1_000_000])
    p.add_argument("--d", type=int, default=32)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--short", type=int, default=2)
    p.add_argument("--long", type=int, default=14)
    p.add_argument("--working-memory-mib", type=float, default=64.0)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory table")
    args = p.parse_args(argv)

    from threadpoolctl import threadpool_info, threadpool_limits

    warnings.simplefilter("ignore")  # sklearn's FutureWarnings are not the point here
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"note: {var}={os.environ[var]} is set; see the docstring", file=sys.stderr)
    libs = sorted(
        {f"{i['internal_api']} {i.get('architecture') or ''}".strip() for i in threadpool_info()}
    )
    print(
        f"# Lloyd: d={args.d}, k={args.k}, reps={args.reps}, slope {args.short}->{args.long} "
        f"iterations, python {platform.python_version()}, numpy {np.__version__}, "
        f"cpu count {os.cpu_count()}, libraries: {', '.join(libs)}\n"
    )
    print(
        "| n | dtype | threads | ours s/iter | sklearn s/iter | ratio ours/sklearn "
        "| CPU-time ratio |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    rows = []
    for n in args.n:
        for dtype in args.dtype:
            X = _data(n, args.d, args.k, dtype)
            init = X[: args.k].copy()
            ours = _ours(X, init, args.working_memory_mib)
            sk = _sklearn(X, init)
            for t in args.threads:
                with threadpool_limits(limits=t):
                    ours(1), sk(1)  # warm up (BLAS threads, caches)
                    so, ss, ratios, cpu_ratios = [], [], [], []
                    for _ in range(args.reps):
                        a, ac = _slope(ours, args.short, args.long)
                        b, bc = _slope(sk, args.short, args.long)
                        so.append(a)
                        ss.append(b)
                        ratios.append(a / b)
                        cpu_ratios.append(ac / bc)
                mo, ms, mr, mc = (statistics.median(v) for v in (so, ss, ratios, cpu_ratios))
                print(
                    f"| {n:,} | {dtype} | {t} | {mo:.4f} | {ms:.4f} | {mr:.2f} | {mc:.2f} |",
                    flush=True,
                )
                rows.append((n, dtype, t, mo, ms, mr))
            if not args.no_memory:
                with threadpool_limits(limits=1):
                    po = _peak_mib(ours, 3)
                    ps = _peak_mib(sk, 3)
                rows.append((n, dtype, "mem", po, ps, X.nbytes / 2**20))
            del X
    if not args.no_memory:
        print(
            f"\nPeak traced memory of one fit (3 iterations, working_memory_mib="
            f"{args.working_memory_mib}), beyond the window itself:\n"
        )
        print("| n | dtype | window MiB | ours peak MiB | sklearn peak MiB |")
        print("|---:|---|---:|---:|---:|")
        for n, dtype, kind, po, ps, win in rows:
            if kind == "mem":
                print(f"| {n:,} | {dtype} | {win:.0f} | {po:.0f} | {ps:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
