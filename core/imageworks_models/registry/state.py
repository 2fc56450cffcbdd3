"""``model_registry.state.json``: what belongs to a model's identity and must outlive its discovered part.

``purge-imported`` and ``reset-discovered`` drop discovered parts so that a rediscovery starts from
scratch; a lock (``version_lock``: expected digests, locked flag, verification record) and where the
files came from (``source`` repo, revision, commit) are not facts a rediscovery can find again. Before a
discovered part goes, :meth:`State.remember` keeps them here, keyed by entry name with the files' real
path; when a command adds an entry for the same real path (else the same name), :meth:`State.recall`
hands them back to be written into the discovered layer, and forgets them.

It is read and written only inside :meth:`RegistryStore.edit` (under the registry lock), atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "model_registry.state.json"
_SOURCE_KEYS = ("provider", "repo_id", "revision", "commit")
MAX_BYTES = 64 << 20


class State:
    """The remembered identity facts of purged entries (see the module docstring)."""

    def __init__(self, path: Path, records: dict[str, dict[str, Any]] | None = None):
        self.path = path
        self.records = records or {}
        self.changed = False
        self.broken: str | None = None  # why the file could not be read (then it is never written over)

    @classmethod
    def load(cls, path: Path) -> "State":
        """The state at ``path`` (absent: empty). It is read as strictly as the registry's layers
        (:func:`imageworks_models.registry.jsonio.loads_strict`, a regular file within ``max_json_bytes``); one
        that cannot be read is left as it is: nothing is recalled from it and nothing is written over it."""
        import logging

        from imageworks_models.errors import RegistryFileError
        from imageworks_models.registry.jsonio import loads_strict, read_limited

        try:
            doc = loads_strict(read_limited(path), str(path))
        except FileNotFoundError:
            return cls(path)
        except RegistryFileError as exc:
            logging.getLogger("imageworks_models").warning("%s; locks of purged entries are not restored from it",
                                                           exc.message)
            state = cls(path)
            state.broken = exc.message
            return state
        records = doc.get("remembered") if isinstance(doc, dict) else None
        if not isinstance(records, dict):
            state = cls(path)
            state.broken = f"{path}: no 'remembered' object"
            return state
        return cls(path, {k: v for k, v in records.items() if isinstance(k, str) and isinstance(v, dict)})

    def remember(self, discovered: dict[str, Any], effective: dict[str, Any], *, path: str | None) -> None:
        """Keep the lock and source of an entry whose discovered part is about to go.

        Raises:
            RegistryFileError: the state file exists but cannot be read (nothing is forgotten unremembered).
        """
        if self.broken:
            from imageworks_models.errors import RegistryFileError

            raise RegistryFileError(str(self.path), self.broken.split(": ", 1)[-1],
                                    hint="move it aside (its records are only locks of purged entries), then "
                                         "run the command again")
        record: dict[str, Any] = {}
        lock = discovered.get("version_lock")
        if isinstance(lock, dict) and lock:
            record["version_lock"] = lock
        source = {k: v for k, v in ((discovered.get("source") or {}) | {}).items() if k in _SOURCE_KEYS and v}
        if source.get("repo_id") or source.get("commit"):
            record["source"] = source
        if not record:
            return
        if path:
            record["path"] = os.path.realpath(os.path.expanduser(path))
        aggregate = (effective.get("artifacts") or {}).get("aggregate")
        if aggregate:
            record["aggregate"] = aggregate
        self.records[effective["name"]] = record
        self.changed = True

    def paths(self) -> dict[str, str]:
        """Real path -> entry name, for every remembered record with a path."""
        return {r["path"]: name for name, r in self.records.items() if isinstance(r.get("path"), str)}

    def recall(self, name: str, path: str | None) -> dict[str, Any] | None:
        """The facts remembered for files at ``path`` (resolved), else for ``name``; forgotten once recalled."""
        key = None
        if path:
            real = os.path.realpath(os.path.expanduser(path))
            key = next((k for k, r in self.records.items() if r.get("path") == real), None)
        if key is None and name in self.records and not (path and self.records[name].get("path")
                                                         and self.records[name]["path"] != os.path.realpath(path)):
            key = name
        if key is None:
            return None
        self.changed = True
        return self.records.pop(key)

    def to_bytes(self) -> bytes:
        doc = {"schema_version": 1, "remembered": {k: self.records[k] for k in sorted(self.records)}}
        return (json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")

    def save(self) -> None:
        """Write it if it changed (the caller holds the registry lock); an empty state removes the file."""
        from imageworks_models.fs import storage

        if not self.changed or self.broken:
            return
        if not self.records:
            if self.path.exists():
                self.path.unlink()
        else:
            storage.atomic_write(self.path, self.to_bytes())
        self.changed = False


def restore(entry: dict[str, Any], facts: dict[str, Any] | None) -> dict[str, Any]:
    """``entry`` (a discovered-layer entry being added) with the remembered lock and source put back; what the
    entry already says wins."""
    if not facts:
        return entry
    out = dict(entry)
    if facts.get("version_lock") and not out.get("version_lock"):
        out["version_lock"] = facts["version_lock"]
    if facts.get("source"):
        out["source"] = dict(facts["source"]) | {k: v for k, v in (out.get("source") or {}).items() if v}
    return out
