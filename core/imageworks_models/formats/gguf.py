"""A bounded GGUF header reader (metadata key/values and tensor infos), written with ``struct``.

Why not ``gguf.GGUFReader``: it memory-maps the file and decodes every key/value, including the
tokenizer's vocabulary and merges (seconds for a 150k-token vocabulary), and it trusts the length
fields. A scanner needs a handful of keys (architecture, name, file type, context length, chat
template) from files that may be truncated downloads or hostile, so this reader:

* checks every count and length against the bytes left in the file before using it, and caps them
  (kv_count, tensor_count, string length, array nesting), so a lying field costs an error, never a
  large allocation or read;
* reads at most ``budget`` bytes of header outside array payloads; arrays are not decoded: arrays of
  fixed-size values are skipped with one ``seek``; arrays of strings have no total length, so the only
  way past them is to walk their length prefixes, which is done in 1 MiB chunks (bounded memory) and
  counted separately in ``array_bytes_scanned`` (tokens are a few bytes long, so seeking over each one
  would touch the same disk pages and cost one system call per token);
* stops reading tensor infos when they do not fit the budget (``parameter_count`` is then ``None``).

GGUF v2 and v3 little-endian files are supported (v1 used 32-bit lengths and predates every model one
can download today); big-endian files are refused with a clear message.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import NoReturn

from imageworks_models.errors import ArtifactFormatError
from imageworks_models.formats._util import format_length as _n, read_open

GGUF_MAGIC = b"GGUF"
MAX_KV_COUNT = 1_000_000
MAX_TENSOR_COUNT = 10_000_000
MAX_STRING_BYTES = 16 << 20
MAX_ARRAY_DEPTH = 2  # an array of arrays is allowed, an array of arrays of arrays is not
MAX_DIMS = 4  # GGML_MAX_DIMS: llama.cpp refuses tensors with more
_SCAN_CHUNK = 1 << 20
_FILL_CHUNK = 64 << 10

# llama.cpp's ``general.file_type`` (LlamaFileType / llama_ftype) with ``MOSTLY_`` stripped; checked
# against gguf.LlamaFileType by the tests.
GGUF_FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1",
    4: "Q4_1_SOME_F16",  # removed upstream; files converted in 2023 still carry it
    7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    33: "Q4_0_4_4", 34: "Q4_0_4_8", 35: "Q4_0_8_8",  # removed upstream (runtime repacking replaced them)
    36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}

# ggml tensor types (GGMLQuantizationType), for the fallback when a file has no general.file_type.
GGML_TENSOR_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
    24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
    31: "Q4_0_4_4", 32: "Q4_0_4_8", 33: "Q4_0_8_8",  # removed upstream
    34: "TQ1_0", 35: "TQ2_0",
    36: "IQ4_NL_4_4", 37: "IQ4_NL_4_8", 38: "IQ4_NL_8_8",  # removed upstream
    39: "MXFP4", 40: "NVFP4", 41: "Q1_0",
}

_STRING, _ARRAY = 8, 9
# value type -> (name, struct format, size); STRING and ARRAY are variable-length.
_SCALARS: dict[int, tuple[str, struct.Struct]] = {
    0: ("UINT8", struct.Struct("<B")), 1: ("INT8", struct.Struct("<b")),
    2: ("UINT16", struct.Struct("<H")), 3: ("INT16", struct.Struct("<h")),
    4: ("UINT32", struct.Struct("<I")), 5: ("INT32", struct.Struct("<i")),
    6: ("FLOAT32", struct.Struct("<f")), 7: ("BOOL", struct.Struct("<?")),
    10: ("UINT64", struct.Struct("<Q")), 11: ("INT64", struct.Struct("<q")),
    12: ("FLOAT64", struct.Struct("<d")),
}
_TYPE_NAMES = {k: v[0] for k, v in _SCALARS.items()} | {_STRING: "STRING", _ARRAY: "ARRAY"}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
# the smallest a key/value (8-byte key length, empty key, 4-byte type, 1-byte value) and a tensor info
# (8-byte name length, empty name, n_dims, type, offset) can be: bounds counts against the file size.
_MIN_KV_BYTES = 13
_MIN_TENSOR_INFO_BYTES = 24
_HINT_TRUNCATED = "the file is incomplete or damaged: download it again"


@dataclass(frozen=True)
class GGUFHeader:
    """What :func:`read_gguf_header` learned.

    Attributes:
        version: the GGUF version (2 or 3).
        tensor_count: tensors the header declares.
        kv_count: metadata key/values the header declares.
        metadata: scalar and string values by key (arrays are not decoded, see ``arrays``).
        arrays: ``{key: (element type name, length)}`` for array values, e.g.
            ``{"tokenizer.ggml.tokens": ("STRING", 151936)}``.
        parameter_count: the sum of every tensor's element count, or ``None`` when the tensor infos
            did not fit in the read budget.
        bytes_read: bytes read outside array payloads (never more than the budget).
        tensor_types: element count per ggml tensor type (``{"Q4_K": ..., "F32": ...}``), empty when
            the tensor infos did not fit in the budget.
        skipped: ``{key: length}`` for string values left unread because they alone would pass the
            budget (they are seeked over, not read).
        array_bytes_scanned: bytes read to walk the length prefixes of string arrays.
    """

    version: int
    tensor_count: int
    kv_count: int
    metadata: dict[str, object]
    arrays: dict[str, tuple[str, int]] = field(default_factory=dict)
    parameter_count: int | None = None
    bytes_read: int = 0
    tensor_types: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    array_bytes_scanned: int = 0


class _OverBudget(Exception):
    pass


class _Reader:
    """A forward cursor over the file with its own buffer, a read budget and bounds checks."""

    def __init__(self, f, path, size: int, budget: int):
        self.f = f
        self.path = path
        self.size = size
        self.budget = budget
        self.buf = b""
        self.off = 0  # position in buf
        self.base = 0  # file offset of buf[0]
        self.bytes_read = 0
        self.scanned = 0
        self.scanning = False  # inside an array payload: reads go to `scanned`, outside the budget
        self._buf_from_scan = False

    def tell(self) -> int:
        return self.base + self.off

    def left(self) -> int:
        return self.size - self.tell()

    def fail(self, cause: str, hint: str | None = None) -> NoReturn:
        raise ArtifactFormatError(self.path, cause, hint=hint)

    def need(self, n: int, what: str) -> None:
        avail = len(self.buf) - self.off
        if avail >= n:
            return
        pos = self.tell()
        if pos + n > self.size:
            self.fail(f"truncated: {what} at byte {pos} needs {_n(n)} bytes but the file ends at byte {self.size}",
                      _HINT_TRUNCATED)
        want = n - avail
        after = self.size - pos - avail  # bytes in the file after the buffered ones
        if self.scanning:
            chunk = min(max(want, _SCAN_CHUNK), after)
        else:
            room = self.budget - self.bytes_read
            if want > room:
                raise _OverBudget(what)
            # read ahead at most an eighth of what is left, so that bytes read ahead and then seeked
            # over (a skipped string, an array) cannot use up a small budget
            chunk = min(max(want, min(_FILL_CHUNK, room // 8)), room, after)
        self.f.seek(pos + avail)
        data = self.f.read(chunk)
        if len(data) < want:  # the file shrank under us
            self.fail(f"truncated: {what} at byte {pos} runs past the end of the file", _HINT_TRUNCATED)
        if self.scanning:
            self.scanned += len(data)
            self._buf_from_scan = True
        else:
            self.bytes_read += len(data)
        self.buf = self.buf[self.off:] + data
        self.base = pos
        self.off = 0

    def skip(self, n: int) -> None:
        target = self.tell() + n
        if target > self.size:
            self.fail(f"truncated: {_n(n)} bytes at byte {self.tell()} run past the end of the file "
                      f"({self.size} bytes)", _HINT_TRUNCATED)
        if target <= self.base + len(self.buf):
            self.off = target - self.base
        else:
            self.buf, self.off, self.base = b"", 0, target

    def end_scan(self) -> None:
        self.scanning = False
        if self._buf_from_scan:
            # bytes read ahead while scanning were not counted in bytes_read: drop them so that every
            # byte parsed outside arrays is read (and counted) again
            self.buf, self.off, self.base = b"", 0, self.tell()
            self._buf_from_scan = False

    def unpack(self, st: struct.Struct, what: str):
        self.need(st.size, what)
        value = st.unpack_from(self.buf, self.off)[0]
        self.off += st.size
        return value

    def u32(self, what: str) -> int:
        return self.unpack(_U32, what)

    def u64(self, what: str) -> int:
        return self.unpack(_U64, what)

    def string_length(self, what: str) -> int:
        n = self.u64(f"{what} length")
        if n > MAX_STRING_BYTES:
            self.fail(f"{what} length {_n(n)} bytes exceeds the {MAX_STRING_BYTES >> 20} MiB limit")
        if n > self.left():
            self.fail(f"{what} length {_n(n)} bytes runs past the end of the file ({self.left()} bytes left)",
                      _HINT_TRUNCATED)
        return n

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = self.buf[self.off:self.off + n]
        self.off += n
        return data

    def string(self, what: str) -> bytes:
        return self.take(self.string_length(what), what)

    def skip_array(self, key: str, depth: int) -> tuple[str, int]:
        etype = self.u32(f"array type of {key!r}")
        count = self.u64(f"array length of {key!r}")
        left = self.left()
        if etype in _SCALARS:
            width = _SCALARS[etype][1].size
            if count * width > left:
                self.fail(f"array {key!r} of {_n(count)} {_TYPE_NAMES[etype]} values runs past the end of the "
                          f"file ({left} bytes left)", _HINT_TRUNCATED)
            self.skip(count * width)
        elif etype == _STRING:
            if count * 8 > left:
                self.fail(f"array {key!r} of {_n(count)} strings runs past the end of the file ({left} bytes left)",
                          _HINT_TRUNCATED)
            self._scan_strings(count, key)
        elif etype == _ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                self.fail(f"array {key!r} nests arrays deeper than {MAX_ARRAY_DEPTH} levels")
            if count * 12 > left:
                self.fail(f"array {key!r} of {_n(count)} arrays runs past the end of the file ({left} bytes left)",
                          _HINT_TRUNCATED)
            for _ in range(count):
                self.skip_array(key, depth + 1)
        else:
            self.fail(f"array {key!r} has unknown element type {etype}")
        return _TYPE_NAMES[etype], count

    def _scan_strings(self, count: int, key: str) -> None:
        unpack = _U64.unpack_from
        if len(self.buf) - self.off > _SCAN_CHUNK:
            # keep the buffer shorter than MAX_STRING_BYTES: then only the last length read in a pass
            # can be over the limit (a longer string cannot end inside the buffer), so the hot loop
            # needs no per-token check
            self.buf = self.buf[:self.off + _SCAN_CHUNK]
        while count:
            self.need(8, f"a string length in array {key!r}")
            buf, off = self.buf, self.off
            end = len(buf) - 8
            n = 0
            done = count
            for i in range(count):  # the hot loop: one unpack per token, no I/O
                if off > end:
                    done = i
                    break
                n = unpack(buf, off)[0]
                off += 8 + n
            count -= done
            if n > MAX_STRING_BYTES:
                self.fail(f"a string in array {key!r} has length {_n(n)} bytes, over the "
                          f"{MAX_STRING_BYTES >> 20} MiB limit")
            pos = self.base + off
            if pos > self.size:
                self.fail(f"array {key!r}: a string runs past the end of the file ({self.size} bytes)",
                          _HINT_TRUNCATED)
            if off <= len(buf):
                self.off = off
            else:  # the last string continues past the buffer: seek over it
                self.buf, self.off, self.base = b"", 0, pos


def read_gguf_header(path, *, budget: int = 1 << 20) -> GGUFHeader:
    """Read a GGUF file's metadata and tensor infos without reading its tensors or decoding arrays.

    Args:
        path: the ``.gguf`` file.
        budget: the most bytes to read outside array payloads. Metadata must fit in it; tensor infos
            are read only while they fit (``parameter_count`` is ``None`` otherwise).

    Returns:
        A :class:`GGUFHeader`.

    Raises:
        ArtifactFormatError: the file cannot be opened, is not GGUF, has an unsupported version or byte
            order, is truncated, declares absurd counts or lengths, nests arrays too deeply, has an
            unknown value type, a key that is not UTF-8 or repeated, or metadata larger than the budget.
    """
    return read_open(path, lambda f: _read(f, path, budget))


def _read(f, path, budget: int) -> GGUFHeader:
    r = _Reader(f, path, os.fstat(f.fileno()).st_size, budget)
    if r.size < 24:
        head = f.read(4)
        if head != GGUF_MAGIC[:len(head)]:
            r.fail(f"not a GGUF file (starts with {head!r}, expected {GGUF_MAGIC!r})")
        r.fail(f"truncated: {r.size} bytes is shorter than a GGUF header (24 bytes)", _HINT_TRUNCATED)
    magic = r.take(4, "magic")
    if magic != GGUF_MAGIC:
        r.fail(f"not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})")
    version = r.u32("version")
    if version not in (2, 3):
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        if swapped in (1, 2, 3):
            r.fail(f"big-endian GGUF (version {swapped}) is not supported",
                   hint="use the little-endian build of this model")
        r.fail(f"unsupported GGUF version {version} (this reader knows versions 2 and 3)",
               hint="re-convert it with a current llama.cpp" if version == 1 else None)
    tensor_count = r.u64("tensor count")
    kv_count = r.u64("key/value count")
    if kv_count > MAX_KV_COUNT:
        r.fail(f"absurd key/value count {_n(kv_count)} (the limit is {MAX_KV_COUNT})")
    if tensor_count > MAX_TENSOR_COUNT:
        r.fail(f"absurd tensor count {_n(tensor_count)} (the limit is {MAX_TENSOR_COUNT})")
    if kv_count * _MIN_KV_BYTES + tensor_count * _MIN_TENSOR_INFO_BYTES > r.left():
        r.fail(f"the header declares {kv_count} key/values and {tensor_count} tensors, more than the "
               f"{r.left()} bytes left in the file can hold", _HINT_TRUNCATED)

    metadata: dict[str, object] = {}
    arrays: dict[str, tuple[str, int]] = {}
    skipped: dict[str, int] = {}
    i = 0
    try:
        for i in range(kv_count):
            raw = r.string(f"key #{i}")
            try:
                key = raw.decode("utf-8")
            except UnicodeDecodeError:
                r.fail(f"key #{i} is not valid UTF-8 ({raw[:40]!r})")
            if key in metadata or key in arrays or key in skipped:
                r.fail(f"key {key!r} appears twice")
            vtype = r.u32(f"value type of {key!r}")
            if vtype in _SCALARS:
                metadata[key] = r.unpack(_SCALARS[vtype][1], f"value of {key!r}")
            elif vtype == _STRING:
                n = r.string_length(f"value of {key!r}")
                if n > r.budget - r.bytes_read + len(r.buf) - r.off:
                    r.skip(n)  # e.g. a giant embedded template: not worth the budget
                    skipped[key] = n
                else:
                    metadata[key] = r.take(n, f"value of {key!r}").decode("utf-8", "replace")
            elif vtype == _ARRAY:
                r.scanning = True
                try:
                    arrays[key] = r.skip_array(key, 1)
                finally:
                    r.end_scan()
            else:
                r.fail(f"key {key!r} has unknown value type {vtype}")
    except _OverBudget:
        r.fail(f"metadata is larger than the read budget of {budget} bytes (at key #{i})",
               hint="pass a larger budget to read_gguf_header")

    parameter_count: int | None = None
    types: Counter[str] = Counter()
    try:
        total = 0
        for t in range(tensor_count):
            r.skip(r.string_length(f"name of tensor #{t}"))
            n_dims = r.u32(f"dimension count of tensor #{t}")
            if n_dims > MAX_DIMS:
                r.fail(f"tensor #{t} has {n_dims} dimensions (GGML allows at most {MAX_DIMS})")
            r.need(8 * n_dims, f"dimensions of tensor #{t}")
            elements = 1
            for d in struct.unpack_from(f"<{n_dims}Q", r.buf, r.off):
                elements *= d
            r.off += 8 * n_dims
            if elements >= 1 << 63:
                r.fail(f"tensor #{t} declares {_n(elements)} elements (overflows 64 bits)")
            ttype = r.u32(f"type of tensor #{t}")
            r.u64(f"data offset of tensor #{t}")
            total += elements
            types[GGML_TENSOR_TYPES.get(ttype, f"TYPE_{ttype}")] += elements
        parameter_count = total
    except _OverBudget:
        types.clear()

    return GGUFHeader(version=version, tensor_count=tensor_count, kv_count=kv_count, metadata=metadata,
                      arrays=arrays, parameter_count=parameter_count, bytes_read=r.bytes_read,
                      tensor_types=dict(types), skipped=skipped, array_bytes_scanned=r.scanned)


def quant_name(header: GGUFHeader) -> str | None:
    """The file's quantization as llama.cpp names it (``Q4_K_M``, ``F16``...).

    Args:
        header: from :func:`read_gguf_header`.

    Returns:
        The name of ``general.file_type``; when that is missing or unknown, the tensor type holding the
        most elements (``Q4_K``) if the tensor infos were read; else ``None``.
    """
    file_type = header.metadata.get("general.file_type")
    if isinstance(file_type, int) and not isinstance(file_type, bool) and file_type in GGUF_FILE_TYPES:
        return GGUF_FILE_TYPES[file_type]
    if header.tensor_types:
        return max(header.tensor_types.items(), key=lambda item: (item[1], item[0]))[0]
    return None
