"""One window, start to end, as three steps with typed records between them.

measure (pure: validate, scale, score the live model, train a candidate, compare)
-> decide (pure: the retrain policy) -> commit (the store and the history, through
ports). The pipeline never imports a source, a store, the scheduler, the exporter or
an HTTP client: they come in as arguments that meet ``monitor.ports``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

from monitor.config import ModelSettings
from monitor.core import drift, kmeans
from monitor.durations import format_rough
from monitor.errors import NoDataError, RunCancelledError
from monitor.pipeline.commit import commit, store_first
from monitor.pipeline.decide import decide, drift_reasons, phase_gaps
from monitor.pipeline.diff import SnapshotDiff, diff_snapshots
from monitor.pipeline.measure import RunContext, measure, measure_first, retrain, train_first
from monitor.pipeline.period import REFRESH_SHARE, train_on_period
from monitor.pipeline.phases import Phases
from monitor.pipeline.reference import Progress, check_period, read_reference
from monitor.pipeline.scoring import ScaleBuffer, schema_hash, score, validate_window
from monitor.pipeline.train import train_reference
from monitor.ports import Engine, History, SnapshotStore, TelemetrySource
from monitor.records import Decision, Evaluation, Measurement, Pending, Snapshot, Window
from monitor.timestamps import ahead, format_time, same_clock

__all__ = [
    "Assess",
    "Assessment",
    "RunContext",
    "ScaleBuffer",
    "SnapshotDiff",
    "assess",
    "decide",
    "diff_snapshots",
    "drift_reasons",
    "evaluate",
    "schema_hash",
    "score",
    "train_reference",
    "validate_window",
    "warm_kernels",
]

log = logging.getLogger(__name__)

#: The models warned that their row times had no offset (``_warn_naive``): once each
#: per process, not at every run.
_NAIVE_WARNED: set[str] = set()
#: The (model, version) warned that it was created ahead of the clock (``_warn_ahead``).
_AHEAD_WARNED: set[tuple[str, int]] = set()


class Assessment(NamedTuple):
    """What the middle of a run found and wants: the measurement, the decision on it,
    and the snapshot that decision trained (None when it trains none)."""

    measurement: Measurement
    decision: Decision
    new: Snapshot | None


def assess(
    window: Window,
    live: Snapshot,
    model: ModelSettings,
    pending: Pending | None,
    phases: Phases,
    ctx: RunContext,
) -> Assessment:
    """measure -> decide -> retrain for a model that has a live snapshot. Pure, so it
    may run in another process (``monitor.workers``).

    The live version is scored, its candidate trained and a promotion retrained in the
    metric it was trained in, as with its k: a configured metric it was not trained in
    scored a euclidean model's centres in cosine space, paged on every SLI and, under
    on-drift, replaced the model unasked (helper-93). Start-up warns of the change
    (``train.trained_otherwise``); ``snapshots retrain`` applies it."""
    model = replace(model, metric=live.metric)
    m = measure(window, live, model, phases, ctx)
    decision = decide(m, model, now=ctx.now, pending=pending)
    return Assessment(m, decision, retrain(m, decision, model, phases, ctx))


# Where ``assess`` runs: ``assess`` itself, or ``RunWorkers.assess`` bound to a run.
Assess = Callable[[Window, Snapshot, ModelSettings, Pending | None, Phases, RunContext], Assessment]


def evaluate(
    model: ModelSettings,
    source: TelemetrySource,
    store: SnapshotStore,
    history: History,
    now: float,
    *,
    package_version: str = "",
    working_memory_mib: float = 64.0,
    should_stop: Callable[[], bool] | None = None,
    engine: Engine | None = None,
    n_threads: int = 1,
    buffer: ScaleBuffer | None = None,
    assess_with: Assess = assess,
    progress: Progress | None = None,
) -> tuple[Evaluation, Snapshot]:
    """Run one window for one model; return the evaluation and the snapshot live after it.

    ``engine`` scores the window and trains the candidate (default: in this process, on
    ``n_threads`` threads); ``buffer``, the model's own, keeps the memory of its scaled
    window from one run to the next; ``assess_with`` computes the middle of a run with a
    live model (a first run, which trains on the reference period, stays here);
    ``progress`` hears what a first run is doing (its reads, then its training), which
    may take minutes.
    """
    phases = Phases(should_stop)
    nothing: NoDataError | None = None
    with phases.phase("read"):
        try:
            window: Window | None = source.read_window(now - model.window, now)
        except NoDataError as exc:  # the source answered it holds nothing for the window
            window, nothing = None, exc
    if window is not None:
        _warn_naive(model, window)
    with phases.phase("load"):
        live = _live(store, model.name)
        pending = _pending(store, model) if live is not None else None
    if live is not None:
        _warn_ahead(model.name, live, now)
    if window is None:
        assert nothing is not None
        if live is None:  # a first run: its period says whether the data ever began
            with phases.phase("reference"):
                check_period(source, model, now, engine)
        raise nothing
    ctx = RunContext(now, package_version, working_memory_mib, engine, n_threads, buffer)
    if live is None:  # the first model is trained on the reference period
        m = _first_run(window, model, source, store, history, phases, ctx, progress)
        decision = decide(m, model, now=now, pending=None)
        return commit(m, decision, None, store, history, phases, now=now)
    m, decision, new = assess_with(window, live, model, pending, phases, ctx)
    if new is not None:
        new, decision = train_on_period(m, decision, new, model, source, phases, ctx, history)
    return commit(m, decision, new, store, history, phases, now=now)


def _first_run(
    window: Window,
    model: ModelSettings,
    source: TelemetrySource,
    store: SnapshotStore,
    history: History,
    phases: Phases,
    ctx: RunContext,
    progress: Progress | None = None,
) -> Measurement:
    """Train the first model on the reference period and score the window with it.

    Once that model is trained the run is not abandoned: asked to stop then, it stores
    the model live and skips the scoring (RunCancelledError); asked later, it finishes
    (scoring a window takes seconds, the training minutes). A stop that threw the
    trained model away made the restart train it all again.
    """
    with phases.phase("reference"):
        reference = read_reference(source, model, ctx.now, window, ctx.engine, progress)
    # A first run on large windows trains for minutes with nothing said: a tester's
    # 1M-row model showed no sign of life for 5 minutes (helper-86).
    read = (
        f"{reference.n_windows} reference window(s) read, {int(reference.window_rows.sum()):,} rows"
    )
    log.info(
        "model=%s first run: %s; training and calibrating the first model (slow on large "
        "windows; no deadline)",
        model.name,
        read,
    )
    if progress is not None:
        progress(f"{read}; training the first model")
    X, first = train_first(window, model, phases, ctx, reference)
    if phases.stopping():
        stored = store_first(first, store, history)
        raise RunCancelledError(
            f"first run stopped once its model was trained: stored as live "
            f"v{stored.version}, its window not scored; the daemon is stopping"
        )
    phases.finish()
    m = measure_first(window, X, first, model, phases, ctx, len(reference.skipped))
    if first.profile is not None and (gaps := phase_gaps(first.profile)):
        log.warning("model=%s reference period: %s", model.name, gaps)
    return m


def _warn_naive(model: ModelSettings, window: Window) -> None:
    """A WARNING, once per model and process, when the window's row times had no offset
    (read as UTC: docs/sources.md) and the model's phases follow another clock. Local
    times without an offset under timezone: Europe/Berlin moved the phases by an hour at
    each change of daylight saving time, the false alarms the option exists to prevent,
    and nothing said so (helper-111)."""
    if not window.naive_times or model.name in _NAIVE_WARNED or same_clock(model.timezone, "UTC"):
        return
    _NAIVE_WARNED.add(model.name)
    log.warning(
        "model=%s: its times (of rows or file names) are written without a UTC offset and "
        "read as UTC, while its seasonal phases follow timezone: %s; if they are local "
        "times, the phases move by an hour at each change of daylight saving time: write "
        "the times with their offset (docs/sources.md, on timezone: UTC instead)",
        model.name,
        model.timezone,
    )


def _warn_ahead(name: str, live: Snapshot, now: float) -> None:
    """A WARNING, once per version and process, when the live version was created more
    than FUTURE_SKEW ahead of the clock (the wall clock stepped back since): its age is
    unknown (t13 F1)."""
    by = ahead(live.created_at, now)
    if not by or (name, live.version) in _AHEAD_WARNED:
        return
    _AHEAD_WARNED.add((name, live.version))
    log.warning(
        "model=%s: live v%d was created at %s, %s ahead of the clock (the wall clock "
        "stepped back since): its age is unknown; KMeansModelStale fires until it is "
        "retrained or the clock passes that time (docs/configuration.md, retrain)",
        name,
        live.version,
        format_time(live.created_at),
        format_rough(by),
    )


def _pending(store: SnapshotStore, model: ModelSettings) -> Pending | None:
    """The version awaiting approval, whether ``snapshots retrain`` stored it, and until
    when a run's is kept (one that does not load is not: a run's candidate replaces it,
    as before)."""
    version = store.pending_version(model.name)
    if version is None:
        return None
    try:
        snap = store.load(model.name, version)
    except (OSError, ValueError, KeyError):  # StoreError, a corrupt or missing version
        return Pending(version)
    if snap.reason == "manual":
        return Pending(version, manual=True)
    span = snap.window_end - snap.window_start
    if span <= model.window:  # trained on one window: each drifting run refreshes it
        return Pending(version)
    # Refreshed once the data since hold a tenth of its period: until then a new one
    # would differ from it by less, and training it costs a first run's read at every
    # drifting run (docs/slis.md, "Retrained models").
    until = snap.window_end + REFRESH_SHARE * span
    return Pending(version, trained_to=snap.window_end, fresh_until=until)


def _live(store: SnapshotStore, model: str) -> Snapshot | None:
    """The live version; one that does not load is an error naming the rollback that
    repairs it (loaded by its number, it said only what was corrupt; helper-93)."""
    return None if store.live_version(model) is None else store.load(model)


def warm_kernels() -> None:
    """Compile (or load from numba's cache) the compiled kernels a run uses (k-means and
    the PSI count), so that no model's first run pays for it: about 2.5 s for the PSI
    count alone in a cold process."""
    kmeans.warm_up()
    drift.warm_up()
