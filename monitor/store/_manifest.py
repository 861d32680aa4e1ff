"""Snapshot manifests: serialising, verifying and reading one version directory.

A version directory holds ``manifest.json`` and one array file: ``arrays.npz``, or
``arrays.npz.enc`` when the store encrypts (AES-256-GCM of the same npz bytes, nonce
first). The manifest holds every scalar field, each array's dtype and shape, the size
and sha256 of the array file as stored, the snapshot's ``checksum`` and, when the store
has a key, its ``signature``.

Checksum. ``sha256`` over the canonical JSON of the manifest without ``checksum`` and
``signature`` (sorted keys, no whitespace) followed by each array in name order (name,
dtype, shape, then its C-order bytes). Signature. HMAC-SHA256 of the checksum string
under the store key's signing subkey: the checksum covers every byte that matters, so
a forged snapshot whose plain hashes were recomputed fails the signature.

Reading a manifest alone (``inspect``) is what listing does: it checks the manifest,
its signature and the array file's size, not the array bytes; ``read_snapshot`` checks
everything.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.checks import check_float_mapping, check_int, check_real, check_str
from monitor.errors import (
    InvalidInputError,
    KeyMismatchError,
    NewerFormatError,
    StoreError,
    UnsignedError,
)
from monitor.formats import SNAPSHOT_FORMAT
from monitor.records import (
    NullTable,
    OutlierThresholds,
    ReferenceBins,
    ReferenceWindows,
    Scaler,
    SeasonalProfile,
    Snapshot,
)
from monitor.regularfiles import read_file
from monitor.store._crypto import CIPHER_ALG, StoreKey
from monitor.store._names import check_model_name
from monitor.timestamps import parse_time

__all__ = [
    "ARRAYS",
    "ARRAYS_ENCRYPTED",
    "FORMAT",
    "MANIFEST",
    "Manifest",
    "encode",
    "inspect",
    "read_snapshot",
]

FORMAT = SNAPSHOT_FORMAT  # written; 1 (before signatures and encryption) is still read
_READABLE_FORMATS = (1, 2)
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
ARRAYS_ENCRYPTED = "arrays.npz.enc"
_ARRAY_KINDS = "biuf"  # bool, int, uint, float: all storable without pickle
_SAVE = "DirectorySnapshotStore.save"
MANIFEST_BYTES = 16 << 20  # a manifest holds names, specs and numbers: kilobytes


def _serialise(s: Snapshot) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """Validate a snapshot and split it into a manifest body and named arrays."""
    model = check_model_name(s.model, _SAVE)
    if not isinstance(s.features, tuple | list) or not s.features:
        raise InvalidInputError(
            f"The 'snapshot.features' parameter of {_SAVE} must be a non-empty tuple of str. "
            f"Got {s.features!r} instead."
        )
    features = [check_str(f, "snapshot.features", owner=_SAVE) for f in s.features]
    d = len(features)
    bins_edges = tuple(s.bins.edges)
    bins_fractions = tuple(s.bins.reference_fractions)
    for name, group in (("edges", bins_edges), ("reference_fractions", bins_fractions)):
        if len(group) != d:
            raise InvalidInputError(
                f"The 'snapshot.bins.{name}' parameter of {_SAVE} must hold one array per "
                f"feature ({d}). Got {len(group)} instead."
            )
    k = _array_shape(s.centers, "snapshot.centers", ndim=2)[0]
    expected: list[tuple[str, Any, tuple[int | None, ...]]] = [
        ("centers", s.centers, (k, d)),
        ("scaler_center", s.scaler.center, (d,)),
        ("scaler_scale", s.scaler.scale, (d,)),
        ("reference_shares", s.reference_shares, (k,)),
        ("outlier_thresholds", s.outliers.thresholds, (k,)),
        ("sample", s.sample, (None, d)),
    ]
    for j in range(d):
        n_edges = _array_shape(bins_edges[j], f"snapshot.bins.edges[{j}]", ndim=1)[0]
        expected.append((f"bins_edges_{j}", bins_edges[j], (n_edges,)))
        expected.append((f"bins_fractions_{j}", bins_fractions[j], (n_edges + 1,)))
    expected += _optional_arrays(s, k, d)
    arrays: list[tuple[str, np.ndarray]] = []
    for name, value, shape in expected:
        got = _array_shape(value, name, ndim=len(shape))
        if any(want is not None and want != have for want, have in zip(shape, got, strict=True)):
            dims = ", ".join("m" if w is None else str(w) for w in shape)
            want_text = f"({dims},)" if len(shape) == 1 else f"({dims})"
            raise InvalidInputError(
                f"The {_field(name)!r} parameter of {_SAVE} must have shape {want_text} "
                f"(k={k}, d={d}). Got shape {got} instead."
            )
        arrays.append((name, value))

    parent = s.parent_version
    if parent is not None:
        parent = check_int(parent, "snapshot.parent_version", low=1, owner=_SAVE)
    body: dict[str, Any] = {
        "format": FORMAT,
        "model": model,
        "version": None,  # filled in when the version is claimed
        "created_at": check_real(s.created_at, "snapshot.created_at", owner=_SAVE, allow_nan=False),
        "features": features,
        "metric": check_str(s.metric, "snapshot.metric", owner=_SAVE),
        "seed": check_int(s.seed, "snapshot.seed", owner=_SAVE),
        "window_start": check_real(s.window_start, "snapshot.window_start", owner=_SAVE),
        "window_end": check_real(s.window_end, "snapshot.window_end", owner=_SAVE),
        "n_rows": check_int(s.n_rows, "snapshot.n_rows", low=0, owner=_SAVE),
        "schema_hash": check_str(s.schema_hash, "snapshot.schema_hash", owner=_SAVE),
        "package_version": check_str(s.package_version, "snapshot.package_version", owner=_SAVE),
        "reason": check_str(s.reason, "snapshot.reason", owner=_SAVE),
        "parent_version": parent,
        "slis": check_float_mapping(s.slis, "snapshot.slis", owner=_SAVE),
        "thresholds": check_float_mapping(s.thresholds, "snapshot.thresholds", owner=_SAVE),
        "scaler": {"kind": check_str(s.scaler.kind, "snapshot.scaler.kind", owner=_SAVE)},
        "bins": {
            "strategy": check_str(s.bins.strategy, "snapshot.bins.strategy", owner=_SAVE),
            "epsilon": check_real(s.bins.epsilon, "snapshot.bins.epsilon", owner=_SAVE),
        },
        "outliers": {
            "quantile": check_real(s.outliers.quantile, "snapshot.outliers.quantile", owner=_SAVE)
        },
        **_optional_body(s),
        "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in arrays},
    }
    return body, arrays


def _optional_arrays(s: Snapshot, k: int, d: int) -> list[tuple[str, Any, tuple[int | None, ...]]]:
    """The arrays of the calibration, the seasonal profile, the reference windows and the
    split baseline."""
    out: list[tuple[str, Any, tuple[int | None, ...]]] = []
    if s.split_baseline is not None:
        out.append(("split_baseline", s.split_baseline, (k,)))
    if s.null is not None:
        g, m = len(s.null.sizes), len(s.null.keys)
        out += [("null_sizes", s.null.sizes, (g,)), ("null_values", s.null.values, (g, m))]
        if s.null.drift_spread is not None:
            out.append(("null_drift_spread", s.null.drift_spread, (k, 2)))
    if s.profile is not None:
        p = s.profile.n_phases
        out += [
            ("profile_labels", s.profile.label_counts, (p, k)),
            ("profile_bins", s.profile.bin_counts, (p, None)),
            ("profile_offsets", s.profile.bin_offsets, (d + 1,)),
        ]
        if s.profile.center_sums is not None:
            out.append(("profile_centers", s.profile.center_sums, (p, k, d)))
        if s.profile.center_shifts is not None:
            out.append(("profile_shifts", s.profile.center_shifts, (p, k, d)))
    if s.reference_windows is not None:
        w = s.reference_windows
        b, m = len(w.starts), len(w.keys)
        out += [
            ("refwin_starts", w.starts, (b,)),
            ("refwin_ends", w.ends, (b,)),
            ("refwin_rows", w.rows, (b,)),
            ("refwin_values", w.values, (b, m)),
        ]
    return out


def _optional_body(s: Snapshot) -> dict[str, Any]:
    """The manifest entries of the calibration, the profile and the reference windows."""
    null: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    windows: dict[str, Any] | None = None
    if s.null is not None:
        null = {
            "keys": [check_str(key, "snapshot.null.keys", owner=_SAVE) for key in s.null.keys],
            "false_alarm_rate": check_real(s.null.false_alarm_rate, "snapshot.null", owner=_SAVE),
            "per_sli_rate": check_real(s.null.per_sli_rate, "snapshot.null", owner=_SAVE),
            "n_draws": check_int(s.null.n_draws, "snapshot.null.n_draws", low=0, owner=_SAVE),
        }
    if s.profile is not None:
        profile = {
            "period": check_real(s.profile.period, "snapshot.profile.period", owner=_SAVE),
            "width": check_int(s.profile.width, "snapshot.profile.width", low=0, owner=_SAVE),
        }
        if s.profile.timezone != "UTC":  # snapshots of UTC phases stay as they were
            profile["timezone"] = check_str(
                s.profile.timezone, "snapshot.profile.timezone", owner=_SAVE
            )
    if s.reference_windows is not None:
        keys = s.reference_windows.keys
        windows = {
            "keys": [check_str(key, "snapshot.reference_windows", owner=_SAVE) for key in keys]
        }
    return {"null": null, "profile": profile, "reference_windows": windows}


def _optional_records(m: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The optional records of a manifest (absent from snapshots written before them)."""
    out: dict[str, Any] = {
        "null": None,
        "profile": None,
        "reference_windows": None,
        "split_baseline": arrays.get("split_baseline"),
    }
    if m.get("null") is not None:
        n = m["null"]
        out["null"] = NullTable(
            sizes=arrays["null_sizes"],
            keys=tuple(str(key) for key in n["keys"]),
            values=arrays["null_values"],
            false_alarm_rate=float(n["false_alarm_rate"]),
            per_sli_rate=float(n["per_sli_rate"]),
            n_draws=int(n["n_draws"]),
            drift_spread=arrays.get("null_drift_spread"),
        )
    if m.get("profile") is not None:
        out["profile"] = SeasonalProfile(
            period=float(m["profile"]["period"]),
            label_counts=arrays["profile_labels"],
            bin_counts=arrays["profile_bins"],
            bin_offsets=arrays["profile_offsets"],
            width=int(m["profile"]["width"]),
            center_sums=arrays.get("profile_centers"),
            center_shifts=arrays.get("profile_shifts"),
            timezone=str(m["profile"].get("timezone", "UTC")),
        )
    if m.get("reference_windows") is not None:
        out["reference_windows"] = ReferenceWindows(
            starts=arrays["refwin_starts"],
            ends=arrays["refwin_ends"],
            rows=arrays["refwin_rows"],
            keys=tuple(str(key) for key in m["reference_windows"]["keys"]),
            values=arrays["refwin_values"],
        )
    return out


def _field(array_name: str) -> str:
    """The Snapshot attribute path of a stored array, for error messages."""
    fixed = {
        "centers": "snapshot.centers",
        "scaler_center": "snapshot.scaler.center",
        "scaler_scale": "snapshot.scaler.scale",
        "reference_shares": "snapshot.reference_shares",
        "outlier_thresholds": "snapshot.outliers.thresholds",
        "sample": "snapshot.sample",
        "split_baseline": "snapshot.split_baseline",
        "profile_labels": "snapshot.profile.label_counts",
        "profile_bins": "snapshot.profile.bin_counts",
        "profile_offsets": "snapshot.profile.bin_offsets",
        "profile_centers": "snapshot.profile.center_sums",
        "profile_shifts": "snapshot.profile.center_shifts",
    }
    if array_name in fixed:
        return fixed[array_name]
    prefix, _, rest = array_name.partition("_")
    optional = {"null": "null", "refwin": "reference_windows"}
    if prefix in optional:
        return f"snapshot.{optional[prefix]}.{rest}"
    kind, _, j = array_name.rpartition("_")
    attr = "edges" if kind == "bins_edges" else "reference_fractions"
    return f"snapshot.bins.{attr}[{j}]"


def _array_shape(value: Any, name: str, *, ndim: int) -> tuple[int, ...]:
    """Check that ``value`` is a numeric ndarray of ``ndim`` dimensions; return its shape."""
    label = name if name.startswith("snapshot.") else _field(name)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in _ARRAY_KINDS:
        got = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        raise InvalidInputError(
            f"The {label!r} parameter of {_SAVE} must be a numpy array of bool, int or float "
            f"(storable without pickle). Got {got} instead."
        )
    if value.ndim != ndim:
        raise InvalidInputError(
            f"The {label!r} parameter of {_SAVE} must be a {ndim}-D array. "
            f"Got shape {value.shape} instead."
        )
    return tuple(int(n) for n in value.shape)


def _canonical_json(obj: Any) -> bytes:
    # Python writes floats with repr (shortest round-trip form), so the bytes are stable.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _checksum(body: Mapping[str, Any], arrays: list[tuple[str, np.ndarray]]) -> str:
    """sha256 of the canonical manifest (without checksum) and the arrays in name order."""
    h = hashlib.sha256(_canonical_json(body))
    for name, a in sorted(arrays, key=lambda item: item[0]):
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return "sha256:" + h.hexdigest()


def _npz_bytes(arrays: list[tuple[str, np.ndarray]]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **dict(arrays))
    return buf.getvalue()


def _aad(model: str) -> bytes:
    # Binds a ciphertext to its model; the checksum binds it to its version.
    return b"kmeans-monitor snapshot arrays\0" + model.encode("ascii")


@dataclass
class Encoded:
    """A validated snapshot ready to store: its manifest body, arrays and array file."""

    body: dict[str, Any]
    arrays: list[tuple[str, np.ndarray]]
    payload: bytes  # the array file's bytes as stored (encrypted when asked)
    key: StoreKey | None

    @property
    def payload_name(self) -> str:
        return str(self.body["arrays_file"]["name"])

    def manifest_for(self, version: int) -> tuple[bytes, str]:
        """The manifest bytes and checksum of this snapshot stored as ``version``."""
        self.body["version"] = version
        checksum = _checksum(self.body, self.arrays)
        manifest: dict[str, Any] = {**self.body, "checksum": checksum}
        if self.key is not None:
            manifest["signature"] = self.key.sign(checksum)
        return (json.dumps(manifest, indent=2) + "\n").encode(), checksum


def encode(snapshot: Snapshot, *, key: StoreKey | None, encrypt: bool) -> Encoded:
    """Validate ``snapshot`` and build what the store writes (the version comes later)."""
    body, arrays = _serialise(snapshot)
    why = _inconsistent(snapshot)
    if why is not None:  # what a load would refuse is not written
        raise InvalidInputError(f"The 'snapshot' parameter of {_SAVE} is unusable: {why}")
    payload = _npz_bytes(arrays)
    encryption = None
    if encrypt:
        assert key is not None  # the store refuses encrypt without a key at construction
        payload = key.encrypt(payload, _aad(body["model"]))
        encryption = {"alg": CIPHER_ALG, "key_id": key.key_id}
    body["arrays_file"] = {
        "name": ARRAYS_ENCRYPTED if encrypt else ARRAYS,
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "encryption": encryption,
    }
    return Encoded(body, arrays, payload, key)


# ---------------------------------------------------------------------- reading


@dataclass
class Manifest:
    """A parsed manifest whose signature (when the store has a key) was verified."""

    path: Path
    body: dict[str, Any]  # without checksum and signature
    checksum: str
    signed: bool
    file_name: str
    file_size: int
    file_sha256: str
    encrypted: bool
    specs: dict[str, tuple[str, tuple[int, ...]]]  # array name -> (dtype, shape)


def _who(model: str, version: int) -> str:
    return f"snapshot v{version} of model {model!r}"


def parse_manifest(
    vdir: Path, model: str, version: int, *, key: StoreKey | None, require_signature: bool
) -> Manifest:
    """Read and check ``vdir``'s manifest: syntax, format, place, signature; raise StoreError."""
    path = vdir / MANIFEST
    try:
        raw = read_file(path, most=MANIFEST_BYTES)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    # Every manifest is written ending in a newline; without it, the tail was cut off
    # (even when what is left still parses).
    if not raw.endswith(b"\n"):
        raise StoreError(f"{path} is truncated: it does not end with a newline")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} is truncated or corrupt: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("checksum"), str):
        raise StoreError(f"{path} is corrupt: it has no checksum")
    checksum = manifest.pop("checksum")
    signature = manifest.pop("signature", None)
    signed = _check_signature(path, model, version, checksum, signature, key, require_signature)
    try:
        parsed = _describe(path, manifest, checksum, signed)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(f"{path} is corrupt: bad array description ({exc!r})") from exc
    return parsed


def _check_signature(
    path: Path,
    model: str,
    version: int,
    checksum: str,
    signature: Any,
    key: StoreKey | None,
    require_signature: bool,
) -> bool:
    """Whether the manifest is signed; raise StoreError when the signature fails or is missing."""
    if signature is None:
        if key is not None and require_signature:
            raise UnsignedError(
                f"{_who(model, version)} is not signed and the store requires signatures "
                f"({path}): it predates the store key, or its signature was removed"
            )
        return False
    if key is not None:
        key.verify(
            checksum, signature, f"{_who(model, version)} fails its signature check ({path})"
        )
    return True


def _describe(path: Path, m: dict[str, Any], checksum: str, signed: bool) -> Manifest:
    """The array file and array specs of a manifest body (raises on malformed fields)."""
    file_info = m["arrays_file"]
    name = str(file_info.get("name", ARRAYS))
    # Only the two names the store writes: a manifest never chooses a path.
    if name not in (ARRAYS, ARRAYS_ENCRYPTED):
        raise ValueError(f"array file name {name!r}")
    encrypted = file_info.get("encryption") is not None
    if encrypted != (name == ARRAYS_ENCRYPTED):
        raise ValueError("array file name and encryption disagree")
    specs = {
        str(n): (str(spec["dtype"]), tuple(int(x) for x in spec["shape"]))
        for n, spec in m["arrays"].items()
    }
    return Manifest(
        path=path,
        body=m,
        checksum=checksum,
        signed=signed,
        file_name=name,
        file_size=int(file_info["size"]),
        file_sha256=str(file_info["sha256"]),
        encrypted=encrypted,
        specs=specs,
    )


def _check_place(m: Manifest, model: str, version: int) -> None:
    """The directory names the model and version; a manifest that disagrees was moved."""
    fmt = m.body.get("format")
    if type(fmt) is int and fmt > max(_READABLE_FORMATS):
        # Not corrupt: listed CORRUPT, it made runs advise a rollback (helper-103).
        raise NewerFormatError(
            f"{_who(model, version)} was written by a newer kmeans-monitor (snapshot format "
            f"{fmt}; this one reads {list(_READABLE_FORMATS)}): upgrade kmeans-monitor"
        )
    if fmt not in _READABLE_FORMATS:
        raise StoreError(
            f"{m.path} does not describe a snapshot of format {FORMAT}: format {fmt!r} is not "
            f"supported (this store reads {list(_READABLE_FORMATS)})"
        )
    if m.body.get("model") != model or m.body.get("version") != version:
        raise StoreError(
            f"{m.path} does not describe a snapshot of format {FORMAT}: it describes "
            f"{m.body.get('model')!r} version {m.body.get('version')}, but lies in the "
            f"directory of {model!r} version {version}"
        )


def read_snapshot(
    vdir: Path, model: str, version: int, *, key: StoreKey | None, require_signature: bool
) -> tuple[Snapshot, bool, bool]:
    """Read and verify one version directory; return the snapshot, whether it is signed
    and whether its arrays are encrypted."""
    m = parse_manifest(vdir, model, version, key=key, require_signature=require_signature)
    data = _read_payload(vdir, m, model, version, key)
    arrays = _read_arrays(vdir / m.file_name, m.path, data, m.specs)
    if _checksum(m.body, arrays) != m.checksum:
        raise StoreError(
            f"{m.path} is corrupt: the checksum of the snapshot does not match "
            f"(stored {m.checksum})"
        )
    _check_place(m, model, version)
    try:
        snapshot = _snapshot_from(m.body, dict(arrays), m.checksum)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(
            f"{m.path} does not describe a snapshot of format {FORMAT}: {exc!r}"
        ) from exc
    why = _inconsistent(snapshot)
    if why is not None:
        raise StoreError(f"{m.path} describes a snapshot no model can use: {why}")
    return snapshot, m.signed, m.encrypted


def _expected_shapes(s: Snapshot, k: int, d: int) -> dict[str, tuple[np.ndarray, tuple[int, ...]]]:
    """The arrays ``_inconsistent`` checks, each with the shape k and d give it."""
    expected = {
        "centers": (s.centers, (k, d)),
        "scaler_center": (s.scaler.center, (d,)),
        "scaler_scale": (s.scaler.scale, (d,)),
        "reference_shares": (s.reference_shares, (k,)),
        "outlier_thresholds": (s.outliers.thresholds, (k,)),
    }
    if s.split_baseline is not None:
        expected["split_baseline"] = (s.split_baseline, (k,))
    if s.null is not None and s.null.drift_spread is not None:
        expected["null_drift_spread"] = (s.null.drift_spread, (k, 2))
    if s.profile is not None and s.profile.center_shifts is not None:
        expected["profile_shifts"] = (s.profile.center_shifts, (s.profile.n_phases, k, d))
    return expected


def _inconsistent(s: Snapshot) -> str | None:
    """What in the arrays of ``s`` disagrees with its features and k, or None.

    The checksum proves a snapshot unchanged, not sound: one rewritten together with its
    checksum (by hand, or by a tool of its own) reached the runs as an "internal" failure,
    or as silently wrong SLIs (outlier thresholds of the wrong length, bins without edges).
    """
    d = len(s.features)
    k = s.centers.shape[0] if s.centers.ndim == 2 else 0
    expected = _expected_shapes(s, k, d)
    if k < 1:
        return f"centers has shape {s.centers.shape}: no cluster of {d} feature(s)"
    for name, (array, shape) in expected.items():
        if array.shape != shape:
            return f"{name} has shape {array.shape}, not {shape} (k={k}, {d} features)"
        if np.isnan(array).any() or (name != "outlier_thresholds" and not np.isfinite(array).all()):
            return f"{name} holds NaN or infinity"
        if name in ("split_baseline", "null_drift_spread") and (array < 0).any():
            return f"{name} holds a negative value"
    for j, (edges, fractions) in enumerate(
        zip(s.bins.edges, s.bins.reference_fractions, strict=True)
    ):
        if edges.ndim != 1 or fractions.shape != (edges.size + 1,):
            return f"feature {j} has {edges.size} inner bin edge(s), {fractions.size} fraction(s)"
        if (
            not (np.isfinite(edges).all() and np.isfinite(fractions).all())
            or (np.diff(edges) <= 0).any()
        ):
            return f"feature {j}'s bin edges are not finite and increasing"
    return None


def _read_payload(vdir: Path, m: Manifest, model: str, version: int, key: StoreKey | None) -> bytes:
    """The npz bytes of a version: size and hash checked, decrypted when encrypted."""
    path = vdir / m.file_name
    try:
        data = read_file(path, most=m.file_size)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    # Either file may be the damaged one here, so the messages name both.
    if len(data) < m.file_size:
        raise StoreError(
            f"{path} is truncated: {len(data)} bytes where {MANIFEST} says {m.file_size} bytes"
        )
    if len(data) > m.file_size:
        raise StoreError(
            f"{path} is longer than written: more than the {m.file_size} bytes {MANIFEST} says"
        )
    if hashlib.sha256(data).hexdigest() != m.file_sha256:
        raise StoreError(f"{path} is corrupt: its sha256 does not match {MANIFEST}")
    if not m.encrypted:
        return data
    if key is None:
        raise KeyMismatchError(
            f"{_who(model, version)} is encrypted ({path}): configure the store key to read it"
        )
    plain = key.decrypt(data, _aad(model))
    if plain is None:
        written_with = m.body["arrays_file"]["encryption"].get("key_id")
        if written_with == key.key_id:  # the right key: the bytes are what changed
            raise StoreError(
                f"{_who(model, version)} cannot be decrypted ({path}): it was changed after "
                "it was written (authentication tag mismatch), though encrypted with this "
                f"store's key (key id {key.key_id!r})"
            )
        raise KeyMismatchError(
            f"{_who(model, version)} cannot be decrypted with this store's key ({path}): "
            f"it was encrypted with another key (key id {written_with!r}, this store's is "
            f"{key.key_id!r}) or changed"
        )
    return plain


def inspect(
    vdir: Path, model: str, version: int, *, key: StoreKey | None, require_signature: bool
) -> tuple[Manifest | None, StoreError | None]:
    """The manifest of a version and None, or None and why the version cannot be used
    (NewerFormatError: not corrupt, of a newer kmeans-monitor).

    Checks what can be checked without reading the array bytes: the manifest, its
    signature, its place and format, its creation time, and the array file's size.
    """
    try:
        m = parse_manifest(vdir, model, version, key=key, require_signature=require_signature)
        _check_place(m, model, version)
        path = vdir / m.file_name
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if size != m.file_size:
            raise StoreError(
                f"{path} is {'truncated' if size < m.file_size else 'longer than written'}: "
                f"{size} bytes where {MANIFEST} says {m.file_size} bytes"
            )
        if m.encrypted and key is None:
            raise KeyMismatchError(
                f"{_who(model, version)} is encrypted: configure the store key to read it"
            )
        try:
            _created_at(m.body)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{m.path} is corrupt: {exc}") from exc
    except StoreError as exc:
        return None, exc
    return m, None


def _created_at(m: Mapping[str, Any]) -> float:
    """The manifest's creation time: unix seconds from 1970 to 9999, as the store wrote
    it (a hand-edited 1e300 or NaN raises ValueError, naming the field)."""
    return parse_time(float(m["created_at"]), "created_at")


def _read_arrays(
    path: Path,
    manifest_path: Path,
    data: bytes,
    specs: Mapping[str, tuple[str, tuple[int, ...]]],
) -> list[tuple[str, np.ndarray]]:
    """Read the arrays named in the manifest, checking their dtype and shape.

    The array file's hash already matched the manifest, so a disagreement about
    names, dtypes or shapes means the manifest is the damaged file.
    """
    out: list[tuple[str, np.ndarray]] = []
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if sorted(npz.files) != sorted(specs):
                raise StoreError(
                    f"{manifest_path} is corrupt: it lists arrays {sorted(specs)}, "
                    f"{path.name} holds {sorted(npz.files)}"
                )
            for name, (dtype, shape) in specs.items():
                a = npz[name]
                if a.dtype.str != dtype or a.shape != shape:
                    raise StoreError(
                        f"{manifest_path} is corrupt: it says array {name!r} is {dtype} "
                        f"{shape}, {path.name} holds {a.dtype.str} {a.shape}"
                    )
                a.flags.writeable = False  # records are immutable; catch accidental writes
                out.append((name, a))
    except StoreError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise StoreError(f"{path} is corrupt: {exc}") from exc
    return out


def _snapshot_from(
    m: Mapping[str, Any], arrays: Mapping[str, np.ndarray], checksum: str
) -> Snapshot:
    """Rebuild a Snapshot from a verified manifest (format and place checked) and its arrays."""
    d = len(m["features"])
    parent = m["parent_version"]
    return Snapshot(
        model=str(m["model"]),
        version=int(m["version"]),
        created_at=_created_at(m),
        features=tuple(str(f) for f in m["features"]),
        metric=str(m["metric"]),
        centers=arrays["centers"],
        scaler=Scaler(
            kind=str(m["scaler"]["kind"]),
            center=arrays["scaler_center"],
            scale=arrays["scaler_scale"],
        ),
        bins=ReferenceBins(
            edges=tuple(arrays[f"bins_edges_{j}"] for j in range(d)),
            reference_fractions=tuple(arrays[f"bins_fractions_{j}"] for j in range(d)),
            epsilon=float(m["bins"]["epsilon"]),
            strategy=str(m["bins"]["strategy"]),
        ),
        reference_shares=arrays["reference_shares"],
        outliers=OutlierThresholds(
            thresholds=arrays["outlier_thresholds"], quantile=float(m["outliers"]["quantile"])
        ),
        thresholds={str(k): float(v) for k, v in m["thresholds"].items()},
        seed=int(m["seed"]),
        window_start=float(m["window_start"]),
        window_end=float(m["window_end"]),
        n_rows=int(m["n_rows"]),
        schema_hash=str(m["schema_hash"]),
        package_version=str(m["package_version"]),
        slis={str(k): float(v) for k, v in m["slis"].items()},
        sample=arrays["sample"],
        reason=str(m["reason"]),
        parent_version=None if parent is None else int(parent),
        checksum=checksum,
        **_optional_records(m, arrays),
    )
