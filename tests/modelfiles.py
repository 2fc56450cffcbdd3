"""Small real model files for tests: a BF16 safetensors file and a GGUF file, written with the real formats."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import save_file


def write_bf16(path: Path) -> None:
    """A valid safetensors file holding one 4x4 BF16 tensor (zeros), header padded to 8 bytes."""
    header = {"__metadata__": {"format": "pt"}, "w": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 32]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(32))


def write_gguf(path: Path, file_type: int, *, chat_template: bool = True) -> None:
    """A valid qwen3 GGUF file with ``general.file_type`` set (15 = Q4_K_M) and, by default, a chat template."""
    w = gguf.GGUFWriter(str(path), "qwen3")
    w.add_name("Qwen3 8B")
    w.add_file_type(file_type)
    if chat_template:
        w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_tensor("token_embd.weight", np.ones((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_models(root: Path, *, gguf_template: bool = True) -> dict[str, Path]:
    """Four models under ``root``: bf16 safetensors with a template, AWQ, a vision model, and a GGUF file
    (``{"bf16", "awq", "vlm", "gguf"}`` -> path)."""
    models = {}
    bf16 = root / "Qwen3-4B"
    bf16.mkdir(parents=True)
    (bf16 / "config.json").write_text(json.dumps({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                                                  "torch_dtype": "bfloat16"}))
    write_bf16(bf16 / "model.safetensors")
    (bf16 / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ tools }}<think>"}))
    models["bf16"] = bf16
    awq = root / "Mistral-7B-Instruct-AWQ"
    awq.mkdir()
    (awq / "config.json").write_text(json.dumps({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                                                 "quantization_config": {"quant_method": "awq", "bits": 4,
                                                                         "group_size": 128}}))
    save_file({"qweight": np.zeros((4, 2), dtype=np.int32), "scales": np.zeros((1, 8), dtype=np.float16)},
              str(awq / "model.safetensors"), metadata={"format": "pt"})
    models["awq"] = awq
    vlm = root / "Qwen2.5-VL-3B-Instruct"
    vlm.mkdir()
    (vlm / "config.json").write_text(json.dumps({"architectures": ["Qwen2_5_VLForConditionalGeneration"],
                                                 "model_type": "qwen2_5_vl", "torch_dtype": "bfloat16",
                                                 "vision_config": {"depth": 1, "patch_size": 14}}))
    (vlm / "preprocessor_config.json").write_text(json.dumps({"patch_size": 14, "min_pixels": 3136}))
    write_bf16(vlm / "model.safetensors")
    models["vlm"] = vlm
    write_gguf(root / "Qwen3-8B-Q4_K_M.gguf", 15, chat_template=gguf_template)
    models["gguf"] = root / "Qwen3-8B-Q4_K_M.gguf"
    return models
