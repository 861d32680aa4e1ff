"""The daemon's HTTP endpoints: /metrics, /healthz, /readyz, /runbooks/NAME, /api/models.

- ``HttpServer``: an event-loop server that survives abuse (capped connections, a worker
  pool, deadlines on every wait, quiet disconnects), with optional TLS and basic auth;
- ``Routes``: what it answers; ``MetricsCache``: /metrics bytes rendered once per change;
- ``WebConfig``/``load_web_config``: the exporter-toolkit style web configuration file.
"""

from __future__ import annotations

from monitor.http._metrics import MetricsCache
from monitor.http._routes import Routes
from monitor.http._server import HttpServer, Limits
from monitor.http._webconfig import TlsConfig, WebConfig, load_web_config, parse_web_config

__all__ = [
    "HttpServer",
    "Limits",
    "MetricsCache",
    "Routes",
    "TlsConfig",
    "WebConfig",
    "load_web_config",
    "parse_web_config",
]
