"""Windows whose rows stay on an engine: validation, scaling and samples as block passes.

A spark source's window keeps its rows where Spark read them (``Window.remote``). When
the model's engine reads them there, the pipeline never holds them: the validation is
one counting pass, the scaling a map over blocks, and what is computed here from rows
(the split gain, a new model's seeds, bins, scaler and calibration) reads bounded
uniform samples. For any other engine the rows are collected once and the window is an
ordinary one. Pure: the passes are functions handed to the rows.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.checks import Overflow, find_overflow
from monitor.config import ModelSettings
from monitor.core import drift
from monitor.errors import InvalidValuesError, SchemaError
from monitor.pipeline.scoring import (
    check_enough_rows,
    check_invalid_rows,
    check_schema,
    prepare,
    validate_window,
)
from monitor.ports import Engine
from monitor.records import CountedRows, ReferencePeriod, Scaler, Window

__all__ = ["Rows", "sampled_period", "scaled", "split_rows", "validate"]

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.integer[Any]]
Rows = FloatArray | CountedRows  # a window's validated rows, here or on its engine


def validate(
    window: Window,
    model: ModelSettings,
    engine: Engine | None,
    reference_rows: IntArray | None = None,
    k: int | None = None,
) -> Rows:
    """``validate_window``, on the engine when it can read the window's rows where they are.

    The same checks and the same errors: the columns, the NaN policy (rows with a NaN
    or infinity counted in one pass, then dropped by a map), values whose squares
    overflow (found in the same pass, block by block: a column whose variance overflows
    only across blocks goes unseen), ``min_rows`` (against ``reference_rows``, the live
    model's reference windows' rows, with ``auto``; ``k``, its clusters).
    """
    if window.remote is None:
        return validate_window(window, model, reference_rows, k)
    if engine is None or engine.name != window.remote.engine:
        collected = replace(window, X=window.remote.collect(), remote=None)
        return validate_window(collected, model, reference_rows, k)
    where = check_schema(window, model)
    rows = window.remote
    if rows.n_features != len(model.features):
        raise SchemaError(
            f"{where}: expected {len(model.features)} columns; the rows have {rows.n_features}"
        )
    n, n_bad, per_feature = 0, 0, np.zeros(rows.n_features, dtype=np.int64)
    overflows = []
    for rows_i, bad_i, per_i, overflow_i in rows.summarise(_invalid_counts):
        n, n_bad, per_feature = n + rows_i, n_bad + bad_i, per_feature + per_i
        if overflow_i is not None:
            overflows.append(overflow_i)
    if n_bad:
        check_invalid_rows(n, n_bad, per_feature, model, where)
        rows = rows.map_blocks(_finite_rows)
    if overflows:
        # Blocks come back in the rows' order; a row whose square overflows is shown
        # before a column whose squares only add up beyond the largest float.
        first = next((o for o in overflows if o.rows), overflows[0])
        found = replace(first, rows=sum(o.rows for o in overflows), judged=n - n_bad)
        raise InvalidValuesError(f"{where}: {found.message(model.features, 'squared distances')}")
    check_enough_rows(n - n_bad, model, where, reference_rows, k)
    return CountedRows(rows, n - n_bad)


def _invalid_counts(X: FloatArray) -> tuple[int, int, IntArray, Overflow | None]:
    """A block's rows, rows with a NaN or infinity, such values per feature, and its
    finite rows whose squares overflow."""
    bad = ~np.isfinite(X)
    per_feature = bad.sum(axis=0).astype(np.int64)
    return int(X.shape[0]), int(bad.any(axis=1).sum()), per_feature, find_overflow(X)


def _finite_rows(X: FloatArray) -> FloatArray:
    return X[np.isfinite(X).all(axis=1)]


def scaled(X: Rows, scaler: Scaler, metric: str) -> Rows:
    """``prepare`` the rows, here or as a map over the engine's blocks."""
    if isinstance(X, CountedRows):
        fn = functools.partial(prepare, scaler=scaler, metric=metric)
        return CountedRows(X.rows.map_blocks(fn), X.n)
    return prepare(X, scaler, metric)


def split_rows(Xs: Rows, seed: int) -> FloatArray:
    """The rows the split gain reads: the window, or a sample of as many as it would take."""
    if isinstance(Xs, CountedRows):
        return Xs.rows.sample(drift.SPLIT_ROWS, seed)
    return Xs


def sampled_period(
    parts: Sequence[CountedRows],
    starts: Sequence[float],
    ends: Sequence[float],
    *,
    limit: int,
    seed: int,
    skipped: tuple[str, ...] = (),
) -> ReferencePeriod:
    """A period of windows kept on an engine, as the local training reads one: at most
    ``limit`` rows here, the same share of every window, drawn uniformly; every row stays
    in ``remote`` and each window's count in ``counts``."""
    total = sum(p.n for p in parts)
    share = min(1.0, limit / max(1, total))
    samples = [
        p.rows.sample(p.n if share >= 1.0 else int(p.n * share), seed + i)
        for i, p in enumerate(parts)
    ]
    X = np.concatenate(samples) if len(samples) > 1 else samples[0]
    block = np.concatenate([np.full(s.shape[0], i, dtype=np.intp) for i, s in enumerate(samples)])
    first, *rest = [p.rows for p in parts]
    everything = first.concat(rest) if rest else first
    return ReferencePeriod(
        X=X,
        block=block,
        starts=np.asarray(starts, dtype=np.float64),
        ends=np.asarray(ends, dtype=np.float64),
        skipped=skipped,
        remote=CountedRows(everything, total),
        counts=np.asarray([p.n for p in parts], dtype=np.int64),
    )
