"""The ollama plugin's tests get their fixtures from ollama_fixtures.py, which the core's tests that run against this
plugin's stand-ins import too (tests/*/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # --import-mode=importlib: the helper modules beside this file are imported by name
    sys.path.insert(0, HERE)

from ollama_fixtures import store, ollama_server, legacy_files  # noqa: E402,F401 - fixtures and hooks for this folder
