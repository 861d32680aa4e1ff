"""Request heads, good and bad: the parser alone, then what a raw client gets back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from monitor.http._wire import MAX_HEADERS, BadRequest, Request, parse_head, take_head
from tests.http_server._support import Running, closed_by_server, read_response


def lines(text: str) -> list[bytes]:
    return [line.encode("latin-1") + b"\r\n" for line in text.split("\n")]


def test_a_head_is_parsed_with_lower_case_names_and_joined_repeats() -> None:
    request = parse_head(lines("GET /metrics?x=1 HTTP/1.1\nHost: a\nAccept: x\naccept:  y "))
    assert request == Request("GET", "/metrics?x=1", "HTTP/1.1", {"host": "a", "accept": "x, y"})
    assert request.path == "/metrics"


@pytest.mark.parametrize(
    ("version", "connection", "keep"),
    [
        ("HTTP/1.1", None, True),
        ("HTTP/1.1", "close", False),
        ("HTTP/1.1", "Keep-Alive, Close", False),
        ("HTTP/1.0", None, False),
        ("HTTP/1.0", "keep-alive", True),
    ],
)
def test_keep_alive_follows_the_version_and_the_connection_header(
    version: str, connection: str | None, keep: bool
) -> None:
    head = f"GET / {version}\nHost: t" + (f"\nConnection: {connection}" if connection else "")
    assert parse_head(lines(head)).keep_alive is keep


@pytest.mark.parametrize(
    ("headers", "has_body"),
    [("", False), ("\nContent-Length: 0", False), ("\nContent-Length: 5", True),
     ("\nTransfer-Encoding: chunked", True)],
)  # fmt: skip
def test_a_body_is_noticed(headers: str, has_body: bool) -> None:
    assert parse_head(lines("GET / HTTP/1.1\nHost: t" + headers)).has_body is has_body


def test_a_percent_encoded_path_is_decoded() -> None:
    request = parse_head(lines("GET /runbooks/KMeans%20X HTTP/1.1\nHost: t"))
    assert request.path == "/runbooks/KMeans X"


@pytest.mark.parametrize(
    ("head", "status", "reason"),
    [
        ("GET /", 400, "malformed request line"),
        ("GET  / HTTP/1.1", 400, "malformed request line"),
        ("GET / HTTP/2.0", 505, "unsupported version 'HTTP/2.0'"),
        ("GET / HTTP/1.1\nno colon here", 400, "malformed header line"),
        ("GET / HTTP/1.1\nHost : a", 400, "malformed header line"),
        ("GET / HTTP/1.1\n folded: a", 400, "malformed header line"),
        ("GET / HTTP/1.1\n: empty name", 400, "malformed header line"),
        ("GET / HTTP/1.1" + "\nX: y" * (MAX_HEADERS + 1), 431, "more than 100 header lines"),
        # RFC 9112, section 3.2: HTTP/1.1 needs exactly one Host header (1.0 none).
        ("GET / HTTP/1.1", 400, "no Host header"),
        ("GET / HTTP/1.1\nHost: a\nhost: b", 400, "more than one Host header"),
        ("GET / HTTP/1.0\nHost: a\nHost: b", 400, "more than one Host header"),
        ("GET / HTTP/1.1\nHost: a b", 400, "invalid Host header"),
        ("GET / HTTP/1.1\nHost: <script>", 400, "invalid Host header"),
        ("GET / HTTP/1.1\nHost: a\x01", 400, "invalid Host header"),
        # RFC 9110, section 5.1: a field name is a token.
        ("GET / HTTP/1.1\nHost: a\nX A: b", 400, "malformed header line"),
        ("GET / HTTP/1.1\nHost: a\nX(A): b", 400, "malformed header line"),
        ("GET / HTTP/1.1\nHost: a\nX-A: a\rb", 400, "malformed header value"),
        ("GET / HTTP/1.1\nHost: a\nX-A: a\x00b", 400, "malformed header value"),
        # RFC 9112, section 6.3: an invalid Content-Length is a 400 on any request.
        ("GET / HTTP/1.1\nHost: a\nContent-Length: abc", 400, "invalid Content-Length"),
        ("GET / HTTP/1.1\nHost: a\nContent-Length: -1", 400, "invalid Content-Length"),
        ("GET / HTTP/1.1\nHost: a\nContent-Length: 1, 2", 400, "invalid Content-Length"),
        ("GET / HTTP/1.1\nHost: a\nContent-Length: " + "9" * 23, 400, "invalid Content-Length"),
    ],
)
def test_bad_heads_are_refused_with_a_status(head: str, status: int, reason: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_head(lines(head))
    assert (caught.value.status, str(caught.value)) == (status, reason)


@pytest.mark.parametrize(
    "host", ["", "a", "a.b-c_d~e:9310", "127.0.0.1:80", "[::1]:9310", "[fe80::1]", "x%41y"]
)
def test_valid_hosts_pass(host: str) -> None:
    assert parse_head(lines(f"GET / HTTP/1.1\nHost: {host}")).headers["host"] == host


def test_a_request_line_that_is_not_ascii_is_a_400() -> None:
    with pytest.raises(BadRequest, match="not ASCII"):
        parse_head(["GET /é HTTP/1.1\r\n".encode()])


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/3\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 1000 + b"\r\n", 431),
        (b"DELETE /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 405),
        (b"GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", 200),
    ],
)
def test_a_raw_client_gets_the_status_and_a_closed_connection(
    serve: Callable[..., Running], raw: bytes, status: int
) -> None:
    running = serve()
    sock = running.connect()
    sock.sendall(raw)
    got, headers, _ = read_response(sock)
    assert (got, headers["connection"]) == (status, "close")
    assert closed_by_server(sock)


def test_empty_lines_before_a_request_are_ignored(serve: Callable[..., Running]) -> None:
    running = serve()
    sock = running.connect()
    sock.sendall(b"\r\n\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert read_response(sock)[:1] == (200,)


def test_http_1_0_gets_its_answer_and_a_close(serve: Callable[..., Running]) -> None:
    running = serve()
    sock = running.connect()
    sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    status, headers, body = read_response(sock)
    assert (status, headers["connection"], body) == (200, "close", b"ok\n")
    assert closed_by_server(sock)


def test_take_head_takes_one_head_and_leaves_the_rest() -> None:
    buffer = bytearray(b"\r\n\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\n\nGET /c")
    assert take_head(buffer, 1000) == [b"GET /a HTTP/1.1\r", b"Host: x"]
    assert take_head(buffer, 1000) == [b"GET /b HTTP/1.1"]
    assert take_head(buffer, 1000) is None  # partial: kept for the next read
    assert buffer == bytearray(b"GET /c")


@pytest.mark.parametrize(
    "raw",
    [b"GET / HTTP/1.1\r\nX: " + b"a" * 100, b"GET / HTTP/1.1\r\nX: " + b"a" * 100 + b"\r\n\r\n"],
)
def test_take_head_refuses_a_head_beyond_the_limit(raw: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        take_head(bytearray(raw), 64)
    assert caught.value.status == 431


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/metrics", "/metrics"),
        ("/", "/"),
        ("/models/shop.json", "/models/shop.json"),
        ("/runbooks/KMeans%20X", "/runbooks/KMeans X"),
        ("/runbooks/KMeansFeatureDrift?model=shop", "/runbooks/KMeansFeatureDrift"),
        ("/a#fragment", "/a"),
        ("//host/metrics", "/metrics"),  # an authority, not a path that starts with two slashes
        ("http://host/metrics", "/metrics"),
        ("/caf\u00e9", "/caf\u00e9"),
        ("*", "*"),
    ],
)
def test_the_path_of_a_target_is_the_decoded_path_of_its_url(target: str, path: str) -> None:
    assert Request("GET", target, "HTTP/1.1", {}).path == path
