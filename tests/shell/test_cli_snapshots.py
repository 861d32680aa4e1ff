"""The snapshots commands on a real store: states, approval, a broken pointer, corruption."""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from monitor.bootstrap import build_app, load_settings
from monitor.checks import shown_path
from monitor.cli import main
from monitor.store.history import SQLiteHistory
from tests.fakes import blobs
from tests.store._store_factories import make_evaluation

OUT_OF_RANGE = (
    "is out of range: times are accepted from 1970-01-01 up to, but not including, 9999-01-01 UTC"
)
CENTERS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])


def as_user(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Run the next commands as the account ``name`` (the account of the real uid)."""
    uid = os.getuid()
    account = pwd.struct_passwd((name, "x", uid, os.getgid(), "", "/", "/bin/sh"))
    monkeypatch.setattr("pwd.getpwuid", lambda n: account)


def with_store_key(cfg: Path, **store: Any) -> None:
    """Give the configuration ``cfg`` a new store key (0600, beside it) and ``store``'s
    options with it."""
    key = cfg.parent / "store.key"
    key.write_bytes(os.urandom(32).hex().encode())
    key.chmod(0o600)
    config = yaml.safe_load(cfg.read_text())
    cfg.write_text(yaml.safe_dump({**config, "store": {"key_file": str(key), **store}}))


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_csv(path: Path, X: np.ndarray, mtime: float) -> None:
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="")
    import os

    os.utime(path, (mtime, mtime))


@pytest.fixture(scope="module")
def manual_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The stores ``manual`` copies, each trained once per module (two evaluate runs
    with their calibration took 4 to 7 s, for each of the many tests that use one)."""
    return {}


@pytest.fixture
def manual(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    manual_stores: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, Path]:
    """A manual-policy model with v1 live and v2 pending (a drifting window came), in a
    plain store and in an encrypted one (which needs the configuration's key).

    A copy of the module's store of that kind: the state holds no path of its own."""
    kind = getattr(request, "param", "plain")
    if kind not in manual_stores:
        manual_stores[kind] = tmp_path_factory.mktemp(f"manual-{kind}")
        _train_manual(manual_stores[kind], kind)
    made = manual_stores[kind]
    shutil.copytree(made, tmp_path, dirs_exist_ok=True)
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(cfg.read_text().replace(str(made / "data"), str(tmp_path / "data")))
    return cfg, tmp_path / "data", tmp_path / "state"


def _train_manual(tmp_path: Path, kind: str) -> None:
    """``manual``'s store of ``kind`` (plain or encrypted), trained in ``tmp_path``."""
    data = tmp_path / "data"
    data.mkdir()
    cfg = tmp_path / "monitor.yaml"
    model = {
        "name": "shop",
        "features": ["a", "b", "c"],
        "k": 3,
        "window": "1h",
        "schedule": {"interval": "5m"},
        "source": {"kind": "files", "path": str(data), "pattern": "*.csv"},
        "training": {"n_init": 2, "silhouette_sample": 500},
    }
    config: dict = {"daemon": {"state_dir": "state"}, "models": [model]}
    if kind == "encrypted":
        key = tmp_path / "store.key"
        key.write_bytes(os.urandom(32).hex().encode())
        key.chmod(0o600)
        config["store"] = {"key_file": "store.key", "encrypt": True}
    cfg.write_text(yaml.safe_dump(config))
    now = time.time()
    write_csv(data / "w1.csv", blobs(900, CENTERS, seed=1), now - 100)
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0
    moved = CENTERS.copy()
    moved[1, 1] += 3.0
    write_csv(data / "w2.csv", blobs(900, moved, seed=2), now - 10)
    second = invoke("evaluate", "--config", str(cfg))
    assert second.exit_code == 0 and "drift awaits manual approval" in second.output
    # The command printed is the one that approves, as printed (the test runs it): with
    # the configuration file, whose key opens an encrypted store.
    state = (tmp_path / "state").resolve()
    printed = (
        f"kmeans-monitor snapshots approve shop 2 --config {cfg.resolve()} --state-dir {state}"
    )
    assert f"approve with: {printed}" in second.output


def states(cfg: Path) -> dict[int, str]:
    out = json.loads(invoke("snapshots", "list", "--config", str(cfg), "--json").stdout)
    return {v["version"]: v["state"] for v in out["shop"]}


@pytest.mark.parametrize("manual", ["plain", "encrypted"], indirect=True)
def test_a_pending_candidate_is_listed_as_pending_and_approved_as_printed(
    manual: tuple[Path, Path, Path],
) -> None:
    cfg, _, state = manual
    assert states(cfg) == {1: "live", 2: "pending"}
    shown = json.loads(invoke("snapshots", "show", "--config", str(cfg), "shop", "v2").output)
    assert shown["state"] == "pending" and shown["live"] is False

    printed = f"snapshots approve shop 2 --config {cfg.resolve()} --state-dir {state.resolve()}"
    approved = invoke(*printed.split())
    assert approved.exit_code == 0, approved.output
    assert "approved v2; live v1 -> v2" in approved.output
    assert states(cfg) == {1: "retired", 2: "live"}

    again = invoke("snapshots", "approve", "shop", "--config", str(cfg))
    assert again.exit_code == 2 and "error:" in again.output
    assert states(cfg) == {1: "retired", 2: "live"}  # nothing changed


def test_a_version_of_other_features_is_not_made_live_against_the_configuration(
    manual: tuple[Path, Path, Path],
) -> None:
    # Approved or rolled back to, a version whose features the configuration no longer
    # has failed every run on the schema afterwards.
    cfg, _, state = manual
    raw = yaml.safe_load(cfg.read_text())
    raw["models"][0]["features"] = ["a", "b", "c", "d"]
    raw["daemon"]["listen"] = "127.0.0.1:0"  # check-config probes it
    cfg.write_text(yaml.safe_dump(raw))
    # check-config says so, as it does of a changed k (it said nothing).
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == 0, checked.output
    assert (
        "warning: model 'shop': the configuration reads the features ['a', 'b', 'c', 'd'] but "
        "the live model v1 reads ['a', 'b', 'c']: every run fails (schema)" in checked.stderr
    )
    assert checked.stderr.rstrip().endswith(f"--state-dir {state.resolve()} --live")
    for args in (["approve", "shop"], ["approve", "shop", "2"], ["rollback", "shop", "--to", "2"]):
        refused = invoke("snapshots", *args, "--config", str(cfg))
        assert refused.exit_code == 2, refused.output
        [line] = refused.stderr.splitlines()
        assert line.startswith(
            "error: v2 of model 'shop' reads the features ['a', 'b', 'c'], the configuration "
            "['a', 'b', 'c', 'd']: its runs would all fail."
        ), line
        assert f"snapshots retrain shop --config {cfg.resolve()}" in line
        assert states(cfg) == {1: "live", 2: "pending"}  # nothing changed
    # Without the configuration there is nothing to compare with: as before.
    approved = invoke("snapshots", "approve", "shop", "--state-dir", str(state))
    assert approved.exit_code == 0 and states(cfg) == {1: "retired", 2: "live"}


def test_approving_a_version_of_another_k_than_configured_warns_as_check_config_does(
    manual: tuple[Path, Path, Path],
) -> None:
    # f19: approved against a configuration of k=4, v2 (k=3) went live without a word;
    # only the daemon's next start said it.
    cfg, _, _ = manual
    raw = yaml.safe_load(cfg.read_text())
    raw["models"][0]["k"] = 4
    cfg.write_text(yaml.safe_dump(raw))
    approved = invoke("snapshots", "approve", "shop", "2", "--config", str(cfg))
    assert approved.exit_code == 0 and states(cfg) == {1: "retired", 2: "live"}
    [warning] = approved.stderr.splitlines()
    assert warning.startswith(
        "warning: model 'shop': the configuration asks for k=4 but the live model v2 has "
        "k=3, which runs keep until a new reference is trained; retrain with: "
        f"kmeans-monitor snapshots retrain shop --config {cfg.resolve()}"
    ), warning
    assert warning in invoke("check-config", str(cfg)).stderr.splitlines()
    # The configured k: nothing to say.
    raw["models"][0]["k"] = 3
    cfg.write_text(yaml.safe_dump(raw))
    back = invoke("snapshots", "rollback", "shop", "--to", "1", "--config", str(cfg))
    assert back.exit_code == 0, back.output
    retrained = invoke("snapshots", "retrain", "shop", "--config", str(cfg))
    assert retrained.exit_code == 0, retrained.output
    quiet = invoke("snapshots", "approve", "shop", "3", "--config", str(cfg))
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.output


def test_the_state_of_a_model_no_longer_configured_is_said_to_be_kept(
    manual: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # f19: a model renamed in the configuration kept its versions in the state directory,
    # and neither check-config nor the daemon's start said so.
    cfg, _, state = manual
    raw = yaml.safe_load(cfg.read_text())
    raw["models"][0]["name"] = "shop2"
    raw["daemon"]["listen"] = "127.0.0.1:0"  # check-config probes it
    cfg.write_text(yaml.safe_dump(raw))
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == 0, checked.output
    [line] = [ln for ln in checked.stderr.splitlines() if "'shop'" in ln]
    assert line == (
        "warning: model 'shop' is not in the configuration, but its state is kept: 2 "
        f"version(s) in {state.resolve() / 'snapshots' / 'shop'} (its runs in "
        f"{state.resolve() / 'history.sqlite'} stay until store.keep.history (90d) ages "
        "them out); no command removes it: delete that directory to drop its versions, or "
        "configure the model again under that name to resume from its live version"
    ), line
    with caplog.at_level(logging.WARNING, logger="monitor"):  # the daemon's start
        build_app(load_settings(cfg), config_path=cfg).close()
    assert [r.getMessage() for r in caplog.records] == [line.removeprefix("warning: ")]
    raw["models"][0]["name"] = "shop"  # configured again: nothing to say
    cfg.write_text(yaml.safe_dump(raw))
    assert "not in the configuration" not in invoke("check-config", str(cfg)).stderr


def test_a_deleted_live_pointer_is_a_warning_in_list_and_rollback_to_repairs_it(
    manual: tuple[Path, Path, Path],
) -> None:
    cfg, _, state = manual
    (state / "snapshots" / "shop" / "LIVE").unlink()
    listing = invoke("snapshots", "list", "--config", str(cfg))
    assert listing.exit_code == 0
    assert "warning:" in listing.stderr and "snapshots rollback shop --to 1" in listing.stderr
    assert "shop" in listing.stdout  # every version is still listed

    # The daemon does not silently retrain: the run fails with the fix in its message.
    run = invoke("evaluate", "--config", str(cfg))
    assert run.exit_code == 1 and "FAILED (store)" in run.output
    assert "snapshots rollback shop --to 1" in run.output
    assert sorted(states(cfg)) == [1, 2]  # no new version was trained

    fixed = invoke("snapshots", "rollback", "shop", "--to", "1", "--state-dir", str(state))
    assert fixed.exit_code == 0 and "live none -> v1" in fixed.output
    assert states(cfg)[1] == "live"
    # Again: v1 is live already, and saying "v1 -> v1" read as a change.
    again = invoke("snapshots", "rollback", "shop", "--to", "1", "--state-dir", str(state))
    assert again.exit_code == 0
    assert again.output == "model shop: v1 is already live; nothing changed.\n"
    assert states(cfg)[1] == "live"


def test_a_run_on_a_corrupt_live_version_names_the_rollback(
    manual: tuple[Path, Path, Path],
) -> None:
    # helper-93: a live version whose manifest was edited failed every run with only
    # "... is corrupt", where `snapshots show` named the rollback.
    cfg, _, state = manual
    manifest = state / "snapshots" / "shop" / "v000001" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"n_rows": ', '"n_rows": 1'))
    run = invoke("evaluate", "--config", str(cfg))
    assert run.exit_code == 1 and "FAILED (store)" in run.output
    assert "its live version 1 cannot be loaded" in run.output
    # v2, the only other, is a candidate that was never live: the operator chooses.
    assert "choose the version to make live from [2] with `kmeans-monitor snapshots " in (
        run.output
    )


def test_a_corrupt_pending_pointer_is_a_warning_in_list_with_its_removal(
    manual: tuple[Path, Path, Path],
) -> None:
    # helper-93: every run failed on it while `snapshots list` showed nothing wrong.
    cfg, _, state = manual
    pending = state / "snapshots" / "shop" / "PENDING"
    pending.write_text("garbage\n")
    listing = invoke("snapshots", "list", "--config", str(cfg))
    assert listing.exit_code == 0 and "shop" in listing.stdout
    assert listing.stderr == (
        f"warning: the pointer {pending} is corrupt: 8 byte(s), not a version number; "
        f"remove it (`rm {pending}`): the next drifting run stores a new candidate\n"
    )


def test_a_corrupt_old_version_is_marked_and_the_others_still_listed(
    manual: tuple[Path, Path, Path],
) -> None:
    cfg, _, state = manual
    model_dir = state / "snapshots" / "shop"
    [v1] = [p for p in model_dir.iterdir() if p.name.startswith("v") and p.name.endswith("1")]
    manifest = next(v1.glob("*.json"))
    manifest.write_text("{not json")
    listing = invoke("snapshots", "list", "--config", str(cfg))
    assert listing.exit_code == 0, listing.output
    lines = [ln for ln in listing.stdout.splitlines() if ln.startswith("shop")]
    assert len(lines) == 2
    assert "CORRUPT" in lines[0] and "pending" in lines[1]


def test_a_version_of_a_newer_release_is_marked_newer_and_the_run_says_upgrade(
    manual: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # It was listed CORRUPT (list --verify exited 1), and the run advised a rollback.
    from monitor.store import DirectorySnapshotStore, _manifest

    cfg, _, state = manual
    store = DirectorySnapshotStore(state / "snapshots")
    monkeypatch.setattr(_manifest, "FORMAT", 3)
    store.save(store.load("shop", 2), state="live")
    monkeypatch.undo()
    listing = invoke("snapshots", "list", "--config", str(cfg), "--verify")
    assert listing.exit_code == 0, listing.output
    [v3] = [ln for ln in listing.stdout.splitlines() if ln.split()[:2] == ["shop", "3"]]
    assert v3.split()[2] == "NEWER" and v3.endswith("upgrade kmeans-monitor")
    run = invoke("evaluate", "--config", str(cfg), "--dry-run")
    assert run.exit_code == 1
    assert "written by a newer kmeans-monitor" in run.output and "rollback" not in run.output


def _flip_a_byte(state: Path, version: int) -> Path:
    """One byte of a version's arrays file changed in place: its size stays the same."""
    vdir = state / "snapshots" / "shop" / f"v{version:06d}"
    [arrays] = [p for p in vdir.iterdir() if p.suffix != ".json"]
    data = bytearray(arrays.read_bytes())
    data[len(data) // 2] ^= 0xFF
    arrays.write_bytes(bytes(data))
    return arrays


@pytest.mark.parametrize("manual", ["plain", "encrypted"], indirect=True)
def test_verify_reads_the_arrays_that_the_listing_does_not(
    manual: tuple[Path, Path, Path],
) -> None:
    cfg, _, state = manual
    sound = invoke("snapshots", "list", "--config", str(cfg), "--verify")
    assert sound.exit_code == 0, sound.output
    arrays = _flip_a_byte(state, 1)
    plain = invoke("snapshots", "list", "--config", str(cfg))
    assert plain.exit_code == 0 and "CORRUPT" not in plain.output  # same size: unseen
    checked = invoke("snapshots", "list", "--config", str(cfg), "--verify")
    assert checked.exit_code == 1
    lines = [ln for ln in checked.stdout.splitlines() if ln.startswith("shop")]
    assert lines[0].split()[:3] == ["shop", "1", "CORRUPT"]
    assert lines[0].endswith(f"{arrays} is corrupt: its sha256 does not match manifest.json")
    assert lines[1].split()[:3] == ["shop", "2", "pending"]
    as_json = invoke("snapshots", "list", "--config", str(cfg), "--verify", "--json")
    assert as_json.exit_code == 1
    out = json.loads(as_json.stdout)["shop"]
    assert "sha256 does not match" in out[0]["corrupt"] and out[1]["corrupt"] is None


@pytest.mark.parametrize("manual", ["encrypted"], indirect=True)
def test_verify_without_the_store_key_fails_on_the_versions_it_cannot_read(
    manual: tuple[Path, Path, Path],
) -> None:
    _, _, state = manual
    result = invoke("snapshots", "list", "--state-dir", str(state), "--verify")
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("shop")]
    assert [ln.split()[2] for ln in lines] == ["CORRUPT", "CORRUPT"]
    assert lines[0].endswith("is encrypted: configure the store key to read it")


@pytest.mark.parametrize("manual", ["encrypted"], indirect=True)
@pytest.mark.parametrize("key", ["another", "none"])
def test_check_config_warns_of_a_live_version_the_configured_key_does_not_load(
    manual: tuple[Path, Path, Path], key: str
) -> None:
    # After a key change check-config said OK, and every run then failed on the key.
    cfg, _, _ = manual
    raw = yaml.safe_load(cfg.read_text())
    if key == "another":
        (cfg.parent / "store.key").write_bytes(os.urandom(32).hex().encode())
    else:
        del raw["store"]
        cfg.write_text(yaml.safe_dump(raw))
    run = invoke("evaluate", "--config", str(cfg), "--dry-run")
    assert run.exit_code == 1
    [failure] = [ln for ln in run.output.splitlines() if "FAILED (store)" in ln]
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == 0, checked.output
    [warning] = checked.stderr.splitlines()
    assert warning.startswith("warning: model 'shop': its live version 1 cannot be loaded: ")
    assert warning.removeprefix("warning: ") in failure  # the run's failure, its fix named
    assert "none of them loads" in warning


def test_a_store_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    result = invoke("snapshots", "list", "--state-dir", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "no snapshot store at" in result.output
    (tmp_path / "snapshots").write_text("")  # a file where the store goes
    there = invoke("snapshots", "list", "--state-dir", str(tmp_path))
    assert there.exit_code == 2
    store = tmp_path / "snapshots"
    assert there.output == (  # as run and evaluate say it, naming the option
        f"error: invalid configuration: --state-dir (daemon.state_dir): {shown_path(store)} is not "
        "a directory\n"
    )


def test_a_copied_store_keeps_its_states(manual: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, state = manual
    copy = tmp_path / "copy"
    shutil.copytree(state, copy)
    out = json.loads(invoke("snapshots", "list", "--state-dir", str(copy), "--json").stdout)
    assert [(v["version"], v["state"]) for v in out["shop"]] == [(1, "live"), (2, "pending")]


def test_the_variable_names_the_store_without_options(
    manual: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --config and --state-dir, the snapshots commands asked for one of them
    instead of reading KMEANS_MONITOR_STATE_DIR, which run and the file honour."""
    _, _, state = manual
    monkeypatch.setenv("KMEANS_MONITOR_STATE_DIR", str(state))
    out = json.loads(invoke("snapshots", "list", "--json").stdout)
    assert [(v["version"], v["state"]) for v in out["shop"]] == [(1, "live"), (2, "pending")]
    shown = json.loads(invoke("snapshots", "show", "shop", "2").stdout)
    assert shown["state"] == "pending"


@pytest.mark.parametrize(
    "command",
    [
        ["snapshots", "list"],
        ["snapshots", "show"],
        ["snapshots", "approve"],
        ["snapshots", "reject"],
        ["snapshots", "rollback"],
        ["snapshots", "retrain"],
        ["history"],
    ],
)
@pytest.mark.parametrize("name", ["a b", "a" * 64, "../etc"])
def test_a_model_argument_is_held_to_the_configurations_name_rule(
    command: list[str], name: str, tmp_path: Path
) -> None:
    # The store accepts longer names than a configuration may give; the CLI said so.
    result = invoke(*command, name, "--state-dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.output == (
        f"error: model: must be a name matching [A-Za-z0-9][A-Za-z0-9_.-]{{0,62}}; got {name!r}\n"
    )


@pytest.mark.parametrize(
    ("written", "why"),
    [
        (
            "1e300",
            f"timestamp 1e+300 {OUT_OF_RANGE}.",
        ),
        (
            "-1e12",
            f"timestamp -1000000000000.0 {OUT_OF_RANGE}.",
        ),
        ("NaN", "timestamp nan is not a finite number."),
    ],
)
def test_a_creation_time_edited_out_of_range_is_listed_as_corrupt(
    manual: tuple[Path, Path, Path], written: str, why: str
) -> None:
    # Listing reads manifests without their checksum: an edit there reached the table.
    cfg, _, state = manual
    manifest = state / "snapshots" / "shop" / "v000001" / "manifest.json"
    body = json.loads(manifest.read_text())
    manifest.write_text(
        manifest.read_text().replace(
            f'"created_at": {json.dumps(body["created_at"])}', f'"created_at": {written}'
        )
    )
    listing = invoke("snapshots", "list", "--config", str(cfg))
    assert listing.exit_code == 0, listing.output
    [line] = [ln for ln in listing.stdout.splitlines() if ln.split()[:2] == ["shop", "1"]]
    assert line.endswith(f"CORRUPT  {manifest} is corrupt: created_at: {why}")
    as_json = invoke("snapshots", "list", "--config", str(cfg), "--json")
    assert as_json.exit_code == 0
    json.loads(as_json.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))


def test_list_marks_the_unsigned_versions_once_the_store_has_a_key(
    manual: tuple[Path, Path, Path],
) -> None:
    # security.md sends the user to `list` to find them before require_signature; only
    # --json said so (helper-83).
    cfg, _, _ = manual
    plain = invoke("snapshots", "list", "--config", str(cfg))
    assert plain.exit_code == 0 and "[unsigned]" not in plain.stdout  # no key: nothing to say
    with_store_key(cfg)
    keyed = invoke("snapshots", "list", "--config", str(cfg))
    assert keyed.exit_code == 0, keyed.output
    rows = keyed.stdout.splitlines()[1:]
    assert len(rows) == 2 and all("  [unsigned] " in row for row in rows), rows


def test_versions_written_before_encrypt_was_on_are_marked_and_warned_of(
    manual: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # Turning `encrypt` on left v1 (live) and v2 in clear, their raw rows readable on
    # disk, with no word from check-config, the daemon or the listing (h146).
    cfg, _, _ = manual
    with_store_key(cfg, encrypt=True)
    listing = invoke("snapshots", "list", "--config", str(cfg))
    assert listing.exit_code == 0, listing.output
    rows = listing.stdout.splitlines()[1:]
    assert len(rows) == 2 and all("  [unsigned] [unencrypted] " in row for row in rows), rows
    said = (
        "model 'shop': v1 (live), v2 (pending) stored unencrypted although store.encrypt is "
        "on (written before it was): their raw rows stay readable on disk; re-encrypt or "
        "retire them as docs/security.md says"
    )
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == 0 and said in checked.stderr, checked.output
    from monitor.bootstrap import build_app, load_settings

    with caplog.at_level("WARNING"):
        build_app(load_settings(cfg), config_path=cfg).close()
    assert said in caplog.messages, caplog.messages


def test_require_signature_over_unsigned_versions_is_warned_of_with_the_option_to_change(
    manual: tuple[Path, Path, Path],
) -> None:
    # check-config said OK, then every run failed advising to move the model's directory
    # out, throwing genuine versions away where turning the option off was the fix (h146).
    cfg, _, state = manual
    with_store_key(cfg, require_signature=True)
    advice = (
        "none of them loads while store.require_signature is on, unsigned (written "
        "before the store key, or their signatures removed): if they are this "
        "installation's, set require_signature to false (they then load with a warning "
        "each) and turn it on again once a signed version is live (`kmeans-monitor "
        f"snapshots retrain shop --config {cfg.resolve()} --state-dir {state.resolve()} "
        "--live` writes one)"
    )
    checked = invoke("check-config", str(cfg))
    assert checked.exit_code == 0 and advice in checked.stderr, checked.output
    run = invoke("evaluate", "--config", str(cfg), "--dry-run")
    assert advice in run.output and " out of " not in run.output, run.output


@pytest.mark.parametrize("manual", ["encrypted"], indirect=True)
def test_the_rollback_printed_for_an_encrypted_store_runs_as_printed(
    manual: tuple[Path, Path, Path],
) -> None:
    # Without --config, the printed rollback failed: "configure the store key to read it"
    # (helper-88).
    cfg, _, state = manual
    (state / "snapshots" / "shop" / "LIVE").unlink()
    run = invoke("evaluate", "--config", str(cfg))
    assert run.exit_code == 1
    [printed] = re.findall(r"`(kmeans-monitor snapshots rollback [^`]+)`", run.output)
    assert f"--config {cfg.resolve()} --state-dir " in printed
    fixed = invoke(*shlex.split(printed)[1:])
    assert fixed.exit_code == 0 and "live none -> v1" in fixed.output, fixed.output


@pytest.mark.parametrize("manual", ["encrypted"], indirect=True)
def test_the_rollback_an_approval_of_a_replaced_candidate_prints_runs_as_printed(
    manual: tuple[Path, Path, Path],
) -> None:
    # fuzz94 saw this rollback without --config, on a store without a key (where
    # --state-dir opens it alone); with a key it must name the file that holds it.
    cfg, data, _ = manual
    moved = CENTERS.copy()
    moved[2, 0] += 3.0
    write_csv(data / "w3.csv", blobs(900, moved, seed=3), time.time())
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0
    assert states(cfg)[3] == "pending"
    stale = invoke("snapshots", "approve", "shop", "2", "--config", str(cfg))
    assert stale.exit_code == 2 and "v2 is not the pending version (v3 is)" in stale.output
    [printed] = re.findall(r"`(kmeans-monitor snapshots rollback [^`]+)`", stale.output)
    assert f"--config {cfg.resolve()} --state-dir " in printed
    back = invoke(*shlex.split(printed)[1:])
    assert back.exit_code == 0, back.output
    assert states(cfg)[2] == "live"


#: What `snapshots rollback --to N` warns of a version with no sign of having been live.
NEVER_LIVE = (
    "was never live as the store records it, nor scored by a run the history holds: "
    "rejected or replaced while pending, or made live and rolled back before a run "
    "scored it or a version was trained from it; it is live now"
)


def test_a_rollback_to_a_rejected_candidate_makes_it_live_with_a_warning(
    manual: tuple[Path, Path, Path],
) -> None:
    # It made a rejected drift candidate live without a word: the operator may mean it,
    # so it still does, and says on stderr what the version was.
    cfg, _, _ = manual
    assert invoke("snapshots", "reject", "shop", "--config", str(cfg)).exit_code == 0
    forward = invoke("snapshots", "rollback", "shop", "--to", "2", "--config", str(cfg))
    assert forward.exit_code == 0, forward.output
    assert states(cfg) == {1: "retired", 2: "live"}
    [warning] = forward.stderr.splitlines()
    assert re.fullmatch(
        r"warning: model shop: v2 \(drift candidate, trained \d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
        r"UTC\) " + re.escape(NEVER_LIVE),
        warning,
    ), warning
    back = invoke("snapshots", "rollback", "shop", "--to", "1", "--config", str(cfg))
    assert back.exit_code == 0 and back.stderr == "", back.output


def test_a_rollback_to_a_version_the_runs_scored_does_not_call_it_never_live(
    manual: tuple[Path, Path, Path],
) -> None:
    # v2, approved and scored by a run, rolled back before any version was trained from
    # it: "v2 ... was never live", inferred from the parent links alone.
    cfg, _, state = manual
    assert invoke("snapshots", "approve", "shop", "2", "--config", str(cfg)).exit_code == 0
    assert invoke("snapshots", "rollback", "shop", "--config", str(cfg)).exit_code == 0
    assert states(cfg) == {1: "live", 2: "retired"}
    # The store's events recorded the approval: it was live, whether a run scored it.
    recorded = invoke("snapshots", "rollback", "shop", "--to", "2", "--config", str(cfg))
    assert recorded.exit_code == 0 and recorded.stderr == "", recorded.output
    assert invoke("snapshots", "rollback", "shop", "--to", "1", "--config", str(cfg)).exit_code == 0
    # A store written before events were recorded, and no run scored it yet: what is
    # known, and no more.
    (state / "snapshots" / "shop" / "EVENTS").unlink()
    unscored = invoke("snapshots", "rollback", "shop", "--to", "2", "--config", str(cfg))
    assert unscored.exit_code == 0, unscored.output
    [warning] = unscored.stderr.splitlines()
    assert warning.endswith(NEVER_LIVE), warning
    assert invoke("snapshots", "rollback", "shop", "--to", "1", "--config", str(cfg)).exit_code == 0
    with SQLiteHistory(state / "history.sqlite") as history:
        history.append(make_evaluation("shop", evaluated_at=time.time(), live_version=2))
    scored = invoke("snapshots", "rollback", "shop", "--to", "2", "--config", str(cfg))
    assert scored.exit_code == 0 and scored.stderr == "", scored.output


def test_approving_a_candidate_whose_drift_has_ended_says_so_and_still_approves(
    manual: tuple[Path, Path, Path],
) -> None:
    # v2 was trained on a drifting window; the next run was quiet again (an incident
    # that passed), and approve made v2 live without a word of it.
    cfg, data, state = manual
    for old in ("w1.csv", "w2.csv"):
        os.utime(data / old, (time.time() - 7200, time.time() - 7200))
    write_csv(data / "w3.csv", blobs(900, CENTERS, seed=3), time.time())
    quiet = invoke("evaluate", "--config", str(cfg), "--json")
    assert quiet.exit_code == 0, quiet.output
    assert [ev["decision"] for ev in json.loads(quiet.stdout)] == ["kept: no drift"]
    runs = json.loads(invoke("history", "shop", "--config", str(cfg), "--json").stdout)["runs"]
    approved = invoke("snapshots", "approve", "shop", "2", "--config", str(cfg))
    assert approved.exit_code == 0, approved.output
    assert states(cfg) == {1: "retired", 2: "live"}
    [warning] = approved.stderr.splitlines()
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(runs[-1]["at"]))
    assert warning == (
        f"warning: model shop: the drift v2 was trained on ended at {at} UTC: 1 quiet run "
        "since, so the model now takes that drift for the normal; if it was an incident "
        f"that passed, `kmeans-monitor snapshots rollback shop --to 1 --config {cfg} "
        f"--state-dir {state.resolve()}` undoes the approval"
    ), warning


def test_who_approved_rejected_and_rolled_back_is_logged_and_shown(
    manual: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Who made v2 live, and when?" The store kept no answer.
    cfg, _, state = manual
    as_user(monkeypatch, "alice")
    first, _ = invoke("snapshots", "log", "shop", "--state-dir", str(state)).stdout.splitlines()
    assert first.endswith(
        "promote    v1      live none -> v1  by kmeans-monitor (retrain policy): "
        "initial reference model"
    ), first  # the first run's model; then v2 made pending (the next test)
    (state / "snapshots" / "shop" / "EVENTS").unlink()  # as an older kmeans-monitor left it
    empty = invoke("snapshots", "log", "shop", "--state-dir", str(state))
    assert empty.exit_code == 0 and "no approvals" in empty.stdout
    # helper-161: said as if nothing had happened, where an older build had approved.
    assert "moves before the log began" in empty.stdout
    assert "`kmeans-monitor history shop`" in empty.stdout
    before = time.time()
    approved = invoke(
        "snapshots", "approve", "shop", "2", "--config", str(cfg), "--reason", "reviewed the diff"
    )
    assert approved.exit_code == 0, approved.output
    as_user(monkeypatch, "bob")
    back = invoke("snapshots", "rollback", "shop", "--state-dir", str(state))
    assert back.exit_code == 0, back.output
    logged = json.loads(invoke("snapshots", "log", "shop", "--config", str(cfg), "--json").stdout)
    events = [
        {k: e[k] for k in ("action", "actor", "version", "from_version", "to_version", "reason")}
        for e in logged["events"]
    ]
    assert events == [
        {"action": "approve", "actor": "alice", "version": 2, "from_version": 1,
         "to_version": 2, "reason": "reviewed the diff"},
        {"action": "rollback", "actor": "bob", "version": 1, "from_version": 2,
         "to_version": 1, "reason": None},
    ]  # fmt: skip
    assert before <= logged["events"][0]["at"] <= time.time()
    note, *lines = invoke("snapshots", "log", "shop", "--state-dir", str(state)).stdout.splitlines()
    assert note.startswith("model shop: the log begins at ") and "history shop" in note, note
    assert len(lines) == 2
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  approve    v2      live v1 -> v2  "
        r"by alice: reviewed the diff",
        lines[0],
    ), lines[0]
    shown = json.loads(invoke("snapshots", "show", "shop", "2", "--config", str(cfg)).stdout)
    assert [(e["action"], e["actor"]) for e in shown["events"]] == [("approve", "alice")]


def test_the_pending_pointer_s_moves_are_logged(
    manual: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # f19: a candidate made pending, or replaced by a newer one, left no line in the log.
    cfg, _, state = manual
    as_user(monkeypatch, "dave")
    log = ["snapshots", "log", "shop", "--state-dir", str(state)]
    _, pended = invoke(*log).stdout.splitlines()
    assert "UTC  pending    v2      live v1 -> v1  by kmeans-monitor (retrain policy): " in pended
    assert "drift awaits manual approval" in pended, pended
    retrained = invoke("snapshots", "retrain", "shop", "--config", str(cfg), "--reason", "r")
    assert retrained.exit_code == 0, retrained.output
    assert states(cfg) == {1: "live", 2: "retired", 3: "pending"}
    *_, superseded, pended = invoke(*log).stdout.splitlines()
    assert superseded.endswith("supersede  v2      live v1 -> v1  by dave: r"), superseded
    assert pended.endswith("pending    v3      live v1 -> v1  by dave: r"), pended
    # A promotion that leaves the candidate behind says so too.
    live = invoke("snapshots", "retrain", "shop", "--config", str(cfg), "--live")
    assert live.exit_code == 0, live.output
    events = json.loads(invoke(*log, "--json").stdout)["events"]
    assert [(e["action"], e["version"], e["from_version"], e["to_version"]) for e in events][
        -2:
    ] == [("supersede", 3, 1, 4), ("promote", 4, 1, 4)], events


def test_who_is_the_account_of_the_real_uid_never_a_name_from_the_environment(
    manual: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # LOGNAME/USER named the actor: anyone could claim to be anyone, and a newline in
    # the name printed a forged approval as a `snapshots log` line of its own.
    cfg, _, state = manual
    forged = "bob\n2026-12-07 19:05:00 UTC  approve    v2      live v1 -> v2  by security-team"
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, forged)
    approved = invoke("snapshots", "approve", "shop", "2", "--config", str(cfg), "--reason", "ok")
    assert approved.exit_code == 0, approved.output
    lines = invoke("snapshots", "log", "shop", "--state-dir", str(state)).stdout.splitlines()
    assert lines[-1].endswith(f"by {pwd.getpwuid(os.getuid()).pw_name}: ok"), lines
    assert not any("security-team" in line for line in lines), lines
    # An account whose name is no one line (or that has no name) is recorded by its uid.
    as_user(monkeypatch, "eve\nforged")
    again = invoke("snapshots", "rollback", "shop", "--config", str(cfg))
    assert again.exit_code == 0, again.output
    logged = json.loads(
        invoke("snapshots", "log", "shop", "--state-dir", str(state), "--json").stdout
    )
    assert logged["events"][-1]["actor"] == f"uid {os.getuid()}", logged


def test_a_hand_edited_actor_still_prints_as_one_line(
    manual: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, _, state = manual
    as_user(monkeypatch, "carol")
    assert invoke("snapshots", "reject", "shop", "2", "--config", str(cfg)).exit_code == 0
    events = state / "snapshots" / "shop" / "EVENTS"
    events.write_text(events.read_text().replace('"carol"', '"carol\\nforged"'))
    lines = invoke("snapshots", "log", "shop", "--state-dir", str(state)).stdout.splitlines()
    assert lines[-1].endswith("by 'carol\\nforged'"), lines


def test_a_rejection_is_logged_with_its_reason(
    manual: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, _, state = manual
    as_user(monkeypatch, "carol")
    rejected = invoke("snapshots", "reject", "shop", "2", "--config", str(cfg), "--reason", "unit")
    assert rejected.exit_code == 0, rejected.output
    line = invoke("snapshots", "log", "shop", "--state-dir", str(state)).stdout.splitlines()[-1]
    assert line.endswith("reject     v2      live v1 -> v1  by carol: unit"), line


def test_a_reason_is_one_line_of_the_record_and_one_it_cannot_keep_is_refused(
    manual: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reason from `$(cat note)` printed as a second `snapshots log` line, one of 1,001
    # characters lost its end in silence, and a terminal escape went into the record.
    cfg, _, state = manual
    as_user(monkeypatch, "dave")
    for bad, said in (("x" * 1001, "is 1,001 characters; the record keeps 1,000"),
                      ("ok \x1b[2Jcleared", "holds a control character")):  # fmt: skip
        refused = invoke("snapshots", "reject", "shop", "2", "--config", str(cfg), "--reason", bad)
        assert refused.exit_code == 2 and said in refused.output, refused.output
        assert "Traceback" not in refused.output
    assert invoke("snapshots", "show", "shop", "2", "--config", str(cfg)).exit_code == 0
    note = "reviewed with carol\n\tthe diff is the unit fix\n"
    kept = invoke("snapshots", "reject", "shop", "2", "--config", str(cfg), "--reason", note)
    assert kept.exit_code == 0, kept.output
    lines = invoke("snapshots", "log", "shop", "--state-dir", str(state)).stdout.splitlines()
    assert [line.split("  by ")[-1] for line in lines[2:]] == [  # after v1's, v2's pending
        "dave: reviewed with carol the diff is the unit fix"
    ]


def test_the_drift_ended_warning_finds_the_storing_run_behind_more_runs_than_are_read(
    manual: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runs were read from a day before the version, the newest HISTORY_LIMIT of
    # them: with more runs than that after the one that stored it (a candidate pending
    # for days of short runs), that run was left out, and the warning with it.
    cfg, data, _ = manual
    for old in ("w1.csv", "w2.csv"):
        os.utime(data / old, (time.time() - 7200, time.time() - 7200))
    write_csv(data / "w3.csv", blobs(900, CENTERS, seed=3), time.time())
    assert invoke("evaluate", "--config", str(cfg)).exit_code == 0
    monkeypatch.setattr("monitor.cli.HISTORY_LIMIT", 1)  # the quiet run fills the read
    approved = invoke("snapshots", "approve", "shop", "2", "--config", str(cfg))
    assert approved.exit_code == 0, approved.output
    [warning] = approved.stderr.splitlines()
    assert "the drift v2 was trained on ended at " in warning and ": 1 quiet run since" in warning
