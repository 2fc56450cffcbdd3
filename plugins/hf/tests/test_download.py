"""``download`` end to end against the stand-in Hub (hubserver.py): the library call, the CLI in-process, and the
console script as a subprocess where a process must die, race another one or hit a file-size limit.

Every model file is a real safetensors or GGUF file (small: a few KiB, a few MiB where a size matters), so the
downloaded folder is inspected and registered exactly as a scanned one.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import gguf
import numpy as np
import pytest
from safetensors.numpy import save as safetensors_save

import hubserver
from imageworks_models.acquire.download import DownloadResult, download
from imageworks_models.errors import (
    AcquisitionError, ChecksumMismatchError, DiskSpaceError, DownloadError, RemoteNotFoundError, UnsafePathError,
)
from imageworks_models.integrity.manifest import build_manifest
from imageworks_models.fs.safepath import check_relative_name, safe_join
from imageworks_models.settings import load_settings
from imageworks_models.testing import make_registry, run_cli

pytestmark = pytest.mark.usefixtures("imageworks_isolated")  # from imageworks_models.pytest_plugin

DOWNLOAD = str(Path(sys.executable).parent / "imageworks-download")
STAGING = ".imageworks-staging"
CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "torch_dtype": "float16"}
AWQ_CONFIG = {**CONFIG, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}
TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
TOKENIZER_CONFIG = {"chat_template": TEMPLATE, "bos_token": "<s>"}
Q4_K_M, Q5_K_M, Q8_0, F16 = 15, 17, 7, 1  # llama.cpp general.file_type values


# --------------------------------------------------------------------------------------------------- helpers


def js(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def safetensors_bytes(n_floats: int = 256, seed: int = 0) -> bytes:
    """A valid safetensors file holding one float16 tensor of ``n_floats`` values (2 bytes each)."""
    rng = np.random.default_rng(seed)
    return safetensors_save({"model.embed_tokens.weight": rng.standard_normal(n_floats).astype(np.float16)})


def gguf_bytes(folder: Path, name: str, file_type: int, *, mmproj: bool = False, seed: int = 0) -> bytes:
    """A valid GGUF file (llama, or a clip projector) with ``general.file_type`` set, and a chat template."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    writer = gguf.GGUFWriter(str(path), "clip" if mmproj else "llama")
    writer.add_name("tiny")
    writer.add_file_type(file_type)
    if mmproj:
        writer.add_bool("clip.has_vision_encoder", True)
    else:
        writer.add_context_length(2048)
        writer.add_chat_template(TEMPLATE)
    writer.add_tensor("token_embd.weight", np.random.default_rng(seed).standard_normal(32).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` (relative name -> content): a byte-exact snapshot."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def weights_files(weights: Path) -> list[str]:
    """Files with content under the weights root (lock files and empty partials left aside)."""
    return [p.relative_to(weights).as_posix() for p in sorted(weights.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock") and p.stat().st_size > 0]


def cli(*args: str):
    return run_cli("download", *args, prog="imageworks-download")


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def weight_bytes_sent(hub, repo_id: str) -> int:
    return sum(n for (repo, path), n in hub.bytes_sent.items()
               if repo == repo_id and path.endswith((".safetensors", ".gguf")))


@pytest.fixture
def env(imageworks_isolated, hub, tmp_path, monkeypatch):
    """A stand-in Hub, an empty registry, a weights root (not created) and settings read from the environment."""
    registry = Path(make_registry(tmp_path / "registry"))
    weights = tmp_path / "weights"
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(registry))
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(weights))
    monkeypatch.setenv("IMAGEWORKS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    ns = SimpleNamespace(hub=hub, tmp=tmp_path, registry=registry, weights=weights)
    ns.entries = lambda: _entries(registry)
    ns.snapshot = lambda: tree_bytes(registry)
    return ns


def _entries(registry: Path) -> list[dict]:
    path = registry / "model_registry.discovered.json"
    if not path.exists():
        return []
    return json.loads(path.read_text(encoding="utf-8"))["entries"]


def tiny_repo(hub, repo_id: str = "org/tiny", *, weights: bytes | None = None, private: bool = False,
              gated: bool = False, extra: dict | None = None) -> tuple[str, dict[str, bytes]]:
    """A small safetensors repo: config, tokenizer files with a chat template, weights, a README."""
    files = {
        "config.json": js(CONFIG),
        "generation_config.json": js({"temperature": 0.7}),
        "tokenizer.json": js({"version": "1.0", "model": {"type": "BPE"}}),
        "tokenizer_config.json": js(TOKENIZER_CONFIG),
        "model.safetensors": weights if weights is not None else safetensors_bytes(),
        "README.md": b"# tiny\n",
        **(extra or {}),
    }
    return hub.add_repo(repo_id, files, private=private, gated=gated), files


def settings():
    return load_settings()


# --------------------------------------------------------------------------------------------------- 1. happy path


def test_download_library_registers_entry_with_commit_path_and_download_manifest(env, monkeypatch):
    commit, files = tiny_repo(env.hub)
    import imageworks_models.integrity.manifest as manifest_module

    real_build = manifest_module.build_manifest
    hashed_again = []
    monkeypatch.setattr(manifest_module, "build_manifest",
                        lambda *a, **k: hashed_again.append(a) or real_build(*a, **k))

    result = download("org/tiny", location="linux_wsl", settings=settings())

    dest = env.weights / "org" / "tiny"
    assert isinstance(result, DownloadResult)
    assert result.action == "add" and result.commit == commit and len(commit) == 40
    assert hashed_again == []  # the manifest came from the digests computed while downloading
    [entry] = env.entries()
    assert entry["name"] == result.name
    assert entry["source"]["commit"] == commit
    assert entry["source"]["repo_id"] == "org/tiny"
    assert entry["source"]["provider"] == "hf"
    assert entry["download"]["path"] == str(dest)
    assert entry["download"]["location"] == "linux_wsl"
    assert entry["format"] == "safetensors" and entry["quantization"] == "fp16"
    assert entry["chat_template"]["path"] == "tokenizer_config.json"
    on_disk = build_manifest(dest)  # a real hash pass over the folder
    assert entry["artifacts"]["aggregate"] == on_disk.aggregate
    assert {f["path"]: f["digest"] for f in entry["artifacts"]["files"]} == \
        {name: f"sha256:{sha256(data)}" for name, data in files.items() if name != "README.md"}
    assert sorted(p.name for p in dest.iterdir()) == sorted(n for n in files if n != "README.md")
    assert not (env.weights / STAGING / f"org--tiny--{commit}").exists()
    assert not [p for p in (env.weights / STAGING).glob("*") if p.is_dir()]  # no staging folder left
    verify = run_cli("verify", entry["name"], prog="imageworks-loader")
    assert verify.exit_code == 0, verify.stdout + verify.stderr


def test_download_cli_banner_shows_path_location_format_files_and_template(env):
    commit, _ = tiny_repo(env.hub)

    result = cli("org/tiny", "--location", "linux_wsl", "--non-interactive")

    assert result.exit_code == 0, result.stderr
    out = result.stdout
    dest = env.weights / "org" / "tiny"
    assert f"org/tiny@{commit[:12]}" in out
    assert f"path:           {dest}" in out
    assert "location:       linux_wsl" in out
    assert "format / quant: safetensors / fp16" in out
    assert "files:          5 files (" in out and "; fetched " in out
    assert "chat template:  detected" in out
    [entry] = env.entries()
    assert entry["name"] in out and entry["source"]["commit"] == commit
    assert run_cli("verify", entry["name"], prog="imageworks-loader").exit_code == 0


def test_download_rerun_says_nothing_to_download_and_shows_no_rate(env):
    commit, _ = tiny_repo(env.hub)
    assert cli("org/tiny", "--non-interactive").exit_code == 0

    again = cli("org/tiny", "--non-interactive")

    assert again.exit_code == 0, again.stderr
    first = again.stdout.splitlines()[0]
    assert first == f"✅ org/tiny@{commit[:12]} (main): nothing to download, 5 files already verified"
    assert "Downloaded" not in again.stdout and "/s" not in again.stdout and "nothing fetched" in again.stdout
    assert " GB" not in again.stdout and " MB" not in again.stdout  # one unit system: B, KiB, MiB, GiB


def test_download_cli_json_gives_the_download_result_shape(env):
    commit, files = tiny_repo(env.hub)

    result = cli("org/tiny", "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"name", "action", "dry_run", "path", "location", "repo_id", "revision", "commit", "format",
                         "quantization", "files", "total_bytes", "transferred_bytes", "reused_bytes",
                         "chat_template", "capabilities", "notes", "reason"}
    assert data["action"] == "add" and data["dry_run"] is False
    assert data["commit"] == commit and data["repo_id"] == "org/tiny" and data["revision"] == "main"
    assert data["path"] == str(env.weights / "org" / "tiny") and data["location"] == "local"
    assert data["format"] == "safetensors" and data["quantization"] == "fp16"
    expected = sorted(n for n in files if n != "README.md")
    assert sorted(data["files"]) == expected
    assert data["total_bytes"] == data["transferred_bytes"] == sum(len(files[n]) for n in expected)
    assert data["chat_template"]["path"] == "tokenizer_config.json"
    assert [e["name"] for e in env.entries()] == [data["name"]]


# --------------------------------------------------------------------------------------------------- 2. dry run


def test_download_dry_run_lists_files_and_writes_nothing(env):
    commit, files = tiny_repo(env.hub)
    before = env.snapshot()

    result = cli("org/tiny", "--dry-run")

    assert result.exit_code == 0, result.stderr
    assert f"would download org/tiny@{commit[:12]}" in result.stdout
    for name in files:
        assert (f"  {name}" in result.stdout) == (name != "README.md"), name
    assert "dry run, nothing was written" in result.stderr
    assert env.snapshot() == before
    assert not env.weights.exists()
    assert weight_bytes_sent(env.hub, "org/tiny") == 0


# --------------------------------------------------------------------------------------------------- 3. which files


def awq_repo(hub):
    files = {
        "config.json": js(AWQ_CONFIG),
        "tokenizer.json": js({"version": "1.0"}),
        "tokenizer_config.json": js(TOKENIZER_CONFIG),
        "special_tokens_map.json": js({"bos_token": "<s>"}),
        "model-00001-of-00002.safetensors": safetensors_bytes(seed=1),
        "model-00002-of-00002.safetensors": safetensors_bytes(seed=2),
        "model.safetensors.index.json": js({"metadata": {}, "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}),
        "README.md": b"# awq\n",
        "LICENSE": b"MIT\n",
        "modeling_tiny.py": b"# custom code\n",
        "onnx/model.onnx": b"not taken\n",
    }
    return hub.add_repo("org/tiny-awq", files), files


def test_download_awq_takes_safetensors_and_essentials_only(env):
    _, files = awq_repo(env.hub)

    result = download("org/tiny-awq", format="awq", settings=settings())

    dest = env.weights / "org" / "tiny-awq"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    assert result.format == "awq"
    [entry] = env.entries()
    assert entry["format"] == "awq"
    assert any("custom code" in n for n in result.notes)


def test_download_include_optional_adds_readme_licence_and_code(env):
    awq_repo(env.hub)

    download("org/tiny-awq", format="awq", include_optional=True, settings=settings())

    dest = env.weights / "org" / "tiny-awq"
    names = {p.name for p in dest.iterdir()}
    assert {"README.md", "LICENSE", "modeling_tiny.py"} <= names
    assert not (dest / "onnx").exists()


def test_download_wrong_quant_format_is_refused_before_any_weight_byte(env):
    awq_repo(env.hub)
    before = env.snapshot()

    result = cli("org/tiny-awq", "--format", "gptq")

    assert result.exit_code == 1
    assert "org/tiny-awq is not gptq" in result.stderr and "awq" in result.stderr
    assert weight_bytes_sent(env.hub, "org/tiny-awq") == 0
    assert not (env.weights / "org" / "tiny-awq").exists()
    assert env.snapshot() == before


@pytest.fixture
def gguf_repo(env):
    src = env.tmp / "gguf-src"
    files = {
        "tiny-Q4_K_M.gguf": gguf_bytes(src, "tiny-Q4_K_M.gguf", Q4_K_M, seed=1),
        "tiny-Q5_K_M.gguf": gguf_bytes(src, "tiny-Q5_K_M.gguf", Q5_K_M, seed=2),
        "tiny-Q8_0.gguf": gguf_bytes(src, "tiny-Q8_0.gguf", Q8_0, seed=3),
        "mmproj-tiny-F16.gguf": gguf_bytes(src, "mmproj-tiny-F16.gguf", F16, mmproj=True, seed=4),
        "README.md": b"# gguf\n",
    }
    env.hub.add_repo("org/tiny-GGUF", files)
    return files


def test_download_gguf_non_interactive_takes_q4_k_m_and_mmproj(env, gguf_repo):
    result = cli("org/tiny-GGUF", "--non-interactive")

    assert result.exit_code == 0, result.stderr
    dest = env.weights / "org" / "tiny-GGUF"
    assert sorted(p.name for p in dest.iterdir()) == ["mmproj-tiny-F16.gguf", "tiny-Q4_K_M.gguf"]
    assert (dest / "tiny-Q4_K_M.gguf").read_bytes() == gguf_repo["tiny-Q4_K_M.gguf"]
    [entry] = env.entries()
    assert entry["format"] == "gguf" and entry["quantization"] == "q4_k_m"
    assert env.hub.bytes_sent[("org/tiny-GGUF", "tiny-Q8_0.gguf")] == 0


def test_download_dry_run_names_the_gguf_entry_it_would_add(env, gguf_repo):
    """The dry run's name follows the naming rule for the quant it would take, and matches the real run's."""
    import json

    planned = cli("org/tiny-GGUF", "--non-interactive", "--dry-run", "--json")
    assert planned.exit_code == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["action"] == "planned" and plan["name"] == "tiny-vllm-gguf-q4_k_m"
    assert env.entries() == []

    assert cli("org/tiny-GGUF", "--non-interactive").exit_code == 0
    [entry] = env.entries()
    assert entry["name"] == plan["name"]


def test_download_gguf_weights_option_takes_exactly_that_file(env, gguf_repo):
    result = cli("org/tiny-GGUF", "--weights", "tiny-Q8_0.gguf", "--non-interactive")

    assert result.exit_code == 0, result.stderr
    dest = env.weights / "org" / "tiny-GGUF"
    assert [p.name for p in dest.iterdir()] == ["tiny-Q8_0.gguf"]
    [entry] = env.entries()
    assert entry["quantization"] == "q8_0"


def test_download_unknown_weights_name_lists_the_available_files(env, gguf_repo):
    before = env.snapshot()

    result = cli("org/tiny-GGUF", "--weights", "tiny-Q2_K.gguf", "--non-interactive")

    assert result.exit_code == 1
    assert "tiny-Q2_K.gguf" in result.stderr
    for name in ("tiny-Q4_K_M.gguf", "tiny-Q5_K_M.gguf", "tiny-Q8_0.gguf", "mmproj-tiny-F16.gguf"):
        assert name in result.stderr
    assert env.snapshot() == before and not env.weights.exists()


def test_download_support_repo_brings_missing_tokenizer_files(env):
    env.hub.add_repo("org/bare", {"config.json": js(CONFIG), "model.safetensors": safetensors_bytes()})
    _, support_files = tiny_repo(env.hub, "org/base")

    result = download("org/bare", support_repo="org/base", settings=settings())

    dest = env.weights / "org" / "bare"
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (dest / name).read_bytes() == support_files[name]
    assert (dest / "config.json").read_bytes() == js(CONFIG)  # the main repo's own file wins
    assert not (dest / "README.md").exists()
    assert env.hub.bytes_sent[("org/base", "model.safetensors")] == 0
    assert result.chat_template is not None  # the template came with the support repo's tokenizer_config
    assert any("support files from org/base" in n for n in result.notes)


# --------------------------------------------------------------------------------------------------- 4. integrity


BIG = safetensors_bytes(128 * 1024, seed=7)  # 256 KiB of weights


def test_truncated_body_is_resumed_with_little_extra(env):
    tiny_repo(env.hub, weights=BIG)
    env.hub.fault("org/tiny", "model.safetensors", "truncate", after=len(BIG) // 3, times=1)

    result = download("org/tiny", settings=settings())

    dest = env.weights / "org" / "tiny" / "model.safetensors"
    assert dest.read_bytes() == BIG
    assert env.hub.bytes_sent[("org/tiny", "model.safetensors")] < 1.05 * len(BIG)
    assert result.action == "add"


def test_resume_from_an_unaligned_offset_gives_the_exact_bytes(env):
    # Whole 4 KiB-aligned blocks are written with O_DIRECT, the rest through the page cache: a resume that starts
    # mid-block (and a file whose end is mid-block) mixes both in one file, which must still be byte-exact.
    weights = MIB4 + b"x" * 12_345  # ends mid-block (safetensors allows trailing bytes; only the digest matters)
    tiny_repo(env.hub, weights=weights)
    env.hub.fault("org/tiny", "model.safetensors", "truncate", after=1_000_003, times=1)

    download("org/tiny", settings=settings())

    dest = env.weights / "org" / "tiny" / "model.safetensors"
    assert dest.read_bytes() == weights
    assert env.hub.bytes_sent[("org/tiny", "model.safetensors")] < 1.05 * len(weights)
    [entry] = env.entries()
    assert entry["artifacts"]["aggregate"] == build_manifest(env.weights / "org" / "tiny").aggregate


def test_download_without_o_direct_writes_through_the_page_cache(env, monkeypatch):
    # macOS and Windows have no O_DIRECT (and some Linux filesystems refuse it): every block then goes through
    # the buffered descriptor, resumes included.
    monkeypatch.delattr(os, "O_DIRECT", raising=False)
    tiny_repo(env.hub, weights=MIB4)
    env.hub.fault("org/tiny", "model.safetensors", "truncate", after=1_000_003, times=1)

    download("org/tiny", settings=settings())

    assert (env.weights / "org" / "tiny" / "model.safetensors").read_bytes() == MIB4
    assert env.hub.bytes_sent[("org/tiny", "model.safetensors")] < 1.05 * len(MIB4)


def test_ignored_range_on_resume_restarts_never_appends(env):
    tiny_repo(env.hub, weights=BIG)
    env.hub.fault("org/tiny", "model.safetensors", "truncate", after=len(BIG) // 2, times=1)
    env.hub.fault("org/tiny", "model.safetensors", "ignore_range")

    download("org/tiny", settings=settings())

    dest = env.weights / "org" / "tiny" / "model.safetensors"
    assert dest.stat().st_size == len(BIG)
    assert dest.read_bytes() == BIG
    ranged = [r for r in env.hub.requests if r.server == "cdn" and r.method == "GET" and "range" in r.headers]
    assert ranged, "the second request should have asked for a range (a resume)"


def test_wrong_content_range_starts_over(env):
    tiny_repo(env.hub, weights=BIG)
    env.hub.fault("org/tiny", "model.safetensors", "truncate", after=len(BIG) // 2, times=1)
    env.hub.fault("org/tiny", "model.safetensors", "wrong_content_range", offset=0, times=1)

    download("org/tiny", settings=settings())

    assert (env.weights / "org" / "tiny" / "model.safetensors").read_bytes() == BIG
    assert [r for r in env.hub.requests if r.server == "cdn" and r.method == "GET" and "range" in r.headers]
    [entry] = env.entries()
    assert entry["artifacts"]["aggregate"] == build_manifest(env.weights / "org" / "tiny").aggregate


@pytest.mark.parametrize("path, digest", [("model.safetensors", "sha256"), ("config.json", "git blob id")])
def test_flipped_byte_fails_checksum_and_deletes_the_bad_file(env, path, digest):
    commit, _ = tiny_repo(env.hub, weights=BIG)
    env.hub.fault("org/tiny", path, "flip_byte", offset=10)
    before = env.snapshot()

    with pytest.raises(ChecksumMismatchError, match=path):
        download("org/tiny", settings=settings())

    assert not (env.weights / "org" / "tiny").exists()
    staging = env.weights / STAGING / f"org--tiny--{commit}"
    assert not list(staging.rglob(path))  # the bad bytes are gone, not kept for a resume
    assert env.snapshot() == before

    result = cli("org/tiny")  # the CLI: exit 1, one line
    assert result.exit_code == 1
    assert len(error_lines(result)) == 1 and digest in error_lines(result)[0]
    assert env.snapshot() == before


def test_html_page_with_200_is_a_clear_error_and_nothing_registered(env):
    tiny_repo(env.hub, weights=BIG)
    env.hub.fault("org/tiny", "model.safetensors", "html_200")
    before = env.snapshot()

    result = cli("org/tiny")

    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "HTML page" in line and "model.safetensors" in line
    assert "hint:" in result.stderr
    assert env.snapshot() == before
    assert not (env.weights / "org" / "tiny").exists()


@pytest.mark.parametrize("stored_as", ["git file", "lfs object"])
def test_lfs_pointer_served_as_weights_is_refused(env, monkeypatch, stored_as):
    real = safetensors_bytes()
    pointer = hubserver.make_lfs_pointer(sha256(real), len(real))
    # the repo holds the pointer text itself (its LFS object never made it to the server): as a plain git file,
    # or uploaded again as the content of an LFS object; either way its published digest matches
    with monkeypatch.context() as m:
        if stored_as == "git file":
            m.setattr(hubserver, "is_lfs_path", lambda path, size: False)
        tiny_repo(env.hub, weights=pointer)
    before = env.snapshot()

    with pytest.raises(DownloadError, match="LFS pointer"):
        download("org/tiny", settings=settings())

    assert not (env.weights / "org" / "tiny").exists()
    assert env.snapshot() == before


def test_branch_moving_during_download_keeps_every_file_from_the_first_commit(env):
    commit, files = tiny_repo(env.hub)
    env.hub.fault("org/tiny", "model.safetensors", "move_after_lookup")
    env.hub.fault("org/tiny", "config.json", "move_after_lookup", content=js({**CONFIG, "moved": True}))

    result = download("org/tiny", settings=settings())

    assert env.hub.head("org/tiny") != commit  # the branch did move
    assert result.commit == commit
    dest = env.weights / "org" / "tiny"
    assert (dest / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert (dest / "config.json").read_bytes() == files["config.json"]
    [entry] = env.entries()
    assert entry["source"]["commit"] == commit
    resolves = [r.path for r in env.hub.requests if r.server == "hub" and "/resolve/" in r.path]
    assert resolves and all(f"/resolve/{commit}/" in p for p in resolves)


def test_503_twice_then_ok_is_retried(env):
    tiny_repo(env.hub)
    env.hub.fault("org/tiny", "model.safetensors", "status", code=503, times=2)

    result = download("org/tiny", settings=settings())

    assert result.action == "add"
    gets = [r for r in env.hub.requests if r.server == "cdn" and r.method == "GET"]
    assert len(gets) == 3


def test_503_forever_gives_up_with_a_clear_error(env, monkeypatch):
    from imageworks_models_hf import transfer

    monkeypatch.setattr(transfer.time, "sleep", lambda s: None)
    tiny_repo(env.hub)
    env.hub.fault("org/tiny", "model.safetensors", "status", code=503)
    before = env.snapshot()

    result = cli("org/tiny")

    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "model.safetensors" in line and "503" in line
    assert env.snapshot() == before


@pytest.mark.parametrize("case", ["missing repo", "unknown revision", "private without token", "gated"])
def test_remote_errors_are_one_clear_line_naming_the_repo(env, case):
    tiny_repo(env.hub)
    tiny_repo(env.hub, "org/secret", private=True)
    tiny_repo(env.hub, "org/licensed", gated=True)
    spec, repo, words = {
        "missing repo": ("org/missing", "org/missing", ("not found",)),
        "unknown revision": ("org/tiny@no-such-branch", "org/tiny", ("no-such-branch", "not found")),
        "private without token": ("org/secret", "org/secret", ("private",)),
        "gated": ("org/licensed", "org/licensed", ("gated", "restricted", "licence")),
    }[case]
    before = env.snapshot()

    result = cli(spec)

    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    [line] = error_lines(result)
    assert repo in line and any(w in line.lower() for w in words), line
    [hint] = [x for x in result.stderr.splitlines() if x.startswith("hint: ")]
    if case in ("private without token", "gated"):
        assert "HF_TOKEN" in hint
    assert env.snapshot() == before
    assert not (env.weights / repo).exists()
    if case == "gated":
        # the files are refused only when asked for: at most an empty staging skeleton is left
        assert weights_files(env.weights) == []
    else:
        assert not env.weights.exists()  # refused at the lookup, before any folder is made


# --------------------------------------------------------------------------------------------------- 5. kill -9


MIB2 = safetensors_bytes(1024 * 1024, seed=11)  # 2 MiB of weights
MIB4 = safetensors_bytes(2 * 1024 * 1024, seed=12)  # 4 MiB of weights
MIB = 1 << 20


def _part(env, commit: str) -> Path:
    return env.weights / STAGING / f"org--tiny--{commit}" / "parts" / "model.safetensors"


def _spawn(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([DOWNLOAD, "download", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ), **kw)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_kill_9_during_download_then_rerun_resumes(env):
    commit, _ = tiny_repo(env.hub, weights=MIB4)
    size = len(MIB4)
    key = ("org/tiny", "model.safetensors")
    part_path = _part(env, commit)
    env.hub.fault(*key, "throttle", bytes_per_s=4_000_000)
    inflight, parts = 0, [0]
    # kill -9 once the partial holds 1 MiB, once it holds 2 MiB, and once half a MiB into a run (mid-buffer)
    for kill_when in (lambda run, part: part >= MIB, lambda run, part: part >= 2 * MIB,
                      lambda run, part: run >= MIB // 2):
        start = env.hub.bytes_sent[key]
        proc = _spawn("org/tiny", "--non-interactive", "--no-aria2")
        deadline = time.monotonic() + 20
        while not kill_when(env.hub.bytes_sent[key] - start, _size(part_path)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the download did not progress"
            time.sleep(0.005)
        proc.kill()  # SIGKILL: no cleanup runs
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        time.sleep(0.1)  # let the hub notice the closed connection
        part = _size(part_path)
        inflight += (env.hub.bytes_sent[key] - start) - (part - parts[-1])  # sent, never written
        parts.append(part)
    assert parts == sorted(parts) and parts[1] >= MIB  # every run kept (and extended) the partial file
    assert inflight <= 3 * (MIB + 256 * 1024)  # a kill loses at most about one read buffer
    assert not env.entries()
    env.hub.clear_faults()
    before_final = env.hub.bytes_sent[key]

    final = _spawn("org/tiny", "--non-interactive", "--no-aria2")
    out, err = final.communicate(timeout=60)

    assert final.returncode == 0, err.decode()
    dest = env.weights / "org" / "tiny" / "model.safetensors"
    assert file_sha256(dest) == sha256(MIB4)
    final_bytes = env.hub.bytes_sent[key] - before_final
    assert final_bytes == size - parts[-1]  # the last run fetched only the rest
    assert final_bytes < size
    assert env.hub.bytes_sent[key] <= 1.05 * size + inflight
    [entry] = env.entries()
    assert entry["source"]["commit"] == commit


# --------------------------------------------------------------------------------------------------- 6. two at once


def test_two_processes_downloading_the_same_repo(env):
    commit, _ = tiny_repo(env.hub, weights=MIB2)
    env.hub.fault("org/tiny", "model.safetensors", "throttle", bytes_per_s=4_000_000)

    procs = [_spawn("org/tiny", "--non-interactive", "--no-aria2") for _ in range(2)]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]

    for out, err, code in results:
        assert code in (0, 1), err.decode()
        if code == 1:
            assert b"lock" in err.lower() or b"already" in err.lower(), err.decode()
    assert any(code == 0 for _, _, code in results), [r[1].decode() for r in results]
    entries = env.entries()
    assert len(entries) == 1 and entries[0]["source"]["commit"] == commit
    dest = env.weights / "org" / "tiny"
    assert file_sha256(dest / "model.safetensors") == sha256(MIB2)
    assert entries[0]["artifacts"]["aggregate"] == build_manifest(dest).aggregate
    assert not (env.weights / STAGING / f"org--tiny--{commit}").exists()
    # the one that waited on the lock finds the model in place instead of fetching it all again
    assert env.hub.bytes_sent[("org/tiny", "model.safetensors")] < 1.05 * len(MIB2)


# --------------------------------------------------------------------------------------------------- 7. disk space


def test_too_little_free_space_is_refused_before_any_body_byte(env, monkeypatch):
    import imageworks_models_hf.fetch as fetch_module

    _, files = tiny_repo(env.hub, weights=BIG)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(fetch_module.shutil, "disk_usage", lambda path: usage(10 << 30, (10 << 30) - 5_000_000,
                                                                            5_000_000))
    before = env.snapshot()

    with pytest.raises(DiskSpaceError) as info:
        download("org/tiny", settings=settings())

    message = info.value.message
    need = sum(len(data) for name, data in files.items() if name != "README.md")
    from imageworks_models.units import human_bytes

    assert f"needs {human_bytes(need)}" in message and "4.8 MiB is free" in message, message  # binary units
    assert not any(env.hub.bytes_sent.values())  # not one body byte, config.json included
    assert not (env.weights / "org" / "tiny").exists()
    assert env.snapshot() == before


def _limit_file_size(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_disk_full_during_transfer_is_a_clear_error_and_nothing_registered(env):
    tiny_repo(env.hub, weights=MIB2)
    before = env.snapshot()

    proc = _spawn("org/tiny", "--non-interactive", "--no-aria2", preexec_fn=_limit_file_size(512 * 1024))
    out, err = proc.communicate(timeout=60)

    text = err.decode()
    assert proc.returncode == 1, text
    [line] = [x for x in text.splitlines() if x.startswith("error:")]
    assert "model.safetensors" in line and ("space" in line or "too large" in line.lower())
    assert "Traceback" not in text
    assert env.snapshot() == before
    assert not (env.weights / "org" / "tiny").exists()


# --------------------------------------------------------------------------------------------------- 8. hostile names


HOSTILE = ["../x", "a/../../x", "..\\x", "C:\\x", "D:x", "\\x", "\\\\host\\share\\x", "/abs", "a\x00b"]


@pytest.mark.parametrize("name", HOSTILE)
def test_check_relative_name_and_safe_join_refuse(name, tmp_path):
    tmp_path = tmp_path / "root"
    tmp_path.mkdir()
    with pytest.raises(UnsafePathError):
        check_relative_name(name)
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, name)
    assert list(tmp_path.iterdir()) == []


def test_safe_join_accepts_plain_names_and_refuses_a_symlink_leading_out(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    assert safe_join(root, "onnx/model.onnx") == root.resolve() / "onnx" / "model.onnx"
    (root / "sub").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside"):
        safe_join(root, "sub/model.safetensors")
    (root / "inner").mkdir()
    (root / "ok").symlink_to(root / "inner")
    assert safe_join(root, "ok/x") == root.resolve() / "ok" / "x"


@pytest.fixture
def hub_accepting_any_name(monkeypatch):
    """The stand-in refuses unsafe names when a repo is made; a hostile Hub would list them anyway."""
    monkeypatch.setattr(hubserver, "_check_path", lambda path: path)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_name_in_listing_is_refused_before_anything_is_written(env, hub_accepting_any_name, name):
    tiny_repo(env.hub, "org/hostile", extra={name: b"owned\n"})
    before = env.snapshot()
    abs_existed = Path("/abs").exists()

    result = cli("org/hostile", "--non-interactive", "--include-optional")

    assert result.exit_code == 1, result.stdout
    [line] = error_lines(result)
    assert "refusing" in line and repr(name) in line
    assert not env.weights.exists()  # no weights folder, no staging
    assert not (env.tmp / "x").exists() and Path("/abs").exists() == abs_existed
    assert not any(env.hub.bytes_sent.values())
    assert env.snapshot() == before


def test_symlinked_model_folder_leading_outside_is_refused(env):
    tiny_repo(env.hub)
    outside = env.tmp / "elsewhere"
    outside.mkdir()
    env.weights.mkdir()
    (env.weights / "org").symlink_to(outside)
    before = env.snapshot()

    with pytest.raises(UnsafePathError):
        download("org/tiny", settings=settings())

    assert list(outside.iterdir()) == []
    assert not any(env.hub.bytes_sent.values())
    assert env.snapshot() == before


def test_symlinked_staging_folder_leading_outside_is_refused(env):
    commit, _ = tiny_repo(env.hub)
    outside = env.tmp / "elsewhere"
    outside.mkdir()
    (env.weights / STAGING).mkdir(parents=True)
    (env.weights / STAGING / f"org--tiny--{commit}").symlink_to(outside)

    with pytest.raises(UnsafePathError):
        download("org/tiny", settings=settings())

    assert list(outside.iterdir()) == []
    assert not (env.weights / "org").exists()
    assert not env.entries()


# --------------------------------------------------------------------------------------------------- 9. the token


def _auth_requests(hub, server: str) -> list:
    return [r for r in hub.requests if r.server == server and "authorization" in r.headers]


def test_private_repo_downloads_with_token_and_cdn_never_sees_it(env, monkeypatch):
    _, files = tiny_repo(env.hub, "org/private", private=True)
    monkeypatch.setenv("HF_TOKEN", env.hub.token)

    result = cli("org/private", "--non-interactive", "--no-aria2")

    assert result.exit_code == 0, result.stderr
    dest = env.weights / "org" / "private"
    assert (dest / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert env.hub.token not in result.stdout + result.stderr
    assert _auth_requests(env.hub, "hub"), "the hub should have been sent the token"
    assert all(r.headers["authorization"] == f"Bearer {env.hub.token}" for r in _auth_requests(env.hub, "hub"))
    assert [r for r in env.hub.requests if r.server == "cdn"], "the weights should come from the CDN"
    assert _auth_requests(env.hub, "cdn") == []  # another origin (port): never the token


@pytest.mark.parametrize("fault", ["flip_byte", "html_200", "status"])
def test_token_never_printed_even_on_errors(env, monkeypatch, fault):
    tiny_repo(env.hub, "org/private", private=True)
    monkeypatch.setenv("HF_TOKEN", env.hub.token)
    monkeypatch.setenv("IMAGEWORKS_DEBUG", "1")  # tracebacks too
    from imageworks_models_hf import transfer

    monkeypatch.setattr(transfer.time, "sleep", lambda s: None)
    env.hub.fault("org/private", "config.json", fault, **({"code": 500} if fault == "status" else {}))

    result = cli("org/private", "--non-interactive", "--no-aria2")

    assert result.exit_code == 1
    assert error_lines(result)
    assert env.hub.token not in result.stdout + result.stderr


def test_token_not_printed_when_the_repo_is_missing(env, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", env.hub.token)
    monkeypatch.setenv("IMAGEWORKS_DEBUG", "1")

    result = cli("org/nothing-here", "--non-interactive")

    assert result.exit_code == 1
    assert "org/nothing-here" in result.stderr
    assert env.hub.token not in result.stdout + result.stderr


@pytest.mark.parametrize("endpoint", ["file:///etc", "ftp://x", "gopher://host/", "http://"])
def test_non_http_endpoint_is_refused(env, monkeypatch, endpoint):
    tiny_repo(env.hub)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    before = env.snapshot()

    with pytest.raises(AcquisitionError, match=r"http\(s\)"):
        download("org/tiny", settings=settings())
    result = cli("org/tiny", "--non-interactive")

    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "http(s)" in line and endpoint in line
    assert not env.weights.exists()
    assert env.snapshot() == before
    assert env.hub.requests == []


# --------------------------------------------------------------------------------------------------- 10. aria2c


REAL_ARIA2C = shutil.which("aria2c")
needs_aria2c = pytest.mark.skipif(REAL_ARIA2C is None, reason="aria2c is not on PATH (CI installs it)")


@pytest.fixture
def aria2_everything(monkeypatch):
    from imageworks_models_hf import aria2

    monkeypatch.setattr(aria2, "MIN_SIZE", 0)


@pytest.fixture
def aria2_log(env, monkeypatch):
    """A wrapper named ``aria2c`` first on PATH that logs its argv (and that it ran) and execs the real one."""
    bin_dir = env.tmp / "bin"
    bin_dir.mkdir()
    log = env.tmp / "aria2c.log"
    wrapper = bin_dir / "aria2c"
    wrapper.write_text(f'#!/bin/sh\nprintf "RUN %s\\n" "$*" >> "{log}"\nexec "{REAL_ARIA2C}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


@needs_aria2c
def test_aria2c_downloads_and_the_digest_is_checked(env, aria2_everything, aria2_log):
    _, files = tiny_repo(env.hub, weights=BIG)

    result = download("org/tiny", settings=settings())

    assert aria2_log.read_text().count("RUN ") == len(result.files)
    assert any("aria2c fetched" in n for n in result.notes)
    dest = env.weights / "org" / "tiny"
    assert (dest / "model.safetensors").read_bytes() == BIG
    [entry] = env.entries()
    assert entry["artifacts"]["aggregate"] == build_manifest(dest).aggregate


@needs_aria2c
def test_aria2c_flipped_byte_fails_the_checksum(env, aria2_everything):
    tiny_repo(env.hub, weights=BIG)
    env.hub.fault("org/tiny", "model.safetensors", "flip_byte", offset=5)
    before = env.snapshot()

    with pytest.raises(ChecksumMismatchError):
        download("org/tiny", settings=settings())

    assert not (env.weights / "org" / "tiny").exists()
    assert env.snapshot() == before


@needs_aria2c
def test_aria2c_never_gets_the_token_on_its_command_line(env, aria2_everything, aria2_log, monkeypatch):
    _, files = tiny_repo(env.hub, "org/private", private=True, weights=BIG)
    monkeypatch.setenv("HF_TOKEN", env.hub.token)

    result = cli("org/private", "--non-interactive")

    assert result.exit_code == 0, result.stderr
    log = aria2_log.read_text()
    assert log.count("RUN ") == 5  # every file went through aria2c (MIN_SIZE = 0)
    assert env.hub.token not in log
    assert (env.weights / "org" / "private" / "model.safetensors").read_bytes() == BIG
    assert _auth_requests(env.hub, "hub")  # small files came from the hub with the token (on stdin)


@needs_aria2c
def test_aria2c_is_never_given_the_token_for_the_cdn(env, aria2_everything, aria2_log, monkeypatch):
    tiny_repo(env.hub, "org/private", private=True, weights=BIG)
    monkeypatch.setenv("HF_TOKEN", env.hub.token)

    result = cli("org/private", "--non-interactive")

    assert result.exit_code == 0, result.stderr
    assert [r for r in env.hub.requests if r.server == "cdn"], "the weights should come from the CDN"
    assert _auth_requests(env.hub, "cdn") == []  # neither our HEAD nor aria2c's GET


@needs_aria2c
def test_aria2c_404_is_a_not_found_error(env, aria2_everything):
    tiny_repo(env.hub, weights=BIG)
    env.hub.fault("org/tiny", "model.safetensors", "status", code=404)
    before = env.snapshot()

    with pytest.raises(RemoteNotFoundError, match=r"not found.*exit code 3"):
        download("org/tiny", settings=settings())

    result = cli("org/tiny", "--non-interactive")
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "model.safetensors" in line and "not found" in line
    assert env.snapshot() == before


@needs_aria2c
def test_no_aria2_flag_never_calls_it(env, aria2_everything, aria2_log):
    tiny_repo(env.hub, weights=BIG)

    result = cli("org/tiny", "--non-interactive", "--no-aria2")

    assert result.exit_code == 0, result.stderr
    assert not aria2_log.exists()
    assert (env.weights / "org" / "tiny" / "model.safetensors").read_bytes() == BIG


# --------------------------------------------------------------------------------------------------- rerun, --force


def test_rerun_with_the_model_in_place_fetches_nothing(env):
    tiny_repo(env.hub, weights=BIG)
    assert cli("org/tiny", "--non-interactive").exit_code == 0
    [first] = env.entries()
    env.hub.reset_stats()

    result = cli("org/tiny", "--non-interactive")

    assert result.exit_code == 0, result.stderr
    assert sum(env.hub.bytes_sent.values()) == 0
    assert "already downloaded" in result.stderr
    [entry] = env.entries()
    assert entry["name"] == first["name"] and entry["artifacts"] == first["artifacts"]


def test_force_fetches_again(env):
    tiny_repo(env.hub, weights=BIG)
    assert cli("org/tiny", "--non-interactive").exit_code == 0
    env.hub.reset_stats()

    result = cli("org/tiny", "--non-interactive", "--force")

    assert result.exit_code == 0, result.stderr
    assert env.hub.bytes_sent[("org/tiny", "model.safetensors")] == len(BIG)
    assert (env.weights / "org" / "tiny" / "model.safetensors").read_bytes() == BIG
    assert len(env.entries()) == 1


def test_rerun_after_the_branch_moved_never_records_a_commit_the_files_are_not_from(env):
    """The folder holds commit A; the branch moved to B, whose files have the same sizes but other bytes. A rerun
    must fetch B's files (or refuse): recording source.commit = B over A's bytes would be a lie."""
    first, files = tiny_repo(env.hub, weights=BIG)
    assert cli("org/tiny", "--non-interactive").exit_code == 0
    new_weights = safetensors_bytes(128 * 1024, seed=8)
    new_config = files["config.json"].replace(b"float16", b"bfloat16")[:-1]  # same length, other bytes
    assert len(new_weights) == len(BIG) and len(new_config) == len(files["config.json"])
    second = env.hub.commit("org/tiny", {"model.safetensors": new_weights, "config.json": new_config})

    result = cli("org/tiny", "--non-interactive")

    [entry] = env.entries()
    dest = env.weights / "org" / "tiny"
    if result.exit_code == 0:
        assert entry["source"]["commit"] == second
        assert (dest / "model.safetensors").read_bytes() == new_weights
        assert (dest / "config.json").read_bytes() == new_config
    else:
        assert entry["source"]["commit"] == first and (dest / "model.safetensors").read_bytes() == BIG


def test_rerun_over_a_corrupted_copy_never_records_the_corrupted_digest(env):
    """A file of the right size but wrong bytes in the model folder is not "already downloaded": a rerun must
    fetch it again (or refuse), never write its digest into the entry's manifest as a verified download."""
    tiny_repo(env.hub, weights=BIG)
    assert cli("org/tiny", "--non-interactive").exit_code == 0
    weights = env.weights / "org" / "tiny" / "model.safetensors"
    with open(weights, "r+b") as f:
        f.seek(4096)
        byte = f.read(1)
        f.seek(4096)
        f.write(bytes([byte[0] ^ 0xFF]))

    result = cli("org/tiny", "--non-interactive")

    [entry] = env.entries()
    recorded = {f["path"]: f["digest"] for f in entry["artifacts"]["files"]}
    assert recorded["model.safetensors"] == f"sha256:{sha256(BIG)}"
    if result.exit_code == 0:
        assert weights.read_bytes() == BIG
