"""Shared fixtures. Every test runs with a private HOME, XDG folders and working directory, and with
no IMAGEWORKS_* / CHAT_PROXY_* / OLLAMA_HOST variables, so nothing touches the real home folder."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LEGACY_FIXTURES = REPO.parent / "shared" / "fixtures" / "imageworks-legacy"
SHIPPED_CONFIGS = REPO / "configs"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("cwd")
    for key in list(os.environ):
        if key.startswith(("IMAGEWORKS_", "CHAT_PROXY_")) or key in ("OLLAMA_HOST", "HF_HOME", "HF_ENDPOINT"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.chdir(work)
    from imageworks_models.plugins import reset_plugins

    reset_plugins()
    yield home
    reset_plugins()


@pytest.fixture
def legacy_dir(tmp_path):
    """A writable copy of the earlier ImageWorks tool's registry files."""
    if not LEGACY_FIXTURES.is_dir():
        pytest.skip(f"legacy fixtures not found at {LEGACY_FIXTURES} (they live in ../shared beside the checkout)")
    dest = tmp_path / "legacy"
    dest.mkdir()
    for f in LEGACY_FIXTURES.glob("*.json"):
        shutil.copyfile(f, dest / f.name)
    return dest


@pytest.fixture
def cli():
    """Run a console script's click app in-process: ``cli("list", "--json", prog="imageworks-models")``."""
    from click.testing import CliRunner

    from imageworks_models.cli import CliState, make_cli

    def run(*args, prog="imageworks-models", input=None):
        runner = CliRunner()
        return runner.invoke(make_cli(prog), list(args), obj=CliState(prog), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def python():
    return sys.executable
