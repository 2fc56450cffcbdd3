"""Acquisition commands: download, scan, ingest-local-hf, discover-all.

The work is in :mod:`imageworks_models.acquire.download` and :mod:`imageworks_models.acquire.discovery`.
"""

from __future__ import annotations

import click

from imageworks_models.cli.output import (Choice, common_options, dry_run_option, emit_json, emit_json_report, human_bytes, json_option,
                     state, table, wide_option)
from imageworks_models.cli.declare import declared


def _print_scan(report, *, prog: str) -> None:
    rows = report.rows
    if rows:
        click.echo(table(("ACTION", "NAME", "FORMAT", "QUANT", "FILES", "SIZE", "PATH / REASON"),
                         [(("would " if report.dry_run and r.action in ("add", "update") else "") + r.action,
                           r.name or "-", r.format or "-", r.quantization or "-", r.files, human_bytes(r.size_bytes),
                           r.path + (f"  ({r.reason})" if r.reason else "")) for r in rows],
                         drop=("QUANT", "FILES", "FORMAT", "SIZE"), fold=("PATH / REASON",)))
    counts = ", ".join(f"{n} {a}" for a, n in report.counts().items()) or "no models found"
    click.echo(f"{counts} ({report.inspected} inspected, {report.cached} from cache, {report.seconds:.2f} s)", err=True)
    if report.dry_run:
        click.echo("note: dry run, nothing was written", err=True)
    else:
        click.echo(f"{report.written} entr{'y' if report.written == 1 else 'ies'} written to the discovered layer",
                   err=True)
    if any(r.action == "exists" for r in rows):
        click.echo(f"hint: `{prog} scan --update-existing` refreshes entries already registered", err=True)


def _scan_options(func):
    for option in reversed((
        dry_run_option("Print the table of changes; write nothing."),
        click.option("--include-testing", is_flag=True, help="Also record placeholders (flagged testing)."),
        click.option("--format", "fallback_format", type=Choice("format"),
                     help="Format for models whose format cannot be detected (a fallback only)."),
        click.option("--backend", type=Choice("backend"), help="Backend of new entries (default: vllm)."),
        click.option("--location", metavar="LABEL", help="Location label recorded (default: the setting)."),
        wide_option,
        json_option,
        common_options,
    )):
        func = option(func)
    return func


def _run_scan(roots, *, discover, update_existing, include_testing, fallback_format, backend, location, dry_run,
              as_json) -> None:
    from imageworks_models.acquire.discovery import scan
    from imageworks_models.cli.progress import progress_for_terminal

    st = state()
    report = scan(roots, discover=discover, update_existing=update_existing, include_testing=include_testing,
                  fallback_format=fallback_format, backend=backend, location=location, dry_run=dry_run,
                  settings=st.settings(), plugins=st.plugins(), progress=progress_for_terminal())
    if as_json:
        data = report.as_dict()
        emit_json_report({k: v for k, v in data.items() if k != "rows"}, "rows", data["rows"])
    else:
        _print_scan(report, prog=st.prog)
    if any(r.action == "error" for r in report.rows):
        click.get_current_context().exit(1)


@declared("scan")
@click.option("--base", "bases", multiple=True, required=True, type=click.Path(file_okay=False),
              metavar="DIR", help="Weights folder to walk (repeatable).")
@click.option("--update-existing", is_flag=True, help="Refresh entries already registered for a found folder.")
@_scan_options
def scan_cmd(bases, update_existing, include_testing, fallback_format, backend, location, dry_run, as_json):
    _run_scan(bases, discover=False, update_existing=update_existing, include_testing=include_testing,
              fallback_format=fallback_format, backend=backend, location=location, dry_run=dry_run, as_json=as_json)


@declared("ingest-local-hf")
@click.option("--root", "roots", multiple=True, required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Weights folder to ingest (repeatable).")
@_scan_options
def ingest_local_hf_cmd(roots, include_testing, fallback_format, backend, location, dry_run, as_json):
    _run_scan(roots, discover=False, update_existing=True, include_testing=include_testing,
              fallback_format=fallback_format, backend=backend, location=location, dry_run=dry_run, as_json=as_json)


@declared("discover-all")
@click.option("--hf-root", "roots", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Weights folder to scan (repeatable; default: the weights_root setting if it exists).")
@_scan_options
def discover_all_cmd(roots, include_testing, fallback_format, backend, location, dry_run, as_json):
    from pathlib import Path

    if not roots:
        default = Path(state().settings().weights_root).expanduser()
        roots = (str(default),) if default.is_dir() else ()
    _run_scan(roots, discover=True, update_existing=True, include_testing=include_testing,
              fallback_format=fallback_format, backend=backend, location=location, dry_run=dry_run, as_json=as_json)


def _ask(question: str, options: list[str]) -> str:
    click.echo(question, err=True)
    for i, option in enumerate(options, 1):
        click.echo(f"  {i}) {option}", err=True)
    index = click.prompt("choice", type=click.IntRange(1, len(options)), default=1, err=True)
    return options[index - 1]


def _banner(result) -> None:
    verb = {"add": "registered", "update": "updated"}.get(result.action, result.action)
    template = result.chat_template
    where = f"{result.repo_id}@{(result.commit or '')[:12]} ({result.revision})"
    count = f"{len(result.files)} file{'s' if len(result.files) != 1 else ''}"
    if result.transferred_bytes:
        head = f"✅ Downloaded {where}"
        moved = (f"fetched {human_bytes(result.transferred_bytes)}" +
                 (f", resumed or present {human_bytes(result.reused_bytes)}" if result.reused_bytes else ""))
    else:  # a rerun: every file was already here and checked; saying "Downloaded" would be a lie
        head = f"✅ {where}: nothing to download, {count} already verified"
        moved = "nothing fetched"
    lines = [
        head,
        f"   entry:          {result.name} ({verb})",
        f"   path:           {result.path}",
        f"   location:       {result.location}",
        f"   format / quant: {result.format or '-'} / {result.quantization or '-'}",
        f"   files:          {count} ({human_bytes(result.total_bytes)}; {moved})",
        "   chat template:  " + (f"detected ({template.get('source')}: {template.get('path')})"
                                 if template else "none detected"),
    ]
    if result.capabilities:
        lines.append(f"   capabilities:   {', '.join(result.capabilities)}")
    click.echo("\n".join(lines))
    for note in result.notes:
        click.echo(f"note: {note}", err=True)


@declared("download")
@click.argument("spec", metavar='"OWNER/REPO[@REV]"')
@click.option("--format", type=Choice("format"),
              help="Wanted format: safetensors, awq, gptq, fp8, gguf... (default: the repo's).")
@click.option("--location", metavar="LABEL", help="Location label; a label under `locations` in the config picks "
                                                  "that folder (default: the location setting, weights_root).")
@click.option("--weights", metavar="F1,F2", help="Exact weight files to take (comma-separated).")
@click.option("--support-repo", metavar="OWNER/REPO", help="Take missing tokenizer/config files from this repo.")
@click.option("--include-optional", is_flag=True, help="Also fetch READMEs, licences, custom code.")
@click.option("--non-interactive", is_flag=True, help="Never ask (pick the default GGUF quant, or fail).")
@click.option("--force", is_flag=True, help="Download again and replace an existing copy.")
@click.option("--no-aria2", is_flag=True, help="Use the built-in downloader even if aria2c is on PATH.")
@click.option("--backend", type=Choice("backend"), help="Backend of the new entry (default: vllm).")
@click.option("--name", "entry_name", metavar="NAME",
              help="Register the files under this entry name (default: the catalog entry of the repo, else the "
                   "naming rule's).")
@dry_run_option("Resolve the revision and print the files; write nothing.")
@json_option
@common_options
def download_cmd(spec, format, location, weights, support_repo, include_optional, non_interactive, force, no_aria2,
                 backend, entry_name, dry_run, as_json):
    import sys

    from imageworks_models.acquire.download import download
    from imageworks_models.cli.progress import progress_for_terminal

    st = state()
    interactive = not non_interactive and sys.stdin.isatty() and not as_json
    result = download(spec, format=format, location=location,
                      weights=tuple(w.strip() for w in (weights or "").split(",") if w.strip()),
                      support_repo=support_repo, include_optional=include_optional, force=force,
                      use_aria2=not no_aria2, dry_run=dry_run, backend=backend, name=entry_name,
                      choose=_ask if interactive else None,
                      settings=st.settings(), plugins=st.plugins(), progress=progress_for_terminal())
    if as_json:
        emit_json(result.as_dict())
        return
    if dry_run:
        click.echo(f"would download {result.repo_id}@{(result.commit or '')[:12]} ({result.revision}) "
                   f"to {result.path}: {len(result.files)} files, {human_bytes(result.total_bytes)}"
                   + (f", as {result.name}" if result.name else ""))
        for name in result.files:
            click.echo(f"  {name}")
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
        click.echo("note: dry run, nothing was written", err=True)
        return
    _banner(result)
