"""``gateway``: one OpenAI-compatible endpoint for every model; ``gateway status``.

The work is in :mod:`imageworks_models.gateway`; Starlette, uvicorn, httpx and prometheus_client are imported
only when the gateway runs (the ``gateway`` extra).
"""

from __future__ import annotations

import click

from .output import common_options, emit_json, json_option, state, table


@click.group("gateway", invoke_without_command=True)
@click.option("--host", default=None, help="Address to listen on (default: IMAGEWORKS_GATEWAY_HOST, 127.0.0.1). "
                                           "Any other than loopback needs an API key.")
@click.option("--port", type=int, default=None, help="Port (default: IMAGEWORKS_GATEWAY_PORT, 8080).")
@click.option("--api-key-file", type=click.Path(dir_okay=False), default=None,
              help="File holding the key clients must send as 'Authorization: Bearer KEY' "
                   "(default: IMAGEWORKS_GATEWAY_API_KEY_FILE).")
@common_options
@click.pass_context
def gateway_cmd(ctx, host, port, api_key_file):
    """Serve every model in the registry on one OpenAI-compatible endpoint, loading them on demand.

    Routes: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /metrics (Prometheus),
    /gateway/status. A request's "model" is an entry name, alias, served id, or role:NAME. A model that is
    not loaded is started (vLLM, LMDeploy, llama.cpp: its server on a port of its own, checked as
    activate-model checks it, its files verified first: IMAGEWORKS_GATEWAY_VERIFY) and the request is held
    until it is ready; several stay loaded while they fit (memory estimate, learned footprints, or
    IMAGEWORKS_GATEWAY_MEMORY_BUDGET), the least recently used idle one is stopped to make room, and a
    model unused for its idle_ttl is stopped. Ollama entries go to the Ollama server. SIGTERM or Ctrl-C
    stops every model the gateway started. Needs the `gateway` extra (pip install 'imageworks-models[gateway]').

    \b
    Examples:
      imageworks-models gateway
      imageworks-models gateway --port 9000
      imageworks-models gateway --host 0.0.0.0 --api-key-file ~/.config/imageworks/gateway.key
      imageworks-models gateway status --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..errors import ConfigError

    try:
        from ..gateway.app import read_api_key, serve
    except ImportError as exc:
        raise ConfigError(f"the gateway needs packages that are not installed ({exc.name})",
                          hint="install the extra: pip install 'imageworks-models[gateway]' "
                               "(or uv sync --extra gateway)") from None
    st = state()
    settings = st.settings()
    key_file = api_key_file or settings.gateway_api_key_file
    api_key = read_api_key(key_file) if key_file else None
    host = host or settings.gateway_host
    port = port if port is not None else settings.gateway_port

    def ready(url: str) -> None:
        click.echo(f"gateway: serving every model at {url}" + (" (API key required)" if api_key else ""), err=True)

    serve(settings=settings, plugins=st.plugins(), host=host, port=port, api_key=api_key, ready=ready)


@gateway_cmd.command("status")
@json_option
@common_options
def gateway_status_cmd(as_json):
    """Show the running gateway's models: state, memory, requests in flight and waiting, idle time.

    Asks the running gateway (GET /gateway/status, with the API key of IMAGEWORKS_GATEWAY_API_KEY_FILE when
    set), else reads its state file (_staging/gateway.json). Exit code 0 whether or not a gateway runs.

    \b
    Examples:
      imageworks-models gateway status
      imageworks-models gateway status --json | jq '.models[] | {name, in_flight, idle_s}'
    """
    from ..gateway.state import status_for

    info = status_for(settings=state().settings())
    if as_json:
        emit_json(info)
        return
    if not info["running"]:
        click.echo("no gateway is running")
        return
    click.echo(f"gateway at {info['url']} (pid {info['pid']}, since {info['started_at']})")
    if not info["models"]:
        click.echo("no model loaded")
        return

    def gib(n):
        return "-" if n is None else f"{n / (1 << 30):.2f} GiB"

    click.echo(table(("MODEL", "BACKEND", "STATE", "PID", "PORT", "MEMORY", "IN FLIGHT", "QUEUED", "IDLE"),
                     [(m["name"], m.get("backend") or "-", m["status"], m.get("pid") or "-", m.get("port") or "-",
                       gib(m.get("memory_bytes")), "-" if m.get("in_flight") is None else m["in_flight"],
                       "-" if m.get("queued") is None else m["queued"],
                       "-" if m.get("idle_s") is None else f"{m['idle_s']:g}s") for m in info["models"]]))
