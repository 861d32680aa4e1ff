"""TLS certificate and key files, as OpenSSL loads them but without its terminal prompt.

- ``load_cert_chain``: a context's certificate and key. OpenSSL asks for the passphrase
  of an encrypted key on the terminal ("Enter PEM pass phrase:"): ``check-config`` on a
  terminal waited there for ever, and without one it failed as "Invalid argument",
  naming no file. Here an encrypted key is an ``EncryptedKeyError`` at once.
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["EncryptedKeyError", "load_cert_chain"]


class EncryptedKeyError(ValueError):
    """A private key that needs a passphrase: kmeans-monitor reads only unencrypted keys."""


def _refuse_passphrase() -> bytes:
    # Called by OpenSSL only for an encrypted key, instead of its prompt on the terminal.
    raise EncryptedKeyError("is encrypted (a passphrase-protected PEM): give an unencrypted key")


def load_cert_chain(context: ssl.SSLContext, cert_file: Path | str, key_file: Path | str) -> None:
    """``context.load_cert_chain`` that never prompts: EncryptedKeyError for an encrypted
    key, ssl.SSLError for any other key or certificate that does not load."""
    context.load_cert_chain(cert_file, key_file, password=_refuse_passphrase)
