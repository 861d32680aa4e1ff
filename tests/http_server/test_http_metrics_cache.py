"""MetricsCache: /metrics bytes are encoded once per state change (and once per max_age)."""

from __future__ import annotations

import gzip
import threading
import time
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, Gauge

from monitor.checks import Mismatch
from monitor.exporter import CONTENT_TYPE, Registry, encode
from monitor.http import MetricsCache, Response, Routes, Volatile, _server, _wire
from monitor.http._wire import response_head
from tests.http_server._support import (
    PATIENCE,
    Running,
    closed_by_server,
    read_response,
    request,
)


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


def test_max_age_re_encodes_only_the_volatile_parts_that_changed(
    registry: CollectorRegistry,
) -> None:
    process, serving = CollectorRegistry(), CollectorRegistry()
    cpu = Gauge("process_cpu", "CPU seconds.", registry=process)
    answers = Gauge("serving_answers", "Answers.", registry=serving)
    clock, version, serving_changes = Clock(), [0], [0]
    encoded: list[Registry] = []

    def encoder(reg: Registry) -> bytes:
        encoded.append(reg)
        return encode(reg)

    cache = MetricsCache(
        registry,
        lambda: version[0],
        volatile=(Volatile(serving, lambda: serving_changes[0]), Volatile(process)),
        encoder=encoder,
        clock=clock,
    )

    def whole() -> bytes:
        return encode(registry) + encode(serving) + encode(process)

    assert cache() == whole() and encoded == [registry, serving, process]
    cpu.set(3)
    answers.set(5)  # without its counter moving: not encoded again
    clock.now += 0.5
    assert cache.peek() is not None and encoded[3:] == []  # young: fresh
    clock.now += 0.5
    assert cache.peek() is None  # aged, and the process part always changes
    assert b"process_cpu 3.0" in cache() and b"serving_answers 0.0" in cache()
    assert encoded[3:] == [process]
    serving_changes[0] += 1
    assert cache.peek() is not None  # the serving part waits for max_age too
    clock.now += 1.0
    assert b"serving_answers 5.0" in cache() and encoded[4:] == [serving, process]
    version[0] += 1  # the state changed: its part at once, the serving part as it was
    assert cache() == whole() and encoded[6:] == [registry, process]
    assert cache.encodings == 4


def test_a_monitor_registry_is_its_steady_then_serving_then_process_parts() -> None:
    from monitor.exporter import MonitorState, ServingSpec, ServingStats, make_registry

    state = MonitorState([], started_at=0.0, version="9.9")
    stats = ServingStats([ServingSpec("m", 0.1, 0.99, 0.999)])
    registry = make_registry(state, serving=stats)
    parts = [encode(registry.steady), encode(registry.serving), encode(registry.process)]
    assert b"kmeans_build_info" in parts[0] and b"python_info" in parts[0]
    assert b"kmeans_serving_" in parts[1] and b"kmeans_serving_" not in parts[0] + parts[2]
    assert b"process_" in parts[2] and b"python_gc_" in parts[2]
    assert b"process_" not in parts[0] + parts[1]
    # Process figures move between two encodings: compare the families, not the values.
    assert _families(encode(registry)) == _families(b"".join(parts))
    before = stats.changes
    stats.answered("m", "live", 400)
    assert stats.changes == before + 1


def _families(exposition: bytes) -> list[bytes]:
    return [line for line in exposition.splitlines() if line.startswith(b"# TYPE")]


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


def test_peek_serves_the_bytes_being_replaced_while_newer_ones_are_encoded(
    registry: CollectorRegistry,
) -> None:
    """The event loop never queues scrapes behind an encoding another thread has begun."""
    version = [0]
    entered, release = threading.Event(), threading.Event()

    def slow_encode(reg: Registry) -> bytes:
        if version[0]:
            entered.set()
            assert release.wait(PATIENCE)
        return encode(reg)

    cache = MetricsCache(registry, lambda: version[0], max_age=None, encoder=slow_encode)
    old, old_gz = cache(), cache.gzipped()
    version[0] += 1
    assert cache.peek() is None  # stale and nobody encoding: the caller must encode
    worker = threading.Thread(target=cache.gzipped)
    worker.start()
    try:
        assert entered.wait(PATIENCE)
        assert cache.peek() is old and cache.peek(gzipped=True) is old_gz
    finally:
        release.set()
        worker.join(PATIENCE)
    new = cache.peek()
    assert new is not None and new is not old and cache.encodings == 2
    new_gz = cache.peek(gzipped=True)  # compressed in the same step as the new encoding
    assert new_gz is not None and gzip.decompress(new_gz) == new


# -- the fast path's framed answer: built once per bytes and per second of its Date --


class FakeTime:
    """time.time for the server and the wire module, moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.monotonic = time.monotonic

    def time(self) -> float:
        return self.now


def cached_server(
    serve: Callable[..., Running], registry: CollectorRegistry
) -> tuple[Running, MetricsCache, list[int]]:
    version = [0]
    cache = MetricsCache(registry, lambda: version[0], max_age=None)
    cache()  # fresh bytes from the start: every scrape takes the fast path
    return serve(Routes(registry=registry, metrics=cache)), cache, version


def test_keep_alive_scrapes_get_the_cached_bytes_with_every_header_of_a_response(
    serve: Callable[..., Running], registry: CollectorRegistry
) -> None:
    running, cache, _ = cached_server(serve, registry)
    with running.connect() as sock:
        answers = []
        for _ in range(3):
            request(sock)
            answers.append(read_response(sock))
    vary = (("Vary", "Accept-Encoding"),)
    expected = response_head(Response(200, cache(), CONTENT_TYPE, vary), keep_alive=True)
    names = {line.split(":")[0].lower() for line in expected.decode().split("\r\n")[1:] if line}
    for status, headers, body in answers:
        assert status == 200 and body == cache()
        assert set(headers) == names
        assert headers["content-length"] == str(len(body))
        assert headers["content-type"] == CONTENT_TYPE
        assert headers["connection"] == "keep-alive"
        assert headers["vary"] == "Accept-Encoding" and "content-encoding" not in headers


def test_head_and_a_last_request_are_framed_as_they_ask_not_as_the_cached_answer(
    serve: Callable[..., Running], registry: CollectorRegistry
) -> None:
    running, cache, _ = cached_server(serve, registry)
    with running.connect() as sock:
        sock.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.settimeout(PATIENCE)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        assert head.endswith(b"\r\n\r\n")  # no body followed the head
        assert f"Content-Length: {len(cache())}\r\n".encode() in head
        request(sock, extra="Connection: close\r\n")
        status, headers, body = read_response(sock)
        assert (status, body, headers["connection"]) == (200, cache(), "close")
        assert closed_by_server(sock)


def test_new_bytes_are_served_at_once_and_the_date_follows_the_clock(
    serve: Callable[..., Running],
    registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeTime(1_000_000_000.0)
    monkeypatch.setattr(_server, "time", clock)
    monkeypatch.setattr(_wire, "time", clock)
    running, cache, version = cached_server(serve, registry)
    gauge = registry._names_to_collectors["kmeans_value"]  # type: ignore[attr-defined]
    with running.connect() as sock:
        request(sock)
        _, first, body = read_response(sock)
        assert b"kmeans_value 1.0" in body and first["date"] == "Sun, 09 Sep 2001 01:46:40 GMT"
        gauge.set(2)
        version[0] += 1
        cache()  # the state changed and was encoded again: the fast path has new bytes
        request(sock)
        _, _, body = read_response(sock)
        assert b"kmeans_value 2.0" in body
        clock.now += 1.0
        request(sock)
        _, later, same = read_response(sock)
        assert same == body and later["date"] == "Sun, 09 Sep 2001 01:46:41 GMT"


def test_a_framed_response_is_its_keep_alive_head_and_its_body() -> None:
    framed = Response.framed(200, b"x 1\n", CONTENT_TYPE)
    assert framed == Response(200, b"x 1\n", CONTENT_TYPE)  # the framing is not its identity
    assert framed.wire is not None
    head, _, body = framed.wire.partition(b"\r\n\r\n")
    assert body == b"x 1\n"
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 4\r\n" in head and b"\r\nConnection: keep-alive" in head
    assert Response(200, b"x 1\n").wire is None


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("deflate, GZIP;q=0.5", True),
        ("x-gzip", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("gzip;q=bad", False),
        ("identity", False),
        ("*", False),  # plain is acceptable under "*" too: no need to compress
        ("", False),
        (None, False),
    ],
)
def test_accept_encoding_admits_gzip_only_with_a_positive_weight(
    value: str | None, accepted: bool
) -> None:
    assert _wire.accepts_gzip(value) is accepted


def test_a_scraper_that_accepts_gzip_gets_the_same_exposition_compressed(
    serve: Callable[..., Running], registry: CollectorRegistry
) -> None:
    running, cache, version = cached_server(serve, registry)
    assert cache.peek(gzipped=True) is None  # compressed on the first request for it
    answers = []
    with running.connect() as sock:
        for _ in range(2):  # the first on a worker, the next on the fast path
            request(sock, extra="Accept-Encoding: gzip\r\n")
            answers.append(read_response(sock))
        version[0] += 1  # new bytes: compressed again
        request(sock, extra="Accept-Encoding: gzip\r\n")
        answers.append(read_response(sock))
        request(sock, extra="Accept-Encoding: gzip;q=0\r\n")
        plain = read_response(sock)
    for status, headers, body in answers:
        assert status == 200 and headers["content-encoding"] == "gzip"
        assert headers["vary"] == "Accept-Encoding"
        assert headers["content-length"] == str(len(body))
        assert gzip.decompress(body) == cache()
    assert answers[0][2] == answers[1][2] == cache.peek(gzipped=True)
    assert cache.encodings == 2
    assert plain[0] == 200 and "content-encoding" not in plain[1] and plain[2] == cache()


def test_gzipped_bytes_follow_the_plain_ones(registry: CollectorRegistry) -> None:
    gauge = Gauge("g", "a gauge", registry=registry)
    version = [0]
    cache = MetricsCache(registry, lambda: version[0], max_age=None)
    first = cache.gzipped()
    assert cache.gzipped() is first and cache.peek(gzipped=True) is first
    gauge.set(7)
    assert cache.peek(gzipped=True) is first  # no version bump: the state says nothing changed
    version[0] += 1
    assert cache.peek(gzipped=True) is None  # stale: never compressed on the event loop
    assert b"g 7.0" in gzip.decompress(cache.gzipped())
