"""``download``: fetch a model through the source that accepts it, then record it in the registry.

The source (the ``hf`` plugin for ``owner/repo``) resolves, plans, transfers, checks and moves the
files into place; this module only picks the source and records the result through
:mod:`imageworks_models.discovery`, so a downloaded model is named and recorded exactly as a scanned one.
The registry is written last: any failure before leaves it as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .dryrun import honours_dry_run
from .errors import AcquisitionError, SourceNotFoundError
from .hashing import SILENT, Progress
from .records import FetchRequest


@dataclass
class DownloadResult:
    """What ``download`` did (or would do, for a dry run); ``as_dict()`` is the ``--json`` shape."""

    name: str | None
    action: str  # add | update | unchanged | exists | conflict | error (as scan rows), or "planned"
    path: str
    location: str
    repo_id: str | None
    revision: str | None
    commit: str | None
    format: str | None
    quantization: str | None
    files: list[str]
    total_bytes: int
    transferred_bytes: int = 0
    reused_bytes: int = 0
    chat_template: dict[str, Any] | None = None
    capabilities: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "name", "action", "dry_run", "path", "location", "repo_id", "revision", "commit", "format",
            "quantization", "files", "total_bytes", "transferred_bytes", "reused_bytes", "chat_template",
            "capabilities", "notes", "reason")}


def _fetcher(spec: str, plugins):
    sources = plugins.source_impls("fetch")
    for record, impl in sources:
        accepts = getattr(impl, "accepts", None)
        if accepts is None or accepts(spec):
            return record, impl
    installed = ", ".join(r.name for r, _ in sources) or "none"
    shapes = [f"{shape} ({record.name})" for record, impl in sources for shape in getattr(impl, "shapes", ())]
    if shapes:
        raise SourceNotFoundError(f"no installed source can download {spec!r}; accepted: {'; '.join(shapes)}",
                                  hint='e.g. "Qwen/Qwen2-VL-2B-Instruct@main" or '
                                       "https://huggingface.co/Qwen/Qwen2-VL-2B-Instruct")
    raise SourceNotFoundError(f"no installed source can download {spec!r} (sources that fetch: {installed})",
                              hint="for Hugging Face repos (owner/repo) install the plugin: "
                                   "pip install 'imageworks-models[hf]'")


@honours_dry_run
def download(spec: str, *, format: str | None = None, location: str | None = None, weights: tuple[str, ...] = (),
             support_repo: str | None = None, include_optional: bool = False, force: bool = False,
             use_aria2: bool = True, dry_run: bool = False, backend: str | None = None,
             choose: Callable[[str, list[str]], str] | None = None, settings=None, plugins=None,
             progress: Progress = SILENT) -> DownloadResult:
    """Download ``spec`` into the weights folder and record it in the discovered layer.

    Args:
        spec: ``owner/repo[@revision]``.
        format: the wanted format (``awq``, ``gguf``...); ``None`` takes the repo's main one.
        location: a location label; a label listed under ``locations`` in the config file picks that
            folder, any other label is recorded with the default ``weights_root``.
        weights: exact weight files to take.
        support_repo: ``owner/repo[@revision]`` to take missing tokenizer/config files from.
        include_optional: also fetch READMEs, licences, custom code.
        force: fetch again and replace an existing copy.
        use_aria2: allow aria2c for large files (the ``use_aria2`` setting must allow it too).
        dry_run: resolve and print the plan; write nothing.
        backend: the backend of the new entry (default ``vllm``).
        choose: asks the user between options (GGUF quants), or ``None`` when not interactive.
        settings, plugins: resolved settings and plugins (loaded when ``None``).
        progress: the transfer's progress bar.

    Returns:
        A :class:`DownloadResult`.

    Raises:
        SourceNotFoundError: no installed source accepts ``spec``.
        AcquisitionError and subclasses (remote errors, checksum mismatch, disk space, unsafe names):
            the registry is unchanged and no unverified file is left in the model folder.
    """
    from . import discovery
    from .hashing import hash_file
    from .plugins import get_plugins
    from .registry import store_for
    from .settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    label = location or settings.location
    locations = settings.locations or {}
    if location and location in locations:
        root = Path(str(locations[location])).expanduser()
    else:
        root = Path(settings.weights_root).expanduser()
    _, impl = _fetcher(spec, plugins)
    # the registry must be usable before gigabytes arrive, not after
    store = None if dry_run else store_for(settings)
    request = FetchRequest(spec=spec, dest_root=str(root), location=label, format=format, weights=tuple(weights),
                           support_repo=support_repo, include_optional=include_optional, force=force,
                           use_aria2=use_aria2, dry_run=dry_run, choose=choose)
    fetched = impl.fetch(request, settings=settings, progress=progress,
                         hash_file=lambda p: hash_file(p, algorithm="sha256", plugins=plugins).split(":", 1)[1])
    model = fetched.model
    result = DownloadResult(name=None, action="planned", path=model.path, location=label, repo_id=model.repo_id,
                            revision=model.revision, commit=model.commit, format=format, quantization=None,
                            files=list(fetched.files), total_bytes=fetched.total_bytes,
                            transferred_bytes=fetched.transferred_bytes, reused_bytes=fetched.reused_bytes,
                            notes=list(fetched.notes), dry_run=dry_run)
    if dry_run:
        # a guess: safetensors repos may turn out awq/gptq/fp8 once config.json is read
        fmt = format or (fetched.format if fetched.format == "gguf" else None)
        if fmt:
            quant = fetched.quantization if fmt.lower() == "gguf" else None
            result.name = discovery.entry_name(discovery.family_from(model.name_hint), (backend or "vllm").lower(),
                                               fmt, quant)
        return result
    rows, _, _ = discovery.plan([model], registry=store.load(), plugins=plugins, settings=settings,
                                update_existing=True, include_testing=True, backend=backend, location=label)
    row = rows[0]
    if row.action in ("add", "update", "unchanged"):
        if row.action == "unchanged":
            row.action = "update"  # a download always refreshes source.commit, manifest and timestamp
        discovery.record([row], settings=settings, plugins=plugins, progress=SILENT,
                         digests=fetched.digests or None, downloaded=True)
    result.name, result.action, result.reason = row.name, row.action, row.reason
    if row.entry:
        result.format = row.entry.get("format")
        result.quantization = row.entry.get("quantization")
        result.chat_template = row.entry.get("chat_template")
        result.capabilities = sorted(row.entry.get("capabilities") or ())
    if row.action in ("conflict", "error", "skip"):
        raise AcquisitionError(f"downloaded to {model.path} but not registered: {row.reason}",
                               hint="the files are in place; fix the cause and run `scan --update-existing`")
    return result
