"""The daemon's HTML pages: self-contained, balanced, and every value escaped."""

from __future__ import annotations

import html
import posixpath
import re
import shlex
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest

from monitor.render import (
    RenderOptions,
    alert_names,
    index_page,
    markdown_to_html,
    model_page,
    runbook_markdown,
    runbook_page,
    site_pages,
)
from monitor.render.pages import SECTION_ORDER, _ago, histogram
from monitor.runner import store_options
from tests.render._support import REPO

NAMES = alert_names()
LINKS = ["/runbooks/", "/metrics", "/api/models", "/healthz", "/readyz"]
NOW = 1_800_000_000.0
DASH = "\u2013"  # an en dash: no value


class _Page(HTMLParser):
    """Checks that tags balance; collects the visible text, table cells and links."""

    VOID: ClassVar[set[str]] = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self, page: str) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self.links: list[str | None] = []
        self.ids: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in {"td", "th"}:
            self.rows[-1].append("")
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))
        ident = dict(attrs).get("id")
        if ident:
            self.ids.append(ident)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if {"td", "th"} & set(self.stack):  # text inside a cell, at any depth
            self.rows[-1][-1] += data


def _self_contained(page: str) -> None:
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">')
    assert page.endswith("</main>\n</body>\n</html>\n")
    # No script, no external style sheet, font or image: the page works offline.
    assert "<script" not in page and "src=" not in page and "<link" not in page
    parser = _Page(page)
    assert parser.errors == [] and parser.stack == []


# ------------------------------------------------------------------------ runbooks


def _h2(page: str) -> list[str]:
    return re.findall(r"<h2[^>]*>([^<]+)</h2>", page)


@pytest.mark.parametrize("name", NAMES)
def test_runbook_page_is_a_balanced_self_contained_page(name: str) -> None:
    page = runbook_page(name)
    _self_contained(page)
    assert f"<title>{name} · kmeans-monitor runbook</title>" in page
    assert f'<h1 id="{name.lower()}">{name}</h1>' in page
    visible = "".join(_Page(page).text)
    # Markdown syntax left in the visible text means the converter missed something.
    assert "**" not in visible and "```" not in visible and "## " not in visible
    # The daemon's copy links its models and its list of runbooks.
    assert _Page(page).links[:2] == ["/", "/runbooks/"]


@pytest.mark.parametrize("name", NAMES)
def test_runbook_page_puts_mitigation_first_and_keeps_every_section_once(name: str) -> None:
    page = runbook_page(name)
    assert _h2(page) == list(SECTION_ORDER)
    # Each section is the converted Markdown, unescaped once (not "&lt;h2&gt;").
    markdown = runbook_markdown(name)
    for title in SECTION_ORDER:
        section = markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
        assert markdown_to_html(f"## {title}\n{section}") in page
    # The contents line links every section, in page order, after the links to the
    # models and the runbooks.
    assert _Page(page).links[2 : 2 + len(SECTION_ORDER)] == [f"#{t.lower()}" for t in SECTION_ORDER]


def test_pages_inline_the_style_sheet_on_one_line() -> None:
    rules = (REPO / "monitor" / "assets" / "pages" / "page.css").read_text().splitlines()
    for page in (runbook_page(NAMES[0]), index_page([]), model_page(_view())):
        (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
        assert "\n" not in style
        assert style.startswith("".join(rules))


# ------------------------------------------------------------------------ the static site


def test_the_site_has_every_runbook_and_an_index() -> None:
    options = RenderOptions(daemon_url="http://kmeans.internal:9310")
    pages = site_pages(options)
    assert sorted(pages) == sorted(["index.html", *(f"runbooks/{n}.html" for n in NAMES)])
    index = _Page(pages["index.html"])
    assert index.links == ["http://kmeans.internal:9310/", *(f"runbooks/{n}.html" for n in NAMES)]
    for name in NAMES:
        page = pages[f"runbooks/{name}.html"]
        _self_contained(page)
        assert _h2(page) == list(SECTION_ORDER)
        # Without the daemon there are no live values: the page says where they are.
        assert "http://kmeans.internal:9310/" in _Page(page).links
        assert 'id="live"' not in page
        # And a way back to the list of runbooks, relative to the page (F13: none).
        assert _Page(page).links[0] == "../index.html"
        assert posixpath.normpath(posixpath.join("runbooks", "../index.html")) in pages


def test_the_runbook_url_pattern_points_at_the_site_layout() -> None:
    # The default link is the site's path, opened on the model that fired.
    options = RenderOptions()
    url = options.runbook_url("KMeansFeatureDrift")
    assert url.startswith(
        "http://127.0.0.1:9312/" + options.site_runbook_path("KMeansFeatureDrift")
    )
    assert options.site_runbook_path("KMeansFeatureDrift") in site_pages(options)


# ------------------------------------------------------------------------ a model's view


def _view(**changes: Any) -> dict[str, Any]:
    """Page data shaped like monitor.views.ModelPages.model (checked against it in
    tests/shell/test_views.py)."""
    view: dict[str, Any] = {
        "model": "checkout",
        "generated_at": NOW,
        "state": "critical",
        "latest": {
            "window_start": NOW - 900,
            "window_end": NOW - 60,
            "evaluated_at": NOW - 60,
            "scored_version": 3,
            "candidate_version": 4,
            "n_rows": 3000,
            "decision": "drift awaits manual approval: feature PSI 0.404",
            "promoted": False,
            "put_off": None,
            "stale": False,
            "flagged_runs": 1,
            "flagged_runs_to_fire": 2,
            "last_run": NOW - 60,
            "last_success": NOW - 60,
            "interval": "1m",
            "overdue": False,
        },
        "slis": [
            {
                "sli": "feature_psi_max",
                "metric": "kmeans_feature_psi_max",
                "value": 0.404,
                "direction": "above",
                "thresholds": {"feature_psi_warning": 0.1, "feature_psi_critical": 0.25},
                "state": "critical",
                "since": NOW - 1200,
                "since_before": False,
            },
            {
                "sli": "label_psi",
                "metric": "kmeans_label_psi",
                "value": 0.01,
                "direction": "above",
                "thresholds": {"label_psi": None},
                "state": "ok",
                "since": NOW - 86400 * 2,
                "since_before": False,
            },
        ],
        "features": [
            {
                "feature": "latency_p99_ms",
                "psi": 0.404,
                "state": "critical",
                "since": NOW - 1200,
                "since_before": False,
                "bins": {
                    "edges": [100.0, 250.0],
                    "reference": [0.5, 0.3, 0.2],
                    "current": [0.1, 0.3, 0.6],
                },
            },
            {
                "feature": "rps",
                "psi": 0.01,
                "state": "ok",
                "since": None,
                "since_before": False,
                "bins": None,
            },
        ],
        "clusters": [
            {
                "cluster": 1,
                "drift": 0.85,
                "size": 900,
                "share": 0.3,
                "reference_share": 0.25,
                "moved": [
                    {
                        "feature": "latency_p99_ms",
                        "centre": 180.0,
                        "mean": 420.0,
                        "shift": 240.0,
                        "shift_scaled": 2.4,
                        "units": "raw",
                    },
                ],
            },
        ],
        "rescaled": [],
        "runs": [
            {
                "evaluated_at": NOW - 60,
                "version": 3,
                "n_rows": 3000,
                "decision": "drift awaits manual approval: feature PSI 0.404",
                "promoted": False,
                "candidate_version": 4,
                "slis": {},
            },
        ],
        "failures": [
            {
                "at": NOW - 4000,
                "reason": "source_timeout",
                "message": "timed out after 30s",
                "window": "",
            },
        ],
        "failing_since": None,
        "awaiting_until": None,
        "runs_failing": None,
        "versions": {
            "live": 3,
            "loaded": 3,
            "loaded_created_at": NOW - 86400,
            "loaded_reason": "initial",
            "loaded_k": 4,
            "pending": 4,
            "pending_problem": None,
            "approve_command": (
                "kmeans-monitor snapshots approve checkout 4 --state-dir /var/lib/km"
            ),
            "diff_command": "kmeans-monitor snapshots diff checkout 3 4 --state-dir /var/lib/km",
            "reject_command": "kmeans-monitor snapshots reject checkout 4 --state-dir /var/lib/km",
            "pending_from": {
                "evaluated_at": NOW - 300,
                "window_start": NOW - 3900,
                "window_end": NOW - 300,
                "period": "1h",
                "n_rows": 1800,
                "past": [
                    {
                        "sli": "feature_psi",
                        "feature": "latency",
                        "value": 2.1,
                        "threshold": 0.25,
                        "features": None,
                    }
                ],
            },
            "pending_drift_ended": None,
            "live_problem": None,
            "rollback_to": None,
            "rollback_command": None,
            "events": [],
            "events_log_begins": {"at": None, "note": "moves before the log began ..."},
        },
        "links": {
            "page": "/models/checkout",
            "json": "/api/models/checkout",
            "dashboard": "http://grafana/d/kmeans-monitor-oncall/?var-model=checkout",
            "runbooks": [{"alert": n, "url": f"/runbooks/{n}?model=checkout"} for n in NAMES],
        },
        "cli": {
            "store_options": "--config /srv/km/monitor.yml --state-dir /var/lib/km",
            "config_file": "/srv/km/monitor.yml",
            "url": "http://127.0.0.1:9310",
        },
    }
    view.update(changes)
    return view


def test_model_page_shows_the_live_values_and_the_exact_commands() -> None:
    page = model_page(_view())
    _self_contained(page)
    parser = _Page(page)
    text = " ".join("".join(parser.text).split())
    assert "Model checkout" in text
    assert "kmeans-monitor snapshots approve checkout 4 --state-dir /var/lib/km" in text
    assert "kmeans-monitor snapshots diff checkout 3 4 --state-dir /var/lib/km" in text
    assert {"approve-command", "diff-command", "slis", "features-table"} <= set(parser.ids)
    assert "rollback-command" not in parser.ids  # the live version has no parent
    # How far the model is from firing its SLI alerts (one flagged run of two).
    assert (
        "the model's flagged runs in a row (runs on which some SLI alert's condition held) "
        "reach 2: 1 now." in text
    )
    assert "flagged-runs" in parser.ids
    rows = {r[0]: [" ".join(cell.split()) for cell in r] for r in parser.rows if r}
    assert rows["feature_psi_max"][1:4] == [
        "0.404",
        "feature_psi_warning 0.1; feature_psi_critical 0.25",
        "critical",
    ]
    assert rows["feature_psi_max"][4] == "07:40:00 UTC (20m ago)"
    # An absent threshold is not a drift signal at this window size: said, not hidden.
    assert rows["label_psi"][2] == "label_psi none (not a drift signal at this size)"
    assert rows["label_psi"][4] == "2027-01-13 08:00:00 UTC (2d ago)"
    assert rows["1"][1:4] == ["0.85", "900", "30.0% / 25.0%"]
    assert rows["1"][4] == "latency_p99_ms 180 → 420 (+240)"
    assert "/runbooks/KMeansFeatureDrift?model=checkout" in parser.links
    assert "http://grafana/d/kmeans-monitor-oncall/?var-model=checkout" in parser.links


def test_a_live_version_that_does_not_load_is_named_with_a_rollback_to_one_that_does() -> None:
    where = "--state-dir /var/lib/km"
    versions = {
        **_view()["versions"],
        "live": 4,
        "loaded": 3,
        "pending": 5,
        "live_problem": "version 4 does not load: /var/lib/km/arrays.npz is corrupt",
        "approve_command": f"kmeans-monitor snapshots approve checkout 5 {where}",
        "diff_command": f"kmeans-monitor snapshots diff checkout 3 5 {where}",
        "rollback_to": 3,
        "rollback_command": f"kmeans-monitor snapshots rollback checkout --to 3 {where}",
    }
    page = model_page(_view(versions=versions))
    _self_contained(page)
    parser = _Page(page)
    text = " ".join("".join(parser.text).split())
    assert (
        "Live version: 4. Broken: version 4 does not load: /var/lib/km/arrays.npz is corrupt. "
        "Runs fail until the live version is one that loads; the daemon keeps version 3 loaded."
    ) in text
    assert "The daemon still scores" not in text
    assert (
        "Compare it with version 3, the last live one that loads, first: "
        f"{versions['diff_command']}" in text
    )
    rollback = versions["rollback_command"]
    assert f"Roll back to version 3, the last live one that loads: {rollback}" in text
    assert {"live-problem", "rollback-command"} <= set(parser.ids)
    # Nor does a runbook put the broken version into the commands it fills in.
    runbook = _Page(runbook_page("KMeansFeatureDrift", view=_view(versions=versions)))
    text = " ".join("".join(runbook.text).split())
    assert "snapshots diff --config /srv/km/monitor.yml --state-dir /var/lib/km checkout " in text
    assert "checkout LIVE_VERSION 5" in text and "checkout 4 5" not in text
    # A pointer that cannot be read names no version.
    versions |= {"live": None, "live_problem": "the live pointer cannot be read: 'zz'"}
    text = " ".join("".join(_Page(model_page(_view(versions=versions))).text).split())
    assert "Live version: unreadable. Broken: the live pointer cannot be read: 'zz'." in text


def test_model_page_draws_each_explained_feature_as_an_svg_histogram() -> None:
    page = model_page(_view())
    (svg,) = re.findall(r"<svg .*?</svg>", page, re.S)  # rps has no bins yet
    assert 'role="img"' in svg and "<title>Bin shares of latency_p99_ms" in svg
    assert svg.count('class="ref"') == 3 and svg.count('class="cur"') == 3
    assert "(250, ∞]: reference 20.0%, now 60.0%" in svg
    assert "not explained yet" in page


def test_histogram_bars_are_proportional_to_the_shares() -> None:
    chart = histogram({"edges": [1.0], "reference": [0.25, 0.75], "current": [0.5, 0.5]})
    (a, b) = chart["bars"]
    assert (a["ref_h"], a["cur_h"], b["ref_h"], b["cur_h"]) == (32.0, 64.0, 96.0, 64.0)
    assert a["ref_y"] + a["ref_h"] == chart["height"] == b["cur_y"] + b["cur_h"]
    assert (chart["low"], chart["high"]) == ("1", "1")


def test_a_failing_model_says_since_when_and_why() -> None:
    view = _view(state="failing", failing_since=NOW - 600)
    text = " ".join("".join(_Page(model_page(view)).text).split())
    assert "runs have failed since 07:50:00 UTC (10m ago)" in text
    assert "Latest failure: source_timeout: timed out after 30s" in text
    assert "The values below are the last good run's." in text
    # Without a run that succeeded there are no values of one to speak of.
    never = _view(state="failing", failing_since=NOW - 600, latest=None)
    text = " ".join("".join(_Page(model_page(never)).text).split())
    assert "no successful run yet" in text and "last good run" not in text


def test_a_model_without_a_run_says_so_once() -> None:
    empty = {"latest": None, "slis": [], "features": [], "clusters": [], "runs": []}
    for page in (
        model_page(_view(state="no run yet", **empty)),
        runbook_page("KMeansFeatureDrift", view=_view(state="no run yet", **empty)),
    ):
        text = " ".join("".join(_Page(page).text).split())
        assert "State no run yet: the first run has not ended yet; its values show here" in text
        assert "no successful run yet" not in text
    text = " ".join("".join(_Page(model_page(_view(state="failing", **empty))).text).split())
    assert "State failing: no successful run yet." in text


def test_runbook_opened_on_a_model_shows_its_live_block_and_its_names() -> None:
    page = runbook_page("KMeansFeatureDrift", view=_view())
    _self_contained(page)
    assert page.index('id="live"') < page.index('<h2 id="mitigation">')
    parser = _Page(page)
    text = " ".join("".join(parser.text).split())
    assert "Model checkout now" in text
    assert "kmeans-monitor snapshots approve checkout 4 --state-dir /var/lib/km" in text
    # The runbook's placeholders are the model's names and versions.
    assert 'model="checkout", feature="latency_p99_ms"' in text
    assert "MODEL" not in text and "CANDIDATE_VERSION" not in text and "LIVE_VERSION" not in text
    # The daemon's own files, not the placeholder (tests/render/test_render_runbooks.py).
    where = "--config /srv/km/monitor.yml --state-dir /var/lib/km"
    assert f"snapshots diff {where} checkout 3 4" in text
    assert "/etc/kmeans-monitor/config.yml" not in text


HOSTILE_DIRS = [
    "/srv/we`ird",  # a backtick would close the code span the command sits in
    "/srv/**bold** [l](javascript:alert(1))",
    "/srv/_a_ b/__c__",
    '/srv/<b>x</b> & &amp; "q"',
    "/srv/it's $HOME `id`",
]


def _commands(page: str) -> list[list[str]]:
    """Each kmeans-monitor command in the page's code, as the shell would split it."""
    commands = []
    for code in re.findall(r"<code[^>]*>(.*?)</code>", page, re.S):
        for line in html.unescape(code).splitlines():
            if line.startswith("kmeans-monitor ") or " kmeans-monitor " in line:
                words = shlex.split(line, comments=True)
                commands.append(words[words.index("kmeans-monitor") :])
    return commands


@pytest.mark.parametrize("where", HOSTILE_DIRS)
def test_runbook_commands_name_any_daemon_path_exactly(where: str) -> None:
    config, state = f"{where}/monitor.yml", f"{where}/state"
    cli = {
        "store_options": store_options(Path(state), Path(config)),
        "config_file": shlex.quote(config),
        "url": "http://127.0.0.1:9310",
    }
    for name in NAMES:
        page = runbook_page(name, cli=cli)
        _self_contained(page)
        commands = _commands(page)
        assert commands, name
        for words in commands:
            for option, path in (("--config", config), ("--state-dir", state)):
                if option in words:
                    assert words[words.index(option) + 1] == path, (name, words)
            if words[1] == "check-config":
                assert words[2] == config, (name, words)
    # The same through a model's view, which carries the daemon's paths with it.
    page = runbook_page("KMeansModelStale", view=_view(cli=cli))
    assert ["kmeans-monitor", "snapshots", "list", "--config", config] in [
        w[:5] for w in _commands(page)
    ]


def test_runbook_without_a_model_offers_the_daemons_models() -> None:
    parser = _Page(runbook_page("KMeansFeatureDrift", models=["checkout", "search"]))
    assert [link for link in parser.links if link and link.startswith("?model=")] == [
        "?model=checkout",
        "?model=search",
    ]


# ------------------------------------------------------------------------ index


def _entry(name: str, version: Any, decision: str | None, state: str = "ok") -> dict[str, Any]:
    """An entry shaped like monitor.views.ModelPages.index."""
    # The run was evaluated (its window's end) 47 s before it ended, its success: the
    # "latest success" column says the success, as kmeans_last_success_timestamp_seconds
    # does (helper-151: the window's end, 47 s early).
    latest = (
        None
        if decision is None
        else {"decision": decision, "evaluated_at": NOW - 77, "last_success": NOW - 30}
    )
    return {
        "model": name,
        "state": state,
        "live_version": version,
        "live_problem": None,
        "pending_version": None,
        "pending_problem": None,
        "latest": latest,
        "latest_failure": None,
        "failing_since": None,
        "awaiting_until": None,
        "links": {"page": f"/models/{name}"},
    }


HEADER = ["model", "state", "live version", "pending", "latest decision", "latest success"]


def test_index_page_lists_each_model_with_its_state_and_the_links() -> None:
    page = index_page(
        [
            _entry("checkout", 3, "retrained on drift: feature PSI 0.404", "critical"),
            _entry("search", 1, None, "failing"),
            _entry("fresh", None, None, "no run yet"),
        ],
        now=NOW,
    )
    _self_contained(page)
    parser = _Page(page)
    assert parser.rows == [
        HEADER,
        [
            "checkout",
            "critical",
            "3",
            DASH,
            "retrained on drift: feature PSI 0.404",
            "07:59:30 UTC (30s ago)",
        ],
        ["search", "failing", "1", DASH, "no successful run yet", "never"],
        ["fresh", "no run yet", "none", DASH, "no successful run yet", "never"],
    ]
    assert parser.links == ["/models/checkout", "/models/search", "/models/fresh", *LINKS]
    assert "<title>kmeans-monitor</title>" in page
    # How many in each state, in the entries' order (ModelPages sorts them by urgency).
    counts = "3 models: 1 critical, 1 failing, 1 no run yet. The models to look at first are"
    assert counts in html.unescape(re.sub(r"<[^>]+>", "", page))


def test_index_page_gives_a_failing_models_failure_not_the_decision_before() -> None:
    # The decision of the success before read as the latest, beside a failing badge.
    failing = _entry("checkout", 3, "kept: no drift", "failing") | {
        "failing_since": NOW - 300,
        "latest_failure": {"at": NOW - 60, "reason": "source_unavailable", "message": "x" * 300},
    }
    [_, row] = _Page(index_page([failing], now=NOW)).rows
    assert row[1] == "failing since 07:55:00 UTC (5m ago)"
    assert row[4] == f"run failed (source_unavailable): {'x' * 197}..."
    assert row[5] == "07:59:30 UTC (30s ago)"


def test_index_page_names_a_broken_version_as_the_model_page_does() -> None:
    unreadable = _entry("checkout", None, None) | {"live_problem": "the live pointer is 'zz'"}
    broken = _entry("search", 4, None) | {
        "live_problem": "version 4 does not load: x",
        "pending_version": 5,
        "pending_problem": "version 5 does not load: y",
    }
    no_model_yet = _entry("fresh", None, None)
    parser = _Page(index_page([unreadable, broken, no_model_yet], now=NOW))
    assert [row[2:4] for row in parser.rows[1:]] == [
        ["unreadable", DASH],
        ["4, broken", "5, broken"],
        ["none", DASH],
    ]
    # Each links to what the model page says of it (ids live-problem, pending-problem).
    assert parser.links == [
        "/models/checkout",
        "/models/checkout#live-problem",
        "/models/search",
        "/models/search#live-problem",
        "/models/search#pending-problem",
        "/models/fresh",
        *LINKS,
    ]


def test_index_page_without_models_says_so() -> None:
    parser = _Page(index_page([]))
    assert parser.rows == [HEADER, ["no model configured"]]
    assert parser.links == LINKS


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "kept: </td></tr></table><img src=x onerror=alert(1)>",
        "a & b \"quoted\" 'single' <b>bold</b>",
        "{{ 7 * 7 }} {% if x %}",  # template syntax in a value stays text
    ],
)
def test_pages_escape_every_value(text: str) -> None:
    for page in (
        index_page([_entry(text, text, text, text)]),
        model_page(_view(model=text, latest={**_view()["latest"], "decision": text})),
    ):
        assert "<script" not in page and "<img" not in page and "<b>" not in page
        assert "</td></tr></table><" not in page
        assert text in "".join(_Page(page).text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "0s ago"),
        (59.6, "59s ago"),
        (60, "1m ago"),
        (90, "1m ago"),
        (3570, "59m ago"),
        (3600, "1h ago"),
        (5400, "1h 30m ago"),
        (86000, "23h 53m ago"),
        (86400, "1d ago"),
        (129600, "1d 12h ago"),
        (-90, "in 1m"),
        (-14340, "in 3h 59m"),
    ],
)
def test_ages_are_floored_never_rounded_up_to_the_next_unit(seconds: float, text: str) -> None:
    # Helper-151: 90 s read "2m ago", 59.6 s "60s ago", 36 h "2d ago".
    assert _ago(seconds) == text


def test_the_charts_legend_is_a_colour_swatch_not_text_coloured_like_a_link() -> None:
    # Helper-151: "latest window (blue)" was #0550ae, the links' colour: it looked clickable.
    page = model_page(_view())
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None
    rules = dict(re.findall(r"([^{}]+)\{([^}]*)\}", style.group(1)))
    link = rules["a"]
    assert not any(
        "color:" in body and link in body for sel, body in rules.items() if "legend" in sel
    )
    assert "background:#0969da" in rules[".legend-cur::before"]  # the bars' blue
