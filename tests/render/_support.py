"""Shared helpers of the render tests: the repository, the metrics contract, the rules."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import click
import yaml

from monitor.cli import main as cli
from monitor.render import RenderOptions, render_rules

REPO = Path(__file__).resolve().parents[2]
RULES_FILE = REPO / "alerts" / "kmeans-monitor.yml"
PROMTOOL_TESTS = sorted((REPO / "tests" / "promtool").glob("*.test.yml"))
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC = re.compile(r"\bkmeans_[a-z0-9_]+")
DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(text: str) -> float:
    """Seconds in a Prometheus duration such as ``1h30m``."""
    parts = DURATION.findall(text)
    assert "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(int(n) * UNITS[u] for n, u in parts)


@cache
def contract() -> dict[str, tuple[str, frozenset[str]]]:
    """docs/metrics.md as name -> (type, labels)."""
    out = {}
    text = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`kmeans_[a-z0-9_]+`", cells[0]):
            names = (x.strip() for x in cells[2].split(","))
            labels = frozenset(n for n in names if n and n not in {"—", "-"})
            out[cells[0].strip("`")] = (cells[1], labels)
    return out


def contract_name(series: str) -> str | None:
    """The contract metric a series name belongs to (histograms have suffixed series)."""
    if series in contract():
        return series
    for suffix in HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and contract().get(base, ("",))[0] == "histogram":
            return base
    return None


def is_counter(series: str) -> bool:
    """Counters and histogram series must go through rate()."""
    name = contract_name(series)
    return name is not None and (
        contract()[name][0] == "counter" or contract()[name][0] == "histogram"
    )


def rules(options: RenderOptions | None = None) -> list[dict[str, Any]]:
    """Every rule of a rendering, flattened over the groups."""
    document = yaml.safe_load(render_rules(options))
    return [rule for group in document["groups"] for rule in group["rules"]]


def run(*argv: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output."""
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def parse_cli(tokens: list[str]) -> None:
    """Parse like the real command line would (types, arity, file existence)."""
    command: click.Command = cli
    ctx = click.Context(cli)
    i = 0
    while isinstance(command, click.Group) and i < len(tokens):
        token = tokens[i]
        if token.startswith("-"):
            options = [p for p in command.params if token.split("=")[0] in p.opts]
            assert options, f"{token} is not an option of {command.name}"
            i += 1 if getattr(options[0], "is_flag", False) or "=" in token else 2
            continue
        sub = command.get_command(ctx, token)
        assert sub is not None, f"no command {token!r} under {command.name}"
        command, i = sub, i + 1
    if not isinstance(command, click.Group):
        command.make_context(command.name or "", tokens[i:])
