"""Memory-fit benchmark: `fit NAME` and `list --fits --json` as a user runs them, next to references
measured in the same run, interleaved: `python -c pass` (interpreter start-up) and `list --json` on the same
5,000-entry registry (what `--fits` adds).

The registry is generated (once, in --dir or a temporary folder): 5,000 entries of several backends with the
header facts a scan records (`metadata.memory`), one of them with real files (a config.json and a sparse
safetensors file) for `fit` to read through the inspection cache. GPUs come from the stand-in nvidia-smi
(tests/standins/nvidia_smi.py) describing an H100, so the figures include reading the GPU inventory.

Targets: `fit` <= 150 ms median (on a catalog-sized registry; also shown on the 5,000-entry one);
`list --fits --json` on 5,000 entries <= 1 s median.

Run by hand:  uv run python bench/fit_speed.py [--runs 7] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from _timing import median, timed

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ("vllm", "lmdeploy", "llamacpp", "ollama")


def generate(work: Path, entries: int) -> None:
    reg = work / "registry"
    if (reg / "model_registry.discovered.json").exists():
        return
    reg.mkdir(parents=True, exist_ok=True)
    model = work / "weights" / "Bench-8B"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072}))
    raw = json.dumps({"w": {"dtype": "BF16", "shape": [8 << 30 >> 1], "data_offsets": [0, 8 << 30]}}).encode()
    raw += b" " * (-(8 + len(raw)) % 8)
    with open(model / "model.safetensors", "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
    os.truncate(model / "model.safetensors", 8 + len(raw) + (8 << 30))
    rows = [{"name": "bench-8b-vllm", "backend": "vllm", "backend_config": {"model_path": str(model)}}]
    for i in range(entries - 1):
        backend = BACKENDS[i % len(BACKENDS)]
        rows.append({"name": f"model{i:05d}-{backend}", "backend": backend, "format": "safetensors",
                     "download": {"path": f"/srv/models/m{i}", "size_bytes": 16 << 30, "file_count": 4},
                     "metadata": {"memory": {"source": "config", "weights_bytes": (4 + i % 60) << 30, "layers": 32,
                                             "kv_heads": 8, "head_dim_k": 128, "head_dim_v": 128,
                                             "context_max": 32768}}})
    doc = {"schema_version": 1, "entries": sorted(rows, key=lambda e: e["name"])}
    (reg / "model_registry.discovered.json").write_text(json.dumps(doc, indent=2) + "\n")
    small = work / "small-registry"  # the shipped catalog's size: the model and eleven others
    small.mkdir(exist_ok=True)
    doc = {"schema_version": 1, "entries": sorted(rows[:12], key=lambda e: e["name"])}
    (small / "model_registry.discovered.json").write_text(json.dumps(doc, indent=2) + "\n")
    (work / "gpus.json").write_text(json.dumps({"gpus": [{"name": "NVIDIA H100 80GB HBM3", "total_mib": 81559,
                                                          "used_mib": 600}]}))



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="iw-fit-bench-"))
    generate(work, args.entries)
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, IMAGEWORKS_REGISTRY_DIR=str(work / "registry"), IMAGEWORKS_CACHE_DIR=str(work / "cache"),
               STANDIN_NVIDIA_SMI=str(work / "gpus.json"),
               IMAGEWORKS_NVIDIA_SMI_BIN=f"{sys.executable} {REPO / 'tests' / 'standins' / 'nvidia_smi.py'}")
    models = str(bin_dir / "imageworks-models")
    small_env = dict(env, IMAGEWORKS_REGISTRY_DIR=str(work / "small-registry"))
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "fit NAME": [models, "fit", "bench-8b-vllm", "--json"],
        "fit NAME, 5,000 entries": [models, "fit", "bench-8b-vllm", "--json"],
        "list --json": [models, "list", "--json", "--include-non-installed"],
        "list --fits --json": [models, "list", "--fits", "--json", "--include-non-installed"],
    }
    envs = {name: small_env if name == "fit NAME" else env for name in cases}
    for name, cmd in cases.items():  # the snapshot and the inspection cache, as any first run leaves them
        timed(cmd, envs[name])
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, cmd in cases.items():
            times[name].append(timed(cmd, envs[name]))


    print(f"{args.entries}-entry registry, {args.runs} interleaved runs (min / median / max):")
    for name, v in times.items():
        print(f"  {name:22} {min(v) * 1000:7.1f} / {median(v) * 1000:7.1f} / {max(v) * 1000:7.1f} ms")
    fit, start = median(times["fit NAME"]), median(times["python -c pass"])
    lst, fits = median(times["list --json"]), median(times["list --fits --json"])
    print(f"  fit NAME (a 12-entry registry, GPUs read through the stand-in nvidia-smi): {fit * 1000:.0f} ms = "
          f"{fit / start:.1f}x `python -c pass`   target <= 150 ms: {'met' if fit <= 0.150 else 'MISSED'}")
    print(f"  list --fits --json: {fits * 1000:.0f} ms = {fits / lst:.2f}x `list --json` ({lst * 1000:.0f} ms)   "
          f"target <= 1000 ms: {'met' if fits <= 1.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
