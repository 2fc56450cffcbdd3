"""The bundled plugins' test folders on ``sys.path``, for the core's tests that run against their stand-ins (the
stand-in Hub, Ollama and vLLM servers, the llama.cpp harness) and use their fixtures (``*_fixtures.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PLUGINS = TESTS.parent / "plugins"


def use(*plugins: str) -> None:
    """Put ``plugins/<name>/tests`` on ``sys.path`` for each name (the suite runs with ``--import-mode=importlib``)."""
    for name in plugins:
        folder = str(PLUGINS / name / "tests")
        if folder not in sys.path:
            sys.path.insert(0, folder)


def use_tests(*folders: str) -> None:
    """Put ``tests/<folder>`` on ``sys.path`` for each name, for a test module another folder's tests import."""
    for name in folders:
        folder = str(TESTS / name)
        if folder not in sys.path:
            sys.path.insert(0, folder)
