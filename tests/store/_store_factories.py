"""Small records for the store tests, and field-by-field comparison."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from monitor.records import (
    Evaluation,
    OutlierThresholds,
    ReferenceBins,
    RunFailure,
    Scaler,
    Snapshot,
)


def make_snapshot(
    model: str = "m1",
    *,
    k: int = 3,
    d: int = 2,
    seed: int = 0,
    dtype: Any = np.float64,
    **overrides: Any,
) -> Snapshot:
    """A small, internally consistent snapshot whose arrays depend on ``seed``."""
    rng = np.random.default_rng(seed)
    # Bin counts differ per feature so that a mix-up of features changes shapes.
    edges = tuple(np.sort(rng.normal(size=2 + j)).astype(dtype) for j in range(d))
    fractions = tuple(np.full(e.size + 1, 1.0 / (e.size + 1), dtype=dtype) for e in edges)
    fields: dict[str, Any] = dict(
        model=model,
        version=0,
        created_at=1_700_000_000.25,
        features=tuple(f"f{j}" for j in range(d)),
        metric="euclidean",
        centers=rng.normal(size=(k, d)).astype(dtype),
        scaler=Scaler(
            kind="standard",
            center=rng.normal(size=d).astype(dtype),
            scale=rng.uniform(0.5, 2.0, size=d).astype(dtype),
        ),
        bins=ReferenceBins(
            edges=edges, reference_fractions=fractions, epsilon=1e-4, strategy="quantile"
        ),
        reference_shares=np.full(k, 1.0 / k, dtype=dtype),
        outliers=OutlierThresholds(
            thresholds=rng.uniform(1, 3, size=k).astype(dtype), quantile=0.99
        ),
        thresholds={"feature_psi_warning": 0.1, "feature_psi_critical": 0.25},
        seed=seed,
        window_start=1_699_990_000.0,
        window_end=1_700_000_000.0,
        n_rows=1234,
        schema_hash="abc123",
        package_version="0.1.0",
        slis={"silhouette": 0.5 + seed * 1e-3, "inertia": 12.75},
        sample=rng.normal(size=(5, d)).astype(dtype),
        reason="initial",
        parent_version=None,
    )
    fields.update(overrides)
    return Snapshot(**fields)


def make_evaluation(
    model: str = "m1", *, evaluated_at: float = 1_700_000_100.0, **overrides: Any
) -> Evaluation:
    """A small evaluation with every field set."""
    fields: dict[str, Any] = dict(
        model=model,
        # Runs of a few seconds after the epoch (tests that count time from 0) have their
        # windows cut at the epoch: the history holds no time before 1970.
        window_start=max(0.0, evaluated_at - 3600.0),
        window_end=max(0.0, evaluated_at - 60.0),
        evaluated_at=evaluated_at,
        n_rows=500,
        live_version=3,
        candidate_version=4,
        promoted=False,
        decision="drift below threshold",
        slis={"silhouette": 0.61, "outlier_ratio": 0.012},
        feature_psi={"f0": 0.01, "f1": 0.3},
        cluster_sizes=(200, 180, 120),
        cluster_shares=(0.4, 0.36, 0.24),
        centroid_drift=(0.1, 0.0, 0.25),
        thresholds={"feature_psi_warning": 0.1},
        phase_seconds={"read": 0.5, "train": 2.25},
        duration_seconds=3.0,
    )
    fields.update(overrides)
    return Evaluation(**fields)


def make_failure(model: str = "m1", *, at: float = 1_700_000_200.0, **overrides: Any) -> RunFailure:
    """A small failed run."""
    fields: dict[str, Any] = dict(
        model=model, reason="source_timeout", message="no answer in 30 s", at=at, window_label="w1"
    )
    fields.update(overrides)
    return RunFailure(**fields)


def same_bits(a: Any, b: Any, path: str = "") -> None:
    """Assert that ``a`` and ``b`` hold the same values bit for bit (NaN, -0.0 included)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), path
        for f in dataclasses.fields(a):
            same_bits(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), path
        assert a.dtype.str == b.dtype.str, f"{path}: dtype {a.dtype.str} != {b.dtype.str}"
        assert a.shape == b.shape, f"{path}: shape {a.shape} != {b.shape}"
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), path
    elif isinstance(a, Mapping):
        assert isinstance(b, Mapping), path
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for key in a:
            same_bits(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, tuple | list):
        assert isinstance(b, tuple | list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same_bits(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert isinstance(b, float), f"{path}: {type(b).__name__} is not float"
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{path}: {a!r} != {b!r}"
    else:
        assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"


def stored_files(root: Any) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), the lock files aside.

    Two equal results mean that nothing stored changed; a LOCK file is only ever
    created empty, to be flock'ed, and holds nothing.
    """
    from pathlib import Path

    base = Path(root)
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.name != "LOCK"
    }
