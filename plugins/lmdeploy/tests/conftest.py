"""Fixtures for the LMDeploy plugin's tests: ``orch``, an isolated orchestrator set-up whose entries use the
``lmdeploy`` backend, served by the stand-in server (``standin_server.py``) on a free port.

The stand-in and its helpers (``orchestration.py``) live with the vLLM plugin's tests; that folder is put on
``sys.path`` (the suite runs with ``--import-mode=importlib``). When it is missing (this plugin installed
alone), the tests that need the orchestrator are skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

VLLM_TESTS = Path(__file__).resolve().parents[2] / "vllm" / "tests"
HAVE_STANDIN = (VLLM_TESTS / "orchestration.py").is_file() and (VLLM_TESTS / "standin_server.py").is_file()
MISSING = f"the stand-in server and orchestration helpers ({VLLM_TESTS}) are missing: the vLLM plugin's tests " \
          "are not next to this plugin"

if HAVE_STANDIN and str(VLLM_TESTS) not in sys.path:
    sys.path.insert(0, str(VLLM_TESTS))


@pytest.fixture(scope="session", autouse=True)
def _subreaper():
    if HAVE_STANDIN:
        from orchestration import become_subreaper

        become_subreaper()


def mentions(pid: int, text: str) -> bool:
    """Whether process ``pid``'s command line mentions ``text``."""
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def lmdeploy_entry(name: str, weights: Path, **fields):
    """An orchestration entry (see ``orchestration.entry``) for the lmdeploy backend."""
    from orchestration import entry

    return entry(name, weights, backend="lmdeploy", **fields)


@pytest.fixture
def orch(imageworks_isolated, tmp_path, monkeypatch):
    """An :class:`orchestration.Orchestration` with two lmdeploy entries, ``internvl-a`` (served id
    ``org/internvl-a``) and ``internvl-b`` (vision; pytorch engine, awq); after the test, anything still
    running is a failure (an orphan). ``orchestration.standin_processes`` (and so ``orch.server_pids()`` and the
    clean-up) sees only this test's stand-ins."""
    if not HAVE_STANDIN:
        pytest.skip(MISSING)
    import orchestration

    # Only this test's stand-ins (their command lines name its tmp_path): another test run on the machine may
    # be using the same stand-in at the same time, and its servers are neither ours to count nor to kill.
    everywhere = orchestration.standin_processes
    monkeypatch.setattr(orchestration, "standin_processes",
                        lambda: [pid for pid in everywhere() if mentions(pid, f"{tmp_path}/")])

    weights = tmp_path / "weights" / "model"
    entries = (lmdeploy_entry("internvl-a", weights),
               lmdeploy_entry("internvl-b", weights, capabilities={"vision": True},
                              backend_config={"engine": "pytorch", "model_format": "awq"}))
    setup = orchestration.Orchestration(tmp_path, monkeypatch, *entries)
    yield setup
    left = setup.cleanup()
    assert not left, f"stand-in processes left running after the test: {left}"
