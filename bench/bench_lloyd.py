"""k-means engines side by side: seconds per Lloyd iteration, a default fit, peak memory.

Run (the OpenBLAS variables are unset for this command only, so that every library's
BLAS picks its best kernels for this CPU)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench lloyd
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench lloyd --what fit --n 1000000

Engines (a column each; a library that is not installed is left out with a note):
``numpy`` and ``compiled`` are ``monitor.core.kmeans.fit_kmeans`` with
``kernel="numpy"``/``"compiled"``; ``sklearn`` is ``sklearn.cluster.KMeans``;
``sklearnex`` is scikit-learn-intelex's (oneDAL's) ``KMeans``; ``faiss`` is
``faiss.Kmeans`` (float32 only, every row used: ``max_points_per_centroid`` unbounded).

Data: ``--data overlapping`` (default) or ``separated`` blobs, see ``_data``.
``--what slope``: seconds per iteration, the slope between a fit of ``--short`` and
one of ``--long`` iterations (tol=0, the same fixed init: the first k rows), so set-up
and the final E-step cancel. ``--what fit``: a default fit (each library's k-means++
or its own default seeding, one init, to convergence), seconds and inertia, seeds
0..reps-1. ``--what memory``: tracemalloc peak of a 3-iteration fit beyond the window.

Every measurement runs in a fresh worker process (in one shared process scikit-learn's
timings shifted by up to 1.5x), the engines alternate within each repetition so that
machine noise hits them alike, and the tables give medians and the medians of the
ratios to scikit-learn and scikit-learn-intelex. Threads: ours runs ``n_threads=t``
threads of its own with BLAS on one thread (as its documentation asks); scikit-learn
runs t OpenMP threads under a ``threadpoolctl`` limit of t; oneDAL gets
``daal4py.daalinit(t)``; faiss ``omp_set_num_threads(t)``. The compiled kernel is
compiled (or loaded from numba's cache) by an untimed warm-up in each worker; the
first-call cost is measured separately (``--what jit``).
"""

from __future__ import annotations

import argparse
import json
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

from bench import Parser, integer, run_child

ENGINES = ("numpy", "compiled", "sklearn", "sklearnex", "faiss")
REFERENCES = ("sklearn", "sklearnex")


def _data(n: int, d: int, k: int, dtype: str, seed: int = 0) -> np.ndarray:
    """Overlapping Gaussian blobs around k centres, written chunk by chunk.

    The blobs overlap (centre spread ~ noise), so Lloyd keeps moving for many more
    iterations than the slope runs and no engine stops early (checked).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.5, size=(k, d))
    X = np.empty((n, d), dtype=dtype)
    for s in range(0, n, 65536):
        m = min(65536, n - s)
        X[s : s + m] = centres[rng.integers(0, k, size=m)] + rng.normal(size=(m, d))
    return X


def _separated(n: int, d: int, k: int, dtype: str, seed: int = 0) -> np.ndarray:
    """Blobs that stand apart (centre spread 4x the noise), as a monitored service's
    regimes do (``--data separated``)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, d))
    X = np.empty((n, d), dtype=dtype)
    for s in range(0, n, 65536):
        m = min(65536, n - s)
        X[s : s + m] = centres[rng.integers(0, k, size=m)] + rng.normal(size=(m, d))
    return X


def installed(engine: str) -> bool:
    """Whether the library behind ``engine`` imports here."""
    module = {"sklearnex": "sklearnex", "faiss": "faiss", "compiled": "numba"}.get(engine)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _fitter(engine: str, X: np.ndarray, k: int, threads: int) -> Callable[..., Any]:
    """A function ``fit(max_iter, init, tol, seed) -> (n_iter, inertia)`` for ``engine``."""
    if engine in ("numpy", "compiled"):
        from monitor.core.kmeans import fit_kmeans, warm_up

        warm_up()

        def ours(max_iter: int, init: Any, tol: float, seed: int) -> tuple[int, float]:
            fit = fit_kmeans(
                X, k, init=init, max_iter=max_iter, tol=tol, random_state=seed,
                n_threads=threads, kernel=engine,
            )  # fmt: skip
            return fit.n_iter, fit.inertia

        return ours
    if engine == "faiss":
        import faiss

        faiss.omp_set_num_threads(threads)

        def faiss_fit(max_iter: int, init: Any, tol: float, seed: int) -> tuple[int, float]:
            km = faiss.Kmeans(
                X.shape[1], k, niter=max_iter, seed=seed, verbose=False,
                max_points_per_centroid=X.shape[0],
            )  # fmt: skip
            km.train(X, init_centroids=None if isinstance(init, str) else init)
            return max_iter, float(km.obj[-1]) if len(km.obj) else float("nan")

        return faiss_fit
    if engine == "sklearnex":
        import daal4py
        from sklearnex.cluster import KMeans

        daal4py.daalinit(threads)
    else:
        from sklearn.cluster import KMeans

    def sk(max_iter: int, init: Any, tol: float, seed: int) -> tuple[int, float]:
        km = KMeans(k, init=init, n_init=1, max_iter=max_iter, tol=tol, random_state=seed)
        km.fit(X)
        return int(km.n_iter_), float(km.inertia_)

    return sk


def _slope(fit: Callable[..., Any], init: np.ndarray, short: int, long: int) -> dict[str, float]:
    """Wall and process-CPU seconds per iteration between ``short`` and ``long``."""
    fit(1, init, 0.0, 0)  # warm-up: BLAS buffers, the library's own copies, JIT cache
    t0, c0 = time.perf_counter(), time.process_time()
    n_short, _ = fit(short, init, 0.0, 0)
    t1, c1 = time.perf_counter(), time.process_time()
    n_long, _ = fit(long, init, 0.0, 0)
    t2, c2 = time.perf_counter(), time.process_time()
    if (n_short, n_long) != (short, long):
        raise RuntimeError(f"stopped early: {n_short}/{short}, {n_long}/{long} iterations")
    span = long - short
    return {"wall": ((t2 - t1) - (t1 - t0)) / span, "cpu": ((c2 - c1) - (c1 - c0)) / span}


def _worker(spec: dict[str, Any]) -> dict[str, float]:
    """One measurement in this (fresh) process."""
    from threadpoolctl import threadpool_limits

    warnings.simplefilter("ignore")  # libraries' FutureWarnings are not the point here
    engine, k, t = spec["engine"], spec["k"], spec["threads"]
    if spec["what"] == "jit":
        t0 = time.perf_counter()
        from monitor.core.kmeans import warm_up

        warm_up()
        return {"wall": time.perf_counter() - t0}
    make = _separated if spec.get("data") == "separated" else _data
    X = make(spec["n"], spec["d"], k, spec["dtype"])
    ours = engine in ("numpy", "compiled")
    # The fitter imports its library first: a threadpoolctl limit only reaches the BLAS
    # and OpenMP libraries already loaded when it is set (scipy's OpenBLAS, which both
    # of our kernels call, loads with monitor's first import of scipy.linalg).
    fit = _fitter(engine, X, k, t)
    with threadpool_limits(limits=1 if ours or engine == "faiss" else t):
        if spec["what"] == "memory":
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            fit(3, X[:k].copy(), 0.0, 0)
            peak = tracemalloc.get_traced_memory()[1]
            return {"peak_mib": (peak - base) / 2**20, "window_mib": X.nbytes / 2**20}
        if spec["what"] == "fit":
            t0 = time.perf_counter()
            n_iter, inertia = fit(300, "k-means++", 1e-4, spec["seed"])
            return {"wall": time.perf_counter() - t0, "inertia": inertia, "n_iter": n_iter}
        return _slope(fit, X[:k].copy(), spec["short"], spec["long"])


def _spawn(spec: dict[str, Any]) -> dict[str, float]:
    cmd = [sys.executable, "-m", "bench", "lloyd", "--worker", json.dumps(spec)]
    out = run_child(cmd, f"the {spec['engine']} worker ({spec['what']})")
    return json.loads(out.strip().splitlines()[-1])


def _ratio(results: dict[str, list[dict[str, float]]], a: str, b: str, key: str) -> str:
    if a not in results or b not in results:
        return "-"
    pairs = zip(results[a], results[b], strict=True)
    return f"{statistics.median(x[key] / y[key] for x, y in pairs):.2f}"


def _run_cell(spec: dict[str, Any], engines: list[str], reps: int) -> dict[str, list[Any]]:
    """``reps`` rounds, each engine once per round in turn (so noise hits all alike)."""
    out: dict[str, list[Any]] = {e: [] for e in engines}
    for rep in range(reps):
        for engine in engines:
            if engine == "faiss" and spec.get("dtype") != "float32":
                continue
            out[engine].append(_spawn(spec | {"engine": engine, "seed": rep}))
    return {e: r for e, r in out.items() if r}


def _print_slopes(args: argparse.Namespace, engines: list[str], base: dict[str, Any]) -> None:
    cols = " | ".join(f"{e} ms" for e in engines)
    refs = [e for e in ("compiled", "numpy", "sklearnex", "faiss") if e in engines]
    ratio_cols = " | ".join(f"{e}/sklearn" for e in refs)
    print(f"| n | dtype | threads | {cols} | {ratio_cols} | compiled/sklearnex |")
    print("|---:|---|---:|" + "---:|" * (len(engines) + len(refs) + 1))
    for n in args.n:
        for dtype in args.dtype:
            for t in args.threads:
                spec = base | {"n": n, "dtype": dtype, "threads": t, "what": "slope"}
                res = _run_cell(spec, engines, args.reps)
                ms = " | ".join(
                    f"{1e3 * statistics.median(r['wall'] for r in res[e]):.1f}" if e in res else "-"
                    for e in engines
                )
                ratios = " | ".join(_ratio(res, e, "sklearn", "wall") for e in refs)
                vs_dal = _ratio(res, "compiled", "sklearnex", "wall")
                print(f"| {n:,} | {dtype} | {t} | {ms} | {ratios} | {vs_dal} |", flush=True)


def _print_fits(args: argparse.Namespace, engines: list[str], base: dict[str, Any]) -> None:
    print("| n | dtype | threads | engine | s (median) | vs sklearn | vs sklearnex "
          "| inertia / sklearn median | iterations |")  # fmt: skip
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|")
    for n in args.n:
        for dtype in args.dtype:
            for t in args.threads:
                spec = base | {"n": n, "dtype": dtype, "threads": t, "what": "fit"}
                res = _run_cell(spec, engines, args.reps)
                sk = [r["inertia"] for r in res.get("sklearn", [])]  # not among --engines: "-"
                for e, runs in res.items():
                    wall = statistics.median(r["wall"] for r in runs)
                    inertia = statistics.median(r["inertia"] for r in runs)
                    vs_sk = f"{inertia / statistics.median(sk):.4f}" if sk else "-"
                    its = statistics.median(r["n_iter"] for r in runs)
                    print(
                        f"| {n:,} | {dtype} | {t} | {e} | {wall:.2f} "
                        f"| {_ratio(res, e, 'sklearn', 'wall')} "
                        f"| {_ratio(res, e, 'sklearnex', 'wall')} "
                        f"| {vs_sk} | {its:.0f} |",
                        flush=True,
                    )


def _options(argv: list[str]) -> argparse.Namespace:
    """The options, every bad value refused (one line, exit 2) before any worker starts."""
    p = Parser(prog="python -m bench lloyd", description=__doc__.split("\n")[0])
    p.add_argument("--what", choices=["slope", "fit", "memory", "jit"], default="slope")
    p.add_argument("--n", type=integer(1), nargs="+", default=[200_000, 1_000_000])
    p.add_argument("--d", type=integer(1), default=32)
    p.add_argument("--k", type=integer(1), default=64)
    p.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "float64"])
    p.add_argument("--threads", type=integer(1), nargs="+", default=[1, 2])
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    p.add_argument(
        "--data",
        choices=["overlapping", "separated"],
        default="overlapping",
        help="blobs whose centres spread 0.5x (overlapping) or 4x (separated) the noise",
    )
    p.add_argument("--reps", type=integer(1), default=5)
    p.add_argument("--short", type=integer(1), default=2, help="iterations of the short fit")
    p.add_argument("--long", type=integer(2), default=14, help="iterations of the long fit")
    p.add_argument("--worker", type=json.loads, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.long <= args.short:
        p.error(f"--long must be greater than --short; got {args.long} and {args.short}")
    if min(args.n) < args.k:
        p.error(f"every --n must hold --k {args.k} clusters; got {min(args.n)} rows")
    return args


def main(argv: list[str]) -> int:
    """Run the benchmark and print Markdown tables."""
    args = _options(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker)))
        return 0
    engines = [e for e in args.engines if installed(e)]
    for missing in sorted(set(args.engines) - set(engines)):
        print(f"note: {missing} is not installed; its column is left out", file=sys.stderr)
    import numba
    from threadpoolctl import threadpool_info

    libs = sorted({f"{i['internal_api']} {i.get('architecture') or ''}" for i in threadpool_info()})
    print(
        f"# {args.what}: {args.data} blobs, d={args.d}, k={args.k}, reps={args.reps}, python "
        f"{platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"cpu count {os.cpu_count()}, BLAS {', '.join(libs)}, load average at start "
        f"{os.getloadavg()[0]:.2f}\n"
    )
    base = {"d": args.d, "k": args.k, "short": args.short, "long": args.long, "data": args.data}
    if args.what == "slope":
        _print_slopes(args, engines, base)
    elif args.what == "fit":
        _print_fits(args, engines, base)
    elif args.what == "jit":
        runs = [_spawn(base | {"what": "jit", "engine": "compiled", "threads": 1})["wall"]]
        runs += [_spawn(base | {"what": "jit", "engine": "compiled", "threads": 1})["wall"]]
        print(f"warm_up() in a fresh process: first {runs[0]:.2f} s, then {runs[1]:.2f} s")
    else:
        print("| n | dtype | engine | window MiB | peak MiB beyond it |")
        print("|---:|---|---|---:|---:|")
        for n in args.n:
            for dtype in args.dtype:
                spec = base | {"n": n, "dtype": dtype, "threads": 1, "what": "memory"}
                for e, runs in _run_cell(spec, engines, 1).items():
                    r = runs[0]
                    print(f"| {n:,} | {dtype} | {e} | {r['window_mib']:.0f} "
                          f"| {r['peak_mib']:.0f} |")  # fmt: skip
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
