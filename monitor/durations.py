"""Durations in their two written forms: the configuration's and Prometheus'.

The configuration form is what operators write in the YAML file: "90s", "1h 30m",
"1.5h", "250ms" or a number of seconds (``parse_duration``, ``format_duration``). The
Prometheus form is what rules and queries contain: integers with units from the largest
to the smallest, each unit at most once, "1h30m" but never "30m1h"
(``parse_prometheus_duration``, ``format_prometheus_duration``); the rendered alert
rules scale theirs with ``scale_prometheus_duration``.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from monitor.checks import Mismatch, Problem, brief, check_float, check_int
from monitor.errors import InvalidInputError

__all__ = [
    "MAX_SECONDS",
    "PROMETHEUS_MAX_SECONDS",
    "check_duration",
    "format_duration",
    "format_prometheus_duration",
    "format_rough",
    "parse_duration",
    "parse_prometheus_duration",
    "scale_prometheus_duration",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
# ASCII digits only: \d also matches "٣" and "３", which float() reads as 3.
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", re.ASCII)
_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
#: The shortest duration anything takes: shorter, a window or a timeout vanishes in the
#: rounding of a unix time (1e-300 s ended a window where it began).
MIN_SECONDS = 0.001

# Prometheus' own grammar (model.ParseDuration): each unit at most once, largest first.
_PROMETHEUS_UNITS = {
    "y": 31536000,  # Prometheus' year is 365 days
    "w": 604800,
    "d": 86400,
    "h": 3600,
    "m": 60,
    "s": 1,
    "ms": 0.001,
}
_PROMETHEUS = re.compile("".join(f"(?:(\\d+){unit})?" for unit in _PROMETHEUS_UNITS), re.ASCII)
#: Prometheus durations are int64 nanoseconds: a longer one is "out of range" to it.
PROMETHEUS_MAX_SECONDS = (2**63 - 1) // 10**9
#: The longest duration anything takes (about a century): a longer one is a slip of the
#: unit, and beyond it the clocks and timers it reaches overflow (a timestamp past the
#: platform's time_t, a timedelta past its days).
MAX_SECONDS = 5200 * 604800.0
_FORMAT_UNITS = ("d", "h", "m", "s")  # days, never weeks or years: "14d" reads plainly


def check_duration(
    value: Any, name: str, *, allow_zero: bool = False, most: float = MAX_SECONDS
) -> float:
    """Seconds in ``value``; compound forms like "1h30m" or "1h 30m" are accepted.

    Raises ``Mismatch`` naming ``name`` when the value is not a duration, is zero and
    ``allow_zero`` is False, or is longer than ``most`` (``MAX_SECONDS`` unless the
    caller judges longer ones itself).
    """
    seconds = _seconds(value)
    if (
        seconds is None
        or not math.isfinite(seconds)
        or seconds < 0
        or (seconds == 0 and not allow_zero)
    ):
        kind = "non-negative" if allow_zero else "positive"
        expected = f"a duration such as '90s', '5m', '2h', '1d' or a {kind} number of seconds"
        raise Mismatch(Problem(name, expected, value))
    if 0 < seconds < MIN_SECONDS:
        raise Mismatch(Problem(name, "a duration of at least 1ms", value))
    if seconds > most:
        century = " (about a century)" if most == MAX_SECONDS else ""
        raise Mismatch(
            Problem(name, f"a duration of at most {format_duration(most)}{century}", value)
        )
    return seconds


def parse_duration(
    value: Any, field: str, *, allow_zero: bool = False, most: float = MAX_SECONDS
) -> float:
    """``check_duration`` with its error in the configuration form ("field: must be ...")."""
    try:
        return check_duration(value, field, allow_zero=allow_zero, most=most)
    except Mismatch as exc:
        raise InvalidInputError(exc.problem.config()) from None


def _seconds(value: Any) -> float | None:
    """The seconds a number or a duration string says, or None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if not isinstance(value, str):
        return None
    # Units are lower-case, as Prometheus writes them: "1M" read as a minute where a
    # month was meant would retrain every minute.
    text = "".join(value.split())
    if _NUMBER.fullmatch(text):
        return float(text)
    parts = _PART.findall(text)
    # Rejoining the parts must give back the text, or something in it was not a duration.
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """The shortest exact form of ``seconds`` in the largest fitting unit ("90s", "5m", "1d")."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        # Beyond 2^53 every float is an integer: 1e300 would be a 300-digit count of weeks.
        if size <= seconds < size * 2**53 and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"


def format_rough(seconds: float) -> str:
    """``seconds`` rounded in the largest unit it holds twice ("30d" for 29.98 days,
    "5m" for 301 s): how far apart two clocks are, where format_duration's exact
    "2590001s" reads as noise."""
    for unit in ("d", "h", "m"):
        if seconds >= 2 * _UNITS[unit]:
            return f"{round(seconds / _UNITS[unit])}{unit}"
    return format_duration(float(round(seconds)))


def parse_prometheus_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as "1h30m", "250ms" or "0".

    Raises InvalidInputError for anything Prometheus would refuse: no unit, a decimal
    point, spaces, units out of order or repeated ("30m1h", "1m1m").
    """
    if text == "0":  # Prometheus accepts a bare zero and nothing else without a unit
        return 0.0
    match = _PROMETHEUS.fullmatch(text) if isinstance(text, str) else None
    if match is None or not text:
        raise InvalidInputError(
            f"not a Prometheus duration such as '90s', '1h30m' or '250ms': {brief(text)}"
        )
    counts = (int(n) if n else 0 for n in match.groups())
    return float(sum(c * size for c, size in zip(counts, _PROMETHEUS_UNITS.values(), strict=True)))


def format_prometheus_duration(seconds: int) -> str:
    """The Prometheus form of a whole number of seconds, in days down to seconds ("1d2h3s")."""
    remaining = check_int(seconds, "seconds", low=0, owner="format_prometheus_duration")
    parts = []
    for unit in _FORMAT_UNITS:
        count, remaining = divmod(remaining, int(_PROMETHEUS_UNITS[unit]))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def scale_prometheus_duration(text: str, scale: float) -> str:
    """``text`` multiplied by ``scale``, rounded to whole seconds and never below 1s."""
    factor = check_float(
        scale, "scale", low=0.0, low_inclusive=False, owner="scale_prometheus_duration"
    )
    # Prometheus windows below a second are noise, and a zero window is an error.
    base = parse_prometheus_duration(text)
    scaled = base * factor  # infinite past float64 (--time-scale 1e308): refused below
    if not scaled <= PROMETHEUS_MAX_SECONDS:
        # Named as the rules' option (``--time-scale`` on the command line, cli.py).
        limit = PROMETHEUS_MAX_SECONDS / base
        reach = "the longest duration Prometheus reads (about 292 years)"
        raise Mismatch(
            Problem("time_scale", f"at most {limit:.3g}, which scales {text} to {reach}", factor)
        )
    return format_prometheus_duration(max(1, math.floor(scaled + 0.5)))
