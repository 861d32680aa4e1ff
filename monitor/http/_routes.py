"""What the daemon answers on each path; runs on a worker thread, never on the event loop."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.exporter import CONTENT_TYPE, Registry, encode
from monitor.http._api import Api
from monitor.http._wire import Request, Response

__all__ = ["Routes", "allowed_methods", "dispatch", "dispatch_request"]

log = logging.getLogger("monitor.http")

_HTML = "text/html; charset=utf-8"


def _always_ready() -> tuple[bool, str]:
    return True, "ok"


def _no_runbook(name: str) -> str | None:
    return None


def _plain_index() -> str:
    return '<!doctype html><title>metrics</title><a href="/metrics">/metrics</a>\n'


@dataclass(frozen=True)
class Routes:
    """What the server answers with; every callable is cheap and must not raise.

    Only ``registry`` is required, so an exporter with nothing but metrics (the
    simulator) serves /metrics, /healthz, /readyz and a plain index page.
    """

    registry: Registry
    ready: Callable[[], tuple[bool, str]] = _always_ready
    runbook_html: Callable[[str], str | None] = _no_runbook  # None: no such runbook
    models_json: Callable[[], Any] | None = None  # None: no /api/models
    index_html: Callable[[], str] = _plain_index
    # Pre-rendered /metrics bytes (a MetricsCache); None encodes the registry per scrape.
    metrics: Callable[[], bytes] | None = None
    # Routes that take request bodies (the label API); None: GET and HEAD only.
    api: Api | None = None


_PAGE_METHODS = ("GET", "HEAD")


def allowed_methods(routes: Routes, path: str) -> tuple[tuple[str, ...], bool]:
    """The methods ``path`` answers, and whether the API owns it."""
    if routes.api is not None:
        methods = routes.api.methods(path)
        if methods:
            return methods, True
    return _PAGE_METHODS, False


def _route(routes: Routes, path: str) -> Response:
    if path == "/metrics":
        body = routes.metrics() if routes.metrics is not None else encode(routes.registry)
        return Response(200, body, CONTENT_TYPE)
    if path == "/healthz":
        return Response.text(200, "ok")
    if path == "/readyz":
        ok, why = routes.ready()
        return Response.text(200 if ok else 503, why)
    if path.startswith("/runbooks/"):
        page = routes.runbook_html(path.removeprefix("/runbooks/").strip("/"))
        if page is None:
            return Response.text(404, "no such runbook")
        return Response(200, page.encode(), _HTML)
    if path == "/api/models" and routes.models_json is not None:
        body = json.dumps(routes.models_json(), indent=2).encode()
        return Response(200, body, "application/json")
    if path == "/":
        return Response(200, routes.index_html().encode(), _HTML)
    return Response.text(404, "not found")


def dispatch(routes: Routes, path: str) -> Response:
    """The response for a GET of ``path``; a broken page is a 500, never a dead server."""
    try:
        return _route(routes, path)
    except Exception:
        log.exception("error serving %s", path)
        return Response.text(500, "internal error")


def dispatch_request(routes: Routes, request: Request) -> Response:
    """The response to ``request``: the API's for its paths, the pages' otherwise."""
    path = request.path
    if routes.api is None or not routes.api.methods(path):
        return dispatch(routes, path)
    try:
        return routes.api.handle([request])[0]
    except Exception:
        log.exception("error serving %s %s", request.method, path)
        return Response.text(500, "internal error")
