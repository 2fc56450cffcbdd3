"""Small real model files for tests: a BF16 safetensors file and a GGUF file, written with the real formats."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import gguf
import numpy as np


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
