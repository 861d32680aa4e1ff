"""The simulator's options: parsed from a mapping, every problem named with its field."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from monitor import simulator
from monitor.checks import Mismatch
from monitor.simulator import (
    MAX_SHIFT,
    Event,
    Simulator,
    SimulatorOptions,
    options_problems,
    parse_options,
)

FEATURES = ("latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps", "error_ratio")
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
BASE = SimulatorOptions(seed=3, regimes=4, rows_per_window=3000, seasonality=0.0)


def rendered(raw: dict[str, Any], features: tuple[str, ...] | None = None) -> list[str]:
    """The problems of ``raw`` as the configuration shows them, under ``source``."""
    options, problems = parse_options(raw, features)
    assert (options is None) == bool(problems)
    return [p.config("source") for p in problems]


def test_parse_options_reads_the_documented_example() -> None:
    raw = {
        "seed": 7,
        "regimes": 4,
        "rows_per_window": 2000,
        "seasonality": 0.2,
        "events": [
            {"kind": "mean_shift", "after": "5m", "cluster": 1, "feature": "rps", "magnitude": 4},
            {"kind": "new_cluster", "after": "10m"},
            {"kind": "vanish", "after": "10m", "cluster": 2},
            {"kind": "variance", "after": "10m", "factor": 3},
            {"kind": "unit_change", "after": "10m", "feature": "rps", "factor": 1000},
            {"kind": "nan_burst", "after": "10m", "duration": "2m", "ratio": 0.3},
            {"kind": "outage", "after": "10m", "duration": "5m"},
        ],
    }
    options, problems = parse_options(raw, FEATURES)
    assert problems == []
    assert options is not None
    assert (options.seed, options.regimes, options.rows_per_window) == (7, 4, 2000)
    assert options.events[0] == Event("mean_shift", 300.0, None, 1, "rps", 4, None, None, None)
    assert options.events[5].duration == 120.0
    assert [e.kind for e in options.events] == list(simulator.EVENT_KINDS)


@pytest.mark.parametrize(
    "origin",
    ["2023-11-14T22:13:20Z", "2023-11-14T22:13:20", T0, str(T0)],
    ids=["iso utc", "iso naive", "number", "numeric text"],
)
def test_parse_options_reads_the_origin(origin: object) -> None:
    options, problems = parse_options({"origin": origin})
    assert problems == [] and options is not None and options.origin == T0


def test_null_options_take_their_defaults() -> None:
    options, problems = parse_options({"seed": None, "events": None})
    assert problems == [] and options == SimulatorOptions()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"regimes": 0}, "source.regimes: must be an int in [1, 64]; got 0"),
        ({"regimes": "four"}, "source.regimes: must be an int in [1, 64]; got 'four'"),
        ({"seed": -1}, "source.seed: must be an int in [0, 9223372036854775807]; got -1"),
        (
            {"colour": "red"},
            "source.colour: must be omitted (unknown field; valid: events, noise, origin, rate, "
            "regimes, rows_per_window, seasonality, seed); got 'red'",
        ),
        (
            {"rate": 5, "rows_per_window": 10},
            "source.rate: must be omitted when rows_per_window is set; got 5",
        ),
        ({"rate": 0}, "source.rate: must be a float in (0, inf); got 0"),
        (
            {"rows_per_window": 10**9},
            "source.rows_per_window: must be an int in [1, 10000000]; got 1000000000",
        ),
        ({"seasonality": 3}, "source.seasonality: must be a float in [0, 2]; got 3"),
        ({"noise": 0}, "source.noise: must be a float in (0, 10]; got 0"),
        ({"origin": "yesterday"}, "source.origin: must be unix seconds or an ISO-8601 time"),
        (
            {"origin": True},
            "source.origin: must be unix seconds or an ISO-8601 time from 1970-01-01 up to",
        ),
        (
            {"origin": -1e15},
            "source.origin: must be unix seconds or an ISO-8601 time from 1970-01-01 up to",
        ),
        ({"events": {"kind": "vanish"}}, "source.events: must be a list of events"),
        ({"events": [5]}, "source.events[0]: must be a mapping such as {kind: vanish, after: 10m}"),
        (
            {"events": [{"after": "1m"}]},
            "source.events[0].kind: must be one of {'mean_shift', 'new_cluster', 'vanish', "
            "'variance', 'unit_change', 'nan_burst', 'outage'}; it is missing or empty",
        ),
        (
            {"events": [{"kind": "foo"}]},
            "source.events[0].kind: must be one of {'mean_shift', 'new_cluster', 'vanish', "
            "'variance', 'unit_change', 'nan_burst', 'outage'}; got 'foo'",
        ),
        (
            {"events": [{"kind": "vanish"}]},
            "source.events[0].cluster: must be set for a 'vanish' event; it is missing or empty",
        ),
        (
            {"events": [{"kind": "vanish", "cluster": 1, "magnitude": 2}]},
            "source.events[0].magnitude: must be omitted for a 'vanish' event (options: after, "
            "duration, cluster); got 2",
        ),
        (
            {"events": [{"kind": "vanish", "cluster": 4}]},
            "source.events[0].cluster: must be an int in [0, 3]; got 4",
        ),
        (
            # The regime a new_cluster event adds can vanish too.
            {"events": [{"kind": "new_cluster"}, {"kind": "vanish", "cluster": 5}]},
            "source.events[1].cluster: must be an int in [0, 4]; got 5",
        ),
        (
            {"events": [{"kind": "nan_burst", "ratio": 1.5}]},
            "source.events[0].ratio: must be a float in (0, 1]; got 1.5",
        ),
        (
            {"events": [{"kind": "new_cluster", "share": 1}]},
            "source.events[0].share: must be a float in (0, 1); got 1",
        ),
        (
            {"events": [{"kind": "nan_burst", "ratio": 0.5, "feature": ""}]},
            "source.events[0].feature: must be a non-empty str; got ''",
        ),
        (
            {"events": [{"kind": "outage", "after": "5 minutes"}]},
            "source.events[0].after: must be a duration such as '90s', '5m', '2h', '1d' or a "
            "non-negative number of seconds; got '5 minutes'",
        ),
        (
            {"events": [{"kind": "outage", "duration": 0}]},
            "source.events[0].duration: must be a duration such as '90s', '5m', '2h', '1d' or "
            "a positive number of seconds; got 0",
        ),
        (
            {"events": [{"kind": "unit_change", "feature": "rps", "factor": -2}]},
            "source.events[0].factor: must be a float in (0, inf); got -2",
        ),
        (
            {"events": [{"kind": "mean_shift", "magnitude": 51}]},
            "source.events[0].magnitude: must be a float in [-50, 50]; got 51",
        ),
        (
            {"events": [{"kind": "variance", "factor": 60}]},
            "source.events[0].factor: must be a float in (0, 50]; got 60",
        ),
        (
            {"events": [{"kind": "outage", "when": "5m"}]},
            "source.events[0].when: must be omitted (unknown field; valid: after, cluster, "
            "duration, factor, feature, kind, magnitude, placement, ramp, ratio, share); "
            "got '5m'",
        ),
        (
            {
                "regimes": 2,
                "events": [
                    {"kind": "vanish", "cluster": 0, "after": "1m"},
                    {"kind": "vanish", "cluster": 1, "after": "5m", "duration": "1m"},
                ],
            },
            "source.events: must be events that leave at least one regime at every moment "
            "(all vanish at +300s); got [0, 1]",
        ),
    ],
)
def test_parse_options_names_the_field_of_each_problem(raw: dict, expected: str) -> None:
    problems = rendered(raw)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_parse_options_reports_every_problem_at_once() -> None:
    raw = {"regimes": 0, "noise": -1, "events": [{"kind": "foo"}, {"kind": "vanish"}]}
    fields = sorted(p.split(":")[0] for p in rendered(raw))
    assert fields == [
        "source.events[0].kind",
        "source.events[1].cluster",
        "source.noise",
        "source.regimes",
    ]


def test_an_event_that_cannot_be_read_stops_the_checks_that_number_events() -> None:
    # Without a kind there is no event; checking the others would number them wrongly.
    raw = {"regimes": 0, "events": [{"after": "1m"}, {"kind": "vanish", "cluster": 9}]}
    assert [p.split(":")[0] for p in rendered(raw)] == ["source.events[0].kind"]


def test_events_on_features_are_checked_against_the_features() -> None:
    raw = {"events": [{"kind": "unit_change", "feature": "bogus", "factor": 2}]}
    assert rendered(raw) == []  # without the features, any name will do
    assert rendered(raw, ("rps", "cpu_ratio")) == [
        "source.events[0].feature: must be one of {'rps', 'cpu_ratio'}; got 'bogus'"
    ]


def test_typed_options_get_the_same_checks() -> None:
    event = Event("vanish", cluster=2, after=-1, duration=0)
    options = SimulatorOptions(regimes=2, events=(event,))
    assert [p.config("source") for p in options_problems(options)] == [
        "source.events[0].after: must be a duration >= 0; got -1",
        "source.events[0].duration: must be a duration > 0; got 0",
        "source.events[0].cluster: must be an int in [0, 1]; got 2",
    ]
    bad_events = replace(options, events=[Event("outage")])  # type: ignore[arg-type]
    # A value longer than 120 characters is shown by its ends (checks.brief).
    assert options_problems(bad_events)[-1].config() == (
        "events: must be a tuple of Event; got [Event(kind='outage', after=0.0, duration=None, "
        "cluster=None, feature=None, magn...ne, placement=None)] (156 characters)"
    )


def test_the_most_extreme_options_still_give_finite_values() -> None:
    top = float(MAX_SHIFT)
    events = (Event("variance", factor=top), Event("mean_shift", magnitude=top))
    options = replace(BASE, noise=10.0, events=events, rows_per_window=5000)
    X = Simulator(FEATURES, options).rows(T0, T0 + 60)  # RuntimeWarnings are errors here
    assert np.isfinite(X).all()


def test_vanishing_regimes_one_after_another_is_fine() -> None:
    raw = {
        "regimes": 2,
        "events": [
            {"kind": "vanish", "cluster": 0, "after": "1m", "duration": "1m"},
            {"kind": "vanish", "cluster": 1, "after": "2m"},
        ],
    }
    assert rendered(raw) == []


def test_a_new_cluster_keeps_the_service_alive_when_the_old_ones_vanish() -> None:
    raw = {
        "regimes": 1,
        "events": [
            {"kind": "new_cluster", "after": "1m"},
            {"kind": "vanish", "cluster": 0, "after": "1m"},
        ],
    }
    options, problems = parse_options(raw)
    assert problems == [] and options is not None
    rows = Simulator(FEATURES, replace(options, origin=T0)).sample(T0 + 60, T0 + 120)
    assert set(rows.regimes.tolist()) == {1}


@pytest.mark.parametrize(
    ("features", "options", "message"),
    [
        (
            FEATURES,
            SimulatorOptions(regimes=0),
            "The 'regimes' parameter of Simulator must be an int in [1, 64]. Got 0 instead.",
        ),
        (
            FEATURES,
            SimulatorOptions(events=(Event("unit_change", feature="bogus", factor=2.0),)),
            "The 'events[0].feature' parameter of Simulator must be one of {'latency_p50_ms', "
            "'latency_p99_ms', 'cpu_ratio', 'rps', 'error_ratio'}. Got 'bogus' instead.",
        ),
        ((), None, "The 'features' parameter of Simulator must be a non-empty sequence"),
        (("a", "a"), None, "The 'features' parameter of Simulator must be a non-empty sequence"),
        (("a", ""), None, "The 'features' parameter of Simulator must be a non-empty sequence"),
        ("abc", None, "The 'features' parameter of Simulator must be a non-empty sequence"),
    ],
)
def test_simulator_rejects_bad_parameters(features: Any, options: Any, message: str) -> None:
    with pytest.raises(Mismatch) as info:
        Simulator(features, options)
    assert str(info.value).startswith(message)
