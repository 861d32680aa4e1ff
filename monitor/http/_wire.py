"""HTTP/1.x on the wire: parse a request head, build a response head (pure functions).

Bodies are read only for POST to the API, and only with a ``Content-Length`` (no
chunked decoding: a chunked body is refused with 411). Any other request that
announces a body is answered and the connection closed, which keeps the unread body
from being taken for the next request.
"""

from __future__ import annotations

import email.utils
import functools
import re
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "CONTINUE",
    "MAX_HEADERS",
    "BadRequest",
    "Request",
    "Response",
    "accepts_gzip",
    "parse_head",
    "response_head",
    "take_head",
]

MAX_HEADERS = 100  # browsers send about 15; hundreds are an attack on the parser
SERVER = "kmeans-monitor"  # no version: nothing for a scanner to match against a CVE list
# The interim answer to "Expect: 100-continue": send the body now (curl waits a second
# for it before sending a body larger than 1 KiB).
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class BadRequest(ValueError):
    """A request the server answers with ``status`` and then closes the connection;
    ``request`` is its request line (no headers) when that was read, so that the API
    counts a refusal on its paths."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.request: Request | None = None


@dataclass(frozen=True)
class Request:
    """A parsed request (head, and the body of an API POST); header names are lower-case."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes = b""
    # time.monotonic() when the whole request was in (API requests): latencies start here.
    received: float = 0.0

    @property
    def path(self) -> str:
        return _path(self.target)

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters (the first value of each)."""
        return {k: v[0] for k, v in parse_qs(urlsplit(self.target).query).items()}

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 only when asked."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.1":
            return "close" not in tokens
        return "keep-alive" in tokens

    @property
    def has_body(self) -> bool:
        length = self.headers.get("content-length", "0").strip()
        return "transfer-encoding" in self.headers or length not in ("", "0")

    def content_length(self) -> int:
        """The body's length in bytes (0 without the header); BadRequest when it is invalid.

        Repeated headers arrive joined by commas; equal repeats are one length (RFC 9110
        section 8.6), different ones a 400, like a chunked body sent with a length.
        """
        length = self._length
        if isinstance(length, BadRequest):
            raise length
        return length

    @functools.cached_property  # the server and the API both ask
    def _length(self) -> int | BadRequest:
        try:
            return self._parse_length()
        except BadRequest as exc:
            return exc

    def _parse_length(self) -> int:
        if "transfer-encoding" in self.headers:
            raise BadRequest(411, "a request body needs a Content-Length; chunked is not accepted")
        raw = self.headers.get("content-length")
        return 0 if raw is None else _content_length(raw)

    @property
    def expects_continue(self) -> bool:
        """The client waits for "100 Continue" before it sends its body."""
        expect = self.headers.get("expect", "").lower()
        return self.version == "HTTP/1.1" and expect == "100-continue"


@dataclass(frozen=True)
class Response:
    """What a route answers; the server adds the framing headers."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())
    # The whole keep-alive answer (head and body), framed once for many requests
    # (``framed``); None frames it per request.
    wire: bytes | None = field(default=None, repr=False, compare=False)

    @classmethod
    def text(cls, status: int, text: str, *headers: tuple[str, str]) -> Response:
        return cls(status, (text + "\n").encode(), headers=headers)

    @classmethod
    def framed(
        cls, status: int, body: bytes, content_type: str, *headers: tuple[str, str]
    ) -> Response:
        """A response that carries its keep-alive framing, built now: its Date is now's."""
        plain = cls(status, body, content_type, headers)
        wire = response_head(plain, keep_alive=True) + body
        return cls(status, body, content_type, headers, wire=wire)


def _content_length(raw: str) -> int:
    values = {v.strip() for v in raw.split(",")}
    # 18 digits: no real body is an exabyte, and int() of a huge string is slow.
    value = values.pop() if len(values) == 1 else ""
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise BadRequest(400, "invalid Content-Length")
    return int(value)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header value admits gzip (RFC 9110 section 12.5.3):
    ``gzip`` or ``x-gzip`` listed with a weight above 0."""
    if not accept_encoding:
        return False
    for item in accept_encoding.split(","):
        coding, *params = item.split(";")
        if coding.strip().lower() not in ("gzip", "x-gzip"):
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value.strip()) > 0.0
                except ValueError:
                    return False
        return True
    return False


# A target made of these alone is its own path (no query, fragment, escape, authority).
_PLAIN_TARGET = re.compile(r"/(?!/)[A-Za-z0-9/._~!$&'()*+,;=:@-]*")


def _path(target: str) -> str:
    """The decoded path of a request target; scrapes take the shortcut (read by each
    layer a request goes through: a parse of the URL each time costs more than the rest)."""
    if _PLAIN_TARGET.fullmatch(target):
        return target
    return unquote(urlsplit(target).path)


def take_head(buffer: bytearray, max_bytes: int) -> list[bytes] | None:
    """Remove one complete head from ``buffer`` and return its lines; None while partial.

    Empty lines before a request line are dropped (RFC 9112 section 2.2), and a bare LF
    ends a line as well as CRLF does. A head longer than ``max_bytes`` is a 431.
    """
    if buffer[:1] in (b"\r", b"\n"):
        del buffer[: len(buffer) - len(buffer.lstrip(b"\r\n"))]
    ends = [(i, n) for i, n in ((buffer.find(b"\r\n\r\n"), 4), (buffer.find(b"\n\n"), 2)) if i >= 0]
    end, separator = min(ends) if ends else (len(buffer), 0)
    if end > max_bytes:
        raise BadRequest(431, "request head too large")
    if not ends:
        return None
    lines = bytes(buffer[:end]).split(b"\n")
    del buffer[: end + separator]
    return lines


def parse_head(lines: list[bytes]) -> Request:
    """Parse the request line and header lines (each with its line ending)."""
    try:
        request_line = lines[0].decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise BadRequest(400, "request line is not ASCII") from None
    parts = request_line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(505, f"unsupported version {version[:16]!r}")
    try:
        headers = _parse_headers(lines[1:])
        _check_host(version, headers.get("host"))
        if "content-length" in headers:  # RFC 9112, section 6.3: invalid on any request
            _content_length(headers["content-length"])
    except BadRequest as exc:
        exc.request = Request(method, target, version, {})
        raise
    return Request(method, target, version, headers)


def _parse_headers(lines: list[bytes]) -> dict[str, str]:
    """Header lines (each with its line ending) by lower-case name; repeats joined."""
    if len(lines) > MAX_HEADERS:
        raise BadRequest(431, f"more than {MAX_HEADERS} header lines")
    headers: dict[str, str] = {}
    for raw in lines:
        name, sep, value = raw.decode("latin-1").rstrip("\r\n").partition(":")
        # A folded line (leading space), a space before the colon, a name that is not a
        # token (RFC 9110, section 5.1): each is a smuggling vector.
        if not sep or _TOKEN.fullmatch(name) is None:
            raise BadRequest(400, "malformed header line")
        # RFC 9110, section 5.5: a CR, LF or NUL in a value is refused.
        if "\r" in value or "\x00" in value:
            raise BadRequest(400, "malformed header value")
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 9110, section 7.2: uri-host [ ":" port ]; a reg-name holds no comma (sub-delims
# but ","), so a comma is a second Host header joined to the first.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+;=%-]*)(?::[0-9]*)?")


def _check_host(version: str, host: str | None) -> None:
    """RFC 9112, section 3.2: an HTTP/1.1 request without a Host header, with more than
    one, or with an invalid one, is answered 400."""
    if host is None:
        if version == "HTTP/1.1":
            raise BadRequest(400, "no Host header")
        return
    if "," in host:
        raise BadRequest(400, "more than one Host header")
    if _HOST.fullmatch(host) is None:
        raise BadRequest(400, "invalid Host header")


_date_cache: tuple[int, str] = (0, "")


def _http_date(now: float) -> str:
    global _date_cache
    second = int(now)
    if _date_cache[0] != second:  # formatting costs more than the rest of a response head
        _date_cache = (second, email.utils.formatdate(second, usegmt=True))
    return _date_cache[1]


def response_head(
    response: Response, *, keep_alive: bool, extra: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """The status line and headers of ``response``, ending with the blank line."""
    reason = HTTPStatus(response.status).phrase
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Server: {SERVER}",
        f"Date: {_http_date(time.time())}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    lines.extend(f"{k}: {v}" for k, v in (*response.headers, *extra))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
