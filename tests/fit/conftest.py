"""Fixtures for the memory-fit tests that start servers: the vLLM stand-in (``orch``) and the real llama.cpp
engine (``llama``; tests marked ``engine`` skip without it, or fail with CI=true)."""

from plugintests import use

use("hf", "ollama", "llamacpp", "vllm")

from llamacpp_fixtures import llama, pytest_runtest_setup  # noqa: E402,F401
from vllm_fixtures import _subreaper, orch  # noqa: E402,F401
