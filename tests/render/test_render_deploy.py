"""Deploy examples: Prometheus and Alertmanager configurations that their tools accept,
routing and inhibition as promised (checked on a real Alertmanager), Grafana provisioning."""

from __future__ import annotations

import shlex
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from monitor.render import RenderOptions
from tests.render._support import REPO, parse_cli, run
from tests.services import Services, require_binary

DEPLOY = REPO / "deploy"
LABELS = {"job": "kmeans-monitor", "instance": "127.0.0.1:9310"}


def test_prometheus_example_is_valid_and_loads_the_rules() -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "check", "config", DEPLOY / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert "alerts/kmeans-monitor.yml" in result.stdout


def test_prometheus_example_scrapes_the_daemon_under_the_rules_job() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs[RenderOptions().job]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9310"]  # the daemon's default


def test_alertmanager_example_passes_amtool() -> None:
    amtool = require_binary("amtool")
    result = run(amtool, "check-config", DEPLOY / "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "KMeansEvaluationStale", "severity": "critical"}, "pager"),
        ({"alertname": "KMeansFeatureDrift", "severity": "warning"}, "ticket"),
        ({"alertname": "KMeansSomethingNew", "severity": "info"}, "unrouted"),
        ({"alertname": "NoSeverity"}, "ticket"),
    ],
)
def test_alertmanager_routes_by_severity(labels: dict[str, str], receiver: str) -> None:
    amtool = require_binary("amtool")
    pairs = [f"{k}={v}" for k, v in labels.items()]
    result = run(
        amtool, "config", "routes", "test", f"--config.file={DEPLOY / 'alertmanager.yml'}", *pairs
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def _alert(**labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {**LABELS, **labels},
        "annotations": {"summary": "test."},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


def test_alertmanager_inhibits_a_warning_by_the_matching_critical(services: Services) -> None:
    am = services.alertmanager(DEPLOY / "alertmanager.yml")
    alerts = [
        _alert(alertname="KMeansFeatureDrift", severity="critical", model="orders", feature="a"),
        _alert(alertname="KMeansFeatureDrift", severity="warning", model="orders", feature="a"),
        # Another feature, another model, another alert: not the matching critical.
        _alert(alertname="KMeansFeatureDrift", severity="warning", model="orders", feature="b"),
        _alert(alertname="KMeansFeatureDrift", severity="warning", model="billing", feature="a"),
        _alert(alertname="KMeansLabelDrift", severity="warning", model="orders"),
        # A model that pages as stale needs no ticket for its failing runs.
        _alert(alertname="KMeansEvaluationStale", severity="critical", model="search"),
        _alert(alertname="KMeansRunsFailing", severity="warning", model="search"),
    ]
    status, body = am.request("/api/v2/alerts", method="POST", body=alerts)
    assert status == 200, body
    expected = {
        ("KMeansFeatureDrift", "warning", "orders", "a"): True,
        ("KMeansFeatureDrift", "critical", "orders", "a"): False,
        ("KMeansFeatureDrift", "warning", "orders", "b"): False,
        ("KMeansFeatureDrift", "warning", "billing", "a"): False,
        ("KMeansLabelDrift", "warning", "orders", ""): False,
        ("KMeansEvaluationStale", "critical", "search", ""): False,
        ("KMeansRunsFailing", "warning", "search", ""): True,
    }
    deadline = time.monotonic() + 10
    while True:
        got = {
            (
                a["labels"]["alertname"],
                a["labels"]["severity"],
                a["labels"]["model"],
                a["labels"].get("feature", ""),
            ): bool(a["status"]["inhibitedBy"])
            for a in am.get_json("/api/v2/alerts")
        }
        if got == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == expected, am.log_tail()


def test_grafana_provisioning_examples() -> None:
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/kmeans-monitor.yml").read_text()
    )
    assert datasources["apiVersion"] == 1
    (prometheus,) = datasources["datasources"]
    # The dashboards' `datasource` variable lists data sources of this type.
    assert prometheus["type"] == "prometheus" and prometheus["access"] == "proxy"
    assert prometheus["url"] == "http://127.0.0.1:9090"
    dashboards = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/kmeans-monitor.yml").read_text()
    )
    assert dashboards["apiVersion"] == 1
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


@pytest.mark.parametrize("unit_name", ["kmeans-monitor.service", "kmeans-monitor-serve.service"])
def test_systemd_unit_runs_commands_the_cli_has(unit_name: str) -> None:
    unit = (DEPLOY / "systemd" / unit_name).read_text()
    commands = [
        line.split("=", 1)[1]
        for line in unit.splitlines()
        if line.startswith(("ExecStart=", "ExecStartPre="))
    ]
    assert len(commands) == 2
    for command in commands:
        argv = shlex.split(command)
        assert argv[0].endswith("/kmeans-monitor")
        parse_cli(argv[1:])
