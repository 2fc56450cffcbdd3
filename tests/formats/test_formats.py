"""Header-only artifact inspection (``imageworks_models.formats``) and the built-in ``inspect_artifact``.

Valid files are written with the reference libraries (``gguf.GGUFWriter``, ``safetensors.numpy``);
hostile ones are built byte by byte. Every hostile input must give one clear ``ArtifactFormatError``
naming the file, quickly, without large reads: reads are counted at the ``FileIO`` level, beneath the
readers' own accounting.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from imageworks_models.errors import ArtifactFormatError, ImageworksError
from imageworks_models.formats import gguf as gguf_mod
from imageworks_models.formats import safetensors as st_mod
from imageworks_models.formats.gguf import GGUF_FILE_TYPES, GGUFHeader, quant_name, read_gguf_header
from imageworks_models.formats.hfconfig import quantization, read_json, vision_signals
from imageworks_models.formats.inspect import inspect_path
from imageworks_models.formats.safetensors import read_safetensors_header, read_safetensors_index
from imageworks_models.formats.templates import find_chat_template, gguf_chat_template
from imageworks_models.pluginhost.manager import get_plugins
from imageworks_models.plugin.records import ArtifactInfo

TEMPLATE = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
            "{% if tools %}<tools>{{ tools | tojson }}</tools>{% endif %}")
THINKING_TEMPLATE = "{% if enable_thinking %}<think>{% endif %}{{ messages[-1].content }}"
LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 4939212040\n")


# --- helpers ----------------------------------------------------------------------------------------

def write_gguf(path: Path, *, arch: str = "qwen2", name: str = "Qwen2.5 7B Instruct", basename: str | None = "Qwen2.5",
               file_type: int | None = 15, template: str | None = TEMPLATE, tokens: int = 1000,
               mmproj: bool = False, context_length: int = 32768, endianess=gguf.GGUFEndian.LITTLE,
               tensors: dict[str, np.ndarray] | None = None) -> Path:
    w = gguf.GGUFWriter(path, arch, endianess=endianess)
    w.add_name(name)
    if basename:
        w.add_basename(basename)
    if mmproj:
        w.add_type("mmproj")
        w.add_clip_has_vision_encoder(True)
    if file_type is not None:
        w.add_file_type(file_type)
    w.add_context_length(context_length)
    if tokens:
        w.add_token_list([f"tok{i}" for i in range(tokens)])
        w.add_token_types([1] * tokens)
    if template:
        w.add_chat_template(template)
    if tensors is None:
        tensors = {"token_embd.weight": np.zeros((8, 16), np.float16), "output_norm.weight": np.ones(16, np.float32)}
    for tname, array in tensors.items():
        w.add_tensor(tname, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def gstr(s: bytes | str) -> bytes:
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(s)) + s


def kv(key: bytes | str, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", vtype) + payload


def kv_str(key: str, value: str) -> bytes:
    return kv(key, 8, gstr(value))


def kv_u32(key: str, value: int) -> bytes:
    return kv(key, 4, struct.pack("<I", value))


def gguf_bytes(kvs: list[bytes], *, tensors: list[bytes] = (), version: int = 3, magic: bytes = b"GGUF",
               kv_count: int | None = None, tensor_count: int | None = None, tail: bytes = b"") -> bytes:
    return (magic + struct.pack("<IQQ", version, len(tensors) if tensor_count is None else tensor_count,
                                len(kvs) if kv_count is None else kv_count)
            + b"".join(kvs) + b"".join(tensors) + tail)


def tensor_info(name: str, dims: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    return gstr(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack(
        "<IQ", ggml_type, offset)


def write_st(path: Path, header: dict | bytes, data_len: int = 0, *, declared: int | None = None) -> Path:
    """A safetensors file from a raw header (dict or bytes) and ``data_len`` zero bytes of data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if declared is None else declared) + raw + b"\0" * data_len)
    return path


def write_config(folder: Path, **config) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def llama_folder(folder: Path, **config) -> Path:
    """A small HF causal-LM folder: config, one bf16-ish safetensors file (F16 via numpy), a template."""
    write_config(folder, model_type="llama", architectures=["LlamaForCausalLM"], torch_dtype="bfloat16", **config)
    save_file({"model.embed_tokens.weight": np.zeros((32, 8), np.float16),
               "model.norm.weight": np.ones(8, np.float32)}, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


class CountingFileIO(io.FileIO):
    """Counts every byte read from the disk, whatever buffering the reader uses on top."""

    total = 0

    def readinto(self, b):
        n = super().readinto(b)
        CountingFileIO.total += n or 0
        return n

    def readall(self):
        data = super().readall()
        CountingFileIO.total += len(data)
        return data


@pytest.fixture
def counted_reads(monkeypatch):
    """Route the readers' ``open`` through :class:`CountingFileIO`; returns a function giving the total."""
    CountingFileIO.total = 0

    def counting_open(path, mode="rb"):
        assert mode == "rb"
        return io.BufferedReader(CountingFileIO(path, "r"))

    monkeypatch.setattr(gguf_mod, "open", counting_open, raising=False)
    monkeypatch.setattr(st_mod, "open", counting_open, raising=False)
    return lambda: CountingFileIO.total


def raises_fast(fn, *args, match: str, **kwargs) -> ArtifactFormatError:
    start = time.perf_counter()
    with pytest.raises(ArtifactFormatError, match=match) as info:
        fn(*args, **kwargs)
    assert time.perf_counter() - start < 0.5
    message = info.value.message
    assert "\n" not in message
    return info.value


@pytest.fixture(scope="module")
def big_vocab_gguf(tmp_path_factory) -> Path:
    """A GGUF file with a 150k-token string array (GGUFReader needs seconds to parse it)."""
    return write_gguf(tmp_path_factory.mktemp("bigvocab") / "big.gguf", tokens=150_000)


# --- errors -----------------------------------------------------------------------------------------

def test_artifact_format_error_names_the_file():
    exc = ArtifactFormatError("/m/x.gguf", "truncated", hint="download it again")
    assert isinstance(exc, ImageworksError)
    assert exc.message == "/m/x.gguf: truncated" and exc.hint == "download it again"
    assert exc.path == "/m/x.gguf" and exc.cause == "truncated" and exc.exit_code == 1


def test_artifact_info_errors_field_is_additive():
    assert ArtifactInfo().errors == ()
    assert ArtifactInfo(format="gguf", errors=("a.gguf: bad",)).errors == ("a.gguf: bad",)


# --- GGUF: valid files --------------------------------------------------------------------------------

def test_gguf_file_types_match_llama_cpp():
    for member in gguf.LlamaFileType:
        if member.name == "GUESSED":
            continue
        assert GGUF_FILE_TYPES[member.value] == member.name.removeprefix("MOSTLY_").removeprefix("ALL_"), member
    assert GGUF_FILE_TYPES[15] == "Q4_K_M" and GGUF_FILE_TYPES[0] == "F32" and GGUF_FILE_TYPES[32] == "BF16"


def test_gguf_header_reads_metadata_and_skips_arrays(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", tokens=50_000)

    header = read_gguf_header(path)

    assert isinstance(header, GGUFHeader)
    assert header.version == 3 and header.tensor_count == 2
    assert header.metadata["general.architecture"] == "qwen2"
    assert header.metadata["general.name"] == "Qwen2.5 7B Instruct"
    assert header.metadata["general.file_type"] == 15
    assert header.metadata["qwen2.context_length"] == 32768
    assert header.metadata["tokenizer.chat_template"] == TEMPLATE
    assert header.arrays == {"tokenizer.ggml.tokens": ("STRING", 50_000),
                             "tokenizer.ggml.token_type": ("INT32", 50_000)}
    assert "tokenizer.ggml.tokens" not in header.metadata
    assert header.kv_count == len(header.metadata) + len(header.arrays)
    assert header.parameter_count == 8 * 16 + 16
    assert header.tensor_types == {"F16": 128, "F32": 16}
    assert header.bytes_read <= 1 << 20
    assert quant_name(header) == "Q4_K_M"


def test_gguf_version_2_is_read(tmp_path):
    data = bytearray(write_gguf(tmp_path / "v3.gguf", tokens=10).read_bytes())
    data[4:8] = struct.pack("<I", 2)  # v2 and v3 share the layout; v3 only added big-endian files
    (tmp_path / "v2.gguf").write_bytes(bytes(data))

    assert read_gguf_header(tmp_path / "v2.gguf").version == 2


def test_gguf_quant_name_falls_back_to_the_most_common_tensor_type(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", file_type=None, tokens=0,
                      tensors={"a": np.zeros((64, 64), np.float16), "b": np.zeros(16, np.float32)})
    header = read_gguf_header(path)
    assert "general.file_type" not in header.metadata
    assert quant_name(header) == "F16"
    assert quant_name(GGUFHeader(version=3, tensor_count=0, kv_count=0, metadata={})) is None


def test_gguf_reader_stops_early_on_a_150k_token_vocabulary(big_vocab_gguf):
    timings = []
    for _ in range(3):
        start = time.thread_time()  # this thread's CPU: a loaded machine doubled the wall time (to ~18 ms)
        info = inspect_path(big_vocab_gguf)
        timings.append(time.thread_time() - start)
    assert info is not None and info.quantization == "q4_k_m" and not info.errors
    assert min(timings) < 0.1, timings  # ~9 ms; gguf.GGUFReader takes over 3 s of CPU on the same file
    header = read_gguf_header(big_vocab_gguf)
    assert header.arrays["tokenizer.ggml.tokens"] == ("STRING", 150_000)
    assert header.bytes_read < 1 << 20
    assert header.array_bytes_scanned > 0


def test_gguf_sparse_4gb_file_reads_only_the_header(tmp_path, counted_reads):
    path = write_gguf(tmp_path / "big.gguf", tokens=100)
    os.truncate(path, 4 << 30)  # sparse: no disk used, but a naive reader would read or map 4 GB

    start = time.perf_counter()
    header = read_gguf_header(path, budget=1 << 20)
    elapsed = time.perf_counter() - start

    assert header.parameter_count == 8 * 16 + 16
    assert header.bytes_read <= 1 << 20
    assert counted_reads() <= (1 << 20) + (1 << 20)  # budget plus the token array walk (one chunk)
    assert elapsed < 0.5


def test_gguf_tensor_infos_beyond_the_budget_give_no_parameter_count(tmp_path):
    infos = [tensor_info(f"blk.{i}.attn_q.weight", (4096, 4096), ggml_type=12) for i in range(200)]
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv_str("general.architecture", "llama"), kv_u32("general.file_type", 15)],
                                tensors=infos, tail=b"\0" * 64))

    header = read_gguf_header(path, budget=2048)

    assert header.metadata["general.architecture"] == "llama"
    assert header.parameter_count is None and header.tensor_types == {}
    assert header.bytes_read <= 2048
    full = read_gguf_header(path)
    assert full.parameter_count == 200 * 4096 * 4096 and full.tensor_types == {"Q4_K": 200 * 4096 * 4096}


def test_gguf_string_value_larger_than_the_budget_is_skipped_not_read(tmp_path, counted_reads):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv_str("tokenizer.chat_template", "x" * 200_000),
                                 kv_u32("general.file_type", 7)]))

    header = read_gguf_header(path, budget=64 << 10)

    assert header.skipped == {"tokenizer.chat_template": 200_000}
    assert header.metadata == {"general.file_type": 7}
    assert counted_reads() <= 64 << 10


def test_gguf_array_of_arrays_is_skipped(tmp_path):
    inner = struct.pack("<IQ", 5, 3) + struct.pack("<3i", 1, 2, 3)
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv("a", 9, struct.pack("<IQ", 9, 2) + inner + inner), kv_u32("b", 1)]))

    header = read_gguf_header(path)

    assert header.arrays == {"a": ("ARRAY", 2)} and header.metadata == {"b": 1}


# --- GGUF: hostile files --------------------------------------------------------------------------------

def test_gguf_wrong_magic(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGML" + b"\0" * 60)
    exc = raises_fast(read_gguf_header, path, match="not a GGUF file")
    assert exc.message.startswith(f"{path}: ")


@pytest.mark.parametrize("version, match", [(1, "unsupported GGUF version 1"), (4, "unsupported GGUF version 4"),
                                            (0xFFFFFFFF, "unsupported GGUF version")])
def test_gguf_unsupported_version(tmp_path, version, match):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv_u32("a", 1)], version=version))
    raises_fast(read_gguf_header, path, match=match)


def test_gguf_big_endian_is_refused_clearly(tmp_path):
    path = write_gguf(tmp_path / "be.gguf", tokens=10, endianess=gguf.GGUFEndian.BIG)
    raises_fast(read_gguf_header, path, match="big-endian GGUF .* not supported")


def test_gguf_truncated_at_every_point_of_the_header(tmp_path):
    source = write_gguf(tmp_path / "m.gguf", tokens=20)
    data = source.read_bytes()
    header_end = gguf.GGUFReader(source).data_offset - 32  # less the alignment padding, which is not parsed
    cut = tmp_path / "cut.gguf"
    start = time.perf_counter()
    for end in [*range(0, 40), *range(40, header_end, 7)]:
        cut.write_bytes(data[:end])
        with pytest.raises(ArtifactFormatError) as info:
            read_gguf_header(cut)
        assert str(cut) in info.value.message
        assert any(w in info.value.cause for w in ("truncated", "past the end", "not a GGUF", "more than")), (
            end, info.value.cause)
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("kv_count, tensor_count, match", [
    (1 << 60, 0, "absurd key/value count 2\\^60"),
    (1_000_001, 0, "absurd key/value count"),
    (0, 10_000_001, "absurd tensor count"),
    (5000, 0, "more than the .* bytes left in the file can hold"),
    (0, 5000, "more than the .* bytes left in the file can hold"),
])
def test_gguf_absurd_counts(tmp_path, kv_count, tensor_count, match):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv_u32("a", 1)], kv_count=kv_count, tensor_count=tensor_count, tail=b"\0" * 1000))
    raises_fast(read_gguf_header, path, match=match)


def test_gguf_huge_string_length(tmp_path, counted_reads):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([], kv_count=1) + struct.pack("<Q", 1 << 60) + b"\0" * 100)
    raises_fast(read_gguf_header, path, match="key #0 length 2\\^60 bytes exceeds the 16 MiB limit")
    assert counted_reads() < 1 << 20


def test_gguf_string_over_16_mib_is_refused_even_when_the_file_is_big_enough(tmp_path, counted_reads):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv("k", 8, struct.pack("<Q", (16 << 20) + 1))], kv_count=1))
    os.truncate(path, 64 << 20)
    raises_fast(read_gguf_header, path, match="value of 'k' length 16777217 bytes exceeds the 16 MiB limit")
    assert counted_reads() < 1 << 20


def test_gguf_string_length_past_eof(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv("k", 8, struct.pack("<Q", 5000) + b"abc")]))
    raises_fast(read_gguf_header, path, match="value of 'k' length 5000 bytes runs past the end of the file")


@pytest.mark.parametrize("payload, match", [
    (struct.pack("<IQ", 5, 1 << 40), "array 'arr' of 2\\^40 INT32 values runs past the end"),
    (struct.pack("<IQ", 8, 1 << 40), "array 'arr' of 2\\^40 strings runs past the end"),
    (struct.pack("<IQ", 8, 2) + gstr("ok") + struct.pack("<Q", 900) + b"x", "a string runs past the end"),
    (struct.pack("<IQ", 8, 2) + gstr("ok") + struct.pack("<Q", 1 << 62), "over the 16 MiB limit"),
    (struct.pack("<IQ", 9, 1 << 40), "array 'arr' of 2\\^40 arrays runs past the end"),
    (struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 5, 1) + b"\0" * 4,
     "nests arrays deeper than 2 levels"),
    (struct.pack("<IQ", 13, 1), "unknown element type 13"),
])
def test_gguf_hostile_arrays(tmp_path, payload, match):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv("arr", 9, payload)], tail=b"\0" * 64))
    raises_fast(read_gguf_header, path, match=match)


def test_gguf_unknown_value_type(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv("k", 13, b"\0" * 8)]))
    raises_fast(read_gguf_header, path, match="key 'k' has unknown value type 13")


def test_gguf_non_utf8_key(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv(b"general.\xff\xfe", 4, b"\0" * 4)]))
    raises_fast(read_gguf_header, path, match="key #0 is not valid UTF-8")


def test_gguf_duplicate_key(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv_u32("general.file_type", 1), kv_u32("general.file_type", 15)]))
    raises_fast(read_gguf_header, path, match="key 'general.file_type' appears twice")


def test_gguf_too_many_dimensions(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([], tensors=[tensor_info("t", (1, 1, 1, 1, 1))], tail=b"\0" * 64))
    raises_fast(read_gguf_header, path, match="tensor #0 has 5 dimensions")


def test_gguf_metadata_larger_than_the_budget(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes([kv_u32(f"key.{i}", i) for i in range(2000)]))
    raises_fast(read_gguf_header, path, budget=4096, match="metadata is larger than the read budget of 4096 bytes")


def test_gguf_missing_file(tmp_path):
    raises_fast(read_gguf_header, tmp_path / "nope.gguf", match="cannot open")


def test_gguf_and_safetensors_random_corruption_gives_only_clear_errors(tmp_path):
    import random

    rng = random.Random(1234)
    gguf_src = write_gguf(tmp_path / "src.gguf", tokens=30).read_bytes()
    save_file({"a": np.zeros((4, 4), np.float16), "b": np.zeros(3, np.float32)}, tmp_path / "src.safetensors")
    st_src = (tmp_path / "src.safetensors").read_bytes()
    start = time.thread_time()  # this thread's CPU: neither a loaded machine nor other tests' threads may fail a bound on our work
    cases = ((".gguf", gguf_src, read_gguf_header), (".safetensors", st_src, read_safetensors_header))
    for suffix, source, reader in cases:
        target = tmp_path / f"corrupt{suffix}"
        for _ in range(300):
            data = bytearray(source)
            pos = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.5:
                data[pos] = rng.randrange(256)
            elif choice < 0.8:
                lie = rng.choice([1 << 63, (1 << 64) - 1, 1 << 40, rng.randrange(1 << 32)])
                data[pos:pos + 8] = struct.pack("<Q", lie)
            else:
                del data[pos:]
            target.write_bytes(bytes(data))
            try:
                reader(target)
            except ArtifactFormatError as exc:
                assert "\n" not in exc.message and exc.message.startswith(str(target))
            info = inspect_path(target)  # never raises: a bad header is an error line
            assert info is not None and len(info.errors) <= 1
    assert time.thread_time() - start < 2


# --- safetensors ------------------------------------------------------------------------------------------

def test_safetensors_header(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"a": np.zeros((4, 8), np.float16), "b": np.zeros(3, np.float32), "c": np.zeros((2, 2), np.int8)},
              path, metadata={"format": "pt", "note": "hi"})

    header = read_safetensors_header(path)

    assert header.metadata == {"format": "pt", "note": "hi"}
    assert header.tensors == {"a": ("F16", (4, 8)), "b": ("F32", (3,)), "c": ("I8", (2, 2))}
    assert header.parameter_count == 32 + 3 + 4
    assert header.dtypes == {"F16": 32, "F32": 3, "I8": 4}
    assert header.header_size == struct.unpack("<Q", path.read_bytes()[:8])[0]


def test_safetensors_sparse_4gb_file_reads_only_the_header(tmp_path, counted_reads):
    size = 1 << 30  # 2^30 F32 elements: a 4 GiB tensor
    path = write_st(tmp_path / "m.safetensors", {"w": {"dtype": "F32", "shape": [1 << 15, 1 << 15],
                                                       "data_offsets": [0, 4 * size]}})
    os.truncate(path, path.stat().st_size + 4 * size)

    start = time.perf_counter()
    header = read_safetensors_header(path)

    assert time.perf_counter() - start < 0.5
    assert header.parameter_count == size
    assert counted_reads() <= 8192  # the 8-byte length and the header, through one read buffer


@pytest.mark.parametrize("build, match", [
    (lambda p: write_st(p, b"{}", declared=1 << 60), "header length 2\\^60 bytes exceeds the file \\(10 bytes\\)"),
    (lambda p: p.write_bytes(b"\x05\0\0"), "truncated: 3 bytes is shorter than the 8-byte header length"),
    (lambda p: p.write_bytes(b""), "truncated: 0 bytes"),
    (lambda p: write_st(p, b'{"a": {"dtype": "F16"', declared=100), "exceeds the file"),
    (lambda p: write_st(p, b"{not json}"), "header is not valid JSON \\(line 1 column 2"),
    (lambda p: write_st(p, b'{"\xff": 1}'), "header is not valid UTF-8"),
    (lambda p: write_st(p, b'\xef\xbb\xbf{}'), "byte-order mark"),
    (lambda p: write_st(p, b'{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}, '
                           b'"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}', 2),
     "header repeats the key 'a'"),
    (lambda p: write_st(p, b"[1, 2]"), "header is a JSON list, expected an object"),
    (lambda p: write_st(p, {"a": {"dtype": "F16", "shape": "x", "data_offsets": [0, 2]}}, 2), "invalid shape"),
    (lambda p: write_st(p, {"a": {"dtype": "F16", "shape": [-1], "data_offsets": [0, 2]}}, 2), "invalid shape"),
    (lambda p: write_st(p, {"a": {"dtype": "F16", "shape": [True], "data_offsets": [0, 2]}}, 2), "invalid shape"),
    (lambda p: write_st(p, {"a": {"dtype": 7, "shape": [1], "data_offsets": [0, 2]}}, 2), "invalid dtype"),
    (lambda p: write_st(p, {"a": {"dtype": "F16", "shape": [1], "data_offsets": [2, 0]}}, 2), "invalid data_offsets"),
    (lambda p: write_st(p, {"a": {"dtype": "F16", "shape": [1], "data_offsets": [0]}}, 2), "invalid data_offsets"),
    (lambda p: write_st(p, {"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}, 1),
     "end at byte 2 past the data section \\(1 bytes\\)"),
    (lambda p: write_st(p, {"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 2]}}, 2),
     "span 2 bytes but F16 \\[4\\] needs 8"),
    (lambda p: write_st(p, {"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                            "b": {"dtype": "F16", "shape": [2], "data_offsets": [2, 6]}}, 6), "overlap"),
    (lambda p: write_st(p, {"__metadata__": {"n": 1}}), "__metadata__ must map strings to strings"),
    (lambda p: write_st(p, {"a": [1]}), "tensor 'a' is not an object"),
])
def test_safetensors_hostile_headers(tmp_path, build, match):
    path = tmp_path / "m.safetensors"
    build(path)
    exc = raises_fast(read_safetensors_header, path, match=match)
    assert exc.message.startswith(f"{path}: ")


def test_safetensors_header_over_max_header(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"a": np.zeros(4, np.float16)}, path)
    raises_fast(read_safetensors_header, path, max_header=16, match="over the 16 byte limit")


def test_safetensors_index(tmp_path):
    path = tmp_path / "model.safetensors.index.json"
    path.write_text(json.dumps({"metadata": {"total_size": 1234},
                                "weight_map": {"a": "model-00001-of-00002.safetensors",
                                               "b": "model-00002-of-00002.safetensors",
                                               "c": "model-00001-of-00002.safetensors"}}))
    index = read_safetensors_index(path)
    assert index["shards"] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert index["total_size"] == 1234 and index["weight_map"]["b"] == "model-00002-of-00002.safetensors"


@pytest.mark.parametrize("shard", ["../x.safetensors", "sub/../../x.safetensors", "/etc/x.safetensors",
                                   "a\\b.safetensors", "C:x.safetensors", ""])
def test_safetensors_index_refuses_unsafe_shard_names(tmp_path, shard):
    path = tmp_path / "model.safetensors.index.json"
    path.write_text(json.dumps({"weight_map": {"a": shard}}))
    raises_fast(read_safetensors_index, path, match="refused")


def test_safetensors_index_without_weight_map(tmp_path):
    path = tmp_path / "model.safetensors.index.json"
    path.write_text(json.dumps({"metadata": {}}))
    raises_fast(read_safetensors_index, path, match="weight_map must be an object")


# --- hfconfig ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, match", [
    (b'\xef\xbb\xbf{"a": 1}', "byte-order mark"),
    (b'{"a": 1, "a": 2}', "repeats the key 'a'"),
    (b'{"a": "\xff"}', "not valid UTF-8"),
    (b"[1]", "expected a JSON object, found a JSON array"),
    (b'{"a": ', "not valid JSON"),
    (b"{}" + b" " * 100, "larger than the 64 byte limit"),
])
def test_read_json_refuses_bad_files(tmp_path, data, match):
    path = tmp_path / "config.json"
    path.write_bytes(data)
    raises_fast(read_json, path, max_bytes=64, match=match)


def test_read_json_missing_file(tmp_path):
    raises_fast(read_json, tmp_path / "config.json", match="cannot read")


@pytest.mark.parametrize("config, expected", [
    ({}, {}),
    ({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}},
     {"method": "awq", "bits": 4, "group_size": 128}),
    ({"quantization_config": {"quant_method": "awq", "w_bit": 4, "q_group_size": 64}},
     {"method": "awq", "bits": 4, "group_size": 64}),
    ({"quantization_config": {"quant_method": "gptq", "bits": 8, "group_size": -1}},
     {"method": "gptq", "bits": 8, "group_size": -1}),
    ({"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}},
     {"method": "fp8", "bits": 8, "group_size": None}),
    ({"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}},
     {"method": "bitsandbytes", "bits": 4, "group_size": None}),
    ({"quantization_config": {"load_in_8bit": True}}, {"method": "bitsandbytes", "bits": 8, "group_size": None}),
    ({"quantization_config": {"quant_method": "compressed-tensors", "format": "pack-quantized",
                              "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
                                  "num_bits": 4, "group_size": 128, "strategy": "group", "type": "int"}}}}},
     {"method": "compressed-tensors", "bits": 4, "group_size": 128}),
    ({"compression_config": {"config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "float"}}}}},
     {"method": "compressed-tensors", "bits": 8, "group_size": None}),
    ({"quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": ["lm_head"]}},
     {"method": "mxfp4", "bits": 4, "group_size": 32}),
    ({"text_config": {"quantization_config": {"quant_method": "AWQ", "bits": 4, "group_size": 128}}},
     {"method": "awq", "bits": 4, "group_size": 128}),
    ({"quantization": {"group_size": 64, "bits": 4}}, {"method": "mlx", "bits": 4, "group_size": 64}),
    ({"quantization_config": {"bits": "four"}}, {}),
])
def test_quantization(config, expected):
    assert quantization(config) == expected


def test_vision_signals_come_from_files_not_names(tmp_path):
    named = tmp_path / "llava-vision-VL-7b"
    named.mkdir()
    assert vision_signals(named, {"architectures": ["LlamaForCausalLM"]}) == []

    config = {"architectures": ["LlavaForConditionalGeneration"], "vision_config": {"model_type": "clip"}}
    (named / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "CLIPImageProcessor",
                                                                "image_mean": [0.5]}))
    assert vision_signals(named, config) == [
        "config.json: vision_config", "architecture LlavaForConditionalGeneration with a vision config",
        "preprocessor_config.json: image processor"]


def test_vision_signals_ignore_audio_feature_extractors(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "WhisperFeatureExtractor", "sampling_rate": 16000}))
    assert vision_signals(tmp_path, {"architectures": ["WhisperForConditionalGeneration"]}) == []


def test_vision_signals_image_text_to_text_head(tmp_path):
    assert vision_signals(tmp_path, {"architectures": ["Gemma3ForImageTextToText"]}) == [
        "architecture Gemma3ForImageTextToText"]


# --- templates --------------------------------------------------------------------------------------------

def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_chat_template_jinja_file_wins(tmp_path):
    (tmp_path / "chat_template.jinja").write_text(TEMPLATE, encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "other"}))
    assert find_chat_template(tmp_path) == {"source": "file", "path": "chat_template.jinja", "sha256": sha(TEMPLATE),
                                            "text": TEMPLATE}


def test_chat_template_json_file(tmp_path):
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": "héllo"}), encoding="utf-8")
    found = find_chat_template(tmp_path)
    assert found["path"] == "chat_template.json" and found["text"] == "héllo" and found["sha256"] == sha("héllo")


@pytest.mark.parametrize("value, text, name", [
    ("plain", "plain", None),
    ([{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}], "D", "default"),
    ([{"name": "rag", "template": "R"}, {"name": "tool_use", "template": "T"}], "R", "rag"),
])
def test_chat_template_in_tokenizer_config(tmp_path, value, text, name):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": value, "eos_token": "</s>"}))
    found = find_chat_template(tmp_path)
    assert found["source"] == "file" and found["path"] == "tokenizer_config.json"
    assert found["text"] == text and found["sha256"] == sha(text) and found.get("name") == name


def test_chat_template_none(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    assert find_chat_template(tmp_path) is None


def test_chat_template_of_the_wrong_type(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": 42}))
    raises_fast(find_chat_template, tmp_path, match="chat_template must be a string")


def test_gguf_embedded_chat_template(tmp_path):
    header = read_gguf_header(write_gguf(tmp_path / "m.gguf", tokens=0))
    found = gguf_chat_template(header, "m.gguf")
    assert found == {"source": "embedded", "path": "m.gguf", "key": "tokenizer.chat_template",
                     "sha256": sha(TEMPLATE), "text": TEMPLATE}
    assert gguf_chat_template(GGUFHeader(version=3, tensor_count=0, kv_count=0, metadata={})) is None


# --- inspect_path: single files ----------------------------------------------------------------------------

def test_inspect_gguf_file(tmp_path):
    info = inspect_path(write_gguf(tmp_path / "Qwen2.5-7B-Instruct-Q4_K_M.gguf"))

    assert info.format == "gguf" and info.quantization == "q4_k_m"
    assert info.family == "qwen2.5"
    assert info.parameter_count == 8 * 16 + 16
    assert info.capabilities == {"text", "tools"}
    assert info.chat_template == {"source": "embedded", "path": "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
                                  "key": "tokenizer.chat_template", "sha256": sha(TEMPLATE)}
    memory = info.details.pop("memory")
    assert info.details == {"architecture": "qwen2", "name": "Qwen2.5 7B Instruct", "file_type": "Q4_K_M",
                            "context_length": 32768, "mmproj": False}
    assert info.errors == ()
    import gguf

    reader = gguf.GGUFReader(str(tmp_path / "Qwen2.5-7B-Instruct-Q4_K_M.gguf"))
    assert memory["weights_bytes"] == sum(int(t.n_bytes) for t in reader.tensors)  # what the file stores
    assert memory["context_max"] == 32768


def test_inspect_gguf_family_from_name_when_no_basename(tmp_path):
    info = inspect_path(write_gguf(tmp_path / "m.gguf", basename=None, name="Llama 3.1 8B", arch="llama", tokens=0))
    assert info.family == "llama-3.1-8b"


def test_inspect_mmproj_gguf_file(tmp_path):
    info = inspect_path(write_gguf(tmp_path / "mmproj-model-f16.gguf", arch="clip", file_type=1, template=None,
                                   tokens=0, mmproj=True))
    assert info.capabilities == {"vision"} and info.details["mmproj"] is True and info.quantization == "f16"


def test_inspect_bad_gguf_file_is_an_error_line_not_an_exception(tmp_path):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 60))
    info = inspect_path(path)
    assert info.format == "gguf" and info.quantization is None
    assert info.errors == ("broken.gguf: absurd key/value count 2^60 (the limit is 1000000)",)


def test_inspect_safetensors_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": np.zeros((64, 64), np.float16), "n": np.zeros(64, np.float32)}, path)
    info = inspect_path(path)
    assert info.format == "safetensors" and info.quantization == "fp16" and info.parameter_count == 64 * 64 + 64


def test_inspect_fp8_safetensors_file(tmp_path):
    header = {"w": {"dtype": "F8_E4M3", "shape": [16, 16], "data_offsets": [0, 256]},
              "s": {"dtype": "BF16", "shape": [16], "data_offsets": [256, 288]}}
    path = write_st(tmp_path / "m.safetensors", header, 288)
    assert inspect_path(path).quantization == "fp8"


def test_inspect_lfs_pointer_file(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(LFS_POINTER)
    info = inspect_path(path)
    assert info.errors == ("model.gguf: a git-LFS pointer, not the weights (fetch them with git lfs pull)",)
    assert info.details["lfs_pointers"] == ["model.gguf"]


@pytest.mark.parametrize("make", [
    lambda p: p / "notes.txt",
    lambda p: p / "missing.gguf",
    lambda p: p,  # an empty folder
])
def test_inspect_unrecognised_paths_give_none(tmp_path, make):
    (tmp_path / "notes.txt").write_text("hello")
    target = make(tmp_path)
    if target == tmp_path:
        target = tmp_path / "empty"
        target.mkdir()
    assert inspect_path(target) is None


def test_inspect_folder_with_an_unrelated_config_gives_none(tmp_path):
    write_config(tmp_path / "app", debug=True, port=8080)
    (tmp_path / "app" / "main.py").write_text("print(1)")
    assert inspect_path(tmp_path / "app") is None


# --- inspect_path: Hugging Face folders ------------------------------------------------------------------

def test_inspect_hf_folder(tmp_path):
    folder = llama_folder(tmp_path / "Llama-3.2-1B-Instruct")
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": TEMPLATE}))

    info = inspect_path(folder)

    assert info.format == "safetensors" and info.quantization == "fp16"  # the weights win over torch_dtype
    assert info.family == "llama"
    assert info.parameter_count == 32 * 8 + 8
    assert info.capabilities == {"text", "tools"}
    assert info.chat_template == {"source": "file", "path": "tokenizer_config.json", "sha256": sha(TEMPLATE)}
    assert info.details["architectures"] == ["LlamaForCausalLM"]
    assert info.details["weight_files"] == ["model.safetensors"]
    assert info.details["torch_dtype"] == "bfloat16"
    assert info.details["parameter_count_basis"] == "tensor elements"
    assert info.errors == ()


def test_inspect_hf_folder_thinking_template(tmp_path):
    folder = llama_folder(tmp_path / "m")
    (folder / "chat_template.jinja").write_text(THINKING_TEMPLATE)
    assert inspect_path(folder).capabilities == {"text", "thinking"}


def test_inspect_sharded_folder_with_a_missing_and_a_broken_shard(tmp_path):
    folder = write_config(tmp_path / "m", model_type="qwen2", architectures=["Qwen2ForCausalLM"])
    shards = [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 100}, "weight_map": {f"t{i}": s for i, s in enumerate(shards)}}))
    save_file({"t0": np.zeros(10, np.float16)}, folder / shards[0])
    (folder / shards[1]).write_bytes(struct.pack("<Q", 1 << 60) + b"\0" * 4088)
    save_file({"t3": np.zeros(10, np.float16)}, folder / shards[3])

    info = inspect_path(folder)

    assert info.format == "safetensors"
    assert info.parameter_count is None  # a partial sum would look like a real count
    assert set(info.errors) == {
        "model-00002-of-00004.safetensors: header length 2^60 bytes exceeds the file (4096 bytes)",
        "model.safetensors.index.json: the shard model-00003-of-00004.safetensors is missing"}
    assert info.details["missing_shards"] == ["model-00003-of-00004.safetensors"]


def test_inspect_sharded_folder_sums_every_shard(tmp_path):
    folder = write_config(tmp_path / "m", model_type="qwen2", architectures=["Qwen2ForCausalLM"])
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    save_file({"a": np.zeros((4, 4), np.float16)}, folder / "model-00001-of-00002.safetensors")
    save_file({"b": np.zeros(8, np.float16)}, folder / "model-00002-of-00002.safetensors")
    info = inspect_path(folder)
    assert info.parameter_count == 24 and info.errors == ()
    assert info.details["weight_files"] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


@pytest.mark.parametrize("qc, fmt, bits, group_size, packed", [
    ({"quant_method": "awq", "bits": 4, "group_size": 128}, "awq", 4, 128, True),
    ({"quant_method": "gptq", "bits": 4, "group_size": 32}, "gptq", 4, 32, True),
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8", 8, None, False),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "bnb", 4, None, True),
    ({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 4, "group_size": 64}}}},
     "compressed-tensors", 4, 64, True),
    ({"quant_method": "mxfp4"}, "mxfp4", 4, 32, True),
])
def test_inspect_quantized_folders(tmp_path, qc, fmt, bits, group_size, packed):
    folder = llama_folder(tmp_path / "m", quantization_config=qc)
    info = inspect_path(folder)
    assert info.format == fmt and info.quantization == fmt
    assert info.details["bits"] == bits and info.details.get("group_size") == group_size
    assert info.details["parameter_count_basis"].startswith("stored tensor elements" if packed else "tensor elements")


def test_inspect_vision_folder(tmp_path):
    folder = write_config(tmp_path / "m", model_type="qwen2_5_vl", architectures=["Qwen2_5_VLForConditionalGeneration"],
                          vision_config={"depth": 32})
    save_file({"visual.patch_embed.proj.weight": np.zeros((4, 4), np.float16)}, folder / "model.safetensors")
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "Qwen2VLImageProcessor",
                                                                "min_pixels": 3136}))
    info = inspect_path(folder)
    assert info.capabilities == {"text", "vision"}
    assert "preprocessor_config.json: image processor" in info.details["vision_signals"]


def test_inspect_text_folder_named_vision_has_no_vision(tmp_path):
    assert "vision" not in inspect_path(llama_folder(tmp_path / "Llama-3.2-11B-Vision-Instruct")).capabilities


def test_inspect_pytorch_only_folder(tmp_path):
    folder = write_config(tmp_path / "m", model_type="gpt2", architectures=["GPT2LMHeadModel"], torch_dtype="float32")
    (folder / "pytorch_model.bin").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    (folder / "training_args.bin").write_bytes(b"PK\x03\x04")
    info = inspect_path(folder)
    assert info.format == "pytorch" and info.details["pickle"] is True
    assert info.details["weight_files"] == ["pytorch_model.bin"]
    assert info.quantization == "fp32" and info.capabilities == {"text"}


def test_inspect_pickle_names_alone(tmp_path):
    unknown = tmp_path / "data"
    unknown.mkdir()
    (unknown / "cache.bin").write_bytes(b"\0" * 16)  # any program writes .bin files
    assert inspect_path(unknown) is None
    known = tmp_path / "old-model"
    known.mkdir()
    (known / "pytorch_model.bin").write_bytes(b"PK\x03\x04")
    info = inspect_path(known)
    assert info.format == "pytorch" and info.details["pickle"] is True


def test_inspect_split_gguf_folder_sums_the_splits(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for no in range(2):
        w = gguf.GGUFWriter(folder / f"model-Q4_K_M-0000{no + 1}-of-00002.gguf", "llama")
        if no == 0:
            w.add_name("Llama")
            w.add_file_type(15)
        w.add_uint16("split.no", no)
        w.add_uint16("split.count", 2)
        w.add_tensor(f"t{no}", np.zeros(10 * (no + 1), np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    info = inspect_path(folder)
    assert info.parameter_count == 30 and info.quantization == "q4_k_m" and info.family == "llama"
    (folder / "model-Q4_K_M-00002-of-00002.gguf").unlink()
    assert inspect_path(folder).parameter_count is None


def test_inspect_gguf_only_folder_with_several_quants_and_mmproj(tmp_path):
    folder = tmp_path / "Qwen2.5-VL-GGUF"
    folder.mkdir()
    write_gguf(folder / "model-Q4_K_M.gguf", file_type=15, tokens=100)
    write_gguf(folder / "model-Q8_0.gguf", file_type=7, tokens=100)
    write_gguf(folder / "mmproj-model-f16.gguf", arch="clip", file_type=1, template=None, tokens=0, mmproj=True)

    info = inspect_path(folder)

    assert info.format == "gguf" and info.quantization is None  # two quants: the list says which
    assert info.details["gguf_files"] == [
        {"file": "mmproj-model-f16.gguf", "quantization": "f16", "mmproj": True, "parameter_count": 144},
        {"file": "model-Q4_K_M.gguf", "quantization": "q4_k_m", "mmproj": False, "parameter_count": 144},
        {"file": "model-Q8_0.gguf", "quantization": "q8_0", "mmproj": False, "parameter_count": 144}]
    assert info.capabilities == {"text", "vision", "tools"}
    assert info.family == "qwen2.5" and info.parameter_count == 144
    assert info.chat_template["source"] == "embedded"


def test_inspect_folder_with_lfs_pointers(tmp_path):
    folder = write_config(tmp_path / "m", model_type="llama", architectures=["LlamaForCausalLM"])
    (folder / "model.safetensors").write_bytes(LFS_POINTER)
    info = inspect_path(folder)
    assert info.errors == ("model.safetensors: a git-LFS pointer, not the weights (fetch them with git lfs pull)",)
    assert info.details["lfs_pointers"] == ["model.safetensors"]
    assert info.parameter_count is None


def test_inspect_folder_with_a_broken_config(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_bytes(b'{"model_type": "llama", "model_type": "qwen2"}')
    info = inspect_path(folder)
    assert info.errors == ("config.json: JSON repeats the key 'model_type'",)


@pytest.mark.parametrize("files, architectures", [
    ({"modules.json": "[]"}, ["XLMRobertaModel"]),
    ({}, ["BertModel"]),
])
def test_inspect_embedding_folder(tmp_path, files, architectures):
    folder = write_config(tmp_path / "m", model_type="bert", architectures=architectures)
    for name, text in files.items():
        (folder / name).write_text(text)
    save_file({"embeddings.word_embeddings.weight": np.zeros((8, 4), np.float32)}, folder / "model.safetensors")
    assert inspect_path(folder).capabilities == {"embedding"}


def test_inspect_gpt2_lm_head_model_is_not_an_embedding(tmp_path):
    folder = write_config(tmp_path / "m", model_type="gpt2", architectures=["GPT2LMHeadModel"])
    save_file({"h.0.attn.c_attn.weight": np.zeros((4, 4), np.float32)}, folder / "model.safetensors")
    assert inspect_path(folder).capabilities == {"text"}


def test_inspect_folder_reads_little(tmp_path, counted_reads):
    folder = write_config(tmp_path / "m", model_type="llama", architectures=["LlamaForCausalLM"])
    write_gguf(folder / "model.gguf", tokens=100)
    os.truncate(folder / "model.gguf", 4 << 30)
    save_file({"a": np.zeros(4, np.float16)}, folder / "model.safetensors")
    os.truncate(folder / "model.safetensors", 4 << 30)

    start = time.perf_counter()
    info = inspect_path(folder)

    assert time.perf_counter() - start < 0.5
    assert counted_reads() < 2 << 20
    assert info.details["gguf_files"][0]["quantization"] == "q4_k_m"


# --- the built-in hook ------------------------------------------------------------------------------------

def test_hook_inspect_artifact_gguf_file(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", tokens=10)
    host = get_plugins()
    info = host.inspect_artifact(path)
    assert info is not None and info.format == "gguf" and info.quantization == "q4_k_m"
    assert host.pm.hook.inspect_artifact(path=path).quantization == "q4_k_m"
    assert "inspect_artifact" in next(p for p in host.plugins if p.name == "builtin").hooks


def test_hook_inspect_artifact_hf_folder(tmp_path):
    info = get_plugins().inspect_artifact(llama_folder(tmp_path / "m"))
    assert info.format == "safetensors" and info.family == "llama"


def test_hook_inspect_artifact_unrecognised_is_none(tmp_path):
    (tmp_path / "readme.txt").write_text("not a model")
    assert get_plugins().inspect_artifact(tmp_path / "readme.txt") is None
    assert get_plugins().inspect_artifact(tmp_path) is None


def test_hook_inspect_artifact_bad_file_does_not_break_the_builtin(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 60))
    host = get_plugins()
    info = host.inspect_artifact(path)
    assert info.errors == ("x.safetensors: header length 2^60 bytes exceeds the file (8 bytes)",)
    assert next(p for p in host.plugins if p.name == "builtin").status == "ok"


def test_find_chat_template_takes_the_folder_listing_instead_of_a_stat_per_candidate(tmp_path):
    from imageworks_models.formats.templates import find_chat_template

    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    (tmp_path / "chat_template.jinja").write_text("{{ jinja }}")
    listed = {p.name for p in tmp_path.iterdir()}
    assert find_chat_template(tmp_path, names=listed) == find_chat_template(tmp_path)
    assert find_chat_template(tmp_path)["path"] == "chat_template.jinja"
    # the listing decides: a file it does not name is not looked at
    assert find_chat_template(tmp_path, names={"tokenizer_config.json"})["path"] == "tokenizer_config.json"
    assert find_chat_template(tmp_path, names=set()) is None
