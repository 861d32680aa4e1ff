"""The daemon for real: a subprocess on the synthetic source, scraped over HTTP."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.bootstrap import open_store

CONFIG = {
    "daemon": {"state_dir": "state", "max_workers": 2},
    "models": [
        {
            "name": "alpha",
            "features": ["lat", "cpu", "rps"],
            "k": 3,
            "window": "30s",
            "schedule": {"interval": "1s"},
            "source": {"kind": "synthetic", "seed": 5, "regimes": 3, "rows_per_window": 600},
        },
        {
            # A model whose source fails on every run: it must not disturb 'alpha'.
            "name": "broken",
            "features": ["lat", "cpu"],
            "k": 2,
            "window": "30s",
            "schedule": {"interval": "1s"},
            "source": {
                "kind": "synthetic",
                "seed": 1,
                "rows_per_window": 300,
                "events": [{"kind": "outage", "after": "0s"}],
            },
        },
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(fetch(base + "/metrics")):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(scraped: dict, name: str, **labels: str) -> float:
    return float(scraped.get((name, frozenset(labels.items())), -1.0))


@contextmanager
def daemon(config: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "run",
                "--config",
                str(config),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def wait_for(predicate, timeout: float, what: str, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; daemon log:\n{log.read_text()[-4000:]}")


def test_daemon_runs_scrapes_survives_failures_stops_and_resumes(tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "daemon.log"
    with daemon(config, port, log) as proc:
        wait_for(lambda: fetch(base + "/readyz") == "ready\n", 30, "/readyz", log)
        wait_for(
            lambda: (
                value(scrape(base), "kmeans_last_success_timestamp_seconds", model="alpha") > 0
                and value(scrape(base), "kmeans_runs_total", model="alpha") >= 3
            ),
            60,
            "three runs of alpha",
            log,
        )
        got = scrape(base)
        assert (
            value(got, "kmeans_run_failures_total", model="alpha", reason="source_unavailable") == 0
        )
        assert (
            value(got, "kmeans_run_failures_total", model="broken", reason="source_unavailable")
            >= 1
        )
        assert value(got, "kmeans_last_success_timestamp_seconds", model="broken") == 0
        assert value(got, "kmeans_snapshot_version", model="alpha") == 1
        assert 0 < value(got, "kmeans_silhouette_score", model="alpha") <= 1
        assert value(got, "kmeans_window_rows", model="alpha") == 600
        assert fetch(base + "/healthz") == "ok\n"
        promtool = shutil.which("promtool")
        assert promtool, "promtool missing: run scripts/install-test-deps"
        check = subprocess.run(
            [promtool, "check", "metrics"],
            input=fetch(base + "/metrics").encode(),
            capture_output=True,
            check=False,
        )
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr
        # Another process makes a different version live (what `snapshots rollback` does):
        # the running daemon's metrics and scoring follow without a restart.
        store = open_store(tmp_path / "state")
        copy = store.save(dataclasses.replace(store.load("alpha", 1), reason="manual"))
        store.set_live("alpha", copy.version)
        wait_for(
            lambda: value(scrape(base), "kmeans_snapshot_version", model="alpha") == copy.version,
            10,
            "the metrics to follow the live pointer",
            log,
        )
        wait_for(
            lambda: any(
                m["latest"] and m["latest"]["scored_version"] == copy.version
                for m in json.loads(fetch(base + "/api/models"))
                if m["model"] == "alpha"
            ),
            10,
            "a run that scores the new live version",
            log,
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    text = log.read_text()
    assert "model=broken run failed (source_unavailable)" in text
    assert "stopped" in text

    # A restart resumes from the store: the live model is still v2, no new reference.
    with daemon(config, port, log) as proc:
        wait_for(
            lambda: value(scrape(base), "kmeans_last_success_timestamp_seconds", model="alpha") > 0,
            60,
            "a run after restart",
            log,
        )
        assert value(scrape(base), "kmeans_snapshot_version", model="alpha") == copy.version
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
