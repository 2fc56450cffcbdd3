"""CLI start-up and `list --json`, timed as a user's install runs them (issue 20).

The bench first makes the install a user has: it copies this checkout (tracked files and untracked ones git does
not ignore) to a temporary folder and runs the README's set-up command there (`uv run imageworks-models list
--include-non-installed`), which creates `.venv` as a user's first run does: uv writes the installed packages'
bytecode because pyproject.toml says `compile-bytecode = true`. Nothing else is compiled; with
PYTHONDONTWRITEBYTECODE set (it is printed), our own modules (an editable install) are compiled on every start.

Then, every command as a process of that install, with `python -c pass` of the same interpreter timed in the same
rounds (interleaved; min/median/max; goals judged on the median):

1. `imageworks-models --help`: <= 8x `python -c pass` and <= 120 ms.
2. `imageworks-models list --json --include-non-installed` on 5,000 entries: <= 400 ms with a current snapshot,
   and <= 400 ms right after a person edited one entry of the curated layer (the stale snapshot is rebuilt in
   that run). No module of rich imported by it. The same with no snapshot at all is shown, not judged.
3. Scale: the same at 1,000, 5,000 and 20,000 entries, current and stale snapshot; growth between sizes net of
   `python -c pass` must be linear or better (factor <= size ratio, +10% for noise).

The line under each command is the library call in this process (RegistryStore.load, the list rows and their JSON
text), for comparison; goals are judged on the commands.

Run by hand:  uv run python bench/cli_startup.py [--runs 21] [--scale-runs 7] [--sizes 1000,5000,20000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import goal, interleave, show, summary, timed

REPO = Path(__file__).resolve().parent.parent
LIST = ["list", "--json", "--include-non-installed"]
EDITED = 17  # the entry a person edits by hand before each stale run


def readme_setup_command() -> str:
    """The README's set-up command, less its `python -m pip install uv &&` (uv is here: it runs this bench)."""
    block = (REPO / "README.md").read_text(encoding="utf-8").split("## Set-up", 1)[1].split("```bash", 1)[1]
    first = block.split("```", 1)[0].strip().splitlines()[0].split("#", 1)[0].strip()
    return first.split("&&", 1)[1].strip()


def user_install(dest: Path, env: dict[str, str]) -> tuple[Path, float]:
    """A copy of this checkout set up with the README's command; returns its .venv/bin and the seconds it took."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    command = readme_setup_command()
    t0 = time.perf_counter()
    proc = subprocess.run(command, shell=True, cwd=dest, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the README's set-up command failed in {dest}: {command}\n{proc.stderr[-2000:]}")
    return dest / ".venv" / "bin", time.perf_counter() - t0


def make_registry(folder: Path, n: int) -> None:
    """``n`` entries in both layers, written as the tool writes them, then one load to write the snapshot."""
    from imageworks_models.registry.store import CURATED_FILE, DISCOVERED_FILE, RegistryStore, dump_document

    curated, discovered = [], []
    for i in range(n):
        name = f"model{i:05d}-vllm-awq"
        curated.append({
            "name": name, "display_name": f"Model {i}", "aliases": [f"org/model-{i}"], "backend": "vllm",
            "backend_config": {"port": 24000 + i % 1000, "model_path": f"/weights/org/model-{i}",
                               "extra_args": ["--max-model-len", "8192"]},
            "served_model_id": f"org/model-{i}", "roles": ["caption", "keywords"],
            "role_priority": {"caption": i % 100, "keywords": 50}, "capabilities": {"text": True, "vision": i % 2 == 0},
            "family": "model", "format": "awq", "quantization": "awq", "license": "apache-2.0",
            "source": {"provider": "hf", "repo_id": f"org/model-{i}", "revision": "main"},
            "generation_defaults": {"temperature": 0.2, "max_tokens": 512},
        })
        discovered.append({
            "name": name,
            "download": {"path": f"/weights/org/model-{i}", "location": "local", "size_bytes": 5_000_000_000 + i,
                         "file_count": 8},
            "artifacts": {"aggregate": "sha256:" + hashlib.sha256(b"%d" % i).hexdigest(),
                          "files": [{"path": f"model-{k:05d}-of-00008.safetensors", "size": 600_000_000,
                                     "digest": "sha256:" + hashlib.sha256(b"%d/%d" % (i, k)).hexdigest()}
                                    for k in range(8)]},
        })
    folder.mkdir(parents=True)
    (folder / CURATED_FILE).write_bytes(dump_document(curated))
    (folder / DISCOVERED_FILE).write_bytes(dump_document(discovered))
    RegistryStore(folder).load()


class HandEdit:
    """Before each stale run: a person changes one entry's display name in the curated layer (a new name each
    time, so the snapshot is stale for every run)."""

    def __init__(self, folder: Path):
        self.path = folder / "model_registry.curated.json"
        self.original = self.path.read_bytes()
        self.needle = f'"display_name": "Model {EDITED}"'.encode()
        assert self.needle in self.original
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        edited = f'"display_name": "Model {EDITED} (edit {self.count})"'.encode()
        self.path.write_bytes(self.original.replace(self.needle, edited, 1))


def library_call(folder: Path) -> float:
    """Seconds of the library's part of `list --json` in this process: load, list rows, their JSON text."""
    from imageworks_models.registry.store import RegistryStore
    from imageworks_models.present.views import list_rows

    t0 = time.perf_counter()
    registry = RegistryStore(folder).load()
    rows, _ = list_rows(registry, include_non_installed=True)
    "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False, default=str) for r in rows) + "\n]"
    return time.perf_counter() - t0


def imports_rich(python: Path, exe: Path, env: dict[str, str]) -> bool:
    """Whether `list --json` imports any module of rich (the console script's code run in-process)."""
    code = ("import runpy, sys\n"
            f"sys.argv = [{str(exe)!r}, *{LIST!r}]\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "sys.stderr.write('RICH' if any(m.split('.')[0] == 'rich' for m in sys.modules) else 'NO-RICH')\n")
    out = subprocess.run([str(python), "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True).stderr
    return not out.endswith("NO-RICH")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=21, help="rounds for --help and list at 5,000 entries (>= 5)")
    ap.add_argument("--scale-runs", type=int, default=7, help="rounds per size of the scale curve (>= 5)")
    ap.add_argument("--sizes", default="1000,5000,20000")
    args = ap.parse_args()
    runs, scale_runs = max(5, args.runs), max(5, args.scale_runs)
    sizes = [int(s) for s in args.sizes.split(",")]

    # The install runs in the user's environment (uv finds its cache and Python there); the timed commands get a
    # home of their own, so no setting or registry of the real one is read.
    user_env = {k: v for k, v in os.environ.items()
                if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "IMAGEWORKS_DEBUG")}
    with tempfile.TemporaryDirectory(prefix="iw-bench-") as tmp:
        tmp = Path(tmp)
        env = {**user_env, "HOME": str(tmp / "home"), "XDG_DATA_HOME": str(tmp / "share"),
               "XDG_CONFIG_HOME": str(tmp / "config"), "XDG_CACHE_HOME": str(tmp / "cache")}
        (tmp / "home").mkdir()
        bindir, install_s = user_install(tmp / "install", user_env)
        python, exe = bindir / "python", bindir / "imageworks-models"
        site = next((tmp / "install" / ".venv" / "lib").glob("python3*/site-packages"))
        pyc = sum(1 for _ in site.rglob("*.pyc"))
        core_pyc = sum(1 for _ in (tmp / "install" / "core").rglob("*.pyc"))
        print(f"install: `{readme_setup_command()}` in a copy of this checkout ({install_s:.1f} s); "
              f"{pyc} .pyc files in site-packages, {core_pyc} of our own modules; "
              f"PYTHONDONTWRITEBYTECODE={'set' if os.environ.get('PYTHONDONTWRITEBYTECODE') else 'unset'}")
        print(f"python: {python} ({subprocess.run([str(python), '-V'], capture_output=True, text=True).stdout.strip()})")
        base = [str(python), "-c", "pass"]

        # 1. --help
        print(f"\n--help ({runs} interleaved rounds)")
        s = interleave({"pass": lambda: timed(base, env), "help": lambda: timed([str(exe), "--help"], env),
                        "uv run": lambda: timed(["uv", "run", "imageworks-models", "--help"], user_env,
                                                cwd=str(tmp / "install"))}, runs=runs)
        ref = show("python -c pass (reference)", s["pass"])
        helped = show("imageworks-models --help", s["help"])
        show("uv run imageworks-models --help (information: uv's sync check)", s["uv run"])
        goal("--help <= 8x python -c pass", helped <= 8 * ref, f"{helped / ref:.2f}x, {helped * 1000:.0f} ms vs "
             f"{ref * 1000:.1f} ms")
        goal("--help <= 120 ms", helped <= 0.120, f"{helped * 1000:.0f} ms = {helped / 0.120:.2f}x the goal")

        # 2 and 3. list --json, current and stale snapshot, at each size
        results: dict[int, dict[str, float]] = {}
        for n in sizes:
            reg = tmp / f"registry-{n}"
            t0 = time.perf_counter()
            make_registry(reg, n)
            files = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(reg.glob("*.json")))
            nenv = {**env, "IMAGEWORKS_REGISTRY_DIR": str(reg)}
            out = subprocess.run([str(exe), *LIST], env=nenv, capture_output=True, check=True).stdout
            assert len(json.loads(out)) == n
            edit = HandEdit(reg)
            rounds = runs if n == 5000 else scale_runs
            print(f"\nlist --json, {n:,} entries ({files}; made in {time.perf_counter() - t0:.1f} s; {rounds} rounds)")
            s = interleave({
                "pass": lambda: timed(base, nenv),
                "fresh": lambda: timed([str(exe), *LIST], nenv),
                "fresh-lib": lambda: library_call(reg),
                "stale": lambda: timed([str(exe), *LIST], nenv),
                "stale-lib": lambda: library_call(reg),
            }, runs=rounds, before_each=lambda name: edit() if name.startswith("stale") else None)
            ref = show("python -c pass (reference)", s["pass"])
            fresh = show("list --json, current snapshot", s["fresh"])
            show("  library call in-process", s["fresh-lib"])
            stale = show("list --json, one entry edited by hand (rebuild)", s["stale"])
            show("  library call in-process", s["stale-lib"])
            results[n] = {"pass": ref, "fresh": fresh, "stale": stale}
            if n == 5000:
                goal("list --json 5,000 entries <= 400 ms", fresh <= 0.400,
                     f"{fresh * 1000:.0f} ms = {fresh / 0.400:.2f}x the goal, {fresh / ref:.1f}x python -c pass")
                goal("list --json 5,000 entries after a hand edit <= 400 ms", stale <= 0.400,
                     f"{stale * 1000:.0f} ms = {stale / 0.400:.2f}x the goal, {stale / ref:.1f}x python -c pass")
                goal("list --json imports no module of rich", not imports_rich(python, exe, nenv), "checked in-process")
                snapshot = reg / "model_registry.json"
                cold = interleave({"pass": lambda: timed(base, nenv), "cold": lambda: timed([str(exe), *LIST], nenv)},
                                  runs=5, before_each=lambda name: snapshot.unlink(missing_ok=True)
                                  if name == "cold" else None)
                show("python -c pass (reference)", cold["pass"])
                show("list --json, no snapshot (information)", cold["cold"])

        # 3. growth
        print("\ngrowth between sizes (median, net of python -c pass)")
        for a, b in zip(sizes, sizes[1:]):
            ratio = b / a
            for kind in ("fresh", "stale"):
                net_a = results[a][kind] - results[a]["pass"]
                net_b = results[b][kind] - results[b]["pass"]
                factor = net_b / net_a
                whole = results[b][kind] / results[a][kind]
                goal(f"list --json {kind} {a:,} -> {b:,} linear or better", factor <= ratio * 1.1,
                     f"x{factor:.2f} for x{ratio:g} entries (whole command x{whole:.2f})")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
