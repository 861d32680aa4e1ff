"""daemon.run_isolation: process. A run's middle computes in a worker process and
gives what the same run in a thread gives; a deadline, a stop or a dead worker ends the
run with nothing stored, and the next run gets a fresh worker."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from monitor import workers
from monitor.config import ReferenceSettings, parse
from monitor.errors import ConfigError
from monitor.records import Evaluation, RunFailure, Window
from monitor.workers import RunWorkers
from tests.fakes import FAKE_SOURCES, blobs
from tests.shell.test_runner import CENTERS, FEATURES, Harness, Source, harness, settings


class BigSource(Source):
    """Windows large enough that a worker computes for a second or more."""

    def read_window(self, start: float, end: float) -> Window:
        window = super().read_window(start, end)
        if self.reads == 1:  # the reference stays small: it trains in the daemon
            return window
        X = blobs(400_000, CENTERS, seed=self.reads)
        return Window("shop", start, end, FEATURES, X, label="big window")


def isolated(timeouts: dict[str, float] | None = None) -> Harness:
    """A harness whose runs after the first go to one worker, started and ready."""
    made = harness(settings(), timeouts)
    made.runner._workers = RunWorkers(1)
    assert made.runner._workers.wait_ready(120)
    return made


@pytest.fixture
def h() -> Iterator[Harness]:
    made = isolated()
    yield made
    made.runner.close()


def test_a_run_in_a_worker_gives_what_a_run_in_a_thread_gives(h: Harness) -> None:
    here = harness(settings())
    for _ in range(3):
        got, want = h.runner.run_model("shop"), here.runner.run_model("shop")
        assert isinstance(got, Evaluation) and isinstance(want, Evaluation)
        assert got.slis == want.slis
        assert got.thresholds == want.thresholds
        assert (got.decision, got.cluster_sizes) == (want.decision, want.cluster_sizes)
        assert got.centroid_drift == want.centroid_drift
        assert {"read", "load"} <= set(got.phase_seconds)
    assert {"score", "train", "compare"} <= set(got.phase_seconds)
    [pid] = h.runner._workers.pids()
    assert pid != os.getpid()


def shared_files(pid: int | None = None) -> list[str]:
    """This process's windows in shared memory (another pid's with ``pid``)."""
    prefix = f"kmeans-monitor-rows-{os.getpid() if pid is None else pid}-"
    return [name for name in os.listdir(workers.SHARED_DIR) if name.startswith(prefix)]


def test_a_window_in_shared_memory_gives_what_a_run_in_a_thread_gives(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared: list[str] = []
    share = workers._share

    def sharing(X: np.ndarray) -> Any:
        rows = share(X)
        if rows is not None:
            shared.append(rows.path)
        return rows

    monkeypatch.setattr(workers, "SHARED_MIN_BYTES", 0)  # every window goes through it
    monkeypatch.setattr(workers, "_share", sharing)
    here = harness(settings())
    for _ in range(3):
        got, want = h.runner.run_model("shop"), here.runner.run_model("shop")
        assert isinstance(got, Evaluation) and isinstance(want, Evaluation)
        assert (got.slis, got.thresholds) == (want.slis, want.thresholds)
        assert (got.cluster_sizes, got.centroid_drift) == (want.cluster_sizes, want.centroid_drift)
    assert len(shared) == 2  # the first run trains in the daemon
    assert shared_files() == []  # each removed once mapped


def test_a_window_that_cannot_go_to_shared_memory_goes_through_the_pipe(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def full(**kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(workers, "SHARED_MIN_BYTES", 0)
    monkeypatch.setattr(tempfile, "mkstemp", full)
    for _ in range(2):  # the first trains in the daemon, the second goes to the worker
        assert isinstance(h.runner.run_model("shop"), Evaluation)
    assert "goes through the pipe" in caplog.text and "No space left" in caplog.text
    assert h.runner._workers is not None and len(h.runner._workers.pids()) == 1


def test_shared_windows_of_a_daemon_that_is_gone_are_removed() -> None:
    gone = os.fork()
    if gone == 0:
        os._exit(0)
    os.waitpid(gone, 0)
    mine, theirs = (
        os.path.join(workers.SHARED_DIR, f"kmeans-monitor-rows-{pid}-test")
        for pid in (os.getpid(), gone)
    )
    for path in (mine, theirs):
        with open(path, "wb") as f:
            f.write(b"rows")
    try:
        RunWorkers(1).close()
        assert shared_files() == [f"kmeans-monitor-rows-{os.getpid()}-test"]
        assert shared_files(gone) == []
    finally:
        os.unlink(mine)


def gone(h: Harness, pid: int) -> None:
    """Wait until the runner can see that its killed worker ``pid`` has exited: 0.2 s of
    sleep was not always enough on a loaded machine (the forkserver, its parent, reports
    the exit), and the run then met the worker dying under it (a kill mid-run, another
    case)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with h.runner._workers._lock:
            mine = [w for w in h.runner._workers._all if w.process.pid == pid]
        if not mine or not mine[0].process.is_alive():
            return
        time.sleep(0.02)
    raise AssertionError(f"worker {pid} still runs 10 s after its SIGKILL")


def worker_after_a_run(h: Harness) -> int:
    """The pid of the worker that ran the model's second run (the first trains here)."""
    assert isinstance(h.runner.run_model("shop"), Evaluation)
    assert isinstance(h.runner.run_model("shop"), Evaluation)
    [pid] = h.runner._workers.pids()
    return pid


def test_a_worker_leaves_sigterm_to_the_daemon(h: Harness) -> None:
    """systemd signals the whole control group: the daemon's stop ends the workers."""
    pid = worker_after_a_run(h)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.2)
    assert isinstance(h.runner.run_model("shop"), Evaluation)
    assert h.runner._workers.pids() == [pid]
    h.runner.close()
    assert h.runner._workers.pids() == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_worker_killed_between_runs_is_replaced(h: Harness) -> None:
    first = worker_after_a_run(h)
    os.kill(first, signal.SIGKILL)
    gone(h, first)
    assert isinstance(h.runner.run_model("shop"), Evaluation)
    [second] = h.runner._workers.pids()
    assert second != first


def handovers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The list that gets the pid of each worker a run is handed to."""
    handed: list[int] = []
    wait = RunWorkers._wait

    def counting(worker: Any, phases: Any) -> Any:
        handed.append(worker.process.pid)
        return wait(worker, phases)

    monkeypatch.setattr(RunWorkers, "_wait", staticmethod(counting))
    return handed


def killed_after_a_run(h: Harness) -> int:
    """The pid of the worker that ran the model's second run, killed since."""
    first = worker_after_a_run(h)
    os.kill(first, signal.SIGKILL)
    gone(h, first)
    return first


def test_a_run_does_not_wait_for_a_worker_still_starting(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replacement of a killed worker imports and loads its kernels, seconds at
    nice +10 on a busy machine: the run that starts it computes in the daemon's thread,
    and runs go to the worker once it has said it is ready."""
    handed = handovers(monkeypatch)
    first = killed_after_a_run(h)
    assert handed == [first]
    assert isinstance(h.runner.run_model("shop"), Evaluation)
    [second] = h.runner._workers.pids()
    assert second != first and handed == [first]  # computed here, not handed over
    assert h.runner._workers.wait_ready(120)
    assert isinstance(h.runner.run_model("shop"), Evaluation)
    assert handed == [first, second]


def test_a_run_with_a_deadline_waits_for_its_worker_still_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Here its computation could not be cut at the deadline: a restart's first run of a
    1M-row model went 477 s past its 60 s one (helper-86). It waits for the worker."""
    made = isolated({"shop": 600.0})
    try:
        handed = handovers(monkeypatch)
        first = killed_after_a_run(made)
        assert isinstance(made.runner.run_model("shop"), Evaluation)
        [second] = made.runner._workers.pids()
        assert handed == [first, second]  # handed over once the new worker was ready
    finally:
        made.runner.close()


def test_a_deadline_passed_while_waiting_for_a_worker_is_a_run_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = isolated({"shop": 100.0})
    try:
        assert isinstance(made.runner.run_model("shop"), Evaluation)  # v1: no deadline
        made.timer.t = 0.0

        def never_ready(worker: Any, timeout: float = 0.0) -> bool:
            made.timer.t += 10.0  # each look at the starting worker, 10 s of the deadline
            return False

        monkeypatch.setattr(workers._Worker, "poll_ready", never_ready)
        result = made.runner.run_model("shop")
        assert isinstance(result, RunFailure) and result.reason == "run_timeout"
        assert "past its deadline of 100s" in result.message
    finally:
        made.runner.close()


def big(timeouts: dict[str, float] | None = None) -> Harness:
    made = isolated(timeouts)
    made.source = BigSource()
    made.runner._sources = {"shop": made.source}
    assert isinstance(made.runner.run_model("shop"), Evaluation)  # v1, trained here
    made.runner._workers.start()
    return made


def versions(made: Harness) -> list[int]:
    return [v.version for v in made.store.list_versions("shop")]


def on_wait(monkeypatch: pytest.MonkeyPatch, act: Callable[[], None]) -> list[float]:
    """Call ``act`` once the worker has its task, as the daemon starts waiting for it;
    returns the list that gets the time.monotonic() of that moment."""
    wait = RunWorkers._wait
    when: list[float] = []

    def acting(worker: Any, phases: Any) -> Any:
        when.append(time.monotonic())
        act()
        return wait(worker, phases)

    monkeypatch.setattr(RunWorkers, "_wait", staticmethod(acting))
    return when


def test_a_worker_that_dies_mid_run_fails_the_run_and_stores_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = big()
    try:
        before = versions(made)
        [pid] = made.runner._workers.pids()
        on_wait(monkeypatch, lambda: os.kill(pid, signal.SIGKILL))
        result = made.runner.run_model("shop")
        assert isinstance(result, RunFailure) and result.reason == "internal"
        assert "worker process ended (exit code -9)" in result.message
        assert versions(made) == before
        assert made.runner._workers.pids() == []
        assert shared_files() == []  # the big window's file, removed by the daemon
    finally:
        made.runner.close()


def test_a_stop_ends_the_run_in_its_worker_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    made = big()
    try:
        [pid] = made.runner._workers.pids()
        stopped = on_wait(monkeypatch, made.stopping.set)
        result = made.runner.run_model("shop")
        assert time.monotonic() - stopped[0] < 3  # the big window takes longer than that
        assert isinstance(result, RunFailure) and "daemon is stopping" in result.message
        with pytest.raises(ProcessLookupError):  # killed, not left computing
            os.kill(pid, 0)
    finally:
        made.runner.close()


def test_a_stop_that_closes_the_workers_under_a_run_abandons_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stop past its grace closes the workers while the run waits on its pipe: the run
    # is abandoned as at any stop, not failed as if its worker had died.
    made = big()
    try:
        before = versions(made)

        def stop() -> None:
            made.stopping.set()
            made.runner.close()

        on_wait(monkeypatch, stop)
        result = made.runner.run_model("shop")
        assert isinstance(result, RunFailure) and "daemon is stopping" in result.message
        assert versions(made) == before
        assert made.failures() == {}
        assert made.runner._workers.pids() == []
    finally:
        made.runner.close()


def test_a_run_past_its_deadline_in_its_worker_is_a_run_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = big({"shop": 100.0})
    try:
        before = versions(made)
        made.timer.t = 0.0
        on_wait(monkeypatch, lambda: setattr(made.timer, "t", 1000.0))
        result = made.runner.run_model("shop")
        assert isinstance(result, RunFailure) and result.reason == "run_timeout"
        assert "past its deadline of 100s" in result.message
        assert versions(made) == before
        assert made.failures() == {"run_timeout": 1}
    finally:
        made.runner.close()


def test_a_user_error_raised_in_a_worker_keeps_its_reason(h: Harness) -> None:
    assert isinstance(h.runner.run_model("shop"), Evaluation)
    h.source.scale = np.inf  # every row invalid: the worker's validation refuses it
    result = h.runner.run_model("shop")
    assert isinstance(result, RunFailure) and result.reason == "invalid_values"


def test_run_isolation_takes_thread_or_process() -> None:
    def daemon(**options: str) -> dict[str, object]:
        model = {"name": "m", "features": ["a"], "k": 2, "window": "5m", "source": {"kind": "fake"}}
        model["schedule"] = {"interval": "1m"}
        return {"daemon": options, "models": [model]}

    chosen = parse(daemon(run_isolation="process"), sources=FAKE_SOURCES)
    assert chosen.daemon.run_isolation == "process"
    assert (
        parse(daemon(run_isolation="thread"), sources=FAKE_SOURCES).daemon.run_isolation == "thread"
    )
    assert parse(daemon(), sources=FAKE_SOURCES).daemon.run_isolation == "process"
    with pytest.raises(ConfigError, match=r"daemon\.run_isolation.*'fork'"):
        parse(daemon(run_isolation="fork"), sources=FAKE_SOURCES)


def test_a_new_version_of_a_run_in_a_worker_is_trained_on_the_period_as_in_a_thread() -> None:
    """The worker trains the run's candidate; the daemon, which holds the source, reads
    the reference period and trains the new version there."""
    s = settings()
    m = s.models[0]
    m = replace(
        m,
        reference=ReferenceSettings(window=1800.0),
        retrain="scheduled",
        training=replace(m.training, retrain_every=60.0),
    )
    s = replace(s, models=(m,))
    runs = []
    for in_worker in (True, False):
        made = harness(s)
        if in_worker:
            made.runner._workers = RunWorkers(1)
            assert made.runner._workers.wait_ready(120)
        try:
            assert isinstance(made.runner.run_model("shop"), Evaluation)
            made.runner._clock.advance(120)
            got = made.runner.run_model("shop")
        finally:
            made.runner.close()
        assert isinstance(got, Evaluation) and got.promoted, got
        assert got.decision.endswith("; trained on the 30m to the run (3 windows)")
        runs.append((got, made.store.load("shop")))
    (a, snap_a), (b, snap_b) = runs
    assert (a.slis, a.decision) == (b.slis, b.decision)
    np.testing.assert_array_equal(snap_a.centers, snap_b.centers)
    assert (snap_a.window_start, snap_a.window_end) == (snap_b.window_start, snap_b.window_end)
