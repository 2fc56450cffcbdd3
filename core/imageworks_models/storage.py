"""Locked, atomic file writes: the one way this project changes a file on disk.

A writer holds an exclusive lock (``filelock``, a separate ``.lock`` file; the kernel releases it the
moment its holder dies) across the whole read-modify-write, writes a uniquely named temp file in the
target's folder, fsyncs it, renames it over the target with ``os.replace`` and fsyncs the folder. A
reader therefore sees the old file or the new one, never a mix, and needs no lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from .errors import LockTimeoutError, StorageError

TEMP_SUFFIX = ".tmp"


def _holder_line() -> str:
    argv = " ".join(sys.argv)[:200]
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"pid {os.getpid()} on {socket.gethostname()} since {started}: {argv}\n"


@contextlib.contextmanager
def file_lock(lock_path: Path, *, timeout: float, what: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` for the duration of the ``with`` block.

    Args:
        lock_path: the lock file (created if missing; never the data file itself).
        timeout: seconds to wait for another holder.
        what: how to name the protected thing in errors (default: the lock file's folder).

    Raises:
        LockTimeoutError: another process held the lock for ``timeout`` seconds; the message names it.
        StorageError: the lock file cannot be created (e.g. a read-only folder).
    """
    import filelock  # only writers pay for this import

    lock_path = Path(lock_path)
    what = what or str(lock_path.parent)
    lock = filelock.FileLock(str(lock_path), timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        try:
            holder = lock_path.read_text(encoding="utf-8", errors="replace").strip() or None
        except OSError:
            holder = None
        raise LockTimeoutError(
            f"{what} is locked by another process ({holder or 'holder unknown'}); waited {timeout:g}s",
            holder=holder,
            hint="wait for it to finish, or raise IMAGEWORKS_LOCK_TIMEOUT; a killed holder releases the lock at once",
        ) from None
    except OSError as exc:
        raise _os_error(exc, f"cannot create the lock file {lock_path}") from None
    try:
        # Record who holds it, so a waiter that times out can say whom it waited for.
        with contextlib.suppress(OSError):
            with open(lock_path, "r+", encoding="utf-8") as fh:
                fh.truncate(0)
                fh.write(_holder_line())
        yield
    finally:
        with contextlib.suppress(OSError):
            with open(lock_path, "r+", encoding="utf-8") as fh:
                fh.truncate(0)
        lock.release()


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
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


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


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically. The caller must hold the lock for ``path``.

    Writes through a symlinked ``path`` to its target (never into a content-addressed blob store, D22),
    keeps the target's permission bits, and
    removes temp files earlier writers left behind (only lock holders write temps, so any other
    temp file of this target is a leftover).

    Raises:
        StorageError: the write failed (disk full, read-only folder...); ``path`` is unchanged.
    """
    target = Path(os.path.realpath(path))
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
            os.fsync(fd)
        finally:
            os.close(fd)
        if os.stat(tmp).st_size != len(data):  # never promote a short file
            raise StorageError(f"cannot write {target}: short write", hint="check the disk and run it again")
        os.replace(tmp, target)
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
