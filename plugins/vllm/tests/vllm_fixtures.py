"""Fixtures for the vLLM plugin's tests: ``orch``, an isolated orchestrator set-up with two entries (``qwen-a``,
``qwen-b`` with vision) served by the stand-in server on a free port (see orchestration.py).

The suite runs with ``--import-mode=importlib``, so this folder is put on ``sys.path`` for ``import orchestration``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from orchestration import Orchestration, become_subreaper  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _subreaper():
    become_subreaper()


@pytest.fixture
def orch(imageworks_isolated, tmp_path, monkeypatch):
    """An :class:`Orchestration`; after the test, anything still running is a failure (an orphan)."""
    setup = Orchestration(tmp_path, monkeypatch)
    yield setup
    left = setup.cleanup()
    assert not left, f"stand-in processes left running after the test: {left}"
