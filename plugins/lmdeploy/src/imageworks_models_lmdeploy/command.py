"""The ``lmdeploy serve api_server`` command line for an entry, as an argument list (RELIABILITY S7)."""

from __future__ import annotations

from typing import Any

from imageworks_models.api import local_base_url, serving_port
from imageworks_models.api import NotActivatableError, UnsafeLaunchError
from imageworks_models.api import Launch
from imageworks_models.api import (check_env, check_extra_args, check_host, check_positional, check_served_id, model_path, option_name)
from imageworks_models.api import split_command

from .plugin import LMDEPLOY_PORT

ENGINES = ("turbomind", "pytorch")
MODEL_FORMATS = ("hf", "awq", "gptq", "fp8")
# The orchestrator's own flags: where the server listens and what it answers to.
PROTECTED = {
    "--server-name": "backend_config.host",
    "--server-port": "backend_config.port (or CHAT_PROXY_VLLM_PORT with CHAT_PROXY_VLLM_SINGLE_PORT=1)",
    "--model-name": "served_model_id",
}
# LMDeploy's own engine flags: rendered from backend_config.engine / model_format, unless extra_args sets
# them (then the entry's own value is used, and ours left out, so the flag never appears twice).
ENGINE_FLAGS = {"--backend": ENGINES, "--model-format": MODEL_FORMATS}


def _engine_flags(extra: list[str], name: str) -> set[str]:
    """The engine flags ``extra`` sets, each with a valid value.

    Raises:
        UnsafeLaunchError: a value that is not one LMDeploy accepts, or a missing value.
    """
    found = set()
    for i, token in enumerate(extra):
        option = option_name(token)
        # argparse takes any unambiguous prefix of a long option, so "--back" is "--backend"
        option = next((f for f in ENGINE_FLAGS if option and (option == f or (len(option) > 3 and
                                                                             f.startswith(option)))), None)
        if option is None:
            continue
        value = token.split("=", 1)[1] if "=" in token else (extra[i + 1] if i + 1 < len(extra) else None)
        if value is None or value.lower() not in ENGINE_FLAGS[option]:
            raise UnsafeLaunchError(f"{name}: extra_args sets {option} to {value!r}, not one of "
                                    f"{', '.join(ENGINE_FLAGS[option])}", hint="fix it in the curated layer")
        found.add(option)
    return found


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
    host = check_host(check_positional(cfg.get("host") or "127.0.0.1", what="backend_config.host", name=name),
                      name=name, settings=settings)
    port = serving_port(cfg, settings, default_port=LMDEPLOY_PORT)
    engine = str(cfg.get("engine") or "turbomind").lower()
    if engine not in ENGINES:
        raise UnsafeLaunchError(f"{name}: backend_config.engine {engine!r} is not turbomind or pytorch",
                                hint="fix it in the curated layer")
    extra = check_extra_args(cfg.get("extra_args"), name=name, protected=PROTECTED,
                             trust_remote_code=cfg.get("trust_remote_code") is True)
    own = _engine_flags(extra, name)
    argv = [*split_command(settings.lmdeploy_bin, setting="IMAGEWORKS_LMDEPLOY_BIN"), "serve", "api_server",
            model_path(entry, backend="LMDeploy"), "--server-name", host, "--server-port", str(port)]
    if "--backend" not in own:
        argv += ["--backend", engine]
    fmt = model_format(entry)
    if fmt and "--model-format" not in own:
        argv += ["--model-format", fmt]
    argv += ["--model-name", served, *extra]
    return Launch(argv=tuple(argv), host=host, port=port, served_model_id=served,
                  endpoint=local_base_url({**cfg, "host": host}, settings, default_port=LMDEPLOY_PORT),
                  env=check_env(cfg.get("env"), name=name, settings=settings),
                  not_found_hint="install LMDeploy (pip install lmdeploy) or set IMAGEWORKS_LMDEPLOY_BIN to its "
                                 "lmdeploy command")
