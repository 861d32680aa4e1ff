"""The only module that imports APScheduler: one job per model, coalesced, one at a time.

Jobs run on a small pool of daemon threads (``max_workers``), so that a run still going
when the process stops cannot hold it: the daemon waits a bounded grace
(``wait_idle``) and leaves. A run that falls due while the job's previous run is still
going waits for it, and starts when it ends if that is within its misfire grace: a run
that overran its interval by a little (a retrain) delays the next rather than dropping
it. Every scheduled run that does not start is reported to ``on_skipped(job_id,
reason, count)``: ``missed`` when it could not start within its misfire grace (or was
folded into a later run by coalescing, or due while the job's previous run still
waited for a worker, or held behind a run that never started), ``still_running`` when
the job's previous run had not ended within it (or a third run fell due meanwhile).
"""

from __future__ import annotations

import collections
import functools
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.durations import format_duration

__all__ = [
    "Scheduler",
    "cron_problem",
    "run_times",
    "schedule_gaps",
    "schedule_interval_seconds",
]

log = logging.getLogger(__name__)

# The fields of a 5-field crontab expression, as APScheduler's from_crontab names them.
_CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
# APScheduler reads its fields with \d, which matches "٣" and "３" too.
_ASCII_ONLY = "digits 0-9, names and * , - / in ASCII only"
# Fire times walked to count runs folded away by coalescing (a bound, not a schedule).
_MAX_COALESCED = 100_000
#: How often the wall clock is compared with the monotonic one, and the change between
#: two looks that counts as a step of the wall clock (NTP slews smaller errors).
CLOCK_CHECK_SECONDS = 5.0
CLOCK_STEP_SECONDS = 5.0

OnSkipped = Callable[[str, str, int], None]
#: Whether a job's run, when it is submitted, trains a model's reference (True), is a
#: trained model's (False), or is neither (None: another job).
FirstRun = Callable[[str], bool | None]


def _trigger(
    interval: float | None, cron: str | None, start: datetime | None = None
) -> BaseTrigger:
    if cron is not None:
        return crontab_trigger(cron)
    assert interval is not None
    return IntervalTrigger(seconds=interval, start_date=start, timezone=UTC)


# Crontab's days of the week, 0 (and 7) Sunday; APScheduler counts from Monday, so days
# go to it by name. Its from_crontab passes the numbers through: "0" ran on Mondays.
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_day(text: str) -> int:
    if text.isascii() and text.isdigit() and int(text) <= 7:
        return int(text)
    if text in _CRON_DAYS:
        return _CRON_DAYS.index(text)
    raise ValueError(f"{text!r} is not a day of the week (0 to 7, 0 and 7 Sunday, or sun to sat)")


def _cron_weekdays(field: str) -> str:
    """A crontab day-of-week field (lists, ranges, steps, names) as APScheduler's days."""
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.lower().split(","):
        span, slash, step = item.partition("/")
        if slash and not (step.isascii() and step.isdigit() and int(step) >= 1):
            raise ValueError(f"{item!r}: a step is a whole number of at least 1")
        if span == "*":
            low, high = 0, 6
        else:
            first, dash, last = span.partition("-")
            low = _cron_day(first)
            high = _cron_day(last) if dash else (6 if slash else low)
        if low > high:
            raise ValueError(f"{item!r}: a range goes from the earlier day to the later one")
        days.update(day % 7 for day in range(low, high + 1, int(step) if slash else 1))
    return ",".join(_CRON_DAYS[day] for day in sorted(days))


def crontab_trigger(expression: str) -> BaseTrigger:
    """A trigger that fires as cron would (UTC): days of the week counted from Sunday, and
    when both the day of the month and the day of the week are restricted (neither
    starts with ``*``), on the days either names, as cron does. ValueError if invalid."""
    if not expression.isascii():
        raise ValueError(f"{expression!r}: {_ASCII_ONLY}")
    minute, hour, day, month, weekday = expression.split()
    days = _cron_weekdays(weekday)
    times = {"minute": minute, "hour": hour, "month": month, "timezone": UTC}
    if day.startswith("*") or weekday.startswith("*"):
        return CronTrigger(day=day, day_of_week=days, **times)
    return OrTrigger([CronTrigger(day=day, **times), CronTrigger(day_of_week=days, **times)])


def cron_problem(expression: str, now: datetime | None = None) -> str | None:
    """Why a 5-field crontab expression would be refused; None when it is accepted.

    The reason names the field ("minute '61': ...") and says when the expression can
    never fire ("0 0 31 2 *").
    """
    values = expression.split()
    if len(values) != len(_CRON_FIELDS):
        return f"5 fields ({' '.join(_CRON_FIELDS)}), not {len(values)}"
    for name, raw in zip(_CRON_FIELDS, values, strict=True):
        if not raw.isascii():  # APScheduler's \d took "٣" as 3
            return f"{name} {raw!r}: {_ASCII_ONLY}"
        try:
            value = _cron_weekdays(raw) if name == "day_of_week" else raw
            CronTrigger(timezone=UTC, **{name: value})
        except ValueError as exc:
            return f"{name} {raw!r}: {exc}"
    try:
        trigger = crontab_trigger(expression)
    except ValueError as exc:
        return str(exc)
    if trigger.get_next_fire_time(None, now or datetime.now(UTC)) is None:
        return "it never fires"
    return None


def schedule_gaps(interval: float | None, cron: str | None, now: datetime) -> tuple[float, float]:
    """The shortest and the longest gap between two runs (cron: over the next week,
    from the hour of ``now``)."""
    if cron is None:
        assert interval is not None
        return interval, interval
    return _cron_gaps(cron, now.replace(minute=0, second=0, microsecond=0))


@functools.lru_cache(maxsize=256)
def _cron_gaps(cron: str, now: datetime) -> tuple[float, float]:
    """``schedule_gaps`` of a cron expression, once per expression and hour: a week of
    `* * * * *` is 10,080 fire times, 0.28 s to walk, and each model asked three times
    at start-up (20 s of the start of 150 models, helper-107)."""
    trigger = _trigger(None, cron)
    horizon = now + timedelta(days=7)
    prev = trigger.get_next_fire_time(None, now)
    shortest, longest = math.inf, 0.0
    fires = 0
    while prev is not None and prev < horizon and fires < 20_000:
        nxt = trigger.get_next_fire_time(prev, prev + timedelta(microseconds=1))
        if nxt is None:
            break
        gap = (nxt - prev).total_seconds()
        shortest, longest = min(shortest, gap), max(longest, gap)
        prev, fires = nxt, fires + 1
    if longest <= 0:
        return 7 * 86400.0, 7 * 86400.0
    return shortest, longest


def schedule_interval_seconds(interval: float | None, cron: str | None, now: datetime) -> float:
    """The interval between runs; for cron, the longest gap between fires in the next week.

    Staleness alerts wait for two intervals, so the longest gap (not the mean) keeps a
    schedule like "weekdays at 09:00" from paging every weekend.
    """
    return schedule_gaps(interval, cron, now)[1]


def run_times(
    interval: float | None, cron: str | None, first: float, last: float, *, limit: int
) -> tuple[list[float], float]:
    """The scheduled run times in ``[first, last]`` and the time of the run after them.

    With an interval, ``first`` and every interval after it (as a replay starts its
    first run at ``first``); with cron, the fire times of the expression (UTC). Backtests
    use it to replay a schedule without running the scheduler. At most ``limit + 1``
    times are listed, so that a range of centuries costs no more than one past the limit.
    """
    if cron is None:
        assert interval is not None and interval > 0
        count = math.floor((last - first) / interval) + 1 if last >= first else 0
        count = min(count, limit + 1)
        # Multiplying, not adding, keeps the thousandth run on the grid.
        return [float(first + i * interval) for i in range(count)], float(first + count * interval)
    trigger = _trigger(None, cron)
    start = datetime.fromtimestamp(first, UTC)
    fire = trigger.get_next_fire_time(None, start)
    times: list[float] = []
    while fire is not None and fire.timestamp() <= last and len(times) <= limit:
        times.append(fire.timestamp())
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    after = math.inf if fire is None else fire.timestamp()
    return times, after


class _DaemonThreadExecutor(BaseExecutor):
    """Runs jobs on at most ``max_workers`` daemon threads, and says when none is running.

    APScheduler's ThreadPoolExecutor uses concurrent.futures, whose threads the
    interpreter joins at exit: one run stuck in a long computation would hold the
    process after SIGTERM. Daemon threads do not, and ``wait_idle`` bounds the wait.
    """

    def __init__(
        self,
        max_workers: int,
        on_skipped: OnSkipped | None = None,
        first_run: FirstRun | None = None,
    ) -> None:
        super().__init__()
        self._max_workers = max_workers
        self._on_skipped = on_skipped
        self._first_run = first_run
        # Runs waiting for a worker: a trained model's (and other jobs') first, then the
        # first runs that train a reference (``_take``).
        self._ordinary: collections.deque[tuple[Any, list[datetime]]] = collections.deque()
        self._firsts: collections.deque[tuple[Any, list[datetime]]] = collections.deque()
        self._firsts_going = 0
        self._trained_seen = False  # a trained model's run was submitted: keep it a worker
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._busy = threading.Condition()
        self._pending = 0  # submitted and not finished
        self._active: set[str] = set()  # jobs with a run queued or going
        # Per job, the run due while its previous one goes (one at most: max_instances 2).
        self._held: dict[str, tuple[Any, list[datetime]]] = {}
        self._started: set[str] = set()  # jobs whose queued run has a worker (is going)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        with self._busy:
            going = job.id in self._active
            older = self._held.get(job.id) if going else None
            if going:
                self._held[job.id] = (job, run_times)
            else:
                self._active.add(job.id)
        if not going:
            self._enqueue(job, run_times)
        elif older is not None:  # a newer due run replaces the one held, as coalescing does
            self._drop(job.id, older[1])

    def _enqueue(self, job: Any, run_times: list[datetime]) -> None:
        first = None if self._first_run is None else self._first_run(job.id)
        with self._busy:
            self._pending += 1
            if len(self._threads) < min(self._max_workers, self._pending):
                thread = threading.Thread(
                    target=self._work, name=f"run-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._trained_seen = self._trained_seen or first is False
            (self._firsts if first else self._ordinary).append((job, run_times))
            self._busy.notify_all()

    def _take(self) -> tuple[Any, list[datetime], bool] | None:
        """The next run for a worker (None: the executor shuts down), and whether it is a
        first run. Trained models' runs go first, and once one exists first runs take at
        most all workers but one: a fleet's reference training held every worker for
        minutes and the trained models' runs were skipped meanwhile (helper-107). Under
        the lock."""

        def ready() -> bool:
            limit = self._max_workers - (self._trained_seen and self._max_workers > 1)
            return (
                self._closing
                or bool(self._ordinary)
                or (bool(self._firsts) and self._firsts_going < limit)
            )

        self._busy.wait_for(ready)
        if self._ordinary:
            return (*self._ordinary.popleft(), False)
        if self._closing:
            return None
        self._firsts_going += 1
        return (*self._firsts.popleft(), True)

    def _release_held(self, job_id: str, ran: bool) -> None:
        """The job's run ended: start the run held behind it if still within its grace.

        Dropped past it, the held run is ``still_running`` if the one it waited for ran
        (within its own grace, so before the held run's ran out), else ``missed``: that
        one waited for a worker past its grace and never ran (a model that had never run
        was said to be still running; helper-107)."""
        with self._busy:
            held = self._held.pop(job_id, None)
            if held is None:
                self._active.discard(job_id)
                return
        job, times = held
        grace = job.misfire_grace_time
        late = (datetime.now(UTC) - times[-1]).total_seconds()
        if grace is None or late <= grace:
            self._enqueue(job, times)
            return
        with self._busy:
            self._active.discard(job_id)
        self._drop(job_id, times, "still_running" if ran else "missed")

    def _drop(self, job_id: str, times: list[datetime], reason: str | None = None) -> None:
        """A due run that never starts: its instance released, reported as ``reason``
        (default ``skip_reason``)."""
        self._run_job_success(job_id, [])
        if self._on_skipped is not None:
            self._on_skipped(job_id, reason or self.skip_reason(job_id), len(times))

    def skip_reason(self, job_id: str) -> str:
        """Why a run due while the job has one queued or going does not start:
        still_running, or missed while that one still waits for a worker (every one busy:
        a model queued behind other models' first runs was said to be running, and had
        never run; helper-94)."""
        with self._busy:
            return "still_running" if job_id in self._started else "missed"

    def _work(self) -> None:
        while True:
            with self._busy:
                item = self._take()
                if item is None:
                    return
                job, times, first = item
                self._started.add(job.id)
            ran = True  # unless run_job found it past its grace and only reported that
            try:
                events = run_job(job, job._jobstore_alias, times, self._logger.name)
                ran = any(event.code != EVENT_JOB_MISSED for event in events)
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)
            finally:
                with self._busy:
                    self._started.discard(job.id)  # before a held run is queued again
                self._release_held(job.id, ran)
                with self._busy:
                    self._pending -= 1
                    self._firsts_going -= first
                    self._busy.notify_all()

    def running(self) -> int:
        """Jobs submitted and not finished."""
        with self._busy:
            return self._pending

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no job is running (True), or ``timeout`` seconds (False)."""
        with self._busy:
            return self._busy.wait_for(lambda: self._pending == 0, timeout)

    def shutdown(self, wait: bool = True) -> None:
        """Drop the jobs not started yet, end the workers; with ``wait`` join them."""
        with self._busy:
            held, self._held = list(self._held.values()), {}
            queued = [*self._ordinary, *self._firsts]
            self._ordinary.clear()
            self._firsts.clear()
            self._closing = True
            self._busy.notify_all()
        for job, _ in held:
            self._run_job_success(job.id, [])
        for job, _ in queued:
            self._run_job_success(job.id, [])  # releases its instance count
            with self._busy:
                self._pending -= 1
                self._busy.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()


class Scheduler:
    """APScheduler in the background, with the job defaults and reports the daemon needs."""

    def __init__(
        self,
        max_workers: int,
        *,
        on_skipped: OnSkipped | None = None,
        first_run: FirstRun | None = None,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``first_run``: which runs train a reference (``_DaemonThreadExecutor._take``
        gives trained models' runs a worker before them). ``wall`` and ``monotonic``: the
        clocks compared to see the wall clock step."""
        self._executor = _DaemonThreadExecutor(max_workers, on_skipped, first_run)
        self._wall, self._monotonic = wall, monotonic
        self._offset = wall() - monotonic()  # the wall clock against the monotonic one
        self._stop = threading.Event()
        self._clock_lock = threading.Lock()
        self._scheduler = BackgroundScheduler(
            executors={"default": self._executor},
            # coalesce: a backlog of missed runs becomes one run; max_instances: a run
            # going and one due behind it, which the executor holds until the first ends
            # (one run per model at a time, whatever the interval).
            job_defaults={"coalesce": True, "max_instances": 2},
            timezone=UTC,
        )
        self._on_skipped = on_skipped
        self._triggers: dict[str, BaseTrigger] = {}
        self._last_due: dict[str, datetime] = {}  # the latest run time seen per job
        self._scheduler.add_listener(
            self._event, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED
        )

    def add(
        self,
        job_id: str,
        func: Callable[[], object],
        *,
        interval: float | None = None,
        cron: str | None = None,
        misfire_grace: float | None = None,
        start_in: float = 0.0,
    ) -> None:
        """Schedule ``func``; its first run starts ``start_in`` seconds from now.

        An interval schedule keeps that offset (runs at start, start + interval, ...),
        so jobs started at staggered offsets stay apart; a cron schedule follows its
        expression after the first run. "Now" is the next whole second, so that an
        interval's runs fall on whole seconds with a whole ``start_in``, as a backtest's
        do (a seasonal model's phase weights follow a run's time to the microsecond).
        """
        now = math.ceil(datetime.now(UTC).timestamp())
        start = datetime.fromtimestamp(now + max(0.0, start_in), UTC)
        trigger = _trigger(interval, cron, start)
        self._triggers[job_id] = trigger
        self._last_due.pop(job_id, None)
        self._scheduler.add_job(
            func,
            trigger,
            id=job_id,
            name=job_id,
            misfire_grace_time=None if misfire_grace is None else max(1, int(misfire_grace)),
            next_run_time=start,
            replace_existing=True,
        )

    def _event(self, event: JobSubmissionEvent | JobExecutionEvent) -> None:
        """Count the run times that did not start: missed, folded away, or overlapping."""
        if self._on_skipped is None:
            return
        self.check_clock()  # a step of the clock is no run folded away
        if event.code == EVENT_JOB_MISSED:
            self._on_skipped(event.job_id, "missed", 1)
            return
        times: list[datetime] = list(event.scheduled_run_times)
        folded = self._coalesced(event.job_id, times[0]) if times else 0
        if times:
            self._last_due[event.job_id] = times[-1]
        if folded:
            self._on_skipped(event.job_id, "missed", folded)
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self._on_skipped(event.job_id, self._executor.skip_reason(event.job_id), len(times))

    def _coalesced(self, job_id: str, first: datetime) -> int:
        """Fire times strictly between the job's previous run time and ``first``.

        Coalescing hands the executor only the latest of a backlog of run times; the
        others would vanish without a trace.
        """
        previous, trigger = self._last_due.get(job_id), self._triggers.get(job_id)
        if previous is None or trigger is None:
            return 0
        count, fire = 0, trigger.get_next_fire_time(previous, previous + timedelta(microseconds=1))
        while fire is not None and fire < first and count < _MAX_COALESCED:
            count += 1
            fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
        return count

    def start(self) -> None:
        self._scheduler.start()
        self._offset = self._wall() - self._monotonic()
        threading.Thread(target=self._watch_clock, name="clock", daemon=True).start()

    def _watch_clock(self) -> None:
        while not self._stop.wait(CLOCK_CHECK_SECONDS):
            self.check_clock()

    def check_clock(self) -> float:
        """Follow a step of the wall clock since the last look; return it in seconds (0:
        none). APScheduler waits for wall-clock times: set back 2 h, it ran nothing for
        2 h, nor once the clock was put right (its wait was measured already), and said
        nothing; set forward a day, it counted 43,200 missed runs with no word of the
        clock (helper-93).

        Back, every job's next run moves back with the clock, so that runs go on at their
        intervals. Forward, each job is due at once: APScheduler runs it once and goes on
        at its interval from the new time, and the runs due in between are not counted
        missed (time did not pass for them). Moving the jobs forward instead raced with
        APScheduler, which may have rescheduled them already: they were moved a second
        time and ran nothing for the length of the step (helper-98). Called by a watcher
        every CLOCK_CHECK_SECONDS, and before every submission is counted."""
        with self._clock_lock:  # one look sees a step: the watcher's, or a submission's
            offset = self._wall() - self._monotonic()
            step, self._offset = offset - self._offset, offset
            if abs(step) < CLOCK_STEP_SECONDS:
                return 0.0
            shift = timedelta(seconds=step)
            for job_id in list(self._last_due):  # in place: the scheduler's thread reads it
                self._last_due[job_id] += shift
        by = format_duration(round(abs(step)))
        if step < 0:  # outside the lock: APScheduler's own lock is taken while it is held
            for job in self._scheduler.get_jobs():
                if job.next_run_time is not None:
                    job.modify(next_run_time=job.next_run_time + shift)
            log.warning(
                "the wall clock moved back by %s (set by hand or by NTP): every job's next "
                "run moved back with it, so runs go on at their intervals",
                by,
            )
        else:
            log.warning(
                "the wall clock moved forward by %s (set by hand or by NTP, or the process "
                "was suspended): each model runs at once, then at its interval; the runs "
                "due in between are not counted missed",
                by,
            )
        return step

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def runs_in_progress(self) -> int:
        """Jobs started (or queued for a worker) and not finished."""
        return self._executor.running()

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no job is running (True) or ``timeout`` seconds pass (False)."""
        return self._executor.wait_idle(timeout)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop firing; with ``wait`` let runs in progress finish, else leave them running."""
        self._stop.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
