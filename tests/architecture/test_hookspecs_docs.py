"""Every hook of the plugin contract is documented and tested (as datasette checks its own hooks).

For each hookspec in ``imageworks_models.plugin.hookspecs``: it has a docstring; the README has a heading line
exactly ``### `<name>(<args>)` `` with the hook's real parameters; and some test is named
``test_hook_<name>`` or ``test_hook_<name>_...`` in ``tests/`` or ``plugins/*/tests/``.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from imageworks_models.plugin import hookspecs

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SPEC_MARK = f"{hookspecs.PROJECT}_spec"  # the attribute pluggy's HookspecMarker sets


def hook_specs() -> dict[str, object]:
    return {name: fn for name, fn in vars(hookspecs).items()
            if inspect.isfunction(fn) and getattr(fn, SPEC_MARK, None) is not None}


HOOKS = sorted(hook_specs())


def test_hookspecs_are_found():
    # the contract docs/DESIGN.md names; if marker detection broke, every per-hook test would vanish silently
    assert {"register_sources", "register_backends", "register_hashers", "register_commands",
            "inspect_artifact"} <= set(HOOKS)


def test_hook_function_names_are_collected():
    assert "test_hook_inspect_artifact_last_registered_plugin_answers_first" in collect_test_names()


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring(hook):
    doc = inspect.getdoc(hook_specs()[hook])
    assert doc and doc.strip(), f"hookspec {hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_readme(hook):
    heading = f"### `{hook}{inspect.signature(hook_specs()[hook])}`"
    lines = README.read_text(encoding="utf-8").splitlines()
    assert heading in lines, f"README.md has no heading line {heading!r}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    names = collect_test_names()
    assert any(n == f"test_hook_{hook}" or n.startswith(f"test_hook_{hook}_") for n in names), (
        f"no test named test_hook_{hook} or test_hook_{hook}_* in tests/ or plugins/*/tests/")


def collect_test_names() -> set[str]:
    """Names of every function in the test files (module level and in classes)."""
    files = [*(REPO / "tests").rglob("test_*.py"), *REPO.glob("plugins/*/tests/**/test_*.py")]
    names: set[str] = set()
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names |= {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names
