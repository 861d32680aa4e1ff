"""The models being served: for each, the live snapshot and the canary, swapped whole.

A refresh reads the store's live and pending pointers (cheap: a directory listing and
two small files per model) and loads only the versions that changed, each in full and
verified by the store, before one assignment publishes the new pair. A request reads
that pair once and keeps it, so it is answered by exactly the models it was routed to,
never by a half-loaded one. A version that fails to load is logged once and not served:
the live model stays the last one that loaded; a broken candidate serves no canary.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from monitor.config import ModelServingSettings
from monitor.ports import SnapshotStore
from monitor.serving._model import Assigner, ServedModel

__all__ = ["Catalog", "Variants"]

log = logging.getLogger("monitor.serving")


@dataclass(frozen=True, eq=False)
class Variants:
    """What answers one model's requests now."""

    live: ServedModel | None  # None: no version stored yet (or none loaded)
    canary: ServedModel | None  # the pending candidate, when the model has a canary share
    share: float  # the canary's share of requests in effect: 0.0 without a canary

    @property
    def versions(self) -> tuple[int | None, int | None]:
        return (
            None if self.live is None else self.live.version,
            None if self.canary is None else self.canary.version,
        )


_EMPTY = Variants(None, None, 0.0)


class Catalog:
    """Every configured model's variants; ``refresh`` follows the store's pointers."""

    def __init__(
        self,
        policies: Mapping[str, ModelServingSettings],
        store: SnapshotStore,
        assigner: Assigner,
        *,
        on_change: Callable[[str, Variants], None] | None = None,
    ) -> None:
        self._policies = dict(policies)
        self._store = store
        self._assigner = assigner
        self._on_change = on_change
        self._variants: dict[str, Variants] = dict.fromkeys(self._policies, _EMPTY)
        self._problems: dict[str, str] = {}  # model -> why its pointers could not be followed
        self._failed: set[tuple[str, int]] = set()  # versions that did not load (logged once)
        self._vanished: set[str] = set()  # models served on after the store lost their versions
        self._refreshed = False
        self._lock = threading.Lock()  # one refresh at a time; readers never wait

    def names(self) -> list[str]:
        return list(self._policies)

    def policy(self, name: str) -> ModelServingSettings | None:
        return self._policies.get(name)

    def get(self, name: str) -> Variants | None:
        """The variants of a configured model (None for any other name)."""
        return self._variants.get(name)

    def refresh(self, names: Iterable[str] | None = None) -> None:
        """Follow the live and pending pointers of ``names`` (default: every model)."""
        with self._lock:
            for name in self._policies if names is None else names:
                if name in self._policies:
                    self._refresh(name)
            self._refreshed = self._refreshed or names is None

    def problem(self, name: str) -> str | None:
        """Why ``name``'s live version is not served as the store says (None: it is)."""
        return self._problems.get(name)

    def serves_any(self) -> bool:
        """Whether some model has a live version to answer with."""
        return any(v.live is not None for v in self._variants.copy().values())

    def ready(self) -> tuple[bool, str]:
        """Ready once every model that has a live version serves it."""
        if not self._refreshed:
            return False, "serving: the store has not been read yet"
        # copy() runs in C under the GIL: a refresh on another thread cannot change the
        # dictionary while it is read.
        problems = [f"{name}: {why}" for name, why in sorted(self._problems.copy().items())]
        return (False, "serving: " + "; ".join(problems)) if problems else (True, "ready")

    def _refresh(self, name: str) -> None:
        current = self._variants[name]
        share = self._policies[name].canary_share
        try:
            live_version = self._store.live_version(name)
            pending = self._store.pending_version(name) if share > 0 else None
        except Exception as exc:  # a broken pointer: keep serving what is loaded
            self._problem(name, f"cannot read its pointers: {exc}")
            return
        # After its versions vanished, a version of a number served before is another
        # model (the store numbers anew from 1): nothing loaded is reused for it.
        vanished = name in self._vanished
        live = self._loaded(name, live_version, current.live, reuse=not vanished)
        if live_version is None and current.live is not None:
            # The versions it served from are gone (a deleted directory, a store not
            # mounted): the store cannot say which to serve, so the loaded one stays.
            self._vanished.add(name)
            live = current.live
            self._problem(
                name,
                f"the store holds no version of it any more; still serving v{live.version}",
            )
        elif live_version is not None and (
            live is None or live.version != live_version or (vanished and live is current.live)
        ):
            self._problem(name, f"live version {live_version} does not load")
        else:
            self._vanished.discard(name)
            self._problems.pop(name, None)
        canary = self._loaded(name, pending, current.canary, reuse=not vanished)
        if canary is not None and canary.version != pending:
            canary = None  # the old candidate is no longer pending, the new one did not load
        new = Variants(live, canary, share if canary is not None and live is not None else 0.0)
        if new.live is current.live and new.canary is current.canary and new.share == current.share:
            return
        self._variants[name] = new  # the swap: one reference, the models already whole
        log.info(
            "model=%s serving live %s, canary %s (share %g)",
            name,
            _v(new.versions[0]),
            _v(new.versions[1]),
            new.share,
        )
        if self._on_change is not None:
            self._on_change(name, new)

    def _loaded(
        self, name: str, version: int | None, have: ServedModel | None, *, reuse: bool = True
    ) -> ServedModel | None:
        """``version`` ready to serve: ``have`` when it is that version (and ``reuse``),
        else a fresh load.

        One that fails to load gives ``have``: a live model keeps serving (the caller
        reports it), a canary is dropped (the caller compares versions).
        """
        if version is None:
            return None
        if reuse and have is not None and have.version == version:
            return have
        try:
            served = ServedModel.from_snapshot(self._store.load(name, version), self._assigner)
        except Exception as exc:
            if (name, version) not in self._failed:
                self._failed.add((name, version))
                log.error("model=%s cannot serve v%d: %s", name, version, exc)
            return have
        self._failed.discard((name, version))
        return served

    def _problem(self, name: str, why: str) -> None:
        if self._problems.get(name) != why:
            log.warning("model=%s serving: %s", name, why)
        self._problems[name] = why


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"
