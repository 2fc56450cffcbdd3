"""Asking an OpenAI-compatible model server over HTTP whether it is up, what it serves and whether the model
asked for is ready: the one client the backends' ``probe`` and ``health`` hooks use (vLLM, LMDeploy,
llama.cpp), on servers we started and on remote endpoints.

Plain ``http.client``: a probe runs many times while a model loads and once per CLI call, and importing
``requests`` would cost the command more (about 0.14 s) than a whole readiness check. What a probe promises:

- bounded: connect and read timeouts, and an answer over :data:`MAX_BODY` bytes is an error, never read whole;
- no proxy from the environment (a server we started is on this machine; a remote one is named exactly);
- redirects are never followed, so a token goes only to the URL it was configured for, and no message
  carries the token or a URL's credentials (RELIABILITY S9).

Imports the standard library, ``plugin.records`` and (when a request is made) ``redact``.
"""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import urlsplit

from imageworks_models.plugin.records import Probe

CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 2.0  # a probe must never hold an activation past its deadline
MAX_BODY = 4 << 20  # a model list of thousands of ids is well under 1 MiB


class ProbeError(Exception):
    """One line saying why a request got no usable answer (never with a token or a URL's password in it)."""


def probe_get(url: str, *, token: str | None = None, connect_timeout: float = CONNECT_TIMEOUT,
              read_timeout: float = READ_TIMEOUT, limit: int = MAX_BODY) -> tuple[int, bytes]:
    """``(status, body)`` of ``GET url``.

    Args:
        url: an ``http``/``https`` URL.
        token: sent as ``Authorization: Bearer`` to this URL only (redirects are not followed).
        connect_timeout, read_timeout: seconds.
        limit: the most bytes of body read.

    Returns:
        The status and the body of any answer that is not a redirect (an error status too).

    Raises:
        ProbeError: not an http(s) URL, refused, timed out, a redirect (named, not followed), or a body over
            ``limit``.
    """
    import http.client
    import socket

    from imageworks_models.redact import redact_url

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError(f"not an http(s) URL: {redact_url(url)}")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    try:
        conn = kind(parts.hostname, parts.port, timeout=connect_timeout)
    except ValueError:  # a port that is not a number
        raise ProbeError(f"not an http(s) URL: {redact_url(url)}") from None
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        try:
            conn.connect()
        except (socket.timeout, TimeoutError):
            raise ProbeError(f"no connection within {connect_timeout:g}s") from None
        conn.sock.settimeout(read_timeout)
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        if 300 <= response.status < 400:
            where = redact_url(response.getheader("Location") or "?")
            raise ProbeError(f"redirects to {where} (not followed)")
        body = response.read(limit + 1)
        if len(body) > limit:
            raise ProbeError(f"answered more than {limit:,} bytes at {parts.path or '/'} (not a model server's "
                             "answer)")
        return response.status, body
    except ConnectionRefusedError:
        raise ProbeError("connection refused") from None
    except socket.gaierror:
        raise ProbeError(f"cannot resolve the host name {parts.hostname}") from None
    except (socket.timeout, TimeoutError):
        raise ProbeError(f"no answer within {read_timeout:g}s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ProbeError(f"{type(exc).__name__}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
                         ) from None
    finally:
        conn.close()


def probe_root(endpoint: str) -> str:
    """The server's root URL: ``endpoint`` without a trailing ``/`` or ``/v1``."""
    endpoint = endpoint.rstrip("/")
    return endpoint[:-3] if endpoint.endswith("/v1") else endpoint


def model_ids(body: bytes | Any) -> list[str]:
    """The ids of an OpenAI model list (``{"data": [{"id": ...}, ...]}``), given as bytes or parsed.

    Raises:
        ProbeError: it is not that shape.
    """
    try:
        data = json.loads(body) if isinstance(body, (bytes, str)) else body
        items = data.get("data")
    except (ValueError, AttributeError, RecursionError):
        raise ProbeError("/v1/models answered something that is not a model list") from None
    if items is None:
        return []
    if not isinstance(items, list):
        raise ProbeError("/v1/models answered something that is not a model list")
    return [m["id"] for m in items if isinstance(m, dict) and isinstance(m.get("id"), str)]


def served_ids(endpoint: str, *, token: str | None = None) -> list[str]:
    """The ids ``GET <root>/v1/models`` lists.

    Raises:
        ProbeError: no answer, an error status, or a body that is not the OpenAI list shape.
    """
    status, body = probe_get(f"{probe_root(endpoint)}/v1/models", token=token)
    if status != 200:
        raise ProbeError(f"/v1/models answered {status}")
    return model_ids(body)


def openai_ready(endpoint: str, served_model_id: str, *, token: str | None = None,
                 health_ok: tuple[int, ...] = (200,), loading: tuple[int, ...] = ()) -> Probe:
    """One readiness check: ``GET /health`` answers one of ``health_ok`` and ``/v1/models`` lists
    ``served_model_id``.

    Args:
        health_ok: the statuses of ``/health`` that mean "up" (404 for a server without the route).
        loading: statuses that mean "still loading the model" (said so in the detail).

    Returns:
        ``Probe(ready, detail)``; ``detail`` says what was wrong in one line.
    """
    try:
        status, _ = probe_get(f"{probe_root(endpoint)}/health", token=token)
        if status in loading:
            return Probe(False, f"/health answered {status} (loading the model)")
        if status not in health_ok:
            return Probe(False, f"/health answered {status}")
        ids = served_ids(endpoint, token=token)
    except ProbeError as exc:
        return Probe(False, str(exc))
    if served_model_id not in ids:
        return Probe(False, f"/v1/models lists {', '.join(ids) or 'nothing'}, not {served_model_id}")
    return Probe(True, f"serving {served_model_id}")


def openai_health(url: str, *, backend: str, label: str,
                  version: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """A ``health`` row for the local server at ``url``: ``{"backend", "url", "ok", "version", "loaded",
    "error", "hint"}``; ``loaded`` is what ``/v1/models`` lists, ``version`` what ``version(url)`` says.

    Args:
        backend: the backend's name; ``label`` the server's name in the error ("vLLM", "llama.cpp").
    """
    out = {"backend": backend, "url": url, "ok": False, "version": None, "loaded": [], "error": None, "hint": None}
    try:
        out["loaded"] = [{"model": i} for i in served_ids(url)]
    except ProbeError as exc:
        out["error"] = f"no {label} server answers at {url} ({exc})"
        out["hint"] = "start one: imageworks-loader activate-model <name>"
        return out
    out["ok"] = True
    out["version"] = version(url) if version is not None else None
    return out


def version_at(url: str, path: str, key: str) -> str | None:
    """``GET <root><path>`` and its JSON's ``key`` when that is a string, else ``None`` (never raises)."""
    try:
        status, body = probe_get(f"{probe_root(url)}{path}")
        found = json.loads(body).get(key) if status == 200 else None
    except (ProbeError, ValueError, AttributeError, RecursionError):
        return None
    return found if isinstance(found, str) else None
