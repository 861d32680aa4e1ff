"""The calibration benchmark's counting, its binomial interval and its size grid."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binom

from bench.bench_calibration import Tally, binomial_interval, size_grid, tally
from monitor import slis as S

THRESHOLDS: dict[str, float | None] = {
    S.FEATURE_PSI_MAX: 0.2,  # alarms above
    S.SILHOUETTE: 0.5,  # alarms below
    S.CENTROID_DRIFT_MAX: None,  # not a drift signal at this size
}


def window(psi: float, sil: float, drift: float = 0.0) -> dict[str, float]:
    return {S.FEATURE_PSI_MAX: psi, S.SILHOUETTE: sil, S.CENTROID_DRIFT_MAX: drift}


def test_a_window_is_flagged_once_however_many_slis_it_crosses() -> None:
    values = [
        window(0.1, 0.6),  # quiet
        window(0.3, 0.6),  # PSI above
        window(0.1, 0.4),  # silhouette below
        window(0.3, 0.4),  # both: one flag for the family, one for each SLI
        window(0.1, 0.6),
    ]
    t = tally(values, THRESHOLDS)
    assert t == Tally(5, 3, {S.FEATURE_PSI_MAX: 2, S.SILHOUETTE: 2, S.CENTROID_DRIFT_MAX: 0})
    assert t.rate == pytest.approx(0.6)


def test_on_the_threshold_nan_and_unsignalled_slis_do_not_flag() -> None:
    values = [
        window(0.2, 0.5),  # exactly at both thresholds: not past them
        window(math.nan, math.nan),  # undefined values never alarm (as in PromQL)
        window(0.0, 0.9, drift=1e9),  # its threshold is None: not a signal here
    ]
    assert tally(values, THRESHOLDS) == Tally(3, 0, dict.fromkeys(THRESHOLDS, 0))


def test_no_windows_no_rate() -> None:
    assert math.isnan(tally([], THRESHOLDS).rate)


@pytest.mark.parametrize("n", [1, 10, 400])
def test_the_interval_at_no_flags_and_at_all_flags(n: int) -> None:
    # P(X = 0) = (1 - p)^n = 0.025 at the upper bound; P(X = n) = p^n = 0.025 at the lower.
    assert binomial_interval(0, n) == (0.0, pytest.approx(1 - 0.025 ** (1 / n)))
    assert binomial_interval(n, n) == (pytest.approx(0.025 ** (1 / n)), 1.0)


@pytest.mark.parametrize(("x", "n"), [(1, 10), (5, 10), (13, 1000), (20, 2000)])
def test_the_interval_leaves_two_and_a_half_percent_in_each_tail(x: int, n: int) -> None:
    low, high = binomial_interval(x, n)
    assert low < x / n < high
    assert binom.sf(x - 1, n, low) == pytest.approx(0.025, rel=1e-6)  # P(X >= x | low)
    assert binom.cdf(x, n, high) == pytest.approx(0.025, rel=1e-6)  # P(X <= x | high)


def test_the_interval_matches_a_published_value() -> None:
    # 5 of 10: 0.1871 to 0.8129 (Clopper and Pearson's exact interval, as tabulated).
    low, high = binomial_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.1871, 0.8129)
    assert binomial_interval(5, 10, level=0.99)[0] < low


@pytest.mark.parametrize(("x", "n"), [(-1, 10), (11, 10), (0, 0)])
def test_the_interval_refuses_impossible_counts(x: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        binomial_interval(x, n)


@pytest.mark.parametrize(
    ("sizes", "grid"),
    [
        ([50, 500, 5000], [50, 100, 200, 400, 800, 1600, 3200, 5000]),
        ([500, 50], [50, 100, 200, 400, 500]),
        ([64, 128], [64, 128]),
        ([10], [10]),
    ],
)
def test_the_grid_doubles_from_the_smallest_size_to_the_largest(
    sizes: list[int], grid: list[int]
) -> None:
    assert size_grid(sizes) == grid
