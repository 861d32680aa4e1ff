"""Validation at the public edge of the numeric core.

Public functions call these once; private helpers then assume valid input.
Parameter errors have one shape: the parameter, what was expected, what was received.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.errors import InvalidInputError

FLOAT_DTYPES = (np.float64, np.float32)

RandomStateLike = int | np.random.Generator | np.random.RandomState | None


def _owner(owner: str | None) -> str:
    return f" of {owner}" if owner else ""


def check_int(
    value: Any,
    name: str,
    *,
    low: int | None = None,
    high: int | None = None,
    owner: str | None = None,
) -> int:
    """Return ``value`` as int if it is an integer in ``[low, high]``; raise otherwise."""
    lo = "-inf" if low is None else str(low)
    hi = "inf)" if high is None else f"{high}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(
            f"The {name!r} parameter{_owner(owner)} must be an int in [{lo}, {hi}. "
            f"Got {value!r} instead."
        )
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidInputError(
            f"The {name!r} parameter{_owner(owner)} must be an int in [{lo}, {hi}. "
            f"Got {value!r} instead."
        )
    return value


def check_float(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    owner: str | None = None,
) -> float:
    """Return ``value`` as float if it is a finite real in the given interval; raise otherwise."""
    lb = "(-inf" if low is None else ("[" if low_inclusive else "(") + str(low)
    ub = "inf)" if high is None else str(high) + ("]" if high_inclusive else ")")
    msg = (
        f"The {name!r} parameter{_owner(owner)} must be a float in {lb}, {ub}. "
        f"Got {value!r} instead."
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(msg)
    v = float(value)
    if not np.isfinite(v):
        raise InvalidInputError(msg)
    if low is not None and (v < low or (v == low and not low_inclusive)):
        raise InvalidInputError(msg)
    if high is not None and (v > high or (v == high and not high_inclusive)):
        raise InvalidInputError(msg)
    return v


def check_choice(
    value: Any, name: str, choices: tuple[str, ...], *, owner: str | None = None
) -> str:
    """Return ``value`` if it is one of ``choices``; the error lists the valid ones."""
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise InvalidInputError(
            f"The {name!r} parameter{_owner(owner)} must be one of {{{valid}}}. "
            f"Got {value!r} instead."
        )
    return value


def check_array(
    X: ArrayLike,
    *,
    name: str = "X",
    dtype: Any = FLOAT_DTYPES,
    min_samples: int = 1,
    min_features: int = 1,
    allow_nan: bool = False,
    copy: bool = False,
) -> NDArray[np.floating[Any]]:
    """Return ``X`` as a C-contiguous 2-D float array, or raise a clear error.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    dtype : dtype or tuple of dtypes
        Kept if ``X`` already has one of them; otherwise converted to the first.
    min_samples, min_features : int
        Smallest acceptable shape.
    allow_nan : bool
        When False, any NaN or inf is an error that names the first bad cell.
    """
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise InvalidInputError(
            f"{name} is a sparse matrix; k-means here needs dense data. "
            f"Convert with {name}.toarray() if it fits in memory."
        )
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} cannot be read as a numeric array: {exc}") from exc
    if arr.dtype.kind == "c":
        raise InvalidInputError(f"{name} has complex values; only real numbers are supported.")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"{name} must be numeric; got dtype {arr.dtype}: {exc}"
            ) from exc
    dtypes = dtype if isinstance(dtype, tuple) else (dtype,)
    target = arr.dtype if arr.dtype in dtypes else np.dtype(dtypes[0])
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{name} must be a 2-D array of shape (n_samples, n_features); "
            f"got an array of shape {arr.shape}. Reshape 1-D data with "
            f"reshape(-1, 1) for a single feature or reshape(1, -1) for a single sample."
        )
    n, d = arr.shape
    if n < min_samples:
        raise InvalidInputError(
            f"{name} has {n} sample(s) of shape {arr.shape}; at least {min_samples} required."
        )
    if d < min_features:
        raise InvalidInputError(
            f"{name} has {d} feature(s) of shape {arr.shape}; at least {min_features} required."
        )
    arr = (
        np.array(arr, dtype=target, order="C", copy=True)
        if copy
        else np.ascontiguousarray(arr, dtype=target)
    )
    if not allow_nan:
        finite = np.isfinite(arr)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            bad = int((~finite).sum())
            raise InvalidInputError(
                f"{name} contains NaN or infinity: {bad} value(s), the first at row {row}, "
                f"column {col} ({arr[row, col]!r})."
            )
    return arr


def check_sample_weight(
    sample_weight: ArrayLike | None, n_samples: int, dtype: Any
) -> NDArray[np.floating[Any]]:
    """Return weights of shape (n_samples,) as ``dtype``; ones when None."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    w = np.asarray(sample_weight, dtype=dtype)
    if w.ndim == 0:
        return np.full(n_samples, float(w), dtype=dtype)
    if w.shape != (n_samples,):
        raise InvalidInputError(
            f"sample_weight must have shape ({n_samples},) to match X; got {w.shape}."
        )
    if not np.isfinite(w).all():
        raise InvalidInputError("sample_weight contains NaN or infinity.")
    if (w < 0).any():
        raise InvalidInputError(
            f"sample_weight must be non-negative; got a minimum of {w.min()!r}."
        )
    if not (w > 0).any():
        raise InvalidInputError("sample_weight must have at least one positive weight.")
    return np.ascontiguousarray(w)


def check_random_state(seed: RandomStateLike) -> np.random.Generator:
    """Turn ``seed`` into a ``numpy.random.Generator`` without touching global state."""
    if seed is None or isinstance(seed, numbers.Integral):
        return np.random.default_rng(None if seed is None else int(seed))
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.RandomState):
        # Draw a seed from the legacy generator so that its state still advances.
        return np.random.default_rng(int(seed.randint(0, 2**31 - 1)))
    raise InvalidInputError(
        f"The 'random_state' parameter must be None, an int, a numpy Generator or "
        f"RandomState. Got {seed!r} instead."
    )
