"""``python -m monitor`` and the ``kmeans-monitor`` script: the command line, with SIGINT
and SIGTERM handled before anything else is imported (``monitor.interrupts``).

What comes before this module runs, Python's own start, is documented in
docs/configuration.md#exit-codes.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TYPE_CHECKING

from monitor import interrupts
from monitor.errors import OutputError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


def main() -> None:
    interrupts.handle_signals()
    _stdout()
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


def _stdout() -> None:
    """Stdout as a line-buffered writer whose failed writes say they are stdout's
    (``OutputError``, "cannot write to standard output: No space left on device"), which
    the command line tells from any other file's errors.

    It is buffered even when PYTHONUNBUFFERED=1 or ``python -u`` took the buffer away
    (many container images set the variable). Unbuffered, text goes straight to the file
    descriptor, and a write that a pipe takes only in part (its reader left mid-write)
    counts as whole: the rest of the output was lost and the command ended 0, not 141
    (docs/configuration.md#exit-codes). A buffered writer writes all or raises
    BrokenPipeError; line buffering keeps the output as prompt as it was.
    """
    stdout = sys.stdout
    if stdout is None:  # `>&-`: Python found no file descriptor 1
        _hold_closed_stdout()
    elif not isinstance(getattr(stdout, "buffer", None), io.IOBase):
        return
    raw = _Stdout(1 if stdout is None else stdout.fileno(), "w", closefd=False)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=getattr(stdout, "encoding", None),
        errors=getattr(stdout, "errors", None),
        line_buffering=True,
    )


def _hold_closed_stdout() -> None:
    """Stdout was closed (``>&-``): Python's stdout was None, and every write went
    nowhere, ``--json`` results too, with exit 0. File descriptor 1 now holds /dev/null
    opened read-only: a write fails with EBADF as on the closed descriptor (one line,
    exit 2, as ``ls >&-``), and no file the command opens later takes number 1 and the
    output with it."""
    fd = os.open(os.devnull, os.O_RDONLY)
    if fd != 1:  # stdin was closed too
        os.dup2(fd, 1)
        os.close(fd)


class _Stdout(io.FileIO):
    """File descriptor 1, whose write errors are ``OutputError``s."""

    def write(self, data: ReadableBuffer, /) -> int:
        try:
            return super().write(data)
        except (BrokenPipeError, BlockingIOError):  # `| head`; a non-blocking descriptor
            raise
        except OSError as exc:
            message = f"cannot write to standard output: {exc.strerror}"
            raise OutputError(exc.errno, message) from None


if __name__ == "__main__":
    main()
