"""Durations as operators write them: "90s", "5m", "2h", "1d", "1w" or plain seconds."""

from __future__ import annotations

import math
import re
from typing import Any

from monitor.errors import InvalidInputError

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any, field: str) -> float:
    """Seconds in ``value``; compound forms like "1h30m" are accepted.

    Raises InvalidInputError naming ``field`` when the value is not a positive duration.
    """
    if isinstance(value, bool):
        raise InvalidInputError(
            f"{field}: must be a duration like '90s', '5m', '2h'; got {value!r}"
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        pos, seconds = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            try:
                seconds = float(text)
            except ValueError:
                raise InvalidInputError(
                    f"{field}: must be a duration like '90s', '5m', '2h', '1d'; got {value!r}"
                ) from None
    else:
        raise InvalidInputError(
            f"{field}: must be a duration like '90s', '5m', '2h'; got {value!r}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidInputError(f"{field}: must be a positive duration; got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact form of ``seconds`` in the largest fitting unit ("90s", "5m", "1d")."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"
