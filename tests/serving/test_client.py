"""The Python client: arrays as NPY, mappings as JSON, errors as LabelsError, a closed
keep-alive connection reopened, basic auth; and the parameters it fetches label rows
exactly as the server does (what the key-value cache example of docs/serving.md does)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import bcrypt
import numpy as np
import pytest

from monitor.bootstrap import build_serving_app
from monitor.config import Settings
from monitor.http import HttpServer, Limits, Routes, WebConfig
from monitor.ports import SnapshotStore
from monitor.serving.client import LabelsClient, LabelsError, _split_url
from monitor.store.memory import MemorySnapshotStore
from tests.serving._support import Running, fitted, settings

Serve = Callable[[Settings, SnapshotStore], Running]


@pytest.fixture
def running(serve_labels: Serve) -> Running:
    store = MemorySnapshotStore()
    store.save(fitted().snapshot, state="live")
    return serve_labels(settings(serving={"expose_parameters": True}), store)


def test_arrays_and_mappings_get_the_same_labels(running: Running) -> None:
    fit = fitted()
    X = fit.X[:25]
    with LabelsClient(running.url) as client:
        from_array = client.labels("shop", X)
        rows = [{"f0": a, "f1": b, "f2": c} for a, b, c in X.tolist()]
        from_rows = client.labels("shop", rows)
    for answer in (from_array, from_rows):
        assert (answer.model, answer.version, answer.variant) == ("shop", 1, "live")
        np.testing.assert_array_equal(answer.labels, fit.predict(X))
        assert answer.labels.dtype == np.int64 and answer.outliers.dtype == bool
    np.testing.assert_array_equal(from_array.distances, from_rows.distances)


def test_errors_are_labels_errors_with_the_apis_code(running: Running) -> None:
    with LabelsClient(running.url) as client:
        with pytest.raises(LabelsError) as info:
            client.labels("shop", np.ones((2, 5)))
        assert (info.value.status, info.value.code) == (400, "bad_npy")
        with pytest.raises(LabelsError) as info:
            client.labels("nope", np.ones((2, 3)))
        assert (info.value.status, info.value.code) == (404, "unknown_model")
        assert client.labels("shop", np.ones((2, 3))).version == 1  # the connection goes on


@pytest.mark.parametrize("rows", [[], (), np.array([]), np.ones((0, 3))], ids=repr)
def test_no_rows_is_the_servers_empty_batch_error(running: Running, rows: Any) -> None:
    """``labels(model, [])`` said "NPY shape (0,)" to a caller who sent no NPY (helper-143)."""
    with LabelsClient(running.url) as client, pytest.raises(LabelsError) as info:
        client.labels("shop", rows)
    assert (info.value.status, info.value.code, info.value.message) == (
        400,
        "bad_rows",
        "'rows' is empty: send at least one row",
    )


def test_models_and_parameters(running: Running) -> None:
    with LabelsClient(running.url) as client:
        (model,) = client.models()
        params = client.parameters("shop")
    assert (model["model"], model["live_version"], model["features"]) == (
        "shop",
        1,
        ["f0", "f1", "f2"],
    )
    assert params["canary"] is None and params["live"]["version"] == 1
    assert np.array(params["live"]["centers"]).shape == (4, 3)


def test_the_parameters_label_rows_as_the_server_does(running: Running) -> None:
    """docs/serving.md's cache example: centres and scaler from the API, labels offline."""
    X = fitted().X[::3]
    with LabelsClient(running.url) as client:
        live = client.parameters("shop")["live"]
        served = client.labels("shop", X)
    scaled = (X - np.array(live["scaler"]["center"])) / np.array(live["scaler"]["scale"])
    centers = np.array(live["centers"])
    sq = ((scaled[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(sq.argmin(axis=1), served.labels)
    np.testing.assert_allclose(np.sqrt(sq.min(axis=1)), served.distances, rtol=1e-9)


def test_parameters_stay_private_unless_exposed(serve_labels: Serve) -> None:
    store = MemorySnapshotStore()
    store.save(fitted().snapshot, state="live")
    running = serve_labels(settings(), store)
    with LabelsClient(running.url) as client, pytest.raises(LabelsError) as info:
        client.parameters("shop")
    assert (info.value.status, info.value.code) == (404, "not_exposed")


def test_a_connection_the_server_closed_is_reopened() -> None:
    store = MemorySnapshotStore()
    store.save(fitted().snapshot, state="live")
    app = build_serving_app(settings(), store=store)
    app.serving.catalog.refresh()  # as a label server does once it listens
    # A server that closes connections after 2 requests, and idle ones after 0.2 s.
    http = HttpServer(
        "127.0.0.1",
        0,
        Routes(
            registry=app.registry,
            api=app.serving.api,
        ),
        limits=Limits(max_requests_per_connection=2, idle_timeout=0.2),
    )
    http.start()
    try:
        host, port = http.address
        with LabelsClient(f"http://{host}:{port}") as client:
            versions = [client.labels("shop", np.ones((1, 3))).version for _ in range(7)]
            time.sleep(0.5)  # the server closes the idle connection meanwhile
            versions.append(client.labels("shop", np.ones((1, 3))).version)
        assert versions == [1] * 8
    finally:
        http.stop()


@pytest.fixture
def slow_then_fast() -> Iterator[str]:
    """A server that never answers its first connection and answers ``[]`` on the next."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        with listener:
            for n in range(2):
                conn, _ = listener.accept()
                conn.recv(65536)
                if n == 0:
                    held.append(conn)  # silent until the test ends
                    continue
                with conn:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield "http://{}:{}".format(*listener.getsockname())
    for conn in held:
        conn.close()
    thread.join(5)


def test_a_timeout_is_a_labels_error_and_the_client_goes_on(slow_then_fast: str) -> None:
    with LabelsClient(slow_then_fast, timeout=0.3) as client:
        with pytest.raises(LabelsError) as info:
            client.models()
        assert (info.value.status, info.value.code) == (0, "timeout")
        assert client.models() == []  # a new connection, not "CannotSendRequest"


def test_no_server_is_a_labels_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        url = "http://{}:{}".format(*s.getsockname())
    with LabelsClient(url) as client, pytest.raises(LabelsError) as info:
        client.models()
    assert (info.value.status, info.value.code) == (0, "unreachable")


def test_a_key_beyond_latin_1_is_sent(running: Running) -> None:
    with LabelsClient(running.url) as client:
        assert client.labels("shop", np.ones((1, 3)), key="用户-17").version == 1
        assert client.labels("shop", np.ones((1, 3))).version == 1


def test_basic_auth() -> None:
    store = MemorySnapshotStore()
    store.save(fitted().snapshot, state="live")
    app = build_serving_app(settings(), store=store)
    app.serving.catalog.refresh()  # as a label server does once it listens
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    http = HttpServer(
        "127.0.0.1",
        0,
        Routes(registry=app.registry, api=app.serving.api),
        web=WebConfig(users={"reader": hashed}),
    )
    http.start()
    try:
        url = "http://{}:{}".format(*http.address)
        with LabelsClient(url, username="reader", password="pw") as client:
            assert client.labels("shop", np.ones((1, 3))).version == 1
        with (
            LabelsClient(url, username="reader", password="no") as client,
            pytest.raises(LabelsError) as info,
        ):
            client.labels("shop", np.ones((1, 3)))
        assert info.value.status == 401
    finally:
        http.stop()


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("http://127.0.0.1:9320", ("http", "127.0.0.1", 9320, "")),
        ("https://labels.example", ("https", "labels.example", 443, "")),
        ("http://[::1]:9320/", ("http", "::1", 9320, "")),
        ("http://gateway:8080/kmeans/", ("http", "gateway", 8080, "/kmeans")),
    ],
)
def test_urls(url: str, parts: tuple[str, str, int, str]) -> None:
    assert _split_url(url) == parts


@pytest.mark.parametrize("url", ["127.0.0.1:9320", "ftp://host", "http://:80"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        _split_url(url)
