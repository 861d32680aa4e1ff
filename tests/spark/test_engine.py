"""The Spark engine against the local path on the same rows: same SLIs, same candidate.

Tolerances: the engine adds per-partition sums in another order than the local path's
row chunks, so float64 sums agree to rounding (rel 1e-9 is thousands of ulps above it and
far below any SLI's resolution); counts, bins and shares are exact.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor import slis as S
from monitor.config import ModelSettings, SparkSettings, parse
from monitor.core import drift
from monitor.core.kmeans import fit_kmeans
from monitor.engines.spark import (
    SparkEngine,
    _check_master_answers,
    _jvm_reason,
    _JvmOutput,
    candidate_blocks,
    lloyd,
    score_blocks,
    session,
    train_centers,
)
from monitor.errors import DegenerateDataWarning, EngineError
from monitor.pipeline import evaluate
from monitor.pipeline.scoring import prepare, score
from monitor.pipeline.train import one_window, train_candidate, train_reference
from monitor.records import Snapshot, Window
from tests.fakes import FAKE_SOURCES, FakeClock, FakeSource, MemoryHistory, MemoryStore, blobs

FEATURES = ("a", "b", "c")
CENTERS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0], [3.0, 3.0, 3.0]])
REL = 1e-9


def model(**over: Any) -> ModelSettings:
    m: dict[str, Any] = {
        "name": "m",
        "features": list(FEATURES),
        "k": 4,
        "window": "10m",
        "schedule": {"interval": "1m"},
        "source": {"kind": "fake"},
        "training": {"n_init": 2, "seed": 3, "silhouette_sample": 2000, "candidate_restarts": 0},
        "retrain": "on-drift",
        "reference": {"window": "10m"},
        # Fixed thresholds skip the calibration's refits: local work these tests do not
        # compare (the engine scores and trains the candidate, not the reference).
        "thresholds": {"mode": "fixed", "calibration_refits": 0},
    }
    m.update(over)
    return parse({"models": [m]}, sources=FAKE_SOURCES).models[0]


def reference(m: ModelSettings) -> Snapshot:
    X = blobs(1200, CENTERS, seed=1)
    w = Window(m.name, 0.0, 600.0, FEATURES, X)
    return train_reference(
        one_window(w, X), m, now=600.0, reason="initial", package_version="", working_memory_mib=64
    )


def drifted(seed: int = 2, n: int = 1500) -> np.ndarray:
    moved = CENTERS.copy()
    moved[1] += [0.0, 1.5, 0.0]
    X = blobs(n, moved, seed=seed, scale=0.5)
    X[:7] += 9.0  # a few outliers
    return X


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    return reference(model())


def assert_same_run(a: Any, snap_a: Snapshot, b: Any, snap_b: Snapshot) -> None:
    """Two runs of one window agree: decision, every SLI, sizes, PSI and centres.

    The tolerance is for partition sums added in another order than the local ones.
    """
    assert (a.live_version, a.candidate_version, a.promoted, a.decision) == (
        b.live_version,
        b.candidate_version,
        b.promoted,
        b.decision,
    )
    assert a.slis.keys() == b.slis.keys()
    for key, value in a.slis.items():
        assert b.slis[key] == pytest.approx(value, rel=1e-7, abs=1e-9), key
    assert a.cluster_sizes == b.cluster_sizes and a.feature_psi == b.feature_psi
    np.testing.assert_allclose(snap_b.centers, snap_a.centers, atol=1e-9)


@pytest.mark.parametrize("partitions", [2, 5])
def test_scoring_gives_the_local_slis(spark: Any, snap: Snapshot, partitions: int) -> None:
    Xs = prepare(drifted(), snap.scaler, snap.metric)
    kw: dict[str, Any] = {"seed": 7, "silhouette_sample": 2000, "working_memory_mib": 64.0}
    local = score(Xs, snap, **kw)
    blocks = spark.sparkContext.parallelize(np.array_split(Xs, partitions), partitions)
    remote = score_blocks(blocks, snap, **kw)
    assert remote.slis.keys() == local.slis.keys()
    for key, value in local.slis.items():
        assert remote.slis[key] == pytest.approx(value, rel=REL, abs=1e-12), key
    assert remote.cluster_sizes == local.cluster_sizes
    assert remote.cluster_shares == local.cluster_shares
    assert remote.feature_psi == local.feature_psi
    # The window does drift, so the comparison is not between zeros.
    assert local.slis[S.FEATURE_PSI_MAX] > 0.1 and local.slis[S.OUTLIER_RATIO] > 0.0
    assert remote.labels is None and remote.sq_distances is None
    assert remote.undefined == local.undefined == ()


def test_a_window_in_one_cluster_has_no_silhouette_there_as_locally(
    spark: Any, snap: Snapshot
) -> None:
    X = blobs(300, CENTERS[:1], seed=4, scale=0.5)  # every row nearest the first centre
    Xs = prepare(X, snap.scaler, snap.metric)
    kw: dict[str, Any] = {"seed": 7, "silhouette_sample": 2000, "working_memory_mib": 64.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        local = score(Xs, snap, **kw)
        remote = score_blocks(spark.sparkContext.parallelize([Xs[:150], Xs[150:]], 2), snap, **kw)
    assert sum(c > 0 for c in local.cluster_sizes) == 1
    assert remote.undefined == local.undefined == (S.SILHOUETTE,)
    assert remote.slis[S.SILHOUETTE] == local.slis[S.SILHOUETTE] == 0.0


def test_a_sampled_silhouette_is_a_uniform_sample_of_the_window(spark: Any, snap: Snapshot) -> None:
    """Above silhouette_sample rows the sample differs from the local one, not its law."""
    Xs = prepare(drifted(n=6000), snap.scaler, snap.metric)
    kw: dict[str, Any] = {"silhouette_sample": 1000, "working_memory_mib": 64.0}
    local = score(Xs, snap, seed=1, **kw).slis[S.SILHOUETTE]
    engine = SparkEngine(SparkSettings(), spark=spark)
    values = [engine.score(Xs, snap, seed=s, **kw).slis[S.SILHOUETTE] for s in (1, 2, 3)]
    assert len(set(values)) == 3  # each seed draws its own sample
    # Sampling noise of a mean of 1000 silhouettes: a few 0.01s.
    assert all(abs(v - local) < 0.05 for v in values)
    assert engine.score(Xs, snap, seed=2, **kw).slis[S.SILHOUETTE] == values[1]


def test_the_candidate_is_the_local_warm_start(spark: Any, snap: Snapshot) -> None:
    m = model()
    Xs = prepare(drifted(), snap.scaler, snap.metric)
    local_view = score(Xs, snap, seed=7, silhouette_sample=2000, working_memory_mib=64.0)
    assert local_view.labels is not None
    local = train_candidate(Xs, snap.centers, m, 7, 64.0, labels=local_view.labels)
    centers, labels = local.centers, local.labels
    blocks = spark.sparkContext.parallelize(np.array_split(Xs, 3), 3)
    fit = candidate_blocks(blocks, snap, max_iter=300, tol=1e-4, working_memory_mib=64.0)
    # Same iterations on the same labels; the centres differ by summation order only.
    np.testing.assert_allclose(fit.centers, centers, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fit.warm, local.warm, rtol=0, atol=1e-9)
    assert np.abs(centers - snap.centers).max() > 0.1  # the candidate did move
    np.testing.assert_array_equal(fit.table.sum(axis=0), np.bincount(labels, minlength=snap.k))
    np.testing.assert_array_equal(fit.table.sum(axis=1), local_view.cluster_sizes)
    pairs = drift.centroid_drift(snap.centers, centers).pairs
    assert drift.label_agreement_from_table(fit.table, pairs) == drift.label_agreement(
        local_view.labels, labels, pairs
    )


def test_an_empty_cluster_is_moved_to_the_farthest_row_as_locally(
    spark: Any, snap: Snapshot
) -> None:
    m = model()
    centers = snap.centers.copy()
    centers[3] = 100.0  # no row is nearest to it: the first M-step must relocate it
    far = replace(snap, centers=centers)
    Xs = prepare(drifted(), snap.scaler, snap.metric)
    view = score(Xs, far, seed=7, silhouette_sample=2000, working_memory_mib=64.0)
    assert view.cluster_sizes[3] == 0 and view.labels is not None
    want = train_candidate(Xs, far.centers, m, 7, 64.0, labels=view.labels).centers
    blocks = spark.sparkContext.parallelize(np.array_split(Xs, 2), 2)
    fit = candidate_blocks(blocks, far, max_iter=300, tol=1e-4, working_memory_mib=64.0)
    np.testing.assert_allclose(fit.centers, want, rtol=0, atol=1e-9)
    assert (fit.table.sum(axis=0) > 0).all()


def _run(m: ModelSettings, engine: Any) -> list[Any]:
    store, history, clock = MemoryStore(), MemoryHistory(), FakeClock()
    out = []
    for make in (lambda s, e: blobs(1200, CENTERS, seed=1), lambda s, e: drifted()):
        clock.advance(60)
        src = FakeSource(FEATURES, make)
        out.append(evaluate(m, src, store, history, clock.now(), engine=engine))
    return out


def test_the_pipeline_with_the_spark_engine_records_what_the_local_one_does(
    spark: Any,
) -> None:
    m = model()
    local = _run(m, None)
    remote = _run(m, SparkEngine(SparkSettings(), spark=spark))
    for (a, snap_a), (b, snap_b) in zip(local, remote, strict=True):
        assert_same_run(a, snap_a, b, snap_b)
        np.testing.assert_allclose(b.centroid_drift, a.centroid_drift, atol=1e-9)
    assert local[1][0].promoted  # the drift was acted on, by both


def test_distributed_lloyd_from_an_init_is_the_local_fit_from_it(spark: Any) -> None:
    X = blobs(3000, np.vstack([CENTERS, CENTERS + 1.5]), seed=4, scale=0.8)
    init = X[:8]
    local = fit_kmeans(X, 8, init=init, n_init=1, max_iter=300, tol=1e-4)
    blocks = spark.sparkContext.parallelize(np.array_split(X, 4), 4)
    centers, _, n_iter = lloyd(blocks, init, max_iter=300, tol=1e-4)
    np.testing.assert_allclose(centers, local.centers, rtol=0, atol=1e-9)
    assert n_iter > 2  # overlapping blobs take a few iterations: they are compared


def test_a_reference_trained_on_spark_finds_the_blobs(spark: Any) -> None:
    X = blobs(4000, CENTERS * 3, seed=5)
    blocks = spark.sparkContext.parallelize(np.array_split(X, 3), 3)
    centers, inertia, _ = train_centers(blocks, 4, seed=0, max_iter=100, tol=1e-4)
    local = fit_kmeans(X, 4, n_init=3, random_state=0)
    # Well-separated blobs: any good seeding ends in the same partition of the rows.
    assert inertia == pytest.approx(local.inertia, rel=1e-6)
    order = np.lexsort(centers.T[::-1])
    np.testing.assert_allclose(
        centers[order], local.centers[np.lexsort(local.centers.T[::-1])], atol=1e-9
    )


def test_a_spark_session_that_does_not_start_fails_the_run_in_one_line(tmp_path: Path) -> None:
    # It was "FAILED (internal)" and a Python traceback on stderr. No Java here (JAVA_HOME
    # names none), as with a JVM that exits: the gateway never starts, in a few seconds.
    models = [
        "{name: eng, features: [a, b], k: 2, window: 10m, schedule: {interval: 10m}, "
        "engine: spark, spark: {master: 'local[1]'}, source: {kind: synthetic}}",
        "{name: src, features: [a, b], k: 2, window: 10m, schedule: {interval: 10m}, "
        f"source: {{kind: spark, path: '{tmp_path}', time_column: ts}}}}",
    ]
    config = tmp_path / "config.yaml"
    config.write_text(
        f"daemon: {{state_dir: {tmp_path / 'state'}}}\nmodels:\n"
        + "".join(f"  - {m}\n" for m in models)
    )
    argv = [sys.executable, "-m", "monitor", "evaluate", "--config", str(config), "--dry-run"]
    env = {**os.environ, "JAVA_HOME": "/nonexistent-java"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1, done.stderr
    failed = [line for line in done.stdout.splitlines() if "FAILED" in line]
    # It said "[JAVA_GATEWAY_EXITED] Java gateway process exited before sending its port
    # number.": why was only on spark-submit's stderr.
    why = (
        "the Spark session on master 'local[1]' did not start: spark-submit exited: "
        "/nonexistent-java/bin/java: No such file or directory"
    )
    assert len(failed) == 2 and len(done.stdout.splitlines()) == 5, done.stdout
    assert f"eng        FAILED (engine_unavailable): {why}" in failed[0]
    assert f"FAILED (source_unavailable): model 'src', spark source {tmp_path}: {why}" in failed[1]
    assert "Traceback" not in done.stderr and "spark-class" not in done.stderr, done.stderr


STARTUP = "WARNING: Using incubator modules: jdk.incubator.vector\n"
SAID = {
    "executor memory": (
        "Using Spark's default log4j profile: org/apache/spark/log4j2-defaults.properties\n"
        "26/12/06 22:42:32 WARN Utils: Set SPARK_LOCAL_IP if you need to bind to another address\n"
        'Exception in thread "main" org.apache.spark.SparkException: Executor memory must be '
        "a positive number\n"
        "\tat org.apache.spark.deploy.SparkSubmitArguments.error(SparkSubmitArguments.scala:670)\n",
        "org.apache.spark.SparkException: Executor memory must be a positive number",
    ),
    "driver memory": (
        "Error occurred during initialization of VM\nToo small maximum heap\n",
        "Error occurred during initialization of VM: Too small maximum heap",
    ),
    "no java there": (
        "/venv/pyspark/bin/spark-class: line 71: /nonexistent/bin/java: No such file or directory\n"
        "/venv/pyspark/bin/spark-class: line 97: CMD: bad array subscript\n",
        "/nonexistent/bin/java: No such file or directory",
    ),
    "no java": ("JAVA_HOME is not set\n", "JAVA_HOME is not set"),
    "nothing": ("", None),
}


@pytest.mark.parametrize("case", SAID)
def test_why_spark_submit_exited_is_the_line_of_its_output_that_says_it(case: str) -> None:
    said, reason = SAID[case]
    assert _jvm_reason(STARTUP + said) == reason


def test_a_jvm_that_exits_as_it_starts_fails_the_session_with_its_reason_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # The run's line said only "[JAVA_GATEWAY_EXITED] Java gateway process exited before
    # sending its port number.", and Java's lines went to the daemon's stdout and stderr.
    import pyspark.core.context
    import pyspark.java_gateway
    from pyspark import SparkContext
    from pyspark.errors import PySparkRuntimeError

    def launch(conf: Any = None, popen_kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = popen_kwargs or {}
        write = "import sys; sys.stdout.write(sys.argv[1]); sys.stderr.write(sys.argv[2])"
        said = SAID["executor memory"][0]
        argv = [sys.executable, "-c", write, STARTUP, said]
        subprocess.run(argv, stdout=kwargs.get("stdout"), stderr=kwargs.get("stderr"), check=True)
        raise PySparkRuntimeError(errorClass="JAVA_GATEWAY_EXITED", messageParameters={})

    for module in (pyspark.java_gateway, pyspark.core.context):
        monkeypatch.setattr(module, "launch_gateway", launch)
    for name in ("_active_spark_context", "_gateway", "_jvm"):
        monkeypatch.setattr(SparkContext, name, None)
    with pytest.raises(EngineError) as failed:
        session(SparkSettings("local[1]", (("spark.executor.memory", "lots"),)))
    assert str(failed.value) == (
        "the Spark session on master 'local[1]' did not start: spark-submit exited: "
        "org.apache.spark.SparkException: Executor memory must be a positive number"
    )
    out, err = capfd.readouterr()
    assert out == "" and "\tat " not in err and "Exception" not in err, (out, err)


def test_the_jvms_output_held_while_a_session_starts_is_passed_on_once_it_has_started(
    capfd: pytest.CaptureFixture[str],
) -> None:
    output = _JvmOutput()
    output.hold()
    os.write(output.fd, b"start-up line\n")
    output.release()
    os.write(output.fd, b"an ERROR line\n")
    os.close(output.fd)
    assert output.drop(wait=True) == ""  # the output has ended: nothing is held
    assert capfd.readouterr() == ("", "start-up line\nan ERROR line\n")


RESTART = """
from pyspark import SparkContext
from monitor.config import SparkSettings
from monitor.engines.spark import session
from monitor.errors import EngineError

settings = SparkSettings("local[1]", (("spark.ui.enabled", "false"),))
# What a standalone master that never answered leaves: a context Spark stopped as it started.
SparkContext(master="local[1]")._jsc.sc().stop()
try:
    session(settings)
except EngineError as exc:
    print("first:", exc)
print("then:", session(settings).range(3).count())
"""


def test_a_session_that_did_not_start_is_started_again_by_the_next_run() -> None:
    # pyspark kept handing out the stopped context: every later run failed at once, so a
    # daemon started while its master was down never recovered.
    assert _printed(RESTART) == [
        "first: the Spark session on master 'local[1]' did not start: "
        "java.lang.IllegalStateException: Cannot call methods on a stopped SparkContext.",
        "then: 3",
    ]


def _printed(script: str) -> list[str]:
    """The lines a script printed in a Python of its own (Spark's one session a process)."""
    argv = [sys.executable, "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


REFUSED = """
import socket
from pyspark import SparkContext
from monitor.config import SparkSettings
from monitor.engines.spark import session
from monitor.errors import EngineError

with socket.socket() as s:  # a port nothing listens on once it is closed
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
try:
    session(SparkSettings(f"spark://127.0.0.1:{port}"))
except EngineError as exc:
    print(str(exc).replace(str(port), "PORT"))
print("context:", SparkContext._active_spark_context)
"""


def test_a_standalone_master_that_refuses_connections_fails_before_spark_starts() -> None:
    # Spark gave up on it only after three registrations 20 s apart: each run held its
    # worker for over a minute and failed on "Cannot call methods on a stopped SparkContext".
    assert _printed(REFUSED) == [
        "the Spark master 'spark://127.0.0.1:PORT' does not answer "
        "(no connection to 127.0.0.1:PORT: Connection refused)",
        "context: None",
    ]


def test_a_master_of_a_high_availability_url_that_accepts_is_enough() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = closed.getsockname()[1]
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        _check_master_answers(f"spark://127.0.0.1:{refused},127.0.0.1:{port}")
        with pytest.raises(EngineError, match=f"127.0.0.1:{refused}: Connection refused"):
            _check_master_answers(f"spark://127.0.0.1:{refused}")


LOST = """
import numpy as np
from monitor.config import SparkSettings
from monitor.engines.spark import SparkEngine
from monitor.errors import EngineError

X = np.random.default_rng(0).normal(size=(400, 2))
engine = SparkEngine(SparkSettings("local[1]", (("spark.ui.enabled", "false"),)))


def fit():
    return engine.fit(X, X[:3], max_iter=5, tol=1e-4, cosine=False, working_memory_mib=64).shape


print("before:", fit())
# What a master that went away leaves: Spark stops the context under the session.
engine.spark.sparkContext._jsc.sc().stop()
try:
    fit()
except EngineError as exc:
    print("lost:", exc)
print("then:", fit())
engine.close()
"""


def test_a_session_that_lost_its_spark_fails_the_job_in_one_line_and_the_next_run_recovers() -> (
    None
):
    # The job's Py4JJavaError was an internal failure with Java's stack as its message,
    # and the engine kept the stopped session: every later run failed the same way.
    done = subprocess.run([sys.executable, "-c", LOST], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [line.split("\r")[-1] for line in done.stdout.splitlines()] == [
        "before: (3, 2)",
        "lost: the Spark job that trains the model failed: java.lang.IllegalStateException: "
        "Cannot call methods on a stopped SparkContext.",
        "then: (3, 2)",
    ], done.stdout


KILLED = """
import os
import signal
import time

import numpy as np
from pyspark import SparkContext
from monitor.config import SparkSettings
from monitor.engines.spark import SparkEngine, rows_of
from monitor.errors import EngineError
from monitor.records import CountedRows

X = np.random.default_rng(0).normal(size=(400, 2))
settings = SparkSettings("local[1]", (("spark.ui.enabled", "false"),))
first, second = SparkEngine(settings), SparkEngine(settings)  # the second shares the session


def fit(engine, rows=X):
    return engine.fit(rows, X[:3], max_iter=5, tol=1e-4, cosine=False, working_memory_mib=64).shape


def kill_jvm(pid, block):  # on an executor: the JVM dies during the job
    os.kill(pid, signal.SIGKILL)
    time.sleep(2)
    return block


def jvm():
    return SparkContext._gateway.proc.pid


print("before:", fit(first), fit(second))
old = jvm()
dying = rows_of(first.spark.sparkContext, X, 1).map_blocks(lambda b, pid=old: kill_jvm(pid, b))
try:
    fit(first, CountedRows(dying, 400))
except EngineError as exc:
    print("lost:", str(exc).replace(str(old), "PID"))
print("then:", fit(second), fit(first), jvm() != old)
# A JVM that exits between two runs is replaced by the next run's session.
os.kill(jvm(), signal.SIGKILL)
SparkContext._gateway.proc.wait()
print("again:", fit(first), fit(second))
# Killed while the spark source's rows are read: the pass that validates them.
old = jvm()
dying = rows_of(first.spark.sparkContext, X, 1).map_blocks(lambda b, pid=old: kill_jvm(pid, b))
try:
    dying.summarise(len)
except EngineError as exc:
    print("lost reading:", str(exc).replace(str(old), "PID"))
print("after:", fit(first), jvm() != old)
first.close()
"""


def test_a_killed_spark_jvm_fails_one_run_in_one_line_and_the_next_runs_start_a_new_one() -> None:
    # Every later run of every Spark model failed as internal with "[Errno 111] Connection
    # refused" and a traceback: pyspark kept the dead gateway, and only the engine that
    # started the session gave it up.
    done = subprocess.run(
        [sys.executable, "-c", KILLED], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "before: (3, 2) (3, 2)",
        "lost: the Spark job that trains the model failed: Spark's JVM (pid PID) exited "
        "(killed by SIGKILL)",
        "then: (3, 2) (3, 2) True",
        "again: (3, 2) (3, 2)",
        # It was the rows' source_unavailable, "Spark cannot read it: [Errno 111]
        # Connection refused": on-call sent to the storage.
        "lost reading: the window's rows: the Spark job of the read failed: Spark's JVM "
        "(pid PID) exited (killed by SIGKILL)",
        "after: (3, 2) True",
    ], done.stdout
    assert "Traceback" not in done.stderr, done.stderr


def test_pysparks_warning_about_pandas_3_is_not_logged_as_the_daemons_warning() -> None:
    # "WARNING monitor: FutureWarning: PySpark does not yet fully support pandas >= 3.0.0"
    # at every Spark start: nothing the user can act on.
    script = (
        "from monitor.logs import setup_logging\n"
        "setup_logging('INFO')\n"
        "from monitor.config import SparkSettings\n"
        "from monitor.engines.spark import session\n"
        "session(SparkSettings('local[1]', (('spark.ui.enabled', 'false'),))).stop()\n"
    )
    argv = [sys.executable, "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "pandas >= 3" not in done.stderr, done.stderr


def test_py4js_traceback_on_the_root_logger_goes_to_its_own_logger_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # py4j logs a call to a JVM that has gone with logging.exception, on the root logger:
    # "ERROR:root:Exception while sending command." and two tracebacks, in the daemon's
    # log and on a test's stderr, beside the run's one line that says it.
    try:  # monitor.engines.spark, imported, filters the root logger
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        caplog.set_level(logging.DEBUG)
        # A session started earlier in the process holds py4j's logger at WARNING.
        caplog.set_level(logging.DEBUG, logger="py4j")
        where = os.path.join(os.sep, "venv", "py4j", "java_gateway.py")
        root = logging.getLogger()
        text = "Exception while sending command."
        root.handle(root.makeRecord("root", logging.ERROR, where, 1059, text, None, sys.exc_info()))
        logging.getLogger().error("ours, not py4j's")
    said = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert said == [
        ("py4j", "DEBUG", "Exception while sending command."),
        ("root", "ERROR", "ours, not py4j's"),
    ]
