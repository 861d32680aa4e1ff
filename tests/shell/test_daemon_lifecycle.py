"""The daemon's start-up pieces: staggered first runs, and a port lost after the checks."""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from monitor import interrupts
from monitor.bootstrap import build_app, claim_state_dir
from monitor.config import parse
from monitor.daemon import (
    Daemon,
    SkipLog,
    daemon_routes,
    first_run_offsets,
    freeze_heap,
    run_until_signal,
    settle,
)
from monitor.errors import ConfigError, InvalidInputError
from monitor.pipeline import train
from monitor.records import Evaluation, RunFailure
from monitor.sources import SOURCES
from monitor.store import SQLiteHistory
from tests.fakes import FakeClock
from tests.http_server._support import make_certificate

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def model(name: str, **schedule: Any) -> dict[str, Any]:
    return {
        "name": name,
        "features": ["a", "b"],
        "k": 2,
        "window": "10m",
        "schedule": schedule,
        "source": {"kind": "synthetic", "seed": 1},
    }


def test_first_runs_are_spread_over_the_interval_up_to_a_minute() -> None:
    fast = parse({"models": [model(f"m{i}", interval="6s") for i in range(3)]}, sources=SOURCES)
    assert first_run_offsets(fast, NOW) == {"m0": 0.0, "m1": 2.0, "m2": 4.0}
    # Whole seconds, so that the runs fall on whole seconds as a backtest's do.
    ten = parse({"models": [model(f"m{i}", interval="10s") for i in range(3)]}, sources=SOURCES)
    assert first_run_offsets(ten, NOW) == {"m0": 0.0, "m1": 3.0, "m2": 6.0}
    # A long interval spreads over a minute, not over the hour: first metrics come soon.
    slow = parse(
        {"models": [model("a", interval="1h"), model("b", cron="*/30 * * * *")]},
        sources=SOURCES,
    )
    assert first_run_offsets(slow, NOW) == {"a": 0.0, "b": 30.0}


def test_a_port_taken_after_the_checks_is_a_user_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        raw = {
            "daemon": {"state_dir": str(tmp_path / "state"), "listen": f"127.0.0.1:{port}"},
            "models": [model("m", interval="1m")],
        }
        app = build_app(parse(raw, sources=SOURCES))
        try:
            with pytest.raises(InvalidInputError) as info:
                Daemon(app)
        finally:
            app.close()
    assert str(info.value) == (
        f"cannot listen on 127.0.0.1:{port} (daemon.listen): port {port} of 127.0.0.1 is in "
        "use: another process listens there, perhaps a kmeans-monitor already running"
    )


def test_a_daemon_starting_with_an_expired_certificate_logs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # It started silently, and every client then failed to verify the certificate.
    expired = datetime(2020, 1, 2, tzinfo=UTC)
    pair = make_certificate(
        tmp_path, not_before=datetime(2020, 1, 1, tzinfo=UTC), not_after=expired
    )
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config: {{cert_file: {pair.cert_file}, key_file: {pair.key_file}}}\n"
    )
    web.chmod(0o600)  # a readable one is a warning of its own
    raw = {
        "daemon": {
            "state_dir": str(tmp_path / "state"),
            "listen": "127.0.0.1:0",
            "web_config_file": str(web),
        },
        "models": [model("m", interval="1m")],
    }
    app = build_app(parse(raw, sources=SOURCES), clock=FakeClock(NOW.timestamp()))
    try:
        with caplog.at_level(logging.WARNING, logger="monitor"):
            daemon = Daemon(app)
        daemon.http.stop()
        # And exported, for KMeansCertificateExpiring: the start's warning is said once.
        gauge = "kmeans_tls_certificate_expiry_timestamp_seconds"
        assert app.registry.get_sample_value(gauge) == expired.timestamp()
    finally:
        app.close()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"daemon.web_config_file ({web}): tls_server_config.cert_file: {pair.cert_file} "
        "expired on 2020-01-02T00:00:00Z: clients that verify it refuse every connection; renew it"
    ]


class Node:
    """A container the collector tracks, with a slot for a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give the collector back every object a test froze."""
    yield
    gc.unfreeze()


def test_the_start_up_heap_is_frozen_after_its_garbage_cycles_are_collected(
    unfrozen: None,
) -> None:
    alive = {"kept": [1, 2, 3]}
    garbage_a, garbage_b = Node(), Node()
    garbage_a.other, garbage_b.other = garbage_b, garbage_a
    gone = weakref.ref(garbage_a)
    del garbage_a, garbage_b  # a cycle: only a collection frees it
    frozen = freeze_heap()
    assert gone() is None  # collected before the freeze, not kept for ever
    # Frozen objects freed since (by this worker's other threads too) leave the count:
    # it was 497,262 against 497,263 returned in one CI run.
    assert 0 < gc.get_freeze_count() <= frozen
    assert not any(o is alive for o in gc.get_objects())  # out of every generation
    gc.unfreeze()
    assert any(o is alive for o in gc.get_objects())


def test_settling_freezes_once_every_model_has_run_and_not_when_stopping(
    unfrozen: None,
) -> None:
    assert gc.get_freeze_count() == 0
    stopping = threading.Event()
    stopping.set()
    settle(lambda: False, stopping, warm=lambda: None)
    assert gc.get_freeze_count() == 0  # stopped while waiting for first runs: nothing frozen
    answers = iter([False, False, True])
    warmed: list[bool] = []
    settle(lambda: next(answers), threading.Event(), warm=lambda: warmed.append(True))
    assert warmed == [True] and gc.get_freeze_count() > 0


def test_a_daemon_freezes_its_heap_after_the_first_runs_and_gives_it_back_at_stop(
    tmp_path: Path, unfrozen: None
) -> None:
    quick = model("m", interval="1h")
    quick["source"]["rows_per_window"] = 300
    quick["training"] = {"n_init": 1, "silhouette_sample": 300}
    raw = {
        "daemon": {"state_dir": str(tmp_path / "state"), "listen": "127.0.0.1:0"},
        "models": [quick],
    }
    daemon = Daemon(build_app(parse(raw, sources=SOURCES)))
    daemon.start()
    try:
        deadline = time.monotonic() + 300  # bounds a hang: a first run trains a reference
        while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert daemon.app.state.has_run("m") and gc.get_freeze_count() > 0
    finally:
        daemon.stop()
    assert gc.get_freeze_count() == 0


def held_in_its_first_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grace: str, hold: float
) -> tuple[Daemon, threading.Event, threading.Event, list[bool]]:
    """A daemon of one model whose first run, once started, sets ``inside`` and waits in
    ``train_reference`` until ``release`` is set (``hold`` seconds at most); and the list
    ``interrupts`` marks an abandoned run in (the command line then leaves without
    finalizing)."""
    inside, release = threading.Event(), threading.Event()
    train_reference = train.train_reference

    def held(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        release.wait(hold)
        return train_reference(*args, **kwargs)

    monkeypatch.setattr(train, "train_reference", held)  # the first run, in the daemon
    abandoned: list[bool] = []
    monkeypatch.setattr(interrupts, "_abandoned", abandoned)
    raw = {
        "daemon": {
            "state_dir": str(tmp_path / "state"),
            "listen": "127.0.0.1:0",
            "shutdown_grace": grace,
        },
        "models": [model("m", interval="1h")],
    }
    return Daemon(build_app(parse(raw, sources=SOURCES))), inside, release, abandoned


def test_a_stop_past_its_grace_stops_the_worker_processes_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    # Workers ignore SIGTERM, and the interpreter's exit joins them: a stop that left them
    # running once a run outlived the grace made `demo` hang at exit after a SIGINT.
    daemon, inside, release, abandoned = held_in_its_first_run(tmp_path, monkeypatch, "0.2s", 60)
    daemon.start()
    try:
        assert inside.wait(60)
        pool = daemon.app.runner._workers
        assert pool is not None
        pids = pool.pids()
        assert pids
        daemon.stop()
        assert abandoned == [True]
        assert pool.pids() == []
        for pid in pids:
            with pytest.raises(ProcessLookupError):  # killed and reaped
                os.kill(pid, 0)
    finally:
        release.set()


def test_a_second_signal_during_the_grace_stops_at_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    unfrozen: None,
) -> None:
    # A second Ctrl-C (or SIGTERM) was logged and did nothing: the daemon still waited
    # its whole shutdown grace for a run in progress.
    daemon, inside, release, abandoned = held_in_its_first_run(tmp_path, monkeypatch, "60s", 120)
    main = threading.get_ident()
    stopping: list[float] = []

    def twice() -> None:
        assert inside.wait(60)
        signal.pthread_kill(main, signal.SIGTERM)
        time.sleep(1.0)  # the stop waits for the run by now
        stopping.append(time.monotonic())
        signal.pthread_kill(main, signal.SIGINT)

    def signal_twice() -> None:
        threading.Thread(target=twice, daemon=True).start()

    try:
        with caplog.at_level(logging.INFO, logger="monitor"):
            daemon.serve_forever(on_started=signal_twice)
        took = time.monotonic() - stopping[0]
    finally:
        release.set()
    assert took < 5, took  # not the 60 s of the grace
    assert abandoned == [True]
    said = [r.getMessage() for r in caplog.records]
    assert "received SIGINT" in said and said[-1] == "stopped"
    assert any("a second SIGTERM or SIGINT" in line for line in said), said


@pytest.mark.parametrize("abandoned", [False, True])
def test_a_command_that_abandoned_a_run_leaves_without_finalizing(abandoned: bool) -> None:
    # A demo stopped by SIGINT while its first run trained under load left that run in
    # numba's thread pool; the interpreter's exit then aborted the process (exit -6,
    # "Fatal Python error: Aborted") after the clean stop. The command line now leaves at
    # once, with its code and its output flushed, once a thread was abandoned.
    script = (
        "import atexit, sys\n"
        "from monitor import interrupts\n"
        "from monitor.__main__ import main\n"
        "atexit.register(lambda: print('finalized', flush=True))\n"
        f"if {abandoned}: interrupts.abandon_threads()\n"
        "sys.argv = ['kmeans-monitor', '--version']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("kmeans-monitor 0.")
    assert ("finalized" in done.stdout) is not abandoned


class Service:
    """A service that records its start and stop."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")


def test_a_duration_of_centuries_waits_like_none() -> None:
    """demo --duration 1e300 is a wait threading cannot express: as long as it can, not a crash."""
    service = Service()
    calls = service.calls

    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    run_until_signal(service, 1e300, stop_event=stop, on_started=timer.start)
    assert calls == ["start", "stop"]


def test_a_signal_another_thread_receives_stops_the_service(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The kernel may hand SIGTERM to any thread: the main thread, blocked in a wait
    without end, never ran the handler, and a `run` signalled early served on."""
    service = Service()

    def to_this_thread() -> None:
        time.sleep(0.3)  # the main thread waits by now
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    def from_another_thread() -> None:
        threading.Thread(target=to_this_thread, daemon=True).start()

    t0 = time.monotonic()
    with caplog.at_level(logging.INFO, logger="monitor"):
        run_until_signal(service, 30, on_started=from_another_thread)
    assert time.monotonic() - t0 < 10  # it waited its 30 s
    assert service.calls == ["start", "stop"]
    assert any(r.getMessage() == "received SIGTERM" for r in caplog.records)


def test_sighup_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    # Its default ended the daemon at once (exit 129), with no log line and no clean stop.
    service = Service()
    calls = service.calls

    stop = threading.Event()

    def hang_up_then_stop() -> None:
        os.kill(os.getpid(), signal.SIGHUP)
        threading.Timer(0.3, stop.set).start()

    def outside(signum: int, frame: Any) -> None:
        calls.append("outside")  # the handler before the daemon's: it must not see one

    before = signal.signal(signal.SIGHUP, outside)
    try:
        with caplog.at_level(logging.WARNING, logger="monitor"):
            run_until_signal(service, None, stop_event=stop, on_started=hang_up_then_stop)
        assert signal.getsignal(signal.SIGHUP) is outside  # restored
    finally:
        signal.signal(signal.SIGHUP, before)
    assert calls == ["start", "stop"]
    assert any("received SIGHUP: ignored" in r.getMessage() for r in caplog.records)


def test_a_second_daemon_on_one_state_directory_is_refused(tmp_path: Path) -> None:
    # Both ran every model, a second apart, and both could promote.
    state = tmp_path / "state"
    held = claim_state_dir(state)
    try:
        with pytest.raises(InvalidInputError) as info:
            claim_state_dir(state)  # flock: another open file, as another process's
        assert str(info.value) == (
            f"another kmeans-monitor daemon (pid {os.getpid()}) runs on the state directory "
            f"{state}: it would run every model a second time; stop it, or give this one "
            "its own daemon.state_dir"
        )
    finally:
        held.close()
    claim_state_dir(state).close()  # free again once the first has gone


@pytest.mark.parametrize("proc_locks", [True, False], ids=["proc-locks", "no-proc-locks"])
def test_a_removed_daemon_lock_does_not_free_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proc_locks: bool
) -> None:
    # helper-93: daemon.lock holds a pid and reads as a stale pid file; once removed, a
    # second daemon locked a new one and ran every model beside the first. Its pid is
    # the one /proc/locks lists for the directory's lock (it said "unknown": fixer F12).
    state = tmp_path / "state"
    held = claim_state_dir(state)
    if not proc_locks:  # another system than Linux, or /proc not mounted
        monkeypatch.setattr(Path, "read_text", _no_proc_locks(Path.read_text))
    try:
        (state / "daemon.lock").unlink()
        with pytest.raises(InvalidInputError) as info:
            claim_state_dir(state)
        pid = os.getpid() if proc_locks else "unknown"
        assert str(info.value) == (
            f"another kmeans-monitor daemon runs on the state directory {state} (pid "
            f"{pid}: its daemon.lock was removed, which frees nothing): it would run every "
            "model a second time; stop it, or give this one its own daemon.state_dir"
        )
    finally:
        held.close()
    claim_state_dir(state).close()


def _no_proc_locks(read_text: Any) -> Any:
    """``Path.read_text`` as on a system without /proc/locks."""

    def read(path: Path, *args: Any, **kwargs: Any) -> str:
        if str(path) == "/proc/locks":
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return str(read_text(path, *args, **kwargs))

    return read


def _run_once(tmp_path: Path) -> tuple[dict[str, Any], Evaluation, float]:
    """A state directory with one successful run of model "m": the settings, that run and
    the time of the last success the daemon exported after it."""
    raw = {"daemon": {"state_dir": str(tmp_path / "state")}, "models": [model("m", interval="1m")]}
    app = build_app(parse(raw, sources=SOURCES))
    try:
        done = app.runner.run_model("m")
        assert isinstance(done, Evaluation), done
        return raw, done, app.state.status("m").last_success
    finally:
        app.close()


def test_a_restart_keeps_the_time_of_the_last_success_from_the_history(tmp_path: Path) -> None:
    # Restarted, with a first run that failed, the gauge read 0 ("no run has succeeded
    # yet") though the history held successes: alerts and panels said the wrong thing.
    raw, done, ended = _run_once(tmp_path)
    assert done.evaluated_at <= ended
    app = build_app(parse(raw, sources=SOURCES))
    try:
        restored = app.state.status("m").last_success
    finally:
        app.close()
    assert restored == pytest.approx(done.evaluated_at + done.duration_seconds)
    assert abs(restored - ended) < 5.0


def test_a_restart_exports_the_latest_runs_slis_and_whether_a_failure_followed(
    tmp_path: Path,
) -> None:
    # Restarted, the SLI gauges read 0 until the first run ended, with the last success
    # restored and the SLIs not marked stale: a silhouette of 0 is below any threshold,
    # so KMeansSilhouetteDrop could fire on a restart (or on every model that a batch
    # `evaluate --model` did not run).
    raw, done, _ = _run_once(tmp_path)
    for failed_after in (False, True):
        if failed_after:
            with SQLiteHistory(tmp_path / "state" / "history.sqlite") as history:
                gone = done.evaluated_at + done.duration_seconds + 60  # a minute after it ended
                history.append_failure(RunFailure("m", "schema", "gone", gone))
        app = build_app(parse(raw, sources=SOURCES))
        try:
            status = app.state.status("m")
            text = generate_latest(app.registry).decode()
        finally:
            app.close()
        assert status.evaluation == done and status.stale is failed_after
        silhouette = done.slis["silhouette"]
        assert f'kmeans_silhouette_score{{model="m"}} {silhouette!r}' in text
        assert f'kmeans_slis_stale{{model="m"}} {float(failed_after)!r}' in text
        # The last run is the failure's, after the last success: KMeansRunsFailing holds
        # on, where a restart read 0 and started the alert's for: again.
        last_run = gone if failed_after else status.last_success
        [exported] = [
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith('kmeans_last_run_timestamp_seconds{model="m"}')
        ]
        assert exported == pytest.approx(last_run, abs=1e-3)


def test_a_restart_takes_the_flagged_runs_from_the_history(tmp_path: Path) -> None:
    # A restart that counted from 0 would resolve a firing SLI alert, and let the next
    # flagged run (the second in a row) pass without firing it again.
    raw, first, _ = _run_once(tmp_path)
    # Later runs train no reference (the run that trained the first model is never flagged).
    done = dataclasses.replace(first, phase_seconds={"read": 0.1})
    # With no thresholds nothing can hold; a warning level below 0 holds on every feature.
    quiet = dataclasses.replace(done, thresholds={})
    flagged = dataclasses.replace(done, thresholds={"feature_psi_warning": -1.0})
    runs = (quiet, flagged, flagged, flagged)
    history_file = tmp_path / "state" / "history.sqlite"
    with SQLiteHistory(history_file) as history:
        for i, ev in enumerate(runs, start=1):
            history.append(dataclasses.replace(ev, evaluated_at=done.evaluated_at + 60 * i))
    # Minutes after the first run, under 5: a stamp further ahead of the clock reads as
    # written before the wall clock stepped back (timestamps.written_after).
    for failure_at, expected in ((None, 3), (3.5, 1), (4.5, 0)):
        if failure_at is not None:
            with SQLiteHistory(history_file) as history:
                at = done.evaluated_at + 60 * failure_at
                history.append_failure(RunFailure("m", "schema", "gone", at))
        app = build_app(parse(raw, sources=SOURCES))
        try:
            text = generate_latest(app.registry).decode()
        finally:
            app.close()
        assert f'kmeans_flagged_runs{{model="m"}} {float(expected)!r}' in text, failure_at


def test_the_pages_link_the_dashboard_the_configuration_names(tmp_path: Path) -> None:
    # The pages and /api/models linked Grafana on 127.0.0.1:3000 whatever the install: from
    # an on-call engineer's laptop the link opened their own machine.
    pattern = "https://grafana.example.com/d/oncall/?var-job={job}&var-model={model}"
    daemon = {"state_dir": str(tmp_path / "state"), "dashboard_url_pattern": pattern}
    raw = {"daemon": daemon, "models": [model("m", interval="1m")]}
    app = build_app(parse(raw, sources=SOURCES))
    try:
        view = daemon_routes(app, lambda: (True, "ready"), cache=False).model_json("m")
    finally:
        app.close()
    assert view["links"]["dashboard"] == (
        "https://grafana.example.com/d/oncall/?var-job=kmeans-monitor&var-model=m"
    )
    bad = {**raw, "daemon": {"dashboard_url_pattern": "javascript:alert(1)"}}
    with pytest.raises(ConfigError, match=r"daemon\.dashboard_url_pattern: must be an http\(s\)"):
        parse(bad, sources=SOURCES)


def test_skipped_runs_are_logged_once_a_minute_per_model_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # helper-93: at a 1 s interval, a line per skipped run outnumbered the run lines.
    now = [0.0]
    log = SkipLog(clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="monitor.schedule")
    for t, model, reason in [
        (0, "a", "missed"),
        (1, "a", "missed"),
        (2, "a", "still_running"),
        (30, "b", "missed"),
        (59, "a", "missed"),
        (61, "a", "missed"),
    ]:
        now[0] = float(t)
        log(model, reason, 2)
    assert caplog.messages == [
        "model=a 2 scheduled run(s) did not start (missed)",
        "model=a 2 scheduled run(s) did not start (still_running)",
        "model=b 2 scheduled run(s) did not start (missed)",
        "model=a 6 scheduled run(s) did not start (missed) in the last 61s",
    ]


def test_a_cron_model_gets_the_default_misfire_grace_as_an_interval_model_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cron job had no grace (APScheduler's "however late"): under load its runs
    # started up to 55 s late, never counted missed, ahead of the interval models'.
    raw = {
        "daemon": {"state_dir": str(tmp_path / "state"), "listen": "127.0.0.1:0"},
        "models": [model("c", cron="*/10 * * * *"), model("i", interval="1h")],
    }
    daemon = Daemon(build_app(parse(raw, sources=SOURCES)))
    monkeypatch.setattr(daemon.app.runner, "run_model", lambda *a, **k: None)
    daemon.start()
    try:
        jobs = {j.id: j.misfire_grace_time for j in daemon.scheduler._scheduler.get_jobs()}
        assert jobs["model:c"] == 300 and jobs["model:i"] == 1800
    finally:
        daemon.stop()
