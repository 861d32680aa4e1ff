"""Request bodies in, response bodies out: JSON and NPY, each checked before it is read.

JSON: ``{"rows": [[...], ...], "features": [...], "key": "..."}`` (``features`` and the
key optional; a row may also be an object keyed by feature name). ``null``, ``NaN`` and
``Infinity`` are values that are missing; the model's NaN policy decides about them. A
key given twice in one object is refused: Python's reader would keep the last silently.

NPY: numpy's format, read with ``numpy.lib.format``: the magic, version and header are
parsed first (never with pickles), and the dtype, shape and byte count are checked
before the data is touched; the rows are then a view of the body, copied once to float64.
Parsing a header costs numpy a ``compile`` (about 60 us, more than labelling a row), and
a client sends the same few headers again and again, so parsed headers are remembered
by their bytes (which determine the parse), as are the headers of answers by row count.
"""

from __future__ import annotations

import collections
import functools
import io
import itertools
import json
import math
import re
import tokenize
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.lib import format as npy_format
from numpy.typing import NDArray

from monitor.checks import brief
from monitor.serving._model import Assignment

__all__ = [
    "JSON",
    "NPY",
    "RESPONSE_DTYPE",
    "RequestError",
    "check_json_length",
    "check_npy_length",
    "decode_json",
    "encode_json",
    "encode_npy",
    "json_bytes_cap",
    "json_rows",
    "media_type",
    "npy_rows",
    "response_type",
]

JSON = "application/json"
NPY = "application/x-npy"
#: One record per row of an NPY answer; a row the NaN policy left out has label -1,
#: distance NaN and outlier false.
RESPONSE_DTYPE = np.dtype([("label", "<i8"), ("distance", "<f8"), ("outlier", "?")])
_NPY_HEADER_BYTES = 4096  # a 2-D header is under 128 bytes; numpy's own cap is 10,000
_NPY_MAGIC = b"\x93NUMPY"
_HEADER_CACHE = 256  # distinct request headers remembered (a few per client and batch size)
_headers: dict[bytes, tuple[tuple[int, ...], bool, np.dtype[Any]]] = {}
_NUMBER_TYPES = frozenset({int, float, type(None)})  # bool is not a number here
# JSON's non-standard constants, each always this object: told apart from an overflow.
_CONSTANTS = {"Infinity": float("inf"), "-Infinity": float("-inf"), "NaN": float("nan")}
FloatArray = NDArray[np.float64]


class RequestError(ValueError):
    """A request the API refuses: an HTTP status, a stable code, and one sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def media_type(header: str | None) -> str:
    """``type/subtype`` of a Content-Type or Accept item, lower-case, parameters dropped."""
    return (header or "").split(";", 1)[0].strip().lower()


def _quality(accept: str, kind: str) -> tuple[float, int]:
    """The weight an Accept header gives ``kind`` (RFC 9110, section 12.5.1): the q of
    the most specific media range that matches it (type/subtype, then type/*, then */*),
    with that specificity; (0, -1) when no range matches. A range whose q is not a
    qvalue is left out."""
    major = kind.split("/", 1)[0]
    best = (0.0, -1)
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        media = media.lower()
        rank = {kind: 2, f"{major}/*": 1, "*/*": 0}.get(media)
        if rank is None or rank <= best[1]:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                q = _qvalue(value.strip())
        if q >= 0.0:
            best = (q, rank)
    return best


_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def _qvalue(text: str) -> float:
    """A qvalue (0 to 1, at most three decimals); -1 when it is not one."""
    return float(text) if _QVALUE.fullmatch(text) else -1.0


@functools.lru_cache(maxsize=64)  # clients repeat their Accept header; parsing it is not free
def response_type(accept: str | None) -> str:
    """The format the Accept header weighs highest, NPY or JSON (JSON without a header;
    on a tie, the one named by the more specific range, then JSON); 406 when it accepts
    neither."""
    if not accept:
        return JSON
    npy, json_ = _quality(accept, NPY), _quality(accept, JSON)
    if max(npy[0], json_[0]) <= 0.0:
        raise RequestError(406, "not_acceptable", f"answers are {JSON} or {NPY}; Accept: {accept}")
    return NPY if npy > json_ else JSON


# ------------------------------------------------------------------------------ JSON


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """One JSON object, refused when a key is given twice (which value would count?)."""
    doc = dict(pairs)
    if len(doc) < len(pairs):
        key = next(k for k, n in collections.Counter(k for k, _ in pairs).items() if n > 1)
        raise RequestError(400, "bad_json", f"key {brief(key)} appears more than once in an object")
    return doc


def _beyond_digits(literal: str) -> int | float:
    """An integer literal as ``json`` reads it, but one beyond Python's limit on digits
    (``sys.set_int_max_str_digits``), which ``int`` refuses, read as an infinity of its
    sign: ``json_rows`` then names its row and feature as it does 1e400's."""
    try:
        return int(literal)
    except ValueError:
        return -math.inf if literal.startswith("-") else math.inf


def _parsed(body: bytes) -> Any:
    """The body as ``json`` reads it, duplicate keys refused. ``int`` refuses a literal
    beyond Python's limit on digits with a bare ValueError: such a body is read again
    with a hook (which every integer of it pays for) that names it later, by row."""
    hooks: dict[str, Any] = {
        "object_pairs_hook": _unique_keys,
        "parse_constant": _CONSTANTS.__getitem__,
    }
    try:
        return json.loads(body, **hooks)
    except ValueError as exc:
        if type(exc) is not ValueError:  # JSONDecodeError, UnicodeDecodeError, RequestError
            raise
        return json.loads(body, **hooks, parse_int=_beyond_digits)


def decode_json(body: bytes, key_field: str) -> Mapping[str, Any]:
    """The body as a JSON object with only the fields the API knows."""
    try:
        doc = _parsed(body)
    except RequestError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RequestError(
            400, "bad_json", f"the body must be a JSON object with 'rows'; got {type(doc).__name__}"
        )
    unknown = sorted(set(doc) - {"rows", "features", key_field})
    if unknown:
        valid = ", ".join(sorted({"rows", "features", key_field}))
        raise RequestError(400, "bad_json", f"unknown field {brief(unknown[0])} (valid: {valid})")
    return doc


# The longest JSON body max_rows rows can be (docs/serving.md, "Requests"): parsing holds
# the GIL, so a longer body is refused from its Content-Length, before it is read.
_JSON_VALUE_BYTES = 64  # a float's longest repr (24), its name's quotes, ": ", ", " and a
# pretty-printed line's newline and indentation (up to 8 spaces per level)
_JSON_ROW_BYTES = 32  # a row's brackets, separator, newline and indentation
_JSON_DOC_BYTES = 8192  # the braces, the fields' names, a routing key of 256 escaped chars


@functools.lru_cache(maxsize=64)  # per model and version: a few
def json_bytes_cap(features: tuple[str, ...], max_rows: int) -> int:
    """The most bytes a JSON body of at most ``max_rows`` rows of ``features`` needs:
    each row as an object that names every feature (escaped: the longest form), plus
    one more such row for the ``features`` list."""
    row = _JSON_ROW_BYTES + sum(_JSON_VALUE_BYTES + len(json.dumps(f)) for f in features)
    return _JSON_DOC_BYTES + (max_rows + 1) * row


def check_json_length(length: int, features: tuple[str, ...], max_rows: int) -> None:
    """413 ``too_many_rows`` when a JSON body of ``length`` bytes is longer than
    ``max_rows`` rows can be."""
    cap = json_bytes_cap(features, max_rows)
    if length > cap:
        raise RequestError(
            413,
            "too_many_rows",
            f"a JSON body of {length} bytes is longer than {max_rows} rows (serving.max_rows) "
            f"of the model's {len(features)} features can be: at most {cap} bytes",
        )


def npy_bytes_cap(features: int, max_rows: int) -> int:
    """The most bytes an NPY body of at most ``max_rows`` rows of ``features`` takes:
    the magic and a version 2.0 header length (12 bytes), the longest header read, and
    ``max_rows`` rows of 8-byte values (the widest dtype accepted)."""
    return 12 + _NPY_HEADER_BYTES + max_rows * features * 8


def check_npy_length(length: int, features: int, max_rows: int) -> None:
    """413 ``too_many_rows`` when an NPY body of ``length`` bytes is longer than
    ``max_rows`` rows can be: announced, it would hold the budget of bodies in flight."""
    cap = npy_bytes_cap(features, max_rows)
    if length > cap:
        raise RequestError(
            413,
            "too_many_rows",
            f"an NPY body of {length} bytes is longer than {max_rows} rows (serving.max_rows) "
            f"of the model's {features} features can be: at most {cap} bytes",
        )


def _schema(expected: Sequence[str], got: Any) -> None:
    if not isinstance(got, list) or not all(isinstance(f, str) for f in got):
        raise RequestError(400, "schema", "'features' must be a list of feature names")
    if list(got) == list(expected):
        return
    missing = [f for f in expected if f not in got]
    extra = [f for f in got if f not in expected]
    parts = [f"missing {missing}"] * bool(missing) + [f"unexpected {extra}"] * bool(extra)
    what = ", ".join(parts) or "out of order"
    raise RequestError(400, "schema", f"features {what}: the model reads {list(expected)}")


def _check_count(n: int, max_rows: int) -> None:
    if n == 0:
        raise RequestError(400, "bad_rows", "'rows' is empty: send at least one row")
    if n > max_rows:
        raise RequestError(
            413, "too_many_rows", f"{n} rows in one request; at most {max_rows} (serving.max_rows)"
        )


def _bad_value(rows: list[list[Any]], features: Sequence[str]) -> RequestError:
    """The first value that is not a number or null, named by row and feature."""
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if type(value) not in _NUMBER_TYPES:
                return RequestError(
                    400,
                    "bad_rows",
                    f"row {i}, feature {features[j]!r}: not a number or null: {value!r:.40}",
                )
    return RequestError(400, "bad_rows", "a value cannot be read as a number")


def _listed(rows: list[Any], features: Sequence[str]) -> list[list[Any]]:
    """Rows as lists in the model's feature order (rows given as objects are reordered)."""
    d = len(features)
    kinds = set(map(type, rows))
    if kinds == {list}:
        lengths = set(map(len, rows))
        if lengths != {d}:
            i = next(i for i, row in enumerate(rows) if len(row) != d)
            raise RequestError(
                400,
                "bad_rows",
                f"row {i} has {len(rows[i])} values; the model reads {d} ({', '.join(features)})",
            )
        return rows
    if kinds == {dict}:
        wanted = set(features)
        for i, row in enumerate(rows):
            if row.keys() != wanted:
                missing = sorted(wanted - row.keys())
                extra = sorted(row.keys() - wanted)
                parts = [f"missing {missing}"] * bool(missing) + [f"unexpected {extra}"] * bool(
                    extra
                )
                raise RequestError(400, "schema", f"row {i}: {', '.join(parts)}")
        return [[row[f] for f in features] for row in rows]
    raise RequestError(
        400, "bad_rows", "each row must be a list of numbers or an object of feature: number"
    )


def json_rows(doc: Mapping[str, Any], features: Sequence[str], max_rows: int) -> FloatArray:
    """The rows of a decoded body as a float64 array (n, d); NaN where a value is missing."""
    if "features" in doc:
        _schema(features, doc["features"])
    rows = doc.get("rows")
    if not isinstance(rows, list):
        raise RequestError(400, "bad_rows", "'rows' must be a list of rows")
    _check_count(len(rows), max_rows)
    listed = _listed(rows, features)
    # One pass in C over every value: the types a JSON array can hold, bool excluded.
    if not set(map(type, itertools.chain.from_iterable(listed))) <= _NUMBER_TYPES:
        raise _bad_value(listed, features)
    try:
        out = np.array(listed, dtype=np.float64)
    except (OverflowError, ValueError, TypeError):  # an integer literal beyond float64
        raise _too_large(listed, features) from None
    for i, j in np.argwhere(np.isinf(out)):
        # Python's reader makes a literal beyond float64 (1e400) an infinity, which would
        # read as a missing value; the literal Infinity is one, as the same object always.
        if not any(listed[i][j] is c for c in _CONSTANTS.values()):
            raise _too_large(listed, features, (i, j))
    return out


def _too_large(
    listed: Sequence[Sequence[Any]], features: Sequence[str], at: tuple[int, int] | None = None
) -> RequestError:
    """The error of a number beyond float64, naming its row and feature: ``at``, or the
    first integer that ``float`` refuses."""
    if at is None:
        at = next(
            ((i, j) for i, row in enumerate(listed) for j, v in enumerate(row) if _overflows(v)),
            None,
        )
    where = "a value is" if at is None else f"row {at[0]}, feature {features[at[1]]!r}: a number"
    return RequestError(400, "bad_rows", f"{where} too large for a 64-bit float")


def _overflows(value: Any) -> bool:
    try:
        float(value)
    except OverflowError:
        return True
    return False


# ------------------------------------------------------------------------------- NPY


def _header_end(body: bytes) -> int:
    """Where the header of an NPY body of version 1.0 or 2.0 ends; 0 when it is not one."""
    if body[:6] != _NPY_MAGIC or len(body) < 12 or body[7] != 0 or body[6] not in (1, 2):
        return 0
    start = 10 if body[6] == 1 else 12
    return start + int.from_bytes(body[8:start], "little")


def _npy_header(body: bytes) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """(shape, fortran_order, dtype, data offset) of an NPY body."""
    end = _header_end(body)
    known = _headers.get(body[:end]) if 0 < end <= len(body) else None
    if known is not None:
        return (*known, end)
    shape, fortran, dtype, offset = _parse_npy_header(body)
    if len(_headers) >= _HEADER_CACHE:
        _headers.clear()  # rare: clients send a handful of distinct headers
    _headers[body[:offset]] = (shape, fortran, dtype)
    return shape, fortran, dtype, offset


def _parse_npy_header(body: bytes) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """numpy's own reading of the magic, the version and the header."""
    stream = io.BytesIO(body)
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(
                stream, max_header_size=_NPY_HEADER_BYTES
            )
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(
                stream, max_header_size=_NPY_HEADER_BYTES
            )
        else:
            raise ValueError(f"NPY format version {version[0]}.{version[1]} (1.0 and 2.0 are read)")
    except (ValueError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        raise RequestError(400, "bad_npy", _npy_problem(exc)) from None
    return shape, fortran, dtype, stream.tell()


def _npy_problem(exc: Exception) -> str:
    """numpy's reason, where it names what is wrong; where it passes on the words of
    Python's parser ("malformed node or string on line 1: <ast.Call object at 0x...>",
    exB) or of its tokenizer (a 500), what an NPY header must be."""
    text = " ".join(str(exc).split())  # numpy's header-size reason spans lines
    if isinstance(exc, SyntaxError | tokenize.TokenError) or text.startswith(
        ("malformed node or string", "Cannot parse header")
    ):
        return (
            "the NPY header is not the Python dict literal numpy.save writes "
            "({'descr': ..., 'fortran_order': ..., 'shape': (rows, features)})"
        )
    return f"the body is not an NPY array: {text}"


def npy_rows(body: bytes, features: Sequence[str], max_rows: int) -> FloatArray:
    """The rows of an NPY body as a float64 array (n, d)."""
    shape, fortran, dtype, offset = _npy_header(body)
    if dtype.hasobject or dtype.names is not None or dtype.kind not in "fiu" or dtype.itemsize > 8:
        raise RequestError(
            400,
            "bad_npy",
            f"NPY dtype {dtype.str}: rows must be floats or integers of at most 8 bytes",
        )
    d = len(features)
    if len(shape) != 2 or shape[1] != d:
        raise RequestError(
            400,
            "bad_npy",
            f"NPY shape {shape}: expected (rows, {d}) for features {', '.join(features)}",
        )
    if shape[0] < 0:  # numpy takes any integer: its data size was negative (exB)
        raise RequestError(
            400,
            "bad_npy",
            f"NPY shape {shape}: the row count is negative; expected (rows, {d}) with at "
            "least one row",
        )
    _check_count(shape[0], max_rows)
    need = shape[0] * d * dtype.itemsize
    if len(body) - offset != need:
        raise RequestError(
            400, "bad_npy", f"NPY data is {len(body) - offset} bytes; its header announces {need}"
        )
    data = np.frombuffer(body, dtype=dtype, count=shape[0] * d, offset=offset)
    return data.reshape(shape, order="F" if fortran else "C").astype(np.float64, order="C")


# --------------------------------------------------------------------------- answers


def _full(result: Assignment, valid: NDArray[np.bool_] | None, n: int) -> Assignment:
    """``result`` spread over all ``n`` rows when only the ``valid`` ones were labelled."""
    if valid is None:
        return result
    labels = np.full(n, -1, dtype=np.int64)
    distances = np.full(n, np.nan)
    outliers = np.zeros(n, dtype=bool)
    labels[valid], distances[valid], outliers[valid] = (
        result.labels,
        result.distances,
        result.outliers,
    )
    return Assignment(labels, distances, outliers)


def encode_json(
    head: Mapping[str, Any], result: Assignment, valid: NDArray[np.bool_] | None, n: int
) -> bytes:
    """``head`` (model, version, variant) with the labels, distances and outlier flags."""
    full = _full(result, valid, n)
    labels: list[Any] = full.labels.tolist()
    distances: list[Any] = full.distances.tolist()
    outliers: list[Any] = full.outliers.tolist()
    if valid is not None:
        for i in np.flatnonzero(~valid).tolist():
            labels[i] = distances[i] = outliers[i] = None
    body = {**head, "labels": labels, "distances": distances, "outliers": outliers}
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


@functools.lru_cache(maxsize=_HEADER_CACHE)
def _answer_header(n: int) -> bytes:
    """The NPY header of an answer of ``n`` records."""
    stream = io.BytesIO()
    header = {
        "descr": npy_format.dtype_to_descr(RESPONSE_DTYPE),
        "fortran_order": False,
        "shape": (n,),
    }
    npy_format.write_array_header_1_0(stream, header)
    return stream.getvalue()


def encode_npy(result: Assignment, valid: NDArray[np.bool_] | None, n: int) -> bytes:
    """One ``RESPONSE_DTYPE`` record per row, as an NPY file."""
    full = _full(result, valid, n)
    out = np.empty(n, dtype=RESPONSE_DTYPE)
    out["label"], out["distance"], out["outlier"] = full.labels, full.distances, full.outliers
    return _answer_header(n) + out.tobytes()
