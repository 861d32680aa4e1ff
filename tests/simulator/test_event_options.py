"""The events' newer options: a ramped mean shift, a new regime placed between the others."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from monitor.simulator import Event, Simulator, SimulatorOptions, options_problems, parse_options

FEATURES = ("latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps", "error_ratio")
T0 = 1_700_000_000.0
SEASONAL = SimulatorOptions(seed=3, regimes=4, rows_per_window=3000, seasonality=0.2, origin=T0)
FLAT = replace(SEASONAL, seasonality=0.0)
EVENTS = (
    Event("mean_shift", after=300, cluster=1, magnitude=0.75),
    Event("mean_shift", after=900, feature="rps", magnitude=-2),
    Event("new_cluster", after=600, share=0.05),
    Event("new_cluster", after=1200),
)


def _digest(options: SimulatorOptions) -> str:
    """Every row (rounded to float32), regime and timestamp of four windows.

    The rows go through numpy's log and exp, whose SIMD versions differ in the last
    bits of a float64 from one CPU to another (an AVX-512 machine gave other float64
    digests than the AVX2 one these were first taken on). Rounded to float32 the rows
    keep every bit a change to the simulator would move; a machine could flip one only
    with a value within about 1e-16 of a float32 rounding boundary.
    """
    sim = Simulator(FEATURES, options)
    h = hashlib.sha256()
    for i in range(4):
        s = sim.sample(T0 + 600 * i, T0 + 600 * (i + 1))
        h.update(s.X.astype(np.float32).tobytes())
        h.update(s.regimes.astype(np.int64).tobytes())
        h.update(s.timestamps.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    ("events", "digest"),
    [
        ((), "61d6b5d2aa3fdab0b13bae9b3779ba88b8fa4514d5a532d83f19383bbd4464f6"),
        (EVENTS, "2cbb26790c52a4e1323013b469663cef0005266cf853d0083149ed7402a0437d"),
    ],
)
def test_without_the_new_options_the_rows_are_those_of_before(
    events: tuple[Event, ...], digest: str
) -> None:
    # The digests were taken from the simulator as it was before ramp and placement
    # existed (b96ed3c~1, same machine, same numpy): every row (to float32), regime and
    # timestamp.
    assert _digest(replace(SEASONAL, events=events)) == digest


def test_placement_outside_is_the_default() -> None:
    explicit = tuple(
        replace(e, placement="outside") if e.kind == "new_cluster" else e for e in EVENTS
    )
    assert _digest(replace(SEASONAL, events=explicit)) == _digest(replace(SEASONAL, events=EVENTS))


def _latent(X: np.ndarray) -> np.ndarray:
    Z = np.log(X)
    for j, name in enumerate(FEATURES):
        if name.endswith("ratio"):
            Z[:, j] = np.log(X[:, j] / (1 - X[:, j]))
    return Z


def test_a_ramp_grows_the_shift_linearly_then_holds_it() -> None:
    span = 1200.0
    shift = Event("mean_shift", after=300, cluster=1, feature="rps", magnitude=4)
    ramped = replace(shift, ramp=600)
    plain = Simulator(FEATURES, FLAT).sample(T0, T0 + span)
    full = Simulator(FEATURES, replace(FLAT, events=(shift,))).sample(T0, T0 + span)
    grown = Simulator(FEATURES, replace(FLAT, events=(ramped,))).sample(T0, T0 + span)
    t = plain.timestamps
    np.testing.assert_array_equal(grown.regimes, plain.regimes)
    np.testing.assert_array_equal(grown.X[t < T0 + 300], plain.X[t < T0 + 300])
    # Once the ramp is over the shift is the whole magnitude, bit for bit.
    np.testing.assert_array_equal(grown.X[t >= T0 + 900], full.X[t >= T0 + 900])
    hit = (t >= T0 + 300) & (t < T0 + 900) & (plain.regimes == 1)
    whole = np.log(full.X[hit, 3] / plain.X[hit, 3])
    part = np.log(grown.X[hit, 3] / plain.X[hit, 3])
    # In latent units the ramped shift is the full one times (t - onset) / ramp; the only
    # difference is float rounding through exp and log (1e-9 relative is far above it).
    np.testing.assert_allclose(part, whole * (t[hit] - (T0 + 300)) / 600, rtol=1e-9, atol=1e-12)
    assert hit.sum() > 100


def test_a_new_regime_between_sits_at_the_centre_of_the_initial_ones() -> None:
    options = replace(FLAT, rows_per_window=20_000)
    outside = Event("new_cluster", after=0, share=0.1)
    between = replace(outside, placement="between")
    out = Simulator(FEATURES, replace(options, events=(outside,))).sample(T0, T0 + 600)
    mid = Simulator(FEATURES, replace(options, events=(between,))).sample(T0, T0 + 600)
    # Same draws: the same rows go to the same regimes, and the old regimes' rows match.
    np.testing.assert_array_equal(mid.regimes, out.regimes)
    old = mid.regimes < 4
    np.testing.assert_array_equal(mid.X[old], out.X[old])
    Z = _latent(mid.X)
    centres = np.array([np.median(Z[mid.regimes == r], axis=0) for r in range(5)])
    # The medians of ~4,500 rows sit within about 0.01 latent units of the regime centres
    # (spreads 0.08-0.2 with the shared load); 0.05 is several of those errors.
    np.testing.assert_allclose(centres[4], centres[:4].mean(axis=0), atol=0.05)
    nearest = np.min(np.linalg.norm(centres[:4] - centres[4], axis=1))
    assert nearest > 0.5  # a regime of its own, not on top of an old one
    outside_centre = np.median(_latent(out.X)[out.regimes == 4], axis=0)
    assert np.linalg.norm(outside_centre - centres[:4].mean(axis=0)) > nearest


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            {"kind": "new_cluster", "ramp": "1h"},
            "source.events[0].ramp: must be omitted for a 'new_cluster' event",
        ),
        (
            {"kind": "mean_shift", "magnitude": 1, "placement": "between"},
            "source.events[0].placement: must be omitted for a 'mean_shift' event",
        ),
        (
            {"kind": "new_cluster", "placement": "middle"},
            "source.events[0].placement: must be one of {'outside', 'between'}; got 'middle'",
        ),
        (
            {"kind": "mean_shift", "magnitude": 1, "ramp": "0s"},
            "source.events[0].ramp: must be a duration such as '90s'",
        ),
    ],
)
def test_option_problems(event: dict[str, object], message: str) -> None:
    options, problems = parse_options({"events": [event]}, FEATURES)
    assert options is None
    assert any(p.config("source").startswith(message) for p in problems), problems


def test_between_needs_two_regimes() -> None:
    one = SimulatorOptions(regimes=1, events=(Event("new_cluster", placement="between"),))
    assert [p.config() for p in options_problems(one)] == [
        "events[0].placement: must be 'outside' when there is one regime; got 'between'"
    ]


def test_ramp_parses_as_a_duration() -> None:
    options, problems = parse_options(
        {"events": [{"kind": "mean_shift", "magnitude": 2, "ramp": "6h", "cluster": 1}]}
    )
    assert problems == [] and options is not None
    assert options.events[0].ramp == 6 * 3600.0
