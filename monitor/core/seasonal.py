"""The reference at the same phase of a seasonal cycle: cluster shares and bin shares.

A reference period that spans whole cycles (days, weeks) holds, for each phase of the
cycle, how the telemetry was spread over clusters and bins then. A window is compared
with the reference rows of the ``2 width + 1`` phases' worth of the cycle centred on its
own time, so that a daily rhythm in the traffic mix is not drift. See docs/slis.md,
"Seasonality".
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.checks import check_array, check_float, check_int
from monitor.errors import InvalidInputError
from monitor.records import ReferenceBins, SeasonalProfile

__all__ = [
    "center_shifts_at",
    "fit_profile",
    "phase_centers",
    "phase_index",
    "phase_reference",
    "phase_weights",
    "pooled_counts",
]

F64 = NDArray[np.float64]


def phase_index(t: ArrayLike, period: float, n_phases: int) -> NDArray[np.intp]:
    """Phase of each time ``t`` (unix seconds): ``floor((t mod period) / period * n_phases)``."""
    frac = np.mod(np.asarray(t, dtype=np.float64), period) / period
    return np.minimum((frac * n_phases).astype(np.intp), n_phases - 1)


def fit_profile(
    times: ArrayLike,
    label_counts: ArrayLike,
    bin_counts: ArrayLike,
    bin_offsets: ArrayLike,
    *,
    period: float,
    n_phases: int,
    width: int,
    center_sums: ArrayLike | None = None,
) -> SeasonalProfile:
    """Counts of the reference by phase, from counts of its windows.

    Parameters
    ----------
    times : array-like of shape (b,)
        Midpoint of each reference window, unix seconds.
    label_counts : array-like of shape (b, k)
        Rows of each window in each cluster.
    bin_counts : array-like of shape (b, B)
        Rows of each window in each bin, features side by side.
    bin_offsets : array-like of shape (d + 1,)
        Feature j's bins are the columns ``bin_offsets[j]:bin_offsets[j + 1]``.
    period : float
        Seconds in one cycle.
    n_phases : int
        Phases per cycle.
    width : int
        Phases on each side pooled into a window's reference, in [0, n_phases // 2].
    center_sums : array-like of shape (b, k, d), optional
        Sums of each window's scaled rows per cluster: the phase's cluster means, which a
        candidate is compared with when the levels follow the cycle.

    Returns
    -------
    SeasonalProfile
    """
    owner = "fit_profile"
    period = check_float(period, "period", low=0.0, low_inclusive=False, owner=owner)
    n_phases = check_int(n_phases, "n_phases", low=1, owner=owner)
    width = check_int(width, "width", low=0, high=n_phases // 2, owner=owner)
    t = np.asarray(times, dtype=np.float64).ravel()
    labels = check_array(label_counts, name="label_counts", min_samples=t.shape[0])
    bins = check_array(bin_counts, name="bin_counts", min_samples=t.shape[0])
    if labels.shape[0] != t.shape[0] or bins.shape[0] != t.shape[0]:
        raise InvalidInputError(
            f"The counts of {owner} must have one row per window ({t.shape[0]}); got "
            f"{labels.shape[0]} and {bins.shape[0]}."
        )
    phase = phase_index(t, period, n_phases)
    by_label = np.zeros((n_phases, labels.shape[1]))
    by_bin = np.zeros((n_phases, bins.shape[1]))
    np.add.at(by_label, phase, labels)
    np.add.at(by_bin, phase, bins)
    by_center = None
    if center_sums is not None:
        sums = np.asarray(center_sums, dtype=np.float64)
        by_center = np.zeros((n_phases, *sums.shape[1:]))
        np.add.at(by_center, phase, sums)
    return SeasonalProfile(
        period=period,
        label_counts=by_label,
        bin_counts=by_bin,
        bin_offsets=np.asarray(bin_offsets, dtype=np.intp),
        width=width,
        center_sums=by_center,
    )


def phase_weights(t: ArrayLike, period: float, n_phases: int, width: int) -> F64:
    """(m, n_phases) how much of each phase the reference of each time ``t`` pools.

    The reference of a time is the stretch of ``width + 1/2`` phases on each side of it
    (circular); a phase counts for the part of it inside the stretch, its rows taken as
    spread evenly over it. Centred on the time itself, not on its phase's middle: a window
    near the end of an hour is compared with the hours around it, not with the hour before
    it more than the one after. For a time at a phase's middle the weights are 1 on the
    ``2 width + 1`` phases around it, as whole phases; a stretch of the whole cycle or
    more weighs every phase 1.
    """
    x = np.mod(np.asarray(t, dtype=np.float64).ravel(), period) / period * n_phases
    out = np.zeros((x.shape[0], n_phases))
    if 2 * width + 1 >= n_phases:
        out[:] = 1.0
        return out
    lo, hi = x - width - 0.5, x + width + 0.5
    first = np.floor(lo).astype(np.intp)
    rows = np.arange(x.shape[0])
    for step in range(2 * width + 2):  # the stretch touches at most 2 width + 2 phases
        j = first + step
        part = np.clip(np.minimum(j + 1, hi) - np.maximum(j, lo), 0.0, None)
        np.add.at(out, (rows, j % n_phases), part)
    return out


def _weights(profile: SeasonalProfile, t: float) -> F64:
    return phase_weights([t], profile.period, profile.n_phases, profile.width)[0]


def pooled_counts(profile: SeasonalProfile, t: float) -> tuple[F64, F64]:
    """Cluster and bin counts of the reference of time ``t`` (``phase_weights``)."""
    w = _weights(profile, t)
    return w @ profile.label_counts, w @ profile.bin_counts


def center_shifts_at(profile: SeasonalProfile, t: ArrayLike) -> F64 | None:
    """(m, k, d) ``profile.center_shifts`` at each time ``t``: linear between the middles
    of the two phases it falls between (circular); None when the profile holds none."""
    shifts = profile.center_shifts
    if shifts is None:
        return None
    p = profile.n_phases
    x = np.mod(np.asarray(t, dtype=np.float64).ravel(), profile.period) / profile.period * p
    x -= 0.5  # phase j's middle is at j + 1/2
    below = np.floor(x)
    part = (x - below)[:, None, None]
    lo = below.astype(np.intp) % p
    out: F64 = (1.0 - part) * shifts[lo] + part * shifts[(lo + 1) % p]
    return out


def phase_centers(profile: SeasonalProfile, t: float, centers: ArrayLike) -> F64:
    """The centres a window's warm-started candidate settles at around time ``t`` when
    nothing changed (k, d): the reference's cluster means there, plus where refitting
    them moves them at that phase (``center_shifts_at``); ``centers`` where a cluster has
    no reference row there, or the profile holds no sums."""
    C = np.asarray(centers, dtype=np.float64)
    if profile.center_sums is None:
        return C
    w = _weights(profile, t)
    counts = (w @ profile.label_counts)[:, None]
    sums = np.tensordot(w, profile.center_sums, axes=1)
    means = sums / np.maximum(counts, 1e-12)
    shifts = center_shifts_at(profile, [t])
    if shifts is not None:
        means += shifts[0]
    out: F64 = np.where(counts > 0, means, C)
    return out


def phase_reference(
    profile: SeasonalProfile, t: float, bins: ReferenceBins
) -> tuple[F64, ReferenceBins] | None:
    """The reference shares and bins around time ``t``; None when it holds no row."""
    labels, counts = pooled_counts(profile, t)
    total = float(labels.sum())
    if total <= 0:
        return None
    off = profile.bin_offsets
    parts = [counts[off[j] : off[j + 1]] for j in range(off.shape[0] - 1)]
    # Weighted counts: a stretch can hold less than one row's worth.
    fractions = tuple(part / (part.sum() if part.sum() > 0 else 1.0) for part in parts)
    shares: F64 = labels / total
    return shares, ReferenceBins(bins.edges, fractions, bins.epsilon, bins.strategy)
