"""How far one model version moved from another (``kmeans-monitor snapshots diff``)."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.core import drift, scaling
from monitor.core.kmeans import assign_labels
from monitor.errors import SchemaError
from monitor.pipeline.scoring import prepare
from monitor.records import CentroidDrift, Snapshot

__all__ = ["SnapshotDiff", "diff_snapshots"]


@dataclass(frozen=True, eq=False)
class SnapshotDiff:
    """How far version ``b`` moved from version ``a``, in ``a``'s scaled units."""

    model: str
    a: int
    b: int
    centroid_drift: CentroidDrift
    feature_psi: dict[str, float]
    label_psi: float


def diff_snapshots(a: Snapshot, b: Snapshot, *, working_memory_mib: float = 64.0) -> SnapshotDiff:
    """Matched centroid drift and PSI of ``b``'s training sample against ``a``'s bins.

    Versions of the same features in another order are compared feature by feature (a
    retrain after the configuration reordered them printed a diff that refused them;
    helper-93); versions of other features are a SchemaError."""
    if sorted(a.features) != sorted(b.features):
        raise SchemaError(
            f"snapshots v{a.version} and v{b.version} of {a.model!r} have different features: "
            f"{list(a.features)} vs {list(b.features)}"
        )
    order = [b.features.index(f) for f in a.features]  # b's columns in a's order
    b_centers = scaling.inverse_transform(b.scaler, b.centers)[:, order]
    b_centers_in_a = prepare(b_centers, a.scaler, a.metric)
    cd = drift.centroid_drift(a.centers, b_centers_in_a)
    sample_in_a = prepare(b.sample[:, order], a.scaler, a.metric)
    psi = drift.psi(a.bins, sample_in_a)
    labels, _ = assign_labels(sample_in_a, a.centers, working_memory_mib=working_memory_mib)
    label = drift.label_drift(a.reference_shares, labels, a.k)
    return SnapshotDiff(
        model=a.model,
        a=a.version,
        b=b.version,
        centroid_drift=cd,
        feature_psi={f: float(v) for f, v in zip(a.features, psi.per_feature, strict=True)},
        label_psi=label.psi,
    )
