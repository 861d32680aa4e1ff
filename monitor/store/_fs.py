"""Filesystem primitives of the snapshot store: private modes, fsync, temp entries, locks.

Everything the store creates is private to its owner whatever the umask: directories
0700 and files 0600 (the mode is set again with ``chmod`` after creation, since the
umask can only remove bits and an odd umask could remove the owner's).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import shlex
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from monitor.errors import StoreError
from monitor.regularfiles import read_file

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "TMP_PREFIX",
    "clean_temp_entries",
    "ensure_dir",
    "fsync_dir",
    "locked",
    "make_dirs",
    "open_private",
    "read_pointer",
    "remove_pointer",
    "temp_entry",
    "write_file",
    "write_pointer",
]

DIR_MODE = 0o700
FILE_MODE = 0o600
TMP_PREFIX = ".tmp-"
_POINTER_TEXT = re.compile(r"([0-9]+)\n?")
# Each attempt at a temp entry loses only to a cleaner's race; this many means trouble.
_MAX_ATTEMPTS = 1000


def make_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents, each new one private (0700).

    Symbolic links on the way are followed: a link to a directory not made yet (a
    dangling one) has its target made, as a missing directory is (mkdir on the link
    itself found it "existing", and the files then made in it failed).
    """
    missing: list[Path] = []
    p = Path(os.path.realpath(path))
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        ensure_dir(d)


def ensure_dir(path: Path) -> None:
    """Create ``path`` (0700) if missing and make its entry in the parent durable."""
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        return
    os.chmod(path, DIR_MODE)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private(path: Path) -> int:
    """A read-write descriptor of the file ``path`` (created 0600), never through a link:
    one who may write the state directory and linked daemon.lock to another file had the
    daemon truncate it, and a link at history.sqlite made it a database (helper-88).
    StoreError for a link; OSError for the rest."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise StoreError(linked(path)) from None


def linked(path: Path) -> str:
    """Why the store refuses the symbolic link at ``path``, and what to do."""
    return (
        f"{path} is a symbolic link, which kmeans-monitor never makes: remove it "
        f"(`rm {shlex.quote(str(path))}`); it is not written through"
    )


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (created 0600, or truncated) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- pointers


POINTER_BYTES = 64  # a pointer file holds a version number and a newline


def read_pointer(path: Path) -> int | None:
    """The version named by a pointer file (LIVE, PENDING), or None when it is absent.

    A pointer is read as the regular file the store wrote, never through a symbolic link,
    and its text is never quoted: a link to the store's key printed 40 of its 64 hex
    digits, into the log, the history and the model page (helper-83)."""
    try:
        data = read_file(path, most=POINTER_BYTES, follow=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(
                f"the pointer {path} is corrupt: a symbolic link, which the store never writes"
            ) from None
        raise StoreError(f"cannot read the pointer {path}: {exc.strerror or exc}") from exc
    match = _POINTER_TEXT.fullmatch(data.decode("ascii", errors="replace"))
    if match is None:
        size = f"{len(data)} byte(s)" if len(data) <= POINTER_BYTES else "a longer file"
        raise StoreError(f"the pointer {path} is corrupt: {size}, not a version number")
    return int(match.group(1))


def write_pointer(path: Path, version: int) -> None:
    """Replace the pointer file ``path`` atomically with ``version`` (temp file, fsync, rename)."""
    with temp_entry(path.parent, directory=False) as (tmp, fd):
        os.write(fd, f"{version}\n".encode())
        os.fsync(fd)
        try:
            os.replace(tmp, path)
        except IsADirectoryError:
            # A rename cannot replace a directory; the printed rollback failed there with
            # "Is a directory" and no way on.
            raise StoreError(
                f"cannot write the pointer {path}: a directory stands there, which the store "
                f"never writes; remove it (`{pointer_removal(path)}`) and try again"
            ) from None
    fsync_dir(path.parent)


def pointer_removal(path: Path) -> str:
    """The command that removes what stands at a pointer's place (`rm -r` for a directory:
    the plain `rm` the advice gave failed there)."""
    recursive = path.is_dir() and not path.is_symlink()
    return f"rm {'-r ' if recursive else ''}{shlex.quote(str(path))}"


def remove_pointer(path: Path) -> None:
    """Remove the pointer file ``path`` durably (nothing to do when absent)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the lock file ``path`` (created 0600) for the block.

    ``flock`` belongs to the open file description, so two threads of one process that
    each open the file exclude each other just as two processes do.
    """
    fd = open_private(path)
    try:
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


# ---------------------------------------------------------------------- temp entries


@contextmanager
def temp_entry(parent: Path, *, directory: bool) -> Iterator[tuple[Path, int]]:
    """A fresh ``.tmp-`` directory or file in ``parent``, locked while in use.

    Yields its path and an open descriptor holding the lock. Whatever is still at the
    path afterwards (nothing, when it was renamed into place) is removed.
    """
    path, fd = _claim_temp_entry(parent, directory=directory)
    try:
        yield path, fd
    finally:
        try:
            if directory:
                shutil.rmtree(path, ignore_errors=True)
            else:
                with suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            os.close(fd)


def _claim_temp_entry(parent: Path, *, directory: bool) -> tuple[Path, int]:
    for _ in range(_MAX_ATTEMPTS):
        path = parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        if directory:
            os.mkdir(path, DIR_MODE)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # a cleaner took it for a dead writer's; take another
            os.fchmod(fd, DIR_MODE)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            os.fchmod(fd, FILE_MODE)
        # Between creating and locking, a cleaner in another process may have judged
        # the entry abandoned and removed it; then the locked inode is no longer there.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            still_there = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            still_there = False
        if still_there:
            return path, fd
        os.close(fd)
    raise StoreError(f"could not create a temporary entry in {parent}")


def clean_temp_entries(model_dir: Path) -> None:
    """Remove ``.tmp-`` entries whose writer is gone (nobody holds their lock)."""
    for entry in os.scandir(model_dir):
        if not entry.name.startswith(TMP_PREFIX):
            continue
        path = Path(entry.path)
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                os.unlink(path)
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # its writer finished and renamed or removed it meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            if stat.S_ISDIR(mode):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            os.close(fd)
