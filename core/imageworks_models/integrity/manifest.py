"""Artifact manifests: every file under a model's path, its size and digest, and one aggregate digest.

The aggregate is the digest of the sorted per-file lines (``["path", size, "digest", "link"]`` as
compact JSON, one per line), so a renamed, added or removed file changes it, not only changed bytes.

Walking is done through directory file descriptors (``O_NOFOLLOW``): a symbolic link is recorded as a
link (its target text) and never followed out of the model folder, and a directory swapped for a link
mid-walk is not entered. One exception keeps Hugging Face's cache verifiable: in a cache snapshot
(``models--org--name/snapshots/<commit>``) every file is a link into the repo's ``blobs/``; links that
resolve inside that ``models--*`` folder are recorded as links *and* hashed by content.

Skipped: ``.cache/huggingface/`` at the top of a model folder (huggingface_hub's own download
bookkeeping, rewritten on every download).
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from imageworks_models.integrity import hashing
from imageworks_models.errors import IntegrityError, NotVerifiableError
from imageworks_models.formats.layout import EXCLUDED_DIRS, cache_repo_dir_of

MANIFEST_VERSION = 1
MAX_DEPTH = 64
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


_enc = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses for strings (C)


def _s(value: str | None) -> str:
    return "null" if value is None else _enc(value)


@dataclass(slots=True)
class FileRecord:
    """One file of a manifest. Exactly one of: a regular file (size, digest), a symlink (``link``,
    plus size and digest when it is a followed cache link), or something else (``special``)."""

    path: str  # relative to the model folder, "/"-separated
    size: int | None = None
    digest: str | None = None
    link: str | None = None
    special: str | None = None  # fifo | socket | device

    def line(self) -> str:
        """``json.dumps([path, size, digest, link(, special)], ensure_ascii=False, separators=(",", ":"))``,
        built by hand: it runs once per file on every verify, and this is 5x faster."""
        size = "null" if self.size is None else str(int(self.size))
        tail = f",{_enc(self.special)}" if self.special else ""
        return f"[{_enc(self.path)},{size},{_s(self.digest)},{_s(self.link)}{tail}]"

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "size": self.size, "digest": self.digest}
        if self.link is not None:
            d["link"] = self.link
        if self.special is not None:
            d["special"] = self.special
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FileRecord":
        return cls(path=d["path"], size=d.get("size"), digest=d.get("digest"), link=d.get("link"),
                   special=d.get("special"))

    def describe(self) -> str:
        if self.special:
            return self.special
        if self.link is not None and self.digest is None:
            return f"link -> {self.link}"
        if self.digest is None:
            return f"{self.size} bytes"
        return f"{self.size} bytes, {short(self.digest)}" + (f" (link -> {self.link})" if self.link else "")


def short(digest: str | None, n: int = 12) -> str:
    if not digest:
        return "-"
    algorithm, hexdigest = hashing.split_digest(digest)
    return f"{algorithm}:{hexdigest[:n]}"


def aggregate_of(records: Iterable[FileRecord], *, algorithm: str, new) -> str:
    """The aggregate digest over the records' lines, sorted by path."""
    h = new()
    lines = [rec.line() for rec in sorted(records, key=lambda r: r.path)]
    if lines:
        h.update(("\n".join(lines) + "\n").encode("utf-8"))
    return hashing.format_digest(algorithm, h.hexdigest())


@dataclass
class Manifest:
    """The files under a model's path as they are now."""

    root: str
    algorithm: str
    files: list[FileRecord]
    aggregate: str
    total_bytes: int = 0
    hashed_files: int = 0
    hashed_bytes: int = 0
    cached_files: int = 0
    seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)  # path -> why it could not be hashed

    def as_artifacts(self) -> dict[str, Any]:
        """The registry's ``artifacts`` field for this manifest."""
        return {"aggregate": self.aggregate, "manifest_version": MANIFEST_VERSION,
                "files": [f.as_dict() for f in self.files]}


# -- walking ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    rel: str
    st: os.stat_result
    link: str | None = None


def _check_name(rel: str, root: Path) -> None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
        raise IntegrityError(f"{root}/{shown}: the file name is not valid UTF-8",
                             hint="rename the file; the registry records names as UTF-8 text") from None


def _walk(dir_fd: int, prefix: str, root: Path, out: list[_Item], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise IntegrityError(f"{root}/{prefix}: folders nested more than {MAX_DEPTH} deep",
                             hint="is a folder link pointing at itself? Model folders are never this deep")
    with os.scandir(dir_fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        rel = prefix + entry.name
        _check_name(rel, root)
        if rel in EXCLUDED_DIRS:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed while we looked: it is simply not there
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(entry.name, dir_fd=dir_fd)
            except OSError:
                continue
            _check_name(target, root)
            out.append(_Item(rel, st, link=target))
        elif stat.S_ISDIR(st.st_mode):
            try:
                fd = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise IntegrityError(f"cannot open folder {root}/{rel}: {exc.strerror}",
                                     hint="check its permissions") from None
            try:
                _walk(fd, rel + "/", root, out, depth + 1)
            finally:
                os.close(fd)
        else:
            out.append(_Item(rel, st))


def walk(root: Path) -> list[_Item]:
    """Every file, link and special file under ``root`` (or ``root`` itself if it is a file)."""
    try:
        st = os.stat(root)  # the model path itself may be a link (e.g. to another disk): follow it
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IntegrityError(f"cannot read {root}: {exc.strerror}", hint="check the path and its permissions") from None
    if not stat.S_ISDIR(st.st_mode):
        return [_Item(root.name, st)]
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    out: list[_Item] = []
    try:
        _walk(fd, "", root, out, 0)
    finally:
        os.close(fd)
    return out


def _cache_repo_dir(root: Path) -> str | None:
    return cache_repo_dir_of(os.path.realpath(root))


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


# -- building --------------------------------------------------------------------------------------


def manifest_from_digests(root: Path, digests: dict[str, str], *, algorithm: str = "sha256",
                          plugins: Any = None) -> Manifest | None:
    """The manifest of ``root`` from digests computed while its files were written (a download).

    Walks ``root`` (stats only). Returns ``None`` — and the caller hashes as usual — unless every entry
    is a regular file with a digest of ``algorithm`` in ``digests`` (keyed by relative path).
    """
    hasher = hashing.resolve_hasher(algorithm, plugins)
    prefix = f"{hasher.name}:"
    files = []
    for item in walk(Path(root)):
        digest = digests.get(item.rel)
        if item.link is not None or not stat.S_ISREG(item.st.st_mode) or not digest or not digest.startswith(prefix):
            return None
        files.append(FileRecord(item.rel, item.st.st_size, digest))
    if set(digests) - {f.path for f in files}:
        return None
    files.sort(key=lambda r: r.path)
    return Manifest(root=str(root), algorithm=hasher.name, files=files,
                    aggregate=aggregate_of(files, algorithm=hasher.name, new=hasher.new),
                    total_bytes=sum(f.size or 0 for f in files))


def build_manifest(root: Path | str, *, algorithm: str = "sha256", plugins: Any = None, quick: bool = False,
                   cache_dir: Path | None = None, workers: int = 0,
                   progress: hashing.Progress = hashing.SILENT, label: str = "") -> Manifest:
    """Walk ``root`` and digest every file.

    Args:
        root: a model folder or a single model file.
        algorithm: the hasher to use (a registered hasher's name).
        plugins: a loaded plugin host (default: load them) to find the hasher in.
        quick: reuse digests from the stat cache for files whose stat is unchanged.
        cache_dir: where the stat cache lives (``None``: no cache is read or written).
        workers: files hashed in parallel (0: one per usable core).
        progress: told the total and each block hashed.
        label: what ``progress`` shows (usually the entry's name).

    Returns:
        The :class:`Manifest`; files that could not be hashed are in ``errors`` (and have no digest).

    Raises:
        NotVerifiableError: ``root`` does not exist.
        HasherNotFoundError: no plugin provides ``algorithm``.
        IntegrityError: the folder cannot be walked.
    """
    started = time.perf_counter()
    root = Path(root)
    hasher = hashing.resolve_hasher(algorithm, plugins)
    try:
        items = walk(root)
    except FileNotFoundError:
        raise NotVerifiableError(f"{root} does not exist", hint="was the model moved or deleted?") from None
    single = len(items) == 1 and items[0].rel == root.name and not root.is_dir()
    base = str(root.parent if single else root)
    from imageworks_models.integrity.statcache import StatCache

    cache = StatCache.for_root(cache_dir, root)
    repo_dir = _cache_repo_dir(root) if not single else None

    records: dict[str, FileRecord] = {}
    jobs: list[hashing.Job] = []
    link_of: dict[str, str] = {}
    cached = 0
    total = 0
    for item in items:
        if item.link is not None:
            target = os.path.realpath(os.path.join(base, item.rel)) if repo_dir else None
            if target and target.startswith(repo_dir + os.sep) and os.path.isfile(target):
                # A cache snapshot link into blobs/: hash what it points to (inside the repo folder).
                tst = os.stat(target)
                link_of[item.rel] = item.link
                total += tst.st_size
                digest = cache.lookup(item.rel, tst, hasher.name) if quick else None
                if digest:
                    records[item.rel] = FileRecord(item.rel, tst.st_size, digest, link=item.link)
                    cached += 1
                else:
                    jobs.append(hashing.Job(item.rel, target, tst.st_size, tst))
            else:
                records[item.rel] = FileRecord(item.rel, link=item.link)
            continue
        if not stat.S_ISREG(item.st.st_mode):
            records[item.rel] = FileRecord(item.rel, special=_special_kind(item.st.st_mode))
            continue
        total += item.st.st_size
        digest = cache.lookup(item.rel, item.st, hasher.name) if quick else None
        if digest:
            records[item.rel] = FileRecord(item.rel, item.st.st_size, digest)
            cached += 1
        else:
            jobs.append(hashing.Job(item.rel, os.path.join(base, item.rel), item.st.st_size, item.st))

    hashed_bytes = sum(j.size for j in jobs)
    errors: dict[str, str] = {}
    if jobs:
        progress.start(total_bytes=hashed_bytes, files=len(jobs), label=label or root.name)
        try:
            hashed_ns = time.time_ns()
            new, threads = hashing.plan_threads(hasher, jobs, hashing.workers_for(workers))
            results = hashing.hash_many(jobs, algorithm=hasher.name, new=new, workers=threads, progress=progress)
        finally:
            progress.finish()
        for job in jobs:
            result = results[job.key]
            if isinstance(result, IntegrityError):
                errors[job.key] = result.message
                records[job.key] = FileRecord(job.key, job.size, None, link=link_of.get(job.key))
                continue
            records[job.key] = FileRecord(job.key, result.stat.st_size, result.digest, link=link_of.get(job.key))
            cache.store(job.key, result.stat, result.digest, hashed_ns)
    cache.keep_only(set(records))
    files = sorted(records.values(), key=lambda r: r.path)
    # Every record a cache hit, and nothing else in the folder: the records are exactly the cache's, so the
    # aggregate remembered with them is theirs (see statcache.py).
    whole = not errors and len(cache.files) == len(records) and all(r.link is None for r in files)
    aggregate = cache.aggregate(hasher.name) if whole and not jobs else None
    if aggregate is None:
        aggregate = aggregate_of(files, algorithm=hasher.name, new=hasher.new)
        if whole:
            cache.remember_aggregate(hasher.name, aggregate)
    cache.save()
    return Manifest(root=str(root), algorithm=hasher.name, files=files, aggregate=aggregate,
                    total_bytes=total, hashed_files=len(jobs), hashed_bytes=hashed_bytes, cached_files=cached,
                    seconds=time.perf_counter() - started, errors=errors)


# -- comparing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference between the recorded files and the files now."""

    path: str
    change: str  # changed | missing | extra | renamed | unreadable
    expected: FileRecord | None = None
    actual: FileRecord | None = None
    previous_path: str | None = None  # for renamed

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "change": self.change,
                             "expected": self.expected.as_dict() if self.expected else None,
                             "actual": self.actual.as_dict() if self.actual else None}
        if self.previous_path is not None:
            d["previous_path"] = self.previous_path
        return d

    def describe(self) -> str:
        if self.change == "renamed":
            return f"renamed    {self.previous_path} -> {self.path}"
        if self.change == "missing":
            return f"missing    {self.path}"
        if self.change == "extra":
            return f"extra      {self.path} ({self.actual.describe()})"
        if self.change == "unreadable":
            return f"unreadable {self.path}"
        return f"changed    {self.path} ({self.expected.describe()} -> {self.actual.describe()})"


def _same(a: FileRecord, b: FileRecord) -> bool:
    # The earlier tool recorded no sizes: compare what was recorded.
    if a.size is not None and b.size is not None and a.size != b.size:
        return False
    return (a.digest, a.link, a.special) == (b.digest, b.link, b.special)


def diff(expected: Iterable[FileRecord], actual: Iterable[FileRecord], *,
         unreadable: Iterable[str] = ()) -> list[Change]:
    """What changed from ``expected`` to ``actual``, by path; a missing file whose exact content
    appears under a new path is reported once, as renamed."""
    exp = {r.path: r for r in expected}
    act = {r.path: r for r in actual}
    bad = set(unreadable)
    changes: list[Change] = []
    missing = [exp[p] for p in sorted(exp.keys() - act.keys())]
    extra = {p: act[p] for p in sorted(act.keys() - exp.keys())}
    for rec in missing:
        twin = next((e for e in extra.values() if (e.digest or e.link) and _same(rec, e)), None)
        if twin is not None:
            del extra[twin.path]
            changes.append(Change(twin.path, "renamed", rec, twin, previous_path=rec.path))
        else:
            changes.append(Change(rec.path, "missing", rec, None))
    changes += [Change(p, "extra", None, r) for p, r in extra.items()]
    for path in sorted(exp.keys() & act.keys()):
        if path in bad:
            changes.append(Change(path, "unreadable", exp[path], act[path]))
        elif not _same(exp[path], act[path]):
            changes.append(Change(path, "changed", exp[path], act[path]))
    return sorted(changes, key=lambda c: c.path)
