"""Points in time as operators and files write them: unix seconds or ISO-8601, in UTC."""

from __future__ import annotations

import math
import numbers
from datetime import UTC, datetime
from typing import Any

from monitor.errors import InvalidInputError

__all__ = ["format_time", "parse_time"]


def parse_time(value: Any, where: str) -> float:
    """Unix seconds of a number, a numeric string, a datetime or an ISO-8601 string.

    Naive times are taken as UTC. Raises InvalidInputError naming ``where`` and saying
    what was wrong with the value.
    """
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isfinite(float(value)):
            return float(value)
        raise InvalidInputError(f"{where}: timestamp {value!r} is not a finite number.")
    if not isinstance(value, str):
        raise InvalidInputError(f"{where}: timestamp {value!r} is neither a number nor a string.")
    stripped = value.strip()
    try:
        seconds = float(stripped)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
        raise InvalidInputError(f"{where}: timestamp {value!r} is not a finite number.")
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise InvalidInputError(
            f"{where}: timestamp {value!r} is neither unix seconds nor ISO-8601."
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def format_time(seconds: float) -> str:
    """ISO-8601 UTC form of unix seconds, for messages and window labels."""
    spec = "seconds" if float(seconds).is_integer() else "milliseconds"
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")
