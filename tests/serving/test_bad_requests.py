"""Every bad request gets a 4xx with a JSON error: a stable code and one sentence that
says what was wrong; it is counted under its status code, and the server goes on."""

from __future__ import annotations

import gzip
import io
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.bootstrap import build_serving
from monitor.config import Settings
from monitor.core.kmeans import assign_labels
from monitor.exporter import encode
from monitor.http import Request, Response
from monitor.ports import SnapshotStore
from monitor.records import Scaler
from monitor.store.memory import MemorySnapshotStore
from tests.serving._support import (
    JSON,
    NPY,
    Running,
    error_of,
    fitted,
    npy,
    post,
    settings,
    wait_until,
)

Serve = Callable[[Settings, SnapshotStore], Running]
GOOD = json.dumps({"rows": [[1.0, 20.0, 300.0]]}).encode()


@dataclass(frozen=True)
class Case:
    """A bad request and what it must get: status, error code, words of the message."""

    id: str
    body: bytes
    ctype: str | None
    headers: dict[str, str]
    status: int
    code: str
    words: str


def _npy_header(descr: str, shape: str) -> bytes:
    """A hand-written NPY 1.0 header (a body whose data may not match it)."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


CASES = [
    Case("not json", b"{rows: 1}", JSON, {}, 400, "bad_json", "not valid JSON"),
    Case("not utf-8", b'{"rows": "\xff"}', JSON, {}, 400, "bad_json", "not valid JSON"),
    Case("a list", b"[[1, 2, 3]]", JSON, {}, 400, "bad_json", "JSON object with 'rows'"),
    Case("deep", b"[" * 10_000, JSON, {}, 400, "bad_json", "not valid JSON"),
    Case("unknown field", b'{"rows": [[1,2,3]], "row": 1}', JSON, {}, 400, "bad_json", "'row'"),
    Case(
        "unknown field of 5 kB",  # named by its ends, not echoed whole into the answer
        b'{"rows": [[1,2,3]], "' + b"x" * 5_000 + b'": 1}',
        JSON,
        {},
        400,
        "bad_json",
        "xxx' (5000 characters) (valid: ",
    ),
    Case(
        "field twice",
        b'{"rows": [[1,2,3]], "rows": [[4,5,6]]}',
        JSON,
        {},
        400,
        "bad_json",
        "key 'rows' appears more than once in an object",
    ),
    Case(
        "feature twice",
        b'{"rows": [{"f0": 1, "f1": 2, "f2": 3, "f2": 4}]}',
        JSON,
        {},
        400,
        "bad_json",
        "key 'f2' appears more than once",
    ),
    Case("no rows", b'{"key": "a"}', JSON, {}, 400, "bad_rows", "list of rows"),
    Case("empty rows", b'{"rows": []}', JSON, {}, 400, "bad_rows", "at least one row"),
    Case(
        "short row", b'{"rows": [[1,2,3],[1,2]]}', JSON, {}, 400, "bad_rows", "row 1 has 2 values"
    ),
    Case("a string", b'{"rows": [[1,"2",3]]}', JSON, {}, 400, "bad_rows", "feature 'f1'"),
    Case("a boolean", b'{"rows": [[1,2,true]]}', JSON, {}, 400, "bad_rows", "feature 'f2'"),
    Case("a nested list", b'{"rows": [[1,[2],3]]}', JSON, {}, 400, "bad_rows", "feature 'f1'"),
    Case(  # an integer literal: named where it is, as 1e400 is (helper-82)
        "huge number",
        b'{"rows": [[1,2,3],[1,2,1' + b"0" * 400 + b"]]}",
        JSON,
        {},
        400,
        "bad_rows",
        "row 1, feature 'f2': a number too large for a 64-bit float",
    ),
    # Python's reader gives these infinity, which would read as a missing value.
    Case(
        "exponent overflow",
        b'{"rows": [[1,2,1e400]]}',
        JSON,
        {},
        400,
        "bad_rows",
        "feature 'f2': a number too large",
    ),
    Case(
        "negative overflow", b'{"rows": [[-1.5E+999,2,3]]}', JSON, {}, 400, "bad_rows", "too large"
    ),
    Case(
        "long fraction overflow",
        b'{"rows": [[1,2,1' + b"0" * 400 + b".5]]}",
        JSON,
        {},
        400,
        "bad_rows",
        "too large",
    ),
    Case(  # beyond Python's limit on digits, it named no row or feature
        "number of 5000 digits",
        b'{"rows": [[1,2,3],[1,-' + b"9" * 5000 + b",3]]}",
        JSON,
        {},
        400,
        "bad_rows",
        "row 1, feature 'f1': a number too large for a 64-bit float",
    ),
    Case(
        "mixed rows",
        b'{"rows": [[1,2,3], {"f0": 1}]}',
        JSON,
        {},
        400,
        "bad_rows",
        "list of numbers",
    ),
    Case(
        "object rows",
        b'{"rows": [{"f0": 1, "f1": 2, "x": 3}]}',
        JSON,
        {},
        400,
        "schema",
        "missing ['f2'], unexpected ['x']",
    ),
    Case(
        "features",
        b'{"rows": [[1,2,3]], "features": ["f0","f2","f1"]}',
        JSON,
        {},
        400,
        "schema",
        "out of order",
    ),
    Case(
        "features missing",
        b'{"rows": [[1,2,3]], "features": ["f0","f1"]}',
        JSON,
        {},
        400,
        "schema",
        "missing ['f2']",
    ),
    Case(
        "nan",
        b'{"rows": [[1,2,3],[1,NaN,3]]}',
        JSON,
        {},
        400,
        "invalid_values",
        "row 1, feature 'f1' has no value (null or NaN); rows must be finite",
    ),
    # exB: "is nan", where the client sent null.
    Case("null", b'{"rows": [[1,2,null]]}', JSON, {}, 400, "invalid_values", "(null or NaN)"),
    Case(
        "infinite",
        b'{"rows": [[1,2,-Infinity]]}',
        JSON,
        {},
        400,
        "invalid_values",
        "row 0, feature 'f2' is -Infinity; rows must be finite",
    ),
    # Finite, but the squared distance overflows: an infinite distance JSON cannot carry.
    Case(
        "huge value",
        b'{"rows": [[1,2,3],[1,2,1e200]]}',
        JSON,
        {},
        400,
        "invalid_values",
        "values overflow squared distances in the model's scaled units: 1 of 2 rows, "
        "e.g. f2 = 1e+200",
    ),
    Case(
        "npy huge value",
        npy(np.array([[1.0, 2.0, -1e300]])),
        NPY,
        {"Accept": NPY},
        400,
        "invalid_values",
        "f2 = -1e+300",
    ),
    Case(
        "too many rows",
        json.dumps({"rows": [[1, 2, 3]] * 11}).encode(),
        JSON,
        {},
        413,
        "too_many_rows",
        "at most 10",
    ),
    Case(
        "bad key", b'{"rows": [[1,2,3]], "key": {"a": 1}}', JSON, {}, 400, "bad_key", "routing key"
    ),
    # helper-143: the message said "string" while integers are keys too (docs/serving.md).
    Case(
        "float key",
        b'{"rows": [[1,2,3]], "key": 5.5}',
        JSON,
        {},
        400,
        "bad_key",
        "the routing key must be a non-empty string of at most 256 chars or an integer",
    ),
    Case("long key", GOOD, JSON, {"X-Kmeans-Key": "k" * 300}, 400, "bad_key", "at most 256"),
    Case("media type", GOOD, "text/csv", {}, 415, "unsupported_media_type", "'text/csv'"),
    # exB: "got 'none'", as if the client had sent the word.
    Case(
        "no media type",
        GOOD,
        None,
        {},
        415,
        "unsupported_media_type",
        "Content-Type must be application/json or application/x-npy; the request has none",
    ),
    Case(
        "gzip body",
        gzip.compress(GOOD),
        JSON,
        {"Content-Encoding": "gzip"},
        415,
        "unsupported_encoding",
        "Content-Encoding 'gzip' is not accepted: send the body uncompressed",
    ),
    Case("accept", GOOD, JSON, {"Accept": "text/html"}, 406, "not_acceptable", "Accept: text/html"),
    Case(
        "npy refused by q=0",
        GOOD,
        JSON,
        {"Accept": "application/x-npy;q=0"},
        406,
        "not_acceptable",
        "",
    ),
    Case("empty body", b"", JSON, {}, 400, "bad_rows", "no body"),
    Case("not npy", b"PK\x03\x04 a zip", NPY, {}, 400, "bad_npy", "not an NPY array"),
    Case("npy 3.0", b"\x93NUMPY\x03\x00" + bytes(100), NPY, {}, 400, "bad_npy", "version 3.0"),
    Case(
        "npy pickles", _npy_header("|O", "(1, 3)") + bytes(24), NPY, {}, 400, "bad_npy", "dtype |O"
    ),
    Case("npy strings", npy(np.array([["a", "b", "c"]])), NPY, {}, 400, "bad_npy", "dtype <U1"),
    Case("npy complex", npy(np.ones((1, 3), dtype=complex)), NPY, {}, 400, "bad_npy", "dtype <c16"),
    Case("npy records", npy(np.zeros(1, dtype=[("a", "<f8")])), NPY, {}, 400, "bad_npy", "dtype"),
    Case("npy 1-D", npy(np.ones(3)), NPY, {}, 400, "bad_npy", "shape (3,)"),
    Case("npy columns", npy(np.ones((2, 4))), NPY, {}, 400, "bad_npy", "expected (rows, 3)"),
    Case(
        "npy truncated",
        npy(np.ones((4, 3)))[:-8],
        NPY,
        {},
        400,
        "bad_npy",
        "88 bytes; its header announces 96",
    ),
    Case("npy trailing", npy(np.ones((4, 3))) + b"x", NPY, {}, 400, "bad_npy", "97 bytes"),
    # exB: "malformed node or string on line 1: <ast.Call object at 0x7f8add0bdd20>".
    Case(
        "npy code header",
        _npy_header("<f8", "(1, 3)").replace(b"{'descr'", b"f(){'desc", 1),
        NPY,
        {},
        400,
        "bad_npy",
        "the NPY header is not the Python dict literal numpy.save writes",
    ),
    Case(  # a header cut inside its dict: an error of Python's tokenizer
        "npy open header",
        _npy_header("<f8", "(1, 3)").replace(b"}", b" ", 1),
        NPY,
        {},
        400,
        "bad_npy",
        "the NPY header is not the Python dict literal numpy.save writes",
    ),
    # exB: "NPY data is 0 bytes; its header announces -40".
    Case(
        "npy negative rows",
        _npy_header("<f8", "(-5, 3)"),
        NPY,
        {},
        400,
        "bad_npy",
        "NPY shape (-5, 3): the row count is negative; expected (rows, 3)",
    ),
    Case(
        "npy lies",
        _npy_header("<f8", "(1000000, 3)") + bytes(24),
        NPY,
        {},
        413,
        "too_many_rows",
        "1000000 rows",
    ),
    Case("npy no rows", npy(np.ones((0, 3))), NPY, {}, 400, "bad_rows", "at least one row"),
]


@pytest.fixture
def running(serve_labels: Serve) -> Running:
    store = MemorySnapshotStore()
    store.save(fitted().snapshot, state="live")
    return serve_labels(settings({"shop": {"max_rows": 10}}), store)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request_is_a_4xx_with_a_one_line_reason(running: Running, case: Case) -> None:
    got, got_headers, answer = post(running, case.body, case.ctype, headers=case.headers)
    assert got == case.status, answer
    assert got_headers["content-type"] == JSON
    code, message = error_of(answer)
    assert code == case.code
    assert case.words in message and "\n" not in message and "Traceback" not in message
    # The server goes on answering good requests.
    assert post(running, GOOD)[0] == 200


def _count(running: Running, code: str, variant: str = "live") -> float:
    text = encode(running.app.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "kmeans_serving_requests_total" and sample.labels == {
                "model": "shop",
                "variant": variant,
                "code": code,
            }:
                return sample.value
    raise AssertionError(f"no kmeans_serving_requests_total series for code {code}")


def test_bad_requests_are_counted_by_status_code(running: Running) -> None:
    for case in CASES:
        post(running, case.body, case.ctype, headers=case.headers)
    post(running, GOOD)
    expected: dict[str, int] = {}
    for case in CASES:
        expected[str(case.status)] = expected.get(str(case.status), 0) + 1
    for code, n in expected.items():
        assert _count(running, code) == n, code
    assert _count(running, "200") == 1


def _request(body: bytes, ctype: str = JSON) -> Request:
    """A labels request for shop as the server hands it to the API; answers in ``ctype``."""
    headers = {"content-type": ctype, "accept": ctype, "content-length": str(len(body))}
    return Request("POST", "/v1/models/shop/labels", "HTTP/1.1", headers, body)


def _statuses(answers: list[Response]) -> list[int]:
    for answer in answers:  # errors are the API's JSON, whatever was asked for
        assert answer.status == 200 or answer.content_type == JSON, answer
    return [answer.status for answer in answers]


def test_a_bad_request_fails_none_of_those_answered_with_it(running: Running) -> None:
    """Requests that arrive together are labelled in one call per model: a row that
    overflows is its own request's 400, and the others are labelled."""
    batch = [
        _request(GOOD),
        _request(b'{"rows": [[1e200, 2, 3]]}'),
        _request(npy(np.ones((2, 3))), NPY),
        _request(npy(np.full((1, 3), 1e300)), NPY),
        _request(GOOD),
    ]
    answers = running.app.serving.api.handle(batch)
    assert _statuses(answers) == [200, 400, 200, 400, 200]
    assert error_of(answers[3].body)[0] == "invalid_values"


def test_values_are_judged_in_the_models_scaled_units(serve_labels: Serve) -> None:
    """1e150 squares to a float, but not once divided by a feature's scale of 1e-10."""
    snapshot = fitted().snapshot
    scaler = Scaler(snapshot.scaler.kind, snapshot.scaler.center, snapshot.scaler.scale * 1e-10)
    store = MemorySnapshotStore()
    store.save(replace(snapshot, scaler=scaler), state="live")
    running = serve_labels(settings(), store)
    status, _, body = post(running, b'{"rows": [[1e150, 20, 300]]}')
    assert (status, error_of(body)[0]) == (400, "invalid_values")
    assert "f0 = 1e+150" in error_of(body)[1]


def test_a_failure_is_a_json_500_for_its_own_request_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug that one request meets, reading it or encoding its answer, costs only it."""

    def assign(Xs: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, sq = assign_labels(Xs, centers)
        return labels, np.where(Xs[:, 0] > 1e3, np.inf, sq)  # a distance JSON cannot carry

    def unreadable(*args: object) -> np.ndarray:
        raise RuntimeError("a bug")

    store = MemorySnapshotStore()
    store.save(fitted().snapshot, state="live")
    serving = build_serving(settings(), store, assigner=assign)
    serving.catalog.refresh()
    monkeypatch.setattr("monitor.serving._api.npy_rows", unreadable)
    batch = [
        _request(GOOD),
        _request(b'{"rows": [[1e6, 2, 3]]}'),
        _request(npy(np.ones((1, 3))), NPY),
    ]
    answers = serving.api.handle(batch)
    assert _statuses(answers) == [200, 500, 500]
    assert error_of(answers[1].body)[0] == error_of(answers[2].body)[0] == "internal"


def test_unknown_model_and_paths(running: Running) -> None:
    status, _, body = post(running, GOOD, model="nope")
    assert (status, error_of(body)) == (
        404,
        ("unknown_model", "no model 'nope' is served; served: shop"),
    )
    assert post(running, b"", None, path="/v1/models/shop/labels", method="GET")[0] == 405
    status, headers, _ = post(running, GOOD, path="/v1/models/shop")
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    assert post(running, b"", None, path="/v1/models/shop/other", method="GET")[0] == 404
    assert post(running, b"", None, path="/v1/models/shop/parameters", method="GET")[0] == 404
    assert post(running, GOOD, path="/metrics")[0] == 405
    # An unknown path is a 404 whatever the method: a typo is not a wrong method.
    for path in ("/v1/models/shop/labels/", "/v1/models/shop/other", "/v1/model", "/nope"):
        status, _, body = post(running, GOOD, path=path)
        assert (status, body) == (404, b"not found\n"), path
    assert _count(running, "405") == 1  # the GET of the labels path; other paths are not a model's


def test_a_model_with_no_version_yet_is_a_503(serve_labels: Serve) -> None:
    running = serve_labels(settings(), MemorySnapshotStore())
    status, _, body = post(running, GOOD)
    assert (status, error_of(body)[0]) == (503, "no_model")
    # Not ready: a `serve` that can answer nothing takes no traffic (helper-82: a
    # mistyped state_dir read "ready" while every request was this 503).
    assert running.app.ready() == (False, "serving: no model has a live version yet")


def _announce(running: Running, length: int, ctype: str = JSON) -> bytes:
    """The answer to a labels request that announces ``length`` bytes and sends none."""
    with socket.create_connection(running.address, timeout=15) as sock:
        sock.sendall(
            b"POST /v1/models/shop/labels HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: %s\r\nContent-Length: %d\r\n\r\n" % (ctype.encode(), length)
        )
        return sock.recv(65536)


def test_a_body_over_the_limit_is_a_413_before_it_is_read(serve_labels: Serve) -> None:
    store = MemorySnapshotStore()
    store.save(fitted().snapshot, state="live")
    running = serve_labels(settings(serving={"max_body_bytes": 4096}), store)
    # Announce 5,000 bytes and send none of them: the answer comes anyway.
    answer = _announce(running, 5000)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in answer
    assert b"request body of 5000 bytes; at most 4096" in answer
    assert _count(running, "413") == 1


def test_serving_max_connections_caps_the_connections_and_counts_those_closed(
    serve_labels: Serve,
) -> None:
    """Beyond 256 keep-alive clients got resets (helper-143): the cap is
    serving.max_connections, and kmeans_http_dropped_connections_total counts its closes."""
    store = MemorySnapshotStore()
    store.save(fitted().snapshot, state="live")
    running = serve_labels(settings(serving={"max_connections": 2}), store)
    assert running.server.http.limits.max_connections == 2
    idle = [socket.create_connection(running.address, timeout=15) for _ in range(2)]
    assert wait_until(lambda: running.server.http.open_connections == 2)
    assert post(running, GOOD)[0] == 200  # the third: the longest idle is closed for it
    assert idle[0].recv(1) == b""
    text = encode(running.app.registry).decode()
    assert "kmeans_http_dropped_connections_total 1.0" in text
    for sock in idle:
        sock.close()


def test_the_widest_json_rows_within_max_rows_are_accepted(running: Running) -> None:
    """max_rows object rows of the longest floats, pretty-printed with 8 spaces: served."""
    row = {f"f{j}": -2.2250738585072014e-308 for j in range(3)}
    body = json.dumps({"rows": [row] * 10, "key": "k" * 256}, indent=8).encode()
    assert post(running, body)[0] == 200
    listed = json.dumps({"rows": [[-2.2250738585072014e-308] * 3] * 10}, indent=8).encode()
    assert post(running, listed)[0] == 200


def test_a_json_body_too_long_for_max_rows_is_a_413_before_it_is_read(running: Running) -> None:
    """Parsing holds the loop: a JSON body longer than max_rows rows can take is refused
    from its Content-Length (10 rows of 3 features, here 10,788 bytes at most)."""
    answer = _announce(running, 100_000)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in answer
    code, message = error_of(answer.partition(b"\r\n\r\n")[2])
    assert code == "too_many_rows"
    assert message == (
        "a JSON body of 100000 bytes is longer than 10 rows (serving.max_rows) of the "
        "model's 3 features can be: at most 10788 bytes"
    )
    # One row padded with spaces past the cap: valid JSON, refused all the same.
    assert post(running, GOOD + b" " * 10788)[0] == 413
    assert _count(running, "413") == 2


def test_an_npy_body_too_long_for_max_rows_is_a_413_before_it_is_read(running: Running) -> None:
    """Announced, such a body was read into the budget of bodies in flight: four of 16 MiB
    held it all (helper-143). 10 rows of 3 float64 features and the longest header read
    take at most 12 + 4,096 + 240 bytes."""
    answer = _announce(running, 16 * 2**20, NPY)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in answer
    assert error_of(answer.partition(b"\r\n\r\n")[2]) == (
        "too_many_rows",
        f"an NPY body of {16 * 2**20} bytes is longer than 10 rows (serving.max_rows) of the "
        "model's 3 features can be: at most 4348 bytes",
    )
    widest = npy(np.ones((10, 3)))
    assert post(running, widest, NPY)[0] == 200
    assert post(running, widest[:-1] + bytes(4348 - len(widest) + 2), NPY)[0] == 413
    assert _count(running, "413") == 2


@pytest.mark.parametrize(
    ("header", "status"),
    [("Content-Length: abc\r\n", 400), ("X-A: 1\r\n" * 120, 431), ("Bad Name: 1\r\n", 400)],
    ids=["bad length", "too many headers", "malformed header"],
)
def test_a_head_the_http_layer_refuses_is_counted(
    running: Running, header: str, status: int
) -> None:
    """Answered by the HTTP layer before the API saw it, on a labels path: counted, a 431
    as any other 4xx, as 400 (docs/metrics.md)."""
    host, port = running.address
    with socket.create_connection((host, port), timeout=15) as sock:
        sock.sendall(f"POST /v1/models/shop/labels HTTP/1.1\r\nHost: t\r\n{header}\r\n".encode())
        answer = sock.recv(65536)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    assert _count(running, "400") == 1


def test_a_chunked_body_is_refused_with_411(running: Running) -> None:
    host, port = running.address
    with socket.create_connection((host, port), timeout=15) as sock:
        sock.sendall(
            b"POST /v1/models/shop/labels HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 411 ")
    assert _count(running, "411") == 1


def test_npy_answers_carry_the_version_and_variant_in_headers(running: Running) -> None:
    status, headers, body = post(running, npy(np.ones((2, 3))), NPY, headers={"Accept": NPY})
    assert status == 200 and (headers["x-kmeans-model-version"], headers["x-kmeans-variant"]) == (
        "1",
        "live",
    )
    assert np.load(io.BytesIO(body), allow_pickle=False).shape == (2,)
