"""Helpers shared by the sources: window bounds, column matching, row timestamps."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.checks import Shown, check_float, is_real, plain_texts, some_names
from monitor.errors import InvalidInputError, SchemaError
from monitor.timestamps import (
    EARLIEST,
    LATEST,
    eight_digit_date,
    format_time,
    out_of_range,
    parse_time,
    seconds_expected,
)

__all__ = [
    "check_bounds",
    "check_times",
    "check_unique",
    "match_columns",
    "parse_timestamps",
    "separator_hint",
]


def check_bounds(start: Any, end: Any, owner: str) -> tuple[float, float]:
    """Validate a window ``[start, end)`` in unix seconds."""
    where = f"{owner}.read_window"
    first = check_float(start, "start", owner=where)
    return first, check_float(end, "end", low=first, low_inclusive=False, owner=where)


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def check_unique(columns: Sequence[str], where: str) -> None:
    """SchemaError naming the columns that a file has more than once."""
    duplicated = sorted(c for c, n in Counter(columns).items() if n > 1)
    if duplicated:
        raise SchemaError(f"{where}: duplicated column(s) {_some(duplicated)}.")


def match_columns(
    columns: Sequence[str],
    features: Sequence[str],
    *,
    allowed_extra: Iterable[str] = (),
    ignore_extra: bool = False,
    where: str,
    named: str = "the model's features",
) -> list[int]:
    """Index in ``columns`` of each feature, in feature order; SchemaError on a mismatch.

    ``named`` says what the features are in the message (a command's option, say).

    The error names the missing columns, the extra ones and, where a missing feature and an
    extra column differ only in case or punctuation, the likely renames.
    """
    check_unique(columns, where)
    index = {c: i for i, c in enumerate(columns)}
    skip = set(allowed_extra)
    missing = [f for f in features if f not in index]
    extra = [c for c in columns if c not in set(features) and c not in skip]
    if not missing and (ignore_extra or not extra):
        return [index[f] for f in features]
    raise SchemaError(
        f"{where}: columns do not match {named} {_some(features)}: "
        f"{_mismatch(missing, extra, ignore_extra)}.{separator_hint(columns)}"
    )


def separator_hint(columns: Sequence[str]) -> str:
    """A hint when the one column read holds the features joined by another separator."""
    if len(columns) != 1:
        return ""
    for name, sep in (("semicolons", ";"), ("tabs", "\t"), ("'|'", "|")):
        if sep in columns[0]:
            return f" The header looks separated by {name}: a CSV file here is separated by commas."
    return ""


def _mismatch(missing: list[str], extra: list[str], ignore_extra: bool) -> str:
    """What differs between the features and the columns, with the likely renames."""
    missing = list(missing)
    reported = [] if ignore_extra else list(extra)
    renamed: list[str] = []
    by_norm = {_normalise(c): c for c in extra}
    for f in list(missing):
        c = by_norm.get(_normalise(f))
        if c is not None:
            renamed.append(f"{f!r} -> {c!r}")
            missing.remove(f)
            if c in reported:
                reported.remove(c)
    if len(missing) == 1 and len(extra) == 1 and not renamed:
        # One column gone and one new column: most likely the same column under a new name.
        renamed.append(f"{missing[0]!r} -> {extra[0]!r}?")
    parts = [f"missing {_some(missing)}"] if missing else []
    parts += [f"renamed {', '.join(renamed)}"] if renamed else []
    if reported:
        parts.append(f"extra {_some(reported)} (set ignore_extra: true to allow extra columns)")
    return "; ".join(parts)


def _some(names: Sequence[str]) -> str:
    """A list of the first few names, quoted, and how many more (``checks.some_names``)."""
    return f"[{some_names(names, repr)}]"


def parse_timestamps(
    values: Sequence[Any],
    where: str,
    positions: tuple[str, Sequence[int]] | None = None,
    *,
    column: str | None = None,
) -> NDArray[np.float64]:
    """Unix seconds of numbers or ISO-8601 strings (naive times are taken as UTC).

    A bad value raises InvalidInputError naming ``where`` and its position: "row i", or
    ``positions = (word, numbers)`` to say e.g. "line 12" for the i-th value. Every time
    is checked against the range ``parse_time`` accepts, with its message. With the
    ``column`` they come from, a column whose every value is eight digits that make a
    date is refused too (``_refuse_digit_dates``).
    """
    seconds = _parse_timestamps(values, where, positions)
    if column is not None:
        _refuse_digit_dates(values, seconds, column, where, positions)
    return seconds


#: The unix seconds eight digits that make a date read as: 1000-01-01 to 9999-12-31.
_DIGIT_DAYS = (10_000_101, 99_991_231)


def _refuse_digit_dates(
    values: Sequence[Any],
    seconds: NDArray[np.float64],
    column: str,
    where: str,
    positions: tuple[str, Sequence[int]] | None,
) -> None:
    """InvalidInputError when every value of a timestamp column is eight digits that make
    a date (``eight_digit_date``): ``20261206`` read as unix seconds was 1970-08-23, in
    no window anyone reads, and a run said only that its data began later. The
    configuration refuses such a time too; written ``20261206.0``, it is seconds."""
    if not seconds.size or seconds.min() < _DIGIT_DAYS[0] or seconds.max() > _DIGIT_DAYS[1]:
        return  # the check of any column of today's times
    if isinstance(values, np.ndarray):  # integers as Parquet stores them; floats are seconds
        if values.dtype.kind not in "iu":
            return
        values = values.tolist()
    first = values[0]
    if any(eight_digit_date(v) is None for v in {*values}):
        return
    digits, day = str(first).strip(), eight_digit_date(first)
    raise InvalidInputError(
        f"{_position(where, positions, 0)}: the timestamp column {column!r} holds {digits}, "
        f"which reads as unix seconds ({format_time(float(seconds[0]))}) and as the ISO-8601 "
        f"date {day}: write the times as ISO-8601 ({day}), or unix seconds as {digits}.0"
    )


def _parse_timestamps(
    values: Sequence[Any], where: str, positions: tuple[str, Sequence[int]] | None
) -> NDArray[np.float64]:
    """``parse_timestamps`` but for the dates of eight digits."""
    # Numbers and plain numeric strings convert in one go; anything else takes the slow
    # path (numpy, like float, would read "1_700_000_000" as a number).
    numeric = isinstance(values, np.ndarray) and values.dtype.kind in "biuf"
    if numeric or plain_texts([v for v in values if isinstance(v, str)]):
        try:
            fast = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            pass
        else:
            # A time in range is finite, so one check does for both. A column that fails
            # it goes down the slow path, which says what is wrong (not finite, range).
            if fast.ndim == 1 and _all_inside(fast):
                return fast
    out = np.empty(len(values), dtype=np.float64)
    cache: dict[str, float] = {}
    for i, v in enumerate(values):
        if is_real(v):
            out[i] = float(v)  # its range is checked below, with every other number's
            continue
        if isinstance(v, str) and v in cache:
            out[i] = cache[v]
            continue
        out[i] = parse_time(v, _position(where, positions, i), hint=True)
        if isinstance(v, str):
            cache[v] = out[i]
    return check_times(out, where, positions, values)


def check_times(
    seconds: NDArray[np.float64],
    where: str,
    positions: tuple[str, Sequence[int]] | None = None,
    written: Sequence[Any] | None = None,
    *,
    dated: bool = False,
) -> NDArray[np.float64]:
    """``seconds`` when every one is a time ``parse_time`` accepts (from 1970 to 9999);
    else its error for the first that is not, with the text ``written`` there if any.

    ``dated``: the times were written as dates (a Parquet timestamp column), so the
    error shows the date, not the unix seconds it was read as, and says nothing of units.
    """
    if _all_inside(seconds):
        return seconds
    with np.errstate(invalid="ignore"):
        inside = (seconds >= EARLIEST) & (seconds < LATEST)  # NaN is outside
    i = int(np.flatnonzero(~inside)[0])
    if dated:
        raise out_of_range(_date_of(float(seconds[i])), _position(where, positions, i))
    text = None if written is None else written[i]
    # As written: an integer (epoch milliseconds in Parquet) is not shown as a float.
    value = text if isinstance(text, (str, int, np.integer)) else float(seconds[i])
    if isinstance(value, np.integer):
        value = int(value)
    raise out_of_range(value, _position(where, positions, i), seconds_expected(float(seconds[i])))


def _date_of(seconds: float) -> Any:
    """The ISO-8601 date of ``seconds``, unquoted in a message; the seconds themselves
    when the calendar has no date for them (before year 1, past year 9999)."""
    try:
        return Shown(format_time(seconds))
    except (ValueError, OverflowError):
        return seconds


def _all_inside(seconds: NDArray[np.float64]) -> bool:
    """Whether every one of ``seconds`` is a time ``parse_time`` accepts, in two passes that
    allocate nothing: a NaN makes the minimum and the maximum NaN, which fail both tests."""
    if not seconds.size:
        return True
    return bool(seconds.min() >= EARLIEST and seconds.max() < LATEST)


def _position(where: str, positions: tuple[str, Sequence[int]] | None, i: int) -> str:
    """Where the i-th value is: "row i + 1" (rows count from 1, the first row of data, as
    people and spreadsheets count them), or the caller's word and number for it."""
    if positions is None:
        return f"{where}, row {i + 1}"
    return f"{where}, {positions[0]} {positions[1][i]}"
