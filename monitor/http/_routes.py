"""What the daemon answers on each path; runs on a worker thread, never on the event loop.

Pages: ``/`` (the models, also at ``/models/`` and at the static site's ``/index.html``),
``/models/NAME`` (one model's live state; its data at ``/api/models/NAME`` or
``/models/NAME.json``), ``/runbooks/NAME[.html][?model=M]``, and the runbooks' list at
``/runbooks/``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.exporter import CONTENT_TYPE, Registry, encode
from monitor.http._api import Api
from monitor.http._wire import Request, Response

__all__ = [
    "VARY_ENCODING",
    "Routes",
    "allowed_methods",
    "dispatch",
    "dispatch_request",
    "is_page",
]

log = logging.getLogger("monitor.http")

_HTML = "text/html; charset=utf-8"
# The pages load nothing and run no script (inline CSS and SVG only): a policy that
# allows nothing else costs nothing, and makes an escaping slip harmless (helper-151).
PAGE_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Frame-Options", "DENY"),
)
# /metrics comes plain or gzip-compressed, by the request's Accept-Encoding.
VARY_ENCODING = ("Vary", "Accept-Encoding")


def _always_ready() -> tuple[bool, str]:
    return True, "ok"


def _no_runbook(name: str, model: str | None) -> str | None:
    return None


def _no_model(name: str) -> None:
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
    # (alert, model from ?model= or None) -> the page; None: no such runbook
    runbook_html: Callable[[str, str | None], str | None] = _no_runbook
    models_json: Callable[[], Any] | None = None  # None: no /api/models
    model_html: Callable[[str], str | None] = _no_model  # /models/NAME; None: no such model
    model_json: Callable[[str], Any] = _no_model  # /api/models/NAME; None: no such model
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


# The paths _route may answer with a page (some then say "no such model"); any other
# is a 404 whatever the method (a POST to a mistyped API path is not a wrong method).
_PAGES = frozenset(
    {"/", "/index.html", "/metrics", "/healthz", "/readyz", "/api/models", "/runbooks"}
)
_PAGE_PREFIXES = ("/runbooks/", "/api/models/", "/models/")


def is_page(path: str) -> bool:
    """Whether ``path`` may be a page (GET and HEAD), not a path the server lacks."""
    return path in _PAGES or path.startswith(_PAGE_PREFIXES)


def _route(routes: Routes, path: str, query: Mapping[str, str]) -> Response:
    if path == "/metrics":
        body = routes.metrics() if routes.metrics is not None else encode(routes.registry)
        # the server answers gzip itself when asked (MetricsCache.gzipped)
        return Response(200, body, CONTENT_TYPE, (VARY_ENCODING,))
    if path == "/healthz":
        return Response.text(200, "ok")
    if path == "/readyz":
        ok, why = routes.ready()
        return Response.text(200 if ok else 503, why)
    if path == "/runbooks" or path.startswith("/runbooks/"):
        return _runbook(routes, path, query)
    if path == "/api/models" and routes.models_json is not None:
        return _json(routes.models_json())
    if path.startswith("/api/models/") or (path.startswith("/models/") and path.endswith(".json")):
        name = path.removeprefix("/api/models/").removeprefix("/models/").removesuffix(".json")
        data = routes.model_json(name.strip("/"))
        return Response.text(404, "no such model") if data is None else _json(data)
    if path.startswith("/models/"):
        name = path.removeprefix("/models/").strip("/")
        # No name: the models (the on-call table links a daemon-level alert's empty model).
        page = routes.model_html(name) if name else routes.index_html()
        if page is None:
            return Response.text(404, "no such model")
        return _page(page)
    if path in ("/", "/index.html"):  # the static site's front page has the second
        return _page(routes.index_html())
    return Response.text(404, "not found")


def _runbook(routes: Routes, path: str, query: Mapping[str, str]) -> Response:
    """``/runbooks/NAME``; ``/runbooks/NAME.html`` is the static site's path, so that one
    link pattern fits both. No name (``/runbooks/``, ``/runbooks/index.html``): the list."""
    name = path.removeprefix("/runbooks").strip("/").removesuffix(".html")
    page = routes.runbook_html("" if name == "index" else name, query.get("model") or None)
    if page is None:
        return Response.text(404, "no such runbook")
    return _page(page)


def _page(page: str) -> Response:
    return Response(200, page.encode(), _HTML, PAGE_HEADERS)


def _json(data: Any) -> Response:
    return Response(200, json.dumps(data, indent=2).encode(), "application/json")


def dispatch(routes: Routes, path: str, query: Mapping[str, str] | None = None) -> Response:
    """The response for a GET of ``path``; a broken page is a 500, never a dead server."""
    try:
        return _route(routes, path, query or {})
    except Exception:
        log.exception("error serving %s", path)
        return Response.text(500, "internal error")


def dispatch_request(routes: Routes, request: Request) -> Response:
    """The response to ``request``: the API's for its paths, the pages' otherwise."""
    path = request.path
    if routes.api is None or not routes.api.methods(path):
        return dispatch(routes, path, request.query)
    try:
        return routes.api.handle([request])[0]
    except Exception:
        log.exception("error serving %s %s", request.method, path)
        return Response.text(500, "internal error")
