"""The memory preflight of activate-model (issue 22) against the stand-in vLLM server and a stand-in
nvidia-smi (tests/standins/nvidia_smi.py): a model that will not fit is refused before anything starts,
--force starts it anyway, --dry-run shows the estimate, and a started server's footprint is measured and
used by later estimates."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from orchestration import Orchestration, entry
from safetensors.numpy import save_file

NVIDIA_SMI = Path(__file__).resolve().parents[1] / "standins" / "nvidia_smi.py"
CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
          "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072}


@pytest.fixture
def setup(imageworks_isolated, tmp_path, monkeypatch):
    weights = tmp_path / "weights" / "model"
    orch = Orchestration(tmp_path, monkeypatch,
                         entry("big", weights, backend_config={"extra_args": ["--max-model-len", "131072"]}),
                         entry("small", weights, backend_config={"extra_args": ["--max-model-len", "1024"]}))
    (weights / "config.json").write_text(json.dumps(CONFIG))  # after Orchestration, which writes an empty one
    save_file({"w": np.zeros((512, 512), dtype=np.float16)}, str(weights / "model.safetensors"))
    monkeypatch.setenv("IMAGEWORKS_NVIDIA_SMI_BIN", f"{sys.executable} {NVIDIA_SMI}")
    spec = tmp_path / "gpus.json"
    # 8 GiB card: 131072 tokens of this shape need 16 GiB of KV cache alone; 1024 tokens need 128 MiB
    spec.write_text(json.dumps({"gpus": [{"name": "NVIDIA L4", "total_mib": 8192, "used_mib": 0}]}))
    monkeypatch.setenv("STANDIN_NVIDIA_SMI", str(spec))
    yield orch
    left = orch.cleanup()
    assert not left, f"stand-in processes left running: {left}"


def test_a_model_that_will_not_fit_is_refused_before_anything_starts(setup):
    result = setup.cli("activate-model", "big")

    assert result.returncode == 1, result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "big will not fit" in line and "short" in line and "the largest context that fits is" in line
    assert "--force" in result.stderr
    assert setup.state() is None and setup.server_pids() == []


def test_force_starts_it_anyway(setup):
    result = setup.cli("activate-model", "big", "--force")

    assert result.returncode == 0, result.stderr
    assert setup.state()["status"] == "ready"


def test_the_dry_run_shows_the_estimate(setup):
    result = setup.cli("activate-model", "big", "--dry-run", "--json")

    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["fit"]["verdict"] == "does-not-fit" and plan["fit"]["context"] == 131072, plan["fit"]
    text = setup.cli("activate-model", "big", "--dry-run")
    assert "memory: does-not-fit" in text.stdout and "largest context" in text.stdout


def test_a_started_server_has_its_footprint_measured_and_used(setup):
    result = setup.cli("activate-model", "small")
    assert result.returncode == 0, result.stderr

    discovered = json.loads((setup.registry / "model_registry.discovered.json").read_text())
    [part] = [e for e in discovered["entries"] if e["name"] == "small"]
    [footprint] = part["performance"]["footprints"]
    assert footprint["backend"] == "vllm" and footprint["context"] == 1024 and footprint["device"] == "cpu"
    assert footprint["bytes"] > 1 << 20  # the stand-in server's resident memory, read from /proc
    assert footprint["load_seconds"] is not None and footprint["load_seconds"] >= 0

    fit = json.loads(setup.cli("fit", "small", "--json", prog="imageworks-models").stdout)
    assert fit["estimate_from"] == "measured" and fit["measured"]["bytes"] == footprint["bytes"]
    assert fit["inventory"]["ours_bytes"]["ram"] > 1 << 20  # what the live server holds, read from /proc now
