"""MetricsCache: /metrics bytes are encoded once per state change (and once per max_age)."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, Gauge

from monitor.checks import Mismatch
from monitor.exporter import Registry, encode
from monitor.http import MetricsCache, Routes
from tests.http_server._support import Running


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingEncoder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, registry: Registry) -> bytes:
        self.calls += 1
        return encode(registry)


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("kmeans_value", "A value.", registry=registry).set(1)
    return registry


def test_the_bytes_are_encoded_again_only_when_the_version_changes() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("kmeans_value", "A value.", registry=registry)
    gauge.set(1)
    version = [0]
    encoder = CountingEncoder()
    cache = MetricsCache(registry, lambda: version[0], max_age=None, encoder=encoder)
    first = cache()
    assert b"kmeans_value 1.0" in first
    assert [cache() is first for _ in range(100)] == [True] * 100
    assert encoder.calls == cache.encodings == 1

    gauge.set(2)
    assert cache() is first  # the state did not say it changed: the old bytes stand
    version[0] += 1
    assert b"kmeans_value 2.0" in cache()
    assert encoder.calls == 2


def test_max_age_refreshes_process_metrics_without_a_version_change(
    registry: CollectorRegistry,
) -> None:
    clock = Clock()
    encoder = CountingEncoder()
    cache = MetricsCache(registry, lambda: 7, max_age=1.0, encoder=encoder, clock=clock)
    cache()
    clock.now += 0.999
    cache()
    assert encoder.calls == 1
    clock.now += 0.001
    cache()
    assert encoder.calls == 2
    clock.now += 0.5
    cache()
    assert encoder.calls == 2


def test_a_version_read_during_encoding_is_the_one_remembered(
    registry: CollectorRegistry,
) -> None:
    version = [0]

    def encode_while_the_state_changes(reg: Registry) -> bytes:
        body = encode(reg)
        version[0] += 1  # a run finished while we encoded: these bytes may miss it
        return body

    cache = MetricsCache(
        registry, lambda: version[0], max_age=None, encoder=encode_while_the_state_changes
    )
    cache()
    cache()
    assert cache.encodings == 2  # the second scrape saw version 1 and encoded again


def test_concurrent_stale_scrapes_share_one_encoding(registry: CollectorRegistry) -> None:
    entered = threading.Event()
    release = threading.Event()
    calls = 0

    def slow_encode(reg: Registry) -> bytes:
        nonlocal calls
        calls += 1
        entered.set()
        release.wait(10)
        return encode(reg)

    cache = MetricsCache(registry, lambda: 0, max_age=None, encoder=slow_encode)
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(cache())) for _ in range(8)]
    threads[0].start()
    assert entered.wait(10)
    for thread in threads[1:]:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(10)
    assert calls == 1 and len(results) == 8 and len(set(results)) == 1


@pytest.mark.parametrize("max_age", [-1.0, float("nan"), "1"])
def test_a_bad_max_age_is_a_parameter_error(registry: CollectorRegistry, max_age: object) -> None:
    with pytest.raises(Mismatch, match="The 'max_age' parameter of MetricsCache must be a float"):
        MetricsCache(registry, lambda: 0, max_age=max_age)  # type: ignore[arg-type]


def test_the_server_serves_the_cached_bytes(
    serve: Callable[..., Running], registry: CollectorRegistry
) -> None:
    version = [0]
    encoder = CountingEncoder()
    cache = MetricsCache(registry, lambda: version[0], max_age=None, encoder=encoder)
    running = serve(Routes(registry=registry, metrics=cache))
    url = f"http://{running.host}:{running.port}/metrics"
    bodies = []
    for _ in range(10):
        with urllib.request.urlopen(url, timeout=10) as response:
            bodies.append(response.read())
    assert encoder.calls == 1 and len(set(bodies)) == 1
    version[0] += 1
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
    assert encoder.calls == 2


def test_peek_returns_fresh_bytes_only_and_never_encodes(registry: CollectorRegistry) -> None:
    version = [0]
    clock = Clock()
    encoder = CountingEncoder()
    cache = MetricsCache(registry, lambda: version[0], max_age=1.0, encoder=encoder, clock=clock)
    assert cache.peek() is None  # nothing encoded yet
    body = cache()
    assert cache.peek() is body
    version[0] += 1
    assert cache.peek() is None
    cache()
    clock.now += 1.0
    assert cache.peek() is None
    assert encoder.calls == 2
