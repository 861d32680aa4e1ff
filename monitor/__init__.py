"""kmeans-monitor: keeps k-means models honest in production."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kmeans-monitor")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from monitor.core.kmeans import KMeans, MiniBatchKMeans

__all__ = ["KMeans", "MiniBatchKMeans", "__version__"]
