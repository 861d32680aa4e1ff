"""The seasonal profile: counts by phase, pooled around a window's phase."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from monitor.core.seasonal import (
    center_shifts_at,
    fit_profile,
    phase_centers,
    phase_index,
    phase_reference,
    phase_weights,
    pooled_counts,
)
from monitor.errors import InvalidInputError
from monitor.records import ReferenceBins

DAY = 86400.0


def test_phase_index_cuts_the_cycle_into_equal_phases() -> None:
    t = np.array([0.0, 3599.0, 3600.0, DAY - 1, DAY, DAY + 7200.0, -1.0])
    assert phase_index(t, DAY, 24).tolist() == [0, 0, 1, 23, 0, 2, 23]


def profile(width: int = 1):  # type: ignore[no-untyped-def]
    # Four windows at 00:30, 01:30, 12:30 and 23:30 with known counts (k=2, two features
    # of 2 bins each).
    times = np.array([1800.0, 5400.0, 45000.0, 84600.0])
    labels = np.array([[10, 0], [0, 10], [5, 5], [1, 9]], dtype=float)
    bins = np.array([[6, 4, 7, 3], [2, 8, 5, 5], [5, 5, 9, 1], [10, 0, 0, 10]], dtype=float)
    return fit_profile(times, labels, bins, [0, 2, 4], period=DAY, n_phases=24, width=width)


def test_counts_land_in_their_phase() -> None:
    p = profile()
    assert p.n_phases == 24
    assert p.label_counts[0].tolist() == [10, 0] and p.label_counts[23].tolist() == [1, 9]
    assert p.label_counts.sum() == 40 and p.bin_counts.sum() == 80


def test_pooling_wraps_around_midnight() -> None:
    labels, _ = pooled_counts(profile(width=1), 1800.0)  # phases 23, 0 and 1, whole
    assert labels.tolist() == [11, 19]
    labels, _ = pooled_counts(profile(width=0), 12.5 * 3600)
    assert labels.tolist() == [5, 5]
    # Half the cycle on each side covers every phase exactly once.
    labels, _ = pooled_counts(profile(width=12), 5.5 * 3600)
    assert labels.tolist() == [16, 24]


def test_the_pool_is_centred_on_the_time_not_on_its_phase() -> None:
    # At midnight the stretch of 1.5 phases on each side holds half of phases 22 and 1.
    labels, _ = pooled_counts(profile(width=1), 0.0)
    assert labels.tolist() == [11, 14]
    w = phase_weights([0.0, 1800.0, 3300.0], DAY, 24, 1)
    assert w.sum(axis=1).tolist() == pytest.approx([3, 3, 3])
    assert w[0, [22, 23, 0, 1]].tolist() == [0.5, 1, 1, 0.5]
    assert w[2, [23, 0, 1, 2]].tolist() == pytest.approx([7 / 12, 1, 1, 5 / 12])
    assert phase_weights([0.0], DAY, 24, 12).tolist() == [[1.0] * 24]


def test_phase_centers_follow_a_level_that_moves_through_the_hour() -> None:
    # One cluster whose mean rises 1 per hour, a window every 15 minutes over 08:00-16:00:
    # the reference around 11:50 is the level at 11:50, not at 11:30 (its hour's middle).
    times = np.arange(8 * 3600 + 450, 16 * 3600, 900.0)
    level = times / 3600.0
    rows = np.full(times.shape[0], 100.0)
    p = fit_profile(
        times, rows[:, None], rows[:, None], [0, 1], period=DAY, n_phases=24, width=1,
        center_sums=(rows * level)[:, None, None],
    )  # fmt: skip
    for t in (11 * 3600 + 3000.0, 12 * 3600 + 60.0, 12 * 3600 + 1800.0):
        got = phase_centers(p, t, np.zeros((1, 1)))
        assert got[0, 0] == pytest.approx(t / 3600.0, abs=1e-9)


def test_centre_shifts_are_linear_between_phase_middles_and_wrap_around_midnight() -> None:
    # Phase j's shift is j + 1 in the one feature of one cluster (k=1, d=1).
    p = replace(profile(), center_shifts=np.arange(1.0, 25.0)[:, None, None])
    at = center_shifts_at(p, [1800.0, 3600.0, 5400.0 + 900.0, 0.0, 85500.0, DAY + 1800.0])
    assert at[:, 0, 0].tolist() == pytest.approx([1, 1.5, 2.25, 12.5, 18.25, 1])
    assert center_shifts_at(profile(), [0.0]) is None


def test_phase_centers_add_the_shift_to_the_reference_means() -> None:
    times = np.array([1800.0, 5400.0, 9000.0])
    rows = np.full(3, 10.0)
    p = fit_profile(
        times, rows[:, None], rows[:, None], [0, 1], period=DAY, n_phases=24, width=1,
        center_sums=(rows * 2.0)[:, None, None],
    )  # fmt: skip
    shifts = np.zeros((24, 1, 1))
    shifts[1] = 0.5
    got = phase_centers(replace(p, center_shifts=shifts), 5400.0, np.zeros((1, 1)))
    assert got[0, 0] == pytest.approx(2.5)
    # Where the reference holds no row of a cluster, the model's centre, unshifted.
    assert phase_centers(replace(p, center_shifts=shifts + 1), 12 * 3600.0, np.ones((1, 1)))[
        0, 0
    ] == pytest.approx(1.0)


def test_phase_reference_gives_shares_and_per_feature_fractions() -> None:
    bins = ReferenceBins((np.zeros(1), np.zeros(1)), (np.ones(2) / 2,) * 2, 1e-4, "quantile")
    ref = phase_reference(profile(width=0), 1800.0, bins)
    assert ref is not None
    shares, phased = ref
    assert shares.tolist() == [1.0, 0.0]
    np.testing.assert_allclose(phased.reference_fractions[0], [0.6, 0.4])
    np.testing.assert_allclose(phased.reference_fractions[1], [0.7, 0.3])
    assert phased.edges is bins.edges
    # A phase with no reference row has no phase reference.
    assert phase_reference(profile(width=0), 6 * 3600.0, bins) is None


def test_bad_counts_are_named() -> None:
    with pytest.raises(InvalidInputError, match="one row per window"):
        fit_profile(
            [0.0, 1.0], np.ones((3, 2)), np.ones((2, 4)), [0, 4], period=DAY, n_phases=24, width=1
        )
    with pytest.raises(InvalidInputError, match="'width' parameter of fit_profile"):
        fit_profile(
            [0.0], np.ones((1, 2)), np.ones((1, 4)), [0, 4], period=DAY, n_phases=24, width=13
        )
