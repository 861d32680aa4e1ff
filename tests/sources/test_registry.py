"""The SOURCES map, as the configuration and the composition root use it."""

from __future__ import annotations

import pytest

from monitor.ports import SourceKind
from monitor.sources import SOURCES, UnknownSourceKindError


def test_every_kind_parses_and_builds() -> None:
    assert sorted(SOURCES) == ["files", "prometheus", "spark", "synthetic"]
    for name, kind in SOURCES.items():
        assert isinstance(kind, SourceKind) and kind.name == name


def test_the_map_is_read_only() -> None:
    with pytest.raises(TypeError):
        SOURCES["kafka"] = SOURCES["files"]  # type: ignore[index]


def test_an_unknown_kind_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownSourceKindError) as info:
        SOURCES["kafka"]
    assert str(info.value) == (
        "source.kind: must be one of {'files', 'prometheus', 'spark', 'synthetic'}; got 'kafka'"
    )
    # Callers that know only the builtins catch it either way.
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert SOURCES.get("kafka") is None and "kafka" not in SOURCES
    assert SOURCES.get(["unhashable"]) is None  # type: ignore[call-overload]


def test_a_kind_turns_raw_options_into_a_source() -> None:
    kind = SOURCES["synthetic"]
    options, problems = kind.parse_options({"seed": 1, "rows_per_window": 10}, ("a", "b"))
    assert problems == []
    window = kind.build("m", ("a", "b"), options).read_window(0.0, 60.0)
    assert window.X.shape == (10, 2)


@pytest.mark.parametrize("name", ["synthetic", "files", "prometheus"])
def test_every_kind_returns_problems_relative_to_its_options(name: str) -> None:
    options, problems = SOURCES[name].parse_options({"colour": "red"}, None)
    assert options is None
    assert "colour" in [p.field for p in problems]
