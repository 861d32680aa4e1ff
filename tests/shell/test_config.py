"""Configuration: parse reports every problem with its model and field; load layers env."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.checks import Mismatch
from monitor.config import KRange, SourceSettings, SparkSettings, load, parse, parse_listen
from monitor.errors import ConfigError, TooFewRowsError
from monitor.runner import classify_failure
from monitor.simulator import SimulatorOptions
from monitor.sources import SOURCES


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
        parse(raw, sources=SOURCES)
    return info.value.problems


def test_minimal_config_gets_defaults() -> None:
    s = parse(minimal(), sources=SOURCES)
    m = s.models[0]
    assert m.name == "checkout"
    assert m.features == ("a", "b")
    assert m.k == 3
    assert m.window == 600.0 and m.interval == 60.0 and m.cron is None
    # The source's options come typed, parsed by their kind.
    assert m.source == SourceSettings("synthetic", SimulatorOptions(seed=1))
    assert m.thresholds.feature_psi_warning == 0.1
    assert m.retrain == "manual"  # drift stays visible until someone approves a candidate
    assert m.thresholds.feature_psi_critical == 0.25
    assert s.daemon.listen == "127.0.0.1:9310"


def test_k_range_and_cron() -> None:
    raw = minimal(k={"min": 2, "max": 8, "criterion": "gap"}, schedule={"cron": "*/5 * * * *"})
    s = parse(raw, sources=SOURCES)
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
        thresholds={
            "feature_psi_warning": 0.3,
            "feature_psi_critical": 0.2,
            "flagged_runs_to_fire": 0,
            "bogus": 1,
        },
    )
    raw["models"][0]["extra_field"] = True
    raw["models"][0]["source"]["regimes"] = 0
    problems = problems_of(raw)
    assert sorted(problems) == sorted(
        [
            "models[checkout].k: must be an int in [2, 128]; got 1",
            "models[checkout].window: must be a duration such as '90s', '5m', '2h', '1d' or "
            "a positive number of seconds; got 'ten minutes'",
            "models[checkout].scaling: must be one of {'standard', 'robust', 'none'}; got 'minmax'",
            "models[checkout].features[1]: must be unique; got 'a'",
            "models[checkout].schedule: must be a mapping with exactly one of 'interval' or "
            "'cron'; got {'interval': '1m', 'cron': '* * * * *'}",
            "models[checkout].thresholds.feature_psi_critical: must be at least "
            "feature_psi_warning (0.3); got 0.2",
            "models[checkout].thresholds.flagged_runs_to_fire: must be an int in [1, 10000]; got 0",
            "models[checkout].thresholds.bogus: must be omitted (unknown field; valid: "
            "calibration_refits, centroid_drift, centroid_drift_se, empty_clusters, "
            "false_alarm_rate, feature_psi_critical, feature_psi_warning, flagged_runs_to_fire, "
            "label_psi, mode, outlier_quantile, outlier_ratio, silhouette_drop, split_gain); "
            "got 1",
            "models[checkout].extra_field: must be omitted (unknown field; valid: engine, "
            "features, k, metric, name, reference, retrain, scaling, schedule, seasonality, "
            "serving, slo, source, spark, thresholds, timezone, training, validation, window); "
            "got True",
            # The source's own problems come in the same pass, under the model's name.
            "models[checkout].source.regimes: must be an int in [1, 64]; got 0",
        ]
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "models: must be a non-empty list of models; it is missing or empty"),
        ({}, "models: must be a non-empty list of models; it is missing or empty"),
        ({"models": []}, "models: must be a non-empty list of models; got []"),
        ({"models": {}}, "models: must be a non-empty list of models; got {}"),
        # A model that is not a mapping is one problem, not one per missing field.
        ({"models": [5]}, "models[0]: must be a mapping; got 5"),
        (
            minimal(name="../etc"),
            "models[0].name: must be a name matching [A-Za-z0-9][A-Za-z0-9_.-]{0,62}; got '../etc'",
        ),
        # A trailing newline is not part of a valid name (a '$' anchor would let it through).
        (minimal(name="shop\n"), "models[0].name: must be a name matching"),
        (minimal(k={"min": 5, "max": 3}), "models[checkout].k.max: must be greater than min (5)"),
        (minimal(k={"max": 3, "step": 1}), "models[checkout].k.step: must be omitted"),
        (
            minimal(k=50, validation={"min_rows": 10}),
            "models[checkout].k: must be at most validation.min_rows (10), as k clusters need",
        ),
        (
            {"daemon": {"listen": "nohost"}, **minimal()},
            "daemon.listen: must be HOST:PORT like 127.0.0.1:9310, :9310 (every interface) or "
            "[::1]:9310; got 'nohost'",
        ),
        (
            minimal(slo={"run_success": 1.0}),
            "models[checkout].slo.run_success: must be a float in [0.5, 1); got 1.0",
        ),
        # The value as written, not its seconds (86400.0 before).
        (
            minimal(reference={"from": "2024-04-30", "to": "2024-05-01", "window": "1d"}),
            "models[checkout].reference.window: must be omitted with from/to (one way to say "
            "the period); got '1d'",
        ),
        # Accepted before, then every run failed as an internal error: the calibration
        # takes rates below one half.
        (
            minimal(thresholds={"false_alarm_rate": 0.5}),
            "models[checkout].thresholds.false_alarm_rate: must be a float in [1e-06, 0.5); "
            "got 0.5",
        ),
        (
            {"daemon": {"max_workers": 0}, **minimal()},
            "daemon.max_workers: must be an int in [1, 64]; got 0",
        ),
        ({"daemon": 5, **minimal()}, "daemon: must be a mapping; got 5"),
        # Tracebacks (exit 70) before: int() of 5,000 digits, a NUL in a path or a host.
        ({"daemon": {"listen": "127.0.0.1:" + "9" * 5000}, **minimal()}, "daemon.listen: must be"),
        ({"daemon": {"listen": "127.0.0.1\0:9310"}, **minimal()}, "daemon.listen: must be"),
        (
            {"daemon": {"state_dir": "a\0b"}, **minimal()},
            "daemon.state_dir: must be a path (it holds a NUL byte); got 'a\\x00b'",
        ),
        (
            minimal(source={}),
            "models[checkout].source.kind: must be one of {'files', 'prometheus', 'spark', "
            "'synthetic'}; it is missing or empty",
        ),
        (
            minimal(source={"kind": "synthetic", "colour": "red"}),
            "models[checkout].source.colour: must be omitted (unknown field; valid: events,",
        ),
        (minimal(schedule={"cron": "* * *"}), "models[checkout].schedule.cron: must be a 5-field"),
        # Cronie's zone prefix: schedules are UTC (t13 F5), said, not "must be 5 fields".
        *(
            (
                minimal(schedule={"cron": cron}),
                "models[checkout].schedule.cron: must be a 5-field crontab expression read in "
                "UTC, with no CRON_TZ= or TZ= prefix (write the hours of another zone as their "
                f"UTC hours); got '{cron}'",
            )
            for cron in ("CRON_TZ=America/New_York 0 9 * * *", "TZ=UTC 0 9 * *", " tz=X 0 9 * * *")
        ),
        ([1, 2], "top level: must be a mapping of daemon, store, serving and models; got a list"),
        (
            "a string",
            "top level: must be a mapping of daemon, store, serving and models; got a str",
        ),
    ],
)
def test_single_problems(raw: Any, expected: str) -> None:
    problems = problems_of(raw)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"password": "hunter2", **minimal()}, "password"),
        ({"daemon": {"api_token": "hunter2"}, **minimal()}, "daemon.api_token"),
        ({"store": {"secret": "hunter2"}, **minimal()}, "store.secret"),
        ({"serving": {"auth": {"password": "hunter2"}}, **minimal()}, "serving.auth"),
        (minimal(training={"secret_key": "hunter2"}), "models[checkout].training.secret_key"),
        (
            minimal(source={"kind": "synthetic", "password": "hunter2"}),
            "models[checkout].source.password",
        ),
    ],
)
def test_an_unknown_field_named_like_a_secret_is_shown_masked(raw: Any, where: str) -> None:
    (problem,) = problems_of(raw)
    assert problem.startswith(f"{where}: must be omitted (unknown field; valid: ")
    assert problem.endswith("; got ***") and "hunter2" not in problem


def test_a_secret_inside_an_unknown_mapping_is_masked_and_the_rest_shown() -> None:
    (problem,) = problems_of({"serving": {"extra": {"token": "hunter2", "n": 3}}, **minimal()})
    assert problem.endswith("got {'token': ***, 'n': 3}"), problem


@pytest.mark.parametrize("listen", ["admin:hunter2@127.0.0.1:9310", "http://u:hunter2@h:1"])
def test_credentials_pasted_into_a_listen_address_are_masked(listen: str) -> None:
    (problem,) = problems_of({"daemon": {"listen": listen}, **minimal()})
    assert problem.startswith("daemon.listen: must be HOST:PORT like ")
    assert problem.endswith(f"; got '***@{listen.rpartition('@')[2]}'"), problem


def test_a_model_without_fields_gets_one_problem_per_required_field() -> None:
    assert problems_of({"models": [{}]}) == [
        "models[0].name: must be a name matching [A-Za-z0-9][A-Za-z0-9_.-]{0,62}; "
        "it is missing or empty",
        "models[0].features: must be a non-empty list of feature names; it is missing or empty",
        "models[0].k: must be an int in [2, 128]; it is missing or empty",
        "models[0].window: must be a duration such as '90s', '5m', '2h', '1d' or a positive "
        "number of seconds; it is missing or empty",
        "models[0].source.kind: must be one of {'files', 'prometheus', 'spark', 'synthetic'}; "
        "it is missing or empty",
        "models[0].schedule: must be a mapping with exactly one of 'interval' or 'cron'; got {}",
    ]


def test_source_problems_that_only_the_features_reveal() -> None:
    event = {"kind": "unit_change", "feature": "nope", "factor": 2}
    raw = minimal(source={"kind": "synthetic", "events": [event]})
    assert problems_of(raw) == [
        "models[checkout].source.events[0].feature: must be one of {'a', 'b'}; got 'nope'"
    ]
    # With invalid features, the checks that need them are skipped, not reported wrongly.
    raw["models"][0]["features"] = ["a", "a"]
    assert problems_of(raw) == ["models[checkout].features[1]: must be unique; got 'a'"]


def test_a_source_kind_comes_from_the_registry_passed_in() -> None:
    with pytest.raises(ConfigError) as info:
        parse(minimal(), sources={"files": SOURCES["files"]})
    assert info.value.problems == [
        "models[checkout].source.kind: must be one of {'files'}; got 'synthetic'"
    ]


def test_duplicate_model_names() -> None:
    raw = minimal()
    raw["models"].append(dict(raw["models"][0]))
    assert problems_of(raw) == ["models[1].name: must be unique; got 'checkout'"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9310", ("127.0.0.1", 9310)),
        (":9310", ("", 9310)),  # every interface
        ("[::1]:80", ("::1", 80)),
        ("[::]:9310", ("::", 9310)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize(
    "value", ["nohost", "::1:9310", "[::1]", "[]:9310", "[127.0.0.1]:80", "h:65536", "h:-1", "h:"]
)
def test_parse_listen_refuses(value: str) -> None:
    with pytest.raises(Mismatch) as info:
        parse_listen(value)
    assert info.value.problem.config() == (
        "listen: must be HOST:PORT like 127.0.0.1:9310, :9310 (every interface) or "
        f"[::1]:9310; got {value!r}"
    )


def test_run_timeout_and_shutdown_grace() -> None:
    raw = minimal(schedule={"interval": "5m", "run_timeout": "2m"})
    s = parse({**raw, "daemon": {"shutdown_grace": "3s"}}, sources=SOURCES)
    assert s.models[0].run_timeout == 120.0 and s.daemon.shutdown_grace == 3.0
    default = parse(minimal(), sources=SOURCES)
    assert default.models[0].run_timeout is None and default.daemon.shutdown_grace == 10.0
    assert problems_of(minimal(schedule={"interval": "5m", "run_timeout": 0})) == [
        "models[checkout].schedule.run_timeout: must be a duration such as '90s', '5m', '2h', "
        "'1d' or a positive number of seconds; got 0"
    ]


def test_cron_goes_through_the_check_passed_in() -> None:
    seen: list[str] = []

    def check(expression: str) -> str | None:
        seen.append(expression)
        return "minute '61': too big" if expression.startswith("61") else None

    raw = minimal(schedule={"cron": "61 * * * *"})
    with pytest.raises(ConfigError) as info:
        parse(raw, sources=SOURCES, check_cron=check)
    assert info.value.problems == [
        "models[checkout].schedule.cron: must be a crontab expression the scheduler accepts "
        "(minute '61': too big); got '61 * * * *'"
    ]
    assert parse(minimal(schedule={"cron": "1 * * * *"}), sources=SOURCES, check_cron=check)
    assert seen == ["61 * * * *", "1 * * * *"]
    # Without a check, only the shape is checked (the configuration knows no scheduler).
    assert parse(raw, sources=SOURCES).models[0].cron == "61 * * * *"


def test_load_precedence_and_relative_state_dir(tmp_path: Path) -> None:
    import yaml

    cfg = tmp_path / "conf" / "monitor.yaml"
    cfg.parent.mkdir()
    raw = minimal()
    raw["daemon"] = {"listen": "127.0.0.1:1000", "state_dir": "state", "log_level": "DEBUG"}
    cfg.write_text(yaml.safe_dump(raw))
    s = load(cfg, sources=SOURCES, env={})
    assert s.daemon.listen == "127.0.0.1:1000"
    assert s.daemon.state_dir == (cfg.parent / "state").resolve()
    s = load(cfg, sources=SOURCES, env={"KMEANS_MONITOR_LISTEN": "127.0.0.1:2000"})
    assert s.daemon.listen == "127.0.0.1:2000"
    s = load(
        cfg,
        sources=SOURCES,
        env={"KMEANS_MONITOR_LISTEN": "127.0.0.1:2000"},
        overrides={"listen": "127.0.0.1:3000"},
    )
    assert s.daemon.listen == "127.0.0.1:3000"
    # Any case, as --log-level takes it.
    assert load(
        cfg, sources=SOURCES, env={"KMEANS_MONITOR_LOG_LEVEL": "error"}
    ).daemon.log_level == ("ERROR")


def test_a_long_variable_that_is_no_number_is_echoed_shortened(tmp_path: Path) -> None:
    import yaml

    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(yaml.safe_dump(minimal()))
    env = {"KMEANS_MONITOR_WORKING_MEMORY_MIB": "9" * 100_000 + "x"}
    with pytest.raises(ConfigError) as info:
        load(cfg, sources=SOURCES, env=env)
    [problem] = info.value.problems
    assert problem.endswith("99x' (100001 characters)") and len(problem) < 250


def test_load_reports_the_environment_with_the_file(tmp_path: Path) -> None:
    import yaml

    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(yaml.safe_dump(minimal(k=1)))
    env = {"KMEANS_MONITOR_WORKING_MEMORY_MIB": "lots", "KMEANS_MONITOR_LOG_LEVEL": "LOUD"}
    with pytest.raises(ConfigError) as info:
        load(cfg, sources=SOURCES, env=env)
    assert info.value.problems == [
        "KMEANS_MONITOR_WORKING_MEMORY_MIB (daemon.working_memory_mib): must be a number; "
        "got 'lots'",
        "KMEANS_MONITOR_LOG_LEVEL (daemon.log_level): must be one of {'DEBUG', 'INFO', 'WARNING', "
        "'ERROR'}; got 'LOUD'",
        "models[checkout].k: must be an int in [2, 128]; got 1",
    ]


def test_an_empty_environment_variable_is_unset(tmp_path: Path) -> None:
    # `KMEANS_MONITOR_STATE_DIR=` in an env file was refused as a state directory of ''.
    import yaml

    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(yaml.safe_dump(minimal()))
    env = {f"KMEANS_MONITOR_{key}": "" for key in ("STATE_DIR", "PUSHGATEWAY", "LISTEN")}
    assert load(cfg, sources=SOURCES, env=env) == load(cfg, sources=SOURCES, env={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models: [\n", "not valid YAML"),
        # The strict loader: a key given twice is refused, not silently the last one.
        ("models: []\nmodels: []\n", "duplicate key 'models'"),
        (
            "- 1\n- 2\n",
            "top level: must be a mapping of daemon, store, serving and models; got a list",
        ),
        ("daemon: 5\nmodels: []\n", "daemon: must be a mapping; got 5"),
    ],
)
def test_load_reports_bad_files_in_one_line_each(tmp_path: Path, text: str, expected: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(bad, sources=SOURCES, env={"KMEANS_MONITOR_LISTEN": "127.0.0.1:1"})
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_an_octal_or_base_60_number_is_listed_with_the_file_s_other_problems(
    tmp_path: Path,
) -> None:
    # Helper-160: `k: 010` (YAML 1.1's 8) was reported alone, hiding every other problem
    # of a file the docs say check-config lists in one pass.
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(
        "models:\n- name: checkout\n  features: [a, b]\n  k: 010\n  window: 10m\n"
        "  schedule: {interval: 1:30}\n  retrain: daily\n  source: {kind: synthetic}\n"
    )
    with pytest.raises(ConfigError) as info:
        load(cfg, sources=SOURCES, env={"KMEANS_MONITOR_LOG_LEVEL": "LOUD"})
    assert info.value.problems == [
        f"{cfg}: not valid YAML: line 4, column 6: 010 is 8 in YAML 1.1 (octal): write 8, "
        "or quote it ('010') for the text",
        f"{cfg}: not valid YAML: line 6, column 24: 1:30 is 90 in YAML 1.1 (base 60): "
        "write 90, or quote it ('1:30') for the text",
        "KMEANS_MONITOR_LOG_LEVEL (daemon.log_level): must be one of {'DEBUG', 'INFO', 'WARNING', "
        "'ERROR'}; got 'LOUD'",
        "models[checkout].retrain: must be one of {'scheduled', 'on-drift', 'manual'}; got 'daily'",
    ]


def test_load_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml", sources=SOURCES)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"models: [caf\xe9]\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load(latin, sources=SOURCES)
    with pytest.raises(ConfigError, match="no configuration"):
        load(None, sources=SOURCES)


def test_config_never_imports_a_source() -> None:
    # The registry is a parameter: the composition root passes monitor.sources.SOURCES.
    from tests.test_architecture import MODULES

    assert not [m for m in MODULES["monitor.config"] if m.startswith("monitor.sources")]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"reference": {"window": "2h"}, "seasonality": "daily"},
            "models[checkout].reference.window: must be at least one daily cycle (1d) with "
            "seasonality: daily; got '2h'",
        ),
        (
            {"reference": {"window": "5m"}},
            "models[checkout].reference.window: must be at least the monitored window (10m); "
            "got '5m'",
        ),
        (
            {"reference": {"from": "2026-11-02", "to": "2026-11-01"}},
            "models[checkout].reference.to: must be after from (2026-11-02T00:00:00Z); "
            "got '2026-11-01T00:00:00Z'",
        ),
        (
            {"reference": {"from": "2026-11-01"}},
            "models[checkout].reference.to: must be given with the other end of the range; "
            "it is missing or empty",
        ),
        # One end with a window: the two ways to say a period, mixed.
        (
            {"reference": {"to": "2026-11-01", "window": "1d"}},
            "models[checkout].reference.to: must be omitted with window, or given with from "
            "instead of window: a period is {window: D}, ending at each run, or "
            "{from: T1, to: T2}; got '2026-11-01'",
        ),
        (
            {"reference": {"from": "yesterday", "to": "2026-11-01"}},
            "models[checkout].reference.from: must be unix seconds or an ISO-8601 time "
            "from 1970-01-01 up to, but not including, 9999-01-01 UTC; got 'yesterday'",
        ),
        (
            {"reference": {"from": 0, "to": 1e20}},
            "models[checkout].reference.to: must be unix seconds or an ISO-8601 time "
            "from 1970-01-01 up to, but not including, 9999-01-01 UTC; got 1e+20",
        ),
        (
            {"seasonality": "hourly"},
            "models[checkout].seasonality: must be one of {'auto', 'none', 'daily', 'weekly'}; "
            "got 'hourly'",
        ),
        # Eight digits that make a date read as 1970 in unix seconds; the CLI refuses them.
        (
            {"reference": {"from": 20260101, "to": "2026-02-01"}},
            "models[checkout].reference.from: must be 2026-01-01 for the day, or 20260101.0 for "
            "unix seconds (eight digits read as both); got 20260101",
        ),
        (
            {"reference": {"from": "2026-01-01", "to": "20260201"}},
            "models[checkout].reference.to: must be 2026-02-01 for the day, or 20260201.0 for "
            "unix seconds (eight digits read as both); got '20260201'",
        ),
        # An unquoted YAML date is shown as written, not as Python's datetime.date(...).
        (
            {"reference": {"from": date(1969, 12, 31), "to": "2026-02-01"}},
            "models[checkout].reference.from: must be unix seconds or an ISO-8601 time "
            "from 1970-01-01 up to, but not including, 9999-01-01 UTC; got '1969-12-31'",
        ),
        # A bad end of the range is its only problem, not also a missing one.
        (
            {"reference": {"from": 0, "to": "bad"}},
            "models[checkout].reference.to: must be unix seconds or an ISO-8601 time "
            "from 1970-01-01 up to, but not including, 9999-01-01 UTC; got 'bad'",
        ),
        (
            {"reference": {"from": "never", "to": "2026-11-01"}},
            "models[checkout].reference.from: must be unix seconds or an ISO-8601 time "
            "from 1970-01-01 up to, but not including, 9999-01-01 UTC; got 'never'",
        ),
        # An invalid reference says so, and the window is not judged against a default.
        (
            {"reference": {"window": "ten days"}, "window": "2d"},
            "models[checkout].reference.window: must be a duration such as '90s', '5m', "
            "'2h', '1d' or a positive number of seconds; got 'ten days'",
        ),
        ({"reference": 5, "window": "2d"}, "models[checkout].reference: must be a mapping; got 5"),
        # With the default period (a day), the field the user wrote is the one named.
        (
            {"window": "2d"},
            "models[checkout].window: must be at most the reference period (by default 1d: "
            "set reference.window to at least 2d); got '2d'",
        ),
        (
            {"window": 1e300},
            "models[checkout].window: must be a duration of at most 366d; got 1e+300",
        ),
        (
            {"seasonality": "weekly"},
            "models[checkout].seasonality: must be a cycle within the reference period (by "
            "default 1d: set reference.window to at least 1w); got 'weekly'",
        ),
        (
            {"reference": {"from": "2026-11-01", "to": "2026-11-01T00:05:00"}},
            "models[checkout].reference: must be at least the monitored window (10m); got "
            "'2026-11-01T00:00:00Z to 2026-11-01T00:05:00Z (5m)'",
        ),
    ],
)
def test_reference_period_and_seasonality_problems(extra: dict[str, Any], expected: str) -> None:
    raw = minimal(**extra)
    assert problems_of(raw) == [expected]


@pytest.mark.parametrize("interval", ["0.002s", 0.5, "999ms", "0.5s"])
def test_an_interval_under_a_second_is_refused(interval: Any) -> None:
    # The scheduler counts misfire grace in whole seconds: it cannot honour less.
    assert problems_of(minimal(schedule={"interval": interval})) == [
        f"models[checkout].schedule.interval: must be a duration of at least 1s; got {interval!r}"
    ]


@pytest.mark.parametrize("grace", ["0.001s", 0.5, "999ms"])
def test_a_misfire_grace_under_a_second_is_refused(grace: Any) -> None:
    # The scheduler would make it a second without a word.
    raw = minimal(schedule={"interval": "5m", "misfire_grace": grace})
    assert problems_of(raw) == [
        f"models[checkout].schedule.misfire_grace: must be a duration of at least 1s; got {grace!r}"
    ]


def test_a_run_timeout_under_a_second_is_refused() -> None:
    # Every run would fail (source_timeout) before it had read anything.
    raw = minimal(schedule={"interval": "5m", "run_timeout": "10ms"})
    assert problems_of(raw) == [
        "models[checkout].schedule.run_timeout: must be a duration of at least 1s; got '10ms'"
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"window": "100000d"}, "window: must be a duration of at most 366d; got '100000d'"),
        (
            {"window": "1h", "reference": {"window": "367d"}},
            "reference.window: must be a duration of at most 366d; got '367d'",
        ),
        (
            {"reference": {"from": "2024-01-01", "to": "2026-01-01"}},
            "reference.to: must be at most 366d after from (2024-01-01T00:00:00Z); "
            "got '2026-01-01T00:00:00Z'",
        ),
    ],
)
def test_a_window_or_reference_period_over_a_year_is_refused(
    extra: dict[str, Any], expected: str
) -> None:
    # A slip of the unit would otherwise read for minutes before the run's deadline.
    assert problems_of(minimal(**extra)) == [f"models[checkout].{expected}"]


def test_a_year_of_window_and_reference_is_accepted() -> None:
    model = parse(minimal(window="366d", reference={"window": "366d"}), sources=SOURCES).models[0]
    assert model.window == model.reference.window == 366 * 86400.0


@pytest.mark.parametrize(("interval", "seconds"), [("1s", 1.0), (1, 1.0), ("1500ms", 1.5)])
def test_an_interval_of_a_second_or_more_is_accepted(interval: Any, seconds: float) -> None:
    assert parse(minimal(schedule={"interval": interval}), sources=SOURCES).models[0].interval == (
        seconds
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("127.0.0.1:9091", "an http(s) URL such as 'http://127.0.0.1:9091'; got '127.0.0.1:9091'"),
        ("ftp://push:9091", "an http(s) URL such as 'http://127.0.0.1:9091'; got 'ftp://push:9091'"),
        ("http://", "an http(s) URL such as 'http://127.0.0.1:9091'; got 'http://'"),
        ("http://push:port", "an http(s) URL such as 'http://127.0.0.1:9091'; got 'http://push:port'"),
        ("http://u:pw@push:x", "an http(s) URL such as 'http://127.0.0.1:9091'; got 'http://***@push:x'"),
        ("http://push:9091/?a=1", "a base URL without a query or a fragment; got 'http://push:9091/?a=1'"),
        (9091, "an http(s) URL such as 'http://127.0.0.1:9091'; got 9091"),
    ],
)  # fmt: skip
def test_the_pushgateway_must_be_an_http_url(url: Any, expected: str) -> None:
    raw = {**minimal(), "daemon": {"pushgateway": url}}
    assert problems_of(raw) == [f"daemon.pushgateway: must be {expected}"]


def test_the_pushgateway_from_the_environment_is_checked_too() -> None:
    with pytest.raises(ConfigError) as info:
        load(None, raw=minimal(), sources=SOURCES, env={"KMEANS_MONITOR_PUSHGATEWAY": "push:9"})
    assert info.value.problems == [
        "KMEANS_MONITOR_PUSHGATEWAY (daemon.pushgateway): must be an http(s) URL such as "
        "'http://127.0.0.1:9091'; got 'push:9'"
    ]
    for url in ("http://127.0.0.1:9091", "https://push.example.com/prefix"):
        env = {"KMEANS_MONITOR_PUSHGATEWAY": url}
        assert load(None, raw=minimal(), sources=SOURCES, env=env).daemon.pushgateway == url


def test_a_reference_period_by_window_or_by_range() -> None:
    default = parse(minimal(), sources=SOURCES).models[0]
    # A day of reference is compared by phase of the day unless said otherwise.
    assert default.reference.window == 86400.0 and default.seasonality == "daily"
    short = parse(minimal(reference={"window": "1h"}), sources=SOURCES).models[0]
    assert short.seasonality == "none"
    plain = parse(minimal(seasonality="none"), sources=SOURCES).models[0]
    assert plain.seasonality == "none"
    assert default.reference.span(1000.0) == (1000.0 - 86400.0, 1000.0)
    weekly = parse(
        minimal(reference={"window": "7d"}, seasonality="weekly"), sources=SOURCES
    ).models[0]
    assert weekly.reference.window == 7 * 86400.0 and weekly.seasonality == "weekly"
    ranged = parse(
        minimal(reference={"from": "2026-11-01T00:00:00Z", "to": 1793577600}), sources=SOURCES
    ).models[0]
    assert ranged.reference.span(2e9) == (1793491200.0, 1793577600.0)
    assert ranged.reference.window == 86400.0
    # A run reads nothing after itself: a backtest's first run at 10:00 on the first day
    # trained on the whole day, its own future, which no daemon could have read.
    assert ranged.reference.span(1793527200.0) == (1793491200.0, 1793527200.0)
    # A run's failure of its data (too_few_rows), not a bug (internal, with a traceback).
    with pytest.raises(TooFewRowsError, match="starts at 2026-11-01T00:00:00Z, after this run"):
        ranged.reference.span(1793491200.0)
    assert classify_failure(TooFewRowsError("x")) == "too_few_rows"


def test_threshold_levels_of_one_sli_are_ordered_once() -> None:
    raw = minimal(thresholds={"feature_psi_warning": 0.3, "feature_psi_critical": 0.2})
    assert (
        problems_of(raw).count(
            "models[checkout].thresholds.feature_psi_critical: must be at least "
            "feature_psi_warning (0.3); got 0.2"
        )
        == 1
    )


def test_engine_defaults_to_local_and_spark_options_are_typed() -> None:
    assert parse(minimal(), sources=SOURCES).models[0].engine == "local"
    raw = minimal(
        engine="spark",
        spark={
            "master": "local[2]",
            "conf": {"spark.ui.enabled": False, "spark.sql.shuffle.partitions": 2},
        },
    )
    m = parse(raw, sources=SOURCES).models[0]
    assert m.engine == "spark"
    assert m.spark == SparkSettings(
        master="local[2]",
        conf=(("spark.ui.enabled", "false"), ("spark.sql.shuffle.partitions", "2")),
    )


def test_engine_and_spark_problems_name_their_field() -> None:
    found = problems_of(
        minimal(
            engine="dask",
            spark={"master": "", "conf": {"ui": 1, "spark.x": [1]}, "mastr": "y"},
        )
    )
    text = "\n".join(found)
    assert "models[checkout].engine" in text and "'local', 'spark'" in text
    assert "models[checkout].spark.master" in text
    assert "models[checkout].spark.conf.ui: must be a Spark property name" in text
    assert "models[checkout].spark.conf.spark.x: must be a string, number or boolean" in text
    assert "models[checkout].spark.mastr" in text
    assert len(found) == 5


def test_a_spark_master_spark_would_refuse_is_a_problem_before_spark_starts() -> None:
    # check-config said OK; every run then failed after a JVM's start, with a stack trace.
    good = ["local", "local[1]", "local[*]", "local[4,2]", "local[*, 3]", "yarn"]
    good += ["spark://h:7077", "spark://h1:7077,10.0.0.2:7077", "spark://[::1]:7077"]
    for master in [*good, "k8s://https://api.example:6443"]:
        raw = minimal(engine="spark", spark={"master": master})
        assert parse(raw, sources=SOURCES).models[0].spark.master == master
    bad = ["bogus://x", "local[0]", "local[2,0]", "local[x]", "localhost", "spark://h"]
    bad += ["spark://h:0", "spark://h:99999", "k8s://", "mesos://h:5050", "yarn-client"]
    for master in bad:
        [problem] = problems_of(minimal(engine="spark", spark={"master": master}))
        assert problem.startswith("models[checkout].spark.master: must be a Spark master URL: ")
        assert problem.endswith(f"; got {master!r}") and "\n" not in problem
    [problem] = problems_of(minimal(engine="spark", spark={"master": "spark://user:hunter22@h"}))
    assert "hunter22" not in problem and problem.endswith("got 'spark://***@h'")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("spark.executor.memory", "lots", "a size as Spark reads it"),
        ("spark.driver.memory", 1.5, "a size as Spark reads it"),
        ("spark.network.timeout", "soon", "a duration as Spark reads it"),
        ("spark.executor.cores", "two", "a whole number, at least 1"),
        ("spark.sql.shuffle.partitions", 0, "a whole number, at least 1"),
        ("spark.ui.port", 99999, "a port number in [0, 65535]"),
        ("spark.ui.enabled", "maybe", "true or false"),
        ("spark.memory.fraction", 1.5, "a number in [0, 1]"),
        ("spark.log.level", "LOUD", "one of Spark's log levels"),
    ],
)
def test_a_spark_property_value_spark_would_refuse_is_a_problem_before_spark_starts(
    key: str, value: object, expected: str
) -> None:
    # check-config said OK; every run then failed as the session started, after a JVM's
    # launch (spark.executor.memory: lots).
    raw = minimal(engine="spark", spark={"master": "local[2]", "conf": {key: value}})
    [problem] = problems_of(raw)
    assert problem.startswith(f"models[checkout].spark.conf.{key}: must be {expected}"), problem
    assert problem.endswith(f"; got {str(value)!r}") and "\n" not in problem


def test_spark_property_values_spark_reads_are_passed_as_text() -> None:
    conf = {
        "spark.executor.memory": "4g",
        "spark.driver.memory": " 512M ",
        "spark.network.timeout": "120s",
        "spark.executor.cores": 2,
        "spark.ui.port": 0,
        "spark.ui.enabled": False,
        "spark.memory.fraction": 0.6,
        "spark.log.level": "warn",
        "spark.some.plugin.setting": "anything",  # not known: Spark's to judge
    }
    [m] = parse(minimal(engine="spark", spark={"conf": conf}), sources=SOURCES).models
    assert dict(m.spark.conf) == {
        k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in conf.items()
    }


def test_the_spark_block_is_read_with_engine_spark_only_as_documented() -> None:
    # A model on the local engine was refused for a spark block nothing reads
    # (configuration.md: "read with engine: spark only").
    unused = {"master": "bogus://x", "conf": {"ui": 1}, "mastr": "y"}
    for engine in ({}, {"engine": "local"}, {"engine": None}):
        for spark in (unused, "local[2]"):
            [m] = parse(minimal(**engine, spark=spark), sources=SOURCES).models
            assert m.engine == "local" and m.spark == SparkSettings()
    # Another engine, or one mistyped, reads it.
    for engine in ("spark", "Spark"):
        found = problems_of(minimal(engine=engine, spark=unused))
        assert [p.split(":")[0] for p in found if ".spark." in p] == [
            "models[checkout].spark.master",
            "models[checkout].spark.conf.ui",
            "models[checkout].spark.mastr",
        ]


def test_the_master_in_spark_conf_is_refused_naming_the_field_that_sets_it() -> None:
    # conf's spark.master replaced the checked master: check-config said OK, and the run
    # failed naming the master field's 'local[2]' (or ran silently on conf's local[4]).
    for value in ("bogus://x", "local[4]", "spark://user:hunter22@h:7077"):
        raw = minimal(engine="spark", spark={"master": "local[2]", "conf": {"spark.master": value}})
        [problem] = problems_of(raw)
        assert problem.startswith(
            "models[checkout].spark.conf.spark.master: must be set at "
            "models[checkout].spark.master, not in conf (conf would replace the master "
            "checked there); got '"
        ), problem
        assert "hunter22" not in problem and "\n" not in problem


def test_models_on_spark_share_one_session_so_their_spark_settings_must_agree() -> None:
    raw = minimal(engine="spark", spark={"master": "local[2]"})
    model = raw["models"][0]
    same = {**model, "name": "search"}
    local = {**model, "name": "local", "engine": "local", "spark": {"master": "yarn"}}
    # The same settings, and a local model's unused ones, are fine.
    assert len(parse({"models": [model, same, local]}, sources=SOURCES).models) == 3
    other = {**model, "name": "search", "spark": {"master": "spark://h:7077"}}
    conf = {**model, "name": "ads", "spark": {"master": "local[2]", "conf": {"spark.x": 1}}}
    assert problems_of({"models": [model, other, conf]}) == [
        "models[search].spark: must equal models[checkout].spark (one Spark session per "
        "process: the same master and conf for every model with engine: spark); got master "
        "'spark://h:7077' and 0 properties against 'local[2]' and 0",
        "models[ads].spark: must equal models[checkout].spark (one Spark session per "
        "process: the same master and conf for every model with engine: spark); got master "
        "'local[2]' and 1 properties against 'local[2]' and 0",
    ]


def test_a_bad_spark_section_is_reported_once_and_not_compared_with_the_others() -> None:
    # check-config told model b its master must match a's 'local[*]', the default that
    # had replaced a's invalid 'local[0]': a value nobody wrote.
    raw = minimal(engine="spark", spark={"master": "local[0]"})
    model = raw["models"][0]
    other = {**model, "name": "search", "spark": {"master": "local[2]"}}
    third = {**model, "name": "ads", "spark": {"master": "local[3]"}}
    found = problems_of({"models": [model, other, third]})
    assert len(found) == 2 and found[0].startswith("models[checkout].spark.master: ")
    assert found[1].startswith("models[ads].spark: must equal models[search].spark ")
    assert found[1].endswith("got master 'local[3]' and 0 properties against 'local[2]' and 0")
    bad_conf = {**model, "spark": {"master": "local[2]", "conf": {"ui": 1}}}
    [problem] = problems_of({"models": [bad_conf, other]})
    assert problem.startswith("models[checkout].spark.conf.ui: ")


def test_every_bad_feature_name_is_a_problem_not_only_the_first() -> None:
    rule = "must be a name matching [A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}"
    assert problems_of(minimal(features=["a b", "ok", "c d", 7, "ok"])) == [
        f"models[checkout].features[0]: {rule}; got 'a b'",
        f"models[checkout].features[2]: {rule}; got 'c d'",
        f"models[checkout].features[3]: {rule}; got 7",
        "models[checkout].features[4]: must be unique; got 'ok'",
    ]


def test_yaml_dates_and_times_are_shown_as_written_in_any_field() -> None:
    # Every field showed Python's repr: "got datetime.date(2024, 1, 1)".
    raw = {
        "models": [
            {
                "name": date(2024, 1, 1),
                "features": ["a"],
                "k": 2,
                "window": "1h",
                "schedule": {"interval": datetime(2024, 1, 1, 10, 0)},
                "source": {"kind": "synthetic"},
            }
        ]
    }
    with pytest.raises(ConfigError) as caught:
        parse(raw, sources=SOURCES)
    text = str(caught.value)
    assert "got '2024-01-01'" in text and "got '2024-01-01 10:00:00'" in text
    assert "datetime" not in text


@pytest.mark.parametrize(
    ("written", "kept"),
    [(None, 90 * 86400.0), ("30d", 30 * 86400.0), ("1d", 86400.0), ("null", None)],
)
def test_store_keep_history_is_a_duration_of_a_day_or_more_or_null(
    written: str | None, kept: float | None
) -> None:
    raw = minimal()
    if written is not None:
        raw["store"] = {"keep": {"history": None if written == "null" else written}}
    assert parse(raw, sources=SOURCES).store.keep_history == kept


def test_store_keep_history_below_a_day_is_refused() -> None:
    (problem,) = problems_of({"store": {"keep": {"history": "6h"}}, **minimal()})
    assert problem == "store.keep.history: must be a duration of at least 1d; got '6h'"


def test_a_name_time_of_a_date_alone_under_a_window_shorter_than_a_day_is_refused() -> None:
    # telemetry-2026-12-01.csv under an hourly window: every file of a day had its
    # midnight, so a window read a whole day's files or none.
    files = {"kind": "files", "path": "/data", "time_from": "name", "name_time": "%Y-%m-%d"}
    assert problems_of(minimal(window="1h", source=files)) == [
        "models[checkout].source.name_time: must be a format with a time of day (%H) under "
        "the window of 1h: names of a date alone are read as its midnight UTC, so a window "
        "would get all of a day's files at midnight and no other window any; or use a window "
        "of 1d or longer; got '%Y-%m-%d'"
    ]
    assert parse(minimal(window="1d", source=files), sources=SOURCES).models[0].window == 86400
    hourly = {**files, "name_time": "%Y-%m-%d_%H"}
    assert parse(minimal(window="1h", source=hourly), sources=SOURCES).models[0].window == 3600
