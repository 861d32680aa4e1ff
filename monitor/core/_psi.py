"""The two pieces of PSI that the drift SLIs and their calibration share.

``bin_index`` puts values in right-closed bins; ``psi_from_fractions`` applies the
empty-bin rule (floor both share vectors at ``epsilon``, renormalise) and the formula.
See :mod:`monitor.core.drift` and ``docs/slis.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["bin_index", "psi_from_fractions"]

Floats = NDArray[np.floating[Any]]


def psi_from_fractions(p: Floats, q: Floats, epsilon: float) -> float:
    """PSI of two share vectors of one variable after the floor-and-renormalise rule."""
    pf = np.maximum(p, epsilon)
    qf = np.maximum(q, epsilon)
    pf = pf / pf.sum()
    qf = qf / qf.sum()
    # Each term (q - p) ln(q / p) is >= 0; the sum is clipped at 0 against rounding.
    return max(0.0, float(np.sum((qf - pf) * np.log(qf / pf))))


def bin_index(edges: Floats, x: NDArray[np.floating]) -> NDArray[np.intp]:
    """Bin of each value: ``b`` such that ``edges[b-1] < x <= edges[b]`` (open ends)."""
    return np.searchsorted(edges, x, side="left")
