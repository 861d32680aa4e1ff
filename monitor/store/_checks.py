"""Parameter checks shared by the store modules (each store validates its own edge)."""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from monitor.errors import InvalidInputError

# A superset of the configuration's model-name rule, checked again here because a
# model name becomes a directory name and the store must not trust its caller.
# The leading letter/digit rules out "", ".", ".." and the store's ".tmp-" entries.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_model_name(value: Any, owner: str) -> str:
    """Return ``value`` if it is a safe model name; raise InvalidInputError otherwise."""
    if not isinstance(value, str) or MODEL_NAME.fullmatch(value) is None:
        raise InvalidInputError(
            f"The 'model' parameter of {owner} must be a str of 1 to 128 ASCII letters, "
            f"digits, '_', '.' or '-' starting with a letter or digit. Got {value!r} instead."
        )
    return value


def check_int(value: Any, name: str, owner: str, *, low: int | None = None) -> int:
    """Return ``value`` as int if it is an integer (not bool) >= ``low``; raise otherwise."""
    lo = "-inf" if low is None else str(low)
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or (low is not None and value < low)
    ):
        raise InvalidInputError(
            f"The {name!r} parameter of {owner} must be an int in [{lo}, inf). "
            f"Got {value!r} instead."
        )
    return int(value)


def check_real(value: Any, name: str, owner: str, *, allow_nan: bool = True) -> float:
    """Return ``value`` as float if it is a real number (not bool); raise otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or (not allow_nan and math.isnan(value))
    ):
        what = "a real number other than NaN" if not allow_nan else "a real number"
        raise InvalidInputError(
            f"The {name!r} parameter of {owner} must be {what}. Got {value!r} instead."
        )
    return float(value)


def check_str(value: Any, name: str, owner: str) -> str:
    """Return ``value`` if it is a str; raise otherwise."""
    if not isinstance(value, str):
        raise InvalidInputError(
            f"The {name!r} parameter of {owner} must be a str. Got {value!r} instead."
        )
    return value


def check_float_mapping(value: Any, name: str, owner: str) -> dict[str, float]:
    """Return ``value`` as a dict of str -> float (insertion order kept); raise otherwise."""
    if not hasattr(value, "items"):
        raise InvalidInputError(
            f"The {name!r} parameter of {owner} must be a mapping of str to float. "
            f"Got {value!r} instead."
        )
    out: dict[str, float] = {}
    for key, item in value.items():
        check_str(key, f"{name} key", owner)
        out[key] = check_real(item, f"{name}[{key!r}]", owner)
    return out
