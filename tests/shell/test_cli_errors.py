"""Every command on odd input: one line, a documented exit code, nothing stored changed.

Exit codes: 0 done, 1 a run failed or the push failed (evaluate) or files are stale
(render --check), 2 a user error (option, configuration, input, store), 70 a bug.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from monitor.bootstrap import claim_state_dir
from monitor.checks import shown_path
from monitor.cli import EXIT_FAILED, EXIT_INTERNAL, EXIT_USER, main
from monitor.interrupts import EXIT_INTERRUPTED
from monitor.store.history import SCHEMA_SINCE, SCHEMA_VERSION
from tests.fakes import blobs
from tests.http_server._support import make_certificate
from tests.sources.test_prometheus import FakePrometheus

CENTERS = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def model(source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "shop",
        "features": ["a", "b"],
        "k": 3,
        "window": "1h",
        "schedule": {"interval": "5m"},
        "source": source,
        "training": {"n_init": 1, "silhouette_sample": 300},
        **extra,
    }


def write_config(tmp_path: Path, *models: dict[str, Any], **daemon: Any) -> Path:
    cfg = tmp_path / "monitor.yaml"
    section = {"state_dir": "state", "listen": "127.0.0.1:0", **daemon}
    cfg.write_text(yaml.safe_dump({"daemon": section, "models": list(models)}))
    return cfg


def stored(state: Path) -> dict[str, str]:
    """Every file of the snapshot store, by content (the history is checked apart)."""
    root = state / "snapshots"
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def history_rows(state: Path) -> dict[str, int]:
    path = state / "history.sqlite"
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        return {t: db.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}


def files_config(root: Path) -> Path:
    source = {"kind": "files", "path": str(root / "data"), "pattern": "*.csv"}
    return write_config(root, model(source))


@pytest.fixture(scope="module")
def files_trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A files-source model with one trained version in the store, trained once."""
    root = tmp_path_factory.mktemp("files-setup")
    (root / "data").mkdir()
    np.savetxt(
        root / "data" / "w.csv", blobs(600, CENTERS, seed=1), delimiter=",", header="a,b",
        comments="",
    )  # fmt: skip
    first = invoke("evaluate", "--config", str(files_config(root)))
    assert first.exit_code == 0, first.output
    return root


@pytest.fixture
def files_setup(files_trained: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of ``files_trained`` of the test's own: its tests change what is stored."""
    shutil.copytree(files_trained, tmp_path, dirs_exist_ok=True)
    return files_config(tmp_path), tmp_path / "data"


# --------------------------------------------------------------------------- check-config


@pytest.mark.parametrize("name", ["history.sqlite", "history.sqlite-wal", "history.sqlite-shm"])
def test_check_config_refuses_a_linked_history_file_as_evaluate_does(
    files_setup: tuple[Path, Path], name: str
) -> None:
    # check-config said OK for a linked history.sqlite, then run and evaluate refused the
    # link; a linked -wal was "unable to open database file", naming no link (h146).
    cfg, _ = files_setup
    state = cfg.parent / "state"
    real = cfg.parent / f"real-{name}"
    if (state / name).exists():
        (state / name).rename(real)
    else:
        real.write_bytes(b"")
    (state / name).symlink_to(real)
    said = (
        f"cannot open the history database {state / 'history.sqlite'}: {state / name} is a "
        "symbolic link, which kmeans-monitor never makes: remove it "
        f"(`rm {state / name}`); it is not written through"
    )
    for command in (["check-config", str(cfg)], ["evaluate", "--config", str(cfg)]):
        refused = invoke(*command)
        assert refused.exit_code == EXIT_USER and said in refused.stderr, refused.output


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        (
            "61 * * * *",
            "models[shop].schedule.cron: must be a crontab expression the scheduler accepts "
            "(minute '61': Error validating expression '61': the last value (61) is higher "
            "than the maximum value (59)); got '61 * * * *'",
        ),
        (
            "a b c d e",
            "models[shop].schedule.cron: must be a crontab expression the scheduler accepts "
            "(minute 'a': Unrecognized expression \"a\" for field \"minute\"); got 'a b c d e'",
        ),
    ],
)
def test_check_config_runs_cron_through_the_scheduler(
    tmp_path: Path, cron: str, problem: str
) -> None:
    cfg = write_config(tmp_path, model({"kind": "synthetic"}, schedule={"cron": cron}))
    result = invoke("check-config", str(cfg))
    assert result.exit_code == EXIT_USER
    assert result.stderr.splitlines() == [f"{cfg}: 1 problem(s)", f"  - {problem}"]
    # run refuses the same file with the same line, before touching anything.
    ran = invoke("run", "--config", str(cfg))
    assert ran.exit_code == EXIT_USER and problem in ran.stderr
    assert not (tmp_path / "state").exists()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_check_config_and_run_refuse_a_listen_address_that_cannot_serve(
    tmp_path: Path, busy_port: int
) -> None:
    cases = {
        f"127.0.0.1:{busy_port}": f"port {busy_port} of 127.0.0.1 is in use: another process "
        "listens there, perhaps a kmeans-monitor already running",
        "nonexistent.invalid:9310": "the host 'nonexistent.invalid' does not resolve",
        # TEST-NET-1 (RFC 5737): never an address of this host.
        "192.0.2.1:9310": "192.0.2.1 is not an address of this host",
    }
    for listen, why in cases.items():
        cfg = write_config(tmp_path, model({"kind": "synthetic"}), listen=listen)
        checked = invoke("check-config", str(cfg))
        assert checked.exit_code == EXIT_USER
        [line] = [ln for ln in checked.stderr.splitlines() if ln.startswith("  - ")]
        assert line.startswith("  - daemon.listen: must be an address this host can listen on (")
        assert why in line and line.endswith(f"; got {listen!r}")
        for command in (["run", "--config", str(cfg)], ["demo", "--listen", listen]):
            result = invoke(*command, "--state-dir", str(tmp_path / "state"))
            assert result.exit_code == EXIT_USER, result.output
            assert why in result.stderr and "Traceback" not in result.output
    assert stored(tmp_path / "state") == {}


def test_a_run_refused_after_daemon_lock_was_removed_leaves_none_and_check_config_passes(
    tmp_path: Path, busy_port: int
) -> None:
    # The refused run left a new, empty daemon.lock, and check-config then took the
    # running daemon's port for another process's (helper-150).
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), listen=f"127.0.0.1:{busy_port}")
    lock = tmp_path / "state" / "daemon.lock"
    held = claim_state_dir(tmp_path / "state")  # as the running daemon holds it
    try:
        lock.unlink()
        ran = invoke("run", "--config", str(cfg), "--listen", "127.0.0.1:0")
        assert ran.exit_code == EXIT_USER, ran.output
        assert f"pid {os.getpid()}: its daemon.lock was removed" in ran.stderr
        assert not lock.exists()
        checked = invoke("check-config", str(cfg))
        assert checked.exit_code == 0, checked.output
    finally:
        held.close()
    checked = invoke("check-config", str(cfg))  # no daemon holds it now: the port is taken
    assert checked.exit_code == EXIT_USER, checked.output
    assert "is in use" in checked.stderr


def test_check_config_beside_the_running_daemon_takes_its_port_as_the_daemons(
    tmp_path: Path, busy_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    # The runbooks' "check the file, then restart the daemon" failed on the daemon's own
    # port, and so did the serve unit's ExecStartPre beside a running daemon.
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), listen=f"127.0.0.1:{busy_port}")
    held = claim_state_dir(tmp_path / "state")  # as the running daemon holds it
    try:
        with caplog.at_level(logging.INFO):
            checked = invoke("check-config", str(cfg))
            assert checked.exit_code == 0, checked.output
            ran = invoke("run", "--config", str(cfg))  # refused all the same, by the claim
        assert ran.exit_code == EXIT_USER
        [line] = ran.stderr.splitlines()
        assert line.startswith(f"error: another kmeans-monitor daemon (pid {os.getpid()})")
        # exB: both printed an INFO line ("... in use, taken to be by the daemon") on
        # stderr first: a user-facing error, and check-config's OK, are theirs alone.
        assert [r.getMessage() for r in caplog.records] == []
    finally:
        held.close()
    # A daemon that has stopped left its pid behind: the port is another process's. So
    # does a lock file holding a number no pid can be (os.kill raised OverflowError).
    for left in ("999999999", "9" * 30):
        (tmp_path / "state" / "daemon.lock").write_text(f"{left}\n")
        checked = invoke("check-config", str(cfg))
        assert checked.exit_code == EXIT_USER, checked.output
        assert "is in use" in checked.stderr


@pytest.mark.parametrize("where", ["state", "state/below"])
def test_check_config_refuses_a_file_where_the_state_directory_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """check-config said OK where run then failed to open its store; the problem names
    the variable that gave the directory (it said daemon.state_dir, which the file may
    not even hold)."""
    (tmp_path / "state").write_text("not a directory\n")
    state = tmp_path / where
    monkeypatch.setenv("KMEANS_MONITOR_STATE_DIR", str(state))
    cfg = write_config(tmp_path, model({"kind": "synthetic"}))
    for command in ("check-config", "run", "evaluate"):
        result = invoke(command, *([] if command == "check-config" else ["--config"]), str(cfg))
        assert result.exit_code == EXIT_USER, result.output
        assert (
            "KMEANS_MONITOR_STATE_DIR (daemon.state_dir): must be a directory, or a path where "
            f"one can be made ({tmp_path / 'state'} is a file); got {str(state)!r}\n"
        ) in result.stderr
        assert "Traceback" not in result.output
    assert (tmp_path / "state").read_text() == "not a directory\n"


@pytest.mark.parametrize(
    ("where", "absolute"), [("loop", False), ("loop/below", False), ("loop", True)]
)
def test_check_config_refuses_a_symbolic_link_loop_as_the_state_directory(
    tmp_path: Path, where: str, absolute: bool
) -> None:
    """A loop passed check-config (exists() is False on it) and stopped run on its lock
    file; given relative to the file, it was an internal error (Path.resolve raised)."""
    (tmp_path / "loop").symlink_to("loop")
    state = tmp_path / where
    cfg = write_config(
        tmp_path, model({"kind": "synthetic"}), state_dir=str(state) if absolute else where
    )
    for command in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
        result = invoke(*command)
        assert result.exit_code == EXIT_USER, result.output
        assert (
            f"daemon.state_dir: must be a directory, or a path where one can be made "
            f"({tmp_path / 'loop'} is a symbolic link loop); got {str(state)!r}\n"
        ) in result.stderr
        assert "Traceback" not in result.output


def _newer_history(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (99)")
        conn.commit()


def _foreign_database(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE x (a)")
        conn.commit()


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        ("snapshots", "{state}/snapshots is not a directory"),
        ("history.sqlite", "{state}/history.sqlite is not a file"),
        # A history run refuses (and evaluate wrote its tables into another program's).
        (
            "newer",
            "history database {state}/history.sqlite has schema version 99; this "
            f"kmeans-monitor reads up to {SCHEMA_VERSION} (builds from "
            f"{SCHEMA_SINCE[SCHEMA_VERSION]} on): run the newer kmeans-monitor that migrated "
            "it, or, to go back, restore the state directory's backup from before the "
            "upgrade (docs/upgrading.md)",
        ),
        (
            "garbage",
            "cannot open the history database {state}/history.sqlite: file is not a database: "
            "move it aside, and the next run starts a new one (no snapshot is in it)",
        ),
        (
            "foreign",
            "{state}/history.sqlite is a database of something else (tables x), not a "
            "kmeans-monitor history",
        ),
    ],
)
def test_check_config_refuses_a_state_directory_run_cannot_open(
    tmp_path: Path, make: str, problem: str
) -> None:
    """check-config said OK where run then failed to open its store or its history."""
    state = tmp_path / "state"
    state.mkdir()
    history = state / "history.sqlite"
    if make == "snapshots":
        (state / make).write_text("a file\n")
    elif make == "newer":
        _newer_history(history)
    elif make == "garbage":
        history.write_text("garbage")
    elif make == "foreign":
        _foreign_database(history)
    else:
        (state / make).mkdir()
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), state_dir=str(state))
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == EXIT_USER, checked.output
    assert f"  - daemon.state_dir: {problem.format(state=state)}\n" in checked.stderr
    started = invoke("run", "--config", str(cfg))
    assert started.exit_code == EXIT_USER and "Traceback" not in started.output


@pytest.mark.parametrize(
    "command",
    [["history", "shop", "--config"], ["run", "--config"], ["evaluate", "--config"]],
    ids=["history", "run", "evaluate"],
)
def test_a_history_that_is_not_a_database_is_a_store_error_not_an_invalid_configuration(
    tmp_path: Path, command: list[str]
) -> None:
    # "error: invalid configuration: ... file is not a database" sent people to a file
    # with nothing wrong in it.
    state = tmp_path / "state"
    state.mkdir()
    (state / "history.sqlite").write_text("garbage")
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), state_dir=str(state))
    result = invoke(*command, str(cfg))
    assert result.exit_code == EXIT_USER, result.output
    assert result.stderr == (
        f"error: daemon.state_dir: cannot open the history database {state}/history.sqlite: "
        "file is not a database: move it aside, and the next run starts a new one (no "
        "snapshot is in it)\n"
    )


def test_a_disk_error_on_the_history_says_to_free_space_not_to_fix_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `history` said on a full tmpfs, "invalid configuration" included.
    from monitor.store import history

    def disk_error(*args: Any, **kwargs: Any) -> Any:
        error = sqlite3.OperationalError("disk I/O error")
        error.sqlite_errorcode = sqlite3.SQLITE_IOERR | (3 << 8)  # type: ignore[attr-defined]
        raise error

    state = tmp_path / "state"
    state.mkdir()
    history.SQLiteHistory(state / "history.sqlite").close()
    monkeypatch.setattr(history.sqlite3, "connect", disk_error)
    result = invoke("history", "shop", "--state-dir", str(state))
    assert result.exit_code == EXIT_USER, result.output
    assert result.stderr == (
        f"error: --state-dir (daemon.state_dir): cannot open the history database "
        f"{state}/history.sqlite: disk I/O error: is its file system full? free space there "
        "(or check the disk)\n"
    )


@pytest.mark.parametrize(
    "origin", ["daemon.state_dir", "KMEANS_MONITOR_STATE_DIR (daemon.state_dir)"]
)
def test_check_config_warns_of_a_state_directory_this_user_cannot_write_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, origin: str
) -> None:
    # Root writes anywhere: the refusal is simulated where the probe file is made.
    from types import SimpleNamespace

    from monitor import bootstrap

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(bootstrap, "tempfile", SimpleNamespace(TemporaryFile=refused))
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), state_dir=str(tmp_path / "s"))
    if origin.startswith("KMEANS"):  # it said daemon.state_dir, the file's other value
        monkeypatch.setenv("KMEANS_MONITOR_STATE_DIR", str(tmp_path / "t"))
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == 0, checked.output  # the daemon may run as another user
    assert checked.stderr == (
        f"warning: {origin}: cannot write in {str(tmp_path)!r} as this user: "
        "Permission denied: run as this user would stop\n"
    )


@pytest.mark.skipif(
    os.geteuid() != 0, reason="as another user /proc/1 is not writable: a warning, as above"
)
@pytest.mark.parametrize("state", ["/proc/1/nope", "/proc/1/nope/deeper", "/proc/1"])
def test_check_config_refuses_a_state_directory_run_cannot_make_as_run_says_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    """check-config exited 0 with "warning: daemon.state_dir: cannot write in '/proc/1'
    as this user: No such file or directory: run as this user would stop", where run
    then refused it: no user can make a directory in /proc."""
    monkeypatch.setenv("KMEANS_MONITOR_STATE_DIR", state)
    cfg = write_config(tmp_path, model({"kind": "synthetic"}))
    started = invoke("run", "--config", str(cfg))
    assert started.exit_code == EXIT_USER, started.output
    [refused] = started.stderr.splitlines()
    assert refused.startswith(
        f"error: KMEANS_MONITOR_STATE_DIR (daemon.state_dir): cannot use the state directory "
        f"{state}: "
    )
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == EXIT_USER, checked.output
    assert checked.stderr == f"{cfg}: 1 problem(s)\n  - {refused.removeprefix('error: ')}\n"


@pytest.mark.parametrize("exists", [False, True])
def test_check_config_refuses_a_read_only_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exists: bool
) -> None:
    """A read-only file system refuses every user: a problem naming what run would fail
    on (the first directory it makes, or its lock file), not a warning."""
    from types import SimpleNamespace

    from monitor import bootstrap

    def read_only(*args: Any, **kwargs: Any) -> Any:  # root writes anywhere: simulated
        raise OSError(30, "Read-only file system", str(tmp_path / "tmpXYZ"))

    monkeypatch.setattr(bootstrap, "tempfile", SimpleNamespace(TemporaryFile=read_only))
    state = tmp_path / "ro" / "state"
    (state if exists else state.parent).mkdir(parents=True)
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), state_dir=str(state))
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == EXIT_USER, checked.output
    failed_on = state / "daemon.lock" if exists else state
    assert checked.stderr == (
        f"{cfg}: 1 problem(s)\n  - daemon.state_dir: cannot use the state directory {state}: "
        f"Read-only file system: {shown_path(failed_on)}\n"
    )


@pytest.mark.parametrize("below", ["state", "a/b/state"])
def test_check_config_passes_a_missing_state_directory_it_can_make_and_makes_nothing(
    tmp_path: Path, below: str
) -> None:
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), state_dir=below)
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == 0, checked.output
    assert checked.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["monitor.yaml"]


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("file", "daemon.state_dir"),
        ("env", "KMEANS_MONITOR_STATE_DIR (daemon.state_dir)"),
        ("flag", "--state-dir (daemon.state_dir)"),
    ],
)
@pytest.mark.parametrize("command", ["run", "evaluate"])
def test_a_state_directory_that_cannot_be_made_is_one_line_naming_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, origin: str, command: str
) -> None:
    """A parent that cannot be made, or a directory not writable: run and evaluate said
    "No such file or directory: '/x'" (or "Permission denied"), naming neither the
    field nor the variable that gave it."""
    from monitor import bootstrap

    state = tmp_path / "a" / "state"

    def refused(path: Path) -> None:  # root makes anything: the refusal is simulated
        raise PermissionError(13, "Permission denied", str(tmp_path / "a"))

    monkeypatch.setattr(bootstrap, "make_dirs", refused)
    cfg = write_config(
        tmp_path, model({"kind": "synthetic"}), state_dir=str(state) if given == "file" else "s"
    )
    flag = ["--state-dir", str(state)] if given == "flag" else []
    if given == "env":
        monkeypatch.setenv("KMEANS_MONITOR_STATE_DIR", str(state))
    result = invoke(command, "--config", str(cfg), *flag)
    assert result.exit_code == EXIT_USER, result.output
    assert result.stderr == (
        f"error: {origin}: cannot use the state directory {state}: Permission denied: "
        f"{shown_path(tmp_path / 'a')}\n"
    )


def test_a_demo_state_directory_that_cannot_be_made_is_named_as_run_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """demo said "--state-dir: cannot use ...", where run and evaluate say
    "--state-dir (daemon.state_dir): cannot use ..."."""
    from monitor import bootstrap

    state = tmp_path / "a" / "state"

    def refused(path: Path) -> None:  # root makes anything: the refusal is simulated
        raise PermissionError(13, "Permission denied", str(tmp_path / "a"))

    monkeypatch.setattr(bootstrap, "make_dirs", refused)
    result = invoke("demo", "--listen", "127.0.0.1:0", "--state-dir", str(state))
    assert result.exit_code == EXIT_USER, result.output
    assert result.stderr == (
        f"error: --state-dir (daemon.state_dir): cannot use the state directory {state}: "
        f"Permission denied: {shown_path(tmp_path / 'a')}\n"
    )


# The commands that read the state directory (nothing made there), and those that make
# it when it is missing, as run does (serve may start before the first run).
READERS = [
    ["history", "shop"],
    ["snapshots", "list"],
    ["snapshots", "show", "shop"],
    ["snapshots", "diff", "shop", "1", "2"],
    ["snapshots", "approve", "shop"],
    ["snapshots", "reject", "shop"],
    ["snapshots", "rollback", "shop", "--to", "1"],
]
MAKERS = [["serve"], ["snapshots", "retrain", "shop"]]
ORIGINS = [
    ("file", "daemon.state_dir"),
    ("env", "KMEANS_MONITOR_STATE_DIR (daemon.state_dir)"),
    ("flag", "--state-dir (daemon.state_dir)"),
]


def given_as(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, state: Path) -> list[str]:
    """The options that give ``state`` as the state directory ``how``: in the file, by
    KMEANS_MONITOR_STATE_DIR or by --state-dir (with a file whose own is another)."""
    in_file = str(state) if how == "file" else str(tmp_path / "elsewhere")
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), state_dir=in_file)
    if how == "env":
        monkeypatch.setenv("KMEANS_MONITOR_STATE_DIR", str(state))
    return ["--config", str(cfg), *(["--state-dir", str(state)] if how == "flag" else [])]


@pytest.mark.parametrize(("how", "origin"), ORIGINS)
@pytest.mark.parametrize("command", READERS + MAKERS, ids=" ".join)
@pytest.mark.parametrize("bad", ["under a file", "a link loop"])
def test_serve_history_and_snapshots_name_where_a_bad_state_directory_came_from(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    origin: str,
    command: list[str],
    bad: str,
) -> None:
    """They said "no snapshot store at ..." or "cannot open the snapshot store at ...:
    Not a directory", naming neither the field nor the variable or option that gave
    the path; now they say what run and evaluate say."""
    if bad == "under a file":
        (tmp_path / "afile").write_text("x\n")
        state, why = tmp_path / "afile" / "state", f"{tmp_path / 'afile'} is a file"
    else:
        state = tmp_path / "loop"
        state.symlink_to(state)
        why = f"{state} is a symbolic link loop"
    result = invoke(*command, *given_as(tmp_path, monkeypatch, how, state))
    assert result.exit_code == EXIT_USER, result.output
    assert result.stderr == (
        f"error: invalid configuration: {origin}: must be a directory, or a path where one "
        f"can be made ({why}); got {str(state)!r}\n"
    )


@pytest.mark.parametrize(
    ("how", "origin"),
    [
        *ORIGINS,
        ("alone", "--state-dir (daemon.state_dir)"),
        # Without --config and --state-dir they asked for one of them, ignoring the variable.
        ("env alone", "KMEANS_MONITOR_STATE_DIR (daemon.state_dir)"),
    ],
)
@pytest.mark.parametrize("command", READERS, ids=" ".join)
@pytest.mark.parametrize("bad", ["missing", "dangling link"])
def test_a_missing_state_directory_is_named_by_its_origin_and_not_made(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    origin: str,
    command: list[str],
    bad: str,
) -> None:
    """The commands that only read say that there is nothing to read, naming where the
    path came from and why it is not there (a dangling link names its target)."""
    state = tmp_path / "state"
    absent = f"there is no directory {state}"
    if bad == "dangling link":
        state.symlink_to(tmp_path / "target")
        absent = f"{state} is a symbolic link to {tmp_path / 'target'}, which does not exist"
    if how == "env alone":
        monkeypatch.setenv("KMEANS_MONITOR_STATE_DIR", str(state))
        given = []
    elif how == "alone":
        given = ["--state-dir", str(state)]
    else:
        given = given_as(tmp_path, monkeypatch, how, state)
    result = invoke(*command, *given)
    assert result.exit_code == EXIT_USER, result.output
    what = (
        "history database at history.sqlite"
        if command[0] == "history"
        else ("snapshot store at snapshots")
    )
    noun, name = what.rsplit(" at ", 1)
    assert result.stderr == f"error: {origin}: no {noun} at {state / name} ({absent})\n"
    assert not os.path.lexists(tmp_path / "target") and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(("how", "origin"), ORIGINS)
@pytest.mark.parametrize("command", MAKERS, ids=" ".join)
def test_serve_and_retrain_on_a_directory_that_cannot_be_made_name_its_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, origin: str, command: list[str]
) -> None:
    """They said "cannot open the snapshot store at ...: Permission denied" (retrain
    only once it had trained), naming neither the field nor where the path came from."""
    from monitor import bootstrap

    state = tmp_path / "a" / "state"

    def refused(path: Path) -> None:  # root makes anything: the refusal is simulated
        raise PermissionError(13, "Permission denied", str(tmp_path / "a"))

    monkeypatch.setattr(bootstrap, "make_dirs", refused)
    result = invoke(*command, *given_as(tmp_path, monkeypatch, how, state))
    assert result.exit_code == EXIT_USER, result.output
    assert result.stderr == (
        f"error: {origin}: cannot use the state directory {state}: Permission denied: "
        f"{shown_path(tmp_path / 'a')}\n"
    )


def test_a_dangling_link_as_the_state_directory_is_made_where_it_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a missing directory is made: run and evaluate stopped on "No such file or
    directory: '.../daemon.lock'" (mkdir found the link "existing"), serve on "cannot
    open the snapshot store", though check-config passed it."""
    from monitor import daemon

    link, target = tmp_path / "state", tmp_path / "volume" / "kmeans"
    link.symlink_to(target)
    monkeypatch.setenv("KMEANS_MONITOR_STATE_DIR", str(link))
    cfg = write_config(tmp_path, model({"kind": "synthetic"}))
    assert invoke("check-config", str(cfg)).exit_code == 0
    claim_state_dir(link).close()  # what run and evaluate hold first
    assert (target / "daemon.lock").is_file() and link.is_symlink()
    target.joinpath("daemon.lock").unlink()
    target.rmdir()

    class Server:
        url = "http://127.0.0.1:0"

        def __init__(self, app: Any, listen: Any) -> None:
            self.app = app

    monkeypatch.setattr(daemon, "LabelServer", Server)
    monkeypatch.setattr(daemon, "run_until_signal", lambda *args, **kwargs: None)
    served = invoke("serve", "--config", str(cfg))
    assert served.exit_code == 0, served.output
    assert (target / "snapshots").is_dir() and link.is_symlink()
    listed = invoke("snapshots", "list", "--state-dir", str(link))
    assert listed.exit_code == 0, listed.output  # an empty store


def test_a_state_directory_this_user_may_not_look_into_is_a_problem_naming_its_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check-config and run said only "error: Permission denied: '.../snapshots'"."""
    from monitor import bootstrap

    state = tmp_path / "state"
    state.mkdir()

    def denied(directory: Path, uses: Any = None) -> list[str]:
        # Root looks anywhere: the refusal is simulated where the history is looked at.
        raise PermissionError(13, "Permission denied", str(directory / "history.sqlite"))

    monkeypatch.setattr(bootstrap, "_state_dir_contents", denied)
    monkeypatch.setenv("KMEANS_MONITOR_STATE_DIR", str(state))
    cfg = write_config(tmp_path, model({"kind": "synthetic"}))
    problem = (
        f"KMEANS_MONITOR_STATE_DIR (daemon.state_dir): cannot use the state directory {state}: "
        f"Permission denied: {shown_path(state / 'history.sqlite')}"
    )
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == EXIT_USER, checked.output
    assert checked.stderr == f"{cfg}: 1 problem(s)\n  - {problem}\n"
    for command in (["run"], ["history", "shop"]):
        result = invoke(*command, "--config", str(cfg))
        assert result.exit_code == EXIT_USER, result.output
        assert result.stderr == f"error: invalid configuration: {problem}\n"


KEY_HINT = (
    "must be at least 32 bytes of random key material (make one with python3 -c 'import "
    "secrets; print(secrets.token_hex(32))')"
)


@pytest.mark.parametrize(
    ("store", "env", "problem"),
    [
        (
            {"key_file": "missing.key"},
            {},
            "store.key_file: must be a key the store can load (cannot read the store key file "
            "{tmp}/missing.key: No such file or directory); got '{tmp}/missing.key'",
        ),
        (
            {"key_env": "KMEANS_TEST_STORE_KEY"},
            {},
            "store.key_env: must be a key the store can load (the environment variable "
            "KMEANS_TEST_STORE_KEY that should hold the store key is unset or empty); got "
            "'KMEANS_TEST_STORE_KEY'",
        ),
        (
            {"key_env": "KMEANS_TEST_STORE_KEY", "encrypt": True},
            {"KMEANS_TEST_STORE_KEY": "short"},
            f"store.key_env: {KEY_HINT}; got '5 bytes'",
        ),
    ],
    ids=["missing-file", "unset-variable", "short-key"],
)
def test_check_config_and_run_refuse_a_store_key_that_does_not_load(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store: dict[str, Any],
    env: dict[str, str],
    problem: str,
) -> None:
    """check-config said OK where run and the snapshots commands then refused the key."""
    monkeypatch.delenv("KMEANS_TEST_STORE_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = tmp_path / "monitor.yaml"
    section = {"state_dir": "state", "listen": "127.0.0.1:0"}
    raw = {"daemon": section, "store": store, "models": [model({"kind": "synthetic"})]}
    cfg.write_text(yaml.safe_dump(raw))
    line = f"  - {problem.format(tmp=tmp_path)}"
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == EXIT_USER, checked.output
    assert checked.stderr.splitlines() == [f"{cfg}: 1 problem(s)", line]
    ran = invoke("run", "--config", str(cfg))
    assert ran.exit_code == EXIT_USER, ran.output
    assert ran.stderr.splitlines() == [f"error: invalid configuration: {line[4:]}"]
    assert not (tmp_path / "state").exists()
    # With the key in place, the same file is fine.
    (tmp_path / "missing.key").write_bytes(b"k" * 32)
    monkeypatch.setenv("KMEANS_TEST_STORE_KEY", "k" * 32)
    assert invoke("check-config", str(cfg)).exit_code == 0


@pytest.mark.parametrize("listen", [":0", "[::1]:0", "127.0.0.1:0"])
def test_every_interface_and_ipv6_are_accepted(tmp_path: Path, listen: str) -> None:
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), listen=listen)
    result = invoke("check-config", str(cfg))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{cfg}: OK, 1 model(s): shop\n"


def test_check_config_reads_the_source_credentials(tmp_path: Path) -> None:
    source = {
        "kind": "prometheus",
        "url": "https://prom:9090",
        "features": {"a": "up", "b": "up"},
        "bearer_token_file": str(tmp_path / "token"),
        "tls": {"ca_file": str(tmp_path / "ca.pem")},
    }
    cfg = write_config(tmp_path, model(source))
    result = invoke("check-config", str(cfg))
    assert result.exit_code == EXIT_USER
    problems = result.stderr.splitlines()
    assert problems[0] == f"{cfg}: 2 problem(s)"
    assert problems[1] == (
        "  - models[shop].source.bearer_token_file: must be a readable, non-empty UTF-8 file "
        f"(No such file or directory); got '{tmp_path / 'token'}'"
    )
    assert problems[2].startswith("  - models[shop].source.tls: must be certificates and a key")


def test_a_config_others_may_write_and_secrets_others_may_read_are_warned_of_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Only the store key file was checked, and its warning said twice; a config file of
    # mode 666, a web config (password hashes), a TLS key and a bearer token of 644 went
    # unsaid (h146).
    now = datetime.datetime.now(datetime.UTC)
    pair = make_certificate(tmp_path, not_after=now + datetime.timedelta(days=90))
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config: {{cert_file: {pair.cert_file}, key_file: {pair.key_file}}}\n"
    )
    token, key = tmp_path / "token", tmp_path / "store.key"
    token.write_text("s3cret\n")
    key.write_text(os.urandom(32).hex())
    source = {
        "kind": "prometheus",
        "url": "http://127.0.0.1:19901",
        "features": {"a": "up", "b": "up"},
        "bearer_token_file": str(token),
    }
    cfg = write_config(tmp_path, model(source), web_config_file="web.yml")
    config = yaml.safe_load(cfg.read_text())
    cfg.write_text(yaml.safe_dump({**config, "store": {"key_file": str(key)}}))
    for path in (web, pair.key_file, token, key):
        Path(path).chmod(0o644)
    cfg.chmod(0o666)
    result = invoke("check-config", str(cfg))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: the configuration file {cfg} can be written by other users (mode 666): "
        "chmod o-w it (600 or 644)",
        f"warning: the store key file {key} can be read by other users (mode 644): chmod 600 it",
        f"warning: the web configuration file daemon.web_config_file {web} can be read by "
        "other users (mode 644): chmod 600 it",
        f"warning: the TLS key file of daemon.web_config_file {pair.key_file} can be read by "
        "other users (mode 644): chmod 600 it",
        f"warning: model 'shop': source.bearer_token_file {token} can be read by other users "
        "(mode 644): chmod 600 it",
    ]
    from monitor.bootstrap import build_app, load_settings

    with caplog.at_level(logging.WARNING):
        build_app(load_settings(cfg), config_path=cfg).close()
    said = [line.removeprefix("warning: ") for line in result.stderr.splitlines()]
    assert [m for m in caplog.messages if "other users" in m] == said
    for path in (cfg, web, pair.key_file, token, key):
        Path(path).chmod(0o600)
    assert invoke("check-config", str(cfg)).stderr == ""


@pytest.mark.timeout(30)  # the old check-config waited for a writer for ever
def test_check_config_refuses_fifos_as_credential_and_web_config_files(tmp_path: Path) -> None:
    for name in ("token", "password", "web.yml"):
        os.mkfifo(tmp_path / name)
    bearer = {"kind": "prometheus", "url": "http://prom:9090", "features": {"a": "up", "b": "up"}}
    basic = {**bearer, "basic_auth": {"username": "u", "password_file": str(tmp_path / "password")}}
    shop = model({**bearer, "bearer_token_file": str(tmp_path / "token")})
    cfg = write_config(tmp_path, shop, {**model(basic), "name": "cart"}, web_config_file="web.yml")
    result = invoke("check-config", str(cfg))
    assert result.exit_code == EXIT_USER
    assert result.stderr.splitlines() == [
        f"{cfg}: 3 problem(s)",
        "  - models[shop].source.bearer_token_file: must be a readable, non-empty UTF-8 file "
        f"(not a regular file); got '{tmp_path / 'token'}'",
        "  - models[cart].source.basic_auth.password_file: must be a readable, non-empty UTF-8 "
        f"file (not a regular file); got '{tmp_path / 'password'}'",
        f"  - daemon.web_config_file ({tmp_path / 'web.yml'}): cannot read: not a regular file",
    ]


@pytest.mark.parametrize("kind", ["device", "plain password", "not YAML"])
def test_a_web_config_problem_names_the_field_and_the_file(tmp_path: Path, kind: str) -> None:
    """`- /dev/null: cannot read: not a regular file` named a file but not the field that
    gave it, unlike every other problem."""
    web, why = tmp_path / "web.yml", "cannot read: not a regular file"
    if kind == "device":
        web = Path("/dev/null")
    elif kind == "plain password":
        web.write_text("basic_auth_users: {u: secret}\n")
        why = (
            "basic_auth_users.u: must be a bcrypt hash ($2b$ and cost 04-31, 60 characters); "
            "a plain password is not accepted"
        )
    else:
        web.write_text("basic_auth_users: [\n")
        why = "not valid YAML: "
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), web_config_file=str(web))
    result = invoke("check-config", str(cfg))
    assert result.exit_code == EXIT_USER
    assert result.stderr.splitlines()[0] == f"{cfg}: 1 problem(s)"
    assert result.stderr.splitlines()[1].startswith(f"  - daemon.web_config_file ({web}): {why}")
    assert len(result.stderr.splitlines()) == 2


def test_check_config_warns_of_an_expired_certificate_and_passes(tmp_path: Path) -> None:
    # It said OK with no word: every client then failed to verify the certificate.
    # A warning, not a problem: a renewal may be under way, and the metrics go on.
    expired = datetime.datetime(2020, 1, 2, tzinfo=datetime.UTC)
    pair = make_certificate(
        tmp_path, not_before=expired - datetime.timedelta(days=1), not_after=expired
    )
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config: {{cert_file: {pair.cert_file}, key_file: {pair.key_file}}}\n"
    )
    web.chmod(0o600)  # a readable one is a warning of its own
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), web_config_file="web.yml")
    result = invoke("check-config", str(cfg))
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"warning: daemon.web_config_file ({web}): tls_server_config.cert_file: "
        f"{pair.cert_file} expired on "
        "2020-01-02T00:00:00Z: clients that verify it refuse every connection; renew it\n"
    )


# --------------------------------------------------------------------------- odd data


def test_values_at_1e308_scale_are_invalid_values_that_say_why(
    files_setup: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg, data = files_setup
    before, rows = stored(tmp_path / "state"), history_rows(tmp_path / "state")
    np.savetxt(
        data / "w.csv",
        blobs(600, CENTERS, seed=2) * 1e306,
        delimiter=",",
        header="a,b",
        comments="",
    )
    result = invoke("evaluate", "--config", str(cfg), "--json")
    assert result.exit_code == EXIT_FAILED
    [failure] = json.loads(result.stdout)
    assert failure["reason"] == "invalid_values"
    assert "values overflow squared distances: 600 of 600 rows" in failure["message"]
    assert stored(tmp_path / "state") == before
    after = history_rows(tmp_path / "state")
    # The failure is recorded, and nothing else: no evaluation, no version.
    assert after.pop("failures") == rows.pop("failures") + 1
    after.pop("sqlite_sequence"), rows.pop("sqlite_sequence")
    assert after == rows


@pytest.mark.parametrize("live", [False, True], ids=["first-run", "live-model"])
def test_values_near_1e300_fail_the_run_as_invalid_values_and_store_nothing(
    files_setup: tuple[Path, Path], tmp_path: Path, live: bool
) -> None:
    """Training on them worked (the scaler's spread overflowed to inf) and stored a model
    that could neither score nor serve; choose-k refused the same file."""
    cfg, data = files_setup
    if not live:
        shutil.rmtree(tmp_path / "state")
    before, rows = stored(tmp_path / "state"), history_rows(tmp_path / "state")
    X = blobs(600, CENTERS, seed=2) * 1e300
    np.savetxt(data / "w.csv", X, delimiter=",", header="a,b", comments="")
    result = invoke("evaluate", "--config", str(cfg), "--json")
    assert result.exit_code == EXIT_FAILED, result.output
    [failure] = json.loads(result.stdout)
    assert failure["reason"] == "invalid_values"
    assert "values overflow squared distances: 600 of 600 rows, e.g. " in failure["message"]
    assert stored(tmp_path / "state") == before
    after = history_rows(tmp_path / "state")
    assert after["failures"] == rows.get("failures", 0) + 1
    assert after["evaluations"] == rows.get("evaluations", 0)
    chose = invoke("choose-k", str(data / "w.csv"))
    assert chose.exit_code == EXIT_USER
    assert "values overflow squared distances: 600 of 600 rows, e.g. " in chose.stderr


@pytest.mark.parametrize("command", ["choose-k", "backtest"])
@pytest.mark.parametrize("where", ["missing directory", "no new file"])
def test_a_plot_that_cannot_be_written_is_refused_before_any_work(
    files_setup: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    where: str,
) -> None:
    """choose-k ran every fit (backtest every window) before it found nowhere to write:
    a missing directory before 2026-12-02, one that takes no new file (/proc) before
    2026-12-06."""
    from monitor import bootstrap
    from monitor.core import selection

    def no_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the work started before the plot's path was checked")

    monkeypatch.setattr(selection, "choose_k", no_work)
    monkeypatch.setattr(bootstrap, "backtest", no_work)
    cfg, data = files_setup
    if where == "missing directory":
        plot = tmp_path / "nowhere" / "k.svg"
        why = f"there is no directory {plot.parent}"
    else:
        plot = Path("/proc/kmeans-monitor-plot.svg")
        why = "cannot write it: No such file or directory"
    if command == "choose-k":
        result = invoke("choose-k", str(data / "w.csv"), "--plot", str(plot))
    else:
        window = ["--from", "2024-01-01", "--to", "2024-01-02", "--model", "shop"]
        result = invoke("backtest", "--config", str(cfg), *window, "--plot", str(plot))
    assert result.exit_code == EXIT_USER, result.output
    assert result.stderr == f"error: --plot {plot}: {why}\n"
    assert not plot.parent.exists() or not plot.exists()


def test_a_plot_probe_leaves_no_file_and_keeps_an_existing_one(tmp_path: Path) -> None:
    from monitor.cli import _check_plot

    fresh = tmp_path / "new.png"
    _check_plot(fresh)
    assert not fresh.exists()
    kept = tmp_path / "old.png"
    kept.write_bytes(b"an earlier plot")
    _check_plot(kept)
    assert kept.read_bytes() == b"an earlier plot"


def test_choose_k_refuses_overflowing_and_empty_files(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    np.savetxt(big, blobs(300, CENTERS, seed=2) * 1e306, delimiter=",", header="a,b", comments="")
    result = invoke("choose-k", str(big))
    assert result.exit_code == EXIT_USER
    assert result.stderr.startswith(f"error: {big}: values overflow squared distances: 300 of 300")
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b\n")
    result = invoke("choose-k", str(empty))
    assert (result.exit_code, result.stderr) == (
        EXIT_USER,
        f"error: {empty}: 0 row(s) with finite values; --k-max 10 needs at least 10\n",
    )
    text = tmp_path / "hosts.csv"
    text.write_text("host,zone\nweb1,eu\n")
    result = invoke("choose-k", str(text))
    assert result.stderr == f"error: {text}: no numeric column to choose k on\n"


def test_choose_k_refuses_values_whose_squares_underflow_unscaled(tmp_path: Path) -> None:
    """--scaling none on values near 1e-200 printed a table of zeros, exit 0, and blamed
    "k at least the number of distinct points" for 300 distinct rows."""
    tiny = tmp_path / "tiny.csv"
    X = blobs(300, CENTERS, seed=2) * [1e-200, 2e-200]
    np.savetxt(tiny, X, delimiter=",", header="a,b", comments="")
    result = invoke("choose-k", str(tiny), "--scaling", "none", "--refs", "2", "--k-max", "4")
    assert result.exit_code == EXIT_USER, result.output
    assert result.stderr.startswith(
        f"error: {tiny}: values too close together for squared distances: b spans "
    )
    assert len(result.stderr.splitlines()) == 1
    scaled = invoke("choose-k", str(tiny), "--refs", "2", "--k-max", "4")  # standard
    assert scaled.exit_code == 0, scaled.output
    assert "elbow: k=3  silhouette: k=3" in scaled.stdout


def _npy_claiming(path: Path, rows: int) -> Path:
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": (rows, 2)}
    )
    path.write_bytes(head.getvalue() + b"\0" * 64)
    return path


def test_an_npy_header_claiming_2_tib_is_refused(tmp_path: Path) -> None:
    path = _npy_claiming(tmp_path / "huge.npy", 2**37)
    result = invoke("choose-k", str(path))
    assert result.exit_code == EXIT_USER
    assert result.stderr == (
        f"error: {path}: unreadable NPY file: its header announces 137438953472 x 2 "
        "values of float64 (2.0 TiB) but the file holds 64 B of data (truncated, or not what "
        "it claims to be)\n"
    )
    data = tmp_path / "data"
    data.mkdir()
    path.rename(data / "huge.npy")
    cfg = write_config(tmp_path, model({"kind": "files", "path": str(data), "pattern": "*.npy"}))
    ran = invoke("evaluate", "--config", str(cfg))
    assert ran.exit_code == EXIT_FAILED
    assert "FAILED (source_unavailable)" in ran.stdout and "(2.0 TiB)" in ran.stdout
    assert stored(tmp_path / "state") == {}


# --------------------------------------------------------------------------- prometheus


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    yield fake
    fake.close()


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([1, 2, 3], "answered a malformed series: result[0] is '1'"),
        ([{"metric": "x", "values": []}], "result[0].metric is 'x', not a mapping"),
    ],
)
def test_malformed_prometheus_answers_fail_the_run_not_the_process(
    tmp_path: Path, prom: FakePrometheus, result: Any, message: str
) -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    prom.answer = lambda params: (200, json.dumps(body).encode(), 0.0)
    source = {"kind": "prometheus", "url": prom.url, "features": {"a": "up", "b": "up"}}
    cfg = write_config(tmp_path, model(source))
    ran = invoke("evaluate", "--config", str(cfg), "--json")
    assert ran.exit_code == EXIT_FAILED
    [failure] = json.loads(ran.stdout)
    assert failure["reason"] == "source_unavailable" and message in failure["message"]
    assert stored(tmp_path / "state") == {}


def test_no_credential_reaches_any_output_or_the_history(
    tmp_path: Path, prom: FakePrometheus
) -> None:
    secret, token = "hunter2-pass", "tok-9a8b7c6d5e"
    # A proxy that echoes the request's headers in its error page.
    prom.answer = lambda params: (502, json.dumps(prom.headers[-1]).encode(), 0.0)
    (tmp_path / "token").write_text(token)
    url = prom.url.replace("http://", f"http://kmeans:{secret}@")
    bad = {"kind": "prometheus", "url": url, "features": {"a": "up", "b": "up"}, "retries": 0}
    bearer = {**bad, "url": prom.url, "bearer_token_file": str(tmp_path / "token")}
    cfg = write_config(tmp_path, model(bad), {**model(bearer), "name": "billing"})
    ran = invoke("--log-level", "DEBUG", "evaluate", "--config", str(cfg), "--json")
    assert ran.exit_code == EXIT_FAILED
    failures = json.loads(ran.stdout)
    assert [f["reason"] for f in failures] == ["source_unavailable"] * 2
    assert "http://***@127.0.0.1" in failures[0]["message"]
    history = (tmp_path / "state" / "history.sqlite").read_bytes()
    for text in (ran.stdout, ran.stderr, history.decode("latin-1")):
        assert secret not in text and token not in text
    # check-config on an invalid URL with credentials shows it masked too.
    cfg.write_text(cfg.read_text().replace(f"{secret}@127.0.0.1:", f"{secret}@127.0.0.1:x"))
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == EXIT_USER and "http://***@127.0.0.1:x" in checked.stderr
    assert secret not in checked.output


# --------------------------------------------------------------------------- pushgateway


@pytest.fixture
def gateway_500() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(500)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"boom")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_pushgateway_down_or_failing_is_one_line_and_exit_1(
    files_setup: tuple[Path, Path], gateway_500: str
) -> None:
    cfg, _ = files_setup
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"
    for gateway, why in (
        (down, "Connection refused"),
        (gateway_500, "HTTP 500 Internal Server Error"),
    ):
        result = invoke("evaluate", "--config", str(cfg), "--push-to", gateway, "--json")
        assert result.exit_code == EXIT_FAILED, result.output
        assert json.loads(result.stdout)[0]["failed"] is False  # the run itself is fine
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
        assert errors == [f"error: cannot push the metrics to {gateway}: {why}"]
        assert "Traceback" not in result.output


@pytest.mark.parametrize("where", ["file", "flag"])
def test_a_pushgateway_url_with_credentials_pushes_with_basic_auth(
    files_setup: tuple[Path, Path], where: str
) -> None:
    """The client took 'u:pw@127.0.0.1' for a host name: 'Name or service not known'."""
    cfg, _ = files_setup
    got: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://pusher:s%40cret-pw@127.0.0.1:{server.server_address[1]}"
    try:
        if where == "file":
            raw = yaml.safe_load(cfg.read_text())
            raw["daemon"]["pushgateway"] = url
            cfg.write_text(yaml.safe_dump(raw))
            result = invoke("evaluate", "--config", str(cfg))
        else:
            result = invoke("evaluate", "--config", str(cfg), "--push-to", url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    assert f"pushed metrics to http://***@127.0.0.1:{server.server_address[1]}" in result.stdout
    assert "s%40cret" not in result.output and "s@cret" not in result.output
    assert got == [("/metrics/job/kmeans-monitor", "Basic cHVzaGVyOnNAY3JldC1wdw==")]


@pytest.mark.parametrize("where", ["file", "flag"])
def test_a_pushgateway_that_is_no_url_is_refused_before_any_run(
    files_setup: tuple[Path, Path], tmp_path: Path, where: str
) -> None:
    """evaluate ran every model, then failed the push with exit 1."""
    cfg, _ = files_setup
    before, rows = stored(tmp_path / "state"), history_rows(tmp_path / "state")
    if where == "file":
        raw = yaml.safe_load(cfg.read_text())
        raw["daemon"]["pushgateway"] = "pushgateway:9091"
        cfg.write_text(yaml.safe_dump(raw))
        checked = invoke("check-config", str(cfg))
        assert checked.exit_code == EXIT_USER
        assert checked.stderr.splitlines() == [
            f"{cfg}: 1 problem(s)",
            "  - daemon.pushgateway: must be an http(s) URL such as 'http://127.0.0.1:9091'; "
            "got 'pushgateway:9091'",
        ]
        result = invoke("evaluate", "--config", str(cfg))
        field = "error: invalid configuration: daemon.pushgateway"
    else:
        result = invoke("evaluate", "--config", str(cfg), "--push-to", "pushgateway:9091")
        field = "error: --push-to"
    assert result.exit_code == EXIT_USER, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"{field}: must be an http(s) URL such as 'http://127.0.0.1:9091'; got 'pushgateway:9091'"
    )
    assert stored(tmp_path / "state") == before and history_rows(tmp_path / "state") == rows


# --------------------------------------------------------------------------- the sweep


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["check-config", "{tmp}/nope.yaml"], 2, "nope.yaml: cannot read: No such file"),
        (["check-config", "{tmp}"], 2, "is a directory"),
        (["check-config", ""], 2, "Invalid value for 'CONFIG_FILE': the path is empty"),
        (["run", "--config", ""], 2, "Invalid value for '--config': the path is empty"),
        (["snapshots", "list", "--state-dir", ""], 2, "'--state-dir': the path is empty"),
        (["choose-k", ""], 2, "Invalid value for 'PATH': the path is empty"),
        (["check-config", "{cfg}/"], 2, "ends in '/', which names a directory, not a file"),
        (["choose-k", "{tmp}/data/w.csv", "--plot", "{tmp}/k.png/"], 2, "'--plot': '"),
        (["choose-k", "{tmp}/data/w.csv", "--plot", "{tmp}/.png"], 2, "such as 'plot.png'"),
        (["run"], 2, "error: invalid configuration: no configuration: give --config FILE"),
        (["run", "--config", "{tmp}/nope.yaml"], 2, "nope.yaml: cannot read"),
        (["evaluate", "--config", "{cfg}", "--model", "nope"], 2, "no model named 'nope'"),
        (["backtest", "--config", "{cfg}", "--from", "x", "--to", "y"], 2, "timestamp 'x'"),
        (["snapshots", "list"], 2, "give --config FILE or --state-dir DIR"),
        (["snapshots", "list", "--state-dir", "{tmp}/nowhere"], 2, "no snapshot store at"),
        (["snapshots", "show", "--config", "{cfg}", "shop", "99"], 2, "has no version 99"),
        (["snapshots", "show", "--config", "{cfg}", "a/b"], 2, "error: model: must be a name"),
        (["snapshots", "diff", "--config", "{cfg}", "shop", "one", "2"], 2, "'one' is not a"),
        (["snapshots", "rollback", "--config", "{cfg}", "shop", "--to", "9"], 2, "no version 9"),
        (["snapshots", "approve", "--config", "{cfg}", "shop"], 2, "no pending version"),
        (["choose-k", "{tmp}/nope.csv"], 2, "does not exist"),
        (["choose-k", "{tmp}/data/w.csv", "--k-min", "5", "--k-max", "3"], 2, "--k-min <"),
        (["choose-k", "{tmp}/data/w.csv", "--sample", "0"], 2, "--sample"),
        (["choose-k", "{tmp}/data/w.csv", "--features", "a,a"], 2, "names ['a'] more than"),
        (["choose-k", "{tmp}/data/w.csv", "--features", "zz"], 2, "do not match --features"),
        (["choose-k", "{tmp}/data/w.csv", "--refs", "100000"], 2, "'--refs': 100000 is not in"),
        (["runbook", "KMeansNope"], 2, "no alert named 'KMeansNope'"),
        (["render", "--root", "/proc/kmeans-nope"], 2, "No such file or directory"),
        (["simulate", "--listen", "nohost"], 2, "error: --listen: must be HOST:PORT"),
        (["simulate", "--refresh", "-1"], 2, "error: --refresh: must be a float in (0, "),
        # float() reads "1_0" as 10 and "\u0663" (Arabic-Indic 3) as 3: not a number here.
        (["simulate", "--refresh", "1_0"], 2, "'1_0' is not a number in ASCII digits"),
        (["render", "--root", "{tmp}/r", "--time-scale", "\u0663"], 2, "'\u0663' is not a"),
        # A choice of 500 characters was echoed whole.
        (["--log-level", "x" * 500, "run"], 2, "(500 characters) is not one of 'DEBUG', "),
        (["serve", "--config", "{cfg}", "--listen", "nohost"], 2, "error: --listen: must be"),
        (["--log-level", "NOPE", "run"], 2, "Invalid value for '--log-level'"),
        (["--log-level"], 2, "'--log-level' requires an argument (see '"),
        (["nope"], 2, "error: No such command 'nope' (see '"),
        (["run", "--nope"], 2, "error: No such option '--nope' (see '"),
        (["history", "--since"], 2, "'--since' requires an argument (see '"),
        (["snapshots", "nope"], 2, "No such command 'nope' (see '"),
        (["snapshots", "list", "--until"], 2, "No such option '--until'"),
        (["snapshots", "show"], 2, "error: Missing argument 'MODEL' (see '"),
    ],
)
def test_bad_input_to_every_command_is_one_message_and_a_code(
    files_setup: tuple[Path, Path], tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    cfg, _ = files_setup
    before, rows = stored(tmp_path / "state"), history_rows(tmp_path / "state")
    filled = [a.format(tmp=tmp_path, cfg=cfg) for a in args]
    result = invoke(*filled)
    assert result.exit_code == code, result.output
    assert message in result.stderr, result.stderr
    # One line, click's usage errors included; a configuration's problems follow it.
    assert len([ln for ln in result.stderr.splitlines() if not ln.startswith("  - ")]) == 1
    assert "Traceback" not in result.output
    assert stored(tmp_path / "state") == before and history_rows(tmp_path / "state") == rows


@pytest.mark.parametrize("group", [[], ["snapshots"]], ids=["kmeans-monitor", "snapshots"])
def test_a_group_alone_prints_its_help_on_stdout_and_exits_0(group: list[str]) -> None:
    # `kmeans-monitor` alone printed its help on stderr and exited 2, as for a mistake.
    alone, helped = invoke(*group), invoke(*group, "--help")
    assert (alone.exit_code, alone.stderr) == (0, ""), alone.output
    assert alone.stdout == helped.stdout and "Commands:" in alone.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["check-config", "{cfg}" + "x" * 100_000 + "/"],
        ["history", "shop", "--config", "{cfg}", "--since", "x" * 100_000],
        ["snapshots", "show", "--config", "{cfg}", "shop", "v" + "x" * 100_000],
    ],
    ids=["path", "since", "version"],
)
def test_a_long_bad_argument_is_echoed_shortened(
    files_setup: tuple[Path, Path], tmp_path: Path, args: list[str]
) -> None:
    """An argument of 100,000 characters came back whole in the error line."""
    cfg, _ = files_setup
    result = invoke(*[a.format(cfg=cfg) for a in args])
    assert result.exit_code == EXIT_USER, result.output
    assert len(result.stderr) < 500 and " characters)" in result.stderr, result.stderr[:500]


# A demo that got past its checks would run on: each case runs in a process of its own
# with a deadline, so that a regression fails here instead of hanging the suite. Start-up
# takes a few seconds on a busy machine; a demo that started trains for longer than this.
DEMO_DEADLINE = 30.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "nan"], "error: --duration: must be a float in [0, inf); got nan"),
        (["--duration", "-5"], "error: --duration: must be a float in [0, inf); got -5.0"),
        (["--duration", "inf"], "error: --duration: must be a float in [0, inf); got inf"),
        (["--duration", "\uff13"], "'--duration': '\uff13' is not a number in ASCII digits"),
        (
            ["--listen", "nohost"],
            "error: invalid configuration: --listen (daemon.listen): must be HOST:PORT like "
            "127.0.0.1:9310, ",
        ),
    ],
)
def test_demo_refuses_bad_options_before_it_starts(
    tmp_path: Path, args: list[str], message: str
) -> None:
    state = tmp_path / "demo"
    argv = [sys.executable, "-m", "monitor", "demo", "--listen", "127.0.0.1:0"]
    argv += ["--state-dir", str(state), *args]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=DEMO_DEADLINE)
    except subprocess.TimeoutExpired:  # run() has killed it
        pytest.fail(f"demo {' '.join(args)} still ran after {DEMO_DEADLINE:g} s: it started")
    assert result.returncode == EXIT_USER, result.stderr
    assert result.stdout == ""
    assert message in result.stderr.splitlines()[-1] and "Traceback" not in result.stderr
    assert not state.exists()


def test_a_model_named_twice_runs_once(files_setup: tuple[Path, Path], tmp_path: Path) -> None:
    """--model shop --model shop ran shop twice: two evaluations, two history rows."""
    cfg, _ = files_setup
    before = history_rows(tmp_path / "state")
    result = invoke(
        "evaluate", "--config", str(cfg), "--model", "shop", "--model", "shop", "--json"
    )
    assert result.exit_code == 0, result.output
    assert [r["model"] for r in json.loads(result.stdout)] == ["shop"]
    assert history_rows(tmp_path / "state")["evaluations"] == before["evaluations"] + 1


def test_a_bug_is_internal_with_exit_70(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor import render

    def broken(name: str) -> str:
        raise RuntimeError("unexpected state at https://u:pw-123456@host/")

    monkeypatch.setattr(render, "runbook_markdown", broken)
    result = invoke("runbook", "KMeansFeatureDrift")
    assert result.exit_code == EXIT_INTERNAL
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1].startswith("internal error: unexpected state at https://***@host/ (a bug")
    assert "pw-123456" not in result.stderr


def test_ctrl_c_outside_the_daemon_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor import render

    def interrupted(name: str) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "runbook_markdown", interrupted)
    result = invoke("runbook", "KMeansFeatureDrift")
    assert result.exit_code == EXIT_INTERRUPTED == 130
    assert result.stderr == "interrupted\n"  # not Click's "Aborted!" and its exit 1


def test_a_warning_reaches_the_user_as_one_log_line_without_source_code(tmp_path: Path) -> None:
    # Three distinct rows and k up to 3: at k=3 no dispersion is left, and the gap
    # statistic warns that it floored W (constant rows are refused outright).
    data = tmp_path / "flat.csv"
    data.write_text("a,b\n" + "1,1\n2,2\n5,5\n" * 100, encoding="utf-8")
    argv = [sys.executable, "-m", "monitor", "choose-k", str(data), "--k-max", "3"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    warned = [line for line in result.stderr.splitlines() if "DegenerateDataWarning" in line]
    assert warned, result.stderr
    assert all(" WARNING monitor: DegenerateDataWarning: " in line for line in warned), warned
    assert ".py:" not in result.stderr and "warnings.warn" not in result.stderr, result.stderr


def test_a_bad_variable_is_named_and_log_level_wins_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It read as the file's problem ("daemon.log_level"), which the file did not hold, and
    # --log-level did not win over it as configuration.md says.
    cfg = write_config(tmp_path, model({"kind": "synthetic"}))
    monkeypatch.setenv("KMEANS_MONITOR_LOG_LEVEL", "TRACE")
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == EXIT_USER
    assert checked.stderr.splitlines()[1] == (
        "  - KMEANS_MONITOR_LOG_LEVEL (daemon.log_level): must be one of {'DEBUG', 'INFO', "
        "'WARNING', 'ERROR'}; got 'TRACE'"
    )
    flagged = invoke("--log-level", "debug", "check-config", str(cfg))
    assert flagged.exit_code == 0, flagged.output


def test_an_os_error_inside_a_store_error_is_shown_without_its_errno(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root writes anywhere: a read-only file system is simulated where the store is made.
    from monitor.store import snapshots

    def read_only(path: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(snapshots, "make_dirs", read_only)
    cfg = write_config(tmp_path, model({"kind": "synthetic"}), state_dir=str(tmp_path / "s"))
    result = invoke("evaluate", "--config", str(cfg))
    assert result.exit_code == EXIT_USER, result.output
    root = tmp_path / "s" / "snapshots"
    assert result.stderr == (
        f"error: cannot open the snapshot store at {root}: Read-only file system: '{root}'\n"
    )


def test_evaluate_beside_a_daemon_is_refused_and_a_dry_run_is_not(tmp_path: Path) -> None:
    # It ran the daemon's models a second time, writing history and promoting beside it.
    synthetic = {"kind": "synthetic", "seed": 1, "regimes": 3, "rows_per_window": 300}
    cfg = write_config(tmp_path, model(synthetic, reference={"window": "1h"}))
    state = tmp_path / "state"
    held = claim_state_dir(state)  # as a daemon holds it (another open file: refused)
    try:
        result = invoke("evaluate", "--config", str(cfg))
        assert result.exit_code == EXIT_USER, result.output
        assert result.stderr == (
            f"error: another kmeans-monitor daemon (pid {os.getpid()}) runs on the state "
            f"directory {state}: evaluate would run its models a second time beside it, and "
            "both could promote; --dry-run runs them without storing anything\n"
        )
        assert not (state / "history.sqlite").exists()
        assert invoke("evaluate", "--config", str(cfg), "--dry-run").exit_code == 0
    finally:
        held.close()
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0  # the claim was let go


@pytest.mark.parametrize(
    ("raising", "why"),
    [
        (
            "raise ModuleNotFoundError('No module named py4j', name='py4j')",
            "ModuleNotFoundError: No module named py4j",
        ),
        ("raise ImportError('pandas too old')", "ImportError: pandas too old"),
    ],
)
def test_a_pyspark_that_does_not_import_is_a_configuration_error_in_check_config_and_runs(
    tmp_path: Path, raising: str, why: str
) -> None:
    # A pyspark installed without its py4j (pip --no-deps), or one refusing the pandas
    # here: check-config said OK, then every evaluate and run ended in a traceback, exit 70.
    broken = tmp_path / "site" / "pyspark"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(raising + "\n")
    spark = {"master": "local[1]", "conf": {"spark.ui.enabled": "false"}}
    cfg = write_config(tmp_path, model({"kind": "synthetic"}, engine="spark", spark=spark))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), str(tmp_path / "site")])}
    line = (
        f"models[shop].engine: spark needs pyspark, which is installed but does not import "
        f"({why}): pip install 'kmeans-monitor[spark]'"
    )
    for command in (["check-config", str(cfg)], ["evaluate", "--config", str(cfg), "--dry-run"]):
        argv = [sys.executable, "-m", "monitor", *command]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == EXIT_USER, done.stderr
        assert "Traceback" not in done.stderr
        assert line in done.stderr.splitlines()[-1], done.stderr


# ---------------------------------------------------------------------------- stdout


def monitor_process(
    args: list[str], shell: tuple[str, ...] = (), **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``python -m monitor`` as a shell runs it, with stdout as ``kwargs`` set it, or as
    the ``shell`` command line it is passed to sets it."""
    argv = [*shell, sys.executable, "-m", "monitor", *args]
    return subprocess.run(argv, stderr=subprocess.PIPE, text=True, timeout=120, **kwargs)


STDOUT_WRITERS = [
    [],  # the help, as --help
    ["--version"],
    ["--help"],
    ["check-config", "{cfg}"],
    ["snapshots", "list", "--config", "{cfg}"],
    ["evaluate", "--config", "{cfg}", "--dry-run", "--json"],
    ["runbook", "KMeansFeatureDrift"],  # 11 kB: one write larger than stdout's buffer
]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", STDOUT_WRITERS, ids=lambda a: " ".join(a[:2]) or "help-alone")
def test_stdout_on_a_full_disk_is_one_line_and_exit_2(
    files_setup: tuple[Path, Path], args: list[str]
) -> None:
    # `kmeans-monitor history shop --json > /full/fs/out.json` said "error: No space left
    # on device", then Python's "Exception ignored ... OSError" at exit, and exited 120;
    # --help and --version gave a traceback.
    cfg, _ = files_setup
    with open("/dev/full", "w") as full:
        done = monitor_process([a.format(cfg=cfg) for a in args], stdout=full)
    assert (done.returncode, done.stderr) == (
        EXIT_USER,
        "error: cannot write to standard output: No space left on device\n",
    )


@pytest.mark.parametrize("args", STDOUT_WRITERS, ids=lambda a: " ".join(a[:2]) or "help-alone")
def test_a_closed_stdout_is_one_line_and_exit_2(
    files_setup: tuple[Path, Path], args: list[str]
) -> None:
    # `kmeans-monitor evaluate --dry-run --json >&-` printed nothing and exited 0: the
    # results were lost unsaid (`ls >&-` says "write error: Bad file descriptor", exit 2).
    cfg, _ = files_setup
    closed = ("sh", "-c", 'exec "$@" >&-', "sh")
    done = monitor_process([a.format(cfg=cfg) for a in args], closed)
    assert (done.returncode, done.stderr) == (
        EXIT_USER,
        "error: cannot write to standard output: Bad file descriptor\n",
    )


def test_a_path_the_locale_cannot_name_files_with_is_a_problem_not_a_bug(
    tmp_path: Path,
) -> None:
    # Under a locale whose file names are not UTF-8 (LC_ALL=C with PYTHONUTF8=0, as an
    # ISO-8859 locale), state_dir: 'stätë' ended in a UnicodeEncodeError traceback, exit 70.
    source = {"kind": "files", "path": str(tmp_path), "pattern": "*.csv"}
    cfg = write_config(tmp_path, model(source), state_dir="st\u00e4t\u00eb")
    env = os.environ | {"LC_ALL": "C", "PYTHONUTF8": "0"}
    done = monitor_process(["check-config", str(cfg)], env=env)
    assert done.returncode == EXIT_USER, done.stderr
    assert done.stderr.splitlines()[1:] == [
        "  - daemon.state_dir: must be a path this locale's file names (ascii) can hold: run "
        "in a UTF-8 locale (LANG=C.UTF-8) or with PYTHONUTF8=1; got 'st\u00e4t\u00eb'"
    ]


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["check-config", "{tmp}/c\nfg.yaml"], "c\\nfg.yaml"),
        (["history", "shop", "--state-dir", "{tmp}/no\nsuch"], "no\\nsuch"),
        (["snapshots", "list", "--state-dir", "{tmp}/no\nsuch"], "no\\nsuch"),
        (["evaluate", "--config", "{cfg}", "--state-dir", "/proc/x\ny"], "x\\ny"),
        (["choose-k", "{tmp}/hdr\nonly.csv", "--k-max", "4"], "hdr\\nonly.csv"),
    ],
    ids=["check-config", "history", "snapshots", "evaluate", "choose-k"],
)
def test_a_path_holding_a_newline_keeps_its_error_on_one_line(
    files_setup: tuple[Path, Path], tmp_path: Path, args: list[str], where: str
) -> None:
    # `check-config $'c\nfg.yaml'` printed "c" and "fg.yaml: 1 problem(s)" on two lines,
    # and history's "no history database at nl/no" went on "such/history.sqlite ...": a
    # crafted name could forge a line of its own in a log.
    cfg, _ = files_setup
    (tmp_path / "c\nfg.yaml").write_text("models: []\n")
    (tmp_path / "hdr\nonly.csv").write_text("a,b,c\n")
    result = invoke(*[a.format(tmp=tmp_path, cfg=cfg) for a in args])
    assert result.exit_code == EXIT_USER, result.output
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("  - ")]
    assert len(lines) == 1 and where in lines[0], result.stderr


def test_insecure_skip_verify_is_warned_of_once_per_command(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # evaluate said it twice: once as the configuration's sources were checked, once as
    # they were built for the run (prom F6). Nothing listens at the URL: the run fails.
    source = {
        "kind": "prometheus",
        "url": "https://127.0.0.1:19680",
        "features": {"a": "up", "b": "up"},
        "retries": 0,
        "tls": {"insecure_skip_verify": True},
    }
    cfg = write_config(tmp_path, model(source))
    for args in (["evaluate", "--config", str(cfg)], ["check-config", str(cfg)]):
        caplog.clear()
        invoke(*args)
        said = [m for m in caplog.messages if "tls.insecure_skip_verify is on" in m]
        assert len(said) == 1, (args, caplog.messages)


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes into files under ``tmp_path`` fail as on a full file system, where a new
    file is still made (an inode is free), but not its first byte."""
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
            raise OSError(28, "No space left on device")  # os.write names no file
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.usefixtures("full_disk")
def test_a_new_state_directory_on_a_full_disk_is_refused_naming_the_lock(tmp_path: Path) -> None:
    # run and evaluate said only "error: No space left on device" and left an empty
    # daemon.lock; check-config said OK (helper-150).
    cfg = write_config(tmp_path, model({"kind": "synthetic"}))
    state = tmp_path / "state"
    lock = state / "daemon.lock"
    why = (
        f"daemon.state_dir: cannot use the state directory {state}: No space left on "
        f"device: {shown_path(lock)}: is its file system full? free space there"
    )
    for command in ("run", "evaluate"):
        result = invoke(command, "--config", str(cfg))
        assert result.exit_code == EXIT_USER, result.output
        assert result.stderr == f"error: {why}\n"
        assert not lock.exists()
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == EXIT_USER, checked.output
    assert why in checked.stderr
