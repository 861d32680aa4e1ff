"""``evaluate --dry-run``: a real run whose writes go nowhere, and what it would have done."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from monitor.cli import main
from tests.fakes import blobs

CENTERS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def write_csv(path: Path, X: np.ndarray, mtime: float) -> None:
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="")
    os.utime(path, (mtime, mtime))


def state_digest(state: Path) -> str:
    """Every file of the state directory, but SQLite's own -wal/-shm companions.

    A reader of a WAL database makes those when no writer has them open (SQLite's
    business, not ours); the WAL a read-only reader leaves is empty, which is checked.
    """
    h = hashlib.sha256()
    for p in sorted(state.rglob("*")):
        if p.name.endswith(("-wal", "-shm")):
            assert not p.name.endswith("-wal") or p.stat().st_size == 0, p
            continue
        h.update(str(p.relative_to(state)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def config(tmp_path: Path, retrain: str, **daemon: str) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    cfg = tmp_path / "monitor.yaml"
    model = {
        "name": "shop",
        "features": ["a", "b", "c"],
        "k": 3,
        "window": "1h",
        "schedule": {"interval": "5m"},
        "source": {"kind": "files", "path": str(data), "pattern": "*.csv"},
        "training": {"n_init": 2, "silhouette_sample": 500},
        "retrain": retrain,
        # One window: on-drift promotes at a drift's first run (a longer period waits
        # until the drift has lasted it: docs/slis.md, "Retrained models").
        "reference": {"window": "1h"},
    }
    settings = {"daemon": {"state_dir": "state", **daemon}, "models": [model]}
    cfg.write_text(yaml.safe_dump(settings))
    return cfg, data


def drift(data: Path) -> None:
    moved = CENTERS.copy()
    moved[1, 1] += 3.0
    write_csv(data / "w2.csv", blobs(900, moved, seed=2), time.time() - 10)


def test_a_dry_run_decides_as_the_real_run_and_writes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor")
    cfg, data = config(tmp_path, "on-drift")
    write_csv(data / "w1.csv", blobs(900, CENTERS, seed=1), time.time() - 100)
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0
    drift(data)
    state = tmp_path / "state"
    before = state_digest(state)
    caplog.clear()

    dry = invoke("evaluate", "--config", str(cfg), "--dry-run")
    assert dry.exit_code == 0, dry.output
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("dry run: real runs whose snapshots, pointers and history")
    assert f"nothing is written to {state.resolve()}" in lines[0]
    assert "retrained on drift" in lines[1]
    assert lines[2].strip() == "dry run: would have stored v2 and made it live; nothing written"
    assert state_digest(state) == before
    # The runner's own log of the run (and its commands) is left out of a dry run...
    assert not [r for r in caplog.records if r.levelno < logging.WARNING]
    assert logging.getLogger("monitor").level == logging.INFO  # ...and only for its time.

    real = invoke("evaluate", "--config", str(cfg), "--json")
    [ev] = json.loads(real.stdout)
    assert ev["promoted"] and ev["candidate_version"] == 2 and "dry_run" not in ev
    assert any("model=shop" in r.getMessage() for r in caplog.records)


def test_a_dry_run_on_a_new_state_dir_trains_the_first_model_in_memory(tmp_path: Path) -> None:
    cfg, data = config(tmp_path, "manual", pushgateway="http://127.0.0.1:9")
    write_csv(data / "w1.csv", blobs(900, CENTERS, seed=1), time.time() - 100)
    result = invoke("evaluate", "--config", str(cfg), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert "dry run: metrics not pushed to http://127.0.0.1:9" in result.stderr
    [ev] = json.loads(result.stdout)
    assert ev["dry_run"] is True and ev["live_version"] == 1 and ev["promoted"]
    assert not (tmp_path / "state").exists()
    text = invoke("evaluate", "--config", str(cfg), "--dry-run")
    assert "would have stored v1 as the model's first live version" in text.stdout


def states(cfg: Path) -> dict[int, str]:
    listing = json.loads(invoke("snapshots", "list", "--config", str(cfg), "--json").stdout)
    return {v["version"]: v["state"] for v in listing["shop"]}


def test_a_manual_candidate_stays_unwritten_and_no_approve_command_is_printed(
    tmp_path: Path,
) -> None:
    cfg, data = config(tmp_path, "manual")
    write_csv(data / "w1.csv", blobs(900, CENTERS, seed=1), time.time() - 100)
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0
    drift(data)
    before = state_digest(tmp_path / "state")
    dry = invoke("evaluate", "--config", str(cfg), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "drift awaits manual approval" in dry.stdout
    assert "would have stored v2 as a candidate awaiting approval" in dry.stdout
    assert "approve with" not in dry.output
    assert state_digest(tmp_path / "state") == before
    assert states(cfg) == {1: "live"}
    # The real run does what the dry run said, and prints the command to approve.
    assert "approve with" in invoke("evaluate", "--config", str(cfg)).stdout
    assert states(cfg) == {1: "live", 2: "pending"}


def test_with_a_candidate_pending_the_dry_run_says_what_the_next_real_run_does(
    tmp_path: Path,
) -> None:
    cfg, data = config(tmp_path, "manual")
    write_csv(data / "w1.csv", blobs(900, CENTERS, seed=1), time.time() - 100)
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0
    drift(data)
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0
    pending = states(cfg)
    dry = invoke("evaluate", "--config", str(cfg), "--dry-run")
    assert dry.exit_code == 0, dry.output
    [said] = [
        ln.strip() for ln in dry.stdout.splitlines() if ln.strip().startswith("dry run: would")
    ]
    assert states(cfg) == pending
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0
    after = states(cfg)
    # Whatever the policy does with a pending candidate (keep it, or store a fresher one),
    # the dry run said it before the real run did it.
    if said == "dry run: would have stored no version; nothing written":
        assert after == pending
    else:
        [new] = set(after) - set(pending)
        assert said == (
            f"dry run: would have stored v{new} as a candidate awaiting approval; nothing written"
        )
        assert after[new] == "pending"


def test_a_failed_dry_run_exits_1_and_records_nothing(tmp_path: Path) -> None:
    cfg, data = config(tmp_path, "manual")
    X = blobs(900, CENTERS, seed=1)
    X[::3, 0] = np.nan
    write_csv(data / "w1.csv", X, time.time() - 5)
    result = invoke("evaluate", "--config", str(cfg), "--dry-run")
    assert result.exit_code == 1
    assert "FAILED (invalid_values)" in result.stdout
    assert "dry run: would have recorded the failure; nothing written" in result.stdout
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("where", ["under a file", "snapshots is a file"])
def test_a_dry_run_refuses_a_state_dir_the_real_run_refuses(tmp_path: Path, where: str) -> None:
    """The dry run read a state directory under /dev/null as empty and exited 0 ('would
    have stored v1'); the real run exits 2 on it."""
    cfg, data = config(tmp_path, "manual")
    write_csv(data / "w1.csv", blobs(900, CENTERS, seed=1), time.time() - 100)
    (tmp_path / "file").write_text("")
    state = tmp_path / "file" / "state"
    problem = (
        f"must be a directory, or a path where one can be made ({tmp_path / 'file'} is a file)"
    )
    if where == "snapshots is a file":
        state = tmp_path / "state"
        (state / "snapshots").parent.mkdir()
        (state / "snapshots").write_text("")
        problem = f"{state / 'snapshots'} is not a directory"
    for dry in ([], ["--dry-run"]):
        result = invoke("evaluate", "--config", str(cfg), "--state-dir", str(state), *dry)
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines()[-1].startswith(
            f"error: invalid configuration: --state-dir (daemon.state_dir): {problem}"
        )
        assert result.stdout == ""


def test_a_dry_run_pushes_nothing(tmp_path: Path) -> None:
    cfg, _ = config(tmp_path, "manual")
    result = invoke(
        "evaluate", "--config", str(cfg), "--dry-run", "--push-to", "http://127.0.0.1:9"
    )
    assert result.exit_code == 2
    assert result.output == "error: --dry-run pushes nothing: drop --push-to\n"


def test_the_help_says_it_is_safe() -> None:
    text = " ".join(invoke("evaluate", "--help").output.split())
    assert "--dry-run Run for real but write nothing" in text and "safe for diagnosis" in text
