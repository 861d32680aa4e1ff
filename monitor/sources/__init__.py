"""Telemetry sources, picked by the configuration's ``kind`` from an immutable map.

Each kind provides ``parse_options(raw) -> (options | None, problems)`` and
``build(model, features, options) -> TelemetrySource``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.errors import InvalidInputError
from monitor.ports import TelemetrySource
from monitor.sources import files, synthetic
from monitor.sources import prometheus as prometheus

__all__ = ["SOURCES", "SourceKind", "UnknownSourceKindError"]


@dataclass(frozen=True)
class SourceKind:
    """How to parse the options of one kind of source and build it."""

    name: str
    parse_options: Callable[[Mapping[str, Any]], tuple[Any | None, list[str]]]
    build: Callable[[str, tuple[str, ...], Any], TelemetrySource]


class UnknownSourceKindError(KeyError, InvalidInputError):
    """No source has that kind; the message lists the valid kinds."""

    def __str__(self) -> str:  # KeyError quotes its argument; a message reads better
        return str(self.args[0])


class _Registry(Mapping[str, SourceKind]):
    """A read-only map whose missing-key error lists the valid keys."""

    def __init__(self, kinds: tuple[SourceKind, ...]) -> None:
        self._kinds = {k.name: k for k in kinds}

    def __getitem__(self, name: str) -> SourceKind:
        try:
            return self._kinds[name]
        except (KeyError, TypeError):
            valid = ", ".join(repr(k) for k in sorted(self._kinds))
            raise UnknownSourceKindError(
                f"source.kind: must be one of {{{valid}}}; got {name!r}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def __repr__(self) -> str:
        return f"SOURCES({sorted(self._kinds)})"


SOURCES: Mapping[str, SourceKind] = _Registry(
    (
        SourceKind("synthetic", synthetic.parse_options, synthetic.build),
        SourceKind("files", files.parse_options, files.build),
        SourceKind("prometheus", prometheus.parse_options, prometheus.build),
    )
)
