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


#: Options of the JVMs the Spark tests start (the session below, and every subprocess and
#: daemon they run, which inherit the environment); spark-submit adds SPARK_SUBMIT_OPTS to
#: its java command line, and says nothing of it. The tests' JVMs live for seconds and run
#: tiny jobs: the C1 compiler alone and the serial collector start one in about half the
#: time on two busy cores (15 to 19 s -> 7 to 9 s), and Spark computes the same results.
FAST_START_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


@pytest.fixture(scope="session", autouse=True)
def fast_starting_jvms() -> Iterator[None]:
    """SPARK_SUBMIT_OPTS with FAST_START_JVM for the Spark tests (after any already set)."""
    before = os.environ.get("SPARK_SUBMIT_OPTS")
    os.environ["SPARK_SUBMIT_OPTS"] = f"{before} {FAST_START_JVM}" if before else FAST_START_JVM
    yield
    if before is None:
        del os.environ["SPARK_SUBMIT_OPTS"]
    else:
        os.environ["SPARK_SUBMIT_OPTS"] = before


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
