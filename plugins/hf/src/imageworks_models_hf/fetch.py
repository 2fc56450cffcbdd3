"""Download a Hugging Face repo into the weights folder, all-or-nothing.

Layout while it runs (beside the destination, on the same filesystem so the last step is a rename)::

    <weights>/.imageworks-staging/<owner>--<repo>--<commit>/
        parts/<file>      bytes arriving (kept across runs: a rerun resumes them)
        files/<file>      files whose digest matched the Hub's (never unverified bytes)
        digests.json      sha256 of each file in files/ (so a resumed run need not read them again)
    <weights>/.imageworks-staging/<owner>--<repo>--<commit>.lock

Only when every file is in ``files/`` is that folder renamed to ``<weights>/<owner>/<repo>``; the
registry is written after that, by the core. A failure at any step leaves the registry and any earlier
copy of the model as they were.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from imageworks_models.api import (AcquisitionError, ArtifactFormatError, DiskSpaceError, DownloadError, RemoteAccessError)
from imageworks_models.api import quantization, read_json
from imageworks_models.api import is_lfs_pointer
from imageworks_models.api import SILENT, Progress
from imageworks_models.api import Discovered, Fetched, FetchRequest
from imageworks_models.api import safe_join

from . import choose as choosing
from .hubapi import get_token
from .remote import RemoteFile, file_url, parse_reference, parse_spec, resolve

STAGING = ".imageworks-staging"
RESERVE = 64 << 20  # keep this much free beyond the download itself


def fetch(request: FetchRequest, *, settings, progress: Progress = SILENT, hash_file=None) -> Fetched:
    """Resolve, plan, download, verify and move a repo into place (see the module docstring).

    Args:
        request: what to fetch (the core builds it from the command line).
        settings: resolved settings (``hf_endpoint``, ``use_aria2``, ``download_connections``, ``lock_timeout``).
        progress: started with the total bytes once the plan is known.
        hash_file: ``hash_file(path) -> sha256 hex``, used after aria2c (the core's hasher).

    Returns:
        The model (its final folder) and the transfer's facts; for a dry run, the plan only.

    Raises:
        AcquisitionError and its subclasses; the registry is never touched here.
    """
    from imageworks_models.api import file_lock

    endpoint = settings.hf_endpoint
    repo_id, revision, file = parse_reference(request.spec, endpoint=endpoint)
    if file and not request.weights:  # a link to one file of the repo: that file (and the essentials)
        request = dataclasses.replace(request, weights=(file,))
    token = get_token()
    timeouts = (settings.download_connect_timeout, settings.download_read_timeout)
    remote = resolve(repo_id, request.commit or revision, endpoint=endpoint, token=token, timeouts=timeouts)
    support = None
    if request.support_repo:
        s_id, s_rev = parse_spec(request.support_repo)
        support = resolve(s_id, s_rev, endpoint=endpoint, token=token, timeouts=timeouts)
    plan = choosing.plan_files(remote, format=request.format, weights=request.weights,
                               include_optional=request.include_optional, support=support, choose=request.choose)
    root = Path(request.dest_root).expanduser()
    dest = safe_join(root, repo_id, where="destination")
    if request.dest:  # the registry says where this model lives (a curated backend_config.model_path)
        dest = Path(os.path.abspath(os.path.expanduser(request.dest)))
        root = dest.parent  # staging beside it, on the same filesystem, so the last step is a rename
    model = Discovered(path=str(dest), name_hint=repo_id.split("/")[1], provider="hf", repo_id=repo_id,
                       revision=revision, commit=remote.commit)
    notes = list(plan.notes)
    if support is not None:
        notes.append(f"support files from {support.repo_id}@{support.commit[:12]}: "
                     + (", ".join(f.path for f in plan.support) or "none"))
    if remote.gated and not token:
        notes.append(f"{repo_id} is gated: downloading it needs HF_TOKEN and its licence accepted on the Hub")
    if request.dry_run:
        fmt, quant = _peek_format(plan, remote)
        return _fetched(model, plan, notes, format=fmt, quantization=quant)
    if remote.gated and not token:
        raise RemoteAccessError(f"{repo_id} is gated: its licence must be accepted before it can be downloaded",
                                hint=f"accept it at {endpoint.rstrip('/')}/{repo_id}, then set HF_TOKEN "
                                     "(or run `hf auth login`)")

    staging_root = root / STAGING
    staging = safe_join(staging_root, f"{repo_id.replace('/', '--')}--{remote.commit}", where="staging folder")
    staging_root.mkdir(parents=True, exist_ok=True)
    # one lock per destination: two runs (even of two commits) never fetch or promote into it at once
    with file_lock(staging_root / f"{repo_id.replace('/', '--')}.lock", timeout=settings.lock_timeout,
                   what=f"a download of {repo_id}"):
        if dest.exists() and not request.force:  # checked under the lock: another run may have just finished
            digests = _already_there(dest, plan.files, hash_file)
            if digests is not None:
                notes.append(f"already downloaded: {dest} holds these files, each matching the Hub's digest "
                             "(--force fetches them again)")
                return _fetched(model, plan, notes, reused_bytes=plan.total_bytes, digests=digests)
            raise AcquisitionError(f"{dest} already exists and its files are not {repo_id}@{remote.commit[:12]}",
                                   hint="add --force to replace it (the old copy stays until the new one is "
                                        "complete), or download to another --location")
        return _download(request, settings, plan, remote, support, staging, dest, model, notes,
                         token=token, endpoint=endpoint, progress=progress, hash_file=hash_file)


def _peek_format(plan, remote) -> tuple[str | None, str | None]:
    """The format and quantization the files will be recorded with, known before any file moves: the GGUF
    quant chosen, or, for safetensors repos, what the Hub's model info says of config.json (its
    ``quantization_config``) and of the weights' dtypes. ``(plan.format, plan.quant)`` when it says nothing."""
    from imageworks_models.api import format_from_config

    if plan.format == "gguf" or (plan.quant and not plan.format):
        return "gguf", plan.quant
    if not any(f.path.endswith(".safetensors") for f in plan.main) or (remote.config is None and not remote.dtypes):
        return plan.format, plan.quant
    fmt, quant = format_from_config(remote.config or {}, remote.dtypes)
    if plan.format and plan.format not in ("safetensors", fmt):
        return plan.format, plan.quant  # asked for another format: the download refuses it later, as before
    return fmt, quant


def _already_there(dest: Path, files: list[RemoteFile], hash_file) -> dict[str, str] | None:
    """sha256 of each file in ``dest`` if every one matches the Hub's published digest, else ``None``.

    Sizes first (cheap); then small files by their git blob id and LFS files by sha256: a copy of the
    right size but other bytes (a corrupted file, a branch that moved) is never taken for this commit.
    """
    import hashlib

    paths = {}
    for f in files:
        p = dest / f.path
        if not p.is_file() or p.is_symlink() or p.stat().st_size != f.size:
            return None
        paths[f.path] = p
    digests = {}
    for f in files:
        p = paths[f.path]
        if f.sha256 is not None:
            sha = hash_file(p) if hash_file else hashlib.sha256(p.read_bytes()).hexdigest()
            if sha != f.sha256:
                return None
        else:
            data = p.read_bytes()  # a small git file
            if f.git_oid and hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() != f.git_oid:
                return None
            sha = hashlib.sha256(data).hexdigest()
        digests[f.path] = sha
    return digests


def _download(request, settings, plan, remote, support, staging: Path, dest: Path, model: Discovered,
              notes, *, token, endpoint, progress, hash_file) -> Fetched:
    from . import aria2, transfer

    files_dir, parts_dir = staging / "files", staging / "parts"
    digests = _load_digests(staging)
    todo: list[tuple[RemoteFile, str, str]] = [(f, remote.repo_id, remote.commit) for f in plan.main]
    if support is not None:
        todo += [(f, support.repo_id, support.commit) for f in plan.support]
    # small files first: config.json tells whether the weights are the format asked for before GBs arrive
    todo.sort(key=lambda t: (choosing.is_weight(t[0].path), t[0].size, t[0].path))
    done = {f.path for f, _, _ in todo if f.path in digests and _complete(files_dir, f)}
    _check_space(staging, todo, done, parts_dir)

    aria2c = aria2.available() if (request.use_aria2 and settings.use_aria2) else None
    token_origin = transfer.origin(endpoint)
    progress.start(total_bytes=plan.total_bytes, files=len(todo), label=f"{remote.repo_id}@{remote.commit[:12]}")
    transferred = reused = 0
    used_aria2 = 0
    checked_format = False
    try:
        for f, repo_id, commit in todo:
            if not checked_format and choosing.is_weight(f.path):
                _check_format(files_dir, request.format, remote.repo_id)
                checked_format = True
            if f.path in done:
                progress.advance(f.size)
                reused += f.size
                continue
            final = safe_join(files_dir, f.path)
            part = safe_join(parts_dir, f.path)
            target = transfer.Target(url=file_url(endpoint, repo_id, commit, f.path), part=part, size=f.size,
                                     sha256=f.sha256, git_oid=f.git_oid, label=f"{repo_id}/{f.path}", commit=commit)
            if aria2c and f.size >= aria2.MIN_SIZE:
                outcome = aria2.fetch(target, aria2c=aria2c, connections=settings.download_connections, token=token,
                                      token_origin=token_origin, progress=progress, hash_file=hash_file,
                                      limits={"connect_timeout": settings.download_connect_timeout,
                                              "read_timeout": settings.download_read_timeout,
                                              "min_rate": settings.download_min_rate})
                used_aria2 += 1
            else:
                outcome = transfer.fetch(target, token=token, token_origin=token_origin, progress=progress,
                                         timeout=settings.download_read_timeout,
                                         connect_timeout=settings.download_connect_timeout,
                                         floor=transfer.RateFloor(settings.download_min_rate,
                                                                  settings.download_rate_window))
            _refuse_pointer(part, f)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, final)
            digests[f.path] = outcome.sha256
            _save_digests(staging, digests)
            transferred += outcome.transferred
            reused += outcome.reused
        if not checked_format:
            _check_format(files_dir, request.format, remote.repo_id)
    finally:
        progress.finish()
    _promote(files_dir, dest, staging)
    shutil.rmtree(staging, ignore_errors=True)
    if used_aria2:
        notes.append(f"aria2c fetched {used_aria2} large file{'s' if used_aria2 != 1 else ''}")
    return _fetched(model, plan, notes, transferred_bytes=transferred, reused_bytes=reused, digests=digests)


def _fetched(model: Discovered, plan, notes: list[str], *, digests: dict[str, str] | None = None,
             format: str | None = None, quantization: str | None = None, **facts) -> Fetched:
    """The result: the plan's files, and ``digests`` (sha256 hex by file) of those files only."""
    names = tuple(f.path for f in plan.files)
    wanted = set(names)
    return Fetched(model=model, files=names, total_bytes=plan.total_bytes, format=format or plan.format,
                   quantization=quantization or plan.quant, notes=tuple(notes),
                   digests={p: f"sha256:{d}" for p, d in (digests or {}).items() if p in wanted}, **facts)


def _complete(files_dir: Path, f: RemoteFile) -> bool:
    p = files_dir / f.path
    return p.is_file() and not p.is_symlink() and p.stat().st_size == f.size


def _check_space(staging: Path, todo, done: set[str], parts_dir: Path) -> None:
    need = 0
    for f, _, _ in todo:
        if f.path in done:
            continue
        part = parts_dir / f.path
        have = part.stat().st_size if part.is_file() else 0
        need += max(0, f.size - have)
    probe = staging if staging.exists() else staging.parent
    free = shutil.disk_usage(probe).free
    if need + RESERVE > free:
        raise DiskSpaceError(f"not enough free space in {probe}: the download needs {_gb(need)} "
                             f"(+{_gb(RESERVE)} reserve), {_gb(free)} is free",
                             hint="free some space, or download to another location with --location")


def _gb(n: int) -> str:
    from imageworks_models.api import human_bytes

    return human_bytes(n)


def _refuse_pointer(part: Path, f: RemoteFile) -> None:
    """A git-LFS pointer where weights belong is not a model file (D8)."""
    if choosing.is_weight(f.path) and is_lfs_pointer(part):
        part.unlink()
        raise DownloadError(f"{f.path}: the repo holds a git-LFS pointer, not the weights",
                            hint="the repo's LFS objects are missing on the server; pick another revision")


def _check_format(files_dir: Path, wanted: str | None, repo_id: str) -> None:
    """For ``--format awq`` (gptq, fp8...) refuse before the weights arrive if config.json says otherwise."""
    if not wanted or wanted.lower() not in choosing.QUANT_METHODS:
        return
    config = files_dir / "config.json"
    method = None
    if config.is_file():
        try:
            method = quantization(read_json(config)).get("method")
        except ArtifactFormatError:
            method = None  # an unreadable config cannot vouch for the format either
    aliases = {"bnb": "bitsandbytes"}
    if method != aliases.get(wanted.lower(), wanted.lower()):
        raise AcquisitionError(f"{repo_id} is not {wanted} (its config.json says quantization: {method or 'none'})",
                               hint="drop --format to take the repo as it is, or pick the repo of that format")


def _load_digests(staging: Path) -> dict[str, str]:
    try:
        data = json.loads((staging / "digests.json").read_text())
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str) and len(v) == 64}
    except (OSError, ValueError, AttributeError):
        return {}


def _save_digests(staging: Path, digests: dict[str, str]) -> None:
    from imageworks_models.api import atomic_write

    atomic_write(staging / "digests.json", json.dumps(digests, sort_keys=True).encode())


def _promote(files_dir: Path, dest: Path, staging: Path) -> None:
    """Rename the verified files into place; an earlier copy is swapped out, then removed."""
    from imageworks_models.api import fsync_dir

    dest.parent.mkdir(parents=True, exist_ok=True)
    if not files_dir.exists():
        files_dir.mkdir(parents=True)
    old = None
    if dest.exists() or dest.is_symlink():
        old = staging / "replaced"
        os.replace(dest, old)
    try:
        os.replace(files_dir, dest)
    except OSError:
        if old is not None:
            os.replace(old, dest)
        raise
    fsync_dir(dest.parent)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
