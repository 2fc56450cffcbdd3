"""Asking vLLM's OpenAI server whether it is ready: ``/health`` answers 200 and ``/v1/models`` lists the served
id; its version from ``/version``. The HTTP client is the core's (``openai_ready`` in the plugin API: bounded,
no proxy, no redirects)."""

from __future__ import annotations

from imageworks_models.api import Probe, openai_ready, version_at


def probe(endpoint: str, served_model_id: str) -> Probe:
    """Ready when ``/health`` answers 200 and ``/v1/models`` lists ``served_model_id``."""
    return openai_ready(endpoint, served_model_id)


def version(endpoint: str) -> str | None:
    """``GET /version`` (vLLM's ``{"version": ...}``), or ``None``."""
    return version_at(endpoint, "/version", "version")
