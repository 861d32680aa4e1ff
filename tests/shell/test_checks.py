"""The configuration side of monitor.checks: mappings, names, fields, collected problems."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.checks import (
    BRIEF_ITEMS,
    FEATURE_NAME,
    MODEL_NAME,
    Mismatch,
    Problem,
    brief,
    check_array,
    check_base_url,
    check_int,
    check_mapping,
    check_name,
    check_sample_weight,
    find_overflow,
    overflow_message,
    problem_of,
    proven_finite,
    read_fields,
    shown_path,
    unknown_fields,
)
from monitor.durations import check_duration
from monitor.errors import InvalidInputError


def test_a_problem_renders_in_both_forms() -> None:
    problem = Problem("regimes", "an int in [1, 64]", 0)
    assert problem.config("models[a].source") == (
        "models[a].source.regimes: must be an int in [1, 64]; got 0"
    )
    assert problem.config() == "regimes: must be an int in [1, 64]; got 0"
    assert str(Mismatch(problem, "Simulator")) == (
        "The 'regimes' parameter of Simulator must be an int in [1, 64]. Got 0 instead."
    )


@pytest.mark.parametrize("value", [[1], "a", 5, None])
def test_check_mapping(value: Any) -> None:
    assert check_mapping({"a": 1}, "daemon") == {"a": 1}
    with pytest.raises(Mismatch) as info:
        check_mapping(value, "daemon")
    assert info.value.problem == Problem("daemon", "a mapping", value)


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (MODEL_NAME, ["checkout", "a.b-c_1", "9", "x" * 63], ["", "-x", ".h", "a/b", "x" * 64]),
        (FEATURE_NAME, ["rps", "_x", "a:b.c-d", "x" * 128], ["", "-x", "a b", "x" * 129]),
    ],
)
def test_names_must_match_in_full(pattern: Any, good: list[str], bad: list[Any]) -> None:
    for name in good:
        assert check_name(name, "name", pattern) == name
    # A trailing newline is not part of a name ('$' would have let it through).
    for name in [*bad, good[0] + "\n", 3, None]:
        with pytest.raises(Mismatch) as info:
            check_name(name, "name", pattern)
        got = "it is missing or empty" if name is None else f"got {brief(name)}"
        assert info.value.problem.config() == (
            f"name: must be a name matching {pattern.pattern}; {got}"
        )


def test_a_long_value_is_shown_by_its_ends_and_its_length() -> None:
    assert brief("x" * 118) == repr("x" * 118)  # 120 characters with the quotes: in full
    long = "a" + "x" * 10**6 + "z"
    shown = brief(long)
    assert shown.startswith("'axx") and shown.endswith("xxz' (1000002 characters)")
    assert len(shown) < 130
    problem = Problem("models[0].name", "a name", long).config()
    assert problem.endswith("xxz' (1000002 characters)") and len(problem) < 170
    # numpy 2's scalars are shown as their values ("np.float64(nan)" is nan).
    shown = brief(np.float64("nan")), brief(np.int64(3)), brief(np.str_("a"))
    assert shown == ("nan", "3", "'a'")
    # So in the checks' messages (helper-90 saw "np.float64(nan)" and "np.float64(-1.0)").
    with pytest.raises(InvalidInputError, match=r"the first at row 1, column 0 \(nan\)\.$"):
        check_array(np.array([[1.0], [np.nan]]))
    with pytest.raises(InvalidInputError, match=r"got a minimum of -1\.0\.$"):
        check_sample_weight(np.array([1.0, -1.0]), 2, np.float64)
    # The length is the text's, not its repr's (quotes, escapes), and bytes are bytes.
    assert brief("\n" * 200).endswith("' (200 characters)")
    assert brief(b"y" * 200).endswith("' (200 bytes)")


def test_a_value_of_millions_of_items_is_shown_without_building_its_repr() -> None:
    """One list nine times over, seven deep, is a few objects but 4.8 million items:
    brief() built their repr (from a YAML alias bomb, 17 GB) before shortening it."""
    value: Any = ["x"] * 9
    for _ in range(6):
        value = [value] * 9
    shown = brief(value)
    assert shown.startswith("[[[[[[") and shown.endswith(f"(more than {BRIEF_ITEMS:,} items)")
    assert len(shown) < 130
    looped: list[Any] = [1]
    looped.append(looped)
    assert brief(looped).endswith(f"(more than {BRIEF_ITEMS:,} items)")
    assert brief({"b": 1, "a": [2]}) == "{'b': 1, 'a': [2]}"  # small values: their repr


def test_problem_of_returns_the_problem_instead_of_raising() -> None:
    assert problem_of(check_int, 3, "k", low=2) is None
    assert problem_of(check_int, 1, "k", low=2) == Problem("k", "an int in [2, inf)", 1)


def test_unknown_fields_name_each_key_under_its_mapping() -> None:
    problems = unknown_fields({"a": 1, "zz": 2, "b": 3}, ["b", "a"], "models[m]")
    assert [p.config() for p in problems] == [
        "models[m].zz: must be omitted (unknown field; valid: a, b); got 2"
    ]
    assert unknown_fields({"a": 1}, ["a"]) == []


def test_an_unknown_field_close_to_a_valid_one_names_it_first() -> None:
    # A typo'd key listed the valid ones and left the user to spot which was meant.
    valid = ["k", "reference", "schedule", "window"]
    got = [p.config() for p in unknown_fields({"windw": "1h", "Refrence": 1, "zz": 2}, valid)]
    names = "valid: k, reference, schedule, window)"
    assert got == [
        f"windw: must be omitted (unknown field; did you mean 'window'? {names}; got '1h'",
        f"Refrence: must be omitted (unknown field; did you mean 'reference'? {names}; got 1",
        f"zz: must be omitted (unknown field; {names}; got 2",
    ]


def test_read_fields_converts_and_collects_every_problem() -> None:
    raw = {"step": "30s", "timeout": "soon", "url": "http://p", "query": "up", "join_on": None}
    values, problems = read_fields(
        raw,
        ["url", "step", "timeout", "join_on"],
        {"step": check_duration, "timeout": check_duration},
    )
    # Null counts as absent, and a refused value is left out so that its default applies.
    assert values == {"url": "http://p", "step": 30.0}
    assert [p.config("source") for p in problems] == [
        "source.query: must be omitted (unknown field; valid: join_on, step, timeout, url); "
        "got 'up'",
        "source.timeout: must be a duration such as '90s', '5m', '2h', '1d' or a positive "
        "number of seconds; got 'soon'",
    ]


def test_read_fields_names_fields_under_a_path() -> None:
    _, problems = read_fields({"after": "x", "y": 1}, ["after"], {"after": check_duration}, "e[0]")
    assert sorted(p.field for p in problems) == ["e[0].after", "e[0].y"]


@pytest.mark.parametrize(
    "url", ["http://push:9091", "https://u:pw@push.example.com/prefix/", "http://[::1]:9091"]
)
def test_a_base_url_is_returned_as_given(url: str) -> None:
    assert check_base_url(url, "pushgateway", example="http://h:1") == url


def test_a_base_url_problem_masks_the_credentials() -> None:
    with pytest.raises(Mismatch) as info:
        check_base_url("https://me:s3cret@push:port", "pushgateway", example="http://h:1")
    assert info.value.problem == Problem(
        "pushgateway", "an http(s) URL such as 'http://h:1'", "https://***@push:port"
    )


# The largest value whose square fits a float, in one column, and the bound that the quick
# check of overflow_message uses (4 m^2 d): between the two only the exact check decides.
ROOT_MAX = np.sqrt(sys.float_info.max)


@pytest.mark.parametrize(
    ("value", "overflows"),
    [
        (1.0, False),
        (ROOT_MAX / 2, False),  # on the quick check's bound
        (ROOT_MAX * 0.99, False),  # past the bound: the exact check says it fits
        (ROOT_MAX * 1.01, True),
        (-1e300, True),
    ],
)
def test_overflow_message_is_exact_on_either_side_of_its_quick_check(
    value: float, overflows: bool
) -> None:
    X = np.array([[0.0], [value]])
    message = overflow_message(X, ["a"], "u")
    assert (message is not None) == overflows
    if overflows:
        assert message == (
            f"values overflow u: 1 of 2 rows, e.g. a = {value:.3g}, whose square is beyond "
            "the largest float; the data is probably in the wrong unit or corrupt"
        )


def test_squares_that_fit_but_add_up_beyond_the_largest_float_are_not_called_beyond_it() -> None:
    # Values near 1e153 in 2,000 rows: each square fits (below 1.8e308), their sum, and
    # with it a column's variance as numpy and a scaler compute it, does not. The message
    # said "1 of 2000 rows, e.g. b = -3.9e+153, whose square is beyond the largest float".
    X = np.random.default_rng(0).normal(size=(2000, 3)) * 1e153
    with np.errstate(over="ignore"):
        assert np.isfinite(np.square(X)).all() and not np.isfinite(np.var(X, axis=0)).all()
    found = find_overflow(X)
    assert found is not None and found.rows == 0 and found.judged == 2000
    assert found.value == X[:, found.feature][np.abs(X[:, found.feature]).argmax()]
    assert found.message(["a", "b", "c"], "u") == (
        f"values overflow u: the squares of {'abc'[found.feature]} (up to "
        f"{abs(found.value):.3g}) each fit, but over the 2000 rows they add up beyond the "
        "largest float; the data is probably in the wrong unit or corrupt"
    )


def test_float32_rows_never_overflow_squared_distances_in_float64() -> None:
    # The largest float32 squared is about 1.2e77: a float32 window fits, down to its
    # extremes, so the check needs no pass over it (and gives the same answer).
    largest = np.finfo(np.float32).max
    X = np.array([[largest, -largest], [0.0, 1.0]], dtype=np.float32)
    assert overflow_message(X, ["a", "b"], "u") is None
    assert overflow_message(X.astype(np.float64), ["a", "b"], "u") is None
    assert overflow_message(np.array([[1e300]]), ["a"], "u") is not None


def test_proven_finite_skips_the_scan_of_those_very_arrays_only_within_the_block() -> None:
    # The array holds a NaN so that a skipped scan shows: the caller vouches for the
    # values (the pipeline checks the scaled window once, then enters the block).
    X = np.array([[0.0, 1.0], [np.nan, 2.0]])
    with pytest.raises(InvalidInputError, match="NaN or infinity"):
        check_array(X)
    with proven_finite(X):
        assert check_array(X) is X
        for other in (X.copy(), X[1:], X.T):  # copies and views are scanned
            with pytest.raises(InvalidInputError, match="NaN or infinity"):
                check_array(other)
        errors: list[BaseException] = []

        def elsewhere() -> None:  # another thread does not see this block
            try:
                check_array(X)
            except InvalidInputError as exc:
                errors.append(exc)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert len(errors) == 1
    with pytest.raises(InvalidInputError, match="NaN or infinity"):
        check_array(X)


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/data/x.csv", "/data/x.csv"),
        ("/data/caf\u00e9-\u65e5.csv", "/data/caf\u00e9-\u65e5.csv"),  # as typed, not escaped
        ("/data/my x.csv", "'/data/my x.csv'"),
        ("/data/it's", "'/data/it'\"'\"'s'"),  # as shlex.quote writes it
        ("/data/a\nb\tc\\", "$'/data/a\\nb\\tc\\\\'"),
        ("/data/\x1b[31m'", "$'/data/\\x1b[31m\\''"),
        (os.fsdecode(b"/data/\xff.csv"), "$'/data/\\xff.csv'"),  # the byte, pasted back
        ("/data/\u2028", "$'/data/\\u2028'"),
        ("", "''"),
        ("/" + "x" * 200, "/" + "x" * 79 + "..." + "x" * 20 + " (201 characters)"),
    ],
)
def test_shown_path_is_what_a_shell_takes_on_one_line(path: str, shown: str) -> None:
    assert shown_path(path) == shown
    assert shown_path(Path(path) if path else path) == shown
