"""Locked, atomic file writes: the one way this project changes a file on disk.

A writer holds an exclusive lock (``flock`` on a separate ``.lock`` file, or on the folder itself for the
registry; the kernel releases it the moment its holder dies) across the whole read-modify-write, writes a
uniquely named temp file in the target's folder, fsyncs it, renames it over the target with ``os.replace`` and fsyncs the folder. A
reader therefore sees the old file or the new one, never a mix, and needs no lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from imageworks_models.errors import ChangedOnDiskError, LockTimeoutError, ReadOnlyFileError, StorageError

TEMP_SUFFIX = ".tmp"


def _holder_line() -> str:
    argv = " ".join(sys.argv)[:200]
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"pid {os.getpid()} on {os.uname().nodename} since {started}: {argv}\n"  # socket.gethostname()


_POLL_MIN, _POLL_MAX = 0.002, 0.05
_held_folders = threading.local()  # (st_dev, st_ino) of a locked folder -> [fd, depth], per thread


def open_regular(path: Path | str, flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
    """Open ``path`` and return the descriptor, refusing anything but a regular file (B19).

    The open is non-blocking (a FIFO would otherwise hang it) and ``fstat`` then checks what was opened,
    so a FIFO, socket or device put where a file belongs is never read. The descriptor is blocking again
    when returned.

    Raises:
        FileNotFoundError: ``path`` does not exist (and ``O_CREAT`` was not given).
        StorageError: ``path`` is not a regular file, or its name is too long.
        OSError: any other failure to open it.
    """
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise StorageError(f"{path}: the file name is too long for this file system "
                               f"({len(os.path.basename(str(path)))} characters)",
                               hint="use a shorter name (most file systems allow 255 bytes per name)") from None
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing with no reader
            raise StorageError(f"{path} is not a regular file (a socket or FIFO)",
                               hint=f"move it away: mv {path} {path}.odd") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StorageError(f"{path} is not a regular file ({_kind(info.st_mode)}); refusing to open it",
                               hint=f"move it away (mv {path} {path}.odd) and run the command again")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a link")):
        if test(mode):
            return name
    return "not a file"


def read_regular(path: Path | str, *, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit + 1`` of them when ``limit`` is given).

    Raises:
        FileNotFoundError, IsADirectoryError, StorageError, OSError: as :func:`open_regular`.
    """
    fd = open_regular(path)
    try:
        return read_descriptor(fd, limit=limit)
    finally:
        os.close(fd)


def read_descriptor(fd: int, *, limit: int | None = None) -> bytes:
    """The bytes of the open regular file ``fd`` from its current offset to its end (at most ``limit + 1`` of
    them when ``limit`` is given). The caller closes ``fd``.

    Reads sized by fstat, not a buffered read(limit + 1): that allocates the whole limit first (16 MiB for a
    config file of 200 bytes: 80 us a file, a fifth of a cold scan). A file that grows (or reports size 0, as some
    kernel files do) is read on in 1 MiB reads, up to limit + 1 bytes.
    """
    cap = None if limit is None else limit + 1
    want = os.fstat(fd).st_size + 1
    chunks: list[bytes] = []
    got = 0
    while cap is None or got < cap:
        chunk = os.read(fd, want if cap is None else min(want, cap - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
        want = 1 << 20
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _poll_flock(fd: int, deadline: float) -> bool:
    import fcntl

    pause = _POLL_MIN
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(pause, deadline - now))
        pause = min(pause * 2, _POLL_MAX)


def _timeout_error(lock_path: Path, what: str, timeout: float) -> LockTimeoutError:
    try:
        holder = read_regular(lock_path, limit=4096).decode("utf-8", "replace").strip() or None
    except (OSError, StorageError):
        holder = None
    return LockTimeoutError(
        f"{what} is locked by another process ({holder or 'holder unknown'}); waited {timeout:g}s",
        holder=holder,
        hint="wait for it to finish, or raise IMAGEWORKS_LOCK_TIMEOUT; a killed holder releases the lock at once",
    )


def _lock_file_fd(lock_path: Path, deadline: float, what: str, timeout: float) -> int:
    """Lock ``lock_path`` itself. A lock on a file someone deleted or replaced protects nothing, so after
    each acquisition the path must still name the locked inode; otherwise it is tried again (W18)."""
    while True:
        try:
            fd = open_regular(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise _os_error(exc, f"cannot create the lock file {lock_path}") from None
        if not _poll_flock(fd, deadline):
            os.close(fd)
            raise _timeout_error(lock_path, what, timeout) from None
        try:
            now = os.stat(lock_path, follow_symlinks=False)
            mine = os.fstat(fd)
            if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # unlinked or replaced under us: lock the file the path names now


@contextlib.contextmanager
def file_lock(lock_path: Path, *, timeout: float, what: str | None = None, folder: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` for the duration of the ``with`` block.

    The kernel releases the lock the moment its holder dies (``flock``). The lock file records who holds
    it, so a waiter that times out can say whom it waited for.

    Args:
        lock_path: the lock file (created if missing; never the data file itself).
        timeout: seconds to wait for another holder.
        what: how to name the protected thing in errors (default: the lock file's folder).
        folder: lock the lock file's folder instead of the file (the registry does): a folder cannot be
            unlinked from under a holder the way a lock file can (W18). Re-entrant within one thread.

    Raises:
        LockTimeoutError: another process held the lock for ``timeout`` seconds; the message names it.
        StorageError: the lock file cannot be created (e.g. a read-only folder), or it is not a regular file.
    """
    lock_path = Path(lock_path)
    what = what or str(lock_path.parent)
    deadline = time.monotonic() + max(0.0, timeout)
    if folder:
        with _folder_lock(lock_path, deadline, what, timeout):
            yield
        return
    fd = _lock_file_fd(lock_path, deadline, what, timeout)
    try:
        _write_holder(fd)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor releases the flock


def _write_holder(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_line().encode("utf-8", "replace"), 0)


@contextlib.contextmanager
def _folder_lock(lock_path: Path, deadline: float, what: str, timeout: float) -> Iterator[None]:
    import fcntl

    try:
        dir_fd = os.open(lock_path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _os_error(exc, f"cannot open the folder {lock_path.parent} to lock it") from None
    info = os.fstat(dir_fd)
    key = (info.st_dev, info.st_ino)
    held = getattr(_held_folders, "map", None)
    if held is None:
        held = _held_folders.map = {}
    if key in held:  # this thread already holds it (a nested edit): one lock, counted
        os.close(dir_fd)
        held[key][1] += 1
        try:
            yield
        finally:
            held[key][1] -= 1
        return
    if not _poll_flock(dir_fd, deadline):
        os.close(dir_fd)
        raise _timeout_error(lock_path, what, timeout)
    held[key] = [dir_fd, 1]
    note = None
    try:
        try:
            # The lock file only says who holds the lock; losing it loses nothing.
            note = open_regular(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise _os_error(exc, f"cannot create the lock file {lock_path}") from None
        _write_holder(note)
        yield
    finally:
        if note is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(note, 0)
            os.close(note)
        del held[key]
        fcntl.flock(dir_fd, fcntl.LOCK_UN)
        os.close(dir_fd)


def _os_error(exc: OSError, doing: str) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"{doing}: no space left on the device", hint="free some space and run it again")
    if exc.errno == errno.EFBIG:
        return StorageError(f"{doing}: file size limit exceeded", hint="raise the file size limit (ulimit -f)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"{doing}: permission denied ({exc.strerror})",
                            hint="make the folder writable, or point --registry-dir at a writable copy")
    return StorageError(f"{doing}: {exc.strerror or exc}")


def temp_path_for(target: Path) -> Path:
    """A temp name in ``target``'s folder, unique per process and per call."""
    # os.urandom(4).hex() is what secrets.token_hex(4) returns, without importing secrets at start-up
    return target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}")


def leftover_temps(target: Path) -> list[Path]:
    """Temp files a killed writer of ``target`` left behind."""
    prefix = f".{target.name}."
    try:
        return [p for p in target.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(TEMP_SUFFIX)]
    except OSError:
        return []


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_BLOB_NAME = re.compile(r"(sha256[-:])?([0-9a-f]{40}|[0-9a-f]{64})")


def _in_blob_store(target: Path) -> bool:
    """A content-addressed blob (Ollama's ``blobs/sha256-<hex>``, the HF cache's ``blobs/<hex>``): its name is
    its content's digest, so writing other bytes there would corrupt every model that shares it."""
    return target.parent.name == "blobs" and bool(_BLOB_NAME.fullmatch(target.name))


_ANY = object()


def _identity(info: os.stat_result) -> tuple[int, int, int, int]:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def _identity_at(path: Path) -> tuple[int, int, int, int] | None:
    """:func:`_identity` of what is at ``path`` now; None where nothing is."""
    try:
        return _identity(os.stat(path))
    except FileNotFoundError:
        return None


def ensure_unchanged(target: Path, expect: bytes | None) -> tuple[int, int, int, int] | None:
    """Check that ``target`` still holds exactly ``expect`` (``None``: does not exist).

    Returns:
        The file's identity (device, inode, size, mtime), or ``None`` when it does not exist.

    Raises:
        ChangedOnDiskError: it holds something else now (a hand edit, another program).
    """
    try:
        fd = open_regular(target)
    except FileNotFoundError:
        current, ident = None, None
    else:
        with os.fdopen(fd, "rb") as fh:
            ident = _identity(os.fstat(fh.fileno()))
            current = fh.read()
    if current != expect:
        raise _changed_on_disk(target)
    return ident


def _changed_on_disk(target: Path) -> ChangedOnDiskError:
    return ChangedOnDiskError(
        f"{target} changed on disk while this command was changing it (a hand edit or another program); "
        "it was kept and nothing was written over it",
        hint="run the command again: it will start from the file as it is now")


def check_writable(target: Path) -> None:
    """Refuse a file or folder a person marked read-only (no write bit at all), even when running as root,
    whom the kernel would let replace it (W17).

    Raises:
        ReadOnlyFileError: ``target`` or its folder has no write permission bit.
    """
    for thing, label in ((target, "file"), (target.parent, "folder")):
        try:
            mode = os.stat(thing).st_mode
        except OSError:
            continue
        if not mode & 0o222:
            raise ReadOnlyFileError(
                f"the {label} {thing} is read-only (mode {stat.S_IMODE(mode):04o}); refusing to replace "
                f"{target.name}", hint=f"if the change is wanted, make it writable first: chmod u+w {thing}")


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
_renameat2: Any = None  # resolved on first use: ctypes is loaded only by writes


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns:
        True when swapped; False where the C library, kernel or filesystem cannot (nothing changed then).
    """
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).renameat2
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                fn.restype = ctypes.c_int
                _renameat2 = fn
            except (OSError, AttributeError):
                pass
    if not _renameat2:
        return False
    import ctypes

    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _settle_exchange(tmp: Path, target: Path, checked: tuple, ours: tuple) -> None:
    """After ``_exchange(tmp, target)``: keep ours if it displaced the file that was checked, else put back the
    hand edit that displaced it and raise :class:`ChangedOnDiskError`."""
    if _identity_at(tmp) == checked:
        os.unlink(tmp)
        return
    if not _exchange(tmp, target):
        os.replace(tmp, target)  # cannot happen after a first swap worked; never leave the hand edit aside
        raise _changed_on_disk(target)
    back = _identity_at(tmp)
    if back == ours or back is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise _changed_on_disk(target)
    # Yet another save landed in between: both edits are kept, the newer one beside the file.
    kept = target.with_name(f"{target.name}.kept-{time.time_ns()}")
    os.rename(tmp, kept)
    raise ChangedOnDiskError(f"{target} changed on disk twice while this command was changing it; the earlier edit "
                             f"is in place and the later one was kept as {kept}", hint="merge them by hand, then run "
                             "the command again")


def atomic_write(path: Path, data: bytes, *, expect: Any = _ANY, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically. The caller must hold the lock for ``path``.

    ``durable=False`` skips the fsyncs, for a cache whose loss in a crash costs only its rebuild (the registry
    snapshot: a reader checks it against the layers and ignores it when it is wrong, empty or missing); the
    replace is still atomic for every running process.

    ``expect`` (the bytes the caller read, or ``None`` for "did not exist") makes the replace conditional:
    right before the rename the file is compared with it again, so a hand edit saved meanwhile is kept and
    :class:`ChangedOnDiskError` raised instead of overwriting it (W17). A file or folder without any write
    bit is refused (:class:`ReadOnlyFileError`).

    Writes through a symlinked ``path`` to its target (never into a content-addressed blob store, D22),
    keeps the target's permission bits, and
    removes temp files earlier writers left behind (only lock holders write temps, so any other
    temp file of this target is a leftover).

    Raises:
        StorageError: the write failed (disk full, read-only folder...); ``path`` is unchanged.
        ChangedOnDiskError: ``path`` no longer holds ``expect``; it is unchanged.
    """
    target = Path(os.path.realpath(path))
    check_writable(target)
    if target != Path(os.path.abspath(path)) and _in_blob_store(target):
        raise StorageError(f"{path} is a link into a shared blob store ({target}); refusing to write through it",
                           hint=f"replace the link with a copy: cp --remove-destination {target} {path}")
    folder = target.parent
    for stale in leftover_temps(target):
        with contextlib.suppress(OSError):
            stale.unlink()
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    tmp = temp_path_for(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else 0o600)
    except OSError as exc:
        raise _os_error(exc, f"cannot write {target}") from None
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        written_st = os.stat(tmp)
        if written_st.st_size != len(data):  # never promote a short file
            raise StorageError(f"cannot write {target}: short write", hint="check the disk and run it again")
        if expect is not _ANY:
            ident = ensure_unchanged(target, expect)
            if ident is not None and _exchange(tmp, target):
                # Swapped atomically: no window at all. What the swap displaced is now at tmp: the file we
                # checked, or a hand edit saved after the check, which is put back.
                _settle_exchange(tmp, target, ident, _identity(written_st))
                fsync_dir(folder)
                return
            # No atomic swap here (not Linux, or a filesystem without it): compare the content once, then only
            # the identity (one stat) right before the rename; a hand edit could still be lost in that window.
            if _identity_at(target) != ident:
                ensure_unchanged(target, expect)
        os.replace(tmp, target)
        if not durable:
            return
    except StorageError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _os_error(exc, f"cannot write {target}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def backup_file(path: Path, backup_dir: Path, *, keep: int, label: str = "") -> Path | None:
    """Copy ``path`` to ``backup_dir/<stem>.<UTC timestamp>[.<label>]<suffix>``, keeping the newest ``keep``.

    Returns the backup's path, or ``None`` when ``path`` does not exist. The copy is written
    atomically; the caller holds the lock for ``path``.
    """
    path = Path(path)
    if not path.exists():
        return None
    backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    dest = backup_dir / f"{path.stem}.{stamp}{'.' + label if label else ''}{path.suffix}"
    atomic_write(dest, path.read_bytes())
    prefix = f"{path.stem}."

    def stamp_of(p: Path) -> str:
        return p.name[len(prefix):].split(".", 1)[0]

    backups = sorted((p for p in backup_dir.iterdir()
                      if p.name.startswith(prefix) and p.suffix == path.suffix and stamp_of(p)[:1].isdigit()),
                     key=stamp_of)
    for old in backups[:-keep] if keep > 0 else []:
        with contextlib.suppress(OSError):
            old.unlink()
    return dest


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string (what every timestamp in our files uses)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
