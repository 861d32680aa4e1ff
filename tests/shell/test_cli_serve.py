"""`kmeans-monitor serve`: the label API as its own process, following the store; and
`snapshots reject`, the one command that turns a canary off."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from monitor.bootstrap import open_store
from monitor.cli import main
from monitor.serving.client import LabelsClient, LabelsError
from tests.serving._support import fitted, wait_until

FEATURES = ["f0", "f1", "f2"]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A model `shop` with v1 live and v2 pending, and a canary share of 1 (the whole
    traffic, so that which version answers shows the canary at once)."""
    store = open_store(tmp_path / "state")
    store.save(fitted(seed=1).snapshot, state="live")
    store.save(fitted(seed=2).snapshot, state="pending")
    model = {
        "name": "shop",
        "features": FEATURES,
        "k": 4,
        "window": "1h",
        "schedule": {"interval": "5m"},
        "source": {"kind": "synthetic"},
        "serving": {"canary_share": 1.0},
    }
    path = tmp_path / "monitor.yaml"
    document = {"daemon": {"state_dir": "state"}, "serving": {"refresh": "0.1s"}, "models": [model]}
    path.write_text(yaml.safe_dump(document))
    return path


def test_serve_answers_follows_a_rejection_and_stops_on_sigterm(
    config: Path, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "serve",
                "--config",
                str(config),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                with LabelsClient(url, timeout=2) as client:
                    return client.labels("shop", np.ones((1, 3))).variant == "canary"
            except LabelsError as exc:  # not listening yet: no answer at all
                if exc.status != 0:
                    raise
                return False

        assert wait_until(answers, 30), log.read_text()
        result = invoke("snapshots", "reject", "shop", "--config", str(config))
        assert result.exit_code == 0
        assert "rejected v2" in result.output
        with LabelsClient(url) as client:
            assert wait_until(lambda: client.labels("shop", np.ones((1, 3))).version == 1)
            assert client.labels("shop", np.ones((1, 3))).variant == "live"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert f"serving labels of 1 model(s) at http://127.0.0.1:{port}/v1/models" in text
    assert "model=shop serving live v1, canary none" in text


def test_serve_on_a_port_in_use_is_one_line_and_exit_2(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with caplog.at_level(logging.INFO, logger="monitor"):
            result = CliRunner().invoke(
                main, ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
            )
    assert result.exit_code == 2
    assert result.output.startswith(f"error: cannot listen on 127.0.0.1:{port} (--listen): ")
    assert result.output.count("\n") == 1
    # Said before any model is loaded: it came after every model's load (minutes for many).
    assert not [r.getMessage() for r in caplog.records if "serving live" in r.getMessage()]


def test_serve_with_a_bad_listen_address_is_exit_2(config: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--listen", "nowhere"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output


def test_reject_clears_the_pending_pointer_only(config: Path, tmp_path: Path) -> None:
    store = open_store(tmp_path / "state")
    wrong = invoke("snapshots", "reject", "shop", "3", "--config", str(config))
    assert wrong.exit_code == 2
    assert "error: model 'shop': v3 is not the pending candidate (v2 is)" in wrong.output
    assert store.pending_version("shop") == 2
    done = invoke("snapshots", "reject", "shop", "v2", "--config", str(config))
    assert done.exit_code == 0
    assert (store.live_version("shop"), store.pending_version("shop")) == (1, None)
    assert store.versions("shop") == [1, 2]  # kept, retired
    again = invoke("snapshots", "reject", "shop", "--config", str(config))
    assert (again.exit_code, again.output) == (
        2,
        "error: model 'shop' has no pending candidate\n",
    )


def typo_config(tmp_path: Path) -> Path:
    """A model whose state_dir no daemon has written: no store there yet."""
    model = {"name": "shop", "features": FEATURES, "k": 4, "window": "1h"}
    model |= {"schedule": {"interval": "5m"}, "source": {"kind": "synthetic"}}
    doc = {"daemon": {"state_dir": str(tmp_path / "stat_typo")}, "models": [model]}
    path = tmp_path / "monitor.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_serve_over_a_store_with_no_live_version_is_unready_and_says_so(tmp_path: Path) -> None:
    # A mistyped state_dir: serve made the directory without a word and /readyz said
    # "ready" while every label request was a 503 (helper-82).
    from monitor.bootstrap import build_serving_app, load_settings

    app = build_serving_app(load_settings(typo_config(tmp_path)))
    app.serving.catalog.refresh()  # as a label server does once it listens
    snapshots = tmp_path / "stat_typo" / "snapshots"
    assert app.ready() == (False, f"serving: no model has a live version in {snapshots} yet")
    app.store.save(fitted(seed=1).snapshot, state="live")
    app.serving.catalog.refresh()
    assert app.ready() == (True, "ready")


def test_serve_warns_of_a_store_it_had_to_make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor import daemon

    def started(server: Any, on_started: Any) -> None:
        on_started()
        server.http.stop()  # the listener closed, as a signal would close it

    monkeypatch.setattr(daemon, "run_until_signal", started)
    config = str(typo_config(tmp_path))
    listen = ["--listen", f"127.0.0.1:{free_port()}"]
    result = CliRunner().invoke(main, ["serve", "--config", config, *listen])
    assert result.exit_code == 0, result.output
    snapshots = tmp_path / "stat_typo" / "snapshots"
    assert result.stderr.splitlines() == [
        f"warning: no model has a live version in {snapshots} (made now: it did not exist); "
        "/readyz answers 503 and every label request no_model until a daemon with this "
        "state_dir trains one"
    ]
    again = CliRunner().invoke(main, ["serve", "--config", config, *listen])
    assert "(made now" not in again.stderr and "no model has a live version" in again.stderr
