"""``model_registry.checks.json``: the last ``verify`` of each entry, kept apart from the discovered layer.

A verify that finds nothing new to record but its check (``last_checked``, ``last_verified``,
``last_status``, ``last_mode`` of ``version_lock``) writes that record here, a few hundred bytes per
entry, instead of re-serialising the discovered layer with every entry's file manifest (10,000 files
make it megabytes; a ``verify --quick`` would spend most of its time rewriting it).

Reading overlays a record onto the effective entry's ``version_lock`` only while it is the newest word
on that entry: it was made against the entry's current expected aggregate, and its ``last_checked`` is
no earlier than the one in the layers (``lock --set-expected`` and a verify that records a manifest write
their fresh check into the discovered layer, and then that one wins). A record for an entry that is gone,
or whose expected aggregate changed, is ignored and dropped on the next write.

Written only under the registry lock, atomically, like the layers. A file that cannot be read is never
written over: it is ignored (with a warning), and verify records its checks in the discovered layer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHECKS_FILE = "model_registry.checks.json"
KEYS = ("last_checked", "last_verified", "last_status", "last_mode")


def expected_of(entry: dict[str, Any]) -> str | None:
    """The aggregate an entry's files are checked against (the pinned one, else the recorded manifest's)."""
    return ((entry.get("version_lock") or {}).get("expected_aggregate")
            or (entry.get("artifacts") or {}).get("aggregate"))


def load(path: Path, *, limit: int) -> tuple[dict[str, dict[str, Any]] | None, bytes | None]:
    """The records by entry name (absent file: empty) and the bytes read (``None``: no file).

    The records are ``None`` when the file cannot be read (logged). It is read as strictly as the layers
    (:func:`imageworks_models.registry.jsonio.loads_strict`, a regular file within ``limit`` bytes).
    """
    from imageworks_models.errors import RegistryFileError
    from imageworks_models.registry.jsonio import loads_strict, read_limited

    try:
        data = read_limited(path, limit=limit)
    except FileNotFoundError:
        return {}, None
    except RegistryFileError as exc:
        _warn(exc.message)
        return None, None
    try:
        doc = loads_strict(data, str(path))
    except RegistryFileError as exc:
        _warn(exc.message)
        return None, data
    records = doc.get("checks") if isinstance(doc, dict) and doc.get("schema_version") == 1 else None
    if not isinstance(records, dict):
        _warn(f"{path}: not a checks file (schema_version 1 with a 'checks' object)")
        return None, data
    return {k: v for k, v in records.items() if isinstance(k, str) and isinstance(v, dict)}, data


def _warn(message: str) -> None:
    import logging

    logging.getLogger("imageworks_models").warning(
        "%s; it is ignored (move it aside: verify then records its checks in the discovered layer)", message)


def applies(entry: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether ``record`` is the newest check of ``entry``: made against the same expected aggregate, and its
    ``last_checked`` no earlier than the layers' (timestamps are to the second: a tie goes to the record,
    which a verify writes after reading the layers)."""
    checked = record.get("last_checked")
    if not isinstance(checked, str) or record.get("expected") != expected_of(entry):
        return False
    before = (entry.get("version_lock") or {}).get("last_checked")
    return not isinstance(before, str) or checked >= before


def overlay(entries: dict[str, dict[str, Any]], records: dict[str, dict[str, Any]]) -> None:
    """Put each applicable record into its entry's ``version_lock`` (entries are replaced, not mutated)."""
    for name, record in records.items():
        entry = entries.get(name)
        if entry is None or not applies(entry, record):
            continue
        lock = dict(entry.get("version_lock") or {})
        lock.update({k: record[k] for k in KEYS if record.get(k) is not None})
        entries[name] = {**entry, "version_lock": lock}


def to_bytes(records: dict[str, dict[str, Any]]) -> bytes:
    doc = {"schema_version": 1, "checks": {k: records[k] for k in sorted(records)}}
    return (json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
