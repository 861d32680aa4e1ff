"""Schedules: the interval that staleness alerts wait for, and the job defaults."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from monitor.scheduling import Scheduler, schedule_interval_seconds

MONDAY = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("interval", "cron", "expected"),
    [
        (90.0, None, 90.0),
        (None, "*/5 * * * *", 300.0),
        (None, "0 * * * *", 3600.0),
        # Weekdays at 09:00: the longest gap is Friday 09:00 -> Monday 09:00.
        (None, "0 9 * * mon-fri", 3 * 86400.0),
    ],
)
def test_schedule_interval(interval: float | None, cron: str | None, expected: float) -> None:
    assert schedule_interval_seconds(interval, cron, MONDAY) == expected


def test_one_run_at_a_time_and_a_clean_shutdown() -> None:
    running = 0
    peak = 0
    runs = 0
    lock = threading.Lock()
    release = threading.Event()

    def slow() -> None:
        nonlocal running, peak, runs
        with lock:
            running += 1
            runs += 1
            peak = max(peak, running)
        release.wait(0.5)
        with lock:
            running -= 1

    s = Scheduler(max_workers=4)
    s.add("slow", slow, interval=0.1)
    s.start()
    assert s.running
    deadline = time.monotonic() + 5
    while runs < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    release.set()
    s.shutdown(wait=True)
    assert not s.running
    assert runs >= 2
    assert peak == 1  # max_instances=1: a slow run is never overlapped by the next
    assert running == 0  # shutdown waited for the run in progress
