"""Per-feature scalers fitted on a reference window and frozen in its snapshot."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.checks import check_array, check_choice
from monitor.errors import InvalidInputError
from monitor.records import Scaler

__all__ = ["SCALER_KINDS", "fit_scaler", "inverse_transform", "transform"]

SCALER_KINDS = ("standard", "robust", "none")

# Below this spread (relative to the feature's largest value) a feature counts as
# constant: dividing by it would turn rounding noise into signal.
_CONSTANT_RTOL = 1e-12


def fit_scaler(
    X: NDArray[np.floating[Any]], kind: str = "standard", *, shift_far: bool = True
) -> Scaler:
    """Fit a scaler on a reference window.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    kind : {"standard", "robust", "none"}
        ``standard``: mean and population standard deviation. ``robust``: median and
        inter-quartile range (falling back to the standard deviation, then to 1, for a
        feature whose IQR is zero). ``none``: scale 1, and centre 0 unless ``shift_far``.
    shift_far : bool
        With ``none``: rows so far from the origin that their squared distances would
        lose the spread to rounding (``far_from_origin``: epoch seconds, large counters)
        are centred on their mean, which moves no Euclidean distance. False for cosine,
        whose directions a shift would change.

    Returns
    -------
    Scaler
        ``center`` and ``scale`` of shape (n_features,); ``scale`` is strictly positive,
        1.0 for constant features (a spread of at most 1e-12 of the feature's largest
        absolute value: what rounding leaves of a constant). Small units are no constant:
        a feature of values near 1e-13, or near 1e-160, is scaled like any other (its
        spread is measured on the values divided by the largest, whose squares do not
        underflow).
    """
    check_choice(kind, "kind", SCALER_KINDS, owner="fit_scaler")
    X = check_array(X, name="X")
    d = X.shape[1]
    Xd = X.astype(np.float64, copy=False)
    if kind == "none":
        return Scaler(kind, _far_mean(Xd, X.dtype) if shift_far else np.zeros(d), np.ones(d))
    with np.errstate(invalid="ignore"):
        largest = np.abs(Xd).max(axis=0) if Xd.shape[0] else np.zeros(d)
    unit = np.where((largest > 0) & np.isfinite(largest), largest, 1.0)
    std = (Xd / unit).std(axis=0) * unit
    if kind == "standard":
        center = Xd.mean(axis=0)
        scale = std
    else:
        q25, center, q75 = np.quantile(Xd, [0.25, 0.5, 0.75], axis=0)
        scale = np.where(q75 - q25 > 0, q75 - q25, std)
    scale = np.where(scale > _CONSTANT_RTOL * largest, scale, 1.0)
    return Scaler(kind, center, scale)


def _far_mean(Xd: NDArray[np.float64], dtype: Any) -> NDArray[np.float64]:
    """The rows' mean when they are far from the origin for ``dtype``, else zeros."""
    # Imported here: the configuration imports this module and must stay light.
    from monitor.core._kmeans_fit import far_from_origin

    d = Xd.shape[1]
    if Xd.shape[0] == 0:
        return np.zeros(d)
    with np.errstate(over="ignore", invalid="ignore"):
        mean, var = Xd.mean(axis=0), Xd.var(axis=0)
        far = bool(np.isfinite(var).all()) and far_from_origin(mean, var, dtype)
    return mean if far else np.zeros(d)


def transform(
    scaler: Scaler,
    X: NDArray[np.floating[Any]],
    *,
    out: NDArray[np.floating[Any]] | None = None,
) -> NDArray[np.floating[Any]]:
    """``(X - center) / scale`` in the dtype of ``X``; shape (n_samples, n_features).

    ``out``: where to write the result, an array of X's shape and dtype; ``X`` itself
    scales in place. A caller that keeps one buffer per window size pays the first
    touch of a fresh window-sized array (page faults, about as long as the arithmetic)
    once instead of on every window.
    """
    center = scaler.center.astype(X.dtype, copy=False)
    scale = scaler.scale.astype(X.dtype, copy=False)
    if out is not None and (out.shape != X.shape or out.dtype != X.dtype):
        raise InvalidInputError(
            f"The 'out' parameter of transform must have X's shape {X.shape} and dtype "
            f"{X.dtype}; got shape {out.shape} and dtype {out.dtype}."
        )
    out = np.subtract(X, center, out=out)
    out /= scale
    return out


def inverse_transform(scaler: Scaler, Xs: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    """``Xs * scale + center``: back from scaled units to raw units."""
    return Xs * scaler.scale.astype(Xs.dtype, copy=False) + scaler.center.astype(
        Xs.dtype, copy=False
    )
