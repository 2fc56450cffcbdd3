"""The built-in ``inspect_artifact``: what a model file or folder is, from its headers alone.

A scan may meet dozens of multi-gigabyte folders, half-finished downloads, git-LFS pointers and
files from strangers, so this never reads tensor data (about 1 MiB of header per GGUF file, plus the
walk over its tokenizer arrays; a safetensors header is read as long as it declares, up to 100 MB)
and never raises for a bad file: each becomes one line in ``ArtifactInfo.errors`` naming the file,
and everything readable is still reported. Facts are taken from the files only (the folder's name
proves nothing), and ``None`` means "not known".
"""

from __future__ import annotations

import os

import re
from collections import Counter
from pathlib import Path
from typing import Any

from imageworks_models.errors import ArtifactFormatError
from imageworks_models.plugin.records import ArtifactInfo
from imageworks_models.formats.gguf import GGUFHeader, quant_name, read_gguf_header
from imageworks_models.formats import memory
from imageworks_models.formats.hfconfig import quantization, read_json, torch_dtype, vision_signals
from imageworks_models.formats.safetensors import SafetensorsHeader, read_safetensors_header, read_safetensors_index
from imageworks_models.formats.layout import LFS_POINTER_PREFIX, is_lfs_pointer  # noqa: F401 - re-exported: part of this module's API
from imageworks_models.formats.templates import find_chat_template, gguf_chat_template

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
# pickle files a training run leaves beside the weights; they are not weights
_NOT_WEIGHTS = re.compile(r"^(training_args\.bin|optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state.*\.pth)$")
_PICKLE_WEIGHT_NAMES = re.compile(r"^(pytorch_model.*\.bin|consolidated.*\.pth)$")
_GGUF_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$")
_DTYPE_NAMES = {
    "BF16": "bf16", "F16": "fp16", "F32": "fp32", "F64": "fp64", "F8_E4M3": "fp8", "F8_E5M2": "fp8",
    "F4": "fp4", "I8": "int8", "U8": "uint8", "I16": "int16", "I32": "int32", "I64": "int64",
}
_TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32",
                 "float64": "fp64", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}
_FORMAT_OF_METHOD = {"bitsandbytes": "bnb"}
_TEXT_HEADS = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel", "ForImageTextToText", "ForVision2Seq")
_TOOLS_RE = re.compile(r"\btools\b")
_LFS_LINE = "a git-LFS pointer, not the weights (fetch them with git lfs pull)"


def _family(meta: dict[str, object]) -> str | None:
    for key in ("general.basename", "general.name"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return "-".join(value.strip().lower().split())
    return None


def _template_capabilities(text: str | None) -> set[str]:
    caps: set[str] = set()
    if text:
        if _TOOLS_RE.search(text):
            caps.add("tools")
        if "<think>" in text or "enable_thinking" in text:
            caps.add("thinking")
    return caps


def _public_template(template: dict | None) -> dict | None:
    return None if template is None else {k: v for k, v in template.items() if k != "text"}


class _Gguf:
    """One GGUF file's summary, shared by the file and folder inspections."""

    def __init__(self, header: GGUFHeader, rel: str):
        meta = header.metadata
        self.rel = rel
        self.header = header
        arch = meta.get("general.architecture")
        self.arch = arch if isinstance(arch, str) else None
        self.mmproj = meta.get("general.type") == "mmproj" or self.arch == "clip" or \
            meta.get("clip.has_vision_encoder") is True
        quant = quant_name(header)
        self.file_type = quant
        self.quantization = quant.lower() if quant else None
        self.family = _family(meta)
        self.template = gguf_chat_template(header, rel)
        ctx = meta.get(f"{self.arch}.context_length") if self.arch else None
        self.context_length = ctx if isinstance(ctx, int) and not isinstance(ctx, bool) else None
        name = meta.get("general.name")
        self.name = name if isinstance(name, str) else None
        split, split_no = meta.get("split.count"), meta.get("split.no")
        self.split_count = split if isinstance(split, int) and split > 1 else 1
        # llama.cpp's gguf-split writes the model's metadata into the first split only
        self.first = not (self.split_count > 1 and isinstance(split_no, int) and split_no > 0)

    def capabilities(self) -> set[str]:
        meta = self.header.metadata
        if not self.mmproj:
            return {"text"} | _template_capabilities(self.template and self.template["text"])
        caps: set[str] = set()
        audio = meta.get("clip.has_audio_encoder") is True
        vision = meta.get("clip.has_vision_encoder")
        # an mmproj without the flag predates audio projectors: they were all vision
        if vision is True or (vision is None and not audio):
            caps.add("vision")
        if audio:
            caps.add("audio")
        return caps

    def details(self) -> dict[str, Any]:
        return {"architecture": self.arch, "name": self.name, "file_type": self.file_type,
                "context_length": self.context_length, "mmproj": self.mmproj}


def _line(rel: str, exc: ArtifactFormatError) -> str:
    return f"{rel}: {exc.cause}"


def inspect_path(path) -> ArtifactInfo | None:
    """Identify a model file or folder from its headers.

    Args:
        path: a ``.gguf`` or ``.safetensors`` file, or a Hugging Face model folder.

    Returns:
        An :class:`~imageworks_models.plugin.records.ArtifactInfo` (unreadable files are listed in its
        ``errors``, one line each), or ``None`` when ``path`` is not a model this recognises (a folder
        without a model config or weights, another kind of file, a missing path).
    """
    path = Path(path)
    try:
        if path.is_dir():
            return _inspect_folder(path)
        if path.is_file():
            suffix = path.suffix.lower()
            if suffix == ".gguf":
                return _inspect_gguf_file(path)
            if suffix == ".safetensors":
                return _inspect_safetensors_file(path)
    except OSError:  # the folder vanished or cannot be listed while we looked
        return None
    return None


def _inspect_gguf_file(path: Path) -> ArtifactInfo:
    if is_lfs_pointer(path):
        return ArtifactInfo(format="gguf", details={"lfs_pointers": [path.name]}, errors=(f"{path.name}: {_LFS_LINE}",))
    try:
        g = _Gguf(read_gguf_header(path), path.name)
    except ArtifactFormatError as exc:
        return ArtifactInfo(format="gguf", errors=(_line(path.name, exc),))
    details = g.details()
    details["memory"] = memory.from_gguf(g.header.metadata, g.header.tensor_types)
    return ArtifactInfo(format="gguf", quantization=g.quantization, family=g.family,
                        parameter_count=g.header.parameter_count, capabilities=frozenset(g.capabilities()),
                        chat_template=_public_template(g.template), details=details)


def _dtype_quantization(dtypes: dict[str, int]) -> str | None:
    if not dtypes:
        return None
    top = max(dtypes.items(), key=lambda item: (item[1], item[0]))[0]
    return _DTYPE_NAMES.get(top, top.lower())


def _inspect_safetensors_file(path: Path) -> ArtifactInfo:
    if is_lfs_pointer(path):
        return ArtifactInfo(format="safetensors", details={"lfs_pointers": [path.name]},
                            errors=(f"{path.name}: {_LFS_LINE}",))
    try:
        header = read_safetensors_header(path)
    except ArtifactFormatError as exc:
        return ArtifactInfo(format="safetensors", errors=(_line(path.name, exc),))
    return ArtifactInfo(format="safetensors", quantization=_dtype_quantization(header.dtypes),
                        parameter_count=header.parameter_count,
                        details={"dtypes": dict(header.dtypes), "tensor_count": len(header.tensors),
                                 "parameter_count_basis": "tensor elements",
                                 "memory": {"source": "safetensors", "weights_bytes": memory.safetensors_bytes(
                                     header.header_size, path.stat().st_size)}})


def _is_embedding(names: set[str], architectures: list[str], headers: dict[str, SafetensorsHeader]) -> bool:
    """``names``: the regular files in the model folder (its listing, made once)."""
    if "modules.json" in names:  # sentence-transformers
        return True
    if not architectures:
        return False
    if all(a.endswith("Model") and not a.endswith("LMHeadModel") for a in architectures):
        return True
    if all(a.endswith("ForMaskedLM") for a in architectures) and headers:
        # a masked-LM checkpoint saved without its prediction head is an encoder
        return not any(name.startswith(("lm_head.", "cls.predictions."))
                       for h in headers.values() for name in h.tensors)
    return False


def _inspect_folder(folder: Path) -> ArtifactInfo | None:
    errors: list[str] = []
    details: dict[str, Any] = {}
    # scandir's d_type answers is_file() without a stat per file (a scan inspects thousands of folders)
    with os.scandir(folder) as it:
        files = sorted(Path(e.path) for e in it if e.is_file())
    names = {p.name for p in files}

    config: dict = {}
    config_broken = False
    if "config.json" in names:
        try:
            config = read_json(folder / "config.json")
        except ArtifactFormatError as exc:
            errors.append(_line("config.json", exc))
            config_broken = True

    safetensors = [p for p in files if p.name.endswith(".safetensors")]
    ggufs = [p for p in files if p.name.lower().endswith(".gguf")]
    pickles = [p for p in files if p.name.lower().endswith(_PICKLE_SUFFIXES) and not _NOT_WEIGHTS.match(p.name)]
    indexes = [p for p in files if p.name.endswith((".safetensors.index.json", ".bin.index.json"))]

    missing: list[str] = []
    for index in indexes:
        try:
            shards = read_safetensors_index(index)["shards"]
        except ArtifactFormatError as exc:
            errors.append(_line(index.name, exc))
            continue
        for shard in shards:
            shard_path = folder / shard
            if not (shard in names if "/" not in shard and "\\" not in shard else shard_path.is_file()):
                missing.append(shard)
                errors.append(f"{index.name}: the shard {shard} is missing")
            elif shard_path.parent != folder:  # shards in a subfolder are weights too
                bucket = safetensors if shard.endswith(".safetensors") else pickles
                if shard_path not in bucket:
                    bucket.append(shard_path)

    model_config = bool(config.get("model_type") or config.get("architectures"))
    # ".bin" and ".pt" say little on their own (any program writes them): without a model config they
    # count only under the names transformers and Meta give their checkpoints
    known_pickles = any(_PICKLE_WEIGHT_NAMES.match(p.name) for p in pickles)
    if not (safetensors or ggufs or indexes or model_config or config_broken or known_pickles
            or "modules.json" in names):
        return None

    def rel(p: Path) -> str:
        return p.relative_to(folder).as_posix()

    lfs: list[str] = []

    def pointer(p: Path) -> bool:
        if is_lfs_pointer(p):
            lfs.append(rel(p))
            errors.append(f"{rel(p)}: {_LFS_LINE}")
            return True
        return False

    headers: dict[str, SafetensorsHeader] = {}
    header_failed = False
    for p in safetensors:
        if pointer(p):
            header_failed = True
            continue
        try:
            headers[rel(p)] = read_safetensors_header(p)
        except ArtifactFormatError as exc:
            errors.append(_line(rel(p), exc))
            header_failed = True

    gguf_infos: list[_Gguf] = []
    for p in ggufs:
        if pointer(p):
            continue
        try:
            gguf_infos.append(_Gguf(read_gguf_header(p), rel(p)))
        except ArtifactFormatError as exc:
            errors.append(_line(rel(p), exc))
    for p in pickles:
        pointer(p)

    weight_files = sorted(rel(p) for p in [*safetensors, *ggufs, *pickles])
    main_ggufs = [g for g in gguf_infos if not g.mmproj]

    # -- format and quantization ---------------------------------------------------------------------
    quant = quantization(config) if config else {}
    details["quant_method"] = quant.get("method")
    details["bits"] = quant.get("bits")
    details["group_size"] = quant.get("group_size")
    dtype = torch_dtype(config) if config else None
    details["torch_dtype"] = dtype
    dtypes: Counter[str] = Counter()
    for h in headers.values():
        dtypes.update(h.dtypes)
    gguf_quants = sorted({g.quantization for g in main_ggufs if g.quantization and g.first})

    fmt: str | None
    if quant:
        fmt = _FORMAT_OF_METHOD.get(quant["method"], quant["method"])
        quant_label: str | None = fmt
    elif safetensors:
        fmt, quant_label = "safetensors", _dtype_quantization(dict(dtypes))
    elif ggufs:
        fmt, quant_label = "gguf", gguf_quants[0] if len(gguf_quants) == 1 else None
    elif pickles:
        fmt, quant_label = "pytorch", None
    else:
        fmt, quant_label = None, None
    if quant_label is None and dtype and not quant:
        quant_label = _TORCH_DTYPES.get(dtype.lower())
    if pickles and not safetensors and not ggufs:
        details["pickle"] = True  # torch.load of these runs code from the file

    # -- parameter count -----------------------------------------------------------------------------
    parameter_count: int | None = None
    if safetensors and not header_failed and not missing:
        parameter_count = sum(h.parameter_count for h in headers.values())
        packed = bool(quant) and (quant.get("bits") is None or quant["bits"] < 8)
        details["parameter_count_basis"] = (
            "stored tensor elements: the quantized weights are packed several to an element, so this is "
            "below the model's real parameter count" if packed else "tensor elements")
    elif not safetensors and main_ggufs:
        parameter_count = _gguf_parameter_count(main_ggufs)
        if parameter_count is not None:
            details["parameter_count_basis"] = "gguf tensor elements (logical shapes, before quantization)"

    # -- family, capabilities, template --------------------------------------------------------------
    family = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    family = family.lower() if family else next((g.family for g in main_ggufs if g.family), None)
    architectures = [a for a in config.get("architectures") or [] if isinstance(a, str)] \
        if isinstance(config.get("architectures"), list) else []

    template: dict | None = None
    try:
        template = find_chat_template(folder, names=names)
    except ArtifactFormatError as exc:
        errors.append(_line(Path(exc.path).name, exc))
    if template is None:
        template = next((g.template for g in main_ggufs if g.template), None)

    caps: set[str] = set()
    if _is_embedding(names, architectures, headers):
        caps.add("embedding")
    elif any(a.endswith(_TEXT_HEADS) for a in architectures) or (main_ggufs and not architectures):
        caps.add("text")
    signals = vision_signals(folder, config)
    signals += [f"{g.rel}: mmproj" for g in gguf_infos if g.mmproj and "vision" in g.capabilities()]
    if signals:
        caps.add("vision")
        details["vision_signals"] = signals
    if "text" in caps:
        caps |= _template_capabilities(template and template.get("text"))

    details["architectures"] = architectures or None
    details["weight_files"] = weight_files
    details["lfs_pointers"] = lfs or None
    details["missing_shards"] = missing or None
    if gguf_infos:
        details["gguf_files"] = [{"file": g.rel, "quantization": g.quantization, "mmproj": g.mmproj,
                                  "parameter_count": g.header.parameter_count} for g in gguf_infos]
    if dtypes:
        details["dtypes"] = dict(dtypes)
    details["memory"] = _folder_memory(folder, config, headers, main_ggufs, gguf_infos) or None
    return ArtifactInfo(format=fmt, quantization=quant_label, family=family, parameter_count=parameter_count,
                        capabilities=frozenset(caps), chat_template=_public_template(template),
                        details={k: v for k, v in details.items() if v is not None}, errors=tuple(errors))


def _folder_memory(folder: Path, config: dict | None, headers: dict[str, SafetensorsHeader],
                   main: list["_Gguf"], all_ggufs: list["_Gguf"]) -> dict[str, Any]:
    """Memory facts of a model folder: the config's attention shape (else the one GGUF model's), and the
    bytes of its safetensors shards or of its one GGUF model's parts plus its projector."""
    out: dict[str, Any] = memory.from_config(config) if config else {}
    if headers:
        total = 0
        for rel_name, h in headers.items():
            try:
                total += memory.safetensors_bytes(h.header_size, (folder / rel_name).stat().st_size)
            except OSError:
                return out
        out["weights_bytes"] = total
    elif main and len({g.quantization for g in main}) == 1:
        first = next((g for g in main if g.first), main[0])
        facts = memory.from_gguf(first.header.metadata, first.header.tensor_types)
        parts = [memory.ggml_bytes(g.header.tensor_types) for g in main]
        projector = [memory.ggml_bytes(g.header.tensor_types) for g in all_ggufs if g.mmproj]
        out = {**facts, **{k: v for k, v in out.items() if k != "source"}} if not out.get("layers") else out
        if None not in parts:
            out["weights_bytes"] = sum(parts) + sum(p for p in projector if p)
        if projector and None not in projector:
            out["projector_bytes"] = sum(projector)
    return out


def _gguf_parameter_count(main: list[_Gguf]) -> int | None:
    """The model's parameter count from its GGUF files: one quant's file, or the sum of one split set.

    Several quants of one model in a folder have the same count; a split model (``-00001-of-00003``)
    spreads its tensors over the files of one set.
    """
    groups: dict[str, list[_Gguf]] = {}
    for g in main:
        groups.setdefault(_GGUF_SPLIT.sub("", g.rel), []).append(g)
    for members in groups.values():
        counts = [g.header.parameter_count for g in members]
        complete = len(members) == max(g.split_count for g in members)  # a missing split: no count
        if complete and all(c is not None for c in counts):
            return sum(counts)  # type: ignore[arg-type]
    return None



def format_from_config(config: dict, dtypes: dict[str, int] | None = None) -> tuple[str, str | None]:
    """``(format, quantization)`` a safetensors model folder will be inspected as, known before its weights are
    here: the quantization method of ``config`` (``awq``, ``gptq``...), else ``safetensors`` and the dtype
    holding most parameters (``dtypes``, e.g. the Hub's ``{"BF16": n}``), else the config's checkpoint dtype."""
    quant = quantization(config) if config else {}
    if quant:
        fmt = _FORMAT_OF_METHOD.get(quant["method"], quant["method"])
        return fmt, fmt
    label = _dtype_quantization(dict(dtypes)) if dtypes else None
    dtype = torch_dtype(config) if config else None
    return "safetensors", label or (_TORCH_DTYPES.get(dtype.lower()) if dtype else None)
