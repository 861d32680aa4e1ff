"""HTTP basic authentication against bcrypt hashes; the only module that imports bcrypt."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

__all__ = ["BCRYPT_MAX_PASSWORD_BYTES", "BasicAuth", "is_bcrypt_hash"]

BCRYPT_MAX_PASSWORD_BYTES = 72  # bcrypt ignores (and bcrypt>=5 refuses) anything longer
_CACHE_SIZE = 256  # distinct (user, password) pairs remembered as verified


_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


def is_bcrypt_hash(value: str) -> bool:
    """True for a modular-crypt bcrypt hash ($2a$, $2b$ or $2y$, cost 04 to 31)."""
    return _BCRYPT_HASH.fullmatch(value) is not None


def _credentials(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) from an ``Authorization: Basic ...`` value; None if malformed."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


class BasicAuth:
    """Checks ``Authorization`` headers against ``users`` (name -> bcrypt hash).

    bcrypt is slow on purpose (about 50 ms at cost 10, 200 ms at 12), and Prometheus
    sends the same credentials on every scrape, so a verified pair is remembered under
    an HMAC with a per-process key (never the password itself). A failed check always
    pays the full bcrypt cost, and an unknown user is checked against a real hash, so
    timing does not tell which user names exist. Checks run one at a time: a flood of
    wrong passwords costs at most one core and cannot slow down remembered clients.
    """

    def __init__(self, users: Mapping[str, str]) -> None:
        if not users:
            raise ValueError("BasicAuth needs at least one user")
        self._users = {name: hashed.encode("ascii") for name, hashed in users.items()}
        self._decoy = next(iter(self._users.values()))
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()

    def _fingerprint(self, user: str, password: bytes) -> bytes:
        name = user.encode("utf-8")
        message = len(name).to_bytes(4, "big") + name + password
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _remembered(self, fingerprint: bytes) -> bool:
        with self._cache_lock:
            if fingerprint in self._verified:
                self._verified.move_to_end(fingerprint)
                return True
        return False

    def remembered(self, header: str | None) -> bool:
        """True when ``header`` was verified before; never runs bcrypt (cheap enough for
        an event loop). False means "unknown", not "wrong": ``check`` decides."""
        creds = _credentials(header)
        return creds is not None and self._remembered(self._fingerprint(*creds))

    def check(self, header: str | None) -> bool:
        """True when ``header`` carries the right password of a configured user."""
        creds = _credentials(header)
        if creds is None:
            return False
        user, password = creds
        fingerprint = self._fingerprint(user, password)
        if self._remembered(fingerprint):
            return True
        hashed = self._users.get(user)
        if len(password) > BCRYPT_MAX_PASSWORD_BYTES:
            return False  # no hash can match; its length is the client's own knowledge
        with self._bcrypt_lock:
            # checkpw compares in constant time; the decoy keeps the cost of unknown users.
            ok = bcrypt.checkpw(password, hashed if hashed is not None else self._decoy)
        if not (ok and hashed is not None):
            return False
        with self._cache_lock:
            self._verified[fingerprint] = None
            while len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        return True
