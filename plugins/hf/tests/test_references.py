"""``download`` takes a model the way people paste it: ``owner/name``, ``owner/name@revision`` and the Hub's
page URLs (repo, ``/tree/<rev>``, ``/blob/<rev>/<file>``), fetched from the configured endpoint (the stand-in Hub).
A reference no source takes lists the accepted shapes (issue 18, item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imageworks_models.errors import AcquisitionError
from imageworks_models.testing import make_registry, run_cli
from imageworks_models_hf.remote import parse_reference
from safetensors.numpy import save as safetensors_save
import numpy as np

pytestmark = pytest.mark.usefixtures("imageworks_isolated")

CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "torch_dtype": "float16"}
END = "https://hub.example:8443"


def _weights(seed: int) -> bytes:
    return safetensors_save({"w": np.random.default_rng(seed).standard_normal(64).astype(np.float16)})


@pytest.fixture
def env(hub, tmp_path, monkeypatch):
    registry = Path(make_registry(tmp_path / "registry"))
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(registry))
    monkeypatch.setenv("IMAGEWORKS_WEIGHTS_ROOT", str(tmp_path / "weights"))
    monkeypatch.setenv("IMAGEWORKS_CACHE_DIR", str(tmp_path / "cache"))
    files = {"config.json": (json.dumps(CONFIG) + "\n").encode(), "model.safetensors": _weights(1),
             "extra.safetensors": _weights(2)}
    main = hub.add_repo("Qwen/Qwen2-VL-2B-Instruct", files)
    dev = hub.commit("Qwen/Qwen2-VL-2B-Instruct", {"config.json": (json.dumps({**CONFIG, "x": 1}) + "\n").encode()},
                     branch="dev")
    return hub, main, dev


@pytest.mark.parametrize("spec, expected", [
    ("Qwen/Qwen2-VL-2B-Instruct", ("Qwen/Qwen2-VL-2B-Instruct", "main", None)),
    ("Qwen/Qwen2-VL-2B-Instruct@v1.0", ("Qwen/Qwen2-VL-2B-Instruct", "v1.0", None)),
    (f"{END}/Qwen/Qwen2-VL-2B-Instruct", ("Qwen/Qwen2-VL-2B-Instruct", "main", None)),
    (f"{END}/Qwen/Qwen2-VL-2B-Instruct/", ("Qwen/Qwen2-VL-2B-Instruct", "main", None)),
    (f"{END}/Qwen/Qwen2-VL-2B-Instruct/tree/dev", ("Qwen/Qwen2-VL-2B-Instruct", "dev", None)),
    (f"{END}/Qwen/Qwen2-VL-2B-Instruct/tree/refs%2Fpr%2F1", ("Qwen/Qwen2-VL-2B-Instruct", "refs/pr/1", None)),
    (f"{END}/Qwen/Qwen2-VL-2B-Instruct/blob/main/sub/model.safetensors",
     ("Qwen/Qwen2-VL-2B-Instruct", "main", "sub/model.safetensors")),
    ("https://huggingface.co/Qwen/Qwen2-VL-2B-Instruct?x=1", ("Qwen/Qwen2-VL-2B-Instruct", "main", None)),
])
def test_parse_reference_reads_every_shape(spec, expected):
    assert parse_reference(spec, endpoint=END) == expected


@pytest.mark.parametrize("spec, message", [
    ("https://elsewhere.example/Qwen/Qwen2-VL-2B-Instruct", "is not the configured Hub"),
    (f"{END}/datasets/org/data", "is a dataset, not a model repo"),
    (f"{END}/Qwen", "no model repo"),
    (f"{END}/Qwen/Qwen2-VL-2B-Instruct/commits/main", "not a model page, revision or file URL"),
    ("Qwen/Qwen2 VL", "not a Hugging Face model id"),
])
def test_parse_reference_refuses_with_a_clear_line(spec, message):
    with pytest.raises(AcquisitionError, match=message):
        parse_reference(spec, endpoint=END)


def test_download_takes_a_hub_url_from_the_configured_endpoint(env):
    hub, main, _ = env
    result = run_cli("download", f"{hub.url}/Qwen/Qwen2-VL-2B-Instruct", "--json", prog="imageworks-download")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["repo_id"] == "Qwen/Qwen2-VL-2B-Instruct" and data["commit"] == main


def test_download_tree_url_takes_that_revision(env):
    hub, _, dev = env
    result = run_cli("download", f"{hub.url}/Qwen/Qwen2-VL-2B-Instruct/tree/dev", "--dry-run", "--json",
                     prog="imageworks-download")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["revision"] == "dev" and data["commit"] == dev


def test_download_blob_url_takes_that_file(env):
    hub, _, _ = env
    result = run_cli("download", f"{hub.url}/Qwen/Qwen2-VL-2B-Instruct/blob/main/extra.safetensors", "--dry-run",
                     "--json", prog="imageworks-download")
    assert result.exit_code == 0, result.stderr
    files = json.loads(result.stdout)["files"]
    assert "extra.safetensors" in files and "model.safetensors" not in files and "config.json" in files


def test_download_owner_name_at_revision(env):
    _, _, dev = env
    result = run_cli("download", "Qwen/Qwen2-VL-2B-Instruct@dev", "--dry-run", "--json", prog="imageworks-download")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["commit"] == dev


def test_a_reference_no_source_takes_lists_the_accepted_shapes(env):
    result = run_cli("download", "just-a-word", prog="imageworks-download")
    assert result.exit_code == 1
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "no installed source can download 'just-a-word'; accepted: owner/name (hf)" in line
    assert "https://<hub>/owner/name/blob/<revision>/<file> (hf)" in line
    assert "pip install" not in result.stderr  # the hf plugin is installed: no wrong plugin hint


def test_download_shows_a_progress_bar_on_a_terminal_and_none_in_a_pipe(hub, tmp_path):
    import os
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
    from ptyrun import run_in_pty

    big = safetensors_save({"w": np.zeros(16 << 20, dtype=np.float16)})  # 32 MiB
    hub.add_repo("org/big", {"config.json": (json.dumps(CONFIG) + "\n").encode(), "model.safetensors": big})
    exe = str(Path(sys.executable).with_name("imageworks-download"))
    env = {**os.environ, "HF_ENDPOINT": hub.url, "IMAGEWORKS_REGISTRY_DIR": make_registry(tmp_path / "reg"),
           "IMAGEWORKS_WEIGHTS_ROOT": str(tmp_path / "w1"), "IMAGEWORKS_USE_ARIA2": "0"}
    piped = subprocess.run([exe, "download", "org/big"], env=env, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stderr and "MiB/s" not in piped.stderr

    env.update(IMAGEWORKS_REGISTRY_DIR=make_registry(tmp_path / "reg2"), IMAGEWORKS_WEIGHTS_ROOT=str(tmp_path / "w2"))
    code, out = run_in_pty([exe, "download", "org/big"], columns=120, env=env)

    assert code == 0, out
    assert "\x1b[" in out and "MiB" in out and " MB" not in out
    assert "✅ Downloaded org/big@" in out
