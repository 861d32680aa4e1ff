"""Labels served over HTTP equal scikit-learn's KMeans.predict of the live model, and
the monitor's own scoring of the same rows; distances and outlier flags follow."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import numpy as np
import pytest

from monitor.config import Settings
from monitor.core.outliers import outlier_rate
from monitor.pipeline.scoring import prepare, score
from monitor.ports import SnapshotStore
from monitor.serving import RESPONSE_DTYPE
from monitor.store.memory import MemorySnapshotStore
from tests.serving._support import NPY, Fitted, Running, fitted, npy, post, post_json, settings

Serve = Callable[[Settings, SnapshotStore], Running]

# Distances: the monitor computes ||x||^2 - 2 x.c + ||c||^2 (clipped at 0) and
# scikit-learn its own expansion; both in float64 on values of order 1, so they agree
# to about 1e-12 relative; 1e-9 leaves room and still catches any real difference.
RTOL = 1e-9


def rows_to_label(fit: Fitted, n: int, seed: int) -> np.ndarray:
    """Rows near the training data and a few far from it (outliers)."""
    rng = np.random.default_rng(seed)
    X = fit.X[rng.integers(0, fit.X.shape[0], n)] * rng.uniform(0.9, 1.1, size=(n, fit.X.shape[1]))
    X[:5] *= 4.0  # far from every centre
    return X


@pytest.fixture(params=["euclidean", "cosine"])
def served(request: pytest.FixtureRequest, serve_labels: Serve) -> tuple[Fitted, Running]:
    fit = fitted(metric=request.param)
    store = MemorySnapshotStore()
    store.save(fit.snapshot, state="live")
    return fit, serve_labels(settings(), store)


def test_json_labels_equal_kmeans_predict(served: tuple[Fitted, Running]) -> None:
    fit, running = served
    X = rows_to_label(fit, 300, seed=1)
    status, headers, body = post_json(running, {"rows": X.tolist()})
    assert status == 200, body
    assert (body["model"], body["version"], body["variant"]) == ("shop", 1, "live")
    assert (headers["x-kmeans-model-version"], headers["x-kmeans-variant"]) == ("1", "live")
    np.testing.assert_array_equal(body["labels"], fit.predict(X))
    np.testing.assert_allclose(body["distances"], fit.distances(X), rtol=RTOL)
    thresholds = fit.snapshot.outliers.thresholds[fit.predict(X)]
    np.testing.assert_array_equal(body["outliers"], fit.distances(X) > thresholds)
    assert any(body["outliers"]) and not all(body["outliers"])  # both kinds were served


def test_npy_labels_equal_kmeans_predict(served: tuple[Fitted, Running]) -> None:
    fit, running = served
    X = rows_to_label(fit, 500, seed=2)
    status, headers, body = post(running, npy(X), NPY, headers={"Accept": NPY})
    assert status == 200 and headers["content-type"] == NPY
    answer = np.load(io.BytesIO(body), allow_pickle=False)
    assert answer.dtype == RESPONSE_DTYPE and answer.shape == (500,)
    np.testing.assert_array_equal(answer["label"], fit.predict(X))
    np.testing.assert_allclose(answer["distance"], fit.distances(X), rtol=RTOL)


def test_labels_equal_the_monitors_own_scoring(served: tuple[Fitted, Running]) -> None:
    """What is served is what the monitor measures on a window: same labels, same outliers."""
    fit, running = served
    X = rows_to_label(fit, 400, seed=3)
    view = score(
        prepare(X, fit.snapshot.scaler, fit.snapshot.metric),
        fit.snapshot,
        seed=0,
        silhouette_sample=100,
        working_memory_mib=16,
    )
    status, _, body = post_json(running, {"rows": X.tolist()})
    assert status == 200
    np.testing.assert_array_equal(body["labels"], view.labels)
    np.testing.assert_array_equal(body["distances"], np.sqrt(view.sq_distances))
    rate = outlier_rate(fit.snapshot.outliers, view.sq_distances, view.labels)
    assert sum(body["outliers"]) == rate.n_outliers


@pytest.mark.parametrize(
    "convert",
    [
        lambda X: X.astype(np.float32),
        lambda X: X.astype(">f8"),  # big-endian
        lambda X: np.asfortranarray(X),
        lambda X: np.round(X).astype(np.int64),
        lambda X: np.round(X).astype(np.uint16),
    ],
    ids=["float32", "big-endian", "fortran-order", "int64", "uint16"],
)
def test_npy_of_any_numeric_dtype_and_order_is_read_as_its_values(
    served: tuple[Fitted, Running], convert: Callable[[np.ndarray], np.ndarray]
) -> None:
    fit, running = served
    X = convert(np.abs(rows_to_label(fit, 50, seed=4)))
    status, _, body = post(running, npy(X), NPY, headers={"Accept": NPY})
    assert status == 200, body
    answer = np.load(io.BytesIO(body), allow_pickle=False)
    np.testing.assert_array_equal(answer["label"], fit.predict(X.astype(np.float64)))


def test_rows_as_objects_are_read_by_feature_name(served: tuple[Fitted, Running]) -> None:
    fit, running = served
    X = rows_to_label(fit, 20, seed=5)
    rows = [{"f2": r[2], "f0": r[0], "f1": r[1]} for r in X.tolist()]  # any key order
    status, _, body = post_json(running, {"rows": rows, "features": ["f0", "f1", "f2"]})
    assert status == 200
    np.testing.assert_array_equal(body["labels"], fit.predict(X))


def test_batches_answered_together_are_each_answered_with_their_own_rows(
    serve_labels: Serve,
) -> None:
    """Requests that arrive together share one assignment; each gets its own rows back."""
    import concurrent.futures

    fit = fitted()
    store = MemorySnapshotStore()
    store.save(fit.snapshot, state="live")
    running = serve_labels(settings(), store)
    batches = [rows_to_label(fit, n, seed=10 + n) for n in (1, 2, 3, 7, 1, 50, 1, 4) * 4]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda X: post_json(running, {"rows": X.tolist()}), batches))
    for X, (status, _, body) in zip(batches, answers, strict=True):
        assert status == 200
        np.testing.assert_array_equal(body["labels"], fit.predict(X))


def test_nan_policy_null_answers_the_other_rows(serve_labels: Serve) -> None:
    fit = fitted()
    store = MemorySnapshotStore()
    store.save(fit.snapshot, state="live")
    running = serve_labels(settings({"shop": {"nan_policy": "null"}}), store)
    X = rows_to_label(fit, 6, seed=6)
    rows: list[list[object]] = X.tolist()
    rows[1][2], rows[4][0] = None, "INFINITY"  # JSON has no infinity; Python's reader does
    body_text = json.dumps({"rows": rows}).replace('"INFINITY"', "Infinity")
    status, _, answer = post(running, body_text.encode())
    assert status == 200
    doc = json.loads(answer)
    expected = fit.predict(np.delete(X, [1, 4], axis=0)).tolist()
    assert [x for i, x in enumerate(doc["labels"]) if i not in (1, 4)] == expected
    assert [doc[f][i] for f in ("labels", "distances", "outliers") for i in (1, 4)] == [None] * 6
    # NPY: the same rows, label -1 and distance NaN where a row was left out.
    X[1, 2], X[4, 0] = np.nan, np.inf
    status, _, body = post(running, npy(X), NPY, headers={"Accept": NPY})
    out = np.load(io.BytesIO(body), allow_pickle=False)
    assert out["label"].tolist() == [expected[0], -1, *expected[1:3], -1, expected[3]]
    assert np.isnan(out["distance"][[1, 4]]).all() and not out["outlier"][[1, 4]].any()
