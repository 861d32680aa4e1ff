"""The serving sections of the configuration: the process's and each model's policy."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from monitor.config import ModelServingSettings, ServingSettings, parse
from monitor.errors import ConfigError
from monitor.sources import SOURCES
from tests.shell.test_config import minimal


def test_defaults_serve_the_live_model_only() -> None:
    s = parse(minimal(), sources=SOURCES)
    assert s.serving == ServingSettings()
    assert s.serving.enabled and s.serving.listen == "127.0.0.1:9320"
    assert not s.serving.expose_parameters  # centres reveal the data: opt in
    policy = s.models[0].serving
    assert policy == ModelServingSettings()
    assert policy.canary_share == 0.0  # a candidate takes no traffic unless asked to
    assert (policy.latency, policy.latency_objective) == (0.1, 0.95)  # p95 under 100 ms


def test_every_field_is_read() -> None:
    raw = minimal(
        serving={
            "max_rows": 500,
            "nan_policy": "null",
            "canary_share": 0.05,
            "key_header": "X-Session-Id",
            "key_field": "session",
            "latency": "20ms",
            "latency_objective": 0.99,
            "availability": 0.9995,
        }
    )
    raw["serving"] = {
        "enabled": False,
        "listen": "0.0.0.0:8080",
        "max_body_bytes": 2048,
        "refresh": "500ms",
        "expose_parameters": True,
        "max_connections": 1024,
    }
    s = parse(raw, sources=SOURCES)
    assert s.serving == ServingSettings(False, "0.0.0.0:8080", 2048, 0.5, True, 1024)
    assert s.models[0].serving == ModelServingSettings(
        500, "null", 0.05, "X-Session-Id", "session", 0.02, 0.99, 0.9995
    )


def test_an_unquoted_null_policy_is_the_null_policy() -> None:
    # The docs write `nan_policy: null`; YAML reads it as a null, which had given the
    # default, reject, without a word.
    text = "models:\n  - serving:\n      nan_policy: null\n"
    assert yaml.safe_load(text)["models"][0]["serving"] == {"nan_policy": None}
    s = parse(minimal(serving={"nan_policy": None}), sources=SOURCES)
    assert s.models[0].serving.nan_policy == "null"
    assert parse(minimal(serving={}), sources=SOURCES).models[0].serving.nan_policy == "reject"


@pytest.mark.parametrize(
    ("serving", "expected"),
    [
        ({"max_rows": 0}, "models[checkout].serving.max_rows: must be an int in [1, 10000000]"),
        ({"nan_policy": "drop"}, "serving.nan_policy: must be one of {'reject', 'null'}"),
        ({"canary_share": 1.5}, "serving.canary_share: must be a float in [0, 1]"),
        ({"key_header": "X Key"}, "serving.key_header: must be a name matching"),
        ({"key_field": "rows"}, "serving.key_field: must be a field other than rows and features"),
        ({"latency": "soon"}, "serving.latency: must be a duration"),
        ({"latency_objective": 1}, "serving.latency_objective: must be a float in [0.5, 1)"),
        ({"availability": 0.2}, "serving.availability: must be a float in [0.5, 1)"),
        ({"canary": 0.1}, "serving.canary: must be omitted (unknown field"),
    ],
)
def test_model_serving_problems(serving: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(minimal(serving=serving), sources=SOURCES)
    assert len(info.value.problems) == 1 and expected in info.value.problems[0]


@pytest.mark.parametrize(
    ("serving", "expected"),
    [
        ({"enabled": "yes"}, "serving.enabled: must be true or false; got 'yes'"),
        ({"listen": "nowhere"}, "serving.listen: must be HOST:PORT"),
        ({"max_body_bytes": 10}, "serving.max_body_bytes: must be an int in [1024, 2147483648]"),
        ({"refresh": 0}, "serving.refresh: must be a duration"),
        ({"max_connections": 0}, "serving.max_connections: must be an int in [1, 65536]"),
        ({"port": 1}, "serving.port: must be omitted (unknown field; valid: enabled, "),
    ],
)
def test_process_serving_problems(serving: dict[str, Any], expected: str) -> None:
    raw = minimal()
    raw["serving"] = serving
    with pytest.raises(ConfigError) as info:
        parse(raw, sources=SOURCES)
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(expected)
