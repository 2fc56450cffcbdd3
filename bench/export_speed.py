"""Export benchmark: `export --to production-stack` and `export --to llama-swap` on a 5,000-entry registry, as a
user runs them (a process each), next to references measured in the same run, interleaved: `python -c pass`
(interpreter start-up) and `list --json` on the same registry (loading and listing it).

The registry is generated once (in --dir or a temporary folder): 5,000 entries of vLLM, LMDeploy, llama.cpp and
Ollama with the header facts a scan records (`metadata.memory`), a Hugging Face source and commit, locks on
some, extra_args and env; the llama.cpp entries point at one small GGUF file (their launch needs the file).

Target (issue 25): exporting 5,000 entries <= 2 s median.

Run by hand:  uv run python bench/export_speed.py [--runs 7] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from _timing import median, timed

BACKENDS = ("vllm", "lmdeploy", "llamacpp", "ollama")


def generate(work: Path, entries: int) -> None:
    reg = work / "registry"
    if (reg / "model_registry.discovered.json").exists():
        return
    reg.mkdir(parents=True, exist_ok=True)
    gguf = work / "weights" / "tiny.gguf"
    gguf.parent.mkdir(parents=True, exist_ok=True)
    gguf.write_bytes(b"GGUF")
    curated, discovered = [], []
    for i in range(entries):
        backend = BACKENDS[i % len(BACKENDS)]
        name = f"model{i:05d}-{backend}"
        cfg = {"extra_args": ["--max-model-len", "8192", "--swap-space", "4"] if backend == "vllm" else
               ["--session-len", "8192"] if backend == "lmdeploy" else [],
               "env": {"CUDA_VISIBLE_DEVICES": str(i % 8), "HF_TOKEN": "hf_notarealtokenatall"}}
        if backend == "llamacpp":
            cfg = {"model_path": str(gguf), "ctx_size": 8192, "n_gpu_layers": 99}
        curated.append({"name": name, "backend": backend, "served_model_id": f"m{i}:8b", "aliases": [f"alias{i}"],
                        "backend_config": cfg, "gateway": {"idle_ttl": 300 + i % 5, "pinned": i % 50 == 0}})
        discovered.append({"name": name, "format": "gguf" if backend == "llamacpp" else "safetensors",
                           "download": {"path": f"/srv/models/m{i}", "size_bytes": 16 << 30, "file_count": 4},
                           "source": {"provider": "hf", "repo_id": f"org/Model-{i}", "revision": "main",
                                      "commit": f"{i:040x}"},
                           "version_lock": {"locked": i % 3 == 0,
                                            "expected_aggregate": "sha256:" + f"{i:064x}" if i % 3 == 0 else None},
                           "metadata": {"memory": {"source": "config", "weights_bytes": (4 + i % 60) << 30,
                                                   "layers": 32, "kv_heads": 8, "head_dim_k": 128, "head_dim_v": 128,
                                                   "context_max": 32768}}})
    for layer, rows in (("curated", curated), ("discovered", discovered)):
        doc = {"schema_version": 1, "entries": sorted(rows, key=lambda e: e["name"])}
        (reg / f"model_registry.{layer}.json").write_text(json.dumps(doc, indent=2) + "\n")



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="iw-export-bench-"))
    generate(work, args.entries)
    env = dict(os.environ, IMAGEWORKS_REGISTRY_DIR=str(work / "registry"), IMAGEWORKS_CACHE_DIR=str(work / "cache"),
               IMAGEWORKS_LLAMACPP_BIN="llama-server")
    models = str(Path(sys.executable).parent / "imageworks-models")
    out = work / "out"
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "list --json": [models, "list", "--json", "--include-non-installed"],
        "export production-stack": [models, "export", "--to", "production-stack", "-o", str(out / "values.yaml"),
                                    "--force"],
        "export llama-swap": [models, "export", "--to", "llama-swap", "-o", str(out / "config.yaml"), "--force"],
    }
    for cmd in cases.values():  # the snapshot, as any first run leaves it
        timed(cmd, env)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, cmd in cases.items():
            times[name].append(timed(cmd, env))


    print(f"{args.entries}-entry registry, {args.runs} interleaved runs (min / median / max):")
    for name, v in times.items():
        print(f"  {name:24} {min(v) * 1000:7.1f} / {median(v) * 1000:7.1f} / {max(v) * 1000:7.1f} ms")
    lst = median(times["list --json"])
    for name in ("export production-stack", "export llama-swap"):
        m = median(times[name])
        counted = len((out / ("values.yaml" if "production" in name else "config.yaml")).read_text().splitlines())
        print(f"  {name}: {m * 1000:.0f} ms = {m / lst:.2f}x `list --json` ({lst * 1000:.0f} ms), "
              f"{counted} lines written   target <= 2000 ms: {'met' if m <= 2.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
