"""The commit step: store what a decision asks for, record the run, say what is live."""

from __future__ import annotations

import logging

from monitor.errors import LiveMovedError, StoreError
from monitor.pipeline.phases import Phases
from monitor.ports import History, SnapshotStore
from monitor.records import Actor, Decision, Evaluation, Measurement, Snapshot, cycle_unit

__all__ = ["DAEMON_ACTOR", "commit", "store_first", "version_floor"]

log = logging.getLogger(__name__)

#: Who a run's promotion is recorded as (``SnapshotStore.events``): the retrain policy,
#: whose decision is the event's reason.
DAEMON_ACTOR = "kmeans-monitor (retrain policy)"


def commit(
    m: Measurement,
    decision: Decision,
    new: Snapshot | None,
    store: SnapshotStore,
    history: History,
    phases: Phases,
    *,
    now: float,
) -> tuple[Evaluation, Snapshot]:
    """Write the new snapshot (live or pending) and the run's history row.

    Returns the evaluation and the snapshot live after the run.
    """
    text = decision.text + _caveats(m)
    candidate: int | None = None
    scored = after = m.live
    promoted = False
    if m.reference is not None:  # the first model of this name: live at once
        with phases.phase("store"):
            scored = after = store_first(m.reference, store, history)
        candidate, promoted = scored.version, True
    elif new is not None:
        assert scored is not None
        promoted = decision.action == "promote"
        try:
            with phases.phase("store"):
                # Stored only while the measured version is still live, checked under the
                # store's lock: an approval or a rollback made another version live while
                # this run measured the old one, and storing its candidate would undo the
                # operator's choice (promote) or put up a candidate of the old model (pend).
                new = store.save(
                    new,
                    state="live" if promoted else "pending",
                    expect_live=scored.version,
                    floor=version_floor(history, m.model),
                    by=Actor(DAEMON_ACTOR, decision.text),
                )
                history.record_version(new)
        except LiveMovedError as moved:
            promoted = False
            text += (
                f"; v{moved.live} was made live during the run, which measured "
                f"v{scored.version}: its candidate is not stored"
            )
            with phases.phase("store"):
                after = store.load(m.model)
        else:
            candidate = new.version
            if promoted:
                after = new
            else:
                text += f"; candidate v{new.version} stored, awaiting approval"
    assert scored is not None and after is not None  # a live model or a new reference
    evaluation = _evaluation(m, scored, candidate, promoted, text, phases, now)
    with phases.phase("store"):
        history.append(evaluation)
    return evaluation, after


def store_first(first: Snapshot, store: SnapshotStore, history: History) -> Snapshot:
    """Store a model's first snapshot live and record its version; the stored snapshot."""
    stored = store.save(
        first,
        state="live",
        floor=version_floor(history, first.model),
        by=Actor(DAEMON_ACTOR, "initial reference model"),
    )
    history.record_version(stored)
    return stored


def version_floor(history: History, model: str) -> int:
    """The newest version ``history`` has recorded for ``model``: the next one is numbered
    after it (``SnapshotStore.save``). A history that cannot say does not hold the version
    back: 0, and a warning that it is numbered from the store alone."""
    try:
        return history.highest_version(model)
    except StoreError as exc:
        log.warning(
            "model=%s cannot read which versions the history recorded (%s); the new version "
            "is numbered from the snapshot store alone",
            model,
            exc,
        )
        return 0


def _evaluation(
    m: Measurement,
    scored: Snapshot,
    candidate: int | None,
    promoted: bool,
    text: str,
    phases: Phases,
    now: float,
) -> Evaluation:
    return Evaluation(
        model=m.model,
        window_start=m.window.start,
        window_end=m.window.end,
        evaluated_at=now,
        n_rows=m.n_rows,
        live_version=scored.version,
        candidate_version=candidate,
        promoted=promoted,
        decision=text,
        slis=dict(m.slis),
        feature_psi=dict(m.view.feature_psi),
        cluster_sizes=m.view.cluster_sizes,
        cluster_shares=m.view.cluster_shares,
        centroid_drift=m.centroid_drift,
        thresholds=dict(m.thresholds),
        phase_seconds=dict(phases.seconds),
        duration_seconds=phases.elapsed(),
    )


def _caveats(m: Measurement) -> str:
    """What the run's decision adds about how its window was measured: SLIs that are no
    drift signal here, and a window compared with the whole reference period."""
    text = ""
    if at_size := [sli for sli in m.undefined if sli not in m.stored_before]:
        text += f"; not drift signals at {m.n_rows} rows: {', '.join(at_size)}"
    if m.stored_before and m.live is not None:
        # Its age, not the row count (helper-103): no window size brings them back.
        text += (
            f"; not measured by v{m.live.version}, stored before kmeans-monitor measured "
            f"{', '.join(m.stored_before)}: a new version does (snapshots retrain, or the "
            "next promotion)"
        )
    trained = m.reference or m.live
    if m.whole_period and trained is not None and trained.profile is not None:
        cycle = cycle_unit(trained.profile.period)
        text += (
            f"; the reference holds no rows at this time of the {cycle}: compared with the "
            "whole period"
        )
    if m.view.undefined:
        names = ", ".join(m.view.undefined)
        text += f"; no drift signal in this window, whose rows fall in one cluster: {names}"
    return text
