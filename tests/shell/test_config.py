"""Configuration: parse reports every problem with its model and field; load layers env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.config import KRange, load, parse, parse_listen
from monitor.errors import ConfigError


def minimal(**model: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "name": "checkout",
        "features": ["a", "b"],
        "k": 3,
        "window": "10m",
        "schedule": {"interval": "1m"},
        "source": {"kind": "synthetic", "seed": 1},
    }
    m.update(model)
    return {"models": [m]}


def problems_of(raw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return info.value.problems


def test_minimal_config_gets_defaults() -> None:
    s = parse(minimal())
    m = s.models[0]
    assert m.name == "checkout"
    assert m.features == ("a", "b")
    assert m.k == 3
    assert m.window == 600.0 and m.interval == 60.0 and m.cron is None
    assert m.source_kind == "synthetic" and dict(m.source) == {"seed": 1}
    assert m.thresholds.feature_psi_warning == 0.1
    assert m.retrain == "manual"  # drift stays visible until someone approves a candidate
    assert m.thresholds.feature_psi_critical == 0.25
    assert s.daemon.listen == "127.0.0.1:9310"


def test_k_range_and_cron() -> None:
    s = parse(minimal(k={"min": 2, "max": 8, "criterion": "gap"}, schedule={"cron": "*/5 * * * *"}))
    m = s.models[0]
    assert m.k == KRange(2, 8, "gap")
    assert m.cron == "*/5 * * * *" and m.interval is None


def test_every_problem_is_reported_with_model_and_field() -> None:
    raw = minimal(
        k=1,
        window="ten minutes",
        scaling="minmax",
        features=["a", "a"],
        schedule={"interval": "1m", "cron": "* * * * *"},
        thresholds={"feature_psi_warning": 0.3, "feature_psi_critical": 0.2, "bogus": 1},
    )
    raw["models"][0]["extra_field"] = True
    problems = problems_of(raw)
    text = "\n".join(problems)
    assert "models[checkout].k: must be in [2, 128]; got 1" in text
    assert "models[checkout].window: must be a duration" in text
    assert "models[checkout].scaling: must be one of {standard, robust, none}; got 'minmax'" in text
    assert "models[checkout].features[1]: duplicate feature 'a'" in text
    assert "models[checkout].schedule: give exactly one of 'interval' or 'cron'" in text
    assert "feature_psi_critical (0.2) must not be below feature_psi_warning (0.3)" in text
    assert "models[checkout].thresholds.bogus: unknown field" in text
    assert "models[checkout].extra_field: unknown field" in text
    assert len(problems) == 8


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, "models: must be a non-empty list of models"),
        ({"models": []}, "models: must be a non-empty list of models"),
        ({"models": [{}]}, "models[0].name: required"),
        (minimal(name="../etc"), "models[0].name: must match"),
        (minimal(k={"min": 5, "max": 3}), "max (3) must be greater than min (5)"),
        ({"daemon": {"listen": "nohost"}, **minimal()}, "listen: must be HOST:PORT"),
        (minimal(slo={"run_success": 1.0}), "must be below 1"),
        ({"daemon": {"max_workers": 0}, **minimal()}, "daemon.max_workers: must be in [1, 64]"),
        (minimal(source={}), "models[checkout].source.kind: required"),
        ([1, 2], ": must be a mapping; got list"),
    ],
)
def test_single_problems(raw: Any, expected: str) -> None:
    assert any(expected in p for p in problems_of(raw)), problems_of(raw)


def test_duplicate_model_names() -> None:
    raw = minimal()
    raw["models"].append(dict(raw["models"][0]))
    assert any("duplicate model name 'checkout'" in p for p in problems_of(raw))


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9310") == ("127.0.0.1", 9310)
    assert parse_listen("[::1]:80") == ("::1", 80)


def test_load_precedence_and_relative_state_dir(tmp_path: Path) -> None:
    import yaml

    cfg = tmp_path / "conf" / "monitor.yaml"
    cfg.parent.mkdir()
    raw = minimal()
    raw["daemon"] = {"listen": "127.0.0.1:1000", "state_dir": "state", "log_level": "DEBUG"}
    cfg.write_text(yaml.safe_dump(raw))
    s = load(cfg, env={})
    assert s.daemon.listen == "127.0.0.1:1000"
    assert s.daemon.state_dir == (cfg.parent / "state").resolve()
    s = load(cfg, env={"KMEANS_MONITOR_LISTEN": "127.0.0.1:2000"})
    assert s.daemon.listen == "127.0.0.1:2000"
    s = load(
        cfg, env={"KMEANS_MONITOR_LISTEN": "127.0.0.1:2000"}, overrides={"listen": "127.0.0.1:3000"}
    )
    assert s.daemon.listen == "127.0.0.1:3000"


def test_load_reports_unreadable_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(bad)
