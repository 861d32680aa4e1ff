"""The synthetic source: windows of the built-in simulator (monitor.simulator).

The options are the simulator's (docs/sources.md); this module only adapts the
Simulator to the TelemetrySource port.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from monitor.errors import ConfigError, SourceError
from monitor.records import Evaluation, RunFailure, Window
from monitor.simulator import Simulator, SimulatorOptions, options_problems, parse_options
from monitor.sources._common import check_bounds
from monitor.timestamps import format_time

__all__ = ["SyntheticSource", "build", "events_from_first_score", "parse_options"]


class SyntheticSource:
    """A TelemetrySource that serves windows of a Simulator."""

    def __init__(self, model: str, simulator: Simulator) -> None:
        self._model = model
        self._simulator = simulator

    @property
    def simulator(self) -> Simulator:
        """The simulator behind this source."""
        return self._simulator

    def read_window(self, start: float, end: float) -> Window:
        """Simulated rows of ``[start, end)``; SourceError during a scheduled outage."""
        start, end = check_bounds(start, end, "SyntheticSource")
        try:
            X = self._simulator.rows(start, end)
        except SourceError as exc:
            raise SourceError(f"synthetic source of model {self._model!r}: {exc}") from exc
        return Window(
            model=self._model,
            start=start,
            end=end,
            features=self._simulator.features,
            X=X,
            label=f"synthetic [{format_time(start)}, {format_time(end)})",
        )

    def count_events_from(self, origin: float) -> None:
        """Count the events from ``origin`` (unix seconds) on, whatever was read before.

        The rows do not change otherwise: the origin moves the events only.
        """
        simulator = self._simulator
        self._simulator = Simulator(simulator.features, replace(simulator.options, origin=origin))

    def close(self) -> None:
        """Nothing to release."""


def events_from_first_score(
    sources: Mapping[str, object], now: Callable[[], float]
) -> Callable[[Evaluation | RunFailure], None]:
    """An ``on_result`` hook: the events of a model's synthetic source count from the end
    of the model's first scored run (``now()`` then), not from its first window read.

    The demo's: its first run trains the model on a simulated day first, which takes
    minutes on a loaded machine; counted from the first window, an event of a minute was
    over before any run scored it (docs/decisions.md). ``sources`` is looked up at each
    result, so it may be filled after the hook is made.
    """
    counted: set[str] = set()

    def hook(result: Evaluation | RunFailure) -> None:
        source = sources.get(result.model)
        if isinstance(result, Evaluation) and result.model not in counted:
            counted.add(result.model)
            if isinstance(source, SyntheticSource) and source.simulator.options.events:
                source.count_events_from(now())

    return hook


def build(model: str, features: tuple[str, ...], options: SimulatorOptions) -> SyntheticSource:
    """A synthetic source for ``model``; ConfigError when the options do not fit its features."""
    problems = options_problems(options, features)
    if problems:
        raise ConfigError([p.config("source") for p in problems])
    return SyntheticSource(model, Simulator(features, options))
