"""One model, one entry, for the Ollama store (issue 16): every command counts an imported tag's files and
sizes the same way (the projector included), so commands run after ``import-ollama`` report nothing to change
in any order, and a purge followed by a rediscovery keeps the lock and the source of each tag."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from ollamastore import write_model

from imageworks_models.testing import run_cli

pytestmark = pytest.mark.usefixtures("imageworks_isolated")


def cli(*args: str, prog: str = "imageworks-models"):
    return run_cli(*args, prog=prog)


def ok_json(*args: str, prog: str = "imageworks-models") -> dict:
    result = cli(*args, "--json", prog=prog)
    assert result.exit_code == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def entries(registry: Path) -> dict[str, dict]:
    path = registry / "model_registry.discovered.json"
    return {e["name"]: e for e in json.loads(path.read_text())["entries"]} if path.exists() else {}


def changes(data: dict) -> list[dict]:
    quiet = ("unchanged", "exists", "skip")
    return [r for r in data.get("rows", []) if r.get("action") not in quiet]


DRY_RUNS = {
    "normalize-formats": ("normalize-formats", "--dry-run"),
    "discover-all": ("discover-all", "--dry-run"),
    "rebuild-ollama": ("rebuild-ollama", "--dry-run"),
}


@pytest.fixture
def imported(store, tmp_path):
    write_model(store, "qwen2.5vl", "7b", family="qwen25vl", projector=True)
    write_model(store, "qwen3", "8b", family="qwen3")
    data = ok_json("import-ollama")
    assert {r["action"] for r in data["rows"]} == {"add"}
    return tmp_path / "registry"


@pytest.mark.parametrize("order", list(itertools.permutations(DRY_RUNS)))
def test_after_import_every_dry_run_reports_no_change_in_any_order(imported, order):
    before = entries(imported)
    vision = before["qwen2.5vl-7b-ollama-gguf-q4_k_m"]
    assert vision["download"]["file_count"] == 2  # the model blob and its projector

    for command in order:
        data = ok_json(*DRY_RUNS[command])
        assert changes(data) == [], (command, changes(data))
    assert entries(imported) == before


def test_applied_normalize_and_discover_leave_the_counts_as_import_wrote_them(imported):
    before = entries(imported)
    for args in (("normalize-formats", "--apply"), ("discover-all",), ("rebuild-ollama",)):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
    after = entries(imported)
    for name, entry in before.items():
        assert after[name]["download"]["file_count"] == entry["download"]["file_count"], name
        assert after[name]["download"]["size_bytes"] == entry["download"]["size_bytes"], name
        assert after[name]["artifacts"]["aggregate"] == entry["artifacts"]["aggregate"], name


def test_a_lock_and_the_source_survive_purge_imported_and_rediscovery(imported):
    name = "qwen3-8b-ollama-gguf-q4_k_m"
    locked = cli("lock", name, "--set-expected", prog="imageworks-models")
    assert locked.exit_code == 0, locked.stderr
    before = entries(imported)[name]
    assert before["version_lock"]["locked"] is True

    purged = cli("purge-imported", "--providers", "ollama", "--apply")
    assert purged.exit_code == 0, purged.stderr
    assert name not in entries(imported)
    assert (imported / "model_registry.state.json").exists()

    again = cli("rebuild-ollama")
    assert again.exit_code == 0, again.stderr
    after = entries(imported)[name]
    assert after["version_lock"]["locked"] is True
    assert after["version_lock"]["expected_aggregate"] == before["version_lock"]["expected_aggregate"]
    assert after["source"] == before["source"]
    assert not (imported / "model_registry.state.json").exists()  # recalled, then forgotten


@pytest.mark.parametrize("catalog", [
    {"name": "house-qwen3", "backend": "ollama", "roles": ["chat"],
     "source": {"provider": "ollama", "repo_id": "qwen3", "revision": "8b"}},  # rule (b): its source names the tag
    {"name": "qwen3-8b-ollama-gguf-q4_k_m", "backend": "ollama", "roles": ["chat"]},  # rule (c): the same name
])
def test_import_attaches_a_pulled_tag_to_its_catalog_entry(store, tmp_path, catalog):
    from imageworks_models.testing import make_registry

    reg = tmp_path / "registry"
    make_registry(reg, catalog)
    write_model(store, "qwen3", "8b", family="qwen3")

    data = ok_json("import-ollama")

    [row] = [r for r in data["rows"] if r["action"] != "skip"]
    assert row["action"] == "update" and row["name"] == catalog["name"], data["rows"]
    assert set(entries(reg)) == {catalog["name"]}  # one model, one entry: no suffixed twin, no placeholder row
    shown = ok_json("show", catalog["name"])
    assert shown["roles"] == ["chat"] and shown["download"]["path"].endswith(row["path"].rsplit("/", 1)[-1])
    assert changes(ok_json("import-ollama", "--dry-run")) == []


def test_two_catalog_entries_claiming_one_tag_are_refused_naming_both(store, tmp_path):
    from imageworks_models.testing import make_registry

    reg = tmp_path / "registry"
    source = {"provider": "ollama", "repo_id": "qwen3", "revision": "8b"}
    make_registry(reg, {"name": "one", "backend": "ollama", "source": source},
                  {"name": "two", "backend": "ollama", "source": source})
    write_model(store, "qwen3", "8b", family="qwen3")

    data = ok_json("import-ollama")

    [row] = [r for r in data["rows"] if r["action"] == "conflict"]
    assert "one, two" in row["reason"]
    assert entries(reg) == {}
