"""The label API under /v1 (a ``monitor.http.Api``).

- ``POST /v1/models/NAME/labels``: a batch of rows (JSON or NPY) -> per row the label,
  the distance to its centre and the outlier flag, from the variant the request was
  routed to (the live model, or the pending candidate for the canary's share);
- ``GET /v1/models`` and ``GET /v1/models/NAME``: what is served (versions, features,
  canary share, the request policy);
- ``GET /v1/models/NAME/parameters``: the live (and canary) centres, scaler and outlier
  thresholds, for clients that label rows themselves (``serving.expose_parameters``).

Requests that arrive together are answered together: those routed to the same model
are labelled in one call, so a burst of single rows costs one assignment. What one of
them holds or meets (rows that overflow, a bug) is its own answer, never the others'.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from monitor.config import ModelServingSettings
from monitor.http import Request, Response
from monitor.serving._catalog import Catalog, Variants
from monitor.serving._formats import (
    JSON,
    NPY,
    RequestError,
    check_json_length,
    check_npy_length,
    decode_json,
    encode_json,
    encode_npy,
    json_bytes_cap,
    json_rows,
    media_type,
    npy_rows,
    response_type,
)
from monitor.serving._model import Assignment, ServedModel
from monitor.serving._routing import CANARY, LIVE, Splitter

__all__ = ["PREFIX", "Recorder", "ServingApi"]

log = logging.getLogger("monitor.serving")

PREFIX = "/v1/models"
_METHODS = {"": ("GET", "HEAD"), "parameters": ("GET", "HEAD"), "labels": ("POST",)}
_MAX_KEY_CHARS = 256
_INTERNAL = RequestError(500, "internal", "labelling failed; the server log says why")
FloatArray = NDArray[np.float64]
Mask = NDArray[np.bool_]


class Recorder(Protocol):
    """Where the API counts what it answers (``monitor.exporter.ServingStats``)."""

    def answered(self, model: str, variant: str, status: int) -> None:
        """A request for ``model`` answered with an error ``status`` (4xx, 5xx)."""
        ...

    def served(
        self,
        model: str,
        variant: str,
        *,
        seconds: float,
        rows: int,
        labels: NDArray[np.integer[Any]],
        outliers: int,
    ) -> None:
        """A request answered with labels: its latency, its rows, the labels of its valid rows."""
        ...


@dataclass(frozen=True)
class _Target:
    model: str | None  # None: the list of models
    action: str  # "", "labels" or "parameters"


@functools.lru_cache(maxsize=256)  # each layer asks; the paths in use are few
def _target(path: str) -> _Target | None:
    if path in (PREFIX, PREFIX + "/"):
        return _Target(None, "")
    if not path.startswith(PREFIX + "/"):
        return None
    parts = path[len(PREFIX) + 1 :].split("/")
    if len(parts) == 1 and parts[0]:
        return _Target(parts[0], "")
    if len(parts) == 2 and parts[0] and parts[1] in _METHODS:
        return _Target(parts[0], parts[1])
    return None


def _json(status: int, body: Any, *headers: tuple[str, str]) -> Response:
    return Response(status, json.dumps(body).encode(), JSON, headers)


def _error(exc: RequestError) -> Response:
    return _json(exc.status, {"error": {"code": exc.code, "message": str(exc)}})


@dataclass(eq=False)
class _Job:
    """A labels request that passed every check, waiting for its model's assignment."""

    request: Request
    model: str
    variant: str
    served: ServedModel
    rows: FloatArray  # (n, d) as sent
    valid: Mask | None  # rows to label; None: all of them
    answer: str  # JSON or NPY
    result: Assignment | None = None
    error: RequestError | None = None  # found with the other jobs: rows that overflow


def _finite_rows(rows: FloatArray, served: ServedModel, policy: str) -> Mask | None:
    """The rows to label: None when all are finite; 400 for the first bad one under reject."""
    finite = np.isfinite(rows)
    if finite.all():
        return None
    valid = cast(Mask, finite.all(axis=1))
    if policy == "reject":
        i, j = np.argwhere(~finite)[0]
        value = float(rows[i, j])
        # JSON's null reads as NaN here: "is nan" named a value the client never sent (exB).
        infinite = "is Infinity" if value > 0 else "is -Infinity"
        what = "has no value (null or NaN)" if np.isnan(value) else infinite
        raise RequestError(
            400,
            "invalid_values",
            f"row {int(i)}, feature {served.features[int(j)]!r} {what}; rows must be finite "
            "(serving.nan_policy: reject)",
        )
    return valid


class ServingApi:
    """Answers the label API from a ``Catalog``; counts what it answers in a ``Recorder``."""

    def __init__(
        self,
        catalog: Catalog,
        recorder: Recorder,
        *,
        splitter: Splitter | None = None,
        expose_parameters: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self._recorder = recorder
        self._splitter = splitter or Splitter()
        self._expose_parameters = expose_parameters
        self._clock = clock

    # -- monitor.http.Api -------------------------------------------------------------

    def methods(self, path: str) -> tuple[str, ...]:
        target = _target(path)
        return () if target is None else _METHODS[target.action]

    def admit(self, request: Request) -> Response | None:
        """Refuse before the body is read: unknown model, media types, an empty body."""
        target = _target(request.path)
        assert target is not None and target.model is not None
        try:
            if self._catalog.policy(target.model) is None:
                raise self._unknown(target.model)
            kind = media_type(request.headers.get("content-type"))
            if kind not in (JSON, NPY):
                raise RequestError(
                    415,
                    "unsupported_media_type",
                    f"Content-Type must be {JSON} or {NPY}; "
                    + (f"got {kind!r}" if kind else "the request has none"),
                )
            coding = (request.headers.get("content-encoding") or "identity").strip().lower()
            if coding != "identity":  # a gzip body read as rows: "not UTF-8" or bad NPY
                raise RequestError(
                    415,
                    "unsupported_encoding",
                    f"Content-Encoding {coding!r} is not accepted: send the body uncompressed",
                )
            response_type(request.headers.get("accept"))
            if request.content_length() == 0:
                raise RequestError(400, "bad_rows", "the request has no body: send rows")
            self._check_length(target.model, request.content_length(), kind)
        except RequestError as exc:
            return _error(exc)
        return None

    def _check_length(self, name: str, length: int, kind: str) -> None:
        """Refuse a body longer than ``max_rows`` rows of the model can be (either
        variant's features): parsing such JSON would hold the loop for seconds, and a body
        that can never be valid would be read (into the budget of bodies in flight) for
        nothing."""
        policy, variants = self._catalog.policy(name), self._catalog.get(name)
        assert policy is not None
        served = [s for s in ([] if variants is None else [variants.live, variants.canary]) if s]
        if not served:
            return
        if kind == NPY:
            check_npy_length(length, max(len(s.features) for s in served), policy.max_rows)
            return
        features = max(
            (s.features for s in served), key=lambda f: json_bytes_cap(f, policy.max_rows)
        )
        check_json_length(length, features, policy.max_rows)

    def refused(self, request: Request, status: int) -> None:
        target = _target(request.path)
        if target is None or target.action != "labels" or target.model is None:
            return  # only label requests are counted, and only for served models
        if self._catalog.policy(target.model) is not None:
            # Refused before it was routed: counted with the live model.
            self._recorder.answered(target.model, LIVE, status)

    def handle(self, requests: Sequence[Request]) -> list[Response]:
        """The answers; a request that meets a bug gets a 500 of its own, the others theirs."""
        answers: list[Response | _Job] = []
        for request in requests:
            try:
                answers.append(self._answer(request))
            except Exception:
                self.refused(request, 500)  # not routed yet: counted with the live model
                answers.append(_internal(request))
        jobs = [a for a in answers if isinstance(a, _Job)]
        if jobs:
            self._assign(jobs)
        return [a if isinstance(a, Response) else self._labels_or_500(a) for a in answers]

    # -- requests ---------------------------------------------------------------------

    def _answer(self, request: Request) -> Response | _Job:
        target = _target(request.path)
        assert target is not None
        if target.model is None:
            return _json(200, [self._describe(name) for name in self._catalog.names()])
        if self._catalog.get(target.model) is None:
            return _error(self._unknown(target.model))
        if target.action == "labels":
            return self._prepare(request, target.model)
        if target.action == "parameters":
            return self._parameters(target.model)
        return _json(200, self._describe(target.model))

    def _unknown(self, name: str) -> RequestError:
        names = ", ".join(self._catalog.names()) or "none"
        return RequestError(404, "unknown_model", f"no model {name!r} is served; served: {names}")

    def _prepare(self, request: Request, name: str) -> Response | _Job:
        """Parse, route and check one labels request; an error answer is counted here."""
        policy = self._catalog.policy(name)
        variants = self._catalog.get(name)
        assert policy is not None and variants is not None
        variant = LIVE
        try:
            answer = response_type(request.headers.get("accept"))
            doc = None
            if media_type(request.headers.get("content-type")) == JSON:
                doc = decode_json(request.body, policy.key_field)
            variant, served = self._route(name, variants, self._key(request, doc, policy))
            if doc is not None:
                rows = json_rows(doc, served.features, policy.max_rows)
            else:
                rows = npy_rows(request.body, served.features, policy.max_rows)
            valid = _finite_rows(rows, served, policy.nan_policy)
        except RequestError as exc:
            self._recorder.answered(name, variant, exc.status)
            return _error(exc)
        return _Job(request, name, variant, served, rows, valid, answer)

    def _key(
        self, request: Request, doc: Mapping[str, Any] | None, policy: ModelServingSettings
    ) -> str | None:
        """The routing key: the header, else the body's field; None when neither is sent
        (an empty header, what a proxy sends for an unset variable, is not sent)."""
        key: Any = _header_text(request.headers.get(policy.key_header.lower()) or None)
        if key is None and doc is not None:
            key = doc.get(policy.key_field)
            if isinstance(key, int) and not isinstance(key, bool):
                key = str(key)
        if key is None:
            return None
        if not isinstance(key, str) or not key or len(key) > _MAX_KEY_CHARS:
            raise RequestError(
                400,
                "bad_key",
                f"the routing key must be a non-empty string of at most {_MAX_KEY_CHARS} chars "
                "or an integer",
            )
        return key

    def _no_model(self, name: str) -> RequestError:
        """No live model to answer from: none stored yet, or the stored one does not load."""
        problem = self._catalog.problem(name)
        if problem is None:
            return RequestError(503, "no_model", f"model {name!r} has no live version to serve yet")
        return RequestError(503, "no_model", f"model {name!r} has no version to serve: {problem}")

    def _route(self, name: str, variants: Variants, key: str | None) -> tuple[str, ServedModel]:
        if variants.live is None:
            raise self._no_model(name)
        canary = variants.canary
        if canary is not None and self._splitter.to_canary(
            name, canary.version, variants.share, key
        ):
            return CANARY, canary
        return LIVE, variants.live

    def _assign(self, jobs: list[_Job]) -> None:
        """Label every job, one assignment per model for the jobs routed to it."""
        groups: dict[int, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(id(job.served), []).append(job)
        for group in groups.values():
            try:
                _assign_group(group)
            except Exception:
                log.exception("model=%s: labelling %d requests failed", group[0].model, len(group))
                # their result stays None: a 500 each

    def _labels_or_500(self, job: _Job) -> Response:
        try:
            return self._labels(job)
        except Exception:
            self._recorder.answered(job.model, job.variant, 500)
            return _internal(job.request)

    def _labels(self, job: _Job) -> Response:
        if job.error is not None:
            self._recorder.answered(job.model, job.variant, job.error.status)
            return _error(job.error)
        if job.result is None:
            self._recorder.answered(job.model, job.variant, 500)
            return _error(_INTERNAL)
        n = job.rows.shape[0]
        if job.answer == NPY:
            body = encode_npy(job.result, job.valid, n)
        else:
            head = {"model": job.model, "version": job.served.version, "variant": job.variant}
            body = encode_json(head, job.result, job.valid, n)
        headers = (
            ("X-Kmeans-Model-Version", str(job.served.version)),
            ("X-Kmeans-Variant", job.variant),
        )
        response = Response(200, body, job.answer, headers)
        self._recorder.served(
            job.model,
            job.variant,
            seconds=max(0.0, self._clock() - job.request.received),
            rows=n,
            labels=job.result.labels,
            outliers=int(np.count_nonzero(job.result.outliers)),
        )
        return response

    # -- descriptions -----------------------------------------------------------------

    def _describe(self, name: str) -> dict[str, Any]:
        variants = self._catalog.get(name)
        policy = self._catalog.policy(name)
        assert variants is not None and policy is not None
        live, canary = variants.live, variants.canary
        return {
            "model": name,
            "live_version": None if live is None else live.version,
            "canary_version": None if canary is None else canary.version,
            "canary_share": variants.share,
            "features": None if live is None else list(live.features),
            "k": None if live is None else live.k,
            "metric": None if live is None else live.metric,
            "max_rows": policy.max_rows,
            "nan_policy": policy.nan_policy,
            "key_header": policy.key_header,
            "key_field": policy.key_field,
        }

    def _parameters(self, name: str) -> Response:
        if not self._expose_parameters:
            return _error(
                RequestError(
                    404,
                    "not_exposed",
                    "model parameters are not exposed (serving.expose_parameters)",
                )
            )
        variants = self._catalog.get(name)
        assert variants is not None
        if variants.live is None:
            return _error(self._no_model(name))
        return _json(
            200, {"model": name, "live": _params(variants.live), "canary": _params(variants.canary)}
        )


def _header_text(value: str | None) -> str | None:
    """A header value (its bytes read as Latin-1) read as UTF-8 when its bytes are UTF-8,
    as clients send text beyond ASCII and as the JSON field is read: one key, one variant."""
    if value is None or value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return value


def _internal(request: Request) -> Response:
    """The 500 of a request that met a bug; called while handling its exception."""
    log.exception("error serving %s %s", request.method, request.path)
    return _error(_INTERNAL)


def _assign_group(group: list[_Job]) -> None:
    """Label the jobs routed to one model in one call; each takes its slice."""
    served = group[0].served
    parts = [j.rows if j.valid is None else j.rows[j.valid] for j in group]
    rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if served.overflow(rows) is not None:
        # Rare: the requests that hold such rows are refused, the others labelled.
        for i, job in enumerate(group):
            if (why := served.overflow(parts[i])) is not None:
                job.error = RequestError(400, "invalid_values", why)
                parts[i] = parts[i][:0]
        rows = np.concatenate(parts)
    result = served.assign(rows) if rows.shape[0] else None
    start = 0
    for job, part in zip(group, parts, strict=True):
        stop = start + part.shape[0]
        job.result = _slice(result, start, stop)
        start = stop


def _slice(result: Assignment | None, start: int, stop: int) -> Assignment:
    if result is None:  # every row of the group was left out by the NaN policy
        return Assignment(np.empty(0, dtype=np.int64), np.empty(0), np.empty(0, dtype=bool))
    return Assignment(
        result.labels[start:stop], result.distances[start:stop], result.outliers[start:stop]
    )


def _params(served: ServedModel | None) -> dict[str, Any] | None:
    if served is None:
        return None
    return {
        "version": served.version,
        "features": list(served.features),
        "metric": served.metric,
        "scaler": {
            "kind": served.scaler.kind,
            "center": served.scaler.center.tolist(),
            "scale": served.scaler.scale.tolist(),
        },
        "centers": served.centers.tolist(),
        "outlier_thresholds": served.thresholds.tolist(),
    }
