"""Batch mode against a real Pushgateway and Prometheus: what `evaluate --push-to` pushes
feeds the shipped rules as a daemon's scrapes do.

Each `evaluate` is a new process. Its counters used to start from 0 at every push and
its start time was "now": Prometheus saw no increase (the run-success burn alerts could
not fire), KMeansEvaluationStale never passed its start-up guard while the cron kept
failing, and KMeansDaemonAbsent paged on an install that has no daemon by design.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import yaml
from click.testing import CliRunner

from monitor.cli import main
from monitor.render import RenderOptions, render_rules
from tests.services import Services

# The rules' windows at this scale: for 15m = 9 s, 30m = 18 s, 6h = 216 s, for 2m = 1.2 s.
TIME_SCALE = 0.01


def _config(tmp_path: Path) -> Path:
    """One model whose every run fails (its files lack feature c): reason schema."""
    data = tmp_path / "data"
    data.mkdir()
    rows = np.random.default_rng(0).normal(size=(300, 2))
    np.savetxt(data / "w.csv", rows, delimiter=",", header="a,b", comments="")
    config = tmp_path / "monitor.yaml"
    model = {
        "name": "shop",
        "features": ["a", "b", "c"],
        "k": 3,
        "window": "1h",
        "schedule": {"interval": "3s"},
        "source": {"kind": "files", "path": str(data), "pattern": "*.csv"},
    }
    config.write_text(yaml.safe_dump({"daemon": {"state_dir": "state"}, "models": [model]}))
    return config


def _alerts(prometheus: object) -> set[tuple[str, str]]:
    """(alertname, state) of the kmeans-monitor alerts pending or firing now.

    A set, not a dict by name: the run-success burn alert has a critical and a warning
    rule, and the warning one still pending hid the page firing until the warning fired
    too (36 s later at this scale)."""
    got = prometheus.query('ALERTS{job="kmeans-monitor"}')  # type: ignore[attr-defined]
    return {(r["metric"]["alertname"], r["metric"]["alertstate"]) for r in got}


def test_a_failing_cron_pages_and_no_daemon_is_missed(tmp_path: Path, services: Services) -> None:
    gateway = services.pushgateway()
    rules = tmp_path / "rules.yml"
    rules.write_text(render_rules(RenderOptions(time_scale=TIME_SCALE)), encoding="utf-8")
    prometheus = services.prometheus(
        scrape={"pushgateway": [gateway.address]}, rule_files=[rules], honor_labels=True
    )
    config = _config(tmp_path)
    push = ["evaluate", "--config", str(config), "--push-to", gateway.url]
    pushes, seen, starts = 0, set(), []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        result = CliRunner().invoke(main, push)
        assert result.exit_code == 1 and "(schema)" in result.output, result.output
        pushes += 1
        _, body = gateway.request("/metrics")
        text = body.decode()
        assert (
            f'kmeans_runs_total{{instance="",job="kmeans-monitor",model="shop"}} {pushes}' in text
        )
        [start] = [ln for ln in text.splitlines() if ln.startswith("kmeans_daemon_start")]
        starts.append(float(start.split()[-1]))
        seen |= _alerts(prometheus)
        if ("KMeansRunSuccessBudgetBurn", "firing") in seen and (
            "KMeansEvaluationStale",
            "firing",
        ) in seen:
            break
        time.sleep(1.0)
    assert ("KMeansRunSuccessBudgetBurn", "firing") in seen, (pushes, seen)
    assert ("KMeansEvaluationStale", "firing") in seen, (pushes, seen)
    # One start from the second push on, the first run the history holds; the first push
    # had no history yet, and gave its process' start (a few ms before its run).
    assert len(set(starts[1:])) == 1 and 0 <= starts[1] - starts[0] < 1.0, starts
    # No target of the job exists, and that is not a daemon gone missing. (Pending until
    # the first push only: Prometheus evaluates the rules before it.)
    assert ("KMeansDaemonAbsent", "firing") not in seen, seen
    assert "KMeansDaemonAbsent" not in {name for name, _ in _alerts(prometheus)}
