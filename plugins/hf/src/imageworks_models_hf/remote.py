"""The Hub side of a download: resolve a revision to its commit and list that commit's files.

Everything here goes through huggingface_hub's own ``HfApi`` (so proxies, tokens and the Hub's error
codes behave as users know them); its exceptions become ours, one line each with what to do. The
listing is taken *at the resolved commit*, never at the branch, so every file of one download comes
from one commit even if the branch moves meanwhile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from imageworks_models.api import (AcquisitionError, RemoteAccessError, RemoteNotFoundError, RemoteUnavailableError, UnsafePathError)
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


def translate(exc: BaseException, *, repo_id: str, revision: str, endpoint: str) -> Exception:
    """Our error for an exception raised by huggingface_hub (or its HTTP client) for ``repo_id``."""
    from huggingface_hub import errors as hf

    what = f"{repo_id}@{revision}"
    if isinstance(exc, hf.GatedRepoError):
        return RemoteAccessError(f"{repo_id} is gated: its licence must be accepted before it can be downloaded",
                                 hint=f"accept it at {endpoint}/{repo_id}, then set HF_TOKEN "
                                      "(or run `hf auth login`)")
    if isinstance(exc, hf.RepositoryNotFoundError):
        return RemoteNotFoundError(f"repository {repo_id} not found at {endpoint} (or it is private)",
                                   hint="check the spelling; for a private repo set HF_TOKEN")
    if isinstance(exc, hf.RevisionNotFoundError):
        return RemoteNotFoundError(f"revision {revision!r} not found in {repo_id}",
                                   hint="use an existing branch, tag or commit sha")
    if isinstance(exc, hf.EntryNotFoundError):
        return RemoteNotFoundError(f"a file of {what} is missing on the Hub: {_short(exc)}")
    if isinstance(exc, hf.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return RemoteAccessError(f"the Hub refused access to {repo_id} (HTTP {status})",
                                     hint="check HF_TOKEN: it may be missing, expired or lack read access")
        return RemoteUnavailableError(f"the Hub answered HTTP {status} for {what}: {_short(exc)}",
                                      hint="try again later, or check HF_ENDPOINT")
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)) or type(exc).__module__.startswith("httpx"):
        return RemoteUnavailableError(f"cannot reach {endpoint}: {_short(exc)}",
                                      hint="check the network, proxy settings and HF_ENDPOINT")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


DEFAULT_TIMEOUTS = (10.0, 60.0)


def _use_timeouts(connect: float, read: float):
    """Give huggingface_hub's shared HTTP client connect and read timeouts (its default has none, so a stalled
    Hub hung forever, D23); returns the timeout to pass to calls that take one."""
    import huggingface_hub
    from huggingface_hub.utils import _http

    def factory():
        client = _http.default_client_factory()
        client.timeout = type(client.timeout)(read, connect=connect)
        return client

    if getattr(_use_timeouts, "current", None) != (connect, read):
        huggingface_hub.set_client_factory(factory)
        _use_timeouts.current = (connect, read)
    return huggingface_hub.get_session().timeout


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
    from huggingface_hub import HfApi

    endpoint = check_endpoint(endpoint)
    connect, read = timeouts
    timeout = _use_timeouts(connect, read)
    api = HfApi(endpoint=endpoint, token=token if token else False)
    budget = connect + 4 * read
    try:
        info = _within(budget, f"{repo_id}@{revision}",
                       lambda: api.model_info(repo_id, revision=revision, timeout=timeout))
        commit = info.sha
        if not isinstance(commit, str) or len(commit) != COMMIT_LEN:
            raise RemoteUnavailableError(f"the Hub gave no commit for {repo_id}@{revision}",
                                         hint="try again; if it persists, pass a commit sha as @revision")
        entries = _within(budget, f"{repo_id}@{revision}",
                          lambda: list(api.list_repo_tree(repo_id, revision=commit, recursive=True)))
    except (AcquisitionError, UnsafePathError):
        raise
    except Exception as exc:
        raise translate(exc, repo_id=repo_id, revision=revision, endpoint=endpoint) from exc
    files = []
    for item in entries:
        if not hasattr(item, "blob_id") or getattr(item, "size", None) is None:
            continue  # a folder
        path = str(check_relative_name(item.path))
        lfs = getattr(item, "lfs", None)
        sha = lfs.sha256 if lfs else None
        if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise RemoteUnavailableError(f"the Hub listed a malformed sha256 for {repo_id}/{path}: {sha!r}")
        files.append(RemoteFile(path=path, size=int(item.size), sha256=sha,
                                git_oid=None if lfs else getattr(item, "blob_id", None)))
    files.sort(key=lambda f: f.path)
    config = getattr(info, "config", None)
    safetensors = getattr(info, "safetensors", None)
    dtypes = getattr(safetensors, "parameters", None) if safetensors is not None else None
    return RemoteRepo(repo_id=repo_id, revision=revision, commit=commit, files=tuple(files),
                      gated=bool(getattr(info, "gated", False)), private=bool(getattr(info, "private", False)),
                      config=config if isinstance(config, dict) else None,
                      dtypes={str(k): int(v) for k, v in dtypes.items() if isinstance(v, int)}
                      if isinstance(dtypes, dict) else None)


def file_url(endpoint: str, repo_id: str, commit: str, path: str) -> str:
    """The resolve URL of one file at one commit (never at a branch)."""
    from urllib.parse import quote

    return f"{check_endpoint(endpoint)}/{repo_id}/resolve/{commit}/{quote(path)}"


def get_token() -> str | None:
    """The user's Hub token (HF_TOKEN, or the one `hf auth login` stored), read when needed."""
    from huggingface_hub import get_token as hf_get_token

    return hf_get_token() or None
