"""One command table (issue 19 item 4): ``imageworks_models.present.commands`` declares every command once, and the
CLI, the README's command list and the GUI's CLI equivalents agree with it."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from imageworks_models.cli import CliState, make_cli
from imageworks_models.present import commands

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
NAMES = [c.name for c in commands.TABLE]


def test_names_are_unique():
    assert len(NAMES) == len(set(NAMES)) == len(commands.COMMANDS)


@pytest.mark.parametrize("name", NAMES)
def test_each_command_is_the_declared_one(name):
    spec = commands.COMMANDS[name]
    module, attr = spec.target.split(":")
    command = getattr(importlib.import_module(module), attr)
    assert command.name == name
    assert command.short_help == spec.summary
    options = {opt for p in command.params for opt in getattr(p, "opts", [])}
    assert ("--dry-run" in options) == spec.writes, f"{name}: writes={spec.writes} but --dry-run is {'' if '--dry-run' in options else 'not '}an option"
    assert ("--json" in options) == (spec.json is not None), f"{name}: json={spec.json!r} but --json is {'' if '--json' in options else 'not '}an option"


@pytest.mark.parametrize("name", [c.name for c in commands.TABLE if c.json])
def test_each_json_shape_is_documented(name):
    shapes = README.split("## JSON shapes", 1)[1].split("\n## ", 1)[0]
    assert f"`{commands.COMMANDS[name].json} --json`" in shapes


def test_help_is_declared_once():
    # no command function keeps a docstring of its own: its help is the table's
    for spec in commands.TABLE:
        module, attr = spec.target.split(":")
        path = Path(importlib.import_module(module).__file__)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == attr)
        assert ast.get_docstring(fn) is None, f"{spec.target} has a docstring; its help belongs in the table"


@pytest.mark.parametrize("prog", commands.PROGRAMS)
def test_help_lists_the_declared_commands_of_each_script(prog):
    cli = make_cli(prog)
    ctx = cli.make_context(prog, ["--help"], obj=CliState(prog), resilient_parsing=True)
    view = commands.visible_in(prog)
    expected = set(NAMES) if view is None else set(view)
    assert expected <= set(cli.list_commands(ctx))
    if view is not None:
        assert cli.get_command(ctx, next(n for n in NAMES if n not in view)) is None


def test_gui_cli_equivalents_name_declared_commands():
    from imageworks_models.gui import models_page

    page = Path(models_page.__file__).read_text(encoding="utf-8")
    named = set(re.findall(r'cli_line\(\s*"([a-z-]+)"', page)) | set(re.findall(r'args = \[\s*"([a-z-]+)"', page))
    assert named and named <= set(NAMES), named - set(NAMES)
    with pytest.raises(ValueError, match="not a command"):
        models_page.cli_line("activate-modle", "x")
