"""The HTTP server: one event-loop thread owns every connection, a few workers answer.

Connections cost a socket and a Protocol object, never a thread, and their number is
capped. At the cap a new connection takes the place of the connection that has waited
longest for a request, those that never completed one first (silent or slow clients
before a scraper between two scrapes); only when every admitted connection is busy
with a request is the new one refused (503 on plain HTTP, a plain close on TLS). Every
wait has a deadline: the TLS handshake, the request head (in all, not per read, so a
client sending a byte a second is cut), the idle time between keep-alive requests, and
the pace at which a client reads its response.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from monitor.checks import check_float, check_int
from monitor.exporter import CONTENT_TYPE
from monitor.http._auth import BasicAuth
from monitor.http._certificate import ServerCertificate
from monitor.http._connection import Connection
from monitor.http._metrics import MetricsCache
from monitor.http._routes import (
    VARY_ENCODING,
    Routes,
    allowed_methods,
    dispatch_request,
    is_page,
)
from monitor.http._webconfig import WebConfig
from monitor.http._wire import Request, Response, accepts_gzip, response_head
from monitor.logs import Throttle, in_the_last

__all__ = ["HttpServer", "Limits"]

log = logging.getLogger("monitor.http")

# What a client that vanished looks like (resets, TLS errors and timeouts are all
# OSError); each is one debug line, never a traceback.
_CLIENT_GONE = (OSError, EOFError)
_ACCEPT_PAUSE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_LIMIT_WARNING_EVERY = 60.0  # seconds between warnings that one limit was reached
_ACCEPT_BATCH = 16  # connections accepted per wake-up of the listener
_UNAUTHORIZED = Response.text(
    401, "unauthorized", ("WWW-Authenticate", 'Basic realm="kmeans-monitor", charset="UTF-8"')
)
_BUSY = Response.text(503, "too many connections")
_BODIES_BUSY = Response.text(503, "too many request bodies in flight; retry", ("Retry-After", "1"))
_HEALTHY = Response.text(200, "ok")
_GZIP = ("Content-Encoding", "gzip")
_FAST_BATCH = 64  # small API requests answered together in one turn of the event loop


@dataclass(frozen=True)
class Limits:
    """How much the server takes before pushing back; sized for a few Prometheus scrapers."""

    workers: int = 4  # threads that run routes (bcrypt has its own); the loop never blocks on them
    max_connections: int = 256  # open client connections, far below any fd limit
    header_timeout: float = 10.0  # seconds from connect (or first byte) to a whole head
    idle_timeout: float = 30.0  # seconds a keep-alive connection may wait for a request
    write_timeout: float = 10.0  # seconds in which a client must read 64 KiB of a response
    handshake_timeout: float = 10.0  # seconds for the TLS handshake
    max_requests_per_connection: int = 1000  # then "Connection: close"
    max_head_bytes: int = 16384  # request line and headers together
    max_body_bytes: int = 16 * 2**20  # one API request body (413 beyond)
    # Every body being read or answered at once: bounds the memory bodies take (503 beyond).
    body_budget_bytes: int = 64 * 2**20
    body_timeout: float = 30.0  # seconds from the end of the head to the whole body
    # API bodies up to this size are answered on the event loop, those that arrived
    # together in one call (no worker hand-off); 0 sends every one to a worker. 64 KiB
    # holds 200 rows of 32 float64 features as NPY: a fraction of a millisecond to label.
    fast_body_bytes: int = 65536
    # Added to the nice value of the server's threads (Linux only), so that under CPU
    # contention the kernel runs the model runs first and scrapes with what is left.
    nice: int = 10

    def __post_init__(self) -> None:
        for name in ("workers", "max_connections", "max_requests_per_connection"):
            check_int(getattr(self, name), name, low=1, owner="Limits")
        check_int(self.nice, "nice", low=0, high=19, owner="Limits")
        check_int(self.max_head_bytes, "max_head_bytes", low=1024, owner="Limits")
        check_int(self.max_body_bytes, "max_body_bytes", low=1, owner="Limits")
        # A budget below one body's limit would refuse the largest admissible body forever.
        check_int(
            self.body_budget_bytes, "body_budget_bytes", low=self.max_body_bytes, owner="Limits"
        )
        check_int(self.fast_body_bytes, "fast_body_bytes", low=0, owner="Limits")
        timeouts = ("header_timeout", "idle_timeout", "write_timeout", "handshake_timeout")
        for name in (*timeouts, "body_timeout"):
            check_float(getattr(self, name), name, low=0.0, low_inclusive=False, owner="Limits")


class _Conn:
    """One admitted client connection: its handshake task, then its protocol."""

    __slots__ = ("peer", "protocol", "task")

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.task: asyncio.Task[None] | None = None
        self.protocol: Connection | None = None


def _peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


def _lower_priority(nice: int) -> None:
    """Raise the calling thread's nice value by ``nice``; Linux only, best effort."""
    if nice == 0 or not sys.platform.startswith("linux"):
        return  # elsewhere setpriority on a thread id would renice the whole process
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # a sandbox may forbid it; serving matters more
        log.debug("cannot lower the HTTP threads' priority: %s", exc)


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's own reports: a socket error is a client that left, anything else a bug."""
    exc = context.get("exception")
    if isinstance(exc, OSError):
        log.debug("connection error: %s: %s", context.get("message"), exc)
    else:
        log.error("HTTP event loop: %s", context.get("message"), exc_info=exc)


class _Engine:
    """Everything on the event loop: accepting, admission, the fast path, shutdown.

    Only ``request_stop`` is called from another thread.
    """

    def __init__(
        self,
        listener: socket.socket,
        routes: Routes,
        limits: Limits,
        tls: ServerCertificate | None,
        auth: BasicAuth | None,
        public_paths: Collection[str],
    ) -> None:
        self._listener = listener
        self._routes = routes
        self._limits = limits
        self._tls = tls
        self._auth = auth
        self._public = frozenset(public_paths)
        # What Connection reads from its Host.
        self.header_timeout = limits.header_timeout
        self.idle_timeout = limits.idle_timeout
        self.write_timeout = limits.write_timeout
        self.body_timeout = limits.body_timeout
        self.max_head_bytes = limits.max_head_bytes
        self.max_requests = limits.max_requests_per_connection
        self._body_bytes = 0  # reserved by admitted bodies not yet answered
        # The fast path's /metrics answer: (second of its Date, the framed response).
        self._metrics_framed: dict[bool, tuple[int, Response]] = {}  # by gzipped
        # Small API requests waiting for the next turn of the loop, with their futures.
        self._fast: list[tuple[Request, asyncio.Future[Response]]] = []
        self._pool = ThreadPoolExecutor(
            limits.workers,
            thread_name_prefix="http-worker",
            initializer=_lower_priority,
            initargs=(limits.nice,),
        )
        # bcrypt checks, one at a time: a flood of guesses costs one core, no worker.
        self._checker = (
            None
            if auth is None
            else ThreadPoolExecutor(
                1,
                thread_name_prefix="http-auth",
                initializer=_lower_priority,
                initargs=(limits.nice,),
            )
        )
        self._conns: dict[_Conn, None] = {}  # every admitted connection
        # Connections waiting for a request head, longest-waiting first: those that never
        # completed a request (silent or slow clients), and kept-alive ones that did.
        self._fresh: dict[_Conn, None] = {}
        self._kept: dict[_Conn, None] = {}
        self._dropped = 0  # connections closed (or refused) at max_connections
        self._closing = False
        self._limit_warnings = Throttle(_LIMIT_WARNING_EVERY)  # one line per limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    @property
    def dropped_connections(self) -> int:
        """Connections closed at ``max_connections``: idle ones closed to make room, and
        new ones refused while every one was busy."""
        return self._dropped

    def request_stop(self) -> None:
        """Ask ``serve`` to stop (thread-safe)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def serve(self, started: threading.Event, grace: float) -> None:
        """Accept and answer until ``request_stop``; then let busy requests end in ``grace``."""
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(_loop_exception)
        self._stop = asyncio.Event()
        _lower_priority(self._limits.nice)
        self._accepting()
        started.set()
        try:
            await self._stop.wait()
        finally:
            self._closing = True
            self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            await self._drain(grace)
            self._pool.shutdown(wait=False, cancel_futures=True)
            if self._checker is not None:
                self._checker.shutdown(wait=False, cancel_futures=True)

    async def _drain(self, grace: float) -> None:
        """Close idle connections now, busy ones once answered or after ``grace``."""
        assert self._loop is not None
        deadline = self._loop.time() + grace
        while self._conns and self._loop.time() < deadline:
            for conn in [*self._fresh, *self._kept]:
                self._drop(conn, abort=False)
            await asyncio.sleep(0.02)
        for conn in list(self._conns):
            self._drop(conn)
        await asyncio.sleep(0)  # let the aborted transports close their sockets

    def _accepting(self) -> None:
        if not self._closing and self._loop is not None:
            self._loop.add_reader(self._listener.fileno(), self._accept)

    def _accept(self) -> None:
        """Accept what is waiting, a batch at a time so closes and requests run between."""
        assert self._loop is not None
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _ACCEPT_PAUSE_ERRNOS:
                    continue  # the client gave up before we accepted (ECONNABORTED...)
                # Out of descriptors: pause instead of spinning on a listener that stays
                # readable; one line a minute, not one per pause.
                self._warn_limit(
                    "open-file limit (ulimit -n)",
                    f"reached: cannot accept connections: {exc.strerror}; pausing 1 s at a time",
                )
                self._loop.remove_reader(self._listener.fileno())
                self._loop.call_later(1.0, self._accepting)
                return
            self._admit(sock, _peer(address))

    def _warn_limit(self, limit: str, what: str) -> None:
        """Log ``limit`` reached, at most once every ``_LIMIT_WARNING_EVERY`` seconds for
        each limit (one limit's line does not hide another's), with how often since."""
        said = self._limit_warnings(limit)
        if said is None:
            return
        count, since = said
        if since is None:
            log.warning("HTTP %s %s", limit, what)
        else:
            times = "once" if count == 1 else f"{count} times"
            log.warning("HTTP %s %s (%s %s)", limit, what, times, in_the_last(since))

    def _admit(self, sock: socket.socket, peer: str) -> None:
        limit = f"connection limit ({self._limits.max_connections})"
        if len(self._conns) >= self._limits.max_connections:
            self._dropped += 1
            if not (self._fresh or self._kept):
                self._warn_limit(limit, "reached: refusing new connections while all are busy")
                self._refuse(sock, peer)
                return
            # A client that has completed requests is a scraper between two of them.
            victim = next(iter(self._fresh or self._kept))
            self._warn_limit(
                limit, "reached: closing the connections that waited longest for a request"
            )
            log.debug("%s: closed to make room for %s", victim.peer, peer)
            self._drop(victim)
        conn = _Conn(peer)
        self._conns[conn] = None
        self._fresh[conn] = None
        conn.task = asyncio.create_task(self._open(conn, sock))
        conn.task.add_done_callback(functools.partial(self._opened, conn, sock))

    async def _open(self, conn: _Conn, sock: socket.socket) -> None:
        """Wrap the socket in a transport (after the TLS handshake) and a Connection."""
        assert self._loop is not None
        tls = None if self._tls is None else self._tls.context()
        try:
            await self._loop.connect_accepted_socket(
                lambda: self._protocol(conn),
                sock,
                ssl=tls,
                ssl_handshake_timeout=self._limits.handshake_timeout if tls else None,
                ssl_shutdown_timeout=self._limits.write_timeout if tls else None,
            )
        except _CLIENT_GONE as exc:
            log.debug("%s: connection ended: %s", conn.peer, type(exc).__name__)

    def _opened(self, conn: _Conn, sock: socket.socket, task: asyncio.Task[None]) -> None:
        conn.task = None
        if conn.protocol is None:
            # Cancelled (evicted, stopping), failed, or cancelled before it even started:
            # no transport owns the socket, so close it here.
            self.forget(conn)
            sock.close()

    def _protocol(self, conn: _Conn) -> Connection:
        return Connection(self, conn, conn.peer)

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

    def _drop(self, conn: _Conn, *, abort: bool = True) -> None:
        """Forget ``conn`` now and close it (politely when not ``abort``)."""
        self.forget(conn)
        if conn.protocol is not None:
            if abort:
                conn.protocol.abort()
            else:
                conn.protocol.close()
        elif conn.task is not None:
            conn.task.cancel()

    # -- what Connection calls ------------------------------------------------------

    def attach(self, conn: _Conn, connection: Connection) -> None:
        """The transport is up (TLS: handshake done): ``connection`` now owns the socket."""
        if conn in self._conns:
            conn.protocol = connection
        else:  # dropped while its handshake finished
            connection.abort()

    def set_idle(self, conn: _Conn, idle: bool, *, served: bool) -> None:
        if conn not in self._conns:
            return
        self._fresh.pop(conn, None)
        self._kept.pop(conn, None)
        if idle:  # inserted last: the newest waiter is evicted last
            (self._kept if served else self._fresh)[conn] = None

    def forget(self, conn: _Conn) -> None:
        self._conns.pop(conn, None)
        self._fresh.pop(conn, None)
        self._kept.pop(conn, None)

    def fast_response(self, request: Request) -> Response | None:
        """The answer without a worker when it costs nothing: health, fresh /metrics bytes."""
        path = request.path
        if path not in ("/metrics", "/healthz"):
            return None
        if path == "/healthz":
            return _HEALTHY
        cache = self._routes.metrics
        if not isinstance(cache, MetricsCache):
            return None
        gzipped = accepts_gzip(request.headers.get("accept-encoding"))
        body = cache.peek(gzipped=gzipped)
        return None if body is None else self._metrics_answer(body, gzipped)

    def _metrics_answer(self, body: bytes, gzipped: bool) -> Response:
        """``body`` as a framed response, reused while the bytes and the Date second hold."""
        second = int(time.time())
        answer = self._metrics_framed.get(gzipped)
        if answer is None or answer[0] != second or answer[1].body is not body:
            headers = (_GZIP, VARY_ENCODING) if gzipped else (VARY_ENCODING,)
            answer = (second, Response.framed(200, body, CONTENT_TYPE, *headers))
            self._metrics_framed[gzipped] = answer
        return answer[1]

    def _metrics_gzipped(self, request: Request) -> Response | None:
        """/metrics compressed, for a scraper that accepts gzip (Prometheus does)."""
        cache = self._routes.metrics
        if request.path != "/metrics" or not isinstance(cache, MetricsCache):
            return None
        if not accepts_gzip(request.headers.get("accept-encoding")):
            return None
        return self._metrics_answer(cache.gzipped(), True)

    def submit(self, request: Request) -> asyncio.Future[Response]:
        assert self._loop is not None
        return self._loop.run_in_executor(self._pool, self._respond, request)

    def _respond(self, request: Request) -> Response:
        """Runs on a worker: the route of a request whose credentials are settled."""
        return self._metrics_gzipped(request) or dispatch_request(self._routes, request)

    # -- API requests with a body -----------------------------------------------------

    def refuse_method(self, request: Request) -> Response | None:
        """405 for a method the path does not answer, naming those it does; 404 for a
        path that is not one of the server's, whatever the method (as its GET)."""
        allowed, api = allowed_methods(self._routes, request.path)
        if request.method in allowed:
            return None
        if not (api or is_page(request.path)):
            return Response.text(404, "not found")
        if api:
            self.refused(request, 405)
        return Response.text(405, f"only {' and '.join(allowed)}", ("Allow", ", ".join(allowed)))

    def admit_body(self, request: Request, length: int) -> Response | None:
        """The API's own checks, then the size limit; the budget is taken as bytes arrive."""
        api = self._routes.api
        assert api is not None  # only the API allows POST
        refusal = api.admit(request)
        if refusal is not None:
            return refusal
        if length > self._limits.max_body_bytes:
            return Response.text(
                413, f"request body of {length} bytes; at most {self._limits.max_body_bytes}"
            )
        return None

    def reserve_body(self, more: int) -> Response | None:
        """Take ``more`` bytes of a body that arrived from the budget of all bodies in
        flight, or the 503. Bytes received, not announced: connections that announce big
        bodies and send none of them hold nothing (helper-143: four such held it all)."""
        if self._body_bytes + more > self._limits.body_budget_bytes:
            # Each refusal is a 503 of the model's availability: the log says why (helper-82).
            self._warn_limit(
                f"request body budget ({self._limits.body_budget_bytes} bytes in flight)",
                f"reached: answering 503 to label requests while {self._body_bytes} bytes are held",
            )
            return _BODIES_BUSY
        self._body_bytes += more
        return None

    def release_body(self, length: int) -> None:
        self._body_bytes -= length

    def check_auth(self, request: Request) -> asyncio.Future[Response | None] | None:
        """None when no check is needed (or the credentials are remembered); else the
        check on the one checking thread, which answers None or the 401. The workers
        never wait on bcrypt, so a flood of guesses cannot hold up remembered clients."""
        auth = self._auth
        header = request.headers.get("authorization")
        if auth is None or request.path in self._public or auth.remembered(header):
            return None
        assert self._loop is not None and self._checker is not None
        return self._loop.run_in_executor(
            self._checker, lambda: None if auth.check(header) else _UNAUTHORIZED
        )

    def answer_api(self, request: Request) -> asyncio.Future[Response]:
        """Small requests: together, on the loop, next turn; others on a worker."""
        assert self._loop is not None
        if len(request.body) > self._limits.fast_body_bytes:
            return self._loop.run_in_executor(self._pool, dispatch_request, self._routes, request)
        future: asyncio.Future[Response] = self._loop.create_future()
        if not self._fast:
            # After the callbacks of this turn: the requests that arrive with this one
            # (from other connections) are answered in the same call.
            self._loop.call_soon(self._answer_fast)
        self._fast.append((request, future))
        return future

    def _answer_fast(self) -> None:
        assert self._loop is not None
        batch, self._fast = self._fast[:_FAST_BATCH], self._fast[_FAST_BATCH:]
        if self._fast:
            self._loop.call_soon(self._answer_fast)
        api = self._routes.api
        assert api is not None
        try:
            responses = api.handle([request for request, _ in batch])
            if len(responses) != len(batch):
                raise RuntimeError(f"{len(responses)} answers to {len(batch)} requests")
        except Exception:
            log.exception("error serving %d API request(s)", len(batch))
            responses = [Response.text(500, "internal error")] * len(batch)
        for (_, future), response in zip(batch, responses, strict=True):
            if not future.done():
                future.set_result(response)

    def refused(self, request: Request, status: int) -> None:
        api = self._routes.api
        if api is None:
            return
        try:
            api.refused(request, status)
        except Exception:  # accounting must never cost an answer
            log.exception("error counting a refused request")


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

    ``web`` adds TLS and basic authentication (every path but ``public_paths``);
    ``web_config_name`` names its file in the log lines of a certificate reloaded.
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
        web_config_name: str = "web config",
    ) -> None:
        web = web or WebConfig()
        self.limits = limits or Limits()
        #: The TLS certificate, loaded again when its files change; None: plain HTTP.
        self.certificate = (
            ServerCertificate(web.tls, web_config_name) if web.tls is not None else None
        )
        auth = BasicAuth(web.users) if web.users else None
        self.scheme = "https" if self.certificate is not None else "http"
        self._listener = _listen(host, port)
        self._engine = _Engine(
            self._listener, routes, self.limits, self.certificate, auth, public_paths
        )
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._address = self._listener.getsockname()[:2]

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._address
        return str(host), int(port)

    @property
    def url(self) -> str:
        """``scheme://HOST:PORT``, an IPv6 host in brackets (``http://[::1]:9310``)."""
        return f"{self.scheme}://{_peer(self.address)}"

    @property
    def open_connections(self) -> int:
        """Client connections admitted and not yet closed."""
        return self._engine.open_connections

    @property
    def dropped_connections(self) -> int:
        """Connections closed at ``limits.max_connections`` since the start (any thread)."""
        return self._engine.dropped_connections

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
