"""Windows built from Prometheus range queries (``/api/v1/query_range``), over urllib.

Each feature is one PromQL expression. Every (series, step) of an expression's answer is
one value of that feature; the values of the features are joined into rows on the
series' labels (all of them but ``__name__``, or only ``join_on``) and the timestamp.
Rows that miss a feature are dropped and counted in a debug log line.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import reduce
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.checks import Problem, check_int, is_real, problem_of, read_fields
from monitor.durations import check_duration
from monitor.errors import ConfigError, SourceError, SourceTimeoutError
from monitor.records import Window
from monitor.sources._common import check_bounds
from monitor.timestamps import format_time

__all__ = [
    "PrometheusOptions",
    "PrometheusSource",
    "build",
    "options_problems",
    "parse_options",
]

_log = logging.getLogger(__name__)

# Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS_LIMIT = 11000
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Key = tuple[tuple[str, str], ...]
Series = dict[Key, tuple[NDArray[np.int64], NDArray[np.float64]]]  # key -> (ms, values)


@dataclass(frozen=True)
class PrometheusOptions:
    """Options of the prometheus source (see docs/sources.md)."""

    url: str
    features: Mapping[str, str]  # feature name -> PromQL expression
    step: float = 60.0  # seconds between points
    timeout: float = 30.0  # seconds to wait for each answer
    join_on: tuple[str, ...] | None = None  # None: all labels but __name__
    max_points: int = 10000  # points per series per request; longer windows are split


def parse_options(
    raw: Mapping[str, Any], features: Sequence[str] | None = None
) -> tuple[PrometheusOptions | None, list[Problem]]:
    """Typed options from a mapping of options, and every problem found.

    With ``features``, the expressions must be exactly one per feature.
    """
    names = [f.name for f in fields(PrometheusOptions)]
    durations = {"step": check_duration, "timeout": check_duration}
    values, problems = read_fields(raw, names, durations)
    values.setdefault("url", None)
    values.setdefault("features", None)
    if isinstance(values["features"], Mapping):
        values["features"] = MappingProxyType(dict(values["features"]))
    if isinstance(values.get("join_on"), list):
        values["join_on"] = tuple(values["join_on"])
    options = PrometheusOptions(**values)
    problems += options_problems(options, features)
    return (None, problems) if problems else (options, [])


def options_problems(o: PrometheusOptions, features: Sequence[str] | None = None) -> list[Problem]:
    """Every problem of ``o``; with ``features``, also features without an expression."""
    parts = urllib.parse.urlsplit(o.url) if isinstance(o.url, str) else None
    found = [
        None
        if parts is not None and parts.scheme in ("http", "https") and parts.netloc
        else Problem("url", "an http(s) URL such as 'http://prometheus:9090'", o.url),
        _duration_problem("step", o.step),
        _duration_problem("timeout", o.timeout),
        None
        if o.join_on is None or _is_labels(o.join_on)
        else Problem("join_on", "a non-empty list of label names", o.join_on),
        problem_of(check_int, o.max_points, "max_points", low=1, high=MAX_POINTS_LIMIT),
    ]
    return [p for p in found if p is not None] + _expression_problems(o.features, features)


def _duration_problem(field: str, value: Any) -> Problem | None:
    return None if is_real(value) and value > 0 else Problem(field, "a duration > 0", value)


def _is_labels(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and bool(value)
        and all(isinstance(x, str) and _LABEL.fullmatch(x) for x in value)
    )


def _expression_problems(expressions: Any, features: Sequence[str] | None) -> list[Problem]:
    """Problems of the feature -> PromQL map; with ``features``, one per feature exactly."""
    if not isinstance(expressions, Mapping) or not expressions:
        return [
            Problem("features", "a mapping of each feature to a PromQL expression", expressions)
        ]
    found = [
        Problem(f"features.{name}", "a PromQL expression", expr)
        for name, expr in expressions.items()
        if not isinstance(expr, str) or not expr.strip()
    ]
    if features is None:
        return found
    missing = [f for f in features if f not in expressions]
    if missing:
        expected = f"a mapping with a PromQL expression for every feature (missing {missing})"
        found.append(Problem("features", expected, list(expressions)))
    found += [
        Problem(f"features.{name}", f"one of the model's features {list(features)}", name)
        for name in expressions
        if name not in features
    ]
    return found


class PrometheusSource:
    """A TelemetrySource that reads a window with one range query per feature."""

    def __init__(self, model: str, features: tuple[str, ...], options: PrometheusOptions) -> None:
        self._model = model
        self._features = tuple(features)
        self._options = options
        self._endpoint = options.url.rstrip("/") + "/api/v1/query_range"
        self._name = f"prometheus source of model {model!r}"

    def read_window(self, start: float, end: float) -> Window:
        """Rows of the points at ``start, start + step, ...`` before ``end``."""
        start, end = check_bounds(start, end, "PrometheusSource")
        series = [self._fetch(feature, start, end) for feature in self._features]
        X, dropped = _join(series)
        if dropped:
            _log.debug(
                "%s: dropped %d row(s) of [%s, %s) that miss at least one feature",
                self._name,
                dropped,
                format_time(start),
                format_time(end),
            )
        return Window(
            model=self._model,
            start=start,
            end=end,
            features=self._features,
            X=X,
            label=(
                f"prometheus [{format_time(start)}, {format_time(end)}) "
                f"step {self._options.step:g}s"
            ),
        )

    def close(self) -> None:
        """urllib keeps no connection open between requests."""

    def _fetch(self, feature: str, start: float, end: float) -> Series:
        """The series of one feature over the window, split into requests of max_points."""
        step = self._options.step
        n_points = max(0, math.ceil((end - start) / step))
        if n_points and start + (n_points - 1) * step >= end:  # rounding put one too many
            n_points -= 1
        expr = self._options.features[feature]
        found: dict[Key, tuple[list[NDArray[np.int64]], list[NDArray[np.float64]]]] = {}
        for first in range(0, n_points, self._options.max_points):
            last = min(n_points, first + self._options.max_points) - 1
            result = self._query(feature, expr, start + first * step, start + last * step)
            seen: set[Key] = set()
            for item in result:
                key = self._key(item.get("metric", {}))
                if key in seen:
                    labels = ", ".join(f'{k}="{v}"' for k, v in key)
                    raise SourceError(
                        f"{self._name}: feature {feature!r}: several series have the labels "
                        f"{{{labels}}}; aggregate them in the expression (e.g. sum by (...)) "
                        f"or list more labels in join_on"
                    )
                seen.add(key)
                where = f"{self._name}: feature {feature!r}: {self._endpoint}"
                ms, values = _points(item.get("values", []), where)
                keep = (ms >= round(start * 1000)) & (ms < round(end * 1000))
                entry = found.setdefault(key, ([], []))
                entry[0].append(ms[keep])
                entry[1].append(values[keep])
        return {k: (np.concatenate(ms), np.concatenate(v)) for k, (ms, v) in found.items()}

    def _key(self, metric: Mapping[str, str]) -> Key:
        if self._options.join_on is None:
            return tuple(sorted((k, v) for k, v in metric.items() if k != "__name__"))
        # An absent label is the empty string, as in PromQL's own matching.
        return tuple((k, metric.get(k, "")) for k in self._options.join_on)

    def _query(self, feature: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        """The ``result`` of one query_range request (a list of series)."""
        o = self._options
        body = urllib.parse.urlencode(
            {
                "query": expr,
                "start": f"{start:.3f}",
                "end": f"{end:.3f}",
                "step": repr(float(o.step)),
                "timeout": repr(float(o.timeout)),
            }
        ).encode()
        # POST keeps long expressions out of URL length limits; Prometheus takes both.
        request = urllib.request.Request(
            self._endpoint,
            data=body,
            method="POST",
            headers={"Accept": "application/json", "User-Agent": "kmeans-monitor"},
        )
        where = f"{self._name}: feature {feature!r}: {self._endpoint}"
        try:
            with urllib.request.urlopen(request, timeout=o.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise SourceError(f"{where} answered HTTP {exc.code}: {_error_text(exc)}") from exc
        except TimeoutError as exc:
            raise SourceTimeoutError(f"{where} did not answer within {o.timeout:g}s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise SourceTimeoutError(f"{where} did not answer within {o.timeout:g}s") from exc
            raise SourceError(f"{where} is unreachable: {exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise SourceError(f"{where} failed: {exc!r}") from exc
        try:
            answer = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SourceError(f"{where} answered with something that is not JSON: {exc}") from exc
        if not isinstance(answer, dict):
            raise SourceError(f"{where} answered with unexpected JSON {str(answer)[:200]!r}")
        if answer.get("status") != "success":
            raise SourceError(
                f"{where} answered status {answer.get('status')!r}: {_error_of(answer)}"
            )
        for warning in answer.get("warnings") or ():
            _log.warning("%s: Prometheus warns: %s", where, warning)
        data = answer.get("data") or {}
        if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise SourceError(
                f"{where} answered a {data.get('resultType')!r} where a 'matrix' was expected"
            )
        return data["result"]


def _points(values: Any, where: str) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Timestamps in milliseconds and values of a series' ``[[t, "v"], ...]``."""
    try:
        ms = np.array([round(float(t) * 1000) for t, _ in values], dtype=np.int64)
        # float() reads Prometheus' "NaN", "+Inf" and "-Inf" as they are meant.
        vals = np.array([float(v) for _, v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SourceError(f"{where}: malformed sample in the answer: {exc}") from exc
    order = np.argsort(ms, kind="stable")
    return ms[order], vals[order]


def _join(series: list[Series]) -> tuple[NDArray[np.float64], int]:
    """Rows of the (labels, timestamp) present in every feature, and the count dropped."""
    d = len(series)
    key_sets = [set(s) for s in series]
    keys = sorted(set.intersection(*key_sets)) if key_sets else []
    all_keys: set[Key] = set().union(*key_sets)
    blocks: list[NDArray[np.float64]] = []
    kept = 0
    for key in keys:
        common = reduce(np.intersect1d, (s[key][0] for s in series))
        block = np.empty((common.shape[0], d))
        for j, s in enumerate(series):
            ms, values = s[key]
            block[:, j] = values[np.searchsorted(ms, common)]
        blocks.append(block)
        kept += common.shape[0]
    distinct = sum(
        reduce(np.union1d, (s[key][0] for s in series if key in s)).shape[0] for key in all_keys
    )
    X = np.concatenate(blocks) if blocks else np.empty((0, d))
    return X, int(distinct - kept)


def _error_of(answer: Mapping[str, Any]) -> str:
    kind = answer.get("errorType")
    text = answer.get("error") or "no error text"
    return f"{kind}: {text}" if kind else str(text)


def _error_text(exc: urllib.error.HTTPError) -> str:
    """Prometheus' error text from an HTTP error answer, or the start of its body."""
    try:
        body = exc.read()
    except OSError:
        body = b""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body[:300].decode("utf-8", "replace").strip()
        return text or str(exc.reason)
    if isinstance(answer, dict) and ("error" in answer or "errorType" in answer):
        return _error_of(answer)
    return str(answer)[:300]


def build(model: str, features: tuple[str, ...], options: PrometheusOptions) -> PrometheusSource:
    """A prometheus source for ``model``; ConfigError unless every feature has an expression."""
    problems = options_problems(options, features)
    if problems:
        raise ConfigError([p.config("source") for p in problems])
    return PrometheusSource(model, tuple(features), options)
