"""Helpers shared by the sources: durations, option problems, column matching, window bounds."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.errors import InvalidInputError, SchemaError

__all__ = [
    "Problem",
    "check_bounds",
    "format_time",
    "is_int",
    "is_real",
    "match_columns",
    "parse_timestamps",
    "unknown_keys",
]


@dataclass(frozen=True)
class Problem:
    """One invalid option: where it is, what it should be, what it was."""

    field: str  # path below the source mapping, e.g. "events[2].kind"
    expected: str  # e.g. "an int in [1, 64]"
    got: Any

    def config(self, prefix: str) -> str:
        """The configuration form: "source.regimes: must be an int in [1, 64]; got 0"."""
        return f"{prefix}.{self.field}: must be {self.expected}; got {self.got!r}"

    def param(self, owner: str) -> str:
        """The parameter form of the house's error messages."""
        return (
            f"The {self.field!r} parameter of {owner} must be {self.expected}. "
            f"Got {self.got!r} instead."
        )


def unknown_keys(raw: Mapping[str, Any], valid: Iterable[str], prefix: str) -> list[str]:
    """One problem per key of ``raw`` that is not in ``valid``."""
    names = sorted(valid)
    listing = ", ".join(names)
    return [
        f"{prefix}.{key}: unknown option; valid options are {listing}"
        for key in raw
        if key not in names
    ]


def is_int(value: Any) -> bool:
    """True for integers (bool excluded)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """True for finite real numbers (bool excluded)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def check_bounds(start: Any, end: Any, owner: str) -> tuple[float, float]:
    """Validate a window ``[start, end)`` in unix seconds."""
    for name, value in (("start", start), ("end", end)):
        if not is_real(value):
            raise InvalidInputError(
                f"The {name!r} parameter of {owner}.read_window must be a finite float "
                f"(unix seconds). Got {value!r} instead."
            )
    if not float(end) > float(start):
        raise InvalidInputError(
            f"The 'end' parameter of {owner}.read_window must be greater than start "
            f"({float(start)!r}). Got {end!r} instead."
        )
    return float(start), float(end)


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def match_columns(
    columns: Sequence[str],
    features: Sequence[str],
    *,
    allowed_extra: Iterable[str] = (),
    ignore_extra: bool = False,
    where: str,
) -> list[int]:
    """Index in ``columns`` of each feature, in feature order; SchemaError on a mismatch.

    The error names the missing columns, the extra ones and, where a missing feature and an
    extra column differ only in case or punctuation, the likely renames.
    """
    duplicated = sorted({c for c in columns if list(columns).count(c) > 1})
    if duplicated:
        raise SchemaError(f"{where}: duplicated column(s) {duplicated}.")
    index = {c: i for i, c in enumerate(columns)}
    skip = set(allowed_extra)
    missing = [f for f in features if f not in index]
    extra = [c for c in columns if c not in set(features) and c not in skip]
    if ignore_extra:
        extra_report: list[str] = []
    else:
        extra_report = extra
    if not missing and not extra_report:
        return [index[f] for f in features]
    renamed: list[str] = []
    by_norm = {_normalise(c): c for c in extra}
    for f in list(missing):
        c = by_norm.get(_normalise(f))
        if c is not None:
            renamed.append(f"{f!r} -> {c!r}")
            missing.remove(f)
            if c in extra_report:
                extra_report.remove(c)
    if len(missing) == 1 and len(extra) == 1 and not renamed:
        # One column gone and one new column: most likely the same column under a new name.
        renamed.append(f"{missing[0]!r} -> {extra[0]!r}?")
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if renamed:
        parts.append(f"renamed {', '.join(renamed)}")
    if extra_report:
        parts.append(f"extra {extra_report}")
    hint = "" if ignore_extra else " (set ignore_extra: true to allow extra columns)"
    raise SchemaError(
        f"{where}: columns do not match the model's features {list(features)}: "
        f"{'; '.join(parts)}{hint if extra_report else ''}."
    )


def parse_timestamps(
    values: Sequence[Any],
    where: str,
    positions: tuple[str, Sequence[int]] | None = None,
) -> NDArray[np.float64]:
    """Unix seconds of numbers or ISO-8601 strings (naive times are taken as UTC).

    A bad value raises InvalidInputError naming ``where`` and its position: "row i", or
    ``positions = (word, numbers)`` to say e.g. "line 12" for the i-th value.
    """
    try:
        # Numbers and numeric strings convert in one go; anything else takes the slow path.
        fast = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    else:
        if fast.ndim == 1 and np.isfinite(fast).all():
            return fast
    out = np.empty(len(values), dtype=np.float64)
    cache: dict[str, float] = {}
    for i, v in enumerate(values):
        if is_real(v):
            out[i] = float(v)
            continue
        at = (
            f"{where}, row {i}"
            if positions is None
            else f"{where}, {positions[0]} {positions[1][i]}"
        )
        if isinstance(v, datetime):
            out[i] = (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
            continue
        if isinstance(v, numbers.Real) and not isinstance(v, bool):
            raise InvalidInputError(f"{at}: timestamp {v!r} is not a finite number.")
        if not isinstance(v, str):
            raise InvalidInputError(f"{at}: timestamp {v!r} is neither a number nor a string.")
        seconds = cache.get(v)
        if seconds is None:
            seconds = _iso_or_number(v, at)
            cache[v] = seconds
        out[i] = seconds
    return out


def _iso_or_number(text: str, where: str) -> float:
    stripped = text.strip()
    try:
        seconds = float(stripped)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
        raise InvalidInputError(f"{where}: timestamp {text!r} is not a finite number.")
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise InvalidInputError(
            f"{where}: timestamp {text!r} is neither unix seconds nor ISO-8601."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_time(seconds: float) -> str:
    """ISO-8601 UTC form of unix seconds, for messages and window labels."""
    spec = "seconds" if float(seconds).is_integer() else "milliseconds"
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")
