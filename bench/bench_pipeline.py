"""One full run of the pipeline against the same run assembled from scikit-learn and scipy.

The window is n x d float32 (default 1M x 32) drawn from k Gaussian blobs (default 64);
the live model was trained on an earlier window of the same distribution, so both sides
start their warm-started candidate from the same centroids.

Ours: ``monitor.pipeline.evaluate`` over in-memory ports (read, validate, scale, every
SLI, warm-started candidate, Hungarian drift), phases from ``Evaluation.phase_seconds``,
on ``--threads`` threads of its own and one BLAS thread, with a ``ScaleBuffer`` kept
across the repeats as the daemon keeps one per model.

Reference assemblies (one per library installed: scikit-learn, scikit-learn-intelex,
faiss; ``--engines``), same process, same thread limit, sides interleaved: the frozen
scaling in numpy, ``KMeans.predict``, distances to the assigned centre in numpy,
``silhouette_score`` on a 10k sample, ``davies_bouldin_score``,
``calinski_harabasz_score``, PSI by ``np.searchsorted`` + ``np.bincount`` per feature on
the reference's quantile bins, label-share PSI, ``KMeans(init=live_centers,
n_init=1).fit``, and ``linear_sum_assignment`` on the centroid distances. The
scikit-learn-intelex assembly swaps in its ``KMeans`` (predict and warm fit); the faiss
one assigns with an ``IndexFlatL2`` search and refits with ``faiss.Kmeans`` from the
live centroids.

Peak memory is measured per side in a fresh subprocess: the peak RSS (VmHWM, reset once
the window is in memory) minus the RSS at that moment.

Our run's middle computes in a worker process, as the daemon's default
(``daemon.run_isolation: process``) runs it; ``--run-isolation thread`` times it in this
process, as the figures before 2026-12-02 were.

    python -m bench pipeline [--n 1000000] [--d 32] [--k 64] [--repeats 3] [--threads 2]
                             [--run-isolation process|thread]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

from bench import Parser, clusters, integer, run_child

WORKING_MEMORY_MIB = 64.0


def make_window(n: int, d: int, k: int, seed: int) -> np.ndarray:
    """n x d float32 from k blobs, built chunk by chunk so generation peaks near the window."""
    centers = np.random.default_rng(0).normal(scale=4.0, size=(k, d)).astype(np.float32)
    rng = np.random.default_rng(seed)
    X = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        labels = rng.integers(0, k, stop - start)
        X[start:stop] = centers[labels] + rng.standard_normal((stop - start, d), dtype=np.float32)
    return X


def _model(d: int, k: int, restarts: int) -> Any:
    from monitor.config import parse
    from monitor.sources import SOURCES

    # The source is never read: the benchmark hands the pipeline its windows.
    return parse(
        {
            "models": [
                {
                    "name": "bench",
                    "features": [f"f{j}" for j in range(d)],
                    "k": k,
                    "window": "1h",
                    "schedule": {"interval": "1h"},
                    "source": {"kind": "synthetic"},
                    "validation": {"min_rows": k},
                    "training": {"n_init": 1, "candidate_restarts": restarts, "seed": 1},
                    # A window's cost, not the reference's one-off calibration (which
                    # `bench calibration` measures and which took 20 minutes at 200k rows
                    # on a loaded machine before a single window ran).
                    "thresholds": {"mode": "fixed"},
                }
            ]
        },
        sources=SOURCES,
    ).models[0]


def _live_snapshot(d: int, k: int, ref_rows: int) -> Any:
    from monitor import __version__
    from monitor.pipeline import train_reference
    from monitor.pipeline.train import one_window
    from monitor.records import Window

    model = _model(d, k, 0)
    X = make_window(ref_rows, d, k, seed=99)
    window = Window("bench", 0.0, 3600.0, model.features, X)
    return train_reference(
        one_window(window, X),
        model,
        now=3600.0,
        reason="initial",
        package_version=__version__,
        working_memory_mib=WORKING_MEMORY_MIB,
    )


class _Ports:
    """In-memory source, store and history (the benchmark measures compute, not I/O)."""

    def __init__(self, X: np.ndarray, live: Any) -> None:
        from monitor.records import Window

        self.window = Window("bench", 3600.0, 7200.0, live.features, X)
        self.live = live

    def read_window(self, start: float, end: float) -> Any:
        return self.window

    def close(self) -> None:
        pass

    def live_version(self, model: str) -> int:
        return 1

    def load(self, model: str, version: int | None = None) -> Any:
        return self.live

    def versions(self, model: str) -> list[int]:
        return [1]

    def pending_version(self, model: str) -> int | None:
        return None

    def save(
        self,
        snapshot: Any,
        *,
        state: str | None = None,
        expect_live: int | None = None,
        floor: int = 0,
        by: Any = None,
    ) -> Any:
        return snapshot  # a retrain is measured, not kept

    def record_version(self, snapshot: Any) -> None:
        pass

    def highest_version(self, model: str) -> int:
        return 1

    def append(self, evaluation: Any) -> None:
        pass


def run_ours(
    X: np.ndarray,
    live: Any,
    restarts: int,
    threads: int = 1,
    buffer: Any = None,
    workers: Any = None,
) -> dict[str, Any]:
    """One pipeline run on ``threads`` threads, scaling into ``buffer`` (a ScaleBuffer kept
    across runs, as the daemon keeps one per model), its middle in one of ``workers``
    (``monitor.workers.RunWorkers``) when given, as the daemon's default runs it; seconds
    by phase."""
    from monitor.pipeline import assess, evaluate

    ports = _Ports(X, live)
    model = _model(X.shape[1], live.k, restarts)
    t0 = time.perf_counter()
    ev, _ = evaluate(
        model,
        ports,
        ports,
        ports,
        7200.0,
        working_memory_mib=WORKING_MEMORY_MIB,
        n_threads=threads,
        buffer=buffer,
        assess_with=workers.assess if workers is not None else assess,
    )
    total = time.perf_counter() - t0
    return {
        "total": total,
        "phases": dict(ev.phase_seconds),
        "promoted": ev.promoted,
        "silhouette": ev.slis["silhouette"],
    }


def _kmeans_parts(engine: str, threads: int) -> tuple[Any, Any]:
    """``predict(Xs, centers)`` and ``fit_warm(Xs, centers) -> (centers, n_iter)`` of a library."""
    if engine == "faiss":
        import faiss

        faiss.omp_set_num_threads(threads)

        def faiss_predict(Xs: np.ndarray, centers: np.ndarray) -> np.ndarray:
            index = faiss.IndexFlatL2(centers.shape[1])
            index.add(centers)
            return index.search(Xs, 1)[1][:, 0]

        def faiss_fit(Xs: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, int]:
            # faiss has no tolerance: as many iterations as scikit-learn's warm fit took
            # on this data (FAISS_ITERATIONS), every row used.
            km = faiss.Kmeans(
                Xs.shape[1], centers.shape[0], niter=FAISS_ITERATIONS, verbose=False,
                max_points_per_centroid=Xs.shape[0],
            )  # fmt: skip
            km.train(Xs, init_centroids=centers)
            return km.centroids, FAISS_ITERATIONS

        return faiss_predict, faiss_fit
    if engine == "sklearnex":
        import daal4py
        from sklearnex.cluster import KMeans

        daal4py.daalinit(threads)
    else:
        from sklearn.cluster import KMeans

    def sk_predict(Xs: np.ndarray, centers: np.ndarray) -> np.ndarray:
        # Fitted on every centre twice, from the centres: each is its own cluster's
        # mean, so the model is exactly the live one. (oneDAL's estimator cannot have
        # cluster_centers_ set by hand, and with as many rows as clusters it falls back
        # to scikit-learn's fit but not its predict.)
        km = KMeans(n_clusters=centers.shape[0], init=centers, n_init=1, max_iter=1)
        return km.fit(np.repeat(centers, 2, axis=0)).predict(Xs)

    def sk_fit(Xs: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, int]:
        km = KMeans(n_clusters=centers.shape[0], init=centers, n_init=1, max_iter=300, tol=1e-4)
        km.fit(Xs)
        return km.cluster_centers_, int(km.n_iter_)

    return sk_predict, sk_fit


# faiss.Kmeans runs a fixed number of iterations; scikit-learn's warm fit converged in
# this many on the benchmark's window (printed as "warm-started KMeans iterations").
FAISS_ITERATIONS = 6


def run_reference(
    X: np.ndarray, live: Any, engine: str = "sklearn", threads: int = 1
) -> dict[str, Any]:
    """The same run assembled from library parts: ``engine``'s k-means, scikit-learn's
    metrics and scipy's Hungarian matching."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    predict, fit_warm = _kmeans_parts(engine, threads)
    phases: dict[str, float] = {}
    t_all = time.perf_counter()

    def timed(name: str, fn: Any) -> Any:
        t = time.perf_counter()
        out = fn()
        phases[name] = time.perf_counter() - t
        return out

    centers = live.centers.astype(np.float32)
    k = centers.shape[0]

    def scale() -> np.ndarray:
        if not np.isfinite(X).all():
            raise ValueError("NaN")
        # In the window's dtype, as ours does: a float64 centre would upcast the window.
        out = X - live.scaler.center.astype(np.float32)
        out /= live.scaler.scale.astype(np.float32)
        return out

    Xs = timed("scale", scale)
    labels = timed("predict", lambda: predict(Xs, centers))
    timed("distances", lambda: np.linalg.norm(Xs - centers[labels], axis=1))
    rng = np.random.default_rng(0)
    idx = rng.choice(Xs.shape[0], min(10_000, Xs.shape[0]), replace=False)
    sil = timed("silhouette_10k", lambda: silhouette_score(Xs[idx], labels[idx]))
    timed("davies_bouldin", lambda: davies_bouldin_score(Xs, labels))
    timed("calinski_harabasz", lambda: calinski_harabasz_score(Xs, labels))

    def psi() -> tuple[np.ndarray, float]:
        out = np.empty(Xs.shape[1])
        for j, (edges, ref) in enumerate(
            zip(live.bins.edges, live.bins.reference_fractions, strict=True)
        ):
            counts = np.bincount(
                np.searchsorted(edges, Xs[:, j], side="right"), minlength=edges.size + 1
            )
            q = np.maximum(counts / Xs.shape[0], 1e-4)
            p = np.maximum(ref, 1e-4)
            out[j] = float(np.sum((q - p) * np.log(q / p)))
        shares = np.maximum(np.bincount(labels, minlength=k) / Xs.shape[0], 1e-4)
        ref_shares = np.maximum(live.reference_shares, 1e-4)
        return out, float(np.sum((shares - ref_shares) * np.log(shares / ref_shares)))

    timed("psi", psi)
    cand, n_iter = timed("kmeans_warm", lambda: fit_warm(Xs, centers))
    timed("hungarian", lambda: linear_sum_assignment(cdist(centers, cand)))
    total = time.perf_counter() - t_all
    return {"total": total, "phases": phases, "silhouette": float(sil), "n_iter": n_iter}


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> None:
    """Make VmHWM (the peak RSS) start again from the current RSS.

    ru_maxrss cannot serve here: Linux carries it across fork and exec, so a child
    spawned by a big parent starts with the parent's peak.
    """
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def memory_child(side: str, n: int, d: int, k: int, threads: int, restarts: int) -> None:
    """Run one side once in this (fresh) process; print peak RSS above the window's RSS."""
    from threadpoolctl import threadpool_limits

    from monitor.pipeline import ScaleBuffer

    live = _live_snapshot(d, k, min(n, 200_000))
    # Ours: one BLAS thread and its own threads (see _time_sides); a fresh buffer whose
    # window-sized memory this run allocates, so the peak counts it.
    buffer = ScaleBuffer()
    with threadpool_limits(1 if side == "ours" else threads):
        # Warm up on a small window: imports, BLAS thread buffers and allocator pools are
        # the process's fixed cost, not the run's.
        small = make_window(max(20 * k, 2000), d, k, seed=2)
        if side == "ours":
            run_ours(small, live, restarts, threads, buffer)
        else:
            run_reference(small, live)
    X = make_window(n, d, k, seed=1)
    _reset_peak_rss()
    base = _status_mib("VmRSS")
    with threadpool_limits(1 if side == "ours" else threads):
        if side == "ours":
            run_ours(X, live, restarts, threads, buffer)
        else:
            run_reference(X, live)
    peak = _status_mib("VmHWM")
    print(
        json.dumps(
            {
                "side": side,
                "window_mib": X.nbytes / 2**20,
                "base_mib": base,
                "peak_mib": peak,
                "extra_mib": peak - base,
            }
        )
    )


def _pieces(args: argparse.Namespace) -> None:
    """The score step's pieces, each timed alone as ``scoring.score`` calls them, on
    ``--threads`` threads of ours and one BLAS thread (``--pieces``): where a window's
    scoring spends its time. The PSI count and the fresh scaling also run the way they
    did before (numpy count; a fresh array), for the ratio."""
    from threadpoolctl import threadpool_limits

    from monitor.core import _psi, drift, outliers, quality
    from monitor.core.kmeans import assign_two_nearest, fit_kmeans, warm_up
    from monitor.pipeline import ScaleBuffer
    from monitor.pipeline.scoring import prepare, score

    warm_up()
    _psi.warm_up()
    live = _live_snapshot(args.d, args.k, min(args.n, 200_000))
    X = make_window(args.n, args.d, args.k, seed=1)
    C, k, th, wm = live.centers, live.k, args.threads, WORKING_MEMORY_MIB
    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Any) -> Any:
        t = time.perf_counter()
        out = fn()
        times.setdefault(name, []).append(time.perf_counter() - t)
        return out

    buffer = ScaleBuffer()

    def one_round() -> None:
        scaler = live.scaler
        timed("scale into a fresh array", lambda: prepare(X, scaler, "euclidean"))
        with buffer.rows(X.shape, X.dtype) as out:
            Xs = timed(
                "scale into the kept buffer", lambda: prepare(X, scaler, "euclidean", out=out)
            )
            lab, sq, sq2 = timed(
                "assign_two_nearest", lambda: assign_two_nearest(Xs, C, n_threads=th)
            )
            timed("cluster sizes", lambda: quality.cluster_sizes(lab, k))
            timed(
                "exact silhouette, 10k sample",
                lambda: quality.silhouette_sampled(
                    Xs, lab, sample_size=10_000, random_state=0, working_memory_mib=wm, n_threads=th
                ),
            )
            timed(
                "simplified silhouette (sq_second)",
                lambda: quality.silhouette_simplified(Xs, lab, C, sq_distances=sq, sq_second=sq2),
            )
            timed("PSI, compiled count", lambda: drift.psi(live.bins, Xs, n_threads=th))
            timed(
                "PSI, numpy count (before)",
                lambda: drift._psi(live.bins, _numpy_counts(live.bins.edges, Xs), {}),
            )
            timed("label PSI", lambda: drift.label_drift(live.reference_shares, lab, k))
            timed("outlier rate", lambda: outliers.outlier_rate(live.outliers, sq, lab))
            timed("Davies-Bouldin", lambda: quality.davies_bouldin(Xs, lab, C, sq_distances=sq))
            timed(
                "Calinski-Harabasz",
                lambda: quality.calinski_harabasz(Xs, lab, centers=C, sq_distances=sq),
            )
            timed("inertia", lambda: float(sq.sum(dtype=np.float64)))
            timed(
                "score() as a whole",
                lambda: score(
                    Xs, live, seed=0, silhouette_sample=10_000, working_memory_mib=wm, n_threads=th
                ),
            )
            timed(
                "candidate (init_labels)",
                lambda: fit_kmeans(Xs, k, init=C, random_state=0, init_labels=lab, n_threads=th),
            )

    with threadpool_limits(1):
        for _ in range(args.repeats):
            one_round()
    print(f"threads {th}, load average {os.getloadavg()[0]:.2f}")
    print("| piece | s (median) | runs |\n|---|---:|---|")
    for name, values in times.items():
        runs = ", ".join(f"{v:.3f}" for v in values)
        print(f"| {name} | {statistics.median(values):.3f} | {runs} |")


def _numpy_counts(edges: Any, Xs: np.ndarray) -> Any:
    """drift's numpy count (the fallback without numba), as PSI counted before."""
    from monitor.core import drift

    compiled = drift.COMPILED
    drift.COMPILED = False
    try:
        return drift._bin_counts(edges, Xs, WORKING_MEMORY_MIB)
    finally:
        drift.COMPILED = compiled


def _installed(engine: str) -> bool:
    try:
        __import__({"sklearn": "sklearn", "sklearnex": "sklearnex", "faiss": "faiss"}[engine])
    except ImportError:
        return False
    return True


def _interleaved(
    args: argparse.Namespace,
    engines: list[str],
    X: np.ndarray,
    live: Any,
    buffer: Any,
    workers: Any,
) -> dict[str, list[dict[str, Any]]]:
    """Every side once per repeat, in turn, so that machine noise hits every side."""
    from threadpoolctl import threadpool_limits

    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in ["ours", *engines]}
    for _ in range(args.repeats):
        # Ours under the daemon's default of one BLAS thread (daemon.blas_threads) and
        # --threads threads of its own (evaluate's n_threads): two BLAS threads under a
        # busy machine's load are the 3-20x slowdown of docs/decisions.md. The libraries
        # get --threads.
        with threadpool_limits(1):
            runs["ours"].append(run_ours(X, live, args.restarts, args.threads, buffer, workers))
        with threadpool_limits(args.threads):
            for engine in engines:
                runs[engine].append(run_reference(X, live, engine, args.threads))
    return runs


def _time_sides(args: argparse.Namespace, engines: list[str]) -> None:
    """Every side once per repeat, in turn, then the medians, phases and ratios."""
    live = _live_snapshot(args.d, args.k, min(args.n, 200_000))
    X = make_window(args.n, args.d, args.k, seed=1)
    for engine in engines:
        # Load every library before the limit is set: threadpoolctl only reaches the
        # BLAS and OpenMP libraries already loaded.
        _kmeans_parts(engine, args.threads)
    from monitor.core import _psi
    from monitor.core.kmeans import warm_up
    from monitor.pipeline import ScaleBuffer

    warm_up()  # the daemon compiles (or loads) its kernels at start-up
    _psi.warm_up()
    buffer = ScaleBuffer()  # kept across runs, as the daemon keeps one per model
    workers = None
    if args.run_isolation == "process":  # one worker, as the daemon starts them
        from monitor.workers import RunWorkers

        workers = RunWorkers(1)
    try:
        if workers is not None and not workers.wait_ready(600):
            raise SystemExit("error: bench pipeline: the run's worker process did not start")
        runs = _interleaved(args, engines, X, live, buffer, workers)
    finally:  # after a failed run too: the worker ignores SIGTERM, so exit hung on it
        if workers is not None:
            workers.close()
    medians = {side: statistics.median(r["total"] for r in rs) for side, rs in runs.items()}
    for side, rs in runs.items():
        each = ", ".join(f"{r['total']:.2f}" for r in rs)
        print(f"\n{side:<9} median {medians[side]:7.2f} s  (runs: {each})")
        for name in rs[0]["phases"]:
            print(f"  {name:<18} {statistics.median(r['phases'][name] for r in rs):7.3f} s")
    if "sklearn" in runs:
        print(f"  (scikit-learn's warm-started KMeans iterations: {runs['sklearn'][0]['n_iter']})")
    for engine in engines:
        ratio = statistics.median(
            r["total"] / o["total"] for r, o in zip(runs[engine], runs["ours"], strict=True)
        )
        print(f"speed-up ({engine} assembly / ours, median of paired runs): {ratio:.2f}x")


def _memory(args: argparse.Namespace) -> None:
    for side in ("ours", "reference"):
        cmd = [sys.executable, "-m", "bench", "pipeline", "--memory-child", side]
        cmd += ["--n", str(args.n), "--d", str(args.d), "--k", str(args.k)]
        cmd += ["--threads", str(args.threads), "--restarts", str(args.restarts)]
        out = run_child(cmd, f"the peak-memory run of {side}")
        m = json.loads(out.strip().splitlines()[-1])
        bound = m["window_mib"] + WORKING_MEMORY_MIB
        print(
            f"peak memory {side:<9}: {m['extra_mib']:7.1f} MiB above the window "
            f"(window {m['window_mib']:.0f} MiB; target for ours: extra <= window + budget "
            f"= {bound:.0f} MiB)"
        )


def _options(argv: list[str]) -> argparse.Namespace:
    """The options, every bad value refused (one line, exit 2) before any work."""
    from monitor.config import DaemonSettings

    parser = Parser(prog="python -m bench pipeline", description=__doc__)
    parser.add_argument("--n", type=integer(1), default=1_000_000, help="window rows")
    parser.add_argument("--d", type=integer(1), default=32)
    parser.add_argument("--k", type=clusters, default=64)
    parser.add_argument("--repeats", type=integer(1), default=3)
    parser.add_argument("--threads", type=integer(1), default=2)
    parser.add_argument(
        "--engines", nargs="+", default=["sklearn", "sklearnex", "faiss"],
        choices=["sklearn", "sklearnex", "faiss"],
        help="libraries whose k-means the reference assemblies use (when installed)",
    )  # fmt: skip
    parser.add_argument(
        "--restarts",
        type=integer(0),
        default=0,
        help="candidate_restarts on our side (0 matches the reference)",
    )
    parser.add_argument(
        "--run-isolation",
        choices=["thread", "process"],
        default=DaemonSettings().run_isolation,
        help="where our run's middle computes (daemon.run_isolation; default: the "
        "daemon's); the peak-memory runs are in one process either way",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument(
        "--pieces", action="store_true", help="time each piece of the score step alone"
    )
    parser.add_argument("--memory-child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n < args.k:
        parser.error(f"--n must hold --k {args.k} clusters; got {args.n} rows")
    parser.check_model(lambda: _model(args.d, args.k, args.restarts))
    return args


def main(argv: list[str]) -> int:
    """Time every side (medians of ``--repeats``) and measure peak memory."""
    args = _options(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.n, args.d, args.k, args.threads, args.restarts)
        return 0

    if args.pieces:
        _pieces(args)
        return 0

    from threadpoolctl import threadpool_info

    engines = [e for e in args.engines if _installed(e)]
    for missing in sorted(set(args.engines) - set(engines)):
        print(f"note: {missing} is not installed; its assembly is left out", file=sys.stderr)
    print(
        f"window {args.n} x {args.d} float32, k={args.k}, threads={args.threads}, "
        f"repeats={args.repeats}, candidate_restarts={args.restarts}, "
        f"run_isolation={args.run_isolation}, "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    print(
        "BLAS:",
        ", ".join(f"{i['internal_api']} {i.get('architecture', '')}" for i in threadpool_info()),
    )
    _time_sides(args, engines)
    if not args.no_memory:
        _memory(args)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
