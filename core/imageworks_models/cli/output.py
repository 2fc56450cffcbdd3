"""Shared command-line plumbing: common options, JSON and table output, warnings on stderr."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any, Callable, Iterable, Sequence

import click

from imageworks_models.cli import CliState


class _WarningHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        from imageworks_models.redact import redact

        level = "warning" if record.levelno >= logging.WARNING else "note"
        click.echo(redact(f"{level}: {record.getMessage()}"), err=True)


def _setup_logging() -> None:
    logger = logging.getLogger("imageworks_models")
    if not any(isinstance(h, _WarningHandler) for h in logger.handlers):
        logger.addHandler(_WarningHandler())
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def _registry_dir_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.ensure_object(CliState).flags["registry_dir"] = value
    return value


def common_options(func: Callable) -> Callable:
    """``--registry-dir`` on the command itself too (it is also accepted before the command)."""
    _setup_logging()
    return click.option("--registry-dir", type=click.Path(file_okay=False), default=None, expose_value=False,
                        is_eager=True, callback=_registry_dir_callback,
                        help="Registry folder (overrides $IMAGEWORKS_REGISTRY_DIR).")(func)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (stable shape, see README).")


def _wide_callback(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.ensure_object(CliState).flags["wide"] = True
    return value


wide_option = click.option("--wide", is_flag=True, expose_value=False, callback=_wide_callback,
                           help="Show every column on a terminal, however wide (pipes always get every column).")


def _dry_run_callback(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        dry_run_scope(ctx)
    return value


def dry_run_scope(ctx: click.Context | None = None) -> None:
    """Until the command ends, nothing writes in the registry folder (not even the snapshot cache)."""
    from imageworks_models.registry.store import dry_run

    ctx = ctx or click.get_current_context()
    scope = dry_run()
    scope.__enter__()
    ctx.call_on_close(lambda: scope.__exit__(None, None, None))


def dry_run_option(help: str = "Show what would change; write nothing.") -> Callable:
    """``--dry-run``: the one declaration every write command uses (a dry run writes nothing in the registry
    folder)."""
    # eager: the scope must hold before any other option's check reads the registry
    return click.option("--dry-run", "dry_run", is_flag=True, is_eager=True, callback=_dry_run_callback, help=help)


class Choice(click.ParamType):
    """A value from a closed set that depends on what is installed and registered (backends, roles, formats,
    hash algorithms, providers, capabilities): checked when given, with the valid values and a "did you mean"
    in the usage error (exit code 64). ``comma`` accepts a comma-separated list of them.
    """

    def __init__(self, kind: str, *, comma: bool = False, metavar: str | None = None):
        self.kind = kind
        self.comma = comma
        self.name = kind
        self.metavar = metavar or kind.upper()

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self.metavar + ("[,...]" if self.comma else "")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from imageworks_models.present.choices import KINDS, canonical, check, resolve, valid
        from imageworks_models.errors import ImageworksError

        if value is None or not isinstance(value, str):
            return value
        state_ = (ctx.find_object(CliState) if ctx else None) or CliState()
        _, need_plugins, need_registry = KINDS[self.kind]
        registry = None
        if need_registry:
            from imageworks_models.registry.store import dry_run

            try:
                with dry_run():  # checking an option writes nothing, not even the snapshot cache
                    registry = state_.registry()
            except ImageworksError:  # an unreadable registry is the command's to report, with its own message
                registry = None
        allowed = valid(self.kind, plugins=state_.plugins() if need_plugins else None, registry=registry)
        out = []
        for item in (value.split(",") if self.comma else [value]):
            if not item.strip() and self.comma:
                continue
            item = resolve(self.kind, item.strip())
            problem = check(self.kind, item, allowed)
            if problem:
                self.fail(problem, param, ctx)
            out.append(canonical(item, allowed))
        return ",".join(out)


def state() -> CliState:
    return click.get_current_context().ensure_object(CliState)


def _shown(text: str) -> str:
    from imageworks_models.redact import redact

    return redact(text)


def emit_json(data: Any) -> None:
    click.echo(_shown(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


def emit_json_rows(rows: list[Any]) -> None:
    """A JSON array with one compact object per line: still one JSON document for ``jq``, readable,
    and written by the C encoder (``indent`` switches json to its pure-Python encoder, 10x slower)."""
    if not rows:
        click.echo("[]")
        return
    encode = json.JSONEncoder(ensure_ascii=False, default=str).encode  # one encoder: dumps(default=) builds one a call
    body = ",\n".join(map(encode, rows))
    click.echo(_shown(f"[\n{body}\n]"))


def emit_json_report(head: dict[str, Any], key: str, rows: list[Any]) -> None:
    """``head`` with ``key`` holding ``rows``, one row per line (the C encoder, as :func:`emit_json_rows`)."""
    encode = json.JSONEncoder(ensure_ascii=False, default=str).encode  # one encoder: dumps(default=) builds one a call
    body = ",\n".join(map(encode, rows))
    start = json.dumps(head, ensure_ascii=False, default=str)[:-1]
    sep = ", " if head else ""
    text = f"{start}{sep}{json.dumps(key)}: [\n{body}\n]}}" if rows else f"{start}{sep}{json.dumps(key)}: []}}"
    click.echo(_shown(text))


def terminal_width() -> int | None:
    """The width to fit tables to: the terminal's columns when stdout is a terminal and ``--wide`` was not
    given, else ``None`` (pipes get every column, at full width, whatever the terminal: stable to parse)."""
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.ensure_object(CliState).flags.get("wide"):
        return None
    import shutil

    return max(20, shutil.get_terminal_size().columns)


_TOKEN = re.compile(r"[^,/ ]+[,/ ]?|[,/ ]")


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``, broken only after a comma, slash or space (a word that is
    longer than ``width`` stays whole)."""
    lines, line = [], ""
    for token in _TOKEN.findall(text):
        if line and len(line) + len(token.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += token
    if line or not lines:
        lines.append(line.rstrip())
    return lines


def _fit(headers: list[str], cells: list[list[str]], width: int, drop: Sequence[str], fold: Sequence[str]
         ) -> tuple[list[int], list[int], list[str]]:
    """Which columns to show, at which widths, to fit ``width``: drop the ``drop`` columns (lowest value
    first) until folding the ``fold`` columns can make the rest fit, fold them, then shorten other columns
    (never the first: the name)."""
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    floors = list(widths)
    for c, name in enumerate(headers):
        if name in fold:
            words = [len(t.rstrip()) for r in cells[1:] for t in _TOKEN.findall(r[c])]
            floors[c] = min(widths[c], max([len(name), 8] + words))
    cols = list(range(len(headers)))

    def total(sizes: list[int]) -> int:
        return sum(sizes[c] for c in cols) + 2 * (len(cols) - 1)

    hidden = []
    for name in drop:
        if total(floors) <= width:
            break
        if name in headers and headers.index(name) in cols[1:]:
            cols.remove(headers.index(name))
            hidden.append(name)
    for c in sorted((c for c in cols if headers[c] in fold), key=lambda c: -widths[c]):
        if total(widths) <= width:
            break
        widths[c] = max(floors[c], widths[c] - (total(widths) - width))
    for c in sorted(cols[1:], key=lambda c: -widths[c]):
        if total(widths) <= width:
            break
        if headers[c] not in fold:
            widths[c] = max(len(headers[c]), 4, widths[c] - (total(widths) - width))
    return cols, widths, hidden


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, drop: Sequence[str] = (),
          fold: Sequence[str] = ()) -> str:
    """A plain aligned text table, no colour codes.

    On a terminal it fits the terminal's width (unless ``--wide``): the ``drop`` columns go first (lowest
    value first; a note on stderr names them), then ``fold`` columns wrap onto more lines at commas, slashes
    and spaces, then other cells are shortened with "…"; the first column (the name) is never cut or
    wrapped. In a pipe every column is printed in full, one line per row.
    """
    headers = [str(h) for h in headers]
    cells = [headers] + [["" if c is None else str(c) for c in r] for r in rows]
    width = terminal_width()
    if width is None:
        widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
        return _shown("\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:]))
    cols, widths, hidden = _fit(headers, cells, width, drop, fold)
    if hidden:
        click.echo(f"note: {', '.join(hidden).lower()} not shown to fit {width} columns (--wide shows all)",
                   err=True)
    out = []
    for i, row in enumerate(cells):
        parts = []
        for c in cols:
            text, w = row[c], widths[c]
            if len(text) <= w or c == cols[0]:
                parts.append([text])
            elif headers[c] in fold:
                parts.append(_wrap(text, w))
            else:
                parts.append([text[:w - 1] + "…"])
        for k in range(max(len(p) for p in parts)):
            out.append("  ".join((p[k] if k < len(p) else "").ljust(widths[c])
                                 for p, c in zip(parts, cols)).rstrip())
        if i == 0:
            out.append("  ".join("-" * widths[c] for c in cols))
    return _shown("\n".join(out))


from imageworks_models.units import human_bytes, human_rate  # noqa: E402,F401 - re-exported for the command modules
