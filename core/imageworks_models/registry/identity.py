"""Which registry entry a model is: the attachment rules and the names people type.

One model, one entry. Every command that finds model files (``download``, ``scan``, ``ingest-local-hf``,
``discover-all``, ``import-ollama``) asks :class:`Index` which entry the files belong to, in this order
(documented in the README, "How entries are identified"):

a. **path**: the files' real path equals an entry's ``download.path`` or its curated
   ``backend_config.model_path`` (``~`` and ``$VARS`` expanded, links resolved), or the path the state file
   remembers for an entry whose discovered part was purged;
b. **source**: the same provider and repo id (for Ollama, the same model and tag), and no other
   quantization or format than the one the entry records;
c. **name**: the name the files would get equals an entry's name or alias (any case), and that entry
   has no files yet.

A match by (b) or (c) to an entry whose files are somewhere else is a *conflict*: different files, one
name. Attaching writes only discovered facts under the existing name; curated fields keep precedence.

:func:`resolve` turns what a person types (a name, an alias, a served model id, a Hugging Face repo id,
or a unique prefix of a name) into one entry, or says why not. Pure functions over effective entries;
imports nothing above ``registry``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from imageworks_models.errors import AmbiguousNameError, EntryNotFoundError

# Fields an attach always writes, even where the curated part has them: install facts that are dynamic
# (only ever discovered) or merged key by key (see registry/fields.py).
ATTACH_FIELDS = ("download", "artifacts", "source", "metadata")


def attach_part(found: dict[str, Any], curated: dict[str, Any] | None) -> dict[str, Any]:
    """The discovered-layer part that attaching ``found`` to an entry writes: every fact found, except the
    fields its curated part sets itself (which keep precedence and are never rewritten, not even shadowed)."""
    if not curated:
        return found
    return {k: v for k, v in found.items() if k == "name" or k in ATTACH_FIELDS or k not in curated}


def is_store_reference(path: str) -> bool:
    """``ollama:/name:tag`` or ``scheme://...``: files kept by another program, not a folder of ours."""
    return "://" in path or (":" in path.split("/", 1)[0] and not os.path.isabs(path))


def expand(path: str) -> str:
    """``~`` and ``$VARS`` expanded (no link resolved)."""
    if "$" in path:
        path = os.path.expandvars(path)
    return os.path.expanduser(path) if path.startswith("~") else path


def looks_local(text: str) -> bool:
    """A ``model_path`` that names a folder or file here, not a Hub id the server resolves itself."""
    return text.startswith(("/", "~", "$", "./", "../"))


def model_path_of(entry: dict[str, Any]) -> str | None:
    """The curated ``backend_config.model_path`` when it names local files, expanded; else ``None``."""
    raw = (entry.get("backend_config") or {}).get("model_path")
    if not isinstance(raw, str) or not raw or is_store_reference(raw) or not looks_local(raw):
        return None
    return expand(raw)


def files_path(entry: dict[str, Any]) -> str | None:
    """Where the entry's files are on this filesystem: ``download.path``, else the curated
    ``backend_config.model_path``; expanded, not resolved. ``None`` for store references and Hub ids."""
    raw = (entry.get("download") or {}).get("path")
    if isinstance(raw, str) and raw:
        return None if is_store_reference(raw) else expand(raw)
    return model_path_of(entry)


def real(path: str) -> str:
    return os.path.realpath(expand(path))


class _Resolver:
    """``real()`` for many paths that share folders: each folder is resolved once, then only the last
    component of each path is checked for a link (5,000 registered paths: one ``lstat`` each)."""

    def __init__(self) -> None:
        self.folders: dict[str, tuple[str, bool]] = {}

    def __call__(self, path: str) -> str:
        if path[:1] != "/" or "/." in path or "//" in path or "$" in path:
            path = os.path.abspath(expand(path))
        folder, _, base = path.rpartition("/")
        folder = folder or "/"
        known = self.folders.get(folder)
        if known is None:
            known = self.folders[folder] = (os.path.realpath(folder), os.path.isdir(folder))
        if not base or (known[1] and os.path.islink(path)):  # in a missing folder nothing is a link
            return os.path.realpath(path)
        return known[0].rstrip("/") + "/" + base


def identity_row(entry: dict[str, Any]) -> list[Any]:
    """What :class:`Index` matches an entry by: ``[download.path, backend_config.model_path, source key, aliases]``
    as recorded (text or None; the key as :func:`source_key` gives it, a list; the aliases that are text). The
    registry snapshot keeps one per entry, so a scan indexes the registry without reading its entries."""
    download, config = entry.get("download"), entry.get("backend_config")
    path = download.get("path") if isinstance(download, dict) else None
    other = config.get("model_path") if isinstance(config, dict) else None
    key = source_key(entry)
    return [path if isinstance(path, str) else None, other if isinstance(other, str) else None,
            list(key) if key else None, [a for a in entry.get("aliases") or () if isinstance(a, str)]]


def source_key(entry_or_source: dict[str, Any]) -> tuple[str, str] | None:
    """``(provider, repo)`` in lower case; for Ollama the repo is ``model:tag``. ``None`` when unknown."""
    source = entry_or_source.get("source") if "source" in entry_or_source else entry_or_source
    if not isinstance(source, dict):
        return None
    provider, repo = source.get("provider"), source.get("repo_id")
    if not isinstance(provider, str) or not isinstance(repo, str) or not provider or not repo:
        return None
    provider = provider.lower()
    repo = repo.strip().lower()
    if provider == "ollama":
        tag = source.get("revision") or "latest"
        if ":" not in repo.rsplit("/", 1)[-1]:
            repo = f"{repo}:{str(tag).lower()}"
    return provider, repo


def has_files(entry: dict[str, Any]) -> bool:
    """Whether files are recorded for the entry (a manifest, or a path that exists)."""
    if (entry.get("artifacts") or {}).get("files"):
        return True
    download_path = (entry.get("download") or {}).get("path")
    if isinstance(download_path, str) and download_path and is_store_reference(download_path):
        return True
    path = files_path(entry)
    return bool(path and os.path.exists(path))


@dataclass
class Match:
    """Which entry found files belong to, and how: ``rule`` is ``path``, ``source`` or ``name``.

    ``conflict`` is set (to the one line to show) when the rule found an entry whose files are elsewhere,
    or several entries at once; ``name`` is then the entry the conflict is about.
    """

    name: str
    rule: str
    conflict: str | None = None


@dataclass
class Index:
    """The registry's entries indexed by real path, source and lower-case name/alias (one pass, so
    matching 1,000 found models against 5,000 entries is 1,000 dictionary look-ups, not 5 million)."""

    entries: dict[str, dict[str, Any]]
    by_path: dict[str, str] = field(default_factory=dict)
    by_source: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    by_name: dict[str, list[str]] = field(default_factory=dict)
    curated: dict[str, dict[str, Any]] = field(default_factory=dict)  # curated parts, by name
    remembered: dict[str, str] = field(default_factory=dict)  # real path -> name, from model_registry.state.json
    rows: dict[str, list[Any]] = field(default_factory=dict)  # identity_row() of each entry, by name
    _built: bool = False

    @classmethod
    def build(cls, entries: Iterable[dict[str, Any]], *, curated: dict[str, dict[str, Any]] | None = None,
              remembered: dict[str, str] | None = None) -> "Index":
        by_name = {e["name"]: e for e in entries}
        return cls.from_rows({name: identity_row(e) for name, e in by_name.items()}, entries=by_name,
                             curated=dict(curated or {}), remembered=remembered)

    @classmethod
    def from_rows(cls, rows: dict[str, list[Any]], *, entries: Any, curated: Any = None,
                  remembered: dict[str, str] | None = None) -> "Index":
        """The index of the entries whose :func:`identity_row` are ``rows`` (by name). ``entries`` and ``curated``
        may be mappings that read an entry only when it is asked for (a registry snapshot's
        :class:`~imageworks_models.registry.store.MatchView`): matching reads only the entries it matches."""
        index = cls(entries=entries, curated=curated if curated is not None else {},
                    remembered=dict(remembered or {}), rows=rows)
        resolve = _Resolver()
        by_path = index.by_path
        for name, (path, other, _, _) in rows.items():
            if path and looks_local(path) and not is_store_reference(path):
                by_path.setdefault(resolve(path), name)
            if other and other != path and looks_local(other) and not is_store_reference(other):
                by_path.setdefault(resolve(other), name)
        return index

    def _secondary(self) -> None:
        """The source and name indexes, built on the first path that is not registered (a rescan of
        registered folders never needs them)."""
        if self._built:
            return
        self._built = True
        by_source, by_name = self.by_source, self.by_name
        for name, (_, _, key, aliases) in self.rows.items():
            if key:
                by_source.setdefault(tuple(key), []).append(name)
            low = name.lower()
            by_name.setdefault(low, []).append(name)
            for alias in aliases:
                if alias.lower() != low:
                    by_name.setdefault(alias.lower(), []).append(name)

    def add(self, entry: dict[str, Any], path: str | None = None) -> None:
        """Record an entry planned in this run, so a later found model sees it."""
        self._secondary()
        name = entry["name"]
        self.entries[name] = entry
        if path:
            self.by_path.setdefault(path, name)
        key = source_key(entry)
        if key:
            self.by_source.setdefault(key, []).append(name)
        self.by_name.setdefault(name.lower(), []).append(name)

    def _elsewhere(self, name: str, path: str) -> str | None:
        """The other place where entry ``name``'s files are, or ``None`` (none yet, gone, or ``path`` itself)."""
        entry = self.entries[name]
        recorded = files_path(entry)
        if recorded is None:
            download_path = (entry.get("download") or {}).get("path")
            return download_path if isinstance(download_path, str) and download_path else None
        if real(recorded) == path or not os.path.exists(recorded):
            return None
        return recorded

    def match(self, *, path: str, name: str, source: dict[str, Any] | None = None,
              format: str | None = None, quantization: str | None = None) -> Match | None:
        """The entry that files at ``path`` (already resolved) belong to, by rules (a), (b), (c).

        Args:
            path: the found files' real path.
            name: the name the files would get by the naming rule (or the one the user asked for).
            source: the found files' source (``provider``, ``repo_id``, ``revision``), when known.
            format, quantization: what the files are, for rule (b).
        """
        hit = self.by_path.get(path)
        if hit is None:
            hit = self._folder_holding(path)
        if hit is None and path in self.remembered and self.remembered[path] in self.entries:
            hit = self.remembered[path]  # its discovered part was purged; the entry (its curated part) is still here
        if hit is not None:
            return Match(hit, "path")
        self._secondary()
        key = source_key(source or {})
        if key is not None:
            same = [n for n in self.by_source.get(key, ()) if self._compatible(n, format, quantization)]
            if len(same) > 1:
                free = [n for n in same if self._elsewhere(n, path) is None]
                if len(free) == 1:
                    same = free
                else:
                    return Match(same[0], "source", conflict=(
                        f"{key[1]} is registered twice ({', '.join(sorted(same))}): the files at {path} could "
                        f"belong to either; remove one entry (imageworks-models remove NAME) or set "
                        f"backend_config.model_path on the one they belong to"))
            if same:
                other = self._elsewhere(same[0], path)
                if other is None:
                    return Match(same[0], "source")
                return Match(same[0], "source", conflict=(
                    f"{same[0]} (source {key[1]}) already has its files at {other}, not {path}; "
                    f"pass --name to register these files as another entry, or remove the other copy"))
        owners = self.by_name.get(name.lower(), [])
        owners = list(dict.fromkeys(owners))
        if len(owners) > 1:
            return Match(owners[0], "name", conflict=(
                f"the name {name} is claimed by {', '.join(owners)} (an alias shared by two entries); "
                "remove it from one entry's aliases in the curated file"))
        if owners:
            other = self._elsewhere(owners[0], path)
            if other is None:
                return Match(owners[0], "name")
            return Match(owners[0], "name", conflict=(
                f"the name {name} belongs to {owners[0]}, whose files are at {other}, not {path}; "
                "pass --name NEW-NAME to register these files under another name"))
        return None

    def _folder_holding(self, path: str) -> str | None:
        """The entry recorded as the folder that holds the single file ``path`` among its files (a GGUF
        repo downloaded as a folder, then scanned file by file)."""
        parent, base = os.path.split(path)
        name = self.by_path.get(parent)
        if name is None:
            return None
        files = [f.get("path") for f in (self.entries[name].get("artifacts") or {}).get("files") or ()]
        return name if base in files and sum(1 for f in files if str(f).lower().endswith(".gguf")) == 1 else None

    def _compatible(self, name: str, format: str | None, quantization: str | None) -> bool:
        entry = self.entries[name]
        for wanted, have in ((format, entry.get("format")), (quantization, entry.get("quantization"))):
            if wanted and have and str(wanted).lower() != str(have).lower():
                return False
        return True


# ------------------------------------------------------------------------------------------ names people type


def _candidates(entries: dict[str, dict[str, Any]], ref: str) -> tuple[list[str], str]:
    low = ref.lower()
    if ref in entries:
        return [ref], "name"
    hits = [n for n in entries if n.lower() == low]
    if hits:
        return hits, "name"
    checks = (
        ("alias", lambda e: any(isinstance(a, str) and a.lower() == low for a in e.get("aliases") or ())),
        ("served id", lambda e: isinstance(e.get("served_model_id"), str) and e["served_model_id"].lower() == low),
        ("repo id", lambda e: isinstance((e.get("source") or {}).get("repo_id"), str)
         and (e.get("source") or {}).get("provider") in (None, "hf")
         and e["source"]["repo_id"].lower() == low),
    )
    for how, test in checks:
        hits = [n for n, e in entries.items() if test(e)]
        if hits:
            return hits, how
    hits = [n for n in entries if n.lower().startswith(low)]
    return hits, "prefix"


def resolve(entries: dict[str, dict[str, Any]], ref: str, *, where: str = "the registry") -> dict[str, Any]:
    """The one entry ``ref`` names: its name (any case), an alias, its served model id (``qwen3:8b``), its
    Hugging Face repo id, or a unique prefix of its name, tried in that order.

    Raises:
        AmbiguousNameError: several entries answer to ``ref`` (they are listed).
        EntryNotFoundError: none does; up to three nearest names are suggested.
    """
    hits, how = _candidates(entries, ref)
    if len(hits) == 1:
        return entries[hits[0]]
    if hits:
        shown = ", ".join(sorted(hits)[:8]) + (f" and {len(hits) - 8} more" if len(hits) > 8 else "")
        raise AmbiguousNameError(f"{ref!r} matches {len(hits)} entries by {how}: {shown}",
                                 hint="use one of the full names")
    import difflib

    names = list(entries)
    close = difflib.get_close_matches(ref, names, n=3, cutoff=0.6)
    if len(close) < 3:
        lowered = {n.lower(): n for n in names}
        close += [lowered[c] for c in difflib.get_close_matches(ref.lower(), list(lowered), n=3, cutoff=0.5)
                  if lowered[c] not in close]
    close = close[:3]
    raise EntryNotFoundError(f"no entry named {ref!r} in {where}",
                             hint=f"did you mean {', '.join(close)}?" if close else
                             "list them with: imageworks-models list --include-non-installed")


# ------------------------------------------------------------------------------------------ what counts as files


def companions(entry: dict[str, Any]) -> list[str]:
    """Files that belong to the model but sit beside its recorded path rather than under it: the projector blob
    of an Ollama vision tag (``metadata.ollama.projector_digest``, in the model blob's ``blobs/`` folder).
    Every command counts an entry's files as its manifest plus these, so they all agree."""
    meta = entry.get("metadata")
    digest = (meta.get("ollama") or {}).get("projector_digest") if meta else None
    if not digest:
        return []
    from imageworks_models.errors import UnsafePathError
    from imageworks_models.fs.safepath import check_sha256_digest

    path = (entry.get("download") or {}).get("path")
    if not isinstance(path, str) or not path or is_store_reference(path):
        return []
    try:
        hexdigest = check_sha256_digest(digest, where="projector digest").split(":", 1)[1]
    except UnsafePathError:
        return []
    blob = os.path.join(os.path.dirname(expand(path)), f"sha256-{hexdigest}")
    return [blob] if blob != expand(path) else []


def extent(entry: dict[str, Any], manifest_bytes: int, manifest_files: int) -> tuple[int, int]:
    """``(size_bytes, file_count)`` of an entry whose manifest holds ``manifest_files`` files of
    ``manifest_bytes`` bytes: the manifest plus the :func:`companions` present on disk."""
    size, count = manifest_bytes, manifest_files
    if not entry.get("metadata"):
        return size, count
    for path in companions(entry):
        try:
            size += os.stat(path).st_size
            count += 1
        except OSError:
            continue
    return size, count
