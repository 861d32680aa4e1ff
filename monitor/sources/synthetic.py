"""Simulated service telemetry: regimes as clusters, daily seasonality, scheduled drift events.

Each regime is an operating point of a service (quiet night, busy day, degraded, ...).
Features are drawn in a latent space and mapped to service-metric-like values: positive
and right-skewed (``exp`` of the latent value) for levels such as latencies or request
rates, in ``(0, 1)`` (logistic of the latent value) for ratios such as CPU or error
ratios. Which mapping and which typical level a feature gets is guessed from its name.

Randomness is derived from ``(seed, start, end)`` of each window, never from a stateful
generator, so the same window with the same options always yields the same rows, and
a window with an event yields the same random draws as the same window without it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.durations import parse_duration
from monitor.errors import ConfigError, InvalidInputError, SourceError
from monitor.records import Window
from monitor.sources._common import (
    Problem,
    check_bounds,
    format_time,
    is_int,
    is_real,
    parse_timestamps,
    unknown_keys,
)

__all__ = [
    "EVENT_KINDS",
    "Event",
    "SimulatedRows",
    "Simulator",
    "SyntheticOptions",
    "SyntheticSource",
    "build",
    "parse_options",
]

EVENT_KINDS = (
    "mean_shift",
    "new_cluster",
    "vanish",
    "variance",
    "unit_change",
    "nan_burst",
    "outage",
)
# kind -> (required options, optional options), besides kind, after and duration.
_EVENT_OPTIONS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mean_shift": (("magnitude",), ("cluster", "feature")),
    "new_cluster": ((), ("share",)),
    "vanish": (("cluster",), ()),
    "variance": (("factor",), ("cluster", "feature")),
    "unit_change": (("feature", "factor"), ()),
    "nan_burst": (("ratio",), ("feature",)),
    "outage": ((), ()),
}

DEFAULT_ROWS_PER_WINDOW = 2000
MAX_REGIMES = 64
_DAY = 86400.0
_SEGMENT = 60.0  # regime shares are held constant over segments this long (seconds)
_CHUNK = 65536  # rows generated at a time, to bound the temporaries
_MAX_SHIFT = 50  # bound of mean_shift magnitudes and variance factors
_LEVEL_SPREAD = 1.2  # regimes' latent levels spread over [-spread, spread] per feature
_TAG_STRUCTURE, _TAG_WINDOW, _TAG_INSTANCE, _TAG_INSTANT = 1, 2, 3, 4


@dataclass(frozen=True)
class Event:
    """A scheduled change of the simulated service, ``after`` seconds past the origin."""

    kind: str
    after: float = 0.0
    duration: float | None = None  # None: the event lasts forever
    cluster: int | None = None  # regime index; new clusters follow the initial regimes
    feature: str | None = None
    magnitude: float | None = None  # mean_shift: in within-regime standard deviations
    factor: float | None = None  # variance: noise multiplier; unit_change: value multiplier
    ratio: float | None = None  # nan_burst: share of rows that get a NaN
    share: float | None = None  # new_cluster: share of rows in the new regime


@dataclass(frozen=True)
class SyntheticOptions:
    """Options of the synthetic source (see docs/sources.md)."""

    seed: int = 0
    regimes: int = 4
    rows_per_window: int | None = None  # default DEFAULT_ROWS_PER_WINDOW when rate is unset
    rate: float | None = None  # rows per second, instead of rows_per_window
    seasonality: float = 0.2
    noise: float = 1.0  # multiplier of the within-regime spread
    origin: float | None = None  # unix seconds; None: start of the first window read
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, eq=False)
class SimulatedRows:
    """Rows of a time range with their ground truth."""

    timestamps: NDArray[np.float64]  # (n,) unix seconds, ascending, in [start, end)
    regimes: NDArray[np.intp]  # (n,) regime of each row
    X: NDArray[np.float64]  # (n, d) in feature order


# --------------------------------------------------------------------------- options


def parse_options(raw: Mapping[str, Any]) -> tuple[SyntheticOptions | None, list[str]]:
    """Typed options from the ``source`` mapping, and every problem found."""
    if not isinstance(raw, Mapping):
        return None, [f"source: must be a mapping of options; got {raw!r}"]
    names = [f.name for f in fields(SyntheticOptions)]
    problems = unknown_keys({k: v for k, v in raw.items() if k != "kind"}, names, "source")
    values: dict[str, Any] = {k: raw[k] for k in names if k in raw and k != "events"}
    if "origin" in values and values["origin"] is not None:
        try:
            values["origin"] = float(parse_timestamps([values["origin"]], "source.origin")[0])
        except InvalidInputError as exc:
            problems.append(str(exc))
            del values["origin"]
    events_raw = raw.get("events", [])
    if events_raw is None:
        events_raw = []
    if not isinstance(events_raw, list):
        problems.append(f"source.events: must be a list of events; got {events_raw!r}")
        events_raw = []
    events: list[Event] = []
    broken: list[int] = []
    for i, item in enumerate(events_raw):
        event, event_problems = _parse_event(item, f"source.events[{i}]")
        problems += event_problems
        if event is None:
            broken.append(i)
        else:
            events.append(event)
    if broken:
        # The later checks count regimes and number events: without the broken events
        # they would report wrong indices, so stop at the problems found so far.
        return None, problems
    options = SyntheticOptions(**values, events=tuple(events))
    problems += [p.config("source") for p in validate_options(options)]
    return (None, problems) if problems else (options, [])


def _parse_event(item: Any, where: str) -> tuple[Event | None, list[str]]:
    if not isinstance(item, Mapping):
        return None, [
            f"{where}: must be a mapping such as {{kind: vanish, after: 10m}}; got {item!r}"
        ]
    names = [f.name for f in fields(Event)]
    problems = unknown_keys(item, names, where)
    values = {k: item[k] for k in names if k in item}
    if "kind" not in values:
        problems.append(f"{where}.kind: must be one of {_listing(EVENT_KINDS)}; got None")
    for key in ("after", "duration"):
        if values.get(key) is not None:
            try:
                values[key] = parse_duration(values[key], f"{where}.{key}", allow_zero=True)
            except InvalidInputError as exc:
                problems.append(str(exc))
                del values[key]
    if problems:
        return None, problems
    return Event(**values), []


def _listing(names: Sequence[str]) -> str:
    return "{" + ", ".join(repr(n) for n in names) + "}"


def validate_options(options: SyntheticOptions) -> list[Problem]:
    """Every problem of ``options`` that does not depend on the model's features."""
    p: list[Problem] = []
    o = options
    if not is_int(o.seed) or not 0 <= o.seed < 2**63:
        p.append(Problem("seed", "an int in [0, 2**63 - 1]", o.seed))
    regimes_ok = is_int(o.regimes) and 1 <= o.regimes <= MAX_REGIMES
    if not regimes_ok:
        p.append(Problem("regimes", f"an int in [1, {MAX_REGIMES}]", o.regimes))
    if o.rows_per_window is not None and not (is_int(o.rows_per_window) and o.rows_per_window >= 1):
        p.append(Problem("rows_per_window", "an int in [1, inf)", o.rows_per_window))
    if o.rate is not None and not (is_real(o.rate) and o.rate > 0):
        p.append(Problem("rate", "a float in (0, inf) (rows per second)", o.rate))
    if o.rate is not None and o.rows_per_window is not None:
        p.append(Problem("rate", "omitted when rows_per_window is set", o.rate))
    if not (is_real(o.seasonality) and 0 <= o.seasonality <= 2):
        p.append(Problem("seasonality", "a float in [0, 2]", o.seasonality))
    if not (is_real(o.noise) and 0 < o.noise <= 10):
        p.append(Problem("noise", "a float in (0, 10]", o.noise))
    if o.origin is not None and not is_real(o.origin):
        p.append(Problem("origin", "unix seconds or an ISO-8601 time", o.origin))
    if not isinstance(o.events, tuple) or not all(isinstance(e, Event) for e in o.events):
        p.append(Problem("events", "a tuple of Event", o.events))
        return p
    n_clusters = (o.regimes if regimes_ok else MAX_REGIMES) + sum(
        e.kind == "new_cluster" for e in o.events
    )
    for i, event in enumerate(o.events):
        p += _event_problems(event, f"events[{i}]", n_clusters)
    if regimes_ok and not p:
        p += _vanish_problems(o)
    return p


def _event_problems(e: Event, where: str, n_clusters: int) -> list[Problem]:
    if e.kind not in _EVENT_OPTIONS:
        return [Problem(f"{where}.kind", f"one of {_listing(EVENT_KINDS)}", e.kind)]
    p: list[Problem] = []
    if not (is_real(e.after) and e.after >= 0):
        p.append(Problem(f"{where}.after", "a duration >= 0", e.after))
    if e.duration is not None and not (is_real(e.duration) and e.duration > 0):
        p.append(Problem(f"{where}.duration", "a duration > 0", e.duration))
    required, optional = _EVENT_OPTIONS[e.kind]
    allowed = (*required, *optional)
    for name in ("cluster", "feature", "magnitude", "factor", "ratio", "share"):
        value = getattr(e, name)
        if value is None:
            if name in required:
                p.append(Problem(f"{where}.{name}", f"set for a {e.kind!r} event", None))
            continue
        if name not in allowed:
            listing = ", ".join(("after", "duration", *allowed))
            p.append(
                Problem(
                    f"{where}.{name}", f"omitted for a {e.kind!r} event (options: {listing})", value
                )
            )
            continue
        problem = _value_problem(e.kind, name, value, n_clusters)
        if problem:
            p.append(Problem(f"{where}.{name}", problem, value))
    return p


def _value_problem(kind: str, name: str, value: Any, n_clusters: int) -> str:
    """What option ``name`` of a ``kind`` event must be, or "" when ``value`` is fine."""
    if name == "cluster":
        ok = is_int(value) and 0 <= value < n_clusters
        return "" if ok else f"an int in [0, {n_clusters - 1}] (a regime index)"
    if name == "feature":
        return "" if isinstance(value, str) and value else "a feature name"
    # Shifts and spreads are bounded so that exp() of the latent values stays finite.
    if name == "magnitude":
        ok = is_real(value) and abs(value) <= _MAX_SHIFT
        return "" if ok else f"a float in [-{_MAX_SHIFT}, {_MAX_SHIFT}] (standard deviations)"
    if name == "factor" and kind == "variance":
        ok = is_real(value) and 0 < value <= _MAX_SHIFT
        return "" if ok else f"a float in (0, {_MAX_SHIFT}]"
    if name == "factor":
        return "" if is_real(value) and value > 0 else "a float in (0, inf)"
    if name == "ratio":
        return "" if is_real(value) and 0 < value <= 1 else "a float in (0, 1]"
    # share
    return "" if is_real(value) and 0 < value < 1 else "a float in (0, 1)"


def _vanish_problems(o: SyntheticOptions) -> list[Problem]:
    """A problem when, at some moment, every regime that exists has vanished."""
    new_index = _new_cluster_index(o)
    moments = sorted({e.after for e in o.events} | {_end(e) for e in o.events if e.duration})
    for moment in moments:
        active = [i for i, e in enumerate(o.events) if e.after <= moment < _end(e)]
        present = set(range(o.regimes)) | {i_new for i, i_new in new_index.items() if i in active}
        gone = {o.events[i].cluster for i in active if o.events[i].kind == "vanish"}
        if present <= gone:
            return [
                Problem(
                    "events",
                    f"events that leave at least one regime at every moment (all vanish "
                    f"at +{moment:g}s)",
                    sorted(gone),
                )
            ]
    return []


def _end(e: Event) -> float:
    return math.inf if e.duration is None else e.after + e.duration


def _new_cluster_index(o: SyntheticOptions) -> dict[int, int]:
    """Regime index of each new_cluster event, keyed by the event's position."""
    out: dict[int, int] = {}
    for i, e in enumerate(o.events):
        if e.kind == "new_cluster":
            out[i] = o.regimes + len(out)
    return out


def _feature_problems(options: SyntheticOptions, features: Sequence[str]) -> list[Problem]:
    return [
        Problem(
            f"events[{i}].feature", f"one of the model's features {_listing(features)}", e.feature
        )
        for i, e in enumerate(options.events)
        if e.feature is not None and e.feature not in features
    ]


# --------------------------------------------------------------------------- simulator


def _feature_profile(name: str) -> tuple[bool, float, str]:
    """(bounded in (0, 1), typical latent level, group) guessed from a feature's name."""
    n = name.lower()
    group = "latency" if n.endswith("_ms") or "latency" in n or "duration" in n else name
    if n.endswith(("ratio", "fraction", "share")) or "cpu" in n or "utili" in n:
        if "error" in n or "fail" in n or "drop" in n:
            p = 0.01
        elif "cpu" in n or "utili" in n or "mem" in n:
            p = 0.4
        else:
            p = 0.2
        return True, math.log(p / (1 - p)), group
    if "byte" in n:
        level = 5e5
    elif n.endswith("_ms") or "latency" in n or "duration" in n:
        level = 40.0 if n.endswith("_ms") or "latency" in n else 0.04
        if n.endswith("_seconds"):
            level = 0.04
        if "p99" in n or "p95" in n or "max" in n:
            level *= 4
    elif "rps" in n or "qps" in n or "request" in n or "throughput" in n or n.endswith("_rate"):
        level = 300.0
    elif "conn" in n or "thread" in n or "queue" in n or "inflight" in n:
        level = 20.0
    else:
        level = 10.0
    return False, math.log(level), group


class Simulator:
    """Telemetry of a simulated service for any list of feature names.

    Parameters
    ----------
    features : sequence of str, length d
        Names of the columns, in order; their names pick each column's kind and level.
    options : SyntheticOptions, optional
        Seed, regimes, volume, seasonality, noise, origin and events.

    Notes
    -----
    Event offsets count from ``options.origin``; when it is None, from the start of the
    first range asked for (``sample``, ``rows``) or the first instant (``instant``).
    """

    def __init__(self, features: Sequence[str], options: SyntheticOptions | None = None) -> None:
        options = SyntheticOptions() if options is None else options
        if isinstance(features, str) or not all(isinstance(f, str) and f for f in features):
            raise InvalidInputError(
                "The 'features' parameter of Simulator must be a sequence of non-empty "
                f"str. Got {features!r} instead."
            )
        features = tuple(features)
        if not features or len(set(features)) != len(features):
            raise InvalidInputError(
                "The 'features' parameter of Simulator must be a non-empty sequence of "
                f"distinct names. Got {features!r} instead."
            )
        problems = validate_options(options) + _feature_problems(options, features)
        if problems:
            raise InvalidInputError("\n".join(p.param("Simulator") for p in problems))
        self._features = features
        self._options = options
        self._origin = options.origin
        self._lock = threading.Lock()
        self._column = {f: j for j, f in enumerate(features)}
        self._new_index = _new_cluster_index(options)
        self._build_structure()

    def _build_structure(self) -> None:
        o = self._options
        d = len(self._features)
        r0 = o.regimes
        k = r0 + len(self._new_index)
        rng = np.random.default_rng(np.random.SeedSequence([_TAG_STRUCTURE, o.seed]))
        profiles = [_feature_profile(f) for f in self._features]
        self._bounded = np.array([b for b, _, _ in profiles], dtype=bool)
        base = np.array([lv for _, lv, _ in profiles], dtype=np.float64)
        # Each feature gets evenly spaced levels dealt to the regimes in a random order,
        # so that regimes are apart in every feature without any pair colliding. Features
        # of one group (the latency percentiles) share the deal, so that p99 stays above p50.
        levels = np.linspace(-_LEVEL_SPREAD, _LEVEL_SPREAD, r0) if r0 > 1 else np.zeros(1)
        offsets = np.empty((k, d))
        dealt: dict[str, NDArray[np.float64]] = {}
        for j, (_, _, group) in enumerate(profiles):
            if group not in dealt:
                dealt[group] = rng.permutation(levels)
            offsets[:r0, j] = dealt[group] + rng.uniform(-0.05, 0.05, r0)
        # New regimes appear outside the range of the existing ones.
        far = rng.uniform(1.5, 2.0, (k - r0, d)) * rng.choice([-1.0, 1.0], (k - r0, d))
        offsets[r0:] = far
        self._center = base[None, :] + offsets  # (k, d) latent medians
        self._sigma = o.noise * rng.uniform(0.08, 0.2, (k, d))  # (k, d) latent spread
        rho = rng.uniform(0.3, 0.7, d)  # correlation of each feature with the row's load
        self._rho = rho
        self._indep = np.sqrt(1.0 - rho**2)
        self._season_weight = rng.uniform(0.5, 1.0, d)
        self._season_phase = float(rng.uniform(0.0, 2 * math.pi))
        self._regime_phase = self._season_phase + 2 * math.pi * np.arange(k) / max(k, 1)
        self._log_share = np.log(1.0 + rng.uniform(0.0, 1.0, r0))

    @property
    def features(self) -> tuple[str, ...]:
        """Column names, in order."""
        return self._features

    @property
    def options(self) -> SyntheticOptions:
        """The options this simulator was built with."""
        return self._options

    @property
    def origin(self) -> float | None:
        """Unix time events count from; None until pinned by the first request."""
        return self._origin

    @property
    def n_regimes(self) -> int:
        """Initial regimes plus those that new_cluster events add."""
        return int(self._center.shape[0])

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

    def _outage(self, t: float) -> int | None:
        origin = self._pin_origin(t)
        for i, e in enumerate(self._options.events):
            if e.kind == "outage" and e.after <= t - origin < _end(e):
                return i
        return None

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
        start, end = check_bounds(start, end, "Simulator")
        n = self.n_rows(start, end) if n_rows is None else n_rows
        if not is_int(n) or n < 0:
            raise InvalidInputError(
                f"The 'n_rows' parameter of Simulator.sample must be an int in [0, inf). "
                f"Got {n_rows!r} instead."
            )
        self._pin_origin(start)
        self._raise_on_outage(end)
        return self._sample(start, end, n, _CHUNK)

    def rows(self, start: float, end: float, n_rows: int | None = None) -> NDArray[np.float64]:
        """Rows of ``[start, end)``: the ``X`` of :meth:`sample`, shape (n, d)."""
        return self.sample(start, end, n_rows).X

    def instant(self, t: float, n_instances: int) -> NDArray[np.float64]:
        """One row per instance of the service at unix time ``t``, shape (n_instances, d).

        Instance ``i`` keeps its identity: its regime follows the regime shares at ``t``
        through a fixed quantile of its own, and its noise has a persistent part, so
        that per-instance gauges move smoothly. Raises SourceError during an outage.
        """
        if not is_real(t):
            raise InvalidInputError(
                f"The 't' parameter of Simulator.instant must be a finite float. Got {t!r} instead."
            )
        if not is_int(n_instances) or n_instances < 0:
            raise InvalidInputError(
                "The 'n_instances' parameter of Simulator.instant must be an int in [0, inf). "
                f"Got {n_instances!r} instead."
            )
        t = float(t)
        self._pin_origin(t)
        self._raise_on_outage(t)
        d = len(self._features)
        seed = self._options.seed
        # Instance i's identity is the i-th draw of streams that depend on the seed only;
        # a stream's first draws do not depend on how many are taken.
        g_u, g_own = (
            np.random.default_rng(s) for s in np.random.SeedSequence([_TAG_INSTANCE, seed]).spawn(2)
        )
        u = g_u.random(n_instances)
        persistent = g_own.standard_normal((n_instances, d))
        # One stream per draw, so that the first instances do not change with n_instances.
        g_noise, g_load, g_nan, g_pick = (
            np.random.default_rng(s)
            for s in np.random.SeedSequence([_TAG_INSTANT, seed, _bits(t)]).spawn(4)
        )
        fresh = g_noise.standard_normal((n_instances, d))
        # 0.6² + 0.8² = 1: the mix keeps unit variance, 36% of it the instance's own.
        eps = 0.6 * persistent + 0.8 * fresh
        load = g_load.standard_normal(n_instances)
        nan_u = g_nan.random(n_instances)
        nan_pick = g_pick.random(n_instances)
        times = np.full(n_instances, t)
        _, X = self._generate(times, u, eps, load, nan_u, nan_pick)
        return X

    # ------------------------------------------------------------------ internals

    def _pin_origin(self, t: float) -> float:
        with self._lock:
            if self._origin is None:
                self._origin = float(t)
            return self._origin

    def _raise_on_outage(self, t: float) -> None:
        i = self._outage(t)
        if i is not None:
            event = self._options.events[i]
            origin = self._pin_origin(t)
            until = (
                "further notice" if event.duration is None else format_time(origin + _end(event))
            )
            raise SourceError(
                f"simulated outage (source.events[{i}]) from {format_time(origin + event.after)} "
                f"until {until}; the read at {format_time(t)} fails"
            )

    def _sample(self, start: float, end: float, n: int, chunk: int) -> SimulatedRows:
        d = len(self._features)
        ss = np.random.SeedSequence([_TAG_WINDOW, self._options.seed, _bits(start), _bits(end)])
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
            hi = min(n, lo + chunk)
            # Stratified times: row i falls in the i-th of n equal slots, so rows are
            # ordered and evenly spread without a sort.
            t = start + (np.arange(lo, hi) + g_time.random(hi - lo)) * width
            np.minimum(t, last, out=t)
            u = g_regime.random(hi - lo)
            eps = g_noise.standard_normal((hi - lo, d))
            load = g_load.standard_normal(hi - lo)
            nan_u = g_nan.random(hi - lo)
            nan_pick = g_pick.random(hi - lo)
            regimes[lo:hi], X[lo:hi] = self._generate(t, u, eps, load, nan_u, nan_pick)
            timestamps[lo:hi] = t
        return SimulatedRows(timestamps=timestamps, regimes=regimes, X=X)

    def _generate(
        self,
        t: NDArray[np.float64],
        u: NDArray[np.float64],
        eps: NDArray[np.float64],
        load: NDArray[np.float64],
        nan_u: NDArray[np.float64],
        nan_pick: NDArray[np.float64],
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Regimes and values of rows at ascending times ``t`` from their random draws."""
        o = self._options
        origin = self._pin_origin(float(t[0]) if t.size else 0.0)
        n, d = eps.shape
        regime = self._regimes(t, u, origin)
        sigma = self._sigma[regime]
        noise = sigma * (self._indep * eps + self._rho * load[:, None])
        spans = [(e, self._span(t, e, origin)) for e in o.events]
        for e, sl in spans:
            if e.kind == "variance" and sl.stop > sl.start:
                noise[self._rows(sl, e, regime), self._cols(e)] *= _given(e.factor)
        z = self._center[regime]
        z += noise
        if o.seasonality > 0 and n:
            wave = np.sin(2 * math.pi * (t % _DAY) / _DAY + self._season_phase)
            z += o.seasonality * np.outer(wave, self._season_weight)
        for e, sl in spans:
            if e.kind == "mean_shift" and sl.stop > sl.start:
                shift = _given(e.magnitude) * self._sigma  # (k, d): in each regime's own spread
                rows = self._rows(sl, e, regime)
                z[rows, self._cols(e)] += shift[regime[rows]][:, self._cols(e)]
        X = z
        bounded = self._bounded
        # The option bounds keep latent values far below exp()'s overflow at 709; should a
        # freak draw pass it, the value is inf (or a ratio of 0 or 1) for the pipeline to judge.
        with np.errstate(over="ignore"):
            if bounded.any():
                X[:, bounded] = 1.0 / (1.0 + np.exp(-z[:, bounded]))
            if not bounded.all():
                X[:, ~bounded] = np.exp(z[:, ~bounded])
        for e, sl in spans:
            if sl.stop <= sl.start:
                continue
            if e.kind == "unit_change":
                X[sl.start : sl.stop, self._cols(e)] *= _given(e.factor)
            elif e.kind == "nan_burst":
                rows = np.arange(sl.start, sl.stop)[nan_u[sl] < _given(e.ratio)]
                if e.feature is not None:
                    X[rows, self._cols(e)] = np.nan
                else:
                    picked = np.minimum((nan_pick[rows] * d).astype(np.intp), d - 1)
                    X[rows, picked] = np.nan
        return regime, X

    def _span(self, t: NDArray[np.float64], e: Event, origin: float) -> slice:
        """Rows of ascending ``t`` during which event ``e`` is in force."""
        lo = int(np.searchsorted(t, origin + e.after, side="left"))
        hi = int(np.searchsorted(t, origin + _end(e), side="left"))
        return slice(lo, max(lo, hi))

    def _cols(self, e: Event) -> int | slice:
        """The column event ``e`` touches, or all of them."""
        return slice(None) if e.feature is None else self._column[e.feature]

    @staticmethod
    def _rows(sl: slice, e: Event, regime: NDArray[np.intp]) -> NDArray[np.intp]:
        """Rows of span ``sl`` that event ``e`` touches (those of its cluster, if it has one)."""
        rows = np.arange(sl.start, sl.stop)
        return rows if e.cluster is None else rows[regime[sl] == e.cluster]

    def _regimes(
        self, t: NDArray[np.float64], u: NDArray[np.float64], origin: float
    ) -> NDArray[np.intp]:
        """Regime of each row: the quantile ``u`` of the regime shares at its time."""
        n = t.shape[0]
        if n == 0:
            return np.empty(0, dtype=np.intp)
        edges = [origin + e.after for e in self._options.events] + [
            origin + _end(e) for e in self._options.events if e.duration is not None
        ]
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

    def _shares(self, times: NDArray[np.float64], origin: float) -> NDArray[np.float64]:
        """Unnormalised regime shares at each time, shape (m, k)."""
        o = self._options
        r0 = o.regimes
        k = self.n_regimes
        phase = 2 * math.pi * (times % _DAY) / _DAY
        w = np.zeros((times.shape[0], k))
        w[:, :r0] = np.exp(
            self._log_share[None, :]
            + 2 * o.seasonality * np.sin(phase[:, None] + self._regime_phase[None, :r0])
        )
        w /= w.sum(axis=1, keepdims=True)
        rel = times - origin
        for i, e in enumerate(o.events):
            active = (rel >= e.after) & (rel < _end(e))
            if e.kind == "new_cluster" and active.any():
                share = (1.0 / (r0 + 1)) if e.share is None else e.share
                w[active] *= 1.0 - share
                w[active, self._new_index[i]] = share
        for e in o.events:
            if e.kind == "vanish":
                active = (rel >= e.after) & (rel < _end(e))
                w[active, e.cluster] = 0.0
        return w


def _given(value: float | None) -> float:
    """An event option that validation guarantees is set."""
    assert value is not None
    return float(value)


def _bits(x: float) -> int:
    """The exact bits of a float as a non-negative int, for seeding."""
    return int(np.float64(x).view(np.uint64))


# --------------------------------------------------------------------------- source


class SyntheticSource:
    """A TelemetrySource that serves windows of a Simulator."""

    def __init__(self, model: str, simulator: Simulator) -> None:
        self._model = model
        self._simulator = simulator

    @property
    def simulator(self) -> Simulator:
        """The simulator behind this source."""
        return self._simulator

    def read_window(self, start: float, end: float) -> Window:
        """Simulated rows of ``[start, end)``; SourceError during a scheduled outage."""
        start, end = check_bounds(start, end, "SyntheticSource")
        try:
            X = self._simulator.rows(start, end)
        except SourceError as exc:
            raise SourceError(f"synthetic source of model {self._model!r}: {exc}") from exc
        return Window(
            model=self._model,
            start=start,
            end=end,
            features=self._simulator.features,
            X=X,
            label=f"synthetic [{format_time(start)}, {format_time(end)})",
        )

    def close(self) -> None:
        """Nothing to release."""


def build(model: str, features: tuple[str, ...], options: SyntheticOptions) -> SyntheticSource:
    """A synthetic source for ``model``; ConfigError when an event names an unknown feature."""
    problems = validate_options(options) + _feature_problems(options, features)
    if problems:
        raise ConfigError([p.config("source") for p in problems])
    return SyntheticSource(model, Simulator(features, options))
