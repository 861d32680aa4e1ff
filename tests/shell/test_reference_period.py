"""A reference that is a period: read window by window, calibrated at each run's size."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from monitor import pipeline
from monitor import slis as S
from monitor.alerting import held_conditions, past
from monitor.config import ModelSettings, parse
from monitor.core.calibration import threshold_at
from monitor.errors import (
    AwaitingReferenceError,
    ConfigError,
    NoDataError,
    QueryError,
    SourceDataError,
    SourceError,
    SourceTimeoutError,
    TooFewRowsError,
    TransientSourceError,
)
from monitor.pipeline import evaluate, reference, train
from monitor.pipeline.decide import phase_gaps
from monitor.pipeline.period import put_off_of
from monitor.pipeline.reference import MAX_REFERENCE_WINDOWS, _window_ends, read_reference
from monitor.pipeline.scoring import prepare, score
from monitor.records import ReferencePeriod
from monitor.runner import classify_failure
from monitor.timestamps import format_time, parse_time
from tests.fakes import FAKE_SOURCES, FakeSource, MemoryHistory, MemoryStore, blobs

FEATURES = ("a", "b", "c")
CENTERS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])
NOW = 1_800_000_000.0  # 08:00 UTC
DAY = 86400.0


def model(**over: Any) -> ModelSettings:
    m: dict[str, Any] = {
        "name": "m",
        "features": list(FEATURES),
        "k": 3,
        "window": "1h",
        "schedule": {"interval": "1h"},
        "source": {"kind": "fake"},
        "training": {"n_init": 1, "seed": 3, "silhouette_sample": 400},
        "reference": {"window": "1d"},
    }
    m.update(over)
    return parse({"models": [m]}, sources=FAKE_SOURCES).models[0]


def daily_mix(start: float, end: float) -> np.ndarray:
    """Cluster shares that turn smoothly with the time of day (a traffic mix)."""
    angle = 2 * np.pi * ((start + end) / 2 % DAY) / DAY
    weights = np.exp(1.5 * np.cos(angle - np.array([0.0, 2.1, 4.2])))
    shares = weights / weights.sum()
    rng = np.random.default_rng(int(start) % 100_000)
    labels = rng.choice(3, size=600, p=shares)
    return CENTERS[labels] + 0.4 * rng.normal(size=(600, 3))


def run(m: ModelSettings, make: Any, now: float = NOW, store: MemoryStore | None = None) -> Any:
    src = FakeSource(FEATURES, make)
    store = store or MemoryStore()
    ev, snap = evaluate(m, src, store, MemoryHistory(), now)
    return ev, snap, src, store


def test_the_first_run_trains_on_the_period_read_window_by_window() -> None:
    ev, snap, src, _ = run(model(), lambda s, e: blobs(300, CENTERS, seed=int(s)))
    # This window first, then the 23 other hours of the period (this one is not read twice),
    # then the 23 hours between them, for the calibration only.
    assert len(src.calls) == len(set(src.calls)) == 24 + 23
    assert sorted(src.calls)[0] == (NOW - DAY, NOW - DAY + 3600)
    assert (
        src.calls[24:]
        == [(NOW - 1800 - i * 3600 - 3600, NOW - 1800 - i * 3600) for i in range(23)][::-1]
    )
    assert snap.window_start == NOW - DAY and snap.window_end == NOW
    assert snap.n_rows == 24 * 300
    assert snap.reference_windows is not None
    assert snap.reference_windows.values.shape[0] == 24
    assert (snap.reference_windows.rows == 300).all()
    # From validation.min_rows (auto: half the rows of the smallest window, 300), doubling
    # to twice a reference window's rows, and that window's own size (300).
    assert snap.null is not None and list(snap.null.sizes) == [150, 300, 600]
    # The first evaluation reports this window, scored by the new model.
    assert ev.n_rows == 300 and ev.window_start == NOW - 3600


def test_windows_that_cannot_be_read_are_left_out_and_named(caplog: Any) -> None:
    def flaky(start: float, end: float) -> np.ndarray:
        if int((start - NOW) // 3600) % 5 == 0 and end < NOW:
            raise SourceError("scrape gap")
        return blobs(300, CENTERS, seed=int(start))

    ev, snap, _, _ = run(model(), flaky)
    assert snap.reference_windows is not None and snap.reference_windows.values.shape[0] == 20
    assert "4 of 24 windows left out" in caplog.text and "scrape gap" in caplog.text
    # Not "20 distinct window(s)", which reads as windows that repeated others' rows.
    assert ev.decision == (
        "initial reference model trained on 20 window(s) of the reference period's 24; 4 left "
        "out (unreadable or too few rows, named in the log); no reference rows at 03:00-04:00, "
        "12:00-13:00, 17:00-18:00 UTC and 1 more (4 of 24 hourly phases): windows there are "
        "compared with the hours next to them"
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TransientSourceError("answered HTTP 503: overloaded (after 3 attempts)"),
         "source_unavailable"),
        (SourceTimeoutError("did not answer within 2s"), "source_timeout"),
    ],
)  # fmt: skip
def test_a_window_the_source_failed_to_read_fails_the_first_run(error: Any, reason: str) -> None:
    """A window left out because Prometheus was overloaded for a few minutes trained the
    first model on half the day, and its quiet nights paged from then on (prom F1): the
    run fails, names the window, and the next run reads the period again."""

    def overloaded(start: float, end: float) -> np.ndarray:
        if NOW - 12 * 3600 <= start < NOW - 6 * 3600:
            raise error
        return blobs(300, CENTERS, seed=int(start))

    store = MemoryStore()
    with pytest.raises(type(error)) as caught:
        run(model(), overloaded, store=store)
    assert str(caught.value) == (
        "the window [2027-01-14T20:00:00Z, 2027-01-14T21:00:00Z) of the reference period could "
        "not be read, and no model is trained on part of its period (the next run reads it "
        f"again): {error}"
    )
    assert classify_failure(caught.value) == reason
    assert store.versions("m") == []
    _, snap, _, _ = run(model(), lambda s, e: blobs(300, CENTERS, seed=int(s)), store=store)
    assert snap.reference_windows is not None and snap.reference_windows.values.shape[0] == 24


def test_a_period_with_no_usable_window_fails_the_run_with_the_source_error() -> None:
    def down(start: float, end: float) -> np.ndarray:
        if end < NOW:
            raise SourceError("no history before today")
        return blobs(300, CENTERS, seed=1)

    # The current window alone is usable: the reference is that one window.
    _, snap, _, _ = run(model(), down)
    assert snap.n_rows == 300
    with pytest.raises(SourceError, match="history"):
        run(model(), lambda s, e: (_ for _ in ()).throw(SourceError("history unavailable")))


def test_data_no_window_can_be_read_from_fail_the_period_at_the_first_window() -> None:
    """A spark source of epoch milliseconds failed each of a day's 144 windows the same
    way, one Spark job each (160 s), before the run failed naming them all."""
    reads: list[float] = []

    def milliseconds(start: float, end: float) -> np.ndarray:
        if end < NOW:
            reads.append(start)
            raise SourceDataError("time column 'ts': timestamp 1796486785037 is out of range")
        return blobs(300, CENTERS, seed=1)

    with pytest.raises(SourceDataError, match="1796486785037") as caught:
        run(model(), milliseconds)
    assert len(reads) == 1 and classify_failure(caught.value) == "source_unavailable"


def test_an_expression_the_source_refuses_fails_the_period_at_the_first_window() -> None:
    """A PromQL expression Prometheus does not parse was sent once per window of the
    period, and the run failed as source_unavailable: the configuration's fault."""
    reads: list[float] = []

    def refused(start: float, end: float) -> np.ndarray:
        reads.append(start)
        raise QueryError("answered HTTP 400: bad_data: 1:5: parse error")

    with pytest.raises(QueryError, match="bad_data") as caught:
        run(model(), refused)
    assert len(reads) == 1 and classify_failure(caught.value) == "schema"


def newest_file(mtimes: list[float], seed: int = 0) -> Any:
    """A source in the files source's ``window: file`` mode: each window gets the newest
    of the files written at ``mtimes`` before its end (the same one until the next);
    each file holds 300 fresh rows of the same blobs."""
    files = {t: blobs(300, CENTERS, seed=seed + i, scale=0.6) for i, t in enumerate(mtimes)}

    def make(start: float, end: float) -> tuple[np.ndarray, str]:
        newest = max(t for t in mtimes if t < end)
        return files[newest], f"t.csv (modified {newest:.0f})"

    return make


def test_windows_of_identical_rows_read_by_time_are_each_kept(caplog: Any) -> None:
    """A source that reads by time (the files source's time_range mode, Prometheus) gives
    other rows for every window, however alike: an idle service's hours of identical
    values are as many windows of the period, not one."""
    idle = blobs(300, CENTERS, seed=4, scale=0.6)
    _, snap, _, _ = run(model(), lambda s, e: idle)
    assert snap.reference_windows is not None
    assert snap.reference_windows.rows.tolist() == [300] * 24
    assert "returned the rows of an earlier window" not in caplog.text


def test_a_file_that_every_window_of_the_period_reads_is_counted_once() -> None:
    """One file written 23.5 h ago, read by each of the 24 windows of a day's period:
    counted 24 times, the calibration saw 24 identical blocks, no spread between them,
    and every fresh window of the same data drifted."""
    ev, snap, src, store = run(model(), newest_file([NOW - 23.5 * 3600]))
    assert len(src.calls) == 24 + 23  # every window is still read, and every one between
    assert snap.n_rows == 300
    windows = snap.reference_windows
    assert windows is not None and windows.rows.tolist() == [300]
    # The window the file was written in: the period's first.
    assert (windows.starts[0], windows.ends[0]) == (NOW - DAY, NOW - DAY + 3600)
    assert ev.decision == (
        "initial reference model trained on 1 distinct window(s) of the reference "
        "period's 24 (fewer than 10: thresholds from their rows resampled); no reference rows "
        "at 09:00-08:00 UTC (23 of 24 hourly phases): windows there are compared with the "
        "hours next to them, or with the whole period where those hold none either"
    )
    for i in range(3):  # fresh files of the same data, an hour apart
        fresh = newest_file([NOW + i * 3600 + 60], seed=100 + i)
        later, *_ = run(model(), fresh, NOW + (i + 1) * 3600, store)
        assert later.decision.startswith("kept: no drift"), later.decision


def test_files_written_every_six_hours_are_each_one_window_of_the_period(caplog: Any) -> None:
    mtimes = [NOW - (23.5 - 6 * i) * 3600 for i in range(4)]
    ev, snap, _, _ = run(model(), newest_file(mtimes))
    windows = snap.reference_windows
    assert snap.n_rows == 4 * 300
    assert windows is not None and windows.starts.tolist() == [
        NOW - (24 - 6 * i) * 3600 for i in range(4)
    ]
    assert "20 of 24 windows returned the rows of an earlier window" in caplog.text
    assert "on 4 distinct window(s) of the reference period's 24" in ev.decision


def test_the_files_source_in_file_mode_gives_a_period_of_its_one_file(tmp_path: Path) -> None:
    from monitor.sources.files import build, parse_options

    X = blobs(300, CENTERS, seed=1, scale=0.6)
    path = tmp_path / "t.csv"
    np.savetxt(path, X, delimiter=",", header=",".join(FEATURES), comments="")
    os.utime(path, (NOW - 23.5 * 3600, NOW - 23.5 * 3600))
    options, problems = parse_options({"path": str(tmp_path)})  # window: file, the default
    assert problems == [] and options is not None
    _, snap = evaluate(model(), build("m", FEATURES, options), MemoryStore(), MemoryHistory(), NOW)
    assert snap.n_rows == 300
    assert snap.reference_windows is not None and snap.reference_windows.rows.tolist() == [300]


def test_the_period_cut_half_a_window_off_is_read_for_the_calibration_only(
    caplog: Any,
) -> None:
    """The cut's windows end half a window before the period's own; a cut window that fails
    is left out without a word, a cut of fewer than two windows is not kept, and a model
    in the fixed mode reads none."""

    def flaky(start: float, end: float) -> np.ndarray:
        if end == NOW - 5400:  # a window of the cut only
            raise SourceError("scrape gap")
        return blobs(300, CENTERS, seed=int(start))

    src = FakeSource(FEATURES, flaky)
    ref = read_reference(src, model(), NOW, src.read_window(NOW - 3600, NOW))
    assert ref.n_windows == 24 and ref.skipped == ()
    (cut,) = ref.cuts
    assert cut.n_windows == 22 and cut.cuts == ()
    expected = [NOW - 1800 - i * 3600 for i in range(23) if i != 1]
    assert cut.ends.tolist() == sorted(expected)
    assert cut.n_rows == 22 * 300 and cut.block.max() == 21
    assert "left out" not in caplog.text
    two = model(window="12h", schedule={"interval": "12h"})
    src = FakeSource(FEATURES, lambda s, e: blobs(300, CENTERS, seed=int(s)))
    assert read_reference(src, two, NOW, src.read_window(NOW - DAY / 2, NOW)).cuts == ()
    fixed = model(thresholds={"mode": "fixed"})  # calibrates nothing: no second read
    src = FakeSource(FEATURES, lambda s, e: blobs(300, CENTERS, seed=int(s)))
    assert read_reference(src, fixed, NOW, src.read_window(NOW - 3600, NOW)).cuts == ()
    assert len(src.calls) == 24


def test_a_file_read_at_every_offset_makes_no_cut() -> None:
    """In ``window: file`` mode a window half an hour off returns a file the period's own
    windows returned: not a window between theirs, and not counted twice."""
    make = newest_file([NOW - (23.5 - 6 * i) * 3600 for i in range(4)])
    src = FakeSource(FEATURES, make)
    ref = read_reference(src, model(), NOW, src.read_window(NOW - 3600, NOW))
    assert ref.n_windows == 4 and ref.cuts == ()


#: Rows every 6 s from two days before NOW to two days after, the same in every window
#: that holds their time: cluster 0's rows sit 1.2 to one side of its centre in even
#: hours and to the other in odd ones.
_T = np.arange(NOW - 2 * DAY, NOW + 2 * DAY, 6.0)
_LABELS = np.random.default_rng(7).choice(3, size=_T.shape[0], p=[0.5, 0.3, 0.2])
_ROWS = CENTERS[_LABELS] + 0.3 * np.random.default_rng(8).normal(size=(_T.shape[0], 3))
_ROWS[:, 0] += np.where(_LABELS == 0, np.where((_T // 3600) % 2 == 0, -1.2, 1.2), 0.0)


def alternating(start: float, end: float) -> np.ndarray:
    """The rows of ``[start, end)``: a window of an hour on the hours holds one side of
    cluster 0, one half an hour off both sides, as a real metric's window that takes in
    a change of level each hour does."""
    lo, hi = np.searchsorted(_T, [start, end])
    return _ROWS[lo:hi]


def test_runs_half_a_window_off_the_references_windows_hold_the_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs every hour on the half hour (a schedule restarted half an hour off the first
    run, or one of a schedule shorter than the window): compared with null windows cut on
    the hours alone, cluster 0 in two parts reads as a cluster forming in every one."""
    m = model(thresholds={"mode": "calibrated"}, seasonality="none")
    flags = {}
    for cuts in (1, reference.CUTS):
        monkeypatch.setattr(reference, "CUTS", cuts)
        _, _, _, store = run(m, alternating)
        # Six runs: with one cut every one of them flags (and trains a candidate, 1.7 s).
        runs = [run(m, alternating, NOW + 1800 + i * 3600, store)[0] for i in range(6)]
        flags[cuts] = sum(bool(held_conditions(ev)) for ev in runs)
    assert flags[1] >= 5 and flags[reference.CUTS] == 0, flags


def test_a_daily_mix_does_not_alarm_when_compared_at_its_phase() -> None:
    seasonal = model(seasonality="daily", thresholds={"mode": "calibrated"})
    plain = model(seasonality="none", thresholds={"mode": "calibrated"})
    first = {}  # each model's run at 3 h, the first after its reference
    for m in (seasonal, plain):
        _, _, _, store = run(m, daily_mix)
        # Runs at other hours of the next day: the mix turned, as every day.
        for hour in (3, 11, 19):
            ev, *_ = run(m, daily_mix, NOW + DAY + hour * 3600 - 16 * 3600, store)
            assert ev.decision == "kept: no drift", (m.seasonality, hour, ev.decision)
            first.setdefault(m.seasonality, ev)
    # Compared at the same phase, the label PSI is far smaller than against the whole day.
    ev_s, ev_p = first["daily"], first["none"]
    assert ev_s.slis[S.LABEL_PSI] < ev_p.slis[S.LABEL_PSI] / 3
    assert ev_s.thresholds[S.THRESHOLD_LABEL_PSI] < ev_p.thresholds[S.THRESHOLD_LABEL_PSI] / 3


def test_thresholds_follow_the_size_of_each_run() -> None:
    m = model(thresholds={"mode": "calibrated"}, validation={"min_rows": 20})
    _, _, _, store = run(m, lambda s, e: blobs(300, CENTERS, seed=int(s)))
    small, *_ = run(m, lambda s, e: blobs(40, CENTERS, seed=2), NOW + 3600, store)
    large, *_ = run(m, lambda s, e: blobs(600, CENTERS, seed=3), NOW + 7200, store)
    key = S.THRESHOLD_FEATURE_PSI_WARNING
    assert small.thresholds[key] > 2 * large.thresholds[key]


def test_an_sli_without_a_null_at_this_size_is_not_a_drift_signal_and_the_run_says_so() -> None:
    m = model(thresholds={"mode": "auto"}, validation={"min_rows": 3})
    _, _, _, store = run(m, lambda s, e: blobs(300, CENTERS, seed=int(s)))
    ev, *_ = run(m, lambda s, e: blobs(4, CENTERS, seed=5), NOW + 3600, store)
    assert S.THRESHOLD_CENTROID_DRIFT not in ev.thresholds
    # The refitted SLIs have no null at 4 rows; the label PSI's and the empty clusters'
    # thresholds stand at or above what 4 rows can reach (every row in one cluster; k - 1
    # = 2 empty), which until 2026-12-06 they kept, silently never firing. So does the
    # outlier ratio's: between 3 and 6 calibrated rows it allows the count of 6 rows
    # (6.04 there), all 4 rows.
    assert ev.decision == (
        "kept: no drift; not drift signals at 4 rows: label_psi, outlier_ratio, "
        "centroid_drift_max, centroid_drift_se, empty_clusters, split_gain"
    )
    assert S.THRESHOLD_LABEL_PSI not in ev.thresholds
    assert S.THRESHOLD_EMPTY_CLUSTERS not in ev.thresholds


def test_by_default_a_window_needs_half_the_rows_of_the_references_smallest() -> None:
    """``validation.min_rows: auto``: telemetry of a dozen points a window runs, and a
    window far thinner than the reference's is a broken feed (too_few_rows)."""
    m = model()
    assert m.validation.min_rows is None
    sizes = {NOW - DAY + 3600: 9}  # one thin window in the period: the smallest
    _, snap, _, store = run(m, lambda s, e: blobs(sizes.get(e, 12), CENTERS, seed=int(s)))
    assert snap.n_rows == 23 * 12 + 9
    assert snap.null is not None and snap.null.sizes[0] == 5  # half of 9, rounded up
    ev, *_ = run(m, lambda s, e: blobs(5, CENTERS, seed=5), NOW + 3600, store)
    assert ev.n_rows == 5
    with pytest.raises(TooFewRowsError) as caught:
        run(m, lambda s, e: blobs(4, CENTERS, seed=6), NOW + 7200, store)
    assert str(caught.value).endswith(
        "4 valid rows; at least 5 required (validation.min_rows=auto: half the 9 rows of "
        "the reference period's smallest window, k = 3)"
    )


def test_a_k_range_bars_windows_by_the_k_the_model_chose() -> None:
    # The top of the range barred them: a model that chose k = 2 of 2 to 6 failed its
    # quiet night windows of 4 and 5 rows, and KMeansRunsFailing paged.
    m = model(k={"min": 2, "max": 6, "criterion": "silhouette"}, reference={"window": "1h"})
    two = CENTERS[:2] * 3
    with pytest.raises(TooFewRowsError, match=r"2 valid rows; at least 3 required \(.*, k = 3\)"):
        run(model(reference={"window": "1h"}), lambda s, e: blobs(2, two, seed=1))  # a fixed k
    with pytest.raises(TooFewRowsError, match=r"4 valid rows; at least 6 required \(.*k up to 6\)"):
        run(m, lambda s, e: blobs(4, two, seed=int(s)))  # no model yet: it may choose 6
    _, snap, _, store = run(m, lambda s, e: blobs(40, two, seed=int(s)))
    assert snap.k == 2
    ev, *_ = run(m, lambda s, e: blobs(4, two, seed=5), NOW + 3600, store)
    assert ev.n_rows == 4


@pytest.mark.parametrize("value", ["auto", 3, 500])
def test_min_rows_is_auto_or_a_count_of_at_least_two(value: Any) -> None:
    assert model(validation={"min_rows": value}).validation.min_rows == (
        None if value == "auto" else value
    )


@pytest.mark.parametrize("value", [1, "aut", 2.5, True])
def test_a_min_rows_that_is_neither_auto_nor_a_count_is_refused(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"validation\.min_rows: must be 'auto' or an int in"):
        model(validation={"min_rows": value})


def test_a_reference_shorter_than_a_day_sets_no_bar_beyond_k() -> None:
    """A retrained model's reference is its one window, which may be the day's busiest:
    the night's thinner windows must still run."""
    m = model(reference={"window": "1h"})
    _, snap, _, store = run(m, lambda s, e: blobs(12, CENTERS, seed=int(s)))
    assert snap.null is not None and snap.null.sizes[0] == 3  # k
    ev, *_ = run(m, lambda s, e: blobs(3, CENTERS, seed=5), NOW + 3600, store)
    assert ev.n_rows == 3


def mixture(blocks: int, rows: int, seed: int) -> ReferencePeriod:
    """Hourly windows of one stationary mixture (no cycle, no change)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=blocks * rows, p=[0.5, 0.3, 0.2])
    starts = NOW - DAY + 3600.0 * np.arange(blocks)
    X = CENTERS[labels] + rng.normal(size=(blocks * rows, 3))
    return ReferencePeriod(X, np.repeat(np.arange(blocks), rows), starts, starts + 3600.0)


def test_quiet_windows_as_large_as_the_calibration_sample_are_not_flagged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A day of 200,000-row windows was calibrated on a 200,000-row sample, where a null
    window of 200,000 rows is the whole sample: its thresholds sat on the sample's own
    values (an outlier ratio's 0.00007 above its mean) and two thirds of the quiet
    windows were flagged. The same at 1/100 the size: 24 windows of 2,000 rows and a
    sample of 2,400."""
    monkeypatch.setattr(train, "CALIBRATION_ROWS", 2400)
    monkeypatch.setattr(train, "CALIBRATION_VALUES", 3 * 2400)  # 3 features: 2,400 rows
    m = model(seasonality="none", thresholds={"calibration_refits": 1})
    snap = train.train_reference(
        mixture(24, 2000, seed=0), m, now=NOW, reason="initial", package_version="",
        working_memory_mib=64.0,
    )  # fmt: skip
    assert snap.null is not None
    limits = threshold_at(snap.null, 2000)
    keys = (S.OUTLIER_RATIO, S.FEATURE_PSI_MAX, S.LABEL_PSI)
    flags = dict.fromkeys(keys, 0)
    for i in range(60):  # fresh quiet windows of a reference window's rows
        X = prepare(mixture(1, 2000, seed=100 + i).X, snap.scaler, snap.metric)
        slis = score(X, snap, seed=i, silhouette_sample=400, working_memory_mib=64.0).slis
        for key in keys:
            limit = limits[key]
            flags[key] += limit is not None and past(slis[key], limit, key)
    assert sum(flags.values()) <= 2, (flags, limits)


def test_a_fixed_period_still_running_trains_once_it_holds_what_the_config_asks() -> None:
    """A ``{from, to}`` period is cut at the first run; cut shorter than a window (or a
    cycle, with seasonality) the run failed to say so only in the rows it read: the one
    window ending at the run, from before ``from``, a seasonal model knowing one hour of
    its day. It now fails (too_few_rows) until the period holds what a configured one
    must, and says from when."""
    make = lambda s, e: daily_mix(s, e)  # noqa: E731
    half_hour = model(reference={"from": NOW - 1800, "to": NOW + DAY}, seasonality="none")
    with pytest.raises(TooFewRowsError) as caught:
        run(half_hour, make)
    assert str(caught.value) == (
        "the reference period from 2027-01-15T07:30:00Z has run 30m by this run, less than "
        "one window (1h): the first run from 2027-01-15T08:30:00Z trains the model"
    )
    hours = model(reference={"from": NOW - 6 * 3600, "to": NOW + DAY}, seasonality="daily")
    with pytest.raises(TooFewRowsError, match="less than a daily cycle: the first run from"):
        run(hours, make)
    # Not "has run 42090s" (helper-75): hours, minutes and seconds.
    odd = model(reference={"from": NOW - 42090, "to": NOW + DAY}, seasonality="daily")
    with pytest.raises(TooFewRowsError, match="has run 11h41m30s by this run"):
        run(odd, make)
    # A period that starts after the run: none of it read, and from when it trains.
    later = model(reference={"from": NOW + 3600, "to": NOW + 3 * DAY}, seasonality="daily")
    with pytest.raises(TooFewRowsError) as caught:
        run(later, make)
    assert str(caught.value) == (
        "the reference period starts at 2027-01-15T09:00:00Z, after this run at "
        "2027-01-15T08:00:00Z: none of it has been read yet; the first run from "
        "2027-01-16T09:00:00Z trains the model"
    )
    assert isinstance(caught.value, AwaitingReferenceError)
    assert caught.value.ready_at == NOW + 3600 + DAY
    day = model(reference={"from": NOW - DAY, "to": NOW + DAY}, seasonality="daily")
    _, snap, _, _ = run(day, make)
    assert snap.window_start == NOW - DAY and snap.window_end == NOW


def down(first: float, last: float) -> Any:
    """Rows of ``daily_mix``, but a SourceError for the windows starting in [first, last)."""

    def make(start: float, end: float) -> np.ndarray:
        if first <= start < last:
            raise SourceError("exporter down")
        return daily_mix(start, end)

    return make


def since(begin: float) -> Any:
    """Rows of ``daily_mix`` from ``begin`` on, none before (a source younger than that)."""
    return lambda s, e: daily_mix(s, e) if s >= begin else np.empty((0, len(FEATURES)))


def test_a_period_whose_data_begin_inside_it_fails_until_its_rows_cover_what_it_needs() -> None:
    # A Prometheus an hour old: the day's period trained on its last hour, and a seasonal
    # model knew that hour of its cycle for good (156 of 168 quiet windows flagged);
    # trained on half a day, a model knew no afternoon (12 flags a quiet day).
    begin = NOW - 3 * 3600
    for seasonality in ("daily", "none"):
        day = model(seasonality=seasonality)
        with pytest.raises(TooFewRowsError) as caught:
            run(day, since(begin))
        need = "a whole daily cycle" if seasonality == "daily" else "1d"
        # What to wait for first (helper-75: 600 characters, the time last).
        assert str(caught.value) == (
            "the source's data begin inside the reference period 2027-01-14T08:00:00Z to "
            "2027-01-15T08:00:00Z: its first window with rows starts at 2027-01-15T05:00:00Z, "
            f"none in the 1w before the period, and its rows must cover {need}, which they do "
            "from about 2027-01-16T05:00:00Z (21 of the 21 windows before its first rows held "
            "none; the first: [2027-01-14T08:00:00Z, 2027-01-14T09:00:00Z): model 'm', "
            "window fake[1799913600,1799917200): 0 valid rows; at least 3 required "
            "(validation.min_rows=auto, k = 3))"
        )
        # A wait, not a fault: its own reason, and the time the alerts hold off until.
        assert isinstance(caught.value, AwaitingReferenceError)
        assert caught.value.ready_at == begin + DAY
        assert classify_failure(caught.value) == "awaiting_reference"
        with pytest.raises(AwaitingReferenceError):
            run(day, since(begin), now=begin + DAY - 3600)  # 23 hours of rows
        _, snap, _, _ = run(day, since(begin), now=begin + DAY)
        assert snap.reference_windows is not None
        assert snap.reference_windows.values.shape[0] == 24
    # A fixed range that ended: only another range can help.
    past = model(reference={"from": NOW - 2 * DAY, "to": NOW - DAY}, seasonality="daily")
    with pytest.raises(TooFewRowsError) as caught:
        run(past, since(NOW - DAY - 3 * 3600))
    assert classify_failure(caught.value) == "too_few_rows"  # no wait mends it
    assert (
        "a whole daily cycle: set reference.from to 2027-01-14T05:00:00Z and reference.to to "
        "2027-01-15T05:00:00Z or later (" in str(caught.value)
    )
    # Rows missing elsewhere (a night, an outage) leave those windows out, as before.
    night = lambda s, e: np.empty((0, 3)) if (s % DAY) < 6 * 3600 else daily_mix(s, e)  # noqa: E731
    _, snap, _, _ = run(model(), night)
    assert snap.reference_windows is not None
    assert snap.reference_windows.values.shape[0] == 18


def test_a_fixed_period_still_running_whose_data_begin_inside_it_says_when_its_rows_do() -> None:
    # Helper-75: a period of one day from 00:00, its data from 06:00, a run at 08:00 was
    # told "the first run from <to> trains the model"; that run failed as too_few_rows
    # (the rows cover 18 hours), so the ready time the alerts held off until was false.
    start = NOW - 8 * 3600
    day = model(reference={"from": start, "to": start + DAY}, seasonality="daily")
    with pytest.raises(TooFewRowsError) as caught:
        run(day, since(start + 6 * 3600))
    assert classify_failure(caught.value) == "too_few_rows"  # no wait mends it
    # That range would still run when typed, and train after one window (helper-79): said.
    assert (
        ": set reference.from to 2027-01-15T06:00:00Z and reference.to to 2027-01-16T06:00:00Z "
        "or later once that time has passed (a range still running trains on what it holds "
        "after one window), or set reference: {window: 1d}, which waits until the rows "
        "cover it (" in str(caught.value)
    )
    # A longer range that holds a day of them waits for it, not for a day of the period.
    week = model(reference={"from": start, "to": start + 7 * DAY}, seasonality="daily")
    with pytest.raises(AwaitingReferenceError, match="data begin inside the reference") as waits:
        run(week, since(start + 6 * 3600))
    assert waits.value.ready_at == start + 6 * 3600 + DAY
    with pytest.raises(AwaitingReferenceError):  # 23 hours of rows
        run(week, since(start + 6 * 3600), now=start + 6 * 3600 + DAY - 3600)
    _, snap, _, _ = run(week, since(start + 6 * 3600), now=start + 6 * 3600 + DAY)
    assert snap.reference_windows is not None
    assert snap.reference_windows.values.shape[0] == 24
    # Rows from the period's start: the period's own time, read no further than them.
    src = FakeSource(FEATURES, daily_mix)
    with pytest.raises(AwaitingReferenceError) as waits:
        evaluate(week, src, MemoryStore(), MemoryHistory(), NOW)
    assert waits.value.ready_at == start + DAY
    assert src.calls[1:] == [(start, start + 3600)]  # after the run's own window


def test_a_service_idle_most_of_the_day_trains_on_a_period_that_starts_in_its_evening() -> None:
    # Rows from 10:00 to 16:00 only: a day's period that starts in the evening has most
    # of its windows empty first; the rows of the day before say it is a quiet stretch,
    # not the data's start (the run failed as too_few_rows, and KMeansRunsFailing paged).
    def office(start: float, end: float) -> np.ndarray:
        hour = (start % DAY) // 3600
        return daily_mix(start, end) if 10 <= hour < 16 else np.empty((0, 3))

    # The run at 16:00 reads 15:00 to 16:00; its period, from 16:00 the day before, has
    # 18 windows without rows first.
    _, snap, _, _ = run(model(), office, NOW - (NOW % DAY) + 16 * 3600)
    assert snap.reference_windows is not None
    assert snap.reference_windows.values.shape[0] == 6
    # Weekdays only: a Monday's day-long period holds the weekend first; the week before
    # it has rows (a look back of one period saw only the weekend, and blamed the data).
    monday = NOW - (NOW % (7 * DAY)) + 4 * DAY  # the epoch was a Thursday
    weekdays = lambda s, e: np.empty((0, 3)) if (s // DAY + 3) % 7 >= 5 else office(s, e)  # noqa: E731
    _, snap, _, _ = run(model(), weekdays, monday + 16 * 3600)
    assert snap.reference_windows is not None
    assert snap.reference_windows.values.shape[0] == 6


def test_files_named_by_time_that_begin_inside_the_period_are_the_data_s_start(
    tmp_path: Path,
) -> None:
    # With time_from: name, a window before the first file holds no file, a NoDataError
    # (the source answered: nothing there), which counts as a window of no rows.
    from monitor.bootstrap import load_settings
    from monitor.sources import SOURCES

    for h in range(3):
        stamp = datetime.fromtimestamp(NOW - 3 * 3600 + h * 3600, UTC).strftime("%Y%m%dT%H%M%S")
        np.savetxt(tmp_path / f"tel-{stamp}.csv", daily_mix(NOW, NOW + 1), delimiter=",",
                   header="a,b,c", comments="")  # fmt: skip
    source = {"kind": "files", "path": str(tmp_path), "time_from": "name",
              "name_time": "%Y%m%dT%H%M%S"}  # fmt: skip
    raw = {"name": "m", "features": list(FEATURES), "k": 3, "window": "1h",
           "schedule": {"interval": "1h"}, "source": source}  # fmt: skip
    m = load_settings(None, raw={"models": [raw]}).models[0]
    src = SOURCES["files"].build("m", m.features, m.source.options)
    with pytest.raises(TooFewRowsError, match="the source's data begin inside the"):
        evaluate(m, src, MemoryStore(), MemoryHistory(), NOW)


def test_a_period_of_no_usable_window_says_so_with_its_span() -> None:
    past = model(reference={"from": NOW - 30 * DAY, "to": NOW - 29 * DAY})
    with pytest.raises(TooFewRowsError) as caught:
        run(past, since(NOW - DAY))
    assert str(caught.value).startswith(
        "no window of the reference period 2026-12-16T08:00:00Z to 2026-12-17T08:00:00Z could "
        "be used (24 read): the source returned no rows in it nor in the 1w before it; its "
        "data begin later (move reference.from and reference.to over rows that exist) or end "
        "before it, or its path or query reads nothing; the last: "
    )
    # Windows of a few rows each, fewer than k: rows there are, the path is right
    # (helper-100 was told "no rows" and looked for a broken path).
    with pytest.raises(TooFewRowsError) as caught:
        run(past, lambda s, e: daily_mix(s, e)[:2])
    said = str(caught.value)
    assert ": its windows hold rows, too few for the model (at most 2 valid); the last: " in said
    assert "no rows" not in said
    # A new deployment before its first row (helper-77: "traffic dropped", said the
    # runbook of the error alone).
    with pytest.raises(TooFewRowsError, match=r"\(a new deployment's runs train once the "):
        run(model(), since(NOW + DAY))

    # A source that answers it holds nothing (a spark directory without files, files named
    # by time): the run's own window failed before the period was read (helper-81).
    def nothing(start: float, end: float) -> np.ndarray:
        raise NoDataError(f"no file named in [{start}, {end})")

    with pytest.raises(NoDataError, match=r"nor in the 1w before it; its data begin later"):
        run(model(), nothing)
    # Rows a week before the period: not the data's start; the last error says the rest.
    with pytest.raises(TooFewRowsError) as caught:
        run(past, lambda s, e: daily_mix(s, e) if s < NOW - 32 * DAY else since(NOW)(s, e))
    assert "could be used (24 read); the last: " in str(caught.value)


def test_a_period_read_in_part_says_so() -> None:
    # Two weeks of hours are 336 windows, of which 288 are read: the decision said
    # nothing of it, or "167 distinct window(s) of the reference period's 168".
    m = model(reference={"window": "14d"}, thresholds={"mode": "fixed"})
    ev, _, src, _ = run(m, lambda s, e: blobs(30, CENTERS, seed=int(s) % 100_000))
    assert len(src.calls) == MAX_REFERENCE_WINDOWS
    assert ev.decision == (
        "initial reference model trained on 288 window(s) of the 288 read from the reference "
        "period's 336 (at most 288, spread over the period and its phases)"
    )


@pytest.mark.parametrize("weeks", [2, 4, 12])
def test_a_long_period_is_read_over_every_hour_of_the_day_and_the_week(weeks: int) -> None:
    # Every 3rd of four weeks of hours read the same 56 hours of every week, never the
    # other 112: a quiet week then flagged 22 of 169 windows, at the hours where a regime
    # starts or stops (helper-85).
    start, end = NOW - weeks * 7 * DAY, NOW
    ends = _window_ends(start, end, 3600.0)
    assert len(ends) == MAX_REFERENCE_WINDOWS == len(set(ends))
    assert all(start + 3600 <= e <= end for e in ends)
    hours = np.array([(end - e) // 3600 for e in ends], dtype=int)
    of_day = np.bincount(hours % 24, minlength=24)
    of_week = np.bincount(hours % 168, minlength=168)
    assert of_day.min() >= 0.8 * MAX_REFERENCE_WINDOWS / 24  # near even: 12 a phase
    assert (of_week > 0).mean() >= 0.93  # 288 picks over 168 phases: a few are missed
    # Spread over the period: no stretch longer than a day unread, the newest hour read.
    assert np.diff(np.sort(hours)).max() <= 24 and hours.min() == 0


def _new_york_mornings(start: float, end: float) -> np.ndarray:
    """Mostly cluster 0 from 09:00 to 15:00 in New York, mostly the others otherwise."""
    hour = datetime.fromtimestamp((start + end) / 2, ZoneInfo("America/New_York")).hour
    shares = [0.8, 0.1, 0.1] if 9 <= hour < 15 else [0.1, 0.45, 0.45]
    rng = np.random.default_rng(int(start) % 100_000)
    return CENTERS[rng.choice(3, size=600, p=shares)] + 0.4 * rng.normal(size=(600, 3))


def test_phases_follow_the_configured_clock_across_daylight_saving_time() -> None:
    # A reference day in EST, a window after the change to EDT: by UTC the mornings came an
    # hour early, and a service on local time flagged its label drift at that hour.
    trained = parse_time("2024-03-10T05:00:00Z", "trained")  # 00:00 EST
    nine_edt = parse_time("2024-03-11T14:00:00Z", "run")  # the window 09:00-10:00 EDT
    psi = {}
    for timezone in ("UTC", "America/New_York"):
        m = model(seasonality="daily", timezone=timezone)
        _, snap, _, store = run(m, _new_york_mornings, trained)
        assert snap.profile is not None and snap.profile.timezone == timezone
        ev, *_ = run(m, _new_york_mornings, nine_edt, store)
        psi[timezone] = ev.slis["label_psi"]
    # Compared with the reference's 08:30-10:30 (its window's hour and half of each
    # neighbour) rather than 07:30-09:30: 0.26 against 0.99.
    assert psi["America/New_York"] < psi["UTC"] / 3, psi


def test_a_timezone_is_an_iana_name_and_only_with_seasonality() -> None:
    assert model(seasonality="weekly", reference={"window": "7d"}, timezone="Etc/GMT+5").timezone
    with pytest.raises(ConfigError, match=r"timezone: must be an IANA time zone such as"):
        model(seasonality="daily", timezone="Mars/Olympus")
    with pytest.raises(
        ConfigError, match=r"must be omitted without a seasonality \(seasonality: none"
    ):
        model(seasonality="none", timezone="Europe/Berlin")
    with pytest.raises(ConfigError, match=r"seasonality: auto is none with a reference under a"):
        model(reference={"window": "2h"}, timezone="Europe/Berlin")
    assert model(seasonality="none", timezone="Etc/UTC").timezone == "Etc/UTC"  # UTC still
    # The host's own zone is another on the next machine; the files beside the zones no zone.
    for name in ("localtime", "posixrules", "right/UTC", "posix/Europe/Berlin", " UTC"):
        with pytest.raises(ConfigError, match=r"timezone: must be an IANA time zone"):
            model(seasonality="daily", timezone=name)


def test_hours_the_reference_holds_no_rows_at_are_named_at_training_and_at_their_runs(
    caplog: Any,
) -> None:
    """A tester's weekly model whose reference missed a whole Tuesday compared every
    Tuesday window with the whole period, week after week, and nothing said so: not the
    training, not a run (helper-111)."""

    def mornings_down(start: float, end: float) -> np.ndarray:
        if end <= NOW - 3600 and 3600 <= start % DAY < 7 * 3600:
            raise SourceError("exporter down")
        return daily_mix(start, end)

    m = model(seasonality="daily")
    ev, _, _, store = run(m, mornings_down)
    gap = (
        "no reference rows at 01:00-07:00 UTC (6 of 24 hourly phases): windows there are "
        "compared with the hours next to them, or with the whole period where those hold "
        "none either"
    )
    assert ev.decision.endswith("; " + gap), ev.decision
    assert any(gap in r.message and r.levelname == "WARNING" for r in caplog.records)
    whole = "; the reference holds no rows at this time of the day: compared with the whole period"
    # NOW is 08:00 UTC: the window 03:00-04:00 has no reference row within 1.5 h of it,
    # 01:00-02:00 has 00:00-00:30's.
    assert run(m, daily_mix, NOW + 20 * 3600, store)[0].decision.endswith(whole)
    assert whole not in run(m, daily_mix, NOW + 18 * 3600, store)[0].decision


def test_a_reference_of_part_cycles_says_so_at_training() -> None:
    """36 hours under a daily cycle trained with the plain decision, though 12 hours of the
    day held twice the rows of the others (helper-111)."""
    m = model(seasonality="daily", reference={"from": NOW - 1.5 * DAY, "to": NOW})
    ev, *_ = run(m, daily_mix)
    assert ev.decision == (
        "initial reference model trained; the reference covers 1.5 daily cycles: "
        "20:00-08:00 UTC weighs more (2 cycles' rows, the rest of the day 1)"
    )


class _NaiveSource(FakeSource):
    """Windows whose row times were written without an offset (a files source's)."""

    def read_window(self, start: float, end: float) -> Any:
        return dataclasses.replace(super().read_window(start, end), naive_times=True)


def test_a_model_on_another_clock_is_warned_once_that_naive_row_times_are_read_as_utc(
    caplog: Any, monkeypatch: Any
) -> None:
    """Local times without an offset are read as UTC, and the phases of timezone:
    Europe/Berlin then moved by an hour at each change of daylight saving time: the false
    alarms the option exists to prevent, and nothing said so (helper-111)."""
    monkeypatch.setattr(pipeline, "_NAIVE_WARNED", set())
    for name, timezone in (("berlin", "Europe/Berlin"), ("utc", "UTC")):
        m = model(name=name, seasonality="daily", timezone=timezone)
        store = MemoryStore()
        for now in (NOW, NOW + 3600):  # once per model, not per run
            evaluate(m, _NaiveSource(FEATURES, daily_mix), store, MemoryHistory(), now)
    warned = [r for r in caplog.records if "without a UTC offset" in r.getMessage()]
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in warned] == [
        ("WARNING", "model=berlin")
    ]
    assert "write the times with their offset" in warned[0].getMessage()


def _promoted(m: ModelSettings, make: Any, store: MemoryStore, at: float) -> Any:
    """The run at ``at`` under ``retrain: scheduled``, due: it promotes."""
    history = MemoryHistory()
    ev, snap = evaluate(m, FakeSource(FEATURES, make), store, history, at)
    assert ev.promoted and snap.reason == "scheduled", ev.decision
    return ev, snap


def test_a_promoted_version_is_trained_on_a_period_as_long_as_the_reference() -> None:
    """Trained on the run's window alone, a seasonal model's new version knew one hour of
    its cycle and nothing of the spread between windows: on the detection benchmark's
    stream, 162 of the 168 quiet windows after a scheduled promotion flagged."""
    m = model(seasonality="daily", retrain="scheduled", training={"retrain_every": "1h"})
    _, _, _, store = run(m, daily_mix)
    ev, snap = _promoted(m, daily_mix, store, NOW + 2 * 3600)
    assert ev.decision == (
        "scheduled retrain: live model is 2h old; trained on the 1d to the run (24 windows)"
    )
    assert (snap.window_start, snap.window_end) == (NOW + 2 * 3600 - DAY, NOW + 2 * 3600)
    # A phase of its own: "reference" marks a first run, whose SLIs are no drift signal
    # and whose time is out of the run budget.
    assert "period" in ev.phase_seconds and "reference" not in ev.phase_seconds
    assert snap.reference_windows is not None
    assert snap.reference_windows.values.shape[0] == 24
    assert snap.profile is not None and not phase_gaps(snap.profile)
    # Runs at other hours of the next day compare with their phase of the new version.
    later = model(seasonality="daily")  # retrain: manual, no new version
    for hour in (5, 11, 19):
        at = NOW + DAY + hour * 3600
        ev, *_ = run(later, daily_mix, at, store)
        assert ev.live_version == snap.version
        assert ev.decision == "kept: no drift", (hour, ev.decision)


def test_a_fixed_reference_s_promotion_trains_on_as_long_a_period_to_the_run() -> None:
    m = model(retrain="scheduled", training={"retrain_every": "1h"},
              reference={"from": NOW - 2 * DAY, "to": NOW - DAY})  # fmt: skip
    _, _, _, store = run(m, daily_mix)
    ev, snap = _promoted(m, daily_mix, store, NOW + 3 * 3600)
    assert (snap.window_start, snap.window_end) == (NOW + 3 * 3600 - DAY, NOW + 3 * 3600)
    assert ev.decision.endswith("; trained on the 1d to the run (24 windows)")


def test_a_promotion_whose_period_is_gone_trains_on_its_window_and_says_why(caplog: Any) -> None:
    m = model(seasonality="daily", retrain="scheduled", training={"retrain_every": "1h"})
    _, _, _, store = run(m, daily_mix)
    at = NOW + 2 * 3600
    # The source kept its last three hours (files rotated away, a short retention).
    ev, snap = _promoted(m, since(at - 3 * 3600), store, at)
    assert (snap.window_start, snap.window_end) == (at - 3600, at)
    # The reason's first clause: the whole first-run message (850 characters, "which they
    # do from about" tomorrow) is the WARNING's (helper-117).
    assert ev.decision.endswith(
        "; trained on this window alone, its period unreadable (the source's data begin "
        "inside the reference period 2027-01-14T10:00:00Z to 2027-01-15T10:00:00Z)"
    )
    assert any(
        "the new version is trained on the run's window alone" in r.message
        and r.levelname == "WARNING"
        for r in caplog.records
    )


def test_a_promotion_whose_period_the_source_failed_to_read_is_put_off(caplog: Any) -> None:
    """Trained on the rest of its period, or on the run's window alone, the new version
    would go live knowing part of the day: the live version stays, and the next run
    reads the period again."""
    m = model(retrain="scheduled", training={"retrain_every": "1h"}, seasonality="none")
    _, _, _, store = run(m, daily_mix)
    at = NOW + 2 * 3600

    def overloaded(start: float, end: float) -> np.ndarray:
        if start == at - 5 * 3600:
            raise TransientSourceError("answered HTTP 503: overloaded")
        return daily_mix(start, end)

    ev, snap = evaluate(m, FakeSource(FEATURES, overloaded), store, MemoryHistory(), at)
    assert not ev.promoted and snap.version == 1 and store.versions("m") == [1]
    assert ev.decision == (
        "scheduled retrain: live model is 2h old; not trained: the window "
        "[2027-01-15T05:00:00Z, 2027-01-15T06:00:00Z) of the reference period could not be "
        "read, and no model is trained on part of its period (the next run reads it again); "
        "v1 kept"
    )
    assert any(r.levelname == "WARNING" and "answered HTTP 503: overloaded" in r.message
               for r in caplog.records)  # fmt: skip
    ev, _ = _promoted(m, daily_mix, store, at + 3600)
    assert ev.decision.endswith("; trained on the 1d to the run (24 windows)")


def test_windows_of_the_period_left_out_at_a_promotion_are_counted_in_its_decision() -> None:
    # Not seasonal: a seasonal model's promotion that lacks hours is not made (below).
    m = model(retrain="scheduled", training={"retrain_every": "1h"}, seasonality="none")
    _, _, _, store = run(m, daily_mix)
    at = NOW + 2 * 3600
    ev, _ = _promoted(m, down(at - 6 * 3600, at - 3 * 3600), store, at)
    assert ev.decision.endswith("; trained on the 1d to the run (21 of 24 windows)")


def steady(step_at: float) -> Any:
    """Three clusters in fixed shares, moved by 3 in feature a from ``step_at`` on."""

    def make(start: float, end: float) -> np.ndarray:
        rng = np.random.default_rng(int(start) % 100_000)
        X = CENTERS[rng.integers(3, size=600)] + 0.4 * rng.normal(size=(600, 3))
        return X + (np.array([3.0, 0.0, 0.0]) if start >= step_at else 0.0)

    return make


def hourly(m: ModelSettings, make: Any, store: MemoryStore, history: MemoryHistory,
           hours: range) -> list[Any]:  # fmt: skip
    """The runs at NOW + each of ``hours`` hours, on one store and one history."""
    return [evaluate(m, FakeSource(FEATURES, make), store, history, NOW + h * 3600)[0]
            for h in hours]  # fmt: skip


def test_on_drift_keeps_the_live_version_until_the_drift_has_lasted_the_period() -> None:
    """Promoted on the day to the run an hour into a step change, a version was calibrated
    on both sides of it: its thresholds widened to the step and it flagged nothing after
    (helper-117: 62 quiet windows, a feature PSI of 7 at its afternoons)."""
    from monitor.timestamps import format_time

    m = model(retrain="on-drift", reference={"window": "6h"})
    history = MemoryHistory()
    store = run(m, steady(NOW))[3]
    during = hourly(m, steady(NOW), store, history, range(1, 6))
    assert not any(ev.promoted for ev in during)
    assert during[0].decision.startswith("drift: feature PSI ")
    assert during[-1].decision.endswith(
        f"; v1 kept until the drift, from {format_time(NOW)}, has lasted the 6h period "
        f"({format_time(NOW + 6 * 3600)}): a version trained across the change would take it "
        "for noise"
    )
    lasted, *after = hourly(m, steady(NOW), store, history, range(6, 10))
    assert lasted.promoted and lasted.decision.endswith(
        "; trained on the 6h to the run (6 windows)"
    ), lasted.decision
    new = store.load("m")
    assert new.window_start == NOW  # the step's side only
    assert [ev.decision for ev in after] == ["kept: no drift"] * 3
    # Its thresholds are the first version's, not widened to the step: a step back is news.
    for key in (S.THRESHOLD_FEATURE_PSI_CRITICAL, S.THRESHOLD_CENTROID_DRIFT):
        assert after[0].thresholds[key] < 2 * during[0].thresholds[key], key
    back, *_ = hourly(m, steady(np.inf), store, history, range(10, 11))
    assert back.decision.startswith("drift: "), back.decision


def test_a_manual_candidate_in_a_drift_is_trained_on_the_windows_since_it_began() -> None:
    """Trained on the day to the run, a candidate an hour into a drift was the live model
    with an hour in 24 of the new data: `snapshots diff` showed nothing to review
    (helper-117: a centroid drift of 1.53 measured, 0.06 between the versions)."""
    from monitor.timestamps import format_time

    # retrain: manual. Fixed thresholds: no calibration at each of the 12 refreshes (58 s
    # in CI with it); the step is far past them.
    m = model(seasonality="none", thresholds={"mode": "fixed", "calibration_refits": 0})
    history = MemoryHistory()
    store = run(m, steady(NOW))[3]
    first, second, *_, eleventh, twelfth = hourly(m, steady(NOW), store, history, range(1, 13))
    assert first.candidate_version == 2 and "; trained on this window;" in first.decision
    assert second.candidate_version == 3 and (
        "; refreshing candidate v2; trained on the windows since the drift began: the 2h "
        "to the run (2 windows);" in second.decision
    ), second.decision
    assert store.load("m", 3).window_start == NOW
    # Kept once new data would make up less than a tenth of its period (11 hours).
    assert eleventh.candidate_version == 12
    eleventh_at = NOW + 11 * 3600
    assert twelfth.candidate_version is None and store.pending_version("m") == 12
    assert twelfth.decision.endswith(
        f"; candidate v12 awaits approval (trained on the period to {format_time(eleventh_at)}; "
        f"next refresh from {format_time(eleventh_at + 0.1 * 11 * 3600)})"
    ), twelfth.decision


def incident(first: float, end: float, hours: tuple[int, ...] = tuple(range(24))) -> Any:
    """``steady``'s clusters, moved by 3 in feature a in the windows that start in
    ``[first, end)`` at the hours of the day (UTC) in ``hours``."""
    base = steady(np.inf)

    def make(start: float, stop: float) -> np.ndarray:
        moved = first <= start < end and int(start % DAY // 3600) in hours
        return base(start, stop) + (np.array([3.0, 0.0, 0.0]) if moved else 0.0)

    return make


def test_a_scheduled_promotion_waits_until_an_incident_has_left_its_period() -> None:
    """The first quiet run after a three-hour incident promoted a version trained on it:
    its feature-PSI threshold went from 0.48 to 3.0 and a ramp's first 8 hours went
    unflagged (helper-124)."""
    from monitor.timestamps import format_time

    m = model(retrain="scheduled", training={"retrain_every": "1h"}, seasonality="none",
              reference={"window": "6h"},
              thresholds={"mode": "fixed", "calibration_refits": 0})  # fmt: skip
    history, make = MemoryHistory(), incident(NOW, NOW + 2 * 3600)
    store = run(m, make)[3]
    runs = hourly(m, make, store, history, range(1, 9))
    assert [ev.promoted for ev in runs] == [False] * 7 + [True]
    assert ", put off in a drift: " in runs[0].decision  # in the incident
    assert runs[2].decision == (
        "scheduled retrain: live model is 3h old, put off: its period holds runs v1 flagged "
        f"in a row, the last at {format_time(NOW + 2 * 3600)}; v1 kept until they have left "
        f"it ({format_time(NOW + 8 * 3600)}): a version trained on them would take them for "
        "noise"
    )
    # The pages' reading of it (monitor.views): the time it waits for, and why.
    assert put_off_of(runs[2].decision) == (
        NOW + 8 * 3600, runs[2].decision.split(", put off: ")[1]
    )  # fmt: skip
    first = put_off_of(runs[0].decision)
    assert first is not None and first[1].startswith("v1 kept until the drift, from ")
    assert put_off_of(runs[7].decision) is None
    assert runs[7].decision.endswith("; trained on the 6h to the run (6 windows)")
    assert store.load("m").window_start == NOW + 2 * 3600  # the incident's windows left out


def test_a_seasonal_drift_seen_at_some_hours_is_one_drift_across_the_quiet_night() -> None:
    """A change seen only at the hours a regime is busy was quiet 12 hours a night: each
    morning began a new drift that never lasted the period, and the model paged every day
    without promoting (helper-124)."""
    from monitor.timestamps import format_time

    m = model(retrain="on-drift", seasonality="daily",
              thresholds={"mode": "fixed", "calibration_refits": 0})  # fmt: skip
    history, make = MemoryHistory(), incident(NOW, np.inf, hours=(8, 9, 10, 11))
    store = run(m, make)[3]
    runs = hourly(m, make, store, history, range(1, 27))  # NOW + 1h is 09:00 UTC
    assert [h for h, ev in enumerate(runs, 1) if ev.promoted] == [25]
    assert runs[4 - 1].decision.endswith(
        f"v1 kept until the drift, from {format_time(NOW)}, has lasted the 1d period "
        f"({format_time(NOW + DAY)}): a version trained across the change would take it "
        "for noise"
    ), runs[4 - 1].decision
    assert runs[25 - 1].decision.endswith("; trained on the 1d to the run (24 windows)")


def test_an_incident_at_other_hours_the_day_before_is_not_the_same_drift() -> None:
    """Passing over a night's quiet runs joined a drift to an incident at other hours the
    day before, and the version promoted a day after the incident was trained on both
    (helper-124's replay after the quiet hours were passed over)."""
    from monitor.timestamps import format_time

    def make(start: float, end: float) -> np.ndarray:  # NOW is 08:00 UTC
        incident = NOW + 6 * 3600 <= start < NOW + 9 * 3600  # 14:00 to 17:00
        lasting = start >= NOW + 20 * 3600 and 4 <= int(start % DAY // 3600) < 12
        moved = incident or lasting  # the second: 04:00 to 12:00 each day from the next
        return steady(np.inf)(start, end) + (np.array([3.0, 0.0, 0.0]) if moved else 0.0)

    m = model(retrain="on-drift", seasonality="daily",
              thresholds={"mode": "fixed", "calibration_refits": 0})  # fmt: skip
    history = MemoryHistory()
    store = run(m, make)[3]
    runs = hourly(m, make, store, history, range(1, 46))  # run h reads the hour from NOW + h - 1
    assert [h for h, ev in enumerate(runs, 1) if ev.promoted] == [45]  # a day after 04:00
    assert f"has lasted the 1d period ({format_time(NOW + 6 * 3600 + DAY)})" in runs[7 - 1].decision
    began = NOW + 20 * 3600  # 04:00 the next day: the drift's own start
    for h in (21, 28):
        assert f"kept until the drift, from {format_time(began)}, " in runs[h - 1].decision
    assert store.load("m").window_start == NOW + 45 * 3600 - DAY  # the incident left out


def test_on_drift_waits_until_a_ramp_has_stopped_growing_over_the_period() -> None:
    """A ramp is first flagged part of the way up: promoted once that drift had lasted a
    day, a version was trained on the rest of the ramp, and its thresholds came out 8 to
    20 times the first version's (helper-124)."""

    def ramp(start: float, end: float) -> np.ndarray:  # to 3 in feature a over 12 hours
        up = min(max((start - NOW) / (12 * 3600), 0.0), 1.0)
        return steady(np.inf)(start, end) + np.array([3.0 * up, 0.0, 0.0])

    m = model(retrain="on-drift", reference={"window": "6h"}, seasonality="none",
              thresholds={"mode": "fixed", "calibration_refits": 0})  # fmt: skip
    history = MemoryHistory()
    store = run(m, ramp)[3]
    runs = hourly(m, ramp, store, history, range(1, 20))
    promoted = [h for h, ev in enumerate(runs, 1) if ev.promoted]
    assert len(promoted) == 1, [ev.decision for ev in runs]
    growing = [ev.decision for ev in runs if " kept while the drift grows: " in ev.decision]
    assert growing and growing[0].endswith(
        "the period's start (a version trained on a period that holds the growth would take "
        "it for noise)"
    ), growing
    assert put_off_of(growing[0]) == (None, growing[0].split("; ", 1)[1])  # no set time
    # Trained on the plateau, with at most the ramp's last window.
    assert store.load("m").window_start >= NOW + 11 * 3600
    assert [ev.decision for ev in runs[promoted[0] :]] == ["kept: no drift"] * (19 - promoted[0])


def test_a_promotion_whose_period_lacks_phases_the_live_version_holds_is_not_made(
    caplog: Any, monkeypatch: Any
) -> None:
    """A scheduled promotion over a six-hour outage of the source gave a version with no
    morning; the next quiet morning paged (helper-117). Nor is the version trained: each
    run for a day after the outage would train one for nothing."""
    from monitor.pipeline import period

    trained: list[Any] = []
    monkeypatch.setattr(period, "retrain", lambda *a: trained.append(a))
    m = model(seasonality="daily", retrain="scheduled", training={"retrain_every": "1h"})
    _, _, _, store = run(m, daily_mix)
    at = NOW + 2 * 3600
    outage = down(at - 12 * 3600, at - 6 * 3600)
    ev, snap = evaluate(m, FakeSource(FEATURES, outage), store, MemoryHistory(), at)
    assert not ev.promoted and snap.version == 1 and store.versions("m") == [1]
    assert ev.decision.startswith("scheduled retrain: live model is 2h old; not promoted: "
                                  "its period to the run has no reference rows at ")  # fmt: skip
    assert ev.decision.endswith("(6 of 24 hourly phases), where v1 has rows; v1 kept")
    assert put_off_of(ev.decision) is None  # not put off: the next run tries again
    assert trained == []
    assert any(r.levelname == "WARNING" and "is not promoted" in r.message
               for r in caplog.records)  # fmt: skip


def test_a_live_version_created_ahead_of_the_clock_is_warned_once_per_version(
    caplog: Any, monkeypatch: Any
) -> None:
    """After the wall clock stepped back 30 days, the live version's created time lay
    30 days ahead and nothing said so: its age, and every freshness judged from it, was
    wrong for the length of the step (t13 F1)."""
    monkeypatch.setattr(pipeline, "_AHEAD_WARNED", set())
    m = model(seasonality="daily")
    _, snap, _, store = run(m, daily_mix)
    for now in (NOW - 30 * DAY, NOW - 30 * DAY + 3600, NOW + 240):  # the last: within 5 min
        evaluate(m, FakeSource(FEATURES, daily_mix), store, MemoryHistory(), now)
    warned = [r for r in caplog.records if "ahead of the clock" in r.getMessage()]
    assert [(r.levelname, r.getMessage()) for r in warned] == [
        (
            "WARNING",
            f"model=m: live v{snap.version} was created at {format_time(snap.created_at)}, "
            "30d ahead of the clock (the wall clock stepped back since): its age is unknown; "
            "KMeansModelStale fires until it is retrained or the clock passes that time "
            "(docs/configuration.md, retrain)",
        )
    ]
