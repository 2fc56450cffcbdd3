"""import-ollama (and scripts/import_ollama_models.py, rebuild-ollama, discover-all) on a real on-disk store:
strategy A naming, vision detection, tags sharing a blob, collisions, reconciliation after a re-quant, a
rename or a removal, placeholders, and hostile or broken manifests (D16-D19, S1, S6)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ollamaserver import StandInOllama
from ollamastore import blob_path, go_json, write_model

from imageworks_models.testing import run_cli

pytestmark = pytest.mark.usefixtures("imageworks_isolated")

REPO = Path(__file__).resolve().parents[2]
HEX = "ab" * 32


def dl(*args: str):
    return run_cli(*args, prog="imageworks-download")


def imported(*args: str) -> dict:
    result = dl("import-ollama", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def rows_by(data: dict, action: str) -> list[dict]:
    return [r for r in data["rows"] if r["action"] == action]


def entries(registry: Path) -> dict[str, dict]:
    path = registry / "model_registry.discovered.json"
    return {e["name"]: e for e in json.loads(path.read_text())["entries"]} if path.exists() else {}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and not p.name.startswith(".")}


@pytest.fixture
def registry(store, tmp_path) -> Path:
    return tmp_path / "registry"


# -- naming (strategy A) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("where, expected_name, served", [
    (dict(name="qwen3", tag="8b"), "qwen3-8b-ollama-gguf-q4_k_m", "qwen3:8b"),
    (dict(name="llama3.1", tag="latest"), "llama3.1-ollama-gguf-q4_k_m", "llama3.1:latest"),
    (dict(name="llama3.1", tag="8b-instruct-q4_K_M"), "llama3.1-8b-instruct-ollama-gguf-q4_k_m",
     "llama3.1:8b-instruct-q4_K_M"),
    (dict(name="Qwen2.5-7B-Instruct-GGUF", tag="Q4_K_M", host="hf.co", namespace="bartowski"),
     "qwen2.5-7b-instruct-ollama-gguf-q4_k_m", "hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M"),
    (dict(name="qwen3-abliterated", tag="8b", namespace="huihui_ai"), "qwen3-abliterated-8b-ollama-gguf-q4_k_m",
     "huihui_ai/qwen3-abliterated:8b"),
    (dict(name="mistral", tag="v0.3+custom"), "mistral-v0.3-custom-ollama-gguf-q4_k_m", "mistral:v0.3+custom"),
    (dict(name="gemma", tag="LATEST"), "gemma-ollama-gguf-q4_k_m", "gemma:LATEST"),
    (dict(name="phi", tag="__"), "phi-ollama-gguf-q4_k_m", "phi:__"),
])
def test_strategy_a_names_and_served_id_keeps_the_tag(store, registry, where, expected_name, served):
    write_model(store, where.pop("name"), where.pop("tag"), **where)

    data = imported()

    [row] = rows_by(data, "add")
    assert row["name"] == expected_name
    assert row["served_model_id"] == served
    entry = entries(registry)[expected_name]
    assert entry["served_model_id"] == served
    assert entry["backend"] == "ollama" and entry["format"] == "gguf" and entry["quantization"] == "q4_k_m"
    assert entry["source"] == {"provider": "ollama"}


def test_the_quant_comes_from_the_config_blob(store, registry):
    write_model(store, "qwen3", "8b-q8", file_type="Q8_0", gguf_file_type=7)
    write_model(store, "qwen3", "8b-f16", file_type="F16", gguf_file_type=1)

    names = sorted(r["name"] for r in rows_by(imported(), "add"))

    assert names == ["qwen3-8b-ollama-gguf-f16", "qwen3-8b-ollama-gguf-q8_0"]  # the quant in the tag moves to the end


def test_without_file_type_in_the_config_the_gguf_header_gives_the_quant(store, registry):
    info = write_model(store, "tinyllama", "1b", gguf_file_type=17)  # Q5_K_M in the GGUF itself
    config = dict(info.config)
    del config["file_type"]
    manifest = json.loads(info.manifest_path.read_bytes())
    data = go_json(config)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob_path(store, digest).write_bytes(data)
    manifest["config"].update(digest=digest, size=len(data))
    info.manifest_path.write_bytes(go_json(manifest))

    [row] = rows_by(imported(), "add")

    assert row["name"] == "tinyllama-1b-ollama-gguf-q5_k_m"


def test_the_import_runs_with_a_backend_and_location_of_the_users_choice(store, registry):
    write_model(store, "qwen3", "8b")

    imported("--backend", "ollama", "--location", "linux_wsl")

    entry = entries(registry)["qwen3-8b-ollama-gguf-q4_k_m"]
    assert entry["download"]["location"] == "linux_wsl"


# -- what an entry records ---------------------------------------------------------------------------------


def test_vision_comes_from_a_projector_layer(store, registry):
    write_model(store, "llava", "7b", projector=True)
    write_model(store, "llama3", "8b")

    imported()

    found = entries(registry)
    assert found["llava-7b-ollama-gguf-q4_k_m"]["capabilities"] == {"text": True, "vision": True}
    assert found["llama3-8b-ollama-gguf-q4_k_m"]["capabilities"] == {"text": True}


def test_the_entry_records_the_model_blob_its_manifest_and_the_store_facts(store, registry):
    info = write_model(store, "llava", "7b", projector=True)

    imported()

    entry = entries(registry)["llava-7b-ollama-gguf-q4_k_m"]
    blob = blob_path(store, info.model_digest)
    assert entry["download"]["path"] == str(blob)
    projector = blob_path(store, info.projector_digest)
    assert entry["download"]["size_bytes"] == blob.stat().st_size + projector.stat().st_size
    assert entry["download"]["file_count"] == 2
    assert entry["artifacts"]["files"] == [{"path": blob.name, "size": blob.stat().st_size,
                                            "digest": info.model_digest}]
    assert entry["metadata"]["ollama"] == {"tags": ["llava:7b"], "model_digest": info.model_digest,
                                           "projector_digest": info.projector_digest,
                                           "parameter_size": "8.0B", "family": "llama"}
    assert entry["chat_template"]["source"] == "ollama"


def test_the_recorded_manifest_is_what_verify_computes_from_the_bytes(store, registry):
    write_model(store, "qwen3", "8b")
    imported()

    result = run_cli("verify", "qwen3-8b-ollama-gguf-q4_k_m", prog="imageworks-loader")

    assert result.exit_code == 0, result.stdout + result.stderr


def test_tags_of_one_blob_are_one_entry_with_aliases(store, registry):
    """D19: a digest used by two tags (qwen3:8b and qwen3:latest) is one model, not two entries."""
    first = write_model(store, "qwen3", "8b")
    write_model(store, "qwen3", "latest", model_blob=first.model_digest)

    data = imported()

    assert [r["name"] for r in rows_by(data, "add")] == ["qwen3-8b-ollama-gguf-q4_k_m"]
    entry = entries(registry)["qwen3-8b-ollama-gguf-q4_k_m"]
    assert entry["served_model_id"] == "qwen3:8b" and entry["aliases"] == ["qwen3:latest"]
    selected = json.loads(run_cli("select", "qwen3:latest", "--json").stdout)
    assert selected["name"] == "qwen3-8b-ollama-gguf-q4_k_m"


def test_a_model_layer_listed_twice_is_one_model(store, registry):
    info = write_model(store, "qwen3", "8b")
    manifest = json.loads(info.manifest_path.read_bytes())
    manifest["layers"].append(dict(manifest["layers"][0]))
    info.manifest_path.write_bytes(go_json(manifest))

    assert [r["name"] for r in rows_by(imported(), "add")] == ["qwen3-8b-ollama-gguf-q4_k_m"]


def test_name_collisions_get_a_deterministic_suffix(store, tmp_path, monkeypatch):
    write_model(store, "qwen3", "8b", gguf_file_type=15)
    write_model(store, "qwen3", "8b", namespace="someone", gguf_file_type=17, file_type="Q4_K_M")
    suffix = hashlib.sha256(b"someone/qwen3:8b").hexdigest()[:8]
    names = []
    for run in range(2):  # two fresh registries: the same names every time
        monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(tmp_path / f"registry{run}"))
        names.append(sorted((r["name"], r["served_model_id"]) for r in rows_by(imported(), "add")))

    assert names[0] == names[1] == [("qwen3-8b-ollama-gguf-q4_k_m", "qwen3:8b"),
                                    (f"qwen3-8b-ollama-gguf-q4_k_m-{suffix}", "someone/qwen3:8b")]


def test_a_name_taken_by_a_hand_curated_entry_gets_the_suffix(store, registry):
    registry.mkdir()
    (registry / "model_registry.curated.json").write_text(json.dumps(
        {"schema_version": 1, "entries": [{"name": "qwen3-8b-ollama-gguf-q4_k_m", "backend": "vllm"}]}))
    write_model(store, "qwen3", "8b")

    [row] = rows_by(imported(), "add")

    assert row["name"] == "qwen3-8b-ollama-gguf-q4_k_m-" + hashlib.sha256(b"qwen3:8b").hexdigest()[:8]


# -- writes: dry run, unchanged, backups --------------------------------------------------------------------


def test_dry_run_writes_nothing(store, registry):
    write_model(store, "qwen3", "8b")
    before = snapshot(store)

    result = dl("import-ollama", "--dry-run")

    assert result.exit_code == 0, result.stderr
    assert "would add" in result.stdout and "qwen3-8b-ollama-gguf-q4_k_m" in result.stdout
    assert "dry run, nothing was written" in result.stderr
    assert not registry.exists() or snapshot(registry) == {}
    assert snapshot(store) == before


def test_a_dry_run_after_an_import_leaves_the_registry_byte_identical(store, registry):
    write_model(store, "qwen3", "8b")
    imported()
    write_model(store, "llama3", "8b")
    before = snapshot(registry)

    data = imported("--dry-run")

    assert [r["name"] for r in rows_by(data, "add")] == ["llama3-8b-ollama-gguf-q4_k_m"]
    assert snapshot(registry) == before


def test_reimport_of_an_unchanged_store_writes_nothing(store, registry):
    write_model(store, "qwen3", "8b")
    imported()
    before = snapshot(registry)

    data = imported()

    assert data["counts"] == {"unchanged": 1} and data["written"] == 0
    assert snapshot(registry) == before  # not even a backup


def test_a_backup_is_taken_before_an_import_changes_the_registry(store, registry):
    write_model(store, "qwen3", "8b")
    imported()
    first = (registry / "model_registry.discovered.json").read_bytes()
    write_model(store, "llama3", "8b")

    data = imported()

    [backup] = data["backup"]
    assert ".import-ollama." in Path(backup).name
    assert Path(backup).read_bytes() == first


def test_the_script_of_the_runbook_is_the_same_command(store, registry):
    write_model(store, "qwen3", "8b")
    env = dict(os.environ)

    dry = subprocess.run([sys.executable, str(REPO / "scripts" / "import_ollama_models.py"), "--dry-run"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "would add" in dry.stdout and not (registry / "model_registry.discovered.json").exists()

    real = subprocess.run([sys.executable, str(REPO / "scripts" / "import_ollama_models.py"), "--backend", "ollama",
                           "--location", "linux_wsl", "--deprecate-placeholders"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert real.returncode == 0, real.stderr
    assert entries(registry)["qwen3-8b-ollama-gguf-q4_k_m"]["download"]["location"] == "linux_wsl"


def test_discover_all_includes_the_ollama_store(store, registry, monkeypatch):
    info = write_model(store, "qwen3", "8b")
    registry.mkdir()
    import imageworks_models.integrity.hashing as hashing

    monkeypatch.setattr(hashing, "hash_many", lambda *a, **k: pytest.fail("a store blob was hashed"))

    result = run_cli("discover-all", "--json", prog="imageworks-loader")

    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert [(r["action"], r["name"], r["provider"], r["served_model_id"]) for r in rows] == [
        ("add", "qwen3-8b-ollama-gguf-q4_k_m", "ollama", "qwen3:8b")]
    entry = entries(registry)["qwen3-8b-ollama-gguf-q4_k_m"]
    assert [f["digest"] for f in entry["artifacts"]["files"]] == [info.model_digest]  # named digest, not hashed


def test_no_store_is_one_clear_error(imageworks_isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(tmp_path / "registry"))

    result = dl("import-ollama")

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: no Ollama store found (looked in {tmp_path / 'nowhere'})")
    assert "hint: set OLLAMA_MODELS" in result.stderr
    assert "Traceback" not in result.stderr


# -- reconciliation -----------------------------------------------------------------------------------------


def test_a_requant_of_a_tag_replaces_its_entry_without_a_lingering_duplicate(store, registry):
    write_model(store, "qwen3", "8b")
    imported()
    write_model(store, "qwen3", "8b", file_type="Q8_0", gguf_file_type=7)  # `ollama pull` brought new weights

    data = imported()

    assert [(r["action"], r["name"]) for r in data["rows"]] == [
        ("remove", "qwen3-8b-ollama-gguf-q4_k_m"), ("add", "qwen3-8b-ollama-gguf-q8_0")]
    assert list(entries(registry)) == ["qwen3-8b-ollama-gguf-q8_0"]


def test_a_requant_of_a_locked_entry_keeps_it_so_verify_shows_the_drift(store, registry):
    write_model(store, "qwen3", "8b")
    imported()
    assert run_cli("lock", "qwen3-8b-ollama-gguf-q4_k_m", "--set-expected", prog="imageworks-loader").exit_code == 0
    write_model(store, "qwen3", "8b", file_type="Q8_0", gguf_file_type=7)

    data = imported()

    [row] = data["rows"]
    assert (row["action"], row["name"]) == ("update", "qwen3-8b-ollama-gguf-q4_k_m")
    assert "kept it" in row["reason"]  # the recorded manifest is not written over
    verify = run_cli("verify", "qwen3-8b-ollama-gguf-q4_k_m", prog="imageworks-loader")
    assert verify.exit_code == 2


def test_a_renamed_tag_keeps_its_entry_with_the_new_served_id(store, registry):
    old = write_model(store, "qwen3", "8b")
    imported()
    write_model(store, "myqwen", "latest", model_blob=old.model_digest)  # ollama cp qwen3:8b myqwen
    old.manifest_path.unlink()  # ollama rm qwen3:8b

    data = imported()

    assert [(r["action"], r["name"]) for r in data["rows"]] == [("update", "qwen3-8b-ollama-gguf-q4_k_m")]
    entry = entries(registry)["qwen3-8b-ollama-gguf-q4_k_m"]
    assert entry["served_model_id"] == "myqwen:latest" and entry.get("aliases", []) == []


def test_a_tag_gone_from_the_store_is_stale_and_removed_only_when_asked(store, registry):
    gone = write_model(store, "qwen3", "8b")
    write_model(store, "llama3", "8b")
    imported()
    gone.manifest_path.unlink()

    data = imported()
    assert [(r["action"], r["name"]) for r in rows_by(data, "stale")] == [("stale", "qwen3-8b-ollama-gguf-q4_k_m")]
    assert "--prune-stale" in rows_by(data, "stale")[0]["reason"]
    assert "qwen3-8b-ollama-gguf-q4_k_m" in entries(registry)

    data = imported("--prune-stale")
    assert [r["name"] for r in rows_by(data, "remove")] == ["qwen3-8b-ollama-gguf-q4_k_m"]
    assert list(entries(registry)) == ["llama3-8b-ollama-gguf-q4_k_m"]


def test_rebuild_ollama_drops_entries_of_gone_tags(store, registry):
    gone = write_model(store, "qwen3", "8b")
    imported()
    gone.manifest_path.unlink()

    result = run_cli("rebuild-ollama", "--location", "linux_wsl", prog="imageworks-loader")

    assert result.exit_code == 0, result.stderr
    assert entries(registry) == {}


def test_a_tag_the_server_still_lists_is_not_stale(store, registry, tmp_path, monkeypatch):
    """Stale means gone from the store and, when the server answers, from /api/tags too."""
    write_model(store, "qwen3", "8b")
    imported()
    other = tmp_path / "server-store"
    write_model(other, "qwen3", "8b")
    (store / "manifests" / "registry.ollama.ai" / "library" / "qwen3" / "8b").unlink()

    with StandInOllama(other) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.host)
        data = imported("--prune-stale")

    assert data["checked_server"] is True
    assert rows_by(data, "stale") == [] and rows_by(data, "remove") == []
    assert "qwen3-8b-ollama-gguf-q4_k_m" in entries(registry)


def test_with_the_server_down_the_store_alone_decides(store, registry):
    gone = write_model(store, "qwen3", "8b")
    imported()
    gone.manifest_path.unlink()

    data = imported()  # OLLAMA_HOST points where nothing listens

    assert data["checked_server"] is False
    assert [r["name"] for r in rows_by(data, "stale")] == ["qwen3-8b-ollama-gguf-q4_k_m"]


def test_placeholders_of_imported_tags_are_reported_and_deprecated_on_request(store, registry):
    """The earlier tool's entries (no files, an ollama:/ reference) for a tag now imported by strategy A."""
    registry.mkdir()
    (registry / "model_registry.curated.json").write_text(json.dumps({"schema_version": 1, "entries": [
        {"name": "gemma3_27.0b_(Q3_K_M)", "backend": "ollama", "served_model_id": "gemma3:27b",
         "backend_config": {"model_path": "ollama:/gemma3:27b"}, "flags": {"deprecated": False}},
        {"name": "keep-me", "backend": "vllm"}]}))
    write_model(store, "gemma3", "27b", file_type="Q3_K_M", gguf_file_type=12)

    data = imported()
    assert [(r["action"], r["name"]) for r in rows_by(data, "duplicate")] == [("duplicate", "gemma3_27.0b_(Q3_K_M)")]
    curated = json.loads((registry / "model_registry.curated.json").read_text())
    assert curated["entries"][0]["flags"] == {"deprecated": False}

    data = imported("--deprecate-placeholders")
    assert [(r["action"], r["name"]) for r in data["rows"]] == [
        ("unchanged", "gemma3-27b-ollama-gguf-q3_k_m"), ("deprecate", "gemma3_27.0b_(Q3_K_M)")]
    curated = {e["name"]: e for e in json.loads((registry / "model_registry.curated.json").read_text())["entries"]}
    assert curated["gemma3_27.0b_(Q3_K_M)"]["flags"] == {"deprecated": True}
    assert curated["keep-me"] == {"name": "keep-me", "backend": "vllm"}
    assert any(".curated." in Path(b).name for b in data["backup"])
    assert rows_by(imported("--deprecate-placeholders"), "deprecate") == []  # once is enough


def test_the_legacy_registry_files_import_cleanly(store, registry, legacy_files):
    """The earlier tool's real files: its Ollama entries' tags are pulled, the import adds strategy A
    entries and reports the old ones as placeholders, and nothing else changes."""
    legacy_files(registry)
    write_model(store, "gemma-3-27b-it-abliterated-GGUF", "q3_k_m", namespace="aqualaguna", file_type="Q3_K_M",
                gguf_file_type=12)
    write_model(store, "llama3.1-local", "latest", file_type="Q5_K_M", gguf_file_type=17)

    data = imported()

    names = [r["name"] for r in rows_by(data, "add")]
    assert names == ["gemma-3-27b-it-abliterated-ollama-gguf-q3_k_m", "llama3.1-local-ollama-gguf-q5_k_m"]
    dup = {r["name"] for r in rows_by(data, "duplicate")}
    assert {"gemma3_27.0b_(Q3_K_M)", "aqualaguna-gemma-3-27b-it-abliterated_(Q3_K_M)",
            "llama3.1-local-latest_(Q5_K_M)"} <= dup
    assert rows_by(data, "error") == [] and rows_by(data, "conflict") == []


# -- broken and hostile stores --------------------------------------------------------------------------------


def test_a_truncated_manifest_skips_that_model_only(store, registry):
    """D18."""
    good = write_model(store, "qwen3", "8b")
    bad = write_model(store, "llama3", "8b")
    bad.manifest_path.write_bytes(bad.manifest_path.read_bytes()[:57])

    result = dl("import-ollama")

    assert result.exit_code == 0, result.stderr
    assert "qwen3-8b-ollama-gguf-q4_k_m" in entries(store.parent / "registry")
    skip = [line for line in result.stdout.splitlines() if line.startswith("skip")]
    assert len(skip) == 1 and "llama3:8b" in skip[0] and "truncated" in skip[0]
    assert good.served_id != bad.served_id


@pytest.mark.parametrize("content", [b"", b"\x00\x01binary", b"[]", b'{"layers": "nope"}', b'{"layers": [42]}',
                                     b'{"layers": [{"mediaType": "application/vnd.ollama.image.model"}]}',
                                     b'{"layers": [], "layers": []}', b"\xef\xbb\xbf{}", b"{" * 100_000])
def test_malformed_manifests_are_one_skip_row_each(store, registry, content):
    write_model(store, "qwen3", "8b")
    path = store / "manifests" / "registry.ollama.ai" / "library" / "bad" / "1b"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    data = imported()

    assert [(r["action"], r["served_model_id"]) for r in data["rows"]] == [("skip", "bad:1b"),
                                                                          ("add", "qwen3:8b")]


HOSTILE_DIGESTS = ["sha256:../../../etc/passwd", "sha256-" + HEX[:63], "sha256:" + HEX + "0", "md5:" + HEX[:32],
                   "sha256:" + HEX + "\u0000", "sha256:" + HEX + "/../../x", "/etc/passwd", "", None, 7,
                   "sha256:" + HEX.replace("a", "\u0430"), "sha256:" + "..%2f" * 16]


@pytest.mark.parametrize("digest", HOSTILE_DIGESTS, ids=range(len(HOSTILE_DIGESTS)))
@pytest.mark.parametrize("where", ["model", "config", "template"])
def test_hostile_digests_in_a_manifest_never_leave_blobs(store, registry, digest, where, monkeypatch):
    """S1: the digest is refused before a path is built from it; nothing outside blobs/ is opened."""
    info = write_model(store, "evil", "1b")
    manifest = json.loads(info.manifest_path.read_bytes())
    if where == "config":
        manifest["config"]["digest"] = digest
    else:
        layer = next(x for x in manifest["layers"] if x["mediaType"].endswith(where))
        layer["digest"] = digest
    info.manifest_path.write_bytes(json.dumps(manifest).encode())
    opened: list[str] = []
    real_open = os.open

    def spy(path, *args, **kwargs):
        opened.append(os.path.realpath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)

    data = imported("--dry-run")

    [row] = data["rows"]
    assert row["action"] == "skip" and "refusing" in row["reason"]
    inside = (os.path.realpath(store / "manifests"), os.path.realpath(store / "blobs"))
    assert all(p.startswith(inside) for p in opened if p.startswith(os.path.realpath(store)) or "/etc/" in p)
    assert not any(p.startswith("/etc") for p in opened)


def test_a_blob_linked_to_a_file_outside_the_store_is_not_read(store, registry, tmp_path):
    """S6: a model blob that is a symlink (here to a FIFO: reading it would hang) is refused unread."""
    info = write_model(store, "evil", "1b")
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    blob = blob_path(store, info.model_digest)
    blob.unlink()
    blob.symlink_to(fifo)

    data = imported()

    [row] = data["rows"]
    assert row["action"] == "skip" and "outside" in row["reason"]


def test_a_blob_linked_inside_blobs_is_still_not_followed(store, registry):
    info = write_model(store, "evil", "1b")
    blob = blob_path(store, info.model_digest)
    other = blob.parent / ("sha256-" + HEX)
    blob.rename(other)
    blob.symlink_to(other.name)

    [row] = imported()["rows"]

    assert row["action"] == "skip" and "symbolic link" in row["reason"]


def test_a_manifest_that_is_a_symlink_is_not_followed(store, registry, tmp_path):
    info = write_model(store, "qwen3", "8b")
    target = tmp_path / "elsewhere.json"
    target.write_bytes(info.manifest_path.read_bytes())
    info.manifest_path.unlink()
    info.manifest_path.symlink_to(target)

    [row] = imported()["rows"]

    assert row["action"] == "skip" and "symbolic link" in row["reason"]


def test_partial_blobs_are_ignored_and_an_unfinished_pull_is_skipped(store, registry):
    """D17: `ollama pull` writes sha256-<hex>-partial(-N) files; they are never a model."""
    info = write_model(store, "qwen3", "8b")
    done = write_model(store, "llama3", "8b")
    blob = blob_path(store, info.model_digest)
    blob.rename(blob.with_name(blob.name + "-partial"))
    (store / "blobs" / f"sha256-{HEX}-partial-0").write_bytes(b"GGUF....")

    data = imported()

    assert [(r["action"], r["served_model_id"]) for r in data["rows"]] == [("add", done.served_id),
                                                                          ("skip", "qwen3:8b")]
    assert "the pull did not finish" in rows_by(data, "skip")[0]["reason"]


def test_a_blob_of_the_wrong_size_is_skipped(store, registry):
    info = write_model(store, "qwen3", "8b")
    with open(blob_path(store, info.model_digest), "ab") as f:
        f.write(b"x")

    [row] = imported()["rows"]

    assert row["action"] == "skip" and "the manifest says" in row["reason"]


def test_a_cloud_model_has_no_weights_to_import(store, registry):
    info = write_model(store, "gpt-oss", "120b-cloud")
    manifest = json.loads(info.manifest_path.read_bytes())
    manifest["layers"] = [x for x in manifest["layers"] if not x["mediaType"].endswith("model")]
    config = dict(info.config, remote_host="https://ollama.com:443", remote_model="gpt-oss:120b")
    data = go_json(config)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob_path(store, digest).write_bytes(data)
    manifest["config"].update(digest=digest, size=len(data))
    info.manifest_path.write_bytes(go_json(manifest))

    [row] = imported()["rows"]

    assert row["action"] == "skip" and "cloud model" in row["reason"]


def test_corrupt_blob_is_caught_by_verify_blobs_and_by_verify(store, registry):
    """D16: a same-size corruption is invisible to sizes; --verify-blobs hashes the blobs first, and an entry
    imported without it is caught by `verify` (its manifest comes from the digests the blobs are named by)."""
    info = write_model(store, "qwen3", "8b")
    blob = blob_path(store, info.model_digest)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))

    checked = dl("import-ollama", "--verify-blobs", "--json")
    assert checked.exit_code == 1
    [row] = json.loads(checked.stdout)["rows"]
    assert row["action"] == "error" and "corrupt" in row["reason"] and "ollama pull qwen3:8b" in row["reason"]
    assert entries(registry) == {}

    imported()
    verify = run_cli("verify", "qwen3-8b-ollama-gguf-q4_k_m", prog="imageworks-loader")
    assert verify.exit_code == 2


def test_verify_blobs_passes_an_intact_store(store, registry):
    write_model(store, "llava", "7b", projector=True)

    data = imported("--verify-blobs")

    assert [r["action"] for r in data["rows"]] == ["add"]


def test_a_registry_file_linked_into_the_blob_store_is_never_written_through(store, registry):
    """D22: a registry file that is a link into a content-addressed blob store is not written through (that
    would corrupt the blob for every model sharing it): one clear error, the blob and the link as they were."""
    write_model(store, "qwen3", "8b")
    registry.mkdir()
    document = b'{\n  "schema_version": 1,\n  "entries": []\n}\n'
    shared = store / "blobs" / f"sha256-{hashlib.sha256(document).hexdigest()}"
    shared.write_bytes(document)
    (registry / "model_registry.discovered.json").symlink_to(shared)

    result = dl("import-ollama")

    assert result.exit_code == 1
    assert "is a link into a shared blob store" in result.stderr and "hint: replace the link" in result.stderr
    assert shared.read_bytes() == document
    assert (registry / "model_registry.discovered.json").is_symlink()


def test_reading_commands_never_import_the_ollama_client(store, registry):
    """The ollama client (with pydantic and httpx) costs ~0.6 s to import: only server commands pay it."""
    write_model(store, "qwen3", "8b")
    imported()
    code = ("import sys; from imageworks_models.cli import make_cli\n"
            "for args in (['list'], ['select', 'qwen3:8b'], ['import-ollama', '--dry-run']):\n"
            "    make_cli('imageworks-models').main(args, standalone_mode=False)\n"
            "print('LOADED' if 'ollama' in sys.modules else 'NOT LOADED')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                          timeout=60)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("NOT LOADED")
