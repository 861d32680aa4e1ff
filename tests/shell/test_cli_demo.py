"""``kmeans-monitor demo`` in a terminal: one line per run, no log line repeating it."""

from __future__ import annotations

import os
import re
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from monitor.bootstrap import DAEMON_LOCK, claim_state_dir
from monitor.cli import EXIT_USER, _FirstRunWait
from monitor.records import Evaluation, RunFailure

RUN_LINE = re.compile(r"^\[\s*\d+s\] (checkout|search)\s+v\d+\s+rows=\d+ ")


def test_the_demo_prints_each_run_once_and_no_daemon_log_of_it(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "monitor", "demo", "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(
        [*argv, "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    # The first runs train on a simulated day; a busy machine needs its time for that.
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=1.0):
                continue
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            runs = [ln for ln in lines if RUN_LINE.match(ln)]
            if (
                sum("checkout" in ln for ln in runs) >= 2
                and sum("search" in ln for ln in runs) >= 2
            ):
                break
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    lines += out.splitlines()
    runs = [ln for ln in lines if RUN_LINE.match(ln)]
    assert sum("checkout" in ln for ln in runs) >= 2, "\n".join(lines) + err
    assert lines[0].startswith("kmeans-monitor demo: models checkout, search")
    assert lines[-1] == f"demo stopped; snapshots and history kept in {tmp_path / 'state'}"
    # The runs the daemon logs at INFO are the demo's lines already; the scheduler's
    # warnings about ticks skipped during the first (long) runs are noise here.
    assert "model=checkout" not in err and "model=search" not in err, err
    assert "apscheduler" not in err, err
    assert proc.returncode == 0


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``kmeans-monitor demo`` on any free port, run to its end (give it a --duration)."""
    argv = [sys.executable, "-m", "monitor", "demo", "--listen", "127.0.0.1:0", *args]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_the_printed_commands_run_as_pasted(tmp_path: Path) -> None:
    """The commands were printed unquoted: pasted, `--state-dir sd with space` read 'sd'."""
    state = tmp_path / "sd with space"
    result = demo("--state-dir", str(state), "--duration", "0.1")
    assert result.returncode == 0, result.stderr
    commands = {
        line.split(":", 1)[0].strip(): shlex.split(line.split(":", 1)[1])
        for line in result.stdout.splitlines()
        if line.startswith(("  snapshots:", "  history:"))
    }
    assert commands == {
        "snapshots": ["kmeans-monitor", "snapshots", "list", "--state-dir", str(state)],
        "history": ["kmeans-monitor", "history", "checkout", "--state-dir", str(state)],
    }


def test_a_demo_refuses_a_state_directory_another_daemon_holds(tmp_path: Path) -> None:
    """The demo ignored the lock: beside a `run`, it trained a v2 the daemon then served.
    It names its --state-dir as `run` does: "--state-dir (daemon.state_dir)"."""
    state = tmp_path / "state"
    held = claim_state_dir(state)  # as a `run` (or another demo) on it holds it
    try:
        result = demo("--state-dir", str(state), "--duration", "0.1")
    finally:
        held.close()
    assert result.returncode == EXIT_USER, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        f"error: another kmeans-monitor daemon (pid {os.getpid()}) runs on the state "
        f"directory {state}: it would run every model a second time; stop it, or give this "
        "one its own --state-dir (daemon.state_dir)\n"
    )
    assert sorted(p.name for p in state.iterdir()) == [DAEMON_LOCK]  # nothing trained


@pytest.mark.parametrize("listen", ["foo", "in use"])
def test_a_demo_that_does_not_start_leaves_no_temporary_directory(
    tmp_path: Path, listen: str
) -> None:
    """`demo --listen foo` left a new /tmp/kmeans-monitor-demo-* behind at every try."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        if listen == "in use":
            listen = f"127.0.0.1:{taken.getsockname()[1]}"
        result = demo("--listen", listen, env={"TMPDIR": str(tmp_path)})
    assert result.returncode == EXIT_USER, result.stderr
    [line] = result.stderr.splitlines()  # one problem, one line
    assert line.startswith("error: invalid configuration: --listen (daemon.listen): ")
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_demo_that_ran_keeps_its_temporary_directory(tmp_path: Path) -> None:
    result = demo("--duration", "0.1", env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    (made,) = tmp_path.iterdir()
    assert result.stdout.splitlines()[-1] == f"demo stopped; snapshots and history kept in {made}"


def _scored(model: str, at: float) -> Evaluation:
    """A run of ``model`` that scored its live v1 (the fields the hook reads: model, type)."""
    return Evaluation(
        model=model,
        window_start=at - 30,
        window_end=at,
        evaluated_at=at,
        n_rows=3000,
        live_version=1,
        candidate_version=None,
        promoted=False,
        decision="kept: no drift",
        slis={},
        feature_psi={},
        cluster_sizes=(),
        cluster_shares=(),
        centroid_drift=(),
        thresholds={},
        phase_seconds={},
        duration_seconds=0.1,
    )


def test_the_demo_drift_falls_in_scored_runs_however_long_the_first_training(
    tmp_path: Path,
) -> None:
    """h141: at load 11 the first training took 140 s; counted from the first window read
    (5 s in), checkout's slowdown (70 s on, for 60 s) was over before any run scored it,
    and the demo never flagged. Its events now count from the model's first scored run."""
    from importlib import resources

    from monitor.bootstrap import load_settings
    from monitor.simulator import Simulator
    from monitor.sources.synthetic import build, events_from_first_score
    from monitor.yamlfile import load_yaml

    text = resources.files("monitor").joinpath("demo.yaml").read_text("utf-8")
    overrides = {"listen": "127.0.0.1:0", "state_dir": str(tmp_path)}
    settings = load_settings(None, raw=load_yaml(text, "demo.yaml"), overrides=overrides)
    m = next(m for m in settings.models if m.name == "checkout")
    source = build(m.name, m.features, m.source.options)
    (event,) = source.simulator.options.events
    assert event.duration is not None
    now = [1_800_000_000.0]
    hook = events_from_first_score({"checkout": source}, lambda: now[0])
    start = now[0]
    source.read_window(start - 30, start)  # the first run's window, read before it trains
    now[0] += 600  # ten minutes of training
    live = now[0]
    hook(RunFailure("checkout", "source_unavailable", "down", at=live))  # not scored: no clock
    hook(_scored("checkout", live))
    now[0] += 100
    hook(_scored("checkout", now[0]))  # only the first scored run counts
    # The window of the run 100 s after the first scored one lies inside the slowdown.
    lo, hi = live + 100 - 30, live + 100
    assert live + event.after <= lo and hi <= live + event.after + event.duration
    drifted = source.read_window(lo, hi).X
    as_designed = Simulator(m.features, replace(m.source.options, origin=live)).rows(lo, hi)
    np.testing.assert_array_equal(drifted, as_designed)
    # Counted from the first window read, the same window held no slowdown.
    before = Simulator(m.features, replace(m.source.options, origin=start - 30)).rows(lo, hi)
    assert not np.array_equal(drifted, before)
    p99 = list(m.features).index("latency_p99_ms")
    assert np.median(drifted[:, p99]) > np.median(before[:, p99])
    # The flagged runs train and calibrate a candidate: past the default deadline of a
    # minute on a loaded machine (h141's load), they were abandoned, unprinted.
    assert m.run_timeout is not None and m.run_timeout >= 300


def test_make_demo_passes_its_arguments_on() -> None:
    """h141: `make demo` ran on 127.0.0.1:9310 only; whose port was taken left the Quick
    start for the binary. ``make demo ARGS=...`` gives the demo its options."""
    root = Path(__file__).resolve().parents[2]
    dry = subprocess.run(
        ["make", "-n", "-C", str(root), "demo", "ARGS=--listen 127.0.0.1:9400 --duration 300"],
        capture_output=True,
        text=True,
        check=True,
    )
    commands = [ln.strip() for ln in dry.stdout.splitlines()]
    assert ".venv/bin/kmeans-monitor demo --listen 127.0.0.1:9400 --duration 300" in commands


def test_the_demo_says_which_first_runs_still_train(capsys: pytest.CaptureFixture[str]) -> None:
    """At load 10 the first runs trained for minutes and the demo said nothing after its
    banner: 150 s of silence, then "demo stopped"."""
    now = [100.0]
    wait = _FirstRunWait(["checkout", "search"], t0=70.0, every=15.0, clock=lambda: now[0])
    assert wait.tick()
    line = capsys.readouterr().out
    assert re.fullmatch(
        r"\[   30s\] checkout, search: the first run is still training "
        r"\(load average \d+\.\d on \d+ CPUs\)\n",
        line,
    ), line
    wait.ended("checkout")
    now[0] = 115.0
    assert wait.tick()
    assert capsys.readouterr().out.startswith("[   45s] search: the first run")
    wait.ended("search")
    wait.ended("checkout")  # a later run of a model changes nothing
    assert not wait.tick()
    assert capsys.readouterr().out == ""


def test_the_first_run_line_stops_with_the_first_runs(capsys: pytest.CaptureFixture[str]) -> None:
    wait = _FirstRunWait(["checkout"], t0=time.monotonic(), every=0.01)
    with wait:
        wait.start()
        while "still training" not in capsys.readouterr().out:
            time.sleep(0.01)
        wait.ended("checkout")
        [thread] = [t for t in threading.enumerate() if t.name == "demo-first-runs"]
        thread.join(timeout=30)
        assert not thread.is_alive()  # it stops by itself once no first run is left
