"""The Hub side of a download: resolve a revision to its commit and list that commit's files.

The two API calls go through :mod:`imageworks_models_hf.hubapi` (the Hub's error codes become ours, one
line each with what to do). The listing is taken *at the resolved commit*, never at the branch, so every
file of one download comes from one commit even if the branch moves meanwhile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from imageworks_models.api import AcquisitionError, RemoteUnavailableError
from imageworks_models.api import check_relative_name

COMMIT_LEN = 40


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo at a commit.

    Attributes:
        path: its name in the repo (checked safe).
        size: bytes.
        sha256: the LFS object's sha256 (large files), else ``None``.
        git_oid: the git blob id (sha1 of ``blob <size>\\0`` + content) for non-LFS files.
    """

    path: str
    size: int
    sha256: str | None
    git_oid: str | None

    @property
    def lfs(self) -> bool:
        return self.sha256 is not None


@dataclass(frozen=True)
class RemoteRepo:
    repo_id: str
    revision: str
    commit: str
    files: tuple[RemoteFile, ...]
    gated: bool = False
    private: bool = False
    config: dict | None = None  # the Hub's summary of config.json (architectures, quantization_config...)
    dtypes: dict | None = None  # safetensors parameters by dtype, as the Hub counts them ({"BF16": n})


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``owner/repo[@revision]`` into ``(repo_id, revision)`` (revision defaults to ``main``).

    Raises:
        AcquisitionError: the spec is not ``owner/repo`` with safe characters.
    """
    repo_id, _, revision = spec.strip().partition("@")
    parts = repo_id.split("/")
    ok = len(parts) == 2 and all(p and p not in (".", "..") and all(c.isalnum() or c in "-_." for c in p)
                                 for p in parts)
    if not ok:
        raise AcquisitionError(f"not a Hugging Face model id: {spec!r}",
                               hint='write it as "owner/repo" or "owner/repo@revision", e.g. "Qwen/Qwen3-8B@main"')
    if revision and (len(revision) > 255 or any(ord(c) < 32 for c in revision) or ".." in revision):
        raise AcquisitionError(f"not a valid revision: {revision!r}", hint="use a branch, a tag or a commit sha")
    return repo_id, revision or "main"


# What people paste: the Hub's page of a repo, of a revision, or of one file in it.
SHAPES = ("owner/name", "owner/name@revision", "https://<hub>/owner/name", "https://<hub>/owner/name/tree/<revision>",
          "https://<hub>/owner/name/blob/<revision>/<file>")
_URL = re.compile(r"^https?://[^/\s]+/")
_PUBLIC_HUBS = ("huggingface.co", "www.huggingface.co", "hf.co")


def is_url(spec: str) -> bool:
    """Whether ``spec`` is an http(s) URL (then :func:`parse_reference` reads its path)."""
    return bool(_URL.match(spec.strip()))


def parse_reference(spec: str, *, endpoint: str) -> tuple[str, str, str | None]:
    """``(repo_id, revision, file or None)`` from any shape in :data:`SHAPES`.

    A URL must be on the configured endpoint's host (or the public Hub's, e.g. a link copied from
    huggingface.co while ``HF_ENDPOINT`` points at a mirror); the download always uses the configured
    endpoint. ``/blob/<rev>/<file>`` and ``/resolve/<rev>/<file>`` name one file.

    Raises:
        AcquisitionError: not one of the shapes, a dataset or Space, or another host.
    """
    spec = spec.strip()
    if not is_url(spec):
        repo_id, revision = parse_spec(spec)
        return repo_id, revision, None
    parts = urlsplit(spec)
    host = (parts.hostname or "").lower()
    ours = (urlsplit(endpoint).hostname or "").lower()
    if host != ours and host not in _PUBLIC_HUBS:
        raise AcquisitionError(f"{host} is not the configured Hub ({ours or endpoint})",
                               hint="set HF_ENDPOINT to that Hub, or write the model as owner/name")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if segments and segments[0] in ("datasets", "spaces"):
        raise AcquisitionError(f"{spec} is a {segments[0][:-1]}, not a model repo",
                               hint="download models only: https://<hub>/owner/name")
    shape = ", ".join(SHAPES)
    if len(segments) < 2:
        raise AcquisitionError(f"no model repo in {spec!r}", hint=f"accepted: {shape}")
    repo_id, rest = "/".join(segments[:2]), segments[2:]
    revision, file = "main", None
    if rest:
        if rest[0] not in ("tree", "blob", "resolve") or len(rest) < 2 or (rest[0] != "tree" and len(rest) < 3):
            raise AcquisitionError(f"not a model page, revision or file URL: {spec!r}", hint=f"accepted: {shape}")
        revision = rest[1]
        file = "/".join(rest[2:]) or None
    repo_id, revision = parse_spec(f"{repo_id}@{revision}")
    return repo_id, revision, file


def check_endpoint(endpoint: str) -> str:
    """The Hub endpoint without a trailing slash; only http(s) URLs are accepted.

    Raises:
        AcquisitionError: another scheme (``file:``, ``ftp:``...) or no host.
    """
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AcquisitionError(f"the Hugging Face endpoint must be an http(s) URL, not {endpoint!r}",
                               hint="fix HF_ENDPOINT (or hf_endpoint in the config file)")
    return endpoint.rstrip("/")


DEFAULT_TIMEOUTS = (10.0, 60.0)


def _within(seconds: float, what: str, call):
    """``call()``, or :class:`RemoteUnavailableError` when it has not returned after ``seconds`` (a server that
    trickles a byte at a time never trips a read timeout). The abandoned call dies with the process."""
    import threading

    box: dict = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True, name="hub-request")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise RemoteUnavailableError(f"{what}: no complete answer within {seconds:g} s (the Hub stalled)",
                                     hint="try again; raise download_read_timeout (IMAGEWORKS_DOWNLOAD_READ_TIMEOUT) "
                                          "for a slow link")
    if "error" in box:
        raise box["error"]
    return box["value"]


def latest_commit(repo_id: str, revision: str, *, endpoint: str, token: str | None,
                  timeouts: tuple[float, float] = DEFAULT_TIMEOUTS) -> tuple[str, dict]:
    """The commit ``revision`` of ``repo_id`` is at now, and the Hub's model info there (one API call).

    Raises:
        RemoteNotFoundError, RemoteAccessError, RemoteUnavailableError: as the Hub answered (or it gave no
            commit, or no complete answer within ``connect + 4 * read`` seconds).
    """
    from .hubapi import model_info

    endpoint = check_endpoint(endpoint)
    info = _within(timeouts[0] + 4 * timeouts[1], f"{repo_id}@{revision}",
                   lambda: model_info(endpoint, repo_id, revision, token=token, timeouts=timeouts))
    commit = info.get("sha")
    if not isinstance(commit, str) or len(commit) != COMMIT_LEN:
        raise RemoteUnavailableError(f"the Hub gave no commit for {repo_id}@{revision}",
                                     hint="try again; if it persists, pass a commit sha as @revision")
    return commit, info


def resolve(repo_id: str, revision: str, *, endpoint: str, token: str | None,
            timeouts: tuple[float, float] = DEFAULT_TIMEOUTS) -> RemoteRepo:
    """Resolve ``revision`` of ``repo_id`` to its commit and list every file at that commit.

    Args:
        repo_id: ``owner/repo``.
        revision: a branch, tag or commit sha.
        endpoint: the Hub URL (checked http(s)).
        token: a Hub token or ``None`` (anonymous).
        timeouts: (connect, read) seconds for each request (settings ``download_connect_timeout`` and
            ``download_read_timeout``); the whole resolve gets ``connect + 4 * read`` at most.

    Returns:
        The commit and its files with sizes and published digests.

    Raises:
        RemoteNotFoundError, RemoteAccessError, RemoteUnavailableError: as the Hub answered.
        UnsafePathError: the listing holds a file name that could escape the target folder.
    """
    from .hubapi import list_tree

    endpoint = check_endpoint(endpoint)
    commit, info = latest_commit(repo_id, revision, endpoint=endpoint, token=token, timeouts=timeouts)
    entries = _within(timeouts[0] + 4 * timeouts[1], f"{repo_id}@{revision}",
                      lambda: list_tree(endpoint, repo_id, commit, token=token, timeouts=timeouts))
    files = []
    for item in entries:
        if item.get("type") != "file":
            continue  # a folder
        size, lfs = item.get("size"), item.get("lfs")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(item.get("path"), str):
            raise RemoteUnavailableError(f"the Hub listed a file of {repo_id} without a path or size: "
                                         f"{str(item)[:200]}")
        path = str(check_relative_name(item["path"]))
        sha = lfs.get("oid") if isinstance(lfs, dict) else None
        if lfs is not None and (not isinstance(sha, str) or len(sha) != 64
                                or any(c not in "0123456789abcdef" for c in sha)):
            raise RemoteUnavailableError(f"the Hub listed a malformed sha256 for {repo_id}/{path}: {sha!r}")
        oid = item.get("oid")
        files.append(RemoteFile(path=path, size=size, sha256=sha,
                                git_oid=None if lfs is not None or not isinstance(oid, str) else oid))
    files.sort(key=lambda f: f.path)
    config = info.get("config")
    safetensors = info.get("safetensors")
    dtypes = safetensors.get("parameters") if isinstance(safetensors, dict) else None
    return RemoteRepo(repo_id=repo_id, revision=revision, commit=commit, files=tuple(files),
                      gated=bool(info.get("gated", False)), private=bool(info.get("private", False)),
                      config=config if isinstance(config, dict) else None,
                      dtypes={str(k): int(v) for k, v in dtypes.items() if isinstance(v, int)}
                      if isinstance(dtypes, dict) else None)


def file_url(endpoint: str, repo_id: str, commit: str, path: str) -> str:
    """The resolve URL of one file at one commit (never at a branch)."""
    from urllib.parse import quote

    return f"{check_endpoint(endpoint)}/{repo_id}/resolve/{commit}/{quote(path)}"
