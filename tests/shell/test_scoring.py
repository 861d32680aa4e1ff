"""The scoring step's buffer and threads: the same SLIs, less memory churn."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

from monitor.pipeline import ScaleBuffer
from monitor.pipeline.scoring import prepare
from monitor.records import Scaler
from tests.fakes import blobs
from tests.shell.test_pipeline import CENTERS, Harness, model, shifted, steady


def sized(start: float, end: float) -> np.ndarray:
    """Windows of changing size: the buffer grows, then lends a smaller view of itself."""
    n = (1200, 700, 1500, 900)[int(start // 60) % 4]
    return blobs(n, CENTERS, seed=int(start) % 1000)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_prepare_into_a_buffer_equals_a_fresh_array(metric: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)).astype(np.float32)
    X[3] = 0.0  # a row of norm 0 after centring stays 0 under cosine
    scaler = Scaler("standard", np.zeros(3), np.array([2.0, 0.5, 1.0]))
    out = np.full_like(X, np.nan)
    got = prepare(X, scaler, metric, out=out)
    assert got is out
    np.testing.assert_array_equal(got, prepare(X, scaler, metric))
    assert not np.isnan(got).any()


def test_buffer_grows_reuses_and_releases() -> None:
    buf = ScaleBuffer()
    with buf.rows((100, 4), np.dtype(np.float32)) as a:
        assert a is not None and a.shape == (100, 4) and a.flags.c_contiguous
        a[:] = 1.0
    with buf.rows((60, 4), np.dtype(np.float32)) as b:
        assert b is not None and b.shape == (60, 4)
        assert np.shares_memory(a, b)  # a smaller window reuses the memory
    with buf.rows((200, 4), np.dtype(np.float32)) as c:
        assert c is not None and not np.shares_memory(a, c)  # a larger one grows it
    with buf.rows((200, 4), np.dtype(np.float64)) as e:
        assert e is not None and e.dtype == np.float64  # another dtype: new memory
    buf.release()
    with buf.rows((10, 4), np.dtype(np.float64)) as f:
        assert f is not None and not np.shares_memory(e, f)


def test_a_buffer_in_use_is_not_lent_twice() -> None:
    buf = ScaleBuffer()
    with (
        buf.rows((10, 2), np.dtype(np.float64)) as a,
        buf.rows((10, 2), np.dtype(np.float64)) as b,
    ):
        assert a is not None and b is None
    with buf.rows((10, 2), np.dtype(np.float64)) as c:
        assert c is not None  # free again once the first block ended


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_threads_and_a_kept_buffer_change_no_result(metric: str) -> None:
    # The same runs, once plainly and once on two threads with one buffer kept across
    # them (windows of changing size, a drift that retrains): every SLI, every feature's
    # PSI and every snapshot must be equal, not close. Fixed thresholds: calibration
    # takes no threads nor buffer, and took seconds at every retrain.
    settings = model(metric=metric, thresholds={"mode": "fixed"})
    plain, fast = Harness(settings), Harness(settings)
    buffer = ScaleBuffer()
    kept: dict[str, Any] = {"n_threads": 2, "buffer": buffer}
    for make in (sized, sized, sized, shifted, steady, sized):
        a, snap_a = plain.run(make)
        b, snap_b = fast.run(make, **kept)
        assert a.slis == b.slis
        assert a.feature_psi == b.feature_psi
        assert a.centroid_drift == b.centroid_drift
        assert a.decision == b.decision
        np.testing.assert_array_equal(snap_a.centers, snap_b.centers)
    assert plain.store.versions("m") == fast.store.versions("m")
    with buffer.rows((1, 3), np.dtype(np.float64)) as free:
        assert free is not None  # every run gave it back


def test_the_run_threads_and_buffer_reach_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.core import drift, quality
    from monitor.pipeline import scoring, train

    # The module, not the function of the same name that monitor.pipeline exports.
    measure = importlib.import_module("monitor.pipeline.measure")

    seen: dict[str, list[Any]] = {}

    def spy(owner: Any, name: str, key: str) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            seen.setdefault(name, []).append(kwargs.get(key))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)

    spy(scoring, "assign_two_nearest", "n_threads")
    spy(quality, "silhouette_sampled", "n_threads")
    spy(drift, "psi", "n_threads")
    spy(train, "fit_kmeans", "n_threads")
    spy(measure, "prepare", "out")
    h = Harness(model())
    h.run(steady)
    seen.clear()
    # A steady window: a retrain would also score its new model, which takes no threads.
    ev, _ = h.run(steady, n_threads=3, buffer=ScaleBuffer())
    assert ev.decision == "kept: no drift"
    for name in ("assign_two_nearest", "silhouette_sampled", "psi", "fit_kmeans"):
        assert seen[name] and set(seen[name]) == {3}, name
    assert len(seen["prepare"]) == 1 and seen["prepare"][0] is not None
