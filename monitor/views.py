"""What the daemon's pages show: the latest state of every model, as data and as HTML."""

from __future__ import annotations

from typing import Any

from monitor import render
from monitor.exporter import MonitorState
from monitor.slis import FEATURE_PSI

__all__ = ["index_html", "models_json", "runbook_html"]


def models_json(state: MonitorState) -> list[dict[str, Any]]:
    """The latest evaluation of each model, JSON-friendly."""
    out = []
    for name in state.models():
        ev = state.latest(name)
        out.append(
            {
                "model": name,
                "live_version": state.live_version(name),
                "latest": None
                if ev is None
                else {
                    "window_start": ev.window_start,
                    "window_end": ev.window_end,
                    "scored_version": ev.live_version,
                    "n_rows": ev.n_rows,
                    "decision": ev.decision,
                    "promoted": ev.promoted,
                    "slis": dict(ev.slis),
                    FEATURE_PSI: dict(ev.feature_psi),
                    "thresholds": dict(ev.thresholds),
                },
            }
        )
    return out


def index_html(state: MonitorState) -> str:
    """A plain page that lists the models and links to everything else."""
    return render.index_page(models_json(state))


def runbook_html(name: str) -> str | None:
    """An alert's runbook as a page, or None when there is no such alert."""
    try:
        return render.runbook_page(name)
    except KeyError:
        return None
