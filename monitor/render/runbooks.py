"""One Markdown runbook per alert, rendered from ``monitor/assets/runbooks/``.

A page quotes its alert's rules as rendered with the same options, and refers to
dashboard panels through ``panel(board, title)``, which fails the rendering when the
panel does not exist: a runbook cannot send the on-call engineer to a missing panel.
"""

from __future__ import annotations

import functools
import re

from monitor.checks import brief
from monitor.durations import scale_prometheus_duration
from monitor.errors import InvalidInputError
from monitor.render.dashboards import panel_titles
from monitor.render.options import RenderOptions
from monitor.render.rules import alert_names, rules_by_alert
from monitor.render.templates import render_template
from monitor.slis import FLAGGED_RUNS_TO_FIRE

__all__ = [
    "CONFIG_PLACEHOLDER",
    "DAEMON_URL_PLACEHOLDER",
    "UnknownAlertError",
    "render_runbooks",
    "runbook_markdown",
]

#: The configuration file the runbooks' commands name; a daemon serving a runbook on a
#: model puts its own in its place (``monitor.render.pages``), the static copies keep it.
CONFIG_PLACEHOLDER = "/etc/kmeans-monitor/config.yml"
#: The daemon's address in the runbooks' commands (its default ``daemon.listen``); the
#: pages a daemon serves show its own.
DAEMON_URL_PLACEHOLDER = "http://127.0.0.1:9310"
_BLANK_RUNS = re.compile(r"\n{3,}")


class UnknownAlertError(KeyError):
    """No alert (and so no runbook) has that name; the message lists the valid ones."""

    def __init__(self, alertname: str, valid: list[str]) -> None:
        super().__init__(alertname)
        self.alertname = alertname
        self.valid = list(valid)

    def __str__(self) -> str:  # KeyError quotes its argument; a sentence reads better
        return f"no alert named {brief(self.alertname)}; valid names: {', '.join(self.valid)}"


def render_runbooks(options: RenderOptions | None = None) -> dict[str, str]:
    """One Markdown page per alert: file name (``AlertName.md``) -> text."""
    return dict(_render_runbooks(options or RenderOptions()))


def runbook_markdown(alertname: str, options: RenderOptions | None = None) -> str:
    """The runbook page of one alert, as Markdown."""
    pages = dict(_render_runbooks(options or RenderOptions()))
    try:
        return pages[f"{alertname}.md"]
    except KeyError:
        raise UnknownAlertError(alertname, alert_names()) from None


@functools.lru_cache(maxsize=8)
def _render_runbooks(options: RenderOptions) -> tuple[tuple[str, str], ...]:
    rules = rules_by_alert(options)
    boards = panel_titles()

    def panel(board: str, title: str) -> str:
        board_title, titles = boards[board]
        if title not in titles:
            raise InvalidInputError(f"runbook refers to a missing panel {title!r} of {board!r}")
        return f"**{board_title}** → **{title}**"

    pages = []
    for name in sorted(rules):
        text = render_template(
            "markdown",
            f"runbooks/{name}.md.j2",
            alert=name,
            rules=rules[name],
            options=options,
            config_placeholder=CONFIG_PLACEHOLDER,
            panel=panel,
            dur=lambda t: scale_prometheus_duration(t, options.time_scale),
            flagged_runs_to_fire=FLAGGED_RUNS_TO_FIRE,
        )
        text = _BLANK_RUNS.sub("\n\n", text)  # macros leave blank runs behind
        pages.append((f"{name}.md", text.strip("\n") + "\n"))
    return tuple(pages)
