"""The template flavours, the asset loader, and the package's import rules."""

from __future__ import annotations

import pytest

from monitor.errors import InvalidInputError
from monitor.render import RenderOptions, render_runbooks
from monitor.render.templates import read_asset, render_template
from monitor.slis import SLIS, THRESHOLDS
from tests.render._support import REPO
from tests.test_architecture import MODULES, uses

RENDER_MODULES = sorted(
    m for m in MODULES if m == "monitor.render" or m.startswith("monitor.render.")
)


def test_rules_flavour_passes_go_templates_through() -> None:
    text = render_template(
        "rules",
        "rules.yml.j2",
        options=RenderOptions(),
        sli=SLIS,
        threshold=THRESHOLDS,
        dur=str,
        seconds=len,
        runbook_url=repr,
        dashboard_url=repr,
        flagged_runs_to_fire=2,
        future_skew="300",
    )
    # Prometheus expands {{ $labels.model }} at alert time; Jinja must leave it alone.
    assert "{{ $labels.model }}" in text
    assert "<<" not in text and "<%" not in text


def test_markdown_flavour_does_not_escape() -> None:
    # Runbooks quote PromQL with `<` and `>`: escaping them in Markdown would show "&lt;".
    text = render_runbooks()["KMeansSilhouetteDrop.md"]
    assert "    < on (job, instance, model)" in text and "&lt;" not in text


def test_html_flavour_escapes_and_fails_on_a_missing_value() -> None:
    context = {
        "alertname": "<A>",
        "head": "<h1>x</h1>",
        "sections": [("S", "<p>y</p>")],
        "view": None,
        "models": [],
        "unknown_model": None,
        "static": False,
        "options": RenderOptions(),
        "index": "/runbooks/",
    }
    page = render_template("html", "pages/runbook.html.j2", **context)
    assert "<title>&lt;A&gt; · kmeans-monitor runbook</title>" in page
    # The converted Markdown is marked safe in the template.
    assert "</nav>\n<h1>x</h1>" in page and "<p>y</p></main>" in page
    del context["head"]
    with pytest.raises(Exception, match="'head' is undefined"):
        render_template("html", "pages/runbook.html.j2", **context)


def test_unknown_flavour_and_template() -> None:
    with pytest.raises(InvalidInputError) as info:
        render_template("xml", "pages/index.html.j2")  # type: ignore[arg-type]
    assert str(info.value) == (
        "The 'flavour' parameter of render_template must be one of "
        "{'rules', 'markdown', 'html'}. Got 'xml' instead."
    )
    with pytest.raises(LookupError, match=r"runbooks/KMeansNope\.md\.j2"):
        render_template("markdown", "runbooks/KMeansNope.md.j2")


def test_read_asset_reads_the_package_data() -> None:
    on_disk = (REPO / "monitor" / "assets" / "pages" / "page.css").read_text(encoding="utf-8")
    assert read_asset("pages", "page.css") == on_disk
    with pytest.raises(FileNotFoundError):
        read_asset("pages", "nope.css")


@pytest.mark.parametrize("name", RENDER_MODULES)
def test_render_imports_jinja2_in_one_module_and_no_yaml_or_core(name: str) -> None:
    assert uses(name, "jinja2") == (name == "monitor.render.templates"), name
    for prefix in ("yaml", "monitor.core", "markupsafe"):
        assert not uses(name, prefix), f"{name} imports {prefix}"
