"""The import direction of the core's folders: a lower layer never imports a higher one (issue 19 item 2).

Every import statement counts, at module level or inside a function (a deferred import is still a dependency),
except those under ``if TYPE_CHECKING:``. ``api.py`` is the plugin boundary: it names what plugins may use
and imports nothing at run time (its names load lazily), so it stands outside the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import imageworks_models

PKG = Path(imageworks_models.__file__).parent

# Bottom first. Modules of one layer may import each other; a layer may import any layer below it.
# The README's "Architecture" section draws the same picture (tests/architecture/test_docs.py keeps them equal).
LAYERS: list[tuple[str, ...]] = [
    ("errors", "settings", "units", "reports", "redact"),
    ("fs",),
    ("plugin",),
    ("formats",),
    ("pluginhost",),
    ("registry",),
    ("integrity",),
    ("acquire",),
    ("live",),
    ("fit",),
    ("serving",),
    ("maintain",),
    ("export", "gateway"),
    ("present",),
    ("gui",),
    ("cli", "testing", "pytest_plugin"),
]
OUTSIDE = {"api", "__init__"}  # the facades: lazy names only
INDEPENDENT = [("export", "gateway")]  # siblings that never import each other


def top(module: str) -> str:
    return module.split(".")[0]


def layer_of(name: str) -> int | None:
    for i, names in enumerate(LAYERS):
        if name in names:
            return i
    return None


def core_modules() -> dict[str, Path]:
    found = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1] or ["__init__"]
        found[".".join(parts)] = path
    return found


def _is_core_module(name: str) -> bool:
    return (PKG / name).is_dir() or (PKG / f"{name}.py").is_file()


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported core module) for every import of the core in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    is_pkg = path.name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base[: len(base) - (node.level - 1)] + ([node.module] if node.module else [])
                target = ".".join(parts)
            elif node.module == "imageworks_models" or (node.module or "").startswith("imageworks_models."):
                target = node.module[len("imageworks_models"):].lstrip(".")
            else:
                continue
            if not target:  # from imageworks_models import x: x is the module
                out.extend((node.lineno, alias.name if _is_core_module(alias.name) else "__init__")
                           for alias in node.names)
            else:
                out.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("imageworks_models."):
                    out.append((node.lineno, alias.name[len("imageworks_models."):]))
    return out


def violations() -> list[str]:
    found = []
    for module, path in sorted(core_modules().items()):
        here = top(module)
        if here in OUTSIDE or module == "__init__":
            continue
        mine = layer_of(here)
        assert mine is not None, f"{module}: its folder {here!r} is in no layer; add it to LAYERS"
        for line, target in imports_of(module, path):
            there = top(target)
            if there == here or there in OUTSIDE:
                if there == "api":
                    found.append(f"{path.relative_to(PKG.parent)}:{line}: the core imports the plugin API ({target})")
                continue
            theirs = layer_of(there)
            assert theirs is not None, f"{module} imports {target}, which is in no layer"
            if theirs > mine or (theirs == mine and {here, there} in [set(p) for p in INDEPENDENT]):
                found.append(f"{path.relative_to(PKG.parent)}:{line}: {here} (layer {mine}) imports {target} "
                             f"(layer {theirs})")
    return found


def test_every_core_folder_is_in_a_layer():
    folders = {top(m) for m in core_modules()} - OUTSIDE
    assert folders == {name for names in LAYERS for name in names}


def test_lower_layers_never_import_upper_ones():
    assert violations() == []


def test_the_check_finds_an_upward_import(tmp_path, monkeypatch):
    # The check itself can fail: an fs module importing the CLI is reported.
    bad = tmp_path / "imageworks_models" / "fs" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from imageworks_models.cli import main\n")
    assert imports_of("fs.bad", bad) == [(2, "cli")]
    assert layer_of("cli") > layer_of("fs")


@pytest.mark.parametrize("folder", sorted({name for names in LAYERS for name in names} - {
    "errors", "settings", "units", "reports", "redact", "testing", "pytest_plugin"}))
def test_each_folder_says_what_it_owns_and_may_import(folder):
    doc = ast.get_docstring(ast.parse((PKG / folder / "__init__.py").read_text(encoding="utf-8")))
    assert doc and len(doc) > 80, f"{folder}/__init__.py needs a docstring saying what it owns"
    text = " ".join(doc.split()).lower()
    assert "may import" in text or "top layer" in text, f"{folder}/__init__.py: say what it may import"
