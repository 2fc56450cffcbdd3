"""Which files of a repo a download takes.

The rule (documented in the README, "download"):

- **weights** by format: all root ``*.safetensors`` shards (safetensors, awq, gptq, fp8...; a
  ``consolidated*`` duplicate is skipped when sharded files exist), or *one* GGUF quant (its split
  parts together, plus an ``mmproj`` projector when there is one), or, only when a repo has nothing
  else, pickle ``*.bin``/``*.pt`` files (flagged: loading them runs code). ``--weights`` names exact
  files instead.
- **essentials**, always: root-level config, tokenizer, processor and chat-template files.
- **optional**, with ``--include-optional``: everything else at the root (README, licence, custom
  ``*.py`` code, images) — never other variants' weights or sub-folders of weights.
- ``--support-repo``: essentials missing from the main repo are taken from the support repo.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

from imageworks_models.api import AcquisitionError

from .remote import RemoteFile, RemoteRepo

SAFETENSORS = ".safetensors"
GGUF = ".gguf"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
OTHER_WEIGHTS = (".onnx", ".msgpack", ".h5", ".tflite", ".ot", ".mlmodel", ".npz")
ESSENTIAL_SUFFIXES = (".json", ".model", ".txt", ".jinja", ".tiktoken", ".vocab")
OPTIONAL_NAMES = re.compile(r"(?i)^(readme|license|licence|notice|use_policy|.gitattributes)")
QUANT_METHODS = ("awq", "gptq", "fp8", "bnb", "bitsandbytes", "compressed-tensors", "mxfp4", "exl2", "hqq")
FORMATS = ("safetensors", "gguf", "pytorch") + QUANT_METHODS
GGUF_PREFERENCE = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0", "Q6_K", "Q8_0")

_GGUF_QUANT = re.compile(
    r"(?i)(?:^|[-_.])(I?Q\d(?:_[0-9A-Z]+)*|T?Q\d_\d|F16|BF16|F32|FP16|MXFP4)(?=[-_.]|$)")
_SPLIT = re.compile(r"(?i)-\d{5}-of-\d{5}(?=\.gguf$)")
_SHARD = re.compile(r"(?i)^model(-\d+-of-\d+)?\.safetensors$")


@dataclass
class Plan:
    """The files a download takes, by repo, and what the choice says about the model."""

    main: list[RemoteFile] = field(default_factory=list)
    support: list[RemoteFile] = field(default_factory=list)
    format: str | None = None  # the format the weights were chosen for (awq/gptq... checked later)
    quant: str | None = None  # the GGUF quant chosen
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[RemoteFile]:
        return self.main + self.support

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def is_weight(path: str) -> bool:
    return path.lower().endswith((SAFETENSORS, GGUF) + PICKLE_SUFFIXES + OTHER_WEIGHTS)


def gguf_quant(path: str) -> str | None:
    """The quant named in a GGUF file name (``Qwen3-8B-Q4_K_M.gguf`` -> ``Q4_K_M``), if any."""
    stem = _SPLIT.sub("", path.rsplit("/", 1)[-1])
    stem = stem[:-len(GGUF)] if stem.lower().endswith(GGUF) else stem
    found = _GGUF_QUANT.findall(stem)
    return found[-1].upper() if found else None


def _is_mmproj(path: str) -> bool:
    return "mmproj" in path.rsplit("/", 1)[-1].lower()


def _essential(f: RemoteFile) -> bool:
    name = f.path
    if "/" in name:
        return False
    if _weight_index(name):
        return True
    return name.lower().endswith(ESSENTIAL_SUFFIXES) and not OPTIONAL_NAMES.match(name)


def _weight_index(name: str) -> bool:
    return "/" not in name and name.endswith((".safetensors.index.json", ".bin.index.json"))


def _optional(f: RemoteFile) -> bool:
    return "/" not in f.path and not is_weight(f.path) and not _essential(f)


def _gguf_groups(files: list[RemoteFile]) -> "OrderedDict[str, list[RemoteFile]]":
    groups: OrderedDict[str, list[RemoteFile]] = OrderedDict()
    for f in files:
        if f.path.lower().endswith(GGUF) and not _is_mmproj(f.path):
            key = gguf_quant(f.path) or _SPLIT.sub("", f.path)
            groups.setdefault(key, []).append(f)
    return groups


def plan_files(repo: RemoteRepo, *, format: str | None, weights: tuple[str, ...] = (),
               include_optional: bool = False, support: RemoteRepo | None = None,
               choose=None) -> Plan:
    """Choose the files of ``repo`` (and ``support``) a download takes; see the module docstring.

    Args:
        repo: the main repo's listing at its commit.
        format: the wanted format, or ``None`` for what the repo offers (safetensors before GGUF).
        weights: exact weight file names to take instead of the format rule.
        include_optional: take READMEs, licences, custom code and other extras too.
        support: a second repo to take missing essentials from.
        choose: ``choose(question, options) -> option`` to ask the user between GGUF quants, or ``None``.

    Returns:
        The plan.

    Raises:
        AcquisitionError: an unknown format, a ``--weights`` name the repo lacks, no weights of the
            wanted format, or several GGUF quants with no way to pick one.
    """
    fmt = format.lower() if format else None
    if fmt is not None and fmt not in FORMATS:
        raise AcquisitionError(f"unknown format {format!r}", hint=f"use one of: {', '.join(FORMATS)}")
    files = list(repo.files)
    by_path = {f.path: f for f in files}
    plan = Plan(format=fmt)
    if weights:
        missing = [w for w in weights if w not in by_path]
        if missing:
            available = ", ".join(f.path for f in files if is_weight(f.path)) or "none"
            raise AcquisitionError(f"{repo.repo_id} has no file {missing[0]!r}",
                                   hint=f"weight files at {repo.commit[:12]}: {available}")
        chosen = [by_path[w] for w in weights]
        plan.quant = next((gguf_quant(w) for w in weights if w.lower().endswith(GGUF) and not _is_mmproj(w)), None)
        if plan.format is None:
            plan.format = "gguf" if all(w.lower().endswith(GGUF) for w in weights) else None
    else:
        chosen = _weights_by_format(repo, files, fmt, plan, choose)
    plan.main = sorted({f.path: f for f in chosen + [f for f in files if _essential(f)]
                        + ([f for f in files if _optional(f)] if include_optional else [])}.values(),
                       key=lambda f: f.path)
    skipped_code = [f.path for f in files if f.path.endswith(".py") and "/" not in f.path]
    if skipped_code and not include_optional:
        plan.notes.append(f"the repo has custom code ({len(skipped_code)} .py files) not fetched; "
                          "add --include-optional if the model needs it (trust_remote_code)")
    if support is not None:
        have = {f.path for f in plan.main}
        plan.support = [f for f in support.files if _essential(f) and f.path not in have]
        if not plan.support:
            plan.notes.append(f"the support repo {support.repo_id} added nothing the main repo lacks")
    return plan


def _weights_by_format(repo: RemoteRepo, files: list[RemoteFile], fmt: str | None, plan: Plan,
                       choose) -> list[RemoteFile]:
    root = [f for f in files if "/" not in f.path]
    safetensors = [f for f in root if f.path.lower().endswith(SAFETENSORS)]
    groups = _gguf_groups(files)
    pickles = [f for f in root if f.path.lower().endswith(PICKLE_SUFFIXES)]
    if fmt == "gguf" or (fmt is None and not safetensors and groups):
        if not groups:
            raise AcquisitionError(f"{repo.repo_id} has no GGUF files", hint="drop --format gguf, or pick another repo")
        plan.format = "gguf"
        quant = _pick_quant(repo, groups, choose)
        plan.quant = quant
        mmproj = sorted((f for f in files if f.path.lower().endswith(GGUF) and _is_mmproj(f.path)),
                        key=lambda f: (gguf_quant(f.path) not in ("F16", "BF16"), f.path))
        return groups[quant] + mmproj[:1]
    if fmt == "pytorch" or (fmt is None and not safetensors and pickles):
        if not pickles:
            raise AcquisitionError(f"{repo.repo_id} has no pickle weight files")
        plan.format = "pytorch"
        plan.notes.append("these weights are pickle files: loading them can run code (prefer a safetensors repo)")
        return pickles
    if not safetensors:
        kinds = sorted({f.path.rsplit(".", 1)[-1] for f in files if is_weight(f.path)}) or ["none"]
        raise AcquisitionError(f"{repo.repo_id} has no {fmt or 'safetensors'} weights at its root "
                               f"(weight file types: {', '.join(kinds)})",
                               hint="name the files with --weights, or pick another --format")
    sharded = [f for f in safetensors if _SHARD.match(f.path)]
    if sharded and len(sharded) < len(safetensors):
        plan.notes.append("skipped duplicate weight files: "
                          + ", ".join(f.path for f in safetensors if f not in sharded))
        safetensors = sharded
    if plan.format is None:
        plan.format = "safetensors"
    return safetensors


def _pick_quant(repo: RemoteRepo, groups: "OrderedDict[str, list[RemoteFile]]", choose) -> str:
    quants = list(groups)
    if len(quants) == 1:
        return quants[0]
    if choose is not None:
        sizes = {q: sum(f.size for f in groups[q]) for q in quants}
        from imageworks_models.api import human_bytes

        labels = [f"{q} ({human_bytes(sizes[q])})" for q in quants]
        answer = choose(f"{repo.repo_id} has {len(quants)} GGUF quants; which one?", labels)
        return quants[labels.index(answer)]
    for q in GGUF_PREFERENCE:
        if q in groups:
            return q
    raise AcquisitionError(f"{repo.repo_id} has {len(quants)} GGUF quants and none is the default "
                           f"({GGUF_PREFERENCE[0]}): {', '.join(quants)}",
                           hint="pick one with --weights FILE (or run without --non-interactive)")
