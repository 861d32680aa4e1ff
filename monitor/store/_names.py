"""The model-name rule of the store: a model name becomes a directory name."""

from __future__ import annotations

import re
from typing import Any

from monitor.checks import Mismatch, Problem

__all__ = ["MODEL_NAME", "check_model_name", "is_model_name"]

# A superset of the configuration's model-name rule, checked again here because the
# store must not trust its caller with a path component. The leading letter/digit
# rules out "", ".", ".." and the store's own ".tmp-" entries.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_EXPECTED = (
    "a str of 1 to 128 ASCII letters, digits, '_', '.' or '-' starting with a letter or digit"
)


def is_model_name(name: str) -> bool:
    """True when ``name`` is a safe model (directory) name."""
    return MODEL_NAME.fullmatch(name) is not None


def check_model_name(value: Any, owner: str) -> str:
    """Return ``value`` if it is a safe model name; raise ``Mismatch`` naming ``owner``."""
    if not isinstance(value, str) or not is_model_name(value):
        raise Mismatch(Problem("model", _EXPECTED, value), owner)
    return value
