"""Integrity commands: verify, lock, unlock. The work is in :mod:`imageworks_models.integrity.verify`."""

from __future__ import annotations

import click

from imageworks_models.cli.output import (Choice, common_options, dry_run_option, emit_json, human_bytes, human_rate, json_option, state,
                     table, wide_option)
from imageworks_models.cli.declare import declared

_STATUS = {"ok": "ok", "recorded": "recorded", "accepted": "accepted", "diverged": "DIVERGED", "missing": "MISSING",
           "incomplete": "INCOMPLETE", "changed": "CHANGED", "not-installed": "not installed", "skipped": "skipped",
           "error": "ERROR"}




def _describe(r) -> str:
    from imageworks_models.integrity.manifest import short

    if r.status in ("not-installed", "skipped", "error"):
        return r.note or ""
    if r.mode == "install":
        base = f"{r.files} file{'s' if r.files != 1 else ''}, {human_bytes(r.bytes)} at {r.path}"
        return base if not r.note else f"{base} ({r.note})"
    if r.status == "missing":
        return r.note or "files are gone"
    parts = [f"{r.files} file{'s' if r.files != 1 else ''}, {human_bytes(r.bytes)}, {short(r.actual)}"]
    if r.status == "diverged":
        parts = [f"expected {short(r.expected)}, found {short(r.actual)}"]
    if r.hashed_files:
        rate = human_rate(r.hashed_bytes, r.seconds)
        parts.append(f"hashed {r.hashed_files} in {r.seconds:.1f} s" + (f" ({rate})" if rate else ""))
    if r.cached_files:
        parts.append(f"{r.cached_files} unchanged by stat")
    text = "; ".join(parts)
    return text + (f" ({r.note})" if r.note else "")


def _print_report(report, prog: str, *, named: bool) -> None:
    # Checking everything: entries with nothing on disk are only counted in the summary.
    shown = [r for r in report.results if named or r.status not in ("not-installed", "skipped")]
    width = max((len(r.name) for r in shown), default=0)
    for r in shown:
        line = f"{_STATUS[r.status]:<13} {r.name:<{width}}  {_describe(r)}"
        if r.locked:
            line += "  [locked]"
        if r.fixed:
            line += f"  [{r.fixed}]"
        click.echo(line.rstrip())
        for c in r.changes:
            click.echo(f"{'':<14}{c.describe()}")
    summary = report.summary()
    click.echo(", ".join(f"{n} {s}" for s, n in summary.items()) or "nothing to verify", err=True)
    failed = [r for r in report.results if r.failed]
    if failed:
        first = failed[0]
        if any(r.mode == "install" for r in failed):
            click.echo(f"hint: re-download or re-scan the entries; `{prog} verify --fix-missing` marks the ones "
                       f"whose files are gone", err=True)
        elif first.locked:
            click.echo(f"hint: if the change is intended: imageworks-loader lock {first.name} --set-expected",
                       err=True)
        else:
            click.echo(f"hint: if the change is intended: imageworks-loader verify {first.name} --accept", err=True)
    if click.get_current_context().params.get("dry_run"):
        click.echo("note: dry run, nothing was recorded", err=True)


@declared("verify")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "all_entries", is_flag=True, help="Verify every entry with files on disk.")
@click.option("--hashes/--no-hashes", default=None,
              help="Recompute digests (default for imageworks-loader and imageworks-models), or only check "
                   "path, file set and sizes (default for imageworks-download).")
@click.option("--quick", is_flag=True, help="Skip files whose size, times and inode are unchanged since hashed.")
@click.option("--fix-missing", is_flag=True, help="Mark entries whose files are gone; clear the mark when fine again.")
@click.option("--accept", is_flag=True, help="Record an unlocked entry's changed files as its expected state.")
@click.option("--algorithm", type=Choice("algorithm"),
              help="Hasher for a first manifest (sha256, blake3); default: setting.")
@dry_run_option("Check and report; record nothing in the registry.")
@json_option
@common_options
def verify_cmd(names, all_entries, hashes, quick, fix_missing, accept, algorithm, dry_run, as_json):
    from imageworks_models.integrity.verify import verify
    from imageworks_models.cli.progress import progress_for_terminal

    st = state()
    if hashes is None:
        hashes = st.prog != "imageworks-download"
    report = verify(names, all_entries=all_entries, hashes=hashes, quick=quick, fix_missing=fix_missing,
                    accept=accept, dry_run=dry_run, algorithm=algorithm, settings=st.settings(), plugins=None,
                    progress=progress_for_terminal())  # plugins=None: loaded only if a hasher is not built in
    if as_json:
        emit_json(report.as_dict())
    else:
        _print_report(report, st.prog, named=bool(names))
    click.get_current_context().exit(report.exit_code)


def _print_lock_results(results, dry_run: bool, as_json: bool) -> None:
    from imageworks_models.integrity.manifest import short

    if as_json:
        emit_json({"results": [r.as_dict() for r in results], "dry_run": dry_run})
        return
    for r in results:
        state_ = "locked" if r.locked else "unlocked"
        what = f"{state_} {r.name}" if r.changed else f"{r.name} was already {state_}"
        if r.expected:
            what += f" (expected {short(r.expected)})"
        if r.manifest is not None:
            what += f"; {len(r.manifest.files)} files, {human_bytes(r.manifest.total_bytes)} hashed"
        if r.note:
            what += f"; {r.note}"
        click.echo(("would have " + what) if dry_run and r.changed else what)
    if dry_run:
        click.echo("note: dry run, nothing was recorded", err=True)


@declared("lock")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--set-expected", is_flag=True,
              help="Hash the files now and record the result as the expected aggregate.")
@click.option("--quick", is_flag=True, help="With --set-expected: reuse digests of files unchanged since hashed.")
@click.option("--algorithm", type=Choice("algorithm"), help="Hasher for --set-expected (sha256, blake3); default: setting.")
@dry_run_option("Show what would change; record nothing.")
@click.option("--output", "-o", metavar="FILE", help="With `lock export`: the lockfile to write (default models.lock).")
@json_option
@common_options
def lock_cmd(names, set_expected, quick, algorithm, dry_run, output, as_json):
    from imageworks_models.integrity.verify import lock
    from imageworks_models.cli.progress import progress_for_terminal

    st = state()
    if names[0] == "export":  # `lock -- export` would still lock an entry named "export": there is none such
        _export(names[1:], output, dry_run, as_json)
        return
    if output:
        raise click.UsageError("--output goes with `lock export`")
    results = lock(names, set_expected=set_expected, quick=quick, algorithm=algorithm, dry_run=dry_run,
                   settings=st.settings(), plugins=st.plugins(), progress=progress_for_terminal())
    _print_lock_results(results, dry_run, as_json)


def _export(extra, output, dry_run, as_json) -> None:
    from imageworks_models.acquire.lockfile import LOCKFILE, export_lock

    if extra:
        raise click.UsageError("`lock export` takes no names: it exports every locked entry")
    result = export_lock(output or LOCKFILE, dry_run=dry_run, settings=state().settings())
    if as_json:
        emit_json(result)
        return
    verb = "would write" if dry_run else "wrote"
    click.echo(f"{verb} {result['path']}: {len(result['entries'])} locked entr"
               f"{'y' if len(result['entries']) == 1 else 'ies'}")
    for skipped in result["skipped"]:
        click.echo(f"skipped {skipped['name']}: {skipped['reason']}", err=True)


@declared("sync")
@click.argument("lockfile", default="models.lock", type=click.Path(dir_okay=False))
@dry_run_option("Check what is here and say what would be downloaded; change nothing.")
@wide_option
@json_option
@common_options
def sync_cmd(lockfile, dry_run, as_json):
    from imageworks_models.acquire.lockfile import sync_lock
    from imageworks_models.cli.progress import progress_for_terminal

    st = state()
    report = sync_lock(lockfile, dry_run=dry_run, settings=st.settings(), plugins=st.plugins(),
                       progress=progress_for_terminal())
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(table(("ACTION", "NAME", "DETAIL"),
                         [(r.action, r.name, (r.reason or "") + (f" (registered as {r.registered_as})"
                                                                 if r.registered_as else "")) for r in report.rows],
                         fold=("DETAIL",)))
        for r in report.rows:
            for path in r.differing:
                click.echo(f"{r.name}: differs: {path}", err=True)
        if dry_run:
            click.echo("note: dry run, nothing was downloaded or written", err=True)
    if report.exit_code:
        click.get_current_context().exit(report.exit_code)


@declared("check-updates")
@click.argument("names", nargs=-1, metavar="[NAME...]")
@wide_option
@json_option
@common_options
def check_updates_cmd(names, as_json):
    from imageworks_models.acquire.lockfile import check_updates

    st = state()
    rows = check_updates(list(names) or None, settings=st.settings(), plugins=st.plugins())
    if as_json:
        emit_json(rows)
    else:
        click.echo(table(("NAME", "STATUS", "REPO", "REVISION", "RECORDED", "LATEST"),
                         [(r["name"], r["status"], r["repo_id"] or "-", r["revision"] or "-",
                           (r["commit"] or "-")[:12], (r["latest"] or "-")[:12]) for r in rows]))
        for r in rows:
            if r["reason"]:
                click.echo(f"{r['name']}: {r['reason']}", err=True)
    if any(r["status"] == "error" for r in rows):
        click.get_current_context().exit(1)


@declared("unlock")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--clear-expected", is_flag=True, help="Also forget the pinned expected aggregate.")
@dry_run_option("Show what would change; record nothing.")
@json_option
@common_options
def unlock_cmd(names, clear_expected, dry_run, as_json):
    from imageworks_models.integrity.verify import unlock

    results = unlock(names, clear_expected=clear_expected, dry_run=dry_run, settings=state().settings())
    _print_lock_results(results, dry_run, as_json)
