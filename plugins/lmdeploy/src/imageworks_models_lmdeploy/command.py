"""The ``lmdeploy serve api_server`` command line for an entry, as an argument list (RELIABILITY S7)."""

from __future__ import annotations

from typing import Any

from imageworks_models.endpoints import local_base_url, serving_port
from imageworks_models.errors import NotActivatableError, UnsafeLaunchError
from imageworks_models.records import Launch
from imageworks_models.serverargs import (check_env, check_extra_args, check_positional, check_served_id, model_path,
                                          split_command)

from .plugin import LMDEPLOY_PORT

ENGINES = ("turbomind", "pytorch")
MODEL_FORMATS = ("hf", "awq", "gptq", "fp8")
PROTECTED = {
    "--server-name": "backend_config.host",
    "--server-port": "backend_config.port (or CHAT_PROXY_VLLM_PORT with CHAT_PROXY_VLLM_SINGLE_PORT=1)",
    "--model-name": "served_model_id",
    "--backend": "backend_config.engine (turbomind or pytorch)",
    "--model-format": "backend_config.model_format",
}


def model_format(entry: dict[str, Any]) -> str | None:
    """``backend_config.model_format``, else what the entry's quantization implies (awq, gptq, fp8), else
    ``None`` (LMDeploy reads the model's config)."""
    cfg = entry.get("backend_config") or {}
    if cfg.get("model_format"):
        fmt = str(cfg["model_format"]).lower()
        if fmt not in MODEL_FORMATS:
            raise UnsafeLaunchError(f"{entry['name']}: backend_config.model_format {fmt!r} is not one of "
                                    f"{', '.join(MODEL_FORMATS)}", hint="fix it in the curated layer")
        return fmt
    quant = str(entry.get("quantization") or entry.get("format") or "").lower()
    return quant if quant in ("awq", "gptq", "fp8") else None


def build_launch(entry: dict[str, Any], *, settings) -> Launch:
    """``lmdeploy serve api_server <model_path> --server-name H --server-port P --backend turbomind|pytorch
    [--model-format F] --model-name ID [extra_args...]``.

    ``backend_config``: ``model_path``, ``host``, ``port`` (with single-port mode off; default 23333), ``engine``
    (``turbomind`` default, or ``pytorch``), ``model_format``, ``extra_args``, ``env``, ``trust_remote_code``.

    Raises:
        UnsafeLaunchError, ModelNotPulledError, NotActivatableError, ConfigError.
    """
    name = entry["name"]
    cfg = entry.get("backend_config") or {}
    if str(entry.get("format") or "").lower() == "gguf":
        raise NotActivatableError(f"{name}: LMDeploy cannot serve GGUF files",
                                  hint="serve it with llamacpp, vllm or ollama (activate-model --backend, or change "
                                       "its backend)")
    served = check_served_id(entry.get("served_model_id") or name, name=name)
    host = check_positional(cfg.get("host") or "127.0.0.1", what="backend_config.host", name=name)
    port = serving_port(cfg, settings, default_port=LMDEPLOY_PORT)
    engine = str(cfg.get("engine") or "turbomind").lower()
    if engine not in ENGINES:
        raise UnsafeLaunchError(f"{name}: backend_config.engine {engine!r} is not turbomind or pytorch",
                                hint="fix it in the curated layer")
    extra = check_extra_args(cfg.get("extra_args"), name=name, protected=PROTECTED,
                             trust_remote_code=cfg.get("trust_remote_code") is True)
    argv = [*split_command(settings.lmdeploy_bin, setting="IMAGEWORKS_LMDEPLOY_BIN"), "serve", "api_server",
            model_path(entry, backend="LMDeploy"), "--server-name", host, "--server-port", str(port),
            "--backend", engine]
    fmt = model_format(entry)
    if fmt:
        argv += ["--model-format", fmt]
    argv += ["--model-name", served, *extra]
    return Launch(argv=tuple(argv), host=host, port=port, served_model_id=served,
                  endpoint=local_base_url({**cfg, "host": host}, settings, default_port=LMDEPLOY_PORT),
                  env=check_env(cfg.get("env"), name=name),
                  not_found_hint="install LMDeploy (pip install lmdeploy) or set IMAGEWORKS_LMDEPLOY_BIN to its "
                                 "lmdeploy command")
