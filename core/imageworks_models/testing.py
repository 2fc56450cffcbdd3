"""Helpers for testing imageworks-models and its plugins (bundled or third-party).

    import pytest
    from imageworks_models.testing import isolate_environment, plugin_row

    @pytest.fixture(autouse=True)
    def isolated(tmp_path, monkeypatch):
        yield from isolate_environment(tmp_path, monkeypatch)

    def test_my_plugin_loads():
        assert plugin_row("myplugin")["status"] == "ok"
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

_SETTING_PREFIXES = ("IMAGEWORKS_", "CHAT_PROXY_")
_SETTING_NAMES = ("OLLAMA_HOST", "OLLAMA_MODELS", "HF_HOME", "HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def isolate_environment(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """Run a test with a private HOME (``tmp_path/home``), XDG folders and working folder
    (``tmp_path/cwd``), none of our settings from the environment, and freshly loaded plugins.

    A generator for an autouse fixture (``yield from``); yields the home folder.
    """
    from .plugins import reset_plugins

    for key in list(os.environ):
        if key.startswith(_SETTING_PREFIXES) or key in _SETTING_NAMES:
            monkeypatch.delenv(key, raising=False)
    home, work = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.chdir(work)
    reset_plugins()
    yield home
    reset_plugins()


def test_settings(tmp_path: Path, **env: str):
    """Settings resolved inside :func:`isolate_environment`'s folders, with ``env`` as the environment."""
    from .settings import load_settings

    return load_settings(env={"HOME": str(tmp_path / "home"), **env}, cwd=tmp_path / "cwd")


test_settings.__test__ = False  # not a test, despite its name


def run_cli(*args: str, prog: str = "imageworks-models", input: str | None = None):
    """Run a console script's click app in-process; returns click's ``Result`` (stdout, stderr, exit_code)."""
    from click.testing import CliRunner

    from .cli import CliState, make_cli

    return CliRunner().invoke(make_cli(prog), list(args), obj=CliState(prog), input=input, catch_exceptions=False)


def plugin_row(name: str) -> dict[str, Any]:
    """The ``plugins --json`` row of the plugin named ``name`` (asserting there is exactly one)."""
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0, result.stderr
    rows = [p for p in json.loads(result.stdout) if p["name"] == name]
    assert len(rows) == 1, result.stdout
    return rows[0]


def make_registry(folder: Path, *entries: dict[str, Any]) -> str:
    """A registry at ``folder`` whose curated layer holds ``entries``; returns the folder as a string."""
    from .registry.store import RegistryStore

    with RegistryStore(folder).edit() as layers:
        for entry in entries:
            layers.curated.put(entry)
    return str(folder)


def check_installed_plugin(plugin_dir: Path, name: str, *, hooks: list[str],
                           provides: dict[str, list[str]]) -> dict[str, Any]:
    """Assert that the plugin distribution in ``plugin_dir`` is installed as its ``pyproject.toml`` says
    and loads cleanly: its entry point ``name`` is the installed one, and its ``plugins --json`` row is
    ``ok`` with the pyproject's distribution name and version, the hooks it implements and what it
    registered. Returns the row."""
    import tomllib
    from importlib.metadata import entry_points, version

    project = tomllib.loads((Path(plugin_dir) / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dist = project["name"]
    declared = project["entry-points"]["imageworks_models"]
    installed = {ep.name: ep.value for ep in entry_points(group="imageworks_models") if ep.dist.name == dist}
    assert installed == declared, (installed, declared)
    row = plugin_row(name)
    assert row["status"] == "ok", row["errors"]
    assert row["distribution"] == dist
    assert row["version"] == project["version"] == version(dist)
    assert row["module"] == declared[name]
    assert row["hooks"] == hooks
    assert row["provides"] == provides
    assert row["errors"] == []
    return row
