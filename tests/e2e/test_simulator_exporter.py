"""The simulated-telemetry exporter: names, options, gauges, the server and the CLI."""

from __future__ import annotations

import math
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.bootstrap import simulator_server
from monitor.cli import main
from monitor.errors import ConfigError, InvalidInputError
from monitor.exporter.simulated import SimulatorCollector, simulated_registry
from monitor.simulator import (
    DEFAULT_FEATURES,
    Event,
    ServiceOptions,
    Simulator,
    SimulatorOptions,
    gauge_names,
    parse_service_options,
)
from tests.services import require_binary

T = 1_700_000_000.0
FEATURES = ("latency_seconds", "cpu_ratio", "requests_per_second")


def families(collector: SimulatorCollector) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Name -> {sorted labels: value}, through the text exposition and back."""
    registry = simulated_registry(collector)
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
def test_gauge_names_keep_the_feature_readable(feature: str, name: str) -> None:
    assert gauge_names((feature,)) == {feature: name}


def test_default_options_are_the_demo_service() -> None:
    options = parse_service_options(None)
    assert options == ServiceOptions()
    assert options.features == DEFAULT_FEATURES
    assert options.instances == 20


def test_options_are_parsed_with_the_synthetic_source_rules() -> None:
    options = parse_service_options(
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
    assert options.simulator == SimulatorOptions(
        seed=3, regimes=2, origin=T, events=(Event("mean_shift", after=60.0, magnitude=2),)
    )


def test_every_problem_is_listed_with_its_field() -> None:
    with pytest.raises(ConfigError) as info:
        parse_service_options(
            {
                "features": ["a.b", "a_b"],
                "instances": 0,
                "colour": "blue",
                "simulator": {"regimes": 0},
            }
        )
    assert info.value.problems == [
        "colour: must be omitted (unknown field; valid: features, instances, simulator); "
        "got 'blue'",
        "features: must be names that stay distinct as gauges (.:- become _); got ['a.b', 'a_b']",
        "instances: must be an int in [1, 10000]; got 0",
        "simulator.regimes: must be an int in [1, 64]; got 0",
    ]


@pytest.mark.parametrize(
    ("raw", "start"),
    [
        ({"instances": True}, "instances: must be an int in [1, 10000]; got True"),
        ({"features": []}, "features: must be a non-empty list of feature names; got []"),
        (
            {"features": ["ok", "not ok"]},
            "features[1]: must be a name matching [A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}; got 'not ok'",
        ),
        (
            {"features": ["rps"], "simulator": {"events": [{"kind": "vanish"}]}},
            "simulator.events[0].cluster: must be set for a 'vanish' event; it is missing or empty",
        ),
        (
            {
                "features": ["rps"],
                "simulator": {"events": [{"kind": "nan_burst", "ratio": 0.1, "feature": "x"}]},
            },
            "simulator.events[0].feature: must be one of {'rps'}; got 'x'",
        ),
        (
            # Events on the default features are checked against them.
            {"simulator": {"events": [{"kind": "nan_burst", "ratio": 0.1, "feature": "x"}]}},
            "simulator.events[0].feature: must be one of {'latency_p50_ms', ",
        ),
        ({"simulator": 5}, "simulator: must be a mapping of the synthetic source's options; got 5"),
        ([1, 2], "top level: must be a mapping of features, instances and simulator; got a list"),
    ],
)
def test_a_bad_option_names_its_field(raw: Any, start: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_service_options(raw)
    problems = info.value.problems
    assert len(problems) == 1 and problems[0].startswith(start), problems


def test_the_gauges_are_the_simulator_instances() -> None:
    sim = Simulator(FEATURES, SimulatorOptions(seed=5, regimes=3, origin=T))
    collector = SimulatorCollector(sim, 4)
    collector.update(T + 30)
    got = families(collector)
    expected = Simulator(FEATURES, SimulatorOptions(seed=5, regimes=3, origin=T)).instant(T + 30, 4)
    for j, feature in enumerate(FEATURES):
        series = got[f"simulated_{feature}"]
        assert sorted(series) == [((("instance_id", str(i)),)) for i in range(4)]
        # The exposition writes floats with repr, so they come back bit for bit.
        values = [series[(("instance_id", str(i)),)] for i in range(4)]
        np.testing.assert_array_equal(values, expected[:, j])
    assert got["simulated_outage"] == {(): 0.0}
    assert got["simulated_update_timestamp_seconds"] == {(): T + 30}


def test_same_seed_same_gauges_and_instances_keep_their_identity() -> None:
    a = SimulatorCollector(Simulator(FEATURES, SimulatorOptions(seed=9, origin=T)), 3)
    b = SimulatorCollector(Simulator(FEATURES, SimulatorOptions(seed=9, origin=T)), 5)
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
        Simulator(FEATURES, SimulatorOptions(origin=T, events=events)), 2
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
        Simulator(FEATURES, SimulatorOptions(origin=T, events=events)), 3
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


@pytest.mark.parametrize("refresh", [0, -1.0, "1s", 1e10])
def test_refresh_must_be_positive_and_at_most_a_century(refresh: Any) -> None:
    # 1e10 s would overflow the refresh thread's clock: refused up front, not a dead thread.
    with pytest.raises(InvalidInputError) as info:
        simulator_server(ServiceOptions(), "127.0.0.1", 0, refresh=refresh)
    assert str(info.value) == (
        "The 'refresh' parameter of simulator_server must be a float in (0, 3144960000.0]. "
        f"Got {refresh!r} instead."
    )


def test_an_address_in_use_is_one_clear_error() -> None:
    first = simulator_server(ServiceOptions(instances=1), "127.0.0.1", 0)
    first.start()
    try:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(InvalidInputError, match=f"cannot listen on 127.0.0.1:{port}: "):
            simulator_server(ServiceOptions(), "127.0.0.1", port)
    finally:
        first.stop()


@pytest.mark.parametrize("host", ["::1", "::"])
def test_an_ipv6_address_is_in_brackets_in_the_url(host: str) -> None:
    """`simulate --listen '[::1]:0'` printed http://::1:PORT/metrics, which no client reads."""
    server = simulator_server(ServiceOptions(instances=1), host, 0)
    server.start()
    try:
        port = server.url.rsplit(":", 1)[1]
        assert server.url == f"http://[{host}]:{port}"
        with urllib.request.urlopen(f"http://[::1]:{port}/metrics", timeout=10) as resp:
            assert resp.status == 200
    finally:
        server.stop()


def test_the_server_refreshes_and_serves_metrics_that_promtool_accepts(tmp_path: Path) -> None:
    options = ServiceOptions(features=FEATURES, instances=3)
    clock_times = iter(float(T + i) for i in range(10_000))
    server = simulator_server(
        options, "127.0.0.1", 0, refresh=0.05, clock=lambda: next(clock_times)
    )
    server.start()
    try:
        stamps = set()
        # The gauges move on without a scrape asking: a background thread refreshes them.
        for _ in range(200):
            with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
                text = resp.read().decode()
            stamps |= {
                s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == "simulated_update_timestamp_seconds"
            }
            if len(stamps) > 1:
                break
            time.sleep(0.05)
    finally:
        server.stop()
    server.stop()  # idempotent
    assert min(stamps) == T and len(stamps) > 1
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
    assert "instances: must be an int in [1, 10000]; got -2" in result.output
    assert "simulator.noise: must be a float in (0, 10]" in result.output


def test_the_cli_reads_its_config_strictly(tmp_path: Path) -> None:
    config = tmp_path / "sim.yml"
    config.write_text("instances: 3\ninstances: 4\n")
    result = CliRunner().invoke(main, ["simulate", "--config", str(config)])
    assert result.exit_code == 2
    assert f"{config}: not valid YAML: line 2, column 1: duplicate key 'instances'" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nowhere"], "error: --listen: must be HOST:PORT like 127.0.0.1:9310"),
        (["--config", "/nonexistent/sim.yml"], "/nonexistent/sim.yml: cannot read"),
        (["--refresh", "0"], "error: --refresh: must be a float in (0, 3144960000.0]; got 0.0"),
    ],
)
def test_the_cli_refuses_bad_arguments(args: list[str], message: str) -> None:
    """Each error names the option as it was typed (it said 'listen:' and 'refresh:')."""
    result = CliRunner().invoke(main, ["simulate", *args])
    assert result.exit_code == 2
    assert message in result.output
