"""The Models page (``gui/pages/2_🎯_Models.py``) driven with Streamlit's ``AppTest`` against a real registry.

Every test builds a registry the way a user gets one: real model files (a BF16 safetensors folder and a GGUF
file, see ``modelfiles.py``) registered by the real ``scan``, plus curated overlays (roles, display names,
aliases) and two curated-only entries (an lmdeploy embedder that is not installed, and a testing-flagged
placeholder). The page reads its settings from the environment on each run, so the environment is set before
the ``AppTest`` is created. What is checked is what a user or another program can see: the page's elements,
the registry files (byte for byte where nothing may change), the files on disk, and the GUI action log.

Activation runs the vLLM plugin's stand-in server (``plugins/vllm/tests/standin_server.py``) on a free port;
the fixture stops it and checks no stand-in process is left.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import pytest
from modelfiles import write_bf16, write_gguf
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

import imageworks_models.gui
from imageworks_models.gui.actionlog import read_actions
from imageworks_models.registry.store import CURATED_FILE, DISCOVERED_FILE, RegistryStore
from imageworks_models.testing import run_cli

VLLM_TESTS = Path(__file__).resolve().parents[2] / "plugins" / "vllm" / "tests"
if str(VLLM_TESTS) not in sys.path:  # --import-mode=importlib: the stand-in helpers are imported by name
    sys.path.insert(0, str(VLLM_TESTS))

from orchestration import (STANDIN_COMMAND, free_port, reap_orphans, standin_processes,  # noqa: E402
                           wait_until, zombies_of)

PAGE = Path(imageworks_models.gui.__file__).with_name("pages") / "2_🎯_Models.py"

BF16 = "qwen3-4b-vllm-safetensors-bf16"  # scanned, with a curated overlay (display name, roles, an alias)
GGUF = "qwen3-8b-vllm-gguf-q4_k_m"  # scanned, discovered only
EMBED = "bge-embedder"  # curated only, lmdeploy, not installed
SCRATCH = "scratch-experiment"  # curated only, flagged testing
ALIAS = "zebra-helper"  # BF16's alias: no name or display name fuzzily matches "zebra"
DISPLAY = "Qwen Three Small"


# --- the registry ---------------------------------------------------------------------------------------


class Env:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.reg = tmp / "configs"
        self.weights = tmp / "weights"
        self.state = tmp / "_staging"  # beside the "configs" folder
        self.bf16 = self.weights / "Qwen3-4B"
        self.gguf = self.weights / "Qwen3-8B-Q4_K_M.gguf"

    def layer(self, file: str) -> dict[str, dict]:
        doc = json.loads((self.reg / file).read_text(encoding="utf-8"))
        return {e["name"]: e for e in doc["entries"]}

    def curated(self, name: str) -> dict | None:
        return self.layer(CURATED_FILE).get(name)

    def discovered(self, name: str) -> dict | None:
        return self.layer(DISCOVERED_FILE).get(name)

    def names(self) -> set[str]:
        return set(self.layer(CURATED_FILE)) | set(self.layer(DISCOVERED_FILE))

    def snapshot(self) -> dict[str, bytes]:
        """Every file under the registry folder (backups included; lock files left out)."""
        return {str(p.relative_to(self.reg)): p.read_bytes() for p in sorted(self.reg.rglob("*"))
                if p.is_file() and not p.name.startswith(".")}

    def put(self, *, curated: tuple[dict, ...] = (), discovered: tuple[dict, ...] = ()) -> None:
        with RegistryStore(self.reg).edit() as layers:
            for entry in curated:
                layers.curated.put(entry)
            for entry in discovered:
                layers.discovered.put(entry)

    def update_curated(self, name: str, **fields) -> None:
        """Change an entry's curated part behind the page's back (another user or process)."""
        with RegistryStore(self.reg).edit() as layers:
            entry = dict(layers.curated.get(name) or {"name": name})
            entry.update(fields)
            layers.curated.remove(name)
            layers.curated.put(entry)

    def actions(self) -> list[dict]:
        """The GUI action log, oldest first."""
        return list(reversed(read_actions(self.state, limit=None)))


@pytest.fixture
def env(tmp_path, monkeypatch) -> Env:
    e = Env(tmp_path)
    e.reg.mkdir()
    e.bf16.mkdir(parents=True)
    (e.bf16 / "config.json").write_text(json.dumps({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                                                    "torch_dtype": "bfloat16"}))
    write_bf16(e.bf16 / "model.safetensors")
    write_gguf(e.gguf, 15)  # 15: Q4_K_M
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(e.reg))
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(e.weights))
    monkeypatch.setenv("IMAGEWORKS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")  # nothing listens: the probe fails fast
    result = run_cli("scan", "--base", str(e.weights), prog="imageworks-download")
    assert result.exit_code == 0, result.stderr
    assert e.discovered(BF16) and e.discovered(GGUF), result.stdout
    e.put(curated=({"name": BF16, "display_name": DISPLAY, "roles": ["chat", "tools"], "aliases": [ALIAS]},
                   {"name": EMBED, "backend": "lmdeploy", "roles": ["embedding"]},
                   {"name": SCRATCH, "backend": "vllm", "roles": ["chat"], "flags": {"testing": True}}))
    return e


# --- driving the page -------------------------------------------------------------------------------------


def page(view: str | None = None) -> AppTest:
    """The page as a new visitor sees it; ``view`` opens another tab (only the open tab's content runs)."""
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    if view:
        at.session_state["view"] = view
    at.run()
    assert not at.exception, [x.value for x in at.exception]
    return at


BROWSE, DOWNLOAD, MAINTENANCE, ADVANCED = "📚 Browse & Manage", "📥 Download & Import", "🔧 Registry Maintenance", "⚙️ Advanced Operations"


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [x.value for x in at.exception]
    return at


def table(at: AppTest) -> list[dict]:
    frame = at.dataframe[0].value  # the first table on the page (an empty one has no columns)
    assert frame.empty or "Logical Name" in frame.columns, frame
    return frame.to_dict("records")


def shown(at: AppTest) -> list[str]:
    return [r["Logical Name"] for r in table(at)]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def select(at: AppTest, name: str) -> AppTest:
    return ok(at.selectbox(key="selected").select(name).run())


def open_edit(at: AppTest, name: str) -> AppTest:
    """Select ``name`` and open its "Edit entry" dialog."""
    at = select(at, name)
    return ok(at.button(key="edit_open").click().run())


def save(at: AppTest) -> AppTest:
    """Press "Save to curated" and, when the diff is shown with its question, "Confirm save"."""
    at = ok(at.button(key="edit_save").click().run())
    if [b for b in at.button if b.key == "edit_confirm"]:
        assert [w for w in texts(at.warning) if w.endswith("change(s) to the curated layer?")], texts(at.warning)
        at = ok(at.button(key="edit_confirm").click().run())
    return at


def settle(at: AppTest, timeout: float = 60) -> AppTest:
    """Rerun while an activation or stop runs in the background (what the page's poll does every second)."""
    import time

    deadline = time.monotonic() + timeout
    while at.session_state["job"] if "job" in at.session_state else False:
        assert time.monotonic() < deadline, "the action did not finish"
        time.sleep(0.3)
        at = ok(at.run())
    return at


def set_operator(at: AppTest, name: str) -> AppTest:
    return ok(at.text_input(key="operator").input(name).run())


# --- loading, the table, filters and search -------------------------------------------------------------


def test_page_loads_and_the_table_matches_the_registry(env):
    at = page()

    rows = {r["Logical Name"]: r for r in table(at)}
    assert set(rows) == {BF16, GGUF, EMBED}  # the testing placeholder is hidden by default
    assert "3 of 4 entries" in texts(at.caption)
    bf16 = rows[BF16]
    assert (bf16["Display Name"], bf16["Backend"], bf16["Roles"], bf16["Installed?"], bf16["Lock"]) == \
        (DISPLAY, "vllm", "chat, tools", "✅", "")
    assert bf16["Hash"] == env.discovered(BF16)["artifacts"]["aggregate"].split(":", 1)[1][:12]
    assert rows[GGUF]["Backend"] == "vllm" and rows[GGUF]["Installed?"] == "✅"
    assert (rows[EMBED]["Backend"], rows[EMBED]["Roles"], rows[EMBED]["Installed?"]) == ("lmdeploy", "embedding", "✗")
    assert all(r["Active?"] == "" for r in rows.values())
    assert at.selectbox(key="selected").options == list(rows)


def test_a_card_for_each_loaded_backend_from_the_plugins(env):
    from imageworks_models.pluginhost.manager import get_plugins

    at = page()
    cards = {}
    for m in texts(at.markdown):
        head = m.split("**")[1] if m.startswith("**") else ""
        dot, _, name = head.partition(" ")
        if dot in ("🟢", "🔴", "⚪") and name != "gateway":
            cards[name] = dot
    loaded = get_plugins().backends
    assert list(cards) == list(loaded) and "llamacpp" in cards  # llama.cpp's card too: none is hard-coded
    for name, record in loaded.items():  # nothing active: what the orchestrator starts is white, not red
        if record.activates:
            assert cards[name] == "⚪", (name, cards)
    assert cards["ollama"] == "🔴"  # OLLAMA_HOST names a port nobody listens on
    assert [c for c in texts(at.caption) if c.startswith("offline: ")], texts(at.caption)


def test_the_csv_export_holds_the_filtered_rows(env, monkeypatch):
    exported: list[bytes] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        if filename == "models.csv":
            exported.append(path_or_data)
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    at = page()
    at = ok(at.selectbox(key="f_backend").select("vllm").run())

    rows = list(csv.DictReader(io.StringIO(exported[-1].decode())))
    assert [r["name"] for r in rows] == shown(at) and set(shown(at)) == {BF16, GGUF}
    bf16 = next(r for r in rows if r["name"] == BF16)
    assert (bf16["display_name"], bf16["roles"], bf16["installed"]) == (DISPLAY, "chat;tools", "True")


def test_the_backend_filter(env):
    at = page()
    assert at.selectbox(key="f_backend").options == ["(all)", "lmdeploy", "vllm"]

    at = ok(at.selectbox(key="f_backend").select("lmdeploy").run())
    assert shown(at) == [EMBED] and "1 of 4 entries" in texts(at.caption)

    at = ok(at.selectbox(key="f_backend").select("vllm").run())
    assert sorted(shown(at)) == sorted([BF16, GGUF])


def test_the_role_filter_keeps_entries_with_any_chosen_role(env):
    at = page()
    assert at.multiselect(key="f_roles").options == ["chat", "embedding", "tools"]

    at = ok(at.multiselect(key="f_roles").set_value(["embedding"]).run())
    assert shown(at) == [EMBED]

    at = ok(at.multiselect(key="f_roles").set_value(["tools", "embedding"]).run())
    assert sorted(shown(at)) == sorted([BF16, EMBED])


def test_the_lock_status_filter(env):
    result = run_cli("lock", GGUF, "--set-expected", prog="imageworks-loader")
    assert result.exit_code == 0, result.stderr
    at = page()
    assert {r["Logical Name"]: r["Lock"] for r in table(at)}[GGUF] == "🔒"

    at = ok(at.selectbox(key="f_lock").select("locked").run())
    assert shown(at) == [GGUF]

    at = ok(at.selectbox(key="f_lock").select("unlocked").run())
    assert sorted(shown(at)) == sorted([BF16, EMBED])

    at = ok(at.selectbox(key="f_lock").select("drift").run())
    assert shown(at) == [] and "No entry matches the filters." in texts(at.info)


def test_testing_entries_are_hidden_until_asked_for_and_not_installed_can_be_hidden(env):
    at = page()
    assert SCRATCH not in shown(at)

    at = ok(at.toggle(key="f_testing").set_value(True).run())
    assert SCRATCH in shown(at) and "4 of 4 entries" in texts(at.caption)

    at = ok(at.toggle(key="f_all").set_value(False).run())  # SCRATCH and EMBED have no files
    assert sorted(shown(at)) == sorted([BF16, GGUF])


def test_fuzzy_search_over_names_and_aliases(env):
    at = page()

    at = ok(at.text_input(key="search").input("qw 8b").run())
    assert shown(at) == [GGUF]

    at = ok(at.text_input(key="search").input("zebra").run())  # only BF16's alias matches
    assert shown(at) == [BF16] and "1 of 4 entries" in texts(at.caption)

    at = ok(at.text_input(key="search").input("three small").run())  # the display name
    assert shown(at) == [BF16]


def test_a_search_matching_nothing_says_so(env):
    at = page()

    at = ok(at.text_input(key="search").input("xyzzy").run())

    assert shown(at) == []
    assert "No entry matches the filters." in texts(at.info)
    assert "0 of 4 entries" in texts(at.caption)
    assert not [b for b in at.button if b.key in ("activate", "verify", "toggle_lock")]  # no drawer


# --- the action drawer ----------------------------------------------------------------------------------


def test_verify_reports_intact_files_then_a_modified_file_and_logs_each_run(env):
    at = select(set_operator(page(), "alice"), BF16)

    at = ok(at.button(key="verify").click().run())
    assert f"verify {BF16}: ok" in texts(at.success) and not at.error
    assert f"CLI equivalent: `imageworks-models verify {BF16} --quick`" in texts(at.caption)

    weights = env.bf16 / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    weights.write_bytes(bytes(data))
    at = ok(at.button(key="verify").click().run())
    assert [e for e in texts(at.error) if e.startswith(f"verify {BF16}: diverged")], texts(at.error)
    assert not [s for s in texts(at.success) if s.startswith("verify")]

    log = env.actions()
    assert [(a["operator"], a["action"], a["entry"], a["cli"]) for a in log] == \
        [("alice", "verify", BF16, f"imageworks-models verify {BF16} --quick")] * 2
    assert [a["ok"] for a in log] == [True, False]  # the divergence is a failure, as the CLI's exit 2
    assert all(a["time"] for a in log)
    recent = [d.value for d in at.dataframe if "Operator" in d.value.columns]
    assert recent and list(recent[0]["Action"]) == ["verify", "verify"]


def test_toggle_lock_locks_then_unlocks_the_discovered_layer_only(env):
    at = select(set_operator(page(), "bob"), BF16)
    curated_before = (env.reg / CURATED_FILE).read_bytes()

    at = ok(at.button(key="toggle_lock").click().run())
    lock = env.discovered(BF16)["version_lock"]
    assert lock["locked"] is True and lock["expected_aggregate"] == env.discovered(BF16)["artifacts"]["aggregate"]
    assert {r["Logical Name"]: r["Lock"] for r in table(at)}[BF16] == "🔒"

    at = ok(at.button(key="toggle_lock").click().run())
    assert env.discovered(BF16)["version_lock"]["locked"] is False
    assert {r["Logical Name"]: r["Lock"] for r in table(at)}[BF16] == ""

    assert (env.reg / CURATED_FILE).read_bytes() == curated_before
    assert "version_lock" not in env.curated(BF16)
    assert [(a["operator"], a["action"], a["entry"], a["cli"], a["ok"]) for a in env.actions()] == [
        ("bob", "lock", BF16, f"imageworks-models lock {BF16} --set-expected --quick", True),
        ("bob", "unlock", BF16, f"imageworks-models unlock {BF16}", True)]


# --- activation through the stand-in server --------------------------------------------------------------


@pytest.fixture
def serving(env, monkeypatch):
    """BF16 served by the stand-in on a free port; afterwards nothing may be left running."""
    from imageworks_models.serving.activation import stop
    from imageworks_models.settings import load_settings

    port = free_port()
    for key, value in {"IMAGEWORKS_VLLM_BIN": STANDIN_COMMAND, "CHAT_PROXY_VLLM_PORT": str(port),
                       "CHAT_PROXY_VLLM_SINGLE_PORT": "1", "IMAGEWORKS_STOP_GRACE": "2",
                       "IMAGEWORKS_ACTIVATION_TIMEOUT": "30"}.items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("STANDIN_")]:
        monkeypatch.delenv(key)
    env.update_curated(BF16, backend_config={"model_path": str(env.bf16)})
    zombies_before = set(zombies_of(os.getpid()))
    yield port
    try:
        stop(settings=load_settings())
    finally:
        left = standin_processes()
        for pid in left:
            try:
                os.killpg(os.getpgid(pid), 9)
            except (ProcessLookupError, PermissionError):
                pass
        wait_until(lambda: not standin_processes(), 5)
        reap_orphans(set(left) | (set(zombies_of(os.getpid())) - zombies_before))
    assert not left, f"stand-in processes left running: {left}"


def active_state(env: Env) -> dict | None:
    try:
        return json.loads((env.state / "active_vllm.json").read_text())
    except FileNotFoundError:
        return None


def test_activate_asks_first_and_cancel_starts_nothing(env, serving):
    at = select(page(), BF16)

    at = ok(at.button(key="activate").click().run())
    assert texts(at.warning) == [f"Run `imageworks-models activate-model {BF16}`?"]
    assert not standin_processes() and not (active_state(env) or {}).get("pid")

    at = ok(at.button(key="confirm_no").click().run())
    assert not at.warning and not [b for b in at.button if b.key == "confirm_yes"]
    assert not standin_processes() and env.actions() == []


def test_activate_confirmed_starts_the_server_and_stop_stops_it(env, serving):
    at = select(set_operator(page(), "carol"), BF16)

    at = ok(at.button(key="activate").click().run())
    at = ok(at.button(key="confirm_yes").click().run())
    assert [s for s in at.status if s.label == f"Activating… {BF16}"] or "job" not in at.session_state  # or already done (the page pops its job)
    at = settle(at)

    endpoint = f"http://127.0.0.1:{serving}/v1"
    assert [(s.icon, s.value) for s in at.success] == [("✅", f"{BF16} is active at {endpoint}")], texts(at.error)
    assert f"CLI equivalent: `imageworks-models activate-model {BF16}`" in texts(at.caption)
    assert standin_processes() and active_state(env)["name"] == BF16
    at = ok(at.run())
    assert {r["Logical Name"]: r["Active?"] for r in table(at)} == {BF16: "✅", GGUF: "", EMBED: ""}

    at = ok(at.button(key="stop").click().run())
    assert texts(at.warning) == [f"Run `imageworks-models activate-model {BF16} --stop`?"]
    assert standin_processes()  # nothing stops before the confirmation
    at = settle(ok(at.button(key="confirm_yes").click().run()))
    assert f"stopped {BF16}" in texts(at.success)
    assert wait_until(lambda: not standin_processes(), 5)
    at = ok(at.run())
    assert all(r["Active?"] == "" for r in table(at))

    assert [(a["operator"], a["action"], a["cli"], a["ok"]) for a in env.actions()] == [
        ("carol", "activate", f"imageworks-models activate-model {BF16}", True),
        ("carol", "stop", f"imageworks-models activate-model {BF16} --stop", True)]


def test_a_failed_activation_shows_the_error_and_logs_it(env, serving, monkeypatch, tmp_path):
    monkeypatch.setenv("IMAGEWORKS_VLLM_BIN", str(tmp_path / "no-such-vllm"))
    at = select(page(), BF16)

    at = ok(at.button(key="activate").click().run())
    at = settle(ok(at.button(key="confirm_yes").click().run()))

    errors = texts(at.error)
    assert len(errors) == 1 and str(tmp_path / "no-such-vllm") in errors[0] and "IMAGEWORKS_VLLM_BIN" in errors[0]
    assert not [s for s in texts(at.success) if "is active" in s]
    assert not standin_processes()
    (entry,) = env.actions()
    assert (entry["action"], entry["entry"], entry["cli"], entry["ok"]) == \
        ("activate", BF16, f"imageworks-models activate-model {BF16}", False)
    assert "no-such-vllm" in entry["detail"]


# --- editing --------------------------------------------------------------------------------------------


def edit_key(name: str, field: str) -> str:
    return f"edit_{name}_{field}"


def test_preview_shows_the_diff_and_writes_nothing(env):
    at = open_edit(page(), BF16)
    before = env.snapshot()

    at.text_input(key=edit_key(BF16, "display_name")).input("Qwen Renamed")
    at.text_input(key=edit_key(BF16, "roles")).input("chat, vision-helper")
    at = ok(at.button(key="edit_preview").click().run())

    diffs = [d.value for d in at.dataframe if list(d.value.columns) == ["Field", "Old", "New"]]
    assert len(diffs) == 1
    assert diffs[0].to_dict("records") == [
        {"Field": "display_name", "Old": json.dumps(DISPLAY), "New": json.dumps("Qwen Renamed")},
        {"Field": "roles", "Old": json.dumps(["chat", "tools"]), "New": json.dumps(["chat", "vision-helper"])}]
    assert env.snapshot() == before and env.actions() == []


def test_save_writes_only_the_curated_layer(env):
    at = open_edit(set_operator(page(), "dora"), BF16)
    discovered_before = (env.reg / DISCOVERED_FILE).read_bytes()

    at.text_input(key=edit_key(BF16, "display_name")).input("Qwen Renamed")
    at.text_input(key=edit_key(BF16, "roles")).input("chat, vision-helper")
    at = save(at)

    assert f"saved 2 field(s) of {BF16} to the curated layer" in texts(at.success), texts(at.error)
    assert env.curated(BF16) == {"name": BF16, "display_name": "Qwen Renamed", "roles": ["chat", "vision-helper"],
                                 "aliases": [ALIAS]}
    assert (env.reg / DISCOVERED_FILE).read_bytes() == discovered_before
    (entry,) = env.actions()
    assert (entry["operator"], entry["action"], entry["entry"], entry["ok"]) == ("dora", "edit", BF16, True)
    at = ok(at.run())
    assert {r["Logical Name"]: r["Display Name"] for r in table(at)}[BF16] == "Qwen Renamed"


def test_invalid_backend_config_json_is_a_field_error_and_nothing_is_written(env):
    at = open_edit(page(), BF16)
    before = env.snapshot()

    at.text_input(key=edit_key(BF16, "display_name")).input("Qwen Renamed")
    at.text_area(key=edit_key(BF16, "backend_config")).input('{"model_path": ')
    at = save(at)

    errors = texts(at.error)
    assert len(errors) == 1 and errors[0].startswith("backend_config: not JSON"), errors
    assert not at.success and env.snapshot() == before and env.actions() == []


def test_invalid_backend_name_is_a_field_error_and_nothing_is_written(env):
    at = open_edit(page(), BF16)
    before = env.snapshot()

    at.text_input(key=edit_key(BF16, "backend")).input("Not A Backend!")
    at = save(at)

    errors = texts(at.error)
    assert len(errors) == 1 and errors[0].startswith("backend: "), errors
    assert not at.success and env.snapshot() == before and env.actions() == []


def test_several_invalid_fields_are_each_reported_and_nothing_is_written(env):
    at = open_edit(page(), BF16)
    before = env.snapshot()

    at.text_input(key=edit_key(BF16, "backend")).input("Not A Backend!")
    at.text_input(key=edit_key(BF16, "served")).input("-served")
    at.text_area(key=edit_key(BF16, "metadata")).input("[1, 2")
    at = ok(at.button(key="edit_preview").click().run())

    errors = texts(at.error)
    assert [e.split(":", 1)[0] for e in errors] == ["served_model_id", "backend", "metadata"], errors
    assert errors[2].startswith("metadata: not JSON")
    assert env.snapshot() == before


def test_capabilities_are_chosen_from_the_canonical_keys_and_saved_as_flags(env):
    at = open_edit(page(), BF16)
    caps = at.multiselect(key=edit_key(BF16, "caps"))
    assert caps.options == ["text", "vision", "audio", "embedding", "tools", "thinking", "reasoning"]
    assert caps.value == ["text"]  # what the scan found

    caps.set_value(["text", "vision", "telepathy"])  # not an option: never reaches the page
    at = save(at)

    assert not at.error, texts(at.error)
    assert env.curated(BF16)["capabilities"] == {"text": True, "vision": True}


def test_a_stale_edit_is_refused_and_the_file_is_unchanged(env):
    at = open_edit(page(), BF16)
    env.update_curated(BF16, display_name="Changed Elsewhere")  # someone else saves meanwhile
    before = env.snapshot()

    at.text_input(key=edit_key(BF16, "roles")).input("chat")
    at = save(at)

    errors = texts(at.error)
    assert len(errors) == 1 and "changed since you opened it" in errors[0] and "reload" in errors[0], errors
    assert not at.success and env.snapshot() == before
    (entry,) = env.actions()
    assert (entry["action"], entry["ok"]) == ("edit", False)


def test_after_a_stale_refusal_reload_lets_the_edit_be_made_again(env):
    at = open_edit(page(), BF16)
    env.update_curated(BF16, display_name="Changed Elsewhere")
    at.text_input(key=edit_key(BF16, "roles")).input("chat")
    at = save(at)
    assert "changed since you opened it" in texts(at.error)[0]

    at = ok(at.button(key="reload").click().run())  # "reload the entry, then make your edit again"
    assert not [t for t in at.text_input if t.key == edit_key(BF16, "roles")]  # the reload closed the form
    at = ok(at.button(key="edit_open").click().run())
    at.text_input(key=edit_key(BF16, "roles")).input("chat, writer")
    at = save(at)

    assert not at.error, texts(at.error)
    assert env.curated(BF16)["roles"] == ["chat", "writer"]
    assert env.curated(BF16)["display_name"] == "Changed Elsewhere"


def test_an_edit_after_the_pages_own_verify_is_saved(env):
    at = open_edit(page(), BF16)
    at = ok(at.button(key="verify").click().run())
    assert f"verify {BF16}: ok" in texts(at.success)

    at.text_input(key=edit_key(BF16, "roles")).input("chat")
    at = save(at)

    assert not at.error, texts(at.error)
    assert env.curated(BF16)["roles"] == ["chat"]


def test_the_diff_viewer_shows_the_last_edit(env):
    at = open_edit(page(), BF16)
    at.text_input(key=edit_key(BF16, "display_name")).input("Qwen Renamed")
    at = save(at)
    assert not at.error, texts(at.error)

    at = ok(at.run())

    backups = sorted((env.reg / "backups").glob("model_registry.curated.*.edit.json"))
    assert len(backups) == 1
    assert [m for m in texts(at.markdown) if m == f"**curated** (against {backups[0]})"]
    codes = [c for c in texts(at.code) if f"~ {BF16}" in c]
    assert codes == [f"~ {BF16}\n    ~ display_name: {json.dumps(DISPLAY)} → \"Qwen Renamed\""], texts(at.code)


# --- the import wizard ----------------------------------------------------------------------------------


def test_the_import_wizard_gives_a_discovered_entry_a_curated_overlay(env):
    at = ok(page().button(key="import_open").click().run())
    assert at.selectbox(key="wizard_entry").options == [GGUF]  # BF16 already has a curated part
    discovered_before = (env.reg / DISCOVERED_FILE).read_bytes()

    at.selectbox(key="wizard_entry").select(GGUF)
    at.text_input(key="wizard_roles").input("chat, summarize")
    at.text_input(key="wizard_served").input("Qwen/Qwen3-8B-GGUF")
    at = ok(at.button(key="wizard_apply").click().run())

    assert f"{GGUF} now has a curated overlay" in texts(at.success), texts(at.error)
    curated = env.curated(GGUF)
    assert curated["roles"] == ["chat", "summarize"] and curated["served_model_id"] == "Qwen/Qwen3-8B-GGUF"
    assert (env.reg / DISCOVERED_FILE).read_bytes() == discovered_before
    assert env.actions()[-1]["action"] == "import-discovered" and env.actions()[-1]["entry"] == GGUF

    at = ok(at.run())  # the wizard stays open until closed
    assert not [s for s in at.selectbox if s.key == "wizard_entry"]
    assert "Every discovered entry already has a curated overlay." in texts(at.caption)
    assert {r["Logical Name"]: r["Roles"] for r in table(at)}[GGUF] == "chat, summarize"


# --- the downloader's tabs ------------------------------------------------------------------------------


def report_rows(at: AppTest, column: str = "action") -> list[dict]:
    frames = [d.value for d in at.dataframe if column in d.value.columns and "name" in d.value.columns]
    assert len(frames) == 1, [list(d.value.columns) for d in at.dataframe]
    return frames[0].to_dict("records")


def test_scan_is_a_dry_run_by_default(env):
    write_gguf(env.weights / "Llama-3-8B-Q8_0.gguf", 7)  # 7: Q8_0, not registered yet
    at = page(DOWNLOAD)
    before = env.snapshot()
    assert at.toggle(key="scan_dry").value is True
    assert at.text_input(key="scan_base").value == str(env.weights)

    at = ok(at.button(key="scan_go").click().run())

    added = [r["name"] for r in report_rows(at) if r["action"] == "add"]
    assert added == ["llama-3-8b-vllm-gguf-q8_0"]
    assert [c for c in texts(at.caption) if c.endswith("; dry run, nothing was written")]
    assert env.snapshot() == before
    assert env.actions()[-1]["cli"] == f"imageworks-models scan --base {env.weights} --dry-run"


def test_normalize_dry_run_writes_nothing(env):
    at = page(MAINTENANCE)
    before = env.snapshot()
    assert at.toggle(key="nz_apply").value is False

    at = ok(at.button(key="nz_go").click().run())

    assert not at.error, texts(at.error)
    assert [c for c in texts(at.caption) if c.endswith("dry run, nothing was written")], texts(at.caption)
    assert env.snapshot() == before
    assert env.actions()[-1]["cli"] == "imageworks-models normalize-formats --dry-run"


COPY = GGUF + "-copy"  # the longer name: the one prune-duplicates would remove


def test_reset_discovered_dry_run_from_the_cleanup_tab_writes_nothing(env):
    at = page(MAINTENANCE)
    before = env.snapshot()
    at = ok(at.selectbox(key="cl_which").select("reset-discovered").run())
    at = ok(at.text_input(key="cl_backend").input("vllm").run())

    at = ok(at.button(key="cl_go").click().run())

    rows = report_rows(at)
    # BF16's curated part names no backend of its own, so its discovered part stays
    assert {(r["action"], r["name"]) for r in rows} == {("remove", GGUF), ("skip", BF16)}
    assert env.snapshot() == before
    assert env.actions()[-1]["cli"] == "imageworks-models reset-discovered --backend vllm --dry-run"


def test_restore_ollama_needs_a_backup_to_choose(env):
    at = page(MAINTENANCE)

    at = ok(at.selectbox(key="cl_which").select("restore-ollama").run())

    assert at.selectbox(key="cl_backup").options == []
    assert at.button(key="cl_go").disabled


def test_purge_imported_from_the_cleanup_tab_applies_only_when_dry_run_is_off(env):
    at = page(MAINTENANCE)
    at = ok(at.selectbox(key="cl_which").select("purge-imported").run())
    before = env.snapshot()
    at = ok(at.button(key="cl_go").click().run())
    assert env.snapshot() == before
    assert env.actions()[-1]["cli"] == "imageworks-models purge-imported --providers all"

    at = ok(at.toggle(key="cl_dry").set_value(False).run())
    at = ok(at.button(key="cl_go").click().run())

    assert env.actions()[-1]["cli"] == "imageworks-models purge-imported --providers all --apply"
    assert env.snapshot() != before


def test_prune_duplicates_dry_run_lists_the_duplicate_and_writes_nothing(env):
    env.put(discovered=({"name": COPY, "backend": "vllm", "download": {"path": str(env.gguf)}},))
    at = page(MAINTENANCE)
    before = env.snapshot()
    assert at.selectbox(key="cl_which").value == "prune-duplicates" and at.toggle(key="cl_dry").value is True

    at = ok(at.button(key="cl_go").click().run())

    rows = report_rows(at)
    assert [(r["action"], r["name"]) for r in rows] == [("remove", COPY)]
    assert [c for c in texts(at.caption) if c.endswith("dry run, nothing was written")], texts(at.caption)
    assert env.snapshot() == before and COPY in env.names()
    assert env.actions()[-1]["cli"] == "imageworks-models prune-duplicates --dry-run"


def test_the_verify_tab_checks_the_chosen_entries(env):
    at = page(ADVANCED)

    at = ok(at.multiselect(key="vf_names").set_value([BF16]).run())
    at = ok(at.button(key="vf_go").click().run())

    rows = report_rows(at, column="status")
    assert [(r["name"], r["status"]) for r in rows] == [(BF16, "ok")]
    assert env.actions()[-1]["cli"] == f"imageworks-models verify {BF16} --quick"


def test_remove_metadata_only_keeps_the_files(env):
    at = page(ADVANCED)
    at.selectbox(key="rm_name").select(GGUF)
    assert at.radio(key="rm_mode").value == "metadata only"
    assert not [c for c in at.checkbox if c.key == "rm_sure"]

    at = ok(at.button(key="rm_go").click().run())

    assert GGUF not in env.names() and env.gguf.is_file()
    assert "removed the entry from the registry" in texts(at.markdown)
    assert env.actions()[-1]["cli"] == f"imageworks-models remove {GGUF} --force"
    at.session_state["view"] = BROWSE
    at = ok(at.run())
    assert GGUF not in shown(at) and "2 of 3 entries" in texts(at.caption)


def test_remove_files_only_needs_the_confirmation_checkbox(env):
    at = page(ADVANCED)
    at.selectbox(key="rm_name").select(GGUF)
    at = ok(at.radio(key="rm_mode").set_value("files only").run())
    assert at.button(key="rm_go").disabled is True

    at = ok(at.checkbox(key="rm_sure").check().run())
    assert at.button(key="rm_go").disabled is False
    at = ok(at.button(key="rm_go").click().run())

    assert not env.gguf.exists() and GGUF in env.names()
    assert env.actions()[-1]["cli"] == f"imageworks-models remove {GGUF} --delete-files --force"
    at.session_state["view"] = BROWSE
    at = ok(at.run())
    assert {r["Logical Name"]: r["Installed?"] for r in table(at)}[GGUF] == "✗"


# --- a broken registry ----------------------------------------------------------------------------------


def test_a_malformed_curated_file_shows_one_clear_error(env):
    (env.reg / CURATED_FILE).write_text('{"entries": [ {"name": ', encoding="utf-8")

    at = page()

    errors = texts(at.error)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{env.reg / CURATED_FILE}:1:") and "invalid JSON" in errors[0], errors
    assert "hint: " in errors[0]
    # no table and no action on a registry that cannot be read; only Reload, to try again once it is fixed
    assert not at.dataframe and [b.key for b in at.button] == ["reload"]


# --- a big registry ---------------------------------------------------------------------------------------


def test_a_big_registry_paints_the_table_first_then_the_drawer(env):
    env.put(curated=tuple({"name": f"bulk-{i:04d}", "backend": "vllm"} for i in range(600)))

    at = page()  # the first run: the table alone

    assert len(table(at)) == 603 and "603 of 604 entries" in texts(at.caption)  # the testing one hidden
    assert "Loading the action drawer…" in texts(at.caption)
    assert not [b for b in at.button if b.key == "activate"]

    at = ok(at.run())  # what the browser's first fragment tick does: the rest of the page comes

    assert [b for b in at.button if b.key == "activate"] and "Loading the action drawer…" not in texts(at.caption)
    assert [m for m in texts(at.markdown) if m.startswith("**Provenance:**")]


def test_an_edit_that_would_share_a_served_id_shows_doctors_warning(env):
    # issue 17 item 7: what `doctor` would report after the save is shown before it is written
    at = open_edit(page(), BF16)
    at.text_input(key=edit_key(BF16, "served")).input(GGUF)  # GGUF's served id is its own name
    at = ok(at.button(key="edit_preview").click().run())

    warnings = [w for w in texts(at.warning) if w.startswith("Warning: ")]
    assert warnings and GGUF in warnings[0], texts(at.warning)
