"""Dashboards, rules and runbook queries against a real Prometheus scraping real daemons.

One Prometheus (scrape and rule evaluation every second) scrapes `kmeans-monitor demo`
and a second daemon whose model `tight` has thresholds so low that its drift and outlier
alerts must fire, beside a model `promoted` that promotes every few seconds and a
calibrated model `moving` whose regime 0 moves a few seconds after the start; the rules
are loaded time-scaled, so `for: 15m` is a few seconds.
Every dashboard query must parse and return data, every rule must evaluate cleanly, and
the alerts that fire must expand their annotations.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from monitor.render import (
    RenderOptions,
    alert_names,
    render_dashboards,
    render_rules,
    render_runbooks,
)
from tests.services import Service, ServiceError, Services

TIME_SCALE = 0.005  # 15m -> 5 s, 1h -> 18 s, 5m -> 2 s
WAIT_FOR_DATA = 120.0
# What Grafana would put in: All selected (allValue ".+"), a 1 s scrape interval.
VARIABLES = {
    "job": ".+",
    "model": ".+",
    "__rate_interval": "10s",
    "__interval": "5s",
    "__range": "1m",
}
TIGHT_CONFIG = """\
models:
  - name: tight
    features: [latency_p50_ms, cpu_ratio, rps]
    k: 3
    window: 30s
    schedule: {interval: 2s}
    source: {kind: synthetic, seed: 3, regimes: 3, rows_per_window: 1000}
    thresholds: {mode: fixed, centroid_drift: 1.0e-9, outlier_ratio: 1.0e-9}
    reference: {window: 30s}
  # Promotes within seconds, so that the promotions annotation has data: the demo's first
  # promotion (checkout's drift after 70 s) held the wait at 50 to 75 s.
  - name: promoted
    features: [latency_p50_ms, cpu_ratio, rps]
    k: 3
    window: 30s
    schedule: {interval: 2s}
    retrain: scheduled
    training: {retrain_every: 5s}
    source: {kind: synthetic, seed: 4, regimes: 3, rows_per_window: 1000}
    thresholds: {mode: fixed}
    reference: {window: 30s}
  - name: moving
    features: [latency_p50_ms, cpu_ratio, rps]
    k: 3
    window: 30s
    schedule: {interval: 2s}
    retrain: scheduled
    training: {retrain_every: 1d}
    source:
      kind: synthetic
      seed: 5
      regimes: 3
      rows_per_window: 1000
      origin: ORIGIN
      events: [{kind: mean_shift, after: 10s, cluster: 0, magnitude: 3}]
    thresholds: {mode: calibrated}
    reference: {window: 30s}
"""


def substitute(expr: str) -> str:
    """A dashboard query as Grafana sends it to Prometheus."""
    return re.sub(r"\$(\w+)", lambda m: VARIABLES[m.group(1)], expr)


def as_asked(qid: str, expr: str) -> str:
    """The query as the test asks it: an annotation over the last minutes, at 1 s steps.

    Grafana evaluates an annotation over the dashboard's range. Asked at one instant, a
    promotion is seen for the 5 s of its `changes(...[$__interval])`, which a polling loop
    on a loaded machine could miss (the 120 s wait then failed the test).
    """
    if ":annotation:" in qid:
        return f"max_over_time(({substitute(expr)})[5m:1s])"
    return substitute(expr)


def _dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for name, text in render_dashboards().items():
        board = json.loads(text)
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{name}:{panel['title']}:{target['refId']}", target["expr"]))
        for annotation in board["annotations"]["list"]:
            out.append((f"{name}:annotation:{annotation['name']}", annotation["expr"]))
    return out


QUERIES = _dashboard_queries()


@dataclass
class Stack:
    prometheus: Service
    demo: Service
    tight: Service
    answers: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def stack(module_services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("prometheus-stack")
    rules = work / "rules.yml"
    rules.write_text(render_rules(RenderOptions(time_scale=TIME_SCALE)), encoding="utf-8")
    config = work / "tight.yaml"
    config.write_text(TIGHT_CONFIG.replace("ORIGIN", f"{time.time():.0f}"), encoding="utf-8")
    demo = module_services.kmeans_demo()
    tight = module_services.kmeans_monitor(
        "run", "--config", str(config), "--state-dir", str(work / "tight-state")
    )
    prometheus = module_services.prometheus(
        scrape={"kmeans-monitor": [demo.address, tight.address]}, rule_files=[rules]
    )
    # Wait until every query has data: the demo's first runs, two scrapes for rate(),
    # and the tight model's alerts past their (scaled) for:.
    answers: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + WAIT_FOR_DATA
    while time.monotonic() < deadline:
        for qid, expr in QUERIES:
            if not answers.get(qid):
                answers[qid] = prometheus.query(as_asked(qid, expr))
        if all(answers.values()):
            break
        for service in (demo, tight, prometheus):
            if not service.alive():
                raise service.fail("died while the test waited for data")
        time.sleep(1.0)
    yield Stack(prometheus, demo, tight, answers)


@pytest.mark.parametrize(("qid", "expr"), QUERIES, ids=[q[0] for q in QUERIES])
def test_dashboard_query_parses_and_returns_data(stack: Stack, qid: str, expr: str) -> None:
    result = stack.prometheus.query(as_asked(qid, expr))  # raises on a parse error
    assert result or stack.answers[qid], f"no data for {qid}:\n{as_asked(qid, expr)}"


def test_variable_queries_find_the_jobs_and_models(stack: Stack) -> None:
    # label_values(kmeans_build_info, job) and label_values(<metric>{job=~"$job"}, model)
    jobs = stack.prometheus.get_json(
        "/api/v1/label/job/values", [("match[]", "kmeans_build_info")]
    )["data"]
    models = stack.prometheus.get_json(
        "/api/v1/label/model/values",
        [("match[]", substitute('kmeans_last_run_timestamp_seconds{job=~"$job"}'))],
    )["data"]
    assert jobs == ["kmeans-monitor"]
    assert set(models) == {"checkout", "search", "tight", "promoted", "moving"}


def test_every_rule_evaluates_without_error(stack: Stack) -> None:
    groups = stack.prometheus.get_json("/api/v1/rules")["data"]["groups"]
    evaluated = [r for g in groups for r in g["rules"]]
    assert len(evaluated) == len([r for r in render_rules().splitlines() if "- alert:" in r])
    broken = [(r["name"], r.get("lastError")) for r in evaluated if r["health"] != "ok"]
    assert not broken


def test_firing_alerts_expand_their_annotations(stack: Stack) -> None:
    # Thresholds of 1e-9: any centroid movement and any outlier is above them. A run
    # can still land exactly on them, so collect what fired over a few polls. And the
    # calibrated model whose regime moved by 3 of its standard deviations.
    wanted = {("tight", "KMeansCentroidDrift"), ("tight", "KMeansOutlierRatioHigh")}
    wanted.add(("moving", "KMeansClusterMoved"))
    fired: dict[tuple[str, str], dict[str, str]] = {}
    deadline = time.monotonic() + 60
    while not wanted <= set(fired) and time.monotonic() < deadline:
        alerts = stack.prometheus.get_json("/api/v1/alerts")["data"]["alerts"]
        for alert in alerts:
            for key, text in alert["annotations"].items():
                assert "error expanding template" not in text, (key, text)
                assert "<no value>" not in text, (key, text)
            if alert["state"] == "firing":
                labels = alert["labels"]
                fired[(labels.get("model", ""), labels["alertname"])] = alert["annotations"]
        time.sleep(0.5)
    assert wanted <= set(fired), fired
    moved = fired[("moving", "KMeansClusterMoved")]["description"]
    assert re.search(r"is [0-9.e+]+ standard errors from its match", moved), moved
    assert re.search(r"centroid distance is [0-9.e+-]+ scaled units\.$", moved), moved
    drift = fired[("tight", "KMeansCentroidDrift")]
    assert "model tight on 127.0.0.1:" in drift["description"]
    # The daemon explained the run: the description names the cluster and its feature.
    assert re.search(
        r"\(threshold 1e-09\)\. Cluster [0-9]+ moved most, mainly along [a-z0-9_]+\.$",
        drift["description"],
    ), drift["description"]
    # Prometheus fills the alert's labels into the links (URL-encoded).
    assert drift["runbook_url"] == (
        "http://127.0.0.1:9312/runbooks/KMeansCentroidDrift.html?model=tight"
    )
    url = urllib.parse.urlsplit(drift["dashboard_url"])
    assert url.path == "/d/kmeans-monitor-oncall/"
    query = urllib.parse.parse_qs(url.query)
    assert query["var-model"] == ["tight"] and len(query["var-job"]) == 1


@pytest.mark.parametrize("page", sorted(render_runbooks()))
def test_runbook_queries_parse(stack: Stack, page: str) -> None:
    text = render_runbooks()[page]
    blocks = re.findall(r"^```promql\n(.*?)^```$", text, re.S | re.M)
    assert blocks
    for block in blocks:
        query = block.replace("MODEL", "checkout").replace("FEATURE", "cpu_ratio")
        try:
            stack.prometheus.query(query)
        except ServiceError as exc:
            pytest.fail(f"{page}: {exc}")


@pytest.mark.parametrize("name", alert_names())
def test_the_daemon_serves_every_runbook_as_html(stack: Stack, name: str) -> None:
    # Also at the static site's path, so one link pattern can point at either.
    for path in (f"/runbooks/{name}", f"/runbooks/{name}.html?model=checkout"):
        status, body = stack.demo.request(path)
        assert status == 200
        assert f'<h1 id="{name.lower()}">{name}</h1>' in body.decode()
    assert 'id="live"' in body.decode()  # opened on a model of the demo


def test_the_daemon_answers_404_for_unknown_runbooks(stack: Stack) -> None:
    status, _ = stack.demo.request("/runbooks/KMeansNoSuchAlert")
    assert status == 404
