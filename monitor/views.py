"""What the daemon's pages show: each model's live state, as data (JSON) and as HTML.

``ModelPages`` reads the daemon's state (the latest evaluation and its explanation),
the run history (since when each SLI has been in its state, recent runs and failures)
and the snapshot store (the live and pending versions), and builds one JSON-friendly
view per model; ``monitor.render.pages`` turns it into the HTML pages.
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from monitor import render
from monitor import slis as S
from monitor.alerting import RUNS_FAILING, Condition, held_conditions
from monitor.alerting import past as past_threshold
from monitor.durations import format_duration
from monitor.errors import StoreError
from monitor.explain import Explanation
from monitor.exporter import ModelStatus, MonitorState
from monitor.pipeline.period import drift_ended, put_off_of
from monitor.ports import History, SnapshotStore, rollback_target
from monitor.records import DECISIONS, Evaluation, RunFailure, Snapshot
from monitor.render.options import RenderOptions
from monitor.runner import (
    approve_command,
    before_the_log,
    event_summary,
    log_began_late,
    store_options,
)
from monitor.timestamps import FUTURE_SKEW, ahead

__all__ = ["HISTORY_SECONDS", "ModelPages", "page_options", "sli_state"]

log = logging.getLogger("monitor.http")

#: How far back a page looks for "since when" and the recent runs.
HISTORY_SECONDS = 7 * 86400.0
_HISTORY_ROWS = 2000  # at most this many runs are read per page (the newest)
_RECENT = 10  # runs and failures listed on a page
_MOVED = 3  # features listed per cluster
OK, WARNING, CRITICAL = "ok", "warning", "critical"
_RANK = {OK: 0, WARNING: 1, CRITICAL: 2}


def _conditions(sli: str) -> list[S.AlertCondition]:
    """The alert conditions that judge ``sli`` on one run (per feature for the PSI)."""
    key = S.FEATURE_PSI if sli == S.FEATURE_PSI_MAX else sli
    return [c for c in S.ALERT_CONDITIONS if c.sli == key and not c.at_least]


def sli_state(sli: str, value: float, thresholds: Mapping[str, float]) -> str:
    """ok, warning or critical: the most severe alert condition ``value`` meets."""
    direction = S.SLIS[sli].direction
    state = OK
    for c in _conditions(sli):
        limit = thresholds.get(c.threshold)
        if limit is None:  # not a drift signal at this window size
            continue
        past = value > limit if direction == S.ABOVE else value < limit
        if past and _RANK[c.severity] > _RANK[state]:
            state = c.severity
    return state


def _since(ctx: _Context, state: str, judge: Callable[[Evaluation], str | None]) -> dict[str, Any]:
    """When the latest unbroken run of ``state`` began (``since``), in the page's
    evaluations (oldest first); ``since_before``: it began before, as the runs read go
    back no further and the history holds older ones (helper-151: a 5 s interval's
    2,000 runs made every state look at most 2.8 h old)."""
    since = None
    for ev in reversed(ctx.evaluations):
        if judge(ev) != state:
            return {"since": since, "since_before": False}
        since = ev.evaluated_at
    return {"since": since, "since_before": since is not None and ctx.older_runs}


@dataclass(frozen=True)
class _Context:
    status: ModelStatus
    evaluations: tuple[Evaluation, ...]
    failures: tuple[RunFailure, ...]
    live: int | None
    pending: int | None
    pointer_problem: str | None  # why the store's live pointer could not be read
    pending_pointer_problem: str | None  # why its pending pointer could not be read
    older_runs: bool = False  # the history holds evaluations older than ``evaluations``
    failing_since: float | None = None  # the first failure after the latest success


def page_options(dashboard_url_pattern: str | None) -> RenderOptions:
    """The options of the daemon's pages: its dashboard link (daemon.dashboard_url_pattern)."""
    if dashboard_url_pattern is None:
        return RenderOptions()
    return RenderOptions(dashboard_url_pattern=dashboard_url_pattern)


class ModelPages:
    """Builds the pages' data from the daemon's state, history and store."""

    def __init__(
        self,
        state: MonitorState,
        history: History,
        store: SnapshotStore,
        *,
        state_dir: Path,
        clock: Callable[[], float],
        options: RenderOptions | None = None,
        config: Path | None = None,
        url: Callable[[], str] | None = None,
    ) -> None:
        self._state = state
        self._history = history
        self._store = store
        self._state_dir = state_dir
        self._config = config  # the daemon's configuration file, named by the commands
        self._url = url  # the daemon's own address, named by the commands (None: unknown)
        self._clock = clock
        self._options = options or RenderOptions()
        self._logged: dict[tuple[str, str], str] = {}  # (model, what) -> the problem logged
        self._logged_lock = threading.Lock()

    def models(self) -> list[str]:
        """The configured models."""
        return self._state.models()

    # ---------------------------------------------------------------- data

    def _context(self, model: str) -> _Context:
        status = self._state.status(model)
        now = self._clock()
        history_problem = pointer_problem = failing_since = None
        older_runs = False
        try:
            runs = self._history.since(model, now - HISTORY_SECONDS, limit=_HISTORY_ROWS)
            evaluations, failures = runs.evaluations, runs.failures
            if evaluations:  # one indexed row: is there more than the page reads?
                before = self._history.since(model, 0.0, evaluations[0].evaluated_at, limit=1)
                older_runs = bool(before.evaluations)
            failing_since = self._failing_since(model, status)
        except Exception as exc:  # a page without history beats no page
            history_problem = str(exc)
            evaluations, failures = (), ()
        self._log_problem(model, "the history", history_problem)
        live = pending = pending_problem = None
        try:
            live = self._store.live_version(model)
        except Exception as exc:
            pointer_problem = str(exc)
        try:  # read on its own: a broken live pointer hid a readable pending one
            pending = self._store.pending_version(model)
        except Exception as exc:
            pending_problem = str(exc)
        problems = "; ".join(p for p in (pointer_problem, pending_problem) if p is not None)
        self._log_problem(model, "the store's pointers", problems or None)
        return _Context(
            status,
            tuple(evaluations),
            tuple(failures),
            live,
            pending,
            pointer_problem,
            pending_problem,
            older_runs,
            failing_since,
        )

    def _failing_since(self, model: str, status: ModelStatus) -> float | None:
        """While the latest run failed, the first failure after the latest success: the
        oldest one, an indexed query, not the oldest of the runs a page reads (helper-151:
        at 5 s, 2,000 failures made a 5 h outage look 2.8 h old)."""
        if not status.stale:
            return None
        after = status.evaluation.evaluated_at if status.evaluation else 0.0
        until, now = None, self._clock()
        if ahead(after, now):  # written before the wall clock stepped back: the failures
            # since are stamped before it, after the newest success stamped in the present
            until = now + FUTURE_SKEW
            present = self._history.since(model, 0.0, until, limit=1).evaluations
            after = present[-1].evaluated_at if present else 0.0
        first = self._history.since(model, after, until, limit=1, oldest=True).failures
        return first[0].at if first else None

    def _log_problem(self, model: str, what: str, problem: str | None) -> None:
        """Log a problem reading ``what`` when it starts or changes, and its end: not on
        every view (a page and the API calls of a dashboard would repeat it many times
        a second while it lasts)."""
        key = (model, what)
        with self._logged_lock:
            before = self._logged.get(key)
            if problem == before:
                return
            if problem is None:
                del self._logged[key]
            else:
                self._logged[key] = problem
        if problem is not None:
            log.warning("model=%s cannot read %s: %s", model, what, problem)
        else:
            log.info("model=%s reads %s again", model, what)

    def model(self, model: str) -> dict[str, Any] | None:
        """The view of one model (JSON-friendly); None for a model that is not configured."""
        if model not in self._state.models():
            return None
        ctx = self._context(model)
        ev = ctx.status.evaluation
        slis = self._slis(ctx)
        now = self._clock()
        state = _overall(ctx, slis, now)
        return {
            "model": model,
            "generated_at": now,
            "state": state,
            "latest": None if ev is None else _latest(ev, ctx.status, now),
            "slis": slis,
            "features": self._features(ctx),
            "clusters": _clusters(ctx),
            # Features whose latest window looks like the reference times a power of ten.
            "rescaled": _rescaled(ctx.status.explanation),
            "runs": [_run(e) for e in reversed(ctx.evaluations[-_RECENT:])],
            "failures": [_failure(f) for f in reversed(ctx.failures[-_RECENT:])],
            "failing_since": ctx.failing_since,
            # While the runs wait for the reference period's rows: from when they train.
            "awaiting_until": _awaiting_until(ctx, now),
            "runs_failing": self._runs_failing(model, ctx) if state == "failing" else None,
            "versions": self._versions(model, ctx),
            "links": self._links(model),
            "cli": self._cli(),
        }

    def index(self) -> list[dict[str, Any]]:
        """Every model with its state and latest decision (the ``/`` page, ``/api/models``)."""
        out = []
        for model in self._state.models():
            view = self.model(model)
            assert view is not None
            out.append(
                {
                    "model": model,
                    "state": view["state"],
                    "live_version": view["versions"]["live"],
                    "live_problem": view["versions"]["live_problem"],
                    "pending_version": view["versions"]["pending"],
                    "pending_problem": view["versions"]["pending_problem"],
                    "latest": view["latest"],
                    # What a failing model's latest run said: not the decision of the
                    # success before, under "latest decision" beside a failing badge.
                    "latest_failure": view["failures"][0] if view["failing_since"] else None,
                    "failing_since": view["failing_since"],
                    "awaiting_until": view["awaiting_until"],
                    "top_feature": view["features"][0] if view["features"] else None,
                    "links": view["links"],
                }
            )
        return out

    # ---------------------------------------------------------------- pages

    def index_html(self) -> str:
        """The ``/`` page: the models that need a look first (``by_urgency``)."""
        return render.index_page(by_urgency(self.index()), now=self._clock())

    def model_html(self, model: str) -> str | None:
        """The ``/models/NAME`` page; None for a model that is not configured."""
        view = self.model(model)
        return None if view is None else render.model_page(view)

    def runbook_html(self, alertname: str, model: str | None) -> str | None:
        """An alert's runbook, with the live block of ``model`` on top when it is one of
        ours; no alert: the list of runbooks (``/runbooks/``)."""
        if not alertname:
            return render.runbooks_index_page(self._options)
        view = self.model(model) if model else None
        try:
            return render.runbook_page(
                alertname,
                view=view,
                models=self.models(),
                options=self._options,
                cli=self._cli(),
                unknown_model=model if model and view is None else None,
            )
        except render.UnknownAlertError:
            return None

    def _runs_failing(self, model: str, ctx: _Context) -> dict[str, Any]:
        """What to do about a failing model: the KMeansRunsFailing runbook opened on it,
        the run by hand that changes nothing (None without a configuration file, which
        ``evaluate`` needs), and the failed runs since start-up. Helper-151: the page of
        a failing model named neither, and its tables said "no run yet" after 30 runs."""
        command = None
        if self._config is not None:
            where = store_options(self._state_dir, self._config)
            command = f"kmeans-monitor evaluate {where} --model {model} --json --dry-run"
        return {
            "runbook": f"/runbooks/{RUNS_FAILING}?model={model}",
            "command": command,
            "failed_runs": sum(ctx.status.failures.values()),
        }

    def _slis(self, ctx: _Context) -> list[dict[str, Any]]:
        ev = ctx.status.evaluation
        if ev is None:
            return []
        out = []
        for key in S.SCALAR:
            sli = S.SLIS[key]
            if key not in ev.slis:
                continue
            value = ev.slis[key]
            state = sli_state(key, value, ev.thresholds)

            def judge(e: Evaluation, key: str = key) -> str | None:
                return sli_state(key, e.slis[key], e.thresholds) if key in e.slis else None

            out.append(
                {
                    "sli": key,
                    "metric": sli.metric,
                    "value": value,
                    "direction": sli.direction,
                    "thresholds": {t: ev.thresholds.get(t) for t in sli.thresholds},
                    "state": state,
                    **(
                        _since(ctx, state, judge)
                        if sli.thresholds
                        else {"since": None, "since_before": False}
                    ),
                }
            )
        # The SLIs with a threshold first, the worst on top; the descriptive ones after.
        out.sort(key=lambda s: (not s["thresholds"], -_RANK[str(s["state"])]))
        return out

    def _features(self, ctx: _Context) -> list[dict[str, Any]]:
        ev, explanation = ctx.status.evaluation, ctx.status.explanation
        if ev is None:
            return []
        bins = {} if explanation is None else {f.feature: f for f in explanation.features}
        out = []
        for feature, psi in sorted(ev.feature_psi.items(), key=lambda kv: -kv[1]):
            state = sli_state(S.FEATURE_PSI_MAX, psi, ev.thresholds)

            def judge(e: Evaluation, f: str = feature) -> str | None:
                value = e.feature_psi.get(f)
                return None if value is None else sli_state(S.FEATURE_PSI_MAX, value, e.thresholds)

            b = bins.get(feature)
            out.append(
                {
                    "feature": feature,
                    "psi": psi,
                    "state": state,
                    **_since(ctx, state, judge),
                    "bins": None
                    if b is None
                    else {"edges": b.edges, "reference": b.reference, "current": b.current},
                }
            )
        return out

    def _versions(self, model: str, ctx: _Context) -> dict[str, Any]:
        live = ctx.status.live
        loaded = live.version if live is not None else None
        problem = self._live_problem(model, ctx, loaded)
        events, log_begins = self._events(model)
        out: dict[str, Any] = {
            "live": ctx.live,  # the store's pointer
            # The live snapshot the daemon has loaded: it follows the pointer within
            # seconds, unless the pointer names a version that does not load (the problem).
            # The details are the loaded one's, named so: beside a live 3 that does not
            # load, v4's trained time and reason read as v3's.
            "loaded": loaded,
            "loaded_created_at": live.created_at if live is not None else None,
            "loaded_reason": live.reason if live is not None else None,
            "loaded_k": live.k if live is not None else None,
            "live_problem": problem,
            "pending": ctx.pending,
            # Why the pending candidate cannot be approved (its pointer or files are broken).
            "pending_problem": self._pending_problem(model, ctx),
            "approve_command": None,
            "diff_command": None,
            "reject_command": None,
            # The run that stored the pending candidate, from the page's span of history.
            "pending_from": None,
            # When the drift that run stored it in ended, and the quiet runs since (None:
            # it goes on, or the page's history cannot say): approvable all the same.
            "pending_drift_ended": None,
            # The live version's parent; while the live one does not load, the newest
            # version that was live and loads (ports.rollback_target).
            "rollback_to": None,
            "rollback_command": None,
            # Who approved, rejected, rolled back or promoted, and when: the newest first.
            "events": events,
            # Set when the log began after the model's first version (an upgraded store):
            # when it began (None: no event yet) and what it lacks.
            "events_log_begins": log_begins,
        }
        base = ctx.live  # what the pending candidate is compared with
        if problem is not None:
            out["rollback_to"] = base = rollback_target(
                self._store, model, broken=ctx.live, loaded=loaded, scored=self._scored(model)
            )
        elif live is not None:
            out["rollback_to"] = live.parent_version
        state_dir = self._state_dir
        where = store_options(state_dir, self._config)
        if ctx.pending is not None:
            # A broken one: neither approve nor diff can read it (a run stores the next).
            # A sound one: trained on a window of a data fault, it must not go live.
            out["reject_command"] = f"kmeans-monitor snapshots reject {model} {ctx.pending} {where}"
        if ctx.pending is not None and out["pending_problem"] is None:
            out["pending_from"] = self._trained_on(model, ctx)
            if (ended := drift_ended(ctx.evaluations, ctx.pending)) is not None:
                out["pending_drift_ended"] = {"at": ended[0], "quiet_runs": ended[1]}
            out["approve_command"] = approve_command(model, ctx.pending, state_dir, self._config)
            if base is not None and base != ctx.pending:
                out["diff_command"] = (
                    f"kmeans-monitor snapshots diff {model} {base} {ctx.pending} {where}"
                )
        if out["rollback_to"] is not None:
            out["rollback_command"] = (
                f"kmeans-monitor snapshots rollback {model} --to {out['rollback_to']} {where}"
            )
        return out

    def _events(self, model: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The store's newest decisions on ``model``'s versions (``DECISIONS``), newest
        first (none when it cannot read them: logged once per problem), and where the log
        began when that was after the model's first version, as ``snapshots log`` says.
        The pending pointer's moves are left to ``snapshots log``: under ``retrain:
        manual`` two follow every drifting run, and a drift of six runs pushed the last
        approval off the page's ten."""
        what = "the store's events"
        try:
            events = self._store.events(model)
            late = log_began_late(events, bool(self._store.versions(model)))
        except StoreError as exc:
            self._log_problem(model, what, str(exc))
            return [], None
        self._log_problem(model, what, None)
        begins = (
            {"at": events[0].at if events else None, "note": before_the_log(model)}
            if late
            else None
        )
        decided = [e for e in events if e.action in DECISIONS]
        return [event_summary(e) for e in reversed(decided[-_RECENT:])], begins

    def _scored(self, model: str) -> set[int]:
        """The versions the history's runs saw live; none when it cannot say (the page
        logs a history it cannot read, once per problem: ``_log_problem``)."""
        what = "the versions its history saw live"
        try:
            scored = self._history.live_versions(model)
        except StoreError as exc:  # the history's every failure (sqlite's wrapped in it)
            self._log_problem(model, what, str(exc))
            return set()
        self._log_problem(model, what, None)
        return scored

    def _live_problem(self, model: str, ctx: _Context, loaded: int | None) -> str | None:
        """Why the store's live version cannot be scored, in one line (None: it can, or
        the daemon follows it within seconds)."""
        if ctx.pointer_problem is not None:
            return f"the live pointer cannot be read: {_reason(ctx.pointer_problem)}"
        if ctx.live is None or ctx.live == loaded:
            return None
        return self._load_problem(model, ctx.live)  # a moved pointer, loaded if it loads

    def _pending_problem(self, model: str, ctx: _Context) -> str | None:
        """Why the pending candidate cannot be approved or compared, in one line (None:
        it can, or there is none). The store keeps what it verified: a page view loads
        the candidate's files again only once they changed."""
        if ctx.pending_pointer_problem is not None:
            return f"the pending pointer cannot be read: {_reason(ctx.pending_pointer_problem)}"
        if ctx.pending is None:
            return None
        return self._load_problem(model, ctx.pending)

    def _trained_on(self, model: str, ctx: _Context) -> dict[str, Any] | None:
        """What the sound pending candidate was trained on, with the run that stored it."""
        try:
            candidate = self._store.load(model, ctx.pending)  # the store keeps what it verified
        except Exception:
            return None  # replaced or removed since: the next view says so
        return _stored_by(ctx, candidate)

    def _load_problem(self, model: str, version: int) -> str | None:
        """Why ``version`` does not load, in one line; None when it loads."""
        try:
            self._store.load(model, version)
        except Exception as exc:
            return f"version {version} does not load: {_reason(str(exc))}"
        return None

    def _cli(self) -> dict[str, str | None]:
        """How a printed command finds the daemon's files, quoted for the shell: the
        options that open its store as it does, its configuration file (None: none), and
        its address (None: unknown)."""
        return {
            "store_options": store_options(self._state_dir, self._config),
            "config_file": None if self._config is None else shlex.quote(str(self._config)),
            "url": None if self._url is None else self._url(),
        }

    def _links(self, model: str) -> dict[str, Any]:
        o = self._options
        dashboard = o.dashboard_url_pattern.format_map(
            _Labels(model=model, job=o.job, alertname="", severity="", instance="", feature="")
        )
        return {
            "page": f"/models/{model}",
            "json": f"/api/models/{model}",
            "dashboard": dashboard,
            "runbooks": [
                {"alert": name, "url": f"/runbooks/{name}?model={model}"}
                for name in render.alert_names()
            ],
        }


def _reason(message: str) -> str:
    """A store error's reason on one line: the advice the store appends ("; stored
    versions: ... Roll back to ...") is left out, as the page prints its own command."""
    lines = message.strip().splitlines() or [""]
    return lines[0].split("; stored versions:")[0].rstrip(".")


class _Labels(dict[str, str]):
    """Alert labels for a link pattern, URL-encoded; an empty label selects every value."""

    def __getitem__(self, key: str) -> str:
        return quote_plus(super().get(key) or "$__all", safe="-_.~")


def _latest(ev: Evaluation, status: ModelStatus, now: float) -> dict[str, Any]:
    interval = status.spec.interval_seconds
    return {
        "window_start": ev.window_start,
        "window_end": ev.window_end,
        "evaluated_at": ev.evaluated_at,
        "scored_version": ev.live_version,
        "candidate_version": ev.candidate_version,
        "n_rows": ev.n_rows,
        "decision": ev.decision,
        "promoted": ev.promoted,
        # A promotion the run put off: until when (None: while the drift grows), and why.
        "put_off": _put_off(ev.decision),
        "stale": status.stale,
        "flagged_runs": status.flagged_runs,
        "flagged_runs_to_fire": status.spec.flagged_runs_to_fire,
        "last_run": status.last_run,
        "last_success": status.last_success,
        "interval": format_duration(interval),
        # No run has failed, yet none succeeded for two intervals, as KMeansEvaluationStale
        # judges: the values are that old (helper-151: "ok" after 48 missed intervals).
        "overdue": not status.stale
        and status.last_success > 0
        and now - status.last_success > 2 * interval,
    }


def _put_off(decision: str) -> dict[str, Any] | None:
    found = put_off_of(decision)
    return None if found is None else {"until": found[0], "why": found[1]}


#: The index's order of model states, the one to look at first on top; a state not
#: named here (none today) goes last.
INDEX_ORDER = ("failing", CRITICAL, WARNING, "no run yet", "awaiting reference", OK)


def by_urgency(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``index`` entries in ``INDEX_ORDER`` of their states, by name within one: at 150
    models a failing one was found only by reading every row in name order (helper-107)."""
    rank = {state: i for i, state in enumerate(INDEX_ORDER)}
    return sorted(models, key=lambda m: (rank.get(m["state"], len(rank)), m["model"]))


def _overall(ctx: _Context, slis: list[dict[str, Any]], now: float) -> str:
    """The model's state: awaiting its reference, failing, no run yet, or the worst SLI
    state of the latest run."""
    if _awaiting(ctx, now):
        return "awaiting reference"
    if ctx.status.stale:
        return "failing"
    if ctx.status.evaluation is None:
        return "no run yet" if ctx.status.runs == 0 else "failing"
    return max((s["state"] for s in slis), key=lambda s: _RANK[s], default=OK)


def _awaiting(ctx: _Context, now: float) -> bool:
    """Whether the latest run failed waiting for the reference period's rows: its ready
    time is to come, or unknown since a restart (the gauge is not kept in the history)
    and the latest failure recorded is such a wait (helper-79: "failing" after a restart)."""
    if not ctx.status.stale:
        return False
    if ctx.status.ready_at > 0:
        return ctx.status.ready_at > now
    return bool(ctx.failures) and ctx.failures[-1].reason == "awaiting_reference"


def _awaiting_until(ctx: _Context, now: float) -> float | None:
    """From when the runs train the model, while they wait (``_awaiting``) and the time
    is known. The page called it failing, in red, while the alerts held off (helper-77)."""
    ready = ctx.status.ready_at
    return ready if ready > 0 and _awaiting(ctx, now) else None


def _clusters(ctx: _Context) -> list[dict[str, Any]]:
    ev, explanation = ctx.status.evaluation, ctx.status.explanation
    live = ctx.status.live
    if ev is None:
        return []
    reference = [] if live is None else [float(s) for s in live.reference_shares]
    out = []
    for c, drift in enumerate(ev.centroid_drift):
        out.append(
            {
                "cluster": c,
                "drift": drift,
                "size": ev.cluster_sizes[c] if c < len(ev.cluster_sizes) else 0,
                "share": ev.cluster_shares[c] if c < len(ev.cluster_shares) else 0.0,
                "reference_share": reference[c] if c < len(reference) else None,
                "moved": _moved(explanation, c),
            }
        )
    out.sort(key=lambda item: -float(item["drift"]))  # type: ignore[arg-type]
    return out


def _rescaled(explanation: Explanation | None) -> list[dict[str, Any]]:
    """The features that look rescaled (a unit change), from the explanation."""
    if explanation is None:
        return []
    return [
        {
            "feature": r.feature,
            "factor": r.factor,
            "median_ratio": r.median_ratio,
            "spread_ratio": r.spread_ratio,
        }
        for r in explanation.rescaled
    ]


def _moved(explanation: Explanation | None, c: int) -> list[dict[str, Any]]:
    """The features along which cluster ``c``'s points moved most, in their own units."""
    if explanation is None or c >= len(explanation.clusters):
        return []
    shift = explanation.clusters[c]
    if shift.n_sample == 0:
        return []
    return [
        {
            "feature": explanation.feature_names[j],
            "centre": shift.centre[j],
            "mean": shift.mean[j],
            "shift": shift.mean[j] - shift.centre[j],
            "shift_scaled": shift.shift_scaled[j],
            "units": explanation.units,
        }
        for j in shift.ranked()[:_MOVED]
    ]


def _run(ev: Evaluation) -> dict[str, Any]:
    return {
        "evaluated_at": ev.evaluated_at,
        "version": ev.live_version,
        "n_rows": ev.n_rows,
        "decision": ev.decision,
        "promoted": ev.promoted,
        "candidate_version": ev.candidate_version,
        "slis": {p.sli: ev.slis.get(p.sli) for p in S.PROGRESS if p.name},
    }


def _stored_by(ctx: _Context, candidate: Snapshot) -> dict[str, Any] | None:
    """The run that stored the pending candidate, what was past its thresholds (a unit
    change or NaN included), and what the candidate was trained on: that run's window, or
    a period of several (``period``: its length; None for one window). None when the
    page's history does not hold the run (``snapshots retrain`` stored it, or longer ago)."""
    ev = next((e for e in reversed(ctx.evaluations) if e.candidate_version == ctx.pending), None)
    if ev is None:
        return None
    span = candidate.window_end - candidate.window_start
    past: dict[tuple[str, str | None], dict[str, Any]] = {}
    for c in held_conditions(ev):  # a feature past its critical level: the critical is kept
        past[(c.sli, c.feature)] = _past(ev, c)
    return {
        "evaluated_at": ev.evaluated_at,
        "window_start": candidate.window_start,
        "window_end": candidate.window_end,
        "period": format_duration(span) if span > ev.window_end - ev.window_start else None,
        "n_rows": candidate.n_rows,
        "past": list(past.values()),
    }


def _past(ev: Evaluation, c: Condition) -> dict[str, Any]:
    """One condition that held on the run, for the page. KMeansManyFeaturesDrifting's
    value is a count of features (helper-151: "feature_psi 5 (threshold 0.25)" read as a
    PSI of 5): it is given as ``features``, the features past the threshold, the largest
    PSI first (None for any other condition), and ``value`` as the largest of their PSIs."""
    if c.feature is not None or c.sli != S.FEATURE_PSI:
        return {
            "sli": c.sli, "feature": c.feature, "value": c.value, "threshold": c.threshold,
            "features": None,
        }  # fmt: skip
    over = sorted(
        ((v, f) for f, v in ev.feature_psi.items() if past_threshold(v, c.threshold, c.sli)),
        reverse=True,
    )
    return {
        "sli": c.sli,
        "feature": None,
        "value": over[0][0] if over else c.value,
        "threshold": c.threshold,
        "features": [f for _, f in over],
    }


def _failure(f: RunFailure) -> dict[str, Any]:
    return {"at": f.at, "reason": f.reason, "message": f.message, "window": f.window_label}
