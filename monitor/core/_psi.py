"""The two pieces of PSI that the drift SLIs and their calibration share.

``bin_index`` puts values in right-closed bins; ``psi_from_fractions`` applies the
empty-bin rule (floor both share vectors at ``epsilon``, renormalise) and the formula.
See :mod:`monitor.core.drift` and ``docs/slis.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["bin_index", "psi_from_fractions", "psi_rows"]

Floats = NDArray[np.floating[Any]]


def psi_from_fractions(p: Floats, q: Floats, epsilon: float) -> float:
    """PSI of two share vectors of one variable after the floor-and-renormalise rule."""
    return float(psi_rows(np.asarray(p)[None, :], np.asarray(q)[None, :], epsilon)[0])


def psi_rows(p: Floats, q: Floats, epsilon: float) -> NDArray[np.float64]:
    """PSI of each row of ``q`` (c, B) against the same row of ``p`` (c, B) or against ``p`` (B,).

    Both sides are floored at ``epsilon`` and renormalised per row first.
    """
    pf = np.maximum(np.asarray(p, dtype=np.float64), epsilon)
    qf = np.maximum(np.asarray(q, dtype=np.float64), epsilon)
    pf = pf / pf.sum(axis=-1, keepdims=True)
    qf = qf / qf.sum(axis=-1, keepdims=True)
    # Each term (q - p) ln(q / p) is >= 0; the sum is clipped at 0 against rounding.
    out: NDArray[np.float64] = np.maximum(0.0, np.sum((qf - pf) * np.log(qf / pf), axis=-1))
    return out


def bin_index(edges: Floats, x: NDArray[np.floating]) -> NDArray[np.intp]:
    """Bin of each value: ``b`` such that ``edges[b-1] < x <= edges[b]`` (open ends)."""
    return np.searchsorted(edges, x, side="left")
