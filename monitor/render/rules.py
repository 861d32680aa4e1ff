"""The Prometheus alert and recording rules, rendered from ``monitor/assets/rules.yml.j2``."""

from __future__ import annotations

import functools
import json
from typing import Any

from monitor import slis
from monitor.durations import parse_prometheus_duration, scale_prometheus_duration
from monitor.render.options import RenderOptions
from monitor.render.templates import render_template
from monitor.timestamps import FUTURE_SKEW
from monitor.yamlfile import load_yaml

__all__ = ["alert_names", "render_rules", "rules_by_alert"]


def render_rules(options: RenderOptions | None = None) -> str:
    """The Prometheus alert rules file (YAML text)."""
    return _render_rules(options or RenderOptions())


@functools.lru_cache(maxsize=8)
def _render_rules(options: RenderOptions) -> str:
    return render_template(
        "rules",
        "rules.yml.j2",
        options=options,
        sli=slis.SLIS,
        threshold=slis.THRESHOLDS,
        future_skew=f"{FUTURE_SKEW:.0f}",
        dur=lambda text: scale_prometheus_duration(text, options.time_scale),
        seconds=lambda text: parse_prometheus_duration(
            scale_prometheus_duration(text, options.time_scale)
        ),
        # A JSON string is a valid YAML scalar whatever the URL holds (&, #, quotes).
        runbook_url=lambda name: json.dumps(options.runbook_url(name)),
        dashboard_url=lambda name: json.dumps(options.dashboard_url(name)),
    )


@functools.lru_cache(maxsize=8)
def rules_by_alert(options: RenderOptions) -> dict[str, list[dict[str, Any]]]:
    """Alert name -> its rules (one per severity), as the rendered YAML has them.

    The result is cached and shared between callers: read it, never change it.
    """
    document = load_yaml(_render_rules(options), "the rendered alert rules")
    by_alert: dict[str, list[dict[str, Any]]] = {}
    for group in document["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                by_alert.setdefault(rule["alert"], []).append(rule)
    return by_alert


def alert_names() -> list[str]:
    """Every alert the shipped rules define, sorted."""
    return sorted(rules_by_alert(RenderOptions()))
