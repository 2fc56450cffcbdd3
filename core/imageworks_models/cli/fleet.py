"""``export`` and ``import``: the registry for platforms that run fleets (logic in ``imageworks_models.export``)."""

from __future__ import annotations

import click

from imageworks_models.cli.output import common_options, emit_json, json_option, state
from imageworks_models.cli.declare import declared

TARGETS = ("production-stack", "llama-swap", "models.lock")


@declared("export")
@click.argument("names", nargs=-1)
@click.option("--to", "target", required=True, type=click.Choice(TARGETS),
              help="What to write: Helm values for the vllm-stack chart, a llama-swap config.yaml, or models.lock.")
@click.option("--role", metavar="ROLE", help="Only entries that play ROLE (or have that capability).")
@click.option("--installed", "installed_only", is_flag=True, help="Only entries whose files are here.")
@click.option("--output", "-o", metavar="FILE",
              help="The file to write (default: values.yaml, config.yaml or models.lock in this folder).")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--dry-run", is_flag=True, help="Render and check everything; write nothing.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the file instead of writing it.")
@json_option
@common_options
def export_cmd(names, target, role, installed_only, output, force, dry_run, to_stdout, as_json):
    from imageworks_models.export import export, render

    st = state()
    if to_stdout:
        if target == "models.lock":
            raise click.UsageError("--stdout goes with production-stack and llama-swap")
        result = render(target, names=names, role=role, installed_only=installed_only, settings=st.settings(),
                        plugins=st.plugins() if target == "llama-swap" else None)
        click.echo(result["text"], nl=False)
        _report_skips(result["skipped"])
        return
    result = export(target, output=output, names=names, role=role, installed_only=installed_only, force=force,
                    dry_run=dry_run, settings=st.settings(),
                    plugins=st.plugins() if target == "llama-swap" else None)
    if as_json:
        emit_json(result)
        return
    verb = "would write" if dry_run else "wrote"
    count = len(result["exported"])
    click.echo(f"{verb} {result['path']}: {count} entr{'y' if count == 1 else 'ies'} for {target}")
    for row in result["exported"]:
        for note in row.get("notes") or []:
            click.echo(f"note: {row['name']}: {note}", err=True)
    _report_skips(result["skipped"])


def _report_skips(skipped) -> None:
    for row in skipped:
        click.echo(f"skipped {row['name']}: {row['reason']}", err=True)


@declared("import")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--from", "source", required=True, type=click.Choice(("llama-swap",)),
              help="Whose config CONFIG is.")
@click.option("--dry-run", is_flag=True, help="Say what would be imported; write nothing.")
@json_option
@common_options
def import_cmd(config, source, dry_run, as_json):
    from imageworks_models.export import import_config

    result = import_config(source, config, dry_run=dry_run, settings=state().settings())
    if as_json:
        emit_json(result)
        return
    verbs = {"import": "would import", "imported": "imported", "exists": "kept", "skip": "skipped"}
    for row in result["rows"]:
        target = f" as {row['name']} ({row['backend']})" if row["name"] else ""
        click.echo(f"{verbs[row['action']]} {row['id']}{target}")
        for note in row["notes"]:
            click.echo(f"  {note}", err=row["action"] == "skip")
    done = sum(1 for r in result["rows"] if r["action"] in ("import", "imported"))
    click.echo(f"{'would import' if dry_run else 'imported'} {done} of {len(result['rows'])} models")
