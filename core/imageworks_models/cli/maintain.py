"""Maintenance commands: reset-discovered, restore-ollama, remove, prune-*, purge-*.

The work is in :mod:`imageworks_models.maintain.reset` (the GUI calls the same functions).
"""

from __future__ import annotations

import shlex

import click

from imageworks_models.cli.output import (Choice, common_options, dry_run_option, dry_run_scope, emit_json, human_bytes, json_option,
                     state, table, wide_option)
from imageworks_models.cli.stores import emit, print_footer
from imageworks_models.cli.declare import declared

# Every maintenance write takes a backup first; this is the one way to skip it.
no_backup_option = click.option("--no-backup", is_flag=True, help="Skip the backup (throw-away pipelines only).")


@declared("reset-discovered")
@click.option("--backend", required=True, type=Choice("backend"), help="Backend whose discovered entries to forget.")
@dry_run_option("Print the entries that would go; write nothing.")
@no_backup_option
@wide_option
@json_option
@common_options
def reset_discovered_cmd(backend, dry_run, no_backup, as_json):
    from imageworks_models.maintain.reset import reset_discovered

    emit(reset_discovered(backend, dry_run=dry_run, backup=not no_backup, settings=state().settings()), as_json)


@declared("restore-ollama")
@click.option("--backup", "backup", required=True, type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              help="A backup taken by an earlier command (in the registry's backups/ folder).")
@dry_run_option("Print the changes; write nothing.")
@click.option("--no-backup", is_flag=True, help="Do not back up the current layer first (it cannot be undone then).")
@wide_option
@json_option
@common_options
def restore_ollama_cmd(backup, dry_run, no_backup, as_json):
    from imageworks_models.maintain.reset import restore_backup

    emit(restore_backup(backup, backend="ollama", dry_run=dry_run, take_backup=not no_backup,
                        settings=state().settings()), as_json)


def _describe(plan) -> list[str]:
    lines = []
    if plan.remove_metadata:
        lines.append(f"remove the entry {plan.name} from the registry ({', '.join(plan.layers) or 'no'} layer)")
    if plan.delete_files:
        if plan.store_command:
            lines.append(f"remove from the store: {shlex.join(plan.store_command)}")
            lines += [f"keep blob {k}" for k in plan.kept]
        elif plan.path:
            lines.append(f"delete {plan.path} ({human_bytes(plan.bytes)} reclaimed)")
        else:
            lines.append("no files recorded: nothing to delete")
        if not plan.remove_metadata:
            lines.append(f"keep the entry {plan.name}, marked not installed")
    return lines


@declared("remove")
@click.argument("name")
@click.option("--delete-files", is_flag=True, help="Delete the files (keep the entry unless --purge).")
@click.option("--purge", is_flag=True, help="Remove the registry entry too (with --delete-files: both).")
@click.option("--force", is_flag=True, help="Really do it (without it, the plan is printed and nothing changes).")
@dry_run_option("Print the plan; change nothing.")
@click.option("--no-backup", is_flag=True, help="Skip the registry backup (throw-away pipelines only).")
@json_option
@common_options
def remove_cmd(name, delete_files, purge, force, dry_run, no_backup, as_json):
    from imageworks_models.maintain.reset import plan_removal, remove

    st = state()
    if dry_run or not force:
        dry_run_scope()
        plan = plan_removal(name, delete_files=delete_files, purge=purge, settings=st.settings(),
                            plugins=st.plugins())
        if as_json:
            emit_json(plan.as_dict() | {"dry_run": True})
        else:
            for line in _describe(plan):
                click.echo(f"would {line}")
        if dry_run:
            return
        from imageworks_models.maintain.reset import RemovalRefusedError

        raise RemovalRefusedError(f"refusing to remove {plan.name!r} without --force",
                                  hint="add --force to do the above" + (
                                      f", or run `{shlex.join(plan.store_command)}` yourself"
                                      if plan.store_command else ""))
    plan = remove(name, delete_files=delete_files, purge=purge, force=True, backup=not no_backup,
                  settings=st.settings(), plugins=st.plugins())
    if as_json:
        emit_json(plan.as_dict() | {"dry_run": False})
        return
    for line in plan.done:
        click.echo(line)


def cleanup_options(func):
    for option in reversed((
        dry_run_option("Print the entries that would go; write nothing."),
        no_backup_option,
        wide_option,
        json_option,
        common_options,
    )):
        func = option(func)
    return func


@declared("prune-duplicates")
@cleanup_options
def prune_duplicates_cmd(dry_run, no_backup, as_json):
    from imageworks_models.maintain.cleanup import prune_duplicates

    emit(prune_duplicates(dry_run=dry_run, backup=not no_backup, settings=state().settings()), as_json)


@declared("prune-deprecated")
@click.option("--placeholders-only", is_flag=True, help="Only deprecated placeholders (no weights of their own).")
@cleanup_options
def prune_deprecated_cmd(placeholders_only, dry_run, no_backup, as_json):
    from imageworks_models.maintain.cleanup import prune_deprecated

    emit(prune_deprecated(placeholders_only=placeholders_only, dry_run=dry_run, backup=not no_backup,
                          settings=state().settings()), as_json)


@declared("purge-logical-only")
@cleanup_options
def purge_logical_only_cmd(dry_run, no_backup, as_json):
    from imageworks_models.maintain.cleanup import purge_logical_only

    emit(purge_logical_only(dry_run=dry_run, backup=not no_backup, settings=state().settings()), as_json)


@declared("purge-imported")
@click.option("--providers", default="all", show_default=True, type=Choice("provider", comma=True),
              help="Comma list of providers (hf, ollama, local...) or all.")
@click.option("--apply", is_flag=True, help="Write the changes (without it: a dry run).")
@dry_run_option("Print the entries that would go; write nothing (the default without --apply).")
@no_backup_option
@wide_option
@json_option
@common_options
def purge_imported_cmd(providers, apply, dry_run, no_backup, as_json):
    from imageworks_models.maintain.cleanup import purge_imported

    if dry_run and apply:
        raise click.UsageError("--dry-run and --apply contradict each other; pick one")
    if not apply:
        dry_run_scope()
    emit(purge_imported(providers.split(","), dry_run=not apply, backup=not no_backup,
                        settings=state().settings()), as_json)


def _cell(row, key: str) -> str:
    if key not in row.changes:
        return "="
    old, new = row.changes[key]
    if key == "size_bytes":
        old, new = (human_bytes(v) if v is not None else "-" for v in (old, new))
    elif key == "aggregate":
        old, new = ((v.split(":", 1)[-1][:12] if v else "-") for v in (old, new))
    return f"{old if old is not None else '-'} → {new if new is not None else '-'}"


@declared("normalize-formats")
@dry_run_option("Print the diff table; write nothing (the default).")
@click.option("--apply", is_flag=True, help="Write the changes.")
@click.option("--rebuild", is_flag=True, help="Hash every byte again instead of trusting the stat cache.")
@click.option("--prune-missing", is_flag=True, help="Drop entries whose files are gone (curated parts stay).")
@no_backup_option
@wide_option
@json_option
@common_options
def normalize_formats_cmd(dry_run, apply, rebuild, prune_missing, no_backup, as_json):
    from imageworks_models.maintain.normalize import normalize_formats
    from imageworks_models.cli.progress import progress_for_terminal

    if dry_run and apply:
        raise click.UsageError("--dry-run and --apply contradict each other; pick one")
    if not apply:
        dry_run_scope()
    report = normalize_formats(apply=apply, rebuild=rebuild, prune_missing=prune_missing, backup=not no_backup,
                               settings=state().settings(), progress=progress_for_terminal())
    if as_json:
        emit_json(report.as_dict())
    else:
        shown = [r for r in report.rows if r.action != "unchanged"]
        if shown:
            click.echo(table(("ACTION", "NAME", "FORMAT", "QUANT", "SIZE", "FILES", "CHECKSUM"),
                             [(("would " if report.dry_run and r.action in ("update", "remove") else "") + r.action,
                               r.name, _cell(r, "format"), _cell(r, "quantization"), _cell(r, "size_bytes"),
                               _cell(r, "file_count"), _cell(r, "aggregate")) for r in shown],
                             drop=("FILES", "QUANT", "SIZE")))
            for r in shown:
                if r.reason:
                    click.echo(f"{r.name}: {r.reason}", err=True)
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        print_footer(report, empty="no installed entries", dry_run_note=" (add --apply)")
    if any(r.action == "error" for r in report.rows):
        click.get_current_context().exit(1)
