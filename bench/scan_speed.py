"""Scan benchmark: `scan --dry-run` over 1,000 generated model folders, cold and rescan, and its scale curve.

Generates (once, in --dir or a temporary folder) 1,000 model folders: safetensors (bf16, sharded with
an index), AWQ, GPTQ and FP8 folders with config.json and tokenizer files, and GGUF files written by the
gguf package; every weight file is made multi-GB by extending it sparsely after its real header (a
scan that read whole files would take minutes). Then times the whole command as a user runs it,
`imageworks-download scan --base DIR --dry-run --json`, as a process, in interleaved rounds (one
discarded warm-up round, then --runs rounds; min/median/max printed, goals judged on the median):

  cold     no inspection cache, and the page cache dropped before it (the first scan of a tree)
  rescan   the same tree again, unchanged (stat-keyed inspection cache, files in the page cache)
  uncached no inspection cache, files in the page cache (the parsing cost alone; no goal)

each beside its library call (`imageworks_models.acquire.discovery.scan(..., dry_run=True)` in this process), and
references timed the same way in the same rounds: `python -c pass` and `find DIR -type f -printf '%s %T@'`
(listing and stat-ing the tree) as processes, cold ones after the same cache drop. The page cache is
dropped with `echo 3 > /proc/sys/vm/drop_caches` (root; the whole machine's cache, interpreter and
libraries included, for ours and the references alike); where that is refused, every file of the tree and
of the interpreter's and the virtual environment's folders is evicted with posix_fadvise(DONTNEED), and the
output says which was used.

It also counts, inside one in-process scan, the bytes read (/proc/self/io rchar) per weight file, and times
the rescan against a registry of 5,000 other entries, interleaved with the empty registry's: what
matching found models to registered entries (path, source, name; core/imageworks_models/identity.py) costs.

Scale curve: cold and rescan of 1,000, 5,000 and 20,000 folders (--curve-runs rounds each), with the
growth factor between sizes; growth must be linear or better.

Goals (issue 20): cold <= 1.0 s, rescan <= 0.2 s, <= 1 MiB read per weight file, big registry <= 1.2x
empty, linear growth.

Bytecode: the timed processes run without PYTHONDONTWRITEBYTECODE (this sandbox's shell sets it; a user's
shell does not), so the discarded warm-up round writes the __pycache__ files any first run writes, and
nothing more.

Run by hand:  uv run python bench/scan_speed.py [--runs 5] [--dir DIR] [--models 1000] [--no-curve]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable
from pathlib import Path

from _timing import goal, interleave, show, summary, timed

GB = 1 << 30
KINDS = ("bf16", "awq", "gptq", "fp8", "gguf")


def _config(kind: str, i: int) -> dict:
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "bfloat16",
              "hidden_size": 4096, "num_hidden_layers": 32}
    if kind == "awq":
        config["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": 128}
    elif kind == "gptq":
        config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    elif kind == "fp8":
        config["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "dynamic"}
    if i % 7 == 0:
        config["vision_config"] = {"hidden_size": 1280}
    return config


def _safetensors(path: Path, tensors: int, size: int) -> None:
    """A valid safetensors header describing ``size`` bytes of data, extended sparsely to that size."""
    per = (size // tensors) // 2 * 2
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for t in range(tensors):
        header[f"model.layers.{t}.mlp.weight"] = {"dtype": "BF16", "shape": [per // 2],
                                                  "data_offsets": [offset, offset + per]}
        offset += per
    raw = json.dumps(header).encode()
    raw += b" " * (-(8 + len(raw)) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
    os.truncate(path, 8 + len(raw) + offset)


def _gguf(path: Path, i: int, size: int) -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"bench model {i}")
    writer.add_file_type(15)  # Q4_K_M
    writer.add_context_length(8192)
    writer.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    writer.add_token_list([f"tok{t}" for t in range(2000)])
    writer.add_tensor("w", np.zeros(16, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.truncate(path, size)


def generate(root: Path, models: int) -> int:
    """Write the tree (once); returns the number of weight files."""
    marker = root / f".generated-{models}"
    if marker.exists():
        return int(marker.read_text())
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    weights = 0
    tokenizer = json.dumps({"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"})
    for i in range(models):
        kind = KINDS[i % len(KINDS)]
        org = root / f"org{i % 20}"
        if kind == "gguf":
            folder = org / f"Model{i}-8B-GGUF"
            folder.mkdir(parents=True, exist_ok=True)
            _gguf(folder / f"Model{i}-8B-Q4_K_M.gguf", i, 5 * GB)
            weights += 1
            continue
        folder = org / f"Model{i}-8B-Instruct-{kind.upper()}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(_config(kind, i)))
        (folder / "tokenizer_config.json").write_text(tokenizer)
        (folder / "generation_config.json").write_text("{}")
        if i % 7 == 0:
            (folder / "preprocessor_config.json").write_text("{}")
        shards = 2 if i % 2 else 1
        if shards == 1:
            _safetensors(folder / "model.safetensors", 8, 4 * GB)
        else:
            index = {"metadata": {"total_size": 8 * GB}, "weight_map": {}}
            for s in range(shards):
                name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
                _safetensors(folder / name, 8, 4 * GB)
                index["weight_map"][f"model.layers.{s}.mlp.weight"] = name
            (folder / "model.safetensors.index.json").write_text(json.dumps(index))
        weights += shards
    marker.write_text(str(weights))
    return weights


def big_registry(folder: Path, entries: int = 5000) -> None:
    """A registry of ``entries`` installed-looking entries that none of the generated folders belong to."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(entries):
        name = f"other{i:05d}-8b-vllm-safetensors-bf16"
        rows.append({"name": name, "backend": "vllm", "family": f"other{i:05d}-8b", "format": "safetensors",
                     "quantization": "bf16", "aliases": [f"Other/Other{i}-8B"],
                     "source": {"provider": "hf", "repo_id": f"Other/Other{i}-8B", "commit": f"{i:040x}"},
                     "download": {"path": f"/srv/models/other/Other{i}-8B", "size_bytes": 16 << 30, "file_count": 4,
                                  "location": "local", "format": "safetensors"}})
    doc = {"schema_version": 1, "entries": sorted(rows, key=lambda e: e["name"])}
    (folder / "model_registry.discovered.json").write_text(json.dumps(doc, indent=2) + "\n")


LINEAR_SLACK = 1.15  # growth within 15% of the size ratio counts as linear (2 shared cores are noisy)
CURVE = (1000, 5000, 20000)


def _proc_drop() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def _fadvise_drop(folders: list[Path]) -> None:
    """Evict every file under ``folders`` from the page cache (the fallback without drop_caches)."""
    for folder in folders:
        for base, _, names in os.walk(folder):
            for name in names:
                try:
                    fd = os.open(os.path.join(base, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:
                    continue
                try:
                    os.fdatasync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                except OSError:
                    pass
                finally:
                    os.close(fd)


def cache_dropper(tree: Path) -> tuple[Callable[[], None], str]:
    """How the page cache is dropped here, and a line saying so."""
    if _proc_drop():
        return _proc_drop, "page cache dropped with /proc/sys/vm/drop_caches (whole machine)"
    venv = Path(sys.prefix)
    stdlib = Path(os.__file__).parent
    folders = [tree, venv, stdlib, Path(__file__).resolve().parent.parent / "core",
               Path(__file__).resolve().parent.parent / "plugins"]
    return (lambda: _fadvise_drop(folders),
            "drop_caches refused: files of the tree, the venv, the stdlib and our sources evicted with "
            "posix_fadvise(DONTNEED)")


def rchar_probe(work: Path, tree: Path, env: dict) -> int:
    """Bytes read by one in-process scan without an inspection cache (imports excluded)."""
    probe = f"""
import os
from pathlib import Path
os.environ['IMAGEWORKS_CACHE_DIR'] = {str(work / 'probe-cache')!r}
from imageworks_models.acquire.discovery import scan
from imageworks_models.settings import load_settings
def rchar():
    return int(next(l for l in open('/proc/self/io') if l.startswith('rchar')).split()[1])
settings = load_settings()
from imageworks_models.pluginhost.manager import get_plugins
plugins = get_plugins(settings)
plugins.source_impls('scan')
import imageworks_models.formats.inspect, imageworks_models_hf.scan  # imports are not the scan's reads
before = rchar()
report = scan([Path({str(tree)!r})], dry_run=True, settings=settings, plugins=plugins)
print(rchar() - before)
"""
    shutil.rmtree(work / "probe-cache", ignore_errors=True)
    return int(subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True,
                              text=True).stdout.split()[0])


def setup(work: Path, models: int) -> tuple[Path, dict, int]:
    tree = work / f"weights-{models}"
    print(f"generating {models} model folders in {tree} (once)...", file=sys.stderr)
    weight_files = generate(tree, models)
    registry, cache = work / f"registry-{models}", work / f"cache-{models}"
    registry.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(IMAGEWORKS_REGISTRY_DIR=str(registry), IMAGEWORKS_CACHE_DIR=str(cache),
               IMAGEWORKS_WEIGHTS_ROOT=str(tree))
    return tree, env, weight_files


def cases(tree: Path, env: dict, *, references: bool, library: bool) -> dict[str, Callable[[], float]]:
    cli = [str(Path(sys.executable).parent / "imageworks-download"), "scan", "--base", str(tree), "--dry-run",
           "--json"]
    out: dict[str, Callable[[], float]] = {"cold": lambda: timed(cli, env), "rescan": lambda: timed(cli, env)}
    if library:
        from imageworks_models.acquire.discovery import scan
        from imageworks_models.pluginhost.manager import get_plugins
        from imageworks_models.settings import load_settings

        settings = load_settings(env=env)
        plugins = get_plugins(settings)

        def call() -> float:
            t0 = time.perf_counter()
            scan([tree], dry_run=True, settings=settings, plugins=plugins)
            return time.perf_counter() - t0

        out.update({"cold library": call, "rescan library": call})
    if references:
        py = [sys.executable, "-c", "pass"]
        find = ["find", str(tree), "-type", "f", "-printf", "%s %T@\n"]
        out.update({"cold python -c pass": lambda: timed(py, env), "cold find": lambda: timed(find, env),
                    "uncached": lambda: timed(cli, env), "python -c pass": lambda: timed(py, env),
                    "find": lambda: timed(find, env)})
    return out


def preparer(env: dict, drop: Callable[[], None]) -> Callable[[str], None]:
    cache = Path(env["IMAGEWORKS_CACHE_DIR"])

    def before(name: str) -> None:
        if name.startswith(("cold", "uncached")) and not name.startswith("cold python") \
                and not name.startswith("cold find"):
            shutil.rmtree(cache, ignore_errors=True)  # no inspection cache
        if name.startswith("cold"):
            drop()
    return before


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--curve-runs", type=int, default=5)
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=None, help="where to generate the trees (kept)")
    ap.add_argument("--no-curve", action="store_true", help="skip the 1k/5k/20k scale curve")
    args = ap.parse_args()
    runs = max(5, args.runs)
    work = Path(args.dir or tempfile.mkdtemp(prefix="iw-scan-bench-"))
    try:
        return run(work, args.models, runs, curve_runs=max(5, args.curve_runs), curve=not args.no_curve)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, models: int, runs: int, *, curve_runs: int, curve: bool) -> int:
    tree, env, weight_files = setup(work, models)
    drop, how = cache_dropper(tree)
    samples = interleave(cases(tree, env, references=True, library=True), runs=runs, before_each=preparer(env, drop))
    print(f"\nscan --dry-run --json over {models} model folders ({weight_files} multi-GB sparse weight files), "
          f"{runs} interleaved rounds after 1 warm-up, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {how}:")
    cold = show("cold: imageworks-download scan (command)", samples["cold"])
    show("cold: scan() library call", samples["cold library"])
    cpy = show("cold: python -c pass", samples["cold python -c pass"])
    cfind = show("cold: find -type f -printf '%s %T@'", samples["cold find"])
    rescan = show("rescan: imageworks-download scan (command)", samples["rescan"])
    show("rescan: scan() library call", samples["rescan library"])
    py = show("python -c pass", samples["python -c pass"])
    find = show("find -type f -printf '%s %T@'", samples["find"])
    unc = show("uncached, page cache warm (command)", samples["uncached"])
    print(f"  cold = {cold / cpy:.1f}x cold python -c pass, {cold / cfind:.1f}x cold find; rescan = "
          f"{rescan / py:.1f}x python -c pass, {rescan / find:.1f}x find; uncached = {unc / py:.1f}x python -c pass")
    goal("scan of 1,000 folders cold <= 1.0 s", cold <= 1.0, f"median {cold:.3f} s = {cold / 1.0:.2f}x the goal")
    goal("rescan of 1,000 folders <= 0.2 s", rescan <= 0.2, f"median {rescan:.3f} s = {rescan / 0.2:.2f}x the goal")

    read_bytes = rchar_probe(work, tree, env)
    per = read_bytes / weight_files
    goal("<= 1 MiB read per weight file", per <= 1 << 20,
         f"{per / 1024:.1f} KiB per weight file, {read_bytes / 1e6:.1f} MB in all")

    # the same rescan against 5,000 registered entries, interleaved with the empty registry's
    big = work / "big-registry"
    big_registry(big)
    big_env = dict(env, IMAGEWORKS_REGISTRY_DIR=str(big))
    subprocess.run([str(Path(sys.executable).parent / "imageworks-models"), "list", "--json"], env=big_env,
                   check=True, stdout=subprocess.DEVNULL)  # the snapshot, as any first read builds it
    cli = [str(Path(sys.executable).parent / "imageworks-download"), "scan", "--base", str(tree), "--dry-run",
           "--json"]
    got = interleave({"empty": lambda: timed(cli, env), "big": lambda: timed(cli, big_env)}, runs=runs)
    empty_m = show("rescan, empty registry", got["empty"])
    big_m = show("rescan, 5,000 other entries registered", got["big"])
    goal("rescan against 5,000 entries <= 1.2x against none", big_m <= 1.2 * empty_m,
         f"{big_m / empty_m:.2f}x on the medians")

    if curve:
        print(f"\nscale curve (median of {curve_runs} interleaved rounds each; cold = no inspection cache and "
              "page cache dropped):")
        medians: dict[str, dict[int, float]] = {"cold": {}, "rescan": {}}
        for n in CURVE:
            t, e, _ = setup(work, n)
            d, _ = cache_dropper(t)
            got = interleave(cases(t, e, references=False, library=False), runs=curve_runs,
                             before_each=preparer(e, d))
            for what in medians:
                medians[what][n] = show(f"{n:>6,} folders: {what}", got[what], unit="s")
        for what, by_size in medians.items():
            worst = 0.0
            for a, b in zip(CURVE, CURVE[1:]):
                growth, size = by_size[b] / by_size[a], b / a
                worst = max(worst, growth / size)
                verdict = ("better than linear" if growth < size / LINEAR_SLACK else
                           "linear" if growth <= size * LINEAR_SLACK else "WORSE than linear")
                print(f"  {what:<7} {a:>6,} -> {b:>6,} folders: x{growth:.2f} for x{size:.0f} the folders ({verdict})")
            goal(f"scan {what} grows linearly or better (1k-5k-20k)", worst <= LINEAR_SLACK,
                 f"largest growth {worst:.2f}x the size ratio; linear within {LINEAR_SLACK:.2f}x")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
