"""TLS certificate and key files, as OpenSSL loads them but without its terminal prompt.

- ``load_cert_chain``: a context's certificate and key. OpenSSL asks for the passphrase
  of an encrypted key on the terminal ("Enter PEM pass phrase:"): ``check-config`` on a
  terminal waited there for ever, and without one it failed as "Invalid argument",
  naming no file. Here an encrypted key is an ``EncryptedKeyError`` at once.
- ``pem_problem``: which file of a pair that does not load holds no PEM block of its kind;
  ``certificate_problem``: the same of one certificate file (a CA file);
  ``load_failure``: what OpenSSL's error of a pair that holds both kinds means.
- ``validity``: when each certificate of a PEM file starts and stops being valid.
"""

from __future__ import annotations

import base64
import binascii
import re
import ssl
from datetime import UTC, datetime
from pathlib import Path

from monitor.regularfiles import read_file

__all__ = [
    "EncryptedKeyError",
    "certificate_problem",
    "load_cert_chain",
    "load_failure",
    "pem_problem",
    "validity",
]

#: A certificate file holds a few certificates of a few KiB each: far more is no such file.
_MOST_BYTES = 1 << 20
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")  # PKCS#8, RSA, EC, encrypted


class EncryptedKeyError(ValueError):
    """A private key that needs a passphrase: kmeans-monitor reads only unencrypted keys."""


def _refuse_passphrase() -> bytes:
    # Called by OpenSSL only for an encrypted key, instead of its prompt on the terminal.
    raise EncryptedKeyError("is encrypted (a passphrase-protected PEM): give an unencrypted key")


def load_cert_chain(context: ssl.SSLContext, cert_file: Path | str, key_file: Path | str) -> None:
    """``context.load_cert_chain`` that never prompts: EncryptedKeyError for an encrypted
    key, ssl.SSLError for any other key or certificate that does not load."""
    context.load_cert_chain(cert_file, key_file, password=_refuse_passphrase)


def pem_problem(
    cert_file: Path | str, key_file: Path | str, *, whose: str = "the server's"
) -> tuple[str, str] | None:
    """(field, why) when ``cert_file`` holds no PEM certificate or ``key_file`` no PEM
    private key, which OpenSSL reports as "[SSL] PEM lib (_ssl.c:3926)", naming neither
    file (exB: a certificate given as the key); None when each holds its kind (or cannot
    be read: the caller says so). ``whose`` certificate it is: the server's, the client's."""
    if (
        why := certificate_problem(cert_file, f"give {whose} certificate, then its chain")
    ) is not None:
        return "cert_file", why
    try:
        key = read_file(key_file, most=_MOST_BYTES)
    except OSError:
        return None
    if _KEY.search(key) is None:
        also = ", only a certificate" if _PEM.search(key) else ""
        return "key_file", (
            f"{key_file} holds no PEM private key (-----BEGIN PRIVATE KEY-----){also}: give "
            "the private key of cert_file"
        )
    return None


def load_failure(exc: ssl.SSLError, *, whose: str = "the server's") -> str:
    """OpenSSL's reason that TLS files holding PEM blocks of their kinds did not load,
    without its "(_ssl.c:4010)"; for a key that is not the certificate's, which one it is
    compared with: OpenSSL takes cert_file's first certificate for ``whose`` own."""
    why = exc.reason or str(exc)
    if why == "KEY_VALUES_MISMATCH":
        why += (
            f" (the key is not the first certificate's: cert_file starts with {whose} own "
            "certificate, then its chain)"
        )
    return why


def certificate_problem(path: Path | str, give: str) -> str | None:
    """Why ``path`` holds no PEM certificate, ending with what to ``give`` instead; None
    when it holds one (or cannot be read: the caller says so). OpenSSL says "[SSL] PEM
    lib" of a certificate file, "no certificate or crl found" of a CA file."""
    try:
        cert = read_file(path, most=_MOST_BYTES)
    except OSError:
        return None
    if _PEM.search(cert) is not None:
        return None
    also = ", only a private key" if _KEY.search(cert) else ""
    return f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----){also}: {give}"


def validity(path: Path | str) -> list[tuple[datetime, datetime]]:
    """(not before, not after), in UTC, of each certificate of the PEM file ``path``, in
    the file's order; a certificate whose dates cannot be read is left out (the caller
    has loaded the file into a TLS context: OpenSSL has judged it already).

    The dates are read from the DER by hand, a few lines: the standard library reads a
    certificate's dates only through ``ssl._ssl._test_decode_cert``, private and named a
    test, and ``cryptography`` is an optional extra (encrypted snapshots), not a
    dependency of every install."""
    found = []
    for block in _PEM.findall(read_file(path, most=_MOST_BYTES)):
        try:
            found.append(_dates(base64.b64decode(b"".join(block.split()), validate=True)))
        except (binascii.Error, IndexError, ValueError):
            continue
    return found


def _element(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, first byte of the content, end of the content) of the DER element at ``at``."""
    tag, length = der[at], der[at + 1]
    at += 2
    if length & 0x80:  # long form: the next (length & 0x7F) bytes hold the length
        size = length & 0x7F
        length = int.from_bytes(der[at : at + size], "big")
        at += size
    if at + length > len(der):
        raise ValueError("truncated DER")
    return tag, at, at + length


def _dates(der: bytes) -> tuple[datetime, datetime]:
    """The validity of one DER certificate (RFC 5280, section 4.1)."""
    _, tbs, _ = _element(der, 0)  # Certificate: into it
    _, at, _ = _element(der, tbs)  # TBSCertificate: into it
    tag, _, end = _element(der, at)
    if tag == 0xA0:  # [0] version, absent from v1 certificates
        at = end
    for _ in range(3):  # serialNumber, signature, issuer
        at = _element(der, at)[2]
    _, at, _ = _element(der, at)  # Validity: into it
    tag, start, end = _element(der, at)
    not_before = _time(tag, der[start:end])
    tag, start, end = _element(der, end)
    return not_before, _time(tag, der[start:end])


def _time(tag: int, text: bytes) -> datetime:
    """A UTCTime (YYMMDDHHMMSSZ, 1950 to 2049) or GeneralizedTime (YYYYMMDDHHMMSSZ)."""
    digits = text.decode("ascii").removesuffix("Z")
    if tag == 0x17:
        year = int(digits[:2])
        digits = f"{1900 + year if year >= 50 else 2000 + year}{digits[2:]}"
    elif tag != 0x18:
        raise ValueError(f"not a time: tag {tag:#x}")
    return datetime.strptime(digits[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
