"""Editing an entry's curated part, as the GUI's "Edit entry" modal and "Import discovered entries" wizard do.

An edit is planned first (:func:`plan_edit`: the new curated part, the diff, and field-level errors) and then
applied with the fingerprint of the curated part the user started from (:func:`apply_edit`, :func:`base_of`).
If someone else saved that curated part in between, the edit is refused
(:class:`~imageworks_models.errors.StaleEditError`), never silently written over. Machine-written changes to the
discovered layer (a verify's timestamps, a re-scan) do not make an edit stale: it does not write that layer.
Only the curated layer is written, and only the fields a person owns (:data:`EDITABLE`).
"""

from __future__ import annotations

from imageworks_models.plugin.protocols import ServerBackend

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

EDITABLE = ("display_name", "aliases", "roles", "role_priority", "capabilities", "served_model_id", "backend",
            "backend_config", "family", "license", "metadata", "flags")
MISSING = object()


def fingerprint(entry: dict[str, Any] | None) -> str:
    """A digest of an entry's (or an entry part's) content."""
    text = json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class EditPlan:
    """An edit of ``name``'s curated part: ``before``/``after`` (the curated part), ``diff`` rows
    ``(field, old, new)``, ``errors`` (field -> message; an edit with errors writes nothing) and ``base`` (the
    fingerprint of the curated part it was planned against)."""

    name: str
    before: dict[str, Any]
    after: dict[str, Any]
    diff: list[tuple[str, Any, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    base: str = ""
    warnings: list[str] = field(default_factory=list)  # conflicts the edit creates (doctor's checks), not refused

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "before": self.before, "after": self.after, "base": self.base,
                "diff": [{"field": f, "old": o, "new": n} for f, o, n in self.diff], "errors": self.errors,
                "warnings": self.warnings}


ROLE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def _field_errors(candidate: dict[str, Any], changes: dict[str, Any]) -> dict[str, str]:
    from pydantic import ValidationError

    from imageworks_models.registry import capabilities as caps
    from imageworks_models.registry.schema import Entry

    errors: dict[str, str] = {}
    for key in changes:
        if key not in EDITABLE:
            errors[key] = "not editable here (machine-written or the entry's key)"
    if "capabilities" in changes and isinstance(candidate.get("capabilities"), dict):
        folded, unknown, _ = caps.normalize(candidate["capabilities"])
        if unknown:
            errors["capabilities"] = f"unknown capabilit{'ies' if len(unknown) > 1 else 'y'}: {', '.join(unknown)}"
        else:
            candidate = {**candidate, "capabilities": folded}
    try:
        Entry.model_validate(candidate)
    except ValidationError as exc:
        for err in exc.errors():
            loc = err.get("loc") or ("entry",)
            key = str(loc[0])
            where = ".".join(str(p) for p in loc[1:])
            errors.setdefault(key, (f"{where}: " if where else "") + err.get("msg", "invalid"))
    return errors


def _role_errors(candidate: dict[str, Any], entries: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Roles are what ``select ROLE`` resolves: short lowercase words, never an entry's name or alias (``select``
    tries names first, so such a role could never be chosen)."""
    errors: dict[str, str] = {}
    roles = candidate.get("roles") or []
    if not isinstance(roles, list):
        return errors
    bad = [r for r in roles if isinstance(r, str) and r.strip() and not ROLE_RE.match(r)]
    if bad:
        errors["roles"] = (f"{bad[0]!r} is not a role name: use lowercase letters, digits, '.', '_' or '-' "
                           "(e.g. chat, vision, embedding)")
        return errors
    names = {n for e in entries.values() for n in (e["name"], *(e.get("aliases") or ()))}
    clash = [r for r in roles if r in names]
    if clash:
        errors["roles"] = (f"role {clash[0]!r} is also an entry's name or alias, so `select {clash[0]}` would "
                           "pick that entry, never the role; choose another role name")
        return errors
    priority = candidate.get("role_priority") or {}
    if isinstance(priority, dict):
        extra = sorted(set(priority) - set(roles))
        if extra:
            errors["role_priority"] = f"priority for {extra[0]!r}, which is not one of the entry's roles"
    return errors


def _backend_errors(candidate: dict[str, Any], changes: dict[str, Any], *, settings, plugins,
                    launch: bool = True) -> dict[str, str]:
    """The checks activation makes before it starts anything, made when the entry is saved: the backend is
    provided by a loaded plugin, and the server command the backend would render from the entry passes the
    launch rules (``serverargs.py``: ``extra_args``, ``env``, served id; RELIABILITY S7)."""
    from imageworks_models.errors import ImageworksError, UnsafeLaunchError

    backend = candidate.get("backend")
    if not backend or not ({"backend", "backend_config", "served_model_id"} & set(changes)):
        return {}
    if plugins is None:
        from imageworks_models.pluginhost.manager import get_plugins

        plugins = get_plugins(settings)
    if backend not in plugins.backends:
        known = ", ".join(sorted(plugins.backends)) or "none"
        return {"backend": f"no loaded plugin provides the {backend!r} backend (loaded: {known}); install its "
                           f"plugin (pip install imageworks-models-{backend}) or choose one of those"}
    if not launch or (candidate.get("backend_config") or {}).get("base_url"):
        return {}  # a remote endpoint: nothing is launched here
    try:
        from imageworks_models.serving.control import backend_impl

        impl = backend_impl(backend, plugins)
    except ImageworksError:
        return {}  # a plugin that cannot load says so where it is used; its warning names the fix
    if not isinstance(impl, ServerBackend):
        return {}
    from imageworks_models.serving.serverargs import planning

    try:
        with planning():  # files that are not on disk yet are not an edit's business
            impl.launch(candidate, settings=settings)
    except UnsafeLaunchError as exc:
        field_ = "served_model_id" if "served_model_id" in exc.message and "extra_args" not in exc.message \
            else "backend_config"
        return {field_: exc.message.split(": ", 1)[-1] + (f" ({exc.hint})" if exc.hint else "")}
    except ImageworksError:
        return {}  # not about the entry's own fields (a missing file, a setting): activation reports it
    return {}


def base_of(name: str, *, settings=None) -> str:
    """The fingerprint of ``name``'s curated part now (of "none yet" when it has none): what an editor opening
    the entry keeps, to hand to :func:`apply_edit` as ``base``."""
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    layers = store_for(settings or load_settings()).load_layers()
    entries, _ = layers.merged()
    entry = entries.get(name) or next((e for e in entries.values() if name in (e.get("aliases") or ())), None)
    return fingerprint(layers.curated.get(entry["name"]) if entry else None)


def plan_edit(name: str, changes: dict[str, Any], *, settings=None, plugins=None) -> EditPlan:
    """The curated part ``name`` would have after ``changes`` (field -> new value; ``None`` removes the field).

    Returns:
        An :class:`EditPlan`; ``errors`` says, field by field, what is wrong (nothing is written either way).

    Raises:
        EntryNotFoundError: no such entry (a name or alias).
    """
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    layers = store_for(settings).load_layers()
    entries, _ = layers.merged()
    entry = entries.get(name)
    if entry is None:
        from imageworks_models.registry import open_registry

        entry = open_registry(settings).get(name)  # raises EntryNotFoundError with suggestions, or resolves an alias
    return _plan(entry, layers, changes, entries=entries, settings=settings, plugins=plugins)


def _launch_errors(effective: dict[str, Any], changes: dict[str, Any], settings) -> dict[str, str]:
    """What activation would refuse in an edited ``backend_config`` (S11), refused at edit time already."""
    from imageworks_models.errors import UnsafeLaunchError
    from imageworks_models.serving.serverargs import check_env, check_host

    cfg = effective.get("backend_config")
    if "backend_config" not in changes or not isinstance(cfg, dict):
        return {}
    try:
        check_env(cfg.get("env"), name=effective["name"], settings=settings)
        if isinstance(cfg.get("host"), str):
            check_host(cfg["host"], name=effective["name"], settings=settings, warn=lambda line: None)
    except UnsafeLaunchError as exc:
        return {"backend_config": exc.message.split(": ", 1)[-1] + (f" ({exc.hint})" if exc.hint else "")}
    return {}


def _plan(entry: dict[str, Any], layers, changes: dict[str, Any], *, entries: dict[str, dict[str, Any]], settings,
          plugins=None) -> EditPlan:
    name = entry["name"]
    before = dict(layers.curated.get(name) or {"name": name})
    after = dict(before)
    for key, value in changes.items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    diff = [(k, before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
            if before.get(k, MISSING) != after.get(k, MISSING)]
    plan = EditPlan(name=name, before=before, after=after, diff=diff, base=fingerprint(layers.curated.get(name)))
    effective = {**entry, **{k: v for k, v in after.items()}}
    for key in set(before) - set(after):
        if key not in (layers.discovered.get(name) or {}):
            effective.pop(key, None)
    plan.errors = _field_errors(effective, changes)
    if "backend_config" not in plan.errors:
        plan.errors.update(_launch_errors(effective, changes, settings))
    if not plan.errors:
        from imageworks_models.registry.doctor import warnings_for

        entries, _ = layers.merged()
        plan.warnings = warnings_for(name, effective, entries,
                                     single_port=bool(getattr(settings, "single_port", False)))
    if not effective.get("backend"):
        plan.errors.setdefault("backend", "an entry needs a backend (vllm, ollama, lmdeploy...)")
    if "roles" in changes or "role_priority" in changes:
        for key, message in _role_errors(effective, {**entries, name: effective}).items():
            plan.errors.setdefault(key, message)
    if "backend" not in plan.errors:  # the launch rules only for an otherwise well-formed entry
        plan.errors.update(_backend_errors(effective, changes, settings=settings, plugins=plugins,
                                           launch=not plan.errors))
    return plan


def apply_edit(name: str, changes: dict[str, Any], *, base: str, settings=None, plugins=None) -> EditPlan:
    """Write ``changes`` into ``name``'s curated part, if the entry is still the one the user started from.

    Args:
        name: the entry.
        changes: field -> new value (``None`` removes the field from the curated part).
        base: :func:`base_of` the entry when the user opened it (or ``EditPlan.base`` of the preview).

    Returns:
        The applied :class:`EditPlan`.

    Raises:
        EntryEditError: a field is invalid (``errors`` field by field); nothing was written.
        StaleEditError: its curated part changed since ``base`` (someone else saved); nothing was written.
        EntryNotFoundError, StorageError, LockTimeoutError.
    """
    from imageworks_models.errors import EntryEditError, EntryNotFoundError, StaleEditError
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    with store_for(settings).edit(backup=True, backup_label="edit") as layers:
        entries, _ = layers.merged()
        entry = entries.get(name) or next((e for e in entries.values() if name in (e.get("aliases") or ())), None)
        if entry is None:
            raise EntryNotFoundError(f"no entry named {name!r} (it may have been removed meanwhile)",
                                     hint="reload the registry")
        if fingerprint(layers.curated.get(entry["name"])) != base:
            raise StaleEditError(f"{name!r} changed since you opened it (someone else saved it); nothing was written",
                                 hint="reload the entry, then make your edit again")
        plan = _plan(entry, layers, changes, entries=entries, settings=settings, plugins=plugins)
        if plan.errors:
            raise EntryEditError(plan.errors, name=entry["name"])
        name = entry["name"]
        layers.curated.remove(name)
        layers.curated.put(plan.after)
    return plan


def discovered_only(*, settings=None) -> list[dict[str, Any]]:
    """Entries that only discovery knows (no curated overlay yet): what the import wizard offers."""
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    layers = store_for(settings).load_layers()
    entries, _ = layers.merged()
    return [entries[n] for n in sorted(layers.discovered.entries) if layers.curated.get(n) is None and n in entries]
