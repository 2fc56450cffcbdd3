"""HTTP checks of LMDeploy servers: readiness of the one the orchestrator started, and the health of remote
endpoints (entries with ``backend_config.base_url``), which are never started here.

A remote entry says how to check it with ``backend_config.protocol``: ``lmdeploy`` (default, ``GET /health``),
``openai`` (``GET /v1/models``) or ``triton`` (``GET /v2/health/ready``). A token, when the endpoint needs one,
is read from the environment variable named by ``backend_config.api_key_env``; redirects are never followed,
so it is never sent to another host, and it appears in no message (RELIABILITY S9).
"""

from __future__ import annotations

import os
from typing import Any

from imageworks_models.api import check_base_url
from imageworks_models.api import redact_url
from imageworks_models.api import ConfigError
from imageworks_models.api import Probe

TIMEOUT = (0.5, 2.0)
PROTOCOLS = {"lmdeploy": "/health", "openai": "/v1/models", "triton": "/v2/health/ready"}


def _root(url: str) -> str:
    url = url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def _get(url: str, token: str | None = None):
    """``(status, json or None, error)`` for ``GET url``; ``error`` names the failure without the token."""
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with requests.Session() as session:
            session.trust_env = False
            response = session.get(url, headers=headers, timeout=TIMEOUT, allow_redirects=False)
    except requests.ConnectionError:
        return None, None, "connection refused or host unreachable"
    except requests.Timeout:
        return None, None, "no answer within 2s"
    except requests.RequestException as exc:
        return None, None, type(exc).__name__
    if 300 <= response.status_code < 400:
        return response.status_code, None, f"redirects to {response.headers.get('location', '?')} (not followed)"
    try:
        body = response.json()
    except ValueError:
        body = None
    return response.status_code, body, None


def _ids(body: Any) -> list[str]:
    data = body.get("data") if isinstance(body, dict) else None
    return [m["id"] for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]


def probe(endpoint: str, served_model_id: str, token: str | None = None) -> Probe:
    """Ready when ``/health`` answers 200 and ``/v1/models`` lists ``served_model_id``."""
    status, _, error = _get(f"{_root(endpoint)}/health", token)
    if status != 200:
        return Probe(False, error or f"/health answered {status}")
    status, body, error = _get(f"{_root(endpoint)}/v1/models", token)
    if status != 200:
        return Probe(False, error or f"/v1/models answered {status}")
    ids = _ids(body)
    if served_model_id not in ids:
        return Probe(False, f"/v1/models lists {', '.join(ids) or 'nothing'}, not {served_model_id}")
    return Probe(True, f"serving {served_model_id}")


def remote_health(entry: dict[str, Any]) -> dict[str, Any]:
    """``{"backend", "name", "url", "protocol", "ok", "version", "loaded", "error", "hint"}`` for a remote entry."""
    cfg = entry.get("backend_config") or {}
    protocol = str(cfg.get("protocol") or "lmdeploy").lower()
    row = {"backend": "lmdeploy", "name": entry["name"], "url": redact_url(cfg.get("base_url")), "protocol": protocol,
           "ok": False, "version": None, "loaded": [], "error": None, "hint": None}
    try:
        url = check_base_url(cfg.get("base_url"))
    except ConfigError as exc:
        row.update(error=f"{entry['name']}: {exc.message}", hint=exc.hint)
        return row
    if protocol not in PROTOCOLS:
        row.update(error=f"{entry['name']}: backend_config.protocol {protocol!r} is not one of "
                         f"{', '.join(PROTOCOLS)}", hint="fix it in the curated layer")
        return row
    token_var = cfg.get("api_key_env")
    token = os.environ.get(token_var) if isinstance(token_var, str) and token_var else None
    status, body, error = _get(_root(url) + PROTOCOLS[protocol], token)
    if status == 200:
        row["ok"] = True
        if protocol == "openai":
            row["loaded"] = [{"model": i} for i in _ids(body)]
        return row
    row["error"] = f"{entry['name']}: {error or f'{PROTOCOLS[protocol]} answered {status}'} at {row['url']}"
    row["hint"] = ("set the token's variable named by backend_config.api_key_env" if status in (401, 403)
                   else "check that the remote server is up and base_url is right")
    return row
