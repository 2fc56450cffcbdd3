"""``download``: fetch a model through the source that accepts it, then record it in the registry.

The source (the ``hf`` plugin for ``owner/repo``) resolves, plans, transfers, checks and moves the
files into place; this module only picks the source and records the result through
:mod:`imageworks_models.acquire.discovery`, so a downloaded model is named and recorded exactly as a scanned one.
The registry is written last: any failure before leaves it as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from imageworks_models.fs.dryrun import honours_dry_run
from imageworks_models.errors import AcquisitionError, SourceNotFoundError
from imageworks_models.reports import SILENT, Progress
from imageworks_models.plugin.records import FetchRequest


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
             use_aria2: bool = True, dry_run: bool = False, backend: str | None = None, name: str | None = None,
             choose: Callable[[str, list[str]], str] | None = None, settings=None, plugins=None,
             progress: Progress = SILENT) -> DownloadResult:
    """Download ``spec`` into the weights folder and record it in the discovered layer.

    The entry the files will belong to, its name and its folder are settled before the first byte of a
    weight file moves (the attachment rules of :mod:`imageworks_models.registry.identity`): a catalog entry of the
    same repo gets the files under its own name (in its curated ``backend_config.model_path`` when it has
    one), and a name that belongs to other files is refused before anything is fetched.

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
        name: the entry name to register the files under, instead of the naming rule's.
        choose: asks the user between options (GGUF quants), or ``None`` when not interactive.
        settings, plugins: resolved settings and plugins (loaded when ``None``).
        progress: the transfer's progress bar.

    Returns:
        A :class:`DownloadResult`.

    Raises:
        SourceNotFoundError: no installed source accepts ``spec``.
        IdentityConflictError: the name belongs to an entry whose files are elsewhere (nothing fetched).
        AcquisitionError and subclasses (remote errors, checksum mismatch, disk space, unsafe names):
            the registry is unchanged and no unverified file is left in the model folder.
    """
    from imageworks_models.acquire import discovery
    from imageworks_models.errors import IdentityConflictError
    from imageworks_models.integrity.hashing import hash_file
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import import_schema_meanwhile, store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    label = location or settings.location
    locations = settings.locations or {}
    if location and location in locations:
        root = Path(str(locations[location])).expanduser()
    else:
        root = Path(settings.weights_root).expanduser()
    if name is not None:
        _check_name(name)
    _, impl = _fetcher(spec, plugins)
    store = store_for(settings)
    registry = store.load()  # the registry must be usable before gigabytes arrive, not after
    request = FetchRequest(spec=spec, dest_root=str(root), location=label, format=format, weights=tuple(weights),
                           support_repo=support_repo, include_optional=include_optional, force=force,
                           use_aria2=use_aria2, dry_run=True, choose=choose)

    def hasher(p):
        return hash_file(p, algorithm="sha256", plugins=plugins).split(":", 1)[1]

    # 1. the plan (the repo's listing, and config.json for the format): no weight file is touched
    planned = impl.fetch(request, settings=settings, progress=SILENT, hash_file=hasher)
    target = _target(planned, registry=registry, store=store, backend=backend, label=label, name=name,
                     settings=settings)
    if target.conflict:
        raise IdentityConflictError(f"{planned.model.repo_id or spec}: {target.conflict}",
                                    hint="nothing was downloaded")
    if target.dest and target.dest != planned.model.path:
        request = replace(request, dest=target.dest)
    result = DownloadResult(name=target.name, action="planned", path=target.dest or planned.model.path,
                            location=label, repo_id=planned.model.repo_id, revision=planned.model.revision,
                            commit=planned.model.commit, format=planned.format, quantization=planned.quantization,
                            files=list(planned.files), total_bytes=planned.total_bytes,
                            notes=list(planned.notes), dry_run=dry_run, reason=target.reason)
    if dry_run:
        return result
    # 2. the transfer, into the folder settled above; 3. the record, under the name settled above
    import_schema_meanwhile()  # the record needs it; the transfer leaves the interpreter idle (bench: -0.1 s)
    fetched = impl.fetch(replace(request, dry_run=False, commit=planned.model.commit), settings=settings,
                         progress=progress, hash_file=hasher)
    model = fetched.model
    result.path, result.commit, result.files = model.path, model.commit, list(fetched.files)
    result.total_bytes, result.notes = fetched.total_bytes, list(fetched.notes)
    result.transferred_bytes, result.reused_bytes = fetched.transferred_bytes, fetched.reused_bytes
    # a path match is settled again by the plan itself (another quant in the same folder may rename the entry)
    names = {model.path: target.name} if target.name and (name or (target.existing and target.rule != "path")) \
        else None
    rows, _, _ = discovery.plan([model], registry=store.load(), plugins=plugins, settings=settings,
                                update_existing=True, include_testing=True, backend=backend, location=label,
                                names=names)
    row = rows[0]
    if row.action in ("add", "update", "unchanged"):
        if row.action == "unchanged":
            row.action = "update"  # a download always refreshes source.commit, manifest and timestamp
        discovery.record([row], settings=settings, plugins=plugins, progress=SILENT,
                         digests=fetched.digests or None, downloaded=True)
    result.name, result.action, result.reason = row.name, row.action, row.reason or result.reason
    if row.entry:
        result.format = row.entry.get("format")
        result.quantization = row.entry.get("quantization")
        result.chat_template = row.entry.get("chat_template")
        result.capabilities = sorted(row.entry.get("capabilities") or ())
    if row.action in ("conflict", "error", "skip"):
        raise AcquisitionError(f"downloaded to {model.path} but not registered: {row.reason}",
                               hint="the files are in place; fix the cause and run `scan --update-existing`")
    return result


@dataclass
class _Target:
    name: str | None
    dest: str | None = None
    existing: str | None = None
    rule: str | None = None
    conflict: str | None = None
    reason: str | None = None


def _check_name(name: str) -> None:
    from imageworks_models.registry.schema import check_name

    check_name(name)


def _target(planned, *, registry, store, backend, label, name, settings) -> _Target:
    """The entry, name and folder a download will have, from its plan alone (see :func:`download`)."""
    from imageworks_models.acquire import discovery
    from imageworks_models.registry.identity import Index, model_path_of, real
    from imageworks_models.plugin.records import ArtifactInfo

    model = planned.model
    fmt = planned.format
    if not fmt:
        return _Target(name=name)
    info = ArtifactInfo(format=fmt, quantization=(planned.quantization or "").lower() or None)
    derived, entry, _ = discovery.describe(model, info, backend=backend, location=label, fallback_format=None)
    index = Index.build(registry, curated=store.curated_parts())
    wanted = name or derived
    match = index.match(path=real(model.path), name=wanted, source=None if name else entry["source"],
                        format=entry["format"], quantization=entry.get("quantization"))
    if match is None:
        return _Target(name=wanted)
    if match.conflict:
        return _Target(name=match.name, conflict=match.conflict)
    existing = index.entries[match.name]
    if match.rule == "path" and match.name not in index.curated and discovery._auto_named(existing) and \
            (existing.get("format"), existing.get("quantization")) != (entry["format"], entry.get("quantization")):
        return _Target(name=derived, reason=f"replaces {match.name} (other weights in its folder)")
    dest = model_path_of(existing) if not (existing.get("download") or {}).get("path") else None
    if dest is None and (existing.get("download") or {}).get("path"):
        dest = (existing.get("download") or {}).get("path")
        dest = None if real(dest) == real(model.path) else dest
    return _Target(name=match.name, dest=dest, existing=match.name, rule=match.rule,
                   reason=f"the files belong to {match.name} (matched by {match.rule})")
