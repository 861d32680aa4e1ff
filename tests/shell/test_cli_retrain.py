"""A configured k that the live model does not have: warned about everywhere, with the
command that retrains deliberately (``snapshots retrain``), which runs as printed."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from monitor.bootstrap import build_app, k_mismatches, load_settings
from monitor.cli import main
from monitor.store.memory import MemorySnapshotStore
from tests.fakes import blobs
from tests.store._store_factories import make_snapshot

CENTERS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0], [4.0, 4.0, 0.0]])


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def write_config(cfg: Path, data: Path, k: Any, retrain: str = "manual", **more: Any) -> None:
    model = {
        "name": "shop",
        "features": ["a", "b", "c"],
        "k": k,
        "window": "1h",
        "schedule": {"interval": "5m"},
        "source": {"kind": "files", "path": str(data), "pattern": "*.csv"},
        "training": {"n_init": 2, "silhouette_sample": 500},
        "retrain": retrain,
        **more,
    }
    cfg.write_text(yaml.safe_dump({"daemon": {"state_dir": "state"}, "models": [model]}))


@pytest.fixture
def three(tmp_path: Path) -> tuple[Path, Path]:
    """A model trained with k=3 (v1 live), whose configuration now asks for k=4."""
    data = tmp_path / "data"
    data.mkdir()
    path = data / "w1.csv"
    np.savetxt(path, blobs(1200, CENTERS, seed=1), delimiter=",", header="a,b,c", comments="")
    os.utime(path, (time.time() - 100,) * 2)
    cfg = tmp_path / "monitor.yaml"
    write_config(cfg, data, 3)
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0
    write_config(cfg, data, 4)
    return cfg, tmp_path / "state"


def printed_command(output: str, prefix: str) -> list[str]:
    """The arguments of the kmeans-monitor command that follows ``prefix`` in ``output``."""
    line = next(ln for ln in output.splitlines() if prefix in ln)
    words = shlex.split(line.split(prefix, 1)[1])
    assert words[0] == "kmeans-monitor"
    end = words.index("(pending;") if "(pending;" in words else len(words)
    return words[1:end]


def test_check_config_and_evaluate_warn_with_the_command_to_retrain(
    three: tuple[Path, Path],
) -> None:
    cfg, state = three
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == 0
    expected = (
        "warning: model 'shop': the configuration asks for k=4 but the live model v1 has k=3, "
        "which runs keep until a new reference is trained; retrain with: kmeans-monitor "
        f"snapshots retrain shop --config {cfg.resolve()} --state-dir {state.resolve()} "
        "(pending; --live makes it live at once)"
    )
    assert checked.stderr.strip() == expected
    evaluated = invoke("evaluate", "--config", str(cfg))
    assert evaluated.exit_code == 0
    assert evaluated.stdout.splitlines()[1].strip() == expected
    as_json = json.loads(invoke("evaluate", "--config", str(cfg), "--json").stdout)
    assert as_json[0]["k_warning"] == expected.removeprefix("warning: ")
    # Under on-drift the next promotion retires a pending version (helper-77): --live.
    write_config(cfg, cfg.parent / "data", 4, retrain="on-drift")
    warned = invoke("check-config", str(cfg)).stderr.strip()
    assert warned.endswith(f"--state-dir {state.resolve()} --live"), warned


def test_the_daemon_logs_the_warning_at_start_up(
    three: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cfg, _ = three
    with caplog.at_level(logging.WARNING, logger="monitor"):
        app = build_app(load_settings(cfg), config_path=cfg)
    app.close()
    assert list(app.k_warnings) == ["shop"]
    assert [r.getMessage() for r in caplog.records] == [app.k_warnings["shop"]]


def test_the_printed_retrain_then_approve_run_as_printed(three: tuple[Path, Path]) -> None:
    cfg, _ = three
    warned = invoke("check-config", str(cfg)).stderr
    retrained = invoke(*printed_command(warned, "retrain with: "))
    assert retrained.exit_code == 0, retrained.output
    assert "training shop on its reference period" in retrained.stderr
    assert "model shop: trained v2 (k=4) on " in retrained.stdout
    assert "it awaits approval (live stays v1)." in retrained.stdout
    listing = json.loads(invoke("snapshots", "list", "--config", str(cfg), "--json").stdout)
    assert [(v["version"], v["state"], v["k"], v["reason"]) for v in listing["shop"]] == [
        (1, "live", 3, "initial"),
        (2, "pending", 4, "manual"),
    ]
    # Until it is approved, check-config points to it, not to another retrain (it said
    # "retrain with" while the pending v2 was what it asked for).
    [warning] = invoke("check-config", str(cfg)).stderr.splitlines()
    assert warning.startswith("warning: model 'shop': the configuration asks for k=4 but the")
    assert "; the pending v2 does; approve it with: kmeans-monitor snapshots approve" in warning
    command = printed_command(warning, "approve it with: ")
    assert command == printed_command(retrained.stdout, "approve with: ")
    approved = invoke(*command)
    assert approved.exit_code == 0, approved.output
    assert "live v1 -> v2" in approved.stdout
    # The configuration and the live model agree again: no warning anywhere.
    assert invoke("check-config", str(cfg)).stderr == ""
    evaluated = invoke("evaluate", "--config", str(cfg))
    assert "warning" not in evaluated.output and " v2 " in evaluated.stdout


def test_a_drifting_run_keeps_the_version_snapshots_retrain_stored(
    three: tuple[Path, Path],
) -> None:
    # Helper-77: under manual, the next drifting run replaced the retrained k=4 version
    # with a candidate of the live model's k=3, and the approve printed for it failed.
    cfg, _ = three
    retrained = invoke("snapshots", "retrain", "shop", "--config", str(cfg))
    assert retrained.exit_code == 0, retrained.output
    shifted = cfg.parent / "data" / "w2.csv"
    np.savetxt(shifted, blobs(1200, CENTERS + 3.0, seed=2), delimiter=",", header="a,b,c",
               comments="")  # fmt: skip
    evaluated = invoke("evaluate", "--config", str(cfg))
    assert evaluated.exit_code == 0, evaluated.output
    assert "the pending v2 of snapshots retrain is kept for approval" in evaluated.stdout
    listing = json.loads(invoke("snapshots", "list", "--config", str(cfg), "--json").stdout)
    assert [(v["version"], v["state"], v["k"]) for v in listing["shop"]] == [
        (1, "live", 3),
        (2, "pending", 4),
    ]
    approved = invoke(*printed_command(retrained.stdout, "approve with: "))
    assert approved.exit_code == 0, approved.output


def test_a_retrain_over_flagged_runs_says_so(three: tuple[Path, Path]) -> None:
    # Helper-80: retrained as check-config advised right after an incident, the version
    # learned the broken windows (centroid drift 3211 against the live one), unsaid.
    cfg, _ = three
    clean = invoke("snapshots", "retrain", "shop", "--config", str(cfg))
    assert clean.exit_code == 0 and "warning" not in clean.stderr
    shifted = cfg.parent / "data" / "w2.csv"
    np.savetxt(shifted, blobs(1200, CENTERS + 3.0, seed=2), delimiter=",", header="a,b,c",
               comments="")  # fmt: skip
    assert "[flag: " in invoke("evaluate", "--config", str(cfg)).stdout
    again = invoke("snapshots", "retrain", "shop", "--config", str(cfg))
    assert again.exit_code == 0, again.output
    assert "warning: 1 run(s) of this period were flagged (the latest ending " in again.stderr
    assert "v3 learned their windows; compare it before approving (" in again.stderr
    diff = printed_command(again.stderr.split("), or retrain", 1)[0], "approving (")
    assert diff[:5] == ["snapshots", "diff", "shop", "1", "3"]
    assert invoke(*diff).exit_code == 0
    # Made live at once (the advice under on-drift), it says so (helper-81).
    live = invoke("snapshots", "retrain", "shop", "--config", str(cfg), "--live")
    assert "v4 learned their windows; it is live: compare it with v1 (" in live.stderr


def test_a_retrain_says_which_pending_version_it_retires(three: tuple[Path, Path]) -> None:
    cfg, _ = three
    assert invoke("snapshots", "retrain", "shop", "--config", str(cfg)).exit_code == 0
    again = invoke("snapshots", "retrain", "shop", "--config", str(cfg))
    assert again.exit_code == 0, again.output
    # Helper-77: v2 went from pending to retired without a word.
    assert "it awaits approval (live stays v1; it retires the pending v2)." in again.stdout
    listing = json.loads(invoke("snapshots", "list", "--config", str(cfg), "--json").stdout)
    assert [(v["version"], v["state"]) for v in listing["shop"]] == [
        (1, "live"),
        (2, "retired"),
        (3, "pending"),
    ]


def test_retrain_live_makes_the_new_version_live_at_once(three: tuple[Path, Path]) -> None:
    cfg, _ = three
    result = invoke("snapshots", "retrain", "shop", "--config", str(cfg), "--live")
    assert result.exit_code == 0, result.output
    assert "trained v2 (k=4)" in result.stdout and "live v1 -> v2." in result.stdout
    shown = json.loads(invoke("snapshots", "show", "--config", str(cfg), "shop").stdout)
    assert (shown["version"], shown["k"], shown["parent_version"]) == (2, 4, 1)


def test_retrain_errors(tmp_path: Path, three: tuple[Path, Path]) -> None:
    cfg, state = three
    no_config = invoke("snapshots", "retrain", "shop", "--state-dir", str(state))
    assert no_config.exit_code == 2 and "snapshots retrain needs --config FILE" in no_config.output
    unknown = invoke("snapshots", "retrain", "nope", "--config", str(cfg))
    assert unknown.exit_code == 2 and "no model named 'nope'; configured: shop" in unknown.output
    # A source that cannot be read: a failed retrain (exit 1), nothing stored.
    write_config(cfg, tmp_path / "missing", 4)
    failed = invoke("snapshots", "retrain", "shop", "--config", str(cfg))
    assert failed.exit_code == 1, failed.output
    started, error = failed.stderr.splitlines()  # the note that training starts, the error
    assert started.startswith("training shop on its reference period")
    assert error.startswith("error: retrain failed (source_unavailable): files source of model")
    # Rows that make no model fail it the same way (they exited 2, as a usage error).
    for text, reason in [("a,b,c\n1,2,3\n", "too_few_rows"), ("a,b,c\n1,x,3\n", "schema")]:
        (tmp_path / "few").mkdir(exist_ok=True)
        (tmp_path / "few" / "w.csv").write_text(text)
        write_config(cfg, tmp_path / "few", 4)
        failed = invoke("snapshots", "retrain", "shop", "--config", str(cfg))
        assert failed.exit_code == 1, failed.output
        assert failed.stderr.splitlines()[-1].startswith(f"error: retrain failed ({reason}): ")
    listing = json.loads(invoke("snapshots", "list", "--config", str(cfg), "--json").stdout)
    assert [v["version"] for v in listing["shop"]] == [1]


@pytest.mark.parametrize(
    ("k", "warned"),
    [(3, False), (4, True), ({"min": 2, "max": 3}, False), ({"min": 4, "max": 6}, True)],
)
def test_k_mismatches_compares_the_live_k_with_a_fixed_k_or_a_range(
    tmp_path: Path, k: Any, warned: bool
) -> None:
    cfg = tmp_path / "monitor.yaml"
    # As the snapshots have: no seasonality, no calibration.
    write_config(cfg, tmp_path, k, seasonality="none", thresholds={"mode": "fixed"})
    store = MemorySnapshotStore()
    abc = ("a", "b", "c")  # the configured features
    store.save(make_snapshot("shop", k=3, d=3, features=abc), state="live")
    # Only the live version counts.
    store.save(make_snapshot("shop", k=5, d=3, features=abc), state="pending")
    found = k_mismatches(load_settings(cfg), store, cfg)
    assert bool(found) is warned
    if isinstance(k, dict) and warned:
        assert "asks for k in [4, 6] but the live model v1 has k=3" in found["shop"]
    # A live model of other features: warned of whatever k, with the retrain to make live.
    other = MemorySnapshotStore()
    other.save(make_snapshot("shop", k=3, d=3, features=("f0", "f1", "f2")), state="live")
    [warning] = k_mismatches(load_settings(cfg), other, cfg).values()
    assert "reads the features ['a', 'b', 'c'] but the live model v1 reads ['f0'" in warning
    assert warning.endswith(" --live")
    # No model yet, or a model of another name: nothing to compare.
    assert k_mismatches(load_settings(cfg), MemorySnapshotStore(), None) == {}


def test_a_configured_metric_the_live_model_lacks_leaves_its_runs_as_they_were(
    three: tuple[Path, Path],
) -> None:
    # helper-93: the live euclidean model was scored in cosine space (PSI 6.3 for 0.9,
    # outliers 0.35 for 0.07), paged on four SLIs and, under on-drift, was replaced.
    cfg, _ = three
    data = cfg.parent / "data"

    def run(**more: Any) -> dict[str, Any]:
        write_config(cfg, data, 3, retrain="on-drift", **more)
        result = invoke("evaluate", "--config", str(cfg), "--dry-run", "--json")
        assert result.exit_code == 0, result.output
        [run] = json.loads(result.stdout)
        return dict(run)

    as_trained, cosine = run(), run(metric="cosine")
    # The SLIs of the live model on the window. Those of the candidate and the sampled
    # silhouette take a seed from the run's time, which a loaded machine moved between
    # the two runs (a CI run: silhouette 0.589 and 0.584).
    scored = ("feature_psi_max", "label_psi", "outlier_ratio", "empty_clusters")
    assert [cosine["slis"][s] for s in scored] == [as_trained["slis"][s] for s in scored]
    assert cosine["feature_psi"] == as_trained["feature_psi"] and cosine["feature_psi"]


def test_versions_of_reordered_features_are_diffed_feature_by_feature(
    three: tuple[Path, Path],
) -> None:
    # helper-93: after a retrain on reordered features, the printed diff refused them
    # ("different features"), exit 2.
    cfg, _ = three
    data = cfg.parent / "data"
    write_config(cfg, data, 3, features=["c", "a", "b"])
    assert invoke("snapshots", "retrain", "shop", "--config", str(cfg), "--live").exit_code == 0
    diff = invoke("snapshots", "diff", "--config", str(cfg), "shop", "1", "2")
    assert diff.exit_code == 0, diff.output
    # The same rows trained again (k=3 on four blobs may settle elsewhere, so the centres
    # may move): each feature's sample falls in its own bins, compared column by column;
    # columns taken in v2's order put c's values in a's bins.
    psi = re.findall(r"^  ([abc]) +([0-9.]+)$", diff.output, re.M)
    assert [f for f, _ in psi] == ["a", "b", "c"], diff.output
    assert all(float(v) < 0.05 for _, v in psi), diff.output


def test_a_rollback_to_the_parent_on_other_features_is_refused_as_with_to(
    three: tuple[Path, Path],
) -> None:
    # t12: after a retrain on renamed features, `rollback --to 1` was refused but the
    # plain rollback (to the parent, v1) made it live, exit 0, and every run failed.
    cfg, state = three
    write_config(cfg, cfg.parent / "data", 3, features=["c", "a", "b"])
    assert invoke("snapshots", "retrain", "shop", "--config", str(cfg), "--live").exit_code == 0
    for more in ([], ["--to", "1"]):
        refused = invoke("snapshots", "rollback", "shop", "--config", str(cfg), *more)
        assert refused.exit_code == 2, refused.output
        [line] = refused.stderr.splitlines()
        assert line.startswith("error: v1 of model 'shop' reads the features ['a', 'b', 'c']")
    listed = json.loads(invoke("snapshots", "list", "--config", str(cfg), "--json").stdout)
    assert {v["version"]: v["state"] for v in listed["shop"]} == {1: "retired", 2: "live"}
    # Without the configuration there is nothing to compare with: as before.
    back = invoke("snapshots", "rollback", "shop", "--state-dir", str(state))
    assert back.exit_code == 0 and "live v2 -> v1" in back.output


def test_a_seasonality_or_time_zone_the_live_model_lacks_is_warned_of(
    three: tuple[Path, Path],
) -> None:
    cfg, _ = three  # v1: daily phases in UTC (the default reference, a day, is one cycle)
    data = cfg.parent / "data"
    shown = json.loads(invoke("snapshots", "show", "--config", str(cfg), "shop").stdout)
    assert shown["seasonality"] == {"cycle": "daily", "timezone": "UTC"}
    # The thresholds a calibrated run compares with, by window size (the `thresholds`
    # field holds the configured values, which helper-72 took for the runs').
    calibrated = shown["calibrated"]
    assert calibrated["false_alarm_rate"] == 0.01
    sizes = [int(n) for n in calibrated["by_rows"]]
    assert sizes == sorted(sizes) and len(sizes) >= 2
    assert all("centroid_drift_se" in row for row in calibrated["by_rows"].values())
    listed = json.loads(invoke("snapshots", "list", "--config", str(cfg), "--json").stdout)
    assert listed["shop"][0]["seasonality"] == shown["seasonality"]
    cases = [
        ({"timezone": "America/New_York"}, "daily phases in America/New_York", "daily phases"),
        ({"seasonality": "none"}, "no seasonality", "daily phases"),
        ({"seasonality": "weekly", "reference": {"window": "7d"}}, "weekly phases", "daily"),
    ]
    for more, asks, has in cases:
        write_config(cfg, data, 3, **more)
        [warning] = invoke("check-config", str(cfg)).stderr.splitlines()
        assert f"asks for {asks}" in warning and f"the live model v1 has {has}" in warning
        assert "retrain with: kmeans-monitor snapshots retrain shop" in warning
    # What else only training reads (helper-77): the window the reference was cut into,
    # the calibration's rate and the configured thresholds, stored with the model.
    for more, asks, has in [
        ({"window": "30m"}, "windows of 30m", "reference windows of 1h"),
        ({"metric": "cosine"}, "metric cosine", "metric euclidean"),  # helper-93
        ({"thresholds": {"false_alarm_rate": 0.05}}, "false_alarm_rate 0.05",
         "false_alarm_rate 0.01"),
        # A floor in every mode (a threshold the calibration replaces is no change: below).
        ({"thresholds": {"feature_psi_critical": 0.5}},
         "other thresholds (feature_psi_critical)", "those it was trained with"),
    ]:  # fmt: skip
        write_config(cfg, data, 3, **more)
        [warning] = invoke("check-config", str(cfg)).stderr.splitlines()
        assert f"asks for {asks} but the live model v1 has {has}, which runs keep" in warning
        assert "retrain with: kmeans-monitor snapshots retrain shop" in warning
    # t12: what a promotion's training applies, where k is kept: said, and that it will be.
    for more, asks, has in [
        ({"scaling": "robust"}, "scaling robust", "scaling standard"),
        ({"thresholds": {"outlier_quantile": 0.9}}, "outlier_quantile 0.9",
         "outlier_quantile 0.99"),
    ]:  # fmt: skip
        write_config(cfg, data, 3, **more)
        [warning] = invoke("check-config", str(cfg)).stderr.splitlines()
        assert f"asks for {asks} but the live model v1 has {has}, which runs keep" in warning
        assert f"(the next promotion or retrain applies {asks}); retrain with" in warning
    # A reference period shorter than the one trained on (v1 read one window of 1h).
    write_config(cfg, data, 3, window="10m", reference={"window": "20m"})
    lines = invoke("check-config", str(cfg)).stderr.splitlines()
    [warning] = [ln for ln in lines if "live model" in ln]  # and: a period of few windows
    assert (
        "windows of 10m and a reference period of 20m but the live model v1 has daily "
        "phases in UTC and reference windows of 1h and a reference period of 1h, which "
        "runs keep until a new "
        "reference is trained (the next promotion or retrain applies a reference period of "
        "20m); retrain with" in warning
    ), warning
    # Helper-78: in mode calibrated the calibration replaces label_psi whatever the file
    # says, and a retrain changed nothing; in mode auto it is a floor, and counts.
    write_config(cfg, data, 3, thresholds={"label_psi": 3.0})
    assert invoke("check-config", str(cfg)).stderr == ""
    write_config(cfg, data, 3, thresholds={"mode": "auto", "label_psi": 3.0})
    assert "other thresholds (label_psi)" in invoke("check-config", str(cfg)).stderr
    # Every change is named, in one clause (helper-78: k and the window, only k was).
    write_config(cfg, data, 4, window="30m")
    [warning] = invoke("check-config", str(cfg)).stderr.splitlines()
    assert (
        "asks for k=4 and windows of 30m but the live model v1 has k=3 and reference windows "
        "of 1h, which runs keep until a new reference is trained; retrain with" in warning
    )
    # A pending version is pointed to only when it is what the file asks in every part
    # (helper-78: one of other windows was offered for a changed threshold).
    write_config(cfg, data, 3, window="30m")
    assert invoke("snapshots", "retrain", "shop", "--config", str(cfg)).exit_code == 0
    write_config(cfg, data, 3, thresholds={"feature_psi_critical": 0.5})
    [warning] = invoke("check-config", str(cfg)).stderr.splitlines()
    assert "other thresholds (feature_psi_critical)" in warning and "approve" not in warning
    write_config(cfg, data, 3)
    # Both k and the phases: one warning that names both.
    write_config(cfg, data, 4, timezone="Europe/Paris")
    [warning] = invoke("check-config", str(cfg)).stderr.splitlines()
    assert (
        "asks for k=4 and daily phases in Europe/Paris but the live model v1 has k=3 and "
        "daily phases in UTC, which runs keep" in warning
    )
    # A zone that reads as UTC all year compares as UTC: nothing to warn of; nor does
    # another name of the live model's zone (US/Eastern of America/New_York).
    write_config(cfg, data, 3, timezone="Etc/UTC")
    assert invoke("check-config", str(cfg)).stderr == ""
    write_config(cfg, data, 3, timezone="America/New_York")
    warned = invoke("check-config", str(cfg)).stderr
    retrained = invoke(*printed_command(warned, "retrain with: "), "--live")
    assert retrained.exit_code == 0, retrained.output
    write_config(cfg, data, 3, timezone="US/Eastern")
    assert invoke("check-config", str(cfg)).stderr == ""
    write_config(cfg, data, 3, timezone="America/Chicago")  # another clock: warned
    assert "asks for daily phases in America/Chicago" in invoke("check-config", str(cfg)).stderr


def test_a_model_moved_aside_never_gets_a_version_number_the_history_knows(
    three: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # Helper-110: with state/snapshots/shop moved aside (the way to start a model again),
    # the next first run stored a new "v1" while the history kept the runs of the old v1
    # and v2: history, diff, approvals and rollbacks naming v1 meant two models.
    cfg, state = three
    assert invoke("snapshots", "retrain", "shop", "--config", str(cfg), "--live").exit_code == 0
    (state / "snapshots" / "shop").rename(state / "snapshots" / "shop.bad")
    with caplog.at_level(logging.INFO, logger="monitor"):
        evaluated = invoke("evaluate", "--config", str(cfg))
    assert evaluated.exit_code == 0, evaluated.output
    assert " v3 " in evaluated.stdout and "initial reference model" in evaluated.stdout
    said = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert said == [
        "model=shop: stored v3, not v1: the history records versions up to v2, which the "
        "snapshot store no longer holds (a model directory moved aside, or an older backup "
        "restored); v1-v2 are skipped so that no version number names two models"
    ]
    caplog.clear()
    # The retrain and the approval that follows number and name the same way.
    retrained = invoke("snapshots", "retrain", "shop", "--config", str(cfg))
    assert retrained.exit_code == 0, retrained.output
    assert "model shop: trained v4 (k=4)" in retrained.stdout
    assert not [r for r in caplog.records if "skipped" in r.getMessage()]  # said once
    approved = invoke(*printed_command(retrained.stdout, "approve with: "))
    assert approved.exit_code == 0 and "live v3 -> v4" in approved.stdout
    listing = json.loads(invoke("snapshots", "list", "--config", str(cfg), "--json").stdout)
    assert [(v["version"], v["state"]) for v in listing["shop"]] == [(3, "retired"), (4, "live")]
    runs = invoke("history", "shop", "--config", str(cfg), "--json")
    assert runs.exit_code == 0, runs.output
    assert [r["live_version"] for r in json.loads(runs.stdout)["runs"]] == [1, 3]


def test_a_retrain_of_a_model_moved_aside_numbers_after_the_history(
    three: tuple[Path, Path],
) -> None:
    cfg, state = three
    (state / "snapshots" / "shop").rename(state / "shop.bad")
    retrained = invoke("snapshots", "retrain", "shop", "--config", str(cfg))
    assert retrained.exit_code == 0, retrained.output
    # No live version left: the retrain is live at once, numbered after the old v1.
    assert "model shop: trained v2 (k=4)" in retrained.stdout


@pytest.mark.parametrize(
    ("errno_", "why"),
    [
        (30, "Read-only file system: {where}"),
        (28, "No space left on device: {where}: is its file system full? free space there"),
        (13, "Permission denied: {where}"),
    ],
)
def test_retrain_refuses_a_state_directory_it_cannot_write_before_training(
    three: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, errno_: int, why: str
) -> None:
    # It trained (18 s in T14's test, hours on a long reference) and only then failed to
    # store the version: evaluate and run refuse such a directory up front.
    from types import SimpleNamespace

    from monitor import bootstrap

    cfg, state = three

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno_, os.strerror(errno_))

    def trained(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("trained before refusing")

    monkeypatch.setattr(bootstrap, "tempfile", SimpleNamespace(TemporaryFile=refused))
    monkeypatch.setattr(bootstrap, "train_reference", trained)
    done = invoke("snapshots", "retrain", "shop", "--config", str(cfg))
    assert done.exit_code == 2, done.output
    where = f"{state}/snapshots"
    assert done.stderr == (
        f"error: daemon.state_dir: cannot use the state directory {state}: "
        f"{why.format(where=where)}\n"
    )


def test_a_retrain_whose_version_cannot_be_stored_failed_as_a_run_at_store(
    three: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # It exited 2 (a usage error) where evaluate's run failing at store exits 1, and the
    # README says a retrain that failed exits 1 (T14 finding 7).
    from monitor.errors import StoreError
    from monitor.store import DirectorySnapshotStore

    cfg, _ = three

    def full(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("cannot write a snapshot of model 'shop': No space left on device")

    monkeypatch.setattr(DirectorySnapshotStore, "save", full)
    done = invoke("snapshots", "retrain", "shop", "--config", str(cfg))
    assert done.exit_code == 1, done.output
    assert done.stderr.splitlines()[-1] == (
        "error: retrain failed (store): cannot write a snapshot of model 'shop': "
        "No space left on device"
    )
