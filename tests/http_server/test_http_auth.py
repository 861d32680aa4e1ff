"""Basic authentication: right, wrong and missing credentials, at the unit and on the wire."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Callable

import bcrypt
import pytest

from monitor.http import MetricsCache, Routes, WebConfig
from monitor.http._auth import BasicAuth, is_bcrypt_hash
from tests.http_server._support import Running, registry_with_counter

# Cost 4, the lowest bcrypt allows: these tests check logic, not the hash's strength.
HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
OTHER = bcrypt.hashpw(b"other", bcrypt.gensalt(rounds=4)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class CountingCheckpw:
    def __init__(self) -> None:
        self.calls = 0
        self.real = bcrypt.checkpw

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls += 1
        return self.real(password, hashed)


@pytest.fixture
def checkpw(monkeypatch: pytest.MonkeyPatch) -> CountingCheckpw:
    spy = CountingCheckpw()
    monkeypatch.setattr(bcrypt, "checkpw", spy)
    return spy


def test_the_right_password_passes_and_others_do_not() -> None:
    auth = BasicAuth({"prometheus": HASH, "grafana": OTHER})
    assert auth.check(basic("prometheus", "s3cret"))
    assert auth.check(basic("grafana", "other"))
    assert not auth.check(basic("prometheus", "other"))  # another user's password
    assert not auth.check(basic("prometheus", "s3cret "))
    assert not auth.check(basic("nobody", "s3cret"))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:s3cret").decode(),
        "Bearer " + base64.b64encode(b"prometheus:s3cret").decode(),
        basic("prometheus", "s3cret" + "x" * 80),  # beyond bcrypt's 72 bytes
    ],
)
def test_missing_or_malformed_credentials_fail(header: str | None) -> None:
    assert not BasicAuth({"prometheus": HASH}).check(header)


def test_the_scheme_is_case_insensitive_and_a_colon_may_be_in_the_password() -> None:
    hashed = bcrypt.hashpw(b"a:b", bcrypt.gensalt(rounds=4)).decode()
    auth = BasicAuth({"u": hashed})
    assert auth.check("basic " + base64.b64encode(b"u:a:b").decode())


def test_a_verified_pair_is_remembered_and_a_failure_always_pays_bcrypt(
    checkpw: CountingCheckpw,
) -> None:
    auth = BasicAuth({"prometheus": HASH})
    assert not auth.remembered(basic("prometheus", "s3cret"))
    assert all(auth.check(basic("prometheus", "s3cret")) for _ in range(20))
    assert checkpw.calls == 1
    assert auth.remembered(basic("prometheus", "s3cret"))
    assert not auth.remembered(basic("prometheus", "wrong"))
    assert not auth.remembered(None)
    assert not any(auth.check(basic("prometheus", "wrong")) for _ in range(3))
    assert checkpw.calls == 4


def test_an_unknown_user_costs_a_bcrypt_check_like_a_known_one(
    checkpw: CountingCheckpw,
) -> None:
    auth = BasicAuth({"prometheus": HASH})
    assert not auth.check(basic("nobody", "s3cret"))
    assert checkpw.calls == 1


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (HASH, True),
        (HASH.replace("$2b$", "$2y$", 1), True),
        (HASH.replace("$2b$", "$2a$", 1), True),
        (HASH.replace("$2b$04$", "$2b$03$", 1), False),
        (HASH.replace("$2b$", "$1$", 1), False),
        (HASH[:-1], False),
        (HASH[:-1] + "!", False),
        ("s3cret", False),
    ],
    # HASH is salted afresh in each process: ids from it differ between pytest-xdist's
    # workers, which then refuse the session (they must collect the same tests).
    ids=["2b", "2y", "2a", "cost-3", "md5-crypt", "short", "bad-char", "plain"],
)
def test_only_bcrypt_hashes_are_recognised(value: str, ok: bool) -> None:
    assert is_bcrypt_hash(value) is ok


def fetch(running: Running, path: str, authorization: str | None) -> tuple[int, str | None]:
    request = urllib.request.Request(f"http://{running.host}:{running.port}{path}")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["WWW-Authenticate"]


@pytest.mark.parametrize("path", ["/metrics", "/readyz", "/", "/api/models", "/nowhere"])
def test_every_path_but_healthz_asks_for_credentials(
    serve: Callable[..., Running], path: str
) -> None:
    running = serve(web=WebConfig(users={"prometheus": HASH}))
    challenge = 'Basic realm="kmeans-monitor", charset="UTF-8"'
    assert fetch(running, path, None) == (401, challenge)
    assert fetch(running, path, basic("prometheus", "wrong")) == (401, challenge)
    assert fetch(running, path, basic("prometheus", "s3cret"))[0] != 401
    assert fetch(running, "/healthz", None) == (200, None)


def test_metrics_with_the_right_credentials(serve: Callable[..., Running]) -> None:
    running = serve(web=WebConfig(users={"prometheus": HASH}))
    assert fetch(running, "/metrics", basic("prometheus", "s3cret")) == (200, None)


def test_fresh_cached_metrics_still_need_credentials(serve: Callable[..., Running]) -> None:
    # /metrics from a fresh cache is answered on the event loop: it must check too.
    registry = registry_with_counter()
    cache = MetricsCache(registry, lambda: 0, max_age=None)
    running = serve(Routes(registry=registry, metrics=cache), web=WebConfig(users={"p": HASH}))
    assert fetch(running, "/metrics", basic("p", "s3cret"))[0] == 200  # now cached and fresh
    assert cache.peek() is not None
    assert fetch(running, "/metrics", None)[0] == 401
    assert fetch(running, "/metrics", basic("p", "wrong"))[0] == 401
    assert fetch(running, "/metrics", basic("q", "s3cret"))[0] == 401
    assert fetch(running, "/metrics", basic("p", "s3cret"))[0] == 200
    assert fetch(running, "/healthz", basic("p", "wrong"))[0] == 200  # public path


def test_a_failing_check_is_a_500_and_the_server_keeps_serving(
    serve: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: BasicAuth, header: str | None) -> bool:
        raise RuntimeError("auth bug")

    monkeypatch.setattr(BasicAuth, "check", broken)
    running = serve(web=WebConfig(users={"prometheus": HASH}))
    assert fetch(running, "/metrics", basic("prometheus", "s3cret"))[0] == 500
    assert fetch(running, "/healthz", None)[0] == 200
