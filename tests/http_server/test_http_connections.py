"""The server under abuse: idle and slow clients, more connections than the cap, clients
that vanish mid-response, and a worker pool that stays bounded whatever the clients do."""

from __future__ import annotations

import http.client
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from monitor.checks import Mismatch
from monitor.http import Limits, MetricsCache, Routes
from tests.http_server._support import (
    PATIENCE,
    Running,
    closed_by_server,
    read_response,
    registry_with_counter,
    request,
    wait_until,
)

SHORT = Limits(header_timeout=0.5, idle_timeout=0.5, write_timeout=2.0)


def _held_until(release: threading.Event) -> Callable[[], list[str]]:
    """A /api/models handler that holds its worker until ``release`` is set."""

    def slow_models() -> list[str]:
        release.wait(PATIENCE)
        return []

    return slow_models


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    serve: Callable[..., Running],
) -> None:
    running = serve(limits=SHORT)
    sock = running.connect()
    assert closed_by_server(sock)
    assert wait_until(lambda: running.server.open_connections == 0)


def test_a_client_sending_a_byte_at_a_time_is_cut_before_its_head_is_complete(
    serve: Callable[..., Running],
) -> None:
    running = serve(limits=SHORT)
    sock = running.connect()
    sock.settimeout(0.1)  # paces the bytes: one per 0.1 s, 3.5 s for this head
    outcome: bytes | None = None
    for byte in b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n":
        try:
            sock.send(bytes([byte]))
            outcome = sock.recv(65536)
            break  # the server answered (or closed) before the head was complete
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            outcome = b""
            break
    assert outcome is not None, "the whole head went through: the deadline did not hold"
    # A 408 when it arrived before the close; b"" when the close or a reset came first.
    assert outcome == b"" or outcome.startswith(b"HTTP/1.1 408 Request Timeout"), outcome


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    serve: Callable[..., Running],
) -> None:
    running = serve(limits=Limits(header_timeout=5.0, idle_timeout=0.5))
    sock = running.connect()
    request(sock)
    status, headers, _ = read_response(sock)
    assert (status, headers["connection"]) == (200, "keep-alive")
    assert closed_by_server(sock)
    assert wait_until(lambda: running.server.open_connections == 0)


def test_keep_alive_serves_many_requests_on_one_connection_up_to_the_cap(
    serve: Callable[..., Running],
) -> None:
    running = serve(limits=Limits(max_requests_per_connection=3))
    sock = running.connect()
    seen = []
    for _ in range(3):
        request(sock)
        status, headers, body = read_response(sock)
        seen.append((status, headers["connection"]))
        assert b"kmeans_test_total 3.0" in body
    assert seen == [(200, "keep-alive"), (200, "keep-alive"), (200, "close")]
    assert closed_by_server(sock)


def test_more_connections_than_the_cap_do_not_break_metrics_for_a_well_behaved_client(
    serve: Callable[..., Running],
) -> None:
    running = serve(limits=Limits(max_connections=8, header_timeout=60.0, idle_timeout=60.0))
    hogs = [running.connect() for _ in range(40)]  # idle, and half of them mid-head
    for sock in hogs[::2]:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
    try:
        assert wait_until(lambda: running.server.open_connections <= 8)
        for _ in range(20):
            client = http.client.HTTPConnection(running.host, running.port, timeout=PATIENCE)
            client.request("GET", "/metrics")
            response = client.getresponse()
            assert response.status == 200
            assert b"kmeans_test_total 3.0" in response.read()
            client.close()
            # And the hogs keep coming back: each new one takes an idle slot, not ours.
            hogs.append(running.connect())
        assert running.server.open_connections <= 8
    finally:
        for sock in hogs:
            sock.close()


def test_connections_closed_at_the_cap_are_counted(serve: Callable[..., Running]) -> None:
    """What the limit costs clients shows in metrics (kmeans_http_dropped_connections_total),
    not only in a log line a minute."""
    running = serve(limits=Limits(max_connections=4, header_timeout=60.0, idle_timeout=60.0))
    assert running.server.dropped_connections == 0
    hogs = [running.connect() for _ in range(10)]  # 6 over the cap: 6 idle ones closed
    try:
        assert wait_until(lambda: running.server.dropped_connections == 6)
    finally:
        for sock in hogs:
            sock.close()


def test_at_the_cap_with_every_connection_busy_a_new_one_gets_a_503(
    serve: Callable[..., Running],
) -> None:
    release = threading.Event()

    slow_models = _held_until(release)
    running = serve(
        Routes(registry=registry_with_counter(), models_json=slow_models),
        limits=Limits(max_connections=2, workers=2),
    )
    busy = [running.connect() for _ in range(2)]
    for sock in busy:
        request(sock, "/api/models")
    try:
        time.sleep(0.3)  # let both requests reach the workers (not a timing assertion)
        extra = running.connect()
        status, headers, body = read_response(extra)
        assert (status, headers["connection"], body) == (503, "close", b"too many connections\n")
        assert closed_by_server(extra)
        assert running.server.dropped_connections == 1  # refused at the cap: counted too
    finally:
        release.set()
    for sock in busy:
        assert read_response(sock)[0] == 200


def test_workers_stay_bounded_however_many_clients_wait(serve: Callable[..., Running]) -> None:
    gate = threading.Semaphore(0)
    peak = 0
    lock = threading.Lock()
    inside = 0

    def models() -> list[str]:
        nonlocal peak, inside
        with lock:
            inside += 1
            peak = max(peak, inside)
        gate.acquire(timeout=PATIENCE)
        with lock:
            inside -= 1
        return ["m"]

    before = threading.active_count()
    running = serve(
        Routes(registry=registry_with_counter(), models_json=models),
        limits=Limits(workers=3, max_connections=64),
    )
    clients = [running.connect() for _ in range(30)]
    for sock in clients:
        request(sock, "/api/models")
    assert wait_until(lambda: peak == 3)
    # One loop thread and three workers, whatever the number of clients.
    assert threading.active_count() <= before + 1 + 3
    for _ in clients:
        gate.release()
    assert [read_response(sock)[0] for sock in clients] == [200] * 30
    assert peak == 3


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, like a client killed mid-transfer."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("when", ["before the response", "mid-response"])
def test_a_client_that_disconnects_leaves_one_debug_line_and_no_traceback(
    serve: Callable[..., Running], caplog: pytest.LogCaptureFixture, when: str
) -> None:
    big = b"# " + b"x" * (64 * 2**20) + b"\n"  # far more than the socket buffers hold
    running = serve(
        Routes(registry=registry_with_counter(), metrics=lambda: big),
        limits=Limits(write_timeout=PATIENCE),
    )
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        sock = running.connect()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        request(sock)
        if when == "mid-response":
            assert sock.recv(1024).startswith(b"HTTP/1.1 200 OK")
        _reset(sock)

    def ended() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "connection ended" in r.getMessage()]

    # Wait for the server to have seen all five go (a count of 0 open is also the start).
    assert wait_until(lambda: len(ended()) == 5), [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.DEBUG for r in ended())
    assert wait_until(lambda: running.server.open_connections == 0)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    # And the server is still there for the next client.
    sock = running.connect()
    request(sock, "/healthz")
    assert read_response(sock)[:1] == (200,)


def test_a_client_that_does_not_read_its_response_is_cut_after_the_write_timeout(
    serve: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    big = b"# " + b"x" * (64 * 2**20) + b"\n"
    running = serve(
        Routes(registry=registry_with_counter(), metrics=lambda: big),
        limits=Limits(write_timeout=0.5),
    )
    caplog.set_level(logging.DEBUG, logger="monitor.http")
    sock = running.connect()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request(sock)
    # The client reads nothing; the server gives up on it and frees the slot.
    assert wait_until(lambda: "did not read its response in time" in caplog.text)
    assert wait_until(lambda: running.server.open_connections == 0)
    sock.close()


def test_stop_closes_open_connections_and_returns(serve: Callable[..., Running]) -> None:
    running = serve(limits=Limits(header_timeout=60.0))
    idle = [running.connect() for _ in range(5)]
    running.server.stop()
    assert all(closed_by_server(sock) for sock in idle)
    with pytest.raises(OSError):
        socket.create_connection((running.host, running.port), timeout=1).recv(1)


def test_a_scraper_between_requests_outlives_a_flood_of_silent_connections(
    serve: Callable[..., Running],
) -> None:
    running = serve(limits=Limits(max_connections=8, header_timeout=60.0, idle_timeout=60.0))
    scraper = running.connect()
    request(scraper)
    assert read_response(scraper)[0] == 200
    # The scraper now waits between two requests, like the silent ones, but it has
    # completed a request: the silent ones make room for each other, not for it.
    flood = [running.connect() for _ in range(40)]
    try:
        assert wait_until(lambda: running.server.open_connections <= 8)
        request(scraper)
        assert read_response(scraper)[0] == 200
    finally:
        for sock in flood:
            sock.close()


def test_pipelined_requests_are_answered_in_order(serve: Callable[..., Running]) -> None:
    running = serve(Routes(registry=registry_with_counter(), models_json=lambda: ["m"]))
    sock = running.connect()
    sock.sendall(
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
        # answered by a worker, between two fast ones
        b"GET /api/models HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    answers = [read_response(sock) for _ in range(4)]
    assert [(status, body) for status, _, body in answers] == [
        (200, b"ok\n"),
        (200, b'[\n  "m"\n]'),
        (404, b"not found\n"),
        (200, b"ok\n"),
    ]
    assert closed_by_server(sock)


def test_the_server_threads_run_at_a_lower_priority(serve: Callable[..., Running]) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    serve(limits=Limits(nice=7))
    loop_threads = [t for t in threading.enumerate() if t.name == "http"]
    assert loop_threads and all(t.native_id is not None for t in loop_threads)
    niceness = {os.getpriority(os.PRIO_PROCESS, t.native_id or 0) for t in loop_threads}
    assert niceness == {min(19, base + 7)}


@pytest.mark.parametrize(
    ("field", "value"),
    [("workers", 0), ("max_connections", 0), ("header_timeout", 0.0), ("nice", 20), ("nice", -1)],
)
def test_limits_are_checked(field: str, value: float) -> None:
    with pytest.raises(Mismatch, match=f"The '{field}' parameter of Limits must be"):
        Limits(**{field: value})  # type: ignore[arg-type]


OUT_OF_DESCRIPTORS = """
import resource, socket, sys, time, logging, io
stream = io.StringIO()
logging.basicConfig(level=logging.WARNING, stream=stream)
from prometheus_client import CollectorRegistry
from monitor.http import HttpServer, Limits, Routes
server = HttpServer("127.0.0.1", 0, Routes(registry=CollectorRegistry()), limits=Limits())
server.start()
host, port = server.address
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []
for _ in range(80):  # the client sockets share the limit; some connects fail: fine
    try:
        held.append(socket.create_connection((host, port), timeout=5))
    except OSError:
        break
time.sleep(1.5)
for sock in held:
    sock.close()
time.sleep(1.5)  # the server resumes accepting after its pause
client = socket.create_connection((host, port), timeout=5)
client.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n")
print(client.recv(100).split(b"\\r\\n")[0].decode())
server.stop()
print(stream.getvalue().count("cannot accept connections"))
"""


def test_running_out_of_descriptors_pauses_accepting_and_recovers() -> None:
    done = subprocess.run(
        [sys.executable, "-c", OUT_OF_DESCRIPTORS],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    status, warnings = done.stdout.split()[:3], done.stdout.split()[-1]
    assert " ".join(status) == "HTTP/1.1 200 OK"
    # Paused, not spinning: a warning per second of trouble, not one per attempt.
    assert 1 <= int(warnings) <= 5
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("while_", ["a worker answers", "its response waits to be read"])
def test_a_client_flooding_while_its_request_is_answered_is_not_read(
    serve: Callable[..., Running], while_: str
) -> None:
    release = threading.Event()

    slow_models = _held_until(release)
    big = b"# " + b"x" * (64 * 2**20) + b"\n"
    registry = registry_with_counter()
    # Fresh cached bytes: answered on the event loop, where no worker pauses reading.
    cache = MetricsCache(registry, lambda: 0, max_age=None, encoder=lambda _: big)
    cache()
    running = serve(
        Routes(registry=registry, models_json=slow_models, metrics=cache),
        limits=Limits(write_timeout=PATIENCE),
    )
    sock = running.connect()
    request(sock, "/api/models" if while_ == "a worker answers" else "/metrics")
    sock.settimeout(2.0)
    sent, chunk = 0, b"x" * 65536
    try:
        while sent < 256 * 2**20:
            sent += sock.send(chunk)
    except TimeoutError:
        pass  # the kernel buffers are full: the server stopped reading, as it should
    finally:
        release.set()
    assert sent < 64 * 2**20  # a server that kept reading would have taken all 256 MiB
    assert read_response(sock)[0] == 200
    status, headers, _ = read_response(sock)  # the flood, read as a head, is too large
    assert (status, headers["connection"]) == (431, "close")


def test_a_slow_but_steady_reader_gets_a_response_longer_than_the_write_timeout(
    serve: Callable[..., Running],
) -> None:
    big = b"# " + b"x" * (16 * 2**20) + b"\n"
    running = serve(
        Routes(registry=registry_with_counter(), metrics=lambda: big),
        limits=Limits(write_timeout=0.5),
    )
    sock = running.connect()
    request(sock)
    received = bytearray()
    started = time.monotonic()
    while not (len(received) > len(big) and received.endswith(big)):
        chunk = sock.recv(256 * 1024)
        assert chunk, f"cut after {len(received)} bytes"
        received += chunk
        time.sleep(0.02)  # about 10 MB/s at most: seconds for the whole body
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert time.monotonic() - started > 0.5  # it did outlast one write_timeout


def test_a_client_that_half_closes_after_its_request_gets_the_answer(
    serve: Callable[..., Running],
) -> None:
    running = serve(Routes(registry=registry_with_counter(), models_json=lambda: ["m"]))
    for path in ("/healthz", "/api/models"):  # the fast path and a worker
        sock = running.connect()
        request(sock, path)
        sock.shutdown(socket.SHUT_WR)
        assert read_response(sock)[0] == 200
        assert closed_by_server(sock)  # and not kept for a request that cannot come


def test_a_client_that_left_while_a_worker_answered_is_closed_not_leaked(
    serve: Callable[..., Running],
) -> None:
    # The client closes while its request waits on a worker (reading paused, so its FIN
    # is unseen); the response draws a reset, and shutting down the write side then fails
    # (ENOTCONN). That error escaped close(): the socket stayed open for good, one
    # descriptor per such client, until a burst under a low ulimit -n wedged the daemon.
    release = threading.Event()

    slow_models = _held_until(release)
    running = serve(Routes(registry=registry_with_counter(), models_json=slow_models))
    clients = [running.connect() for _ in range(3)]
    for sock in clients:  # as urllib asks: the answer is the last, then a lingering close
        request(sock, "/api/models", "Connection: close\r\n")
    assert wait_until(lambda: running.server.open_connections == 3)
    time.sleep(0.3)  # let the requests reach the workers (not a timing assertion)
    for sock in clients:
        sock.close()
    time.sleep(0.2)
    release.set()
    assert wait_until(lambda: running.server.open_connections == 0, timeout=5.0)
