"""Hashing benchmark: `verify` throughput against references measured in the same run.

Generates (in a temporary folder, or --dir) one 2 GiB file and eight 256 MiB files, registers them as
two entries, and measures, best of --runs, with the files in the page cache
(a warm-up read comes first, so every method reads from memory, as a re-verify on a workstation does):

  single file   our verify() vs `openssl dgst -sha256` and a bare hashlib.sha256 read loop
  eight files   our verify() (files in parallel) vs the same references, run over the files in turn
  blake3        our verify() with a blake3 manifest vs our verify() with sha256 (same files)

verify --quick (10,000 unchanged small files) is measured by bench/verify_speed.py, as a command.

"Our verify" is the library call the CLI makes (`imageworks_models.integrity.verify.verify`): it loads the
registry, walks the folder, hashes, compares and records last_verified (a locked registry write), so
the figures include everything but interpreter start-up. It never shells out to sha256sum (coreutils
reaches about a quarter of hashlib's speed here).

Targets (2 cores): single file >= 0.95x the bare loop and >= 1.0x openssl; eight files >= 1.8x the
bare loop; blake3 >= 3x sha256.

Run by hand:  uv run python bench/hash_throughput.py [--runs 3] [--dir /some/folder] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GiB = 1 << 30
MiB = 1 << 20


def write_random(path: Path, size: int) -> None:
    block = os.urandom(16 * MiB)  # random enough for a hash function; urandom for 2 GiB is slow
    with open(path, "wb") as f:
        left = size
        i = 0
        while left:
            chunk = block[: min(left, len(block))]
            f.write(i.to_bytes(8, "little") + chunk[8:])  # every block differs
            left -= len(chunk)
            i += 1


def generate(root: Path) -> dict[str, Path]:
    single = root / "single" / "model.gguf"
    eight = root / "eight"
    if not single.exists():
        single.parent.mkdir(parents=True)
        print(f"writing {single} (2 GiB)...", file=sys.stderr)
        write_random(single, 2 * GiB)
    if not eight.exists():
        eight.mkdir()
        print(f"writing {eight} (8 x 256 MiB)...", file=sys.stderr)
        for k in range(8):
            write_random(eight / f"model-{k + 1:05d}-of-00008.safetensors", 256 * MiB)
    # Old mtimes, so the stat cache trusts every file (a file written in the last 2 s is rehashed).
    hour_ago = time.time() - 3600
    for folder, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(folder, name), (hour_ago, hour_ago))
    return {"single": single, "eight": eight}


def files_of(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def bare_loop(paths: list[Path]) -> None:
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(MiB):
                h.update(chunk)
        h.hexdigest()


def openssl(paths: list[Path]) -> None:
    subprocess.run(["openssl", "dgst", "-sha256", *map(str, paths)], check=True, stdout=subprocess.DEVNULL)


def best(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, help="where to generate the files (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args()

    work = args.dir or Path(tempfile.mkdtemp(prefix="iw-hash-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(work, args.runs)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, runs: int) -> None:
    from imageworks_models.integrity.verify import lock, verify
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry.store import RegistryStore
    from imageworks_models.settings import load_settings

    paths = generate(work / "files")
    env = {**os.environ, "IMAGEWORKS_CACHE_DIR": str(work / "cache")}
    # One registry per scenario, so the big-file figures do not carry the cost of writing the
    # 10,000-file manifests back (every verify records last_verified).
    settings = {}
    for key, path in paths.items():
        registry = work / f"registry-{key}"
        shutil.rmtree(registry, ignore_errors=True)
        with RegistryStore(registry).edit() as layers:
            for algo in ("sha256", "blake3"):
                n = f"bench-{key}-{algo}"
                layers.curated.put({"name": n, "backend": "vllm"})
                layers.discovered.put({"name": n, "download": {"path": str(path)}})
        settings[key] = load_settings(flags={"registry_dir": str(registry)}, env=env)
    plugins = get_plugins(settings["single"])
    has_blake3 = "blake3" in plugins.hashers

    def our(name: str, quick: bool = False):
        key = name.split("-")[1]

        def go():
            report = verify([name], quick=quick, settings=settings[key], plugins=plugins)
            if report.exit_code != 0:
                sys.exit(f"verify {name} failed: {report.as_dict()}")
        return go

    # Baselines (and the warm-up read that puts every file in the page cache).
    for name in paths:
        lock([f"bench-{name}-sha256"], set_expected=True, settings=settings[name], plugins=plugins)
        if has_blake3:
            lock([f"bench-{name}-blake3"], set_expected=True, algorithm="blake3", settings=settings[name],
                 plugins=plugins)
    shutil.which("openssl") or sys.exit("openssl is needed as the reference (apt install openssl)")

    print(f"hash throughput, best of {runs}, files in the page cache, {os.cpu_count()} CPUs "
          f"({len(os.sched_getaffinity(0))} usable)")
    print()
    results = {}
    for label, key, size in (("one 2 GiB file", "single", 2 * GiB), ("eight 256 MiB files", "eight", 8 * 256 * MiB)):
        files = files_of(paths[key])
        t_bare = best(lambda: bare_loop(files), runs)
        t_ssl = best(lambda: openssl(files), runs)
        t_our = best(our(f"bench-{key}-sha256"), runs)
        t_b3 = best(our(f"bench-{key}-blake3"), runs) if has_blake3 else None
        gb = size / 1e9
        print(f"{label}:")
        print(f"  bare hashlib loop     {gb / t_bare:6.2f} GB/s  (1.00x)")
        print(f"  openssl dgst -sha256  {gb / t_ssl:6.2f} GB/s  ({t_bare / t_ssl:.2f}x bare)")
        print(f"  our verify (sha256)   {gb / t_our:6.2f} GB/s  ({t_bare / t_our:.2f}x bare, "
              f"{t_ssl / t_our:.2f}x openssl)")
        if t_b3:
            print(f"  our verify (blake3)   {gb / t_b3:6.2f} GB/s  ({t_our / t_b3:.2f}x our sha256)")
        print()
        results[key] = (t_bare, t_ssl, t_our, t_b3)

    s_bare, s_ssl, s_our, s_b3 = results["single"]
    e_bare, _, e_our, e_b3 = results["eight"]
    checks = [
        ("single file >= 0.95x bare loop", s_bare / s_our, 0.95),
        ("single file >= 1.0x openssl", s_ssl / s_our, 1.0),
        ("eight files >= 1.8x bare loop", e_bare / e_our, 1.8),
    ]
    if s_b3:
        checks.append(("blake3 >= 3x sha256 (one file)", s_our / s_b3, 3.0))
        checks.append(("blake3 >= 3x sha256 (eight files)", e_our / e_b3, 3.0))
    for what, ratio, target in checks:
        print(f"  {'PASS' if ratio >= target else 'FAIL'}  {what}")


if __name__ == "__main__":
    main()
