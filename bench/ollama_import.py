"""Benchmark: `imageworks-download import-ollama` on a generated Ollama store of 300 models.

Run by hand (not in CI):  uv run python bench/ollama_import.py [--models 300] [--keep]

The store is written in Ollama's layout: manifests/registry.ollama.ai/library/<name>/<tag> (plus some
hf.co/<org>/<repo>:<quant> pulls and tags sharing one blob), config blobs, template and params blobs,
a projector for every tenth model, and model blobs that are real GGUF headers extended to 4 GiB sparse
files (as large as real weights, without using the disk). Blob names are random digests: the import does
not hash blobs unless --verify-blobs is given, so their content is never compared here.

Prints, each the best of 3 runs of the whole console script in a fresh process:
- the first import into an empty registry (target: <= 2 s for 300 models),
- a re-import with nothing changed,
- the reference `python -c pass` start-up in the same interpreter, and the ratio of both to it,
- and `imageworks-download list --json` on the imported registry, to show what the import itself adds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPARSE = 4 << 30
FILE_TYPES = {"Q4_K_M": 15, "Q5_K_M": 17, "Q8_0": 7, "F16": 1}


def gguf_header(arch: str, name: str, file_type: int) -> bytes:
    import gguf
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.gguf"
        w = gguf.GGUFWriter(str(path), arch)
        w.add_name(name)
        w.add_file_type(file_type)
        w.add_tensor("token_embd.weight", np.ones((4, 4), dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path.read_bytes()


def put(store: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (store / "blobs" / f"sha256-{digest}").write_bytes(data)
    return f"sha256:{digest}", len(data)


def sparse_blob(store: Path, header: bytes) -> tuple[str, int]:
    digest = secrets.token_hex(32)  # not the content's digest: see the module docstring
    path = store / "blobs" / f"sha256-{digest}"
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(SPARSE)
    return f"sha256:{digest}", SPARSE


def layer(media: str, ref: tuple[str, int]) -> dict:
    return {"mediaType": f"application/vnd.ollama.image.{media}", "digest": ref[0], "size": ref[1]}


def make_store(store: Path, count: int) -> None:
    (store / "blobs").mkdir(parents=True)
    headers = {q: gguf_header("llama", "Bench", ft) for q, ft in FILE_TYPES.items()}
    projector = gguf_header("clip", "Projector", 1)
    template = put(store, b"{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }}")
    params = put(store, json.dumps({"stop": ["<|eot_id|>"]}).encode())
    quants = list(FILE_TYPES)
    previous = None
    for i in range(count):
        quant = quants[i % len(quants)]
        if i % 10 == 5:
            host, ns, name, tag = "hf.co", f"org{i % 7}", f"Model{i}-Instruct-GGUF", quant
        else:
            host, ns, name, tag = "registry.ollama.ai", "library", f"model{i // 3}", f"{i % 3 + 1}b-{quant.lower()}"
        model = previous if (i % 25 == 24 and previous) else sparse_blob(store, headers[quant])
        previous = model
        layers = [layer("model", model)]
        if i % 10 == 3:
            layers.append(layer("projector", sparse_blob(store, projector)))
        layers += [layer("template", template), layer("params", params)]
        config = json.dumps({"model_format": "gguf", "model_family": "llama", "model_families": ["llama"],
                             "model_type": f"{i % 3 + 1}.0B", "file_type": quant, "architecture": "amd64",
                             "os": "linux", "rootfs": {"type": "layers",
                                                       "diff_ids": [x["digest"] for x in layers]}}).encode()
        cfg = put(store, config)
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cfg[0],
                               "size": cfg[1]}, "layers": layers}
        path = store / "manifests" / host / ns / name / tag
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest))


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=300)
    ap.add_argument("--keep", action="store_true", help="keep the generated store")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ollama-bench-"))
    try:
        store = work / "store"
        make_store(store, args.models)
        script = shutil.which("imageworks-download", path=str(Path(sys.executable).parent))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEWORKS_", "OLLAMA_"))}
        env.update(OLLAMA_MODELS=str(store), HOME=str(work / "home"), OLLAMA_HOST="127.0.0.1:9",
                   IMAGEWORKS_CACHE_DIR=str(work / "cache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        first, again, ref, startup = [], [], [], []
        for run in range(3):
            env["IMAGEWORKS_REGISTRY_DIR"] = str(work / f"registry{run}")
            t, proc = timed([script, "import-ollama", "--json"], env)
            if proc.returncode != 0:
                sys.exit(f"import failed: {proc.stderr.strip()}")
            first.append(t)
            counts = json.loads(proc.stdout)["counts"]
            t, proc = timed([script, "import-ollama", "--json"], env)
            again.append(t)
            ref.append(timed([sys.executable, "-c", "pass"], env)[0])
            startup.append(timed([script, "list", "--json"], env)[0])
        r = min(ref)
        print(f"store: {args.models} tags ({counts}), model blobs 4 GiB sparse")
        print(f"import-ollama, empty registry:  {min(first):.3f} s  ({min(first) / r:.1f}x python -c pass)  "
              f"target <= 2 s: {'met' if min(first) <= 2 else 'NOT met'}")
        print(f"import-ollama, nothing changed: {min(again):.3f} s  ({min(again) / r:.1f}x python -c pass)")
        print(f"reference python -c pass:       {r:.3f} s")
        print(f"reference imageworks-download list --json (start-up and a registry read): {min(startup):.3f} s; "
              f"the import adds {min(first) - min(startup):.3f} s for {args.models} tags")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
