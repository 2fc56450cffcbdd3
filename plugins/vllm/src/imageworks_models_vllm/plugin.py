"""Hook implementations of the vLLM plugin."""

from imageworks_models import Backend, hookimpl
from imageworks_models.endpoints import openai_base_url


def endpoint(entry, settings):
    """vLLM's OpenAI server: the entry's host/port, else the orchestrator's single port."""
    return openai_base_url(entry.get("backend_config") or {}, default_port=settings.vllm_port)


@hookimpl
def register_backends(register):
    register(Backend(name="vllm", description="vLLM OpenAI-compatible server (vllm serve)", endpoint=endpoint))
