"""Telemetry sources, picked by the configuration's ``kind`` from an immutable map.

Each kind meets ``monitor.ports.SourceKind``: ``parse_options(raw, features)`` gives its
typed options and every problem, ``build(model, features, options)`` the source,
``replay_problem(options)`` why it could not replay the past (a backtest refuses then),
and ``warnings(model, options)`` what the options call for a warning of.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.checks import Problem, check_choice, problem_of
from monitor.errors import InvalidInputError
from monitor.ports import SourceKind, TelemetrySource
from monitor.sources import files, prometheus, spark, synthetic

__all__ = ["SOURCES", "Kind", "UnknownSourceKindError"]


def _no_warnings(model: str, options: Any) -> list[str]:
    """Nothing in the options to warn of."""
    return []


def _fits_any_window(options: Any, window: float) -> list[Problem]:
    """No option depends on the model's window."""
    return []


def _replays(options: Any) -> str | None:
    """Every past window reads as it was (synthetic rows follow from the time; Prometheus
    and Spark are queried by time range)."""
    return None


@dataclass(frozen=True)
class Kind:
    """A SourceKind made of a source module's ``parse_options``, ``build`` and, when some
    of its options cannot read the past, ``replay_problem``; when some call for a warning,
    ``warnings``."""

    name: str
    parse_options: Callable[[Mapping[str, Any], Sequence[str] | None], tuple[Any, list[Problem]]]
    build: Callable[[str, tuple[str, ...], Any], TelemetrySource]
    replay_problem: Callable[[Any], str | None] = _replays
    warnings: Callable[[str, Any], list[str]] = _no_warnings
    window_problems: Callable[[Any, float], list[Problem]] = _fits_any_window


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
            valid = tuple(sorted(self._kinds))
            problem = problem_of(check_choice, name, "source.kind", valid)
            raise UnknownSourceKindError(problem.config() if problem else repr(name)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def __repr__(self) -> str:
        return f"SOURCES({sorted(self._kinds)})"


SOURCES: Mapping[str, SourceKind] = _Registry(
    (
        Kind("synthetic", synthetic.parse_options, synthetic.build),
        Kind(
            "files",
            files.parse_options,
            files.build,
            files.replay_problem,
            window_problems=files.window_problems,
        ),
        Kind(
            "prometheus", prometheus.parse_options, prometheus.build, warnings=prometheus.warnings
        ),
        Kind("spark", spark.parse_options, spark.build),
    )
)
