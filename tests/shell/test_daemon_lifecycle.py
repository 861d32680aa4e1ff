"""The daemon's start-up pieces: staggered first runs, and a port lost after the checks."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.bootstrap import build_app
from monitor.config import parse
from monitor.daemon import Daemon, first_run_offsets
from monitor.errors import InvalidInputError
from monitor.sources import SOURCES

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def model(name: str, **schedule: Any) -> dict[str, Any]:
    return {
        "name": name,
        "features": ["a", "b"],
        "k": 2,
        "window": "10m",
        "schedule": schedule,
        "source": {"kind": "synthetic", "seed": 1},
    }


def test_first_runs_are_spread_over_the_interval_up_to_a_minute() -> None:
    fast = parse({"models": [model(f"m{i}", interval="6s") for i in range(3)]}, sources=SOURCES)
    assert first_run_offsets(fast, NOW) == {"m0": 0.0, "m1": 2.0, "m2": 4.0}
    # A long interval spreads over a minute, not over the hour: first metrics come soon.
    slow = parse(
        {"models": [model("a", interval="1h"), model("b", cron="*/30 * * * *")]},
        sources=SOURCES,
    )
    assert first_run_offsets(slow, NOW) == {"a": 0.0, "b": 30.0}


def test_a_port_taken_after_the_checks_is_a_user_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        raw = {
            "daemon": {"state_dir": str(tmp_path / "state"), "listen": f"127.0.0.1:{port}"},
            "models": [model("m", interval="1m")],
        }
        app = build_app(parse(raw, sources=SOURCES))
        try:
            with pytest.raises(InvalidInputError) as info:
                Daemon(app)
        finally:
            app.close()
    assert str(info.value) == (
        f"cannot listen on 127.0.0.1:{port} (daemon.listen): port {port} of 127.0.0.1 is in "
        "use: another process listens there, perhaps a kmeans-monitor already running"
    )
