"""The Ollama backend end to end: health, activate/stop, the three serving errors, select, and remove.

Every test talks to a real HTTP server, the stand-in Ollama of ollamaserver.py over a real on-disk store
(conftest.py: ``store``, ``ollama_server``), through the official ``ollama`` client, and drives the
commands in-process with ``run_cli``. Entries come from ``import-ollama`` and are found by served id.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ollama
import pytest
from imageworks_models.serving import control as serving
from imageworks_models.errors import (
    BackendNotRunningError,
    BackendTimeoutError,
    ModelNotPulledError,
    ServingError,
)
from imageworks_models.testing import run_cli
from ollamaserver import StandInOllama
from ollamastore import blob_path, find_model, write_model

pytestmark = pytest.mark.usefixtures("imageworks_isolated")  # from imageworks_models.pytest_plugin

DOWNLOAD = "imageworks-download"
LOADER = "imageworks-loader"
THREE = (BackendNotRunningError, ModelNotPulledError, BackendTimeoutError)


# --- helpers ---------------------------------------------------------------------------------------------------


def cli(*args: str, prog: str = "imageworks-models"):
    return run_cli(*args, prog=prog)


def import_store() -> None:
    result = cli("import-ollama", prog=DOWNLOAD)
    assert result.exit_code == 0, result.stderr


def name_of(served_id: str) -> str:
    """The registry entry whose served id is ``served_id`` (every entry, installed or not)."""
    result = cli("list", "--json", "--include-non-installed")
    assert result.exit_code == 0, result.stderr
    names = [e["name"] for e in json.loads(result.stdout) if e["served_model_id"] == served_id]
    assert len(names) == 1, result.stdout
    return names[0]


def show(name: str) -> dict:
    result = cli("show", name, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def qwen3(store: Path, *, alias: bool = False) -> str:
    """Write qwen3:8b (and qwen3:latest on the same blob: one entry, the alias), import, return the entry."""
    info = write_model(store, "qwen3", "8b")
    if alias:
        write_model(store, "qwen3", "latest", model_blob=info.model_digest)
    import_store()
    return name_of("qwen3:8b")


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (the registry's lock file aside) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".model_registry.lock"}


def registry(tmp_path: Path) -> dict[str, bytes]:
    return files(tmp_path / "registry")


def generate_bodies(server: StandInOllama) -> list[dict]:
    return [body for method, path, body in server.requests if (method, path) == ("POST", "/api/generate")]


def ps(server: StandInOllama) -> list[str]:
    with ollama.Client(host=server.url) as client:
        return [m.model for m in client.ps().models]


def health_rows(result) -> list[dict]:
    return [row for row in json.loads(result.stdout) if row["backend"] == "ollama"]


def assert_one_error(result, *needles: str, hint: str) -> tuple[str, str]:
    """Exit 1, nothing on stdout, and on stderr exactly ``error: ...`` (with every needle) then ``hint: ...``."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert hint in lines[1], lines[1]
    return lines[0], lines[1]


# --- health ----------------------------------------------------------------------------------------------------


def test_health_json_reports_version_url_and_no_loaded_model(ollama_server):
    result = cli("health", "ollama", "--json")

    assert result.exit_code == 0, result.stderr
    assert health_rows(result) == [{"backend": "ollama", "url": ollama_server.url, "ok": True, "version": "0.12.6",
                                    "loaded": [], "error": None, "hint": None}]


def test_health_json_loaded_list_is_what_api_ps_lists(ollama_server, store):
    write_model(store, "qwen3", "8b")
    ollama_server.loaded["qwen3:8b"] = datetime.now(UTC) + timedelta(minutes=5)

    result = cli("health", "ollama", "--json")

    assert result.exit_code == 0, result.stderr
    (row,) = health_rows(result)
    assert [m["model"] for m in row["loaded"]] == ps(ollama_server) == ["qwen3:8b"]
    assert row["loaded"][0]["context_length"] == 4096
    assert datetime.fromisoformat(row["loaded"][0]["expires_at"]) == ollama_server.loaded["qwen3:8b"]


def test_health_json_with_nothing_listening_is_down_and_says_not_running(store):
    result = cli("health", "ollama", "--json")

    assert result.exit_code == 1  # the backend was named
    (row,) = health_rows(result)
    assert row["ok"] is False and row["url"] == "http://127.0.0.1:9"
    assert row["version"] is None and row["loaded"] == []
    assert "not running" in row["error"]
    assert "ollama serve" in row["hint"]


def test_health_json_with_nothing_listening_is_down_with_an_error(store):
    # the part of the test above that holds today: down, exit code 1 because the backend is named
    result = cli("health", "ollama", "--json")

    assert result.exit_code == 1
    (row,) = health_rows(result)
    assert (row["ok"], row["url"], row["version"], row["loaded"]) == (False, "http://127.0.0.1:9", None, [])
    assert "http://127.0.0.1:9" in row["error"] and row["hint"]


def test_health_exits_0_when_down_but_no_backend_is_named(store):
    result = cli("health", "--json")

    assert result.exit_code == 0, result.stderr
    assert [row["ok"] for row in health_rows(result)] == [False]


def test_health_turns_down_and_says_not_running_once_the_server_stops(store, monkeypatch):
    server = StandInOllama(store).start()
    monkeypatch.setenv("OLLAMA_HOST", server.host)
    try:
        up = health_rows(cli("health", "ollama", "--json"))
    finally:
        server.stop()

    down = cli("health", "ollama", "--json")

    assert up[0]["ok"] is True
    assert down.exit_code == 1
    (row,) = health_rows(down)
    assert row["ok"] is False and row["url"] == server.url
    assert "not running" in row["error"]


def test_health_table_shows_up_with_version_and_loaded_models(ollama_server, store):
    write_model(store, "qwen3", "8b")
    ollama_server.loaded["qwen3:8b"] = datetime.now(UTC) + timedelta(minutes=5)

    result = cli("health", "ollama")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith("ollama"))
    assert row == ["ollama", "up", ollama_server.url, "0.12.6", "qwen3:8b"]


def test_health_table_shows_down_and_the_error_and_hint_on_stderr(store):
    result = cli("health", "ollama")

    assert result.exit_code == 1
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith("ollama"))
    assert row == ["ollama", "down", "http://127.0.0.1:9", "-", "-"]
    lines = result.stderr.splitlines()
    assert lines[0].startswith("ollama: ") and "http://127.0.0.1:9" in lines[0]
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in result.stderr


# --- activate-model --------------------------------------------------------------------------------------------


def test_activate_model_sends_a_load_with_keep_alive_minus_one_as_a_number(ollama_server, store):
    name = qwen3(store)

    result = cli("activate-model", name, prog=LOADER)

    assert result.exit_code == 0, result.stderr
    (body,) = generate_bodies(ollama_server)
    assert body["model"] == "qwen3:8b"
    assert "prompt" not in body or not body["prompt"]
    # Ollama's api.Duration rejects the string "-1" (no unit); a JSON number -1 means "until stopped".
    # (The ollama client's pydantic model types keep_alive as float | str, so it goes out as -1.0.)
    assert not isinstance(body["keep_alive"], str)
    assert body["keep_alive"] == -1


def test_activate_model_leaves_the_model_loaded_in_api_ps(ollama_server, store):
    name = qwen3(store)

    result = cli("activate-model", name, prog=LOADER)

    assert result.exit_code == 0, result.stderr
    assert ps(ollama_server) == ["qwen3:8b"]
    assert ollama_server.loaded["qwen3:8b"] > datetime.now(UTC) + timedelta(days=365)  # until stopped


def test_activate_model_prints_the_endpoint_and_served_id(ollama_server, store):
    name = qwen3(store)

    result = cli("activate-model", name, prog=LOADER)

    assert result.exit_code == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert name in lines[0] and "ollama" in lines[0]
    assert f"endpoint:   {ollama_server.url}/v1" in lines
    assert "served id:  qwen3:8b" in lines


def test_activate_model_json_shape(ollama_server, store):
    name = qwen3(store)

    result = cli("activate-model", name, "--json", prog=LOADER)

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == ["name", "backend", "served_model_id", "endpoint", "expires_at"]
    assert data | {"expires_at": None} == {"name": name, "backend": "ollama", "served_model_id": "qwen3:8b",
                                           "endpoint": f"{ollama_server.url}/v1", "expires_at": None}
    assert datetime.fromisoformat(data["expires_at"]) == ollama_server.loaded["qwen3:8b"]


@pytest.mark.parametrize("setting, sent, lasts", [
    ("30m", "30m", timedelta(minutes=30)),  # a Go duration goes out as the string
    ("3600", 3600, timedelta(hours=1)),  # plain seconds go out as a number
])
def test_activate_model_sends_the_keep_alive_setting(ollama_server, store, monkeypatch, setting, sent, lasts):
    name = qwen3(store)
    monkeypatch.setenv("IMAGEWORKS_OLLAMA_KEEP_ALIVE", setting)

    before = datetime.now(UTC)
    result = cli("activate-model", name, prog=LOADER)

    assert result.exit_code == 0, result.stderr
    (body,) = generate_bodies(ollama_server)
    assert body["keep_alive"] == sent
    assert isinstance(body["keep_alive"], str) == isinstance(sent, str)
    assert before + lasts <= ollama_server.loaded["qwen3:8b"] <= datetime.now(UTC) + lasts


def test_activate_model_by_alias_loads_the_entry(ollama_server, store):
    name = qwen3(store, alias=True)
    assert show(name)["aliases"] == ["qwen3:latest"]

    result = cli("activate-model", "qwen3:latest", "--json", prog=LOADER)

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["name"], data["served_model_id"]) == (name, "qwen3:8b")
    assert [b["model"] for b in generate_bodies(ollama_server)] == ["qwen3:8b"]
    assert ps(ollama_server) == ["qwen3:8b"]


def test_activate_model_stop_unloads_with_keep_alive_zero(ollama_server, store):
    name = qwen3(store)
    assert cli("activate-model", name, prog=LOADER).exit_code == 0
    assert ps(ollama_server) == ["qwen3:8b"]

    result = cli("activate-model", name, "--stop", prog=LOADER)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"stopped {name} (ollama)"
    last = generate_bodies(ollama_server)[-1]
    assert last["model"] == "qwen3:8b" and last["keep_alive"] == 0 and not isinstance(last["keep_alive"], str)
    assert ps(ollama_server) == []


def test_activate_model_stop_json(ollama_server, store):
    name = qwen3(store)
    cli("activate-model", name, prog=LOADER)

    result = cli("activate-model", name, "--stop", "--json", prog=LOADER)

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"name": name, "backend": "ollama", "stopped": True}


# --- the three serving errors (P16) ----------------------------------------------------------------------------


def test_activate_model_refuses_a_locked_entry_whose_blob_changed(ollama_server, store):
    name = qwen3(store)
    assert cli("lock", name, "--set-expected", prog="imageworks-loader").exit_code == 0
    blob = Path(show(name)["download"]["path"])
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))

    result = cli("activate-model", name, prog="imageworks-loader")

    assert result.exit_code == 2
    assert "refusing to activate" in result.stderr
    assert generate_bodies(ollama_server) == []  # nothing was loaded


def test_activate_model_server_not_running_is_one_error_line_with_an_ollama_serve_hint(store):
    name = qwen3(store)  # OLLAMA_HOST is 127.0.0.1:9, where nothing listens

    result = cli("activate-model", name, prog=LOADER)

    _, hint = assert_one_error(result, "not running", "http://127.0.0.1:9", hint="ollama serve")
    assert "OLLAMA_HOST" in hint


def test_activate_model_after_the_server_stopped_says_not_running(store, monkeypatch):
    name = qwen3(store)
    server = StandInOllama(store).start()
    monkeypatch.setenv("OLLAMA_HOST", server.host)
    server.stop()

    result = cli("activate-model", name, prog=LOADER)

    assert_one_error(result, "not running", server.url, hint="ollama serve")


def test_activate_model_not_pulled_is_one_error_line_with_an_ollama_pull_hint(ollama_server, store):
    name = qwen3(store)
    with ollama.Client(host=ollama_server.url) as client:
        client.delete("qwen3:8b")  # gone from the server after the import

    result = cli("activate-model", name, prog=LOADER)

    assert_one_error(result, "does not have 'qwen3:8b'", hint="ollama pull qwen3:8b")


def test_activate_model_timeout_is_one_error_line_naming_the_timeout(ollama_server, store, monkeypatch):
    name = qwen3(store)
    ollama_server.delay = 2
    monkeypatch.setenv("IMAGEWORKS_OLLAMA_TIMEOUT", "0.3")

    result = cli("activate-model", name, prog=LOADER)

    assert_one_error(result, "did not answer within 0.3 s", hint="IMAGEWORKS_OLLAMA_TIMEOUT")


def test_activate_model_server_error_is_one_error_line_with_the_status(ollama_server, store):
    name = qwen3(store)
    ollama_server.status_override = 500

    result = cli("activate-model", name, prog=LOADER)

    assert_one_error(result, "HTTP 500", hint="log")


def test_activate_model_stop_with_the_server_down_says_not_running(store):
    name = qwen3(store)

    result = cli("activate-model", name, "--stop", prog=LOADER)

    assert_one_error(result, "not running", hint="ollama serve")


@pytest.mark.parametrize("fault, expected", [
    ("down", BackendNotRunningError),
    ("not-pulled", ModelNotPulledError),
    ("slow", BackendTimeoutError),
])
def test_serving_activate_raises_the_exact_error_class(store, monkeypatch, fault, expected):
    name = qwen3(store)
    with StandInOllama(store) as server:
        if fault != "down":
            monkeypatch.setenv("OLLAMA_HOST", server.host)
        if fault == "not-pulled":
            with ollama.Client(host=server.url) as client:
                client.delete("qwen3:8b")
        if fault == "slow":
            server.delay = 2
            monkeypatch.setenv("IMAGEWORKS_OLLAMA_TIMEOUT", "0.3")

        with pytest.raises(ServingError) as caught:
            serving.activate(name)

    assert type(caught.value) is expected
    assert caught.value.hint


def test_serving_activate_http_500_is_a_serving_error_that_is_none_of_the_three(ollama_server, store):
    name = qwen3(store)
    ollama_server.status_override = 500

    with pytest.raises(ServingError) as caught:
        serving.activate(name)

    assert not isinstance(caught.value, THREE)
    assert "HTTP 500" in caught.value.message


def test_version_of_a_server_answering_500_is_a_serving_error_not_not_running(ollama_server):
    from imageworks_models.settings import load_settings
    from imageworks_models_ollama import server as ollama_server_module

    ollama_server.status_override = 500

    with pytest.raises(ServingError) as caught:
        ollama_server_module.version(settings=load_settings())

    assert not isinstance(caught.value, THREE)
    assert "500" in caught.value.message


# --- select ----------------------------------------------------------------------------------------------------


def test_select_of_an_imported_entry_gives_ollama_host_v1_and_the_tag(store, monkeypatch):
    name = qwen3(store)
    monkeypatch.setenv("OLLAMA_HOST", "http://ollama.example:11500")

    result = cli("select", name, "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["name"], data["backend"]) == (name, "ollama")
    assert data["endpoint"] == "http://ollama.example:11500/v1"
    assert data["served_model_id"] == "qwen3:8b"


def test_select_by_alias_gives_the_entrys_served_id(store):
    name = qwen3(store, alias=True)

    result = cli("select", "qwen3:latest", "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["name"], data["served_model_id"], data["endpoint"]) == (name, "qwen3:8b", "http://127.0.0.1:9/v1")


# --- remove ----------------------------------------------------------------------------------------------------


def test_remove_delete_files_without_force_prints_ollama_rm_and_changes_nothing(ollama_server, store, tmp_path):
    name = qwen3(store)
    reg, st = registry(tmp_path), files(store)
    ollama_server.requests.clear()

    result = cli("remove", name, "--delete-files", prog=DOWNLOAD)

    assert result.exit_code == 1
    assert f"would remove from the store: {shlex.join(['ollama', 'rm', 'qwen3:8b'])}" in result.stdout.splitlines()
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: refusing to remove {name!r} without --force"
    assert "`ollama rm qwen3:8b`" in lines[1]
    assert registry(tmp_path) == reg
    assert files(store) == st
    assert [r for r in ollama_server.requests if r[0] == "DELETE"] == []


def test_remove_plan_json_names_the_store_command(ollama_server, store):
    name = qwen3(store)

    result = cli("remove", name, "--delete-files", "--dry-run", "--json", prog=DOWNLOAD)

    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["store_command"] == ["ollama", "rm", "qwen3:8b"]
    assert plan["store_tags"] == ["qwen3:8b"]
    assert (plan["delete_files"], plan["remove_metadata"], plan["dry_run"]) == (True, False, True)


@pytest.mark.parametrize("flags", [["--dry-run"], ["--dry-run", "--force"], ["--dry-run", "--purge", "--force"]])
def test_remove_dry_run_exits_0_and_changes_nothing(ollama_server, store, tmp_path, flags):
    name = qwen3(store)
    reg, st = registry(tmp_path), files(store)
    ollama_server.requests.clear()

    result = cli("remove", name, "--delete-files", *flags, prog=DOWNLOAD)

    assert result.exit_code == 0, result.stderr
    assert "would remove from the store: ollama rm qwen3:8b" in result.stdout
    assert registry(tmp_path) == reg
    assert files(store) == st
    assert [r for r in ollama_server.requests if r[0] == "DELETE"] == []


def test_remove_delete_files_force_deletes_the_tag_through_the_api(ollama_server, store):
    name = qwen3(store)
    info = find_model(store, "qwen3:8b")

    result = cli("remove", name, "--delete-files", "--force", prog=DOWNLOAD)

    assert result.exit_code == 0, result.stderr
    assert ("DELETE", "/api/delete", {"model": "qwen3:8b"}) in ollama_server.requests
    assert not info.manifest_path.exists()
    assert not blob_path(store, info.model_digest).exists()
    assert "removed qwen3:8b from the store" in result.stdout


def test_remove_delete_files_force_keeps_the_entry_not_installed(ollama_server, store):
    name = qwen3(store)
    assert show(name)["download"]["path"]

    result = cli("remove", name, "--delete-files", "--force", prog=DOWNLOAD)

    assert result.exit_code == 0, result.stderr
    entry = show(name)
    assert not (entry.get("download") or {}).get("path")
    assert entry["served_model_id"] == "qwen3:8b"
    installed = cli("list", "--json")
    assert name not in [e["name"] for e in json.loads(installed.stdout)]


def test_remove_of_a_tag_already_gone_from_ollama_still_cleans_the_registry(ollama_server, store):
    """Someone ran `ollama rm` by hand: the removal is already done, so it is not an error."""
    name = qwen3(store)
    ollama.Client(host=ollama_server.url).delete("qwen3:8b")

    result = cli("remove", name, "--purge", "--delete-files", "--force", prog=DOWNLOAD)

    assert result.exit_code == 0, result.stderr
    assert cli("show", name, "--json").exit_code == 1


def test_remove_purge_delete_files_force_removes_the_entry_too(ollama_server, store):
    name = qwen3(store)
    info = find_model(store, "qwen3:8b")

    result = cli("remove", name, "--purge", "--delete-files", "--force", prog=DOWNLOAD)

    assert result.exit_code == 0, result.stderr
    assert ("DELETE", "/api/delete", {"model": "qwen3:8b"}) in ollama_server.requests
    assert not info.manifest_path.exists()
    gone = cli("show", name, "--json")
    assert gone.exit_code == 1 and "Traceback" not in gone.stderr


def test_remove_keeps_a_projector_shared_with_another_entry_and_says_so(ollama_server, store):
    llava = write_model(store, "llava", "7b", projector=True)
    bakllava = write_model(store, "bakllava", "7b", projector=True)
    assert llava.projector_digest == bakllava.projector_digest and llava.model_digest != bakllava.model_digest
    import_store()
    name = name_of("llava:7b")

    plan = json.loads(cli("remove", name, "--delete-files", "--dry-run", "--json", prog=DOWNLOAD).stdout)
    result = cli("remove", name, "--delete-files", "--force", prog=DOWNLOAD)

    assert plan["store_command"] == ["ollama", "rm", "llava:7b"]
    assert len(plan["kept"]) == 1
    assert plan["kept"][0].startswith(llava.projector_digest[:19]) and "bakllava:7b" in plan["kept"][0]
    assert result.exit_code == 0, result.stderr
    assert not llava.manifest_path.exists()
    assert not blob_path(store, llava.model_digest).exists()
    assert blob_path(store, llava.projector_digest).exists()  # bakllava:7b still uses it
    assert bakllava.manifest_path.exists() and blob_path(store, bakllava.model_digest).exists()


def test_remove_plan_text_lists_the_kept_blob(ollama_server, store):
    llava = write_model(store, "llava", "7b", projector=True)
    write_model(store, "bakllava", "7b", projector=True)
    import_store()

    result = cli("remove", name_of("llava:7b"), "--delete-files", "--dry-run", prog=DOWNLOAD)

    assert result.exit_code == 0, result.stderr
    kept = [line for line in result.stdout.splitlines() if line.startswith("would keep blob ")]
    assert len(kept) == 1 and llava.projector_digest[:19] in kept[0] and "bakllava:7b" in kept[0]


def test_remove_force_with_the_server_down_fails_and_changes_nothing(store, tmp_path):
    name = qwen3(store)  # OLLAMA_HOST is 127.0.0.1:9, where nothing listens
    reg, st = registry(tmp_path), files(store)

    result = cli("remove", name, "--delete-files", "--force", prog=DOWNLOAD)

    assert_one_error(result, "not running", hint="ollama serve")
    assert registry(tmp_path) == reg
    assert files(store) == st


def test_remove_purge_force_with_the_server_down_keeps_the_entry(store, tmp_path):
    name = qwen3(store)
    reg = registry(tmp_path)

    result = cli("remove", name, "--purge", "--delete-files", "--force", prog=DOWNLOAD)

    assert result.exit_code == 1 and "not running" in result.stderr
    assert registry(tmp_path) == reg
    assert show(name)["name"] == name


def test_remove_of_an_entry_with_aliases_removes_every_tag(ollama_server, store):
    name = qwen3(store, alias=True)
    eight, latest = find_model(store, "qwen3:8b"), find_model(store, "qwen3:latest")

    plan = cli("remove", name, "--delete-files", prog=DOWNLOAD)
    result = cli("remove", name, "--delete-files", "--force", prog=DOWNLOAD)

    assert "would remove from the store: ollama rm qwen3:8b qwen3:latest" in plan.stdout.splitlines()
    assert "would keep blob" not in plan.stdout  # the blob is shared only by the entry's own tags
    assert result.exit_code == 0, result.stderr
    deletes = [body["model"] for method, path, body in ollama_server.requests if method == "DELETE"]
    assert deletes == ["qwen3:8b", "qwen3:latest"]
    assert not eight.manifest_path.exists() and not latest.manifest_path.exists()
    assert not blob_path(store, eight.model_digest).exists()


# --- remove of a files entry (not Ollama) ----------------------------------------------------------------------


def write_vllm_entry(tmp_path: Path, name: str, path: Path) -> None:
    folder = tmp_path / "registry"
    folder.mkdir(exist_ok=True)
    (folder / "model_registry.curated.json").write_text(json.dumps(
        {"schema_version": 1, "entries": [{"name": name, "backend": "vllm", "served_model_id": name}]}))
    (folder / "model_registry.discovered.json").write_text(json.dumps(
        {"schema_version": 1, "entries": [{"name": name, "download": {"path": str(path)}}]}))


def weights(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


def test_remove_refuses_to_delete_files_outside_the_weights_root(store, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(tmp_path / "weights"))
    outside = weights(tmp_path / "elsewhere" / "llama-awq")
    write_vllm_entry(tmp_path, "llama-vllm-awq", outside)
    assert show("llama-vllm-awq")["download"]["path"] == str(outside)
    reg, before = registry(tmp_path), files(outside)

    result = cli("remove", "llama-vllm-awq", "--delete-files", "--force", prog=DOWNLOAD)

    assert_one_error(result, "outside the configured weights roots", str(outside), hint="IMAGEWORKS_WEIGHTS_ROOT")
    assert files(outside) == before
    assert registry(tmp_path) == reg


def test_remove_deletes_files_inside_the_weights_root(store, tmp_path, monkeypatch):
    # the control for the refusal above: the same entry under the weights root is deleted
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(tmp_path / "weights"))
    inside = weights(tmp_path / "weights" / "llama-awq")
    write_vllm_entry(tmp_path, "llama-vllm-awq", inside)

    result = cli("remove", "llama-vllm-awq", "--delete-files", "--force", prog=DOWNLOAD)

    assert result.exit_code == 0, result.stderr
    assert not inside.exists()
    assert (tmp_path / "weights").is_dir()
