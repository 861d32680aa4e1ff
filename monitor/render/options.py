"""What may vary between two renderings of the rules, runbooks, dashboards and site.

The two link patterns take alert labels as ``{placeholders}``: ``{alertname}`` is
written in at render time, every other one becomes a Prometheus template over the
alert's labels, URL-encoded (``{model}`` -> ``{{ $labels.model | urlquery }}``), so a
link can open the runbook or the dashboard on the model that fired.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from monitor.checks import Mismatch, Problem, check_float, check_int
from monitor.slis import DRIFT_STORM_FEATURES

__all__ = ["PLACEHOLDERS", "RenderOptions"]

_OWNER = "RenderOptions"
# The job lands inside a PromQL string literal and a YAML scalar: nothing that could end either.
_JOB = re.compile(r"[A-Za-z0-9_.:/-]+")
#: The labels a link pattern may name; an alert that lacks one (a daemon-level alert has
#: no model) gets the pattern's default for it.
PLACEHOLDERS = ("alertname", "severity", "job", "instance", "model", "feature")
#: The on-call dashboard (its uid is stable, see monitor/assets/dashboards.yml).
ONCALL_DASHBOARD_UID = "kmeans-monitor-oncall"


@dataclass(frozen=True)
class RenderOptions:
    """What may vary between renderings of the rules, runbooks, dashboards and site."""

    # Where the static site that `render` writes to site/ is served; any web server
    # will do, so the link works while the daemon is down (deploy/README.md).
    runbook_url_pattern: str = "http://127.0.0.1:9312/runbooks/{alertname}.html?model={model}"
    # Grafana's on-call dashboard with the alert's job and model selected.
    dashboard_url_pattern: str = (
        f"http://127.0.0.1:3000/d/{ONCALL_DASHBOARD_UID}/?var-job={{job}}&var-model={{model}}"
    )
    # The daemon's own pages, linked from the static site for the live values.
    daemon_url: str = "http://127.0.0.1:9310"
    time_scale: float = 1.0  # multiplies every `for:` and range window of the rules
    job: str = "kmeans-monitor"  # the Prometheus job that scrapes the daemon
    drift_storm_features: int = DRIFT_STORM_FEATURES  # this many make one model-level alert

    def __post_init__(self) -> None:
        _check_pattern(self.runbook_url_pattern, "runbook_url_pattern", needs_alertname=True)
        _check_pattern(self.dashboard_url_pattern, "dashboard_url_pattern", needs_alertname=False)
        if not isinstance(self.daemon_url, str) or not re.fullmatch(
            r"https?://[^\s\"'<>]+", self.daemon_url
        ):
            expected = "an http(s) URL without spaces or quotes"
            raise Mismatch(Problem("daemon_url", expected, self.daemon_url), _OWNER)
        object.__setattr__(self, "daemon_url", self.daemon_url.rstrip("/"))
        scale = check_float(
            self.time_scale, "time_scale", low=0.0, low_inclusive=False, owner=_OWNER
        )
        object.__setattr__(self, "time_scale", scale)
        if not isinstance(self.job, str) or not _JOB.fullmatch(self.job):
            expected = "a str of letters, digits and '_.:/-'"
            raise Mismatch(Problem("job", expected, self.job), _OWNER)
        storm = check_int(self.drift_storm_features, "drift_storm_features", low=2, owner=_OWNER)
        object.__setattr__(self, "drift_storm_features", storm)

    def runbook_url(self, alertname: str) -> str:
        """The runbook link of one alert, a Prometheus template over its labels."""
        return _expand(self.runbook_url_pattern, alertname, absent="")

    def dashboard_url(self, alertname: str) -> str:
        """The on-call dashboard link of one alert; a missing label selects every value."""
        return _expand(self.dashboard_url_pattern, alertname, absent="$__all")

    def site_runbook_path(self, alertname: str) -> str:
        """Where the static site keeps an alert's runbook, relative to the site's root."""
        return f"runbooks/{alertname}.html"


def _fields(pattern: str) -> list[str | None]:
    """The placeholder names of a pattern (None for a literal piece); ValueError if malformed."""
    fields: list[str | None] = []
    for _, name, spec, conversion in string.Formatter().parse(pattern):
        if name is not None and (spec or conversion):
            raise ValueError(f"{{{name}}} takes no format")
        fields.append(name)
    return fields


def _check_pattern(pattern: object, field: str, *, needs_alertname: bool) -> None:
    """An http(s) URL without spaces whose placeholders are labels of PLACEHOLDERS: a
    link an on-call engineer clicks in an alert, a dashboard or the site (not
    ``javascript:`` or ``file:``)."""
    labels = [p for p in PLACEHOLDERS if p != "alertname" or not needs_alertname]
    named = ", ".join(f"{{{p}}}" for p in labels)
    expected = f"an http(s) URL without spaces with any of the labels {named}"
    if needs_alertname:
        expected = f"an http(s) URL without spaces with {{alertname}} and any of the labels {named}"
    why = _pattern_problem(pattern, needs_alertname)
    if why is not None:
        raise Mismatch(Problem(field, expected + why, pattern), _OWNER)


def _pattern_problem(pattern: object, needs_alertname: bool) -> str | None:
    """None for a valid pattern, else what to add to the expectation ("" for nothing)."""
    if not isinstance(pattern, str) or not re.match(r"https?://[^/\s]", pattern, re.IGNORECASE):
        return ""
    if "{{" in pattern or "}}" in pattern:
        return " (a label is written {model}, not as a Prometheus template)"
    if any(c.isspace() for c in pattern):
        return ""
    try:
        names = {n for n in _fields(pattern) if n is not None}
    except ValueError:  # a stray brace, a format spec
        return ""
    unknown = sorted(names - set(PLACEHOLDERS))
    if unknown:
        return f" (unknown: {', '.join(f'{{{u}}}' if u else '{}' for u in unknown)})"
    if needs_alertname and "alertname" not in names:
        return ""
    return None


def _expand(pattern: str, alertname: str, *, absent: str) -> str:
    """``pattern`` with ``{alertname}`` written in and every other label templated."""
    out = []
    for literal, name, _, _ in string.Formatter().parse(pattern):
        out.append(literal)
        if name is None:
            continue
        if name == "alertname":
            out.append(alertname)
        elif absent:
            out.append(f'{{{{ or $labels.{name} "{absent}" | urlquery }}}}')
        else:
            out.append(f"{{{{ $labels.{name} | urlquery }}}}")
    return "".join(out)
