"""``--help``, ``--version`` and read commands on an unchanged registry import nothing heavy.

Each case runs the real console-script entry point in a fresh interpreter (this venv's python) and
prints ``sorted(sys.modules)`` when it exits, so an import anywhere (a command module pulling in
pydantic, a plugin imported to list its commands, ...) shows up.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

FORBIDDEN_PREFIXES = (
    "imageworks_models_hf", "imageworks_models_ollama", "imageworks_models_vllm", "imageworks_models_lmdeploy",
    "huggingface_hub", "ollama", "requests", "streamlit", "pydantic", "pluggy", "filelock",
    "starlette", "uvicorn", "httpx", "prometheus_client", "imageworks_models_llamacpp",
)
SUBCOMMANDS = ("list", "show", "select", "stats", "config", "gateway")
MARK = "\n@@MODULES@@"

RUNNER = textwrap.dedent("""
    import json, sys
    from imageworks_models import cli

    main = {"imageworks-models": cli.main_models, "imageworks-loader": cli.main_loader,
            "imageworks-download": cli.main_download}[sys.argv[1]]
    sys.argv = sys.argv[1:]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.stdout.flush()
        sys.stdout.write(%r + json.dumps(sorted(sys.modules)) + "\\n")
    sys.exit(code)
""" % MARK)


def run_cli(python, prog: str, *args: str) -> tuple[int, str, str, set[str]]:
    proc = subprocess.run([python, "-c", RUNNER, prog, *args], capture_output=True, text=True, timeout=60)
    out, sep, modules = proc.stdout.rpartition(MARK)
    assert sep, f"the runner printed no module list: {proc.stdout!r} {proc.stderr!r}"
    return proc.returncode, out, proc.stderr, set(json.loads(modules))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in FORBIDDEN_PREFIXES)


def test_runner_sees_imports(python):
    # guard against a runner that could never report anything: a command that loads plugins shows them
    code, out, _, modules = run_cli(python, "imageworks-models", "plugins", "--json")
    assert code == 0
    assert "pluggy" in modules and "imageworks_models_vllm.plugin" in modules
    assert heavy(modules)


def test_top_level_help_imports_nothing_heavy(python):
    code, out, err, modules = run_cli(python, "imageworks-models", "--help")

    assert code == 0, err
    assert "Usage: imageworks-models" in out
    for name in SUBCOMMANDS:
        assert f"\n  {name} " in out
    assert heavy(modules) == []
    assert "imageworks_models.cli.read" not in modules and "imageworks_models.cli.admin" not in modules


def test_top_level_help_reads_no_settings_when_no_plugin_declares_a_command(python):
    # --help lists plugin commands from entry-point metadata; the settings (a config file, their allow/deny lists)
    # are read only when some distribution declares a command, and the plugin host's own needs (logging, the
    # records, difflib) and click's shutil import (terminal width) stay out of the start-up.
    code, out, err, modules = run_cli(python, "imageworks-models", "--help")

    assert code == 0, err
    assert "imageworks_models.pluginhost.manager" in modules  # the entry points were read ...
    assert not modules & {"imageworks_models.settings", "imageworks_models.plugin.records", "imageworks_models.errors",
                          "logging", "difflib", "tomllib", "shutil"}, "... and nothing else"


def test_help_is_as_wide_as_the_terminal_says(python):
    import os

    narrow = subprocess.run([python, "-c", RUNNER, "imageworks-models", "--help"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "60"}, timeout=60).stdout
    wide = subprocess.run([python, "-c", RUNNER, "imageworks-models", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=60).stdout
    narrow, wide = narrow.split(MARK)[0].splitlines(), wide.split(MARK)[0].splitlines()
    assert len(narrow) > len(wide)  # wrapped to 58 columns (COLUMNS - 2, as click does) ...
    assert max(map(len, wide)) == 78  # ... and to click's 80-column cap less 2 on a wide terminal


def test_version_imports_nothing_heavy(python):
    code, out, err, modules = run_cli(python, "imageworks-models", "--version")

    assert code == 0, err
    assert out == "imageworks-models 0.1.0\n"
    assert heavy(modules) == []


@pytest.mark.parametrize("prog, verbs, absent", [
    ("imageworks-loader", ("list", "select"), ("stats", "config", "plugins")),
    ("imageworks-download", ("list", "list-roles", "stats", "config"), ("select", "show", "plugins")),
])
def test_other_console_scripts_help_imports_nothing_heavy(python, prog, verbs, absent):
    code, out, err, modules = run_cli(python, prog, "--help")

    assert code == 0, err
    assert f"Usage: {prog}" in out
    commands = out.split("Commands:", 1)[1]
    listed = {line.split()[0] for line in commands.splitlines() if line.strip()}
    assert set(verbs) <= listed
    assert not set(absent) & listed
    assert heavy(modules) == []


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help_imports_nothing_heavy(python, command):
    code, out, err, modules = run_cli(python, "imageworks-models", command, "--help")

    assert code == 0, err
    assert f"Usage: imageworks-models {command}" in out
    assert heavy(modules) == []


def test_list_json_on_a_fresh_snapshot_skips_pydantic(python, tmp_path):
    from imageworks_models.registry.store import RegistryStore

    registry = tmp_path / "registry"
    weights = tmp_path / "weights" / "alpha"
    weights.mkdir(parents=True)
    store = RegistryStore(registry)
    with store.edit() as layers:
        layers.curated.put({"name": "alpha", "backend": "vllm", "roles": ["caption"],
                            "capabilities": {"vision": True}})
        layers.curated.put({"name": "beta", "backend": "ollama"})
        layers.discovered.put({"name": "alpha", "download": {"path": str(weights)}})
    assert store.merged_path.is_file()
    assert store.load().from_snapshot  # the fast path is really what the CLI will take

    code, out, err, modules = run_cli(python, "imageworks-models", "--registry-dir", str(registry),
                                      "list", "--json", "--include-non-installed")

    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"alpha", "beta"}
    assert rows["alpha"]["installed"] is True and rows["beta"]["installed"] is False
    assert rows["alpha"]["capabilities"] == ["vision"]
    assert "pydantic" not in modules
    assert heavy(modules) == []


def test_list_json_on_a_changed_layer_validates(python, tmp_path):
    # the counterpart: once a layer changed since the snapshot, validation (pydantic) does run
    from imageworks_models.registry.store import RegistryStore

    registry = tmp_path / "registry"
    store = RegistryStore(registry)
    with store.edit() as layers:
        layers.curated.put({"name": "alpha", "backend": "vllm"})
    store.curated_path.write_bytes(store.curated_path.read_bytes().replace(b'"vllm"', b'"ollama"'))

    code, out, err, modules = run_cli(python, "imageworks-models", "--registry-dir", str(registry),
                                      "list", "--json", "--include-non-installed")

    assert code == 0, err
    assert [r["backend"] for r in json.loads(out)] == ["ollama"]
    assert "pydantic" in modules
