"""The SLI catalogue: every SLI and every threshold declared once.

An SLI has a key (in ``Evaluation.slis``, the history and every JSON output), the
metric it is exported as, its help text and unit, the side of its threshold that is
bad, the thresholds that guard it, where its formula is written down and which code
computes it. The exporter, the calibration mapping, the retrain decision, the CLI's
progress line, docs/metrics.md and the alert rules read this module; nothing else in
the package spells an SLI's key or metric name (tests/test_slis.py checks that).

The module is pure declarations (no I/O), so the numeric core may import it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ABOVE",
    "ALERT_CONDITIONS",
    "BELOW",
    "CALIBRATED",
    "DRIFT_STORM_FEATURES",
    "FLAGGED_RUNS_TO_FIRE",
    "NARROWING",
    "PER_CLUSTER",
    "PER_FEATURE",
    "PROGRESS",
    "RETRAIN_TRIGGERS",
    "SCALAR",
    "SLIS",
    "THRESHOLDS",
    "AlertCondition",
    "Progress",
    "Sli",
    "Threshold",
    "Trigger",
]

ABOVE = "above"  # the SLI alarms when it is above its threshold
BELOW = "below"  # the SLI alarms when it is below its threshold
NEUTRAL = "none"  # descriptive: no side is bad by itself

_SLIS_MD = "docs/slis.md"

# SLI keys: the names in Evaluation.slis, the history and every JSON output.
WINDOW_ROWS = "window_rows"
SILHOUETTE = "silhouette"
SIMPLIFIED_SILHOUETTE = "simplified_silhouette"
INERTIA = "inertia"
DAVIES_BOULDIN = "davies_bouldin"
CALINSKI_HARABASZ = "calinski_harabasz"
CLUSTER_SIZE = "cluster_size"
CLUSTER_SHARE = "cluster_share"
CLUSTER_SIZE_CV = "cluster_size_cv"
EMPTY_CLUSTERS = "empty_clusters"
OUTLIER_RATIO = "outlier_ratio"
FEATURE_PSI = "feature_psi"
FEATURE_PSI_MAX = "feature_psi_max"
FEATURES_DRIFTING = "features_drifting"
LABEL_PSI = "label_psi"
CENTROID_DRIFT = "centroid_drift"
CENTROID_DRIFT_MAX = "centroid_drift_max"
CENTROID_DRIFT_MEAN = "centroid_drift_mean"
CENTROID_DRIFT_SE = "centroid_drift_se"
CLUSTERS_APPEARED = "clusters_appeared"
SPLIT_GAIN = "split_gain"
CLUSTERS_VANISHED = "clusters_vanished"
LABEL_AGREEMENT = "label_agreement"

# Threshold keys: the names in Snapshot.thresholds.
THRESHOLD_FEATURE_PSI_WARNING = "feature_psi_warning"
THRESHOLD_FEATURE_PSI_CRITICAL = "feature_psi_critical"
THRESHOLD_LABEL_PSI = "label_psi"
THRESHOLD_CENTROID_DRIFT = "centroid_drift"
THRESHOLD_CENTROID_DRIFT_SE = "centroid_drift_se"
THRESHOLD_SILHOUETTE_MIN = "silhouette_min"
THRESHOLD_OUTLIER_RATIO = "outlier_ratio"
THRESHOLD_EMPTY_CLUSTERS = "empty_clusters"
THRESHOLD_SPLIT_GAIN = "split_gain"


@dataclass(frozen=True)
class Threshold:
    """A threshold exported next to the SLI it guards, so alert rules compare two series.

    ``config`` names the field of ``thresholds:`` in the model configuration that sets it;
    with ``relative_to`` the configured value is a drop below that SLI as measured on the
    reference window (the silhouette minimum). ``calibration`` says what a calibrated
    threshold of the guarded SLI does to it: ``"replace"`` it, raise it ``"at_least"`` to
    the calibrated value, or nothing (``""``).
    """

    key: str
    metric: str
    help: str
    unit: str
    alarms_when: str  # docs: "`kmeans_label_psi` above it."
    config: str
    relative_to: str = ""
    calibration: str = ""
    domain: str = "positive"  # the configured value: positive | ratio | drop | count


@dataclass(frozen=True)
class Sli:
    """One service-level indicator of a model on a window."""

    key: str
    metric: str
    help: str  # the HELP line of the exported metric
    unit: str  # the unit column of docs/metrics.md
    meaning: str  # the meaning column of docs/metrics.md
    direction: str = NEUTRAL
    labels: tuple[str, ...] = ("model",)
    thresholds: tuple[str, ...] = ()  # Threshold keys, mildest first
    formula: str = ""  # section of docs/slis.md
    code: str = ""  # the function that computes it
    most: float | None = None  # the largest value it can take (a share: 1), if bounded
    # Whole steps of its values: "count" (a whole number), "share" (a count over the
    # window's rows); "" for a continuous SLI. Its threshold between two calibrated sizes
    # is then a whole count (monitor.core.calibration.threshold_at).
    steps: str = ""


@dataclass(frozen=True)
class Trigger:
    """An SLI past a threshold is drift that may retrain the model (policy permitting).

    ``threshold`` is a Threshold key; empty means "any value above zero".
    """

    sli: str
    threshold: str
    text: str  # how the decision names it: "feature PSI 0.404"


@dataclass(frozen=True)
class AlertCondition:
    """When an SLI alert's condition holds on one run (its rule adds the flagged runs in a row).

    ``per_feature``: the condition holds per feature (feature PSI); ``at_least``: it holds
    when at least this many features are past the threshold (a model-level alert).
    """

    alert: str
    severity: str
    sli: str
    threshold: str
    per_feature: bool = False
    at_least: int = 0


@dataclass(frozen=True)
class Progress:
    """A field of the one-line summary a run prints (the demo, evaluate)."""

    sli: str
    name: str
    fmt: str


def _sli(*items: Sli) -> Mapping[str, Sli]:
    return MappingProxyType({s.key: s for s in items})


SLIS: Mapping[str, Sli] = _sli(
    Sli(
        WINDOW_ROWS,
        "kmeans_window_rows",
        "Rows in the window after validation.",
        "rows",
        "Rows in the window after validation.",
        formula="validation",
        code="monitor.pipeline.scoring.validate_window",
    ),
    Sli(
        SILHOUETTE,
        "kmeans_silhouette_score",
        "Exact silhouette on a seeded sample of the window.",
        "score in [-1, 1]",
        "Exact silhouette on a seeded sample of the window.",
        direction=BELOW,
        thresholds=(THRESHOLD_SILHOUETTE_MIN,),
        formula="silhouette",
        code="monitor.core.quality.silhouette_sampled",
    ),
    Sli(
        SIMPLIFIED_SILHOUETTE,
        "kmeans_simplified_silhouette_score",
        "Centroid (simplified) silhouette over the whole window.",
        "score in [-1, 1]",
        "Centroid (simplified) silhouette over the whole window.",
        direction=BELOW,
        formula="simplified-silhouette",
        code="monitor.core.quality.silhouette_simplified",
    ),
    Sli(
        INERTIA,
        "kmeans_inertia",
        "Sum of squared distances to the assigned centres, scaled units.",
        "scaled units²",
        "Sum of squared distances of the window's points to their centres.",
        direction=ABOVE,
        formula="inertia",
        code="monitor.core.kmeans.assign_labels",
    ),
    Sli(
        DAVIES_BOULDIN,
        "kmeans_davies_bouldin_index",
        "Davies-Bouldin index (lower is better).",
        "index ≥ 0",
        "Davies-Bouldin index (lower is better).",
        direction=ABOVE,
        formula="davies-bouldin",
        code="monitor.core.quality.davies_bouldin",
    ),
    Sli(
        CALINSKI_HARABASZ,
        "kmeans_calinski_harabasz_index",
        "Calinski-Harabasz index (higher is better).",
        "index ≥ 0",
        "Calinski-Harabasz index (higher is better).",
        direction=BELOW,
        formula="calinski-harabasz",
        code="monitor.core.quality.calinski_harabasz",
    ),
    Sli(
        CLUSTER_SIZE,
        "kmeans_cluster_size",
        "Points per cluster.",
        "points",
        "Points assigned to each cluster.",
        labels=("model", "cluster"),
        formula="cluster-sizes",
        code="monitor.core.quality.cluster_sizes",
    ),
    Sli(
        CLUSTER_SHARE,
        "kmeans_cluster_share_ratio",
        "Share of the window per cluster.",
        "ratio",
        "Share of the window in each cluster.",
        labels=("model", "cluster"),
        formula="cluster-sizes",
        code="monitor.core.quality.cluster_sizes",
    ),
    Sli(
        CLUSTER_SIZE_CV,
        "kmeans_cluster_size_cv",
        "Coefficient of variation of cluster sizes.",
        "ratio of std to mean",
        "Coefficient of variation of the cluster sizes (0 is perfectly balanced).",
        direction=ABOVE,
        formula="cluster-sizes",
        code="monitor.core.quality.cluster_sizes",
    ),
    Sli(
        EMPTY_CLUSTERS,
        "kmeans_empty_clusters",
        "Clusters of the live model with no point.",
        "clusters",
        "Clusters of the live model that received no point.",
        direction=ABOVE,
        thresholds=(THRESHOLD_EMPTY_CLUSTERS,),
        formula="cluster-sizes",
        code="monitor.core.quality.cluster_sizes",
        steps="count",
    ),
    Sli(
        OUTLIER_RATIO,
        "kmeans_outlier_ratio",
        "Share of points beyond their cluster's threshold.",
        "ratio",
        "Share of points farther from their centre than the cluster's reference threshold.",
        direction=ABOVE,
        thresholds=(THRESHOLD_OUTLIER_RATIO,),
        formula="outliers",
        code="monitor.core.outliers.outlier_rate",
        most=1.0,
        steps="share",
    ),
    Sli(
        FEATURE_PSI,
        "kmeans_feature_psi",
        "PSI of each feature against the reference bins.",
        "PSI",
        "Population stability index of each feature against the reference bins.",
        direction=ABOVE,
        labels=("model", "feature"),
        thresholds=(THRESHOLD_FEATURE_PSI_WARNING, THRESHOLD_FEATURE_PSI_CRITICAL),
        formula="psi",
        code="monitor.core.drift.psi",
    ),
    Sli(
        FEATURE_PSI_MAX,
        "kmeans_feature_psi_max",
        "Largest feature PSI of the window.",
        "PSI",
        "Largest PSI over the features (each one is `kmeans_feature_psi`).",
        direction=ABOVE,
        thresholds=(THRESHOLD_FEATURE_PSI_WARNING, THRESHOLD_FEATURE_PSI_CRITICAL),
        formula="psi",
        code="monitor.core.drift.psi",
    ),
    Sli(
        FEATURES_DRIFTING,
        "kmeans_features_drifting",
        "Features whose PSI is above the warning threshold.",
        "features",
        "Features whose PSI is above the warning threshold.",
        direction=ABOVE,
        formula="psi",
        code="monitor.core.drift.psi",
    ),
    Sli(
        LABEL_PSI,
        "kmeans_label_psi",
        "PSI of the cluster shares against the reference.",
        "PSI",
        "PSI of the cluster shares against the reference shares.",
        direction=ABOVE,
        thresholds=(THRESHOLD_LABEL_PSI,),
        formula="label-drift",
        code="monitor.core.drift.label_drift",
    ),
    Sli(
        CENTROID_DRIFT,
        "kmeans_centroid_drift",
        "Distance from each live centroid to its match in the candidate, scaled units.",
        "scaled units",
        "Distance from each live centroid to its Hungarian match in the candidate; "
        "0 when the cluster has no match.",
        direction=ABOVE,
        labels=("model", "cluster"),
        formula="centroid-drift",
        code="monitor.core.drift.centroid_drift",
    ),
    Sli(
        CENTROID_DRIFT_MAX,
        "kmeans_centroid_drift_max",
        "Largest matched centroid distance.",
        "scaled units",
        "Largest matched centroid distance.",
        direction=ABOVE,
        thresholds=(THRESHOLD_CENTROID_DRIFT,),
        formula="centroid-drift",
        code="monitor.core.drift.centroid_drift",
    ),
    Sli(
        CENTROID_DRIFT_SE,
        "kmeans_centroid_drift_standard_errors",
        "Largest matched centroid distance in standard errors of its cluster's centre.",
        "standard errors",
        "The largest, over the live clusters, of the distance to its match in the candidate "
        "divided by how far that centre moves in quiet windows of that many rows (its "
        "cluster's spread over the square root of its rows, with the spread between "
        "reference windows): a tight cluster's small move counts as much as a wide one's "
        "large move. No sample (undefined, not 0) in thresholds mode fixed, which has no "
        "such spread, nor for a live version calibrated before it was measured.",
        direction=ABOVE,
        thresholds=(THRESHOLD_CENTROID_DRIFT_SE,),
        formula="centroid-drift-se",
        code="monitor.core.drift.standardised_drift",
    ),
    Sli(
        CENTROID_DRIFT_MEAN,
        "kmeans_centroid_drift_mean",
        "Mean matched centroid distance.",
        "scaled units",
        "Mean matched centroid distance.",
        direction=ABOVE,
        formula="centroid-drift",
        code="monitor.core.drift.centroid_drift",
    ),
    Sli(
        SPLIT_GAIN,
        "kmeans_split_gain_ratio",
        "How many times its reference's saving a cluster's cut in two saves (a regime forming).",
        "ratio",
        "The largest, over the live clusters, of the inertia per row that cutting the "
        "cluster in two saves on the window, divided by what it saved in the reference "
        "windows: a regime that no centre covers, outside the others or between them, "
        "joins the nearest cluster and raises it.",
        direction=ABOVE,
        thresholds=(THRESHOLD_SPLIT_GAIN,),
        formula="split-gain",
        code="monitor.core.drift.split_gain",
    ),
    Sli(
        CLUSTERS_APPEARED,
        "kmeans_clusters_appeared",
        "Clusters that formed in the window (split gain above its threshold).",
        "clusters",
        "1 when the window holds a regime the model has no cluster for (the split gain is "
        "above its threshold), else 0.",
        direction=ABOVE,
        formula="split-gain",
        code="monitor.core.drift.split_gain",
    ),
    Sli(
        CLUSTERS_VANISHED,
        "kmeans_clusters_vanished",
        "Live clusters that received no point where the reference expects ten or more.",
        "clusters",
        "Clusters of the live model with no point of the window although the reference "
        "(at this phase, for a seasonal model) expects at least ten there, counted when "
        "the empty clusters are past their threshold (0 where the run leaves them out).",
        direction=ABOVE,
        formula="cluster-sizes",
        code="monitor.core.quality.cluster_sizes",
    ),
    Sli(
        LABEL_AGREEMENT,
        "kmeans_label_agreement_ratio",
        "Share of points the live model and the candidate put in matched clusters.",
        "ratio",
        "Share of points that the live model and the candidate put in matched clusters.",
        direction=BELOW,
        formula="label-agreement",
        code="monitor.core.drift.label_agreement",
    ),
)

THRESHOLDS: Mapping[str, Threshold] = MappingProxyType(
    {
        t.key: t
        for t in (
            Threshold(
                THRESHOLD_FEATURE_PSI_WARNING,
                "kmeans_feature_psi_warning_threshold",
                "Threshold for feature psi warning.",
                "PSI",
                "`kmeans_feature_psi` above it (moderate shift; 0.1 by default).",
                config="feature_psi_warning",
                calibration="replace",
            ),
            Threshold(
                THRESHOLD_FEATURE_PSI_CRITICAL,
                "kmeans_feature_psi_critical_threshold",
                "Threshold for feature psi critical.",
                "PSI",
                "`kmeans_feature_psi` above it (significant shift; 0.25 by default).",
                config="feature_psi_critical",
                calibration="at_least",
            ),
            Threshold(
                THRESHOLD_LABEL_PSI,
                "kmeans_label_psi_threshold",
                "Threshold for label psi.",
                "PSI",
                "`kmeans_label_psi` above it.",
                config="label_psi",
                calibration="replace",
            ),
            Threshold(
                THRESHOLD_CENTROID_DRIFT,
                "kmeans_centroid_drift_threshold",
                "Threshold for centroid drift.",
                "scaled units",
                "`kmeans_centroid_drift_max` above it.",
                config="centroid_drift",
                calibration="replace",
            ),
            Threshold(
                THRESHOLD_CENTROID_DRIFT_SE,
                "kmeans_centroid_drift_standard_errors_threshold",
                "Threshold for centroid drift in standard errors.",
                "standard errors",
                "`kmeans_centroid_drift_standard_errors` above it.",
                config="centroid_drift_se",
                calibration="replace",
            ),
            Threshold(
                THRESHOLD_SILHOUETTE_MIN,
                "kmeans_silhouette_min_threshold",
                "Threshold for silhouette min.",
                "score",
                "`kmeans_silhouette_score` below it.",
                config="silhouette_drop",
                relative_to=SILHOUETTE,
                calibration="replace",
                domain="drop",
            ),
            Threshold(
                THRESHOLD_EMPTY_CLUSTERS,
                "kmeans_empty_clusters_threshold",
                "Threshold for empty clusters.",
                "clusters",
                "`kmeans_empty_clusters` above it (0 by default: any empty cluster).",
                config="empty_clusters",
                calibration="replace",
                domain="count",
            ),
            Threshold(
                THRESHOLD_SPLIT_GAIN,
                "kmeans_split_gain_threshold",
                "Threshold for split gain.",
                "ratio",
                "`kmeans_split_gain_ratio` above it (a new cluster is forming).",
                config="split_gain",
                calibration="replace",
            ),
            Threshold(
                THRESHOLD_OUTLIER_RATIO,
                "kmeans_outlier_ratio_threshold",
                "Threshold for outlier ratio.",
                "ratio",
                "`kmeans_outlier_ratio` above it.",
                config="outlier_ratio",
                calibration="replace",
                domain="ratio",
            ),
        )
    }
)

#: The scalar SLIs of ``Evaluation.slis``, in the order runs report them.
SCALAR: tuple[str, ...] = tuple(
    s.key for s in SLIS.values() if s.labels == ("model",) and s.key != "window_rows"
)
#: SLIs with one value per feature / per cluster of the live model.
PER_FEATURE: tuple[str, ...] = tuple(s.key for s in SLIS.values() if "feature" in s.labels)
PER_CLUSTER: tuple[str, ...] = tuple(s.key for s in SLIS.values() if "cluster" in s.labels)

#: SLIs that the calibration sets thresholds for (their guarded thresholds follow it).
CALIBRATED: tuple[str, ...] = (
    FEATURE_PSI_MAX,
    LABEL_PSI,
    OUTLIER_RATIO,
    CENTROID_DRIFT_MAX,
    CENTROID_DRIFT_SE,
    SILHOUETTE,
    EMPTY_CLUSTERS,
    SPLIT_GAIN,
)

#: Calibrated SLIs whose null only narrows as a window of the same span holds more rows
#: (docs/slis.md, "Sizes the sample can calibrate"): all but the centroid drift in
#: standard errors, which is standardised by the rows. Beyond the reference windows' usual
#: rows their thresholds are not looser than there (monitor.pipeline.thresholds).
NARROWING: tuple[str, ...] = tuple(key for key in CALIBRATED if key != CENTROID_DRIFT_SE)

#: Drift that may retrain a model, in the order a decision lists it.
RETRAIN_TRIGGERS: tuple[Trigger, ...] = (
    Trigger(FEATURE_PSI_MAX, THRESHOLD_FEATURE_PSI_CRITICAL, "feature PSI"),
    Trigger(LABEL_PSI, THRESHOLD_LABEL_PSI, "label PSI"),
    Trigger(CENTROID_DRIFT_MAX, THRESHOLD_CENTROID_DRIFT, "centroid drift"),
    Trigger(CENTROID_DRIFT_SE, THRESHOLD_CENTROID_DRIFT_SE, "centroid drift in standard errors"),
    Trigger(CLUSTERS_APPEARED, "", "clusters appeared or vanished"),
    Trigger(CLUSTERS_VANISHED, "", "clusters appeared or vanished"),
)

#: Features past the PSI warning level at which per-feature alerts give way to one
#: model-level alert (RenderOptions.drift_storm_features renders it into the rules).
DRIFT_STORM_FEATURES = 3

#: Runs in a row on which an SLI alert's condition held (flagged runs) from which the SLI
#: alerts fire by default (``thresholds.flagged_runs_to_fire``): the page of issue 9, two
#: windows in a row, at any schedule. The daemon counts them (``kmeans_flagged_runs``)
#: and the rules compare the count with the model's setting, in place of a ``for:``
#: whose number of runs would depend on the interval (docs/slis.md#paging).
FLAGGED_RUNS_TO_FIRE = 2

#: The SLI alerts of alerts/kmeans-monitor.yml as conditions on one run; backtests and
#: the detection benchmark evaluate them, tests/render checks them against the rules.
ALERT_CONDITIONS: tuple[AlertCondition, ...] = (
    AlertCondition("KMeansCentroidDrift", "warning", CENTROID_DRIFT_MAX, THRESHOLD_CENTROID_DRIFT),
    AlertCondition("KMeansClusterMoved", "warning", CENTROID_DRIFT_SE, THRESHOLD_CENTROID_DRIFT_SE),
    AlertCondition(
        "KMeansFeatureDrift", "warning", FEATURE_PSI, THRESHOLD_FEATURE_PSI_WARNING, True
    ),
    AlertCondition(
        "KMeansFeatureDrift", "critical", FEATURE_PSI, THRESHOLD_FEATURE_PSI_CRITICAL, True
    ),
    AlertCondition(
        "KMeansManyFeaturesDrifting",
        "warning",
        FEATURE_PSI,
        THRESHOLD_FEATURE_PSI_WARNING,
        True,
        DRIFT_STORM_FEATURES,
    ),
    AlertCondition(
        "KMeansManyFeaturesDrifting",
        "critical",
        FEATURE_PSI,
        THRESHOLD_FEATURE_PSI_CRITICAL,
        True,
        DRIFT_STORM_FEATURES,
    ),
    AlertCondition("KMeansLabelDrift", "warning", LABEL_PSI, THRESHOLD_LABEL_PSI),
    AlertCondition("KMeansSilhouetteDrop", "warning", SILHOUETTE, THRESHOLD_SILHOUETTE_MIN),
    AlertCondition("KMeansOutlierRatioHigh", "warning", OUTLIER_RATIO, THRESHOLD_OUTLIER_RATIO),
    AlertCondition("KMeansEmptyClusters", "warning", EMPTY_CLUSTERS, THRESHOLD_EMPTY_CLUSTERS),
    AlertCondition("KMeansClusterForming", "warning", SPLIT_GAIN, THRESHOLD_SPLIT_GAIN),
)

#: The fields of a run's one-line summary.
PROGRESS: tuple[Progress, ...] = (
    Progress(SILHOUETTE, "silhouette", ".2f"),
    Progress(FEATURE_PSI_MAX, "psi_max", ".3f"),
    Progress(CENTROID_DRIFT_MAX, "centroid_drift", ".2f"),
    Progress(OUTLIER_RATIO, "outliers", ".3f"),
)


def formula_link(sli: Sli) -> str:
    """Where ``sli``'s formula is written down, relative to the repository root."""
    return f"{_SLIS_MD}#{sli.formula}"
