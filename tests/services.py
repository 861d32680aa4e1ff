"""Real Prometheus, Alertmanager, Pushgateway and kmeans-monitor processes for tests.

Everything listens on 127.0.0.1 on a free port, keeps its data and its log under a
temporary directory, is waited for until ready, and is always terminated. A missing
binary fails the test (never skips it): install them with ``scripts/install-test-deps``.

Use the ``services`` fixture (one test) or ``module_services`` (shared by a module)::

    def test_something(services):
        prom = services.prometheus(scrape={"kmeans-monitor": [daemon.address]})
        prom.query("up")
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

__all__ = [
    "Service",
    "ServiceError",
    "Services",
    "free_port",
    "module_services",
    "require_binary",
    "services",
]

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ServiceError(AssertionError):
    """A service did not start, died, or answered with an error; the message has its log."""


def require_binary(name: str) -> str:
    """The path of an executable, or a test failure that says how to install it."""
    path = shutil.which(name)
    if path is None:
        why = "CI is set, so the CI image is broken" if os.environ.get("CI") else "not on PATH"
        pytest.fail(
            f"{name} is not installed ({why}). Run scripts/install-test-deps "
            "(Debian packages prometheus, prometheus-alertmanager, prometheus-pushgateway).",
            pytrace=False,
        )
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """One running process with an HTTP interface on 127.0.0.1."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.address}"

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the process' combined stdout and stderr."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, message: str) -> ServiceError:
        """An error that carries the service's log tail."""
        tail = self.log_tail()
        return ServiceError(f"{self.name} {message}\n--- {self.log_path} (tail) ---\n{tail}")

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def request(
        self,
        path: str,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        *,
        method: str = "GET",
        body: Any = None,
        timeout: float = 10.0,
    ) -> tuple[int, bytes]:
        """Status and body of one HTTP request; HTTP errors are returned, not raised."""
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def get_json(self, path: str, params: Any = None) -> Any:
        """The decoded JSON of a GET that must answer 2xx."""
        status, body = self.request(path, params)
        if not 200 <= status < 300:
            raise self.fail(f"GET {path} {params} answered {status}: {body[:500]!r}")
        return json.loads(body)

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Prometheus instant query: the result vector, or a ServiceError naming the error."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        status, body = self.request("/api/v1/query", params)
        payload = json.loads(body) if body else {}
        if status != 200 or payload.get("status") != "success":
            raise ServiceError(
                f"query failed ({status}, {payload.get('errorType')}): "
                f"{payload.get('error')}\n{expr}"
            )
        result: list[dict[str, Any]] = payload["data"]["result"]
        if payload["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return result

    def stop(self) -> None:
        """Terminate (then kill) the process; idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


class Services:
    """Starts services under one directory and stops every one of them on ``close``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self._started: list[Service] = []

    # ---------------------------------------------------------------- generic

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        ready_path: str,
        ready_timeout: float = READY_TIMEOUT,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Service:
        """Start ``argv``, log to a file, and wait until ``ready_path`` answers 200."""
        workdir = self.workdir / f"{name}-{port}"
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = workdir / "output.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd or workdir,
                env={**os.environ, **(env or {})},
            )
        service = Service(name, port, process, log_path, workdir)
        self._started.append(service)
        self._wait_ready(service, ready_path, ready_timeout)
        return service

    @staticmethod
    def _wait_ready(service: Service, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not service.alive():
                raise service.fail(f"exited with status {service.process.returncode} at start")
            try:
                status, body = service.request(path, timeout=2.0)
                if status == 200:
                    return
                last = f"{status} {body[:200]!r}"
            except OSError as exc:  # not listening yet
                last = str(exc)
            time.sleep(0.1)
        raise service.fail(f"not ready on {path} after {timeout:.0f} s (last: {last})")

    def close(self) -> None:
        """Stop every service started here, the newest first."""
        while self._started:
            self._started.pop().stop()

    # ---------------------------------------------------------------- Prometheus stack

    def prometheus(
        self,
        *,
        scrape: Mapping[str, Sequence[str]] | None = None,
        rule_files: Sequence[Path] = (),
        alertmanagers: Sequence[str] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        honor_labels: bool = False,
    ) -> Service:
        """Prometheus scraping ``{job: [host:port, ...]}`` and evaluating ``rule_files``."""
        binary = require_binary("prometheus")
        port = free_port()
        workdir = self.workdir / f"prometheus-{port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "evaluation_interval": evaluation_interval,
            },
            "rule_files": [str(Path(p).resolve()) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    "honor_labels": honor_labels,
                    "static_configs": [{"targets": list(targets)}],
                }
                for job, targets in dict(scrape or {}).items()
            ],
        }
        if alertmanagers:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
            }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        service = self.start(
            "prometheus",
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=info",
            ],
            port=port,
            ready_path="/-/ready",
        )
        service.extra["config"] = config
        return service

    def alertmanager(self, config_file: Path) -> Service:
        """Alertmanager with ``config_file``, clustering disabled."""
        binary = require_binary("prometheus-alertmanager")
        port = free_port()
        workdir = self.workdir / f"alertmanager-{port}"
        workdir.mkdir(parents=True, exist_ok=True)
        return self.start(
            "alertmanager",
            [
                binary,
                f"--config.file={Path(config_file).resolve()}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=info",
            ],
            port=port,
            ready_path="/-/ready",
        )

    def pushgateway(self) -> Service:
        """A Pushgateway without persistence."""
        binary = require_binary("prometheus-pushgateway")
        port = free_port()
        return self.start(
            "pushgateway",
            [binary, f"--web.listen-address=127.0.0.1:{port}", "--log.level=info"],
            port=port,
            ready_path="/-/ready",
        )

    # ---------------------------------------------------------------- kmeans-monitor

    def kmeans_monitor(self, *args: str, ready_path: str = "/healthz") -> Service:
        """``kmeans-monitor ARGS --listen 127.0.0.1:PORT`` from this interpreter."""
        port = free_port()
        argv = [
            sys.executable,
            "-c",
            "import sys; from monitor.cli import main; sys.exit(main())",
            *args,
            "--listen",
            f"127.0.0.1:{port}",
        ]
        return self.start("kmeans-monitor", argv, port=port, ready_path=ready_path)

    def kmeans_demo(self) -> Service:
        """``kmeans-monitor demo`` with its state in a temporary directory."""
        state = self.workdir / f"demo-state-{free_port()}"
        return self.kmeans_monitor("demo", "--state-dir", str(state))


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """Services for one test, stopped when it ends."""
    started = Services(tmp_path / "services")
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def module_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Services shared by the tests of one module, stopped after the last of them."""
    started = Services(tmp_path_factory.mktemp("services"))
    try:
        yield started
    finally:
        started.close()
