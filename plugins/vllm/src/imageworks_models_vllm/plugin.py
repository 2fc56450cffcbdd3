"""Hook implementations of the vLLM plugin."""

from imageworks_models.api import Backend, hookimpl
from imageworks_models.api import local_base_url


def endpoint(entry, settings):
    """A remote entry's ``base_url``; else vLLM's OpenAI server on the serving port (see
    ``endpoints.serving_port``: ``CHAT_PROXY_VLLM_PORT`` in single-port mode, else the entry's port)."""
    return local_base_url(entry.get("backend_config") or {}, settings, default_port=settings.vllm_port)


def _load():
    from .backend import VllmBackend

    return VllmBackend()


@hookimpl
def register_backends(register):
    register(Backend(name="vllm", description="vLLM OpenAI-compatible server (vllm serve)", endpoint=endpoint,
                     load=_load, activates=True))
