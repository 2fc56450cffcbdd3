"""Serving commands: activate-model (start, switch, --stop), current-model and health.

The work is in :mod:`imageworks_models.serving.control`.
"""

from __future__ import annotations

import click

from imageworks_models.cli.output import Choice, common_options, dry_run_option, emit_json, json_option, state, table, wide_option
from imageworks_models.cli.declare import declared


@declared("activate-model")
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
    from imageworks_models.serving.control import activate, deactivate, plan_activation

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


@declared("current-model")
@click.option("--no-probe", is_flag=True, help="Only check the process; do not ask the server over HTTP.")
@json_option
@common_options
def current_model_cmd(no_probe, as_json):
    from imageworks_models.serving.control import status

    st = state()
    info = status(settings=st.settings(), plugins=None if no_probe else st.plugins(), probe=not no_probe)
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


@declared("health")
@click.argument("backends", nargs=-1, type=Choice("backend"))
@wide_option
@json_option
@common_options
def health_cmd(backends, as_json):
    from imageworks_models.serving.control import health

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
