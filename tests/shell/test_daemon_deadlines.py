"""The daemon against a Prometheus that drips bytes: hung reads free their workers, a
healthy model keeps running, and SIGTERM ends the process within its grace."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes import DripServer
from tests.shell.test_daemon import daemon, free_port, scrape, value, wait_for

GRACE = 2.0
# How long SIGTERM may take: the grace, plus the interpreter's own exit on a busy host.
# A hung read would hold a non-daemon worker for the source's 60 s timeout.
STOP_WITHIN = GRACE + 6.0


def hung(name: str, url: str, **schedule: Any) -> dict[str, Any]:
    return {
        "name": name,
        "features": ["a", "b"],
        "k": 2,
        "window": "10m",
        "schedule": {"interval": "2s", **schedule},
        "source": {
            "kind": "prometheus",
            "url": url,
            "timeout": "60s",  # the source's own deadline: far beyond the test
            "features": {"a": "up", "b": "up"},
        },
    }


HEALTHY = {
    "name": "healthy",
    "features": ["lat", "cpu"],
    "k": 2,
    "window": "30s",
    "schedule": {"interval": "1s"},
    "source": {"kind": "synthetic", "seed": 3, "regimes": 2, "rows_per_window": 300},
}


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer(pace=0.5)
    yield server
    server.close()


def write_config(tmp_path: Path, models: list[dict[str, Any]]) -> Path:
    config = tmp_path / "monitor.yaml"
    daemon_section = {"state_dir": "state", "max_workers": 2, "shutdown_grace": f"{GRACE:g}s"}
    config.write_text(yaml.safe_dump({"daemon": daemon_section, "models": models}))
    return config


def stop_and_time(proc: Any) -> tuple[int, float]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    return code, time.monotonic() - t0


def test_two_hung_models_do_not_starve_a_healthy_one(tmp_path: Path, drip: DripServer) -> None:
    models = [hung("hung1", drip.url, run_timeout="1s"), hung("hung2", drip.url, run_timeout="1s")]
    config = write_config(tmp_path, [*models, HEALTHY])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "daemon.log"
    with daemon(config, port, log) as proc:

        def progress() -> bool:
            got = scrape(base)
            failed = [
                value(got, "kmeans_run_failures_total", model=m, reason="source_timeout")
                for m in ("hung1", "hung2")
            ]
            return min(failed) >= 2 and value(got, "kmeans_runs_total", model="healthy") >= 3

        wait_for(progress, 90, "hung runs to time out while healthy runs", log)
        got = scrape(base)
        assert value(got, "kmeans_last_success_timestamp_seconds", model="healthy") > 0
        for m in ("hung1", "hung2"):
            assert value(got, "kmeans_last_success_timestamp_seconds", model=m) == 0
            assert value(got, "kmeans_run_failures_total", model=m, reason="internal") == 0
        code, took = stop_and_time(proc)
    assert code == 0 and took < STOP_WITHIN, (code, took, log.read_text()[-3000:])
    text = log.read_text()
    assert "did not deliver the window within the run's deadline of 1s" in text
    assert "Traceback" not in text
    assert drip.connections >= 2  # both hung models really were reading


def test_sigterm_with_every_worker_in_a_hung_read(tmp_path: Path, drip: DripServer) -> None:
    # No run deadline shorter than the source's 60 s: both workers sit in hung reads and
    # a third model waits for a worker. SIGTERM must not wait for the reads. The three are
    # first runs of a fresh daemon, which take every worker: a trained model's runs would
    # keep one (test_scheduling.py).
    models = [hung("hung1", drip.url), hung("hung2", drip.url)]
    waiting = hung("waiting", drip.url, interval="1s")
    config = write_config(tmp_path, [*models, waiting])
    port = free_port()
    log = tmp_path / "daemon.log"
    with daemon(config, port, log) as proc:
        wait_for(lambda: drip.connections >= 2, 60, "both hung reads", log)
        base = f"http://127.0.0.1:{port}"
        runs = value(scrape(base), "kmeans_runs_total", model="waiting")
        time.sleep(2.5)  # a run a second is due: none can start, both workers are held
        got = scrape(base)
        assert value(got, "kmeans_runs_total", model="waiting") == runs
        # The first run due behind the queued one is held for it; each one due after that
        # is counted as skipped (first_run: the queued one is the model's first).
        skipped = [
            value(got, "kmeans_runs_skipped_total", model="waiting", reason=reason)
            for reason in ("missed", "still_running", "first_run")
        ]
        assert sum(skipped) >= 1, skipped
        code, took = stop_and_time(proc)
    assert code == 0 and took < STOP_WITHIN, (code, took, log.read_text()[-3000:])
    text = log.read_text()
    assert "run abandoned while reading: the daemon is stopping" in text
    assert "stopped" in text and "Traceback" not in text
