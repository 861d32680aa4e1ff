"""The HTTP server answers every route, and survives a broken page."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from monitor.http import HttpServer, Routes


def broken() -> str:
    raise RuntimeError("page bug")


@pytest.fixture
def server() -> Iterator[str]:
    registry = CollectorRegistry()
    Counter("kmeans_test_total", "A test counter.", registry=registry).inc(3)
    routes = Routes(
        registry=registry,
        ready=lambda: (False, "store not readable: boom"),
        runbook_html=lambda name, model: f"<h1>{name} {model}</h1>" if name == "KMeansX" else None,
        models_json=lambda: [{"model": "m"}],
        model_html=lambda name: f"<h1>{name}</h1>" if name == "m" else None,
        model_json=lambda name: {"model": name} if name == "m" else None,
        index_html=broken,
    )
    srv = HttpServer("127.0.0.1", 0, routes)
    srv.start()
    host, port = srv.address
    yield f"http://{host}:{port}"
    srv.stop()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_routes(server: str) -> None:
    status, ctype, body = get(server + "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=")
    assert "kmeans_test_total 3.0" in body
    assert get(server + "/healthz")[:1] == (200,)
    assert get(server + "/readyz") == (
        503,
        "text/plain; charset=utf-8",
        "store not readable: boom\n",
    )
    assert get(server + "/runbooks/KMeansX")[0::2] == (200, "<h1>KMeansX None</h1>")
    # The static site's path and the model to open the runbook on.
    assert get(server + "/runbooks/KMeansX.html?model=m&x=1")[2] == "<h1>KMeansX m</h1>"
    assert get(server + "/runbooks/Nope")[0] == 404
    assert get(server + "/models/m") == (200, "text/html; charset=utf-8", "<h1>m</h1>")
    for path in ("/api/models/m", "/models/m.json"):
        status, ctype, body = get(server + path)
        assert (status, ctype, json.loads(body)) == (200, "application/json", {"model": "m"})
    for path in ("/models/nope", "/api/models/nope", "/models/nope.json"):
        assert get(server + path)[0::2] == (404, "no such model\n")
    status, _, body = get(server + "/api/models")
    assert status == 200 and json.loads(body) == [{"model": "m"}]
    assert get(server + "/nowhere")[0] == 404


def test_a_broken_page_is_a_500_and_the_server_keeps_serving(server: str) -> None:
    assert get(server + "/")[0] == 500
    assert get(server + "/healthz")[0] == 200


def test_routes_need_only_a_registry() -> None:
    registry = CollectorRegistry()
    Counter("kmeans_only_total", "A counter.", registry=registry).inc()
    srv = HttpServer("127.0.0.1", 0, Routes(registry=registry))
    srv.start()
    host, port = srv.address
    try:
        base = f"http://{host}:{port}"
        assert "kmeans_only_total 1.0" in get(base + "/metrics")[2]
        assert get(base + "/readyz") == (200, "text/plain; charset=utf-8", "ok\n")
        assert get(base + "/api/models")[0] == 404
        assert get(base + "/runbooks/KMeansX")[0] == 404
        status, ctype, body = get(base + "/")
        assert (status, ctype) == (200, "text/html; charset=utf-8") and "/metrics" in body
        # A model-page link without a model (the on-call table's daemon-level alerts)
        # opens the index; it was a 404 (fuzz94).
        assert get(base + "/models/") == (status, ctype, body)
        # The static site's path of its front page: the README says the daemon answers
        # the site's paths, but /index.html was a 404 (helper-160).
        assert get(base + "/index.html") == (status, ctype, body)
    finally:
        srv.stop()


def test_metrics_come_from_the_prerendered_bytes_when_given() -> None:
    registry = CollectorRegistry()
    Counter("kmeans_registry_total", "Not served when bytes are given.", registry=registry)
    rendered = b"# prerendered\nkmeans_cached_total 7.0\n"
    srv = HttpServer("127.0.0.1", 0, Routes(registry=registry, metrics=lambda: rendered))
    srv.start()
    host, port = srv.address
    try:
        status, ctype, body = get(f"http://{host}:{port}/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=")
        assert body == rendered.decode()
    finally:
        srv.stop()


def test_head_answers_the_headers_without_the_body(server: str) -> None:
    request = urllib.request.Request(server + "/healthz", method="HEAD")
    with urllib.request.urlopen(request, timeout=5) as r:
        assert (r.status, r.headers["Content-Length"], r.read()) == (200, "3", b"")


def test_the_server_header_names_no_version(server: str) -> None:
    with urllib.request.urlopen(server + "/healthz", timeout=5) as r:
        assert r.headers["Server"] == "kmeans-monitor"
        assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_only_get_and_head_are_answered(server: str) -> None:
    request = urllib.request.Request(server + "/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert (caught.value.code, caught.value.headers["Allow"]) == (405, "GET, HEAD")


@pytest.mark.parametrize(("host", "url_host"), [("::1", "[::1]"), ("localhost", "127.0.0.1")])
def test_ipv6_and_host_names_are_listened_on(host: str, url_host: str) -> None:
    srv = HttpServer(host, 0, Routes(registry=CollectorRegistry()))
    srv.start()
    try:
        assert get(f"http://{url_host}:{srv.address[1]}/healthz")[0] == 200
    finally:
        srv.stop()


def test_a_port_in_use_fails_at_construction() -> None:
    first = HttpServer("127.0.0.1", 0, Routes(registry=CollectorRegistry()))
    try:
        with pytest.raises(OSError):
            HttpServer("127.0.0.1", first.address[1], Routes(registry=CollectorRegistry()))
    finally:
        first.stop()
