"""The last change to each registry layer: the layer now against its newest backup (taken before every
maintenance write and every GUI edit), entry by entry and key by key, for the GUI's diff viewer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LAYERS = {"curated": "model_registry.curated", "discovered": "model_registry.discovered"}
_MISSING = object()


def _entries(data: bytes | None) -> dict[str, dict[str, Any]]:
    if not data:
        return {}
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    items = doc if isinstance(doc, list) else (doc.get("entries") if isinstance(doc, dict) else None) or []
    return {e["name"]: e for e in items if isinstance(e, dict) and isinstance(e.get("name"), str)}


def newest_backup(backup_dir: Path, stem: str) -> Path | None:
    prefix = f"{stem}."
    found = [p for p in backup_dir.iterdir() if p.name.startswith(prefix) and p.name[len(prefix):][:1].isdigit()] \
        if backup_dir.is_dir() else []
    return max(found, key=lambda p: p.name[len(prefix):].split(".", 1)[0], default=None)


def entry_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """``{"added": [keys], "removed": [keys], "changed": [[key, old, new], ...]}`` between two entries."""
    keys = sorted(set(old) | set(new))
    return {"added": [k for k in keys if k not in old], "removed": [k for k in keys if k not in new],
            "changed": [[k, old[k], new[k]] for k in keys if k in old and k in new and old[k] != new[k]]}


def last_changes(*, settings=None) -> dict[str, dict[str, Any]]:
    """For each layer: ``{"backup": path | None, "added": [names], "removed": [names], "changed": {name:
    entry_diff}}`` (everything counts as added when there is no backup yet)."""
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    store = store_for(settings)
    out = {}
    for layer, stem in LAYERS.items():
        current_path = store.directory / f"{stem}.json"
        backup = newest_backup(store.backup_dir, stem)
        now = _entries(current_path.read_bytes() if current_path.exists() else None)
        before = _entries(backup.read_bytes() if backup else None)
        out[layer] = {"backup": str(backup) if backup else None,
                      "added": sorted(set(now) - set(before)), "removed": sorted(set(before) - set(now)),
                      "changed": {n: entry_diff(before[n], now[n]) for n in sorted(set(now) & set(before))
                                  if before[n] != now[n]}}
    return out
