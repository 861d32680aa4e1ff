"""The snapshot store: listing thousands of versions, and disk growth with and without retention.

Run::

    python -m bench store                       # both parts, defaults below
    python -m bench store --versions 3000 --reps 5 --saves 600

Listing. A store of ``--versions`` versions of one model is built (snapshots the size
the daemon writes: k=8, 5 features, a 5,000-row sample; signed with a store key),
then two ways of listing it are timed, warm page cache, median of ``--reps``:
``list_versions`` (manifests only, what ``snapshots list`` should call) and loading
every version (what ``snapshots list`` did before). The fixture is built with fsync
turned off, since only reads are timed.

Retention. ``--saves`` saves at the daemon's pace of one per run (on-drift at a 1 s
interval is the worst case the issue measured), into a store without a policy and
into one with ``keep: {versions: 10}``; the table gives the bytes on disk after each,
and the growth per hour at one save per second.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench import Parser, integer
from monitor.records import OutlierThresholds, ReferenceBins, Scaler, Snapshot
from monitor.store import DirectorySnapshotStore, RetentionPolicy, StoreKey

KEY = StoreKey(b"bench-store-key-0123456789abcdef0123456789")


def daemon_sized_snapshot(seed: int, *, k: int = 8, d: int = 5, rows: int = 5000) -> Snapshot:
    """A snapshot shaped like the daemon's: k centres, d features, a ``rows``-row sample."""
    rng = np.random.default_rng(seed)
    edges = tuple(np.sort(rng.normal(size=9)) for _ in range(d))
    return Snapshot(
        model="m1",
        version=0,
        created_at=1_700_000_000.0 + seed,
        features=tuple(f"f{j}" for j in range(d)),
        metric="euclidean",
        centers=rng.normal(size=(k, d)),
        scaler=Scaler("standard", rng.normal(size=d), rng.uniform(0.5, 2, size=d)),
        bins=ReferenceBins(edges, tuple(np.full(10, 0.1) for _ in range(d)), 1e-4, "quantile"),
        reference_shares=np.full(k, 1.0 / k),
        outliers=OutlierThresholds(rng.uniform(1, 3, size=k), 0.99),
        thresholds={"feature_psi_warning": 0.1, "feature_psi_critical": 0.25},
        seed=seed,
        window_start=1_699_990_000.0,
        window_end=1_700_000_000.0,
        n_rows=3000,
        schema_hash="bench",
        package_version="bench",
        slis={"silhouette": 0.5, "inertia": 12.0},
        sample=rng.normal(size=(rows, d)),
        reason="drift",
        parent_version=None,
    )


@contextmanager
def _no_fsync() -> Iterator[None]:
    real = os.fsync
    os.fsync = lambda fd: None  # the fixture only: timed parts never write
    try:
        yield
    finally:
        os.fsync = real


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


def _median_seconds(call: Callable[[], Any], reps: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def bench_listing(n: int, reps: int, rows: int) -> None:
    """Time list_versions against loading every version, on ``n`` versions."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        store = DirectorySnapshotStore(Path(tmp) / "snapshots", key=KEY)
        t0 = time.perf_counter()
        with _no_fsync():
            store.save(daemon_sized_snapshot(0, rows=rows), state="live")
            for i in range(1, n):
                store.save(daemon_sized_snapshot(i, rows=rows))
        built = time.perf_counter() - t0
        size = _disk_bytes(store.root)
        print(
            f"store of {n} versions ({rows}-row samples, signed): {size / 2**20:.0f} MiB on "
            f"disk, built in {built:.0f} s"
        )
        listed, t_list = _median_seconds(lambda: store.list_versions("m1"), reps)
        assert len(store.list_versions("m1")) == n

        def load_all() -> None:
            for v in store.versions("m1"):
                store.load("m1", v)

        loaded, t_load = _median_seconds(load_all, max(1, min(reps, 3)))
        print(
            f"{'list_versions (manifests only)':<34} median {listed:7.3f} s   runs {_fmt(t_list)}"
        )
        print(f"{'load every version (before)':<34} median {loaded:7.3f} s   runs {_fmt(t_load)}")
        print(f"speed-up: {loaded / listed:.0f}x")


def bench_retention(saves: int, rows: int) -> None:
    """Bytes on disk after ``saves`` saves, without a policy and with keep 10 versions."""
    print(f"\n{saves} saves, one per run ({rows}-row samples, signed)")
    for label, policy in (("no retention", None), ("keep versions: 10", RetentionPolicy(10))):
        with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
            store = DirectorySnapshotStore(Path(tmp) / "snapshots", key=KEY, retention=policy)
            t0 = time.perf_counter()
            store.save(daemon_sized_snapshot(0, rows=rows), state="live")
            for i in range(1, saves):
                store.save(daemon_sized_snapshot(i, rows=rows), state="live")
            per_save = (time.perf_counter() - t0) / saves
            size = _disk_bytes(store.root)
            per_hour = size / saves * 3600 if policy is None else 0.0
            growth = f"{per_hour / 2**20:7.0f} MiB/h at 1 save/s" if policy is None else "bounded"
            print(
                f"  {label:<18} {len(store.versions('m1')):>5} versions  {size / 2**20:8.1f} MiB"
                f"  ({growth}; {per_save * 1000:.1f} ms per save with fsync)"
            )


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


def main(argv: list[str]) -> int:
    """Run the listing and the retention benchmarks."""
    parser = Parser(prog="python -m bench store", description=__doc__)
    parser.add_argument("--versions", type=integer(1), default=3000)
    parser.add_argument("--reps", type=integer(1), default=5)
    parser.add_argument("--rows", type=integer(1), default=5000, help="sample rows per snapshot")
    parser.add_argument("--saves", type=integer(1), default=600)
    parser.add_argument("--only", choices=["listing", "retention"])
    args = parser.parse_args(argv)
    if args.only in (None, "listing"):
        bench_listing(args.versions, args.reps, args.rows)
    if args.only in (None, "retention"):
        bench_retention(args.saves, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
