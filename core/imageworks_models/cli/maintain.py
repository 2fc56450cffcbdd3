"""Maintenance commands: reset-discovered, restore-ollama, remove, prune-*, purge-*.

The work is in :mod:`imageworks_models.maintenance` (the GUI calls the same functions).
"""

from __future__ import annotations

import shlex

import click

from .output import (Choice, common_options, dry_run_option, dry_run_scope, emit_json, human_bytes, json_option,
                     state, table, wide_option)
from .stores import emit, print_footer

# Every maintenance write takes a backup first; this is the one way to skip it.
no_backup_option = click.option("--no-backup", is_flag=True, help="Skip the backup (throw-away pipelines only).")


@click.command("reset-discovered")
@click.option("--backend", required=True, type=Choice("backend"), help="Backend whose discovered entries to forget.")
@dry_run_option("Print the entries that would go; write nothing.")
@no_backup_option
@wide_option
@json_option
@common_options
def reset_discovered_cmd(backend, dry_run, no_backup, as_json):
    """Forget what discovery recorded for one backend's entries.

    Removes the discovered-layer part of every entry of BACKEND (entries curated by hand keep their
    curated fields). A backup is taken first; restore-ollama --backup FILE puts it back.

    \b
    Examples:
      imageworks-download reset-discovered --backend ollama --dry-run
      imageworks-download reset-discovered --backend ollama
    """
    from ..maintenance import reset_discovered

    emit(reset_discovered(backend, dry_run=dry_run, backup=not no_backup, settings=state().settings()), as_json)


@click.command("restore-ollama")
@click.option("--backup", "backup", required=True, type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              help="A backup taken by an earlier command (in the registry's backups/ folder).")
@dry_run_option("Print the changes; write nothing.")
@click.option("--no-backup", is_flag=True, help="Do not back up the current layer first (it cannot be undone then).")
@wide_option
@json_option
@common_options
def restore_ollama_cmd(backup, dry_run, no_backup, as_json):
    """Put back the Ollama entries of a registry backup.

    Every Ollama entry of the backup's layer is replaced by the backup's version (added, updated or
    removed); other entries are not touched. The current layer is backed up first.

    \b
    Examples:
      imageworks-download restore-ollama --backup configs/backups/model_registry.discovered.TIME.reset-ollama.json
      imageworks-download restore-ollama --backup FILE
    """
    from ..maintenance import restore_backup

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


@click.command("remove")
@click.argument("name")
@click.option("--delete-files", is_flag=True, help="Delete the files (keep the entry unless --purge).")
@click.option("--purge", is_flag=True, help="Remove the registry entry too (with --delete-files: both).")
@click.option("--force", is_flag=True, help="Really do it (without it, the plan is printed and nothing changes).")
@dry_run_option("Print the plan; change nothing.")
@click.option("--no-backup", is_flag=True, help="Skip the registry backup (throw-away pipelines only).")
@json_option
@common_options
def remove_cmd(name, delete_files, purge, force, dry_run, no_backup, as_json):
    """Remove an entry's metadata, its files, or both.

    No flag (or --purge alone): remove the registry entry only. --delete-files: delete the files and
    keep the entry. --purge --delete-files: both. Refuses without --force and prints what it would
    do. Files outside the configured weights roots, or reached through a symlink, are never deleted.
    For an Ollama entry the files belong to Ollama: the plan shows the exact `ollama rm <served id>`
    to run; with --force it is done through Ollama's API, which keeps blobs other tags still use.

    \b
    Examples:
      imageworks-download remove llama-3-8b-vllm-awq --delete-files --force
      imageworks-download remove qwen3-8b-ollama-gguf-q4_k_m --purge --delete-files --force
      imageworks-download remove old-entry --dry-run
    """
    from ..maintenance import plan_removal, remove

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
        from ..maintenance import RemovalRefusedError

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


@click.command("prune-duplicates")
@cleanup_options
def prune_duplicates_cmd(dry_run, no_backup, as_json):
    """Remove entries that register the same model twice.

    Duplicates: the same files (aggregate digest or real path), or the same source, revision and format.
    Of each group the best is kept (curated by hand, locked, installed, not deprecated, shortest name); a
    duplicate with a curated part is shown as skip, to resolve by hand. Only registry entries change,
    never files; a backup is taken first.

    \b
    Examples:
      imageworks-download prune-duplicates --dry-run
      imageworks-download prune-duplicates --json | jq '.rows[] | select(.action == "remove") | .name'
    """
    from ..cleanup import prune_duplicates

    emit(prune_duplicates(dry_run=dry_run, backup=not no_backup, settings=state().settings()), as_json)


@click.command("prune-deprecated")
@click.option("--placeholders-only", is_flag=True, help="Only deprecated placeholders (no weights of their own).")
@cleanup_options
def prune_deprecated_cmd(placeholders_only, dry_run, no_backup, as_json):
    """Remove entries flagged deprecated.

    Both layers of each deprecated entry go (the flag is the decision); locked entries are kept and shown
    as skip. --placeholders-only limits it to placeholders: testing entries or entries with no files,
    such as the earlier tool's entries that import-ollama --deprecate-placeholders flagged.

    \b
    Examples:
      imageworks-download prune-deprecated --placeholders-only --dry-run
      imageworks-download prune-deprecated
    """
    from ..cleanup import prune_deprecated

    emit(prune_deprecated(placeholders_only=placeholders_only, dry_run=dry_run, backup=not no_backup,
                          settings=state().settings()), as_json)


@click.command("purge-logical-only")
@cleanup_options
def purge_logical_only_cmd(dry_run, no_backup, as_json):
    """Remove entries that are only names: no files, no curated part.

    Such entries are left behind by interrupted imports or removed files; entries described by hand in
    the curated layer are never touched.

    \b
    Examples:
      imageworks-download purge-logical-only --dry-run
      imageworks-download purge-logical-only
    """
    from ..cleanup import purge_logical_only

    emit(purge_logical_only(dry_run=dry_run, backup=not no_backup, settings=state().settings()), as_json)


@click.command("purge-imported")
@click.option("--providers", default="all", show_default=True, type=Choice("provider", comma=True),
              help="Comma list of providers (hf, ollama, local...) or all.")
@click.option("--apply", is_flag=True, help="Write the changes (without it: a dry run).")
@dry_run_option("Print the entries that would go; write nothing (the default without --apply).")
@no_backup_option
@wide_option
@json_option
@common_options
def purge_imported_cmd(providers, apply, dry_run, no_backup, as_json):
    """Forget imported entries, to rediscover them from scratch.

    Removes the discovered-layer part of every entry imported from the providers (curated parts stay).
    A dry run unless --apply. Then repopulate with ingest-local-hf, rebuild-ollama or discover-all.

    \b
    Examples:
      imageworks-loader purge-imported --providers ollama --dry-run
      imageworks-loader purge-imported --apply --providers all
    """
    from ..cleanup import purge_imported

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


@click.command("normalize-formats")
@dry_run_option("Print the diff table; write nothing (the default).")
@click.option("--apply", is_flag=True, help="Write the changes.")
@click.option("--rebuild", is_flag=True, help="Hash every byte again instead of trusting the stat cache.")
@click.option("--prune-missing", is_flag=True, help="Drop entries whose files are gone (curated parts stay).")
@no_backup_option
@wide_option
@json_option
@common_options
def normalize_formats_cmd(dry_run, apply, rebuild, prune_missing, no_backup, as_json):
    """Re-inspect installed entries and fix their recorded format, quant, size and checksum.

    Reads each entry's headers and builds its manifest (files unchanged since they were last hashed here
    are not read again, unless --rebuild), then shows one row per entry: format, quantization, size,
    file count and directory checksum, each "recorded → found" or "=". --apply writes the discovered
    layer after a backup. Fields set in the curated layer are reported, never overwritten; a checksum
    that changed is shown, but only `verify --accept` records new files for an entry.

    \b
    Examples:
      imageworks-download normalize-formats --dry-run
      imageworks-download normalize-formats --apply
      imageworks-download normalize-formats --rebuild --prune-missing --apply
    """
    from ..normalize import normalize_formats
    from .progress import progress_for_terminal

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
