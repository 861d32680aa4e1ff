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
        runbook_html=lambda name: f"<h1>{name}</h1>" if name == "KMeansX" else None,
        models_json=lambda: [{"model": "m"}],
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
    assert get(server + "/runbooks/KMeansX")[0::2] == (200, "<h1>KMeansX</h1>")
    assert get(server + "/runbooks/Nope")[0] == 404
    status, _, body = get(server + "/api/models")
    assert status == 200 and json.loads(body) == [{"model": "m"}]
    assert get(server + "/nowhere")[0] == 404


def test_a_broken_page_is_a_500_and_the_server_keeps_serving(server: str) -> None:
    assert get(server + "/")[0] == 500
    assert get(server + "/healthz")[0] == 200
