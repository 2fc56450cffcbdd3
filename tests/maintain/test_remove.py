"""``remove`` for entries with files of their own (the Ollama store's case is in plugins/ollama/tests): the refusal
paths, symlinks that must never be followed out of a model folder, the weights roots, and what the plan shows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imageworks_models.registry.store import RegistryStore


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


@pytest.fixture
def env(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    model = weights / "org" / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"\0" * 4096)
    registry = tmp_path / "configs"
    with RegistryStore(registry).edit() as layers:
        layers.curated.put({"name": "tiny", "backend": "vllm"})
        layers.discovered.put({"name": "tiny", "download": {"path": str(model)}})
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(registry))
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(weights))
    return tmp_path, registry, weights, model


def set_path(registry: Path, path: Path) -> None:
    with RegistryStore(registry).edit() as layers:
        layers.discovered.put({"name": "tiny", "download": {"path": str(path)}})


def test_without_force_the_plan_is_printed_and_nothing_changes(cli, env):
    tmp, registry, weights, model = env
    before_files, before_reg = tree(weights), tree(registry)

    result = cli("remove", "tiny", "--delete-files", prog="imageworks-download")

    assert result.exit_code == 1
    assert f"delete {model} (4.0 KiB reclaimed)" in result.stdout
    assert "without --force" in result.stderr
    assert tree(weights) == before_files and tree(registry) == before_reg


def test_dry_run_changes_nothing(cli, env):
    tmp, registry, weights, model = env
    before_files, before_reg = tree(weights), tree(registry)

    result = cli("remove", "tiny", "--delete-files", "--purge", "--force", "--dry-run", prog="imageworks-download")

    assert result.exit_code == 0, result.stderr
    assert tree(weights) == before_files and tree(registry) == before_reg


def test_metadata_only_keeps_the_files(cli, env):
    tmp, registry, weights, model = env
    before_files = tree(weights)

    result = cli("remove", "tiny", "--force", prog="imageworks-download")

    assert result.exit_code == 0, result.stderr
    assert tree(weights) == before_files
    assert json.loads((registry / "model_registry.curated.json").read_text())["entries"] == []


def test_a_symlink_inside_the_folder_is_deleted_not_followed(cli, env):
    tmp, registry, weights, model = env
    precious = tmp / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("do not delete")
    (model / "linked-dir").symlink_to(precious, target_is_directory=True)
    (model / "linked-file").symlink_to(precious / "keep.txt")

    result = cli("remove", "tiny", "--delete-files", "--force", prog="imageworks-download")

    assert result.exit_code == 0, result.stderr
    assert not model.exists()
    assert (precious / "keep.txt").read_text() == "do not delete"


def test_a_model_path_that_is_a_symlink_is_refused(cli, env):
    tmp, registry, weights, model = env
    link = weights / "org" / "tiny-link"
    link.symlink_to(model, target_is_directory=True)
    set_path(registry, link)
    before = tree(weights)

    result = cli("remove", "tiny", "--delete-files", "--force", prog="imageworks-download")

    assert result.exit_code == 1
    assert f"{link} is a symbolic link" in result.stderr and "refusing to delete through it" in result.stderr
    assert tree(weights) == before and link.is_symlink()


def test_a_path_reaching_outside_the_roots_through_a_parent_symlink_is_refused(cli, env):
    tmp, registry, weights, model = env
    outside = tmp / "outside" / "model"
    outside.mkdir(parents=True)
    (outside / "w.bin").write_bytes(b"x")
    (weights / "escape").symlink_to(tmp / "outside", target_is_directory=True)
    set_path(registry, weights / "escape" / "model")  # looks inside the root; really is not

    result = cli("remove", "tiny", "--delete-files", "--force", prog="imageworks-download")

    assert result.exit_code == 1
    assert "outside the configured weights roots" in result.stderr
    assert (outside / "w.bin").read_bytes() == b"x"


def test_a_whole_weights_root_is_never_deleted(cli, env):
    tmp, registry, weights, model = env
    set_path(registry, weights)

    result = cli("remove", "tiny", "--delete-files", "--force", prog="imageworks-download")

    assert result.exit_code == 1
    assert "outside the configured weights roots" in result.stderr
    assert model.is_dir()


def test_files_only_keeps_the_entry_not_installed_and_says_what_was_reclaimed(cli, env):
    tmp, registry, weights, model = env

    result = cli("remove", "tiny", "--delete-files", "--force", "--json", prog="imageworks-download")

    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["bytes"] == 4096 + 2 and out["path"] == str(model)
    assert not model.exists() and weights.is_dir()
    listed = json.loads(cli("list", "--include-non-installed", "--json").stdout)
    assert [(r["name"], r["installed"]) for r in listed] == [("tiny", False)]
    assert os.path.isdir(weights / "org")


def test_no_backup_skips_the_registry_backup(cli, env):
    tmp, registry, weights, model = env

    result = cli("remove", "tiny", "--force", "--no-backup", prog="imageworks-download")

    assert result.exit_code == 0, result.stderr
    assert not (registry / "backups").exists() or not any((registry / "backups").iterdir())


def test_the_backup_taken_restores_the_entry(cli, env):
    tmp, registry, weights, model = env
    before = (registry / "model_registry.curated.json").read_bytes()

    result = cli("remove", "tiny", "--force", prog="imageworks-download")

    assert result.exit_code == 0, result.stderr
    [backup] = [p for p in (registry / "backups").iterdir() if "curated" in p.name]
    assert backup.read_bytes() == before
