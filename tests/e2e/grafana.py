"""A stand-in for Grafana's dashboard URLs: Grafana itself has no Debian package here.

``/d/UID/[SLUG]?var-NAME=VALUE...`` answers 200 with the committed dashboard whose uid is
UID when every ``var-NAME`` is one of its template variables, 404 for an unknown uid and
400 for an unknown variable: what following an alert's ``dashboard_url`` needs to prove
(the link names a dashboard we ship, and selects variables it has). Every request is
recorded with what it selected.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["GrafanaStub"]


class GrafanaStub:
    """Serves ``/d/UID`` from a directory of dashboard JSON files on 127.0.0.1."""

    def __init__(self, dashboards: Path) -> None:
        self.boards = {
            board["uid"]: board
            for board in (json.loads(p.read_text()) for p in sorted(dashboards.glob("*.json")))
        }
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, body = stub.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, target: str) -> tuple[int, dict[str, Any]]:
        """Status and body for a GET of ``target``; the request is recorded."""
        url = urllib.parse.urlsplit(target)
        parts = url.path.strip("/").split("/")
        query = urllib.parse.parse_qs(url.query)
        selected = {k.removeprefix("var-"): v for k, v in query.items() if k.startswith("var-")}
        record = {"path": url.path, "selected": selected, "status": 404}
        self.requests.append(record)
        if len(parts) < 2 or parts[0] != "d" or parts[1] not in self.boards:
            return 404, {"message": "Dashboard not found"}
        board = self.boards[parts[1]]
        variables = {v["name"] for v in board["templating"]["list"]}
        unknown = sorted(set(selected) - variables)
        record["status"] = 400 if unknown else 200
        if unknown:
            return 400, {"message": f"unknown variables {unknown}"}
        return 200, {
            "dashboard": {"uid": board["uid"], "title": board["title"]},
            "selected": selected,
        }
