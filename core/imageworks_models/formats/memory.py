"""The header facts a memory estimate needs (see ``core/imageworks_models/fit/``), read with the other
header facts at inspection time and cached with them: the weights' bytes as stored (quantized tensors
at their packed size, a vision tower or projector included) and the attention shape that sizes the KV
cache (layers, KV heads, head sizes, sliding-window layers, MLA latent size, the longest context).

Pure functions over parsed headers and config dicts; no file is opened here.
"""

from __future__ import annotations

from typing import Any

# ggml tensor types: (elements per block, bytes per block), as ggml.c defines them (GGML_QUANT_SIZES in
# the gguf package): a tensor of n elements of type t takes n / block * bytes.
GGML_BLOCKS: dict[str, tuple[int, int]] = {
    "F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "F64": (1, 8), "I8": (1, 1), "I16": (1, 2), "I32": (1, 4),
    "I64": (1, 8), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34),
    "Q8_1": (32, 36), "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144), "Q5_K": (256, 176),
    "Q6_K": (256, 210), "Q8_K": (256, 292), "IQ2_XXS": (256, 66), "IQ2_XS": (256, 74), "IQ3_XXS": (256, 98),
    "IQ1_S": (256, 50), "IQ4_NL": (32, 18), "IQ3_S": (256, 110), "IQ2_S": (256, 82), "IQ4_XS": (256, 136),
    "IQ1_M": (256, 56), "TQ1_0": (256, 54), "TQ2_0": (256, 66), "MXFP4": (32, 17),
}
# safetensors dtypes: bytes per element
SAFETENSORS_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
                     "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1, "F4": 0.5,
                     "F6_E2M3": 0.75, "F6_E3M2": 0.75}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def ggml_bytes(tensor_types: dict[str, int]) -> int | None:
    """Bytes of tensors given as element counts per ggml type; ``None`` when a type is unknown."""
    total = 0
    for kind, elements in tensor_types.items():
        block = GGML_BLOCKS.get(kind.upper())
        if block is None:
            return None
        total += -(-elements // block[0]) * block[1]
    return total


def from_gguf(metadata: dict[str, Any], tensor_types: dict[str, int]) -> dict[str, Any]:
    """Memory facts of one GGUF file (a model, or an ``mmproj`` projector: then only its bytes matter)."""
    out: dict[str, Any] = {"source": "gguf"}
    weights = ggml_bytes(tensor_types) if tensor_types else None
    if weights is not None:
        out["weights_bytes"] = weights
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str):
        return out

    def key(name: str) -> Any:
        return metadata.get(f"{arch}.{name}")

    layers = _int(key("block_count"))
    heads = _int(key("attention.head_count"))
    kv_heads = _int(key("attention.head_count_kv"))
    embd = _int(key("embedding_length"))
    head_k = _int(key("attention.key_length")) or (embd // heads if embd and heads else None)
    head_v = _int(key("attention.value_length")) or head_k
    facts = {"layers": layers, "kv_heads": kv_heads or heads, "head_dim_k": head_k, "head_dim_v": head_v,
             "context_max": _int(key("context_length")), "sliding_window": _int(key("attention.sliding_window")),
             "kv_lora_rank": _int(key("attention.kv_lora_rank")), "rope_dim": _int(key("rope.dimension_count"))}
    pattern = _int(key("attention.sliding_window_pattern"))
    if facts["sliding_window"] and layers:
        # llama.cpp's gemma-style pattern: every n-th layer is a full-attention layer, the rest slide
        if pattern and pattern > 1:
            facts["sliding_layers"] = layers - len(range(pattern - 1, layers, pattern))
        elif arch in ("gemma2",):
            facts["sliding_layers"] = layers // 2
    out.update({k: v for k, v in facts.items() if v is not None})
    return out


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a config (multimodal configs nest it under ``text_config``)."""
    text = config.get("text_config")
    if isinstance(text, dict) and _int(text.get("num_hidden_layers")):
        return {**config, **text}
    return config


def from_config(config: dict[str, Any]) -> dict[str, Any]:
    """KV-cache facts of a Hugging Face ``config.json``: grouped-query attention (``num_key_value_heads``),
    ``head_dim``, sliding-window layers (``layer_types`` or ``sliding_window_pattern``; Qwen2's
    ``use_sliding_window: false`` turns the window off), MLA (``kv_lora_rank`` + ``qk_rope_head_dim``)."""
    c = _text_config(config)
    layers = _int(c.get("num_hidden_layers"))
    heads = _int(c.get("num_attention_heads"))
    kv_heads = _int(c.get("num_key_value_heads")) or heads
    hidden = _int(c.get("hidden_size"))
    head = _int(c.get("head_dim")) or (hidden // heads if hidden and heads else None)
    out: dict[str, Any] = {"source": "config", "layers": layers, "kv_heads": kv_heads, "head_dim_k": head,
                           "head_dim_v": _int(c.get("v_head_dim")) or head,
                           "context_max": _int(c.get("max_position_embeddings"))}
    window = _int(c.get("sliding_window"))
    if window and c.get("use_sliding_window") is not False and layers:
        types = c.get("layer_types")
        pattern = _int(c.get("sliding_window_pattern"))
        if isinstance(types, list) and types:
            sliding = sum(1 for t in types[:layers] if t == "sliding_attention")
        elif pattern and pattern > 1:
            sliding = layers - len(range(pattern - 1, layers, pattern))
        elif c.get("model_type") in ("mistral",) or c.get("use_sliding_window") is True:
            sliding = layers if c.get("max_window_layers") is None else \
                max(0, layers - int(c.get("max_window_layers") or 0))
        else:
            sliding = 0
        if sliding:
            out["sliding_window"], out["sliding_layers"] = window, sliding
    lora = _int(c.get("kv_lora_rank"))
    if lora:
        out["kv_lora_rank"] = lora
        out["rope_dim"] = _int(c.get("qk_rope_head_dim")) or 0
    return {k: v for k, v in out.items() if v is not None}


def safetensors_bytes(header_size: int, file_size: int) -> int:
    """Tensor data bytes of a safetensors file: all of it after the 8-byte length and the JSON header."""
    return max(0, file_size - 8 - header_size)
