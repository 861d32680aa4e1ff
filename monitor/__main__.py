"""``python -m monitor`` is the ``kmeans-monitor`` command."""

from monitor.cli import main

main()
