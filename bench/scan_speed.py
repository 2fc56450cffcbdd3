"""Scan benchmark: `scan --dry-run` over 1,000 generated model folders, cold and warm.

Generates (once, in --dir or a temporary folder) 1,000 model folders: safetensors (bf16, sharded with
an index), AWQ, GPTQ and FP8 folders with config.json and tokenizer files, and GGUF files written by the
gguf package; every weight file is made multi-GB by extending it sparsely after its real header (a
scan that read whole files would take minutes). Then measures the whole command as a user runs it,
`imageworks-download scan --base DIR --dry-run --json`, best of --runs:

  cold     no inspection cache, and the page cache dropped (as root; otherwise said so)
  uncached no inspection cache, files in the page cache (the parsing cost alone)
  rescan   the same tree again, unchanged (stat-keyed inspection cache)

against references measured in the same run: `python -c pass` (interpreter start-up) and
`find DIR -type f` (listing the tree). It also counts, inside one in-process scan, the bytes read
(/proc/self/io rchar) per weight file.

  big registry   the rescan again, against a registry of 5,000 other entries (names, aliases, sources and
                 paths of their own), interleaved with the empty-registry rescan: what matching found models
                 to registered entries (path, source, name; core/imageworks_models/registry/identity.py) costs

Targets: cold <= 1.0 s, rescan <= 0.2 s, <= 1 MiB read per weight file, big registry <= 1.2x empty.

Run by hand:  uv run python bench/scan_speed.py [--runs 3] [--dir DIR] [--models 1000]
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
from pathlib import Path

from _timing import median

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


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def run(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="iw-scan-bench-"))
    tree = work / "weights"
    print(f"generating {args.models} model folders in {tree} (once)...", file=sys.stderr)
    weight_files = generate(tree, args.models)
    registry, cache = work / "registry", work / "cache"
    registry.mkdir(exist_ok=True)
    env = dict(os.environ, IMAGEWORKS_REGISTRY_DIR=str(registry), IMAGEWORKS_CACHE_DIR=str(cache),
               IMAGEWORKS_WEIGHTS_ROOT=str(tree))
    cli = [str(Path(sys.executable).parent / "imageworks-download"), "scan", "--base", str(tree), "--dry-run",
           "--json"]

    cold, uncached, warm, start, find = [], [], [], [], []
    dropped = True
    for _ in range(args.runs):
        shutil.rmtree(cache, ignore_errors=True)
        uncached.append(run(cli, env))  # no inspection cache, files in the page cache
        shutil.rmtree(cache, ignore_errors=True)
        dropped = drop_caches() and dropped
        cold.append(run(cli, env))
        warm.append(run(cli, env))
        start.append(run([sys.executable, "-c", "pass"], env))
        find.append(run(["find", str(tree), "-type", "f"], env))

    # the same rescan against 5,000 registered entries, interleaved with the empty registry's
    big = work / "big-registry"
    big_registry(big)
    big_env = dict(env, IMAGEWORKS_REGISTRY_DIR=str(big))
    subprocess.run([str(Path(sys.executable).parent / "imageworks-models"), "list", "--json"], env=big_env,
                   check=True, stdout=subprocess.DEVNULL)  # the snapshot, as any first read builds it
    empty_runs, big_runs = [], []
    for _ in range(max(5, args.runs)):
        empty_runs.append(run(cli, env))
        big_runs.append(run(cli, big_env))

    # bytes read per weight file, in-process and cold (no inspection cache)
    probe = f"""
import os, sys, time
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
print(rchar() - before, len(report.rows), report.counts())
"""
    shutil.rmtree(work / "probe-cache", ignore_errors=True)
    out = subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True,
                         text=True).stdout.split()
    read_bytes, rows = int(out[0]), int(out[1])

    b = {k: min(v) for k, v in (("cold", cold), ("uncached", uncached), ("rescan", warm), ("python -c pass", start),
                                ("find -type f", find))}
    print(json.dumps({"models": args.models, "weight_files": weight_files, "rows": rows, "seconds": b,
                      "page_cache_dropped": dropped, "bytes_read": read_bytes,
                      "bytes_read_per_weight_file": read_bytes / weight_files}, indent=2))
    print(f"\nscan --dry-run over {args.models} model folders ({weight_files} multi-GB sparse weight files), "
          f"best of {args.runs}:")
    print(f"  cold{'' if dropped else ' (page cache NOT dropped: not root)'}:  {b['cold']:.3f} s "
          f"= {b['cold'] / b['python -c pass']:.1f}x `python -c pass` ({b['python -c pass'] * 1000:.0f} ms), "
          f"{b['cold'] / b['find -type f']:.1f}x `find -type f` ({b['find -type f'] * 1000:.0f} ms)"
          "   target <= 1.0 s")
    print(f"  no inspection cache, page cache warm: {b['uncached']:.3f} s "
          f"= {b['uncached'] / b['python -c pass']:.1f}x `python -c pass`")
    print(f"  rescan: {b['rescan']:.3f} s = {b['rescan'] / b['python -c pass']:.1f}x `python -c pass`"
          "   target <= 0.2 s")
    print(f"  read {read_bytes / weight_files / 1024:.1f} KiB per weight file ({read_bytes / 1e6:.1f} MB in all)   "
          "target <= 1 MiB")
    ratio = median(big_runs) / median(empty_runs)
    print(f"  rescan against 5,000 registered entries: {median(big_runs):.3f} s vs {median(empty_runs):.3f} s "
          f"against none (median of {len(big_runs)} interleaved) = {ratio:.2f}x   target <= 1.2x")
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
