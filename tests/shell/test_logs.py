"""The logging every process sets up (monitor/logs.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from monitor.logs import Throttle


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` run in a fresh interpreter from the repository (with ``env`` added to the
    environment), as a process of its own sets its logging up; it must exit 0."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), **env},
    )
    assert result.returncode == 0, result.stderr
    return result


# A kernel compiled at log level DEBUG, as the daemon compiles its own at start.
NUMBA_AT_DEBUG = """
import logging

import numba

from monitor.logs import setup_logging

setup_logging("DEBUG")


@numba.njit
def twice(x):
    return 2 * x


assert twice(3) == 6
logging.getLogger("numba.core.ssa").warning("a warning of numba's")
logging.getLogger("monitor").debug("a debug line of the daemon's")
"""


def test_debug_lets_no_numba_compiler_lines_through_but_its_warnings_and_the_daemons_own() -> None:
    # log_level: debug wrote 94,806 lines of "DEBUG numba.core.ssa" in 45 s (13 MB),
    # burying the daemon's own lines.
    result = run_python(NUMBA_AT_DEBUG)
    lines = result.stderr.splitlines()
    numba = [line for line in lines if " numba." in line]
    assert [line.split(" ", 1)[1] for line in numba] == [
        "WARNING numba.core.ssa: a warning of numba's"
    ], result.stderr[:2000]
    assert any(line.endswith("DEBUG monitor: a debug line of the daemon's") for line in lines)


# The window after the reference is one point repeated: scoring it and training its
# candidate in the worker raise DegenerateDataWarning there.
WARNING_IN_A_WORKER = """
from monitor.logs import setup_logging
from tests.shell.test_workers import isolated

setup_logging("WARNING")
made = isolated()
made.runner.run_model("shop")
made.source.scale = 0.0
made.runner.run_model("shop")
made.runner.close()
"""


def test_a_warning_in_a_worker_is_one_log_line_as_in_the_daemon() -> None:
    result = run_python(WARNING_IN_A_WORKER)
    lines = result.stderr.splitlines()
    warned = [line for line in lines if "DegenerateDataWarning" in line]
    assert warned, result.stderr
    assert all(" WARNING monitor: DegenerateDataWarning: " in line for line in warned), warned
    assert not [line for line in lines if ".py:" in line], result.stderr  # no source lines


LOCAL_HOST = """
import logging, time

from monitor.logs import setup_logging

setup_logging("INFO")
print(time.time())
logging.getLogger("monitor").info("model=m window=[12:00:01, 13:00:01)")
"""


def test_log_times_are_utc_and_marked_whatever_the_hosts_zone() -> None:
    # Under TZ=Europe/Paris a line read "2026-03-09 14:00:11,017 INFO monitor: model=svc
    # window=[12:00:01, 13:00:01)": the run seemed to end an hour after its window (t13 F4).
    result = run_python(LOCAL_HOST, TZ="Asia/Kathmandu")  # UTC+05:45
    [line] = result.stderr.splitlines()
    stamp, rest = line.split(" ", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), line
    assert rest == "INFO monitor: model=m window=[12:00:01, 13:00:01)"
    at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    assert abs(at - float(result.stdout)) < 60, (line, result.stdout)


def test_a_throttle_lets_go_of_keys_whose_lines_are_past_and_tells_the_same() -> None:
    # Keys can name series that come and go (a restarted pod's); kept for the daemon's
    # life, they only grew.
    now = [0.0]
    throttle = Throttle(600.0, lambda: now[0])
    assert throttle("held") == (1, None)
    assert throttle("held") is None  # held: must survive a prune
    for i in range(5000):
        now[0] += 1.0
        assert throttle(("pod", i)) == (1, None)
    assert len(throttle._last) <= 2048
    assert ("pod", 4999) in throttle._last and ("pod", 0) not in throttle._last
    assert throttle("held") == (2, 5000.0)  # the held count is still told
    now[0] += 1.0
    assert throttle(("pod", 4999)) is None  # a recent key is still throttled
