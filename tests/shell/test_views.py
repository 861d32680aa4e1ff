"""The pages' data: states against the run's thresholds, since when from the history, the
versions and the commands, and the shape the templates read (tests/render)."""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import re
import shlex
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from monitor.bootstrap import _restore
from monitor.cli import main as cli
from monitor.errors import LivePointerError, StoreError
from monitor.explain import explain
from monitor.exporter import ModelSpec, MonitorState
from monitor.http import HttpServer, Routes
from monitor.records import Actor, Evaluation
from monitor.render import alert_names
from monitor.store.memory import MemoryHistory, MemorySnapshotStore
from monitor.store.snapshots import DirectorySnapshotStore
from monitor.timestamps import format_time
from monitor.views import ModelPages, sli_state
from tests.render.test_render_pages import _view
from tests.store._store_factories import make_evaluation, make_failure, make_snapshot

T0 = 1_700_000_000.0
SPEC = ModelSpec("m1", ("f0", "f1"), 60.0, 30.0, 86400.0, 0.99)
THRESHOLDS = {"feature_psi_warning": 0.1, "feature_psi_critical": 0.25, "outlier_ratio": 0.05}


@pytest.mark.parametrize(
    ("sli", "value", "thresholds", "state"),
    [
        ("feature_psi_max", 0.05, THRESHOLDS, "ok"),
        ("feature_psi_max", 0.1, THRESHOLDS, "ok"),  # alerts fire strictly above
        ("feature_psi_max", 0.2, THRESHOLDS, "warning"),
        ("feature_psi_max", 0.3, THRESHOLDS, "critical"),
        ("silhouette", 0.4, {"silhouette_min": 0.5}, "warning"),  # bad below
        ("silhouette", 0.6, {"silhouette_min": 0.5}, "ok"),
        ("label_psi", 9.0, {}, "ok"),  # no threshold at this size: not a drift signal
        ("inertia", 1e9, THRESHOLDS, "ok"),  # descriptive: no alert reads it
    ],
)
def test_sli_state_is_the_worst_alert_condition_met(
    sli: str, value: float, thresholds: dict[str, float], state: str
) -> None:
    assert sli_state(sli, value, thresholds) == state


def _ev(at: float, psi: float, **changes: Any) -> Evaluation:
    return make_evaluation(
        "m1",
        evaluated_at=at,
        live_version=1,
        candidate_version=None,
        slis={"feature_psi_max": psi, "outlier_ratio": 0.01, "silhouette": 0.7},
        feature_psi={"f0": 0.01, "f1": psi},
        cluster_sizes=(200, 180, 120),
        cluster_shares=(0.4, 0.36, 0.24),
        centroid_drift=(0.1, 0.0, 0.25),
        thresholds=THRESHOLDS,
        **changes,
    )


@pytest.fixture
def pages(tmp_path: Path) -> tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore]:
    state = MonitorState([SPEC], started_at=T0, version="x")
    history, store = MemoryHistory(), MemorySnapshotStore()
    live = store.save(make_snapshot("m1", k=3, d=2, version=0), state="live")
    store.save(make_snapshot("m1", k=3, d=2, version=0, seed=1, parent_version=1), state="pending")
    # psi of f1 over the runs: ok, warning, critical, critical, critical.
    runs = [_ev(T0 + 60 * i, psi) for i, psi in enumerate((0.05, 0.2, 0.3, 0.4, 0.5))]
    for ev in runs:
        history.append(ev)
    state.record_success(runs[-1], live, duration=1.0, at=runs[-1].evaluated_at)
    clock = lambda: T0 + 600  # noqa: E731
    view = ModelPages(state, history, store, state_dir=tmp_path / "state", clock=clock)
    return view, state, history, store


def test_states_are_judged_with_each_runs_thresholds_and_dated_from_history(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    view = pages[0].model("m1")
    assert view is not None
    assert view["state"] == "critical"
    psi = next(s for s in view["slis"] if s["sli"] == "feature_psi_max")
    assert (psi["value"], psi["state"], psi["since"]) == (0.5, "critical", T0 + 120)
    outliers = next(s for s in view["slis"] if s["sli"] == "outlier_ratio")
    assert (outliers["state"], outliers["since"]) == ("ok", T0)
    # The SLIs with a threshold first, worst on top.
    assert view["slis"][0]["sli"] == "feature_psi_max"
    f1, f0 = view["features"]
    assert (f1["feature"], f1["state"], f1["since"]) == ("f1", "critical", T0 + 120)
    assert (f0["feature"], f0["state"], f0["since"]) == ("f0", "ok", T0)
    assert f1["bins"] is None  # no explanation yet
    assert [r["evaluated_at"] for r in view["runs"]] == [T0 + 240 - 60 * i for i in range(5)]


def test_versions_name_the_exact_commands(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore], tmp_path: Path
) -> None:
    view = pages[0].model("m1")
    assert view is not None
    state_dir = tmp_path / "state"
    assert view["versions"]["live"] == 1 and view["versions"]["pending"] == 2
    assert view["versions"]["approve_command"] == (
        f"kmeans-monitor snapshots approve m1 2 --state-dir {state_dir}"
    )
    assert view["versions"]["diff_command"] == (
        f"kmeans-monitor snapshots diff m1 1 2 --state-dir {state_dir}"
    )
    assert view["versions"]["rollback_command"] is None  # the live version has no parent
    assert view["links"]["dashboard"] == (
        "http://127.0.0.1:3000/d/kmeans-monitor-oncall/?var-job=kmeans-monitor&var-model=m1"
    )


def test_a_failing_model_says_since_when(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    view_, state, history, _ = pages
    _fail(history, state, [T0 + 300 + 60 * i for i in range(3)])
    view = view_.model("m1")
    assert view is not None
    assert view["state"] == "failing"
    assert view["failing_since"] == T0 + 300
    assert [f["at"] for f in view["failures"]] == [T0 + 420, T0 + 360, T0 + 300]
    assert view["latest"]["stale"] is True
    [entry] = view_.index()
    assert entry["state"] == "failing"
    assert entry["latest_failure"] == view["failures"][0]  # the index says the newest


def test_a_model_waiting_for_its_reference_rows_says_until_when_not_failing(
    tmp_path: Path,
) -> None:
    # Helper-77: the page said "failing" in red while the runs waited for a new
    # deployment's rows and the alerts held off.
    state = MonitorState([SPEC], started_at=T0, version="x")
    history = MemoryHistory()
    message = "the source's data begin inside the reference period ..."
    history.append_failure(make_failure("m1", at=T0, reason="awaiting_reference", message=message))
    state.record_failure("m1", "awaiting_reference", duration=0.1, at=T0, ready_at=T0 + 3600)
    clock = [T0 + 60]
    pages = ModelPages(
        state, history, MemorySnapshotStore(), state_dir=tmp_path, clock=lambda: clock[0]
    )
    view = pages.model("m1")
    assert view is not None
    assert (view["state"], view["awaiting_until"]) == ("awaiting reference", T0 + 3600)
    assert pages.index()[0]["awaiting_until"] == T0 + 3600
    text = _text(pages.model_html("m1"))
    assert (
        "Waiting for the reference period's rows: the runs train the model from about "
        "23:13:20 UTC (in 59m). Until then they fail as awaiting_reference, which "
        "no run-health alert counts (failures of another reason before them still do). "
        f"Latest: {message}"
    ) in text
    assert "The latest run failed" not in text
    assert "awaiting reference until 23:13:20 UTC" in _text(pages.index_html())
    # After a restart the time is not known until the next run (helper-79: "failing").
    restarted = MonitorState([SPEC], started_at=T0 + 120, version="x")
    restarted.restore("m1", None, failed_since=True, last_failure=T0 + 0.1)
    again = ModelPages(
        restarted, history, MemorySnapshotStore(), state_dir=tmp_path, clock=lambda: clock[0]
    )
    view = again.model("m1")
    assert view is not None
    assert (view["state"], view["awaiting_until"]) == ("awaiting reference", None)
    assert "from about the time the latest failure names" in _text(again.model_html("m1"))
    # Once the time has passed and the runs still fail, it is failing.
    clock[0] = T0 + 3601
    view = pages.model("m1")
    assert view is not None and (view["state"], view["awaiting_until"]) == ("failing", None)
    assert "The latest run failed" in _text(pages.model_html("m1"))


def test_explained_windows_carry_histograms_and_moves(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    view_, state, _, _ = pages
    live = state.status("m1").live
    ev = state.status("m1").evaluation
    assert live is not None and ev is not None
    rows = np.random.default_rng(0).normal(size=(300, 2)) * live.scaler.scale + live.scaler.center
    state.set_explanation(explain(live, rows, ev.window_start, ev.window_end))
    view = view_.model("m1")
    assert view is not None
    f1 = view["features"][0]
    assert len(f1["bins"]["current"]) == len(f1["bins"]["edges"]) + 1
    top = view["clusters"][0]
    assert top["cluster"] == 2 and top["drift"] == 0.25  # ranked by drift
    assert len(top["moved"]) == 2 and top["moved"][0]["units"] == "raw"
    moved = top["moved"][0]
    assert moved["shift"] == pytest.approx(moved["mean"] - moved["centre"])


def test_unknown_models_and_alerts_have_no_page(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    view = pages[0]
    assert view.model("nope") is None and view.model_html("nope") is None
    assert view.runbook_html("KMeansNope", "m1") is None
    page = view.runbook_html("KMeansFeatureDrift", "m1")
    assert page is not None and 'id="live"' in page
    assert 'id="live"' not in (view.runbook_html("KMeansFeatureDrift", "nope") or "")


def test_a_runbook_on_a_model_names_the_daemons_configuration_and_state_directory(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore], tmp_path: Path
) -> None:
    # As a daemon started with --config plain.yaml --state-dir state serves it.
    _, state, history, store = pages
    config, state_dir = tmp_path / "plain.yaml", tmp_path / "state"
    daemon = ModelPages(
        state, history, store, state_dir=state_dir, clock=lambda: T0 + 600, config=config
    )
    page = daemon.runbook_html("KMeansCentroidDrift", "m1")
    assert page is not None
    text = html.unescape(page)
    where = f"--config {config} --state-dir {state_dir}"
    assert f"kmeans-monitor snapshots approve {where} m1 2" in text  # Mitigation
    assert f"kmeans-monitor snapshots diff {where} m1 1 2" in text  # Diagnosis
    assert f"kmeans-monitor evaluate {where} --model m1 --json --dry-run" in text
    assert f"kmeans-monitor check-config {config}\n" in text
    assert "/etc/kmeans-monitor/config.yml" not in text


def test_a_runbook_on_a_model_names_the_daemons_own_address(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore], tmp_path: Path
) -> None:
    # A daemon on another port: its pages said `curl http://127.0.0.1:9310/readyz`.
    _, state, history, store = pages
    daemon = ModelPages(
        state,
        history,
        store,
        state_dir=tmp_path,
        clock=lambda: T0 + 600,
        config=tmp_path / "plain.yaml",
        url=lambda: "https://10.0.0.7:19310",
    )
    text = html.unescape(daemon.runbook_html("KMeansEvaluationStale", "m1") or "")
    assert "curl -s https://10.0.0.7:19310/readyz" in text
    assert "curl -s https://10.0.0.7:19310/api/models" in text
    assert "127.0.0.1:9310" not in text
    # A daemon-level alert links with no model (KMeansDaemonDown's ?model=), and an alert
    # may name a model the daemon no longer runs: its address and files all the same.
    for model in (None, "", "gone"):
        page = html.unescape(daemon.runbook_html("KMeansEvaluationStale", model) or "")
        assert "curl -s https://10.0.0.7:19310/readyz" in page, model
        assert "/etc/kmeans-monitor/config.yml" not in page, model
        assert f"kmeans-monitor check-config {tmp_path / 'plain.yaml'}" in page, model


def test_a_broken_pointer_is_logged_once_per_problem_not_per_view(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    view, _, _, store = pages
    problem = ["model 'm1': the pointer LIVE is corrupt: 2 byte(s), not a version number"]

    def broken(model: str) -> int:
        raise LivePointerError(problem[0])

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    monkeypatch.setattr(store, "live_version", broken)
    with caplog.at_level(logging.INFO, logger="monitor.http"):
        for _ in range(4):  # pages, their JSON, the index, a runbook: one line
            assert view.model_html("m1") and view.model("m1") and view.index()
            assert view.runbook_html("KMeansFeatureDrift", "m1")
        assert warnings() == [f"model=m1 cannot read the store's pointers: {problem[0]}"]
        problem[0] = "model 'm1': the pointer LIVE names v7, which is not stored"
        view.model("m1")
        view.model("m1")
        assert len(warnings()) == 2 and problem[0] in warnings()[1]  # another problem
        monkeypatch.undo()
        view.model("m1")
        assert caplog.records[-1].getMessage() == "model=m1 reads the store's pointers again"
        assert len(warnings()) == 2


@pytest.fixture
def broken(tmp_path: Path) -> tuple[ModelPages, DirectorySnapshotStore, Path]:
    """A real store where v1 is live and loaded, v2 retired, v3 pending."""
    state_dir = tmp_path / "state"
    store = DirectorySnapshotStore(state_dir / "snapshots")
    v1 = store.save(make_snapshot("m1", k=3, d=2), state="live")
    store.save(make_snapshot("m1", k=3, d=2, seed=1, parent_version=1))
    store.save(make_snapshot("m1", k=3, d=2, seed=2, parent_version=1), state="pending")
    state = MonitorState([SPEC], started_at=T0, version="x")
    state.set_live(v1)
    view = ModelPages(state, MemoryHistory(), store, state_dir=state_dir, clock=lambda: T0)
    return view, store, state_dir / "snapshots" / "m1"


def _fail(history: MemoryHistory, state: MonitorState, times: list[float]) -> None:
    """Runs of m1 failed at ``times`` (source_unavailable), in the history and the state."""
    for at in times:
        history.append_failure(make_failure("m1", at=at, reason="source_unavailable"))
        state.record_failure("m1", "source_unavailable", duration=0.1, at=at)


def _text(page: str | None) -> str:
    """A page's text, as read."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page or "")).split())


def _typed(command: str) -> Any:
    """A printed command, run as typed."""
    assert command.startswith("kmeans-monitor ")
    return CliRunner().invoke(cli, shlex.split(command)[1:], catch_exceptions=False)


def _damage(path: Path) -> None:
    """printf xx | dd of=PATH bs=1 seek=1000 conv=notrunc"""
    with path.open("r+b") as f:
        f.seek(1000)
        f.write(b"xx")


def test_a_live_version_that_does_not_load_is_named_with_a_working_rollback(
    broken: tuple[ModelPages, DirectorySnapshotStore, Path],
) -> None:
    pages, store, model_dir = broken
    arrays = model_dir / "v000002" / "arrays.npz"
    _damage(arrays)
    (model_dir / "LIVE").write_text("2")
    text = _text(pages.model_html("m1"))
    why = f"{arrays} is corrupt: its sha256 does not match manifest.json"
    assert f"Live version: 2. Broken: version 2 does not load: {why}." in text
    assert "The daemon still scores" not in text  # it will not follow: v2 does not load
    rollback = "Roll back to version 1, the last live one that loads: kmeans-monitor snapshots"
    assert f"{rollback} rollback" in text
    view = pages.model("m1")
    assert view is not None
    v = view["versions"]
    assert (v["live"], v["loaded"], v["pending"], v["rollback_to"]) == (2, 1, 3, 1)
    # Compared with what loads, not with the broken version: both commands work as typed.
    assert " diff m1 1 3 " in v["diff_command"]
    assert _typed(v["diff_command"]).exit_code == 0
    assert _typed(v["rollback_command"]).exit_code == 0
    assert store.live_version("m1") == 1
    view = pages.model("m1")
    assert view is not None and view["versions"]["live_problem"] is None


def test_the_versions_json_names_the_version_its_details_describe(
    broken: tuple[ModelPages, DirectorySnapshotStore, Path],
) -> None:
    # exB: with the live pointer on a version that does not load, /api/models said
    # "live": 3 beside the created_at and reason of v4, the version the daemon kept loaded.
    pages, store, model_dir = broken
    _damage(model_dir / "v000002" / "arrays.npz")
    (model_dir / "LIVE").write_text("2")
    view = pages.model("m1")
    assert view is not None
    v, loaded = view["versions"], store.load("m1", 1)
    assert (v["live"], v["loaded"]) == (2, 1) and v["live_problem"] is not None
    assert (v["loaded_created_at"], v["loaded_reason"], v["loaded_k"]) == (
        loaded.created_at,
        loaded.reason,
        loaded.k,
    )
    assert not any(key.startswith("live_") for key in v if key != "live_problem")


def test_the_page_and_the_store_name_the_same_rollback_never_a_rejected_candidate(
    tmp_path: Path,
) -> None:
    # exB: with nothing loaded the page named the newest version that loads, a rejected
    # candidate; the store's error named another. One helper now picks for both.
    state_dir = tmp_path / "state"
    store = DirectorySnapshotStore(state_dir / "snapshots")
    store.save(make_snapshot("m1", k=3, d=2), state="live")
    store.save(make_snapshot("m1", k=3, d=2, seed=1, reason="drift", parent_version=1))
    store.set_live("m1", 2)
    store.save(make_snapshot("m1", k=3, d=2, seed=2, reason="drift", parent_version=2))
    _damage(state_dir / "snapshots" / "m1" / "v000001" / "arrays.npz")
    (state_dir / "snapshots" / "m1" / "LIVE").write_text("1")
    state = MonitorState([SPEC], started_at=T0, version="x")  # nothing loaded
    pages = ModelPages(state, MemoryHistory(), store, state_dir=state_dir, clock=lambda: T0)
    view = pages.model("m1")
    assert view is not None
    command = view["versions"]["rollback_command"]
    assert command.startswith("kmeans-monitor snapshots rollback m1 --to 2 ")
    with pytest.raises(LivePointerError, match=re.escape(f"`{command}`")):
        store.load("m1")


def test_the_pages_rollback_is_the_newest_version_a_run_scored_though_none_was_trained_from_it(
    tmp_path: Path,
) -> None:
    # v3 was approved and scored by the runs, and nothing was trained from it yet; the
    # store's parent links alone say only v1 and v2 were live, and the page offered v2.
    state_dir = tmp_path / "state"
    store = DirectorySnapshotStore(state_dir / "snapshots")
    store.save(make_snapshot("m1", k=3, d=2), state="live")
    for v in (2, 3):
        drift = make_snapshot("m1", k=3, d=2, seed=v, reason="drift", parent_version=v - 1)
        store.save(drift, state="pending")
        store.approve("m1", v)
    history = MemoryHistory()
    history.append(dataclasses.replace(_ev(T0 - 60, 0.01), live_version=3))
    _damage(state_dir / "snapshots" / "m1" / "v000001" / "arrays.npz")
    (state_dir / "snapshots" / "m1" / "LIVE").write_text("1")  # a bad restore
    state = MonitorState([SPEC], started_at=T0, version="x")  # nothing loaded
    pages = ModelPages(state, history, store, state_dir=state_dir, clock=lambda: T0)
    view = pages.model("m1")
    assert view is not None and view["versions"]["rollback_to"] == 3


def test_a_live_pointer_that_cannot_be_read_is_named_with_a_working_rollback(
    broken: tuple[ModelPages, DirectorySnapshotStore, Path],
) -> None:
    pages, store, model_dir = broken
    (model_dir / "LIVE").write_text("zz")
    text = _text(pages.model_html("m1"))
    assert (
        "Live version: unreadable. Broken: the live pointer cannot be read: model 'm1': "
        f"the pointer {model_dir / 'LIVE'} is corrupt: 2 byte(s), not a version number. Runs fail"
    ) in text
    assert "The daemon still scores" not in text
    view = pages.model("m1")
    assert view is not None
    v = view["versions"]
    assert (v["live"], v["loaded"], v["rollback_to"]) == (None, 1, 1)
    assert _typed(v["rollback_command"]).exit_code == 0
    assert store.live_version("m1") == 1


def test_a_pending_candidate_that_does_not_load_offers_no_command_that_fails(
    broken: tuple[ModelPages, DirectorySnapshotStore, Path],
) -> None:
    pages, store, model_dir = broken
    arrays = model_dir / "v000003" / "arrays.npz"
    _damage(arrays)
    text = _text(pages.model_html("m1"))
    why = f"{arrays} is corrupt: its sha256 does not match manifest.json"
    assert (
        f"Pending candidate: 3. Broken: version 3 does not load: {why}. It cannot be "
        "approved or compared; reject it, or leave it: the next candidate a run stores "
        "replaces it."
    ) in text
    assert "Live version: 1, trained" in text and "live pointer" not in text  # it is fine
    # approve and diff fail on it as typed: the page offers neither, but a reject that works.
    assert "snapshots approve" not in text and "snapshots diff" not in text
    view = pages.model("m1")
    assert view is not None
    v = view["versions"]
    assert (v["pending"], v["approve_command"], v["diff_command"]) == (3, None, None)
    assert f"Reject the broken candidate (it stays stored, retired): {v['reject_command']}" in text
    # The index says so too, and a runbook does not type the broken version in.
    (entry,) = pages.index()
    assert (entry["pending_version"], entry["pending_problem"]) == (3, v["pending_problem"])
    assert '<a href="/models/m1#pending-problem">3, broken</a>' in pages.index_html()
    runbook = _text(pages.runbook_html("KMeansCentroidDrift", "m1"))
    assert "snapshots approve --state-dir" in runbook and " m1 CANDIDATE_VERSION" in runbook
    assert _typed(v["reject_command"]).exit_code == 0
    assert store.pending_version("m1") is None
    view = pages.model("m1")
    assert view is not None and view["versions"]["pending_problem"] is None
    assert "No candidate waiting for approval." in _text(pages.model_html("m1"))


def test_a_pending_candidate_trained_on_a_period_names_the_period_and_its_rows(
    broken: tuple[ModelPages, DirectorySnapshotStore, Path],
) -> None:
    # exB: "trained on the window 07:35:22 to 07:35:52 (1000 rows)": the run's window,
    # where the candidate was trained on the hour before the run (120,000 rows).
    _, store, model_dir = broken
    end = T0 - 60
    period = {"window_start": end - 3600, "window_end": end, "n_rows": 120_000}
    store.save(make_snapshot("m1", k=3, d=2, seed=4, parent_version=1, **period), state="pending")
    history = MemoryHistory()
    run = {"window_start": end - 30, "window_end": end, "n_rows": 1000}
    history.append(dataclasses.replace(_ev(end, 0.01), candidate_version=4, **run))
    state = MonitorState([SPEC], started_at=T0, version="x")
    state.set_live(store.load("m1", 1))
    pages = ModelPages(state, history, store, state_dir=model_dir.parents[1], clock=lambda: T0)
    text = _text(pages.model_html("m1"))
    assert (
        "Pending candidate: 4, waiting for approval. It was trained on the 1h to "
        "2023-11-14 22:12:20 UTC (120000 rows) by the run at 22:12:20 UTC (1m ago)."
    ) in text
    assert "Reject it instead when that period's rows were a data fault" in text


def test_a_pending_candidate_names_the_window_it_learned_and_can_be_rejected(
    broken: tuple[ModelPages, DirectorySnapshotStore, Path],
) -> None:
    # Helper-72: the page offered only approve for a candidate trained on a unit change.
    # It now says which window the candidate was trained on and what that run had past
    # its thresholds, and offers a reject that works as typed.
    _, store, model_dir = broken
    window = {"window_start": T0 - 3660, "window_end": T0 - 120, "n_rows": 500}
    store.save(make_snapshot("m1", k=3, d=2, seed=4, parent_version=1, **window), state="pending")
    history = MemoryHistory()
    history.append(dataclasses.replace(_ev(T0 - 60, 9.5), candidate_version=4))
    state = MonitorState([SPEC], started_at=T0, version="x")
    state.set_live(store.load("m1", 1))
    pages = ModelPages(state, history, store, state_dir=model_dir.parents[1], clock=lambda: T0)
    view = pages.model("m1")
    assert view is not None
    v = view["versions"]
    assert v["pending_from"] == {
        "evaluated_at": T0 - 60,
        "window_start": T0 - 3660,
        "window_end": T0 - 120,
        "period": None,
        "n_rows": 500,
        "past": [
            {
                "sli": "feature_psi",
                "feature": "f1",
                "value": 9.5,
                "threshold": 0.25,
                "features": None,
            }
        ],
    }
    text = _text(pages.model_html("m1"))
    assert (
        "Pending candidate: 4, waiting for approval. It was trained on the window "
        "2023-11-14 21:12:20 UTC to 2023-11-14 22:11:20 UTC (500 rows) by the run at "
        '22:12:20 UTC (1m ago), whose SLIs were past their thresholds: feature_psi{feature="f1"} '
        "9.5 (threshold 0.25)."
    ) in text
    assert v["approve_command"] in text
    assert (
        "Reject it instead when that window's rows were a data fault the model must not "
        f"learn (a unit change, missing values, a partial outage); it stays stored, retired: "
        f"{v['reject_command']}"
    ) in text
    assert _typed(v["reject_command"]).exit_code == 0
    assert store.pending_version("m1") is None
    # A candidate that no run of the page's history stored (snapshots retrain): no line.
    store.save(make_snapshot("m1", k=3, d=2, seed=3, parent_version=1), state="pending")
    assert store.pending_version("m1") == 5
    view = pages.model("m1")
    assert view is not None and view["versions"]["pending_from"] is None
    text = _text(pages.model_html("m1"))
    assert "It was trained on the window" not in text
    assert "Reject it instead when the rows it was trained on were a data fault" in text


def test_a_pending_pointer_that_cannot_be_read_is_not_called_a_broken_live_one(
    broken: tuple[ModelPages, DirectorySnapshotStore, Path],
) -> None:
    pages, _, model_dir = broken
    (model_dir / "PENDING").write_text("zz")
    text = _text(pages.model_html("m1"))
    pointer = model_dir / "PENDING"
    assert (
        "Pending candidate: unreadable. Broken: the pending pointer cannot be read: the "
        f"pointer {pointer} is corrupt: 2 byte(s), not a version number; remove it "
        f"(`rm {pointer}`): the next drifting run stores a new candidate. It cannot be "
        "approved or compared, and runs fail until the pointer is removed."
    ) in text
    view = pages.model("m1")
    assert view is not None
    v = view["versions"]
    assert (v["live"], v["live_problem"], v["rollback_to"], v["pending"]) == (1, None, None, None)
    assert "snapshots approve" not in text and "snapshots reject" not in text
    assert "Roll back" not in text  # the live version is fine


def test_the_index_says_an_unreadable_live_pointer_is_unreadable_not_none(
    broken: tuple[ModelPages, DirectorySnapshotStore, Path],
) -> None:
    pages, _, model_dir = broken
    (model_dir / "LIVE").write_text("zz")
    (entry,) = pages.index()
    view = pages.model("m1")
    assert view is not None
    assert entry["live_version"] is None
    assert entry["live_problem"] == view["versions"]["live_problem"]
    assert entry["live_problem"].startswith("the live pointer cannot be read: model 'm1'")
    page = pages.index_html()
    # As the model page words it ("Live version: unreadable"), linked to its explanation.
    cell = '<td data-label="live version"><a href="/models/m1#live-problem">unreadable</a></td>'
    assert cell in page
    assert 'id="live-problem"' in (pages.model_html("m1") or "")
    # The pending pointer, readable, is still shown: it was hidden with the live one.
    assert entry["pending_version"] == 3 and '<td data-label="pending">3</td>' in page


def test_the_templates_test_data_has_the_views_shape(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    # tests/render builds pages from hand-made data: it must stay shaped like the real one.
    pages[2].append_failure(make_failure("m1", at=T0 + 30))
    pages[2].append(dataclasses.replace(_ev(T0 + 30, 0.3), candidate_version=2))
    real = pages[0].model("m1")
    assert real is not None

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items() if k != "bins"}
        if isinstance(value, list) and value:
            return [shape(value[0])]
        return None

    made = _view()
    assert shape(real)["versions"] == shape(made)["versions"]
    assert shape(real)["cli"] == shape(made)["cli"]
    assert set(real) == set(made)
    for key in ("slis", "features", "clusters", "runs", "failures"):
        assert set(shape(real[key])[0]) == set(shape(made[key])[0]), key
    assert dataclasses.is_dataclass(pages[1].status("m1"))


def test_an_approval_shows_at_once_and_the_loaded_version_follows(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    view_, state, _, store = pages
    store.approve("m1", 2)
    view = view_.model("m1")
    assert view is not None
    # The pointer moved; the daemon still scores version 1 until it reloads.
    assert (view["versions"]["live"], view["versions"]["loaded"]) == (2, 1)
    assert view["versions"]["pending"] is None and view["versions"]["approve_command"] is None
    text = " ".join(view_.model_html("m1").split())  # type: ignore[union-attr]
    assert "The daemon still scores version 1 and follows within seconds." in text
    state.set_live(store.load("m1", 2), promoted=True)
    view = view_.model("m1")
    assert view is not None and view["versions"]["loaded"] == 2
    assert view["versions"]["rollback_command"] is not None  # v2's parent is v1


def test_the_index_page_lists_the_models_to_look_at_first_on_top(tmp_path: Path) -> None:
    # At 150 models a failing one was found only by reading every row in name order
    # (helper-107): failing first, then the worst SLI state, by name within a state.
    names = ("a-ok", "b-failing", "c-critical", "d-warning", "e-critical", "f-no-run")
    state = MonitorState(
        [dataclasses.replace(SPEC, name=n) for n in names], started_at=T0, version="x"
    )
    history, store = MemoryHistory(), MemorySnapshotStore()
    for name, psi in (("a-ok", 0.05), ("c-critical", 0.3), ("d-warning", 0.2), ("e-critical", 1)):
        live = store.save(make_snapshot(name, k=3, d=2, version=0), state="live")
        ev = dataclasses.replace(_ev(T0, psi), model=name)
        history.append(ev)
        state.record_success(ev, live, duration=1.0, at=T0)
    state.record_failure("b-failing", "source_unavailable", duration=0.1, at=T0)
    pages = ModelPages(state, history, store, state_dir=tmp_path, clock=lambda: T0 + 60)
    assert [m["model"] for m in pages.index()] == list(names)  # the API keeps name order
    page = pages.index_html()
    rows = re.findall(r'<tr><td><a href="/models/([^"]+)">', page)
    assert rows == ["b-failing", "c-critical", "e-critical", "d-warning", "f-no-run", "a-ok"]
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert "6 models: 1 failing, 2 critical, 1 warning, 1 no run yet, 1 ok." in text


def test_a_promotion_put_off_says_until_when_and_why_on_the_page_and_the_api(
    tmp_path: Path,
) -> None:
    # The decision said "v1 kept until ... (T)", but neither /api/models nor the page had
    # a field for it: on call, a drifting model that promoted nothing said neither when
    # it would nor why, but in the free text of one decision.
    from tests.shell.test_reference_period import NOW, hourly, model, run, steady

    m = model(retrain="on-drift", reference={"window": "6h"})
    history = MemoryHistory()
    store = run(m, steady(NOW))[3]
    *_, last = hourly(m, steady(NOW), store, history, range(1, 3))
    spec = dataclasses.replace(SPEC, name="m", features=m.features)
    state = MonitorState([spec], started_at=NOW, version="x")
    state.record_success(last, store.load("m"), duration=1.0, at=last.evaluated_at)
    pages = ModelPages(state, history, store, state_dir=tmp_path, clock=lambda: NOW + 7260)
    routes = Routes(
        registry=CollectorRegistry(),
        ready=lambda: (True, "ready"),
        runbook_html=pages.runbook_html,
        models_json=pages.index,
        model_html=pages.model_html,
        model_json=pages.model,
        index_html=pages.index_html,
    )
    server = HttpServer("127.0.0.1", 19610, routes)
    server.start()
    try:
        [entry] = json.loads(urllib.request.urlopen(f"{server.url}/api/models", timeout=5).read())
        view = json.loads(urllib.request.urlopen(f"{server.url}/api/models/m", timeout=5).read())
        page = urllib.request.urlopen(f"{server.url}/models/m", timeout=5).read().decode()
    finally:
        server.stop()
    until = NOW + 6 * 3600
    why = (
        f"v1 kept until the drift, from {format_time(NOW)}, has lasted the 6h period "
        f"({format_time(until)}): a version trained across the change would take it for noise"
    )
    assert last.decision.endswith(why) and not last.promoted
    assert entry["latest"]["put_off"] == view["latest"]["put_off"] == {"until": until, "why": why}
    assert f"Promotion put off until 14:00:00 UTC (in 3h 59m): {why}." in _text(page)


def test_a_pending_candidate_whose_drift_has_ended_says_so_beside_its_approval(
    tmp_path: Path,
) -> None:
    # Under manual retraining a candidate trained on an incident stayed approvable once
    # the incident had passed, and nothing on the page said the drift had ended.
    history, store = MemoryHistory(), MemorySnapshotStore()
    live = store.save(make_snapshot("m1", k=3, d=2, version=0), state="live")
    store.save(make_snapshot("m1", k=3, d=2, version=0, seed=1, parent_version=1), state="pending")
    history.append(dataclasses.replace(_ev(T0, 0.5), candidate_version=2))  # the incident
    state = MonitorState([SPEC], started_at=T0, version="x")
    pages = ModelPages(state, history, store, state_dir=tmp_path, clock=lambda: T0 + 3600)
    for at in (T0 + 60, T0 + 120):
        history.append(_ev(at, 0.4))  # it still drifts
    state.record_success(_ev(T0 + 120, 0.4), live, duration=1.0, at=T0 + 120)
    view = pages.model("m1")
    assert view is not None and view["versions"]["pending_drift_ended"] is None
    for at in (T0 + 180, T0 + 240):
        history.append(_ev(at, 0.05))  # quiet again
    state.record_success(_ev(T0 + 240, 0.05), live, duration=1.0, at=T0 + 240)
    view = pages.model("m1")
    assert view is not None
    v = view["versions"]
    assert v["pending_drift_ended"] == {"at": T0 + 180, "quiet_runs": 2}
    assert v["approve_command"] is not None  # still approvable: a person decides
    assert (
        "The drift it was trained on ended at 22:16:20 UTC (57m ago): 2 quiet runs since. "
        "Approved, the model would take that drift for the normal: approve it only if the "
        "change is to stay."
    ) in _text(pages.model_html("m1"))


def test_a_history_that_cannot_say_which_versions_were_live_is_logged_once(
    broken: tuple[ModelPages, DirectorySnapshotStore, Path],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The page's rollback target reads the versions the runs saw live; a history that
    # cannot say left the page without a word in the log.
    pages, _, model_dir = broken
    (model_dir / "LIVE").write_text("zz")

    def unreadable(model: str) -> set[int]:
        raise StoreError("history database h.sqlite: database disk image is malformed")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    monkeypatch.setattr(pages._history, "live_versions", unreadable)
    with caplog.at_level(logging.INFO, logger="monitor.http"):
        for _ in range(3):
            view = pages.model("m1")
            assert view is not None and view["versions"]["rollback_to"] == 1
        logged = [w for w in warnings() if "history saw live" in w]
        assert logged == [
            "model=m1 cannot read the versions its history saw live: "
            "history database h.sqlite: database disk image is malformed"
        ]


def test_the_page_and_the_api_say_who_approved_and_rolled_back(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    view, _, _, store = pages
    assert view.model("m1")["versions"]["events"] == []  # type: ignore[index]
    store.approve("m1", 2, by=Actor("alice", "reviewed the diff"))
    store.set_live("m1", 1, by=Actor("bob"))
    events = view.model("m1")["versions"]["events"]  # type: ignore[index]
    assert [(e["action"], e["actor"], e["from_version"], e["to_version"]) for e in events] == [
        ("rollback", "bob", 2, 1),  # the newest first
        ("approve", "alice", 1, 2),
    ]
    assert events[1]["reason"] == "reviewed the diff" and events[1]["at_utc"].endswith("Z")
    text = _text(view.model_html("m1"))
    assert "approve of version 2 (live 1 → 2) by alice: reviewed the diff" in text
    assert "rollback of version 1 (live 2 → 1) by bob" in text


def test_a_log_that_began_after_the_first_version_says_so_as_snapshots_log_does(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore], tmp_path: Path
) -> None:
    # An upgraded store (versions stored by a build that kept no log): the page said
    # nothing of the approvals, rejections and rollbacks an older build had made.
    view, _, _, store = pages
    note = (
        "moves before the log began (made by a kmeans-monitor that did not record them) "
        "are not in it: the runs that made a version live are in `kmeans-monitor history m1`"
    )
    assert view.model("m1")["versions"]["events_log_begins"] == {"at": None, "note": note}  # type: ignore[index]
    text = _text(view.model_html("m1"))
    assert f"No approvals, rejections, rollbacks or promotions recorded; {note}." in text
    store.approve("m1", 2, by=Actor("alice"))
    [event] = store.events("m1")
    begins = view.model("m1")["versions"]["events_log_begins"]  # type: ignore[index]
    assert begins == {"at": event.at, "note": note}
    text = _text(view.model_html("m1"))
    at = datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f"The log of approvals, rejections, rollbacks and promotions begins at {at}; " in text
    # A store that logged from its first version: nothing to say.
    fresh = MemorySnapshotStore()
    fresh.save(make_snapshot("m1", k=3, d=2, version=0), state="live", by=Actor("bob"))
    state = MonitorState([SPEC], started_at=T0, version="x")
    whole = ModelPages(state, MemoryHistory(), fresh, state_dir=tmp_path, clock=lambda: T0)
    assert whole.model("m1")["versions"]["events_log_begins"] is None  # type: ignore[index]


def test_a_pending_candidate_stored_in_a_drift_storm_names_the_features_not_a_count_as_a_psi(
    broken: tuple[ModelPages, DirectorySnapshotStore, Path],
) -> None:
    # Helper-151: "feature_psi 5 (threshold 0.25)": KMeansManyFeaturesDrifting's value is
    # the number of features past the threshold, shown as if one feature's PSI were 5.
    _, store, model_dir = broken
    store.save(make_snapshot("m1", k=3, d=2, seed=4, parent_version=1), state="pending")
    psi = {"a": 0.9, "b": 0.5, "c": 0.3, "d": 0.01}
    history = MemoryHistory()
    run = dataclasses.replace(_ev(T0 - 60, 0.9), feature_psi=psi, candidate_version=4)
    history.append(run)
    state = MonitorState([SPEC], started_at=T0, version="x")
    state.set_live(store.load("m1", 1))
    pages = ModelPages(state, history, store, state_dir=model_dir.parents[1], clock=lambda: T0)
    view = pages.model("m1")
    assert view is not None
    storm = [p for p in view["versions"]["pending_from"]["past"] if p["feature"] is None]
    assert storm == [
        {"sli": "feature_psi", "feature": None, "value": 0.9, "threshold": 0.25,
         "features": ["a", "b", "c"]}
    ]  # fmt: skip
    text = _text(pages.model_html("m1"))
    assert "3 features with PSI past 0.25 (the largest 0.9): a, b, c" in text
    assert "feature_psi 3 (threshold 0.25)" not in text


def test_since_when_is_not_cut_at_the_runs_a_page_reads(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Helper-151: at a 5 s interval the page's 2,000 runs are 2.8 h: a 5 h outage said
    # "runs have failed since" 2.8 h ago, and each SLI's "since" was cut the same way.
    monkeypatch.setattr("monitor.views._HISTORY_ROWS", 2)
    view_, state, history, _ = pages
    _fail(history, state, [T0 + 300 + 60 * i for i in range(5)])
    view = view_.model("m1")
    assert view is not None
    assert view["failing_since"] == T0 + 300  # the first failure, not the oldest read
    assert [f["at"] for f in view["failures"]] == [T0 + 540, T0 + 480]
    # Critical since T0 + 120, but the page reads the runs of T0 + 180 and T0 + 240 only.
    psi = next(s for s in view["slis"] if s["sli"] == "feature_psi_max")
    assert (psi["since"], psi["since_before"]) == (T0 + 180, True)
    f1 = view["features"][0]
    assert (f1["feature"], f1["since"], f1["since_before"]) == ("f1", T0 + 180, True)
    text = _text(view_.model_html("m1"))
    assert "runs have failed since 22:18:20 UTC" in text
    assert "feature_psi_max 0.5 (critical, since before 22:16:20 UTC" in text
    # All of a state's runs read: its start is known.
    monkeypatch.setattr("monitor.views._HISTORY_ROWS", 10)
    view = view_.model("m1")
    assert view is not None
    psi = next(s for s in view["slis"] if s["sli"] == "feature_psi_max")
    assert (psi["since"], psi["since_before"]) == (T0 + 120, False)


def test_a_failing_model_links_its_runbook_and_the_run_by_hand(tmp_path: Path) -> None:
    # Helper-151: a model whose 30 runs all failed had no command, no link to the
    # KMeansRunsFailing runbook, and tables saying "no run yet".
    state = MonitorState([SPEC], started_at=T0, version="x")
    history, store = MemoryHistory(), MemorySnapshotStore()
    _fail(history, state, [T0 + 60 * i for i in range(3)])
    config = tmp_path / "my conf.yml"
    pages = ModelPages(
        state, history, store, state_dir=tmp_path / "state", config=config, clock=lambda: T0 + 600
    )
    view = pages.model("m1")
    assert view is not None and view["state"] == "failing"
    where = f"--config '{config}' --state-dir {tmp_path / 'state'}"
    assert view["runs_failing"] == {
        "runbook": "/runbooks/KMeansRunsFailing?model=m1",
        "command": f"kmeans-monitor evaluate {where} --model m1 --json --dry-run",
        "failed_runs": 3,
    }
    page = pages.model_html("m1") or ""
    assert '<a href="/runbooks/KMeansRunsFailing?model=m1">KMeansRunsFailing</a>' in page
    text = _text(page)
    assert view["runs_failing"]["command"] in text
    assert "no run yet" not in text.replace("no successful run yet", "")
    assert (
        text.count(
            "no successful run yet (3 failed since the daemon started; see the KMeansRunsFailing "
            "runbook)"
        )
        == 3
    )  # the SLIs, features and clusters tables
    # A healthy model has none of it.
    state.record_success(_ev(T0 + 700, 0.01), make_snapshot("m1", k=3, d=2), duration=1.0, at=T0)
    view = pages.model("m1")
    assert view is not None and view["runs_failing"] is None
    assert "runs-failing" not in (pages.model_html("m1") or "")


def test_the_daemon_lists_its_runbooks_and_its_front_page_links_the_list(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    # Helper-151: /runbooks/ was a 404 and the front page linked no runbook.
    from monitor.http._routes import dispatch

    view_ = pages[0]
    routes = Routes(registry=CollectorRegistry(), runbook_html=view_.runbook_html)
    for path in ("/runbooks/", "/runbooks", "/runbooks/index.html"):
        answer = dispatch(routes, path)
        assert answer.status == 200, path
        page = answer.body.decode()
        for name in alert_names():
            assert f'<a href="/runbooks/{name}">{name}</a>' in page
        assert '<a href="/">All models</a>' in page
    assert dispatch(routes, "/runbooks/NoSuchAlert").status == 404
    assert '<a href="/runbooks/">Runbooks</a>' in view_.index_html()


def test_a_runbook_opened_on_a_model_the_daemon_does_not_run_says_so(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    # Helper-151: ?model=nosuch showed the generic page with no word that nosuch is unknown.
    text = _text(pages[0].runbook_html("KMeansFeatureDrift", "no<such>"))
    assert (
        "This daemon runs no model no<such> (an alert from another daemon, or a renamed "
        "model). Open this runbook on a model for its live values: m1"
    ) in text
    assert "runs no model" not in _text(pages[0].runbook_html("KMeansFeatureDrift", None))
    assert "runs no model" not in _text(pages[0].runbook_html("KMeansFeatureDrift", "m1"))


def test_the_pages_allow_no_script_no_load_and_no_frame(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    # Helper-151: no Content-Security-Policy nor X-Frame-Options on the pages, which
    # load nothing and run no script.
    from monitor.http._routes import dispatch

    view_ = pages[0]
    routes = Routes(
        registry=CollectorRegistry(),
        runbook_html=view_.runbook_html,
        model_html=view_.model_html,
        index_html=view_.index_html,
    )
    for path in ("/", "/models/m1", "/runbooks/", "/runbooks/KMeansFeatureDrift"):
        answer = dispatch(routes, path, {"model": "m1"})
        assert answer.status == 200, path
        headers = dict(answer.headers)
        policy = "default-src 'none'; style-src 'unsafe-inline'"
        assert headers["Content-Security-Policy"] == policy, path
        assert headers["X-Frame-Options"] == "DENY", path
        assert "<script" not in answer.body.decode() and "src=" not in answer.body.decode()


def test_values_older_than_two_intervals_say_so_beside_an_ok_state(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    # Helper-151: "State ok on the latest successful run (4m ago)" after 48 missed 5 s
    # intervals, with latest.stale false: only the "4m ago" said the data was old.
    view_, state, _, _ = pages  # interval 1m; the latest success at T0 + 240, now T0 + 600
    view = view_.model("m1")
    assert view is not None and view["latest"]["overdue"] is True
    text = _text(view_.model_html("m1"))
    assert (
        "No run has ended since 22:17:20 UTC (6m ago), more than two schedule intervals of "
        "1m: these values are that old."
    ) in text
    assert '<a href="/runbooks/KMeansEvaluationStale?model=m1">' in (view_.model_html("m1") or "")
    fresh = ModelPages(
        state, pages[2], pages[3], state_dir=Path("/x"), clock=lambda: T0 + 240 + 120
    )
    view = fresh.model("m1")
    assert view is not None and view["latest"]["overdue"] is False
    assert "No run has ended since" not in _text(fresh.model_html("m1"))


def test_a_feature_that_looks_rescaled_is_named_on_the_page_and_a_quiet_one_is_not(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    view_, state, _, _ = pages
    live, ev = state.status("m1").live, state.status("m1").evaluation
    assert live is not None and ev is not None
    rng = np.random.default_rng(0)
    reference = rng.lognormal(3.0, 0.5, size=(1000, 2))
    live = dataclasses.replace(live, sample=reference)
    state.set_live(live)
    state.set_explanation(explain(live, reference[::-1], ev.window_start, ev.window_end))
    view = view_.model("m1")
    assert view is not None and view["rescaled"] == []
    assert "looks rescaled" not in _text(view_.model_html("m1"))
    # f0 sent in thousandths of its unit: x1000.
    state.set_explanation(explain(live, reference * [1000, 1], ev.window_start, ev.window_end))
    view = view_.model("m1")
    assert view is not None and [r["feature"] for r in view["rescaled"]] == ["f0"]
    text = _text(view_.model_html("m1"))
    assert "f0 looks rescaled: its median is about 1,000x the reference's (measured: 1,000x" in text
    runbook = _text(view_.runbook_html("KMeansFeatureDrift", "m1"))
    assert "f0 looks rescaled: its median is about 1,000x the reference's" in runbook
    # And a thousand times smaller.
    state.set_explanation(explain(live, reference * [0.001, 1], ev.window_start, ev.window_end))
    assert "its median is about 1/1,000 of the reference's" in _text(view_.model_html("m1"))


def test_after_the_wall_clock_stepped_back_the_latest_run_is_the_last_written(
    tmp_path: Path,
) -> None:
    # t13 F2: runs stamped 30 days ahead (written before the clock stepped back), then
    # failures now. A restart took the future success as the latest run and the model as
    # not failing, and the page had no "failing since".
    now, step = T0 + 600, 30 * 86400.0
    history, store = MemoryHistory(), MemorySnapshotStore()
    store.save(make_snapshot("m1", k=3, d=2, version=0), state="live")
    history.append_failure(make_failure("m1", at=T0, reason="schema"))  # an older streak
    history.append(_ev(T0 + 60, 0.05))
    history.append(_ev(now + step, 0.05))
    history.append(_ev(now + step + 60, 0.05))
    for at in (now - 60, now):
        history.append_failure(make_failure("m1", at=at, duration_seconds=0.5))
    state = MonitorState([SPEC], started_at=now, version="x")
    _restore(state, history, "m1", now)
    status = state.status("m1")
    assert status.stale is True and status.last_run == now + 0.5
    assert status.evaluation is not None and status.evaluation.evaluated_at == now + step + 60
    view = ModelPages(state, history, store, state_dir=tmp_path, clock=lambda: now).model("m1")
    assert view is not None and (view["state"], view["failing_since"]) == ("failing", now - 60)
    # A success written after a failure stamped ahead: not failing, its end the last run.
    history.append_failure(make_failure("m1", at=now + step + 120))
    history.append(_ev(now + 30, 0.05))
    again = MonitorState([SPEC], started_at=now, version="x")
    _restore(again, history, "m1", now + 60)
    status = again.status("m1")
    assert status.stale is False and status.last_run == status.last_success
    assert status.evaluation is not None and status.evaluation.evaluated_at == now + 30


def test_the_pending_pointer_s_moves_do_not_push_the_decisions_off_the_page(
    pages: tuple[ModelPages, MonitorState, MemoryHistory, MemorySnapshotStore],
) -> None:
    # Under retrain: manual two lines (supersede, pending) follow every drifting run: six
    # runs after an approval, the page's ten listed none but those.
    view, _, _, store = pages
    store.approve("m1", 2, by=Actor("alice", "reviewed the diff"))
    by = Actor("kmeans-monitor (retrain policy)", "drift awaits manual approval")
    for seed in range(2, 14):
        store.save(
            make_snapshot("m1", k=3, d=2, seed=seed, parent_version=2), state="pending", by=by
        )
    assert {e.action for e in store.events("m1")} >= {"pending", "supersede"}
    events = view.model("m1")["versions"]["events"]  # type: ignore[index]
    assert [(e["action"], e["actor"]) for e in events] == [("approve", "alice")]
    assert "approve of version 2 (live 1 → 2) by alice" in _text(view.model_html("m1"))
