"""The compiled PSI count against numpy's binning: the same integer counts, exactly.

Both put a value in the bin of ``searchsorted(edges, x, side="left")``, comparing float32
values with float64 edges in float64, so there is no tolerance: any difference in a count
is a bug. The cases aim at the boundaries: values exactly on an edge, one float32 ulp
either side, signed zeros, many edges (the binary search), features with different
numbers of edges, and more rows than one chunk on several threads.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from monitor.core import _psi, drift
from monitor.core._psi import bin_counts_compiled, bin_index
from monitor.records import ReferenceBins

pytestmark = pytest.mark.skipif(not _psi.COMPILED, reason="numba (extra 'fast') is not installed")


def numpy_counts(edges: tuple[np.ndarray, ...], X: np.ndarray) -> list[np.ndarray]:
    """The definition: a searchsorted bin per value, counted per feature."""
    return [
        np.bincount(bin_index(e, X[:, j]), minlength=e.shape[0] + 1) for j, e in enumerate(edges)
    ]


def assert_same_counts(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == np.int64
        np.testing.assert_array_equal(x, y)


def boundary_window(edges: tuple[np.ndarray, ...], dtype: type, n: int, seed: int) -> np.ndarray:
    """Random values plus, per feature, every edge and its float32 neighbours."""
    rng = np.random.default_rng(seed)
    d = len(edges)
    X = rng.normal(scale=2.0, size=(n, d)).astype(dtype)
    for j, e in enumerate(edges):
        near = np.concatenate(
            [
                e.astype(dtype),
                np.nextafter(e.astype(dtype), dtype(np.inf)),
                np.nextafter(e.astype(dtype), dtype(-np.inf)),
                np.array([0.0, -0.0, 1e30, -1e30], dtype=dtype),
            ]
        )
        X[: near.shape[0], j] = near
    return X


def test_counts_by_hand() -> None:
    # Right-closed bins on edges (0, 1): (-inf, 0], (0, 1], (1, inf).
    X = np.array([[-1.0], [0.0], [0.5], [1.0], [2.0], [-0.0]], dtype=np.float32)
    (counts,) = bin_counts_compiled((np.array([0.0, 1.0]),), X)
    np.testing.assert_array_equal(counts, [3, 2, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_edges", [1, 9, 32, 33, 100])
def test_same_counts_as_searchsorted(dtype: type, n_edges: int) -> None:
    # 32 edges is the last count of the linear kernel, 33 the first of the search.
    rng = np.random.default_rng(n_edges)
    # Edges that are not float32 values as well as ones that are (a float32 window
    # compared in float64 must fall on the right side of both).
    edges = tuple(
        np.unique(rng.normal(size=n_edges + j % 3))
        if j % 2
        else np.unique(rng.normal(size=n_edges + j % 3).astype(np.float32)).astype(np.float64)
        for j in range(6)
    )
    X = boundary_window(edges, dtype, 5000, seed=n_edges)
    assert_same_counts(bin_counts_compiled(edges, X), numpy_counts(edges, X))


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_chunks_and_threads_do_not_change_counts(n_threads: int) -> None:
    edges = tuple(np.linspace(-2, 2, 9) + 0.1 * j for j in range(4))
    n = 2 * _psi.CHUNK_ROWS + 123  # three chunks, the last one short
    X = boundary_window(edges, np.float32, n, seed=7)
    got = bin_counts_compiled(edges, X, n_threads)
    assert_same_counts(got, numpy_counts(edges, X))
    assert all(int(c.sum()) == n for c in got)


def test_features_with_different_edge_counts_and_one_bin() -> None:
    # A feature without inner edges is one bin holding every row.
    edges = (np.array([]), np.array([0.5]), np.linspace(-1, 1, 40))
    X = boundary_window(edges, np.float64, 1000, seed=3)
    got = bin_counts_compiled(edges, X)
    assert [c.shape[0] for c in got] == [1, 2, 41]
    assert_same_counts(got, numpy_counts(edges, X))


def test_psi_is_the_same_with_and_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    # drift.psi takes the compiled count when numba is there and its own numpy count
    # (comparisons against each edge, then searchsorted for many edges) when it is not.
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(20_000, 5))
    bins = drift.fit_reference_bins(ref, n_bins=10)
    many = drift.fit_reference_bins(ref, n_bins=50)
    cur = (rng.normal(size=(30_000, 5)) * 1.3 + 0.2).astype(np.float32)
    cur[:9, 0] = bins.edges[0].astype(np.float32)
    compiled = [drift.psi(b, cur, n_threads=2).per_feature for b in (bins, many)]
    monkeypatch.setattr(drift, "COMPILED", False)
    fallback = [drift.psi(b, cur).per_feature for b in (bins, many)]
    for a, b in zip(compiled, fallback, strict=True):
        assert a.max() > 0.01  # a shifted window: the comparison is not of zeros
        np.testing.assert_array_equal(a, b)


def test_strided_window_takes_the_numpy_count() -> None:
    # The compiled count reads C-contiguous rows; a column slice goes through numpy.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 6))[:, ::2]
    edges = (np.array([-0.5, 0.5]),) * 3
    assert_same_counts(
        drift._bin_counts(edges, X, 64.0), numpy_counts(edges, np.ascontiguousarray(X))
    )


def test_psi_rejects_bad_thread_count() -> None:
    bins = ReferenceBins(
        edges=(np.array([0.0]),),
        reference_fractions=(np.array([0.5, 0.5]),),
        epsilon=1e-4,
        strategy="quantile",
    )
    with pytest.raises(ValueError, match="n_threads"):
        drift.psi(bins, np.zeros((4, 1)), n_threads=0)


def test_warm_up_compiles_both_kernels_for_both_dtypes() -> None:
    assert _psi.warm_up() is True
    for kernel in (_psi._count_linear, _psi._count_search):
        dtypes = {sig[0].dtype.name for sig in kernel.signatures}
        assert {"float32", "float64"} <= dtypes


def test_kernels_compile_where_numba_cannot_write_its_cache() -> None:
    """A read-only install under a sandbox (systemd's ProtectSystem and ProtectHome) leaves
    numba no directory for its cache; numba then raises at import. The kernels compile
    uncached instead, with one warning that names the fix."""
    script = (
        "from numba.core import caching\n"
        "caching.CacheImpl._locator_classes = []  # no directory numba may write\n"
        "import numpy as np\n"
        "from monitor.core import _kmeans_numba, _psi\n"
        "counts = _psi.bin_counts_compiled((np.array([0.0]),), np.array([[-1.0], [1.0], [2.0]]))\n"
        "assert [c.tolist() for c in counts] == [[1, 2]], counts\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("set NUMBA_CACHE_DIR to a writable directory") == 1, done.stderr
    assert "Traceback" not in done.stderr
