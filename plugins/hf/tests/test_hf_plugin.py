"""The Hugging Face plugin (imageworks-models-hf): installed, loaded, and registering its source.

The conftest in tests/ is not visible here; imageworks_models.testing isolates the environment.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest

from imageworks_models.plugins import get_plugins
from imageworks_models.settings import load_settings
from imageworks_models.testing import isolate_environment, plugin_row

PLUGIN_DIR = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    yield from isolate_environment(tmp_path, monkeypatch)


DIST = "imageworks-models-hf"


def test_pyproject_declares_the_entry_point_that_is_installed():
    assert PYPROJECT["project"]["name"] == DIST
    assert PYPROJECT["project"]["entry-points"]["imageworks_models"] == {"hf": "imageworks_models_hf.plugin"}
    installed = {ep.name: ep.value for ep in entry_points(group="imageworks_models") if ep.dist.name == DIST}
    assert installed == {"hf": "imageworks_models_hf.plugin"}


def test_hook_register_sources_hf_plugin_is_listed_ok_with_its_source():
    row = plugin_row("hf")

    assert row["status"] == "ok", row["errors"]
    assert row["distribution"] == DIST
    assert row["version"] == PYPROJECT["project"]["version"] == version(DIST)
    assert row["module"] == "imageworks_models_hf.plugin"
    assert row["hooks"] == ["register_sources"]
    assert row["provides"] == {"source": ["hf"]}
    assert row["errors"] == []


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
