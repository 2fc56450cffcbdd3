"""The llama.cpp backend's ``launch``: which server runs, the argument list for an entry in both servers'
spellings (model file, split shards, projector, numbers, chat template), and what an entry may not set
(RELIABILITY S7). No engine runs here; ``test_engine.py`` runs it.

Entries are plain dicts handed to ``launch`` directly, as in the vLLM plugin's tests.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import tinygguf

from imageworks_models import testing
from imageworks_models.errors import ModelNotPulledError, NotActivatableError, UnsafeLaunchError
from imageworks_models.pluginhost.manager import get_plugins
from imageworks_models.registry.store import RegistryStore
from imageworks_models.testing import test_settings as settings

pytestmark = pytest.mark.usefixtures("imageworks_isolated")  # from imageworks_models.pytest_plugin
SERVER = {"IMAGEWORKS_LLAMACPP_BIN": "llama-server"}
PYTHON = {"IMAGEWORKS_LLAMACPP_BIN": "python3 -m llama_cpp.server"}
DIGEST_A, DIGEST_B = "a" * 64, "b" * 64


def launch(tmp_path, entry, **env):
    return get_plugins().backend("llamacpp").load().launch(entry, settings=settings(tmp_path, **env))


def model(tmp_path, name="m.gguf") -> Path:
    path = tmp_path / "models" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF")  # the builder checks names and presence; the engine reads the bytes
    return path


def entry_of(path, name="tiny", **fields):
    cfg = {"model_path": str(path), **fields.pop("backend_config", {})}
    return {"name": name, "backend": "llamacpp", "served_model_id": "org/tiny", "backend_config": cfg, **fields}


def after(argv, flag):
    return argv[argv.index(flag) + 1]


# --- the two servers ------------------------------------------------------------------------------------------


def test_llama_server_exact_argv(tmp_path):
    path = model(tmp_path)

    got = launch(tmp_path, entry_of(path), **SERVER, CHAT_PROXY_VLLM_PORT="8123", CHAT_PROXY_VLLM_SINGLE_PORT="1")

    assert got.argv == ("llama-server", "--model", str(path), "--host", "127.0.0.1", "--port", "8123",
                        "--alias", "org/tiny", "--jinja")
    assert (got.host, got.port, got.served_model_id) == ("127.0.0.1", 8123, "org/tiny")
    assert got.endpoint == "http://127.0.0.1:8123/v1" and got.env == {}
    assert got.stop_grace == 3.0  # IMAGEWORKS_LLAMACPP_STOP_GRACE's default


def test_python_server_exact_argv_pins_host_and_port_in_its_environment(tmp_path):
    path = model(tmp_path)

    got = launch(tmp_path, entry_of(path, backend_config={"port": 9001}), **PYTHON,
                 IMAGEWORKS_LLAMACPP_STOP_GRACE="1.5")

    assert got.argv == ("python3", "-m", "llama_cpp.server", "--model", str(path), "--host", "127.0.0.1",
                        "--port", "9001", "--model_alias", "org/tiny")
    assert got.env == {"HOST": "127.0.0.1", "PORT": "9001"}  # llama_cpp.server reads these over its options
    assert got.stop_grace == 1.5


def test_default_port_is_llama_servers(tmp_path):
    got = launch(tmp_path, entry_of(model(tmp_path)), **SERVER)

    assert got.port == 8080 and got.endpoint == "http://127.0.0.1:8080/v1"


def test_default_setting_uses_llama_server_from_path(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "llama-server"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))

    got = launch(tmp_path, entry_of(model(tmp_path)))

    assert got.argv[0] == "llama-server" and "--alias" in got.argv


def test_default_setting_without_llama_server_falls_back_to_the_python_server(tmp_path, monkeypatch):
    from importlib.util import find_spec

    if find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed here (the engine group): nothing to fall back to")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    got = launch(tmp_path, entry_of(model(tmp_path)))

    assert got.argv[:3] == (sys.executable, "-m", "llama_cpp.server") and "--model_alias" in got.argv


def test_python_server_refuses_a_config_file_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFIG_FILE", "/etc/other.json")

    with pytest.raises(NotActivatableError, match="CONFIG_FILE=/etc/other.json"):
        launch(tmp_path, entry_of(model(tmp_path)), **PYTHON)


# --- the model file ---------------------------------------------------------------------------------------------


def test_folder_with_one_model_and_a_projector(tmp_path):
    path = model(tmp_path, "tiny-Q4_K_M.gguf")
    projector = model(tmp_path, "mmproj-tiny-F16.gguf")
    (path.parent / "README.md").write_text("# tiny\n")

    server = launch(tmp_path, entry_of(path.parent), **SERVER).argv
    python = launch(tmp_path, entry_of(path.parent), **PYTHON).argv

    assert after(server, "--model") == str(path) and after(server, "--mmproj") == str(projector)
    assert after(python, "--clip_model_path") == str(projector) and after(python, "--chat_format") == "mtmd"


def test_projector_can_be_turned_off_or_named(tmp_path):
    path = model(tmp_path, "tiny-Q4_K_M.gguf")
    model(tmp_path, "mmproj-a.gguf")
    other = model(tmp_path / "elsewhere", "proj.gguf")

    off = launch(tmp_path, entry_of(path.parent, backend_config={"mmproj": False}), **SERVER).argv
    named = launch(tmp_path, entry_of(path, backend_config={"mmproj": str(other)}), **SERVER).argv

    assert "--mmproj" not in off and after(named, "--mmproj") == str(other)


def test_folder_with_several_models_is_refused(tmp_path):
    model(tmp_path, "tiny-Q4_K_M.gguf")
    model(tmp_path, "tiny-Q8_0.gguf")

    with pytest.raises(NotActivatableError, match=r"holds several GGUF models \(tiny-Q4_K_M.gguf, tiny-Q8_0.gguf\)"):
        launch(tmp_path, entry_of(tmp_path / "models"), **SERVER)


def test_folder_without_a_model_is_refused(tmp_path):
    model(tmp_path, "mmproj-only.gguf")

    with pytest.raises(ModelNotPulledError, match="holds no .gguf model file"):
        launch(tmp_path, entry_of(tmp_path / "models"), **SERVER)


def test_split_model_loads_from_its_first_shard(tmp_path):
    names = tinygguf.split_names("big-Q4_K_M", 3)
    for name in names:
        model(tmp_path, name)

    from_folder = launch(tmp_path, entry_of(tmp_path / "models"), **SERVER).argv
    from_third = launch(tmp_path, entry_of(tmp_path / "models" / names[2]), **SERVER).argv

    assert after(from_folder, "--model") == after(from_third, "--model") == str(tmp_path / "models" / names[0])


def test_split_model_with_a_missing_shard_is_refused(tmp_path):
    names = tinygguf.split_names("big", 4)
    for name in names[:1] + names[3:]:
        model(tmp_path, name)

    with pytest.raises(ModelNotPulledError) as caught:
        launch(tmp_path, entry_of(tmp_path / "models" / names[0]), **SERVER)

    assert caught.value.message == (f"tiny: the split GGUF big-00001-of-00004.gguf is missing 2 of its 4 shards "
                                    f"(big-00002-of-00004.gguf, big-00003-of-00004.gguf) in {tmp_path / 'models'}")


# --- an Ollama blob ---------------------------------------------------------------------------------------------


def ollama_entry(tmp_path, *, projector: bool):
    blobs = tmp_path / "ollama" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"sha256-{DIGEST_A}").write_bytes(b"GGUF")
    if projector:
        (blobs / f"sha256-{DIGEST_B}").write_bytes(b"GGUF")
    meta = {"model_digest": f"sha256:{DIGEST_A}", **({"projector_digest": f"sha256:{DIGEST_B}"} if projector else {})}
    return {"name": "qwen-vl-ollama-gguf", "backend": "ollama", "served_model_id": "qwen2.5vl:3b",
            "download": {"path": str(blobs / f"sha256-{DIGEST_A}")}, "metadata": {"ollama": meta},
            "capabilities": {"vision": projector}}


def test_ollama_entry_is_served_from_its_blob_and_projector_blob(tmp_path):
    entry = ollama_entry(tmp_path, projector=True)
    blobs = tmp_path / "ollama" / "blobs"

    got = launch(tmp_path, entry, **SERVER).argv

    assert after(got, "--model") == str(blobs / f"sha256-{DIGEST_A}")
    assert after(got, "--mmproj") == str(blobs / f"sha256-{DIGEST_B}")
    assert after(got, "--alias") == "qwen2.5vl:3b"


def test_ollama_entry_whose_projector_blob_is_gone_is_refused(tmp_path):
    entry = ollama_entry(tmp_path, projector=True)
    (tmp_path / "ollama" / "blobs" / f"sha256-{DIGEST_B}").unlink()

    with pytest.raises(ModelNotPulledError, match=r"projector blob .* is missing from the Ollama store") as caught:
        launch(tmp_path, entry, **SERVER)

    assert caught.value.hint == "ollama pull qwen2.5vl:3b"


def test_ollama_entry_without_projector(tmp_path):
    got = launch(tmp_path, ollama_entry(tmp_path, projector=False), **PYTHON).argv

    assert "--clip_model_path" not in got and "--chat_format" not in got


# --- numbers, chat template -------------------------------------------------------------------------------------


def test_numbers_in_both_spellings(tmp_path):
    cfg = {"ctx_size": 4096, "n_gpu_layers": -1, "threads": 4, "parallel": 2}

    server = launch(tmp_path, entry_of(model(tmp_path), backend_config=cfg), **SERVER).argv
    python = launch(tmp_path, entry_of(model(tmp_path), backend_config=cfg), **PYTHON).argv

    assert server[-8:] == ("--ctx-size", "4096", "--n-gpu-layers", "-1", "--threads", "4", "--parallel", "2")
    assert python[-6:] == ("--n_ctx", "4096", "--n_gpu_layers", "-1", "--n_threads", "4")  # no parallel slots there


@pytest.mark.parametrize("key, value", [("ctx_size", "4096"), ("threads", 0), ("n_gpu_layers", -2),
                                        ("parallel", True), ("ctx_size", 1.5)])
def test_bad_numbers_are_refused(tmp_path, key, value):
    with pytest.raises(UnsafeLaunchError, match=f"backend_config.{key} .* is not a whole number"):
        launch(tmp_path, entry_of(model(tmp_path), backend_config={key: value}), **SERVER)


def test_chat_template_override(tmp_path):
    jinja = tmp_path / "t.jinja"
    jinja.write_text("{{ messages }}")
    config = tmp_path / "tokenizer_config.json"
    config.write_text('{"chat_template": "{{ messages }}"}')

    server = launch(tmp_path, entry_of(model(tmp_path), backend_config={"chat_template_file": str(jinja)}),
                    **SERVER).argv
    python = launch(tmp_path, entry_of(model(tmp_path), backend_config={"chat_template_file": str(config)}),
                    **PYTHON).argv

    assert after(server, "--chat-template-file") == str(jinja)
    assert after(python, "--chat_format") == "hf-tokenizer-config"
    assert after(python, "--hf_tokenizer_config_path") == str(config)
    with pytest.raises(NotActivatableError, match="llama_cpp.server cannot read the chat template"):
        launch(tmp_path, entry_of(model(tmp_path), backend_config={"chat_template_file": str(jinja)}), **PYTHON)
    with pytest.raises(ModelNotPulledError, match="chat_template_file .* is not a file"):
        launch(tmp_path, entry_of(model(tmp_path), backend_config={"chat_template_file": "/nope.jinja"}), **SERVER)


# --- what an entry may not set (S7) ------------------------------------------------------------------------------


@pytest.mark.parametrize("extra, where", [
    (["--port", "1"], "backend_config.port"), (["--host=0.0.0.0"], "backend_config.host"),
    (["-m", "/other.gguf"], "backend_config.model_path"), (["--hf-repo", "x/y"], "backend_config.model_path"),
    (["-a", "other"], "served_model_id"), (["--alias", "other"], "served_model_id"),
    (["-mm", "/p.gguf"], "backend_config.mmproj"), (["--api-key", "k"], "readiness check sends no API key"),
])
def test_llama_server_extra_args_cannot_take_over(tmp_path, extra, where):
    with pytest.raises(UnsafeLaunchError) as caught:
        launch(tmp_path, entry_of(model(tmp_path), backend_config={"extra_args": extra}), **SERVER)

    assert "the orchestrator owns it" in caught.value.message and where in caught.value.hint


@pytest.mark.parametrize("extra", [["--model_alias", "x"], ["--config_file", "c.json"], ["--clip_model_path", "p"],
                                   ["--hf_model_repo_id", "x/y"], ["--mod", "x"], ["--port=1"]])
def test_python_server_extra_args_cannot_take_over(tmp_path, extra):
    with pytest.raises(UnsafeLaunchError, match="the orchestrator owns it"):
        launch(tmp_path, entry_of(model(tmp_path), backend_config={"extra_args": extra}), **PYTHON)


def test_other_extra_args_pass_through_last(tmp_path):
    got = launch(tmp_path, entry_of(model(tmp_path), backend_config={"extra_args": ["--flash-attn", "on"]}),
                 **SERVER).argv

    assert got[-2:] == ("--flash-attn", "on")


@pytest.mark.parametrize("key", ["HOST", "PORT", "CONFIG_FILE", "LLAMA_ARG_MODEL", "llama_arg_port", "LD_PRELOAD"])
def test_env_cannot_set_what_the_server_reads_as_its_settings(tmp_path, key):
    with pytest.raises(UnsafeLaunchError, match=f"backend_config.env may not set {key}"):
        launch(tmp_path, entry_of(model(tmp_path), backend_config={"env": {key: "x"}}), **SERVER)


def test_other_env_passes(tmp_path):
    got = launch(tmp_path, entry_of(model(tmp_path), backend_config={"env": {"CUDA_VISIBLE_DEVICES": "1"}}), **SERVER)

    assert got.env == {"CUDA_VISIBLE_DEVICES": "1"}


def test_missing_model_file_is_refused(tmp_path):
    with pytest.raises(ModelNotPulledError, match="its model files are not at"):
        launch(tmp_path, entry_of(tmp_path / "gone.gguf"), **SERVER)


# --- the plugin ---------------------------------------------------------------------------------------------


def test_plugin_is_installed_as_declared_and_loads_ok():
    testing.check_installed_plugin(Path(__file__).resolve().parent.parent, "llamacpp", hooks=["register_backends"],
                                   provides={"backend": ["llamacpp"]})


def test_endpoint_rule(tmp_path):
    backend = get_plugins().backend("llamacpp")

    assert backend.endpoint({"name": "x"}, settings(tmp_path)) == "http://127.0.0.1:8080/v1"
    assert backend.endpoint({"name": "x", "backend_config": {"port": 9000}},
                            settings(tmp_path)) == "http://127.0.0.1:9000/v1"
    assert backend.endpoint({"name": "x"}, settings(tmp_path, CHAT_PROXY_VLLM_SINGLE_PORT="1")) == \
        "http://127.0.0.1:8000/v1"


def test_dry_run_with_backend_prints_the_llamacpp_command_for_an_ollama_entry(tmp_path, monkeypatch):
    entry = ollama_entry(tmp_path, projector=False)
    registry = tmp_path / "registry"
    testing.make_registry(registry, {k: v for k, v in entry.items() if k not in ("download", "metadata")})
    with RegistryStore(registry).edit() as layers:
        layers.discovered.put({"name": entry["name"], "download": entry["download"], "metadata": entry["metadata"]})
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(registry))
    monkeypatch.setenv("IMAGEWORKS_LLAMACPP_BIN", "llama-server")

    result = testing.run_cli("activate-model", entry["name"], "--backend", "llamacpp", "--dry-run", "--json",
                             prog="imageworks-loader")

    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["backend"] == "llamacpp" and plan["action"] == "start"
    assert plan["command"][:3] == ["llama-server", "--model", entry["download"]["path"]]
    assert not os.path.exists(registry / "_staging" / "active_vllm.json")
