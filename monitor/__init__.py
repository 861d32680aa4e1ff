"""kmeans-monitor: keeps k-means models honest in production."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.core.kmeans import KMeans, MiniBatchKMeans

    __version__: str

__all__ = ["KMeans", "MiniBatchKMeans", "__version__"]


def __getattr__(name: str) -> Any:
    """The estimators and the version, loaded when first asked for.

    Python imports this package before the command line's first line runs (it is the
    package of ``monitor.__main__``): the estimators' compiled kernels took most of a
    second to import, and ``importlib.metadata`` tens of milliseconds, while a Ctrl-C or
    a SIGTERM met no handler of ours.
    """
    if name in ("KMeans", "MiniBatchKMeans"):
        from monitor.core import kmeans

        return getattr(kmeans, name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("kmeans-monitor")
        except PackageNotFoundError:  # running from a source tree that is not installed
            found = "0.0.0+unknown"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module 'monitor' has no attribute {name!r}")
