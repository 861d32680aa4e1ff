"""The generated parts of docs/: the metrics contract and the SLI map of the design note.

Both read the SLI catalogue (``monitor.slis``), so a new SLI or threshold shows up in
the docs the moment it is declared, and ``render --check`` fails until they are rendered.
"""

from __future__ import annotations

import re
from typing import Any

from monitor import slis as S
from monitor.render.options import RenderOptions
from monitor.render.rules import rules_by_alert
from monitor.render.templates import render_template

__all__ = ["DOCS", "render_docs", "sli_map"]

#: Generated documents, relative to the repository root.
DOCS = ("docs/metrics.md", "docs/architecture.md")


def sli_map(options: RenderOptions | None = None) -> list[dict[str, Any]]:
    """For each SLI: its metric, formula, code, and the alerts whose rules read it."""
    rules = rules_by_alert(options or RenderOptions())
    rows = []
    for sli in S.SLIS.values():
        metrics = [sli.metric] + [S.THRESHOLDS[t].metric for t in sli.thresholds]
        pattern = re.compile(r"\b" + re.escape(sli.metric) + r"\b")
        alerts = sorted(
            name
            for name, group in rules.items()
            if any(pattern.search(str(rule.get("expr", ""))) for rule in group)
        )
        rows.append(
            {
                "sli": sli,
                "metrics": metrics,
                "formula": S.formula_link(sli),
                "alerts": alerts,
            }
        )
    return rows


def render_docs(options: RenderOptions | None = None) -> dict[str, str]:
    """Path under the repository root -> the generated document."""
    context = {
        "slis": list(S.SLIS.values()),
        "thresholds": list(S.THRESHOLDS.values()),
        "sli_map": sli_map(options),
        "flagged_runs_to_fire": S.FLAGGED_RUNS_TO_FIRE,
    }
    return {path: render_template("markdown", f"{path}.j2", **context) for path in DOCS}
