"""SIGINT and SIGTERM on the command line, from the first line of ``monitor.__main__``.

While a command works, either raises ``Interrupted`` (a KeyboardInterrupt), which ends
it with the line ``interrupted`` and exit 130; ``monitor.daemon.run_until_signal`` takes
both over while ``run``, ``serve``, ``demo`` or ``simulate`` serves, and those stop
cleanly with 0. Once the command has ended, a signal ends the process at once with the
command's exit code. This module is imported before the handlers exist: the standard
library only, and little of it.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

__all__ = [
    "EXIT_INTERRUPTED",
    "Interrupted",
    "abandon_threads",
    "by_signal",
    "ended",
    "exit_interrupted",
    "handle_signals",
    "leave_if_abandoned",
    "raise_lost",
]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_exit_code: list[int] = []  # the command's, once it has ended
_raised: list[int] = []  # the signals that raised an Interrupted
_abandoned: list[bool] = []  # a thread was left running: the exit skips finalization


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM (its name is the message).

    Not KeyboardInterrupt itself: CPython remembers a KeyboardInterrupt that left code
    run by ``exec`` of a string (dataclasses, namedtuple and numba run such code while
    they are imported) and, handled or not, ends the process by SIGINT at exit instead
    of with its exit code. It checks for that exact class, not a subclass.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if not _exit_code:
        _raised.append(signum)
        raise Interrupted(signum)
    # Python is shutting down (joining threads, running exit handlers), where the
    # exception would be printed with its traceback: leave now, as the command said.
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(_exit_code[0])


def _ignore() -> None:
    """The last exit handler: Python then resets ours, and a signal would end the rest of
    its shutdown by the signal rather than with the command's exit code."""
    for sig in _SIGNALS:
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, signal.SIG_IGN)


def _quiet(report: Callable[..., object], *args: Any) -> None:
    """``sys.excepthook`` or ``sys.unraisablehook`` (``report``), silent about an
    ``Interrupted``: code that cannot pass one on prints it that way and goes on (an
    object's finalizer; numpy's C API when a C extension's import is cut short)."""
    value = args[1] if len(args) == 3 else args[0].exc_value
    if not isinstance(value, Interrupted):
        report(*args)


def raise_lost() -> None:
    """Raise again the ``Interrupted`` that something took and did not pass on (see
    ``_quiet``; a library may also catch it): a command about to serve until a signal
    calls this first, or it would serve on (a demo signalled as it started did)."""
    if _raised:
        raise Interrupted(_raised[0])


def handle_signals() -> None:
    """SIGINT and SIGTERM raise ``Interrupted`` from now on, unless the parent process
    had them ignored (a shell starts a background job with SIGINT ignored)."""
    for sig, default in zip(_SIGNALS, (signal.default_int_handler, signal.SIG_DFL), strict=True):
        if signal.getsignal(sig) is default:
            signal.signal(sig, _on_signal)
    sys.excepthook = functools.partial(_quiet, sys.excepthook)
    sys.unraisablehook = functools.partial(_quiet, sys.unraisablehook)
    atexit.register(_ignore)  # registered first, so run last


def ended(code: object) -> None:
    """The command has ended with ``code`` (a SystemExit's): a signal from now on ends
    the process at once with it."""
    _exit_code.append(code if isinstance(code, int) else 0 if code is None else 1)


def abandon_threads() -> None:
    """A thread was left running (a daemon's run past its shutdown grace): the command
    line leaves without Python's finalization (``leave_if_abandoned``)."""
    _abandoned.append(True)


def leave_if_abandoned() -> None:
    """After ``ended``: when a thread was abandoned, flush the logs and the output and
    leave with the command's code at once. A run abandoned inside compiled code (numba's
    thread pool) made the exit's C++ destructors abort the process: "terminate called
    without an active exception", "Fatal Python error: Aborted" and exit -6 after a
    clean stop (a demo given SIGINT while its first run trained under load)."""
    if not _abandoned or not _exit_code:
        return
    import logging

    logging.shutdown()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(_exit_code[0])


def by_signal(exc: BaseException) -> bool:
    """Whether ``exc`` is an interrupt or what one left: a C extension whose import is cut
    short fails with ImportError('initialization failed') caused by the interrupt, or
    with one that no longer says so (numpy's C API prints the interrupt and raises
    "numpy._core.multiarray failed to import"): any error after a signal counts."""
    if _raised:
        return True
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


def exit_interrupted() -> NoReturn:
    """End the command as interrupted: one line on stderr, exit 130."""
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    sys.exit(EXIT_INTERRUPTED)
