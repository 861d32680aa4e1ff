"""The pages in a real browser: Debian's headless Chromium on the real daemon.

Each page must render, hold the live values the daemon's JSON holds, and pass axe-core's
WCAG 2.1 A/AA and best-practice rules at desktop (1920x1080) and phone (390x844) width.
The screenshots in docs/screenshots/ come from the same pages
(``python -m tests.pages.screenshots``); a test checks they are there at those sizes.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.render import RenderOptions, index_page, site_pages
from monitor.render.pages import SECTION_ORDER
from tests.pages._browser import Browser, Page
from tests.pages.conftest import DRIFTING, QUIET, DaemonPages, explained

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
VIEWPORTS = {"desktop": (1920, 1080), "phone": (390, 844)}


def _num(value: float) -> str:
    return f"{value:.3g}"


def _open(
    browser: Browser, pages: DaemonPages, path: str, viewport: str, model: str = DRIFTING
) -> tuple[Page, list[dict[str, Any]]]:
    """The page, and the model's JSON just before and just after it was loaded.

    The daemon runs every 3 s: the page shows one of the two states. A run's window is
    explained just after the run is recorded, so for a moment the latest run has no
    explanation (no bins, nothing moved); the page is loaded again (a few times at most)
    until both states explain the same window.
    """
    width, height = VIEWPORTS[viewport]
    for _ in range(10):
        before = pages.json(model)
        page = browser.page(pages.url(path), width, height, mobile=viewport == "phone")
        after = pages.json(model)
        if explained(before) and before["latest"] == after["latest"] and explained(after):
            break
    return page, [before, after]


def _one_of(
    text: str, views: list[dict[str, Any]], expected: Callable[[dict[str, Any]], list[str]]
) -> None:
    """Every string ``expected(view)`` is in ``text`` for one of the views."""
    wanted = [expected(v) for v in views]
    assert any(all(w in text for w in strings) for strings in wanted), (wanted, text[:3000])


def _live_values(view: dict[str, Any]) -> list[str]:
    top = view["features"][0]
    return [
        view["versions"]["approve_command"],
        view["latest"]["decision"],
        f"{top['feature']}",
        _num(top["psi"]),
        view["state"],
    ]


def _moved_feature(view: dict[str, Any]) -> list[str]:
    """The feature the most drifted cluster with points in the window moved along most (a
    cluster the shift emptied has none to show)."""
    moved = [c["moved"] for c in view["clusters"] if c["moved"]]
    assert moved, view["clusters"]
    return [moved[0][0]["feature"]]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_model_page_shows_the_live_values(
    browser: Browser, daemon_pages: DaemonPages, viewport: str
) -> None:
    page, views = _open(browser, daemon_pages, f"/models/{DRIFTING}", viewport)
    assert page.status == 200
    text = page.text()
    assert f"Model {DRIFTING}" in text
    _one_of(text, views, _live_values)
    # One histogram per explained feature, each a labelled image.
    charts = page.evaluate("Array.from(document.querySelectorAll('svg[role=img]')).length")
    assert charts == len(views[-1]["features"])
    # The page shows one of the two states (_open): the table, that state's moved feature.
    table = page.evaluate("document.querySelector('#clusters-table').innerText")
    _one_of(table, views, _moved_feature)
    # The approve command is printed whole, as one block to copy.
    command = page.evaluate("document.querySelector('#approve-command').textContent")
    assert command in [v["versions"]["approve_command"] for v in views]
    assert page.axe() == []


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_runbook_opened_on_the_model_shows_its_live_block_then_mitigation(
    browser: Browser, daemon_pages: DaemonPages, viewport: str
) -> None:
    path = f"/runbooks/KMeansFeatureDrift.html?model={DRIFTING}"
    page, views = _open(browser, daemon_pages, path, viewport)
    assert page.status == 200
    text = page.text()
    assert text.index(f"Model {DRIFTING} now") < text.index("Mitigation\n")
    headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    assert [h for h in headings if h in SECTION_ORDER] == list(SECTION_ORDER)
    _one_of(text, views, lambda v: [v["versions"]["approve_command"], v["features"][0]["feature"]])
    assert page.axe() == []


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_index_lists_both_models_with_their_state(
    browser: Browser, daemon_pages: DaemonPages, viewport: str
) -> None:
    page, _ = _open(browser, daemon_pages, "/", viewport)
    links = page.evaluate("Array.from(document.querySelectorAll('#models a')).map(a => a.href)")
    assert links == [daemon_pages.url(f"/models/{m}") for m in (DRIFTING, QUIET)]
    quiet = daemon_pages.json(QUIET)
    assert quiet["state"] in page.text()
    assert page.axe() == []


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_static_site_passes_too(browser: Browser, tmp_path: Path, viewport: str) -> None:
    for relative, html in site_pages(RenderOptions()).items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    width, height = VIEWPORTS[viewport]
    for relative in ("index.html", "runbooks/KMeansEvaluationStale.html"):
        page = browser.page((tmp_path / relative).as_uri(), width, height)
        assert page.axe() == [], relative
        assert "kmeans-monitor" in page.text()
    # A runbook links back to the site's index, wherever the site is opened from.
    page = browser.page((tmp_path / "runbooks/KMeansEvaluationStale.html").as_uri(), width, height)
    back = page.evaluate(
        "Array.from(document.querySelectorAll('a'))"
        ".filter(a => a.textContent === 'All runbooks').map(a => a.href)"
    )
    assert back == [(tmp_path / "index.html").as_uri()]


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.mark.parametrize("name", ["model", "runbook"])
@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_screenshots_are_kept_at_both_widths(name: str, viewport: str) -> None:
    path = SCREENSHOTS / f"{name}-{viewport}.png"
    assert _png_size(path) == VIEWPORTS[viewport]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"docs/screenshots/{name}-{viewport}.png" in readme


# Layout: what a page holds is on screen, or in a region that scrolls, never cut off.
# fuzz94 saw the PSI charts cut at 1280 and 1440 px (behind a table's sideways scroll),
# the SLI table's caption cut mid-word at phone width, and a 63-character model name
# pushing the index's other columns off a phone's screen.

_OVERFLOW = (
    "Array.from(document.querySelectorAll('.scroll'))"
    ".filter(r => r.scrollWidth > r.clientWidth).map(r => r.getAttribute('aria-label'))"
)
_CAPTION_OUT = """(() => {
  const caption = document.querySelector('#slis caption');
  const region = caption.closest('.scroll');
  const out = [];
  for (const left of [0, region.scrollWidth]) {
    region.scrollLeft = left;
    const c = caption.getBoundingClientRect(), r = region.getBoundingClientRect();
    if (c.left < r.left - 1 || c.right > r.right + 1) out.push([left, c.left, c.right]);
  }
  return out;
})()"""


@pytest.mark.parametrize("width", [1280, 1440, 1920])
def test_the_model_page_needs_no_sideways_scroll_at_laptop_widths(
    browser: Browser, daemon_pages: DaemonPages, width: int
) -> None:
    page = browser.page(daemon_pages.url(f"/models/{DRIFTING}"), width, 900)
    assert page.evaluate("document.querySelectorAll('svg[role=img]').length") > 0
    assert page.evaluate(_OVERFLOW) == []


def test_the_sli_caption_wraps_in_view_at_phone_width(
    browser: Browser, daemon_pages: DaemonPages
) -> None:
    width, height = VIEWPORTS["phone"]
    page = browser.page(daemon_pages.url(f"/models/{DRIFTING}"), width, height, mobile=True)
    assert page.evaluate(_CAPTION_OUT) == []


@pytest.mark.parametrize("width", [VIEWPORTS["phone"][0], 400])
def test_a_long_model_name_leaves_the_index_state_and_decision_on_a_phone_screen(
    browser: Browser, tmp_path: Path, width: int
) -> None:
    longest = "m" + "x" * 61 + "z"  # the longest name the configuration accepts
    entries = [
        {
            "model": name,
            "state": "ok",
            "live_version": 1,
            "live_problem": None,
            "pending_version": None,
            "pending_problem": None,
            "latest": {
                "decision": "kept: no drift " * 8,
                "evaluated_at": time.time(),
                "last_success": time.time(),
            },
            "latest_failure": None,
            "failing_since": None,
            "awaiting_until": None,
            "links": {"page": f"/models/{name}"},
        }
        for name in (DRIFTING, longest)
    ]
    path = tmp_path / "index.html"
    path.write_text(index_page(entries, now=time.time()), encoding="utf-8")
    page = browser.page(path.as_uri(), width, VIEWPORTS["phone"][1], mobile=True)
    cells = page.evaluate(
        "Array.from(document.querySelectorAll('#models tbody tr')).map(tr => {"
        " const [name, state] = tr.children;"
        " const decision = tr.querySelector('td.text').getBoundingClientRect();"
        " return [name.querySelector('a').getClientRects().length,"
        "         state.getBoundingClientRect().right, decision.left, decision.right]; })"
    )
    assert all(right <= width for _, right, _, _ in cells), cells
    assert cells[0][0] == 1  # a short name stays whole: only a long one wraps
    # The latest decision is read without scrolling sideways (F13: at 400 px it was
    # the fifth column, off the screen).
    assert all(left >= 0 and right <= width for _, _, left, right in cells), cells
    assert page.evaluate(_OVERFLOW) == []
