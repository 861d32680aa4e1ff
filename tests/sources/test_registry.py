"""The SOURCES map and parse_duration, as the configuration and the composition root use them."""

from __future__ import annotations

import pytest

from monitor.errors import InvalidInputError
from monitor.sources import SOURCES, SourceKind, UnknownSourceKindError, parse_duration


def test_every_kind_parses_and_builds() -> None:
    assert sorted(SOURCES) == ["files", "prometheus", "synthetic"]
    for name, kind in SOURCES.items():
        assert isinstance(kind, SourceKind) and kind.name == name


def test_the_map_is_read_only() -> None:
    with pytest.raises(TypeError):
        SOURCES["kafka"] = SOURCES["files"]  # type: ignore[index]


def test_an_unknown_kind_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownSourceKindError) as info:
        SOURCES["kafka"]
    assert str(info.value) == (
        "source.kind: must be one of {'files', 'prometheus', 'synthetic'}; got 'kafka'"
    )
    # Callers that know only the builtins catch it either way.
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert SOURCES.get("kafka") is None and "kafka" not in SOURCES
    assert SOURCES.get(["unhashable"]) is None  # type: ignore[call-overload]


def test_a_kind_turns_raw_options_into_a_source() -> None:
    kind = SOURCES["synthetic"]
    options, problems = kind.parse_options({"seed": 1, "rows_per_window": 10})
    assert problems == []
    window = kind.build("m", ("a", "b"), options).read_window(0.0, 60.0)
    assert window.X.shape == (10, 2)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("250ms", 0.25),
        (" 2M ", 120.0),
        ("1.5h", 5400.0),
        ("45", 45.0),
        (42, 42.0),
        (0.5, 0.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value, "source.step") == seconds


@pytest.mark.parametrize("value", ["5 minutes", "m5", "", "1h30", "-5s", -1, True, None, "inf"])
def test_parse_duration_names_the_field(value: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_duration(value, "source.events[0].after")
    assert str(info.value) == (
        "source.events[0].after: must be a duration such as '90s', '5m', '2h', '1d' or a "
        f"non-negative number of seconds; got {value!r}"
    )
