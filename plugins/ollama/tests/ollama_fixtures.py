"""Fixtures for the Ollama plugin's tests: ``store`` (an empty Ollama store, OLLAMA_MODELS set) and ``ollama_server``
(a started stand-in Ollama server on that store, OLLAMA_HOST set). See ollamastore.py and ollamaserver.py.

The suite runs with ``--import-mode=importlib``, so this folder is put on ``sys.path`` for ``import ollamastore``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from ollamaserver import StandInOllama  # noqa: E402


@pytest.fixture
def store(imageworks_isolated, tmp_path, monkeypatch) -> Path:
    """An empty Ollama store (``manifests/`` and ``blobs/``) named by OLLAMA_MODELS, with the registry in
    ``tmp_path/registry`` (IMAGEWORKS_REGISTRY_DIR) and OLLAMA_HOST on a port where nothing listens."""
    root = tmp_path / "ollama-models"
    (root / "manifests").mkdir(parents=True)
    (root / "blobs").mkdir()
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(tmp_path / "registry"))
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")  # discard port: connection refused, never a real server
    return root


@pytest.fixture
def ollama_server(store, monkeypatch):
    """A started ``StandInOllama`` serving ``store``, with OLLAMA_HOST pointing at it; stopped after the test."""
    with StandInOllama(store) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.host)
        yield server


LEGACY_FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "imageworks-legacy"


@pytest.fixture
def legacy_files():
    """``legacy_files(folder)`` copies the earlier ImageWorks tool's registry files into ``folder``."""
    import shutil

    if not LEGACY_FIXTURES.is_dir():
        pytest.skip(f"legacy fixtures not found at {LEGACY_FIXTURES} (they live in ../shared beside the checkout)")

    def copy(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for f in LEGACY_FIXTURES.glob("*.json"):
            shutil.copyfile(f, folder / f.name)
        return folder

    return copy
