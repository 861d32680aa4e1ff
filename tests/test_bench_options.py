"""Every benchmark refuses a bad option before any work: one line on stderr, exit 2.

The benchmarks run in this process through their ``main``; where each one's work
begins (a random draw, a subprocess, a temporary directory, a replay...) raises
``Started`` here, so that a value let through fails the test at once rather than
starting a benchmark.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest


class Started(Exception):
    """A benchmark began its work: the option was not refused first."""


WORK = (
    "numpy.random.default_rng",
    "subprocess.run",
    "subprocess.Popen",
    "tempfile.TemporaryDirectory",
    "resource.setrlimit",
    "multiprocessing.process.BaseProcess.start",
    "monitor.bootstrap.backtest",
    "monitor.core.kmeans.warm_up",
    "bench.bench_spark._session",  # pyspark starts its JVM with its own Popen
)


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def started(*args: object, **kwargs: object) -> None:
        raise Started

    for target in WORK:
        monkeypatch.setattr(target, started)


BAD = [
    # calibration
    ("calibration", ["--k", "1"], "argument --k: must be an integer from 2 to 128; got '1'"),
    ("calibration", ["--false-alarm-rate", "0.5"], "must be a number above 0 and below 0.5"),
    ("calibration", ["--false-alarm-rate", "nan"], "must be a number above 0 and below 0.5"),
    ("calibration", ["--sizes", "50,x"], "argument --sizes: must be comma-separated integers"),
    ("calibration", ["--sizes", "3", "--k", "4"], "--sizes must be at least --k (4) rows; got 3"),
    ("calibration", ["--windows", "0"], "argument --windows: must be comma-separated integers"),
    ("calibration", ["--windows", "1,2", "--sizes", "50"], "--windows takes one positive count"),
    ("calibration", ["--seeds", "-1"], "argument --seeds: must be comma-separated integers"),
    ("calibration", ["--rows", "1", "--blocks", "3"], "it needs at least --k (4) rows"),
    ("calibration", ["--json", "/"], "argument --json: '/' is a directory, not a file"),
    ("calibration", ["--json", "/proc/1/x/y.json"], "argument --json: '/proc/1/x/y.json'"),
    # choose_k
    ("choose_k", ["--rows", "-5"], "argument --rows: must be an integer of at least 1; got '-5'"),
    ("choose_k", ["--rows", "0"], "argument --rows: must be an integer of at least 1; got '0'"),
    ("choose_k", ["--reps", "0"], "argument --reps: must be an integer of at least 1; got '0'"),
    ("choose_k", ["--k-min", "5", "--k-max", "2"], "need --k-min < --k-max; got 5 and 2"),
    ("choose_k", ["--rows", "5"], "--rows 5 and --sample 20000 must both hold --k-max 10"),
    ("choose_k", ["--sample", "1"], "argument --sample: must be an integer of at least 2"),
    ("choose_k", ["--refs", "1001"], "argument --refs: must be an integer from 1 to 1,000"),
    ("choose_k", ["--d", "0"], "argument --d: must be an integer of at least 1"),
    ("choose_k", ["--clusters", "0"], "argument --clusters: must be an integer of at least 1"),
    ("choose_k", ["--seed", "x"], "argument --seed: must be an integer from 0 to"),
    # lloyd
    ("lloyd", ["--n", "-1"], "argument --n: must be an integer of at least 1; got '-1'"),
    ("lloyd", ["--n", "100", "0"], "argument --n: must be an integer of at least 1; got '0'"),
    ("lloyd", ["--k", "0"], "argument --k: must be an integer of at least 1; got '0'"),
    ("lloyd", ["--threads", "0"], "argument --threads: must be an integer of at least 1"),
    ("lloyd", ["--short", "5", "--long", "1"], "argument --long: must be an integer of at least 2"),
    ("lloyd", ["--short", "5", "--long", "4"], "--long must be greater than --short; got 4 and 5"),
    ("lloyd", ["--short", "0"], "argument --short: must be an integer of at least 1"),
    ("lloyd", ["--reps", "0"], "argument --reps: must be an integer of at least 1"),
    ("lloyd", ["--d", "0"], "argument --d: must be an integer of at least 1"),
    ("lloyd", ["--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
    ("lloyd", ["--n", "10", "--k", "64"], "every --n must hold --k 64 clusters; got 10 rows"),
    ("lloyd", ["--engines", "nope"], "argument --engines: invalid choice: 'nope'"),
    ("lloyd", ["--worker", "{"], "argument --worker: invalid loads value: '{'"),
    # pipeline
    ("pipeline", ["--threads", "0", "--n", "100", "--repeats", "1"], "argument --threads: must"),
    ("pipeline", ["--n", "0"], "argument --n: must be an integer of at least 1; got '0'"),
    ("pipeline", ["--k", "0"], "argument --k: must be an integer from 2 to 128; got '0'"),
    ("pipeline", ["--repeats", "0"], "argument --repeats: must be an integer of at least 1"),
    ("pipeline", ["--n", "10"], "--n must hold --k 64 clusters; got 10 rows"),
    ("pipeline", ["--restarts", "-1"], "argument --restarts: must be an integer of at least 0"),
    ("pipeline", ["--restarts", "101"], "training.candidate_restarts: must be an int in [0, 100]"),
    ("pipeline", ["--d", "0"], "argument --d: must be an integer of at least 1"),
    ("pipeline", ["--run-isolation", "fork"], "argument --run-isolation: invalid choice"),
    # silhouette
    ("silhouette", ["--n", "0"], "argument --n: must be an integer of at least 3; got '0'"),
    ("silhouette", ["--sample", "-1"], "argument --sample: must be an integer of at least 3"),
    ("silhouette", ["--k", "0"], "argument --k: must be an integer of at least 2; got '0'"),
    ("silhouette", ["--k", "10", "--sample", "10"], "--k must be below the rows scored"),
    ("silhouette", ["--threads", "1", "0"], "argument --threads: must be an integer of at least 1"),
    ("silhouette", ["--reps", "0"], "argument --reps: must be an integer of at least 1"),
    ("silhouette", ["--target", "inf"], "argument --target: must be a number above 0"),
    ("silhouette", ["--d", "0"], "argument --d: must be an integer of at least 1"),
    # store
    ("store", ["--versions", "-1"], "argument --versions: must be an integer of at least 1"),
    ("store", ["--reps", "0"], "argument --reps: must be an integer of at least 1; got '0'"),
    ("store", ["--saves", "-1", "--only", "retention"], "argument --saves: must be an integer"),
    ("store", ["--rows", "0"], "argument --rows: must be an integer of at least 1; got '0'"),
    ("store", ["--only", "both"], "argument --only: invalid choice: 'both'"),
    # serving
    ("serving", ["--backends", "nope"], "argument --backends: must be comma-separated names"),
    ("serving", ["--backends", ""], "argument --backends: must be comma-separated names"),
    ("serving", ["--seconds", "-1"], "argument --seconds: must be a number above 0; got '-1'"),
    ("serving", ["--clients", "0"], "argument --clients: must be an integer of at least 1"),
    ("serving", ["--runs", "0"], "argument --runs: must be an integer of at least 1; got '0'"),
    ("serving", ["--batches", "1,0"], "argument --batches: must be comma-separated integers"),
    ("serving", ["--batches", "100001"], "each from 1 to 100,000; got '100001'"),
    ("serving", ["--format", "csv"], "argument --format: invalid choice: 'csv'"),
    # scrape
    ("scrape", ["--clients", "0"], "argument --clients: must be an integer of at least 1"),
    ("scrape", ["--seconds", "0"], "argument --seconds: must be a number above 0; got '0'"),
    ("scrape", ["--quiet", "-1"], "argument --quiet: must be a number of at least 0"),
    ("scrape", ["--idle", "-1"], "argument --idle: must be an integer of at least 0"),
    ("scrape", ["--idle-scrapers", "0"], "argument --idle-scrapers: must be an integer of"),
    ("scrape", ["--reopen-after", "-1"], "argument --reopen-after: must be a number of at"),
    ("scrape", ["--processes", "0"], "argument --processes: must be an integer of at least 1"),
    ("scrape", ["--models", "0"], "argument --models: must be an integer of at least 1"),
    ("scrape", ["--interval", "0.5"], "argument --interval: must be a number of at least 1"),
    (
        "scrape",
        ["--rows", "3"],
        "--rows must be at least 4, as the models need (validation.min_rows=",
    ),
    ("scrape", ["--nofile", "-1"], "argument --nofile: must be an integer of at least 64"),
    ("scrape", ["--nice", "20"], "argument --nice: must be an integer from 0 to 19; got '20'"),
    ("scrape", ["--client-nice", "-5"], "argument --client-nice: must be an integer from 0 to"),
    ("scrape", ["--first-runs-timeout", "0"], "argument --first-runs-timeout: must be a number"),
    ("scrape", ["--heap", "--models", "0"], "argument --models: must be an integer of at least"),
    # spark
    ("spark", ["--n", "-1"], "argument --n: must be an integer of at least 1; got '-1'"),
    ("spark", ["--k", "0"], "argument --k: must be an integer of at least 1; got '0'"),
    ("spark", ["--short", "3", "--long", "3"], "--long must be greater than --short; got 3 and 3"),
    ("spark", ["--reps", "0"], "argument --reps: must be an integer of at least 1; got '0'"),
    ("spark", ["--partitions", "-1"], "argument --partitions: must be an integer of at least 0"),
    ("spark", ["--n", "100", "--partitions", "4"], "each partition's rows must hold --k 64"),
    ("spark", ["--master", "local[0]"], "argument --master: must be a Spark master such as"),
    ("spark", ["--driver-memory", "lots"], "argument --driver-memory: must be a size such as"),
    ("spark", ["--seed", "-1"], "argument --seed: must be an integer from 0 to"),
    # validation
    ("validation", ["--rows", "0"], "argument --rows: must be an integer of at least 1"),
    ("validation", ["--features", "0"], "argument --features: must be an integer of at least 1"),
    ("validation", ["--repeats", "0"], "argument --repeats: must be an integer of at least 1"),
    # detection
    ("detection", ["--windows", "-1"], "argument --windows: must be an integer of at least 1"),
    ("detection", ["--rows", "3"], "argument --rows: must be an integer of at least 4; got '3'"),
    (
        "detection",
        ["--rows", "20000000"],
        "source.rows_per_window: must be an int in [1, 10000000]",
    ),
    ("detection", ["--seed", "-1"], "argument --seed: must be an integer from 0 to"),
    ("detection", ["--kinds", "vanish,nope"], "argument --kinds: must be comma-separated names"),
    ("detection", ["--kinds", ","], "argument --kinds: must be comma-separated names"),
    ("detection", ["--reference", "12h"], "must be at least 1d (a daily cycle); got '12h'"),
    ("detection", ["--retrain", "daily"], "argument --retrain: invalid choice: 'daily'"),
    ("detection", ["--nope"], "unrecognized arguments: --nope"),
]


@pytest.mark.parametrize(
    ("name", "argv", "message"), BAD, ids=[f"{n} {' '.join(a)}" for n, a, _ in BAD]
)
@pytest.mark.usefixtures("no_work")
def test_a_bad_option_is_refused_in_one_line_before_any_work(
    name: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(f"bench.bench_{name}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert err.endswith(f" (see 'python -m bench {name} --help')\n"), err


GOOD = [(name, []) for name in sorted({name for name, _, _ in BAD})] + [
    ("calibration", ["--k", "2", "--sizes", "2", "--rows", "1", "--blocks", "2"]),
    ("choose_k", ["--rows", "10", "--sample", "10", "--k-min", "9", "--k-max", "10"]),
    ("detection", ["--kinds", ""]),  # the quiet replay alone, as docs/benchmarks.md runs it
    ("detection", ["--kinds", "", "--retrain", "scheduled"]),
    ("lloyd", ["--short", "1", "--long", "2", "--n", "64", "--dtype", "float64"]),
    ("pipeline", ["--n", "64", "--restarts", "100"]),
    ("scrape", ["--heap", "--rows", "100", "--interval", "1"]),
    ("serving", ["--backends", "sklearn,monitor,sklearn", "--batches", "100000"]),
    ("silhouette", ["--n", "3", "--sample", "3", "--k", "2"]),
    (
        "spark",
        ["--master", "local[*]", "--driver-memory", "512m", "--n", "64", "--partitions", "1"],
    ),
]


@pytest.mark.parametrize(("name", "argv"), GOOD, ids=[f"{n} {' '.join(a)}" for n, a in GOOD])
@pytest.mark.usefixtures("no_work")
def test_the_defaults_and_the_edges_of_each_range_start_the_work(
    name: str, argv: list[str]
) -> None:
    module = importlib.import_module(f"bench.bench_{name}")
    with pytest.raises(Started):
        module.main(argv)


def test_the_command_line_refuses_a_bad_option_in_one_line() -> None:
    # Negative rows made numpy's traceback before the CSV was written (exit 1).
    done = subprocess.run(
        [sys.executable, "-m", "bench", "choose_k", "--rows", "-5"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: argument --rows: must be an integer of at least 1; got '-5' "
        "(see 'python -m bench choose_k --help')\n"
    )


def test_a_failed_child_process_is_one_line_not_a_traceback() -> None:
    from bench import run_child

    fails = [sys.executable, "-c", "import sys; print('x', file=sys.stderr); sys.exit('boom')"]
    with pytest.raises(SystemExit, match=r"^error: the child failed \(exit 1\): boom$"):
        run_child(fails, "the child")
    assert run_child([sys.executable, "-c", "print('fine')"], "the child") == "fine\n"


def test_lloyds_fits_without_scikit_learn_leave_its_inertia_ratio_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import bench_lloyd

    # --what fit --engines numpy: there was no sklearn median to divide by (KeyError).
    one = {"wall": 1.0, "inertia": 2.0, "n_iter": 3}
    monkeypatch.setattr(bench_lloyd, "_run_cell", lambda spec, engines, reps: {"numpy": [one]})
    args = argparse.Namespace(n=[100], dtype=["float32"], threads=[1], reps=1)
    bench_lloyd._print_fits(args, ["numpy"], {})
    assert "| 100 | float32 | 1 | numpy | 1.00 | - | - | - | 3 |" in capsys.readouterr().out


def test_a_failed_pipeline_run_stops_its_worker_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker ignores SIGTERM: left running after a failed run, it hung the exit.
    from bench import bench_pipeline

    class Workers:
        closed = False

        def __init__(self, size: int) -> None:
            pass

        def wait_ready(self, timeout: float) -> bool:
            return True

        def close(self) -> None:
            Workers.closed = True

    def fails(*args: object) -> None:
        raise RuntimeError("the run failed")

    monkeypatch.setattr("monitor.workers.RunWorkers", Workers)
    monkeypatch.setattr("monitor.core.kmeans.warm_up", lambda: None)
    monkeypatch.setattr("monitor.core._psi.warm_up", lambda: None)
    monkeypatch.setattr(bench_pipeline, "_live_snapshot", lambda *args: None)
    monkeypatch.setattr(bench_pipeline, "make_window", lambda *args, **kwargs: None)
    monkeypatch.setattr(bench_pipeline, "run_ours", fails)
    args = argparse.Namespace(
        n=100, d=2, k=2, threads=1, repeats=1, restarts=0, run_isolation="process"
    )
    with pytest.raises(RuntimeError, match="the run failed"):
        bench_pipeline._time_sides(args, [])
    assert Workers.closed


def test_silhouettes_rows_in_one_cluster_are_refused_before_timing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from bench import bench_silhouette

    # scikit-learn raised on a single label, after the header was printed.
    one = (np.zeros((5, 2)), np.zeros(5, dtype=np.int64))
    monkeypatch.setattr(bench_silhouette, "_data", lambda *args: one)
    with pytest.raises(SystemExit) as exit_info:
        bench_silhouette.main(["--n", "5", "--sample", "5", "--k", "2", "--reps", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the 5 rows scored all fell in one cluster"), err
