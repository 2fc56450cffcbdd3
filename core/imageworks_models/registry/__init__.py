"""The layered registry: schema, layers and merge rules, the store on disk (``store``, ``jsonio``, ``legacy``),
which entry a model is (``identity``), what an entry is (``predicates``: installed, locked, drifted...), the
tool's own memory (``state``), backups and the last change to each layer (``backups``, ``layerdiff``), the audit
trail (``audit``) and registry-wide checks (``doctor``).

May import ``formats``, ``pluginhost``, ``plugin``, ``fs`` and the base modules; never integrity, acquisition,
serving or anything above.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imageworks_models.settings import Settings
    from imageworks_models.registry.store import Registry, RegistryStore


def shipped_defaults_dir() -> Path:
    """The registry shipped with the package (``configs/`` in a checkout)."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "_default_configs"
    return packaged if packaged.is_dir() else here.parent.parent / "configs"


def store_for(settings: "Settings") -> "RegistryStore":
    """The :class:`RegistryStore` for the resolved registry folder, seeded on first use.

    When the folder is the per-user default and holds no registry yet, the shipped default catalog
    is copied into it, so a fresh install shows a real table.
    """
    from imageworks_models.fs import storage
    from imageworks_models.registry.store import CURATED_FILE, DISCOVERED_FILE, LOCK_FILE, RegistryStore

    store = RegistryStore(settings.registry_dir, lock_timeout=settings.lock_timeout,
                          backup_keep=settings.backup_keep, audit_dir=settings.log_dir,
                          max_json_bytes=settings.max_json_bytes)
    if settings.origin("registry_dir") == "default" and not any(
            (store.directory / f).exists() for f in (CURATED_FILE, DISCOVERED_FILE)):
        source = shipped_defaults_dir()
        store.directory.mkdir(parents=True, exist_ok=True)
        with storage.file_lock(store.directory / LOCK_FILE, timeout=settings.lock_timeout, folder=True):
            for name in (CURATED_FILE, DISCOVERED_FILE):
                if (source / name).is_file() and not (store.directory / name).exists():
                    storage.atomic_write(store.directory / name, (source / name).read_bytes())
    return store


def open_registry(settings: "Settings | None" = None) -> "Registry":
    """Load the effective registry for ``settings`` (default: settings resolved now).

    Raises:
        RegistryError: a registry file is malformed or invalid (the message names file and place).
    """
    if settings is None:
        from imageworks_models.settings import load_settings

        settings = load_settings()
    return store_for(settings).load()


def import_schema_meanwhile() -> None:
    """Start importing the entry schema (pydantic, ~70 ms of CPU) in a background thread, for a command that will
    write the registry after a long wait in C code: a download's transfer threads hold the GIL only between
    buffers, so the import is done by the time the record is written instead of being added to the end. A later
    ``import`` of the schema waits for this one (Python's per-module import lock), so nothing sees it half made.
    Not a daemon: a command that fails at once waits for the import to end before the interpreter does (a daemon
    thread stopped inside pydantic_core's native start-up can abort the process).
    """
    import sys

    if "imageworks_models.registry.schema" in sys.modules:
        return
    import importlib
    import threading

    def run() -> None:
        try:
            importlib.import_module("imageworks_models.registry.schema")
        except Exception:  # noqa: BLE001 - the writer imports it again and reports what is wrong
            pass

    threading.Thread(target=run, name="imageworks-import-schema", daemon=False).start()
