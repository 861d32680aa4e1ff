"""Checks of the core's own array arguments: labels, centres, squared distances, shares.

The generic checks (ints, floats, 2-D arrays, weights, seeds) live in
:mod:`monitor.checks`; these are the ones that know what a clustering is. Every SLI
module validates its public arguments with them, so one kind of bad input gets one
message wherever it is passed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.checks import check_array
from monitor.errors import InvalidInputError

__all__ = ["check_centers", "check_labels", "check_shares", "check_sq_distances"]


def _of(owner: str | None) -> str:
    return f" of {owner}" if owner else ""


def check_labels(
    labels: ArrayLike,
    n_samples: int | None,
    n_clusters: int | None = None,
    *,
    name: str = "labels",
    owner: str | None = None,
) -> NDArray[np.intp]:
    """Return ``labels`` as a 1-D intp array of cluster indices in ``[0, n_clusters)``.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
    n_samples : int or None
        Required length; None skips the length check.
    n_clusters : int or None
        Exclusive upper bound of the indices; None only requires non-negative labels.
    """
    arr = np.asarray(labels)
    of = _of(owner)
    if arr.ndim != 1:
        raise InvalidInputError(
            f"The {name!r} parameter{of} must be a 1-D array of cluster indices; "
            f"got an array of shape {arr.shape}."
        )
    if arr.size and (arr.dtype.kind not in "iu"):
        raise InvalidInputError(
            f"The {name!r} parameter{of} must hold integer cluster indices; got dtype {arr.dtype}."
        )
    if n_samples is not None and arr.shape[0] != n_samples:
        raise InvalidInputError(
            f"The {name!r} parameter{of} must have one entry per sample ({n_samples}); "
            f"got {arr.shape[0]}."
        )
    out = arr.astype(np.intp, copy=False)
    if out.size:
        lo, hi = int(out.min()), int(out.max())
        upper = "inf)" if n_clusters is None else f"{n_clusters - 1}]"
        if lo < 0 or (n_clusters is not None and hi >= n_clusters):
            bad = lo if lo < 0 else hi
            raise InvalidInputError(
                f"The {name!r} parameter{of} must hold cluster indices in [0, {upper}. "
                f"Got {bad} instead."
            )
    return out


def check_centers(
    centers: ArrayLike,
    n_features: int,
    *,
    n_clusters: int | None = None,
    dtype: Any = np.float64,
    name: str = "centers",
    owner: str | None = None,
) -> NDArray[Any]:
    """Return ``centers`` as a fresh C-contiguous (k, d) array of ``dtype``.

    Parameters
    ----------
    centers : array-like of shape (n_clusters, n_features)
        Finite values.
    n_features : int
        Columns of the data the centres belong to.
    n_clusters : int or None
        Required number of rows; None accepts any.
    dtype : dtype
        Of the result (the data's dtype for the k-means engine, float64 for the SLIs).
    """
    C = check_array(centers, name=name, dtype=dtype, copy=True, rows="n_clusters")
    of = _of(owner)
    if n_clusters is not None and C.shape[0] != n_clusters:
        raise InvalidInputError(
            f"The {name!r} parameter{of} must have {n_clusters} row(s), one per cluster; "
            f"got an array of shape {C.shape}."
        )
    if C.shape[1] != n_features:
        raise InvalidInputError(
            f"The {name!r} parameter{of} must have {n_features} feature(s) to match X; "
            f"got an array of shape {C.shape}."
        )
    return C


def check_sq_distances(
    sq_distances: ArrayLike, n_samples: int | None = None, *, owner: str
) -> NDArray[np.float64]:
    """Return squared distances as a non-empty 1-D float64 array of finite values >= 0.

    Parameters
    ----------
    sq_distances : array-like of shape (n_samples,)
    n_samples : int or None
        Required length (one per row of X); None accepts any non-zero length.
    """
    arr = np.asarray(sq_distances, dtype=np.float64)
    if arr.ndim != 1 or (n_samples is not None and arr.shape[0] != n_samples):
        want = "a 1-D array" if n_samples is None else f"{n_samples} values, one per row of X"
        raise InvalidInputError(
            f"The 'sq_distances' parameter of {owner} must be {want}; "
            f"got an array of shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise InvalidInputError(
            f"The 'sq_distances' parameter of {owner} must hold at least one distance; got none."
        )
    ok = np.isfinite(arr) & (arr >= 0)
    if not ok.all():
        bad = float(arr[~ok][0])
        raise InvalidInputError(
            f"The 'sq_distances' parameter of {owner} must hold finite non-negative squared "
            f"distances. Got {bad!r} instead."
        )
    return arr


def check_shares(
    shares: ArrayLike, n_clusters: int, *, name: str, owner: str
) -> NDArray[np.float64]:
    """Return non-negative shares of shape (n_clusters,) renormalised to sum to 1."""
    arr = np.asarray(shares, dtype=np.float64)
    if arr.shape != (n_clusters,):
        raise InvalidInputError(
            f"The {name!r} parameter of {owner} must have shape ({n_clusters},); got {arr.shape}."
        )
    if not np.isfinite(arr).all() or (arr < 0).any() or arr.sum() <= 0:
        raise InvalidInputError(
            f"The {name!r} parameter of {owner} must hold finite non-negative shares with "
            f"a positive sum. Got {arr!r} instead."
        )
    return arr / arr.sum()
