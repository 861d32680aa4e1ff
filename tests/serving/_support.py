"""Shared pieces of the serving tests: a live model fitted by scikit-learn, settings,
a running label server, and plain HTTP requests."""

from __future__ import annotations

import http.client
import io
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans as SkKMeans

from monitor.bootstrap import ServingApp
from monitor.config import Settings, parse
from monitor.core.outliers import fit_outlier_thresholds
from monitor.core.scaling import fit_scaler, transform
from monitor.daemon import LabelServer
from monitor.records import Snapshot
from tests.fakes import FAKE_SOURCES
from tests.store._store_factories import make_snapshot

JSON = "application/json"
NPY = "application/x-npy"


@dataclass(frozen=True, eq=False)
class Fitted:
    """A snapshot and the scikit-learn model whose centres it holds."""

    snapshot: Snapshot
    sklearn: SkKMeans
    X: np.ndarray  # the raw rows it was fitted on

    def scaled(self, rows: np.ndarray) -> np.ndarray:
        Xs = transform(self.snapshot.scaler, np.asarray(rows, dtype=np.float64))
        if self.snapshot.metric == "cosine":
            Xs = Xs / np.linalg.norm(Xs, axis=1, keepdims=True)
        return Xs

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """scikit-learn's KMeans.predict of the live model on raw ``rows``."""
        return self.sklearn.predict(self.scaled(rows))

    def distances(self, rows: np.ndarray) -> np.ndarray:
        """scikit-learn's distance from each row to its nearest centre (scaled units)."""
        return self.sklearn.transform(self.scaled(rows)).min(axis=1)


def fitted(
    model: str = "shop", *, k: int = 4, d: int = 3, seed: int = 0, metric: str = "euclidean"
) -> Fitted:
    """Blobs in raw units (features of very different scales), scaled by a standard
    scaler, clustered by scikit-learn; the snapshot takes its centres and outlier
    thresholds at the 90% quantile of each cluster."""
    rng = np.random.default_rng(seed)
    units = 10.0 ** np.arange(d)  # feature j is of the order of 10**j
    centres = rng.normal(scale=4.0, size=(k, d))
    X = (centres[np.arange(600) % k] + rng.normal(size=(600, d))) * units + 50 * units
    scaler = fit_scaler(X)
    Xs = transform(scaler, X)
    if metric == "cosine":
        Xs = Xs / np.linalg.norm(Xs, axis=1, keepdims=True)
    km = SkKMeans(n_clusters=k, n_init=3, random_state=seed).fit(Xs)
    if metric == "cosine":  # the monitor's cosine centres are unit vectors
        km.cluster_centers_ = km.cluster_centers_ / np.linalg.norm(
            km.cluster_centers_, axis=1, keepdims=True
        )
    labels = km.predict(Xs)
    sq = ((Xs - km.cluster_centers_[labels]) ** 2).sum(axis=1)
    snapshot = make_snapshot(
        model,
        k=k,
        d=d,
        seed=seed,
        metric=metric,
        centers=km.cluster_centers_.copy(),
        scaler=scaler,
        outliers=fit_outlier_thresholds(sq, labels, k, quantile=0.9),
    )
    return Fitted(snapshot, km, X)


def settings(
    models: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    serving: Mapping[str, Any] | None = None,
    d: int = 3,
) -> Settings:
    """Settings with the given models (name -> their `serving:` section), features f0.."""
    models = {"shop": {}} if models is None else models
    raw = {
        "serving": {"listen": "127.0.0.1:0", "refresh": "0.05s", **(serving or {})},
        "models": [
            {
                "name": name,
                "features": [f"f{j}" for j in range(d)],
                "k": 2,
                "window": 60,
                "schedule": {"interval": 60},
                "source": {"kind": "fake"},
                "serving": dict(policy),
            }
            for name, policy in models.items()
        ],
    }
    return parse(raw, sources=FAKE_SOURCES)


@dataclass
class Running:
    """A started label server."""

    server: LabelServer
    app: ServingApp

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def address(self) -> tuple[str, int]:
        return self.server.http.address


def npy(rows: Any) -> bytes:
    stream = io.BytesIO()
    np.save(stream, np.asarray(rows), allow_pickle=False)
    return stream.getvalue()


def post(
    running: Running,
    body: bytes,
    content_type: str | None = JSON,
    *,
    model: str = "shop",
    headers: Mapping[str, str | bytes] | None = None,
    path: str | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection: (status, lower-case headers, body)."""
    host, port = running.address
    conn = http.client.HTTPConnection(host, port, timeout=15)
    sent: dict[str, str | bytes] = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    try:
        conn.request(method, path or f"/v1/models/{model}/labels", body=body, headers=sent)
        response = conn.getresponse()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        conn.close()


def post_json(running: Running, doc: Any, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    status, headers, body = post(running, json.dumps(doc).encode(), JSON, **kwargs)
    return status, headers, json.loads(body)


def error_of(body: bytes) -> tuple[str, str]:
    """(code, message) of an API error body."""
    error = json.loads(body)["error"]
    return error["code"], error["message"]


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``condition`` until it holds; generous, since it bounds a hang, not a speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
