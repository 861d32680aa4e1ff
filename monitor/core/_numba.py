"""numba, the optional extra ``fast``, in one place: whether it is installed, and how
the core's kernels are compiled (``jit``). Without it ``AVAILABLE`` is False, ``jit``
returns the plain Python function, and callers take their numpy paths."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

try:
    import numba
except ImportError:  # the optional extra is not installed
    numba = None  # type: ignore[assignment]

__all__ = ["AVAILABLE", "jit"]

AVAILABLE = numba is not None


def jit(fn: Callable[..., Any]) -> Any:
    """Compile ``fn`` lazily, without the GIL, cached on disk (see docs/decisions.md).

    Where numba finds no directory it may write its cache to (a read-only install under
    a sandbox such as systemd's ProtectSystem and ProtectHome), the kernels are compiled
    in every process instead, with one warning; numba itself would raise at import.
    """
    if numba is None:
        return fn
    try:
        return numba.njit(nogil=True, cache=True, error_model="numpy")(fn)
    except RuntimeError as exc:
        if "cannot cache" not in str(exc):
            raise
        _warn_uncached()
        return numba.njit(nogil=True, error_model="numpy")(fn)


@functools.cache
def _warn_uncached() -> None:
    warnings.warn(
        "numba finds no writable directory for its cache (the package's and the user's "
        "cache directory are read-only): the kernels are compiled again in every process, "
        "about 10 s each time; set NUMBA_CACHE_DIR to a writable directory",
        RuntimeWarning,
        stacklevel=3,
    )
