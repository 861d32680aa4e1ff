"""The null table, the seasonal profile and the reference windows survive the store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from monitor import slis as S
from monitor.errors import InvalidInputError
from monitor.records import NullTable, ReferenceWindows, SeasonalProfile
from monitor.store import DirectorySnapshotStore, StoreKey
from tests.store._store_factories import make_snapshot


def calibrated(k: int = 3, d: int = 2):  # type: ignore[no-untyped-def]
    snap = make_snapshot("m1", k=k, d=d)
    bins = int(sum(e.size + 1 for e in snap.bins.edges))
    null = NullTable(
        sizes=np.array([50, 100, 200]),
        keys=(S.FEATURE_PSI_MAX, S.CENTROID_DRIFT_MAX),
        values=np.array([[0.5, np.nan], [0.2, 0.4], [0.1, 0.3]]),
        false_alarm_rate=0.01,
        per_sli_rate=0.005,
        n_draws=3000,
        drift_spread=np.column_stack((np.linspace(1.0, 2.0, k), np.zeros(k))),
    )
    profile = SeasonalProfile(
        period=86400.0,
        label_counts=np.arange(24 * k, dtype=float).reshape(24, k),
        bin_counts=np.ones((24, bins)),
        bin_offsets=np.concatenate(([0], np.cumsum([e.size + 1 for e in snap.bins.edges]))),
        width=1,
        center_sums=np.ones((24, k, d)),
        center_shifts=np.linspace(-0.1, 0.1, 24 * k * d).reshape(24, k, d),
    )
    windows = ReferenceWindows(
        starts=np.array([0.0, 300.0]),
        ends=np.array([300.0, 600.0]),
        rows=np.array([100, 120]),
        keys=(S.LABEL_PSI,),
        values=np.array([[0.01], [np.nan]]),
    )
    return dataclasses.replace(snap, null=null, profile=profile, reference_windows=windows)


@pytest.mark.parametrize("key", [None, StoreKey(b"k" * 32)])
def test_round_trip(tmp_path: Path, key: StoreKey | None) -> None:
    store = DirectorySnapshotStore(tmp_path / "s", key=key)
    saved = store.save(calibrated(), state="live")
    got = store.load("m1")
    assert got.null is not None and saved.null is not None
    assert got.null.keys == saved.null.keys and got.null.n_draws == 3000
    np.testing.assert_array_equal(got.null.values, saved.null.values)  # NaN where undefined
    np.testing.assert_array_equal(got.null.sizes, saved.null.sizes)
    np.testing.assert_array_equal(got.null.drift_spread, saved.null.drift_spread)  # type: ignore[arg-type]
    assert got.profile is not None and got.profile.n_phases == 24 and got.profile.width == 1
    np.testing.assert_array_equal(got.profile.label_counts, saved.profile.label_counts)  # type: ignore[union-attr]
    np.testing.assert_array_equal(got.profile.center_shifts, saved.profile.center_shifts)  # type: ignore[union-attr,arg-type]
    assert got.reference_windows is not None and got.reference_windows.keys == (S.LABEL_PSI,)
    np.testing.assert_array_equal(got.reference_windows.rows, [100, 120])


@pytest.mark.parametrize("timezone", ["UTC", "America/New_York"])
def test_the_profile_keeps_the_clock_of_its_phases(tmp_path: Path, timezone: str) -> None:
    snap = calibrated()
    assert snap.profile is not None
    snap = dataclasses.replace(snap, profile=dataclasses.replace(snap.profile, timezone=timezone))
    store = DirectorySnapshotStore(tmp_path / "s")
    store.save(snap, state="live")
    got = store.load("m1").profile
    assert got is not None and got.timezone == timezone
    # A profile of UTC phases is written as before the clock was kept: older ones read so.
    manifest = (tmp_path / "s" / "m1" / "v000001" / "manifest.json").read_text()
    assert ('"timezone"' in manifest) == (timezone != "UTC")


def test_older_snapshots_have_none(tmp_path: Path) -> None:
    store = DirectorySnapshotStore(tmp_path / "s")
    store.save(make_snapshot("m1"), state="live")
    got = store.load("m1")
    assert got.null is None and got.profile is None and got.reference_windows is None


def test_a_table_of_the_wrong_shape_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    snap = calibrated()
    bad = dataclasses.replace(snap, null=dataclasses.replace(snap.null, values=np.zeros((2, 2))))
    store = DirectorySnapshotStore(tmp_path / "s")
    with pytest.raises(InvalidInputError, match=r"snapshot\.null\.values"):
        store.save(bad)
    assert store.versions("m1") == []


@pytest.mark.parametrize(
    ("spread", "message"),
    [
        (np.ones((2, 2)), r"snapshot\.null\.drift_spread.*shape \(3, 2\)"),
        (-np.ones((3, 2)), "negative"),
    ],
)
def test_a_drift_spread_that_does_not_fit_the_model_is_refused(
    tmp_path: Path, spread: np.ndarray, message: str
) -> None:
    snap = calibrated()
    bad = dataclasses.replace(snap, null=dataclasses.replace(snap.null, drift_spread=spread))
    store = DirectorySnapshotStore(tmp_path / "s")
    with pytest.raises(InvalidInputError, match=message):
        store.save(bad)
    assert store.versions("m1") == []


def test_centre_shifts_that_do_not_fit_the_model_are_refused(tmp_path: Path) -> None:
    snap = calibrated()
    profile = dataclasses.replace(snap.profile, center_shifts=np.zeros((24, 2, 2)))
    store = DirectorySnapshotStore(tmp_path / "s")
    with pytest.raises(InvalidInputError, match=r"snapshot\.profile\.center_shifts"):
        store.save(dataclasses.replace(snap, profile=profile))
    assert store.versions("m1") == []


def test_snapshots_show_says_the_cycle_and_its_clock() -> None:
    from monitor.store import snapshot_summary

    snap = calibrated()
    assert snap.profile is not None
    zoned = dataclasses.replace(
        snap, profile=dataclasses.replace(snap.profile, timezone="Asia/Kolkata")
    )
    assert snapshot_summary(zoned)["seasonality"] == {"cycle": "daily", "timezone": "Asia/Kolkata"}
    assert snapshot_summary(dataclasses.replace(snap, profile=None))["seasonality"] is None
