"""What a run's new version is trained on: a period as long as the reference, ending at
the run, and never one that spans a drift (docs/slis.md, "Retrained models").

A version trained on a period that holds both sides of a change is calibrated on both:
its null holds the change, its thresholds widen to it, and it stays blind to it. After a
step change under ``on-drift``, a tester's model promoted on a day of 14 windows before
the step and 10 after had feature-PSI and centroid-drift thresholds 3.8 and 4.9 times
the first model's, and kept itself for 62 windows with nothing flagged while its
afternoon windows read a PSI of 7 (helper-117). So a run that drifts trains a new version
on the windows since the drift began: a pending candidate at once, a promotion once the
drift has lasted the whole period (until then the live version stays, and flags).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from monitor import slis as S
from monitor.config import SEASON_PERIODS, ModelSettings, ReferenceSettings
from monitor.core.seasonal import phase_index
from monitor.durations import format_duration
from monitor.errors import EngineError, InvalidInputError, SourceError, TransientSourceError
from monitor.pipeline.decide import drift_reasons, phase_gaps
from monitor.pipeline.measure import RunContext, retrain
from monitor.pipeline.phases import Phases
from monitor.pipeline.reference import period_windows, read_reference
from monitor.ports import History, TelemetrySource
from monitor.records import Decision, Evaluation, Measurement, ReferencePeriod, Snapshot
from monitor.timestamps import format_time, parse_time, wall_seconds

__all__ = ["REFRESH_SHARE", "drift_ended", "put_off_of", "train_on_period"]

log = logging.getLogger(__name__)

#: How many times as far past its thresholds a drift must have gone, since the start of
#: the period a promotion would be trained on, to be taken as still growing (``_growing``):
#: a step's runs scatter well within it, a ramp's go past it.
GROWTH = 1.5

#: The share of the reference period that a quiet stretch between drifting runs must
#: exceed to end a drift (``_drift_began``); and that new data must make up before a
#: drifting run replaces a run's pending candidate trained on a period (``_pending``).
REFRESH_SHARE = 0.1


def _drift_began(
    past: Sequence[Evaluation], model: ModelSettings, m: Measurement, now: float
) -> float | None:
    """Where the drift this run is in began: the start of the window of the earliest of
    the drifting runs up to this one, through quiet stretches of at most a tenth of the
    reference period; None when this run does not drift. Runs that scored another
    version than the live one, or promoted, end the walk, as does the start of the
    reference period.

    A seasonal model's quiet runs at phases of the cycle where the drift never showed
    say nothing of it: a change seen only at the hours a regime is busy was quiet 12
    hours a night, each morning began a new drift that never lasted the period, and the
    model paged every day without end (helper-124). Across such a stretch an earlier
    stretch of drifting runs (``_stretches``) is the same drift when it showed at half
    or more of the phases the drift since has shown at: the same hours the day before,
    not an incident at other hours, which would be trained on."""
    assert m.live is not None
    if not drift_reasons(m.slis, m.thresholds):
        return None
    stretches = _stretches(past, model, m, now)
    began, phases = stretches[0]
    for start, shown in stretches[1:]:
        if 2 * len(shown & phases) < len(phases):
            break
        began, phases = start, phases | shown
    return began


def _stretches(
    past: Sequence[Evaluation], model: ModelSettings, m: Measurement, now: float
) -> list[tuple[float, set[int]]]:
    """The stretches of drifting runs of the live version up to this drifting run,
    newest first, each its earliest window's start and the phases of the cycle it showed
    at; apart where quiet runs at phases no stretch showed at last longer than a tenth
    of the period. A quiet stretch as long at a phase one did show at ends the walk."""
    assert m.live is not None
    span = model.reference.window
    phase_of = _phases(m.live, model)
    at = phase_of([(e.window_start + e.evaluated_at) / 2 for e in past])
    stretches = [(now - model.window, set(phase_of([now - model.window / 2])))]
    shown = set(stretches[0][1])
    last_drift, apart = now, False
    for e, phase in zip(reversed(past), reversed(at), strict=True):  # newest first
        if e.live_version != m.live.version or e.promoted:
            break
        if _drifted(e):
            if apart:
                stretches.append((e.window_start, set()))
            stretches[-1] = (min(stretches[-1][0], e.window_start), stretches[-1][1] | {phase})
            shown.add(phase)
            last_drift, apart = e.evaluated_at, False
        elif last_drift - e.evaluated_at > REFRESH_SHARE * span:
            if phase in shown:
                break
            apart = True
    return stretches


def _phases(live: Snapshot, model: ModelSettings) -> Callable[[list[float]], list[int]]:
    """The phase of the cycle of each time (a window's midpoint), as the live version's
    profile cuts it (``_lost_phases``); every time one phase when the model is not
    seasonal, so that every quiet run counts."""
    profile = live.profile
    if profile is None or model.seasonality not in SEASON_PERIODS:
        return lambda times: [0] * len(times)
    n = profile.label_counts.shape[0]

    def phase_of(times: list[float]) -> list[int]:
        wall = wall_seconds(np.asarray(times, dtype=np.float64), model.timezone)
        return [int(i) for i in phase_index(wall, profile.period, n)]

    return phase_of


def _drifted(e: Evaluation) -> bool:
    """Whether a past run drifted past a retrain trigger (``drift_reasons`` on what it
    stored; an SLI it did not store counts as not past)."""
    slis = {t.sli: float(e.slis.get(t.sli, 0.0)) for t in S.RETRAIN_TRIGGERS}
    return bool(drift_reasons(slis, e.thresholds))


def drift_ended(runs: Sequence[Evaluation], candidate: int) -> tuple[float, int] | None:
    """When the drift that a run stored the pending ``candidate`` in has ended, from a
    model's ``runs`` (oldest first): the first of the quiet runs (no retrain trigger past
    its threshold) that the runs after it end with, and how many there are. None while
    the latest of them drifts, when none came yet, when one of them scored another
    version (the live one changed since), or when ``runs`` hold no drifting run that
    stored it (``snapshots retrain`` did).

    Under ``manual`` a candidate trained on an incident stays approvable after the
    incident has passed, and nothing said so: approved then, the model takes the
    incident for the normal."""
    stored = next(
        (i for i in range(len(runs) - 1, -1, -1) if runs[i].candidate_version == candidate),
        None,
    )
    if stored is None or runs[stored].promoted or not _drifted(runs[stored]):
        return None
    after = runs[stored + 1 :]
    if any(e.live_version != runs[stored].live_version for e in after):
        return None
    quiet = 0
    while quiet < len(after) and not _drifted(after[-1 - quiet]):
        quiet += 1
    return (after[-quiet].evaluated_at, quiet) if quiet else None


def train_on_period(
    m: Measurement,
    decision: Decision,
    new: Snapshot,
    model: ModelSettings,
    source: TelemetrySource,
    phases: Phases,
    ctx: RunContext,
    history: History,
) -> tuple[Snapshot | None, Decision]:
    """The new version ``decision`` trains, trained again on a period ending at the run:
    as long as the reference, or the windows since the drift began (``_drift_began``,
    from ``history``).

    Trained on the run's window alone, a new version knew one window of the cycle and
    nothing of the spread between windows: a quiet seasonal model flagged 162 of the 168
    windows after its first scheduled promotion. A promotion in a drift shorter than the
    period is put off (None: the live version stays), as is one whose period lacks phases
    of the cycle the live version holds. A period that cannot be read leaves the version
    trained on the window, and the decision says so; one whose window the source failed
    to read (``TransientSourceError``) trains none: the live version stays, and the next
    run reads the period again."""
    span = model.reference.window  # a {from, to} range's length too (config._reference)
    if span <= model.window:
        return new, decision  # the period is the window
    # The runs of the period, newest last: where a drift began, and whether it ended or grows.
    past = history.since(model.name, ctx.now - span, ctx.now).evaluations
    began = _drift_began(past, model, m, ctx.now)
    if decision.action == "promote":
        if (kept := _promotion_kept(past, model, m, decision, began, ctx.now)) is not None:
            return None, kept
    elif began is not None and began > ctx.now - span + 1e-6:
        span = max(ctx.now - began, model.window)  # a pending candidate: the drift's own
        if span <= model.window:
            return new, replace(decision, text=decision.text + "; trained on this window")
    rolling = replace(model, metric=new.metric, reference=ReferenceSettings(window=span))
    try:
        # Not "reference": that phase marks a first run, whose time is its own gauge.
        with phases.phase("period"):
            period = read_reference(source, rolling, ctx.now, m.window, ctx.engine)
    except TransientSourceError as exc:
        return None, _not_trained(decision, m, exc, model)
    except (InvalidInputError, SourceError, EngineError) as exc:
        log.warning(
            "model=%s the new version is trained on the run's window alone: its reference "
            "period could not be read (%s)",
            model.name,
            exc,
        )
        why = re.split(r": |; ", str(exc), maxsplit=1)[0]  # the log has the whole of it
        text = f"; trained on this window alone, its period unreadable ({why})"
        return new, replace(decision, text=decision.text + text)
    lost = _lost_phases(m.live, period, model) if decision.action == "promote" else ""
    if lost:  # before training: a day of such runs trained a version each for nothing
        return None, _kept_for_phases(decision, m, lost, model)
    log.info(
        "model=%s training the new version on %s to the run: %d window(s), %s rows",
        model.name,
        format_duration(span),
        period.n_windows,
        f"{int(period.window_rows.sum()):,}",
    )
    trained = retrain(m, decision, rolling, phases, ctx, period)
    assert trained is not None  # the decision trains, as it did for ``new``
    held = _held(period, rolling, ctx.now)
    if span == model.reference.window:
        text = f"; trained on the {format_duration(span)} to the run ({held})"
    else:  # whole windows: a drift 35 s old, of 30 s windows, is read as one window
        read = period_windows(rolling, ctx.now)[1] * model.window
        text = (
            f"; trained on the windows since the drift began: the {format_duration(read)} "
            f"to the run ({held})"
        )
    return trained, replace(decision, text=decision.text + text)


def _not_trained(
    decision: Decision, m: Measurement, exc: TransientSourceError, model: ModelSettings
) -> Decision:
    """A new version not trained, as its period's window ``exc`` names could not be read:
    on the rest of the period, or on the run's window alone, it would go live (or await
    approval) knowing part of it. The live version stays."""
    assert m.live is not None
    log.warning("model=%s the new version is not trained: %s", model.name, exc)
    why = str(exc).split(": ", 1)[0]  # the log has the whole of it
    return Decision("keep", f"{decision.text}; not trained: {why}; v{m.live.version} kept")


def _promotion_kept(
    past: Sequence[Evaluation],
    model: ModelSettings,
    m: Measurement,
    decision: Decision,
    began: float | None,
    now: float,
) -> Decision | None:
    """The decision that keeps the live version when a promotion's period would hold a
    drift (``began``: where the run's drift began, None when it is quiet): one that has
    ended, one shorter than the period, or one that still grows; None to promote."""
    span = model.reference.window
    if began is None:  # a scheduled promotion at a quiet run
        flagged = _last_streak(past, m)
        return None if flagged is None else _put_off_after(decision, m, flagged, span)
    if began > now - span + 1e-6:
        return _put_off(decision, _lasted(m, began, span))
    wait = _growing(past, m, now, span)
    return _put_off(decision, wait) if wait else None


def _last_streak(past: Sequence[Evaluation], m: Measurement) -> float | None:
    """When the newest of the live version's runs in the reference period that drifted
    right after another drifting run ran (two in a row: what pages), None when there is
    none. A scheduled promotion at the first quiet run after a three-hour incident was
    trained on it, and its feature-PSI threshold went from 0.48 to 3.0 (helper-124); a
    single drifting run is the false alarms' share, and passes."""
    assert m.live is not None
    newer: float | None = None  # the next newer run's time, when it drifted
    for e in reversed(past):  # newest first
        if e.live_version != m.live.version or e.promoted:
            break
        if not _drifted(e):
            newer = None
        elif newer is not None:
            return newer
        else:
            newer = e.evaluated_at
    return None


def _put_off_after(decision: Decision, m: Measurement, flagged: float, span: float) -> Decision:
    """A scheduled promotion whose period holds a drift that has ended, put off until the
    drift has left the period: the live version stays."""
    assert m.live is not None
    v, until = m.live.version, format_time(flagged + span)
    return Decision(
        "keep",
        f"{decision.text}, put off: its period holds runs v{v} flagged in a row, the last at "
        f"{format_time(flagged)}; v{v} kept until they have left it ({until}): a version "
        "trained on them would take them for noise",
    )


def _lasted(m: Measurement, began: float, span: float) -> str:
    """Why a promotion in a drift shorter than the period is put off."""
    assert m.live is not None
    return (
        f"v{m.live.version} kept until the drift, from {format_time(began)}, has lasted the "
        f"{format_duration(span)} period ({format_time(began + span)}): a version trained "
        "across the change would take it for noise"
    )


def _growing(past: Sequence[Evaluation], m: Measurement, now: float, span: float) -> str:
    """Why a promotion in a drift that has lasted the period is put off, when the drift
    still grows: a retrain trigger past its threshold more than GROWTH times its value at
    the first run whose window lies in the period (the same phase of a cycle as long as
    the period), or GROWTH times its threshold when it was below. "" when none is.

    A ramp over a day is first flagged part of the way up; promoted a day later, a
    version was trained on the rest of the ramp and its thresholds came out 8 to 20 times
    the first version's (helper-124). Put off, the period slides past the ramp. Each
    trigger is compared with itself: a feature PSI stops growing as the rows leave its
    bins, while the centroid drift still does."""
    assert m.live is not None
    first = next(
        (
            e
            for e in past
            if e.window_start >= now - span - 1e-6 and e.live_version == m.live.version
        ),
        None,
    )
    if first is None:
        return ""
    for t in S.RETRAIN_TRIGGERS:
        limit = float(m.thresholds.get(t.threshold, math.inf)) if t.threshold else math.inf
        if t.sli not in m.slis:
            continue  # not measured by the live version: no growth to tell
        value, then = float(m.slis[t.sli]), float(first.slis.get(t.sli, 0.0))
        if limit < math.inf and value > GROWTH * max(then, limit):
            return (
                f"v{m.live.version} kept while the drift grows: {t.text} {value:.3f}, "
                f"{then:.3f} at {format_time(first.evaluated_at)}, the period's start (a "
                "version trained on a period that holds the growth would take it for noise)"
            )
    return ""


def _put_off(decision: Decision, wait: str) -> Decision:
    """A promotion in a drift, put off for ``wait``: the live version stays."""
    if decision.retrain_reason == "drift":
        why = decision.text.removeprefix("retrained on drift: ")
        return Decision("keep", f"drift: {why}; {wait}")
    return Decision("keep", f"{decision.text}, put off in a drift: {wait}")


#: The clause of a decision that puts a promotion off (``_put_off_after``, ``_lasted``,
#: ``_growing``): from what holds it back to what a version trained then would do, with
#: the time it waits for, when it has one, in brackets before the colon.
_PUT_OFF = re.compile(
    r"(?P<why>(?:its period holds runs [^;]*; )?v\d+ kept "
    r"(?:until [^;]*?\((?P<until>[^()]+)\)|while the drift grows): [^;]*?noise\)?)(?=;|$)"
)


def put_off_of(decision: str) -> tuple[float | None, str] | None:
    """Until when (None: while the drift grows) and why a run's decision put a promotion
    off, in its own words; None when it put none off. The pages read it from the decision
    the history keeps, so that the runs recorded before say it too, and no column of the
    history has to change (docs/decisions.md, "Model pages")."""
    match = _PUT_OFF.search(decision)
    if match is None:
        return None
    until = match["until"]
    return (None if until is None else parse_time(until, "until")), match["why"]


def _held(period: ReferencePeriod, model: ModelSettings, now: float) -> str:
    """ "24 windows", "21 of 24 windows" (some left out), "288 windows, spread over the
    720 in it" (a long period)."""
    read, count = period_windows(model, now)
    held = period.n_windows
    text = f"{held} of {read}" if held < read else str(held)
    text += " window" if read == 1 else " windows"
    return text if read >= count else f"{text}, spread over the {count} in it"


def _lost_phases(live: Snapshot | None, period: ReferencePeriod, model: ModelSettings) -> str:
    """The phases of the cycle the period's windows leave without rows where the live
    version's profile has some (a seasonal model's source down for hours of the period),
    named as ``phase_gaps`` names them; "" when none. A profile's phases are those of its
    windows' midpoints on the model's clock (``train._profile``)."""
    profile = live.profile if live is not None else None
    if profile is None or model.seasonality not in SEASON_PERIODS:
        return ""
    n = profile.label_counts.shape[0]
    middles = wall_seconds((period.starts + period.ends) / 2, model.timezone)
    held = np.zeros(n, dtype=bool)
    held[phase_index(middles, profile.period, n)] = True
    if not (profile.label_counts.sum(axis=1) > 0)[~held].any():
        return ""
    kept = replace(profile, label_counts=profile.label_counts * held[:, None])
    return phase_gaps(kept).split(": windows there", 1)[0]


def _kept_for_phases(
    decision: Decision, m: Measurement, lost: str, model: ModelSettings
) -> Decision:
    """A promotion whose period lacks phases the live version holds, not made: a quiet
    morning after a six-hour outage in the period paged (helper-117)."""
    assert m.live is not None
    v = m.live.version
    log.warning(
        "model=%s the new version is not promoted: its period has %s, where v%d has rows",
        model.name,
        lost,
        v,
    )
    text = f"; not promoted: its period to the run has {lost}, where v{v} has rows; v{v} kept"
    return Decision("keep", decision.text + text)
