"""Reading a Hugging Face model folder's JSON files: config, quantization and vision signals.

``config.json`` decides how a folder is served (architecture, dtype, quantization method), so it is
read strictly: bounded size, UTF-8, duplicate keys refused. A file starting with a UTF-8 byte-order
mark is refused rather than stripped, because transformers itself fails to load such a config; calling
the folder usable would be wrong.

Capabilities are derived only from real signals in the files, never from the folder or repository
name ("vision" in a name says nothing about the weights present).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imageworks_models.errors import ArtifactFormatError
from imageworks_models.formats._util import loads_strict, read_bounded

# quant_method spellings seen in the wild -> one name
_METHOD_ALIASES = {"compressed_tensors": "compressed-tensors", "bnb": "bitsandbytes"}
# the processor files that describe image (or video) inputs; audio feature extractors use the same
# file name, so the content is checked too
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json")
_IMAGE_KEYS = {"patch_size", "crop_size", "min_pixels", "max_pixels", "do_convert_rgb"}


def read_json(path, *, max_bytes: int = 16 << 20) -> dict:
    """Read a JSON object from a small file, strictly.

    Args:
        path: the file (``config.json``, ``tokenizer_config.json``...).
        max_bytes: refuse larger files without reading them whole.

    Returns:
        The decoded object.

    Raises:
        ArtifactFormatError: the file cannot be read, is larger than ``max_bytes``, starts with a UTF-8
            byte-order mark (refused, see the module docstring), is not UTF-8 or not JSON, repeats a
            key, or is not a JSON object.
    """
    value = loads_strict(read_bounded(path, max_bytes), path)
    if not isinstance(value, dict):
        raise ArtifactFormatError(path, f"expected a JSON object, found a JSON {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _quant_config(config: dict) -> dict | None:
    # multimodal configs sometimes keep it in text_config only
    for holder in (config, config.get("text_config")):
        if isinstance(holder, dict):
            for key in ("quantization_config", "compression_config"):
                qc = holder.get(key)
                if isinstance(qc, dict) and qc:
                    return qc
    return None


def quantization(config: dict) -> dict:
    """How the weights of a Hugging Face model are quantized, from its ``config.json``.

    Reads ``quantization_config`` (or the older ``compression_config``, also under ``text_config``),
    bitsandbytes' ``load_in_4bit``/``load_in_8bit``, compressed-tensors ``config_groups``, and MLX's
    top-level ``quantization``.

    Args:
        config: the decoded ``config.json``.

    Returns:
        ``{"method": str, "bits": int | None, "group_size": int | None}`` (method one of ``awq``,
        ``gptq``, ``bitsandbytes``, ``fp8``, ``compressed-tensors``, ``mxfp4``, ``mlx`` or another
        ``quant_method`` as written, lower-case), or ``{}`` when the weights are not quantized.
    """
    qc = _quant_config(config)
    if qc is None:
        mlx = config.get("quantization")
        if isinstance(mlx, dict) and _int(mlx.get("bits")) is not None:
            return {"method": "mlx", "bits": _int(mlx.get("bits")), "group_size": _int(mlx.get("group_size"))}
        return {}
    method = qc.get("quant_method")
    method = method.strip().lower() if isinstance(method, str) else None
    method = _METHOD_ALIASES.get(method, method) if method else None
    if method is None:
        if qc.get("load_in_4bit") is True or qc.get("load_in_8bit") is True:
            method = "bitsandbytes"
        elif isinstance(qc.get("config_groups"), dict):
            method = "compressed-tensors"
        else:
            return {}
    bits = _int(qc.get("bits"))
    if bits is None:
        bits = _int(qc.get("w_bit"))  # AutoAWQ's older spelling
    group_size = _int(qc.get("group_size"))
    if group_size is None:
        group_size = _int(qc.get("q_group_size"))
    if method == "bitsandbytes":
        bits = 4 if qc.get("load_in_4bit") is True else 8 if qc.get("load_in_8bit") is True else bits
    elif method == "fp8":
        bits = 8
    elif method == "mxfp4":
        bits, group_size = 4, 32  # the OCP MX format: 32-element blocks sharing one scale
    elif method == "compressed-tensors":
        groups = qc.get("config_groups")
        if isinstance(groups, dict):
            for name in sorted(groups):
                weights = groups[name].get("weights") if isinstance(groups[name], dict) else None
                if isinstance(weights, dict):
                    bits = _int(weights.get("num_bits"))
                    group_size = _int(weights.get("group_size"))
                    break
    return {"method": method, "bits": bits, "group_size": group_size}


def _describes_images(data: dict) -> bool:
    return any(("image" in key or "video" in key or key in _IMAGE_KEYS) for key in data)


def vision_signals(folder, config: dict) -> list[str]:
    """The evidence that a Hugging Face model folder takes images, one line per signal.

    Signals: a ``vision_config`` (or ``visual`` / ``vision_tower`` / ``mm_vision_tower``) in the config;
    an image-to-text head in ``architectures`` (``...ForImageTextToText``, ``...ForVision2Seq``, or
    ``...ForConditionalGeneration`` together with a vision config); a processor file describing image or
    video inputs (audio feature extractors use the same file names and are not counted). The folder's
    name is never used.

    Args:
        folder: the model folder.
        config: its decoded ``config.json`` (``{}`` if it has none).

    Returns:
        The signals found, e.g. ``["config.json: vision_config", "preprocessor_config.json: image
        processor"]``; empty when there is none.
    """
    folder = Path(folder)
    signals: list[str] = []
    vision_keys = [k for k in ("vision_config", "visual", "vision_tower", "mm_vision_tower")
                   if isinstance(config.get(k), (dict, str)) and config.get(k)]
    signals += [f"config.json: {k}" for k in vision_keys]
    architectures = config.get("architectures")
    for arch in architectures if isinstance(architectures, list) else []:
        if not isinstance(arch, str):
            continue
        if "ForImageTextToText" in arch or "ForVision2Seq" in arch:
            signals.append(f"architecture {arch}")
        elif "ForConditionalGeneration" in arch and vision_keys:
            signals.append(f"architecture {arch} with a vision config")
    for name in _PROCESSOR_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = read_json(path, max_bytes=1 << 20)
        except ArtifactFormatError:
            continue  # an unreadable processor file is reported by whoever reads it; it proves nothing
        if _describes_images(data):
            signals.append(f"{name}: image processor")
    return signals


def torch_dtype(config: dict) -> str | None:
    """The checkpoint dtype named in the config (``torch_dtype``, or ``dtype`` in newer transformers)."""
    for holder in (config, config.get("text_config")):
        if isinstance(holder, dict):
            for key in ("torch_dtype", "dtype"):
                value: Any = holder.get(key)
                if isinstance(value, str) and value:
                    return value
    return None
