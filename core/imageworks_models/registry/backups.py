"""Backups of the registry layers around an edit: which backups one edit took.

A backup of each layer is taken by :meth:`imageworks_models.registry.store.RegistryStore.edit` before every
maintenance write; this module tells a command which ones were its own, for its report.
"""

from __future__ import annotations

from typing import Any


def _backups(registry) -> set[str]:
    folder = registry.backup_dir
    return {str(p) for p in folder.iterdir()} if folder.is_dir() else set()


def edit_with_backup(registry, label: str, body, *, backup: bool = True) -> tuple[Any, list[str]]:
    """Run ``body(layers)`` inside ``registry.edit(backup=...)``; returns its result and the backups taken
    (none with ``backup=False``, for throw-away pipelines)."""
    before = _backups(registry)
    with registry.edit(backup=backup, backup_label=label) as layers:
        result = body(layers)
    return result, sorted(_backups(registry) - before)
