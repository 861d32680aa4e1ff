"""Spark source: a window's rows read by Spark from Parquet or CSV paths, or a table.

The time-range filter and the column selection run in Spark (pushed down to Parquet),
so only the window's feature columns leave the files. The window's rows stay in Spark
(``Window.remote``): a model with ``engine: spark`` never brings them to the daemon,
any other engine collects them once. The reading itself lives in
``monitor.engines.spark`` (the one pyspark owner), imported on the first read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from monitor.checks import Problem, Shown, check_choice, problem_of, read_fields
from monitor.errors import EngineError, SourceError
from monitor.records import Window
from monitor.redact import redact_url
from monitor.sources._common import check_bounds

__all__ = ["FORMATS", "SparkSource", "SparkSourceOptions", "build", "parse_options"]

FORMATS = ("parquet", "csv")

# Spark writes paths as given into its own log (a WARN for a missing directory), which
# no masking here reaches: credentials go to Hadoop's settings, never into a path.
_NO_CREDENTIALS = (
    "a path without credentials (Spark logs paths as given): set them as Hadoop "
    "properties such as spark.hadoop.fs.s3a.access.key and spark.hadoop.fs.s3a.secret.key "
    "(the spark.conf of a model with engine: spark, or Spark's spark-defaults.conf)"
)


@dataclass(frozen=True)
class SparkSourceOptions:
    """Options of the spark source (see docs/sources.md)."""

    path: str | None = None  # a file, a directory or a glob; any URL Spark reads (s3a://)
    table: str | None = None  # or a table of Spark's catalog
    format: str = "parquet"
    time_column: str = "timestamp"


def parse_options(
    raw: Mapping[str, Any], features: Sequence[str] | None = None
) -> tuple[SparkSourceOptions | None, list[Problem]]:
    """Typed options from a mapping of options, and every problem found."""
    values, problems = read_fields(raw, [f.name for f in fields(SparkSourceOptions)])
    o = SparkSourceOptions(**values)
    for name in ("path", "table", "time_column"):
        value = getattr(o, name)
        if value is not None and not (isinstance(value, str) and value):
            problems.append(Problem(name, "a non-empty string", value))
    if isinstance(o.path, str) and redact_url(o.path) != o.path:
        problems.append(Problem("path", _NO_CREDENTIALS, Shown(repr(redact_url(o.path)))))
    if (o.path is None) == (o.table is None):
        problems.append(Problem("path", "set, or table, but not both", o.path))
    problem = problem_of(check_choice, o.format, "format", FORMATS)
    if problem is not None:
        problems.append(problem)
    if features is not None and o.time_column in features:
        problems.append(
            Problem("time_column", "a column that is not one of the features", o.time_column)
        )
    return (None, problems) if problems else (o, [])


class SparkSource:
    """Reads ``[start, end)`` of a model's rows through the process's Spark session."""

    def __init__(self, model: str, features: tuple[str, ...], options: SparkSourceOptions) -> None:
        self._model = model
        self._features = features
        self._o = options
        # Whether a read found the time column holding times of the right unit: until
        # one has, each read looks at it first (read_rows' check_times).
        self._times_checked = False

    def read_window(self, start: float, end: float) -> Window:
        """The rows whose time column is in ``[start, end)``."""
        start, end = check_bounds(start, end, "SparkSource")
        from monitor.engines import spark

        what = self._o.table or self._o.path
        where = f"model {self._model!r}, spark source {what}"
        try:
            session = spark.session()
        except EngineError as exc:  # the source cannot be read without it
            raise SourceError(f"{where}: {exc}") from exc
        rows = spark.read_rows(
            session,
            path=self._o.path,
            table=self._o.table,
            fmt=self._o.format,
            time_column=self._o.time_column,
            features=self._features,
            start=start,
            end=end,
            where=where,
            check_times=not self._times_checked,
        )
        self._times_checked = True
        # The rows stay in Spark: the pipeline reads them there on a spark engine and
        # collects them otherwise.
        empty = np.empty((0, len(self._features)))
        return Window(
            self._model, start, end, self._features, empty, label=f"{what} (spark)", remote=rows
        )

    def deadline(self, seconds: float, model: str, why: str) -> AbstractContextManager[None]:
        """The Spark jobs this thread starts inside (a read's, or a run's that collects
        the rows), cancelled once ``seconds`` have passed, in one log line
        (``monitor.engines.spark.job_deadline``); the job then fails as RunCancelledError."""
        from monitor.engines import spark

        return spark.job_deadline(seconds, model, why)

    def close(self) -> None:
        """Nothing to release: the session belongs to the process (the engine stops it)."""


def build(model: str, features: tuple[str, ...], options: SparkSourceOptions) -> SparkSource:
    """A spark source for ``model``."""
    return SparkSource(model, features, options)
