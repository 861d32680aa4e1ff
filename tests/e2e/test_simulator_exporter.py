"""The simulated-telemetry exporter: names, options, gauges, the server and the CLI."""

from __future__ import annotations

import math
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.cli import main
from monitor.errors import ConfigError, InvalidInputError
from monitor.simulator_exporter import (
    DEFAULT_FEATURES,
    ExporterOptions,
    SimulatorCollector,
    SimulatorServer,
    metric_names,
    parse_exporter_options,
)
from monitor.sources.synthetic import Event, Simulator, SyntheticOptions
from tests.services import require_binary

T = 1_700_000_000.0
FEATURES = ("latency_seconds", "cpu_ratio", "requests_per_second")


def families(collector: SimulatorCollector) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Name -> {sorted labels: value}, through the text exposition and back."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(collector)
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.mark.parametrize(
    ("feature", "name"),
    [
        ("latency_p50_ms", "simulated_latency_p50_ms"),
        ("cpu_ratio", "simulated_cpu_ratio"),
        ("a.b-c:d", "simulated_a_b_c_d"),
        ("9lives", "simulated_9lives"),
    ],
)
def test_metric_names_keep_the_feature_readable(feature: str, name: str) -> None:
    assert metric_names((feature,)) == {feature: name}


def test_default_options_are_the_demo_service() -> None:
    options = parse_exporter_options(None)
    assert options == ExporterOptions()
    assert options.features == DEFAULT_FEATURES
    assert options.instances == 20


def test_options_are_parsed_with_the_synthetic_source_rules() -> None:
    options = parse_exporter_options(
        {
            "features": list(FEATURES),
            "instances": 7,
            "simulator": {
                "seed": 3,
                "regimes": 2,
                "origin": T,
                "events": [{"kind": "mean_shift", "after": "1m", "magnitude": 2}],
            },
        }
    )
    assert options.features == FEATURES
    assert options.instances == 7
    assert options.simulator == SyntheticOptions(
        seed=3, regimes=2, origin=T, events=(Event("mean_shift", after=60.0, magnitude=2),)
    )


def test_every_problem_is_listed_with_its_field() -> None:
    with pytest.raises(ConfigError) as info:
        parse_exporter_options(
            {
                "features": ["a.b", "a_b"],
                "instances": 0,
                "colour": "blue",
                "simulator": {"regimes": 0},
            }
        )
    problems = info.value.problems
    assert any(p.startswith("colour: unknown field") for p in problems), problems
    assert any(p.startswith("instances: must be in [1, 10000]; got 0") for p in problems)
    assert any(p.startswith("features: two features map to the same gauge") for p in problems)
    assert any(p.startswith("simulator.regimes: must be an int in [1, 64]") for p in problems)
    assert len(problems) == 4, problems


@pytest.mark.parametrize(
    ("raw", "start"),
    [
        ({"instances": True}, "instances: must be an integer"),
        ({"features": []}, "features: must be a non-empty list"),
        ({"features": ["ok", "not ok"]}, "features: names must match"),
        (
            {"features": ["rps"], "simulator": {"events": [{"kind": "vanish"}]}},
            "simulator.events[0].cluster",
        ),
        (
            {
                "features": ["rps"],
                "simulator": {"events": [{"kind": "nan_burst", "ratio": 0.1, "feature": "x"}]},
            },
            "simulator: ",
        ),
        ([1, 2], "must be a mapping"),
    ],
)
def test_a_bad_option_names_its_field(raw: Any, start: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_exporter_options(raw)
    assert any(p.startswith(start) for p in info.value.problems), info.value.problems


def test_the_gauges_are_the_simulator_instances() -> None:
    sim = Simulator(FEATURES, SyntheticOptions(seed=5, regimes=3, origin=T))
    collector = SimulatorCollector(sim, 4)
    collector.update(T + 30)
    got = families(collector)
    expected = Simulator(FEATURES, SyntheticOptions(seed=5, regimes=3, origin=T)).instant(T + 30, 4)
    for j, feature in enumerate(FEATURES):
        series = got[f"simulated_{feature}"]
        assert sorted(series) == [((("instance_id", str(i)),)) for i in range(4)]
        # The exposition writes floats with repr, so they come back bit for bit.
        values = [series[(("instance_id", str(i)),)] for i in range(4)]
        np.testing.assert_array_equal(values, expected[:, j])
    assert got["simulated_outage"] == {(): 0.0}
    assert got["simulated_update_timestamp_seconds"] == {(): T + 30}


def test_same_seed_same_gauges_and_instances_keep_their_identity() -> None:
    a = SimulatorCollector(Simulator(FEATURES, SyntheticOptions(seed=9, origin=T)), 3)
    b = SimulatorCollector(Simulator(FEATURES, SyntheticOptions(seed=9, origin=T)), 5)
    a.update(T + 12)
    b.update(T + 12)
    fa, fb = families(a), families(b)
    for feature in FEATURES:
        name = f"simulated_{feature}"
        # The first instances do not change when more are simulated.
        assert {k: v for k, v in fb[name].items() if int(k[0][1]) < 3} == fa[name]


def test_an_outage_serves_no_feature_samples() -> None:
    events = (Event("outage", after=10, duration=5),)
    collector = SimulatorCollector(
        Simulator(FEATURES, SyntheticOptions(origin=T, events=events)), 2
    )
    collector.update(T + 12)
    got = families(collector)
    assert got == {
        "simulated_outage": {(): 1.0},
        "simulated_update_timestamp_seconds": {(): T + 12},
    }
    collector.update(T + 15)  # the outage ends at T + 15 (exclusive)
    got = families(collector)
    assert got["simulated_outage"] == {(): 0.0}
    assert len(got["simulated_cpu_ratio"]) == 2


def test_nan_values_pass_through_for_the_pipeline_to_judge() -> None:
    events = (Event("nan_burst", ratio=1.0, feature="cpu_ratio"),)
    collector = SimulatorCollector(
        Simulator(FEATURES, SyntheticOptions(origin=T, events=events)), 3
    )
    collector.update(T + 1)
    got = families(collector)
    assert all(math.isnan(v) for v in got["simulated_cpu_ratio"].values())
    assert not any(math.isnan(v) for v in got["simulated_latency_seconds"].values())


def test_nothing_is_served_before_the_first_update() -> None:
    collector = SimulatorCollector(Simulator(FEATURES), 2)
    assert families(collector) == {}


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_instances_must_be_a_positive_int(n: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        SimulatorCollector(Simulator(FEATURES), n)
    assert str(info.value) == (
        "The 'n_instances' parameter of SimulatorCollector must be an int in [1, inf). "
        f"Got {n!r} instead."
    )


@pytest.mark.parametrize("refresh", [0, -1.0, "1s"])
def test_refresh_must_be_positive(refresh: Any) -> None:
    with pytest.raises(InvalidInputError, match="The 'refresh' parameter of SimulatorServer"):
        SimulatorServer(ExporterOptions(), refresh=refresh)


def test_the_server_serves_metrics_that_promtool_accepts(tmp_path: Path) -> None:
    options = ExporterOptions(features=FEATURES, instances=3)
    clock_times = iter(float(T + i) for i in range(10_000))
    server = SimulatorServer(options, port=0, refresh=0.05, clock=lambda: next(clock_times))
    server.start()
    try:
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
    finally:
        server.stop()
    server.stop()  # idempotent
    names = {f.name for f in text_string_to_metric_families(text)}
    assert names == {"simulated_outage", "simulated_update_timestamp_seconds"} | {
        f"simulated_{f}" for f in FEATURES
    }
    promtool = require_binary("promtool")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_cli_lists_every_problem_of_its_config(tmp_path: Path) -> None:
    config = tmp_path / "sim.yml"
    config.write_text(yaml.safe_dump({"instances": -2, "simulator": {"noise": 0}}))
    result = CliRunner().invoke(main, ["simulate", "--config", str(config)])
    assert result.exit_code == 2
    assert "instances: must be in [1, 10000]; got -2" in result.output
    assert "simulator.noise: must be a float in (0, 10]" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nowhere"], "listen: must be HOST:PORT"),
        (["--config", "/nonexistent/sim.yml"], "/nonexistent/sim.yml"),
        (["--refresh", "0"], "The 'refresh' parameter of SimulatorServer"),
    ],
)
def test_the_cli_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["simulate", *args])
    assert result.exit_code == 2
    assert message in result.output
