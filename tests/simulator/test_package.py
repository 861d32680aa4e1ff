"""The simulator is pure: numpy and the standard library, no adapter, clock or I/O."""

from __future__ import annotations

import pytest

from tests.test_architecture import MODULES, STDLIB

ALLOWED_PROJECT = (
    "monitor.simulator",
    "monitor.checks",
    "monitor.errors",
    "monitor.durations",
    "monitor.timestamps",
)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("monitor.simulator")))
def test_the_simulator_imports_only_numpy_stdlib_and_checks(name: str) -> None:
    for imp in MODULES[name]:
        top = imp.split(".")[0]
        if top == "monitor":
            assert imp.startswith(ALLOWED_PROJECT), f"{name} imports {imp}"
        else:
            assert top in {"numpy", "__future__"} or top in STDLIB, f"{name} imports {imp}"
        assert top not in {"time", "os", "pathlib", "socket", "urllib", "io", "random"}, (
            f"{name} imports {imp}"
        )


def test_the_package_is_found() -> None:
    assert {"monitor.simulator", "monitor.simulator._simulator"} <= set(MODULES)
