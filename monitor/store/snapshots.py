"""Versioned, immutable model snapshots kept in a directory tree.

Layout under the store's root::

    <root>/
      <model>/                  one directory per model (name checked, never trusted)
        v000001/                one directory per version; never changed once renamed in
          manifest.json         every scalar field, each array's dtype and shape, the size
                                and sha256 of arrays.npz, and the snapshot's checksum
          arrays.npz            every array, uncompressed, loaded with allow_pickle=False
        v000002/
        LIVE                    the live version number on one line, e.g. "2\\n"
        .tmp-<random>           work in progress (a directory or a file), invisible to readers

Version directories are ``v`` and at least six digits. Arrays in ``arrays.npz`` are
``centers``, ``scaler_center``, ``scaler_scale``, ``reference_shares``,
``outlier_thresholds``, ``sample``, and ``bins_edges_<j>``/``bins_fractions_<j>`` for
each feature ``j``.

Atomicity. A snapshot is written into a ``.tmp-`` directory next to the version
directories (same filesystem), its files and the directory are fsynced, and it is
renamed to ``v<N>``; then the model directory is fsynced. The live pointer is written
to a ``.tmp-`` file, fsynced, and ``os.replace``-d over ``LIVE``. A crash therefore
leaves either the old state or the new one, plus at most a ``.tmp-`` entry.

Concurrency. Versions are claimed by the rename itself: ``rename`` of a directory onto
an existing non-empty directory fails, so a writer that loses the race rewrites its
manifest for the next number and tries again; no two writers (threads or processes)
can take the same version. Every ``.tmp-`` entry is held under an exclusive ``flock``
by its writer for as long as it exists, so the clean-up at open removes only entries
whose writer has died (the kernel drops the lock with the process).

Checksum. ``sha256`` over the canonical JSON of the manifest without its
``checksum`` (sorted keys, no whitespace; the manifest carries the size and sha256 of
``arrays.npz``) followed by each array in name order (name, dtype, shape, then its
C-order bytes). ``load`` checks the file size, the file hash and the checksum, and
raises ``StoreError`` naming the file that does not match.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
import stat
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from monitor.checks import check_float_mapping, check_int, check_real, check_str
from monitor.errors import InvalidInputError, SnapshotNotFoundError, StoreError
from monitor.records import OutlierThresholds, ReferenceBins, Scaler, Snapshot
from monitor.store._names import check_model_name, is_model_name

__all__ = ["DirectorySnapshotStore", "snapshot_summary"]

FORMAT = 1  # bump when the layout or the manifest changes incompatibly
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
LIVE = "LIVE"
TMP_PREFIX = ".tmp-"

_VERSION_DIR = re.compile(r"v([0-9]{6,})")
_LIVE_TEXT = re.compile(r"([0-9]+)\n?")
# Each lost race costs one manifest rewrite; this many in a row means something is wrong.
_MAX_CLAIMS = 1000
_ARRAY_KINDS = "biuf"  # bool, int, uint, float: all storable without pickle
_SAVE = "DirectorySnapshotStore.save"


class DirectorySnapshotStore:
    """Snapshots as immutable version directories under ``root``; meets ``SnapshotStore``."""

    def __init__(self, root: Path) -> None:
        """Open (creating if needed) the store at ``root`` and remove dead writers' temp entries."""
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for entry in os.scandir(self.root):
                if entry.is_dir(follow_symlinks=False) and is_model_name(entry.name):
                    _clean_temp_entries(Path(entry.path))
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot open the snapshot store at {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"DirectorySnapshotStore({str(self.root)!r})"

    # ------------------------------------------------------------------ queries

    def models(self) -> list[str]:
        """Models that have at least one snapshot, sorted by name."""
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            raise StoreError(f"cannot list the snapshot store at {self.root}: {exc}") from exc
        names = [
            e.name
            for e in entries
            if e.is_dir(follow_symlinks=False)
            and is_model_name(e.name)
            and _list_versions(Path(e.path))
        ]
        return sorted(names)

    def versions(self, model: str) -> list[int]:
        """All stored versions of a model, ascending (empty for an unknown model)."""
        model = check_model_name(model, "DirectorySnapshotStore.versions")
        return _list_versions(self.root / model)

    def live_version(self, model: str) -> int | None:
        """The live version, or None when no version of the model was made live yet."""
        model = check_model_name(model, "DirectorySnapshotStore.live_version")
        return _read_live(self.root / model)

    def load(self, model: str, version: int | None = None) -> Snapshot:
        """Load a version (the live one when ``version`` is None) and verify its checksum."""
        owner = "DirectorySnapshotStore.load"
        model = check_model_name(model, owner)
        if version is not None:
            version = check_int(version, "version", low=1, owner=owner)
        model_dir = self.root / model
        versions = _list_versions(model_dir)
        if not versions:
            raise SnapshotNotFoundError(
                f"no snapshot of model {model!r} in {self.root}; "
                f"models with snapshots: {self.models()}"
            )
        if version is None:
            version = _read_live(model_dir)
            if version is None:
                raise SnapshotNotFoundError(
                    f"model {model!r} has no live version yet; "
                    f"stored versions: {_format_versions(versions)}"
                )
            if version not in versions:
                raise StoreError(
                    f"{model_dir / LIVE} points to version {version} of model {model!r}, "
                    f"which is not stored; stored versions: {_format_versions(versions)}"
                )
        elif version not in versions:
            raise SnapshotNotFoundError(
                f"model {model!r} has no version {version}; "
                f"stored versions: {_format_versions(versions)}"
            )
        return _read_snapshot(model_dir / _version_dirname(version), model, version)

    # ------------------------------------------------------------------ writes

    def save(self, snapshot: Snapshot) -> Snapshot:
        """Store ``snapshot`` as a new version (max existing + 1); return it as stored."""
        if not isinstance(snapshot, Snapshot):
            raise InvalidInputError(
                f"The 'snapshot' parameter of {_SAVE} must be a Snapshot. "
                f"Got {type(snapshot).__name__} instead."
            )
        body, arrays = _serialise(snapshot)
        model_dir = self.root / snapshot.model
        try:
            _ensure_dir(model_dir)
            with _temp_entry(model_dir, directory=True) as (tmp, _):
                npz = _npz_bytes(arrays)
                body["arrays_file"] = {
                    "name": ARRAYS,
                    "size": len(npz),
                    "sha256": hashlib.sha256(npz).hexdigest(),
                }
                _write_file(tmp / ARRAYS, npz)
                for _ in range(_MAX_CLAIMS):
                    version = max(_list_versions(model_dir), default=0) + 1
                    body["version"] = version
                    checksum = _checksum(body, arrays)
                    _write_file(tmp / MANIFEST, _manifest_bytes(body, checksum))
                    _fsync_dir(tmp)
                    try:
                        os.rename(tmp, model_dir / _version_dirname(version))
                    except OSError as exc:
                        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                            continue  # another writer took this number: claim the next
                        raise
                    break
                else:
                    raise StoreError(
                        f"could not claim a version of model {snapshot.model!r} in "
                        f"{model_dir} after {_MAX_CLAIMS} attempts"
                    )
            _fsync_dir(model_dir)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(
                f"cannot write a snapshot of model {snapshot.model!r} under {model_dir}: {exc}"
            ) from exc
        return dataclasses.replace(
            snapshot, version=version, checksum=checksum, created_at=body["created_at"]
        )

    def set_live(self, model: str, version: int) -> None:
        """Make an existing, intact version live by replacing the pointer atomically."""
        owner = "DirectorySnapshotStore.set_live"
        model = check_model_name(model, owner)
        version = check_int(version, "version", low=1, owner=owner)
        # Loading verifies that the version exists and is intact before it goes live.
        self.load(model, version)
        model_dir = self.root / model
        try:
            with _temp_entry(model_dir, directory=False) as (tmp, fd):
                os.write(fd, f"{version}\n".encode())
                os.fsync(fd)
                os.replace(tmp, model_dir / LIVE)
            _fsync_dir(model_dir)
        except OSError as exc:
            raise StoreError(
                f"cannot make version {version} of model {model!r} live in {model_dir}: {exc}"
            ) from exc


def snapshot_summary(snapshot: Snapshot, *, live: bool = False) -> dict[str, Any]:
    """JSON-friendly description of a snapshot for ``snapshots list`` and ``snapshots show``."""
    return {
        "model": snapshot.model,
        "version": snapshot.version,
        "live": bool(live),
        "created_at": snapshot.created_at,
        "created_at_utc": _utc(snapshot.created_at),
        "reason": snapshot.reason,
        "parent_version": snapshot.parent_version,
        "k": snapshot.k,
        "features": list(snapshot.features),
        "metric": snapshot.metric,
        "n_rows": snapshot.n_rows,
        "window": {
            "start": snapshot.window_start,
            "end": snapshot.window_end,
            "start_utc": _utc(snapshot.window_start),
            "end_utc": _utc(snapshot.window_end),
        },
        "seed": snapshot.seed,
        "scaler": snapshot.scaler.kind,
        "slis": {name: float(value) for name, value in sorted(snapshot.slis.items())},
        "thresholds": {name: float(value) for name, value in sorted(snapshot.thresholds.items())},
        "schema_hash": snapshot.schema_hash,
        "package_version": snapshot.package_version,
        "checksum": snapshot.checksum,
    }


# ---------------------------------------------------------------------- serialising


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
        "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in arrays},
    }
    return body, arrays


def _field(array_name: str) -> str:
    """The Snapshot attribute path of a stored array, for error messages."""
    fixed = {
        "centers": "snapshot.centers",
        "scaler_center": "snapshot.scaler.center",
        "scaler_scale": "snapshot.scaler.scale",
        "reference_shares": "snapshot.reference_shares",
        "outlier_thresholds": "snapshot.outliers.thresholds",
        "sample": "snapshot.sample",
    }
    if array_name in fixed:
        return fixed[array_name]
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


def _manifest_bytes(body: Mapping[str, Any], checksum: str) -> bytes:
    return (json.dumps({**body, "checksum": checksum}, indent=2) + "\n").encode()


def _npz_bytes(arrays: list[tuple[str, np.ndarray]]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **dict(arrays))
    return buf.getvalue()


# ---------------------------------------------------------------------- reading


def _read_snapshot(vdir: Path, model: str, version: int) -> Snapshot:
    """Read and verify one version directory."""
    manifest_path = vdir / MANIFEST
    npz_path = vdir / ARRAYS
    try:
        raw = manifest_path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read {manifest_path}: {exc}") from exc
    # Every manifest is written ending in a newline; without it, the tail was cut off
    # (even when what is left still parses).
    if not raw.endswith(b"\n"):
        raise StoreError(f"{manifest_path} is truncated: it does not end with a newline")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{manifest_path} is truncated or corrupt: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("checksum"), str):
        raise StoreError(f"{manifest_path} is corrupt: it has no checksum")
    stored_checksum = manifest.pop("checksum")
    try:
        file_info = manifest["arrays_file"]
        size, sha = int(file_info["size"]), str(file_info["sha256"])
        array_specs = {
            str(n): (str(spec["dtype"]), tuple(int(x) for x in spec["shape"]))
            for n, spec in manifest["arrays"].items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(f"{manifest_path} is corrupt: bad array description ({exc!r})") from exc

    try:
        data = npz_path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read {npz_path}: {exc}") from exc
    # Either file may be the damaged one here, so the messages name both.
    if len(data) != size:
        what = "truncated" if len(data) < size else "longer than written"
        raise StoreError(
            f"{npz_path} is {what}: {len(data)} bytes where {MANIFEST} says {size} bytes"
        )
    if hashlib.sha256(data).hexdigest() != sha:
        raise StoreError(f"{npz_path} is corrupt: its sha256 does not match {MANIFEST}")
    arrays = _read_arrays(npz_path, manifest_path, data, array_specs)

    if _checksum(manifest, arrays) != stored_checksum:
        raise StoreError(
            f"{manifest_path} is corrupt: the checksum of the snapshot does not match "
            f"(stored {stored_checksum})"
        )
    try:
        return _snapshot_from(manifest, dict(arrays), stored_checksum, model, version)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(
            f"{manifest_path} does not describe a snapshot of format {FORMAT}: {exc!r}"
        ) from exc


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
    m: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    checksum: str,
    model: str,
    version: int,
) -> Snapshot:
    """Rebuild a Snapshot from a verified manifest and its arrays."""
    if m["format"] != FORMAT:
        raise ValueError(f"format {m['format']!r} is not supported (this store reads {FORMAT})")
    # The directory names the model and version; a manifest that disagrees was moved.
    if m["model"] != model or m["version"] != version:
        raise ValueError(
            f"it describes {m['model']!r} version {m['version']}, "
            f"but lies in the directory of {model!r} version {version}"
        )
    d = len(m["features"])
    parent = m["parent_version"]
    return Snapshot(
        model=str(m["model"]),
        version=int(m["version"]),
        created_at=float(m["created_at"]),
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
    )


# ---------------------------------------------------------------------- filesystem


def _version_dirname(version: int) -> str:
    return f"v{version:06d}"


def _list_versions(model_dir: Path) -> list[int]:
    """Versions present in ``model_dir`` (complete by construction), ascending."""
    try:
        entries = list(os.scandir(model_dir))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"cannot list {model_dir}: {exc}") from exc
    found = []
    for e in entries:
        match = _VERSION_DIR.fullmatch(e.name)
        if match and e.is_dir(follow_symlinks=False):
            found.append(int(match.group(1)))
    return sorted(found)


def _format_versions(versions: list[int]) -> str:
    """Compact ascending list with runs collapsed: ``[1-3, 7]``."""
    runs: list[str] = []
    start = prev = None
    for v in [*versions, None]:
        if v is not None and prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            runs.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = v
    return "[" + ", ".join(runs) + "]"


def _read_live(model_dir: Path) -> int | None:
    path = model_dir / LIVE
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read the live pointer {path}: {exc}") from exc
    match = _LIVE_TEXT.fullmatch(text)
    if match is None:
        raise StoreError(f"the live pointer {path} is corrupt: {text[:40]!r}")
    return int(match.group(1))


def _utc(ts: float) -> str | None:
    if not math.isfinite(ts):
        return None
    try:
        return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(path: Path) -> None:
    """Create ``path`` if missing and make its entry in the parent durable."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    _fsync_dir(path.parent)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def _temp_entry(parent: Path, *, directory: bool) -> Iterator[tuple[Path, int]]:
    """A fresh ``.tmp-`` directory or file in ``parent``, locked while in use.

    Yields its path and an open descriptor holding the lock. Whatever is still at the
    path afterwards (nothing, when it was renamed into place) is removed.
    """
    path, fd = _claim_temp_entry(parent, directory=directory)
    try:
        yield path, fd
    finally:
        try:
            if directory:
                shutil.rmtree(path, ignore_errors=True)
            else:
                with suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            os.close(fd)


def _claim_temp_entry(parent: Path, *, directory: bool) -> tuple[Path, int]:
    for _ in range(_MAX_CLAIMS):
        path = parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        if directory:
            os.mkdir(path)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                continue  # a cleaner took it for a dead writer's; take another
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        # Between creating and locking, a cleaner in another process may have judged
        # the entry abandoned and removed it; then the locked inode is no longer there.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            still_there = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            still_there = False
        if still_there:
            return path, fd
        os.close(fd)
    raise StoreError(f"could not create a temporary entry in {parent}")


def _clean_temp_entries(model_dir: Path) -> None:
    """Remove ``.tmp-`` entries whose writer is gone (nobody holds their lock)."""
    for entry in os.scandir(model_dir):
        if not entry.name.startswith(TMP_PREFIX):
            continue
        path = Path(entry.path)
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                os.unlink(path)
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue  # its writer finished and renamed or removed it meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            if stat.S_ISDIR(mode):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            os.close(fd)
