"""The server's certificate, loaded again when its files change.

A renewal (cert-manager, certbot, a deployment replacing the files) took effect only at
the next restart: until then the daemon served the old certificate, and once that one
ended every client that verifies it was refused. ``ServerCertificate.context`` is what
each accepted connection is wrapped with; at most every ``CHECK_SECONDS`` it compares
the identity of the files (device, inode, size, modification and change times: a
Kubernetes secret volume swaps a link, which changes the inode) with those it loaded,
and on a change builds a new TLS context from them.

A context that does not build (the new certificate written, its key not yet) is logged
as a warning and the previous one kept; the files are tried again at their next change.
``not_after`` is when the first of the loaded certificates ends, for the
``kmeans_tls_certificate_expiry_timestamp_seconds`` gauge (``monitor.exporter``) and
its alert.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from monitor.errors import ConfigError
from monitor.http._webconfig import TlsConfig, certificate_warnings, ssl_context
from monitor.timestamps import format_time
from monitor.tlsfiles import validity

__all__ = ["CHECK_SECONDS", "ServerCertificate"]

log = logging.getLogger(__name__)

#: How often the certificate's files are looked at (a few stat calls), at most.
CHECK_SECONDS = 5.0

_Identity = tuple[tuple[int, int, int, int, int] | None, ...]


class ServerCertificate:
    """The TLS context of ``tls``, rebuilt when its files change (see the module)."""

    def __init__(
        self,
        tls: TlsConfig,
        where: str = "web config",
        *,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Build the context at once: a ConfigError naming the file when it does not."""
        self._tls = tls
        self._where = where
        self._monotonic = monotonic
        self._clock = clock
        self._loaded = self._identity()
        self._context = ssl_context(tls, where)
        self._checked = monotonic()
        self.not_after = self._not_after()

    def context(self) -> ssl.SSLContext:
        """The context to wrap a new connection with: the files' latest that loads."""
        now = self._monotonic()
        if now - self._checked < CHECK_SECONDS:
            return self._context
        self._checked = now
        seen = self._identity()
        if seen == self._loaded:
            return self._context
        self._loaded = seen  # taken before reading: a change meanwhile is seen next time
        try:
            context = ssl_context(self._tls, self._where)
        except ConfigError as exc:
            log.warning(
                "%s (the files changed): new connections keep the certificate loaded "
                "before until the files change again",
                "; ".join(exc.problems),
            )
            return self._context
        self._context = context
        self.not_after = self._not_after()
        ends = "unknown" if self.not_after is None else format_time(self.not_after)
        log.info(
            "%s: loaded the changed certificate %s (valid until %s); new connections use it",
            self._where,
            self._tls.cert_file,
            ends,
        )
        for warning in certificate_warnings(self._tls, self._clock(), self._where):
            log.warning("%s", warning)
        return context

    def _identity(self) -> _Identity:
        tls = self._tls
        return tuple(_stat(p) for p in (tls.cert_file, tls.key_file, tls.client_ca_file))

    def _not_after(self) -> float | None:
        """When the first certificate of cert_file ends, unix seconds (None: unreadable)."""
        try:
            ends = [not_after.timestamp() for _, not_after in validity(self._tls.cert_file)]
        except OSError:
            return None
        return min(ends, default=None)


def _stat(path: Path | None) -> tuple[int, int, int, int, int] | None:
    """A file's identity: a change of its content, or of its mode or owner (ctime: a
    renewal written unreadable and then made readable by chmod or chown was never loaded;
    helper-98)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns
