"""The end-to-end harness itself: the Alertmanager transformation, the configurations
and the webhook receiver (fast; no Prometheus)."""

from __future__ import annotations

import copy
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import parse
from monitor.simulator import parse_service_options
from monitor.sources import SOURCES
from tests.e2e._stack import (
    SCENARIOS,
    SHIPPED_ALERTMANAGER,
    alertmanager_config,
    daemon_config,
    exporter_config,
    first_match,
    scaled_duration,
)
from tests.e2e.webhook import WebhookReceiver
from tests.services import require_binary

SHIPPED = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text(encoding="utf-8"))
HOOK = "http://127.0.0.1:1234"


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("30s", 0.01, "1s"),  # 0.3 s: never below one second
        ("5m", 0.01, "3s"),
        ("1h", 0.01, "36s"),
        ("12h", 0.01, "432s"),
        ("1d", 0.01, "864s"),
        ("90s", 0.5, "45s"),
        ("5m", 1.0, "300s"),
    ],
)
def test_durations_scale_to_whole_seconds(text: str, scale: float, expected: str) -> None:
    assert scaled_duration(text, scale) == expected


def test_the_shipped_routing_is_kept_and_only_endpoints_and_waits_change() -> None:
    before = copy.deepcopy(SHIPPED)
    config = alertmanager_config(SHIPPED, HOOK, 0.01)
    assert before == SHIPPED  # the shipped mapping is not touched
    route = config["route"]
    # deploy/alertmanager.yml: 30s, 5m, 12h at the root; 1h for pager, 1d for ticket.
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1s",
        "3s",
        "432s",
    )
    assert [r.get("repeat_interval") for r in route["routes"]] == ["36s", "864s", None]
    assert route["group_by"] == SHIPPED["route"]["group_by"]
    assert [(r["receiver"], r["matchers"]) for r in route["routes"]] == [
        (r["receiver"], r["matchers"]) for r in SHIPPED["route"]["routes"]
    ]
    assert config["inhibit_rules"] == SHIPPED["inhibit_rules"]
    urls = {
        r["name"]: [h["url"] for h in r.get("webhook_configs", [])] for r in config["receivers"]
    }
    assert urls == {"pager": [f"{HOOK}/pager"], "ticket": [f"{HOOK}/ticket"], "unrouted": []}
    assert all(
        h["send_resolved"] for r in config["receivers"] for h in r.get("webhook_configs", [])
    )


def test_amtool_accepts_the_transformed_configuration(tmp_path: Path) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(alertmanager_config(SHIPPED, HOOK, 0.01)))
    checked = subprocess.run(
        [require_binary("amtool"), "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_receiver_the_test_cannot_observe_is_refused() -> None:
    shipped = copy.deepcopy(SHIPPED)
    shipped["receivers"].append({"name": "mail", "email_configs": [{"to": "a@example.org"}]})
    with pytest.raises(ValueError, match="receiver 'mail' uses \\['email_configs'\\]"):
        alertmanager_config(shipped, HOOK, 0.01)


def test_the_daemon_configuration_is_valid() -> None:
    # parse checks every source's options against its model's features too.
    settings = parse(daemon_config(1_700_000_000.0, "http://127.0.0.1:9090"), sources=SOURCES)
    assert {s.model for s in SCENARIOS} < {m.name for m in settings.models}
    # Every scenario expects a severity that the shipped routing sends somewhere.
    assert {s.receiver for s in SCENARIOS} == {"pager", "ticket"}


def test_the_exporter_configuration_is_valid() -> None:
    options = parse_service_options(exporter_config(1_700_000_000.0, 40.0))
    assert options.simulator.origin == 1_700_000_000.0
    assert [e.kind for e in options.simulator.events] == ["mean_shift"]


def _post(url: str, payload: Any) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return int(resp.status)


def test_the_webhook_records_each_alert_with_its_receiver(tmp_path: Path) -> None:
    log = tmp_path / "webhook.jsonl"
    receiver = WebhookReceiver(log_path=log)
    receiver.start()
    scenario = SCENARIOS[0]
    payload = {
        "receiver": "ticket",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": scenario.alertname,
                    "severity": scenario.severity,
                    "model": scenario.model,
                },
                "annotations": {"runbook_url": "http://x/runbooks/A"},
                "startsAt": "2024-01-01T00:00:00.123456789Z",
            },
            {"status": "resolved", "labels": {"alertname": "B"}, "annotations": {}},
        ],
    }
    try:
        assert _post(receiver.url + "/ticket", payload) == 200
    finally:
        receiver.stop()
    alerts = receiver.alerts()
    assert [(a.path, a.receiver, a.status) for a in alerts] == [
        ("/ticket", "ticket", "firing"),
        ("/ticket", "ticket", "resolved"),
    ]
    assert first_match(alerts, scenario) is alerts[0]
    assert first_match(alerts, SCENARIOS[1]) is None
    assert json.loads(log.read_text())["payload"] == payload
