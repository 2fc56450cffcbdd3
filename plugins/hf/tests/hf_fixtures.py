"""Fixtures for the Hugging Face plugin's tests: ``hub``, a started stand-in Hub (see hubserver.py).

The suite runs with ``--import-mode=importlib``, so this folder is put on ``sys.path`` for ``import hubserver``.
``huggingface_hub.constants.ENDPOINT`` is read when huggingface_hub is imported: pass ``endpoint=hub.url`` to its
functions (``HfApi(endpoint=hub.url)``, ``hf_hub_download(..., endpoint=hub.url)``) rather than relying on HF_ENDPOINT.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from hubserver import StandInHub  # noqa: E402

HUB_TOKEN = "hf_standin_test_token"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A started ``StandInHub`` accepting ``hub.token`` (= ``HUB_TOKEN``), stopped after the test.

    The test runs with HF_ENDPOINT pointing at it, telemetry, Xet and progress bars off, HF_HOME under tmp_path and
    no HF_TOKEN.
    """
    with StandInHub(token=HUB_TOKEN) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server
