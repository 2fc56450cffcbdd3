"""Which layer owns which field, and how the two layers merge: written down here and nowhere else.

- ``model_registry.curated.json`` (human-edited, under git) owns identity, launch settings, roles and
  capabilities. Machine-written install facts are refused there.
- ``model_registry.discovered.json`` (machine-written) owns install facts: where the files are, what
  they are, hashes, lock state and timestamps. It may also carry static fields for entries that no
  human has curated yet.
- The effective entry takes each field from curated when curated sets it, else from discovered, else
  the schema default. Dynamic fields always come from discovered. ``source`` and ``metadata`` merge key
  by key (curated keys win; ``source.commit`` is machine-written).
"""

from __future__ import annotations

import copy
from typing import Any

CURATED = "curated"
DISCOVERED = "discovered"
DEFAULT = "default"

DYNAMIC_FIELDS = frozenset({"download", "artifacts", "version_lock", "performance", "probes"})
DYNAMIC_SUBFIELDS = {"source": frozenset({"commit"})}
MERGED_BY_KEY = frozenset({"source", "metadata"})

# The order of fields in a newly written entry (existing entries keep their own order).
FIELD_ORDER = (
    "name", "display_name", "aliases", "backend", "backend_config", "backend_alternatives", "served_model_id",
    "roles", "role_priority", "capabilities", "capability_options", "family", "format", "quantization", "license", "source",
    "chat_template", "generation_defaults", "flags", "download", "artifacts", "version_lock", "metadata",
)


def dynamic_fields_in(entry: dict[str, Any]) -> list[str]:
    """Machine-written fields present in ``entry`` (dotted paths), i.e. what curated may not hold."""
    found = [k for k in entry if k in DYNAMIC_FIELDS]
    for parent, subs in DYNAMIC_SUBFIELDS.items():
        value = entry.get(parent)
        if isinstance(value, dict):
            found += [f"{parent}.{k}" for k in value if k in subs and value[k] is not None]
    return found


def ordered(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with its keys in :data:`FIELD_ORDER`, unknown keys last in their own order."""
    head = {k: entry[k] for k in FIELD_ORDER if k in entry}
    return head | {k: v for k, v in entry.items() if k not in head}


def merge(curated: dict[str, Any] | None, discovered: dict[str, Any] | None,
          defaults: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The effective entry from the two layers' views of it, and the layer each top-level field came from.

    ``curated`` and ``discovered`` hold only the fields each layer sets. Returns ``(entry, provenance)``
    where provenance maps field -> ``curated`` | ``discovered`` | ``curated+discovered`` | ``default``.
    """
    cur = curated or {}
    disc = discovered or {}
    name = cur.get("name") or disc.get("name")
    entry: dict[str, Any] = {"name": name}
    prov: dict[str, str] = {"name": "+".join(x for x, d in ((CURATED, cur), (DISCOVERED, disc)) if d)}
    for key in list(defaults) + [k for k in (*cur, *disc) if k not in defaults and k != "name"]:
        if key in entry:
            continue
        in_cur = key in cur and key not in DYNAMIC_FIELDS
        in_disc = key in disc
        if key in MERGED_BY_KEY and isinstance(cur.get(key), dict) and isinstance(disc.get(key), dict):
            subs = DYNAMIC_SUBFIELDS.get(key, frozenset())
            # A curated null (how a sub-field curated leaves unset reads after validation) hides nothing.
            entry[key] = disc[key] | {k: v for k, v in cur[key].items()
                                      if k not in subs and not (v is None and disc[key].get(k) is not None)}
            prov[key] = f"{CURATED}+{DISCOVERED}"
        elif in_cur:
            entry[key], prov[key] = cur[key], CURATED
        elif in_disc:
            entry[key], prov[key] = disc[key], DISCOVERED
        else:
            default = defaults[key]
            entry[key] = copy.deepcopy(default) if isinstance(default, (dict, list)) else default
            prov[key] = DEFAULT
    return entry, prov
