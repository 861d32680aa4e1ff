"""``kmeans-monitor choose-k``: what it says about sampling, --json, --plot, the progress bar."""

from __future__ import annotations

import functools
import io
import json
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from monitor import cli
from monitor.cli import _ProgressBar, _ReadProgress, main
from monitor.sources import files
from tests.fakes import blobs

SVG = "{http://www.w3.org/2000/svg}"
CENTERS = np.array([[0.0, 0.0, 0.0], [12.0, 0.0, 3.0], [0.0, 12.0, -3.0]])


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """600 rows around three well separated centres; two rows hold NaN."""
    X = blobs(600, CENTERS, seed=4)
    X[[5, 17], 1] = np.nan
    path = tmp_path / "blobs.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="")
    return path


def test_the_output_says_when_it_sampled(data: Path) -> None:
    whole = invoke("choose-k", str(data), "--k-max", "5", "--refs", "3")
    assert whole.exit_code == 0, whole.output
    assert whole.stdout.splitlines()[0] == (
        f"{data}: 600 rows, 2 with NaN or infinity left out x 3 features (a, b, c)"
    )
    assert whole.stdout.splitlines()[-1] == "elbow: k=3  silhouette: k=3  gap: k=3"
    sampled = invoke("choose-k", str(data), "--k-max", "5", "--refs", "3", "--sample", "300")
    assert sampled.exit_code == 0, sampled.output
    first = sampled.stdout.splitlines()[0]
    assert first.startswith(f"{data}: sampled 300 of 600 rows (--sample)")
    # No progress bar when stderr is not a terminal (here: captured).
    assert "fits" not in sampled.stderr


def test_the_sample_is_drawn_among_the_finite_rows(tmp_path: Path) -> None:
    """Rows with NaN were left out after sampling: 12 rows sampled from a file whose
    every other row holds a NaN left 2, and the error blamed the file's 150 finite rows."""
    X = blobs(300, CENTERS, seed=4)
    X[::2, 0] = np.nan
    path = tmp_path / "halfnan.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="")
    args = ["choose-k", str(path), "--k-max", "10", "--refs", "2"]
    result = invoke(*args, "--sample", "12")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        f"{path}: sampled 12 of 300 rows (--sample), 150 with NaN or infinity left out first "
        "x 3 features (a, b, c)"
    )
    out = json.loads(invoke(*args, "--sample", "12", "--json").stdout)
    assert (out["rows_in_file"], out["rows_used"], out["rows_dropped"]) == (300, 12, 150)
    assert out["sampled"] is True
    # More rows than --sample, but fewer finite ones: all of those, nothing sampled.
    out = json.loads(invoke(*args, "--sample", "200", "--json").stdout)
    assert (out["rows_used"], out["rows_dropped"], out["sampled"]) == (150, 150, False)
    X[1:290:2, 1] = np.inf
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="")
    short = invoke(*args, "--sample", "12")
    assert short.exit_code == 2 and short.stdout == ""
    assert short.stderr == (
        f"error: {path}: 5 row(s) with finite values; --k-max 10 needs at least 10\n"
    )
    # 100 identical rows: k=2 came out of every rule, after a warning per k (helper-90).
    np.savetxt(path, np.ones((100, 3)), delimiter=",", header="a,b,c", comments="")
    constant = invoke(*args)
    assert constant.exit_code == 2 and constant.stdout == ""
    assert constant.stderr == (
        f"error: {path}: 1 distinct row(s) among the 100 with finite values; --k-max 10 "
        "needs at least 10: no structure to choose k on\n"
    )


def test_a_file_separated_by_semicolons_with_dot_decimals_gets_the_hint(tmp_path: Path) -> None:
    path = tmp_path / "semicolon.csv"
    path.write_text("a;b;c\n" + "".join(f"{j}.5;{j % 7}.25;{j % 3}\n" for j in range(50)))
    result = invoke("choose-k", str(path))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"error: {path}: the header is one column 'a;b;c', which holds no numbers. "
        "The header looks separated by semicolons: a CSV file here is separated by commas.\n"
    )


def test_a_column_without_a_finite_value_is_named(data: Path, tmp_path: Path) -> None:
    """One all-NaN column made the file "0 row(s) with finite values", the column unnamed."""
    X = np.loadtxt(data, delimiter=",", skiprows=1)
    X[:, 1] = np.nan
    path = tmp_path / "nancol.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="")
    result = invoke("choose-k", str(path), "--k-max", "4", "--refs", "2")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"error: {path}: 0 row(s) with finite values; --k-max 4 needs at least 4; "
        "column(s) ['b'] hold no finite value: leave them out with --features a,c\n"
    )


def test_the_silhouettes_own_sample_is_said(tmp_path: Path) -> None:
    """The silhouette took 10,000 of the 15,000 rows that rows_used reported, unsaid."""
    path = tmp_path / "big.csv"
    np.savetxt(path, blobs(10_050, CENTERS, seed=4), delimiter=",", header="a,b,c", comments="")
    args = ["choose-k", str(path), "--k-max", "3", "--refs", "1", "--n-init", "1"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        f"{path}: 10,050 rows, the silhouette on 10,000 of them x 3 features (a, b, c)"
    )
    out = json.loads(invoke(*args, "--json").stdout)
    assert (out["rows_used"], out["silhouette_rows"]) == (10_050, 10_000)
    out = json.loads(invoke(*args, "--json", "--sample", "5000").stdout)
    assert (out["rows_used"], out["silhouette_rows"]) == (5000, 5000)


def test_json_has_the_curves_the_choices_and_how_rows_were_taken(data: Path) -> None:
    result = invoke("choose-k", str(data), "--k-min", "1", "--k-max", "5", "--refs", "3", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["best"] == {"elbow": 3, "silhouette": 3, "gap": 3}
    assert out["ks"] == [1, 2, 3, 4, 5] and out["features"] == ["a", "b", "c"]
    assert (out["rows_in_file"], out["rows_used"], out["rows_dropped"]) == (600, 598, 2)
    assert out["sampled"] is False
    assert len(out["inertia"]) == len(out["silhouette"]) == len(out["gap"]) == 5
    assert out["inertia"] == sorted(out["inertia"], reverse=True)
    assert out["silhouette"][0] == 0.0  # undefined for k = 1, reported as 0


def test_a_column_left_out_for_one_cell_is_a_warning_and_named_in_json(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One cell of text left column b out with an INFO line only, and nothing in --json
    told a script that a feature was gone."""
    rows = data.read_text().splitlines()
    rows[3] = rows[3].split(",", 1)[0] + ",x," + rows[3].rsplit(",", 1)[1]
    path = tmp_path / "cell.csv"
    path.write_text("\n".join(rows) + "\n")
    result = invoke("choose-k", str(path), "--k-max", "4", "--refs", "2", "--json")
    assert result.exit_code == 0, result.output
    why = "line 4: column 'b' holds 'x', not a number"
    assert json.loads(result.stdout)["columns_left_out"] == {"b": why}
    assert json.loads(result.stdout)["features"] == ["a", "c"]
    assert [r.levelname for r in caplog.records if "column 'b' left out" in r.message] == [
        "WARNING"
    ]
    whole = invoke("choose-k", str(data), "--k-max", "4", "--refs", "2", "--json")
    assert json.loads(whole.stdout)["columns_left_out"] == {}


def test_a_column_without_a_name_is_left_out_with_a_warning(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """pandas' df.to_csv(path) writes its index as a first column with an empty header:
    the row numbers were clustered as a feature named '' without a word (helper-145)."""
    rows = data.read_text().splitlines()
    path = tmp_path / "withindex.csv"
    path.write_text("\n".join(f"{j - 1 if j else ''},{r}" for j, r in enumerate(rows)) + "\n")
    result = invoke("choose-k", str(path), "--k-max", "4", "--refs", "2", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["features"] == ["a", "b", "c"]
    why = (
        "column(s) 1 of the header have no name, as the index that pandas' "
        "df.to_csv(path) writes (index=False leaves it out)"
    )
    assert out["columns_left_out"] == {"": why}
    assert [r.levelname for r in caplog.records if why in r.message] == ["WARNING"]


def test_n_init_sets_the_restarts_of_each_ks_fit(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each k had one k-means++ attempt, so easy data landed in local minima."""
    from monitor.core import selection

    real = selection.choose_k
    seen: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["n_init"])
        return real(*args, **kwargs)

    monkeypatch.setattr(selection, "choose_k", spy)
    for args in ([], ["--n-init", "7"]):
        result = invoke("choose-k", str(data), "--k-max", "4", "--refs", "2", *args)
        assert result.exit_code == 0, result.output
    assert seen == [3, 7]


def test_data_in_tiny_units_chooses_as_in_unit_one(data: Path, tmp_path: Path) -> None:
    """Values near 1e-160 square to below the smallest normal float: the scaler took
    every feature for a constant and the elbow and gap chose k=2 from underflow."""
    X = np.genfromtxt(data, delimiter=",", skip_header=1) * 1e-160
    tiny = tmp_path / "tiny.csv"
    np.savetxt(tiny, X, delimiter=",", header="a,b,c", comments="")
    result = invoke("choose-k", str(tiny), "--k-max", "5", "--refs", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "elbow: k=3  silhouette: k=3  gap: k=3"


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_draws_the_three_curves_with_each_choice(
    data: Path, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"k{suffix}"
    args = ["choose-k", str(data), "--k-max", "6", "--refs", "3", "--plot", str(path)]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"plot written to {path}"
    raw = path.read_bytes()
    if suffix == ".png":
        assert raw.startswith(b"\x89PNG\r\n\x1a\n") and len(raw) > 10_000
        return
    text = "".join(ET.fromstring(raw).itertext())
    for title in ("elbow: k=3", "silhouette: k=3", "gap: k=3", "choose-k on blobs.csv"):
        assert title in text
    # The same data and seed draw the same file.
    invoke(*args)
    assert path.read_bytes() == raw


def k_tick_labels(svg: bytes) -> list[list[str]]:
    """The k axis's tick labels of each panel (text, as svg.fonttype is none)."""
    root = ET.fromstring(svg)
    panels = [g for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith("axes_")]
    return [
        [
            "".join(t.itertext()).strip()
            for t in panel.iter(f"{SVG}g")
            if t.get("id", "").startswith("xtick_")
        ]
        for panel in panels
    ]


@pytest.mark.parametrize(("k_min", "k_max"), [(1, 60), (2, 31), (2, 8), (2, 14)])
def test_the_k_axis_labels_every_k_of_a_short_range_and_round_ones_of_a_long(
    tmp_path: Path, k_min: int, k_max: int
) -> None:
    """Every k was labelled: from --k-max 30 on, the labels ran together."""
    pytest.importorskip("matplotlib")
    from monitor.plots import plot_k_selection
    from monitor.records import KSelection

    ks = np.arange(k_min, k_max + 1)
    curve = np.linspace(1.0, 0.1, ks.size)
    sel = KSelection(ks=ks, inertia=curve, silhouette=curve, gap=curve, gap_sk=curve / 10,
                     best_elbow=k_min, best_silhouette=k_max, best_gap=k_max)  # fmt: skip
    path = tmp_path / "k.svg"
    plot_k_selection(sel, path, title="ticks")
    panels = k_tick_labels(path.read_bytes())
    assert len(panels) == 3
    for labels in panels:
        assert all(label.isdigit() and k_min <= int(label) <= k_max for label in labels), labels
        if k_max - k_min < 13:
            assert labels == [str(k) for k in ks]
        else:
            assert 5 <= len(labels) <= 15, labels


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plot", "k.pdf"], "error: --plot k.pdf: the file name must end in .png or .svg"),
        (["--k-min", "4", "--k-max", "3"], "error: need --k-min < --k-max; got 4 and 3"),
        (["--sample", "1"], "Invalid value for '--sample': 1 is not in the range x>=2 (see '"),
        # "2 row(s) with finite values" said the file, not the option, was short.
        (
            ["--sample", "2", "--k-max", "3"],
            "error: --sample 2 rows cannot hold --k-max 3 clusters\n",
        ),
        (["--n-init", "0"], "Invalid value for '--n-init': 0 is not in the range 1<=x<=100"),
        (["--features", "a,,b"], "error: --features 'a,,b' has an empty column name\n"),
        (["--features", ""], "error: --features '' has an empty column name\n"),
        (["--features", "a,b,a"], "error: --features names ['a'] more than once\n"),
    ],
)
def test_user_errors_exit_2_before_any_fit(data: Path, args: list[str], message: str) -> None:
    result = invoke("choose-k", str(data), *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "option", ["--k-min", "--k-max", "--sample", "--refs", "--n-init", "--seed"]
)
@pytest.mark.parametrize("word", ["\u0663", "\uff13", "\u00b2", "1_000", "three"])
def test_whole_number_options_take_ascii_digits_only(data: Path, option: str, word: str) -> None:
    # click's INT takes what int() takes: "\u0663" (Arabic-Indic 3) ran choose-k as 3,
    # where durations and versions refuse such digits.
    result = invoke("choose-k", str(data), option, word)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(
        f"error: Invalid value for '{option}': {word!r} is not a whole number in ASCII digits "
        "(see '"
    )
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("option", ["--k-max", "--n-init", "--seed"])
@pytest.mark.parametrize("size", [2000, 5000])
def test_a_value_of_thousands_of_digits_is_shown_shortened(
    data: Path, option: str, size: int
) -> None:
    # 5,000 digits were echoed whole by click; 2,000 (which int() reads) were echoed whole
    # by the range check, or by "--sample 20000 rows cannot hold --k-max 999...".
    result = invoke("choose-k", str(data), option, "9" * size)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(
        f"error: Invalid value for '{option}': '{'9' * 79}...{'9' * 19}' ({size} characters) "
        "is too large (more than 18 digits) (see '"
    )
    assert len(result.stderr) < 300


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_column_named_twice_is_refused_not_used_twice(tmp_path: Path, suffix: str) -> None:
    """Without --features every numeric column is used: one named twice is an error."""
    path = tmp_path / f"dup{suffix}"
    X = blobs(60, CENTERS, seed=4)
    if suffix == ".csv":
        np.savetxt(path, X, delimiter=",", header="a,a,b", comments="")
    else:
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table(list(X.T), names=["a", "a", "b"]), path)
    before = path.read_bytes()
    result = invoke("choose-k", str(path), "--k-max", "3")
    assert result.exit_code == 2
    assert result.stderr == f"error: {path}: duplicated column(s) ['a'].\n"
    assert result.stdout == "" and path.read_bytes() == before


def test_a_file_of_many_columns_is_named_by_their_count_and_the_first_few(tmp_path: Path) -> None:
    """A CSV of 200,000 columns printed a first line of 1.7 MB naming every one."""
    names = [f"f{i}" for i in range(40)]
    path = tmp_path / "wide.csv"
    X = blobs(30, np.zeros((3, 40)), seed=4)
    np.savetxt(path, X, delimiter=",", header=",".join(names), comments="")
    result = invoke("choose-k", str(path), "--k-max", "3", "--refs", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        f"{path}: 30 rows x 40 features (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, ... and 30 more)"
    )
    twice = ",".join(names + names)
    many = invoke("choose-k", str(path), "--features", twice)
    assert many.stderr == (
        "error: --features names ['f0', 'f1', 'f10', 'f11', 'f12', 'f13', 'f14', 'f15', "
        "'f16', 'f17', ... and 30 more] more than once\n"
    )
    empty = invoke("choose-k", str(path), "--features", twice + ",")
    assert empty.exit_code == 2 and len(empty.stderr) < 200, empty.stderr
    assert empty.stderr.endswith(" (300 characters) has an empty column name\n")
    np.savetxt(path, np.hstack([X, X]), delimiter=",", header=twice, comments="")
    doubled = invoke("choose-k", str(path))
    assert doubled.stderr.endswith(
        "duplicated column(s) ['f0', 'f1', 'f10', 'f11', 'f12', "
        "'f13', 'f14', 'f15', 'f16', 'f17', ... and 30 more].\n"
    )


def test_a_missing_matplotlib_is_named_before_any_fit(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.dates"):
        monkeypatch.setitem(sys.modules, name, None)
    result = invoke("choose-k", str(data), "--plot", str(tmp_path / "k.png"))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        "error: plots need matplotlib, which is not installed: pip install 'kmeans-monitor[plot]'"
    )


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_bar_redraws_in_place_with_the_time_left_from_the_pace_of_alike_steps() -> None:
    stream, clock = Terminal(), Clock()
    bar = _ProgressBar("choose-k", stream, clock=clock, width=10, eta_from=2)
    clock.t += 4.0
    bar(1, 6)  # the costly steps first: no estimate yet
    clock.t += 4.0
    bar(2, 6)
    clock.t += 0.05
    bar(3, 6)  # within 0.1 s of the last redraw: skipped
    clock.t += 1.95
    bar(4, 6)  # two alike steps in 2 s: 1 s each, 2 left
    clock.t += 2.0
    bar(6, 6)  # the last step is always drawn
    bar.close()
    frames = stream.getvalue().split("\r")[1:]
    assert [f.rstrip() for f in frames] == [
        "choose-k [##........] 1/6 fits, 4 s",
        "choose-k [###.......] 2/6 fits, 8 s",
        "choose-k [#######...] 4/6 fits, 10 s, about 2 s left",
        "choose-k [##########] 6/6 fits, 12 s",
    ]
    assert stream.getvalue().endswith("\n")  # close() ends the line
    # A shorter frame blanks what the longer one before it left on the line.
    assert frames[3].startswith("choose-k [##########] 6/6 fits, 12 s" + " " * 15)


def test_the_bar_is_silent_off_a_terminal() -> None:
    stream = io.StringIO()
    bar = _ProgressBar("choose-k", stream)
    bar(1, 2)
    bar(2, 2)
    bar.close()
    assert not bar.enabled and stream.getvalue() == ""


def test_the_read_is_shown_in_place_on_a_terminal_and_every_few_seconds_elsewhere() -> None:
    stream, clock = Terminal(), Clock()
    reading = _ReadProgress("choose-k reading w.csv", stream, clock=clock)
    reading(2**20, 4 * 2**20)  # at once: a terminal shows the read from the start
    clock.t += 0.05
    reading(2 * 2**20, 4 * 2**20)  # within 0.1 s: skipped
    clock.t += 2.0
    reading(4 * 2**20, 4 * 2**20)
    reading.close()
    assert [f.rstrip() for f in stream.getvalue().split("\r")[1:]] == [
        "choose-k reading w.csv: 1.0 MiB of 4.0 MiB read (25%), 0 s",
        "choose-k reading w.csv: 4.0 MiB of 4.0 MiB read (100%), 2 s",
    ]
    log, clock = io.StringIO(), Clock()
    reading = _ReadProgress("choose-k reading w.csv", log, clock=clock)
    for t in (1.0, 4.9, 5.0, 7.0, 10.5):
        clock.t = 100.0 + t
        reading(int(t * 2**28), 3 * 2**30)
    reading.close()
    # Off a terminal: nothing for a short read, then a line at most every 5 s.
    assert log.getvalue().splitlines() == [
        "choose-k reading w.csv: 1.2 GiB of 3.0 GiB read (42%), 5 s",
        "choose-k reading w.csv: 2.6 GiB of 3.0 GiB read (88%), 10 s",
    ]


def test_choose_k_shows_how_far_it_has_read(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CSV_CHUNK_ROWS", 200)
    monkeypatch.setattr(cli, "_ReadProgress", functools.partial(_ReadProgress, quiet=0.0))
    result = invoke("choose-k", str(data), "--k-max", "4", "--refs", "2")
    assert result.exit_code == 0, result.output
    size = data.stat().st_size
    lines = [line for line in result.stderr.splitlines() if "reading" in line]
    assert len(lines) == 3, result.stderr
    assert lines[-1].startswith(f"choose-k reading blobs.csv: {size / 1024:.1f} KiB of ")
    assert lines[-1].endswith(" read (100%), 0 s")


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_choose_k_shows_how_far_it_has_read_an_npy_or_parquet_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """A 2 GB NPY or Parquet file was ~18 s of silence: now the CSV read's lines, at most
    every 5 s once the read has lasted 5 s (each block read here takes 2 s of a fake clock)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = np.random.default_rng(9).normal(size=(2000, 2))
    path = tmp_path / f"w{suffix}"
    if suffix == ".npy":
        np.save(path, X)
        monkeypatch.setattr(files, "NPY_READ_BYTES", 3200)  # 10 blocks
    else:
        pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1]}), path, row_group_size=200)

    class Ticking(Clock):
        def __call__(self) -> float:
            self.t += 2.0
            return self.t

    monkeypatch.setattr(cli, "_ReadProgress", functools.partial(_ReadProgress, clock=Ticking()))
    result = invoke("choose-k", str(path), "--k-max", "3", "--refs", "2")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "reading" in line]
    assert [line.rsplit(", ", 1)[1] for line in lines] == ["6 s", "12 s", "18 s"], lines
    assert lines[0].startswith(f"choose-k reading w{suffix}: ")


def test_a_file_name_that_is_not_utf8_is_shown_with_its_byte_escaped(
    data: Path, tmp_path: Path
) -> None:
    # `lat\xe9.csv` (a latin-1 é, a file copied from an older system): --plot ended in a
    # traceback and exit 70, FreeType refusing the lone surrogate Python holds the byte
    # as; --json wrote that surrogate, which strict JSON decoders refuse.
    named = tmp_path / os.fsdecode(b"lat\xe9.csv")
    named.write_bytes(data.read_bytes())
    plot = tmp_path / "k.svg"
    args = ["choose-k", str(named), "--k-max", "4", "--refs", "2", "--json", "--plot", str(plot)]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == f"{tmp_path}/lat\\xe9.csv"
    assert "choose-k on lat\\xe9.csv: " in "".join(ET.fromstring(plot.read_bytes()).itertext())
