"""The gateway's state file, ``_staging/gateway.json``, and reading it for ``gateway status`` and ``current-model``.

    {"schema_version": 1, "pid", "process_start", "boot_id", "host", "port", "url", "started_at",
     "models": {NAME: {<the activation record: name, backend, served_model_id, pid, process_start, boot_id,
                       launcher, command, host, port, endpoint, log, started_at, ready_at, stop_grace>,
                       "status": "starting" | "ready"}}}

Written atomically by the running gateway whenever a model starts or stops, so that a gateway killed with
SIGKILL leaves a record its successor uses to stop the servers it left (by identity: a pid reused by another
process is never signalled). Standard library only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

STATE_FILE = "gateway.json"
SCHEMA_VERSION = 1
log = logging.getLogger("imageworks_models")


def state_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATE_FILE


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The recorded gateway, or ``None`` (no file; an unreadable one is a warning, never an error)."""
    path = state_path(state_dir)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s (delete it if no gateway runs)", path, exc)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        log.warning("ignoring %s: it does not describe a gateway", path)
        return None
    return data


def write_state(state_dir: Path, data: dict[str, Any]) -> None:
    """Replace the state file atomically (only the gateway holding ``gateway.json.lock`` writes it)."""
    from imageworks_models.fs.storage import atomic_write

    Path(state_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(state_path(state_dir), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def clear_state(state_dir: Path) -> None:
    try:
        state_path(state_dir).unlink()
    except FileNotFoundError:
        pass


def gateway_alive(data: dict[str, Any] | None) -> bool:
    """Whether the recorded gateway process still runs (same boot, pid and start time)."""
    from imageworks_models.live.processes import ServerIdentity, assess

    if not data:
        return False
    ident = ServerIdentity.from_state({**data, "launcher": data.get("launcher") or ()})
    return ident is not None and assess(ident) == "alive"


def live_models(state_dir: Path) -> list[dict[str, Any]]:
    """The models a running gateway serves, from its state file, each checked by process identity
    (``current-model``): ``[{"name", "backend", "status", "endpoint", "served_model_id", "pid", "port",
    "log", "gateway"}]``. Empty when no gateway runs."""
    from imageworks_models.live.processes import ServerIdentity, assess

    data = read_state(state_dir)
    if not gateway_alive(data):
        return []
    out = []
    for name, rec in sorted(data["models"].items()):
        ident = ServerIdentity.from_state(rec)
        if ident is None or assess(ident) != "alive":
            continue
        out.append({"name": name, "backend": rec.get("backend"), "status": rec.get("status"),
                    "endpoint": rec.get("endpoint"), "served_model_id": rec.get("served_model_id"),
                    "pid": rec.get("pid"), "port": rec.get("port"), "log": rec.get("log"),
                    "gateway": data.get("url")})
    return out


def status(state_dir: Path, *, api_key: str | None = None, timeout: float = 2.0) -> dict[str, Any]:
    """What ``gateway status`` shows: the running gateway's own live report (``GET /gateway/status``), else
    what its state file says.

    Returns:
        ``{"running": bool, "url", "pid", "started_at", "source": "gateway" | "state file" | None,
        "models": [{"name", "backend", "status", "pid", "port", "endpoint", "in_flight", "queued",
        "idle_s", "memory_bytes", "load_seconds", "pinned", "idle_ttl", "log"}]}``.
    """
    import urllib.request

    data = read_state(state_dir)
    if not gateway_alive(data):
        return {"running": False, "url": None, "pid": None, "started_at": None, "source": None, "models": []}
    base = {"running": True, "url": data.get("url"), "pid": data.get("pid"), "started_at": data.get("started_at")}
    request = urllib.request.Request(f"http://{_client_host(data.get('host'))}:{data.get('port')}/gateway/status")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            live = json.loads(response.read(4 << 20))
        return {**base, "source": "gateway", "models": live.get("models") or []}
    except (OSError, ValueError):
        models = [{"name": m["name"], "backend": m["backend"], "status": m["status"], "pid": m["pid"],
                   "port": m["port"], "endpoint": m["endpoint"], "in_flight": None, "queued": None, "idle_s": None,
                   "memory_bytes": None, "load_seconds": None, "pinned": None, "idle_ttl": None, "log": m["log"]}
                  for m in live_models(state_dir)]
        return {**base, "source": "state file", "models": models}


def status_for(*, settings, timeout: float = 2.0) -> dict[str, Any]:
    """:func:`status` for ``settings``, asking with the key of ``gateway_api_key_file`` when one is set (what
    ``gateway status`` and the GUI's gateway card show).

    A key file that cannot be read (missing, not a regular file, over 4 KiB, empty) means asking without a
    key: a gateway that wants one answers 401, and the state file is read instead. The key is never shown.

    Returns:
        :func:`status`'s dict.
    """
    return status(settings.state_dir, api_key=_api_key(settings.gateway_api_key_file), timeout=timeout)


def _api_key(path: Path | None) -> str | None:
    if not path:
        return None
    try:
        if not Path(path).is_file():  # never open a FIFO or a device
            return None
        with open(path, "rb") as fh:
            raw = fh.read(4097)
    except OSError:
        return None
    lines = raw.decode("utf-8", "replace").strip().splitlines() if len(raw) <= 4096 else []
    return (lines[0].strip() or None) if lines else None


def _client_host(host: str | None) -> str:
    if not host or host in ("0.0.0.0", "::", "[::]"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
