"""What is live on the serving port: the active-model record ``_staging/active_vllm.json``, read, and checked
against the process it names (``/proc`` only, no network).

The orchestrator (:mod:`imageworks_models.serving.activation`) writes the record; everything that only needs to
know what runs (``list``, ``select``, ``fit``, the GUI) reads it here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from imageworks_models.errors import StorageError
from imageworks_models.fs.storage import read_regular

STATE_FILE = "active_vllm.json"
log = logging.getLogger("imageworks_models")


def state_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATE_FILE


def read_active(state_dir: Path) -> dict[str, Any] | None:
    """The recorded active model (``{"name", "backend", "endpoint", ...}``), or ``None``.

    A missing file means nothing is active. An unreadable or malformed one is reported as a warning
    and treated as "nothing active": it must never stop the registry from being listed.
    """
    path = state_path(state_dir)
    try:
        data = json.loads(read_regular(path))  # a FIFO here never hangs `list` (B19)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, StorageError) as exc:
        log.warning("ignoring %s: %s (delete it if no model is being served)", path, exc)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        log.warning("ignoring %s: it does not name an active model", path)
        return None
    return data


def server_state(active: dict[str, Any] | None) -> str:
    """What became of the recorded server: ``"alive"``, ``"exited"``, ``"rebooted"``, ``"reused"`` (its pid is
    someone else's now), or ``"none"`` (no record, or one without a process, e.g. from the earlier tool)."""
    from imageworks_models.live.processes import ServerIdentity, assess

    ident = ServerIdentity.from_state(active) if active else None
    return assess(ident) if ident else "none"


LOADED = "loaded"  # the record's "kind" for a model loaded into a backend's own server (Ollama)


def is_loaded_record(active: dict[str, Any] | None) -> bool:
    """Whether ``active`` records a model loaded into a backend's running server, with no process of ours."""
    return bool(active) and active.get("kind") == LOADED


def live_active(state_dir: Path) -> dict[str, Any] | None:
    """The recorded active model if its server process still runs (what ``list`` and ``select`` show); a
    record whose server is gone is not active, whatever the file says. Reads ``/proc`` only: no network."""
    from imageworks_models.live.processes import reap

    reap()
    active = read_active(state_dir)
    if active is None:
        return None
    if is_loaded_record(active) or not _has_identity(active):
        # a model loaded into Ollama (checking it needs the network: current-model does), or a record of the
        # earlier tool, which kept no process identity: trust it
        return active
    return active if server_state(active) == "alive" else None


def _has_identity(active: dict[str, Any]) -> bool:
    return "pid" in active and "process_start" in active
