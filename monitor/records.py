"""Frozen result records: the only currency between the layers.

The numeric core returns the records of the first part; the pipeline, the stores
and the exporter trade the records of the second part. Arrays inside a record are
never mutated after the record is built (treat them as read-only). Records that
hold arrays compare by identity (``eq=False``); compare their fields instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.integer[Any]]

# --------------------------------------------------------------------------- core


@dataclass(frozen=True, eq=False)
class KMeansFit:
    """The outcome of one k-means fit (the best of its restarts)."""

    centers: FloatArray  # (k, d)
    labels: IntArray  # (n,)
    inertia: float  # weighted sum of squared distances to the assigned centre
    n_iter: int
    converged: bool
    n_relocated: int = 0  # empty clusters relocated during the fit
    n_distinct_points: int | None = None  # set when fewer distinct points than k
    # The mean X was fitted around (``_kmeans_fit.OFFSET_LOSS``); None when not centred.
    offset: FloatArray | None = None


@dataclass(frozen=True, eq=False)
class ClusterSizes:
    """How a window spreads over the k clusters."""

    counts: IntArray  # (k,) points per cluster
    shares: FloatArray  # (k,) counts / n (weighted when weights are given)
    cv: float  # coefficient of variation of the counts (std / mean, population std)
    n_empty: int  # clusters that received no point


@dataclass(frozen=True, eq=False)
class Silhouette:
    """A silhouette score, exact on a sample or simplified over the whole window."""

    score: float  # mean over the points used; 0.0 when undefined (one cluster)
    per_cluster: FloatArray  # (k,) mean silhouette of each cluster's points; 0.0 if none
    n_points: int  # points the score is computed over
    method: str  # "exact" or "simplified"
    defined: bool = True  # False when fewer than 2 clusters are populated


@dataclass(frozen=True)
class ScalarIndex:
    """A scalar internal index (Davies-Bouldin, Calinski-Harabasz, inertia)."""

    name: str
    value: float
    defined: bool = True  # False when the index is undefined for this input (value 0.0)


@dataclass(frozen=True, eq=False)
class ReferenceBins:
    """Per-feature bin edges fixed on the reference window, with the reference's shares."""

    edges: tuple[FloatArray, ...]  # one array per feature: inner edges, strictly increasing
    reference_fractions: tuple[FloatArray, ...]  # one array per feature: len(edges[j]) + 1
    epsilon: float  # floor applied to empty-bin fractions before the log
    strategy: str  # "quantile" or "uniform"


@dataclass(frozen=True, eq=False)
class PSI:
    """Population stability index of each feature against the reference bins."""

    per_feature: FloatArray  # (d,)
    max: float
    n_features_above: Mapping[str, int] = field(default_factory=dict)  # threshold name -> count


@dataclass(frozen=True, eq=False)
class LabelDrift:
    """PSI between the reference's and the window's cluster shares."""

    psi: float
    reference_shares: FloatArray  # (k,)
    current_shares: FloatArray  # (k,)


@dataclass(frozen=True, eq=False)
class CentroidDrift:
    """Hungarian matching between reference and current centroids.

    ``pairs[i] = (r, c)`` matches reference centroid ``r`` with current centroid ``c``;
    ``distances[i]`` is their Euclidean distance in the reference's scaled units.
    """

    pairs: IntArray  # (m, 2), m = min(k_ref, k_cur)
    distances: FloatArray  # (m,)
    mean: float
    max: float
    vanished: tuple[int, ...]  # reference centroids left unmatched (k_ref > k_cur)
    appeared: tuple[int, ...]  # current centroids left unmatched (k_cur > k_ref)


@dataclass(frozen=True)
class SplitGain:
    """How much more a cluster of a window saves cut in two than in the reference
    (``drift.split_gain``)."""

    gain: float  # the largest ratio of a cluster's saving per row to its reference's
    cluster: int  # the cluster that has it; -1 when undefined
    defined: bool = True


@dataclass(frozen=True, eq=False)
class OutlierThresholds:
    """Per-cluster distance thresholds fitted on the reference."""

    thresholds: FloatArray  # (k,) Euclidean distance, in scaled units
    quantile: float


@dataclass(frozen=True, eq=False)
class OutlierRate:
    """Share of a window's points farther from their centre than its threshold."""

    ratio: float
    n_outliers: int
    per_cluster: FloatArray  # (k,) ratio within each cluster; 0.0 for empty clusters


@dataclass(frozen=True, eq=False)
class KSelection:
    """Criteria for each candidate k and the k each rule picks."""

    ks: IntArray  # (m,)
    inertia: FloatArray  # (m,)
    silhouette: FloatArray  # (m,) NaN-free; 0.0 where undefined (k=1)
    gap: FloatArray  # (m,) Gap(k)
    gap_sk: FloatArray  # (m,) s_k = sd_k * sqrt(1 + 1/B)
    best_elbow: int
    best_silhouette: int
    best_gap: int


@dataclass(frozen=True, eq=False)
class NullTable:
    """Thresholds as a function of a window's row count, calibrated on the reference period.

    ``values[g, j]`` is the threshold of SLI ``keys[j]`` for windows of ``sizes[g]`` rows:
    quiet windows of that size cross it with probability ``per_sli_rate``, so that all
    ``keys`` together stay at ``false_alarm_rate`` per window. NaN where the SLI is not a
    drift signal at that size (its null distribution is undefined there).
    """

    sizes: IntArray  # (g,) ascending
    keys: tuple[str, ...]  # (m,) SLI keys of the catalogue
    values: FloatArray  # (g, m)
    false_alarm_rate: float  # family-wise, per window
    per_sli_rate: float  # false_alarm_rate / m (Bonferroni)
    n_draws: int  # null windows drawn per size
    # (k, 2) per live cluster: its rows' mean squared distance to their window's mean
    # within a reference window, and its centre's variance between quiet windows beyond
    # what that spread explains (drift.standardised_drift); None where the calibration
    # refitted no window (and in tables written before it).
    drift_spread: FloatArray | None = None


#: Seconds in one cycle of each seasonality (the configuration's ``seasonality``).
SEASON_PERIODS: Mapping[str, float] = {"daily": 86400.0, "weekly": 7 * 86400.0}


def season_name(period: float) -> str | None:
    """The seasonality whose cycle is ``period`` seconds ("daily", "weekly"); None for
    another."""
    return next((name for name, seconds in SEASON_PERIODS.items() if seconds == period), None)


def cycle_unit(period: float) -> str:
    """What one cycle of ``period`` seconds is called in a message: "day" or "week"."""
    return "week" if period > SEASON_PERIODS["daily"] else "day"


@dataclass(frozen=True, eq=False)
class SeasonalProfile:
    """Cluster and bin counts of the reference period by phase of a seasonal cycle."""

    period: float  # seconds in one cycle (86400: daily, 604800: weekly)
    label_counts: FloatArray  # (P, k) reference rows per phase and cluster
    bin_counts: FloatArray  # (P, B) reference rows per phase and bin, features side by side
    bin_offsets: IntArray  # (d + 1,) feature j's bins are columns offsets[j]:offsets[j+1]
    width: int  # phases on each side pooled into the reference of a window
    center_sums: FloatArray | None = None  # (P, k, d) sums of the scaled rows per cluster
    # (P, k, d) at each phase's middle, where the model's centres refitted warm on the
    # phase's rows settle, less those rows' cluster means (the pipeline's training)
    center_shifts: FloatArray | None = None
    # The clock whose days and weeks the phases are of (an IANA name; its wall time)
    timezone: str = "UTC"

    @property
    def n_phases(self) -> int:
        return int(self.label_counts.shape[0])


@dataclass(frozen=True, eq=False)
class ReferenceWindows:
    """The reference period cut into windows of the monitored duration, with their SLIs."""

    starts: FloatArray  # (b,) unix seconds
    ends: FloatArray  # (b,)
    rows: IntArray  # (b,) rows in each window
    keys: tuple[str, ...]  # (m,) SLI keys
    values: FloatArray  # (b, m) each SLI of the reference model on each window


# --------------------------------------------------------------------------- shell


@runtime_checkable
class RemoteRows(Protocol):
    """Rows that stay where an engine computes (a Spark DataFrame's partitions).

    Only functions of row blocks travel to them, and only what those functions return
    comes back, one result per block: the pipeline validates and scales such rows
    without holding them (``monitor.pipeline.remote``).
    """

    @property
    def engine(self) -> str:
        """The engine that reads them (an ``Engine.name``)."""
        ...

    @property
    def n_features(self) -> int: ...

    def map_blocks(self, fn: Callable[[FloatArray], FloatArray]) -> RemoteRows:
        """The rows that ``fn`` makes of each block (lazily, where they are)."""
        ...

    def summarise(self, fn: Callable[[FloatArray], Any]) -> list[Any]:
        """``fn`` of each non-empty block; its results (keep them small) come back."""
        ...

    def sample(self, size: int, seed: int) -> FloatArray:
        """At most ``size`` rows drawn uniformly without replacement, in the rows' order."""
        ...

    def concat(self, others: Sequence[RemoteRows]) -> RemoteRows:
        """These rows followed by those of ``others`` (of the same engine)."""
        ...

    def collect(self) -> FloatArray:
        """Every row, here: for a model whose engine cannot read them where they are."""
        ...


@dataclass(frozen=True, eq=False)
class CountedRows:
    """Validated rows kept on an engine, with their number (one counting pass found it)."""

    rows: RemoteRows
    n: int

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, features), as an array's: code that only counts reads it alike."""
        return (self.n, self.rows.n_features)


@dataclass(frozen=True, eq=False)
class Window:
    """One window of telemetry for one model, columns in the model's feature order."""

    model: str
    start: float  # unix seconds, inclusive
    end: float  # unix seconds, exclusive
    features: tuple[str, ...]
    X: FloatArray  # (n, d), may still hold NaN/inf: the pipeline validates
    label: str = ""  # human description of the window (file name, time range)
    # The rows when they stay where they were read (a spark source); X then holds none.
    remote: RemoteRows | None = None
    # Some row times had no UTC offset and were read as UTC (ISO-8601 text without one, a
    # Parquet timestamp column without a zone): a files source.
    naive_times: bool = False


@dataclass(frozen=True, eq=False)
class ReferencePeriod:
    """The reference period of a model, read as consecutive windows of the monitored size."""

    X: FloatArray  # (N, d) the validated rows, raw units, window after window
    block: IntArray  # (N,) the window of each row, in [0, b)
    starts: FloatArray  # (b,) unix seconds
    ends: FloatArray  # (b,)
    skipped: tuple[str, ...] = ()  # windows of the period left out, each with why
    # When the rows stay on an engine: X is a uniform sample of them (the same share of
    # every window), ``remote`` every row and ``counts`` the rows of each window.
    remote: CountedRows | None = None
    counts: IntArray | None = None  # (b,)
    # The same period cut into windows at other offsets (pipeline.reference.CUTS), read
    # for the calibration only: a run's window may end between the period's windows' ends.
    cuts: tuple[ReferencePeriod, ...] = ()

    @property
    def n_windows(self) -> int:
        return int(self.starts.shape[0])

    @property
    def window_rows(self) -> IntArray:
        """Rows in each window of the period (not of the sample)."""
        if self.counts is not None:
            return self.counts
        return np.bincount(self.block, minlength=self.n_windows)

    @property
    def n_rows(self) -> int:
        """Rows in the period (not in the sample)."""
        return int(self.remote.n if self.remote is not None else self.X.shape[0])


@dataclass(frozen=True, eq=False)
class Scaler:
    """A per-feature affine scaler frozen in a snapshot: (x - center) / scale."""

    kind: str  # "standard", "robust" or "none"
    center: FloatArray  # (d,)
    scale: FloatArray  # (d,) strictly positive (constant features get 1.0)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One immutable model version."""

    model: str
    version: int
    created_at: float  # unix seconds
    features: tuple[str, ...]
    metric: str  # "euclidean" or "cosine"
    centers: FloatArray  # (k, d) in scaled units
    scaler: Scaler
    bins: ReferenceBins
    reference_shares: FloatArray  # (k,)
    outliers: OutlierThresholds
    thresholds: Mapping[str, float]  # SLI threshold name -> value
    seed: int
    window_start: float
    window_end: float
    n_rows: int
    schema_hash: str
    package_version: str
    slis: Mapping[str, float]  # SLIs of this model on its own training window
    sample: FloatArray  # (m, d) seeded sample of the training window, raw units, m <= 5000
    reason: str  # "initial", "scheduled", "drift", "manual", "rollback"
    parent_version: int | None = None
    checksum: str = ""  # set by the store: sha256 of the serialised payload
    null: NullTable | None = None  # thresholds by window size (None: fixed thresholds only)
    profile: SeasonalProfile | None = None  # with a seasonality: the reference by phase
    reference_windows: ReferenceWindows | None = None  # the reference period, window by window
    # (k,) what cutting each cluster in two saves per row in a reference window
    # (drift.split_baseline);
    # None in snapshots written before it: their runs leave the split gain undefined.
    split_baseline: FloatArray | None = None

    @property
    def k(self) -> int:
        return int(self.centers.shape[0])


@dataclass(frozen=True)
class Evaluation:
    """What one run of one model measured and decided."""

    model: str
    window_start: float
    window_end: float
    evaluated_at: float  # unix seconds when the run started (its clock: the window ends here)
    n_rows: int
    live_version: int  # the version scored (after the decision: the live one)
    candidate_version: int | None  # stored candidate, if one was trained
    promoted: bool
    decision: str  # short reason of the policy's decision
    slis: Mapping[str, float]  # scalar SLIs of the live model on this window
    feature_psi: Mapping[str, float]  # feature -> PSI
    cluster_sizes: tuple[int, ...]  # per cluster of the live model
    cluster_shares: tuple[float, ...]
    centroid_drift: tuple[float, ...]  # per live cluster; 0.0 where unmatched
    thresholds: Mapping[str, float]
    phase_seconds: Mapping[str, float]  # phase -> seconds
    duration_seconds: float


@dataclass(frozen=True, eq=False)
class WindowView:
    """A model's view of one window: labels, squared distances and the SLIs they give."""

    # Per row; None when the rows stay on a cluster (engine: spark) and only their
    # aggregates come back.
    labels: IntArray | None  # (n,) the cluster of each row
    sq_distances: FloatArray | None  # (n,) squared distance of each row to its centre
    slis: Mapping[str, float]  # scalar SLIs of the model on the window (slis.SCALAR keys)
    feature_psi: Mapping[str, float]  # feature -> PSI
    cluster_sizes: tuple[int, ...]
    cluster_shares: tuple[float, ...]
    # Scalar SLIs undefined on this window, valued 0.0 by convention (docs/slis.md): the
    # silhouette of a sample whose rows fall in one cluster.
    undefined: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class CandidateFit:
    """A candidate trained on a window by an engine: its centres and how it relabels rows."""

    centers: FloatArray  # (k, d) scaled units
    # (k, k): rows with live label i (the scoring's) and candidate label j; its column
    # sums are the candidate's cluster sizes.
    table: IntArray
    # (k, d) the warm start's centres (Lloyd from the live centres alone): each follows
    # its live cluster, where a restart that beat it may have settled elsewhere.
    warm: FloatArray


@dataclass(frozen=True, eq=False)
class Measurement:
    """What the measure step found on one window; the decide and commit steps read it.

    With a live model, ``view`` is the live model's view and the candidate was trained
    warm from it; without one, ``reference`` is the model just trained on the window and
    ``view`` its view of its own window.
    """

    model: str
    window: Window
    # (n, d) the validated rows, raw units (or kept on an engine); (0, d) when the
    # measurement came back from a worker process, which kept the rows
    X: FloatArray | CountedRows
    live: Snapshot | None
    reference: Snapshot | None
    view: WindowView
    slis: Mapping[str, float]  # the view's SLIs plus the candidate comparison
    thresholds: Mapping[str, float]  # what this window's SLIs are compared with (its size)
    undefined: tuple[str, ...]  # SLIs that are not drift signals at this window's size
    centroid_drift: tuple[float, ...]  # per live cluster; 0.0 where unmatched
    candidate_centers: FloatArray | None  # (k, d) in the live model's scaled units
    candidate_ok: bool  # False when the candidate left a cluster empty
    n_rows: int  # validated rows in the window
    # When a k-means++ restart beat the warm start: the warm start's largest centroid
    # drift (how far the live centres refitted on this window moved); None otherwise.
    warm_drift_max: float | None = None
    # A first run: the reference period's windows left out (unreadable, too few rows).
    reference_left_out: int = 0
    # A seasonal model compared the window with its whole reference period: the stretch
    # of the cycle around the window holds no reference row (``seasonal.phase_reference``).
    whole_period: bool = False
    # Of ``undefined``, those the live version cannot measure at any size: it was stored
    # before kmeans-monitor measured them (a retrain does).
    stored_before: tuple[str, ...] = ()


#: What a decision does: train the first model; keep the live one; reject the candidate;
#: promote a new model; store a new model pending approval (replacing any pending one).
DECISION_ACTIONS = ("initial", "keep", "reject", "promote", "pend")


@dataclass(frozen=True)
class Decision:
    """The retrain policy's verdict on a measurement."""

    action: str  # one of DECISION_ACTIONS
    text: str  # what the run reports, e.g. "retrained on drift: feature PSI 0.404"
    retrain_reason: str = ""  # the new snapshot's reason ("drift", "scheduled")
    replaces: int | None = None  # action "pend": the pending version the new one replaces

    @property
    def trains(self) -> bool:
        """Whether a new snapshot is trained on the window."""
        return self.action in ("promote", "pend")


@dataclass(frozen=True)
class Pending:
    """The version awaiting approval when a run starts. ``manual``: ``snapshots retrain``
    stored it (an operator's deliberate retrain, which a drifting run must not replace).
    ``trained_to``: where the period a run trained it on ends, when that period is longer
    than a window; a drifting run keeps it until ``fresh_until`` rather than reading and
    training on the period again (``pipeline._pending``)."""

    version: int
    manual: bool = False
    trained_to: float | None = None
    fresh_until: float | None = None


# The bounded values of the ``reason`` label of kmeans_run_failures_total.
FAILURE_REASONS = (
    "source_unavailable",
    "source_timeout",
    "schema",
    "invalid_values",
    "too_few_rows",
    "awaiting_reference",
    "training",
    "store",
    "run_timeout",
    "engine_unavailable",
    "internal",
)

# The bounded values of the ``reason`` label of kmeans_runs_skipped_total: scheduled
# runs that never started. ``missed``: not started within the misfire grace (no free
# worker, or the process stalled); ``still_running``: the model's previous run had not
# ended within that grace (a run due meanwhile waits for it that long; a third one due
# meanwhile is skipped at once); ``first_run``: the same, while that run was the model's
# first in this process and it has no live version (the run trains its reference: slow
# by design).
SKIP_REASONS = ("missed", "still_running", "first_run")


@dataclass(frozen=True)
class RunFailure:
    """A run that failed: which model, which window, why (a bounded reason)."""

    model: str
    reason: str  # one of FAILURE_REASONS
    message: str
    at: float  # when the run started
    window_label: str = ""
    duration_seconds: float | None = None  # None in rows recorded before it was kept
    # Reason awaiting_reference: from when a run trains the model (not kept in history).
    ready_at: float | None = None


# The states of a stored model version (see monitor/store/snapshots.py).
VERSION_STATES = ("live", "pending", "retired")


#: What decides a version's fate (``StoreEvent.action``): an approval, a rejection, a
#: rollback (any version made live by name), a promotion (a new version saved live over
#: a live one: the daemon's policy, or `snapshots retrain --live`).
DECISIONS = ("approve", "reject", "rollback", "promote")
#: What moves a model's live or pending version: the decisions, and the pending
#: pointer's own moves (a candidate made pending, one superseded), which under `retrain:
#: manual` follow every drifting run.
STORE_ACTIONS = (*DECISIONS, "pending", "supersede")


REASON_CHARS = 1000  # of an Actor's reason the store keeps: a sentence, not a file


@dataclass(frozen=True)
class Actor:
    """Who moves a pointer, and why: an OS user (the CLI), or the daemon's policy."""

    name: str
    reason: str | None = None

    def event(
        self,
        model: str,
        at: float,
        action: str,
        version: int,
        before: int | None,
        after: int | None,
    ) -> StoreEvent:
        """This actor's ``action`` on ``version`` of ``model`` at ``at``, the live version
        going from ``before`` to ``after``, as a store records it."""
        return StoreEvent(model, at, action, self.name, version, before, after, self.reason)


@dataclass(frozen=True)
class StoreEvent:
    """One approval, rejection, rollback or promotion as the store recorded it, or a move
    of the pending pointer (a candidate made pending, or one superseded by a newer
    candidate or a promotion): when, by whom, which version it acted on and the live
    version before and after it."""

    model: str
    at: float  # unix seconds
    action: str  # one of STORE_ACTIONS
    actor: str
    version: int  # approved, rejected, rolled back to, promoted, made pending, superseded
    from_version: int | None  # live before (None: none, or unreadable)
    to_version: int | None  # live after
    reason: str | None = None


@dataclass(frozen=True)
class VersionInfo:
    """One stored version as its manifest describes it, without loading its arrays."""

    model: str
    version: int
    state: str  # one of VERSION_STATES
    corrupt: str | None = None  # why the version cannot be used; None when it looks sound
    # Written by a newer kmeans-monitor (``corrupt`` says which format): not damage.
    newer_format: bool = False
    created_at: float | None = None  # None when the manifest is unreadable
    reason: str | None = None
    parent_version: int | None = None
    k: int | None = None
    n_rows: int | None = None
    checksum: str | None = None
    signed: bool = False
    encrypted: bool = False
    features: tuple[str, ...] | None = None  # None when the manifest is unreadable
    cycle: float | None = None  # seconds of its seasonal cycle; None without seasonality
    timezone: str | None = None  # the clock of its phases, with a cycle

    @classmethod
    def of(cls, snapshot: Snapshot, state: str) -> VersionInfo:
        """The listing row of a snapshot held in memory (sound, unsigned, unencrypted)."""
        return cls(
            model=snapshot.model,
            version=snapshot.version,
            state=state,
            created_at=snapshot.created_at,
            reason=snapshot.reason,
            parent_version=snapshot.parent_version,
            k=snapshot.k,
            n_rows=snapshot.n_rows,
            checksum=snapshot.checksum,
            features=tuple(snapshot.features),
            cycle=None if snapshot.profile is None else snapshot.profile.period,
            timezone=None if snapshot.profile is None else snapshot.profile.timezone,
        )


@dataclass(frozen=True)
class RunHistory:
    """What history holds for one model over a time range, oldest first."""

    model: str
    since: float
    until: float | None  # None: up to now
    evaluations: tuple[Evaluation, ...]
    failures: tuple[RunFailure, ...]


@dataclass(frozen=True)
class RunTotals:
    """Every run a history holds of one model, counted as the exporter counts runs.

    What a batch job pushes (``evaluate --push-to``): its counters carry on from push
    to push, as a daemon's do from scrape to scrape. ``durations`` holds each run's
    wall time less its reference training, for the runs whose time was recorded.
    """

    runs: int = 0
    failures: Mapping[str, int] = field(default_factory=dict)  # reason -> runs
    promotions: int = 0
    durations: tuple[float, ...] = ()
    first: float | None = None  # when the earliest run started; None: no run
    last_end: float | None = None  # when the latest run ended

    @classmethod
    def of(cls, evaluations: Sequence[Evaluation], failures: Sequence[RunFailure]) -> RunTotals:
        """The totals of these runs (all of one model)."""
        by_reason: dict[str, int] = {}
        for f in failures:
            by_reason[f.reason] = by_reason.get(f.reason, 0) + 1
        ends = [e.evaluated_at + e.duration_seconds for e in evaluations]
        # A failure recorded without its duration counts as ending when it started.
        ends += [f.at + (f.duration_seconds or 0.0) for f in failures]
        starts = [e.evaluated_at for e in evaluations] + [f.at for f in failures]
        return cls(
            runs=len(evaluations) + len(failures),
            failures=by_reason,
            promotions=sum(e.promoted for e in evaluations),
            durations=tuple(
                scheduled_seconds(e.duration_seconds, e.phase_seconds) for e in evaluations
            )
            + tuple(f.duration_seconds for f in failures if f.duration_seconds is not None),
            first=min(starts, default=None),
            last_end=max(ends, default=None),
        )

    def __add__(self, other: RunTotals) -> RunTotals:
        failures = dict(self.failures)
        for reason, n in other.failures.items():
            failures[reason] = failures.get(reason, 0) + n
        firsts = [t for t in (self.first, other.first) if t is not None]
        ends = [t for t in (self.last_end, other.last_end) if t is not None]
        return RunTotals(
            runs=self.runs + other.runs,
            failures=failures,
            promotions=self.promotions + other.promotions,
            durations=self.durations + other.durations,
            first=min(firsts, default=None),
            last_end=max(ends, default=None),
        )


def scheduled_seconds(duration: float, phase_seconds: Mapping[str, float]) -> float:
    """A run's wall time less the reading and training of its reference period (the run
    budget is for the scheduled work, which a one-off training would put over it)."""
    return max(0.0, duration - phase_seconds.get("reference", 0.0))
