"""Registry clean-up shared by the CLI and the GUI: prune-duplicates, prune-deprecated, purge-logical-only and
purge-imported (docs/runbooks/model-downloader.md, sections 3.4 and 3.7).

Every function plans from one consistent read of the registry and returns a
:class:`~imageworks_models.maintain.reset.ChangeReport` whose rows are the diff (``remove`` or ``skip`` with the
reason). With ``dry_run`` nothing is written, not even a backup. Otherwise the plan is made again under the
registry's lock and applied in one edit, after a timestamped backup of each changed layer (unless
``backup=False``, for throw-away pipelines). Nothing here deletes files: only registry entries.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from imageworks_models.fs.dryrun import honours_dry_run
from imageworks_models.reports import Row
from imageworks_models.registry.backups import edit_with_backup
from imageworks_models.registry.predicates import entry_path
from imageworks_models.reports import ChangeReport
from imageworks_models.registry.predicates import aggregate, installed, locked

BOTH = ("curated", "discovered")
Plan = list[tuple[Row, tuple[str, ...]]]  # each row, and the layers its entry is removed from


def _row(action: str, entry: dict[str, Any], reason: str) -> Row:
    dl = entry.get("download") or {}
    return Row(action, entry_path(entry), name=entry["name"], backend=entry.get("backend"),
               format=dl.get("format") or entry.get("format"), quantization=entry.get("quantization"),
               provider=(entry.get("source") or {}).get("provider"), reason=reason,
               served_model_id=entry.get("served_model_id"), size_bytes=int(dl.get("size_bytes") or 0))


def _run(label: str, plan: Callable[[Any], Plan], *, dry_run: bool, backup: bool, settings,
         remember: bool = False) -> ChangeReport:
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    registry = store_for(settings)
    if dry_run:
        return ChangeReport([row for row, _ in plan(registry.load_layers())], dry_run=True)

    def body(layers) -> Plan:
        planned = plan(layers)  # again, under the lock: what another writer changed meanwhile counts
        for row, where in planned:
            for layer in where:
                if layer == "discovered" and remember:
                    layers.forget_discovered(row.name, layers.merged()[0].get(row.name))
                else:
                    getattr(layers, layer).remove(row.name)
        return planned

    planned, backups = edit_with_backup(registry, label, body, backup=backup)
    return ChangeReport([row for row, _ in planned], dry_run=False, backup=backups,
                        written=sum(bool(where) for _, where in planned))


def _has_curated(layers, name: str) -> bool:
    return layers.curated.get(name) is not None


# -- prune-duplicates ------------------------------------------------------------------------------------


def _keep_rank(layers):
    def rank(entry: dict[str, Any]):
        flags = entry.get("flags") or {}
        # The one to keep: curated by hand, locked, installed, not deprecated, not testing; then by name.
        return (not _has_curated(layers, entry["name"]), not locked(entry), not installed(entry),
                bool(flags.get("deprecated")), bool(flags.get("testing")), len(entry["name"]), entry["name"])
    return rank


def duplicate_groups(entries: dict[str, dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Entries registered more than once: the same files (aggregate digest, or the same real path), or the
    same source, revision and format. Entries linked through any of these, even through a third entry, form
    one group. Returns ``[(why, [entries...])]``, each group of two or more."""
    keys: dict[tuple, list[str]] = {}
    for entry in entries.values():
        digest = aggregate(entry)
        path = entry_path(entry)
        src = entry.get("source") or {}
        fmt = ((entry.get("download") or {}).get("format") or entry.get("format") or "").lower()
        revision = src.get("commit") or src.get("revision")
        if digest:
            keys.setdefault(("same files", digest), []).append(entry["name"])
        if path and os.path.isabs(os.path.expanduser(path)):
            keys.setdefault(("same files", os.path.realpath(os.path.expanduser(path))), []).append(entry["name"])
        if src.get("provider") and src.get("repo_id") and revision and fmt:
            keys.setdefault(("same source, revision and format", src["provider"], src["repo_id"], revision, fmt),
                            []).append(entry["name"])
    parent = {name: name for name in entries}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    why: dict[str, set[str]] = {}
    for key, names in keys.items():
        for other in names[1:]:
            parent[root(other)] = root(names[0])
        if len(names) > 1:
            why.setdefault(names[0], set()).add(key[0])
    members: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(entries):
        members.setdefault(root(name), []).append(entries[name])
    reasons: dict[str, set[str]] = {}
    for first, whys in why.items():
        reasons.setdefault(root(first), set()).update(whys)
    return [(" and ".join(sorted(reasons.get(r, {"same files"}))), group) for r, group in sorted(members.items())
            if len(group) > 1]


@honours_dry_run
def prune_duplicates(*, dry_run: bool = False, backup: bool = True, settings=None) -> ChangeReport:
    """Remove entries that register the same model twice, keeping the best of each group (curated by hand,
    locked, installed, not deprecated, then the shortest name). A duplicate with a curated part is never
    removed automatically: it is a ``skip`` row to resolve by hand.

    Raises:
        StorageError, LockTimeoutError: the registry could not be written (it is unchanged).
    """
    def plan(layers) -> Plan:
        entries, _ = layers.merged()
        out: Plan = []
        for why, members in duplicate_groups(entries):
            keep = min(members, key=_keep_rank(layers))
            for entry in members:
                if entry["name"] == keep["name"]:
                    continue
                if _has_curated(layers, entry["name"]):
                    out.append((_row("skip", entry, f"{why} as {keep['name']}, but curated: remove one by hand"), ()))
                else:
                    out.append((_row("remove", entry, f"{why} as {keep['name']} (kept)"), ("discovered",)))
        return out

    return _run("prune-duplicates", plan, dry_run=dry_run, backup=backup, settings=settings)


# -- prune-deprecated --------------------------------------------------------------------------------------


def is_placeholder(entry: dict[str, Any]) -> bool:
    """A placeholder: flagged testing (no real weights of its own), or with no files recorded at all."""
    return bool((entry.get("flags") or {}).get("testing")) or not entry_path(entry)


@honours_dry_run
def prune_deprecated(*, placeholders_only: bool = False, dry_run: bool = False, backup: bool = True,
                     settings=None) -> ChangeReport:
    """Remove entries flagged ``deprecated`` (both layers: the flag is the decision), or with
    ``placeholders_only`` only those that are also placeholders. A locked entry is kept (``skip``): unlock it
    first if it really should go.

    Raises:
        StorageError, LockTimeoutError: the registry could not be written (it is unchanged).
    """
    def plan(layers) -> Plan:
        entries, _ = layers.merged()
        out: Plan = []
        for name in sorted(entries):
            entry = entries[name]
            if not (entry.get("flags") or {}).get("deprecated"):
                continue
            if placeholders_only and not is_placeholder(entry):
                continue
            if locked(entry):
                out.append((_row("skip", entry, "deprecated but locked: unlock it first"), ()))
                continue
            reason = "deprecated placeholder" if is_placeholder(entry) else "deprecated"
            if _has_curated(layers, name):
                reason += "; its curated part goes too"
            out.append((_row("remove", entry, reason), BOTH))
        return out

    return _run("prune-deprecated", plan, dry_run=dry_run, backup=backup, settings=settings)


# -- purge-logical-only ------------------------------------------------------------------------------------


@honours_dry_run
def purge_logical_only(*, dry_run: bool = False, backup: bool = True, settings=None) -> ChangeReport:
    """Remove entries that exist only as names: no files recorded, no artifacts, and no curated part (nobody
    described them by hand).

    Raises:
        StorageError, LockTimeoutError: the registry could not be written (it is unchanged).
    """
    def plan(layers) -> Plan:
        entries, _ = layers.merged()
        return [(_row("remove", entries[name], "no files and no curated part"), ("discovered",))
                for name in sorted(entries)
                if not _has_curated(layers, name) and not entry_path(entries[name])
                and not (entries[name].get("artifacts") or {}).get("files")]

    return _run("purge-logical-only", plan, dry_run=dry_run, backup=backup, settings=settings)


# -- purge-imported ------------------------------------------------------------------------------------------


@honours_dry_run
def purge_imported(providers: list[str], *, dry_run: bool = True, backup: bool = True, settings=None) -> ChangeReport:
    """Forget what import and discovery recorded from ``providers`` (``hf``, ``ollama``...; ``all``: every
    provider): their discovered-layer parts go, curated parts stay. The start of a rediscovery from scratch
    (docs/runbooks/model-downloader.md, section 3.7), followed by ``ingest-local-hf``, ``rebuild-ollama`` or ``discover-all``.

    Raises:
        StorageError, LockTimeoutError: the registry could not be written (it is unchanged).
    """
    wanted = {p.strip().lower() for p in providers if p.strip()}
    every = "all" in wanted

    def plan(layers) -> Plan:
        entries, _ = layers.merged()
        out: Plan = []
        for name in sorted(layers.discovered.entries):
            entry = entries.get(name) or layers.discovered.entries[name]
            provider = ((entry.get("source") or {}).get("provider") or "").lower()
            if not provider or not (every or provider in wanted):
                continue
            curated = layers.curated.get(name)
            if curated is not None and not curated.get("backend"):
                out.append((_row("skip", entry, "its curated part has no backend of its own"), ()))
                continue
            out.append((_row("remove", entry, f"imported from {provider}" +
                             ("; curated part kept" if curated is not None else "")), ("discovered",)))
        return out

    return _run("purge-imported", plan, dry_run=dry_run, backup=backup, settings=settings, remember=True)
