"""A stat-keyed cache of ``inspect_artifact`` results, so a rescan of an unchanged tree reads no file.

The key of a folder is the name, size, mtime and inode of each file directly in it (one ``scandir``
and a ``stat`` per file); of a single file, its own. Any change to any of those re-inspects it. The
cache lives in ``<cache_dir>/inspect-cache.json``; losing it costs one slower scan, nothing else.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from .records import ArtifactInfo

VERSION = 1


def signature(path: str) -> tuple[list, int, int] | None:
    """``(key, total_bytes, file_count)`` of a model folder's top-level files, or of one file; ``None`` if gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not os.path.isdir(path):
        return [[os.path.basename(path), st.st_size, st.st_mtime_ns, st.st_ino]], st.st_size, 1
    key, total, count = [], 0, 0
    try:
        with os.scandir(path) as it:
            for e in it:
                try:
                    s = e.stat()  # follows links: an HF cache snapshot's files are links into blobs/
                except OSError:
                    continue
                if e.is_file():
                    key.append([e.name, s.st_size, s.st_mtime_ns, s.st_ino])
                    total += s.st_size
                    count += 1
                elif e.is_dir(follow_symlinks=False):
                    key.append([e.name + "/", 0, s.st_mtime_ns, s.st_ino])
    except OSError:
        return None
    key.sort()
    return key, total, count


def info_to_dict(info: ArtifactInfo) -> dict[str, Any]:
    d = asdict(info)
    d["capabilities"] = sorted(info.capabilities)
    d["errors"] = list(getattr(info, "errors", ()) or ())
    return d


def info_from_dict(d: dict[str, Any]) -> ArtifactInfo:
    fields = set(ArtifactInfo.__dataclass_fields__)
    kwargs = {k: v for k, v in d.items() if k in fields}
    kwargs["capabilities"] = frozenset(kwargs.get("capabilities") or ())
    if "errors" in fields:
        kwargs["errors"] = tuple(kwargs.get("errors") or ())
    return ArtifactInfo(**kwargs)


class InspectCache:
    """Load once, :meth:`get` many times, :meth:`save` once (only if something changed)."""

    def __init__(self, cache_dir: Path | None):
        self.path = Path(cache_dir) / "inspect-cache.json" if cache_dir else None
        self.items: dict[str, list] = {}
        self.dirty = False
        self.hits = self.misses = 0
        if self.path is not None:
            try:
                data = json.loads(self.path.read_bytes())
                if data.get("version") == VERSION and isinstance(data.get("items"), dict):
                    self.items = data["items"]
            except (OSError, ValueError, AttributeError):
                pass

    def get(self, path: str, sig: list, inspect: Callable[[Path], ArtifactInfo | None]) -> ArtifactInfo | None:
        """The cached result for ``path`` if its signature is unchanged, else ``inspect(path)`` (cached)."""
        hit = self.items.get(path)
        if hit is not None and hit[0] == sig:
            self.hits += 1
            return info_from_dict(hit[1]) if hit[1] is not None else None
        self.misses += 1
        info = inspect(Path(path))
        self.items[path] = [sig, info_to_dict(info) if info is not None else None]
        self.dirty = True
        return info

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        from .storage import atomic_write

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps({"version": VERSION, "items": self.items},
                                               separators=(",", ":")).encode())
        except Exception:  # a cache that cannot be written only costs speed next time
            pass
        self.dirty = False
