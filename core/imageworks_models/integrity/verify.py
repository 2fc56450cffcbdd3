"""Verify, lock and unlock: the integrity operations on registry entries.

One code path for the CLI (``imageworks-loader verify|lock|unlock``, ``imageworks-download verify``),
the GUI and library callers. Hashing happens outside the registry lock (it can take minutes); the
results are then written in one short locked edit of the discovered layer, and only if the entry's
recorded digests are still the ones that were compared against.

What is compared: the entry's *expected* aggregate is ``version_lock.expected_aggregate`` when set
(``lock --set-expected``), else the recorded manifest's ``artifacts.aggregate``. An entry with neither
gets its first manifest recorded. A divergence is never written over: ``artifacts`` keeps the last
accepted state until the user accepts the new one (``verify --accept`` or ``lock --set-expected``).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from imageworks_models.fs.dryrun import honours_dry_run
from imageworks_models.integrity import hashing
from imageworks_models.registry import predicates
from imageworks_models.errors import ImageworksError, IntegrityError, LockedEntryDriftError, NotVerifiableError
from imageworks_models.integrity.manifest import EXCLUDED_DIRS, Change, FileRecord, Manifest, build_manifest, diff, short, walk

FAILED = frozenset({"diverged", "missing", "incomplete", "changed"})


@dataclass
class VerifyResult:
    """What ``verify`` found for one entry (the ``results`` items of ``verify --json``)."""

    name: str
    # ok | recorded | accepted | diverged | missing | incomplete | changed | not-installed | skipped | error
    status: str
    mode: str  # full | quick | install
    path: str | None = None
    algorithm: str | None = None
    expected: str | None = None
    actual: str | None = None
    locked: bool = False
    files: int = 0
    bytes: int = 0
    hashed_files: int = 0
    hashed_bytes: int = 0
    cached_files: int = 0
    seconds: float = 0.0
    changes: list[Change] = field(default_factory=list)
    note: str | None = None
    fixed: str | None = None  # what --fix-missing did: marked missing | marked incomplete | cleared
    manifest: Manifest | None = field(default=None, repr=False)
    _compared: tuple[Any, Any] | None = field(default=None, repr=False)  # (expected, artifacts aggregate) seen

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "mode": self.mode, "path": self.path,
                "algorithm": self.algorithm, "expected": self.expected, "actual": self.actual,
                "locked": self.locked, "files": self.files, "bytes": self.bytes,
                "hashed_files": self.hashed_files, "hashed_bytes": self.hashed_bytes,
                "cached_files": self.cached_files, "seconds": round(self.seconds, 3),
                "changes": [c.as_dict() for c in self.changes], "note": self.note, "fixed": self.fixed}


@dataclass
class VerifyReport:
    """Every entry's result, and the exit code: 2 if any diverged, else 1 if any failed to check, else 0."""

    results: list[VerifyResult]
    written: bool = False

    @property
    def exit_code(self) -> int:
        if any(r.failed for r in self.results):
            return 2
        if any(r.status == "error" for r in self.results):
            return 1
        return 0

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return dict(sorted(counts.items()))

    def as_dict(self) -> dict[str, Any]:
        return {"results": [r.as_dict() for r in self.results], "summary": self.summary(),
                "exit_code": self.exit_code}


@dataclass
class LockResult:
    """What ``lock`` / ``unlock`` changed for one entry."""

    name: str
    locked_before: bool
    locked: bool
    expected_before: str | None
    expected: str | None
    changed: bool
    note: str | None = None
    manifest: Manifest | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "locked_before": self.locked_before, "locked": self.locked,
                "expected_before": self.expected_before, "expected": self.expected, "changed": self.changed,
                "note": self.note}


# -- helpers ---------------------------------------------------------------------------------------


def _settings(settings):
    if settings is None:
        from imageworks_models.settings import load_settings

        settings = load_settings()
    return settings


def _context(settings, plugins):
    settings = _settings(settings)
    if plugins is None:
        from imageworks_models.pluginhost.manager import LazyPlugins

        plugins = LazyPlugins(settings)  # hashing with a built-in hasher loads no plugin
    return settings, plugins


def _store(settings):
    from imageworks_models.registry import store_for

    return store_for(settings)


def _lock_of(entry: dict[str, Any]) -> dict[str, Any]:
    return entry.get("version_lock") or {}


def _artifacts_of(entry: dict[str, Any]) -> dict[str, Any]:
    return entry.get("artifacts") or {}


def expected_aggregate(entry: dict[str, Any]) -> str | None:
    """The aggregate an entry's files must match: the pinned one, else the recorded manifest's."""
    return _lock_of(entry).get("expected_aggregate") or _artifacts_of(entry).get("aggregate")


def _legacy_manifest(entry: dict[str, Any]) -> bool:
    art = _artifacts_of(entry)
    return bool(art.get("files")) and art.get("manifest_version") is None


def _recorded_files(entry: dict[str, Any]) -> list[FileRecord]:
    files = [FileRecord.from_dict(f) for f in _artifacts_of(entry).get("files") or () if isinstance(f, dict)]
    if _legacy_manifest(entry):  # the earlier tool also hashed huggingface_hub's bookkeeping, never walked here
        files = [f for f in files if not any(f.path == d or f.path.startswith(d + "/") for d in EXCLUDED_DIRS)]
    return files


def _as_earlier_tool_saw(files: list[FileRecord]) -> list[FileRecord]:
    """The files as the earlier tool recorded them: it followed links (``is_file``) and recorded the
    target's digest under the link's own path. Links we cannot follow inside the folder stay links."""
    by_path = {f.path: f for f in files}
    out = []
    for f in files:
        if f.link is not None:
            target = f if f.digest else by_path.get(posixpath.normpath(posixpath.join(posixpath.dirname(f.path),
                                                                                      f.link)))
            if target is not None and target.digest:
                f = FileRecord(f.path, target.size, target.digest)
        out.append(f)
    return out


def entry_root(entry: dict[str, Any], *, explicit: bool) -> Path | None:
    """The folder or file holding the entry's weights.

    Returns ``None`` when there is nothing to check and the entry was not asked for by name.

    Raises:
        NotVerifiableError: asked for by name, but no path is recorded or it is a store reference.
    """
    path = (entry.get("download") or {}).get("path")
    name = entry["name"]
    if not path:
        configured = predicates.local_path(entry)  # a curated backend_config.model_path is a real location too
        if configured is not None:
            if not os.path.exists(configured):
                if explicit:
                    raise NotVerifiableError(
                        f"{name!r}: its backend_config.model_path {configured} does not exist",
                        hint="download the model into it, or fix backend_config.model_path in the curated file")
                return None
            return Path(configured)
        if explicit:
            raise NotVerifiableError(f"{name!r} has no files recorded (download.path is empty)",
                                     hint="download or scan it first (imageworks-download scan --base <folder>)")
        return None
    if predicates.is_store_reference(path):
        if explicit:
            raise NotVerifiableError(f"{name!r} lives in another program's store ({path}); this command checks "
                                     "files on disk", hint="check it with the tool that owns the store "
                                                           "(e.g. `ollama show`)")
        return None
    return Path(predicates.local_path(entry))


def _hash_entry(root: Path, algorithm: str, *, quick: bool, settings, plugins, progress: hashing.Progress,
                label: str) -> Manifest:
    """The entry's manifest, with the cache folder and worker count the settings give."""
    return build_manifest(root, algorithm=algorithm, plugins=plugins, quick=quick, cache_dir=settings.cache_dir,
                          workers=settings.hash_workers, progress=progress, label=label)


def _algorithm_for(entry: dict[str, Any], requested: str | None, settings) -> str:
    expected = expected_aggregate(entry)
    if expected and not _legacy_manifest(entry):
        return hashing.split_digest(expected)[0]
    return requested or settings.hash_algorithm


# -- verify ----------------------------------------------------------------------------------------


def _verify_hashes(entry: dict[str, Any], root: Path, *, quick: bool, accept: bool, algorithm: str | None,
                   settings, plugins, progress: hashing.Progress) -> VerifyResult:
    name = entry["name"]
    lock = _lock_of(entry)
    expected = expected_aggregate(entry)
    legacy = _legacy_manifest(entry)
    result = VerifyResult(name=name, status="ok", mode="quick" if quick else "full", path=str(root),
                          expected=None if legacy else expected, locked=bool(lock.get("locked")),
                          _compared=(lock.get("expected_aggregate"), _artifacts_of(entry).get("aggregate")))
    if not root.exists():
        result.status = "missing"
        result.changes = [Change(f.path, "missing", f, None) for f in _recorded_files(entry)]
        result.note = f"{root} does not exist"
        return result
    algo = _algorithm_for(entry, algorithm, settings)
    manifest = _hash_entry(root, algo, quick=quick, settings=settings, plugins=plugins, progress=progress, label=name)
    result.manifest = manifest
    result.algorithm = manifest.algorithm
    result.actual = manifest.aggregate
    result.files = len(manifest.files)
    result.bytes = manifest.total_bytes
    result.hashed_files, result.hashed_bytes = manifest.hashed_files, manifest.hashed_bytes
    result.cached_files, result.seconds = manifest.cached_files, manifest.seconds
    if manifest.errors:
        result.status = "error"
        path, why = next(iter(manifest.errors.items()))
        more = len(manifest.errors) - 1
        result.note = why + (f" (and {more} more unreadable file{'s' if more > 1 else ''})" if more else "")
        recorded = _recorded_files(entry)
        result.changes = diff(recorded, manifest.files, unreadable=manifest.errors) if recorded else []
        return result
    if legacy:
        # The earlier tool's aggregate cannot be recomputed: compare file by file, upgrade on a match. It
        # often recorded only some files (config, tokenizer): files it did not record are not a divergence.
        found = diff(_recorded_files(entry), _as_earlier_tool_saw(manifest.files))
        result.changes = [c for c in found if c.change != "extra"]
        unrecorded = len(found) - len(result.changes)
        if result.changes:
            result.status = "diverged"
            result.note = "compared file by file with the manifest the earlier tool recorded"
        else:
            result.status = "recorded"
            result.note = "the earlier tool's manifest matched file by file; recorded it in this tool's form"
            if unrecorded:
                result.note += f" (with {unrecorded} file{'s' if unrecorded > 1 else ''} it had not recorded)"
        return result
    if not expected:
        result.status = "recorded"
        result.note = "no manifest was recorded before; this one is now the expected state"
        return result
    if manifest.aggregate == expected:
        return result
    result.status = "diverged"
    if _artifacts_of(entry).get("aggregate") == expected or not lock.get("expected_aggregate"):
        result.changes = diff(_recorded_files(entry), manifest.files)
    else:
        result.note = ("the recorded manifest is not the expected one, so the files that changed cannot be "
                       "named; compare with `show NAME --json`")
    if manifest.algorithm != hashing.split_digest(expected)[0]:
        result.note = f"expected digest uses {hashing.split_digest(expected)[0]}, computed {manifest.algorithm}"
    if accept:
        if result.locked:
            result.note = (f"not accepted: {name!r} is locked; if the change is intended run "
                           f"`imageworks-loader lock {name} --set-expected`")
        else:
            result.status = "accepted"
            result.note = "the files differed; their current state is now the expected one (--accept)"
    return result


def _verify_install(entry: dict[str, Any], root: Path) -> VerifyResult:
    """Path present, and the recorded file set and sizes; no hashing."""
    result = VerifyResult(name=entry["name"], status="ok", mode="install", path=str(root),
                          locked=bool(_lock_of(entry).get("locked")), expected=expected_aggregate(entry))
    if not root.exists():
        result.status = "missing"
        result.note = f"{root} does not exist"
        return result
    items = walk(root)
    result.files = len(items)
    result.bytes = sum(i.st.st_size for i in items if i.link is None)
    recorded = _recorded_files(entry)
    if recorded:
        now = {i.rel: FileRecord(i.rel, None if i.link is not None else i.st.st_size, link=i.link) for i in items}
        for rec in recorded:
            cur = now.pop(rec.path, None)
            if cur is None:
                result.changes.append(Change(rec.path, "missing", rec, None))
            elif rec.link is None and rec.size is not None and cur.size != rec.size and not rec.special:
                result.changes.append(Change(rec.path, "changed", FileRecord(rec.path, rec.size),
                                             FileRecord(rec.path, cur.size)))
        if not _legacy_manifest(entry):  # the earlier tool often recorded only some of the files
            result.changes += [Change(p, "extra", None, r) for p, r in sorted(now.items())]
    else:
        names = (entry.get("download") or {}).get("files") or []
        present = {i.rel for i in items} | {Path(i.rel).name for i in items}
        result.changes = [Change(n, "missing") for n in names if isinstance(n, str) and n not in present]
        if not names:
            result.note = "no file list recorded: only the path was checked"
    if any(c.change == "missing" for c in result.changes):
        result.status = "incomplete"
    elif result.changes:
        result.status = "changed"
    result.changes.sort(key=lambda c: c.path)
    return result


@honours_dry_run
def verify(names: Sequence[str] = (), *, all_entries: bool = False, hashes: bool = True, quick: bool = False,
           fix_missing: bool = False, accept: bool = False, dry_run: bool = False, algorithm: str | None = None,
           settings: Any = None, plugins: Any = None, progress: hashing.Progress = hashing.SILENT) -> VerifyReport:
    """Check entries' files against the registry and record what was found.

    Args:
        names: entry names or aliases; empty with ``all_entries`` (or ``hashes=False``) means every entry.
        all_entries: check every entry with files on disk.
        hashes: recompute digests (the loader's verify); ``False`` checks only the path, the file set
            and sizes (the downloader's verify).
        quick: reuse digests of files whose stat is unchanged since they were hashed.
        fix_missing: mark entries whose files are gone (``download.status``), clear the mark when fine.
        accept: record the current files of an unlocked, diverged entry as its expected state.
        dry_run: write nothing to the registry.
        algorithm: hasher for a first manifest (default: the ``hash_algorithm`` setting); an existing
            expected digest is always checked with its own algorithm.
        settings, plugins: resolved settings and loaded plugins (default: load them).
        progress: told about hashing progress.

    Returns:
        A :class:`VerifyReport`; ``exit_code`` is 2 if any entry diverged or is missing files.

    Raises:
        EntryNotFoundError: a name is unknown (checked before anything is hashed).
        NotVerifiableError: a named entry has no files on disk.
        ImageworksError: no names and neither ``all_entries`` nor ``hashes=False``.
        LockTimeoutError: another writer held the registry too long when writing results.
    """
    settings, plugins = _context(settings, plugins)
    store = _store(settings)
    registry = store.load()
    if names:
        entries = list({e["name"]: e for e in (registry.get(n) for n in names)}.values())
    elif all_entries or not hashes:
        entries = sorted(registry, key=lambda e: e["name"])
    else:
        raise ImageworksError("name the entries to verify, or use --all to hash every installed entry",
                              hint="e.g. imageworks-loader verify qwen2.5-vl-7b-vllm-awq")
    roots = {e["name"]: entry_root(e, explicit=bool(names)) for e in entries}
    mode = "install" if not hashes else ("quick" if quick else "full")
    if hashes:
        for e in entries:
            if roots[e["name"]] is not None:
                plugins.hasher(_algorithm_for(e, algorithm, settings))  # an unknown algorithm fails before any work
    results: list[VerifyResult] = []
    for entry in entries:
        root = roots[entry["name"]]
        if root is None:
            path = (entry.get("download") or {}).get("path")
            results.append(VerifyResult(name=entry["name"], status="skipped" if path else "not-installed",
                                        mode=mode, path=path,
                                        note="in another program's store" if path else "no files recorded"))
            continue
        try:
            if hashes:
                results.append(_verify_hashes(entry, root, quick=quick, accept=accept, algorithm=algorithm,
                                              settings=settings, plugins=plugins, progress=progress))
            else:
                results.append(_verify_install(entry, root))
        except IntegrityError as exc:
            results.append(VerifyResult(name=entry["name"], status="error", path=str(root),
                                        mode=mode, note=exc.message))
    report = VerifyReport(results)
    if fix_missing:
        for r in results:
            r.fixed = _fix_action(registry.get(r.name), r)
    if not dry_run:
        report.written = _record(store, report, hashes=hashes, fix_missing=fix_missing, loaded=registry)
    return report


def _fix_action(entry: dict[str, Any], r: VerifyResult) -> str | None:
    """What ``--fix-missing`` does for one result: mark files gone (all, or some), or clear the mark."""
    current = (entry.get("download") or {}).get("status")
    if r.status == "missing":
        wanted = "missing"
    elif r.status == "incomplete" or (r.status == "diverged" and any(c.change == "missing" for c in r.changes)):
        wanted = "incomplete"
    elif r.status in ("skipped", "not-installed", "error"):
        return None
    else:
        wanted = None
    if wanted == current:
        return None
    return f"marked {wanted}" if wanted else "cleared"


def _discovered_entry(layers, name: str) -> dict[str, Any]:
    entry = layers.discovered.get(name)
    if entry is None:
        layers.discovered.put({"name": name})
        entry = layers.discovered.get(name)  # put() stores a copy of a new entry: change that one
    return entry


def _last_status(r: VerifyResult) -> str:
    return "ok" if r.status in ("ok", "recorded", "accepted") else ("missing" if r.status == "missing" else "diverged")


def _stale(r: VerifyResult, current: dict[str, Any]) -> bool:
    """The entry's recorded digests changed while it was being verified: its result is not recorded."""
    if r._compared is not None and r._compared != (_lock_of(current).get("expected_aggregate"),
                                                   _artifacts_of(current).get("aggregate")):
        import logging

        logging.getLogger("imageworks_models").warning(
            "%s: its recorded digests changed while it was being verified; result not recorded", r.name)
        return True
    return False


def _record(store, report: VerifyReport, *, hashes: bool, fix_missing: bool, loaded=None) -> bool:
    from imageworks_models.fs.storage import utc_now

    todo = [r for r in report.results if r.status not in ("skipped", "not-installed")]
    if not todo:
        return False
    now = utc_now()
    written = False
    # A check alone (no manifest to store, no download status to change) goes to the small checks file
    # (registry/checks.py): rewriting the discovered layer, with every entry's manifest, for a timestamp
    # is what made an unchanged `verify --quick` slow.
    only_check = [r for r in todo if hashes and r.status != "error" and not (fix_missing and r.fixed)
                  and not (r.status in ("recorded", "accepted") and r.manifest is not None)]
    if only_check:
        def build(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
            records = {}
            for r in only_check:
                current = entries.get(r.name)
                if current is None or _stale(r, current):
                    continue
                status = _last_status(r)
                records[r.name] = {"expected": expected_aggregate(current), "last_checked": now, "last_mode": r.mode,
                                   "last_status": status,
                                   "last_verified": now if status == "ok" else _lock_of(current).get("last_verified")}
            return records

        recorded = store.record_checks(build, loaded=loaded)
        if recorded is not None:
            written = bool(recorded)
            todo = [r for r in todo if r not in only_check]
    if not any((hashes and r.status != "error") or (fix_missing and r.fixed) for r in todo):
        return written
    with store.edit() as layers:
        merged, _ = layers.merged()
        store.overlay_checks(merged)  # the newest check's last_verified is the one to keep
        for r in todo:
            current = merged.get(r.name)
            if current is None:
                continue  # removed meanwhile
            if _stale(r, current):
                continue
            disc = _discovered_entry(layers, r.name)
            if hashes and r.status != "error":
                lock = dict(disc.get("version_lock") or {})
                lock["last_checked"] = now
                lock["last_mode"] = r.mode
                lock["last_status"] = _last_status(r)
                if lock["last_status"] == "ok":
                    lock["last_verified"] = now
                    if r.status in ("recorded", "accepted") and r.manifest is not None:
                        _store_manifest(disc, r.manifest, set_expected=bool(lock.get("expected_aggregate")), lock=lock)
                elif _lock_of(current).get("last_verified"):
                    lock["last_verified"] = _lock_of(current)["last_verified"]
                disc["version_lock"] = lock
            if fix_missing and r.fixed:
                download = dict(disc.get("download") or {})
                if r.fixed == "cleared":
                    download.pop("status", None)
                    download.pop("status_since", None)
                else:
                    download["status"] = r.fixed.split()[-1]
                    download["status_since"] = now
                disc["download"] = download
    return True


def _store_manifest(disc: dict[str, Any], manifest: Manifest, *, set_expected: bool, lock: dict[str, Any]) -> None:
    from imageworks_models.registry.identity import extent

    disc["artifacts"] = manifest.as_artifacts()
    download = dict(disc.get("download") or {})
    # recorded for downloaded files, and for a curated backend_config.model_path (its size shows in stats)
    download["size_bytes"], download["file_count"] = extent(disc, manifest.total_bytes, len(manifest.files))
    disc["download"] = download
    if set_expected:
        lock["expected_aggregate"] = manifest.aggregate


# -- lock / unlock ---------------------------------------------------------------------------------


@honours_dry_run
def lock(names: Sequence[str], *, set_expected: bool = False, quick: bool = False, algorithm: str | None = None,
         dry_run: bool = False, settings: Any = None, plugins: Any = None,
         progress: hashing.Progress = hashing.SILENT) -> list[LockResult]:
    """Lock entries to their expected aggregate; with ``set_expected``, hash the files now and pin that.

    A locked entry whose files drift is reported by ``verify`` (exit 2), flagged by ``list`` and
    refused by activation.

    Args:
        names: entry names or aliases.
        set_expected: hash the files (reusing unchanged digests with ``quick``) and record the result
            as the expected aggregate.
        algorithm: hasher for ``set_expected`` (default: the ``hash_algorithm`` setting).
        dry_run: compute and report, write nothing.

    Returns:
        One :class:`LockResult` per entry.

    Raises:
        EntryNotFoundError: a name is unknown.
        NotVerifiableError: no aggregate is recorded and ``set_expected`` was not given, or no files.
        IntegrityError: a file could not be hashed.
    """
    if not names:
        raise ImageworksError("name the entries to lock", hint="e.g. imageworks-loader lock NAME --set-expected")
    settings, plugins = _context(settings, plugins)
    store = _store(settings)
    registry = store.load()
    entries = list({e["name"]: e for e in (registry.get(n) for n in names)}.values())
    results: list[LockResult] = []
    for entry in entries:
        name, lk = entry["name"], _lock_of(entry)
        res = LockResult(name, bool(lk.get("locked")), True, lk.get("expected_aggregate"), None, False)
        if set_expected:
            root = entry_root(entry, explicit=True)
            if not root.exists():
                raise NotVerifiableError(f"cannot lock {name!r}: {root} does not exist",
                                         hint="restore the files, or record where they are now with a scan")
            algo = algorithm or settings.hash_algorithm
            manifest = _hash_entry(root, algo, quick=quick, settings=settings, plugins=plugins, progress=progress,
                                   label=name)
            if manifest.errors:
                path, why = next(iter(manifest.errors.items()))
                raise IntegrityError(f"cannot lock {name!r}: {why}", hint="fix the file, then lock again")
            res.manifest, res.expected = manifest, manifest.aggregate
        else:
            if _legacy_manifest(entry) and not lk.get("expected_aggregate"):
                raise NotVerifiableError(f"cannot lock {name!r}: its manifest was recorded by the earlier tool",
                                         hint=f"hash it now: imageworks-loader lock {name} --set-expected")
            res.expected = expected_aggregate(entry)
            if not res.expected:
                raise NotVerifiableError(f"cannot lock {name!r}: no aggregate digest is recorded for it",
                                         hint=f"hash its files and lock: imageworks-loader lock {name} --set-expected")
        res.changed = not res.locked_before or res.expected != res.expected_before
        if res.expected_before and res.expected != res.expected_before:
            res.note = f"expected aggregate {short(res.expected_before)} -> {short(res.expected)}"
        results.append(res)
    if not dry_run and any(r.changed or r.manifest for r in results):
        from imageworks_models.fs.storage import utc_now

        now = utc_now()
        with store.edit() as layers:
            for r in results:
                disc = _discovered_entry(layers, r.name)
                lk = dict(disc.get("version_lock") or {})
                lk["locked"] = True
                lk["expected_aggregate"] = r.expected
                if r.manifest is not None:
                    _store_manifest(disc, r.manifest, set_expected=True, lock=lk)
                    lk.update(last_verified=now, last_checked=now, last_status="ok",
                              last_mode="quick" if quick else "full")
                disc["version_lock"] = lk
    return results


@honours_dry_run
def unlock(names: Sequence[str], *, clear_expected: bool = False, dry_run: bool = False,
           settings: Any = None) -> list[LockResult]:
    """Unlock entries. The expected aggregate is kept (``verify`` still compares against it) unless
    ``clear_expected``, after which the recorded manifest is the reference.

    Raises:
        EntryNotFoundError: a name is unknown.
    """
    if not names:
        raise ImageworksError("name the entries to unlock", hint="e.g. imageworks-loader unlock NAME")
    settings = _settings(settings)
    store = _store(settings)
    registry = store.load()
    entries = list({e["name"]: e for e in (registry.get(n) for n in names)}.values())
    results = []
    for entry in entries:
        lk = _lock_of(entry)
        expected = None if clear_expected else lk.get("expected_aggregate")
        results.append(LockResult(entry["name"], bool(lk.get("locked")), False, lk.get("expected_aggregate"),
                                  expected, bool(lk.get("locked")) or expected != lk.get("expected_aggregate")))
    if not dry_run and any(r.changed for r in results):
        with store.edit() as layers:
            for r in results:
                if not r.changed:
                    continue
                disc = _discovered_entry(layers, r.name)
                lk = dict(disc.get("version_lock") or {})
                lk["locked"] = False
                if clear_expected:
                    lk["expected_aggregate"] = None
                disc["version_lock"] = lk
    return results


# -- activation ------------------------------------------------------------------------------------


def check_activation_allowed(entry: dict[str, Any], *, settings: Any = None, plugins: Any = None,
                             quick: bool = True, progress: hashing.Progress = hashing.SILENT) -> VerifyResult | None:
    """Refuse to serve a locked entry whose files no longer match its expected aggregate.

    Unlocked entries pass without a check (returns ``None``). Locked ones are verified (by default
    reusing digests of files whose stat is unchanged); nothing is written to the registry.

    Raises:
        LockedEntryDriftError: the files differ, or are gone (exit code 2).
        NotVerifiableError: the entry is locked but its files cannot be checked here.
    """
    if not predicates.locked(entry):
        return None
    settings, plugins = _context(settings, plugins)
    name = entry["name"]
    root = entry_root(entry, explicit=True)
    hint = (f"inspect the changes with `imageworks-loader verify {name}`; if they are intended, "
            f"`imageworks-loader lock {name} --set-expected`, or `unlock {name}` to serve it anyway")
    if not root.exists():
        raise LockedEntryDriftError(f"refusing to activate {name!r}: it is locked and its files are gone ({root})",
                                    hint=hint)
    result = _verify_hashes(entry, root, quick=quick, accept=False, algorithm=None, settings=settings,
                            plugins=plugins, progress=progress)
    if result.status == "error":
        raise IntegrityError(f"refusing to activate {name!r}: it is locked and {result.note}", hint=hint)
    if result.failed:  # "recorded": an earlier tool's manifest that matched, or nothing pinned to compare
        raise LockedEntryDriftError(
            f"refusing to activate {name!r}: it is locked and its files no longer match "
            f"(expected {short(expected_aggregate(entry))}, found {short(result.actual)})",
            changes=[c.describe() for c in result.changes], hint=hint)
    return result


__all__ = ["VerifyResult", "VerifyReport", "LockResult", "verify", "lock", "unlock", "check_activation_allowed",
           "expected_aggregate", "entry_root"]


def file_rows(entry: dict[str, Any], result: VerifyResult, *, prefix: int = 12) -> list[dict[str, Any]]:
    """A verify's per-file detail, as the GUI shows it: ``[{"path", "size", "expected", "actual", "status"}]``
    (digest prefixes without the algorithm; status ok | changed | missing | extra | renamed | unreadable |
    recorded), the changed files first. Only what the verify saw: nothing is hashed again."""
    def digest_prefix(record: FileRecord | None) -> str | None:
        if record is None or not record.digest:
            return None
        return record.digest.split(":", 1)[-1][:prefix]

    recorded = {f.path: f for f in _recorded_files(entry)}
    rows: dict[str, dict[str, Any]] = {}
    manifest = result.manifest
    for f in (manifest.files if manifest is not None else []):
        if f.special or (f.link and not f.digest):
            continue
        expected = recorded.get(f.path)
        status = "recorded" if expected is None and result.status == "recorded" else "ok"
        rows[f.path] = {"path": f.path, "size": f.size, "expected": digest_prefix(expected) or (digest_prefix(f) if status == "recorded"
                                                                                       else None),
                        "actual": digest_prefix(f), "status": status}
    for c in result.changes:
        rows[c.path] = {"path": c.path, "size": (c.actual or c.expected).size if (c.actual or c.expected) else None,
                        "expected": digest_prefix(c.expected), "actual": digest_prefix(c.actual), "status": c.change}
    return sorted(rows.values(), key=lambda r: (r["status"] in ("ok", "recorded"), r["path"]))
