"""Reading a model's reference period through its source, window by window.

The period is cut into consecutive windows of the monitored duration, ending at the
period's end, so that each is read, validated and later compared exactly like a
monitored window. A window that cannot be read or does not validate is left out and
named; a period with no usable window fails the run with the last window's error.

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

import numpy as np

from monitor.config import ModelSettings
from monitor.errors import InvalidInputError, SourceError
from monitor.pipeline import remote, train
from monitor.pipeline.scoring import seed_for
from monitor.ports import Engine, TelemetrySource
from monitor.records import CountedRows, ReferencePeriod, Window
from monitor.timestamps import format_time

__all__ = ["MAX_REFERENCE_WINDOWS", "period_windows", "read_reference"]

log = logging.getLogger(__name__)

#: Windows read for one reference period at most; a longer period is read every n-th
#: window, still spread over every phase of the day and the week (288: a day of 5-minute
#: windows, or one window every 35 minutes of a week).
MAX_REFERENCE_WINDOWS = 288


def read_reference(
    source: TelemetrySource,
    model: ModelSettings,
    now: float,
    current: Window,
    engine: Engine | None = None,
) -> ReferencePeriod:
    """The reference period of ``model`` for a first run at ``now``.

    ``current`` is the window this run already read: when the period ends now, it is the
    period's last window and is not read twice. Windows whose rows stay on ``engine``
    make a period of a bounded sample (``remote.sampled_period``).
    """
    start, end = model.reference.span(now)
    ends = _window_ends(start, end, model.window)
    rows: list[np.ndarray | CountedRows] = []
    blocks: list[np.ndarray] = []
    starts: list[float] = []
    stops: list[float] = []
    skipped: list[str] = []
    seen: dict[bytes, float] = {}  # the rows of each window kept, by digest: its start
    repeated = 0
    last_error: Exception | None = None
    for e in ends:
        s = e - model.window
        try:
            window = current if (s, e) == (current.start, current.end) else source.read_window(s, e)
            X = remote.validate(window, model, engine)
        except (SourceError, InvalidInputError) as exc:
            skipped.append(f"[{format_time(s)}, {format_time(e)}): {exc}")
            last_error = exc
            continue
        digest = _digest(window)
        if digest is not None and seen.setdefault(digest, s) != s:
            repeated += 1  # the rows of an earlier window of the period: counted once
            continue
        rows.append(X)
        if not isinstance(X, CountedRows):
            blocks.append(np.full(X.shape[0], len(starts), dtype=np.intp))
        starts.append(s)
        stops.append(e)
    if not rows:
        assert last_error is not None
        raise last_error
    if skipped:
        log.warning(
            "model=%s reference period: %d of %d windows left out; the first: %s",
            model.name, len(skipped), len(ends), skipped[0],
        )  # fmt: skip
    if repeated:
        log.warning(
            "model=%s reference period: %d of %d windows returned the rows of an earlier "
            "window (as a files source with window: file returns one file until the next "
            "is written) and are counted once: the period holds %d distinct window(s)",
            model.name, repeated, len(ends), len(starts),
        )  # fmt: skip
    kept = [X for X in rows if isinstance(X, CountedRows)]
    if kept:  # the source keeps its rows on the engine: every window does
        seed = seed_for(model.training.seed, starts[0])
        return remote.sampled_period(
            kept, starts, stops, limit=train.TRAINING_ROWS, seed=seed, skipped=tuple(skipped)
        )
    arrays = [X for X in rows if not isinstance(X, CountedRows)]
    return ReferencePeriod(
        X=np.concatenate(arrays) if len(arrays) > 1 else arrays[0],
        block=np.concatenate(blocks),
        starts=np.asarray(starts),
        ends=np.asarray(stops),
        skipped=tuple(skipped),
    )


def _digest(window: Window) -> bytes | None:
    """A digest of the rows a source returned for ``window`` (None: they stay on an
    engine, read by time and never twice)."""
    if window.remote is not None:
        return None
    X = np.ascontiguousarray(window.X)
    h = hashlib.blake2b(repr((X.shape, X.dtype.str)).encode(), digest_size=20)
    h.update(X.data.cast("B"))
    return h.digest()


def period_windows(model: ModelSettings, now: float) -> int:
    """How many windows a first run at ``now`` cuts the reference period into."""
    return len(_window_ends(*model.reference.span(now), model.window))


def _window_ends(start: float, end: float, window: float) -> list[float]:
    """Ends of the windows cut back from ``end``, at most MAX_REFERENCE_WINDOWS of them."""
    count = max(1, int((end - start) // window + 1e-9))
    step = max(1, -(-count // MAX_REFERENCE_WINDOWS))  # every n-th window of a long period
    return sorted(end - i * window for i in range(0, count, step))
