"""Typed settings: ``parse`` (pure, validated) apart from ``load`` (file + environment).

Precedence: command-line flags > environment (``KMEANS_MONITOR_*``) > file > defaults.
``parse`` reports every problem at once, each naming the model and the field.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from monitor.durations import parse_duration
from monitor.errors import ConfigError, InvalidInputError

__all__ = [
    "DaemonSettings",
    "KRange",
    "ModelSettings",
    "Settings",
    "SloSettings",
    "ThresholdSettings",
    "TrainingSettings",
    "ValidationSettings",
    "load",
    "parse",
]

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
FEATURE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
SCALINGS = ("standard", "robust", "none")
METRICS = ("euclidean", "cosine")
RETRAIN_POLICIES = ("scheduled", "on-drift", "manual")
THRESHOLD_MODES = ("fixed", "calibrated")
NAN_POLICIES = ("fail", "drop")
K_CRITERIA = ("silhouette", "gap", "elbow")

T = TypeVar("T")


@dataclass(frozen=True)
class KRange:
    """Choose k in [min, max] by a criterion when the reference is trained."""

    min: int
    max: int
    criterion: str = "silhouette"


@dataclass(frozen=True)
class ThresholdSettings:
    """Alarm thresholds; in ``calibrated`` mode the calibrated ones replace the fixed ones."""

    mode: str = "fixed"
    false_alarm_rate: float = 0.01
    feature_psi_warning: float = 0.1
    feature_psi_critical: float = 0.25
    label_psi: float = 0.1
    centroid_drift: float = 0.5
    silhouette_drop: float = 0.15
    outlier_ratio: float = 0.05
    outlier_quantile: float = 0.99
    calibration_refits: int = 5  # warm-started refits: centroid drift, and the model optimism


@dataclass(frozen=True)
class SloSettings:
    """Objectives the alert rules compare against."""

    freshness: float = 7 * 86400.0
    run_success: float = 0.99
    run_duration_budget: float | None = None  # None: half the schedule interval


@dataclass(frozen=True)
class ValidationSettings:
    """What a window must satisfy before it is scored."""

    min_rows: int = 100
    nan_policy: str = "fail"
    max_invalid_ratio: float = 0.01  # with nan_policy=drop: the share of rows that may go


@dataclass(frozen=True)
class TrainingSettings:
    """How references and candidates are trained and scored."""

    n_init: int = 3
    candidate_restarts: int = 1  # k-means++ restarts of the candidate on a sample; 0: none
    max_iter: int = 300
    tol: float = 1e-4
    seed: int = 0
    silhouette_sample: int = 10000
    psi_bins: int = 10
    retrain_every: float = 86400.0  # policy "scheduled": promote when the live model is this old


@dataclass(frozen=True)
class ModelSettings:
    """One monitored model."""

    name: str
    features: tuple[str, ...]
    source_kind: str
    source: Mapping[str, Any]  # the source's own options, validated by the source module
    k: int | KRange
    window: float
    interval: float | None
    cron: str | None
    scaling: str = "standard"
    metric: str = "euclidean"
    retrain: str = "manual"
    misfire_grace: float | None = None  # None: half the interval
    thresholds: ThresholdSettings = field(default_factory=ThresholdSettings)
    slo: SloSettings = field(default_factory=SloSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)


@dataclass(frozen=True)
class DaemonSettings:
    """Process-wide settings."""

    listen: str = "127.0.0.1:9310"
    state_dir: Path = Path("var")
    working_memory_mib: float = 64.0
    max_clusters: int = 128
    max_workers: int = 2
    blas_threads: int = 1  # BLAS threads per process (0: leave the library's default)
    pushgateway: str | None = None
    log_level: str = "INFO"


@dataclass(frozen=True)
class Settings:
    """Everything the daemon needs, validated."""

    daemon: DaemonSettings
    models: tuple[ModelSettings, ...]

    def model(self, name: str) -> ModelSettings:
        for m in self.models:
            if m.name == name:
                return m
        names = ", ".join(m.name for m in self.models) or "(none)"
        raise KeyError(f"no model named {name!r}; configured: {names}")


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6); raise InvalidInputError when malformed."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidInputError(f"listen: must be HOST:PORT like 127.0.0.1:9310; got {value!r}")
    return host, int(port)


class _Reader:
    """Reads one mapping, collecting problems instead of stopping at the first."""

    def __init__(self, raw: Any, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: must be a mapping; got {type(raw).__name__}")
            raw = {}
        self.raw: Mapping[str, Any] = raw
        self.seen: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, default: T, convert: Callable[[Any, str], T]) -> T:
        self.seen.add(key)
        if key not in self.raw or self.raw[key] is None:
            return default
        try:
            return convert(self.raw[key], self.path(key))
        except (InvalidInputError, ValueError, TypeError) as exc:
            self.problems.append(str(exc))
            return default

    def require(self, key: str, convert: Callable[[Any, str], T]) -> T | None:
        self.seen.add(key)
        if key not in self.raw or self.raw[key] is None:
            self.problems.append(f"{self.path(key)}: required")
            return None
        try:
            return convert(self.raw[key], self.path(key))
        except (InvalidInputError, ValueError, TypeError) as exc:
            self.problems.append(str(exc))
            return None

    def child(self, key: str) -> _Reader:
        self.seen.add(key)
        return _Reader(self.raw.get(key), self.path(key), self.problems)

    def finish(self) -> None:
        for key in self.raw:
            if key not in self.seen:
                valid = ", ".join(sorted(self.seen))
                self.problems.append(f"{self.path(str(key))}: unknown field (valid: {valid})")


def _int(low: int | None = None, high: int | None = None) -> Callable[[Any, str], int]:
    def convert(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"{where}: must be an integer; got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            hi = "inf" if high is None else high
            raise InvalidInputError(f"{where}: must be in [{low}, {hi}]; got {value!r}")
        return value

    return convert


def _float(
    low: float | None = None, high: float | None = None, *, open_low: bool = False
) -> Callable[[Any, str], float]:
    def convert(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(f"{where}: must be a number; got {value!r}")
        v = float(value)
        bad = not math.isfinite(v)
        bad = bad or (low is not None and (v < low or (open_low and v == low)))
        bad = bad or (high is not None and v > high)
        if bad:
            lo = "-inf" if low is None else low
            hi = "inf" if high is None else high
            bracket = "(" if open_low else "["
            raise InvalidInputError(f"{where}: must be in {bracket}{lo}, {hi}]; got {value!r}")
        return v

    return convert


def _choice(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def convert(value: Any, where: str) -> str:
        if value not in choices:
            raise InvalidInputError(
                f"{where}: must be one of {{{', '.join(choices)}}}; got {value!r}"
            )
        return str(value)

    return convert


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{where}: must be a non-empty string; got {value!r}")
    return value


def _duration(value: Any, where: str) -> float:
    return parse_duration(value, where)


def _cron(value: Any, where: str) -> str:
    text = _str(value, where)
    if len(text.split()) != 5:
        raise InvalidInputError(
            f"{where}: must be a 5-field crontab expression like '*/5 * * * *'; got {value!r}"
        )
    return text


def _features(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidInputError(
            f"{where}: must be a non-empty list of feature names; got {value!r}"
        )
    out: list[str] = []
    for i, name in enumerate(value):
        if not isinstance(name, str) or not FEATURE_NAME.match(name):
            raise InvalidInputError(
                f"{where}[{i}]: must match {FEATURE_NAME.pattern}; got {name!r}"
            )
        if name in out:
            raise InvalidInputError(f"{where}[{i}]: duplicate feature {name!r}")
        out.append(name)
    return tuple(out)


def _parse_daemon(r: _Reader) -> DaemonSettings:
    d = DaemonSettings()

    def listen(value: Any, where: str) -> str:
        parse_listen(_str(value, where))
        return str(value)

    out = DaemonSettings(
        listen=r.get("listen", d.listen, listen),
        state_dir=r.get("state_dir", d.state_dir, lambda v, w: Path(_str(v, w))),
        working_memory_mib=r.get("working_memory_mib", d.working_memory_mib, _float(1.0, 1e6)),
        max_clusters=r.get("max_clusters", d.max_clusters, _int(2, 4096)),
        max_workers=r.get("max_workers", d.max_workers, _int(1, 64)),
        blas_threads=r.get("blas_threads", d.blas_threads, _int(0, 256)),
        pushgateway=r.get("pushgateway", d.pushgateway, _str),
        log_level=r.get("log_level", d.log_level, _choice(("DEBUG", "INFO", "WARNING", "ERROR"))),
    )
    r.finish()
    return out


def _parse_k(value: Any, where: str, max_clusters: int) -> int | KRange:
    if isinstance(value, Mapping):
        unknown = set(value) - {"min", "max", "criterion"}
        if unknown:
            raise InvalidInputError(
                f"{where}: unknown field(s) {sorted(unknown)} (valid: min, max, criterion)"
            )
        lo = _int(1, max_clusters)(value.get("min", 2), f"{where}.min")
        hi = _int(2, max_clusters)(value.get("max"), f"{where}.max")
        if hi <= lo:
            raise InvalidInputError(f"{where}: max ({hi}) must be greater than min ({lo})")
        crit = _choice(K_CRITERIA)(value.get("criterion", "silhouette"), f"{where}.criterion")
        return KRange(lo, hi, crit)
    return _int(2, max_clusters)(value, where)


def _parse_model(r: _Reader, daemon: DaemonSettings) -> ModelSettings | None:
    name = r.require("name", _str)
    if name is not None and not MODEL_NAME.match(name):
        r.problems.append(f"{r.path('name')}: must match {MODEL_NAME.pattern}; got {name!r}")
        name = None
    if name is not None:
        r.where = f"models[{name}]"
    features = r.require("features", _features)
    k = r.require("k", lambda v, w: _parse_k(v, w, daemon.max_clusters))
    window = r.require("window", _duration)

    src = r.child("source")
    kind = src.require("kind", _str)
    source = {key: val for key, val in src.raw.items() if key != "kind"}

    sched = r.child("schedule")
    interval = sched.get("interval", None, _duration)
    cron = sched.get("cron", None, _cron)
    grace = sched.get("misfire_grace", None, _duration)
    if (interval is None) == (cron is None):
        r.problems.append(f"{sched.where}: give exactly one of 'interval' or 'cron'")
    sched.finish()

    td = ThresholdSettings()
    t = r.child("thresholds")
    thresholds = ThresholdSettings(
        mode=t.get("mode", td.mode, _choice(THRESHOLD_MODES)),
        false_alarm_rate=t.get("false_alarm_rate", td.false_alarm_rate, _float(1e-6, 0.5)),
        feature_psi_warning=t.get(
            "feature_psi_warning", td.feature_psi_warning, _float(0, None, open_low=True)
        ),
        feature_psi_critical=t.get(
            "feature_psi_critical", td.feature_psi_critical, _float(0, None, open_low=True)
        ),
        label_psi=t.get("label_psi", td.label_psi, _float(0, None, open_low=True)),
        centroid_drift=t.get("centroid_drift", td.centroid_drift, _float(0, None, open_low=True)),
        silhouette_drop=t.get("silhouette_drop", td.silhouette_drop, _float(0, 2)),
        outlier_ratio=t.get("outlier_ratio", td.outlier_ratio, _float(0, 1, open_low=True)),
        calibration_refits=t.get("calibration_refits", td.calibration_refits, _int(0, 10000)),
        outlier_quantile=t.get(
            "outlier_quantile", td.outlier_quantile, _float(0.5, 1, open_low=True)
        ),
    )
    if thresholds.feature_psi_critical < thresholds.feature_psi_warning:
        t.problems.append(
            f"{t.where}: feature_psi_critical ({thresholds.feature_psi_critical}) must not be "
            f"below feature_psi_warning ({thresholds.feature_psi_warning})"
        )
    t.finish()

    sd = SloSettings()
    s = r.child("slo")
    slo = SloSettings(
        freshness=s.get("freshness", sd.freshness, _duration),
        run_success=s.get("run_success", sd.run_success, _float(0.5, 1, open_low=False)),
        run_duration_budget=s.get("run_duration_budget", sd.run_duration_budget, _duration),
    )
    if slo.run_success >= 1.0:
        s.problems.append(
            f"{s.path('run_success')}: must be below 1 (an SLO of 100% has no budget)"
        )
    s.finish()

    vd = ValidationSettings()
    v = r.child("validation")
    validation = ValidationSettings(
        min_rows=v.get("min_rows", vd.min_rows, _int(2)),
        nan_policy=v.get("nan_policy", vd.nan_policy, _choice(NAN_POLICIES)),
        max_invalid_ratio=v.get("max_invalid_ratio", vd.max_invalid_ratio, _float(0, 1)),
    )
    v.finish()

    trd = TrainingSettings()
    tr = r.child("training")
    training = TrainingSettings(
        n_init=tr.get("n_init", trd.n_init, _int(1, 100)),
        candidate_restarts=tr.get("candidate_restarts", trd.candidate_restarts, _int(0, 100)),
        max_iter=tr.get("max_iter", trd.max_iter, _int(1, 100000)),
        tol=tr.get("tol", trd.tol, _float(0, 1)),
        seed=tr.get("seed", trd.seed, _int(0, 2**32 - 1)),
        silhouette_sample=tr.get("silhouette_sample", trd.silhouette_sample, _int(100, 10**6)),
        psi_bins=tr.get("psi_bins", trd.psi_bins, _int(2, 1000)),
        retrain_every=tr.get("retrain_every", trd.retrain_every, _duration),
    )
    tr.finish()

    scaling = r.get("scaling", "standard", _choice(SCALINGS))
    metric = r.get("metric", "euclidean", _choice(METRICS))
    retrain = r.get("retrain", "manual", _choice(RETRAIN_POLICIES))
    r.finish()

    if isinstance(k, int) and k > validation.min_rows:
        r.problems.append(
            f"{r.where}.k: {k} clusters need at least as many rows; validation.min_rows is "
            f"{validation.min_rows}"
        )
    if None in (name, features, k, window, kind) or (interval is None and cron is None):
        return None
    assert name is not None and features is not None and k is not None
    assert window is not None and kind is not None
    return ModelSettings(
        name=name,
        features=features,
        source_kind=kind,
        source=source,
        k=k,
        window=window,
        interval=interval,
        cron=cron,
        scaling=scaling,
        metric=metric,
        retrain=retrain,
        misfire_grace=grace,
        thresholds=thresholds,
        slo=slo,
        validation=validation,
        training=training,
    )


def parse(raw: Any) -> Settings:
    """Validate a configuration mapping; raise ConfigError listing every problem."""
    problems: list[str] = []
    top = _Reader(raw, "", problems)
    daemon = _parse_daemon(top.child("daemon"))
    top.seen.add("models")
    models_raw = top.raw.get("models")
    models: list[ModelSettings] = []
    if not isinstance(models_raw, list) or not models_raw:
        problems.append("models: must be a non-empty list of models")
        models_raw = []
    names: set[str] = set()
    for i, item in enumerate(models_raw):
        model = _parse_model(_Reader(item, f"models[{i}]", problems), daemon)
        if model is None:
            continue
        if model.name in names:
            problems.append(f"models[{i}].name: duplicate model name {model.name!r}")
        names.add(model.name)
        models.append(model)
    top.finish()
    if problems:
        raise ConfigError(problems)
    return Settings(daemon=daemon, models=tuple(models))


ENV_PREFIX = "KMEANS_MONITOR_"
_ENV_KEYS = {
    "LISTEN": "listen",
    "STATE_DIR": "state_dir",
    "WORKING_MEMORY_MIB": "working_memory_mib",
    "PUSHGATEWAY": "pushgateway",
    "LOG_LEVEL": "log_level",
}


def load(
    path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    raw: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the YAML file (or ``raw``), apply environment then ``overrides`` to ``daemon``."""
    import yaml

    if raw is None:
        if path is None:
            raise ConfigError(["no configuration: give --config FILE"])
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    data = dict(raw or {})
    daemon = dict(data.get("daemon") or {})
    environ = os.environ if env is None else env
    for key, target in _ENV_KEYS.items():
        if ENV_PREFIX + key in environ:
            value: Any = environ[ENV_PREFIX + key]
            if target == "working_memory_mib":
                try:
                    value = float(value)
                except ValueError:
                    raise ConfigError(
                        [f"{ENV_PREFIX}{key}: must be a number; got {value!r}"]
                    ) from None
            daemon[target] = value
    for key, value in (overrides or {}).items():
        if value is not None:
            daemon[key] = value
    data["daemon"] = daemon
    settings = parse(data)
    if path is not None and not settings.daemon.state_dir.is_absolute():
        # A relative state_dir is relative to the configuration file, not to the cwd.
        state = (Path(path).resolve().parent / settings.daemon.state_dir).resolve()
        settings = replace(settings, daemon=replace(settings.daemon, state_dir=state))
    return settings
