"""Windows read from Parquet, CSV and NPY files in a directory.

Two modes. ``window: file`` reads, for a window ``[start, end)``, the newest matching file
whose modification time is before ``end``: one file is one window; with ``time_from:
name`` the time is read from each file's name instead (``name_time``, a strftime-like
format or a regex with a ``time`` group) and the window reads every file whose name
time is in ``[start, end)``, so that history can be replayed. ``window: time_range``
reads every matching file and keeps the rows whose timestamp is in ``[start, end)``; a
file read that way is kept parsed (``_Parsed``) until it changes, so that the many windows
of a reference period, or of a backtest, do not parse it again each. A file that does not
read fails only the windows that hold its rows, by its timestamps read alone; when those
cannot be read either, it fails every window.
Parquet and CSV columns are matched to the features by name; NPY columns by position.
pyarrow is imported only when a Parquet file is read, or a CSV file of plain numbers
(when it is installed: it converts them faster than numpy does).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import fnmatch
import gzip
import io
import itertools
import logging
import math
import os
import re
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.checks import (
    Problem,
    brief,
    bytes_text,
    bytes_texts,
    check_choice,
    is_real,
    plain_float,
    plain_texts,
    problem_of,
    read_fields,
    shown_path,
)
from monitor.durations import check_duration, format_duration
from monitor.errors import (
    ConfigError,
    InvalidInputError,
    NoDataError,
    SchemaError,
    SourceDataError,
    SourceError,
)
from monitor.records import Window
from monitor.sources._common import (
    check_bounds,
    check_times,
    check_unique,
    match_columns,
    parse_timestamps,
    separator_hint,
)
from monitor.timestamps import date_alone, eight_digit_date, format_time, naive_time, parse_time

__all__ = [
    "FORMATS",
    "TIME_FROM",
    "FilesOptions",
    "FilesSource",
    "NameTime",
    "Table",
    "build",
    "options_problems",
    "parse_options",
    "read_table",
]

FORMATS = ("parquet", "csv", "npy")
WINDOW_MODES = ("file", "time_range")
TIME_FROM = ("modified", "name")
# name_time directives -> the text they match; %s is unix seconds.
_DIRECTIVES = {
    "Y": r"\d{4}",
    "m": r"\d{2}",
    "d": r"\d{2}",
    "H": r"\d{2}",
    "M": r"\d{2}",
    "S": r"\d{2}",
    "j": r"\d{3}",
    # Unix seconds of 9 to 11 digits (1973 to 5138), not part of a longer number: the
    # "2" of "metrics-v2-1717200000.npy" was read as a time of 1970.
    "s": r"(?<!\d)\d{9,11}(?:\.\d+)?(?!\d)",
}
_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",  # gzip-compressed; a CSV file is also unzipped by its first bytes
    ".npy": "npy",
}
# Endings of files still being written (editors, downloads, copies, writers that rename
# when done): never read, even with `format` set, which only says how to read the rest.
TEMPORARY_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".inprogress", ".crdownload", "~")
_PARQUET_HINT = "pip install 'kmeans-monitor[parquet]'"

_log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class FilesOptions:
    """Options of the files source (see docs/sources.md)."""

    path: str
    pattern: str = "*"
    format: str | None = None  # None: from each file's extension
    window: str = "file"  # "file" or "time_range"
    timestamp_column: str = "timestamp"
    ignore_extra: bool = False
    max_age: float | None = None  # window: file only; seconds
    time_from: str = "modified"  # window: file only: "modified" or "name"
    name_time: str | None = None  # time_from: name: a strftime-like format or a regex


def parse_options(
    raw: Mapping[str, Any], features: Sequence[str] | None = None
) -> tuple[FilesOptions | None, list[Problem]]:
    """Typed options from a mapping of options, and every problem found.

    With ``features``, a timestamp column that is also a feature is a problem too.
    """
    names = [f.name for f in fields(FilesOptions)]
    values, problems = read_fields(raw, names, {"max_age": check_duration})
    values.setdefault("path", None)  # reported by options_problems as a missing directory
    options = FilesOptions(**values)
    problems += options_problems(options, features)
    return (None, problems) if problems else (options, [])


def options_problems(o: FilesOptions, features: Sequence[str] | None = None) -> list[Problem]:
    """Every problem of ``o``; with ``features``, also a timestamp column among them."""
    found = [
        # No file name holds a NUL: such a path or pattern could only fail every run.
        _unless(
            isinstance(o.path, str) and o.path and "\0" not in o.path, "path", "a directory", o.path
        ),
        _unless(
            isinstance(o.pattern, str)
            and o.pattern
            and "\0" not in o.pattern
            and not os.path.isabs(o.pattern)
            and ".." not in Path(o.pattern).parts,
            "pattern",
            "a glob relative to path that stays inside it, such as '*.parquet'",
            o.pattern,
        ),
        _unless(
            not isinstance(o.pattern, str) or not o.pattern or _matches_files(o.pattern),
            "pattern",
            "a glob that can match a file, not only directories (not '.', '**' or one ending "
            "in '/'): '*.csv', '**/*.parquet'",
            o.pattern,
        ),
        _unread_pattern_problem(o),
        None if o.format is None else problem_of(check_choice, o.format, "format", FORMATS),
        problem_of(check_choice, o.window, "window", WINDOW_MODES),
        _unless(
            isinstance(o.timestamp_column, str) and o.timestamp_column,
            "timestamp_column",
            "a column name",
            o.timestamp_column,
        ),
        _unless(isinstance(o.ignore_extra, bool), "ignore_extra", "true or false", o.ignore_extra),
        _max_age_problem(o),
        *_time_from_problems(o),
    ]
    if features is not None and o.window == "time_range" and o.timestamp_column in features:
        found.append(
            Problem(
                "timestamp_column", "a column that is not one of the features", o.timestamp_column
            )
        )
    return [p for p in found if p is not None]


def _unless(ok: object, field: str, expected: str, got: Any) -> Problem | None:
    return None if ok else Problem(field, expected, got)


def _matches_files(pattern: str) -> bool:
    """Whether a glob can match a file: "." names the directory itself, and a last part
    "**" or a pattern ending in "/" or "/." matches directories only (Path.glob(".")
    raised IndexError, which crashed every run)."""
    parts = Path(pattern).parts
    return bool(parts) and parts[-1] != "**" and not pattern.endswith(("/", "/."))


def _unread_pattern_problem(o: FilesOptions) -> Problem | None:
    """A pattern whose every file would be ignored: one below a hidden directory, or of an
    extension that is not read (``*.parquet.gz``, ``*.csv.bz2``) without ``format``. The
    run found no file and said only that none matched."""
    if not isinstance(o.pattern, str) or not o.pattern or ".." in Path(o.pattern).parts:
        return None  # no pattern, or one that climbs out of path: a problem of its own
    if _hidden(Path(o.pattern)):
        return Problem(
            "pattern",
            "a glob without a part starting with '.' or '_' (such files and directories are "
            "hidden, or being written, and never read)",
            o.pattern,
        )
    name = Path(o.pattern).name.lower()
    if name.endswith(TEMPORARY_SUFFIXES):
        return Problem(
            "pattern",
            f"a glob of finished files (names ending in {', '.join(TEMPORARY_SUFFIXES)} are "
            "being written, and never read)",
            o.pattern,
        )
    suffix = _suffix(name)
    if o.format is not None or suffix in _SUFFIXES or not suffix.replace(".", "").isalnum():
        return None  # a suffix with a wildcard ("data.*") may match readable files
    return Problem(
        "pattern",
        f"a glob of files with an extension that is read ({', '.join(_SUFFIXES)}; no other "
        "compressed files), or format set",
        o.pattern,
    )


def _max_age_problem(o: FilesOptions) -> Problem | None:
    if o.max_age is None:
        return None
    if not (is_real(o.max_age) and o.max_age > 0):
        return Problem("max_age", "a duration > 0", o.max_age)
    return _unless(o.window == "file", "max_age", "omitted unless window is 'file'", _max_age(o))


def _max_age(o: FilesOptions) -> Any:
    """``max_age`` as a problem shows it: a valid one as a duration ('2h'), not its
    seconds; any other as found."""
    age = o.max_age
    if age is not None and is_real(age) and age > 0:
        return format_duration(age)
    return age


def _time_from_problems(o: FilesOptions) -> list[Problem]:
    """Problems of time_from and name_time, which only make sense together."""
    choice = problem_of(check_choice, o.time_from, "time_from", TIME_FROM)
    if choice is not None:
        return [choice]
    if o.time_from == "modified":
        if o.name_time is not None:
            return [Problem("name_time", "omitted unless time_from is 'name'", o.name_time)]
        return []
    found = []
    if o.window != "file":
        found.append(Problem("time_from", "'modified' unless window is 'file'", o.time_from))
    if o.max_age is not None:
        found.append(Problem("max_age", "omitted with time_from: name", _max_age(o)))
    try:
        NameTime(o.name_time)
    except ValueError as exc:
        found.append(Problem("name_time", str(exc), o.name_time))
    return found


#: ISO-8601's basic date (``20240501``) in a name time: a date, never unix seconds.
_BASIC_DATE = re.compile(r"[0-9]{8}")


class NameTime:
    """The time in a file name, by a strftime-like format or a regex with a ``time`` group.

    A format (``%Y%m%dT%H%M%S``, ``%Y-%m-%d_%H%M``, ``%s``) is searched for anywhere in
    the name and read as UTC; a regex (it holds ``(?P<time>``) is searched for and its
    ``time`` group read as unix seconds or ISO-8601 (naive: UTC); eight digits are a
    date (``20240501``), never unix seconds.
    """

    def __init__(self, spec: object) -> None:
        if not isinstance(spec, str) or not spec:
            raise ValueError(
                "a format such as '%Y%m%dT%H%M%S' or a regex with a (?P<time>...) group"
            )
        self.spec = spec
        self._format: str | None = None
        if "(?P<time>" in spec:
            try:
                self._regex = re.compile(spec)
            except re.error as exc:
                raise ValueError(f"a valid regex ({exc})") from None
        else:
            if not re.search(r"%[^%]", spec.replace("%%", "")):
                # Literal text only (a regex whose group is not named "time", say): no name
                # could ever give a time.
                raise ValueError(
                    "a format with at least one directive such as %Y, or a regex with a "
                    "(?P<time>...) group"
                )
            self._format = spec
            self._regex = re.compile(_format_regex(spec))

    def parse(self, name: str) -> float | None:
        """Unix seconds of the first time in ``name``; None when the name holds none.

        Every match is tried, from the left: in ``host-12345678-20240601.csv`` the first
        eight digits are no date (month 56), the second are.
        """
        first = self._first(name)
        return None if first is None else first[1]

    def naive(self, name: str) -> bool:
        """Whether the time ``parse`` reads in ``name`` had no UTC offset and was read as
        UTC: a format's (every directive but ``%s``: they hold none), a regex group's
        ISO-8601 text without one or eight-digit date; False for unix seconds or no time."""
        first = self._first(name)
        if first is None:
            return False
        if self._format is not None:
            return self._format != "%s"
        text = first[0].group("time")
        return naive_time(text) or _BASIC_DATE.fullmatch(text) is not None

    def dates_alone(self) -> bool:
        """Whether the name_time is a format of a date alone (no %H, %M, %S or %s)."""
        return self._format is not None and not re.search(r"%[HMSs]", self._format)

    def date_alone(self, name: str) -> bool:
        """Whether the time ``parse`` reads in ``name`` is a date with no time of day
        (``telemetry-2026-12-01.csv``), read as its midnight UTC: a format without %H, %M,
        %S or %s, or a regex group's ISO-8601 date."""
        first = self._first(name)
        if first is None:
            return False
        if self._format is not None:
            return self.dates_alone()
        text = first[0].group("time")
        return _BASIC_DATE.fullmatch(text) is not None or date_alone(text)

    def _first(self, name: str) -> tuple[re.Match[str], float] | None:
        """The first match in ``name`` that reads as a time, and its unix seconds."""
        pos = 0
        while (match := self._regex.search(name, pos)) is not None:
            seconds = self._read(match, name)
            if seconds is not None:
                return match, seconds
            pos = match.start() + 1
        return None

    def _read(self, match: re.Match[str], name: str) -> float | None:
        text = match.group("time") if self._format is None else match.group(0)
        try:
            if self._format is None:
                if _BASIC_DATE.fullmatch(text):
                    # ISO-8601's basic date, not unix seconds of 1970 to 1973: no file of
                    # telemetry is named by those, and "20240501" read as them was August
                    # 1970, a name time no window would ever read.
                    day = eight_digit_date(text)
                    return None if day is None else parse_time(day, name)
                return parse_time(text, name)
            if self._format == "%s":
                return float(text)
            return datetime.strptime(text, self._format).replace(tzinfo=UTC).timestamp()
        except (ValueError, InvalidInputError):
            return None  # "20241399" matches the digits but is no date


def _format_regex(spec: str) -> str:
    """The regex a name_time format matches; ValueError for a directive it does not know."""
    out = []
    seen: set[str] = set()
    i = 0
    while i < len(spec):
        if spec[i] != "%":
            out.append(re.escape(spec[i]))
            i += 1
            continue
        code = spec[i + 1 : i + 2]
        if code == "%":
            out.append("%")
        elif code in seen:  # strptime cannot read it: every name would fail its run
            raise ValueError(f"a format that has each directive once; %{code} is repeated")
        elif code in _DIRECTIVES and (code != "s" or spec == "%s"):
            out.append(_DIRECTIVES[code])
            seen.add(code)
        else:
            known = " ".join(f"%{c}" for c in _DIRECTIVES)
            raise ValueError(f"a format of the directives {known} (%s alone)")
        i += 2
    return "".join(out)


@dataclass(frozen=True)
class _File:
    path: Path
    format: str
    # (inode, size, mtime_ns, ctime_ns): any write changes it (ctime cannot be set back)
    stamp: tuple[int, int, int, int]
    name_time: float | None = None  # time_from: name

    @property
    def mtime(self) -> float:
        """The modification time, unix seconds."""
        return self.stamp[2] / 1e9


#: Bytes of parsed rows the ``window: time_range`` mode keeps between reads, per source.
PARSED_BYTES = 256 * 2**20

# A parsed file: its rows and times, and why it did not read (no rows, then); per row,
# whether it repeats an earlier row of the file exactly (``_repeats``).
_Rows = tuple[FloatArray, FloatArray, Exception | None, NDArray[np.bool_]]
# A kept file: its stamp, its rows, and the times ``[lo, hi)`` it holds every row of
# (-inf, inf for a whole file; a slice of a file too large for the budget).
_Entry = tuple[tuple[int, int, int, int], _Rows, float, float]


class _Parsed:
    """Parsed files (rows and timestamps, or the times of one that did not read, and
    why) by path, each with the stamp it was read at; the least recently read go first
    beyond ``PARSED_BYTES``. A file whose rows alone exceed the budget is kept in part:
    its rows of a span of time around the window that parsed it (``_slice``), which
    serves every window inside that span. Each parsed file's time span is kept apart
    from its rows, whatever their size, so a window skips the files it cannot reach
    without parsing them again. Files change while the daemon runs, so an entry counts
    only while the file's stamp is the same."""

    def __init__(self) -> None:
        self._entries: dict[Path, _Entry] = {}
        # Per file: its stamp, its first and last row time, and how its times were written
        # (``_time_form``).
        self._spans: dict[Path, tuple[tuple[int, int, int, int], float, float, int]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, f: _File, start: float, end: float) -> _Rows | None:
        """``f``'s kept rows when they hold every row of ``[start, end)``."""
        with self._lock:
            entry = self._entries.get(f.path)
            if entry is None:
                return None
            if entry[0] != f.stamp:
                self._pop(f.path)
                return None
            if not (entry[2] <= start and end <= entry[3]):
                return None  # a slice of a large file that does not reach the window
            self._entries[f.path] = self._entries.pop(f.path)  # the most recently read now
            return entry[1]

    def outside(self, f: _File, start: float, end: float) -> bool:
        """Whether ``f``, unchanged since it was parsed, has no row time in ``[start, end)``
        (False when its span is not known)."""
        span = self._span(f)
        return span is not None and not (span[1] < end and span[2] >= start)

    def newest(self, files: list[_File]) -> float | None:
        """The newest row time of ``files`` that are known unchanged since parsed (None
        when none is, or none has a row)."""
        spans = [self._span(f) for f in files]
        return max((s[2] for s in spans if s is not None and s[2] > -math.inf), default=None)

    def form(self, f: _File) -> int:
        """How ``f``'s times were written (``_time_form``; 0 when unknown or changed)."""
        span = self._span(f)
        return 0 if span is None else span[3]

    def _span(self, f: _File) -> tuple[tuple[int, int, int, int], float, float, int] | None:
        """``f``'s kept span while it is unchanged since parsed (None: unknown or changed)."""
        with self._lock:
            span = self._spans.get(f.path)
        return span if span is not None and span[0] == f.stamp else None

    def keep_only(self, paths: set[Path]) -> None:
        """Let go of the files no longer listed (removed, renamed, rotated out)."""
        with self._lock:
            for path in [p for p in self._entries if p not in paths]:
                self._pop(path)
            for path in [p for p in self._spans if p not in paths]:
                del self._spans[path]

    def put(
        self, f: _File, rows: _Rows, *, form: int = 0, window: tuple[float, float]
    ) -> tuple[float, float] | None:
        """Keep ``f``'s rows, parsed for ``window``: all of them when they fit the budget,
        else those of a span around the window (``_slice``). The span of times kept
        (-inf, inf: all), or None when not even the window's rows fit."""
        ts = rows[1]
        # No time: a span that reaches no window (the times are checked finite when read).
        lo, hi = (float(ts.min()), float(ts.max())) if ts.size else (math.inf, -math.inf)
        kept = (-math.inf, math.inf)
        if _nbytes(rows) > PARSED_BYTES:
            rows, kept = _slice(rows, *window, PARSED_BYTES)
        size = _nbytes(rows)
        with self._lock:
            self._spans[f.path] = (f.stamp, lo, hi, form)
            if size > PARSED_BYTES:
                return None
            self._pop(f.path)  # read twice at once: keep the last
            while self._entries and self._bytes + size > PARSED_BYTES:
                self._pop(next(iter(self._entries)))
            self._entries[f.path] = (f.stamp, rows, *kept)
            self._bytes += size
        return kept

    def _pop(self, path: Path) -> None:
        """Drop ``path``'s entry, if any (the lock held)."""
        entry = self._entries.pop(path, None)
        if entry is not None:
            self._bytes -= _nbytes(entry[1])


def _slice(rows: _Rows, start: float, end: float, budget: int) -> tuple[_Rows, tuple[float, float]]:
    """The rows of a file too large for ``budget`` that a span of time around the window
    ``[start, end)`` holds, in file order, and that span ``[lo, hi)``: at most a quarter
    of the rows the budget holds from before ``start`` (a first run reads its window,
    then the reference period before it), the rest from ``start`` on (a backtest and the
    daemon read later windows next). Windows read in time order then parse the file once
    per three quarters of a budget of rows. The window's own rows are always in (which
    may exceed the budget: ``put`` keeps none then)."""
    X, ts, error, repeats = rows
    fit = max(1, int(budget // max(1.0, _nbytes(rows) / max(1, ts.size))))
    before, after = ts[ts < start], ts[ts >= start]
    back = min(fit // 4, before.size)
    forward = fit - back
    if after.size < forward:  # the budget left after the last row goes to earlier ones
        back, forward = min(fit - after.size, before.size), after.size
    lo, hi = -math.inf, math.inf
    if back < before.size:  # strictly after the (back + 1)-th latest earlier time
        at = before.size - back - 1
        lo = float(np.nextafter(np.partition(before, at)[at], math.inf))
        lo = min(lo, start)
    if forward < after.size:  # before the (forward + 1)-th earliest later time
        hi = max(float(np.partition(after, forward)[forward]), end)
    keep = (ts >= lo) & (ts < hi)
    Xk = X[keep] if len(X) == len(ts) else X  # a file that did not read has no rows
    return (Xk, ts[keep], error, repeats[keep]), (lo, hi)


def _bound(t: float) -> str:
    """A bound of a kept span of times: a time, or the file's first or last row."""
    if math.isinf(t):
        return "its first row" if t < 0 else "its last row"
    return format_time(t)


def _nbytes(rows: _Rows) -> int:
    return rows[0].nbytes + rows[1].nbytes + rows[3].nbytes


#: Mixes a row's 64-bit words into one (an odd constant: multiplying by it is a bijection).
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _repeats(X: FloatArray, ts: FloatArray) -> NDArray[np.bool_]:
    """Per row, whether it repeats an earlier row exactly: its time and every value, bit
    for bit. Rows are hashed in one pass over the columns and sorted by hash; only rows
    of equal hashes are compared, so a file without repeats costs a hash and a sort of
    n integers, once per parse of the file."""
    out = np.zeros(len(ts), dtype=bool)
    if len(ts) < 2:
        return out
    tb = np.ascontiguousarray(ts, dtype=np.float64).view(np.uint64)
    xb = np.ascontiguousarray(X, dtype=np.float64).view(np.uint64)
    h = tb.copy()
    for j in range(xb.shape[1]):
        h ^= xb[:, j]
        h *= _MIX
    ordered = np.sort(h)  # twice as fast as the argsort that only repeats need
    if not (ordered[1:] == ordered[:-1]).any():
        return out
    order = np.argsort(h, kind="stable")  # equal hashes keep the file's order
    i = np.flatnonzero(h[order[1:]] == h[order[:-1]])
    a, b = order[i], order[i + 1]
    out[b[(tb[a] == tb[b]) & (xb[a] == xb[b]).all(axis=1)]] = True
    return out


class FilesSource:
    """A TelemetrySource over a directory of Parquet, CSV or NPY files."""

    def __init__(self, model: str, features: tuple[str, ...], options: FilesOptions) -> None:
        self._model = model
        self._features = tuple(features)
        self._options = options
        self._name = f"files source of model {model!r}"
        self._name_time = NameTime(options.name_time) if options.time_from == "name" else None
        self._parsed = _Parsed()
        self._warned: set[tuple[Path, tuple[int, int, int, int]]] = set()  # files too large

    def read_window(self, start: float, end: float) -> Window:
        """Rows of the window ``[start, end)``, read as the options' ``window`` mode says."""
        start, end = check_bounds(start, end, "FilesSource")
        files = self._list()
        if self._options.window == "time_range" or self._options.time_from == "name":
            self._refuse_gzip_copies(files)  # each window reads every file it reaches
        naive = False
        if self._options.time_from == "name":
            X, label, naive = self._read_named(files, start, end)
        elif self._options.window == "file":
            X, label = self._read_newest(files, end)
        else:
            X, label, naive = self._read_range(files, start, end)
        return Window(
            model=self._model, start=start, end=end, features=self._features, X=X, label=label,
            naive_times=naive,
        )  # fmt: skip

    def close(self) -> None:
        """No file stays open between windows; the parsed files are let go."""
        self._parsed = _Parsed()

    # ------------------------------------------------------------------ listing

    def _list(self) -> list[_File]:
        """Matching files with a known format, sorted by name."""
        root = Path(self._options.path)
        if not root.is_dir():
            raise SourceError(f"{self._name}: {shown_path(root)} is not a readable directory")
        # By device and inode: a file under two names (a symbolic or hard link) is read once.
        out: dict[tuple[int, int], _File] = {}
        ignored = 0
        pattern = self._options.pattern
        if not _matches_files(pattern):
            raise SourceError(
                f"{self._name}: cannot list {shown_path(root)} with the pattern {pattern!r}: it "
                "can match no file, only directories"
            )
        try:
            # In the order of paths, part by part; the tuples compare faster than paths do.
            candidates = sorted(_glob(root, Path(pattern).parts), key=lambda p: p.parts)
        except OSError as exc:
            raise self._unlisted(root, exc) from exc
        except RecursionError:  # a tree some 1,000 directories deep (helper-99)
            raise SourceError(
                f"{self._name}: the directories under {shown_path(root)} are nested too deep to "
                f"walk with the pattern {pattern!r}"
            ) from None
        for path in candidates:
            fmt = None if _hidden(path.relative_to(root)) else _format(path, self._options.format)
            if fmt is None:
                ignored += 1
                continue
            try:
                st = path.stat()
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM) and not os.path.islink(path):
                    # A directory listed but not entered (chmod -R 644): is_symlink() raised
                    # the same error, a traceback on every run (helper-99).
                    denied = OSError(exc.errno, exc.strerror, str(path.parent))
                    raise self._unlisted(root, denied) from exc
                if not os.path.islink(path):  # removed since the listing: not part of this run
                    continue
                raise self._unreadable(path, exc) from exc
            if stat.S_ISDIR(st.st_mode):  # a directory the pattern matches holds no rows
                continue
            if not stat.S_ISREG(st.st_mode):
                raise self._unreadable(path, None)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            named = None if self._name_time is None else self._name_time.parse(path.name)
            if self._name_time is not None and named is None:
                ignored += 1
                continue
            file, seen = _File(path, fmt, stamp, named), out.get((st.st_dev, st.st_ino))
            out[(st.st_dev, st.st_ino)] = file if seen is None else self._one_name(seen, file)
        if ignored:
            _log.debug(
                "%s: ignored %d file(s) hidden, being written, of unknown format or without "
                "a name time",
                self._name,
                ignored,
            )
        return sorted(out.values(), key=lambda f: f.path.parts)

    def _one_name(self, first: _File, then: _File) -> _File:
        """The name a file listed under two is read by: not a symbolic link's (a
        ``latest.csv`` pointing at this hour's file), else the last, as ties in file mode
        go to the last name."""
        kept = first if then.path.is_symlink() and not first.path.is_symlink() else then
        _log.debug(
            "%s: %s and %s are the same file, read once as %s",
            self._name,
            shown_path(first.path),
            shown_path(then.path),
            shown_path(kept.path.name),
        )
        return kept

    def _refuse_gzip_copies(self, files: list[_File]) -> None:
        """A SourceError when a file is listed beside a gzip-compressed copy of it
        (``x.csv`` and ``x.csv.gz``, as ``gzip -k`` leaves them) and a window may read
        both: they may hold the same rows, which would be counted twice, and which of the
        two is the right one only the writer knows."""
        listed = {f.path for f in files}
        for f in files:
            plain = f.path.parent / f.path.name[:-3]
            if f.path.name.lower().endswith(".gz") and plain in listed:
                raise SourceError(
                    f"{self._name}: {shown_path(plain)} and {shown_path(f.path)} are both read "
                    f"and may hold the same rows (a copy compressed with gzip -k?): keep one of "
                    f"them in {shown_path(self._options.path)}; no window reads until then"
                )

    def _unlisted(self, root: Path, exc: OSError) -> SourceError:
        """A directory the pattern reaches that cannot be listed: its files, left out,
        would be read as none (an older file as the newest, in file mode)."""
        directory = exc.filename if exc.filename is not None else str(root)
        where = "" if Path(directory) == root else f" or is moved out of {shown_path(root)}"
        return SourceError(
            f"{self._name}: cannot list or enter the directory {shown_path(directory)} "
            f"({exc.strerror or exc}): the files in it that match {self._options.pattern!r} "
            f"would be left out, so no window reads until it can be listed{where}"
        )

    def _unreadable(self, path: Path, exc: OSError | None) -> SourceError:
        """A matching name that holds no file to read: a symbolic link that leads nowhere
        (``exc``), a named pipe, a device. Its rows, if any, could be in any window: left
        out, a run would read as if they were not there (an older file, in file mode)."""
        why = _not_a_file(path)
        if exc is not None:
            with contextlib.suppress(OSError):
                target = os.readlink(path)
                why = (
                    f"a symbolic link to {shown_path(target)} that leads to no file "
                    f"({exc.strerror})"
                )
        return SourceError(
            f"{self._name}: {shown_path(path)} matches {self._options.pattern!r} but is {why}; "
            f"no window reads until it is fixed or moved out of {shown_path(self._options.path)}"
        )

    def _read_newest(self, files: list[_File], end: float) -> tuple[FloatArray, str]:
        eligible = [f for f in files if f.mtime < end]
        if not eligible:
            raise SourceError(
                f"{self._name}: no file matching {self._options.pattern!r} in "
                f"{shown_path(self._options.path)} was modified before {format_time(end)}"
            )
        # Ties in modification time go to the last name, as a writer's counter would.
        newest = max(eligible, key=lambda f: (f.mtime, f.path.name))
        max_age = self._options.max_age
        if max_age is not None and newest.mtime < end - max_age:
            raise SourceError(
                f"{self._name}: the newest file {shown_path(newest.path.name)} was modified at "
                f"{format_time(newest.mtime)}, more than max_age={max_age:g}s before "
                f"{format_time(end)}"
            )
        X, *_ = self._read(newest, with_timestamps=False)
        return X, f"{newest.path.name} (modified {format_time(newest.mtime)})"

    def _read_named(
        self, files: list[_File], start: float, end: float
    ) -> tuple[FloatArray, str, bool]:
        """Every file whose name time is in ``[start, end)``, in name-time order, the
        window's label, and whether the name times had no offset (``NameTime.naive``)."""
        if end - start < _DAY:
            self._refuse_named_by_date(files, end - start)
        chosen = sorted(
            (f for f in files if f.name_time is not None and start <= f.name_time < end),
            key=lambda f: (f.name_time, f.path.name),
        )
        if not chosen:
            raise NoDataError(
                f"{self._name}: no file matching {self._options.pattern!r} in "
                f"{shown_path(self._options.path)} has a name time ({self._options.name_time}) in "
                f"[{format_time(start)}, {format_time(end)})"
            )
        parts = [self._read(f, with_timestamps=False)[0] for f in chosen]
        names = ", ".join(f.path.name for f in chosen[:3]) + (", ..." if len(chosen) > 3 else "")
        label = f"{len(chosen)} file(s) named in the window: {names}"
        # Name times without an offset are read as UTC, as row times are (helper-112).
        naive = self._name_time is not None and self._name_time.naive(chosen[0].path.name)
        return np.concatenate(parts), label, naive

    def _refuse_named_by_date(self, files: list[_File], window: float) -> None:
        """A window shorter than a day over files named by a date alone: every file of a
        day has its midnight, so a window reads a whole day's files or none. Every run
        fails, naming the first such file, as a timestamp column of dates alone does."""
        name_time = self._name_time
        found = next((f for f in files if name_time and name_time.date_alone(f.path.name)), None)
        if found is None or found.name_time is None:
            return
        raise SourceDataError(
            f"{self._name}: {found.path.name}: the file name's time (name_time "
            f"{self._options.name_time!r}) is a date alone ({format_time(found.name_time)[:10]}, "
            f"no time of day), read as its midnight UTC: a window of {format_duration(window)} "
            f"would get all of a day's files at midnight and no other window any; name the "
            f"files with their time of day, or use a window of 1d or longer"
        )

    def _read_range(
        self, files: list[_File], start: float, end: float
    ) -> tuple[FloatArray, str, bool]:
        """The rows timed in ``[start, end)``, the window's label, and whether some of the
        files they came from had times without an offset (``naive_time``)."""
        parts: list[FloatArray] = []
        repeated: dict[str, int] = {}  # file name -> its rows that repeat an earlier one
        times: list[tuple[str, FloatArray]] = []  # file name, its timed rows in the window
        used, naive = 0, False
        self._parsed.keep_only({f.path for f in files})
        for f in files:
            if self._parsed.outside(f, start, end):
                continue  # parsed before, unchanged, with no row time in the window
            X, ts, error, repeats = self._parsed_rows(f, start, end)
            keep = (ts >= start) & (ts < end)
            if not keep.any():
                continue  # a file that did not read fails only the windows it has rows in
            if error is not None:
                raise type(error)(str(error))  # a new one: windows may be read in threads
            parts.append(X[keep])
            times.append((f.path.name, np.column_stack([ts[keep], X[keep]])))
            if n := int(np.count_nonzero(repeats[keep])):
                repeated[f.path.name] = n
            used += 1
            form = self._parsed.form(f)
            naive = naive or bool(form & _NAIVE)
            if form & _DATES and end - start < _DAY:
                raise self._dates_alone(f, float(ts[keep][0]), end - start)
        d = len(self._features)
        X = np.concatenate(parts) if parts else np.empty((0, d))
        when = f"[{format_time(start)}, {format_time(end)})"
        if repeated:
            _log.warning(
                "%s: %d of the %d rows timed %s repeat an earlier row of their file exactly "
                "(time and values): %s; they are counted as read",
                self._name,
                sum(repeated.values()),
                len(X),
                when,
                ", ".join(f"{name} {n}" for name, n in repeated.items()),
            )
        self._log_shared_times(times, when)
        label = (
            f"rows timed {when} "
            f"from {used} of {len(files)} file(s) matching {self._options.pattern!r}"
        )
        # None read: when their rows stop is the first thing to know (files that stopped
        # weeks ago said only "0 valid rows"; helper-111).
        newest = self._parsed.newest(files) if not used else None
        if newest is not None:
            label += f", whose newest row is at {format_time(newest)}"
        return X, label, naive

    def _log_shared_times(self, times: list[tuple[str, FloatArray]], when: str) -> None:
        """A WARNING when a row of one file of the window repeats one of another exactly,
        time and values (a file copied or rewritten under a second name): every row is
        kept, so the window counts them twice; the count and the first two files."""
        shared, pair = _shared_rows(times)
        if shared:
            _log.warning(
                "%s: %d row(s) timed %s repeat a row of another file exactly (time and "
                "values), first %s and %s; every row is kept (a file copied under a second "
                "name counts twice)",
                self._name,
                shared,
                when,
                shown_path(pair[0]),
                shown_path(pair[1]),
            )

    def _dates_alone(self, f: _File, day: float, window: float) -> SourceDataError:
        """The error of a window shorter than a day that holds rows of a file whose times
        are dates alone: each day's rows would all fall in the window holding its
        midnight, and every other window would hold none (h140 #5). Refused at the first
        window that reads them, which stops a reference period (``SourceDataError``)."""
        return SourceDataError(
            f"{self._name}: {shown_path(f.path)}: the timestamp column "
            f"{self._options.timestamp_column!r} holds dates alone ({format_time(day)[:10]}, "
            f"no time of day), each read as its midnight UTC: a window of "
            f"{format_duration(window)} would get all of a day's rows at midnight and no "
            f"other window any; write each row's time of day, or use a window of 1d or longer"
        )

    def _parsed_rows(self, f: _File, start: float, end: float) -> _Rows:
        """A file's rows and times, parsed once while it is unchanged (a file too large
        for the budget: once per span of time kept, ``_slice``). A file that does not
        read (a cell that is no number, a column too many) has no rows, its times read
        alone and the error, for the windows they reach to raise; when its times cannot
        be read either, the error is raised here: its rows may lie in any window, and
        none may be left out silently."""
        cached = self._parsed.get(f, start, end)
        if cached is not None:
            return cached
        began = time.monotonic()
        try:
            X, read_ts, form = self._read(f, with_timestamps=True)
        except (SourceError, InvalidInputError) as exc:
            ts = self._times_only(f)
            if ts is None:
                raise
            _log.warning("%s; %s", str(exc).rstrip("."), _failing_windows(ts))
            # Kept without its traceback, which holds the frames of the failed parse.
            empty = np.empty((0, len(self._features)))
            rows: _Rows = (empty, ts, type(exc)(str(exc)), np.zeros(len(ts), dtype=bool))
            if not isinstance(exc.__cause__, OSError):  # an I/O error may pass: read again
                self._keep(f, rows, 0, (start, end), time.monotonic() - began)
            return rows
        assert read_ts is not None
        rows = (X, read_ts, None, _repeats(X, read_ts))
        self._keep(f, rows, form, (start, end), time.monotonic() - began)
        return rows

    def _keep(
        self, f: _File, rows: _Rows, form: int, window: tuple[float, float], took: float
    ) -> None:
        """Keep a parsed file; a WARNING, once per file and stamp, when it is too large for
        the budget and only a span of its rows is kept: a window outside that span parses
        it again, which the user can avoid by splitting the file."""
        kept = self._parsed.put(f, rows, form=form, window=window)
        if kept == (-math.inf, math.inf) or (f.path, f.stamp) in self._warned:
            return
        self._warned.add((f.path, f.stamp))
        span = (
            "none of them"
            if kept is None
            else f"only those timed {_bound(kept[0])} to {_bound(kept[1])}"
        )
        _log.warning(
            "%s: %s holds %s of parsed rows, more than the %s kept per model: %s; each "
            "window outside them parses the file again (%.1f s this time): split it into "
            "smaller files (a day or an hour each)",
            self._name,
            shown_path(f.path),
            bytes_text(_nbytes(rows)),
            bytes_text(PARSED_BYTES),
            span,
            took,
        )

    def _times_only(self, f: _File) -> FloatArray | None:
        """The row times of a file that did not read whole, read alone; None when they
        cannot be read either (NPY columns go by position: none is known to be the
        timestamp in a file that does not read)."""
        where = f"{self._name}: {shown_path(f.path)}"
        name = self._options.timestamp_column
        try:
            if f.format == "parquet":
                pa, pq = _pyarrow(where)
                if name not in _parquet_names(pa, pq, f.path, where):
                    return None
                table = _parquet_table(pa, pq, f.path, [name], where)
                return _arrow_timestamps(pa, table.column(name), name, where)
            if f.format == "csv":
                stamps = []
                for header, chunk in _csv_chunks(f.path, where):
                    if name not in header:
                        return None
                    stamps.append(self._csv_times(header, chunk, where))
                return np.concatenate(stamps)
        except Exception:  # whatever it is, the times are unknown: the file's error stands
            return None
        return None

    # ------------------------------------------------------------------ readers

    def _read(
        self, f: _File, *, with_timestamps: bool
    ) -> tuple[FloatArray, FloatArray | None, int]:
        """The file's rows, their times (``with_timestamps``), and how those were written
        (``_time_form``: without an offset and read as UTC, dates alone)."""
        where = f"{self._name}: {shown_path(f.path)}"
        if f.format == "parquet":
            return self._read_parquet(f.path, where, with_timestamps)
        if f.format == "csv":
            return self._read_csv(f.path, where, with_timestamps)
        return self._read_npy(f.path, where, with_timestamps)

    def _match(self, columns: Sequence[str], where: str, with_timestamps: bool) -> list[int]:
        ts = self._options.timestamp_column
        if with_timestamps and ts not in columns:
            raise SchemaError(
                f"{where}: no timestamp column {ts!r}; the columns are {list(columns)}."
                f"{separator_hint(columns)}"
            )
        return match_columns(
            columns,
            self._features,
            allowed_extra=(ts,),
            ignore_extra=self._options.ignore_extra,
            where=where,
        )

    def _read_parquet(
        self, path: Path, where: str, with_timestamps: bool
    ) -> tuple[FloatArray, FloatArray | None, int]:
        pa, pq = _pyarrow(where)
        self._match(_parquet_names(pa, pq, path, where), where, with_timestamps)
        ts_name = self._options.timestamp_column
        columns = list(self._features) + ([ts_name] if with_timestamps else [])
        table = _parquet_table(pa, pq, path, columns, where)
        ts = (
            _arrow_timestamps(pa, table.column(ts_name), ts_name, where)
            if with_timestamps
            else None
        )
        X = np.empty((table.num_rows, len(self._features)))
        for j, name in enumerate(self._features):
            X[:, j] = _arrow_floats(pa, table.column(name), name, where)
        return X, ts, _arrow_form(pa, table.column(ts_name)) if with_timestamps else 0

    def _read_csv(
        self, path: Path, where: str, with_timestamps: bool
    ) -> tuple[FloatArray, FloatArray | None, int]:
        # Converted chunk by chunk: a file held whole as Python strings took 16 times its
        # size (a 1 GB CSV, 16 GB); only the arrays of its columns are kept.
        parts: list[FloatArray] = []
        stamps: list[FloatArray] = []
        index: list[int] = []
        form = 0
        for number, (header, chunk) in enumerate(_csv_chunks(path, where)):
            if number == 0:
                index = self._match(header, where, with_timestamps)
            block = np.empty((len(chunk), len(self._features)))
            for j, i in enumerate(index):
                block[:, j] = chunk.floats(i, header[i], where)
            parts.append(block)
            if with_timestamps:
                stamps.append(self._csv_times(header, chunk, where))
                i = header.index(self._options.timestamp_column)
                this = _time_form(_spread(chunk.cells(i)))
                # Dates alone when every chunk's are; no offset when any chunk's has none.
                form = this if number == 0 else ((form | this) & _NAIVE) | (form & this & _DATES)
        X = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return X, (np.concatenate(stamps) if with_timestamps else None), form

    def _csv_times(self, header: list[str], chunk: _CsvChunk, where: str) -> FloatArray:
        """The times of a chunk of CSV rows; SourceError names a line that has none."""
        i = header.index(self._options.timestamp_column)
        try:
            return parse_timestamps(
                chunk.cells(i),
                where,
                positions=("line", chunk.lines),
                column=self._options.timestamp_column,
            )
        except InvalidInputError as exc:
            raise SourceError(str(exc)) from exc

    def _read_npy(
        self, path: Path, where: str, with_timestamps: bool
    ) -> tuple[FloatArray, FloatArray | None, int]:
        d = len(self._features)
        want = d + 1 if with_timestamps else d
        layout = (
            "the timestamp (unix seconds) then the features, in order"
            if with_timestamps
            else "the features, in order"
        )
        data, stored = _npy_load(path, where)
        if data.shape[1] != want:
            raise SchemaError(
                f"{where}: {data.shape[1]} column(s) where {want} are expected ({layout}: "
                f"{list(self._features)}); NPY columns are matched by position."
            )
        if not with_timestamps:
            return data, None, 0
        ts = data[:, 0].copy()
        if not np.isfinite(ts).all():
            row = int(np.flatnonzero(~np.isfinite(ts))[0])
            raise SourceError(
                f"{where}, row {row + 1}: timestamp {brief(ts[row])} is not a finite number"
            )
        try:
            check_times(ts, where)
        except InvalidInputError as exc:
            raise SourceError(str(exc)) from exc
        _check_time_precision(stored, ts, where)
        return np.ascontiguousarray(data[:, 1:]), ts, 0  # numbers: unix seconds


def _spread(values: Sequence[Any]) -> list[Any]:
    """The first, middle and last of ``values``: the times a file's ``naive_time`` is
    judged by (each file writes its times one way; checking each would parse them twice)."""
    n = len(values)
    return [values[i] for i in sorted({0, n // 2, n - 1})] if n else []


#: How a file's times were written (``_time_form``), as bits: some without a UTC offset
#: (read as UTC), and every one a date alone (read as its midnight).
_NAIVE, _DATES = 1, 2

#: A day in seconds: a window shorter than it cannot read times of dates alone.
_DAY = 86_400.0


def _shared_rows(rows: list[tuple[str, FloatArray]]) -> tuple[int, tuple[str, str]]:
    """How many of ``rows`` (a file's name, its rows with their time as a first column)
    repeat a row of an earlier file exactly (time and values), and the files of the
    first such row and of the row it repeats. One sort of the rows' bytes, whatever the
    number of files."""
    if len(rows) < 2:
        return 0, ("", "")
    both = np.ascontiguousarray(np.concatenate([r for _, r in rows]))
    if not len(both):  # no group to take a maximum of
        return 0, ("", "")
    keys = both.view(np.dtype((np.void, both.dtype.itemsize * both.shape[1]))).ravel()
    _, g = np.unique(keys, return_inverse=True)  # each row's group of equal rows
    g = g.ravel()
    k = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(rows)])
    owner = np.full(int(g.max()) + 1, len(rows))
    np.minimum.at(owner, g, k)  # the earliest file holding each group's row
    repeat = np.flatnonzero(k > owner[g])
    if not repeat.size:
        return 0, ("", "")
    j = int(repeat[0])
    return int(repeat.size), (rows[int(owner[g[j]])][0], rows[int(k[j])][0])


def _time_form(values: Sequence[Any]) -> int:
    """``_NAIVE`` when some of ``values`` (a file's ``_spread``) are ISO-8601 text without
    an offset (``naive_time``), plus ``_DATES`` when every one is a date alone."""
    naive = _NAIVE if any(naive_time(v) for v in values) else 0
    return naive | (_DATES if values and all(date_alone(v) for v in values) else 0)


def _arrow_form(pa: Any, col: Any) -> int:
    """``_time_form`` of an Arrow timestamp column: ``_NAIVE`` for a timestamp type
    without a zone, or of ISO-8601 text as ``_time_form`` says (``_spread``)."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_timestamp(col.type):
        return _NAIVE if col.type.tz is None else 0
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return _time_form([v.as_py() for v in _spread(col)])
    return 0


def _failing_windows(ts: FloatArray) -> str:
    """Which windows a file that does not read fails, by the times of its rows."""
    if not ts.size:
        return "it holds no row, so no window fails for it; it is read again once it changes"
    return (
        f"its {ts.size} row(s) are timed {format_time(float(ts.min()))} to "
        f"{format_time(float(ts.max()))}: the windows that hold them fail, no other; it is "
        "read again once it changes"
    )


def _glob(directory: Path, parts: Sequence[str]) -> Iterator[Path]:
    """The paths below ``directory`` that the glob ``parts`` matches, as ``Path.glob``
    matches them (``**``: this directory and every one below it, symbolic links to
    directories not followed there), hidden directories (``_hidden``) not entered.

    A directory it must look into and cannot is an OSError naming it: ``Path.glob``
    passed it over as empty, and its files were left out without a word.
    """
    part, rest = parts[0], parts[1:]
    if part == "**":
        found = (path for below in _directories(directory) for path in _glob(below, rest))
        # "**/**/x" reaches each directory more than once
        yield from dict.fromkeys(found) if "**" in rest else found
    elif not any(c in part for c in "*?["):  # a name: looked up, not listed
        child = directory / part
        if _exists(child, directory, as_directory=bool(rest)):
            yield from _glob(child, rest) if rest else (child,)
    else:
        for entry in _entries(directory):
            if not fnmatch.fnmatchcase(entry.name, part):
                continue
            child = directory / entry.name
            if not rest:
                yield child
            elif not _hidden(Path(entry.name)) and _exists(child, directory, as_directory=True):
                yield from _glob(child, rest)


def _directories(directory: Path) -> Iterator[Path]:
    """``directory`` and every directory below it, but hidden ones and symbolic links."""
    yield directory
    for entry in _entries(directory):
        if not _hidden(Path(entry.name)) and entry.is_dir(follow_symlinks=False):
            yield from _directories(directory / entry.name)


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of ``directory``; none when it is gone since it was found; an OSError
    naming it when it cannot be listed (no permission, an I/O error)."""
    try:
        with os.scandir(directory) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(directory)) from exc


def _exists(path: Path, parent: Path, *, as_directory: bool) -> bool:
    """Whether ``path`` is there (a directory, a link to one, with ``as_directory``); an
    OSError naming ``parent`` when it cannot be looked up (a directory without the
    permission to enter it)."""
    try:
        mode = (path.stat() if as_directory else path.lstat()).st_mode
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return False  # not there, or a link that leads nowhere (for a directory)
        # A link names itself: its directory lists fine, its target does not (helper-99).
        named = path if os.path.islink(path) else parent
        raise OSError(exc.errno, exc.strerror, str(named)) from exc
    return stat.S_ISDIR(mode) or not as_directory


def _hidden(relative: Path) -> bool:
    """Whether a listed file is hidden: a part of its path below the source's directory
    starts with "." or "_", as Hadoop and Spark name files and directories that are no
    data yet (``_temporary/0/part-0.parquet``, ``.staging/``, ``_SUCCESS``, ``.x.crc``).
    """
    return any(part.startswith((".", "_")) for part in relative.parts)


def _format(path: Path, forced: str | None) -> str | None:
    """The format a listed file is read in: ``forced`` (the ``format`` option), else
    its extension's; None for a file still being written or of an unknown extension."""
    name = path.name.lower()
    if name.endswith(TEMPORARY_SUFFIXES):
        return None
    if forced is not None:
        return forced
    return _SUFFIXES.get(_suffix(name))


def _suffix(name: str) -> str:
    """The extension of a file name that says its format, ``.csv.gz`` as one."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix == ".gz":
        suffix = os.path.splitext(name[: -len(suffix)])[1].lower() + suffix
    return suffix


# --------------------------------------------------------------------------- one file


def _not_a_file(file: Path) -> str:
    """Why ``file``, which is no regular file, cannot be read: what it is instead."""
    try:
        mode = file.stat().st_mode
    except OSError as exc:
        return "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a regular file: save the data to a file first"
    return "a device or socket, not a file"


@dataclass(frozen=True)
class Table:
    """What ``read_table`` read: the columns' names and values, and each column it left
    out (not numbers) with the reason."""

    names: list[str]
    X: FloatArray
    left_out: dict[str, str]


Progress = Callable[[int, int], None]  # (bytes read, bytes in the file)


def read_table(
    path: str | os.PathLike[str],
    features: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Table:
    """Column names and values of one CSV (or gzip-compressed ``.csv.gz``), Parquet or
    NPY file, the format from its extension.

    ``progress`` is called with the bytes of the file read so far (of a gzip-compressed
    CSV file, its compressed bytes; of a Parquet file, those of its row groups read) and
    the file's size: after each chunk of CSV rows, NPY_READ_BYTES of an NPY file, row
    group of a Parquet file.

    With ``features``, those columns in that order (NPY: named by position, the count must
    match); without, every numeric column (NPY: all, named ``x0``, ``x1``, ...), each
    column left out a warning and an entry of ``left_out``.
    Raises SourceError when the file cannot be read, SchemaError when columns are missing.
    """
    file = Path(path)
    where = shown_path(file)
    fmt = _SUFFIXES.get(_suffix(file.name))
    if fmt is None:
        raise InvalidInputError(
            f"{where}: unknown file format {_suffix(file.name)!r}; expected one of "
            f"{sorted(_SUFFIXES)}."
        )
    if not file.is_file():
        raise SourceError(f"{where}: {_not_a_file(file)}")
    wanted = None if features is None else list(features)
    if fmt == "npy":
        data, _ = _npy_load(file, where, progress)
        if wanted is None:
            return Table([f"x{j}" for j in range(data.shape[1])], data, {})
        if data.shape[1] != len(wanted):
            raise SchemaError(
                f"{where}: {data.shape[1]} column(s) where {len(wanted)} are expected "
                f"({wanted}); NPY columns are matched by position."
            )
        return Table(wanted, data, {})
    if fmt == "parquet":
        pa, pq = _pyarrow(where)
        schema = _parquet_schema(pa, pq, file, where)
        left_out: dict[str, str] = {}
        if wanted is None:
            check_unique(schema.names, where)
            wanted = [f.name for f in schema if _arrow_numeric(pa, f.type)]
            for f in schema:
                if f.name not in wanted:
                    _left_out(where, f.name, f"type {f.type}", left_out)
        else:
            match_columns(schema.names, wanted, ignore_extra=True, where=where, named="--features")
        table = _parquet_table(pa, pq, file, wanted, where, progress)
        X = np.empty((table.num_rows, len(wanted)))
        for j, name in enumerate(wanted):
            X[:, j] = _arrow_floats(pa, table.column(name), name, where)
        return Table(wanted, X, left_out)
    return _csv_table(file, where, wanted, progress)


def _csv_table(
    file: Path, where: str, wanted: list[str] | None, progress: Progress | None = None
) -> Table:
    """``read_table`` of a CSV file, chunk by chunk: the ``wanted`` columns, or every
    column of numbers (one that holds text anywhere is left out, and said so)."""
    header: list[str] = []
    kept: dict[int, list[FloatArray]] = {}
    left_out: dict[str, str] = {}
    n_rows = 0
    for number, (header, chunk) in enumerate(_csv_chunks(file, where, progress)):
        if number == 0:
            if wanted is None:
                index = _named_columns(header, where, left_out)
            else:
                index = match_columns(
                    header, wanted, ignore_extra=True, where=where, named="--features"
                )
            kept = {i: [] for i in index}
        for i in list(kept):
            try:
                kept[i].append(chunk.floats(i, header[i], where))
            except SchemaError as exc:  # a column of text (host names, ISO times)
                if wanted is not None:
                    raise
                if len(header) == 1 and (hint := separator_hint(header)):
                    # Semicolons and '.' decimals: one column of text, no field count to differ.
                    raise SchemaError(
                        f"{where}: the header is one column {brief(header[0])}, which holds "
                        f"no numbers.{hint}"
                    ) from None
                _left_out(where, header[i], str(exc).removeprefix(f"{where}, "), left_out)
                del kept[i]
        n_rows += len(chunk)
    names = wanted if wanted is not None else [header[i] for i in kept]
    if not kept:
        return Table(names, np.empty((n_rows, 0)), left_out)
    X = np.column_stack([np.concatenate(parts) for parts in kept.values()])
    return Table(names, X, left_out)


def _named_columns(header: list[str], where: str, left_out: dict[str, str]) -> list[int]:
    """Positions of the CSV columns with a name. A column with an empty header is left
    out, and said so: pandas' ``df.to_csv(path)`` writes its index so, and a row number
    taken as a feature moves every choice of k."""
    named = [i for i, name in enumerate(header) if name]
    check_unique([header[i] for i in named], where)
    if len(named) < len(header):
        unnamed = [i + 1 for i, name in enumerate(header) if not name]
        why = (
            f"column(s) {', '.join(map(str, unnamed))} of the header have no name, as the "
            "index that pandas' df.to_csv(path) writes (index=False leaves it out)"
        )
        _log.warning("%s: %s; left out, --features names the columns", where, why)
        left_out[""] = why
    return named


def _left_out(where: str, name: str, why: str, left_out: dict[str, str]) -> None:
    """Say that a column is not taken as a feature, and note it in ``left_out``: a number
    column with one bad cell must not vanish unseen."""
    _log.warning(
        "%s: column %r left out, not numbers (%s); --features names the columns", where, name, why
    )
    left_out[name] = why


def _npy_load(
    path: Path, where: str, progress: Progress | None = None
) -> tuple[FloatArray, np.dtype[Any]]:
    """A 2-D float64 array from an NPY file, and the dtype the file stores it in;
    SourceError or SchemaError otherwise.

    The header is checked before anything is allocated: a header that announces more
    bytes than the file holds (a truncated file, or a forged shape of terabytes) is
    refused instead of being handed to numpy, which would try to allocate it.
    """
    try:
        with path.open("rb") as fh:
            shape, dtype, fortran = _npy_header(fh)
            holds = os.fstat(fh.fileno()).st_size - fh.tell()
    except (OSError, ValueError, EOFError) as exc:
        raise SourceError(f"{where}: unreadable NPY file: {exc}") from exc
    if len(shape) != 2 or dtype.kind not in "biuf":
        raise SchemaError(
            f"{where}: expected a 2-D numeric array; got shape {shape} of dtype {dtype}."
        )
    need = math.prod(shape) * dtype.itemsize
    if need > holds:
        needs, has = bytes_texts(need, holds)
        raise SourceError(
            f"{where}: unreadable NPY file: its header announces {shape[0]} x {shape[1]} "
            f"values of {dtype} ({needs}) but the file holds {has} "
            "of data (truncated, or not what it claims to be)"
        )
    try:
        if progress is None:
            arr = np.load(path, allow_pickle=False)
        else:
            with path.open("rb") as fh:
                _npy_header(fh)
                arr = _npy_blocks(fh, shape, dtype, fortran, progress)
    except (OSError, ValueError, EOFError) as exc:
        raise SourceError(f"{where}: unreadable NPY file: {exc}") from exc
    return np.ascontiguousarray(arr, dtype=np.float64), dtype


NPY_READ_BYTES = 64 * 2**20  # bytes of an NPY file read between two progress calls


def _npy_blocks(
    fh: Any, shape: tuple[int, ...], dtype: np.dtype[Any], fortran: bool, progress: Progress
) -> NDArray[Any]:
    """The array of an NPY file whose header ``fh`` has read, read NPY_READ_BYTES at a
    time, ``progress`` told the bytes read after each (np.load is one silent call)."""
    flat = np.empty(math.prod(shape), dtype=dtype)
    view = flat.view(np.uint8).data  # the bytes readinto fills
    size = os.fstat(fh.fileno()).st_size
    done = 0
    while done < len(view):
        n = fh.readinto(view[done : done + NPY_READ_BYTES])
        if not n:
            raise EOFError("the file ends before its data does")
        done += n
        progress(fh.tell(), size)
    return flat.reshape(shape, order="F" if fortran else "C")


def _check_time_precision(stored: np.dtype[Any], ts: FloatArray, where: str) -> None:
    """SchemaError when times were stored as floats too narrow for whole seconds: a
    float32 holds a time of 2024 to the nearest 128 s, which moves rows into the wrong
    windows without a word."""
    if stored.kind != "f" or stored.itemsize >= 8 or not ts.size:
        return
    step = float(np.spacing(stored.type(np.abs(ts).max())))
    if step > 1:
        raise SchemaError(
            f"{where}: timestamps stored as {stored} are rounded to {step:g} s at these "
            "times, which moves rows between windows; store them as float64 or int64."
        )


def _npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype[Any], bool]:
    """The shape, dtype and Fortran order an NPY header announces; ValueError when it is
    not one."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:  # 3.0 only differs for structured dtypes, which are no table of numbers
        raise ValueError(f"NPY format version {version} holds no 2-D numeric array")
    return tuple(int(n) for n in shape), dtype, bool(fortran)


CSV_CHUNK_ROWS = 65_536  # rows of a CSV file held as text at once
_GZIP_MAGIC = b"\x1f\x8b"


def _csv_chunks(
    path: Path, where: str, progress: Progress | None = None
) -> Iterator[tuple[list[str], _CsvChunk]]:
    """The header, and the data rows of a CSV file with the line number of each, at most
    CSV_CHUNK_ROWS rows at a time (one chunk, maybe empty, at least); ``progress`` hears
    the bytes read before each chunk is handed on.

    A chunk of plain lines (``_plain_chunk``: no quotes, blank lines or ragged rows) is
    converted by ``np.loadtxt``; any other is read by Python's csv module, as every chunk
    was: its rows, values and errors are the same either way (docs/decisions.md).
    """
    try:
        # A byte order mark is no part of a name.
        with _csv_bytes(path) as data, io.TextIOWrapper(data, "utf-8-sig", newline="") as fh:
            said = _said(data, progress)
            feed = _LineFeed(fh)
            reader = csv.reader(feed)
            records = _csv_records(reader, where, feed)
            first = next(records, None)
            if first is None:
                raise SourceError(f"{where}: empty CSV file (no header line)")
            header = [h.strip() for h in first[2]]
            _check_header(header, where)
            sent = False
            while batch := feed.take(CSV_CHUNK_ROWS):
                start = feed.fast + reader.line_num + 1
                chunk = _plain_chunk(batch, len(header), start)
                if chunk is None:
                    feed.give_back(batch)
                    chunk = _csv_rows(records, header, first[2][0], where)
                else:
                    feed.fast += len(batch)
                said()
                yield header, chunk
                sent = True
            if not sent:
                said()
                yield header, _CsvChunk([], rows=[])
    except UnicodeDecodeError as exc:
        # The decoder reads ahead of the parser: its position is within its buffer.
        raise SourceError(f"{where}: unreadable CSV file: {_not_utf8(path, exc)}") from exc
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # only gzip raises these
        raise SourceError(f"{where}: unreadable gzip-compressed CSV file: {exc}") from exc
    except OSError as exc:
        raise SourceError(f"{where}: unreadable CSV file: {exc}") from exc


def _csv_rows(
    records: Iterator[tuple[int, int, list[str]]], header: list[str], first: str, where: str
) -> _CsvChunk:
    """Up to CSV_CHUNK_ROWS rows read by the csv module, blank lines skipped; a row of
    another field count than the header's is an error that says where."""
    rows: list[list[str]] = []
    lines: list[int] = []  # where each row starts: a quoted field may span lines
    for line, last, row in records:
        if not row:
            continue
        if len(row) != len(header) and (hint := separator_hint(header)):
            # Decimal commas split a row of another separator into fields.
            raise SchemaError(
                f"{where}, line {line}: the header is one column {brief(first)} "
                f"and this row has {len(row)} fields.{hint}"
            )
        if len(row) != len(header):
            # A quote left open runs to the end of the file: say where it opened.
            span = f" (a quoted field runs to line {last})" if last > line else ""
            raise SourceError(
                f"{where}, line {line}{span}: {len(row)} field(s) where the "
                f"header has {len(header)} (truncated or malformed file)"
            )
        rows.append(row)
        lines.append(line)
        if len(rows) == CSV_CHUNK_ROWS:
            break
    return _CsvChunk(lines, rows=rows)


class _LineFeed:
    """The lines of a CSV text for ``csv.reader``, ahead of which ``take`` reads a batch
    of lines to convert at once, and ``give_back`` returns the batch it could not.
    ``fast`` counts the lines converted without the reader (its ``line_num`` the rest)."""

    def __init__(self, fh: io.TextIOWrapper) -> None:
        self._fh = fh
        self._back: list[str] = []  # lines given back, last first
        self.fast = 0

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        return self._back.pop() if self._back else next(self._fh)

    def take(self, n: int) -> list[str]:
        batch = self._back[::-1][:n]
        del self._back[len(self._back) - len(batch) :]
        batch.extend(itertools.islice(self._fh, n - len(batch)))
        return batch

    def give_back(self, batch: list[str]) -> None:
        self._back.extend(reversed(batch))


def _said(data: io.BufferedReader | gzip.GzipFile, progress: Progress | None) -> Callable[[], None]:
    """A call that tells ``progress`` how far into its file ``data`` has read: the
    position of the file on disk, which a gzip stream reads through."""
    raw: Any = data.fileobj if isinstance(data, gzip.GzipFile) else data
    if progress is None or raw is None:
        return lambda: None
    size = os.fstat(raw.fileno()).st_size
    return lambda: progress(min(raw.tell(), size), size)


def _check_header(header: list[str], where: str) -> None:
    """A first line of numbers is data, not names (np.savetxt writes no header): read as
    the header, that row was lost and its numbers named the columns. The names pandas
    gives unnamed columns (0, 1, ...) are names."""
    if header == [str(j) for j in range(len(header))]:
        return
    for name in header:
        try:
            plain_float(name)
        except ValueError:
            return
    raise SourceError(
        f"{where}, line 1: every field is a number ({brief(','.join(header))}): the file "
        "seems to have no header row; a CSV needs a first line naming its columns"
    )


def _csv_records(reader: Any, where: str, feed: _LineFeed) -> Iterator[tuple[int, int, list[str]]]:
    """Each record of a ``csv.reader`` with the lines it starts and ends on. A record
    that does not parse is a SourceError naming the line where it starts (and how far
    a quoted field left open ran): a field longer than Python's csv reads, the only
    error of its default dialect, says the limit.

    The limit (``csv.field_size_limit``, 131,072 characters) is kept: no number is that
    long, and it stops a quote left open from taking the rest of a large file into one
    field in memory.
    """
    while True:
        last = feed.fast + reader.line_num  # the lines read so far
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line, last = last + 1, feed.fast + reader.line_num
            span = f" (a quoted field runs to line {last} at least)" if last > line else ""
            why = str(exc)
            if why.startswith("field larger than field limit"):
                limit = csv.field_size_limit()
                why = f"a field longer than {limit:,} characters, the most one CSV field may hold"
            raise SourceError(f"{where}, line {line}{span}: {why}") from exc
        line, last = last + 1, feed.fast + reader.line_num
        yield line, last, row


@contextlib.contextmanager
def _csv_bytes(path: Path) -> Iterator[io.BufferedReader | gzip.GzipFile]:
    """The bytes of a CSV file, unzipped when it is gzip-compressed: its first two bytes
    say so, and no UTF-8 text starts with them (0x8B starts no character)."""
    with path.open("rb") as raw:
        if raw.peek(2)[:2] != _GZIP_MAGIC:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw) as unzipped:
            yield unzipped


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> str:
    """Where the file stops being UTF-8: the line and the byte offset of the first bad byte
    (of the unzipped text, for a gzip-compressed file)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = offset = 0
    with contextlib.suppress(OSError, EOFError, zlib.error), _csv_bytes(path) as fh:
        while block := fh.read(2**20):
            pending = len(decoder.getstate()[0])  # bytes of a character the last block cut
            try:
                decoder.decode(block)
            except UnicodeDecodeError as bad:
                at = max(0, bad.start - pending)
                line = lines + block[:at].count(b"\n") + 1
                return f"line {line} (byte {offset + at}) is not UTF-8 text: {bad.reason}"
            lines += block.count(b"\n")
            offset += len(block)
    return str(exc)


def _parquet_schema(pa: Any, pq: Any, path: Path, where: str) -> Any:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{where}: unreadable Parquet file: {exc}") from exc


def _parquet_names(pa: Any, pq: Any, path: Path, where: str) -> list[str]:
    return list(_parquet_schema(pa, pq, path, where).names)


def _parquet_table(
    pa: Any, pq: Any, path: Path, columns: list[str], where: str, progress: Progress | None = None
) -> Any:
    """The ``columns`` of a Parquet file; with ``progress``, read a row group at a time
    and told the bytes of the row groups read so far (pq.read_table is one silent call)."""
    try:
        if progress is None:
            return pq.read_table(path, columns=columns)
        with pq.ParquetFile(path) as pf:
            size = path.stat().st_size
            meta, parts, done = pf.metadata, [], 0
            for i in range(pf.num_row_groups):
                parts.append(pf.read_row_group(i, columns=columns))
                group = meta.row_group(i)
                done += sum(group.column(j).total_compressed_size for j in range(group.num_columns))
                progress(min(done, size), size)
            if not parts:
                return pq.read_table(path, columns=columns)
            return pa.concat_tables(parts)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{where}: unreadable Parquet file: {exc}") from exc


def _arrow_numeric(pa: Any, t: Any) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _arrow_floats(pa: Any, col: Any, name: str, where: str) -> FloatArray:
    """Float64 values of a numeric Arrow column; nulls become NaN."""
    if not _arrow_numeric(pa, col.type):
        raise SchemaError(f"{where}: column {name!r} has type {col.type}; expected numbers.")
    if col.null_count == 0 and pa.types.is_float64(col.type):
        return np.asarray(col.to_numpy(), dtype=np.float64)  # no cast, no null pass
    # Nulls become NaN: missing values are for the pipeline's value policy to judge. An
    # integer beyond 2**53 is rounded, as a CSV cell of its digits is: Arrow's safe cast
    # would refuse the whole file.
    floats = _to_float64(pa, col)
    return np.asarray(floats.fill_null(float("nan")).to_numpy(), dtype=np.float64)


def _to_float64(pa: Any, col: Any) -> Any:
    """A numeric Arrow column cast to float64, large integers rounded."""
    return col.cast(pa.float64(), safe=False)


def _pyarrow(where: str) -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, imported on first use."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise SourceError(
            f"{where}: reading Parquet needs pyarrow, which is not installed: {_PARQUET_HINT}"
        ) from exc
    return pa, pq


def _arrow_timestamps(pa: Any, col: Any, name: str, where: str) -> FloatArray:
    """Unix seconds of the Arrow column ``name`` of numbers, timestamps or ISO-8601
    strings."""
    if pa.types.is_dictionary(col.type):  # a categorical column (pandas writes them)
        col = col.cast(col.type.value_type)
    t = col.type
    if col.null_count:
        raise SourceError(f"{where}: {col.null_count} row(s) have no timestamp")
    text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if not (pa.types.is_timestamp(t) or _arrow_numeric(pa, t) or text):
        raise SchemaError(
            f"{where}: timestamp column has type {t}; expected unix seconds or ISO-8601."
        )
    try:
        if pa.types.is_timestamp(t):
            per_second = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
            # Naive timestamps are taken as UTC, like naive ISO strings.
            seconds = col.cast(pa.int64()).to_numpy().astype(np.float64) / per_second
            return check_times(seconds, where, dated=True)
        values: Any
        if text:
            values = col.to_pylist()
        elif pa.types.is_integer(t):  # as stored: eight digits of a date are told apart
            values = col.to_numpy()
        else:
            values = _to_float64(pa, col).to_numpy()
        times = parse_timestamps(values, where, column=name)
    except InvalidInputError as exc:
        raise SourceError(str(exc)) from exc
    if pa.types.is_floating(t):
        _check_time_precision(np.dtype(t.to_pandas_dtype()), times, where)
    return times


# The spellings of a missing value that pandas' read_csv takes by default (its
# STR_NA_VALUES), beyond the empty cell and what float() reads as NaN ('nan', 'NaN',
# '-nan'): R's write.csv writes NA, many exports null or None.
MISSING_CELLS = frozenset(
    {"NA", "N/A", "n/a", "NULL", "null", "None", "<NA>", "#N/A", "#N/A N/A", "#NA"}
    | {"-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN"}
)


def _csv_column(cells: list[str], name: str, lines: Sequence[int], where: str) -> FloatArray:
    """Floats of a column's cells; empty cells and MISSING_CELLS are NaN; SchemaError names
    a non-number cell (the column is not one of numbers, as a Parquet column of strings is
    not)."""
    if plain_texts(cells):
        try:
            return np.array(cells, dtype=np.float64)
        except ValueError:
            pass
    out = np.empty(len(cells))
    for k, cell in enumerate(cells):
        text = cell.strip()
        if not text or text in MISSING_CELLS:
            out[k] = np.nan
            continue
        try:
            out[k] = plain_float(text)
        except ValueError:
            raise SchemaError(
                f"{where}, line {lines[k]}: column {name!r} holds {brief(cell)}, not a number"
            ) from None
    return out


@dataclass
class _CsvChunk:
    """Rows of a CSV file: as the csv module read them (``rows``), or plain lines
    (``texts``) whose columns ``at`` holds ``block`` converted."""

    lines: Sequence[int]  # the line each row starts on
    rows: list[list[str]] | None = None
    texts: list[str] | None = None
    block: FloatArray | None = None
    at: dict[int, int] = field(default_factory=dict)  # column -> column of block

    def __len__(self) -> int:
        return len(self.lines)

    def cells(self, i: int) -> list[str]:
        """The text of column ``i``."""
        if self.rows is not None:
            return [r[i] for r in self.rows]
        return [t.split(",", i + 1)[i] for t in self.texts or []]

    def floats(self, i: int, name: str, where: str) -> FloatArray:
        """The numbers of column ``i``, as ``_csv_column`` reads them."""
        if self.block is not None and i in self.at:
            return self.block[:, self.at[i]]
        return _csv_column(self.cells(i), name, self.lines, where)


# What a line of plain numbers holds: printable ASCII and tabs; no quote (a field may
# hold a comma or a line), no '_' (float() reads 1_000, np.loadtxt does not), no control
# character (np.loadtxt strips some that float() refuses), no CR but in CRLF.
_PLAIN_BYTES = bytes(sorted(set(range(32, 127)) - set(b'"_'))) + b"\t\n"


def _plain_chunk(batch: list[str], width: int, start: int) -> _CsvChunk | None:
    """The lines of ``batch`` (lines ``start`` on) as a chunk of ``width`` fields each,
    the columns whose first cell is a number converted at once; None when the csv module
    must read them: a quote, a blank line, a ragged row, a lone CR, a line longer than
    the csv module's field limit.

    A chunk of digits, signs, points and exponents alone is converted by pyarrow when it
    is installed (``_arrow_block``); any other, or without pyarrow, by ``np.loadtxt``,
    which reads a cell as float() does (both strip whitespace and call Python's
    PyOS_string_to_double) on what ``_PLAIN_BYTES`` lets through. A cell that neither
    reads (NA, a time) sends its chunk to the column-by-column path.
    """
    text = "".join(batch)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    raw = text.encode("ascii") if text.isascii() else b"\r"
    if raw.translate(None, _PLAIN_BYTES):
        return None  # a byte other than those (a regular expression took 40 times longer)
    texts = (text[:-1] if text.endswith("\n") else text).split("\n")
    if len(texts) != len(batch) or any(t.count(",") != width - 1 or not t for t in texts):
        return None
    if max(map(len, texts)) > csv.field_size_limit():  # the csv module says where
        return None
    chunk = _CsvChunk(range(start, start + len(texts)), texts=texts)
    if not raw.translate(None, _NUMBER_BYTES):
        block = _arrow_block(raw, len(texts), width)
        if block is not None:
            chunk.block, chunk.at = block, {j: j for j in range(width)}
            return chunk
    numbers = [j for j, cell in enumerate(texts[0].split(",")) if _is_float(cell)]
    if numbers:
        try:
            block = np.loadtxt(
                texts, dtype=np.float64, delimiter=",", comments=None, usecols=numbers, ndmin=2
            )
        except ValueError:
            return chunk
        if block.shape == (len(texts), len(numbers)):
            chunk.block, chunk.at = block, {i: j for j, i in enumerate(numbers)}
    return chunk


# The bytes of a chunk pyarrow converts: no letters (it reads nan(1) and more spellings
# of inf than float() does), no whitespace (it does not strip it). On these its numbers
# are float()'s to the bit (tests/sources/test_csv_fast.py).
_NUMBER_BYTES = b"0123456789.eE+-,\n"


def _arrow_block(raw: bytes, rows: int, width: int) -> FloatArray | None:
    """The ``rows`` x ``width`` numbers of a CSV chunk read by pyarrow.csv; None without
    pyarrow, or when it refuses a cell (an empty one, ``1e``: the slower paths decide)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    names = [str(j) for j in range(width)]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(raw),
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(
                quote_char=False, double_quote=False, escape_char=False, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.float64()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    if table.num_rows != rows:
        return None
    out = np.empty((rows, width))
    for j in range(width):
        out[:, j] = table.column(j).to_numpy()
    return out


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def window_problems(options: FilesOptions, window: float) -> list[Problem]:
    """A name_time format of a date alone under a window shorter than a day: every file
    of a day would have its midnight (a regex's dates are found by the first run)."""
    if options.time_from != "name" or window >= _DAY:
        return []
    try:
        name_time = NameTime(options.name_time)
    except ValueError:
        return []  # reported by parse_options
    if not name_time.dates_alone():
        return []
    return [
        Problem(
            "name_time",
            f"a format with a time of day (%H) under the window of {format_duration(window)}: "
            f"names of a date alone are read as its midnight UTC, so a window would get "
            f"all of a day's files at midnight and no other window any; or use a window "
            f"of 1d or longer",
            options.name_time,
        )
    ]


def replay_problem(options: FilesOptions) -> str | None:
    """Why these options cannot replay the past: a file chosen by its modification time
    is today's newest one for every past window."""
    if options.window == "file" and options.time_from == "modified":
        return (
            "the files source picks each window's file by modification time "
            "(time_from: modified), so every past window would read today's newest file; "
            "set source.time_from: name with a name_time, or window: time_range"
        )
    return None


def build(model: str, features: tuple[str, ...], options: FilesOptions) -> FilesSource:
    """A files source for ``model``; ConfigError when the options do not fit its features."""
    problems = options_problems(options, features)
    if problems:
        raise ConfigError([p.config("source") for p in problems])
    return FilesSource(model, tuple(features), options)
