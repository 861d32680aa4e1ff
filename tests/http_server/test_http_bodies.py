"""Request bodies for an API: admitted before they are read, bounded in size and in the
memory all of them take, timed, read only from clients whose credentials hold, and
answered on the event loop together when small, on a worker when large."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest

from monitor.http import Limits, Routes, WebConfig
from monitor.http._auth import BasicAuth
from tests.http_server._support import (
    PATH,
    PATIENCE,
    EchoApi,
    Running,
    closed_by_server,
    echo,
    post_head,
    read_response,
    registry_with_counter,
    request,
    wait_until,
)


@pytest.fixture
def api() -> EchoApi:
    return EchoApi()


@pytest.fixture
def start(serve: Callable[..., Running], api: EchoApi) -> Callable[..., Running]:
    def run(limits: Limits | None = None, web: WebConfig | None = None) -> Running:
        return serve(Routes(registry=registry_with_counter(), api=api), limits=limits, web=web)

    return run


@pytest.mark.parametrize("size", [1, 5000, 70_000, 1_000_000])
def test_a_body_is_read_whole_and_answered(start: Callable[..., Running], size: int) -> None:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    sock = start().connect()
    sock.sendall(post_head(len(body)) + body)
    status, headers, answer = read_response(sock)
    assert (status, answer, headers["connection"]) == (200, echo(body), "keep-alive")


def test_small_bodies_are_answered_on_the_loop_large_ones_on_a_worker(
    start: Callable[..., Running], api: EchoApi
) -> None:
    sock = start(Limits(fast_body_bytes=100)).connect()
    for size in (100, 101):
        sock.sendall(post_head(size) + b"a" * size)
        assert read_response(sock)[0] == 200
    assert api.threads[0] == "http" and api.threads[1].startswith("http-worker")


def test_small_requests_that_arrive_together_are_answered_in_one_call(
    start: Callable[..., Running], api: EchoApi
) -> None:
    running = start()
    socks = [running.connect() for _ in range(8)]
    for sock in socks:  # each connection accepted and reading before the loop is held
        request(sock, "/healthz")
        assert read_response(sock)[0] == 200
    release = api.block = threading.Event()
    socks[0].sendall(post_head(3) + b"abc")
    assert wait_until(lambda: api.batches == [1])  # the loop now waits in handle()
    for i, sock in enumerate(socks[1:]):
        sock.sendall(post_head(1) + bytes([i]))
    time.sleep(0.2)  # every request is in the kernel's buffers
    release.set()
    answers = [read_response(sock) for sock in socks]
    assert [a[0] for a in answers] == [200] * 8
    assert [a[2] for a in answers[1:]] == [echo(bytes([i])) for i in range(7)]
    assert api.batches == [1, 7]


def test_keep_alive_and_pipelining_after_a_body(start: Callable[..., Running]) -> None:
    sock = start().connect()
    healthz = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    sock.sendall(post_head(2) + b"hi" + post_head(3) + b"you" + healthz)
    assert read_response(sock)[2] == echo(b"hi")
    assert read_response(sock)[2] == echo(b"you")
    assert read_response(sock)[:1] == (200,)


def test_expect_100_continue_gets_the_interim_answer_before_the_body(
    start: Callable[..., Running],
) -> None:
    sock = start().connect()
    sock.sendall(post_head(5, "Expect: 100-continue\r\n"))
    assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(b"hello")
    assert read_response(sock)[2] == echo(b"hello")


def test_a_refusal_comes_instead_of_100_continue_and_closes(
    start: Callable[..., Running], api: EchoApi
) -> None:
    sock = start().connect()
    sock.sendall(post_head(5, "Expect: 100-continue\r\n", ctype="text/plain"))
    status, headers, _ = read_response(sock)
    assert (status, headers["connection"]) == (415, "close")
    assert closed_by_server(sock) and api.refusals == [415]


@pytest.mark.parametrize(
    ("head", "status", "words"),
    [
        (post_head(10_001), 413, b"request body of 10001 bytes; at most 10000"),
        (post_head(5).replace(b"Content-Length: 5", b"Content-Length: 5, 6"), 400, b"invalid"),
        (post_head(5).replace(b"Content-Length: 5", b"Content-Length: -5"), 400, b"invalid"),
        (post_head(5).replace(b"Content-Length: 5", b"Content-Length: " + b"9" * 30), 400, b""),
        (
            post_head(5).replace(b"Content-Length: 5", b"Transfer-Encoding: chunked"),
            411,
            b"chunked",
        ),
    ],
    ids=["too large", "two lengths", "negative", "absurd", "chunked"],
)
def test_bodies_refused_before_a_byte_is_read(
    start: Callable[..., Running], api: EchoApi, head: bytes, status: int, words: bytes
) -> None:
    sock = start(Limits(max_body_bytes=10_000)).connect()
    sock.sendall(head)
    got, headers, answer = read_response(sock)
    assert (got, headers["connection"]) == (status, "close") and words in answer
    # An invalid length is refused with the head (RFC 9112, section 6.3, on any request),
    # and counted by the API all the same: its request line names the path.
    assert api.refusals == [status] and api.batches == []
    assert closed_by_server(sock)


def test_equal_repeated_lengths_are_one_length(start: Callable[..., Running]) -> None:
    sock = start().connect()
    sock.sendall(post_head(2).replace(b"Content-Length: 2", b"Content-Length: 2, 2") + b"ok")
    assert read_response(sock)[2] == echo(b"ok")


def test_a_body_not_sent_in_time_is_a_408(start: Callable[..., Running], api: EchoApi) -> None:
    sock = start(Limits(body_timeout=0.3)).connect()
    sock.sendall(post_head(100) + b"x" * 50)
    status, headers, _ = read_response(sock)
    assert (status, headers["connection"]) == (408, "close") and api.refusals == [408]
    assert closed_by_server(sock)


def test_the_body_budget_bounds_bodies_in_flight_and_is_given_back(
    start: Callable[..., Running], api: EchoApi, caplog: pytest.LogCaptureFixture
) -> None:
    running = start(Limits(max_body_bytes=1000, body_budget_bytes=1500))
    slow = running.connect()
    slow.sendall(post_head(1000) + b"x" * 990)  # holds the 990 bytes it sent of the budget
    time.sleep(0.2)
    other = running.connect()
    other.sendall(post_head(600) + b"y" * 600)
    status, headers, _ = read_response(other)
    assert (status, headers["retry-after"]) == (503, "1") and api.refusals == [503]
    # The 503s count against the model's availability: the log says why (helper-82).
    assert "HTTP request body budget (1500 bytes in flight) reached: answering 503" in caplog.text
    slow.sendall(b"x" * 10)
    assert read_response(slow)[0] == 200
    again = running.connect()
    again.sendall(post_head(1000) + b"z" * 1000)
    assert read_response(again)[0] == 200  # the budget came back


def test_each_limit_has_its_own_warning_throttle(
    start: Callable[..., Running], api: EchoApi, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection-limit warning does not silence the body budget's for a minute."""
    running = start(Limits(max_connections=2, max_body_bytes=1000, body_budget_bytes=1500))
    slow = running.connect()
    slow.sendall(post_head(1000) + b"x" * 990)  # holds 990 bytes of the budget
    idle = running.connect()
    time.sleep(0.2)
    evicting = running.connect()  # the third: the idle one is closed to make room
    assert closed_by_server(idle)
    assert "HTTP connection limit (2) reached" in caplog.text
    evicting.sendall(post_head(600) + b"y" * 600)
    assert read_response(evicting)[0] == 503
    assert "HTTP request body budget (1500 bytes in flight) reached" in caplog.text
    slow.close()


def test_bodies_announced_and_not_sent_hold_none_of_the_budget(
    start: Callable[..., Running],
) -> None:
    """The budget holds the bytes received, not those announced: four connections that
    announced the largest body and sent a few bytes of it held all of it, and every
    label request was a 503 until their body timeout (helper-143)."""
    running = start(Limits(max_body_bytes=1000, body_budget_bytes=2000))
    slow = [running.connect() for _ in range(4)]
    for sock in slow:
        sock.sendall(post_head(1000) + b"\x93NUMPY")
    time.sleep(0.2)
    small = running.connect()
    small.sendall(post_head(50) + b"s" * 50)
    assert read_response(small)[2] == echo(b"s" * 50)
    for sock in slow:
        sock.close()


def test_a_client_that_leaves_mid_body_gives_its_budget_back(
    start: Callable[..., Running],
) -> None:
    running = start(Limits(max_body_bytes=1000, body_budget_bytes=1000))
    gone = running.connect()
    gone.sendall(post_head(1000) + b"x" * 10)
    gone.shutdown(socket.SHUT_WR)
    assert closed_by_server(gone)
    sock = running.connect()
    sock.sendall(post_head(1000) + b"z" * 1000)
    assert read_response(sock)[0] == 200


def test_methods_the_api_does_not_take_are_a_405_naming_those_it_does(
    start: Callable[..., Running], api: EchoApi
) -> None:
    sock = start().connect()
    sock.sendall(f"PUT {PATH} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n".encode())
    status, headers, _ = read_response(sock)
    assert (status, headers["allow"]) == (405, "POST") and api.refusals == [405]
    sock = start().connect()
    sock.sendall(b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx")
    status, headers, _ = read_response(sock)
    assert (status, headers["allow"]) == (405, "GET, HEAD")


@pytest.mark.parametrize("size", [10, 100_000], ids=["loop", "worker"])
def test_a_broken_api_is_a_500_and_the_server_goes_on(
    start: Callable[..., Running], api: EchoApi, size: int
) -> None:
    running = start()
    api.fail = True
    sock = running.connect()
    sock.sendall(post_head(size) + b"x" * size)
    assert read_response(sock)[0] == 500
    api.fail = False
    sock = running.connect()
    sock.sendall(post_head(size) + b"x" * size)
    assert read_response(sock)[0] == 200


def _web(tmp_path: Path) -> WebConfig:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    return WebConfig(users={"prometheus": hashed})


def _basic(password: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode()


def test_no_byte_of_a_body_is_read_before_the_credentials_hold(
    start: Callable[..., Running], api: EchoApi, tmp_path: Path
) -> None:
    running = start(web=_web(tmp_path))
    sock = running.connect()
    sock.sendall(post_head(10_000_000, "Expect: 100-continue\r\n"))  # a body never sent
    status, headers, _ = read_response(sock)
    assert (status, headers["connection"]) == (401, "close") and api.refusals == [401]
    sock = running.connect()
    sock.sendall(post_head(4, _basic("wrong") + "\r\n") + b"data")
    assert read_response(sock)[0] == 401
    sock = running.connect()
    for _ in range(2):  # checked with bcrypt on a worker, then remembered
        sock.sendall(post_head(4, _basic("s3cret") + "\r\n") + b"data")
        assert read_response(sock)[2] == echo(b"data")


def test_credentials_are_checked_before_the_api_looks_at_a_request(
    start: Callable[..., Running], api: EchoApi, tmp_path: Path
) -> None:
    # The API's answers (its 415, 404 naming the served models, 405, 413) told a client
    # without credentials what only a verified one may learn.
    running = start(Limits(max_body_bytes=1000), web=_web(tmp_path))
    heads = [
        post_head(4, ctype="text/plain"),
        post_head(5000),
        f"PUT {PATH} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n".encode(),
    ]
    for head in heads:
        for credentials in ("", _basic("wrong") + "\r\n"):
            sock = running.connect()
            sock.sendall(head.replace(b"\r\n\r\n", f"\r\n{credentials}\r\n".encode(), 1))
            assert read_response(sock)[0] == 401, head
    sock = running.connect()
    sock.sendall(post_head(4, _basic("s3cret") + "\r\n", ctype="text/plain") + b"data")
    assert read_response(sock)[0] == 415


def test_guesses_waiting_for_bcrypt_hold_no_budget_and_no_worker(
    start: Callable[..., Running], api: EchoApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A flood of wrong passwords reserved the bodies' budget (every verified client's
    # POST was a 503) and held every worker (its pages waited on the guesses' bcrypt).
    gate = threading.Event()
    real = BasicAuth.check

    def slow_for_guesses(self: BasicAuth, header: str | None) -> bool:
        if header is None or "wrong" not in base64.b64decode(header.split()[1]).decode():
            return real(self, header)
        assert gate.wait(PATIENCE)
        return real(self, header)

    monkeypatch.setattr(BasicAuth, "check", slow_for_guesses)
    running = start(Limits(max_body_bytes=1000, body_budget_bytes=1000, workers=2), _web(tmp_path))
    good = running.connect()
    good.sendall(post_head(4, _basic("s3cret") + "\r\n") + b"data")  # now remembered
    assert read_response(good)[2] == echo(b"data")
    guesses = [running.connect() for _ in range(4)]
    for i, sock in enumerate(guesses):
        head = post_head(1000, _basic("wrong") + "\r\n") if i % 2 else b"GET /x HTTP/1.1\r\n"
        sock.sendall(head if i % 2 else head + f"Host: t\r\n{_basic('wrong')}\r\n\r\n".encode())
    time.sleep(0.2)  # the guesses are waiting for their check
    good.sendall(post_head(4, _basic("s3cret") + "\r\n") + b"more")
    assert read_response(good)[2] == echo(b"more")
    good.sendall(f"GET /nowhere HTTP/1.1\r\nHost: t\r\n{_basic('s3cret')}\r\n\r\n".encode())
    assert read_response(good)[0] == 404
    gate.set()
    assert [read_response(sock)[0] for sock in guesses] == [401] * 4
