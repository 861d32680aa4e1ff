"""A small Alertmanager webhook receiver that records every notification it gets.

The end-to-end suite runs it in-process; to try the stack by hand, run it on the port
that deploy/alertmanager.yml sends to::

    python -m tests.e2e.webhook --listen 127.0.0.1:9095

Each notification is printed (and logged, when a log file is given) as one JSON line:
``{"received_at": ..., "path": "/pager", "payload": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["Alert", "Notification", "WebhookReceiver", "main"]


@dataclass(frozen=True)
class Notification:
    """One POST from Alertmanager: when it came, on which path, and its JSON body."""

    received_at: float
    path: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Alert:
    """One alert of a notification, with the notification's arrival and receiver."""

    received_at: float
    path: str
    receiver: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the log file is the record
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {"unparsable": body.decode("utf-8", "replace")}
        self.server.record(Notification(time.time(), self.path, payload))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], record: Callable[[Notification], None]) -> None:
        self.record = record
        super().__init__(address, _Handler)


class WebhookReceiver:
    """Records Alertmanager notifications on 127.0.0.1; thread-safe reads."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_path: Path | None = None,
        echo: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._received: list[Notification] = []
        self._log_path = log_path
        self._echo = echo
        self._host = host
        self._server = _Server((host, port), self._record)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook", kwargs={"poll_interval": 0.1}
        )
        self._thread.daemon = True

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self._host}:{int(self._server.server_address[1])}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def _record(self, notification: Notification) -> None:
        line = _json_line(notification)
        with self._lock:
            self._received.append(notification)
            if self._log_path is not None:
                with open(self._log_path, "a", encoding="utf-8") as log:
                    log.write(line + "\n")
        if self._echo:
            print(line, flush=True)

    def notifications(self) -> list[Notification]:
        """Everything received so far, in arrival order."""
        with self._lock:
            return list(self._received)

    def alerts(self) -> list[Alert]:
        """Every alert of every notification, in arrival order."""
        return list(_alerts(self.notifications()))

    def log_text(self) -> str:
        """The notifications as JSON lines (what the log file holds)."""
        return "\n".join(_json_line(n) for n in self.notifications())


def _json_line(n: Notification) -> str:
    return json.dumps({"received_at": n.received_at, "path": n.path, "payload": n.payload})


def _alerts(notifications: list[Notification]) -> Iterator[Alert]:
    for n in notifications:
        for alert in n.payload.get("alerts", []):
            yield Alert(
                received_at=n.received_at,
                path=n.path,
                receiver=str(n.payload.get("receiver", "")),
                status=str(alert.get("status", "")),
                labels=dict(alert.get("labels", {})),
                annotations=dict(alert.get("annotations", {})),
                starts_at=str(alert.get("startsAt", "")),
            )


def main(argv: list[str] | None = None) -> None:
    """Run the receiver until Ctrl-C, printing each notification as a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9095", metavar="HOST:PORT")
    parser.add_argument("--log", type=Path, help="Also append the JSON lines to this file.")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    receiver = WebhookReceiver(host, int(port), log_path=args.log, echo=True)
    receiver.start()
    print(f"webhook receiver on {receiver.url} (POST /pager, /ticket, ...); Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
