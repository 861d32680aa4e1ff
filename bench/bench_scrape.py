"""Scrape load against a daemon-like process: /metrics latency, errors, and starved runs.

The process under test is the daemon's own parts: ``build_app`` on 6 synthetic models
(3,000 rows each, k=4, one run every 5 s on ``max_workers`` 2, through
``monitor.scheduling`` with the daemon's misfire grace of half an interval), the
exporter's registry with process metrics, a ``MetricsCache`` bumped after every run
(standing in for the version counter MonitorState is to get), and the ``HttpServer``
with its default ``Limits``. Its soft descriptor limit is lowered to ``--nofile``
(1,024, systemd's default) as in the issue's reports. A thread that sleeps 20 ms at a
time records how late it wakes, every run's start is compared with its schedule (first
runs staggered as the daemon staggers them), and the runs the scheduler reports as
skipped (what ``kmeans_runs_skipped_total`` counts) are counted.

Clients run in other processes, as asyncio Protocols on raw sockets with keep-alive
and asking for gzip like Prometheus (``--plain``: plain text), so their cost per
request is small and their parsing does not compete for the server's GIL. They do
share the machine's cores: ``--client-nice 19`` makes them yield, closer to scrapers on
other machines; the default (0) is the harsher case. ``--wrk`` uses ``wrk`` (C; Debian's
package) instead, ``--processes`` threads of it: less client CPU per request.
``--no-runs`` stops the schedule after the first runs, so that the phases measure the
server with nothing else in the process (the run columns are then not judged).
``--run-isolation thread`` computes the runs in the server's process
(``daemon.run_isolation: thread``) instead of worker processes (the default,
``process``), and the server's threads then run at nice +10 as the daemon's do.

Phases: ``quiet`` (no clients: the baseline of run lateness), ``scrape`` (``--clients``
scraping back to back), ``idle`` (``--idle`` silent connections, each reopened
``--reopen-after`` seconds after the server closes it, while ``--idle-scrapers`` clients
scrape back to back).

    python -m bench scrape [--clients 50] [--seconds 60] [--idle 1000] [--no-cache]
                           [--nice 10] [--client-nice 0] [--no-freeze] [--plain]
                           [--wrk] [--no-runs] [--run-isolation thread|process]
    python -m bench scrape --heap            # what a full collection costs, before and after
                                             # the daemon freezes its start-up heap

Exit 1 when a target of issue 10 is missed: /metrics p99 under 20 ms, no error, no
missed or late (beyond half an interval) run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import os
import platform
import re
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import Parser, integer, number

P99_TARGET_MS = 20.0


# ---------------------------------------------------------------- clients (child processes)


class _Scraper(asyncio.Protocol):
    """One keep-alive client: a request, its whole response, the next request at once.

    A Protocol rather than streams: the client's own cost per request is a fraction,
    so the figures are the server's and not the load generator's.
    """

    def __init__(
        self, until: float, latencies: list[float], errors: list[str], request: bytes
    ) -> None:
        self.until = until
        self.request = request
        self.latencies = latencies
        self.errors = errors
        self.done = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.need = -1  # bytes of the whole response once its head is parsed
        self.status = 0
        self.close_after = False
        self.gzipped = False
        self.t0 = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.buffer.clear()
        self.need = -1
        self.t0 = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            self.status = int(head.split(b" ", 2)[1])
            length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            self.need = end + 4 + length
            self.close_after = b"connection: close" in head
            self.gzipped = b"content-encoding: gzip" in head
        if len(self.buffer) < self.need:
            return
        self.latencies.append(time.perf_counter() - self.t0)
        if self.status != 200:
            self.errors.append(f"HTTP {self.status}")
        elif self.gzipped != (b"gzip" in self.request):  # the path meant to be measured
            self.errors.append("gzip asked, plain answered" if not self.gzipped else "gzip unasked")
        if self.close_after or time.monotonic() >= self.until:
            assert self.transport is not None
            self.transport.close()
        else:
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.need < 0 or len(self.buffer) < self.need:
            self.errors.append(type(exc).__name__ if exc else "closed mid-response")
        if not self.done.done():
            self.done.set_result(None)


def scrape_request(gzipped: bool) -> bytes:
    """A scrape as Prometheus sends it (which asks for gzip), or one asking for plain text."""
    encoding = b"Accept-Encoding: gzip\r\n" if gzipped else b""
    return b"GET /metrics HTTP/1.1\r\nHost: bench\r\nAccept: */*\r\n" + encoding + b"\r\n"


async def _scrape_one(
    host: str, port: int, until: float, latencies: list[float], errors: list[str], request: bytes
) -> None:
    loop = asyncio.get_running_loop()
    while time.monotonic() < until:
        try:
            _, scraper = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Scraper(until, latencies, errors, request), host, port
                ),
                5,
            )
            await asyncio.wait_for(scraper.done, max(5.0, until - time.monotonic() + 5))
        except (OSError, TimeoutError) as exc:
            errors.append(type(exc).__name__)
            await asyncio.sleep(0.01)


def scrape_process(
    host: str, port: int, clients: int, seconds: float, nice: int, gzipped: bool, out: Any
) -> None:
    """Child process: ``clients`` keep-alive scrapers back to back for ``seconds``."""
    os.nice(nice)
    latencies: list[float] = []
    errors: list[str] = []
    until = time.monotonic() + seconds

    async def main() -> None:
        await asyncio.gather(
            *(
                _scrape_one(host, port, until, latencies, errors, scrape_request(gzipped))
                for _ in range(clients)
            )
        )

    asyncio.run(main())
    out.send((latencies, errors))
    out.close()


@dataclass(frozen=True)
class Latency:
    """What a loaded phase's clients saw: requests answered, and their milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        if not seconds:
            return cls(0, float("nan"), float("nan"), float("nan"))
        ms = np.array(seconds) * 1000
        p50, p99 = np.percentile(ms, [50, 99])
        return cls(len(ms), float(p50), float(p99), float(ms.max()))


_WRK_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _wrk_ms(text: str) -> float:
    value = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if value is None:
        raise SystemExit(f"cannot read wrk's latency {text!r}")
    return float(value[1]) * _WRK_MS[value[2]]


def _wrk_field(pattern: str, out: str) -> str:
    found = re.search(pattern, out, re.MULTILINE)
    if found is None:
        raise SystemExit(f"wrk's report has no {pattern!r}:\n{out}")
    return found[1]


def wrk_phase(
    host: str, port: int, clients: int, seconds: float, threads: int, nice: int, gzipped: bool
) -> tuple[Latency, list[str]]:
    """``wrk`` (C, epoll: Debian's package) as the clients: a fraction of our clients'
    CPU per request, so more of the two cores is left to the process under test. It
    checks the status, not the encoding; its percentiles are HdrHistogram's."""
    command = ["nice", "-n", str(nice), "wrk", f"-t{min(threads, clients)}", f"-c{clients}"]
    command += [f"-d{seconds:g}s", "--latency", "-H", "Host: bench"]
    if gzipped:
        command += ["-H", "Accept-Encoding: gzip"]
    done = subprocess.run(
        [*command, f"http://{host}:{port}/metrics"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    out = done.stdout
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip() or out}")
    latency = Latency(
        int(_wrk_field(r"(\d+) requests in", out)),
        _wrk_ms(_wrk_field(r"^\s+50%\s+(\S+)$", out)),
        _wrk_ms(_wrk_field(r"^\s+99%\s+(\S+)$", out)),
        _wrk_ms(_wrk_field(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", out)),
    )
    errors: list[str] = []
    for kind, count in re.findall(r"(connect|read|write|timeout) (\d+)", out):
        errors += [f"wrk {kind} error"] * int(count)
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)  # absent when none
    errors += ["HTTP not 2xx/3xx"] * (int(refused[1]) if refused else 0)
    return latency, errors


def idle_process(
    host: str, port: int, count: int, seconds: float, reopen_after: float, nice: int, out: Any
) -> None:
    """Child process: hold ``count`` silent connections; reopen each one the server closes
    ``reopen_after`` seconds later (0: at once, an aggressive attacker)."""
    os.nice(nice)
    sel = selectors.DefaultSelector()

    def open_one() -> bool:
        try:
            sock = socket.create_connection((host, port), timeout=5)
        except OSError:
            return False
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        return True

    opened = sum(open_one() for _ in range(count))
    reopened = failed = 0
    closed_at: list[float] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for key, _ in sel.select(timeout=0.1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            sel.unregister(sock)
            sock.close()  # the server closed it (eviction or timeout): EOF, 503 or reset
            closed_at.append(time.monotonic())
        due = time.monotonic() - reopen_after
        while closed_at and closed_at[0] <= due:
            closed_at.pop(0)
            if open_one():
                reopened += 1
            else:
                failed += 1
    out.send((opened, reopened, failed))
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    out.close()


# ---------------------------------------------------------------- the process under test


@dataclass
class RunLog:
    """Start times of every model run, against the schedule each was added with."""

    interval: float
    added: dict[str, float] = field(default_factory=dict)
    starts: dict[str, list[float]] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(
        self, name: str, run: Callable[[str], object], offset: float = 0.0
    ) -> Callable[[], None]:
        def timed() -> None:
            start = time.time()
            run(name)
            with self.lock:
                self.starts[name].append(start)
                self.durations[name].append(time.time() - start)

        self.added[name] = time.time() + offset  # the first run is due then
        self.starts[name] = []
        self.durations[name] = []
        return timed

    def window(self, t0: float, t1: float) -> dict[str, float]:
        """Runs due, run, skipped and late in ``[t0, t1)``, with lateness percentiles."""
        due = done = 0
        late: list[float] = []
        durations: list[float] = []
        with self.lock:
            for name, added in self.added.items():
                first = max(0, int(np.ceil((t0 - added) / self.interval)))
                last = int(np.floor((t1 - added) / self.interval - 1e-9))
                due += max(0, last - first + 1)
                for start, took in zip(self.starts[name], self.durations[name], strict=True):
                    due_at = added + np.floor((start - added) / self.interval) * self.interval
                    if t0 <= due_at < t1:
                        done += 1
                        late.append(start - due_at)
                        durations.append(took)
        return {
            "due": due,
            "run": done,
            "skipped": max(0, due - done),
            "late_p50_ms": 1000 * float(np.percentile(late, 50)) if late else float("nan"),
            "late_max_ms": 1000 * max(late, default=float("nan")),
            "run_p50_s": statistics.median(durations) if durations else float("nan"),
        }


class MissedRuns:
    """Runs the scheduler reports as not started (the daemon's kmeans_runs_skipped_total)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, job_id: str, reason: str, count: int) -> None:
        with self.lock:
            self.times += [time.time()] * count

    def window(self, t0: float, t1: float) -> dict[str, float]:
        with self.lock:
            return {"missed": sum(t0 <= at < t1 for at in self.times)}


class Ticker(threading.Thread):
    """Sleeps 20 ms at a time and records how late it wakes up."""

    def __init__(self) -> None:
        super().__init__(name="ticker", daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            time.sleep(0.02)
            self.samples.append((time.time(), time.perf_counter() - t0 - 0.02))

    def window(self, t0: float, t1: float) -> dict[str, float]:
        late = [d for at, d in self.samples if t0 <= at < t1]
        return {
            "tick_p99_ms": 1000 * float(np.percentile(late, 99)) if late else float("nan"),
            "tick_max_ms": 1000 * max(late, default=float("nan")),
        }


def _settings(
    models: int, interval: float, rows: int, state_dir: Path, run_isolation: str | None = None
) -> Any:
    from monitor.config import parse
    from monitor.sources import SOURCES

    features = ["latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps", "error_ratio"]
    isolation = {} if run_isolation is None else {"run_isolation": run_isolation}
    return parse(
        {
            "daemon": {"state_dir": str(state_dir), "max_workers": 2, **isolation},
            "models": [
                {
                    "name": f"service{i}",
                    "features": features,
                    "k": 4,
                    "window": "30s",
                    "schedule": {"interval": interval},  # seconds ('1e+06s' is no duration)
                    "source": {
                        "kind": "synthetic",
                        "seed": i,
                        "regimes": 4,
                        "rows_per_window": rows,
                    },
                }
                for i in range(models)
            ],
        },
        sources=SOURCES,
    )


class Target:
    """The daemon's parts in this process: app, scheduler, metrics cache, HTTP server."""

    def __init__(self, args: argparse.Namespace, state_dir: Path) -> None:
        from monitor.bootstrap import build_app
        from monitor.daemon import daemon_limits, daemon_routes
        from monitor.http import HttpServer
        from monitor.scheduling import Scheduler

        settings = _settings(args.models, args.interval, args.rows, state_dir, args.run_isolation)
        self.app = build_app(settings)
        routes = daemon_routes(self.app, self.app.ready, cache=not args.no_cache)
        nice = {} if args.nice is None else {"nice": args.nice}
        self.server = HttpServer("127.0.0.1", 0, routes, limits=daemon_limits(settings, **nice))
        self.missed = MissedRuns()
        self.scheduler = Scheduler(2, on_skipped=self.missed)
        self.runs = RunLog(args.interval)
        self.ticker = Ticker()
        self._interval = args.interval
        self._freeze = not args.no_freeze
        self._stop = threading.Event()

    def start(self) -> None:
        from monitor.daemon import first_run_offsets, settle
        from monitor.pipeline import warm_kernels

        self.server.start()
        self.app.runner.start_workers()
        # As the daemon does: the kernels load beside the first runs, then the start-up
        # heap is frozen (unless --no-freeze, the figures before it was).
        if self._freeze:
            models = [m.name for m in self.app.settings.models]

            def done() -> bool:
                return all(map(self.app.state.has_run, models))

            kernels = threading.Thread(target=settle, args=(done, self._stop), daemon=True)
        else:
            kernels = threading.Thread(target=warm_kernels, daemon=True)
        kernels.start()
        self.ticker.start()
        offsets = first_run_offsets(self.app.settings)
        for m in self.app.settings.models:
            self.scheduler.add(
                f"model:{m.name}",
                self.runs.wrap(m.name, self.app.runner.run_model, offsets[m.name]),
                interval=self._interval,
                misfire_grace=self._interval / 2,
                start_in=offsets[m.name],
            )
        self.scheduler.start()

    def stop(self) -> None:
        self._stop.set()
        self.scheduler.shutdown(wait=True)
        self.server.stop()
        self.ticker.stop.set()
        self.app.close()

    def stats(self, t0: float, t1: float) -> dict[str, float]:
        return {
            **self.runs.window(t0, t1),
            **self.ticker.window(t0, t1),
            **self.missed.window(t0, t1),
        }


def _spawn(target: Callable[..., None], *args: Any) -> tuple[Any, Any]:
    ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, child), daemon=True)
    proc.start()
    child.close()
    return proc, parent


def _scrape_phase(
    target: Target, clients: int, seconds: float, args: argparse.Namespace, processes: int
) -> tuple[Latency, list[str]]:
    host, port = target.server.address
    nice, gzipped = args.client_nice, not args.plain
    if args.wrk:
        return wrk_phase(host, port, clients, seconds, processes, nice, gzipped)
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    spawned = [_spawn(scrape_process, host, port, n, seconds, nice, gzipped) for n in shares if n]
    latencies: list[float] = []
    errors: list[str] = []
    for proc, conn in spawned:
        got_latencies, got_errors = conn.recv()
        latencies += got_latencies
        errors += got_errors
        proc.join(timeout=30)
    return Latency.of(latencies), errors


def _row(ph: Phase, st: dict[str, float]) -> str:
    lat, err, seconds = ph.latency, ph.errors, ph.seconds
    kinds = ", ".join(f"{k} x{err.count(k)}" for k in sorted(set(err))) or "0"
    per_request = f"{ph.http_cpu / lat.count * 1e6:.0f}" if lat.count else "-"
    return (
        f"| {ph.name} | {lat.count / seconds:,.0f} | {lat.p50_ms:.2f} | "
        f"{lat.p99_ms:.2f} | {lat.max_ms:.1f} | {kinds} | "
        f"{st['due']:.0f} / {st['run']:.0f} / {st['skipped']:.0f} / {st['missed']:.0f} | "
        f"{st['late_p50_ms']:.1f} / {st['late_max_ms']:.1f} | {st['run_p50_s']:.2f} | "
        f"{st['tick_p99_ms']:.1f} / {st['tick_max_ms']:.1f} | "
        f"{per_request} / {ph.http_cpu / seconds:.2f} | {ph.client_cpu / seconds:.2f} |"
    )


HEADER = (
    "| phase | req/s | p50 ms | p99 ms | max ms | errors | runs due / run / not run / missed "
    "| run start late p50 / max ms | run s p50 | 20 ms tick late p99 / max ms "
    "| server CPU us per request / cores | client cores |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def children_cpu_seconds() -> float:
    """CPU seconds used by the client processes that have ended so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def http_cpu_seconds() -> float:
    """CPU seconds used so far by the server's threads (its event loop and workers)."""
    ticks = 0
    for thread in threading.enumerate():
        if thread.name == "http" or thread.name.startswith("http-worker"):
            try:
                with open(f"/proc/self/task/{thread.native_id}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the thread just ended
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """The peaks of open client connections and of the process's descriptors."""

    def __init__(self, target: Target) -> None:
        super().__init__(name="sampler", daemon=True)
        self.target = target
        self.peak_connections = 0
        self.peak_fds = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.peak_connections = max(self.peak_connections, self.target.server.open_connections)
            self.peak_fds = max(self.peak_fds, len(os.listdir("/proc/self/fd")))


def _wait_for_first_runs(target: Target, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with target.runs.lock:
            if all(target.runs.starts.values()):
                return
        time.sleep(0.2)
    raise SystemExit(f"the models did not all run within {timeout:g} s; is the machine overloaded?")


@dataclass
class Phase:
    """What one phase measured; run statistics are read once its late runs have started."""

    name: str
    seconds: float
    t0: float
    t1: float
    latency: Latency
    errors: list[str]
    http_cpu: float  # CPU seconds of the server's threads during the phase
    client_cpu: float = 0.0  # CPU seconds of the client processes
    load: bool = True  # judged against the latency target


def _phases(target: Target, args: argparse.Namespace) -> tuple[list[Phase], str]:
    phases = []
    t0, cpu = time.time(), http_cpu_seconds()
    time.sleep(args.quiet)
    cpu = http_cpu_seconds() - cpu
    phases.append(Phase("quiet", args.quiet, t0, time.time(), Latency.of([]), [], cpu, load=False))

    t0, cpu, ccpu = time.time(), http_cpu_seconds(), children_cpu_seconds()
    lat, err = _scrape_phase(target, args.clients, args.seconds, args, args.processes)
    name = f"scrape: {args.clients} clients"
    cpu = http_cpu_seconds() - cpu
    ccpu = children_cpu_seconds() - ccpu
    phases.append(Phase(name, args.seconds, t0, time.time(), lat, err, cpu, ccpu))

    host, port = target.server.address
    ccpu = children_cpu_seconds()
    holder, conn = _spawn(
        idle_process, host, port, args.idle, args.seconds + 5, args.reopen_after, args.client_nice
    )
    sampler = Sampler(target)
    sampler.start()
    time.sleep(3)  # let the holder open its connections
    t0, cpu = time.time(), http_cpu_seconds()
    lat, err = _scrape_phase(target, args.idle_scrapers, args.seconds, args, 1)
    name = f"idle: {args.idle} held + {args.idle_scrapers} clients"
    phase = Phase(name, args.seconds, t0, time.time(), lat, err, http_cpu_seconds() - cpu)
    opened, reopened, failed = conn.recv()
    holder.join(timeout=30)
    sampler.stop.set()
    # The holder ran a few seconds longer than the phase: its CPU is counted whole.
    phase.client_cpu = children_cpu_seconds() - ccpu
    phases.append(phase)
    note = (
        f"idle phase: the holder opened {opened}, reopened {reopened} "
        f"({reopened / (args.seconds + 5):.0f}/s) after the server closed them, failed {failed}; "
        f"server peak: {sampler.peak_connections} open client connections "
        f"(cap {target.server.limits.max_connections}), {sampler.peak_fds} descriptors "
        f"(soft limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]})"
    )
    return phases, note


def _report(
    target: Target, phases: list[Phase], interval: float, runs: bool
) -> tuple[list[str], bool]:
    rows, ok = [], True
    for ph in phases:
        st = target.stats(ph.t0, ph.t1)
        rows.append(_row(ph, st))
        ok &= not ph.errors
        if runs:  # with --no-runs the run columns are not judged (nothing runs)
            ok &= st["skipped"] == 0 and st["missed"] == 0
            ok &= st["late_max_ms"] < 1000 * interval / 2
        if ph.load:
            ok &= ph.latency.count > 0 and ph.latency.p99_ms < P99_TARGET_MS
    return rows, ok


def _full_collection_ms(repeats: int = 7) -> float:
    """Median CPU milliseconds of a full collection (thread CPU: not the machine's load)."""
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        gc.collect()
        times.append((time.thread_time() - t0) * 1000)
    return statistics.median(times)


def heap_report(args: argparse.Namespace) -> int:
    """What a full collection costs in the daemon-like process, before and after the freeze."""
    from monitor.bootstrap import build_app
    from monitor.daemon import daemon_routes, freeze_heap

    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as tmp:
        app = build_app(_settings(args.models, args.interval, args.rows, Path(tmp)))
        metrics = daemon_routes(app, app.ready).metrics
        assert metrics is not None
        rows = [("built", len(gc.get_objects()), _full_collection_ms())]
        for m in app.settings.models:
            app.runner.run_model(m.name)
        metrics()
        rows.append(("after every model's first run", len(gc.get_objects()), _full_collection_ms()))
        frozen = freeze_heap()
        for m in app.settings.models:
            app.runner.run_model(m.name)
        metrics()
        rows.append(("frozen, after a second round", len(gc.get_objects()), _full_collection_ms()))
        gc.unfreeze()
        app.close()
    print("| heap | objects tracked | full collection, ms of CPU |\n|---|---|---|")
    print("\n".join(f"| {name} | {count:,} | {ms:.2f} |" for name, count, ms in rows))
    print(f"\n{frozen:,} objects frozen")
    return 0


def _parser() -> Parser:
    p = Parser(prog="python -m bench scrape", description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=integer(1), default=50)
    p.add_argument(
        "--seconds", type=number(above=0), default=60.0, help="length of each loaded phase"
    )
    p.add_argument(
        "--quiet", type=number(at_least=0), default=15.0, help="length of the baseline phase"
    )
    p.add_argument("--idle", type=integer(0), default=1000, help="silent connections held open")
    p.add_argument("--idle-scrapers", type=integer(1), default=2)
    p.add_argument(
        "--reopen-after",
        type=number(at_least=0),
        default=1.0,
        help="seconds before a closed one is reopened",
    )
    p.add_argument("--processes", type=integer(1), default=2, help="client processes")
    p.add_argument("--models", type=integer(1), default=6)
    p.add_argument("--interval", type=number(at_least=1), default=5.0, help="seconds between runs")
    p.add_argument("--rows", type=integer(1), default=3000)
    p.add_argument(
        "--nofile",
        type=integer(64),
        default=1024,
        help="soft descriptor limit (at least 64: the process's own files, sockets and pipes)",
    )
    p.add_argument("--no-cache", action="store_true", help="encode the registry per scrape")
    p.add_argument(
        "--plain",
        action="store_true",
        help="clients ask for plain text (default: gzip, as Prometheus asks)",
    )
    p.add_argument(
        "--no-freeze", action="store_true", help="leave the start-up heap to the collector"
    )
    p.add_argument(
        "--first-runs-timeout",
        type=number(above=0),
        default=600.0,
        help="seconds the first runs (reference training) may take before the phases",
    )
    p.add_argument(
        "--nice",
        type=integer(0, 19),
        default=None,
        help="Limits.nice of the server threads (default: the daemon's, 0; with "
        "--run-isolation thread, +10)",
    )
    p.add_argument(
        "--run-isolation",
        choices=("thread", "process"),
        default=None,
        help="daemon.run_isolation of the models (default: the daemon's default, process)",
    )
    p.add_argument(
        "--client-nice",
        type=integer(0, 19),
        default=0,
        help="nice of the client processes (19: remote-like)",
    )
    p.add_argument(
        "--wrk", action="store_true", help="wrk as the clients (--processes: its threads)"
    )
    p.add_argument(
        "--no-runs",
        action="store_true",
        help="stop the schedule after the first runs: the server's share of the tail alone",
    )
    p.add_argument(
        "--heap", action="store_true", help="only report what a full collection costs, and exit"
    )
    return p


def _options(argv: list[str]) -> argparse.Namespace:
    """The options, every bad value refused (one line, exit 2) before any work."""
    p = _parser()
    args = p.parse_args(argv)
    if args.wrk and shutil.which("wrk") is None:
        p.error("--wrk: wrk is not installed (Debian: apt-get install wrk)")
    # One model says it all: the models differ only in their names and seeds.
    settings = p.check_model(
        lambda: _settings(1, args.interval, args.rows, Path("unused"), args.run_isolation)
    )
    from monitor.pipeline.scoring import least_rows

    need, why = least_rows(settings.models[0])
    if args.rows < need:
        p.error(f"--rows must be at least {need}, as the models need ({why}); got {args.rows}")
    return args


def main(argv: list[str]) -> int:
    """Run the phases and print a Markdown table; 1 when a target is missed."""
    args = _options(argv)
    if args.heap:
        return heap_report(args)

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(args.nofile, hard), hard))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as tmp:
        target = Target(args, Path(tmp))
        print(
            f"# /metrics under load: {args.models} models every {args.interval:g} s "
            f"({args.rows} rows), metrics {'encoded per scrape' if args.no_cache else 'cached'}, "
            f"runs in {target.app.settings.daemon.run_isolation} isolation, "
            f"server threads nice +{target.server.limits.nice}, "
            f"{'wrk' if args.wrk else 'our'} clients at nice "
            f"{args.client_nice} "
            f"asking for {'plain text' if args.plain else 'gzip'}, "
            f"start-up heap {'left to the collector' if args.no_freeze else 'frozen'}, "
            f"python {platform.python_version()}, {os.cpu_count()} cpus, "
            f"load average {os.getloadavg()[0]:.1f} at start\n"
        )
        target.start()
        try:
            _wait_for_first_runs(target, args.first_runs_timeout)
            if args.no_runs:
                target.scheduler.shutdown(wait=True)
            phases, note = _phases(target, args)
            if not args.no_runs:
                time.sleep(args.interval + 2)  # runs due at the end of a phase start late
            rows, ok = _report(target, phases, args.interval, not args.no_runs)
        finally:
            target.stop()
    print(HEADER)
    print("\n".join(rows))
    print(f"\n{note}")
    print(
        f"\ntargets (p99 < {P99_TARGET_MS:g} ms, 0 errors, 0 skipped runs): "
        f"{'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
