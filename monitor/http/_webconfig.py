"""The web configuration file, in the style of the Prometheus exporter-toolkit.

```yaml
tls_server_config:
  cert_file: server.crt        # relative paths are relative to this file
  key_file: server.key
  client_ca_file: clients.crt  # optional: verify client certificates
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS12           # or TLS13
basic_auth_users:
  prometheus: $2b$12$...       # bcrypt hash (htpasswd -nBC 12 "" | tr -d ':')
```

Every problem is one line naming the file and the key; loading also builds the TLS
context, so a certificate that does not load fails ``check-config``, not the daemon.
A certificate out of its validity dates (or close to its end) is a warning
(``certificate_warnings``): check-config says it, and the daemon and serve log it at
start.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.checks import Mismatch, Problem, check_choice, check_str
from monitor.errors import ConfigError
from monitor.http._auth import is_bcrypt_hash
from monitor.regularfiles import check_regular_file
from monitor.timestamps import format_time
from monitor.tlsfiles import (
    EncryptedKeyError,
    load_cert_chain,
    load_failure,
    pem_problem,
    validity,
)
from monitor.yamlfile import read_yaml

__all__ = [
    "EXPIRY_NOTICE",
    "TlsConfig",
    "WebConfig",
    "certificate_warnings",
    "load_web_config",
    "parse_web_config",
    "ssl_context",
]

#: How long before a certificate's end check-config and the daemon's start say so.
EXPIRY_NOTICE = timedelta(days=7)

CLIENT_AUTH_TYPES: dict[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
MIN_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version")
_TOP_KEYS = ("tls_server_config", "basic_auth_users")
# exporter-toolkit keys that this server does not implement: named, not just "unknown".
_UNSUPPORTED = {
    "http_server_config",
    "cert",
    "key",
    "client_ca",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
    "max_version",
}


@dataclass(frozen=True)
class TlsConfig:
    """Where the server's certificate and key are, and how clients are verified."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"


@dataclass(frozen=True)
class WebConfig:
    """TLS and basic-auth settings of the HTTP server; the default serves plain HTTP."""

    tls: TlsConfig | None = None
    users: Mapping[str, str] = field(default_factory=dict)  # name -> bcrypt hash


def _unknown_keys(data: Mapping[Any, Any], allowed: tuple[str, ...], where: str) -> list[str]:
    problems = []
    for key in data:
        if key in allowed:
            continue
        if key in _UNSUPPORTED:
            problems.append(f"{where}{key}: not supported by kmeans-monitor")
        else:
            problems.append(f"{where}{key}: unknown key; expected one of {', '.join(allowed)}")
    return problems


def _parse_tls(
    data: Any, base: Path, where: str, read_files: bool
) -> tuple[TlsConfig | None, list[str]]:
    field_ = "tls_server_config"
    if not isinstance(data, Mapping):
        return None, [f"{where}: {Problem(field_, 'a mapping', data).config()}"]
    problems = _unknown_keys(data, _TLS_KEYS, f"{where}: {field_}.")
    values: dict[str, Any] = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        if key not in data:
            if key != "client_ca_file":
                problems.append(f"{where}: {field_}.{key}: required")
            continue
        try:
            values[key] = base / check_str(data[key], key, non_empty=True)
        except Mismatch as exc:
            problems.append(f"{where}: {exc.problem.config(field_)}")
            continue
        # Said with the other problems, not after them: every problem at once.
        if read_files and (unreadable := _readable(values[key], key, where)) is not None:
            problems.append(unreadable)
    for key, choices in (("client_auth_type", CLIENT_AUTH_TYPES), ("min_version", MIN_VERSIONS)):
        if key in data:
            try:
                values[key] = check_choice(data[key], key, tuple(choices))
            except Mismatch as exc:
                problems.append(f"{where}: {exc.problem.config(field_)}")
    verifying = values.get("client_auth_type", "NoClientCert") != "NoClientCert"
    if verifying and "client_ca_file" not in data:
        problems.append(f"{where}: {field_}.client_ca_file: required by client_auth_type")
    if problems:
        return None, problems
    return TlsConfig(**values), []


def _parse_users(data: Any, where: str) -> tuple[dict[str, str], list[str]]:
    field_ = "basic_auth_users"
    if not isinstance(data, Mapping):
        expected = "a mapping of user name to bcrypt hash"
        return {}, [f"{where}: {Problem(field_, expected, data).config()}"]
    users: dict[str, str] = {}
    problems = []
    for name, hashed in data.items():
        if not isinstance(name, str) or not name or ":" in name:
            problems.append(
                f"{where}: {Problem(f'{field_} key', 'a non-empty name without :', name).config()}"
            )
        elif not isinstance(hashed, str) or not is_bcrypt_hash(hashed):
            # The value is a secret's hash: say what is wrong, never echo it.
            problems.append(
                f"{where}: {field_}.{name}: must be a bcrypt hash ($2b$ and cost 04-31, "
                "60 characters); a plain password is not accepted"
            )
        else:
            users[name] = hashed
    return users, problems


def parse_web_config(
    data: Any, *, base_dir: Path, where: str = "web config", read_files: bool = False
) -> WebConfig:
    """Validate parsed YAML; every problem at once as a ConfigError naming ``where``
    (with ``read_files``, TLS files that cannot be read among them)."""
    if data is None:  # an empty file: plain HTTP, no authentication
        return WebConfig()
    if not isinstance(data, Mapping):
        got = type(data).__name__
        raise ConfigError([f"{where}: must be a mapping at the top level; got {got}"])
    problems = _unknown_keys(data, _TOP_KEYS, f"{where}: ")
    tls: TlsConfig | None = None
    users: dict[str, str] = {}
    if data.get("tls_server_config") is not None:
        tls, found = _parse_tls(data["tls_server_config"], base_dir, where, read_files)
        problems += found
    if data.get("basic_auth_users") is not None:
        users, found = _parse_users(data["basic_auth_users"], where)
        problems += found
    if problems:
        raise ConfigError(problems)
    return WebConfig(tls=tls, users=users)


def _readable(path: Path, key: str, where: str) -> str | None:
    try:
        check_regular_file(path)  # OpenSSL's open of a FIFO would block
        empty = os.path.getsize(path) == 0
    except OSError as exc:
        return f"{where}: tls_server_config.{key}: cannot read {path}: {exc.strerror or exc}"
    # OpenSSL's words for an empty file were "[SSL] PEM lib", naming neither (helper-88).
    return f"{where}: tls_server_config.{key}: {path} is empty" if empty else None


def ssl_context(tls: TlsConfig, where: str = "web config") -> ssl.SSLContext:
    """A server-side TLS context for ``tls``; a ConfigError naming the file otherwise."""
    files = [("cert_file", tls.cert_file), ("key_file", tls.key_file)]
    if tls.client_ca_file is not None:
        files.append(("client_ca_file", tls.client_ca_file))
    problems = [p for key, path in files if (p := _readable(path, key, where)) is not None]
    if problems:
        raise ConfigError(problems)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSIONS[tls.min_version]
    context.set_alpn_protocols(["http/1.1"])
    try:
        load_cert_chain(context, tls.cert_file, tls.key_file)
    except EncryptedKeyError as exc:
        raise ConfigError([f"{where}: tls_server_config.key_file: {tls.key_file} {exc}"]) from None
    except ssl.SSLError as exc:
        if (pem := pem_problem(tls.cert_file, tls.key_file)) is not None:
            raise ConfigError([f"{where}: tls_server_config.{pem[0]}: {pem[1]}"]) from None
        why = load_failure(exc)
        raise ConfigError(
            [f"{where}: tls_server_config: cert_file and key_file do not load: {why}"]
        ) from None
    context.verify_mode = CLIENT_AUTH_TYPES[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except ssl.SSLError as exc:
            raise ConfigError(
                [f"{where}: tls_server_config.client_ca_file: does not load: {exc.reason or exc}"]
            ) from None
    return context


def load_web_config(path: str | Path, where: str | None = None) -> WebConfig:
    """Read, validate and try the TLS files of the web config at ``path``; its problems
    start with ``where`` (the path itself by default)."""
    path = Path(path)
    where = where or str(path)
    data = read_yaml(path, regular=True, name=where)
    config = parse_web_config(data, base_dir=path.parent, where=where, read_files=True)
    if config.tls is not None:
        ssl_context(config.tls, where)
    return config


def certificate_warnings(tls: TlsConfig, now: float, where: str = "web config") -> list[str]:
    """What the dates of ``cert_file``'s certificates mean at ``now`` (unix seconds): one
    line each for an expired one, one not yet valid, one that ends within EXPIRY_NOTICE.

    Warnings, not errors: clients that verify refuse such a certificate, but a renewal may
    be under way, and refusing to start would take the metrics down with the certificate
    (a scraper that skips verification still reads them)."""
    at = datetime.fromtimestamp(now, UTC)
    certificates = validity(tls.cert_file)
    found = []
    for i, (not_before, not_after) in enumerate(certificates, start=1):
        which = f"certificate {i} of {len(certificates)}" if len(certificates) > 1 else ""
        name = f"{where}: tls_server_config.cert_file: {tls.cert_file}" + (
            f" ({which})" if which else ""
        )
        if not_after < at:  # valid through its notAfter second (RFC 5280)
            found.append(
                f"{name} expired on {_utc(not_after)}: clients that verify it refuse every "
                "connection; renew it"
            )
        elif not_before > at:
            found.append(
                f"{name} is not valid until {_utc(not_before)} (or this host's clock is "
                "behind): clients that verify it refuse every connection until then"
            )
        elif not_after - at <= EXPIRY_NOTICE:
            days = (not_after - at) / timedelta(days=1)
            left = f"in {days:.1f} days" if days >= 1 else "in less than a day"
            found.append(f"{name} expires on {_utc(not_after)}, {left}: renew it")
    return found


def _utc(when: datetime) -> str:
    return format_time(when.timestamp())
