"""``gateway``: one OpenAI-compatible endpoint for every model; ``gateway status``.

The work is in :mod:`imageworks_models.gateway`; Starlette, uvicorn, httpx and prometheus_client are imported
only when the gateway runs (the ``gateway`` extra).
"""

from __future__ import annotations

import click

from imageworks_models.cli.output import common_options, emit_json, json_option, state, table
from imageworks_models.cli.declare import declared


@declared("gateway", group=True, invoke_without_command=True)
@click.option("--host", default=None, help="Address to listen on (default: IMAGEWORKS_GATEWAY_HOST, 127.0.0.1). "
                                           "Any other than loopback needs an API key.")
@click.option("--port", type=int, default=None, help="Port (default: IMAGEWORKS_GATEWAY_PORT, 8080).")
@click.option("--api-key-file", type=click.Path(dir_okay=False), default=None,
              help="File holding the key clients must send as 'Authorization: Bearer KEY' "
                   "(default: IMAGEWORKS_GATEWAY_API_KEY_FILE).")
@common_options
@click.pass_context
def gateway_cmd(ctx, host, port, api_key_file):
    if ctx.invoked_subcommand is not None:
        return
    from imageworks_models.errors import ConfigError

    try:
        from imageworks_models.gateway.app import read_api_key, serve
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
    from imageworks_models.live.gateway import status_for

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
