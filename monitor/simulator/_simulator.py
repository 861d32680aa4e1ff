"""The Simulator: rows of any time range, and instants of a fleet of instances.

Randomness is derived from ``(seed, start, end)`` of each window, never from a stateful
generator, so the same window with the same options always yields the same rows, and
a window with an event yields the same random draws as the same window without it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from monitor.checks import Mismatch, Problem, check_float, check_int
from monitor.errors import SourceError
from monitor.simulator._options import (
    DEFAULT_ROWS_PER_WINDOW,
    MAX_ROWS_PER_WINDOW,
    Event,
    SimulatorOptions,
    event_end,
    new_cluster_index,
    options_problems,
)
from monitor.simulator._structure import TAG_INSTANCE, TAG_INSTANT, TAG_WINDOW, build_structure
from monitor.timestamps import format_time

__all__ = ["SimulatedRows", "Simulator"]

_DAY = 86400.0
_SEGMENT = 60.0  # regime shares are held constant over segments this long (seconds)
_CHUNK = 65536  # rows generated at a time, to bound the temporaries

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]


@dataclass(frozen=True, eq=False)
class SimulatedRows:
    """Rows of a time range with their ground truth."""

    timestamps: FloatArray  # (n,) unix seconds, ascending, in [start, end)
    regimes: IndexArray  # (n,) regime of each row
    X: FloatArray  # (n, d) in feature order


@dataclass(frozen=True, eq=False)
class _Draws:
    """The random numbers behind n rows: one stream per use, so uses do not interact."""

    u: FloatArray  # (n,) quantile that picks the regime
    eps: FloatArray  # (n, d) standard normal noise
    load: FloatArray  # (n,) standard normal load shared by a row's features
    nan_u: FloatArray  # (n,) decides whether a nan_burst hits the row
    nan_pick: FloatArray  # (n,) which feature a nan_burst without a feature hits


class Simulator:
    """Telemetry of a simulated service for any list of feature names.

    Parameters
    ----------
    features : sequence of str, length d
        Names of the columns, in order; their names pick each column's kind and level.
    options : SimulatorOptions, optional
        Seed, regimes, volume, seasonality, noise, origin and events.

    Notes
    -----
    Event offsets count from ``options.origin``; when it is None, from the start of the
    first range asked for (``sample``, ``rows``) or the first instant (``instant``).
    """

    def __init__(self, features: Sequence[str], options: SimulatorOptions | None = None) -> None:
        options = SimulatorOptions() if options is None else options
        if (
            isinstance(features, str)
            or not features
            or not all(isinstance(f, str) and f for f in features)
            or len(set(features)) != len(features)
        ):
            expected = "a non-empty sequence of distinct non-empty str"
            raise Mismatch(Problem("features", expected, features), "Simulator")
        problems = options_problems(options, features)
        if problems:
            raise Mismatch(problems[0], "Simulator")
        self._features = tuple(features)
        self._options = options
        self._origin = options.origin
        self._lock = threading.Lock()
        self._column = {f: j for j, f in enumerate(self._features)}
        self._new_index = new_cluster_index(options)
        self._s = build_structure(self._features, options, len(self._new_index))

    @property
    def features(self) -> tuple[str, ...]:
        """Column names, in order."""
        return self._features

    @property
    def options(self) -> SimulatorOptions:
        """The options this simulator was built with."""
        return self._options

    @property
    def origin(self) -> float | None:
        """Unix time events count from; None until pinned by the first request."""
        return self._origin

    @property
    def n_regimes(self) -> int:
        """Initial regimes plus those that new_cluster events add."""
        return int(self._s.center.shape[0])

    def n_rows(self, start: float, end: float) -> int:
        """Rows a window ``[start, end)`` holds under the configured volume."""
        o = self._options
        if o.rate is not None:
            # Rounding first keeps 0.29 rows/s over 100 s at 29 rows, not 28.
            return max(0, math.floor(round(o.rate * (end - start), 6)))
        return DEFAULT_ROWS_PER_WINDOW if o.rows_per_window is None else o.rows_per_window

    def in_outage(self, t: float) -> bool:
        """Whether a scheduled outage is in force at unix time ``t``."""
        return self._outage(float(t)) is not None

    def sample(self, start: float, end: float, n_rows: int | None = None) -> SimulatedRows:
        """Rows of ``[start, end)`` with their timestamps and regimes.

        Parameters
        ----------
        start, end : float
            Unix seconds, ``start < end``.
        n_rows : int, optional
            Overrides the configured volume.

        Returns
        -------
        SimulatedRows
            ``timestamps`` of shape (n,), ``regimes`` of shape (n,), ``X`` of shape (n, d).

        Raises
        ------
        SourceError
            When an outage is in force at ``end``, the moment the window is read.
        """
        start = check_float(start, "start", owner="Simulator.sample")
        end = check_float(end, "end", low=start, low_inclusive=False, owner="Simulator.sample")
        n = self.n_rows(start, end) if n_rows is None else n_rows
        n = check_int(n, "n_rows", low=0, owner="Simulator.sample")
        if n > MAX_ROWS_PER_WINDOW:
            raise SourceError(
                f"a window of {end - start:g} s at rate {self._options.rate:g} rows/s holds "
                f"{float(n):.3g} rows; at most {MAX_ROWS_PER_WINDOW} a window: lower source.rate"
                if n_rows is None
                else f"{n} rows asked; at most {MAX_ROWS_PER_WINDOW} a window"
            )
        self._pin_origin(start)
        self._raise_on_outage(end)
        return self._sample(start, end, n, _CHUNK)

    def rows(self, start: float, end: float, n_rows: int | None = None) -> FloatArray:
        """Rows of ``[start, end)``: the ``X`` of :meth:`sample`, shape (n, d)."""
        return self.sample(start, end, n_rows).X

    def instant(self, t: float, n_instances: int) -> FloatArray:
        """One row per instance of the service at unix time ``t``, shape (n_instances, d).

        Instance ``i`` keeps its identity: its regime follows the regime shares at ``t``
        through a fixed quantile of its own, and its noise has a persistent part, so
        that per-instance gauges move smoothly. Raises SourceError during an outage.
        """
        t = check_float(t, "t", owner="Simulator.instant")
        n = check_int(n_instances, "n_instances", low=0, owner="Simulator.instant")
        self._pin_origin(t)
        self._raise_on_outage(t)
        d = len(self._features)
        seed = self._options.seed
        # Instance i's identity is the i-th draw of streams that depend on the seed only;
        # a stream's first draws do not depend on how many are taken.
        g_u, g_own = (
            np.random.default_rng(s) for s in np.random.SeedSequence([TAG_INSTANCE, seed]).spawn(2)
        )
        u = g_u.random(n)
        persistent = g_own.standard_normal((n, d))
        # One stream per draw, so that the first instances do not change with n_instances.
        g_noise, g_load, g_nan, g_pick = (
            np.random.default_rng(s)
            for s in np.random.SeedSequence([TAG_INSTANT, seed, _bits(t)]).spawn(4)
        )
        fresh = g_noise.standard_normal((n, d))
        # 0.6² + 0.8² = 1: the mix keeps unit variance, 36% of it the instance's own.
        eps = 0.6 * persistent + 0.8 * fresh
        draws = _Draws(u, eps, g_load.standard_normal(n), g_nan.random(n), g_pick.random(n))
        _, X = self._generate(np.full(n, t), draws)
        return X

    # ------------------------------------------------------------------ internals

    def _pin_origin(self, t: float) -> float:
        with self._lock:
            if self._origin is None:
                self._origin = float(t)
            return self._origin

    def _outage(self, t: float) -> int | None:
        origin = self._pin_origin(t)
        for i, e in enumerate(self._options.events):
            if e.kind == "outage" and e.after <= t - origin < event_end(e):
                return i
        return None

    def _raise_on_outage(self, t: float) -> None:
        i = self._outage(t)
        if i is not None:
            event = self._options.events[i]
            origin = self._pin_origin(t)
            end = event_end(event)
            until = "further notice" if math.isinf(end) else format_time(origin + end)
            raise SourceError(
                f"simulated outage (source.events[{i}]) from {format_time(origin + event.after)} "
                f"until {until}; the read at {format_time(t)} fails"
            )

    def _sample(self, start: float, end: float, n: int, chunk: int) -> SimulatedRows:
        d = len(self._features)
        ss = np.random.SeedSequence([TAG_WINDOW, self._options.seed, _bits(start), _bits(end)])
        # One generator per stream: drawing a stream chunk by chunk gives the same numbers
        # as drawing it at once, so the chunk size never changes the rows.
        g_time, g_regime, g_noise, g_load, g_nan, g_pick = (
            np.random.default_rng(s) for s in ss.spawn(6)
        )
        timestamps = np.empty(n)
        regimes = np.empty(n, dtype=np.intp)
        X = np.empty((n, d))
        width = (end - start) / max(n, 1)
        last = np.nextafter(end, -math.inf)
        for lo in range(0, n, chunk):
            m = min(n, lo + chunk) - lo
            # Stratified times: row i falls in the i-th of n equal slots, so rows are
            # ordered and evenly spread without a sort.
            t = start + (np.arange(lo, lo + m) + g_time.random(m)) * width
            np.minimum(t, last, out=t)
            draws = _Draws(
                g_regime.random(m),
                g_noise.standard_normal((m, d)),
                g_load.standard_normal(m),
                g_nan.random(m),
                g_pick.random(m),
            )
            regimes[lo : lo + m], X[lo : lo + m] = self._generate(t, draws)
            timestamps[lo : lo + m] = t
        return SimulatedRows(timestamps=timestamps, regimes=regimes, X=X)

    def _generate(self, t: FloatArray, draws: _Draws) -> tuple[IndexArray, FloatArray]:
        """Regimes and values of rows at ascending times ``t`` from their random draws."""
        origin = self._pin_origin(float(t[0]) if t.size else 0.0)
        regime = self._regimes(t, draws.u, origin)
        spans = [(e, self._span(t, e, origin)) for e in self._options.events]
        spans = [(e, sl) for e, sl in spans if sl.stop > sl.start]
        z = self._latent(t, regime, draws, spans, origin)
        bounded = self._s.bounded
        X = z
        # The option bounds keep latent values far below exp()'s overflow at 709; should a
        # freak draw pass it, the value is inf (or a ratio of 0 or 1) for the pipeline to judge.
        with np.errstate(over="ignore"):
            if bounded.any():
                X[:, bounded] = 1.0 / (1.0 + np.exp(-z[:, bounded]))
            if not bounded.all():
                X[:, ~bounded] = np.exp(z[:, ~bounded])
        self._apply_value_events(X, draws, spans)
        return regime, X

    def _latent(
        self,
        t: FloatArray,
        regime: IndexArray,
        draws: _Draws,
        spans: list[tuple[Event, slice]],
        origin: float,
    ) -> FloatArray:
        """Latent values (n, d): regime centre, noise, season and the latent events."""
        s = self._s
        noise = s.sigma[regime] * (s.indep * draws.eps + s.rho * draws.load[:, None])
        for e, sl in spans:
            if e.kind == "variance":
                noise[self._rows(sl, e, regime), self._cols(e)] *= _given(e.factor)
        z = s.center[regime]
        z += noise
        if self._options.seasonality > 0 and t.size:
            wave = np.sin(2 * math.pi * (t % _DAY) / _DAY + s.season_phase)
            z += self._options.seasonality * np.outer(wave, s.season_weight)
        for e, sl in spans:
            if e.kind == "mean_shift":
                shift = _given(e.magnitude) * s.sigma  # (k, d): in each regime's own spread
                rows = self._rows(sl, e, regime)
                delta = shift[regime[rows]][:, self._cols(e)]
                if e.ramp is not None:
                    # Linear from 0 at the onset to the full magnitude ``ramp`` seconds later.
                    grown = np.clip((t[rows] - (origin + e.after)) / e.ramp, 0.0, 1.0)
                    delta *= grown[:, None] if delta.ndim == 2 else grown
                z[rows, self._cols(e)] += delta
        return z

    def _apply_value_events(
        self, X: FloatArray, draws: _Draws, spans: list[tuple[Event, slice]]
    ) -> None:
        """Events on the observed values, in place: unit changes and NaN bursts."""
        d = X.shape[1]
        for e, sl in spans:
            if e.kind == "unit_change":
                X[sl.start : sl.stop, self._cols(e)] *= _given(e.factor)
            elif e.kind == "nan_burst":
                rows = np.arange(sl.start, sl.stop)[draws.nan_u[sl] < _given(e.ratio)]
                if e.feature is not None:
                    X[rows, self._cols(e)] = np.nan
                else:
                    picked = np.minimum((draws.nan_pick[rows] * d).astype(np.intp), d - 1)
                    X[rows, picked] = np.nan

    def _span(self, t: FloatArray, e: Event, origin: float) -> slice:
        """Rows of ascending ``t`` during which event ``e`` is in force."""
        lo = int(np.searchsorted(t, origin + e.after, side="left"))
        hi = int(np.searchsorted(t, origin + event_end(e), side="left"))
        return slice(lo, max(lo, hi))

    def _cols(self, e: Event) -> int | slice:
        """The column event ``e`` touches, or all of them."""
        return slice(None) if e.feature is None else self._column[e.feature]

    @staticmethod
    def _rows(sl: slice, e: Event, regime: IndexArray) -> IndexArray:
        """Rows of span ``sl`` that event ``e`` touches (those of its cluster, if it has one)."""
        rows = np.arange(sl.start, sl.stop)
        return rows if e.cluster is None else rows[regime[sl] == e.cluster]

    def _regimes(self, t: FloatArray, u: FloatArray, origin: float) -> IndexArray:
        """Regime of each row: the quantile ``u`` of the regime shares at its time."""
        n = t.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.intp)
        events = self._options.events
        edges = [origin + e.after for e in events]
        edges += [origin + event_end(e) for e in events if e.duration is not None]
        # Segments start on a fixed grid and at event edges, never at a chunk's first row,
        # so that a row's regime does not depend on how the window is chunked.
        first, last = math.floor(float(t[0]) / _SEGMENT), math.floor(float(t[-1]) / _SEGMENT)
        grid = np.arange(first, last + 1, dtype=np.float64) * _SEGMENT
        inner = [x for x in edges if grid[0] < x <= float(t[-1])]
        starts = np.unique(np.concatenate((grid, np.asarray(inner, dtype=np.float64))))
        segment = np.searchsorted(starts, t, side="right") - 1
        cum = np.cumsum(self._shares(starts, origin), axis=1)  # (m, k)
        target = u * cum[segment, -1]
        regime = np.zeros(n, dtype=np.intp)
        # Counting the cumulative shares below the target finds the regime without an
        # (n, k) temporary; regimes of zero share are never picked.
        for r in range(cum.shape[1] - 1):
            regime += cum[segment, r] <= target
        return regime

    def _shares(self, times: FloatArray, origin: float) -> FloatArray:
        """Unnormalised regime shares at each time, shape (m, k)."""
        o, s = self._options, self._s
        r0 = o.regimes
        phase = 2 * math.pi * (times % _DAY) / _DAY
        w = np.zeros((times.shape[0], self.n_regimes))
        w[:, :r0] = np.exp(
            s.log_share[None, :]
            + 2 * o.seasonality * np.sin(phase[:, None] + s.regime_phase[None, :r0])
        )
        w /= w.sum(axis=1, keepdims=True)
        rel = times - origin
        for i, e in enumerate(o.events):
            active = (rel >= e.after) & (rel < event_end(e))
            if e.kind == "new_cluster" and active.any():
                share = (1.0 / (r0 + 1)) if e.share is None else e.share
                w[active] *= 1.0 - share
                w[active, self._new_index[i]] = share
        for e in o.events:
            if e.kind == "vanish":
                active = (rel >= e.after) & (rel < event_end(e))
                w[active, e.cluster] = 0.0
        return w


def _given(value: float | None) -> float:
    """An event option that validation guarantees is set."""
    assert value is not None
    return float(value)


def _bits(x: float) -> int:
    """The exact bits of a float as a non-negative int, for seeding."""
    return int(np.float64(x).view(np.uint64))
