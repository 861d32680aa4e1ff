"""Fixtures of the serving tests: label servers over a store, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from monitor.bootstrap import build_serving_app
from monitor.config import Settings
from monitor.daemon import LabelServer
from monitor.ports import SnapshotStore
from tests.serving._support import Running


@pytest.fixture
def serve_labels() -> Iterator[Callable[[Settings, SnapshotStore], Running]]:
    """Start label servers over a store (following it every 50 ms); stop them all after."""
    started: list[LabelServer] = []

    def start(settings: Settings, store: SnapshotStore) -> Running:
        app = build_serving_app(settings, store=store)
        server = LabelServer(app)
        server.start()
        started.append(server)
        return Running(server, app)

    yield start
    for server in started:
        server.stop()
