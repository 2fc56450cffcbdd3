"""A stat-keyed cache of ``inspect_artifact`` results, so a rescan of an unchanged tree reads no file.

The key of a folder is the name, size, mtime and inode of each file directly in it (one ``scandir``
and a ``stat`` per file); of a single file, its own. Any change to any of those re-inspects it. The
cache lives in ``<cache_dir>/inspect-cache.json``; losing it costs one slower scan, nothing else.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any, Callable

from imageworks_models.errors import StorageError
from imageworks_models.formats.layout import EXCLUDED_DIRS, cache_repo_dir_of
from imageworks_models.plugin.records import ArtifactInfo
from imageworks_models.fs.storage import read_regular

VERSION = 2  # 2: ArtifactInfo.details gained the memory facts (formats/memory.py)


def signature(path: str) -> tuple[list, int, int] | None:
    """``(key, total_bytes, file_count)`` of everything under a model folder (or of one file), from stats
    only; ``None`` if it is gone. Totals count what a manifest counts (``.cache/huggingface`` left out)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):  # what os.path.isdir(path) says, without a second stat
        return [[os.path.basename(path), st.st_size, st.st_mtime_ns, st.st_ino]], st.st_size, 1
    key: list = []
    totals = [0, 0]
    # as a manifest does: a link's target size counts only inside a Hugging Face cache snapshot
    follow = cache_repo_dir_of(os.path.normpath(path)) is not None  # scan paths are canonical already
    if not _walk(path, "", key, totals, 0, follow):
        return None
    key.sort()
    return key, totals[0], totals[1]


def _walk(folder: str, prefix: str, key: list, totals: list, depth: int, follow: bool) -> bool:
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return depth > 0
    for e in entries:
        rel = prefix + e.name
        try:
            if e.is_dir(follow_symlinks=False):
                if rel in EXCLUDED_DIRS or depth >= 16:
                    continue
                s = e.stat(follow_symlinks=False)
                key.append([rel + "/", 0, s.st_mtime_ns, s.st_ino])
                _walk(e.path, rel + "/", key, totals, depth + 1, follow)
                continue
            s = e.stat()  # follows links: an HF cache snapshot's files are links into blobs/
        except OSError:
            key.append([rel, -1, 0, 0])  # a dangling link: still part of the folder
            totals[1] += 1
            continue
        key.append([rel, s.st_size, s.st_mtime_ns, s.st_ino])
        link = e.is_symlink()
        if e.is_file() and (follow or not link):
            totals[0] += s.st_size
        if e.is_file() or link:  # fifos and devices are recorded by a manifest, not counted
            totals[1] += 1
    return True


PREFETCH_HEAD = 64 << 10  # what inspection reads of most files: configs whole, weight files' headers
PREFETCH_AHEAD = 64  # models the prefetcher may run ahead of the parser


class Prefetcher:
    """Asks the kernel to start reading, ahead of the parser, the first bytes of the files in the model folders a
    scan is about to inspect (``posix_fadvise(WILLNEED)``: the reads run on the device while Python parses the
    models before them). On a cold page cache a scan otherwise waits for each file's first read in turn.

    Only regular files are touched (``scandir``'s type, then ``fstat`` of the descriptor opened with
    ``O_NOFOLLOW | O_NONBLOCK``, so a file swapped for a FIFO cannot block); nothing is read into Python, and
    any error just skips the file. ``done()`` after each model keeps it at most ``PREFETCH_AHEAD`` models
    ahead; ``stop()`` ends it (and it ends by itself when not told ``done()`` for 10 s).
    """

    def __init__(self, paths: list[str]):
        self._ahead = threading.Semaphore(PREFETCH_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(paths,), name="imageworks-prefetch", daemon=True)
        if paths and hasattr(os, "posix_fadvise"):
            self._thread.start()

    def done(self) -> None:
        self._ahead.release()

    def stop(self) -> None:
        self._stop.set()
        self._ahead.release()

    def _run(self, paths: list[str]) -> None:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        for path in paths:
            # a parser that stopped (an error ended the scan) leaves it waiting: it gives up after a while
            if not self._ahead.acquire(timeout=10) or self._stop.is_set():
                return
            try:
                with os.scandir(path) as it:
                    files = [e.path for e in it if e.is_file(follow_symlinks=False)]
            except NotADirectoryError:
                files = [path]
            except OSError:
                continue
            for name in files:
                try:
                    fd = os.open(name, flags)
                except OSError:
                    continue
                try:
                    if stat.S_ISREG(os.fstat(fd).st_mode):
                        os.posix_fadvise(fd, 0, PREFETCH_HEAD, os.POSIX_FADV_WILLNEED)
                except OSError:
                    pass
                finally:
                    os.close(fd)


def info_to_dict(info: ArtifactInfo) -> dict[str, Any]:
    # shallow on purpose: dataclasses.asdict deep-copies ``details`` and cost a fifth of a cold scan
    d = {name: getattr(info, name) for name in ArtifactInfo.__dataclass_fields__}
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
        self._lock = threading.Lock()
        if self.path is not None:
            try:
                data = json.loads(read_regular(self.path))  # a FIFO here never hangs us (B19)
                if data.get("version") == VERSION and isinstance(data.get("items"), dict):
                    self.items = data["items"]
            except (OSError, ValueError, AttributeError, StorageError):
                pass

    def get(self, path: str, sig: list, inspect: Callable[[Path], ArtifactInfo | None]) -> ArtifactInfo | None:
        """The cached result for ``path`` if its signature is unchanged, else ``inspect(path)`` (cached)."""
        hit = self.items.get(path)
        if hit is not None and hit[0] == sig:
            with self._lock:
                self.hits += 1
            return info_from_dict(hit[1]) if hit[1] is not None else None
        info = inspect(Path(path))
        with self._lock:  # scans call this from several threads
            self.misses += 1
            self.items[path] = [sig, info_to_dict(info) if info is not None else None]
            self.dirty = True
        return info

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        from imageworks_models.fs.storage import atomic_write

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps({"version": VERSION, "items": self.items},
                                               separators=(",", ":")).encode())
        except Exception:  # a cache that cannot be written only costs speed next time
            pass
        self.dirty = False
