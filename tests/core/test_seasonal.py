"""The seasonal profile: counts by phase, pooled around a window's phase."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.seasonal import fit_profile, phase_index, phase_reference, pooled_counts
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
    labels, _ = pooled_counts(profile(width=1), 0)  # phases 23, 0 and 1
    assert labels.tolist() == [11, 19]
    labels, _ = pooled_counts(profile(width=0), 12)
    assert labels.tolist() == [5, 5]
    # Half the cycle on each side covers every phase exactly once.
    labels, _ = pooled_counts(profile(width=12), 5)
    assert labels.tolist() == [16, 24]


def test_phase_reference_gives_shares_and_per_feature_fractions() -> None:
    bins = ReferenceBins((np.zeros(1), np.zeros(1)), (np.ones(2) / 2,) * 2, 1e-4, "quantile")
    ref = phase_reference(profile(width=0), 1900.0, bins)
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
