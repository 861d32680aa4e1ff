"""The synthetic source: the simulator behind the TelemetrySource port."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from monitor.errors import ConfigError, InvalidInputError, SourceError
from monitor.ports import TelemetrySource
from monitor.simulator import Event, Simulator, SimulatorOptions
from monitor.sources.synthetic import SyntheticSource, build, parse_options

FEATURES = ("latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps", "error_ratio")
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
BASE = SimulatorOptions(seed=3, regimes=4, rows_per_window=3000, seasonality=0.0)


def test_source_meets_the_port_and_labels_its_window() -> None:
    source = build("checkout", FEATURES, BASE)
    assert isinstance(source, SyntheticSource)
    assert isinstance(source, TelemetrySource)
    window = source.read_window(T0, T0 + 60)
    assert (window.model, window.start, window.end, window.features) == (
        "checkout",
        T0,
        T0 + 60,
        FEATURES,
    )
    assert window.X.shape == (3000, 5) and window.X.dtype == np.float64
    assert window.label == "synthetic [2023-11-14T22:13:20Z, 2023-11-14T22:14:20Z)"
    source.close()


def test_the_source_serves_the_simulator_rows() -> None:
    source = build("checkout", FEATURES, BASE)
    expected = Simulator(FEATURES, BASE).rows(T0, T0 + 60)
    np.testing.assert_array_equal(source.read_window(T0, T0 + 60).X, expected)


def test_the_options_are_the_simulator_options() -> None:
    options, problems = parse_options({"seed": 3, "rows_per_window": 3000, "seasonality": 0})
    assert problems == [] and options == BASE


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (T0, T0, "The 'end' parameter of SyntheticSource.read_window must be a float in (17"),
        (T0, float("nan"), "The 'end' parameter of SyntheticSource.read_window must be a float"),
        ("now", T0, "The 'start' parameter of SyntheticSource.read_window must be a float"),
    ],
)
def test_source_rejects_bad_bounds(start: object, end: object, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        build("checkout", FEATURES, BASE).read_window(start, end)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


def test_an_outage_names_the_model() -> None:
    options = replace(BASE, origin=T0, events=(Event("outage", after=600, duration=300),))
    with pytest.raises(SourceError) as info:
        build("checkout", FEATURES, options).read_window(T0 + 300, T0 + 600)
    assert str(info.value).startswith(
        "synthetic source of model 'checkout': simulated outage (source.events[0]) from "
    )


def test_build_rejects_an_event_on_an_unknown_feature() -> None:
    options = SimulatorOptions(events=(Event("unit_change", feature="bogus", factor=2.0),))
    with pytest.raises(ConfigError) as info:
        build("checkout", FEATURES, options)
    assert info.value.problems == [
        "source.events[0].feature: must be one of {'latency_p50_ms', 'latency_p99_ms', "
        "'cpu_ratio', 'rps', 'error_ratio'}; got 'bogus'"
    ]
