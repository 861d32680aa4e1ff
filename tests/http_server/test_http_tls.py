"""TLS with a self-signed certificate made in the test: HTTPS works, plain HTTP and
silent clients are closed quietly, client certificates and TLS versions are enforced,
and asyncio's own TLS writes never end a request early."""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest

from monitor.http import Limits, Routes, TlsConfig, WebConfig
from monitor.http._auth import BasicAuth
from tests.http_server._support import (
    PATIENCE,
    Certificate,
    EchoApi,
    Running,
    closed_by_server,
    echo,
    make_certificate,
    post_head,
    read_response,
    registry_with_counter,
    wait_until,
)


def client_context(trust: Path, *, client: Certificate | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(trust))
    if client is not None:
        context.load_cert_chain(client.cert_file, client.key_file)
    return context


def https_get(
    running: Running, context: ssl.SSLContext, path: str = "/metrics", **headers: str
) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection(
        running.host, running.port, context=context, timeout=PATIENCE
    )
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_https_serves_metrics_with_a_verified_certificate(
    serve: Callable[..., Running], certificate: Certificate
) -> None:
    running = serve(web=WebConfig(tls=TlsConfig(certificate.cert_file, certificate.key_file)))
    assert running.server.scheme == "https"
    status, body = https_get(running, client_context(certificate.cert_file))
    assert status == 200 and b"kmeans_test_total 3.0" in body


def test_https_with_basic_auth(serve: Callable[..., Running], certificate: Certificate) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    tls = TlsConfig(certificate.cert_file, certificate.key_file)
    running = serve(web=WebConfig(tls=tls, users={"prometheus": hashed}))
    context = client_context(certificate.cert_file)
    token = base64.b64encode(b"prometheus:s3cret").decode()
    assert https_get(running, context)[0] == 401
    assert https_get(running, context, Authorization=f"Basic {token}")[0] == 200


def test_plain_http_on_the_tls_port_is_closed_quietly(
    serve: Callable[..., Running], certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    running = serve(web=WebConfig(tls=TlsConfig(certificate.cert_file, certificate.key_file)))
    caplog.set_level(logging.DEBUG)
    sock = running.connect()
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
    assert closed_by_server(sock)
    assert wait_until(lambda: running.server.open_connections == 0)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]


def test_a_silent_client_is_cut_at_the_handshake_timeout(
    serve: Callable[..., Running], certificate: Certificate
) -> None:
    running = serve(
        web=WebConfig(tls=TlsConfig(certificate.cert_file, certificate.key_file)),
        limits=Limits(handshake_timeout=0.5),
    )
    sock = running.connect()
    assert closed_by_server(sock)
    assert wait_until(lambda: running.server.open_connections == 0)


def test_a_client_certificate_is_required_when_configured(
    serve: Callable[..., Running], certificate: Certificate, tmp_path: Path
) -> None:
    client = make_certificate(tmp_path, "client")  # self-signed: it is its own CA
    tls = TlsConfig(
        certificate.cert_file,
        certificate.key_file,
        client_ca_file=client.cert_file,
        client_auth_type="RequireAndVerifyClientCert",
    )
    running = serve(web=WebConfig(tls=tls))
    assert https_get(running, client_context(certificate.cert_file, client=client))[0] == 200
    stranger = make_certificate(tmp_path, "stranger")
    for context in (
        client_context(certificate.cert_file),
        client_context(certificate.cert_file, client=stranger),
    ):
        # TLS 1.3 reports a refused client certificate on the first read, not the handshake.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https_get(running, context)


def test_min_version_refuses_older_clients(
    serve: Callable[..., Running], certificate: Certificate
) -> None:
    tls = TlsConfig(certificate.cert_file, certificate.key_file, min_version="TLS13")
    running = serve(web=WebConfig(tls=tls))
    old = client_context(certificate.cert_file)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        https_get(running, old)
    assert https_get(running, client_context(certificate.cert_file))[0] == 200


class BioClient:
    """A TLS client over memory buffers: it decides what goes out in each send."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    def run(self, step: Callable[[], object]) -> None:
        """``step`` (a handshake, an unwrap) to its end, sending and receiving as it asks."""
        while True:
            try:
                step()
                break
            except ssl.SSLWantReadError:
                self.send()
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed by the server") from None
                self.incoming.write(data)
        self.send()

    def send(self) -> None:
        self.sock.sendall(self.outgoing.read())


def test_a_client_that_closes_its_side_of_tls_leaves_no_warning(
    serve: Callable[..., Running],
    certificate: Certificate,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The request still in flight (its credentials being checked) when close_notify came:
    # the answer to asyncio was "keep it open", which TLS ignores with a WARNING line, one
    # per client, for any client to write into the log.
    gate = threading.Event()
    real = BasicAuth.check

    def held(self: BasicAuth, header: str | None) -> bool:
        assert gate.wait(PATIENCE)
        return real(self, header)

    monkeypatch.setattr(BasicAuth, "check", held)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    tls = TlsConfig(certificate.cert_file, certificate.key_file)
    running = serve(web=WebConfig(tls=tls, users={"prometheus": hashed}))
    caplog.set_level(logging.DEBUG)
    with running.connect() as sock:
        client = BioClient(sock, client_context(certificate.cert_file))
        client.run(client.tls.do_handshake)
        client.tls.write(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        # The request and the close_notify in one send, so in one read of the server's:
        # while credentials are checked the server reads nothing more (it would wait).
        with pytest.raises(ssl.SSLWantReadError):
            client.tls.unwrap()
        client.send()
        client.run(client.tls.unwrap)  # the server's close_notify, and no answer before it
    gate.set()
    assert wait_until(lambda: running.server.open_connections == 0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# A label request's size: four TLS records or more, so it arrives in several reads; JSON
# with a blank line between two members (the end of a head, were it parsed as one).
BODY = b'{"note": "' + b"a" * 32768 + b'",\r\n\r\n"more": "' + b"b" * 32768 + b'"}'
TRIES = 10


def tls_connect(running: Running, certificate: Certificate) -> ssl.SSLSocket:
    context = client_context(certificate.cert_file)
    return context.wrap_socket(running.connect(), server_hostname="localhost")


def _basic(user: str, password: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("credentials", ["none", "new user", "wrong"])
def test_a_large_body_over_tls_is_read_as_a_body_not_as_the_next_request(
    serve: Callable[..., Running], certificate: Certificate, credentials: str
) -> None:
    # asyncio's TLS transport calls pause_writing and resume_writing for its own writes
    # too (with no write buffer allowed, at every read): such a resume while a request
    # was answered (its body read, its credentials checked) ended it, and the rest of
    # its body was parsed as the next request: a 431, or a 400 for the blank line.
    # Every try failed before the fix.
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    users = {f"user{i}": hashed for i in range(TRIES)} if credentials != "none" else {}
    tls = TlsConfig(certificate.cert_file, certificate.key_file)
    api = EchoApi()
    running = serve(Routes(registry=registry_with_counter(), api=api), web=WebConfig(tls, users))
    for i in range(TRIES):  # a new user each time: bcrypt checks it on its thread
        extra = {"none": "", "new user": _basic(f"user{i}", "s3cret") + "\r\n"}
        head = post_head(len(BODY), extra.get(credentials, _basic(f"user{i}", "wrong") + "\r\n"))
        with tls_connect(running, certificate) as sock:
            sock.sendall(head + BODY)
            if credentials == "wrong":
                assert read_response(sock)[0] == 401
                continue
            assert read_response(sock)[::2] == (200, echo(BODY))
            sock.sendall(head + BODY)  # kept alive (credentials now remembered)
            assert read_response(sock)[::2] == (200, echo(BODY))
    assert api.refusals == ([401] * TRIES if credentials == "wrong" else [])


def test_pipelined_requests_over_tls_are_answered_in_order(
    serve: Callable[..., Running], certificate: Certificate
) -> None:
    tls = TlsConfig(certificate.cert_file, certificate.key_file)
    running = serve(Routes(registry=registry_with_counter(), api=EchoApi()), web=WebConfig(tls))
    page = b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n"  # answered on a worker
    health = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"  # answered on the loop
    for _ in range(TRIES):
        with tls_connect(running, certificate) as sock:
            sock.sendall(page + post_head(len(BODY)) + BODY + page + health + post_head(2) + b"hi")
            answers = [read_response(sock) for _ in range(5)]
        assert [a[0] for a in answers] == [404, 200, 404, 200, 200]
        assert (answers[1][2], answers[4][2]) == (echo(BODY), echo(b"hi"))
