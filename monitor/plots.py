"""Plots: a backtest's SLIs against their thresholds over time, and choose-k's curves.

The only module that imports matplotlib (optional extra ``plot``), and only when a plot
is drawn: without it, ``PlotUnavailableError`` names the install command. Figures are
built with matplotlib's object API (no pyplot state, no display), so drawing is safe in
any thread and needs no GUI backend.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import alerting
from monitor.checks import shown_path
from monitor.core.selection import CRITERIA
from monitor.errors import InvalidInputError
from monitor.pipeline.replay import Replay
from monitor.records import Evaluation, KSelection

__all__ = [
    "FORMATS",
    "INSTALL_HINT",
    "PlotUnavailableError",
    "plot_format",
    "plot_k_selection",
    "plot_replay",
    "require_matplotlib",
]

#: File suffixes the plot can be written as.
FORMATS = {".png": "png", ".svg": "svg"}
INSTALL_HINT = "pip install 'kmeans-monitor[plot]'"
# SVG text stays text (searchable, selectable) instead of glyph outlines, and element ids
# come from a fixed salt instead of a random one, so the same data draws the same file.
_SVG = {"svg.fonttype": "none", "svg.hashsalt": "kmeans-monitor"}


class PlotUnavailableError(InvalidInputError):
    """matplotlib is not installed; the message names the extra that brings it."""


def require_matplotlib() -> None:
    """PlotUnavailableError unless matplotlib can be imported."""
    _matplotlib()


def _matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib import rc_context
        from matplotlib.dates import AutoDateLocator  # noqa: F401  (the time axis needs it)
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailableError(
            f"plots need matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None
    return Figure, rc_context


def _time_axis(axis: Any) -> None:
    """Ticks at round times for the range shown, labelled to the precision they need
    (seconds over a few minutes, days over weeks), in UTC."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(tz=UTC)
    axis.set_major_locator(locator)
    # Seconds as a whole time ("00:01:30"), not matplotlib's bare "30".
    formats = ["%Y", "%b", "%d", "%H:%M", "%H:%M", "%H:%M:%S"]
    axis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC, formats=formats))


def plot_format(path: Path) -> str:
    """The format of ``path`` from its suffix; InvalidInputError for any other suffix."""
    name = Path(path).name.lower()
    if name in FORMATS:  # ".png" alone is a hidden file's name without a suffix
        raise InvalidInputError(
            f"--plot {shown_path(path)}: give the file a name before its suffix, "
            f"such as 'plot{name}'"
        )
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"--plot {shown_path(path)}: the file name must end in {' or '.join(FORMATS)}"
        )
    return fmt


def plot_replay(replay: Replay, path: Path) -> None:
    """Write one panel per compared SLI: its value and threshold per run, alerts shaded.

    Red in every panel from each run after which an alert fires to the next run (while
    that run's values stand), runs whose SLI is past its threshold red dots on its line,
    failed runs grey vertical lines.
    """
    fmt = plot_format(path)
    Figure, rc_context = _matplotlib()
    panels = alerting.COMPARED
    fig = Figure(figsize=(11, 1.9 * len(panels) + 0.8), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    times = [_utc(w.end) for w in replay.windows]
    for ax, (sli, threshold) in zip(axes, panels, strict=True):
        values = [_value(w.result, sli, slis=True) for w in replay.windows]
        limits = [_value(w.result, threshold, slis=False) for w in replay.windows]
        ax.plot(times, values, color="tab:blue", linewidth=1.2, label=f"{sli} (SLI)")
        ax.step(
            times,
            limits,
            where="post",
            color="tab:orange",
            linewidth=1.0,
            label=f"{threshold} (threshold)",
        )
        over = [
            (t, v)
            for t, v, limit in zip(times, values, limits, strict=True)
            if alerting.past(v, limit, sli)
        ]
        if over:
            ax.plot(*zip(*over, strict=True), "o", color="tab:red", markersize=3)
        _clip(ax, times, values, limits)
        _mark(ax, replay, times)
        ax.set_ylabel(sli, fontsize=8)
        # Beside the panel: inside, it covered the runs of its corner.
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        ax.grid(alpha=0.3)
    _time_axis(axes[-1].xaxis)
    axes[-1].set_xlabel("run time (UTC)")
    fig.suptitle(
        f"backtest of {replay.model}: {len(replay.windows)} windows, {replay.flags} flags, "
        f"{replay.pages} pages (red: an alert fires)",
        fontsize=10,
    )
    # No creation date in the file: the same backtest writes the same SVG.
    metadata = {"Date": None} if fmt == "svg" else {}
    with rc_context(_SVG):
        fig.savefig(path, format=fmt, metadata=metadata, dpi=110)


def plot_k_selection(selection: KSelection, path: Path, *, title: str) -> None:
    """Write the elbow, silhouette and gap curves over k, each rule's choice marked.

    The elbow panel draws the chord the rule measures from; the gap panel draws the
    error bars s_k the rule compares with. A rule that was not computed (its choice is
    0) says so in its panel.
    """
    fmt = plot_format(path)
    Figure, rc_context = _matplotlib()
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    elbow, silhouette, gap = fig.subplots(1, 3, squeeze=True)
    # The rules' names as choose_k knows them (a rule, not the silhouette SLI).
    by_elbow, by_silhouette, by_gap = CRITERIA
    ks = [int(k) for k in selection.ks]
    inertia = [float(v) for v in selection.inertia]
    elbow.plot(ks, inertia, "o-", color="tab:blue", markersize=4)
    if len(ks) > 1:
        elbow.plot(
            [ks[0], ks[-1]], [inertia[0], inertia[-1]], "--", color="0.6", linewidth=0.8
        )  # the chord
    _choice(elbow, ks, inertia, selection.best_elbow, by_elbow, "inertia (within-cluster SS)")
    multi = [i for i, k in enumerate(ks) if k >= 2]  # silhouette is undefined for k = 1
    sil = [float(selection.silhouette[i]) for i in multi]
    silhouette.plot([ks[i] for i in multi], sil, "o-", color="tab:blue", markersize=4)
    _choice(silhouette, [ks[i] for i in multi], sil, selection.best_silhouette, by_silhouette,
            "mean silhouette")  # fmt: skip
    values = [float(v) for v in selection.gap]
    gap.errorbar(ks, values, yerr=[float(v) for v in selection.gap_sk], fmt="o-",
                 color="tab:blue", markersize=4, capsize=3, linewidth=1.0)  # fmt: skip
    _choice(gap, ks, values, selection.best_gap, by_gap, "gap statistic (bars: s_k)")
    fig.suptitle(title, fontsize=10)
    metadata = {"Date": None} if fmt == "svg" else {}
    with rc_context(_SVG):
        fig.savefig(path, format=fmt, metadata=metadata, dpi=110)


def _choice(ax: Any, ks: list[int], values: list[float], best: int, rule: str, label: str) -> None:
    """Mark a rule's chosen k on its panel (a red point and line), or say it was not computed."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("k")
    ax.set_ylabel(label, fontsize=8)
    ax.grid(alpha=0.3)
    if ks:
        # Every k of a short range; of a long one, at most a dozen or so, at round steps
        # (labelling every k ran the labels together from about 20 ks).
        ticks = MaxNLocator(nbins=12, integer=True, steps=[1, 2, 5, 10]).tick_values(ks[0], ks[-1])
        ax.set_xticks([int(t) for t in ticks if ks[0] <= t <= ks[-1]])
    if best not in ks:
        ax.set_title(f"{rule}: not computed", fontsize=9)
        return
    ax.axvline(best, color="tab:red", linewidth=1.0, alpha=0.6)
    ax.plot([best], [values[ks.index(best)]], "o", color="tab:red", markersize=8)
    ax.set_title(f"{rule}: k={best}", fontsize=9)


def _shown_top(values: list[float], limits: list[float]) -> float | None:
    """The top of a panel's axis when its largest values would flatten the rest (None:
    the whole range is shown): twice the larger of the highest threshold and the 95th
    percentile of the values. One window of a x60 unit change, at 81,629 against values
    near 1, drew every other run and the threshold as a line at 0 (helper-102)."""
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return None
    high = max((v for v in limits if math.isfinite(v)), default=-math.inf)
    top = 2 * max(high, finite[round(0.95 * (len(finite) - 1))])
    return top if top > 0 and finite[-1] > top else None


def _clip(ax: Any, times: list[datetime], values: list[float], limits: list[float]) -> None:
    """Cut the axis at ``_shown_top``: the values above it drawn as triangles on the top
    edge, and how many and the largest written in the panel."""
    top = _shown_top(values, limits)
    if top is None:
        return
    above = [(t, v) for t, v in zip(times, values, strict=True) if math.isfinite(v) and v > top]
    low = min(v for v in (*values, *limits) if math.isfinite(v))
    ax.set_ylim(low - 0.05 * (top - low), top)  # the bottom too: autoscaled, it kept the spike's
    ax.plot([t for t, _ in above], [top] * len(above), "^", color="tab:red", markersize=5,
            clip_on=False)  # fmt: skip
    ax.text(0.995, 0.97, f"{len(above)} above the axis, up to {max(v for _, v in above):.4g}",
            transform=ax.transAxes, ha="right", va="top", fontsize=7, color="tab:red")  # fmt: skip


def _firing_spans(replay: Replay) -> list[tuple[float, float]]:
    """The times an alert fires: from each run after which one fires to the next run,
    consecutive runs joined into one span. Each firing run's data window, on this run
    time axis, began red a window before the first alert, in layers that darkened where
    the windows overlapped (prom F4)."""
    ends = [w.end for w in replay.windows[1:]] + [replay.next_time]
    spans: list[tuple[float, float]] = []
    for w, until in zip(replay.windows, ends, strict=True):
        if not w.firing:
            continue
        if spans and spans[-1][1] == w.end:
            spans[-1] = (spans[-1][0], until)
        else:
            spans.append((w.end, until))
    return spans


def _mark(ax: Any, replay: Replay, times: list[datetime]) -> None:
    """Shade the times an alert fires (``_firing_spans``); a grey line at each failed run."""
    for start, end in _firing_spans(replay):
        ax.axvspan(_utc(start), _utc(end), color="tab:red", alpha=0.15, linewidth=0)
    for w, t in zip(replay.windows, times, strict=True):
        if w.failed:
            ax.axvline(t, color="0.5", linewidth=0.8, linestyle="--")


def _value(result: Any, key: str, *, slis: bool) -> float:
    """An SLI or threshold of a run; NaN (a gap in the line) when absent or failed."""
    if not isinstance(result, Evaluation):
        return math.nan
    value = (result.slis if slis else result.thresholds).get(key)
    return math.nan if value is None else float(value)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
