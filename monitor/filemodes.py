"""Warnings for the configuration's files that other users may change or read.

docs/security.md asks for 0600 on the secrets; only the store key file was checked (and
its warning printed twice by check-config, once per loading of the key). A
configuration file others may write lets any local user redirect the sources (and the
bearer token sent to them), turn encryption off or change the key file; a secret others
may read is theirs (h146). Checked by check-config and at the daemon's start.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from monitor.checks import brief_text
from monitor.config import Settings

__all__ = ["exposed_files", "secret_files"]

_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def secret_files(settings: Settings, web_tls_key: Path | str | None) -> list[tuple[str, Path]]:
    """(what, path) of each file the configuration names that holds a secret: the store
    key, the web configuration (its password hashes) and its TLS key (``web_tls_key``),
    each prometheus source's bearer token, basic-auth password and client key."""
    named: list[tuple[str, Any]] = [
        ("the store key file", settings.store.key_file),
        ("the web configuration file daemon.web_config_file", settings.daemon.web_config_file),
        ("the TLS key file of daemon.web_config_file", web_tls_key),
    ]
    for m in settings.models:
        o = m.source.options
        auth, tls = getattr(o, "basic_auth", None), getattr(o, "tls", None)
        named += [
            (f"model {m.name!r}: source.bearer_token_file", getattr(o, "bearer_token_file", None)),
            (
                f"model {m.name!r}: source.basic_auth.password_file",
                getattr(auth, "password_file", None),
            ),
            (f"model {m.name!r}: source.tls.key_file", getattr(tls, "key_file", None)),
        ]
    return [(what, Path(path)) for what, path in named if isinstance(path, (str, Path))]


def exposed_files(settings: Settings, web_tls_key: Path | str | None = None) -> list[str]:
    """A warning for a configuration file others may write, and for each secret file
    (``secret_files``) that group or others may read; each file once."""
    found = []
    mode = None if settings.path is None else _mode(settings.path)
    if mode is not None and mode & stat.S_IWOTH:
        found.append(
            f"the configuration file {brief_text(str(settings.path))} can be written by "
            f"other users (mode {mode:o}): chmod o-w it (600 or 644)"
        )
    seen: set[tuple[int, int]] = set()
    for what, path in secret_files(settings, web_tls_key):
        try:
            st = os.stat(path)
        except OSError:
            continue  # missing or unreadable: the checks that read it say so
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        if st.st_mode & _OTHERS:
            found.append(
                f"{what} {brief_text(str(path))} can be read by other users "
                f"(mode {stat.S_IMODE(st.st_mode):o}): chmod 600 it"
            )
    return found


def _mode(path: Path | str) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
