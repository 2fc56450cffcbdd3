"""Shared command-line plumbing: common options, JSON and table output, warnings on stderr."""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Iterable, Sequence

import click

from . import CliState


class _WarningHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        from ..endpoints import redact

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


def state() -> CliState:
    return click.get_current_context().ensure_object(CliState)


def _shown(text: str) -> str:
    from ..endpoints import redact  # user:password@ in an endpoint is never printed (S12)

    return redact(text)


def emit_json(data: Any) -> None:
    click.echo(_shown(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


def emit_json_rows(rows: list[Any]) -> None:
    """A JSON array with one compact object per line: still one JSON document for ``jq``, readable,
    and written by the C encoder (``indent`` switches json to its pure-Python encoder, 10x slower)."""
    if not rows:
        click.echo("[]")
        return
    body = ",\n".join(json.dumps(r, ensure_ascii=False, default=str) for r in rows)
    click.echo(_shown(f"[\n{body}\n]"))


def emit_json_report(head: dict[str, Any], key: str, rows: list[Any]) -> None:
    """``head`` with ``key`` holding ``rows``, one row per line (the C encoder, as :func:`emit_json_rows`)."""
    body = ",\n".join(json.dumps(r, ensure_ascii=False, default=str) for r in rows)
    start = json.dumps(head, ensure_ascii=False, default=str)[:-1]
    sep = ", " if head else ""
    text = f"{start}{sep}{json.dumps(key)}: [\n{body}\n]}}" if rows else f"{start}{sep}{json.dumps(key)}: []}}"
    click.echo(_shown(text))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain aligned text table (stable in pipes, no colour codes)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return _shown("\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:]))


def human_bytes(n: int | None) -> str:
    if not n:
        return "-" if n is None else "0 B"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)
