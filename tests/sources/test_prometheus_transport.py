"""The prometheus source's transport: one deadline per read, retries with backoff,
credentials, TLS with a CA made here, and no secret in anything it shows."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import logging
import os
import random
import re
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitor.errors import (
    ConfigError,
    QueryError,
    SourceError,
    SourceTimeoutError,
    TransientSourceError,
)
from monitor.logs import Throttle
from monitor.runner import classify_failure
from monitor.sources.prometheus import (
    WARNINGS_LOG_SECONDS,
    PrometheusSource,
    build,
    parse_options,
)
from tests.fakes import DripServer
from tests.sources.test_prometheus import EXPRS, FEATURES, T0, Answer, FakePrometheus, matrix

TOKEN = "tok-3f9a1c-very-secret"
PASSWORD = "pa55-w0rd-secret"
HEADER_VALUE = "a single-line string a header can carry (Latin-1, no control character)"


def _no_series(record: logging.LogRecord) -> bool:
    """The line of a window whose expressions returned no series (answers of warnings
    alone hold none)."""
    return "returned no series" in record.getMessage()


def make_source(url: str, *, sleep: Any = None, **options: Any) -> PrometheusSource:
    raw = {"url": url, "features": EXPRS, "step": "60s", "timeout": "2s", **options}
    parsed, problems = parse_options(raw, FEATURES)
    assert problems == [] and parsed is not None, problems
    source = build("checkout", FEATURES, parsed, rng=random.Random(7))
    if sleep is not None:
        source._sleep = sleep  # the backoff's waits, recorded instead of slept
    return source


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    yield fake
    fake.close()


# --------------------------------------------------------------------------- deadline


@pytest.mark.parametrize("head", [True, False], ids=["dripped-head", "dripped-body"])
def test_a_server_that_drips_bytes_cannot_keep_a_read_alive(head: bool) -> None:
    # A byte every 0.1 s: each socket read succeeds, so a per-read timeout never fires.
    drip = DripServer(pace=0.1, head=head)
    try:
        source = make_source(drip.url, timeout="1s")
        t0 = time.monotonic()
        with pytest.raises(SourceTimeoutError) as info:
            source.read_window(T0, T0 + 60)
        elapsed = time.monotonic() - t0
    finally:
        drip.close()
    assert "did not answer within 1s; the source's timeout bounds the whole read" in str(info.value)
    # The drip would go on for ever; the read ended at its deadline (slack for a busy host).
    assert elapsed < 5.0
    assert drip.connections == 1  # a timeout is not retried: the deadline is spent


def test_the_deadline_covers_every_request_of_a_window(prom: FakePrometheus) -> None:
    # Each answer takes 0.6 s; two features make two requests, which a 1 s budget
    # for the whole window cannot hold (a per-request timeout of 1 s would).
    prom.answer = lambda params: (*matrix()[:2], 0.6)
    with pytest.raises(SourceTimeoutError, match="feature 'rps'"):
        make_source(prom.url, timeout="1s").read_window(T0, T0 + 60)
    # Prometheus was told what was left for the second request, not the whole budget.
    assert float(prom.requests[1]["timeout"]) < 0.5


# --------------------------------------------------------------------------- retries


def test_5xx_and_429_are_retried_with_growing_jittered_backoff(prom: FakePrometheus) -> None:
    answers: list[Answer] = [
        (503, b"busy", 0.0),
        (429, b"slow down", 0.0),
        (502, b"bad gateway", 0.0),
    ]
    prom.answer = lambda params: answers.pop(0) if answers else matrix(({"i": "a"}, [(T0, "1")]))
    waits: list[float] = []
    source = make_source(prom.url, retries=3, retry_backoff="0.2s", sleep=waits.append)
    window = source.read_window(T0, T0 + 60)
    assert window.X.tolist() == [[1.0, 1.0]]
    assert len(prom.requests) == 5  # three failures, then one answer per feature
    # Full jitter under a cap that doubles: [0, 0.2], [0, 0.4], [0, 0.8].
    assert len(waits) == 3
    assert all(0 <= w <= cap for w, cap in zip(waits, (0.2, 0.4, 0.8), strict=True))
    assert len(set(waits)) == 3  # jittered, not a fixed ladder


def test_retries_stop_at_the_configured_count_and_say_how_many(prom: FakePrometheus) -> None:
    prom.answer = lambda params: (500, b'{"status":"error","error":"boom"}', 0.0)
    waits: list[float] = []
    # A failure of the source, which a later read may not meet: a reference period is not
    # read in part past it (prom F1).
    with pytest.raises(TransientSourceError) as info:
        make_source(prom.url, retries=2, sleep=waits.append).read_window(T0, T0 + 60)
    assert str(info.value).endswith("answered HTTP 500: boom (after 3 attempts)")
    assert len(prom.requests) == 3 and len(waits) == 2


def test_a_retry_after_header_is_waited_for(prom: FakePrometheus) -> None:
    answers: list[Answer] = [(429, b"", 0.0)]
    prom.extra_headers = {"Retry-After": "1"}
    prom.answer = lambda params: answers.pop(0) if answers else matrix()
    waits: list[float] = []
    make_source(prom.url, retry_backoff="0.01s", sleep=waits.append).read_window(T0, T0 + 60)
    assert waits == [1.0]


def test_a_timeout_after_failed_attempts_names_the_last_answer(prom: FakePrometheus) -> None:
    # Two 503s, then an answer slower than what is left: the read times out, and the
    # message keeps the overload the server reported (the cause a user can act on).
    answers: list[Answer] = [(503, b"too many queries", 0.0), (503, b"too many queries", 0.0)]
    prom.answer = lambda params: answers.pop(0) if answers else (*matrix()[:2], 3.0)
    with pytest.raises(SourceTimeoutError) as info:
        make_source(prom.url, timeout="0.5s", sleep=lambda s: None).read_window(T0, T0 + 60)
    assert str(info.value).endswith(
        "did not answer within 0.5s (3 attempts; the last to finish answered HTTP 503: "
        "too many queries); the source's timeout bounds the whole read of a window"
    )


def test_a_backoff_that_would_pass_the_deadline_is_not_waited_and_says_so(
    prom: FakePrometheus,
) -> None:
    # A 429 asking for 100 s under a 5 s timeout failed at once, read as `retries` ignored
    # (h144 #1): the line now says why it was not retried.
    prom.extra_headers = {"Retry-After": "30"}
    prom.answer = lambda params: (503, b"", 0.0)
    waits: list[float] = []
    with pytest.raises(SourceError) as info:
        make_source(prom.url, sleep=waits.append).read_window(T0, T0 + 60)
    assert waits == [] and len(prom.requests) == 1
    assert re.search(
        r"answered HTTP 503: Service Unavailable; not retried: the server's Retry-After asks "
        r"for 30 s and the read has \d\.\d s left \(the source's timeout\)$",
        str(info.value),
    ), info.value


def test_a_backoff_of_its_own_past_the_deadline_says_its_wait(prom: FakePrometheus) -> None:
    prom.answer = lambda params: (502, b"bad gateway", 0.0)
    with pytest.raises(TransientSourceError) as info:
        make_source(prom.url, retry_backoff="20s", timeout="1s").read_window(T0, T0 + 60)
    # The first wait is drawn from [0, 20 s]; the seeded generator draws 3.2 s, past 1 s.
    assert re.search(
        r"answered HTTP 502: bad gateway; not retried: the next retry waits \d+\.\d s and "
        r"the read has [01]\.\d s left \(the source's timeout\)$",
        str(info.value),
    ), info.value


def test_too_many_samples_says_which_knobs_bound_them(prom: FakePrometheus) -> None:
    # Prometheus 2.42 past --query.max-samples: 422 execution, with no advice (h144 #2).
    prom.answer = error_answer(
        422,
        "execution",
        "query processing would load too many samples into memory in query execution",
    )
    with pytest.raises(SourceError) as info:
        make_source(prom.url).read_window(T0, T0 + 60)
    assert len(prom.requests) == 1
    assert str(info.value).endswith(
        "too many samples into memory in query execution: one request loads more samples "
        "than Prometheus' --query.max-samples allows: lower the source's max_points (fewer "
        "steps per request), select fewer series in the expression, or raise "
        "--query.max-samples"
    )


def error_answer(status: int, kind: str, error: str) -> Callable[[dict[str, str]], Answer]:
    """Prometheus' answer to every query: an error of ``errorType`` ``kind``."""
    body = json.dumps({"status": "error", "errorType": kind, "error": error}).encode()
    return lambda params: (status, body, 0.0)


def test_prometheus_own_query_timeout_is_a_timeout_and_not_retried(prom: FakePrometheus) -> None:
    # What Prometheus 2.42 answered a query past its --query.timeout (or past the timeout
    # the request carries): retried as a 503, the same query timed out three times over on
    # a server already too slow, and the run failed as source_unavailable (prom F3).
    prom.answer = error_answer(503, "timeout", "query timed out in expression evaluation")
    with pytest.raises(SourceTimeoutError) as info:
        make_source(prom.url, sleep=lambda s: None).read_window(T0, T0 + 60)
    assert len(prom.requests) == 1
    assert str(info.value).endswith(
        "answered HTTP 503: timeout: query timed out in expression evaluation: Prometheus' own "
        "query timeout ran out (not retried: the same query would time out again); raise the "
        "source's timeout (and Prometheus' --query.timeout, if shorter) or make the expression "
        "lighter (a shorter range, fewer series)"
    )


def test_an_expression_prometheus_cannot_parse_is_said_to_be_the_configuration_s(
    prom: FakePrometheus,
) -> None:
    # check-config sends no expression to Prometheus: a missing ")" passed it, and each run
    # then failed with Prometheus' words alone, read as the source down (prom F2).
    prom.answer = error_answer(400, "bad_data", "1:64: parse error: unclosed left parenthesis")
    with pytest.raises(QueryError) as info:
        make_source(prom.url).read_window(T0, T0 + 60)
    # The configuration's fault, not an outage: it counted as source_unavailable.
    assert classify_failure(info.value) == "schema"
    assert str(info.value).endswith(
        "answered HTTP 400: bad_data: 1:64: parse error: unclosed left parenthesis: Prometheus "
        "refuses the feature's expression: fix it in source.features (expressions are not "
        "checked by check-config, only when a run sends them)"
    )


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(prom: FakePrometheus, status: int) -> None:
    prom.answer = lambda params: (status, b'{"status":"error","errorType":"bad_data"}', 0.0)
    refused = QueryError if status == 400 else SourceError  # a bad expression: the config's
    with pytest.raises(refused, match=f"answered HTTP {status}: bad_data") as info:
        make_source(prom.url, sleep=lambda s: None).read_window(T0, T0 + 60)
    assert len(prom.requests) == 1
    assert not isinstance(info.value, TransientSourceError)  # the same query fails again


def test_connection_errors_are_retried() -> None:
    drip = DripServer()
    url = drip.url
    drip.close()  # nothing listens there any more: every connect is refused
    waits: list[float] = []
    with pytest.raises(
        TransientSourceError, match=r"is unreachable: .*refused.* \(after 3 attempts\)"
    ):
        make_source(url, sleep=waits.append).read_window(T0, T0 + 60)
    assert len(waits) == 2


# --------------------------------------------------------------------------- credentials


def test_a_bearer_token_file_is_sent_and_reread_for_each_window(
    prom: FakePrometheus, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    source = make_source(prom.url, bearer_token_file=str(token))
    source.read_window(T0, T0 + 60)
    token.write_text("rotated-token")
    source.read_window(T0, T0 + 60)
    sent = [h["authorization"] for h in prom.headers]
    assert sent == [f"Bearer {TOKEN}"] * 2 + ["Bearer rotated-token"] * 2


def test_basic_auth_reads_its_password_from_a_file(prom: FakePrometheus, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text(PASSWORD)
    basic = {"username": "kmeans", "password_file": str(password)}
    make_source(prom.url, basic_auth=basic).read_window(T0, T0 + 60)
    expected = "Basic " + base64.b64encode(f"kmeans:{PASSWORD}".encode()).decode()
    assert {h["authorization"] for h in prom.headers} == {expected}


def test_credentials_in_the_url_become_basic_auth(prom: FakePrometheus) -> None:
    url = prom.url.replace("http://", f"http://kmeans:{PASSWORD}@")
    make_source(url).read_window(T0, T0 + 60)
    expected = "Basic " + base64.b64encode(f"kmeans:{PASSWORD}".encode()).decode()
    assert {h["authorization"] for h in prom.headers} == {expected}


def test_extra_headers_are_sent(prom: FakePrometheus) -> None:
    headers = {"X-Scope-OrgID": "tenant-1", "X-Api-Key": TOKEN}
    make_source(prom.url, headers=headers).read_window(T0, T0 + 60)
    assert {(h["x-scope-orgid"], h["x-api-key"]) for h in prom.headers} == {("tenant-1", TOKEN)}


def test_no_secret_appears_in_errors_or_logs(
    prom: FakePrometheus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A misbehaving proxy echoes the request's headers in its error page.
    def echo(params: dict[str, str]) -> Answer:
        return 502, json.dumps(prom.headers[-1]).encode(), 0.0

    prom.answer = echo
    token = tmp_path / "token"
    token.write_text(TOKEN)
    url = prom.url.replace("http://", f"http://kmeans:{PASSWORD}@")
    caplog.set_level(logging.DEBUG)
    source = make_source(
        url,
        headers={"X-Api-Key": "key-abcdef-secret"},
        sleep=lambda s: None,
    )
    with pytest.raises(SourceError) as info:
        source.read_window(T0, T0 + 60)
    shown = str(info.value) + caplog.text
    basic = base64.b64encode(f"kmeans:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, "key-abcdef-secret", basic):
        assert secret not in shown
    assert "http://***@127.0.0.1" in str(info.value)
    assert "answered HTTP 502" in str(info.value)
    # The same with a token: the echoed Authorization header is masked too.
    bearer = make_source(prom.url, bearer_token_file=str(token), sleep=lambda s: None)
    with pytest.raises(SourceError) as info:
        bearer.read_window(T0, T0 + 60)
    assert TOKEN not in str(info.value) + caplog.text and "***" in str(info.value)


def test_an_echoed_page_is_one_line_and_cut_after_its_secrets_are_masked(
    prom: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    # A proxy's plain-text error page, one request header a line. The page was cut to 300
    # characters before the secrets were masked: a cut inside the Authorization value
    # left a prefix no secret matched, 9 of a password's 15 characters (helper-83); and
    # its lines went into the log as they were.
    def echo(params: dict[str, str]) -> Answer:
        lines = [f"{k}: {v}" for k, v in sorted(prom.headers[-1].items())]
        return 502, ("Bad gateway\n" + "\n".join(lines)).encode(), 0.0

    prom.answer = echo
    url = prom.url.replace("http://", f"http://kmeans:{PASSWORD}@")
    basic = base64.b64encode(f"kmeans:{PASSWORD}".encode()).decode()
    caplog.set_level(logging.DEBUG)
    for pad in range(0, 120, 3):  # moves the cut over every part of the secret
        source = make_source(url, headers={"X-Pad": "p" * pad}, sleep=lambda s: None)
        with pytest.raises(SourceError) as info:
            source.read_window(T0, T0 + 60)
        shown = str(info.value)
        assert "\n" not in shown and "answered HTTP 502: Bad gateway " in shown
        for secret in (PASSWORD, basic):
            pieces = {secret[i : i + 8] for i in range(len(secret) - 7)}
            assert not any(p in shown + caplog.text for p in pieces), (pad, shown)
    assert "user-agent: kmeans-monitor" in shown  # the user name is no secret


def test_no_secret_appears_in_the_warnings_of_an_answer(
    prom: FakePrometheus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A proxy that echoes the request's headers into the answer's warnings.
    def echo(params: dict[str, str]) -> Answer:
        answer = json.loads(matrix()[1])
        answer["warnings"] = [f"auth was {prom.headers[-1].get('authorization')}"]
        return 200, json.dumps(answer).encode(), 0.0

    prom.answer = echo
    token = tmp_path / "token"
    token.write_text(TOKEN)
    caplog.set_level(logging.WARNING)
    make_source(prom.url, bearer_token_file=str(token)).read_window(T0, T0 + 60)
    url = prom.url.replace("http://", f"http://kmeans:{PASSWORD}@")
    make_source(url).read_window(T0, T0 + 60)
    basic = base64.b64encode(f"kmeans:{PASSWORD}".encode()).decode()
    # Once a window (each feature's answer warned the same: one line says how often).
    assert caplog.text.count("Prometheus warns: auth was ***") == 2
    for secret in (TOKEN, PASSWORD, basic):
        assert secret not in caplog.text


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"basic_auth": {"username": "u", "password": PASSWORD}},
            [
                "source.basic_auth.password: must be omitted (unknown field; did you mean "
                "'password_file'? valid: password_file, username); got ***",
                "source.basic_auth.password_file: must be a file holding the password (the "
                "password itself never goes here); it is missing or empty",
            ],
        ),
        (
            {"token": TOKEN},
            ["source.token: must be omitted (unknown field; valid: basic_auth, "],
        ),
        (
            {"headers": {"Authorization": f"Bearer {TOKEN}", "Host": "x"}},
            ["source.headers.Host: must be omitted (the source sets it); got ..."],
        ),
        (
            {"headers": {"X-Token": TOKEN + "\r\nX-Evil: 1"}},
            [f"source.headers.X-Token: must be {HEADER_VALUE}; got str"],
        ),
        # http.client sends headers in Latin-1: this failed every run as "internal".
        (
            {"headers": {"X-Scope-OrgID": "tenant€"}},
            [f"source.headers.X-Scope-OrgID: must be {HEADER_VALUE}; got str"],
        ),
        (
            {"tls": {"ca_file": "/ca.pem"}},
            ["source.tls: must be omitted unless the url is https; got {...}"],
        ),
        (
            {"bearer_token_file": "/t", "basic_auth": {"username": "u", "password_file": "/p"}},
            [
                "source.basic_auth: must be omitted: one way to authenticate, not "
                "bearer_token_file and basic_auth; got ..."
            ],
        ),
        (
            {"tls": {"cert_file": "/c.pem"}, "url": "https://p"},
            [
                "source.tls.key_file: must be given with the other (a client key pair); "
                "it is missing or empty"
            ],
        ),
        ({"retries": 11}, ["source.retries: must be an int in [0, 10]; got 11"]),
        (
            {"url": f"http://u:{PASSWORD}@p:90x"},
            [
                "source.url: must be an http(s) URL such as 'http://prometheus:9090'; got "
                "'http://***@p:90x'"
            ],
        ),
    ],
)
def test_option_problems_never_repeat_a_secret(options: dict, expected: list[str]) -> None:
    raw = {"url": "http://p", "features": EXPRS, **options}
    parsed, problems = parse_options(raw, FEATURES)
    rendered = [p.config("source") for p in problems]
    assert parsed is None
    assert len(rendered) == len(expected)
    for line, start in zip(rendered, expected, strict=True):
        assert line.startswith(start), rendered
        assert TOKEN not in line and PASSWORD not in line


def build_problems(raw: dict[str, Any]) -> list[str]:
    """The problems ``build`` refuses the options ``raw`` with (which parse cleanly)."""
    parsed, problems = parse_options(raw, FEATURES)
    assert problems == [] and parsed is not None
    with pytest.raises(ConfigError) as info:
        build("checkout", FEATURES, parsed)
    return info.value.problems


def test_build_reads_the_files_and_names_those_that_fail(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    raw = {
        "url": "https://p",
        "features": EXPRS,
        "bearer_token_file": str(tmp_path / "missing"),
        "tls": {"ca_file": str(empty)},
    }
    problems = build_problems(raw)
    assert problems[0] == (
        "source.bearer_token_file: must be a readable, non-empty UTF-8 file (No such file "
        f"or directory); got '{tmp_path / 'missing'}'"
    )
    assert problems[1] == (
        f"source.tls.ca_file: {empty} holds no PEM certificate (-----BEGIN CERTIFICATE-----): "
        "give the CA certificate that signed the server's"
    )
    assert len(problems) == 2


_READABLE = "a readable, non-empty UTF-8 file (not a regular file)"


@pytest.mark.timeout(20)  # the old code waited for a writer for ever
@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"bearer_token_file": "FIFO"}, f"bearer_token_file: must be {_READABLE}; got {{}}"),
        (
            {"basic_auth": {"username": "kmeans", "password_file": "FIFO"}},
            f"basic_auth.password_file: must be {_READABLE}; got {{}}",
        ),
        (
            {"url": "https://p", "tls": {"ca_file": "FIFO"}},
            # The value a problem shows is quoted; a path within a reason is not.
            "tls: must be certificates and a key that load; got not a regular file: {bare}",
        ),
    ],
    ids=["bearer_token_file", "basic_auth.password_file", "tls.ca_file"],
)
def test_a_credential_file_that_is_a_fifo_is_refused_without_waiting(
    tmp_path: Path, options: dict[str, Any], problem: str
) -> None:
    # open() of a FIFO blocks until a writer comes: check-config and the daemon hung.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    given = json.loads(json.dumps(options).replace('"FIFO"', json.dumps(str(fifo))))
    problems = build_problems({"url": "http://p", "features": EXPRS, **given})
    assert problems == [f"source.{problem.format(repr(str(fifo)), bare=fifo)}"]


@pytest.mark.timeout(20)  # the old code waited for a writer for ever
def test_a_token_file_replaced_by_a_fifo_fails_the_run_without_waiting(
    prom: FakePrometheus, tmp_path: Path
) -> None:
    # The token is read again for every window: a FIFO put there later hung every run.
    token = tmp_path / "token"
    token.write_text(TOKEN)
    source = make_source(prom.url, bearer_token_file=str(token))
    token.unlink()
    os.mkfifo(token)
    with pytest.raises(SourceError, match="cannot read its credentials: not a regular file"):
        source.read_window(T0, T0 + 60)


def test_a_credential_file_of_more_than_64_kib_is_refused(tmp_path: Path) -> None:
    # Not a credential: a wrong path (a log, a dump); it was read whole into memory.
    token = tmp_path / "token"
    token.write_text("t" * (64 * 1024 + 1))
    parsed, _ = parse_options(
        {"url": "http://p", "features": EXPRS, "bearer_token_file": str(token)}, FEATURES
    )
    assert parsed is not None
    with pytest.raises(ConfigError) as info:
        build("checkout", FEATURES, parsed)
    assert info.value.problems == [
        "source.bearer_token_file: must be a readable, non-empty UTF-8 file (it is longer "
        f"than 64 KiB); got {str(token)!r}"
    ]


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Pki:
    """A CA made for the test, a server certificate for 127.0.0.1 and a client pair."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key_file(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _issue(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, *, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = _issue("test CA", ca_key, ca_name, ca_key, ca=True)
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    files = {}
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(who, key, ca_name, ca_key, ca=False)
        (directory / f"{who}.crt").write_bytes(cert.public_bytes(pem))
        files[who] = (directory / f"{who}.crt", _key_file(directory / f"{who}.key", key))
    return Pki(directory / "ca.crt", *files["server"], *files["client"])


def server_context(pki: Pki, *, require_client: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client:
        context.load_verify_locations(pki.ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def test_https_with_the_ca_that_signed_the_server(pki: Pki) -> None:
    fake = FakePrometheus(tls=server_context(pki))
    try:
        fake.answer = lambda params: matrix(({"i": "a"}, [(T0, "2")]))
        window = make_source(fake.url, tls={"ca_file": str(pki.ca_file)}).read_window(T0, T0 + 60)
    finally:
        fake.close()
    assert fake.url.startswith("https://") and window.X.tolist() == [[2.0, 2.0]]


def test_https_without_the_ca_is_refused_and_not_retried(pki: Pki) -> None:
    fake = FakePrometheus(tls=server_context(pki))
    waits: list[float] = []
    try:
        with pytest.raises(SourceError, match="TLS certificate is not trusted") as info:
            make_source(fake.url, sleep=waits.append).read_window(T0, T0 + 60)
        # insecure_skip_verify reads it anyway (and the configuration's loading warns of it).
        skip = make_source(fake.url, tls={"insecure_skip_verify": True})
        assert skip.read_window(T0, T0 + 60).X.shape == (0, 2)
    finally:
        fake.close()
    assert "set tls.ca_file to the CA that signed it" in str(info.value)
    assert waits == []


def test_a_client_certificate_is_presented(pki: Pki) -> None:
    fake = FakePrometheus(tls=server_context(pki, require_client=True))
    try:
        with pytest.raises(SourceError, match=r"the TLS handshake failed: [A-Z0-9_]+"):
            make_source(fake.url, tls={"ca_file": str(pki.ca_file)}, retries=0).read_window(
                T0, T0 + 60
            )
        tls = {
            "ca_file": str(pki.ca_file),
            "cert_file": str(pki.client_cert),
            "key_file": str(pki.client_key),
        }
        assert make_source(fake.url, tls=tls).read_window(T0, T0 + 60).X.shape == (0, 2)
    finally:
        fake.close()


@pytest.mark.timeout(20)  # OpenSSL's prompt waited for a passphrase on a terminal
def test_an_encrypted_client_key_is_named_without_asking_for_its_passphrase(
    pki: Pki, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), password=None)
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"x"),
        )
    )
    tls = {"cert_file": str(pki.client_cert), "key_file": str(encrypted)}
    assert build_problems({"url": "https://p", "features": EXPRS, "tls": tls}) == [
        "source.tls.key_file: must be an unencrypted PEM key (this one is "
        f"passphrase-protected); got {str(encrypted)!r}"
    ]
    assert "pass phrase" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        (
            {"cert_file": "client_cert", "key_file": "client_cert"},
            "source.tls.key_file: {client_cert} holds no PEM private key (-----BEGIN PRIVATE "
            "KEY-----), only a certificate: give the private key of cert_file",
        ),
        (
            {"cert_file": "junk", "key_file": "client_key"},
            "source.tls.cert_file: {junk} holds no PEM certificate (-----BEGIN CERTIFICATE-----): "
            "give the client's certificate, then its chain",
        ),
        (
            {"ca_file": "client_key"},
            "source.tls.ca_file: {client_key} holds no PEM certificate (-----BEGIN "
            "CERTIFICATE-----), only a private key: give the CA certificate that signed the "
            "server's",
        ),
    ],
)
def test_a_tls_file_of_the_wrong_kind_is_named_with_its_field(
    pki: Pki, tmp_path: Path, files: dict[str, str], problem: str
) -> None:
    # OpenSSL's "[SSL] PEM lib (_ssl.c:3926)" named neither the field nor the file; the
    # web config's server side said which already (tlsfiles.pem_problem).
    paths = {"junk": tmp_path / "junk.txt", **vars(pki)}
    paths["junk"].write_text("not PEM\n")
    tls = {field: str(paths[name]) for field, name in files.items()}
    problems = build_problems({"url": "https://p", "features": EXPRS, "tls": tls})
    assert problems == [problem.format(**paths)]


def test_a_key_that_is_not_the_certificates_says_which_certificate_it_must_match(
    pki: Pki,
) -> None:
    # OpenSSL's "[X509: KEY_VALUES_MISMATCH] key values mismatch (_ssl.c:4010)": the web
    # config's server side explained it already (tlsfiles.load_failure).
    tls = {"cert_file": str(pki.client_cert), "key_file": str(pki.server_key)}
    assert build_problems({"url": "https://p", "features": EXPRS, "tls": tls}) == [
        "source.tls: cert_file and key_file do not load: KEY_VALUES_MISMATCH (the key is not "
        "the first certificate's: cert_file starts with the client's own certificate, then "
        "its chain)"
    ]


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([1, 2, 3], "answered a malformed series: result[0] is '1', not {'metric'"),
        ([{"metric": "x", "values": []}], "result[0].metric is 'x', not a mapping of label"),
        (
            [{"metric": {"a": 1}, "values": []}],
            "result[0].metric is \"{'a': 1}\", not a mapping of label names",
        ),
        ([{"metric": {}, "values": 5}], "result[0].values is '5', not a list of [time, 'value']"),
        ([{"metric": {}, "values": [5]}], "malformed sample in the answer"),
    ],
)
def test_malformed_answers_are_source_errors(
    prom: FakePrometheus, result: Any, message: str
) -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    prom.answer = lambda params: (200, json.dumps(body).encode(), 0.0)
    with pytest.raises(SourceError) as info:
        make_source(prom.url).read_window(T0, T0 + 60)
    assert message in str(info.value)


def test_an_answer_whose_data_is_not_a_mapping_is_a_source_error(prom: FakePrometheus) -> None:
    prom.answer = lambda params: (200, b'{"status": "success", "data": [1]}', 0.0)
    with pytest.raises(SourceError, match="answered a None where a 'matrix' was expected"):
        make_source(prom.url).read_window(T0, T0 + 60)


@pytest.mark.parametrize("token", ["abc\ndef-" + TOKEN, TOKEN + "€"])
def test_a_token_a_header_cannot_carry_is_refused_and_never_shown(
    prom: FakePrometheus, tmp_path: Path, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    # http.client refused it with its own words, which quoted the header: the token went
    # into the run's "internal" failure, the log and the history.
    path = tmp_path / "token"
    path.write_text(TOKEN)
    raw = {"url": prom.url, "features": EXPRS, "bearer_token_file": str(path)}
    parsed, _ = parse_options(raw, FEATURES)
    assert parsed is not None
    source = build("checkout", FEATURES, parsed)
    path.write_text(token)  # rotated to a bad one after the build
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceError) as info:
        source.read_window(T0, T0 + 60)
    assert "holds a line break, a control or a non-Latin-1 character" in str(info.value)
    for part in (TOKEN, "def-"):
        assert part not in str(info.value) + caplog.text
    with pytest.raises(ConfigError) as refused:  # check-config builds the source too
        build("checkout", FEATURES, parsed)
    assert "source.bearer_token_file: must be a readable, non-empty UTF-8 file" in str(
        refused.value
    )


@pytest.mark.parametrize("url", ["http://p/ök", "http://p/a b", "http://p:0"])
def test_a_url_http_cannot_carry_is_refused(url: str) -> None:
    _, problems = parse_options({"url": url, "features": EXPRS}, FEATURES)
    assert [p.config("source") for p in problems] == [
        "source.url: must be an http(s) URL such as 'http://prometheus:9090'"
        + (", in ASCII without spaces" if ":0" not in url else "")
        + f"; got {url!r}"
    ]


def test_the_warnings_of_a_window_are_logged_three_and_counted(
    prom: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    # One line per warning, request and feature wrote 2,688 lines for one window
    # (helper-88): each distinct warning once a window, the rest in one count.
    answer = json.loads(matrix()[1])
    answer["warnings"] = [f"warning {i}" for i in range(5000)]
    prom.answer = lambda params: (200, json.dumps(answer).encode(), 0.0)
    caplog.set_level(logging.WARNING)
    make_source(prom.url).read_window(T0, T0 + 60)
    lines = [r.getMessage() for r in caplog.records if not _no_series(r)]
    assert len(lines) == 4
    assert lines[2].endswith("Prometheus warns: warning 2 (2 times in this window)")
    # Each feature whose answers carried it is named (helper-92: the first alone was).
    assert f"features {', '.join(map(repr, FEATURES))}: " in lines[2]
    assert lines[3].endswith(f"Prometheus warns {2 * 5000 - 6} times more in this window")


def test_a_warning_repeated_window_after_window_is_logged_once_in_ten_minutes(
    prom: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    # A reference period read window after window repeated each warning at every window
    # (and a run a minute, at every run).
    answer = json.loads(matrix()[1])
    answer["warnings"] = ["PromQL info: metric might not be a counter"]
    prom.answer = lambda params: (200, json.dumps(answer).encode(), 0.0)
    source = make_source(prom.url)
    now = [1000.0]
    source._throttle = Throttle(WARNINGS_LOG_SECONDS, lambda: now[0])
    caplog.set_level(logging.WARNING)
    for minute in range(12):  # twelve windows a minute apart
        now[0] = 1000.0 + 60 * minute
        source.read_window(T0 + 60 * minute, T0 + 60 * minute + 60)
    lines = [r.getMessage() for r in caplog.records if not _no_series(r)]
    per_window = len(FEATURES)  # each feature's answer carries it
    assert len(lines) == 2
    assert lines[0].endswith(f"counter ({per_window} times in this window)")
    # The tenth minute's line counts the nine windows held and its own.
    assert lines[1].endswith(f"counter ({10 * per_window} times in the last 10m)")


def test_a_warning_of_many_lines_is_logged_as_one(
    prom: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    answer = json.loads(matrix()[1])
    answer["warnings"] = ["first line\nERROR fake log line\n  third"]
    prom.answer = lambda params: (200, json.dumps(answer).encode(), 0.0)
    caplog.set_level(logging.WARNING)
    make_source(prom.url).read_window(T0, T0 + 60)
    [line] = [r.getMessage() for r in caplog.records if not _no_series(r)]
    assert line.endswith(
        "Prometheus warns: first line ERROR fake log line third (2 times in this window)"
    )


@pytest.mark.parametrize(
    "echo",
    [
        lambda auth: urllib.parse.quote(auth),  # a logged URL, a query string
        lambda auth: urllib.parse.quote(auth, safe=""),
        lambda auth: json.dumps(auth).replace("/", "\\/"),  # JSON with escaped slashes
        lambda auth: "\n".join(auth[i : i + 12] for i in range(0, len(auth), 12)),  # wrapped
    ],
    ids=["percent", "percent-all", "json-slashes", "wrapped"],
)
def test_a_re_encoded_echo_of_the_credentials_leaks_nothing(
    prom: FakePrometheus, tmp_path: Path, echo: Callable[[str], str]
) -> None:
    # A 401 page echoing "Basic%20a21l...%3D%3D": the %3D alone hid the whole basic-auth
    # value from the masking, and it decodes to the password (helper-88).
    def answer(params: dict[str, str]) -> Answer:
        return 401, f"invalid token {echo(prom.headers[-1]['authorization'])}".encode(), 0.0

    prom.answer = answer
    token = tmp_path / "token"
    token.write_text("Tok/enSecret+AB/C123xyz==")
    url = prom.url.replace("http://", f"http://kmeans:{PASSWORD}@")
    for source in (make_source(url), make_source(prom.url, bearer_token_file=str(token))):
        with pytest.raises(SourceError) as info:
            source.read_window(T0, T0 + 60)
        shown = str(info.value)
        basic = base64.b64encode(f"kmeans:{PASSWORD}".encode()).decode()
        for secret in (PASSWORD, basic, "Tok/enSecret+AB/C123xyz"):
            for form in (secret, urllib.parse.quote(secret, safe=""), secret.replace("/", "\\/")):
                pieces = {form[i : i + 8] for i in range(len(form) - 7)}
                assert not any(p in shown for p in pieces), shown
        assert "answered HTTP 401" in shown


def test_an_answer_past_max_answer_bytes_fails_the_read_unread(prom: FakePrometheus) -> None:
    # The whole body was read into memory: 300 MB of answer took the daemon to 766 MB.
    padded = json.loads(matrix(({"i": "a"}, [(T0, "1")]))[1])
    padded["data"]["result"][0]["metric"]["pad"] = "x" * 3000
    body = json.dumps(padded).encode()
    prom.answer = lambda params: (200, body, 0.0)
    with pytest.raises(SourceError) as info:
        make_source(prom.url, max_answer_bytes=2048).read_window(T0, T0 + 60)
    assert str(info.value).endswith(
        "answered more than max_answer_bytes (2048 bytes) to one request: select fewer series "
        "in the expression, lower max_points, or raise max_answer_bytes"
    )
    assert len(prom.requests) == 1  # not retried: the same query would answer the same
    limit = len(body)  # an answer of exactly the limit is read
    window = make_source(prom.url, max_answer_bytes=limit).read_window(T0, T0 + 60)
    assert window.X.tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("size", [1023, 2**32 + 1, "1M", True])
def test_max_answer_bytes_out_of_range_is_a_problem(size: object) -> None:
    raw = {"url": "http://p:9090", "features": EXPRS, "max_answer_bytes": size}
    _, problems = parse_options(raw, FEATURES)
    assert [p.config("source") for p in problems] == [
        f"source.max_answer_bytes: must be an int in [1024, 4294967296]; got {size!r}"
    ]


def test_a_feature_with_no_series_in_the_window_is_named_once_per_hold(
    prom: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    # Every expression returned nothing: the window held no row and no line said which.
    source = make_source(prom.url)  # FakePrometheus answers an empty matrix by default
    with caplog.at_level(logging.WARNING, logger="monitor.sources.prometheus"):
        for start in (T0, T0 + 60, T0 + 120):  # within one WARNINGS_LOG_SECONDS
            assert source.read_window(start, start + 60).X.shape == (0, 2)
    assert caplog.messages == [
        "prometheus source of model 'checkout': the expression of 'latency' "
        f"({EXPRS['latency']}), 'rps' ({EXPRS['rps']}) returned no series in "
        "[2023-11-14T22:13:20Z, 2023-11-14T22:14:20Z)"
    ]
