"""Find models in a weights folder laid out the Hugging Face way, cheaply (names and stats only).

What counts as a model (documented in the README, "scan"):

- a **model folder**: it holds ``config.json``, ``*.safetensors`` or pickle weights; the walk does not
  descend into it;
- a **Hugging Face cache** repo ``models--<org>--<name>/snapshots/<commit>``: each snapshot a ref
  (``refs/main``...) points to; unreferenced (older) snapshots are skipped;
- a **GGUF file** in any other folder: one model per quant (the first part of a split file; ``mmproj``
  projectors belong to their model and are not models).

Symlinked folders are never followed (a link can lead out of the weights root); hidden folders
(``.git``, ``.cache``, our staging folder) are skipped. Placeholders — folders whose weights are
missing, empty or git-LFS pointers, or named as dummies — are reported with a reason, and the core
skips them unless ``--include-testing``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from imageworks_models.api import is_lfs_pointer
from imageworks_models.api import Discovered

from .choose import GGUF, PICKLE_SUFFIXES, SAFETENSORS

MAX_DEPTH = 8
_SPLIT_ANY = re.compile(r"(?i)-\d{5}-of-\d{5}(?=\.gguf$)")
_DUMMY = re.compile(r"(?i)(placeholder|dummy|tiny-random)")
_WEIGHT_SUFFIXES = (SAFETENSORS,) + PICKLE_SUFFIXES


def scan(root: Path) -> Iterator[Discovered]:
    """Yield every model under ``root`` (see the module docstring), in a stable (sorted) order."""
    yield from _walk(Path(root), 0)


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        return []


def _walk(folder: Path, depth: int) -> Iterator[Discovered]:
    entries = _entries(folder)
    names = {e.name for e in entries}
    if depth > 0 and _is_model_folder(entries, names):
        yield _model_folder(folder, entries)
        return
    ggufs = [e for e in entries if e.is_file(follow_symlinks=False) and e.name.lower().endswith(GGUF)]
    subdirs = [e for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
               and e.name != "__pycache__"]
    if ggufs:
        yield from _ggufs(folder, ggufs, whole_folder=not subdirs)
    for e in subdirs:
        if e.name.startswith("models--") and os.path.isdir(os.path.join(e.path, "snapshots")):
            yield from _cache_repo(Path(e.path))
        elif depth < MAX_DEPTH:
            yield from _walk(Path(e.path), depth + 1)


def _is_model_folder(entries: list[os.DirEntry], names: set[str]) -> bool:
    if "config.json" in names or "model.safetensors.index.json" in names:
        return True
    return any(e.name.lower().endswith(_WEIGHT_SUFFIXES) for e in entries)


def _model_folder(folder: Path, entries: list[os.DirEntry], *, repo_id: str | None = None,
                  commit: str | None = None, revision: str | None = None, hint: str | None = None) -> Discovered:
    weights = [e for e in entries if e.name.lower().endswith(_WEIGHT_SUFFIXES + (GGUF,))]
    reason = None
    if _DUMMY.search(hint or folder.name):
        reason = f"named as a test model ({_DUMMY.search(hint or folder.name)[0]})"
    elif not weights:
        reason = "no weight files"
    else:
        sizes = [_size(e) for e in weights]
        if all(s == 0 for s in sizes):
            reason = "weight files are empty"
        elif all(is_lfs_pointer(e.path, size=s) for e, s in zip(weights, sizes)):
            reason = "weight files are git-LFS pointers (run git lfs pull)"
    return Discovered(path=str(folder), name_hint=hint or folder.name, provider="hf", repo_id=repo_id,
                      commit=commit, revision=revision, placeholder=reason)


def _size(e: os.DirEntry) -> int:
    try:
        return e.stat(follow_symlinks=True).st_size
    except OSError:
        return 0


def _ggufs(folder: Path, files: list[os.DirEntry], *, whole_folder: bool) -> Iterator[Discovered]:
    """The GGUF models of one folder.

    A single GGUF file is the model, identified by its file. A folder holding one model split in parts or
    with an ``mmproj`` projector, and no sub-folders, is that model: its manifest covers every part and the
    projector. Otherwise each quant file is a model of its own, and a split one (whose parts could not all
    be in one manifest) is skipped with a reason.
    """
    groups: dict[str, list[os.DirEntry]] = {}
    projectors = [e for e in files if "mmproj" in e.name.lower()]
    for e in files:
        if "mmproj" in e.name.lower():
            continue
        groups.setdefault(_SPLIT_ANY.sub("", e.name), []).append(e)
    if not groups:
        return
    if whole_folder and len(groups) == 1:
        (stem_name, parts), = groups.items()
        # One file alone is identified by the file, whatever root the scan started from (the same entry
        # from a scan of its folder or of a parent); parts or a projector make the folder the model.
        many = len(parts) > 1 or bool(projectors) or bool(_SPLIT_ANY.search(parts[0].name))
        yield _gguf_model(folder, parts, path=str(folder) if many else parts[0].path, hint=stem_name[:-len(GGUF)])
        return
    for stem_name, parts in groups.items():
        hint = stem_name[:-len(GGUF)]
        if len(parts) > 1 or _SPLIT_ANY.search(parts[0].name):
            yield Discovered(path=parts[0].path, name_hint=hint, provider="hf",
                             problem=f"a split GGUF ({len(parts)} parts) among other models in {folder}: "
                                     "move its parts into a folder of their own, then scan again")
            continue
        yield _gguf_model(folder, parts, path=parts[0].path, hint=hint)


def _gguf_model(folder: Path, parts: list[os.DirEntry], *, path: str, hint: str) -> Discovered:
    reason = None
    sizes = [_size(e) for e in parts]
    if all(s == 0 for s in sizes):
        reason = "the file is empty"
    elif all(is_lfs_pointer(e.path, size=s) for e, s in zip(parts, sizes)):
        reason = "the file is a git-LFS pointer"
    elif _DUMMY.search(hint):
        reason = f"named as a test model ({_DUMMY.search(hint)[0]})"
    return Discovered(path=path, name_hint=hint, provider="hf", placeholder=reason)


def _cache_repo(repo_dir: Path) -> Iterator[Discovered]:
    """``models--org--name``: the snapshots its refs point to."""
    org_name = repo_dir.name[len("models--"):]
    org, _, name = org_name.partition("--")
    repo_id = f"{org}/{name}" if name else org
    refs: dict[str, str] = {}
    for ref in sorted((repo_dir / "refs").rglob("*")) if (repo_dir / "refs").is_dir() else ():
        if ref.is_file() and not ref.is_symlink():
            try:
                commit = ref.read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError):
                continue
            refs.setdefault(commit, str(ref.relative_to(repo_dir / "refs")))
    snapshots = [e for e in _entries(repo_dir / "snapshots") if e.is_dir(follow_symlinks=False)]
    for snap in snapshots:
        if refs and snap.name not in refs:
            continue
        entries = _entries(Path(snap.path))
        yield _model_folder(Path(snap.path), entries, repo_id=repo_id, commit=snap.name,
                            revision=refs.get(snap.name), hint=name or org)
