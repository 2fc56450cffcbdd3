"""What an effective entry (a plain dict, both layers merged) is: installed, locked, drifted, testing, where its
files are, which roles it plays. Pure functions of the entry (and a ``stat`` for the filesystem ones), shared by
every layer above the registry: verify, download, import, maintenance, serving, the views, the CLI and the GUI.
"""

from __future__ import annotations

import os
from typing import Any

from imageworks_models.registry.capabilities import CANONICAL
from imageworks_models.registry.identity import is_store_reference

__all__ = ["local_path", "installed", "is_testing", "aggregate", "locked", "drifted", "lock_status", "matches_role",
           "entry_path", "is_store_reference"]


def local_path(entry: dict[str, Any]) -> str | None:
    """The entry's files on this filesystem (``~`` and ``$VARS`` expanded): ``download.path``, else a curated
    ``backend_config.model_path`` naming a local folder or file; ``None`` for a store reference or a Hub id."""
    from imageworks_models.registry.identity import files_path

    return files_path(entry)


def installed(entry: dict[str, Any]) -> bool:
    """Whether the entry's files are recorded and, for a filesystem path, present.

    A store reference such as ``ollama:/name:tag`` cannot be checked here and counts as installed; an
    entry with only a curated ``backend_config.model_path`` is installed when that path exists.
    """
    download = entry.get("download") or {}
    if download.get("status") == "deleting":  # a remove was under way (W19)
        return False
    path = download.get("path")
    if path and is_store_reference(path):
        return True
    local = local_path(entry)
    return bool(local) and os.path.exists(local)


def is_testing(entry: dict[str, Any]) -> bool:
    """Placeholders and experiments, hidden unless asked for."""
    flags = entry.get("flags") or {}
    return bool(flags.get("testing"))


def aggregate(entry: dict[str, Any]) -> str | None:
    return (entry.get("artifacts") or {}).get("aggregate")


def locked(entry: dict[str, Any]) -> bool:
    return bool((entry.get("version_lock") or {}).get("locked"))


def drifted(entry: dict[str, Any]) -> bool:
    """Whether a locked entry's files are known to differ from what it was locked to.

    Cheap enough for ``list``: what the last verify found, marks left by ``verify --fix-missing``, a
    recorded manifest that is not the expected one, and, for locked entries only, a ``stat`` of each
    recorded file (a missing or resized file shows at once; changed bytes show after a ``verify``).
    """
    if not locked(entry):
        return False
    lock = entry.get("version_lock") or {}
    if lock.get("last_status") in ("diverged", "missing"):
        return True
    download = entry.get("download") or {}
    if download.get("status"):
        return True
    artifacts = entry.get("artifacts") or {}
    if lock.get("expected_aggregate") and artifacts.get("aggregate") \
            and lock["expected_aggregate"] != artifacts["aggregate"]:
        return True
    root = local_path(entry)
    if root is None:
        return False
    if not os.path.exists(root):
        return True
    if not os.path.isdir(root):
        files = artifacts.get("files") or []
        return len(files) == 1 and files[0].get("size") is not None and os.path.getsize(root) != files[0]["size"]
    for f in artifacts.get("files") or ():
        if f.get("link") is not None or f.get("special") or f.get("size") is None:
            continue
        try:
            if os.lstat(os.path.join(root, f["path"])).st_size != f["size"]:
                return True
        except OSError:
            return True
    return False


def lock_status(entry: dict[str, Any]) -> str:
    """``unlocked``, ``locked``, or ``drift`` (locked, and its files differ from the expected ones)."""
    if not locked(entry):
        return "unlocked"
    return "drift" if drifted(entry) else "locked"


def matches_role(entry: dict[str, Any], role: str) -> bool:
    """An entry plays ``role`` when it lists it, or when ``role`` names a capability it has."""
    if role in (entry.get("roles") or ()):
        return True
    return role in CANONICAL and bool((entry.get("capabilities") or {}).get(role))


def entry_path(entry: dict[str, Any] | None) -> str:
    """The entry's recorded ``download.path`` as written (``""`` when none)."""
    return str(((entry or {}).get("download") or {}).get("path") or "")
