"""The text exposition and the Pushgateway: what leaves the process as Prometheus bytes."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import push_to_gateway as _push_to_gateway

__all__ = ["CONTENT_TYPE", "Registry", "encode", "push"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The type other modules name without importing prometheus_client themselves.
Registry = CollectorRegistry


def encode(registry: CollectorRegistry) -> bytes:
    """Every family of ``registry`` in the text exposition format."""
    return bytes(generate_latest(registry))


def push(gateway: str, registry: CollectorRegistry, *, job: str = "kmeans-monitor") -> None:
    """Replace the group of ``job`` on the Pushgateway at ``gateway`` with ``registry``."""
    _push_to_gateway(gateway, job=job, registry=registry)
