"""The end-to-end run's figures: kept by the run, printed at the end of the session.

Under pytest-xdist (`make test` runs the suite in worker processes) the run happens in
the worker that has tests/e2e/test_alerting.py, and its figures reach the controller,
which prints the summary, through the worker's ``workeroutput``; the hooks that print
them are in tests/conftest.py, which the controller loads (it collects no tests, so it
never loads this directory's conftest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e._stack import SCENARIOS

FIGURES: pytest.StashKey[tuple[str, dict[str, Any]]] = pytest.StashKey()
WORKER_OUTPUT = "e2e_figures"


def keep(config: pytest.Config, path: Path, figures: dict[str, Any]) -> None:
    """Keep the figures for the summary: in this process, and for the xdist controller."""
    config.stash[FIGURES] = (str(path), figures)
    worker_output = getattr(config, "workeroutput", None)
    if worker_output is not None:
        worker_output[WORKER_OUTPUT] = [str(path), figures]


def from_worker(node: Any) -> None:
    """On the xdist controller: keep the figures of the worker that ran the stack."""
    output = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
    if output is not None:
        node.config.stash[FIGURES] = (output[0], output[1])


def write_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the figures, when this session ran the stack, so that they appear in the CI
    output."""
    if FIGURES not in config.stash:
        return
    path, figures = config.stash[FIGURES]
    terminalreporter.section("end-to-end figures")
    for line in summary_lines(figures):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(all figures: {path})")


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
