"""Serving commands: activate-model (start, switch, --stop), current-model and health.

The work is in :mod:`imageworks_models.serving`.
"""

from __future__ import annotations

import click

from .output import Choice, common_options, dry_run_option, emit_json, json_option, state, table, wide_option


@click.command("activate-model")
@click.argument("name", required=False)
@click.option("--stop", is_flag=True, help="Stop the active model (or, with NAME, that model) instead.")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="How long the server may take to become ready (default: IMAGEWORKS_ACTIVATION_TIMEOUT, 900).")
@click.option("--backend", metavar="BACKEND",
              help="Serve it with this backend instead of the entry's own, e.g. llamacpp for a model imported from "
                   "the Ollama store (served from its blob, not copied).")
@dry_run_option("Check everything and print the command; start and stop nothing.")
@click.option("--force", is_flag=True, help="Start it even if the memory estimate says it will not fit.")
@click.option("--takeover", is_flag=True,
              help="Stop a server imageworks has no record of that holds the port, if it is the kind this backend "
                   "launches (same executable and subcommand); anything else is never touched.")
@json_option
@common_options
def activate_model_cmd(name, stop, timeout, backend, dry_run, force, takeover, as_json):
    """Make NAME the live model, or stop it with --stop.

    vLLM and LMDeploy entries: starts the server (`vllm serve ...` / `lmdeploy serve api_server ...`, never
    through a shell) on the serving port (the entry's backend_config.port; CHAT_PROXY_VLLM_PORT with
    CHAT_PROXY_VLLM_SINGLE_PORT=1), first stopping the model that is active (its whole process group), then
    waits until /health answers and /v1/models lists the served id. State: _staging/active_vllm.json; server
    output: logs/<name>.log. Activating the model that is already live and ready changes nothing. If the
    server exits, never gets ready, or the port belongs to another process, it says why (with the log's last
    lines) and leaves nothing running. --stop without NAME stops whatever is active. A port held by a server
    imageworks has no record of (say, after _staging/active_vllm.json was deleted) is named with its pid and
    command line; --takeover stops it when it is a server this backend launches.

    llama.cpp entries: starts llama-server (or python -m llama_cpp.server) on the entry's GGUF file the same
    way. --backend llamacpp serves any GGUF entry with it, e.g. one imported from the Ollama store, from its
    blob and projector blob (read-only, never copied).

    Ollama entries: loads the model into the Ollama server (OLLAMA_HOST) and keeps it loaded
    (IMAGEWORKS_OLLAMA_KEEP_ALIVE); it is then the live model (current-model shows it; a running vLLM or
    LMDeploy server is stopped first) and --stop unloads it (keep_alive: 0). A locked entry whose files differ
    is refused (exit 2).
    A model the memory estimate says will not fit the free memory is refused, naming the shortfall and
    the largest context that fits (`imageworks-models fit NAME`); --force starts it anyway.

    \b
    Examples:
      imageworks-loader activate-model qwen2-vl-2b
      imageworks-loader activate-model qwen2-vl-2b --dry-run
      imageworks-loader activate-model --stop
      imageworks-loader activate-model qwen2-vl-2b --takeover
      imageworks-loader activate-model qwen3-8b-ollama-gguf-q4_k_m --json
      imageworks-loader activate-model qwen3-8b-ollama-gguf-q4_k_m --backend llamacpp
    """
    from ..serving import activate, deactivate, plan_activation

    st = state()
    if stop:
        if dry_run:
            raise click.UsageError("--dry-run applies to activation; `current-model` shows what --stop would stop")
        if backend:
            raise click.UsageError("--backend applies to activation; --stop stops the model however it is served")
        if takeover:
            raise click.UsageError("--takeover applies to activation (it stops an untracked server on the port)")
        result = deactivate(name, settings=st.settings(), plugins=st.plugins())
        if as_json:
            emit_json(result)
        elif not result["stopped"]:
            click.echo("nothing was active" + (f" (dropped a stale record of {result['name']}: {result['stale']})"
                                               if result.get("stale") else ""))
        elif result.get("unloaded"):
            click.echo(f"unloaded {result['name']} ({result['unloaded']}) from {result['backend']}")
        else:
            how = f" (pid {result['pid']}, SIG{result['signal']})" if result.get("signal") else ""
            click.echo(f"stopped {result['name']} ({result['backend']}){how}")
            if result.get("signal") == "KILL":
                click.echo(f"   it did not exit within {result['grace']:g}s of SIGTERM, so it was killed")
        return
    if not name:
        raise click.UsageError("name the entry to activate, or pass --stop")
    if dry_run and takeover:
        raise click.UsageError("--dry-run stops nothing: it says whether --takeover would stop the port's holder")
    if dry_run:
        plan = plan_activation(name, settings=st.settings(), plugins=st.plugins(), backend=backend)
        if as_json:
            emit_json(plan)
            return
        for line in plan["lines"]:
            click.echo(line)
        return
    say = None if as_json else (lambda line: click.echo(line, err=True))
    with _sigterm_interrupts():
        result = activate(name, settings=st.settings(), plugins=st.plugins(), timeout=timeout, progress=say,
                          force=force, backend=backend, takeover=takeover)
    if as_json:
        emit_json(result)
        return
    click.echo(f"✅ {result['name']} is active on {result['backend']}" +
               ("" if result.get("changed", True) else " (already running; nothing changed)"))
    click.echo(f"   endpoint:   {result['endpoint']}")
    click.echo(f"   served id:  {result['served_model_id']}")
    if result.get("pid"):
        click.echo(f"   pid:        {result['pid']}   log: {result['log']}")
    before = result.get("stopped") or {}
    if before.get("signal") == "KILL":
        click.echo(f"   stopped {before['name']} first: it did not exit within {before['grace']:g}s of SIGTERM, "
                   "so it was killed")
    if result.get("expires_at"):
        click.echo(f"   loaded until: {result['expires_at']}")


class _sigterm_interrupts:
    """A SIGTERM while a server starts interrupts like Ctrl-C, so the half-started server is stopped too."""

    def __enter__(self):
        import signal
        import threading

        self.previous = None
        if threading.current_thread() is threading.main_thread():
            def interrupt(signum, frame):
                raise KeyboardInterrupt

            self.previous = signal.signal(signal.SIGTERM, interrupt)
        return self

    def __exit__(self, *exc):
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


@click.command("current-model")
@click.option("--no-probe", is_flag=True, help="Only check the process; do not ask the server over HTTP.")
@json_option
@common_options
def current_model_cmd(no_probe, as_json):
    """Show the live model on the serving port, checked now.

    Reads _staging/active_vllm.json and checks that its server process is still the one started (same boot,
    pid and start time) and, unless --no-probe, that it answers /health and lists its served id. A model
    activated into Ollama is live while Ollama has it loaded (/api/ps). With nothing recorded, a process that
    holds the serving port anyway is named (pid, command line) with how to stop it. A record
    whose server is gone (crashed, killed, rebooted) is removed and reported as the previous model; nothing
    foreign is ever signalled. Models a running `imageworks-models gateway` serves are shown first (JSON:
    "gateway", a list). Exit code 0 whether or not a model is live.

    \b
    Examples:
      imageworks-loader current-model
      imageworks-loader current-model --json | jq -r .endpoint
    """
    from ..activation import current

    st = state()
    info = current(settings=st.settings(), plugins=None if no_probe else st.plugins(), probe=not no_probe)
    if as_json:
        emit_json(info)
        return
    _echo_gateway(info.get("gateway") or [])
    if not info["active"]:
        click.echo("no active model")
        if info.get("previous"):
            click.echo(f"(the record of {info['previous']['name']} was dropped: {info['previous']['reason']})")
        for holder in info.get("untracked") or ():
            command = " ".join(holder["command"])[:160] or "?"
            click.echo(f"but port {st.settings().vllm_port} is held by pid {holder['pid']} ({command}), which "
                       f"imageworks did not start", err=True)
            click.echo(f"hint: stop it with `kill {holder['pid']}`, or `imageworks-loader activate-model NAME "
                       "--takeover` (stops it if it is a server that backend launches)", err=True)
        return
    click.echo(f"{info['name']} ({info['backend']}): {info['status']}" +
               (f" - {info['detail']}" if info.get("detail") else ""))
    for label, key in (("endpoint", "endpoint"), ("served id", "served_model_id"), ("pid", "pid"),
                       ("started", "started_at"), ("log", "log")):
        if info.get(key) is not None:
            click.echo(f"   {label + ':':<11}{info[key]}")


def _echo_gateway(models: list[dict]) -> None:
    """The gateway's models, before the serving port's (``current-model``)."""
    if models:
        click.echo(f"gateway at {models[0]['gateway']}: " + ", ".join(
            f"{m['name']} ({m['backend']}, {m['status']}, pid {m['pid']})" for m in models))


@click.command("health")
@click.argument("backends", nargs=-1, type=Choice("backend"))
@wide_option
@json_option
@common_options
def health_cmd(backends, as_json):
    """Show whether each backend's server is up and what it has loaded.

    Asks every backend that can report its health: Ollama (/api/version, /api/ps), vLLM on the serving port
    (/v1/models, /version), and LMDeploy: the active local server and every remote endpoint in the registry
    (backend_config.base_url, checked by backend_config.protocol: lmdeploy /health, openai /v1/models, triton
    /v2/health/ready). Exit code 1 when a backend named on the command line is down.

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
                         [(r["backend"] + (f" ({r['name']})" if r.get("name") else ""), "up" if r["ok"] else "down",
                           r["url"], r.get("version") or "-",
                           ", ".join(m["model"] for m in r.get("loaded") or []) or "-") for r in rows],
                         drop=("VERSION",), fold=("LOADED",)))
        for r in rows:
            if not r["ok"]:
                click.echo(f"{r['backend']}: {r['error']}" + (f"\nhint: {r['hint']}" if r.get("hint") else ""),
                           err=True)
    if backends and any(not r["ok"] for r in rows):
        click.get_current_context().exit(1)
