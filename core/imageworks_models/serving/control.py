"""Backends at work: health, what is loaded, activate and stop, for the CLI, the GUI and library callers.

A backend plugin's implementation object (``Backend.load()``) offers ``health(*, settings)``, and either
- ``launch(entry, *, settings)`` and ``probe(endpoint, served_model_id, *, settings)``: a server the orchestrator
  starts as a process on the serving port (vLLM, LMDeploy), driven by :mod:`imageworks_models.serving.activation`; or
- ``activate(entry, *, settings)`` and ``deactivate(entry, *, settings)``: a running server that loads models on
  request (Ollama).
"""

from __future__ import annotations

from typing import Any, Callable

from imageworks_models.errors import NotActivatableError, PluginError
from imageworks_models.plugin.protocols import HealthReporter, LoadingBackend, ServerBackend


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
    "error", "hint"}]`` (rows for remote endpoints add ``name`` and ``protocol``). A server that is down is
    ``ok: false`` with the error, never an exception."""
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    out = []
    for name in backends or sorted(plugins.backends):
        try:
            impl = backend_impl(name, plugins)
        except PluginError:
            continue
        if not isinstance(impl, HealthReporter):
            continue
        try:
            rows = impl.health(settings=settings)  # one row, or a list (a backend with remote endpoints)
        except Exception as exc:  # noqa: BLE001 - one broken backend must not hide the others' health
            rows = {"backend": name, "url": None, "ok": False, "version": None, "loaded": [],
                    "error": f"the {name} backend failed to report: {type(exc).__name__}: {exc}",
                    "hint": "see `imageworks-models plugins`; run with IMAGEWORKS_DEBUG=1 for details"}
        out.extend(rows if isinstance(rows, list) else [rows])
    return out


def _activatable(entry: dict[str, Any], plugins, verb: str) -> Any:
    backend = entry.get("backend") or ""
    impl = backend_impl(backend, plugins)
    if not (isinstance(impl, ServerBackend) or isinstance(impl, LoadingBackend)):
        raise NotActivatableError(f"{entry['name']!r} uses the {backend} backend, which cannot {verb} models "
                                  "from here yet", hint="start its server yourself; see `imageworks-models select "
                                                        f"{entry['name']}` for the endpoint")
    return impl


def _with_backend(entry: dict[str, Any], backend: str | None) -> dict[str, Any]:
    """The entry as served by ``backend`` instead of its own (``activate-model --backend``), e.g. a model
    imported from the Ollama store served by llama.cpp from its blob. The registry is not changed."""
    return entry if not backend or backend == entry.get("backend") else {**entry, "backend": backend}


def activate(name: str, *, settings=None, plugins=None, timeout: float | None = None,
             progress: Callable[[str], None] | None = None, force: bool = False,
             backend: str | None = None, takeover: bool = False) -> dict[str, Any]:
    """Make the entry ``name`` (a name or alias) live; returns where to call it.

    A process backend (vLLM, LMDeploy) gets its server started on the serving port, replacing the active
    model (:func:`imageworks_models.serving.activation.start`); Ollama loads the model into its running server.

    Args:
        name: entry name or alias.
        timeout: seconds a started server may take to become ready (default ``activation_timeout``).
        progress: called with a line at each step.
        force: activate it even if the memory estimate says it will not fit.
        backend: serve it with this backend instead of the entry's own (the state records which).
        takeover: stop an untracked server on the port if it is one this backend launches (process backends).

    Returns:
        ``{"name", "backend", "endpoint", "served_model_id", ...}``; process backends add the state fields
        (``pid``, ``port``, ``log``, ``command``, ``changed``, ``stopped``, ``seconds``).

    Raises:
        EntryNotFoundError: no such entry.
        LockedEntryDriftError, NotVerifiableError: it is locked and its files do not match.
        NotActivatableError: its backend cannot start or load models (or it is a remote endpoint).
        UnsafeLaunchError, PortInUseError, ServerStartError, ServerNotReadyError: see ``activation.start``.
        BackendNotRunningError, ModelNotPulledError, BackendTimeoutError: the Ollama server failed.
    """
    from imageworks_models.serving.activation import preflight, record_loaded, start
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import open_registry
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    entry = _with_backend(open_registry(settings).get(name), backend)
    impl = _activatable(entry, plugins, "load")
    if isinstance(impl, ServerBackend):
        return start(entry, impl, settings=settings, plugins=plugins, timeout=timeout, progress=progress,
                     force=force, takeover=takeover)
    from imageworks_models.fit import check_activation

    preflight(entry, settings=settings, plugins=plugins)
    check_activation(entry, settings=settings, plugins=plugins, force=force)
    result = impl.activate(entry, settings=settings)
    # the loaded model is now the live one: current-model shows it, --stop unloads it
    record_loaded({**result, "name": entry["name"], "backend": entry.get("backend")}, settings=settings,
                  plugins=plugins)
    return result


def plan_activation(name: str, *, settings=None, plugins=None, backend: str | None = None) -> dict[str, Any]:
    """What :func:`activate` would do for ``name``, without starting, stopping or loading anything.

    Returns:
        For a process backend, :func:`imageworks_models.serving.activation.plan`'s dict; for Ollama,
        ``{"name", "backend", "action": "load", "served_model_id", "endpoint", "lines"}``.

    Raises:
        The refusals :func:`activate` would raise before it starts anything.
    """
    from imageworks_models.serving.activation import plan, preflight
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import open_registry
    from imageworks_models.serving.selection import select
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    registry = open_registry(settings)
    entry = _with_backend(registry.get(name), backend)
    impl = _activatable(entry, plugins, "load")
    if isinstance(impl, ServerBackend):
        return plan(entry, impl, settings=settings, plugins=plugins)
    preflight(entry, settings=settings, plugins=plugins)
    chosen = select(registry, entry["name"], plugins=plugins, settings=settings)
    return {"name": entry["name"], "backend": entry.get("backend"), "action": "load",
            "served_model_id": chosen.served_model_id, "endpoint": chosen.endpoint,
            "lines": [f"would load {chosen.served_model_id} into the {entry.get('backend')} server",
                      f"endpoint: {chosen.endpoint}"]}


def deactivate(name: str | None = None, *, settings=None, plugins=None) -> dict[str, Any]:
    """Stop the entry ``name``: unload it from Ollama, or stop the active process server if it is that entry.
    Without ``name``, stop whatever the orchestrator runs on the serving port.

    Returns:
        ``{"name", "backend", "stopped": bool, ...}``; for the orchestrator also ``pid``, ``signal`` and
        ``stale`` (why a record was dropped without signalling anything).

    Raises:
        EntryNotFoundError, NotActivatableError, ServingError (not the active model),
        BackendNotRunningError, ModelNotPulledError, BackendTimeoutError.
    """
    from imageworks_models.serving.activation import forget_loaded, stop
    from imageworks_models.live.active import is_loaded_record, read_active
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import open_registry
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    if name is None:
        out = stop(settings=settings, plugins=plugins)
        return {"name": out.pop("stopped"), "stopped": out["pid"] is not None or bool(out.get("unloaded")), **out}
    plugins = plugins or get_plugins(settings)
    entry = open_registry(settings).get(name)
    active = read_active(settings.state_dir)
    # the orchestrator serves it, perhaps with another backend than its own (activate-model --backend)
    served_here = active is not None and active.get("name") == entry["name"] and not is_loaded_record(active)
    impl = None if served_here else _activatable(entry, plugins, "stop")
    if served_here or isinstance(impl, ServerBackend):
        out = stop(settings=settings, name=entry["name"], plugins=plugins)
        return {"name": out.pop("stopped"), "stopped": out["pid"] is not None or bool(out.get("unloaded")), **out}
    impl.deactivate(entry, settings=settings)
    forget_loaded(entry["name"], settings=settings)
    return {"name": entry["name"], "backend": entry.get("backend"), "stopped": True}


def status(*, settings=None, plugins=None, probe: bool = True) -> dict[str, Any]:
    """What is live now, the one way the CLI (``current-model``), the GUI and library callers read it.

    Args:
        settings: the settings (default: :func:`~imageworks_models.settings.load_settings`).
        plugins: the loaded plugins, used to ask the live backend (default: loaded when ``probe``).
        probe: ask the server whether it answers (``False``: the recorded state and ``/proc`` only, no network).

    Returns:
        ``{"active", "status": "ready" | "starting" | "unhealthy" | "none", ...the state's fields, "gateway": [...]}``
        (the ``current-model --json`` shape in the README).
    """
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.serving.activation import current
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    if probe and plugins is None:
        plugins = get_plugins(settings)
    return current(settings=settings, plugins=plugins, probe=probe)
