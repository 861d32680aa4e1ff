"""A Python client of the label API: rows in, labels, distances and outlier flags out.

    from monitor.serving.client import LabelsClient

    with LabelsClient("http://127.0.0.1:9320") as client:
        answer = client.labels("checkout", rows, key="user-17")   # rows: (n, d) array
        answer.labels, answer.distances, answer.outliers, answer.version, answer.variant

One keep-alive connection per client (make one per thread); arrays travel as NPY both
ways, rows given as mappings (feature -> value) as JSON. A connection the server closed
(idle, or its request cap) is reopened once: asking for labels changes nothing, so a
request is safe to send again. Errors are ``LabelsError`` with the API's status, code
and message; no answer at all (a timeout, a refused or broken connection) is a
``LabelsError`` with status 0 and code ``timeout`` or ``unreachable``. After any failed
call the connection is closed, and the next call opens a new one. A routing key goes as
UTF-8 in the key header. Standard library and numpy only.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Labels", "LabelsClient", "LabelsError"]

_NPY = "application/x-npy"
_JSON = "application/json"
# A kept-alive connection the server has closed shows up as one of these on reuse.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class LabelsError(RuntimeError):
    """The API refused a request: its HTTP status, its error code and its message; or no
    answer came (status 0, code ``timeout`` or ``unreachable``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, eq=False)
class Labels:
    """The answer for a batch; rows the NaN policy left out have label -1 and distance NaN."""

    model: str
    version: int  # the snapshot version that answered
    variant: str  # "live" or "canary"
    labels: NDArray[np.int64]
    distances: NDArray[np.float64]  # Euclidean, in the model's scaled units
    outliers: NDArray[np.bool_]


def _split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path prefix) of ``http[s]://host[:port][/prefix]``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"the API's URL must start with http:// or https://; got {url!r}")
    authority, _, prefix = rest.partition("/")
    host, port = authority, 443 if scheme == "https" else 80
    if authority.startswith("["):  # [::1]:9320
        host, _, tail = authority[1:].partition("]")
        port = int(tail[1:]) if tail.startswith(":") else port
    elif ":" in authority:
        host, _, digits = authority.rpartition(":")
        port = int(digits)
    if not host:
        raise ValueError(f"no host in {url!r}")
    return scheme, host, port, "/" + prefix.strip("/") if prefix.strip("/") else ""


class LabelsClient:
    """A keep-alive client of one label server (not thread-safe: one per thread)."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        key_header: str = "X-Kmeans-Key",
    ) -> None:
        scheme, host, port, prefix = _split_url(url)
        self._prefix = prefix
        self._key_header = key_header  # the models' serving.key_header
        if scheme == "https":
            self._conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=ssl_context
            )
        else:
            self._conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self._headers: dict[str, str] = {}
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def __enter__(self) -> LabelsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        self._conn.close()

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        all_headers: dict[str, str | bytes] = {**self._headers, **(headers or {})}
        for attempt in (1, 2):
            try:
                self._conn.request(method, self._prefix + path, body=body, headers=all_headers)
                response = self._conn.getresponse()
                data = response.read()
            except BaseException as exc:
                # Whatever went wrong (a timeout, an interrupt), the connection is mid-request:
                # closed, the next call opens a new one.
                self._conn.close()
                if attempt == 1 and isinstance(exc, _STALE):
                    continue
                if isinstance(exc, (OSError, http.client.HTTPException)):
                    raise _unreachable(exc) from exc
                raise
            if response.status >= 400:
                raise _error(response.status, data)
            return response, data
        raise AssertionError("unreachable")

    def labels(
        self,
        model: str,
        rows: ArrayLike | Sequence[Mapping[str, float | None]],
        *,
        key: str | None = None,
    ) -> Labels:
        """Label ``rows``: an array (n, d) in the model's feature order (sent as NPY), or
        mappings of feature name to value (sent as JSON). ``key`` routes sticky to a variant."""
        headers: dict[str, str | bytes] = {"Accept": _NPY}
        if key is not None:
            headers[self._key_header] = key.encode()  # UTF-8, as the server reads it
        body, headers["Content-Type"] = _body(rows)
        response, data = self._request("POST", f"/v1/models/{model}/labels", body, headers)
        answer = np.load(io.BytesIO(data), allow_pickle=False)
        return Labels(
            model=model,
            version=int(response.headers["X-Kmeans-Model-Version"]),
            variant=str(response.headers["X-Kmeans-Variant"]),
            labels=answer["label"].astype(np.int64),
            distances=answer["distance"].astype(np.float64),
            outliers=answer["outlier"].astype(bool),
        )

    def models(self) -> list[dict[str, Any]]:
        """What the server serves: each model's versions, features, canary share, policy."""
        _, data = self._request("GET", "/v1/models")
        out: list[dict[str, Any]] = json.loads(data)
        return out

    def parameters(self, model: str) -> dict[str, Any]:
        """The live (and canary) centres, scaler and outlier thresholds of ``model``
        (the server must have ``serving.expose_parameters`` on)."""
        _, data = self._request("GET", f"/v1/models/{model}/parameters")
        out: dict[str, Any] = json.loads(data)
        return out


def _body(rows: ArrayLike | Sequence[Mapping[str, float | None]]) -> tuple[bytes, str]:
    """(body, Content-Type): mappings as JSON, an array as NPY, no rows at all as JSON's
    empty batch, whose answer says so (as NPY, ``[]`` was a "shape (0,)" error)."""
    if isinstance(rows, Sequence) and rows and isinstance(rows[0], Mapping):
        return json.dumps({"rows": list(rows)}).encode(), _JSON
    array = np.ascontiguousarray(rows, dtype=np.float64)
    if array.shape == (0,):
        return b'{"rows": []}', _JSON
    stream = io.BytesIO()
    np.save(stream, array, allow_pickle=False)
    return stream.getvalue(), _NPY


def _unreachable(exc: OSError | http.client.HTTPException) -> LabelsError:
    """No answer from the server: status 0, code ``timeout`` or ``unreachable``."""
    code = "timeout" if isinstance(exc, TimeoutError) else "unreachable"
    return LabelsError(0, code, f"no answer from the server: {type(exc).__name__}: {exc}")


def _error(status: int, data: bytes) -> LabelsError:
    try:
        error = json.loads(data)["error"]
        return LabelsError(status, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return LabelsError(status, "http", data.decode("utf-8", "replace").strip()[:200])
