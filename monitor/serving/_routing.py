"""Which variant answers a request: the live model, or the pending candidate (the canary).

With a routing key, the choice is sticky: a hash of the model, the canary's version and
the key, read as a number in [0, 1), sends the key to the canary when it is below the
share; a key keeps its variant for as long as that candidate is pending, and each new
candidate draws a fresh set of keys. Without a key the choice is exact rather than
random: of any run of consecutive keyless requests, the canary answers the share
(rounded), so a low share is reached without waiting for the law of large numbers.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import threading

__all__ = ["CANARY", "LIVE", "VARIANTS", "Splitter", "key_fraction"]

LIVE = "live"
CANARY = "canary"
VARIANTS = (LIVE, CANARY)
_SCALE = float(2**64)


def key_fraction(model: str, version: int, key: str) -> float:
    """A number in [0, 1) that depends only on the model, the canary version and the key."""
    salt = f"{model}\x1f{version}\x1f".encode()
    digest = hashlib.blake2b(salt + key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


class Splitter:
    """Sends a ``share`` of the requests to the canary; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, itertools.count[int]] = {}

    def to_canary(self, model: str, version: int, share: float, key: str | None) -> bool:
        """Whether this request goes to the canary (``version``) of ``model``."""
        if share <= 0.0:
            return False
        if share >= 1.0:
            return True
        if key is not None:
            return key_fraction(model, version, key) < share
        counter = self._counters.get(model)
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault(model, itertools.count())
        i = next(counter)  # atomic under the GIL: each request has its own number
        # Request i is the canary's when the running total of the share steps up at it.
        return math.floor((i + 1) * share) > math.floor(i * share)
