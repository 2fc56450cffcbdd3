"""Fixtures for the llama.cpp plugin's tests.

Tests marked ``@pytest.mark.engine`` run the real engine, llama-cpp-python's server (``python -m
llama_cpp.server``, the ``engine`` dependency group; see the README), on tiny models the tests write
(``tinygguf.py``). Without the engine they are skipped, saying why, except with ``CI=true``, where a missing
engine fails them: CI must run them.

``llama`` is an isolated orchestrator set-up for the engine: a registry, a free serving port, the engine as
``IMAGEWORKS_LLAMACPP_BIN``, and after the test a check that no engine process of this test is left.

The suite runs with ``--import-mode=importlib``, so this folder and the helper folders of the other bundled
plugins (the stand-in Hub, the Ollama store writer) are put on ``sys.path``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PLUGINS = HERE.parents[1]
for folder in (PLUGINS / "ollama" / "tests", PLUGINS / "hf" / "tests", HERE):  # HERE first on sys.path
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from llamaharness import Llama, engine_missing  # noqa: E402


def pytest_runtest_setup(item):
    if item.get_closest_marker("engine") is None:
        return
    why = engine_missing()
    if why is None:
        return
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI=true: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session", autouse=True)
def _subreaper():
    # Servers started by a CLI process that has exited are re-parented to the test process, not to init.
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


@pytest.fixture
def llama(imageworks_isolated, tmp_path, monkeypatch):
    """A :class:`Llama` set-up; after the test, an engine process still running is a failure (an orphan)."""
    setup = Llama(tmp_path, monkeypatch)
    yield setup
    left = setup.cleanup()
    assert not left, f"engine processes left running after the test: {left}"
