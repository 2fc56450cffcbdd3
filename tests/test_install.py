"""A light default install (issue 18, item 8): the README's main command installs only what the CLI needs;
the GUI and the development tools are extras; the README's test command (which `.ci/run` runs) installs
everything the tests need; the README names the Hub CLI as `hf`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
README = (REPO / "README.md").read_text(encoding="utf-8")
HEAVY = ("streamlit", "playwright", "pytest", "numpy", "safetensors", "gguf")


def _names(requirements) -> set[str]:
    return {re.split(r"[<>=\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def _setup_commands() -> list[str]:
    block = README.split("## Set-up", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_the_readme_sets_up_with_two_commands_and_ci_runs_its_test_command():
    main, tests = _setup_commands()
    assert main == "python -m pip install uv && uv run imageworks-models list --include-non-installed"
    assert tests == "uv run --all-extras pytest"
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.strip().startswith("#")]
    assert ci[-1] == tests  # exactly the README's test command


def test_the_default_install_is_the_core_and_the_bundled_plugins_only():
    uv = PYPROJECT["tool"]["uv"]
    default = set(_names(PYPROJECT["project"]["dependencies"]))
    for group in uv["default-groups"]:
        default |= _names(PYPROJECT["dependency-groups"][group])
    assert {"imageworks-models-hf", "imageworks-models-ollama", "imageworks-models-vllm",
            "imageworks-models-lmdeploy"} <= default
    assert not default & set(HEAVY), default & set(HEAVY)
    for member in ("hf", "ollama", "vllm", "lmdeploy"):  # the plugins' own needs: client libraries only
        plugin = tomllib.loads((REPO / "plugins" / member / "pyproject.toml").read_text(encoding="utf-8"))
        assert not _names(plugin["project"].get("dependencies", [])) & set(HEAVY), member


def test_the_gui_and_the_development_tools_are_extras():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "streamlit" in _names(extras["gui"])
    assert {"pytest", "safetensors", "gguf", "numpy", "streamlit", "playwright", "blake3"} <= _names(extras["dev"])
    assert "uv run --extra gui imageworks-models gui" in README and "uv sync --all-extras" in README


def test_the_readme_names_the_hub_cli_hf():
    assert "hf cache ls" in README
    mentions = [m.start() for m in re.finditer("huggingface-cli", README)]
    assert all(README[i - 15:i].endswith("it replaced `") for i in mentions), "use `hf`, not huggingface-cli"


def test_the_install_writes_bytecode_and_the_readme_says_so():
    # `--help` start-up is judged as the README's command installs it (bench/cli_startup.py): uv compiles the
    # installed packages at install time, so no start pays for compiling click and the rest.
    assert PYPROJECT["tool"]["uv"].get("compile-bytecode") is True
    assert "compile-bytecode" in README
