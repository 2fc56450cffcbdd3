"""Which actions the GUI's drawer enables (``availability.py``), with the loaded plugins of this install (vllm,
lmdeploy, ollama...) and entries as the registry holds them: each refusal is the one the action would give."""

from __future__ import annotations

import pytest

from imageworks_models.present.availability import availability
from imageworks_models.pluginhost.manager import get_plugins
from imageworks_models.settings import load_settings


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(tmp_path / "reg"))
    return get_plugins(load_settings())


@pytest.fixture
def model(tmp_path):
    folder = tmp_path / "weights" / "Qwen3-4B"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_an_installed_vllm_entry_can_do_everything_but_stop_until_it_runs(plugins, model):
    entry = {"name": "q", "backend": "vllm", "download": {"path": str(model)}}

    assert availability(entry, plugins=plugins) == {"activate": None, "stop": "not running", "verify": None,
                                                   "lock": None}
    assert availability(entry, plugins=plugins, active_name="other")["stop"] == \
        "not running (other is the live model)"
    assert availability(entry, plugins=plugins, active_name="q")["stop"] is None


def test_not_installed_disables_activate_verify_and_lock(plugins, tmp_path):
    entry = {"name": "q", "backend": "vllm", "download": {"path": str(tmp_path / "gone")}}

    got = availability(entry, plugins=plugins)

    for action in ("activate", "verify", "lock"):
        assert got[action].startswith(f"not installed: no files at {tmp_path / 'gone'}"), got


def test_a_hub_id_as_model_path_can_still_be_activated(plugins):
    entry = {"name": "q", "backend": "vllm", "backend_config": {"model_path": "Qwen/Qwen3-4B"}}
    got = availability(entry, plugins=plugins)
    assert got["activate"] is None and got["verify"].startswith("not installed")


def test_a_backend_no_plugin_provides(plugins, model):
    entry = {"name": "q", "backend": "tensorrt", "download": {"path": str(model)}}
    got = availability(entry, plugins=plugins)
    assert got["activate"] == got["stop"] == ("the tensorrt backend is not loaded: no installed plugin provides it "
                                              "(see imageworks-models plugins)")
    assert got["verify"] is None  # hashing needs no backend


def test_a_remote_entry_starts_nothing_and_has_nothing_to_hash(plugins):
    entry = {"name": "q", "backend": "vllm", "backend_config": {"base_url": "http://user:secret@gpu-box:8000/v1"}}
    got = availability(entry, plugins=plugins)
    assert got["activate"].startswith("served remotely at http://") and "secret" not in got["activate"]
    assert got["verify"] == got["lock"] == "remote only: there are no local files to hash"


def test_a_locked_entry_whose_files_differ_cannot_be_activated(plugins, model):
    entry = {"name": "q", "backend": "vllm", "download": {"path": str(model)},
             "version_lock": {"locked": True, "last_status": "diverged"}}
    got = availability(entry, plugins=plugins)
    assert got["activate"].startswith("locked, and its files differ") and got["lock"] is None


def test_ollama_entries_load_into_a_running_server_so_stop_is_not_tied_to_the_vllm_state(plugins):
    entry = {"name": "llama", "backend": "ollama", "download": {"path": "ollama:/llama3.2:3b"}}
    assert availability(entry, plugins=plugins) == {"activate": None, "stop": None, "verify": None, "lock": None}
