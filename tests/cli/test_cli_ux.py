"""The CLI a person enjoys (issue 18): typo-proof options, honest exit codes, tables that fit the terminal,
dry runs that are dry, one unit system, and quiet success when a pipe's reader stops early.

The console scripts run as real processes where a terminal or a pipe matters: in a pseudo-terminal 80 and
200 columns wide (tests/ptyrun.py), and through pipes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imageworks_models.cli import CliState, make_cli
from imageworks_models.present.commands import COMMANDS
from imageworks_models.registry.store import RegistryStore
from imageworks_models.testing import make_registry, run_cli
from modelfiles import make_models
from ptyrun import run_in_pty

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODELS = str(BIN / "imageworks-models")


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (lock files included) with its bytes: a dry run must change none of it."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def shipped(tmp_path) -> Path:
    """A copy of the shipped catalog (12 entries, none installed), without its snapshot (a stale cache)."""
    reg = tmp_path / "configs"
    reg.mkdir()
    for name in ("model_registry.curated.json", "model_registry.discovered.json"):
        shutil.copyfile(REPO / "configs" / name, reg / name)
    return reg


@pytest.fixture
def installed(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A registry whose entries come from a scan of four real model folders (recorded manifests)."""
    weights = tmp_path / "weights"
    make_models(weights)
    reg = Path(make_registry(tmp_path / "reg"))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(reg))
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(weights))
    result = run_cli("scan", "--base", str(weights), prog="imageworks-download")
    assert result.exit_code == 0, result.stderr
    return reg, weights


def env_for(reg: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "IMAGEWORKS_REGISTRY_DIR": str(reg), **extra}


def names_in(reg: Path) -> list[str]:
    return [r["name"] for r in json.loads(run_cli("--registry-dir", str(reg), "list", "--json",
                                                  "--include-non-installed").stdout)]


# --- 2. exit codes ---------------------------------------------------------------------------------------------


def test_exit_codes_have_one_meaning_each(installed):
    reg, weights = installed
    env = env_for(reg)

    def code(*args: str) -> int:
        return subprocess.run([MODELS, *args], env=env, capture_output=True, timeout=60).returncode

    assert code("list") == 0
    assert code("show", "no-such-entry") == 1  # an error
    assert code("list", "--no-such-option") == 64  # usage: EX_USAGE, not click's 2
    assert code("no-such-command") == 64
    assert code("show") == 64  # a missing argument
    assert code("list", "--backend", "vlmm") == 64  # a value outside its closed set
    name = next(n for n in names_in(reg) if "gguf" in n)
    assert code("verify", name) == 0
    gguf_file = next(weights.rglob("*.gguf"))
    data = bytearray(gguf_file.read_bytes())
    data[-1] ^= 0xFF
    gguf_file.write_bytes(bytes(data))
    assert code("verify", name) == 2  # divergence: the runbook's code, unchanged


def test_the_readme_lists_the_exit_codes():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for row in ("| `0` |", "| `1` |", "| `2` |", "| `64` |", "| `130` |"):
        assert row in readme, row


# --- 1. closed sets: checked, listed, "did you mean" -----------------------------------------------------------


@pytest.mark.parametrize("args, option, guess", [
    (("list", "--backend", "vlmm"), "backend 'vlmm'", "vllm"),
    (("list", "--role", "visoin"), "role 'visoin'", "vision"),
    (("select", "caption", "--require", "vison"), "capability 'vison'", "vision"),
    (("scan", "--base", "{weights}", "--format", "ggfu"), "format 'ggfu'", "gguf"),
    (("scan", "--base", "{weights}", "--backend", "olama"), "backend 'olama'", "ollama"),
    (("ingest-local-hf", "--root", "{weights}", "--format", "safetensor"), "format 'safetensor'", "safetensors"),
    (("discover-all", "--backend", "lmdeplyo"), "backend 'lmdeplyo'", "lmdeploy"),
    (("download", "org/x", "--format", "awk"), "format 'awk'", "awq"),
    (("download", "org/x", "--backend", "vlm"), "backend 'vlm'", "vllm"),
    (("verify", "--all", "--algorithm", "sha265"), "algorithm 'sha265'", "sha256"),
    (("lock", "x", "--set-expected", "--algorithm", "blake"), "algorithm 'blake'", "blake3"),
    (("purge-imported", "--providers", "hf,olama"), "provider 'olama'", "ollama"),
    (("reset-discovered", "--backend", "olama"), "backend 'olama'", "ollama"),
    (("import-ollama", "--backend", "olama"), "backend 'olama'", "ollama"),
    (("health", "vlmm"), "backend 'vlmm'", "vllm"),
    (("fit", "x", "--kv-dtype", "fp9"), "KV cache dtype 'fp9'", "fp8"),
])
def test_a_typo_in_a_closed_set_lists_the_valid_values_and_a_guess(installed, args, option, guess):
    reg, weights = installed
    before = tree(reg)
    args = [a.replace("{weights}", str(weights)) for a in args]

    result = run_cli(*args)

    assert result.exit_code == 64, (result.stdout, result.stderr)
    line = [x for x in result.stderr.splitlines() if x.startswith("Error:")][0]
    assert f"unknown {option} (valid: " in line and line.endswith(f"did you mean '{guess}'?")
    assert result.stdout == "" and tree(reg) == before


def test_the_valid_backends_are_what_the_loaded_plugins_register(tmp_path, monkeypatch):
    reg = make_registry(tmp_path / "reg", {"name": "a", "backend": "ollama"})
    assert run_cli("--registry-dir", reg, "list", "--backend", "lmdeploy", "--json").exit_code == 0
    monkeypatch.setenv("IMAGEWORKS_DISABLE_PLUGINS", "lmdeploy")

    result = run_cli("--registry-dir", reg, "list", "--backend", "lmdeploy", "--json")

    assert result.exit_code == 64 and "unknown backend 'lmdeploy' (valid: llamacpp, ollama, vllm)" in result.stderr


def test_a_backend_only_the_registry_names_is_valid_for_a_filter(tmp_path):
    reg = make_registry(tmp_path / "reg", {"name": "a", "backend": "lmstudio"})
    result = run_cli("--registry-dir", reg, "list", "--backend", "LMStudio", "--json", "--include-non-installed")
    assert result.exit_code == 0, result.stderr
    assert [r["name"] for r in json.loads(result.stdout)] == ["a"]  # spelled as registered: lmstudio


def test_a_capability_synonym_is_accepted(tmp_path):
    reg = make_registry(tmp_path / "reg", {"name": "a", "backend": "vllm", "capabilities": {"vision": True}})
    result = run_cli("--registry-dir", reg, "select", "a", "--require", "vl", "--json")
    assert result.exit_code == 0, result.stderr


# --- 3. tables that fit; pipes plain and stable; --json unchanged; a closed pipe is a success ----------------


def _table_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line and not line.startswith(("note:", "warning:"))
            and not line.endswith((" entries", " entry")) and "hidden:" not in line]


@pytest.mark.parametrize("columns", [80, 200])
def test_list_fits_the_terminal_and_never_cuts_a_name(shipped, columns):
    names = names_in(shipped)
    code, out = run_in_pty([MODELS, "list", "--include-non-installed"], columns=columns, env=env_for(shipped))

    assert code == 0, out
    lines = _table_lines(out)
    assert lines[0].startswith("NAME") and max(len(line) for line in lines) <= columns, out
    rows = [line.split()[0] for line in lines[2:] if not line.startswith(" ")]
    assert rows == names  # every name whole, on its own line, in order
    header = lines[0].split()
    assert {"BACKEND", "LOCK", "ACTIVE"} <= set(header)
    if columns == 200:
        assert "CAPABILITIES" in header and "ROLES" in header
    else:
        assert "DISPLAY" not in header
        assert "not shown to fit 80 columns (--wide shows all)" in out


def test_wide_shows_every_column_on_a_narrow_terminal(shipped):
    code, out = run_in_pty([MODELS, "list", "--include-non-installed", "--details", "--wide"], columns=80,
                           env=env_for(shipped))
    assert code == 0, out
    header = _table_lines(out)[0]
    for column in ("DISPLAY NAME", "ROLES", "CAPABILITIES", "HASH", "INSTALLED", "FORMAT", "QUANT", "SIZE",
                   "LOCATION", "SERVED ID", "PATH"):
        assert column in header
    assert "not shown" not in out


def test_a_pipe_gets_every_column_one_row_per_line_whatever_the_width(shipped):
    outs = [subprocess.run([MODELS, "list", "--include-non-installed"], capture_output=True, text=True,
                           env=env_for(shipped, COLUMNS=str(c)), timeout=60) for c in (40, 300)]
    assert outs[0].stdout == outs[1].stdout  # stable: the terminal's width does not matter in a pipe
    lines = outs[0].stdout.splitlines()
    assert "DISPLAY NAME" in lines[0] and "\x1b[" not in outs[0].stdout
    assert [line.split()[0] for line in lines[2:]] == names_in(shipped)
    assert "not shown" not in outs[0].stderr


def test_json_is_the_same_in_a_terminal_and_a_pipe(shipped):
    piped = subprocess.run([MODELS, "list", "--json", "--include-non-installed"], capture_output=True, text=True,
                           env=env_for(shipped), timeout=60).stdout
    code, out = run_in_pty([MODELS, "list", "--json", "--include-non-installed"], columns=80, env=env_for(shipped))
    assert code == 0
    body = out[out.index("["):out.rindex("]") + 1]
    assert json.loads(body) == json.loads(piped)


@pytest.mark.parametrize("args", [("list", "--include-non-installed"), ("list", "--json", "--include-non-installed")])
def test_a_reader_that_stops_early_is_a_quiet_success(tmp_path, args):
    reg = tmp_path / "big"
    with RegistryStore(reg).edit() as layers:
        for i in range(3000):
            layers.curated.put({"name": f"model{i:05d}-vllm-awq", "backend": "vllm",
                                "display_name": f"Model {i} with a rather long display name"})
    proc = subprocess.Popen([MODELS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env_for(reg))
    first = proc.stdout.readline()  # `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert first and proc.returncode == 0, err
    assert "error" not in err and "Traceback" not in err and "BrokenPipe" not in err


def test_json_output_never_imports_rich(shipped):
    code = ("import sys\nfrom imageworks_models.cli import main_models\n"
            "sys.argv = ['imageworks-models', 'list', '--json', '--include-non-installed']\n"
            "try:\n    main_models()\nexcept SystemExit:\n    pass\n"
            "print('RICH' if any(m.split('.')[0] == 'rich' for m in sys.modules) else 'NO-RICH', file=sys.stderr)\n")
    for argv in (["list", "--json", "--include-non-installed"], ["list", "--include-non-installed"]):
        src = code.replace("'list', '--json', '--include-non-installed'", ", ".join(repr(a) for a in argv))
        proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=env_for(shipped),
                              timeout=60)
        assert proc.stderr.strip().endswith("NO-RICH"), (argv, proc.stderr)


# --- 4. dry runs are dry ----------------------------------------------------------------------------------------


def test_every_write_command_has_dry_run():
    cli = make_cli()
    ctx = cli.make_context("imageworks-models", ["list"], obj=CliState())
    missing = []
    writers = sorted(name for name, spec in COMMANDS.items() if spec.writes)
    for name in writers:
        command = cli.get_command(ctx, name)
        if not any(getattr(p, "name", None) == "dry_run" for p in command.params):
            missing.append(name)
    assert missing == []
    assert {"download", "remove", "activate-model", "verify"} <= set(writers)


DRY_RUNS = [
    ("scan", "--base", "{weights}", "--dry-run"),
    ("scan", "--base", "{weights}", "--update-existing", "--dry-run"),
    ("ingest-local-hf", "--root", "{weights}", "--dry-run"),
    ("discover-all", "--hf-root", "{weights}", "--dry-run"),
    ("import-ollama", "--dry-run"),
    ("rebuild-ollama", "--dry-run"),
    ("backfill-ollama-paths", "--dry-run"),
    ("reset-discovered", "--backend", "vllm", "--dry-run"),
    ("remove", "{name}", "--delete-files", "--purge", "--dry-run"),
    ("remove", "{name}"),
    ("lock", "{name}", "--dry-run"),
    ("lock", "{name}", "--set-expected", "--dry-run"),
    ("unlock", "{name}", "--clear-expected", "--dry-run"),
    ("lock", "export", "--dry-run"),
    ("verify", "--all", "--dry-run"),
    ("verify", "--all", "--fix-missing", "--dry-run"),
    ("normalize-formats", "--dry-run"),
    ("normalize-formats", "--rebuild", "--prune-missing"),
    ("prune-duplicates", "--dry-run"),
    ("prune-deprecated", "--dry-run"),
    ("purge-logical-only", "--dry-run"),
    ("purge-imported", "--providers", "all", "--dry-run"),
    ("purge-imported",),
    ("activate-model", "{name}", "--dry-run"),
    ("sync", "models.lock", "--dry-run"),
]


@pytest.mark.parametrize("args", DRY_RUNS, ids=[" ".join(a) for a in DRY_RUNS])
def test_a_dry_run_changes_no_file_in_the_registry_folder(installed, monkeypatch, args):
    reg, weights = installed
    name = names_in(reg)[0]
    (reg / "model_registry.json").unlink()  # a stale snapshot: a plain read would rebuild it
    monkeypatch.setenv("OLLAMA_MODELS", str(weights.parent / "no-ollama-store"))
    before = tree(reg)
    args = [a.replace("{weights}", str(weights)).replace("{name}", name) for a in args]

    result = run_cli(*args)

    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert result.exit_code in (0, 1), (result.exit_code, result.stderr)
    assert tree(reg) == before, result.stderr


def test_purge_imported_dry_run_and_apply_together_are_a_usage_error(installed):
    reg, _ = installed
    before = tree(reg)
    result = run_cli("purge-imported", "--apply", "--dry-run")
    assert result.exit_code == 64 and "contradict" in result.stderr
    assert tree(reg) == before


def test_purge_imported_dry_run_lists_what_apply_removes(installed):
    reg, _ = installed
    dry = json.loads(run_cli("purge-imported", "--providers", "all", "--dry-run", "--json").stdout)
    applied = json.loads(run_cli("purge-imported", "--providers", "all", "--apply", "--json").stdout)
    assert dry["dry_run"] is True and applied["dry_run"] is False
    assert [r["name"] for r in dry["rows"]] == [r["name"] for r in applied["rows"]] and dry["rows"]


# --- 5. one unit system; a rate only when bytes moved -----------------------------------------------------------


def test_sizes_are_binary_units_and_a_rate_only_when_bytes_were_hashed(installed):
    reg, weights = installed
    name = next(n for n in names_in(reg) if "gguf" in n)
    for path in weights.rglob("*"):  # written a moment ago: a file that new is always hashed again
        os.utime(path, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    first = run_cli("verify", name)
    assert first.exit_code == 0, first.stderr
    assert "iB/s)" in first.stdout or " B/s)" in first.stdout  # hashed now: bytes, time and rate
    assert " GB" not in first.stdout and " MB" not in first.stdout and "KiB" in first.stdout

    again = run_cli("verify", name, "--quick")

    assert again.exit_code == 0 and "unchanged by stat" in again.stdout
    assert "/s" not in again.stdout  # nothing was read: no rate

    stats = run_cli("stats").stdout
    assert "disk: " in stats and ("KiB" in stats or "MiB" in stats) and " GB" not in stats


@pytest.mark.parametrize("command", ["scan", "normalize-formats"])
def test_progress_bar_on_a_terminal_and_none_in_a_pipe(tmp_path, command):
    weights = tmp_path / "weights"
    folder = weights / "Big-Model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    header = json.dumps({"w": {"dtype": "F16", "shape": [32 << 20], "data_offsets": [0, 64 << 20]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(folder / "model.safetensors", "wb") as fh:
        fh.write(len(header).to_bytes(8, "little") + header)
        fh.write(os.urandom(64 << 20))
    reg = Path(make_registry(tmp_path / "reg"))
    env = env_for(reg, IMAGEWORKS_WEIGHTS_ROOT=str(weights), XDG_CACHE_HOME=str(tmp_path / "cache"))
    first = subprocess.run([MODELS, "scan", "--base", str(weights)], env=env, capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == 0, first.stderr
    assert "\x1b[" not in first.stderr and "MiB/s" not in first.stderr  # piped: no bar
    if command == "scan":  # a fresh registry: the model is added and hashed again, on a terminal now
        env["IMAGEWORKS_REGISTRY_DIR"] = make_registry(tmp_path / "reg2")
        argv = [MODELS, "scan", "--base", str(weights)]
    else:
        argv = [MODELS, "normalize-formats", "--rebuild"]
    env["XDG_CACHE_HOME"] = str(tmp_path / "cold-cache")  # hash again: the bar has bytes to show
    code, out = run_in_pty(argv, columns=120, env=env)
    assert code == 0, out
    assert "MiB" in out and "\x1b[" in out  # a drawn bar with binary units
    assert " MB" not in out and "MB/s" not in out


def test_help_reads_plugin_commands_without_importing_importlib_metadata():
    # issue 18's start-up budget (--help <= 8x `python -c pass`, bench/cli_startup.py): importing
    # importlib.metadata alone was a sixth of --help; plugin command names are read from entry_points.txt
    code = ("import sys\nfrom imageworks_models.cli import main_models\nsys.argv = ['imageworks-models', '--help']\n"
            "try:\n    main_models()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('importlib.metadata', 'rich', 'email'))),"
            " file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Commands:" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr


def test_library_dry_runs_change_no_file_either(installed):
    # the GUI and library callers get the guarantee from the core functions, not only the CLI
    from imageworks_models.maintain.cleanup import purge_imported
    from imageworks_models.acquire.discovery import scan
    from imageworks_models.maintain.normalize import normalize_formats
    from imageworks_models.settings import load_settings

    reg, weights = installed
    (reg / "model_registry.json").unlink()  # stale: a plain read would rebuild it
    before = tree(reg)
    settings = load_settings()

    scan([weights], update_existing=True, dry_run=True, settings=settings)
    purge_imported(["all"], settings=settings)  # a dry run by default
    normalize_formats(settings=settings)

    assert tree(reg) == before
    scan([weights], update_existing=True, settings=settings)  # not a dry run: the snapshot is rebuilt
    assert (reg / "model_registry.json").is_file()
