"""Helpers of the HTTP server tests: raw-socket requests, waiting, a self-signed certificate,
an API that echoes the digest of request bodies."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import socket
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry, Counter

from monitor.http import HttpServer, Request, Response

# Generous: these bound a hang, they do not measure speed.
PATIENCE = 15.0


def registry_with_counter() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("kmeans_test_total", "A test counter.", registry=registry).inc(3)
    return registry


@dataclass
class Running:
    """A started server and how to reach it."""

    server: HttpServer
    host: str
    port: int

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=PATIENCE)
        return sock


def request(sock: socket.socket, path: str = "/metrics", extra: str = "") -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode())


# Bytes received past the end of a response (a pipelined next one), per socket.
_PENDING: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response from a raw socket (status, lower-case headers, body)."""
    data = _PENDING.pop(sock, b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    received = bytearray(body)  # bytes += would copy the whole body for every chunk
    while len(received) < length:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed mid-body")
        received += chunk
    _PENDING[sock] = bytes(received[length:])
    return int(lines[0].split(" ")[1]), headers, bytes(received[:length])


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed ``sock`` (EOF or reset) within PATIENCE seconds."""
    sock.settimeout(PATIENCE)
    try:
        while sock.recv(65536):
            pass  # a 408 or 503 may come first
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def wait_until(condition: Callable[[], bool], timeout: float = PATIENCE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, as files."""

    cert_file: Path
    key_file: Path


def make_certificate(
    directory: Path,
    name: str = "server",
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Certificate:
    """A certificate valid from five minutes ago for a day, unless dates are given."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after or now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)  # as docs/security.md asks: check-config warns of a readable key
    return Certificate(cert_file, key_file)


PATH = "/v1/echo"


class EchoApi:
    """Answers a POST to PATH with the body's length and digest; records everything."""

    def __init__(self) -> None:
        self.batches: list[int] = []  # size of each handle() call
        self.threads: list[str] = []
        self.refusals: list[int] = []
        self.block: threading.Event | None = None  # makes the next handle() wait
        self.fail = False
        self.lock = threading.Lock()

    def methods(self, path: str) -> tuple[str, ...]:
        return ("POST",) if path == PATH else ()

    def admit(self, request: Request) -> Response | None:
        if request.headers.get("content-type") != "application/octet-stream":
            return Response.text(415, "octet-stream only")
        return None

    def handle(self, requests: Sequence[Request]) -> list[Response]:
        with self.lock:
            self.batches.append(len(requests))
            self.threads.append(threading.current_thread().name)
        block, self.block = self.block, None
        if block is not None:
            assert block.wait(PATIENCE)
        if self.fail:
            raise RuntimeError("API bug")
        return [
            Response.text(200, f"{len(r.body)} {hashlib.sha256(r.body).hexdigest()[:16]}")
            for r in requests
        ]

    def refused(self, request: Request, status: int) -> None:
        self.refusals.append(status)


def post_head(length: int, extra: str = "", ctype: str = "application/octet-stream") -> bytes:
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: t\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def echo(body: bytes) -> bytes:
    return f"{len(body)} {hashlib.sha256(body).hexdigest()[:16]}\n".encode()
