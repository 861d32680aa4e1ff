"""SIGINT and SIGTERM at any moment of a command: one line and a documented exit code.

A signal in the first tenths of a second met Python's defaults: a KeyboardInterrupt
traceback for SIGINT, death by SIGTERM (143), and `demo` said 'interrupted' while the
documentation promised 0. Since ``monitor.__main__`` handles both before importing
anything, a command is either cut short ('interrupted', 130) or, for run, serve, demo
and simulate once they serve, stops cleanly (0). Python's own start, before that, is
the documented exception (a draw that lands there is retried; /proc tells).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import monitor
from monitor.cli import main
from monitor.interrupts import EXIT_INTERRUPTED, Interrupted, by_signal

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


def handles(pid: int, sig: signal.Signals) -> bool:
    """Whether process ``pid`` has a handler of its own for ``sig`` (SigCgt in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def signalled(args: list[str], sig: signal.Signals, delay: float) -> tuple[int, str, bool]:
    """Run ``kmeans-monitor ARGS`` and send it ``sig`` ``delay`` s after Python has
    started (it has its SIGINT handler); its exit code, its stderr, and whether its own
    handler for SIGTERM was in place when the signal went."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT at its default, as a terminal leaves it (a background job ignores it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT dumps every thread
    )
    try:
        deadline = time.monotonic() + 30
        while not handles(proc.pid, signal.SIGINT) and proc.poll() is None:
            assert time.monotonic() < deadline, "Python did not start in 30 s"
            time.sleep(0.001)
        # A command that ends first (runbook, in about a second) gets no signal: stop
        # waiting then rather than sleep out the longer delays.
        until = time.monotonic() + delay
        while proc.poll() is None and time.monotonic() < until:
            time.sleep(min(0.01, max(0.0, until - time.monotonic())))
        ours = proc.poll() is None and handles(proc.pid, signal.SIGTERM)
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # where it hangs, for the failure to show
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            err += "\n(still running 60 s after the signal)"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err, ours


def problem(code: int, err: str) -> str | None:
    """What is wrong with how a signalled command ended, if anything."""
    if "Traceback" in err:
        return f"a traceback: {err}"
    if code == EXIT_INTERRUPTED:
        return None if err == "interrupted\n" else f"130 with {err!r}"
    # Finished (runbook), or stopped cleanly once serving (simulate, demo).
    return None if code == 0 else f"exit {code}: {err}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize(
    "command",
    [
        ["runbook", "KMeansFeatureDrift"],
        ["simulate", "--listen", "127.0.0.1:0"],
        ["demo", "--listen", "127.0.0.1:0", "--duration", "60", "--state-dir", "{tmp}/d"],
    ],
    ids=lambda c: c[0],
)
def test_an_early_signal_is_one_line_and_a_documented_code(
    tmp_path: Path, command: list[str], sig: signal.Signals
) -> None:
    args = [a.format(tmp=tmp_path) for a in command]
    for delay in (0.05, 0.2, 0.5, 1.5, 3.0):  # imports, start-up, serving
        # A signal before kmeans-monitor's handler exists (Python's own start, tens of
        # milliseconds: documented) may end as Python ends it; such a draw is retried.
        for _ in range(10):
            code, err, ours = signalled(args, sig, delay)
            found = problem(code, err)
            if found is None or ours:
                break
        assert found is None, f"{sig.name} {delay} s after start: {found}"


def test_an_interrupt_that_left_code_run_by_exec_still_exits_130(tmp_path: Path) -> None:
    """CPython remembers a KeyboardInterrupt that left ``exec`` of a string (as while
    dataclasses or numba import) and ends a ``python -m`` process by SIGINT at exit,
    whatever its exit code: `demo` said 'interrupted' and died of SIGINT."""
    (tmp_path / "exec_then_exit.py").write_text(
        "import os, signal\n"
        "from monitor import interrupts\n"
        "interrupts.handle_signals()\n"
        "try:\n"
        "    exec('os.kill(os.getpid(), signal.SIGTERM)\\nfor _ in range(10**7): pass')\n"
        "except KeyboardInterrupt:\n"
        "    interrupts.exit_interrupted()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(monitor.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "exec_then_exit"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert (done.returncode, done.stderr) == (EXIT_INTERRUPTED, "interrupted\n")


# Ways code that cannot pass an interrupt on takes it: Python prints one raised in a
# finalizer and drops it; numpy's C API prints one (sys.excepthook) when it cuts short a
# C extension's import and raises an ImportError of its own; a library may catch it.
TAKEN = {
    "finalizer": (
        "class Dropped:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs in here\n"
        "Dropped()\n"
    ),
    "printed": (
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
        "except BaseException:\n"
        "    sys.excepthook(*sys.exc_info())\n"
    ),
    "caught": (
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
        "except BaseException:\n"
        "    pass\n"
    ),
}


@pytest.mark.parametrize("taken", TAKEN)
def test_an_interrupt_taken_during_the_start_stops_a_service_before_it_serves(
    taken: str,
) -> None:
    """A demo signalled while it started printed a traceback and served on."""
    code = (
        "import os, signal, sys, time\n"
        "from monitor import interrupts\n"
        "from monitor.daemon import run_until_signal\n"
        "interrupts.handle_signals()\n"
        "class Service:\n"
        "    def start(self):\n"
        "        print('started')\n"
        "    def stop(self):\n"
        "        pass\n"
        "try:\n"
        + "".join(f"    {line}\n" for line in TAKEN[taken].splitlines())
        + "    run_until_signal(Service(), 30)\n"
        "except KeyboardInterrupt:\n"
        "    interrupts.exit_interrupted()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (EXIT_INTERRUPTED, "", "interrupted\n")


def test_a_signal_once_the_command_has_ended_keeps_its_exit_code() -> None:
    """Python's shutdown reset the handlers: a signal then killed the process (143)."""
    code = (
        "import os, signal, time\n"
        "from monitor import interrupts\n"
        "interrupts.handle_signals()\n"
        "interrupts.ended(3)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(30)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (3, "")


def test_an_import_cut_short_is_an_interrupt_not_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """A C extension whose import an interrupt cuts short fails with ImportError
    ('initialization failed', scipy's did): it was an internal error, exit 70."""
    from monitor import render

    def cut_short(name: str) -> str:
        raise ImportError("initialization failed") from Interrupted(signal.SIGTERM)

    monkeypatch.setattr(render, "runbook_markdown", cut_short)
    result = CliRunner().invoke(main, ["runbook", "KMeansFeatureDrift"])
    assert (result.exit_code, result.stderr) == (EXIT_INTERRUPTED, "interrupted\n")


def test_an_error_after_a_signal_is_an_interrupt_not_a_bug() -> None:
    """numpy's C API printed the interrupt and raised an ImportError of its own."""
    code = (
        "import os, signal, sys, time\n"
        "from monitor import interrupts\n"
        "interrupts.handle_signals()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
        "except BaseException:\n"
        "    sys.excepthook(*sys.exc_info())\n"
        "    error = ImportError('numpy._core.multiarray failed to import')\n"
        "assert interrupts.by_signal(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")


def test_by_signal_follows_causes_and_contexts() -> None:
    caused = ImportError("initialization failed")
    caused.__cause__ = Interrupted(signal.SIGTERM)
    during = OSError("while stopping")
    during.__context__ = KeyboardInterrupt()
    assert by_signal(caused) and by_signal(during) and by_signal(Interrupted(signal.SIGINT))
    assert not by_signal(ValueError("a bug"))
