"""Dispatch ``python -m bench NAME [ARGS...]`` to ``bench/bench_NAME.py``'s ``main(argv)``.

A new benchmark is a new ``bench/bench_<name>.py`` with ``main(argv: list[str]) -> int``;
nothing here needs to change.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    """Names of the benchmarks in this package."""
    here = str(Path(__file__).parent)
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([here])
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    """Run the benchmark named by ``argv[0]`` with the remaining arguments."""
    names = available()
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in names:
        print(f"usage: python -m bench {{{','.join(names)}}} [ARGS...]", file=sys.stderr)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    module = importlib.import_module(f"bench.bench_{argv[0]}")
    return int(module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
