"""The synthetic source: windows of the built-in simulator (monitor.simulator).

The options are the simulator's (docs/sources.md); this module only adapts the
Simulator to the TelemetrySource port.
"""

from __future__ import annotations

from monitor.errors import ConfigError, SourceError
from monitor.records import Window
from monitor.simulator import Simulator, SimulatorOptions, options_problems, parse_options
from monitor.sources._common import check_bounds
from monitor.timestamps import format_time

__all__ = ["SyntheticSource", "build", "parse_options"]


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

    def close(self) -> None:
        """Nothing to release."""


def build(model: str, features: tuple[str, ...], options: SimulatorOptions) -> SyntheticSource:
    """A synthetic source for ``model``; ConfigError when the options do not fit its features."""
    problems = options_problems(options, features)
    if problems:
        raise ConfigError([p.config("source") for p in problems])
    return SyntheticSource(model, Simulator(features, options))
