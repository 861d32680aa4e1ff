"""The only owner of prometheus_client: the daemon's collector, the exposition, the push.

- ``daemon``: ``MonitorState`` (written by runs) and the Collector that reads it at
  scrape time;
- ``serving``: ``ServingStats`` (written by the label API) and its Collector;
- ``exposition``: the bytes of ``/metrics`` and the Pushgateway push.
"""

from __future__ import annotations

from monitor.exporter.daemon import (
    DURATION_BUCKETS,
    TOP_FEATURE_METRIC,
    CertificateCollector,
    ConnectionsCollector,
    ModelSpec,
    ModelStatus,
    MonitorCollector,
    MonitorRegistry,
    MonitorState,
    make_registry,
)
from monitor.exporter.exposition import CONTENT_TYPE, Registry, encode, push
from monitor.exporter.serving import ServingSpec, ServingStats

__all__ = [
    "CONTENT_TYPE",
    "DURATION_BUCKETS",
    "TOP_FEATURE_METRIC",
    "CertificateCollector",
    "ConnectionsCollector",
    "ModelSpec",
    "ModelStatus",
    "MonitorCollector",
    "MonitorRegistry",
    "MonitorState",
    "Registry",
    "ServingSpec",
    "ServingStats",
    "encode",
    "make_registry",
    "push",
]
