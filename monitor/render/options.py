"""What may vary between two renderings of the rules and runbooks."""

from __future__ import annotations

import re
from dataclasses import dataclass

from monitor.checks import Mismatch, Problem, check_float, check_int
from monitor.slis import DRIFT_STORM_FEATURES

__all__ = ["RenderOptions"]

_OWNER = "RenderOptions"
# The job lands inside a PromQL string literal and a YAML scalar: nothing that could end either.
_JOB = re.compile(r"[A-Za-z0-9_.:/-]+")


@dataclass(frozen=True)
class RenderOptions:
    """What may vary between renderings of the rules and runbooks."""

    runbook_url_pattern: str = "http://127.0.0.1:9310/runbooks/{alertname}"
    time_scale: float = 1.0  # multiplies every `for:` and range window of the rules
    job: str = "kmeans-monitor"  # the Prometheus job that scrapes the daemon
    drift_storm_features: int = DRIFT_STORM_FEATURES  # this many make one model-level alert

    def __post_init__(self) -> None:
        if not _is_url_pattern(self.runbook_url_pattern):
            expected = "a str without spaces whose only field is '{alertname}'"
            raise Mismatch(
                Problem("runbook_url_pattern", expected, self.runbook_url_pattern), _OWNER
            )
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
        """The runbook link of one alert."""
        return self.runbook_url_pattern.format(alertname=alertname)


def _is_url_pattern(pattern: object) -> bool:
    """True for a str without spaces in which ``{alertname}`` is the only format field."""
    if not isinstance(pattern, str) or "{alertname}" not in pattern:
        return False
    if any(c.isspace() for c in pattern):
        return False
    try:
        return pattern.format(alertname="A") == pattern.replace("{alertname}", "A")
    except (IndexError, KeyError, ValueError):  # other fields, positional ones, stray braces
        return False
