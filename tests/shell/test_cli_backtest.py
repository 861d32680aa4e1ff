"""kmeans-monitor backtest as a user types it: text, --json, --plot and the user errors."""

from __future__ import annotations

import json
import math
import re
import signal
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from monitor import slis as S
from monitor.cli import main

FROM, TO = "2024-03-04T00:00:00Z", "2024-03-04T02:00:00Z"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "monitor.yaml"
    model = {
        "features": ["latency_p50_ms", "latency_p99_ms", "cpu_ratio", "rps"],
        "k": 3,
        "window": "15m",
        "schedule": {"interval": "15m"},
        "training": {"n_init": 1, "silhouette_sample": 300},
        "source": {
            "kind": "synthetic",
            "seed": 5,
            "regimes": 3,
            "rows_per_window": 300,
            "origin": FROM,
            "events": [{"kind": "mean_shift", "after": "1h", "cluster": 1, "magnitude": 4}],
        },
    }
    cfg.write_text(
        yaml.safe_dump(
            {
                "daemon": {"state_dir": "state"},
                "models": [{"name": "shop", **model}, {"name": "cart", **model}],
            }
        )
    )
    return cfg


def fixed_thresholds(config: Path) -> Path:
    """The config with fixed thresholds, for tests of what backtest does with its
    windows rather than what they measure: each retrain's calibration took ~3 s."""
    doc = yaml.safe_load(config.read_text())
    for model in doc["models"]:
        model["thresholds"] = {"mode": "fixed"}
    config.write_text(yaml.safe_dump(doc))
    return config


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_text_shows_each_window_against_its_thresholds_and_a_summary(config: Path) -> None:
    result = invoke(
        "backtest", "--config", str(config), "--from", FROM, "--to", TO, "--model", "shop"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model shop: 8 window(s) from 2024-03-04 00:00:00 to")
    assert lines[1].split()[:4] == ["time", "(UTC)", "rows", S.CENTROID_DRIFT_MAX]
    rows = lines[2:10]
    assert rows[0].startswith("2024-03-04 00:15:00     300  0.000/")  # no candidate yet
    shifted = rows[4]  # the window [1h, 1h15m): cluster 1 moved by 4 of its spreads
    assert shifted.startswith("2024-03-04 01:15:00") and "flag: " in shifted and "*" in shifted
    assert "PAGE" in rows[5]
    assert lines[10].startswith("summary shop: 8 windows, ") and "pages" in lines[10]
    assert not (config.parent / "state").exists()


def test_a_replay_with_a_failed_run_exits_1_after_its_output(config: Path) -> None:
    # Every run failed (a query that does not parse, in the tester's case) and the command
    # exited 0: CI could not tell it from a clean replay (prom F2). As evaluate, 1.
    raw = yaml.safe_load(fixed_thresholds(config).read_text())
    raw["models"] = [{**raw["models"][0], "validation": {"min_rows": 400}}]
    config.write_text(yaml.safe_dump(raw))
    result = invoke("backtest", "--config", str(config), "--from", FROM, "--to", TO)
    assert result.exit_code == 1, result.output
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith("summary shop: 8 windows, ") and ", 8 failed runs;" in summary


def test_windows_shorter_than_a_minute_are_told_apart_by_their_seconds(config: Path) -> None:
    raw = yaml.safe_load(fixed_thresholds(config).read_text())
    raw["models"] = [{**raw["models"][0], "window": "30s", "schedule": {"interval": "30s"}}]
    config.write_text(yaml.safe_dump(raw))
    to = "2024-03-04T00:02:00Z"
    result = invoke("backtest", "--config", str(config), "--from", FROM, "--to", to)
    assert result.exit_code == 0, result.output
    times = [" ".join(line.split()[:2]) for line in result.stdout.splitlines()[2:-1]]
    assert times == [f"2024-03-04 00:{t}" for t in ("00:30", "01:00", "01:30", "02:00")]


def test_json_has_every_window_and_both_models(config: Path) -> None:
    result = invoke(
        "backtest", "--config", str(config), "--from", FROM, "--to", "1709514000", "--json"
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["model"] for r in out] == ["shop", "cart"]
    shop = out[0]
    assert shop["start_utc"] == "2024-03-04T00:00:00Z" and shop["end_utc"] == "2024-03-04T01:00:00Z"
    assert len(shop["windows"]) == 4 and shop["summary"]["windows"] == 4
    w = shop["windows"][1]
    assert w["end_utc"] == "2024-03-04T00:30:00Z" and w["failed"] is False and w["n_rows"] == 300
    assert w["at"] == w["end"]  # the run's time, as evaluate --json names it
    assert set(w["thresholds"]) == set(S.THRESHOLDS)
    assert all(list(v["slis"]) == list(S.SCALAR) for v in shop["windows"])  # as history's
    assert S.CENTROID_DRIFT_MAX in w["slis"] and set(w[S.FEATURE_PSI]) == {
        "latency_p50_ms",
        "latency_p99_ms",
        "cpu_ratio",
        "rps",
    }
    assert {"conditions", "firing", "flag", "page"} <= set(w)


def test_a_model_named_twice_is_replayed_once(config: Path) -> None:
    args = ["--from", FROM, "--to", "1709514000", "--json", "--model", "cart"]
    result = invoke(
        "backtest",
        "--config",
        str(fixed_thresholds(config)),
        *args,
        "--model",
        "shop",
        "--model",
        "cart",
    )
    assert result.exit_code == 0, result.output
    assert [r["model"] for r in json.loads(result.stdout)] == ["cart", "shop"]


@pytest.mark.parametrize(
    ("cart", "message"),
    [
        ({"window": "1d"}, "error: backtest: no run of model 'cart' fits in "),
        (
            {"source": {"kind": "files", "path": "."}},
            "error: backtest: model 'cart' cannot be replayed: the files source picks",
        ),
    ],
)
def test_every_model_is_checked_before_any_is_replayed(
    config: Path, cart: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second model's refusal came after the first's whole replay, which was lost.
    doc = yaml.safe_load(config.read_text())
    doc["models"][1].update(cart)
    config.write_text(yaml.safe_dump(doc))
    replayed: list[str] = []
    monkeypatch.setattr("monitor.bootstrap.replay", lambda m, *a, **k: replayed.append(m.name))
    result = invoke("backtest", "--config", str(config), "--from", FROM, "--to", TO)
    assert result.exit_code == 2
    assert result.stderr.startswith(message), result.stderr
    assert replayed == [] and result.stdout == ""


def test_every_refused_model_is_named_in_the_one_line(config: Path) -> None:
    doc = yaml.safe_load(config.read_text())
    doc["models"][0].update(window="3d", schedule={"interval": "1h"}, reference={"window": "3d"})
    doc["models"][1].update(source={"kind": "files", "path": "."})
    config.write_text(yaml.safe_dump(doc))
    result = invoke("backtest", "--config", str(config), "--from", FROM, "--to", TO)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: backtest: no run of model 'shop' fits in ")
    assert "each run reads a window of 3d before it; model 'cart' cannot be replayed" in line


def test_plot_labels_each_time_tick_once_over_a_few_minutes(config: Path, tmp_path: Path) -> None:
    # "%m-%d %H:%M" labelled ticks 30 s apart alike: 00:01, 00:01, 00:02, 00:02, ...
    doc = yaml.safe_load(fixed_thresholds(config).read_text())
    doc["models"][0].update(window="30s", schedule={"interval": "30s"})
    config.write_text(yaml.safe_dump(doc))
    path = tmp_path / "shop.svg"
    args = ["--to", "2024-03-04T00:04:00Z", "--model", "shop", "--plot", str(path)]
    result = invoke("backtest", "--config", str(config), "--from", FROM, *args)
    assert result.exit_code == 0, result.output
    texts = [t.strip() for t in ET.fromstring(path.read_bytes()).itertext()]
    ticks = [t for t in texts if re.fullmatch(r"(\d\d-\d\d )?\d\d:\d\d(:\d\d)?", t)]
    assert len(ticks) >= 4 and len(set(ticks)) == len(ticks), ticks
    assert "00:01:30" in ticks


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_writes_a_picture(config: Path, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"shop{suffix}"
    result = invoke(
        "backtest",
        "--config",
        str(fixed_thresholds(config)),
        "--from",
        FROM,
        "--to",
        TO,
        "--model",
        "shop",
        "--plot",
        str(path),
    )
    assert result.exit_code == 0, result.output
    data = path.read_bytes()
    assert len(data) > 1000
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")
        text = "".join(root.itertext())
        assert "backtest of shop" in text and S.FEATURE_PSI_MAX in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", TO, "--to", FROM], "must be after --from"),
        (["--from", FROM, "--to", FROM], "must be after --from"),
        (["--from", "yesterday", "--to", TO], "--from: timestamp 'yesterday' is neither"),
        (
            ["--from", FROM, "--to", TO, "--model", "nope"],
            "no model named 'nope'; configured: shop, cart",
        ),
        (
            ["--from", FROM, "--to", TO, "--model", "shop", "--plot", "out.pdf"],
            "must end in .png or .svg",
        ),
        (["--from", FROM, "--to", TO, "--plot", "out.png"], "--plot draws one model: add --model"),
        (["--from", FROM, "--to", "2024-03-04T00:10:00Z"], "no run of model 'shop' fits"),
        (["--from", "1e20", "--to", "1e21"], "--from: timestamp '1e20' is out of range"),
        (["--from", "0001-01-01", "--to", TO], "timestamp '0001-01-01' is out of range"),
        # Milliseconds, as a JavaScript clock or a Prometheus export writes them: said so.
        (
            ["--from", "1709510400000", "--to", TO],
            "expected unix seconds or ISO-8601 (as milliseconds it is 2024-03-04T00:00:00Z).",
        ),
        (["--from", FROM, "--to", "9999-12-31"], "timestamp '9999-12-31' is out of range"),
        # The documented bound itself, which the range leaves out: the line says so.
        (
            ["--from", FROM, "--to", "9999-01-01"],
            "error: --to: timestamp '9999-01-01' is out of range: times are accepted from "
            "1970-01-01 up to, but not including, 9999-01-01 UTC.",
        ),
        # ISO-8601's basic date, read as unix seconds before 2026-12-06: 1970-08-23.
        (
            ["--from", "20240301", "--to", TO],
            "error: --from: 20240301 reads as unix seconds (1970-08-23T06:18:21Z) and as the "
            "ISO-8601 date 2024-03-01: write 2024-03-01 for the day, or 20240301.0 for unix "
            "seconds",
        ),
        # 54 years of runs every 15 minutes: refused at once, not listed nor replayed.
        (["--from", "0", "--to", TO], "holds more than 100,000 runs of model 'shop'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(config: Path, args: list[str], message: str) -> None:
    result = invoke("backtest", "--config", str(config), *args)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line
    assert line.count(message) == 1  # not once per model (helper-76)
    assert not (config.parent / "state").exists()


def test_a_missing_matplotlib_names_the_extra(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes the import fail as if the package were absent.
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.dates"):
        monkeypatch.setitem(sys.modules, name, None)
    path = tmp_path / "shop.png"
    result = invoke(
        "backtest",
        "--config",
        str(config),
        "--from",
        FROM,
        "--to",
        TO,
        "--model",
        "shop",
        "--plot",
        str(path),
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: plots need matplotlib, which is not installed: pip install 'kmeans-monitor[plot]'"
    )
    assert result.stdout == "" and not path.exists()  # refused before any replay


def test_progress_goes_to_stderr_for_long_replays(
    tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tenths alone: a first window (the reference's training) slower than the 30 s
    # rule on a loaded machine added a line of its own (that rule: the test below).
    monkeypatch.setattr("monitor.cli.PROGRESS_SECONDS", math.inf)
    raw = yaml.safe_load(fixed_thresholds(config).read_text())
    raw["models"] = raw["models"][:1]
    raw["models"][0]["window"] = "1m"
    raw["models"][0]["schedule"] = {"interval": "1m"}
    config.write_text(yaml.safe_dump(raw))
    result = invoke(
        "backtest", "--config", str(config), "--from", FROM, "--to", "2024-03-04T00:50:00Z"
    )
    assert result.exit_code == 0, result.output
    progress = [line for line in result.stderr.splitlines() if line.startswith("backtest shop:")]
    assert (
        progress[0] == "backtest shop: 5/50 windows"
        and progress[-1] == "backtest shop: 50/50 windows"
    )
    assert len(progress) == 10
    assert "backtest shop:" not in result.stdout


def test_a_long_replay_reports_every_30_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import _backtest_progress

    t = [0.0]
    report = _backtest_progress("shop", clock=lambda: t[0])
    for i in range(25):  # 25 of 100,000 runs, 10 s each: no tenth reached yet
        t[0] += 10.0
        report(i, 100_000, None)  # type: ignore[arg-type]
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"backtest shop: {i}/100000 windows" for i in (3, 6, 9, 12, 15, 18, 21, 24)]


def test_a_step_that_goes_on_is_said_again_with_its_seconds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The first model's training said nothing from its start to its end: minutes.
    from monitor.cli import _backtest_progress

    t = [0.0]
    report = _backtest_progress("shop", clock=lambda: t[0])
    t[0] = 5.0
    report.step(0, 8, "24 reference window(s) read, 9,000 rows; training the first model")
    for now in (20.0, 36.0, 50.0, 66.5):
        t[0] = now
        report.tick()
    t[0] = 70.0
    report(0, 8, None)  # type: ignore[arg-type]
    t[0] = 200.0
    report.tick()  # the run finished: no step goes on
    said = (
        "backtest shop: run 1/8: 24 reference window(s) read, 9,000 rows; training the first model"
    )
    assert capsys.readouterr().err.splitlines() == [
        f"{said} (still at it, 31 s)",
        f"{said} (still at it, 62 s)",
    ]


def test_a_long_training_is_said_while_it_goes_on(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.pipeline import train

    real = train.train_reference

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(2.0)
        return real(*args, **kwargs)

    monkeypatch.setattr("monitor.cli.PROGRESS_SECONDS", 0.4)
    monkeypatch.setattr(train, "train_reference", slow)
    args = ["--from", FROM, "--to", TO, "--model", "shop"]
    result = invoke("backtest", "--config", str(fixed_thresholds(config)), *args)
    assert result.exit_code == 0, result.output
    assert re.search(
        r"^backtest shop: run 1/8: .*; training the first model \(still at it, \d+ s\)$",
        result.stderr,
        re.MULTILINE,
    ), result.stderr


def test_a_plot_that_cannot_be_written_loses_no_result(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An immutable directory or a full disk: found only when the file is written, after
    # the replay. The results came after the plot and were lost with a bare OS message.
    from monitor import plots

    def refused(replay: Any, path: Path) -> None:
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr(plots, "plot_replay", refused)
    plot = tmp_path / "out.png"
    args = ["--from", FROM, "--to", TO, "--model", "shop", "--plot", str(plot)]
    result = invoke("backtest", "--config", str(fixed_thresholds(config)), *args)
    assert result.exit_code == 2
    assert result.stdout.splitlines()[-1].startswith("summary shop: 8 windows, ")
    assert result.stderr.splitlines()[-1] == (
        f"error: --plot {plot}: cannot write it: Operation not permitted"
    )


@pytest.mark.parametrize("as_json", [False, True])
def test_an_interrupt_prints_the_windows_replayed_so_far(
    config: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    # Ctrl-C an hour into a replay printed only "interrupted": the hour was lost.
    from monitor.interrupts import Interrupted
    from monitor.pipeline import replay as replay_module

    run, calls = replay_module._run, []

    def interrupted_at_the_eleventh(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 11:  # shop's 8 runs, then cart's third
            raise Interrupted(signal.SIGINT)
        return run(*args)

    monkeypatch.setattr(replay_module, "_run", interrupted_at_the_eleventh)
    args = ["backtest", "--config", str(fixed_thresholds(config)), "--from", FROM, "--to", TO]
    result = invoke(*args, *(["--json"] if as_json else []))
    assert result.exit_code == 130, result.output
    assert result.stderr.splitlines()[-2:] == [
        "backtest cart: interrupted after 2 of 8 windows; the windows replayed so far follow",
        "interrupted",
    ]
    if as_json:
        shop, cart = json.loads(result.stdout)
        assert len(shop["windows"]) == 8 and "interrupted" not in shop
        assert len(cart["windows"]) == 2 and cart["interrupted"] is True
    else:
        assert "model shop: 8 window(s)" in result.stdout
        assert "summary cart: 2 windows, " in result.stdout


def test_an_interrupt_before_the_first_window_still_names_the_cut_model(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The JSON was [] and the text empty: the cut model, which the docs say is marked
    # "interrupted", was missing when none of its windows had finished.
    from monitor.interrupts import Interrupted
    from monitor.pipeline import replay as replay_module

    def interrupted(*args: Any) -> Any:
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(replay_module, "_run", interrupted)
    args = ["backtest", "--config", str(config), "--from", FROM, "--to", TO, "--json"]
    result = invoke(*args)
    assert result.exit_code == 130, result.output
    assert "backtest shop: interrupted after 0 of 8 windows" in result.stderr
    [shop] = json.loads(result.stdout)
    assert shop["model"] == "shop" and shop["windows"] == [] and shop["interrupted"] is True
    assert shop["start"] == datetime.fromisoformat(FROM).timestamp()  # not the first run's


def test_a_range_past_now_is_replayed_with_one_warning(config: Path) -> None:
    # A mistyped year: the windows after now hold no rows of a real source, and each one
    # failed with no word of why. The synthetic source has rows at any time, so the replay
    # itself goes on; the warning says what the failures will be.
    raw = yaml.safe_load(config.read_text())
    source = {**raw["models"][0]["source"], "origin": "2999-01-01"}
    raw["models"] = [{**raw["models"][0], "source": source}]
    config.write_text(yaml.safe_dump(raw))
    fixed_thresholds(config)
    late = ["--from", "2999-01-01", "--to", "2999-01-01T00:30:00Z"]
    result = invoke("backtest", "--config", str(config), *late)
    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warning.startswith("warning: --to (2999-01-01T00:30:00Z) is after now (")
    assert result.stdout.startswith("model shop: 2 window(s)")
    quiet = invoke("backtest", "--config", str(config), "--from", FROM, "--to", TO)
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


def test_text_shows_the_milliseconds_of_a_range_that_has_them(config: Path) -> None:
    # h140 #6: --from 00:00:00.5 printed as 00:00:00 while the JSON said .500. Only the
    # backtest's own times grow the fraction (``_ts``, which every other command's
    # wall-clock times go through, stays to the second).
    config = fixed_thresholds(config)
    args = ["backtest", "--config", str(config), "--to", "2024-03-04T00:45:00Z", "--model", "shop"]
    result = invoke(*args, "--from", "2024-03-04T00:00:00.5Z")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "model shop: 2 window(s) from 2024-03-04 00:00:00.500 to 2024-03-04 00:30:00.500 UTC;"
    )
    assert lines[1].startswith(f"{'time (UTC)':<23}  {'rows':>6}  ")
    assert [line[:25] for line in lines[2:4]] == [
        "2024-03-04 00:15:00.500  ",
        "2024-03-04 00:30:00.500  ",
    ]
    whole = invoke(*args, "--from", FROM).stdout.splitlines()  # none: to the second, as before
    assert whole[0].startswith(
        "model shop: 3 window(s) from 2024-03-04 00:00:00 to 2024-03-04 00:45:00 UTC;"
    )
    assert whole[2].startswith("2024-03-04 00:15:00     ")


def test_a_first_run_reports_its_reference_read_and_its_training(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # h140 #2: the first run (the reference period's read, then the training) took 46 s
    # of a 91 s backtest with no line: progress came only after each run. With a zero
    # interval every step is said; the 30 s rule itself is the fake-clock test above.
    monkeypatch.setattr("monitor.cli.PROGRESS_SECONDS", 0.0)
    doc = yaml.safe_load(fixed_thresholds(config).read_text())
    doc["models"] = doc["models"][:1]
    doc["models"][0]["reference"] = {"window": "1h"}
    config.write_text(yaml.safe_dump(doc))
    result = invoke(
        "backtest", "--config", str(config), "--from", FROM, "--to", "2024-03-04T00:30:00Z"
    )
    assert result.exit_code == 0, result.output
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("backtest shop:") and "(still at it" not in line  # the test above
    ]
    assert lines[:3] == [
        "backtest shop: run 1/2: reference period: 1 of 4 windows read",
        "backtest shop: run 1/2: reference period: 2 of 4 windows read",
        "backtest shop: run 1/2: reference period: 3 of 4 windows read",
    ]
    assert re.fullmatch(
        r"backtest shop: run 1/2: 4 reference window\(s\) read, [\d,]+ rows; "
        r"training the first model",
        lines[3],
    ), lines
    assert lines[4:] == ["backtest shop: 1/2 windows", "backtest shop: 2/2 windows"]
