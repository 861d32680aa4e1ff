"""The generated files under a checkout: writing them, and telling which are stale.

``alerts/*.yml``, ``dashboards/*.json``, ``runbooks/*.md``, the runbook site under
``site/``, ``docs/metrics.md`` and ``docs/architecture.md`` are generated and
committed; CI runs ``kmeans-monitor render --check`` so that they never drift from
their sources in ``monitor/assets``.

The two docs are the repository's: they link to its hand-written docs, so they are
rendered (and checked) only under a root that is a checkout of it (``is_checkout``). A
deployment's root (``render --root /etc/prometheus/kmeans-monitor``) gets what
Prometheus, Grafana and the on-call engineer use: rules, dashboards, runbooks and site.
"""

from __future__ import annotations

import os
from pathlib import Path

from monitor.errors import InvalidInputError
from monitor.render.dashboards import render_dashboards
from monitor.render.docs import render_docs
from monitor.render.options import RenderOptions
from monitor.render.pages import site_pages
from monitor.render.rules import render_rules
from monitor.render.runbooks import render_runbooks

__all__ = ["RULES_FILE", "SITE_DIR", "is_checkout", "render_all", "stale_files"]

RULES_FILE = "alerts/kmeans-monitor.yml"
#: The static runbook site: serve this directory with any web server (deploy/README.md).
SITE_DIR = "site"
# Every file these patterns match is generated: one that nothing generates is stale.
_GENERATED_GLOBS = (
    ("alerts", "*.yml"),
    ("dashboards", "*.json"),
    ("runbooks", "*.md"),
    (SITE_DIR, "*.html"),
    (f"{SITE_DIR}/runbooks", "*.html"),
)


def render_all(root: Path, options: RenderOptions | None = None) -> list[Path]:
    """Write every generated file under ``root``; return their paths.

    Files in the generated directories that no longer correspond to anything (the
    runbook of a removed alert) are deleted, so every runbook keeps its alert.
    """
    root = Path(root)
    files = _generated(options or RenderOptions(), docs=is_checkout(root))
    for stale in sorted(_existing(root) - files.keys()):
        (root / stale).unlink()
    written = []
    for relative, text in sorted(files.items()):
        path = root / relative
        _make_directory(path.parent)
        if not _holds(path, text):  # an unchanged file keeps its modification time
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(root: Path, options: RenderOptions | None = None) -> list[str]:
    """Generated files under ``root`` that differ from a fresh rendering with ``options``
    (the defaults, those of the committed files, when None).

    Missing files, files with other content and leftover files that nothing
    generates are all stale; paths are relative to ``root``, sorted.
    """
    root = Path(root)
    files = _generated(options or RenderOptions(), docs=is_checkout(root))
    stale = set(_existing(root) - files.keys())
    stale.update(relative for relative, text in files.items() if not _holds(root / relative, text))
    return sorted(stale)


def is_checkout(root: Path) -> bool:
    """Whether ``root`` is a checkout of kmeans-monitor: it holds the sources of the
    generated files (``monitor/assets``), and so the docs the generated ones link to."""
    return (Path(root) / "monitor" / "assets").is_dir()


def _generated(options: RenderOptions, *, docs: bool) -> dict[str, str]:
    files = {RULES_FILE: render_rules(options)}
    files.update({f"dashboards/{name}": text for name, text in render_dashboards(options).items()})
    files.update({f"runbooks/{name}": text for name, text in render_runbooks(options).items()})
    if docs:
        files.update(render_docs(options))
    files.update({f"{SITE_DIR}/{path}": page for path, page in site_pages(options).items()})
    return files


def _existing(root: Path) -> set[str]:
    found = set()
    for directory, pattern in _GENERATED_GLOBS:
        for path in (root / directory).glob(pattern):
            found.add(path.relative_to(root).as_posix())
    return found


def _make_directory(path: Path) -> None:
    """``mkdir -p path``; InvalidInputError saying what stands in the way, where mkdir
    only says "File exists"."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        blocker = Path(exc.filename or path)
        what = "not a directory"
        if blocker.is_symlink() and not blocker.exists():
            what = f"a broken symbolic link (to {os.readlink(blocker)}), {what}"
        elif blocker.is_file():
            what = f"a file, {what}"
        raise InvalidInputError(f"{blocker} is {what}") from None


def _holds(path: Path, text: str) -> bool:
    """True when ``path`` is a file whose content is exactly ``text``."""
    return path.is_file() and path.read_text(encoding="utf-8") == text
