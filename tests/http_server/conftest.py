"""Fixtures of the HTTP server tests: servers on 127.0.0.1 stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor.http import HttpServer, Limits, Routes, WebConfig
from tests.http_server._support import Certificate, Running, make_certificate, registry_with_counter


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    """Start servers with given routes, limits and web config; stop them all afterwards."""
    started: list[HttpServer] = []

    def start(
        routes: Routes | None = None,
        *,
        limits: Limits | None = None,
        web: WebConfig | None = None,
    ) -> Running:
        routes = routes or Routes(registry=registry_with_counter())
        server = HttpServer("127.0.0.1", 0, routes, web=web, limits=limits)
        server.start()
        started.append(server)
        host, port = server.address
        return Running(server, host, port)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return make_certificate(tmp_path)
