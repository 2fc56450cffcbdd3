"""``doctor``: registry-wide checks that no single entry can fail on its own (issue 17 item 7, RELIABILITY B7, B9).

- names that differ only by case or Unicode form across the two layers (``Alpha`` curated, ``alpha``
  discovered): one model the tool would treat as two;
- an alias that is another entry's name, or shared by two entries;
- two entries whose servers would claim one (host, port);
- two entries of one backend that publish one served model id (a client's request could reach either).

The same checks warn at edit time (:func:`warnings_for`) and refuse a save that would create the first kind.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

ORCHESTRATED = ("vllm", "lmdeploy", "llamacpp", "llama.cpp")  # backends whose servers we start on a port
_WILDCARD = ("0.0.0.0", "::", "[::]", "")


@dataclass
class Problem:
    kind: str  # name-case | alias | port | served-id
    entries: list[str]
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "entries": self.entries, "detail": self.detail}


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    checked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "ok": not self.problems, "problems": [p.as_dict() for p in self.problems]}


def fold(name: str) -> str:
    """The form two names must not share: NFKC, case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def name_clashes(curated: list[str], discovered: list[str]) -> list[Problem]:
    """Names of the two layers that differ only by case or Unicode form."""
    first: dict[str, tuple[str, str]] = {}
    out = []
    for layer, names in (("curated", curated), ("discovered", discovered)):
        for name in names:
            key = fold(name)
            seen = first.get(key)
            if seen is None:
                first[key] = (name, layer)
            elif seen[0] != name:
                out.append(Problem("name-case", [seen[0], name],
                                   f"{seen[0]!r} ({seen[1]}) and {name!r} ({layer}) differ only by case or Unicode "
                                   "form: one model, two entries; rename one so both layers use the same name"))
    return out


def _port_of(entry: dict[str, Any]) -> tuple[str, int] | None:
    cfg = entry.get("backend_config") or {}
    port = cfg.get("port")
    if entry.get("backend") not in ORCHESTRATED or cfg.get("base_url") or isinstance(port, bool) \
            or not isinstance(port, int):
        return None
    host = str(cfg.get("host") or "127.0.0.1").strip("[]").lower()
    return ("*" if host in _WILDCARD else "127.0.0.1" if host in ("localhost", "::1") else host), port


def conflicts(entries: dict[str, dict[str, Any]], *, single_port: bool = False) -> list[Problem]:
    """Alias, (host, port) and served-id conflicts among effective ``entries`` (name -> entry).

    With ``single_port`` every orchestrated model shares one port by design (one runs at a time), so ports are
    not compared.
    """
    out: list[Problem] = []
    names = {fold(n): n for n in entries}
    alias_owner: dict[str, str] = {}
    for name, entry in sorted(entries.items()):
        for alias in entry.get("aliases") or ():
            if not isinstance(alias, str):
                continue
            other = names.get(fold(alias))
            if other is not None and other != name:
                out.append(Problem("alias", [name, other], f"{name!r} has the alias {alias!r}, which names the entry "
                                                           f"{other!r}; remove the alias"))
            elif fold(alias) in alias_owner and alias_owner[fold(alias)] != name:
                out.append(Problem("alias", [alias_owner[fold(alias)], name],
                                   f"{alias_owner[fold(alias)]!r} and {name!r} both have the alias {alias!r}"))
            alias_owner.setdefault(fold(alias), name)
    if not single_port:
        by_port: dict[int, list[tuple[str, str]]] = {}
        for name, entry in sorted(entries.items()):
            where = _port_of(entry)
            if where is not None:
                by_port.setdefault(where[1], []).append((where[0], name))
        for port, users in sorted(by_port.items()):
            for i, (host_a, a) in enumerate(users):
                for host_b, b in users[i + 1:]:
                    if host_a == host_b or "*" in (host_a, host_b):
                        out.append(Problem("port", [a, b], f"{a!r} and {b!r} both serve on "
                                                           f"{host_a if host_a != '*' else host_b}:{port}; "
                                                           "give one another backend_config.port"))
    by_served: dict[tuple[str, str], list[str]] = {}
    for name, entry in sorted(entries.items()):
        served = entry.get("served_model_id") or name
        by_served.setdefault((str(entry.get("backend")), fold(str(served))), []).append(name)
    for (backend, served), users in sorted(by_served.items()):
        if len(users) > 1:
            out.append(Problem("served-id", users, f"{', '.join(repr(u) for u in users)} all publish the served id "
                                                   f"{served!r} on {backend}; give each its own served_model_id"))
    return out


def check(*, settings=None) -> Report:
    """Run every check on the registry of ``settings``.

    Raises:
        RegistryError: the registry cannot be read.
    """
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    layers = store_for(settings).load_layers()
    entries, _ = layers.merged()
    report = Report(checked=len(entries))
    report.problems += name_clashes(list(layers.curated.entries), list(layers.discovered.entries))
    clashing = [set(p.entries) for p in report.problems]
    report.problems += [p for p in conflicts(entries, single_port=bool(settings.single_port))
                        if set(p.entries) not in clashing]  # "Alpha"/"alpha" is reported once, as names
    return report


def warnings_for(name: str, candidate: dict[str, Any], entries: dict[str, dict[str, Any]], *,
                 single_port: bool = False) -> list[str]:
    """The conflicts an edit of ``name`` (to the effective ``candidate``) would create, as warning lines."""
    before = {tuple(p.entries) for p in conflicts(entries, single_port=single_port)}
    after = conflicts({**entries, name: candidate}, single_port=single_port)
    return [p.detail for p in after if name in p.entries and tuple(p.entries) not in before]
