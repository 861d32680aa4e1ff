"""Execution engines: where a model's measure step does its numeric work.

``engine: local`` needs none (the pipeline computes in this process); ``engine: spark``
is ``monitor.engines.spark.SparkEngine``, the only module that imports pyspark, loaded
only when a model asks for it so that the core runs without Spark installed.
"""

from __future__ import annotations

import importlib.util
import warnings

from monitor.checks import brief_text
from monitor.config import SparkSettings
from monitor.errors import ConfigError
from monitor.ports import Engine

__all__ = ["spark_engine"]

# pyspark warns at every session start that it does not yet fully support pandas >= 3:
# logged as the daemon's own WARNING, with nothing for the user to do (the engine's
# passes use numpy, and Arrow to collect). Only that warning is ignored.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)


def spark_engine(settings: SparkSettings, *, model: str) -> Engine:
    """A Spark engine for ``model``; ConfigError in one line when pyspark is missing or
    does not import (installed without its py4j, refusing the numpy or pandas here)."""
    if importlib.util.find_spec("pyspark") is None:
        raise ConfigError(
            [
                f"models[{model}].engine: spark needs pyspark (and a Java 17 runtime): "
                "pip install 'kmeans-monitor[spark]'"
            ]
        )
    try:
        from monitor.engines.spark import SparkEngine
    except ImportError as exc:
        if (exc.name or "").startswith("monitor"):
            raise  # this package's own: a bug
        why = brief_text(f"{type(exc).__name__}: {exc}")
        raise ConfigError(
            [
                f"models[{model}].engine: spark needs pyspark, which is installed but does "
                f"not import ({why}): pip install 'kmeans-monitor[spark]'"
            ]
        ) from exc

    return SparkEngine(settings, app_name=f"kmeans-monitor {model}")
