"""Maintenance commands: reset-discovered, restore-ollama, remove.

The work is in :mod:`imageworks_models.maintenance` (the GUI calls the same functions).
"""

from __future__ import annotations

import shlex

import click

from .output import common_options, emit_json, human_bytes, json_option, state
from .stores import emit


@click.command("reset-discovered")
@click.option("--backend", required=True, metavar="NAME", help="Backend whose discovered entries to forget.")
@click.option("--dry-run", is_flag=True, help="Print the entries that would go; write nothing.")
@json_option
@common_options
def reset_discovered_cmd(backend, dry_run, as_json):
    """Forget what discovery recorded for one backend's entries.

    Removes the discovered-layer part of every entry of BACKEND (entries curated by hand keep their
    curated fields). A backup is taken first; restore-ollama --backup FILE puts it back.

    \b
    Examples:
      imageworks-download reset-discovered --backend ollama --dry-run
      imageworks-download reset-discovered --backend ollama
    """
    from ..maintenance import reset_discovered

    emit(reset_discovered(backend, dry_run=dry_run, settings=state().settings()), as_json)


@click.command("restore-ollama")
@click.option("--backup", "backup", required=True, type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              help="A backup taken by an earlier command (in the registry's backups/ folder).")
@click.option("--dry-run", is_flag=True, help="Print the changes; write nothing.")
@json_option
@common_options
def restore_ollama_cmd(backup, dry_run, as_json):
    """Put back the Ollama entries of a registry backup.

    Every Ollama entry of the backup's layer is replaced by the backup's version (added, updated or
    removed); other entries are not touched. The current layer is backed up first.

    \b
    Examples:
      imageworks-download restore-ollama --backup configs/backups/model_registry.discovered.TIME.reset-ollama.json
      imageworks-download restore-ollama --backup FILE
    """
    from ..maintenance import restore_backup

    emit(restore_backup(backup, backend="ollama", dry_run=dry_run, settings=state().settings()), as_json)


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
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@json_option
@common_options
def remove_cmd(name, delete_files, purge, force, dry_run, as_json):
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
    plan = remove(name, delete_files=delete_files, purge=purge, force=True, settings=st.settings(),
                  plugins=st.plugins())
    if as_json:
        emit_json(plan.as_dict() | {"dry_run": False})
        return
    for line in plan.done:
        click.echo(line)
