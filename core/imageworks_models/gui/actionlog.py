"""The GUI's recent-actions log, ``_staging/gui_registry_actions.json``: who did what to which entry, from the
Models page, with the equivalent CLI command. Bounded (the newest ``KEEP`` actions), written atomically under a
lock. The structured audit trail of every change is ``logs/model_downloader.log`` (:mod:`imageworks_models.registry.audit`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imageworks_models.errors import StorageError
from imageworks_models.fs.storage import read_regular

LOG_FILE = "gui_registry_actions.json"
KEEP = 500


def log_path(state_dir: Path) -> Path:
    return Path(state_dir) / LOG_FILE


def read_actions(state_dir: Path, *, limit: int | None = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` actions, newest first; a missing or unreadable file is an empty log."""
    try:
        doc = json.loads(read_regular(log_path(state_dir)))  # a FIFO here never hangs us (B19)
    except (OSError, ValueError, StorageError):
        return []
    raw = doc.get("actions") if isinstance(doc, dict) else None
    actions = [a for a in raw if isinstance(a, dict)] if isinstance(raw, list) else []
    actions.reverse()
    return actions if limit is None else actions[:max(0, limit)]


def record_action(state_dir: Path, *, operator: str, action: str, entry: str | None, cli: str, ok: bool,
                  detail: str = "") -> dict[str, Any]:
    """Append one action (``time``, ``operator``, ``action``, ``entry``, ``cli``, ``ok``, ``detail``)."""
    from imageworks_models.fs.storage import atomic_write, file_lock, utc_now

    path = log_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    item = {"time": utc_now(), "operator": operator, "action": action, "entry": entry, "cli": cli, "ok": ok,
            "detail": detail}
    with file_lock(path.with_name(LOG_FILE + ".lock"), timeout=10, what="the GUI action log"):
        actions = list(reversed(read_actions(state_dir, limit=None)))
        actions = (actions + [item])[-KEEP:]
        atomic_write(path, (json.dumps({"schema_version": 1, "actions": actions}, indent=2, ensure_ascii=False)
                            + "\n").encode("utf-8"))
    return item
