"""Which actions an entry can take now, and why not: what the GUI's action drawer enables or disables.

Each rule is the refusal the action itself would give (``serving.activate``, ``integrity.verify``/``lock``), asked
before the button is pressed, so a disabled button says the same thing the command would. Reads the entry, the
loaded plugins and the live model only: no network, no hashing.
"""

from __future__ import annotations

from imageworks_models.plugin.protocols import LoadingBackend, ServerBackend

from typing import Any

ACTIONS = ("activate", "stop", "verify", "lock")


def availability(entry: dict[str, Any], *, plugins, active_name: str | None = None) -> dict[str, str | None]:
    """``{action: None}`` when ``action`` (activate, stop, verify, lock) can be taken, else the reason it cannot.

    Args:
        entry: the effective entry.
        plugins: the loaded plugins (:func:`imageworks_models.pluginhost.manager.get_plugins`).
        active_name: the live model's name (:func:`imageworks_models.live.active.live_active`), if any.
    """
    from imageworks_models.redact import redact_url
    from imageworks_models.registry.predicates import drifted, installed, local_path, locked

    name = entry["name"]
    backend = entry.get("backend") or ""
    remote = (entry.get("backend_config") or {}).get("base_url")
    out: dict[str, str | None] = dict.fromkeys(ACTIONS)
    if remote:
        out["activate"] = out["stop"] = f"served remotely at {redact_url(remote)}; nothing is started here"
        out["verify"] = out["lock"] = "remote only: there are no local files to hash"
        if locked(entry):
            out["lock"] = None  # unlocking needs no files
        return out
    has_files = installed(entry)
    if not has_files:
        where = local_path(entry)
        missing = f"not installed: no files at {where}" if where else "not installed: no files recorded"
        out["verify"] = missing + " (download or scan it first)"
        out["lock"] = None if locked(entry) else out["verify"]
    serving = _serving_kind(backend, plugins)
    if serving is None:
        reason = (f"the {backend} backend is not loaded: no installed plugin provides it (see imageworks-models "
                  "plugins)") if backend else "the entry has no backend"
        out["activate"] = out["stop"] = reason
    elif serving == "none":
        out["activate"] = out["stop"] = f"the {backend} backend cannot start models from here"
    else:
        hub_id = (entry.get("backend_config") or {}).get("model_path") and local_path(entry) is None
        if not has_files and serving == "launch" and not hub_id:  # a Hub id: the server fetches it itself
            out["activate"] = missing + " (download or scan it first)"
        elif locked(entry) and drifted(entry):
            out["activate"] = ("locked, and its files differ from the locked state: verify it, or unlock it if "
                               "the change is intended")
        if serving == "launch" and active_name != name:
            out["stop"] = "not running" + (f" ({active_name} is the live model)" if active_name else "")
    return out


def _serving_kind(backend: str, plugins) -> str | None:
    """``launch`` (the orchestrator starts a server: vLLM, LMDeploy), ``load`` (a running server loads it:
    Ollama), ``none`` (the backend serves nothing from here), or ``None`` when no loaded plugin provides it."""
    if not backend or backend not in plugins.backends:
        return None
    from imageworks_models.errors import ImageworksError
    from imageworks_models.serving.control import backend_impl

    try:
        impl = backend_impl(backend, plugins)
    except ImageworksError:
        return None
    if isinstance(impl, ServerBackend):
        return "launch"
    return "load" if isinstance(impl, LoadingBackend) else "none"
