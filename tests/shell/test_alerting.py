"""Alert conditions on hand-made runs, the for: firing rule, flagged runs, flags and pages."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from monitor import slis as S
from monitor.alerting import (
    COMPARED,
    RUNS_FAILING,
    RUNS_FAILING_SEVERITY,
    SLI_ALERTS,
    Condition,
    firing,
    flagged_runs,
    flags,
    held_conditions,
    pages,
    rule_durations,
    runs_to_fire,
)
from monitor.records import Evaluation, RunFailure
from monitor.render import RenderOptions
from monitor.render.rules import rules_by_alert

FEATURES = ("a", "b", "c", "d")
THRESHOLDS = {
    S.THRESHOLD_FEATURE_PSI_WARNING: 0.1,
    S.THRESHOLD_FEATURE_PSI_CRITICAL: 0.25,
    S.THRESHOLD_LABEL_PSI: 0.1,
    S.THRESHOLD_CENTROID_DRIFT: 0.5,
    S.THRESHOLD_CENTROID_DRIFT_SE: 4.0,
    S.THRESHOLD_SILHOUETTE_MIN: 0.6,
    S.THRESHOLD_OUTLIER_RATIO: 0.05,
    S.THRESHOLD_EMPTY_CLUSTERS: 0.0,
}
QUIET = {
    S.CENTROID_DRIFT_MAX: 0.1,
    S.CENTROID_DRIFT_SE: 1.0,
    S.LABEL_PSI: 0.01,
    S.SILHOUETTE: 0.8,
    S.OUTLIER_RATIO: 0.01,
    S.EMPTY_CLUSTERS: 0.0,
    S.FEATURE_PSI_MAX: 0.02,
}


def run(
    slis: dict[str, float] | None = None,
    psi: dict[str, float] | None = None,
    thresholds: dict[str, float] | None = None,
) -> Evaluation:
    """A run with quiet SLIs, except those given."""
    return Evaluation(
        model="m",
        window_start=0.0,
        window_end=300.0,
        evaluated_at=300.0,
        n_rows=1000,
        live_version=1,
        candidate_version=None,
        promoted=False,
        decision="kept: no drift",
        slis={**QUIET, **(slis or {})},
        feature_psi={f: 0.02 for f in FEATURES} | (psi or {}),
        cluster_sizes=(500, 500),
        cluster_shares=(0.5, 0.5),
        centroid_drift=(0.1, 0.0),
        thresholds=THRESHOLDS if thresholds is None else thresholds,
        phase_seconds={},
        duration_seconds=0.1,
    )


def keys(conditions: Any) -> list[tuple[str, str, str | None]]:
    return [c.key for c in conditions]


W, C = "warning", "critical"


@pytest.mark.parametrize(
    ("evaluation", "expected"),
    [
        (run(), []),
        (run({S.CENTROID_DRIFT_MAX: 0.51}), [("KMeansCentroidDrift", W, None)]),
        (run({S.CENTROID_DRIFT_MAX: 0.5}), []),  # the rules compare strictly
        # A tight cluster's move: many standard errors, the largest distance still quiet.
        (run({S.CENTROID_DRIFT_SE: 6.0}), [("KMeansClusterMoved", W, None)]),
        (run({S.CENTROID_DRIFT_SE: 4.0}), []),
        # Fixed thresholds, or a model stored before the measure: no threshold, no alert.
        (
            run(
                {S.CENTROID_DRIFT_SE: 6.0},
                thresholds={
                    k: v for k, v in THRESHOLDS.items() if k != S.THRESHOLD_CENTROID_DRIFT_SE
                },
            ),
            [],
        ),
        (run({S.SILHOUETTE: 0.59}), [("KMeansSilhouetteDrop", W, None)]),
        (run({S.SILHOUETTE: 0.9, S.LABEL_PSI: 0.2}), [("KMeansLabelDrift", W, None)]),
        (run({S.OUTLIER_RATIO: 0.06}), [("KMeansOutlierRatioHigh", W, None)]),
        (run({S.EMPTY_CLUSTERS: 1.0}), [("KMeansEmptyClusters", W, None)]),
        (run(psi={"b": 0.11}), [("KMeansFeatureDrift", W, "b")]),
        (run(psi={"b": 0.3}), [("KMeansFeatureDrift", W, "b"), ("KMeansFeatureDrift", C, "b")]),
        # Three features past the warning level: the model-level alert instead of a storm.
        (run(psi={"a": 0.2, "b": 0.2, "c": 0.2}), [("KMeansManyFeaturesDrifting", W, None)]),
        # ...while the one past the critical level is alone at its level and still alerts.
        (
            run(psi={"a": 0.3, "b": 0.2, "c": 0.2}),
            [("KMeansFeatureDrift", C, "a"), ("KMeansManyFeaturesDrifting", W, None)],
        ),
        (
            run(psi={f: 0.3 for f in FEATURES}),
            [("KMeansManyFeaturesDrifting", W, None), ("KMeansManyFeaturesDrifting", C, None)],
        ),
        # An absent threshold cannot fire: the SLI is no drift signal at that size.
        (
            run(
                {S.LABEL_PSI: 5.0},
                thresholds={k: v for k, v in THRESHOLDS.items() if k != S.THRESHOLD_LABEL_PSI},
            ),
            [],
        ),
        (run({S.CENTROID_DRIFT_MAX: math.nan}), []),  # NaN compares false, as in PromQL
    ],
)
def test_conditions_that_hold(evaluation: Evaluation, expected: list[Any]) -> None:
    assert keys(held_conditions(evaluation)) == expected


def test_a_run_awaiting_its_reference_data_holds_no_condition_until_they_are_due() -> None:
    # As the rule's `unless` on kmeans_reference_ready_timestamp_seconds holds it off.
    waiting = RunFailure("m", "awaiting_reference", "they do from about T", 100.0, ready_at=200.0)
    assert held_conditions(waiting) == ()
    overdue = RunFailure("m", "awaiting_reference", "they do from about T", 300.0, ready_at=200.0)
    assert keys(held_conditions(overdue)) == [(RUNS_FAILING, "warning", None)]
    assert keys(held_conditions(RunFailure("m", "too_few_rows", "x", 100.0))) == [
        (RUNS_FAILING, "warning", None)
    ]


def test_the_run_that_trained_the_first_model_holds_no_condition() -> None:
    # Helper-77: trained on a period holding its own window, it flagged (PSI 4.241
    # against 4.238), and the next run over the same hour made the alert fire.
    drifting = run({S.CENTROID_DRIFT_MAX: 0.9}, psi={"d": 0.4})
    assert held_conditions(drifting)
    first = dataclasses.replace(drifting, phase_seconds={"reference": 2.5, "train": 0.5})
    assert held_conditions(first) == ()


def test_a_condition_carries_its_value_and_threshold() -> None:
    [c] = held_conditions(run(psi={"d": 0.2}))
    assert (c.sli, c.feature, c.value, c.threshold) == (S.FEATURE_PSI, "d", 0.2, 0.1)
    [many] = held_conditions(run(psi={"a": 0.2, "b": 0.2, "c": 0.2}))
    assert (many.value, many.threshold) == (3.0, 0.1)


def test_the_storm_size_is_a_parameter() -> None:
    two = run(psi={"a": 0.2, "b": 0.2})
    assert keys(held_conditions(two)) == [
        ("KMeansFeatureDrift", W, "a"),
        ("KMeansFeatureDrift", W, "b"),
    ]
    assert keys(held_conditions(two, storm=2)) == []


def test_a_failed_run_holds_only_the_data_quality_condition() -> None:
    [c] = held_conditions(RunFailure("m", "invalid_values", "30% NaN", 300.0))
    assert (c.alert, c.severity, c.reason) == (
        RUNS_FAILING,
        RUNS_FAILING_SEVERITY,
        "invalid_values",
    )


def test_the_conditions_name_alerts_and_severities_that_the_rules_define() -> None:
    rules = rules_by_alert(RenderOptions())
    defined = {(a, r["labels"]["severity"]) for a, rs in rules.items() for r in rs}
    assert {(c.alert, c.severity) for c in S.ALERT_CONDITIONS} <= defined
    assert (RUNS_FAILING, RUNS_FAILING_SEVERITY) in defined
    durations = rule_durations(rules)
    assert durations[("KMeansFeatureDrift", C)] == 0.0  # the SLI alerts count runs instead
    assert durations[("KMeansRunsFailing", W)] == 900.0
    assert durations[("KMeansModelStale", W)] == 1800.0
    assert set(durations) == defined


def test_compared_lists_each_alerted_sli_once_with_its_mildest_threshold() -> None:
    assert dict(COMPARED)[S.FEATURE_PSI_MAX] == S.THRESHOLD_FEATURE_PSI_WARNING
    assert len({sli for sli, _ in COMPARED}) == len(COMPARED)
    assert {t for _, t in COMPARED} == set(S.THRESHOLDS) - {S.THRESHOLD_FEATURE_PSI_CRITICAL}


# ------------------------------------------------------------------------- firing

DRIFT = Condition("KMeansCentroidDrift", W)
LABELS = Condition("KMeansLabelDrift", W)
STALE = Condition("KMeansModelStale", W)  # a state alert with a for:, not an SLI alert


def fired(
    pattern: str,
    interval: float,
    for_s: float,
    times: list[float] | None = None,
    condition: Condition = STALE,
) -> str:
    """Which runs of a pattern ('x' holds, '.' quiet) are followed by a firing alert."""
    times = times or [interval * i for i in range(len(pattern))]
    held = [(condition,) if ch == "x" else () for ch in pattern]
    durations = {(condition.alert, condition.severity): for_s}
    out = firing(times, held, durations, next_time=times[-1] + interval)
    return "".join("F" if f else "." for f in out)


@pytest.mark.parametrize(
    ("pattern", "interval", "for_s", "expected"),
    [
        ("xxxxx", 300, 900, "...FF"),  # for: 15m at 5m: the fourth run
        ("xxx.xxxx", 300, 900, ".......F"),  # a quiet run restarts the count
        ("xxx", 900, 900, ".FF"),  # at 15m: the second run
        ("x.x", 3600, 900, "F.F"),  # at 1h one run's value stands past for:
        ("xx", 300, 0, "FF"),  # no for: fires at once
        ("...", 300, 900, "..."),
    ],
)
def test_firing(pattern: str, interval: float, for_s: float, expected: str) -> None:
    assert fired(pattern, interval, for_s) == expected


def test_firing_with_irregular_run_times_uses_the_next_run() -> None:
    # Cron-like gaps: 0, 10m, 12m, 30m. The streak from 0 stands until the next run.
    times = [0.0, 600.0, 720.0, 1800.0]
    assert fired("xxxx", 600, 900, times) == "..FF"
    # The streak of 0-10m ends at 12m (12m < 15m); the one at 30m stands until 40m.
    assert fired("xx.x", 600, 900, times) == "...."
    assert fired("xx.x", 600, 300, times) == "FF.F"


@pytest.mark.parametrize("interval", [60.0, 300.0, 900.0, 3600.0])
@pytest.mark.parametrize("for_s", [0.0, 60.0, 900.0, 1800.0])
def test_runs_to_fire_agrees_with_firing(interval: float, for_s: float) -> None:
    n = runs_to_fire(for_s, interval)
    assert fired("x" * 40, interval, for_s).index("F") == n - 1


def test_runs_to_fire_examples_and_bad_input() -> None:
    assert (runs_to_fire(900, 300), runs_to_fire(900, 900), runs_to_fire(900, 3600)) == (4, 2, 1)
    with pytest.raises(ValueError, match="interval"):
        runs_to_fire(900, 0)
    with pytest.raises(ValueError, match="differ in length"):
        firing([0.0], [(), ()], {}, next_time=1.0)


def test_a_feature_alert_fires_per_feature() -> None:
    a, b = (
        Condition("KMeansFeatureDrift", W, feature="a"),
        Condition("KMeansFeatureDrift", W, feature="b"),
    )
    times = [0.0, 300.0, 600.0, 900.0]
    # Every run from the first is flagged, so each feature fires on every run from the
    # second where its own condition holds, and only there.
    out = firing(times, [(a,), (b,), (a, b), (b,)], {}, next_time=1200.0)
    assert out == [(), (b,), (a, b), (b,)]


@pytest.mark.parametrize("interval", [60.0, 300.0, 900.0, 3600.0, 86400.0])
def test_an_sli_alert_fires_at_the_second_flagged_run_at_any_interval(interval: float) -> None:
    durations = rule_durations(rules_by_alert(RenderOptions()))
    assert fired("x.xxxx", interval, durations[(DRIFT.alert, W)], condition=DRIFT) == "...FFF"
    # The for: of a state alert is a number of runs that depends on the interval.
    assert fired("xxxx", interval, 900.0) != "FFFF" or interval >= 900.0


def test_flagged_runs_count_any_sli_alert_and_end_at_a_quiet_or_failed_run() -> None:
    failed = Condition(RUNS_FAILING, RUNS_FAILING_SEVERITY, reason="invalid_values")
    held: list[tuple[Condition, ...]] = [(DRIFT,), (LABELS,), (), (DRIFT,), (failed,), (LABELS,)]
    assert flagged_runs(held) == [1, 2, 0, 1, 0, 1]
    assert flagged_runs(held[3:4], before=4) == [5]
    assert flagged_runs([(STALE,)]) == [0]  # not an SLI alert
    assert {c.alert for c in S.ALERT_CONDITIONS} == SLI_ALERTS
    # A run flagged by another SLI alert counts: the label drift of run 0 and the centroid
    # drift of run 1 make two in a row, and the centroid drift fires on run 1.
    out = firing([0.0, 900.0], [(LABELS,), (DRIFT,)], {}, next_time=1800.0)
    assert out == [(), (DRIFT,)]
    # The data-quality alert is not held back by the count.
    assert firing([0.0, 900.0], [(failed,), (failed,)], {}, next_time=1800.0) == [
        (failed,),
        (failed,),
    ]
    with pytest.raises(ValueError, match="before"):
        flagged_runs([], before=-1)


def test_a_model_may_ask_for_more_flagged_runs_in_a_row() -> None:
    # thresholds.flagged_runs_to_fire: 3, e.g. for runs whose windows overlap.
    times = [900.0 * i for i in range(5)]
    held = [(DRIFT,), (DRIFT,), (DRIFT,), (), (DRIFT,)]
    out = firing(times, held, {}, next_time=4500.0, flagged_to_fire=3)
    assert out == [(), (), (DRIFT,), (), ()]
    assert firing(times, held, {}, next_time=4500.0, flagged_to_fire=1) == [
        (DRIFT,),
        (DRIFT,),
        (DRIFT,),
        (),
        (DRIFT,),
    ]


def test_flags_and_pages() -> None:
    held: list[tuple[Condition, ...]] = [(), (DRIFT,), (DRIFT,), (DRIFT,), (), (DRIFT,), (DRIFT,)]
    flagged = flags(held)
    assert flagged == [False, True, True, True, False, True, True]
    counted = flagged_runs(held)
    times = [900.0 * i for i in range(7)]
    fired = firing(times, held, {}, next_time=6300.0)
    # A page at the second flag of each streak, where the alert starts firing; a longer
    # streak is still one page.
    assert pages(counted, fired) == [False, False, True, False, False, False, True]
    # A model that asks for more flagged runs in a row pages where its alerts fire.
    assert pages(counted, fired, 3) == [False, False, False, True, False, False, False]
    assert pages(counted, fired, 1) == [False, True, False, False, False, True, False]
    with pytest.raises(ValueError, match="runs"):
        pages(counted, fired, 0)


def test_failed_runs_page_where_their_alert_fires_not_at_the_second() -> None:
    # Runs every 10 s, KMeansRunsFailing with a for: of 15m: two failures in a row paged
    # at the second, fifteen minutes before the alert fired.
    failed = Condition(RUNS_FAILING, RUNS_FAILING_SEVERITY, reason="source_unavailable")
    held: list[tuple[Condition, ...]] = [(failed,)] * 100
    times = [10.0 * i for i in range(100)]
    fired = firing(times, held, {(RUNS_FAILING, RUNS_FAILING_SEVERITY): 900.0}, next_time=1000.0)
    paged = pages(flagged_runs(held), fired)
    assert paged.index(True) == 90 == [bool(f) for f in fired].index(True)
    assert sum(paged) == 1
