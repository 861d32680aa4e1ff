"""The Spark engine's Lloyd iterations against Spark's own k-means, on local[N].

Run::

    python -m bench spark                         # 1 000 000 x 32, k = 64, local[2]
    python -m bench spark --n 10000000 --reps 3 --short 1 --long 4 --partitions 8 \
        --driver-memory 12g                       # the issue's size (about 13 GB of JVM)

Both engines run on one SparkSession (``--master``, default ``local[2]``) over the same
cached data, generated on the executors (overlapping Gaussian blobs, float64, one
block per partition, so no row passes through the driver):

- ``ours``: ``monitor.engines.spark.lloyd`` (numpy per partition, k x d sums back);
- ``spark``: Spark's k-means (``pyspark.mllib.clustering.KMeans.train``, the
  implementation under ``pyspark.ml.clustering.KMeans``; only the RDD API takes an
  initial model, which the same-init comparison needs) on the same rows as vectors.

Same init (the first k rows), tol/epsilon 0 so that neither stops early, and the cost
per iteration is a slope: (time of ``--long`` iterations - time of ``--short``) /
(long - short), which cancels set-up, the conversion of rows to the JVM and each
engine's final pass. Rows per second per core = n / (seconds per iteration) / cores.
Medians over ``--reps`` repetitions, the engines alternating within each.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import sys
import time
from typing import Any

import numpy as np

from bench import Parser, integer, seed


def _block(index: int, rows: int, d: int, k: int, seed: int) -> np.ndarray:
    """Partition ``index``'s rows: blobs around k centres that every partition shares."""
    centres = np.random.default_rng(seed).normal(scale=0.5, size=(k, d))
    rng = np.random.default_rng([seed, index])
    return centres[rng.integers(0, k, size=rows)] + rng.normal(size=(rows, d))


def _cores(master: str) -> int:
    found = re.fullmatch(r"local\[(\d+)\]", master)
    return int(found.group(1)) if found else 1


def _session(master: str, memory: str) -> Any:
    from pyspark.sql import SparkSession

    try:
        spark = (
            SparkSession.builder.master(master)
            .appName("bench spark")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", memory)
            .getOrCreate()
        )
    except Exception as exc:  # no Java 17, say: a line, not pyspark's traceback
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SystemExit(f"error: Spark did not start on {master}: {first}") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per iteration of each engine, per repetition; and the figures."""
    from pyspark.mllib.clustering import KMeansModel
    from pyspark.storagelevel import StorageLevel

    from monitor.engines.spark import lloyd

    spark = _session(args.master, args.driver_memory)
    sc = spark.sparkContext
    parts = args.partitions or sc.defaultParallelism
    rows = -(-args.n // parts)
    blocks = (
        sc.parallelize(range(parts), parts)
        .map(lambda i: _block(i, rows, args.d, args.k, args.seed))
        .persist(StorageLevel.MEMORY_ONLY)
    )
    n = int(blocks.map(lambda b: b.shape[0]).sum())
    init = blocks.first()[: args.k].copy()
    # The rows as MLlib vectors in the JVM, converted once and cached there: Spark's
    # own k-means then reads no Python at all. Each training call gets a narrow
    # coalesce of the cached RDD, because training persists and unpersists its input.
    from pyspark.mllib.common import _to_java_object_rdd, callMLlibFunc
    from pyspark.mllib.linalg import _convert_to_vector

    jvm_rows = _to_java_object_rdd(blocks.flatMap(lambda b: [_convert_to_vector(r) for r in b]))
    jvm_rows.persist(sc._jvm.org.apache.spark.storage.StorageLevel.MEMORY_ONLY())
    jvm_rows.count()
    start = [_convert_to_vector(c) for c in init]

    per_step: list[float] = []
    # Ours also times each iteration (each is one Spark job): a cross-check of the slope
    # that machine noise moves less.
    ticks: list[float] = []

    def ours(iters: int) -> None:
        ticks.append(time.perf_counter())
        lloyd(
            blocks,
            init,
            max_iter=iters,
            tol=0.0,
            on_iteration=lambda i, inertia: ticks.append(time.perf_counter()),
        )
        steps = np.diff(ticks)[1:]  # the first includes the moments pass
        if steps.size:
            per_step.extend(steps.tolist())
        ticks.clear()

    def theirs(iters: int) -> None:
        rows = jvm_rows.coalesce(parts, False)
        model = callMLlibFunc(
            "trainKMeansModel", rows, args.k, iters, "k-means||", args.seed, 2, 0.0, start,
            "euclidean",
        )  # fmt: skip
        KMeansModel([c.toArray() for c in model.clusterCenters()])

    engines = {"ours": ours, "spark": theirs}
    for fit in engines.values():  # warm-up: JIT of the JVM, BLAS buffers, workers
        fit(1)
    per_iter: dict[str, list[float]] = {name: [] for name in engines}
    per_step.clear()  # the warm-up's iterations do not count
    for _ in range(args.reps):
        for name, fit in engines.items():
            short = _timed(lambda fit=fit: fit(args.short))
            long = _timed(lambda fit=fit: fit(args.long))
            per_iter[name].append((long - short) / (args.long - args.short))
            # A long run's figures so far, so that a run cut short still reports them.
            print(f"{name}: {per_iter[name][-1]:.2f} s / iteration", file=sys.stderr, flush=True)
    spark.stop()
    cores = _cores(args.master)
    out: dict[str, Any] = {"n": n, "d": args.d, "k": args.k, "master": args.master}
    out["partitions"] = parts
    for name, seconds in per_iter.items():
        median = statistics.median(seconds)
        out[name] = {
            "seconds_per_iteration": seconds,
            "median_seconds_per_iteration": median,
            "rows_per_second_per_core": n / median / cores,
        }
    out["ours"]["median_seconds_per_iteration_timed"] = statistics.median(per_step)
    out["speedup_vs_spark"] = (
        out["spark"]["median_seconds_per_iteration"] / out["ours"]["median_seconds_per_iteration"]
    )
    return out


def _memory(text: str) -> str:
    """``--driver-memory``: a size as Spark reads one (``4g``, ``4096m``), checked before
    a JVM starts."""
    if re.fullmatch(r"[1-9]\d*([kmgtp]b?|b)?", text.lower()) is None:
        raise argparse.ArgumentTypeError(f"must be a size such as '4g' or '4096m'; got {text!r}")
    return text


def _master(text: str) -> str:
    """``--master``: a Spark master URL, checked before a JVM starts."""
    local = r"local(\[([1-9]\d*|\*)(,[1-9]\d*)?\])?"
    if re.fullmatch(rf"{local}|yarn|(spark|k8s|mesos)://\S+", text) is None:
        raise argparse.ArgumentTypeError(
            f"must be a Spark master such as 'local[2]', 'yarn' or 'spark://HOST:PORT'; "
            f"got {text!r}"
        )
    return text


def _options(argv: list[str]) -> argparse.Namespace:
    """The options, every bad value refused (one line, exit 2) before Spark starts."""
    p = Parser(prog="python -m bench spark", description=__doc__)
    p.add_argument("--n", type=integer(1), default=1_000_000)
    p.add_argument("--d", type=integer(1), default=32)
    p.add_argument("--k", type=integer(1), default=64)
    p.add_argument("--master", type=_master, default="local[2]")
    p.add_argument("--partitions", type=integer(0), default=0, help="default: the parallelism")
    p.add_argument("--short", type=integer(1), default=2)
    p.add_argument("--long", type=integer(2), default=8)
    p.add_argument("--reps", type=integer(1), default=3)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--driver-memory", type=_memory, default="4g")
    args = p.parse_args(argv)
    if args.long <= args.short:
        p.error(f"--long must be greater than --short; got {args.long} and {args.short}")
    # The first k rows of the first partition start both engines (with the default
    # --partitions 0 the partitions are known once Spark runs: the rows at least).
    rows = -(-args.n // (args.partitions or 1))
    if rows < args.k:
        p.error(f"each partition's rows must hold --k {args.k} clusters; got {rows}")
    if importlib.util.find_spec("pyspark") is None:
        p.error("pyspark is not installed (the extra 'spark': pip install 'kmeans-monitor[spark]')")
    return args


def main(argv: list[str]) -> int:
    """Parse the arguments, run, print a table and the JSON figures."""
    args = _options(argv)
    out = run(args)
    print(f"{out['n']} x {out['d']}, k = {out['k']}, {out['master']}, {out['partitions']} parts")
    print("| engine | s / iteration (median) | rows / s / core | runs (s / iteration) |")
    print("|---|---|---|---|")
    for name in ("ours", "spark"):
        f = out[name]
        runs = ", ".join(f"{s:.2f}" for s in f["seconds_per_iteration"])
        print(
            f"| {name} | {f['median_seconds_per_iteration']:.2f} | "
            f"{f['rows_per_second_per_core']:,.0f} | {runs} |"
        )
    timed = out["ours"]["median_seconds_per_iteration_timed"]
    print(f"ours, iterations timed one by one: {timed:.2f} s (median)")
    print(f"ours is {out['speedup_vs_spark']:.2f}x Spark's k-means per iteration")
    print(json.dumps(out))
    return 0
