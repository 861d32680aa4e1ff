"""Alert rules: promtool-clean, covered by promtool tests, following the conventions."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.alerting import SLI_ALERTS
from monitor.errors import InvalidInputError
from monitor.render import RenderOptions, alert_names, render_rules
from tests.render._support import (
    METRIC,
    PROMTOOL_TESTS,
    RULES_FILE,
    contract_name,
    rules,
    run,
    seconds,
)
from tests.services import require_binary

# The issue's list, one alert (name) per item; a renamed or dropped alert fails here.
EXPECTED_ALERTS = {
    "KMeansRunsFailing": "a monitored model's runs failing",
    "KMeansRunsSkipped": "scheduled runs that never started (issue 10)",
    "KMeansEvaluationStale": "no successful run for two intervals",
    "KMeansModelStale": "not retrained for longer than its freshness SLO",
    "KMeansDaemonDown": "daemon down",
    "KMeansDaemonAbsent": "daemon absent",
    "KMeansCentroidDrift": "centroid drift above threshold",
    "KMeansClusterMoved": "a centre moved more standard errors than quiet windows reach",
    "KMeansFeatureDrift": "feature PSI: warning moderate, critical significant",
    "KMeansManyFeaturesDrifting": "one alert per model when many features drift",
    "KMeansLabelDrift": "label-share drift",
    "KMeansClusterForming": "a regime that no cluster covers (split gain)",
    "KMeansSilhouetteDrop": "silhouette drop",
    "KMeansOutlierRatioHigh": "outlier ratio high",
    "KMeansEmptyClusters": "empty clusters",
    "KMeansRunOverBudget": "run duration over its budget",
    "KMeansRunSuccessBudgetBurn": "run-success SLO burning its error budget",
    "KMeansServingErrorBudgetBurn": "label API: error-ratio SLO burning its budget",
    "KMeansServingLatencyBudgetBurn": "label API: p95 latency SLO burning its budget",
    "KMeansCertificateExpiring": "the served TLS certificate ends within 7 days",
}

# SLI alerts and the threshold series they compare with (never a constant).
THRESHOLD_SERIES = {
    "KMeansCentroidDrift": ["kmeans_centroid_drift_threshold"],
    "KMeansClusterMoved": ["kmeans_centroid_drift_standard_errors_threshold"],
    "KMeansFeatureDrift": [
        "kmeans_feature_psi_warning_threshold",
        "kmeans_feature_psi_critical_threshold",
    ],
    "KMeansManyFeaturesDrifting": [
        "kmeans_feature_psi_warning_threshold",
        "kmeans_feature_psi_critical_threshold",
    ],
    "KMeansLabelDrift": ["kmeans_label_psi_threshold"],
    "KMeansSilhouetteDrop": ["kmeans_silhouette_min_threshold"],
    "KMeansOutlierRatioHigh": ["kmeans_outlier_ratio_threshold"],
    "KMeansRunOverBudget": ["kmeans_run_duration_budget_seconds"],
    "KMeansModelStale": ["kmeans_freshness_slo_seconds"],
    "KMeansEvaluationStale": ["kmeans_schedule_interval_seconds"],
    "KMeansRunSuccessBudgetBurn": ["kmeans_run_success_objective_ratio"],
    "KMeansServingErrorBudgetBurn": ["kmeans_serving_success_objective_ratio"],
    "KMeansServingLatencyBudgetBurn": ["kmeans_serving_latency_objective_ratio"],
}

# Alerts whose expression value is a constant (up == 0, absent() == 1): their
# descriptions name the target instead of quoting $value.
CONSTANT_VALUE = {"KMeansDaemonDown", "KMeansDaemonAbsent"}
# Alerts of a process, not of a model: their descriptions name the target instead.
PROCESS_ALERTS = CONSTANT_VALUE | {"KMeansCertificateExpiring"}
# Each burn-rate alert: the counter of bad events whose rate its windows read, and its objective.
BURN_RATE = {
    "KMeansRunSuccessBudgetBurn": (
        # A new deployment's wait for its reference data burns no budget.
        r'kmeans_run_failures_total\{reason!="awaiting_reference"\}',
        "kmeans_run_success_objective_ratio",
    ),
    "KMeansServingErrorBudgetBurn": (
        r'kmeans_serving_requests_total\{code=~"5\.\."\}',
        "kmeans_serving_success_objective_ratio",
    ),
    "KMeansServingLatencyBudgetBurn": (
        r"kmeans_serving_slow_requests_total",
        "kmeans_serving_latency_objective_ratio",
    ),
}
ALERT_RULES = [r for r in rules() if "alert" in r]


def _alert_ids(rule: dict[str, Any]) -> str:
    return f"{rule['alert']}-{rule['labels']['severity']}"


def test_promtool_check_rules_is_clean() -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "check", "rules", RULES_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout
    assert result.stderr == ""


def test_promtool_rule_tests_pass() -> None:
    promtool = require_binary("promtool")
    assert PROMTOOL_TESTS, "no promtool test files in tests/promtool"
    result = run(promtool, "test", "rules", *PROMTOOL_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_are_the_issues_list() -> None:
    assert alert_names() == sorted(EXPECTED_ALERTS)


@pytest.mark.parametrize("rule", ALERT_RULES, ids=_alert_ids)
def test_alert_follows_the_conventions(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"KMeans[A-Z][A-Za-z0-9]+", name)
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
    summary = annotations["summary"]
    assert summary[0].isupper() and summary.endswith(".") and summary.count(". ") == 0
    assert "{{" not in summary  # one fixed sentence per alert: it titles notifications
    assert "$labels.model" in annotations["description"] or name in PROCESS_ALERTS
    assert "$labels." in annotations["description"]
    assert "$value" in annotations["description"] or name in CONSTANT_VALUE
    # The static site's page (reachable while the daemon is down), opened on the model.
    assert annotations["runbook_url"] == (
        f"http://127.0.0.1:9312/runbooks/{name}.html?model={{{{ $labels.model | urlquery }}}}"
    )


@pytest.mark.parametrize("rule", ALERT_RULES, ids=_alert_ids)
def test_state_alerts_wait_15_to_30_minutes(rule: dict[str, Any]) -> None:
    if rule["alert"] in SLI_ALERTS:
        # They count runs instead (next test): a for: is a different number of runs at
        # every interval, and a single run's value at an interval of 15m or more.
        assert "for" not in rule
    elif rule["alert"] in BURN_RATE:
        # The workbook's pairs: the short window already confirms; a short for: only
        # absorbs one evaluation's noise.
        assert seconds(rule["for"]) <= 3600
    else:
        assert 15 * 60 <= seconds(rule["for"]) <= 30 * 60


@pytest.mark.parametrize("rule", ALERT_RULES, ids=_alert_ids)
def test_sli_alerts_and_only_they_wait_for_flagged_runs_in_a_row(rule: dict[str, Any]) -> None:
    # As last scraped within the hold (helper-80: a restart's lost scrape resolved them).
    condition = (
        "((kmeans_flagged_runs or (last_over_time(kmeans_flagged_runs[20m]) unless on (job, "
        "instance) kmeans_build_info)) >= on (job, instance, model) (kmeans_flagged_runs_to_fire "
        "or (last_over_time(kmeans_flagged_runs_to_fire[20m]) unless on (job, instance) "
        "kmeans_build_info)))"
    )
    assert (condition in rule["expr"]) == (rule["alert"] in SLI_ALERTS), rule["alert"]


@pytest.mark.parametrize("alert", sorted(BURN_RATE))
def test_burn_rate_pairs_are_the_workbooks(alert: str) -> None:
    burn = {r["labels"]["severity"]: r["expr"] for r in ALERT_RULES if r["alert"] == alert}
    assert set(burn) == {"critical", "warning"}
    bad, objective = BURN_RATE[alert]

    def pairs(expr: str) -> list[tuple[str, str]]:
        windows = re.findall(rf"rate\({bad}\[(\w+)\]\)", expr)
        # The objective, held through a scrape gap or not.
        held = (
            rf"(?:{objective}|\({objective} or \(last_over_time\({objective}\[\w+\]\) "
            rf"unless on \(job, instance\) kmeans_build_info\)\))"
        )
        factors = re.findall(rf"\(([\d.]+) \* \(1 - {held}\)\)", expr)
        assert len(factors) == len(windows)
        return list(zip(windows, factors, strict=True))

    # The critical rule pages on 14.4x over 1h and 5m, or 6x over 6h and 30m.
    assert pairs(burn["critical"]) == [("1h", "14.4"), ("5m", "14.4"), ("6h", "6"), ("30m", "6")]
    # The warning rule tickets on 1x over 3d and 6h.
    assert pairs(burn["warning"]) == [("3d", "1"), ("6h", "1")]


@pytest.mark.parametrize("name", sorted(THRESHOLD_SERIES))
def test_sli_alerts_compare_with_the_exported_threshold(name: str) -> None:
    exprs = [r["expr"] for r in ALERT_RULES if r["alert"] == name]
    for series in THRESHOLD_SERIES[name]:
        assert any(series in e for e in exprs), f"{name} does not read {series}"
    for expr in exprs:
        # Constants only where they are not thresholds: > 0 guards and the storm size.
        for constant in re.findall(r"[<>]=?\s*(\d+(?:\.\d+)?)", expr):
            assert constant in {"0", "3"}, f"{name} compares with the constant {constant}"


def test_every_metric_in_the_rules_is_in_the_contract() -> None:
    used = set(METRIC.findall(RULES_FILE.read_text(encoding="utf-8")))
    unknown = sorted(m for m in used if contract_name(m) is None)
    assert not unknown, f"not in docs/metrics.md: {unknown}"


# ------------------------------------------------------------------------ options


def _durations(options: RenderOptions) -> list[str]:
    out = []
    for rule in rules(options):
        out += re.findall(r"\[(\w+)\]", rule["expr"])
        out += [rule["for"]] if "for" in rule else []
        out += re.findall(r"\[(\w+)\]\)\) > 0", rule["annotations"]["description"])
    return out


@pytest.mark.parametrize("scale", [0.005, 0.01, 0.37, 2.0])
def test_time_scale_multiplies_every_for_and_window(scale: float) -> None:
    plain, scaled = _durations(RenderOptions()), _durations(RenderOptions(time_scale=scale))
    assert len(plain) == len(scaled) > 30
    for before, after in zip(plain, scaled, strict=True):
        assert seconds(after) == max(1, int(seconds(before) * scale + 0.5)), (before, after)


@pytest.mark.parametrize(
    ("scale", "alert", "severity", "for_", "windows"),
    [
        # Worked by hand: 15m * 0.01 = 9 s; 5m * 0.01 = 3 s; 3d * 0.01 = 2592 s = 43m12s.
        (0.01, "KMeansDaemonDown", "critical", "9s", []),
        (0.01, "KMeansRunSuccessBudgetBurn", "critical", "1s", ["36s", "3s", "3m36s", "18s"]),
        (0.01, "KMeansRunSuccessBudgetBurn", "warning", "36s", ["43m12s", "3m36s"]),
        # Rounded to whole seconds, never below 1 s: 2m * 0.001 = 0.12 s; 1h * 0.001 = 3.6 s.
        (0.001, "KMeansRunSuccessBudgetBurn", "critical", "1s", ["4s", "1s", "22s", "2s"]),
        (2.0, "KMeansModelStale", "warning", "1h", []),
        (2.0, "KMeansRunOverBudget", "warning", "30m", ["2h"]),
    ],
)
def test_time_scale_worked_examples(
    scale: float, alert: str, severity: str, for_: str, windows: list[str]
) -> None:
    (rule,) = [
        r
        for r in rules(RenderOptions(time_scale=scale))
        if r.get("alert") == alert and r["labels"]["severity"] == severity
    ]
    assert rule["for"] == for_
    assert re.findall(r"(?:failures_total(?:\{[^}]*\})?|_bucket)\[(\w+)\]", rule["expr"]) == windows


@pytest.mark.parametrize("scale", [0.005, 0.5])
def test_scaled_rules_pass_promtool(tmp_path: Path, scale: float) -> None:
    promtool = require_binary("promtool")
    path = tmp_path / "rules.yml"
    path.write_text(render_rules(RenderOptions(time_scale=scale)), encoding="utf-8")
    result = run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runbook_url_pattern_option() -> None:
    pattern = "https://runbooks.example.com/kmeans/{alertname}.html?from=alert&v=1"
    for rule in rules(RenderOptions(runbook_url_pattern=pattern)):
        expected = f"https://runbooks.example.com/kmeans/{rule['alert']}.html?from=alert&v=1"
        assert rule["annotations"]["runbook_url"] == expected


def test_link_patterns_template_the_alert_labels() -> None:
    options = RenderOptions(
        runbook_url_pattern="https://rb.example/{alertname}.html?model={model}&f={feature}",
        dashboard_url_pattern="https://g.example/d/oncall?var-model={model}&x={alertname}",
    )
    for rule in rules(options):
        name = rule["alert"]
        assert rule["annotations"]["runbook_url"] == (
            f"https://rb.example/{name}.html?model={{{{ $labels.model | urlquery }}}}"
            "&f={{ $labels.feature | urlquery }}"
        )
        # A label an alert lacks (the daemon-level alerts have no model) selects all.
        assert rule["annotations"]["dashboard_url"] == (
            'https://g.example/d/oncall?var-model={{ or $labels.model "$__all" | urlquery }}'
            f"&x={name}"
        )


def test_every_alert_links_the_oncall_dashboard_with_its_job_and_model() -> None:
    for rule in rules():
        url = rule["annotations"]["dashboard_url"]
        assert url.startswith("http://127.0.0.1:3000/d/kmeans-monitor-oncall/?"), url
        assert "var-job={{ or $labels.job" in url and "var-model={{ or $labels.model" in url


def test_job_and_storm_options() -> None:
    options = RenderOptions(job="kmeans-e2e", drift_storm_features=5)
    by_name = {(r["alert"], r["labels"]["severity"]): r["expr"] for r in rules(options)}
    assert by_name["KMeansDaemonDown", "critical"].strip() == 'up{job="kmeans-e2e"} == 0'
    assert by_name["KMeansDaemonAbsent", "critical"].split() == [
        'absent(up{job="kmeans-e2e"})',
        "unless",
        "on",
        "()",
        'count(kmeans_build_info{job="kmeans-e2e"})',
    ]
    assert ">= 5" in by_name["KMeansManyFeaturesDrifting", "warning"]
    assert ">= 5" in by_name["KMeansFeatureDrift", "critical"]


RUNBOOK_PATTERN = (
    "The 'runbook_url_pattern' parameter of RenderOptions must be an http(s) URL without "
    "spaces with {alertname} and any of the labels {severity}, {job}, {instance}, {model}, "
    "{feature}"
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"time_scale": 0},
            "The 'time_scale' parameter of RenderOptions must be a float in (0.0, inf). "
            "Got 0 instead.",
        ),
        (
            {"time_scale": float("nan")},
            "The 'time_scale' parameter of RenderOptions must be a float in (0.0, inf). "
            "Got nan instead.",
        ),
        (
            {"runbook_url_pattern": "http://x/runbooks/"},
            f"{RUNBOOK_PATTERN}. Got 'http://x/runbooks/' instead.",
        ),
        (
            {"runbook_url_pattern": "http://x/{alertname}/{modle}"},
            f"{RUNBOOK_PATTERN} (unknown: {{modle}}). Got 'http://x/{{alertname}}/{{modle}}' "
            "instead.",
        ),
        (
            {"runbook_url_pattern": "http://x/{alertname}?m={{$labels.model}}"},
            f"{RUNBOOK_PATTERN} (a label is written {{model}}, not as a Prometheus template). "
            "Got 'http://x/{alertname}?m={{$labels.model}}' instead.",
        ),
        (
            {"runbook_url_pattern": "http://x/{alertname}/{model!r}"},
            f"{RUNBOOK_PATTERN}. Got 'http://x/{{alertname}}/{{model!r}}' instead.",
        ),
        (
            {"dashboard_url_pattern": "http://g/d/x?var-model={model"},
            "The 'dashboard_url_pattern' parameter of RenderOptions must be an http(s) URL "
            "without spaces with any of the labels {alertname}, {severity}, {job}, {instance}, "
            "{model}, {feature}. Got 'http://g/d/x?var-model={model' instead.",
        ),
        (
            {"dashboard_url_pattern": "javascript:alert(1)//{model}"},
            "The 'dashboard_url_pattern' parameter of RenderOptions must be an http(s) URL "
            "without spaces with any of the labels {alertname}, {severity}, {job}, {instance}, "
            "{model}, {feature}. Got 'javascript:alert(1)//{model}' instead.",
        ),
        (
            {"runbook_url_pattern": "/runbooks/{alertname}.html"},
            f"{RUNBOOK_PATTERN}. Got '/runbooks/{{alertname}}.html' instead.",
        ),
        (
            {"daemon_url": "127.0.0.1:9310"},
            "The 'daemon_url' parameter of RenderOptions must be an http(s) URL without "
            "spaces or quotes. Got '127.0.0.1:9310' instead.",
        ),
        (
            {"job": 'kmeans"} or vector(1) #'},
            "The 'job' parameter of RenderOptions must be a str of letters, digits and "
            "'_.:/-'. Got 'kmeans\"} or vector(1) #' instead.",
        ),
        (
            {"drift_storm_features": 1},
            "The 'drift_storm_features' parameter of RenderOptions must be an int in "
            "[2, inf). Got 1 instead.",
        ),
    ],
)
def test_invalid_options_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        RenderOptions(**kwargs)
    assert str(info.value) == message


# ------------------------------------------------------------------------ promtool coverage


def _promtool_groups() -> list[tuple[str, dict[str, Any]]]:
    groups = []
    for path in PROMTOOL_TESTS:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert document["rule_files"] == ["../../alerts/kmeans-monitor.yml"]
        groups += [(path.name, group) for group in document["tests"]]
    return groups


def test_promtool_inputs_are_at_most_5_minutes_apart() -> None:
    for name, group in _promtool_groups():
        assert seconds(group.get("interval", "1m")) <= 300, (name, group["name"])


@pytest.mark.parametrize("alert", sorted(EXPECTED_ALERTS))
def test_every_alert_has_promtool_cases(alert: str) -> None:
    for_seconds = max(seconds(r.get("for", "0s")) for r in ALERT_RULES if r["alert"] == alert)
    severities = {r["labels"]["severity"] for r in ALERT_RULES if r["alert"] == alert}
    silent_then_firing = silent_throughout = False
    fired: set[str] = set()
    for _, group in _promtool_groups():
        step = seconds(group.get("interval", "1m"))
        evals = sorted(
            (seconds(e["eval_time"]), e["exp_alerts"])
            for e in group.get("alert_rule_test", [])
            if e["alertname"] == alert
        )
        for (t1, before), (t2, after) in itertools.pairwise(evals):
            # Silent one step before for: elapses, firing at the step it does.
            silent_then_firing |= not before and bool(after) and t2 - t1 == step
        if evals and not any(expected for _, expected in evals):
            silent_throughout |= max(t for t, _ in evals) >= for_seconds
        for _, expected in evals:
            for exp in expected:
                assert set(exp["exp_annotations"]) == {
                    "summary",
                    "description",
                    "runbook_url",
                    "dashboard_url",
                }
                fired.add(exp["exp_labels"]["severity"])
    assert silent_then_firing, f"{alert}: no case silent one step before firing"
    assert silent_throughout, f"{alert}: no case that must stay silent past its for:"
    assert fired == severities, f"{alert}: severities tested {fired}, defined {severities}"
