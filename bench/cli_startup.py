"""CLI start-up benchmark: `--help` and `list --json` on a generated 5,000-entry registry.

Prints the median of 20 interleaved runs of each (one round runs every command once, so a busy neighbour
slows all of them alike) next to `python -c pass` measured in the same rounds, as absolute times and as
ratios. Targets (issue 18): --help <= 8x `python -c pass`, list --json (5,000 entries) <= 400 ms, and no
module of rich imported by `list --json` (the terminal-width logic must cost nothing there). Also prints
`list --json` with a stale snapshot (the cold path: parse + validate + merge both layers).

Run by hand:  uv run python bench/cli_startup.py [--runs 20] [--entries 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_registry(folder: Path, n: int) -> None:
    from imageworks_models.registry.store import RegistryStore

    store = RegistryStore(folder)
    with store.edit() as layers:
        for i in range(n):
            name = f"model{i:05d}-vllm-awq"
            layers.curated.put({
                "name": name, "display_name": f"Model {i}", "aliases": [f"org/model-{i}"], "backend": "vllm",
                "backend_config": {"port": 24000 + i % 1000, "model_path": f"/weights/org/model-{i}",
                                   "extra_args": ["--max-model-len", "8192"]},
                "served_model_id": f"org/model-{i}", "roles": ["caption", "keywords"],
                "role_priority": {"caption": i % 100, "keywords": 50}, "capabilities": {"text": True, "vision": i % 2 == 0},
                "family": "model", "format": "awq", "quantization": "awq", "license": "apache-2.0",
                "source": {"provider": "hf", "repo_id": f"org/model-{i}", "revision": "main"},
                "generation_defaults": {"temperature": 0.2, "max_tokens": 512},
            })
            layers.discovered.put({
                "name": name,
                "download": {"path": f"/weights/org/model-{i}", "location": "local", "size_bytes": 5_000_000_000 + i,
                             "file_count": 8},
                "artifacts": {"aggregate": "sha256:" + f"{i:064x}",
                              "files": [{"path": f"model-{k:05d}-of-00008.safetensors", "size": 600_000_000,
                                         "digest": "sha256:" + f"{i * 8 + k:064x}"} for k in range(8)]},
            })


def run_ms(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return elapsed


def interleaved(commands: dict[str, list[str]], runs: int, env: dict[str, str], before=None) -> dict[str, float]:
    """The median time of each command over ``runs`` rounds; each round runs every command once."""
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, cmd in commands.items():
            if before and label in before:
                before[label]()
            times[label].append(run_ms(cmd, env))
    return {label: statistics.median(t) for label, t in times.items()}


def imports_rich(exe: Path, args: list[str], env: dict[str, str]) -> bool:
    """Whether the command imports any module of rich (run in-process through the console script's code)."""
    code = ("import runpy, sys\n"
            f"sys.argv = [{str(exe)!r}, *{args!r}]\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "sys.stderr.write('RICH' if any(m.split('.')[0] == 'rich' for m in sys.modules) else 'NO-RICH')\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True).stderr
    return not out.endswith("NO-RICH")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--entries", type=int, default=5000)
    args = ap.parse_args()

    bindir = Path(sys.executable).parent
    exe = bindir / "imageworks-models"
    if not exe.exists():
        sys.exit(f"{exe} not found: run this with the project's environment (uv run python bench/cli_startup.py)")
    # pip and uv (with --compile-bytecode) install .pyc files; an environment made with
    # PYTHONDONTWRITEBYTECODE=1 has none and recompiles every module on every start. Measure installs
    # as users have them.
    import compileall
    import sysconfig

    import imageworks_models

    for folder in {sysconfig.get_paths()["purelib"], str(Path(imageworks_models.__file__).parent)}:
        compileall.compile_dir(folder, quiet=2, workers=0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reg = tmp / "configs"
        t0 = time.perf_counter()
        make_registry(reg, args.entries)
        build_s = time.perf_counter() - t0
        sizes = {p.name: p.stat().st_size for p in reg.glob("*.json")}
        env = {**os.environ, "HOME": str(tmp), "XDG_DATA_HOME": str(tmp / "share"),
               "IMAGEWORKS_REGISTRY_DIR": str(reg)}
        env.pop("IMAGEWORKS_DEBUG", None)
        out = subprocess.run([str(exe), "list", "--json", "--include-non-installed"], env=env,
                             capture_output=True, check=True).stdout
        assert len(json.loads(out)) == args.entries

        list_cmd = [str(exe), "list", "--json", "--include-non-installed"]
        fast = interleaved({"base": [sys.executable, "-c", "pass"], "help": [str(exe), "--help"], "list": list_cmd},
                           args.runs, env)
        snapshot = reg / "model_registry.json"

        def stale() -> None:
            snapshot.unlink(missing_ok=True)

        cold_runs = max(3, args.runs // 4)
        cold = interleaved({"base": [sys.executable, "-c", "pass"], "cold": list_cmd}, cold_runs, env,
                           before={"cold": stale})
        rich_json = imports_rich(exe, ["list", "--json", "--include-non-installed"], env)

    base, help_ms, list_ms, cold_ms = fast["base"], fast["help"], fast["list"], cold["cold"]
    print(f"registry: {args.entries} entries, files {', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in sizes.items())}"
          f" (built in {build_s:.1f} s)")
    print(f"python -c pass              median {base:7.1f} ms  (reference, {args.runs} interleaved runs)")
    rows = [("imageworks-models --help", help_ms, f"<= 8x python -c pass ({8 * base:.0f} ms)", help_ms <= 8 * base,
             args.runs),
            ("list --json (snapshot)", list_ms, "<= 400 ms", list_ms <= 400, args.runs),
            ("list --json (stale snapshot)", cold_ms, None, None, cold_runs)]
    for label, ms, target, ok, runs in rows:
        ref = cold["base"] if label.endswith("(stale snapshot)") else base
        verdict = "" if target is None else f"  target {target}: {'PASS' if ok else 'FAIL'}"
        print(f"{label:<28}median {ms:7.1f} ms  = {ms / ref:5.2f} x python -c pass ({runs} runs){verdict}")
    print(f"rich imported by list --json: {'yes: FAIL' if rich_json else 'no: PASS'}")


if __name__ == "__main__":
    main()
