"""Item 8 of issue 17 (RELIABILITY S11): a server gets only allow-listed environment; a non-loopback host needs the
user's explicit choice. Refused at edit and at activation, with one line, exit 1, and every file unchanged."""

from __future__ import annotations

import os

import pytest
from _helpers import cli, make_registry, sources

from imageworks_models.maintain.editing import apply_edit, base_of, plan_edit
from imageworks_models.errors import EntryEditError, UnsafeLaunchError
from imageworks_models.pluginhost.manager import get_plugins
from imageworks_models.settings import load_settings

HOSTILE = ["HOME", "NCCL_NET_PLUGIN", "VLLM_LOGGING_CONFIG_PATH", "OPENSSL_CONF", "VLLM_PLUGINS", "XDG_CONFIG_HOME",
           "TRITON_CACHE_DIR", "LD_PRELOAD", "PYTHONSTARTUP"]


@pytest.fixture
def reg(tmp_path, monkeypatch):
    weights = tmp_path / "w"
    weights.mkdir()
    folder = make_registry(tmp_path / "reg", curated=[{"name": "m", "backend": "vllm",
                                                      "backend_config": {"model_path": str(weights)}}],
                           discovered=[])
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(folder))
    monkeypatch.setenv("IMAGEWORKS_VLLM_BIN", "true")
    return folder, weights


def launch(entry):
    settings = load_settings()
    return get_plugins(settings).backend("vllm").load().launch(entry, settings=settings)


@pytest.mark.parametrize("key", HOSTILE)
def test_s11_variables_off_the_allow_list_are_refused_at_activation(reg, key):
    folder, weights = reg
    entry = {"name": "m", "backend": "vllm", "backend_config": {"model_path": str(weights), "env": {key: "/tmp/x"}}}
    with pytest.raises(UnsafeLaunchError) as info:
        launch(entry)
    assert key in info.value.message and info.value.hint


def test_s11_allow_listed_tuning_passes_and_only_user_settings_extend_the_list(reg, monkeypatch):
    folder, weights = reg
    env = {"CUDA_VISIBLE_DEVICES": "0", "OMP_NUM_THREADS": "4", "VLLM_ATTENTION_BACKEND": "FLASHINFER"}
    entry = {"name": "m", "backend": "vllm", "backend_config": {"model_path": str(weights), "env": env}}
    assert launch(entry).env == env
    custom = {**entry, "backend_config": {**entry["backend_config"], "env": {"MY_TUNING_X": "1"}}}
    with pytest.raises(UnsafeLaunchError):
        launch(custom)
    monkeypatch.setenv("IMAGEWORKS_SERVER_ENV_ALLOW", "MY_TUNING_*")
    assert launch(custom).env == {"MY_TUNING_X": "1"}
    ld = {**entry, "backend_config": {**entry["backend_config"], "env": {"LD_PRELOAD": "/tmp/x.so"}}}
    monkeypatch.setenv("IMAGEWORKS_SERVER_ENV_ALLOW", "LD_PRELOAD")
    with pytest.raises(UnsafeLaunchError):  # code-loading variables stay refused whatever the list says
        launch(ld)


def test_s11_a_registry_file_cannot_extend_the_list(reg):
    folder, weights = reg
    doc = (folder / "model_registry.curated.json").read_text()
    (folder / "model_registry.curated.json").write_text(
        doc.replace('"schema_version": 1,', '"schema_version": 1,\n  "server_env_allow": ["HOME"],'))
    entry = {"name": "m", "backend": "vllm", "backend_config": {"model_path": str(weights), "env": {"HOME": "/x"}}}
    with pytest.raises(UnsafeLaunchError):
        launch(entry)


def test_s11_refused_at_edit_time_and_nothing_written(reg):
    folder, weights = reg
    before = sources(folder)
    changes = {"backend_config": {"model_path": str(weights), "env": {"HOME": "/tmp/evil"}}}
    assert "backend_config" in plan_edit("m", changes).errors
    with pytest.raises(EntryEditError) as info:
        apply_edit("m", changes, base=base_of("m"))
    assert "HOME" in str(info.value.errors)
    public = {"backend_config": {"model_path": str(weights), "host": "0.0.0.0"}}
    assert "backend_config" in plan_edit("m", public).errors
    assert sources(folder) == before


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])
def test_s11_a_non_loopback_host_needs_an_explicit_choice_and_all_interfaces_says_so(reg, monkeypatch, capsys, host):
    folder, weights = reg
    entry = {"name": "m", "backend": "vllm", "backend_config": {"model_path": str(weights), "host": host}}
    with pytest.raises(UnsafeLaunchError) as info:
        launch(entry)
    assert "allow_public_host" in info.value.hint
    monkeypatch.setenv("IMAGEWORKS_ALLOW_PUBLIC_HOST", "1")
    assert launch(entry).host == host
    err = capsys.readouterr().err
    assert "warning" in err and host in err
    assert ("ALL interfaces" in err) == (host in ("0.0.0.0", "::"))
    for ok in ("127.0.0.1", "127.0.0.5", "::1", "localhost"):
        assert launch({**entry, "backend_config": {"model_path": str(weights), "host": ok}}).host == ok


def test_s11_activate_model_refuses_in_one_line_exit_1_files_unchanged(reg, tmp_path):
    folder, weights = reg
    with open(folder / "model_registry.curated.json") as fh:
        doc = fh.read()
    (folder / "model_registry.curated.json").write_text(
        doc.replace('"model_path"', '"env": {"HOME": "/tmp/evil"},\n        "model_path"'))
    before = sources(folder)
    env = {**os.environ, "IMAGEWORKS_REGISTRY_DIR": str(folder), "IMAGEWORKS_VLLM_BIN": "true"}
    result = cli("activate-model", "m", env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "HOME" in lines[0]
    assert sources(folder) == before
