"""Tiny but real llama.cpp models for tests and benchmarks, written with the ``gguf`` package.

``write_tiny_llama(path, seed=...)`` writes a complete ``llama``-architecture GGUF that llama.cpp loads and
runs: 2 layers, n_embd 64, 4 heads, a SentencePiece ("llama") vocabulary of about 300 tokens (the three
special tokens, the 256 byte-fallback tokens llama.cpp's SPM tokenizer needs, then ``▁``-prefixed words and
single characters), a Jinja chat template, and float32 weights drawn from a seeded random generator. The file
is about 0.5 MB and takes a few milliseconds to write; the same seed always gives the same bytes.

The output projection's rows for the special and byte tokens are zero and the word rows are scaled up, so that
greedy decoding (temperature 0) picks a word every time: short, printable, deterministic completions (long runs
of byte tokens are very slow in llama-cpp-python and need not be valid UTF-8).

Also here: ``write_split`` (a model as a set of ``-0000N-of-0000M.gguf`` shard names) and ``write_bad_arch``
(a valid GGUF of an architecture llama.cpp does not know).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_FF = 128
N_CTX_TRAIN = 512
WORDS = ("hello", "world", "the", "a", "model", "tiny", "test", "cat", "dog", "sun", "moon", "red", "blue", "green",
         "yes", "no", "one", "two", "three", "four", "five", "fast", "slow", "up", "down", "left", "right", "on",
         "off", "in", "out", "is", "was", "and", "or", "of", "to", "user", "assistant", "say")
CHARS = tuple("abcdefghijklmnopqrstuvwxyz.,!?")
CHAT_TEMPLATE = ("{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
BOS, EOS, UNK = 1, 2, 0


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """``(tokens, scores, token_types)`` of the tiny SentencePiece vocabulary."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    pieces = ["▁"] + [f"▁{w}" for w in WORDS] + list(CHARS) + [f"▁{c}" for c in CHARS if c.isalpha()]
    pieces = list(dict.fromkeys(pieces))  # each piece once ("▁a" is a word and a letter)
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    return tokens, scores, [int(t) for t in types]


def write_tiny_llama(path: Path, *, seed: int = 0, name: str = "Tiny Llama", chat_template: str = CHAT_TEMPLATE,
                     file_type: int = gguf.LlamaFileType.ALL_F32) -> Path:
    """Write the tiny model described in the module docstring to ``path``; returns ``path``."""
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)

    def weights(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_file_type(int(file_type))
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(BOS)
    w.add_eos_token_id(EOS)
    w.add_unk_token_id(UNK)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(chat_template)
    # numpy shapes are ggml's ne reversed: token_embd is ne [n_embd, n_vocab], so (n_vocab, n_embd) here
    w.add_tensor("token_embd.weight", weights(n_vocab, N_EMBD, scale=1.0))
    for i in range(N_LAYER):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for part in ("q", "k", "v", "output"):
            w.add_tensor(f"blk.{i}.attn_{part}.weight", weights(N_EMBD, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", weights(N_FF, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_up.weight", weights(N_FF, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_down.weight", weights(N_EMBD, N_FF))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    output = weights(n_vocab, N_EMBD, scale=3.0)
    output[:259] = 0.0  # special and byte tokens: logit 0, below the best word's (see the module docstring)
    w.add_tensor("output.weight", output)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)


def write_bad_arch(path: Path) -> Path:
    """A valid GGUF file whose architecture (``nosucharch``) llama.cpp refuses to load."""
    w = gguf.GGUFWriter(str(path), "nosucharch")
    w.add_name("Not a model")
    w.add_tensor("token_embd.weight", np.ones((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)


def split_names(stem: str, count: int) -> list[str]:
    """llama.cpp's shard names: ``<stem>-00001-of-0000N.gguf`` ... (what ``llama-gguf-split`` writes)."""
    return [f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
