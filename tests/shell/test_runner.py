"""The runner's deadlines, its diagnosis of overflowing values, and redacted failures."""

from __future__ import annotations

import logging
import shlex
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor import runner as runner_module
from monitor.bootstrap import (
    MIN_RUN_TIMEOUT,
    misfire_grace,
    model_spec,
    retrain_command,
    run_timeout,
)
from monitor.checks import overflow_message
from monitor.config import Settings, parse
from monitor.errors import ConfigError, LivePointerError, SourceError
from monitor.exporter import MonitorState
from monitor.pipeline import ScaleBuffer
from monitor.records import Evaluation, RunFailure, Window
from monitor.runner import Runner
from monitor.store.memory import MemoryHistory, MemorySnapshotStore
from monitor.timestamps import format_time
from tests.fakes import FAKE_SOURCES, FakeClock, blobs

FEATURES = ("a", "b")
CENTERS = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 5.0]])
NOW = 1_800_000_000.0


def settings(**schedule: Any) -> Settings:
    model = {
        "name": "shop",
        "features": list(FEATURES),
        "k": 3,
        "window": "10m",
        "schedule": {"interval": "1m", **schedule},
        "source": {"kind": "fake"},
        "reference": {"window": "10m"},
        "training": {"n_init": 1, "silhouette_sample": 300},
    }
    return parse({"models": [model]}, sources=FAKE_SOURCES)


class Timer:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Source:
    """Rows of three blobs; ``gate`` (when set) holds each read until it is released."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.gate: threading.Event | None = None
        self.error: Exception | None = None
        self.reads = 0
        self.on_read: Any = None

    def read_window(self, start: float, end: float) -> Window:
        self.reads += 1
        if self.gate is not None:
            self.gate.wait(30)
        if self.error is not None:
            raise self.error
        if self.on_read is not None:
            self.on_read()
        X = blobs(600, CENTERS, seed=self.reads) * self.scale
        return Window("shop", start, end, FEATURES, X, label="fake window")

    def close(self) -> None:
        pass


class Store(MemorySnapshotStore):
    """The in-memory store, with hooks on reading the live pointer and loading a version."""

    on_load: Any = None
    on_live: Any = None

    def load(self, model: str, version: int | None = None) -> Any:
        if self.on_load is not None:
            self.on_load()
        return super().load(model, version)

    def live_version(self, model: str) -> int | None:
        if self.on_live is not None:
            self.on_live()
        return super().live_version(model)


@dataclass
class Harness:
    runner: Runner
    source: Source
    state: MonitorState
    history: MemoryHistory
    store: Store
    timer: Timer
    stopping: threading.Event

    def failures(self) -> dict[str, int]:
        [m] = self.state.view()
        return {k: v for k, v in m.failures.items() if v}


def harness(s: Settings, timeouts: dict[str, float] | None = None) -> Harness:
    source, timer, stopping = Source(), Timer(), threading.Event()
    state = MonitorState(
        [model_spec(m, datetime.now(UTC)) for m in s.models], started_at=0.0, version="t"
    )
    history, store = MemoryHistory(), Store()
    runner = Runner(
        s,
        sources={"shop": source},
        store=store,
        history=history,
        state=state,
        clock=FakeClock(NOW),
        package_version="t",
        should_stop=stopping.is_set,
        run_timeouts=timeouts,
        timer=timer,
    )
    return Harness(runner, source, state, history, store, timer, stopping)


@pytest.fixture
def h() -> Iterator[Harness]:
    made = harness(settings(), {"shop": 0.3})
    assert isinstance(made.runner.run_model("shop"), Evaluation)  # the reference, v1
    made.source.reads = 0
    yield made
    if made.source.gate is not None:
        made.source.gate.set()


def test_a_hung_read_frees_the_run_at_its_deadline_as_source_timeout(h: Harness) -> None:
    h.timer.t = 0.0
    h.source.gate = threading.Event()
    ticking = threading.Thread(target=lambda: (time.sleep(0.2), setattr(h.timer, "t", 1.0)))
    ticking.start()
    result = h.runner.run_model("shop")
    ticking.join()
    assert isinstance(result, RunFailure) and result.reason == "source_timeout"
    assert result.message == (
        "the source of model 'shop' did not deliver the window within the run's deadline of "
        "0.3s (schedule.run_timeout)"
    )
    assert h.failures() == {"source_timeout": 1}
    # The read still hangs: the next run fails at once rather than stack a second read.
    again = h.runner.run_model("shop")
    assert isinstance(again, RunFailure) and again.reason == "source_timeout"
    assert "has still not returned from a read started" in again.message
    assert h.source.reads == 1
    # Once it returns, runs read again.
    h.source.gate.set()
    deadline = time.monotonic() + 10
    while not h.runner._reads["shop"][0].is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    h.source.gate = None
    assert isinstance(h.runner.run_model("shop"), Evaluation)
    assert [f.reason for f in h.history.failures("shop")] == ["source_timeout"] * 2


def test_a_read_that_returned_never_blocks_the_next_while_its_thread_exits(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference period reads windows back to back: a read thread that has delivered
    its window but not yet exited is not a hung read (it was, under GIL contention)."""
    exiting = threading.Event()

    class Lingering(threading.Thread):
        def run(self) -> None:
            super().run()
            if self.name.startswith("read:"):
                exiting.wait(10)  # alive after its read returned, as a descheduled thread is

    monkeypatch.setattr(threading, "Thread", Lingering)
    try:
        assert isinstance(h.runner.run_model("shop"), Evaluation)
        assert isinstance(h.runner.run_model("shop"), Evaluation)
    finally:
        exiting.set()
    assert h.source.reads == 2


def test_a_stop_abandons_a_hung_read_at_once(h: Harness) -> None:
    h.source.gate = threading.Event()
    threading.Timer(0.2, h.stopping.set).start()
    t0 = time.monotonic()
    result = h.runner.run_model("shop")
    assert time.monotonic() - t0 < 10  # the read would hang for 30 s
    assert isinstance(result, RunFailure) and "daemon is stopping" in result.message
    # A stop is not a failure of the model: nothing counted, nothing recorded.
    assert h.failures() == {} and h.history.failures("shop") == []


def test_past_the_deadline_between_phases_is_run_timeout(h: Harness) -> None:
    # Loading the live snapshot takes "5 s": the check before the next phase finds the
    # deadline passed. (The store, not the read: a read is timed by its own wait.)
    h.store.on_load = lambda: setattr(h.timer, "t", h.timer.t + 5.0)
    result = h.runner.run_model("shop")
    assert isinstance(result, RunFailure) and result.reason == "run_timeout"
    assert "past its deadline of 0.3s (schedule.run_timeout); nothing was stored" in result.message
    assert h.failures() == {"run_timeout": 1}
    assert h.store.versions("shop") == [1]


@pytest.mark.parametrize("trained", [False, True])
def test_a_first_run_is_not_abandoned_between_phases(trained: bool) -> None:
    # Training a reference is slow by design; abandoning it would leave no model ever.
    fresh = harness(settings(), {"shop": 0.3})
    if trained:
        assert isinstance(fresh.runner.run_model("shop"), Evaluation)
    # Every look at the live pointer takes "5 s", as a slow phase would.
    fresh.store.on_live = lambda: setattr(fresh.timer, "t", fresh.timer.t + 5.0)
    result = fresh.runner.run_model("shop")
    if trained:  # the same slowness abandons a run that has a live model
        assert isinstance(result, RunFailure) and result.reason == "run_timeout"
    else:
        assert isinstance(result, Evaluation) and fresh.store.versions("shop") == [1]


def test_without_a_deadline_runs_are_not_timed(h: Harness) -> None:
    free = harness(settings(), None)
    free.source.on_read = lambda: setattr(free.timer, "t", free.timer.t + 1e6)
    assert isinstance(free.runner.run_model("shop"), Evaluation)


def test_the_default_deadline_is_a_share_of_the_shortest_gap() -> None:
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    [every_10m] = settings(interval="10m").models
    assert run_timeout(every_10m, now) == 480.0
    # Short intervals keep a floor: a first run trains its reference.
    [every_5s] = settings(interval="5s").models
    assert run_timeout(every_5s, now) == MIN_RUN_TIMEOUT
    [given] = settings(run_timeout="7s").models
    assert run_timeout(given, now) == 7.0
    cron = parse(
        {
            "models": [
                {
                    "name": "shop",
                    "features": ["a"],
                    "k": 2,
                    "window": "1h",
                    "schedule": {"cron": "0,15 * * * *"},
                    "source": {"kind": "fake"},
                }
            ]
        },
        sources=FAKE_SOURCES,
    ).models[0]
    assert run_timeout(cron, now) == 0.8 * 15 * 60  # the 15-minute gap, not the 45
    # A run may start late by half the shortest gap: a cron's too (it had no limit, so its
    # runs were never missed and went ahead of the interval models', helper-107).
    assert misfire_grace(cron, now) == 15 * 60 / 2
    assert misfire_grace(every_10m, now) == 300.0
    assert misfire_grace(settings(misfire_grace="7s").models[0], now) == 7.0


@pytest.mark.parametrize("live", [False, True], ids=["first-run", "live-model"])
def test_values_that_overflow_are_invalid_values_that_say_so(live: bool) -> None:
    h = harness(settings(), {"shop": 30.0})
    if live:
        assert isinstance(h.runner.run_model("shop"), Evaluation)
    h.source.scale = 1e306  # finite, but squared distances overflow
    result = h.runner.run_model("shop")
    assert isinstance(result, RunFailure) and result.reason == "invalid_values"
    # Refused where NaN is, by the window's validation, before anything is trained on it.
    prefix = "model 'shop', window fake window: values overflow squared distances: "
    assert result.message.startswith(prefix)
    assert "whose square is beyond the largest float" in result.message
    assert h.store.versions("shop") == ([1] if live else [])


def test_overflow_message_needs_a_real_overflow() -> None:
    X = np.array([[1.0, 2.0], [np.nan, 1e308], [3.0, 4.0]])
    assert overflow_message(X, FEATURES, "u") is None  # the NaN row is not judged
    X[1, 0] = 1.0
    assert overflow_message(X, FEATURES, "u") == (
        "values overflow u: 1 of 3 rows, e.g. b = 1e+308, whose square is beyond the largest "
        "float; the data is probably in the wrong unit or corrupt"
    )


def test_failure_messages_lose_their_credentials(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.source.error = SourceError(
        "prometheus at http://kmeans:hunter22@prom:9090/api/v1/query_range?token=abc123 refused"
    )
    caplog.set_level(logging.INFO)
    result = h.runner.run_model("shop")
    assert isinstance(result, RunFailure) and result.reason == "source_unavailable"
    expected = "prometheus at http://***@prom:9090/api/v1/query_range?token=*** refused"
    assert result.message == expected
    assert [f.message for f in h.history.failures("shop")] == [expected]
    assert "hunter22" not in caplog.text and "abc123" not in caplog.text


def test_an_internal_failure_is_logged_with_a_redacted_traceback(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.source.error = RuntimeError("bug near https://u:s3cr3t-pw@example.com/x")
    result = h.runner.run_model("shop")
    assert isinstance(result, RunFailure) and result.reason == "internal"
    assert "Traceback" in caplog.text and "RuntimeError" in caplog.text
    assert "s3cr3t-pw" not in caplog.text and "s3cr3t-pw" not in result.message


def test_a_failure_names_the_window_the_run_read(h: Harness) -> None:
    # Failures of the daemon and of `evaluate` were recorded without their window, so
    # `history` never showed the "[WINDOW]" it documents (only a backtest's did).
    h.source.error = SourceError("the directory is gone")
    result = h.runner.run_model("shop")
    assert isinstance(result, RunFailure)
    window = f"[{format_time(result.at - 600)}, {format_time(result.at)})"
    assert result.window_label == window
    assert [f.window_label for f in h.history.failures("shop")] == [window]


def test_a_failure_without_text_is_named_by_its_kind(h: Harness) -> None:
    # A read that ran out of memory failed as "FAILED (internal): " with nothing after.
    h.source.error = MemoryError()
    result = h.runner.run_model("shop")
    assert isinstance(result, RunFailure) and result.message == "MemoryError"


@pytest.mark.parametrize(("run_threads", "expected"), [(3, 3), (0, None)])
def test_runs_get_the_configured_threads_and_keep_their_scaling_buffer(
    monkeypatch: pytest.MonkeyPatch, run_threads: int, expected: int | None
) -> None:
    s = settings()
    s = replace(s, daemon=replace(s.daemon, run_threads=run_threads, max_workers=2))
    monkeypatch.setattr("monitor.config.os.cpu_count", lambda: 6)
    made = harness(s)
    seen: list[tuple[int, object]] = []
    real = runner_module.evaluate

    def spy(*args: Any, n_threads: int, buffer: object, **kwargs: Any) -> Any:
        seen.append((n_threads, buffer))
        return real(*args, n_threads=n_threads, buffer=buffer, **kwargs)

    monkeypatch.setattr(runner_module, "evaluate", spy)
    for _ in range(2):
        assert isinstance(made.runner.run_model("shop"), Evaluation)
    (threads, first), (_, second) = seen
    assert threads == (expected or 6 // 2)  # auto: the cores shared among max_workers runs
    assert isinstance(first, ScaleBuffer) and second is first  # one model, one buffer


def test_run_threads_is_a_checked_daemon_setting() -> None:
    raw = {"name": "shop", "features": list(FEATURES), "k": 3, "window": "10m",
           "schedule": {"interval": "1m"}, "source": {"kind": "fake"}}  # fmt: skip
    ok = parse({"daemon": {"run_threads": 2}, "models": [raw]}, sources=FAKE_SOURCES)
    assert ok.daemon.threads_per_run == 2
    with pytest.raises(ConfigError, match="run_threads"):
        parse({"daemon": {"run_threads": -1}, "models": [raw]}, sources=FAKE_SOURCES)


def test_a_live_pointer_that_stays_broken_is_logged_once_and_its_repair_once(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # The refresh runs every 2 s: it logged the same warning 1,800 times an hour.
    def broken() -> None:
        raise LivePointerError("model 'shop': the live pointer is missing")

    h.store.on_live = broken
    with caplog.at_level(logging.INFO, logger="monitor"):
        for _ in range(5):
            h.runner.refresh_live()
        h.store.on_live = None
        for _ in range(3):
            h.runner.refresh_live()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "model=shop cannot read the live snapshot: model 'shop': the live pointer is missing",
        "model=shop the live snapshot reads again",
    ]


def test_runs_refused_for_a_lost_state_directory_are_logged_once_then_summed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One ERROR per run per model: ~50 identical lines a minute with 8 models at 10 s.
    lost = "the state directory /s was deleted or replaced under this process"
    made = harness(settings())
    made.runner._guard = lambda: lost
    with caplog.at_level(logging.INFO, logger="monitor"):
        results = [made.runner.run_model("shop") for _ in range(4)]
        made.timer.t += runner_module.LOST_LOG_SECONDS
        results.append(made.runner.run_model("shop"))
    assert all(isinstance(r, RunFailure) and r.reason == "store" for r in results)
    assert [r.message for r in results if isinstance(r, RunFailure)] == [lost] * 5
    assert len(made.history.failures("shop")) == 5  # each run is still recorded
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.ERROR,
            f"{lost}; every run of every model fails (store) until then: restore the state "
            "directory if it is still wanted, then restart the daemon",
        ),
        (logging.ERROR, f"still: {lost}: 4 run(s) failed in the last 10m"),
    ]


def test_printed_commands_quote_their_paths_for_the_shell(tmp_path: Path) -> None:
    """--state-dir 'sd with space' printed unquoted ran `snapshots approve` on 'sd'."""
    state, config = tmp_path / "sd with space", tmp_path / "it's.yaml"
    command = runner_module.approve_command("shop", 2, state, config)
    assert shlex.split(command) == [
        *["kmeans-monitor", "snapshots", "approve", "shop", "2"],
        *["--config", str(config), "--state-dir", str(state)],
    ]
    retrain = shlex.split(retrain_command("shop", config, state))
    assert retrain[-4:] == ["--config", str(config.resolve()), "--state-dir", str(state.resolve())]


def test_a_first_run_that_trains_the_reference_is_told_until_the_next_starts() -> None:
    # What the daemon names the runs it held up: first_run while the model's first run in
    # this process trains the reference (skips by design), still_running otherwise. The
    # scheduler reports such a skip once that run has ended; read from the store, the
    # report came after the new version and said still_running (helper-89).
    made = harness(settings())
    assert not made.runner.in_first_training("shop")  # no run yet
    assert isinstance(made.runner.run_model("shop"), Evaluation)
    assert made.runner.in_first_training("shop")  # ended, its version stored: still told
    assert isinstance(made.runner.run_model("shop"), Evaluation)
    assert not made.runner.in_first_training("shop")
    # A restart over a trained model: its first run has a deadline like any other.
    again = harness(settings())
    again.runner._store = made.store
    assert isinstance(again.runner.run_model("shop"), Evaluation)
    assert not again.runner.in_first_training("shop")
