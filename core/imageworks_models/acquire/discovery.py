"""From "a model is here" to a registry entry: naming, inspection, scan planning and recording.

One code path for ``scan``, ``ingest-local-hf``, ``discover-all`` and ``download`` (CLI, GUI and
library): sources report :class:`~imageworks_models.plugin.records.Discovered` models; this module names them,
inspects them (through ``inspect_artifact``, with a stat-keyed cache), compares them with the registry
and, unless it is a dry run, records them in the discovered layer with their manifest.

**Naming rule** (documented in the README): ``<family>-<backend>-<format>[-<quant>]``, all lower case.
``family`` is the repo, folder or file name with format and quantization words removed from its end
(``Qwen2.5-VL-7B-Instruct-AWQ`` -> ``qwen2.5-vl-7b-instruct``; ``Qwen3-8B-Q4_K_M.gguf`` -> ``qwen3-8b``);
``-<quant>`` is added when the quantization differs from the format (``...-gguf-q4_k_m``,
``...-safetensors-bf16``; not ``...-awq-awq``).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from imageworks_models.reports import Row, ScanReport
from imageworks_models.fs.dryrun import honours_dry_run
from imageworks_models.errors import AcquisitionError, SourceNotFoundError
from imageworks_models.reports import SILENT, Progress
from imageworks_models.plugin.records import ArtifactInfo, Discovered

DEFAULT_BACKEND = "vllm"
_FORMAT_WORDS = {
    "awq", "gptq", "gguf", "ggml", "fp8", "fp16", "bf16", "fp32", "f16", "f32", "int4", "int8", "w4a16", "w8a8",
    "w8a16", "4bit", "8bit", "bnb", "nf4", "mlx", "exl2", "hqq", "safetensors", "mxfp4", "nvfp4", "fp4", "dynamic",
    "quantized", "quant", "gptqmodel", "marlin",
}
_QUANT_WORD = re.compile(r"^(i?q\d(_[0-9a-z]+)*|tq\d_\d)$")
_SPLIT_SUFFIX = re.compile(r"(?i)-\d{5}-of-\d{5}$")
_WORD_SEP = re.compile(r"[^a-z0-9._]+")
_NAME_ODD = re.compile(r"[^a-z0-9._()+@-]+")



def _is_format_word(word: str) -> bool:
    return word in _FORMAT_WORDS or bool(_QUANT_WORD.match(word))


def family_from(hint: str) -> str:
    """The family part of an entry name, from a repo, folder or file name (see the module docstring)."""
    import unicodedata

    text = hint.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if text.lower().endswith(".gguf"):
        text = text[:-5]
    text = _SPLIT_SUFFIX.sub("", text)
    # accents folded to ASCII, then anything but letters, digits, '.' and '_' separates words
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = [w.strip("._") for w in _WORD_SEP.split(text)]
    words = [w for w in words if w]
    while words:
        last = words[-1]
        if len(words) > 1 and _is_format_word(last):
            words.pop()
        elif "." in last and _is_format_word(last.rsplit(".", 1)[1]) and last.rsplit(".", 1)[0]:
            words[-1] = last.rsplit(".", 1)[0].strip("._")  # TheBloke style: llama-2-7b-chat.Q4_K_M
        else:
            break
    family = "-".join(words).strip("-._")
    return family or "model"


def entry_name(family: str, backend: str, format: str, quant: str | None = None) -> str:
    """``<family>-<backend>-<format>[-<quant>]`` in lower case (the quant only when it says more than the
    format); a long family is shortened so the suffix always survives within the 200-character limit."""
    tail = [backend.lower(), format.lower()]
    if quant and quant.lower() != format.lower():
        tail.append(quant.lower())
    suffix = _NAME_ODD.sub("-", "-".join(tail)).strip("-")
    family = _NAME_ODD.sub("-", family.lower()).strip("-._") or "model"
    family = family[:max(1, 199 - len(suffix))].rstrip("-._") or "model"
    return f"{family}-{suffix}"[:200]


def real_path(path: str) -> str:
    """``path`` with ``~`` expanded and every link resolved."""
    return os.path.realpath(os.path.expanduser(path))


def configured_roots(settings) -> list[str]:
    """The configured weights roots (``weights_root`` and every ``locations`` folder), resolved."""
    roots = [settings.weights_root] + [v for v in (settings.locations or {}).values() if isinstance(v, (str, Path))]
    return [real_path(str(r)) for r in roots]


def within_roots(real: str, settings) -> bool:
    """Whether the resolved path ``real`` is one of the configured weights roots or inside one."""
    return any(real == r or real.startswith(r.rstrip("/") + "/") for r in configured_roots(settings))


def check_root(root: Path, settings) -> Path:
    """A scan root must be a folder; a symlinked root must lead inside a configured weights root.

    Raises:
        AcquisitionError: it is missing, not a folder, or a link leading outside the configured roots.
    """
    if not root.exists():
        raise AcquisitionError(f"{root}: no such folder", hint="pass an existing weights folder")
    if not root.is_dir():
        raise AcquisitionError(f"{root}: not a folder", hint="pass the folder that holds the model folders")
    if root.is_symlink():
        real = real_path(str(root))
        if not within_roots(real, settings):
            raise AcquisitionError(f"{root} is a symlink to {real}, outside the configured weights roots",
                                   hint="scan the real folder, or add it to `locations` / IMAGEWORKS_WEIGHTS_ROOT")
    return root


def describe(found: Discovered, info: ArtifactInfo | None, *, backend: str | None, location: str,
             fallback_format: str | None) -> tuple[str | None, dict[str, Any] | None, str | None]:
    """Name and discovered-layer entry for a found model, or ``(None, None, why-not)``."""
    fmt = (info.format if info else None) or fallback_format
    if not fmt:
        return None, None, "format not detected (pass --format as a fallback)"
    quant = info.quantization if info else None
    backend = (found.backend or backend or DEFAULT_BACKEND).lower()
    family = family_from(found.name_hint)
    name = entry_name(family, backend, fmt, quant)
    entry: dict[str, Any] = {"name": name, "backend": backend, "family": family, "format": fmt.lower()}
    if quant:
        entry["quantization"] = quant.lower()
    if found.served_model_id:
        entry["served_model_id"] = found.served_model_id
    if found.aliases:
        entry["aliases"] = list(found.aliases)
    if info and info.capabilities:
        entry["capabilities"] = {c: True for c in sorted(info.capabilities)}
    if info and info.chat_template:
        entry["chat_template"] = {k: info.chat_template.get(k) for k in ("source", "path", "sha256")
                                  if info.chat_template.get(k) is not None}
    source = {"provider": found.provider, "repo_id": found.repo_id, "revision": found.revision,
              "commit": found.commit}
    entry["source"] = {k: v for k, v in source.items() if v is not None}
    if found.placeholder:
        entry["flags"] = {"testing": True}
    entry["download"] = {"path": found.path, "location": location, "format": fmt.lower()}
    meta: dict[str, Any] = {}
    if info and info.parameter_count:
        meta["parameter_count"] = info.parameter_count
    if info and info.details.get("architectures"):
        meta["architectures"] = list(info.details["architectures"])
    if info and info.details.get("memory"):
        meta["memory"] = dict(info.details["memory"])  # what `fit` estimates from (fit/estimate.py)
    meta.update(found.metadata)
    if meta:
        entry["metadata"] = meta
    return name, entry, None


def inspect(path: str, plugins) -> ArtifactInfo | None:
    """``inspect_artifact`` through the plugins (built-in readers included)."""
    return plugins.inspect_artifact(Path(path))


def plan(found: Iterable[Discovered], *, registry, plugins, settings, update_existing: bool = False,
         include_testing: bool = False, fallback_format: str | None = None, backend: str | None = None,
         location: str | None = None, cache=None, names: dict[str, str] | None = None,
         curated: dict[str, dict[str, Any]] | None = None, canonical: bool = False) -> tuple[list[Row], int, int]:
    """Rows for every found model: what recording it would do. Reads headers (cached), writes nothing.

    Each found model is matched to an entry by the attachment rules of :mod:`imageworks_models.registry.identity`
    (path, then source, then name); ``registry`` is a loaded registry or a snapshot's
    :class:`~imageworks_models.registry.store.MatchView`; ``names`` maps a found path to the name the user asked
    for (``--name``), ``curated`` holds the curated parts by name (default: read from the registry's layers);
    ``canonical`` says the found paths are resolved already (as :func:`discovered_from_sources` gives them).
    """
    from imageworks_models.registry.identity import Index, extent, real
    from imageworks_models.formats.inspectcache import signature

    from imageworks_models.registry.store import MatchView

    location = location or settings.location
    view = registry if isinstance(registry, MatchView) else None  # the entries are read as they are matched
    store = getattr(registry, "store", None)
    if curated is None:
        curated = view.curated if view is not None else store.curated_parts() if store is not None else {}
    remembered = {}
    if store is not None:
        from imageworks_models.registry.state import STATE_FILE, State

        remembered = State.load(store.directory / STATE_FILE).paths()
    if view is not None:
        index = Index.from_rows(view.rows, entries=view.entries, curated=curated, remembered=remembered)
    else:
        index = Index.build(list(registry), curated=curated, remembered=remembered)
    rows: list[Row] = []

    def prepare(d: Discovered):
        sig = signature(d.path)
        if sig is None or d.problem or d.info is not None or (d.placeholder and not include_testing):
            return sig, d.info
        if cache is None:
            return sig, inspect(d.path, plugins)
        return sig, cache.get(d.path, sig[0], lambda p: inspect(str(p), plugins))

    # Sequential on purpose: inspection is Python parsing, and threads only fought over the GIL
    # (measured: 1 thread 0.9 s, 2 threads 1.3 s, 4 threads 1.4 s for 1,000 uncached models). Only the
    # kernel's reads run ahead: the models the cache has never seen (a first scan) are prefetched.
    found = list(found)
    unseen: set[str] = set()
    prefetcher = None
    if cache is not None:
        from imageworks_models.formats.inspectcache import Prefetcher

        ordered = [d.path for d in found if d.path not in cache.items and not d.problem and d.info is None]
        unseen = set(ordered)
        prefetcher = Prefetcher(ordered) if len(ordered) > 1 else None
    for d in found:
        sig, info = prepare(d)
        if prefetcher is not None and d.path in unseen:
            prefetcher.done()
        if sig is None:
            rows.append(Row("error", d.path, reason="vanished during the scan", provider=d.provider))
            continue
        key, total, count = sig
        if d.problem:
            rows.append(Row("skip", d.path, reason=d.problem, files=count, size_bytes=total, provider=d.provider))
            continue
        if d.placeholder and not include_testing:
            rows.append(Row("skip", d.path, reason=f"placeholder: {d.placeholder} (--include-testing adds it)",
                            files=count, size_bytes=total, provider=d.provider))
            continue
        errors = list(info.errors) if info else []
        if errors and not d.placeholder:
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            rows.append(Row("error", d.path, reason=errors[0] + more, files=count, size_bytes=total,
                            provider=d.provider))
            continue
        name, entry, why = describe(d, info, backend=backend, location=location, fallback_format=fallback_format)
        if entry is None:
            rows.append(Row("skip", d.path, reason=why, files=count, size_bytes=total, provider=d.provider))
            continue
        asked = (names or {}).get(d.path)
        if asked:
            name = entry["name"] = asked
        total, count = extent(entry, total, count)  # an Ollama projector counts as the import counts it
        entry["download"].update(size_bytes=total, file_count=count)
        row = Row("add", d.path, name=name, format=entry["format"], quantization=entry.get("quantization"),
                  backend=entry["backend"], files=count, size_bytes=total, provider=d.provider, entry=entry,
                  served_model_id=d.served_model_id, digests=d.digests)
        path = d.path if canonical else real(d.path)
        match = index.match(path=path, name=name, source=entry.get("source"), format=entry["format"],
                            quantization=entry.get("quantization"))
        if asked and match is not None and match.rule != "path" and match.name.lower() != asked.lower():
            match = index.match(path=path, name=name)  # --name: only the path and that name decide
        if match is not None and match.conflict:
            row.action, row.reason, row.existing = "conflict", match.conflict, match.name
        elif match is not None:
            _attach(row, match, index, update_existing=update_existing)
        else:
            index.add(entry, path)
        rows.append(row)
    if prefetcher is not None:
        prefetcher.stop()
    hits = cache.hits if cache else 0
    misses = cache.misses if cache else len(rows)
    return rows, misses, hits


def _auto_named(entry: dict[str, Any]) -> bool:
    """Whether the entry's name is what the naming rule gives for its own recorded facts."""
    fmt = entry.get("format")
    if not fmt or not entry.get("family") or not entry.get("backend"):
        return False
    return entry["name"] == entry_name(entry["family"], entry["backend"], fmt, entry.get("quantization"))


def _attach(row: Row, match, index, *, update_existing: bool) -> None:
    """Point ``row`` at the matched entry: same files → update (or ``exists``), or a renamed re-quant."""
    from imageworks_models.registry.identity import attach_part, has_files, real

    existing = index.entries[match.name]
    entry = row.entry
    curated = match.name in index.curated
    renamed = (not curated and match.rule == "path" and existing["name"] != row.name and _auto_named(existing)
               and (existing.get("format"), existing.get("quantization")) != (entry.get("format"),
                                                                            entry.get("quantization")))
    index._secondary()
    if renamed and row.name.lower() not in index.by_name:
        # other weights at the same path (download --force of another quant): the name follows the facts
        row.action, row.replaces = "add", existing["name"]
        row.reason = f"replaces {existing['name']} (its files are now {row.name.rsplit('-', 1)[-1]})"
        index.add(entry, real(row.path))
        return
    row.existing = row.name = entry["name"] = existing["name"]
    if curated:
        row.entry = entry = attach_part(entry, index.curated[match.name])
        row.backend = existing.get("backend") or row.backend
    if match.rule != "path" or not has_files(existing) or not (existing.get("download") or {}).get("path"):
        # an entry without files yet, or one whose recorded files are gone from where they were (moved)
        row.action = "update"
        row.reason = f"attached to {existing['name']} (matched by {match.rule})"
        return
    if not update_existing:
        row.action, row.reason = "exists", "already registered (--update-existing refreshes it)"
        return
    same = all((existing.get(k) or None) == (entry.get(k) or None) for k in ("format", "quantization")
               if not curated or k in entry) and \
        (existing.get("download") or {}).get("size_bytes") == row.size_bytes and \
        (existing.get("download") or {}).get("file_count") == row.files
    row.action = "unchanged" if same else "update"


def discovered_from_sources(*, roots: Iterable[Path] = (), discover: bool = False, settings, plugins,
                            sources: Iterable[str] | None = None) -> list[Discovered]:
    """Ask the sources: ``scan(root)`` for each root, and ``discover()`` (their own stores) if asked."""
    wanted = set(sources) if sources else None
    found: list[Discovered] = []
    scanners = [(r, impl) for r, impl in plugins.source_impls("scan") if wanted is None or r.name in wanted]
    roots = list(roots)
    if roots and not scanners:
        raise SourceNotFoundError("no installed source can scan a weights folder",
                                  hint="install the Hugging Face plugin: pip install 'imageworks-models[hf]'")
    for root in roots:
        check_root(root, settings)
        # walkers never follow links, so every path under a resolved root is already canonical
        real_root = Path(real_path(str(root)))
        for _, impl in scanners:
            found.extend(impl.scan(real_root, settings=settings))
    if discover:
        for record, impl in plugins.source_impls("discover"):
            if wanted is None or record.name in wanted:
                found.extend(replace(d, path=real_path(d.path)) for d in impl.discover(settings=settings))
    seen: set[str] = set()
    unique = []
    for d in found:
        if d.path not in seen:
            seen.add(d.path)
            unique.append(d)
    return unique


@honours_dry_run
def scan(roots: Iterable[Path | str] = (), *, discover: bool = False, update_existing: bool = False,
         include_testing: bool = False, fallback_format: str | None = None, backend: str | None = None,
         location: str | None = None, dry_run: bool = False, sources: Iterable[str] | None = None,
         settings=None, plugins=None, progress: Progress = SILENT) -> ScanReport:
    """Find models under ``roots`` (and in the sources' own stores if ``discover``) and record them.

    Args:
        roots: weights folders to walk.
        discover: also ask every source with ``discover`` (the HF cache, the Ollama store...).
        update_existing: refresh entries already registered for a found path (else they are left as they are).
        include_testing: record placeholders too (flagged ``testing``).
        fallback_format: the format of models whose format cannot be detected.
        backend: the backend of new entries (default: ``vllm``).
        location: the location label (default: the ``location`` setting).
        dry_run: plan only; write nothing (not even the stat cache of the manifests).
        sources: limit to these source names.
        settings, plugins: resolved settings and plugins (loaded when ``None``).
        progress: shown while manifests are hashed.

    Returns:
        A report with one row per found model; ``written`` counts the entries recorded.

    Raises:
        AcquisitionError: a root is missing or a symlink outside the configured roots.
        SourceNotFoundError: no installed source can scan folders.
        StorageError, LockTimeoutError: the registry could not be written (it is unchanged).
    """
    import time

    from imageworks_models.formats.inspectcache import InspectCache
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import store_for
    from imageworks_models.registry.store import gc_paused
    from imageworks_models.settings import load_settings

    t0 = time.perf_counter()
    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    store = store_for(settings)
    found = discovered_from_sources(roots=[Path(r).expanduser() for r in roots], discover=discover,
                                    settings=settings, plugins=plugins, sources=sources)
    cache = InspectCache(settings.cache_dir)
    # Matching indexes every entry; the collector would walk the registry just read while the index is made
    # (rescan of 1,000 folders against 5,000 entries: ~10 ms of ~130 ms).
    with gc_paused():
        registry = store.match_view() or store.load()
        rows, misses, hits = plan(found, registry=registry, plugins=plugins, settings=settings,
                                  update_existing=update_existing, include_testing=include_testing,
                                  fallback_format=fallback_format, backend=backend, location=location, cache=cache,
                                  canonical=True)
    cache.save()
    report = ScanReport(rows=rows, dry_run=dry_run, inspected=misses, cached=hits)
    if not dry_run:
        report.written = record(rows, settings=settings, plugins=plugins, progress=progress)
    report.seconds = time.perf_counter() - t0
    return report


def record(rows: list[Row], *, settings, plugins, progress: Progress = SILENT, digests=None,
           downloaded: bool = False) -> int:
    """Hash the manifest of every ``add``/``update`` row and write them in one registry edit.

    Returns:
        How many entries were written.
    """
    from imageworks_models.integrity.manifest import build_manifest
    from imageworks_models.registry import store_for
    from imageworks_models.fs.storage import utc_now

    todo = [r for r in rows if r.action in ("add", "update") and r.entry is not None]
    if not todo:
        return 0
    algorithm = settings.hash_algorithm
    for r in todo:
        manifest = None
        known = digests if digests is not None else r.digests
        if known:
            from imageworks_models.integrity.manifest import manifest_from_digests

            algo = known[next(iter(known))].split(":", 1)[0] if digests is None else algorithm
            manifest = manifest_from_digests(Path(r.path), known, algorithm=algo, plugins=plugins)
        if manifest is None:
            manifest = build_manifest(r.path, algorithm=algorithm, plugins=plugins, quick=True,
                                      cache_dir=settings.cache_dir, progress=progress, label=r.name or r.path)
        if manifest.errors:
            first = next(iter(manifest.errors.items()))
            r.action, r.reason = "error", f"{first[0]}: {first[1]}"
            continue
        from imageworks_models.registry.identity import extent

        r.entry["artifacts"] = manifest.as_artifacts()
        size, count = extent(r.entry, manifest.total_bytes, sum(1 for f in manifest.files if f.special is None))
        r.entry["download"].update(size_bytes=size, file_count=count)
        r.files, r.size_bytes = count, size
    todo = [r for r in todo if r.action in ("add", "update")]
    now = utc_now()
    store = store_for(settings)
    with store.edit() as layers:
        merged, _ = layers.merged()
        for r in todo:
            entry = dict(r.entry)
            if downloaded:
                entry["download"]["downloaded_at"] = now
            current = layers.discovered.get(entry["name"]) or {}
            if r.action == "update" or current:
                entry, note = refresh_entry(current, entry, replace_manifest=downloaded)
                r.reason = note or r.reason
            elif entry["name"] in merged:
                r.action, r.reason = "conflict", f"the name {entry['name']} was registered meanwhile"
                continue
            if r.replaces and r.replaces in layers.discovered.entries and layers.curated.get(r.replaces) is None:
                old = layers.discovered.remove(r.replaces)
                kept = {k: old[k] for k in ("version_lock",) if old.get(k)}
                if kept.get("version_lock", {}).get("locked"):
                    entry["version_lock"] = kept["version_lock"]  # a lock on a path outlives a rename
            layers.put_found(entry)
    return sum(1 for r in todo if r.action in ("add", "update"))


def refresh_entry(current: dict[str, Any], new: dict[str, Any], *,
             replace_manifest: bool = False) -> tuple[dict[str, Any], str | None]:
    """``current`` (a discovered-layer entry) updated with freshly found facts; its lock and history kept.

    A recorded manifest is never written over with a different one (a divergence stays until
    ``verify --accept`` or ``lock --set-expected``), unless ``replace_manifest`` (a fresh download).
    Returns the entry and a note when the manifest was kept.
    """
    out = dict(current)
    note = None
    old_art, new_art = current.get("artifacts") or {}, new.get("artifacts") or {}
    was_placeholder = (current.get("flags") or {}).get("testing") and not (new.get("flags") or {}).get("testing")
    if old_art.get("aggregate") and new_art and old_art.get("aggregate") != new_art.get("aggregate") \
            and not replace_manifest and not was_placeholder:
        new = {k: v for k, v in new.items() if k != "artifacts"}
        note = (f"files differ from the recorded manifest; kept it (`imageworks-loader verify {current.get('name')}` "
                "shows how; `verify --accept` or `lock --set-expected` records them)")
    if was_placeholder:
        out["flags"] = dict(current["flags"]) | {"testing": False}  # a placeholder that got its weights
    for key, value in new.items():
        if key == "download":
            download = dict(current.get("download") or {})
            download.update(value)
            download.pop("status", None)
            download.pop("status_since", None)
            out["download"] = download
        elif key == "source":
            out["source"] = dict(current.get("source") or {}) | value
        elif key == "metadata":
            out["metadata"] = dict(current.get("metadata") or {}) | value
        elif key == "flags":
            out["flags"] = dict(out.get("flags") or {}) | value
        else:
            out[key] = value
    return out, note
