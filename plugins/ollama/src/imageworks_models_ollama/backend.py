"""The ``ollama`` backend object the core calls (README, "Writing a plugin": backends).

Ollama runs its own server and serves every pulled model on one port, so activating an entry loads it
into that server (nothing is started here) and stopping unloads it.
"""

from __future__ import annotations

from typing import Any

from imageworks_models.api import NotActivatableError

from . import server


def served_id(entry: dict[str, Any]) -> str:
    """The tag Ollama knows the entry by.

    Raises:
        NotActivatableError: the entry has no ``served_model_id``.
    """
    tag = entry.get("served_model_id")
    if not tag:
        raise NotActivatableError(f"{entry.get('name')!r} has no served_model_id, so Ollama cannot be told which "
                                  "model to load", hint="set served_model_id (the name:tag `ollama list` shows) or "
                                                        "run `imageworks-download import-ollama`")
    return tag


class OllamaBackend:
    name = "ollama"

    def health(self, *, settings) -> dict[str, Any]:
        """``{"backend", "url", "ok", "version", "loaded", "error", "hint"}``; a down server is ``ok: false``."""
        return server.health(settings=settings)

    def loaded(self, *, settings) -> list[dict[str, Any]]:
        """The models loaded now (``/api/ps``)."""
        return server.loaded(settings=settings)

    def activate(self, entry: dict[str, Any], *, settings) -> dict[str, Any]:
        """Load the entry's model and keep it loaded (``ollama_keep_alive``); returns where to call it.

        Raises:
            NotActivatableError, BackendNotRunningError, ModelNotPulledError, BackendTimeoutError.
        """
        from .plugin import endpoint

        tag = served_id(entry)
        record = server.load(tag, settings=settings)
        return {"name": entry["name"], "backend": self.name, "served_model_id": tag,
                "endpoint": endpoint(entry, settings), "expires_at": record.get("expires_at")}

    def deactivate(self, entry: dict[str, Any], *, settings) -> None:
        """Unload the entry's model (``keep_alive: 0``).

        Raises:
            NotActivatableError, BackendNotRunningError, ModelNotPulledError, BackendTimeoutError.
        """
        server.unload(served_id(entry), settings=settings)
