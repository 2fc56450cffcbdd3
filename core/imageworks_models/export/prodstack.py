"""Helm values for the vLLM production stack (chart ``vllm-stack``): one serving engine per model.

Follows the chart at version ``CHART_VERSION`` (vllm-project/production-stack ``helm/values.yaml``,
``helm/values.schema.json``, ``helm/README.md`` and ``templates/deployment-vllm-multi.yaml``); the project keeps
the part of its values schema this export writes in ``vllm-stack-values.schema.json`` beside this module.

Each vLLM entry becomes one ``servingEngineSpec.modelSpec`` item:

- ``name``: the entry name as a Kubernetes name (lower case, ``a-z0-9-``, at most 40 characters: the chart
  builds Deployment and Service names from it); the entry's own name is in the ``imageworks.io/entry``
  annotation.
- ``repository``/``tag``: the engine image (settings ``export_vllm_image``, ``export_vllm_tag``).
- ``modelURL``: the Hugging Face repo id the engine downloads; ``modelRevision``: the recorded commit (else the
  revision), so every replica serves the same files.
- ``requestGPU``: how many GPUs of ``export_gpu_bytes`` the memory-fit estimate (``fit.assess``) needs at the
  entry's context: weights and KV cache are split over the GPUs, the engine overhead is paid on each, and vLLM
  takes ``--gpu-memory-utilization`` of each card; more than one GPU sets ``tensorParallelSize``.
- ``requestMemory``: weights + ``export_host_memory_bytes``; ``requestCPU``: ``export_request_cpu``;
  ``pvcStorage``: the model's size + ``export_pvc_headroom``.
- ``vllmConfig``: ``maxModelLen`` (the context checked), ``dtype``, ``gpuMemoryUtilization``, and the entry's
  ``extra_args`` (checked by the launch rules) in ``extraArgs``, with the flags the chart has fields for moved
  into those fields, plus ``--served-model-name`` so clients call the model by the same id as on one box.
- ``labels``: ``imageworks.io/manifest``: the locked manifest digest (a label value holds 63 characters: the
  algorithm and the first hex digits; the whole digest is in the ``imageworks.io/manifest-digest`` annotation).
- ``env``: ``backend_config.env`` through the launch rules, without anything that looks like a credential and
  without ``CUDA_VISIBLE_DEVICES`` and its kin (the cluster assigns the GPUs).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

CHART = "vllm-stack"
CHART_VERSION = "0.1.12"
CHART_SOURCE = "vllm-project/production-stack helm/, commit a6c01db"
SCHEMA_FILE = "vllm-stack-values.schema.json"
NAME_MAX = 40  # the chart appends "-deployment-vllm" / "-engine-service" to "<release>-<name>" (63 at most)
LABEL_MAX = 63
# extra_args flags the chart renders from vllmConfig fields: moved there so no flag appears twice.
LIFTED = {"--max-model-len": ("maxModelLen", int), "--dtype": ("dtype", str),
          "--gpu-memory-utilization": ("gpuMemoryUtilization", float),
          "--tensor-parallel-size": ("tensorParallelSize", int), "-tp": ("tensorParallelSize", int),
          "--max-num-seqs": ("maxNumSeqs", int)}
SWITCHES = {"--enable-prefix-caching": ("enablePrefixCaching", True),
            "--no-enable-prefix-caching": ("enablePrefixCaching", False),
            "--enable-chunked-prefill": ("enableChunkedPrefill", True),
            "--no-enable-chunked-prefill": ("enableChunkedPrefill", False)}


# Variables that pick devices of one machine; in a cluster the device plugin assigns the GPUs.
MACHINE_ENV = frozenset({"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
                         "ROCR_VISIBLE_DEVICES"})


class Skip(Exception):
    """An entry the chart cannot run; the message says why."""


def k8s_name(name: str, taken: set[str]) -> str:
    """``name`` as a lower-case DNS label of at most ``NAME_MAX`` characters, unique among ``taken``."""
    base = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "model"
    base = re.sub(r"-{2,}", "-", base)
    out = base[:NAME_MAX].rstrip("-")
    if out != base or out in taken:
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        out = f"{base[:NAME_MAX - 7].rstrip('-')}-{digest}"
    taken.add(out)
    return out


def label_value(text: str) -> str:
    """``text`` as a Kubernetes label value (``[A-Za-z0-9._-]``, alphanumeric ends, at most 63 characters)."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:LABEL_MAX]
    return value.strip("-._")


def _gib(n: float) -> str:
    return f"{max(1, math.ceil(n / (1 << 30)))}Gi"


def _repo_id(entry: dict[str, Any]) -> str:
    from imageworks_models.registry.predicates import is_store_reference

    src = entry.get("source") or {}
    if src.get("repo_id") and (src.get("provider") in (None, "hf", "huggingface")):
        return str(src["repo_id"])
    configured = str((entry.get("backend_config") or {}).get("model_path") or "")
    from imageworks_models.registry.identity import looks_local

    if configured and not configured.startswith(("/", "~", ".")) and not looks_local(configured) \
            and not is_store_reference(configured) and configured.count("/") == 1:
        return configured
    raise Skip("no Hugging Face repo id: the chart's engine downloads the model by repo id")


def _split_args(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """``(vllmConfig fields, the other arguments)`` from checked ``extra_args``."""
    fields: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        flag, eq, inline = token.partition("=")
        key = flag.replace("_", "-") if flag.startswith("--") else flag
        if key in SWITCHES and not eq:
            field, value = SWITCHES[key]
            fields[field] = value
            i += 1
            continue
        if key in LIFTED:
            field, kind = LIFTED[key]
            value = inline if eq else (args[i + 1] if i + 1 < len(args) else None)
            try:
                fields[field] = kind(value)
            except (TypeError, ValueError):
                raise Skip(f"extra_args {token} has no valid value") from None
            i += 1 if eq else 2
            continue
        rest.append(token)
        i += 1
    return fields, rest


def model_spec(entry: dict[str, Any], *, settings, facts: Any, taken: set[str]) -> tuple[
        dict[str, Any], list[str]]:
    """One ``modelSpec`` item for ``entry``, and notes on what was left out or assumed.

    ``facts`` are its memory facts, or a callable that reads them (called only for an entry the chart can run).

    Raises:
        Skip: the entry cannot run in the chart (why in the message).
        UnsafeLaunchError: the launch rules refuse its extra_args or env.
    """
    from imageworks_models.fit.devices import Gpu, Inventory
    from imageworks_models.fit.estimate import assess, configured_context
    from imageworks_models.serving.serverargs import check_extra_args, check_served_id
    from imageworks_models.export.common import check_no_credentials, safe_env

    name = entry["name"]
    backend = entry.get("backend")
    cfg = entry.get("backend_config") or {}
    if cfg.get("base_url"):
        raise Skip("a remote endpoint (backend_config.base_url): nothing to deploy")
    if backend != "vllm":
        raise Skip(f"its backend is {backend or 'not set'}; the chart runs vLLM engines only"
                   + (" (Ollama models stay with Ollama)" if backend == "ollama" else ""))
    if str(entry.get("format") or "").lower() == "gguf":
        raise Skip("GGUF: the chart's engine loads a Hub repo of safetensors weights (vLLM reads GGUF only from one "
                   "local file)")
    repo = _repo_id(entry)
    facts = facts() if callable(facts) else facts  # read only for entries that get this far
    notes: list[str] = []
    protected = {"--host": "the chart", "--port": "the chart", "--model": "modelURL",
                 "--served-model-name": "served_model_id", "--config": "extra_args itself", "--uds": "the chart",
                 "--revision": "the entry's source commit"}
    trust = cfg.get("trust_remote_code") is True
    extra = check_extra_args(cfg.get("extra_args"), name=name, protected=protected, trust_remote_code=trust)
    served = check_served_id(entry.get("served_model_id") or name, name=name)
    check_no_credentials(entry, [*extra, repo, served])
    lifted, rest = _split_args(extra)
    if trust:
        rest.insert(0, "--trust-remote-code")
    if (entry.get("capabilities") or {}).get("vision") and not any(
            (a.split("=", 1)[0].replace("_", "-")).startswith("--limit-mm-per-prompt") for a in rest):
        limit = cfg.get("limit_mm_per_prompt") or {"image": 1}
        rest += ["--limit-mm-per-prompt", limit if isinstance(limit, str) else json.dumps(limit, separators=(",", ":"))]
    if served != repo:
        rest = ["--served-model-name", served, *rest]
    env, left_out = safe_env(entry)
    notes += left_out
    for key in [k for k in env if k.upper() in MACHINE_ENV]:
        del env[key]
        notes.append(f"env {key} left out: the cluster assigns the GPUs (requestGPU)")
    gpu_bytes = int(settings.export_gpu_bytes)
    util = lifted.get("gpuMemoryUtilization") or settings.fit_gpu_memory_utilization
    context = lifted.get("maxModelLen") or configured_context(entry)
    inventory = Inventory(gpus=[Gpu(index=0, name="cluster GPU", total_bytes=gpu_bytes, free_bytes=gpu_bytes,
                                    used_bytes=0)], source="none")
    # one sequence at the full context, as `fit` checks it: vLLM fills the rest of its share with KV blocks
    fit = assess(entry, settings=settings, inventory=inventory, context=context, facts=facts or {})
    gpus = int(lifted.get("tensorParallelSize") or 0)
    if fit.total_bytes is None:
        gpus = gpus or 1
        notes.append(f"no header facts ({fit.reason}): requestGPU {gpus} and maxModelLen unset are guesses")
    else:
        per_gpu = util * gpu_bytes - (fit.overhead_bytes or 0)
        splittable = fit.total_bytes - (fit.overhead_bytes or 0)
        need = math.ceil(splittable / per_gpu) if per_gpu > 0 else 0
        if need < 1 and per_gpu <= 0:
            raise Skip(f"a {_gib(gpu_bytes)} GPU at utilization {util:g} leaves nothing beyond the engine overhead")
        need = 1 << max(0, math.ceil(math.log2(max(1, need))))  # tensor parallel sizes that divide the heads
        if gpus and gpus < need:
            notes.append(f"tensor parallel size {gpus} from extra_args is below the {need} GPUs the estimate needs")
        gpus = max(gpus, need)
        if gpus > settings.export_max_gpus:
            raise Skip(f"needs {gpus} GPUs of {_gib(gpu_bytes)} at context {fit.context} "
                       f"(export_max_gpus is {settings.export_max_gpus})")
    size = (entry.get("download") or {}).get("size_bytes") or (facts or {}).get("weights_bytes") or \
        sum(int(f.get("size") or 0) for f in (entry.get("artifacts") or {}).get("files") or [])
    weights = (facts or {}).get("weights_bytes") or size or 0
    vllm_config: dict[str, Any] = {"enablePrefixCaching": lifted.get("enablePrefixCaching", True)}
    if "enableChunkedPrefill" in lifted:
        vllm_config["enableChunkedPrefill"] = lifted["enableChunkedPrefill"]
    if fit.context and fit.total_bytes is not None:
        vllm_config["maxModelLen"] = int(fit.context)
    elif context:
        vllm_config["maxModelLen"] = int(context)
    vllm_config["dtype"] = str(lifted.get("dtype") or cfg.get("dtype") or "auto")
    if gpus > 1:
        vllm_config["tensorParallelSize"] = gpus
    if "maxNumSeqs" in lifted:
        vllm_config["maxNumSeqs"] = int(lifted["maxNumSeqs"])
    vllm_config["gpuMemoryUtilization"] = float(util)
    if rest:
        vllm_config["extraArgs"] = rest
    spec: dict[str, Any] = {"name": k8s_name(name, taken), "repository": settings.export_vllm_image,
                            "tag": settings.export_vllm_tag, "modelURL": repo}
    src = entry.get("source") or {}
    revision = src.get("commit") or src.get("revision")
    if revision:
        spec["modelRevision"] = str(revision)
    if not src.get("commit"):
        notes.append("no commit recorded: replicas get whatever the revision points at when they start")
    spec.update({"replicaCount": 1, "requestCPU": int(settings.export_request_cpu),
                 "requestMemory": _gib(weights + settings.export_host_memory_bytes), "requestGPU": gpus})
    if size:
        spec["pvcStorage"] = _gib(size * (1 + settings.export_pvc_headroom))
    spec["vllmConfig"] = vllm_config
    labels = {"imageworks.io/entry": label_value(name)}
    annotations = {"imageworks.io/entry": name}
    digest = (entry.get("version_lock") or {}).get("expected_aggregate") if \
        (entry.get("version_lock") or {}).get("locked") else None
    if digest:
        labels["imageworks.io/manifest"] = label_value(str(digest).replace(":", "-"))
        annotations["imageworks.io/manifest-digest"] = str(digest)
    else:
        notes.append("not locked: no manifest digest label (lock it: imageworks-models lock NAME --set-expected)")
    spec["labels"] = labels
    spec["annotations"] = annotations
    if env:
        spec["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return spec, notes


def values(entries: list[dict[str, Any]], *, settings, plugins=None) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                              list[dict[str, Any]]]:
    """The chart values for ``entries``.

    Returns:
        ``(values, exported, skipped)``: ``exported`` is ``[{"name", "spec_name", "requestGPU", "notes"}]``,
        ``skipped`` is ``[{"name", "reason"}]``.
    """
    from imageworks_models.errors import ImageworksError
    from imageworks_models.fit.estimate import facts_of

    taken: set[str] = set()
    specs, exported, skipped = [], [], []
    for entry in entries:
        try:
            spec, notes = model_spec(entry, settings=settings, facts=lambda e=entry: facts_of(
                e, settings=settings, plugins=plugins), taken=taken)
        except Skip as why:
            skipped.append({"name": entry["name"], "reason": str(why)})
            continue
        except ImageworksError as exc:
            skipped.append({"name": entry["name"], "reason": exc.message})
            continue
        specs.append(spec)
        exported.append({"name": entry["name"], "spec_name": spec["name"], "requestGPU": spec["requestGPU"],
                         "notes": notes})
    doc = {"servingEngineSpec": {"enableEngine": True, "modelSpec": specs}}
    return doc, exported, skipped


def schema() -> dict[str, Any]:
    """The values schema the project keeps for the chart version it follows."""
    from pathlib import Path

    return json.loads((Path(__file__).with_name(SCHEMA_FILE)).read_text(encoding="utf-8"))


def header() -> str:
    return (f"# Helm values for the {CHART} chart {CHART_VERSION} ({CHART_SOURCE}), written by imageworks-models "
            "export --to production-stack.\n# helm install vllm vllm/vllm-stack --version "
            f"{CHART_VERSION} -f THIS_FILE\n")
