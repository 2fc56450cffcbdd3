"""The GUI's core helpers (no Streamlit needed): entry editing (plan, apply, stale edits, the import wizard's
list), the recent-actions log, the last-change diff viewer, table search/export, and the loopback-only launcher."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import threading
from pathlib import Path

import pytest

from imageworks_models.maintain import editing
from imageworks_models.gui import actionlog as guilog
from imageworks_models.registry import layerdiff
from imageworks_models.present import views
from imageworks_models.errors import ConfigError, EntryEditError, EntryNotFoundError, StaleEditError
from imageworks_models.gui import launch
from imageworks_models.registry.store import BACKUP_DIR, CURATED_FILE, DISCOVERED_FILE, RegistryStore
from imageworks_models.settings import load_settings
from imageworks_models.testing import run_cli

CURATED = [
    {"name": "alpha", "display_name": "Alpha", "aliases": ["al"], "backend": "vllm", "roles": ["caption"],
     "capabilities": {"text": True}, "metadata": {"owner": "ana"}},
    {"name": "gamma", "display_name": "Gamma", "backend": "vllm"},
]
DISCOVERED = [
    {"name": "alpha", "family": "qwen", "quantization": "awq", "download": {"path": "/weights/alpha"}},
    {"name": "beta", "backend": "ollama", "family": "llama", "download": {"path": "ollama:/beta:latest"}},
    {"name": "delta", "backend": "vllm", "display_name": "Delta (scanned)"},
]
NOT_EDITABLE = "not editable here"


@pytest.fixture
def reg(tmp_path, monkeypatch) -> Path:
    """A registry folder (from IMAGEWORKS_REGISTRY_DIR) with curated alpha+gamma and discovered alpha+beta+delta."""
    folder = tmp_path / "reg"
    with RegistryStore(folder).edit() as layers:
        for entry in CURATED:
            layers.curated.put(json.loads(json.dumps(entry)))
        for entry in DISCOVERED:
            layers.discovered.put(json.loads(json.dumps(entry)))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(folder))
    return folder


def layer_bytes(folder: Path) -> tuple[bytes, bytes]:
    return (folder / CURATED_FILE).read_bytes(), (folder / DISCOVERED_FILE).read_bytes()


def effective(name: str) -> dict:
    entries, _ = RegistryStore(load_settings().registry_dir).load_layers().merged()
    return entries[name]


def base_of(name: str) -> str:
    return editing.plan_edit(name, {}).base


def backups(folder: Path) -> list[Path]:
    d = folder / BACKUP_DIR
    return sorted(d.iterdir()) if d.is_dir() else []


# --- editing: plan ---------------------------------------------------------------------------------


def test_plan_shows_diff_and_writes_nothing(reg):
    before = layer_bytes(reg)
    plan = editing.plan_edit("alpha", {"display_name": "Alpha 2", "roles": ["caption", "chat"], "license": "mit"})
    assert plan.errors == {}
    assert plan.name == "alpha"
    assert plan.diff == [("display_name", "Alpha", "Alpha 2"), ("license", None, "mit"),
                         ("roles", ["caption"], ["caption", "chat"])]
    assert plan.before["display_name"] == "Alpha" and plan.after["display_name"] == "Alpha 2"
    assert plan.base == editing.base_of("alpha")
    assert plan.as_dict()["diff"][0] == {"field": "display_name", "old": "Alpha", "new": "Alpha 2"}
    assert layer_bytes(reg) == before
    assert backups(reg) == []


def test_plan_with_no_changes_has_an_empty_diff(reg):
    plan = editing.plan_edit("alpha", {"display_name": "Alpha"})
    assert plan.diff == [] and plan.errors == {} and plan.after == plan.before


def test_plan_none_removes_a_field(reg):
    plan = editing.plan_edit("alpha", {"metadata": None, "display_name": None})
    assert plan.errors == {}
    assert "metadata" not in plan.after and "display_name" not in plan.after
    assert ("display_name", "Alpha", None) in plan.diff
    assert ("metadata", {"owner": "ana"}, None) in plan.diff


def test_plan_none_for_a_field_curated_does_not_hold_is_no_change(reg):
    plan = editing.plan_edit("alpha", {"license": None})
    assert plan.diff == [] and plan.errors == {}


def test_plan_unknown_entry_raises(reg):
    with pytest.raises(EntryNotFoundError):
        editing.plan_edit("no-such-model", {"display_name": "x"})


# --- editing: apply --------------------------------------------------------------------------------


def test_apply_writes_only_curated_takes_backup_and_entry_has_new_values(reg):
    _, disc_before = layer_bytes(reg)
    cur_before = (reg / CURATED_FILE).read_bytes()
    base = base_of("alpha")
    plan = editing.apply_edit("alpha", {"display_name": "Alpha 2", "roles": ["chat"], "metadata": None,
                                        "backend_config": {"port": 24001}}, base=base)
    assert plan.errors == {}
    cur_after, disc_after = layer_bytes(reg)
    assert disc_after == disc_before
    assert cur_after != cur_before
    saved = {e["name"]: e for e in json.loads(cur_after)["entries"]}
    assert saved["alpha"]["display_name"] == "Alpha 2" and "metadata" not in saved["alpha"]
    assert saved["gamma"] == CURATED[1]  # other entries untouched
    made = backups(reg)
    assert len(made) == 1 and made[0].name.startswith("model_registry.curated.") and ".edit" in made[0].name
    assert made[0].read_bytes() == cur_before
    entry = effective("alpha")
    assert entry["display_name"] == "Alpha 2" and entry["roles"] == ["chat"]
    assert entry["backend_config"]["port"] == 24001
    assert entry["family"] == "qwen" and entry["download"]["path"] == "/weights/alpha"  # discovered still there
    assert entry["metadata"] == {}


def test_apply_returns_the_plan_and_a_second_edit_needs_the_new_base(reg):
    old_base = base_of("alpha")
    editing.apply_edit("alpha", {"display_name": "One"}, base=old_base)
    with pytest.raises(StaleEditError):
        editing.apply_edit("alpha", {"display_name": "Two"}, base=old_base)
    editing.apply_edit("alpha", {"display_name": "Two"}, base=base_of("alpha"))
    assert effective("alpha")["display_name"] == "Two"


def test_apply_folds_capability_synonyms(reg):
    editing.apply_edit("alpha", {"capabilities": {"vl": True, "chat": True}}, base=base_of("alpha"))
    saved = {e["name"]: e for e in json.loads((reg / CURATED_FILE).read_bytes())["entries"]}
    assert saved["alpha"]["capabilities"] == {"text": True, "vision": True}


# --- editing: errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("download", {"path": "/elsewhere"}),
    ("name", "renamed"),
    ("artifacts", {"aggregate": None}),
    ("version_lock", {"locked": True}),
])
def test_fields_that_are_not_editable(reg, field, value):
    plan = editing.plan_edit("alpha", {field: value})
    assert NOT_EDITABLE in plan.errors[field]


@pytest.mark.parametrize("changes, field, words", [
    ({"capabilities": {"vision": True, "telepathy": True}}, "capabilities", "telepathy"),
    ({"roles": "caption"}, "roles", "list"),
    ({"aliases": "al"}, "aliases", "list"),
    ({"backend_config": {"port": "not-a-port"}}, "backend_config", "port"),
    ({"backend_config": {"port": 70000}}, "backend_config", "port"),
    ({"backend": "VLLM!"}, "backend", "backend name"),
    ({"backend": "v llm"}, "backend", "backend name"),
    ({"roles": ["caption", "  "]}, "roles", "blank"),
    ({"role_priority": {"caption": "high"}}, "role_priority", "integer"),
])
def test_field_errors(reg, changes, field, words):
    plan = editing.plan_edit("alpha", changes)
    assert set(plan.errors) == {field}, plan.errors
    assert words.lower() in plan.errors[field].lower()


def test_removing_the_only_backend_is_a_backend_error(reg):
    plan = editing.plan_edit("alpha", {"backend": None})  # discovered alpha has no backend
    assert "backend" in plan.errors and "needs a backend" in plan.errors["backend"]


def test_removing_curated_backend_when_discovered_has_one_is_fine(reg):
    with RegistryStore(reg).edit() as layers:
        layers.curated.put({"name": "beta", "backend": "vllm"})
    plan = editing.plan_edit("beta", {"backend": None})
    assert plan.errors == {}
    editing.apply_edit("beta", {"backend": None}, base=plan.base)
    assert effective("beta")["backend"] == "ollama"


def test_apply_with_errors_raises_entry_edit_error_and_writes_nothing(reg):
    before = layer_bytes(reg)
    with pytest.raises(EntryEditError) as info:
        editing.apply_edit("alpha", {"roles": "caption", "backend": "BAD!", "download": {"path": "/x"}},
                           base=base_of("alpha"))
    err = info.value
    assert set(err.errors) == {"roles", "backend", "download"}
    lines = err.lines()
    assert lines[0] == "alpha: 3 invalid fields"
    assert [line.split(":", 1)[0].strip() for line in lines[1:]] == ["backend", "download", "roles"]
    assert all(line.startswith("  ") for line in lines[1:])
    assert err.hint
    assert layer_bytes(reg) == before
    assert backups(reg) == []


def test_entry_edit_error_singular_message():
    err = EntryEditError({"roles": "Input should be a valid list"}, name="x")
    assert err.lines() == ["x: 1 invalid field", "  roles: Input should be a valid list"]


# --- editing: the checks activation makes, made when saving -----------------------------------------


def refused(reg, name: str, changes: dict) -> dict[str, str]:
    """The field errors of ``changes``; the apply is refused and neither layer file changes."""
    before = layer_bytes(reg)
    plan = editing.plan_edit(name, changes)
    with pytest.raises(EntryEditError):
        editing.apply_edit(name, changes, base=plan.base)
    assert layer_bytes(reg) == before
    return plan.errors


def test_a_backend_no_loaded_plugin_provides_is_refused(reg):
    errors = refused(reg, "alpha", {"backend": "tensorrt"})
    assert list(errors) == ["backend"]
    assert "no loaded plugin provides the 'tensorrt' backend" in errors["backend"]
    assert "vllm" in errors["backend"] and "pip install imageworks-models-tensorrt" in errors["backend"]


@pytest.mark.parametrize("extra_args, words", [
    (["--port", "9000"], "may not set --port"),
    (["--hos=0.0.0.0"], "may not set --host"),  # an argparse abbreviation
    (["--served-model-name", "x"], "may not set --served-model-name"),
    (["--trust-remote-code"], "--trust-remote-code"),
    ("--max-model-len 4096", "list"),
    (["4096"], "must start with an option"),
])
def test_extra_args_the_orchestrator_owns_or_forbids_are_refused(reg, extra_args, words):
    errors = refused(reg, "alpha", {"backend_config": {"model_path": "/weights/alpha", "extra_args": extra_args}})
    assert list(errors) == ["backend_config"], errors
    assert words in errors["backend_config"]


@pytest.mark.parametrize("env", [{"LD_PRELOAD": "/tmp/x.so"}, {"PYTHONPATH": "/tmp"}, {"PATH": "/tmp"},
                                 {"BAD KEY": "1"}])
def test_env_that_would_load_other_code_is_refused(reg, env):
    errors = refused(reg, "alpha", {"backend_config": {"model_path": "/weights/alpha", "env": env}})
    assert list(errors) == ["backend_config"] and "env" in errors["backend_config"], errors


def test_allowed_extra_args_and_env_are_saved(reg):
    changes = {"backend_config": {"model_path": "/weights/alpha", "extra_args": ["--max-model-len", "4096"],
                                  "env": {"CUDA_VISIBLE_DEVICES": "0"}}}
    plan = editing.plan_edit("alpha", changes)
    assert plan.errors == {}
    editing.apply_edit("alpha", changes, base=plan.base)
    assert effective("alpha")["backend_config"]["extra_args"] == ["--max-model-len", "4096"]


@pytest.mark.parametrize("port", [0, 70000, "http"])
def test_a_port_out_of_range_is_refused(reg, port):
    errors = refused(reg, "alpha", {"backend_config": {"port": port}})
    assert list(errors) == ["backend_config"] and "port" in errors["backend_config"], errors


@pytest.mark.parametrize("roles, words", [
    (["Chat Bot!"], "is not a role name"),
    (["chat", "  "], "blank"),
    (["gamma"], "also an entry's name or alias"),  # `select gamma` picks the entry, never the role
    (["al"], "also an entry's name or alias"),
])
def test_junk_roles_are_refused(reg, roles, words):
    errors = refused(reg, "alpha", {"roles": roles})
    assert list(errors) == ["roles"] and words in errors["roles"], errors


def test_a_role_priority_for_a_role_the_entry_does_not_play_is_refused(reg):
    errors = refused(reg, "alpha", {"role_priority": {"vision": 5}})
    assert list(errors) == ["role_priority"], errors


def test_a_remote_entry_is_not_checked_against_a_local_launch(reg):
    changes = {"backend_config": {"base_url": "http://gpu-box:8000/v1"}}
    assert editing.plan_edit("alpha", changes).errors == {}


# --- editing: stale edits --------------------------------------------------------------------------


def test_stale_edit_is_refused_and_writes_nothing(reg):
    base = base_of("alpha")
    with RegistryStore(reg).edit() as layers:  # another person saves the curated part in between
        layers.curated.put({**layers.curated.get("alpha"), "display_name": "Someone else's name"})
    before = layer_bytes(reg)
    n_backups = len(backups(reg))
    with pytest.raises(StaleEditError) as info:
        editing.apply_edit("alpha", {"display_name": "Mine"}, base=base)
    assert "alpha" in info.value.message and info.value.hint
    assert layer_bytes(reg) == before
    assert len(backups(reg)) == n_backups


def test_a_machine_write_to_the_discovered_layer_does_not_make_an_edit_stale(reg):
    base = base_of("alpha")
    with RegistryStore(reg).edit() as layers:  # e.g. a verify recording its time, or a re-scan
        layers.discovered.put({**layers.discovered.get("alpha"), "quantization": "gptq"})

    editing.apply_edit("alpha", {"display_name": "Mine"}, base=base)

    assert effective("alpha")["display_name"] == "Mine" and effective("alpha")["quantization"] == "gptq"


def test_stale_when_entry_was_removed_meanwhile(reg):
    base = base_of("gamma")
    with RegistryStore(reg).edit() as layers:
        layers.curated.remove("gamma")
    before = layer_bytes(reg)
    with pytest.raises(EntryNotFoundError):
        editing.apply_edit("gamma", {"display_name": "x"}, base=base)
    assert layer_bytes(reg) == before


def test_edit_of_another_entry_does_not_make_this_one_stale(reg):
    base = base_of("alpha")
    editing.apply_edit("gamma", {"display_name": "Gamma 2"}, base=base_of("gamma"))
    editing.apply_edit("alpha", {"display_name": "Alpha 2"}, base=base)
    assert effective("alpha")["display_name"] == "Alpha 2"


# --- editing: aliases ------------------------------------------------------------------------------


def test_plan_and_apply_both_resolve_an_alias_to_the_entry(reg):
    plan = editing.plan_edit("al", {"display_name": "Via alias"})
    assert plan.name == "alpha" and plan.errors == {}

    applied = editing.apply_edit("al", {"display_name": "Via alias"}, base=plan.base)

    assert applied.name == "alpha"
    assert effective("alpha")["display_name"] == "Via alias"


# --- editing: discovered-only entries (import wizard) ---------------------------------------------


def test_discovered_only_lists_exactly_entries_without_curated_part(reg):
    found = editing.discovered_only()
    assert [e["name"] for e in found] == ["beta", "delta"]
    assert found[0]["backend"] == "ollama" and found[0]["family"] == "llama"


def test_discovered_only_empty_registry(tmp_path, monkeypatch):
    folder = tmp_path / "empty"
    with RegistryStore(folder).edit() as layers:
        layers.curated.put({"name": "only-curated", "backend": "vllm"})
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(folder))
    assert editing.discovered_only() == []


def test_editing_a_discovered_only_entry_creates_its_curated_part(reg):
    _, disc_before = layer_bytes(reg)
    plan = editing.plan_edit("beta", {"display_name": "Beta", "roles": ["chat"]})
    assert plan.before == {"name": "beta"}
    assert plan.diff == [("display_name", None, "Beta"), ("roles", None, ["chat"])]
    editing.apply_edit("beta", {"display_name": "Beta", "roles": ["chat"]}, base=plan.base)
    saved = {e["name"]: e for e in json.loads((reg / CURATED_FILE).read_bytes())["entries"]}
    assert saved["beta"] == {"name": "beta", "display_name": "Beta", "roles": ["chat"]}
    assert (reg / DISCOVERED_FILE).read_bytes() == disc_before
    entry = effective("beta")
    assert entry["display_name"] == "Beta" and entry["backend"] == "ollama"
    assert [e["name"] for e in editing.discovered_only()] == ["delta"]


def test_editing_discovered_only_entry_without_curated_file(tmp_path, monkeypatch):
    folder = tmp_path / "nocur"
    with RegistryStore(folder).edit() as layers:
        layers.discovered.put({"name": "solo", "backend": "ollama"})
    assert not (folder / CURATED_FILE).exists()
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(folder))
    editing.apply_edit("solo", {"display_name": "Solo"}, base=base_of("solo"))
    assert json.loads((folder / CURATED_FILE).read_bytes())["entries"] == [{"name": "solo", "display_name": "Solo"}]
    assert editing.discovered_only() == []


def test_fingerprint_is_key_order_independent():
    assert editing.fingerprint({"a": 1, "b": [1, 2]}) == editing.fingerprint({"b": [1, 2], "a": 1})
    assert editing.fingerprint({"a": 1}) != editing.fingerprint({"a": 2})
    assert editing.fingerprint(None).startswith("sha256:")


# --- guilog ----------------------------------------------------------------------------------------


def record(state: Path, i: int, **kw) -> dict:
    return guilog.record_action(state, operator="ana", action="edit", entry=f"e{i}", cli=f"imageworks-models x {i}",
                                ok=True, **kw)


def test_guilog_missing_file_is_empty(tmp_path):
    assert guilog.read_actions(tmp_path / "nowhere") == []


def test_guilog_record_and_read_newest_first(tmp_path):
    state = tmp_path / "state"
    item = record(state, 0, detail="first")
    assert set(item) == {"time", "operator", "action", "entry", "cli", "ok", "detail"}
    for i in range(1, 5):
        record(state, i)
    got = guilog.read_actions(state)
    assert [a["entry"] for a in got] == ["e4", "e3", "e2", "e1", "e0"]
    assert got[-1] == item
    assert [a["entry"] for a in guilog.read_actions(state, limit=2)] == ["e4", "e3"]
    assert len(guilog.read_actions(state, limit=None)) == 5
    doc = json.loads(guilog.log_path(state).read_bytes())
    assert doc["schema_version"] == 1 and [a["entry"] for a in doc["actions"]] == ["e0", "e1", "e2", "e3", "e4"]
    assert guilog.log_path(state).name == "gui_registry_actions.json"


def test_guilog_limit_zero_returns_nothing(tmp_path):
    record(tmp_path, 0)
    assert guilog.read_actions(tmp_path, limit=0) == []


def test_guilog_bounded_to_keep(tmp_path, monkeypatch):
    monkeypatch.setattr(guilog, "KEEP", 3)
    for i in range(7):
        record(tmp_path, i)
    assert [a["entry"] for a in guilog.read_actions(tmp_path, limit=None)] == ["e6", "e5", "e4"]
    assert len(json.loads(guilog.log_path(tmp_path).read_bytes())["actions"]) == 3


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe\x00garbage", b"[1, 2]", b'"text"',
                                     b'{"actions": [1, "x", null]}', b'{"actions": null}'])
def test_guilog_corrupt_file_reads_empty_and_next_record_repairs(tmp_path, content):
    guilog.log_path(tmp_path).write_bytes(content)
    assert guilog.read_actions(tmp_path) == []
    record(tmp_path, 1)
    doc = json.loads(guilog.log_path(tmp_path).read_bytes())
    assert doc["schema_version"] == 1 and [a["entry"] for a in doc["actions"]] == ["e1"]


@pytest.mark.parametrize("content", [b'{"actions": 5}', b'{"actions": true}'])
def test_guilog_actions_of_wrong_type_read_empty(tmp_path, content):
    guilog.log_path(tmp_path).write_bytes(content)
    assert guilog.read_actions(tmp_path) == []


def test_guilog_concurrent_writers_lose_nothing(tmp_path):
    state = tmp_path / "state"
    n_threads, per_thread = 8, 12
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def writer(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                guilog.record_action(state, operator=f"op{t}", action="edit", entry=f"t{t}-{i}", cli="x", ok=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors
    got = guilog.read_actions(state, limit=None)
    assert len(got) == n_threads * per_thread
    assert {a["entry"] for a in got} == {f"t{t}-{i}" for t in range(n_threads) for i in range(per_thread)}
    for t in range(n_threads):  # each writer's own actions stay in order (newest first)
        mine = [a["entry"] for a in got if a["operator"] == f"op{t}"]
        assert mine == [f"t{t}-{i}" for i in reversed(range(per_thread))]


# --- layerdiff -------------------------------------------------------------------------------------


def test_last_changes_without_backup_everything_added(reg):
    out = layerdiff.last_changes()
    assert out["curated"] == {"backup": None, "added": ["alpha", "gamma"], "removed": [], "changed": {}}
    assert out["discovered"] == {"backup": None, "added": ["alpha", "beta", "delta"], "removed": [], "changed": {}}


def test_last_changes_without_any_files(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(tmp_path / "nothing"))
    (tmp_path / "nothing").mkdir()
    out = layerdiff.last_changes()
    for layer in ("curated", "discovered"):
        assert out[layer] == {"backup": None, "added": [], "removed": [], "changed": {}}


def test_last_changes_after_an_edit_shows_exactly_the_changed_entry(reg):
    editing.apply_edit("alpha", {"display_name": "Alpha 2", "license": "mit", "metadata": None},
                       base=base_of("alpha"))
    out = layerdiff.last_changes()
    cur = out["curated"]
    assert cur["backup"] is not None and Path(cur["backup"]).parent == reg / BACKUP_DIR
    assert cur["added"] == [] and cur["removed"] == []
    assert cur["changed"] == {"alpha": {"added": ["license"], "removed": ["metadata"],
                                        "changed": [["display_name", "Alpha", "Alpha 2"]]}}
    assert out["discovered"]["backup"] is None  # the edit did not touch discovered


def test_last_changes_lists_removed_and_added_entries(reg):
    with RegistryStore(reg).edit(backup=True, backup_label="remove") as layers:
        layers.curated.remove("gamma")
        layers.curated.put({"name": "omega", "backend": "ollama"})
    cur = layerdiff.last_changes()["curated"]
    assert cur["removed"] == ["gamma"] and cur["added"] == ["omega"] and cur["changed"] == {}


def test_last_changes_compares_with_the_newest_of_several_backups(reg):
    editing.apply_edit("alpha", {"display_name": "One"}, base=base_of("alpha"))
    editing.apply_edit("gamma", {"display_name": "Gamma 2"}, base=base_of("gamma"))
    assert len([b for b in backups(reg) if b.name.startswith("model_registry.curated.")]) == 2
    cur = layerdiff.last_changes()["curated"]
    assert list(cur["changed"]) == ["gamma"]
    assert cur["changed"]["gamma"]["changed"] == [["display_name", "Gamma", "Gamma 2"]]
    assert cur["backup"] == str(layerdiff.newest_backup(reg / BACKUP_DIR, "model_registry.curated"))


def test_newest_backup_picks_latest_stamp(tmp_path):
    d = tmp_path / "backups"
    d.mkdir()
    names = ["model_registry.curated.20240101T000000000000Z.json",
             "model_registry.curated.20250301T120000000000Z.edit.json",
             "model_registry.curated.20250101T000000000000Z.legacy.json",
             "model_registry.curated.zzz-notes.json",
             "model_registry.discovered.20991231T000000000000Z.json"]
    for n in names:
        (d / n).write_text("{}")
    assert layerdiff.newest_backup(d, "model_registry.curated") == d / names[1]
    assert layerdiff.newest_backup(d, "model_registry.discovered") == d / names[4]
    assert layerdiff.newest_backup(d, "model_registry.other") is None
    assert layerdiff.newest_backup(tmp_path / "missing", "model_registry.curated") is None


def test_entry_diff():
    old = {"name": "a", "x": 1, "y": [1], "gone": True}
    new = {"name": "a", "x": 2, "y": [1], "new": "v"}
    assert layerdiff.entry_diff(old, new) == {"added": ["new"], "removed": ["gone"], "changed": [["x", 1, 2]]}
    assert layerdiff.entry_diff(old, old) == {"added": [], "removed": [], "changed": []}


# --- views: search and export ----------------------------------------------------------------------


@pytest.mark.parametrize("query, text, expected", [
    ("qw vl awq", "qwen2.5-vl-7b-instruct-vllm-awq", True),
    ("QWEN", "qwen2.5-vl", True),
    ("qwen", "Qwen2.5-VL", True),
    ("q w e n", "qwen", True),
    ("  qwen  ", "qwen", True),
    ("ll", "vllm", True),
    ("lll", "vllm", False),
    ("nq", "qwen", False),
    ("awq qwen", "qwen-awq", False),
    ("qwenx", "qwen", False),
    ("", "anything", True),
])
def test_fuzzy_match(query, text, expected):
    assert views.fuzzy_match(query, text) is expected


def make_row(name, display_name=None, aliases=(), **extra):
    return views.row({"name": name, "display_name": display_name, "aliases": list(aliases), **extra})


def test_row_has_aliases():
    r = make_row("a", aliases=["x", "y"])
    assert r["aliases"] == ["x", "y"]
    assert views.row({"name": "b"})["aliases"] == []


def test_search_ranks_exact_then_prefix_then_substring_then_fuzzy():
    rows = [make_row("zeta-qwen"), make_row("alpha-q-w-e-n"), make_row("beta", aliases=["old-qwen"]),
            make_row("delta", display_name="QWEN thing"), make_row("gamma"), make_row("b-qwen-2"),
            make_row("qwen")]
    got = [r["name"] for r in views.search(rows, "qwen")]
    # exact; prefix (of the display name); substrings, the larger share of the text first, ties by name;
    # the letters-apart match last
    assert got == ["qwen", "delta", "b-qwen-2", "beta", "zeta-qwen", "alpha-q-w-e-n"]
    assert [r["name"] for r in views.search(rows, "QWEN")] == got
    assert [r["name"] for r in views.search(rows, "gmm")] == ["gamma"]
    assert views.search(rows, "xyz") == []


def test_search_ignores_separators_and_tolerates_a_typo():
    rows = [make_row("qwen2.5-vl-7b-instruct-awq"), make_row("llama-3-8b"), make_row("mistral-7b")]
    assert [r["name"] for r in views.search(rows, "qwen2.5 vl")] == ["qwen2.5-vl-7b-instruct-awq"]
    assert [r["name"] for r in views.search(rows, "mistarl")] == ["mistral-7b"]  # two letters swapped
    assert [r["name"] for r in views.search(rows, "LLAMA_3")] == ["llama-3-8b"]


def test_search_score_tiers():
    assert views.search_score("qwen", ["qwen"])[0] == 0
    assert views.search_score("qwen", ["Qwen3-4B"])[0] == 1
    assert views.search_score("4b", ["qwen3-4b"])[0] == 2
    assert views.search_score("qwen3-5b", ["qwen3-4b"])[0] == 3  # a close spelling
    assert views.search_score("qw4b", ["qwen3-4b"])[0] == 4  # the letters in order, apart
    assert views.search_score("zzz", ["qwen3-4b"]) is None


def test_a_close_spelling_ranks_before_letters_apart():
    rows = [make_row("q-w-e-n-3-x"), make_row("qwen-3")]
    assert [r["name"] for r in views.search(rows, "qwen 3x")] == ["qwen-3", "q-w-e-n-3-x"]


@pytest.mark.parametrize("query", ["", "   "])
def test_search_empty_query_returns_all_in_order(query):
    rows = [make_row("z"), make_row("a"), make_row("m")]
    assert views.search(rows, query) == rows
    assert views.search(iter(rows), query) == rows


def test_rows_csv_shape_and_escaping():
    rows = [
        make_row("alpha", display_name='Alpha, "the first"', roles=["caption", "chat"], backend="vllm",
                 capabilities={"text": True, "vision": True, "audio": False}),
        make_row("beta", backend="ollama"),
    ]
    text = views.rows_csv(rows)
    parsed = list(csv.reader(io.StringIO(text)))
    assert tuple(parsed[0]) == views.CSV_COLUMNS
    assert len(parsed) == 3
    a = dict(zip(views.CSV_COLUMNS, parsed[1]))
    b = dict(zip(views.CSV_COLUMNS, parsed[2]))
    assert a["display_name"] == 'Alpha, "the first"'
    assert a["roles"] == "caption;chat" and a["capabilities"] == "text;vision"
    assert a["installed"] == "False" and a["active"] == "False"
    assert b["display_name"] == "" and b["served_model_id"] == "" and b["roles"] == "" and b["size_bytes"] == ""
    assert b["backend"] == "ollama"


def test_rows_csv_empty_is_just_the_header():
    assert views.rows_csv([]) == ",".join(views.CSV_COLUMNS) + "\n"


# --- launch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.5.5", "::1", "[::1]", "localhost"])
def test_is_loopback_true(host):
    assert launch.is_loopback(host) is True


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.2", "::", "[::]", "example.com", "", "10.0.0.1"])
def test_is_loopback_false(host):
    assert launch.is_loopback(host) is False


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.2", "::", "example.com"])
def test_check_bind_refuses_non_loopback(host):
    with pytest.raises(ConfigError) as info:
        launch.check_bind(host, allow_remote=False)
    err = info.value
    assert host in err.message and "no login" in err.message
    assert "--allow-remote" in err.hint
    launch.check_bind(host, allow_remote=True)  # explicitly allowed: no error


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_check_bind_allows_loopback(host):
    launch.check_bind(host, allow_remote=False)


def test_streamlit_argv_binds_host_port_headless():
    argv = launch.streamlit_argv("127.0.0.1", 8600)
    assert argv[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(argv[4]) == launch.APP and launch.APP.is_file()

    def opt(name):
        return argv[argv.index(name) + 1]

    assert opt("--server.address") == "127.0.0.1"
    assert opt("--server.port") == "8600"
    assert opt("--server.headless") == "true"
    assert opt("--browser.gatherUsageStats") == "false"
    assert launch.streamlit_argv("::1", 9000)[launch.streamlit_argv("::1", 9000).index("--server.address") + 1] == "::1"


def test_cli_gui_refuses_non_loopback_and_never_starts_streamlit(monkeypatch):
    started = []
    monkeypatch.setattr(os, "execv", lambda *a: started.append(a))
    monkeypatch.setattr(launch, "streamlit_argv", lambda *a: started.append(a) or ["/bin/false"])
    result = run_cli("gui", "--host", "0.0.0.0")
    assert result.exit_code == 1
    assert started == []
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1
    assert "0.0.0.0" in errors[0] and "no login" in errors[0]
    assert any(line.startswith("hint:") and "--allow-remote" in line for line in lines)
    assert "Traceback" not in result.stderr
