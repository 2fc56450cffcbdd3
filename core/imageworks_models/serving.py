"""Backends at work: health, what is loaded, activate and stop, for the CLI, the GUI and library callers.

A backend plugin's implementation object (``Backend.load()``) offers ``health(*, settings)``, and, when
the backend's server can load models on request (Ollama), ``activate(entry, *, settings)`` and
``deactivate(entry, *, settings)``. Backends whose servers the orchestrator starts as processes
(vLLM, LMDeploy) are driven by :mod:`imageworks_models.activation`.
"""

from __future__ import annotations

from typing import Any

from .errors import NotActivatableError, PluginError


def backend_impl(name: str, plugins) -> Any:
    """The implementation object of backend ``name``.

    Raises:
        BackendNotFoundError: no plugin provides it.
        PluginError: it registers no implementation, or its ``load()`` failed.
    """
    record = plugins.backend(name)
    if record.load is None:
        raise PluginError(f"the backend {name!r} has no implementation to load",
                          hint="upgrade its plugin (see `imageworks-models plugins`)")
    try:
        return record.load()
    except Exception as exc:
        raise PluginError(f"the backend {name!r} failed to load: {type(exc).__name__}: {exc}",
                          hint="reinstall its plugin (see `imageworks-models plugins`)") from None


def health(*, settings=None, plugins=None, backends: list[str] | None = None) -> list[dict[str, Any]]:
    """The health of each backend that can report it: ``[{"backend", "url", "ok", "version", "loaded",
    "error", "hint"}]``. A server that is down is ``ok: false`` with the error, never an exception."""
    from .plugins import get_plugins
    from .settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    out = []
    for name in backends or sorted(plugins.backends):
        try:
            impl = backend_impl(name, plugins)
        except PluginError:
            continue
        if hasattr(impl, "health"):
            out.append(impl.health(settings=settings))
    return out


def _activatable(entry: dict[str, Any], plugins, verb: str) -> Any:
    backend = entry.get("backend") or ""
    impl = backend_impl(backend, plugins)
    if not hasattr(impl, "activate"):
        raise NotActivatableError(f"{entry['name']!r} uses the {backend} backend, which cannot {verb} models "
                                  "from here yet", hint="start its server yourself; see `imageworks-models select "
                                                        f"{entry['name']}` for the endpoint")
    return impl


def activate(name: str, *, settings=None, plugins=None) -> dict[str, Any]:
    """Load the entry ``name`` (a name or alias) in its backend's server; returns where to call it.

    Raises:
        EntryNotFoundError: no such entry.
        LockedEntryDriftError, NotVerifiableError: it is locked and its files do not match.
        NotActivatableError: its backend cannot load models on request.
        BackendNotRunningError, ModelNotPulledError, BackendTimeoutError: the server failed.
    """
    from .activation import preflight
    from .plugins import get_plugins
    from .registry import open_registry
    from .settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    entry = open_registry(settings).get(name)
    impl = _activatable(entry, plugins, "load")
    preflight(entry, settings=settings, plugins=plugins)
    return impl.activate(entry, settings=settings)


def deactivate(name: str, *, settings=None, plugins=None) -> dict[str, Any]:
    """Unload the entry ``name`` from its backend's server.

    Raises:
        EntryNotFoundError, NotActivatableError, BackendNotRunningError, ModelNotPulledError, BackendTimeoutError.
    """
    from .plugins import get_plugins
    from .registry import open_registry
    from .settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    entry = open_registry(settings).get(name)
    _activatable(entry, plugins, "stop").deactivate(entry, settings=settings)
    return {"name": entry["name"], "backend": entry.get("backend"), "stopped": True}
