"""Reading a model's reference period through its source, window by window.

The period is cut into consecutive windows of the monitored duration, ending at the
period's end, so that each is read, validated and later compared exactly like a
monitored window. A window that cannot be read or does not validate is left out and
named; a period with no usable window fails the run with the last window's error. A
window the source failed to read (``TransientSourceError``: unreachable, overloaded, too
slow) fails the run instead: left out, a few minutes of a Prometheus overloaded trained
a first model on half its day, and its quiet nights paged from then on (prom F1).

A period holds each row once: a window whose rows are those of an earlier window of the
period (a files source in ``window: file`` mode returns the newest file before each
window's end, the same file for every window until the next one is written) is left out
and counted, and the period keeps the first window that returned them (the one its file
was written in). Counted twice, such rows would make the calibration's blocks identical
copies, with no spread between them: thresholds at the level of one window's own noise,
and every normal window past them.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from monitor.config import SEASON_PERIODS, ModelSettings
from monitor.durations import format_duration, format_prometheus_duration
from monitor.errors import (
    AwaitingReferenceError,
    InvalidInputError,
    NoDataError,
    QueryError,
    SourceDataError,
    SourceError,
    TooFewRowsError,
    TransientSourceError,
)
from monitor.pipeline import remote, train
from monitor.pipeline.scoring import seed_for
from monitor.ports import Engine, TelemetrySource
from monitor.records import CountedRows, ReferencePeriod, Window
from monitor.timestamps import format_time

__all__ = [
    "CUTS",
    "MAX_REFERENCE_WINDOWS",
    "Progress",
    "check_period",
    "check_ready",
    "period_windows",
    "read_reference",
]

log = logging.getLogger(__name__)

#: Windows read for one reference period at most; of a longer period, as many spread over
#: it and over every phase of the day and the week (``_window_ends``; 288: a day of
#: 5-minute windows, or one window every 35 minutes of a week).
MAX_REFERENCE_WINDOWS = 288

#: The fractional part of the golden ratio: the step of the sequence that picks the
#: windows of a long period (``_window_ends``).
_GOLDEN = (5**0.5 - 1) / 2

#: What a long first run is doing, in a few words ("reference period: 12 of 24 windows
#: read"), for a caller that shows progress (``kmeans-monitor backtest``).
Progress = Callable[[str], None]

#: Cuts of the reference period into windows, each ``window / CUTS`` after the last: the
#: period's own windows and a second cut half a window off theirs (docs/slis.md,
#: "Windows between the reference's").
CUTS = 2


def read_reference(
    source: TelemetrySource,
    model: ModelSettings,
    now: float,
    current: Window | None,
    engine: Engine | None = None,
    progress: Progress | None = None,
) -> ReferencePeriod:
    """The reference period of ``model`` for a first run at ``now``.

    ``current`` is the window this run already read: when the period ends now, it is the
    period's last window and is not read twice. Windows whose rows stay on ``engine``
    make a period of a bounded sample (``remote.sampled_period``). The period is read
    again cut at the other offsets of ``CUTS`` (``_cuts``). ``progress`` hears of each
    window read.
    """
    seen: dict[bytes, float] = {}  # the rows of each window kept, by digest: its start
    (start, end), ends, read = _read_period(source, model, now, current, engine, seen, progress)
    if read.skipped:
        log.warning(
            "model=%s reference period: %d of %d windows left out; the first: %s",
            model.name, len(read.skipped), len(ends), read.skipped[0],
        )  # fmt: skip
    if read.repeated:
        log.warning(
            "model=%s reference period: %d of %d windows returned the rows of an earlier "
            "window (as a files source with window: file returns one file until the next "
            "is written) and are counted once: the period holds %d distinct window(s)",
            model.name, read.repeated, len(ends), len(read.starts),
        )  # fmt: skip
    period = _period(read, model)
    return replace(period, cuts=_cuts(source, model, (start, end), engine, seen, progress))


def check_period(
    source: TelemetrySource, model: ModelSettings, now: float, engine: Engine | None = None
) -> None:
    """The error a first run's period raises, if any: a wait for its rows, or none at all
    and since when (``_nothing_yet``). For a first run whose own window the source says
    it holds nothing of: the period, not the window, says whether the data ever began.
    Reads the period's windows, not its cuts."""
    _read_period(source, model, now, None, engine, {})


def _read_period(
    source: TelemetrySource,
    model: ModelSettings,
    now: float,
    current: Window | None,
    engine: Engine | None,
    seen: dict[bytes, float],
    progress: Progress | None = None,
) -> tuple[tuple[float, float], list[float], _Read]:
    """The span of the period, its windows' ends and what they held, once it is known to
    hold rows that cover what it needs (else its error: ``check_ready``, no usable window,
    ``_check_leading_gap``)."""
    check_ready(source, model, now, engine, current)
    start, end = model.reference.span(now)
    ends = _window_ends(start, end, model.window)
    read = _read(source, model, ends, engine, seen, current, progress=progress)
    if not read.rows:
        assert read.last_error is not None
        error = read.last_error
        if len(ends) == 1:  # the period is the run's own window: its error says it all
            raise error
        never = _nothing_yet(source, model, (start, end), read, engine)
        raise type(error)(
            f"no window of the reference period {format_time(start)} to {format_time(end)} "
            f"could be used ({len(ends)} read){never}; the last: {error}"
        )
    _check_leading_gap(source, model, (start, end), ends, read, engine, now=now)
    return (start, end), ends, read


def _nothing_yet(
    source: TelemetrySource,
    model: ModelSettings,
    span: tuple[float, float],
    read: _Read,
    engine: Engine | None,
) -> str:
    """What a period of no rows at all adds when none comes before it either (as
    ``_check_leading_gap`` looks): the data begin later, or the source reads nothing.
    Helper-77 deployed a model before its data and was told only the last window's
    error, which the runbook read as traffic that dropped."""
    if len(read.empty) < len(read.skipped):  # some windows failed otherwise: their errors say
        return ""
    if read.most_rows:
        # Not "no rows": the path and the query are right, the windows too small for k
        # (helper-100 looked for a broken path).
        return f": its windows hold rows, too few for the model (at most {read.most_rows} valid)"
    look = _silent_before(source, model, span, engine)
    if look is None:
        return ""
    later = (
        "move reference.from and reference.to over rows that exist"
        if model.reference.end is not None
        else "a new deployment's runs train once the period holds them"
    )
    # "Begin later" alone sent a backtest past the data's end looking for a start that
    # had come a month before (helper-102).
    return (
        f": the source returned no rows in it nor in the {format_duration(look)} before it; "
        f"its data begin later ({later}) or end before it, or its path or query reads nothing"
    )


def check_ready(
    source: TelemetrySource,
    model: ModelSettings,
    now: float,
    engine: Engine | None = None,
    current: Window | None = None,
) -> None:
    """``check_elapsed``, with the time it gives moved on when the source's data began
    inside the part of the period that has run: from then its rows must cover what
    ``_check_leading_gap`` asks, and a fixed range too short for that fails as
    TooFewRowsError now. Before, the time said was the period's, and the run at it
    failed then. The period's windows are read up to the first that holds rows."""
    try:
        check_elapsed(model, now)
    except AwaitingReferenceError as exc:
        if model.reference.start is not None and model.reference.start < now:
            start, end = model.reference.span(now)
            ends = _window_ends(start, end, model.window)
            lead = _read(source, model, ends, engine, {}, current, until_rows=True)
            if lead.rows:
                _check_leading_gap(
                    source, model, (start, end), ends, lead, engine, exc.ready_at, now=now
                )
        raise


def check_elapsed(model: ModelSettings, now: float) -> None:
    """AwaitingReferenceError when a ``{from, to}`` period, cut at a run at ``now``, holds less
    than the configuration asks of a period: a window, and a cycle with seasonality (a
    period that starts after ``now`` holds nothing). The first run of a model whose period
    was still running read the one window ending at the run, rows from before ``from``
    included, and a seasonal model then knew one hour of its cycle for good. The message
    says from when a run trains the model."""
    start, end = model.reference.start, model.reference.end
    if start is None or end is None:
        return  # {window: D} ends at the run: the configuration holds it to a whole period
    need = max(model.window, SEASON_PERIODS.get(model.seasonality, 0.0))
    if min(end, now) - start >= need:
        return
    trains = f"the first run from {format_time(start + need)} trains the model"
    if start >= now:
        raise AwaitingReferenceError(
            f"the reference period starts at {format_time(start)}, after this run at "
            f"{format_time(now)}: none of it has been read yet; {trains}",
            start + need,
        )
    what = (
        f"a {model.seasonality} cycle"
        if need > model.window
        else f"one window ({format_duration(model.window)})"
    )
    raise AwaitingReferenceError(
        f"the reference period from {format_time(start)} has run "
        f"{format_prometheus_duration(math.floor(now - start))} by this run, less than {what}: "
        f"{trains}",
        start + need,
    )


def _check_leading_gap(
    source: TelemetrySource,
    model: ModelSettings,
    span: tuple[float, float],
    ends: list[float],
    read: _Read,
    engine: Engine | None,
    elapsed: float = 0.0,
    *,
    now: float,
) -> None:
    """AwaitingReferenceError (TooFewRowsError for a fixed range, which cannot grow to
    what it needs) when the source's data began inside the period: the windows before
    the first that holds rows were read and found empty, the time from it to the period's
    end is less than the period needs (a whole cycle with a seasonality, else the period
    up to a day), and no row comes in a week (or the period's length) before the period
    either (a new deployment, a Prometheus younger than the period). A period of a day
    whose first run came an hour after the data began trained on that hour, and a
    seasonal model knew one hour of its cycle for good: 156 of 168 quiet windows
    flagged; trained on half a day, a model knew no afternoon (12 flags a quiet day). A
    service idle for long stretches (rows from 10:00 to 16:00, or on weekdays only) has
    such a lead in a period that starts in its idle time, and rows before it: it trains,
    as does a period whose windows could not be read (an outage; a files source in
    ``window: file`` mode before its first file, whose one file is the period).
    ``ends``: the ends of the period's windows read (``_window_ends``); ``elapsed``: the
    time from which ``check_elapsed`` lets a run train, when it does not yet."""
    start, end = span
    first = read.starts[0]
    empty = [text for s, text in read.empty if s < first]
    cycle = SEASON_PERIODS.get(model.seasonality)
    ref = model.reference
    full = ref.window  # a {from, to} range's whole length too (config._reference)
    need = cycle if cycle is not None else min(full, SEASON_PERIODS["daily"])
    if not empty or (end - first >= need - 1e-6 and elapsed <= end):
        return
    look = _silent_before(source, model, span, engine)
    if look is None:
        return
    what = f"a whole {model.seasonality} cycle" if cycle is not None else format_duration(need)
    before = sum(1 for e in ends if e - model.window < first)
    begins = (
        f"the source's data begin inside the reference period {format_time(start)} to "
        f"{format_time(end)}: its first window with rows starts at {format_time(first)}, "
        f"none in the {format_duration(look)} before the period, and its rows must cover {what}"
    )
    empties = (
        f" ({len(empty)} of the {before} windows before its first rows held none; the "
        f"first: {empty[0]})"
    )
    if ref.end is not None and first + need > ref.end:  # a fixed range that cannot grow
        least = max(model.window, need)  # what the configuration asks of a period, at least
        when = ""
        if first + least > now:  # helper-79: typed now, a range still running trains at once
            when = (
                f" once that time has passed (a range still running trains on what it holds "
                f"after one window), or set reference: {{window: {format_duration(least)}}}, "
                "which waits until the rows cover it"
            )
        raise TooFewRowsError(
            f"{begins}: set reference.from to {format_time(first)} and reference.to to "
            f"{format_time(first + least)} or later{when}{empties}"
        )
    ready = max(first + need, elapsed)
    raise AwaitingReferenceError(
        f"{begins}, which they do from about {format_time(ready)}{empties}", ready
    )


#: Windows read before a period, at most, to tell a quiet stretch from the data's start.
LOOK_BACK_WINDOWS = 48


def _silent_before(
    source: TelemetrySource,
    model: ModelSettings,
    span: tuple[float, float],
    engine: Engine | None,
) -> float | None:
    """How far back before the period no window holds rows (a week, or the period's
    length if longer): the data's start lies after it. None when one does: a quiet
    stretch (a night, a weekend), not the start."""
    start, end = span
    look = max(end - start, SEASON_PERIODS["weekly"])
    return None if _rows_before(source, model, start, look, engine) else look


def _rows_before(
    source: TelemetrySource,
    model: ModelSettings,
    start: float,
    length: float,
    engine: Engine | None,
) -> bool:
    """Whether any of LOOK_BACK_WINDOWS windows spread over ``length`` before ``start``,
    read newest first, holds rows that validate."""
    count = _window_count(start - length, start, model.window)
    step = max(1, -(-count // LOOK_BACK_WINDOWS))
    for i in range(0, count, step):
        e = start - i * model.window
        try:
            remote.validate(source.read_window(e - model.window, e), model, engine)
        except TransientSourceError as exc:
            raise _unread(exc, e - model.window, e, "before the reference period") from None
        except (SourceDataError, QueryError):
            raise  # every other window would say the same
        except (SourceError, InvalidInputError):
            continue
        return True
    return False


@dataclass
class _Read:
    """The windows of a period read so far: the rows kept, and what was left out."""

    rows: list[np.ndarray | CountedRows] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    stops: list[float] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    empty: list[tuple[float, str]] = field(default_factory=list)  # those that held nothing
    most_rows: int = 0  # the most valid rows of a window left out as too few
    repeated: int = 0
    last_error: Exception | None = None


def _read(
    source: TelemetrySource,
    model: ModelSettings,
    ends: list[float],
    engine: Engine | None,
    seen: dict[bytes, float],
    current: Window | None = None,
    until_rows: bool = False,
    *,
    progress: Progress | None = None,
    what: str = "reference period",
) -> _Read:
    """The windows ending at ``ends``, each read and validated; one that fails is left
    out, and one whose rows a window in ``seen`` (digest: start) returned is counted.
    One the source failed to read fails the read (``_unread``). ``until_rows``: stop
    after the first window kept. ``progress`` hears of each window read, as ``what``."""
    out = _Read()
    for i, e in enumerate(ends):
        if progress is not None and i:
            progress(f"{what}: {i} of {len(ends)} windows read")
        s = e - model.window
        try:
            if current is not None and (s, e) == (current.start, current.end):
                window = current
            else:
                window = source.read_window(s, e)
            X = remote.validate(window, model, engine)
        except TransientSourceError as exc:
            raise _unread(exc, s, e, "of the reference period") from None
        except (SourceDataError, QueryError):
            raise  # every other window of the period would say the same
        except (SourceError, InvalidInputError) as exc:
            out.skipped.append(f"[{format_time(s)}, {format_time(e)}): {exc}")
            if isinstance(exc, TooFewRowsError | NoDataError):
                out.empty.append((s, out.skipped[-1]))
                out.most_rows = max(out.most_rows, getattr(exc, "rows", None) or 0)
            out.last_error = exc
            continue
        digest = _digest(window)
        if digest is not None and seen.setdefault(digest, s) != s:
            out.repeated += 1  # the rows of an earlier window of the period: counted once
            continue
        out.rows.append(X)
        out.starts.append(s)
        out.stops.append(e)
        if until_rows:
            break
    return out


def _unread(exc: TransientSourceError, start: float, end: float, where: str) -> Exception:
    """The error of a run whose period's window ``[start, end)`` the source failed to
    read: of its kind, naming the window. Not left out as a window of no rows is: a model
    trained on the rest of its period would stay live, knowing part of it."""
    return type(exc)(
        f"the window [{format_time(start)}, {format_time(end)}) {where} could not be read, "
        f"and no model is trained on part of its period (the next run reads it again): {exc}"
    )


def _period(read: _Read, model: ModelSettings) -> ReferencePeriod:
    """The period of the windows ``read`` kept: their rows, or, when the source keeps
    them on the engine (every window then does), a bounded sample of them
    (``remote.sampled_period``, seeded by the first window's start)."""
    kept = [X for X in read.rows if isinstance(X, CountedRows)]
    if kept:
        seed = seed_for(model.training.seed, read.starts[0])
        return remote.sampled_period(
            kept, read.starts, read.stops, limit=train.TRAINING_ROWS, seed=seed,
            skipped=tuple(read.skipped),
        )  # fmt: skip
    arrays = [X for X in read.rows if not isinstance(X, CountedRows)]
    blocks = [np.full(X.shape[0], i, dtype=np.intp) for i, X in enumerate(arrays)]
    return ReferencePeriod(
        X=np.concatenate(arrays) if len(arrays) > 1 else arrays[0],
        block=np.concatenate(blocks),
        starts=np.asarray(read.starts),
        ends=np.asarray(read.stops),
        skipped=tuple(read.skipped),
    )


def _cuts(
    source: TelemetrySource,
    model: ModelSettings,
    span: tuple[float, float],
    engine: Engine | None,
    seen: dict[bytes, float],
    progress: Progress | None = None,
) -> tuple[ReferencePeriod, ...]:
    """The period cut into windows ending ``i * window / CUTS`` before its own windows'
    ends, for ``0 < i < CUTS``: the calibration's null windows at those offsets, where a
    run whose schedule is shorter than its window, or that a restart moved, ends too.

    A window that fails to read or validate is left out without a word (the period's own
    windows are the model's; these only widen its null), as is one whose rows an earlier
    window returned (a files source in ``window: file`` mode returns the same file at
    every offset); one the source failed to read fails the run, as one of the period's own
    windows does (``_read``). A cut of fewer than two windows is not kept. A cut whose rows
    stay on the engine is sampled as the period is (``_period``), so that both engines
    calibrate on the same null windows. A model in the ``fixed`` mode calibrates nothing:
    none is read.
    """
    if model.thresholds.mode == "fixed":
        return ()
    start, end = span
    out = []
    for i in range(1, CUTS):
        ends = _window_ends(start, end - i * model.window / CUTS, model.window)
        cut = [e for e in ends if e - model.window >= start]
        what = f"reference period shifted by {i}/{CUTS} of a window"
        read = _read(source, model, cut, engine, seen, progress=progress, what=what)
        if len(read.rows) >= 2:
            out.append(_period(read, model))
    return tuple(out)


def _digest(window: Window) -> bytes | None:
    """A digest of the rows a source returned for ``window`` and of what it says it read
    (``Window.label``: the file and its modification time, or the time range; None: they
    stay on an engine, read by time and never twice). Rows of other times or other files
    are other rows, however alike: an idle service's windows of identical values, counted
    once, left the period almost none of its idle hours, and every idle run after it
    drifted."""
    if window.remote is not None:
        return None
    X = np.ascontiguousarray(window.X)
    h = hashlib.blake2b(repr((X.shape, X.dtype.str, window.label)).encode(), digest_size=20)
    h.update(X.data.cast("B"))
    return h.digest()


def period_windows(model: ModelSettings, now: float) -> tuple[int, int]:
    """How many windows a first run at ``now`` reads of the reference period, and how many
    the period holds (more when it is longer than MAX_REFERENCE_WINDOWS)."""
    start, end = model.reference.span(now)
    return len(_window_ends(start, end, model.window)), _window_count(start, end, model.window)


def _window_count(start: float, end: float, window: float) -> int:
    return max(1, int((end - start) // window + 1e-9))


def _window_ends(start: float, end: float, window: float) -> list[float]:
    """Ends of the windows cut back from ``end``, at most MAX_REFERENCE_WINDOWS of them.

    Of a longer period, windows ``floor(count * frac(j * _GOLDEN))`` for j = 0, 1, ...
    until there are enough: spread over the period, and over every phase of any cycle of
    the data. Every n-th window read the same phases of every cycle that n divides: four
    weeks of hourly windows, every 3rd, held 56 hours of the week and never the other
    112, and a quiet week flagged 22 of its 169 windows, every day at the hours where a
    regime starts or stops (helper-85)."""
    count = _window_count(start, end, window)
    if count <= MAX_REFERENCE_WINDOWS:
        picked: Iterable[int] = range(count)
    else:
        chosen: dict[int, None] = {}
        j = 0
        while len(chosen) < MAX_REFERENCE_WINDOWS:  # equidistributed: each index comes
            chosen[int(count * (j * _GOLDEN % 1.0))] = None
            j += 1
        picked = chosen
    return sorted(end - i * window for i in picked)
