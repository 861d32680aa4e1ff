"""Request and answer formats without a server: Accept negotiation, the NPY header
cache (an exact memo of numpy's parse), answers that numpy reads back."""

from __future__ import annotations

import io

import numpy as np
import pytest

from monitor.serving import RESPONSE_DTYPE, Assignment, RequestError
from monitor.serving._formats import (
    JSON,
    NPY,
    _headers,
    encode_json,
    encode_npy,
    npy_rows,
    response_type,
)

FEATURES = ("a", "b", "c")


@pytest.mark.parametrize(
    ("accept", "kind"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("application/*;q=0.5", JSON),
        ("application/x-npy", NPY),
        ("text/html, application/x-npy;q=0.9", NPY),
        ("application/x-npy; q=0, application/json", JSON),
        ("APPLICATION/X-NPY", NPY),
        # RFC 9110, section 12.5.1: the highest weight wins, the most specific range
        # sets a type's weight, and the parameter's name is case-insensitive.
        ("application/x-npy;q=0.5, application/json;q=0.9", JSON),
        ("application/json;q=0, */*;q=0.1", NPY),
        ("application/x-npy, */*", NPY),
        ("application/*;q=0.2, application/x-npy;q=0.1", JSON),
        ("application/x-npy;q=abc, application/json;q=0.1", JSON),
    ],
)
def test_accept_chooses_the_answer_format(accept: str | None, kind: str) -> None:
    assert response_type(accept) == kind


@pytest.mark.parametrize(
    "accept", ["text/html", "application/x-npy;q=0", "image/*", "application/json;Q=0", "*/*;q=0"]
)
def test_an_accept_that_allows_neither_is_a_406(accept: str) -> None:
    with pytest.raises(RequestError) as info:
        response_type(accept)
    assert (info.value.status, info.value.code) == (406, "not_acceptable")


def _npy(X: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, X, allow_pickle=False)
    return stream.getvalue()


def test_the_header_cache_is_keyed_by_the_header_bytes() -> None:
    _headers.clear()
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    b = np.arange(9, dtype=">i8").reshape(3, 3)
    for X in (a, b, a, b, np.asfortranarray(b)):
        np.testing.assert_array_equal(npy_rows(_npy(X), FEATURES, 10), X.astype(np.float64))
    assert len(_headers) == 3  # two C-order headers and one Fortran-order one
    # A body whose header is known but whose data is short is still refused.
    with pytest.raises(RequestError, match="its header announces 24"):
        npy_rows(_npy(a)[:-4], FEATURES, 10)


def test_the_header_cache_stays_bounded() -> None:
    _headers.clear()
    for n in range(1, 300):
        npy_rows(_npy(np.zeros((n, 3))), FEATURES, 1000)
    assert 0 < len(_headers) <= 256


def test_answers_read_back_with_numpy_and_json() -> None:
    result = Assignment(np.array([2, 0]), np.array([0.5, 1.5]), np.array([False, True]))
    valid = np.array([True, False, True])
    out = np.load(io.BytesIO(encode_npy(result, valid, 3)), allow_pickle=False)
    assert out.dtype == RESPONSE_DTYPE
    assert out["label"].tolist() == [2, -1, 0] and out["outlier"].tolist() == [False, False, True]
    assert out["distance"][0] == 0.5 and np.isnan(out["distance"][1])
    text = encode_json({"model": "m"}, result, valid, 3).decode()
    assert text == (
        '{"model":"m","labels":[2,null,0],"distances":[0.5,null,1.5],"outliers":[false,null,true]}'
    )
    for n in (1, 7, 1000):  # answer headers are remembered by row count, each exact
        body = encode_npy(Assignment(np.zeros(n, int), np.zeros(n), np.zeros(n, bool)), None, n)
        assert np.load(io.BytesIO(body), allow_pickle=False).shape == (n,)
