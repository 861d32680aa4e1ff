"""Windows built from Prometheus range queries (``/api/v1/query_range``), over http.client.

Each feature is one PromQL expression. Every (series, step) of an expression's answer is
one value of that feature; the values of the features are joined into rows on the
series' labels (all of them but ``__name__``, or only ``join_on``) and the timestamp.
Rows that miss a feature are dropped and counted in a debug log line.

Reading a window has one deadline, ``timeout``, for everything it does: every request,
every retry, every byte. The response is read in chunks and each socket read waits at
most for what is left, so a server that sends a byte every half second cannot keep a
read alive. Connection errors, 5xx and 429 answers are retried with exponential backoff
and full jitter while the deadline allows. Credentials (a bearer token file, basic auth
with a password file, the userinfo of the URL, secret headers) are sent and never
shown: every message masks them (``monitor.redact``).
"""

from __future__ import annotations

import base64
import http.client
import io
import itertools
import json
import logging
import math
import random
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import reduce
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.checks import (
    Problem,
    Shown,
    brief,
    brief_text,
    check_base_url,
    check_int,
    is_real,
    plain_texts,
    problem_of,
    read_fields,
    shown_path,
    some_names,
)
from monitor.durations import check_duration
from monitor.errors import (
    ConfigError,
    QueryError,
    SourceError,
    SourceTimeoutError,
    TransientSourceError,
)
from monitor.logs import Throttle, in_the_last
from monitor.records import Window
from monitor.redact import MASK, is_secret_header, redact_text, redact_url
from monitor.regularfiles import check_regular_file, read_file
from monitor.sources._common import check_bounds
from monitor.timestamps import format_time
from monitor.tlsfiles import (
    EncryptedKeyError,
    certificate_problem,
    load_cert_chain,
    load_failure,
    pem_problem,
)

__all__ = [
    "BasicAuth",
    "PrometheusOptions",
    "PrometheusSource",
    "TlsOptions",
    "build",
    "options_problems",
    "parse_options",
    "warnings",
]

_log = logging.getLogger(__name__)

# Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS_LIMIT = 11000
MAX_RETRIES = 10
# One answer's body: Prometheus' own --query.max-samples (50 million) is about 1.5 GB of
# JSON, far past what a window of rows needs; the default guards the daemon's memory.
MAX_ANSWER_BYTES = 2**32
MAX_WARNINGS_LOGGED = 3  # distinct warnings of one window logged; the rest counted in one line
#: The same warning, or the same partial window's line, is logged at most once in this
#: many seconds of data time (of the newest window end read): a reference period read
#: window after window, and a run a minute, repeated it at every window.
WARNINGS_LOG_SECONDS = 600.0
_WARNINGS_READ = 100  # of one answer, read for the log; beyond, only counted
# A bearer token or a password file of more is not a credential (a wrong path).
MAX_SECRET_BYTES = 64 * 1024
#: What an answer of errorType ``timeout`` adds (HTTP 503 from Prometheus: a query past its
#: ``--query.timeout``, or past the ``timeout`` the request carries, what is left of the
#: source's own).
_QUERY_TIMEOUT = (
    "Prometheus' own query timeout ran out (not retried: the same query would time out "
    "again); raise the source's timeout (and Prometheus' --query.timeout, if shorter) or "
    "make the expression lighter (a shorter range, fewer series)"
)
#: What an answer of HTTP 400 ``bad_data`` adds: the request's other parameters are the
#: source's own, so the expression is what Prometheus refuses (a missing ")" read as the
#: source down, prom F2).
_BAD_EXPRESSION = (
    "Prometheus refuses the feature's expression: fix it in source.features (expressions "
    "are not checked by check-config, only when a run sends them)"
)
_TOO_MANY_SAMPLES = (
    "one request loads more samples than Prometheus' --query.max-samples allows: lower the "
    "source's max_points (fewer steps per request), select fewer series in the "
    "expression, or raise --query.max-samples"
)
# The backoff doubles per attempt up to this many seconds (before jitter).
MAX_BACKOFF = 10.0
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# An HTTP header name (RFC 9110 token).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers the source sets itself; Authorization only when no other credential is given.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "user-agent"}
)

Key = tuple[tuple[str, str], ...]
Series = dict[Key, tuple[NDArray[np.int64], NDArray[np.float64]]]  # key -> (ms, values)


@dataclass(frozen=True)
class BasicAuth:
    """HTTP basic authentication: a user name and a file holding the password."""

    username: str
    password_file: str


@dataclass(frozen=True)
class TlsOptions:
    """How an https URL is verified, and the client certificate it presents."""

    ca_file: str | None = None  # None: the system's CA certificates
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class PrometheusOptions:
    """Options of the prometheus source (see docs/sources.md)."""

    url: str
    features: Mapping[str, str]  # feature name -> PromQL expression
    step: float = 60.0  # seconds between points
    timeout: float = 30.0  # seconds for reading a whole window: every request and retry
    join_on: tuple[str, ...] | None = None  # None: all labels but __name__
    max_points: int = 10000  # points per series per request; longer windows are split
    bearer_token_file: str | None = None
    basic_auth: BasicAuth | None = None
    tls: TlsOptions | None = None
    # Values may be credentials: never in a repr.
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    retries: int = 2  # attempts after the first, on connection errors, 5xx and 429
    retry_backoff: float = 0.25  # seconds before the first retry; doubles, with full jitter
    max_answer_bytes: int = 256 * 2**20  # one answer's body; a larger one fails the run


def parse_options(
    raw: Mapping[str, Any], features: Sequence[str] | None = None
) -> tuple[PrometheusOptions | None, list[Problem]]:
    """Typed options from a mapping of options, and every problem found.

    With ``features``, the expressions must be exactly one per feature. No I/O: the
    credential and certificate files are read by ``build``.
    """
    names = [f.name for f in fields(PrometheusOptions)]
    durations = {"step": check_duration, "timeout": check_duration, "retry_backoff": check_duration}
    values, problems = read_fields(raw, names, durations)
    values.setdefault("url", None)
    values.setdefault("features", None)
    if isinstance(values["features"], Mapping):
        values["features"] = MappingProxyType(dict(values["features"]))
    if isinstance(values.get("join_on"), list):
        values["join_on"] = tuple(values["join_on"])
    nested = (
        ("basic_auth", _parse_basic_auth),
        ("tls", _parse_tls),
        ("headers", _parse_headers),
    )
    for key, parse in nested:
        if key in values:
            parsed, found = parse(values[key])
            problems += found
            if parsed is None:  # reported; the other checks go on without it
                del values[key]
            else:
                values[key] = parsed
    options = PrometheusOptions(**values)
    problems += options_problems(options, features)
    return (None, problems) if problems else (options, [])


def _section(raw: Any, where: str, names: Sequence[str]) -> tuple[dict[str, Any], list[Problem]]:
    """The fields of a nested mapping, its problems named ``where.field``."""
    if not isinstance(raw, Mapping):
        return {}, [Problem(where, f"a mapping of {', '.join(names)}", Shown(type(raw).__name__))]
    return read_fields(raw, names, where=where)


def _path_problem(values: Mapping[str, Any], key: str, where: str) -> Problem | None:
    value = values.get(key)
    if value is None or (isinstance(value, str) and value.strip()):
        return None
    return Problem(f"{where}.{key}", "a file path", value)


def _parse_basic_auth(raw: Any) -> tuple[BasicAuth | None, list[Problem]]:
    values, problems = _section(raw, "basic_auth", ("username", "password_file"))
    if not isinstance(raw, Mapping):
        return None, problems
    username, password_file = values.get("username"), values.get("password_file")
    if not isinstance(username, str) or not username or ":" in username:
        problems.append(Problem("basic_auth.username", "a user name without ':'", username))
    if password_file is None:
        expected = "a file holding the password (the password itself never goes here)"
        problems.append(Problem("basic_auth.password_file", expected, None))
    elif (found := _path_problem(values, "password_file", "basic_auth")) is not None:
        problems.append(found)
    if problems:
        return None, problems
    return BasicAuth(str(username), str(password_file)), []


def _parse_tls(raw: Any) -> tuple[TlsOptions | None, list[Problem]]:
    names = [f.name for f in fields(TlsOptions)]
    values, problems = _section(raw, "tls", names)
    if not isinstance(raw, Mapping):
        return None, problems
    for key in ("ca_file", "cert_file", "key_file"):
        if (found := _path_problem(values, key, "tls")) is not None:
            problems.append(found)
    skip = values.get("insecure_skip_verify", False)
    if not isinstance(skip, bool):
        problems.append(Problem("tls.insecure_skip_verify", "true or false", skip))
    if ("cert_file" in values) != ("key_file" in values):
        missing = "key_file" if "cert_file" in values else "cert_file"
        problems.append(Problem(f"tls.{missing}", "given with the other (a client key pair)", None))
    if problems:
        return None, problems
    return TlsOptions(**values), []


def _parse_headers(raw: Any) -> tuple[Mapping[str, str] | None, list[Problem]]:
    """Extra request headers; a problem never repeats a value (it may be a credential)."""
    if not isinstance(raw, Mapping):
        return None, [Problem("headers", "a mapping of header names to values", Shown("..."))]
    problems = []
    for name, value in raw.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            problems.append(Problem("headers", "header names made of letters, digits, '-'", name))
        elif name.lower() in _RESERVED_HEADERS:
            problems.append(
                Problem(f"headers.{name}", "omitted (the source sets it)", Shown("..."))
            )
        elif not isinstance(value, str) or not _header_safe(value):
            expected = "a single-line string a header can carry (Latin-1, no control character)"
            problems.append(Problem(f"headers.{name}", expected, Shown(type(value).__name__)))
    return (None, problems) if problems else (MappingProxyType(dict(raw)), [])


def options_problems(o: PrometheusOptions, features: Sequence[str] | None = None) -> list[Problem]:
    """Every problem of ``o``; with ``features``, also features without an expression."""
    found = [
        *_url_problems(o),
        _duration_problem("step", o.step),
        _duration_problem("timeout", o.timeout),
        _duration_problem("retry_backoff", o.retry_backoff),
        None
        if o.join_on is None or _is_labels(o.join_on)
        else Problem(
            "join_on",
            "a non-empty list of label names other than __name__ (the metric's name, which "
            "differs between features)",
            o.join_on,
        ),
        problem_of(check_int, o.max_points, "max_points", low=1, high=MAX_POINTS_LIMIT),
        problem_of(check_int, o.retries, "retries", low=0, high=MAX_RETRIES),
        problem_of(
            check_int, o.max_answer_bytes, "max_answer_bytes", low=1024, high=MAX_ANSWER_BYTES
        ),
        *_credential_problems(o),
    ]
    return [p for p in found if p is not None] + _expression_problems(o.features, features)


def _url_problems(o: PrometheusOptions) -> list[Problem]:
    problem = problem_of(check_base_url, o.url, "url", example="http://prometheus:9090")
    if problem is not None:
        return [problem]
    if o.tls is not None and urllib.parse.urlsplit(o.url).scheme != "https":
        return [Problem("tls", "omitted unless the url is https", Shown("{...}"))]
    return []


def _credential_problems(o: PrometheusOptions) -> list[Problem]:
    """At most one way to authenticate; an Authorization header counts as one."""
    ways = [
        field
        for field, given in (
            ("url", isinstance(o.url, str) and "@" in _netloc(o.url)),
            ("bearer_token_file", o.bearer_token_file is not None),
            ("basic_auth", o.basic_auth is not None),
            ("headers.Authorization", any(h.lower() == "authorization" for h in o.headers)),
        )
        if given
    ]
    problems = []
    if o.bearer_token_file is not None and not (
        isinstance(o.bearer_token_file, str) and o.bearer_token_file.strip()
    ):
        problems.append(Problem("bearer_token_file", "a file path", o.bearer_token_file))
    if len(ways) > 1:
        expected = f"omitted: one way to authenticate, not {' and '.join(ways)}"
        problems.append(Problem(ways[-1], expected, Shown("...")))
    return problems


def _netloc(url: str) -> str:
    try:
        return urllib.parse.urlsplit(url).netloc
    except ValueError:
        return ""


def _duration_problem(field: str, value: Any) -> Problem | None:
    return None if is_real(value) and value > 0 else Problem(field, "a duration > 0", value)


def _is_labels(value: Any) -> bool:
    """Label names to join on: ``__name__`` is not one, as no two features share it."""
    return (
        isinstance(value, tuple)
        and bool(value)
        and all(isinstance(x, str) and _LABEL.fullmatch(x) and x != "__name__" for x in value)
    )


def _expression_problems(expressions: Any, features: Sequence[str] | None) -> list[Problem]:
    """Problems of the feature -> PromQL map; with ``features``, one per feature exactly."""
    if not isinstance(expressions, Mapping) or not expressions:
        return [
            Problem("features", "a mapping of each feature to a PromQL expression", expressions)
        ]
    found = [
        Problem(f"features.{name}", "a PromQL expression", expr)
        for name, expr in expressions.items()
        if not isinstance(expr, str) or not expr.strip()
    ]
    if features is None:
        return found
    missing = [f for f in features if f not in expressions]
    if missing:
        expected = f"a mapping with a PromQL expression for every feature (missing {missing})"
        found.append(Problem("features", expected, list(expressions)))
    found += [
        Problem(f"features.{name}", f"one of the model's features {list(features)}", name)
        for name in expressions
        if name not in features
    ]
    return found


# --------------------------------------------------------------------------- files


def _header_safe(text: str) -> bool:
    """Whether ``text`` can be a header's value as http.client sends it (Latin-1): no
    control character (a line break would end the header), nothing beyond Latin-1."""
    return all(c == "\t" or 0x20 <= ord(c) <= 0x7E or 0xA0 <= ord(c) <= 0xFF for c in text)


def _read_secret(path: str, what: str, *, header: bool = False) -> str:
    """The stripped text of a credential file; OSError or ValueError naming the file only
    (never its text). ``header``: the text goes into a header as it is (a bearer token).

    Read without blocking, and only when it is a regular file: a FIFO in its place hung
    check-config and every run of the daemon for ever."""
    data = read_file(path, most=MAX_SECRET_BYTES)
    if len(data) > MAX_SECRET_BYTES:
        raise ValueError(f"{what} {shown_path(path)} is longer than {MAX_SECRET_BYTES // 1024} KiB")
    text = data.decode("utf-8").strip()
    if not text:
        raise ValueError(f"{what} {shown_path(path)} is empty")
    if header and not _header_safe(text):
        raise ValueError(
            f"{what} {shown_path(path)} holds a line break, a control or a non-Latin-1 character, "
            "which a header cannot carry"
        )
    return text


def _file_problems(o: PrometheusOptions) -> list[str]:
    """What only reading the files reveals, each a line under ``source``: credential
    files and certificates that fail."""
    problems = []
    secrets = []
    if o.bearer_token_file is not None:
        secrets.append(("bearer_token_file", o.bearer_token_file, True))
    if o.basic_auth is not None:  # sent base64-encoded: any text goes
        secrets.append(("basic_auth.password_file", o.basic_auth.password_file, False))
    for where, path, header in secrets:
        try:
            _read_secret(path, "the file", header=header)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            # The path as the value, the reason with what it must be: "got No such file or
            # directory: '/etc/...'" put the reason where every other problem shows the
            # value (helper-84).
            if isinstance(exc, UnicodeDecodeError):
                reason = "not UTF-8 text"
            elif isinstance(exc, OSError) and exc.strerror:
                reason = exc.strerror
            else:
                reason = "it " + str(exc).replace(f"the file {shown_path(path)} ", "")
            expected = f"a readable, non-empty UTF-8 file ({reason})"
            problems.append(Problem(where, expected, path))
    lines = [p.config("source") for p in problems]
    if o.tls is not None:
        try:
            _tls_context(o.tls)
        except EncryptedKeyError:
            expected = "an unencrypted PEM key (this one is passphrase-protected)"
            lines.append(Problem("tls.key_file", expected, o.tls.key_file).config("source"))
        except ssl.SSLError as exc:
            lines.append(_tls_problem(o.tls, exc))
        except (OSError, ValueError) as exc:
            why = Shown(_why(exc))
            lines.append(Problem("tls", "certificates and a key that load", why).config("source"))
    return lines


def _tls_problem(tls: TlsOptions, exc: ssl.SSLError) -> str:
    """What OpenSSL's error means for the files of ``tls``: the field and file that holds
    no PEM block of its kind, where it said "[SSL] PEM lib (_ssl.c:3926)", naming neither;
    else its reason (``tlsfiles.load_failure``: a key that is not the certificate's)."""
    pem = None
    if tls.cert_file is not None and tls.key_file is not None:
        pem = pem_problem(tls.cert_file, tls.key_file, whose="the client's")
    if pem is None and tls.ca_file is not None:
        given = "give the CA certificate that signed the server's"
        if (why := certificate_problem(tls.ca_file, given)) is not None:
            pem = "ca_file", why
    if pem is not None:
        return f"source.tls.{pem[0]}: {pem[1]}"
    named = [f for f in ("ca_file", "cert_file", "key_file") if getattr(tls, f) is not None]
    files = " and ".join(named) + (" do" if len(named) > 1 else " does")
    why = load_failure(exc, whose="the client's")
    return f"source.tls: {files} not load: {why}"


def _why(exc: BaseException, path: str | None = None) -> str:
    """An OS or TLS error in a few words, never the content of a file."""
    if isinstance(exc, OSError) and exc.strerror:
        name = exc.filename if exc.filename is not None else path
        return f"{exc.strerror}: {shown_path(str(name))}" if name is not None else exc.strerror
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text: {shown_path(str(path))}"
    return str(exc) or type(exc).__name__


def _tls_context(tls: TlsOptions | None) -> ssl.SSLContext:
    """The client context: the CA file (or the system's), the client pair, verification."""
    if tls is None:
        return ssl.create_default_context()
    for path in (tls.ca_file, tls.cert_file, tls.key_file):
        if path is not None:  # OpenSSL opens them itself, blocking on a FIFO
            check_regular_file(path)
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file is not None and tls.key_file is not None:
        load_cert_chain(context, tls.cert_file, tls.key_file)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# --------------------------------------------------------------------------- transport


class _Deadline:
    """The end of one window's read, on a monotonic clock."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.seconds = seconds
        self.end = clock() + seconds

    def left(self) -> float:
        """Seconds left; TimeoutError once there are none."""
        left = self.end - self._clock()
        if left <= 0:
            raise TimeoutError("the read's deadline passed")
        return left

    def remaining(self) -> float:
        """Seconds left; 0 once the deadline has passed."""
        return max(0.0, self.end - self._clock())


class _DeadlineReader(io.RawIOBase):
    """Reads a socket, each read waiting at most for what is left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._deadline.left())
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """The part of a socket http.client uses, with every operation under the deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(self._deadline.left())  # sendall's timeout is a total
        self._sock.sendall(data)

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def close(self) -> None:
        """Nothing yet: http.client closes the connection before it reads the body, which
        a socket's own makefile survives by reference counting; the request closes the
        socket itself once the body is read (``_Connection.release``)."""


class _Connection(http.client.HTTPConnection):
    """One HTTP(S) connection whose connect, TLS handshake and reads share one deadline."""

    def __init__(
        self, host: str, port: int, deadline: _Deadline, context: ssl.SSLContext | None
    ) -> None:
        super().__init__(host, port, timeout=deadline.left())
        self._deadline = deadline
        self._context = context
        self._socket: socket.socket | None = None

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self._deadline.left())
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                # The handshake's timeout is a total for the whole handshake.
                sock.settimeout(self._deadline.left())
                sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self._socket = sock
        self.sock = _DeadlineSocket(sock, self._deadline)

    def release(self) -> None:
        """Close the connection and its socket."""
        self.close()
        if self._socket is not None:
            self._socket.close()
            self._socket = None


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    retry_after: float | None  # seconds, from a Retry-After header
    location: str | None = None  # where a redirect points (it is not followed)


def _retry_after(value: str | None) -> float | None:
    """Seconds of a Retry-After header given in seconds (an HTTP date is not waited for)."""
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _retryable(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


class _Failure(Exception):
    """One attempt failed in a way worth retrying; ``text`` completes the endpoint."""

    def __init__(self, text: str, retry_after: float | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.retry_after = retry_after


# --------------------------------------------------------------------------- the source


class PrometheusSource:
    """A TelemetrySource that reads a window with one range query per feature."""

    def __init__(
        self,
        model: str,
        features: tuple[str, ...],
        options: PrometheusOptions,
        *,
        tls_context: ssl.SSLContext | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._features = tuple(features)
        self._options = options
        parts = urllib.parse.urlsplit(options.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._path = parts.path.rstrip("/") + "/api/v1/query_range"
        self._userinfo = (
            (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or ""))
            if "@" in parts.netloc
            else None
        )
        self._context = (tls_context or _tls_context(options.tls)) if self._https else None
        self._endpoint = redact_url(options.url.rstrip("/") + "/api/v1/query_range")
        self._name = f"prometheus source of model {model!r}"
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._clock = clock
        # Values to mask in any text this source shows; credentials read later join them.
        self._secrets: set[str] = {v for k, v in options.headers.items() if is_secret_header(k)}
        # The warnings of the window being read: text -> [where first, how many times].
        self._warnings: dict[str, list[Any]] = {}
        # Lines are throttled by the data's time, the newest window end read (a reference
        # period read after a run's window is of that run's time), not the wall clock's:
        # a backtest replayed 175 windows in 50 s and said one line for an outage of six
        # partial windows, where the daemon said six (prom F5).
        self._newest_end = -math.inf
        self._throttle = Throttle(WARNINGS_LOG_SECONDS, lambda: self._newest_end)
        if self._userinfo is not None and self._userinfo[1]:
            # The password only: a user name is no secret, and masking it in every text
            # turned "User-Agent: kmeans-monitor" into "***-monitor" (helper-83).
            self._secrets.add(self._userinfo[1])

    def read_window(self, start: float, end: float) -> Window:
        """Rows of the points at ``start, start + step, ...`` before ``end``."""
        start, end = check_bounds(start, end, "PrometheusSource")
        self._newest_end = max(self._newest_end, end)
        self._warnings.clear()
        try:
            deadline = _Deadline(self._options.timeout, self._clock)
            headers = self._headers()
            series = [self._fetch(f, start, end, deadline, headers) for f in self._features]
        except (SourceError, QueryError) as exc:
            cleaned = self._scrub(str(exc))
            if cleaned == str(exc):
                raise
            raise type(exc)(cleaned) from None
        finally:
            self._log_warnings()
        X, dropped, held = _join(series)
        if dropped and not X.shape[0]:
            # Every row lacks a feature: the series do not line up (a run said only "0 valid
            # rows", the reason at DEBUG).
            raise SourceError(
                f"{self._name}: none of the {dropped} row(s) of [{format_time(start)}, "
                f"{format_time(end)}) has every feature: {_mismatch(self._features, series)}"
            )
        self._log_gaps(held, X.shape[0], dropped, start, end)
        self._log_empty(series, start, end)
        return Window(
            model=self._model,
            start=start,
            end=end,
            features=self._features,
            X=X,
            label=(
                f"prometheus [{format_time(start)}, {format_time(end)}) "
                f"step {self._options.step:g}s"
            ),
        )

    def close(self) -> None:
        """Each request has its own connection: nothing stays open between windows."""

    def _scrub(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def _log_warnings(self) -> None:
        """The warnings Prometheus gave over one window, each distinct one once: one line
        per warning, request and feature wrote 2,688 lines of one window (helper-88). A
        warning logged in the last WARNINGS_LOG_SECONDS of data time is held, and counted
        in its next line."""
        told = list(self._warnings.items())
        for text, (features, times) in told[:MAX_WARNINGS_LOGGED]:
            if (said := self._throttle(text, times)) is None:
                continue
            # Every feature whose answers carried it: the first alone was named, for a
            # warning the three features' answers each gave (helper-92).
            named = f"feature{'s' if len(features) > 1 else ''} {', '.join(map(repr, features))}"
            again = f" ({_how_often(*said)})" if said != (1, None) else ""
            _log.warning(
                "%s: %s: %s: Prometheus warns: %s%s",
                self._name,
                named,
                self._endpoint,
                text,
                again,
            )
        rest = sum(times for _, (_, times) in told[MAX_WARNINGS_LOGGED:])
        if rest and (said := self._throttle(None, rest)) is not None:
            _log.warning("%s: Prometheus warns %s", self._name, _how_often(*said, " more"))

    def _headers(self) -> dict[str, str]:
        """The request's headers, credentials read afresh (so a rotated token is used)."""
        o = self._options
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "kmeans-monitor",
            **o.headers,
        }
        user_password = self._userinfo
        try:
            if o.bearer_token_file is not None:
                token = _read_secret(o.bearer_token_file, "bearer_token_file", header=True)
                self._secrets.add(token)
                headers["Authorization"] = f"Bearer {token}"
            if o.basic_auth is not None:
                password = _read_secret(o.basic_auth.password_file, "basic_auth.password_file")
                user_password = (o.basic_auth.username, password)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise SourceError(f"{self._name}: cannot read its credentials: {_why(exc)}") from None
        if user_password is not None:
            self._secrets.add(user_password[1])
            pair = f"{user_password[0]}:{user_password[1]}".encode()
            encoded = base64.b64encode(pair).decode("ascii")
            self._secrets.add(encoded)
            headers["Authorization"] = f"Basic {encoded}"
        if "Authorization" in headers:
            self._secrets.add(headers["Authorization"])
        return headers

    def _log_gaps(
        self, held: dict[Key, int], rows: int, dropped: int, start: float, end: float
    ) -> None:
        """Say when the window holds under 90 % of the points its series would hold on
        the step's grid (``held``: ``_join``'s rows of each set of labels): a Prometheus
        outage or a target gone for part of the window left runs to flag drift on a
        partial window with nothing said (helper-92; the rows missing a feature were
        logged at DEBUG only). The least complete set of labels is named. The line of one
        set of series is logged at most once in WARNINGS_LOG_SECONDS of data time: a series
        that never joins logged it at each of a reference period's 576 windows
        (helper-111); its next line counts the windows held."""
        n_grid = max(0, math.ceil((end - start) / self._options.step))
        n_keys = len(held)
        expected = n_keys * n_grid
        worst = min(held, key=lambda k: (held[k], k), default=None)
        if worst is None or held[worst] >= n_grid or rows >= 0.9 * expected:
            return
        # Keyed by the series (hashed: a key is kept while its line is recent), the least
        # complete of them and how much is missing, by halves: another set of series,
        # another gap, or a window at most half as complete as the one said, is said at
        # once. An outage's first, mildest window (110 rows of 150) held the line of the
        # windows of 60 that flagged drift after it (h144 #3).
        share = rows / expected
        halves = math.floor(-math.log2(share)) if share > 0 else -1
        said = self._throttle(("gaps", hash(frozenset(held)), worst, halves))
        if said is None:
            return
        _log.info(
            "%s: the window [%s, %s) holds %d row(s) of the %d its %d series would hold at "
            "step %gs (%d dropped as missing a feature); the least complete: %s%s",
            self._name,
            format_time(start),
            format_time(end),
            rows,
            expected,
            n_keys,
            self._options.step,
            dropped,
            _labels(worst),
            _windows_held(*said),
        )

    def _log_empty(self, series: list[Series], start: float, end: float) -> None:
        """Name the features whose expression returned no series for the whole window: a
        window of no row said nothing of which one (the run failed as too_few_rows, or a
        feature's rows were dropped), once per WARNINGS_LOG_SECONDS of data time, as
        ``_log_gaps``."""
        empty = [f for f, s in zip(self._features, series, strict=True) if not s]
        said = self._throttle(("empty", tuple(empty))) if empty else None
        if said is None:
            return
        _log.warning(
            "%s: the expression of %s returned no series in [%s, %s)%s",
            self._name,
            ", ".join(f"{f!r} ({brief_text(self._options.features[f])})" for f in empty),
            format_time(start),
            format_time(end),
            _windows_held(*said),
        )

    def _fetch(
        self, feature: str, start: float, end: float, deadline: _Deadline, headers: dict[str, str]
    ) -> Series:
        """The series of one feature over the window, split into requests of max_points."""
        step = self._options.step
        n_points = max(0, math.ceil((end - start) / step))
        if n_points and start + (n_points - 1) * step >= end:  # rounding put one too many
            n_points -= 1
        expr = self._options.features[feature]
        where = f"{self._name}: feature {feature!r}: {self._endpoint}"
        found: dict[Key, tuple[list[NDArray[np.int64]], list[NDArray[np.float64]]]] = {}
        for first in range(0, n_points, self._options.max_points):
            last = min(n_points, first + self._options.max_points) - 1
            body = self._body(expr, start + first * step, start + last * step, deadline, where)
            result, told = _result(self._post(body, deadline, headers, where), where, self._scrub)
            for text in told:
                features, _ = self._warnings.setdefault(text, [[], 0])
                if feature not in features:
                    features.append(feature)
                self._warnings[text][1] += 1
            for i, item in enumerate(result):
                metric, values = _series(item, i, where)
                ms, vals = _points(values, where)
                keep = (ms >= round(start * 1000)) & (ms < round(end * 1000))
                entry = found.setdefault(self._key(metric), ([], []))
                entry[0].append(ms[keep])
                entry[1].append(vals[keep])
        return {k: self._one_series(feature, k, *parts) for k, parts in found.items()}

    def _one_series(
        self,
        feature: str,
        key: Key,
        ms_parts: list[NDArray[np.int64]],
        value_parts: list[NDArray[np.float64]],
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The points of every series with the join labels ``key``, in time order.

        Series that take turns (a label outside join_on changed mid-window: a pod
        restarted) are one series; two with a point at the same time are an error, which
        says at how many steps and when.
        """
        ms, values = np.concatenate(ms_parts), np.concatenate(value_parts)
        order = np.argsort(ms, kind="stable")
        ms, values = ms[order], values[order]
        same = np.unique(ms[1:][np.diff(ms) == 0])
        if same.size:
            # When and how long they overlap: a few steps is a restarted target under
            # rate() or increase(), whose old series outlives it by the function's range.
            labels = ", ".join(f'{k}="{v}"' for k, v in key)
            raise SourceError(
                f"{self._name}: feature {feature!r}: several series have the labels "
                f"{{{labels}}} at the same time, at {same.size} step(s) from "
                f"{format_time(same[0] / 1000)} to {format_time(same[-1] / 1000)}; aggregate "
                f"them in the expression (e.g. sum by ({', '.join(k for k, _ in key)}) (...)) "
                f"or list more labels in join_on"
            )
        return ms, values

    def _key(self, metric: Mapping[str, str]) -> Key:
        if self._options.join_on is None:
            return tuple(sorted((k, v) for k, v in metric.items() if k != "__name__"))
        # An absent label is the empty string, as in PromQL's own matching.
        return tuple((k, metric.get(k, "")) for k in self._options.join_on)

    def _body(self, expr: str, start: float, end: float, deadline: _Deadline, where: str) -> bytes:
        """The form of one request; Prometheus is told how long is left of the deadline."""
        try:
            left = deadline.left()
        except TimeoutError:
            raise self._timeout(where, 1, None) from None
        return urllib.parse.urlencode(
            {
                "query": expr,
                "start": f"{start:.3f}",
                "end": f"{end:.3f}",
                "step": repr(float(self._options.step)),
                "timeout": repr(round(left, 3)),
            }
        ).encode()

    def _timeout(self, where: str, attempts: int, last: _Failure | None) -> SourceTimeoutError:
        """The deadline passed; an earlier attempt's failure is named, as it is the cause a
        user can act on (a 503 that ate the deadline in retries reads as a 503)."""
        tries = f" ({attempts} attempts; the last to finish {last.text})" if last else ""
        return SourceTimeoutError(
            f"{where} did not answer within {self._options.timeout:g}s{tries}; the source's "
            "timeout bounds the whole read of a window"
        )

    def _post(self, body: bytes, deadline: _Deadline, headers: dict[str, str], where: str) -> bytes:
        """The body of a 200 answer, retrying connection errors, 5xx and 429 in the deadline."""
        attempt = 0
        last: _Failure | None = None
        while True:
            attempt += 1
            try:
                return self._attempt(body, deadline, headers, where)
            except SourceTimeoutError:  # Prometheus' own query timeout, said as it is
                raise
            except TimeoutError:
                raise self._timeout(where, attempt, last) from None
            except _Failure as failure:
                last = failure
                delay = self._backoff(attempt, failure.retry_after)
                left = deadline.remaining()
                if attempt > self._options.retries or left <= delay:  # failed (prom F1)
                    tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                    if attempt <= self._options.retries:  # the time, not the count, ran out
                        tries += _no_time_to_retry(failure.retry_after, delay, left)
                    raise TransientSourceError(f"{where} {failure.text}{tries}") from None
                _log.info(
                    "%s %s; retry %d of %d in %.2fs",
                    where,
                    self._scrub(failure.text),
                    attempt,
                    self._options.retries,
                    delay,
                )
                self._sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter over an exponential cap; at least what a Retry-After asked for."""
        cap = min(MAX_BACKOFF, self._options.retry_backoff * 2 ** (attempt - 1))
        delay = self._rng.uniform(0.0, cap)
        return max(delay, retry_after) if retry_after is not None else delay

    def _attempt(
        self, body: bytes, deadline: _Deadline, headers: dict[str, str], where: str
    ) -> bytes:
        """One request; _Failure when worth retrying, SourceError when not."""
        try:
            answer = self._request(body, deadline, headers)
        except ssl.SSLCertVerificationError as exc:
            raise SourceError(
                f"{where}: the server's TLS certificate is not trusted: {exc.verify_message} "
                "(set tls.ca_file to the CA that signed it)"
            ) from None
        except ssl.SSLError as exc:
            raise SourceError(f"{where}: the TLS handshake failed: {exc.reason or exc}") from None
        except TimeoutError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise _Failure(f"is unreachable: {_why(exc)}") from None
        except ValueError:  # http.client's words would quote the header: maybe a secret
            raise SourceError(
                f"{where}: the request cannot be sent: a header holds a character HTTP cannot carry"
            ) from None
        if len(answer.body) > self._options.max_answer_bytes:
            raise SourceError(
                f"{where} answered more than max_answer_bytes "
                f"({self._options.max_answer_bytes} bytes) to one request: select fewer "
                "series in the expression, lower max_points, or raise max_answer_bytes"
            )
        if answer.status == 200:
            return answer.body
        shown, kind = _error_text(answer.body, answer.status, self._scrub)
        text = f"answered HTTP {answer.status}: {shown}"
        if kind == "timeout":  # the same query would time out again: not retried (prom F3)
            raise SourceTimeoutError(f"{where} {text}: {_QUERY_TIMEOUT}")
        if answer.status == 400 and kind == "bad_data":  # the configuration's, not the source's
            raise QueryError(f"{where} {text}: {_BAD_EXPRESSION}")
        if kind == "execution" and "too many samples" in text:  # --query.max-samples
            text += f": {_TOO_MANY_SAMPLES}"
        if 300 <= answer.status < 400 and answer.location:
            # Not followed: credentials must not go where the configuration does not say.
            where_to = redact_url(brief(answer.location))
            text += f" (to {where_to}; redirects are not followed: point url at the server)"
        if _retryable(answer.status):
            raise _Failure(text, answer.retry_after)
        raise SourceError(f"{where} {text}")

    def _request(self, body: bytes, deadline: _Deadline, headers: dict[str, str]) -> _Answer:
        connection = _Connection(self._host, self._port, deadline, self._context)
        try:
            # POST keeps long expressions out of URL length limits; Prometheus takes both.
            connection.request("POST", self._path, body=body, headers=headers)
            response = connection.getresponse()
            # One byte past the limit tells an answer at the limit from a larger one.
            payload = response.read(self._options.max_answer_bytes + 1)
            return _Answer(
                response.status,
                payload,
                _retry_after(response.getheader("Retry-After")),
                response.getheader("Location"),
            )
        finally:
            connection.close()


def _result(payload: bytes, where: str, scrub: Callable[[str], str]) -> tuple[list[Any], list[str]]:
    """The ``data.result`` list of a successful query_range answer, and its warnings, each
    one line through ``scrub`` (a proxy may echo the request's credentials into them)."""
    try:
        answer = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting: recursion
        # Its start says what answered: a proxy's login page said only "Expecting value:
        # line 1 column 1 (char 0)" (helper-92).
        begins = _one_line(payload.decode("utf-8", "replace"), scrub, lambda t: t[:120])
        raise SourceError(
            f"{where} answered with something that is not JSON: {exc}; it begins {begins!r}"
        ) from None
    if not isinstance(answer, dict):
        raise SourceError(f"{where} answered with unexpected JSON {scrub(str(answer))[:200]!r}")
    if answer.get("status") != "success":
        status = scrub(str(answer.get("status")))[:80]
        raise SourceError(f"{where} answered status {status!r}: {_error_of(answer, scrub)}")
    warnings = answer.get("warnings")
    warnings = warnings if isinstance(warnings, list) else []
    told = [_one_line(str(w), scrub, lambda t: t[:300]) for w in warnings[:_WARNINGS_READ]]
    told += ["(more warnings)"] * (len(warnings) - len(told))  # counted, not read
    data = answer.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    if kind != "matrix" or not isinstance(data, dict):
        # A proxy's text may be megabytes (helper-99): cut as the other texts are.
        shown = repr(_one_line(kind, scrub, lambda t: t[:80]) if isinstance(kind, str) else kind)
        raise SourceError(f"{where} answered a {shown} where a 'matrix' was expected")
    if not isinstance(data.get("result"), list):
        shown = str(data.get("result"))[:80]
        raise SourceError(f"{where} answered a matrix whose result is {shown!r}, not a list")
    result: list[Any] = data["result"]
    return result, told


def _series(item: Any, i: int, where: str) -> tuple[Mapping[str, str], Any]:
    """The labels and points of one series of an answer; SourceError when malformed."""
    expected = "{'metric': {label: value, ...}, 'values': [[time, 'value'], ...]}"
    if not isinstance(item, dict):
        shown = str(item)[:80]
        raise SourceError(
            f"{where} answered a malformed series: result[{i}] is {shown!r}, not {expected}"
        )
    metric = item.get("metric", {})
    if not isinstance(metric, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metric.items()
    ):
        raise SourceError(
            f"{where} answered a malformed series: result[{i}].metric is "
            f"{str(metric)[:80]!r}, not a mapping of label names to values"
        )
    values = item.get("values")
    if not isinstance(values, list):
        raise SourceError(
            f"{where} answered a malformed series: result[{i}].values is "
            f"{str(values)[:80]!r}, not a list of [time, 'value'] pairs"
        )
    return metric, values


def _points(values: Any, where: str) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Timestamps in milliseconds and values of a series' ``[[t, "v"], ...]``."""
    try:
        ms = np.array([round(float(t) * 1000) for t, _ in values], dtype=np.int64)
        # float() reads Prometheus' "NaN", "+Inf" and "-Inf" as they are meant.
        vals = np.array([_sample(v) for _, v in values], dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SourceError(f"{where}: malformed sample in the answer: {exc}") from exc
    order = np.argsort(ms, kind="stable")
    return ms[order], vals[order]


def _sample(value: Any) -> float:
    """A sample's value: Prometheus writes each as a string of a Go float. ``float`` alone
    took JSON's ``true`` as 1.0, Python's ``"1_000"`` as 1000 and ``"١"`` as 1."""
    if not isinstance(value, str) or not plain_texts((value,)):
        raise ValueError(f"value {brief(value)} is not a sample value (a number in a string)")
    return float(value)


def _join(series: list[Series]) -> tuple[NDArray[np.float64], int, dict[Key, int]]:
    """Rows of the (labels, timestamp) present in every feature, the count dropped, and
    the rows of each set of labels (0 for one that a feature lacks)."""
    d = len(series)
    key_sets = [set(s) for s in series]
    keys = sorted(set.intersection(*key_sets)) if key_sets else []
    all_keys: set[Key] = set().union(*key_sets)
    blocks: list[NDArray[np.float64]] = []
    held = dict.fromkeys(all_keys, 0)
    for key in keys:
        common = reduce(np.intersect1d, (s[key][0] for s in series))
        block = np.empty((common.shape[0], d))
        for j, s in enumerate(series):
            ms, values = s[key]
            block[:, j] = values[np.searchsorted(ms, common)]
        blocks.append(block)
        held[key] = common.shape[0]
    distinct = sum(
        reduce(np.union1d, (s[key][0] for s in series if key in s)).shape[0] for key in all_keys
    )
    X = np.concatenate(blocks) if blocks else np.empty((0, d))
    return X, int(distinct - X.shape[0]), held


def _mismatch(features: Sequence[str], series: list[Series]) -> str:
    """Why no row has every feature, naming them: a feature with no series, two whose
    series share no labels (join_on), no labels common to all, or else their timestamps."""
    empty = [f for f, s in zip(features, series, strict=True) if not s]
    if empty:
        return f"{some_names(empty, repr)} returned no series"
    for (f, a), (g, b) in itertools.combinations(zip(features, series, strict=True), 2):
        if not set(a) & set(b):
            return (
                f"the series of {f!r} and {g!r} share no labels (see join_on): {f!r} has "
                f"{_labels(next(iter(a)))} where {g!r} has {_labels(next(iter(b)))}"
            )
    if not set.intersection(*(set(s) for s in series)):
        return "no labels are common to every feature's series (see join_on)"
    return "series with the same labels share no timestamp (points off the step's grid)"


def _how_often(count: int, since: float | None, more: str = "") -> str:
    """How many times (``more`` after the count) a warning came in the window (``since``
    None) or since its last line ``since`` seconds ago."""
    times = "once" if count == 1 and not more else f"{count} times{more}"
    if since is None:
        return f"{times} in this window"
    return f"{times} {in_the_last(since)}"


def _windows_held(count: int, since: float | None) -> str:
    """How a throttled line of a window says the ``count`` windows it stands for since
    its last line ``since`` seconds ago: nothing for itself alone."""
    return f" ({count} windows {in_the_last(since)})" if since is not None and count > 1 else ""


def _labels(key: Key) -> str:
    """A series' labels as PromQL writes them (values quoted with their quotes, line
    breaks and backslashes escaped: a value with a line break split a log line in two;
    helper-99), shortened when long."""
    return brief_text("{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in key) + "}")


def _error_of(answer: Mapping[str, Any], scrub: Callable[[str], str]) -> str:
    """Prometheus' error text in one line, shortened (``checks.brief_text``) when it is long:
    it goes into the run's one failure line, the log and the history."""
    kind = answer.get("errorType")
    text = answer.get("error") or "no error text"
    return _one_line(f"{kind}: {text}" if kind else str(text), scrub, brief_text)


def _no_time_to_retry(retry_after: float | None, delay: float, left: float) -> str:
    """Why a retryable failure was not retried though retries were left: a 429 whose
    Retry-After of 100 s met a 5 s timeout read as if `retries` were ignored (h144 #1)."""
    if retry_after is not None and delay <= retry_after:
        asked = f"the server's Retry-After asks for {retry_after:g} s"
    else:
        asked = f"the next retry waits {delay:.1f} s"
    return f"; not retried: {asked} and the read has {left:.1f} s left (the source's timeout)"


def _error_text(body: bytes, status: int, scrub: Callable[[str], str]) -> tuple[str, Any]:
    """Prometheus' error text from an HTTP error answer, or the start of its body, and
    its ``errorType`` (None without one)."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        text = _one_line(body.decode("utf-8", "replace"), scrub, lambda t: t[:300])
        return text or http.client.responses.get(status, "no reason given"), None
    if isinstance(answer, dict) and ("error" in answer or "errorType" in answer):
        return _error_of(answer, scrub), answer.get("errorType")
    return _one_line(str(answer), scrub, lambda t: t[:300]), None


def _one_line(text: str, scrub: Callable[[str], str], shorten: Callable[[str], str]) -> str:
    """A server's text as one line of a message: scrubbed whole before it is shortened (a
    cut inside an echoed ``Authorization`` value left a prefix no secret matched: 9 of a
    password's 15 characters, helper-83), its lines and runs of blanks joined by a space
    (an error page's ten lines went into the log as they were, fake log lines with them).
    A text that holds a secret only once its blanks are taken out (an echo wrapped at 30
    columns cut a token in two; helper-88) is withheld."""
    shown = scrub(" ".join(text.split()))
    if scrub("".join(text.split())).count(MASK) > shown.count(MASK):
        return "(its text withheld: it holds a credential broken over lines)"
    return shorten(shown)


def build(
    model: str,
    features: tuple[str, ...],
    options: PrometheusOptions,
    *,
    rng: random.Random | None = None,
) -> PrometheusSource:
    """A prometheus source for ``model``; ConfigError for options, files or certificates
    that do not work (a credential file that cannot be read, a CA that does not load)."""
    problems = [p.config("source") for p in options_problems(options, features)]
    if not problems:
        problems = _file_problems(options)
    if problems:
        raise ConfigError(problems)
    return PrometheusSource(model, tuple(features), options, rng=rng)


def warnings(model: str, options: PrometheusOptions) -> list[str]:
    """``tls.insecure_skip_verify`` on, which the configuration's loading warns of once
    (warned of as the source was built, one ``evaluate`` said it twice; prom F6)."""
    if options.tls is None or not options.tls.insecure_skip_verify:
        return []
    return [
        f"prometheus source of model {model!r}: tls.insecure_skip_verify is on: the server's "
        "certificate is not checked, so anyone on the path can read the credentials"
    ]
