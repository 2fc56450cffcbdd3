"""Hook implementations of the llama.cpp plugin."""

from imageworks_models.api import Backend, hookimpl
from imageworks_models.api import local_base_url

LLAMACPP_PORT = 8080  # llama-server's default --port


def endpoint(entry, settings):
    """A remote entry's ``base_url``, else the llama.cpp server on the entry's host and serving port (the
    entry's ``port``, default 8080; ``CHAT_PROXY_VLLM_PORT`` in single-port mode)."""
    return local_base_url(entry.get("backend_config") or {}, settings, default_port=LLAMACPP_PORT)


def _load():
    from .backend import LlamacppBackend

    return LlamacppBackend()


@hookimpl
def register_backends(register):
    register(Backend(name="llamacpp", description="llama.cpp: llama-server, or python -m llama_cpp.server",
                     endpoint=endpoint, load=_load, activates=True))
