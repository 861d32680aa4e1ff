"""A snapshot ready to answer: its frozen scaler, centres and per-cluster outlier thresholds.

Labels are what the monitor itself computes for a window: rows scaled with the scaler
frozen in the snapshot (``monitor.pipeline.scoring.prepare``, which also normalises
rows for cosine models), then the nearest centre by ``monitor.core.kmeans.assign_labels``.
A row is an outlier when its distance to that centre is above its cluster's threshold,
as ``monitor.core.outliers.outlier_rate`` counts them. Rows whose squared distances
overflow in the snapshot's scaled units are judged as a run judges a window against a
live model (``monitor.checks.overflow_message``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.checks import overflow_message
from monitor.core.kmeans import assign_labels
from monitor.core.scaling import transform
from monitor.errors import InvalidInputError
from monitor.pipeline.scoring import prepare
from monitor.records import Scaler, Snapshot

__all__ = ["Assigner", "Assignment", "ServedModel", "core_assigner"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.integer[Any]]

#: (scaled rows (n, d), centres (k, d)) -> (labels (n,), squared distances (n,)).
Assigner = Callable[
    [NDArray[np.floating[Any]], FloatArray], tuple[IntArray, NDArray[np.floating[Any]]]
]


def core_assigner(working_memory_mib: float) -> Assigner:
    """The monitor's own assignment, chunked within ``working_memory_mib``."""
    return functools.partial(assign_labels, working_memory_mib=working_memory_mib)


@dataclass(frozen=True, eq=False)
class Assignment:
    """Per row: the nearest centre, the distance to it (scaled units) and the outlier flag."""

    labels: IntArray  # (n,)
    distances: FloatArray  # (n,) Euclidean, in the snapshot's scaled units
    outliers: NDArray[np.bool_]  # (n,) distance above the cluster's threshold


def _frozen(values: Any, shape: tuple[int, ...]) -> FloatArray:
    out = np.array(values, dtype=np.float64, order="C")
    if out.shape != shape or not np.isfinite(out).all():
        raise InvalidInputError(f"expected finite values of shape {shape}; got {out.shape}")
    out.flags.writeable = False  # shared by every request thread
    return out


@dataclass(frozen=True, eq=False)
class ServedModel:
    """One snapshot, every array copied, checked and read-only: built whole, then shared."""

    model: str
    version: int
    features: tuple[str, ...]
    metric: str
    scaler: Scaler
    centers: FloatArray  # (k, d) in scaled units
    thresholds: FloatArray  # (k,) outlier distance per cluster, scaled units
    assigner: Assigner

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, assigner: Assigner) -> ServedModel:
        """A served copy of ``snapshot``; InvalidInputError when its arrays do not fit."""
        k, d = snapshot.centers.shape[0], len(snapshot.features)
        where = f"snapshot v{snapshot.version} of model {snapshot.model!r}"
        try:
            scaler = Scaler(
                snapshot.scaler.kind,
                _frozen(snapshot.scaler.center, (d,)),
                _frozen(snapshot.scaler.scale, (d,)),
            )
            centers = _frozen(snapshot.centers, (k, d))
            thresholds = _frozen(snapshot.outliers.thresholds, (k,))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where} cannot be served: {exc}") from None
        return cls(
            model=snapshot.model,
            version=snapshot.version,
            features=tuple(snapshot.features),
            metric=snapshot.metric,
            scaler=scaler,
            centers=centers,
            thresholds=thresholds,
            assigner=assigner,
        )

    @property
    def k(self) -> int:
        return int(self.centers.shape[0])

    def overflow(self, X: FloatArray) -> str | None:
        """Why finite raw rows ``X`` (n, d) overflow squared distances in this model's
        scaled units (one sentence), or None when they can be labelled."""
        units = "squared distances in the model's scaled units"
        return overflow_message(X, self.features, units, functools.partial(transform, self.scaler))

    def assign(self, X: FloatArray) -> Assignment:
        """Labels, distances and outlier flags of finite raw rows ``X`` (n, d), float64."""
        Xs = prepare(X, self.scaler, self.metric)
        labels, sq = self.assigner(Xs, self.centers)
        distances = np.sqrt(sq, dtype=np.float64)
        return Assignment(labels, distances, distances > self.thresholds[labels])
