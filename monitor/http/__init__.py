"""The daemon's HTTP endpoints: /metrics, /healthz, /readyz, /runbooks/NAME, /api/models,
and the label API under /v1 when one is given.

- ``HttpServer``: an event-loop server that survives abuse (capped connections, a worker
  pool, deadlines on every wait, bounded request bodies, quiet disconnects), with
  optional TLS and basic auth;
- ``Routes``: what it answers; ``MetricsCache``: /metrics bytes rendered once per change;
- ``Api``: what an API that takes request bodies gives the server; ``Request`` and
  ``Response`` are what it reads and answers;
- ``WebConfig``/``load_web_config``: the exporter-toolkit style web configuration file;
  ``certificate_warnings``: its certificate out of (or near the end of) its dates;
  ``ServerCertificate``: the TLS context, built again when the certificate files change.
"""

from __future__ import annotations

from monitor.http._api import Api
from monitor.http._certificate import ServerCertificate
from monitor.http._metrics import MetricsCache, Volatile
from monitor.http._routes import Routes
from monitor.http._server import HttpServer, Limits
from monitor.http._webconfig import (
    TlsConfig,
    WebConfig,
    certificate_warnings,
    load_web_config,
    parse_web_config,
)
from monitor.http._wire import Request, Response

__all__ = [
    "Api",
    "HttpServer",
    "Limits",
    "MetricsCache",
    "Request",
    "Response",
    "Routes",
    "ServerCertificate",
    "TlsConfig",
    "Volatile",
    "WebConfig",
    "certificate_warnings",
    "load_web_config",
    "parse_web_config",
]
