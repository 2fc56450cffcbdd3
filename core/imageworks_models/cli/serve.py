"""Serving commands: activate-model (load / --stop) and health.

The work is in :mod:`imageworks_models.serving`.
"""

from __future__ import annotations

import click

from .output import common_options, emit_json, json_option, state, table


@click.command("activate-model")
@click.argument("name", required=False)
@click.option("--stop", is_flag=True, help="Stop (unload) the model instead.")
@json_option
@common_options
def activate_model_cmd(name, stop, as_json):
    """Activate a model in its backend's server, or stop it.

    For an Ollama entry, loads the model into the Ollama server (OLLAMA_HOST) and keeps it loaded
    (IMAGEWORKS_OLLAMA_KEEP_ALIVE, default until stopped); --stop unloads it. Prints the endpoint and
    served id clients should use. A locked entry whose files differ is refused.

    \b
    Examples:
      imageworks-loader activate-model qwen3-8b-ollama-gguf-q4_k_m
      imageworks-loader activate-model qwen3-8b-ollama-gguf-q4_k_m --stop
      imageworks-loader activate-model qwen3:8b --json
    """
    from ..serving import activate, deactivate

    if not name:
        raise click.UsageError("name the entry to activate (or to stop with --stop)")
    st = state()
    if stop:
        result = deactivate(name, settings=st.settings(), plugins=st.plugins())
        if as_json:
            emit_json(result)
        else:
            click.echo(f"stopped {result['name']} ({result['backend']})")
        return
    result = activate(name, settings=st.settings(), plugins=st.plugins())
    if as_json:
        emit_json(result)
        return
    click.echo(f"✅ {result['name']} is active on {result['backend']}")
    click.echo(f"   endpoint:   {result['endpoint']}")
    click.echo(f"   served id:  {result['served_model_id']}")
    if result.get("expires_at"):
        click.echo(f"   loaded until: {result['expires_at']}")


@click.command("health")
@click.argument("backends", nargs=-1)
@json_option
@common_options
def health_cmd(backends, as_json):
    """Show whether each backend's server is up and what it has loaded.

    Asks every backend that can report its health (Ollama: /api/version and /api/ps). Exit code 1
    when a backend named on the command line is down.

    \b
    Examples:
      imageworks-models health
      imageworks-models health ollama --json
    """
    from ..serving import health

    st = state()
    rows = health(settings=st.settings(), plugins=st.plugins(), backends=list(backends) or None)
    if as_json:
        emit_json(rows)
    else:
        click.echo(table(("BACKEND", "STATUS", "URL", "VERSION", "LOADED"),
                         [(r["backend"], "up" if r["ok"] else "down", r["url"], r.get("version") or "-",
                           ", ".join(m["model"] for m in r.get("loaded") or []) or "-") for r in rows]))
        for r in rows:
            if not r["ok"]:
                click.echo(f"{r['backend']}: {r['error']}" + (f"\nhint: {r['hint']}" if r.get("hint") else ""),
                           err=True)
    if backends and any(not r["ok"] for r in rows):
        click.get_current_context().exit(1)
