"""A local stand-in for the Hugging Face Hub's HTTP API, for tests and benchmarks (stdlib only).

``StandInHub`` runs two loopback HTTP/1.1 servers (keep-alive, every response with a Content-Length):

* the **hub** (``hub.url``) answers what ``huggingface_hub`` asks of huggingface.co for model repos:

  - ``GET /api/models/{repo_id}`` and ``GET /api/models/{repo_id}/revision/{revision}`` (``blobs=true`` adds
    ``size``/``blobId``/``lfs`` to the siblings; ``expand=...`` narrows the answer to the properties asked for);
  - ``GET /api/models/{repo_id}/tree/{revision}[/{path}]`` (``recursive``, ``expand``), in pages as the Hub sends
    them: ``hub.tree_page_size`` entries (1,000; 50 with ``expand``), the next page's URL in a
    ``Link: <...>; rel="next"`` header carrying an opaque ``cursor``;
  - ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}``: a regular (git) file is answered 200 with its body,
    ``ETag`` (its git blob oid) and ``X-Repo-Commit``; an LFS file is answered ``302`` to a signed URL on the CDN with
    ``X-Repo-Commit``, ``X-Linked-Etag`` (its sha256), ``X-Linked-Size`` and ``ETag`` (the git oid of its pointer).

* the **CDN** (``hub.cdn_url``, another port, so another origin) serves LFS objects by sha256 with ``ETag``,
  ``Accept-Ranges: bytes``, ``Content-Disposition``, single ``Range`` requests (206 / ``Content-Range``, 416 with
  ``bytes */TOTAL`` when the start is past the end) and checks the URL's signature (403 otherwise).

Revisions are branches, tags (``hub.tag``) or full 40-hex commit shas. Commits are real git objects: blob, tree and
commit shas are computed the way git computes them (an LFS file's blob is its pointer text), with a fixed author and
clock, so the same content, parent and message always give the same sha. A new commit moves its branch; older commits
stay reachable by sha. A file is LFS when its name ends with one of ``LFS_SUFFIXES`` or it is over 10 MiB.

Errors carry ``X-Error-Code``/``X-Error-Message`` and a JSON ``{"error": ...}`` body the way the Hub sends them, so
``huggingface_hub.utils.hf_raise_for_status`` raises its typed errors:

=============================================  ======  ==================  ==============================
case                                           status  X-Error-Code        huggingface_hub raises
=============================================  ======  ==================  ==============================
unknown repo, or private repo: no/wrong token   401    RepoNotFound        RepositoryNotFoundError
unknown repo asked with the hub's token         404    RepoNotFound        RepositoryNotFoundError
unknown branch / tag / sha                      404    RevisionNotFound    RevisionNotFoundError
missing file (or tree path)                     404    EntryNotFound       RemoteEntryNotFoundError
gated repo file, anonymous                      401    GatedRepo           GatedRepoError
gated repo file, token other than the hub's     403    GatedRepo           GatedRepoError
=============================================  ======  ==================  ==============================

Gating only guards ``resolve`` (the file contents), as on the Hub: ``model_info`` and the tree stay public.
The one token the hub knows (``StandInHub(token=...)``) is sent as ``Authorization: Bearer <token>`` and opens
every private and gated repo.

Faults (``hub.fault(repo_id, path, kind, **options)``) act on the GETs that carry a file's body: the CDN GET of an
LFS file, the resolve GET of a regular file (HEADs and redirects are never faulted). Every fault takes ``times=K``
(act on the first K such requests only; default: every one). See ``FAULT_KINDS`` and ``StandInHub.fault``.

Instrumentation: ``hub.requests`` (``HubRequest(server, method, path, headers)`` records, headers with lower-case
names), ``hub.bytes_sent`` (a ``Counter`` of body bytes per ``(repo_id, path)``), ``hub.reset_stats()``.

Left out: datasets and spaces, the write API (uploads, commits over HTTP, PRs, ``refs/pr/N``), Xet storage and its
headers, short shas, gzip ``Content-Encoding``, multi-range requests (answered 200 with the whole body), the
``Invalid credentials`` 401 for unknown tokens (an unknown token opens nothing: private and missing repos answer
as without a token, gated files 403), per-user gating approval, rate limiting, and most ``model_info`` properties
(cards, tags, downloads are empty or zero).

Files given as paths are hashed once when added (sha256, plus the git blob oid when <= 10 MiB; cached per
path/inode/size/mtime across hubs) and must not change on disk afterwards; they are served with ``os.sendfile``
(several GB/s on loopback: the client is the bottleneck), or through one reused 1 MiB buffer when a fault has to
touch the bytes. Bytes given in memory are sent from a ``memoryview``, never copied whole.

Importable by file path (benchmarks)::

    spec = importlib.util.spec_from_file_location("hubserver", "plugins/hf/tests/hubserver.py")
    hubserver = importlib.util.module_from_spec(spec); spec.loader.exec_module(hubserver)
    with hubserver.StandInHub() as hub:
        sha = hub.add_repo("org/model", {"model.safetensors": Path("big.bin"), "config.json": b"{}"})
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import mimetypes
import os
import re
import secrets
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = [
    "FAULT_KINDS",
    "LFS_SUFFIXES",
    "LFS_THRESHOLD",
    "HubRequest",
    "StandInHub",
    "git_blob_oid",
    "is_lfs_path",
    "make_lfs_pointer",
]

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth", ".onnx", ".msgpack", ".h5")
LFS_THRESHOLD = 10 * 1024 * 1024  # bytes; larger files are LFS whatever their name

#: fault kind -> (required options, optional options with defaults). ``times`` is accepted by every kind.
FAULT_KINDS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "truncate": (("after",), {}),                   # full Content-Length, connection closed after N body bytes
    "ignore_range": ((), {}),                       # Range requests answered 200 with the whole body
    "wrong_content_range": ((), {"offset": 0}),     # Range answered 206 from another offset, Content-Range says so
    "flip_byte": ((), {"offset": 0}),               # byte at this file offset XOR 0xFF, size unchanged
    "html_200": ((), {}),                           # 200 text/html error page instead of the file
    "move_after_lookup": ((), {"content": None}),   # branch moves (file changes) after the first api lookup
    "throttle": (("bytes_per_s",), {}),             # body paced to this rate
    "status": ((), {"code": 503}),                  # answer with this status instead
}

_RANGE_FAULTS = ("ignore_range", "wrong_content_range")
_HASH_CHUNK = 1 << 20
_SEND_CHUNK = 8 << 20
_COPY_CHUNK = 1 << 20
_BASE_TIME = 1_700_000_000  # commit clock: root commit time; each child commit is 60 s later
_AUTHOR = "Stand-In Hub <standin@hub.invalid>"
_SHA_RE = re.compile(r"[0-9a-f]{40}")
_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n"
    b"<body><h1>Service Unavailable</h1><p>The stand-in hub was told to answer with this page.</p></body></html>\n"
)


# --------------------------------------------------------------------------------------------------- helpers


def make_lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-LFS pointer text git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def git_blob_oid(data: bytes) -> str:
    """git's blob id: sha1 of ``b"blob <len>\\0" + data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs_path(path: str, size: int) -> bool:
    """Whether the stand-in stores a file of this name and size as LFS."""
    return path.lower().endswith(LFS_SUFFIXES) or size > LFS_THRESHOLD


class HubRequest(NamedTuple):
    """One request as it reached a server. ``path`` is the raw request target (query included)."""

    server: str  # "hub" | "cdn"
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


class _Blob:
    """File content: in memory (``data``) or on disk (``path``), with its sha256 and (small files) git blob oid."""

    __slots__ = ("data", "path", "size", "sha256", "sha1")

    def __init__(self, data: bytes | None, path: str | None, size: int, sha256: str, sha1: str | None):
        self.data, self.path, self.size, self.sha256, self.sha1 = data, path, size, sha256, sha1


def _blob_bytes(blob: "_Blob", start: int, count: int) -> bytes:
    if blob.data is not None:
        return bytes(blob.data[start:start + count])
    with open(blob.path, "rb") as f:
        f.seek(start)
        return f.read(count)


def _model_summary(files: dict[str, Any]) -> dict[str, Any]:
    """What the Hub's model info says of a repo's contents: ``config`` (``architectures``, ``model_type`` and
    ``quantization_config`` of the root config.json) and ``safetensors`` (parameters by dtype, counted from the
    root ``*.safetensors`` headers, and their total). Either is left out when the repo has nothing for it."""
    out: dict[str, Any] = {}
    config = files.get("config.json")
    if config is not None and config.blob.size <= (1 << 20):
        try:
            data = json.loads(_blob_bytes(config.blob, 0, config.blob.size))
        except (ValueError, OSError):
            data = None
        if isinstance(data, dict):
            out["config"] = {k: data[k] for k in ("architectures", "model_type", "quantization_config") if k in data}
    params: dict[str, int] = {}
    for path, entry in files.items():
        if "/" in path or not path.endswith(".safetensors") or entry.blob.size < 8:
            continue
        try:
            (length,) = struct.unpack("<Q", _blob_bytes(entry.blob, 0, 8))
            if length > min(entry.blob.size - 8, 100 << 20):
                continue
            header = json.loads(_blob_bytes(entry.blob, 8, length))
        except (ValueError, OSError, struct.error):
            continue
        for name, tensor in header.items():
            if name == "__metadata__" or not isinstance(tensor, dict):
                continue
            numel = 1
            for dim in tensor.get("shape") or ():
                numel *= int(dim)
            params[str(tensor.get("dtype"))] = params.get(str(tensor.get("dtype")), 0) + numel
    if params:
        out["safetensors"] = {"parameters": params, "total": sum(params.values())}
    return out


_PATH_HASHES: dict[tuple, tuple[str, str | None]] = {}
_PATH_HASHES_LOCK = threading.Lock()


def _blob_from(value: bytes | bytearray | memoryview | str | os.PathLike) -> _Blob:
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return _Blob(data, None, len(data), hashlib.sha256(data).hexdigest(), git_blob_oid(data))
    path = os.path.realpath(os.fspath(value))
    st = os.stat(path)
    key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _PATH_HASHES_LOCK:
        cached = _PATH_HASHES.get(key)
    if cached is None:
        sha256 = hashlib.sha256()
        sha1 = hashlib.sha1(b"blob %d\0" % st.st_size) if st.st_size <= LFS_THRESHOLD else None
        buf = bytearray(_HASH_CHUNK)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                sha256.update(view[:n])
                if sha1 is not None:
                    sha1.update(view[:n])
        cached = (sha256.hexdigest(), sha1.hexdigest() if sha1 is not None else None)
        with _PATH_HASHES_LOCK:
            _PATH_HASHES[key] = cached
    return _Blob(None, path, st.st_size, cached[0], cached[1])


class _Entry:
    """A file in a commit: its blob and how git stores it."""

    __slots__ = ("blob", "lfs", "pointer", "oid")

    def __init__(self, path: str, blob: _Blob):
        self.blob = blob
        self.lfs = is_lfs_path(path, blob.size)
        self.pointer = make_lfs_pointer(blob.sha256, blob.size) if self.lfs else None
        self.oid = git_blob_oid(self.pointer) if self.pointer is not None else blob.sha1


class _Commit:
    __slots__ = ("sha", "parent", "files", "trees", "message", "time")

    def __init__(self, sha, parent, files, trees, message, time_):
        self.sha, self.parent, self.files, self.trees, self.message, self.time = (
            sha, parent, files, trees, message, time_)


class _Repo:
    def __init__(self, repo_id: str, *, gated: bool | str, private: bool, default_branch: str):
        self.id = repo_id
        self.gated: bool | str = "auto" if gated is True else gated
        self.private = private
        self.default_branch = default_branch
        self.commits: dict[str, _Commit] = {}
        self.branches: dict[str, str] = {}
        self.tags: dict[str, str] = {}


def _check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0] == ".git":
        raise ValueError(f"invalid file path in repo: {path!r}")
    return path


def _git_trees(files: dict[str, _Entry]) -> dict[str, str]:
    """git tree sha of every folder ("" is the root) of a set of files."""
    root: dict[str, Any] = {}
    for path, entry in files.items():
        *dirs, name = path.split("/")
        node = root
        for d in dirs:
            node = node.setdefault(d, {})
            if not isinstance(node, dict):
                raise ValueError(f"{path!r}: a parent folder is also a file")
        if name in node:
            raise ValueError(f"{path!r} is both a file and a folder")
        node[name] = entry
    trees: dict[str, str] = {}

    def walk(node: dict[str, Any], prefix: str) -> str:
        items = []
        for name, child in node.items():
            if isinstance(child, dict):
                sha = walk(child, f"{prefix}{name}/")
                items.append(((name + "/").encode(), b"40000 %s\0%s" % (name.encode(), bytes.fromhex(sha))))
            else:
                items.append((name.encode(), b"100644 %s\0%s" % (name.encode(), bytes.fromhex(child.oid))))
        body = b"".join(raw for _, raw in sorted(items))
        sha = hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()
        trees[prefix.rstrip("/")] = sha
        return sha

    walk(root, "")
    return trees


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


# --------------------------------------------------------------------------------------------------- the hub


class StandInHub:
    """A local Hugging Face Hub (model repos) plus its CDN. See the module docstring for the protocol.

    ``token``: the one token the hub accepts (``Authorization: Bearer <token>``); it opens private and gated repos.
    Use as a context manager, or ``start()`` / ``stop()``.
    """

    def __init__(self, token: str | None = None):
        self.token = token
        self.tree_page_size = 1000  # as the Hub pages tree listings (50 when expanded)
        self._lock = threading.RLock()
        self._repos: dict[str, _Repo] = {}
        self._lfs: dict[str, _Blob] = {}  # sha256 -> blob, what the CDN serves
        self._faults: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._requests: list[HubRequest] = []
        self._bytes_sent: Counter = Counter()
        self._secret = secrets.token_bytes(16)
        self._servers: dict[str, _Server] = {}
        self._threads: list[threading.Thread] = []

    # ---- lifecycle

    def start(self) -> StandInHub:
        if self._servers:
            raise RuntimeError("StandInHub already started")
        for role, handler in (("hub", _HubHandler), ("cdn", _CdnHandler)):
            server = _Server(self, role, handler)
            self._servers[role] = server
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"standin-{role}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop both servers and cut the connections still open (throttled downloads end with an error)."""
        servers, self._servers = list(self._servers.values()), {}
        waiters = [threading.Thread(target=server.shutdown, daemon=True) for server in servers]
        for waiter in waiters:
            waiter.start()
        for server in servers:  # wake serve_forever's select() so it sees the shutdown flag without a poll delay
            try:
                socket.create_connection(server.server_address[:2], timeout=1).close()
            except OSError:
                pass
        for waiter, server in zip(waiters, servers):
            waiter.join(timeout=5)
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> StandInHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _base(self, role: str) -> str:
        server = self._servers.get(role)
        if server is None:
            raise RuntimeError("StandInHub is not started")
        host, port = server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The hub's endpoint, e.g. ``http://127.0.0.1:41234`` (pass as ``endpoint=`` / ``HF_ENDPOINT``)."""
        return self._base("hub")

    @property
    def cdn_url(self) -> str:
        """The CDN's origin (a different port from ``url``)."""
        return self._base("cdn")

    def file_url(self, repo_id: str, path: str, revision: str = "main") -> str:
        """The ``resolve`` URL of a file, as ``huggingface_hub.hf_hub_url`` builds it."""
        return f"{self.url}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"

    # ---- content

    def add_repo(self, repo_id: str, files: dict[str, bytes | os.PathLike | str], *, branch: str = "main",
                 gated: bool | str = False, private: bool = False, message: str = "Initial commit") -> str:
        """Create a model repo whose ``branch`` (also its default branch) holds ``files``; returns the commit sha.

        ``files`` maps repo paths to bytes or to a file on disk (served from disk, hashed once now).
        ``gated``: False, True (= "auto"), "auto" or "manual".
        """
        if gated not in (False, True, "auto", "manual"):
            raise ValueError(f"gated must be False, True, 'auto' or 'manual', not {gated!r}")
        if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo_id):
            raise ValueError(f"invalid repo id: {repo_id!r}")
        with self._lock:
            if repo_id in self._repos:
                raise ValueError(f"repo {repo_id!r} already exists")
            repo = _Repo(repo_id, gated=gated, private=private, default_branch=branch)
            sha = self._commit(repo, branch, files, (), message)
            self._repos[repo_id] = repo  # only once its first commit is made
            return sha

    def commit(self, repo_id: str, files: dict[str, bytes | os.PathLike | str], *, branch: str = "main",
               message: str = "Update files", delete: tuple[str, ...] | list[str] = ()) -> str:
        """Commit on top of ``branch`` (created from the default branch if new): ``files`` are added or replaced,
        ``delete`` removed, the others kept. The branch moves to the new commit; returns its sha."""
        with self._lock:
            return self._commit(self._repo(repo_id), branch, files, delete, message)

    def tag(self, repo_id: str, tag: str, revision: str = "main") -> str:
        """Point tag ``tag`` at ``revision`` (branch, tag or sha); returns the commit sha."""
        with self._lock:
            repo = self._repo(repo_id)
            try:
                sha = self._lookup(repo, revision)[0].sha
            except _HttpError:
                raise KeyError(f"no revision {revision!r} in {repo_id!r}") from None
            repo.tags[tag] = sha
            return sha

    def head(self, repo_id: str, branch: str = "main") -> str:
        """The commit sha ``branch`` points at."""
        with self._lock:
            return self._repo(repo_id).branches[branch]

    def _repo(self, repo_id: str) -> _Repo:
        try:
            return self._repos[repo_id]
        except KeyError:
            raise KeyError(f"no repo {repo_id!r} in the stand-in hub") from None

    def _commit(self, repo: _Repo, branch: str, files: dict, delete, message: str) -> str:
        parent_sha = repo.branches.get(branch) or repo.branches.get(repo.default_branch)
        parent = repo.commits[parent_sha] if parent_sha else None
        tree = dict(parent.files) if parent else {}
        for path in delete:
            if tree.pop(path, None) is None:
                raise KeyError(f"cannot delete {path!r}: not in {repo.id}@{branch}")
        for path, value in files.items():
            blob = _blob_from(value)
            tree[_check_path(path)] = _Entry(path, blob)
        tree = dict(sorted(tree.items()))
        trees = _git_trees(tree)
        when = parent.time + 60 if parent else _BASE_TIME
        raw = f"tree {trees['']}\n"
        if parent:
            raw += f"parent {parent.sha}\n"
        raw += f"author {_AUTHOR} {when} +0000\ncommitter {_AUTHOR} {when} +0000\n\n{message}\n"
        data = raw.encode()
        sha = hashlib.sha1(b"commit %d\0" % len(data) + data).hexdigest()
        repo.commits.setdefault(sha, _Commit(sha, parent.sha if parent else None, tree, trees, message, when))
        repo.branches[branch] = sha
        for entry in tree.values():
            if entry.lfs:
                self._lfs.setdefault(entry.blob.sha256, entry.blob)
        return sha

    @staticmethod
    def _lookup(repo: _Repo, revision: str) -> tuple[_Commit, str | None]:
        """(commit, branch name if ``revision`` is a branch) or raise RevisionNotFound."""
        if revision in repo.branches:
            return repo.commits[repo.branches[revision]], revision
        if revision in repo.tags:
            return repo.commits[repo.tags[revision]], None
        if _SHA_RE.fullmatch(revision) and revision in repo.commits:
            return repo.commits[revision], None
        raise _HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    # ---- faults

    def fault(self, repo_id: str, path: str, kind: str, **options: Any) -> None:
        """Make the file ``repo_id``/``path`` misbehave (see ``FAULT_KINDS``); replaces a fault of the same kind.

        - ``truncate(after=N)``: full Content-Length, then the connection is closed after N body bytes.
        - ``ignore_range()``: a Range request is answered 200 with the whole body.
        - ``wrong_content_range(offset=0)``: a Range request is answered 206 with the asked length taken from
          ``offset`` instead, and a Content-Range that says so.
        - ``flip_byte(offset=0)``: the byte at this file offset is XOR-ed with 0xFF (when it is in the body sent).
        - ``html_200()``: 200 ``text/html`` with a small HTML error page instead of the file.
        - ``move_after_lookup(content=None)``: after the next ``/api/models/{repo}`` info or tree request, the branch
          it named (the default branch for a tag or sha) moves to a new commit where this file holds ``content``
          (default: other bytes derived from the old ones). One-shot.
        - ``throttle(bytes_per_s=N)``: the body is paced to N bytes/s.
        - ``status(code=503)``: answered with this status and a JSON error body.

        ``times=K`` (any kind): act on the first K requests it applies to, then stop. Range faults apply only to
        requests with a Range header; all apply only to body GETs (CDN GET of LFS files, resolve GET of others).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
        required, optional = FAULT_KINDS[kind]
        unknown = set(options) - set(required) - set(optional) - {"times"}
        missing = set(required) - set(options)
        if unknown or missing:
            raise TypeError(f"fault {kind!r}: unknown options {sorted(unknown)}, missing {sorted(missing)}")
        opts = {**optional, **options}
        opts.setdefault("times", None)
        with self._lock:
            self._faults.setdefault((repo_id, path), {})[kind] = opts

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_faults(self, repo_id: str, path: str, *, ranged: bool) -> dict[str, dict[str, Any]]:
        """The faults that act on this body GET, counting it against their ``times``."""
        taken = {}
        with self._lock:
            faults = self._faults.get((repo_id, path), {})
            for kind, opts in list(faults.items()):
                if kind == "move_after_lookup" or (kind in _RANGE_FAULTS and not ranged):
                    continue
                if opts["times"] is not None:
                    if opts["times"] <= 0:
                        continue
                    opts["times"] -= 1
                taken[kind] = dict(opts)
        return taken

    def _after_lookup(self, repo: _Repo, branch: str | None) -> None:
        """Fire pending ``move_after_lookup`` faults of ``repo``: one new commit on ``branch``."""
        with self._lock:
            moved = {}
            for (repo_id, path), faults in self._faults.items():
                if repo_id == repo.id and "move_after_lookup" in faults:
                    opts = faults.pop("move_after_lookup")
                    moved[path] = opts["content"]
            if not moved:
                return
            branch = branch or repo.default_branch
            head = repo.commits[repo.branches[branch]]
            files = {}
            for path, content in moved.items():
                if content is None:
                    old = head.files.get(path)
                    seed = old.blob.sha256 if old else "absent"
                    content = f"moved after lookup: {path} was {seed}\n".encode()
                files[path] = content
            self._commit(repo, branch, files, (), "move_after_lookup")

    # ---- instrumentation

    @property
    def requests(self) -> list[HubRequest]:
        """A snapshot of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def bytes_sent(self) -> Counter:
        """A snapshot: body bytes sent per ``(repo_id, path)`` (file bodies, ranges and fault pages alike)."""
        with self._lock:
            return Counter(self._bytes_sent)

    def reset_stats(self) -> None:
        with self._lock:
            self._requests.clear()
            self._bytes_sent.clear()

    def _record(self, server: str, method: str, path: str, headers) -> None:
        rec = HubRequest(server, method, path, {k.lower(): v for k, v in headers.items()})
        with self._lock:
            self._requests.append(rec)

    def _account(self, key: tuple[str, str], n: int) -> None:
        with self._lock:
            self._bytes_sent[key] += n

    # ---- CDN signing

    def _sign(self, repo_id: str, path: str, sha256: str, expires: int) -> str:
        msg = f"{repo_id}\n{path}\n{sha256}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def _cdn_location(self, repo_id: str, path: str, sha256: str) -> str:
        expires = int(time.time()) + 3600
        sig = self._sign(repo_id, path, sha256, expires)
        return (f"{self.cdn_url}/repos/{quote(repo_id)}/{sha256}?repo={quote(repo_id, safe='')}"
                f"&path={quote(path, safe='')}&Expires={expires}&Signature={sig}")


# --------------------------------------------------------------------------------------------------- HTTP


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, hub: StandInHub, role: str, handler):
        self.hub, self.role = hub, role
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), handler)

    def server_bind(self):
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "StandInHub/1.0"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    @property
    def hub(self) -> StandInHub:
        return self.server.hub

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self.hub._record(self.server.role, method, self.path, self.headers)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        try:
            try:
                if method not in ("GET", "HEAD"):
                    raise _HttpError(405, f"{method} is not supported by the stand-in hub")
                split = urlsplit(self.path)
                self.route(method, split.path, parse_qs(split.query, keep_blank_values=True))
            except _HttpError as e:
                if method not in ("GET", "HEAD"):
                    self.close_connection = True  # its body may not have been read (chunked)
                header_message = e.message.encode("ascii", "backslashreplace").decode()
                self.send_json(method, e.status, {"error": e.message}, headers={
                    **({"X-Error-Code": e.code, "X-Error-Message": header_message} if e.code else {}),
                    **e.headers})
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def route(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        raise NotImplementedError

    # ---- sending

    def send_head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def send_bytes(self, method: str, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_head(status, {**headers, "Content-Length": str(len(body))})
        if method != "HEAD" and body:
            self.wfile.write(body)

    def send_json(self, method: str, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_bytes(method, status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    def serve_file(self, method: str, repo_id: str, path: str, blob: _Blob, headers: dict[str, str]) -> None:
        """Answer a body request for ``blob`` (Range, faults, accounting)."""
        size = blob.size
        range_header = self.headers.get("Range")
        faults = self.hub._take_faults(repo_id, path, ranged=bool(range_header)) if method == "GET" else {}
        key = (repo_id, path)
        if "status" in faults:
            code = int(faults["status"]["code"])
            raise _HttpError(code, f"stand-in fault: status {code}")
        if "html_200" in faults:
            self.hub._account(key, len(_HTML_PAGE))
            self.send_bytes(method, 200, _HTML_PAGE, {"Content-Type": "text/html; charset=utf-8"})
            return
        start, end, status = 0, size - 1, 200
        headers = {**headers, "Accept-Ranges": "bytes"}
        if range_header and "ignore_range" not in faults:
            span = _parse_range(range_header, size)
            if span == "unsatisfiable":
                raise _HttpError(416, "Requested Range Not Satisfiable", headers={"Content-Range": f"bytes */{size}"})
            if span is not None:
                start, end = span
                if "wrong_content_range" in faults:
                    length = end - start + 1
                    start = min(int(faults["wrong_content_range"]["offset"]), size - 1)
                    end = min(start + length, size) - 1
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(end - start + 1, 0)
        self.send_head(status, {**headers, "Content-Length": str(length)})
        if method == "HEAD" or length == 0:
            return
        limit = length
        if "truncate" in faults:
            limit = min(length, int(faults["truncate"]["after"]))
        flip = int(faults["flip_byte"]["offset"]) if "flip_byte" in faults else None
        rate = float(faults["throttle"]["bytes_per_s"]) if "throttle" in faults else None
        try:
            self._write_body(blob, start, limit, key, flip=flip, rate=rate)
        finally:
            if limit < length:
                self.close_connection = True
                try:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _write_body(self, blob: _Blob, start: int, count: int, key, *, flip: int | None, rate: float | None) -> None:
        plain = rate is None and (flip is None or not start <= flip < start + count)
        pos, stop = start, start + count
        if blob.data is not None and plain:
            view = memoryview(blob.data)
            while pos < stop:
                n = min(_SEND_CHUNK, stop - pos)
                self._send_view(view[pos:pos + n], key)
                pos += n
            return
        if blob.data is None and plain:
            fd = os.open(blob.path, os.O_RDONLY)
            try:
                while pos < stop:
                    n = min(_SEND_CHUNK, stop - pos)
                    self._send_file(fd, pos, n, key)
                    pos += n
            finally:
                os.close(fd)
            return
        # slow path, for byte flips and pacing: one reused buffer
        chunk = _COPY_CHUNK if rate is None else max(1, min(64 * 1024, int(rate / 20)))
        buf = bytearray(chunk)
        f = open(blob.path, "rb", buffering=0) if blob.data is None else None
        try:
            if f is not None:
                f.seek(start)
            t0, sent = time.monotonic(), 0
            while pos < stop:
                n = min(chunk, stop - pos)
                view = memoryview(buf)[:n]
                if f is not None:
                    got = f.readinto(view)
                    if not got:
                        raise ConnectionResetError("file shorter than when it was added")
                    n, view = got, view[:got]
                else:
                    view[:] = blob.data[pos:pos + n]
                if flip is not None and pos <= flip < pos + n:
                    view[flip - pos] ^= 0xFF
                if rate is not None:
                    delay = t0 + sent / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                self._send_view(view, key)
                pos += n
                sent += n
        finally:
            if f is not None:
                f.close()

    # Bytes are counted in bytes_sent before they are handed to the socket (and the count corrected if the send
    # fails part-way), so a client never sees more than bytes_sent says and a finished response is counted exactly.

    def _send_view(self, view: memoryview, key) -> None:
        self.hub._account(key, len(view))
        sent = 0
        try:
            while sent < len(view):
                sent += self.connection.send(view[sent:])
        finally:
            if sent < len(view):
                self.hub._account(key, sent - len(view))

    def _send_file(self, fd: int, pos: int, n: int, key) -> None:
        self.hub._account(key, n)
        sent = 0
        try:
            while sent < n:
                k = os.sendfile(self.connection.fileno(), fd, pos + sent, n - sent)
                if k == 0:
                    raise ConnectionResetError("file shorter than when it was added")
                sent += k
        finally:
            if sent < n:
                self.hub._account(key, sent - n)


def _parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """(start, end) of a single ``bytes=`` range, "unsatisfiable", or None to ignore it (serve 200)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(size - n, 0), size - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return start, min(end, size - 1)


def _split_repo(hub: StandInHub, segs: list[str], markers: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """Split raw path segments into (repo_id, rest) where rest starts with a marker (or is empty)."""
    candidates = []
    for n in (2, 1):
        if len(segs) >= n and (len(segs) == n or segs[n] in markers):
            candidates.append(("/".join(unquote(s) for s in segs[:n]), segs[n:]))
    for repo_id, rest in candidates:
        if repo_id in hub._repos:
            return repo_id, rest
    return candidates[0] if candidates else None


class _HubHandler(_Handler):
    def route(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        segs = path.strip("/").split("/")
        if segs[:2] == ["api", "models"] and len(segs) > 2:
            split = _split_repo(self.hub, segs[2:], ("revision", "tree"))
            if split is not None:
                repo_id, rest = split
                if not rest:
                    return self.model_info(method, repo_id, None, query)
                if rest[0] == "revision" and len(rest) > 1:
                    return self.model_info(method, repo_id, unquote("/".join(rest[1:])), query)
                if rest[0] == "tree" and len(rest) > 1:
                    return self.tree(method, repo_id, unquote(rest[1]), unquote("/".join(rest[2:])), query)
        else:
            split = _split_repo(self.hub, segs, ("resolve",))
            if split is not None and len(split[1]) > 2:
                repo_id, rest = split
                return self.resolve(method, repo_id, unquote(rest[1]), unquote("/".join(rest[2:])))
        raise _HttpError(404, "Not Found")

    # ---- access

    def _authed(self) -> tuple[bool, bool]:
        """(a token was sent, it is the hub's token)."""
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        return bool(token), self.hub.token is not None and token == self.hub.token

    def _repo(self, repo_id: str) -> _Repo:
        _, authed = self._authed()
        repo = self.hub._repos.get(repo_id)
        if repo is None or (repo.private and not authed):
            raise _HttpError(404 if authed else 401, "Repository not found", "RepoNotFound")
        return repo

    def _check_gate(self, repo: _Repo) -> None:
        sent, authed = self._authed()
        if not repo.gated or authed:
            return
        if not sent:
            raise _HttpError(401, f"Access to model {repo.id} is restricted. You must have access to it and be "
                                  "authenticated to access it. Please log in.", "GatedRepo")
        raise _HttpError(403, f"Access to model {repo.id} is restricted and you are not in the authorized list. "
                              f"Visit {self.hub.url}/{repo.id} to ask for access.", "GatedRepo")

    # ---- endpoints

    def model_info(self, method: str, repo_id: str, revision: str | None, query) -> None:
        with self.hub._lock:
            repo = self._repo(repo_id)
            commit, branch = self.hub._lookup(repo, revision if revision is not None else repo.default_branch)
            first = min(repo.commits.values(), key=lambda c: c.time)
            blobs = _true(query.get("blobs"))
            siblings = []
            for path, entry in commit.files.items():
                sib: dict[str, Any] = {"rfilename": path}
                if blobs:
                    sib.update(blobId=entry.oid, size=entry.blob.size)
                    if entry.lfs:
                        sib["lfs"] = {"sha256": entry.blob.sha256, "size": entry.blob.size,
                                      "pointerSize": len(entry.pointer)}
                siblings.append(sib)
            info = {
                "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
                "id": repo.id,
                "modelId": repo.id,
                "author": repo.id.split("/")[0] if "/" in repo.id else None,
                "sha": commit.sha,
                "lastModified": _iso(commit.time),
                "createdAt": _iso(first.time),
                "private": repo.private,
                "gated": repo.gated,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "usedStorage": sum(e.blob.size for e in commit.files.values()),
                "siblings": siblings,
            }
            info.update(_model_summary(commit.files))
            expand = (query.get("expand") or []) + (query.get("expand[]") or [])
            if expand:
                info = {k: v for k, v in info.items() if k in ("_id", "id") or k in expand}
            self.hub._after_lookup(repo, branch)
        self.send_json(method, 200, info)

    def tree(self, method: str, repo_id: str, revision: str, path: str, query) -> None:
        with self.hub._lock:
            repo = self._repo(repo_id)
            commit, branch = self.hub._lookup(repo, revision)
            path = path.strip("/")
            if path and path not in commit.trees:
                raise _HttpError(404, f"Entry not found: {path}", "EntryNotFound",
                                 headers={"X-Repo-Commit": commit.sha})
            recursive = _true(query.get("recursive"))
            expand = _true(query.get("expand"))
            prefix = f"{path}/" if path else ""
            items: list[dict[str, Any]] = []
            for d, sha in commit.trees.items():
                if d and d.startswith(prefix) and (recursive or "/" not in d[len(prefix):]):
                    items.append({"type": "directory", "oid": sha, "size": 0, "path": d})
            for p, entry in commit.files.items():
                if p.startswith(prefix) and (recursive or "/" not in p[len(prefix):]):
                    item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.blob.size, "path": p}
                    if entry.lfs:
                        item["lfs"] = {"oid": entry.blob.sha256, "size": entry.blob.size,
                                       "pointerSize": len(entry.pointer)}
                    items.append(item)
            items.sort(key=lambda i: i["path"])
            size = min(self.hub.tree_page_size, 50) if expand else self.hub.tree_page_size
            cursor = (query.get("cursor") or ["0"])[0]
            if not cursor.isdigit() or int(cursor) > len(items):
                raise _HttpError(400, f"Invalid cursor: {cursor[:40]}")
            start = int(cursor)
            items, more = items[start:start + size], start + size < len(items)
            headers = {}
            if more:
                params = {k: v[0] for k, v in query.items() if k != "cursor"} | {"cursor": str(start + size)}
                query_text = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
                headers["Link"] = f'<{self.hub.url}{urlsplit(self.path).path}?{query_text}>; rel="next"'
            if expand:
                for item in items:
                    last = _last_change(repo, commit, item)
                    item["lastCommit"] = {"id": last.sha, "title": last.message.splitlines()[0],
                                          "date": _iso(last.time)}
            self.hub._after_lookup(repo, branch)
        self.send_json(method, 200, items, headers)

    def resolve(self, method: str, repo_id: str, revision: str, path: str) -> None:
        with self.hub._lock:
            repo = self._repo(repo_id)
            self._check_gate(repo)
            commit, _ = self.hub._lookup(repo, revision)
            entry = commit.files.get(path)
        if entry is None:
            raise _HttpError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.sha})
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{entry.oid}"', "Vary": "Origin, Accept-Encoding"}
        if entry.lfs:
            location = self.hub._cdn_location(repo_id, path, entry.blob.sha256)
            body = f"Found. Redirecting to {location}".encode()
            return self.send_bytes(method, 302, body, {
                **headers, "Location": location, "Content-Type": "text/plain; charset=utf-8",
                "X-Linked-Etag": f'"{entry.blob.sha256}"', "X-Linked-Size": str(entry.blob.size)})
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/json":
            ctype += "; charset=utf-8"
        self.serve_file(method, repo_id, path, entry.blob, {**headers, "Content-Type": ctype})


class _CdnHandler(_Handler):
    def route(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        segs = path.strip("/").split("/")
        if segs[0] != "repos" or len(segs) < 3:
            raise _HttpError(404, "Not Found")
        sha256 = segs[-1]
        q = {k: v[0] for k, v in query.items()}
        repo_id, fpath = q.get("repo", ""), q.get("path", "")
        try:
            expires = int(q.get("Expires", "0"))
        except ValueError:
            expires = 0
        good = self.hub._sign(repo_id, fpath, sha256, expires)
        if not hmac.compare_digest(good, q.get("Signature", "")) or expires < time.time():
            raise _HttpError(403, "AccessDenied: bad or expired signature")
        blob = self.hub._lfs.get(sha256)
        if blob is None:
            raise _HttpError(404, "NoSuchKey")
        name = fpath.rsplit("/", 1)[-1]
        ascii_name = name.encode("ascii", "replace").decode().replace('"', "_")
        self.serve_file(method, repo_id, fpath, blob, {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{sha256}"',
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}; filename=\"{ascii_name}\";",
            "Cache-Control": "public, max-age=604800, immutable",
        })


def _true(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("1", "true", "yes")


def _last_change(repo: _Repo, commit: _Commit, item: dict[str, Any]) -> _Commit:
    """The oldest commit back from ``commit`` since which ``item`` (tree entry) has had the same oid."""
    path, oid = item["path"], item["oid"]
    last = commit
    while last.parent is not None:
        parent = repo.commits[last.parent]
        same = (parent.trees.get(path) if item["type"] == "directory"
                else getattr(parent.files.get(path), "oid", None)) == oid
        if not same:
            break
        last = parent
    return last
