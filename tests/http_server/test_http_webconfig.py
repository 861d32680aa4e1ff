"""The web config file: what parses, and one clear line per problem otherwise."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from monitor.errors import ConfigError
from monitor.http import (
    TlsConfig,
    WebConfig,
    certificate_warnings,
    load_web_config,
    parse_web_config,
)
from monitor.tlsfiles import validity
from tests.http_server._support import Certificate, make_certificate

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


def problems(data: object, base: Path = Path("/etc/km")) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_web_config(data, base_dir=base, where="web.yml")
    return caught.value.problems


def test_a_full_config_parses_with_paths_relative_to_the_file() -> None:
    config = parse_web_config(
        {
            "tls_server_config": {
                "cert_file": "tls/server.crt",
                "key_file": "/abs/server.key",
                "client_ca_file": "ca.crt",
                "client_auth_type": "RequireAndVerifyClientCert",
                "min_version": "TLS13",
            },
            "basic_auth_users": {"prometheus": HASH},
        },
        base_dir=Path("/etc/km"),
    )
    assert config == WebConfig(
        tls=TlsConfig(
            cert_file=Path("/etc/km/tls/server.crt"),
            key_file=Path("/abs/server.key"),
            client_ca_file=Path("/etc/km/ca.crt"),
            client_auth_type="RequireAndVerifyClientCert",
            min_version="TLS13",
        ),
        users={"prometheus": HASH},
    )


@pytest.mark.parametrize("data", [None, {}, {"tls_server_config": None, "basic_auth_users": None}])
def test_an_empty_config_serves_plain_http_without_auth(data: object) -> None:
    assert parse_web_config(data, base_dir=Path(".")) == WebConfig()


TLS = {"cert_file": "a", "key_file": "b"}
TOP = "tls_server_config, basic_auth_users"
AUTH_TYPES = "{'NoClientCert', 'VerifyClientCertIfGiven', 'RequireAndVerifyClientCert'}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (["a"], ["web.yml: must be a mapping at the top level; got list"]),
        ({"tls": {}}, [f"web.yml: tls: unknown key; expected one of {TOP}"]),
        (
            {"http_server_config": {"http2": False}},
            ["web.yml: http_server_config: not supported by kmeans-monitor"],
        ),
        ({"tls_server_config": "x"}, ["web.yml: tls_server_config: must be a mapping; got 'x'"]),
        (
            {"tls_server_config": {"cert_file": "a"}},
            ["web.yml: tls_server_config.key_file: required"],
        ),
        (
            {"tls_server_config": {"cert_file": 3, "key_file": "", "cipher_suites": []}},
            [
                "web.yml: tls_server_config.cipher_suites: not supported by kmeans-monitor",
                "web.yml: tls_server_config.cert_file: must be a non-empty str; got 3",
                "web.yml: tls_server_config.key_file: must be a non-empty str; got ''",
            ],
        ),
        (
            {"tls_server_config": {**TLS, "min_version": "TLS11"}},
            [
                "web.yml: tls_server_config.min_version: must be one of {'TLS12', 'TLS13'}; "
                "got 'TLS11'"
            ],
        ),
        (
            {"tls_server_config": {**TLS, "client_auth_type": "RequireAnyClientCert"}},
            [
                f"web.yml: tls_server_config.client_auth_type: must be one of {AUTH_TYPES}; "
                "got 'RequireAnyClientCert'"
            ],
        ),
        (
            {"tls_server_config": {**TLS, "client_auth_type": "VerifyClientCertIfGiven"}},
            ["web.yml: tls_server_config.client_ca_file: required by client_auth_type"],
        ),
        (
            {"basic_auth_users": ["prometheus"]},
            [
                "web.yml: basic_auth_users: must be a mapping of user name to bcrypt hash; "
                "got ['prometheus']"
            ],
        ),
        (
            {"basic_auth_users": {"a:b": HASH}},
            ["web.yml: basic_auth_users key: must be a non-empty name without :; got 'a:b'"],
        ),
    ],
)
def test_each_problem_is_one_line_naming_the_file_and_key(
    data: object, expected: list[str]
) -> None:
    assert problems(data) == expected


def test_a_plain_password_is_refused_without_being_echoed() -> None:
    (line,) = problems({"basic_auth_users": {"prometheus": "hunter2"}})
    assert line.startswith("web.yml: basic_auth_users.prometheus: must be a bcrypt hash")
    assert "hunter2" not in line


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"extra": 1, "tls_server_config": {}, "basic_auth_users": {"u": "x"}})
    assert len(found) == 4


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_reads_the_file_and_tries_the_certificate(
    tmp_path: Path, certificate: Certificate
) -> None:
    config_file = write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {certificate.cert_file.name}\n"
        f"  key_file: {certificate.key_file}\nbasic_auth_users:\n  prometheus: '{HASH}'\n",
    )
    config = load_web_config(config_file)
    assert config.tls is not None and config.tls.cert_file == certificate.cert_file
    assert config.users == {"prometheus": HASH}


def test_a_missing_certificate_is_named(tmp_path: Path) -> None:
    config_file = write(
        tmp_path / "web.yml", "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_web_config(config_file)
    assert caught.value.problems == [
        f"{config_file}: tls_server_config.cert_file: cannot read {tmp_path}/nope.crt: "
        "No such file or directory",
        f"{config_file}: tls_server_config.key_file: cannot read {tmp_path}/nope.key: "
        "No such file or directory",
    ]


def test_an_empty_certificate_is_named(tmp_path: Path) -> None:
    # OpenSSL said "[SSL] PEM lib", naming neither file (helper-88).
    (tmp_path / "empty.crt").write_bytes(b"")
    (tmp_path / "empty.key").write_bytes(b"")
    config_file = write(
        tmp_path / "web.yml", "tls_server_config:\n  cert_file: empty.crt\n  key_file: empty.key\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_web_config(config_file)
    assert caught.value.problems == [
        f"{config_file}: tls_server_config.cert_file: {tmp_path}/empty.crt is empty",
        f"{config_file}: tls_server_config.key_file: {tmp_path}/empty.key is empty",
    ]


@pytest.mark.parametrize("swap", ["key_file", "cert_file"])
def test_a_file_that_holds_the_other_kind_of_pem_is_named(
    tmp_path: Path, certificate: Certificate, swap: str
) -> None:
    # exB: a certificate given as key_file said "do not load: [SSL] PEM lib (_ssl.c:3926)".
    cert, key = certificate.cert_file, certificate.key_file
    cert_file, key_file = (cert, cert) if swap == "key_file" else (key, key)
    config_file = write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_web_config(config_file)
    expected = {
        "key_file": f"{cert} holds no PEM private key (-----BEGIN PRIVATE KEY-----), only "
        "a certificate: give the private key of cert_file",
        "cert_file": f"{key} holds no PEM certificate (-----BEGIN CERTIFICATE-----), only "
        "a private key: give the server's certificate, then its chain",
    }[swap]
    assert caught.value.problems == [f"{config_file}: tls_server_config.{swap}: {expected}"]


def test_a_missing_key_is_named_with_the_other_problems(
    tmp_path: Path, certificate: Certificate
) -> None:
    # It came only once the others were fixed: check-config promises every problem at once.
    config_file = write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {certificate.cert_file}\n  key_file: ca.key\n"
        "  min_version: TLS11\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_web_config(config_file)
    assert [p.split(": ", 2)[1] for p in caught.value.problems] == [
        "tls_server_config.key_file",
        "tls_server_config.min_version",
    ]


def test_a_key_that_does_not_match_the_certificate_is_named(tmp_path: Path) -> None:
    one, other = make_certificate(tmp_path, "one"), make_certificate(tmp_path, "other")
    config_file = write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {one.cert_file}\n  key_file: {other.key_file}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_web_config(config_file)
    (line,) = caught.value.problems
    assert line.startswith(f"{config_file}: tls_server_config: cert_file and key_file do not load:")


def encrypted_copy(key_file: Path, path: Path) -> Path:
    """The key of ``key_file`` as a passphrase-protected PEM at ``path``."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    encryption = serialization.BestAvailableEncryption(b"x")
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    path.write_bytes(key.private_bytes(pem, pkcs8, encryption))
    return path


@pytest.mark.timeout(20)  # OpenSSL's prompt waited for a passphrase on a terminal
def test_an_encrypted_key_is_named_without_asking_for_its_passphrase(
    tmp_path: Path, certificate: Certificate, capfd: pytest.CaptureFixture[str]
) -> None:
    # The old code printed "Enter PEM pass phrase:" (blocking on a terminal), then
    # failed as "Invalid argument", naming no file.
    encrypted = encrypted_copy(certificate.key_file, tmp_path / "enc.key")
    config_file = write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {certificate.cert_file}\n  key_file: enc.key\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_web_config(config_file)
    assert caught.value.problems == [
        f"{config_file}: tls_server_config.key_file: {encrypted} is encrypted "
        "(a passphrase-protected PEM): give an unencrypted key"
    ]
    assert "pass phrase" not in capfd.readouterr().err


def test_a_file_that_is_not_a_certificate_is_named(tmp_path: Path) -> None:
    cert = write(tmp_path / "c.pem", "not a certificate\n")
    config_file = write(
        tmp_path / "web.yml", f"tls_server_config:\n  cert_file: {cert}\n  key_file: {cert}\n"
    )
    with pytest.raises(ConfigError, match=f"cert_file: {cert} holds no PEM certificate"):
        load_web_config(config_file)


JAN_1, JAN_31 = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "said"),
    [
        (datetime(2030, 1, 10, tzinfo=UTC), None),
        (JAN_31, "expires on 2030-01-31T00:00:00Z, in less than a day: renew it"),
        (
            datetime(2030, 1, 31, 0, 0, 1, tzinfo=UTC),
            "expired on 2030-01-31T00:00:00Z: clients that verify it refuse every "
            "connection; renew it",
        ),
        (
            datetime(2029, 12, 31, tzinfo=UTC),
            "is not valid until 2030-01-01T00:00:00Z (or this host's clock is behind): "
            "clients that verify it refuse every connection until then",
        ),
        (
            datetime(2030, 1, 28, tzinfo=UTC),
            "expires on 2030-01-31T00:00:00Z, in 3.0 days: renew it",
        ),
    ],
    ids=["valid", "last-second", "expired", "not-yet-valid", "expiring"],
)
def test_a_certificate_out_of_its_dates_is_a_warning_naming_the_file_and_the_date(
    tmp_path: Path, now: datetime, said: str | None
) -> None:
    # An expired certificate passed check-config and started silently; every client
    # then failed to verify it.
    pair = make_certificate(tmp_path, not_before=JAN_1, not_after=JAN_31)
    tls = TlsConfig(cert_file=pair.cert_file, key_file=pair.key_file)
    warnings = certificate_warnings(tls, now.timestamp(), "web.yml")
    prefix = f"web.yml: tls_server_config.cert_file: {pair.cert_file} "
    assert warnings == ([] if said is None else [prefix + said])


def test_each_certificate_of_a_chain_is_named_by_its_place(tmp_path: Path) -> None:
    leaf = make_certificate(tmp_path, "leaf", not_before=JAN_1, not_after=JAN_31)
    issuer = make_certificate(tmp_path, "issuer", not_before=JAN_1, not_after=JAN_1)
    chain = write(tmp_path / "chain.crt", leaf.cert_file.read_text() + issuer.cert_file.read_text())
    tls = TlsConfig(cert_file=chain, key_file=leaf.key_file)
    now = datetime(2030, 1, 10, tzinfo=UTC).timestamp()
    assert certificate_warnings(tls, now, "web.yml") == [
        f"web.yml: tls_server_config.cert_file: {chain} (certificate 2 of 2) expired on "
        "2030-01-01T00:00:00Z: clients that verify it refuse every connection; renew it"
    ]


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        (JAN_1, JAN_31),  # UTCTime
        (datetime(1950, 1, 1, tzinfo=UTC), datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)),
        (JAN_1, datetime(2050, 1, 1, tzinfo=UTC)),  # GeneralizedTime from 2050 on
    ],
)
def test_the_dates_read_from_the_der_are_those_cryptography_reads(
    tmp_path: Path, not_before: datetime, not_after: datetime
) -> None:
    pair = make_certificate(tmp_path, not_before=not_before, not_after=not_after)
    cert = x509.load_pem_x509_certificate(pair.cert_file.read_bytes())
    assert validity(pair.cert_file) == [(cert.not_valid_before_utc, cert.not_valid_after_utc)]
    assert validity(pair.key_file) == []  # no certificate in it


def test_yaml_problems_come_from_the_strict_loader(tmp_path: Path) -> None:
    config_file = write(tmp_path / "web.yml", "basic_auth_users: {a: x, a: y}\n")
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        load_web_config(config_file)
    with pytest.raises(ConfigError, match="cannot read"):
        load_web_config(tmp_path / "absent.yml")


@pytest.mark.timeout(20)  # the old code waited for a writer for ever
def test_a_web_config_file_that_is_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    # open() of a FIFO blocks until a writer comes: check-config and the daemon hung.
    fifo = tmp_path / "web.yml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as caught:
        load_web_config(fifo)
    assert caught.value.problems == [f"{fifo}: cannot read: not a regular file"]


@pytest.mark.timeout(20)  # OpenSSL's open of a FIFO blocks as Python's does
def test_tls_files_that_are_fifos_are_refused_without_waiting(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    config_file = write(
        tmp_path / "web.yml",
        "tls_server_config:\n  cert_file: pipe\n  key_file: pipe\n  client_ca_file: pipe\n"
        "  client_auth_type: RequireAndVerifyClientCert\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_web_config(config_file)
    assert caught.value.problems == [
        f"{config_file}: tls_server_config.{key}: cannot read {tmp_path / 'pipe'}: "
        "not a regular file"
        for key in ("cert_file", "key_file", "client_ca_file")
    ]
