"""Runbooks: one per alert, the four sections, concrete commands and queries, lookup."""

from __future__ import annotations

import html
import re
import shlex
from pathlib import Path

import click
import pytest

from monitor.render import (
    UnknownAlertError,
    alert_names,
    render_runbooks,
    runbook_markdown,
    runbook_page,
)
from monitor.render.runbooks import CONFIG_PLACEHOLDER
from tests.render._support import REPO, parse_cli
from tests.render.test_render_pages import _view

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
    [
        "KMeansCentroidDrift",
        "KMeansClusterMoved",
        "KMeansFeatureDrift",
        "KMeansManyFeaturesDrifting",
    ],
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


def _page_commands(page: str) -> list[str]:
    """Every `kmeans-monitor ...` line of a page's code, as it is copied from the page."""
    codes = re.findall(r"<code[^>]*>(.*?)</code>", page, re.S)
    lines = (ln for code in codes for ln in html.unescape(code).splitlines())
    return [ln for ln in lines if ln.startswith("kmeans-monitor ")]


@pytest.mark.parametrize("name", NAMES)
def test_a_runbook_opened_on_a_model_names_the_daemons_files(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A daemon started with --config '/srv/km/my monitor.yml' --state-dir /var/lib/km.
    config, state_dir = "/srv/km/my monitor.yml", "/var/lib/km"
    cli = {
        "store_options": f"--config {shlex.quote(config)} --state-dir {state_dir}",
        "config_file": shlex.quote(config),
    }
    page = runbook_page(name, view=_view(cli=cli))
    assert CONFIG_PLACEHOLDER not in page
    monkeypatch.chdir(tmp_path)
    (tmp_path / "window.parquet").write_bytes(b"")  # choose-k insists the file exists
    commands = _page_commands(page)
    assert any(config in line for line in commands)
    for line in commands:
        tokens = shlex.split(line)[1:]
        if "--config" in tokens:  # and the state directory the daemon opened
            at = tokens.index("--config")
            assert tokens[at : at + 4] == ["--config", config, "--state-dir", state_dir], line
        if tokens[0] == "check-config":
            assert tokens[1:] == [config], line
        try:
            parse_cli([PLACEHOLDERS.get(t, t) for t in tokens])
        except click.UsageError as exc:
            pytest.fail(f"{name}: `{line}` does not parse: {exc}")
    # The static site's copy keeps the placeholder: no daemon, no files to name.
    assert CONFIG_PLACEHOLDER in runbook_page(name, static=True)


# ------------------------------------------------------------------------ lookup


def test_runbook_markdown_is_the_committed_page() -> None:
    for name in NAMES:
        committed = (REPO / "runbooks" / f"{name}.md").read_text(encoding="utf-8")
        assert runbook_markdown(name) == committed


@pytest.mark.parametrize("bad", ["KMeansNope", "kmeansrunsfailing", "../alerts/kmeans-monitor", ""])
def test_unknown_alert_lists_the_valid_names(bad: str) -> None:
    for lookup in (runbook_markdown, runbook_page):
        with pytest.raises(UnknownAlertError) as info:
            lookup(bad)
        assert isinstance(info.value, KeyError)
        assert str(info.value) == f"no alert named {bad!r}; valid names: {', '.join(NAMES)}"
