"""Durations as operators write them: "90s", "5m", "2h", "1d", "1w", "1h30m" or seconds."""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from monitor.checks import Mismatch, Problem
from monitor.errors import InvalidInputError

__all__ = ["check_duration", "format_duration", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def check_duration(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """Seconds in ``value``; compound forms like "1h30m" or "1h 30m" are accepted.

    Raises ``Mismatch`` naming ``name`` when the value is not a duration, or is zero and
    ``allow_zero`` is False.
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
    return seconds


def parse_duration(value: Any, field: str, *, allow_zero: bool = False) -> float:
    """``check_duration`` with its error in the configuration form ("field: must be ...")."""
    try:
        return check_duration(value, field, allow_zero=allow_zero)
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
    text = "".join(value.split()).lower()
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
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"
