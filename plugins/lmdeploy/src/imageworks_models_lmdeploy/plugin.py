"""Hook implementations of the LMDeploy plugin."""

from imageworks_models.api import Backend, hookimpl
from imageworks_models.api import local_base_url

LMDEPLOY_PORT = 23333  # lmdeploy serve api_server's default --server-port


def endpoint(entry, settings):
    """A remote entry's ``base_url``, else LMDeploy's api_server on the entry's host and serving port (the
    entry's ``port``, default 23333; ``CHAT_PROXY_VLLM_PORT`` in single-port mode)."""
    return local_base_url(entry.get("backend_config") or {}, settings, default_port=LMDEPLOY_PORT)


def _load():
    from .backend import LmdeployBackend

    return LmdeployBackend()


@hookimpl
def register_backends(register):
    register(Backend(name="lmdeploy", description="LMDeploy api_server (local) or a remote endpoint",
                     endpoint=endpoint, load=_load, activates=True))
