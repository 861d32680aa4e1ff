"""The core APIs that let one window be read fewer times: the second-nearest centre from
the assignment, SLIs from known distances, and scaling into a reused buffer."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from monitor.core import scaling
from monitor.core.kmeans import assign_labels, assign_two_nearest
from monitor.core.quality import calinski_harabasz, silhouette_simplified
from monitor.errors import InvalidInputError


def window(n: int, d: int, k: int, dtype: type, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    X = (centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(dtype)
    return X, (centres + rng.normal(scale=0.3, size=(k, d))).astype(dtype)


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_second_nearest_by_brute_force(kernel: str, dtype: type) -> None:
    X, C = window(3000, 5, 9, dtype)
    labels, sq, second = assign_two_nearest(X, C, kernel=kernel, working_memory_mib=0.05)
    D = ((X[:, None, :].astype(np.float64) - C[None].astype(np.float64)) ** 2).sum(axis=2)
    D.sort(axis=1)
    np.testing.assert_array_equal(labels, assign_labels(X, C, kernel=kernel)[0])
    # The expansion ||x||^2 - 2 x.c + ||c||^2 against differences: the dtype's rounding
    # of numbers of the size of ||x||^2 (at most ~200 here).
    atol = 200 * 50 * np.finfo(dtype).eps
    np.testing.assert_allclose(sq, D[:, 0], atol=atol)
    np.testing.assert_allclose(second, D[:, 1], atol=atol)
    assert second.dtype == sq.dtype == dtype


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_second_nearest_with_one_centre_is_infinite(kernel: str) -> None:
    X, C = window(50, 2, 1, np.float64)
    _, _, second = assign_two_nearest(X, C, kernel=kernel)
    assert np.isinf(second).all()


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_simplified_silhouette_from_the_assignment_alone(kernel: str) -> None:
    X, C = window(4000, 6, 7, np.float64, seed=2)
    labels, sq, second = assign_two_nearest(X, C, kernel=kernel)
    from_pass = silhouette_simplified(X, labels, C, sq_distances=sq, sq_second=second)
    direct = silhouette_simplified(X, labels, C)
    # Expansion against differences, in float64: ~1e-12 on values of order 1.
    assert from_pass.score == pytest.approx(direct.score, abs=1e-10)
    np.testing.assert_allclose(from_pass.per_cluster, direct.per_cluster, atol=1e-10)


def test_sq_second_needs_sq_distances_and_the_right_shape() -> None:
    X, C = window(20, 2, 3, np.float64)
    labels, sq, second = assign_two_nearest(X, C)
    with pytest.raises(InvalidInputError, match=r"'sq_second'.*needs 'sq_distances'"):
        silhouette_simplified(X, labels, C, sq_second=second)
    with pytest.raises(InvalidInputError, match=r"'sq_second'.*must be 20 non-negative"):
        silhouette_simplified(X, labels, C, sq_distances=sq, sq_second=second[:-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_calinski_harabasz_from_known_distances(dtype: type) -> None:
    X, C = window(5000, 4, 6, dtype, seed=4)
    labels, sq = assign_labels(X, C)
    fast = calinski_harabasz(X, labels, centers=C, sq_distances=sq)
    two_pass = calinski_harabasz(X, labels)
    reference = metrics.calinski_harabasz_score(X.astype(np.float64), labels)
    # W from sum(sq) - sum n_j |mu_j - c_j|^2: exact algebra, so only the rounding of
    # the distances differs (float32: ~1e-6 relative of a sum of 5000 values).
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    assert fast.value == pytest.approx(two_pass.value, rel=rtol)
    assert fast.value == pytest.approx(reference, rel=rtol)


def test_calinski_harabasz_points_on_their_centres_is_one() -> None:
    X = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [5.0, 5.0]])
    C = np.array([[0.0, 0.0], [5.0, 5.0]])
    labels, sq = assign_labels(X, C)
    assert calinski_harabasz(X, labels, centers=C, sq_distances=sq).value == 1.0
    with pytest.raises(InvalidInputError, match="go together"):
        calinski_harabasz(X, labels, centers=C)


def test_transform_into_a_buffer_and_in_place() -> None:
    X, _ = window(100, 3, 2, np.float32)
    scaler = scaling.fit_scaler(X)
    expected = scaling.transform(scaler, X)
    buf = np.empty_like(X)
    assert scaling.transform(scaler, X, out=buf) is buf
    np.testing.assert_array_equal(buf, expected)
    own = X.copy()
    assert scaling.transform(scaler, own, out=own) is own
    np.testing.assert_array_equal(own, expected)
    with pytest.raises(InvalidInputError, match="'out' parameter of transform"):
        scaling.transform(scaler, X, out=np.empty((100, 3), dtype=np.float64))
