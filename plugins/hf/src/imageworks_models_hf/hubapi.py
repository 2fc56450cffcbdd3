"""The Hub's HTTP API as a download uses it: the token, one JSON GET, and the Hub's errors as ours.

Why not huggingface_hub's ``HfApi`` here: importing it and building its HTTP client took ~110 ms of a
download command that otherwise waits only for bytes (issue 20 times the whole command against curl),
and its ``get_token`` alone imports most of it. What it gave, kept:

* **the token** (:func:`get_token`): ``HF_TOKEN`` / ``HUGGING_FACE_HUB_TOKEN``, then the file ``hf auth login``
  wrote (``HF_TOKEN_PATH``, else ``$HF_HOME/token``). Whatever needs huggingface_hub's own logic (an OAuth
  token it may refresh, OIDC in CI, Colab secrets, the staging Hub) is still asked of huggingface_hub.
* **errors**: the Hub's ``X-Error-Code`` / ``X-Error-Message`` read the way ``hf_raise_for_status`` reads them
  (a 401 without a known code is a missing or private repo, as there).
* **transport**: proxies from the environment, redirects (a renamed repo) with the token kept to its origin,
  connect and read timeouts: :func:`imageworks_models_hf.transfer.open_url`, which the file bytes use too;
  the tree listing is retried on 429/5xx and dropped connections, and follows ``Link: rel="next"`` pages.

Answers are bounded (:data:`MAX_ANSWER` bytes, :data:`MAX_PAGES` pages); the caller bounds the time.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import sys
import time
from urllib.parse import quote, urljoin

from imageworks_models.api import (AcquisitionError, RemoteAccessError, RemoteNotFoundError, RemoteUnavailableError)

from .hfpaths import switch_on, token_path

MAX_ANSWER = 16 << 20  # bytes of one JSON answer (a tree page of 1,000 entries is ~0.3 MB)
MAX_PAGES = 1000
RETRY_STATUS = (429, 500, 502, 503, 504)  # what huggingface_hub's http_backoff retries
RETRY_WAITS = (1.0, 2.0, 4.0, 8.0, 8.0)
_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*rel="?next"?')


def get_token() -> str | None:
    """The user's Hub token, or ``None`` (anonymous), read now.

    Raises:
        AcquisitionError: the token file is not a regular file, or the token is not text a token can be.
    """
    if (os.environ.get("HF_OIDC_RESOURCE") or switch_on("HUGGINGFACE_CO_STAGING")
            or "IPython" in sys.modules):  # OIDC, the staging Hub, Colab: its own logic
        return _checked(_hf_get_token(), "huggingface_hub's token")
    token = _clean(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    if token:
        return _checked(token, "HF_TOKEN")
    from imageworks_models.api import StorageError, read_regular

    path = token_path()
    try:
        token = _clean(read_regular(path, limit=1 << 16)[: 1 << 16].decode("utf-8", "replace"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, StorageError) as exc:
        raise AcquisitionError(f"cannot read the Hugging Face token file {path}: "
                               f"{getattr(exc, 'message', None) or exc}",
                               hint="make it a regular file (`hf auth login` writes it), or set HF_TOKEN") from None
    if token is None:
        return None
    # `hf auth login` keeps OAuth tokens in stored_tokens beside it, with what refreshes them: huggingface_hub's to
    # handle. Read as it reads it (a file it cannot open is no stored tokens), but never a FIFO or a device.
    try:
        stored = read_regular(os.path.join(os.path.dirname(path), "stored_tokens"), limit=1 << 20)
    except (OSError, StorageError):
        stored = b""
    if b"refresh_token" in stored:
        return _checked(_hf_get_token(), "huggingface_hub's token")
    return _checked(token, path)


def _checked(token: str | None, where: str) -> str | None:
    """``token``, if it can go in an HTTP header (a token is ASCII: a bad file or paste would fail later, unclearly)."""
    if token is not None and not (token.isascii() and token.isprintable()):
        raise AcquisitionError(f"the Hugging Face token from {where} holds characters a token never has",
                               hint="set it again (`hf auth login`, or HF_TOKEN) from the Hub's token page")
    return token


def _clean(token: str | None) -> str | None:
    return (token.replace("\r", "").replace("\n", "").strip() or None) if token else None


def _hf_get_token() -> str | None:
    from huggingface_hub import get_token as hf_get_token

    return hf_get_token() or None


def model_info(endpoint: str, repo_id: str, revision: str, *, token: str | None,
               timeouts: tuple[float, float]) -> dict:
    """``GET /api/models/{repo_id}/revision/{revision}``: the repo at ``revision`` (``sha`` is its commit).

    Raises:
        RemoteNotFoundError, RemoteAccessError, RemoteUnavailableError: as the Hub answered.
    """
    _check_online()
    url = f"{endpoint}/api/models/{repo_id}/revision/{quote(revision, safe='')}"
    answer, _ = _get_json(url, token=token, endpoint=endpoint, timeouts=timeouts, retries=(),
                          what=(repo_id, revision))
    if not isinstance(answer, dict):
        raise RemoteUnavailableError(f"the Hub's answer about {repo_id}@{revision} is not a JSON object",
                                     hint="check HF_ENDPOINT: it must be a Hugging Face Hub")
    return answer


def list_tree(endpoint: str, repo_id: str, commit: str, *, token: str | None,
              timeouts: tuple[float, float]) -> list[dict]:
    """``GET /api/models/{repo_id}/tree/{commit}?recursive=true``, every page: the files as the Hub lists them
    (``type``, ``path``, ``size``, ``oid``, ``lfs``; folders left out).

    Raises:
        RemoteNotFoundError, RemoteAccessError, RemoteUnavailableError: as the Hub answered.
    """
    _check_online()
    url: str | None = f"{endpoint}/api/models/{repo_id}/tree/{quote(commit, safe='')}?recursive=true&expand=false"
    entries: list[dict] = []
    for _ in range(MAX_PAGES):
        page, url = _get_json(url, token=token, endpoint=endpoint, timeouts=timeouts, retries=RETRY_WAITS,
                              what=(repo_id, commit))
        if not isinstance(page, list) or not all(isinstance(e, dict) for e in page):
            raise RemoteUnavailableError(f"the Hub's file list of {repo_id}@{commit} is not a list of entries",
                                         hint="check HF_ENDPOINT: it must be a Hugging Face Hub")
        entries.extend(e for e in page if e.get("type") == "file")  # folders are not needed: fewer kept
        if url is None:
            return entries
    raise RemoteUnavailableError(f"the Hub's file list of {repo_id}@{commit} ran past {MAX_PAGES} pages")


def _check_online() -> None:
    """huggingface_hub's offline switches (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``) turn our Hub calls off too,
    as they did theirs."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if switch_on(name):
            raise RemoteUnavailableError(f"{name} is set: the Hugging Face Hub is not asked anything",
                                         hint=f"unset {name} to download")


class _Transient(Exception):
    """An answer cut short or unreadable: worth asking again."""


def _get_json(url: str, *, token: str | None, endpoint: str, timeouts: tuple[float, float],
              retries: tuple[float, ...], what: tuple[str, str]):
    """The JSON answer of one GET and the next page's URL (or ``None``)."""
    from .transfer import _Retry, _user_agent, open_url, origin

    connect, read = timeouts
    headers = {"User-Agent": _user_agent(), "Accept": "application/json", "Accept-Encoding": "identity"}
    for attempt in range(len(retries) + 1):
        wait = retries[attempt] if attempt < len(retries) else None
        try:
            resp, final, _ = open_url(url, headers=headers, token=token, token_origin=origin(endpoint),
                                      timeout=read, connect_timeout=connect)
            try:
                body = resp.read(MAX_ANSWER + 1)
                if len(body) <= MAX_ANSWER and resp.length:  # Content-Length promised more than came
                    raise _Transient(f"the answer was cut short ({len(body)} bytes, {resp.length} more promised)")
            except (OSError, ValueError, http.client.HTTPException) as exc:  # a reset, a timeout, bad chunks
                raise _Transient(f"{type(exc).__name__}: {exc}") from None
            finally:
                resp.close()
        except (_Retry, _Transient) as exc:
            if wait is None:
                said = (f"cannot reach {endpoint}: {exc.__cause__ or exc}" if isinstance(exc, _Retry)
                        else f"cannot read the Hub's answer about {what[0]} from {endpoint}: {exc}")
                raise RemoteUnavailableError(said, hint="try again; check the network, proxy settings and "
                                                        "HF_ENDPOINT") from None
            time.sleep(wait)
            continue
        if resp.status in RETRY_STATUS and wait is not None:
            time.sleep(_retry_after(resp, wait))
            continue
        if resp.status != 200:
            raise status_error(resp.status, resp.getheader("X-Error-Code"), resp.getheader("X-Error-Message"),
                               body, repo_id=what[0], revision=what[1], endpoint=endpoint)
        if len(body) > MAX_ANSWER:
            raise RemoteUnavailableError(f"the Hub's answer about {what[0]} is over {MAX_ANSWER >> 20} MiB",
                                         hint="check HF_ENDPOINT: it must be a Hugging Face Hub")
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError):
            raise RemoteUnavailableError(f"the Hub's answer about {what[0]}@{what[1]} is not JSON",
                                         hint="check HF_ENDPOINT: it must be a Hugging Face Hub") from None
        following = _NEXT.search(resp.getheader("Link") or "")
        return answer, (urljoin(final, following.group(1)) if following else None)
    raise AssertionError("unreachable")  # the last attempt always returns or raises


_RATELIMIT_RESET = re.compile(r"(?:^|;)\s*t\s*=\s*(\d+)")


def _retry_after(resp, default: float) -> float:
    """Seconds to wait before asking again: ``Retry-After``, else the Hub's ``RateLimit: "api";r=0;t=N`` (N + 1, as
    huggingface_hub waits), else ``default``; at most 60."""
    try:
        seconds = float(resp.getheader("Retry-After") or "nan")
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        reset = _RATELIMIT_RESET.search(resp.getheader("RateLimit") or "")
        seconds = int(reset.group(1)) + 1 if reset else default
    return min(max(seconds, 0.0), 60.0)


def status_error(status: int, code: str | None, message: str | None, body: bytes, *, repo_id: str,
                 revision: str, endpoint: str) -> Exception:
    """Our error for the Hub's answer ``status`` about ``repo_id``, read as ``hf_raise_for_status`` reads it."""
    what = f"{repo_id}@{revision}"
    if code == "RevisionNotFound":
        return RemoteNotFoundError(f"revision {revision!r} not found in {repo_id}",
                                   hint="use an existing branch, tag or commit sha")
    if code == "EntryNotFound":
        return RemoteNotFoundError(f"a file of {what} is missing on the Hub")
    if code == "GatedRepo":
        return RemoteAccessError(f"{repo_id} is gated: its licence must be accepted before it can be downloaded",
                                 hint=f"accept it at {endpoint}/{repo_id}, then set HF_TOKEN "
                                      "(or run `hf auth login`)")
    if message == "Access to this resource is disabled.":
        return RemoteAccessError(f"{repo_id} is disabled on the Hub ({endpoint})",
                                 hint="it cannot be downloaded; look for another copy of the model")
    if code == "RepoNotFound" or (status == 401 and message != "Invalid credentials in Authorization header"):
        return RemoteNotFoundError(f"repository {repo_id} not found at {endpoint} (or it is private)",
                                   hint="check the spelling; for a private repo set HF_TOKEN")
    if status in (401, 403):
        return RemoteAccessError(f"the Hub refused access to {repo_id} (HTTP {status})",
                                 hint="check HF_TOKEN: it may be missing, expired or lack read access")
    return RemoteUnavailableError(f"the Hub answered HTTP {status} for {what}{_said(message, body)}",
                                  hint="try again later, or check HF_ENDPOINT")


def _said(message: str | None, body: bytes) -> str:
    """``: <the Hub's own words>`` (its X-Error-Message or JSON ``error``), one printable line, or nothing."""
    if not message:
        try:
            error = json.loads(body[:65536]).get("error") if body[:1] == b"{" else None
        except (ValueError, RecursionError, AttributeError):
            error = None
        message = error if isinstance(error, str) else None
    first = (message or "").splitlines()[:1]
    text = "".join(c for c in (first[0] if first else "") if c.isprintable())
    return f": {text[:300]}" if text else ""
