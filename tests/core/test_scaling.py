"""The per-feature scalers, against scikit-learn's StandardScaler and RobustScaler."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import RobustScaler, StandardScaler

from monitor.core.scaling import fit_scaler, inverse_transform, transform


def rows(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(500, 4)) * [1.0, 1e3, 1e-3, 7.0] + [0.0, 5e4, 2.0, -3.0]


@pytest.mark.parametrize("unit", [1.0, 1e-13])
def test_standard_matches_scikit_learn(unit: float) -> None:
    X = rows() * unit
    got = fit_scaler(X, "standard")
    ref = StandardScaler().fit(X)
    # Both are the mean and the population standard deviation; ours is measured on the
    # values divided by each feature's largest, which moves the last bits only.
    np.testing.assert_allclose(got.center, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(got.scale, ref.scale_, rtol=1e-12)
    np.testing.assert_allclose(transform(got, X), ref.transform(X), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("unit", [1e-160, 1e150])
def test_standard_scales_with_the_unit_where_squares_underflow_or_overflow(unit: float) -> None:
    """scikit-learn's variance underflows to a constant at 1e-160 and overflows at 1e150;
    the reference here is the same rows in unit 1, scaled."""
    X = rows()
    got, ref = fit_scaler(X * unit), fit_scaler(X)
    np.testing.assert_allclose(got.center, ref.center * unit, rtol=1e-12)
    np.testing.assert_allclose(got.scale, ref.scale * unit, rtol=1e-12)
    np.testing.assert_allclose(transform(got, X * unit), transform(ref, X), rtol=1e-9, atol=1e-9)


def test_robust_matches_scikit_learn() -> None:
    X = rows(1)
    got = fit_scaler(X, "robust")
    ref = RobustScaler().fit(X)
    np.testing.assert_allclose(got.center, ref.center_, rtol=1e-12)
    np.testing.assert_allclose(got.scale, ref.scale_, rtol=1e-12)


def test_a_feature_in_tiny_units_is_scaled_not_taken_for_a_constant() -> None:
    """A spread below 1e-12 in absolute terms once counted as constant: latencies in
    units of 1e-13, or values near 1e-160 whose squares underflow, kept scale 1 and so
    weighed nothing next to the other features."""
    X = rows(2)
    X[:, 2] = X[:, 2] * 1e-13
    scaled = transform(fit_scaler(X), X)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-9)


@pytest.mark.parametrize("level", [0.0, 1.0, -3.5e6, 1e-200, 7e300])
def test_a_constant_feature_keeps_scale_one(level: float) -> None:
    X = rows(3)
    X[:, 1] = level
    got = fit_scaler(X)
    assert got.scale[1] == 1.0
    np.testing.assert_allclose(inverse_transform(got, transform(got, X)), X, rtol=1e-12)


def test_rounding_noise_on_a_large_level_counts_as_constant() -> None:
    X = rows(4)
    X[:, 0] = 1e6 + np.random.default_rng(0).normal(size=500) * 1e-8  # 1e-14 relative
    assert fit_scaler(X).scale[0] == 1.0


def test_none_centres_rows_far_from_the_origin_and_leaves_the_others() -> None:
    """``none`` is no scaling, but rows near 1.7e9 (epoch seconds) lost their spread to
    the rounding of squared distances: they are shifted by their mean, which no distance
    sees. Rows near the origin, and cosine models (a shift turns directions), keep 0."""
    X = rows(5)[:, :2]
    far = X + 1.7e9
    got = fit_scaler(far, "none")
    np.testing.assert_array_equal(got.center, far.mean(axis=0))
    np.testing.assert_array_equal(got.scale, 1.0)
    np.testing.assert_array_equal(inverse_transform(got, transform(got, far)), far)
    np.testing.assert_array_equal(fit_scaler(X, "none").center, 0.0)
    np.testing.assert_array_equal(fit_scaler(far, "none", shift_far=False).center, 0.0)
