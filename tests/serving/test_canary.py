"""The pending candidate answers its configured share of requests, sticky by key, with
its own metrics; rejecting the candidate (or no share) turns the canary off."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import Settings
from monitor.exporter import encode
from monitor.ports import SnapshotStore
from monitor.serving import Splitter, key_fraction
from monitor.serving.client import LabelsClient
from monitor.store.memory import MemorySnapshotStore
from tests.serving._support import Running, fitted, post_json, settings, wait_until

Serve = Callable[[Settings, SnapshotStore], Running]


@pytest.mark.parametrize("share", [0.01, 0.05, 0.1, 0.25, 0.5, 0.9])
def test_keyed_split_is_within_2_percent_of_the_share(share: float) -> None:
    """200,000 distinct keys: the canary's part is within 2% (relative) of the share.

    The hash is fixed, so this is one deterministic outcome; a binomial spread of that
    many keys is 0.07% of a 10% share, so 2% is many standard deviations wide.
    """
    splitter = Splitter()
    n = 200_000
    hits = sum(splitter.to_canary("shop", 7, share, f"user-{i}") for i in range(n))
    assert abs(hits / n - share) <= 0.02 * share


@pytest.mark.parametrize("share", [0.01, 0.1, 1 / 3, 0.5, 0.99])
def test_keyless_split_is_exact_over_any_run_of_requests(share: float) -> None:
    splitter = Splitter()
    picks = np.array([splitter.to_canary("shop", 7, share, None) for _ in range(10_000)])
    for start, length in ((0, 10_000), (123, 1000), (5000, 300)):
        window = picks[start : start + length]
        assert abs(window.sum() - share * length) <= 1  # rounding, never drift


def test_a_key_keeps_its_variant_and_a_new_candidate_draws_new_keys() -> None:
    splitter = Splitter()
    keys = [f"k{i}" for i in range(2000)]
    first = [splitter.to_canary("shop", 2, 0.3, k) for k in keys]
    assert first == [splitter.to_canary("shop", 2, 0.3, k) for k in keys]
    assert first != [splitter.to_canary("shop", 3, 0.3, k) for k in keys]
    assert first != [splitter.to_canary("other", 2, 0.3, k) for k in keys]
    # A key in the canary at a share stays in it when the share grows.
    grown = [splitter.to_canary("shop", 2, 0.6, k) for k in keys]
    assert all(g for f, g in zip(first, grown, strict=True) if f)


def test_key_fraction_is_uniform_over_the_unit_interval() -> None:
    values = np.array([key_fraction("shop", 1, str(i)) for i in range(50_000)])
    assert values.min() >= 0.0 and values.max() < 1.0
    counts = np.histogram(values, bins=10, range=(0, 1))[0]
    # Each decile expects 5,000 keys, standard deviation about 67.
    assert np.abs(counts - 5000).max() < 400


def test_share_0_and_1_are_never_and_always() -> None:
    splitter = Splitter()
    assert not any(splitter.to_canary("m", 1, 0.0, k) for k in ("a", None, "b"))
    assert all(splitter.to_canary("m", 1, 1.0, k) for k in ("a", None, "b"))


def _series(running: Running, name: str, **labels: str) -> float:
    text = encode(running.app.registry).decode()
    total = 0.0
    found = False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
                found = True
    assert found, f"no series {name} {labels}"
    return total


@pytest.fixture
def canary(serve_labels: Serve) -> tuple[Running, MemorySnapshotStore]:
    store = MemorySnapshotStore()
    store.save(fitted(seed=0).snapshot, state="live")
    store.save(fitted(seed=1).snapshot, state="pending")
    return serve_labels(settings({"shop": {"canary_share": 0.25}}), store), store


def test_over_http_the_canary_answers_its_share_sticky_by_key(
    canary: tuple[Running, MemorySnapshotStore],
) -> None:
    running, _ = canary
    rows = np.ones((1, 3))
    with LabelsClient(running.url) as client:
        variants = [client.labels("shop", rows, key=f"user-{i}").variant for i in range(2000)]
        again = [client.labels("shop", rows, key=f"user-{i}").variant for i in range(200)]
        keyless = [client.labels("shop", rows).variant for _ in range(400)]
    share = variants.count("canary") / len(variants)
    # 2,000 keys: the binomial spread of the share is about 1 point; within 2 points.
    assert abs(share - 0.25) <= 0.02
    assert again == variants[:200]  # sticky
    assert keyless.count("canary") == 100  # exact without keys
    assert {"live", "canary"} == set(variants)
    # Per-variant evidence: requests, rows, label shares, latency, version.
    assert _series(running, "kmeans_serving_requests_total", variant="canary", code="200") == (
        variants.count("canary") + again.count("canary") + 100
    )
    canary_rows = _series(running, "kmeans_serving_cluster_rows_total", variant="canary")
    assert canary_rows == _series(running, "kmeans_serving_batch_rows_sum", variant="canary")
    assert _series(running, "kmeans_serving_model_version", variant="canary") == 2
    assert _series(running, "kmeans_serving_model_version", variant="live") == 1
    assert _series(running, "kmeans_serving_canary_share_ratio", model="shop") == 0.25
    assert _series(running, "kmeans_serving_request_duration_seconds_count", variant="live") > 0


def test_the_body_field_routes_when_no_header_is_sent(
    canary: tuple[Running, MemorySnapshotStore],
) -> None:
    running, _ = canary
    splitter = Splitter()
    for i in range(40):
        key = f"user-{i}"
        expected = "canary" if splitter.to_canary("shop", 2, 0.25, key) else "live"
        _, headers, body = post_json(running, {"rows": [[1, 2, 3]], "key": key})
        assert body["variant"] == headers["x-kmeans-variant"] == expected
    # An integer key is the same key as its decimal string.
    _, _, as_int = post_json(running, {"rows": [[1, 2, 3]], "key": 17})
    _, _, as_str = post_json(running, {"rows": [[1, 2, 3]], "key": "17"})
    assert as_int["variant"] == as_str["variant"]


def test_an_empty_header_is_no_key_and_the_field_routes(
    canary: tuple[Running, MemorySnapshotStore],
) -> None:
    """What a proxy sends for an unset variable is no key (docs/serving.md, Requests)."""
    running, _ = canary
    splitter = Splitter()
    for i in range(40):
        key = f"user-{i}"
        expected = "canary" if splitter.to_canary("shop", 2, 0.25, key) else "live"
        doc = {"rows": [[1, 2, 3]], "key": key}
        status, headers, _ = post_json(running, doc, headers={"X-Kmeans-Key": ""})
        assert (status, headers["x-kmeans-variant"]) == (200, expected)
    status, _, _ = post_json(running, {"rows": [[1, 2, 3]]}, headers={"X-Kmeans-Key": ""})
    assert status == 200


def test_a_non_ascii_key_routes_alike_as_header_and_as_field(
    canary: tuple[Running, MemorySnapshotStore],
) -> None:
    """Header bytes that are UTF-8 are read as UTF-8, as the JSON field is; others as Latin-1."""
    running, _ = canary
    keys = [f"użytkownik-{i}" for i in range(200)]
    as_field = [post_json(running, {"rows": [[1, 2, 3]], "key": k})[2]["variant"] for k in keys]
    as_header = [
        post_json(running, {"rows": [[1, 2, 3]]}, headers={"X-Kmeans-Key": k.encode()})[2][
            "variant"
        ]
        for k in keys
    ]
    assert as_header == as_field and {"live", "canary"} == set(as_field)
    # Bytes that are not UTF-8 are still a key (Latin-1, as before).
    latin = "café".encode("latin-1")
    status, headers, _ = post_json(running, {"rows": [[1, 2, 3]]}, headers={"X-Kmeans-Key": latin})
    expected = "canary" if Splitter().to_canary("shop", 2, 0.25, "café") else "live"
    assert (status, headers["x-kmeans-variant"]) == (200, expected)


def test_rejecting_the_candidate_turns_the_canary_off(
    canary: tuple[Running, MemorySnapshotStore],
) -> None:
    running, store = canary
    store.set_pending("shop", None)  # what `kmeans-monitor snapshots reject shop` does
    assert wait_until(lambda: running.app.serving.catalog.get("shop").canary is None)
    with LabelsClient(running.url) as client:
        assert {client.labels("shop", np.ones((1, 3))).variant for _ in range(50)} == {"live"}
        (described,) = client.models()
    # The share in effect, not the configured 0.25 (docs/serving.md).
    assert (described["canary_version"], described["canary_share"]) == (None, 0.0)
    assert _series(running, "kmeans_serving_canary_share_ratio", model="shop") == 0.0
    assert _series(running, "kmeans_serving_model_version", variant="canary") == 0


def test_without_a_share_the_candidate_serves_nothing(serve_labels: Serve) -> None:
    store = MemorySnapshotStore()
    store.save(fitted(seed=0).snapshot, state="live")
    store.save(fitted(seed=1).snapshot, state="pending")
    running = serve_labels(settings(), store)  # canary_share defaults to 0
    with LabelsClient(running.url) as client:
        assert {client.labels("shop", np.ones((1, 3)), key=str(i)).variant for i in range(50)} == {
            "live"
        }
        (described,) = client.models()
    assert (described["live_version"], described["canary_version"]) == (1, None)
    assert described["canary_share"] == 0.0
