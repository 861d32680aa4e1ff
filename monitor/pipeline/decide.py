"""The decide step: the retrain policy as a pure function of a measurement."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from monitor import slis as S
from monitor.config import ModelSettings
from monitor.core.calibration import MIN_BLOCKS
from monitor.core.seasonal import phase_weights
from monitor.durations import format_duration, format_rough
from monitor.pipeline.reference import MAX_REFERENCE_WINDOWS, period_windows
from monitor.records import (
    SEASON_PERIODS,
    Decision,
    Measurement,
    Pending,
    SeasonalProfile,
    cycle_unit,
    season_name,
)
from monitor.timestamps import ahead, format_time, wall_seconds

__all__ = ["cycles_covered", "decide", "drift_reasons", "phase_gaps"]

DAY = SEASON_PERIODS["daily"]
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SHOWN_STRETCHES = 3  # stretches of the cycle a clause names; the rest are counted


def drift_reasons(
    slis: Mapping[str, float],
    thresholds: Mapping[str, float],
    where: Mapping[str, str] | None = None,
) -> list[str]:
    """What drifted past a retrain trigger, as the decision names it: "feature PSI 0.404",
    or with ``where`` (SLI key -> what its value is the largest of) "feature PSI 0.404
    (latency_p99_ms)", "centroid drift 0.907 (cluster 1)"."""
    reasons: list[str] = []
    for trigger in S.RETRAIN_TRIGGERS:
        if trigger.sli not in slis:
            continue  # not measured by the live version (measure.stored_before)
        value = slis[trigger.sli]
        if trigger.threshold:
            # A threshold left out at this window size is not a drift signal here.
            if value > thresholds.get(trigger.threshold, float("inf")):
                at = (where or {}).get(trigger.sli)
                reasons.append(f"{trigger.text} {value:.3f}" + (f" ({at})" if at else ""))
        elif value and trigger.text not in reasons:
            reasons.append(trigger.text)
    return reasons


def decide(
    m: Measurement, model: ModelSettings, *, now: float, pending: Pending | None
) -> Decision:
    """What to do with the candidate of ``m`` under the model's retrain policy.

    ``pending`` is the version already awaiting manual approval, if any: under the
    manual policy one candidate awaits at a time, refreshed from each drifting window
    so that what an operator approves reflects the latest data (one trained on a period,
    once new data make up a tenth of it: ``Pending.fresh_until``); but not one that
    ``snapshots retrain`` stored (another k, the configured phases): a drifting run
    replaced it with a candidate of the live model's k, and its printed approve failed.
    """
    if m.live is None:
        return Decision("initial", _initial(m, model, now))
    if not m.candidate_ok:
        return Decision("reject", "candidate rejected: it has empty clusters")
    policy = model.retrain
    if policy == "scheduled":
        age = now - m.live.created_at
        if ahead(m.live.created_at, now):  # trained before the wall clock stepped back:
            # its age is unknown, and counted "not due" it stayed for the whole step
            by = format_rough(-age)
            return Decision(
                "promote",
                f"scheduled retrain: live v{m.live.version} is stamped {by} ahead of the "
                "clock, its age unknown",
                "scheduled",
            )
        if age >= model.training.retrain_every:
            old = format_duration(float(round(age)))  # "6h", never "21600s"
            return Decision("promote", f"scheduled retrain: live model is {old} old", "scheduled")
        return Decision("keep", "kept: scheduled retrain not due")
    why = drift_reasons(m.slis, m.thresholds, _largest(m))
    if not why:
        return Decision("keep", "kept: no drift")
    if policy == "on-drift":
        return Decision("promote", "retrained on drift: " + ", ".join(why), "drift")
    text = "drift awaits manual approval: " + ", ".join(why)
    if pending is not None and pending.manual:
        return Decision(
            "keep",
            f"{text}; the pending v{pending.version} of snapshots retrain is kept for "
            "approval: no candidate is trained until it is approved or rejected",
        )
    if (
        pending is not None
        and pending.fresh_until is not None
        and now < pending.fresh_until
        and not ahead(pending.trained_to or 0.0, now)  # else trained before a step back
    ):
        assert pending.trained_to is not None  # set together
        to, fresh = format_time(pending.trained_to), format_time(pending.fresh_until)
        return Decision(
            "keep",
            f"{text}; candidate v{pending.version} awaits approval (trained on the period "
            f"to {to}; next refresh from {fresh})",
        )
    if pending is not None:
        v = pending.version
        return Decision("pend", f"{text}; refreshing candidate v{v}", "drift", v)
    return Decision("pend", text, "drift")


def _largest(m: Measurement) -> dict[str, str]:
    """The feature of the largest PSI and the cluster of the largest centroid drift (and
    how far the live centres moved, when a restart's minimum won the candidate)."""
    out = {}
    psi = m.view.feature_psi
    if psi:
        out[S.FEATURE_PSI_MAX] = max(psi, key=lambda f: psi[f])
    if m.centroid_drift:
        drift = m.centroid_drift
        at = f"cluster {max(range(len(drift)), key=drift.__getitem__)}"
        if m.warm_drift_max is not None:
            # The data may not have moved: the live model sits in a worse minimum.
            at += (
                "; a k-means++ restart's lower minimum, where the live centres refitted"
                f" moved {m.warm_drift_max:.3f}"
            )
        out[S.CENTROID_DRIFT_MAX] = at
    return out


def _initial(m: Measurement, model: ModelSettings, now: float) -> str:
    """What a first run says: the windows its period held (``_held``) and, for a seasonal
    model, the phases of the cycle its reference holds no row at (``phase_gaps``) and a
    part of the cycle it holds once more than the rest (``cycles_covered``)."""
    text = "initial reference model trained" + _held(m, model, now)
    profile = m.reference.profile if m.reference is not None else None
    if profile is not None:
        notes = (phase_gaps(profile), cycles_covered(profile, *model.reference.span(now)))
        text += "".join(f"; {note}" for note in notes if note)
    return text


def _held(m: Measurement, model: ModelSettings, now: float) -> str:
    """How many distinct windows the reference period held, when fewer than it was cut
    into (windows left out, or repeating an earlier one's rows), and how many of its
    windows were read, when not all (a long period); "" when every one was."""
    windows = m.reference.reference_windows if m.reference is not None else None
    if windows is None:
        return ""
    held, (read, count) = int(windows.starts.shape[0]), period_windows(model, now)
    if held >= read == count:
        return ""
    left_out = m.reference_left_out
    repeated = read - held - left_out  # windows whose rows an earlier one returned
    text = f" on {held} distinct window(s)" if repeated > 0 else f" on {held} window(s)"
    if read == count:
        text += f" of the reference period's {read}"
    else:  # a two-week period of hours, 288 of its 336 read, said nothing of it
        text += (
            f" of the {read} read from the reference period's {count} (at most "
            f"{MAX_REFERENCE_WINDOWS}, spread over the period and its phases)"
        )
    if left_out:  # "distinct" said they repeated others' rows; the log names each and why
        text += f"; {left_out} left out (unreadable or too few rows, named in the log)"
    if held < MIN_BLOCKS:  # calibration.MIN_BLOCKS: null windows bootstrapped within them
        text += f" (fewer than {MIN_BLOCKS}: thresholds from their rows resampled)"
    return text


def phase_gaps(profile: SeasonalProfile) -> str:
    """The phases of the cycle the reference holds no row at, and what the windows there
    are compared with instead (``seasonal.phase_reference``): "no reference rows at
    Tue 00:00-24:00 Europe/Berlin (24 of 168 hourly phases): windows there are compared
    with ..."; "" when it holds rows at every phase. A weekly model whose reference missed
    a Tuesday compared every Tuesday window with the whole period, and nothing said so
    (helper-111)."""
    rows = profile.label_counts.sum(axis=1)
    empty = rows <= 0
    if not empty.any():
        return ""
    n, per = profile.n_phases, profile.period / profile.n_phases
    middles = (np.arange(n) + 0.5) * per
    alone = empty & (phase_weights(middles, profile.period, n, profile.width) @ rows <= 0)
    stretches = [_stretch(a * per, b * per, profile.period) for a, b in _runs(empty, profile)]
    named = f"{', '.join(stretches[:SHOWN_STRETCHES])} {profile.timezone}"
    if len(stretches) > SHOWN_STRETCHES:
        named += f" and {len(stretches) - SHOWN_STRETCHES} more"
    if not alone.any():
        instead = "the hours next to them"
    elif (alone == empty).all():
        instead = "the whole period"
    else:
        instead = "the hours next to them, or with the whole period where those hold none either"
    return (
        f"no reference rows at {named} ({int(empty.sum())} of {n} hourly "
        f"phases): windows there are compared with {instead}"
    )


def cycles_covered(profile: SeasonalProfile, start: float, end: float) -> str:
    """How many cycles the reference period ``start`` to ``end`` covers, when not a whole
    number of them (to within a phase), and the part of the cycle it holds once more than
    the rest, whose rows weigh more in every comparison there: "the reference covers 1.5
    daily cycles: 20:00-08:00 UTC weighs more (2 cycles' rows, the rest of the day 1)";
    "" else. 36 hours under a daily cycle, or 10 days under a weekly one, trained with the
    plain decision (helper-111)."""
    period = profile.period
    whole = math.floor((end - start) / period)
    if end - start - whole * period < period / profile.n_phases:
        return ""
    a, b = wall_seconds(np.array([start + whole * period, end]), profile.timezone)
    return (
        f"the reference covers {(end - start) / period:.3g} {season_name(period)} cycles: "
        f"{_stretch(a, b, period)} {profile.timezone} weighs more ({whole + 1} cycles' rows, "
        f"the rest of the {cycle_unit(period)} {whole})"
    )


def _runs(mask: np.ndarray, profile: SeasonalProfile) -> list[tuple[int, int]]:
    """The stretches [a, b) of consecutive phases in ``mask`` (circular: b may pass the
    cycle's end), a week's from Monday on."""
    n = mask.shape[0]
    first = int(np.flatnonzero(~mask)[0])  # a stretch never starts before it
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i in range(first, first + n + 1):
        if mask[i % n] and start is None:
            start = i
        elif not mask[i % n] and start is not None:
            runs.append((start, i))
            start = None
    monday = 4 * DAY / (profile.period / n) if profile.period > DAY else 0.0  # epoch: Thu
    return sorted(runs, key=lambda run: (run[0] - monday) % n)


def _stretch(a: float, b: float, period: float) -> str:
    """The stretch of the cycle from ``a`` to ``b`` (seconds into it, on the wall clock of
    the phases): "01:00-07:00", "Tue 00:00-24:00", "Wed 22:00-Thu 01:00"."""

    def at(seconds: float, end: bool) -> tuple[str, str]:
        day, rest = divmod(round(seconds) % round(period), round(DAY))
        if end and rest == 0:
            day, rest = day - 1, round(DAY)
        weekday = WEEKDAYS[(day + 3) % 7] if period > DAY else ""  # the epoch's day: Thu
        return weekday, f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"

    (day_a, clock_a), (day_b, clock_b) = at(a, False), at(b, True)
    first = f"{day_a} {clock_a}".strip()
    return f"{first}-{clock_b}" if day_a == day_b else f"{first}-{day_b} {clock_b}"
