"""Secrets out of everything people read: URLs with credentials, secret headers, tokens.

Every URL or error message the daemon shows (logs, run failures stored in the history,
``evaluate --json``, check-config) goes through ``redact_text``; a source that knows
its own secrets (a bearer token, a password, a secret header's value) passes them in
so that an error text that happens to echo them is cleaned too. Pure string work (the
standard library's quoting only), so that any module may use it.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from collections.abc import Iterable

__all__ = [
    "MASK",
    "RedactingFilter",
    "is_secret_header",
    "is_secret_name",
    "redact_text",
    "redact_url",
]

MASK = "***"

# A URL's userinfo: "scheme://user:password@" (the password may hold anything but "@").
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s@]+)@")
# Names that hold a secret, in query parameters, headers and configuration keys.
_SECRET_WORDS = re.compile(
    r"(auth|token|secret|passw|pwd|credential|api[-_]?key|(?:^|[-_.])key(?:$|[-_.])|session"
    r"|cookie|signature)",
    re.IGNORECASE,
)
# "name=value" in a query string (after ? or &), for names that hold a secret.
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&#\s]+)=(?P<value>[^&#\s'\"]*)")
# Secrets shorter than this are not searched for in free text: "ab" would mask half of it.
_MIN_SECRET = 4


def is_secret_name(name: str) -> bool:
    """Whether a parameter, header or option named ``name`` is taken to hold a secret."""
    return bool(_SECRET_WORDS.search(name))


def is_secret_header(name: str) -> bool:
    """Whether an HTTP header's value is a credential (Authorization, X-Api-Key, Cookie...)."""
    return is_secret_name(name)


def _mask_query(match: re.Match[str]) -> str:
    if not is_secret_name(match.group("name")):
        return match.group(0)
    return f"{match.group('lead')}{match.group('name')}={MASK}"


def redact_url(url: str) -> str:
    """``url`` with its userinfo and the values of secret query parameters masked."""
    return redact_text(url)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL's userinfo, secret query values and each of ``secrets`` masked,
    as written and in the forms an echo re-encodes it to (``_encodings``).

    Longer forms are replaced first, so a secret that contains another is masked whole.
    """
    out = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    out = _QUERY_PARAM.sub(_mask_query, out)
    forms = {form for s in secrets if len(s) >= _MIN_SECRET for form in _encodings(s)}
    for form in sorted(forms, key=len, reverse=True):
        out = out.replace(form, MASK)
    return out


def _encodings(secret: str) -> set[str]:
    """``secret`` and the forms a server's echo may give it: percent-encoded (as a query
    string or a logged URL has it), JSON-escaped (``\\/``), and a base64 value without its
    ``=`` padding. A 401 page that echoed ``Basic%20a21l...%3D%3D`` printed a whole basic-auth
    password, the ``%3D`` alone enough to miss it (helper-88)."""
    forms = {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret),
        secret.replace("/", "\\/"),
        json.dumps(secret)[1:-1],
    }
    forms |= {f.rstrip("=") for f in forms if f.endswith("=")}
    forms |= {f for f in secret.split() if len(f) >= 12}  # "Basic <b64>": the value alone
    return {f for f in forms if len(f) >= _MIN_SECRET}


class RedactingFilter(logging.Filter):
    """A logging filter that masks URL credentials in every record it passes.

    The last line of defence: sources and the runner redact their own messages, and
    this catches what a library logs on its own (a URL in a warning, an exception text).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_text(formatted)
        return True
