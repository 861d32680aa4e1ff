"""Runbooks: one per alert, the four sections, concrete commands and queries, HTML pages."""

from __future__ import annotations

import re
import shlex
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import click
import pytest

from monitor.render import (
    UnknownAlertError,
    alert_names,
    markdown_to_html,
    render_runbooks,
    runbook_html,
    runbook_markdown,
)
from tests.render._support import REPO, parse_cli

RUNBOOKS = render_runbooks()
NAMES = alert_names()
SECTIONS = ["## Meaning", "## Impact", "## Diagnosis", "## Mitigation"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
# Placeholders the runbooks use in commands, and a value of the right type for each.
PLACEHOLDERS = {
    "MODEL": "checkout",
    "VERSION": "3",
    "LIVE_VERSION": "3",
    "CANDIDATE_VERSION": "4",
    "GOOD_VERSION": "2",
    "PENDING_VERSION": "4",
}


def _outside_code(text: str) -> str:
    return FENCE.sub("", text)


def _commands(text: str) -> list[str]:
    """Every `kmeans-monitor ...` line of the sh blocks and of inline code spans."""
    found = []
    for lang, body in FENCE.findall(text):
        if lang == "sh":
            found += [ln for ln in body.splitlines() if ln.startswith("kmeans-monitor ")]
    found += re.findall(r"`(kmeans-monitor [^`]+)`", _outside_code(text))
    return found


def test_every_alert_has_its_runbook_and_every_runbook_its_alert() -> None:
    committed = sorted(p.stem for p in (REPO / "runbooks").glob("*.md"))
    templates = sorted(
        p.name.removesuffix(".md.j2")
        for p in (REPO / "monitor" / "assets" / "runbooks").glob("KMeans*.md.j2")
    )
    assert committed == templates == NAMES
    assert sorted(RUNBOOKS) == [f"{name}.md" for name in NAMES]


@pytest.mark.parametrize("name", NAMES)
def test_runbook_has_the_four_sections_in_order(name: str) -> None:
    text = RUNBOOKS[f"{name}.md"]
    assert text.startswith(f"# {name}\n")
    headings = re.findall(r"^#{1,2} .*$", _outside_code(text), re.M)
    assert headings == [f"# {name}", *SECTIONS]
    bodies = re.split(r"^## .*$", text, flags=re.M)[1:]
    assert all(len(body.split()) >= 20 for body in bodies), "a section is nearly empty"


@pytest.mark.parametrize("name", NAMES)
def test_runbook_is_concrete(name: str) -> None:
    text = RUNBOOKS[f"{name}.md"]
    diagnosis = text.split("## Diagnosis")[1].split("## Mitigation")[0]
    mitigation = text.split("## Mitigation")[1]
    # A dashboard panel to open, PromQL to run, and kmeans-monitor commands to type.
    assert re.search(r"\*\*kmeans-monitor / (Executive|On-call|Debug)\*\* → \*\*", diagnosis)
    assert "```promql" in diagnosis
    assert _commands(diagnosis) or _commands(mitigation)
    # The rule itself is quoted, so the page says exactly what fired.
    assert "```promql" in text.split("## Meaning")[1].split("## Impact")[0]


@pytest.mark.parametrize(
    "name",
    ["KMeansCentroidDrift", "KMeansFeatureDrift", "KMeansManyFeaturesDrifting"],
)
def test_drift_runbooks_tell_a_real_shift_from_a_broken_pipeline(name: str) -> None:
    text = RUNBOOKS[f"{name}.md"]
    assert "### Real shift or broken feature pipeline?" in text
    for command in ("snapshots diff", "snapshots rollback", "evaluate"):
        assert any(command in c for c in _commands(text)), command


@pytest.mark.parametrize("name", NAMES)
def test_runbook_commands_exist_in_the_cli(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "window.parquet").write_bytes(b"")  # choose-k insists the file exists
    commands = _commands(RUNBOOKS[f"{name}.md"])
    assert commands
    for line in commands:
        tokens = [PLACEHOLDERS.get(t, t) for t in shlex.split(line)[1:]]
        try:
            parse_cli(tokens)
        except click.UsageError as exc:
            pytest.fail(f"{name}: `{line}` does not parse: {exc}")


# ------------------------------------------------------------------------ lookup and HTML


def test_runbook_markdown_is_the_committed_page() -> None:
    for name in NAMES:
        committed = (REPO / "runbooks" / f"{name}.md").read_text(encoding="utf-8")
        assert runbook_markdown(name) == committed


@pytest.mark.parametrize("bad", ["KMeansNope", "kmeansrunsfailing", "../alerts/kmeans-monitor", ""])
def test_unknown_alert_lists_the_valid_names(bad: str) -> None:
    for lookup in (runbook_markdown, runbook_html):
        with pytest.raises(UnknownAlertError) as info:
            lookup(bad)
        assert isinstance(info.value, KeyError)
        assert str(info.value) == f"no alert named {bad!r}; valid names: {', '.join(NAMES)}"


class _TagBalance(HTMLParser):
    VOID: ClassVar[set[str]] = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.parametrize("name", NAMES)
def test_runbook_html_is_a_balanced_self_contained_page(name: str) -> None:
    page = runbook_html(name)
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert f"<title>{name} · kmeans-monitor runbook</title>" in page
    assert f'<h1 id="{name.lower()}">{name}</h1>' in page
    assert "<script" not in page and "src=" not in page and 'href="http' not in page
    parser = _TagBalance()
    parser.feed(page)
    assert parser.errors == [] and parser.stack == []
    visible = "".join(parser.text)
    # Markdown syntax left in the visible text means the converter missed something.
    assert "**" not in visible and "```" not in visible and "## " not in visible


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("# Title\n", '<h1 id="title">Title</h1>\n'),
        ("### 2. Check it\n", '<h3 id="2-check-it">2. Check it</h3>\n'),
        ("one\ntwo\n\nthree\n", "<p>one two</p>\n<p>three</p>\n"),
        (
            "a `<b> & c` and **bold** x\n",
            "<p>a <code>&lt;b&gt; &amp; c</code> and <strong>bold</strong> x</p>\n",
        ),
        ("- a\n  more\n- b\n", "<ul>\n<li>a more</li>\n<li>b</li>\n</ul>\n"),
        ("- a\n\n- b\n", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"),
        ("1. a\n2. b\n", "<ol>\n<li>a</li>\n<li>b</li>\n</ol>\n"),
        ("- a\n1. b\n", "<ul>\n<li>a</li>\n</ul>\n<ol>\n<li>b</li>\n</ol>\n"),
        (
            "```sh\necho '<x>' && **y**\n```\n",
            '<pre><code class="language-sh">echo &#x27;&lt;x&gt;&#x27; &amp;&amp; **y**\n'
            "</code></pre>\n",
        ),
        (
            'see [docs](https://e.x/a?b=1&c="2")\n',
            '<p>see <a href="https://e.x/a?b=1&amp;c=&quot;2&quot;">docs</a></p>\n',
        ),
        ("see [it](javascript:alert(1))\n", "<p>see it)</p>\n"),
        ("x <script>alert(1)</script>\n", "<p>x &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"),
        ("text\n- item\n", "<p>text</p>\n<ul>\n<li>item</li>\n</ul>\n"),
    ],
)
def test_markdown_to_html_worked_examples(markdown: str, html: str) -> None:
    assert markdown_to_html(markdown) == html


@pytest.mark.parametrize(
    "markdown",
    [
        "> a quote\n",
        "| a | table |\n",
        "<div>raw html</div>\n",
        "- item\n  - nested\n",
        "- item\n  ```sh\n",
        "---\n",
        "    indented code\n",
        "```sh\nnever closed\n",
        "a `dangling backtick\n",
        "* star bullet\n",
    ],
)
def test_markdown_outside_the_subset_is_refused(markdown: str) -> None:
    with pytest.raises(ValueError, match=r"supported subset|not closed|backtick"):
        markdown_to_html(markdown)
