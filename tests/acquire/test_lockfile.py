"""``lock export``, ``sync models.lock`` and ``check-updates`` against the stand-in Hub: one machine downloads
and locks, exports its lockfile; a second machine (another registry and weights folder) reproduces it byte for
byte at the locked commit, even after the repo moved on; drift and hostile lockfiles are reported, not written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from safetensors.numpy import save as safetensors_save

from imageworks_models.acquire.download import download
from imageworks_models.settings import load_settings
from imageworks_models.testing import make_registry, run_cli

pytestmark = pytest.mark.usefixtures("imageworks_isolated")

CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "torch_dtype": "float16"}


def weights_bytes(seed: int) -> bytes:
    import numpy as np

    return safetensors_save({"w": np.random.default_rng(seed).standard_normal(64).astype(np.float16)})


def repo_files(seed: int = 0) -> dict[str, bytes]:
    return {"config.json": json.dumps(CONFIG).encode(), "tokenizer_config.json": b'{"bos_token": "<s>"}',
            "model.safetensors": weights_bytes(seed)}


def machine(tmp_path: Path, monkeypatch, label: str) -> Path:
    """Point the settings at machine ``label``'s own registry and weights folder."""
    registry = Path(make_registry(tmp_path / label / "registry"))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(registry))
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(tmp_path / label / "weights"))
    monkeypatch.setenv("IMAGEWORKS_CACHE_DIR", str(tmp_path / label / "cache"))
    return registry


def entries(registry: Path) -> dict[str, dict]:
    path = registry / "model_registry.discovered.json"
    return {e["name"]: e for e in json.loads(path.read_text())["entries"]} if path.exists() else {}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def exported(hub, tmp_path, monkeypatch):
    """Machine A downloaded org/tiny, locked it and exported models.lock; returns (lockfile, commit, files, name)."""
    files = repo_files()
    commit = hub.add_repo("org/tiny", files)
    machine(tmp_path, monkeypatch, "a")
    name = download("org/tiny", settings=load_settings()).name
    assert run_cli("lock", name, "--set-expected", prog="imageworks-loader").exit_code == 0
    lockfile = tmp_path / "models.lock"
    result = run_cli("lock", "export", "--output", str(lockfile), prog="imageworks-loader")
    assert result.exit_code == 0, result.stderr
    return lockfile, commit, files, name


def test_lock_export_records_source_commit_and_every_file_digest(exported):
    lockfile, commit, files, name = exported

    doc = json.loads(lockfile.read_text())

    assert doc["schema_version"] == 1
    [rec] = doc["entries"]
    assert rec["name"] == name and rec["backend"] == "vllm" and rec["format"] == "safetensors"
    assert rec["source"] == {"provider": "hf", "repo_id": "org/tiny", "revision": "main", "commit": commit}
    assert {f["path"]: f["digest"] for f in rec["files"]} == {
        p: "sha256:" + hashlib.sha256(b).hexdigest() for p, b in files.items()}
    assert {f["path"]: f["size"] for f in rec["files"]} == {p: len(b) for p, b in files.items()}
    assert rec["aggregate"].startswith("sha256:")


def test_lock_export_leaves_out_unlocked_entries(hub, tmp_path, monkeypatch):
    hub.add_repo("org/tiny", repo_files())
    machine(tmp_path, monkeypatch, "a")
    download("org/tiny", settings=load_settings())

    result = run_cli("lock", "export", "-o", str(tmp_path / "m.lock"), "--json", prog="imageworks-loader")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["entries"] == []
    assert json.loads((tmp_path / "m.lock").read_text())["entries"] == []


def test_sync_on_another_machine_downloads_the_locked_commit_verifies_and_locks(exported, hub, tmp_path, monkeypatch):
    lockfile, commit, files, name = exported
    hub.commit("org/tiny", {"model.safetensors": weights_bytes(99)})  # upstream moved on since the lock
    registry_b = machine(tmp_path, monkeypatch, "b")

    dry = run_cli("sync", str(lockfile), "--dry-run", "--json", prog="imageworks-loader")
    result = run_cli("sync", str(lockfile), "--json", prog="imageworks-loader")

    assert dry.exit_code == 0, dry.stderr
    assert [(r["action"], r["name"]) for r in json.loads(dry.stdout)["rows"]] == [("download", name)]
    assert result.exit_code == 0, result.stderr
    assert [r["action"] for r in json.loads(result.stdout)["rows"]] == ["downloaded"]
    entry = entries(registry_b)[name]
    assert entry["source"]["commit"] == commit  # the locked commit, not the branch's new head
    assert entry["version_lock"]["locked"] is True
    lock_rec = json.loads(lockfile.read_text())["entries"][0]
    assert entry["version_lock"]["expected_aggregate"] == lock_rec["aggregate"]
    path = Path(entry["download"]["path"])
    assert {p: (path / p).read_bytes() for p in files} == files


def test_sync_dry_run_writes_nothing(exported, tmp_path, monkeypatch):
    lockfile, _, _, _ = exported
    machine(tmp_path, monkeypatch, "b")
    before = snapshot(tmp_path / "b")

    result = run_cli("sync", str(lockfile), "--dry-run", prog="imageworks-loader")

    assert result.exit_code == 0, result.stderr
    assert snapshot(tmp_path / "b") == before
    assert not (tmp_path / "b" / "weights").exists()


def test_sync_again_finds_everything_ok(exported, tmp_path, monkeypatch):
    lockfile, _, _, name = exported
    machine(tmp_path, monkeypatch, "b")
    assert run_cli("sync", str(lockfile), prog="imageworks-loader").exit_code == 0

    again = run_cli("sync", str(lockfile), "--json", prog="imageworks-loader")

    assert again.exit_code == 0
    assert [(r["action"], r["name"]) for r in json.loads(again.stdout)["rows"]] == [("ok", name)]


def test_sync_reports_drift_with_exit_2_and_names_the_file(exported, tmp_path, monkeypatch):
    lockfile, _, _, name = exported
    registry_b = machine(tmp_path, monkeypatch, "b")
    assert run_cli("sync", str(lockfile), prog="imageworks-loader").exit_code == 0
    path = Path(entries(registry_b)[name]["download"]["path"])
    (path / "config.json").write_bytes(b'{"model_type": "tampered"}')

    result = run_cli("sync", str(lockfile), "--json", prog="imageworks-loader")

    assert result.exit_code == 2
    [row] = json.loads(result.stdout)["rows"]
    assert row["action"] == "drift" and row["differing"] == ["config.json"]


def test_sync_refuses_a_lockfile_naming_a_path_outside_the_model_folder(exported, tmp_path, monkeypatch):
    lockfile, _, _, _ = exported
    doc = json.loads(lockfile.read_text())
    doc["entries"][0]["files"][0]["path"] = "../../etc/passwd"
    lockfile.write_text(json.dumps(doc))
    machine(tmp_path, monkeypatch, "b")
    before = snapshot(tmp_path / "b")

    result = run_cli("sync", str(lockfile), prog="imageworks-loader")

    assert result.exit_code == 1
    assert "../../etc/passwd" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(tmp_path / "b") == before


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("not json", "invalid JSON"),
    ('{"schema_version": 9, "entries": []}', "newer than this tool reads"),
    ('{"schema_version": 1, "entries": [{"name": "x"}]}', "invalid value"),  # every field named (issue 17, D24)
])
def test_sync_bad_lockfile_is_one_clear_error(tmp_path, monkeypatch, content, message):
    machine(tmp_path, monkeypatch, "b")
    lockfile = tmp_path / "models.lock"
    if content is not None:
        lockfile.write_text(content)

    result = run_cli("sync", str(lockfile), prog="imageworks-loader")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr


def test_check_updates_reports_current_then_moved_without_touching_files(exported, hub, tmp_path):
    _, commit, _, name = exported
    current = run_cli("check-updates", "--json")
    new_head = hub.commit("org/tiny", {"model.safetensors": weights_bytes(7)})
    before = snapshot(tmp_path / "a")

    moved = run_cli("check-updates", "--json")

    assert current.exit_code == 0, current.stderr
    assert [(r["name"], r["status"], r["latest"]) for r in json.loads(current.stdout)] == [(name, "current", commit)]
    assert moved.exit_code == 0, moved.stderr
    [row] = json.loads(moved.stdout)
    assert (row["status"], row["commit"], row["latest"], row["repo_id"]) == ("moved", commit, new_head, "org/tiny")
    assert snapshot(tmp_path / "a") == before


def test_check_updates_for_a_branch_gone_from_the_hub_is_an_error_row(exported, tmp_path):
    _, _, _, name = exported
    layer = tmp_path / "a" / "registry" / "model_registry.discovered.json"
    doc = json.loads(layer.read_text())
    doc["entries"][0]["source"]["revision"] = "deleted-branch"
    layer.write_text(json.dumps(doc, indent=2) + "\n")

    result = run_cli("check-updates", "--json")

    assert result.exit_code == 1
    [row] = json.loads(result.stdout)
    assert row["status"] == "error" and row["name"] == name and "deleted-branch" in row["reason"]


def test_check_updates_leaves_out_entries_without_a_commit_unless_named(tmp_path, monkeypatch):
    registry = Path(make_registry(tmp_path / "c" / "registry", {"name": "scanned", "backend": "vllm"}))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(registry))

    listed = run_cli("check-updates", "--json")
    named = run_cli("check-updates", "scanned", "--json")

    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    assert named.exit_code == 0
    [row] = json.loads(named.stdout)
    assert row["status"] == "unknown" and "no commit recorded" in row["reason"]


def test_sync_draws_a_progress_bar_on_a_terminal_and_none_in_a_pipe(hub, tmp_path, monkeypatch):
    # issue 18 item 5: sync shows its download's progress on a terminal (binary units), nothing when piped
    import os
    import subprocess
    import sys

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ptyrun import run_in_pty

    big = safetensors_save({"w": np.random.default_rng(5).standard_normal(4 << 20).astype(np.float16)})  # 8 MiB
    hub.add_repo("org/big", {**repo_files(), "model.safetensors": big})
    machine(tmp_path, monkeypatch, "a")
    name = download("org/big", settings=load_settings()).name
    assert run_cli("lock", name, "--set-expected").exit_code == 0
    lockfile = tmp_path / "models.lock"
    assert run_cli("lock", "export", "--output", str(lockfile)).exit_code == 0
    loader = str(Path(sys.executable).with_name("imageworks-loader"))

    machine(tmp_path, monkeypatch, "piped")
    piped = subprocess.run([loader, "sync", str(lockfile)], env=dict(os.environ), capture_output=True, text=True,
                           timeout=120)
    machine(tmp_path, monkeypatch, "terminal")
    code, out = run_in_pty([loader, "sync", str(lockfile)], columns=120, env=dict(os.environ))

    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stderr + piped.stdout and "MiB/s" not in piped.stderr
    assert code == 0, out
    assert "\x1b[" in out and "MiB" in out and "━" in out, out  # a drawn bar with binary units
    assert " MB" not in out and "MB/s" not in out
