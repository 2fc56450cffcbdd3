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

from imageworks_models.api import (ConfigError, Probe, ProbeError, check_base_url, model_ids, openai_ready, probe_get,
                                   probe_root, redact_url)

PROTOCOLS = {"lmdeploy": "/health", "openai": "/v1/models", "triton": "/v2/health/ready"}


def probe(endpoint: str, served_model_id: str, token: str | None = None) -> Probe:
    """Ready when ``/health`` answers 200 and ``/v1/models`` lists ``served_model_id``."""
    return openai_ready(endpoint, served_model_id, token=token)


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
    status = None
    try:
        status, body = probe_get(probe_root(url) + PROTOCOLS[protocol], token=token)
        if status == 200:
            loaded = [{"model": i} for i in model_ids(body)] if protocol == "openai" else []
            row.update(ok=True, loaded=loaded)
            return row
        error = f"{PROTOCOLS[protocol]} answered {status}"
    except ProbeError as exc:
        error = str(exc)
    row["error"] = f"{entry['name']}: {error} at {row['url']}"
    row["hint"] = ("set the token's variable named by backend_config.api_key_env" if status in (401, 403)
                   else "check that the remote server is up and base_url is right")
    return row
