"""Talking to the Ollama server over its REST API with the official ``ollama`` client.

Health is ``/api/version`` and ``/api/ps``; activating a model loads it (``/api/generate`` with no prompt
and a ``keep_alive``), stopping unloads it (``keep_alive: 0``); removing goes through ``DELETE /api/delete``
so Ollama itself keeps the blobs other tags still use. Every failure becomes one of three distinct
errors: the server is not running, the model is not pulled, or the server did not answer in time.
``ollama`` (and pydantic/httpx behind it) is imported only here, when a command needs the server.
"""

from __future__ import annotations

import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from imageworks_models.api import normalize_host_url
from imageworks_models.api import BackendNotRunningError, BackendTimeoutError, ModelNotPulledError, ServingError

OLLAMA_PORT = 11434
HEALTH_TIMEOUT = 3.0


def base_url(settings) -> str:
    """``OLLAMA_HOST`` (or the config's ``ollama_host``) as ``scheme://host:port``."""
    return normalize_host_url(settings.ollama_host or "", OLLAMA_PORT)


@contextmanager
def _client(settings, *, timeout: float, doing: str, model: str | None = None) -> Iterator[Any]:
    """An ``ollama.Client`` whose failures are turned into our three errors (plus ServingError)."""
    import httpx
    import ollama

    url = base_url(settings)
    client = ollama.Client(host=url, timeout=timeout)
    try:
        yield client
    except (ConnectionError, httpx.ConnectError):  # the client turns ConnectError into ConnectionError; raw calls don't
        raise BackendNotRunningError(f"Ollama is not running at {url} (connection refused while {doing})",
                                     hint="start it (`ollama serve`, or `systemctl start ollama`) or set "
                                          "OLLAMA_HOST to where it listens") from None
    except httpx.TimeoutException:
        raise BackendTimeoutError(f"Ollama at {url} did not answer within {timeout:g} s while {doing}",
                                  hint="a large model can take minutes to load: raise IMAGEWORKS_OLLAMA_TIMEOUT, "
                                       "or look at `ollama ps` and the server's log") from None
    except ollama.ResponseError as exc:
        if exc.status_code == 404 and model:
            raise ModelNotPulledError(f"Ollama at {url} does not have {model!r}",
                                      hint=f"pull it first: ollama pull {shlex.quote(model)}") from None
        raise ServingError(f"Ollama at {url} refused {doing}: HTTP {exc.status_code}: {exc.error}",
                           hint="see the server's log (journalctl -u ollama)") from None
    except httpx.HTTPStatusError as exc:  # a raw call's raise_for_status(): the server is up and refused
        raise ServingError(f"Ollama at {url} refused {doing}: HTTP {exc.response.status_code}",
                           hint="see the server's log (journalctl -u ollama)") from None
    except httpx.HTTPError as exc:
        raise BackendNotRunningError(f"Ollama at {url} broke off while {doing}: {type(exc).__name__}: {exc}",
                                     hint="check that OLLAMA_HOST points at an Ollama server") from None
    finally:
        client.close()


def version(*, settings, timeout: float = HEALTH_TIMEOUT) -> str:
    """The server's version (``/api/version``; the client has no call for it, so its HTTP client is used).

    Raises:
        BackendNotRunningError, BackendTimeoutError, ServingError.
    """
    with _client(settings, timeout=timeout, doing="asking its version") as client:
        response = client._client.get("/api/version")  # the ollama client's own httpx.Client and base URL
        response.raise_for_status()
        value = response.json().get("version")
        return str(value) if value is not None else "unknown"


def list_tags(*, settings, timeout: float = HEALTH_TIMEOUT) -> list[str]:
    """Every model the server has (``/api/tags``)."""
    with _client(settings, timeout=timeout, doing="listing its models") as client:
        return [m.model for m in client.list().models if m.model]


def loaded(*, settings, timeout: float = HEALTH_TIMEOUT) -> list[dict[str, Any]]:
    """The models loaded now (``/api/ps``): ``[{"model", "size", "size_vram", "expires_at", "context_length"}]``."""
    with _client(settings, timeout=timeout, doing="listing loaded models") as client:
        out = []
        for m in client.ps().models:
            out.append({"model": m.model, "size": m.size, "size_vram": m.size_vram,
                        "expires_at": m.expires_at.isoformat() if m.expires_at else None,
                        "context_length": getattr(m, "context_length", None)})
        return out


def health(*, settings, timeout: float = HEALTH_TIMEOUT) -> dict[str, Any]:
    """``{"backend", "url", "ok", "version", "loaded", "error", "hint"}``; never raises for a down server."""
    url = base_url(settings)
    try:
        ver = version(settings=settings, timeout=timeout)
        models = loaded(settings=settings, timeout=timeout)
    except ServingError as exc:
        return {"backend": "ollama", "url": url, "ok": False, "version": None, "loaded": [],
                "error": exc.message, "hint": exc.hint}
    return {"backend": "ollama", "url": url, "ok": True, "version": ver, "loaded": models, "error": None,
            "hint": None}


def load(model: str, *, settings, keep_alive: str | float | None = None) -> dict[str, Any]:
    """Load ``model`` and keep it loaded for ``keep_alive`` (default: the ``ollama_keep_alive`` setting).

    Returns:
        The ``/api/ps`` record of the loaded model (``{"model", ..., "expires_at"}``).

    Raises:
        BackendNotRunningError, ModelNotPulledError, BackendTimeoutError, ServingError.
    """
    keep = _keep_alive(settings.ollama_keep_alive if keep_alive is None else keep_alive)
    with _client(settings, timeout=settings.ollama_timeout, doing=f"loading {model}", model=model) as client:
        client.generate(model=model, keep_alive=keep)
    for record in loaded(settings=settings):
        if record["model"] == model:
            return record
    raise ServingError(f"Ollama at {base_url(settings)} answered the load of {model} but does not list it "
                       "as loaded", hint="look at the server's log; it may have run out of memory")


def unload(model: str, *, settings) -> None:
    """Unload ``model`` (``keep_alive: 0``). Unloading a model that is not loaded is not an error.

    Raises:
        BackendNotRunningError, ModelNotPulledError, BackendTimeoutError, ServingError.
    """
    with _client(settings, timeout=settings.ollama_timeout, doing=f"unloading {model}", model=model) as client:
        client.generate(model=model, keep_alive=0)


def _keep_alive(value: Any) -> str | float:
    text = str(value).strip()
    try:
        return float(text) if "." in text else int(text)  # seconds, or -1 for "until stopped"
    except ValueError:
        return text  # a duration such as "30m"


def entry_tags(entry: dict[str, Any]) -> list[str]:
    """The Ollama tags an entry stands for: its served id, then its aliases that look like tags."""
    tags = [entry.get("served_model_id")] + [a for a in entry.get("aliases") or [] if ":" in a]
    seen: list[str] = []
    for t in tags:
        if t and t not in seen:
            seen.append(t)
    return seen


def removal_plan(entry: dict[str, Any], *, settings, store: Path | None) -> dict[str, Any]:
    """What deleting an Ollama entry's files means: which tags ``ollama rm`` removes and which of their blobs
    stay because other tags use them. ``{"command": [...], "tags": [...], "shared": ["<blob> (used by ...)"]}``"""
    tags = entry_tags(entry)
    shared: list[str] = []
    if store is not None:
        from .store import read_store

        users: dict[str, set[str]] = {}
        ours: set[str] = set()
        for m in read_store(store):
            digests = [b.digest for b in (m.model, m.projector) if b is not None]
            for d in digests:
                users.setdefault(d, set()).add(m.served_id)
            if m.served_id in tags:
                ours.update(digests)
        for d in sorted(ours):
            others = sorted(users.get(d, set()) - set(tags))
            if others:
                shared.append(f"{d[:19]}... (still used by {', '.join(others)})")
    return {"command": ["ollama", "rm", *tags], "tags": tags, "shared": shared}


def delete_tags(tags: list[str], *, settings) -> list[str]:
    """Remove each tag through ``DELETE /api/delete`` (Ollama prunes only blobs no tag uses); returns them.
    A tag the server no longer has counts as removed.

    Raises:
        BackendNotRunningError, ModelNotPulledError, BackendTimeoutError, ServingError: on the first failure
            (the tags before it are removed; the message says which).
    """
    done: list[str] = []
    for tag in tags:
        try:
            with _client(settings, timeout=settings.ollama_timeout, doing=f"deleting {tag}", model=tag) as client:
                client.delete(tag)
        except ModelNotPulledError:
            pass  # already gone (someone ran `ollama rm`): what a removal wants
        except ServingError as exc:
            if done:
                exc.message += f" (already removed: {', '.join(done)})"
            raise
        done.append(tag)
    return done
