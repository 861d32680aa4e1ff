"""The Spark engine: scoring and the candidate's Lloyd iterations as partition sums.

The only module that imports pyspark (the optional extra ``spark``). Every pass maps
each partition to one numpy block and returns sums of size k x d, k or the reference
bins, added on the driver; rows never come back, except the bounded sample of the
exact silhouette. The sums are those of ``monitor.core``'s ``*_from_counts`` /
``*_from_sums`` functions, so an SLI is the row form's value on the same rows.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import logging
import operator
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pyspark import RDD
from pyspark.sql import DataFrame, SparkSession

from monitor import slis as S
from monitor.checks import BRIEF_MOST, brief_text
from monitor.config import SparkSettings
from monitor.core import drift, outliers, quality
from monitor.core._distances import silhouette_from_ab
from monitor.core.kmeans import assign_labels, assign_two_nearest, fit_kmeans, kmeans_plusplus
from monitor.errors import (
    EngineError,
    NoDataError,
    RunCancelledError,
    SchemaError,
    SourceDataError,
    SourceError,
)
from monitor.pipeline.train import RESTART_ROWS
from monitor.records import (
    CandidateFit,
    CountedRows,
    OutlierThresholds,
    ReferenceBins,
    RemoteRows,
    Silhouette,
    Snapshot,
    WindowView,
)
from monitor.timestamps import EARLIEST, LATEST, finer_unit, out_of_range

__all__ = [
    "SparkEngine",
    "SparkRows",
    "blocks_of_frame",
    "candidate_blocks",
    "error_line",
    "job_deadline",
    "lloyd",
    "read_rows",
    "rows_of",
    "score_blocks",
    "session",
    "train_centers",
]

#: Spark's log level (``spark.log.level``) unless the model's ``spark.conf`` sets one.
LOG_LEVEL = "ERROR"


class _Py4JOnRoot(logging.Filter):
    """py4j logs a call to a JVM that has gone ("Exception while sending command.") with
    ``logging.exception``, on the root logger: an ERROR and two chained tracebacks in the
    daemon's log, beside the run's one line that says it (a JVM killed). Such a record
    goes to the ``py4j`` logger at DEBUG instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if f"{os.sep}py4j{os.sep}" not in record.pathname:
            return True
        logging.getLogger("py4j").debug(record.getMessage(), exc_info=record.exc_info)
        return False


logging.getLogger().addFilter(_Py4JOnRoot())

#: Spark's session time zone (``spark.sql.session.timeZone``) unless the model's
#: ``spark.conf`` sets one. Spark reads naive times (CSV text without an offset, Parquet
#: timestamps without a zone) in it, and its default is the host's zone: on a host in
#: New York the spark source shifted every naive time by five hours, where the files
#: source reads them as UTC.
TIME_ZONE = "UTC"

#: The executors' assignment kernel: numpy's. The compiled one would be JIT-compiled
#: again in every Python worker Spark starts (seconds each), for no gain per partition.
KERNEL = "numpy"

F64 = NDArray[np.floating[Any]]  # float64 in practice; numpy's stubs lose the width
I64 = NDArray[Any]  # int64 counts
Blocks = RDD  # an RDD whose partitions each hold numpy blocks of rows (n_i, d)


# Spark allows one session per process: the first engine built configures it, and the
# spark source (which has no settings of its own) reads through the same one.
_FIRST: list[SparkSettings] = []


def session(
    settings: SparkSettings | None = None, app_name: str = "kmeans-monitor"
) -> SparkSession:
    """The process's Spark session, started with a model's master and properties.

    Without settings: those of the first engine built, else Spark's defaults.
    EngineError in one line when it does not start (``error_line``; for a JVM that
    exited, what it said: ``_jvm_reason``).
    """
    if settings is None:
        settings = _FIRST[0] if _FIRST else SparkSettings()
    _drop_exited_jvm()
    if settings.master.startswith("local") and "spark.pyspark.python" not in dict(settings.conf):
        # Local workers are processes of this machine: this interpreter is the one with
        # kmeans-monitor installed (a venv), where pyspark's default, `python3` on PATH,
        # may not have it. pyspark reads the variable when the context starts; a set one
        # stands, and a cluster's executors take the user's (docs/scaling.md).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # py4j's INFO line for every connection it closes says nothing a user acts on.
    logging.getLogger("py4j").setLevel(max(logging.WARNING, logging.getLogger("py4j").level))
    options = _options(settings, app_name)
    builder = SparkSession.builder.config(map={**options})
    from pyspark import SparkContext

    starting = SparkContext._active_spark_context is None
    if starting:
        _check_master_answers(settings.master)
        if SparkContext._gateway is None:
            _launch_jvm(options, settings.master)
    output = _output_of(SparkContext._gateway) if starting else None
    if output is not None:
        output.hold()  # a context that fails to start logs Java's stack trace
    try:
        spark = builder.getOrCreate()
    except _spark_errors() as exc:
        if output is not None:
            output.drop(wait=False)
        _stop_failed_context()
        raise _not_started(settings.master, error_line(exc)) from exc
    if output is not None:
        output.release()
    if starting:
        _STARTED[:] = [spark.sparkContext]
        _quiet_accumulator_server(spark.sparkContext)
        _quiet_task_failures(spark.sparkContext, options["spark.log.level"])
    return spark


def _not_started(master: str, why: str) -> EngineError:
    return EngineError(f"the Spark session on master {master!r} did not start: {why}")


def _options(settings: SparkSettings, app_name: str) -> dict[str, str]:
    """The session's properties: the master, the application's name, the daemon's
    defaults and the model's ``spark.conf`` (whose values win)."""
    options = {"spark.master": settings.master, "spark.app.name": app_name}
    # Spark's log goes to stderr at ERROR: its WARN lines carry Java stack traces (a
    # missing path, a master that does not answer) and paths as given, out of reach of
    # the daemon's masking. Applied as the context starts; the file's value wins.
    options["spark.log.level"] = LOG_LEVEL
    # Stage progress bars (carriage returns on stderr) between the runs' lines said
    # nothing a user acts on.
    options["spark.ui.showConsoleProgress"] = "false"
    # Naive times are UTC, as in the files source, whatever the host's zone. A session
    # that is already running takes it too (getOrCreate applies a builder's SQL settings).
    options["spark.sql.session.timeZone"] = TIME_ZONE
    options.update(settings.conf)
    return options


#: Lines of the JVM's output held while a session starts: its start-up lines and a
#: Java stack trace fit many times over.
HELD_LINES = 500

#: Seconds to wait for the rest of the output of a JVM that exited as it started.
OUTPUT_WAIT = 5.0


class _JvmOutput:
    """The stdout and stderr of the JVM the daemon launched, read by a thread of this
    process and passed on to its stderr, except while a session starts: then they are
    held, passed on once it has started, else given to ``_jvm_reason`` and logged at
    DEBUG (a Java stack trace is no line for a user, and the reason is in the run's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: collections.deque[bytes] | None = None
        read, self.fd = os.pipe()  # the JVM writes to fd; closed here once it runs
        self._reader = threading.Thread(
            target=self._pass_on, args=(read,), name="spark-jvm-output", daemon=True
        )
        self._reader.start()

    def _pass_on(self, read: int) -> None:
        with open(read, "rb") as lines, open(2, "wb", closefd=False) as stderr:
            for line in lines:
                with self._lock:
                    if self._held is not None:
                        self._held.append(line)
                    else:
                        stderr.write(line)
                        stderr.flush()

    def hold(self) -> None:
        """Hold what comes next (already held: keep holding)."""
        with self._lock:
            if self._held is None:
                self._held = collections.deque(maxlen=HELD_LINES)

    def release(self) -> None:
        """Pass on what was held, and what comes next."""
        with self._lock:
            held, self._held = self._held or (), None
            with open(2, "wb", closefd=False) as stderr:
                stderr.writelines(held)

    def drop(self, *, wait: bool) -> str:
        """What was held (all the JVM said, when ``wait``: it has exited), logged at
        DEBUG; what comes next is passed on."""
        if wait:
            self._reader.join(OUTPUT_WAIT)
        with self._lock:
            held, self._held = self._held or (), None
        said = b"".join(held).decode(errors="replace")
        logging.getLogger(__name__).debug("Spark's JVM said as the session failed:\n%s", said)
        return said


#: The gateway of the JVM the daemon launched (``_launch_jvm``) and its output.
_OUTPUT: list[tuple[Any, _JvmOutput]] = []


def _output_of(gateway: Any) -> _JvmOutput | None:
    """The output of the JVM behind ``gateway``, when the daemon launched it."""
    return next((output for known, output in _OUTPUT if known is gateway), None)


def _launch_jvm(options: Mapping[str, str], master: str) -> None:
    """Launch the JVM as pyspark's context would, its output read by a ``_JvmOutput``
    (held until the session has started). pyspark leaves it on this process's stdout
    and stderr: a JVM that exited said why only there (bad memory settings, no Java),
    and its lines could land in ``evaluate --json``'s stdout. Nothing to launch for a
    gateway pyspark is given (``PYSPARK_GATEWAY_PORT``)."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if "PYSPARK_GATEWAY_PORT" in os.environ:
        return
    output = _JvmOutput()
    output.hold()
    try:
        try:
            gateway = launch_gateway(
                SparkConf().setAll(list(options.items())),
                popen_kwargs={"stdout": output.fd, "stderr": output.fd},
            )
        finally:
            os.close(output.fd)  # the JVM has its own: the output ends when it exits
    except _spark_errors() as exc:
        exited = _jvm_exited(exc)
        reason = _jvm_reason(output.drop(wait=exited)) if exited else None
        why = f"spark-submit exited: {brief_text(reason)}" if reason else error_line(exc)
        raise _not_started(master, why) from exc
    with SparkContext._lock:
        SparkContext._gateway = gateway
        SparkContext._jvm = gateway.jvm
    _OUTPUT[:] = [(gateway, output)]


def _jvm_exited(exc: BaseException) -> bool:
    """Whether ``exc`` is pyspark's "Java gateway process exited before sending its port
    number": spark-submit ended before its JVM ran."""
    condition = getattr(exc, "getCondition", None)
    return callable(condition) and condition() == "JAVA_GATEWAY_EXITED"


#: Lines of a JVM's output that do not say why it exited: JVM warnings, Spark's
#: start-up and log lines below ERROR, and stack frames.
_JVM_NOISE = re.compile(
    r"WARNING: |Using Spark's default log4j profile|at |\.\.\. \d+ more"
    r"|\d\d/\d\d/\d\d \d\d:\d\d:\d\d (TRACE|DEBUG|INFO|WARN) "
)


def _jvm_reason(said: str) -> str | None:
    """Why spark-submit exited, from what it said (None when it said nothing):

    - an exception of its main thread (a property Spark refuses: "Executor memory must
      be a positive number");
    - the JVM's "Error occurred during initialization of VM" and its next line ("Too small
      maximum heap");
    - else its first line, without the place in Spark's shell script ("JAVA_HOME is not
      set", "/nonexistent/bin/java: No such file or directory").
    """
    lines = [s for s in (line.strip() for line in said.splitlines()) if s]
    lines = [line for line in lines if not _JVM_NOISE.match(line)]
    for line in lines:
        if line.startswith("Exception in thread "):
            return line.split('" ', 1)[-1]
    if not lines:
        return None
    first = re.sub(r"^\S+: line \d+: ", "", lines[0])
    if first == "Error occurred during initialization of VM" and len(lines) > 1:
        return f"{first}: {lines[1]}"
    return first


def _quiet_accumulator_server(sc: Any) -> None:
    """pyspark's accumulator server (a thread of this process) prints a traceback on
    stderr when its JVM's connection ends without a word (a JVM killed): the run's
    failure says it in one line, the traceback goes to the log at DEBUG."""
    server = getattr(sc, "_accumulatorServer", None)
    if server is not None:
        server.handle_error = functools.partial(_accumulator_error, log=logging.getLogger(__name__))


def _accumulator_error(request: Any, address: Any, *, log: logging.Logger) -> None:
    log.debug("Spark's accumulator connection from %s ended", address, exc_info=True)


#: The loggers of Spark's driver that say a task failed, at ERROR: its local executor
#: (the task's exception and Java's stack trace, 58 lines for a file of another column
#: type) and its scheduler ("Task 0 in stage 1.0 failed 1 times; aborting job"). The
#: job's failure says the same, and it is the run's line.
TASK_FAILURE_LOGGERS = (
    "org.apache.spark.executor.Executor",
    "org.apache.spark.scheduler.TaskSetManager",
)


def _quiet_task_failures(sc: Any, level: str) -> None:
    """Turn off TASK_FAILURE_LOGGERS, unless ``spark.conf`` set Spark's log to another
    level than ERROR (asking for more of it)."""
    if level.upper() != LOG_LEVEL:
        return
    log4j = sc._jvm.org.apache.logging.log4j
    for name in TASK_FAILURE_LOGGERS:
        log4j.core.config.Configurator.setLevel(name, log4j.Level.OFF)


@dataclass
class _Deadline:
    """A run's or a read's deadline (``job_deadline``): the tag of its jobs, the context
    its thread tagged them on, and whether it has passed."""

    tag: str
    context: Any = None
    passed: bool = False


#: The deadline of the run (or the read) this thread computes, if it has one.
_RUN = threading.local()
_RUN_TAGS = itertools.count(1)


def _check_deadline() -> None:
    """Before a job: RunCancelledError once this thread's run is past its deadline, else
    its jobs tagged on the current context (a session started again during the run too)."""
    from pyspark import SparkContext

    run: _Deadline | None = getattr(_RUN, "deadline", None)
    if run is None:
        return
    if run.passed:
        raise RunCancelledError("run abandoned: its Spark job was cancelled at its deadline")
    sc = SparkContext._active_spark_context
    if sc is not None and run.context is not sc:
        sc.addJobTag(run.tag)
        run.context = sc


def _cancel_run(run: _Deadline, model: str, why: str) -> None:
    """At a deadline: the Spark jobs it covers cancelled, in one log line."""
    run.passed = True
    if run.context is None:
        return  # it started no job
    logging.getLogger(__name__).warning("model=%s %s: its Spark jobs are cancelled", model, why)
    with contextlib.suppress(*_spark_errors()):  # a context that has gone away
        run.context.cancelJobsWithTag(run.tag)


@contextlib.contextmanager
def job_deadline(seconds: float, model: str, why: str) -> Iterator[None]:
    """The Spark jobs this thread starts inside, tagged as one run's (or one read's),
    cancelled once ``seconds`` have passed, in one log line: "model=M ``why``: its Spark
    jobs are cancelled". The job fails then, and any later one at once, as
    RunCancelledError; the session is kept. ``SparkEngine.deadline`` bounds a run's
    thread with it, ``SparkSource.deadline`` the thread of a read (docs/scaling.md)."""
    run = _Deadline(f"kmeans-monitor-run-{next(_RUN_TAGS)}")
    timer = threading.Timer(seconds, _cancel_run, (run, model, why))
    timer.daemon = True
    outer: _Deadline | None = getattr(_RUN, "deadline", None)
    _RUN.deadline = run
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        _RUN.deadline = outer
        if run.context is not None:
            with contextlib.suppress(*_spark_errors()):
                run.context.removeJobTag(run.tag)


#: The context ``session`` started, given up by any engine whose job Spark failed (the
#: engines of a daemon share it, whichever started it); one a notebook or a test started
#: is theirs.
_STARTED: list[Any] = []


#: Seconds to wait for a standalone master's port to accept a connection.
MASTER_CONNECT_TIMEOUT = 10.0


def _check_master_answers(master: str) -> None:
    """An EngineError at once when no master of a ``spark://`` URL accepts a connection.

    Spark itself gives up on such a master only after three registrations 20 s apart
    (constants of its ``StandaloneAppClient``), holding the run's worker all that time and
    ending on "Cannot call methods on a stopped SparkContext". A port that accepts is left
    to Spark: whether a master answers there is Spark's to find out.
    """
    scheme, _, rest = master.partition("://")
    if scheme != "spark":
        return  # local runs in this process; yarn and k8s find their masters themselves
    refused = []
    for address in rest.split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection(
                (host.strip("[]"), int(port)), timeout=MASTER_CONNECT_TIMEOUT
            ):
                return
        except OSError as exc:
            refused.append(f"{address}: {exc.strerror or exc or type(exc).__name__}")
    raise EngineError(
        f"the Spark master {master!r} does not answer (no connection to {'; '.join(refused)})"
    )


def _stop_failed_context() -> None:
    """Forget a context that failed as the session started, so that the next run starts
    Spark again: a standalone master that never answered leaves a stopped context that
    pyspark would hand out, failing every later run at once."""
    from pyspark import SparkContext

    failed = SparkContext._active_spark_context
    if failed is not None:
        with contextlib.suppress(Exception):
            failed.stop()
    _drop_exited_jvm()


def _jvm_exit() -> str | None:
    """How the JVM pyspark launched for this process ended, or None while it runs (and
    for a gateway pyspark did not launch: it has no process here)."""
    from pyspark import SparkContext

    proc: Any = getattr(SparkContext._gateway, "proc", None)
    code = None if proc is None else proc.poll()
    if code is None:
        return None
    how = f"exit status {code}"
    if code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    return f"Spark's JVM (pid {proc.pid}) exited ({how})"


#: Seconds a local JVM that refused a call has to exit: one killed closes its sockets
#: first, and it took a second and more to exit on a loaded machine.
JVM_EXIT_WAIT = 10.0


def _lost_jvm(exc: BaseException) -> str | None:
    """Why the local JVM is lost, when it has exited or ``exc`` (its connection refused
    or cut) says so; one that refuses and still runs after JVM_EXIT_WAIT is killed: no
    call reaches it again. None for another failure, and for a gateway pyspark did not
    launch."""
    from py4j.protocol import Py4JNetworkError
    from pyspark import SparkContext

    proc: Any = getattr(SparkContext._gateway, "proc", None)
    if proc is not None and isinstance(exc, ConnectionError | Py4JNetworkError):
        try:
            proc.wait(JVM_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return f"Spark's JVM (pid {proc.pid}) does not answer ({error_line(exc)}): stopped"
    return _jvm_exit()


def _drop_exited_jvm() -> None:
    """Forget the context, session and gateway of a JVM that has exited (killed, out of
    memory), so that the next session launches a new one: pyspark keeps its gateway in
    class attributes and would hand out the dead one, every call refused, for ever."""
    from pyspark import SparkContext

    if _jvm_exit() is None:
        return
    dead = SparkContext._active_spark_context
    if dead is not None:
        dead._jsc = None  # nothing answers: stop() would fail before forgetting it
        with contextlib.suppress(Exception):
            dead.stop()  # its accumulator server
    gateway: Any = SparkContext._gateway
    with contextlib.suppress(Exception):
        gateway.close()  # py4j's sockets to it
    with SparkContext._lock:
        SparkContext._active_spark_context = None
        SparkContext._gateway = None
        SparkContext._jvm = None
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None
    _OUTPUT.clear()  # its reader ends with the output


def blocks_of_frame(frame: DataFrame, features: tuple[str, ...]) -> Blocks:
    """The feature columns of a DataFrame as one float64 block per partition."""
    return frame.select(*features).rdd.mapPartitions(_rows_to_block)


def _rows_to_block(rows: Iterable[Any]) -> Iterator[F64]:
    block = np.asarray([tuple(r) for r in rows], dtype=np.float64)
    if block.shape[0]:
        yield block


def _block(parts: Iterable[NDArray[Any]]) -> NDArray[Any] | None:
    """A partition's rows as one array (None when it holds none)."""
    arrays = [p for p in parts if p.shape[0]]
    if not arrays:
        return None
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _sum(rdd: RDD, name: str) -> Any:
    """The sum of the partitions' records; a window with no row is an error."""
    found = rdd.collect()  # one small record per non-empty partition
    if not found:
        raise ValueError(f"the {name} pass found no rows")
    return functools.reduce(operator.add, found)


def _cluster_sums(X: NDArray[Any], labels: NDArray[Any], k: int) -> F64:
    """Per-cluster sums of the rows, float64 (k, d): a bincount per feature.

    ``np.add.at`` would do it in one call but is tens of times slower on many rows.
    """
    if X.shape[1] == 0:
        return np.zeros((k, 0))
    return np.column_stack(
        [np.bincount(labels, weights=X[:, j], minlength=k) for j in range(X.shape[1])]
    ).astype(np.float64)


# ---------------------------------------------------------------------------- rows


def error_line(exc: BaseException) -> str:
    """What a Spark error says went wrong, in one bounded line (``checks.brief_text``).

    pyspark's own errors (``AnalysisException``, ``IllegalArgumentException``, ...) say it
    in their first line. An error pyspark does not convert, a ``Py4JJavaError``, reads
    "An error occurred while calling o28.load." then ": java.lang.Runtime...: ..." and
    Java's stack trace: the second line says it, unless it is a wrapper whose cause is
    one of Spark's error classes. A file Spark failed to read is named before why.
    """
    try:
        text = str(exc)
    except Exception:  # a Py4JJavaError asks the JVM for its text, which may be gone
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    first = lines[0]
    if first.startswith("An error occurred while calling") and len(lines) > 1:
        first = lines[1].removeprefix(":").strip()
    if _ERROR_CLASS.fullmatch(first) is None:
        # A wrapper ("SparkException: Exception thrown in awaitResult:", a collect through
        # Arrow) says nothing: the first cause of one of Spark's error classes does.
        causes = (line[len("Caused by: ") :] for line in lines if line.startswith("Caused by: "))
        first = next((c for c in causes if _ERROR_CLASS.fullmatch(c)), first)
    words = _ERROR_CLASS.fullmatch(first)
    if words is not None and (read := _FAILED_READ.fullmatch(words["words"])):
        # "Encountered error while reading file F. Data type mismatches when reading
        # Parquet column [b]. ...": shortened whole, the middle left out was the column
        # and the types. The file, then why, each shortened on its own.
        return f"{brief_text(read['file'])}: {brief_text(read['why'])}"
    if len(first) > BRIEF_MOST and words is not None:
        # Shortened, the middle left out is what names the subject ("The value 'x' in
        # the config "spark.ui.port" is invalid."): the error class and the SQL state
        # around Spark's words are left out instead.
        first = words["words"]
    return brief_text(first)


#: A message of one of Spark's error classes: "[ERROR_CLASS] words. SQLSTATE: 22022",
#: after the Java exception's class in an error pyspark did not convert.
_ERROR_CLASS = re.compile(
    r"(?:[\w.$]+: )?\[[A-Z0-9_.]+\] (?P<words>.*?)(?: SQLSTATE: \w+)?", re.DOTALL
)

#: Spark's words for a file it failed to read (its error class ``FAILED_READ_FILE``).
_FAILED_READ = re.compile(r"Encountered error while reading file (?P<file>\S+)\. (?P<why>.+)")


def _spark_errors() -> tuple[type[Exception], ...]:
    """Spark's failures: pyspark's and py4j's, and the refused connection of a call to
    a JVM that has gone (py4j lets the socket's error through)."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JError, ConnectionError)


@contextlib.contextmanager
def _read_errors(where: str) -> Iterator[None]:
    """Spark's failures while it reads a window's rows, as a SourceError in one line;
    its local JVM lost (killed, out of memory) an EngineError, as in a job of the engine:
    the refused connection is no fault of the data."""
    _check_deadline()
    try:
        yield
    except _spark_errors() as exc:
        _check_deadline()  # a job its run's deadline cancelled
        lost = _lost_jvm(exc)
        if lost is not None:
            raise EngineError(f"{where}: the Spark job of the read failed: {lost}") from exc
        if "UNABLE_TO_INFER_SCHEMA" in str(exc):
            # A directory with no file yet (helper-79: a deployment before its data was
            # told to specify a schema): a window of no rows, which the reference period
            # explains (its data begin later, or the path reads nothing).
            raise NoDataError(
                f"{where}: holds no file Spark can read yet (UNABLE_TO_INFER_SCHEMA)"
            ) from exc
        raise SourceError(f"{where}: Spark cannot read it: {error_line(exc)}") from exc


class SparkRows:
    """A window's rows kept in Spark's partitions (``monitor.records.RemoteRows``).

    Row blocks are built on the executors, one per partition; only the results of the
    functions given to ``summarise`` and the bounded ``sample`` come to the driver.
    """

    engine = "spark"

    def __init__(
        self,
        blocks: Blocks,
        n_features: int,
        *,
        frame: DataFrame | None = None,
        where: str = "",
        if_empty: Callable[[], None] | None = None,
    ) -> None:
        self.blocks = blocks
        self._d = n_features
        self._frame = frame  # the rows as Spark read them, for a faster collect
        self._where = where or "the window's rows"
        # Why no row came back, when Spark can tell (its error): run once, by the first
        # pass that finds the rows empty.
        self._if_empty = if_empty

    def _found_none(self) -> None:
        check, self._if_empty = self._if_empty, None
        if check is not None:
            check()

    @property
    def n_features(self) -> int:
        """Columns of every row."""
        return self._d

    def map_blocks(self, fn: Callable[[F64], F64]) -> SparkRows:
        """``fn`` applied to each block on the executors, lazily."""
        return SparkRows(self.blocks.map(fn), self._d, where=self._where)

    def summarise(self, fn: Callable[[F64], Any]) -> list[Any]:
        """``fn`` of each non-empty block; one result per block comes back."""
        with _read_errors(self._where):
            found = self.blocks.filter(_not_empty).map(fn).collect()
            if not found:
                self._found_none()
        return found

    def sample(self, size: int, seed: int) -> F64:
        """At most ``size`` rows, uniform without replacement, in the rows' order."""
        with _read_errors(self._where):
            rows = _sample(self.blocks, size, seed)
        return rows.reshape(-1, self._d)

    def concat(self, others: Sequence[RemoteRows]) -> SparkRows:
        """These rows then ``others``' (Spark's union: no data moves)."""
        rdds = [self.blocks] + [_spark_rows(o).blocks for o in others]
        return SparkRows(self.blocks.context.union(rdds), self._d, where=self._where)

    def collect(self) -> F64:
        """Every row, to this process (through Arrow when Spark read them)."""
        with _read_errors(self._where):
            if self._frame is not None:
                X = _to_numpy(self._frame, self._d)
            else:
                found = [b for b in self.blocks.collect() if b.shape[0]]
                X = np.concatenate(found) if found else np.empty((0, self._d))
            if not X.shape[0]:
                self._found_none()
        return X


def _not_empty(block: NDArray[Any]) -> bool:
    return bool(block.shape[0])


def _spark_rows(rows: RemoteRows) -> SparkRows:
    if not isinstance(rows, SparkRows):
        raise TypeError(f"the spark engine cannot read rows of the {rows.engine!r} engine")
    return rows


def rows_of(sc: Any, X: NDArray[Any], partitions: int) -> SparkRows:
    """Rows held here, spread over ``partitions`` blocks (tests, benchmarks)."""
    n = max(1, min(partitions, X.shape[0]))
    return SparkRows(sc.parallelize(np.array_split(X, n), n), X.shape[1])


# ---------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class _ScoreSums:
    """What the scoring pass adds up over a window's rows (each field sums over pieces)."""

    counts: I64  # (k,) rows per nearest centre
    sums: F64  # (k, d) sums of the rows per cluster
    sq_total: float  # inertia
    dist: F64  # (k,) sums of the distances to the own centre
    silhouette: F64  # (k,) sums of the simplified silhouette values
    outliers: I64  # (k,)
    bins: tuple[I64, ...]  # per feature, rows per reference bin

    def __add__(self, o: _ScoreSums) -> _ScoreSums:
        return _ScoreSums(
            self.counts + o.counts,
            self.sums + o.sums,
            self.sq_total + o.sq_total,
            self.dist + o.dist,
            self.silhouette + o.silhouette,
            self.outliers + o.outliers,
            tuple(a + b for a, b in zip(self.bins, o.bins, strict=True)),
        )


def _score_partition(
    parts: Iterable[NDArray[Any]],
    centers: F64,
    limits: OutlierThresholds,
    edges: tuple[F64, ...],
    wm: float,
) -> Iterator[_ScoreSums]:
    X = _block(parts)
    if X is None:
        return
    k = centers.shape[0]
    labels, sq, sq2 = assign_two_nearest(X, centers, working_memory_mib=wm, kernel=KERNEL)
    sums = _cluster_sums(X, labels, k)
    a = np.sqrt(sq.astype(np.float64))
    # The simplified silhouette needs a second centre (silhouette_simplified's rule).
    s = silhouette_from_ab(a, np.sqrt(sq2.astype(np.float64))) if k > 1 else np.zeros_like(a)
    yield _ScoreSums(
        counts=np.bincount(labels, minlength=k).astype(np.int64),
        sums=sums,
        sq_total=float(sq.sum(dtype=np.float64)),
        dist=np.bincount(labels, weights=a, minlength=k).astype(np.float64),
        silhouette=np.bincount(labels, weights=s, minlength=k).astype(np.float64),
        outliers=outliers.outlier_counts(limits, sq, labels),
        bins=tuple(drift.bin_counts(edges, X, working_memory_mib=wm)),
    )


def _count_partition(index: int, parts: Iterable[NDArray[Any]]) -> Iterator[tuple[int, int]]:
    X = _block(parts)
    if X is not None:
        yield index, X.shape[0]


def _take_partition(
    index: int, parts: Iterable[NDArray[Any]], take: Mapping[int, int], seed: int
) -> Iterator[NDArray[Any]]:
    """``take[index]`` of the partition's rows, uniformly without replacement, in order."""
    m = take.get(index, 0)
    X = _block(parts) if m else None
    if X is None:
        return
    rng = np.random.default_rng([seed, index])
    yield X[np.sort(rng.choice(X.shape[0], m, replace=False))]


def _sample(blocks: Blocks, size: int, seed: int) -> NDArray[Any]:
    """A uniform sample of at most ``size`` rows without replacement, in the rows' order:
    every row, in order, when there are no more (as a local path that takes them all).

    Two passes: the partitions' row counts, then from each the number of rows that a
    multivariate hypergeometric draw on the driver gives it, so that exactly ``size``
    rows come back whatever the number of partitions.
    """
    counts = blocks.mapPartitionsWithIndex(_count_partition).collect()
    if not counts:
        return np.empty((0, 0))
    n = np.asarray([c for _, c in counts], dtype=np.int64)
    rng = np.random.default_rng(seed)
    shares = n if n.sum() <= size else rng.multivariate_hypergeometric(n, size)
    take = {i: int(m) for (i, _), m in zip(counts, shares, strict=True)}
    found = blocks.mapPartitionsWithIndex(
        functools.partial(_take_partition, take=take, seed=seed)
    ).collect()
    return np.concatenate(found) if found else np.empty((0, 0))


def score_blocks(
    blocks: Blocks,
    snapshot: Snapshot,
    *,
    seed: int,
    silhouette_sample: int,
    working_memory_mib: float,
    thresholds: Mapping[str, float] | None = None,
    compare: tuple[F64, ReferenceBins] | None = None,
) -> WindowView:
    """Every SLI of ``snapshot`` on scaled rows spread over partitions.

    The same values as ``pipeline.score`` on the same rows (to float summation order),
    except the exact silhouette: on more than ``silhouette_sample`` rows its sample is
    drawn here, uniformly, but not the local path's sample.
    """
    shares, bins = compare if compare is not None else (snapshot.reference_shares, snapshot.bins)
    thresholds = snapshot.thresholds if thresholds is None else thresholds
    C = np.asarray(snapshot.centers, dtype=np.float64)
    t = _sum(
        blocks.mapPartitions(
            functools.partial(
                _score_partition,
                centers=C,
                limits=snapshot.outliers,
                edges=bins.edges,
                wm=working_memory_mib,
            )
        ),
        "scoring",
    )
    sample = _sample(blocks, silhouette_sample, seed)
    sample_labels, _ = assign_labels(sample, C, working_memory_mib=working_memory_mib)
    sil = quality.silhouette_sampled(
        sample,
        sample_labels,
        sample_size=silhouette_sample,
        random_state=seed,
        n_clusters=snapshot.k,
        working_memory_mib=working_memory_mib,
    )
    return _view(snapshot, t, sil, shares, bins, thresholds)


def _view(
    snapshot: Snapshot,
    t: _ScoreSums,
    silhouette: Silhouette,
    shares: F64,
    bins: ReferenceBins,
    thresholds: Mapping[str, float],
) -> WindowView:
    C = np.asarray(snapshot.centers, dtype=np.float64)
    sizes = quality.sizes_from_counts(t.counts)
    psi = drift.psi_from_counts(bins, t.bins)
    warn = thresholds.get(S.THRESHOLD_FEATURE_PSI_WARNING, np.inf)
    values = {
        S.SILHOUETTE: silhouette.score,
        S.SIMPLIFIED_SILHOUETTE: quality.simplified_from_sums(t.counts, t.silhouette).score,
        S.INERTIA: t.sq_total,
        S.DAVIES_BOULDIN: quality.davies_bouldin_from_sums(t.counts, t.dist, C).value,
        S.CALINSKI_HARABASZ: quality.calinski_harabasz_from_sums(
            t.counts, t.sums, t.sq_total, C
        ).value,
        S.CLUSTER_SIZE_CV: sizes.cv,
        S.EMPTY_CLUSTERS: float(sizes.n_empty),
        S.OUTLIER_RATIO: outliers.outlier_rate_from_counts(t.outliers, t.counts).ratio,
        S.FEATURE_PSI_MAX: psi.max,
        S.FEATURES_DRIFTING: float((psi.per_feature > warn).sum()),
        S.LABEL_PSI: drift.label_drift_from_counts(shares, t.counts).psi,
    }
    return WindowView(
        labels=None,
        sq_distances=None,
        slis={key: float(v) for key, v in values.items()},
        feature_psi={f: float(v) for f, v in zip(snapshot.features, psi.per_feature, strict=True)},
        cluster_sizes=tuple(int(c) for c in t.counts),
        cluster_shares=tuple(float(s) for s in sizes.shares),
        undefined=() if silhouette.defined else (S.SILHOUETTE,),
    )


# ---------------------------------------------------------------------------- Lloyd


@dataclass(frozen=True)
class _Step:
    """One E-step's sums over some rows, and their rows farthest from their centres."""

    counts: I64  # (k,)
    sums: F64  # (k, d)
    inertia: float
    far_sq: F64  # (f,) at most k per piece: enough to refill every empty cluster
    far_rows: F64  # (f, d)
    far_labels: I64  # (f,)

    def __add__(self, o: _Step) -> _Step:
        return _Step(
            self.counts + o.counts,
            self.sums + o.sums,
            self.inertia + o.inertia,
            np.concatenate([self.far_sq, o.far_sq]),
            np.concatenate([self.far_rows, o.far_rows]),
            np.concatenate([self.far_labels, o.far_labels]),
        )


def _step_partition(parts: Iterable[NDArray[Any]], centers: F64, wm: float) -> Iterator[_Step]:
    X = _block(parts)
    if X is None:
        return
    k = centers.shape[0]
    labels, sq = assign_labels(X, centers, working_memory_mib=wm, kernel=KERNEL)
    sq = sq.astype(np.float64)
    sums = _cluster_sums(X, labels, k)
    far = np.argsort(-sq, kind="stable")[:k]
    yield _Step(
        np.bincount(labels, minlength=k).astype(np.int64),
        sums,
        float(sq.sum()),
        sq[far],
        X[far].astype(np.float64),
        labels[far],
    )


@dataclass(frozen=True)
class _Moments:
    """Rows, mean and sums of squared deviations per feature (Chan et al.'s merge)."""

    n: int
    mean: F64
    m2: F64

    def __add__(self, o: _Moments) -> _Moments:
        n = self.n + o.n
        delta = o.mean - self.mean
        mean = self.mean + delta * (o.n / n)
        return _Moments(n, mean, self.m2 + o.m2 + delta**2 * (self.n * o.n / n))


def _moments_partition(parts: Iterable[NDArray[Any]]) -> Iterator[_Moments]:
    X = _block(parts)
    if X is None:
        return
    X = X.astype(np.float64, copy=False)
    mean = X.mean(axis=0)
    yield _Moments(X.shape[0], mean, ((X - mean) ** 2).sum(axis=0))


def _relocate(step: _Step, centers: F64) -> tuple[I64, F64]:
    """Counts and sums after moving each empty cluster onto a row farthest from its centre.

    As the single-machine fit does: farthest first, never a row at distance 0; the
    rows' sums move from their clusters to the empty ones.
    """
    counts, sums = step.counts.copy(), step.sums.copy()
    empty = np.flatnonzero(counts == 0)
    order = np.argsort(-step.far_sq, kind="stable")[: empty.size]
    for cluster, i in zip(empty, order, strict=False):
        if step.far_sq[i] <= 0.0:
            break
        old = step.far_labels[i]
        sums[old] -= step.far_rows[i]
        counts[old] -= 1
        sums[cluster] = step.far_rows[i]
        counts[cluster] = 1
    return counts, sums


def _update(counts: I64, sums: F64, centers: F64, cosine: bool) -> F64:
    new = centers.copy()
    full = counts > 0
    if cosine:  # spherical k-means: the centre is the normalised sum
        norms = np.linalg.norm(sums, axis=1)
        ok = full & (norms > 0)
        new[ok] = sums[ok] / norms[ok, None]
    else:
        new[full] = sums[full] / counts[full, None]
    return new


def lloyd(
    blocks: Blocks,
    init: F64,
    *,
    max_iter: int,
    tol: float,
    cosine: bool = False,
    working_memory_mib: float = 64.0,
    on_iteration: Callable[[int, float], None] | None = None,
) -> tuple[F64, float, int]:
    """Lloyd iterations over partitions from ``init``: (centres, inertia before the last
    update, iterations).

    Each iteration sends k x d centres out and brings k x d sums, k counts and at most
    k far rows per partition back. Stops as ``fit_kmeans`` does: when the total squared
    centre shift is at most ``tol`` times the mean feature variance (unchanged labels
    give a shift of 0).
    """
    moments = _sum(blocks.mapPartitions(_moments_partition), "moments")
    tol_abs = float(np.mean(moments.m2 / moments.n)) * tol
    centers: F64 = np.array(init, dtype=np.float64)
    inertia, n_iter = 0.0, 0
    for n_iter in range(1, max_iter + 1):
        step = _sum(
            blocks.mapPartitions(
                functools.partial(_step_partition, centers=centers, wm=working_memory_mib)
            ),
            "Lloyd",
        )
        inertia = step.inertia
        new = _update(*_relocate(step, centers), centers, cosine)
        shift = float(np.sum((new - centers) ** 2))
        centers = new
        if on_iteration is not None:
            on_iteration(n_iter, inertia)
        if shift <= tol_abs:
            break
    return centers, inertia, n_iter


#: Rows the k-means++ seeding of a reference runs on: a uniform sample of the period.
SEED_ROWS = 100_000


def train_centers(
    blocks: Blocks,
    k: int,
    *,
    seed: int,
    max_iter: int,
    tol: float,
    cosine: bool = False,
    sample_size: int = SEED_ROWS,
    working_memory_mib: float = 64.0,
) -> tuple[F64, float, int]:
    """Reference centres on rows spread over partitions: (centres, inertia, iterations).

    Greedy k-means++ on a uniform sample of at most ``sample_size`` rows (the only rows
    that come to the driver), then Lloyd over every row from those seeds.
    """
    sample = _sample(blocks, sample_size, seed)
    if sample.shape[0] < k:
        raise ValueError(f"{sample.shape[0]} rows cannot seed {k} clusters")
    if cosine:
        norms = np.linalg.norm(sample, axis=1, keepdims=True)
        sample = sample / np.where(norms > 0, norms, 1.0)
    init, _ = kmeans_plusplus(sample, k, random_state=seed)
    return lloyd(
        blocks,
        np.asarray(init, dtype=np.float64),
        max_iter=max_iter,
        tol=tol,
        cosine=cosine,
        working_memory_mib=working_memory_mib,
    )


def _table_partition(
    parts: Iterable[NDArray[Any]], live: F64, candidate: F64, wm: float
) -> Iterator[I64]:
    X = _block(parts)
    if X is None:
        return
    k = live.shape[0]
    a, _ = assign_labels(X, live, working_memory_mib=wm, kernel=KERNEL)
    b, _ = assign_labels(X, candidate, working_memory_mib=wm, kernel=KERNEL)
    yield np.bincount(a * k + b, minlength=k * k).reshape(k, k).astype(np.int64)


# ---------------------------------------------------------------------------- engine


class SparkEngine:
    """``engine: spark``: the measure step's passes as Spark jobs over the window's rows."""

    name = "spark"

    def __init__(
        self,
        settings: SparkSettings,
        *,
        app_name: str = "kmeans-monitor",
        spark: SparkSession | None = None,
    ) -> None:
        self._settings = settings
        if not _FIRST:
            _FIRST.append(settings)
        self._app_name = app_name
        self._spark = spark
        self._owned = False  # a session passed in is closed by its owner
        self._cached: tuple[NDArray[Any] | CountedRows, Blocks] | None = None

    @property
    def spark(self) -> SparkSession:
        """The session, started on first use (not when the daemon is wired), and again
        once it has been given up (by any engine: they share it) or its JVM has exited."""
        from pyspark import SparkContext

        _drop_exited_jvm()
        if self._spark is not None and self._spark.sparkContext is not (
            SparkContext._active_spark_context
        ):
            self._spark = None
        if self._spark is None:
            # A session someone else started (a notebook, a test) is theirs to stop.
            self._owned = SparkSession.getActiveSession() is None
            self._spark = session(self._settings, self._app_name)
        return self._spark

    def blocks(self, Xs: NDArray[Any] | CountedRows) -> Blocks:
        """The rows' blocks: those of rows kept in Spark, or rows held by this process
        spread over the session's default parallelism.

        Cached on the executors until other rows come: a run's scoring and candidate
        read the same scaled window, which is then shipped (or read and scaled) once.
        """
        if self._cached is not None and self._cached[0] is Xs:
            return self._cached[1]
        self._release()
        if isinstance(Xs, CountedRows):
            blocks = _spark_rows(Xs.rows).blocks.cache()
        else:
            sc = self.spark.sparkContext
            n = max(1, min(sc.defaultParallelism, Xs.shape[0]))
            blocks = sc.parallelize(np.array_split(Xs, n), n).cache()
        self._cached = (Xs, blocks)
        return blocks

    def _release(self) -> None:
        if self._cached is not None:
            blocks, self._cached = self._cached[1], None
            with contextlib.suppress(*_spark_errors()):  # a context that has gone away
                blocks.unpersist()

    @contextlib.contextmanager
    def _job(self, what: str, *, last_pass: bool = False) -> Iterator[None]:
        """Spark's failures in a run's job as an EngineError in one line, the session
        this engine started given up, so that the next run starts Spark again (a master
        that went away stops the context for good). An error in a Python worker is the
        job's own code (``PythonException``): it stays what it is. ``last_pass``: the
        job is the last over its rows, whose cache is released however it ends."""
        from pyspark.errors import PythonException

        try:
            _check_deadline()
            yield
        except PythonException:
            raise
        except _spark_errors() as exc:
            self._cached = None
            _check_deadline()  # a job its run's deadline cancelled: the session is fine
            why = _lost_jvm(exc) or error_line(exc)
            if self._spark is not None and self._spark.sparkContext in _STARTED:
                self._spark = None
                _stop_failed_context()
            _drop_exited_jvm()
            raise EngineError(f"the Spark job {what} failed: {why}") from exc
        finally:
            if last_pass:
                self._release()

    def deadline(self, seconds: float, model: str) -> contextlib.AbstractContextManager[None]:
        """The Spark jobs this thread starts inside, tagged as one run's, cancelled once
        ``seconds`` have passed (``schedule.run_timeout``): the job fails then, and any
        later one at once, as RunCancelledError, which the runner reports as a local
        run past its deadline; the session is kept (``job_deadline``)."""
        why = f"the run passed its deadline of {seconds:g}s (schedule.run_timeout)"
        return job_deadline(seconds, model, why)

    def score(
        self,
        Xs: NDArray[np.floating[Any]] | CountedRows,
        snapshot: Snapshot,
        *,
        seed: int,
        silhouette_sample: int,
        working_memory_mib: float,
        thresholds: Mapping[str, float] | None = None,
        compare: tuple[NDArray[np.floating[Any]], ReferenceBins] | None = None,
    ) -> WindowView:
        """``score_blocks`` on the window's scaled rows."""
        with self._job("that scores the window"):
            return score_blocks(
                self.blocks(Xs),
                snapshot,
                seed=seed,
                silhouette_sample=silhouette_sample,
                working_memory_mib=working_memory_mib,
                thresholds=thresholds,
                compare=compare,
            )

    def candidate(
        self,
        Xs: NDArray[np.floating[Any]] | CountedRows,
        live: Snapshot,
        *,
        max_iter: int,
        tol: float,
        working_memory_mib: float,
        restarts: int = 0,
        seed: int = 0,
    ) -> CandidateFit:
        """Distributed Lloyd from the live centres (and restarts), then the live x
        candidate table."""
        # The candidate is a run's last pass over its rows.
        with self._job("that trains the candidate", last_pass=True):
            return candidate_blocks(
                self.blocks(Xs),
                live,
                max_iter=max_iter,
                tol=tol,
                working_memory_mib=working_memory_mib,
                restarts=restarts,
                seed=seed,
            )

    def fit(
        self,
        Xs: NDArray[np.floating[Any]] | CountedRows,
        init: NDArray[np.floating[Any]],
        *,
        max_iter: int,
        tol: float,
        cosine: bool,
        working_memory_mib: float,
    ) -> F64:
        """Distributed Lloyd over every scaled row from ``init`` (a fit on a sample)."""
        # Training is the last pass over a period's rows.
        with self._job("that trains the model", last_pass=True):
            centers, _, _ = lloyd(
                self.blocks(Xs),
                np.asarray(init, dtype=np.float64),
                max_iter=max_iter,
                tol=tol,
                cosine=cosine,
                working_memory_mib=working_memory_mib,
            )
            return centers

    def close(self) -> None:
        """Stop the session if this engine started it."""
        if self._spark is not None:
            self._release()
        if self._owned and self._spark is not None:
            spark, self._spark = self._spark, None
            if _jvm_exit() is None:
                spark.stop()
            _drop_exited_jvm()


def candidate_blocks(
    blocks: Blocks,
    live: Snapshot,
    *,
    max_iter: int,
    tol: float,
    working_memory_mib: float,
    restarts: int = 0,
    seed: int = 0,
) -> CandidateFit:
    """The candidate on rows spread over partitions: warm-started Lloyd (replaced by
    ``restarts`` k-means++ restarts when they do better), then its table; the warm
    start's centres are kept too."""
    C = np.asarray(live.centers, dtype=np.float64)
    cosine = live.metric == "cosine"
    wm = working_memory_mib
    warm, _, _ = lloyd(blocks, C, max_iter=max_iter, tol=tol, cosine=cosine, working_memory_mib=wm)
    centers = warm
    if restarts > 0:
        centers = _restarted(blocks, warm, live, (max_iter, tol, wm), restarts, seed)
    table = _sum(
        blocks.mapPartitions(functools.partial(_table_partition, live=C, candidate=centers, wm=wm)),
        "relabelling",
    )
    return CandidateFit(centers=centers, table=table, warm=warm)


def _restarted(
    blocks: Blocks,
    warm: F64,
    live: Snapshot,
    fitting: tuple[int, float, float],
    restarts: int,
    seed: int,
) -> F64:
    """The warm candidate, or restarts on a sample polished on every row when they beat it.

    ``pipeline.train.train_candidate``'s rule: k-means++ restarts on a uniform sample of
    RESTART_ROWS rows; their best replaces the warm start only if it costs less on every
    row, and still does after Lloyd iterations over every row.
    """
    max_iter, tol, wm = fitting
    cosine = live.metric == "cosine"
    sample = _sample(blocks, RESTART_ROWS, seed)
    if sample.shape[0] <= live.k:
        return warm
    restart = fit_kmeans(
        sample, live.k, n_init=restarts, max_iter=max_iter, tol=tol, metric=live.metric,
        random_state=seed, working_memory_mib=wm,
    )  # fmt: skip
    warm_cost = _cost(blocks, warm, wm)
    if _cost(blocks, restart.centers, wm) >= warm_cost:
        return warm
    polished, _, _ = lloyd(
        blocks, restart.centers, max_iter=max_iter, tol=tol, cosine=cosine, working_memory_mib=wm
    )
    return polished if _cost(blocks, polished, wm) < warm_cost else warm


def _cost_partition(parts: Iterable[NDArray[Any]], centers: F64, wm: float) -> Iterator[float]:
    X = _block(parts)
    if X is None:
        return
    _, sq = assign_labels(X, centers, working_memory_mib=wm, kernel=KERNEL)
    yield float(sq.sum(dtype=np.float64))


def _cost(blocks: Blocks, centers: F64, wm: float) -> float:
    """The inertia of every row on ``centers``."""
    part = functools.partial(_cost_partition, centers=np.asarray(centers, np.float64), wm=wm)
    return float(_sum(blocks.mapPartitions(part), "cost"))


# ---------------------------------------------------------------------------- reading


def read_rows(
    spark: SparkSession,
    *,
    path: str | None,
    table: str | None,
    fmt: str,
    time_column: str,
    features: tuple[str, ...],
    start: float,
    end: float,
    where: str,
    check_times: bool = False,
) -> SparkRows:
    """The features of the rows whose time is in ``[start, end)``, kept in Spark.

    The time filter and the column selection go to Spark (Parquet pushes them down to
    the files); a time column of timestamps is compared in unix seconds, a numeric one
    is taken as unix seconds. Naive times are read in the session's zone (``TIME_ZONE``,
    UTC, unless the model's ``spark.conf`` sets ``spark.sql.session.timeZone``). Nothing
    is read yet: the pipeline's first pass reads the files. SchemaError when columns are
    missing or a feature's is not numeric, SourceError when Spark cannot read, and when
    the window is empty because a numeric time column holds times outside 1970..9999 as
    unix seconds (milliseconds, say: ``_check_seconds``, run only by a pass that finds
    no row). ``check_times``: the time column is looked at now (``_check_times``), so that
    one of milliseconds, or of no time at all, fails this read, not every window's pass.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType, TimestampNTZType, TimestampType

    with _read_errors(where):
        frame = _open(spark, path=path, table=table, fmt=fmt)
        types = {f.name: f.dataType for f in frame.schema.fields}
        missing = [c for c in (*features, time_column) if c not in types]
        if missing:
            raise SchemaError(f"{where}: missing column(s) {missing}; the data has {sorted(types)}")
        # A column of text (or of booleans, dates) is no feature, as in the files source:
        # cast to double, '0.301' passed and 'low' failed in a job as source_unavailable.
        for f in features:
            if not isinstance(types[f], NumericType):
                raise SchemaError(
                    f"{where}: column {f!r} has type {types[f].simpleString()}; expected numbers."
                )
        kind = types[time_column]
        if_empty = None
        if isinstance(kind, TimestampType | TimestampNTZType):
            t = F.unix_micros(F.col(time_column).cast("timestamp")) / 1e6
        elif isinstance(kind, NumericType):
            t = F.col(time_column).cast("double")
            if_empty = functools.partial(_check_seconds, frame, time_column, kind, where)
        else:
            raise SchemaError(
                f"{where}: time column {time_column!r} holds {kind.simpleString()}; "
                "expected timestamps or unix seconds"
            )
        if check_times:
            _check_times(frame, time_column, kind, where)
        rows = frame.where((t >= start) & (t < end)).select(
            *[F.col(f).cast("double").alias(f) for f in features]
        )
        d = len(features)
        blocks = blocks_of_frame(rows, features)
        return SparkRows(blocks, d, frame=rows, where=where, if_empty=if_empty)


def _check_seconds(frame: DataFrame, column: str, kind: Any, where: str) -> None:
    """SourceError for a time of numeric ``column`` outside 1970..9999 as unix seconds:
    the first Spark finds, as the files source says it (``timestamps.out_of_range``).

    One job that stops at the first such row. Its filter compares the column as it is
    typed (integral bounds for an integral column), which Parquet pushes down to its
    row groups' statistics: on times in range only the files' footers are read. A CSV
    file is read until such a row (to its end when there is none). A NaN time is not
    looked for (Parquet's statistics leave NaN out).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegralType

    low, high = (
        (int(EARLIEST), int(LATEST)) if isinstance(kind, IntegralType) else (EARLIEST, LATEST)
    )
    c = F.col(column)
    found = frame.where((c < low) | (c >= high)).select(c).limit(1).collect()
    if found:
        _not_seconds(found[0][0], column, where)


def _not_seconds(value: Any, column: str, where: str) -> None:
    """SourceDataError: ``value`` of the time column is no unix second of 1970..9999."""
    hint = finer_unit(value)
    expected = "seconds since the epoch or a timestamp type" + (f" ({hint})" if hint else "")
    error = out_of_range(value, f"{where}, time column {column!r}", expected)
    raise SourceDataError(str(error)) from error


def _check_times(frame: DataFrame, column: str, kind: Any, where: str) -> None:
    """SourceDataError when the time column's first time (not null, not NaN) is no unix
    second (epoch milliseconds, say), or when it holds no time while the data hold rows.

    One job that stops at the first such row: on times of the right unit it reads the
    first row group's time column. A column of nulls or NaN is read to its end, once:
    without it every window of a reference period was read, filtered and found empty.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import FractionalType, NumericType

    c = F.col(column)
    valid = c.isNotNull() & ~F.isnan(c) if isinstance(kind, FractionalType) else c.isNotNull()
    found = frame.where(valid).select(c).limit(1).collect()
    if found:
        if isinstance(kind, NumericType):
            value = found[0][0]
            if not EARLIEST <= value < LATEST:
                _not_seconds(value, column, where)
        return
    if frame.select(c).limit(1).collect():  # rows, none with a time
        held = "null or NaN" if isinstance(kind, FractionalType) else "null"
        raise SourceDataError(
            f"{where}, time column {column!r}: holds no time, every value is {held}; "
            "expected seconds since the epoch or a timestamp type"
        )


def _open(spark: SparkSession, *, path: str | None, table: str | None, fmt: str) -> DataFrame:
    if table is not None:
        return spark.table(table)
    reader = spark.read.format(fmt)
    if fmt == "csv":  # a header row names the columns; numbers are read as numbers
        reader = reader.option("header", "true").option("inferSchema", "true")
    return reader.load(path)


def _to_numpy(rows: DataFrame, d: int) -> NDArray[np.float64]:
    """Collect through Arrow when Spark has it (no Python object per value)."""
    to_arrow = getattr(rows, "toArrow", None)
    if to_arrow is not None:
        table = to_arrow()
        columns = [table.column(j).to_numpy(zero_copy_only=False) for j in range(d)]
        out = np.column_stack(columns) if columns else np.empty((table.num_rows, 0))
        # Spark's nulls arrive as NaN: the pipeline's value policy judges them.
        return np.asarray(out, dtype=np.float64).reshape(table.num_rows, d)
    collected = rows.collect()
    values = [[np.nan if v is None else v for v in r] for r in collected]
    return np.asarray(values, dtype=np.float64).reshape(len(collected), d)
