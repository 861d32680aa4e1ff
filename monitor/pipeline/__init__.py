"""One window, start to end, as three steps with typed records between them.

measure (pure: validate, scale, score the live model, train a candidate, compare)
-> decide (pure: the retrain policy) -> commit (the store and the history, through
ports). The pipeline never imports a source, a store, the scheduler, the exporter or
an HTTP client: they come in as arguments that meet ``monitor.ports``.
"""

from __future__ import annotations

from collections.abc import Callable

from monitor.config import ModelSettings
from monitor.pipeline.commit import commit
from monitor.pipeline.decide import decide, drift_reasons
from monitor.pipeline.diff import SnapshotDiff, diff_snapshots
from monitor.pipeline.measure import RunContext, measure, retrain
from monitor.pipeline.phases import Phases
from monitor.pipeline.reference import read_reference
from monitor.pipeline.scoring import ScaleBuffer, schema_hash, score, validate_window
from monitor.pipeline.train import train_reference
from monitor.ports import Engine, History, SnapshotStore, TelemetrySource
from monitor.records import Evaluation, Snapshot

__all__ = [
    "RunContext",
    "ScaleBuffer",
    "SnapshotDiff",
    "decide",
    "diff_snapshots",
    "drift_reasons",
    "evaluate",
    "schema_hash",
    "score",
    "train_reference",
    "validate_window",
]


def evaluate(
    model: ModelSettings,
    source: TelemetrySource,
    store: SnapshotStore,
    history: History,
    now: float,
    *,
    package_version: str = "",
    working_memory_mib: float = 64.0,
    should_stop: Callable[[], bool] | None = None,
    engine: Engine | None = None,
    n_threads: int = 1,
    buffer: ScaleBuffer | None = None,
) -> tuple[Evaluation, Snapshot]:
    """Run one window for one model; return the evaluation and the snapshot live after it.

    ``engine`` scores the window and trains the candidate (default: in this process, on
    ``n_threads`` threads); ``buffer``, the model's own, keeps the memory of its scaled
    window from one run to the next.
    """
    phases = Phases(should_stop)
    with phases.phase("read"):
        window = source.read_window(now - model.window, now)
    with phases.phase("load"):
        live = _live(store, model.name)
        pending = store.pending_version(model.name) if live is not None else None
    reference = None
    if live is None:  # the first model is trained on the reference period
        with phases.phase("reference"):
            reference = read_reference(source, model, now, window, engine)
    ctx = RunContext(now, package_version, working_memory_mib, engine, n_threads, buffer)
    m = measure(window, live, model, phases, ctx, reference)
    decision = decide(m, model, now=now, pending=pending)
    new = retrain(m, decision, model, phases, ctx)
    return commit(m, decision, new, store, history, phases, now=now)


def _live(store: SnapshotStore, model: str) -> Snapshot | None:
    version = store.live_version(model)
    return None if version is None else store.load(model, version)
