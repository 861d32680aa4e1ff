"""Secrets out of text: URL credentials, secret query values, known secrets, log records."""

from __future__ import annotations

import logging
import sys

import pytest

from monitor.redact import RedactingFilter, is_secret_header, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://prom:9090/api", "http://prom:9090/api"),
        ("https://kmeans:s3cret@prom:9090/", "https://***@prom:9090/"),
        ("https://tokenonly@prom/", "https://***@prom/"),
        (
            "http://u:p%40ss@h/x?query=up&token=abc&step=30",
            "http://***@h/x?query=up&token=***&step=30",
        ),
        (
            "http://h/?api_key=k1&apikey=k2&key=k3&monkey=m",
            "http://h/?api_key=***&apikey=***&key=***&monkey=m",
        ),
    ],
)
def test_urls_lose_their_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_free_text_loses_every_url_credential_and_each_known_secret() -> None:
    text = "GET https://a:b1@x/ failed; retry http://c:d2@y/ with Bearer tok-12345 or ab"
    assert redact_text(text, ["tok-12345", "ab"]) == (
        "GET https://***@x/ failed; retry http://***@y/ with Bearer *** or ab"
    )
    # A secret that contains another is masked whole, not half.
    assert redact_text("xx secret-long yy", ["secret", "secret-long"]) == "xx *** yy"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True),
        ("Proxy-Authorization", True),
        ("X-Api-Key", True),
        ("Cookie", True),
        ("X-Auth-Token", True),
        ("X-Scope-OrgID", False),
        ("Accept", False),
    ],
)
def test_secret_headers(name: str, secret: bool) -> None:
    assert is_secret_header(name) is secret


def test_the_log_filter_masks_messages_and_tracebacks() -> None:
    try:
        raise RuntimeError("cannot reach https://u:pw-9876@h/")
    except RuntimeError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "reading %s", ("http://u:pw-1234@h/",), None
        )
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record) is True
    formatted = logging.Formatter().format(record)
    assert "reading http://***@h/" in formatted and "https://***@h/" in formatted
    assert "pw-1234" not in formatted and "pw-9876" not in formatted
