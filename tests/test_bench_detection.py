"""The detection benchmark's options: the model they configure, and bad values."""

from __future__ import annotations

import pytest

from bench.bench_detection import DAY, _parser, configuration, main, quiet
from monitor.bootstrap import load_settings


def test_the_reference_option_sets_the_models_reference_period() -> None:
    assert configuration(50, "calibrated", 0, []).models[0].reference.window == DAY
    longer = configuration(50, "calibrated", 0, [], reference="3d")
    assert longer.models[0].reference.window == 3 * DAY


def test_without_mode_the_benchmark_measures_the_daemons_default_thresholds() -> None:
    # What a model gets when its configuration says nothing about thresholds.
    model = {
        "name": "m",
        "features": ["x"],
        "k": 2,
        "window": "5m",
        "source": {"kind": "synthetic"},
        "schedule": {"interval": "5m"},
    }
    raw = {"daemon": {"state_dir": "/nonexistent"}, "models": [model]}
    daemon_default = load_settings(None, raw=raw).models[0].thresholds.mode
    assert _parser().parse_args([]).mode == daemon_default


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12h", "must be at least 1d (a daily cycle); got '12h'"),
        ("soon", "must be a duration such as '90s'"),
    ],
)
def test_a_reference_the_model_could_not_take_is_a_usage_error(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--reference", value, "--windows", "1"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_retrain_option_sets_the_models_policy() -> None:
    assert configuration(50, "calibrated", 0, []).models[0].retrain == "manual"
    scheduled = configuration(50, "calibrated", 0, [], retrain="scheduled").models[0]
    assert scheduled.retrain == "scheduled" and scheduled.training.retrain_every == 6 * 3600


def test_a_version_promoted_on_schedule_stays_as_quiet_as_the_first() -> None:
    """Trained on its run's window alone, each promoted version flagged most quiet windows
    after it: 14 of the 72 here (62 of 192), against a few per thousand for the first."""
    q, _ = quiet(50, "calibrated", 0, 72, retrain="scheduled")
    assert q["promotions"] == 3 and q["failed"] == 0
    assert q["flags"] <= 2, q
