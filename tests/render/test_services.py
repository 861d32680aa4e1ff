"""The shared real-process helpers of tests/services.py work, fail loudly, and clean up."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from tests.services import Services, require_binary


def test_pushgateway_and_prometheus_round_trip(services: Services) -> None:
    gateway = services.pushgateway()
    registry = CollectorRegistry()
    Gauge("kmeans_models_configured", "Models in the configuration.", registry=registry).set(3)
    push_to_gateway(gateway.address, job="kmeans-monitor", registry=registry)
    status, body = gateway.request("/metrics")
    assert status == 200
    assert 'kmeans_models_configured{instance="",job="kmeans-monitor"} 3' in body.decode()
    prometheus = services.prometheus(scrape={"pushgateway": [gateway.address]}, honor_labels=True)
    for _ in range(50):  # the first scrape comes within a second
        result = prometheus.query('kmeans_models_configured{job="kmeans-monitor"}')
        if result:
            break
        time.sleep(0.2)
    assert [float(r["value"][1]) for r in result] == [3.0]


def test_close_stops_every_service(tmp_path: Path) -> None:
    started = Services(tmp_path)
    gateway = started.pushgateway()
    assert gateway.alive()
    started.close()
    assert not gateway.alive()
    started.close()  # idempotent


def test_a_service_that_dies_at_start_fails_with_its_log(tmp_path: Path) -> None:
    started = Services(tmp_path)
    binary = require_binary("prometheus")
    with pytest.raises(
        AssertionError, match=r"(?s)exited with status 1.*output.log.*unknown long flag"
    ):
        started.start("prometheus", [binary, "--no-such-flag"], port=1, ready_path="/-/ready")
    started.close()


@pytest.mark.parametrize("ci", ["", "true"])
def test_a_missing_binary_fails_and_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.fail.Exception, match="scripts/install-test-deps") as info:
        require_binary("prometheus")
    assert ("CI is set" in str(info.value)) == bool(ci)
