"""Registry maintenance around the Ollama store: reset-discovered, restore-ollama (backup and restore round
trips), backup rotation, and backfill-ollama-paths on the earlier tool's real registry files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ollamastore import blob_path, write_model

from imageworks_models.registry.fields import DYNAMIC_FIELDS
from imageworks_models.registry.store import RegistryStore
from imageworks_models.testing import run_cli

pytestmark = pytest.mark.usefixtures("imageworks_isolated")

CURATED = "model_registry.curated.json"
DISCOVERED = "model_registry.discovered.json"
MERGED = "model_registry.json"
STAMP = r"\d{8}T\d{12}Z"  # storage.backup_file: %Y%m%dT%H%M%S%fZ

VLLM_DISCOVERED = {"name": "llama-3-8b-vllm-awq", "backend": "vllm", "served_model_id": "meta-llama/Llama-3-8B",
                   "format": "awq", "download": {"path": "/weights/llama-3-8b-awq", "location": "local",
                                                 "size_bytes": 1234, "file_count": 2}}
VLLM_CURATED = {"name": "qwen2.5-vl-7b-vllm", "backend": "vllm", "display_name": "Qwen VL (vLLM)",
                "generation_defaults": {"temperature": 0.2}}


def dl(*args: str):
    return run_cli(*args, prog="imageworks-download")


def ok(*args: str) -> dict:
    """Run an imageworks-download command with --json; it must succeed. Returns the parsed report."""
    result = dl(*args, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def rows_by(data: dict, action: str) -> list[dict]:
    return [r for r in data["rows"] if r["action"] == action]


def layer(registry: Path, filename: str = DISCOVERED) -> dict[str, dict]:
    path = registry / filename
    return {e["name"]: e for e in json.loads(path.read_text())["entries"]} if path.exists() else {}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (backups included) by relative path; the lock file is left out."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and not p.name.startswith(".")}


def backups(registry: Path, kind: str = "discovered") -> list[Path]:
    folder = registry / "backups"
    return sorted(folder.glob(f"model_registry.{kind}.*.json")) if folder.is_dir() else []


def put(registry: Path, which: str, *entries: dict) -> None:
    """Write ``entries`` into one layer by hand (no backup), as a user's editor or another tool would."""
    with RegistryStore(registry).edit() as layers:
        for entry in entries:
            getattr(layers, which).put(json.loads(json.dumps(entry)))


def drop(registry: Path, which: str, *names: str) -> None:
    with RegistryStore(registry).edit() as layers:
        for name in names:
            assert getattr(layers, which).remove(name) is not None


def names_in(backup: str | Path) -> list[str]:
    return [e["name"] for e in json.loads(Path(backup).read_text())["entries"]]


def as_json(entry: dict) -> str:
    """An entry as its JSON text, key order kept: equal only if the entry is the same byte for byte."""
    return json.dumps(entry, ensure_ascii=False)


@pytest.fixture
def registry(store, tmp_path) -> Path:
    return tmp_path / "registry"


QWEN = "qwen3-8b-ollama-gguf-q4_k_m"
LLAMA = "llama3-8b-ollama-gguf-q4_k_m"
PHI = "phi-ollama-gguf-q4_k_m"
MISTRAL = "mistral-7b-ollama-gguf-q4_k_m"


# -- reset-discovered -------------------------------------------------------------------------------------


@pytest.fixture
def mixed(store, registry) -> Path:
    """Two imported Ollama entries (one with a hand-curated part), a vLLM entry in each layer."""
    write_model(store, "qwen3", "8b")
    write_model(store, "llama3", "8b")
    ok("import-ollama")
    put(registry, "discovered", VLLM_DISCOVERED)
    put(registry, "curated", VLLM_CURATED,
        {"name": QWEN, "backend": "ollama", "display_name": "My Qwen 3", "generation_defaults": {"top_k": 20}})
    assert set(layer(registry)) == {QWEN, LLAMA, VLLM_DISCOVERED["name"]}
    return registry


def test_reset_dry_run_lists_the_entries_and_writes_nothing(mixed):
    before = snapshot(mixed)

    data = ok("reset-discovered", "--backend", "ollama", "--dry-run")
    text = dl("reset-discovered", "--backend", "ollama", "--dry-run")

    assert data["dry_run"] is True and data["written"] == 0 and data["backup"] == []
    assert [(r["action"], r["name"]) for r in data["rows"]] == [("remove", LLAMA), ("remove", QWEN)]
    assert rows_by(data, "remove")[1]["reason"] == "curated part kept"
    assert text.exit_code == 0, text.stderr
    assert "would remove" in text.stdout and LLAMA in text.stdout and VLLM_DISCOVERED["name"] not in text.stdout
    assert "dry run, nothing was written" in text.stderr
    assert snapshot(mixed) == before


def test_reset_removes_discovered_ollama_entries_and_keeps_the_rest(mixed):
    discovered_before = (mixed / DISCOVERED).read_bytes()
    curated_before = (mixed / CURATED).read_bytes()
    vllm_before = as_json(layer(mixed)[VLLM_DISCOVERED["name"]])

    data = ok("reset-discovered", "--backend", "ollama")

    assert data["dry_run"] is False and data["written"] == 2
    assert data["counts"] == {"remove": 2}
    after = layer(mixed)
    assert list(after) == [VLLM_DISCOVERED["name"]]  # the Ollama entries' discovered parts are gone
    assert as_json(after[VLLM_DISCOVERED["name"]]) == vllm_before
    assert (mixed / CURATED).read_bytes() == curated_before  # curated vLLM entry and curated Ollama part untouched
    effective = RegistryStore(mixed).load(use_snapshot=False)
    kept = effective.get(QWEN)
    assert kept["display_name"] == "My Qwen 3" and kept["generation_defaults"] == {"top_k": 20}
    assert kept["backend"] == "ollama" and not kept.get("download") and not kept.get("artifacts")
    assert effective.find(LLAMA) is None
    assert effective.get(VLLM_CURATED["name"])["display_name"] == VLLM_CURATED["display_name"]
    [backup] = data["backup"]
    assert re.fullmatch(rf"model_registry\.discovered\.{STAMP}\.reset-ollama\.json", Path(backup).name)
    assert Path(backup).parent == mixed / "backups"
    assert Path(backup).read_bytes() == discovered_before


def test_reset_leaves_an_entry_whose_curated_part_has_no_backend(store, registry):
    write_model(store, "qwen3", "8b")
    ok("import-ollama")
    put(registry, "curated", {"name": QWEN, "display_name": "backend comes from discovery"})
    before = snapshot(registry)

    data = ok("reset-discovered", "--backend", "ollama")

    [row] = data["rows"]
    assert (row["action"], row["name"]) == ("skip", QWEN) and "no backend" in row["reason"]
    assert data["written"] == 0 and data["backup"] == [] and QWEN in layer(registry)
    assert snapshot(registry) == before  # nothing changed: nothing written, no backup


# -- restore-ollama -----------------------------------------------------------------------------------------


def test_reset_then_restore_is_byte_identical(store, registry):
    write_model(store, "qwen3", "8b")
    write_model(store, "llava", "7b", projector=True)
    ok("import-ollama")
    before = (registry / DISCOVERED).read_bytes()
    [backup] = ok("reset-discovered", "--backend", "ollama")["backup"]
    assert layer(registry) == {}

    data = ok("restore-ollama", "--backup", backup)

    assert data["counts"] == {"add": 2} and data["written"] == 2
    assert (registry / DISCOVERED).read_bytes() == before


@pytest.fixture
def four_ways(store, registry) -> tuple[Path, str]:
    """A discovered backup holding qwen3, llama3 and phi; now qwen3 is as it was, llama3 was edited, phi
    removed and mistral imported. Returns (registry, backup)."""
    for name in ("qwen3", "llama3", "phi"):
        write_model(store, name, "8b" if name != "phi" else "latest")
    ok("import-ollama")
    write_model(store, "mistral", "7b")
    [backup] = ok("import-ollama")["backup"]
    assert set(names_in(backup)) == {QWEN, LLAMA, PHI}
    edited = layer(registry)[LLAMA]
    edited["download"]["location"] = "moved-by-hand"  # same keys, same order: only a value differs
    put(registry, "discovered", edited)
    drop(registry, "discovered", PHI)
    return registry, backup


def test_restore_dry_run_shows_every_kind_of_row_and_writes_nothing(four_ways):
    registry, backup = four_ways
    before = snapshot(registry)

    data = ok("restore-ollama", "--backup", backup, "--dry-run")
    text = dl("restore-ollama", "--backup", backup, "--dry-run")

    assert sorted((r["action"], r["name"]) for r in data["rows"]) == [
        ("add", PHI), ("remove", MISTRAL), ("unchanged", QWEN), ("update", LLAMA)]
    assert all(r["reason"] == "discovered layer" for r in data["rows"])
    assert data["dry_run"] is True and data["backup"] == [] and data["written"] == 0
    assert text.exit_code == 0, text.stderr
    assert "would add" in text.stdout and "would update" in text.stdout and "would remove" in text.stdout
    assert snapshot(registry) == before  # no layer written, no backup taken


def test_restore_applies_the_rows_and_can_itself_be_undone(four_ways):
    registry, backup = four_ways
    current = (registry / DISCOVERED).read_bytes()
    wanted = {e["name"]: e for e in json.loads(Path(backup).read_text())["entries"]}
    assert list(wanted) == [LLAMA, PHI, QWEN]

    data = ok("restore-ollama", "--backup", backup)

    assert data["written"] == 3 and data["counts"] == {"add": 1, "remove": 1, "unchanged": 1, "update": 1}
    assert layer(registry) == wanted
    [own] = data["backup"]
    assert re.fullmatch(rf"model_registry\.discovered\.{STAMP}\.restore\.json", Path(own).name)
    assert Path(own).read_bytes() == current  # the state the restore replaced

    undo = ok("restore-ollama", "--backup", own)

    assert undo["written"] == 3 and len(undo["backup"]) == 1 and undo["backup"] != data["backup"]
    assert (registry / DISCOVERED).read_bytes() == current


def test_reset_then_restore_of_backfilled_legacy_entries_is_byte_identical(legacy, registry):
    ok("backfill-ollama-paths")
    before = (registry / DISCOVERED).read_bytes()
    [backup] = ok("reset-discovered", "--backend", "ollama")["backup"]
    assert Path(backup).read_bytes() == before

    data = ok("restore-ollama", "--backup", backup)

    assert data["counts"] == {"add": len(legacy["update"]) + len(legacy["skip"])}
    assert json.loads((registry / DISCOVERED).read_bytes()) == json.loads(before)  # same content: passes
    assert (registry / DISCOVERED).read_bytes() == before  # same bytes: fails, the key order differs


def test_restore_touches_only_ollama_entries(four_ways):
    registry, backup = four_ways
    put(registry, "discovered", VLLM_DISCOVERED)  # added after the backup was taken
    vllm = as_json(layer(registry)[VLLM_DISCOVERED["name"]])

    data = ok("restore-ollama", "--backup", backup)

    assert VLLM_DISCOVERED["name"] not in {r["name"] for r in data["rows"]}
    assert as_json(layer(registry)[VLLM_DISCOVERED["name"]]) == vllm
    assert set(layer(registry)) == {QWEN, LLAMA, PHI, VLLM_DISCOVERED["name"]}


def test_a_vllm_entry_of_the_backup_is_not_brought_back(store, registry):
    write_model(store, "qwen3", "8b")
    ok("import-ollama")
    put(registry, "discovered", VLLM_DISCOVERED)
    [backup] = ok("reset-discovered", "--backend", "ollama")["backup"]
    assert names_in(backup) == [VLLM_DISCOVERED["name"], QWEN]
    drop(registry, "discovered", VLLM_DISCOVERED["name"])

    data = ok("restore-ollama", "--backup", backup)

    assert [(r["action"], r["name"]) for r in data["rows"]] == [("add", QWEN)]
    assert list(layer(registry)) == [QWEN]


def test_a_curated_backup_restores_into_the_curated_layer(store, registry):
    placeholder = {"name": "gemma3_27.0b_(Q3_K_M)", "backend": "ollama", "served_model_id": "gemma3:27b",
                   "backend_config": {"model_path": "ollama:/gemma3:27b"}, "flags": {"deprecated": False}}
    put(registry, "curated", placeholder, VLLM_CURATED)
    curated_before = (registry / CURATED).read_bytes()
    write_model(store, "gemma3", "27b", file_type="Q3_K_M", gguf_file_type=12)
    ok("import-ollama")
    data = ok("import-ollama", "--deprecate-placeholders")
    [backup] = [b for b in data["backup"] if ".curated." in Path(b).name]
    assert layer(registry, CURATED)[placeholder["name"]]["flags"] == {"deprecated": True}
    discovered = (registry / DISCOVERED).read_bytes()

    restored = ok("restore-ollama", "--backup", backup)

    assert [(r["action"], r["name"], r["reason"]) for r in restored["rows"]] == [
        ("update", placeholder["name"], "curated layer")]
    assert (registry / CURATED).read_bytes() == curated_before
    assert (registry / DISCOVERED).read_bytes() == discovered
    [own] = restored["backup"]
    assert re.fullmatch(rf"model_registry\.curated\.{STAMP}\.restore\.json", Path(own).name)


def test_restore_of_a_missing_backup_is_a_usage_error(store, registry, tmp_path):
    write_model(store, "qwen3", "8b")
    ok("import-ollama")
    before = snapshot(registry)

    result = dl("restore-ollama", "--backup", str(tmp_path / "no-such-backup.json"))

    assert result.exit_code == 64  # a usage error: the --backup file does not exist
    assert "does not exist" in result.stderr and "no-such-backup.json" in result.stderr
    assert snapshot(registry) == before


def test_restore_of_a_corrupt_backup_is_one_error_and_changes_nothing(store, registry, tmp_path):
    write_model(store, "qwen3", "8b")
    ok("import-ollama")
    [backup] = ok("reset-discovered", "--backend", "ollama")["backup"]
    cut = tmp_path / Path(backup).name
    data = Path(backup).read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # truncated JSON
    before = snapshot(registry)

    result = dl("restore-ollama", "--backup", str(cut))

    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(cut) in errors[0]
    assert "Traceback" not in result.stderr
    assert snapshot(registry) == before


# -- backup rotation ----------------------------------------------------------------------------------------


def test_backups_are_rotated_to_the_newest_backup_keep(store, registry, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_BACKUP_KEEP", "2")
    write_model(store, "qwen3", "8b")
    ok("import-ollama")  # creates the discovered file: nothing to back up yet
    taken, previous = [], []
    for name, tag in (("llama3", "8b"), ("phi", "latest"), ("mistral", "7b")):
        write_model(store, name, tag)
        previous.append((registry / DISCOVERED).read_bytes())
        [backup] = ok("import-ollama")["backup"]
        taken.append(Path(backup))

    assert len(set(taken)) == 3
    assert backups(registry) == taken[1:]
    assert not taken[0].exists()
    assert [b.read_bytes() for b in taken[1:]] == previous[1:]


# -- backfill-ollama-paths on the earlier tool's files ---------------------------------------------------------

TAGS = {"aqualaguna/gemma-3-27b-it-abliterated-GGUF:q3_k_m", "llama3.1-local:latest"}


def legacy_ollama_entries(registry: Path) -> dict[str, set[str]]:
    """Every Ollama entry of the legacy files and the tags it names (served id, ollama:/ references)."""
    tags: dict[str, set[str]] = {}
    for filename in (CURATED, DISCOVERED):
        for e in json.loads((registry / filename).read_text()):
            if e.get("backend") != "ollama" and e.get("source_provider") != "ollama":
                continue
            refs = [e.get("served_model_id"), (e.get("backend_config") or {}).get("model_path"), e.get("download_path")]
            tags.setdefault(e["name"], set()).update(
                r.removeprefix("ollama:").lstrip("/") for r in refs if isinstance(r, str) and r and r != "None")
    return tags


@pytest.fixture
def legacy(store, registry, legacy_files) -> dict:
    legacy_files(registry)
    models = {
        "aqualaguna/gemma-3-27b-it-abliterated-GGUF:q3_k_m": write_model(
            store, "gemma-3-27b-it-abliterated-GGUF", "q3_k_m", namespace="aqualaguna", file_type="Q3_K_M",
            gguf_file_type=12),
        "llama3.1-local:latest": write_model(store, "llama3.1-local", "latest", file_type="Q5_K_M",
                                             gguf_file_type=17),
    }
    assert {m.served_id for m in models.values()} == TAGS
    entries = legacy_ollama_entries(registry)
    update = {n: next(iter(t & TAGS)) for n, t in entries.items() if t & TAGS}
    skip = {n for n, t in entries.items() if not t & TAGS}
    assert set(update) == {"aqualaguna-gemma-3-27b-it-abliterated_(Q3_K_M)", "gemma3_27.0b_(Q3_K_M)",
                           "llama3.1-local-latest_(Q5_K_M)", "llama_8.0b_(Q5_K_M)"}
    assert len(skip) == 5
    return {"models": models, "update": update, "skip": skip}


def test_backfill_dry_run_shows_updates_and_skips_and_writes_nothing(legacy, registry, store):
    before = snapshot(registry)

    data = ok("backfill-ollama-paths", "--dry-run")
    text = dl("backfill-ollama-paths", "--dry-run")

    assert {r["name"] for r in rows_by(data, "update")} == set(legacy["update"])
    assert {r["name"] for r in rows_by(data, "skip")} == legacy["skip"]
    assert len(data["rows"]) == len(legacy["update"]) + len(legacy["skip"])
    assert all("not in the store" in r["reason"] for r in rows_by(data, "skip"))
    for r in rows_by(data, "update"):
        assert r["path"] == str(blob_path(store, legacy["models"][legacy["update"][r["name"]]].model_digest))
    assert data["dry_run"] is True and data["backup"] == []
    assert text.exit_code == 0 and "would update" in text.stdout
    assert snapshot(registry) == before


def test_backfill_records_the_blob_and_verify_passes(legacy, registry, store, legacy_files, tmp_path):
    pristine = legacy_files(tmp_path / "pristine")
    original = {f: (pristine / f).read_bytes() for f in (CURATED, DISCOVERED, MERGED)}
    raw_curated = {e["name"]: e for e in json.loads(original[CURATED])}
    parsed_before = RegistryStore(pristine).load_layers().curated.entries  # migrated in memory, never written

    data = ok("backfill-ollama-paths")

    assert data["written"] == len(legacy["update"])
    discovered = layer(registry)
    for name, tag in legacy["update"].items():
        info = legacy["models"][tag]
        blob = blob_path(store, info.model_digest)
        entry = discovered[name]
        assert entry["download"]["path"] == str(blob)
        assert entry["download"]["size_bytes"] == blob.stat().st_size
        assert entry["download"]["file_count"] == 1
        assert [(f["path"], f["size"], f["digest"]) for f in entry["artifacts"]["files"]] == [
            (blob.name, blob.stat().st_size, info.model_digest)]
        verify = run_cli("verify", name, prog="imageworks-loader")
        assert verify.exit_code == 0, verify.stdout + verify.stderr
    for name in legacy["skip"]:
        path = (discovered.get(name, {}).get("download") or {}).get("path")
        assert path is None or path.startswith("ollama:")  # nothing recorded for tags not in the store

    # the curated layer keeps its static content; only the legacy shape changed (see registry/legacy.py)
    curated = layer(registry, CURATED)
    for name in set(legacy["update"]) & set(raw_curated):
        assert curated[name] == parsed_before[name]
        assert not set(curated[name]) & DYNAMIC_FIELDS
        old = raw_curated[name]
        for key in ("display_name", "backend", "backend_config", "served_model_id", "generation_defaults",
                    "chat_template", "family", "quantization", "roles", "license", "metadata"):
            assert curated[name].get(key) == old.get(key), (name, key)
        assert curated[name]["aliases"] == old["model_aliases"]
        assert curated[name]["flags"] == {"deprecated": old["deprecated"]}
        assert {k: curated[name]["capabilities"][k] for k in ("text", "vision", "tools")} == \
            {k: old["capabilities"][k] for k in ("text", "vision", "tools")}

    # each legacy file was backed up, as it was, before the first write
    for filename, content in original.items():
        stem = filename.removesuffix(".json")
        found = [b for b in (registry / "backups").iterdir()
                 if re.fullmatch(rf"{re.escape(stem)}\.{STAMP}\.(legacy|backfill-ollama-paths)\.json", b.name)]
        assert [b.read_bytes() for b in found] == [content], filename


def test_backfill_without_a_store_is_one_clear_error(legacy, registry, monkeypatch, tmp_path):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "nowhere"))
    before = snapshot(registry)

    result = dl("backfill-ollama-paths")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: no Ollama store found")
    assert "Traceback" not in result.stderr
    assert snapshot(registry) == before
