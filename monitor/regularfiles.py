"""Small files read without ever blocking: keys, tokens, passwords, pointers, web config.

``open()`` of a FIFO waits for a writer: a named pipe put where one of these files
should be (by hand, or by a mistake in a deployment) hung ``check-config`` and the
daemon for ever. Here a file is opened with ``O_NONBLOCK`` and looked at before it is
read; anything but a regular file is an OSError whose ``strerror`` says so.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["NOT_REGULAR", "check_regular_file", "read_file", "read_file_and_mode"]

NOT_REGULAR = "not a regular file"


def _open_regular(path: Path | str, *, follow: bool = True) -> int:
    """A descriptor of the regular file ``path``, opened without blocking; OSError else
    (ELOOP for a symbolic link when not ``follow``)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, NOT_REGULAR, str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: Path | str, *, most: int, follow: bool = True) -> bytes:
    """The first bytes of the regular file ``path``, up to ``most`` + 1 of them (one more
    than a caller expects tells it the file is longer); OSError for any other kind, and
    for a symbolic link unless ``follow``.

    Opened without blocking and looked at before it is read: a FIFO or a device in the
    file's place would hang the reader or fill its memory.
    """
    return read_file_and_mode(path, most=most, follow=follow)[0]


def read_file_and_mode(path: Path | str, *, most: int, follow: bool = True) -> tuple[bytes, int]:
    """``read_file``, and the mode of the file it read (not of whatever ``path`` names
    a moment later)."""
    with os.fdopen(_open_regular(path, follow=follow), "rb") as f:
        return f.read(most + 1), os.fstat(f.fileno()).st_mode


def check_regular_file(path: Path | str) -> None:
    """OSError unless ``path`` is a regular file this process can open for reading.

    For files that a library opens itself (OpenSSL's certificates and keys): checked
    first, a FIFO there is refused instead of blocking the library's ``open``.
    """
    os.close(_open_regular(path))
