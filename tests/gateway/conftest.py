"""Fixtures for the gateway tests: the vLLM stand-in (``orch``), the stand-in Ollama, and the real llama.cpp
engine (``llama``; tests marked ``engine`` skip without it, or fail with CI=true)."""

from plugintests import use

use("hf", "ollama", "llamacpp", "vllm")

from llamacpp_fixtures import llama, pytest_runtest_setup  # noqa: E402,F401
from ollama_fixtures import ollama_server, store  # noqa: E402,F401
from vllm_fixtures import _subreaper, orch  # noqa: E402,F401
