"""A bounded safetensors header reader, and the shard index (``model.safetensors.index.json``).

A safetensors file is an 8-byte little-endian header length, that many bytes of JSON, then the tensor
data. The length is the one field a truncated download, a git-LFS pointer or a hostile file gets
wrong, so it is checked against the file size and ``max_header`` before anything is read; the JSON is
then read in one piece, decoded strictly (UTF-8, duplicate keys refused) and every tensor's dtype,
shape and ``data_offsets`` are checked against the data section, as the ``safetensors`` library does
when it loads. Nothing past the header is read.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field

from imageworks_models.errors import ArtifactFormatError
from imageworks_models.formats._util import format_length as _size, loads_strict, read_open
from imageworks_models.formats.hfconfig import read_json

# bits per element; the safetensors library's Dtype list. Unknown dtypes are kept (new ones appear)
# but their byte sizes cannot be checked.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}
_DTYPE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
_HINT_TRUNCATED = "the file is incomplete or damaged: download it again"


@dataclass(frozen=True)
class SafetensorsHeader:
    """What :func:`read_safetensors_header` learned.

    Attributes:
        metadata: the ``__metadata__`` strings (e.g. ``{"format": "pt"}``).
        tensors: ``{name: (dtype, shape)}``.
        parameter_count: the sum of every tensor's element count.
        dtypes: element count per dtype, e.g. ``{"BF16": 7_000_000_000, "F32": 4096}``.
        header_size: the declared JSON header length in bytes (the data starts at ``8 + header_size``).
    """

    metadata: dict[str, str]
    tensors: dict[str, tuple[str, tuple[int, ...]]]
    parameter_count: int
    dtypes: dict[str, int] = field(default_factory=dict)
    header_size: int = 0


MAX_DIMS = 64  # real tensors have at most 8; a hostile 150,000-dimension shape is refused outright (B18)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


MAX_HEADER = 2 << 20  # the format allows 100 MB; real headers are well under 1 MB (thousands of tensors), and
# parsing 100 MB of hostile JSON takes seconds and gigabytes: one parse stays within 1 s and 100 MB (B18)


def read_safetensors_header(path, *, max_header: int = MAX_HEADER) -> SafetensorsHeader:
    """Read and check a ``.safetensors`` file's JSON header.

    Args:
        path: the file.
        max_header: the largest header to read, in bytes (the format's own limit is 100 MB; ours is 2 MiB).

    Returns:
        A :class:`SafetensorsHeader`.

    Raises:
        ArtifactFormatError: the file cannot be read, is truncated, declares a header longer than the
            file or ``max_header``, or the header is not a strict UTF-8 JSON object of well-formed
            tensor entries whose ``data_offsets`` fit the data section without overlapping.
    """
    size, n, data = read_open(path, lambda f: _read_header_bytes(f, path, max_header))

    header = loads_strict(data, path, "header")
    if not isinstance(header, dict):
        raise ArtifactFormatError(path, f"header is a JSON {type(header).__name__}, expected an object")
    data_len = size - 8 - n
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ArtifactFormatError(path, "__metadata__ must map strings to strings")

    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    dtypes: dict[str, int] = {}
    spans: list[tuple[int, int, str]] = []
    total = 0
    for name, info in header.items():
        where = f"tensor {name[:200]!r}"
        if not isinstance(info, dict):
            raise ArtifactFormatError(path, f"{where} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str) or not _DTYPE_RE.match(dtype):
            raise ArtifactFormatError(path, f"{where} has an invalid dtype {dtype!r:.60}")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_count(d) for d in shape):
            raise ArtifactFormatError(path, f"{where} has an invalid shape {str(shape)[:60]} "
                                            f"(expected a list of at most {MAX_DIMS} non-negative integers)")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets)
                or offsets[0] > offsets[1]):
            raise ArtifactFormatError(path, f"{where} has invalid data_offsets {offsets!r:.60} "
                                            "(expected [begin, end] with 0 <= begin <= end)")
        begin, end = offsets
        if end > data_len:
            raise ArtifactFormatError(path, f"{where} data_offsets end at byte {end} past the data section "
                                            f"({data_len} bytes)", hint=_HINT_TRUNCATED)
        elements = 1
        for d in shape:  # bounded: a product past what the data section can hold stops growing (B18)
            elements = min(elements * d, (data_len + 1) * 8)
        bits = DTYPE_BITS.get(dtype)
        if bits is not None and (end - begin) * 8 != elements * bits:
            raise ArtifactFormatError(path, f"{where} data_offsets span {end - begin} bytes but {dtype} "
                                            f"{shape} needs {elements * bits / 8:g}")
        tensors[name] = (dtype, tuple(shape))
        dtypes[dtype] = dtypes.get(dtype, 0) + elements
        total += elements
        if end > begin:
            spans.append((begin, end, name))
    spans.sort()
    for (_, prev_end, prev), (begin, _, name) in zip(spans, spans[1:]):
        if begin < prev_end:
            raise ArtifactFormatError(path, f"tensors {prev[:200]!r} and {name[:200]!r} overlap in the data section")
    return SafetensorsHeader(metadata=dict(metadata), tensors=tensors, parameter_count=total, dtypes=dtypes,
                             header_size=n)


def _read_header_bytes(f, path, max_header: int) -> tuple[int, int, bytes]:
    size = os.fstat(f.fileno()).st_size
    head = f.read(8)
    if len(head) < 8:
        raise ArtifactFormatError(path, f"truncated: {size} bytes is shorter than the 8-byte header length",
                                  hint=_HINT_TRUNCATED)
    n = struct.unpack("<Q", head)[0]
    if 8 + n > size:
        raise ArtifactFormatError(path, f"header length {_size(n)} bytes exceeds the file ({size} bytes)",
                                  hint=_HINT_TRUNCATED)
    if n > max_header:
        raise ArtifactFormatError(path, f"header length {_size(n)} bytes is over the {max_header} byte limit")
    data = f.read(n)
    if len(data) < n:  # the file shrank while we read it
        raise ArtifactFormatError(path, "truncated: the header runs past the end of the file", hint=_HINT_TRUNCATED)
    return size, n, data


def unsafe_relative_path(name: str) -> str | None:
    """Why ``name`` may not be used as a file path inside a model folder, or ``None`` if it may.

    Refused: empty names, absolute paths, drive letters, backslashes, NUL and ``..`` components.
    """
    if not name:
        return "it is empty"
    if "\\" in name:
        return "it contains a backslash"
    if "\0" in name:
        return "it contains a NUL byte"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "it is absolute"
    if ".." in name.split("/"):
        return "it climbs out of the folder (..)"
    return None


def read_safetensors_index(path, *, max_bytes: int = 64 << 20) -> dict:
    """Read a shard index (``model.safetensors.index.json``; ``pytorch_model.bin.index.json`` too).

    Args:
        path: the index file.
        max_bytes: the largest index to read.

    Returns:
        ``{"weight_map": {tensor: shard}, "total_size": int | None, "metadata": {...},
        "shards": [shard file names, sorted]}``.

    Raises:
        ArtifactFormatError: the file is not a strict JSON object, has no ``weight_map`` object of
            strings, or names a shard path that could leave the folder (absolute, ``..``, backslash).
    """
    index = read_json(path, max_bytes=max_bytes)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ArtifactFormatError(path, "weight_map must be an object mapping tensor names to shard files")
    metadata = index.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ArtifactFormatError(path, "metadata must be an object")
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        why = unsafe_relative_path(shard)
        if why:
            raise ArtifactFormatError(path, f"weight_map names the shard {shard[:200]!r}, which is refused: {why}")
    total = metadata.get("total_size")
    if not _is_count(total):
        total = None
    return {"weight_map": weight_map, "total_size": total, "metadata": metadata, "shards": shards}
