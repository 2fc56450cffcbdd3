"""The declared plugin API (issue 19 item 1): plugins import only ``imageworks_models.api``; the core never imports
a plugin; every name the API lists resolves; every Protocol method is in the README's plugin guide with its exact
signature (the hooks are checked in test_hookspecs_docs.py)."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest

import imageworks_models
from imageworks_models import api
from imageworks_models.plugin import protocols

REPO = Path(__file__).resolve().parents[2]
CORE = Path(imageworks_models.__file__).parent
PLUGIN_SOURCES = sorted(REPO.glob("plugins/*/src/**/*.py"))


def core_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for each import of the core (``imageworks_models`` or below) in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "imageworks_models":
                out.extend((node.lineno, f"imageworks_models.{a.name}") for a in node.names)
            elif node.module.startswith("imageworks_models."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names
                       if a.name == "imageworks_models" or a.name.startswith("imageworks_models."))
    return out


def test_plugin_sources_are_found():
    assert {p.parts[p.parts.index("plugins") + 1] for p in PLUGIN_SOURCES} >= {
        "hf", "ollama", "vllm", "lmdeploy", "llamacpp"}


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_plugins_import_only_the_api(path):
    bad = [f"{path.relative_to(REPO)}:{line}: {module}" for line, module in core_imports(path)
           if module != "imageworks_models.api"]
    assert bad == [], "plugins may import only imageworks_models.api from the core:\n" + "\n".join(bad)


def test_the_check_catches_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from imageworks_models.api import hookimpl\n"
                   "def f():\n    from imageworks_models.serving.activation import start\n")
    assert [m for _, m in core_imports(bad) if m != "imageworks_models.api"] == ["imageworks_models.serving.activation"]


def test_the_core_never_imports_a_plugin():
    bad = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            bad += [f"{path.relative_to(CORE.parent)}:{node.lineno}: {n}" for n in names
                    if n.startswith("imageworks_models_")]
    assert bad == [], "the core reaches plugins through their records and Protocols only:\n" + "\n".join(bad)


@pytest.mark.parametrize("name", api.__all__)
def test_every_api_name_resolves(name):
    assert getattr(api, name) is not None


def test_an_unknown_api_name_is_refused_with_the_rule():
    with pytest.raises(AttributeError, match="only the names in imageworks_models.api.__all__"):
        api.activate  # noqa: B018 - the orchestrator is not part of the plugin API


def test_importing_the_api_loads_nothing_else(tmp_path):
    import subprocess
    import sys

    code = ("import sys; import imageworks_models.api; "
            "print(sorted(m for m in sys.modules if m.startswith('imageworks_models.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['imageworks_models.api']"


def _protocols() -> dict[str, type]:
    return {n: c for n, c in vars(protocols).items()
            if inspect.isclass(c) and c.__module__ == protocols.__name__ and getattr(c, "_is_protocol", False)}


def protocol_methods() -> list[str]:
    out = []
    for cname, cls in sorted(_protocols().items()):
        for mname in sorted(typing.get_protocol_members(cls) if hasattr(typing, "get_protocol_members")
                            else [m for m in vars(cls) if not m.startswith("_") or m == "__call__"]):
            out.append(f"{cname}.{mname}")
    return out


def signature_line(qualname: str) -> str:
    """``ServerBackend.launch(entry, *, settings) -> Launch``: parameter names, kinds and defaults (no ``self``),
    and the return annotation as written."""
    cname, mname = qualname.split(".")
    fn = getattr(_protocols()[cname], mname)
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1:]
    parts, star = [], False
    for p in params:
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        text = p.name + (f"={p.default!r}" if p.default is not p.empty else "")
        parts.append(text)
        if p.kind is p.POSITIONAL_ONLY:
            parts.append("/")
    ret = fn.__annotations__.get("return", "")
    ret = str(ret).strip("'\"")
    return f"{qualname}({', '.join(parts)}) -> {ret}"


def test_protocols_are_found():
    assert {"ServerBackend", "LoadingBackend", "Scanner", "Fetcher", "Store", "HashObject", "Inspector"} <= set(_protocols())
    assert "ServerBackend.launch" in protocol_methods()


@pytest.mark.parametrize("method", protocol_methods())
def test_protocol_method_is_documented_in_readme(method):
    line = f"`{signature_line(method)}`"
    assert line in (REPO / "README.md").read_text(encoding="utf-8"), f"README.md does not show {line}"


@pytest.mark.parametrize("method", protocol_methods())
def test_protocol_method_has_a_docstring(method):
    cname, mname = method.split(".")
    assert inspect.getdoc(getattr(_protocols()[cname], mname))


def test_bundled_backends_satisfy_their_protocols():
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.settings import load_settings

    host = get_plugins(load_settings())
    kinds = {}
    for name in ("vllm", "lmdeploy", "llamacpp", "ollama"):
        if name not in host.backends:
            pytest.skip(f"the {name} plugin is not installed (uv sync installs every bundled plugin)")
        impl = host.backends[name].load()
        kinds[name] = (isinstance(impl, protocols.ServerBackend), isinstance(impl, protocols.LoadingBackend),
                       isinstance(impl, protocols.HealthReporter))
    assert kinds == {"vllm": (True, False, True), "lmdeploy": (True, False, True), "llamacpp": (True, False, True),
                     "ollama": (False, True, True)}
    for name in ("vllm", "lmdeploy", "llamacpp"):
        assert isinstance(host.backends[name].load(), protocols.OptionGuard)
