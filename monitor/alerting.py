"""Which alerts a run would raise, and when a sequence of runs makes them fire.

Pure: the alert rules of ``alerts/kmeans-monitor.yml`` restated on the records a run
returns, so that backtests and the detection benchmark can say what would have paged
without a Prometheus. The SLI conditions are the catalogue's ``slis.ALERT_CONDITIONS``;
a failed run holds the data-quality condition of ``KMeansRunsFailing`` and no SLI
condition (its SLIs are stale, not measured), unless it awaited its reference data
(reason ``awaiting_reference``) that cover the period only after the run, as the rule's
``unless`` on ``kmeans_reference_ready_timestamp_seconds`` holds the alert off.

Words used here and in docs/slis.md (backtests):

- a condition **holds** on a run when the rule's expression would be true on what that
  run exported (one per alert, severity and, for per-feature alerts, feature);
- a run is a **flag** when any condition holds on it;
- a **page** is raised at the second of two flags in a row (a longer streak of flags is
  still one page);
- the **flagged runs** of a run are the successful runs in a row, up to it, on which an
  SLI alert's condition held (``flagged_runs``, the daemon's ``kmeans_flagged_runs``); a
  run on which none held, or that failed, ends the streak. An SLI alert's rule is true on
  a run when its condition holds and the run's flagged runs are at least the model's
  ``thresholds.flagged_runs_to_fire`` (by default ``slis.FLAGGED_RUNS_TO_FIRE``, 2): with
  no ``for:``, it fires at the second flag in a row, as the page above, whatever the
  interval;
- an alert **fires** after run ``i`` when its rule was true in every run from ``a`` to
  ``i`` and the value of run ``i`` is still the one exported when ``for:`` has elapsed
  since run ``a``: ``t[i+1] - t[a] > for``, where ``t[i+1]`` is the time of the next
  run. At a fixed interval ``Δ`` that is ``n = i - a + 1`` consecutive runs with
  ``n·Δ > for``, so ``n = floor(for / Δ) + 1`` (``runs_to_fire``): ``for: 15m`` needs 4
  runs at a 5m interval, 2 at 15m, 1 at 1h. That is why the SLI alerts count runs
  instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor import slis as S
from monitor.checks import check_float, check_int
from monitor.durations import parse_prometheus_duration
from monitor.records import Evaluation, RunFailure

__all__ = [
    "COMPARED",
    "RUNS_FAILING",
    "RUNS_FAILING_SEVERITY",
    "SLI_ALERTS",
    "Condition",
    "firing",
    "flagged_runs",
    "flags",
    "held_conditions",
    "pages",
    "past",
    "rule_durations",
    "runs_to_fire",
]

#: The data-quality alert that a failed run raises (alerts/kmeans-monitor.yml).
RUNS_FAILING = "KMeansRunsFailing"
RUNS_FAILING_SEVERITY = "warning"


def _compared() -> tuple[tuple[str, str], ...]:
    first: dict[str, str] = {}
    for c in S.ALERT_CONDITIONS:
        if not c.at_least:
            # The catalogue lists the milder level first; per-feature PSI shows as its max.
            first.setdefault(S.FEATURE_PSI_MAX if c.per_feature else c.sli, c.threshold)
    return tuple(first.items())


#: The SLIs the alert rules compare, each with its mildest threshold, in the catalogue's
#: order (what a backtest prints and plots).
COMPARED: tuple[tuple[str, str], ...] = _compared()

#: The alerts whose rules fire from a number of flagged runs in a row (not a ``for:``).
SLI_ALERTS: frozenset[str] = frozenset(c.alert for c in S.ALERT_CONDITIONS)

#: (alert, severity) -> seconds of its rule's ``for:``.
Durations = Mapping[tuple[str, str], float]


@dataclass(frozen=True)
class Condition:
    """An alert condition that held on one run.

    ``feature`` is set for per-feature alerts; ``value`` is what the rule compares (the
    SLI, a count of features, or the failure's reason for ``KMeansRunsFailing``, whose
    ``value`` is NaN) and ``threshold`` what it is compared with.
    """

    alert: str
    severity: str
    sli: str = ""
    feature: str | None = None
    value: float = math.nan
    threshold: float = math.nan
    reason: str = ""  # KMeansRunsFailing: the failure's bounded reason

    @property
    def key(self) -> tuple[str, str, str | None]:
        """What one alert instance is: its name, severity and feature label."""
        return (self.alert, self.severity, self.feature)


def held_conditions(
    result: Evaluation | RunFailure, *, storm: int = S.DRIFT_STORM_FEATURES
) -> tuple[Condition, ...]:
    """The alert conditions that hold on one run, in the catalogue's order.

    An SLI whose threshold is absent from ``Evaluation.thresholds`` cannot fire (the
    pipeline omits a threshold where the SLI is no drift signal at that window size), and
    nothing holds on the run that trained the first model.
    Per-feature alerts stand down when ``storm`` or more features are past the same
    level, as the rules' ``unless`` does; the model-level alert then holds instead.
    """
    if isinstance(result, RunFailure):
        if result.ready_at is not None and result.ready_at > result.at:
            return ()  # a new deployment's wait for its reference data
        return (Condition(RUNS_FAILING, RUNS_FAILING_SEVERITY, reason=result.reason),)
    if "reference" in result.phase_seconds:
        # The run that trained the first model, on a period holding its own window: no
        # evidence of drift from it. Helper-77: its feature PSI 4.241 against 4.238
        # flagged, and with the next run over the same hour the alert fired.
        return ()
    out: list[Condition] = []
    for c in S.ALERT_CONDITIONS:
        threshold = result.thresholds.get(c.threshold)
        if threshold is None:
            continue
        if c.per_feature:
            out += _feature_conditions(result, c, float(threshold), storm)
        elif past(result.slis.get(c.sli, math.nan), float(threshold), c.sli):
            out.append(Condition(c.alert, c.severity, c.sli, None, result.slis[c.sli], threshold))
    return tuple(out)


def past(value: float, threshold: float, sli: str) -> bool:
    """Whether ``value`` is on the bad side of ``threshold`` (NaN never is, as in PromQL)."""
    if S.SLIS[sli].direction == S.BELOW:
        return value < threshold
    return value > threshold


def _feature_conditions(
    ev: Evaluation, c: S.AlertCondition, threshold: float, storm: int
) -> list[Condition]:
    over = {f: v for f, v in ev.feature_psi.items() if past(v, threshold, c.sli)}
    if c.at_least:
        if len(over) < c.at_least:
            return []
        return [Condition(c.alert, c.severity, c.sli, None, float(len(over)), threshold)]
    if len(over) >= storm:
        return []
    return [Condition(c.alert, c.severity, c.sli, f, v, threshold) for f, v in over.items()]


def flags(held: Sequence[Sequence[Condition]]) -> list[bool]:
    """Per run: whether any condition held (the run is a flag)."""
    return [bool(h) for h in held]


def pages(
    counted: Sequence[int],
    fired: Sequence[Sequence[Condition]],
    runs: int = S.FLAGGED_RUNS_TO_FIRE,
) -> list[bool]:
    """Per run: whether it raises a page, where an alert starts firing: its flagged runs
    (``counted``, from ``flagged_runs``) reach ``runs``, the model's
    ``thresholds.flagged_runs_to_fire``, from which its SLI alerts fire (one page per
    streak); or ``KMeansRunsFailing`` is in its ``fired`` (``firing``) and was not in
    the run's before, its ``for:`` elapsed. Failed runs end the SLI count: two in a row
    paged before 2026-12-06, fifteen minutes before any alert fired."""
    runs = check_int(runs, "runs", low=1, owner="pages")
    out = []
    failing_before = False
    for n, conditions in zip(counted, fired, strict=True):
        failing = any(c.alert == RUNS_FAILING for c in conditions)
        out.append(n == runs or (failing and not failing_before))
        failing_before = failing
    return out


def flagged_runs(held: Sequence[Sequence[Condition]], *, before: int = 0) -> list[int]:
    """Per run: its flagged runs, the runs in a row up to it on which an SLI alert's
    condition held; ``before`` is the count up to the run before the first."""
    out = []
    streak = check_int(before, "before", low=0, owner="flagged_runs")
    for conditions in held:
        streak = streak + 1 if any(c.alert in SLI_ALERTS for c in conditions) else 0
        out.append(streak)
    return out


def runs_to_fire(for_seconds: float, interval: float) -> int:
    """Consecutive runs at a fixed ``interval`` that make a ``for:`` of ``for_seconds`` fire."""
    for_seconds = check_float(for_seconds, "for_seconds", low=0.0, owner="runs_to_fire")
    interval = check_float(interval, "interval", low=0.0, low_inclusive=False, owner="runs_to_fire")
    return math.floor(for_seconds / interval) + 1


def firing(
    times: Sequence[float],
    held: Sequence[Sequence[Condition]],
    durations: Durations,
    *,
    next_time: float,
    flagged_to_fire: int = S.FLAGGED_RUNS_TO_FIRE,
) -> list[tuple[Condition, ...]]:
    """Per run: the conditions whose alert is firing before the next run.

    ``times[i]`` is when run ``i`` published its values (its window end), ``held[i]``
    the conditions that held on it, ``durations`` the ``for:`` of each (alert,
    severity) (absent: 0) and ``next_time`` the time of the run after the last one. An
    SLI alert's rule is true only from ``flagged_to_fire`` flagged runs in a row on (the
    model's ``thresholds.flagged_runs_to_fire``).
    """
    if len(times) != len(held):
        raise ValueError(f"times and held differ in length: {len(times)} != {len(held)}")
    since: dict[tuple[str, str, str | None], float] = {}
    out: list[tuple[Condition, ...]] = []
    for i, (t, conditions, streak) in enumerate(zip(times, held, flagged_runs(held), strict=True)):
        following = times[i + 1] if i + 1 < len(times) else next_time
        if streak < flagged_to_fire:
            conditions = tuple(c for c in conditions if c.alert not in SLI_ALERTS)
        since = {c.key: since.get(c.key, t) for c in conditions}
        out.append(
            tuple(
                c
                for c in conditions
                if following - since[c.key] > durations.get((c.alert, c.severity), 0.0)
            )
        )
    return out


def rule_durations(
    by_alert: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[tuple[str, str], float]:
    """(alert, severity) -> seconds of ``for:``, from rules as ``render.rules_by_alert`` gives."""
    out: dict[tuple[str, str], float] = {}
    for alert, rules in by_alert.items():
        for rule in rules:
            severity = str(rule.get("labels", {}).get("severity", ""))
            text = rule.get("for")
            out[(alert, severity)] = 0.0 if text is None else parse_prometheus_duration(str(text))
    return out
