"""The exporter: values through a private registry, the contract, promtool."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.exporter import (
    CertificateCollector,
    ConnectionsCollector,
    ModelSpec,
    MonitorState,
    ServingSpec,
    ServingStats,
    make_registry,
)
from monitor.ports import History
from monitor.records import FAILURE_REASONS, SKIP_REASONS, RunFailure
from monitor.store import SQLiteHistory
from monitor.store.memory import MemoryHistory
from tests.store._store_factories import make_evaluation, make_snapshot

ROOT = Path(__file__).resolve().parents[2]
SPEC = ModelSpec("m1", ("f0", "f1"), 60.0, 30.0, 86400.0, 0.99)


def samples(state: MonitorState) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(make_registry(state, process_metrics=False)).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_series_exist_from_start_up() -> None:
    got = samples(MonitorState([SPEC], started_at=100.0, version="1.2.3"))
    assert got[("kmeans_runs_total", (("model", "m1"),))] == 0
    for reason in FAILURE_REASONS:
        assert got[("kmeans_run_failures_total", (("model", "m1"), ("reason", reason)))] == 0
    assert got[("kmeans_feature_psi", (("feature", "f1"), ("model", "m1")))] == 0
    assert got[("kmeans_last_success_timestamp_seconds", (("model", "m1"),))] == 0
    assert got[("kmeans_schedule_interval_seconds", (("model", "m1"),))] == 60
    assert got[("kmeans_run_success_objective_ratio", (("model", "m1"),))] == 0.99
    assert got[("kmeans_daemon_start_timestamp_seconds", ())] == 100
    assert got[("kmeans_models_configured", ())] == 1
    assert not any(name == "kmeans_snapshot_info" for name, _ in got)
    assert got[("kmeans_model_engine_info", (("engine", "local"), ("model", "m1")))] == 1


def test_the_engine_of_each_model_is_a_label() -> None:
    spark = dataclasses.replace(SPEC, name="m2", engine="spark")
    got = samples(MonitorState([SPEC, spark], started_at=100.0, version="1.2.3"))
    engines = {
        dict(labels)["model"]: dict(labels)["engine"]
        for name, labels in got
        if name == "kmeans_model_engine_info"
    }
    assert engines == {"m1": "local", "m2": "spark"}


def test_skipped_runs_are_counted_by_reason_from_zero() -> None:
    state = MonitorState([SPEC], started_at=100.0, version="1.2.3")
    key = "kmeans_runs_skipped_total"
    assert {r: samples(state)[(key, (("model", "m1"), ("reason", r)))] for r in SKIP_REASONS} == {
        "missed": 0,
        "still_running": 0,
        "first_run": 0,
    }
    before = state.generation
    state.record_skipped("m1", "missed", 4)
    state.record_skipped("m1", "still_running")
    state.record_skipped("m1", "not-a-reason")  # bounded: counted as missed
    got = samples(state)
    assert got[(key, (("model", "m1"), ("reason", "missed")))] == 5
    assert got[(key, (("model", "m1"), ("reason", "still_running")))] == 1
    # A skip is not a run, and it re-encodes /metrics like any change.
    assert got[("kmeans_runs_total", (("model", "m1"),))] == 0
    assert state.generation == before + 3


def test_has_run_once_any_run_of_the_model_ended() -> None:
    state = MonitorState([SPEC], started_at=100.0, version="1.2.3")
    assert not state.has_run("m1")
    state.record_failure("m1", "source", duration=1.0, at=200.0)
    assert state.has_run("m1")


def test_a_run_awaiting_its_reference_data_exports_when_they_are_due() -> None:
    state = MonitorState([SPEC], started_at=100.0, version="1.2.3")
    key = ("kmeans_reference_ready_timestamp_seconds", (("model", "m1"),))
    assert samples(state)[key] == 0  # exported from start-up: the rules compare it
    state.record_failure("m1", "awaiting_reference", duration=0.1, at=200.0, ready_at=86_400.0)
    got = samples(state)
    assert got[key] == 86_400.0
    assert got[("kmeans_run_failures_total", (("model", "m1"), ("reason", "awaiting_reference")))]
    # Another failure, or a success, ends the wait.
    state.record_failure("m1", "schema", duration=0.1, at=300.0)
    assert samples(state)[key] == 0
    state.record_failure("m1", "awaiting_reference", duration=0.1, at=400.0, ready_at=86_400.0)
    snap = make_snapshot("m1", k=3, d=2, version=1, created_at=1234.0)
    state.record_success(make_evaluation("m1"), snap, duration=1.0, at=86_500.0)
    assert samples(state)[key] == 0


def test_a_reference_training_is_its_own_gauge_not_part_of_the_run_duration() -> None:
    state = MonitorState([SPEC], started_at=100.0, version="1.2.3")
    snap = make_snapshot("m1", k=3, d=2, version=1, created_at=1234.0)
    assert ("kmeans_reference_training_seconds", (("model", "m1"),)) not in samples(state)
    first = make_evaluation("m1", phase_seconds={"read": 0.5, "reference": 40.0, "score": 1.0})
    state.record_success(first, snap, duration=42.0, at=200.0)
    steady = make_evaluation("m1", phase_seconds={"read": 0.5, "score": 1.0})
    state.record_success(steady, snap, duration=2.0, at=300.0)
    got = samples(state)
    assert got[("kmeans_reference_training_seconds", (("model", "m1"),))] == 40.0
    # Both runs are counted; the first with its 2 s of scheduled work only.
    assert got[("kmeans_run_duration_seconds_count", (("model", "m1"),))] == 2
    assert got[("kmeans_run_duration_seconds_sum", (("model", "m1"),))] == 4.0
    assert got[("kmeans_runs_total", (("model", "m1"),))] == 2


def test_values_follow_runs_failures_and_rollbacks() -> None:
    state = MonitorState([SPEC], started_at=100.0, version="1.2.3")
    snap = make_snapshot("m1", k=3, d=2, version=3, created_at=1234.0)
    # The run compared its SLIs with thresholds at its own size, not the snapshot's.
    ev = dataclasses.replace(
        make_evaluation("m1", promoted=True),
        thresholds={"feature_psi_warning": 0.2, "feature_psi_critical": 0.3},
    )
    state.record_success(ev, snap, duration=0.7, at=2000.0)
    assert samples(state)[("kmeans_slis_stale", (("model", "m1"),))] == 0
    state.record_failure("m1", "schema", duration=40.0, at=2100.0)
    state.record_failure("m1", "not-a-reason", duration=0.01, at=2200.0)
    got = samples(state)
    m = (("model", "m1"),)
    assert got[("kmeans_runs_total", m)] == 3
    assert got[("kmeans_run_failures_total", (("model", "m1"), ("reason", "schema")))] == 1
    assert got[("kmeans_run_failures_total", (("model", "m1"), ("reason", "internal")))] == 1
    assert got[("kmeans_promotions_total", m)] == 1
    assert got[("kmeans_last_success_timestamp_seconds", m)] == 2000
    assert got[("kmeans_last_run_timestamp_seconds", m)] == 2200
    assert got[("kmeans_run_duration_seconds_count", m)] == 3
    assert got[("kmeans_run_duration_seconds_sum", m)] == pytest.approx(40.71)
    assert got[("kmeans_run_duration_seconds_bucket", (("le", "0.05"), ("model", "m1")))] == 1
    assert got[("kmeans_run_duration_seconds_bucket", (("le", "1.0"), ("model", "m1")))] == 2
    assert got[("kmeans_run_duration_seconds_bucket", (("le", "30.0"), ("model", "m1")))] == 2
    assert got[("kmeans_run_duration_seconds_bucket", (("le", "60.0"), ("model", "m1")))] == 3
    assert got[("kmeans_snapshot_info", (("k", "3"), ("model", "m1"), ("version", "3")))] == 1
    assert got[("kmeans_snapshot_created_timestamp_seconds", m)] == 1234
    assert got[("kmeans_silhouette_score", m)] == 0.61
    assert got[("kmeans_outlier_ratio", m)] == 0.012
    assert got[("kmeans_feature_psi", (("feature", "f1"), ("model", "m1")))] == 0.3
    assert got[("kmeans_cluster_size", (("cluster", "2"), ("model", "m1")))] == 120
    assert got[("kmeans_cluster_share_ratio", (("cluster", "0"), ("model", "m1")))] == 0.4
    assert got[("kmeans_centroid_drift", (("cluster", "2"), ("model", "m1")))] == 0.25
    assert got[("kmeans_feature_psi_warning_threshold", m)] == 0.2
    assert got[("kmeans_feature_psi_critical_threshold", m)] == 0.3
    # A threshold the run left out (not a drift signal at its size) is not exported.
    assert ("kmeans_label_psi_threshold", m) not in got
    # After a failed run the SLIs are marked stale until the next success.
    assert got[("kmeans_slis_stale", m)] == 1
    # A rollback from outside a run: the info and version follow, counted as a promotion,
    # and the new live snapshot's configured thresholds stand until its first run.
    state.set_live(make_snapshot("m1", k=3, d=2, version=1, created_at=999.0), promoted=True)
    got = samples(state)
    assert got[("kmeans_snapshot_version", m)] == 1
    assert got[("kmeans_promotions_total", m)] == 2
    assert got[("kmeans_feature_psi_warning_threshold", m)] == 0.1
    state.record_success(make_evaluation("m1"), snap, duration=0.7, at=2300.0)
    assert samples(state)[("kmeans_slis_stale", m)] == 0


def test_an_sli_the_run_did_not_measure_has_no_sample() -> None:
    # helper-161: a live version stored before the drift spread and the split baseline
    # exported kmeans_centroid_drift_standard_errors and kmeans_clusters_appeared as 0.
    state = MonitorState([SPEC], started_at=100.0, version="1.2.3")
    m = (("model", "m1"),)
    assert samples(state)[("kmeans_centroid_drift_standard_errors", m)] == 0  # no run yet
    snap = make_snapshot("m1", k=3, d=2, version=3, created_at=1234.0)
    state.record_success(make_evaluation("m1"), snap, duration=0.7, at=2000.0)
    got = samples(state)
    assert got[("kmeans_silhouette_score", m)] == 0.61
    for name in ("kmeans_centroid_drift_standard_errors", "kmeans_clusters_appeared"):
        assert (name, m) not in got


def test_flagged_runs_count_the_runs_in_a_row_on_which_an_sli_alert_held() -> None:
    # The SLI alerts fire from two (docs/slis.md#paging): the rules compare this count.
    spec = dataclasses.replace(SPEC, flagged_runs_to_fire=3)
    state = MonitorState([spec], started_at=100.0, version="1.2.3")
    snap = make_snapshot("m1", k=3, d=2, version=1, created_at=90.0)
    key = ("kmeans_flagged_runs", (("model", "m1"),))
    assert samples(state)[key] == 0
    # What the rules compare the count with: the model's thresholds.flagged_runs_to_fire.
    assert samples(state)[("kmeans_flagged_runs_to_fire", (("model", "m1"),))] == 3
    # Feature f1's PSI is 0.3: past a warning level of 0.2, not of 0.9.
    flagged = dataclasses.replace(make_evaluation("m1"), thresholds={"feature_psi_warning": 0.2})
    quiet = dataclasses.replace(make_evaluation("m1"), thresholds={"feature_psi_warning": 0.9})
    got = []
    for i, ev in enumerate((flagged, flagged, flagged, quiet, flagged, None, flagged)):
        if ev is None:
            state.record_failure("m1", "schema", duration=0.1, at=200.0 + i)
        else:
            state.record_success(ev, snap, duration=0.1, at=200.0 + i)
        got.append(samples(state)[key])
    assert got == [1, 2, 3, 0, 1, 0, 1]
    # A restart takes the count from the history, unless a failure came last.
    state.restore("m1", flagged, failed_since=False, flagged_runs=4)
    assert samples(state)[key] == 4
    state.record_success(flagged, snap, duration=0.1, at=300.0)
    assert samples(state)[key] == 5
    state.restore("m1", flagged, failed_since=True, flagged_runs=4)
    assert samples(state)[key] == 0


@pytest.mark.parametrize("kept", ["memory", "sqlite", "sqlite, pruned"])
def test_a_batch_job_carries_the_counts_of_the_history_on(tmp_path: Path, kept: str) -> None:
    # `evaluate --push-to` is a new process at every push: counters from 0 at each one
    # never moved in Prometheus (rate() saw no increase, so the run-success burn alerts
    # could not fire), and a start of "now" held KMeansEvaluationStale off for ever.
    # The runs that store.keep.history removed still count.
    daemon = MonitorState([SPEC], started_at=100.0, version="1.2.3")
    history: History = MemoryHistory()
    if kept != "memory":
        history = SQLiteHistory(tmp_path / "history.sqlite")
    snap = make_snapshot("m1", k=3, d=2, version=1, created_at=90.0)
    first = make_evaluation(
        "m1",
        evaluated_at=100.0,
        duration_seconds=42.0,
        promoted=True,
        phase_seconds={"reference": 40.0, "score": 1.0},
    )
    steady = make_evaluation("m1", evaluated_at=400.0, duration_seconds=0.7)
    failures = [RunFailure("m1", "schema", "x", 200.0, duration_seconds=40.0)]
    failures.append(RunFailure("m1", "not-a-reason", "x", 300.0, duration_seconds=0.01))
    for run in (first, *failures, steady):  # in the order they ran
        if isinstance(run, RunFailure):
            ended = run.at + (run.duration_seconds or 0.0)
            daemon.record_failure("m1", run.reason, duration=run.duration_seconds or 0.0, at=ended)
            history.append_failure(run)
        else:
            ended = run.evaluated_at + run.duration_seconds
            daemon.record_success(run, snap, duration=run.duration_seconds, at=ended)
            history.append(run)
    if kept == "sqlite, pruned":
        assert isinstance(history, SQLiteHistory) and history.prune(1000.0) == 4
    batch = MonitorState([SPEC], started_at=5000.0, version="1.2.3")
    batch.carry_over("m1", history.totals("m1"))
    history.close()
    counted = (
        "kmeans_runs",
        "kmeans_run_failures",
        "kmeans_promotions",
        "kmeans_run_duration",
        "kmeans_last_run",
    )

    def counts(state: MonitorState) -> dict[Any, float]:
        return {k: v for k, v in samples(state).items() if k[0].startswith(counted)}

    assert counts(batch) == counts(daemon)
    assert counts(batch)[("kmeans_runs_total", (("model", "m1"),))] == 4
    # The start is that of the earliest run the history holds.
    assert samples(batch)[("kmeans_daemon_start_timestamp_seconds", ())] == 100.0


def test_every_exported_name_is_in_the_contract() -> None:
    state = MonitorState([SPEC], started_at=100.0, version="1.2.3")
    state.record_success(make_evaluation("m1"), make_snapshot("m1"), duration=1.0, at=5.0)
    serving = ServingStats([ServingSpec("m1", 0.1, 0.95, 0.999)])  # the daemon serves labels too
    registry = make_registry(state, process_metrics=False, serving=serving)
    registry.process.register(CertificateCollector(lambda: 1.0))  # and TLS, when on
    registry.process.register(ConnectionsCollector(lambda: 0))  # the HTTP server's limit
    text = generate_latest(registry).decode()
    exported = {fam.name for fam in text_string_to_metric_families(text)}
    contract_text = (ROOT / "docs" / "metrics.md").read_text()
    contract = set(re.findall(r"^\| `(kmeans_[a-z_]+)`", contract_text, flags=re.M))
    # The parser reports counters without _total; the contract names them with it.
    contract_bases = {n.removesuffix("_total") for n in contract}
    assert exported == contract_bases


def test_dropped_connections_are_a_counter_from_0() -> None:
    dropped = [0]
    registry = make_registry(None, process_metrics=False)
    registry.process.register(ConnectionsCollector(lambda: dropped[0]))
    for expected in (0, 7):
        dropped[0] = expected
        text = generate_latest(registry).decode()
        (family,) = [f for f in text_string_to_metric_families(text) if "dropped" in f.name]
        assert family.type == "counter"
        assert [(s.name, s.value) for s in family.samples if s.name.endswith("_total")] == [
            ("kmeans_http_dropped_connections_total", expected)
        ]


def test_promtool_check_metrics_is_clean() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run scripts/install-test-deps"
    state = MonitorState([SPEC], started_at=100.0, version="1.2.3")
    state.record_success(make_evaluation("m1"), make_snapshot("m1"), duration=1.0, at=5.0)
    serving = ServingStats([ServingSpec("m1", 0.1, 0.95, 0.999)])
    serving.loaded("m1", live=(3, 4), canary=None, share=0.0)
    text = generate_latest(make_registry(state, serving=serving))
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "", result.stdout.decode()
