"""The click decorator that builds a command from its declaration in :mod:`imageworks_models.present.commands`
(name, summary and help live there, once)."""

from __future__ import annotations

import click

from imageworks_models.present.commands import COMMANDS


def declared(name: str, *, group: bool = False, **attrs):
    """``@click.command(name)`` (``@click.group`` with ``group=True``) with the declared summary and help."""
    import inspect

    spec = COMMANDS[name]
    body = inspect.cleandoc(spec.help)
    text = spec.summary + ("\n\n" + body if body else "")
    maker = click.group if group else click.command
    return maker(name, help=text, short_help=spec.summary, **attrs)
