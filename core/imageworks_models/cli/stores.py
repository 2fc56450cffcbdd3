"""Store commands: import-ollama, rebuild-ollama, backfill-ollama-paths.

The work is in :mod:`imageworks_models.acquire.storeimport`; the store itself is read by the Ollama plugin.
"""

from __future__ import annotations

import click

from imageworks_models.cli.output import (Choice, common_options, dry_run_option, emit_json_report, human_bytes, json_option, state,
                     table, wide_option)
from imageworks_models.cli.declare import declared


def print_rows(report, *, empty: str = "nothing to do") -> None:
    """The diff table of a store or maintenance report, then its counts and backups (on stderr)."""
    rows = report.rows
    if rows:
        click.echo(table(("ACTION", "NAME", "SERVED ID", "QUANT", "SIZE", "PATH / REASON"),
                         [(("would " if report.dry_run and r.action not in ("skip", "unchanged", "stale",
                                                                              "duplicate", "error", "conflict")
                            else "") + r.action, r.name or "-", r.served_model_id or "-", r.quantization or "-",
                           human_bytes(r.size_bytes) if r.size_bytes else "-",
                           r.path + (f"  ({r.reason})" if r.reason else "")) for r in rows],
                         drop=("QUANT", "SERVED ID", "SIZE"), fold=("PATH / REASON",)))
    print_footer(report, empty=empty)


def print_footer(report, *, empty: str = "nothing to do", dry_run_note: str = "") -> None:
    """A report's counts, warnings, notes, and what was written and backed up (on stderr)."""
    click.echo(", ".join(f"{n} {a}" for a, n in report.counts().items()) or empty, err=True)
    for warning in getattr(report, "warnings", ()):
        click.echo(f"warning: {warning}", err=True)
    if report.dry_run:
        click.echo("note: dry run, nothing was written" + dry_run_note, err=True)
    else:
        click.echo(f"{report.written} entr{'y' if report.written == 1 else 'ies'} changed", err=True)
        for path in report.backup:
            click.echo(f"backup: {path}", err=True)


def emit(report, as_json: bool) -> None:
    if as_json:
        data = report.as_dict()
        emit_json_report({k: v for k, v in data.items() if k != "rows"}, "rows", data["rows"])
    else:
        print_rows(report)
    if any(r.action == "error" for r in report.rows):
        click.get_current_context().exit(1)


def import_options(func):
    for option in reversed((
        dry_run_option("Print the table of changes; write nothing."),
        click.option("--backend", type=Choice("backend"), help="Backend of new entries (default: ollama)."),
        click.option("--location", metavar="LABEL", help="Location label recorded (default: the setting)."),
        click.option("--deprecate-placeholders", is_flag=True,
                     help="Flag placeholder entries (no files of their own) for imported tags deprecated."),
        click.option("--prune-stale", is_flag=True, help="Remove imported entries whose tags are gone."),
        click.option("--verify-blobs", is_flag=True,
                     help="Hash every blob against its digest first (reads all bytes; slow)."),
        wide_option,
        json_option,
        common_options,
    )):
        func = option(func)
    return func


def run_import(*, dry_run, backend, location, deprecate_placeholders, prune_stale, verify_blobs, as_json,
               label: str = "import-ollama") -> None:
    from imageworks_models.acquire.storeimport import import_store

    st = state()
    report = import_store("ollama", backend=backend, location=location, dry_run=dry_run,
                          deprecate_placeholders=deprecate_placeholders, prune_stale=prune_stale,
                          check_blobs=verify_blobs, backup_label=label,
                          settings=st.settings(), plugins=st.plugins())
    if not as_json:
        click.echo(f"store: {report.store}" + ("  (stale tags also checked against the server)"
                                               if report.checked_server else ""), err=True)
    emit(report, as_json)


@declared("import-ollama")
@import_options
def import_ollama_cmd(dry_run, backend, location, deprecate_placeholders, prune_stale, verify_blobs, as_json):
    run_import(dry_run=dry_run, backend=backend, location=location, deprecate_placeholders=deprecate_placeholders,
               prune_stale=prune_stale, verify_blobs=verify_blobs, as_json=as_json)


@declared("rebuild-ollama")
@dry_run_option("Print the table of changes; write nothing.")
@click.option("--location", metavar="LABEL", help="Location label recorded (default: the setting).")
@click.option("--deprecate-placeholders", is_flag=True,
              help="Flag placeholder entries for imported tags deprecated.")
@click.option("--verify-blobs", is_flag=True, help="Hash every blob against its digest first (slow).")
@wide_option
@json_option
@common_options
def rebuild_ollama_cmd(dry_run, location, deprecate_placeholders, verify_blobs, as_json):
    run_import(dry_run=dry_run, backend=None, location=location, deprecate_placeholders=deprecate_placeholders,
               prune_stale=True, verify_blobs=verify_blobs, as_json=as_json,
               label="rebuild-ollama")


@declared("backfill-ollama-paths")
@dry_run_option("Print the table of changes; write nothing.")
@click.option("--location", metavar="LABEL", help="Location label recorded (default: the setting).")
@wide_option
@json_option
@common_options
def backfill_ollama_paths_cmd(dry_run, location, as_json):
    from imageworks_models.acquire.storeimport import backfill_paths

    st = state()
    report = backfill_paths("ollama", location=location, dry_run=dry_run, settings=st.settings(),
                            plugins=st.plugins())
    emit(report, as_json)
