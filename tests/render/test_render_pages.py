"""The daemon's HTML pages: self-contained, balanced, and every value escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any, ClassVar

import pytest

from monitor.render import (
    alert_names,
    index_page,
    markdown_to_html,
    runbook_markdown,
    runbook_page,
)
from tests.render._support import REPO

NAMES = alert_names()
LINKS = ["/metrics", "/api/models", "/healthz", "/readyz"]


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

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.stack and self.stack[-1] in {"td", "th"}:
            self.rows[-1][-1] += data


def _self_contained(page: str) -> None:
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">')
    assert page.endswith("</main>\n</body>\n</html>\n")
    # No script, no external style sheet, font or image: the page works offline.
    assert "<script" not in page and "src=" not in page and "<link" not in page
    parser = _Page(page)
    assert parser.errors == [] and parser.stack == []


# ------------------------------------------------------------------------ runbooks


@pytest.mark.parametrize("name", NAMES)
def test_runbook_page_is_a_balanced_self_contained_page(name: str) -> None:
    page = runbook_page(name)
    _self_contained(page)
    assert f"<title>{name} · kmeans-monitor runbook</title>" in page
    assert f'<h1 id="{name.lower()}">{name}</h1>' in page
    assert 'href="http' not in page
    visible = "".join(_Page(page).text)
    # Markdown syntax left in the visible text means the converter missed something.
    assert "**" not in visible and "```" not in visible and "## " not in visible


@pytest.mark.parametrize("name", NAMES)
def test_runbook_page_holds_the_converted_runbook_unescaped_once(name: str) -> None:
    # The body is HTML already (the converter escaped the Markdown): the template must
    # not escape it a second time, or the page would show "&lt;h1&gt;".
    page = runbook_page(name)
    body = markdown_to_html(runbook_markdown(name))
    assert page.count("<main>\n") == 1
    assert page.split("<main>\n")[1].removesuffix("</main>\n</body>\n</html>\n") == body


def test_pages_inline_the_style_sheet_on_one_line() -> None:
    rules = (REPO / "monitor" / "assets" / "pages" / "page.css").read_text().splitlines()
    for page in (runbook_page(NAMES[0]), index_page([])):
        (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
        assert "\n" not in style
        assert style.startswith("".join(rules))


# ------------------------------------------------------------------------ index


def _model(name: str, version: Any, decision: str | None) -> dict[str, Any]:
    """An entry shaped like the daemon's /api/models view."""
    latest = None if decision is None else {"decision": decision, "promoted": False}
    return {"model": name, "live_version": version, "latest": latest}


def test_index_page_lists_each_model_and_the_links() -> None:
    page = index_page(
        [
            _model("checkout", 3, "retrained on drift: feature PSI 0.404"),
            _model("search", 1, None),
            _model("fresh", None, None),
        ]
    )
    _self_contained(page)
    parser = _Page(page)
    assert parser.rows == [
        ["model", "live version", "latest decision"],
        ["checkout", "3", "retrained on drift: feature PSI 0.404"],
        ["search", "1", "no run yet"],
        ["fresh", "none", "no run yet"],
    ]
    assert parser.links == LINKS
    assert "<title>kmeans-monitor</title>" in page


def test_index_page_without_models_says_so() -> None:
    parser = _Page(index_page([]))
    assert parser.rows == [["model", "live version", "latest decision"], ["no model configured"]]
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
def test_index_page_escapes_every_value(text: str) -> None:
    page = index_page([_model(text, text, text)])
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "</td></tr></table><" not in page
    # Escaped, the strings read back exactly as given, each in its own cell.
    assert _Page(page).rows[1] == [text, text, text]
