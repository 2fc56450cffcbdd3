"""Choosing a model for a client: by name, alias or role, with required capabilities."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterable

from imageworks_models.errors import CapabilityError
from imageworks_models.registry.capabilities import CANONICAL, canonical_name, true_keys
from imageworks_models.registry.predicates import installed, is_testing

if TYPE_CHECKING:
    from imageworks_models.pluginhost.manager import PluginHost
    from imageworks_models.registry.store import Registry
    from imageworks_models.settings import Settings


@dataclass(frozen=True)
class Selection:
    """What a client needs to call a model (the ``select --json`` shape)."""

    name: str
    backend: str
    endpoint: str | None
    served_model_id: str | None
    capabilities: list[str]
    active: bool
    resolved_from: str  # name | alias (an alias, served id or repo id) | role
    role: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_requirements(require: Iterable[str] | str | None) -> list[str]:
    """``"vision,tools"`` or ``["vision", "tool_call"]`` as canonical capability names.

    Raises:
        CapabilityError: an unknown capability name.
    """
    if require is None:
        return []
    items = require.split(",") if isinstance(require, str) else [x for r in require for x in r.split(",")]
    out: list[str] = []
    for item in (i.strip() for i in items if i.strip()):
        canon = canonical_name(item)
        if canon is None:
            raise CapabilityError(f"unknown capability {item!r}", hint=f"known: {', '.join(CANONICAL)}")
        if canon not in out:
            out.append(canon)
    return out


def _missing(entry: dict[str, Any], required: list[str]) -> list[str]:
    caps = entry.get("capabilities") or {}
    return [c for c in required if not caps.get(c)]


def select(registry: "Registry", target: str, *, require: Iterable[str] | str | None = None,
           plugins: "PluginHost | None" = None, settings: "Settings | None" = None,
           active: dict[str, Any] | None = None) -> Selection:
    """Resolve ``target`` (an entry name, an alias, or a role) to an endpoint.

    A role resolves, among the entries that have every required capability, to the one with the
    highest ``role_priority`` for it; testing and deprecated entries rank after all others; ties go
    to installed entries, then by name.

    Args:
        registry: the loaded registry.
        target: entry name, alias, or role.
        require: capabilities the model must have (names or synonyms).
        plugins: loaded plugins, for the backend's endpoint rule (core fallback without them).
        settings: resolved settings, passed to the backend's endpoint rule.
        active: the active-model state, if any (its live endpoint wins for the active entry).

    Returns:
        A :class:`Selection`.

    Raises:
        CapabilityError: the entry, or every entry playing the role, lacks a required capability.
        EntryNotFoundError: ``target`` is no name, alias or role.
    """
    required = parse_requirements(require)
    role = None
    entry = registry.find(target)
    resolved_from = "name" if entry is not None and entry["name"].lower() == target.lower() else "alias"
    if entry is not None:
        missing = _missing(entry, required)
        if missing:
            raise CapabilityError(
                f"{entry['name']!r} lacks required capabilit{'ies' if len(missing) > 1 else 'y'} "
                f"{', '.join(missing)} (it has: {', '.join(true_keys(entry.get('capabilities'))) or 'none'})",
                hint="choose another model, or fix its capabilities in model_registry.curated.json")
    else:
        candidates = [e for e in registry if target in (e.get("roles") or ())]
        if not candidates:
            # a unique prefix of a name, else EntryNotFoundError / AmbiguousNameError with suggestions
            return select(registry, registry.get(target)["name"], require=require, plugins=plugins,
                          settings=settings, active=active)
        role = target
        able = [e for e in candidates if not _missing(e, required)]
        if not able:
            detail = "; ".join(f"{e['name']} lacks {', '.join(_missing(e, required))}" for e in candidates[:5])
            raise CapabilityError(f"no model for role {role!r} has {', '.join(required)}: {detail}",
                                  hint="add the capability to a suitable entry in model_registry.curated.json")

        def rank(e: dict[str, Any]):
            # Placeholders and deprecated entries only win when nothing else can play the role.
            prio = (e.get("role_priority") or {}).get(role)
            flags = e.get("flags") or {}
            return (is_testing(e), bool(flags.get("deprecated")), -(prio if prio is not None else -1),
                    not installed(e), e["name"])

        entry = min(able, key=rank)
        resolved_from = "role"
    is_active = bool(active and active.get("name") == entry["name"])
    endpoint, note = _endpoint(entry, plugins, settings)
    if is_active and active.get("endpoint"):
        endpoint = active["endpoint"]
    return Selection(name=entry["name"], backend=entry.get("backend") or "", endpoint=endpoint,
                     served_model_id=entry.get("served_model_id") or entry["name"],
                     capabilities=true_keys(entry.get("capabilities")), active=is_active,
                     resolved_from=resolved_from, role=role, note=note)


def _endpoint(entry: dict[str, Any], plugins: "PluginHost | None", settings: "Settings | None"):
    from imageworks_models.serving.endpoints import openai_base_url

    backend_name = entry.get("backend") or ""
    if plugins is not None:
        from imageworks_models.pluginhost.manager import normalize_name

        backend = plugins.backends.get(normalize_name(backend_name))
        if backend is not None and backend.endpoint is not None:
            return backend.endpoint(entry, settings), None
    url = openai_base_url(entry.get("backend_config") or {}, default_port=None)
    return url, f"no installed plugin provides the backend {backend_name!r}; endpoint taken from backend_config"
