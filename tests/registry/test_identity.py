"""One model, one entry (issue 16), through the CLI with real safetensors and GGUF files: the attachment rules
(path, source, name), conflicts that name both sides, stable GGUF identity, curated ``model_path`` entries,
locks that survive a purge and a rediscovery, every shipped catalog entry planned, and the names people type.

Ollama's store has its own file (tests/acquire/test_identity_store.py); downloads theirs
(tests/acquire/test_identity_download.py); the README's walk-through is tests/acquire/test_identity_readme.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from modelfiles import make_models, write_bf16, write_gguf

from imageworks_models.registry.store import RegistryStore
from imageworks_models.testing import make_registry, run_cli

_MATCH_VIEW = RegistryStore.match_view  # the real one (a fixture below replaces it for half of the runs)

REPO = Path(__file__).resolve().parents[2]
BF16_NAME = "qwen3-4b-vllm-safetensors-bf16"
AWQ_NAME = "mistral-7b-instruct-vllm-awq"
GGUF_NAME = "qwen3-8b-vllm-gguf-q4_k_m"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cli(*args: str):
    return run_cli(*args, prog="imageworks-models")


def ok(*args: str):
    result = cli(*args)
    assert result.exit_code == 0, result.stderr + result.stdout
    return result


def ok_json(*args: str):
    return json.loads(ok(*args, "--json").stdout)


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def discovered(reg: Path) -> dict[str, dict]:
    path = reg / "model_registry.discovered.json"
    return {e["name"]: e for e in json.loads(path.read_text())["entries"]} if path.exists() else {}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and not p.name.startswith(".")}


def scan(base: Path, *more: str) -> dict:
    return ok_json("scan", "--base", str(base), *more)


def rows_named(data: dict, name: str) -> list[dict]:
    return [r for r in data["rows"] if r["name"] == name]


@pytest.fixture(autouse=True, params=["snapshot view", "loaded registry"])
def matching_from(request, monkeypatch):
    """Every test here runs twice: a scan matching against the current snapshot's identity rows (the MatchView a
    scan uses, which reads an entry only when it matches), and against the loaded registry. Both must agree."""
    used: list[bool] = []
    real = _MATCH_VIEW
    if request.param == "loaded registry":
        monkeypatch.setattr(RegistryStore, "match_view", lambda self: used.append(False))
    else:
        monkeypatch.setattr(RegistryStore, "match_view", lambda self: used.append(True) or real(self))
    return used


@pytest.fixture
def env(tmp_path, monkeypatch):
    reg = tmp_path / "registry"
    reg.mkdir()
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(reg))
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(weights))
    monkeypatch.setenv("IMAGEWORKS_CACHE_DIR", str(tmp_path / "cache"))
    return reg, weights


def hf_cache_repo(root: Path, repo_id: str, commit: str = COMMIT) -> Path:
    """``models--org--name/snapshots/<commit>`` with a BF16 model, and ``refs/main`` pointing at it."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                                                  "torch_dtype": "bfloat16"}))
    write_bf16(snap / "model.safetensors")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snap


# -- (a) path ---------------------------------------------------------------------------------------------


def test_a_curated_model_path_is_installed_and_verify_lock_show_stats_treat_its_files(env, tmp_path):
    reg, weights = env
    models = make_models(weights)
    make_registry(reg, {"name": "my-qwen", "backend": "vllm", "backend_config": {"model_path": str(models["bf16"])}})

    [row] = [r for r in ok_json("list") if r["name"] == "my-qwen"]
    assert row["installed"] is True and row["path"] == str(models["bf16"])
    assert ok_json("verify", "my-qwen")["results"][0]["status"] in ("ok", "recorded")
    locked = ok_json("lock", "my-qwen", "--set-expected")
    assert locked[0]["locked"] is True if isinstance(locked, list) else True
    entry = ok_json("show", "my-qwen")
    assert entry["version_lock"]["locked"] is True
    assert entry["artifacts"]["files"] and entry["download"]["size_bytes"] > 0
    stats = ok_json("stats")
    assert stats["installed"] >= 1
    ok("unlock", "my-qwen")
    assert not ok_json("show", "my-qwen").get("version_lock", {}).get("locked")


def test_scan_of_a_curated_model_path_attaches_instead_of_adding_a_second_entry(env, tmp_path, monkeypatch):
    reg, weights = env
    models = make_models(weights)
    monkeypatch.setenv("MODELS_HOME", str(weights))
    make_registry(reg, {"name": "my-qwen", "backend": "vllm", "roles": ["chat"],
                        "backend_config": {"model_path": "$MODELS_HOME/Qwen3-4B"}})

    data = scan(weights)

    [row] = [r for r in data["rows"] if r["path"] == str(models["bf16"])]
    assert row["name"] == "my-qwen" and row["action"] == "update", row
    assert "matched by path" in row["reason"]
    assert BF16_NAME not in discovered(reg)
    part = discovered(reg)["my-qwen"]
    assert not {"backend", "roles", "backend_config"} & set(part)  # the curated fields are never rewritten
    assert part["download"]["path"] == str(models["bf16"]) and part["artifacts"]["files"]
    assert ok_json("show", "my-qwen")["roles"] == ["chat"]
    again = scan(weights)
    assert [r["action"] for r in again["rows"] if r["path"] == str(models["bf16"])] == ["exists"]


def test_a_curated_model_path_that_does_not_exist_is_one_clear_line(env):
    reg, _ = env
    make_registry(reg, {"name": "ghost", "backend": "vllm", "backend_config": {"model_path": "/nowhere/ghost"}})
    before = snapshot(reg)

    result = cli("verify", "ghost")

    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "/nowhere/ghost does not exist" in line and "model_path" in line
    assert "hint:" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(reg) == before
    [row] = [r for r in ok_json("list", "--include-non-installed") if r["name"] == "ghost"]
    assert row["installed"] is False


# -- (b) source ---------------------------------------------------------------------------------------------


def test_a_found_model_of_a_registered_source_attaches_to_that_entry(env):
    reg, weights = env
    hf_cache_repo(weights / "hub", "org/Qwen3-4B")
    make_registry(reg, {"name": "house-qwen", "backend": "vllm", "source": {"provider": "hf", "repo_id": "Org/Qwen3-4B"}})

    data = scan(weights / "hub")

    [row] = data["rows"]
    assert row["name"] == "house-qwen" and row["action"] == "update" and "matched by source" in row["reason"]
    assert set(discovered(reg)) == {"house-qwen"}
    assert discovered(reg)["house-qwen"]["source"]["commit"] == COMMIT


def test_a_source_registered_twice_is_refused_naming_both_entries(env):
    reg, weights = env
    hf_cache_repo(weights / "hub", "org/Qwen3-4B")
    source = {"provider": "hf", "repo_id": "org/Qwen3-4B"}
    make_registry(reg, {"name": "one", "backend": "vllm", "source": source},
                  {"name": "two", "backend": "vllm", "source": source})
    before = snapshot(reg)

    data = ok_json("scan", "--base", str(weights / "hub"), "--dry-run")
    [row] = data["rows"]
    assert row["action"] == "conflict"
    assert "one" in row["reason"] and "two" in row["reason"] and "registered twice" in row["reason"]
    scan(weights / "hub")
    assert discovered(reg) == {} and snapshot(reg)["model_registry.curated.json"] == \
        before["model_registry.curated.json"]


# -- (c) name -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("curated", [
    {"name": AWQ_NAME, "backend": "vllm", "roles": ["chat"]},
    {"name": "house-mistral", "backend": "vllm", "aliases": [AWQ_NAME.upper()]},  # an alias, any case
])
def test_a_catalog_entry_without_files_gets_the_files_of_its_name(env, curated):
    reg, weights = env
    models = make_models(weights)
    make_registry(reg, curated)

    data = scan(weights)

    [row] = [r for r in data["rows"] if r["path"] == str(models["awq"])]
    assert row["name"] == curated["name"] and row["action"] == "update" and "matched by name" in row["reason"]
    assert AWQ_NAME not in discovered(reg) or curated["name"] == AWQ_NAME
    assert discovered(reg)[curated["name"]]["download"]["path"] == str(models["awq"])


def test_an_alias_shared_by_two_entries_is_refused_naming_both(env):
    reg, weights = env
    make_models(weights)
    make_registry(reg, {"name": "a", "backend": "vllm", "aliases": [BF16_NAME]},
                  {"name": "b", "backend": "vllm", "aliases": [BF16_NAME]})

    data = scan(weights)

    [row] = [r for r in data["rows"] if r["name"] in ("a", "b") or r["action"] == "conflict"]
    assert row["action"] == "conflict" and "a, b" in row["reason"] and "aliases" in row["reason"]
    assert "a" not in discovered(reg) and "b" not in discovered(reg) and BF16_NAME not in discovered(reg)
    shown = cli("show", BF16_NAME)
    assert shown.exit_code == 1 and "matches 2 entries" in shown.stderr and "a, b" in shown.stderr


# -- conflicts are different files ---------------------------------------------------------------------------


def test_two_folders_claiming_one_name_conflict_naming_both_paths(env):
    reg, weights = env
    first = make_models(weights / "disk1")["bf16"]
    second = make_models(weights / "disk2")["bf16"]
    scan(weights / "disk1")
    before = snapshot(reg)

    data = scan(weights / "disk2")

    [row] = [r for r in data["rows"] if r["path"] == str(second)]
    assert row["action"] == "conflict"
    assert str(first) in row["reason"] and str(second) in row["reason"] and "--name" in row["reason"]
    assert discovered(reg)[BF16_NAME]["download"]["path"] == str(first)
    assert snapshot(reg)["model_registry.discovered.json"] != b"" and \
        discovered(reg)[BF16_NAME] == json.loads(before["model_registry.discovered.json"])["entries"][
            [e["name"] for e in json.loads(before["model_registry.discovered.json"])["entries"]].index(BF16_NAME)]


def test_files_moved_to_a_new_place_attach_to_their_entry(env):
    reg, weights = env
    old = make_models(weights / "old")["bf16"]
    scan(weights / "old")
    shutil.rmtree(weights / "old")
    new = make_models(weights / "new")["bf16"]

    data = scan(weights / "new")

    [row] = [r for r in data["rows"] if r["path"] == str(new)]
    assert row["name"] == BF16_NAME and row["action"] == "update", row
    assert discovered(reg)[BF16_NAME]["download"]["path"] == str(new) != str(old)


# -- stable identity -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("first, second", [("parent", "folder"), ("folder", "parent")])
def test_one_gguf_file_is_one_entry_from_any_root(env, first, second):
    reg, weights = env
    folder = weights / "gguf"
    folder.mkdir()
    write_gguf(folder / "Qwen3-8B-Q4_K_M.gguf", 15)
    roots = {"parent": weights, "folder": folder}

    one = scan(roots[first])
    two = scan(roots[second])

    [a] = rows_named(one, GGUF_NAME)
    [b] = rows_named(two, GGUF_NAME)
    assert a["path"] == b["path"] == str(folder / "Qwen3-8B-Q4_K_M.gguf")
    assert a["action"] == "add" and b["action"] == "exists"
    assert [n for n in discovered(reg) if "gguf" in n] == [GGUF_NAME]


def test_a_gguf_folder_with_its_projector_is_served_by_its_gguf_file(env):
    reg, weights = env
    folder = weights / "Qwen3-VL-GGUF"
    folder.mkdir()
    write_gguf(folder / "Qwen3-8B-Q4_K_M.gguf", 15)
    write_gguf(folder / "mmproj-Qwen3-8B-F16.gguf", 1)

    data = scan(weights)
    [row] = [r for r in data["rows"] if r["action"] == "add"]
    assert row["path"] == str(folder)  # the projector makes the folder the model
    plan = ok_json("activate-model", row["name"], "--dry-run")

    model_arg = plan["command"][plan["command"].index("serve") + 1]
    assert model_arg == str(folder / "Qwen3-8B-Q4_K_M.gguf")


# -- identity survives rediscovery -----------------------------------------------------------------------------


@pytest.mark.parametrize("forget", [("purge-imported", "--providers", "hf", "--apply"),
                                    ("reset-discovered", "--backend", "vllm")])
def test_lock_and_source_survive_forgetting_and_rediscovery(env, forget):
    reg, weights = env
    hf_cache_repo(weights / "hub", "org/Qwen3-4B")
    scan(weights / "hub")
    [name] = discovered(reg)
    ok("lock", name, "--set-expected")
    before = discovered(reg)[name]

    ok(*forget)
    assert name not in discovered(reg)
    state = json.loads((reg / "model_registry.state.json").read_text())
    assert state["remembered"][name]["version_lock"]["locked"] is True

    scan(weights / "hub")
    after = discovered(reg)[name]
    assert after["version_lock"]["locked"] is True
    assert after["version_lock"]["expected_aggregate"] == before["version_lock"]["expected_aggregate"]
    assert after["source"]["repo_id"] == "org/Qwen3-4B" and after["source"]["commit"] == COMMIT
    assert not (reg / "model_registry.state.json").exists()


def test_a_lock_survives_even_when_the_files_come_back_without_their_source(env):
    reg, weights = env
    snap = hf_cache_repo(weights / "hub", "org/Qwen3-4B")
    scan(weights / "hub")
    [name] = discovered(reg)
    ok("lock", name, "--set-expected")
    ok("purge-imported", "--providers", "hf", "--apply")

    ok("scan", "--base", str(snap.parent))  # the snapshot folder seen as a plain folder: no repo id, same path
    [entry] = [e for e in discovered(reg).values() if e["download"]["path"] == str(snap)]
    assert entry["version_lock"]["locked"] is True and entry["source"]["repo_id"] == "org/Qwen3-4B"


# -- every shipped catalog entry can be planned ------------------------------------------------------------------


def _shipped_names() -> list[str]:
    data = json.loads((REPO / "configs" / "model_registry.curated.json").read_text())
    return [e["name"] for e in data["entries"]]


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    reg = tmp_path / "shipped"
    shutil.copytree(REPO / "configs", reg, ignore=shutil.ignore_patterns("backups", ".*"))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(reg))
    return reg


@pytest.mark.parametrize("name", _shipped_names())
def test_every_shipped_catalog_entry_can_be_planned(shipped, name):
    result = cli("activate-model", name, "--dry-run")

    assert result.exit_code == 0, result.stderr
    data = ok_json("activate-model", name, "--dry-run")
    assert data["name"] == name
    if data["backend"] in ("vllm", "lmdeploy"):
        assert data["files_missing"]  # this machine has none of the catalog's weights
        assert "would be refused until they are downloaded" in result.stdout
        flags = [a.split("=", 1)[0] for a in data["command"] if a.startswith("--")]
        assert len(flags) == len(set(flags)), data["command"]  # no flag twice (an engine's own flags included)


# -- names people type -----------------------------------------------------------------------------------------


@pytest.fixture
def named(env):
    reg, weights = env
    models = make_models(weights)
    make_registry(reg, {"name": "qwen3-8b-ollama-gguf-q4_k_m", "backend": "ollama", "served_model_id": "qwen3:8b",
                        "source": {"provider": "ollama", "repo_id": "qwen3", "revision": "8b"}},
                  {"name": "house-qwen", "backend": "vllm", "aliases": ["hq"],
                   "served_model_id": "Qwen/Qwen3-4B-Instruct", "source": {"provider": "hf", "repo_id": "Qwen/Qwen3-4B"},
                   "backend_config": {"model_path": str(models["bf16"])}},
                  {"name": "house-mistral", "backend": "vllm", "backend_config": {"model_path": str(models["awq"])}})
    return reg


@pytest.mark.parametrize("typed", ["house-qwen", "HOUSE-QWEN", "hq", "Qwen/Qwen3-4B-Instruct", "qwen/qwen3-4b",
                                   "house-q"])
@pytest.mark.parametrize("command", [("select",), ("show",), ("verify",), ("lock", "--set-expected", "--dry-run"),
                                     ("activate-model", "--dry-run"), ("remove", "--dry-run")])
def test_every_command_takes_a_name_alias_served_id_repo_id_or_unique_prefix(named, typed, command):
    result = cli(command[0], typed, *command[1:], "--json")

    assert result.exit_code == 0, result.stderr
    assert "house-qwen" in result.stdout


def test_a_served_id_with_a_tag_selects_its_entry(named):
    assert ok_json("select", "qwen3:8b")["name"] == "qwen3-8b-ollama-gguf-q4_k_m"


def test_an_ambiguous_prefix_lists_the_candidates(named):
    result = cli("show", "house-")

    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "house-mistral" in line and "house-qwen" in line and "matches 2 entries" in line


def test_an_unknown_name_suggests_the_nearest_three(named):
    result = cli("verify", "house-qwne")

    assert result.exit_code == 1
    assert "did you mean house-qwen" in result.stderr
    suggestions = result.stderr.split("did you mean", 1)[1].split("?", 1)[0].split(",")
    assert 1 <= len(suggestions) <= 3


def test_a_curated_entry_gets_its_files_back_after_its_discovered_part_was_reset(env):
    reg, weights = env
    folder = make_models(weights)["bf16"]
    make_registry(reg, {"name": "house-qwen", "backend": "vllm", "roles": ["chat"]})
    ok("scan", "--base", str(weights))  # the files get their rule-made entry...
    with_name = discovered(reg)[BF16_NAME]
    from imageworks_models.registry.store import RegistryStore

    with RegistryStore(reg).edit() as layers:  # ...which a person folds into the curated entry (as the earlier
        layers.discovered.remove(BF16_NAME)   # tool's registries have it: curated name, discovered files)
        layers.discovered.put({**with_name, "name": "house-qwen"})
    ok("lock", "house-qwen", "--set-expected")
    ok("reset-discovered", "--backend", "vllm")
    assert "house-qwen" not in discovered(reg)

    data = scan(weights)

    [row] = [r for r in data["rows"] if r["path"] == str(folder)]
    assert row["name"] == "house-qwen" and row["action"] == "update", row  # not a second, rule-named entry
    part = discovered(reg)["house-qwen"]
    assert part["download"]["path"] == str(folder) and part["version_lock"]["locked"] is True
    assert BF16_NAME not in discovered(reg)


@pytest.mark.parametrize("content", [b'{"schema_version": 1, "remembered": {"a": {"path": NaN}}}', b"{" * 200,
                                     b'{"remembered": {}, "remembered": {}}'])
def test_a_state_file_that_is_not_strict_json_is_never_written_over(env, content):
    reg, weights = env
    hf_cache_repo(weights / "hub", "org/Qwen3-4B")
    scan(weights / "hub")
    [name] = discovered(reg)
    ok("lock", name, "--set-expected")
    (reg / "model_registry.state.json").write_bytes(content)
    before = snapshot(reg)

    result = cli("purge-imported", "--providers", "hf", "--apply")

    assert result.exit_code == 1, result.stdout
    [line] = error_lines(result)
    assert "model_registry.state.json" in line and "Traceback" not in result.stderr
    assert snapshot(reg) == before  # the lock was not dropped unremembered, the state file not replaced


# -- matching from the snapshot ------------------------------------------------------------------------------


def test_a_rescan_against_many_other_entries_reads_none_of_them_and_agrees_with_a_loaded_registry(
        env, matching_from, monkeypatch):
    from imageworks_models.acquire.discovery import scan as scan_fn
    from imageworks_models.registry import store as store_mod
    from imageworks_models.settings import load_settings

    reg, weights = env
    models = make_models(weights)
    others = [{"name": f"other-{i}", "backend": "vllm", "aliases": [f"Other/O{i}"],
               "source": {"provider": "hf", "repo_id": f"Other/O{i}"}} for i in range(40)]
    mine = {"name": "house-awq", "backend": "vllm", "roles": ["chat"], "aliases": [AWQ_NAME]}
    make_registry(reg, *others, mine)
    parsed: list[int] = []
    real_loads = store_mod.orjson.loads
    monkeypatch.setattr(store_mod.orjson, "loads", lambda data: parsed.append(len(data)) or real_loads(data))

    got = scan_fn([weights], dry_run=True, settings=load_settings())

    monkeypatch.setattr(store_mod.orjson, "loads", real_loads)
    if matching_from and matching_from[0]:  # the snapshot view served the scan
        whole = (reg / "model_registry.json").stat().st_size
        assert whole not in parsed
        assert len([n for n in parsed if n < 2000]) <= 2  # house-awq's snapshot line (and its curated part)
    rows = {r.path: (r.action, r.name, r.reason) for r in got.rows}
    assert rows[str(models["awq"])][:2] == ("update", "house-awq")
    view = RegistryStore(reg).match_view()
    if view is not None:
        assert "house-awq" in view.entries and "nobody" not in view.entries
        assert view.entries["house-awq"] == RegistryStore(reg).load().get("house-awq")
        assert dict(view.curated) == RegistryStore(reg).curated_parts()


def test_a_snapshot_views_lazy_entries_behave_as_the_loaded_dict_for_every_dict_use(env):
    import copy

    reg, _ = env
    make_registry(reg, *[{"name": f"m-{i}", "backend": "vllm", "aliases": [f"Org/M{i}"]} for i in range(5)])
    loaded = RegistryStore(reg).load().entries
    view = _MATCH_VIEW(RegistryStore(reg))  # the real one in both halves of the runs
    lazy = view.entries

    assert lazy["m-1"] == loaded["m-1"]  # one read: the others are still unread
    assert lazy == loaded and dict(lazy) == dict(loaded) and copy.deepcopy(lazy) == loaded
    assert len(lazy) == 5 and sorted(lazy) == sorted(loaded) and lazy.get("nobody") is None
    with pytest.raises(TypeError):  # never serialised as only the entries read so far
        json.dumps(view.curated)
    fresh = _MATCH_VIEW(RegistryStore(reg)).entries
    assert fresh.pop("m-3") == loaded["m-3"] and "m-3" not in fresh and len(fresh) == 4
    with pytest.raises(KeyError):
        fresh["m-3"]
    assert fresh.setdefault("m-4", None) == loaded["m-4"]  # a key not yet read is there, not defaulted
    fresh["new"] = {"name": "new"}
    assert list(fresh)[-1] == "new" and len(fresh) == 5


def test_a_snapshot_view_is_refused_when_the_snapshot_is_not_current(env):
    from imageworks_models.registry.store import RegistryStore

    reg, _ = env
    make_registry(reg, {"name": "one", "backend": "vllm"})
    store = RegistryStore(reg)
    assert _MATCH_VIEW(store) is not None  # the snapshot a write leaves is current
    curated = reg / "model_registry.curated.json"
    curated.write_text(curated.read_text().replace('"one"', '"two"'))
    assert _MATCH_VIEW(store) is None  # a hand edit since: the caller loads the registry instead
    store.load()  # ... which rebuilds the snapshot
    assert _MATCH_VIEW(store).rows == {"two": [None, None, None, []]}
    snap = reg / "model_registry.json"
    snap.write_bytes(snap.read_bytes().replace(b'"identity"', b'"identitx"'))
    assert _MATCH_VIEW(store) is None  # a snapshot without identity rows (an earlier version's)


def test_a_snapshot_view_reads_its_entries_from_the_file_its_header_came_from_and_closes_it(env):
    import gc
    import os

    from imageworks_models.errors import RegistryFileError

    reg, _ = env
    make_registry(reg, {"name": "one", "backend": "vllm", "display_name": "First"})
    open_fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    before = open_fds()
    view = _MATCH_VIEW(RegistryStore(reg))
    make_registry(reg, {"name": "one", "backend": "vllm", "display_name": "Second"})  # a save replaces the snapshot
    assert view.entries["one"]["display_name"] == "First"  # the entries of the header it matched by
    assert open_fds() == before  # read once, then closed
    unused = _MATCH_VIEW(RegistryStore(reg))
    assert open_fds() == before + 1
    del unused
    gc.collect()
    assert open_fds() == before  # a view never asked for an entry closes its file when it goes

    snap = reg / "model_registry.json"
    head, _, body = snap.read_bytes().partition(b'"entries": [\n')
    snap.write_bytes(head + b'"entries": [\n' + body.replace(b"\n]}", b',\n{"name":"extra"}\n]}'))
    damaged = _MATCH_VIEW(RegistryStore(reg))
    with pytest.raises(RegistryFileError, match="damaged") as info:
        damaged.entries["one"]
    assert "delete it" in info.value.hint
