"""The split gain through the pipeline: a regime that forms between the clusters is seen,
quiet windows are not, and a model stored before the split baseline says it cannot tell."""

from __future__ import annotations

import dataclasses
from typing import Any

from monitor import slis as S
from monitor.config import ModelSettings
from monitor.pipeline import evaluate
from tests.fakes import FakeSource, MemoryHistory, MemoryStore, long_and_tight
from tests.fakes import long_and_tight_model as model

FEATURES = ("a", "b")
NOW = 1_800_000_000.0


def run(m: ModelSettings, store: MemoryStore, now: float, new: float = 0.0) -> Any:
    src = FakeSource(FEATURES, lambda s, e: long_and_tight(1000, seed=int(s) % 100_000, new=new))
    ev, _ = evaluate(m, src, store, MemoryHistory(), now)
    return ev


def test_a_regime_forming_beside_a_tight_cluster_is_seen_and_quiet_windows_are_not() -> None:
    m, store = model(), MemoryStore()
    run(m, store, NOW)
    live = store.load("m")
    assert live.split_baseline is not None and live.split_baseline.shape == (2,)
    quiet = [run(m, store, NOW + h * 3600) for h in (1, 2, 3)]
    formed = run(m, store, NOW + 4 * 3600, new=0.05)
    threshold = formed.thresholds[S.THRESHOLD_SPLIT_GAIN]
    assert all(ev.slis[S.CLUSTERS_APPEARED] == 0.0 for ev in quiet)
    assert all(ev.slis[S.SPLIT_GAIN] < threshold for ev in quiet)
    # 50 rows between the regimes: the tight cluster they join now cuts in two far better.
    assert formed.slis[S.CLUSTERS_APPEARED] == 1.0
    assert formed.slis[S.SPLIT_GAIN] > 3 * threshold


def test_a_model_stored_before_the_split_baseline_leaves_the_split_gain_undefined() -> None:
    m, store = model(), MemoryStore()
    run(m, store, NOW)
    old = dataclasses.replace(store.load("m"), split_baseline=None, version=0, checksum="")
    store.save(old, state="live")
    ev = run(m, store, NOW + 3600, new=0.05)
    assert S.THRESHOLD_SPLIT_GAIN not in ev.thresholds
    # Undefined, not 0 (helper-161: stored and exported as 0.0 after an upgrade, where a
    # regime had formed): absent from the run, so from the history and /metrics.
    assert S.SPLIT_GAIN not in ev.slis and S.CLUSTERS_APPEARED not in ev.slis
    # Its age, not the row count (helper-103: "not drift signals at 1000 rows").
    assert "rows: split_gain" not in ev.decision
    assert (
        "; not measured by v2, stored before kmeans-monitor measured split_gain: a new "
        "version does (snapshots retrain, or the next promotion)"
    ) in ev.decision
