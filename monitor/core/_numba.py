"""numba, the optional extra ``fast``, in one place: whether it is installed, and how
the core's kernels are compiled (``jit``). Without it ``AVAILABLE`` is False, ``jit``
returns the plain Python function, and callers take their numpy paths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    import numba
except ImportError:  # the optional extra is not installed
    numba = None  # type: ignore[assignment]

__all__ = ["AVAILABLE", "jit"]

AVAILABLE = numba is not None


def jit(fn: Callable[..., Any]) -> Any:
    """Compile ``fn`` lazily, without the GIL, cached on disk (see docs/decisions.md)."""
    if numba is None:
        return fn
    return numba.njit(nogil=True, cache=True, error_model="numpy")(fn)
