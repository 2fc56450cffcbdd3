"""``normalize-formats``: re-inspect every installed entry's files and bring its recorded facts (format,
quantization, size, file count, directory checksum) back in line with them (docs/runbooks/model-downloader.md, 3.4).

Planning reads headers (``inspect_artifact``, cached) and builds each entry's manifest: with the stat cache
(files unchanged since they were last hashed on this machine are not read again), or from every byte with
``rebuild``. Applying writes the discovered layer only, in one locked edit after a backup: fields the curated
layer sets are the curator's and are reported, not overwritten, and an entry whose files differ from its
recorded manifest is reported as ``drift`` and left alone (accepting other bytes is ``verify --accept``'s job).
With ``prune_missing``, entries whose files are gone lose their discovered part (an entry with a curated part
stays, marked not installed). A header that cannot be read is an ``error`` row, as in ``scan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imageworks_models.reports import SILENT, Progress
from imageworks_models.reports import ChangeReport
from imageworks_models.registry.predicates import local_path

COLUMNS = ("format", "quantization", "size_bytes", "file_count", "aggregate")


@dataclass
class NormalizeRow:
    """One entry: ``action`` is ``update``, ``unchanged``, ``drift`` (other bytes than the recorded manifest:
    left to ``verify --accept``), ``remove`` (files gone, pruned), ``missing`` (files gone, kept) or ``error``;
    ``changes`` maps each differing column to ``[recorded, found]``."""

    action: str
    name: str
    path: str
    changes: dict[str, list[Any]] = field(default_factory=dict)
    reason: str | None = None
    found: dict[str, Any] = field(default_factory=dict, repr=False)
    artifacts: dict[str, Any] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "name": self.name, "path": self.path, "changes": self.changes,
                "reason": self.reason}


@dataclass
class NormalizeReport(ChangeReport):
    """A :class:`~imageworks_models.maintain.reset.ChangeReport` of :class:`NormalizeRow` rows, plus ``rebuild``."""

    rebuild: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "rebuild": self.rebuild}


def _recorded(entry: dict[str, Any]) -> dict[str, Any]:
    dl = entry.get("download") or {}
    return {"format": (entry.get("format") or dl.get("format") or None), "quantization": entry.get("quantization"),
            "size_bytes": dl.get("size_bytes"), "file_count": dl.get("file_count"),
            "aggregate": (entry.get("artifacts") or {}).get("aggregate")}


def _inspect(entry: dict[str, Any], path: str, *, rebuild: bool, settings, plugins, progress) -> NormalizeRow:
    from imageworks_models.acquire.discovery import inspect
    from imageworks_models.errors import ImageworksError
    from imageworks_models.integrity.manifest import build_manifest

    name = entry["name"]
    try:
        info = inspect(path, plugins)
        algorithm = ((entry.get("artifacts") or {}).get("aggregate") or settings.hash_algorithm).split(":")[0]
        manifest = build_manifest(path, algorithm=algorithm, plugins=plugins, quick=not rebuild,
                                  cache_dir=settings.cache_dir, progress=progress, label=name)
    except ImageworksError as exc:
        return NormalizeRow("error", name, path, reason=exc.message)
    if manifest.errors:
        first = next(iter(manifest.errors.items()))
        return NormalizeRow("error", name, path, reason=f"{first[0]}: {first[1]}")
    from imageworks_models.registry.identity import extent

    recorded = _recorded(entry)
    size, count = extent(entry, manifest.total_bytes, sum(1 for f in manifest.files if f.special is None))
    found = {"format": (info.format.lower() if info and info.format else recorded["format"]),
             "quantization": (info.quantization.lower() if info and info.quantization else recorded["quantization"]),
             "size_bytes": size, "file_count": count, "aggregate": manifest.aggregate}
    changes = {k: [recorded[k], found[k]] for k in COLUMNS if recorded[k] != found[k]}
    if "aggregate" in changes and recorded["aggregate"]:
        # Other bytes than the recorded ones: accepting them is verify's decision, not a normalisation.
        return NormalizeRow("drift", name, path, changes=changes, found=found,
                            reason=f"files differ from the recorded manifest: `imageworks-loader verify {name}` "
                                   "shows how, `verify --accept` records them; nothing is changed here")
    if info is not None and info.errors:  # as scan does: a header that cannot be read is reported, not guessed
        return NormalizeRow("error", name, path, changes=changes, reason=info.errors[0])
    return NormalizeRow("update" if changes else "unchanged", name, path, changes=changes, found=found,
                        artifacts=manifest.as_artifacts())


def plan_normalize(*, rebuild: bool = False, prune_missing: bool = False, settings=None, plugins=None,
                   progress: Progress = SILENT) -> NormalizeReport:
    """What :func:`normalize_formats` would change; reads files, writes nothing (the stat cache aside)."""
    import os

    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    layers = store_for(settings).load_layers()
    entries, _ = layers.merged()
    rows, not_local = [], 0
    for name in sorted(entries):
        entry = entries[name]
        path = local_path(entry)
        if path is None or (not os.path.exists(path) and not (entry.get("download") or {}).get("path")):
            not_local += 1  # a store reference, or a curated model_path not downloaded yet: nothing recorded
            continue
        if not os.path.exists(path):
            if prune_missing:
                keep = layers.curated.get(name) is not None
                rows.append(NormalizeRow("remove", name, path, reason="files gone; " + (
                    "kept its curated part, marked not installed" if keep else "entry removed")))
            else:
                rows.append(NormalizeRow("missing", name, path, reason="files gone (--prune-missing drops it)"))
            continue
        row = _inspect(entry, path, rebuild=rebuild, settings=settings, plugins=plugins, progress=progress)
        curated = layers.curated.get(name) or {}
        owned = [k for k in ("format", "quantization") if k in row.changes and curated.get(k) is not None]
        if owned:
            note = "; ".join(f"the curated layer sets {k} = {curated[k]!r} (kept; the files say {row.found[k]!r})"
                             for k in owned)
            for k in owned:
                row.changes.pop(k)
            if row.action == "update":  # a drift stays a drift: its manifest is not ours to write
                row.action = "update" if row.changes else "unchanged"
            row.reason = f"{row.reason}; {note}" if row.reason else note
        rows.append(row)
    report = NormalizeReport(rows, dry_run=True, rebuild=rebuild)
    if not_local:
        report.notes.append(f"{not_local} entries have no local files (store references, remote or not "
                            "downloaded) and were not inspected")
    return report


def normalize_formats(*, apply: bool = False, rebuild: bool = False, prune_missing: bool = False,
                      backup: bool = True, settings=None, plugins=None, progress: Progress = SILENT) -> NormalizeReport:
    """Re-inspect installed entries and, with ``apply``, record what their files are now.

    Args:
        apply: write the changes (without it: a dry run).
        rebuild: hash every byte again instead of trusting the stat cache.
        prune_missing: drop the discovered part of entries whose files are gone.
        backup: take a timestamped backup of each changed layer first.

    Returns:
        A :class:`NormalizeReport` (its rows are the diff).

    Raises:
        StorageError, LockTimeoutError: the registry could not be written (it is unchanged).
    """
    from imageworks_models.acquire.discovery import refresh_entry
    from imageworks_models.registry.backups import edit_with_backup
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    if not apply:  # a dry run writes nothing in the registry folder, not even the snapshot cache
        from imageworks_models.fs.dryrun import dry_run

        with dry_run():
            report = plan_normalize(rebuild=rebuild, prune_missing=prune_missing, settings=settings,
                                    plugins=plugins, progress=progress)
    else:
        report = plan_normalize(rebuild=rebuild, prune_missing=prune_missing, settings=settings, plugins=plugins,
                                progress=progress)
    if not apply or not any(r.action in ("update", "remove") for r in report.rows):
        report.dry_run = not apply
        return report

    def body(layers) -> None:
        for row in report.rows:
            current = layers.discovered.get(row.name)
            if row.action == "remove":
                layers.discovered.remove(row.name)
                if layers.curated.get(row.name) is not None and current is not None:
                    layers.discovered.put({k: v for k, v in current.items() if k not in ("download", "artifacts")})
            elif row.action == "update":
                new: dict[str, Any] = {"name": row.name}
                for key in ("format", "quantization"):
                    if key in row.changes:
                        new[key] = row.found[key]
                new["download"] = {k: row.found[k] for k in ("size_bytes", "file_count")}
                if "format" in row.changes:
                    new["download"]["format"] = row.found["format"]
                if "aggregate" in row.changes:
                    new["artifacts"] = row.artifacts
                merged, _ = refresh_entry(current or {"name": row.name}, new)
                layers.discovered.put(merged)

    _, report.backup = edit_with_backup(store_for(settings), "normalize", body, backup=backup)
    report.dry_run = False
    report.written = sum(r.action in ("update", "remove") for r in report.rows)
    return report
