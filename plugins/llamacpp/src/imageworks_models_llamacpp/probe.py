"""Asking a llama.cpp server whether it is ready.

``llama-server`` listens while it loads the model and answers ``/health`` with 503 until it is loaded, then 200.
llama-cpp-python's ``llama_cpp.server`` loads the model before it listens and has no ``/health`` (404). So:
ready when ``/health`` answers 200 or 404 and ``/v1/models`` lists the served id (the alias). The HTTP client is
the core's (``openai_ready`` in the plugin API: bounded, no proxy, no redirects).
"""

from __future__ import annotations

from imageworks_models.api import Probe, openai_ready, version_at


def probe(endpoint: str, served_model_id: str) -> Probe:
    """One readiness check (see the module docstring)."""
    return openai_ready(endpoint, served_model_id, health_ok=(200, 404), loading=(503,))


def version(endpoint: str) -> str | None:
    """llama-server's build (``GET /props``: ``build_info``), or ``None`` (llama_cpp.server does not say)."""
    return version_at(endpoint, "/props", "build_info")
