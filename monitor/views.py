"""What the daemon's pages show: the latest state of every model, as data and as HTML."""

from __future__ import annotations

import html
from typing import Any

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
    rows = []
    for item in models_json(state):
        latest = item["latest"]
        decision = html.escape(latest["decision"]) if latest else "no run yet"
        rows.append(
            f"<tr><td>{html.escape(item['model'])}</td><td>{item['live_version']}</td>"
            f"<td>{decision}</td></tr>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>kmeans-monitor</title>"
        "</head><body><h1>kmeans-monitor</h1><table border='1' cellpadding='4'>"
        "<tr><th>model</th><th>live version</th><th>latest decision</th></tr>"
        + "".join(rows)
        + "</table><p><a href='/metrics'>/metrics</a> · <a href='/api/models'>/api/models"
        "</a> · <a href='/healthz'>/healthz</a> · <a href='/readyz'>/readyz</a></p>"
        "</body></html>"
    )


def runbook_html(name: str) -> str | None:
    """An alert's runbook as a page, or None when there is no such alert."""
    from monitor import render

    try:
        return render.runbook_html(name)
    except KeyError:
        return None
