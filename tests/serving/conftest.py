"""Fixtures for the serving tests: the vLLM stand-in orchestrator (``orch``) and the stand-in Ollama."""

from plugintests import use, use_tests

use("ollama", "vllm")
use_tests("serving")  # test_untracked_server.py reuses test_activation.py's foreign server

from ollama_fixtures import ollama_server, store  # noqa: E402,F401
from vllm_fixtures import _subreaper, orch  # noqa: E402,F401
