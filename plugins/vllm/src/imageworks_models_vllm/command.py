"""The ``vllm serve`` command line for an entry, as an argument list (RELIABILITY S7)."""

from __future__ import annotations

import json
from typing import Any

from imageworks_models.api import local_base_url, serving_port
from imageworks_models.api import Launch
from imageworks_models.api import (check_env, check_extra_args, check_host, check_positional, check_served_id, model_path, option_name)
from imageworks_models.api import split_command

LIMIT_MM = "--limit-mm-per-prompt"
DEFAULT_LIMIT_MM = {"image": 1}
# Options the orchestrator sets: extra_args may not set them in any spelling (where to change them instead).
PROTECTED = {
    "--host": "backend_config.host",
    "--port": "backend_config.port (or CHAT_PROXY_VLLM_PORT with CHAT_PROXY_VLLM_SINGLE_PORT=1)",
    "--model": "backend_config.model_path",
    "--served-model-name": "served_model_id",
    "--config": "extra_args itself (a config file could set host, port, model or served name)",
    "--uds": "backend_config.host and port (the orchestrator serves and checks on host:port)",
}


def build_launch(entry: dict[str, Any], *, settings) -> Launch:
    """``vllm serve <model_path> --host H --port P --served-model-name ID [--trust-remote-code]
    [--limit-mm-per-prompt {...}] [extra_args...]``.

    ``backend_config``: ``model_path``, ``host`` (bind address, default 127.0.0.1), ``port`` (only with
    single-port mode off), ``extra_args``, ``env``, ``trust_remote_code`` (the opt-in), ``limit_mm_per_prompt``
    (for vision entries, default ``{"image": 1}``).

    Raises:
        UnsafeLaunchError, ModelNotPulledError, NotActivatableError, ConfigError.
    """
    name = entry["name"]
    cfg = entry.get("backend_config") or {}
    served = check_served_id(entry.get("served_model_id") or name, name=name)
    host = check_host(check_positional(cfg.get("host") or "127.0.0.1", what="backend_config.host", name=name),
                      name=name, settings=settings)
    port = serving_port(cfg, settings, default_port=settings.vllm_port)
    trust = cfg.get("trust_remote_code") is True
    extra = check_extra_args(cfg.get("extra_args"), name=name, protected=PROTECTED, trust_remote_code=trust)
    argv = [*split_command(settings.vllm_bin, setting="IMAGEWORKS_VLLM_BIN"), "serve",
            model_path(entry, backend="vLLM"), "--host", host, "--port", str(port), "--served-model-name", served]
    if trust:
        argv.append("--trust-remote-code")
    given = {(option_name(a) or "").split(".")[0] for a in extra}  # --limit-mm-per-prompt.image 2 counts too
    if (entry.get("capabilities") or {}).get("vision") and LIMIT_MM not in given:
        limit = cfg.get("limit_mm_per_prompt") or DEFAULT_LIMIT_MM
        argv += [LIMIT_MM, limit if isinstance(limit, str) else json.dumps(limit, separators=(",", ":"))]
    argv += extra
    return Launch(argv=tuple(argv), host=host, port=port, served_model_id=served,
                  endpoint=local_base_url({**cfg, "host": host}, settings, default_port=settings.vllm_port),
                  env=check_env(cfg.get("env"), name=name, settings=settings),
                  not_found_hint="install vLLM (pip install vllm) or set IMAGEWORKS_VLLM_BIN to its vllm command")
