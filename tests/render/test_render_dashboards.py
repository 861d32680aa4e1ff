"""Dashboards: valid against a JSON schema of the Grafana model, and the house lint rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from monitor.render import RenderOptions, render_dashboards
from tests.render._support import METRIC, contract, contract_name, is_counter, run
from tests.services import require_binary

SCHEMA = json.loads((Path(__file__).parent / "grafana_dashboard.schema.json").read_text())
DASHBOARDS = {name: json.loads(text) for name, text in render_dashboards().items()}
STABLE_UIDS = {
    "executive.json": "kmeans-monitor-executive",
    "oncall.json": "kmeans-monitor-oncall",
    "debug.json": "kmeans-monitor-debug",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# A selector: a metric name and, if any, its label matchers.
SELECTOR = re.compile(r"\b(kmeans_[a-z0-9_]+|ALERTS|ALERTS_FOR_STATE|up)\b(\{[^}]*\})?")


def _panels() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, panel)
        for name, board in DASHBOARDS.items()
        for panel in board["panels"]
        if panel["type"] != "row"
    ]


def _queries() -> list[tuple[str, dict[str, Any], str]]:
    """(id, panel or None, expr) of every panel target and annotation."""
    out = []
    for name, panel in _panels():
        for target in panel["targets"]:
            out.append((f"{name}:{panel['title']}:{target['refId']}", panel, target["expr"]))
    for name, board in DASHBOARDS.items():
        for annotation in board["annotations"]["list"]:
            out.append((f"{name}:annotation:{annotation['name']}", {}, annotation["expr"]))
    return out


PANELS = _panels()
QUERIES = _queries()


def test_three_dashboards_with_stable_uids() -> None:
    assert {name: board["uid"] for name, board in DASHBOARDS.items()} == STABLE_UIDS


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_matches_the_schema(name: str) -> None:
    jsonschema.validate(DASHBOARDS[name], SCHEMA)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda b: b["panels"][1].pop("description"),
        lambda b: b["panels"][1]["fieldConfig"]["defaults"].pop("unit"),
        lambda b: b["panels"][1]["targets"][0].update(datasource={"uid": "x"}),
        lambda b: b["panels"][1]["gridPos"].update(w=25),
        lambda b: b["panels"][1].update(titel="typo"),
        lambda b: b["templating"]["list"][1].update(refresh=3),
    ],
)
def test_the_schema_rejects_broken_dashboards(breakage: Any) -> None:
    board = json.loads(render_dashboards()["oncall.json"])
    breakage(board)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(board, SCHEMA)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_variables_datasource_job_model(name: str) -> None:
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "model"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for var in ("job", "model"):
        v = variables[var]
        assert v["type"] == "query" and v["datasource"] == DATASOURCE
        assert v["multi"] is True and v["includeAll"] is True and v["allValue"] == ".+"
        assert v["refresh"] == 2  # on time-range change
    assert 'job=~"$job"' in variables["model"]["definition"]


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=[f"{n}:{p['title']}" for n, p in PANELS])
def test_panel_has_title_description_unit_and_uses_the_datasource_variable(
    name: str, panel: dict[str, Any]
) -> None:
    assert panel["title"].strip() and panel["title"][0].isupper()
    assert len(panel["description"].split()) >= 5
    assert panel["fieldConfig"]["defaults"]["unit"]
    assert panel["datasource"] == DATASOURCE
    assert all(t["datasource"] == DATASOURCE for t in panel["targets"])


@pytest.mark.parametrize(("qid", "panel", "expr"), QUERIES, ids=[q[0] for q in QUERIES])
def test_query_filters_job_and_model_and_rates_counters(
    qid: str, panel: dict[str, Any], expr: str
) -> None:
    assert "$job" in expr and "$model" in expr
    selectors = list(SELECTOR.finditer(expr))
    assert selectors, "a query without a metric"
    for match in selectors:
        name, matchers = match.group(1), match.group(2) or ""
        assert 'job=~"$job"' in matchers, f"{name} is not filtered on job"
        labels = contract()[contract_name(name) or ""][1] if contract_name(name) else set()
        if name in ("ALERTS", "ALERTS_FOR_STATE"):
            # Daemon-level alerts carry no model label: let them through.
            assert 'model=~"($model)?"' in matchers
        elif "model" in labels:
            assert 'model=~"$model"' in matchers, f"{name} is not filtered on model"
        if is_counter(name):
            before, after = expr[: match.start()], expr[match.end() :]
            over_range = panel.get("type") == "stat" and all(
                t.get("instant") for t in panel["targets"]
            )
            if before.endswith("increase(") and after.startswith("[$__range])"):
                # A stat over the dashboard's whole range (see docs/decisions.md).
                assert over_range, f"{name}: [$__range] outside an instant stat panel"
            else:
                assert before.endswith("rate(") and after.startswith("[$__rate_interval])"), name


def test_every_metric_in_the_dashboards_is_in_the_contract() -> None:
    used = set()
    for text in render_dashboards().values():
        used |= set(METRIC.findall(text))
    unknown = sorted(m for m in used if contract_name(m) is None)
    assert not unknown, f"not in docs/metrics.md: {unknown}"


def test_every_snippet_is_expanded() -> None:
    for name, text in render_dashboards().items():
        assert "<<" not in text, f"{name} holds a snippet reference"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_layout_panels_fit_the_grid_without_overlap(name: str) -> None:
    ids = [p["id"] for p in DASHBOARDS[name]["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in DASHBOARDS[name]["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


# Issue 4: the Debug dashboard shows every SLI over time against its threshold.
SLI_AGAINST_THRESHOLD = [
    ("kmeans_silhouette_score", "kmeans_silhouette_min_threshold"),
    ("kmeans_outlier_ratio", "kmeans_outlier_ratio_threshold"),
    ("kmeans_feature_psi", "kmeans_feature_psi_warning_threshold"),
    ("kmeans_feature_psi", "kmeans_feature_psi_critical_threshold"),
    ("kmeans_label_psi", "kmeans_label_psi_threshold"),
    ("kmeans_centroid_drift_max", "kmeans_centroid_drift_threshold"),
    ("kmeans_centroid_drift_standard_errors", "kmeans_centroid_drift_standard_errors_threshold"),
    ("kmeans_run_duration_seconds_bucket", "kmeans_run_duration_budget_seconds"),
    ("kmeans_snapshot_created_timestamp_seconds", "kmeans_freshness_slo_seconds"),
    ("kmeans_last_success_timestamp_seconds", "kmeans_schedule_interval_seconds"),
    ("kmeans_runs_total", "kmeans_run_success_objective_ratio"),
]


@pytest.mark.parametrize(("sli", "threshold"), SLI_AGAINST_THRESHOLD)
def test_debug_shows_each_sli_against_its_threshold(sli: str, threshold: str) -> None:
    for panel in DASHBOARDS["debug.json"]["panels"]:
        targets = panel.get("targets", [])
        slis = [t for t in targets if re.search(rf"\b{sli}\b", t["expr"])]
        lines = [
            t
            for t in targets
            if re.search(rf"\b{threshold}\b", t["expr"])
            and any(
                o["matcher"]["options"] == t["refId"] for o in panel["fieldConfig"]["overrides"]
            )
        ]
        if slis and lines:
            return
    pytest.fail(f"no Debug panel draws {sli} against {threshold} (as a dashed threshold line)")


def test_debug_marks_snapshot_versions_with_annotations() -> None:
    (annotation,) = DASHBOARDS["debug.json"]["annotations"]["list"]
    assert annotation["expr"].startswith("kmeans_snapshot_info{")
    assert "{{version}}" in annotation["titleFormat"]


@pytest.mark.parametrize(
    ("name", "titles"),
    [
        (
            "executive.json",
            ["Models monitored", "Model freshness", "Run success rate", "Drift status per model"],
        ),
        (
            "oncall.json",
            [
                "Failing runs by reason",
                "Run duration p95",
                "Centroid drift",
                "Centroid drift in standard errors",
                "PSI by feature",
                "Outlier ratio",
                "Firing alerts",
                "Clusters that moved, and along which feature",
                "Centroid drift per cluster",
                "Cluster shares",
            ],
        ),
        ("debug.json", ["Cluster sizes", "Silhouette", "Inertia"]),
    ],
)
def test_dashboards_have_the_panels_the_issue_asks_for(name: str, titles: list[str]) -> None:
    present = {p["title"] for p in DASHBOARDS[name]["panels"]}
    assert set(titles) <= present


# A 1080p screen shows about this many grid rows of Grafana (30 px each with its margin)
# below the browser's and Grafana's bars.
ONCALL_FOLD = 22


def test_oncall_opens_with_the_firing_alerts_then_drift_above_the_fold() -> None:
    panels = [p for p in DASHBOARDS["oncall.json"]["panels"] if p["type"] != "row"]
    first = panels[0]
    assert first["title"] == "Firing alerts" and first["gridPos"]["y"] <= 1
    expr = first["targets"][0]["expr"]
    assert "ALERTS_FOR_STATE{" in expr and 'ALERTS{alertstate="firing"' in expr
    assert first["fieldConfig"]["defaults"]["unit"] == "dateTimeFromNow"
    assert expr.strip().startswith("1000 *")  # Grafana's time units are milliseconds
    for title in (
        "PSI by feature",
        "Centroid drift",
        "Centroid drift in standard errors",
        "Outlier ratio",
    ):
        (panel,) = [p for p in panels if p["title"] == title]
        assert panel["gridPos"]["y"] + panel["gridPos"]["h"] <= ONCALL_FOLD, title


def test_oncall_alerts_link_their_runbook_and_the_model_page() -> None:
    (alerts,) = [p for p in DASHBOARDS["oncall.json"]["panels"] if p["title"] == "Firing alerts"]
    links = {
        o["matcher"]["options"]: o["properties"][0]["value"][0]["url"]
        for o in alerts["fieldConfig"]["overrides"]
    }
    assert links == {
        "alertname": "http://127.0.0.1:9312/runbooks/${__data.fields.alertname}.html"
        "?model=${__data.fields.model}",
        "model": "http://127.0.0.1:9310/models/${__data.fields.model}",
    }
    options = RenderOptions(
        runbook_url_pattern="https://rb.example/{alertname}/{feature}",
        daemon_url="https://km.example",
    )
    board = json.loads(render_dashboards(options)["oncall.json"])
    text = json.dumps(board)
    assert "https://rb.example/${__data.fields.alertname}/${__data.fields.feature}" in text
    assert "https://km.example/models/${__data.fields.model}" in text


def test_oncall_marks_promotions_and_rollbacks() -> None:
    (annotation,) = DASHBOARDS["oncall.json"]["annotations"]["list"]
    assert "changes(kmeans_snapshot_version{" in annotation["expr"]
    assert "{{model}}" in annotation["titleFormat"]


def test_oncall_shows_the_drift_in_standard_errors_against_its_threshold() -> None:
    (panel,) = [
        p
        for p in DASHBOARDS["oncall.json"]["panels"]
        if p["title"] == "Centroid drift in standard errors"
    ]
    exprs = [t["expr"] for t in panel["targets"]]
    assert exprs[0].startswith("kmeans_centroid_drift_standard_errors{")
    assert exprs[1].startswith("kmeans_centroid_drift_standard_errors_threshold{")
    assert [o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]] == ["B"]


# The Executive dashboard's drift indicators: each model-level drift SLI against its
# threshold (the feature PSI through its largest value).
DRIFT_INDICATORS = [
    ("kmeans_centroid_drift_max", "kmeans_centroid_drift_threshold"),
    ("kmeans_centroid_drift_standard_errors", "kmeans_centroid_drift_standard_errors_threshold"),
    ("kmeans_label_psi", "kmeans_label_psi_threshold"),
    ("kmeans_feature_psi", "kmeans_feature_psi_warning_threshold"),
]


def _executive_expr(title: str) -> str:
    (panel,) = [p for p in DASHBOARDS["executive.json"]["panels"] if p["title"] == title]
    (target,) = panel["targets"]
    return str(target["expr"])


@pytest.mark.parametrize("title", ["Models drifting", "Drift status per model"])
def test_executive_combines_every_drift_indicator(title: str) -> None:
    expr = _executive_expr(title)
    for sli, threshold in DRIFT_INDICATORS:
        pattern = rf"\b{sli}\{{[^}}]*\}}\)? > bool on \(job, instance, model\) {threshold}\{{"
        assert re.search(pattern, expr), f"{title} does not compare {sli} with {threshold}"


def test_drift_status_maps_every_count_of_indicators() -> None:
    (panel,) = [
        p for p in DASHBOARDS["executive.json"]["panels"] if p["title"] == "Drift status per model"
    ]
    mapped = {int(v) for m in panel["fieldConfig"]["defaults"]["mappings"] for v in m["options"]}
    assert mapped == set(range(len(DRIFT_INDICATORS) + 1))


def _assert_executive_drift_counts(
    tmp_path: Path,
    values: dict[str, tuple[float | None, ...]],
    per_model: dict[str, int | None],
) -> None:
    """Evaluate the Executive drift panels' queries with promtool on hand-made series.

    ``values``: metric -> its value for each model of ``per_model`` in turn (None: not
    exported); every model has one feature PSI series of 0.02. ``per_model``: what
    "Drift status per model" must show for each model (None: the model is not shown);
    "Models drifting" must count those above 0.
    """
    promtool = require_binary("promtool")
    labels = 'job="kmeans-monitor", instance="127.0.0.1:9310", model="{}"'
    series = [
        {"series": f"{metric}{{{labels.format(model)}}}", "values": f"{value}x10"}
        for metric, row in values.items()
        for model, value in zip(per_model, row, strict=True)
        if value is not None
    ]
    series += [
        {"series": f'kmeans_feature_psi{{{labels.format(m)}, feature="a"}}', "values": "0.02x10"}
        for m in per_model
    ]

    def grafana(expr: str) -> str:  # every job and model selected
        return expr.replace("$job", ".+").replace("$model", ".+")

    tests = [
        {
            "expr": grafana(_executive_expr("Drift status per model")),
            "eval_time": "5m",
            "exp_samples": [
                {"labels": f'{{model="{m}"}}', "value": v}
                for m, v in per_model.items()
                if v is not None
            ],
        },
        {
            "expr": grafana(_executive_expr("Models drifting")),
            "eval_time": "5m",
            "exp_samples": [{"labels": "{}", "value": sum(bool(v) for v in per_model.values())}],
        },
    ]
    (tmp_path / "none.yml").write_text("groups: []\n", encoding="utf-8")
    document = {
        "rule_files": ["none.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    path = tmp_path / "executive.test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    result = run(promtool, "test", "rules", path, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_executive_drift_counts_keep_models_without_a_drift_in_standard_errors(
    tmp_path: Path,
) -> None:
    # calibrated: only its drift in standard errors is past the threshold; fixed: no
    # threshold for it (thresholds mode fixed, or a model stored before the measure), its
    # label PSI past; quiet: nothing past.
    values = {
        "kmeans_centroid_drift_max": (0.1, 0.1, 0.1),
        "kmeans_centroid_drift_threshold": (0.5, 0.5, 0.5),
        "kmeans_centroid_drift_standard_errors": (6.0, 0.0, 1.0),
        "kmeans_centroid_drift_standard_errors_threshold": (4.0, None, 4.0),
        "kmeans_label_psi": (0.01, 0.3, 0.01),
        "kmeans_label_psi_threshold": (0.1, 0.1, 0.1),
        "kmeans_feature_psi_warning_threshold": (0.1, 0.1, 0.1),
        "kmeans_snapshot_version": (1, 1, 1),
    }
    _assert_executive_drift_counts(tmp_path, values, {"calibrated": 1, "fixed": 1, "quiet": 0})


def test_executive_drift_counts_keep_models_missing_any_threshold(tmp_path: Path) -> None:
    # In the calibrated mode a threshold is not exported where its SLI's null is
    # undefined at the window's size (the centroid drift below 2k rows, pipeline/
    # thresholds.py): that indicator counts 0, the others still count. small: no centroid
    # drift threshold, label PSI past; small_quiet: the same, nothing past; no_label: no
    # label PSI threshold, centroid drift past; no_feature: no feature PSI threshold,
    # label PSI and drift in standard errors past; bare: no threshold at all;
    # unmonitored: no live snapshot (so no threshold either), left out of both panels.
    values = {
        "kmeans_centroid_drift_max": (0.9, 0.9, 0.9, 0.1, 0.9, 0.9),
        "kmeans_centroid_drift_threshold": (None, None, 0.5, 0.5, None, None),
        "kmeans_centroid_drift_standard_errors": (1.0, 1.0, 1.0, 6.0, 6.0, 6.0),
        "kmeans_centroid_drift_standard_errors_threshold": (4.0, 4.0, 4.0, 4.0, None, None),
        "kmeans_label_psi": (0.3, 0.01, 0.3, 0.3, 0.3, 0.3),
        "kmeans_label_psi_threshold": (0.1, 0.1, None, 0.1, None, None),
        "kmeans_feature_psi_warning_threshold": (0.1, 0.1, 0.1, None, None, None),
        "kmeans_snapshot_version": (1, 1, 1, 1, 1, None),
    }
    per_model = {
        "small": 1,
        "small_quiet": 0,
        "no_label": 1,
        "no_feature": 2,
        "bare": 0,
        "unmonitored": None,
    }
    _assert_executive_drift_counts(tmp_path, values, per_model)
