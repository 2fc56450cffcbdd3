"""Hook implementations of the LMDeploy plugin."""

from imageworks_models import Backend, hookimpl
from imageworks_models.endpoints import openai_base_url

LMDEPLOY_PORT = 23333  # lmdeploy serve api_server's default --server-port


def endpoint(entry, settings):
    """A remote entry's ``base_url``, else LMDeploy's api_server on the entry's host and port."""
    return openai_base_url(entry.get("backend_config") or {}, default_port=LMDEPLOY_PORT)


@hookimpl
def register_backends(register):
    register(Backend(name="lmdeploy", description="LMDeploy api_server (local) or a remote endpoint",
                     endpoint=endpoint))
