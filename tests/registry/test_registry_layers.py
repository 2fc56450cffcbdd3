"""The two registry layers: per-field precedence, byte-identical round trips (W16), the written file
shape, migration of the earlier tool's files, and the merged snapshot cache (W15)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from imageworks_models.registry.capabilities import CANONICAL, SYNONYMS
from imageworks_models.registry.store import (BACKUP_DIR, CURATED_FILE, DISCOVERED_FILE, MERGED_FILE, RegistryStore,
                                              dump_document)

LIST = ("list", "--json", "--include-non-installed")
HEX = "0123456789abcdef" * 4


def write_layers(d: Path, curated: list[dict] | None, discovered: list[dict] | None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    if curated is not None:
        (d / CURATED_FILE).write_bytes(dump_document(curated))
    if discovered is not None:
        (d / DISCOVERED_FILE).write_bytes(dump_document(discovered))
    return d


def show(cli, d: Path, name: str) -> tuple[dict, dict]:
    result = cli("--registry-dir", str(d), "show", name, "--provenance", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    return out["entry"], out["provenance"]


def folder_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- precedence ------------------------------------------------------------------------------------


CURATED_ENTRY = {
    "name": "qwen-vl", "display_name": "Qwen VL (curated)", "backend": "vllm",
    "backend_config": {"port": 24001, "extra_args": ["--max-model-len", "8192"]},
    "roles": ["caption"], "capabilities": {"text": True, "vision": True},
    "source": {"provider": "hf", "repo_id": "Qwen/Qwen2.5-VL-7B-Instruct-AWQ"},
    "metadata": {"owner": "ana", "notes": "curated note"},
}
DISCOVERED_ENTRY = {
    "name": "qwen-vl", "display_name": "qwen-vl (scanned)", "backend": "ollama",
    "backend_config": {"port": 11434}, "family": "qwen2.5-vl", "quantization": "awq", "format": "safetensors",
    "source": {"provider": "local", "revision": "main", "commit": "c0ffee" * 6 + "abcd"},
    "metadata": {"notes": "scanner note", "files_downloaded": 18},
    "download": {"path": "/weights/qwen-vl", "location": "linux_wsl", "size_bytes": 123, "file_count": 2},
    "artifacts": {"aggregate": "sha256:" + HEX, "files": [{"path": "model.safetensors", "size": 100,
                                                            "digest": "sha256:" + HEX}]},
    "version_lock": {"locked": True, "expected_aggregate": "sha256:" + HEX, "last_verified": "2025-01-01T00:00:00+00:00"},
}


@pytest.fixture
def layered(tmp_path) -> Path:
    return write_layers(tmp_path / "reg", [CURATED_ENTRY], [DISCOVERED_ENTRY])


def test_curated_wins_for_static_fields_it_sets(cli, layered):
    entry, prov = show(cli, layered, "qwen-vl")
    assert entry["display_name"] == "Qwen VL (curated)" and prov["display_name"] == "curated"
    assert entry["backend"] == "vllm" and prov["backend"] == "curated"
    assert entry["backend_config"]["port"] == 24001 and prov["backend_config"] == "curated"
    assert entry["backend_config"]["extra_args"] == ["--max-model-len", "8192"]
    assert entry["roles"] == ["caption"] and prov["roles"] == "curated"
    assert entry["capabilities"] == {"text": True, "vision": True} and prov["capabilities"] == "curated"


def test_discovered_supplies_static_fields_curated_leaves_out(cli, layered):
    entry, prov = show(cli, layered, "qwen-vl")
    for key, value in (("family", "qwen2.5-vl"), ("quantization", "awq"), ("format", "safetensors")):
        assert entry[key] == value and prov[key] == "discovered", key


def test_dynamic_fields_come_only_from_discovered(cli, layered):
    entry, prov = show(cli, layered, "qwen-vl")
    for key in ("download", "artifacts", "version_lock"):
        assert prov[key] == "discovered", key
    assert entry["download"]["path"] == "/weights/qwen-vl"
    assert entry["artifacts"]["aggregate"] == "sha256:" + HEX
    assert entry["version_lock"]["locked"] is True


def test_source_and_metadata_merge_key_by_key(cli, layered):
    entry, prov = show(cli, layered, "qwen-vl")
    assert prov["source"] == "curated+discovered"
    assert entry["source"]["provider"] == "hf"  # curated wins
    assert entry["source"]["repo_id"] == "Qwen/Qwen2.5-VL-7B-Instruct-AWQ"  # only curated has it
    assert entry["source"]["revision"] == "main"  # only discovered has it
    assert entry["source"]["commit"] == DISCOVERED_ENTRY["source"]["commit"]  # machine-written
    assert prov["metadata"] == "curated+discovered"
    assert entry["metadata"] == {"owner": "ana", "notes": "curated note", "files_downloaded": 18}


def test_unset_fields_take_the_default(cli, layered):
    entry, prov = show(cli, layered, "qwen-vl")
    for key, value in (("aliases", []), ("served_model_id", None), ("license", None), ("chat_template", None),
                       ("generation_defaults", {}), ("role_priority", {})):
        assert entry[key] == value and prov[key] == "default", key
    assert entry["flags"] == {"deprecated": False, "testing": False} and prov["flags"] == "default"


def test_entry_only_in_one_layer(cli, tmp_path):
    d = write_layers(tmp_path / "reg", [{"name": "curated-only", "backend": "vllm"}],
                     [{"name": "discovered-only", "backend": "ollama", "download": {"path": "ollama:/x:1"}}])
    entry, prov = show(cli, d, "discovered-only")
    assert prov["name"] == "discovered" and prov["backend"] == "discovered"
    entry, prov = show(cli, d, "curated-only")
    assert prov["name"] == "curated" and prov["download"] == "default" and entry["download"] is None


def test_same_name_in_both_layers_is_one_entry_not_an_error(cli, layered):
    result = cli("--registry-dir", str(layered), *LIST)
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["qwen-vl"]
    _, prov = show(cli, layered, "qwen-vl")
    assert prov["name"] == "curated+discovered"


def test_snapshot_and_layers_give_the_same_entries(layered):
    store = RegistryStore(layered)
    first = store.load()
    assert not first.from_snapshot
    second = store.load()
    assert second.from_snapshot
    assert second.entries == first.entries


# --- round trips (W16) ------------------------------------------------------------------------------


def test_canonical_curated_file_round_trips_byte_identical(layered):
    store = RegistryStore(layered)
    cur_before = (layered / CURATED_FILE).read_bytes()
    disc_before = (layered / DISCOVERED_FILE).read_bytes()
    with store.edit():
        pass
    assert (layered / CURATED_FILE).read_bytes() == cur_before
    assert (layered / DISCOVERED_FILE).read_bytes() == disc_before

    with store.edit() as layers:
        layers.discovered.get("qwen-vl")["download"]["size_bytes"] = 456
    assert (layered / CURATED_FILE).read_bytes() == cur_before
    assert json.loads((layered / DISCOVERED_FILE).read_text())["entries"][0]["download"]["size_bytes"] == 456


def test_hand_formatted_curated_file_is_not_rewritten_by_other_edits(tmp_path):
    d = tmp_path / "reg"
    d.mkdir()
    hand = ('{\n    "schema_version": 1,\n    "entries": [\n        {"name": "zeta", "backend": "vllm"},\n'
            '        {"backend": "ollama", "name": "alpha"}\n    ]\n}\n')
    (d / CURATED_FILE).write_text(hand)
    (d / DISCOVERED_FILE).write_bytes(dump_document([{"name": "alpha", "download": {"path": "/w/a"}}]))
    store = RegistryStore(d)
    with store.edit() as layers:
        layers.discovered.get("alpha")["download"]["path"] = "/w/b"
    assert (d / CURATED_FILE).read_text() == hand


def test_capability_synonyms_are_read_canonical_but_not_rewritten(cli, tmp_path):
    d = tmp_path / "reg"
    d.mkdir()
    cur = json.dumps({"schema_version": 1, "entries": [
        {"name": "m1", "backend": "vllm", "capabilities": {"tool_call": True, "vl": True, "chat": True}}]},
        indent=2) + "\n"
    (d / CURATED_FILE).write_text(cur)
    (d / DISCOVERED_FILE).write_bytes(dump_document([{"name": "m1", "download": {"path": "/w/m1"}}]))

    entry, _ = show(cli, d, "m1")
    assert entry["capabilities"] == {"text": True, "vision": True, "tools": True}
    store = RegistryStore(d)
    assert store.load().get("m1")["capabilities"] == {"text": True, "vision": True, "tools": True}

    with store.edit():
        pass
    with store.edit() as layers:
        layers.discovered.get("m1")["download"]["path"] = "/w/m1-moved"
    assert (d / CURATED_FILE).read_text() == cur

    with store.edit() as layers:
        layers.curated.get("m1")["display_name"] = "M1"
    written = json.loads((d / CURATED_FILE).read_text())
    [saved] = written["entries"]
    assert saved["display_name"] == "M1"
    assert saved["capabilities"] == {"text": True, "vision": True, "tools": True}
    assert set(saved["capabilities"]) <= set(CANONICAL)
    for synonym in ("tool_call", "vl", "chat"):
        assert f'"{synonym}"' not in (d / CURATED_FILE).read_text()


def _assert_file_shape(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert list(doc)[0] == "schema_version" and doc["schema_version"] == 1
    names = [e["name"] for e in doc["entries"]]
    assert names == sorted(names)
    # 2-space indent, key order as in the file, exactly one trailing newline
    assert text == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    assert text.endswith("}\n") and not text.endswith("\n\n")
    return doc


def test_written_files_have_the_documented_shape(tmp_path):
    d = tmp_path / "reg"
    d.mkdir()
    store = RegistryStore(d)
    with store.edit() as layers:
        for name in ("zeta", "Alpha", "mid-model", "beta"):
            layers.curated.put({"name": name, "backend": "vllm", "display_name": f"{name} \u00e9"})
            layers.discovered.put({"name": name, "download": {"path": f"/w/{name}"}})
    for path in (d / CURATED_FILE, d / DISCOVERED_FILE):
        doc = _assert_file_shape(path)
        assert [e["name"] for e in doc["entries"]] == ["Alpha", "beta", "mid-model", "zeta"]
    assert "\u00e9" in (d / CURATED_FILE).read_text(encoding="utf-8")  # UTF-8, not \\u escapes


# --- migration of the earlier tool's files ------------------------------------------------------------


LEGACY_DOWNLOAD = {"download_location": "location", "download_path": "path", "download_size_bytes": "size_bytes",
                   "download_directory_checksum": "directory_checksum", "downloaded_at": "downloaded_at",
                   "last_accessed": "last_accessed"}
DYNAMIC = {"download", "artifacts", "version_lock", "performance", "probes"}


def _hexdigest(value):
    return f"sha256:{value.lower()}" if value else None


def _account_for(old: dict, new: dict, new_dynamic: dict, where: str) -> None:
    """Every key of a legacy entry is somewhere in the migrated entry (``new_dynamic``: its discovered view)."""

    def target(key: str) -> dict:
        return new_dynamic if key in DYNAMIC else new

    for key, value in old.items():
        ctx = (where, old["name"], key)
        if key == "model_aliases":
            assert new["aliases"] == value, ctx
        elif key in LEGACY_DOWNLOAD:
            if value not in (None, ""):
                assert new_dynamic["download"][LEGACY_DOWNLOAD[key]] == value, ctx
        elif key == "download_files":
            if value:
                assert new_dynamic["download"]["files"] == value, ctx
                assert new_dynamic["download"]["file_count"] == len(value), ctx
        elif key == "download_format":
            if value:
                assert new["format"] == value, ctx
        elif key == "source_provider":
            if value:
                assert new["source"]["provider"] == value, ctx
        elif key == "source":
            if isinstance(value, dict):
                for k, v in value.items():
                    assert new["source"]["repo_id" if k == "huggingface_id" else k] == v, ctx
            else:
                assert value is None, ctx
        elif key == "artifacts":
            agg = value.get("aggregate_sha256")
            files = value.get("files") or []
            if agg or files:
                art = new_dynamic["artifacts"]
                assert art["aggregate"] == _hexdigest(agg), ctx
                assert [f["path"] for f in art["files"]] == [f["path"] for f in files], ctx
                assert [f["digest"] for f in art["files"]] == [_hexdigest(f.get("sha256")) for f in files], ctx
                assert all(a.get("size") == f.get("size") for a, f in zip(art["files"], files)), ctx
        elif key == "version_lock":
            if value.get("locked") or value.get("expected_aggregate_sha256") or value.get("last_verified"):
                lock = new_dynamic["version_lock"]
                assert lock["locked"] == bool(value.get("locked")), ctx
                assert lock["expected_aggregate"] == _hexdigest(value.get("expected_aggregate_sha256")), ctx
                assert lock["last_verified"] == value.get("last_verified"), ctx
        elif key in ("deprecated", "testing"):
            assert new["flags"][key] is bool(value), ctx
        elif key == "capabilities":
            expected: dict[str, bool] = {}
            options: dict[str, dict] = {}
            for syn, flag in value.items():
                canon = SYNONYMS[syn.strip().lower()]
                if isinstance(flag, dict):
                    options[canon] = {k: v for k, v in flag.items() if k != "enabled"}
                    flag = flag["enabled"]
                expected[canon] = expected.get(canon, False) or flag
            assert new["capabilities"] == expected, ctx
            for canon, opts in options.items():
                assert new["capability_options"][canon] == opts, ctx
        elif key == "served_model_id" and value == "None":
            assert new[key] is None, ctx
        else:
            assert target(key)[key] == value, ctx


def _legacy(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_legacy_files_are_listed_without_being_modified(cli, legacy_dir):
    before = folder_digests(legacy_dir)
    names = {e["name"] for f in (CURATED_FILE, DISCOVERED_FILE) for e in _legacy(legacy_dir / f)}
    assert len(names) == 16
    result = cli("--registry-dir", str(legacy_dir), *LIST)
    assert result.exit_code == 0, result.stderr
    assert {r["name"] for r in json.loads(result.stdout)} == names
    assert cli("--registry-dir", str(legacy_dir), "show", "florence-2-large_(FP16)", "--provenance", "--json"
               ).exit_code == 0
    RegistryStore(legacy_dir).load()
    assert folder_digests(legacy_dir) == before  # not even a lock file or a snapshot


def test_first_write_migrates_both_layers_with_backups(cli, legacy_dir):
    originals = {f: (legacy_dir / f).read_bytes() for f in (CURATED_FILE, DISCOVERED_FILE, MERGED_FILE)}
    old_cur, old_disc = _legacy(legacy_dir / CURATED_FILE), _legacy(legacy_dir / DISCOVERED_FILE)
    store = RegistryStore(legacy_dir)
    with store.edit() as layers:
        layers.curated.get("gpt-oss-20b_(MXFP4)")["display_name"] = "GPT-OSS 20B"

    new_docs = {}
    for f in (CURATED_FILE, DISCOVERED_FILE):
        doc = _assert_file_shape(legacy_dir / f)
        assert set(doc) == {"schema_version", "entries"}
        new_docs[f] = {e["name"]: e for e in doc["entries"]}
    assert set(new_docs[CURATED_FILE]) == {e["name"] for e in old_cur}
    assert set(new_docs[DISCOVERED_FILE]) == {e["name"] for e in old_disc}
    assert new_docs[CURATED_FILE]["gpt-oss-20b_(MXFP4)"]["display_name"] == "GPT-OSS 20B"

    # backups of every original, byte-identical
    backups = sorted((legacy_dir / BACKUP_DIR).iterdir())
    for f, data in originals.items():
        stem = f[: -len(".json")]
        mine = [b for b in backups if b.name.startswith(stem + ".2") and b.name.endswith(".legacy.json")]
        assert len(mine) == 1, (f, [b.name for b in backups])
        assert mine[0].read_bytes() == data

    # no entry and no field lost
    empty: dict = {}
    for old in old_cur:
        old = dict(old, display_name="GPT-OSS 20B") if old["name"] == "gpt-oss-20b_(MXFP4)" else old
        _account_for(old, new_docs[CURATED_FILE][old["name"]],
                     new_docs[DISCOVERED_FILE].get(old["name"], empty), "curated")
    for old in old_disc:
        new = new_docs[DISCOVERED_FILE][old["name"]]
        _account_for(old, new, new, "discovered")

    # the vision options of the earlier tool became capability_options
    qwen = new_docs[DISCOVERED_FILE]["qwen25vl_8.3b_(Q4_K_M)"]
    assert qwen["capabilities"]["vision"] is True
    assert qwen["capability_options"] == {"vision": {"target_long_edge": 448}}

    # the migrated registry shows the same 16 models, edit included
    result = cli("--registry-dir", str(legacy_dir), *LIST)
    assert result.exit_code == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert len(rows) == 16 and rows["gpt-oss-20b_(MXFP4)"]["display_name"] == "GPT-OSS 20B"


def test_migrated_registry_lists_the_same_as_the_legacy_one(cli, legacy_dir):
    before = json.loads(cli("--registry-dir", str(legacy_dir), *LIST).stdout)
    with RegistryStore(legacy_dir).edit() as layers:
        layers.curated.get("florence-2-large_(FP16)")["display_name"] = "Florence"
    after = json.loads(cli("--registry-dir", str(legacy_dir), *LIST).stdout)
    for row in before:
        if row["name"] == "florence-2-large_(FP16)":
            row["display_name"] = "Florence"
    assert after == before


# --- the merged snapshot (W15) -------------------------------------------------------------------------


def test_snapshot_records_layer_digests_and_is_used(layered):
    store = RegistryStore(layered)
    with store.edit() as layers:
        layers.curated.get("qwen-vl")["display_name"] = "Edited"
    snap = json.loads((layered / MERGED_FILE).read_text())
    for f in (CURATED_FILE, DISCOVERED_FILE):
        assert snap["sources"][f] == "sha256:" + hashlib.sha256((layered / f).read_bytes()).hexdigest()
    registry = store.load()
    assert registry.from_snapshot is True
    assert registry.get("qwen-vl")["display_name"] == "Edited"


def test_hand_edit_of_curated_makes_the_snapshot_stale(cli, layered):
    store = RegistryStore(layered)
    with store.edit():
        pass
    assert store.load().from_snapshot
    doc = json.loads((layered / CURATED_FILE).read_text())
    doc["entries"][0]["display_name"] = "Edited by hand"
    (layered / CURATED_FILE).write_text(json.dumps(doc, indent=4))
    registry = store.load()
    assert registry.from_snapshot is False
    assert registry.get("qwen-vl")["display_name"] == "Edited by hand"
    entry, _ = show(cli, layered, "qwen-vl")
    assert entry["display_name"] == "Edited by hand"
    again = store.load()  # the read refreshed the snapshot for the new bytes
    assert again.from_snapshot and again.get("qwen-vl")["display_name"] == "Edited by hand"


def test_hand_edit_of_discovered_makes_the_snapshot_stale(layered):
    store = RegistryStore(layered)
    store.load()
    assert store.load().from_snapshot
    doc = json.loads((layered / DISCOVERED_FILE).read_text())
    doc["entries"][0]["family"] = "renamed-family"
    (layered / DISCOVERED_FILE).write_bytes(dump_document(doc["entries"]))
    registry = store.load()
    assert not registry.from_snapshot and registry.get("qwen-vl")["family"] == "renamed-family"


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"[]", b'{"schema_version": 1}', b"\xff\xfe\x00",
                                     b'{"schema_version": 1, "sources": "x", "entries": 3}', b'"str"'],
                         ids=["empty", "invalid", "list", "no-sources", "binary", "wrong-types", "string"])
def test_corrupt_snapshot_is_ignored(cli, layered, garbage):
    store = RegistryStore(layered)
    expected = store.load().entries
    (layered / MERGED_FILE).write_bytes(garbage)
    registry = store.load()
    assert registry.from_snapshot is False
    assert registry.entries == expected
    result = cli("--registry-dir", str(layered), *LIST)
    assert result.exit_code == 0, result.stderr
    assert [r["name"] for r in json.loads(result.stdout)] == ["qwen-vl"]


def test_snapshot_with_matching_sources_but_bad_entries_is_ignored(layered):
    store = RegistryStore(layered)
    store.load()
    snap = json.loads((layered / MERGED_FILE).read_text())
    snap["entries"] = [{"no_name": True}]
    (layered / MERGED_FILE).write_text(json.dumps(snap))
    registry = store.load()
    assert registry.get("qwen-vl")["display_name"] == "Qwen VL (curated)"


def _many(tmp_path, n=6) -> Path:
    """A registry of ``n`` entries in both layers, with its snapshot written by a load."""
    curated = [{**CURATED_ENTRY, "name": f"model-{i}", "display_name": f"Model {i}"} for i in range(n)]
    discovered = [{**DISCOVERED_ENTRY, "name": f"model-{i}", "family": f"family-{i}"} for i in range(0, n, 2)]
    folder = write_layers(tmp_path / "many", curated, discovered)
    RegistryStore(folder).load()
    return folder


def _hand_edit(folder: Path, layer: str, name: str, **fields) -> None:
    doc = json.loads((folder / layer).read_text())
    for entry in doc["entries"]:
        if entry["name"] == name:
            entry.update(fields)
    (folder / layer).write_text(json.dumps(doc, indent=4))  # a person's editor, not our file shape


def test_a_hand_edit_rebuilds_the_snapshot_as_a_full_load_would(tmp_path):
    folder = _many(tmp_path)
    store = RegistryStore(folder)
    assert store.load().from_snapshot
    _hand_edit(folder, CURATED_FILE, "model-1", display_name="Edited one", roles=["keywords"])
    _hand_edit(folder, DISCOVERED_FILE, "model-2", family="edited-family")
    doc = json.loads((folder / CURATED_FILE).read_text())
    doc["entries"].append({"name": "model-new", "backend": "ollama"})
    (folder / CURATED_FILE).write_text(json.dumps(doc))

    rebuilt = store.load()
    full = RegistryStore(folder).load(use_snapshot=False)

    assert not rebuilt.from_snapshot
    assert rebuilt.entries == full.entries
    assert list(rebuilt.entries) == list(full.entries)  # the same order, key by key too
    assert all(list(rebuilt.entries[n]) == list(full.entries[n]) for n in full.entries)
    assert rebuilt.get("model-1")["display_name"] == "Edited one" and rebuilt.get("model-1")["roles"] == ["keywords"]
    assert rebuilt.get("model-2")["family"] == "edited-family"
    assert rebuilt.get("model-new")["backend"] == "ollama"
    again = store.load()  # the rebuilt snapshot is current, and holds the same entries
    assert again.from_snapshot and again.entries == full.entries
    snap = json.loads((folder / MERGED_FILE).read_text())
    assert sorted(snap["parts"]) == sorted(full.entries)


def test_a_rebuild_writes_the_snapshot_a_full_load_writes_byte_for_byte(tmp_path, monkeypatch):
    from imageworks_models.registry import store as store_mod

    folder = _many(tmp_path, n=8)
    _hand_edit(folder, CURATED_FILE, "model-1", display_name="Edited \u00e9 \\n one", roles=["keywords"])
    _hand_edit(folder, DISCOVERED_FILE, "model-2", family="edited-family")
    doc = json.loads((folder / CURATED_FILE).read_text())
    doc["entries"] = [e for e in doc["entries"] if e["name"] != "model-5"] + [{"name": "model-0a", "backend": "ollama"}]
    (folder / CURATED_FILE).write_text(json.dumps(doc))
    dumped: list[str] = []  # entries written afresh (the others' lines are the old snapshot's, as they were)
    real_dump = store_mod.dump_snapshot

    def dump(entries, header, *, lines=None):
        dumped.extend(e["name"] for e in entries if e["name"] not in (lines or {}))
        return real_dump(entries, header, lines=lines)

    monkeypatch.setattr(store_mod, "dump_snapshot", dump)

    assert not RegistryStore(folder).load().from_snapshot
    rebuilt = (folder / MERGED_FILE).read_bytes()
    monkeypatch.setattr(store_mod, "dump_snapshot", real_dump)
    (folder / MERGED_FILE).unlink()
    RegistryStore(folder).load()  # no snapshot: the full load writes every entry

    assert rebuilt == (folder / MERGED_FILE).read_bytes()
    assert sorted(dumped) == ["model-0a", "model-1", "model-2"]  # the other entries' lines were reused


@pytest.mark.parametrize("layout", ["ours", "hand-formatted"])
def test_a_curated_edit_reads_the_changed_entrys_discovered_part_without_parsing_that_layer(tmp_path, monkeypatch,
                                                                                             layout):
    from imageworks_models.registry import store as store_mod

    curated = [{**CURATED_ENTRY, "name": f"model-{i}", "display_name": f"Model {i}"} for i in range(6)]
    discovered = [{**DISCOVERED_ENTRY, "name": f"model-{i}", "family": f"family-{i}"} for i in range(6)]
    # decoys the cut must not take: an earlier entry holding an object that names model-3, and model-3's alias
    discovered[1]["metadata"] = {"twin": {"name": "model-3", "family": "not-this-one"}}
    curated[2]["aliases"] = ["model-3-alias"]
    folder = write_layers(tmp_path / "r", curated, discovered)
    if layout == "hand-formatted":  # a person's editor: another indentation, the same values
        doc = json.loads((folder / DISCOVERED_FILE).read_text())
        (folder / DISCOVERED_FILE).write_text(json.dumps(doc, indent=3))
    RegistryStore(folder).load()
    _hand_edit(folder, CURATED_FILE, "model-3", display_name="Edited three")
    whole = len((folder / DISCOVERED_FILE).read_bytes())
    parsed: list[int] = []
    real_loads = store_mod.orjson.loads
    monkeypatch.setattr(store_mod.orjson, "loads", lambda data: parsed.append(len(data)) or real_loads(data))

    rebuilt = RegistryStore(folder).load()
    monkeypatch.setattr(store_mod.orjson, "loads", real_loads)

    assert not rebuilt.from_snapshot
    full = RegistryStore(folder).load(use_snapshot=False)
    assert rebuilt.entries == full.entries and rebuilt.get("model-3")["family"] == "family-3"
    assert rebuilt.get("model-3")["display_name"] == "Edited three"
    assert (whole in parsed) == (layout == "hand-formatted")  # ours: only model-3's part was cut out and parsed


def test_a_located_part_must_match_the_recorded_fingerprint():
    from imageworks_models.registry.store import _located_part, _part_print, dump_document

    entries = [{"name": "a", "family": "x"}, {"name": "b", "family": "y"}]
    data = dump_document(entries)
    assert _located_part(data, "b", _part_print(entries[1])) == entries[1]
    assert _located_part(data, "b", _part_print({"name": "b", "family": "z"})) is None  # other content: not it
    assert _located_part(data, "c", _part_print({"name": "c"})) is None


def test_snapshot_lines_refuses_another_layout():
    from imageworks_models.registry.store import dump_snapshot, snapshot_lines

    data = dump_snapshot([{"name": "a", "x": "1,\n2"}, {"name": "b"}], {"sources": {}})
    assert {k: bytes(v) for k, v in snapshot_lines(data, ["a", "b"]).items()} == \
        {"a": b'{"name":"a","x":"1,\\n2"}', "b": b'{"name":"b"}'}
    assert snapshot_lines(data, ["a", "b", "c"]) == {}
    assert snapshot_lines(data, ["a"]) == {}  # another count of entries
    assert snapshot_lines(data.replace(b"\n]}\n", b"]}"), ["a", "b"]) == {}
    assert snapshot_lines(json.dumps({"entries": [{"name": "a"}]}, indent=1).encode(), ["a"]) == {}
    assert snapshot_lines(dump_snapshot([], {"sources": {}}), []) == {}  # nothing to reuse


def test_a_rebuild_after_removing_an_entry_drops_it(tmp_path):
    folder = _many(tmp_path)
    doc = json.loads((folder / CURATED_FILE).read_text())
    doc["entries"] = [e for e in doc["entries"] if e["name"] != "model-3"]
    (folder / CURATED_FILE).write_text(json.dumps(doc))

    registry = RegistryStore(folder).load()

    assert "model-3" not in registry.entries
    assert registry.entries == RegistryStore(folder).load(use_snapshot=False).entries


@pytest.mark.parametrize("fields, where", [
    ({"backend": 5}, "entries[4] ('model-4').backend"),
    ({"download": {"path": "/w"}}, "entries[4] ('model-4').download: machine-written field in the curated layer"),
])
def test_a_rebuild_still_validates_the_changed_entry(tmp_path, fields, where):
    from imageworks_models.errors import RegistryValidationError

    folder = _many(tmp_path)
    snapshot = (folder / MERGED_FILE).read_bytes()
    _hand_edit(folder, CURATED_FILE, "model-4", **fields)

    with pytest.raises(RegistryValidationError) as info:
        RegistryStore(folder).load()

    assert any(line.strip().startswith(where) for line in info.value.lines()), info.value.lines()
    assert (folder / MERGED_FILE).read_bytes() == snapshot  # a refused read writes nothing


@pytest.mark.parametrize("edit, cause", [
    (lambda text: text.replace('"name": "model-5",', '"name": "model-5", "name": "model-5",', 1), "duplicate key"),
    (lambda text: text.replace('"name": "model-5"', '"name": "MODEL-4"', 1), "differs from"),
    (lambda text: text.replace('"name": "model-5"', '"name": "model-4"', 1), "duplicate name"),
    (lambda text: text.replace('"display_name": "Model 5"', '"display_name": NaN', 1), "NaN"),
])
def test_a_rebuild_refuses_what_a_full_load_refuses(tmp_path, edit, cause):
    from imageworks_models.errors import RegistryError

    folder = _many(tmp_path)
    path = folder / CURATED_FILE
    path.write_text(edit(path.read_text()))

    with pytest.raises(RegistryError) as info:
        RegistryStore(folder).load()

    assert cause in "\n".join(info.value.lines())


def test_a_snapshot_without_fingerprints_is_rebuilt_in_full(tmp_path):
    folder = _many(tmp_path)
    snap = json.loads((folder / MERGED_FILE).read_text())
    del snap["parts"]  # as written before fingerprints were recorded
    (folder / MERGED_FILE).write_text(json.dumps(snap))
    _hand_edit(folder, CURATED_FILE, "model-0", display_name="Zero")

    registry = RegistryStore(folder).load()

    assert registry.get("model-0")["display_name"] == "Zero"
    assert registry.entries == RegistryStore(folder).load(use_snapshot=False).entries
    assert "parts" in json.loads((folder / MERGED_FILE).read_text())


def test_a_write_records_the_fingerprints_a_rebuild_uses(tmp_path):
    folder = _many(tmp_path)
    store = RegistryStore(folder)
    with store.edit() as layers:
        layers.curated.get("model-1")["display_name"] = "Written"
    _hand_edit(folder, DISCOVERED_FILE, "model-0", family="by-hand")

    registry = store.load()

    assert registry.get("model-1")["display_name"] == "Written" and registry.get("model-0")["family"] == "by-hand"
    assert registry.entries == RegistryStore(folder).load(use_snapshot=False).entries


@pytest.mark.parametrize("mutate, path", [
    (lambda e: e["artifacts"]["files"][0].__setitem__("digest", "sha256:" + "0" * 63), "artifacts.files[0].digest"),
    (lambda e: e["download"].__setitem__("size_bytes", -1), "download.size_bytes"),
])
def test_an_entry_changed_in_place_is_validated_again_on_save(layered, mutate, path):
    """A save re-validates only entries that changed since load: one edited in place must count."""
    from imageworks_models.errors import RegistryValidationError

    before = folder_digests(layered)
    with pytest.raises(RegistryValidationError) as info:
        with RegistryStore(layered).edit() as layers:
            mutate(layers.discovered.get("qwen-vl"))
    assert any(path in p for p in info.value.problems), info.value.problems
    after = folder_digests(layered)
    after.pop(".model_registry.lock", None)  # the (empty) lock file the edit took
    assert after == before
