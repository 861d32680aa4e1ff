"""Schedules: the interval that staleness alerts wait for, and the job defaults."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobSubmissionEvent

from monitor.scheduling import (
    Scheduler,
    cron_problem,
    crontab_trigger,
    run_times,
    schedule_gaps,
    schedule_interval_seconds,
)

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


# --------------------------------------------------------------------------- cron


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("*/5 * * * *", None),
        ("0 9 * * mon-fri", None),
        (
            "61 * * * *",
            "minute '61': Error validating expression '61': the last value (61) is higher "
            "than the maximum value (59)",
        ),
        ("a b c d e", 'minute \'a\': Unrecognized expression "a" for field "minute"'),
        ("*/0 * * * *", "minute '*/0': Increment must be higher than 0"),
        ("0 0 31 2 *", "it never fires"),
        ("* * *", "5 fields (minute hour day month day_of_week), not 3"),
        ("0 0 * * 7", None),
        (
            "0 0 * * 8",
            "day_of_week '8': '8' is not a day of the week (0 to 7, 0 and 7 Sunday, or sun to sat)",
        ),
        (
            "0 0 * * fri-mon",
            "day_of_week 'fri-mon': 'fri-mon': a range goes from the earlier day to the later one",
        ),
        ("0 0 * * 1/0", "day_of_week '1/0': '1/0': a step is a whole number of at least 1"),
    ],
)
def test_cron_problem_uses_the_scheduler_s_own_parser(expression: str, reason: str | None) -> None:
    assert cron_problem(expression, MONDAY) == reason


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("\u0663 * * * *", "minute '\u0663'"),
        ("*/\u0663 * * * *", "minute '*/\u0663'"),
        ("0 1-\uff13 * * *", "hour '1-\uff13'"),
        ("0 0 \u0661 * *", "day '\u0661'"),
        ("0 0 * \u0661,2 *", "month '\u0661,2'"),
    ],
)
def test_cron_fields_take_ascii_digits_only(expression: str, field: str) -> None:
    # APScheduler's \d read Arabic-Indic "\u0663" and full-width "\uff13" as 3: they passed
    # check-config and ran, where durations and versions refuse such digits.
    assert (
        cron_problem(expression, MONDAY) == f"{field}: digits 0-9, names and * , - / in ASCII only"
    )
    with pytest.raises(ValueError, match="in ASCII only"):
        crontab_trigger(expression)


def _fires(expression: str, count: int) -> list[str]:
    times, _ = run_times(None, expression, MONDAY.timestamp(), float("inf"), limit=count - 1)
    return [datetime.fromtimestamp(t, UTC).strftime("%a %d") for t in times]


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        # Crontab counts the week from Sunday (0 or 7): APScheduler's from_crontab, which
        # counts from Monday, ran "0" on Mondays and "1-5" from Tuesday to Saturday.
        ("0 0 * * 0", ["Sun 29", "Sun 06", "Sun 13"]),
        ("0 0 * * 7", ["Sun 29", "Sun 06", "Sun 13"]),
        ("0 0 * * 1-5", ["Tue 24", "Wed 25", "Thu 26", "Fri 27", "Mon 30", "Tue 01"]),
        ("0 0 * * */3", ["Wed 25", "Sat 28", "Sun 29", "Wed 02", "Sat 05", "Sun 06"]),
        ("0 0 * * 5-7", ["Fri 27", "Sat 28", "Sun 29", "Fri 04"]),
        ("0 0 * * SAT,sun", ["Sat 28", "Sun 29", "Sat 05"]),
        # Both days restricted: cron runs on either (the 1st, and every Thursday).
        ("0 0 1 * 4", ["Thu 26", "Tue 01", "Thu 03", "Thu 10"]),
        # One of them starting with "*": both must hold (Mondays on a 1st, 11th, 21st...).
        ("0 0 */10 * 1", ["Mon 21", "Mon 11"]),
    ],
)
def test_cron_days_are_crontab_s(expression: str, days: list[str]) -> None:
    assert _fires(expression, len(days)) == days


def test_schedule_gaps_of_a_cron_are_its_shortest_and_longest() -> None:
    assert schedule_gaps(None, "0,15 * * * *", MONDAY) == (900.0, 2700.0)
    assert schedule_gaps(60.0, None, MONDAY) == (60.0, 60.0)


# --------------------------------------------------------------------------- skipped runs


class Skips:
    """Records on_skipped reports."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, job_id: str, reason: str, count: int) -> None:
        with self.lock:
            self.seen.append((job_id, reason, count))

    def total(self, job_id: str, reason: str) -> int:
        with self.lock:
            return sum(n for j, r, n in self.seen if (j, r) == (job_id, reason))


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_a_run_due_while_the_previous_one_runs_is_skipped_as_still_running() -> None:
    skips = Skips()
    release = threading.Event()
    s = Scheduler(max_workers=2, on_skipped=skips)
    s.add("slow", lambda: release.wait(5), interval=0.1)
    s.start()
    try:
        assert wait_until(lambda: skips.total("slow", "still_running") >= 3)
    finally:
        release.set()
        s.shutdown(wait=True)
    assert skips.total("slow", "missed") == 0


def first_run_takes(seconds: float) -> tuple[list[float], Any]:
    """A job whose first run takes ``seconds`` and later ones none; and its start times."""
    starts: list[float] = []

    def job() -> None:
        starts.append(time.monotonic())
        if len(starts) == 1:
            time.sleep(seconds)

    return starts, job


def test_a_run_due_while_the_previous_one_runs_starts_when_it_ends_within_its_grace() -> None:
    # The first run overruns the 0.5 s interval by 0.3 s (a retrain); the next waits for
    # it instead of being dropped, and starts 0.3 s late, within its 1 s grace.
    skips = Skips()
    starts, job = first_run_takes(0.8)
    s = Scheduler(max_workers=2, on_skipped=skips)
    s.add("j", job, interval=0.5, misfire_grace=1)
    s.start()
    try:
        assert wait_until(lambda: len(starts) >= 3)
    finally:
        s.shutdown(wait=True)
    assert 0.75 <= starts[1] - starts[0] < 1.0
    assert skips.seen == []


def test_a_run_held_past_its_grace_behind_the_previous_one_is_still_running() -> None:
    # The first run takes 2.5 s on a 1 s interval with a 1 s grace: the run due at 1 s is
    # held, the one due at 2 s finds two instances (still_running at once), and at 2.5 s
    # the held one is 1.5 s late, past its grace (still_running); the run due at 3 s goes.
    skips = Skips()
    starts, job = first_run_takes(2.5)
    s = Scheduler(max_workers=2, on_skipped=skips)
    s.add("j", job, interval=1, misfire_grace=1)
    s.start()
    try:
        assert wait_until(lambda: len(starts) >= 2)
    finally:
        s.shutdown(wait=True)
    assert skips.total("j", "still_running") == 2
    assert skips.total("j", "missed") == 0
    assert 2.9 <= starts[1] - starts[0] < 3.5


def behind_a_hog(
    hog_seconds: float, until: Callable[[Skips, list[str]], bool], **late: Any
) -> tuple[Skips, list[str]]:
    """One worker, held ``hog_seconds`` by "hog"'s run, and "late" scheduled as ``late``
    says behind it, until ``until(skips, ran)``: the skips, and the jobs that ran."""
    skips = Skips()
    ran: list[str] = []
    s = Scheduler(max_workers=1, on_skipped=skips)
    s.add("hog", lambda: (ran.append("hog"), time.sleep(hog_seconds)), interval=3600)
    s.add("late", lambda: ran.append("late"), **late)
    s.start()
    try:
        assert wait_until(lambda: until(skips, ran))
    finally:
        s.shutdown(wait=True)
    return skips, ran


def test_a_run_that_waits_past_its_grace_for_a_worker_is_missed() -> None:
    # One worker, held for 2.5 s by "hog": "late" waits in the queue past its 1 s grace.
    skips, ran = behind_a_hog(
        2.5,
        lambda skips, _: skips.total("late", "missed") == 1,
        interval=3600,
        misfire_grace=1,
        start_in=0.2,
    )
    assert ran == ["hog"]  # the late run never started
    assert skips.total("hog", "missed") == skips.total("late", "still_running") == 0


def test_runs_due_while_the_previous_one_waits_for_a_worker_are_missed() -> None:
    # helper-94: a model queued behind other models' slow first runs had its due runs
    # counted still_running ("its previous run had not ended"), and had never run.
    skips, _ = behind_a_hog(
        2.0, lambda _, ran: "late" in ran, interval=0.3, misfire_grace=60, start_in=0.2
    )
    assert skips.total("late", "missed") >= 3
    assert skips.total("late", "still_running") == 0


def test_a_run_held_behind_one_that_never_ran_is_missed() -> None:
    # helper-107: a model queued behind a busy worker had its queued run dropped past its
    # grace (missed), then the run held behind it dropped as still_running ("its previous
    # run had not ended"), although nothing of it had run. One worker, held 3.5 s by
    # "hog": "late" is queued at 0.2 s, the run due at 1.2 s is held behind it, and at
    # 3.5 s both are past their 1 s grace (so too if "late" is added a second later).
    skips, _ = behind_a_hog(
        3.5, lambda _, ran: "late" in ran, interval=1, misfire_grace=1, start_in=0.2
    )
    assert skips.total("late", "still_running") == 0, skips.seen
    assert skips.total("late", "missed") >= 3, skips.seen


def test_run_times_folded_away_by_coalescing_are_counted_as_missed() -> None:
    skips = Skips()
    s = Scheduler(max_workers=1, on_skipped=skips)
    s.add("m", lambda: None, interval=10, start_in=3600)  # never due during the test
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    s._event(JobSubmissionEvent(EVENT_JOB_SUBMITTED, "m", "default", [t0]))
    assert skips.seen == []
    # The scheduler woke 50 s late: it hands over only the latest of five due times.
    s._event(JobSubmissionEvent(EVENT_JOB_SUBMITTED, "m", "default", [t0 + timedelta(seconds=50)]))
    assert skips.seen == [("m", "missed", 4)]
    late = t0 + timedelta(seconds=70)
    s._executor._started.add("m")  # its previous run going
    s._event(JobSubmissionEvent(EVENT_JOB_MAX_INSTANCES, "m", "default", [late]))
    assert skips.seen[1:] == [("m", "missed", 1), ("m", "still_running", 1)]
    s._executor._started.discard("m")  # its previous run waiting for a worker
    later = late + timedelta(seconds=10)
    s._event(JobSubmissionEvent(EVENT_JOB_MAX_INSTANCES, "m", "default", [later]))
    assert skips.seen[3:] == [("m", "missed", 1)]


def test_first_runs_start_at_their_offset_and_keep_it() -> None:
    s = Scheduler(max_workers=1)
    before = datetime.now(UTC)
    s.add("a", lambda: None, interval=60, start_in=0)
    s.add("b", lambda: None, interval=60, start_in=30)
    first_b = s._scheduler.get_job("b").next_run_time
    assert timedelta(seconds=29) < first_b - before < timedelta(seconds=31)
    # On a whole second, as a backtest's runs are.
    assert first_b.microsecond == 0 and s._scheduler.get_job("a").next_run_time.microsecond == 0
    trigger = s._scheduler.get_job("b").trigger
    assert trigger.get_next_fire_time(first_b, first_b) == first_b + timedelta(seconds=60)


def test_a_stuck_run_does_not_hold_the_stop_beyond_the_wait() -> None:
    stuck = threading.Event()
    started = threading.Event()
    s = Scheduler(max_workers=1)
    s.add("stuck", lambda: (started.set(), stuck.wait(30)), interval=3600)
    s.start()
    try:
        assert started.wait(10)
        s.shutdown(wait=False)
        assert s.wait_idle(0.2) is False and s.runs_in_progress() == 1
        # The worker is a daemon thread: the interpreter will not wait for it at exit.
        [worker] = [t for t in threading.enumerate() if t.name == "run-0" and t.is_alive()]
        assert worker.daemon
    finally:
        stuck.set()
    assert s.wait_idle(10) is True and s.runs_in_progress() == 0


def test_the_schedule_moves_with_a_step_of_the_wall_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # helper-93: set back 2 h, the daemon ran nothing for 2 h, nor once the clock was put
    # right, and said nothing; set forward a day, it counted 43,200 missed runs unexplained.
    wall, mono = [time.time()], [100.0]
    s = Scheduler(max_workers=1, wall=lambda: wall[0], monotonic=lambda: mono[0])
    s.add("m", lambda: None, interval=3600, start_in=10_000)  # still ahead 2 h earlier
    s.start()
    try:
        [job] = s._scheduler.get_jobs()
        before = job.next_run_time
        caplog.set_level(logging.WARNING, logger="monitor.scheduling")
        wall[0] += 1.0  # a second of both clocks: no step
        mono[0] += 1.0
        assert s.check_clock() == 0.0
        wall[0] -= 7200  # NTP steps the wall clock back 2 h
        assert s.check_clock() == -7200
        [job] = s._scheduler.get_jobs()
        assert job.next_run_time == before - timedelta(hours=2)
        wall[0] += 7200  # put right
        assert s.check_clock() == 7200
        [job] = s._scheduler.get_jobs()
        # Left for APScheduler: moved too, it was moved twice when APScheduler had
        # rescheduled it first, and ran nothing for the length of the step (helper-98).
        assert job.next_run_time == before - timedelta(hours=2)
    finally:
        s.shutdown(wait=True)
    assert caplog.messages == [
        "the wall clock moved back by 2h (set by hand or by NTP): every job's next run "
        "moved back with it, so runs go on at their intervals",
        "the wall clock moved forward by 2h (set by hand or by NTP, or the process was "
        "suspended): each model runs at once, then at its interval; the runs due in "
        "between are not counted missed",
    ]


def test_the_runs_due_across_a_forward_step_are_not_counted_missed() -> None:
    # A day forward: APScheduler hands over one run, whose predecessor was due a day of
    # runs earlier; those were counted missed (43,200 at a 2 s interval; helper-93).
    skips = Skips()
    wall, mono = [time.time()], [100.0]
    s = Scheduler(max_workers=1, on_skipped=skips, wall=lambda: wall[0], monotonic=lambda: mono[0])
    s.add("m", lambda: None, interval=10, start_in=3600)  # never due during the test
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    s._event(JobSubmissionEvent(EVENT_JOB_SUBMITTED, "m", "default", [t0]))
    wall[0] += 86400  # the step comes before the watcher's look: the submission sees it
    s._event(JobSubmissionEvent(EVENT_JOB_SUBMITTED, "m", "default", [t0 + timedelta(days=1)]))
    assert skips.seen == []
    # A run late for other reasons is still counted: 30 s later, two runs folded away.
    s._event(
        JobSubmissionEvent(
            EVENT_JOB_SUBMITTED, "m", "default", [t0 + timedelta(days=1, seconds=30)]
        )
    )
    assert skips.seen == [("m", "missed", 2)]


class Training:
    """First runs that train for ``seconds``, counting how many go at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.going = self.most = self.done = 0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.going += 1
            self.most = max(self.most, self.going)
        time.sleep(self.seconds)
        with self.lock:
            self.going -= 1
            self.done += 1


def test_a_trained_models_runs_go_before_other_models_first_runs() -> None:
    # helper-107: a fleet's first runs (reference training, 15 to 80 s each) held both
    # workers for minutes, and a trained model's 1-minute runs queued behind them all were
    # skipped as missed. Now they go first, and first runs leave it a worker.
    skips = Skips()
    training = Training(1.0)
    starts: list[float] = []
    s = Scheduler(max_workers=2, on_skipped=skips, first_run=lambda job: job.startswith("new"))
    s.add("trained", lambda: starts.append(time.monotonic()), interval=1, misfire_grace=1)
    for i in range(6):  # added to the running daemon's file: after the trained model
        s.add(f"new-{i}", training, interval=3600, start_in=0.5)
    s.start()
    try:
        assert wait_until(lambda: training.done == 6, timeout=20)
    finally:
        s.shutdown(wait=True)
    assert training.most == 1  # all workers but one, once a trained model runs
    assert skips.total("trained", "missed") == skips.total("trained", "still_running") == 0
    assert len(starts) >= 5


def test_a_fleet_with_no_trained_model_trains_on_every_worker() -> None:
    # Nothing to keep a worker for: the first runs of a fresh fleet take both.
    training = Training(0.5)
    s = Scheduler(max_workers=2, first_run=lambda job: True)
    for i in range(4):
        s.add(f"new-{i}", training, interval=3600, start_in=0)
    s.start()
    try:
        assert wait_until(lambda: training.done == 4)
    finally:
        s.shutdown(wait=True)
    assert training.most == 2
