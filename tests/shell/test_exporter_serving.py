"""The label API's metrics: every series from start-up, counts by variant and code,
latency and batch histograms with worked-out buckets, label shares, promtool-clean."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.exporter import ServingSpec, ServingStats, make_registry
from monitor.exporter.serving import LATENCY_BUCKETS, STATUS_CODES, status_code

Key = tuple[str, tuple[tuple[str, str], ...]]


def samples(stats: ServingStats) -> dict[Key, float]:
    text = generate_latest(make_registry(None, process_metrics=False, serving=stats)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def mv(variant: str = "live", **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"model": "shop", "variant": variant, **extra}.items()))


@pytest.fixture
def stats() -> ServingStats:
    return ServingStats([ServingSpec("shop", 0.1, 0.95, 0.999)])


def test_every_series_exists_from_start_up(stats: ServingStats) -> None:
    got = samples(stats)
    for variant in ("live", "canary"):
        for code in STATUS_CODES:
            assert got[("kmeans_serving_requests_total", mv(variant, code=code))] == 0
        assert got[("kmeans_serving_request_duration_seconds_count", mv(variant))] == 0
        assert got[("kmeans_serving_batch_rows_count", mv(variant))] == 0
        assert got[("kmeans_serving_slow_requests_total", mv(variant))] == 0
        assert got[("kmeans_serving_model_version", mv(variant))] == 0
    m = (("model", "shop"),)
    assert got[("kmeans_serving_latency_threshold_seconds", m)] == 0.1
    assert got[("kmeans_serving_latency_objective_ratio", m)] == 0.95
    assert got[("kmeans_serving_success_objective_ratio", m)] == 0.999
    assert got[("kmeans_serving_canary_share_ratio", m)] == 0
    assert not any(name == "kmeans_serving_cluster_rows_total" for name, _ in got)


def test_answers_are_counted_by_variant_code_latency_rows_and_cluster(stats: ServingStats) -> None:
    stats.loaded("shop", live=(3, 4), canary=(5, 2), share=0.1)
    stats.served("shop", "live", seconds=0.0004, rows=1, labels=np.array([2]), outliers=0)
    stats.served("shop", "live", seconds=0.1, rows=3, labels=np.array([0, 2, 2]), outliers=1)
    stats.served("shop", "live", seconds=0.25, rows=5, labels=np.array([1, 1]), outliers=2)
    stats.served("shop", "canary", seconds=2.0, rows=100, labels=np.zeros(100, int), outliers=0)
    stats.answered("shop", "live", 400)
    stats.answered("shop", "canary", 503)
    stats.answered("shop", "live", 418)  # an unlisted 4xx counts as 400
    stats.answered("nope", "live", 400)  # not a served model: ignored
    got = samples(stats)
    assert got[("kmeans_serving_requests_total", mv(code="200"))] == 3
    assert got[("kmeans_serving_requests_total", mv(code="400"))] == 2
    assert got[("kmeans_serving_requests_total", mv("canary", code="503"))] == 1
    assert got[("kmeans_serving_requests_total", mv("canary", code="200"))] == 1
    # Latency buckets are cumulative; a value on a bound is in it (le).
    bucket = "kmeans_serving_request_duration_seconds_bucket"
    assert got[(bucket, mv(le="0.0005"))] == 1
    assert got[(bucket, mv(le="0.05"))] == 1
    assert got[(bucket, mv(le="0.1"))] == 2
    assert got[(bucket, mv(le="0.25"))] == 3
    assert got[(bucket, mv(le="+Inf"))] == 3
    assert got[("kmeans_serving_request_duration_seconds_sum", mv())] == pytest.approx(0.3504)
    # Slow: later than the 0.1 s threshold (0.1 itself is not slow).
    assert got[("kmeans_serving_slow_requests_total", mv())] == 1
    assert got[("kmeans_serving_slow_requests_total", mv("canary"))] == 1
    assert got[("kmeans_serving_batch_rows_bucket", mv(le="1.0"))] == 1
    assert got[("kmeans_serving_batch_rows_bucket", mv(le="10.0"))] == 3
    assert got[("kmeans_serving_batch_rows_sum", mv())] == 9
    assert got[("kmeans_serving_batch_rows_bucket", mv("canary", le="100.0"))] == 1
    assert got[("kmeans_serving_outlier_rows_total", mv())] == 3
    assert got[("kmeans_serving_invalid_rows_total", mv())] == 3  # 5 rows, 2 labelled
    clusters = {c: got[("kmeans_serving_cluster_rows_total", mv(cluster=str(c)))] for c in range(4)}
    assert clusters == {0: 1, 1: 2, 2: 3, 3: 0}  # k=4 is touched by loaded()
    assert got[("kmeans_serving_cluster_rows_total", mv("canary", cluster="0"))] == 100
    assert got[("kmeans_serving_model_version", mv())] == 3
    assert got[("kmeans_serving_model_version", mv("canary"))] == 5
    assert got[("kmeans_serving_canary_share_ratio", (("model", "shop"),))] == 0.1


def test_a_canary_that_goes_away_leaves_version_0_and_share_0(stats: ServingStats) -> None:
    stats.loaded("shop", live=(3, 4), canary=(5, 2), share=0.1)
    stats.loaded("shop", live=(3, 4), canary=None, share=0.0)
    got = samples(stats)
    assert got[("kmeans_serving_model_version", mv("canary"))] == 0
    assert got[("kmeans_serving_canary_share_ratio", (("model", "shop"),))] == 0


@pytest.mark.parametrize(
    ("status", "code"), [(200, "200"), (413, "413"), (404, "400"), (502, "500"), (302, "500")]
)
def test_status_codes_are_a_fixed_set(status: int, code: str) -> None:
    assert status_code(status) == code


def test_latency_buckets_cover_a_row_to_a_slow_batch() -> None:
    assert LATENCY_BUCKETS[0] <= 0.0005 and LATENCY_BUCKETS[-1] >= 10
    assert 0.1 in LATENCY_BUCKETS and 0.005 in LATENCY_BUCKETS  # the SLO, the bench target


def test_promtool_check_metrics_is_clean(stats: ServingStats) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run scripts/install-test-deps"
    stats.loaded("shop", live=(3, 4), canary=(5, 2), share=0.1)
    stats.served("shop", "live", seconds=0.01, rows=3, labels=np.array([0, 1, 3]), outliers=1)
    text = generate_latest(make_registry(None, serving=stats))
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_a_process_that_only_serves_names_its_version() -> None:
    stats = ServingStats([ServingSpec("shop", 0.1, 0.95, 0.999)])
    text = generate_latest(make_registry(None, process_metrics=False, serving=stats, version="9.9"))
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    (info,) = families["kmeans_build_info"].samples
    assert info.labels["version"] == "9.9" and info.value == 1
    assert not any(name.startswith("kmeans_runs") for name in families)
