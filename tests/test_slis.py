"""The SLI catalogue is the one place that names an SLI, and what it points at exists."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from monitor import slis as S

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "monitor"

NAMES = (
    set(S.SLIS)
    | set(S.THRESHOLDS)
    | {s.metric for s in S.SLIS.values()}
    | {t.metric for t in S.THRESHOLDS.values()}
)

# Strings that equal an SLI's name but mean something else, with the reason.
ALLOWED = {
    # "silhouette" is also a criterion for choosing k (elbow, silhouette, gap).
    ("monitor/config.py", "silhouette"),
    ("monitor/cli.py", "silhouette"),
    ("monitor/cli.py", "inertia"),  # choose-k's table columns: criteria, not SLIs
}


def shell_modules() -> list[Path]:
    """Everything but the numeric core, whose function and index names are its own
    (``centroid_drift``, ``davies_bouldin``); calibration is the exception, since it
    computes thresholds per SLI."""
    return sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if p.name != "slis.py"
        and ("core" not in p.relative_to(PACKAGE).parts or p.name == "calibration.py")
    )


@pytest.mark.parametrize("path", shell_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_but_the_catalogue_spells_an_sli(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    found = {
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in NAMES
        and (rel, node.value) not in ALLOWED
    }
    assert not found, f"{rel} names SLIs itself (use monitor.slis): {sorted(found)}"


def test_the_allowlist_has_no_stale_entries() -> None:
    used = set()
    for path in shell_modules():
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and (rel, node.value) in ALLOWED:
                used.add((rel, node.value))
    assert used == ALLOWED


def test_keys_and_metrics_are_unique_and_well_formed() -> None:
    metrics = [s.metric for s in S.SLIS.values()] + [t.metric for t in S.THRESHOLDS.values()]
    assert len(metrics) == len(set(metrics))
    for name in metrics:
        assert re.fullmatch(r"kmeans_[a-z_]+", name), name
        assert not name.endswith("_total"), "SLIs are gauges"
    for t in S.THRESHOLDS.values():
        assert t.metric.endswith("_threshold"), t.metric


@pytest.mark.parametrize("sli", list(S.SLIS.values()), ids=lambda s: s.key)
def test_every_sli_points_at_real_code_and_a_written_formula(sli: S.Sli) -> None:
    module, _, func = sli.code.rpartition(".")
    assert callable(getattr(importlib.import_module(module), func)), sli.code
    slis_md = (ROOT / "docs" / "slis.md").read_text(encoding="utf-8")
    assert f'<a id="{sli.formula}"></a>' in slis_md, S.formula_link(sli)
    assert sli.direction in (S.ABOVE, S.BELOW, "none")
    assert sli.labels[0] == "model"
    for key in sli.thresholds:
        assert key in S.THRESHOLDS


def test_threshold_rules_are_consistent() -> None:
    from monitor.config import ThresholdSettings

    for t in S.THRESHOLDS.values():
        assert hasattr(ThresholdSettings(), t.config), t.config
        assert t.calibration in ("", "replace", "at_least")
        assert not t.relative_to or t.relative_to in S.SLIS
        guards = [s for s in S.SLIS.values() if t.key in s.thresholds]
        assert guards, f"threshold {t.key} guards no SLI"
    for key in S.CALIBRATED:
        assert S.SLIS[key].thresholds, f"calibrated SLI {key} guards no threshold"


def test_triggers_and_progress_name_catalogue_entries() -> None:
    for trigger in S.RETRAIN_TRIGGERS:
        assert trigger.sli in S.SCALAR
        assert not trigger.threshold or trigger.threshold in S.THRESHOLDS
    for p in S.PROGRESS:
        assert p.sli in S.SCALAR


def test_alert_conditions_match_the_rendered_rules() -> None:
    from monitor.render import RenderOptions
    from monitor.render.rules import rules_by_alert

    rules = rules_by_alert(RenderOptions())
    for c in S.ALERT_CONDITIONS:
        [rule] = [r for r in rules[c.alert] if r["labels"]["severity"] == c.severity]
        expr = str(rule["expr"])
        assert S.SLIS[c.sli].metric in expr, (c.alert, c.severity)
        assert S.THRESHOLDS[c.threshold].metric in expr, (c.alert, c.severity)
        # The expression's own clauses start a line; a held series' `unless up` does not.
        head, *rest = re.split(r"\n\s*unless", expr)
        if c.at_least:  # a model-level alert: so many features at once
            assert "count by" in head and f">= {c.at_least}" in head
        elif c.per_feature:  # per feature, standing down while the model-level one fires
            assert "count by" not in head
            assert f">= {S.DRIFT_STORM_FEATURES}" in "".join(rest)
    # Every drift and quality alert is covered.
    drift = {a for a, group in rules.items() for r in group if "threshold" in str(r["expr"])}
    assert drift == {c.alert for c in S.ALERT_CONDITIONS}


def test_the_backtests_table_of_alert_conditions_names_every_one() -> None:
    slis_md = (ROOT / "docs" / "slis.md").read_text(encoding="utf-8")
    table = slis_md.split('<a id="backtests"></a>', 1)[1].split("**Flags and pages.**", 1)[0]
    for c in S.ALERT_CONDITIONS:
        row = next((line for line in table.splitlines() if line.startswith(f"| `{c.alert}`")), "")
        assert f"`{S.SLIS[c.sli].key}" in row or c.sli == S.FEATURE_PSI, (c.alert, row)
