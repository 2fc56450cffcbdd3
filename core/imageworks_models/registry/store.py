"""The layered registry on disk: read, validate, merge, and write back safely.

Files (in one registry folder):
    model_registry.curated.json     human-edited, under git; static fields only
    model_registry.discovered.json  machine-written install facts
    model_registry.json             merged snapshot, regenerated on every save; it records the
                                    digests of the two layers it was built from and is only ever
                                    used while those digests still match (a cache, not a source)
    model_registry.checks.json      the last verify of each entry, overlaid on version_lock when read
                                    (see checks.py)
    .model_registry.lock            the writers' lock
    backups/                        timestamped copies taken before migrations and destructive edits

Reading an unchanged registry costs one JSON parse of the snapshot; pydantic is imported only when a
layer changed since the snapshot was written, or for a write.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import os
import unicodedata
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import MutableMapping
from typing import Any, Callable, Iterator

import orjson

from imageworks_models.fs import storage
from imageworks_models.fs.dryrun import dry_run, in_dry_run  # noqa: F401 - dry_run re-exported
from imageworks_models.errors import (ReadOnlyRegistryError, RegistryError, RegistryFileError, RegistryValidationError,
                      SchemaVersionError, StorageError)
from imageworks_models.registry import checks, fields
from imageworks_models.registry.jsonio import DEFAULT_MAX_BYTES, dumps_strict, loads_strict, read_limited
from imageworks_models.registry.state import STATE_FILE, State

SCHEMA_VERSION = 1
CURATED_FILE = "model_registry.curated.json"
DISCOVERED_FILE = "model_registry.discovered.json"
MERGED_FILE = "model_registry.json"
LOCK_FILE = ".model_registry.lock"
BACKUP_DIR = "backups"



def dump_document(entries: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> bytes:
    """A registry file's bytes: ``schema_version`` first, entries sorted by name, 2-space indent,
    one trailing newline, so diffs under git stay small."""
    doc = {"schema_version": SCHEMA_VERSION, **(extra or {}),
           "entries": sorted(entries, key=lambda e: str(e.get("name", "")))}
    return (dumps_strict(doc, path="the registry", indent=2, ensure_ascii=False) + "\n").encode("utf-8")


_ENTRIES_START, _ENTRIES_END = b', "entries": [\n', b"\n]}\n"


def dump_snapshot(entries: list[dict[str, Any]], header: dict[str, Any], *,
                  lines: dict[str, Any] | None = None) -> bytes:
    """The merged snapshot's bytes: the header keys, then one compact entry per line.

    The snapshot is machine-written and large; one entry per line keeps a diff per entry, and orjson writes it
    several times faster than ``json``. Its entries come from layers read strictly or just written with
    :func:`dumps_strict`, so they hold no NaN or Infinity (which orjson would write as null).

    ``lines``: an earlier snapshot's line of each entry that has not changed since (:func:`snapshot_lines`), used
    as it is. It is what ``orjson.dumps`` writes of that entry (orjson writes back what it read of its own
    output byte for byte), so the bytes are the same as writing every entry again, only sooner.
    """
    lines = lines or {}
    try:
        head = orjson.dumps({"schema_version": SCHEMA_VERSION, **header})[:-1]
        body = b",\n".join(lines.get(e.get("name")) or orjson.dumps(e) for e in entries)
    except orjson.JSONEncodeError as exc:
        raise RegistryFileError(MERGED_FILE, f"refusing to write a value JSON cannot hold: {exc}",
                                hint="fix the value (text must be valid Unicode)") from None
    return head + _ENTRIES_START + body + _ENTRIES_END


def snapshot_lines(data: bytes, names: list[str]) -> dict[str, memoryview]:
    """Each entry's line in the snapshot bytes ``data`` by name (``names``: its entries' names, in order), as views
    into ``data`` (13 MB for 5,000 entries: cut into copies, it took longer than writing the entries again), or
    ``{}`` when ``data`` is not laid out as :func:`dump_snapshot` writes it. Compact JSON holds no newline byte (a
    newline in a string is written ``\\n``), so the only ``,`` + newline pairs are the separators."""
    start = data.find(_ENTRIES_START)
    if not names or start < 0 or data.find(b"\n", 0, start) >= 0 or not data.endswith(_ENTRIES_END):
        return {}
    view, pos, end = memoryview(data), start + len(_ENTRIES_START), len(data) - len(_ENTRIES_END)
    out: dict[str, memoryview] = {}
    for name in names:
        if pos > end:  # more names than lines
            return {}
        cut = data.find(b"\n", pos, end)  # a newline, not "," + newline: memchr's speed, commas are everywhere
        if cut < 0:
            out[name], pos = view[pos:end], end + 2
        elif data[cut - 1] == 0x2C:  # ","
            out[name], pos = view[pos:cut - 1], cut + 1
        else:
            return {}
    return out if pos == end + 2 and len(out) == len(names) else {}


def _part_print(raw: Any) -> str:
    """What the snapshot records of one layer's part of an entry (``parts``): 128 bits of the sha256 of its
    compact JSON, key order included, so that a rebuild can tell the entries that did not change ("" for a
    value orjson cannot write: such a part counts as changed)."""
    try:
        return hashlib.sha256(orjson.dumps(raw)).hexdigest()[:32]
    except orjson.JSONEncodeError:
        return ""


_UNREAD = object()  # the snapshot file, not read yet


def _generated_by() -> str:
    """What a snapshot records as its writer: rebuilding from one, or matching against one, needs this version's."""
    from imageworks_models import __version__

    return f"imageworks-models {__version__}"


def _ours(doc: Any) -> bool:
    """Whether the parsed snapshot (or its header) ``doc`` was written by this version, with its fingerprints."""
    return (isinstance(doc, dict) and doc.get("schema_version") == SCHEMA_VERSION
            and doc.get("generated_by") == _generated_by() and isinstance(doc.get("parts"), dict))


class gc_paused:
    """Python's cyclic garbage collector paused for a ``with`` block (as it was, after): reading a registry builds
    hundreds of thousands of objects (parsed JSON), none of them in a cycle, and the collector would walk them
    over and over while they are made (a quarter of the time of reading 5,000 entries), and again while a caller
    indexes them.

    A class, not a generator: nothing is allocated once the collector is back on, so no collection starts before
    the caller can freeze what it read (``gc.freeze()`` in the CLI). The generator form's own exit allocated, and
    the collection that set off walked all 250,000 objects of a 5,000-entry registry: 20 ms of ``list --json``.
    """

    def __enter__(self) -> None:
        self._was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._was:
            gc.enable()


def _gc_paused(method):
    """``method`` run with the collector paused (see :class:`gc_paused`)."""
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        with gc_paused():
            return method(*args, **kwargs)

    return run


def _snapshot_entries(doc: Any, sources: dict[str, str]) -> dict[str, dict[str, Any]] | None:
    """The entries of the parsed snapshot ``doc`` by name when it was built from exactly ``sources``, else None."""
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION or doc.get("sources") != sources:
        return None
    entries = doc.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str)
                                                for e in entries):
        return None
    return {e["name"]: e for e in entries}


def _parts(curated: dict[str, Any], discovered: dict[str, Any]) -> dict[str, list[str | None]]:
    """``{name: [curated print, discovered print]}`` of two layers' raw entries by name (None: no part there)."""
    return {name: [_part_print(curated[name]) if name in curated else None,
                   _part_print(discovered[name]) if name in discovered else None]
            for name in sorted(set(curated) | set(discovered))}


_LOCATE_AT_MOST = 16  # changed entries looked up one by one in an unchanged layer; more: the layer is parsed


def _located_part(data: bytes, name: str, fingerprint: str) -> dict[str, Any] | None:
    """Entry ``name``'s part in the unchanged layer ``data``, cut out of the bytes instead of parsing them all (a
    rebuild after one curated entry was edited needs that entry's part of the 10 MB discovered layer), or None.

    Where the layer is laid out as :func:`dump_document` writes it, each entry is an object whose braces are the
    only ones indented four spaces. What is cut out counts only when it parses to an object of that name whose
    fingerprint is the one the snapshot recorded for this part (:func:`_part_print`), so a layer of any other
    layout gives None (and is parsed whole), never another object.
    """
    needle = b'"name": ' + orjson.dumps(name)
    pos = data.find(needle)
    for _ in range(4):  # the name may also be written elsewhere (an alias of an earlier entry): a few tries
        if pos < 0:
            return None
        start, end = data.rfind(b"\n    {\n", 0, pos), data.find(b"\n    }", pos)
        if start >= 0 and end >= 0:
            try:
                raw = orjson.loads(data[start + 5:end + 6])
            except orjson.JSONDecodeError:
                raw = None
            if isinstance(raw, dict) and raw.get("name") == name and _part_print(raw) == fingerprint:
                return raw
        pos = data.find(needle, pos + 1)
    return None


def _digest(data: bytes | None) -> str:
    return "missing" if data is None else "sha256:" + hashlib.sha256(data).hexdigest()


def _file_digest(path: Path, limit: int) -> str | None:
    """:func:`_digest` of the file at ``path``, hashed in small blocks (no copy of the whole file is made), or None
    where it cannot be read as a layer (not a regular file, larger than ``limit``): the full load says why."""
    try:
        fd = storage.open_regular(path)
    except FileNotFoundError:
        return _digest(None)
    except (OSError, StorageError):
        return None
    with os.fdopen(fd, "rb", buffering=0) as fh:
        if os.fstat(fd).st_size > limit:
            return None
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()


class _HeldSnapshot:
    """The snapshot file kept open after its header was read (:meth:`RegistryStore.match_view`): the rest is read
    only when an entry is asked for, from the very file the header came from (a snapshot is never written in
    place, so a newer one replacing it meanwhile does not mix in)."""

    def __init__(self, fd: int, size: int, path: Path):
        self.size, self.path = size, path
        self._fd, self._closed = fd, weakref.finalize(self, os.close, fd)

    def head(self) -> tuple[bytes, int] | None:
        """The bytes up to and including the entries' start, and where that start is; None: not our layout."""
        data, want = b"", 256 << 10
        while True:
            more = os.pread(self._fd, want, len(data))
            if not more:
                return None
            data += more
            start = data.find(_ENTRIES_START, max(0, len(data) - len(more) - len(_ENTRIES_START)))
            if start >= 0:
                return data, start
            if data.find(b"\n") >= 0:  # the header is one line
                return None
            want *= 2

    def whole(self) -> bytes:
        """The whole file (:meth:`head` reads with ``pread``, so the offset is still at its start); then closed."""
        try:
            return storage.read_descriptor(self._fd)
        finally:
            self._closed()

    def close(self) -> None:
        self._closed()


def _touched(layer: "Layer") -> set[str]:
    """Names of the entries whose content differs from the bytes the layer was loaded from."""
    try:
        before = _parse_layer(layer.kind, layer.path, layer.data).entries if layer.data is not None else {}
    except Exception:  # noqa: BLE001 - an unparsable old file: every entry counts as touched
        before = {}

    def same(name: str) -> bool:
        return json.dumps(before.get(name), sort_keys=True) == json.dumps(layer.entries.get(name), sort_keys=True)

    return {name for name in set(before) | set(layer.entries) if not same(name)}


def _read(path: Path, limit: int = DEFAULT_MAX_BYTES) -> bytes | None:
    try:
        return read_limited(path, limit=limit)
    except FileNotFoundError:
        return None


def _name_key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


@dataclass
class Layer:
    """One registry file held in memory: its raw entries (order and unknown fields kept) by name."""

    kind: str  # fields.CURATED | fields.DISCOVERED
    path: Path
    schema_version: int | None = None  # None: no file yet; 0: the earlier tool's list format
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level keys, kept
    data: bytes | None = None  # the bytes read
    read_only: str | None = None  # why this layer may not be written
    views: dict[str, dict[str, Any]] = field(default_factory=dict)  # validated, only fields set
    _baseline: str | None = None
    _loaded_names: set[str] = field(default_factory=set)
    # name -> (the entry as compact JSON, its view) for entries validated since load: a save
    # re-validates only entries that changed (pydantic on big artifact manifests is the slow part).
    _validated: dict[str, tuple[str, dict[str, Any], tuple[str, bool]]] = field(default_factory=dict)
    # The entries exactly as the file holds them, by name (None for a legacy file): what the snapshot's
    # fingerprints (``parts``) are taken of.
    _as_read: dict[str, dict[str, Any]] | None = None

    # -- editing -------------------------------------------------------------------------------------
    def get(self, name: str) -> dict[str, Any] | None:
        return self.entries.get(name)

    def put(self, entry: dict[str, Any]) -> None:
        """Add or replace ``entry`` (a dict with at least ``name``); validated when saved."""
        name = entry.get("name")
        if not isinstance(name, str):
            raise ValueError("an entry needs a string 'name'")
        self.entries[name] = entry if name in self.entries else fields.ordered(entry)

    def remove(self, name: str) -> dict[str, Any] | None:
        return self.entries.pop(name, None)

    # -- serialising ---------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        return dump_document(list(self.entries.values()), self.extra)

    @property
    def legacy(self) -> bool:
        return self.schema_version == 0

    def _fingerprint(self) -> str:
        # Compact JSON goes through the C encoder: far cheaper than to_bytes() (indent forces the
        # pure-Python one) and just as exact, key order included.
        return json.dumps([self.extra, list(self.entries.values())], ensure_ascii=False, separators=(",", ":"))

    def mark_clean(self) -> None:
        self._baseline = self._fingerprint()
        self._loaded_names = set(self.entries)

    @property
    def changed(self) -> bool:
        """True when the entries differ from what was loaded."""
        return self._fingerprint() != self._baseline


def _parse_layer(kind: str, path: Path, data: bytes | None) -> Layer:
    layer = Layer(kind=kind, path=path, data=data)
    if data is None:
        return layer
    where = str(path)
    doc = loads_strict(data, where)
    if isinstance(doc, list):
        from imageworks_models.registry.legacy import migrate_entry

        layer.schema_version = 0
        raw_entries = doc
        converted = [migrate_entry(e) if isinstance(e, dict) else e for e in raw_entries]
    elif isinstance(doc, dict):
        if "schema_version" not in doc:
            raise SchemaVersionError(f"{where}: no \"schema_version\"",
                                     hint=f'add "schema_version": {SCHEMA_VERSION} as the first key')
        version = doc["schema_version"]
        if type(version) is not int or version < 1:
            raise SchemaVersionError(f"{where}: schema_version must be a whole number >= 1, not {version!r}",
                                     hint=f'write "schema_version": {SCHEMA_VERSION}')
        layer.schema_version = version
        if version > SCHEMA_VERSION:
            layer.read_only = (f"{where} has schema_version {version}, newer than this imageworks-models "
                               f"understands ({SCHEMA_VERSION}); it is read-only here")
        raw_entries = doc.get("entries")
        if not isinstance(raw_entries, list):
            raise RegistryFileError(where, '"entries" must be a list of entry objects',
                                    hint='write "entries": [] for an empty layer')
        layer.extra = {k: v for k, v in doc.items() if k not in ("schema_version", "entries")}
        converted = raw_entries
    else:
        raise RegistryFileError(where, f"the top level must be an object with \"entries\", not {type(doc).__name__}",
                                hint=f'write {{"schema_version": {SCHEMA_VERSION}, "entries": [...]}}')
    _validate_into(layer, converted)
    if not layer.legacy:  # validated: every entry is an object with a unique name
        layer._as_read = {e["name"]: e for e in raw_entries}
    return layer


def _entry_label(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"entries[{index}]" + (f" ({name!r})" if isinstance(name, str) else "")


def _folded(raw: dict[str, Any]) -> dict[str, Any]:
    """An entry as a layer holds it: its capability synonyms folded (read, never written back)."""
    if "capabilities" not in raw:
        return raw
    from imageworks_models.registry import capabilities as caps

    folded, unknown, options = caps.normalize(raw["capabilities"])
    if unknown or not isinstance(folded, dict):
        return raw  # validation says what is wrong
    raw = {**raw, "capabilities": folded}
    if options:
        existing = raw.get("capability_options")
        existing = existing if isinstance(existing, dict) else {}
        raw = fields.ordered({**raw, "capability_options": options | existing})
    return raw


def _validate_into(layer: Layer, raw_entries: list[Any]) -> None:
    """Validate every entry, fill ``layer.entries`` and ``layer.views``; report all problems at once."""
    from pydantic import ValidationError

    from imageworks_models.registry.schema import Entry

    problems: list[str] = []
    seen: dict[str, int] = {}
    seen_folded: dict[str, tuple[int, str]] = {}
    entries: dict[str, dict[str, Any]] = {}
    views: dict[str, dict[str, Any]] = {}
    validated: dict[str, tuple[str, dict[str, Any], tuple[str, bool]]] = {}
    for index, raw in enumerate(raw_entries):
        label = _entry_label(index, raw)
        if not isinstance(raw, dict):
            problems.append(f"{label}: must be an object, not {type(raw).__name__}")
            continue
        raw = _folded(raw)
        try:
            print_ = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError):
            print_ = None  # not JSON: validation below says what is wrong
        raw_name = raw.get("name")
        cached = layer._validated.get(raw_name) if print_ is not None and isinstance(raw_name, str) else None
        if cached is not None and cached[0] == print_ and (layer.kind, layer.legacy) == cached[2]:
            name = raw["name"]
            if name in seen or _name_key(name) in seen_folded:
                cached = None  # let the full path below report the duplicate
            else:
                seen[name] = index
                seen_folded[_name_key(name)] = (index, name)
                entries[name], views[name] = raw, cached[1]
                validated[name] = cached
                continue
        try:
            model = Entry.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
                problems.append(f"{label}{loc}: {err['msg']}")
            continue
        if layer.kind == fields.CURATED and not layer.legacy:
            for dyn in fields.dynamic_fields_in(raw):
                problems.append(f"{label}.{dyn}: machine-written field in the curated layer; "
                                f"it belongs in {DISCOVERED_FILE} (move it there or delete it)")
        name = model.name
        if name in seen:
            problems.append(f"{label}: duplicate name {name!r} (also entries[{seen[name]}])")
            continue
        folded_name = _name_key(name)
        if folded_name in seen_folded:
            other_index, other = seen_folded[folded_name]
            problems.append(f"{label}: name {name!r} differs from {other!r} (entries[{other_index}]) only by "
                            "case or Unicode form; names must be unique ignoring both")
            continue
        seen[name] = index
        seen_folded[folded_name] = (index, name)
        full = model.model_dump(mode="json")
        set_keys = model.model_fields_set | set(model.model_extra or {})
        entries[name] = raw
        views[name] = {k: full[k] for k in raw if k in set_keys and k in full}
        if print_ is not None:
            validated[name] = (print_, views[name], (layer.kind, layer.legacy))
    if problems:
        hint = None
        if layer.read_only:
            hint = "this file was written by a newer imageworks-models: upgrade (pip install -U imageworks-models)"
        raise RegistryValidationError(str(layer.path), problems, hint=hint)
    layer.entries = entries
    layer.views = views
    layer._validated = validated


@dataclass
class Layers:
    """Both layers of a registry, parsed and validated: the input of every write."""

    curated: Layer
    discovered: Layer
    state: "State | None" = None  # model_registry.state.json, loaded by RegistryStore.edit (see state.py)

    def __post_init__(self) -> None:
        if self.curated.legacy:
            self._move_legacy_dynamic_fields()
        self.curated.mark_clean()
        self.discovered.mark_clean()

    def _move_legacy_dynamic_fields(self) -> None:
        # The earlier tool mixed install facts into curated; on migration they move to discovered.
        for name, raw in self.curated.entries.items():
            moved = {k: raw[k] for k in fields.DYNAMIC_FIELDS if k in raw}
            if not moved:
                continue
            target = self.discovered.entries.setdefault(name, {"name": name})
            view = self.discovered.views.setdefault(name, {"name": name})
            for key, value in moved.items():
                target.setdefault(key, value)
                view.setdefault(key, self.curated.views[name].get(key, value))
                del raw[key]
                self.curated.views[name].pop(key, None)

    def names(self) -> list[str]:
        return sorted(set(self.curated.entries) | set(self.discovered.entries))

    def forget_discovered(self, name: str, effective: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Remove ``name``'s discovered part, keeping its lock and source in the state file (when the layers
        came from :meth:`RegistryStore.edit`) so that rediscovering the same files restores them."""
        part = self.discovered.get(name)
        if part is not None and self.state is not None:
            from imageworks_models.registry.identity import files_path

            effective = effective or part
            self.state.remember(part, effective, path=files_path(effective))
        return self.discovered.remove(name)

    def put_found(self, entry: dict[str, Any]) -> None:
        """Put a discovered-layer entry for found files; a new one gets back what the state file remembered
        of the same files (its lock, its source)."""
        from imageworks_models.registry.identity import is_store_reference
        from imageworks_models.registry.state import restore

        if self.state is not None and self.discovered.get(entry["name"]) is None:
            path = (entry.get("download") or {}).get("path")
            local = path if isinstance(path, str) and path and not is_store_reference(path) else None
            entry = restore(entry, self.state.recall(entry["name"], local))
        self.discovered.put(entry)

    def merged(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
        """Effective entries by name (sorted) and the provenance of each field."""
        names = self.names()
        if not names:
            return {}, {}  # an empty registry (a first scan's): no need to import pydantic for the defaults
        from imageworks_models.registry.schema import defaults

        base = defaults()
        entries: dict[str, dict[str, Any]] = {}
        provenance: dict[str, dict[str, str]] = {}
        for name in names:
            entries[name], provenance[name] = fields.merge(self.curated.views.get(name),
                                                           self.discovered.views.get(name), base)
        return entries, provenance

    def check_effective(self, entries: dict[str, dict[str, Any]], *, names: bool = False) -> None:
        problems = [f"{name!r}: no backend in either layer (set \"backend\" in {CURATED_FILE})"
                    for name, e in entries.items() if not e.get("backend")]
        if names:  # a write may not create "Alpha" in one layer beside "alpha" in the other (B7)
            from imageworks_models.registry.doctor import name_clashes

            old = {("curated", n) for n in self.curated._loaded_names} | {
                ("discovered", n) for n in self.discovered._loaded_names}
            for clash in name_clashes(list(self.curated.entries), list(self.discovered.entries)):
                a, b = clash.entries  # the curated-side name first (name_clashes walks curated, then discovered)
                if ("curated", a) not in old or ("discovered", b) not in old:
                    problems.append(clash.detail)
        if problems:
            raise RegistryValidationError(str(self.curated.path.parent), problems,
                                          hint="every effective entry needs a backend")


class _Lazy(MutableMapping):
    """A mapping whose values are read the first time they are asked for: ``_names`` says which keys there are,
    ``_read(name)`` makes the value. Looking one up reads that one; anything that walks it reads them all.

    Not a ``dict`` subclass on purpose: ``json``/``orjson`` and ``==`` read a dict subclass's own storage, so
    they would see only the values read so far; a mapping they refuse (or compare through its items) cannot
    silently lose entries. Every method a dict caller uses is the mapping's, so each one goes through here."""

    _names: Any

    def __init__(self) -> None:
        self._got: dict[str, Any] = {}
        self._gone: set[str] = set()

    def _read(self, name: str) -> Any:
        raise NotImplementedError

    def _known(self, name: object) -> bool:
        return name in self._got or (name in self._names and name not in self._gone)

    def __getitem__(self, name: str) -> Any:
        if name in self._got:
            return self._got[name]
        if not self._known(name):
            raise KeyError(name)
        value = self._got[name] = self._read(name)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        self._got[name] = value

    def __delitem__(self, name: str) -> None:
        if not self._known(name):
            raise KeyError(name)
        self._got.pop(name, None)
        self._gone.add(name)

    def __contains__(self, name: object) -> bool:
        return self._known(name)

    def __iter__(self) -> Iterator[str]:
        names = [n for n in self._names if n not in self._gone]
        return iter(names + [n for n in self._got if n not in self._names or n in self._gone])

    def __len__(self) -> int:
        return sum(1 for _ in self.__iter__())

    def copy(self) -> dict[str, Any]:
        """Every entry, read, in a plain dict (as ``dict.copy`` gives)."""
        return {name: self[name] for name in self}

    __copy__ = copy

    def __deepcopy__(self, memo: dict) -> dict[str, Any]:
        import copy

        return copy.deepcopy(self.copy(), memo)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} entries, {len(self._got)} read>"


class _LazyEntries(_Lazy):
    """A current snapshot's entries by name, each parsed from its line (:func:`snapshot_lines`) with its recorded
    checks put in, as :meth:`RegistryStore.load` gives it. An entry set here (one planned in a scan) is kept."""

    def __init__(self, held: "_HeldSnapshot", names: dict[str, Any], records: dict[str, dict[str, Any]]):
        super().__init__()
        self._held, self._names, self._records, self._lines = held, names, records, None

    def _read(self, name: str) -> dict[str, Any]:
        if self._lines is None:  # read on the first entry asked for: a scan of unregistered folders needs none
            self._lines = snapshot_lines(self._held.whole(), list(self._names))
            if len(self._lines) != len(self._names):
                raise RegistryFileError(str(self._held.path), "is damaged: its entries do not match its header",
                                        hint="delete it; the next read writes it again")
        one = {name: orjson.loads(self._lines[name])}
        if name in self._records:
            checks.overlay(one, {name: self._records[name]})
        return one[name]


class _LazyCurated(_Lazy):
    """The curated parts by name (what :meth:`RegistryStore.curated_parts` gives), each cut out of the unchanged
    curated layer (:func:`_located_part`), or all of them parsed at once where that fails (another layout)."""

    def __init__(self, data: bytes | None, prints: dict[str, str]):
        super().__init__()
        self._data, self._names = data, prints

    def _read(self, name: str) -> dict[str, Any]:
        raw = _located_part(self._data, name, self._names[name]) if self._data is not None else None
        if raw is not None:
            return _folded(raw)
        for entry in orjson.loads(self._data)["entries"]:  # its bytes were read strictly when the snapshot was made
            if entry.get("name") in self._names and entry["name"] not in self._got and entry["name"] not in self._gone:
                self._got[entry["name"]] = _folded(entry)
        return self._got[name]


@dataclass
class MatchView:
    """What matching found files to entries needs (:class:`~imageworks_models.registry.identity.Index`), from a
    current snapshot without parsing its entries: each entry's :func:`~imageworks_models.registry.identity.identity_row`
    (``rows``), the entries (``entries``) and curated parts (``curated``) read only when asked for. A rescan of
    1,000 folders against 5,000 other entries reads none of them. Made by :meth:`RegistryStore.match_view`."""

    store: "RegistryStore"
    rows: dict[str, list[Any]]
    entries: dict[str, dict[str, Any]]
    curated: dict[str, dict[str, Any]]


@dataclass
class Registry:
    """A read-only view of the effective entries.

    Entries are plain JSON-shaped dicts (see the README's "Entry" shape); treat them as read-only and
    change the registry through :meth:`RegistryStore.edit`.
    """

    directory: Path
    entries: dict[str, dict[str, Any]]
    store: "RegistryStore"
    from_snapshot: bool = False
    _layers: Layers | None = None
    _provenance: dict[str, dict[str, str]] | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, name: str) -> dict[str, Any]:
        """The effective entry ``name`` refers to: its name (any case), an alias, its served model id, its
        Hugging Face repo id, or a unique prefix of its name (see :func:`imageworks_models.registry.identity.resolve`).

        Raises:
            AmbiguousNameError: several entries answer to ``name``; they are listed.
            EntryNotFoundError: none does; the message suggests close names.
        """
        from imageworks_models.registry.identity import resolve

        return resolve(self.entries, name, where=str(self.directory))

    def find(self, name: str) -> dict[str, Any] | None:
        """The entry with exactly this name, else the one with this alias, served id or repo id (any case),
        else ``None`` (no prefix matching; ``None`` too when several entries answer)."""
        if name in self.entries:
            return self.entries[name]
        from imageworks_models.registry.identity import _candidates

        hits, how = _candidates(self.entries, name)
        return self.entries[hits[0]] if len(hits) == 1 and how != "prefix" else None

    @property
    def layers(self) -> Layers:
        if self._layers is None:
            self._layers = self.store.load_layers()
        return self._layers

    def provenance(self, name: str) -> dict[str, str]:
        """Which layer each top-level field of ``name`` came from."""
        if self._provenance is None:
            _, self._provenance = self.layers.merged()
        return self._provenance[self.get(name)["name"]]

    def model(self, name: str):
        """The entry as a validated :class:`~imageworks_models.registry.schema.Entry`."""
        from imageworks_models.registry.schema import Entry

        return Entry.model_validate(self.get(name))


class RegistryStore:
    """The registry folder: loading (with the snapshot cache) and locked, atomic editing."""

    def __init__(self, directory: Path | str, *, lock_timeout: float = 30.0, backup_keep: int = 10,
                 audit_dir: Path | str | None = None, max_json_bytes: int = DEFAULT_MAX_BYTES):
        self.directory = Path(directory)
        self.max_json_bytes = max_json_bytes  # a larger layer is refused (B15, B17)
        self.lock_timeout = lock_timeout
        self.backup_keep = backup_keep
        self.audit_dir = Path(audit_dir) if audit_dir is not None else None  # None: no audit trail

    @property
    def curated_path(self) -> Path:
        return self.directory / CURATED_FILE

    @property
    def discovered_path(self) -> Path:
        return self.directory / DISCOVERED_FILE

    @property
    def merged_path(self) -> Path:
        return self.directory / MERGED_FILE

    @property
    def lock_path(self) -> Path:
        return self.directory / LOCK_FILE

    @property
    def backup_dir(self) -> Path:
        return self.directory / BACKUP_DIR

    # -- reading -------------------------------------------------------------------------------------
    @_gc_paused
    def load_layers(self) -> Layers:
        """Parse and validate both layers (no cache).

        Raises:
            RegistryFileError, SchemaVersionError, RegistryValidationError: a layer is not valid.
        """
        return Layers(_parse_layer(fields.CURATED, self.curated_path, _read(self.curated_path, self.max_json_bytes)),
                      _parse_layer(fields.DISCOVERED, self.discovered_path, _read(self.discovered_path, self.max_json_bytes)))

    def curated_parts(self) -> dict[str, dict[str, Any]]:
        """The curated layer's entries by name, parsed and validated without the (often much larger)
        discovered layer: what matching found files to entries needs to know of the curated layer.

        Raises:
            RegistryFileError, SchemaVersionError, RegistryValidationError: the curated layer is not valid.
        """
        return dict(_parse_layer(fields.CURATED, self.curated_path,
                                 _read(self.curated_path, self.max_json_bytes)).entries)

    @_gc_paused
    def load(self, *, use_snapshot: bool = True) -> Registry:
        """The effective registry.

        Uses the merged snapshot when it was built from exactly the current bytes of both layers;
        otherwise parses, validates and merges the layers and refreshes the snapshot if it can do so
        without waiting (a read never blocks on, or fails because of, a writer).

        Raises:
            RegistryFileError, SchemaVersionError, RegistryValidationError: a layer is not valid.
        """
        if not self.directory.is_dir():
            raise RegistryError(f"the registry folder {self.directory} does not exist",
                                hint="check --registry-dir / IMAGEWORKS_REGISTRY_DIR, or create the folder")
        cur = _read(self.curated_path, self.max_json_bytes)
        disc = _read(self.discovered_path, self.max_json_bytes)
        sources = {CURATED_FILE: _digest(cur), DISCOVERED_FILE: _digest(disc)}
        snapshot = _UNREAD
        if use_snapshot:
            snapshot, snapshot_data = self._snapshot_read()
            entries = _snapshot_entries(snapshot, sources)
            if entries is not None:
                self.overlay_checks(entries)
                return Registry(self.directory, entries, self, from_snapshot=True)
            registry = self._rebuilt(snapshot, cur, disc, sources, snapshot_data=snapshot_data)
            del snapshot_data
            if registry is not None:
                self.overlay_checks(registry.entries)  # the checks file is not in the snapshot
                return registry
        layers = Layers(_parse_layer(fields.CURATED, self.curated_path, cur),
                        _parse_layer(fields.DISCOVERED, self.discovered_path, disc))
        entries, provenance = layers.merged()
        layers.check_effective(entries)
        if not (layers.curated.legacy or layers.discovered.legacy
                or layers.curated.read_only or layers.discovered.read_only):
            self._refresh_snapshot(entries, sources, _parts(layers.curated._as_read or {},
                                                            layers.discovered._as_read or {}), existing=snapshot)
        self.overlay_checks(entries)  # after the snapshot: it holds the layers alone
        return Registry(self.directory, entries, self, _layers=layers, _provenance=provenance)

    def match_view(self) -> MatchView | None:
        """:class:`MatchView` of the registry when its snapshot is current (built from exactly the layers' bytes,
        by this version, with identity rows), else None: the caller then loads the registry (:meth:`load`), which
        also reports whatever is wrong with a layer."""
        if not self.directory.is_dir():
            return None
        try:
            fd = storage.open_regular(self.merged_path)
        except (OSError, StorageError):
            return None
        held = _HeldSnapshot(fd, os.fstat(fd).st_size, self.merged_path)
        view = None
        try:
            view = self._view_of(held)
        except RegistryFileError:
            return None
        finally:
            if view is None:
                held.close()
        return view

    def _view_of(self, held: _HeldSnapshot) -> MatchView | None:
        # The curated layer is read (its parts are cut out of it when asked for); the discovered one only hashed;
        # of the snapshot only the header (the entries' identity rows), the rest when an entry is asked for.
        if held.size > self.max_json_bytes:
            return None
        found = held.head()
        if found is None:
            return None
        data, start = found
        try:
            head = orjson.loads(data[:start] + b"}")
        except orjson.JSONDecodeError:
            return None
        cur = _read(self.curated_path, self.max_json_bytes)
        sources = {CURATED_FILE: _digest(cur),
                   DISCOVERED_FILE: _file_digest(self.discovered_path, self.max_json_bytes)}
        if not (_ours(head) and head.get("sources") == sources and isinstance(head.get("identity"), dict)):
            return None
        rows, parts = head["identity"], head["parts"]
        if not all(isinstance(r, list) and len(r) == 4 for r in rows.values()) or set(parts) != set(rows):
            return None
        if not all(isinstance(part, list) and len(part) == 2 and part[0] != "" for part in parts.values()):
            return None  # a curated part without a fingerprint: the full load reads it
        records, _ = checks.load(self.checks_path, limit=self.max_json_bytes)
        prints = {name: part[0] for name, part in parts.items() if part[0] is not None}
        return MatchView(self, rows, _LazyEntries(held, rows, records or {}), _LazyCurated(cur, prints))

    # -- verify's check records (checks.py) ----------------------------------------------------------
    @property
    def checks_path(self) -> Path:
        return self.directory / checks.CHECKS_FILE

    def overlay_checks(self, entries: dict[str, dict[str, Any]]) -> None:
        """Put the newest recorded verify of each entry into its ``version_lock`` (see checks.py)."""
        records, _ = checks.load(self.checks_path, limit=self.max_json_bytes)
        if records:
            checks.overlay(entries, records)

    def record_checks(self, build: "Callable[[dict[str, dict[str, Any]]], dict[str, dict[str, Any]]]", *,
                      loaded: Registry | None = None) -> set[str] | None:
        """Record verify's checks in the checks file, under the registry lock, atomically.

        ``build(entries)`` gets the effective entries as they are now (under the lock) and returns the new
        records by name (each with ``expected`` and the ``version_lock`` keys in :data:`checks.KEYS`).
        Records of entries that are gone are dropped. ``loaded``: the registry the caller read, whose entries
        are used instead of reading the layers again (see the comment in the body).

        Returns:
            The names recorded, or ``None`` when the checks file cannot be read (it is left as it is).

        Raises:
            LockTimeoutError: another writer held the lock for ``lock_timeout`` seconds.
            StorageError: the write failed; the file is unchanged.
        """
        if in_dry_run():
            raise RuntimeError(f"a dry run tried to record checks in {self.directory}")
        with storage.file_lock(self.lock_path, timeout=self.lock_timeout, what=f"the registry in {self.directory}",
                               folder=True):
            records, data = checks.load(self.checks_path, limit=self.max_json_bytes)
            if records is None:
                return None
            if loaded is not None:
                # No second read of the layers: a record only ever applies to an entry whose expected aggregate
                # is still the one it names, so one made from a registry changed meanwhile can mislead no read.
                entries = dict(loaded.entries)
                checks.overlay(entries, records)
            else:
                entries = self.load().entries
            new = build(entries)
            if not new:
                return set()
            kept = {name: r for name, r in records.items() if name in entries}
            kept.update(new)
            storage.atomic_write(self.checks_path, checks.to_bytes(kept), expect=data)
            return set(new)

    def _snapshot_doc(self) -> Any:
        """The snapshot file parsed (leniently: it is ours), or None when it is missing, unreadable or not JSON."""
        return self._snapshot_read()[0]

    def _snapshot_read(self) -> tuple[Any, bytes | None]:
        """:meth:`_snapshot_doc`, and the bytes it was parsed from (None where there is no document)."""
        try:  # the snapshot is only a cache: whatever is wrong with it, it is ignored, never an error
            data = _read(self.merged_path, self.max_json_bytes)
        except RegistryFileError:
            return None, None
        if data is None:
            return None, None
        try:
            return orjson.loads(data), data
        except orjson.JSONDecodeError:
            return None, None

    def _snapshot_entries(self, sources: dict[str, str]) -> dict[str, dict[str, Any]] | None:
        return _snapshot_entries(self._snapshot_doc(), sources)

    def _rebuilt(self, snapshot: Any, cur: bytes | None, disc: bytes | None,
                 sources: dict[str, str], *, snapshot_data: bytes | None = None) -> Registry | None:
        """The effective registry rebuilt from a snapshot of earlier bytes of the layers (a layer changed since).

        An entry whose parts in both layers are what the snapshot was built from (its ``parts`` fingerprints) is
        taken from it as it is; the others are validated and merged exactly as a full load does them, and the
        snapshot is rewritten for the current bytes. Both layers are still parsed strictly, and the names checked
        for duplicates, in full.

        Returns:
            The registry, or None where this cannot serve: no snapshot of this version with fingerprints, a layer
            of another shape or schema version (legacy, newer), duplicate or missing names, or a problem in a
            changed entry. The full load then reads everything and reports each problem with its place.
        """
        if not (_ours(snapshot) and isinstance(snapshot.get("entries"), list)):
            return None
        known, built_from = snapshot["parts"], snapshot.get("sources")
        built_from = built_from if isinstance(built_from, dict) else {}
        files = ((self.curated_path, cur), (self.discovered_path, disc))
        # Each layer's raw entries by name; None for a layer whose bytes the snapshot was built from (read strictly
        # and validated then): its parts are the recorded ones, and it is parsed only if a changed entry has a part there.
        as_read: list[dict[str, dict[str, Any]] | None] = []
        for path, data in files:
            by_name: dict[str, dict[str, Any]] = {}
            if data is not None and built_from.get(path.name) == sources[path.name]:
                as_read.append(None)
                continue
            if data is not None:
                doc = loads_strict(data, str(path))  # a file that is not strict JSON is refused right here
                version = doc.get("schema_version") if isinstance(doc, dict) else None
                if type(version) is not int or version != SCHEMA_VERSION or not isinstance(doc.get("entries"), list):
                    return None
                for raw in doc["entries"]:
                    name = raw.get("name") if isinstance(raw, dict) else None
                    if not isinstance(name, str) or name in by_name:
                        return None
                    by_name[name] = raw
                if len({_name_key(name) for name in by_name}) != len(by_name):
                    return None
            as_read.append(by_name)
        previous: dict[str, dict[str, Any]] = {}
        for entry in snapshot["entries"]:
            if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)):
                return None
            previous[entry["name"]] = entry
        prints: list[dict[str, str]] = []
        for k, by_name in enumerate(as_read):
            if by_name is not None:
                prints.append({name: _part_print(raw) for name, raw in by_name.items()})
                continue
            if not all(isinstance(part, list) and len(part) == 2 for part in known.values()):
                return None
            prints.append({name: part[k] for name, part in known.items() if part[k] is not None})
        parts = {name: [prints[0].get(name), prints[1].get(name)] for name in sorted(prints[0].keys() | prints[1])}
        changed = [name for name, part in parts.items()
                   if name not in previous or known.get(name) != part or "" in part]
        for k, (path, data) in enumerate(files):
            if as_read[k] is None:  # unchanged bytes, strictly read before: a plain parse gives the same values
                needed = [name for name in changed if parts[name][k] is not None] if data is not None else []
                found = {name: _located_part(data, name, parts[name][k]) for name in needed[:_LOCATE_AT_MOST]}
                if len(needed) > _LOCATE_AT_MOST or None in found.values():
                    found = {e["name"]: e for e in orjson.loads(data)["entries"]}
                as_read[k] = found
        curated_raw, discovered_raw = as_read
        checker = Layers(Layer(kind=fields.CURATED, path=self.curated_path),
                         Layer(kind=fields.DISCOVERED, path=self.discovered_path))
        merged: dict[str, dict[str, Any]] = {}
        if changed:
            curated = Layer(kind=fields.CURATED, path=self.curated_path, data=cur, schema_version=SCHEMA_VERSION)
            discovered = Layer(kind=fields.DISCOVERED, path=self.discovered_path, data=disc,
                               schema_version=SCHEMA_VERSION)
            try:
                _validate_into(curated, [curated_raw[n] for n in changed if n in curated_raw])
                _validate_into(discovered, [discovered_raw[n] for n in changed if n in discovered_raw])
            except RegistryValidationError:
                return None
            merged, _ = Layers(curated, discovered).merged()
        entries = {name: merged[name] if name in merged else previous[name] for name in parts}
        try:
            checker.check_effective(entries)
        except RegistryValidationError:
            return None
        lines: dict[str, Any] = {}
        identity: dict[str, list[Any]] = {}
        if snapshot_data is not None:  # the unchanged entries' lines and identity rows are written as they were
            unchanged = set(parts).difference(changed)
            lines = {name: line for name, line in snapshot_lines(snapshot_data, list(previous)).items()
                     if name in unchanged}
            known = snapshot.get("identity")
            if isinstance(known, dict):
                identity = {name: known[name] for name in unchanged if name in known}
        self._refresh_snapshot(entries, sources, parts, existing=snapshot, lines=lines, identity=identity)
        return Registry(self.directory, entries, self)

    def _snapshot_bytes(self, entries: dict[str, dict[str, Any]], sources: dict[str, str],
                        parts: dict[str, list[str | None]] | None = None, *,
                        lines: dict[str, Any] | None = None,
                        identity: dict[str, list[Any]] | None = None) -> bytes:
        from imageworks_models.registry.identity import identity_row

        header: dict[str, Any] = {"generated_by": _generated_by(), "sources": sources}
        if parts is not None:
            header["parts"] = parts
        # What matching needs of each entry, in the entries' order (see match_view)
        known = identity or {}
        header["identity"] = {name: known.get(name) or identity_row(e) for name, e in entries.items()}
        return dump_snapshot(list(entries.values()), header, lines=lines)

    def _refresh_snapshot(self, entries: dict[str, dict[str, Any]], sources: dict[str, str],
                          parts: dict[str, list[str | None]] | None = None, *, existing: Any = _UNREAD,
                          lines: dict[str, Any] | None = None, identity: dict[str, list[Any]] | None = None) -> None:
        """Write the snapshot for ``sources`` unless another holds the lock now (``existing``: the snapshot file as
        :meth:`_snapshot_doc` parsed it, when the caller did; ``lines``: see :func:`dump_snapshot`). Without a
        fsync: it is a cache, checked against the layers whenever it is read."""
        if in_dry_run():
            return
        if self.merged_path.exists() and not self.merged_path.is_file():
            return  # not ours to replace; a write reports it
        if existing is _UNREAD:
            existing = self._snapshot_doc() if self.merged_path.exists() else None
        if existing is not None and not isinstance(existing, dict):
            return  # the earlier tool's snapshot: replaced on the first real write, after a backup
        if not os.access(self.directory, os.W_OK):
            return
        with contextlib.suppress(StorageError):
            with storage.file_lock(self.lock_path, timeout=0, folder=True):
                storage.atomic_write(self.merged_path,
                                     self._snapshot_bytes(entries, sources, parts, lines=lines, identity=identity),
                                     durable=False)

    # -- writing -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def edit(self, *, backup: bool = False, backup_label: str = "") -> Iterator[Layers]:
        """Lock the registry, load fresh layers, let the caller change them, then save what changed.

        Everything happens under one lock, so concurrent editors never lose each other's updates.
        If the body raises, nothing is written. Legacy files are migrated (after a backup) on the
        first write.

        Args:
            backup: take a timestamped backup of each changed layer first.
            backup_label: a word added to the backup names (e.g. the command's name).

        Raises:
            LockTimeoutError: another writer held the lock for ``lock_timeout`` seconds.
            ReadOnlyRegistryError: a layer has a newer schema_version.
            RegistryValidationError: the edited registry is not valid; nothing was written.
        """
        if in_dry_run():
            layers = self.load_layers()
            yield layers
            if layers.curated.changed or layers.discovered.changed:
                raise RuntimeError(f"a dry run tried to write the registry in {self.directory}")
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with storage.file_lock(self.lock_path, timeout=self.lock_timeout, what=f"the registry in {self.directory}",
                               folder=True):
            layers = self.load_layers()
            layers.state = State.load(self.directory / STATE_FILE)
            yield layers
            self._save(layers, backup=backup, backup_label=backup_label)
            layers.state.save()

    def _save(self, layers: Layers, *, backup: bool, backup_label: str) -> None:
        both = (layers.curated, layers.discovered)
        edited = [layer for layer in both if layer.changed]
        if not edited:
            if self._snapshot_stale(layers):
                entries, _ = layers.merged()
                self._write_snapshot(entries, layers)
            return
        # A legacy registry is migrated whole on its first write, never left half in each shape.
        to_write = [layer for layer in both if layer in edited or layer.legacy]
        for layer in to_write:
            if layer.read_only:
                raise ReadOnlyRegistryError(layer.read_only,
                                            hint="upgrade imageworks-models (pip install -U imageworks-models)")
            _validate_into(layer, list(layer.entries.values()))
        entries, _ = layers.merged()
        layers.check_effective(entries, names=True)
        for layer in to_write:  # a hand edit saved since our read is kept: refuse before writing anything (W17)
            storage.check_writable(layer.path)
            storage.ensure_unchanged(layer.path, layer.data)
        backups = []
        for layer in to_write:
            if layer.data is not None and (layer.legacy or backup):
                backups.append(storage.backup_file(layer.path, self.backup_dir, keep=self.backup_keep,
                                                   label="legacy" if layer.legacy else backup_label))
        merged_data = _read(self.merged_path, self.max_json_bytes)
        if merged_data is not None and merged_data.lstrip().startswith(b"["):
            storage.backup_file(self.merged_path, self.backup_dir, keep=self.backup_keep, label="legacy")
        touched: set[str] = set()
        files = {}
        for layer in to_write:
            if self.audit_dir is not None:
                touched |= _touched(layer)
            data = layer.to_bytes()
            files[layer.path.name] = {"before": _digest(layer.data), "after": _digest(data)}
            storage.atomic_write(layer.path, data, expect=layer.data)
            layer.data, layer.schema_version = data, SCHEMA_VERSION
            layer._as_read = dict(layer.entries)  # what the file now holds
            layer.mark_clean()
        self._write_snapshot(entries, layers)
        if self.audit_dir is not None:
            from imageworks_models.registry import audit

            audit.record(self.audit_dir, "registry-write", entries=sorted(touched), files=files,
                         registry=str(self.directory), backups=[str(b) for b in backups if b])

    def _write_snapshot(self, entries: dict[str, dict[str, Any]], layers: Layers) -> None:
        sources = {CURATED_FILE: _digest(layers.curated.data), DISCOVERED_FILE: _digest(layers.discovered.data)}
        parts = None
        if layers.curated._as_read is not None or layers.discovered._as_read is not None:
            parts = _parts(layers.curated._as_read or {}, layers.discovered._as_read or {})
        storage.atomic_write(self.merged_path, self._snapshot_bytes(entries, sources, parts))

    def _snapshot_stale(self, layers: Layers) -> bool:
        sources = {CURATED_FILE: _digest(layers.curated.data), DISCOVERED_FILE: _digest(layers.discovered.data)}
        return self._snapshot_entries(sources) is None and not any(
            layer.read_only or layer.legacy for layer in (layers.curated, layers.discovered))
