"""The memory estimate (core/imageworks_models/fit/) against the real engine: llama.cpp loads tiny GGUF models
(tinygguf.py) at three context lengths and reports its model buffer and KV cache sizes in its load log; our
estimate from the headers alone must match both within 5% (issue 22)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from tinygguf import write_tiny_llama

from imageworks_models.fit import kv_bytes
from imageworks_models.formats.inspect import inspect_path

MIB = 1 << 20
LOAD = """
import sys, llama_cpp
llama_cpp.Llama(sys.argv[1], n_ctx=int(sys.argv[2]), n_batch=32, verbose=True)
"""


def engine_sizes(model: Path, context: int) -> tuple[float, float]:
    """``(model buffer bytes, KV cache bytes)`` as llama.cpp's load log prints them (in MiB, two decimals)."""
    done = subprocess.run([sys.executable, "-c", LOAD, str(model), str(context)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stderr
    weights = sum(float(m) for m in re.findall(r"model buffer size =\s*([0-9.]+) MiB", log))
    kv = re.search(r"llama_kv_cache: size =\s*([0-9.]+) MiB \(\s*(\d+) cells", log)
    assert weights and kv, log[-3000:]
    assert int(kv.group(2)) == context, kv.group(0)  # the cache holds the context asked for, no padding to count
    return weights * MIB, float(kv.group(1)) * MIB


@pytest.mark.engine
@pytest.mark.parametrize("context", [1024, 4096, 16384])
def test_estimate_matches_what_llama_cpp_allocates(tmp_path, context):
    model = write_tiny_llama(tmp_path / "tiny.gguf")
    facts = inspect_path(model).details["memory"]

    weights, kv = engine_sizes(model, context)

    ours_kv = kv_bytes(facts, context, 1, 2.0)  # llama.cpp's default cache type: f16
    assert abs(ours_kv - kv) <= 0.05 * kv, (ours_kv, kv)
    assert abs(facts["weights_bytes"] - weights) <= 0.05 * weights, (facts["weights_bytes"], weights)
