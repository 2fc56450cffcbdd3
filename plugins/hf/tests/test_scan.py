"""``scan``, ``ingest-local-hf`` and ``discover-all`` over a real weights tree built in tmp_path.

The tree (see :func:`build_tree`) holds real files written with the reference libraries
(``safetensors``, ``gguf``) or by hand where they cannot write the dtype (BF16, F8_E4M3): Hugging Face
model folders (bf16, AWQ, GPTQ, FP8, a vision model), a folder of GGUF quants with an mmproj projector,
a loose GGUF, a split GGUF, a Hugging Face cache repo (snapshot files are links into blobs/, and an
older snapshot no ref points to), placeholders, a folder with a corrupt safetensors header, hidden
folders, a symlink leading out of the tree and a copy that would get an already-taken name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from imageworks_models.integrity.manifest import build_manifest
from imageworks_models.registry.schema import check_name
from imageworks_models.registry.store import RegistryStore
from imageworks_models.settings import load_settings
from imageworks_models.testing import make_registry, run_cli

pytestmark = pytest.mark.usefixtures("imageworks_isolated")  # from imageworks_models.pytest_plugin

DOWNLOAD = "imageworks-download"
LOADER = "imageworks-loader"

SIMPLE_TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
TOOLS_TEMPLATE = ("{% if tools %}{{ tools | tojson }}{% endif %}"
                  "{% for m in messages %}{{ m.content }}{% endfor %}<think>")
GGUF_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}"
COMMIT = "a" * 40
OLD_COMMIT = "b" * 40
LFS_TEXT = (b"version https://git-lfs.github.com/spec/v1\n"
            b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 15032385536\n")


# --- writing real files ---------------------------------------------------------------------------

_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "F8_E4M3": 1, "U8": 1}


def write_safetensors_raw(path: Path, tensors: dict[str, tuple[str, list[int]]], *,
                          metadata: dict[str, str] | None = None, data_len: int | None = None) -> Path:
    """A safetensors file written by hand (for dtypes numpy has not: BF16, F8_E4M3). Tensor data is zeros;
    with ``data_len`` the file is made that long (sparse) instead of writing the data."""
    header: dict = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = _BYTES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        if data_len is None:
            f.write(bytes(offset))
    if data_len is not None:
        assert data_len >= offset
        os.truncate(path, 8 + len(raw) + data_len)
    return path


def write_safetensors_np(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def write_gguf(path: Path, *, name: str = "Qwen3 8B", arch: str = "qwen3", file_type: int | None = 15,
               template: str | None = GGUF_TEMPLATE, mmproj: bool = False, split: bool = False) -> list[Path]:
    """A GGUF file (or a 2-part split set: ``<stem>-0000N-of-00002.gguf``) with a tiny tensor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "clip" if mmproj else arch, split_max_tensors=1 if split else 0)
    w.add_name(name)
    if mmproj:
        w.add_type("mmproj")
        w.add_clip_has_vision_encoder(True)
        w.add_file_type(1)
    else:
        if file_type is not None:
            w.add_file_type(file_type)
        w.add_context_length(4096)
        if template:
            w.add_chat_template(template)
    w.add_tensor("token_embd.weight", np.ones((8, 4), dtype=np.float32))
    if split:
        w.add_tensor("output.weight", np.ones((8, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if split:
        stem = path.name[:-len(".gguf")]
        return [path.with_name(f"{stem}-0000{i}-of-00002.gguf") for i in (1, 2)]
    return [path]


def hf_config(arch: str = "LlamaForCausalLM", model_type: str = "llama", **extra) -> dict:
    return {"architectures": [arch], "model_type": model_type, "torch_dtype": "bfloat16", "hidden_size": 8,
            "num_hidden_layers": 1, **extra}


def make_bf16_folder(folder: Path, *, arch="Qwen3ForCausalLM", model_type="qwen3", template=TOOLS_TEMPLATE,
                     subfolder: bool = False) -> Path:
    write_json(folder / "config.json", hf_config(arch, model_type))
    write_safetensors_raw(folder / "model.safetensors",
                          {"model.embed_tokens.weight": ("BF16", [16, 8]), "lm_head.weight": ("BF16", [16, 8])})
    write_json(folder / "tokenizer_config.json", {"chat_template": template, "model_max_length": 4096})
    write_json(folder / "generation_config.json", {"temperature": 0.7})
    if subfolder:
        write_json(folder / "original" / "params.json", {"dim": 8})
    return folder


def make_awq_folder(folder: Path) -> Path:
    write_json(folder / "config.json", hf_config("MistralForCausalLM", "mistral", torch_dtype="float16",
                                                 quantization_config={"quant_method": "awq", "bits": 4,
                                                                      "group_size": 128, "version": "gemm"}))
    write_safetensors_np(folder / "model.safetensors", {
        "model.layers.0.mlp.qweight": np.zeros((8, 2), dtype=np.int32),
        "model.layers.0.mlp.scales": np.zeros((1, 16), dtype=np.float16)})
    write_json(folder / "tokenizer_config.json", {"chat_template": SIMPLE_TEMPLATE})
    return folder


def make_gptq_folder(folder: Path) -> Path:
    write_json(folder / "config.json", hf_config(quantization_config={"quant_method": "gptq", "bits": 4,
                                                                      "group_size": 128, "desc_act": False}))
    write_safetensors_np(folder / "model.safetensors", {
        "model.layers.0.mlp.qweight": np.zeros((2, 16), dtype=np.int32),
        "model.layers.0.mlp.scales": np.zeros((1, 16), dtype=np.float16)})
    write_json(folder / "tokenizer_config.json", {"chat_template": SIMPLE_TEMPLATE})
    return folder


def make_fp8_folder(folder: Path) -> Path:
    write_json(folder / "config.json", hf_config(quantization_config={
        "quant_method": "fp8", "activation_scheme": "dynamic"}))
    write_safetensors_raw(folder / "model.safetensors", {"model.layers.0.mlp.weight": ("F8_E4M3", [16, 8]),
                                                         "model.layers.0.mlp.weight_scale": ("F32", [1])})
    write_json(folder / "tokenizer_config.json", {"chat_template": SIMPLE_TEMPLATE})
    return folder


def make_vlm_folder(folder: Path) -> Path:
    write_json(folder / "config.json", hf_config("Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl",
                                                 vision_config={"depth": 2, "hidden_size": 8, "patch_size": 14}))
    write_safetensors_raw(folder / "model.safetensors", {"visual.patch_embed.weight": ("BF16", [8, 8]),
                                                         "lm_head.weight": ("BF16", [16, 8])})
    write_json(folder / "preprocessor_config.json", {"image_processor_type": "Qwen2VLImageProcessor",
                                                     "patch_size": 14, "min_pixels": 3136})
    (folder / "chat_template.jinja").write_text(SIMPLE_TEMPLATE, encoding="utf-8")
    write_json(folder / "tokenizer_config.json", {"model_max_length": 4096})
    return folder


def make_hf_cache_repo(hub: Path, repo_id: str, build) -> Path:
    """``hub/models--org--name`` laid out as huggingface_hub does: blobs/, refs/main -> COMMIT, and
    snapshots/<COMMIT>/ whose files are relative links into blobs/; plus snapshots/<OLD_COMMIT>, which no
    ref points to. ``build(folder)`` writes the model's files. Returns the current snapshot folder."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT, encoding="ascii")
    for commit in (OLD_COMMIT, COMMIT):
        staging = hub.parent / f".staging-{commit[:4]}"
        build(staging)
        snap = repo / "snapshots" / commit
        for f in sorted(staging.rglob("*")):
            if f.is_dir():
                continue
            data = f.read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            if not blob.exists():
                blob.write_bytes(data)
            link = snap / f.relative_to(staging)
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blob, link.parent), link)
        shutil.rmtree(staging)
    return repo / "snapshots" / COMMIT


# --- the tree -------------------------------------------------------------------------------------

# folder (relative to the weights root) -> the expected entry
EXPECTED = {
    "Qwen3-4B": dict(name="qwen3-4b-vllm-safetensors-bf16", format="safetensors", quantization="bf16",
                     capabilities={"text", "tools", "thinking"}, template="tokenizer_config.json"),
    "Mistral-7B-Instruct-v0.3-AWQ": dict(name="mistral-7b-instruct-v0.3-vllm-awq", format="awq", quantization="awq",
                                         capabilities={"text"}, template="tokenizer_config.json"),
    "Llama-3.1-8B-Instruct-GPTQ-INT4": dict(name="llama-3.1-8b-instruct-vllm-gptq", format="gptq",
                                            quantization="gptq", capabilities={"text"},
                                            template="tokenizer_config.json"),
    "Meta-Llama-3-8B-Instruct-FP8": dict(name="meta-llama-3-8b-instruct-vllm-fp8", format="fp8", quantization="fp8",
                                         capabilities={"text"}, template="tokenizer_config.json"),
    "Qwen2.5-VL-3B-Instruct": dict(name="qwen2.5-vl-3b-instruct-vllm-safetensors-bf16", format="safetensors",
                                   quantization="bf16", capabilities={"text", "vision"},
                                   template="chat_template.jinja"),
    "Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf": dict(name="qwen3-8b-vllm-gguf-q4_k_m", format="gguf",
                                               quantization="q4_k_m", capabilities={"text"},
                                               template="Qwen3-8B-Q4_K_M.gguf"),
    "Qwen3-8B-GGUF/Qwen3-8B-Q8_0.gguf": dict(name="qwen3-8b-vllm-gguf-q8_0", format="gguf", quantization="q8_0",
                                             capabilities={"text"}, template="Qwen3-8B-Q8_0.gguf"),
    "Phi-3-mini-4k-instruct-Q4_K_M.gguf": dict(name="phi-3-mini-4k-instruct-vllm-gguf-q4_k_m", format="gguf",
                                               quantization="q4_k_m", capabilities={"text"},
                                               template="Phi-3-mini-4k-instruct-Q4_K_M.gguf"),
    # a folder holding one (split) model is that model: its manifest covers every part
    "Big-Model-GGUF": dict(name="big-model-vllm-gguf-q8_0", format="gguf", quantization="q8_0",
                           capabilities={"text"}, template="Big-Model-Q8_0-00001-of-00002.gguf"),
    f"hub/models--Qwen--Qwen2.5-0.5B-Instruct/snapshots/{COMMIT}": dict(
        name="qwen2.5-0.5b-instruct-vllm-safetensors-bf16", format="safetensors", quantization="bf16",
        capabilities={"text"}, template="tokenizer_config.json"),
}
PLACEHOLDERS = {  # folder -> a word the skip reason must contain
    "Some-Model-LFS": "lfs",
    "Empty-Weights": "empty",
    "Config-Only-Model": "no weight",
    "tiny-random-LlamaForCausalLM": "tiny-random",
}
CONFLICT = "copies/Qwen3-4B-bf16"  # would be named like Qwen3-4B
BROKEN = "Broken-Header-Model"
UNDETECTABLE = "Ckpt-Only-Model"  # weights whose format nothing detects


def build_tree(base: Path, outside: Path) -> Path:
    root = base / "weights"
    make_bf16_folder(root / "Qwen3-4B")
    make_awq_folder(root / "Mistral-7B-Instruct-v0.3-AWQ")
    make_gptq_folder(root / "Llama-3.1-8B-Instruct-GPTQ-INT4")
    make_fp8_folder(root / "Meta-Llama-3-8B-Instruct-FP8")
    make_vlm_folder(root / "Qwen2.5-VL-3B-Instruct")
    write_gguf(root / "Qwen3-8B-GGUF" / "Qwen3-8B-Q4_K_M.gguf", file_type=15)
    write_gguf(root / "Qwen3-8B-GGUF" / "Qwen3-8B-Q8_0.gguf", file_type=7)
    write_gguf(root / "Qwen3-8B-GGUF" / "mmproj-Qwen3-8B-F16.gguf", mmproj=True)
    write_gguf(root / "Phi-3-mini-4k-instruct-Q4_K_M.gguf", name="Phi 3 Mini", arch="phi3", file_type=15)
    write_gguf(root / "Big-Model-GGUF" / "Big-Model-Q8_0.gguf", name="Big Model", arch="llama", file_type=7,
               split=True)
    make_hf_cache_repo(root / "hub", "Qwen/Qwen2.5-0.5B-Instruct",
                       lambda f: make_bf16_folder(f, template=SIMPLE_TEMPLATE))
    # placeholders
    lfs = root / "Some-Model-LFS"
    write_json(lfs / "config.json", hf_config())
    (lfs / "model.safetensors").write_bytes(LFS_TEXT)
    empty = root / "Empty-Weights"
    write_json(empty / "config.json", hf_config())
    (empty / "model.safetensors").write_bytes(b"")
    write_json(root / "Config-Only-Model" / "config.json", hf_config())
    make_bf16_folder(root / "tiny-random-LlamaForCausalLM", arch="LlamaForCausalLM", model_type="llama",
                     template=SIMPLE_TEMPLATE)
    # a corrupt header: the length field says more than the file holds
    broken = root / BROKEN
    write_json(broken / "config.json", hf_config())
    (broken / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b'{"a": 1}' + bytes(64))
    # weights nothing recognises (a .ckpt without a config)
    (root / UNDETECTABLE).mkdir()
    (root / UNDETECTABLE / "model.ckpt").write_bytes(os.urandom(2048))
    # a copy that would take the name of Qwen3-4B
    make_bf16_folder(root / CONFLICT)
    # hidden folders holding what would be models
    make_bf16_folder(root / ".git" / "Hidden-Model")
    make_bf16_folder(root / ".cache" / "Cached-Model")
    # a link out of the tree
    make_bf16_folder(outside / "Outside-Model")
    os.symlink(outside / "Outside-Model", root / "Linked-Outside-Model")
    os.symlink(outside / "Outside-Model", root / "Qwen3-8B-GGUF" / "linked-inside-gguf-folder")
    return root


@pytest.fixture
def registry_dir(tmp_path, monkeypatch) -> Path:
    """An existing registry (one curated entry), as $IMAGEWORKS_REGISTRY_DIR."""
    folder = tmp_path / "configs"
    make_registry(folder, {"name": "curated-only-vllm-awq", "backend": "vllm", "served_model_id": "Org/Curated"})
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(folder))
    return folder


@pytest.fixture
def tree(tmp_path, registry_dir) -> Path:
    return build_tree(tmp_path, tmp_path / "outside")


def scan_json(*args: str, prog: str = DOWNLOAD, verb: str = "scan"):
    result = run_cli(verb, *args, "--json", prog=prog)
    return result, json.loads(result.stdout)


# --- helpers --------------------------------------------------------------------------------------


def registry_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def entries() -> dict[str, dict]:
    """The effective registry, by name."""
    return {e["name"]: e for e in RegistryStore(load_settings().registry_dir).load()}


def discovered_layer(registry_dir: Path) -> dict[str, dict]:
    doc = json.loads((registry_dir / "model_registry.discovered.json").read_text(encoding="utf-8"))
    return {e["name"]: e for e in doc["entries"]}


def rows_by_path(data: dict, root: Path) -> dict[str, dict]:
    out = {}
    for r in data["rows"]:
        rel = os.path.relpath(r["path"], root)
        assert rel not in out, f"{rel} reported twice"
        out[rel] = r
    return out


def template_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


TEMPLATE_TEXT = {"Qwen3-4B": TOOLS_TEMPLATE, "Mistral-7B-Instruct-v0.3-AWQ": SIMPLE_TEMPLATE,
                 "Llama-3.1-8B-Instruct-GPTQ-INT4": SIMPLE_TEMPLATE, "Meta-Llama-3-8B-Instruct-FP8": SIMPLE_TEMPLATE,
                 "Qwen2.5-VL-3B-Instruct": SIMPLE_TEMPLATE}


GGUF_FOLDERS = {"Big-Model-GGUF"}  # GGUF models recorded as their folder


def is_gguf(rel: str) -> bool:
    return rel.endswith(".gguf") or rel in GGUF_FOLDERS


def expected_template(rel: str) -> str:
    if is_gguf(rel):
        return GGUF_TEMPLATE
    return TEMPLATE_TEXT.get(rel, SIMPLE_TEMPLATE)


# --- scan --dry-run -------------------------------------------------------------------------------


def test_dry_run_prints_the_table_and_writes_nothing(tree, registry_dir):
    before = registry_files(registry_dir)

    result = run_cli("scan", "--base", str(tree), "--dry-run", prog=DOWNLOAD)

    assert result.exit_code == 1, result.stderr  # the corrupt header is an error row
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ACTION", "NAME", "FORMAT", "QUANT", "FILES", "SIZE", "PATH", "/", "REASON"]
    for want in EXPECTED.values():
        line = next((ln for ln in lines if f" {want['name']} " in ln), None)
        assert line is not None, (want["name"], result.stdout)
        assert line.startswith("would add"), line
        assert f" {want['format']} " in line and f" {want['quantization']} " in line, line
    assert any(ln.startswith("conflict") and CONFLICT in ln for ln in lines), result.stdout
    assert any(ln.startswith("error") and BROKEN in ln for ln in lines), result.stdout
    assert sum(ln.startswith("skip") for ln in lines) == len(PLACEHOLDERS) + 1  # + the undetectable one
    assert "note: dry run, nothing was written" in result.stderr
    assert registry_files(registry_dir) == before
    # not even the manifests' stat cache: only the inspect cache may be there
    cache_dir = load_settings().cache_dir
    written = {p.name for p in cache_dir.rglob("*") if p.is_file()} if cache_dir.exists() else set()
    assert written <= {"inspect-cache.json"}, written


def test_dry_run_json_has_the_documented_shape(tree):
    result, data = scan_json("--base", str(tree), "--dry-run")

    assert set(data) == {"dry_run", "written", "counts", "rows"}
    assert data["dry_run"] is True and data["written"] == 0
    assert data["counts"] == {"add": len(EXPECTED), "skip": len(PLACEHOLDERS) + 1, "conflict": 1, "error": 1}
    assert len(data["rows"]) == sum(data["counts"].values())
    for row in data["rows"]:
        assert set(row) == {"action", "name", "path", "format", "quantization", "backend", "files", "size_bytes",
                            "provider", "reason", "served_model_id"}, row
        assert row["provider"] == "hf"
        assert isinstance(row["files"], int) and isinstance(row["size_bytes"], int)
        assert os.path.isabs(row["path"])
    rows = rows_by_path(data, tree)
    for rel, want in EXPECTED.items():
        row = rows[rel]
        assert (row["action"], row["name"], row["format"], row["quantization"], row["backend"], row["reason"]) == \
            ("add", want["name"], want["format"], want["quantization"], "vllm", None), row
    assert result.exit_code == 1


# --- a real scan ----------------------------------------------------------------------------------


def test_scan_records_each_model_once_with_its_facts_and_manifest(tree, registry_dir):
    result, data = scan_json("--base", str(tree))

    assert result.exit_code == 1, result.stderr  # the corrupt header
    assert data["dry_run"] is False
    assert data["written"] == len(EXPECTED)
    reg = entries()
    recorded = {n: e for n, e in reg.items() if n != "curated-only-vllm-awq"}
    assert sorted(recorded) == sorted(w["name"] for w in EXPECTED.values())
    for rel, want in EXPECTED.items():
        path = tree / rel
        e = recorded[want["name"]]
        assert (e["format"], e["quantization"], e["backend"]) == (want["format"], want["quantization"], "vllm")
        assert {c for c, on in e["capabilities"].items() if on} == want["capabilities"], (rel, e["capabilities"])
        assert e["chat_template"] == {"source": "embedded" if is_gguf(rel) else "file",
                                      "path": want["template"], "sha256": template_sha(expected_template(rel))}, rel
        assert e["source"]["provider"] == "hf"
        assert e["download"]["path"] == str(path)
        assert e["download"]["location"] == "local"
        manifest = build_manifest(path)
        assert e["artifacts"]["aggregate"] == manifest.aggregate, rel
        assert e["download"]["size_bytes"] == manifest.total_bytes
        assert e["download"]["file_count"] == len(manifest.files)
        assert e["flags"]["testing"] is False
        check_name(e["name"])
    cache = recorded["qwen2.5-0.5b-instruct-vllm-safetensors-bf16"]["source"]
    assert (cache["repo_id"], cache["commit"], cache["revision"]) == ("Qwen/Qwen2.5-0.5B-Instruct", COMMIT, "main")
    assert recorded["qwen3-4b-vllm-safetensors-bf16"]["source"].get("repo_id") is None
    # the manifest of the cache snapshot follows its links into blobs/ (content hashed)
    files = recorded["qwen2.5-0.5b-instruct-vllm-safetensors-bf16"]["artifacts"]["files"]
    assert all(f["link"].startswith("../../blobs/") and f["digest"] for f in files), files

    verify = run_cli("verify", "--all", prog=LOADER)
    assert verify.exit_code == 0, verify.stdout + verify.stderr


def test_scan_reports_what_it_did_on_stderr(tree):
    result = run_cli("scan", "--base", str(tree), prog=DOWNLOAD)

    assert f"{len(EXPECTED)} entries written to the discovered layer" in result.stderr
    assert "inspected" in result.stderr and "from cache" in result.stderr


def test_older_snapshot_and_mmproj_are_not_models(tree):
    _, data = scan_json("--base", str(tree), "--dry-run")

    paths = [os.path.relpath(r["path"], tree) for r in data["rows"]]
    assert not any(OLD_COMMIT in p for p in paths), paths
    assert not any("mmproj" in p for p in paths), paths
    assert sum(p.startswith("Qwen3-8B-GGUF/") for p in paths) == 2, paths


# --- placeholders ---------------------------------------------------------------------------------


def test_placeholders_are_skipped_with_a_reason(tree):
    _, data = scan_json("--base", str(tree))

    rows = rows_by_path(data, tree)
    for rel, word in PLACEHOLDERS.items():
        row = rows[rel]
        assert row["action"] == "skip", row
        assert row["name"] is None
        assert "placeholder" in row["reason"] and word in row["reason"].lower(), row
        assert "--include-testing" in row["reason"]
    assert not any(e.get("flags", {}).get("testing") for e in entries().values())


def test_include_testing_records_placeholders_flagged_testing(tree):
    _, data = scan_json("--base", str(tree), "--include-testing")

    rows = rows_by_path(data, tree)
    reg = entries()
    for rel in ("Some-Model-LFS", "Empty-Weights", "tiny-random-LlamaForCausalLM"):
        row = rows[rel]
        assert row["action"] == "add", row
        e = reg[row["name"]]
        assert e["flags"]["testing"] is True, rel
        assert e["download"]["path"] == str(tree / rel)
    assert reg["tiny-random-llamaforcausallm-vllm-safetensors-bf16"]["format"] == "safetensors"
    # a folder with a config and no weights has no format to name it by: --format supplies one
    assert rows["Config-Only-Model"]["action"] == "skip"
    assert "format not detected" in rows["Config-Only-Model"]["reason"]
    for w in EXPECTED.values():
        assert reg[w["name"]]["flags"]["testing"] is False

    _, data = scan_json("--base", str(tree), "--include-testing", "--format", "safetensors")
    row = rows_by_path(data, tree)["Config-Only-Model"]
    assert row["action"] == "add" and row["format"] == "safetensors", row
    assert entries()[row["name"]]["flags"]["testing"] is True


def test_a_placeholder_that_got_its_weights_is_no_longer_flagged_testing(tree):
    """Recorded as a placeholder (--include-testing); after `git lfs pull` a refresh clears the flag."""
    scan_json("--base", str(tree), "--include-testing")
    folder = tree / "Some-Model-LFS"
    assert entries()["some-model-lfs-vllm-safetensors-bf16"]["flags"]["testing"] is True
    write_safetensors_raw(folder / "model.safetensors", {"lm_head.weight": ("BF16", [16, 8])})

    _, data = scan_json("--base", str(tree), "--update-existing")

    row = rows_by_path(data, tree)["Some-Model-LFS"]
    assert (row["action"], row["name"]) == ("update", "some-model-lfs-vllm-safetensors-bf16"), row
    e = entries()[row["name"]]
    assert e["artifacts"]["aggregate"] == build_manifest(folder).aggregate
    assert e["flags"]["testing"] is False, "the entry is still flagged as a placeholder"


# --- --format is a fallback -----------------------------------------------------------------------


def test_format_is_used_only_when_detection_fails(tree):
    _, plain = scan_json("--base", str(tree), "--dry-run")
    _, data = scan_json("--base", str(tree), "--dry-run", "--format", "pytorch")

    rows = rows_by_path(data, tree)
    assert rows_by_path(plain, tree)[UNDETECTABLE]["action"] == "skip"
    assert "format not detected" in rows_by_path(plain, tree)[UNDETECTABLE]["reason"]
    assert rows[UNDETECTABLE]["action"] == "add"
    assert (rows[UNDETECTABLE]["name"], rows[UNDETECTABLE]["format"]) == ("ckpt-only-model-vllm-pytorch", "pytorch")
    for rel, want in EXPECTED.items():  # never overrides a detected format
        assert (rows[rel]["name"], rows[rel]["format"]) == (want["name"], want["format"]), rel

    _, data = scan_json("--base", str(tree), "--format", "gguf")
    e = entries()
    assert e["ckpt-only-model-vllm-gguf"]["format"] == "gguf"
    assert e["mistral-7b-instruct-v0.3-vllm-awq"]["format"] == "awq"
    assert e["qwen3-4b-vllm-safetensors-bf16"]["format"] == "safetensors"


def test_backend_and_location_options(tree):
    _, data = scan_json("--base", str(tree), "--backend", "LMDeploy", "--location", "linux_wsl")

    rows = rows_by_path(data, tree)
    row = rows["Mistral-7B-Instruct-v0.3-AWQ"]
    assert (row["name"], row["backend"]) == ("mistral-7b-instruct-v0.3-lmdeploy-awq", "lmdeploy")
    e = entries()["mistral-7b-instruct-v0.3-lmdeploy-awq"]
    assert (e["backend"], e["download"]["location"]) == ("lmdeploy", "linux_wsl")


# --- rescans --------------------------------------------------------------------------------------


def test_second_scan_says_exists_for_registered_models(tree, registry_dir):
    scan_json("--base", str(tree))
    before = registry_files(registry_dir)

    result = run_cli("scan", "--base", str(tree), prog=DOWNLOAD)
    _, data = scan_json("--base", str(tree))

    rows = rows_by_path(data, tree)
    for rel, want in EXPECTED.items():
        assert (rows[rel]["action"], rows[rel]["name"]) == ("exists", want["name"]), rows[rel]
        assert "--update-existing" in rows[rel]["reason"]
    assert rows[CONFLICT]["action"] == "conflict"
    assert data["written"] == 0
    assert "scan --update-existing" in result.stderr  # the hint
    assert registry_files(registry_dir) == before


def test_update_existing_leaves_unchanged_models_unchanged(tree, registry_dir):
    scan_json("--base", str(tree))
    before = discovered_layer(registry_dir)

    _, data = scan_json("--base", str(tree), "--update-existing")

    rows = rows_by_path(data, tree)
    assert {rel: rows[rel]["action"] for rel in EXPECTED} == {rel: "unchanged" for rel in EXPECTED}
    assert data["written"] == 0
    assert discovered_layer(registry_dir) == before


def test_update_existing_refreshes_a_changed_model_and_keeps_its_version_lock(tree, registry_dir):
    scan_json("--base", str(tree))
    name = "mistral-7b-instruct-v0.3-vllm-awq"
    folder = tree / "Mistral-7B-Instruct-v0.3-AWQ"
    locked = run_cli("lock", name, "--set-expected", prog=LOADER)
    assert locked.exit_code == 0, locked.stderr
    lock_before = entries()[name]["version_lock"]
    assert lock_before["locked"] is True and lock_before["expected_aggregate"]
    other = entries()["qwen3-4b-vllm-safetensors-bf16"]
    write_json(folder / "special_tokens_map.json", {"eos_token": "</s>"})

    _, data = scan_json("--base", str(tree), "--update-existing")

    rows = rows_by_path(data, tree)
    assert rows["Mistral-7B-Instruct-v0.3-AWQ"]["action"] == "update"
    assert rows["Mistral-7B-Instruct-v0.3-AWQ"]["name"] == name
    assert rows["Qwen3-4B"]["action"] == "unchanged"
    e = entries()[name]
    assert e["version_lock"]["locked"] is True
    assert e["version_lock"]["expected_aggregate"] == lock_before["expected_aggregate"]
    assert e["download"]["file_count"] == 4
    assert e["download"]["size_bytes"] == build_manifest(folder).total_bytes
    assert entries()["qwen3-4b-vllm-safetensors-bf16"] == other
    # the lock still guards the files: they differ from the locked state
    verify = run_cli("verify", name, prog=LOADER)
    assert verify.exit_code == 2, verify.stdout + verify.stderr


def test_update_existing_never_writes_over_a_recorded_manifest(tree, registry_dir):
    """A divergence stays until verify --accept / lock --set-expected: a scan refreshes sizes, not the manifest."""
    scan_json("--base", str(tree))
    name = "mistral-7b-instruct-v0.3-vllm-awq"
    folder = tree / "Mistral-7B-Instruct-v0.3-AWQ"
    recorded = entries()[name]["artifacts"]
    write_json(folder / "special_tokens_map.json", {"eos_token": "</s>"})

    _, data = scan_json("--base", str(tree), "--update-existing")

    row = rows_by_path(data, tree)["Mistral-7B-Instruct-v0.3-AWQ"]
    assert row["action"] == "update" and "differ from the recorded manifest" in row["reason"]
    e = entries()[name]
    assert e["artifacts"] == recorded
    assert e["download"]["size_bytes"] == build_manifest(folder).total_bytes
    verify = run_cli("verify", name, prog=LOADER)
    assert verify.exit_code == 2 and "special_tokens_map.json" in verify.stdout, verify.stdout
    assert run_cli("verify", name, "--accept", prog=LOADER).exit_code == 0
    assert entries()[name]["artifacts"]["aggregate"] == build_manifest(folder).aggregate


def test_update_existing_leaves_a_model_with_a_subfolder_unchanged(tmp_path, registry_dir):
    """Hugging Face repos often have subfolders (original/, onnx/...); an untouched one is ``unchanged``."""
    root = tmp_path / "w"
    make_bf16_folder(root / "Meta-Llama-3-8B-Instruct", subfolder=True)
    _, first = scan_json("--base", str(root))
    assert first["rows"][0]["action"] == "add"
    before = discovered_layer(registry_dir)

    _, data = scan_json("--base", str(root), "--update-existing")

    name = "meta-llama-3-8b-instruct-vllm-safetensors-bf16"
    assert [(r["action"], r["name"]) for r in data["rows"]] == [("unchanged", name)]
    assert discovered_layer(registry_dir) == before


def test_split_gguf_entry_covers_every_part(tree):
    """The entry of a split GGUF model is the whole model: its size and manifest include every part."""
    scan_json("--base", str(tree))

    e = entries()["big-model-vllm-gguf-q8_0"]
    parts = sorted((tree / "Big-Model-GGUF").glob("Big-Model-Q8_0-0000?-of-00002.gguf"))
    assert len(parts) == 2
    assert e["download"]["size_bytes"] == sum(p.stat().st_size for p in parts)
    recorded = {Path(f["path"]).name for f in e["artifacts"]["files"]}
    assert recorded == {p.name for p in parts}


def test_gguf_files_of_different_models_in_one_folder_are_named_after_their_files(tmp_path):
    """A plain folder of GGUF downloads: each file is its own model, not a conflict over the folder's name."""
    root = tmp_path / "w"
    write_gguf(root / "downloads" / "Qwen3-8B-Q4_K_M.gguf", file_type=15)
    write_gguf(root / "downloads" / "Llama-3.2-3B-Instruct-Q4_K_M.gguf", name="Llama 3.2 3B", arch="llama")

    _, data = scan_json("--base", str(root), "--dry-run")

    assert sorted((r["action"], r["name"]) for r in data["rows"]) == [
        ("add", "llama-3.2-3b-instruct-vllm-gguf-q4_k_m"), ("add", "qwen3-8b-vllm-gguf-q4_k_m")]


# --- errors, links, hidden folders, conflicts -----------------------------------------------------


def test_a_corrupt_header_is_an_error_row_naming_the_file_and_the_rest_is_recorded(tree):
    result = run_cli("scan", "--base", str(tree), prog=DOWNLOAD)
    _, data = scan_json("--base", str(tree), "--update-existing")

    assert result.exit_code == 1
    line = next(ln for ln in result.stdout.splitlines() if BROKEN in ln)
    assert line.startswith("error")
    row = rows_by_path(data, tree)[BROKEN]
    assert row["action"] == "error" and row["name"] is None
    assert row["reason"].startswith("model.safetensors: "), row
    assert "header length" in row["reason"] and "exceeds the file" in row["reason"], row
    reg = entries()
    assert all(w["name"] in reg for w in EXPECTED.values())
    assert not any(e.get("download") and BROKEN in e["download"]["path"] for e in reg.values())


def test_links_out_of_the_tree_and_hidden_folders_are_not_followed(tree, tmp_path):
    _, data = scan_json("--base", str(tree))

    paths = [r["path"] for r in data["rows"]]
    outside = os.path.realpath(tmp_path / "outside")
    assert not any("Linked-Outside-Model" in p or "linked-inside" in p for p in paths), paths
    assert not any(os.path.realpath(p).startswith(outside) for p in paths), paths
    assert not any("/.git/" in p or "/.cache/" in p for p in paths), paths
    for e in entries().values():
        path = (e.get("download") or {}).get("path")
        assert not path or not os.path.realpath(path).startswith(outside), path


def test_a_base_that_links_outside_the_configured_roots_is_refused(tree, tmp_path, registry_dir, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(tmp_path / "configured"))
    (tmp_path / "configured").mkdir()
    link = tmp_path / "configured-link"
    link.symlink_to(tree)
    before = registry_files(registry_dir)

    result = run_cli("scan", "--base", str(link), prog=DOWNLOAD)

    assert result.exit_code == 1
    assert "outside the configured weights roots" in result.stderr
    assert str(link) in result.stderr
    assert result.stdout == ""
    assert registry_files(registry_dir) == before


def test_a_base_that_links_inside_the_weights_root_is_scanned(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(tree))
    link = tmp_path / "gguf-link"
    link.symlink_to(tree / "Qwen3-8B-GGUF")

    result, data = scan_json("--base", str(link), "--dry-run")

    assert result.exit_code == 0, result.stderr
    assert sorted(r["name"] for r in data["rows"]) == ["qwen3-8b-vllm-gguf-q4_k_m", "qwen3-8b-vllm-gguf-q8_0"]


def test_a_name_conflict_is_a_row_and_is_not_written(tree, registry_dir):
    _, data = scan_json("--base", str(tree))

    row = rows_by_path(data, tree)[CONFLICT]
    assert row["action"] == "conflict"
    assert row["name"] == "qwen3-4b-vllm-safetensors-bf16"
    assert "qwen3-4b-vllm-safetensors-bf16" in row["reason"] and str(tree / "Qwen3-4B") in row["reason"]
    layer = discovered_layer(registry_dir)
    assert layer["qwen3-4b-vllm-safetensors-bf16"]["download"]["path"] == str(tree / "Qwen3-4B")
    assert not any(CONFLICT in (e.get("download") or {}).get("path", "") for e in layer.values())


# --- ingest-local-hf and discover-all -------------------------------------------------------------


def test_ingest_local_hf_is_scan_with_update_existing(tree):
    result, data = scan_json("--root", str(tree), prog=LOADER, verb="ingest-local-hf")
    assert result.exit_code == 1  # the corrupt header
    assert {rows_by_path(data, tree)[rel]["action"] for rel in EXPECTED} == {"add"}
    write_json(tree / "Qwen3-4B" / "special_tokens_map.json", {"eos_token": "<|im_end|>"})

    _, data = scan_json("--root", str(tree), prog=LOADER, verb="ingest-local-hf")

    rows = rows_by_path(data, tree)
    assert rows["Qwen3-4B"]["action"] == "update"
    assert {rows[rel]["action"] for rel in EXPECTED if rel != "Qwen3-4B"} == {"unchanged"}
    assert entries()["qwen3-4b-vllm-safetensors-bf16"]["download"]["file_count"] == 5


def make_hf_home(tmp_path, monkeypatch) -> Path:
    """HF_HOME with one repo in its hub cache (and huggingface_hub's .locks folder)."""
    home = tmp_path / "hf-home"
    snap = make_hf_cache_repo(home / "hub", "TheOrg/Tiny-Chat-1B",
                              lambda f: make_bf16_folder(f, arch="LlamaForCausalLM", model_type="llama",
                                                         template=SIMPLE_TEMPLATE))
    (home / "hub" / ".locks" / "models--TheOrg--Tiny-Chat-1B").mkdir(parents=True)
    (home / "hub" / "version.txt").write_text("1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return snap


def test_discover_all_scans_the_hf_root_and_the_hf_cache_of_hf_home(tree, tmp_path, monkeypatch):
    snap = make_hf_home(tmp_path, monkeypatch)

    result, data = scan_json("--hf-root", str(tree), prog=LOADER, verb="discover-all")

    assert result.exit_code == 1  # the corrupt header in the tree
    reg = entries()
    assert all(w["name"] in reg for w in EXPECTED.values())
    e = reg["tiny-chat-1b-vllm-safetensors-bf16"]
    assert e["download"]["path"] == str(snap)
    assert (e["source"]["provider"], e["source"]["repo_id"], e["source"]["commit"]) == \
        ("hf", "TheOrg/Tiny-Chat-1B", COMMIT)
    assert e["artifacts"]["aggregate"] == build_manifest(snap).aggregate
    assert not any(OLD_COMMIT in r["path"] for r in data["rows"])

    # again: registered entries are refreshed (unchanged), never "exists"
    _, data = scan_json("--hf-root", str(tree), prog=LOADER, verb="discover-all")
    assert "exists" not in data["counts"]
    assert next(r for r in data["rows"] if r["path"] == str(snap))["action"] == "unchanged"


def test_discover_all_without_hf_root_scans_the_weights_root(tmp_path, monkeypatch):
    root = tmp_path / "w"
    make_awq_folder(root / "Mistral-7B-Instruct-v0.3-AWQ")
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(root))
    make_hf_home(tmp_path, monkeypatch)

    result, data = scan_json("--dry-run", prog=LOADER, verb="discover-all")

    assert result.exit_code == 0, result.stderr
    assert sorted(r["name"] for r in data["rows"]) == ["mistral-7b-instruct-v0.3-vllm-awq",
                                                         "tiny-chat-1b-vllm-safetensors-bf16"]


def test_discover_all_finds_the_cache_named_by_huggingface_hubs_older_variable(tmp_path, monkeypatch):
    home = tmp_path / "hf-home"
    snap = make_hf_home(tmp_path, monkeypatch)
    moved = tmp_path / "legacy-cache"
    (home / "hub").rename(moved)  # HF_HOME/hub is now empty: only HUGGINGFACE_HUB_CACHE leads to the repo
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(moved))
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(tmp_path / "no-weights"))

    result, data = scan_json("--dry-run", prog=LOADER, verb="discover-all")

    assert result.exit_code == 0, result.stderr
    assert [r["path"] for r in data["rows"]] == [str(moved / snap.relative_to(home / "hub"))]


# --- headers only ---------------------------------------------------------------------------------


def test_dry_run_reads_only_headers_of_a_huge_file(tmp_path):
    root = tmp_path / "w"
    folder = root / "Huge-Model-70B"
    write_json(folder / "config.json", hf_config())
    weights = write_safetensors_raw(folder / "model.safetensors", {"lm_head.weight": ("BF16", [1 << 32])},
                                    data_len=8 << 30)
    st = weights.stat()
    if st.st_blocks * 512 > 16 << 20:
        pytest.skip("this filesystem does not make sparse files")
    assert st.st_size > 8 << 30
    with safe_open(str(weights), framework="numpy") as f:  # a valid file for the reference library
        assert list(f.keys()) == ["lm_head.weight"]

    started = time.perf_counter()
    result, data = scan_json("--base", str(root), "--dry-run")
    seconds = time.perf_counter() - started

    assert result.exit_code == 0, result.stderr
    (row,) = data["rows"]
    assert (row["action"], row["name"]) == ("add", "huge-model-70b-vllm-safetensors-bf16")
    assert row["size_bytes"] == st.st_size + (folder / "config.json").stat().st_size
    assert seconds < 2, f"the dry run took {seconds:.1f} s: it read more than headers"
