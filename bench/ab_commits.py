"""Two checkouts of this project side by side: the same user commands timed from each one's own install,
interleaved in one run, so a change that should not cost anything (a restructure) is shown not to.

Each checkout needs its own environment (``uv sync`` in it: ``DIR/.venv/bin/imageworks-models``). Timed, as
processes, in rounds that run every case once (after one discarded warm-up round):
- ``imageworks-models --help`` (the start-up path),
- ``imageworks-models list --json`` on a 5,000-entry registry (bench/cli_startup.py's),
- ``imageworks-download scan --dry-run --json`` over 1,000 model folders (bench/scan_speed.py's tree): a
  rescan (inspection cache warm) and a cold scan (no inspection cache; page cache dropped when allowed),
and ``python -c pass`` as the reference. Prints min/median/max per case and checkout, and new/old on the median;
the goal is new/old <= 1.05 for every case.

Run by hand:  uv run python bench/ab_commits.py --old /path/to/old-checkout --new . [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _timing import goal, interleave, median, show, summary, timed
from cli_startup import make_registry
from scan_speed import drop_caches, generate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="the checkout before the change")
    ap.add_argument("--new", type=Path, default=Path("."), help="the checkout after it (default: here)")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--dir", type=Path, default=None, help="where to keep the generated registry and tree")
    args = ap.parse_args()
    bins = {}
    for label, root in (("old", args.old), ("new", args.new)):
        bindir = root.resolve() / ".venv" / "bin"
        if not (bindir / "imageworks-models").exists():
            sys.exit(f"{bindir / 'imageworks-models'} is missing: run `uv sync` in {root}")
        bins[label] = bindir
    work = Path(args.dir or tempfile.mkdtemp(prefix="iw-ab-"))
    big = work / "registry-5000"
    if not (big / "model_registry.curated.json").exists():
        make_registry(big, 5000)
    tree = work / "weights"
    print(f"work folder {work}; generating the 1,000-folder tree (once)...", file=sys.stderr)
    generate(tree, 1000)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEWORKS_", "VIRTUAL_ENV"))}

    cases = {"python -c pass": lambda: timed([sys.executable, "-c", "pass"], base_env)}
    for label, bindir in bins.items():
        (work / f"scan-registry-{label}").mkdir(exist_ok=True)
        scan_env = dict(base_env, IMAGEWORKS_REGISTRY_DIR=str(work / f"scan-registry-{label}"),
                        IMAGEWORKS_CACHE_DIR=str(work / f"cache-{label}"), IMAGEWORKS_WEIGHTS_ROOT=str(tree))
        own = work / f"registry-5000-{label}"  # a copy each: one checkout's snapshot must not stale the other's
        if not own.exists():
            shutil.copytree(big, own)
        list_env = dict(base_env, IMAGEWORKS_REGISTRY_DIR=str(own), IMAGEWORKS_CACHE_DIR=str(work / f"cache-{label}"))
        scan = [str(bindir / "imageworks-download"), "scan", "--base", str(tree), "--dry-run", "--json"]
        cases[f"{label}: --help"] = (lambda b=bindir, e=list_env: timed([str(b / "imageworks-models"), "--help"], e))
        cases[f"{label}: list --json (5,000)"] = (
            lambda b=bindir, e=list_env: timed([str(b / "imageworks-models"), "list", "--json"], e))
        cases[f"{label}: scan 1,000 (rescan)"] = (lambda c=scan, e=scan_env: timed(c, e))
        cases[f"{label}: scan 1,000 (no cache)"] = (lambda c=scan, e=scan_env: timed(c, e))

    def before_each(name: str) -> None:
        if name.endswith("(no cache)"):
            label = name.split(":")[0]
            shutil.rmtree(work / f"cache-{label}", ignore_errors=True)
            drop_caches()

    print(f"old: {args.old.resolve()}\nnew: {args.new.resolve()}\n{args.runs} interleaved rounds; seconds as "
          "processes, the reference in the same rounds:")
    samples = interleave(cases, runs=args.runs, before_each=before_each)
    for name, values in samples.items():
        show(name, values)
    for what in ("--help", "list --json (5,000)", "scan 1,000 (rescan)", "scan 1,000 (no cache)"):
        old, new = median(samples[f"old: {what}"]), median(samples[f"new: {what}"])
        goal(f"{what} new/old <= 1.05", new / old <= 1.05, f"old {old * 1000:.1f} ms, new {new * 1000:.1f} ms, "
             f"new/old {new / old:.3f}")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
