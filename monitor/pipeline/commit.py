"""The commit step: store what a decision asks for, record the run, say what is live."""

from __future__ import annotations

from monitor.pipeline.phases import Phases
from monitor.ports import History, SnapshotStore
from monitor.records import Decision, Evaluation, Measurement, Snapshot

__all__ = ["commit"]


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
    text = decision.text
    if m.undefined:
        names = ", ".join(m.undefined)
        text += f"; not drift signals at {m.n_rows} rows: {names}"
    candidate: int | None = None
    live = m.live
    if m.reference is not None:  # the first model of this name: live at once
        with phases.phase("store"):
            live = store.save(m.reference, state="live")
            history.record_version(live)
        candidate = live.version
    elif new is not None:
        promote = decision.action == "promote"
        with phases.phase("store"):
            new = store.save(new, state="live" if promote else "pending")
            history.record_version(new)
        candidate = new.version
        if not promote:
            text += f"; candidate v{new.version} stored, awaiting approval"
    assert live is not None  # a measurement has a live model or a new reference
    evaluation = _evaluation(m, live, candidate, decision, text, phases, now)
    with phases.phase("store"):
        history.append(evaluation)
    after = new if new is not None and decision.action == "promote" else live
    return evaluation, after


def _evaluation(
    m: Measurement,
    scored: Snapshot,
    candidate: int | None,
    decision: Decision,
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
        promoted=decision.action in ("initial", "promote"),
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
