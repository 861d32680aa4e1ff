"""The daemon's HTTP endpoints: /metrics, /healthz, /readyz, /runbooks/NAME, /api/models."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from monitor.exporter import CONTENT_TYPE, Registry, encode

__all__ = ["HttpServer", "Routes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Routes:
    """What the server answers with; every callable is cheap and must not raise."""

    registry: Registry
    ready: Callable[[], tuple[bool, str]]
    runbook_html: Callable[[str], str | None]  # None: no such runbook
    models_json: Callable[[], Any]
    index_html: Callable[[], str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        routes = self.server.routes
        path = urlsplit(self.path).path
        try:
            if path == "/metrics":
                self._send(200, encode(routes.registry), CONTENT_TYPE)
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
            elif path == "/readyz":
                ok, why = routes.ready()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
            elif path.startswith("/runbooks/"):
                page = routes.runbook_html(unquote(path.removeprefix("/runbooks/")).strip("/"))
                if page is None:
                    self._send(404, b"no such runbook\n", "text/plain; charset=utf-8")
                else:
                    self._send(200, page.encode(), "text/html; charset=utf-8")
            elif path == "/api/models":
                body = json.dumps(routes.models_json(), indent=2).encode()
                self._send(200, body, "application/json")
            elif path == "/":
                self._send(200, routes.index_html().encode(), "text/html; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")
        except Exception:  # a broken page must not take the server down
            log.exception("error serving %s", path)
            self._send(500, b"internal error\n", "text/plain; charset=utf-8")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], routes: Routes) -> None:
        self.routes = routes
        super().__init__(address, _Handler)


class HttpServer:
    """A threaded HTTP server in a background thread."""

    def __init__(self, host: str, port: int, routes: Routes) -> None:
        self._server = _Server((host, port), routes)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http", kwargs={"poll_interval": 0.2}
        )
        self._thread.daemon = True

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
