"""Shared fixtures. Every test runs with a private HOME, XDG folders and working directory, and with
no IMAGEWORKS_* / CHAT_PROXY_* / OLLAMA_HOST variables, so nothing touches the real home folder."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from imageworks_models.testing import isolate_environment, run_cli

REPO = Path(__file__).resolve().parent.parent
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # --import-mode=importlib: shared helper modules (modelfiles.py) are imported by name
    sys.path.insert(0, HERE)
LEGACY_FIXTURES = REPO.parent / "shared" / "fixtures" / "imageworks-legacy"
SHIPPED_CONFIGS = REPO / "configs"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    yield from isolate_environment(tmp_path_factory.mktemp("env"), monkeypatch)


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
    return run_cli


@pytest.fixture
def python():
    return sys.executable
