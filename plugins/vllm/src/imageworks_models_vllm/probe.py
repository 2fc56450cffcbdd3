"""Asking vLLM's OpenAI server whether it is ready: ``/health`` then ``/v1/models``.

Plain ``http.client``: a probe runs many times while a model loads and once per CLI call, and importing
``requests`` would cost the CLI more (about 0.14 s) than a whole readiness check. No proxy from the
environment stands between us and a server we started on this machine.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from imageworks_models.api import Probe

CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 2.0  # a probe must never hold an activation past its deadline


class ProbeError(Exception):
    """One line saying why a request got no usable answer."""


def get(url: str) -> tuple[int, bytes]:
    """``(status, body)`` of ``GET url``; redirects are not followed.

    Raises:
        ProbeError: refused, timed out, or not an http(s) URL.
    """
    import http.client
    import socket

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError(f"not an http(s) URL: {url}")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname, parts.port, timeout=CONNECT_TIMEOUT)
    try:
        conn.connect()
        conn.sock.settimeout(READ_TIMEOUT)
        conn.request("GET", parts.path or "/", headers={"Accept": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    except ConnectionRefusedError:
        raise ProbeError("connection refused") from None
    except (socket.timeout, TimeoutError):
        raise ProbeError(f"no answer within {READ_TIMEOUT:g}s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ProbeError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()


def root_of(endpoint: str) -> str:
    return endpoint[:-3] if endpoint.endswith("/v1") else endpoint


def served_ids(endpoint: str) -> list[str]:
    """The ids ``GET <endpoint>/models`` lists.

    Raises:
        ProbeError: no answer, an error status, or a body that is not the OpenAI list shape.
    """
    status, body = get(f"{endpoint}/models")
    if status != 200:
        raise ProbeError(f"/v1/models answered {status}")
    try:
        data = json.loads(body).get("data") or []
    except (ValueError, AttributeError):
        raise ProbeError("/v1/models answered something that is not a model list") from None
    return [m.get("id") for m in data if isinstance(m, dict)]


def probe(endpoint: str, served_model_id: str) -> Probe:
    """Ready when ``/health`` answers 200 and ``/v1/models`` lists ``served_model_id``."""
    try:
        status, _ = get(f"{root_of(endpoint)}/health")
        if status != 200:
            return Probe(False, f"/health answered {status}")
        ids = served_ids(endpoint)
    except ProbeError as exc:
        return Probe(False, str(exc))
    if served_model_id not in ids:
        return Probe(False, f"/v1/models lists {', '.join(map(str, ids)) or 'nothing'}, not {served_model_id}")
    return Probe(True, f"serving {served_model_id}")


def version(endpoint: str) -> str | None:
    """``GET /version`` (vLLM's), or ``None``."""
    try:
        status, body = get(f"{root_of(endpoint)}/version")
        return json.loads(body).get("version") if status == 200 else None
    except (ProbeError, ValueError, AttributeError):
        return None
