"""Seconds per Lloyd iteration, ours vs scikit-learn, and peak memory of a fit.

Run (the OpenBLAS variables are unset for this command only, so that both libraries'
BLAS pick their best kernels for this CPU)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench lloyd

Per-iteration time is the slope between a fit of ``--short`` and one of ``--long``
iterations (tol=0, the same fixed init, n_init=1), so set-up and the final E-step
cancel. Each measurement runs in a fresh worker process (in one shared process
scikit-learn's timings shifted by up to 1.5x). Threads: scikit-learn runs ``--threads``
OpenMP threads under a ``threadpoolctl`` limit (and runs BLAS on one thread inside them
itself); ours runs ``n_threads=--threads`` threads of its own over chunks with BLAS
limited to one thread, as its documentation asks. Ours and scikit-learn's workers
alternate, ``--reps`` of each, and the table gives the medians and the median of the
paired ratios. Wall time is what is asked for; process CPU time is printed next to it
because the machine is shared: other processes stretch wall time but hardly this
process's CPU time (with one thread the two agree when the machine is quiet). Peak
memory is the tracemalloc peak (numpy allocations) of one whole fit, beyond the window.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np


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


def _runner(
    lib: str, X: np.ndarray, init: np.ndarray, wm: float, threads: int
) -> Callable[[int], Any]:
    k = init.shape[0]
    if lib == "ours":
        from monitor.core.kmeans import fit_kmeans

        def ours(max_iter: int) -> Any:
            fit = fit_kmeans(
                X,
                k,
                init=init,
                max_iter=max_iter,
                tol=0.0,
                working_memory_mib=wm,
                n_threads=threads,
            )
            if fit.n_iter != max_iter:
                raise RuntimeError(f"ours stopped after {fit.n_iter} < {max_iter} iterations")
            return fit

        return ours

    from sklearn.cluster import KMeans

    def sklearn(max_iter: int) -> Any:
        km = KMeans(k, init=init, n_init=1, max_iter=max_iter, tol=0.0, algorithm="lloyd")
        km.fit(X)
        if km.n_iter_ != max_iter:
            raise RuntimeError(f"sklearn stopped after {km.n_iter_} < {max_iter} iterations")
        return km

    return sklearn


def _slope(run: Callable[[int], Any], short: int, long: int) -> tuple[float, float]:
    """Wall and process-CPU seconds per iteration between ``short`` and ``long``."""
    t0, c0 = time.perf_counter(), time.process_time()
    run(short)
    t1, c1 = time.perf_counter(), time.process_time()
    run(long)
    t2, c2 = time.perf_counter(), time.process_time()
    span = long - short
    return ((t2 - t1) - (t1 - t0)) / span, ((c2 - c1) - (c1 - c0)) / span


def _seeding(lib: str, X: np.ndarray, k: int, threads: int) -> dict[str, float]:
    """Wall and CPU seconds of one k-means++ seeding (after one untimed call)."""
    seed: Callable[..., Any]
    if lib == "ours":
        from monitor.core.kmeans import kmeans_plusplus

        seed = partial(kmeans_plusplus, n_threads=threads)
    else:
        from sklearn.cluster import kmeans_plusplus as sk_kmeans_plusplus

        seed = sk_kmeans_plusplus
    seed(X, k, random_state=0)
    t0, c0 = time.perf_counter(), time.process_time()
    seed(X, k, random_state=1)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}


def _worker(spec: dict[str, Any]) -> dict[str, float]:
    """One measurement in this (fresh) process: a slope, or a peak of traced memory."""
    from threadpoolctl import threadpool_limits

    warnings.simplefilter("ignore")  # sklearn's FutureWarnings are not the point here
    X = _data(spec["n"], spec["d"], spec["k"], spec["dtype"])
    init = X[: spec["k"]].copy()
    run = _runner(spec["lib"], X, init, spec["wm"], spec["threads"])
    # Ours runs its own threads over chunks with BLAS on one thread (as its docs ask);
    # scikit-learn runs OpenMP threads (and limits BLAS to one inside them itself).
    limit = 1 if spec["lib"] == "ours" else spec["threads"]
    with threadpool_limits(limits=limit):
        if spec["what"] == "memory":
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            run(3)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            return {"peak_mib": (peak - base) / 2**20, "window_mib": X.nbytes / 2**20}
        if spec["what"] == "seeding":
            return _seeding(spec["lib"], X, spec["k"], spec["threads"])
        run(1)  # warm-up: BLAS buffers, page faults of the library's own copies
        wall, cpu = _slope(run, spec["short"], spec["long"])
        return {"wall": wall, "cpu": cpu}


def _spawn(spec: dict[str, Any]) -> dict[str, float]:
    cmd = [sys.executable, "-m", "bench", "lloyd", "--worker", json.dumps(spec)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    """Run the benchmark and print Markdown tables."""
    p = argparse.ArgumentParser(prog="python -m bench lloyd", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[200_000, 1_000_000])
    p.add_argument("--d", type=int, default=32)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--short", type=int, default=2)
    p.add_argument("--long", type=int, default=14)
    p.add_argument("--working-memory-mib", type=float, default=64.0)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory table")
    p.add_argument("--seeding", action="store_true", help="also time k-means++ seeding")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0

    from threadpoolctl import threadpool_info

    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"note: {var}={os.environ[var]} is set; see the docstring", file=sys.stderr)
    libs = sorted(
        {f"{i['internal_api']} {i.get('architecture') or ''}".strip() for i in threadpool_info()}
    )
    print(
        f"# Lloyd: d={args.d}, k={args.k}, reps={args.reps}, slope {args.short}->{args.long} "
        f"iterations, python {platform.python_version()}, numpy {np.__version__}, "
        f"cpu count {os.cpu_count()}, libraries: {', '.join(libs)}, "
        f"load average at start {os.getloadavg()[0]:.2f}\n"
    )
    print(
        "| n | dtype | threads | ours s/iter | sklearn s/iter | ratio ours/sklearn "
        "| ours CPU s/iter | sklearn CPU s/iter | CPU-time ratio |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    base = {"d": args.d, "k": args.k, "wm": args.working_memory_mib}
    base |= {"short": args.short, "long": args.long}
    memory = []
    seeding = []
    for n in args.n:
        for dtype in args.dtype:
            for t in args.threads:
                if args.seeding:
                    spec = base | {"n": n, "dtype": dtype, "threads": t, "what": "seeding"}
                    res_s: dict[str, list[dict[str, float]]] = {"ours": [], "sklearn": []}
                    for _ in range(args.reps):
                        for lib in res_s:
                            res_s[lib].append(_spawn(spec | {"lib": lib}))
                    seeding.append((n, dtype, t, res_s))
                spec = base | {"n": n, "dtype": dtype, "threads": t, "what": "slope"}
                res: dict[str, list[dict[str, float]]] = {"ours": [], "sklearn": []}
                for _ in range(args.reps):
                    for lib in res:
                        res[lib].append(_spawn(spec | {"lib": lib}))
                med = {
                    (lib, key): statistics.median(r[key] for r in rs)
                    for lib, rs in res.items()
                    for key in ("wall", "cpu")
                }
                ratio = {
                    key: statistics.median(
                        a[key] / b[key] for a, b in zip(res["ours"], res["sklearn"], strict=True)
                    )
                    for key in ("wall", "cpu")
                }
                print(
                    f"| {n:,} | {dtype} | {t} | {med['ours', 'wall']:.4f} "
                    f"| {med['sklearn', 'wall']:.4f} | {ratio['wall']:.2f} "
                    f"| {med['ours', 'cpu']:.4f} | {med['sklearn', 'cpu']:.4f} "
                    f"| {ratio['cpu']:.2f} |",
                    flush=True,
                )
            if not args.no_memory:
                spec = base | {"n": n, "dtype": dtype, "threads": 1, "what": "memory"}
                mem = {lib: _spawn(spec | {"lib": lib}) for lib in ("ours", "sklearn")}
                memory.append((n, dtype, mem))
    if seeding:
        print("\nk-means++ seeding (greedy, 2 + int(ln k) trials), seconds per call:\n")
        print("| n | dtype | threads | ours s | sklearn s | ratio | CPU-time ratio |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for n, dtype, t, res_s in seeding:
            m = {lib: statistics.median(r["wall"] for r in rs) for lib, rs in res_s.items()}
            r_wall, r_cpu = (
                statistics.median(
                    a[key] / b[key] for a, b in zip(res_s["ours"], res_s["sklearn"], strict=True)
                )
                for key in ("wall", "cpu")
            )
            print(
                f"| {n:,} | {dtype} | {t} | {m['ours']:.3f} | {m['sklearn']:.3f} "
                f"| {r_wall:.2f} | {r_cpu:.2f} |"
            )
    if memory:
        print(
            f"\nPeak traced memory of one fit (3 iterations, working_memory_mib="
            f"{args.working_memory_mib}), beyond the window itself:\n"
        )
        print("| n | dtype | window MiB | ours peak MiB | sklearn peak MiB |")
        print("|---:|---|---:|---:|---:|")
        for n, dtype, mem in memory:
            print(
                f"| {n:,} | {dtype} | {mem['ours']['window_mib']:.0f} "
                f"| {mem['ours']['peak_mib']:.0f} | {mem['sklearn']['peak_mib']:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
