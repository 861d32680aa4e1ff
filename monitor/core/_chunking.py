"""Working-memory budget: how many rows of a window one chunk may hold."""

from __future__ import annotations

from collections.abc import Iterator

DEFAULT_WORKING_MEMORY_MIB = 64.0

# Blocks of a few MiB stay in cache between the passes over them and leave the rest of
# the budget to the arrays the caller keeps. Chunks beyond this gain nothing: with k=64,
# d=32, 2k-16k-row chunks ran the GEMM and argmin at the same speed, 32k-row chunks no
# faster, 512-row chunks ~15 % slower.
CACHE_BLOCK_BYTES = 4 * 2**20


def chunk_rows(
    n_rows: int, bytes_per_row: int, working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB
) -> int:
    """Largest row count whose temporaries (``bytes_per_row`` each) fit in the budget.

    Never less than one row, never more than ``n_rows`` (at least 1).
    """
    budget = int(working_memory_mib * 2**20)
    rows = budget // max(1, bytes_per_row)
    return max(1, min(max(1, n_rows), rows))


def cache_rows(
    n_rows: int, bytes_per_row: int, working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB
) -> int:
    """Rows per chunk: within the budget and no bigger than a cache-sized block."""
    cache = max(256, CACHE_BLOCK_BYTES // max(1, bytes_per_row))
    return min(chunk_rows(n_rows, bytes_per_row, working_memory_mib), cache)


def iter_slices(n_rows: int, chunk: int) -> Iterator[slice]:
    """Consecutive slices of ``chunk`` rows covering ``range(n_rows)``."""
    for start in range(0, n_rows, chunk):
        yield slice(start, min(n_rows, start + chunk))
