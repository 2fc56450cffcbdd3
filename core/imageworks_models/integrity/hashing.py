"""Hashing files fast: big blocks with the GIL released, files in parallel, a reader thread ahead.

hashlib (and blake3) release the GIL while they digest a buffer, so threads give real parallelism:
one thread per file across cores. A single large file cannot be split (sha256 is sequential), but
its reads can overlap its hashing: a reader thread fills the next block while this one is digested,
which is why one file hashes faster here than a plain ``read``/``update`` loop.

Files are opened with ``O_NOFOLLOW`` and must be the very inode the directory walk saw, so a file
swapped for a symlink (or a directory for a link) between the walk and the read is never followed.
Nothing here uses ``mmap``: a file truncated while mapped kills the process with SIGBUS.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from imageworks_models.reports import SILENT, Progress
from imageworks_models.errors import IntegrityError

BLOCK = 4 << 20  # 4 MiB: large enough that per-call overhead vanishes, small enough for the cache
PIPELINE_MIN = 64 << 20  # files at least this big get a reader thread when a core is free
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def workers_for(setting: int | None) -> int:
    """Threads to hash with: the ``hash_workers`` setting, or one per usable core when it is 0."""
    return setting if setting and setting > 0 else usable_cpus()


def format_digest(algorithm: str, hexdigest: str) -> str:
    return f"{algorithm}:{hexdigest}"


def split_digest(digest: str) -> tuple[str, str]:
    """``"sha256:ab.."`` -> ``("sha256", "ab..")``."""
    algorithm, _, hexdigest = digest.partition(":")
    return algorithm, hexdigest


class FileChangedError(IntegrityError):
    """A file changed (size, time, inode) while it was being read; its digest would be meaningless."""


def open_regular(path: str | os.PathLike, *, expect: os.stat_result | None = None) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading without following a final symlink; it must be a regular file.

    Args:
        path: the file.
        expect: the ``lstat`` result a directory walk saw; the opened file must be that inode.

    Returns:
        ``(fd, fstat)``; the caller closes ``fd``.

    Raises:
        IntegrityError: not a regular file, replaced since the walk, or unreadable.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == getattr(os, "ELOOP", -1) or os.path.islink(path):
            raise IntegrityError(f"{path} became a symbolic link while it was being checked",
                                 hint="run the command again once nothing is changing the folder") from None
        raise IntegrityError(f"cannot read {path}: {exc.strerror}",
                             hint="check the file's permissions, or that the drive is mounted") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IntegrityError(f"{path} is not a regular file", hint="remove it or move it out of the model folder")
        if expect is not None and (st.st_ino, st.st_dev) != (expect.st_ino, expect.st_dev):
            raise FileChangedError(f"{path} was replaced while it was being checked",
                                   hint="run the command again once nothing is changing the folder")
        return fd, st
    except BaseException:
        os.close(fd)
        raise


_local = threading.local()


def _thread_buffer() -> bytearray:
    # One block per thread, reused: allocating (and zeroing) 4 MiB per small file dominated
    # hashing folders of many small files.
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(BLOCK)
    return buf


def _read_plain(fd: int, h: Any, progress: Progress) -> int:
    buf = _thread_buffer()
    view = memoryview(buf)
    total = 0
    while True:
        n = os.readv(fd, [buf])
        if not n:
            return total
        h.update(view[:n])
        total += n
        progress.advance(n)


def _read_pipelined(fd: int, h: Any, progress: Progress) -> int:
    """Digest ``fd`` while a reader thread fills the next buffer (three buffers in rotation)."""
    free: queue.Queue = queue.Queue()
    full: queue.Queue = queue.Queue()
    for _ in range(3):
        free.put(bytearray(BLOCK))
    stop = threading.Event()

    def reader() -> None:
        offset = 0
        try:
            while not stop.is_set():
                buf = free.get()
                if buf is None:
                    return
                n = os.preadv(fd, [buf], offset)
                full.put((buf, n, None))
                if not n:
                    return
                offset += n
        except BaseException as exc:  # handed to the hashing thread, which raises it
            full.put((None, 0, exc))

    thread = threading.Thread(target=reader, name="imageworks-hash-reader", daemon=True)
    thread.start()
    total = 0
    try:
        while True:
            buf, n, exc = full.get()
            if exc is not None:
                raise exc
            if not n:
                return total
            h.update(memoryview(buf)[:n])
            total += n
            progress.advance(n)
            free.put(buf)
    finally:
        stop.set()
        free.put(None)
        thread.join()


def digest_open_file(fd: int, new: Callable[[], Any], *, size: int = 0, pipelined: bool = False,
                     progress: Progress = SILENT) -> tuple[str, int]:
    """Digest a freshly opened file (at offset 0) to its end.

    Returns:
        ``(hexdigest, bytes_read)``.
    """
    if size >= BLOCK and hasattr(os, "posix_fadvise"):
        try:  # doubles the kernel's read-ahead on a cold file
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except OSError:
            pass
    h = new()
    n = (_read_pipelined if pipelined else _read_plain)(fd, h, progress)
    return h.hexdigest(), n


def _same_file_state(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ino, a.st_dev) == (b.st_size, b.st_mtime_ns, b.st_ino, b.st_dev)


@dataclass(frozen=True)
class HashedFile:
    """One file's digest and the ``fstat`` taken before reading it (what the stat cache records)."""

    digest: str  # "<algorithm>:<hex>"
    stat: os.stat_result


def hash_one(path: str | os.PathLike, *, algorithm: str, new: Callable[[], Any],
             expect: os.stat_result | None = None, pipelined: bool = False,
             progress: Progress = SILENT) -> HashedFile:
    """Hash one regular file, refusing a digest of bytes that changed while they were read.

    Tries twice: a file still being written (a download finishing) fails with a clear message.

    Raises:
        IntegrityError: the file is not a regular file, was replaced, is unreadable, or kept changing.
    """
    for attempt in (1, 2):
        fd, before = open_regular(path, expect=expect)
        try:
            hexdigest, n = digest_open_file(fd, new, size=before.st_size, pipelined=pipelined, progress=progress)
            after = os.fstat(fd)
        except OSError as exc:
            raise IntegrityError(f"cannot read {path}: {exc.strerror}",
                                 hint="check the drive and the file's permissions") from None
        finally:
            os.close(fd)
        if n == before.st_size and _same_file_state(before, after):
            return HashedFile(format_digest(algorithm, hexdigest), before)
        expect = None  # the second try hashes whatever the file is now
    raise FileChangedError(f"{path} kept changing while it was being hashed",
                           hint="is a download or copy still writing it? Run the command again when it is done")


def hash_file(path: str | os.PathLike, *, algorithm: str = "sha256", plugins: Any = None) -> str:
    """The digest of one file as ``"<algorithm>:<hex>"`` (the form the registry stores).

    Args:
        path: a regular file (a symlink is not followed).
        algorithm: a registered hasher's name (``sha256`` is built in).
        plugins: a loaded :class:`~imageworks_models.pluginhost.manager.PluginHost` (default: load them).

    Raises:
        HasherNotFoundError: no plugin provides ``algorithm``.
        IntegrityError: the file cannot be read or kept changing.
    """
    hasher = resolve_hasher(algorithm, plugins)
    size = os.lstat(path).st_size if os.path.lexists(path) else 0
    return hash_one(path, algorithm=hasher.name, new=hasher.new, pipelined=size >= PIPELINE_MIN).digest


def resolve_hasher(algorithm: str, plugins: Any = None):
    """The :class:`~imageworks_models.plugin.records.Hasher` registered as ``algorithm``."""
    if plugins is None:
        from imageworks_models.pluginhost.manager import get_plugins

        plugins = get_plugins()
    return plugins.hasher(algorithm)


@dataclass(frozen=True)
class Job:
    """A file to hash: ``key`` identifies it in the results (e.g. its path relative to the model)."""

    key: str
    path: str
    size: int
    expect: os.stat_result | None = None


def plan_threads(hasher: Any, jobs: list[Job], workers: int) -> tuple[Callable[[], Any], int]:
    """How to hash ``jobs`` with the :class:`~imageworks_models.plugin.records.Hasher` ``hasher``: its constructor
    to use and how many files at once (``workers``: :func:`workers_for`'s answer).

    A hasher that spreads one buffer over the cores itself (``multithreaded``) hashes one file at a time when
    there is one file, one core, no single-threaded form, or a file holding more than half of the bytes (it would
    run alone on one core at the end). Otherwise each thread hashes its own file with the single-threaded form:
    one file's reads then overlap another's hashing, where one file at a time waits on each read.
    """
    if not getattr(hasher, "multithreaded", False):
        return hasher.new, workers
    single = getattr(hasher, "single_threaded", None)
    sizes = [j.size for j in jobs]
    if single is None or workers < 2 or len(jobs) < 2 or 2 * max(sizes) > sum(sizes):
        return hasher.new, 1
    return single, workers


def hash_many(jobs: Iterable[Job], *, algorithm: str, new: Callable[[], Any], workers: int,
              progress: Progress = SILENT) -> dict[str, HashedFile | IntegrityError]:
    """Hash files in parallel, largest first (so one big file does not start last and run alone).

    A file that fails gives its :class:`IntegrityError` in the result instead of a digest; the
    others are still hashed, so one unreadable file does not hide the state of the rest.

    Returns:
        ``{job.key: HashedFile | IntegrityError}``.
    """
    jobs = sorted(jobs, key=lambda j: -j.size)
    results: dict[str, HashedFile | IntegrityError] = {}
    if not jobs:
        return results
    cpus = usable_cpus()
    big = sum(1 for j in jobs if j.size >= PIPELINE_MIN)
    # A reader thread per file only pays while a core would otherwise idle.
    pipelined = big < min(workers, cpus) or (workers == 1 and cpus > 1)

    def run(job: Job) -> None:
        try:
            results[job.key] = hash_one(job.path, algorithm=algorithm, new=new, expect=job.expect,
                                        pipelined=pipelined and job.size >= PIPELINE_MIN, progress=progress)
        except IntegrityError as exc:
            results[job.key] = exc

    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            run(job)
        return results
    from concurrent.futures import ThreadPoolExecutor  # only when there is something to hash

    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="imageworks-hash") as pool:
        for future in [pool.submit(run, job) for job in jobs]:
            future.result()
    return results

