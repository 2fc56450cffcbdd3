"""Registry maintenance shared by the CLI and the GUI: reset, restore from a backup, remove.

Each function plans first and returns a :class:`ChangeReport` whose rows are the diff; with ``dry_run``
nothing is written. Otherwise the registry is edited once, under its lock, after a timestamped backup of
every layer that changes (``backups/`` beside the registry files; restore one with ``restore-ollama``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imageworks_models.reports import ChangeReport, Row
from imageworks_models.fs.dryrun import honours_dry_run
from imageworks_models.acquire.discovery import configured_roots, within_roots
from imageworks_models.errors import ImageworksError, RegistryError
from imageworks_models.registry.backups import edit_with_backup
from imageworks_models.registry.predicates import entry_path


# -- reset-discovered --------------------------------------------------------------------------------


@honours_dry_run
def reset_discovered(backend: str, *, dry_run: bool = False, backup: bool = True, settings=None) -> ChangeReport:
    """Forget what discovery recorded for every entry of ``backend``: their discovered-layer parts go.

    Entries curated by hand stay (with their curated fields only); a curated part that relies on the
    discovered layer for its backend is left alone, as removing it would leave an entry with no backend.

    Raises:
        StorageError, LockTimeoutError: the registry could not be written (it is unchanged).
    """
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    registry = store_for(settings)

    def plan(layers) -> list[Row]:
        entries, _ = layers.merged()
        rows = []
        for name in sorted(layers.discovered.entries):
            effective = entries.get(name) or {}
            if effective.get("backend") != backend:
                continue
            curated = layers.curated.get(name)
            if curated is not None and not curated.get("backend"):
                rows.append(Row("skip", entry_path(effective), name=name, backend=backend,
                                reason="its curated part has no backend of its own"))
                continue
            note = "curated part kept" if curated is not None else None
            rows.append(Row("remove", entry_path(effective), name=name, backend=backend, reason=note,
                            served_model_id=effective.get("served_model_id")))
        return rows

    if dry_run:
        return ChangeReport(plan(registry.load_layers()), dry_run=True)

    def body(layers):
        rows = plan(layers)
        merged = layers.merged()[0]
        for r in rows:
            if r.action == "remove":
                layers.forget_discovered(r.name, merged.get(r.name))
        return rows

    rows, backups = edit_with_backup(registry, f"reset-{backend}", body, backup=backup)
    return ChangeReport(rows, dry_run=False, backup=backups, written=sum(r.action == "remove" for r in rows))


# -- restore-ollama ------------------------------------------------------------------------------------


_BACKUP_NAME = re.compile(r"model_registry\.(curated|discovered)\.(\d{8}T\d{6}\d*Z)(\.[\w-]+)?\.json")


def _read_backup(path: Path, backup_dir: Path, *, limit: int) -> tuple[str, bytes]:
    """The layer kind and bytes of a backup this tool wrote (D24): named as :func:`storage.backup_file` names
    registry backups, strict JSON, and a registry layer document (``{"schema_version", "entries"}``; the
    earlier tool's list only in a ``legacy`` backup). Anything else (``[]``, a models.lock, a hand-made file)
    is refused before the registry is touched.

    Raises:
        RegistryError, RegistryFileError: the file is not such a backup.
    """
    from imageworks_models.registry.jsonio import loads_strict, read_limited

    hint = f"pick one of the backups this tool wrote: ls {backup_dir}"
    match = _BACKUP_NAME.fullmatch(path.name)
    if match is None:
        raise RegistryError(f"{path} is not a registry backup written by imageworks-models "
                            "(expected model_registry.<curated|discovered>.<UTC time>[.<label>].json)", hint=hint)
    try:
        data = read_limited(path, limit=limit)
    except FileNotFoundError:
        raise RegistryError(f"the backup {path} does not exist", hint=hint) from None
    doc = loads_strict(data, str(path))
    legacy = (match.group(3) or "") == ".legacy"
    if isinstance(doc, list) and not legacy:
        raise RegistryError(f"{path} is a bare list, not a registry layer this tool wrote (a restore from it "
                            "would wipe entries)", hint=hint)
    if isinstance(doc, dict) and not (isinstance(doc.get("schema_version"), int) and isinstance(doc.get("entries"), list)):
        raise RegistryError(f"{path} is not a registry layer (no schema_version and entries list): a models.lock "
                            "or another tool's file?", hint=hint)
    if not isinstance(doc, (dict, list)):
        raise RegistryError(f"{path} is not a registry layer", hint=hint)
    entries = doc if isinstance(doc, list) else doc["entries"]
    if isinstance(doc, dict) and "generated_at" in doc or any(
            isinstance(e, dict) and "aggregate" in e and "files" in e for e in entries):
        raise RegistryError(f"{path} is a models.lock, not a registry backup", hint=hint)
    return match.group(1), data


@honours_dry_run
def restore_backup(backup: Path | str, *, backend: str = "ollama", dry_run: bool = False, take_backup: bool = True,
                   settings=None) -> ChangeReport:
    """Put back the ``backend`` entries of a layer backup (``backups/model_registry.<layer>.<time>...json``).

    The backup's layer (curated or discovered) is read from its file name. In that layer, every current
    entry of ``backend`` is replaced by the backup's; other entries are untouched. A backup of the current
    layer is taken first, so a restore can itself be undone.

    Raises:
        RegistryError: the backup cannot be read or is not a registry layer.
        StorageError, LockTimeoutError, RegistryValidationError: the registry could not be written.
    """
    from imageworks_models.registry import store_for
    from imageworks_models.registry.store import _parse_layer
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    registry = store_for(settings)
    path = Path(backup).expanduser()
    kind, data = _read_backup(path, registry.backup_dir, limit=settings.max_json_bytes)
    old = _parse_layer(kind, path, data)

    def plan(layers) -> list[Row]:
        layer = getattr(layers, kind)
        entries, _ = layers.merged()

        def ours(name: str, raw: dict[str, Any], effective: dict[str, Any] | None) -> bool:
            return (raw.get("backend") or (effective or {}).get("backend")) == backend

        wanted = {n: e for n, e in old.entries.items() if ours(n, e, entries.get(n))}
        current = {n: e for n, e in layer.entries.items() if ours(n, e, entries.get(n))}
        rows = []
        for name in sorted(set(wanted) | set(current)):
            if name not in wanted:
                action = "remove"
            elif name not in current:
                action = "add"
            else:
                same = json.dumps(wanted[name], sort_keys=True) == json.dumps(current[name], sort_keys=True)
                action = "unchanged" if same else "update"
            source = wanted.get(name) or current.get(name)
            rows.append(Row(action, entry_path(source), name=name, backend=backend, reason=f"{kind} layer",
                            served_model_id=source.get("served_model_id"), entry=wanted.get(name)))
        return rows

    if dry_run:
        return ChangeReport(plan(registry.load_layers()), dry_run=True, notes=[f"from {path}"])

    def body(layers):
        rows = plan(layers)
        layer = getattr(layers, kind)
        for r in rows:
            if r.action == "remove":
                layer.remove(r.name)
            elif r.action in ("add", "update"):
                layer.entries[r.name] = r.entry  # as the backup had it, key order included (put() reorders new ones)
        return rows

    rows, backups = edit_with_backup(registry, "restore", body, backup=take_backup)
    return ChangeReport(rows, dry_run=False, backup=backups, notes=[f"from {path}"],
                        written=sum(r.action in ("add", "update", "remove") for r in rows))


# -- remove --------------------------------------------------------------------------------------------


class RemovalRefusedError(ImageworksError):
    """A removal needs ``--force`` (or cannot be done safely); nothing was changed."""


@dataclass
class RemovalPlan:
    """What ``remove`` does: the entry's metadata, its files, or both."""

    name: str
    remove_metadata: bool
    delete_files: bool
    path: str | None = None
    bytes: int = 0
    store_command: list[str] | None = None  # for a store another program owns, e.g. ["ollama", "rm", "x:y"]
    store_tags: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # shared blobs that stay
    layers: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "remove_metadata": self.remove_metadata, "delete_files": self.delete_files,
                "path": self.path, "bytes": self.bytes, "store_command": self.store_command,
                "store_tags": list(self.store_tags), "kept": list(self.kept), "layers": list(self.layers),
                "done": list(self.done)}


def _store_source_for(entry: dict[str, Any], plugins):
    for record, impl in plugins.source_impls("store"):
        if entry.get("backend") == record.name or (entry.get("source") or {}).get("provider") == record.name:
            return impl
    return None


def _tree_bytes(path: str) -> int:
    total = 0
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path):
        return st.st_size
    for folder, dirs, files in os.walk(path):  # os.walk does not follow links by default
        for f in files:
            try:
                total += os.lstat(os.path.join(folder, f)).st_size
            except OSError:
                pass
    return total


def _trash_path(path: str) -> str:
    """Where a folder being deleted is renamed first (same parent, so the rename is one atomic step)."""
    head, tail = os.path.split(os.path.normpath(path))
    return os.path.join(head, f".{tail}.deleting")


def _mark_deleting(registry, name: str, path: str) -> None:
    from imageworks_models.fs.storage import utc_now

    with registry.edit() as layers:
        current = layers.discovered.get(name) or {"name": name}
        download = dict(current.get("download") or {})
        if download.get("status") == "deleting":
            return
        download.update({"path": download.get("path") or path, "status": "deleting", "status_since": utc_now()})
        layers.discovered.put({**current, "download": download})


def plan_removal(name: str, *, delete_files: bool, purge: bool, settings=None, plugins=None) -> RemovalPlan:
    """What ``remove NAME [--delete-files] [--purge]`` would do; changes nothing.

    Modes: no flag or ``--purge`` alone removes the metadata only; ``--delete-files`` deletes the files and
    keeps the entry (marked not installed); ``--purge --delete-files`` does both. Files of a store another
    program owns (Ollama) are removed through that program, which keeps blobs other tags use.

    Raises:
        EntryNotFoundError: no such entry.
        RemovalRefusedError: the files are outside the configured weights roots, or the path is a symlink.
    """
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings
    from imageworks_models.registry.predicates import local_path

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    registry = store_for(settings).load(use_snapshot=False)
    entry = registry.get(name)
    name = entry["name"]
    layers = registry.layers
    plan = RemovalPlan(name=name, remove_metadata=purge or not delete_files, delete_files=delete_files,
                       layers=[k for k in ("curated", "discovered") if getattr(layers, k).get(name) is not None])
    if not delete_files:
        return plan
    source = _store_source_for(entry, plugins)
    if source is not None:
        removal = source.removal(entry, settings=settings)
        plan.store_command, plan.store_tags, plan.kept = removal["command"], removal["tags"], removal["shared"]
        plan.path = local_path(entry)
        return plan
    path = local_path(entry)
    if path is None or not os.path.lexists(path):
        plan.path = path
        if path is not None and os.path.lexists(_trash_path(path)):  # a killed remove: finish deleting
            plan.bytes = _tree_bytes(_trash_path(path))
        return plan
    real = os.path.realpath(path)
    if os.path.islink(path):
        raise RemovalRefusedError(f"{path} is a symbolic link (to {real}); refusing to delete through it",
                                  hint="delete the link yourself, or point the entry at the real folder")
    if not within_roots(real, settings) or real in configured_roots(settings):  # never a whole root
        raise RemovalRefusedError(f"{path} is outside the configured weights roots; refusing to delete it",
                                  hint="delete it by hand, or add its folder to `locations` / IMAGEWORKS_WEIGHTS_ROOT")
    plan.path, plan.bytes = path, _tree_bytes(path)
    return plan


def remove(name: str, *, delete_files: bool = False, purge: bool = False, force: bool = False, backup: bool = True,
           settings=None, plugins=None) -> RemovalPlan:
    """Carry out :func:`plan_removal`'s plan; refuses without ``force``.

    Raises:
        RemovalRefusedError: ``force`` not given, or the plan refused the path.
        BackendNotRunningError, ModelNotPulledError, BackendTimeoutError: a store's server failed
            (the registry is then unchanged).
    """
    import shutil

    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    plan = plan_removal(name, delete_files=delete_files, purge=purge, settings=settings, plugins=plugins)
    if not force:
        raise RemovalRefusedError(f"refusing to remove {plan.name!r} without --force", hint="review the plan "
                                  "above (or run with --dry-run), then add --force")
    from imageworks_models.registry import audit

    registry = store_for(settings)
    from imageworks_models.fs.storage import check_writable

    for layer in plan.layers:  # a read-only layer is refused before any file or layer is touched (W17)
        check_writable(registry.curated_path if layer == "curated" else registry.discovered_path)
    if plan.delete_files and plan.store_command:
        entry = registry.load(use_snapshot=False).get(plan.name)
        source = _store_source_for(entry, plugins)
        removed = source.remove(entry, settings=settings)
        plan.done += [f"removed {tag} from the store" for tag in removed]
        audit.record(settings.log_dir, "delete-files", entries=[plan.name], store_tags=list(removed))
    elif plan.delete_files and plan.path:
        trash = _trash_path(plan.path)
        if os.path.lexists(plan.path) or os.path.lexists(trash):
            # W19: the intent goes to the registry first (the entry stops counting as installed), the
            # folder is then renamed aside in one step and deleted; a kill at any point leaves the entry
            # "deleting", never "installed" with files missing, and running remove again finishes it.
            _mark_deleting(registry, plan.name, plan.path)
            if os.path.lexists(plan.path):
                os.rename(plan.path, trash)
            if os.path.isdir(trash) and not os.path.islink(trash):
                shutil.rmtree(trash)  # never follows symlinks inside the folder
            elif os.path.lexists(trash):
                os.unlink(trash)
            plan.done.append(f"deleted {plan.path}")
            audit.record(settings.log_dir, "delete-files", entries=[plan.name], path=str(plan.path),
                         bytes=plan.bytes)

    def body(layers):
        if plan.remove_metadata:
            # The two layers are two files: the discovered part goes first, so a kill between the two
            # writes leaves a valid curated-only entry, never a discovered part without its backend.
            if layers.discovered.remove(plan.name) is None:
                layers.curated.remove(plan.name)
        elif plan.delete_files:
            current = layers.discovered.get(plan.name)
            if current is not None:
                kept = {k: v for k, v in current.items() if k not in ("download", "artifacts")}
                layers.discovered.remove(plan.name)
                layers.discovered.put(kept)

    _, backups = edit_with_backup(registry, "remove", body, backup=backup)
    if plan.remove_metadata:
        def rest(layers):
            layers.curated.remove(plan.name)
            layers.discovered.remove(plan.name)

        backups += edit_with_backup(registry, "remove", rest, backup=backup)[1]
    plan.done.append("removed the entry from the registry" if plan.remove_metadata else
                     "marked the entry not installed")
    plan.done += [f"backup: {b}" for b in backups]
    return plan
