"""The read commands (list, show, select, list-roles, stats, config), the three console-script views,
registry-folder resolution, and the shipped default catalog in configs/.

Every test builds its registry on disk in tmp_path, in the project's own file format; an entry is
"installed" when its discovered ``download.path`` is a real folder, and not installed when that folder
is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imageworks_models.registry.store import (CURATED_FILE, DISCOVERED_FILE, MERGED_FILE, RegistryStore,
                                              dump_document)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "configs"

ROW_KEYS = {"name", "display_name", "aliases", "backend", "roles", "capabilities", "locked", "lock_status", "aggregate", "hash_prefix",
            "installed", "active", "served_model_id", "family", "format", "quantization", "path", "location",
            "size_bytes", "deprecated", "testing"}
SELECT_KEYS = {"name", "backend", "endpoint", "served_model_id", "capabilities", "active", "resolved_from", "role",
               "note"}
AGGREGATE = "sha256:" + "ab12cd34ef56" + "0" * 52

VL_BIG = "vl-big-vllm-awq"
VL_SMALL = "vl-small-ollama-gguf-q4_k_m"
CHAT_LMD = "chat-lmdeploy-awq"
EMBED = "embed-ollama-gguf-f16"
EXPERIMENT = "experimental-vllm-safetensors-fp8"
NOPORT = "noport-vllm-safetensors"


# --- building registries on disk ------------------------------------------------------------------


def write_registry(folder: Path, curated: list[dict], discovered: list[dict] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CURATED_FILE).write_bytes(dump_document(list(curated)))
    (folder / DISCOVERED_FILE).write_bytes(dump_document(list(discovered)))
    return folder


def weights(root: Path, name: str) -> str:
    """A real model folder with one file in it: what makes an entry installed."""
    folder = root / "weights" / name
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    return str(folder)


def sample_entries(root: Path) -> tuple[list[dict], list[dict]]:
    curated = [
        {"name": VL_BIG, "display_name": "VL Big (AWQ)", "aliases": ["Org/VL-Big-AWQ"], "backend": "vllm",
         "backend_config": {"port": 24001}, "served_model_id": "Org/VL-Big-AWQ",
         "roles": ["caption", "keywords"], "role_priority": {"caption": 90, "keywords": 50},
         "capabilities": {"text": True, "vision": True}, "family": "vl-big", "format": "awq", "quantization": "awq"},
        {"name": VL_SMALL, "display_name": "VL Small", "aliases": ["vl-small:7b"], "backend": "ollama",
         "backend_config": {"port": 11434}, "served_model_id": "vl-small:7b", "roles": ["caption"],
         "role_priority": {"caption": 90}, "capabilities": {"text": True, "vision": True}, "family": "vl-small",
         "format": "gguf", "quantization": "q4_k_m"},
        {"name": CHAT_LMD, "display_name": "Chat (LMDeploy)", "backend": "lmdeploy",
         "backend_config": {"base_url": "http://gpu-box:23333"}, "served_model_id": "Org/Chat-AWQ",
         "roles": ["chat", "caption"], "role_priority": {"chat": 80, "caption": 95},
         "capabilities": {"text": True, "tools": True}, "family": "chat", "format": "awq", "quantization": "awq"},
        {"name": EMBED, "backend": "ollama", "served_model_id": "embed:latest", "roles": ["embedding"],
         "role_priority": {"embedding": 50}, "capabilities": {"embedding": True}, "format": "gguf",
         "quantization": "f16"},
        {"name": EXPERIMENT, "backend": "vllm", "backend_config": {"host": "10.1.2.3", "port": 24100},
         "roles": ["caption"], "role_priority": {"caption": 20}, "capabilities": {"text": True, "vision": True},
         "format": "safetensors", "quantization": "fp8", "flags": {"testing": True}},
        {"name": NOPORT, "backend": "vllm", "served_model_id": "noport", "roles": ["chat"],
         "role_priority": {"chat": 10}, "capabilities": {"text": True}, "format": "safetensors"},
    ]
    discovered = [
        {"name": VL_BIG, "download": {"path": weights(root, "vl-big"), "location": "local", "size_bytes": 1000},
         "artifacts": {"aggregate": AGGREGATE, "files": []},
         "version_lock": {"locked": True, "expected_aggregate": AGGREGATE}},
        {"name": VL_SMALL, "download": {"path": weights(root, "vl-small"), "location": "nas", "size_bytes": 250}},
        {"name": CHAT_LMD, "download": {"path": str(root / "weights" / "gone"), "location": "local",
                                        "size_bytes": 5000}},
        {"name": EXPERIMENT, "download": {"path": weights(root, "experimental"), "location": "local",
                                          "size_bytes": 7}},
        {"name": NOPORT, "download": {"path": weights(root, "noport"), "location": "local", "size_bytes": 30}},
    ]
    return curated, discovered


@pytest.fixture
def reg(tmp_path) -> Path:
    """The sample registry in <tmp>/configs, so its state folder is <tmp>/_staging."""
    curated, discovered = sample_entries(tmp_path)
    return write_registry(tmp_path / "configs", curated, discovered)


def run_json(cli, *args, prog="imageworks-models"):
    result = cli(*args, "--json", prog=prog)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def names(rows) -> list[str]:
    return [r["name"] for r in rows]


def write_state(state_dir: Path, data) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "active_vllm.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def commands_listed(help_text: str) -> list[str]:
    """The command names in the "Commands:" section of a group's --help."""
    section = help_text.split("Commands:", 1)[1]
    # a command's line starts with two spaces; a wrapped description continues on a line indented further
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line[2:3].strip()]


# --- list -----------------------------------------------------------------------------------------


def test_list_default_shows_installed_non_testing_and_reports_what_it_hid(cli, reg):
    result = cli("--registry-dir", str(reg), "list")
    assert result.exit_code == 0, result.stderr
    shown = [line.split()[0] for line in result.stdout.splitlines()[2:]]
    assert shown == [NOPORT, VL_BIG, VL_SMALL]
    for hidden in (CHAT_LMD, EMBED, EXPERIMENT):
        assert hidden not in result.stdout
    assert "3 entries" in result.stderr
    assert "hidden: 2 not installed (add --include-non-installed), 1 testing (add --include-testing)" in result.stderr


def test_list_include_non_installed_adds_missing_paths_but_not_testing(cli, reg):
    rows = run_json(cli, "--registry-dir", str(reg), "list", "--include-non-installed")
    assert names(rows) == [CHAT_LMD, EMBED, NOPORT, VL_BIG, VL_SMALL]
    by_name = {r["name"]: r for r in rows}
    assert by_name[CHAT_LMD]["installed"] is False  # a download.path that does not exist
    assert by_name[EMBED]["installed"] is False  # no download at all
    assert by_name[VL_BIG]["installed"] is True
    result = cli("--registry-dir", str(reg), "list", "--include-non-installed")
    assert "hidden: 1 testing (add --include-testing)" in result.stderr
    assert "not installed (add" not in result.stderr


def test_list_include_testing_and_both_flags(cli, reg):
    rows = run_json(cli, "--registry-dir", str(reg), "list", "--include-testing")
    assert names(rows) == [EXPERIMENT, NOPORT, VL_BIG, VL_SMALL]
    assert {r["name"]: r["testing"] for r in rows}[EXPERIMENT] is True
    rows = run_json(cli, "--registry-dir", str(reg), "list", "--include-testing", "--include-non-installed")
    assert len(rows) == 6
    result = cli("--registry-dir", str(reg), "list", "--include-testing", "--include-non-installed")
    assert "6 entries" in result.stderr and "hidden" not in result.stderr


def test_list_role_by_role_name_and_by_capability_name(cli, reg):
    rows = run_json(cli, "--registry-dir", str(reg), "list", "--role", "caption", "--include-non-installed")
    assert names(rows) == [CHAT_LMD, VL_BIG, VL_SMALL]
    # "vision" is no entry's role, but it is a capability: entries having it match
    rows = run_json(cli, "--registry-dir", str(reg), "list", "--role", "vision", "--include-non-installed")
    assert names(rows) == [VL_BIG, VL_SMALL]
    rows = run_json(cli, "--registry-dir", str(reg), "list", "--role", "vision", "--include-testing")
    assert names(rows) == [EXPERIMENT, VL_BIG, VL_SMALL]
    rows = run_json(cli, "--registry-dir", str(reg), "list", "--role", "embedding", "--include-non-installed")
    assert names(rows) == [EMBED]
    typo = cli("--registry-dir", str(reg), "list", "--role", "no-such-role", "--json")
    assert typo.exit_code == 64 and "unknown role 'no-such-role'" in typo.stderr and typo.stdout == ""


def test_list_backend_filter(cli, reg):
    rows = run_json(cli, "--registry-dir", str(reg), "list", "--backend", "ollama", "--include-non-installed")
    assert names(rows) == [EMBED, VL_SMALL]
    rows = run_json(cli, "--registry-dir", str(reg), "list", "--backend", "vllm")
    assert names(rows) == [NOPORT, VL_BIG]
    assert all(r["backend"] == "vllm" for r in rows)


def test_list_details_adds_columns(cli, reg):
    plain = cli("--registry-dir", str(reg), "list")
    header = plain.stdout.splitlines()[0].split()
    assert header == ["NAME", "DISPLAY", "NAME", "BACKEND", "ROLES", "CAPABILITIES", "LOCK", "HASH", "INSTALLED",
                      "ACTIVE"]
    detailed = cli("--registry-dir", str(reg), "list", "--details")
    assert detailed.exit_code == 0, detailed.stderr
    header = detailed.stdout.splitlines()[0]
    for column in ("FORMAT", "QUANT", "SIZE", "LOCATION", "SERVED ID", "PATH"):
        assert column in header and column not in plain.stdout.splitlines()[0]
    line = next(x for x in detailed.stdout.splitlines() if x.startswith(VL_BIG))
    cells = line.split()
    assert "locked" in cells and "ab12cd34ef56" in cells  # lock status and hash prefix
    assert cells[-7:] == ["awq", "awq", "1000", "B", "local", "Org/VL-Big-AWQ", str(reg.parent / "weights" / "vl-big")]


def test_list_json_rows_have_exactly_the_documented_keys(cli, reg):
    result = cli("--registry-dir", str(reg), "list", "--json", "--include-non-installed", "--include-testing")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == 6
    for r in rows:
        assert set(r) == ROW_KEYS, r["name"]
    big = {r["name"]: r for r in rows}[VL_BIG]
    assert big == {
        "name": VL_BIG, "display_name": "VL Big (AWQ)", "aliases": ["Org/VL-Big-AWQ"], "backend": "vllm",
        "roles": ["caption", "keywords"],
        "capabilities": ["text", "vision"], "locked": True, "lock_status": "locked", "aggregate": AGGREGATE, "hash_prefix": "ab12cd34ef56",
        "installed": True, "active": False, "served_model_id": "Org/VL-Big-AWQ", "family": "vl-big",
        "format": "awq", "quantization": "awq", "path": str(reg.parent / "weights" / "vl-big"),
        "location": "local", "size_bytes": 1000, "deprecated": False, "testing": False,
    }
    embed = {r["name"]: r for r in rows}[EMBED]
    assert embed["path"] is None and embed["hash_prefix"] is None and embed["locked"] is False


def test_list_json_with_nothing_to_show_is_an_empty_array(cli, tmp_path):
    folder = write_registry(tmp_path / "reg", [{"name": "a-vllm-awq", "backend": "vllm"}])
    result = cli("--registry-dir", str(folder), "list", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert run_json(cli, "--registry-dir", str(folder), "list", "--include-non-installed")[0]["name"] == "a-vllm-awq"


def test_list_active_column_from_state_file_beside_configs(cli, reg):
    # The registry folder is named "configs", so the state folder is its sibling _staging/.
    write_state(reg.parent / "_staging", {"name": VL_BIG, "backend": "vllm", "port": 8000})
    rows = run_json(cli, "--registry-dir", str(reg), "list")
    assert {r["name"]: r["active"] for r in rows} == {NOPORT: False, VL_BIG: True, VL_SMALL: False}
    table_ = cli("--registry-dir", str(reg), "list").stdout
    lines = {x.split()[0]: x.split() for x in table_.splitlines()[2:]}
    assert lines[VL_BIG][-2:] == ["yes", "yes"]  # INSTALLED, ACTIVE
    assert lines[VL_SMALL][-1] == "yes" and lines[VL_SMALL].count("yes") == 1  # installed; ACTIVE blank


def test_list_active_state_nested_in_a_registry_not_named_configs(cli, tmp_path):
    curated, discovered = sample_entries(tmp_path)
    folder = write_registry(tmp_path / "registry", curated, discovered)
    write_state(tmp_path / "_staging", {"name": VL_SMALL})  # the wrong place for this layout: ignored
    rows = run_json(cli, "--registry-dir", str(folder), "list")
    assert not any(r["active"] for r in rows)
    write_state(folder / "_staging", {"name": VL_SMALL})
    rows = run_json(cli, "--registry-dir", str(folder), "list")
    assert [r["name"] for r in rows if r["active"]] == [VL_SMALL]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"pid": 12}'])
def test_list_malformed_state_file_warns_and_still_lists(cli, reg, content):
    path = write_state(reg.parent / "_staging", content)
    result = cli("--registry-dir", str(reg), "list", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert names(rows) == [NOPORT, VL_BIG, VL_SMALL] and not any(r["active"] for r in rows)
    assert "warning: ignoring" in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_registry_dir_is_accepted_after_the_verb_too(cli, reg):
    assert names(run_json(cli, "list", "--registry-dir", str(reg))) == [NOPORT, VL_BIG, VL_SMALL]


# --- show -----------------------------------------------------------------------------------------


def test_show_prints_the_effective_entry_merged_from_both_layers(cli, reg):
    result = cli("--registry-dir", str(reg), "show", VL_BIG)
    assert result.exit_code == 0, result.stderr
    entry = json.loads(result.stdout)
    assert entry["name"] == VL_BIG
    assert entry["backend"] == "vllm" and entry["backend_config"]["port"] == 24001  # curated
    assert entry["download"]["size_bytes"] == 1000  # discovered
    assert entry["version_lock"]["locked"] is True
    assert entry["flags"] == {"deprecated": False, "testing": False}  # schema default


def test_show_by_alias(cli, reg):
    by_alias = json.loads(cli("--registry-dir", str(reg), "show", "Org/VL-Big-AWQ").stdout)
    by_name = json.loads(cli("--registry-dir", str(reg), "show", VL_BIG).stdout)
    assert by_alias == by_name


def test_show_provenance_json_names_each_fields_layer(cli, reg):
    data = run_json(cli, "--registry-dir", str(reg), "show", VL_BIG, "--provenance")
    assert data["entry"]["name"] == VL_BIG
    prov = data["provenance"]
    assert prov["backend"] == "curated"
    assert prov["download"] == "discovered"
    assert prov["license"] == "default"
    assert prov["name"] == "curated+discovered"


def test_show_unknown_name_exits_1_with_a_did_you_mean_hint(cli, reg):
    result = cli("--registry-dir", str(reg), "show", "vl-bigg-vllm-awq")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "error: no entry named 'vl-bigg-vllm-awq'" in result.stderr
    assert f"hint: did you mean {VL_BIG}?" in result.stderr
    assert "Traceback" not in result.stderr


# --- select ---------------------------------------------------------------------------------------


def test_select_by_name_json_shape(cli, reg):
    data = run_json(cli, "--registry-dir", str(reg), "select", VL_SMALL)
    assert set(data) == SELECT_KEYS
    assert data == {"name": VL_SMALL, "backend": "ollama", "endpoint": "http://127.0.0.1:11434/v1",
                    "served_model_id": "vl-small:7b", "capabilities": ["text", "vision"], "active": False,
                    "resolved_from": "name", "role": None, "note": None}


def test_select_by_alias(cli, reg):
    data = run_json(cli, "--registry-dir", str(reg), "select", "Org/VL-Big-AWQ")
    assert data["name"] == VL_BIG
    assert data["resolved_from"] == "alias"
    assert data["endpoint"] == "http://127.0.0.1:24001/v1"
    assert data["served_model_id"] == "Org/VL-Big-AWQ"


def test_select_text_output(cli, reg):
    result = cli("--registry-dir", str(reg), "select", VL_BIG)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert f"name: {VL_BIG}" in lines
    assert "endpoint: http://127.0.0.1:24001/v1" in lines
    assert "capabilities: text,vision" in lines
    assert "resolved_from: name" in lines


def test_select_role_takes_highest_priority(cli, reg):
    data = run_json(cli, "--registry-dir", str(reg), "select", "caption")
    assert data["name"] == CHAT_LMD  # 95 beats 90, 90 and 20
    assert data["resolved_from"] == "role" and data["role"] == "caption"
    data = run_json(cli, "--registry-dir", str(reg), "select", "chat")
    assert data["name"] == CHAT_LMD  # 80 beats 10
    assert data["resolved_from"] == "role" and data["role"] == "chat"
    assert data["endpoint"] == "http://gpu-box:23333/v1"  # lmdeploy: the entry's base_url


def test_select_role_priority_beats_installed_and_installed_breaks_ties(cli, tmp_path):
    def entry(name, prio):
        return {"name": name, "backend": "ollama", "roles": ["caption"], "role_priority": {"caption": prio},
                "capabilities": {"text": True, "vision": True}}

    curated = [entry("a-ollama-gguf", 70), entry("b-ollama-gguf", 70), entry("c-ollama-gguf", 60)]
    discovered = [{"name": "b-ollama-gguf", "download": {"path": weights(tmp_path, "b")}},
                  {"name": "c-ollama-gguf", "download": {"path": weights(tmp_path, "c")}}]
    folder = write_registry(tmp_path / "reg", curated, discovered)
    # a and b tie at 70: b is installed, a is not -> b, although a sorts first by name
    assert run_json(cli, "--registry-dir", str(folder), "select", "caption")["name"] == "b-ollama-gguf"
    # raise a above b: priority wins over installed
    curated[0]["role_priority"]["caption"] = 80
    write_registry(folder, curated, discovered)
    assert run_json(cli, "--registry-dir", str(folder), "select", "caption")["name"] == "a-ollama-gguf"


def test_select_role_with_require_vision_skips_entries_without_it(cli, reg):
    data = run_json(cli, "--registry-dir", str(reg), "select", "caption", "--require", "vision")
    assert data["name"] == VL_BIG  # chat-lmdeploy (95) lacks vision; VL_BIG and VL_SMALL tie at 90 -> name
    assert "vision" in data["capabilities"] and data["role"] == "caption"


def test_select_require_satisfied_by_name_and_synonyms_accepted(cli, reg):
    data = run_json(cli, "--registry-dir", str(reg), "select", CHAT_LMD, "--require", "text,tool_call")
    assert data["name"] == CHAT_LMD
    data = run_json(cli, "--registry-dir", str(reg), "select", VL_BIG, "--require", "vl", "--require", "text")
    assert data["name"] == VL_BIG


def test_select_missing_capability_is_a_capability_error(cli, reg):
    result = cli("--registry-dir", str(reg), "select", CHAT_LMD, "--require", "vision")
    assert result.exit_code == 1
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first == f"error: {CHAT_LMD!r} lacks required capability vision (it has: text, tools)"
    assert "Traceback" not in result.stderr


def test_select_role_where_no_candidate_has_the_capability(cli, reg):
    result = cli("--registry-dir", str(reg), "select", "chat", "--require", "vision,tools")
    assert result.exit_code == 1
    assert "no model for role 'chat' has vision, tools" in result.stderr
    assert f"{CHAT_LMD} lacks vision" in result.stderr
    assert f"{NOPORT} lacks vision, tools" in result.stderr


def test_select_unknown_capability_name(cli, reg):
    # a usage error (exit 64) now: the option's values are a closed set, checked before the command runs
    result = cli("--registry-dir", str(reg), "select", "caption", "--require", "telepathy")
    assert result.exit_code == 64
    assert "unknown capability 'telepathy' (valid: text, vision, audio, embedding, tools, thinking, reasoning)" \
        in result.stderr


def test_select_unknown_target(cli, reg):
    result = cli("--registry-dir", str(reg), "select", "vl-smal-ollama-gguf-q4_k")
    assert result.exit_code == 1
    assert "error: no entry named 'vl-smal-ollama-gguf-q4_k'" in result.stderr
    assert f"did you mean {VL_SMALL}" in result.stderr


def test_select_a_unique_prefix_of_a_name(cli, reg):
    data = run_json(cli, "--registry-dir", str(reg), "select", VL_SMALL[:-2])
    assert data["name"] == VL_SMALL


def test_select_vllm_endpoint_from_host_port_else_the_serving_port(cli, reg, monkeypatch):
    data = run_json(cli, "--registry-dir", str(reg), "select", EXPERIMENT)
    assert data["endpoint"] == "http://10.1.2.3:24100/v1"
    assert run_json(cli, "--registry-dir", str(reg), "select", NOPORT)["endpoint"] == "http://127.0.0.1:8000/v1"
    monkeypatch.setenv("CHAT_PROXY_VLLM_PORT", "9123")
    assert run_json(cli, "--registry-dir", str(reg), "select", NOPORT)["endpoint"] == "http://127.0.0.1:9123/v1"
    # an entry's own port still wins over the serving port
    assert run_json(cli, "--registry-dir", str(reg), "select", VL_BIG)["endpoint"] == "http://127.0.0.1:24001/v1"


@pytest.mark.parametrize("ollama_host, expected", [
    ("0.0.0.0:11434", "http://127.0.0.1:11434/v1"),
    ("0.0.0.0", "http://127.0.0.1:11434/v1"),
    ("http://gpu-box:11500", "http://gpu-box:11500/v1"),
])
def test_select_ollama_endpoint_from_ollama_host(cli, reg, monkeypatch, ollama_host, expected):
    monkeypatch.setenv("OLLAMA_HOST", ollama_host)
    assert run_json(cli, "--registry-dir", str(reg), "select", VL_SMALL)["endpoint"] == expected


def test_select_active_entry_uses_the_state_files_endpoint(cli, reg):
    write_state(reg.parent / "_staging", {"name": VL_BIG, "endpoint": "http://127.0.0.1:8000/v1", "port": 8000})
    data = run_json(cli, "--registry-dir", str(reg), "select", VL_BIG)
    assert data["active"] is True
    assert data["endpoint"] == "http://127.0.0.1:8000/v1"
    other = run_json(cli, "--registry-dir", str(reg), "select", EXPERIMENT)
    assert other["active"] is False and other["endpoint"] == "http://10.1.2.3:24100/v1"


# --- list-roles and stats -------------------------------------------------------------------------


def test_list_roles_json_orders_members_by_priority(cli, reg):
    data = run_json(cli, "--registry-dir", str(reg), "list-roles")
    assert list(data) == ["caption", "chat", "embedding", "keywords"]
    assert [(m["name"], m["priority"]) for m in data["caption"]] == [
        (CHAT_LMD, 95), (VL_BIG, 90), (VL_SMALL, 90), (EXPERIMENT, 20)]
    assert [m["name"] for m in data["chat"]] == [CHAT_LMD, NOPORT]
    member = data["caption"][1]
    assert member == {"name": VL_BIG, "priority": 90, "backend": "vllm", "capabilities": ["text", "vision"],
                      "installed": True}
    assert data["caption"][0]["installed"] is False


def test_list_roles_table_and_show_capabilities(cli, reg):
    plain = cli("--registry-dir", str(reg), "list-roles")
    assert plain.exit_code == 0
    assert plain.stdout.splitlines()[0].split() == ["ROLE", "ENTRY", "PRIORITY", "BACKEND", "INSTALLED"]
    wide = cli("--registry-dir", str(reg), "list-roles", "--show-capabilities")
    assert wide.stdout.splitlines()[0].split()[-1] == "CAPABILITIES"
    line = next(x for x in wide.stdout.splitlines() if x.startswith("embedding"))
    assert line.split() == ["embedding", EMBED, "50", "ollama", "no", "embedding"]


def test_stats_json_numbers(cli, reg):
    s = run_json(cli, "--registry-dir", str(reg), "stats")
    assert s["entries"] == 6
    assert s["installed"] == 4 and s["not_installed"] == 2
    assert s["locked"] == 1
    assert s["disk_bytes"] == 1000 + 250 + 7 + 30  # chat-lmdeploy's 5000 is not on disk
    assert s["by_backend"] == {
        "lmdeploy": {"entries": 1, "installed": 0, "locked": 0, "disk_bytes": 0},
        "ollama": {"entries": 2, "installed": 1, "locked": 0, "disk_bytes": 250},
        "vllm": {"entries": 3, "installed": 3, "locked": 1, "disk_bytes": 1037},
    }
    assert s["by_format"] == {"awq": 2, "gguf": 2, "safetensors": 2}
    assert s["by_quantization"] == {"awq": 2, "f16": 1, "fp8": 1, "none": 1, "q4_k_m": 1}
    assert s["disk_bytes_by_location"] == {"local": 1037, "nas": 250}


def test_stats_text(cli, reg):
    result = cli("--registry-dir", str(reg), "stats")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].split() == [
        "entries:", "6", "installed:", "4", "not", "installed:", "2", "locked:", "1", "disk:", "1.3", "KiB"]


# --- config ---------------------------------------------------------------------------------------


def test_config_defaults(cli, isolated_env):
    data = run_json(cli, "config")
    user_configs = isolated_env / ".local" / "share" / "imageworks-models" / "configs"
    assert data["registry_dir"] == {"value": str(user_configs), "origin": "default", "env": "IMAGEWORKS_REGISTRY_DIR"}
    # a registry folder named "configs" keeps _staging/ and logs/ beside it
    assert data["state_dir"]["value"] == str(user_configs.parent / "_staging")
    assert data["log_dir"]["value"] == str(user_configs.parent / "logs")
    assert data["weights_root"] == {"value": str(isolated_env / "ai-models" / "weights"), "origin": "default",
                                    "env": "IMAGEWORKS_WEIGHTS_ROOT"}
    assert data["lock_timeout"]["value"] == 30.0 and data["vllm_port"]["value"] == 8000
    assert all(v["origin"] == "default" for v in data.values())


def test_config_from_imageworks_toml(cli):
    cwd = Path.cwd()
    (cwd / "imageworks.toml").write_text('weights_root = "models"\nbackup_keep = 3\nlocation = "nas"\n')
    data = run_json(cli, "config")
    origin = f"config file {cwd / 'imageworks.toml'}"
    assert data["weights_root"] == {"value": str(cwd / "models"), "origin": origin, "env": "IMAGEWORKS_WEIGHTS_ROOT"}
    assert data["backup_keep"]["value"] == 3 and data["backup_keep"]["origin"] == origin
    assert data["location"]["value"] == "nas"
    assert data["lock_timeout"]["origin"] == "default"


def test_config_from_pyproject_tool_table(cli):
    cwd = Path.cwd()
    (cwd / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.imageworks]\nlock_timeout = 5\n')
    data = run_json(cli, "config")
    assert data["lock_timeout"] == {"value": 5.0, "origin": f"config file {cwd / 'pyproject.toml'}",
                                    "env": "IMAGEWORKS_LOCK_TIMEOUT"}


def test_config_pyproject_without_our_table_is_not_a_config_file(cli):
    (Path.cwd() / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.other]\nlock_timeout = 5\n')
    result = cli("config")
    assert result.exit_code == 0
    assert "config file: none" in result.stderr
    assert json.loads(cli("config", "--json").stdout)["lock_timeout"]["origin"] == "default"


def test_config_environment_beats_file_and_flag_beats_environment(cli, monkeypatch, tmp_path):
    cwd = Path.cwd()
    (cwd / "imageworks.toml").write_text(f'weights_root = "from-file"\nregistry_dir = "{tmp_path / "file-reg"}"\n')
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(tmp_path / "from-env"))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(tmp_path / "env-reg"))
    data = run_json(cli, "config")
    assert data["weights_root"]["value"] == str(tmp_path / "from-env")
    assert data["weights_root"]["origin"] == "environment IMAGEWORKS_WEIGHTS_ROOT"
    assert data["registry_dir"]["value"] == str(tmp_path / "env-reg")
    assert data["registry_dir"]["origin"] == "environment IMAGEWORKS_REGISTRY_DIR"
    data = run_json(cli, "--registry-dir", str(tmp_path / "flag-reg"), "config")
    assert data["registry_dir"] == {"value": str(tmp_path / "flag-reg"), "origin": "flag",
                                    "env": "IMAGEWORKS_REGISTRY_DIR"}
    # derived folders follow the winning registry folder (not named "configs": nested inside it)
    assert data["state_dir"]["value"] == str(tmp_path / "flag-reg" / "_staging")
    monkeypatch.delenv("IMAGEWORKS_REGISTRY_DIR")
    data = run_json(cli, "config")
    assert data["registry_dir"]["value"] == str(tmp_path / "file-reg")
    assert data["registry_dir"]["origin"].startswith("config file ")


def test_config_text_table(cli, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_BACKUP_KEEP", "4")
    result = cli("config")
    assert result.exit_code == 0
    line = next(x for x in result.stdout.splitlines() if x.startswith("backup_keep"))
    assert line.split() == ["backup_keep", "4", "environment", "IMAGEWORKS_BACKUP_KEEP"]


def test_config_unknown_key_in_imageworks_toml(cli):
    (Path.cwd() / "imageworks.toml").write_text('weight_root = "x"\n')
    result = cli("config")
    assert result.exit_code == 1
    assert "unknown setting 'weight_root'" in result.stderr
    assert "did you mean 'weights_root'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_bad_value_is_one_clear_line(cli, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_LOCK_TIMEOUT", "abc")
    result = cli("config")
    assert result.exit_code == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: environment IMAGEWORKS_LOCK_TIMEOUT: lock_timeout = 'abc' is not a number"]
    assert "Traceback" not in result.stderr
    # every command reports it the same way, not only config
    listing = cli("list")
    assert listing.exit_code == 1 and "IMAGEWORKS_LOCK_TIMEOUT" in listing.stderr


# --- which registry folder ------------------------------------------------------------------------


def test_configs_in_cwd_is_used_when_it_holds_registry_files(cli, isolated_env):
    write_registry(Path.cwd() / "configs", [{"name": "local-vllm-awq", "backend": "vllm"}])
    rows = run_json(cli, "list", "--include-non-installed")
    assert names(rows) == ["local-vllm-awq"]
    assert run_json(cli, "config")["registry_dir"]["origin"] == "found ./configs"
    assert not (isolated_env / ".local" / "share" / "imageworks-models").exists()


def test_fresh_machine_seeds_the_user_folder_with_the_shipped_catalog(cli, isolated_env):
    (Path.cwd() / "configs").mkdir()  # an empty ./configs holds no registry: not used
    user_configs = isolated_env / ".local" / "share" / "imageworks-models" / "configs"
    assert not user_configs.exists()
    rows = run_json(cli, "list", "--include-non-installed")
    assert (user_configs / CURATED_FILE).read_bytes() == (SHIPPED / CURATED_FILE).read_bytes()
    assert (user_configs / DISCOVERED_FILE).read_bytes() == (SHIPPED / DISCOVERED_FILE).read_bytes()
    assert len(rows) >= 8
    assert sum("vision" in r["capabilities"] for r in rows) >= 2
    assert sum("embedding" in r["capabilities"] for r in rows) >= 1
    assert {"vllm", "ollama", "lmdeploy"} <= {r["backend"] for r in rows}
    assert not any(r["installed"] for r in rows)
    # nothing is installed on a fresh machine: the default list is empty and says why
    result = cli("list")
    assert result.exit_code == 0 and result.stdout == ""
    assert f"hidden: {len(rows)} not installed" in result.stderr


def test_an_explicit_registry_folder_is_never_seeded(cli, tmp_path, monkeypatch):
    empty = tmp_path / "mine"
    empty.mkdir()
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(empty))
    assert run_json(cli, "list", "--include-non-installed") == []
    assert not (empty / CURATED_FILE).exists()


def test_shipped_catalog_answers_the_help_examples(cli):
    data = run_json(cli, "select", "caption", "--require", "vision")
    assert "vision" in data["capabilities"] and data["resolved_from"] == "role"
    shown = cli("show", "qwen2.5-vl-7b-vllm-awq", "--provenance")
    assert shown.exit_code == 0, shown.stderr
    rows = run_json(cli, "list", "--role", "vision", "--include-non-installed", prog="imageworks-loader")
    assert len(rows) >= 2


# --- the three console scripts --------------------------------------------------------------------


def test_loader_help_lists_only_its_existing_verbs(cli):
    result = cli("--help", prog="imageworks-loader")
    assert result.exit_code == 0
    assert commands_listed(result.stdout) == ["activate-model", "current-model", "discover-all", "ingest-local-hf",
                                              "list", "lock", "purge-imported", "rebuild-ollama", "select", "sync",
                                              "unlock", "verify"]
    assert "Examples:" in result.stdout


def test_download_help_lists_only_its_existing_verbs(cli):
    result = cli("--help", prog="imageworks-download")
    assert result.exit_code == 0
    assert commands_listed(result.stdout) == ["backfill-ollama-paths", "config", "download", "import-ollama", "list",
                                              "list-roles", "normalize-formats", "prune-deprecated", "prune-duplicates",
                                              "purge-logical-only", "remove", "reset-discovered", "restore-ollama",
                                              "scan", "stats", "verify"]


def test_models_help_lists_every_command(cli):
    result = cli("--help", prog="imageworks-models")
    assert result.exit_code == 0
    assert commands_listed(result.stdout) == ["activate-model", "backfill-ollama-paths", "check-updates", "config",
                                              "current-model",
                                              "discover-all", "doctor",
                                              "download", "export", "fit", "gateway", "gui", "health", "import",
                                              "import-ollama",
                                              "ingest-local-hf", "list",
                                              "list-roles", "lock", "normalize-formats", "plugins", "prune-deprecated",
                                              "prune-duplicates", "purge-imported", "purge-logical-only",
                                              "rebuild-ollama", "remove",
                                              "reset-discovered", "restore-ollama", "scan", "select", "show", "stats",
                                              "sync", "unlock", "verify"]


@pytest.mark.parametrize("prog, verb", [
    ("imageworks-loader", "stats"), ("imageworks-loader", "show"), ("imageworks-loader", "config"),
    ("imageworks-download", "show"), ("imageworks-download", "select"), ("imageworks-download", "plugins"),
    ("imageworks-models", "no-such-verb"),
])
def test_a_verb_outside_a_view_is_no_such_command(cli, prog, verb):
    result = cli(verb, prog=prog)
    assert result.exit_code == 64  # a usage error (EX_USAGE), never 2, verify's divergence code
    assert f"No such command '{verb}'" in result.stderr


def test_views_run_the_same_command(cli, reg):
    expected = run_json(cli, "--registry-dir", str(reg), "list", "--include-non-installed")
    for prog in ("imageworks-loader", "imageworks-download"):
        assert run_json(cli, "--registry-dir", str(reg), "list", "--include-non-installed", prog=prog) == expected


def test_real_console_script_runs(reg):
    script = Path(sys.executable).parent / "imageworks-models"
    assert script.is_file()
    proc = subprocess.run([str(script), "--registry-dir", str(reg), "list", "--json", "--include-non-installed"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert names(json.loads(proc.stdout)) == [CHAT_LMD, EMBED, NOPORT, VL_BIG, VL_SMALL]
    proc = subprocess.run([str(script), "--registry-dir", str(reg), "show", "nope"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: no entry named 'nope'")
    version = subprocess.run([str(Path(sys.executable).parent / "imageworks-loader"), "--version"],
                             capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and re.fullmatch(r"imageworks-loader \d+\.\d+\.\d+\S*\n", version.stdout)


def _visible_commands(prog: str) -> list[str]:
    from imageworks_models.present.commands import COMMANDS, visible_in

    view = visible_in(prog)
    return [name for name in COMMANDS if view is None or name in view]


@pytest.mark.parametrize("prog, verb", [(p, v) for p in ("imageworks-models", "imageworks-loader",
                                                          "imageworks-download") for v in _visible_commands(p)])
def test_every_command_help_has_examples(cli, prog, verb):
    result = cli(verb, "--help", prog=prog)
    assert result.exit_code == 0, result.stderr
    assert "Examples:" in result.stdout
    examples = result.stdout.split("Examples:", 1)[1]
    assert re.search(r"imageworks-(models|loader|download) " + re.escape(verb), examples)


@pytest.mark.parametrize("prog", ["imageworks-models", "imageworks-loader", "imageworks-download"])
def test_group_help_has_examples(cli, prog):
    result = cli("--help", prog=prog)
    assert "Examples:" in result.stdout and f"  {prog} " in result.stdout.split("Examples:", 1)[1]


# --- the shipped default registry -----------------------------------------------------------------


@pytest.fixture
def shipped_copy(tmp_path) -> Path:
    dest = tmp_path / "shipped"
    dest.mkdir()
    for name in (CURATED_FILE, DISCOVERED_FILE, MERGED_FILE):
        shutil.copyfile(SHIPPED / name, dest / name)
    return dest


def test_shipped_registry_is_three_small_files():
    assert sorted(p.name for p in SHIPPED.glob("*.json")) == sorted([CURATED_FILE, DISCOVERED_FILE, MERGED_FILE])
    for name in (CURATED_FILE, DISCOVERED_FILE, MERGED_FILE):
        assert (SHIPPED / name).stat().st_size < 40 * 1024


def test_shipped_snapshot_is_current(shipped_copy):
    store = RegistryStore(shipped_copy)
    registry = store.load()
    assert registry.from_snapshot is True
    fresh = store.load(use_snapshot=False)
    assert registry.entries == fresh.entries
    assert len(registry) == 12


def test_shipped_layers_are_canonical_and_survive_an_unchanged_save(shipped_copy):
    before = {name: (shipped_copy / name).read_bytes() for name in (CURATED_FILE, DISCOVERED_FILE, MERGED_FILE)}
    store = RegistryStore(shipped_copy)
    with store.edit() as layers:
        # what the tool would write for these entries is exactly what is shipped
        assert layers.curated.to_bytes() == before[CURATED_FILE]
        assert layers.discovered.to_bytes() == before[DISCOVERED_FILE]
        assert not layers.discovered.entries
    after = {name: (shipped_copy / name).read_bytes() for name in before}
    assert after == before


def test_shipped_entries_follow_the_naming_rule_and_hold_no_install_facts():
    doc = json.loads((SHIPPED / CURATED_FILE).read_text(encoding="utf-8"))
    names_ = [e["name"] for e in doc["entries"]]
    assert len(names_) == len(set(names_)) == 12
    aliases = [a for e in doc["entries"] for a in e.get("aliases", [])]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & set(names_)
    for e in doc["entries"]:
        quant = e.get("quantization")
        suffix = f"-{quant}" if quant and quant != e["format"] else ""
        expected = f"{e['family']}-{e['backend']}-{e['format']}{suffix}"
        assert e["name"] == expected == expected.lower()
        assert not {"download", "artifacts", "version_lock"} & set(e)
        assert "commit" not in e["source"]
        assert e["source"]["provider"] in ("hf", "ollama")
        assert e["license"] and e["display_name"] and e["served_model_id"] and e["roles"]
        assert set(e["role_priority"]) == set(e["roles"])
        assert e["capabilities"] and all(v is True for v in e["capabilities"].values())
        if e["backend"] == "ollama":
            tag = f"{e['source']['repo_id']}:{e['source']['revision']}"
            assert e["served_model_id"] == tag and tag in e["aliases"]
        else:
            repo = e["source"]["repo_id"]
            assert e["source"]["revision"] == "main"
            assert e["backend_config"]["model_path"] == f"~/ai-models/weights/{repo}"
            assert repo in e["aliases"]
    vllm_ports = [e["backend_config"]["port"] for e in doc["entries"] if e["backend"] in ("vllm", "lmdeploy")]
    assert len(vllm_ports) == len(set(vllm_ports))  # no two local servers claim one port
