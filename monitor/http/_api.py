"""What the server needs from an API that takes request bodies (the label API of
``monitor.serving``): which paths it owns, an admission check before a body is read,
and the answers, several small requests at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from monitor.http._wire import Request, Response

__all__ = ["Api"]


@runtime_checkable
class Api(Protocol):
    """Routes whose requests may carry a body; the server frames, bounds and times them."""

    def methods(self, path: str) -> tuple[str, ...]:
        """The methods ``path`` answers (HEAD with GET); () when the path is not the API's.

        Called on the event loop for every request: it must be cheap and must not raise.
        """
        ...

    def admit(self, request: Request) -> Response | None:
        """A refusal of a POST before its body is read (404, 415, 406...), or None.

        Called on the event loop once the head is in and its length is within the
        server's limit: cheap, and must not raise.
        """
        ...

    def handle(self, requests: Sequence[Request]) -> list[Response]:
        """The answer to each request, in order.

        The server hands over small requests that arrived together in one call (on
        the event loop, so each must be cheap) and large ones one by one on a worker.
        An exception answers every request of the call with a 500.
        """
        ...

    def refused(self, request: Request, status: int) -> None:
        """The server answered ``request`` itself (401, 408, 411, 413, 503) or ``admit``
        refused it; for the API's own accounting. Cheap, on any thread; must not raise."""
        ...
