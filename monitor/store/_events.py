"""A model's record of who moved its pointers: the file EVENTS, one JSON object a line.

Appended under the model's LOCK, right after the pointer it records has moved (the
pointer is the commit point: the record never claims a move that did not happen; a
crash between the two loses that one line). Each append is fsynced; a crash in the
middle of one leaves a last line without its newline, which readers skip and the next
append cuts off first. A store written before this file existed has none: no events.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

from monitor.errors import StoreError
from monitor.records import REASON_CHARS, STORE_ACTIONS, StoreEvent
from monitor.regularfiles import read_file
from monitor.store._fs import FILE_MODE, fsync_dir, linked

__all__ = ["EVENTS", "append_event", "check_events", "read_events"]

_log = logging.getLogger(__name__)

EVENTS = "EVENTS"
# An approval a minute for a century is under 30 MiB; past this the file is not ours.
_MOST_BYTES = 256 * 1024 * 1024


def append_event(model_dir: Path, event: StoreEvent) -> None:
    """Append ``event`` to the model's EVENTS durably (the caller holds the model's LOCK)."""
    path = model_dir / EVENTS
    created = not os.path.lexists(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(linked(path)) from None
        raise
    try:
        os.fchmod(fd, FILE_MODE)
        end = _cut_torn_line(fd)
        os.pwrite(fd, _line(event), end)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(model_dir)


def check_events(model_dir: Path) -> None:
    """StoreError when the model's EVENTS cannot take an event (a symbolic link): checked
    before a pointer moves, so that a move is never made and left unrecorded."""
    path = model_dir / EVENTS
    if path.is_symlink():
        raise StoreError(linked(path))


def _cut_torn_line(fd: int) -> int:
    """Truncate a last line left without its newline (a crash mid-append); the new end."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    start = max(0, size - 65536)
    tail = os.pread(fd, size - start, start)
    end = start + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
    os.ftruncate(fd, end)
    return end


def _line(event: StoreEvent) -> bytes:
    reason = None if event.reason is None else event.reason[:REASON_CHARS]
    body = {
        "at": event.at,
        "action": event.action,
        "actor": event.actor,
        "version": event.version,
        "from_version": event.from_version,
        "to_version": event.to_version,
        "reason": reason,
    }
    return (json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def read_events(model_dir: Path, model: str) -> list[StoreEvent]:
    """The model's events, oldest first; none when the file is absent (an older store).

    A torn last line is skipped; so is any other line that does not read as an event,
    with a warning (the rest still says who did what)."""
    try:
        data = read_file(model_dir / EVENTS, most=_MOST_BYTES, follow=False)
    except FileNotFoundError:
        return []
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW's "Too many levels of symbolic links"
            raise StoreError(linked(model_dir / EVENTS)) from None
        raise StoreError(f"cannot read {model_dir / EVENTS}: {exc.strerror or exc}") from exc
    lines = data.split(b"\n")
    out = []
    for n, line in enumerate(lines[:-1], start=1):  # the last: empty, or torn
        try:
            out.append(_event(model, json.loads(line)))
        except (ValueError, TypeError, KeyError) as exc:
            _log.warning("model=%s %s line %d is not an event (%s)", model, EVENTS, n, exc)
    return out


def _event(model: str, body: Any) -> StoreEvent:
    action = str(body["action"])
    if action not in STORE_ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return StoreEvent(
        model=model,
        at=float(body["at"]),
        action=action,
        actor=str(body["actor"]),
        version=int(body["version"]),
        from_version=_version(body.get("from_version")),
        to_version=_version(body.get("to_version")),
        reason=None if body.get("reason") is None else str(body["reason"]),
    )


def _version(value: Any) -> int | None:
    return None if value is None else int(value)
