"""The end-to-end run (one for the session) and the summary table of its figures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e._stack import SCENARIOS, RunRecord, run_stack
from tests.services import Services

FIGURES: pytest.StashKey[tuple[Path, dict[str, Any]]] = pytest.StashKey()


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
    request.config.stash[FIGURES] = (path, record.figures)
    yield record


def summary_lines(figures: dict[str, Any]) -> list[str]:
    """The figures as a Markdown table, as docs/e2e.md shows them."""
    lines = [
        "| scenario | expected alert -> receiver | arrived at | injection -> firing | "
        "injection -> webhook | windows | runbook |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in SCENARIOS:
        f = figures["scenarios"][s.model]
        seconds = "-" if f["seconds_to_webhook"] is None else f"{f['seconds_to_webhook']:.1f} s"
        firing = "-" if f["seconds_to_firing"] is None else f"{f['seconds_to_firing']:.1f} s"
        lines.append(
            f"| {s.model} | {f['expected']} | {f['received_by'] or 'NOT ARRIVED'} | {firing} | "
            f"{seconds} | {f['windows'] if f['windows'] is not None else '-'} | "
            f"{f['runbook_status'] or '-'} |"
        )
    st = figures["stationary"]
    lines.append(
        f"\nstationary: {st['windows']} windows over {st['seconds_watched']:.0f} s, "
        f"{len(st['notifications'])} notifications, "
        f"{len(st['alerts_pending_or_firing'])} alerts pending or firing"
        f"{' ' + str(st['alerts_pending_or_firing']) if st['alerts_pending_or_firing'] else ''}, "
        f"{st['failed_runs']} failed runs, at most {st['most_flagged_runs']} flagged runs in a row"
    )
    for s in SCENARIOS:
        f = figures["scenarios"][s.model]
        if f["alerts_before_injection"]:
            lines.append(f"{s.model}: before its injection: {f['alerts_before_injection']}")
        lines.append(f"{s.model}: after its injection: {f['received_after_injection']}")
    dl = figures["daemon_level"]
    lines.append(
        f"daemon-level: notifications {dl['notifications']}, "
        f"pending or firing {dl['alerts_pending_or_firing']}"
    )
    od = figures["observed_on_drift_policy"]
    lines.append(
        f"observed, {od['what']}: {od['promotions']} promotions, notifications "
        f"{od['notifications']}"
    )
    lines.append(f"suite wall time: {figures['suite_seconds']:.0f} s")
    return lines


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the end-to-end figures so that they appear in the CI output."""
    if FIGURES not in config.stash:
        return
    path, figures = config.stash[FIGURES]
    terminalreporter.section("end-to-end figures")
    for line in summary_lines(figures):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(all figures: {path})")
