"""The simulator's options from a configuration mapping (the synthetic source's options)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from functools import partial
from typing import Any

from monitor.checks import Problem, check_choice, problem_of, read_fields
from monitor.durations import check_duration
from monitor.simulator._options import EVENT_KINDS, Event, SimulatorOptions, options_problems
from monitor.timestamps import time_field

__all__ = ["parse_options"]

_OPTION_FIELDS = tuple(f.name for f in fields(SimulatorOptions) if f.name != "events")
_EVENT_FIELDS = tuple(f.name for f in fields(Event))


def parse_options(
    raw: Mapping[str, Any], features: Sequence[str] | None = None
) -> tuple[SimulatorOptions | None, list[Problem]]:
    """Typed options from a mapping of options, and every problem found.

    Fields of the problems are relative to the mapping ("events[2].kind"). With
    ``features``, events that name another feature are problems too. The options are
    None exactly when there are problems.
    """
    values, problems = read_fields(raw, (*_OPTION_FIELDS, "events"), {"origin": time_field})
    events, event_problems = _parse_events(values.pop("events", []))
    problems += event_problems
    if events is None:
        # The later checks count regimes and number events: without the broken events
        # they would report wrong indices, so stop at the problems found so far.
        return None, problems
    options = SimulatorOptions(**values, events=events)
    problems += options_problems(options, features)
    return (None, problems) if problems else (options, [])


def _parse_events(raw: Any) -> tuple[tuple[Event, ...] | None, list[Problem]]:
    """The events of a list; None when one of them cannot even be read as an event."""
    if not isinstance(raw, list):
        return (), [Problem("events", "a list of events", raw)]
    events: list[Event] = []
    problems: list[Problem] = []
    broken = False
    for i, item in enumerate(raw):
        event, found = _parse_event(item, f"events[{i}]")
        problems += found
        broken = broken or event is None
        if event is not None:
            events.append(event)
    return (None if broken else tuple(events)), problems


def _parse_event(item: Any, where: str) -> tuple[Event | None, list[Problem]]:
    if not isinstance(item, Mapping):
        return None, [Problem(where, "a mapping such as {kind: vanish, after: 10m}", item)]
    offsets: dict[str, Callable[[Any, str], float]] = {
        "after": partial(check_duration, allow_zero=True),
        "duration": check_duration,
        "ramp": check_duration,
    }
    values, problems = read_fields(item, _EVENT_FIELDS, offsets, where)
    if "kind" not in values:
        # Without a kind there is no event to check further; say which kinds exist.
        missing = problem_of(check_choice, None, f"{where}.kind", EVENT_KINDS)
        problems += [missing] if missing is not None else []
    if problems:
        return None, problems
    return Event(**values), []
