"""verify --quick benchmark: the whole command on 10,000 unchanged files, and how it grows with the file count.

Generates (once, in --dir or a temporary folder) a model folder of N small files (100 per subfolder),
backdated an hour so the stat cache may trust them, registers it as one vllm entry and records its
manifest with ``imageworks-loader lock NAME --set-expected`` (a process, as a user would). Then, in
interleaved rounds (one discarded warm-up round first, then --runs rounds; min/median/max printed, goals
judged on the median):

  command    ``imageworks-loader verify NAME --quick`` as a process: start-up, imports, registry load,
             the stat check of every file, and recording the check (what the user waits for)
  library    ``imageworks_models.integrity.verify([NAME], quick=True)`` in this process: the same minus
             start-up and imports (registry load, check, record)
  check      ``manifest.build_manifest(root, quick=True)`` alone: walk, stat cache, aggregate digest

and references timed the same way in the same rounds: ``python -c pass`` (interpreter start-up) and
``find ROOT -type f -printf '%s %T@ %i'`` (a stat of every file, no hashing) as processes, and an
``os.walk`` + ``os.lstat`` loop in this process beside the library lines.

It also checks that the unchanged verify rewrote no registry layer and no snapshot (bytes and mtimes of
model_registry.curated.json, model_registry.discovered.json and model_registry.json before and after).

Goals (issue 20): command <= 150 ms and library call <= 100 ms on 10,000 files; the scale curve
(1k, 5k, 20k files, command and library call) grows linearly or better.

Bytecode: the timed processes run without PYTHONDONTWRITEBYTECODE (this sandbox's shell sets it; a user's
shell does not), so the discarded warm-up round writes the __pycache__ files any first run writes, and
nothing more: site-packages are not compiled ahead.

Run by hand:  uv run python bench/verify_speed.py [--runs 5] [--dir DIR] [--no-curve]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _timing import goal, interleave, median, show, summary, timed

NAME = "bench-quick"
MAIN = 10_000
CURVE = (1_000, 5_000, 20_000)
LINEAR_SLACK = 1.15  # growth within 15% of the size ratio counts as linear (2 shared cores are noisy)
BIN = Path(sys.executable).parent


def generate(root: Path, files: int) -> None:
    """``files`` small files under ``root`` (once), backdated so the stat cache trusts them."""
    marker = root.parent / f".generated-{root.name}"  # beside the tree: a file in it would be hashed
    if marker.exists() and marker.read_text() == str(files):
        return
    shutil.rmtree(root, ignore_errors=True)
    for d in range((files + 99) // 100):
        sub = root / f"shard-{d:04d}"
        sub.mkdir(parents=True)
        for k in range(min(100, files - d * 100)):
            (sub / f"part-{k:03d}.json").write_bytes(os.urandom(512 + (d * 100 + k) % 1500))
    hour_ago = time.time() - 3600
    for folder, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(folder, name), (hour_ago, hour_ago))
    marker.write_text(str(files))


def setup(work: Path, files: int) -> tuple[Path, dict]:
    """The tree, and the environment of a registry holding its entry with a recorded, locked manifest."""
    root = work / f"tree-{files}"
    generate(root, files)
    registry, cache = work / f"registry-{files}", work / f"cache-{files}"
    shutil.rmtree(registry, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    registry.mkdir(parents=True)
    (registry / "model_registry.curated.json").write_text(
        '{"schema_version": 1, "entries": [{"name": "%s", "backend": "vllm"}]}\n' % NAME)
    (registry / "model_registry.discovered.json").write_text(
        '{"schema_version": 1, "entries": [{"name": "%s", "download": {"path": "%s"}}]}\n' % (NAME, root))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(IMAGEWORKS_REGISTRY_DIR=str(registry), IMAGEWORKS_CACHE_DIR=str(cache))
    timed([str(BIN / "imageworks-loader"), "lock", NAME, "--set-expected"], env)  # hashes, fills the stat cache
    return root, env


def registry_state(env: dict) -> dict[str, tuple[bytes, int]]:
    folder = Path(env["IMAGEWORKS_REGISTRY_DIR"])
    return {f: ((folder / f).read_bytes(), (folder / f).stat().st_mtime_ns)
            for f in ("model_registry.curated.json", "model_registry.discovered.json", "model_registry.json")}


def cases(root: Path, env: dict, *, references: bool) -> dict:
    """The timed cases for one tree: the command and library call (and, with ``references``, the references)."""
    from imageworks_models.integrity.verify import verify
    from imageworks_models.integrity.manifest import build_manifest
    from imageworks_models.settings import load_settings

    settings = load_settings(env=env)
    command = [str(BIN / "imageworks-loader"), "verify", NAME, "--quick"]

    def library() -> float:
        t0 = time.perf_counter()
        report = verify([NAME], quick=True, settings=settings)
        elapsed = time.perf_counter() - t0
        r = report.results[0]
        if report.exit_code or r.status != "ok" or r.hashed_files:
            raise SystemExit(f"verify --quick did not find {root} unchanged: {report.as_dict()['results'][0]}")
        return elapsed

    def check() -> float:
        t0 = time.perf_counter()
        build_manifest(root, quick=True, cache_dir=settings.cache_dir)
        return time.perf_counter() - t0

    def stat_walk() -> float:
        t0 = time.perf_counter()
        for folder, _, names in os.walk(root):
            for name in names:
                os.lstat(os.path.join(folder, name))
        return time.perf_counter() - t0

    out = {"command": lambda: timed(command, env), "library": library}
    if references:
        out.update({"check": check,
                    "python -c pass": lambda: timed([sys.executable, "-c", "pass"], env),
                    "find -printf (stat walk)": lambda: timed(["find", str(root), "-type", "f", "-printf",
                                                                "%s %T@ %i\n"], env),
                    "os.walk + lstat (in process)": stat_walk})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--dir", type=Path, help="where to generate the trees (kept; default: a temporary folder)")
    ap.add_argument("--no-curve", action="store_true", help="skip the 1k/5k/20k scale curve")
    args = ap.parse_args()
    runs = max(5, args.runs)
    work = Path(args.dir or tempfile.mkdtemp(prefix="iw-verify-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(work, runs, curve=not args.no_curve)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, runs: int, *, curve: bool) -> int:
    print(f"generating {MAIN:,} files and their registry in {work} (once)...", file=sys.stderr)
    root, env = setup(work, MAIN)
    before = registry_state(env)
    samples = interleave(cases(root, env, references=True), runs=runs)
    after = registry_state(env)
    print(f"\nverify --quick, {MAIN:,} unchanged files, {runs} interleaved rounds after 1 warm-up, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}:")
    cmd = show(f"imageworks-loader verify {NAME} --quick", samples["command"])
    start = show("python -c pass", samples["python -c pass"])
    find = show("find -type f -printf '%s %T@ %i' (stat walk)", samples["find -printf (stat walk)"])
    lib = show("verify() library call (load, check, record)", samples["library"])
    chk = show("build_manifest(quick=True) (the check alone)", samples["check"])
    walk = show("os.walk + lstat in process", samples["os.walk + lstat (in process)"])
    print(f"  command = {cmd / start:.1f}x python -c pass, {cmd / find:.1f}x find; library call = "
          f"{lib / walk:.1f}x an in-process stat walk, check alone = {chk / walk:.1f}x")
    goal("verify --quick command on 10,000 files <= 150 ms", cmd <= 0.150,
         f"median {cmd * 1000:.0f} ms = {cmd / 0.150:.2f}x the goal")
    goal("verify() library call on 10,000 files <= 100 ms", lib <= 0.100,
         f"median {lib * 1000:.0f} ms = {lib / 0.100:.2f}x the goal")
    rewritten = [f for f in before if before[f] != after[f]]
    goal("unchanged verify rewrites no registry layer or snapshot", not rewritten,
         f"rewritten: {', '.join(rewritten)}" if rewritten else f"{2 * (runs + 1)} verifies, files untouched")

    if curve:
        print(f"\nscale curve (median of {runs} interleaved rounds each):", file=sys.stdout)
        medians: dict[str, dict[int, float]] = {"command": {}, "library": {}}
        for n in CURVE:
            print(f"  generating {n:,} files...", file=sys.stderr)
            r, e = setup(work, n)
            got = interleave(cases(r, e, references=False), runs=runs)
            for what in medians:
                medians[what][n] = median(got[what])
            show(f"{n:>6,} files: command", got["command"])
            show(f"{n:>6,} files: library call", got["library"])
        for what, by_size in medians.items():
            worst = 0.0
            for a, b in zip(CURVE, CURVE[1:]):
                growth, size = by_size[b] / by_size[a], b / a
                worst = max(worst, growth / size)
                print(f"  {what:<8} {a:>6,} -> {b:>6,} files: x{growth:.2f} for x{size:.0f} the files "
                      f"({'better than linear' if growth < size / LINEAR_SLACK else 'linear' if growth <= size * LINEAR_SLACK else 'WORSE than linear'})")
            goal(f"verify --quick {what} grows linearly or better (1k-5k-20k)", worst <= LINEAR_SLACK,
                 f"largest growth {worst:.2f}x the size ratio; linear within {LINEAR_SLACK:.2f}x")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
