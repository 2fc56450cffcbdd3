"""``models.lock``: the locked entries of one machine, to reproduce them byte for byte on another.

``lock export`` writes every locked entry with where it came from (provider, repo, revision, resolved commit)
and every file with its size and digest::

    {"schema_version": 1, "generated_at": "…", "entries": [
      {"name", "backend", "served_model_id", "format", "quantization",
       "source": {"provider": "hf", "repo_id": "Qwen/Qwen2.5-VL-7B-Instruct-AWQ", "revision": "main", "commit": "…"},
       "aggregate": "sha256:…", "files": [{"path": "model.safetensors", "size": 123, "digest": "sha256:…"}]}]}

``sync models.lock`` on another machine checks what is there against it, downloads what is missing (at the
locked commit, through the source that provides it), verifies every digest, locks what matches and reports
drift. ``check-updates`` asks each source whether an entry's upstream revision moved past its recorded
commit, touching no local file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imageworks_models.fs.dryrun import honours_dry_run
from imageworks_models.errors import ImageworksError, RegistryError
from imageworks_models.reports import SILENT, Progress

SCHEMA_VERSION = 1
LOCKFILE = "models.lock"
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth")


# -- export ------------------------------------------------------------------------------------------


def lock_record(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The lockfile record of a locked entry, or ``None`` when it has no files recorded."""
    artifacts = entry.get("artifacts") or {}
    files = [{"path": f["path"], "size": f.get("size"), "digest": f.get("digest")}
             for f in artifacts.get("files") or [] if f.get("digest")]
    expected = (entry.get("version_lock") or {}).get("expected_aggregate") or artifacts.get("aggregate")
    if not files or not expected:
        return None
    src = entry.get("source") or {}
    return {"name": entry["name"], "backend": entry.get("backend"), "served_model_id": entry.get("served_model_id"),
            "format": entry.get("format"), "quantization": entry.get("quantization"),
            "source": {k: src.get(k) for k in ("provider", "repo_id", "revision", "commit") if src.get(k)},
            "aggregate": expected, "files": sorted(files, key=lambda f: f["path"])}


@honours_dry_run
def export_lock(path: Path | str = LOCKFILE, *, dry_run: bool = False, settings=None) -> dict[str, Any]:
    """Write the lockfile of every locked entry to ``path`` (atomically).

    Returns:
        ``{"path", "written": bool, "entries": [names], "skipped": [{"name", "reason"}]}``.

    Raises:
        StorageError: the file could not be written.
    """
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings
    from imageworks_models.fs.storage import atomic_write, file_lock, utc_now
    from imageworks_models.registry.predicates import locked

    settings = settings or load_settings()
    records, skipped = [], []
    for entry in store_for(settings).load():
        if not locked(entry):
            continue
        record = lock_record(entry)
        if record is None:
            skipped.append({"name": entry["name"], "reason": "no files with digests recorded"})
        else:
            records.append(record)
    records.sort(key=lambda r: r["name"])
    doc = {"schema_version": SCHEMA_VERSION, "generated_at": utc_now(), "entries": records}
    path = Path(path)
    if not dry_run:
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path.with_name(path.name + ".lock"), timeout=settings.lock_timeout):
            from imageworks_models.registry.jsonio import dumps_strict

            atomic_write(path, (dumps_strict(doc, path=str(path), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return {"path": str(path), "written": not dry_run, "entries": [r["name"] for r in records], "skipped": skipped}


_HEX64 = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(r"(sha256|blake3):[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_TOP_FIELDS = {"schema_version", "generated_at", "generated_by", "entries"}
_ENTRY_FIELDS = {"name", "backend", "served_model_id", "format", "quantization", "source", "aggregate", "files"}
_SOURCE_FIELDS = {"provider", "repo_id", "revision", "commit"}
_FILE_FIELDS = {"path", "size", "digest"}
MAX_SIZE = 2**53  # sizes must be exact in every JSON reader (doubles)


def _check_record(rec: Any, where: str) -> list[str]:
    """What is wrong with one lockfile entry, field by field (D24)."""
    from imageworks_models.errors import UnsafePathError
    from imageworks_models.fs.safepath import check_relative_name

    if not isinstance(rec, dict):
        return [f"{where}: must be an object"]
    problems = [f"{where}.{k}: unknown field" for k in sorted(set(rec) - _ENTRY_FIELDS)]
    if not isinstance(rec.get("name"), str) or not rec["name"]:
        problems.append(f"{where}.name: must be a non-empty string")
    for key in ("backend", "served_model_id", "format", "quantization"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            problems.append(f"{where}.{key}: must be a string")
    if not isinstance(rec.get("aggregate"), str) or not _DIGEST.fullmatch(rec["aggregate"]):
        problems.append(f"{where}.aggregate: must be sha256:<64 lowercase hex>")
    src = rec.get("source", {})
    if not isinstance(src, dict):
        problems.append(f"{where}.source: must be an object")
    else:
        problems += [f"{where}.source.{k}: unknown field" for k in sorted(set(src) - _SOURCE_FIELDS)]
        for key in ("provider", "repo_id", "revision"):
            if src.get(key) is not None and not isinstance(src[key], str):
                problems.append(f"{where}.source.{key}: must be a string")
        if "commit" in src and (not isinstance(src["commit"], str) or not _COMMIT.fullmatch(src["commit"])):
            problems.append(f"{where}.source.commit: must be a 40-hex commit id, not {str(src['commit'])[:50]!r}")
    files = rec.get("files")
    if not isinstance(files, list) or not files:
        problems.append(f"{where}.files: must be a non-empty list")
        return problems
    for i, f in enumerate(files):
        at = f"{where}.files[{i}]"
        if not isinstance(f, dict):
            problems.append(f"{at}: must be an object")
            continue
        problems += [f"{at}.{k}: unknown field" for k in sorted(set(f) - _FILE_FIELDS)]
        path = f.get("path")
        if not isinstance(path, str) or not path:
            problems.append(f"{at}.path: must be a non-empty relative path")
        else:
            try:
                check_relative_name(path)  # a hostile lockfile must not name ../../x or /etc/x
            except UnsafePathError as exc:
                problems.append(f"{at}.path: {exc.message}")
        size = f.get("size")
        if type(size) is not int or not 0 <= size < MAX_SIZE:
            problems.append(f"{at}.size: must be a whole number 0 <= n < 2^53, not {str(size)[:30]}")
        if not isinstance(f.get("digest"), str) or not _DIGEST.fullmatch(f["digest"]):
            problems.append(f"{at}.digest: must be sha256:<64 lowercase hex>")
    return problems


def read_lock(path: Path | str, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The entries of a lockfile, checked field by field (D24): strict JSON, known fields only, 64-hex digests,
    40-hex commits, sizes 0 <= n < 2^53, relative paths without ``..``.

    Raises:
        RegistryError: the file is missing, not strict JSON, of a newer schema, or any field is wrong (all
            problems at once, with their JSON paths).
    """
    from imageworks_models.registry.jsonio import DEFAULT_MAX_BYTES, read_json_file

    path = Path(path)
    try:
        doc = read_json_file(path, limit=limit or DEFAULT_MAX_BYTES)
    except FileNotFoundError:
        raise RegistryError(f"{path} does not exist", hint="write one with `imageworks-loader lock export`") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise RegistryError(f"{path} is not a models.lock file (no entries list)", hint="export it again")
    version = doc.get("schema_version")
    if type(version) is not int or version < 1:
        raise RegistryError(f"{path}: schema_version must be a whole number >= 1, not {str(version)[:30]}",
                            hint="export it again")
    if version > SCHEMA_VERSION:
        raise RegistryError(f"{path} has schema_version {version}, newer than this tool reads",
                            hint="upgrade imageworks-models")
    problems = [f"$.{k}: unknown field" for k in sorted(set(doc) - _TOP_FIELDS)]
    for i, rec in enumerate(doc["entries"]):
        problems += _check_record(rec, f"$.entries[{i}]")
    if problems:
        from imageworks_models.errors import RegistryValidationError

        raise RegistryValidationError(str(path), problems, hint="this is not a models.lock this tool wrote, or it "
                                                                "was edited; export it again")
    return doc["entries"]


# -- sync ------------------------------------------------------------------------------------------------


@dataclass
class SyncRow:
    """``ok`` (present, every digest matches), ``downloaded`` (fetched, matched, locked), ``download`` (dry
    run: would fetch), ``drift`` (files differ from the lock), ``skip`` (cannot be fetched here) or ``error``."""

    action: str
    name: str
    reason: str | None = None
    differing: list[str] = field(default_factory=list)
    registered_as: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "name": self.name, "reason": self.reason, "differing": self.differing,
                "registered_as": self.registered_as}


@dataclass
class SyncReport:
    rows: list[SyncRow]
    dry_run: bool

    @property
    def exit_code(self) -> int:
        if any(r.action == "error" for r in self.rows):
            return 1
        return 2 if any(r.action == "drift" for r in self.rows) else 0

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r.action] = counts.get(r.action, 0) + 1
        return {"dry_run": self.dry_run, "counts": counts, "rows": [r.as_dict() for r in self.rows]}


def _compare(record: dict[str, Any], root: str, *, settings, plugins, progress) -> list[str]:
    """Files of ``record`` that are missing or differ under ``root``, plus files there the lock does not list."""
    from imageworks_models.integrity.manifest import build_manifest

    algorithm = record["aggregate"].split(":", 1)[0]
    manifest = build_manifest(root, algorithm=algorithm, plugins=plugins, quick=True, cache_dir=settings.cache_dir,
                              progress=progress, label=record["name"])
    have = {f.path: f.digest for f in manifest.files if f.special is None}
    want = {f["path"]: f["digest"] for f in record["files"]}
    differing = [p for p in sorted(want) if have.get(p) != want[p]]
    differing += [f"{p} (not in the lock)" for p in sorted(set(have) - set(want))]
    return differing


@honours_dry_run
def sync_lock(path: Path | str = LOCKFILE, *, dry_run: bool = False, settings=None, plugins=None,
              progress: Progress = SILENT) -> SyncReport:
    """Make this machine hold what the lockfile says: check, download what is missing, verify, lock.

    Args:
        path: the lockfile.
        dry_run: check what is here and say what would be downloaded; download and write nothing.

    Returns:
        A :class:`SyncReport` (``exit_code`` 2 when something drifted, 1 on errors).

    Raises:
        RegistryError: the lockfile is not readable.
    """
    from imageworks_models.acquire import download as acquisition
    from imageworks_models.integrity.verify import lock
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings
    from imageworks_models.registry.predicates import local_path

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    records = read_lock(path)
    registry = store_for(settings).load()
    rows = []
    for record in records:
        name = record["name"]
        entry = registry.find(name)
        root = local_path(entry) if entry else None
        try:
            if root and Path(root).exists():
                differing = _compare(record, root, settings=settings, plugins=plugins, progress=progress)
                rows.append(SyncRow("drift", name, "files differ from the lock", differing) if differing else
                            SyncRow("ok", name))
                continue
            src = record.get("source") or {}
            if not (src.get("repo_id") and src.get("commit")):
                rows.append(SyncRow("skip", name, f"no repo and commit to fetch it from (provider "
                                                  f"{src.get('provider') or 'unknown'}): copy its files by hand"))
                continue
            spec = f"{src['repo_id']}@{src['commit']}"
            if dry_run:
                rows.append(SyncRow("download", name, f"would download {spec}"))
                continue
            weights = tuple(f["path"] for f in record["files"] if f["path"].endswith(WEIGHT_SUFFIXES))
            result = acquisition.download(spec, format=record.get("format"), weights=weights,
                                          backend=record.get("backend"), settings=settings, plugins=plugins,
                                          progress=progress)
            differing = _compare(record, result.path, settings=settings, plugins=plugins, progress=progress)
            if differing:
                rows.append(SyncRow("drift", name, f"downloaded {spec}, but its files differ from the lock; "
                                                   "registered, not locked", differing, registered_as=result.name))
                continue
            lock([result.name], set_expected=True, quick=True, algorithm=record["aggregate"].split(":", 1)[0],
                 settings=settings, plugins=plugins)
            rows.append(SyncRow("downloaded", name, f"{spec}, every digest matches; locked",
                                registered_as=result.name if result.name != name else None))
        except ImageworksError as exc:
            rows.append(SyncRow("error", name, exc.message + (f" ({exc.hint})" if exc.hint else "")))
    return SyncReport(rows, dry_run=dry_run)


# -- check-updates ------------------------------------------------------------------------------------------


def check_updates(names: list[str] | None = None, *, settings=None, plugins=None) -> list[dict[str, Any]]:
    """For each entry with a recorded commit, whether its upstream revision has moved since.

    Returns:
        ``[{"name", "provider", "repo_id", "revision", "commit", "latest", "status": "current" | "moved" |
        "unknown" | "error", "reason"}]``; nothing local is read or written beyond the registry.
    """
    from imageworks_models.pluginhost.manager import get_plugins
    from imageworks_models.registry import store_for
    from imageworks_models.settings import load_settings

    settings = settings or load_settings()
    plugins = plugins or get_plugins(settings)
    registry = store_for(settings).load()
    checkers = {record.name: impl for record, impl in plugins.source_impls("updates")}
    entries = [registry.get(n) for n in names] if names else list(registry)
    out = []
    for entry in sorted(entries, key=lambda e: e["name"]):
        src = entry.get("source") or {}
        if not src.get("commit") or not src.get("repo_id"):
            if names:
                out.append({"name": entry["name"], "provider": src.get("provider"), "repo_id": src.get("repo_id"),
                            "revision": src.get("revision"), "commit": None, "latest": None, "status": "unknown",
                            "reason": "no commit recorded (scanned, not downloaded)"})
            continue
        row = {"name": entry["name"], "provider": src.get("provider"), "repo_id": src["repo_id"],
               "revision": src.get("revision") or "main", "commit": src["commit"], "latest": None,
               "status": "unknown", "reason": None}
        checker = checkers.get(src.get("provider") or "")
        if checker is None:
            row["reason"] = f"no installed source checks {src.get('provider')!r} for updates"
        else:
            try:
                row["latest"] = checker.latest_commit(src["repo_id"], row["revision"], settings=settings)
                row["status"] = "current" if row["latest"] == src["commit"] else "moved"
            except ImageworksError as exc:
                row["status"], row["reason"] = "error", exc.message
        out.append(row)
    return out
