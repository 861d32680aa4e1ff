"""The only module that imports APScheduler: one job per model, coalesced, one at a time."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["Scheduler", "run_times", "schedule_interval_seconds"]

log = logging.getLogger(__name__)


def _trigger(interval: float | None, cron: str | None) -> BaseTrigger:
    if cron is not None:
        return CronTrigger.from_crontab(cron, timezone=UTC)
    assert interval is not None
    return IntervalTrigger(seconds=interval, timezone=UTC)


def schedule_interval_seconds(interval: float | None, cron: str | None, now: datetime) -> float:
    """The interval between runs; for cron, the longest gap between fires in the next week.

    Staleness alerts wait for two intervals, so the longest gap (not the mean) keeps a
    schedule like "weekdays at 09:00" from paging every weekend.
    """
    if cron is None:
        assert interval is not None
        return interval
    trigger = _trigger(None, cron)
    horizon = now + timedelta(days=7)
    prev = trigger.get_next_fire_time(None, now)
    longest = 0.0
    fires = 0
    while prev is not None and prev < horizon and fires < 20_000:
        nxt = trigger.get_next_fire_time(prev, prev + timedelta(microseconds=1))
        if nxt is None:
            break
        longest = max(longest, (nxt - prev).total_seconds())
        prev, fires = nxt, fires + 1
    return longest if longest > 0 else 7 * 86400.0


def run_times(
    interval: float | None, cron: str | None, first: float, last: float
) -> tuple[list[float], float]:
    """The scheduled run times in ``[first, last]`` and the time of the run after them.

    With an interval, ``first`` and every interval after it (as a replay starts its
    first run at ``first``); with cron, the fire times of the expression (UTC). Backtests
    use it to replay a schedule without running the scheduler.
    """
    if cron is None:
        assert interval is not None and interval > 0
        count = math.floor((last - first) / interval) + 1 if last >= first else 0
        # Multiplying, not adding, keeps the thousandth run on the grid.
        return [float(first + i * interval) for i in range(count)], float(first + count * interval)
    trigger = _trigger(None, cron)
    start = datetime.fromtimestamp(first, UTC)
    fire = trigger.get_next_fire_time(None, start)
    times: list[float] = []
    while fire is not None and fire.timestamp() <= last:
        times.append(fire.timestamp())
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    after = math.inf if fire is None else fire.timestamp()
    return times, after


class Scheduler:
    """APScheduler in a background thread pool, with the job defaults the daemon needs."""

    def __init__(self, max_workers: int) -> None:
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers)},
            # coalesce: a backlog of missed runs becomes one run; max_instances: one run
            # per model at a time, whatever the interval.
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )

    def add(
        self,
        job_id: str,
        func: Callable[[], object],
        *,
        interval: float | None = None,
        cron: str | None = None,
        misfire_grace: float | None = None,
        run_now: bool = True,
    ) -> None:
        """Schedule ``func``; with ``run_now`` the first run starts immediately."""
        self._scheduler.add_job(
            func,
            _trigger(interval, cron),
            id=job_id,
            name=job_id,
            misfire_grace_time=None if misfire_grace is None else max(1, int(misfire_grace)),
            next_run_time=datetime.now(UTC) if run_now else None,
            replace_existing=True,
        )

    def start(self) -> None:
        self._scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop firing; with ``wait`` let runs in progress finish."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
