"""A Connection driven by hand through a fake transport: pause_writing and resume_writing
end a response only when the transport held some of it. asyncio's TLS transport calls
them for its own writes too (with a write limit of 0, at every read and every write),
so a resume may come while a request is being read, checked or answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from monitor.http import Request, Response
from monitor.http._connection import Connection
from tests.http_server._support import echo, post_head

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
# JSON with a blank line between two members: the end of a head, were it parsed as one.
BODY = b'{"note": "' + b"a" * 3000 + b'",\r\n\r\n"more": "' + b"b" * 3000 + b'"}'


class FakeTransport(asyncio.Transport):
    """Records what the connection writes; holds ``held`` bytes of it (0: all sent)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.held = 0
        self.reading = True
        self.closed = False
        self.during_write: Callable[[], None] | None = None

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))
        if self.during_write is not None:
            self.during_write()

    def get_write_buffer_size(self) -> int:
        return self.held

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def statuses(self) -> list[int]:
        return [int(data.split(b" ", 2)[1]) for data in self.written]


class FakeHost:
    """The server side: /healthz on the fast path, POST bodies and credential checks
    answered when the test says so."""

    header_timeout = idle_timeout = write_timeout = body_timeout = 60.0
    max_head_bytes = 16384
    max_requests = 100
    closing = False

    def __init__(self) -> None:
        self.idle: list[bool] = []
        self.bodies: list[bytes] = []
        self.answers: list[asyncio.Future[Response]] = []
        self.check: asyncio.Future[Response | None] | None = None
        self.checks = 0

    def attach(self, key: Any, connection: Connection) -> None:
        pass

    def set_idle(self, key: Any, idle: bool, *, served: bool) -> None:
        self.idle.append(idle)

    def forget(self, key: Any) -> None:
        pass

    def fast_response(self, request: Request) -> Response | None:
        return Response.text(200, "ok") if request.path == "/healthz" else None

    def submit(self, request: Request) -> asyncio.Future[Response]:
        raise AssertionError("no page in these tests")

    def refuse_method(self, request: Request) -> Response | None:
        return None

    def admit_body(self, request: Request, length: int) -> Response | None:
        return None

    def reserve_body(self, more: int) -> Response | None:
        return None

    def release_body(self, length: int) -> None:
        pass

    def check_auth(self, request: Request) -> asyncio.Future[Response | None] | None:
        self.checks += 1
        return self.check

    def answer_api(self, request: Request) -> asyncio.Future[Response]:
        self.bodies.append(request.body)
        self.answers.append(asyncio.get_running_loop().create_future())
        return self.answers[-1]

    def refused(self, request: Request, status: int) -> None:
        raise AssertionError(f"refused with {status}")


def run(test: Callable[[FakeHost, FakeTransport, Connection], Coroutine[Any, Any, None]]) -> None:
    """Run ``test`` on a fresh loop with a connection made, as asyncio's TLS transport
    leaves it: paused (a write limit of 0 is reached by an empty buffer)."""

    async def main() -> None:
        host, transport = FakeHost(), FakeTransport()
        connection = Connection(host, "key", "peer")
        connection.connection_made(transport)
        connection.pause_writing()
        try:
            await test(host, transport, connection)
        finally:
            connection.connection_lost(None)

    asyncio.run(main())


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_resume_while_a_body_is_read_does_not_end_its_request() -> None:
    async def test(host: FakeHost, transport: FakeTransport, connection: Connection) -> None:
        request = post_head(len(BODY)) + BODY
        connection.data_received(request[:4000])  # the head and part of the body
        connection.resume_writing()  # the TLS transport's, after that read
        await turns()
        connection.data_received(request[4000:])
        connection.pause_writing()
        await turns()
        assert (transport.written, host.bodies) == ([], [BODY])
        host.answers[0].set_result(Response.text(200, echo(BODY).decode().strip()))
        await turns()
        assert transport.statuses() == [200] and host.idle[-1] is True

    run(test)


def test_a_resume_while_credentials_are_checked_reads_nothing_more() -> None:
    async def test(host: FakeHost, transport: FakeTransport, connection: Connection) -> None:
        host.check = asyncio.get_running_loop().create_future()
        connection.data_received(HEALTHZ)
        assert not transport.reading
        connection.resume_writing()
        await turns()
        assert not transport.reading
        connection.data_received(HEALTHZ)  # pipelined: it waits for the first
        await turns()
        assert (transport.reading, transport.written, host.checks) == (False, [], 1)
        host.check.set_result(None)  # the credentials hold
        await turns()
        assert transport.statuses() == [200, 200] and transport.reading

    run(test)


def test_a_pause_within_a_write_the_transport_took_whole_still_ends_the_response() -> None:
    async def test(host: FakeHost, transport: FakeTransport, connection: Connection) -> None:
        connection.resume_writing()  # TLS: the limit of 0 toggles at every read and write
        transport.during_write = connection.pause_writing
        connection.data_received(HEALTHZ)
        await turns()
        assert transport.statuses() == [200] and host.idle[-1] is True
        connection.data_received(HEALTHZ)  # the next one is read and answered
        await turns()
        assert transport.statuses() == [200, 200]

    run(test)


def test_a_response_the_transport_holds_ends_when_it_has_sent_it() -> None:
    async def test(host: FakeHost, transport: FakeTransport, connection: Connection) -> None:
        transport.held = 100  # the client reads slowly
        connection.data_received(HEALTHZ + post_head(len(BODY)) + BODY)
        await turns()
        assert transport.statuses() == [200] and host.idle[-1] is False and host.bodies == []
        transport.held = 0
        connection.resume_writing()
        await turns()
        assert host.bodies == [BODY]
        connection.resume_writing()  # a resume with nothing held: the body's request goes on
        await turns()
        assert host.idle[-1] is False
        host.answers[0].set_result(Response.text(200, "done"))
        await turns()
        assert transport.statuses() == [200, 200]

    run(test)
