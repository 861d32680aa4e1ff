"""The HTML pages, rendered from ``monitor/assets/pages/`` with autoescape.

- the daemon's: ``index_page`` (``/``), ``model_page`` (``/models/NAME``),
  ``runbook_page`` (``/runbooks/NAME``; with a model, its live block on top) and
  ``runbooks_index_page`` (``/runbooks/``);
- the static runbook site that ``render`` writes to ``site/`` (``site_pages``): the same
  runbook pages without live values, servable by any web server while the daemon is down.

Runbook pages put Mitigation first: someone who arrives from an alert wants what to do.
Charts are inline SVG built here as numbers and drawn by the templates (no script).
"""

from __future__ import annotations

import html
import math
import posixpath
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from monitor.render.markdown import markdown_to_html
from monitor.render.options import RenderOptions
from monitor.render.rules import alert_names
from monitor.render.runbooks import CONFIG_PLACEHOLDER, DAEMON_URL_PLACEHOLDER, runbook_markdown
from monitor.render.templates import render_template

__all__ = [
    "SECTION_ORDER",
    "index_page",
    "model_page",
    "runbook_page",
    "runbooks_index_page",
    "site_pages",
]

#: The order of a runbook page's sections in HTML (the Markdown keeps the conventions').
SECTION_ORDER = ("Mitigation", "Meaning", "Impact", "Diagnosis")
_SECTION = re.compile(r"^## +(.+?)\s*$", re.M)
_CHART_WIDTH = 320
_CHART_HEIGHT = 96


def _when(ts: float | None, now: float | None = None) -> str:
    """A unix time as ``2026-05-01 12:00:00 UTC``, with ``(5m ago)`` (or ``(in 5m)``, for
    a time to come) when ``now`` is given."""
    if ts is None or not math.isfinite(ts) or ts <= 0:
        return "never"
    at = datetime.fromtimestamp(ts, UTC)
    if now is None:
        return at.strftime("%Y-%m-%d %H:%M:%S UTC")
    # Today's times need no date: the page says when it was made.
    same_day = at.date() == datetime.fromtimestamp(now, UTC).date()
    text = at.strftime("%H:%M:%S UTC" if same_day else "%Y-%m-%d %H:%M:%S UTC")
    return f"{text} ({_ago(now - ts)})"


def _ago(seconds: float) -> str:
    """An age (or, negative, a time to come) in its largest unit, floored: an age is
    never overstated, nor shown as 60s, 60m or 24h (rounded, 90 s read "2m ago" and
    59.6 s "60s ago": helper-151). Days keep their hours and hours their minutes: 36 h
    is "1d 12h", 3 h 59 m "3h 59m" (floored to "3h" alone, a time to come read an hour
    early)."""
    future = seconds < -0.5
    whole = math.floor(abs(seconds))
    days, rest = divmod(whole, 86400)
    if days:
        hours = rest // 3600
        amount = f"{days}d {hours}h" if hours else f"{days}d"
    elif whole >= 3600:
        minutes = rest % 3600 // 60
        amount = f"{whole // 3600}h {minutes}m" if minutes else f"{whole // 3600}h"
    elif whole >= 60:
        amount = f"{whole // 60}m"
    else:
        amount = f"{whole}s"
    return f"in {amount}" if future else f"{amount} ago"


def _num(value: float | None, digits: int = 3) -> str:
    """A number for people: 3 significant digits, or a dash when there is none."""
    if value is None:
        return "\u2013"  # an en dash
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def _versus(ratio: float, *, words: bool = True) -> str:
    """A ratio to the reference in words: ``1,000x the reference's``, ``1/1,000 of the
    reference's`` (a ratio below 1 as a fraction: 0.001x reads as a typo); without
    ``words``, ``1,000x`` and ``1/1,000``."""
    if ratio >= 1:
        return f"{ratio:,.0f}x" + (" the reference's" if words else "")
    return f"1/{1 / ratio:,.0f}" + (" of the reference's" if words else "")


_HELPERS: dict[str, Callable[..., str]] = {"when": _when, "num": _num, "versus": _versus}


# ------------------------------------------------------------------------ runbooks


def _sections(markdown: str) -> tuple[str, list[tuple[str, str]]]:
    """The runbook's head (title) and its ``##`` sections in page order, as HTML."""
    parts = _SECTION.split(markdown)
    head, pairs = parts[0], list(zip(parts[1::2], parts[2::2], strict=True))
    ordered = sorted(
        pairs, key=lambda p: SECTION_ORDER.index(p[0]) if p[0] in SECTION_ORDER else 99
    )
    return markdown_to_html(head), [
        (title, markdown_to_html(f"## {title}\n{body}")) for title, body in ordered
    ]


def _fill(html_text: str, cli: Mapping[str, Any] | None) -> str:
    """The converted runbook with the daemon's own files and address (``cli``) in place
    of the placeholder ones. Filled into the HTML, escaped, not into the Markdown: a
    path is any text (a backtick would end the code span a command sits in)."""
    if cli is None:
        return html_text
    # The options that open the store as the daemon does (its state directory may be a
    # --state-dir of its command line, not the file's): every command that names the
    # file takes them. check-config takes the file alone.
    values = [(f"--config {CONFIG_PLACEHOLDER}", cli["store_options"])]
    if cli["config_file"] is not None:
        values.append((CONFIG_PLACEHOLDER, cli["config_file"]))
    if cli.get("url") is not None:
        values.append((DAEMON_URL_PLACEHOLDER, cli["url"]))
    for placeholder, value in values:
        html_text = html_text.replace(html.escape(placeholder), html.escape(value))
    return html_text


def _fill_names(markdown: str, view: Mapping[str, Any]) -> str:
    """MODEL, LIVE_VERSION, CANDIDATE_VERSION and FEATURE as the model's (those it has),
    filled into the Markdown."""
    versions = view["versions"]
    values = {"MODEL": view["model"]}
    if versions["live"] is not None and versions["live_problem"] is None:
        # A live version that does not load is no argument to type (the live block says so).
        values["LIVE_VERSION"] = str(versions["live"])
    if versions["pending"] is not None and versions["pending_problem"] is None:
        values["CANDIDATE_VERSION"] = str(versions["pending"])  # nor a broken candidate
    if view["features"]:
        values["FEATURE"] = view["features"][0]["feature"]
    # Model and feature names are letters, digits and ._:- (monitor.checks): no Markdown.
    return re.sub(r"\b(" + "|".join(values) + r")\b", lambda m: values[m.group(1)], markdown)


def runbook_page(
    alertname: str,
    *,
    view: Mapping[str, Any] | None = None,
    models: Sequence[str] = (),
    options: RenderOptions | None = None,
    static: bool = False,
    cli: Mapping[str, Any] | None = None,
    unknown_model: str | None = None,
) -> str:
    """One alert's runbook as a self-contained page; UnknownAlertError if there is none.

    ``view`` (a model's page data) puts its live block on top and fills its names into
    the commands; ``models`` lists the daemon's models to pick from when there is none.
    ``static`` renders the site's copy, which links the daemon for the live values.
    ``cli``: the daemon's files and address for the commands when there is no ``view``
    (a daemon-level alert, or a model the daemon does not run). ``unknown_model``: the
    ``?model=`` the daemon does not run, said in one line above its models (helper-151:
    an alert from another daemon, or a renamed model, showed the generic page silently).
    """
    options = options or RenderOptions()
    markdown = runbook_markdown(alertname, options)
    if view is not None:
        markdown, cli = _fill_names(markdown, view), view["cli"]
    head, sections = _sections(markdown)
    head, sections = _fill(head, cli), [(title, _fill(body, cli)) for title, body in sections]
    # The list of runbooks: the site's index, relative, so the site works from any
    # directory or file:// URL; the daemon's /runbooks/.
    where = posixpath.dirname(options.site_runbook_path(alertname)) or "."
    index = posixpath.relpath("index.html", where) if static else "/runbooks/"
    return render_template(
        "html",
        "pages/runbook.html.j2",
        alertname=alertname,
        index=index,
        head=head,
        sections=sections,
        view=view,
        models=list(models),
        unknown_model=unknown_model,
        static=static,
        options=options,
        now=None if view is None else view["generated_at"],
        **_HELPERS,
    )


def site_pages(options: RenderOptions | None = None) -> dict[str, str]:
    """The static site: path under ``site/`` -> page (every runbook, and an index)."""
    options = options or RenderOptions()
    names = alert_names()
    pages = {
        options.site_runbook_path(name): runbook_page(name, options=options, static=True)
        for name in names
    }
    pages["index.html"] = render_template(
        "html",
        "pages/site_index.html.j2",
        alerts=[(name, options.site_runbook_path(name)) for name in names],
        options=options,
        daemon=False,
    )
    return pages


def runbooks_index_page(options: RenderOptions | None = None) -> str:
    """The daemon's ``/runbooks/``: every alert's runbook, as the static site's index
    lists them (helper-151: the daemon had none, and its front page linked no runbook)."""
    return render_template(
        "html",
        "pages/site_index.html.j2",
        alerts=[(name, f"/runbooks/{name}") for name in alert_names()],
        options=options or RenderOptions(),
        daemon=True,
    )


# ------------------------------------------------------------------------ models


def index_page(models: Sequence[Mapping[str, Any]], now: float | None = None) -> str:
    """The daemon's ``/`` page: each model's state, versions and latest decision, and how
    many models are in each state, in the order of ``models``."""
    counts = Counter(m["state"] for m in models)
    return render_template(
        "html",
        "pages/index.html.j2",
        models=list(models),
        counts=list(counts.items()),
        now=now,
        **_HELPERS,
    )


def model_page(view: Mapping[str, Any]) -> str:
    """One model's live page (the data of ``monitor.views.ModelPages.model``)."""
    return render_template(
        "html",
        "pages/model.html.j2",
        view=view,
        now=view["generated_at"],
        charts={f["feature"]: histogram(f["bins"]) for f in view["features"] if f["bins"]},
        sizes=share_bars(view["clusters"]),
        **_HELPERS,
    )


def histogram(bins: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Bar geometry of a feature's reference and current bin shares, side by side."""
    reference, current = list(bins["reference"]), list(bins["current"])
    n = len(reference)
    top = max([*reference, *current, 1e-12])
    slot = _CHART_WIDTH / n
    bars = []
    for b in range(n):
        ref_h = _CHART_HEIGHT * reference[b] / top
        cur_h = _CHART_HEIGHT * current[b] / top
        bars.append(
            {
                "x": round(b * slot + 1, 2),
                "w": round(max(1.0, slot / 2 - 1), 2),
                "ref_y": round(_CHART_HEIGHT - ref_h, 2),
                "ref_h": round(ref_h, 2),
                "cur_y": round(_CHART_HEIGHT - cur_h, 2),
                "cur_h": round(cur_h, 2),
                "title": _bin_title(list(bins["edges"]), b, reference[b], current[b]),
            }
        )
    edges = list(bins["edges"])
    return {
        "width": _CHART_WIDTH,
        "height": _CHART_HEIGHT,
        "bars": bars,
        "low": _num(edges[0]) if edges else "",
        "high": _num(edges[-1]) if edges else "",
    }


def _bin_title(edges: list[float], b: int, reference: float, current: float) -> str:
    low = "\u2212∞" if b == 0 else _num(edges[b - 1])  # a minus sign
    high = "∞" if b == len(edges) else _num(edges[b])
    return f"({low}, {high}]: reference {reference:.1%}, now {current:.1%}"


def share_bars(clusters: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, float]]:
    """Widths (percent of the cell) of each cluster's current and reference share bars."""
    shares = [c["share"] for c in clusters] + [c["reference_share"] or 0.0 for c in clusters]
    top = max([*shares, 1e-12])
    return {
        c["cluster"]: {
            "now": round(100 * c["share"] / top, 1),
            "ref": round(100 * (c["reference_share"] or 0.0) / top, 1),
        }
        for c in clusters
    }
