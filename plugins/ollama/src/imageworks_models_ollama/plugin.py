"""Hook implementations of the Ollama plugin: the ``ollama`` source (store import) and backend (server)."""

from imageworks_models.api import Backend, Source, hookimpl
from imageworks_models.api import normalize_host_url

OLLAMA_PORT = 11434


def endpoint(entry, settings):
    """Ollama serves every pulled model on one server: its OpenAI-compatible API is ``<host>/v1``."""
    return f"{normalize_host_url(settings.ollama_host, OLLAMA_PORT)}/v1"


def _source():
    from .source import OllamaSource

    return OllamaSource()


def _backend():
    from .backend import OllamaBackend

    return OllamaBackend()


@hookimpl
def register_sources(register):
    register(Source(name="ollama", description="Models in an Ollama store (manifests and blobs)", load=_source,
                    provides=("discover", "store")))


@hookimpl
def register_backends(register):
    register(Backend(name="ollama", description="An Ollama server (OLLAMA_HOST)", endpoint=endpoint, load=_backend))
