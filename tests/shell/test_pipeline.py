"""The pipeline over fakes: first run, steady state, drift, policies, bad windows."""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import pytest

from monitor.config import ModelSettings, parse
from monitor.errors import (
    DegenerateDataWarning,
    InvalidValuesError,
    RunCancelledError,
    SchemaError,
    SourceError,
    SourceTimeoutError,
    StoreError,
    TooFewRowsError,
    TrainingError,
)
from monitor.pipeline import assess, diff_snapshots, evaluate, train
from monitor.pipeline.commit import DAEMON_ACTOR
from monitor.pipeline.thresholds import run_thresholds
from monitor.pipeline.train import CALIBRATION_ROWS, size_grid
from monitor.records import FAILURE_REASONS, NullTable, ReferencePeriod
from monitor.runner import classify_failure
from monitor.slis import THRESHOLDS
from tests.fakes import (
    FAKE_SOURCES,
    FakeClock,
    FakeSource,
    MemoryHistory,
    MemoryStore,
    blobs,
)

FEATURES = ("a", "b", "c")
CENTERS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])


def model(**over: Any) -> ModelSettings:
    m: dict[str, Any] = {
        "name": "m",
        "features": list(FEATURES),
        "k": 3,
        "window": "10m",
        "schedule": {"interval": "1m"},
        "source": {"kind": "fake"},
        "training": {"n_init": 2, "seed": 3, "silhouette_sample": 600},
        "retrain": "on-drift",
        # One window of reference keeps these tests about the pipeline's mechanics;
        # reference periods have their own tests (test_reference_period.py).
        "reference": {"window": "10m"},
    }
    m.update(over)
    return parse({"models": [m]}, sources=FAKE_SOURCES).models[0]


def steady(start: float, end: float) -> np.ndarray:
    return blobs(900, CENTERS, seed=int(start) % 1000)


def shifted(start: float, end: float) -> np.ndarray:
    moved = CENTERS.copy()
    moved[1] += [0.0, 3.0, 0.0]
    return blobs(900, moved, seed=int(start) % 1000)


class Harness:
    def __init__(self, m: ModelSettings) -> None:
        self.model = m
        self.store = MemoryStore()
        self.history = MemoryHistory()
        self.clock = FakeClock()

    def run(self, make: Any, **kw: Any) -> Any:
        src = FakeSource(FEATURES, make)
        self.clock.advance(60)
        return evaluate(self.model, src, self.store, self.history, self.clock.now(), **kw)


def test_first_run_trains_the_reference(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(model())
    with caplog.at_level(logging.INFO, logger="monitor.pipeline"):
        ev, snap = h.run(steady)
    # Said before the training, which takes minutes on large windows (helper-86).
    assert [r.getMessage() for r in caplog.records if "first run" in r.getMessage()] == [
        "model=m first run: 1 reference window(s) read, 900 rows; training and calibrating "
        "the first model (slow on large windows; no deadline)"
    ]
    assert ev.promoted and ev.decision.startswith("initial")
    assert snap.version == 1 and h.store.live_version("m") == 1
    assert snap.k == 3 and snap.features == FEATURES and snap.reason == "initial"
    assert set(THRESHOLDS) <= set(snap.thresholds)
    # Thresholds: fixed defaults, silhouette floor relative to the reference's own score.
    assert snap.thresholds["feature_psi_critical"] == 0.25
    assert snap.thresholds["silhouette_min"] == pytest.approx(snap.slis["silhouette"] - 0.15)
    assert h.history.evaluations == [ev]
    assert sorted(ev.cluster_sizes) == [300, 300, 300]


def test_a_k_range_is_chosen_with_the_models_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    """k selection made one k-means++ attempt per k whatever training.n_init said."""
    from monitor.core import selection

    real = selection.choose_k
    seen: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(selection, "choose_k", spy)
    k = {"min": 2, "max": 4, "criterion": "silhouette"}
    training = {"n_init": 4, "max_iter": 50, "seed": 3, "silhouette_sample": 600}
    ev, snap = Harness(model(k=k, training=training)).run(steady)
    assert ev.promoted and snap.k == 3
    assert [(kw["n_init"], kw["max_iter"]) for kw in seen] == [(4, 50)]


def test_scaling_none_on_rows_far_from_the_origin_reports_the_slis_of_the_rows_centred() -> None:
    """Epoch seconds under ``scaling: none``: the distances' expansion lost the spread to
    rounding, so labels, silhouettes, inertia and the indices were noise (silhouette
    -0.30 for 0.83). A translation changes no distance, so the reference is the same
    rows at the origin; the rows at 1.7e9 are rounded to 2.4e-7, which moves the SLIs
    by ~1e-7 relative (1e-5 leaves a margin)."""
    slis = []
    for offset in (0.0, 1.7e9):
        h = Harness(model(scaling="none"))
        h.run(lambda s, e, off=offset: steady(s, e) + off)
        ev, _ = h.run(lambda s, e, off=offset: steady(s, e) + off)
        slis.append(ev.slis)
    assert slis[1].keys() == slis[0].keys()
    # The split gain draws its cuts cluster by cluster, and the seeding, which sees other
    # values, numbers the clusters otherwise: other draws of the same statistic.
    split = slis[0].pop("split_gain")
    assert slis[1].pop("split_gain") == pytest.approx(split, abs=0.1)
    for name, value in slis[0].items():
        assert slis[1][name] == pytest.approx(value, rel=1e-5, abs=1e-9), name


def test_steady_state_keeps_the_model_and_reports_small_drift() -> None:
    h = Harness(model())
    first, _ = h.run(steady)
    # The first run's reading and training of its reference is a phase of its own.
    assert first.phase_seconds["reference"] > 0
    ev, snap = h.run(steady)
    assert not ev.promoted and ev.decision == "kept: no drift"
    assert snap.version == 1 and ev.live_version == 1 and ev.candidate_version is None
    assert ev.slis["feature_psi_max"] < 0.1
    assert ev.slis["centroid_drift_max"] < 0.2
    assert ev.slis["label_agreement"] > 0.99
    assert ev.slis["silhouette"] > 0.6
    assert ev.slis["empty_clusters"] == 0
    assert set(ev.feature_psi) == set(FEATURES)
    # The history write comes after the evaluation is built, so it has no phase of its own.
    assert set(ev.phase_seconds) == {"read", "validate", "load", "score", "train", "compare"}


def _regime_gone(start: float, end: float) -> np.ndarray:
    """The first cluster's regime gone; the other two as before."""
    return blobs(600, CENTERS[1:], seed=int(start) % 1000)


@pytest.mark.parametrize(("allowed", "vanished"), [(0, 1.0), (1, 0.0)])
def test_an_empty_cluster_counts_as_vanished_only_past_the_empty_clusters_threshold(
    allowed: int, vanished: float
) -> None:
    # As a split counts as a cluster appearing only past the split gain's threshold:
    # quiet night windows whose rows all fell in one cluster, where the run left the
    # empty clusters out as a drift signal, retrained an on-drift model every hour.
    h = Harness(model(thresholds={"mode": "fixed", "empty_clusters": allowed}))
    h.run(steady)
    ev, _ = h.run(_regime_gone)
    assert ev.slis["empty_clusters"] == 1.0
    assert ev.slis["clusters_vanished"] == vanished
    assert ("clusters appeared or vanished" in ev.decision) == bool(vanished)


def test_a_window_of_one_populated_cluster_is_said_in_the_decision_not_warned_every_run() -> None:
    # A backtest of hourly telemetry printed 90 DegenerateDataWarning lines among its
    # progress, one per run whose rows fell in one cluster; the decision already says it.
    h = Harness(model(thresholds={"mode": "fixed"}))
    h.run(steady)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        ev, _ = h.run(lambda s, e: blobs(300, CENTERS[:1], seed=int(s) % 1000))
    assert ev.cluster_sizes.count(0) == 2 and ev.slis["silhouette"] == 0.0
    assert "silhouette" in ev.decision and ev.slis["davies_bouldin"] == 0.0
    assert ev.slis["simplified_silhouette"] != 0.0  # defined by the centres: still measured


def test_a_shift_is_measured_and_promoted_on_drift() -> None:
    h = Harness(model())
    h.run(steady)
    ev, snap = h.run(shifted)
    # Cluster 1 moved 3 raw units along b, whose reference std is sqrt(var{0, 0, 4} + 0.3^2)
    # = 1.909: 3 / 1.909 = 1.571 scaled units (sampling noise is ~0.02).
    assert ev.slis["centroid_drift_max"] == pytest.approx(3 / np.sqrt(32 / 9 + 0.09), abs=0.05)
    assert max(ev.centroid_drift) == ev.slis["centroid_drift_max"]
    assert ev.feature_psi["b"] > 0.25 and ev.feature_psi["a"] < ev.feature_psi["b"]
    assert ev.promoted and ev.decision.startswith("retrained on drift")
    assert snap.version == 2 and snap.parent_version == 1 and snap.reason == "drift"
    assert h.store.live_version("m") == 2
    # The new reference was trained on the shifted window: scoring it again is calm.
    ev2, _ = h.run(shifted)
    assert ev2.live_version == 2 and not ev2.promoted
    assert ev2.slis["centroid_drift_max"] < 0.2


def test_a_promotion_by_the_policy_is_recorded_as_the_daemons_with_its_decision() -> None:
    h = Harness(model())
    h.run(steady)
    ev, _ = h.run(shifted)
    assert ev.promoted
    events = h.store.events("m")
    assert [(e.action, e.actor, e.version, e.from_version, e.to_version) for e in events] == [
        ("promote", DAEMON_ACTOR, 1, None, 1),
        ("promote", DAEMON_ACTOR, 2, 1, 2),
    ]
    assert events[-1].reason and ev.decision.startswith(events[-1].reason)


def test_versions_are_numbered_after_those_the_history_recorded() -> None:
    # Helper-110: a model whose versions left the store (moved aside) while history kept
    # its runs got v1 again, a number its history already used for another model.
    h = Harness(model())
    h.run(steady)
    h.run(shifted)
    h.store = MemoryStore()  # the model's directory moved aside: history knows v1-v2
    ev, snap = h.run(steady)
    assert ev.decision.startswith("initial") and snap.version == ev.live_version == 3
    ev, snap = h.run(shifted)
    assert ev.promoted and snap.version == 4 and snap.parent_version == 3


class _UnreadableVersions(MemoryHistory):
    def highest_version(self, model: str) -> int:
        raise StoreError("history database h.sqlite: disk I/O error")


def test_a_history_that_cannot_say_its_versions_does_not_hold_the_version_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(model())
    h.history = _UnreadableVersions()
    with caplog.at_level(logging.WARNING, logger="monitor.pipeline"):
        ev, snap = h.run(steady)
    assert ev.promoted and snap.version == 1 and h.store.live_version("m") == 1
    assert [r.getMessage() for r in caplog.records] == [
        "model=m cannot read which versions the history recorded (history database "
        "h.sqlite: disk I/O error); the new version is numbered from the snapshot store alone"
    ]


def test_manual_policy_keeps_one_pending_candidate_fresh() -> None:
    h = Harness(model(retrain="manual"))
    h.run(steady)
    ev, snap = h.run(shifted)
    assert not ev.promoted and snap.version == 1
    assert ev.candidate_version == 2 and "candidate v2 stored, awaiting approval" in ev.decision
    assert h.store.versions("m") == [1, 2] and h.store.live_version("m") == 1
    assert h.store.pending_version("m") == 2
    # Drift persists: the candidate is retrained on the latest window and replaces v2, so
    # that an approval later promotes a model of the data as it is now.
    ev, _ = h.run(shifted)
    assert "refreshing candidate v2" in ev.decision and ev.candidate_version == 3
    assert h.store.pending_version("m") == 3 and h.store.live_version("m") == 1
    # Drift gone: the pending candidate stays for a person to judge.
    ev, _ = h.run(steady)
    assert ev.decision == "kept: no drift" and h.store.pending_version("m") == 3


@pytest.mark.parametrize("policy", ["manual", "on-drift"])
def test_a_version_made_live_during_a_run_is_not_undone_by_its_candidate(policy: str) -> None:
    # An approval while a run measured the old live version: the run stored a candidate
    # of the old model as pending (v13 of parent 1, served as a canary), or promoted
    # over the operator's choice.
    # Fixed thresholds: the race is in the promotion, and each retrain's calibration
    # took seconds.
    h = Harness(model(retrain=policy, thresholds={"mode": "fixed"}))
    h.run(steady)
    h.run(shifted)  # v2: live (on-drift) or pending (manual)
    h.store.set_live("m", 1)  # back to v1, so that the next run drifts again

    def approving(*args: Any) -> Any:
        done = assess(*args)
        h.store.set_live("m", 2)  # the operator, while the run works
        return done

    ev, live = h.run(shifted, assess_with=approving)
    assert ev.live_version == 1 and ev.candidate_version is None and not ev.promoted
    assert ev.decision.endswith(
        "; v2 was made live during the run, which measured v1: its candidate is not stored"
    )
    assert live.version == 2 and h.store.live_version("m") == 2
    assert h.store.versions("m") == [1, 2] and h.store.pending_version("m") is None


@pytest.mark.parametrize("policy", ["manual", "on-drift"])
def test_a_version_made_live_while_the_candidate_is_written_is_not_undone(policy: str) -> None:
    # The approval lands after the run looked at the live pointer, while its snapshot is
    # encoded and written: the save must not move the pointer back over it.
    # Fixed thresholds: the race is in the promotion, and each retrain's calibration
    # took seconds.
    h = Harness(model(retrain=policy, thresholds={"mode": "fixed"}))
    h.run(steady)
    h.run(shifted)
    h.store.set_live("m", 1)
    save = h.store.save

    def approving_first(snapshot: Any, **kw: Any) -> Any:
        h.store.set_live("m", 2)  # the operator, between the run's check and its save
        return save(snapshot, **kw)

    h.store.save = approving_first  # type: ignore[method-assign]
    ev, live = h.run(shifted)
    assert ev.decision.endswith(
        "; v2 was made live during the run, which measured v1: its candidate is not stored"
    )
    assert ev.candidate_version is None and not ev.promoted
    assert live.version == 2 and h.store.live_version("m") == 2
    assert h.store.versions("m") == [1, 2] and h.store.pending_version("m") is None


@pytest.mark.parametrize(("rows", "top"), [(3000, 6000), (150_000, 200_000), (300_000, 200_000)])
def test_calibration_sizes_stop_at_the_sample_null_windows_are_drawn_from(
    rows: int, top: int
) -> None:
    # Twice a window of a million rows was calibrated at 2M rows drawn over from a 200,000-
    # row sample: 6 minutes for a first run, in that sample's noise, not a window's.
    ref = ReferencePeriod(
        np.zeros((rows, 3)), np.zeros(rows, dtype=np.int64), np.zeros(1), np.full(1, 600.0)
    )
    grid = size_grid(ref, model())
    assert grid[-1] == top == min(2 * rows, CALIBRATION_ROWS)
    assert min(rows, CALIBRATION_ROWS) in grid


def hourly_period(blocks: int, rows: int) -> ReferencePeriod:
    starts = 3600.0 * np.arange(blocks)
    block = np.repeat(np.arange(blocks), rows)
    return ReferencePeriod(np.zeros((blocks * rows, 3)), block, starts, starts + 3600.0)


@pytest.mark.parametrize(
    ("blocks", "rows", "grid"),
    [
        # A day of 5-minute windows, thinned to a 200,000-row sample, which holds 48 null
        # windows of 4,166 rows: more than twice a window.
        (288, 2000, [100, 200, 400, 800, 1600, 2000, 3200, 4000]),
        # At most 200,000 rows, kept whole: up to twice a window (its null windows of a
        # window's rows are the windows themselves).
        (24, 300, [100, 200, 300, 400, 600]),
        # Fewer than 10 windows: null windows are bootstrapped, any size a fresh draw.
        (9, 3000, [100, 200, 400, 800, 1600, 3000, 3200, 6000]),
    ],
)
def test_calibrated_sizes_of_windows_a_sample_holds_48_of(
    blocks: int, rows: int, grid: list[int]
) -> None:
    assert size_grid(hourly_period(blocks, rows), model(validation={"min_rows": 100})) == grid


def test_a_large_period_calibrates_sizes_its_sample_holds_48_null_windows_of(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A null window of n rows is drawn from one reference window (or a run of them), so a
    # sample of S rows holds about S / n different ones, and a threshold sits at 1/700 of
    # them: a day of 200,000-row windows was calibrated at 200,000 rows on a 200,000-row
    # sample, every null window the whole sample, and two thirds of quiet windows flagged.
    monkeypatch.setattr(train, "CALIBRATION_ROWS", 2400)
    ref = hourly_period(24, 2000)  # 48,000 rows of 3 features
    # The sample grows to hold 48 null windows of twice a window's rows: here every row.
    assert train.calibration_rows(ref) == 48_000 and train.largest_null_window(ref) == 1000
    monkeypatch.setattr(train, "CALIBRATION_VALUES", 60_000)  # 20,000 rows of 3 features
    assert train.calibration_rows(ref) == 20_000 and train.largest_null_window(ref) == 416
    monkeypatch.setattr(train, "CALIBRATION_VALUES", 3000)  # never below CALIBRATION_ROWS
    assert train.calibration_rows(ref) == 2400 and train.largest_null_window(ref) == 50
    # Below the fewest rows a run accepts, if need be: larger runs take these thresholds.
    assert size_grid(ref, model(validation={"min_rows": 100})) == [50]


def test_scheduled_policy_waits_for_retrain_every() -> None:
    h = Harness(model(retrain="scheduled", training={"retrain_every": "5m", "n_init": 1}))
    h.run(steady)
    ev, _ = h.run(shifted)
    assert not ev.promoted and ev.decision == "kept: scheduled retrain not due"
    h.clock.advance(300)
    ev, snap = h.run(steady)
    assert ev.promoted and snap.reason == "scheduled"


def test_same_seed_same_result() -> None:
    a, b = Harness(model()), Harness(model())
    for h in (a, b):
        h.run(steady)
    ea, _ = a.run(shifted)
    eb, _ = b.run(shifted)
    assert ea.slis == eb.slis
    assert ea.feature_psi == eb.feature_psi


def test_unit_change_shows_in_that_features_psi() -> None:
    h = Harness(model())
    h.run(steady)

    def x1000(start: float, end: float) -> np.ndarray:
        X = steady(start, end)
        X[:, 2] *= 1000
        return X

    ev, _ = h.run(x1000)
    assert ev.feature_psi["c"] > 1.0
    assert max(ev.feature_psi["a"], ev.feature_psi["b"]) < 0.1


@pytest.mark.parametrize(
    ("make", "error", "reason", "match"),
    [
        (
            lambda s, e: np.where(np.arange(900)[:, None] % 10 == 0, np.nan, steady(s, e)),
            InvalidValuesError,
            "invalid_values",
            r"model 'm', window fake\[.*\): 90 of 900 rows \(10.0%\) hold NaN",
        ),
        (lambda s, e: steady(s, e)[:2], TooFewRowsError, "too_few_rows", "2 valid rows"),
        (lambda s, e: steady(s, e)[:, :2], SchemaError, "schema", "expected 3 columns"),
    ],
)
def test_bad_windows_fail_and_store_nothing(
    make: Any, error: type, reason: str, match: str
) -> None:
    h = Harness(model())
    h.run(steady)
    before = (h.store.versions("m"), len(h.history.evaluations))
    with pytest.raises(error, match=match) as info:
        h.run(make)
    assert classify_failure(info.value) == reason
    assert (h.store.versions("m"), len(h.history.evaluations)) == before
    assert h.store.live_version("m") == 1


@pytest.mark.parametrize(
    ("rows", "distinct", "metric"),
    [
        (np.ones((900, 3)), 1, "euclidean"),
        (np.tile([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], (450, 1)), 2, "euclidean"),
        # Cosine sees directions: rows that are multiples of one another are one point.
        (np.outer(np.arange(900.0) % 2 + 1, [1.0, 2.0, 3.0]), 1, "cosine"),
    ],
)
def test_a_first_model_on_fewer_distinct_rows_than_k_fails_and_stores_nothing(
    rows: np.ndarray, distinct: int, metric: str
) -> None:
    h = Harness(model(metric=metric, scaling="none"))
    with pytest.raises(TrainingError) as info:
        h.run(lambda s, e: rows)
    assert str(info.value) == (
        f"model 'm': cannot train 3 clusters on rows that hold {distinct} distinct point(s): "
        f"{3 - distinct} would be empty. A constant or stuck feature upstream, or k too large "
        "for this data"
    )
    assert classify_failure(info.value) == "training"
    assert h.store.versions("m") == [] and h.history.evaluations == []
    ev, snap = h.run(steady)  # the source mended: the first model comes then
    assert ev.decision.startswith("initial") and snap.version == 1


def test_drop_policy_drops_few_bad_rows() -> None:
    h = Harness(model(validation={"nan_policy": "drop", "max_invalid_ratio": 0.05}))
    h.run(steady)

    def few_nans(start: float, end: float) -> np.ndarray:
        X = steady(start, end)
        X[:9, 1] = np.inf
        return X

    ev, _ = h.run(few_nans)
    assert ev.n_rows == 891


def test_renamed_feature_is_a_schema_error() -> None:
    h = Harness(model())
    src = FakeSource(("a", "B", "c"), steady)
    with pytest.raises(
        SchemaError, match=r"missing column\(s\) \['b'\]; unexpected column\(s\) \['B'\]"
    ):
        evaluate(h.model, src, h.store, h.history, h.clock.now())


def test_reordered_features_fail_the_run_naming_the_retrain_that_keeps_the_versions() -> None:
    # The advice had been to move the model's snapshots aside: rollback and versions lost.
    h = Harness(model())
    h.run(steady)
    src = FakeSource(("b", "a", "c"), steady)
    with pytest.raises(SchemaError) as info:
        evaluate(model(features=["b", "a", "c"]), src, h.store, h.history, h.clock.now())
    assert str(info.value) == (
        "model 'm': live snapshot v1 was trained on features ['a', 'b', 'c'] but the "
        "configuration lists ['b', 'a', 'c']; train a model of the configured features with "
        "`kmeans-monitor snapshots retrain m --config FILE --live` (the old versions stay for "
        "rollback), or restore the configured features"
    )


def test_source_errors_pass_through_with_their_reason() -> None:
    h = Harness(model())

    def timeout(start: float, end: float) -> np.ndarray:
        raise SourceTimeoutError("prometheus did not answer in 5s")

    with pytest.raises(SourceTimeoutError) as info:
        h.run(timeout)
    assert classify_failure(info.value) == "source_timeout"
    assert classify_failure(RuntimeError("bug")) == "internal"


def test_stopping_abandons_the_run_before_anything_is_stored() -> None:
    h = Harness(model())
    calls = iter([False, False, True])
    with pytest.raises(RunCancelledError):
        h.run(steady, should_stop=lambda: next(calls, True))
    assert h.store.versions("m") == [] and h.history.evaluations == []


def test_a_stop_once_the_first_model_is_trained_stores_it_and_skips_the_scoring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A SIGTERM while a first run trained (minutes on large windows) threw the trained
    # model away at the next phase ('score'), and the restart trained it again.
    trained = []
    train_reference = train.train_reference

    def then_stop(*args: Any, **kwargs: Any) -> Any:
        trained.append(train_reference(*args, **kwargs))
        return trained[-1]

    monkeypatch.setattr(train, "train_reference", then_stop)
    h = Harness(model())
    with pytest.raises(RunCancelledError) as info:
        h.run(steady, should_stop=lambda: bool(trained))
    assert str(info.value) == (
        "first run stopped once its model was trained: stored as live v1, its window not "
        "scored; the daemon is stopping"
    )
    assert h.store.live_version("m") == 1 and h.history.highest_version("m") == 1
    assert h.store.load("m").checksum == h.store.load("m", 1).checksum
    np.testing.assert_array_equal(h.store.load("m").centers, trained[0].centers)
    assert h.history.evaluations == []  # no window was scored
    ev, live = h.run(steady)  # the next run scores with it: no second training
    assert len(trained) == 1 and live.version == 1 and ev.live_version == 1


def test_a_stop_during_a_first_runs_scoring_still_stores_the_trained_model() -> None:
    # Past the training only the window's scoring is left, in seconds: the run completes.
    h = Harness(model())
    checks: list[str] = []

    def stopping() -> bool:
        checks.append("check")
        return len(checks) > 6  # read, load, reference, validate, reference, trained: stop

    ev, snap = h.run(steady, should_stop=stopping)
    assert snap.version == 1 and h.store.live_version("m") == 1
    assert h.history.evaluations == [ev]


def test_diff_between_versions() -> None:
    h = Harness(model())
    h.run(steady)
    h.run(shifted)
    d = diff_snapshots(h.store.load("m", 1), h.store.load("m", 2))
    assert d.centroid_drift.max == pytest.approx(3 / np.sqrt(32 / 9 + 0.09), abs=0.05)
    assert d.feature_psi["b"] > d.feature_psi["a"]
    same = diff_snapshots(h.store.load("m", 1), h.store.load("m", 1))
    assert same.centroid_drift.max == pytest.approx(0.0, abs=1e-9)


def test_calibrated_thresholds_come_from_the_null_at_the_run_size() -> None:
    h = Harness(model(thresholds={"mode": "calibrated", "false_alarm_rate": 0.05}))
    _, snap = h.run(steady)
    assert snap.null is not None and snap.reference_windows is not None
    ev, _ = h.run(steady)
    t = ev.thresholds
    # 900-point windows of 3 features: no-change PSI is a few hundredths, far below the
    # fixed 0.1; the calibrated level sits there, and the critical level keeps 0.25.
    assert 0.005 < t["feature_psi_warning"] < 0.1
    assert t["feature_psi_critical"] == 0.25
    assert 0 < t["outlier_ratio"] < 0.05
    assert 0 < t["centroid_drift"] < 0.5
    assert ev.decision == "kept: no drift"
    ev, _ = h.run(shifted)
    assert ev.feature_psi["b"] > t["feature_psi_critical"] and ev.promoted


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (SourceTimeoutError("t"), "source_timeout"),
        (SourceError("s"), "source_unavailable"),
        (SchemaError("c"), "schema"),
        (InvalidValuesError("n"), "invalid_values"),
        (TooFewRowsError("r"), "too_few_rows"),
        (TrainingError("k"), "training"),
        (StoreError("io"), "store"),
        (ZeroDivisionError(), "internal"),
    ],
)
def test_every_failure_reason(exc: BaseException, reason: str) -> None:
    assert classify_failure(exc) == reason
    assert reason in FAILURE_REASONS


def test_a_sum_that_overflows_is_not_taken_for_bad_values() -> None:
    from monitor.pipeline import validate_window
    from monitor.records import Window

    X = np.full((200, 3), 3e38, dtype=np.float32)  # finite, but their sum is not
    window = Window("m", 0.0, 1.0, FEATURES, X)
    assert validate_window(window, model()) is X
    X[5, 1] = np.nan
    with pytest.raises(InvalidValuesError, match="1 of 200 rows"):
        validate_window(window, model())


FIXED = {
    "feature_psi_warning": 0.1,
    "feature_psi_critical": 0.25,
    "label_psi": 0.1,
    "centroid_drift": 0.5,
    "silhouette_min": 0.2,
    "outlier_ratio": 0.05,
    "empty_clusters": 0.0,
}


def table(**at_size: list[float]) -> NullTable:
    """A null table at sizes 100 and 1000 (values by SLI key)."""
    keys = tuple(at_size)
    values = np.array([at_size[key] for key in keys]).T
    return NullTable(np.array([100, 1000]), keys, values, 0.01, 0.002, 1000)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("fixed", FIXED),
        (
            "calibrated",
            FIXED
            | {
                "feature_psi_warning": 0.05,
                "feature_psi_critical": 0.25,  # raised at most, never lowered
                "label_psi": 0.3,
                "silhouette_min": 0.4,
            },
        ),
        (
            "auto",  # the configured value unless noise at this size would cross it
            FIXED | {"label_psi": 0.3, "silhouette_min": 0.2},
        ),
    ],
)
def test_run_thresholds_by_mode(mode: str, expected: dict[str, float]) -> None:
    null = table(feature_psi_max=[0.05, 0.05], label_psi=[0.3, 0.3], silhouette=[0.4, 0.4])
    assert run_thresholds(FIXED, null, mode, 100) == (expected, ())


def test_run_thresholds_interpolate_in_log_log_and_clamp() -> None:
    null = table(label_psi=[0.4, 0.04])
    assert run_thresholds(FIXED, null, "calibrated", 100)[0]["label_psi"] == 0.4
    # Halfway in log n between 100 and 1000: halfway in log threshold too, as 1/n is.
    mid = run_thresholds(FIXED, null, "calibrated", 316)[0]["label_psi"]
    assert mid == pytest.approx(0.4 * 0.1 ** (math.log(3.16) / math.log(10)), rel=1e-9)
    assert run_thresholds(FIXED, null, "calibrated", 50)[0]["label_psi"] == pytest.approx(0.4)
    assert run_thresholds(FIXED, null, "calibrated", 10**6)[0]["label_psi"] == pytest.approx(0.04)


def test_an_undefined_null_leaves_the_sli_out_as_a_drift_signal() -> None:
    null = table(centroid_drift_max=[np.nan, 0.3], label_psi=[0.2, 0.02])
    thresholds, undefined = run_thresholds(FIXED, null, "auto", 100)
    assert undefined == ("centroid_drift_max",)
    assert "centroid_drift" not in thresholds and thresholds["label_psi"] == 0.2
    # At a size where both ends are defined it is back.
    thresholds, undefined = run_thresholds(FIXED, null, "auto", 1000)
    assert undefined == () and thresholds["centroid_drift"] == 0.5


def test_a_threshold_the_sli_cannot_pass_leaves_it_out_as_a_drift_signal() -> None:
    # An outlier-ratio threshold of 2.1 (a reference of three distinct points) was kept:
    # the alert could never fire, and nothing said so.
    null = table(outlier_ratio=[2.1, 0.02])
    thresholds, undefined = run_thresholds(FIXED, null, "calibrated", 100)
    assert undefined == ("outlier_ratio",) and "outlier_ratio" not in thresholds
    thresholds, undefined = run_thresholds(FIXED, null, "calibrated", 1000)
    assert undefined == () and thresholds["outlier_ratio"] == pytest.approx(0.02)


def test_a_threshold_above_the_windows_own_ceiling_leaves_the_sli_out() -> None:
    # At 20 rows a window under a seasonal model, a feature-PSI threshold of 9.5 to 13
    # stood above the 8.3 of a window all in one bin: the alert could never fire.
    null = table(feature_psi_max=[9.5, 0.05], label_psi=[0.3, 0.03], empty_clusters=[2.2, 0.0])
    ceilings = {"feature_psi_max": 8.3, "label_psi": 6.1, "empty_clusters": 1.0}
    thresholds, undefined = run_thresholds(FIXED, null, "calibrated", 100, ceilings)
    assert undefined == ("feature_psi_max", "empty_clusters")
    assert not {"feature_psi_warning", "feature_psi_critical", "empty_clusters"} & set(thresholds)
    assert thresholds["label_psi"] == 0.3
    thresholds, undefined = run_thresholds(FIXED, null, "calibrated", 1000, ceilings)
    assert undefined == () and thresholds["feature_psi_warning"] == pytest.approx(0.05)


def test_the_ceilings_are_those_of_the_window_s_own_reference() -> None:
    from monitor.core.drift import psi_ceiling
    from monitor.pipeline.measure import _ceilings

    _, snap = Harness(model()).run(steady)  # k = 3
    even = _ceilings(snap, None)
    assert even["empty_clusters"] == 2.0
    assert even["label_psi"] == pytest.approx(psi_ceiling(snap.reference_shares, 1e-4))
    assert even["feature_psi_max"] == pytest.approx(
        max(psi_ceiling(f, snap.bins.epsilon) for f in snap.bins.reference_fractions)
    )
    # A phase whose reference has no row of the first cluster: a window all there reads
    # far more than against the whole reference.
    phase = (np.array([0.0, 0.5, 0.5]), snap.bins)
    assert _ceilings(snap, phase)["label_psi"] > even["label_psi"] + 1.0


def test_warm_kernels_loads_every_compiled_kernel_of_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # The daemon and each worker process call it before their first run.
    import monitor.pipeline as pipeline
    from monitor.core import drift, kmeans

    loaded: list[str] = []
    monkeypatch.setattr(kmeans, "warm_up", lambda: loaded.append("k-means"))
    monkeypatch.setattr(drift, "warm_up", lambda: loaded.append("PSI count"))
    pipeline.warm_kernels()
    assert sorted(loaded) == ["PSI count", "k-means"]


def test_a_cosine_model_s_new_version_keeps_the_live_k_of_its_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cosine model's new version was trained from k-means++, and with a k range chose
    k again on the window: a promotion changed k unasked (docs/retrain.md: the live
    model's k until `snapshots retrain`)."""
    from types import SimpleNamespace

    from monitor.core import selection

    picks = iter([2, 4])  # the first model's choice, then what a second choice would be
    calls: list[int] = []

    def choose(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return SimpleNamespace(best_silhouette=next(picks))

    monkeypatch.setattr(selection, "choose_k", choose)
    h = Harness(model(k={"min": 2, "max": 4, "criterion": "silhouette"}, metric="cosine"))
    _, first = h.run(steady)
    assert first.k == 2 and len(calls) == 1
    ev, snap = h.run(shifted)
    assert ev.promoted and snap.version == 2
    assert snap.k == 2 and len(calls) == 1
