"""Generated files: committed and fresh, written by render_all, staleness detected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.render import (
    RenderOptions,
    alert_names,
    render_all,
    render_dashboards,
    render_rules,
    render_runbooks,
    stale_files,
)
from tests.render._support import REPO

EXPECTED = sorted(
    ["alerts/kmeans-monitor.yml"]
    + [f"dashboards/{name}" for name in ("debug.json", "executive.json", "oncall.json")]
    + [f"runbooks/{name}.md" for name in alert_names()]
    + ["site/index.html"]
    + [f"site/runbooks/{name}.html" for name in alert_names()]
)


def test_committed_generated_files_are_fresh() -> None:
    stale = stale_files(REPO)
    assert stale == [], f"stale generated files {stale}: run `kmeans-monitor render` and commit"


def test_render_all_writes_exactly_the_generated_files(tmp_path: Path) -> None:
    written = render_all(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == EXPECTED
    assert (
        sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
        == EXPECTED
    )
    assert stale_files(tmp_path) == []
    # A second rendering changes nothing.
    before = {p: p.read_bytes() for p in written}
    render_all(tmp_path)
    assert {p: p.read_bytes() for p in written} == before


def test_the_docs_are_rendered_into_a_checkout_only(tmp_path: Path) -> None:
    """h141: `render --root /etc/prometheus/kmeans-monitor` wrote docs/architecture.md and
    docs/metrics.md there, whose 26 links to the repository's other docs were broken."""
    deployment = tmp_path / "deploy"
    render_all(deployment)
    assert not (deployment / "docs").exists()
    checkout = tmp_path / "checkout"
    (checkout / "monitor" / "assets").mkdir(parents=True)
    written = render_all(checkout)
    docs = ["docs/architecture.md", "docs/metrics.md"]
    assert sorted(p.relative_to(checkout).as_posix() for p in written) == sorted(EXPECTED + docs)
    (checkout / "docs/metrics.md").unlink()
    assert stale_files(checkout) == ["docs/metrics.md"]
    assert stale_files(deployment) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda root: (root / "dashboards/oncall.json").write_text("{}"),
            ["dashboards/oncall.json"],
        ),
        (
            lambda root: (root / "runbooks/KMeansLabelDrift.md").unlink(),
            ["runbooks/KMeansLabelDrift.md"],
        ),
        (
            lambda root: (root / "runbooks/KMeansGone.md").write_text("# KMeansGone\n"),
            ["runbooks/KMeansGone.md"],
        ),
        (lambda root: (root / "alerts/extra.yml").write_text("groups: []\n"), ["alerts/extra.yml"]),
        (
            lambda root: (root / "alerts/kmeans-monitor.yml").write_text(
                render_rules(RenderOptions(time_scale=0.5))
            ),
            ["alerts/kmeans-monitor.yml"],
        ),
    ],
)
def test_stale_files_finds_changed_missing_and_leftover_files(
    tmp_path: Path, change: object, expected: list[str]
) -> None:
    render_all(tmp_path)
    change(tmp_path)  # type: ignore[operator]
    assert stale_files(tmp_path) == expected
    render_all(tmp_path)
    assert stale_files(tmp_path) == []
    assert (
        sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
        == EXPECTED
    )


def test_files_outside_the_generated_patterns_are_left_alone(tmp_path: Path) -> None:
    render_all(tmp_path)
    keep = [tmp_path / "dashboards" / "README.md", tmp_path / "deploy" / "prometheus.yml"]
    for path in keep:
        path.parent.mkdir(exist_ok=True)
        path.write_text("mine\n")
    render_all(tmp_path)
    assert stale_files(tmp_path) == []
    assert all(p.read_text() == "mine\n" for p in keep)


def test_options_change_rules_and_runbooks_but_not_dashboards(tmp_path: Path) -> None:
    render_all(tmp_path, RenderOptions(time_scale=0.5))
    stale = stale_files(tmp_path)
    assert "alerts/kmeans-monitor.yml" in stale
    assert "runbooks/KMeansRunsFailing.md" in stale  # it quotes the rule's for:
    assert "site/runbooks/KMeansRunsFailing.html" in stale  # the same page, as HTML
    assert not [s for s in stale if s.startswith("dashboards/")]


def test_the_site_links_the_daemon_it_is_rendered_for(tmp_path: Path) -> None:
    render_all(tmp_path, RenderOptions(daemon_url="https://kmeans.example.com:9310/"))
    page = (tmp_path / "site/runbooks/KMeansFeatureDrift.html").read_text()
    assert '<a href="https://kmeans.example.com:9310/">' in page
    assert "site/runbooks/KMeansFeatureDrift.html" in stale_files(tmp_path)
    # The site, and the on-call dashboard's links to the model pages.
    others = [s for s in stale_files(tmp_path) if not s.startswith("site/")]
    assert others == ["dashboards/oncall.json"]


def test_rendering_does_not_depend_on_the_working_directory(tmp_path: Path) -> None:
    # Templates come from the package (importlib.resources), not from ./monitor/assets:
    # a fresh interpreter in an empty directory renders the same files.
    code = (
        "import json, monitor.render as r; "
        "print(json.dumps([r.render_rules(), r.render_dashboards(), r.render_runbooks()]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [render_rules(), render_dashboards(), render_runbooks()]


def test_a_time_scale_prometheus_cannot_read_writes_nothing(tmp_path: Path) -> None:
    """--time-scale 1e300 wrote rules with a 300-digit `for:` that Prometheus refuses."""
    from click.testing import CliRunner

    from monitor.cli import main

    render_all(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = CliRunner().invoke(main, ["render", "--root", str(tmp_path), "--time-scale", "1e300"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --time-scale: must be at most 7.69e+06, which scales 20m to the longest "
        "duration Prometheus reads (about 292 years); got 1e+300\n"
    )
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--dashboard-url-pattern", "javascript:x"],
            "--dashboard-url-pattern: must be an http(s) URL",
        ),
        (["--runbook-url-pattern", "http://x/"], "--runbook-url-pattern: must be an http(s) URL"),
        (["--daemon-url", "127.0.0.1:9"], "--daemon-url: must be an http(s) URL"),
        (["--time-scale", "0"], "--time-scale: must be a float in (0.0, inf); got 0.0"),
    ],
)
def test_a_bad_option_is_named_as_typed_and_writes_nothing(
    tmp_path: Path, args: list[str], line: str
) -> None:
    """They were named as the parameters they reach (`dashboard_url_pattern: must ...`)."""
    from click.testing import CliRunner

    from monitor.cli import main

    result = CliRunner().invoke(main, ["render", "--root", str(tmp_path), *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {line}") and result.stderr.count("\n") == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kind", ["missing", "dangling link"])
def test_check_of_a_root_that_is_not_there_says_so(tmp_path: Path, kind: str) -> None:
    """A mistyped --root listed every generated file as `stale:` and exited 1, which
    reads as a checkout to re-render, not as a typo."""
    from click.testing import CliRunner

    from monitor.checks import shown_path
    from monitor.cli import main

    root, why = tmp_path / "chekout", "no such directory to check"
    if kind == "dangling link":
        root.symlink_to(tmp_path / "gone")
        why = f"a symbolic link to {shown_path(tmp_path / 'gone')}, which does not exist"
    result = CliRunner().invoke(main, ["render", "--check", "--root", str(root)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr == f"error: --root {shown_path(root)}: {why}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == (["chekout"] if root.is_symlink() else [])


def test_render_makes_a_root_that_is_not_there(tmp_path: Path) -> None:
    """Without --check a new --root is made, parents included (`render --root rendered`
    in docs/e2e.md); every file written is named, under it."""
    from click.testing import CliRunner

    from monitor.cli import main

    root = tmp_path / "etc" / "rendered"
    result = CliRunner().invoke(main, ["render", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"wrote {root / name}" for name in EXPECTED]
    assert stale_files(root) == []
