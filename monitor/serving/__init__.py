"""Serving cluster labels: the live model (and a canary) behind a low-latency API.

- ``ServedModel``: a snapshot ready to label rows with its frozen scaler, centres and
  outlier thresholds; ``core_assigner`` is the monitor's own assignment;
- ``Catalog``: every served model's live and canary variants, swapped whole when the
  store's pointers move (promotion, rollback, approval, rejection);
- ``ServingApi``: the ``/v1`` routes of ``monitor.http`` (JSON and NPY batches), with
  ``Recorder`` for its metrics; ``Splitter`` routes the canary's share of requests;
- ``monitor.serving.client``: a Python client (docs/serving.md).
"""

from __future__ import annotations

from monitor.serving._api import PREFIX, Recorder, ServingApi
from monitor.serving._catalog import Catalog, Variants
from monitor.serving._formats import JSON, NPY, RESPONSE_DTYPE, RequestError
from monitor.serving._model import Assigner, Assignment, ServedModel, core_assigner
from monitor.serving._routing import CANARY, LIVE, VARIANTS, Splitter, key_fraction

__all__ = [
    "CANARY",
    "JSON",
    "LIVE",
    "NPY",
    "PREFIX",
    "RESPONSE_DTYPE",
    "VARIANTS",
    "Assigner",
    "Assignment",
    "Catalog",
    "Recorder",
    "RequestError",
    "ServedModel",
    "ServingApi",
    "Splitter",
    "Variants",
    "core_assigner",
    "key_fraction",
]
