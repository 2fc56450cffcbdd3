"""``download`` and the attachment rules (issue 16), against the stand-in Hub through the CLI: a catalog entry of
the same repo gets the files under its own name and in its own folder, a conflict is refused before any file is
fetched, ``--name`` registers a second copy, and ``download --force`` of another GGUF quant renames the entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_download import AWQ_CONFIG, CONFIG, gguf_bytes, js, safetensors_bytes

from imageworks_models.testing import make_registry, run_cli

pytestmark = pytest.mark.usefixtures("imageworks_isolated")


def cli(*args: str):
    return run_cli(*args, prog="imageworks-models")


def discovered(reg: Path) -> dict[str, dict]:
    path = reg / "model_registry.discovered.json"
    return {e["name"]: e for e in json.loads(path.read_text())["entries"]} if path.exists() else {}


def body_bytes(hub) -> int:
    return sum(hub.bytes_sent.values())


@pytest.fixture
def env(hub, tmp_path, monkeypatch):
    reg = tmp_path / "registry"
    reg.mkdir()
    weights = tmp_path / "weights"
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(reg))
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(weights))
    monkeypatch.setenv("IMAGEWORKS_CACHE_DIR", str(tmp_path / "cache"))
    return reg, weights


def awq_repo(hub, repo_id="Qwen/Qwen3-8B-AWQ"):
    return hub.add_repo(repo_id, {"config.json": js(AWQ_CONFIG), "model.safetensors": safetensors_bytes(),
                                  "tokenizer_config.json": js({"chat_template": "{{ messages }}"})})


def test_download_of_a_catalog_repo_lands_in_its_model_path_under_its_name(env, hub, tmp_path):
    reg, weights = env
    awq_repo(hub)
    home_path = tmp_path / "elsewhere" / "Qwen3-8B-AWQ"
    make_registry(reg, {"name": "qwen3-8b-vllm-awq", "backend": "vllm", "aliases": ["Qwen/Qwen3-8B-AWQ"],
                        "source": {"provider": "hf", "repo_id": "Qwen/Qwen3-8B-AWQ", "revision": "main"},
                        "backend_config": {"model_path": str(home_path)}})

    result = cli("download", "Qwen/Qwen3-8B-AWQ", "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "qwen3-8b-vllm-awq" and data["action"] == "update"
    assert data["path"] == str(home_path) and (home_path / "model.safetensors").is_file()
    assert not (weights / "Qwen" / "Qwen3-8B-AWQ").exists()
    assert set(discovered(reg)) == {"qwen3-8b-vllm-awq"}


def test_the_dry_run_names_the_entry_from_the_hubs_model_info(env, hub):
    reg, _ = env
    awq_repo(hub)
    hub.reset_stats()

    data = json.loads(cli("download", "Qwen/Qwen3-8B-AWQ", "--dry-run", "--json").stdout)

    assert data["name"] == "qwen3-8b-vllm-awq" and data["format"] == "awq"
    assert body_bytes(hub) == 0  # the name came from the model info: no file was read
    assert discovered(reg) == {}


def test_a_conflict_is_refused_before_any_file_is_fetched(env, hub, tmp_path):
    reg, weights = env
    awq_repo(hub)
    other = tmp_path / "other-copy"
    other.mkdir()
    (other / "model.safetensors").write_bytes(safetensors_bytes(seed=3))
    make_registry(reg, {"name": "qwen3-8b-vllm-awq", "backend": "vllm",
                        "source": {"provider": "hf", "repo_id": "Qwen/Qwen3-8B-AWQ"},
                        "backend_config": {"model_path": str(other)}})
    before = {p.name: p.read_bytes() for p in reg.iterdir() if p.is_file()}
    hub.reset_stats()

    result = cli("download", "Qwen/Qwen3-8B-AWQ")

    assert result.exit_code == 1
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert str(other) in line and str(weights / "Qwen" / "Qwen3-8B-AWQ") in line and "--name" in line
    assert body_bytes(hub) == 0  # not one byte of any file, weights' first ranges included
    assert [r for r in hub.requests if "/resolve/" in r.path or r.server == "cdn"] == []
    assert {p.name: p.read_bytes() for p in reg.iterdir() if p.is_file()} == before
    assert not weights.exists() or not any(weights.rglob("*.safetensors"))

    renamed = cli("download", "Qwen/Qwen3-8B-AWQ", "--name", "qwen3-8b-awq-second", "--json")
    assert renamed.exit_code == 0, renamed.stderr
    assert json.loads(renamed.stdout)["name"] == "qwen3-8b-awq-second"
    assert set(discovered(reg)) == {"qwen3-8b-awq-second"}


def test_download_force_of_another_quant_renames_an_auto_named_entry(env, hub, tmp_path):
    reg, weights = env
    folder = tmp_path / "gguf-src"
    q4 = gguf_bytes(folder, "Tiny-Q4_K_M.gguf", 15)
    q8 = gguf_bytes(folder, "Tiny-Q8_0.gguf", 7, seed=1)
    hub.add_repo("org/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": q4, "Tiny-Q8_0.gguf": q8, "config.json": js(CONFIG)})

    first = cli("download", "org/Tiny-GGUF", "--weights", "Tiny-Q4_K_M.gguf", "--json")
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["name"] == "tiny-vllm-gguf-q4_k_m"
    assert cli("lock", "tiny-vllm-gguf-q4_k_m").exit_code == 0

    planned = cli("download", "org/Tiny-GGUF", "--weights", "Tiny-Q8_0.gguf", "--force", "--dry-run", "--json")
    assert json.loads(planned.stdout)["name"] == "tiny-vllm-gguf-q8_0"
    second = cli("download", "org/Tiny-GGUF", "--weights", "Tiny-Q8_0.gguf", "--force", "--json")

    assert second.exit_code == 0, second.stderr
    data = json.loads(second.stdout)
    assert data["name"] == "tiny-vllm-gguf-q8_0" and data["quantization"] == "q8_0"
    assert set(discovered(reg)) == {"tiny-vllm-gguf-q8_0"}  # no stale q4_k_m entry left behind
    entry = discovered(reg)["tiny-vllm-gguf-q8_0"]
    assert entry["version_lock"]["locked"] is True  # the lock on the folder outlives the rename
    assert [f["path"] for f in entry["artifacts"]["files"] if f["path"].endswith(".gguf")] == ["Tiny-Q8_0.gguf"]
    verify = cli("verify", "tiny-vllm-gguf-q8_0")
    assert verify.exit_code == 2  # locked to the q4 bytes: the new quant shows as drift until accepted


def test_a_scan_of_a_downloaded_gguf_folder_finds_the_same_entry(env, hub, tmp_path):
    reg, weights = env
    q4 = gguf_bytes(tmp_path / "src", "Tiny-Q4_K_M.gguf", 15)
    hub.add_repo("org/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": q4})
    assert cli("download", "org/Tiny-GGUF").exit_code == 0

    scanned = cli("scan", "--base", str(weights), "--json")

    assert scanned.exit_code == 0, scanned.stderr
    [row] = json.loads(scanned.stdout)["rows"]
    assert row["name"] == "tiny-vllm-gguf-q4_k_m" and row["action"] == "exists", row
    assert set(discovered(reg)) == {"tiny-vllm-gguf-q4_k_m"}
