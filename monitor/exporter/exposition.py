"""The text exposition and the Pushgateway: what leaves the process as Prometheus bytes."""

from __future__ import annotations

import http.client

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import push_to_gateway as _push_to_gateway

from monitor.errors import PushError

__all__ = ["CONTENT_TYPE", "Registry", "encode", "push"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The type other modules name without importing prometheus_client themselves.
Registry = CollectorRegistry


def encode(registry: CollectorRegistry) -> bytes:
    """Every family of ``registry`` in the text exposition format."""
    return bytes(generate_latest(registry))


def push(gateway: str, registry: CollectorRegistry, *, job: str = "kmeans-monitor") -> None:
    """Replace the group of ``job`` on the Pushgateway at ``gateway`` with ``registry``.

    Raises PushError saying why, in a few words, when it cannot (the URL is not in them).
    """
    try:
        _push_to_gateway(gateway, job=job, registry=registry)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        code, reason = getattr(exc, "code", None), getattr(exc, "reason", None)
        if isinstance(code, int):
            why = f"HTTP {code} {reason or ''}".rstrip()
        elif isinstance(reason, OSError) and reason.strerror:
            why = reason.strerror
        else:
            why = str(reason or exc) or type(exc).__name__
        raise PushError(why) from None
