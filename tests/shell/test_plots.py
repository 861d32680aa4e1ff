"""The backtest plot: a spike must not flatten a panel (helper-102); red where alerts fire."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from monitor.alerting import COMPARED, Condition
from monitor.pipeline.replay import Replay, ReplayWindow
from monitor.plots import _firing_spans, _shown_top, plot_replay
from tests.store._store_factories import make_evaluation


def test_the_axis_is_cut_only_where_the_largest_values_would_flatten_the_rest() -> None:
    quiet = [1.0 + i / 100 for i in range(100)]
    assert _shown_top(quiet, [3.0] * 100) is None
    assert _shown_top([*quiet, 81_629.0], [3.0] * 101) == 6.0  # twice the threshold
    # Values above the threshold on most runs set the top by their 95th percentile.
    high = [10.0 + i for i in range(100)] + [5e6]
    assert _shown_top(high, [3.0] * 101) == 2 * 105.0
    assert _shown_top([0.0] * 50 + [3.0], [0.0] * 51) is None  # a count from 0 is shown whole
    assert _shown_top([math.nan] * 5, [1.0] * 5) is None


def test_a_spike_is_drawn_on_the_top_edge_and_counted(tmp_path: Path) -> None:
    windows = []
    for i in range(48):
        value = 81_629.0 if i == 30 else 0.1 + (i % 5) / 100
        slis = {sli: value for sli, _ in COMPARED}
        result = make_evaluation(
            evaluated_at=1_700_000_000.0 + 3600 * i,
            slis=slis,
            thresholds={threshold: 0.5 for _, threshold in COMPARED},
        )
        windows.append(
            ReplayWindow(
                i, result.window_start, result.evaluated_at, result, (), (), False, False, 0
            )
        )
    replay = Replay("m1", windows[0].start, windows[-1].end, tuple(windows), windows[-1].end + 3600)
    path = tmp_path / "plot.svg"
    plot_replay(replay, path)
    texts = [t.strip() for t in ET.fromstring(path.read_bytes()).itertext()]
    # Every panel is cut (at 1.0, twice its threshold), the spike counted in it.
    cut = [t for t in texts if t == "1 above the axis, up to 8.163e+04"]
    assert len(cut) == len(COMPARED)


def test_red_runs_from_each_firing_run_to_the_next_run_in_one_layer() -> None:
    # Runs every 10 minutes over 1-hour windows, an alert firing after runs 3 to 5 and
    # after the last: red began a whole window before the first of them (at run 3's
    # window start, where every run was quiet), in layers that darkened where the
    # firing runs' windows overlapped (prom F4).
    t0, step = 1_700_000_000.0, 600.0
    firing = (Condition("KMeansOutlierRatioHigh", "warning", "outlier_ratio"),)
    windows = [
        ReplayWindow(
            i,
            t0 + step * i - 3600,
            t0 + step * i,
            make_evaluation(evaluated_at=t0 + step * i),
            firing if i in (3, 4, 5, 8) else (),
            firing if i in (3, 4, 5, 8) else (),
            i in (3, 4, 5, 8),
            i in (3, 8),
            0,
        )
        for i in range(9)
    ]
    replay = Replay("m1", windows[0].start, windows[-1].end, tuple(windows), t0 + 9 * step)
    assert _firing_spans(replay) == [
        (t0 + 3 * step, t0 + 6 * step),  # from run 3 to run 6, which fired nothing
        (t0 + 8 * step, t0 + 9 * step),  # the last run's values stand until the next run
    ]
