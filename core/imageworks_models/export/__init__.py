"""Handing the registry to the platforms that run fleets, and bringing their configs in.

- ``export --to production-stack``: Helm values for the vLLM production stack's ``vllm-stack`` chart
  (``prodstack.py``), sized by the memory-fit estimate.
- ``export --to llama-swap``: llama-swap's ``config.yaml`` from our launch plans (``llamaswap.py``).
- ``export --to models.lock``: the lockfile (``lockfile.export_lock``, the same as ``lock export``).
- ``import --from llama-swap``: llama-swap models as curated entries (``llamaswap.entries_from``).

What may leave the machine, which entries, and how files are written: ``common.py``. May import ``maintain``,
``serving`` (backend launch plans and their checks), ``fit``, ``acquire`` (the lockfile), ``registry`` and
everything below; never the gateway, ``present``, the CLI or the GUI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

TARGETS = ("production-stack", "llama-swap", "models.lock")
DEFAULT_PATHS = {"production-stack": "values.yaml", "llama-swap": "config.yaml", "models.lock": "models.lock"}
IMPORT_SOURCES = ("llama-swap",)


def render(target: str, *, names: Iterable[str] = (), role: str | None = None, installed_only: bool = False,
           settings=None, plugins=None) -> dict[str, Any]:
    """The export of ``target`` as text, without writing it.

    Returns:
        ``{"target", "text", "document", "exported": [...], "skipped": [{"name", "reason"}]}``.

    Raises:
        ExportError: an unknown target.
        EntryNotFoundError: a name matches no entry.
    """
    from imageworks_models.errors import ExportError
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import open_registry
    from imageworks_models.settings import load_settings
    from imageworks_models.export.common import dump_yaml, select

    if target not in TARGETS or target == "models.lock":
        raise ExportError(f"cannot render {target!r} here", hint=f"one of: {', '.join(TARGETS)}")
    settings = settings or load_settings()
    entries = select(open_registry(settings), names=names, role=role, installed_only=installed_only)
    if target == "production-stack":
        from imageworks_models.export import prodstack

        doc, exported, skipped = prodstack.values(entries, settings=settings, plugins=plugins)
        header = prodstack.header()
    else:
        from imageworks_models.export import llamaswap

        plugins = plugins or get_plugins(settings)
        doc, exported, skipped = llamaswap.config(entries, settings=settings, plugins=plugins)
        header = llamaswap.header()
    return {"target": target, "text": dump_yaml(doc, header=header), "document": doc, "exported": exported,
            "skipped": skipped}


def export(target: str, *, output: Path | str | None = None, names: Iterable[str] = (), role: str | None = None,
           installed_only: bool = False, force: bool = False, dry_run: bool = False, settings=None,
           plugins=None) -> dict[str, Any]:
    """Write the export of ``target`` to ``output`` (default ``DEFAULT_PATHS[target]``).

    Args:
        target: ``production-stack``, ``llama-swap`` or ``models.lock``.
        output: the file to write.
        names, role, installed_only: which entries (default: all but testing and deprecated ones; the lockfile
            always holds every locked entry).
        force: replace an existing file.
        dry_run: render and check everything, write nothing.

    Returns:
        ``{"target", "path", "written", "exported": [...], "skipped": [{"name", "reason"}]}``.

    Raises:
        ExportError: an unknown target, or the file exists without ``force``.
        EntryNotFoundError: a name matches no entry.
        StorageError: the file could not be written (it is unchanged).
    """
    from imageworks_models.errors import ExportError
    from imageworks_models.settings import load_settings
    from imageworks_models.export.common import write_output

    if target not in TARGETS:
        raise ExportError(f"unknown export target {target!r}", hint=f"one of: {', '.join(TARGETS)}")
    settings = settings or load_settings()
    path = Path(output or DEFAULT_PATHS[target])
    if target == "models.lock":
        from imageworks_models.acquire.lockfile import export_lock

        if names or role or installed_only:
            raise ExportError("models.lock holds every locked entry; it takes no names, --role or --installed",
                              hint="lock the entries you want in it, then export")
        if path.exists() and not force:
            raise ExportError(f"{path} exists; not overwriting it",
                              hint="pass --force to replace it (`lock export` replaces it always)")
        result = export_lock(path, dry_run=dry_run, settings=settings)
        return {"target": target, "path": result["path"], "written": result["written"],
                "exported": [{"name": n, "notes": []} for n in result["entries"]], "skipped": result["skipped"]}
    out = render(target, names=names, role=role, installed_only=installed_only, settings=settings, plugins=plugins)
    written = write_output(path, out["text"], force=force, dry_run=dry_run, settings=settings)
    return {"target": target, "path": str(path), "written": written, "exported": out["exported"],
            "skipped": out["skipped"]}


def import_config(source: str, path: Path | str, *, dry_run: bool = False, settings=None) -> dict[str, Any]:
    """Bring the models of another tool's config in as curated entries.

    Entries whose name is taken are left as they are (a person's edit is never overwritten) and reported.

    Args:
        source: ``llama-swap``.
        path: its config file.
        dry_run: say what would be imported; write nothing.

    Returns:
        ``{"source", "path", "dry_run", "rows": [{"id", "name", "backend", "action": "import" | "imported" |
        "exists" | "skip", "notes"}]}``.

    Raises:
        ExportError: an unknown source, or the file cannot be read as that tool's config.
        RegistryValidationError: an entry the file describes is not valid; nothing was written.
    """
    from imageworks_models.errors import ExportError
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings
    from imageworks_models.export import llamaswap

    if source not in IMPORT_SOURCES:
        raise ExportError(f"cannot import from {source!r}", hint=f"one of: {', '.join(IMPORT_SOURCES)}")
    settings = settings or load_settings()
    from imageworks_models.pluginhost.manager import get_plugins

    entries, rows = llamaswap.entries_from(llamaswap.read_config(path), plugins=get_plugins(settings))
    by_name = {row["name"]: row for row in rows if row["name"]}
    store = store_for(settings)

    def plan(layers) -> list[dict[str, Any]]:
        fresh = []
        for entry in entries:
            row = by_name[entry["name"]]
            if layers.curated.get(entry["name"]) is not None or layers.discovered.get(entry["name"]) is not None:
                row["action"] = "exists"
                row["notes"].append("an entry of this name exists: left as it is")
                continue
            fresh.append(entry)
        return fresh

    if dry_run:
        plan(store.load_layers())
    else:
        with store.edit(backup=True, backup_label="import") as layers:
            for entry in plan(layers):
                layers.curated.put(entry)
                by_name[entry["name"]]["action"] = "imported"
    return {"source": source, "path": str(path), "dry_run": dry_run, "rows": rows}
