"""Importing a model store another program owns (the Ollama store): naming, reconciliation, recording.

One code path for ``import-ollama`` (and ``scripts/import_ollama_models.py``), ``rebuild-ollama`` and
``backfill-ollama-paths``, from the CLI, the GUI or a library. A *store source* (a plugin whose source
provides ``store``) reports the store's models; this module compares them with the registry and, unless
it is a dry run, writes the discovered layer once, after a timestamped backup.

**Naming, strategy A.** ``<name>:<tag>`` becomes ``<family>-<backend>-gguf[-<quant>]`` by the core's
naming rule (the family is the model name plus the tag unless it is ``latest``; a quant in the tag comes
back as the suffix). ``served_model_id`` keeps the original ``name:tag``. A name already taken gets a
deterministic suffix: ``-`` and the first 8 hex digits of the served id's sha256.

**Reconciliation.** An imported entry is matched to the store by its model blob first, then by its tags:
- same blob under other tags (a rename, ``ollama cp``): the entry is kept, with the new tags;
- same tag, other blob (a re-quant, a re-pull): the entry is renamed to what its quant now says (the old
  name is removed) unless it is curated or locked; then it keeps its name and verify shows the drift;
- a second imported entry for the same tags or blob is a lingering duplicate and is removed;
- an entry whose tags are neither in the store nor (when it answers) on the server is ``stale``: reported,
  and removed only with ``prune_stale``. Entries curated by hand are never removed, only reported.
- "placeholders" (entries of this provider with no files of their own, such as the earlier tool's
  ``gemma3_27.0b_(Q3_K_M)``) that serve a tag an imported entry now serves are ``duplicate`` rows;
  ``deprecate_placeholders`` flags them ``deprecated``.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imageworks_models.fs.dryrun import honours_dry_run
from imageworks_models.acquire.discovery import describe, real_path, refresh_entry
from imageworks_models.reports import Row
from imageworks_models.errors import SourceNotFoundError
from imageworks_models.reports import SILENT, Progress
from imageworks_models.registry.backups import edit_with_backup
from imageworks_models.registry.predicates import entry_path
from imageworks_models.reports import ChangeReport
from imageworks_models.plugin.records import Discovered
from imageworks_models.registry.predicates import local_path as _local


@dataclass
class ImportReport(ChangeReport):
    """What an import found and did (or, for a dry run, would do): the diff rows, plus the store's facts."""

    provider: str = ""
    store: str = ""
    warnings: list[str] = field(default_factory=list)
    checked_server: bool = False  # stale tags were also checked against the server's list
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "store": self.store, **super().as_dict(),
                "checked_server": self.checked_server, "warnings": list(self.warnings)}


def store_source(plugins, provider: str):
    """The implementation of the store source ``provider``.

    Raises:
        SourceNotFoundError: no installed plugin provides it.
    """
    for record, impl in plugins.source_impls("store"):
        if record.name == provider:
            return impl
    raise SourceNotFoundError(f"no installed plugin reads the {provider} store",
                              hint=f"install it: pip install 'imageworks-models[{provider}]'")


def _ref_tag(value: Any, provider: str) -> str | None:
    """``ollama:/name:tag`` or ``ollama://name:tag`` (how the earlier tool pointed at the store) -> the tag."""
    if isinstance(value, str) and value.startswith(f"{provider}:"):
        return value[len(provider) + 1:].lstrip("/") or None
    return None


def tags_of(entry: dict[str, Any], provider: str) -> list[str]:
    """The store tags an entry stands for: served id, tag-like aliases, and old-style store references."""
    tags = [entry.get("served_model_id")]
    tags += [a for a in entry.get("aliases") or [] if isinstance(a, str) and ":" in a]
    tags += [_ref_tag((entry.get("backend_config") or {}).get("model_path"), provider),
             _ref_tag((entry.get("download") or {}).get("path"), provider)]
    out: list[str] = []
    for t in tags:
        if isinstance(t, str) and t and t not in out:
            out.append(t)
    return out


def _of_provider(entry: dict[str, Any], provider: str) -> bool:
    return entry.get("backend") == provider or ((entry.get("source") or {}).get("provider") == provider)


def suffixed(name: str, served_id: str) -> str:
    """``name`` with the deterministic collision suffix for ``served_id``."""
    return f"{name[:190]}-{hashlib.sha256(served_id.encode('utf-8')).hexdigest()[:8]}"


@dataclass
class _Context:
    provider: str
    entries: dict[str, dict[str, Any]]  # effective
    curated: dict[str, dict[str, Any]]  # curated parts, by name
    discovered: dict[str, dict[str, Any]]
    present: set[str]  # tags known to exist (store, and server when asked)


def _locked(entry: dict[str, Any]) -> bool:
    return bool((entry.get("version_lock") or {}).get("locked"))


def _removable(ctx: _Context, name: str) -> bool:
    """Machine-written and unlocked: the importer may remove it without losing anyone's work."""
    return name not in ctx.curated and name in ctx.discovered and not _locked(ctx.entries[name])


def _same(current: dict[str, Any], new: dict[str, Any]) -> bool:
    def facts(e: dict[str, Any]) -> tuple:
        d = e.get("download") or {}
        return (e.get("served_model_id"), tuple(e.get("aliases") or ()), e.get("quantization"), d.get("path"),
                d.get("size_bytes"), d.get("location"), (e.get("artifacts") or {}).get("aggregate"))

    return facts(current) == facts(new)


def plan(found: list[Discovered], ctx: _Context, *, backend: str | None, location: str,
         include_testing: bool = False, deprecate_placeholders: bool = False, prune_stale: bool = False,
         failed: dict[str, str] | None = None) -> list[Row]:
    """Rows for every store model and every registry entry of the provider. Writes nothing."""
    provider = ctx.provider
    failed = failed or {}
    ours = {n: e for n, e in ctx.entries.items() if _of_provider(e, provider)}
    imported = {n: e for n, e in ours.items() if _local(e)}
    by_path: dict[str, str] = {}
    by_tag: dict[str, list[str]] = {}
    for n, e in sorted(imported.items()):
        by_path.setdefault(real_path(_local(e)), n)
        for t in tags_of(e, provider):
            by_tag.setdefault(t, []).append(n)
    # Entries without files that say which tag they stand for (a catalog entry's source, rule (b) of
    # identity.py) or carry the name strategy A gives (rule (c)): the import attaches to them.
    from imageworks_models.registry.identity import attach_part, source_key

    waiting_by_tag: dict[str, list[str]] = {}
    waiting_by_name: dict[str, list[str]] = {}
    for n, e in sorted(ours.items()):  # an entry of another backend is another model, whatever its name
        if n in imported or _local(e):
            continue
        key = source_key(e)
        if key and key[0] == provider:
            waiting_by_tag.setdefault(key[1], []).append(n)
        for label in [n, *(a for a in e.get("aliases") or () if isinstance(a, str))]:
            waiting_by_name.setdefault(label.lower(), []).append(n)
    taken = {n.lower() for n in ctx.entries}
    claimed: set[str] = set()
    served: dict[str, str] = {}  # tag -> the name that serves it after the import
    rows: list[Row] = []

    def row(action: str, d: Discovered, **kw) -> Row:
        return Row(action, d.path, provider=provider, served_model_id=d.served_model_id, **kw)

    for d in found:
        if d.problem:
            rows.append(row("skip", d, reason=d.problem))
            continue
        if d.placeholder and not include_testing:
            rows.append(row("skip", d, reason=f"placeholder: {d.placeholder} (--include-testing adds it)"))
            continue
        if d.path in failed:
            rows.append(row("error", d, reason=failed[d.path]))
            continue
        name, entry, why = describe(d, d.info, backend=backend, location=location, fallback_format=None)
        if entry is None:
            rows.append(row("skip", d, reason=why))
            continue
        entry["download"].update(size_bytes=d.size_bytes, file_count=_blob_count(d))
        tags = [d.served_model_id, *d.aliases]
        path_match = by_path.get(real_path(d.path))
        tag_matches = [n for t in tags for n in by_tag.get(t, []) if n not in claimed]
        chosen = path_match if path_match not in claimed else None
        chosen = chosen or (tag_matches[0] if tag_matches else None)
        r = row("add", d, format=entry["format"], quantization=entry.get("quantization"), backend=entry["backend"],
                files=_blob_count(d), size_bytes=d.size_bytes or 0, entry=entry)
        old_name = None
        if chosen is not None:
            claimed.add(chosen)
            current = ctx.entries[chosen]
            keep = current.get("served_model_id")
            if keep in tags and keep != entry.get("served_model_id"):  # the entry's own tag stays its served id
                entry["served_model_id"] = keep
                entry["aliases"] = [t for t in tags if t != keep]
            renamed = chosen != path_match and name != chosen and _removable(ctx, chosen) and \
                name.lower() not in (taken - {chosen.lower()})
            if renamed:
                old_name = chosen
                rows.append(Row("remove", _local(current) or "", name=chosen, provider=provider,
                                served_model_id=keep, reason=f"replaced by {name}: the tag now holds other weights"))
            else:
                r.name = r.existing = entry["name"] = chosen
                r.entry = entry = attach_part(entry, ctx.curated.get(chosen))
                r.action = "unchanged" if _same(ctx.discovered.get(chosen, {}), _with_artifact_digest(entry, d)) \
                    else "update"
                if chosen != path_match and _locked(current):
                    r.reason = "locked: name and manifest kept; `verify` shows how the files differ"
        if chosen is None:
            waiting = [n for t in tags if t for n in waiting_by_tag.get(t.lower(), []) if n not in claimed]
            waiting = list(dict.fromkeys(waiting or [n for n in waiting_by_name.get(name.lower(), [])
                                                     if n not in claimed]))
            if len(waiting) > 1:
                rows.append(row("conflict", d, name=name, reason=(
                    f"{d.served_model_id} could be {', '.join(waiting)}: each says it stands for it; remove one "
                    "entry, or fix its source in the curated file")))
                continue
            if waiting:
                chosen = waiting[0]
                claimed.add(chosen)
                r.name = r.existing = entry["name"] = chosen
                r.entry = entry = attach_part(entry, ctx.curated.get(chosen))  # the catalog's fields stay as written
                r.action, r.reason = "update", f"attached to {chosen}"
        if chosen is None or old_name is not None:
            if name.lower() in taken and name != old_name:
                name = suffixed(name, d.served_model_id or d.path)
                if name.lower() in taken:
                    rows.append(row("conflict", d, name=name, reason=f"the name {name} is taken"))
                    continue
            r.name = entry["name"] = name
            taken.add(name.lower())
        for t in tags:
            served.setdefault(t, r.name)
        rows.append(r)
        # other imported entries standing for the same tags are lingering duplicates
        for other in dict.fromkeys(tag_matches):
            if other in claimed or other == r.name:
                continue
            claimed.add(other)
            if _removable(ctx, other):
                rows.append(Row("remove", _local(imported[other]) or "", name=other, provider=provider,
                                served_model_id=imported[other].get("served_model_id"),
                                reason=f"duplicate of {r.name} (same tag)"))
            else:
                rows.append(Row("duplicate", _local(imported[other]) or "", name=other, provider=provider,
                                served_model_id=imported[other].get("served_model_id"),
                                reason=f"serves the same tag as {r.name}; curated or locked, so left as it is"))

    for n, e in sorted(ours.items()):
        if n in claimed or any(r.name == n for r in rows):
            continue
        tags = tags_of(e, provider)
        path = _local(e) or (e.get("download") or {}).get("path") or ""
        base = dict(name=n, provider=provider, served_model_id=e.get("served_model_id"))
        serving = next((served[t] for t in tags if t in served), None)
        if serving is not None and n not in imported:
            if (e.get("flags") or {}).get("deprecated"):
                continue
            if deprecate_placeholders:
                rows.append(Row("deprecate", path, reason=f"placeholder for {serving}", **base))
            else:
                rows.append(Row("duplicate", path, reason=f"placeholder for {serving} "
                                                          "(--deprecate-placeholders flags it deprecated)", **base))
        elif tags and not any(t in ctx.present for t in tags):
            gone = f"{', '.join(tags)} {'is' if len(tags) == 1 else 'are'} gone"
            if prune_stale and _removable(ctx, n):
                rows.append(Row("remove", path, reason=f"stale: {gone}", **base))
            else:
                fix = "--prune-stale removes it" if _removable(ctx, n) else \
                    f"curated or locked: remove it with `remove {n}` if it is no longer wanted"
                rows.append(Row("stale", path, reason=f"{gone} ({fix})", **base))
    return rows


def _blob_count(d: Discovered) -> int:
    """The blobs an entry's size counts: the model and, for a vision model, its projector."""
    facts = d.metadata.get(d.provider) or {}
    return 1 + bool(facts.get("projector_digest"))


def _with_artifact_digest(entry: dict[str, Any], d: Discovered) -> dict[str, Any]:
    """``entry`` as it will be recorded, for the unchanged check (the aggregate follows from the blob digest)."""
    from imageworks_models.integrity.manifest import FileRecord, aggregate_of

    digest = d.digests.get(Path(d.path).name)
    if not digest:
        return entry
    try:
        size = os.stat(d.path).st_size
    except OSError:
        return entry
    rec = FileRecord(Path(d.path).name, size, digest)
    return entry | {"artifacts": {"aggregate": aggregate_of([rec], algorithm="sha256",
                                                            new=hashlib.sha256)}}


def _manifest(found: Discovered, plugins):
    """The manifest from the digests the store names its blobs by (hashing only if it has none)."""
    from imageworks_models.integrity.manifest import build_manifest, manifest_from_digests

    if found.digests:
        algorithm = next(iter(found.digests.values())).split(":", 1)[0]
        m = manifest_from_digests(Path(found.path), found.digests, algorithm=algorithm, plugins=plugins)
        if m is not None:
            return m
    return build_manifest(found.path, algorithm="sha256", plugins=plugins, quick=True)


def apply(rows: list[Row], found_by_path: dict[str, Discovered], layers, *, plugins) -> int:
    """Write the rows into ``layers`` (inside the caller's ``store.edit()``); returns entries changed."""
    written = 0
    for r in rows:
        if r.action == "remove" and r.name:
            layers.discovered.remove(r.name)
            written += 1
        elif r.action == "deprecate" and r.name:
            layer = layers.curated if layers.curated.get(r.name) is not None else layers.discovered
            current = dict(layer.get(r.name) or {"name": r.name})
            current["flags"] = dict(current.get("flags") or {}) | {"deprecated": True}
            layer.put(current)
            written += 1
    for r in rows:
        if r.action not in ("add", "update") or r.entry is None:
            continue
        found = found_by_path[r.path]
        manifest = _manifest(found, plugins)
        if manifest.errors:
            first = next(iter(manifest.errors.items()))
            r.action, r.reason = "error", f"{first[0]}: {first[1]}"
            continue
        entry = dict(r.entry)
        entry["artifacts"] = manifest.as_artifacts()
        current = layers.discovered.get(entry["name"])
        if current:
            locked = bool((current.get("version_lock") or {}).get("locked"))
            entry, note = refresh_entry(current, entry, replace_manifest=not locked)
            r.reason = note or r.reason
        layers.put_found(entry)
        written += 1
    return written


@honours_dry_run
def import_store(provider: str = "ollama", *, backend: str | None = None, location: str | None = None,
                 dry_run: bool = False, deprecate_placeholders: bool = False, prune_stale: bool = False,
                 include_testing: bool = False, check_blobs: bool = False, backup_label: str = "import-ollama",
                 settings=None, plugins=None, progress: Progress = SILENT) -> ImportReport:
    """Import (or re-import) every model in a store source's store into the discovered layer.

    Args:
        provider: the store source (``ollama``).
        backend: the backend of new entries (default: the provider's own backend).
        location: the location label recorded (default: the ``location`` setting).
        dry_run: plan only; write nothing.
        deprecate_placeholders: flag placeholder entries of the provider ``deprecated`` (see the module doc).
        prune_stale: remove machine-written entries whose tags are gone.
        include_testing: also record placeholders the store reports (cloud models), flagged ``testing``.
        check_blobs: hash each model's blobs against the digests they are named by first (slow: reads
            every byte); a corrupt model becomes an ``error`` row and is not recorded.
        backup_label: the word in the backup's file name.
        settings, plugins: resolved settings and plugins (loaded when ``None``).
        progress: reserved for hashing progress.

    Returns:
        An :class:`ImportReport`; ``backup`` names the backups taken before writing.

    Raises:
        SourceNotFoundError: no plugin reads this store.
        StoreError (from the plugin): there is no store.
        StorageError, LockTimeoutError, RegistryValidationError: the registry could not be written (it is unchanged).
    """
    t0 = time.perf_counter()
    settings, plugins, source, report, found, present = _open(provider, settings, plugins, dry_run)
    failed: dict[str, str] = {}
    if check_blobs:
        for d in found:
            if not d.problem and not d.placeholder:
                problem = source.check(d, settings=settings, plugins=plugins)
                if problem:
                    failed[d.path] = f"{problem}; pull it again: ollama pull {d.served_model_id}"
    registry = _registry(settings)
    location = location or settings.location
    by_path = {d.path: d for d in found}

    def context(layers) -> _Context:
        entries, _ = layers.merged()
        return _Context(provider, entries, dict(layers.curated.entries), dict(layers.discovered.entries), present)

    layers = registry.load_layers()
    ctx = context(layers)
    missing = [n for n, e in ctx.entries.items() if _of_provider(e, provider)
               and tags_of(e, provider) and not set(tags_of(e, provider)) & present]
    if missing:  # only then is the server asked, so an import with nothing stale never waits on it
        listed = source.served_tags(settings=settings)
        if listed is not None:
            present |= listed
            report.checked_server = True
    options = dict(backend=backend, location=location, include_testing=include_testing,
                   deprecate_placeholders=deprecate_placeholders, prune_stale=prune_stale, failed=failed)
    if dry_run:
        report.rows = plan(found, ctx, **options)
    else:
        def body(layers) -> None:
            report.rows = plan(found, context(layers), **options)
            report.written = apply(report.rows, by_path, layers, plugins=plugins)

        _, report.backup = edit_with_backup(registry, backup_label, body)
    report.seconds = time.perf_counter() - t0
    return report


def _registry(settings):
    from imageworks_models.registry import store_for

    return store_for(settings)


def _open(provider: str, settings, plugins, dry_run: bool):
    """Settings, plugins, the store source, an empty report, and what the store holds (models, tags present)."""
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    source = store_source(plugins, provider)
    store_dir = str(source.store_dir(settings=settings))
    found, warnings, present = source.read(settings=settings)
    report = ImportReport(rows=[], dry_run=dry_run, provider=provider, store=store_dir, warnings=warnings)
    return settings, plugins, source, report, found, present


@honours_dry_run
def backfill_paths(provider: str = "ollama", *, location: str | None = None, dry_run: bool = False,
                   settings=None, plugins=None) -> ImportReport:
    """Give entries of ``provider`` that have no files recorded (the earlier tool's ``ollama:/name:tag``
    entries) the path, size and manifest of the model their tag names in the store.

    Only the discovered layer is written (install facts live there), after a backup.

    Raises:
        SourceNotFoundError, StoreError, StorageError, LockTimeoutError: as :func:`import_store`.
    """
    t0 = time.perf_counter()
    settings, plugins, source, report, found, _ = _open(provider, settings, plugins, dry_run)
    store_dir = report.store
    by_tag = {t: d for d in found if not d.problem and not d.placeholder
              for t in (d.served_model_id, *d.aliases) if t}
    location = location or settings.location
    registry = _registry(settings)

    def plan_rows(layers) -> list[Row]:
        entries, _ = layers.merged()
        rows = []
        for name, e in sorted(entries.items()):
            if not _of_provider(e, provider) or _local(e):
                continue
            tags = tags_of(e, provider)
            d = next((by_tag[t] for t in tags if t in by_tag), None)
            if d is None:
                rows.append(Row("skip", entry_path(e), name=name, provider=provider,
                                served_model_id=e.get("served_model_id"),
                                reason=f"{', '.join(tags) or 'no tag'}: not in the store {store_dir}"))
                continue
            _, new, _ = describe(d, d.info, backend=e.get("backend"), location=location, fallback_format=None)
            new["download"].update(size_bytes=d.size_bytes, file_count=_blob_count(d))
            patch = {"name": name, "download": new["download"]}
            for key in ("format", "quantization", "served_model_id"):
                if not e.get(key) and new.get(key):
                    patch[key] = new[key]
            rows.append(Row("update", d.path, name=name, format=new["format"], quantization=new.get("quantization"),
                            backend=e.get("backend"), files=_blob_count(d), size_bytes=d.size_bytes or 0,
                            provider=provider,
                            served_model_id=e.get("served_model_id") or d.served_model_id, entry=patch,
                            reason=f"path of {d.served_model_id}"))
        return rows

    by_path = {d.path: d for d in found}
    if dry_run:
        report.rows = plan_rows(registry.load_layers())
    else:
        def body(layers) -> None:
            report.rows = plan_rows(layers)
            for r in report.rows:
                if r.action != "update":
                    continue
                manifest = _manifest(by_path[r.path], plugins)
                patch = dict(r.entry) | {"artifacts": manifest.as_artifacts()}
                current = layers.discovered.get(r.name) or {"name": r.name}
                merged, _ = refresh_entry(current, patch, replace_manifest=True)
                layers.discovered.put(merged)
                report.written += 1

        _, report.backup = edit_with_backup(registry, "backfill-ollama-paths", body)
    report.seconds = time.perf_counter() - t0
    return report

