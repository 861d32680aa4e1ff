"""The strict YAML loader: what PyYAML's safe loader accepts but an operator never means."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.yamlfile import (
    MAX_ALIAS_NODES,
    MAX_ALIASES,
    MAX_BYTES,
    AmbiguousNumbers,
    dump_yaml,
    load_yaml,
    read_yaml,
)


def problem(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_yaml(text, "f.yml")
    assert len(info.value.problems) == 1
    return info.value.problems[0]


def test_a_duplicate_key_names_both_lines() -> None:
    msg = problem("k: 3\nname: a\nk: 40\n")
    assert msg.startswith("f.yml: not valid YAML: line 3, column 1: duplicate key 'k'")
    assert "first at line 1" in msg


def test_a_duplicate_key_in_a_nested_flow_mapping() -> None:
    assert "duplicate key 'b'" in problem("a: {b: 1, b: 2}\n")


def test_a_few_aliases_are_fine_and_an_alias_bomb_is_refused() -> None:
    assert load_yaml("a: &x [1, 2]\nb: *x\n", "f.yml") == {"a": [1, 2], "b": [1, 2]}
    bomb = "a: &a [x]\n" + "".join(f"b{i}: [{', '.join(['*a'] * 9)}]\n" for i in range(20))
    assert f"more than {MAX_ALIASES} alias uses" in problem(bomb)


def test_aliases_to_aliases_that_stand_for_billions_of_values_are_refused() -> None:
    """90 aliases, 359 bytes, 3.4 billion values: check-config used gigabytes (a
    MemoryError, exit 70) walking and showing them."""
    text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for p, c in zip("abcdefghi", "bcdefghij", strict=True):
        text += f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
    msg = problem(text)
    assert msg == (
        f"f.yml: not valid YAML: line 6, column 8: aliases (*name) stand for more than "
        f"{MAX_ALIAS_NODES:,} values in all"
    )


def test_many_uses_of_shared_options_are_fine() -> None:
    shared = "d: &d {" + ", ".join(f"o{i}: {i}" for i in range(100)) + "}\n"
    text = shared + "".join(f"m{i}: {{<<: *d, name: m{i}}}\n" for i in range(99))
    assert load_yaml(text, "f.yml")["m98"]["o99"] == 99


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a {b: [1, *a]}\n"])
def test_an_alias_inside_the_value_it_names_is_refused(text: str) -> None:
    """A value that holds itself took check-config into a RecursionError (exit 70)."""
    assert problem(text).endswith("alias *a is inside the value it names")


def test_merge_keys_share_options_and_the_keys_written_win() -> None:
    """`<<: *m` stopped the loader with "could not determine a constructor for the tag"."""
    text = "a: &m {x: 1, y: 2}\nb:\n  <<: *m\n  y: 3\nc: {<<: [*m, {z: 4}], x: 5}\n"
    assert load_yaml(text, "f.yml") == {
        "a": {"x": 1, "y": 2},
        "b": {"x": 1, "y": 3},
        "c": {"x": 5, "y": 2, "z": 4},
    }
    assert "duplicate key 'y'" in problem("a: &m {x: 1}\nb: {<<: *m, y: 1, y: 2}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "k: 010\n",
            "line 1, column 4: 010 is 8 in YAML 1.1 (octal): write 8, or quote it ('010')",
        ),
        ("k: -0_17\n", "-0_17 is -15 in YAML 1.1 (octal)"),
        ("at: 1:30\n", "1:30 is 90 in YAML 1.1 (base 60): write 90, or quote it ('1:30')"),
        ("x: [1, 1:30.5]\n", "line 1, column 8: 1:30.5 is 90.5 in YAML 1.1 (base 60)"),
    ],
)
def test_yaml_1_1_octal_and_base_60_numbers_are_refused(text: str, message: str) -> None:
    assert message in problem(text)


def test_every_octal_and_base_60_number_is_listed_with_the_file_as_yaml_1_1_reads_it() -> None:
    # So that check-config lists them with the file's other problems (helper-160).
    with pytest.raises(AmbiguousNumbers) as info:
        load_yaml("a: 010\nb: [1:30, x]\nc: 3\n", "f.yml")
    assert info.value.problems == [
        "f.yml: not valid YAML: line 1, column 4: 010 is 8 in YAML 1.1 (octal): write 8, or "
        "quote it ('010') for the text",
        "f.yml: not valid YAML: line 2, column 5: 1:30 is 90 in YAML 1.1 (base 60): write 90, "
        "or quote it ('1:30') for the text",
    ]
    assert info.value.data == {"a": 8, "b": [90, "x"], "c": 3}
    # A problem that leaves no file to read is reported alone, as before.
    assert "duplicate key 'a'" in problem("a: 010\na: 1\n")


def test_an_integer_of_thousands_of_digits_is_a_problem_not_a_traceback() -> None:
    # int() refuses more than 4,300 digits: loading the file ended in a traceback, exit 70.
    assert "line 1, column 4: an integer of 5000 digits; no setting takes more" in problem(
        "k: " + "9" * 5000 + "\n"
    )
    assert load_yaml("k: " + "9" * 100 + "\n", "f.yml") == {"k": int("9" * 100)}


def test_numbers_that_read_as_written_stay_numbers() -> None:
    text = "a: 0\nb: 10\nc: -3\nd: 0.5\ne: 1_000\nf: 0x1f\ng: 08\nh: '010'\ni: 1e3\n"
    assert load_yaml(text, "f.yml") == {
        "a": 0, "b": 10, "c": -3, "d": 0.5, "e": 1000, "f": 31, "g": "08", "h": "010",
        "i": 1000.0,
    }  # fmt: skip


def test_exponent_floats_are_floats_as_in_yaml_1_2() -> None:
    # YAML 1.1 wants a point and a signed exponent: `tol: 1e-4` was the string '1e-4',
    # which a float field refused as "must be a float".
    text = "a: 1e-4\nb: 1E6\nc: -3e+2\nd: 1.5e3\ne: .5e2\nf: '1e5'\ng: 1e\n"
    assert load_yaml(text, "f.yml") == {
        "a": 1e-4,
        "b": 1e6,
        "c": -300.0,
        "d": 1500.0,
        "e": 50.0,
        "f": "1e5",
        "g": "1e",
    }


def test_a_long_duplicate_key_is_named_shortened() -> None:
    key = "k" * 1_000_000
    msg = problem(f"? {key}\n: 1\n? {key}\n: 2\n")  # plain keys: 1024 at most
    assert "kkk' (1000000 characters) (first at line 1)" in msg and len(msg) < 250


def test_syntax_errors_are_one_line_with_the_position() -> None:
    msg = problem("a: [1, 2\n")
    assert msg.startswith("f.yml: not valid YAML: line ")
    assert "\n" not in msg


def test_any_top_level_is_returned_as_is() -> None:
    # The configuration reader names a wrong top level; the loader only parses.
    assert load_yaml("- 1\n- 2\n", "f.yml") == [1, 2]
    assert load_yaml("", "f.yml") is None


def test_read_names_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_bytes(b"a: 1\nb: \xff\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xff on line 2\)"):
        read_yaml(path)


def test_read_refuses_huge_files_without_reading_them_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge.yml"
    path.write_bytes(b"#" * (MAX_BYTES + 10))
    with pytest.raises(ConfigError, match="larger than"):
        read_yaml(path)


def test_read_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_yaml(tmp_path / "nope.yml")


def test_dump_then_load_round_trips_in_order() -> None:
    data = {"z": 1, "a": [1.5, "x"], "m": {"k": None}}
    text = dump_yaml(data)
    assert text.index("z:") < text.index("a:")
    assert load_yaml(text, "f.yml") == data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("from: 2024-02-30\n", "line 1, column 7: 2024-02-30 is no date or time (day is out of"),
        ("name: 2024-13-01\n", "2024-13-01 is no date or time (month must be in 1..12)"),
        ("at: 2024-01-01 25:00:00\n", "(hour must be in 0..23): write a real one, or quote it"),
        ("from: 0000-01-01\n", "0000-01-01 is no date or time (year 0 is out of range)"),
    ],
)
def test_an_unquoted_date_that_is_no_date_is_a_problem_not_a_traceback(
    text: str, message: str
) -> None:
    # PyYAML's ValueError reached the user as a traceback, exit 70, from any field.
    assert message in problem(text)
    assert load_yaml("from: 2024-02-29\n", "f.yml") == {"from": date(2024, 2, 29)}
