"""``python -m monitor`` and the ``kmeans-monitor`` script: the command line, with SIGINT
and SIGTERM handled before anything else is imported (``monitor.interrupts``).

What comes before this module runs, Python's own start, is documented in
docs/configuration.md#exit-codes.
"""

from __future__ import annotations

from monitor import interrupts


def main() -> None:
    interrupts.handle_signals()
    try:
        try:
            from monitor.cli import main as commands

            commands()
        except (KeyboardInterrupt, Exception) as exc:  # not SystemExit: how commands end
            # The imports, or click's own steps around a command (which handles its own).
            if not interrupts.by_signal(exc):
                raise
            interrupts.exit_interrupted()
    except SystemExit as exc:
        interrupts.ended(exc.code)
        raise


if __name__ == "__main__":
    main()
