"""The text exposition and the Pushgateway: what leaves the process as Prometheus bytes."""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Callable
from functools import partial

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import push_to_gateway as _push_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

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

    Credentials in the URL (``http://user:password@host:9091``, percent-encoded) are
    sent as HTTP basic auth: the client would take them for part of the host name.
    Raises PushError saying why, in a few words, when it cannot (the URL is not in them).
    """
    gateway, handler = _with_basic_auth(gateway)
    try:
        _push_to_gateway(gateway, job=job, registry=registry, handler=handler)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        code, reason = getattr(exc, "code", None), getattr(exc, "reason", None)
        if isinstance(code, int):
            why = f"HTTP {code} {reason or ''}".rstrip()
        elif isinstance(reason, OSError) and reason.strerror:
            why = reason.strerror
        else:
            why = str(reason or exc) or type(exc).__name__
        raise PushError(why) from None


def _with_basic_auth(gateway: str) -> tuple[str, Callable[..., Callable[[], None]]]:
    """``gateway`` without its userinfo, and the handler that sends it as basic auth."""
    parts = urllib.parse.urlsplit(gateway)
    if parts.username is None:
        return gateway, default_handler
    bare = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    return bare, partial(basic_auth_handler, username=user, password=password)
