"""Benchmarks against reference implementations; run with ``python -m bench NAME``.

Every benchmark parses its options with ``Parser`` and the option types below, so that
a bad value is refused before any work, as one line on stderr and exit status 2 (as the
``kmeans-monitor`` commands refuse theirs), never as a traceback half-way through a run.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn, TypeVar

T = TypeVar("T")
SEED_MAX = 2**32 - 1  # the models' training.seed; numpy's generators take no negative seed


class Parser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line naming the benchmark's ``--help``
    (argparse's own are two: the usage, then the error)."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())
        self.exit(2, f"error: {line} (see '{self.prog} --help')\n")

    def check_model(self, build: Callable[[], T]) -> T:
        """Build the benchmark's model settings now: what the configuration refuses
        (too few rows for k, say) is a bad option, not a traceback once the work began."""
        from monitor.errors import ConfigError

        try:
            return build()
        except ConfigError as exc:
            self.error("these options make a model the monitor refuses: " + "; ".join(exc.problems))


def _bounds(low: int, high: int | None) -> str:
    return f"of at least {low:,}" if high is None else f"from {low:,} to {high:,}"


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An option's type: an integer from ``low`` to ``high`` (no upper bound: None)."""

    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"must be an integer {_bounds(low, high)}; got {text!r}"
            )
        return value

    return parse


def integers(low: int, high: int | None = None) -> Callable[[str], list[int]]:
    """An option's type: one or more comma-separated integers, each as ``integer``'s."""
    one = integer(low, high)

    def parse(text: str) -> list[int]:
        try:
            values = [one(v) for v in text.split(",") if v.strip()]
        except argparse.ArgumentTypeError:
            values = []
        if not values:
            raise argparse.ArgumentTypeError(
                f"must be comma-separated integers, each {_bounds(low, high)}; got {text!r}"
            )
        return values

    return parse


def seed(text: str) -> int:
    """An option's type: a random seed, as a model's ``training.seed`` takes."""
    return integer(0, SEED_MAX)(text)


def clusters(text: str) -> int:
    """An option's type: a model's k, from 2 to the daemon's default ``max_clusters``."""
    from monitor.config import DaemonSettings

    return integer(2, DaemonSettings().max_clusters)(text)


def number(
    *, above: float | None = None, at_least: float | None = None, below: float | None = None
) -> Callable[[str], float]:
    """An option's type: a finite number ``> above``, ``>= at_least`` and ``< below``."""
    wanted = [
        f"{word} {bound:g}"
        for word, bound in (("above", above), ("of at least", at_least), ("below", below))
        if bound is not None
    ]

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (
            math.isfinite(value)
            and (above is None or value > above)
            and (at_least is None or value >= at_least)
            and (below is None or value < below)
        ):
            raise argparse.ArgumentTypeError(
                f"must be a number {' and '.join(wanted)}; got {text!r}"
            )
        return value

    return parse


def names(choices: Iterable[str], none: bool = False) -> Callable[[str], list[str]]:
    """An option's type: one or more comma-separated names of ``choices``, each once;
    with ``none``, also ``""`` for none of them."""
    valid = list(choices)

    def parse(text: str) -> list[str]:
        got = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in got if v not in valid]
        if unknown or not (got or (none and not text.strip())):
            empty = ' (or "" for none)' if none else ""
            raise argparse.ArgumentTypeError(
                f"must be comma-separated names from {', '.join(valid)}{empty}; got {text!r}"
            )
        return list(dict.fromkeys(got))

    return parse


def output_file(text: str) -> Path:
    """An option's type: a file to write at the end, checked now (not after the run)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
    existing = path.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: cannot write in {existing}")
    return path


def run_child(command: list[str], what: str) -> str:
    """The standard output of ``command``, a benchmark's child process; when the child
    fails, an exit with one line (``what`` failed, and its last line of stderr) rather
    than the CalledProcessError traceback."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"error: {what} failed (exit {done.returncode}): {last}")
    return done.stdout
