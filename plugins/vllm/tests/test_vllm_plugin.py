"""The vLLM plugin (imageworks-models-vllm): its backend and the endpoint rule (entry host/port, else
the orchestrator's single port, ``vllm_port`` / CHAT_PROXY_VLLM_PORT).

The conftest in tests/ is not visible here; the ``imageworks_isolated`` fixture isolates the environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imageworks_models import testing
from imageworks_models.pluginhost.manager import get_plugins
from imageworks_models.settings import load_settings
from imageworks_models.testing import check_installed_plugin, plugin_row, run_cli
from imageworks_models.testing import test_settings as settings

PLUGIN_DIR = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("imageworks_isolated")  # from imageworks_models.pytest_plugin


DIST = "imageworks-models-vllm"


def test_hook_register_backends_vllm_plugin_is_listed_ok_with_its_backend():
    """Installed as its pyproject declares, and listed ok with its version, hooks and records."""
    check_installed_plugin(PLUGIN_DIR, "vllm", hooks=["register_backends"],
                           provides={"backend": ["vllm"]})


def test_hook_register_backends_vllm_record():
    from imageworks_models import Backend

    host = get_plugins()

    assert isinstance(host.backends["vllm"], Backend)
    assert host.backend("VLLM") is host.backends["vllm"]
    assert host.owner[("backend", "vllm")].distribution == DIST


def test_vllm_plugin_loads_alone(monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_PLUGINS", "vllm")

    row = plugin_row("vllm")

    assert row["status"] == "ok"
    assert set(get_plugins(load_settings()).backends) == {"vllm"}


def endpoint(tmp_path, backend_config: dict | None, **env: str) -> str | None:
    entry = {"name": "qwen2.5-vl-7b-vllm-awq", "backend": "vllm"}
    if backend_config is not None:
        entry["backend_config"] = backend_config
    return get_plugins().backend("vllm").endpoint(entry, settings(tmp_path, **env))


@pytest.mark.parametrize("backend_config, expected", [
    ({"host": "10.1.2.3", "port": 9001}, "http://10.1.2.3:9001/v1"),
    ({"host": "gpu-box", "port": 8001}, "http://gpu-box:8001/v1"),
    ({"port": 9001}, "http://127.0.0.1:9001/v1"),
    ({"host": "0.0.0.0", "port": 9001}, "http://127.0.0.1:9001/v1"),  # bind-all is reached on loopback
    ({"host": "::1", "port": 9001}, "http://[::1]:9001/v1"),
    ({"base_url": "http://remote:8000"}, "http://remote:8000/v1"),
    ({"base_url": "https://remote/v1/"}, "https://remote/v1"),
])
def test_vllm_endpoint_uses_the_entry_host_and_port(tmp_path, backend_config, expected):
    assert endpoint(tmp_path, backend_config, CHAT_PROXY_VLLM_PORT="8123") == expected


@pytest.mark.parametrize("backend_config", [None, {}, {"host": "127.0.0.1"}])
def test_vllm_endpoint_defaults_to_the_single_serving_port(tmp_path, backend_config):
    assert endpoint(tmp_path, backend_config) == "http://127.0.0.1:8000/v1"
    assert endpoint(tmp_path, backend_config, CHAT_PROXY_VLLM_PORT="8123") == "http://127.0.0.1:8123/v1"


def test_vllm_endpoint_default_port_from_config_file(tmp_path):
    (tmp_path / "cwd" / "imageworks.toml").write_text("vllm_port = 8200\n", encoding="utf-8")

    assert endpoint(tmp_path, {}) == "http://127.0.0.1:8200/v1"
    assert endpoint(tmp_path, {}, CHAT_PROXY_VLLM_PORT="8300") == "http://127.0.0.1:8300/v1"  # env beats file


def test_vllm_single_port_is_off_by_default(tmp_path):
    assert settings(tmp_path).single_port is False
    assert endpoint(tmp_path, {"port": 9001}, CHAT_PROXY_VLLM_PORT="8123", CHAT_PROXY_VLLM_SINGLE_PORT="0") == \
        "http://127.0.0.1:9001/v1"


@pytest.mark.parametrize("backend_config, expected", [
    ({"host": "10.1.2.3", "port": 9001}, "http://10.1.2.3:8123/v1"),
    ({"port": 9001}, "http://127.0.0.1:8123/v1"),
    ({"host": "0.0.0.0", "port": 9001}, "http://127.0.0.1:8123/v1"),
    ({}, "http://127.0.0.1:8123/v1"),
    (None, "http://127.0.0.1:8123/v1"),
])
def test_vllm_endpoint_single_port_mode_uses_chat_proxy_port_over_the_entry_port(tmp_path, backend_config, expected):
    assert endpoint(tmp_path, backend_config, CHAT_PROXY_VLLM_PORT="8123", CHAT_PROXY_VLLM_SINGLE_PORT="1") == expected


@pytest.mark.parametrize("backend_config, expected", [
    ({"base_url": "http://remote:8000", "port": 9001}, "http://remote:8000/v1"),
    ({"base_url": "https://remote/v1/"}, "https://remote/v1"),
])
def test_vllm_endpoint_single_port_mode_keeps_the_remote_base_url(tmp_path, backend_config, expected):
    assert endpoint(tmp_path, backend_config, CHAT_PROXY_VLLM_PORT="8123", CHAT_PROXY_VLLM_SINGLE_PORT="1") == expected


@pytest.mark.parametrize("single", ["0", "1"])
@pytest.mark.parametrize("base_url", ["file:///etc/passwd", "ftp://remote/v1", "http://", "javascript:alert(1)"])
def test_vllm_endpoint_refuses_a_base_url_that_is_not_http(tmp_path, base_url, single):
    from imageworks_models.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        endpoint(tmp_path, {"base_url": base_url, "port": 9001}, CHAT_PROXY_VLLM_SINGLE_PORT=single)

    assert info.value.message == f"backend_config.base_url {base_url!r} is not an http(s) URL"


def test_vllm_endpoint_refuses_a_base_url_with_credentials(tmp_path):
    from imageworks_models.errors import ConfigError

    with pytest.raises(ConfigError, match="carries credentials") as info:
        endpoint(tmp_path, {"base_url": "http://user:s3cret@remote:8000"})

    assert "s3cret" not in info.value.message


def test_select_uses_the_vllm_plugin_and_chat_proxy_port(tmp_path, monkeypatch):
    registry = testing.make_registry(tmp_path / "registry",
                                     {"name": "qwen-vl", "backend": "vllm", "served_model_id": "Qwen/Qwen2.5-VL"})
    monkeypatch.setenv("CHAT_PROXY_VLLM_PORT", "8444")

    result = run_cli("--registry-dir", registry, "select", "qwen-vl", "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["endpoint"] == "http://127.0.0.1:8444/v1"
    assert data["served_model_id"] == "Qwen/Qwen2.5-VL"
    assert data["note"] is None


def test_select_without_the_vllm_plugin_has_no_default_port(tmp_path, monkeypatch):
    # the single-port default is this plugin's rule: with the plugin disabled the core cannot guess it
    registry = testing.make_registry(tmp_path / "registry", {"name": "qwen-vl", "backend": "vllm"})
    monkeypatch.setenv("IMAGEWORKS_DISABLE_PLUGINS", "vllm")

    result = run_cli("--registry-dir", registry, "select", "qwen-vl", "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["endpoint"] is None
    assert "vllm" in data["note"]
