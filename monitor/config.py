"""Typed settings: ``parse`` (pure, validated) apart from ``load`` (file + environment).

Precedence: command-line flags > environment (``KMEANS_MONITOR_*``) > file > defaults.
``parse`` reports every problem at once, each naming the model and the field; each
model's source options are parsed by their kind, taken from the registry of source
kinds that the caller passes (the composition root passes ``monitor.sources.SOURCES``).
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from monitor import sparkconf
from monitor.checks import (
    FEATURE_NAME,
    MODEL_NAME,
    Mismatch,
    Problem,
    Shown,
    brief,
    check_base_url,
    check_choice,
    check_float,
    check_int,
    check_mapping,
    check_name,
    check_str,
    is_int,
    problem_of,
    unknown_fields,
)
from monitor.core._distances import METRICS
from monitor.core.scaling import SCALER_KINDS
from monitor.durations import MAX_SECONDS, check_duration, format_duration
from monitor.errors import ConfigError, TooFewRowsError
from monitor.ports import SourceKind
from monitor.records import SEASON_PERIODS
from monitor.redact import MASK, redact_text
from monitor.slis import FLAGGED_RUNS_TO_FIRE, SLIS, THRESHOLDS
from monitor.timestamps import format_time, same_clock, time_field
from monitor.yamlfile import AmbiguousNumbers, read_yaml

__all__ = [
    "CronCheck",
    "DaemonSettings",
    "KRange",
    "ModelServingSettings",
    "ModelSettings",
    "ReferenceSettings",
    "ServingSettings",
    "Settings",
    "SloSettings",
    "SourceSettings",
    "SparkSettings",
    "StoreSettings",
    "ThresholdSettings",
    "TrainingSettings",
    "ValidationSettings",
    "daemon_given",
    "given_log_level",
    "load",
    "named_by_origin",
    "parse",
    "parse_listen",
]

RETRAIN_POLICIES = ("scheduled", "on-drift", "manual")
THRESHOLD_MODES = ("auto", "fixed", "calibrated")
SEASONALITIES = ("auto", "none", "daily", "weekly")
NAN_POLICIES = ("fail", "drop")
SERVING_NAN_POLICIES = ("reject", "null")
K_CRITERIA = ("silhouette", "gap", "elbow")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
RUN_ISOLATIONS = ("thread", "process")  # where a run's numeric middle computes
#: Where a model's numeric work runs: this process, or a Spark cluster (monitor.engines).
ENGINES = ("local", "spark")

PUSHGATEWAY_EXAMPLE = "http://127.0.0.1:9091"

T = TypeVar("T")
S = TypeVar("S")
# Why a crontab expression would be refused by the scheduler; None when it is accepted.
CronCheck = Callable[[str], str | None]
# A check of one value: (value, field name) -> the typed value, or Mismatch.
Convert = Callable[[Any, str], T]


@dataclass(frozen=True)
class KRange:
    """Choose k in [min, max] by a criterion when the reference is trained."""

    min: int
    max: int
    criterion: str = "silhouette"


@dataclass(frozen=True)
class ThresholdSettings:
    """Alarm thresholds (docs/slis.md, calibration).

    ``calibrated`` (the default): each threshold where quiet windows of the run's size,
    drawn from the reference period, cross it with the family-wise probability
    ``false_alarm_rate``; the critical PSI level stays at least at the configured one.
    ``auto``: the values below, raised (lowered, for SLIs that alarm when low) to the
    calibrated ones where sampling noise alone would cross them, as it does in small
    windows: never more sensitive than configured. ``fixed``: exactly the values below.
    """

    mode: str = "calibrated"
    false_alarm_rate: float = 0.01
    feature_psi_warning: float = 0.1
    feature_psi_critical: float = 0.25
    label_psi: float = 0.1
    centroid_drift: float = 0.5
    # A centre this many standard errors from its reference: quiet windows of the
    # detection benchmark reach about 3 at 2,000 rows. Measured only with a calibration
    # (its spread between windows), so the fixed mode leaves it out.
    centroid_drift_se: float = 4.0
    silhouette_drop: float = 0.15
    outlier_ratio: float = 0.05
    empty_clusters: int = 0
    # Quiet windows of the detection benchmark reach 1.6 at 2,000 rows and 3 to 8 at 50
    # (a cluster of a dozen rows cuts in two by chance); a 5 % regime between the others
    # gives 2 to 3 at 2,000 rows, one outside 100. Calibrated modes replace it.
    split_gain: float = 3.0
    outlier_quantile: float = 0.99
    calibration_refits: int = 5  # warm-started refits: centroid drift, and the model optimism
    # Runs in a row on which an SLI alert's condition held before the SLI alerts fire
    # (docs/slis.md#paging): two windows in a row when a run reads one window of its own.
    flagged_runs_to_fire: int = FLAGGED_RUNS_TO_FIRE


@dataclass(frozen=True)
class ReferenceSettings:
    """The period the reference model is trained and calibrated on.

    ``window`` seconds ending at the first run, or the fixed range [``start``, ``end``).
    """

    window: float = 86400.0
    start: float | None = None
    end: float | None = None

    def span(self, now: float) -> tuple[float, float]:
        """The reference period as (start, end) unix seconds for a model first run at ``now``.

        A fixed range ends at ``now`` at the latest: a run cannot have read later rows (a
        backtest, whose files hold them, would train on its own future). TooFewRowsError
        when it starts after ``now``: no row of it can have been read yet.
        """
        if self.start is not None and self.end is not None:
            if self.start >= now:
                raise TooFewRowsError(
                    f"the reference period starts at {format_time(self.start)}, after this "
                    f"run at {format_time(now)}: none of it has been read yet"
                )
            return self.start, min(self.end, now)
        return now - self.window, now


@dataclass(frozen=True)
class SloSettings:
    """Objectives the alert rules compare against."""

    freshness: float = 7 * 86400.0
    run_success: float = 0.99
    run_duration_budget: float | None = None  # None: half the schedule interval


@dataclass(frozen=True)
class ValidationSettings:
    """What a window must satisfy before it is scored."""

    # None ("auto"): as many as clusters (at least 2), and when the live model's reference
    # period spans a day or more, half the rows of its smallest window
    # (monitor.pipeline.scoring.least_rows)
    min_rows: int | None = None
    nan_policy: str = "fail"
    max_invalid_ratio: float = 0.01  # with nan_policy=drop: the share of rows that may go


@dataclass(frozen=True)
class TrainingSettings:
    """How references and candidates are trained and scored."""

    n_init: int = 10  # k-means++ restarts of a reference fit (and of each k of a range)
    candidate_restarts: int = 1  # k-means++ restarts of the candidate on a sample; 0: none
    max_iter: int = 300
    tol: float = 1e-4
    seed: int = 0
    silhouette_sample: int = 10000
    psi_bins: int = 10
    retrain_every: float = 86400.0  # policy "scheduled": promote when the live model is this old


@dataclass(frozen=True)
class ModelServingSettings:
    """How the label API serves one model (docs/serving.md)."""

    max_rows: int = 10_000  # rows in one request (413 beyond)
    nan_policy: str = "reject"  # a row with NaN/inf: the request is a 400 | that row is null
    canary_share: float = 0.0  # share of requests the pending candidate answers (0: none)
    key_header: str = "X-Kmeans-Key"  # sticky routing key: this header...
    key_field: str = "key"  # ...or this field of a JSON body
    latency: float = 0.1  # latency SLO: requests answered within this many seconds...
    latency_objective: float = 0.95  # ...make up at least this share of them
    availability: float = 0.999  # share of requests answered without a server error


@dataclass(frozen=True)
class SourceSettings:
    """Where a model's windows come from: a source kind and its typed options."""

    kind: str
    options: Any  # the kind's own options object, as its parse_options returned it


@dataclass(frozen=True)
class SparkSettings:
    """The Spark session of a model with ``engine: spark`` (docs/configuration.md)."""

    master: str = "local[*]"
    conf: tuple[tuple[str, str], ...] = ()  # spark.* properties, in the file's order


@dataclass(frozen=True)
class ModelSettings:
    """One monitored model."""

    name: str
    features: tuple[str, ...]
    source: SourceSettings
    k: int | KRange
    window: float
    interval: float | None
    cron: str | None
    scaling: str = "standard"
    metric: str = "euclidean"
    retrain: str = "manual"
    misfire_grace: float | None = None  # None: half the interval
    run_timeout: float | None = None  # None: 80% of the interval, at least 1 minute
    reference: ReferenceSettings = field(default_factory=ReferenceSettings)
    seasonality: str = "none"  # none | daily | weekly (the file's "auto" is resolved)
    timezone: str = "UTC"  # the clock whose days and weeks the seasonal phases follow
    thresholds: ThresholdSettings = field(default_factory=ThresholdSettings)
    slo: SloSettings = field(default_factory=SloSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    engine: str = "local"
    spark: SparkSettings = field(default_factory=SparkSettings)
    serving: ModelServingSettings = field(default_factory=ModelServingSettings)


@dataclass(frozen=True)
class DaemonSettings:
    """Process-wide settings."""

    listen: str = "127.0.0.1:9310"
    state_dir: Path = Path("var")
    working_memory_mib: float = 64.0
    max_clusters: int = 128
    max_workers: int = 2
    blas_threads: int = 1  # BLAS threads per process (0: leave the library's default)
    run_threads: int = 0  # threads of one run's compiled work (0: cores / max_workers)
    pushgateway: str | None = None
    # The on-call dashboard the daemon's pages link to (None: Grafana on this host);
    # RenderOptions.dashboard_url_pattern's placeholders.
    dashboard_url_pattern: str | None = None
    log_level: str = "INFO"
    web_config_file: Path | None = None  # TLS and basic auth of the HTTP endpoint
    shutdown_grace: float = 10.0  # seconds a stop waits for runs in progress
    # "process": score, train and compare in worker processes at a lower priority;
    # "thread": in the daemon's threads
    run_isolation: str = "process"

    @property
    def threads_per_run(self) -> int:
        """``run_threads``, or with 0 the cores shared out among the ``max_workers`` runs
        that may go side by side (at least one)."""
        if self.run_threads:
            return self.run_threads
        return max(1, (os.cpu_count() or 1) // self.max_workers)


@dataclass(frozen=True)
class StoreSettings:
    """How snapshots are kept: retention, signing key, encryption (docs/security.md)."""

    keep_versions: int | None = 100  # retired versions beyond the newest N are removed
    keep_age: float | None = None  # ...unless younger than this many seconds
    keep_history: float | None = 90 * 86400.0  # runs in history.sqlite (None: all)
    key_file: Path | None = None  # HMAC key (and AES key, with encrypt) from a file...
    key_env: str | None = None  # ...or from this environment variable
    encrypt: bool = False
    require_signature: bool = False


@dataclass(frozen=True)
class ServingSettings:
    """The label API of the process (docs/serving.md); each model's policy is its own."""

    enabled: bool = True  # `run` answers /v1 on daemon.listen too
    listen: str = "127.0.0.1:9320"  # where `kmeans-monitor serve` listens
    max_body_bytes: int = 16 * 2**20  # one request body (413 beyond)
    refresh: float = 2.0  # seconds between two reads of the live and pending pointers
    expose_parameters: bool = False  # GET /v1/models/NAME/parameters: centres and scaler
    max_connections: int = 256  # open client connections of the server that answers /v1


@dataclass(frozen=True)
class Settings:
    """Everything the daemon needs, validated."""

    daemon: DaemonSettings
    models: tuple[ModelSettings, ...]
    store: StoreSettings = field(default_factory=StoreSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)
    # The file these settings were read from (absolute), for the commands they print.
    path: Path | None = None
    # The variable or option that gave a ``daemon`` field, by field (KMEANS_MONITOR_...,
    # --state-dir): a problem found later names it, as ``load`` names its own.
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def named(self, problem: str) -> str:
        """``problem`` ("daemon.FIELD: ...") named by the variable or option that gave
        the field, when one did: the file may not hold the field at all."""
        return _named(problem, self.origins)

    def origin(self, name: str) -> str:
        """``daemon.NAME``, after the variable or option that gave it when one did."""
        return self.named(f"daemon.{name}:").removesuffix(":")

    def model(self, name: str) -> ModelSettings:
        for m in self.models:
            if m.name == name:
                return m
        names = ", ".join(m.name for m in self.models) or "(none)"
        raise KeyError(f"no model named {name!r}; configured: {names}")


LISTEN_FORMS = "HOST:PORT like 127.0.0.1:9310, :9310 (every interface) or [::1]:9310"


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT``; ``:PORT`` is every interface (host ``""``), ``[::1]:PORT`` IPv6.

    An IPv6 address must be in brackets, or its last group would read as the port.
    Mismatch when malformed.
    """
    host, sep, port = str(value).rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    plain = not any(c in host for c in ":[]")
    valid_host = (bool(host) and ":" in host if bracketed else plain) and "\0" not in host
    digits = port.isascii() and port.isdigit() and len(port) <= 5
    if not sep or not valid_host or not digits or not 0 <= int(port) <= 65535:
        raise Mismatch(Problem("listen", LISTEN_FORMS, _without_userinfo(value)))
    return host, int(port)


def _without_userinfo(value: Any) -> Any:
    """``user:password@host:port`` as ``'***@host:port'``: a URL's credentials pasted in."""
    if not isinstance(value, str) or "@" not in value:
        return value
    return Shown(repr(f"{MASK}@{value.rpartition('@')[2]}"))


# --------------------------------------------------------------------------- reading


class _Reader:
    """Reads one mapping of the file, collecting every problem instead of the first."""

    def __init__(self, raw: Any, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        self.seen: set[str] = set()
        self.raw: Mapping[str, Any] = {}
        self.valid = True  # False when the value is not a mapping (reported)
        try:
            self.raw = check_mapping({} if raw is None else raw, where)
        except Mismatch as exc:
            problems.append(exc.problem.config())
            self.valid = False

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def add(self, problem: Problem) -> None:
        """Report a problem whose field is relative to this mapping."""
        self.problems.append(problem.config(self.where))

    def get(self, key: str, default: T, convert: Convert[T]) -> T:
        """The converted value of ``key``; ``default`` when it is absent, null (unless the
        field takes a null as a value) or invalid."""
        self.seen.add(key)
        value = self.raw.get(key)
        if value is None and not (key in self.raw and convert in _NULL_IS_A_VALUE):
            return default
        return self._convert(key, value, convert, default)

    def require(self, key: str, convert: Convert[T]) -> T | None:
        """The converted value of ``key``; None (and a problem) when absent or invalid."""
        self.seen.add(key)
        return self._convert(key, self.raw.get(key), convert, None)

    def _convert(self, key: str, value: Any, convert: Convert[T], fallback: S) -> T | S:
        try:
            return convert(value, key)
        except Mismatch as exc:
            self.add(exc.problem)
            return fallback

    def child(self, key: str) -> _Reader:
        self.seen.add(key)
        return _Reader(self.raw.get(key), self.path(key), self.problems)

    def finish(self) -> None:
        """Report every key that no one read."""
        for problem in unknown_fields(self.raw, self.seen):
            self.add(problem)


def _section(r: _Reader, cls: Callable[..., S], spec: Mapping[str, Convert[Any]]) -> S:
    """A settings dataclass read field by field: defaults for absent fields."""
    defaults = cls()
    out = cls(**{key: r.get(key, getattr(defaults, key), convert) for key, convert in spec.items()})
    r.finish()
    return out


def _int(low: int, high: int | None = None) -> Convert[int]:
    return partial(check_int, low=low, high=high)


def _float(
    low: float,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> Convert[float]:
    return partial(
        check_float,
        low=low,
        high=high,
        low_inclusive=low_inclusive,
        high_inclusive=high_inclusive,
    )


def _positive(high: float | None = None) -> Convert[float]:
    return _float(0, high, low_inclusive=False)


def _choice(choices: tuple[str, ...]) -> Convert[str]:
    return partial(check_choice, choices=choices)


_text: Convert[str] = partial(check_str, non_empty=True)


def _path(value: Any, name: str) -> Path:
    """A path of the configuration: text without a NUL byte (no file name holds one), and
    that the locale's encoding of file names can write."""
    text = _text(value, name)
    if "\0" in text:
        raise Mismatch(Problem(name, "a path (it holds a NUL byte)", value))
    try:
        os.fsencode(text)
    except UnicodeEncodeError:  # a traceback where the path was first used, exit 70
        must = (
            f"a path this locale's file names ({sys.getfilesystemencoding()}) can hold: "
            "run in a UTF-8 locale (LANG=C.UTF-8) or with PYTHONUTF8=1"
        )
        raise Mismatch(Problem(name, must, value)) from None
    return Path(text)


_duration: Convert[float] = check_duration


def _serving_nan_policy(value: Any, name: str) -> str:
    """One of SERVING_NAN_POLICIES; YAML reads the policy written ``nan_policy: null``
    (as the docs write it) as a null, which here is that policy's name."""
    return check_choice("null" if value is None else value, name, choices=SERVING_NAN_POLICIES)


def _history_keep(value: Any, name: str) -> float | None:
    """How long runs stay in the history: a duration of a day or more, or null (for ever:
    shorter, a restart would not find the flagged runs a page counts)."""
    return None if value is None else _a_day_or_more(value, name)


_NULL_IS_A_VALUE: frozenset[Convert[Any]] = frozenset({_serving_nan_policy, _history_keep})


def _log_level(value: Any, name: str) -> str:
    """One of LOG_LEVELS in any case, as --log-level takes it."""
    if isinstance(value, str) and value.upper() in LOG_LEVELS:
        return value.upper()
    return check_choice(value, name, choices=LOG_LEVELS)  # raises, with the value as written


#: A crontab line's time zone variable, which cronie reads before the fields.
_CRON_ZONE = re.compile(r"(CRON_)?TZ=", re.IGNORECASE)


def _cron(value: Any, name: str) -> str:
    if isinstance(value, str) and _CRON_ZONE.match(value.strip()):
        expected = (
            "a 5-field crontab expression read in UTC, with no CRON_TZ= or TZ= prefix "
            "(write the hours of another zone as their UTC hours)"
        )
        raise Mismatch(Problem(name, expected, value))
    if not isinstance(value, str) or len(value.split()) != 5:
        raise Mismatch(Problem(name, "a 5-field crontab expression like '*/5 * * * *'", value))
    return value


#: The shortest schedule.interval, misfire_grace and run_timeout. The scheduler counts a
#: run's misfire grace in whole seconds (monitor.scheduling): it cannot honour a shorter
#: interval (every run would be due before the last had started), and a shorter grace
#: would silently be a second. A cron fires at most once a minute. A run given less than
#: a second would fail every time, before it had read anything.
MIN_SCHEDULE_SECONDS = 1.0


#: The longest window or reference period. A longer one is almost surely a slip of the
#: unit (``100000d``): it would read for minutes before its run's deadline ended it.
MAX_PERIOD_SECONDS = 366 * 86400.0


def _duration_in(least: float | None = None, most: float | None = None) -> Convert[float]:
    """A duration, refused below ``least`` or above ``most`` seconds (each optional)."""

    def convert(value: Any, name: str) -> float:
        seconds = check_duration(value, name, most=MAX_SECONDS if most is None else most)
        if least is not None and seconds < least:
            raise Mismatch(Problem(name, f"a duration of at least {format_duration(least)}", value))
        return seconds

    return convert


_schedule_seconds = _duration_in(least=MIN_SCHEDULE_SECONDS)
_period_seconds = _duration_in(most=MAX_PERIOD_SECONDS)
_a_day_or_more = _duration_in(least=86400.0)


def _listen(value: Any, name: str) -> str:
    parse_listen(_text(value, name))
    return str(value)


def _features(r: _Reader) -> tuple[str, ...] | None:
    """The model's features; None, with a problem for every bad or repeated name (the
    first alone left the others for the next try)."""
    r.seen.add("features")
    value = r.raw.get("features")
    if not isinstance(value, list) or not value:
        r.add(Problem("features", "a non-empty list of feature names", value))
        return None
    valid = True
    for i, feature in enumerate(value):
        problem = problem_of(check_name, feature, f"features[{i}]", FEATURE_NAME)
        if problem is None and feature in value[:i]:
            problem = Problem(f"features[{i}]", "unique", feature)
        if problem is not None:
            r.add(problem)
            valid = False
    return tuple(value) if valid else None


# --------------------------------------------------------------------------- sections

_DAEMON: Mapping[str, Convert[Any]] = {
    "listen": _listen,
    "state_dir": _path,
    "working_memory_mib": _float(1.0, 1e6),
    "max_clusters": _int(2, 4096),
    "max_workers": _int(1, 64),
    "blas_threads": _int(0, 256),
    "run_threads": _int(0, 256),
    "pushgateway": partial(check_base_url, example=PUSHGATEWAY_EXAMPLE),
    "dashboard_url_pattern": lambda value, name: _dashboard_url_pattern(value, name),
    "log_level": _log_level,
    "web_config_file": _path,
    "shutdown_grace": _duration,
    "run_isolation": _choice(RUN_ISOLATIONS),
}


def _dashboard_url_pattern(value: Any, name: str) -> str:
    """A link pattern as the rendered rules take it (``render --dashboard-url-pattern``)."""
    # Only when the field is set: the render package brings Jinja2 with it.
    from monitor.render.options import RenderOptions

    try:
        RenderOptions(dashboard_url_pattern=value)
    except Mismatch as exc:
        raise Mismatch(Problem(name, exc.problem.expected, value)) from None
    return str(value)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise Mismatch(Problem(name, "true or false", value))
    return value


# An HTTP header name (RFC 9110 token) and a JSON field that is not the body's own.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_KEY_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def _key_field(value: Any, name: str) -> str:
    field_name = check_name(value, name, _KEY_FIELD)
    if field_name in ("rows", "features"):
        raise Mismatch(Problem(name, "a field other than rows and features", value))
    return field_name


_SERVING: Mapping[str, Convert[Any]] = {
    "enabled": _flag,
    "listen": _listen,
    "max_body_bytes": _int(1024, 2**31),
    "refresh": _duration,
    "expose_parameters": _flag,
    "max_connections": _int(1, 65536),
}
_MODEL_SERVING: Mapping[str, Convert[Any]] = {
    "max_rows": _int(1, 10**7),
    "nan_policy": _serving_nan_policy,
    "canary_share": _float(0, 1),
    "key_header": partial(check_name, pattern=_HEADER_NAME),
    "key_field": _key_field,
    "latency": _duration,
    # An objective of 100% leaves no error budget for the burn-rate alerts.
    "latency_objective": _float(0.5, 1, high_inclusive=False),
    "availability": _float(0.5, 1, high_inclusive=False),
}


def _store(r: _Reader) -> StoreSettings:
    d = StoreSettings()
    keep = r.child("keep")
    versions = keep.get("versions", d.keep_versions, _int(1))
    age = keep.get("age", d.keep_age, _duration)
    history = keep.get("history", d.keep_history, _history_keep)
    keep.finish()
    out = StoreSettings(
        keep_versions=versions,
        keep_age=age,
        keep_history=history,
        key_file=r.get("key_file", d.key_file, _path),
        key_env=r.get("key_env", d.key_env, _text),
        encrypt=r.get("encrypt", d.encrypt, _flag),
        require_signature=r.get("require_signature", d.require_signature, _flag),
    )
    if out.key_file is not None and out.key_env is not None:
        r.add(Problem("key_env", "omitted when key_file is given (one key)", out.key_env))
    if (out.encrypt or out.require_signature) and out.key_file is None and out.key_env is None:
        r.add(Problem("key_file", "set (or key_env) to encrypt or require signatures", None))
    r.finish()
    return out


# How each threshold of the SLI catalogue is configured, by its domain.
_DOMAINS: Mapping[str, Convert[Any]] = {
    "positive": _positive(),
    "ratio": _positive(1),
    "drop": _float(0, 2),
    "count": _int(0, 4096),
}
_THRESHOLDS: Mapping[str, Convert[Any]] = {
    "mode": _choice(THRESHOLD_MODES),
    "false_alarm_rate": _float(1e-6, 0.5, high_inclusive=False),
    **{t.config: _DOMAINS[t.domain] for t in THRESHOLDS.values()},
    "outlier_quantile": _float(0.5, 1, low_inclusive=False),
    "calibration_refits": _int(0, 10000),
    "flagged_runs_to_fire": _int(1, 10000),
}
# An objective of 100% leaves no error budget, so run_success stays below 1.
_SLO: Mapping[str, Convert[Any]] = {
    "freshness": _duration,
    "run_success": _float(0.5, 1, high_inclusive=False),
    "run_duration_budget": _duration,
}


def _rows_or_auto(value: Any, name: str) -> int | None:
    if value == "auto":
        return None
    if not is_int(value) or value < 2:
        raise Mismatch(Problem(name, "'auto' or an int in [2, inf)", value))
    return int(value)


_VALIDATION: Mapping[str, Convert[Any]] = {
    "min_rows": _rows_or_auto,
    "nan_policy": _choice(NAN_POLICIES),
    "max_invalid_ratio": _float(0, 1),
}
_TRAINING: Mapping[str, Convert[Any]] = {
    "n_init": _int(1, 100),
    "candidate_restarts": _int(0, 100),
    "max_iter": _int(1, 100000),
    "tol": _float(0, 1),
    "seed": _int(0, 2**32 - 1),
    "silhouette_sample": _int(100, 10**6),
    "psi_bins": _int(2, 1000),
    "retrain_every": _duration,
}


def _thresholds(r: _Reader) -> ThresholdSettings:
    t = _section(r, ThresholdSettings, _THRESHOLDS)
    # Two levels of one SLI: the milder must not be the stricter.
    pairs = {
        pair
        for sli in SLIS.values()
        for pair in itertools.pairwise(THRESHOLDS[key].config for key in sli.thresholds)
    }
    for mild, strict in sorted(pairs):
        if getattr(t, strict) < getattr(t, mild):
            r.add(Problem(strict, f"at least {mild} ({getattr(t, mild)})", getattr(t, strict)))
    return t


def _timezone(value: Any, name: str) -> str:
    """An IANA time zone name that this machine's zone data (or tzdata's) knows; not
    ``localtime`` (the host's own zone, another on the next machine), nor the files
    beside the zones (``posixrules``, ``right/...``)."""
    import zoneinfo

    expected = "an IANA time zone such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
    if not isinstance(value, str) or value not in _iana_zones():
        raise Mismatch(Problem(name, expected, value))
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise Mismatch(Problem(name, expected, value)) from None
    return value


@functools.cache
def _iana_zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def _timezone_unused(written: Any, timezone: str) -> Problem:
    """The problem of a time zone given to a model without a seasonality (``written``:
    its seasonality as the file says it, None when left out)."""
    why = (
        "seasonality: auto is none with a reference under a day"
        if written in (None, "auto")
        else "seasonality: none"
    )
    expected = f"omitted without a seasonality ({why}): it sets the clock of the phases"
    return Problem("timezone", expected, timezone)


def _reference(r: _Reader) -> ReferenceSettings | None:
    """``{window: D}`` or ``{from: T1, to: T2}``; None when it has a problem (reported)."""
    if not r.valid:
        return None  # not a mapping: the reader has said so
    before = len(r.problems)
    window = r.get("window", None, _period_seconds)
    start = r.get("from", None, time_field)
    end = r.get("to", None, time_field)
    r.finish()
    for problem in _range_ends(r.raw):
        r.add(problem)
    if start is not None and end is not None and end <= start:
        r.add(Problem("to", f"after from ({format_time(start)})", format_time(end)))
    elif start is not None and end is not None and end - start > MAX_PERIOD_SECONDS:
        most = f"at most {format_duration(MAX_PERIOD_SECONDS)} after from ({format_time(start)})"
        r.add(Problem("to", most, format_time(end)))
    if len(r.problems) > before:
        return None
    if start is not None and end is not None:
        return ReferenceSettings(window=end - start, start=start, end=end)
    return ReferenceSettings() if window is None else ReferenceSettings(window=window)


def _range_ends(raw: Mapping[str, Any]) -> list[Problem]:
    """The problems of a reference's written ends: one without the other, or both or one
    with a window. Whether an end was written, not whether it parsed: a bad one is its own
    problem."""
    given_from, given_to = (raw.get(key) is not None for key in ("from", "to"))
    window = raw.get("window")
    if given_from != given_to and window is not None:
        one, other = ("from", "to") if given_from else ("to", "from")
        mix = (
            f"omitted with window, or given with {other} instead of window: a period is "
            "{window: D}, ending at each run, or {from: T1, to: T2}"
        )
        return [Problem(one, mix, raw[one])]
    if given_from != given_to:
        missing = "from" if given_to else "to"
        return [Problem(missing, "given with the other end of the range", None)]
    if given_from and given_to and window is not None:
        return [Problem("window", "omitted with from/to (one way to say the period)", window)]
    return []


def _reference_written(raw: Any) -> str | None:
    """Which field says a model's reference period: ``reference.window``, ``reference``
    (a from/to range), or None when the default period applies."""
    if not isinstance(raw, Mapping):
        return None
    if raw.get("from") is not None or raw.get("to") is not None:
        return "reference"
    return "reference.window" if raw.get("window") is not None else None


def _seasonal_problems(
    reference: ReferenceSettings, seasonality: str, window: float | None, written: str | None
) -> list[Problem]:
    """The reference period against the cycle and the window it must hold.

    Each problem names the field the user wrote: ``reference.window``, or ``reference``
    for a from/to range; with the default period (a day), the model's ``seasonality``
    or ``window`` that needs a longer one.
    """
    shown = format_duration(reference.window)
    if written == "reference":
        span = f"{format_time(reference.start or 0)} to {format_time(reference.end or 0)}"
        shown = f"{span} ({shown})"
    fix = f"the reference period (by default {shown}: set reference.window to at least"
    problems = []
    period = SEASON_PERIODS.get(seasonality)
    if period is not None and reference.window < period:
        cycle = format_duration(period)
        what = f"one {seasonality} cycle ({cycle}) with seasonality: {seasonality}"
        problems.append(
            Problem(written, f"at least {what}", shown)
            if written
            else Problem("seasonality", f"a cycle within {fix} {cycle})", seasonality)
        )
    if window is not None and reference.window < window:
        length = format_duration(window)
        problems.append(
            Problem(written, f"at least the monitored window ({length})", shown)
            if written
            else Problem("window", f"at most {fix} {length})", length)
        )
    return problems


def _schedule(
    r: _Reader, check_cron: CronCheck | None
) -> tuple[float | None, str | None, float | None, float | None]:
    """(interval, cron, misfire_grace, run_timeout); one of the first two is set when valid.

    ``check_cron`` says why a 5-field expression would be refused by the scheduler.
    """
    interval = r.get("interval", None, _schedule_seconds)
    cron = r.get("cron", None, _cron)
    if cron is not None and check_cron is not None and (why := check_cron(cron)) is not None:
        r.add(Problem("cron", f"a crontab expression the scheduler accepts ({why})", cron))
        cron = None
    grace = r.get("misfire_grace", None, _schedule_seconds)
    timeout = r.get("run_timeout", None, _schedule_seconds)
    if (r.raw.get("interval") is None) == (r.raw.get("cron") is None):
        expected = "a mapping with exactly one of 'interval' or 'cron'"
        r.problems.append(Problem(r.where, expected, dict(r.raw)).config())
    r.finish()
    return interval, cron, grace, timeout


def _k(r: _Reader, max_clusters: int) -> int | KRange | None:
    """k, or a range to choose it from; None (and a problem) when invalid."""
    if not isinstance(r.raw.get("k"), Mapping):
        return r.require("k", _int(2, max_clusters))
    kr = r.child("k")
    low = kr.get("min", 2, _int(1, max_clusters))
    high = kr.require("max", _int(2, max_clusters))
    criterion = kr.get("criterion", "silhouette", _choice(K_CRITERIA))
    kr.finish()
    if high is not None and high <= low:
        kr.add(Problem("max", f"greater than min ({low})", high))
        return None
    return None if high is None else KRange(low, high, criterion)


def _source(
    r: _Reader,
    features: tuple[str, ...] | None,
    sources: Mapping[str, SourceKind],
    window: float | None,
) -> SourceSettings | None:
    """The source's kind and the options that kind parsed from the rest of the mapping,
    judged under the model's window too (None: invalid, reported)."""
    kind = r.require("kind", _choice(tuple(sorted(sources))))
    options_raw = {key: value for key, value in r.raw.items() if key != "kind"}
    r.seen.update(options_raw)  # the kind judges its own options
    if kind is None:
        return None
    options, problems = sources[kind].parse_options(options_raw, features)
    if not problems and window is not None:
        problems = sources[kind].window_problems(options, window)
    for problem in problems:
        r.add(problem)
    return None if problems else SourceSettings(kind, options)


def _spark(model: _Reader) -> SparkSettings | None:
    """``{master: URL, conf: {spark.key: value}}``; values are passed to Spark as text.
    None when the section has a problem (reported): defaults in place of a bad value
    would be compared with the other models' (``_one_spark_session``) as if written.

    Not read for a model on the local engine (the default): nothing uses it there, not
    even a spark source, which runs on an engine: spark model's session or Spark's
    defaults (docs/configuration.md). An engine mistyped reads it.
    """
    if model.raw.get("engine") in (None, "local"):
        model.seen.add("spark")
        return SparkSettings()
    r = model.child("spark")
    reported = len(r.problems)
    master = r.get("master", SparkSettings.master, _spark_master)
    none: Mapping[str, Any] = {}
    raw = r.get("conf", none, check_mapping)
    conf = []
    for key, value in raw.items():
        try:
            conf.append(_spark_property(key, value, f"conf.{key}"))
            _not_a_field(r, key, value)
        except Mismatch as exc:
            r.add(exc.problem)
    r.finish()
    return SparkSettings(master=master, conf=tuple(conf)) if len(r.problems) == reported else None


#: The Spark properties the spark block sets from its own fields: set in conf too, one
#: replaced the field's checked value (a master that passed check-config, the run
#: failing on conf's, naming the field's).
_SPARK_FIELDS = {"spark.master": "master"}


def _not_a_field(r: _Reader, key: str, value: Any) -> None:
    """A problem, naming the field to use, when conf sets a property of _SPARK_FIELDS."""
    name = _SPARK_FIELDS.get(key)
    if name is not None:
        expected = (
            f"set at {r.path(name)}, not in conf (conf would replace the {name} checked there)"
        )
        r.add(Problem(f"conf.{key}", expected, Shown(repr(redact_text(str(value))))))


#: The master URLs Spark accepts (docs: "Master URLs"), as a problem names them.
_SPARK_MASTERS = (
    "a Spark master URL: local, local[N] or local[N,F] (N at least 1 or *, F at least 1), "
    "spark://HOST:PORT (HA: spark://HOST1:PORT1,HOST2:PORT2), yarn or k8s://URL"
)
_LOCAL_MASTER = re.compile(r"local(?:\[(?P<n>[0-9]+|\*)(?:\s*,\s*(?P<f>[0-9]+))?\])?")
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})")


def _spark_master(value: Any, name: str) -> str:
    """A master URL of a form Spark accepts, checked without starting Spark: a bad one
    (``bogus://x``, ``local[0]``) failed every run, after a JVM's start, with Java's
    stack trace."""
    text = _text(value, name)
    if not _is_spark_master(text):
        raise Mismatch(Problem(name, _SPARK_MASTERS, Shown(repr(redact_text(text)))))
    return text


def _is_spark_master(text: str) -> bool:
    local = _LOCAL_MASTER.fullmatch(text)
    if local is not None:
        return all(v in (None, "*") or int(v) >= 1 for v in (local["n"], local["f"]))
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text == "yarn"
    if scheme == "k8s":  # k8s://https://HOST:PORT or k8s://HOST:PORT; Spark checks the rest
        return bool(rest.strip())
    if scheme != "spark":
        return False
    found = [_HOST_PORT.fullmatch(address) for address in rest.split(",")]
    return all(m is not None and 1 <= int(m["port"]) <= 65535 for m in found)


def _spark_property(key: Any, value: Any, name: str) -> tuple[str, str]:
    if not isinstance(key, str) or not key.startswith("spark."):
        raise Mismatch(Problem(name, "a Spark property name starting with 'spark.'", key))
    if isinstance(value, bool):
        text = str(value).lower()  # Spark spells booleans true/false
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        raise Mismatch(Problem(name, "a string, number or boolean", value))
    expected = sparkconf.refused(key, text)
    if expected is not None:  # Spark would refuse it as the session starts
        raise Mismatch(Problem(name, expected, Shown(repr(redact_text(text)))))
    return key, text


def _default(cls: type, name: str) -> Any:
    [f] = [f for f in fields(cls) if f.name == name]
    assert f.default is not MISSING
    return f.default


def _parse_model(
    r: _Reader,
    daemon: DaemonSettings,
    sources: Mapping[str, SourceKind],
    check_cron: CronCheck | None,
) -> ModelSettings | None:
    name = r.require("name", partial(check_name, pattern=MODEL_NAME))
    if name is not None:
        r.where = f"models[{name}]"
    features = _features(r)
    k = _k(r, daemon.max_clusters)
    window = r.require("window", _period_seconds)
    source = _source(r.child("source"), features, sources, window)
    interval, cron, grace, run_timeout = _schedule(r.child("schedule"), check_cron)
    reference = _reference(r.child("reference"))  # None: its problems are reported
    values: dict[str, Any] = {
        "reference": reference or ReferenceSettings(),
        "thresholds": _thresholds(r.child("thresholds")),
        "slo": _section(r.child("slo"), SloSettings, _SLO),
        "validation": _section(r.child("validation"), ValidationSettings, _VALIDATION),
        "training": _section(r.child("training"), TrainingSettings, _TRAINING),
        "spark": _spark(r),
        "serving": _section(r.child("serving"), ModelServingSettings, _MODEL_SERVING),
    }
    for key, choices in (
        ("scaling", SCALER_KINDS),
        ("metric", METRICS),
        ("retrain", RETRAIN_POLICIES),
        ("seasonality", SEASONALITIES),
        ("engine", ENGINES),
    ):
        default = "auto" if key == "seasonality" else _default(ModelSettings, key)
        values[key] = r.get(key, default, _choice(choices))
    values["timezone"] = r.get("timezone", "UTC", _timezone)
    r.finish()
    if values["seasonality"] == "auto":
        # Telemetry follows the day: a reference of a day or more is compared by phase.
        whole_day = values["reference"].window >= SEASON_PERIODS["daily"]
        values["seasonality"] = "daily" if whole_day else "none"
    if values["seasonality"] not in SEASON_PERIODS and not same_clock(values["timezone"], "UTC"):
        r.add(_timezone_unused(r.raw.get("seasonality"), values["timezone"]))
    if reference is not None:  # an invalid one says so already, and nothing more
        written = _reference_written(r.raw.get("reference"))
        for problem in _seasonal_problems(reference, values["seasonality"], window, written):
            r.add(problem)
    min_rows = values["validation"].min_rows
    if isinstance(k, int) and min_rows is not None and k > min_rows:
        r.add(
            Problem("k", f"at most validation.min_rows ({min_rows}), as k clusters need k rows", k)
        )
    needed = (name, features, k, window, source, values["spark"])
    if None in needed or (interval is None and cron is None):
        return None
    assert name is not None and features is not None and k is not None
    assert window is not None and source is not None
    return ModelSettings(
        name=name,
        features=features,
        source=source,
        k=k,
        window=window,
        interval=interval,
        cron=cron,
        misfire_grace=grace,
        run_timeout=run_timeout,
        **values,
    )


def _one_spark_session(models: list[ModelSettings]) -> list[str]:
    """Spark allows one session per process, configured by the first model that starts
    it: a model asking for another master or other properties would silently get the
    first one's, so that is a problem of the file."""
    spark = [m for m in models if m.engine == "spark"]
    return [
        f"models[{m.name}].spark: must equal models[{spark[0].name}].spark (one Spark session "
        f"per process: the same master and conf for every model with engine: spark); got "
        f"master {m.spark.master!r} and {len(m.spark.conf)} properties against "
        f"{spark[0].spark.master!r} and {len(spark[0].spark.conf)}"
        for m in spark[1:]
        if m.spark != spark[0].spark
    ]


def parse(
    raw: Any, *, sources: Mapping[str, SourceKind], check_cron: CronCheck | None = None
) -> Settings:
    """Validate a configuration mapping; raise ConfigError listing every problem.

    ``sources`` maps each ``source.kind`` to the kind that parses its options;
    ``check_cron`` (the scheduler's own parser, passed by the composition root) says why
    a crontab expression would be refused, or None when it is accepted.
    """
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(
            [
                "top level: must be a mapping of daemon, store, serving and models; "
                f"got a {type(raw).__name__}"
            ]
        )
    problems: list[str] = []
    top = _Reader(raw, "", problems)
    daemon = _section(top.child("daemon"), DaemonSettings, _DAEMON)
    store = _store(top.child("store"))
    serving = _section(top.child("serving"), ServingSettings, _SERVING)
    top.seen.add("models")
    items = top.raw.get("models")
    if not isinstance(items, list) or not items:
        problems.append(Problem("models", "a non-empty list of models", items).config())
        items = []
    models: list[ModelSettings] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            problems.append(Problem(f"models[{i}]", "a mapping", item).config())
            continue
        model = _parse_model(_Reader(item, f"models[{i}]", problems), daemon, sources, check_cron)
        if model is not None and any(m.name == model.name for m in models):
            problems.append(Problem(f"models[{i}].name", "unique", model.name).config())
        elif model is not None:
            models.append(model)
    problems += _one_spark_session(models)
    top.finish()
    if problems:
        raise ConfigError(problems)
    return Settings(daemon=daemon, models=tuple(models), store=store, serving=serving)


# --------------------------------------------------------------------------- loading

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
    sources: Mapping[str, SourceKind],
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    raw: Any = None,
    check_cron: CronCheck | None = None,
) -> Settings:
    """Read the YAML file (or take ``raw``), layer environment then ``overrides`` on ``daemon``.

    Every problem (of the file, the environment and the overrides) is in one ConfigError.
    """
    numbers: list[str] = []  # YAML 1.1's octal and base-60 numbers, listed with the rest
    if raw is None:
        if path is None:
            raise ConfigError(["no configuration: give --config FILE"])
        try:
            raw = read_yaml(path)
        except AmbiguousNumbers as exc:
            raw, numbers = exc.data, exc.problems
    data, problems, origins = _layered(raw, os.environ if env is None else env, overrides or {})
    problems = numbers + problems
    try:
        settings = parse(data, sources=sources, check_cron=check_cron)
    except ConfigError as exc:
        raise ConfigError(problems + [_named(p, origins) for p in exc.problems]) from None
    if problems:
        raise ConfigError(problems)
    settings = replace(settings, origins=origins)
    if path is None:
        return settings
    file = Path(path).resolve()
    return replace(_relative_to(settings, file.parent), path=file)


def _relative_to(settings: Settings, base: Path) -> Settings:
    """Relative paths of the file are relative to the file's directory, not to the cwd."""

    def resolve(p: Path | None) -> Path | None:
        # os.path.realpath, not Path.resolve: that raised RuntimeError on a symbolic link
        # loop (an internal error); the checks of the paths name it instead.
        return None if p is None or p.is_absolute() else Path(os.path.realpath(base / p))

    d, st = settings.daemon, settings.store
    daemon = replace(
        d,
        state_dir=resolve(d.state_dir) or d.state_dir,
        web_config_file=resolve(d.web_config_file) or d.web_config_file,
    )
    store = replace(st, key_file=resolve(st.key_file) or st.key_file)
    return replace(settings, daemon=daemon, store=store)


def _layered(
    raw: Any, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[Any, list[str], dict[str, str]]:
    """``raw`` with the environment and the overrides laid over its ``daemon`` mapping,
    the problems found on the way, and where each laid value came from (a variable, a
    command-line option) by its ``daemon`` field.

    A file whose top level or ``daemon`` is not a mapping is returned as it is, for
    ``parse`` to report.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return raw, [], {}
    given = raw.get("daemon")
    if given is not None and not isinstance(given, Mapping):
        return raw, [], {}
    daemon = dict(given or {})
    problems: list[str] = []
    origins: dict[str, str] = {}
    for key, target in _ENV_KEYS.items():
        # Set but empty is unset, as shells and env files mean it (VAR= in a unit file).
        if not environ.get(ENV_PREFIX + key, "").strip():
            continue
        value: Any = environ[ENV_PREFIX + key]
        if target == "working_memory_mib":
            try:
                value = float(value)
            except ValueError:
                problems.append(
                    f"{ENV_PREFIX}{key} (daemon.working_memory_mib): must be a number; "
                    f"got {brief(value)}"
                )
                continue
        daemon[target] = value
        origins[target] = ENV_PREFIX + key
    for key, value in overrides.items():
        if value is not None:
            daemon[key] = value
            origins[key] = "--" + key.replace("_", "-")
    return {**raw, "daemon": daemon}, problems, origins


def daemon_given(
    env: Mapping[str, str] | None, overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``daemon`` fields that the environment (the process's by default) and the
    overrides give, without a file, as ``load`` lays them (an override wins, a variable
    set to nothing is unset); unchecked."""
    data, _, _ = _layered({}, os.environ if env is None else env, overrides or {})
    return dict(data["daemon"])


def given_log_level(
    env: Mapping[str, str] | None, overrides: Mapping[str, Any] | None
) -> str | None:
    """``daemon.log_level`` as the environment (the process's by default) and the
    overrides give it without a file, checked as ``load`` checks it (a ConfigError names
    where a bad one came from); None when neither gives one."""
    data, _, origins = _layered({}, os.environ if env is None else env, overrides or {})
    value = data["daemon"].get("log_level")
    if value is None:
        return None
    try:
        return _log_level(value, "log_level")
    except Mismatch as exc:
        raise ConfigError([_named(exc.problem.config("daemon"), origins)]) from None


def named_by_origin(
    problem: str, env: Mapping[str, str] | None, overrides: Mapping[str, Any] | None
) -> str:
    """A problem of a ``daemon`` field found after ``load`` (a port in use), named by the
    variable or option that gave the field, as ``load`` names its own."""
    _, _, origins = _layered({}, os.environ if env is None else env, overrides or {})
    return _named(problem, origins)


def _named(problem: str, origins: Mapping[str, str]) -> str:
    """A problem of a ``daemon`` field given by a variable or an option, named by it: the
    file may not hold the field at all."""
    for name, origin in origins.items():
        prefix = f"daemon.{name}:"
        if problem.startswith(prefix):
            return f"{origin} (daemon.{name}):{problem[len(prefix) :]}"
    return problem
