"""Debian's headless Chromium, driven over the DevTools protocol on a pipe (no extra package).

``--remote-debugging-pipe`` makes Chromium read protocol commands from file descriptor 3
and write its answers and events to descriptor 4, each message a JSON text ended by a
NUL byte; a pipe needs no port, no websocket client and no driver binary. One ``Browser``
is one Chromium process with a fresh profile; ``page(url, width, height)`` opens a tab of
that viewport, waits for the load event, and answers ``evaluate`` and ``screenshot``.

A missing ``chromium`` fails the test with the install command, like the other real
services of tests/services.py.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Browser", "BrowserError", "Page", "axe_source", "browser"]

FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root, where the sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps calling home; this machine refuses every connection.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",  # screenshots show the page, not the scroll bar
    "--remote-debugging-pipe",
)
TIMEOUT = 30.0
AXE_VERSION = "4"


class BrowserError(AssertionError):
    """Chromium did not start, died, or answered a command with an error."""


def _binary() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed. Run scripts/install-test-deps (Debian package chromium).",
            pytrace=False,
        )
    return path


def axe_source() -> str:
    """The text of axe-core's ``axe.min.js`` (npm package, installed globally)."""
    roots = [os.environ.get("AXE_CORE_DIR", "")]
    npm = shutil.which("npm")
    if npm:
        out = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, check=False)
        roots.append(str(Path(out.stdout.strip()) / "axe-core"))
    for root in filter(None, roots):
        path = Path(root) / "axe.min.js"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    pytest.fail(
        f"axe-core is not installed. Run scripts/install-test-deps (npm install -g "
        f"axe-core@{AXE_VERSION}), or set AXE_CORE_DIR to its directory.",
        pytrace=False,
    )


class Browser:
    """One headless Chromium with a fresh profile, spoken to over its DevTools pipe."""

    def __init__(self, workdir: Path) -> None:
        self._profile = tempfile.mkdtemp(prefix="chromium-", dir=workdir)
        self._log = open(Path(self._profile) / "chromium.log", "wb")  # noqa: SIM115
        to_child, self._write_fd = os.pipe()
        self._read_fd, from_child = os.pipe()
        # Chromium reads commands on fd 3 and writes on fd 4 of its own process.
        self._process = subprocess.Popen(
            [_binary(), *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            # preexec_fn runs before the child closes the descriptors it does not keep.
            pass_fds=(3, 4),
            preexec_fn=lambda: _move_fds(to_child, from_child),
        )
        os.close(to_child)
        os.close(from_child)
        self._ids = itertools.count(1)
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self.version = self.send("Browser.getVersion")["product"]

    # ---------------------------------------------------------------- protocol

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer; BrowserError on an error answer."""
        message: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next(TIMEOUT)
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self._events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next event ``method`` of ``session`` (events seen earlier count)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(i)
            self._events.append(self._next(deadline - time.monotonic()))

    def _next(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + max(0.0, timeout)
        with selectors.DefaultSelector() as sel:
            sel.register(self._read_fd, selectors.EVENT_READ)
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise BrowserError(f"no answer from Chromium in time\n{self.log_tail()}")
                chunk = os.read(self._read_fd, 1 << 16)
                if not chunk:
                    raise BrowserError(f"Chromium closed its pipe\n{self.log_tail()}")
                self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(head)
        return message

    def log_tail(self) -> str:
        """The end of Chromium's own output."""
        self._log.flush()
        text = (Path(self._profile) / "chromium.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-30:])

    # ---------------------------------------------------------------- pages

    def page(self, url: str, width: int, height: int, *, mobile: bool = False) -> Page:
        """A new tab of ``width`` x ``height`` CSS pixels, loaded with ``url``."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )
        page = Page(self, session, target)
        page.goto(url)
        return page

    def close(self) -> None:
        """Close Chromium and remove its profile."""
        with contextlib.suppress(BrowserError, OSError):
            self.send("Browser.close")
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        os.close(self._write_fd)
        os.close(self._read_fd)
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)


def _move_fds(to_child: int, from_child: int) -> None:
    """In the child: the command pipe on fd 3, the answer pipe on fd 4."""
    # Through fresh descriptors first: either pipe end may itself be 3 or 4.
    read_end, write_end = os.dup(to_child), os.dup(from_child)
    os.dup2(read_end, 3)
    os.dup2(write_end, 4)


class Page:
    """One tab of a Browser."""

    def __init__(self, browser: Browser, session: str, target: str) -> None:
        self._browser = browser
        self._session = session
        self._target = target
        self.status: int | None = None

    def goto(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        self._browser.send("Network.enable", self._session)
        answer = self._browser.send("Page.navigate", self._session, url=url)
        if answer.get("errorText"):
            raise BrowserError(f"cannot load {url}: {answer['errorText']}")
        self._browser.wait_event("Page.loadEventFired", self._session)
        response = self._browser.wait_event("Network.responseReceived", self._session)
        self.status = int(response["params"]["response"]["status"])

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self._browser.send(
            "Runtime.evaluate",
            self._session,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self) -> str:
        """The page's visible text, as a reader gets it."""
        return str(self.evaluate("document.body.innerText"))

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's violations on the page (WCAG 2.1 A and AA rules, best practices)."""
        self.evaluate(axe_source())
        run = (
            "axe.run(document, {runOnly: {type: 'tag', values: "
            "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
            ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, "
            "nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))"
        )
        violations: list[dict[str, Any]] = self.evaluate(run)
        return violations

    def screenshot(self, path: Path) -> bytes:
        """A PNG of the viewport, written to ``path``."""
        data = self._browser.send("Page.captureScreenshot", self._session, format="png")["data"]
        png = base64.b64decode(data)
        Path(path).write_bytes(png)
        return png

    def close(self) -> None:
        """Close the tab."""
        self._browser.send("Target.closeTarget", targetId=self._target)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One Chromium for the tests of a module."""
    started = Browser(tmp_path_factory.mktemp("browser"))
    try:
        yield started
    finally:
        started.close()
