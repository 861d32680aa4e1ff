"""A renewed certificate is served without a restart: new connections get the files'
latest certificate that loads; a renewal half written keeps the previous one, with a
warning; the expiry gauge follows the certificate served."""

from __future__ import annotations

import datetime
import http.client
import logging
import os
import shutil
import ssl
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest
from prometheus_client import CollectorRegistry

from monitor.exporter import CertificateCollector
from monitor.http import ServerCertificate, TlsConfig, WebConfig, _certificate
from tests.http_server._support import PATIENCE, Certificate, Running, make_certificate

GAUGE = "kmeans_tls_certificate_expiry_timestamp_seconds"


def _served_der(running: Running) -> bytes:
    """The certificate the server presents to a new connection (not verified here)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(
        running.host, running.port, context=context, timeout=PATIENCE
    )
    try:
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 200
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True)
    finally:
        conn.close()
    assert der is not None
    return der


def _der(pair: Certificate) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pair.cert_file.read_text())


def _install(new: Certificate, at: Certificate, *, key: bool = True) -> None:
    """Copy ``new``'s files over ``at``'s, as a renewal replaces them in place."""
    shutil.copyfile(new.cert_file, at.cert_file)
    if key:
        shutil.copyfile(new.key_file, at.key_file)


@pytest.fixture
def check_always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_certificate, "CHECK_SECONDS", 0.0)


def _expiry(certificate: ServerCertificate) -> float | None:
    registry = CollectorRegistry()
    registry.register(CertificateCollector(lambda: certificate.not_after))
    return registry.get_sample_value(GAUGE)


@pytest.mark.usefixtures("check_always")
def test_a_renewed_certificate_is_served_without_a_restart(
    serve: Callable[..., Running], tmp_path: Path
) -> None:
    # The new certificate took effect only at a restart: once the old one ended, every
    # client that verifies it was refused.
    (tmp_path / "live").mkdir()
    (tmp_path / "renewal").mkdir()
    served = make_certificate(tmp_path / "live")
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=90)
    renewal = make_certificate(tmp_path / "renewal", not_after=later)
    running = serve(web=WebConfig(tls=TlsConfig(served.cert_file, served.key_file)))
    assert _served_der(running) == _der(served)
    old_end = running.server.certificate.not_after
    _install(renewal, served)
    assert _served_der(running) == _der(renewal)
    assert running.server.certificate.not_after == int(later.timestamp())
    assert old_end is not None and old_end < running.server.certificate.not_after


@pytest.mark.usefixtures("check_always")
def test_a_half_written_renewal_keeps_the_certificate_served(
    serve: Callable[..., Running], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "live").mkdir()
    (tmp_path / "renewal").mkdir()
    served = make_certificate(tmp_path / "live")
    renewal = make_certificate(tmp_path / "renewal")
    running = serve(web=WebConfig(tls=TlsConfig(served.cert_file, served.key_file)))
    before = _der(served)
    _install(renewal, served, key=False)  # the new certificate beside the old key
    with caplog.at_level(logging.WARNING, logger="monitor.http"):
        assert _served_der(running) == before
        assert _served_der(running) == before  # unchanged files: not tried again
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "web config: tls_server_config: cert_file and key_file do not load: "
        "KEY_VALUES_MISMATCH (the key is not the first certificate's: cert_file starts "
        "with the server's own certificate, then its chain) (the files changed): new "
        "connections keep the certificate loaded before until the files change again"
    ]
    shutil.copyfile(renewal.key_file, served.key_file)  # the key follows
    assert _served_der(running) == _der(renewal)


def test_the_files_are_looked_at_once_per_check_interval(tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    (tmp_path / "renewal").mkdir()
    served = make_certificate(tmp_path / "live")
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    renewal = make_certificate(tmp_path / "renewal", not_after=later)
    now = [100.0]
    certificate = ServerCertificate(
        TlsConfig(served.cert_file, served.key_file), monotonic=lambda: now[0]
    )
    first = certificate.context()
    before = _expiry(certificate)
    _install(renewal, served)
    now[0] += _certificate.CHECK_SECONDS / 2
    assert certificate.context() is first and _expiry(certificate) == before
    now[0] += _certificate.CHECK_SECONDS / 2
    assert certificate.context() is not first
    assert _expiry(certificate) == int(later.timestamp())


def test_the_gauge_is_the_first_end_of_a_chain(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=3)
    leaf = make_certificate(tmp_path / "a")
    intermediate = make_certificate(tmp_path / "b", not_after=soon)
    chain = tmp_path / "chain.crt"
    chain.write_text(leaf.cert_file.read_text() + intermediate.cert_file.read_text())
    certificate = ServerCertificate(TlsConfig(chain, leaf.key_file))
    assert _expiry(certificate) == int(soon.timestamp())


def test_a_renewal_made_readable_by_chmod_is_loaded(tmp_path: Path) -> None:
    # helper-98: written unreadable, then made readable: only the change time moved, and
    # the old certificate was served until the files were edited again.
    (tmp_path / "live").mkdir()
    (tmp_path / "renewal").mkdir()
    served = make_certificate(tmp_path / "live")
    renewal = make_certificate(tmp_path / "renewal")
    now = [100.0]
    certificate = ServerCertificate(
        TlsConfig(served.cert_file, served.key_file), monotonic=lambda: now[0]
    )
    first = certificate.context()
    _install(renewal, served)
    os.chmod(served.key_file, 0)  # as the renewal wrote it
    with mock.patch("monitor.regularfiles.os.open", side_effect=PermissionError(13, "denied")):
        now[0] += _certificate.CHECK_SECONDS  # root reads a mode-0 file: refused as a user is
        assert certificate.context() is first
    now[0] += _certificate.CHECK_SECONDS
    assert certificate.context() is first  # nothing changed since
    os.chmod(served.key_file, 0o600)
    now[0] += _certificate.CHECK_SECONDS
    assert certificate.context() is not first
