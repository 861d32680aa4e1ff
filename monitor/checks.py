"""The one value-check module: every parameter and option check of the package.

Each check returns the value in its canonical type or raises ``Mismatch``, an
``InvalidInputError`` that carries a ``Problem`` (which field, what was expected, what
came). One problem has two renderings, so the API and the configuration share one
vocabulary of expectations:

- the parameter form of the public API (scikit-learn's shape):
  "The 'n_clusters' parameter of KMeans must be an int in [1, inf). Got 0 instead."
- the configuration form, where the field is a path in the YAML file:
  "models[checkout].k: must be an int in [2, 128]; got 0"

``str(Mismatch)`` is the parameter form; configuration readers catch ``Mismatch`` and
render ``exc.problem.config()``. Public functions check once at their edge; private
helpers then assume valid input.
"""

from __future__ import annotations

import difflib
import itertools
import math
import numbers
import os
import re
import reprlib
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.errors import InvalidInputError
from monitor.redact import MASK, is_secret_name, redact_url

__all__ = [
    "BRIEF_ITEMS",
    "BRIEF_MOST",
    "FEATURE_NAME",
    "FLOAT_DTYPES",
    "MODEL_NAME",
    "SOME_NAMES",
    "Mismatch",
    "Overflow",
    "Problem",
    "RandomStateLike",
    "Shown",
    "brief",
    "brief_text",
    "check_array",
    "check_base_url",
    "check_choice",
    "check_float",
    "check_float_mapping",
    "check_int",
    "check_mapping",
    "check_name",
    "check_random_state",
    "check_real",
    "check_sample_weight",
    "check_str",
    "find_overflow",
    "is_int",
    "is_real",
    "overflow_message",
    "plain_float",
    "plain_texts",
    "problem_of",
    "proven_finite",
    "read_fields",
    "shown_path",
    "some_names",
    "underflow_message",
    "unknown_fields",
]

FLOAT_DTYPES = (np.float64, np.float32)

RandomStateLike = int | np.random.Generator | np.random.RandomState | None

# What a model and a feature may be called: a model name becomes a label value and a
# directory, a feature name a label value and (in the simulator) part of a metric name.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
FEATURE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")


@dataclass(frozen=True)
class Problem:
    """One invalid value: where it is, what it should be, what it was."""

    field: str  # a parameter name ("n_clusters") or a configuration path ("models[a].k")
    expected: str  # completes "must be ...", e.g. "an int in [1, inf)"
    got: Any

    def config(self, prefix: str = "") -> str:
        """The configuration form: "source.regimes: must be an int in [1, 64]; got 0".

        YAML gives None for a field left out and for one left empty (``k:``); a user who
        wrote neither ``None`` nor ``null`` is told that the field is missing or empty.
        """
        where = f"{prefix}.{self.field}" if prefix else self.field
        got = "it is missing or empty" if self.got is None else f"got {brief(_written(self.got))}"
        return f"{where}: must be {self.expected}; {got}"

    def param(self, owner: str | None = None) -> str:
        """The parameter form of the public API."""
        of = f" of {owner}" if owner else ""
        return (
            f"The {self.field!r} parameter{of} must be {self.expected}. "
            f"Got {brief(self.got)} instead."
        )


def _written(value: Any) -> Any:
    """A value as a configuration file wrote it: YAML's unquoted dates and times are
    shown as text ('2024-01-01'), not as Python's datetime.date(2024, 1, 1), and a list
    that parsing made a tuple as the list it was ([], not ())."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


BRIEF_MOST = 120  # characters of a value's repr a message shows in full
BRIEF_ITEMS = 10_000  # items (nested ones too) of a value brief() builds the whole repr of
_END = object()


def brief(value: Any) -> str:
    """``repr(value)`` for a message, its middle left out beyond ``BRIEF_MOST`` characters.

    A value of megabytes (a YAML string, a CSV cell) must not become a line of megabytes
    in a terminal, a log and the run history: its start and its end are shown, and how
    long it was. Nor may it take the work of a line of gigabytes: a value of more than
    ``BRIEF_ITEMS`` items, or one that holds itself, is shown abridged by ``reprlib``.
    """
    if isinstance(value, np.generic):  # numpy 2 writes np.float64(nan): the value is nan
        value = value.item()
    if _holds_more_than(value, BRIEF_ITEMS):
        text, size = reprlib.repr(value), f"more than {BRIEF_ITEMS:,} items"
    else:
        text = repr(value)
        if len(text) <= BRIEF_MOST:
            return text
        # A text's own length, not its repr's (the quotes and escapes are ours).
        length = len(value) if isinstance(value, str | bytes) else len(text)
        size = f"{length} {'bytes' if isinstance(value, bytes) else 'characters'}"
    if len(text) > BRIEF_MOST:
        text = f"{text[:80]}...{text[-20:]}"
    return f"{text} ({size})"


def _holds_more_than(value: Any, most: int) -> bool:
    """Whether the lists, tuples, sets and mappings in ``value`` hold more than ``most``
    items in all; counting stops there, so a value that holds itself, or the same list
    a billion times over, costs ``most`` steps."""
    count = 0
    pending: list[Iterator[Any]] = [iter([value])]
    while pending:
        item = next(pending[-1], _END)
        if item is _END:
            pending.pop()
            continue
        count += 1
        if count > most:
            return True
        if isinstance(item, Mapping):
            pending.append(itertools.chain.from_iterable(item.items()))
        elif isinstance(item, list | tuple | set | frozenset):
            pending.append(iter(item))
    return False


SOME_NAMES = 10  # names (columns, features) a message lists before it counts the rest


def some_names(names: Sequence[Any], show: Callable[[Any], str] = str) -> str:
    """The first ``SOME_NAMES`` of ``names``, each as ``show`` writes it, and how many
    more: a file of 200,000 columns must not make a line of megabytes in a terminal, the
    log, the history and the metrics."""
    shown = ", ".join(show(n) for n in names[:SOME_NAMES])
    more = len(names) - SOME_NAMES
    return f"{shown}, ... and {more:,} more" if more > 0 else shown


def brief_text(text: str) -> str:
    """A message's own text (an error a server or a library returned, a path) as it is
    when it is short and prints as one line, else ``brief(text)``, quoted and escaped: it
    goes into one line of a log, a history and a terminal (a path holding a newline made
    a one-line error two, and could forge a line of its own)."""
    return text if len(text) <= BRIEF_MOST and text.isprintable() else brief(text)


# Characters a path may hold and still be typed bare at a shell (shlex's, and letters of
# every script: a user typed /data/café.csv, not an escape of it).
_BARE_PATH = re.compile(r"[\w@%+=:,./-]+")
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown_path(path: str | os.PathLike[str]) -> str:
    """``path`` in a message as a user types it at a shell: bare (``/data/x.csv``), in
    single quotes when it holds a space or a character a shell reads (``'/data/my
    x.csv'``), and as bash's ``$'...'`` when it holds a control character or a byte that is
    not UTF-8 (``$'/data/x\\n.csv'``, ``$'/data/\\xff.csv'``): one line, and the exact
    name, pasted back. Beyond ``BRIEF_MOST`` characters its middle is left out, and its
    length said."""
    text = os.fspath(path)
    size = ""
    if len(text) > BRIEF_MOST:
        text, size = f"{text[:80]}...{text[-20:]}", f" ({len(os.fspath(path))} characters)"
    if not text.isprintable():
        return f"$'{''.join(_escaped(c) for c in text)}'{size}"
    if _BARE_PATH.fullmatch(text):
        return text + size
    return "'" + text.replace("'", "'\"'\"'") + "'" + size


def _escaped(char: str) -> str:
    """One character of a path inside bash's ``$'...'``."""
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode() kept it
        return f"\\x{code - 0xDC00:02x}"
    return (
        f"\\x{code:02x}"
        if code < 0x80
        else f"\\u{code:04x}"
        if code <= 0xFFFF
        else f"\\U{code:08x}"
    )


class Shown:
    """A value shown in a problem as given text (a redacted URL, a mask, a type's name),
    never the raw one: its repr is the text, unquoted."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text


def _secret_field(field: str) -> bool:
    """Whether a field's own name says it holds a secret (a ``*_file`` holds a path, a
    ``*_env`` the name of an environment variable)."""
    name = field.rsplit(".", 1)[-1].split("[", 1)[0]
    return is_secret_name(name) and not name.endswith(("_file", "_env"))


def _shown(field: str, value: Any) -> Any:
    """An unknown field's value as its problem shows it: masked where its name, or a key
    within it, is a secret's (``redact.is_secret_name``: a password, a token, an
    ``api_key``)."""
    if _secret_field(field) and value is not None:
        return Shown(MASK)
    if isinstance(value, Mapping):
        return {k: _shown(f"{field}.{k}", v) for k, v in value.items()}
    return value


class Mismatch(InvalidInputError):
    """A value is not what its check expects; ``problem`` says which, what and why."""

    def __init__(self, problem: Problem, owner: str | None = None) -> None:
        self.problem = problem
        self.owner = owner
        super().__init__(problem.param(owner))


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


def bytes_text(n: int) -> str:
    """Bytes for people: 2.0 TiB, 512 B."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def bytes_texts(a: int, b: int) -> tuple[str, str]:
    """Two sizes that a message compares, as ``bytes_text`` gives them, or in exact bytes
    (``23,961 B``) when rounded they read the same: "needs 23.4 KiB but holds 23.4 KiB"
    said nothing."""
    shown = bytes_text(a), bytes_text(b)
    if a != b and shown[0] == shown[1]:
        return f"{a:,} B", f"{b:,} B"
    return shown


def plain_float(text: str) -> float:
    """``float(text)`` for a number as files and APIs write one.

    Python's ``float`` also reads ``"1_000"`` (as 1000) and digits of other scripts
    (``"١٢"`` as 12), which no CSV writer or exporter means as numbers: ValueError here.
    """
    if not plain_texts((text,)):
        raise ValueError(f"{brief(text)} is not a plain number")
    return float(text)


def plain_texts(texts: Sequence[str]) -> bool:
    """Whether every string of ``texts`` is free of what ``plain_float`` refuses (a
    check for the fast paths that convert a whole column at once)."""
    joined = "".join(texts)
    return "_" not in joined and joined.isascii()


def _interval(
    low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool
) -> str:
    lb = "(-inf" if low is None else ("[" if low_inclusive else "(") + str(low)
    ub = "inf)" if high is None else str(high) + ("]" if high_inclusive else ")")
    return f"{lb}, {ub}"


def check_int(
    value: Any,
    name: str,
    *,
    low: int | None = None,
    high: int | None = None,
    owner: str | None = None,
) -> int:
    """Return ``value`` as int if it is an integer in ``[low, high]``; raise otherwise."""
    ok = is_int(value)
    ok = ok and not ((low is not None and value < low) or (high is not None and value > high))
    if not ok:
        expected = f"an int in {_interval(low, high, True, True)}"
        raise Mismatch(Problem(name, expected, value), owner)
    return int(value)


def check_float(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    owner: str | None = None,
) -> float:
    """Return ``value`` as float if it is a finite real in the given interval; raise otherwise."""
    ok = is_real(value)
    if ok:
        v = float(value)
        ok = not (low is not None and (v < low or (v == low and not low_inclusive)))
        ok = ok and not (high is not None and (v > high or (v == high and not high_inclusive)))
    if not ok:
        expected = f"a float in {_interval(low, high, low_inclusive, high_inclusive)}"
        raise Mismatch(Problem(name, expected, value), owner)
    return float(value)


def check_real(value: Any, name: str, *, owner: str | None = None, allow_nan: bool = True) -> float:
    """Return ``value`` as float if it is a real number (not bool), inf allowed; raise otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or (not allow_nan and math.isnan(value))
    ):
        what = "a real number other than NaN" if not allow_nan else "a real number"
        raise Mismatch(Problem(name, what, value), owner)
    return float(value)


def check_choice(
    value: Any, name: str, choices: tuple[str, ...], *, owner: str | None = None
) -> str:
    """Return ``value`` if it is one of ``choices``; the error lists the valid ones."""
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise Mismatch(Problem(name, f"one of {{{valid}}}", value), owner)
    return value


def check_str(value: Any, name: str, *, owner: str | None = None, non_empty: bool = False) -> str:
    """Return ``value`` if it is a str (non-empty when asked); raise otherwise."""
    if not isinstance(value, str) or (non_empty and not value):
        raise Mismatch(Problem(name, "a non-empty str" if non_empty else "a str", value), owner)
    return value


def check_mapping(value: Any, name: str, *, owner: str | None = None) -> Mapping[str, Any]:
    """Return ``value`` if it is a mapping; raise otherwise."""
    if not isinstance(value, Mapping):
        raise Mismatch(Problem(name, "a mapping", value), owner)
    return value


def check_name(value: Any, name: str, pattern: re.Pattern[str], *, owner: str | None = None) -> str:
    """Return ``value`` if it is a str that ``pattern`` matches in full; raise otherwise."""
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise Mismatch(Problem(name, f"a name matching {pattern.pattern}", value), owner)
    return value


def check_base_url(value: Any, name: str, *, example: str, owner: str | None = None) -> str:
    """Return ``value`` if it is the base URL of an HTTP service; raise otherwise.

    Base URL: ASCII without spaces, scheme http or https, a host, a port (if any) that is
    a number other than 0, no query and no fragment (paths are appended to it).
    ``example`` completes "an http(s) URL such as ...". The value in the problem has its
    credentials masked.
    """
    expected = f"an http(s) URL such as {example!r}"
    if not isinstance(value, str):
        raise Mismatch(Problem(name, expected, value), owner)
    shown = redact_url(value)
    # HTTP carries a URL as ASCII: a space, a control or a non-ASCII character (write it
    # percent-encoded) failed every request after check-config had accepted it.
    if not all(0x21 <= ord(c) <= 0x7E for c in value):
        raise Mismatch(Problem(name, f"{expected}, in ASCII without spaces", shown), owner)
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        raise Mismatch(Problem(name, expected, shown), owner) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise Mismatch(Problem(name, expected, shown), owner)
    if parts.query or parts.fragment:
        raise Mismatch(Problem(name, "a base URL without a query or a fragment", shown), owner)
    return value


def problem_of(
    check: Callable[..., object], value: Any, name: str, *args: Any, **kwargs: Any
) -> Problem | None:
    """The Problem that ``check(value, name, *args, **kwargs)`` finds; None if it passes."""
    try:
        check(value, name, *args, **kwargs)
    except Mismatch as exc:
        return exc.problem
    return None


def unknown_fields(raw: Mapping[Any, Any], valid: Iterable[str], where: str = "") -> list[Problem]:
    """One Problem per key of ``raw`` that is not in ``valid``, named ``where.key``; a
    value named like a secret is shown masked (fixing the problem never needs it)."""
    names = sorted(valid)
    prefix = f"{where}." if where else ""
    return [
        Problem(f"{prefix}{key}", _omitted(str(key), names), _shown(str(key), raw[key]))
        for key in raw
        if key not in names
    ]


def _omitted(key: str, names: list[str]) -> str:
    """What an unknown field must be: omitted, with the valid names, and first the one a
    typo most likely meant (``difflib``'s ratio of at least 0.75: 'windw', 'Window',
    'refrence'), none when no name is that close."""
    close = difflib.get_close_matches(key.lower(), names, n=1, cutoff=0.75)
    meant = f"did you mean {close[0]!r}? " if close else ""
    return f"omitted (unknown field; {meant}valid: {', '.join(names)})"


def read_fields(
    raw: Mapping[Any, Any],
    names: Iterable[str],
    convert: Mapping[str, Callable[[Any, str], Any]] | None = None,
    where: str = "",
) -> tuple[dict[str, Any], list[Problem]]:
    """The values of the fields ``names`` that ``raw`` sets, and every Problem found.

    A field set to None counts as absent (its default applies). ``convert`` maps a
    field to a check that turns its value into the typed one (a duration string into
    seconds...); a value it refuses is left out and its Problem reported, as is every
    key of ``raw`` that is not in ``names``. Problems name their field ``where.key``.
    """
    names = list(names)
    problems = unknown_fields(raw, names, where)
    values = {k: raw[k] for k in names if raw.get(k) is not None}
    prefix = f"{where}." if where else ""
    for key, check in (convert or {}).items():
        if key in values:
            try:
                values[key] = check(values[key], prefix + key)
            except Mismatch as exc:
                problems.append(exc.problem)
                del values[key]
    return values, problems


def check_float_mapping(value: Any, name: str, *, owner: str | None = None) -> dict[str, float]:
    """Return ``value`` as a dict of str -> float (insertion order kept); raise otherwise."""
    if not isinstance(value, Mapping):
        raise Mismatch(Problem(name, "a mapping of str to float", value), owner)
    out: dict[str, float] = {}
    for key, item in value.items():
        check_str(key, f"{name} key", owner=owner)
        out[key] = check_real(item, f"{name}[{key!r}]", owner=owner)
    return out


# Arrays whose values a caller has already checked, for the duration of a
# ``proven_finite`` block in this thread (or task): ``check_array`` skips their scan.
_PROVEN_FINITE: ContextVar[tuple[NDArray[Any], ...]] = ContextVar("proven_finite", default=())


@contextmanager
def proven_finite(*arrays: NDArray[Any]) -> Iterator[None]:
    """Within the block, ``check_array`` takes these very arrays (the same objects, not
    copies or slices) as free of NaN and infinity and skips the scan.

    For a pipeline that checked a window once and hands it to several public functions,
    each of which would otherwise scan it again (at 1M x 32 float32 about 20 ms a scan
    on this project's machine). The caller must have checked the values (``check_array``
    itself) and must not write to the arrays inside the block. Scoped to the current
    thread or task (a ``ContextVar``) and undone on leaving the block.
    """
    token = _PROVEN_FINITE.set(_PROVEN_FINITE.get() + arrays)
    try:
        yield
    finally:
        _PROVEN_FINITE.reset(token)


def check_array(
    X: ArrayLike,
    *,
    name: str = "X",
    dtype: Any = FLOAT_DTYPES,
    min_samples: int = 1,
    min_features: int = 1,
    allow_nan: bool = False,
    copy: bool = False,
    rows: str = "n_samples",
) -> NDArray[np.floating[Any]]:
    """Return ``X`` as a C-contiguous 2-D float array, or raise a clear error.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    dtype : dtype or tuple of dtypes
        Kept if ``X`` already has one of them; otherwise converted to the first.
    min_samples, min_features : int
        Smallest acceptable shape.
    allow_nan : bool
        When False, any NaN or inf is an error that names the first bad cell.
    rows : str
        What a row is, in the error for a shape that is not 2-D (``n_clusters`` for centres).
    """
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise InvalidInputError(
            f"{name} is a sparse matrix; k-means here needs dense data. "
            f"Convert with {name}.toarray() if it fits in memory."
        )
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} cannot be read as a numeric array: {exc}") from exc
    if arr.dtype.kind == "c":
        raise InvalidInputError(f"{name} has complex values; only real numbers are supported.")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"{name} must be numeric; got dtype {arr.dtype}: {exc}"
            ) from exc
    dtypes = dtype if isinstance(dtype, tuple) else (dtype,)
    target = arr.dtype if arr.dtype in dtypes else np.dtype(dtypes[0])
    if arr.ndim != 2:
        hint = (
            " Reshape 1-D data with reshape(-1, 1) for a single feature or reshape(1, -1) "
            "for a single sample."
        )
        raise InvalidInputError(
            f"{name} must be a 2-D array of shape ({rows}, n_features); got an array of "
            f"shape {arr.shape}.{hint if rows == 'n_samples' else ''}"
        )
    n, d = arr.shape
    if n < min_samples:
        raise InvalidInputError(
            f"{name} has {n} sample(s) of shape {arr.shape}; at least {min_samples} required."
        )
    if d < min_features:
        raise InvalidInputError(
            f"{name} has {d} feature(s) of shape {arr.shape}; at least {min_features} required."
        )
    arr = (
        np.array(arr, dtype=target, order="C", copy=True)
        if copy
        else np.ascontiguousarray(arr, dtype=target)
    )
    if not allow_nan and not any(arr is a for a in _PROVEN_FINITE.get()):
        finite = np.isfinite(arr)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            bad = int((~finite).sum())
            raise InvalidInputError(
                f"{name} contains NaN or infinity: {bad} value(s), the first at row {row}, "
                f"column {col} ({brief(arr[row, col])})."
            )
    return arr


def check_sample_weight(
    sample_weight: ArrayLike | None, n_samples: int, dtype: Any
) -> NDArray[np.floating[Any]]:
    """Return weights of shape (n_samples,) as ``dtype``; ones when None."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    given = np.asarray(sample_weight)
    if given.dtype.kind not in "biuf":
        raise InvalidInputError(f"sample_weight must be numeric; got dtype {given.dtype}.")
    if given.ndim == 0:
        given = np.full(n_samples, given)
    if given.shape != (n_samples,):
        raise InvalidInputError(
            f"sample_weight must have shape ({n_samples},) to match X; got {given.shape}."
        )
    if not np.isfinite(given).all():
        raise InvalidInputError("sample_weight contains NaN or infinity.")
    if (given < 0).any():
        raise InvalidInputError(
            f"sample_weight must be non-negative; got a minimum of {brief(given.min())}."
        )
    if not (given > 0).any():
        raise InvalidInputError("sample_weight must have at least one positive weight.")
    with np.errstate(over="ignore"):
        w = np.ascontiguousarray(given, dtype=dtype)
        total = w.sum(dtype=np.float64)
    if not (np.isfinite(w).all() and np.isfinite(total)):
        raise InvalidInputError(
            f"sample_weight is too large: its sum overflows {np.dtype(dtype).name}; "
            f"scale the weights down (the centres depend only on their ratios)."
        )
    if not (w > 0).any():
        # Positive weights that all round to 0 in X's dtype (float32 below ~1e-45) left
        # no row to sample from: an IndexError deep in the seeding. An error, as for
        # overflow, rather than rescaling them here: each weighted sum reported (inertia,
        # score) would have to undo the scale, and partial_fit's chunks would each get a
        # scale of their own, changing the weights' ratios between chunks.
        raise InvalidInputError(
            f"sample_weight underflows: its positive weights (at most {float(given.max()):g}) are "
            f"all 0 as {np.dtype(dtype).name}; scale the weights up (the centres depend "
            f"only on their ratios)."
        )
    return w


def check_random_state(seed: RandomStateLike) -> np.random.Generator:
    """Turn ``seed`` into a ``numpy.random.Generator`` without touching global state."""
    if isinstance(seed, numbers.Integral) and int(seed) < 0:
        raise InvalidInputError(
            f"The 'random_state' parameter must be a non-negative int; got {int(seed)}."
        )
    if seed is None or isinstance(seed, numbers.Integral):
        return np.random.default_rng(None if seed is None else int(seed))
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.RandomState):
        # Draw a seed from the legacy generator so that its state still advances.
        return np.random.default_rng(int(seed.randint(0, 2**31 - 1)))
    raise InvalidInputError(
        f"The 'random_state' parameter must be None, an int, a numpy Generator or "
        f"RandomState. Got {seed!r} instead."
    )


@dataclass(frozen=True)
class Overflow:
    """Finite rows whose squared distances overflow: how many (0 when no row's does, only
    the sum of a column's squares: its variance), of how many judged, and one value to
    show (feature index): the first such row's largest, or the column's."""

    rows: int
    judged: int
    feature: int
    value: float

    def message(self, features: Sequence[str], units: str) -> str:
        if not self.rows:
            return (
                f"values overflow {units}: the squares of {features[self.feature]} (up to "
                f"{abs(self.value):.3g}) each fit, but over the {self.judged} rows they add "
                "up beyond the largest float; the data is probably in the wrong unit or corrupt"
            )
        return (
            f"values overflow {units}: {self.rows} of {self.judged} rows, e.g. "
            f"{features[self.feature]} = {self.value:.3g}, whose square is beyond the largest "
            "float; the data is probably in the wrong unit or corrupt"
        )


def find_overflow(
    X: ArrayLike, scale: Callable[[NDArray[np.float64]], NDArray[np.floating[Any]]] | None = None
) -> Overflow | None:
    """What ``overflow_message`` reports, as numbers (blocks of one window add up)."""
    values = np.asarray(X)
    if values.ndim != 2 or not values.size:
        return None
    if scale is None and _squares_bounded(values):
        return None  # the common case, in two passes and no copy
    values = values.astype(np.float64, copy=False)
    rows = values[np.isfinite(values).all(axis=1)]
    if not rows.size:
        return None
    with np.errstate(all="ignore"):
        scaled = scale(rows) if scale is not None else rows
        squares = np.einsum("ij,ij->i", scaled, scaled)
        # Only in raw units: a scaler fitted on the rows would have this spread.
        spread_finite = scale is not None or bool(np.isfinite(np.var(rows, axis=0)).all())
    bad = ~np.isfinite(squares)
    if not bad.any() and spread_finite:
        return None
    i = int(np.flatnonzero(bad)[0]) if bad.any() else int(np.abs(rows).max(axis=1).argmax())
    j = int(np.nan_to_num(np.abs(scaled[i]), nan=np.inf, posinf=np.inf).argmax())
    return Overflow(int(bad.sum()), len(rows), j, float(rows[i, j]))


def overflow_message(
    X: ArrayLike,
    features: Sequence[str],
    units: str,
    scale: Callable[[NDArray[np.float64]], NDArray[np.floating[Any]]] | None = None,
) -> str | None:
    """Why the finite rows of ``X`` overflow squared distances, or None when they do not.

    With ``scale`` (a fitted scaler's transform) the rows are judged in its units;
    without, as they are, and a column whose variance overflows counts too (a scaler
    fitted on them would be infinite). ``units`` names what overflows in the message.
    Rows with NaN or infinity are not judged: the NaN policy deals with them.
    """
    found = find_overflow(X, scale)
    return None if found is None else found.message(features, units)


def underflow_message(
    X: ArrayLike, features: Sequence[str] | None = None, spread: float | None = None
) -> str | None:
    """Why the rows of ``X`` are too close together for squared distances, or None.

    Their spread (``spread``, the sum of the column variances, computed when not given)
    below the smallest normal float of X's dtype leaves the squared distances subnormal,
    their digits lost, or 0: every row in one cluster. Above it the underflow loses less
    than the rounding of ``|x|^2 - 2 x.c + |c|^2`` at X's precision, eps times the spread.
    No rescaling answers such rows: the inertia itself is below the smallest float. Rows
    all equal have no distance to lose (the degenerate-data warnings speak of them).
    ``features`` name the columns (None: "column j").
    """
    values = np.asarray(X)
    if values.ndim != 2 or not values.size or values.dtype.kind != "f":
        return None
    tiny = float(np.finfo(values.dtype).tiny)
    if spread is None:
        spread = float(np.var(values, axis=0, dtype=np.float64).sum())
    if spread >= tiny:
        return None
    ranges = np.ptp(values, axis=0).astype(np.float64)
    if not ranges.any():
        return None
    j = int(ranges.argmax())
    name = f"column {j}" if features is None else features[j]
    wider = " or pass float64 rows" if values.dtype == np.float32 else ""
    return (
        f"values too close together for squared distances: {name} spans {ranges[j]:.3g}, "
        f"but the rows' spread (sum of the column variances) {spread:.3g} is below the "
        f"smallest normal {values.dtype.name} {tiny:.3g}, where squares lose their digits "
        f"or become 0; rescale the data{wider}"
    )


def _squares_bounded(values: NDArray[Any]) -> bool:
    """Whether no row's squared norm and no column's variance can overflow: every value
    is at most m in size and 4 m^2 d is finite (a deviation from the mean is at most 2 m).
    False too for a NaN or an infinity, which the exact check then looks at. A dtype
    whose largest value cannot overflow (float32: a window's usual type) needs no pass."""
    if values.dtype.kind == "f":
        with np.errstate(over="ignore"):
            largest = float(np.finfo(values.dtype).max)
            if 4.0 * largest * largest * values.shape[1] <= sys.float_info.max:
                return True
    with np.errstate(invalid="ignore"):
        m = max(abs(float(values.max())), abs(float(values.min())))
    return 4.0 * m * m * values.shape[1] <= sys.float_info.max
