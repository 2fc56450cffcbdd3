"""Will it fit: the memory a model needs on an engine, against what a device has free.

    total = weights + KV cache + engine overhead

* **weights**: the bytes the weight files store (``formats/memory.py``): quantized tensors at their packed
  size, a vision tower or a GGUF projector included.
* **KV cache** = 2 x layers x kv_heads x head_dim x bytes per element x context x parallel sequences, with
  grouped-query attention (``kv_heads``), keys and values of their own sizes, sliding-window layers holding
  at most ``window`` tokens, and MLA models holding one latent of ``kv_lora_rank + rope_dim`` per token.
* **overhead**, each a setting (README, "Will it fit?"): ``fit_cuda_context_bytes`` per GPU process;
  vLLM and LMDeploy add ``fit_runtime_bytes`` and vLLM claims ``--gpu-memory-utilization`` of the card
  (``fit_gpu_memory_utilization`` when the entry sets none); llama.cpp and Ollama add
  ``fit_compute_bytes`` and can keep layers in RAM (offload).

A measured footprint (``performance.footprints``, recorded after an activation) replaces the estimate of
weights and overhead for the entry: measured total + the KV difference to the context it was measured at.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

GPU_ENGINES = ("vllm", "lmdeploy")
HYBRID_ENGINES = ("llamacpp", "ollama")
KV_DTYPES = {"auto": 2.0, "f16": 2.0, "fp16": 2.0, "bf16": 2.0, "f32": 4.0, "fp32": 4.0, "fp8": 1.0,
             "fp8_e4m3": 1.0, "fp8_e5m2": 1.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32, "q5_0": 22 / 32,
             "q5_1": 24 / 32, "iq4_nl": 18 / 32}
VERDICTS = ("fits", "fits-with-offload", "does-not-fit", "unknown")


def kv_element_bytes(kv_dtype: str | None) -> float:
    """Bytes per cached element for a KV dtype (``auto``: fp16/bf16, 2 bytes).

    Raises:
        ValueError: an unknown dtype.
    """
    key = (kv_dtype or "auto").lower()
    if key not in KV_DTYPES:
        raise ValueError(f"unknown KV cache dtype {kv_dtype!r} (one of: {', '.join(KV_DTYPES)})")
    return KV_DTYPES[key]


def kv_bytes_per_token(facts: dict[str, Any], element_bytes: float = 2.0) -> float | None:
    """KV bytes one token takes in every full-attention layer together (the per-layer sum x layers)."""
    layers = facts.get("layers")
    if not layers:
        return None
    if facts.get("kv_lora_rank"):
        per_layer = (facts["kv_lora_rank"] + (facts.get("rope_dim") or 0)) * element_bytes
    else:
        heads, k, v = facts.get("kv_heads"), facts.get("head_dim_k"), facts.get("head_dim_v") or facts.get("head_dim_k")
        if not heads or not k:
            return None
        per_layer = heads * (k + v) * element_bytes
    return per_layer * layers


def kv_bytes(facts: dict[str, Any], context: int, parallel: int = 1, element_bytes: float = 2.0) -> int | None:
    """The KV cache for ``parallel`` sequences of ``context`` tokens (sliding-window layers hold at most their
    window); ``None`` when the headers do not say enough."""
    per_token = kv_bytes_per_token(facts, element_bytes)
    if per_token is None:
        return None
    layers = facts["layers"]
    per_layer_token = per_token / layers
    sliding = min(facts.get("sliding_layers") or 0, layers)
    window = facts.get("sliding_window") or context
    tokens_full = context * parallel
    tokens_window = min(context, window) * parallel
    return int(math.ceil(per_layer_token * ((layers - sliding) * tokens_full + sliding * tokens_window)))


def configured_context(entry: dict[str, Any]) -> int | None:
    """The context the entry's launch asks for: ``--max-model-len`` (vLLM), ``--session-len`` (LMDeploy),
    ``-c``/``--ctx-size`` (llama.cpp), ``backend_config.context_length``, else ``None`` (the model's own)."""
    cfg = entry.get("backend_config") or {}
    value = cfg.get("context_length") or cfg.get("ctx_size")
    args = [str(a) for a in cfg.get("extra_args") or () if isinstance(a, (str, int))]
    names = ("--max-model-len", "--session-len", "-c", "--ctx-size", "--n_ctx", "--n-ctx")
    for i, arg in enumerate(args):
        flag, _, inline = arg.partition("=")
        if flag in names:
            value = inline or (args[i + 1] if i + 1 < len(args) else None)
    try:
        number = int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return number if number and number > 0 else None


def configured_utilization(entry: dict[str, Any]) -> float | None:
    args = [str(a) for a in (entry.get("backend_config") or {}).get("extra_args") or ()]
    for i, arg in enumerate(args):
        flag, _, inline = arg.partition("=")
        if flag == "--gpu-memory-utilization":
            try:
                return float(inline or args[i + 1])
            except (IndexError, ValueError):
                return None
    return None


@dataclass
class Fit:
    """One entry's memory fit; ``as_dict()`` is the ``fit --json`` shape (README, "Will it fit?")."""

    name: str
    backend: str
    verdict: str  # one of VERDICTS
    reason: str
    context: int | None = None
    parallel: int = 1
    kv_dtype: str = "auto"
    weights_bytes: int | None = None
    kv_bytes: int | None = None
    overhead_bytes: int | None = None
    total_bytes: int | None = None
    device: str | None = None
    available_bytes: int | None = None
    largest_context: int | None = None
    gpu_layers: int | None = None
    flags: list[str] = field(default_factory=list)
    estimate_from: str = "headers"  # headers | measured
    measured: dict[str, Any] | None = None
    kv_bytes_per_token: float | None = None

    @property
    def shortfall_bytes(self) -> int | None:
        if self.total_bytes is None or self.available_bytes is None:
            return None
        return max(0, self.total_bytes - self.available_bytes)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "verdict": self.verdict, "reason": self.reason,
                "context": self.context, "parallel": self.parallel, "kv_dtype": self.kv_dtype,
                "weights_bytes": self.weights_bytes, "kv_bytes": self.kv_bytes,
                "overhead_bytes": self.overhead_bytes, "total_bytes": self.total_bytes, "device": self.device,
                "available_bytes": self.available_bytes, "shortfall_bytes": self.shortfall_bytes,
                "largest_context": self.largest_context, "gpu_layers": self.gpu_layers, "flags": list(self.flags),
                "estimate_from": self.estimate_from, "measured": self.measured,
                "kv_bytes_per_token": self.kv_bytes_per_token}


def facts_of(entry: dict[str, Any], *, settings=None, plugins=None, inspect: bool = True) -> dict[str, Any] | None:
    """The entry's memory facts: recorded at scan/download time (``metadata.memory``), else read from its
    files' headers now (through the stat-keyed inspection cache). An Ollama projector blob adds its bytes."""
    from imageworks_models.registry.identity import companions

    facts = dict((entry.get("metadata") or {}).get("memory") or {})
    if not facts.get("weights_bytes") and inspect and settings is not None:
        facts = _inspect_facts(entry, settings=settings, plugins=plugins) or facts
    if not facts:
        return None
    extra = 0
    for path in companions(entry):
        try:
            extra += os.stat(path).st_size
        except OSError:
            continue
    if extra and facts.get("weights_bytes") and not facts.get("projector_bytes"):
        facts["weights_bytes"] += extra
        facts["projector_bytes"] = extra
    return facts


def _inspect_facts(entry: dict[str, Any], *, settings, plugins) -> dict[str, Any] | None:
    from imageworks_models.registry.identity import files_path
    from imageworks_models.formats.inspectcache import InspectCache, signature

    path = files_path(entry)
    if not path or not os.path.exists(path):
        return None
    sig = signature(path)
    if sig is None:
        return None
    def read(p):  # plugins load only when the cache has nothing for these files
        from imageworks_models.pluginhost.manager import get_plugins

        return (plugins or get_plugins(settings)).inspect_artifact(p)

    cache = InspectCache(settings.cache_dir)
    info = cache.get(path, sig[0], read)
    cache.save()
    return dict(info.details.get("memory") or {}) if info is not None else None


def _measured(entry: dict[str, Any], backend: str, parallel: int) -> dict[str, Any] | None:
    prints = ((entry.get("performance") or {}).get("footprints") or [])
    same = [p for p in prints if isinstance(p, dict) and p.get("backend") == backend and isinstance(p.get("bytes"), int)
            and p.get("parallel", 1) == parallel]
    return same[-1] if same else None


def assess(entry: dict[str, Any], *, settings, inventory, context: int | None = None, parallel: int = 1,
           kv_dtype: str | None = None, gpu: int | None = None, reclaim: dict[int, int] | None = None,
           facts: dict[str, Any] | None = None, plugins=None) -> Fit:
    """Whether ``entry`` fits where it would run (see the module docstring).

    Args:
        entry: the effective entry.
        settings: resolved settings (the overhead terms).
        inventory: :func:`imageworks_models.fit.devices.inventory`'s reading.
        context: tokens per sequence (default: the entry's configured context, else the model's maximum).
        parallel: sequences served at once.
        kv_dtype: the KV cache dtype (``auto``, ``fp8``, ``q8_0``...).
        gpu: the GPU index to check (default: the one with the most free memory).
        reclaim: bytes per GPU index (``-1``: RAM) that activating this entry frees (the model it replaces).
        facts: the memory facts, when the caller has them (default: :func:`facts_of`).

    Returns:
        A :class:`Fit`; ``unknown`` when the headers or the device cannot tell.

    Raises:
        ValueError: an unknown ``kv_dtype`` or a GPU index the machine does not have.
    """
    backend = str(entry.get("backend") or "")
    name = entry["name"]
    element = kv_element_bytes(kv_dtype)
    fit = Fit(name=name, backend=backend, verdict="unknown", reason="", parallel=max(1, parallel),
              kv_dtype=(kv_dtype or "auto").lower())
    facts = facts if facts is not None else facts_of(entry, settings=settings, plugins=plugins)
    if not facts or not facts.get("weights_bytes"):
        fit.reason = "no header facts for its files (download or scan it, then `verify` records them)" \
            if not (entry.get("download") or {}).get("path") else "its headers say nothing of its size"
        return fit
    limit = facts.get("context_max")
    fit.context = context or configured_context(entry) or limit or 4096
    fit.kv_bytes_per_token = kv_bytes_per_token(facts, element)
    fit.weights_bytes = facts["weights_bytes"]
    kv = kv_bytes(facts, fit.context, fit.parallel, element)
    fit.kv_bytes = kv if kv is not None else 0
    reclaim = reclaim or {}
    cuda = settings.fit_cuda_context_bytes
    engine_gpu = backend in GPU_ENGINES
    gpus = inventory.gpus
    if gpu is not None and not any(g.index == gpu for g in gpus):
        raise ValueError(f"no GPU {gpu} on this machine ({len(gpus)} found"
                         + (f": {inventory.note})" if inventory.note else ")"))
    device = next((g for g in gpus if g.index == gpu), None) if gpu is not None else \
        max(gpus, key=lambda g: g.free_bytes + reclaim.get(g.index, 0), default=None)
    overhead = (cuda + settings.fit_runtime_bytes) if engine_gpu else \
        settings.fit_compute_bytes + (cuda if device is not None else 0)
    fit.overhead_bytes = overhead
    measured = _measured(entry, backend, fit.parallel)
    base = fit.weights_bytes + overhead
    if measured:
        fit.measured = measured
        fit.estimate_from = "measured"
        was = kv_bytes(facts, int(measured.get("context") or fit.context), fit.parallel, element) or 0
        base = measured["bytes"] - was

    def need(ctx: int) -> int:
        return base + (kv_bytes(facts, ctx, fit.parallel, element) or 0)

    fit.total_bytes = need(fit.context)
    uncounted = "" if kv is not None else " (its headers give no attention shape: the KV cache is not counted)"

    def largest(available: int) -> int | None:
        top = limit or max(fit.context, 1 << 17)
        if need(1) > available:
            return 0
        lo, hi = 1, top
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if need(mid) <= available else (lo, mid - 1)
        return lo

    if engine_gpu:
        if device is None:
            fit.reason = f"cannot tell: {inventory.note or 'no GPU found'}; {backend} runs on a GPU"
            return fit
        free = device.free_bytes + reclaim.get(device.index, 0)
        fit.device = f"gpu {device.index} ({device.name})"
        util = configured_utilization(entry) or settings.fit_gpu_memory_utilization
        budget = min(int(util * device.total_bytes), free) if backend == "vllm" else free
        fit.available_bytes = budget
        fit.largest_context = largest(budget)
        if fit.total_bytes <= budget:
            fit.verdict = "fits"
            fit.reason = f"needs {_gib(fit.total_bytes)} of {_gib(budget)} available on {fit.device}"
        elif backend == "vllm" and fit.total_bytes <= free:
            wanted = math.ceil(fit.total_bytes / device.total_bytes * 100) / 100
            fit.verdict = "fits"
            fit.available_bytes = free
            fit.reason = (f"needs {_gib(fit.total_bytes)}: more than --gpu-memory-utilization {util:g} gives, "
                          f"but {_gib(free)} is free; use {wanted:.2f}")
            util = wanted
            fit.largest_context = largest(free)
        else:
            fit.verdict = "does-not-fit"
            fit.reason = (f"needs {_gib(fit.total_bytes)}, {_gib(budget)} available on {fit.device}: "
                          f"{_gib(fit.total_bytes - budget)} short")
        fit.flags = _flags(backend, fit, util=util)
        fit.reason += uncounted
        return fit
    # llama.cpp and Ollama: the GPU first, the rest of the layers in RAM
    ram = (inventory.ram_available_bytes or 0) + reclaim.get(-1, 0)
    if device is None:
        fit.device, fit.available_bytes = "cpu", ram
        fit.largest_context = largest(ram) if ram else None
        fit.gpu_layers = 0
        if not ram:
            fit.reason = "cannot tell: this machine's free memory could not be read"
            return fit
        fit.verdict = "fits" if fit.total_bytes <= ram else "does-not-fit"
        fit.reason = (f"needs {_gib(fit.total_bytes)} of {_gib(ram)} free RAM (no GPU: "
                      f"{inventory.note or 'none found'})" if fit.verdict == "fits" else
                      f"needs {_gib(fit.total_bytes)}, {_gib(ram)} RAM free: {_gib(fit.total_bytes - ram)} short")
        fit.flags = _flags(backend, fit)
        fit.reason += uncounted
        return fit
    free = device.free_bytes + reclaim.get(device.index, 0)
    fit.device = f"gpu {device.index} ({device.name})"
    fit.available_bytes = free
    fit.largest_context = largest(free)
    layers = facts.get("layers") or 0
    if fit.total_bytes <= free:
        fit.verdict, fit.gpu_layers = "fits", layers + 1 if layers else None
        fit.reason = f"needs {_gib(fit.total_bytes)} of {_gib(free)} free on {fit.device}"
    elif layers and fit.total_bytes <= free + ram:
        per_layer = (fit.total_bytes - overhead) / layers
        fit.gpu_layers = max(0, min(layers, int((free - overhead) // per_layer))) if free > overhead else 0
        fit.verdict = "fits-with-offload"
        fit.reason = (f"needs {_gib(fit.total_bytes)}, {_gib(free)} free on {fit.device}: {fit.gpu_layers} of "
                      f"{layers} layers on the GPU, the rest in RAM ({_gib(ram)} free)")
    else:
        fit.verdict = "does-not-fit"
        fit.reason = (f"needs {_gib(fit.total_bytes)}, {_gib(free)} free on {fit.device} and {_gib(ram)} RAM: "
                      f"{_gib(fit.total_bytes - free - ram)} short")
    fit.flags = _flags(backend, fit)
    fit.reason += uncounted
    return fit


def _flags(backend: str, fit: Fit, *, util: float | None = None) -> list[str]:
    """The engine options that give the context checked (the largest that fits, when the asked one does not)."""
    ctx = fit.context if fit.verdict != "does-not-fit" else (fit.largest_context or 0)
    if not ctx:
        return []
    if backend == "vllm":
        return ["--max-model-len", str(ctx), "--gpu-memory-utilization", f"{util:.2f}"] + \
            (["--max-num-seqs", str(fit.parallel)] if fit.parallel > 1 else [])
    if backend == "lmdeploy":
        return ["--session-len", str(ctx)]
    if backend == "llamacpp":
        out = ["-c", str(ctx * fit.parallel), "-ngl", str(fit.gpu_layers if fit.gpu_layers is not None else 0)]
        return out + (["-np", str(fit.parallel)] if fit.parallel > 1 else [])
    if backend == "ollama":
        out = [f"num_ctx={ctx}"]
        return out + ([f"num_gpu={fit.gpu_layers}"] if fit.gpu_layers is not None and fit.verdict != "fits" else [])
    return []


def _gib(n: int | float) -> str:
    return f"{n / (1 << 30):.2f} GiB" if abs(n) >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"
