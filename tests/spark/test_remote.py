"""Windows whose rows stay in Spark: the pipeline validates, scales, scores, trains and
retrains them there, with the local engine's results and without collecting them.

Tolerances as in test_engine.py: per-partition sums add in another order than the local
path's chunks, so float64 values agree to rounding; counts, bins and shares are exact.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from pyspark import RDD

from monitor import slis as S
from monitor.bootstrap import model_spec
from monitor.config import DaemonSettings, ModelSettings, Settings, SparkSettings
from monitor.core.kmeans import assign_labels
from monitor.engines.spark import SparkEngine, SparkRows, candidate_blocks, rows_of
from monitor.errors import InvalidValuesError
from monitor.exporter import MonitorState
from monitor.pipeline import evaluate, train
from monitor.pipeline.scoring import prepare
from monitor.pipeline.train import train_candidate
from monitor.records import Evaluation, RunFailure, Window
from monitor.runner import Runner
from tests.fakes import FakeClock, FakeSource, MemoryHistory, MemoryStore, blobs
from tests.spark.test_engine import (
    CENTERS,
    FEATURES,
    assert_same_run,
    drifted,
    model,
    reference,
)


class RemoteSource:
    """A source whose windows keep their rows in Spark, as the spark source's do."""

    def __init__(self, spark: Any, make: Any, partitions: int = 3) -> None:
        self._sc = spark.sparkContext
        self._make = make
        self._partitions = partitions

    def read_window(self, start: float, end: float) -> Window:
        X = self._make(start, end)
        rows = rows_of(self._sc, X, self._partitions)
        return Window("m", start, end, FEATURES, np.empty((0, 3)), label="remote", remote=rows)

    def close(self) -> None:
        """Nothing to release."""


def with_nans(X: np.ndarray) -> np.ndarray:
    """A few rows with a NaN or an infinity (under the default 1% a drop policy accepts)."""
    X = X.copy()
    X[[5, 400, 901], [0, 2, 1]] = [np.nan, np.inf, np.nan]
    return X


WINDOWS = (lambda s, e: with_nans(blobs(1200, CENTERS, seed=1)), lambda s, e: drifted())


def _runs(m: ModelSettings, make_source: Any, engine: Any) -> list[Any]:
    store, history, clock = MemoryStore(), MemoryHistory(), FakeClock()
    out = []
    for make in WINDOWS:
        clock.advance(60)
        out.append(evaluate(m, make_source(make), store, history, clock.now(), engine=engine))
    return out


def test_a_window_kept_in_spark_gives_the_local_runs(spark: Any) -> None:
    """First model (with rows dropped by the NaN policy), then a drift that retrains."""
    m = model(validation={"nan_policy": "drop"})
    local = _runs(m, lambda make: FakeSource(FEATURES, make), None)
    engine = SparkEngine(SparkSettings(), spark=spark)
    remote = _runs(m, lambda make: RemoteSource(spark, make), engine)
    for (a, snap_a), (b, snap_b) in zip(local, remote, strict=True):
        assert_same_run(a, snap_a, b, snap_b)
        assert a.n_rows == b.n_rows and snap_b.n_rows == snap_a.n_rows
        np.testing.assert_array_equal(snap_b.sample, snap_a.sample)
    assert local[0][0].n_rows == 1197  # three rows dropped, by both
    assert local[1][0].promoted  # the drift was acted on, by both


def test_the_nan_policy_fails_a_window_kept_in_spark_as_a_local_one(spark: Any) -> None:
    m = model()  # nan_policy: fail
    engine = SparkEngine(SparkSettings(), spark=spark)
    messages = []
    for source, run_engine in (
        (FakeSource(FEATURES, WINDOWS[0]), None),
        (RemoteSource(spark, WINDOWS[0]), engine),
    ):
        with pytest.raises(InvalidValuesError) as info:
            evaluate(m, source, MemoryStore(), MemoryHistory(), 60.0, engine=run_engine)
        messages.append(str(info.value).split(": ", 1)[1])  # the window's label differs
    assert messages[0] == messages[1] and "3 of 1200 rows" in messages[0]


def test_values_whose_squares_overflow_fail_a_window_kept_in_spark_as_a_local_one(
    spark: Any,
) -> None:
    # Finite values, but squares beyond the largest float: refused by both, the same
    # message (rows counted over every block, the first such row shown).
    def huge(start: float, end: float) -> np.ndarray:
        X = blobs(1200, CENTERS, seed=1)
        X[[5, 700, 701], 1] = 1e300
        return X

    m = model()
    engine = SparkEngine(SparkSettings(), spark=spark)
    messages = []
    for source, run_engine in (
        (FakeSource(FEATURES, huge), None),
        (RemoteSource(spark, huge), engine),
    ):
        with pytest.raises(InvalidValuesError) as info:
            evaluate(m, source, MemoryStore(), MemoryHistory(), 60.0, engine=run_engine)
        messages.append(str(info.value).split(": ", 1)[1])
    assert messages[0] == messages[1]
    assert "values overflow squared distances: 3 of 1200 rows, e.g. b = 1e+300" in messages[0]


class Collected:
    """What every RDD.collect brought to the driver, in pickled bytes per call."""

    def __init__(self) -> None:
        self.sizes: list[int] = []


@pytest.fixture
def collected(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collected]:
    seen = Collected()
    original = RDD.collect

    def counting(self: RDD) -> list[Any]:
        found = original(self)
        seen.sizes.append(len(pickle.dumps(found)))
        return found

    def refuse(self: SparkRows) -> np.ndarray:
        raise AssertionError("the window's rows were collected")

    monkeypatch.setattr(RDD, "collect", counting)
    monkeypatch.setattr(SparkRows, "collect", refuse)
    yield seen


def test_rows_kept_in_spark_never_reach_the_driver(
    spark: Any, collected: Collected, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first run and a retrain on 200 000 rows: only samples and sums come back."""
    n, d = 200_000, 3
    monkeypatch.setattr(train, "TRAINING_ROWS", 5000)  # the training's sample, not the window
    m = model(validation={"nan_policy": "drop"})
    engine = SparkEngine(SparkSettings(), spark=spark)
    windows = (lambda s, e: with_nans(blobs(n, CENTERS, seed=1)), lambda s, e: drifted(n=n))
    store, history, clock = MemoryStore(), MemoryHistory(), FakeClock()
    runs = []
    for make in windows:
        clock.advance(60)
        source = RemoteSource(spark, make, partitions=4)
        runs.append(evaluate(m, source, store, history, clock.now(), engine=engine))
    assert [r[0].n_rows for r in runs] == [n - 3, n] and runs[1][0].promoted
    assert runs[1][1].n_rows == n  # the retrained model saw every row (its count does)
    window_bytes = n * d * 8
    # The largest collect is the split gain's sample of SPLIT_ROWS rows; everything else
    # is k x d sums, bin counts and the samples of the silhouette and the training.
    assert max(collected.sizes) < 20_000 * d * 8 * 1.1 + 65_536
    assert sum(collected.sizes) < window_bytes / 4
    assert len(collected.sizes) > 10  # the passes did go through RDD.collect


def test_a_reference_beyond_its_sample_is_fitted_on_every_row(
    spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeds on the sample, then Lloyd on the cluster: the centres are every row's means.

    A reference period of three windows, each of 5 000 rows, sampled to 300 rows.
    """
    monkeypatch.setattr(train, "TRAINING_ROWS", 300)
    m = model(
        thresholds={"mode": "calibrated", "calibration_refits": 1}, reference={"window": "30m"}
    )
    X = blobs(5000, np.vstack([CENTERS, CENTERS + 1.2]), seed=4, scale=0.9)
    engine = SparkEngine(SparkSettings(), spark=spark)
    src = RemoteSource(spark, lambda s, e: X, partitions=4)
    evaluation, snap = evaluate(m, src, MemoryStore(), MemoryHistory(), 1800.0, engine=engine)
    assert evaluation.n_rows == 5000 and snap.n_rows == 15_000 and snap.null is not None
    # The calibration's window sizes follow the windows' rows, not the sample's.
    assert snap.null.sizes[-1] == 10_000
    assert snap.reference_windows is not None and snap.reference_windows.starts.shape == (3,)
    Xs = prepare(X, snap.scaler, snap.metric)
    labels, _ = assign_labels(Xs, snap.centers)
    means = np.vstack([Xs[labels == j].mean(axis=0) for j in range(snap.k)])
    # Lloyd stopped at a shift of at most tol x the mean variance: within 1e-2 of a
    # fixed point, where the sample's own fit is off by far more (checked below).
    np.testing.assert_allclose(snap.centers, means, atol=1e-2)
    sample = train.one_window(Window("m", 0.0, 600.0, FEATURES, X), X[:300])
    alone = train.train_reference(
        replace(sample), m, now=600.0, reason="initial", package_version="", working_memory_mib=64
    )
    a_labels, _ = assign_labels(Xs, alone.centers)
    a_means = np.vstack([Xs[a_labels == j].mean(axis=0) for j in range(alone.k)])
    assert np.abs(alone.centers - a_means).max() > 2e-2


def test_candidate_restarts_on_spark_leave_a_local_minimum_as_locally(spark: Any) -> None:
    blob_centres = CENTERS * 3
    X = blobs(4000, blob_centres, seed=6, scale=0.3)
    m = model(training={"candidate_restarts": 3, "seed": 3})
    snap = reference(m)
    # Two centres share the first blob, one sits on the second and one between the last
    # two: Lloyd from there stays put, k-means++ restarts find the four blobs.
    stuck = np.vstack(
        [
            blob_centres[0] - 0.2,
            blob_centres[0] + 0.2,
            blob_centres[1],
            (blob_centres[2] + blob_centres[3]) / 2,
        ]
    )
    live = replace(snap, centers=stuck, scaler=replace(snap.scaler, center=np.zeros(3)))
    live = replace(live, scaler=replace(live.scaler, scale=np.ones(3)))
    Xs = prepare(X, live.scaler, live.metric)
    blocks = spark.sparkContext.parallelize(np.array_split(Xs, 3), 3)
    kw: dict[str, Any] = {"max_iter": 300, "tol": 1e-4, "working_memory_mib": 64.0}
    warm = candidate_blocks(blocks, live, **kw)
    restarted = candidate_blocks(blocks, live, restarts=3, seed=7, **kw)
    local = train_candidate(Xs, stuck, m, 7, 64.0).centers
    # The restarted candidate keeps the warm start's centres, as the local one does.
    np.testing.assert_allclose(restarted.warm, warm.centers, rtol=0, atol=1e-12)

    def cost(C: np.ndarray) -> float:
        return float(assign_labels(Xs, C)[1].sum())

    assert cost(restarted.centers) < 0.5 * cost(warm.centers)
    order = np.lexsort(restarted.centers.T[::-1])
    np.testing.assert_allclose(
        restarted.centers[order], local[np.lexsort(local.T[::-1])], atol=1e-9
    )
    assert restarted.table.sum() == X.shape[0]


def test_a_first_model_on_spark_reports_the_window_it_was_scored_on(spark: Any) -> None:
    m = model()
    engine = SparkEngine(SparkSettings(), spark=spark)
    src = RemoteSource(spark, lambda s, e: blobs(1200, CENTERS, seed=1))
    evaluation, _ = evaluate(m, src, MemoryStore(), MemoryHistory(), 600.0, engine=engine)
    assert evaluation.n_rows == 1200 and evaluation.slis[S.SILHOUETTE] > 0.5


def test_a_new_version_on_spark_is_trained_on_the_period_to_its_run(spark: Any) -> None:
    """A promotion reads the reference period through the engine, as a first run does."""
    training = {"n_init": 2, "seed": 3, "candidate_restarts": 0, "retrain_every": "1m"}
    m = model(reference={"window": "30m"}, retrain="scheduled", training=training)
    engine = SparkEngine(SparkSettings(), spark=spark)
    store, history = MemoryStore(), MemoryHistory()
    src = RemoteSource(spark, lambda s, e: blobs(1200, CENTERS, seed=int(s) % 1000))
    evaluate(m, src, store, history, 1800.0, engine=engine)
    ev, snap = evaluate(m, src, store, history, 2400.0, engine=engine)
    assert ev.promoted and ev.decision.endswith("; trained on the 30m to the run (3 windows)")
    assert (snap.window_start, snap.window_end) == (600.0, 2400.0)
    assert snap.reference_windows is not None and snap.reference_windows.starts.shape == (3,)
    assert snap.n_rows == 3 * 1200


def by_minute(start: float, end: float) -> np.ndarray:
    """The rows of the minutes in [start, end): 40 a minute, each minute's its own, the
    blobs moving over the hours, so that a window half a window off holds other rows."""
    minutes = range(int(start // 60), int(end // 60))
    return np.vstack(
        [blobs(40, CENTERS + 0.4 * np.sin(t / 25.0), seed=t, scale=0.6) for t in minutes]
    )


def test_a_period_kept_in_spark_is_calibrated_on_both_cuts_as_locally(spark: Any) -> None:
    """Twelve 10-minute windows of 400 rows each, and the cut half a window later: the
    Spark engine's null table and thresholds are the local engine's. Below TRAINING_ROWS
    the sample is every row, in order, so the model and every null window are the same
    rows; the tolerance is for partition sums added in another order."""
    m = model(
        thresholds={"mode": "calibrated", "calibration_refits": 1}, reference={"window": "2h"}
    )
    now = 7200.0
    local = evaluate(m, FakeSource(FEATURES, by_minute), MemoryStore(), MemoryHistory(), now)[1]
    engine = SparkEngine(SparkSettings(), spark=spark)
    src = RemoteSource(spark, by_minute)
    remote = evaluate(m, src, MemoryStore(), MemoryHistory(), now, engine=engine)[1]
    assert local.null is not None and remote.null is not None
    np.testing.assert_array_equal(remote.null.sizes, local.null.sizes)
    np.testing.assert_allclose(remote.null.values, local.null.values, rtol=1e-9, equal_nan=True)
    assert remote.thresholds.keys() == local.thresholds.keys()
    for key, value in local.thresholds.items():
        assert remote.thresholds[key] == pytest.approx(value, rel=1e-9), key


def test_a_spark_job_past_the_runs_deadline_is_cancelled_and_the_run_fails_run_timeout(
    spark: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The run was abandoned at its next phase, once the job had ended: the job ran on,
    and the run with it, a minute past a 4-second deadline here (helper-126: 8 s past
    20 s). At the deadline the run's jobs are cancelled; the run fails as a local one
    past its deadline does, and the session is kept."""
    slow = [False]

    def window(start: float, end: float) -> Window:
        w = RemoteSource(spark, lambda s, e: blobs(1200, CENTERS, seed=1), partitions=2)
        read = w.read_window(start, end)
        if not slow[0]:
            return read
        assert read.remote is not None
        # A minute a block on its executor (a lambda: pickled by value for the workers).
        return replace(read, remote=read.remote.map_blocks(lambda b: (time.sleep(60), b)[1]))

    source = FakeSource(FEATURES, lambda s, e: np.empty((0, 3)))
    source.read_window = window  # type: ignore[method-assign]
    clock, engine = FakeClock(), SparkEngine(SparkSettings(), spark=spark)
    runner = bounded_runner(clock, source, {"m": engine})
    assert isinstance(runner.run_model("m"), Evaluation)  # the first run trains, unbounded
    slow[0] = True
    clock.t += 60
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        result = runner.run_model("m")
    took = time.monotonic() - started
    assert isinstance(result, RunFailure) and result.reason == "run_timeout", result
    assert took < 20, took
    assert result.message.startswith("run abandoned after ")
    assert result.message.endswith(
        "past its deadline of 4s (schedule.run_timeout); nothing was stored"
    )
    said = [r.getMessage() for r in caplog.records if "cancel" in r.getMessage()]
    assert said == [
        "model=m the run passed its deadline of 4s (schedule.run_timeout): its Spark jobs "
        "are cancelled"
    ], said
    tracker = spark.sparkContext.statusTracker()
    waited = time.monotonic() + 10
    while tracker.getActiveJobsIds() and time.monotonic() < waited:
        time.sleep(0.1)
    assert tracker.getActiveJobsIds() == []  # the job stopped
    # The session was kept (a failed job gives it up) and serves the next jobs.
    assert engine.spark is spark and spark.sparkContext.parallelize(range(5), 2).count() == 5


def sleepy_view(spark: Any, name: str, now: float, *, slow: bool) -> None:
    """The temp view ``name``: rows of FEATURES every half second around ``now``, with a
    time column ``t`` of unix seconds; if ``slow``, each partition a minute in coming (a
    map that sleeps, on the executors)."""
    X = blobs(3000, CENTERS, seed=1)
    times = now - 1200 + 0.5 * np.arange(len(X))
    data = [(float(t), *map(float, row)) for t, row in zip(times, X, strict=True)]
    rows = spark.sparkContext.parallelize(data, 2)
    if slow:
        rows = rows.mapPartitions(lambda part: (time.sleep(60), part)[1])
    schema = ", ".join(f"{c} double" for c in ("t", *FEATURES))
    spark.createDataFrame(rows, schema).createOrReplaceTempView(name)


def run_until_cancelled(
    spark: Any, runner: Runner, caplog: pytest.LogCaptureFixture
) -> tuple[RunFailure, list[str]]:
    """One run of m, which fails; the lines that say jobs were cancelled. The Spark job
    it started has stopped, whose active jobs are looked at for 10 s."""
    with caplog.at_level(logging.INFO):
        result = runner.run_model("m")
    assert isinstance(result, RunFailure), result
    tracker = spark.sparkContext.statusTracker()
    waited = time.monotonic() + 10
    while tracker.getActiveJobsIds() and time.monotonic() < waited:
        time.sleep(0.1)
    assert tracker.getActiveJobsIds() == []  # the job stopped
    return result, [r.getMessage() for r in caplog.records if "cancel" in r.getMessage()]


def bounded_runner(
    clock: FakeClock, source: Any, engines: dict[str, SparkEngine] | None = None
) -> Runner:
    """A Runner of m reading ``source``, on ``engines`` (none: the local engine), whose
    runs have a deadline of 4 s."""
    m = model()
    return Runner(
        Settings(DaemonSettings(), (m,)),
        sources={"m": source},
        store=MemoryStore(),
        history=MemoryHistory(),
        state=MonitorState([model_spec(m, datetime.now(UTC))], started_at=0.0, version="t"),
        clock=clock,
        package_version="t",
        engines=engines,
        run_timeouts={"m": 4.0},
    )


def spark_source_runner(clock: FakeClock, view: str) -> Runner:
    """A Runner of m, on the local engine, reading the spark source of the view."""
    from monitor.sources.spark import SparkSourceOptions, build

    return bounded_runner(
        clock, build("m", FEATURES, SparkSourceOptions(table=view, time_column="t"))
    )


def test_a_spark_job_of_a_read_past_its_deadline_is_cancelled_and_the_run_fails_source_timeout(
    spark: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A read runs on a thread of its own, whose Spark jobs the run's deadline did not
    tag: the run stopped waiting for it at the deadline, its job running on (a minute
    here), holding the executors. The read's jobs are cancelled at its deadline."""
    clock = FakeClock()
    sleepy_view(spark, "slow_times", clock.now(), slow=True)  # the read checks times: slow
    result, said = run_until_cancelled(spark, spark_source_runner(clock, "slow_times"), caplog)
    assert result.reason == "source_timeout", result
    assert said == [
        "model=m a read of its source passed its deadline of 4s (schedule.run_timeout): its "
        "Spark jobs are cancelled"
    ], said
    assert spark.sparkContext.parallelize(range(5), 2).count() == 5  # the session serves


def test_a_local_model_collecting_a_spark_sources_rows_past_its_deadline_cancels_the_job(
    spark: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A model on the local engine collects the spark source's rows on the run's thread,
    which had no deadline of Spark's (no engine): its job ran on past the deadline. The
    run's jobs are cancelled there, and the run fails run_timeout as the engine's do."""
    clock = FakeClock()
    sleepy_view(spark, "slow_rows", clock.now(), slow=False)
    runner = spark_source_runner(clock, "slow_rows")
    assert isinstance(runner.run_model("m"), Evaluation)  # the first run trains, unbounded
    sleepy_view(spark, "slow_rows", clock.now(), slow=True)  # the rows' collect: slow
    clock.advance(60)
    result, said = run_until_cancelled(spark, runner, caplog)
    assert result.reason == "run_timeout", result
    assert said == [
        "model=m the run passed its deadline of 4s (schedule.run_timeout): its Spark jobs "
        "are cancelled"
    ], said
