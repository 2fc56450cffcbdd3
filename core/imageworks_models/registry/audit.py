"""The audit trail: one JSON line for every change to the registry files or to the live model, appended to
``logs/model_downloader.log`` (rotated: at most ``MAX_BYTES`` per file, ``KEEP`` old files).

A record::

    {"time": "2026-11-23T18:01:31+00:00", "user": "stewa", "host": "gpu-box", "pid": 4121,
     "command": "imageworks-download prune-duplicates --apply", "action": "registry-write",
     "entries": ["qwen3-8b-ollama-gguf-q4_k_m"],
     "files": {"model_registry.curated.json": {"before": "sha256:…", "after": "sha256:…"}}, ...}

``command`` is what the CLI was asked (set by the CLI for each command), else the process's own command line.
With ``IMAGEWORKS_DEBUG=1`` a record also carries ``"timings"`` (seconds since the command started) and, for a
failure, the ``"traceback"``. Writing the trail never fails the change it records: a problem is a warning.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

AUDIT_FILE = "model_downloader.log"
MAX_BYTES = 5 * 1024 * 1024
KEEP = 3
_COMMAND: contextvars.ContextVar[tuple[str, float] | None] = contextvars.ContextVar("imageworks_command",
                                                                                    default=None)


@contextlib.contextmanager
def command(text: str) -> Iterator[None]:
    """Name the command whose changes the records inside this block belong to."""
    token = _COMMAND.set((text, time.monotonic()))
    try:
        yield
    finally:
        _COMMAND.reset(token)


def _debug() -> bool:
    from imageworks_models.settings import debug_enabled

    return debug_enabled()


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def record(log_dir: Path, action: str, *, entries: list[str] | tuple[str, ...] = (), error: BaseException | None = None,
           **fields: Any) -> dict[str, Any] | None:
    """Append one record to ``log_dir/model_downloader.log``; returns it (``None`` if it could not be written).

    Args:
        log_dir: the logs folder (setting ``log_dir``).
        action: what happened: ``registry-write``, ``activate``, ``stop``, ``delete-files``...
        entries: the registry entries it touched.
        error: the exception that made the command fail, if it did (its traceback is kept with IMAGEWORKS_DEBUG=1).
        fields: more facts (``files`` with before/after digests, ``backups``, ``pid``...).
    """
    import socket
    import sys

    from imageworks_models.fs.storage import file_lock, utc_now

    current = _COMMAND.get()
    rec: dict[str, Any] = {"time": utc_now(), "user": _user(), "host": socket.gethostname(), "pid": os.getpid(),
                           "command": current[0] if current else " ".join([os.path.basename(sys.argv[0] or "python"),
                                                                           *sys.argv[1:]]),
                           "action": action, "entries": sorted(set(entries)), **fields}
    if error is not None:
        rec["ok"] = False
        rec["error"] = f"{type(error).__name__}: {error}"
    if _debug():
        if current:
            rec["timings"] = {"seconds_since_command_start": round(time.monotonic() - current[1], 3)}
        if error is not None:
            import traceback

            rec["traceback"] = "".join(traceback.format_exception(error))
    from imageworks_models.redact import redact

    line = (redact(json.dumps(rec, ensure_ascii=False, separators=(",", ":"), default=str)) + "\n").encode("utf-8")
    path = Path(log_dir) / AUDIT_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path.with_name(AUDIT_FILE + ".lock"), timeout=10, what="the audit log"):
            _rotate(path, len(line))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
    except Exception as exc:  # noqa: BLE001 - the change is made; losing its record must not undo or fail it
        import logging  # here: every command that writes imports this module, and logging costs 2-3 ms

        logging.getLogger("imageworks_models").warning("could not write the audit record to %s: %s", path, exc)
        return None
    return rec


def _rotate(path: Path, incoming: int) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size + incoming <= MAX_BYTES:
        return
    for n in range(KEEP - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))


def read(log_dir: Path, *, limit: int | None = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` records (oldest first), from the current file and the rotated ones.
    Lines that are not JSON (a file edited by hand) are skipped."""
    path = Path(log_dir) / AUDIT_FILE
    out: list[dict[str, Any]] = []
    for part in [path.with_name(f"{path.name}.{n}") for n in range(KEEP, 0, -1)] + [path]:
        try:
            lines = part.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                out.append(item)
    return out[-limit:] if limit else out
