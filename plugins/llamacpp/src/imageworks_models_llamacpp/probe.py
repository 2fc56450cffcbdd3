"""Asking a llama.cpp server whether it is ready.

``llama-server`` listens while it loads the model and answers ``/health`` with 503 until it is loaded, then 200.
llama-cpp-python's ``llama_cpp.server`` loads the model before it listens and has no ``/health`` (404). So:
ready when ``/health`` answers 200 or 404 and ``/v1/models`` lists the served id (the alias).

Plain ``http.client``, like the vLLM plugin's probe: a probe runs many times while a model loads, and no proxy
from the environment stands between us and a server we started on this machine.
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
        ProbeError: refused, timed out, or not an http URL.
    """
    import http.client
    import socket

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ProbeError(f"not an http URL: {url}")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=CONNECT_TIMEOUT)
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
    endpoint = endpoint.rstrip("/")
    return endpoint[:-3] if endpoint.endswith("/v1") else endpoint


def served_ids(endpoint: str) -> list[str]:
    """The ids ``GET <endpoint>/models`` lists.

    Raises:
        ProbeError: no answer, an error status, or a body that is not the OpenAI list shape.
    """
    status, body = get(f"{endpoint.rstrip('/')}/models")
    if status != 200:
        raise ProbeError(f"/v1/models answered {status}")
    try:
        data = json.loads(body).get("data") or []
    except (ValueError, AttributeError):
        raise ProbeError("/v1/models answered something that is not a model list") from None
    return [m.get("id") for m in data if isinstance(m, dict)]


def probe(endpoint: str, served_model_id: str) -> Probe:
    """One readiness check (see the module docstring)."""
    try:
        status, _ = get(f"{root_of(endpoint)}/health")
        if status == 503:
            return Probe(False, "/health answered 503 (loading the model)")
        if status not in (200, 404):
            return Probe(False, f"/health answered {status}")
        ids = served_ids(endpoint)
    except ProbeError as exc:
        return Probe(False, str(exc))
    if served_model_id not in ids:
        return Probe(False, f"/v1/models lists {', '.join(map(str, ids)) or 'nothing'}, not {served_model_id}")
    return Probe(True, f"serving {served_model_id}")


def version(endpoint: str) -> str | None:
    """llama-server's build (``GET /props``: ``build_info``), or ``None`` (llama_cpp.server does not say)."""
    try:
        status, body = get(f"{root_of(endpoint)}/props")
        info = json.loads(body).get("build_info") if status == 200 else None
        return info if isinstance(info, str) else None
    except (ProbeError, ValueError, AttributeError):
        return None
