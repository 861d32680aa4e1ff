"""Replay a model over a stretch of history through the same ``evaluate`` the daemon runs.

One run per scheduled time, with time taken from the data: the run at ``t`` reads the
window ``[t - window, t)`` and is evaluated with ``now = t``, so seeds, reference
periods and snapshot times are what the daemon would have used at ``t``. The caller
passes the run times (the composition root computes them from the schedule), the
stores (in-memory ones, so nothing reaches the live store) and the ``for:`` of each
alert; a run that fails becomes a ``RunFailure`` classified by the caller's rule.
What each run measured then goes through ``monitor.alerting``: the conditions that
held, the alerts firing, flags and pages.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor import alerting
from monitor.config import ModelSettings
from monitor.errors import AwaitingReferenceError
from monitor.logs import log_run_failure
from monitor.pipeline import evaluate
from monitor.ports import Engine, History, SnapshotStore, TelemetrySource
from monitor.records import Evaluation, RunFailure
from monitor.timestamps import format_time

log = logging.getLogger(__name__)

__all__ = ["Replay", "ReplayInterrupted", "ReplayWindow", "judge", "replay"]

Result = Evaluation | RunFailure


@dataclass(frozen=True)
class ReplayWindow:
    """One replayed run: its window, what it returned and what it would have raised."""

    index: int
    start: float
    end: float  # the run's time
    result: Result
    held: tuple[alerting.Condition, ...]  # conditions that held on this run
    firing: tuple[alerting.Condition, ...]  # alerts firing before the next run
    flag: bool
    page: bool
    flagged_runs: int  # as the daemon's kmeans_flagged_runs after this run

    @property
    def failed(self) -> bool:
        """Whether the run failed."""
        return isinstance(self.result, RunFailure)


@dataclass(frozen=True)
class Replay:
    """Every replayed run of one model, oldest first: first window start to last run time."""

    model: str
    start: float
    end: float
    windows: tuple[ReplayWindow, ...]
    next_time: float  # when the run after the last would be: its values stand until then

    @property
    def flags(self) -> int:
        """Runs on which any alert condition held."""
        return sum(w.flag for w in self.windows)

    @property
    def pages(self) -> int:
        """Pages: runs where an alert starts firing (``alerting.pages``)."""
        return sum(w.page for w in self.windows)

    @property
    def failures(self) -> int:
        """Runs that failed."""
        return sum(w.failed for w in self.windows)

    def alerts(self) -> dict[str, int]:
        """Alert name -> alert instances (severity, feature) that started firing, by name."""
        started: Counter[str] = Counter()
        before: set[tuple[str, str, str | None]] = set()
        for w in self.windows:
            now = {c.key for c in w.firing}
            started.update(key[0] for key in now - before)
            before = now
        return dict(sorted(started.items()))


def replay(
    model: ModelSettings,
    source: TelemetrySource,
    store: SnapshotStore,
    history: History,
    times: Sequence[float],
    *,
    next_time: float,
    durations: Mapping[tuple[str, str], float],
    classify: Callable[[BaseException], str],
    package_version: str = "",
    working_memory_mib: float = 64.0,
    engine: Engine | None = None,
    on_result: Callable[[int, Result], None] | None = None,
    on_step: Callable[[int, str], None] | None = None,
) -> Replay:
    """Run ``model`` once per time in ``times`` (ascending) and judge the runs.

    ``next_time`` is when the run after the last would be (the last run's values stand
    until then); ``durations`` the ``for:`` per (alert, severity); ``classify`` turns an
    exception of a run into its bounded failure reason; ``engine`` computes the runs as
    the daemon's does for the model (``engine: spark``); ``on_result(i, result)`` is
    called after each run (progress), ``on_step(i, text)`` during run ``i`` when it is a
    first run, which reads the reference period and trains (``evaluate``'s ``progress``).
    """
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise ValueError("replay: run times must be strictly ascending")
    results: list[Result] = []
    at = functools.partial(
        evaluate,
        model,
        source,
        store,
        history,
        package_version=package_version,
        working_memory_mib=working_memory_mib,
        engine=engine,
    )
    try:
        for i, t in enumerate(times):
            step = None if on_step is None else functools.partial(on_step, i)
            result = _run(model, history, t, classify, functools.partial(at, progress=step))
            results.append(result)
            if on_result is not None:
                on_result(i, result)
    except KeyboardInterrupt as exc:
        done = len(results)
        upto = times[done] if done < len(times) else next_time
        partial = judge(model, times[:done], results, next_time=upto, durations=durations)
        raise ReplayInterrupted(partial, len(times)) from exc
    return judge(model, times, results, next_time=next_time, durations=durations)


class ReplayInterrupted(KeyboardInterrupt):
    """An interrupt (SIGINT, SIGTERM) during a replay, with the runs that had finished:
    ``partial`` judges them (none, when the first had not), of ``total`` runs due."""

    def __init__(self, partial: Replay, total: int) -> None:
        super().__init__(f"{len(partial.windows)} of {total} runs")
        self.partial = partial
        self.total = total


def _run(
    model: ModelSettings,
    history: History,
    t: float,
    classify: Callable[[BaseException], str],
    evaluate_at: Callable[[float], tuple[Evaluation, Any]],
) -> Result:
    """One run at ``t`` (``evaluate_at(t)``); a failure is recorded in ``history`` and
    returned, as the runner does."""
    try:
        evaluation, _ = evaluate_at(t)
    except Exception as exc:  # every failure of a run is a result of the replay
        label = f"[{format_time(t - model.window)}, {format_time(t)})"
        reason = classify(exc)
        # The replay's output shows every failure; only a bug's traceback goes to the log.
        message = log_run_failure(log, model.name, reason, exc, level=logging.DEBUG)
        ready_at = exc.ready_at if isinstance(exc, AwaitingReferenceError) else None
        failure = RunFailure(model.name, reason, message, t, window_label=label, ready_at=ready_at)
        history.append_failure(failure)
        return failure
    return evaluation


def judge(
    model: ModelSettings,
    times: Sequence[float],
    results: Sequence[Result],
    *,
    next_time: float,
    durations: Mapping[tuple[str, str], float],
) -> Replay:
    """The conditions, firing alerts, flags, pages and flagged runs of runs at ``times``."""
    held = [alerting.held_conditions(r) for r in results]
    flagged = alerting.flags(held)
    to_fire = model.thresholds.flagged_runs_to_fire
    fired = alerting.firing(times, held, durations, next_time=next_time, flagged_to_fire=to_fire)
    counted = alerting.flagged_runs(held)
    paged = alerting.pages(counted, fired, to_fire)
    windows = tuple(
        ReplayWindow(i, t - model.window, t, r, h, f, fl, p, n)
        for i, (t, r, h, f, fl, p, n) in enumerate(
            zip(times, results, held, fired, flagged, paged, counted, strict=True)
        )
    )
    if not times:
        # No run finished: the range replayed is the first run's window (whose start is
        # --from), not that run's time twice (helper-102).
        return Replay(model.name, next_time - model.window, next_time, (), next_time)
    return Replay(model.name, times[0] - model.window, times[-1], windows, next_time)
