"""Finding, loading and calling plugins, so that a broken plugin never takes the CLI down.

Plugins are distributions with an entry point in the group ``imageworks_models``. Each is imported in
its own ``try``; a plugin that fails to import, names a hook that does not exist, or raises inside a
hook is marked ``broken``, reported once as a one-line warning naming its distribution with a fix,
and everything else keeps working. Hook implementations are called one at a time for the same reason
(pluggy aborts a whole hook call when one implementation raises).

Registration order is deterministic: built-ins first, then plugins sorted by distribution name; when
two claim the same source/backend/hasher name, the first keeps it and the second is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

# `--help` imports this module for command_entry_points alone: what only loading or using plugins needs (logging,
# difflib, errors, records: ~10 ms of the start-up) is imported where it is used.
if TYPE_CHECKING:
    from imageworks_models.plugin.records import ArtifactInfo, Backend, Hasher, Source
    from imageworks_models.settings import Settings

ENTRY_POINT_GROUP = "imageworks_models"
COMMANDS_GROUP = "imageworks_models.commands"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
_REGISTER_HOOKS = {"register_sources": "source", "register_backends": "backend", "register_hashers": "hasher"}


def normalize_name(name: str) -> str:
    """How source/backend/hasher names compare: trimmed, lowercase, ``_`` as ``-``."""
    return name.strip().lower().replace("_", "-") if isinstance(name, str) else name


@dataclass
class PluginInfo:
    """What ``imageworks-models plugins`` shows for one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    status: str = "ok"  # ok | broken | disabled
    errors: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "module": self.module, "status": self.status, "errors": list(self.errors),
                "hooks": list(self.hooks), "provides": {k: list(v) for k, v in self.provides.items()}}

    @property
    def label(self) -> str:
        dist = f"{self.distribution} {self.version}" if self.distribution else "built in"
        return f"plugin {self.name!r} ({dist})"

    def fix_hint(self) -> str:
        if not self.distribution:
            return "report this as a bug"
        return (f"upgrade or uninstall it (pip uninstall {self.distribution}), "
                f"or skip it with IMAGEWORKS_DISABLE_PLUGINS={self.name}")


def _allowed(names: Iterable[str | None], settings: "Settings | None") -> bool:
    if settings is None:
        return True
    names = {normalize_name(n) for n in names if n}
    allow = settings.plugins
    deny = {normalize_name(n) for n in settings.disable_plugins}
    if names & deny:
        return False
    return allow is None or bool(names & {normalize_name(n) for n in allow})


def _warn_log(message: str) -> None:
    import logging

    logging.getLogger("imageworks_models").warning(message)


@dataclass(frozen=True)
class _Dist:
    name: str
    version: str | None


@dataclass(frozen=True)
class _EntryPoint:
    """What PluginHost uses of an ``importlib.metadata.EntryPoint``: name, value, dist and ``load()``."""

    name: str
    value: str
    dist: _Dist | None

    def load(self) -> Any:
        import importlib

        module, _, attrs = self.value.partition(":")
        obj = importlib.import_module(module.strip())
        for attr in attrs.split("[", 1)[0].strip().split(".") if attrs.strip() else ():
            obj = getattr(obj, attr)
        return obj


def _entry_points(group: str) -> list[_EntryPoint]:
    """The group's entry points from each distribution's entry_points.txt (see :func:`_declared_entry_points`),
    sorted by distribution, then name: importlib.metadata finds the same ones but costs more to import than
    the rest of a scan's start-up."""
    declared = _declared_entry_points((group,))[group]
    return [_EntryPoint(name, value, _Dist(dist, _VERSIONS.get(normalize_name(dist))))
            for name, value, dist in declared]


_VERSIONS: dict[str, str] = {}  # normalised distribution name -> version, as _declared_entry_points read it


def _declared_entry_points(groups: tuple[str, ...]) -> dict[str, list[tuple[str, str, str]]]:
    """``{group: [(name, value, distribution)]}`` read straight from each installed distribution's
    ``*.dist-info/entry_points.txt`` on ``sys.path`` (the first copy of a distribution wins, as with
    importlib.metadata), sorted as :func:`_entry_points` sorts. Importing importlib.metadata (email, zipfile,
    csv...) costs more than the rest of ``--help``; this reads a few small files instead."""
    import os
    import sys

    out: dict[str, list[tuple[str, str, str]]] = {g: [] for g in groups}
    seen: set[str] = set()
    for folder in sys.path:
        try:
            names = sorted(n for n in os.listdir(folder or ".") if n.endswith(".dist-info"))
        except OSError:
            continue
        for info in names:
            dist = info[:-len(".dist-info")].rsplit("-", 1)[0]
            if normalize_name(dist) in seen:
                continue
            seen.add(normalize_name(dist))
            try:
                with open(os.path.join(folder or ".", info, "entry_points.txt"), encoding="utf-8") as fh:
                    text = fh.read()
            except OSError:
                continue
            group, found = None, []
            for line in text.splitlines():
                line = line.strip()
                if line.startswith("[") and line.endswith("]"):
                    group = line[1:-1].strip()
                elif group in out and "=" in line and not line.startswith(("#", ";")):
                    name, _, value = line.partition("=")
                    found.append((group, name.strip(), value.strip()))
            if found:
                version = info[:-len(".dist-info")].rsplit("-", 1)[-1] if "-" in info else None
                meta = os.path.join(folder or ".", info, "METADATA")
                dist, version = _metadata_name(meta, version) or (dist, version)
                if version:
                    _VERSIONS[normalize_name(dist)] = version
            for group, name, value in found:
                out[group].append((name, value, dist))
    for group in groups:
        out[group].sort(key=lambda ep: (normalize_name(ep[2]), ep[0]))
    return out


def _metadata_name(path: str, version: str | None = None) -> tuple[str, str | None] | None:
    """The ``Name:`` (its spelling as published) and ``Version:`` headers of a distribution's METADATA (the
    version defaults to ``version``, the one in the folder's name), or ``None`` without a name."""
    name = None
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    break  # the headers end at the first blank line
                if line.lower().startswith("name:"):
                    name = line.split(":", 1)[1].strip()
                elif line.lower().startswith("version:"):
                    version = line.split(":", 1)[1].strip()
    except OSError:
        return None
    return (name, version) if name else None


def command_entry_points(settings: "Settings | Callable[[], Settings | None] | None" = None
                         ) -> dict[str, tuple[str, str | None]]:
    """Plugin command names declared in entry-point metadata: ``{name: (module, distribution)}``.

    Read without importing any plugin (or importlib.metadata), so ``--help`` can list plugin commands cheaply.

    Args:
        settings: the settings whose plugin allow/deny lists apply, or a function returning them, called only
            when some distribution declares a command (so ``--help`` reads no config file when none does).

    Returns:
        The allowed plugin commands, by name.
    """
    found: dict[str, tuple[str, str | None]] = {}
    plugin_names: dict[str | None, list[str]] = {}  # allow/deny lists may name the plugin, not its distribution
    declared = _declared_entry_points((ENTRY_POINT_GROUP, COMMANDS_GROUP))
    if not declared[COMMANDS_GROUP]:
        return found
    if callable(settings):
        settings = settings()
    if settings is not None and (settings.plugins is not None or settings.disable_plugins):
        for name, _, dist in declared[ENTRY_POINT_GROUP]:
            plugin_names.setdefault(normalize_name(dist), []).append(name)
    for name, value, dist in declared[COMMANDS_GROUP]:
        if _allowed([dist, *plugin_names.get(normalize_name(dist), [])], settings) and name not in found:
            found[name] = (value, dist)
    return found


class PluginHost:
    """The loaded plugins and everything they registered."""

    def __init__(self, settings: "Settings | None" = None):
        import pluggy

        from imageworks_models.pluginhost import builtins
        from imageworks_models.plugin import hookspecs

        self.settings = settings
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.sources: dict[str, "Source"] = {}
        self.backends: dict[str, "Backend"] = {}
        self.hashers: dict[str, "Hasher"] = {}
        self.owner: dict[tuple[str, str], PluginInfo] = {}
        self.warnings: list[str] = []
        self._by_name: dict[str, PluginInfo] = {}
        self._register(builtins, PluginInfo(name="builtin", module=builtins.__name__))
        for ep in _entry_points(ENTRY_POINT_GROUP):
            self._load_entry_point(ep)
        for hook, kind in _REGISTER_HOOKS.items():
            self._collect(hook, kind)
        self._commands_added: set[int] = set()

    # -- loading -------------------------------------------------------------------------------------
    def _broken(self, info: PluginInfo, problem: str) -> None:
        problem = " ".join(line.strip() for line in problem.splitlines() if line.strip())  # one-line warning
        info.status = "broken"
        info.errors.append(problem)
        message = f"{info.label} is broken: {problem}; {info.fix_hint()}"
        self.warnings.append(message)
        _warn_log(message)

    def _load_entry_point(self, ep) -> None:
        dist = ep.dist.name if ep.dist else None
        info = PluginInfo(name=ep.name, distribution=dist, version=ep.dist.version if ep.dist else None,
                          module=ep.value)
        if ep.name in self._by_name:
            other = self._by_name[ep.name]
            self.plugins.append(info)
            self._broken(info, f"its name is already taken by {other.distribution or 'a built-in'}")
            return
        self.plugins.append(info)
        self._by_name[ep.name] = info
        if not _allowed([ep.name, dist], self.settings):
            info.status = "disabled"
            return
        try:
            obj = ep.load()
        except (Exception, SystemExit) as exc:
            self._broken(info, f"failed to import: {type(exc).__name__}: {exc}")
            return
        self._register(obj, info)

    def _register(self, obj: Any, info: PluginInfo) -> None:
        from pluggy import PluginValidationError

        if info.name == "builtin":
            self.plugins.append(info)
            self._by_name[info.name] = info
        try:
            self.pm.register(obj, name=info.name)
        except (PluginValidationError, ValueError) as exc:
            self._broken(info, f"invalid hook: {exc}")
            return
        try:
            self.pm.check_pending()
        except PluginValidationError as exc:
            self.pm.unregister(name=info.name)

            def has_spec(hook_name: str) -> bool:  # pluggy keeps a spec-less caller for each pending hook
                caller = getattr(self.pm.hook, hook_name, None)
                return caller is not None and caller.has_spec()

            bad = [name for name in dir(obj) if not name.startswith("_") and callable(getattr(obj, name, None))
                   and getattr(getattr(obj, name), f"{ENTRY_POINT_GROUP}_impl", None) is not None
                   and not has_spec(name)]
            known = [n for n in dir(self.pm.hook) if not n.startswith("_") and has_spec(n)]
            hint = ""
            if bad:
                import difflib

                close = difflib.get_close_matches(bad[0], known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
            self._broken(info, f"unknown hook {bad[0] if bad else ''!r}{hint}" if bad else f"{exc}")
            return
        info.hooks = sorted(impl_name for impl_name in dir(self.pm.hook) if not impl_name.startswith("_")
                            and any(i.plugin_name == info.name for i in getattr(self.pm.hook, impl_name).get_hookimpls()))

    def _impls(self, hook: str):
        return [impl for impl in getattr(self.pm.hook, hook).get_hookimpls()
                if self._by_name.get(impl.plugin_name) and self._by_name[impl.plugin_name].status == "ok"]

    def _collect(self, hook: str, kind: str) -> None:
        from imageworks_models.plugin.records import KINDS

        record_type = KINDS[kind]
        table: dict = getattr(self, f"{kind}s")
        for impl in self._impls(hook):
            info = self._by_name[impl.plugin_name]
            collected: list[Any] = []

            def register(record: Any, _kind=kind, _type=record_type) -> None:
                if not isinstance(record, _type):
                    raise TypeError(f"{hook} must register {_type.__name__} records, not {type(record).__name__}")
                collected.append(record)

            try:
                impl.function(**{arg: register for arg in impl.argnames})
            except Exception as exc:
                self._broken(info, f"{hook} raised {type(exc).__name__}: {exc}")
                continue
            for record in collected:
                name = normalize_name(record.name)
                if not isinstance(name, str) or not NAME_RE.match(name):
                    self._warn(f"{info.label} registered a {kind} with an invalid name {record.name!r}; ignored")
                    continue
                if name in table:
                    first = self.owner[(kind, name)]
                    self._warn(f"{kind} {name!r} is registered by both {first.distribution or 'the core'} and "
                               f"{info.distribution or info.name}; keeping {first.distribution or 'the core'}'s. "
                               f"Uninstall one (pip uninstall {info.distribution or info.name}) or disable it "
                               f"with IMAGEWORKS_DISABLE_PLUGINS={info.name}")
                    info.errors.append(f"{kind} {name!r} refused: already registered by "
                                       f"{first.distribution or 'the core'}")
                    continue
                table[name] = record
                self.owner[(kind, name)] = info
                info.provides.setdefault(kind, []).append(name)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        _warn_log(message)

    # -- using ---------------------------------------------------------------------------------------
    def _lookup(self, table: dict[str, Any], name: str, what: str, error: type, hint: str) -> Any:
        key = normalize_name(name)
        if key in table:
            return table[key]
        installed = ", ".join(sorted(table)) or "none"
        raise error(f"no installed plugin provides the {what} {name!r} (installed: {installed})", hint=hint)

    def backend(self, name: str) -> "Backend":
        """The backend registered as ``name``.

        Raises:
            BackendNotFoundError: no loaded plugin provides it (the message lists those that do).
        """
        from imageworks_models.errors import BackendNotFoundError

        return self._lookup(self.backends, name, "backend", BackendNotFoundError,
                            f"install it (pip install imageworks-models-{normalize_name(name)}) or check "
                            "`imageworks-models plugins`")

    def hasher(self, name: str) -> "Hasher":
        """The hasher registered as ``name`` (``sha256`` is built in).

        Raises:
            HasherNotFoundError: no loaded plugin provides it (the message lists those that do).
        """
        hint = ("install it: pip install 'imageworks-models[blake3]'" if normalize_name(name) == "blake3" else
                "check `imageworks-models plugins` for the installed hashers")
        from imageworks_models.errors import HasherNotFoundError

        return self._lookup(self.hashers, name, "hash algorithm", HasherNotFoundError, hint)

    def source_impls(self, ability: str) -> list[tuple["Source", Any]]:
        """``(record, implementation)`` of every source that provides ``ability`` (``scan``, ``fetch``...).

        A source whose ``load()`` raises is reported as a broken plugin and left out.
        """
        found = []
        for name in sorted(self.sources):
            record = self.sources[name]
            if ability not in record.provides or record.load is None:
                continue
            try:
                found.append((record, record.load()))
            except Exception as exc:
                info = self.owner.get(("source", name))
                if info is not None:
                    self._broken(info, f"source {name!r} failed to load: {type(exc).__name__}: {exc}")
        return found

    def inspect_artifact(self, path) -> "ArtifactInfo | None":
        """Ask plugins, in pluggy's call order, to identify ``path``; the first answer wins."""
        for impl in reversed(self._impls("inspect_artifact")):
            try:
                result = impl.function(**{arg: path for arg in impl.argnames})
            except Exception as exc:
                self._broken(self._by_name[impl.plugin_name], f"inspect_artifact raised {type(exc).__name__}: {exc}")
                continue
            if result is not None:
                return result
        return None

    def add_commands(self, cli) -> None:
        """Let every plugin add its click commands to ``cli`` (once per group)."""
        if id(cli) in self._commands_added:
            return
        self._commands_added.add(id(cli))
        for impl in self._impls("register_commands"):
            try:
                impl.function(**{arg: cli for arg in impl.argnames})
            except Exception as exc:
                self._broken(self._by_name[impl.plugin_name], f"register_commands raised {type(exc).__name__}: {exc}")


_hosts: dict[tuple, PluginHost] = {}


def get_plugins(settings: "Settings | None" = None) -> PluginHost:
    """The plugins for ``settings`` (loaded once per process and allow/deny lists).

    Returns:
        A :class:`PluginHost`; broken plugins are in ``host.plugins`` with status ``broken`` and
        their warnings in ``host.warnings``.
    """
    key = (None, ()) if settings is None else (
        tuple(settings.plugins) if settings.plugins is not None else None, tuple(settings.disable_plugins))
    if key not in _hosts:
        _hosts[key] = PluginHost(settings)
    return _hosts[key]


class LazyPlugins:
    """:func:`get_plugins` loaded on first use; a built-in hasher is answered without loading any plugin.

    For commands that may need no plugin at all (``verify`` of sha256 or blake3 manifests): a plugin cannot
    replace a built-in hasher (the core registers first, and the first registration of a name wins), so
    loading every installed plugin to find ``sha256`` would only cost time.
    """

    def __init__(self, settings: "Settings | None" = None):
        self._settings = settings
        self._host: PluginHost | None = None

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            self._host = get_plugins(self._settings)
        return self._host

    def hasher(self, name: str) -> "Hasher":
        """Like :meth:`PluginHost.hasher`."""
        from imageworks_models.pluginhost.hashers import builtin_hashers

        key = normalize_name(name)
        for hasher in builtin_hashers():
            if hasher.name == key:
                return hasher
        return self.host.hasher(name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.host, attr)


def reset_plugins() -> None:
    """Forget loaded plugins (tests install and remove fake plugins between runs)."""
    _hosts.clear()
