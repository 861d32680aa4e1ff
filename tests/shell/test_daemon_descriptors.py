"""The daemon under a low ``ulimit -n``: a burst of connections must not wedge it."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.shell.test_daemon import fetch, free_port, scrape, value, wait_for

LIMIT = 48  # descriptors: the daemon idles at about 25 (process isolation)
CONFIG = {
    "daemon": {"state_dir": "state", "max_workers": 1},
    "models": [
        {
            "name": "shop",
            "features": ["lat", "cpu", "rps"],
            "k": 3,
            "window": "30s",
            "schedule": {"interval": "1s"},
            "source": {"kind": "synthetic", "seed": 5, "regimes": 3, "rows_per_window": 300},
        }
    ],
}


def _low_limit() -> None:
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (LIMIT, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    )


def _burst(port: int) -> None:
    """Silent connections past the limit, then clients that ask and leave at once
    (``Connection: close``, as urllib does): answered once they leave, each drew a
    reset and kept its socket open for good, until the daemon answered nothing."""
    silent = []
    for _ in range(2 * LIMIT):
        try:
            silent.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    for _ in range(2 * LIMIT):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    time.sleep(1.0)
    for sock in silent:
        sock.close()


def _runs(base: str) -> float:
    return value(scrape(base), "kmeans_runs_total", model="shop")


def _last_success(base: str) -> float:
    return value(scrape(base), "kmeans_last_success_timestamp_seconds", model="shop")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
def test_a_burst_past_the_descriptor_limit_leaves_the_daemon_serving_and_running(
    tmp_path: Path,
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "daemon.log"
    command = [sys.executable, "-m", "monitor", "run", "--config", str(config)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*command, "--listen", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_low_limit,
        )
    try:
        wait_for(lambda: _runs(base) >= 2, 90, "two runs", log)
        idle = len(os.listdir(f"/proc/{proc.pid}/fd"))
        _burst(port)
        wait_for(lambda: fetch(base + "/healthz") == "ok\n", 30, "/healthz after the burst", log)
        # Said once at the start: 256 connections and the daemon's own need more than 48.
        assert log.read_text().count("exceed the open-file limit (ulimit -n 48)") == 1
        healthy = time.time()
        wait_for(lambda: _last_success(base) > healthy, 30, "a run that succeeds after", log)
        # Every connection of the burst is closed: nothing kept past the header timeout.
        wait_for(lambda: len(os.listdir(f"/proc/{proc.pid}/fd")) <= idle + 2, 30, "fds freed", log)
        with urllib.request.urlopen(base + "/readyz", timeout=5) as answer:
            assert answer.status == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-4000:]


@pytest.mark.parametrize(("max_connections", "warned"), [(256, True), (8, False)])
def test_check_config_warns_when_max_connections_exceeds_the_descriptor_limit(
    tmp_path: Path, max_connections: int, warned: bool
) -> None:
    config = tmp_path / "monitor.yaml"
    daemon = {**CONFIG["daemon"], "listen": f"127.0.0.1:{free_port()}"}
    serving = {"max_connections": max_connections}
    config.write_text(yaml.safe_dump({**CONFIG, "daemon": daemon, "serving": serving}))
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_low_limit,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "open-file limit" in line]
    expected = (
        f"warning: serving.max_connections ({max_connections}) plus the daemon's own "
        f"descriptors (about 32) exceed the open-file limit (ulimit -n {LIMIT}): a burst of "
        f"connections would leave none for the runs; raise ulimit -n to at least "
        f"{max_connections + 32} or lower serving.max_connections"
    )
    assert lines == ([expected] if warned else [])
