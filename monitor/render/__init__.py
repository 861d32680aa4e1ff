"""Alert rules, Grafana dashboards, runbooks and the daemon's pages, from ``monitor/assets``.

The package is the only owner of Jinja2 (in ``templates``, its one importer). The
generated files (``alerts/*.yml``, ``dashboards/*.json``, ``runbooks/*.md``) are
committed; ``stale_files`` tells whether they still match their sources.

Modules: ``options`` (RenderOptions), ``templates`` (loader and environments), ``rules``,
``dashboards`` (the Grafana JSON builder), ``runbooks``, ``markdown`` (the Markdown
subset as HTML), ``pages`` (HTML with autoescape: the daemon's pages and the static
runbook site) and ``files`` (render_all, stale_files).
"""

from __future__ import annotations

from monitor.render.dashboards import render_dashboards
from monitor.render.files import render_all, stale_files
from monitor.render.markdown import markdown_to_html
from monitor.render.options import RenderOptions
from monitor.render.pages import (
    index_page,
    model_page,
    runbook_page,
    runbooks_index_page,
    site_pages,
)
from monitor.render.rules import alert_names, render_rules
from monitor.render.runbooks import UnknownAlertError, render_runbooks, runbook_markdown

__all__ = [
    "RenderOptions",
    "UnknownAlertError",
    "alert_names",
    "index_page",
    "markdown_to_html",
    "model_page",
    "render_all",
    "render_dashboards",
    "render_rules",
    "render_runbooks",
    "runbook_markdown",
    "runbook_page",
    "runbooks_index_page",
    "site_pages",
    "stale_files",
]
