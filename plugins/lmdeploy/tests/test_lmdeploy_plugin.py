"""The LMDeploy plugin (imageworks-models-lmdeploy): its backend and the endpoint rule (``base_url`` of a
remote entry, else LMDeploy's api_server on the entry's host/port, default port 23333).

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


DIST = "imageworks-models-lmdeploy"


def test_hook_register_backends_lmdeploy_plugin_is_listed_ok_with_its_backend():
    """Installed as its pyproject declares, and listed ok with its version, hooks and records."""
    check_installed_plugin(PLUGIN_DIR, "lmdeploy", hooks=["register_backends"],
                           provides={"backend": ["lmdeploy"]})


def test_hook_register_backends_lmdeploy_record():
    from imageworks_models import Backend

    host = get_plugins()

    assert isinstance(host.backends["lmdeploy"], Backend)
    assert host.owner[("backend", "lmdeploy")].distribution == DIST


def test_lmdeploy_plugin_loads_alone(monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_PLUGINS", "lmdeploy")

    row = plugin_row("lmdeploy")

    assert row["status"] == "ok"
    assert set(get_plugins(load_settings()).backends) == {"lmdeploy"}


def endpoint(tmp_path, backend_config: dict | None, **env: str) -> str | None:
    entry = {"name": "internvl2-8b-lmdeploy", "backend": "lmdeploy"}
    if backend_config is not None:
        entry["backend_config"] = backend_config
    return get_plugins().backend("lmdeploy").endpoint(entry, settings(tmp_path, **env))


@pytest.mark.parametrize("backend_config, expected", [
    ({"base_url": "http://gpu:23333"}, "http://gpu:23333/v1"),  # without /v1: added
    ({"base_url": "http://gpu:23333/"}, "http://gpu:23333/v1"),
    ({"base_url": "http://gpu:23333/v1"}, "http://gpu:23333/v1"),  # with /v1: kept as is
    ({"base_url": "https://triton.example.com/v1/"}, "https://triton.example.com/v1"),
    ({"base_url": "http://gpu:23333/v1", "host": "ignored", "port": 1}, "http://gpu:23333/v1"),  # base_url wins
])
def test_lmdeploy_endpoint_base_url(tmp_path, backend_config, expected):
    assert endpoint(tmp_path, backend_config) == expected


@pytest.mark.parametrize("backend_config, expected", [
    ({"host": "10.0.0.9", "port": 24000}, "http://10.0.0.9:24000/v1"),
    ({"port": 24000}, "http://127.0.0.1:24000/v1"),
    ({"host": "gpu-box"}, "http://gpu-box:23333/v1"),
    ({"host": "0.0.0.0", "port": 24000}, "http://127.0.0.1:24000/v1"),
])
def test_lmdeploy_endpoint_host_and_port(tmp_path, backend_config, expected):
    assert endpoint(tmp_path, backend_config) == expected


@pytest.mark.parametrize("backend_config", [None, {}])
def test_lmdeploy_endpoint_default_port_is_23333(tmp_path, backend_config):
    assert endpoint(tmp_path, backend_config) == "http://127.0.0.1:23333/v1"
    # the vLLM single serving port is not LMDeploy's
    assert endpoint(tmp_path, backend_config, CHAT_PROXY_VLLM_PORT="8123") == "http://127.0.0.1:23333/v1"


def test_select_uses_the_lmdeploy_plugin(tmp_path):
    registry = testing.make_registry(
        tmp_path / "registry",
        {"name": "internvl-local", "backend": "lmdeploy"},
        {"name": "internvl-remote", "backend": "lmdeploy", "backend_config": {"base_url": "http://gpu-box:23333"}},
    )

    local = run_cli("--registry-dir", registry, "select", "internvl-local", "--json")
    remote = run_cli("--registry-dir", registry, "select", "internvl-remote", "--json")

    assert local.exit_code == 0 and remote.exit_code == 0, (local.stderr, remote.stderr)
    assert json.loads(local.stdout)["endpoint"] == "http://127.0.0.1:23333/v1"
    assert json.loads(remote.stdout)["endpoint"] == "http://gpu-box:23333/v1"
    assert json.loads(local.stdout)["note"] is None
