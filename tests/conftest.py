"""Fixtures that tests of several areas share."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Mount:
    """A tmpfs the test fills, then makes read-only with ``freeze``."""

    path: Path

    def freeze(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Mount]:
    """A tmpfs under ``tmp_path``, unmounted after the test. Root only (a directory made
    read-only by chmod does not stop root, and only root mounts): skipped for another
    user; as root, CI's, a mount that fails fails the test rather than skip it."""
    where = tmp_path / "mnt"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root, to mount a tmpfs")
    mount = ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)]
    done = subprocess.run(mount, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"root cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield Mount(where)
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: plain pytest runs have no workers
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the xdist controller: the end-to-end figures of the worker that ran them."""
    from tests.e2e import figures

    figures.from_worker(node)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The end-to-end figures, when the session ran them (tests/e2e/figures.py)."""
    from tests.e2e import figures

    figures.write_summary(terminalreporter, config)
