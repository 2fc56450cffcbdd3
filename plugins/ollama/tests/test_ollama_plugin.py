"""The Ollama plugin (imageworks-models-ollama): its source, its backend, and the OLLAMA_HOST endpoint rule.

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


DIST = "imageworks-models-ollama"


def test_hook_register_backends_ollama_plugin_is_listed_ok_with_source_and_backend():
    """Installed as its pyproject declares, and listed ok with its version, hooks and records."""
    check_installed_plugin(PLUGIN_DIR, "ollama", hooks=["register_backends", "register_sources"],
                           provides={"source": ["ollama"], "backend": ["ollama"]})


def test_hook_register_sources_ollama_records():
    from imageworks_models import Backend, Source

    host = get_plugins()

    assert isinstance(host.sources["ollama"], Source)
    assert isinstance(host.backends["ollama"], Backend)
    assert host.backends["ollama"].endpoint is not None
    assert host.owner[("source", "ollama")].distribution == DIST
    assert host.owner[("backend", "ollama")].distribution == DIST


def test_ollama_plugin_loads_alone(monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_PLUGINS", "ollama")

    row = plugin_row("ollama")

    assert row["status"] == "ok"
    assert set(get_plugins(load_settings()).backends) == {"ollama"}


@pytest.mark.parametrize("ollama_host, expected", [
    (None, "http://127.0.0.1:11434/v1"),  # unset: Ollama's own default
    ("0.0.0.0:11434", "http://127.0.0.1:11434/v1"),  # a bind-all address is reached on loopback
    ("0.0.0.0", "http://127.0.0.1:11434/v1"),
    ("myhost", "http://myhost:11434/v1"),  # no scheme, no port
    ("myhost:11500", "http://myhost:11500/v1"),
    ("https://h:1234/", "https://h:1234/v1"),  # scheme and trailing slash kept / dropped
    ("http://[::1]:11500", "http://[::1]:11500/v1"),
    ("[::]:11434", "http://127.0.0.1:11434/v1"),
])
def test_ollama_endpoint_follows_ollama_host(tmp_path, ollama_host, expected):
    env = {} if ollama_host is None else {"OLLAMA_HOST": ollama_host}
    backend = get_plugins().backend("ollama")

    assert backend.endpoint({"name": "llava:7b", "backend": "ollama"}, settings(tmp_path, **env)) == expected


def test_ollama_endpoint_ignores_per_entry_ports(tmp_path):
    # one Ollama server serves every pulled model; an entry's backend_config does not move it
    entry = {"name": "llava:7b", "backend": "ollama", "backend_config": {"host": "elsewhere", "port": 9999}}

    endpoint = get_plugins().backend("ollama").endpoint(entry, settings(tmp_path, OLLAMA_HOST="box:11434"))

    assert endpoint == "http://box:11434/v1"


def test_select_uses_ollama_host_from_the_environment(tmp_path, monkeypatch):
    registry = testing.make_registry(tmp_path / "registry",
                                     {"name": "llava-7b", "backend": "ollama", "served_model_id": "llava:7b"})
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:11999")

    result = run_cli("--registry-dir", registry, "select", "llava-7b", "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["endpoint"] == "http://127.0.0.1:11999/v1"
    assert data["served_model_id"] == "llava:7b"
    assert data["note"] is None
