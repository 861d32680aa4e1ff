"""docs/e2e.md's "whole stack by hand": its monitor.yml is the suite's, as far as it says."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import yaml

from monitor.bootstrap import load_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "e2e.md"


def _block(name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    by_hand = text[text.index("## The whole stack by hand") :]
    for block in re.findall(r"```yaml\n(.*?)```", by_hand, re.S):
        block = textwrap.dedent(block)
        if block.startswith(f"# {name}"):
            return block
    raise AssertionError(f"no {name} block in {DOC}")


def test_the_by_hand_models_train_on_one_window_as_the_suite_does(tmp_path: Path) -> None:
    """h141: without `reference:` the `simulated` model's reference was the day before,
    which Prometheus did not hold: every run failed awaiting_reference, and the page the
    doc promised never came; `checkout` trained on 288 windows, over its run budget."""
    raw = yaml.safe_load(_block("monitor.yml"))
    settings = load_settings(None, raw=raw, overrides={"state_dir": str(tmp_path / "state")})
    assert [m.name for m in settings.models] == ["checkout", "simulated"]
    for m in settings.models:
        # tests/e2e/_stack.py: "reference": {"window": WINDOW}, "thresholds": fixed.
        assert m.reference.window == m.window == 15.0, m.name
        assert m.thresholds.mode == "fixed", m.name
