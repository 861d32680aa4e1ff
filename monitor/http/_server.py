"""The HTTP server: one event-loop thread owns every connection, a few workers answer.

Connections cost a socket and a small coroutine, never a thread, and their number is
capped. At the cap a new connection takes the place of the connection that has waited
longest for a request (an idle keep-alive, a slow or silent client); only when every
admitted connection is busy with a request is the new one refused (503 on plain HTTP,
a plain close on TLS). Every wait has a deadline: the TLS handshake, the request head
(total time, not per read, so a client sending a byte a second is cut), the idle time
between keep-alive requests, and the time a client takes to read its response.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import threading
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from monitor.checks import check_float, check_int
from monitor.http._auth import BasicAuth
from monitor.http._routes import Routes, dispatch
from monitor.http._webconfig import WebConfig, ssl_context
from monitor.http._wire import MAX_HEADERS, BadRequest, Request, Response, parse_head, response_head

__all__ = ["HttpServer", "Limits"]

log = logging.getLogger("monitor.http")

# What a client that vanished looks like; each is one debug line, never a traceback.
_CLIENT_GONE = (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError, OSError)
_ACCEPT_PAUSE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_LIMIT_WARNING_EVERY = 60.0  # seconds between warnings that the connection cap was hit
_UNAUTHORIZED = Response.text(
    401, "unauthorized", ("WWW-Authenticate", 'Basic realm="kmeans-monitor", charset="UTF-8"')
)
_BUSY = Response.text(503, "too many connections")


@dataclass(frozen=True)
class Limits:
    """How much the server takes before pushing back; sized for a few Prometheus scrapers."""

    workers: int = 4  # threads that run routes (and bcrypt); the loop never blocks on them
    max_connections: int = 256  # open client connections, far below any fd limit
    header_timeout: float = 10.0  # seconds from connect (or first byte) to a whole head
    idle_timeout: float = 30.0  # seconds a keep-alive connection may wait for a request
    write_timeout: float = 10.0  # seconds a client may take to read one response
    handshake_timeout: float = 10.0  # seconds for the TLS handshake
    max_requests_per_connection: int = 1000  # then "Connection: close"
    max_head_bytes: int = 16384  # request line and headers together

    def __post_init__(self) -> None:
        for name in ("workers", "max_connections", "max_requests_per_connection"):
            check_int(getattr(self, name), name, low=1, owner="Limits")
        check_int(self.max_head_bytes, "max_head_bytes", low=1024, owner="Limits")
        for name in ("header_timeout", "idle_timeout", "write_timeout", "handshake_timeout"):
            check_float(getattr(self, name), name, low=0.0, low_inclusive=False, owner="Limits")


class _Conn:
    """One admitted client connection."""

    __slots__ = ("peer", "task")

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.task: asyncio.Task[None] | None = None


def _peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's own reports: a socket error is a client that left, anything else a bug."""
    exc = context.get("exception")
    if isinstance(exc, OSError):
        log.debug("connection error: %s: %s", context.get("message"), exc)
    else:
        log.error("HTTP event loop: %s", context.get("message"), exc_info=exc)


class _Engine:
    """Everything that runs on the event loop; only ``request_stop`` is called from outside."""

    def __init__(
        self,
        listener: socket.socket,
        routes: Routes,
        limits: Limits,
        tls: ssl.SSLContext | None,
        auth: BasicAuth | None,
        public_paths: Collection[str],
    ) -> None:
        self._listener = listener
        self._routes = routes
        self._limits = limits
        self._tls = tls
        self._auth = auth
        self._public = frozenset(public_paths)
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="http-worker")
        self._conns: dict[_Conn, None] = {}  # every admitted connection
        self._idle: dict[_Conn, None] = {}  # waiting for a request head, longest-waiting first
        self._closing = False
        self._last_limit_warning = -_LIMIT_WARNING_EVERY
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def request_stop(self) -> None:
        """Ask ``serve`` to stop (thread-safe)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def serve(self, started: threading.Event, grace: float) -> None:
        """Accept and answer until ``request_stop``; then let busy requests end in ``grace``."""
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(_loop_exception)
        self._stop = asyncio.Event()
        accept = asyncio.create_task(self._accept_loop())
        started.set()
        try:
            await self._stop.wait()
        finally:
            self._closing = True
            accept.cancel()
            self._listener.close()
            for conn in list(self._idle):
                self._drop(conn)
            busy = [c.task for c in self._conns if c.task is not None]
            if busy:
                await asyncio.wait(busy, timeout=grace)
            for conn in list(self._conns):
                self._drop(conn)
            await asyncio.gather(accept, *busy, return_exceptions=True)
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _accept_loop(self) -> None:
        assert self._loop is not None
        while True:
            try:
                sock, address = await self._loop.sock_accept(self._listener)
            except OSError as exc:
                if exc.errno not in _ACCEPT_PAUSE_ERRNOS:
                    continue  # the client gave up before we accepted (ECONNABORTED...)
                # Out of descriptors: pause instead of spinning on a listener that stays readable.
                log.warning("cannot accept connections: %s; pausing 1 s", exc.strerror)
                await asyncio.sleep(1.0)
                continue
            self._admit(sock, _peer(address))

    def _warn_limit(self, action: str) -> None:
        now = time.monotonic()
        if now - self._last_limit_warning >= _LIMIT_WARNING_EVERY:
            self._last_limit_warning = now
            log.warning(
                "HTTP connection limit (%d) reached: %s", self._limits.max_connections, action
            )

    def _admit(self, sock: socket.socket, peer: str) -> None:
        if len(self._conns) >= self._limits.max_connections:
            if not self._idle:
                self._warn_limit("refusing new connections while all are busy")
                self._refuse(sock, peer)
                return
            victim = next(iter(self._idle))
            self._warn_limit("closing the connections that waited longest for a request")
            log.debug("%s: closed to make room for %s", victim.peer, peer)
            self._drop(victim)
        conn = _Conn(peer)
        self._conns[conn] = None
        self._idle[conn] = None
        conn.task = asyncio.create_task(self._connection(conn, sock))

    def _refuse(self, sock: socket.socket, peer: str) -> None:
        log.debug("%s: refused, every connection busy", peer)
        try:
            if self._tls is None:  # a TLS client would need a handshake to read the 503
                sock.setblocking(False)
                sock.send(response_head(_BUSY, keep_alive=False) + _BUSY.body)
        except OSError:
            pass
        finally:
            sock.close()

    def _drop(self, conn: _Conn) -> None:
        """Forget ``conn`` now and cancel its task, which closes its socket."""
        self._conns.pop(conn, None)
        self._idle.pop(conn, None)
        if conn.task is not None and not conn.task.done():
            conn.task.cancel()

    def _set_idle(self, conn: _Conn, idle: bool) -> None:
        if conn not in self._conns:
            return
        if idle:
            self._idle[conn] = None  # re-inserted last: the newest waiter is evicted last
        else:
            self._idle.pop(conn, None)

    async def _connection(self, conn: _Conn, sock: socket.socket) -> None:
        assert self._loop is not None
        writer: asyncio.StreamWriter | None = None
        try:
            reader = asyncio.StreamReader(limit=self._limits.max_head_bytes)
            protocol = asyncio.StreamReaderProtocol(reader)
            tls_timeout = self._limits.handshake_timeout if self._tls is not None else None
            transport, _ = await self._loop.connect_accepted_socket(
                lambda: protocol, sock, ssl=self._tls, ssl_handshake_timeout=tls_timeout
            )
            # No user-space buffering: drain() returns once the kernel has every byte, so
            # a client that stops reading is caught by the write deadline.
            transport.set_write_buffer_limits(high=0)
            writer = asyncio.StreamWriter(transport, protocol, reader, self._loop)
            await self._serve(conn, reader, writer)
        except asyncio.CancelledError:
            pass  # evicted to make room, or the server is stopping
        except _CLIENT_GONE as exc:
            log.debug("%s: connection ended: %s", conn.peer, type(exc).__name__)
        finally:
            self._conns.pop(conn, None)
            self._idle.pop(conn, None)
            if writer is not None:
                writer.transport.abort()
            else:
                sock.close()

    async def _serve(
        self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = self._limits
        for served in range(1, limits.max_requests_per_connection + 1):
            self._set_idle(conn, True)
            try:
                head = await self._read_head(reader, fresh=served == 1)
                self._set_idle(conn, False)
                if head is None:
                    return
                keep = await self._answer(conn, parse_head(head), writer, served)
            except BadRequest as exc:
                self._set_idle(conn, False)
                log.debug("%s: bad request: %s", conn.peer, exc)
                await self._send(writer, Response.text(exc.status, str(exc)), keep=False)
                keep = False
            if not keep:
                await self._close(writer)
                return

    async def _read_head(self, reader: asyncio.StreamReader, *, fresh: bool) -> list[bytes] | None:
        """The lines of the next request head; None when the client closed or went quiet."""
        assert self._loop is not None
        limits = self._limits
        start = self._loop.time()
        try:
            async with asyncio.timeout(limits.header_timeout if fresh else limits.idle_timeout):
                first = await reader.read(1)
        except TimeoutError:
            return None  # nothing started: a quiet close, no 408 to a client that sent nothing
        if not first:
            return None
        # A new connection gets header_timeout in all; a kept one from its first byte.
        deadline = (start if fresh else self._loop.time()) + limits.header_timeout
        try:
            async with asyncio.timeout_at(deadline):
                return await self._read_lines(reader, first)
        except TimeoutError:
            raise BadRequest(408, "request head not received in time") from None

    async def _read_lines(self, reader: asyncio.StreamReader, first: bytes) -> list[bytes]:
        lines: list[bytes] = []
        size = 0
        pending = first
        while True:
            try:
                line = pending if pending == b"\n" else pending + await reader.readline()
            except ValueError:  # one line beyond the reader's limit
                raise BadRequest(431, "request head too large") from None
            pending = b""
            if not line.endswith(b"\n"):
                raise asyncio.IncompleteReadError(line, None)  # closed mid-head
            size += len(line)
            if size > self._limits.max_head_bytes or len(lines) > MAX_HEADERS + 1:
                raise BadRequest(431, "request head too large")
            if line not in (b"\r\n", b"\n"):
                lines.append(line)
            elif lines:
                return lines
            # else: an empty line before the request line, which RFC 9112 says to ignore

    async def _answer(
        self, conn: _Conn, request: Request, writer: asyncio.StreamWriter, served: int
    ) -> bool:
        """Answer ``request``; True when the connection stays open for another."""
        assert self._loop is not None
        keep = (
            request.keep_alive
            and not request.has_body  # its unread body would be taken for the next request
            and served < self._limits.max_requests_per_connection
            and not self._closing
        )
        if request.method in ("GET", "HEAD"):
            response = await self._loop.run_in_executor(self._pool, self._respond, request)
        else:
            response = Response.text(405, "only GET and HEAD", ("Allow", "GET, HEAD"))
            keep = False
        await self._send(writer, response, keep=keep, head_only=request.method == "HEAD")
        log.debug("%s %s %s %d", conn.peer, request.method, request.target, response.status)
        return keep

    def _respond(self, request: Request) -> Response:
        """Runs on a worker: authentication (bcrypt is slow) and the route."""
        path = request.path
        if self._auth is None or path in self._public:
            return dispatch(self._routes, path)
        if not self._auth.check(request.headers.get("authorization")):
            return _UNAUTHORIZED
        return dispatch(self._routes, path)

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        *,
        keep: bool,
        head_only: bool = False,
    ) -> None:
        head = response_head(response, keep_alive=keep)
        # One write, one copy of the body: two small writes would wait on delayed ACKs.
        writer.write(head if head_only else head + response.body)
        async with asyncio.timeout(self._limits.write_timeout):
            await writer.drain()

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close politely (TLS close_notify), but never wait longer than a write may."""
        writer.close()
        try:
            async with asyncio.timeout(self._limits.write_timeout):
                await writer.wait_closed()
        except _CLIENT_GONE:
            pass


def _listen(host: str, port: int) -> socket.socket:
    """A listening, non-blocking socket; OSError (name, port in use) as the OS says it."""
    family, _, _, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)  # a burst of connects waits in the kernel, not in SYN retries
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class HttpServer:
    """The daemon's HTTP(S) server, run by an event loop in a background thread.

    ``web`` adds TLS and basic authentication (every path but ``public_paths``).
    The socket is bound here, so a port in use fails at construction, and
    connections made before ``start`` wait in the kernel's backlog.
    """

    def __init__(
        self,
        host: str,
        port: int,
        routes: Routes,
        *,
        web: WebConfig | None = None,
        limits: Limits | None = None,
        public_paths: Collection[str] = ("/healthz",),
    ) -> None:
        web = web or WebConfig()
        self.limits = limits or Limits()
        tls = ssl_context(web.tls) if web.tls is not None else None
        auth = BasicAuth(web.users) if web.users else None
        self.scheme = "https" if tls is not None else "http"
        self._listener = _listen(host, port)
        self._engine = _Engine(self._listener, routes, self.limits, tls, auth, public_paths)
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._address = self._listener.getsockname()[:2]

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._address
        return str(host), int(port)

    @property
    def open_connections(self) -> int:
        """Client connections admitted and not yet closed."""
        return self._engine.open_connections

    def _run(self) -> None:
        asyncio.run(self._engine.serve(self._started, grace=min(self.limits.write_timeout, 2.0)))

    def start(self) -> None:
        """Serve in the background; returns once connections are being accepted."""
        self._thread.start()
        self._started.wait(timeout=10)

    def stop(self) -> None:
        """Stop accepting, let requests in progress finish briefly, close everything."""
        if self._thread.is_alive():
            self._engine.request_stop()
            self._thread.join(timeout=10)
        self._listener.close()
