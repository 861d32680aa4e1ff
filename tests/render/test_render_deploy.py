"""Deploy examples: Prometheus and Alertmanager configurations that their tools accept,
routing and inhibition as promised (checked on a real Alertmanager), Grafana provisioning."""

from __future__ import annotations

import shlex
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.render import RenderOptions
from tests.e2e._stack import alertmanager_config
from tests.e2e.webhook import WebhookReceiver
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


def _post(am: Any, *alerts: dict[str, Any]) -> None:
    status, body = am.request("/api/v2/alerts", method="POST", body=list(alerts))
    assert status == 200, body


def _pages(webhook: WebhookReceiver, model: str) -> list[tuple[str, list[str]]]:
    """(group key, firing alert names) of each notification the pager got for ``model``."""
    out = []
    for n in webhook.notifications():
        alerts = [a for a in n.payload["alerts"] if a["labels"].get("model") == model]
        if n.path == "/pager" and alerts:
            names = sorted(a["labels"]["alertname"] for a in alerts if a["status"] == "firing")
            out.append((n.payload["groupKey"], names))
    return out


def _wait(check: Any, what: str, am: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{am.log_tail()}"
        time.sleep(0.2)


@pytest.mark.parametrize("burn_first", [True, False], ids=["burn-then-stale", "stale-then-burn"])
def test_one_source_outage_pages_once(services: Services, tmp_path: Path, burn_first: bool) -> None:
    # The shipped routing and inhibitions, with Alertmanager's waits scaled to seconds
    # (group_interval 5m -> 3 s) and the receivers pointed at a webhook.
    webhook = WebhookReceiver()
    webhook.start()
    try:
        shipped = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
        config = tmp_path / "alertmanager.yml"
        config.write_text(yaml.safe_dump(alertmanager_config(shipped, webhook.url, 0.01)))
        am = services.alertmanager(config)
        burn = _alert(alertname="KMeansRunSuccessBudgetBurn", severity="critical", model="orders")
        stale = _alert(alertname="KMeansEvaluationStale", severity="critical", model="orders")
        first, second = (burn, stale) if burn_first else (stale, burn)
        _post(am, first)
        _wait(lambda: _pages(webhook, "orders"), "the first page", am)
        _post(am, first, second)
        if burn_first:
            # The group is notified again at its next group_interval (3 s here).
            _wait(
                lambda: ["KMeansEvaluationStale"] in [n for _, n in _pages(webhook, "orders")],
                "the group's update",
                am,
            )
        else:
            # The burn arrives inhibited: nothing new to say. Three group intervals
            # show that nothing is said.
            time.sleep(10)
        pages = _pages(webhook, "orders")
        # One group: one incident on the pager, whatever order the two alerts came in.
        assert len({key for key, _ in pages}) == 1, pages
        # Once the model is stale, the burn is inhibited: the update names the outage.
        assert pages[-1][1] == ["KMeansEvaluationStale"], pages
        if not burn_first:
            assert all(names == ["KMeansEvaluationStale"] for _, names in pages), pages
        # Another model's outage is another incident.
        _post(
            am,
            first,
            second,
            _alert(alertname="KMeansEvaluationStale", severity="critical", model="search"),
        )
        _wait(lambda: _pages(webhook, "search"), "the other model's page", am)
        assert {k for k, _ in _pages(webhook, "search")}.isdisjoint({k for k, _ in pages})
    finally:
        webhook.stop()


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


@pytest.mark.parametrize("unit_name", ["kmeans-monitor.service", "kmeans-monitor-serve.service"])
def test_systemd_unit_gives_numba_a_cache_it_can_write(unit_name: str) -> None:
    # ProtectSystem=strict makes the installed package read-only, where numba would cache
    # its compiled kernels; the unit points numba at the cache directory systemd makes.
    lines = (DEPLOY / "systemd" / unit_name).read_text().splitlines()
    settings = dict(line.split("=", 1) for line in lines if "=" in line and line[0] != "#")
    assert settings["ProtectSystem"] == "strict"
    name, _, value = settings["Environment"].partition("=")
    assert name == "NUMBA_CACHE_DIR"
    assert value.startswith(f"/var/cache/{settings['CacheDirectory']}/")
