"""Will it fit (issue 22): the KV-cache formula on the shapes of well-known models, weights from real
safetensors and GGUF headers, and the `fit` and `list --fits` commands against a stand-in nvidia-smi
(tests/standins/nvidia_smi.py, nvidia-smi's own query format) or this machine's RAM."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from imageworks_models.fit import kv_bytes, kv_bytes_per_token
from imageworks_models.fit.devices import Gpu, Inventory
from imageworks_models.fit.estimate import assess
from imageworks_models.formats.inspect import inspect_path
from imageworks_models.formats.memory import from_config
from imageworks_models.settings import load_settings
from imageworks_models.testing import make_registry, run_cli

NVIDIA_SMI = Path(__file__).resolve().parents[1] / "standins" / "nvidia_smi.py"
GIB, MIB = 1 << 30, 1 << 20

LLAMA_31_8B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
               "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
               "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}
GEMMA_3_4B = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
              "text_config": {"model_type": "gemma3_text", "hidden_size": 2560, "num_hidden_layers": 34,
                              "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                              "sliding_window": 1024, "sliding_window_pattern": 6,
                              "max_position_embeddings": 131072},
              "vision_config": {"hidden_size": 1152, "num_hidden_layers": 27}}
QWEN2_VL_2B = {"architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl", "hidden_size": 1536,
               "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
               "max_position_embeddings": 32768, "sliding_window": 32768, "use_sliding_window": False,
               "vision_config": {"depth": 32, "embed_dim": 1280}, "torch_dtype": "bfloat16"}
DEEPSEEK_V2_LITE = {"architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "hidden_size": 2048,
                    "num_hidden_layers": 27, "num_attention_heads": 16, "num_key_value_heads": 16,
                    "kv_lora_rank": 512, "qk_rope_head_dim": 64, "max_position_embeddings": 163840}


# -- the formula ---------------------------------------------------------------------------------------------


def test_llama_3_1_8b_takes_131072_bytes_per_token_in_fp16():
    facts = from_config(LLAMA_31_8B)
    assert (facts["layers"], facts["kv_heads"], facts["head_dim_k"]) == (32, 8, 128)
    assert kv_bytes_per_token(facts, 2) == 131_072 == 2 * 32 * 8 * 128 * 2
    assert kv_bytes(facts, 8192, 1, 2) == 131_072 * 8192
    assert kv_bytes(facts, 8192, 4, 1) == 131_072 // 2 * 8192 * 4  # fp8, four sequences


def test_gemma_sliding_window_layers_hold_at_most_their_window():
    facts = from_config(GEMMA_3_4B)
    assert facts["layers"] == 34 and facts["sliding_window"] == 1024
    assert facts["sliding_layers"] == 34 - 5  # every sixth layer attends globally: 5, 11, 17, 23, 29
    per_layer_token = 2 * 4 * 256 * 2
    assert kv_bytes(facts, 32768, 1, 2) == per_layer_token * (5 * 32768 + 29 * 1024)
    assert kv_bytes(facts, 512, 1, 2) == per_layer_token * 34 * 512  # below the window every layer holds all
    explicit = dict(GEMMA_3_4B["text_config"], layer_types=["sliding_attention"] * 29 + ["full_attention"] * 5)
    explicit.pop("sliding_window_pattern")
    assert from_config(explicit)["sliding_layers"] == 29


def test_qwen2_vl_counts_the_text_layers_and_ignores_a_window_it_does_not_use():
    facts = from_config(QWEN2_VL_2B)
    assert "sliding_layers" not in facts
    assert kv_bytes_per_token(facts, 2) == 2 * 28 * 2 * 128 * 2


def test_mla_caches_one_latent_per_token():
    facts = from_config(DEEPSEEK_V2_LITE)
    assert kv_bytes_per_token(facts, 2) == (512 + 64) * 2 * 27


# -- weights from real headers -------------------------------------------------------------------------------


def test_safetensors_weights_are_the_tensor_bytes_vision_tower_included(tmp_path):
    folder = tmp_path / "Qwen2-VL-tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(QWEN2_VL_2B))
    rng = np.random.default_rng(0)
    shard1 = {"model.embed_tokens.weight": rng.standard_normal((64, 32)).astype(np.float16),
              "model.layers.0.mlp.weight": rng.standard_normal((32, 32)).astype(np.float16)}
    shard2 = {"visual.blocks.0.attn.qkv.weight": rng.standard_normal((48, 16)).astype(np.float32),
              "visual.merger.mlp.0.bias": rng.standard_normal(16).astype(np.float32)}
    save_file(shard1, str(folder / "model-00001-of-00002.safetensors"))
    save_file(shard2, str(folder / "model-00002-of-00002.safetensors"))
    tensor_bytes = sum(a.nbytes for a in [*shard1.values(), *shard2.values()])

    memory = inspect_path(folder).details["memory"]

    assert abs(memory["weights_bytes"] - tensor_bytes) <= tensor_bytes * 0.01
    assert memory["weights_bytes"] == tensor_bytes
    assert memory["layers"] == 28 and memory["kv_heads"] == 2


def test_gguf_weights_are_the_tensor_bytes_of_quantized_tensors(tmp_path):
    path = tmp_path / "tiny-Q8_0.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_context_length(2048)
    data = np.random.default_rng(1).standard_normal((64, 256)).astype(np.float32)
    writer.add_tensor("blk.0.ffn_up.weight", gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0),
                      raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("token_embd.weight", data.astype(np.float16))
    writer.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reader = gguf.GGUFReader(str(path))
    tensor_bytes = sum(int(t.n_bytes) for t in reader.tensors)

    memory = inspect_path(path).details["memory"]

    assert memory["weights_bytes"] == tensor_bytes
    assert (memory["layers"], memory["kv_heads"], memory["head_dim_k"], memory["context_max"]) == (2, 2, 16, 2048)


# -- the verdict -----------------------------------------------------------------------------------------------


def facts_8b(weights=5 * GIB):
    return {**from_config(LLAMA_31_8B), "weights_bytes": weights}


def h100(free=80 * GIB, total=80 * GIB):
    return Inventory(gpus=[Gpu(0, "NVIDIA H100", total, free, total - free)], source="nvidia-smi",
                     ram_total_bytes=64 * GIB, ram_available_bytes=32 * GIB)


def test_vllm_fits_and_gives_its_flags():
    s = load_settings()
    f = assess({"name": "m", "backend": "vllm"}, settings=s, inventory=h100(), context=8192, facts=facts_8b())

    assert f.verdict == "fits"
    assert f.total_bytes == 5 * GIB + 131_072 * 8192 + s.fit_cuda_context_bytes + s.fit_runtime_bytes
    assert f.flags == ["--max-model-len", "8192", "--gpu-memory-utilization", "0.90"]
    assert f.largest_context == 131072  # the model's own limit comes first


def test_vllm_that_does_not_fit_names_the_shortfall_and_the_largest_context():
    s = load_settings()
    f = assess({"name": "m", "backend": "vllm"}, settings=s, inventory=h100(free=12 * GIB, total=16 * GIB),
               context=131072, facts=facts_8b())

    assert f.verdict == "does-not-fit" and "short" in f.reason
    budget = min(int(0.9 * 16 * GIB), 12 * GIB)
    room = budget - (5 * GIB + s.fit_cuda_context_bytes + s.fit_runtime_bytes)
    assert f.largest_context == room // 131_072
    assert f.flags[:2] == ["--max-model-len", str(f.largest_context)]


def test_llamacpp_offloads_layers_that_do_not_fit_the_gpu():
    s = load_settings()
    f = assess({"name": "m", "backend": "llamacpp"}, settings=s, inventory=h100(free=4 * GIB, total=8 * GIB),
               context=4096, facts=facts_8b())

    assert f.verdict == "fits-with-offload"
    assert 0 < f.gpu_layers < 32
    assert f.flags[:2] == ["-c", "4096"] and f.flags[2:4] == ["-ngl", str(f.gpu_layers)]


def test_without_a_gpu_a_cpu_engine_is_checked_against_ram_and_a_gpu_engine_cannot_tell():
    s = load_settings()
    none = Inventory(ram_total_bytes=16 * GIB, ram_available_bytes=12 * GIB, note="no GPU found (no NVML, no nvidia-smi)")
    cpu = assess({"name": "m", "backend": "ollama"}, settings=s, inventory=none, context=4096, facts=facts_8b())
    gpu = assess({"name": "m", "backend": "vllm"}, settings=s, inventory=none, context=4096, facts=facts_8b())

    assert cpu.verdict == "fits" and cpu.device == "cpu" and cpu.flags == ["num_ctx=4096"]
    assert gpu.verdict == "unknown" and "no GPU found" in gpu.reason


def test_a_measured_footprint_replaces_the_estimate_of_weights_and_overhead():
    s = load_settings()
    entry = {"name": "m", "backend": "vllm", "performance": {"footprints": [
        {"backend": "vllm", "context": 4096, "parallel": 1, "bytes": 9 * GIB, "device": "gpu",
         "load_seconds": 31.5, "measured_at": "2026-12-06T00:00:00Z"}]}}

    f = assess(entry, settings=s, inventory=h100(), context=8192, facts=facts_8b())

    assert f.estimate_from == "measured" and f.measured["bytes"] == 9 * GIB
    assert f.total_bytes == 9 * GIB + 131_072 * (8192 - 4096)


# -- the commands ----------------------------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path, monkeypatch):
    reg = tmp_path / "registry"
    folder = tmp_path / "weights" / "Llama-tiny"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(LLAMA_31_8B))
    save_file({"w": np.zeros((256, 256), dtype=np.float16)}, str(folder / "model.safetensors"))
    make_registry(reg, {"name": "llama-tiny", "backend": "vllm", "backend_config": {"model_path": str(folder)}},
                  {"name": "llama-tiny-cpp", "backend": "llamacpp", "backend_config": {"model_path": str(folder)}},
                  {"name": "no-files", "backend": "vllm"})
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", str(reg))
    monkeypatch.setenv("IMAGEWORKS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("IMAGEWORKS_NVIDIA_SMI_BIN", f"{sys.executable} {NVIDIA_SMI}")
    return reg


def gpu_machine(tmp_path, monkeypatch, total_mib: int, used_mib: int = 0):
    spec = tmp_path / "gpus.json"
    spec.write_text(json.dumps({"gpus": [{"name": "NVIDIA H100 80GB HBM3", "total_mib": total_mib,
                                          "used_mib": used_mib}]}))
    monkeypatch.setenv("STANDIN_NVIDIA_SMI", str(spec))


def test_fit_command_reads_the_gpu_from_nvidia_smi(registry, tmp_path, monkeypatch):
    gpu_machine(tmp_path, monkeypatch, 81559, 600)

    result = run_cli("fit", "llama-tiny", "--context", "16384", "--json")

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["inventory"]["source"] == "nvidia-smi"
    assert data["inventory"]["gpus"][0]["free_bytes"] == (81559 - 600) * MIB
    assert data["verdict"] == "fits" and data["device"] == "gpu 0 (NVIDIA H100 80GB HBM3)"
    assert data["weights_bytes"] == 256 * 256 * 2
    assert data["kv_bytes"] == 131_072 * 16384
    assert data["flags"][:2] == ["--max-model-len", "16384"]
    text = run_cli("fit", "llama-tiny", "--context", "16384")
    assert "fits" in text.stdout and "KV cache" in text.stdout and "largest context that fits: 131072" in text.stdout


def test_fit_command_on_a_small_gpu_says_does_not_fit(registry, tmp_path, monkeypatch):
    gpu_machine(tmp_path, monkeypatch, 4096)

    data = json.loads(run_cli("fit", "llama-tiny", "--json").stdout)

    assert data["verdict"] == "does-not-fit" and data["shortfall_bytes"] > 0
    assert data["largest_context"] is not None and data["largest_context"] < 131072


def test_fit_command_without_a_gpu_uses_ram_for_llamacpp(registry):
    data = json.loads(run_cli("fit", "llama-tiny-cpp", "--context", "2048", "--json").stdout)

    assert data["inventory"]["source"] == "none" and data["device"] == "cpu"
    assert data["verdict"] in ("fits", "does-not-fit") and data["flags"][:2] == ["-c", "2048"]


def test_fit_command_refuses_bad_options_in_one_line(registry):
    bad = run_cli("fit", "llama-tiny", "--kv-dtype", "fp7")
    assert bad.exit_code != 0 and "unknown KV cache dtype 'fp7'" in bad.stderr and "Traceback" not in bad.stderr
    gone = run_cli("fit", "llama-tiny", "--gpu", "3")
    assert gone.exit_code != 0 and "no GPU 3" in gone.stderr


def test_list_fits_adds_a_verdict_to_every_row(registry, tmp_path, monkeypatch):
    gpu_machine(tmp_path, monkeypatch, 81559)
    assert run_cli("scan", "--base", str(tmp_path / "weights")).exit_code == 0  # records the header facts

    rows = json.loads(run_cli("list", "--fits", "--include-non-installed", "--json").stdout)

    by = {r["name"]: r["fit"] for r in rows}
    assert by["llama-tiny"]["verdict"] == "fits"
    assert by["no-files"]["verdict"] == "unknown"
    plain = json.loads(run_cli("list", "--include-non-installed", "--json").stdout)
    assert all("fit" not in r for r in plain)  # the plain list does not pay for it
