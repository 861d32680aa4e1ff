"""One client connection as an asyncio Protocol: parse, answer, keep alive, time out.

A Protocol, not a coroutine over streams: a request is a few callbacks on the event
loop and one timer per connection is re-armed as the connection changes state, which
costs a fraction of the stream machinery (docs/decisions.md has the figures).

States: waiting for a head (the server may evict the connection then), settling the
credentials of a request (reading paused: nothing of it is looked at before they are
verified), reading a body (an API POST: admitted, then read in full within
``body_timeout``, each byte held of the server's budget of bodies as it arrives),
answering (on the fast path within the callback; a page on a worker with reading
paused; an API request at the loop's next turn or on a worker), writing (the client
must keep reading, ``MIN_PROGRESS_BYTES`` per ``write_timeout``), lingering (after the
last response), closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from monitor.http._wire import (
    CONTINUE,
    BadRequest,
    Request,
    Response,
    parse_head,
    response_head,
    take_head,
)

__all__ = ["Connection", "Host"]

log = logging.getLogger("monitor.http")

# A client must take at least this much of its response per write_timeout (64 KiB per
# 10 s is 6.4 KB/s: far below any real scraper, far above a slow-read attack).
MIN_PROGRESS_BYTES = 65536
_BODY_TIMEOUT = Response.text(408, "request body not received in time")


class Host(Protocol):
    """What a connection needs from the server that owns it."""

    header_timeout: float
    idle_timeout: float
    write_timeout: float
    body_timeout: float
    max_head_bytes: int
    max_requests: int

    @property
    def closing(self) -> bool: ...

    # ``key`` is whatever the host gave the connection to name itself.
    def attach(self, key: Any, connection: Connection) -> None: ...

    def set_idle(self, key: Any, idle: bool, *, served: bool) -> None: ...

    def forget(self, key: Any) -> None: ...

    def fast_response(self, request: Request) -> Response | None: ...

    def submit(self, request: Request) -> asyncio.Future[Response]: ...

    def refuse_method(self, request: Request) -> Response | None: ...

    # A refusal of a POST body before it is read, or None: then read it.
    def admit_body(self, request: Request, length: int) -> Response | None: ...

    # ``more`` bytes of a body received: held of the budget of bodies in flight, or a refusal.
    def reserve_body(self, more: int) -> Response | None: ...

    def release_body(self, length: int) -> None: ...

    # A future of the refusal (401) or None, when credentials need a worker's check.
    def check_auth(self, request: Request) -> asyncio.Future[Response | None] | None: ...

    def answer_api(self, request: Request) -> asyncio.Future[Response]: ...

    def refused(self, request: Request, status: int) -> None: ...


@dataclasses.dataclass
class _Body:
    """An API request whose body is being read."""

    request: Request
    length: int
    keep: bool


class Connection(asyncio.Protocol):
    """The HTTP/1.1 side of one transport; ``key`` is how the host knows it."""

    def __init__(self, host: Host, key: Any, peer: str) -> None:
        self._host = host
        self._key = key
        self.peer = peer
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._expire: Callable[[], None] | None = None
        self._reading_paused = False
        self._closing = False
        self._lingering = False
        self._waiting_first_byte = False  # the timer is the keep-alive idle one
        self._answering = False
        self._response_held = False  # _send's response not all taken from the transport yet
        self._unsent = 0  # bytes not yet taken by the kernel when the write deadline was set
        self._keep = True
        self._eof = False
        self._served = 0
        self._body: _Body | None = None
        self._reserved = 0  # body bytes this connection holds of the server's budget

    # -- timers ---------------------------------------------------------------------

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` in ``delay`` seconds unless re-armed or disarmed first.

        Lazy: a pending timer that fires no later than the new deadline is kept and
        re-arms itself when it fires, so a request costs no timer-heap churn.
        """
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + delay
        self._expire = callback
        if self._timer is None or self._timer.when() > self._deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(self._deadline, self._on_timer)

    def _disarm(self) -> None:
        self._expire = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._expire is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:  # re-armed since: wait for the new deadline
            self._timer = loop.call_at(self._deadline, self._on_timer)
            return
        expire, self._expire = self._expire, None
        expire()

    def _on_head_timeout(self) -> None:
        if self._buffer:  # a head started and did not finish: a slow client
            self._reject(BadRequest(408, "request head not received in time"))
        else:
            log.debug("%s: closed, no request in time", self.peer)
            self.close()

    def _on_idle_timeout(self) -> None:
        log.debug("%s: closed, idle keep-alive", self.peer)
        self.close()

    def _watch_write(self) -> None:
        assert self._transport is not None
        self._unsent = self._transport.get_write_buffer_size()
        self._arm(self._host.write_timeout, self._on_write_timeout)

    def _on_write_timeout(self) -> None:
        # A big response to a slow link may take longer than one period: what counts is
        # that the client reads at a useful pace, not that it has finished.
        unsent = self._transport.get_write_buffer_size() if self._transport else 0
        if self._unsent - unsent >= min(self._unsent, MIN_PROGRESS_BYTES):
            self._watch_write()
            return
        log.debug("%s: connection ended: client did not read its response in time", self.peer)
        self.abort()

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        # No user-space buffering: a response is written once the transport holds none of
        # it. Plain TCP: the kernel has every byte. TLS: the encrypted bytes may still wait
        # in asyncio's socket transport under the TLS one, which does not count them.
        transport.set_write_buffer_limits(high=0)
        self._arm(self._host.header_timeout, self._on_head_timeout)
        self._host.attach(self._key, self)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # after the last response: read only to let the client see it whole
        self._buffer += data
        if self._body is not None:
            self._take_body()
            return
        if self._answering:
            # The next request waits its turn; a client that floods meanwhile is paused.
            if len(self._buffer) > self._host.max_head_bytes:
                self._pause_reading()
            return
        if self._waiting_first_byte:
            self._waiting_first_byte = False
            self._arm(self._host.header_timeout, self._on_head_timeout)
        self._next_request()

    def eof_received(self) -> bool:
        self._eof = True
        if self._transport is not None and self._transport.get_extra_info("sslcontext"):
            # TLS: the client's close_notify. asyncio closes a TLS transport whatever the
            # answer (True only adds a warning to the log, one per such client).
            return False
        # Answer a request in flight before closing; otherwise let asyncio close. A body
        # that stops half-way will never be whole: close rather than wait for its deadline.
        return self._answering and not self._lingering and self._body is None

    def resume_writing(self) -> None:
        """The transport's buffer is empty: finish a response ``_send`` left in it.

        Only that: asyncio's TLS transport calls pause_writing and resume_writing each
        time it moves bytes, its own too (TLS 1.3 session tickets), and with a limit of
        0 an empty buffer counts as full: it alternates at every read and write. So
        neither says anything about our response; ``_send`` asks the transport what it
        holds instead. A resume taken for the end of a response ended requests still
        being read, checked or answered: the rest of a body was parsed as the next
        request (431, 400), a pipelined request was answered out of turn.
        """
        if self._response_held:
            self._response_held = False
            if not self._closing:
                self._disarm()
                self._after_response()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        self._body = None
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        self._host.forget(self._key)
        if exc is not None:
            log.debug("%s: connection ended: %s", self.peer, type(exc).__name__)

    # -- requests -------------------------------------------------------------------

    def _next_request(self) -> None:
        if self._answering or self._transport is None:
            return
        try:
            lines = take_head(self._buffer, self._host.max_head_bytes)
            if lines is None:
                return
            request = parse_head(lines)
        except BadRequest as exc:
            self._reject(exc)
            return
        self._answer(request)

    def _begin_answer(self) -> None:
        self._answering = True
        self._host.set_idle(self._key, False, served=self._served > 0)
        self._disarm()

    def _pause_reading(self) -> None:
        # While a request is answered or its credentials checked: the next waits its turn.
        if self._transport is not None and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()

    def _answer(self, request: Request) -> None:
        self._begin_answer()
        self._served += 1
        keep = (
            request.keep_alive and self._served < self._host.max_requests and not self._host.closing
        )
        check = self._host.check_auth(request)
        if check is None:
            self._route(request, keep)
            return
        # bcrypt runs on the server's one checking thread: nothing of the request is
        # looked at (its path, its body) before it says yes.
        self._pause_reading()
        check.add_done_callback(functools.partial(self._authorized, request, keep))

    def _authorized(
        self, request: Request, keep: bool, future: asyncio.Future[Response | None]
    ) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if future.cancelled():
            self.abort()
            return
        failed = future.exception() is not None  # a bug in the check: never a way in
        refusal = Response.text(500, "internal error") if failed else future.result()
        if refusal is None:
            self._route(request, keep)
        elif request.method == "POST":
            self._refuse(request, refusal)
        else:  # an unread body would be taken for the next request
            self._send(request, refusal, keep=keep and not request.has_body)

    def _route(self, request: Request, keep: bool) -> None:
        """Answer a request whose credentials are settled."""
        refusal = self._host.refuse_method(request)
        if refusal is not None:
            self._send(request, refusal, keep=False)
            return
        if request.method == "POST":  # only the API allows it
            self._start_body(request, keep)
            return
        keep = keep and not request.has_body  # its unread body would be taken for the next request
        response = self._host.fast_response(request)
        if response is not None:
            self._send(request, response, keep=keep)
            return
        self._pause_reading()
        future = self._host.submit(request)
        future.add_done_callback(functools.partial(self._answered, request, keep))

    def _answered(self, request: Request, keep: bool, future: asyncio.Future[Response]) -> None:
        if self._transport is None or self._transport.is_closing():
            return  # the client left while a worker answered
        if future.cancelled():
            self.abort()
            return
        try:
            response = future.result()
        except Exception:  # a bug outside the routes (they answer 500 themselves)
            log.exception("error answering %s", request.target)
            response, keep = Response.text(500, "internal error"), False
        self._send(request, response, keep=keep)

    # -- request bodies (API POSTs) ------------------------------------------------------

    def _start_body(self, request: Request, keep: bool) -> None:
        """Admit the body (size, API checks, the server's budget), then read it."""
        try:
            length = request.content_length()
        except BadRequest as exc:
            self._refuse(request, Response.text(exc.status, str(exc)))
            return
        refusal = self._host.admit_body(request, length)
        if refusal is not None:
            self._refuse(request, refusal)
            return
        self._body = _Body(request, length, keep)
        assert self._transport is not None
        self._arm(self._host.body_timeout, self._on_body_timeout)
        if request.expects_continue and len(self._buffer) < length:
            self._transport.write(CONTINUE)
        self._resume_reading()
        self._take_body()

    def _take_body(self) -> None:
        body = self._body
        if body is None:
            return
        received = min(len(self._buffer), body.length)
        if received > self._reserved:  # held as it arrives, not as it is announced
            refusal = self._host.reserve_body(received - self._reserved)
            if refusal is not None:
                self._refuse(body.request, refusal)
                return
            self._reserved = received
        if received < body.length:
            return
        with memoryview(self._buffer) as view:  # one copy of the body, not two
            data = bytes(view[: body.length])
        del self._buffer[: body.length]
        self._body = None
        self._disarm()
        # Reading goes on (pausing costs two epoll calls, more than answering a small
        # request): what arrives meanwhile waits in the buffer, up to a head's worth.
        head = body.request  # built directly: dataclasses.replace costs more than a parse
        request = Request(
            head.method, head.target, head.version, head.headers, data, time.monotonic()
        )
        future = self._host.answer_api(request)
        future.add_done_callback(functools.partial(self._answered, request, body.keep))

    def _on_body_timeout(self) -> None:
        if self._body is not None:
            log.debug("%s: request body not received in time", self.peer)
            self._refuse(self._body.request, _BODY_TIMEOUT)

    def _refuse(self, request: Request, response: Response) -> None:
        """Answer an API POST without reading (the rest of) its body, and close."""
        self._body = None
        self._host.refused(request, response.status)
        self._send(request, response, keep=False)

    def _release(self) -> None:
        if self._reserved:
            self._host.release_body(self._reserved)
            self._reserved = 0

    def _reject(self, exc: BadRequest) -> None:
        log.debug("%s: bad request: %s", self.peer, exc)
        self._begin_answer()
        if exc.request is not None:  # its request line was read: the API counts it
            self._host.refused(exc.request, exc.status)
        self._send(None, Response.text(exc.status, str(exc)), keep=False)

    def _send(self, request: Request | None, response: Response, *, keep: bool) -> None:
        self._release()
        if self._transport is None or self._transport.is_closing():
            return
        head_only = request is not None and request.method == "HEAD"
        if keep and not head_only and response.wire is not None:
            # Framed once for every scrape of the same bytes: no head to format, no
            # copy of the body into a new one.
            self._transport.write(response.wire)
        else:
            head = response_head(response, keep_alive=keep)
            # One write: two small ones would wait on delayed ACKs.
            self._transport.write(head if head_only else head + response.body)
        if request is not None:
            log.debug("%s %s %s %d", self.peer, request.method, request.target, response.status)
        self._keep = keep
        # Asked after the write, and flagged only then: a resume_writing within the write
        # (TLS, for its own bytes) must not finish this response before it is framed.
        if self._transport.get_write_buffer_size():
            self._response_held = True  # resume_writing finishes it
            self._watch_write()
        else:
            self._after_response()

    def _after_response(self) -> None:
        if not self._keep or self._eof:
            self.close(linger=not self._eof)
            return
        self._answering = False
        self._host.set_idle(self._key, True, served=self._served > 0)
        if self._buffer:  # the client sent its next request early (pipelining)
            self._arm(self._host.header_timeout, self._on_head_timeout)
            # Not a direct call: a long pipeline would otherwise recurse request by request.
            asyncio.get_running_loop().call_soon(self._next_request)
        else:
            self._waiting_first_byte = True
            self._arm(self._host.idle_timeout, self._on_idle_timeout)
        self._resume_reading()

    # -- ending ---------------------------------------------------------------------

    def close(self, *, linger: bool = False) -> None:
        """Close after what was written (TLS: with close_notify, bounded by asyncio).

        With ``linger``, after a last response: send FIN, then read and discard until
        the client closes too, for at most the time it has to read a response. Closing
        with unread bytes (a body we did not want, a flood) would send a reset, and a
        reset can destroy the response before the client has read it. A lingering
        connection is the first to go when the connection cap needs room.
        """
        self._disarm()
        self._closing = self._answering = True  # nothing more is read or answered
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if linger and transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError as exc:
                # The client reset meanwhile (its FIN went unseen while reading was
                # paused): shutdown fails with ENOTCONN. Raised out of here, it left the
                # socket open with no reader and no timer: a descriptor lost per client.
                log.debug("%s: connection ended: %s", self.peer, type(exc).__name__)
                transport.abort()
                return
            self._lingering = True
            self._buffer.clear()
            if self._reading_paused:
                self._reading_paused = False
                transport.resume_reading()
            self._arm(self._host.write_timeout, self.abort)
            self._host.set_idle(self._key, True, served=False)
        else:
            transport.close()

    def abort(self) -> None:
        """Drop the connection now."""
        self._disarm()
        self._closing = self._answering = True
        if self._transport is not None:
            self._transport.abort()
