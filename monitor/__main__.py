"""``python -m monitor`` and the ``kmeans-monitor`` script: the command line, with SIGINT
and SIGTERM handled before anything else is imported (``monitor.interrupts``).

What comes before this module runs, Python's own start, is documented in
docs/configuration.md#exit-codes.
"""

from __future__ import annotations

import io
import sys

from monitor import interrupts


def main() -> None:
    interrupts.handle_signals()
    _buffered_stdout()
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
        interrupts.leave_if_abandoned()
        raise


def _buffered_stdout() -> None:
    """Give stdout a buffer when PYTHONUNBUFFERED=1 or ``python -u`` took it away (many
    container images set the variable).

    Unbuffered, text goes straight to the file descriptor, and a write that a pipe takes
    only in part (its reader left mid-write) counts as whole: the rest of the output was
    lost and the command ended 0, not 141 (docs/configuration.md#exit-codes). A buffered
    writer writes all or raises BrokenPipeError; line buffering keeps the output as
    prompt as it was.
    """
    stdout = sys.stdout
    if stdout is None or not isinstance(getattr(stdout, "buffer", None), io.RawIOBase):
        return
    raw = io.FileIO(stdout.fileno(), "w", closefd=False)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=stdout.encoding,
        errors=stdout.errors,
        line_buffering=True,
    )


if __name__ == "__main__":
    main()
