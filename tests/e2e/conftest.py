"""The end-to-end run, one for the session (its figures: tests/e2e/figures.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e import figures
from tests.e2e._stack import RunRecord, run_stack
from tests.services import Services


@pytest.fixture(scope="session")
def e2e_run(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RunRecord]:
    """The whole stack, run once; every process is stopped before the session goes on."""
    workdir = tmp_path_factory.mktemp("e2e")
    services = Services(workdir / "services")
    try:
        record = run_stack(services, workdir)
    finally:
        services.close()
    path = workdir / "e2e-figures.json"
    path.write_text(json.dumps(record.figures, indent=2, sort_keys=True), encoding="utf-8")
    figures.keep(request.config, path, record.figures)
    yield record
