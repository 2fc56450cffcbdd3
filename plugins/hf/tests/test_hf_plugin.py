"""The Hugging Face plugin (imageworks-models-hf): installed, loaded, and registering its source.

The conftest in tests/ is not visible here; the ``imageworks_isolated`` fixture isolates the environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imageworks_models.pluginhost.manager import get_plugins
from imageworks_models.settings import load_settings
from imageworks_models.testing import check_installed_plugin, plugin_row

PLUGIN_DIR = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("imageworks_isolated")  # from imageworks_models.pytest_plugin


DIST = "imageworks-models-hf"


def test_hook_register_sources_hf_plugin_is_listed_ok_with_its_source():
    """Installed as its pyproject declares, and listed ok with its version, hooks and records."""
    check_installed_plugin(PLUGIN_DIR, "hf", hooks=["register_sources"],
                           provides={"source": ["hf"]})


def test_hook_register_sources_hf_source_record():
    from imageworks_models import Source

    host = get_plugins()
    source = host.sources["hf"]

    assert isinstance(source, Source)
    assert source.description
    assert host.owner[("source", "hf")].distribution == DIST
    assert "hf" not in host.backends  # a source only: Hugging Face serves nothing


def test_hf_plugin_loads_alone(monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_PLUGINS", "hf")

    row = plugin_row("hf")

    assert row["status"] == "ok"
    assert row["provides"] == {"source": ["hf"]}
    assert all(p.status == "disabled" for p in get_plugins(load_settings()).plugins if p.name not in ("hf", "builtin"))


def test_hf_plugin_can_be_disabled(monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_DISABLE_PLUGINS", DIST)

    row = plugin_row("hf")

    assert row["status"] == "disabled"
    assert "hf" not in get_plugins(load_settings()).sources
