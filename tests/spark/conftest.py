"""One local[2] Spark session for every Spark test; without Java or pyspark they skip.

CI installs both (scripts/install-test-deps, the ``test`` extra) and sets
``KMEANS_MONITOR_REQUIRE_SPARK=1``, which turns the skip into a failure so that a broken
install cannot pass silently.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services import services

__all__ = ["services"]  # a fixture: the daemon test starts `kmeans-monitor run`


def _missing() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install 'kmeans-monitor[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (apt-get install openjdk-17-jre-headless)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/spark carries the ``spark`` marker (``-m 'not spark'``)."""
    for item in items:
        if "tests/spark/" in item.nodeid.replace(os.sep, "/"):
            item.add_marker(pytest.mark.spark)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A small session: two local cores, no UI, two shuffle partitions."""
    why = _missing()
    if why is not None:
        if os.environ.get("KMEANS_MONITOR_REQUIRE_SPARK") == "1":
            pytest.fail(f"Spark tests required but cannot run: {why}")
        pytest.skip(f"Spark tests skipped: {why}")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("kmeans-monitor tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
