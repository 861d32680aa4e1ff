"""The server follows promotions, rollbacks, approvals and rejections without a restart,
and every answer comes whole from one version: never a half-loaded model."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from monitor.bootstrap import build_serving_app, open_store
from monitor.config import Settings
from monitor.daemon import LabelServer
from monitor.ports import SnapshotStore
from monitor.records import Snapshot
from monitor.serving.client import LabelsClient, LabelsError
from monitor.store.memory import MemorySnapshotStore
from tests.serving._support import Running, error_of, fitted, post, settings, wait_until

Serve = Callable[[Settings, SnapshotStore], Running]


class Hammer:
    """Client threads that label the same rows back to back and keep every answer."""

    def __init__(self, url: str, rows: np.ndarray, threads: int = 4) -> None:
        self.rows = rows
        self.answers: list[tuple[int, np.ndarray]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(url, i)) for i in range(threads)]

    def _run(self, url: str, i: int) -> None:
        with LabelsClient(url) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    answer = client.labels("shop", self.rows, key=f"t{i}-{n}")
                except (LabelsError, OSError) as exc:
                    with self._lock:
                        self.errors.append(exc)
                    continue
                with self._lock:
                    self.answers.append((answer.version, answer.labels))

    def versions(self) -> set[int]:
        with self._lock:
            return {v for v, _ in self.answers}

    def settled(self, versions: set[int]) -> Callable[[], bool]:
        """A condition: 100 more answers than now, and the last 50 from ``versions``."""
        start = len(self.answers)

        def done() -> bool:
            with self._lock:
                recent = {v for v, _ in self.answers[-50:]}
                return len(self.answers) > start + 100 and recent == versions

        return done

    def __enter__(self) -> Hammer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def test_promotion_rollback_approval_and_rejection_while_serving(
    tmp_path: Path, serve_labels: Serve
) -> None:
    fits = {v: fitted(seed=v, k=3 + v) for v in (1, 2, 3)}  # a different k for each version
    store = open_store(tmp_path)
    store.save(fits[1].snapshot, state="live")
    running = serve_labels(settings({"shop": {"canary_share": 0.5}}), store)
    rows = fits[1].X[::7]
    expected = {v: f.predict(rows) for v, f in fits.items()}  # by the version's own model
    with Hammer(running.url, rows) as hammer:
        assert wait_until(lambda: hammer.versions() == {1})
        store.save(fits[2].snapshot, state="live")  # a run promotes v2
        assert wait_until(lambda: 2 in hammer.versions())
        assert wait_until(hammer.settled({2}))
        store.rollback("shop", 1)  # `snapshots rollback shop --to 1`
        assert wait_until(hammer.settled({1}))
        store.save(fits[3].snapshot, state="pending")  # a candidate: the canary
        assert wait_until(hammer.settled({1, 3}))
        store.set_pending("shop", None)  # `snapshots reject shop`
        assert wait_until(hammer.settled({1}))
        store.save(fits[3].snapshot, state="pending")
        store.approve("shop")  # `snapshots approve shop`: the candidate (v4) goes live
        assert wait_until(hammer.settled({4}))
    assert not hammer.errors
    expected[4] = expected[3]  # v4 is v3's snapshot saved again
    for version, labels in hammer.answers:
        np.testing.assert_array_equal(labels, expected[version], err_msg=f"v{version}")


class SlowStore(MemorySnapshotStore):
    """Loading ``slow`` waits until the test lets it finish."""

    def __init__(self, slow: int) -> None:
        super().__init__()
        self.slow = slow
        self.loading = threading.Event()
        self.release = threading.Event()

    def load(self, model: str, version: int | None = None) -> Snapshot:
        if version == self.slow:
            self.loading.set()
            assert self.release.wait(30)
        return super().load(model, version)


def test_a_version_being_loaded_is_not_served_until_it_is_whole(serve_labels: Serve) -> None:
    one, two = fitted(seed=1), fitted(seed=2, k=5)
    store = SlowStore(slow=2)
    store.save(one.snapshot, state="live")
    running = serve_labels(settings(), store)
    rows = one.X[:40]
    store.save(two.snapshot, state="live")
    assert store.loading.wait(15)
    with LabelsClient(running.url) as client:
        for _ in range(20):  # v2 is half-way through its load: v1 answers, whole
            answer = client.labels("shop", rows)
            assert answer.version == 1
            np.testing.assert_array_equal(answer.labels, one.predict(rows))
        store.release.set()
        assert wait_until(lambda: client.labels("shop", rows).version == 2)
        np.testing.assert_array_equal(client.labels("shop", rows).labels, two.predict(rows))


class BrokenStore(MemorySnapshotStore):
    """Loading one version fails, as a corrupt or forged snapshot does."""

    def __init__(self, broken: int) -> None:
        super().__init__()
        self.broken = broken
        self.attempts = 0

    def load(self, model: str, version: int | None = None) -> Snapshot:
        if version == self.broken:
            self.attempts += 1
            raise OSError(f"snapshot v{version} fails its signature check")
        return super().load(model, version)


def test_a_live_version_that_does_not_load_leaves_the_last_one_serving(
    serve_labels: Serve, caplog: Any
) -> None:
    one = fitted(seed=1)
    store = BrokenStore(broken=2)
    store.save(one.snapshot, state="live")
    running = serve_labels(settings(), store)
    store.save(fitted(seed=2).snapshot, state="live")
    assert wait_until(lambda: store.attempts >= 3)  # tried on every refresh...
    assert caplog.text.count("cannot serve v2") == 1  # ...and said once
    with LabelsClient(running.url) as client:
        assert client.labels("shop", one.X[:5]).version == 1
    ready, why = running.app.ready()
    assert not ready and "live version 2 does not load" in why
    store.broken = 0
    assert wait_until(lambda: running.app.ready()[0])


def test_a_live_version_that_never_loaded_is_a_503_naming_it(serve_labels: Serve) -> None:
    store = BrokenStore(broken=1)
    store.save(fitted(seed=1).snapshot, state="live")
    running = serve_labels(settings(), store)
    status, _, body = post(running, b'{"rows": [[1, 2, 3]]}')
    assert (status, error_of(body)) == (
        503,
        ("no_model", "model 'shop' has no version to serve: live version 1 does not load"),
    )


def test_a_candidate_that_does_not_load_serves_no_canary(serve_labels: Serve) -> None:
    store = BrokenStore(broken=3)
    store.save(fitted(seed=1).snapshot, state="live")
    store.save(fitted(seed=2).snapshot, state="pending")
    running = serve_labels(settings({"shop": {"canary_share": 1.0}}), store)
    catalog = running.app.serving.catalog
    assert catalog.get("shop").versions == (1, 2)
    store.save(fitted(seed=3).snapshot, state="pending")  # v3, broken: v2 is no longer pending
    assert wait_until(lambda: catalog.get("shop").versions == (1, None))
    assert catalog.get("shop").share == 0.0


def _v1_served_on_after(
    tmp_path: Path, serve_labels: Serve, damage: Callable[[Path], Any], why: str
) -> tuple[SnapshotStore, Running]:
    """v1 served from a store on disk, then ``damage`` done to the model's directory:
    the loaded v1 keeps serving, and the server is not ready, saying ``why``."""
    store = open_store(tmp_path)
    one = fitted(seed=1)
    store.save(one.snapshot, state="live")
    running = serve_labels(settings(), store)
    damage(tmp_path / "snapshots" / "shop")
    assert wait_until(lambda: not running.app.ready()[0])
    assert why in running.app.ready()[1]
    with LabelsClient(running.url) as client:
        assert client.labels("shop", one.X[:3]).version == 1
    return store, running


def test_a_broken_live_pointer_keeps_serving_and_is_not_ready(
    tmp_path: Path, serve_labels: Serve
) -> None:
    def garbage_pointer(model_dir: Path) -> None:
        (model_dir / "LIVE").write_text("99\n")

    _v1_served_on_after(tmp_path, serve_labels, garbage_pointer, "cannot read its pointers")


def test_the_label_server_loads_every_model_before_serving(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.save(fitted(seed=1).snapshot, state="live")
    app = build_serving_app(settings({"shop": {}, "idle": {}}), store=store)
    assert app.ready() == (False, "serving: the store has not been read yet")
    server = LabelServer(app)  # holds its address first, then loads; not started
    try:
        assert app.serving.catalog.get("shop").versions == (1, None)
        assert app.serving.catalog.get("idle").versions == (None, None)
        assert app.ready() == (True, "ready")
    finally:
        server.stop()


def test_versions_gone_from_the_store_keep_the_loaded_one_serving_and_not_ready(
    tmp_path: Path, serve_labels: Serve
) -> None:
    why = "the store holds no version of it any more; still serving v1"
    store, running = _v1_served_on_after(tmp_path, serve_labels, shutil.rmtree, why)
    two = fitted(seed=2)
    store.save(two.snapshot, state="live")  # the next run stores v1 anew: it is served
    assert wait_until(lambda: running.app.ready()[0])
    with LabelsClient(running.url) as client:
        answer = client.labels("shop", two.X[:3])
    assert answer.version == 1
    np.testing.assert_array_equal(answer.labels, two.predict(two.X[:3]))


def test_a_store_deleted_under_serve_is_not_ready_and_advises_no_restart(
    tmp_path: Path, serve_labels: Serve
) -> None:
    """`serve` said "restart the daemon": a restarted serve recreates an empty store and
    drops the version it still served (helper-143). Restoring the store is the advice."""
    store = open_store(tmp_path)
    one = fitted(seed=1)
    store.save(one.snapshot, state="live")
    running = serve_labels(settings(), store)
    root = tmp_path / "snapshots"
    root.rename(tmp_path / "moved")
    assert running.app.ready() == (
        False,
        f"the snapshot store {root} is gone: restore it (the versions loaded are served "
        "meanwhile; a restarted serve would have none)",
    )
    with LabelsClient(running.url) as client:
        assert client.labels("shop", one.X[:3]).version == 1
    (tmp_path / "moved").rename(root)
    assert wait_until(lambda: running.app.ready()[0])


def test_the_server_says_it_stopped_once_as_the_daemon_does(
    serve_labels: Serve, caplog: Any
) -> None:
    # exB: `serve` logged "received SIGTERM" and nothing after; `run` ends with "stopped".
    running = serve_labels(settings(), MemorySnapshotStore())
    with caplog.at_level(logging.INFO, logger="monitor"):
        caplog.clear()  # the start's own line, when an earlier test left INFO on
        running.server.stop()
        running.server.stop()  # idempotent, and said once
    assert [r.getMessage() for r in caplog.records if r.name == "monitor"] == ["stopped"]
