"""The store key: HMAC-SHA256 signatures and optional AES-256-GCM encryption of snapshots.

One secret (at least 32 bytes, from a file or an environment variable) gives two
independent subkeys by HKDF (RFC 5869, SHA-256, built from ``hmac``): one signs, one
encrypts, so neither use weakens the other. Signing needs only the standard library;
encryption needs the ``cryptography`` package (the optional extra ``encryption``),
imported only when a snapshot is encrypted or decrypted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.checks import Mismatch, Problem, check_str
from monitor.errors import KeyMismatchError, StoreError
from monitor.regularfiles import read_file_and_mode

__all__ = ["ENCRYPTION_EXTRA", "MIN_KEY_BYTES", "StoreKey", "load_key", "require_cipher"]


MIN_KEY_BYTES = 32
ENCRYPTION_EXTRA = "pip install 'kmeans-monitor[encryption]'"
SIGNATURE_ALG = "hmac-sha256"
CIPHER_ALG = "AES-256-GCM"
_NONCE_BYTES = 12  # the GCM standard nonce; random per file, so never reused under one key
_HKDF_SALT = b"kmeans-monitor store key v1"
_MAX_KEY_FILE_BYTES = 4096
_GENERATE = "python3 -c 'import secrets; print(secrets.token_hex(32))'"


def _hkdf(secret: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 with a fixed salt, one 32-byte output block (RFC 5869)."""
    prk = hmac.new(_HKDF_SALT, secret, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


class StoreKey:
    """Secret key material of a snapshot store; never printed, compared in constant time."""

    def __init__(self, secret: bytes, *, source: str = "the store key") -> None:
        """Derive the signing and encryption subkeys from ``secret`` (>= 32 bytes)."""
        if not isinstance(secret, bytes) or len(secret) < MIN_KEY_BYTES:
            got = f"{len(secret)} bytes" if isinstance(secret, bytes) else type(secret).__name__
            raise Mismatch(
                Problem(
                    "secret",
                    f"at least {MIN_KEY_BYTES} bytes of random key material (make one with "
                    f"{_GENERATE})",
                    got,
                ),
                f"StoreKey ({source})",
            )
        self.source = source
        self._sign = _hkdf(secret, b"sign")
        self._encrypt = _hkdf(secret, b"encrypt")
        # Names the key in manifests and messages without revealing anything about it.
        self.key_id = _hkdf(secret, b"key id").hex()[:16]

    def __repr__(self) -> str:
        return f"StoreKey(key_id={self.key_id!r}, source={self.source!r})"

    @classmethod
    def from_file(cls, path: Path) -> StoreKey:
        """The key in ``path`` (trailing newline ignored). That others may read it is
        check-config's and the daemon start's warning (``monitor.filemodes``): here it
        was said once per loading, twice in one check-config."""
        path = Path(path)
        try:
            # Never blocking: a FIFO in the key's place hung check-config and the daemon.
            secret, _ = read_file_and_mode(path, most=_MAX_KEY_FILE_BYTES)
        except OSError as exc:
            raise StoreError(f"cannot read the store key file {path}: {exc.strerror}") from exc
        if len(secret) > _MAX_KEY_FILE_BYTES:
            raise StoreError(
                f"the store key file {path} is longer than {_MAX_KEY_FILE_BYTES} bytes; "
                "is it the right file?"
            )
        return cls(secret.rstrip(b"\r\n"), source=f"key file {path}")

    @classmethod
    def from_env(cls, name: str, environ: Mapping[str, str]) -> StoreKey:
        """The key in the environment variable ``name`` of ``environ``."""
        name = check_str(name, "name", owner="StoreKey.from_env", non_empty=True)
        value = environ.get(name)
        if not value:
            raise StoreError(
                f"the environment variable {name} that should hold the store key is unset or empty"
            )
        # The variable's bytes as the process got them, as a key file's are read: Python
        # holds bytes that are not UTF-8 as surrogates, which a strict encode refused.
        return cls(value.encode("utf-8", "surrogateescape"), source=f"environment variable {name}")

    # ------------------------------------------------------------------ signing

    def sign(self, checksum: str) -> dict[str, str]:
        """The signature of a snapshot, as stored in its manifest."""
        mac = hmac.new(self._sign, checksum.encode("ascii"), hashlib.sha256).hexdigest()
        return {"alg": SIGNATURE_ALG, "key_id": self.key_id, "value": mac}

    def verify(self, checksum: str, signature: Any, what: str) -> None:
        """Return when ``signature`` signs ``checksum`` with this key; otherwise raise a
        StoreError, beginning with ``what``, that says why (KeyMismatchError: another key)."""
        if not isinstance(signature, dict) or signature.get("alg") != SIGNATURE_ALG:
            raise StoreError(f"{what}: its signature is not an {SIGNATURE_ALG} signature")
        if signature.get("key_id") != self.key_id:
            raise KeyMismatchError(
                f"{what}: it was signed with another key (key id "
                f"{signature.get('key_id')!r}; this store's key id is {self.key_id!r})"
            )
        expected = self.sign(checksum)["value"]
        value = signature.get("value")
        if not isinstance(value, str) or not hmac.compare_digest(expected, value):
            raise StoreError(
                f"{what}: its signature does not match: it was changed after it was signed"
            )

    # ------------------------------------------------------------------ encryption

    def encrypt(self, data: bytes, aad: bytes) -> bytes:
        """``nonce || ciphertext || tag`` of ``data`` under AES-256-GCM."""
        aesgcm = require_cipher()
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + aesgcm(self._encrypt).encrypt(nonce, data, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes | None:
        """The plaintext of ``blob``, or None when it does not authenticate under this key."""
        aesgcm = require_cipher()
        from cryptography.exceptions import InvalidTag

        if len(blob) < _NONCE_BYTES + 16:
            return None
        try:
            out: bytes = aesgcm(self._encrypt).decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad
            )
        except InvalidTag:
            return None
        return out


def require_cipher() -> Any:
    """The AESGCM class of ``cryptography``, or a StoreError that names the extra to install."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:
        raise StoreError(
            f"encrypted snapshots need the 'cryptography' package: {ENCRYPTION_EXTRA}"
        ) from exc
    return AESGCM


def load_key(
    *, key_file: Path | None = None, key_env: str | None = None, environ: Mapping[str, str]
) -> StoreKey | None:
    """The store key from a file or an environment variable (not both), or None for neither."""
    if key_file is not None and key_env is not None:
        raise Mismatch(
            Problem("key_file", "unset when key_env is set (one key source)", str(key_file)),
            "load_key",
        )
    if key_file is not None:
        return StoreKey.from_file(Path(key_file))
    if key_env is not None:
        return StoreKey.from_env(key_env, environ)
    return None
