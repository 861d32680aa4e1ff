"""The simulator's options and every check of them, in the dialect of monitor.checks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.checks import (
    Problem,
    check_choice,
    check_float,
    check_int,
    check_str,
    is_real,
    problem_of,
)

__all__ = [
    "DEFAULT_ROWS_PER_WINDOW",
    "EVENT_KINDS",
    "MAX_REGIMES",
    "MAX_SHIFT",
    "PLACEMENTS",
    "Event",
    "SimulatorOptions",
    "event_end",
    "new_cluster_index",
    "options_problems",
]

# kind -> (required options, optional options), besides kind, after and duration.
_EVENT_OPTIONS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mean_shift": (("magnitude",), ("cluster", "feature", "ramp")),
    "new_cluster": ((), ("share", "placement")),
    "vanish": (("cluster",), ()),
    "variance": (("factor",), ("cluster", "feature")),
    "unit_change": (("feature", "factor"), ()),
    "nan_burst": (("ratio",), ("feature",)),
    "outage": ((), ()),
}
EVENT_KINDS = tuple(_EVENT_OPTIONS)
_EVENT_VALUES = (
    "cluster",
    "feature",
    "magnitude",
    "factor",
    "ratio",
    "share",
    "ramp",
    "placement",
)
#: Where a new_cluster event puts its regime: away from every other (the default), or
#: at the centre of the initial regimes, between them.
PLACEMENTS = ("outside", "between")

DEFAULT_ROWS_PER_WINDOW = 2000
#: The most rows one window may hold (``rows_per_window``, or ``rate`` times its length):
#: far past any monitored window, short of a request for terabytes.
MAX_ROWS_PER_WINDOW = 10_000_000
MAX_REGIMES = 64
MAX_SEED = 2**63 - 1
# Shifts and spreads are bounded so that exp() of the latent values stays finite.
MAX_SHIFT = 50

# Bounds of the numeric event options (check_float's keywords).
_BOUNDS: Mapping[str, Mapping[str, Any]] = {
    "magnitude": {"low": -MAX_SHIFT, "high": MAX_SHIFT},
    "factor": {"low": 0, "low_inclusive": False},  # unit_change: any positive multiplier
    "ratio": {"low": 0, "high": 1, "low_inclusive": False},
    "share": {"low": 0, "high": 1, "low_inclusive": False, "high_inclusive": False},
}
_VARIANCE_FACTOR: Mapping[str, Any] = {"low": 0, "high": MAX_SHIFT, "low_inclusive": False}


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
    ramp: float | None = None  # mean_shift: seconds to grow linearly from 0 to magnitude
    placement: str | None = None  # new_cluster: one of PLACEMENTS (None: outside)


@dataclass(frozen=True)
class SimulatorOptions:
    """What the simulator simulates (docs/sources.md, the synthetic source)."""

    seed: int = 0
    regimes: int = 4
    rows_per_window: int | None = None  # default DEFAULT_ROWS_PER_WINDOW when rate is unset
    rate: float | None = None  # rows per second, instead of rows_per_window
    seasonality: float = 0.2
    noise: float = 1.0  # multiplier of the within-regime spread
    origin: float | None = None  # unix seconds; None: start of the first window read
    events: tuple[Event, ...] = ()


def event_end(e: Event) -> float:
    """Seconds past the origin when ``e`` stops being in force (inf: never)."""
    return math.inf if e.duration is None else e.after + e.duration


def new_cluster_index(o: SimulatorOptions) -> dict[int, int]:
    """Regime index of each new_cluster event, keyed by the event's position."""
    out: dict[int, int] = {}
    for i, e in enumerate(o.events):
        if e.kind == "new_cluster":
            out[i] = o.regimes + len(out)
    return out


def options_problems(
    options: SimulatorOptions, features: Sequence[str] | None = None
) -> list[Problem]:
    """Every problem of ``options``; with ``features``, also events on another feature."""
    o = options
    problems = _scalar_problems(o)
    if not isinstance(o.events, tuple) or not all(isinstance(e, Event) for e in o.events):
        return [*problems, Problem("events", "a tuple of Event", o.events)]
    regimes_ok = not any(p.field == "regimes" for p in problems)
    n_clusters = (o.regimes if regimes_ok else MAX_REGIMES) + sum(
        e.kind == "new_cluster" for e in o.events
    )
    for i, event in enumerate(o.events):
        problems += _event_problems(event, f"events[{i}]", n_clusters, features)
    if not problems:
        problems += _vanish_problems(o) + _placement_problems(o)
    return problems


def _placement_problems(o: SimulatorOptions) -> list[Problem]:
    """A regime placed between the initial ones needs at least two of them."""
    if o.regimes >= 2:
        return []
    return [
        Problem(f"events[{i}].placement", "'outside' when there is one regime", e.placement)
        for i, e in enumerate(o.events)
        if e.placement == "between"
    ]


def _scalar_problems(o: SimulatorOptions) -> list[Problem]:
    found = [
        problem_of(check_int, o.seed, "seed", low=0, high=MAX_SEED),
        problem_of(check_int, o.regimes, "regimes", low=1, high=MAX_REGIMES),
        _optional(check_int, o.rows_per_window, "rows_per_window", low=1, high=MAX_ROWS_PER_WINDOW),
        _optional(check_float, o.rate, "rate", low=0, low_inclusive=False),
        problem_of(check_float, o.seasonality, "seasonality", low=0, high=2),
        problem_of(check_float, o.noise, "noise", low=0, high=10, low_inclusive=False),
        _optional(check_float, o.origin, "origin"),
    ]
    if o.rate is not None and o.rows_per_window is not None:
        found.append(Problem("rate", "omitted when rows_per_window is set", o.rate))
    return [p for p in found if p is not None]


def _optional(check: Any, value: Any, name: str, **bounds: Any) -> Problem | None:
    return None if value is None else problem_of(check, value, name, **bounds)


def _event_problems(
    e: Event, where: str, n_clusters: int, features: Sequence[str] | None
) -> list[Problem]:
    kind = problem_of(check_choice, e.kind, f"{where}.kind", EVENT_KINDS)
    if kind is not None:
        return [kind]
    found: list[Problem | None] = []
    if not (is_real(e.after) and e.after >= 0):
        found.append(Problem(f"{where}.after", "a duration >= 0", e.after))
    if e.duration is not None and not (is_real(e.duration) and e.duration > 0):
        found.append(Problem(f"{where}.duration", "a duration > 0", e.duration))
    found += [_option_problem(e, name, where, n_clusters, features) for name in _EVENT_VALUES]
    return [p for p in found if p is not None]


def _option_problem(
    e: Event, name: str, where: str, n_clusters: int, features: Sequence[str] | None
) -> Problem | None:
    """The problem of one option of event ``e``, or None."""
    value = getattr(e, name)
    field = f"{where}.{name}"
    required, optional = _EVENT_OPTIONS[e.kind]
    if value is None:
        return Problem(field, f"set for a {e.kind!r} event", None) if name in required else None
    if name not in required + optional:
        listing = ", ".join(("after", "duration", *required, *optional))
        return Problem(field, f"omitted for a {e.kind!r} event (options: {listing})", value)
    if name == "cluster":
        return problem_of(check_int, value, field, low=0, high=n_clusters - 1)
    if name == "feature":
        if features is None:
            return problem_of(check_str, value, field, non_empty=True)
        return problem_of(check_choice, value, field, tuple(features))
    if name == "ramp":
        return None if is_real(value) and value > 0 else Problem(field, "a duration > 0", value)
    if name == "placement":
        return problem_of(check_choice, value, field, PLACEMENTS)
    bounds = _VARIANCE_FACTOR if (e.kind, name) == ("variance", "factor") else _BOUNDS[name]
    return problem_of(check_float, value, field, **bounds)


def _vanish_problems(o: SimulatorOptions) -> list[Problem]:
    """A problem when, at some moment, every regime that exists has vanished."""
    new_index = new_cluster_index(o)
    ends = {event_end(e) for e in o.events if e.duration is not None}
    for moment in sorted({e.after for e in o.events} | ends):
        active = [i for i, e in enumerate(o.events) if e.after <= moment < event_end(e)]
        present = set(range(o.regimes)) | {new_index[i] for i in active if i in new_index}
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
