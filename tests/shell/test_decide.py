"""The retrain policy as a table: every policy, drift or none, pending or not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from monitor import slis as S
from monitor.config import ModelSettings, parse
from monitor.pipeline import decide, drift_reasons
from monitor.pipeline.decide import cycles_covered, phase_gaps
from monitor.pipeline.train import fixed_thresholds
from monitor.records import (
    DECISION_ACTIONS,
    Decision,
    Measurement,
    OutlierThresholds,
    Pending,
    ReferenceBins,
    Scaler,
    SeasonalProfile,
    Snapshot,
    Window,
    WindowView,
)
from monitor.timestamps import parse_time
from tests.fakes import FAKE_SOURCES

NOW = 1_000_000.0
QUIET = {key: 0.0 for key in S.SCALAR} | {S.SILHOUETTE: 0.7, S.LABEL_AGREEMENT: 1.0}


def model(retrain: str, **training: Any) -> ModelSettings:
    raw = {
        "name": "m",
        "features": ["a", "b"],
        "k": 2,
        "window": "10m",
        "schedule": {"interval": "1m"},
        "source": {"kind": "fake"},
        "retrain": retrain,
        "training": training,
    }
    return parse({"models": [raw]}, sources=FAKE_SOURCES).models[0]


def snapshot(**fields: Any) -> Snapshot:
    """A two-cluster snapshot; the decision reads only its age and thresholds."""
    zeros = np.zeros((2, 2))
    base = Snapshot(
        model="m",
        version=3,
        created_at=0.0,
        features=("a", "b"),
        metric="euclidean",
        centers=zeros,
        scaler=Scaler("none", np.zeros(2), np.ones(2)),
        bins=ReferenceBins((np.zeros(1), np.zeros(1)), (np.ones(2) / 2,) * 2, 1e-4, "quantile"),
        reference_shares=np.ones(2) / 2,
        outliers=OutlierThresholds(np.ones(2), 0.99),
        thresholds={},
        seed=0,
        window_start=0.0,
        window_end=1.0,
        n_rows=4,
        schema_hash="",
        package_version="",
        slis={},
        sample=zeros,
        reason="initial",
    )
    return replace(base, **fields)


def measurement(
    slis: dict[str, float], *, live_age: float | None = 60.0, candidate_ok: bool = True
) -> Measurement:
    live = None
    if live_age is not None:
        live = snapshot(
            created_at=NOW - live_age,
            thresholds=fixed_thresholds(model("manual").thresholds, {S.SILHOUETTE: 0.7}),
        )
    view = WindowView(
        labels=np.zeros(4, dtype=np.int64),
        sq_distances=np.zeros(4),
        slis=slis,
        # The largest PSI is feature b's, the largest centroid drift cluster 1's.
        feature_psi={"a": 0.0, "b": slis[S.FEATURE_PSI_MAX]},
        cluster_sizes=(2, 2),
        cluster_shares=(0.5, 0.5),
    )
    window = Window("m", NOW - 600, NOW, ("a", "b"), np.zeros((4, 2)))
    thresholds = {} if live is None else dict(live.thresholds)
    return Measurement(
        "m",
        window,
        window.X,
        live,
        None,
        view,
        slis,
        thresholds,
        (),
        (0.0, slis[S.CENTROID_DRIFT_MAX]),
        np.zeros((2, 2)),
        candidate_ok,
        4,
    )


PSI = QUIET | {S.FEATURE_PSI_MAX: 0.404}
MANY = QUIET | {S.FEATURE_PSI_MAX: 0.3, S.LABEL_PSI: 0.2, S.CENTROID_DRIFT_MAX: 0.9}
SPLIT = QUIET | {S.CLUSTERS_APPEARED: 1.0, S.CLUSTERS_VANISHED: 1.0}


@pytest.mark.parametrize(
    ("policy", "slis", "pending", "expected"),
    [
        ("on-drift", QUIET, None, Decision("keep", "kept: no drift")),
        (
            "on-drift",
            PSI,
            None,
            Decision("promote", "retrained on drift: feature PSI 0.404 (b)", "drift"),
        ),
        (
            "on-drift",
            MANY,
            None,
            Decision(
                "promote",
                "retrained on drift: feature PSI 0.300 (b), label PSI 0.200, "
                "centroid drift 0.900 (cluster 1)",
                "drift",
            ),
        ),
        (
            "on-drift",
            SPLIT,
            None,
            Decision("promote", "retrained on drift: clusters appeared or vanished", "drift"),
        ),
        ("manual", QUIET, None, Decision("keep", "kept: no drift")),
        (
            "manual",
            PSI,
            None,
            Decision("pend", "drift awaits manual approval: feature PSI 0.404 (b)", "drift"),
        ),
        (
            "manual",
            PSI,
            Pending(7),
            Decision(
                "pend",
                "drift awaits manual approval: feature PSI 0.404 (b); refreshing candidate v7",
                "drift",
                replaces=7,
            ),
        ),
        # A version snapshots retrain stored is not replaced (helper-77: by a candidate of
        # the live model's k, and the printed approve of the retrained one then failed).
        (
            "manual",
            PSI,
            Pending(7, manual=True),
            Decision(
                "keep",
                "drift awaits manual approval: feature PSI 0.404 (b); the pending v7 of "
                "snapshots retrain is kept for approval: no candidate is trained until it is "
                "approved or rejected",
            ),
        ),
        # A candidate trained on a period to now is kept until its refresh time ...
        (
            "manual",
            PSI,
            Pending(7, trained_to=NOW - 60, fresh_until=NOW + 3600),
            Decision(
                "keep",
                "drift awaits manual approval: feature PSI 0.404 (b); candidate v7 awaits "
                "approval (trained on the period to 1970-01-12T13:45:40Z; next refresh from "
                "1970-01-12T14:46:40Z)",
            ),
        ),
        # ... but one trained on a period ending ahead of the clock (the wall clock stepped
        # back since) is refreshed: kept, it stayed for the whole step (t13 F1).
        (
            "manual",
            PSI,
            Pending(7, trained_to=NOW + 30 * 86400, fresh_until=NOW + 33 * 86400),
            Decision(
                "pend",
                "drift awaits manual approval: feature PSI 0.404 (b); refreshing candidate v7",
                "drift",
                replaces=7,
            ),
        ),
        # Below the critical PSI level a warning is not drift that retrains.
        ("on-drift", QUIET | {S.FEATURE_PSI_MAX: 0.2}, None, Decision("keep", "kept: no drift")),
    ],
)
def test_the_policy_table(
    policy: str, slis: dict[str, float], pending: Pending | None, expected: Decision
) -> None:
    assert decide(measurement(slis), model(policy), now=NOW, pending=pending) == expected


def test_a_restarts_minimum_is_named_with_how_far_the_live_centres_moved() -> None:
    # A k-means++ restart beat the warm start: the data may not have moved at all.
    m = replace(measurement(MANY), warm_drift_max=0.048)
    assert decide(m, model("manual"), now=NOW, pending=None).text == (
        "drift awaits manual approval: feature PSI 0.300 (b), label PSI 0.200, centroid drift"
        " 0.900 (cluster 1; a k-means++ restart's lower minimum, where the live centres"
        " refitted moved 0.048)"
    )


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (3600.0, Decision("keep", "kept: scheduled retrain not due")),
        (90000.0, Decision("promote", "scheduled retrain: live model is 25h old", "scheduled")),
        # Created ahead of the clock (t13 F1): within 5 minutes, a host a little apart;
        # further, trained before the wall clock stepped back: its age is unknown, and
        # "not due" held it for the whole step.
        (-240.0, Decision("keep", "kept: scheduled retrain not due")),
        (
            -30 * 86400.0,
            Decision(
                "promote",
                "scheduled retrain: live v3 is stamped 30d ahead of the clock, its age unknown",
                "scheduled",
            ),
        ),
    ],
)
def test_the_scheduled_policy_ignores_drift_and_looks_at_age(
    age: float, expected: Decision
) -> None:
    m = measurement(PSI, live_age=age)
    assert decide(m, model("scheduled", retrain_every="1d"), now=NOW, pending=None) == expected


@pytest.mark.parametrize("policy", ["on-drift", "manual", "scheduled"])
def test_a_candidate_with_an_empty_cluster_is_rejected_under_every_policy(policy: str) -> None:
    m = measurement(PSI, live_age=90000.0, candidate_ok=False)
    decision = decide(m, model(policy, retrain_every="1h"), now=NOW, pending=None)
    assert decision == Decision("reject", "candidate rejected: it has empty clusters")
    assert not decision.trains


def test_without_a_live_model_the_first_one_is_trained() -> None:
    decision = decide(measurement(QUIET, live_age=None), model("manual"), now=NOW, pending=None)
    assert decision.action == "initial" and not decision.trains


def test_only_promote_and_pend_train_a_new_snapshot() -> None:
    trains = {a: Decision(a, "").trains for a in DECISION_ACTIONS}
    assert trains == {
        "initial": False,
        "keep": False,
        "reject": False,
        "promote": True,
        "pend": True,
    }


def test_drift_reasons_compare_strictly_above_the_threshold() -> None:
    thresholds = {S.THRESHOLD_FEATURE_PSI_CRITICAL: 0.25, S.THRESHOLD_LABEL_PSI: 0.1}
    thresholds |= {S.THRESHOLD_CENTROID_DRIFT: 0.5}
    at = QUIET | {S.FEATURE_PSI_MAX: 0.25}
    assert drift_reasons(at, thresholds) == []
    assert drift_reasons(at | {S.FEATURE_PSI_MAX: 0.2501}, thresholds) == ["feature PSI 0.250"]
    where = {S.FEATURE_PSI_MAX: "rps"}
    assert drift_reasons(at | {S.FEATURE_PSI_MAX: 0.2501}, thresholds, where) == [
        "feature PSI 0.250 (rps)"
    ]


def weekly(empty: list[int], width: int) -> SeasonalProfile:
    """A weekly profile with no row at the phases ``empty`` (hours from Thursday 00:00,
    the epoch's weekday)."""
    counts = np.ones((168, 2))
    counts[empty] = 0.0
    return SeasonalProfile(
        period=7 * 86400.0,
        label_counts=counts,
        bin_counts=counts,
        bin_offsets=np.array([0, 2]),
        width=width,
        timezone="Europe/Berlin",
    )


def test_the_phases_a_weekly_reference_holds_no_row_at_are_named_by_weekday_and_hour() -> None:
    tuesday = list(range(5 * 24, 6 * 24))
    across_the_cycles_end = [166, 167, 0]  # Wednesday 22:00 to Thursday 01:00
    assert phase_gaps(weekly(tuesday + across_the_cycles_end, width=1)) == (
        "no reference rows at Tue 00:00-24:00, Wed 22:00-Thu 01:00 Europe/Berlin (27 of 168 "
        "hourly phases): windows there are compared with the hours next to them, or with the "
        "whole period where those hold none either"
    )
    # Each hour alone, from Monday on; a window's stretch of 1.5 h holds its neighbours.
    hours = [4 * 24 + 9, 2 * 24 + 5, 24 + 23]  # Monday 09:00, Saturday 05:00, Friday 23:00
    assert phase_gaps(weekly(hours, width=1)) == (
        "no reference rows at Mon 09:00-10:00, Fri 23:00-24:00, Sat 05:00-06:00 "
        "Europe/Berlin (3 of 168 hourly phases): windows there are compared with the hours "
        "next to them"
    )
    assert phase_gaps(weekly(hours, width=0)).endswith("compared with the whole period")
    assert "Europe/Berlin and 2 more (5 of" in phase_gaps(weekly([0, 10, 20, 30, 40], width=0))
    assert phase_gaps(weekly([], width=1)) == ""


def test_a_reference_of_part_cycles_says_how_many_it_covers_and_which_hours_weigh_more() -> None:
    """Ten days under a weekly cycle trained with the plain decision: three days of the
    week held twice the rows of the others, and nothing said so (helper-111)."""
    start, end = (parse_time(t, "t") for t in ("2026-10-14T00:00:00Z", "2026-10-24T00:00:00Z"))
    assert cycles_covered(weekly([], width=1), start, end) == (
        "the reference covers 1.43 weekly cycles: Wed 02:00-Sat 02:00 Europe/Berlin weighs "
        "more (2 cycles' rows, the rest of the week 1)"
    )
    assert cycles_covered(weekly([], width=1), start, start + 14 * 86400 + 1800) == ""
