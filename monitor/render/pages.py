"""The HTML pages the daemon serves, rendered from ``monitor/assets/pages/`` with autoescape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monitor.render.markdown import markdown_to_html
from monitor.render.runbooks import runbook_markdown
from monitor.render.templates import render_template

__all__ = ["index_page", "runbook_page"]


def runbook_page(alertname: str) -> str:
    """The runbook of one alert as a self-contained HTML document; UnknownAlertError if none."""
    body = markdown_to_html(runbook_markdown(alertname))
    return render_template("html", "pages/runbook.html.j2", alertname=alertname, body=body)


def index_page(models: Sequence[Mapping[str, Any]]) -> str:
    """The daemon's ``/`` page: each model's live version and latest decision, and the links.

    ``models`` are the entries of the ``/api/models`` view: ``model``, ``live_version``
    (None before the first snapshot) and ``latest`` (None before the first run, else a
    mapping with the ``decision``).
    """
    rows = [
        {
            "name": item["model"],
            "live_version": "none" if item["live_version"] is None else item["live_version"],
            "decision": item["latest"]["decision"] if item.get("latest") else "no run yet",
        }
        for item in models
    ]
    return render_template("html", "pages/index.html.j2", models=rows)
