"""verify, lock and unlock against real model folders on disk, and the activation refusal.

Every test builds a small model folder in tmp_path (a config, a random "safetensors" blob, a tokenizer
subfolder and a relative symlink) registered as a vllm entry whose discovered ``download.path`` points
at it. Most tests first record a baseline with ``imageworks-loader verify NAME``, then change the
folder and check what the commands report, what they write to the registry files, and what they leave
alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import fields as dataclass_fields
from pathlib import Path

import pytest

from imageworks_models.errors import LockedEntryDriftError
from imageworks_models.integrity.verify import LockResult, VerifyResult
from imageworks_models.registry.store import CURATED_FILE, DISCOVERED_FILE, RegistryStore
from imageworks_models.testing import make_registry

NAME = "tiny-vllm-safetensors"
LOADER = "imageworks-loader"
DOWNLOAD = "imageworks-download"

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER = "tokenizer/tokenizer.json"
VOCAB = "tokenizer/vocab.txt"
LINK = "tokenizer_config.json"  # -> tokenizer/tokenizer.json (relative)
REGULAR = (CONFIG, WEIGHTS, TOKENIZER, VOCAB)

VERIFY_KEYS = {"name", "status", "mode", "path", "algorithm", "expected", "actual", "locked", "files", "bytes",
               "hashed_files", "hashed_bytes", "cached_files", "seconds", "changes", "note", "fixed"}
LOCK_KEYS = {"name", "locked_before", "locked", "expected_before", "expected", "changed", "note"}


# --- building model folders and registries --------------------------------------------------------


def make_model(folder: Path) -> Path:
    (folder / "tokenizer").mkdir(parents=True)
    (folder / CONFIG).write_text('{"architectures": ["Tiny"], "hidden_size": 8}\n', encoding="utf-8")
    (folder / WEIGHTS).write_bytes(os.urandom(8192))
    (folder / TOKENIZER).write_text('{"model": {"type": "BPE"}}\n', encoding="utf-8")
    (folder / VOCAB).write_text("a\nb\nc\n", encoding="utf-8")
    os.symlink(TOKENIZER, folder / LINK)
    return folder


def put_discovered(folder: Path, *entries: dict) -> None:
    with RegistryStore(folder).edit() as layers:
        for entry in entries:
            layers.discovered.put(entry)


@pytest.fixture
def model(tmp_path) -> Path:
    return make_model(tmp_path / "weights" / "tiny")


@pytest.fixture
def reg(tmp_path, model, monkeypatch) -> Path:
    """The registry (in <tmp>/configs, also $IMAGEWORKS_REGISTRY_DIR) with the model entry, no manifest yet."""
    folder = tmp_path / "configs"
    make_registry(folder, {"name": NAME, "backend": "vllm", "served_model_id": "Org/Tiny"})
    put_discovered(folder, {"name": NAME, "download": {"path": str(model)}})
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(folder))
    return folder


@pytest.fixture
def baseline(cli, reg) -> Path:
    """The registry after a first ``verify`` recorded the model's manifest."""
    result = verify_json(cli, NAME)
    assert result["exit_code"] == 0, result
    assert result["results"][0]["status"] == "recorded"
    return reg


@pytest.fixture
def locked(cli, baseline) -> Path:
    result = cli("lock", NAME, "--set-expected", prog=LOADER)
    assert result.exit_code == 0, result.stderr
    return baseline


# --- running commands and reading what they wrote -------------------------------------------------


def verify_json(cli, *args: str, prog: str = LOADER) -> dict:
    """``verify ARGS --json``; the document, checked to carry the process's exit code."""
    result = cli("verify", *args, "--json", prog=prog)
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == result.exit_code, (doc, result.stderr)
    return doc


def only(doc: dict) -> dict:
    assert len(doc["results"]) == 1, doc
    return doc["results"][0]


def changes(doc: dict) -> dict[str, dict]:
    return {c["path"]: c for c in only(doc)["changes"]}


def discovered(reg: Path, name: str = NAME) -> dict:
    doc = json.loads((reg / DISCOVERED_FILE).read_text(encoding="utf-8"))
    return next(e for e in doc["entries"] if e["name"] == name)


def registry_bytes(reg: Path) -> tuple[bytes, bytes]:
    return (reg / CURATED_FILE).read_bytes(), (reg / DISCOVERED_FILE).read_bytes()


def list_row(cli, name: str = NAME) -> dict:
    result = cli("list", "--json", prog="imageworks-models")
    assert result.exit_code == 0, result.stderr
    return next(r for r in json.loads(result.stdout) if r["name"] == name)


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def backdate(root: Path, seconds: float = 3600) -> None:
    """Set every regular file's mtime well before now, so the stat cache may trust it."""
    t = time.time() - seconds
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            os.utime(p, (t, t))


def settings_for(reg: Path):
    from imageworks_models.settings import load_settings

    return load_settings(flags={"registry_dir": str(reg)})


def entry_of(reg: Path) -> dict:
    return RegistryStore(reg).load().get(NAME)


# --- verify: the baseline and each kind of change -------------------------------------------------


def test_first_verify_records_a_manifest(cli, reg, model):
    result = cli("verify", NAME, prog=LOADER)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("recorded")
    art = discovered(reg)["artifacts"]
    assert art["manifest_version"] == 1 and art["aggregate"].startswith("sha256:")
    assert [f["path"] for f in art["files"]] == sorted([*REGULAR, LINK])
    assert {"path": LINK, "size": None, "digest": None, "link": TOKENIZER} in art["files"]


def test_unchanged_tree_is_ok_and_updates_last_verified(cli, baseline):
    long_ago = "2000-01-01T00:00:00+00:00"  # timestamps are to the second: start from an old one
    entry = discovered(baseline)
    put_discovered(baseline, {**entry, "version_lock": {**entry["version_lock"], "last_verified": long_ago}})
    before = discovered(baseline)
    doc = verify_json(cli, NAME)
    assert doc["exit_code"] == 0 and only(doc)["status"] == "ok" and only(doc)["changes"] == []
    after = entry_of(baseline)  # the effective entry: the check is recorded in the checks file
    assert after["version_lock"]["last_verified"] > long_ago
    assert after["version_lock"]["last_verified"] == after["version_lock"]["last_checked"]
    assert after["version_lock"]["last_status"] == "ok"
    assert discovered(baseline) == before  # nothing in the discovered layer changed


def _change_byte(m: Path) -> str:
    flip_byte(m / WEIGHTS)
    return WEIGHTS


def _truncate(m: Path) -> str:
    with open(m / WEIGHTS, "r+b") as fh:
        fh.truncate(1000)
    return WEIGHTS


def _add(m: Path) -> str:
    (m / "tokenizer" / "merges.txt").write_text("a b\n", encoding="utf-8")
    return "tokenizer/merges.txt"


def _remove(m: Path) -> str:
    (m / CONFIG).unlink()
    return CONFIG


def _swap_link(m: Path) -> str:
    (m / LINK).unlink()
    os.symlink(VOCAB, m / LINK)
    return LINK


@pytest.mark.parametrize("modify, change", [
    (_change_byte, "changed"),
    (_truncate, "changed"),
    (_add, "extra"),
    (_remove, "missing"),
    (_swap_link, "changed"),
], ids=["changed-byte", "truncated", "added", "removed", "swapped-link"])
def test_a_changed_tree_diverges_and_names_the_file(cli, baseline, model, modify, change):
    path = modify(model)
    result = cli("verify", NAME, prog=LOADER)
    assert result.exit_code == 2, result.stderr
    assert result.stdout.startswith("DIVERGED")
    assert f"{change:<10} {path}" in result.stdout
    doc = verify_json(cli, NAME)
    assert doc["exit_code"] == 2 and only(doc)["status"] == "diverged"
    assert set(changes(doc)) == {path}
    assert changes(doc)[path]["change"] == change
    assert entry_of(baseline)["version_lock"]["last_status"] == "diverged"  # the effective entry (checks file)


def test_swapped_link_records_both_targets(cli, baseline, model):
    _swap_link(model)
    change = changes(verify_json(cli, NAME))[LINK]
    assert (change["expected"]["link"], change["actual"]["link"]) == (TOKENIZER, VOCAB)


def test_a_same_size_change_reports_both_digests(cli, baseline, model):
    _change_byte(model)
    change = changes(verify_json(cli, NAME))[WEIGHTS]
    assert change["expected"]["size"] == change["actual"]["size"] == 8192
    assert change["expected"]["digest"] != change["actual"]["digest"]
    assert change["actual"]["digest"] == "sha256:" + hashlib.sha256((model / WEIGHTS).read_bytes()).hexdigest()


def test_a_renamed_file_is_reported_once_with_its_previous_path(cli, baseline, model):
    (model / VOCAB).rename(model / "vocab.txt")
    result = cli("verify", NAME, prog=LOADER)
    assert result.exit_code == 2
    assert f"renamed    {VOCAB} -> vocab.txt" in result.stdout
    doc = verify_json(cli, NAME)
    assert list(changes(doc)) == ["vocab.txt"]
    assert changes(doc)["vocab.txt"]["change"] == "renamed"
    assert changes(doc)["vocab.txt"]["previous_path"] == VOCAB


# --- divergence is kept until accepted ------------------------------------------------------------


def test_divergence_is_not_written_over_until_accepted(cli, baseline, model):
    recorded = discovered(baseline)["artifacts"]
    _change_byte(model)
    assert verify_json(cli, NAME)["exit_code"] == 2
    assert verify_json(cli, NAME)["exit_code"] == 2  # the second run compares with the same record
    assert discovered(baseline)["artifacts"] == recorded

    accepted = verify_json(cli, NAME, "--accept")
    assert accepted["exit_code"] == 0 and only(accepted)["status"] == "accepted"
    assert set(changes(accepted)) == {WEIGHTS}  # what was accepted is still named
    assert discovered(baseline)["artifacts"]["aggregate"] == only(accepted)["actual"] != recorded["aggregate"]
    doc = verify_json(cli, NAME)
    assert doc["exit_code"] == 0 and only(doc)["status"] == "ok"


def test_accept_does_not_accept_for_a_locked_entry(cli, locked, model):
    before = discovered(locked)
    _change_byte(model)
    doc = verify_json(cli, NAME, "--accept")
    assert doc["exit_code"] == 2 and only(doc)["status"] == "diverged" and only(doc)["locked"]
    assert "not accepted" in only(doc)["note"]
    after = discovered(locked)
    assert after["artifacts"] == before["artifacts"]
    assert after["version_lock"]["expected_aggregate"] == before["version_lock"]["expected_aggregate"]
    assert verify_json(cli, NAME)["exit_code"] == 2


# --- lock, list's lock status, unlock -------------------------------------------------------------


def test_lock_set_expected_pins_the_current_aggregate(cli, baseline):
    aggregate = discovered(baseline)["artifacts"]["aggregate"]
    result = cli("lock", NAME, "--set-expected", prog=LOADER)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"locked {NAME}")
    lock = discovered(baseline)["version_lock"]
    assert lock["locked"] is True and lock["expected_aggregate"] == aggregate
    assert list_row(cli)["lock_status"] == "locked"


def test_lock_without_set_expected_uses_the_recorded_aggregate(cli, baseline):
    result = cli("lock", NAME, prog=LOADER)
    assert result.exit_code == 0, result.stderr
    lock = discovered(baseline)["version_lock"]
    assert lock["locked"] and lock["expected_aggregate"] == discovered(baseline)["artifacts"]["aggregate"]


def test_locked_entry_that_changes_diverges(cli, locked, model):
    _remove(model)
    doc = verify_json(cli, NAME)
    assert doc["exit_code"] == 2 and only(doc)["locked"] and changes(doc)[CONFIG]["change"] == "missing"
    result = cli("verify", NAME, prog=LOADER)
    assert "[locked]" in result.stdout and f"lock {NAME} --set-expected" in result.stderr


def test_list_shows_drift_for_a_truncated_file_without_verifying(cli, locked, model):
    assert list_row(cli)["lock_status"] == "locked"
    _truncate(model)
    assert list_row(cli)["lock_status"] == "drift"
    table = cli("list", prog="imageworks-models")
    assert table.exit_code == 0
    assert "DRIFT" in table.stdout and "warning: 1 locked entry no longer matches" in table.stderr


def test_list_shows_drift_for_a_same_size_change_once_verify_recorded_it(cli, locked, model):
    _change_byte(model)
    assert list_row(cli)["lock_status"] == "locked"  # a stat cannot see same-size changes
    assert verify_json(cli, NAME)["exit_code"] == 2
    assert list_row(cli)["lock_status"] == "drift"

    result = cli("unlock", NAME, prog=LOADER)
    assert result.exit_code == 0, result.stderr
    assert list_row(cli)["lock_status"] == "unlocked"
    assert discovered(locked)["version_lock"]["locked"] is False


def test_unlock_keeps_the_expected_aggregate_unless_cleared(cli, locked, model):
    expected = discovered(locked)["version_lock"]["expected_aggregate"]
    assert cli("unlock", NAME, prog=LOADER).exit_code == 0
    assert discovered(locked)["version_lock"]["expected_aggregate"] == expected
    _change_byte(model)
    assert verify_json(cli, NAME)["exit_code"] == 2  # unlocked, still compared with the pinned aggregate
    assert cli("unlock", NAME, "--clear-expected", prog=LOADER).exit_code == 0
    assert discovered(locked)["version_lock"]["expected_aggregate"] is None


def test_accept_on_an_unlocked_entry_moves_its_pinned_aggregate(cli, locked, model):
    assert cli("unlock", NAME, prog=LOADER).exit_code == 0  # keeps the expected aggregate
    _change_byte(model)
    accepted = only(verify_json(cli, NAME, "--accept"))
    assert accepted["status"] == "accepted"
    assert discovered(locked)["version_lock"]["expected_aggregate"] == accepted["actual"]
    assert verify_json(cli, NAME)["exit_code"] == 0


# --- activation -----------------------------------------------------------------------------------


def test_activation_refuses_a_locked_entry_that_drifted(locked, model):
    from imageworks_models.serving.activation import preflight

    settings = settings_for(locked)
    preflight(entry_of(locked), settings=settings)  # locked and unchanged: allowed
    flip_byte(model / VOCAB, offset=1)
    with pytest.raises(LockedEntryDriftError) as info:
        preflight(entry_of(locked), settings=settings)
    err = info.value
    assert NAME in err.message and err.exit_code == 2
    assert len(err.changes) == 1 and VOCAB in err.changes[0] and err.changes[0].startswith("changed")
    assert err.hint and f"lock {NAME} --set-expected" in err.hint


def test_activation_refuses_a_locked_entry_whose_files_are_gone(locked, model):
    from imageworks_models.serving.activation import preflight

    shutil.rmtree(model)
    with pytest.raises(LockedEntryDriftError, match="files are gone"):
        preflight(entry_of(locked), settings=settings_for(locked))


def test_activation_allows_an_unlocked_entry_that_changed(baseline, model):
    from imageworks_models.serving.activation import preflight

    _change_byte(model)
    _remove(model)
    assert preflight(entry_of(baseline), settings=settings_for(baseline)) is None


def test_activation_writes_nothing(locked, model):
    from imageworks_models.serving.activation import preflight

    before = registry_bytes(locked)
    _change_byte(model)
    with pytest.raises(LockedEntryDriftError):
        preflight(entry_of(locked), settings=settings_for(locked))
    assert registry_bytes(locked) == before


# --- digests --------------------------------------------------------------------------------------


def test_digests_equal_sha256sum_and_hashlib(baseline, model):
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum is not installed")
    files = {f["path"]: f for f in discovered(baseline)["artifacts"]["files"]}
    for rel in REGULAR:
        out = subprocess.run(["sha256sum", rel], cwd=model, capture_output=True, text=True, check=True).stdout
        data = (model / rel).read_bytes()
        assert files[rel]["digest"] == "sha256:" + out.split()[0] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert files[rel]["size"] == len(data)


# --- user errors ----------------------------------------------------------------------------------


@pytest.fixture
def odd_entries(reg) -> Path:
    """Add an entry with no files recorded and one kept in another program's store."""
    make_registry(reg, {"name": "nopath-vllm", "backend": "vllm"}, {"name": "store-ollama", "backend": "ollama"})
    put_discovered(reg, {"name": "store-ollama", "download": {"path": "ollama:/x:y"}})
    return reg


@pytest.mark.parametrize("args, message", [
    (("verify", "no-such-model"), "no entry named 'no-such-model'"),
    (("verify",), "name the entries to verify"),
    (("verify", "nopath-vllm"), "has no files recorded"),
    (("verify", "store-ollama"), "lives in another program's store"),
    (("lock", NAME), "no aggregate digest is recorded"),
    (("lock", "no-such-model", "--set-expected"), "no entry named"),
    (("unlock", "no-such-model"), "no entry named"),
], ids=["unknown-name", "no-names", "no-path", "store-reference", "lock-no-aggregate", "lock-unknown",
        "unlock-unknown"])
def test_user_errors_exit_1_with_one_error_line_and_write_nothing(cli, odd_entries, args, message):
    before = registry_bytes(odd_entries)
    result = cli(*args, prog=LOADER)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "internal error" not in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert registry_bytes(odd_entries) == before


@pytest.mark.parametrize("args", [("verify", NAME, "--algorithm", "md4-nope"),
                                  ("lock", NAME, "--set-expected", "--algorithm", "md4-nope")])
def test_an_unknown_algorithm_is_a_usage_error_listing_the_installed_ones(cli, odd_entries, args):
    before = registry_bytes(odd_entries)
    result = cli(*args, prog=LOADER)
    assert result.exit_code == 64, (result.stdout, result.stderr)
    assert "unknown algorithm 'md4-nope' (valid: " in result.stderr and "sha256" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert registry_bytes(odd_entries) == before


def test_an_unknown_name_among_known_ones_fails_before_hashing(cli, reg):
    before = registry_bytes(reg)
    result = cli("verify", NAME, "no-such-model", prog=LOADER)
    assert result.exit_code == 1 and result.stdout == ""
    assert registry_bytes(reg) == before
    assert not (settings_for(reg).cache_dir / "stat-cache").exists()  # nothing was hashed
    assert verify_json(cli, NAME)["exit_code"] == 0  # (where one hash would have left it)
    assert (settings_for(reg).cache_dir / "stat-cache").is_dir()


# --- dry runs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, prog", [
    (("verify", NAME, "--dry-run"), LOADER),
    (("verify", "--all", "--dry-run"), LOADER),
    (("verify", "--fix-missing", "--dry-run"), DOWNLOAD),
    (("lock", NAME, "--set-expected", "--dry-run"), LOADER),
    (("unlock", NAME, "--dry-run"), LOADER),
    (("unlock", NAME, "--clear-expected", "--dry-run"), LOADER),
], ids=["verify", "verify-all", "download-fix-missing", "lock", "unlock", "unlock-clear"])
def test_dry_run_leaves_the_registry_files_byte_identical(cli, locked, model, args, prog):
    (model / CONFIG).unlink()  # every command here would have something to record
    with open(model / WEIGHTS, "r+b") as fh:
        fh.truncate(10)
    before = registry_bytes(locked)
    result = cli(*args, prog=prog)
    assert result.exit_code in (0, 2), result.stderr
    assert "dry run, nothing was recorded" in result.stderr
    assert registry_bytes(locked) == before


def test_dry_run_of_a_first_verify_records_nothing(cli, reg):
    before = registry_bytes(reg)
    doc = verify_json(cli, NAME, "--dry-run")
    assert only(doc)["status"] == "recorded"
    assert registry_bytes(reg) == before
    assert "artifacts" not in discovered(reg)


# --- imageworks-download verify: the install check ------------------------------------------------


def test_download_verify_checks_every_entry_without_hashing(cli, baseline, odd_entries):
    doc = verify_json(cli, prog=DOWNLOAD)
    results = {r["name"]: r for r in doc["results"]}
    assert {n: r["status"] for n, r in results.items()} == {NAME: "ok", "nopath-vllm": "not-installed",
                                                            "store-ollama": "skipped"}
    assert doc["exit_code"] == 0 and {r["mode"] for r in doc["results"]} == {"install"}
    r = results[NAME]
    assert r["files"] == len(REGULAR) + 1 and r["hashed_files"] == 0 and r["actual"] is None


def test_download_verify_missing_folder_and_fix_missing(cli, baseline, model, tmp_path):
    moved = tmp_path / "elsewhere"
    model.rename(moved)
    doc = verify_json(cli, prog=DOWNLOAD)
    assert doc["exit_code"] == 2 and only(doc)["status"] == "missing" and only(doc)["fixed"] is None
    assert "status" not in discovered(baseline)["download"]  # without --fix-missing nothing is marked

    doc = verify_json(cli, "--fix-missing", prog=DOWNLOAD)
    assert only(doc)["fixed"] == "marked missing"
    assert discovered(baseline)["download"]["status"] == "missing"
    assert doc["exit_code"] == 2

    moved.rename(model)
    doc = verify_json(cli, "--fix-missing", prog=DOWNLOAD)
    assert doc["exit_code"] == 0 and only(doc)["status"] == "ok" and only(doc)["fixed"] == "cleared"
    download = discovered(baseline)["download"]
    assert "status" not in download and "status_since" not in download
    assert only(verify_json(cli, "--fix-missing", prog=DOWNLOAD))["fixed"] is None  # nothing left to clear


def test_download_verify_removed_file_is_incomplete(cli, baseline, model):
    _remove(model)
    result = cli("verify", prog=DOWNLOAD)
    assert result.exit_code == 2
    assert result.stdout.startswith("INCOMPLETE") and f"missing    {CONFIG}" in result.stdout
    doc = verify_json(cli, NAME, "--fix-missing", prog=DOWNLOAD)
    assert only(doc)["status"] == "incomplete" and only(doc)["fixed"] == "marked incomplete"
    assert discovered(baseline)["download"]["status"] == "incomplete"


def test_loader_verify_fix_missing_marks_removed_files_and_clears_when_back(cli, baseline, model):
    saved = (model / CONFIG).read_bytes()
    _remove(model)
    doc = verify_json(cli, NAME, "--fix-missing")
    assert only(doc)["status"] == "diverged" and only(doc)["fixed"] == "marked incomplete"
    assert discovered(baseline)["download"]["status"] == "incomplete"
    (model / CONFIG).write_bytes(saved)
    doc = verify_json(cli, NAME, "--fix-missing")
    assert only(doc)["status"] == "ok" and only(doc)["fixed"] == "cleared"
    assert "status" not in discovered(baseline)["download"]


def test_download_verify_resized_file_is_changed(cli, baseline, model):
    _truncate(model)
    doc = verify_json(cli, prog=DOWNLOAD)
    assert doc["exit_code"] == 2 and only(doc)["status"] == "changed"
    assert changes(doc)[WEIGHTS]["change"] == "changed"


def test_download_verify_cannot_see_a_same_size_change_but_hashes_can(cli, baseline, model):
    _change_byte(model)
    assert verify_json(cli, prog=DOWNLOAD)["exit_code"] == 0
    doc = verify_json(cli, NAME, "--hashes", prog=DOWNLOAD)
    assert doc["exit_code"] == 2 and only(doc)["mode"] == "full" and only(doc)["hashed_files"] == len(REGULAR)
    assert set(changes(doc)) == {WEIGHTS}


def test_download_has_no_lock_command(cli, baseline):
    result = cli("lock", NAME, prog=DOWNLOAD)
    assert result.exit_code == 64 and "No such command" in result.stderr


# --- verify --quick -------------------------------------------------------------------------------


def test_quick_reuses_digests_of_unchanged_files_and_rehashes_a_changed_one(cli, reg, model):
    backdate(model)
    assert verify_json(cli, NAME)["exit_code"] == 0  # full: hashes everything, fills the stat cache
    r = only(verify_json(cli, NAME, "--quick"))
    assert (r["status"], r["mode"], r["cached_files"], r["hashed_files"]) == ("ok", "quick", len(REGULAR), 0)

    flip_byte(model / VOCAB, offset=0)
    t = time.time() - 1800
    os.utime(model / VOCAB, (t, t))
    doc = verify_json(cli, NAME, "--quick")
    r = only(doc)
    assert doc["exit_code"] == 2 and r["hashed_files"] == 1 and r["cached_files"] == len(REGULAR) - 1
    assert r["hashed_bytes"] == (model / VOCAB).stat().st_size
    assert set(changes(doc)) == {VOCAB}


def test_quick_does_not_trust_files_written_just_before_hashing(cli, reg, model):
    assert verify_json(cli, NAME)["exit_code"] == 0  # files written moments ago: racy, not cached
    r = only(verify_json(cli, NAME, "--quick"))
    assert r["cached_files"] == 0 and r["hashed_files"] == len(REGULAR)


def layer_files(reg: Path) -> dict[str, tuple[bytes, int]]:
    """Each registry layer and the snapshot: its bytes and mtime (a rewrite with equal bytes still shows)."""
    from imageworks_models.registry.store import MERGED_FILE

    return {f: ((reg / f).read_bytes(), (reg / f).stat().st_mtime_ns) for f in (CURATED_FILE, DISCOVERED_FILE,
                                                                                MERGED_FILE)}


def test_unchanged_quick_verify_writes_no_registry_layer_and_records_its_check(cli, locked, model):
    from imageworks_models.registry.checks import CHECKS_FILE

    backdate(model)
    assert verify_json(cli, NAME)["exit_code"] == 0  # fills the stat cache
    before_files, before_lock = layer_files(locked), entry_of(locked)["version_lock"]
    time.sleep(1.1)  # timestamps are to the second
    r = only(verify_json(cli, NAME, "--quick"))
    assert (r["status"], r["hashed_files"]) == ("ok", 0)
    assert layer_files(locked) == before_files  # neither layer nor the snapshot was rewritten
    lock = entry_of(locked)["version_lock"]
    assert lock["last_verified"] == lock["last_checked"] > before_lock["last_checked"]
    assert (lock["last_status"], lock["last_mode"], lock["locked"]) == ("ok", "quick", True)
    record = json.loads((locked / CHECKS_FILE).read_text(encoding="utf-8"))["checks"][NAME]
    assert record["last_checked"] == lock["last_checked"] and record["expected"] == lock["expected_aggregate"]
    shown = json.loads(cli("show", NAME, "--json", prog="imageworks-models").stdout)
    assert shown["version_lock"]["last_verified"] == lock["last_verified"]


def test_a_changed_file_under_quick_is_recorded_and_a_later_lock_wins_over_the_old_check(cli, baseline, model):
    backdate(model)
    assert verify_json(cli, NAME)["exit_code"] == 0
    flip_byte(model / VOCAB, offset=0)
    t = time.time() - 1800
    os.utime(model / VOCAB, (t, t))
    assert verify_json(cli, NAME, "--quick")["exit_code"] == 2
    lock = entry_of(baseline)["version_lock"]
    assert (lock["last_status"], lock["last_mode"]) == ("diverged", "quick")
    # accepting records the new manifest in the discovered layer; the diverged check no longer applies
    assert verify_json(cli, NAME, "--quick", "--accept")["exit_code"] == 0
    art = discovered(baseline)["artifacts"]
    assert next(f for f in art["files"] if f["path"] == VOCAB)["digest"] == "sha256:" + hashlib.sha256(
        (model / VOCAB).read_bytes()).hexdigest()
    lock = entry_of(baseline)["version_lock"]
    assert lock["last_status"] == "ok" and lock["last_verified"] == lock["last_checked"]


def test_a_diverged_check_keeps_the_last_verified_of_the_last_match(cli, baseline, model):
    first = entry_of(baseline)["version_lock"]["last_verified"]
    time.sleep(1.1)
    flip_byte(model / WEIGHTS)
    assert verify_json(cli, NAME)["exit_code"] == 2
    lock = entry_of(baseline)["version_lock"]
    assert lock["last_status"] == "diverged" and lock["last_verified"] == first < lock["last_checked"]


def test_an_unreadable_checks_file_is_left_alone_and_the_check_goes_to_the_discovered_layer(cli, baseline,
                                                                                          model, caplog):
    from imageworks_models.registry.checks import CHECKS_FILE

    (baseline / CHECKS_FILE).write_text("{not json", encoding="utf-8")
    time.sleep(1.1)
    flip_byte(model / WEIGHTS)
    result = cli("verify", NAME, prog=LOADER)
    assert result.exit_code == 2
    assert CHECKS_FILE in result.stderr and "ignored" in result.stderr
    assert (baseline / CHECKS_FILE).read_text(encoding="utf-8") == "{not json"
    assert discovered(baseline)["version_lock"]["last_status"] == "diverged"


# --- verify --all ---------------------------------------------------------------------------------


def test_verify_all_checks_installed_entries_and_skips_the_rest(cli, odd_entries, tmp_path):
    second = make_model(tmp_path / "weights" / "second")
    make_registry(odd_entries, {"name": "second-vllm", "backend": "vllm"})
    put_discovered(odd_entries, {"name": "second-vllm", "download": {"path": str(second)}})
    doc = verify_json(cli, "--all")
    statuses = {r["name"]: r["status"] for r in doc["results"]}
    assert statuses == {NAME: "recorded", "second-vllm": "recorded", "nopath-vllm": "not-installed",
                        "store-ollama": "skipped"}
    assert doc["exit_code"] == 0
    assert "artifacts" in discovered(odd_entries, "second-vllm")
    assert "version_lock" not in discovered(odd_entries, "store-ollama")

    flip_byte(second / WEIGHTS)
    doc = verify_json(cli, "--all")
    assert doc["exit_code"] == 2
    assert {r["name"]: r["status"] for r in doc["results"]}["second-vllm"] == "diverged"
    assert doc["summary"] == {"diverged": 1, "not-installed": 1, "ok": 1, "skipped": 1}


# --- other layouts: special files, a single-file model, a Hugging Face cache snapshot -------------


def test_special_files_are_recorded_not_opened(cli, reg, model):
    os.mkfifo(model / "pipe")  # opening it for reading would block
    assert only(verify_json(cli, NAME))["status"] == "recorded"
    files = {f["path"]: f for f in discovered(reg)["artifacts"]["files"]}
    assert files["pipe"] == {"path": "pipe", "size": None, "digest": None, "special": "fifo"}
    (model / "pipe").unlink()
    assert changes(verify_json(cli, NAME))["pipe"]["change"] == "missing"


def test_a_single_file_entry(cli, reg, tmp_path):
    gguf = tmp_path / "weights" / "tiny-q4.gguf"
    gguf.write_bytes(os.urandom(2048))
    put_discovered(reg, {"name": NAME, "download": {"path": str(gguf)}})
    assert only(verify_json(cli, NAME))["status"] == "recorded"
    assert [f["path"] for f in discovered(reg)["artifacts"]["files"]] == [gguf.name]
    assert cli("lock", NAME, prog=LOADER).exit_code == 0
    assert verify_json(cli, prog=DOWNLOAD)["exit_code"] == 0
    with open(gguf, "r+b") as fh:
        fh.truncate(1024)
    assert list_row(cli)["lock_status"] == "drift"
    assert verify_json(cli, prog=DOWNLOAD)["exit_code"] == 2
    assert changes(verify_json(cli, NAME))[gguf.name]["change"] == "changed"


def make_hf_snapshot(root: Path) -> Path:
    """A Hugging Face cache repo: snapshots/<commit>/<file> are relative links into blobs/."""
    repo = root / "hub" / "models--org--tiny"
    snap = repo / "snapshots" / ("c0ffee" * 6 + "abcd")
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for name, data in {CONFIG: b'{"a": 1}\n', WEIGHTS: os.urandom(4096)}.items():
        blob = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        os.symlink(f"../../blobs/{blob}", snap / name)
    return snap


def test_hf_cache_snapshot_links_are_hashed_by_content(cli, reg, tmp_path):
    snap = make_hf_snapshot(tmp_path)
    put_discovered(reg, {"name": NAME, "download": {"path": str(snap)}})
    assert verify_json(cli, NAME)["exit_code"] == 0
    files = {f["path"]: f for f in discovered(reg)["artifacts"]["files"]}
    blob = os.readlink(snap / WEIGHTS)
    assert files[WEIGHTS] == {"path": WEIGHTS, "size": 4096, "digest": "sha256:" + Path(blob).name, "link": blob}
    flip_byte(snap / WEIGHTS)  # writes the blob the link points to
    doc = verify_json(cli, NAME)
    assert doc["exit_code"] == 2 and set(changes(doc)) == {WEIGHTS}


# --- the earlier tool's manifests -----------------------------------------------------------------


def earlier_tool_artifacts(root: Path, subset: tuple[str, ...] | None = None) -> dict:
    """Artifacts as the earlier tool recorded them: ``rglob`` + ``is_file`` (so a link to a file is
    recorded under its own path with its target's digest), sha256 per file, no sizes, and an
    aggregate over ``"<hex>  <path>"`` lines this tool cannot recompute. ``subset``: the files its
    targeted hashing recorded (config, tokenizer files)."""
    files = []
    for p in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = p.relative_to(root).as_posix()
        if subset is None or rel in subset:
            files.append({"path": rel, "digest": "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()})
    lines = sorted(f"{f['digest'][7:]}  {f['path']}" for f in files)
    return {"aggregate": "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest(), "files": files}


def record_as_earlier_tool(reg: Path, model: Path, *, subset=None, locked: bool = False) -> dict:
    art = earlier_tool_artifacts(model, subset)
    entry = {"name": NAME, "download": {"path": str(model)}, "artifacts": art}
    if locked:
        entry["version_lock"] = {"locked": True, "expected_aggregate": art["aggregate"]}
    put_discovered(reg, entry)
    return art


def _hf_bookkeeping(m: Path) -> None:
    meta = m / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / f"{WEIGHTS}.metadata").write_text("abc123\n", encoding="utf-8")


@pytest.mark.parametrize("prepare, subset", [
    (None, None),
    (_hf_bookkeeping, None),
    (None, (CONFIG, TOKENIZER)),
], ids=["whole-folder-with-link", "hf-bookkeeping", "targeted-subset"])
def test_legacy_manifest_that_matches_is_upgraded(cli, reg, model, prepare, subset):
    if prepare:
        prepare(model)
    record_as_earlier_tool(reg, model, subset=subset)
    doc = verify_json(cli, NAME)
    r = only(doc)
    assert (doc["exit_code"], r["status"], r["changes"]) == (0, "recorded", []), doc
    assert ("3 files it had not recorded" in r["note"]) == bool(subset)  # 5 files now, 2 recorded
    art = discovered(reg)["artifacts"]
    assert art["manifest_version"] == 1 and art["aggregate"] == r["actual"]
    assert [f["path"] for f in art["files"]] == sorted([*REGULAR, LINK])
    assert all(isinstance(f["size"], int) for f in art["files"] if f["path"] != LINK)
    assert only(verify_json(cli, NAME))["status"] == "ok"


def _change_link_target(m: Path) -> str:
    flip_byte(m / TOKENIZER, offset=2)
    return LINK  # the earlier tool recorded the link under its own path, with its target's digest


@pytest.mark.parametrize("modify", [_change_byte, _remove, _change_link_target],
                         ids=["changed", "removed", "through-link"])
def test_legacy_manifest_that_differs_names_the_file(cli, reg, model, modify):
    recorded = record_as_earlier_tool(reg, model)
    path = modify(model)
    doc = verify_json(cli, NAME)
    assert doc["exit_code"] == 2 and only(doc)["status"] == "diverged"
    assert path in changes(doc)
    assert discovered(reg)["artifacts"] == recorded


def test_legacy_manifest_of_an_hf_cache_snapshot_is_upgraded(cli, reg, tmp_path):
    snap = make_hf_snapshot(tmp_path)
    record_as_earlier_tool(reg, snap)
    doc = verify_json(cli, NAME)
    assert (doc["exit_code"], only(doc)["status"]) == (0, "recorded"), doc
    assert all(f["link"].startswith("../../blobs/") for f in discovered(reg)["artifacts"]["files"])


def test_legacy_subset_manifest_passes_the_install_check(cli, reg, model):
    record_as_earlier_tool(reg, model, subset=(CONFIG,))
    doc = verify_json(cli, prog=DOWNLOAD)
    assert doc["exit_code"] == 0 and only(doc)["changes"] == []
    _remove(model)
    doc = verify_json(cli, prog=DOWNLOAD)
    assert doc["exit_code"] == 2 and only(doc)["status"] == "incomplete"


def test_locked_legacy_entry_is_activated_while_its_files_match(reg, model):
    from imageworks_models.serving.activation import preflight

    record_as_earlier_tool(reg, model, locked=True)
    settings = settings_for(reg)
    preflight(entry_of(reg), settings=settings)
    flip_byte(model / WEIGHTS)
    with pytest.raises(LockedEntryDriftError) as info:
        preflight(entry_of(reg), settings=settings)
    assert any(WEIGHTS in c for c in info.value.changes)


def test_locked_legacy_entry_is_pinned_to_the_upgraded_manifest(cli, reg, model):
    record_as_earlier_tool(reg, model, locked=True)
    upgraded = only(verify_json(cli, NAME))
    assert upgraded["status"] == "recorded" and upgraded["locked"]
    assert discovered(reg)["version_lock"]["expected_aggregate"] == upgraded["actual"]
    assert only(verify_json(cli, NAME))["status"] == "ok"
    assert list_row(cli)["lock_status"] == "locked"


def test_legacy_manifest_cannot_be_locked_without_hashing(cli, reg, model):
    record_as_earlier_tool(reg, model)
    result = cli("lock", NAME, prog=LOADER)
    assert result.exit_code == 1 and "recorded by the earlier tool" in result.stderr


# --- JSON shapes ----------------------------------------------------------------------------------


def test_verify_json_shape(cli, baseline, model):
    public = {f.name for f in dataclass_fields(VerifyResult) if not f.name.startswith("_")}
    assert VERIFY_KEYS == public - {"manifest"}
    _remove(model)
    doc = verify_json(cli, NAME)
    assert set(doc) == {"results", "summary", "exit_code"}
    assert set(only(doc)) == VERIFY_KEYS
    assert doc["summary"] == {"diverged": 1}
    r = only(doc)
    assert r["algorithm"] == "sha256" and r["expected"] != r["actual"] and r["path"] == str(model)
    recorded = next(f for f in discovered(baseline)["artifacts"]["files"] if f["path"] == CONFIG)
    assert changes(doc)[CONFIG] == {"path": CONFIG, "change": "missing", "expected": recorded, "actual": None}


def test_lock_and_unlock_json_shape(cli, baseline):
    assert LOCK_KEYS == {f.name for f in dataclass_fields(LockResult)} - {"manifest"}
    aggregate = discovered(baseline)["artifacts"]["aggregate"]
    result = cli("lock", NAME, "--set-expected", "--json", prog=LOADER)
    doc = json.loads(result.stdout)
    assert set(doc) == {"results", "dry_run"} and doc["dry_run"] is False
    assert len(doc["results"]) == 1 and set(doc["results"][0]) == LOCK_KEYS
    assert doc["results"][0] | {"note": None} == {"name": NAME, "locked_before": False, "locked": True,
                                                   "expected_before": None, "expected": aggregate,
                                                   "changed": True, "note": None}
    doc = json.loads(cli("unlock", NAME, "--json", prog=LOADER).stdout)
    assert set(doc["results"][0]) == LOCK_KEYS
    assert (doc["results"][0]["locked_before"], doc["results"][0]["locked"]) == (True, False)


# --- blake3 ---------------------------------------------------------------------------------------


def test_lock_with_blake3_records_blake3_digests_and_verify_uses_them(cli, baseline, model):
    blake3 = pytest.importorskip("blake3", reason="the optional blake3 package is not installed")
    result = cli("lock", NAME, "--set-expected", "--algorithm", "blake3", prog=LOADER)
    assert result.exit_code == 0, result.stderr
    entry = discovered(baseline)
    assert entry["version_lock"]["expected_aggregate"].startswith("blake3:")
    files = {f["path"]: f for f in entry["artifacts"]["files"]}
    assert files[WEIGHTS]["digest"] == "blake3:" + blake3.blake3((model / WEIGHTS).read_bytes()).hexdigest()

    doc = verify_json(cli, NAME)  # no --algorithm: the expected digest's own algorithm
    assert doc["exit_code"] == 0 and only(doc)["algorithm"] == "blake3" and only(doc)["status"] == "ok"
    flip_byte(model / WEIGHTS)
    doc = verify_json(cli, NAME, "--algorithm", "sha256")  # still checked with blake3
    assert doc["exit_code"] == 2 and only(doc)["algorithm"] == "blake3"
