"""Commands about the tool itself: config and plugins."""

from __future__ import annotations

import click

from imageworks_models.cli.output import common_options, emit_json, json_option, state, table, wide_option
from imageworks_models.cli.declare import declared


@declared("config")
@wide_option
@json_option
@common_options
def config_cmd(as_json):
    from imageworks_models.redact import redact
    from imageworks_models.settings import SPECS

    settings = state().settings()
    data = {}
    for spec in SPECS:
        value = settings.values[spec.key].value
        if isinstance(value, dict):
            value = {k: redact(str(v)) for k, v in value.items()}
        elif isinstance(value, list):
            value = [redact(v) for v in value]
        elif value is not None and not isinstance(value, (bool, int, float)):
            value = redact(str(value))  # HF_ENDPOINT / OLLAMA_HOST may carry user:password@ (S12)
        data[spec.key] = {"value": value, "origin": settings.origin(spec.key), "env": spec.env}
    if as_json:
        emit_json(data)
        return
    click.echo(table(["SETTING", "VALUE", "FROM"], [(k, v["value"], v["origin"]) for k, v in data.items()],
                     fold=("VALUE",)))
    click.echo(f"config file: {settings.config_file or 'none'}", err=True)


@declared("doctor")
@json_option
@common_options
def doctor_cmd(as_json):
    from imageworks_models.registry.doctor import check

    report = check(settings=state().settings())
    if as_json:
        emit_json(report.as_dict())
    else:
        if report.problems:
            click.echo(table(["KIND", "ENTRIES", "PROBLEM"],
                             [(p.kind, ", ".join(p.entries), p.detail) for p in report.problems]))
        click.echo(f"{report.checked} entries checked: "
                   + (f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}"
                      if report.problems else "no problems"), err=True)
    if report.problems:
        click.get_current_context().exit(1)


@declared("plugins")
@wide_option
@json_option
@common_options
def plugins_cmd(as_json):
    host = state().plugins()
    infos = [p.as_dict() for p in host.plugins]
    if as_json:
        emit_json(infos)
        return
    rows = []
    for p in infos:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in p["provides"].items()) or "-"
        rows.append((p["name"], p["distribution"] or "(core)", p["version"] or "-", p["status"], provides,
                     ", ".join(p["hooks"]) or "-"))
    click.echo(table(["NAME", "DISTRIBUTION", "VERSION", "STATUS", "PROVIDES", "HOOKS"], rows,
                     drop=("HOOKS", "VERSION", "DISTRIBUTION"), fold=("PROVIDES",)))
    for p in infos:
        for err in p["errors"]:
            click.echo(f"{p['name']}: {err}")


@declared("gui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on (loopback by default).")
@click.option("--port", default=8501, show_default=True, type=int, help="Port to serve on.")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host. The GUI has no login: anyone who reaches it can change the registry.")
@common_options
def gui_cmd(host, port, allow_remote):
    from imageworks_models.gui.launch import run

    run(host, port, allow_remote=allow_remote)
