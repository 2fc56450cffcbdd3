"""The single-active-model state (``_staging/active_vllm.json``).

The orchestrator that writes this file (start, switch, stop) builds on this module; readers such as
``list`` and ``select`` only need to know which entry is live and where. :func:`preflight` is what
every activation calls before it starts anything.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

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
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s (delete it if no model is being served)", path, exc)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        log.warning("ignoring %s: it does not name an active model", path)
        return None
    return data


def preflight(entry: dict[str, Any], *, settings: Any = None, plugins: Any = None, quick: bool = True) -> None:
    """Checks every activation runs before it starts a server; today: a locked entry must still match.

    Raises:
        LockedEntryDriftError: the entry is locked and its files differ from the expected aggregate.
        NotVerifiableError: the entry is locked and its files cannot be checked.
    """
    from .integrity import check_activation_allowed

    check_activation_allowed(entry, settings=settings, plugins=plugins, quick=quick)
