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


def _read_regular(path: Path) -> bytes | None:
    """The file's bytes, ``None`` when absent; a FIFO, device or link is never read (OSError)."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            raise OSError(f"{path} is not a regular file of at most {MAX_BYTES} bytes")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(MAX_BYTES + 1)
    finally:
        os.close(fd)


class State:
    """The remembered identity facts of purged entries (see the module docstring)."""

    def __init__(self, path: Path, records: dict[str, dict[str, Any]] | None = None, *, data: bytes | None = None):
        self.path = path
        self.records = records or {}
        self.data = data
        self.changed = False

    @classmethod
    def load(cls, path: Path) -> "State":
        """The state at ``path``; an absent, unreadable or malformed file is an empty state (it only ever
        holds what a rediscovery may restore, never a person's edit)."""
        try:
            data = _read_regular(path)
        except OSError:
            return cls(path)
        if data is None:
            return cls(path)
        try:
            doc = json.loads(data)
            records = doc.get("remembered") if isinstance(doc, dict) else None
        except (ValueError, RecursionError):
            records = None
        if not isinstance(records, dict):
            return cls(path, data=data)
        return cls(path, {k: v for k, v in records.items() if isinstance(k, str) and isinstance(v, dict)}, data=data)

    def remember(self, discovered: dict[str, Any], effective: dict[str, Any], *, path: str | None) -> None:
        """Keep the lock and source of an entry whose discovered part is about to go."""
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
        from .. import storage

        if not self.changed:
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
